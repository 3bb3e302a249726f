//! The console at `/ui` (docs/console.md) over HTTP, without a browser: sign-in and its
//! refusals, the session cookie, the headers every page carries, what the event page hands
//! the browser, hostile strings rendered inert, sign-out. The browser itself (Chromium through
//! WebDriver, the proof checked by WebCrypto) is `crates/graven/tests/console.rs`.

use graven_server::testing::{Answer, Harness};
use serde_json::{Value, json};

fn sign_in(h: &Harness, credential: &str) -> Answer {
    let body = format!("credential={}", graven_server::console::html::url(credential));
    h.check(h.post("/ui/signin").body("application/x-www-form-urlencoded", body))
}

/// Signs in with `key`; the session cookie (`graven_session=...`).
fn session(h: &Harness, key: &str) -> String {
    let a = sign_in(h, key).expect(303);
    assert_eq!(a.header("location"), Some("/ui/log"));
    let set = a.header("set-cookie").unwrap().to_owned();
    set.split(';').next().unwrap().to_owned()
}

/// A node where `svc:writer` logged `n` events (`deploy.n0`, ...), and an auditor's session:
/// the node, the events' indices, the session cookie.
fn writer_events_and_auditor(n: usize) -> (Harness, Vec<u64>, String) {
    let h = Harness::start();
    let writer = h.identity("svc:writer", "writer", &["*"]);
    let indices = (0..n)
        .map(|i| {
            let ev = json!({"action": format!("deploy.n{i}"), "outcome": "success"});
            h.check(h.post("/v1/events").bearer(&writer).json(ev)).expect(201).json()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let key = h.identity("svc:auditor", "auditor", &[]);
    let cookie = session(&h, &key);
    (h, indices, cookie)
}

fn page(h: &Harness, cookie: &str, path: &str) -> Answer {
    h.check(h.get(path).header("cookie", cookie))
}

#[test]
fn an_auditor_signs_in_and_every_page_is_served_with_strict_headers() {
    let h = Harness::start();
    // Without a session: the sign-in page.
    let a = h.check(h.get("/ui/log")).expect(303);
    assert_eq!(a.header("location"), Some("/ui/signin"));
    let a = h.check(h.get("/ui/signin")).expect(200);
    assert!(a.text().contains("name=\"credential\""));

    let key = h.identity("svc:auditor", "auditor", &[]);
    let size = h.size();
    let a = sign_in(&h, &key).expect(303);
    let set = a.header("set-cookie").unwrap();
    for part in ["graven_session=", "Path=/ui", "HttpOnly", "SameSite=Strict", "Max-Age=28800"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: a Secure cookie would never be sent back");
    // The sign-in is in the log, attributed to the identity that signed in.
    let signin = h.events_with_action(size, "graven.console.signin");
    assert_eq!(signin.len(), 1);
    assert_eq!(signin[0]["actor"]["id"], "svc:auditor");
    let cookie = set.split(';').next().unwrap().to_owned();

    for path in ["/ui/log", "/ui/search", "/ui/identities", "/ui/settings", "/ui/events/0"] {
        let a = page(&h, &cookie, path).expect(200);
        let csp = a.header("content-security-policy").unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(a.header("x-frame-options"), Some("DENY"));
        assert_eq!(a.header("cache-control"), Some("no-store"));
        assert!(a.content_type().starts_with("text/html"));
        let t = a.text();
        // The only script is the console's own file: no inline script, no handler attribute.
        assert_eq!(t.matches("<script").count(), 1, "{path}");
        assert!(t.contains("<script src=\"/ui/assets/console.js\" defer></script>"));
        assert!(!regex_like_handler(&t), "{path}: an inline event handler");
        assert!(!t.contains("http://") && !t.contains("https://"), "{path}: nothing from elsewhere");
    }
    // The log page: every entry of this young log was logged within the last minute.
    let t = page(&h, &cookie, "/ui/log").expect(200).text();
    let want = format!("<dd id=\"ingest\">{} events in the last minute", h.size());
    assert!(t.contains(&want), "{want}: {t}");
    let a = h.check(h.get("/ui/assets/console.js")).expect(200);
    assert!(a.content_type().starts_with("text/javascript"));
    assert!(a.text().contains("crypto.subtle.verify"));
    h.check(h.get("/ui/assets/other.js")).expect(404);
}

/// Whether a tag of `html` (what lies between a `<` and the next `>`) has an event handler
/// attribute like ` onclick=`.
fn regex_like_handler(html: &str) -> bool {
    html.split('<').skip(1).filter_map(|t| t.split('>').next()).any(|tag| {
        tag.match_indices(" on").any(|(i, _)| {
            let rest = &tag[i + 3..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
            !name.is_empty() && rest[name.len()..].trim_start().starts_with('=')
        })
    })
}

#[test]
fn sign_in_refusals_are_recorded_and_no_session_is_made() {
    let h = Harness::start();
    let size = h.size();
    let a = sign_in(&h, "gk_nosuchkey_0123456789abcdef").expect(401);
    assert!(a.header("set-cookie").is_none());
    assert!(a.text().contains("id=\"problem\""));
    let writer = h.identity("svc:writer", "writer", &["*"]);
    let a = sign_in(&h, &writer).expect(403);
    assert!(a.text().contains("the console is for auditors and admins"), "{}", a.text());
    assert!(a.header("set-cookie").is_none());
    let denied = h.events_with_action(size, "graven.access.denied");
    let routes: Vec<&Value> = denied.iter().map(|d| &d["details"]["route"]).collect();
    assert!(routes.len() >= 2 && routes.iter().all(|r| *r == "POST /ui/signin"), "{denied:?}");
    assert!(denied.iter().any(|d| d["actor"]["id"] == "svc:writer" && d["details"]["reason"] == "role"));

    // A form posted from another site is refused before the credential is looked at.
    let auditor = h.identity("svc:auditor", "auditor", &[]);
    let body = format!("credential={auditor}");
    let a = h.check(
        h.post("/ui/signin")
            .header("origin", "https://evil.example")
            .header("host", "graven.example")
            .body("application/x-www-form-urlencoded", body),
    );
    assert_eq!(a.status(), 403);
    assert!(a.header("set-cookie").is_none());
    // A malformed form: a clear error.
    let a = h.check(h.post("/ui/signin").body("application/x-www-form-urlencoded", "key=1"));
    assert_eq!(a.status(), 400);
    assert!(a.text().contains("credential="));
    // Too large.
    let big = format!("credential={}", "x".repeat(20_000));
    assert_eq!(h.check(h.post("/ui/signin").body("application/x-www-form-urlencoded", big)).status(), 413);
}

#[test]
fn a_session_ends_at_sign_out_or_when_its_identity_is_disabled() {
    let h = Harness::start();
    let key = h.identity("svc:auditor", "auditor", &[]);
    let cookie = session(&h, &key);
    page(&h, &cookie, "/ui/log").expect(200);
    // Sign-out needs the session's form token: a bare POST (from anywhere) does nothing.
    let a = h
        .check(h.post("/ui/signout").header("cookie", &cookie).body("application/x-www-form-urlencoded", ""));
    assert_eq!(a.status(), 403);
    page(&h, &cookie, "/ui/log").expect(200);
    let t = page(&h, &cookie, "/ui/log").text();
    let marker = "name=\"form_token\" value=\"";
    let at = t.find(marker).unwrap() + marker.len();
    let form_token = &t[at..at + t[at..].find('"').unwrap()];
    let size = h.size();
    let a = h.check(
        h.post("/ui/signout")
            .header("cookie", &cookie)
            .body("application/x-www-form-urlencoded", format!("form_token={form_token}")),
    );
    assert_eq!(a.status(), 303);
    assert!(a.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(page(&h, &cookie, "/ui/log").expect(303).header("location"), Some("/ui/signin"));
    assert_eq!(h.events_with_action(size, "graven.console.signout").len(), 1);

    // Disabled: its session stops working at once.
    let cookie = session(&h, &key);
    page(&h, &cookie, "/ui/log").expect(200);
    h.check(h.post("/v1/identities/svc:auditor/disable").bearer(h.token()).json("{}")).expect(200);
    page(&h, &cookie, "/ui/log").expect(303);
    // A made-up cookie is no session.
    page(&h, "graven_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "/ui/log").expect(303);
}

#[test]
fn hostile_strings_are_rendered_inert() {
    let h = Harness::start();
    let hostile =
        "<script>window.pwned=1</script>\u{202e}txt.exe\u{0}\u{1b}[31m\"'><img src=x onerror=alert(1)>";
    let writer = h.identity("svc:writer", "writer", &["*"]);
    let ev = json!({"action": format!("deploy.{hostile}"), "resource": {"type": "svc", "id": hostile},
                    "outcome": "success", "details": {"note": hostile}});
    let r = h.check(h.post("/v1/events").bearer(&writer).json(ev)).expect(201).json();
    let index = r["index"].as_u64().unwrap();
    let key = h.identity("svc:auditor", "auditor", &[]);
    let cookie = session(&h, &key);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let search = loop {
        let t = page(&h, &cookie, "/ui/search?actor=svc%3Awriter").expect(200).text();
        if t.contains(&format!("/ui/events/{index}")) || std::time::Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let event = page(&h, &cookie, &format!("/ui/events/{index}")).expect(200).text();
    for t in [&search, &event] {
        assert!(t.contains("&lt;script&gt;window.pwned=1&lt;/script&gt;"), "shown as text");
        assert!(!t.contains("<script>window"), "never as markup");
        assert!(!t.contains("<img"), "never as markup");
        assert!(t.contains("[U+202E]txt.exe"), "a right-to-left override is shown, not obeyed");
        assert!(!t.contains('\u{202e}') && !t.contains('\u{1b}') && !t.contains('\u{0}'));
        assert!(!regex_like_handler(t));
    }
    // The event page hands the browser the entry's exact bytes, its proof and checkpoint.
    let data = |name: &str| -> String {
        let at = event.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        event[at..at + event[at..].find('"').unwrap()].to_owned()
    };
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(b64.decode(data("data-entry")).unwrap(), h.entry(index));
    let note = String::from_utf8(b64.decode(data("data-checkpoint")).unwrap()).unwrap();
    assert!(note.starts_with(&format!("{}\n", h.vkey().split('+').next().unwrap())));
    assert_eq!(data("data-size"), h.size().to_string());
    // Bad indices are typed errors on a page.
    let a = page(&h, &cookie, "/ui/events/xyz");
    assert_eq!(a.status(), 400);
    assert_eq!(page(&h, &cookie, "/ui/events/999999").status(), 404);
    assert_eq!(page(&h, &cookie, "/ui/search?since=yesterday").status(), 400);
    assert_eq!(page(&h, &cookie, "/ui/search?bogus=1").status(), 400);
}

#[test]
fn the_selection_exports_as_jsonl_ocsf_and_cef() {
    let (h, indices, cookie) = writer_events_and_auditor(5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let jsonl = loop {
        let a = page(&h, &cookie, "/ui/export?format=jsonl&actor=svc%3Awriter").expect(200);
        let t = a.text();
        if t.lines().count() >= 5 || std::time::Instant::now() > deadline {
            assert_eq!(a.content_type(), "application/x-ndjson");
            assert!(a.header("content-disposition").unwrap().contains("graven-export.jsonl"));
            break t;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let lines: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5);
    let mut got: Vec<u64> = lines.iter().map(|l| l["graven"]["index"].as_u64().unwrap()).collect();
    got.reverse();
    assert_eq!(got, indices, "newest first");
    for l in &lines {
        let i = l["graven"]["index"].as_u64().unwrap();
        let leaf = h.entry(i);
        assert_eq!(l["graven"]["leaf_hash"], graven_core::leaf_hash(&leaf).to_base64().as_str());
        assert_eq!(serde_json::to_vec(&l["event"]).unwrap(), leaf, "the event as logged");
    }
    let cef = page(&h, &cookie, "/ui/export?format=cef&actor=svc%3Awriter").expect(200).text();
    assert_eq!(cef.lines().count(), 5);
    assert!(cef.lines().all(|l| l.starts_with("CEF:0|")), "{cef}");
    let ocsf = page(&h, &cookie, "/ui/export?format=ocsf&actor=svc%3Awriter").expect(200).text();
    let first: Value = serde_json::from_str(ocsf.lines().next().unwrap()).unwrap();
    assert_eq!(first["class_uid"], 6003);
    // Mistakes: a page naming them; no session: the sign-in page.
    assert_eq!(page(&h, &cookie, "/ui/export?format=pdf").status(), 400);
    assert_eq!(page(&h, &cookie, "/ui/export?since=never").status(), 400);
    assert_eq!(h.check(h.get("/ui/export?format=jsonl")).status(), 303);
}

#[test]
fn the_inventory_an_identity_and_a_credential_have_their_pages() {
    let h = Harness::start();
    let writer = h.identity("svc:writer", "writer", &["deploy.*"]);
    let other_key = h.new_key("svc:writer", json!({}));
    let mut by_other = Vec::new();
    for i in 0..4 {
        let key = if i % 2 == 0 { &writer } else { &other_key };
        let ev = json!({"action": format!("deploy.n{i}"), "outcome": "success"});
        let index =
            h.check(h.post("/v1/events").bearer(key).json(ev)).expect(201).json()["index"].as_u64().unwrap();
        if i % 2 == 1 {
            by_other.push(index);
        }
    }
    let auditor = h.identity("svc:auditor", "auditor", &[]);
    let cookie = session(&h, &auditor);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while h.check(h.get("/v1/events?limit=1").bearer(h.token())).expect(200).json()["indexed_size"].as_u64()
        < Some(h.size())
    {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The inventory, with its filters (a form's unset fields are empty) and downloads.
    let t = page(
        &h,
        &cookie,
        "/ui/identities?dormant_days=&status=&reported=&never_used=&kind=&key_older_than_days=",
    )
    .expect(200)
    .text();
    assert!(t.contains("/ui/identity?id=svc%3Awriter"), "{t}");
    assert!(t.contains("registered"));
    let t = page(&h, &cookie, "/ui/identities?never_used=true").expect(200).text();
    assert!(!t.contains("/ui/identity?id=svc%3Awriter"), "the writer used its keys");
    assert_eq!(page(&h, &cookie, "/ui/identities?dormant_days=x").status(), 400);
    let csv = page(&h, &cookie, "/ui/identities?format=csv").expect(200);
    assert!(csv.content_type().starts_with("text/csv"));
    assert!(csv.header("content-disposition").unwrap().contains("graven-inventory.csv"));
    assert!(csv.text().contains("svc:writer"));
    // One identity: facts, a histogram, its credentials, its events.
    let t = page(&h, &cookie, "/ui/identity?id=svc%3Awriter").expect(200).text();
    assert!(t.contains("<svg id=\"histogram\""));
    assert!(t.contains(">today: 4 events"), "today's bar: {t}");
    let cred = format!("key:{}", graven_server::testing::key_id(&other_key));
    assert!(t.contains(&graven_server::console::html::url(&cred)), "its credentials link to their pages");
    let t = page(&h, &cookie, "/ui/identity?id=svc%3Awriter&action=deploy.n2").expect(200).text();
    assert_eq!(t.matches("<tr><td><a href=\"/ui/events/").count(), 1, "the timeline's filter");
    // What one key did: only the events that carry it.
    let t = page(
        &h,
        &cookie,
        &format!("/ui/credential?id=svc%3Awriter&credential={}", graven_server::console::html::url(&cred)),
    )
    .expect(200)
    .text();
    assert!(t.contains("<dd id=\"uses\">2</dd>"), "{t}");
    let shown: Vec<u64> = t
        .match_indices("<tr><td><a href=\"/ui/events/")
        .map(|(i, m)| t[i + m.len()..].split('"').next().unwrap().parse().unwrap())
        .collect();
    let mut want = by_other.clone();
    want.reverse();
    assert_eq!(shown, want);
    assert_eq!(page(&h, &cookie, "/ui/identity").status(), 400);
    assert_eq!(page(&h, &cookie, "/ui/credential?id=svc%3Awriter").status(), 400);
}

#[test]
fn the_selection_exports_as_an_evidence_bundle_that_verifies_offline() {
    let (h, indices, cookie) = writer_events_and_auditor(3);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let report = loop {
        let a = page(&h, &cookie, "/ui/export?format=bundle&actor=svc%3Awriter").expect(200);
        assert_eq!(a.content_type(), "application/x-tar");
        let vkey: graven_core::note::VerifierKey = h.vkey().parse().unwrap();
        let report =
            graven_verify::bundle::verify_bundle(a.bytes(), Some(&vkey)).expect("the bundle verifies");
        if report.events.len() >= 3 || std::time::Instant::now() > deadline {
            break report;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(report.events, indices);
    // Tampered in transit: refused by the verifier.
    let a = page(&h, &cookie, "/ui/export?format=bundle&actor=svc%3Awriter").expect(200);
    let mut bytes = a.bytes().to_vec();
    let at = bytes.windows(9).position(|w| w == b"deploy.n1").unwrap();
    bytes[at + 8] = b'9';
    let vkey: graven_core::note::VerifierKey = h.vkey().parse().unwrap();
    assert!(graven_verify::bundle::verify_bundle(&bytes[..], Some(&vkey)).is_err());
}
