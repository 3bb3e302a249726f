//! The attacks of the adversarial review (docs/security.md), each against the real binary on
//! a free loopback port. Every test here failed on the code before its fix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Resp, Server, start};
use ed25519_dalek::SigningKey;
use graven_auth::httpsig::{RequestParts, SignedHeaders, sign_request};
use serde_json::{Value, json};

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn kid(k: &SigningKey) -> String {
    graven_core::event_sig::key_id(k.verifying_key().as_bytes())
}

/// RFC 9421 headers for `POST /v1/events` signed by `k`, naming `keyid`.
fn http_sign(k: &SigningKey, keyid: &str, body: &[u8], created: i64) -> SignedHeaders {
    let t = RequestParts { method: "POST", path: "/v1/events", ..Default::default() };
    sign_request(k, keyid, &t, body, created, None)
}

fn post_signed(s: &Server, digest: &str, h: &SignedHeaders, body: &str) -> Resp {
    let mut r = common::agent()
        .post(&s.url("/v1/events"))
        .header("Content-Type", "application/json")
        .header("Content-Digest", digest)
        .header("Signature-Input", &h.signature_input)
        .header("Signature", &h.signature)
        .send(body.as_bytes())
        .unwrap();
    Resp { status: r.status().as_u16(), body: r.body_mut().read_to_string().unwrap_or_default() }
}

fn add_public(s: &Server, id: &str, k: &SigningKey) {
    let r = s.admin(
        "POST",
        &format!("/v1/identities/{}/public-keys", common::enc(id)),
        Some(json!({"public_key": B64.encode(k.verifying_key().as_bytes())})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Every stored leaf parses with the strict parser the verifier uses.
fn every_leaf_is_strict_json(s: &Server) {
    for (i, e) in s.all_events().iter().enumerate() {
        graven_core::jcs::parse(e.as_bytes()).unwrap_or_else(|err| panic!("leaf {i} does not parse: {err}"));
    }
}

fn verify_ok(s: &Server) -> String {
    let log = s.data.join("log");
    let trust = s.data.join("trust-test");
    let args = ["verify", log.to_str().unwrap(), "--vkey", &s.vkey, "--trust-dir", trust.to_str().unwrap()];
    let out = common::graven_as(&args, "");
    assert!(
        out.status.success(),
        "graven verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn post_ndjson(s: &Server, token: &str, body: &str) -> common::Resp {
    let mut r = common::agent()
        .post(&s.url("/v1/events"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/x-ndjson")
        .send(body.as_bytes())
        .unwrap();
    common::Resp { status: r.status().as_u16(), body: r.body_mut().read_to_string().unwrap_or_default() }
}

/// Review item 1: a writer posting a `graven.key.add_public` with a garbage key made the log
/// fail verification forever. The `graven.` namespace is the server's own.
#[test]
fn a_writer_cannot_forge_registry_events() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let writer = s.identity("svc:writer", "writer", &[]);
    let forged = [
        json!({"action":"graven.key.add_public","outcome":"success","resource":{"type":"graven.identity","id":"x"},"details":{"key_id":"x","public_key":"garbage"}}),
        json!({"action":"graven.key.revoke_public","outcome":"success","resource":{"type":"graven.identity","id":"svc:victim"},"details":{"key_id":"0123456789abcdef"}}),
        json!({"action":"graven.identity.revoke","outcome":"success","resource":{"type":"graven.identity","id":"admin"}}),
        json!({"action":"Graven.Key.Add_Public","outcome":"success","resource":{"type":"graven.identity","id":"x"}}),
    ];
    let before = s.size();
    for f in &forged {
        for token in [&writer, &s.token] {
            let r = s.post_event(token, &f.to_string());
            assert_eq!(r.status, 400, "{f}: {}", r.body);
            let p = r.json();
            assert_eq!(p["type"].as_str().unwrap().rsplit('/').next(), Some("reserved-action"), "{p}");
            assert!(p["detail"].as_str().unwrap().contains("nothing was appended"), "{p}");
        }
    }
    // In a batch: the whole batch is refused, naming the line.
    let ok = json!({"action":"deploy.start"}).to_string();
    let r = post_ndjson(&s, &writer, &format!("{ok}\n{}\n{ok}\n", forged[0]));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["detail"].as_str().unwrap().starts_with("line 2:"), "{}", r.body);
    assert_eq!(s.size(), before, "nothing was appended");
    // The log still verifies, and a writer's own actions still go in.
    assert_eq!(s.post_event(&writer, &ok).status, 201);
    verify_ok(&s);
}

/// Review item 2: a body whose `actor` nests 63 levels was accepted, stored 64 deep under
/// `claimed` (one past the parser's limit) and then skipped by the verifier.
#[test]
fn the_server_never_writes_a_leaf_its_verifier_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let writer = s.identity("svc:writer", "writer", &[]);
    let nested = |d: usize| "[".repeat(d) + &"]".repeat(d);
    let before = s.size();
    let deep = format!(r#"{{"action":"deploy","actor":{}}}"#, nested(63));
    let r = s.post_event(&writer, &deep);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["detail"].as_str().unwrap().contains("`actor`"), "{}", r.body);
    assert_eq!(s.size(), before);
    // One level less is stored, and reads back.
    let fits = format!(r#"{{"action":"deploy","actor":{}}}"#, nested(62));
    assert_eq!(s.post_event(&writer, &fits).status, 201);
    let stored: Value = serde_json::from_str(&s.all_events()[before as usize]).unwrap();
    assert_eq!(stored["action"], "deploy");
    every_leaf_is_strict_json(&s);
    verify_ok(&s);
}

/// Review item 3: a revoked (or rotated-out) bootstrap key came back as an active admin key on
/// restart, once 32 newer keys had pushed its record out, with no event in the log.
#[test]
fn a_revoked_or_rotated_out_bootstrap_key_never_comes_back() {
    for rotate in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let s = start(&data, &[]);
        let ops = s.identity("ops", "admin", &[]);
        let bootstrap = s.token.clone();
        if rotate {
            // Rotations with no overlap: each one ends the previous key at once.
            for _ in 0..33 {
                let r = s.req(
                    "POST",
                    "/v1/identities/admin/keys/rotate",
                    Some(&ops),
                    Some(r#"{"overlap_seconds":0}"#),
                );
                assert_eq!(r.status, 201, "{}", r.body);
            }
        } else {
            let kid = common::key_id(&bootstrap);
            let r = s.req("POST", &format!("/v1/identities/admin/keys/{kid}/revoke"), Some(&ops), Some("{}"));
            assert_eq!(r.status, 200, "{}", r.body);
            for _ in 0..32 {
                let r = s.req("POST", "/v1/identities/admin/keys", Some(&ops), Some(r#"{"ttl_seconds":1}"#));
                assert_eq!(r.status, 201, "{}", r.body);
            }
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        assert_eq!(s.req("GET", "/v1/log", Some(&bootstrap), None).status, 401);
        let size = s.req("GET", "/v1/log", Some(&ops), None).json()["tree_size"].clone();
        drop(s);
        let s = start(&data, &[]);
        assert_eq!(
            s.req("GET", "/v1/log", Some(&ops), None).json()["tree_size"],
            size,
            "start-up changed nothing"
        );
        assert_eq!(s.req("GET", "/v1/log", Some(&bootstrap), None).status, 401, "the old key stays dead");
        assert!(
            s.banner.iter().any(|l| l.contains("admin.token") && l.contains("does not work")),
            "{:?}",
            s.banner
        );
        // Start-up's own registry change is in the log, attributed to the server.
        let first: Vec<Value> = (0..2)
            .map(|i| s.req("GET", &format!("/v1/events/{i}"), Some(&ops), None).json()["event"].clone())
            .collect();
        assert_eq!(first[0]["action"], "graven.identity.create", "{}", first[0]);
        assert_eq!(first[0]["resource"]["id"], "admin");
        assert_eq!(first[0]["details"]["role"], "admin");
        assert_eq!(first[1]["action"], "graven.key.create", "{}", first[1]);
        assert_eq!(first[1]["details"]["key_id"], common::key_id(&bootstrap));
        for e in &first {
            assert_eq!(e["actor"]["id"], "graven:server", "{e}");
        }

        // Deleting the token file does not mint a new admin key either.
        let size = s.req("GET", "/v1/log", Some(&ops), None).json()["tree_size"].clone();
        drop(s);
        std::fs::remove_file(data.join("admin.token")).unwrap();
        let s = common::start_env(&data, &[], &[]);
        assert!(!data.join("admin.token").exists());
        assert_eq!(s.req("GET", "/v1/log", Some(&ops), None).json()["tree_size"], size);
    }
}

/// Review item 4: a signed request naming a real identity's public key id, with a bad
/// signature, an expired `created` or a body that is not the one signed, left a denied record
/// whose actor was that identity. Until a credential is verified, the actor is the server.
#[test]
fn a_refused_signed_request_is_never_attributed_to_the_key_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    s.identity("svc:victim", "writer", &[]);
    let victim = SigningKey::from_bytes(&[31u8; 32]);
    let attacker = SigningKey::from_bytes(&[32u8; 32]);
    add_public(&s, "svc:victim", &victim);
    let body = r#"{"action":"deploy.delete"}"#;
    let vk = kid(&victim);
    type Attempt<'a> = Box<dyn Fn() -> Resp + 'a>;
    let cases: Vec<(&str, Attempt)> = vec![
        (
            "bad-signature",
            Box::new(|| {
                let h = http_sign(&attacker, &vk, body.as_bytes(), now_s());
                post_signed(&s, &h.content_digest, &h, body)
            }),
        ),
        (
            "signature-expired",
            Box::new(|| {
                let h = http_sign(&attacker, &vk, body.as_bytes(), now_s() - 3600);
                post_signed(&s, &h.content_digest, &h, body)
            }),
        ),
        (
            "digest-mismatch",
            Box::new(|| {
                // Genuinely signed by the victim, over another body's digest header.
                let h = http_sign(&victim, &vk, br#"{"action":"deploy.read"}"#, now_s());
                post_signed(&s, &h.content_digest, &h, body)
            }),
        ),
    ];
    for (reason, send) in cases {
        // One second apart: the per-address limit on denied records is 2/s.
        std::thread::sleep(std::time::Duration::from_millis(600));
        let d = common::refused(&s, 401, send).unwrap_or_else(|| panic!("{reason}: no denied record"));
        assert_eq!(d["details"]["reason"], reason, "{d}");
        assert_eq!(d["actor"]["id"], "graven:server", "{reason}: {d}");
        assert_eq!(d["claimed"]["actor"]["id"], "svc:victim", "{reason}: {d}");
        assert_eq!(d["claimed"]["actor"]["credential"], format!("key:{vk}"), "{reason}: {d}");
    }
    // The victim's genuine request is still the victim's.
    let h = http_sign(&victim, &vk, body.as_bytes(), now_s());
    let r = post_signed(&s, &h.content_digest, &h, body);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(s.event(r.json()["index"].as_u64().unwrap())["actor"]["id"], "svc:victim");
}

/// Sends `GET /v1/log` with a made-up API key from the loopback address `from` (any address in
/// 127.0.0.0/8 is local on Linux), and returns the status code.
fn bad_key_from(s: &Server, from: std::net::Ipv4Addr) -> u16 {
    use std::io::{Read, Write};
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&std::net::SocketAddr::from((from, 0)).into()).unwrap();
    let server: std::net::SocketAddr = s.addr.parse().unwrap();
    sock.connect(&server.into()).unwrap();
    let mut stream: std::net::TcpStream = sock.into();
    let key = format!("gvn_{}_{}", "0123456789abcdef", "A".repeat(43));
    write!(
        stream,
        "GET /v1/log HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n",
        s.addr
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Review item 7: a flood of bad credentials from many addresses used up the one budget for
/// denied records, so a real brute force from one address left no trace. What the limiter drops
/// is summed up in the log, by address and reason, and the brute force tops that summary.
#[test]
fn a_brute_force_hidden_in_a_flood_still_shows_in_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = start(&data, &[]);
    let size = s.size();
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 200);
    for round in 0..6u8 {
        for n in 1..=60u8 {
            assert_eq!(bad_key_from(&s, std::net::Ipv4Addr::new(127, 0, 1 + round % 2, n)), 401);
            if n % 3 == 0 {
                assert_eq!(bad_key_from(&s, attacker), 401);
            }
        }
    }
    // A clean stop writes the summary of what was dropped since the last one.
    let pid = s.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut s = s;
    s.child.wait().unwrap();
    drop(s);
    let s = start(&data, &[]);
    let summaries: Vec<Value> = (size..s.size())
        .map(|i| s.event(i))
        .filter(|e| e["action"] == "graven.access.denied_summary")
        .collect();
    assert!(!summaries.is_empty(), "no summary of dropped denied records");
    let mut dropped = 0;
    let mut by_source = std::collections::BTreeMap::<String, u64>::new();
    for sum in &summaries {
        assert_eq!(sum["actor"]["id"], "graven:server", "{sum}");
        dropped += sum["details"]["dropped"].as_u64().unwrap();
        for x in sum["details"]["sources"].as_array().unwrap() {
            assert_eq!(x["reasons"]["invalid-credential"], x["dropped"], "{sum}");
            *by_source.entry(x["ip"].as_str().unwrap().to_owned()).or_default() +=
                x["dropped"].as_u64().unwrap();
        }
    }
    let attacker_drops = by_source["127.0.0.200"];
    let recorded =
        (size..s.size()).filter(|&i| s.event(i)["action"] == "graven.access.denied").count() as u64;
    // 480 refusals: each one either has its own record or is counted in a summary.
    assert_eq!(recorded + dropped, 480, "records {recorded}, dropped {dropped}");
    assert!(
        attacker_drops >= 100,
        "the brute force's 120 refusals are accounted for: {attacker_drops} dropped"
    );
    let last = summaries.last().unwrap();
    assert_eq!(
        last["details"]["sources"][0]["ip"], "127.0.0.200",
        "the brute force tops the summary: {last}"
    );
}

fn client_sign_v2(k: &SigningKey, event: &str, id: &str, signed_at: i64) -> String {
    String::from_utf8(graven_core::event_sig::sign_event_v2(k, event.as_bytes(), id, signed_at).unwrap())
        .unwrap()
}

/// Review item 5: a client-signed event could be sent again (by its signer, or by whoever got a
/// key for its identity) and was logged again. A signature now carries a one-time id and a
/// signing time; the server logs each (key, id) once, refuses a signing time outside its
/// window, and remembers the ids across restarts (it rebuilds them from the log itself).
#[test]
fn a_client_signed_event_is_accepted_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = start(&data, &[]);
    let writer = s.identity("svc:signer", "writer", &[]);
    let k = SigningKey::from_bytes(&[41u8; 32]);
    add_public(&s, "svc:signer", &k);
    let event = r#"{"action":"payment.refund","resource":{"type":"order","id":"o-7"}}"#;
    let signed = client_sign_v2(&k, event, "refund-o-7-1", now_s());
    let r = s.post_event(&writer, &signed);
    assert_eq!(r.status, 201, "{}", r.body);
    let logged = s.event(r.json()["index"].as_u64().unwrap());
    assert_eq!(logged["client_signature"]["id"], "refund-o-7-1");

    // The same signed event again: refused, nothing appended but (perhaps) the denied record.
    let d = common::refused(&s, 409, || s.post_event(&writer, &signed));
    if let Some(d) = d {
        assert_eq!(d["details"]["reason"], "client-signature-replayed", "{d}");
    }
    // The same id on another event is the same one-time id.
    let other = client_sign_v2(
        &k,
        r#"{"action":"payment.refund","resource":{"type":"order","id":"o-8"}}"#,
        "refund-o-7-1",
        now_s(),
    );
    assert_eq!(s.post_event(&writer, &other).status, 409);
    // Twice in one batch: the whole batch is refused, naming the line.
    let a = client_sign_v2(&k, event, "batch-a", now_s());
    let r = post_ndjson(&s, &writer, &format!("{a}\n{a}\n"));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["detail"].as_str().unwrap().starts_with("line 2:"), "{}", r.body);
    // Racing copies: exactly one is logged.
    let racing = client_sign_v2(&k, event, "race-1", now_s());
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8).map(|_| sc.spawn(|| s.post_event(&writer, &racing).status)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|&&c| c == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|&c| c == 201 || c == 409), "{statuses:?}");
    // Outside the window (±300 s by default): refused, so an old signed event cannot be
    // replayed once its id is forgotten.
    for t in [now_s() - 3600, now_s() + 3600] {
        let stale = client_sign_v2(&k, event, &format!("stale-{t}"), t);
        let r = s.post_event(&writer, &stale);
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("client-signature-stale"), "{}", r.body);
    }
    // After a crash and a restart, the ids are still known.
    let mut s = s;
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    drop(s);
    let s = start(&data, &[]);
    assert_eq!(s.post_event(&writer, &signed).status, 409, "a replay after a restart");
    assert_eq!(s.post_event(&writer, &racing).status, 409);
    let fresh = client_sign_v2(&k, event, "refund-o-7-2", now_s());
    assert_eq!(s.post_event(&writer, &fresh).status, 201);
    verify_ok(&s);
}

/// A version 1 signature has no id and no signing time, so it could be replayed at will: the
/// server no longer takes one (verifiers still check those already in a log).
#[test]
fn a_version_1_client_signature_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let writer = s.identity("svc:signer", "writer", &[]);
    let k = SigningKey::from_bytes(&[42u8; 32]);
    add_public(&s, "svc:signer", &k);
    let v1 = String::from_utf8(graven_core::event_sig::sign_event(&k, br#"{"action":"deploy"}"#).unwrap())
        .unwrap();
    let before = s.size();
    let r = s.post_event(&writer, &v1);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("client-signature-version") && r.body.contains("version 2"), "{}", r.body);
    assert!(s.size() <= before + 1, "nothing but a denied record");
}
