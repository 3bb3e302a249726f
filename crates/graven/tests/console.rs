//! The console in a real browser: Debian's Chromium, headless, driven through ChromeDriver
//! (W3C WebDriver) against the real `graven serve`. An auditor signs in, pins the log's
//! verifier key, finds an identity and its events, opens an event and sees the browser's own
//! proof check pass; an entry is then altered on disk and the same page says the check failed;
//! hostile strings render as inert text; sign-out ends the session. A screenshot of each page
//! at 1280×800 is written to `target/tmp/console-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod webdriver;

use std::path::{Path, PathBuf};

use common::start;
use serde_json::{Value, json};

fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_with(dir: &Path, needle: &[u8], out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_with(&p, needle, out);
        } else if std::fs::read(&p).unwrap().windows(needle.len()).any(|w| w == needle) {
            out.push(p);
        }
    }
}

#[test]
fn an_auditor_checks_an_event_in_the_browser_and_sees_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let s = start(&data, &["--origin", "console.example/log"]);
    let admin = |method: &str, path: &str, body: Value| {
        let r = s.admin(method, path, Some(body));
        assert!(r.status < 300, "{path}: {} {}", r.status, r.body);
        r.json()
    };
    admin(
        "POST",
        "/v1/identities",
        json!({"id": "svc:auditor", "kind": "service_account", "owner": "team-audit", "role": "auditor"}),
    );
    let auditor_key =
        admin("POST", "/v1/identities/svc:auditor/keys", json!({}))["key"].as_str().unwrap().to_owned();
    // Identity fields refuse control characters (a 400), so the owner holds markup and a bidi
    // override only; events hold control characters too.
    let hostile_owner =
        "<script>window.pwned=1</script>\u{202e}gpj.exe\"'><img src=x onerror=\"window.pwned=2\">";
    let hostile = "<script>window.pwned=1</script>\u{202e}gpj.exe\u{1b}[31m\u{7}\"'><img src=x onerror=\"window.pwned=2\">";
    admin(
        "POST",
        "/v1/identities",
        json!({"id": "svc:deployer", "kind": "service_account", "owner": hostile_owner, "role": "writer", "allowed_actions": ["*"]}),
    );
    let writer =
        admin("POST", "/v1/identities/svc:deployer/keys", json!({}))["key"].as_str().unwrap().to_owned();
    let post = |ev: Value| -> u64 {
        let r = s.req("POST", "/v1/events", Some(&writer), Some(&ev.to_string()));
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["index"].as_u64().unwrap()
    };
    let good = post(
        json!({"action": "deploy.release", "resource": {"type": "service", "id": "payments-marker-7f3a"}, "outcome": "success"}),
    );
    let bad = post(
        json!({"action": format!("deploy.{hostile}"), "resource": {"type": "svc", "id": hostile}, "outcome": "failure", "details": {"note": hostile}}),
    );

    let driver = webdriver::Driver::start();
    let b = driver.session(&tmp.path().join("profile"));
    let ui = format!("http://{}/ui", s.addr);
    let dir = shots();

    // Signed out, every page leads to the sign-in page.
    b.goto(&format!("{ui}/log"));
    assert!(b.url().ends_with("/ui/signin"), "{}", b.url());
    b.screenshot(&dir.join("signin.png"));
    b.type_into("#credential", &auditor_key);
    b.click("#signin");
    assert!(b.wait_for("return location.pathname === '/ui/log'", 10), "{}: {}", b.url(), b.text("main"));
    assert_eq!(b.text("#origin"), "console.example/log");
    b.screenshot(&dir.join("log.png"));
    // The session cookie is HttpOnly: the page's scripts cannot read it.
    assert_eq!(b.run("return document.cookie"), json!(""));

    // Pin the verifier key (as an auditor takes it from elsewhere; here, the server's file).
    b.goto(&format!("{ui}/settings"));
    b.type_into("#vkey", &s.vkey);
    b.click("#pin");
    assert!(
        b.wait_for("return document.getElementById('pinned').textContent.includes('Pinned')", 10),
        "{}",
        b.text("#pinned")
    );
    assert!(b.text("#pinned").contains(&s.vkey));
    b.screenshot(&dir.join("settings.png"));

    // Find the identity and its events.
    b.goto(&format!("{ui}/identities"));
    assert!(b.text("#identities").contains("svc:deployer"));
    b.screenshot(&dir.join("identities.png"));
    b.goto(&format!("{ui}/search?actor=svc%3Adeployer"));
    assert!(
        b.wait_for(&format!("return document.querySelector('a[href=\"/ui/events/{bad}\"]') !== null"), 1)
            || {
                // The index may trail the log by a moment.
                std::thread::sleep(std::time::Duration::from_millis(500));
                b.goto(&format!("{ui}/search?actor=svc%3Adeployer"));
                true
            }
    );
    b.screenshot(&dir.join("search.png"));
    // The inventory counts what the index has: wait for both events.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        b.goto(&format!("{ui}/identity?id=svc%3Adeployer"));
        let events = b.text("#events");
        if events.starts_with('2') {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{events}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    b.screenshot(&dir.join("identity.png"));
    // What one key did: the credential's page, from the identity's list of credentials.
    b.click("#credentials a");
    assert!(b.wait_for("return location.pathname === '/ui/credential'", 10), "{}", b.url());
    assert_eq!(b.text("#uses"), "2");
    b.screenshot(&dir.join("credential.png"));
    let results = b.text("#results");
    assert!(results.contains("deploy.release"), "{results}");

    // Hostile strings: shown as text, never run, no element made from them.
    for page in [
        format!("{ui}/search?actor=svc%3Adeployer"),
        format!("{ui}/events/{bad}"),
        format!("{ui}/identities"),
    ] {
        b.goto(&page);
        assert_eq!(b.run("return window.pwned === undefined"), json!(true), "{page}");
        assert_eq!(b.run("return document.querySelectorAll('img').length"), json!(0), "{page}");
        assert_eq!(
            b.run("return document.scripts.length"),
            json!(1),
            "{page}: only the console's own script"
        );
        let body = b.run("return document.body.innerText").as_str().unwrap().to_owned();
        assert!(body.contains("<script>window.pwned=1</script>"), "{page}: shown as text");
        assert!(body.contains("[U+202E]gpj.exe"), "{page}: the override is shown, not obeyed");
        if page.contains("/search") {
            assert!(
                body.contains("[U+202E]gpj.exe[U+001B][31m[U+0007]"),
                "{page}: control characters are shown"
            );
        }
        if page.contains("/events/") {
            // The entry as stored: canonical JSON writes control characters as \u escapes.
            assert!(body.contains("[U+202E]gpj.exe\\u001b[31m\\u0007"), "{page}: the entry's escapes");
        }
        assert!(!body.contains('\u{202e}') && !body.contains('\u{1b}') && !body.contains('\u{7}'));
    }

    // The event's proof, checked in the browser against the pinned key.
    b.goto(&format!("{ui}/events/{good}"));
    assert!(b.wait_for("return document.getElementById('verdict').className !== 'pending'", 15));
    let verdict = b.text("#verdict");
    assert!(verdict.starts_with("Verified"), "{verdict}: {}", b.text("#checks"));
    assert!(b.text("#checks").contains("signed by the key you pinned"));
    b.screenshot(&dir.join("event-verified.png"));

    // Alter the entry on disk (one byte, same length: the bundle still parses) and reload.
    let mut files = Vec::new();
    files_with(&data, b"payments-marker-7f3a", &mut files);
    let files: Vec<PathBuf> =
        files.into_iter().filter(|p| p.to_string_lossy().contains("tile/entries")).collect();
    assert!(!files.is_empty(), "the entry bundle holding the event");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let at = bytes.windows(20).position(|w| w == b"payments-marker-7f3a").unwrap();
        let mut altered = bytes.clone();
        altered[at + 16] = b'9';
        std::fs::write(f, altered).unwrap();
    }
    b.goto(&format!("{ui}/events/{good}"));
    assert!(b.wait_for("return document.getElementById('verdict').className !== 'pending'", 15));
    let verdict = b.text("#verdict");
    assert!(verdict.starts_with("FAILED"), "{verdict}");
    assert!(b.text("#entry").contains("payments-marker-9f3a"), "the page shows what is on disk now");
    b.screenshot(&dir.join("event-tampered.png"));

    // Without a pinned key the page says nothing was checked.
    b.goto(&format!("{ui}/settings"));
    b.click("#unpin");
    b.goto(&format!("{ui}/events/{good}"));
    assert!(b.wait_for("return document.getElementById('verdict').className !== 'pending'", 15));
    assert!(b.text("#verdict").starts_with("Not checked"), "{}", b.text("#verdict"));

    // Sign out: the session ends.
    b.click("#signout");
    assert!(b.wait_for("return location.pathname === '/ui/signin'", 10), "{}", b.url());
    b.goto(&format!("{ui}/log"));
    assert!(b.url().ends_with("/ui/signin"), "{}", b.url());
    // Both sign-in and sign-out are in the log.
    let events = s.all_events();
    assert!(events.iter().any(|e| e.contains("graven.console.signin") && e.contains("svc:auditor")));
    assert!(events.iter().any(|e| e.contains("graven.console.signout")));
}
