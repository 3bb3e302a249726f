//! A small W3C WebDriver client (https://www.w3.org/TR/webdriver2/) over the test's HTTP
//! agent: enough to drive Debian's Chromium through its ChromeDriver, headless, on loopback.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key of an element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running `chromedriver`, killed when dropped.
pub struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    let a = agent();
    let r = match method {
        "GET" => a.get(url).call(),
        "DELETE" => a.delete(url).call(),
        _ => {
            a.post(url).header("content-type", "application/json").send(body.unwrap_or(json!({})).to_string())
        }
    };
    let mut r = r.unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"));
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert!(status < 300, "WebDriver {method} {url}: {status} {text}");
    v["value"].clone()
}

impl Driver {
    /// Starts `chromedriver` on a free loopback port and waits until it is ready.
    pub fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver (Debian's chromium-driver; scripts/test.sh installs it) did not start: {e}"
                )
            });
        let d = Driver { child, base: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut r) = agent().get(format!("{}/status", d.base)).call() {
                let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
                    .unwrap_or(Value::Null);
                if v["value"]["ready"] == true {
                    return d;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A new headless Chromium of 1280×800 with its own empty profile in `profile`.
    pub fn session(&self, profile: &std::path::Path) -> Browser {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--disable-quic", "--window-size=1280,800",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v = call("POST", &format!("{}/session", self.base), Some(caps));
        let id = v["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_owned();
        let b = Browser { base: format!("{}/session/{id}", self.base) };
        b.post("/window/rect", json!({"width": 1280, "height": 800}));
        b
    }
}

/// One browser session.
pub struct Browser {
    base: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = agent().delete(&self.base).call();
    }
}

impl Browser {
    fn post(&self, path: &str, body: Value) -> Value {
        call("POST", &format!("{}{path}", self.base), Some(body))
    }
    fn get(&self, path: &str) -> Value {
        call("GET", &format!("{}{path}", self.base), None)
    }

    pub fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url}));
    }

    pub fn url(&self) -> String {
        self.get("/url").as_str().unwrap_or_default().to_owned()
    }

    /// The element `css` selects (the first), or a panic naming it.
    pub fn find(&self, css: &str) -> String {
        let v = self.post("/element", json!({"using": "css selector", "value": css}));
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_owned()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.post(&format!("/element/{e}/value"), json!({"text": text}));
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.post(&format!("/element/{e}/click"), json!({}));
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.get(&format!("/element/{e}/text")).as_str().unwrap_or_default().to_owned()
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub fn run(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
    }

    /// Waits up to `secs` for `script` to return true.
    pub fn wait_for(&self, script: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.run(script) == Value::Bool(true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self, to: &std::path::Path) {
        use base64::Engine as _;
        let v = self.get("/screenshot");
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(to, png).unwrap();
    }
}
