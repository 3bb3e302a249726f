//! Helpers shared by the end-to-end tests of the `graven` binary.

#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use graven_core::tile;
use graven_testkit::net::Response;
use graven_testkit::process::{Listening, spawn_listening};

/// Runs the binary. Unless the call names a `--trust-dir`, it gets a fresh, empty trust store:
/// tests never touch the user's own, and each `verify` is a first-use full verification.
pub fn graven(args: &[&str], stdin: &[u8]) -> Output {
    let fresh_trust = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(args)
        .env("GRAVEN_TRUST_DIR", fresh_trust.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "graven failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub struct TestLog {
    pub _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub key: PathBuf,
    pub vkey: String,
    /// This log's own trust store: its `verify` runs remember, and are incremental.
    pub trust: PathBuf,
}

impl TestLog {
    pub fn new(origin: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("log.key");
        let vkey = keygen(&key, origin);
        TestLog { dir: tmp.path().join("log"), key, vkey, trust: tmp.path().join("trust"), _tmp: tmp }
    }

    pub fn append_raw(&self, lines: &[u8]) -> Output {
        graven(
            &[
                "log",
                "append",
                "--dir",
                self.dir.to_str().unwrap(),
                "--key",
                self.key.to_str().unwrap(),
                "--raw",
            ],
            lines,
        )
    }

    pub fn append_json(&self, lines: &[u8]) -> Output {
        graven(
            &["log", "append", "--dir", self.dir.to_str().unwrap(), "--key", self.key.to_str().unwrap()],
            lines,
        )
    }

    pub fn verify(&self) -> Output {
        let trust = self.trust.to_str().unwrap();
        graven(&["verify", self.dir.to_str().unwrap(), "--vkey", &self.vkey, "--trust-dir", trust], b"")
    }

    /// A first-use, full verification that remembers nothing.
    pub fn verify_afresh(&self) -> Output {
        graven(&["verify", self.dir.to_str().unwrap(), "--vkey", &self.vkey], b"")
    }
}

/// Writes a new signer key for `origin` to `path` with `graven keygen`; returns its verifier
/// key.
pub fn keygen(path: &std::path::Path, origin: &str) -> String {
    ok(&graven(&["keygen", "--origin", origin, "--out", path.to_str().unwrap()], b"")).trim().to_owned()
}

pub fn numbered(prefix: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    range.map(|i| format!("{prefix}{i}\n")).collect::<String>().into_bytes()
}

/// A minimal static file server on a free loopback port, serving `dir`. It records the path
/// of every request (without its leading `/`), in order.
pub fn serve(dir: PathBuf) -> (String, Arc<Mutex<Vec<String>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let server = graven_testkit::net::serve(move |req| {
        let path = req.path.trim_start_matches('/').to_owned();
        log.lock().unwrap().push(path.clone());
        // Only canonical tlog paths are served, as a real tile server should.
        match tile::parse_path(&path).ok().and_then(|_| std::fs::read(dir.join(&path)).ok()) {
            Some(b) => Response::ok(b),
            None => Response::not_found(),
        }
    });
    (format!("{}/", server.url()), requests)
}

/// A `graven serve` child on a free loopback port, killed when dropped. Its process, address
/// (`addr`, over http, or https when TLS is configured) and start-up lines (`banner`, up to
/// and including "listening on") are the [`Listening`]'s it derefs to.
pub struct Server {
    pub proc: Listening,
    pub vkey: String,
    /// The bootstrap admin key from `<data>/admin.token`.
    pub token: String,
    pub data: PathBuf,
}

impl std::ops::Deref for Server {
    type Target = Listening;
    fn deref(&self) -> &Listening {
        &self.proc
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Listening {
        &mut self.proc
    }
}

/// Starts `graven serve --data <data> --listen 127.0.0.1:0 <extra>` and waits until it listens.
pub fn start(data: &std::path::Path, extra: &[&str]) -> Server {
    launch(data, extra, &[], true)
}

/// [`start`] with extra environment variables, for a node that may not hold the admin key:
/// a node joining a shared log writes no `admin.token`, and its `token` is then empty.
pub fn start_env(data: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    launch(data, extra, env, false)
}

fn launch(data: &std::path::Path, extra: &[&str], env: &[(&str, &str)], need_token: bool) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graven"));
    cmd.args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(extra)
        .envs(env.iter().copied())
        .stderr(Stdio::piped());
    let mut proc = spawn_listening(&mut cmd, std::time::Duration::from_secs(60));
    forward_stderr(&mut proc.child);
    let vkey = proc.banner_value("verifier key: ").unwrap_or_default().trim().to_owned();
    let token = match std::fs::read_to_string(data.join("admin.token")) {
        Ok(t) => t.trim().to_owned(),
        Err(e) if need_token => panic!("{}: {e}", data.join("admin.token").display()),
        Err(_) => String::new(),
    };
    Server { proc, vkey, token, data: data.to_path_buf() }
}

/// Passes a server's standard error on to the test's, but for its routine request lines (one
/// per request, tens of thousands in a run; `crates/graven/tests/running.rs` checks them):
/// warnings and errors, those of requests included, still show.
fn forward_stderr(child: &mut std::process::Child) {
    use std::io::BufRead;
    let Some(pipe) = child.stderr.take() else { return };
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if !line.contains(" INFO graven_server::http::request_log: request ") {
                eprintln!("{line}");
            }
        }
    });
}

/// An HTTP client that returns every status as a response, with a 30 s deadline.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// A response's status and body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

// ---- requests to a running server, as the admin or with a given key ----

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn req(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Resp {
        let url = self.url(path);
        let auth = token.map(|t| format!("Bearer {t}"));
        let a = agent();
        macro_rules! with_auth {
            ($r:expr) => {
                match &auth {
                    Some(v) => $r.header("Authorization", v),
                    None => $r,
                }
            };
        }
        let b = body.unwrap_or("{}").as_bytes();
        let result = match method {
            "GET" => with_auth!(a.get(&url)).call(),
            "HEAD" => with_auth!(a.head(&url)).call(),
            "OPTIONS" => with_auth!(a.options(&url)).call(),
            "DELETE" => with_auth!(a.delete(&url)).call(),
            "POST" => with_auth!(a.post(&url)).header("Content-Type", "application/json").send(b),
            "PUT" => with_auth!(a.put(&url)).header("Content-Type", "application/json").send(b),
            "PATCH" => with_auth!(a.patch(&url)).header("Content-Type", "application/json").send(b),
            m => panic!("{m}"),
        };
        let mut r = result.unwrap();
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().unwrap_or_default();
        Resp { status, body }
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Resp {
        let b = body.map(|b| b.to_string());
        self.req(method, path, Some(&self.token), b.as_deref())
    }

    pub fn post_event(&self, token: &str, body: &str) -> Resp {
        self.req("POST", "/v1/events", Some(token), Some(body))
    }

    pub fn size(&self) -> u64 {
        self.admin("GET", "/v1/log", None).json()["tree_size"].as_u64().unwrap()
    }

    pub fn event(&self, i: u64) -> serde_json::Value {
        let r = self.admin("GET", &format!("/v1/events/{i}"), None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["event"].clone()
    }

    /// The raw stored bytes of every event.
    pub fn all_events(&self) -> Vec<String> {
        (0..self.size())
            .map(|i| {
                let r = self.admin("GET", &format!("/v1/events/{i}"), None);
                #[derive(serde::Deserialize)]
                struct Stored<'a> {
                    #[serde(borrow)]
                    event: &'a serde_json::value::RawValue,
                }
                serde_json::from_str::<Stored>(&r.body).unwrap().event.get().to_owned()
            })
            .collect()
    }

    pub fn metric(&self, name: &str) -> u64 {
        let m = self.req("GET", "/metrics", None, None).body;
        m.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    /// Creates an identity and one key for it; returns the key.
    pub fn identity(&self, id: &str, role: &str, allow: &[&str]) -> String {
        let r = self.admin(
            "POST",
            "/v1/identities",
            Some(serde_json::json!({"id": id, "kind": "service_account", "owner": "team-payments", "role": role, "allowed_actions": allow})),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        self.new_key(id, serde_json::json!({}))
    }

    pub fn new_key(&self, id: &str, body: serde_json::Value) -> String {
        let r = self.admin("POST", &format!("/v1/identities/{}/keys", enc(id)), Some(body));
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["key"].as_str().unwrap().to_owned()
    }
}

pub fn enc(id: &str) -> String {
    id.replace('/', "%2F")
}

pub fn key_id(key: &str) -> &str {
    &key[4..20]
}

/// Runs the binary with `GRAVEN_TOKEN` set.
pub fn graven_as(args: &[&str], token: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graven")).args(args).env("GRAVEN_TOKEN", token).output().unwrap()
}

/// The characters that must never reach a terminal raw: C0 (but newline) and C1 controls, DEL,
/// bidirectional controls, line and paragraph separators, invisible format characters.
pub fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"));
    for c in text.chars() {
        let bad = matches!(c,
            '\u{0}'..='\u{9}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{61c}' | '\u{180e}'
            | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}'
            | '\u{feff}' | '\u{fff9}'..='\u{fffb}');
        assert!(!bad, "{what} holds U+{:04X}: {text:?}", c as u32);
    }
}

/// Python 3 with `cryptography` (for the independent signature checks), installed with pip if
/// missing. Fails (never skips) if it cannot be had.
pub fn python_with_cryptography() {
    let has = || {
        Command::new("python3")
            .args(["-c", "import cryptography"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has() {
        return;
    }
    let pip = Command::new("python3").args(["-m", "pip", "install", "--quiet", "cryptography"]).status();
    assert!(
        pip.is_ok_and(|s| s.success()) && has(),
        "python3 with the `cryptography` package is needed for the independent signature checks, and `python3 -m pip install cryptography` failed"
    );
}

/// Runs the Python checker `script` (written to a temporary file named `name`) with one JSON
/// object a line on its standard input; its answer, one verdict a line, one per input line.
pub fn python_verdicts(name: &str, script: &str, lines: &[serde_json::Value]) -> Vec<String> {
    python_with_cryptography();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(name);
    std::fs::write(&path, script).unwrap();
    let mut child = Command::new("python3")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "the Python checker failed: {}", String::from_utf8_lossy(&out.stderr));
    let verdicts: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(verdicts.len(), lines.len());
    verdicts
}

/// A `graven witness` child, killed on drop.
pub struct Witness {
    pub child: std::process::Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// Its cosignature/v1 verifier key.
    pub vkey: String,
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `graven witness` with its state in `dir`, named `name`, for the log `log_flag`
/// (`origin=vkey`), on a free loopback port.
pub fn spawn_witness(dir: &std::path::Path, name: &str, log_flag: &str) -> Witness {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["witness", "--data"])
        .arg(dir.join("data"))
        .arg("--key")
        .arg(dir.join("witness.key"))
        .args(["--name", name, "--log", log_flag, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut addr, mut vkey) = (String::new(), String::new());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while addr.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the witness did not start");
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "the witness exited before listening");
        if let Some(v) = line.trim_end().strip_prefix("verifier key: ") {
            vkey = v.to_owned();
        }
        if let Some(a) = line.trim_end().strip_prefix("listening on http://") {
            addr = a.to_owned();
        }
    }
    std::thread::spawn(move || for _ in out.lines() {});
    Witness { child, addr, vkey }
}
