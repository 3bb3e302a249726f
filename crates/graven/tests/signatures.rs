//! RFC 9421 request signatures and client-signed events, end to end: the real binary on a free
//! loopback port; `graven verify` checks client signatures offline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Resp, Server, agent, enc, graven_as as graven, refused, start};
use ed25519_dalek::SigningKey;
use graven_auth::httpsig::{RequestParts, SignedHeaders, sign_request};
use serde_json::{Value, json};

/// The denied record's reason, when the rate limiter let one be written (2/s per address).
fn reason(d: Option<Value>, expected: &str) {
    if let Some(d) = d {
        assert_eq!(d["details"]["reason"], expected, "{d}");
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn kid(k: &SigningKey) -> String {
    graven_core::event_sig::key_id(k.verifying_key().as_bytes())
}

fn sign(k: &SigningKey, body: &[u8], created: i64, nonce: Option<&str>) -> SignedHeaders {
    let t = RequestParts { method: "POST", path: "/v1/events", ..Default::default() };
    sign_request(k, &kid(k), &t, body, created, nonce)
}

impl Server {
    /// POSTs `body` to /v1/events with the given signature headers (no Authorization).
    fn signed(&self, h: &SignedHeaders, body: &str) -> Resp {
        self.raw_signed(&h.content_digest, &h.signature_input, &h.signature, body)
    }

    fn raw_signed(&self, digest: &str, input: &str, sig: &str, body: &str) -> Resp {
        let mut r = agent()
            .post(&self.url("/v1/events"))
            .header("Content-Type", "application/json")
            .header("Content-Digest", digest)
            .header("Signature-Input", input)
            .header("Signature", sig)
            .send(body.as_bytes())
            .unwrap();
        let status = r.status().as_u16();
        Resp { status, body: r.body_mut().read_to_string().unwrap_or_default() }
    }

    fn add_public(&self, id: &str, k: &SigningKey) {
        let r = self.admin(
            "POST",
            &format!("/v1/identities/{}/public-keys", enc(id)),
            Some(json!({"public_key": B64.encode(k.verifying_key().as_bytes())})),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.json()["key_id"], kid(k));
    }
}

/// Signs `event` as a client does (version 2: a fresh id, signed now).
fn client_sign(k: &SigningKey, event: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = format!("t-{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    String::from_utf8(graven_core::event_sig::sign_event_v2(k, event.as_bytes(), &id, now_s()).unwrap())
        .unwrap()
}

#[test]
fn signed_requests_are_attributed_and_every_attack_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let writer_key = s.identity("svc:signer", "writer", &[]);
    let other_key = s.identity("svc:other", "writer", &[]);
    let k = SigningKey::from_bytes(&[11u8; 32]);
    let other = SigningKey::from_bytes(&[12u8; 32]);
    // Registered through the CLI, from a file: prints the key id; the event carries the key.
    let pk_file = tmp.path().join("signer.pub");
    std::fs::write(&pk_file, B64.encode(k.verifying_key().as_bytes())).unwrap();
    let out = graven(
        &[
            "key",
            "add-public",
            "svc:signer",
            "--public-key",
            pk_file.to_str().unwrap(),
            "--server",
            &s.url(""),
        ],
        &s.token,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), kid(&k));
    let reg = s.event(s.size() - 1);
    assert_eq!(reg["action"], "graven.key.add_public");
    assert_eq!(reg["details"]["public_key"], B64.encode(k.verifying_key().as_bytes()));
    s.add_public("svc:other", &other);
    // The same key cannot belong to two identities.
    let dup = s.admin(
        "POST",
        "/v1/identities/svc:other/public-keys",
        Some(json!({"public_key": B64.encode(k.verifying_key().as_bytes())})),
    );
    assert_eq!(dup.status, 409, "{}", dup.body);

    // Attribution: the actor comes from the verified key; the body's claim only under `claimed`.
    let body = r#"{"action":"deploy.create","actor":{"id":"root"}}"#;
    let h = sign(&k, body.as_bytes(), now_s(), None);
    let r = s.signed(&h, body);
    assert_eq!(r.status, 201, "{}", r.body);
    let e = s.event(r.json()["index"].as_u64().unwrap());
    assert_eq!(
        e["actor"],
        json!({"id": "svc:signer", "kind": "service_account", "auth": "http_signature", "credential": format!("pubkey:{}", kid(&k))})
    );
    assert_eq!(e["claimed"], json!({"actor": {"id": "root"}}));

    // A replayed signature.
    refused(&s, 401, || s.signed(&h, body));
    // Same body and second but a nonce: a distinct signature, accepted once.
    let hn = sign(&k, body.as_bytes(), now_s(), Some("n-1"));
    assert_eq!(s.signed(&hn, body).status, 201);
    // A new signature reusing the nonce is a replay.
    let hn2 = sign(&k, br#"{"action":"other"}"#, now_s(), Some("n-1"));
    refused(&s, 401, || s.signed(&hn2, r#"{"action":"other"}"#));
    // A tampered body: the digest no longer matches.
    let h2 = sign(&k, br#"{"action":"a"}"#, now_s(), None);
    let d = refused(&s, 401, || s.signed(&h2, r#"{"action":"b"}"#));
    reason(d, "digest-mismatch");
    // A tampered body with a matching digest: the signature covers the digest.
    let h3 = sign(&k, br#"{"action":"a3"}"#, now_s(), None);
    let forged_digest = graven_auth::httpsig::content_digest(br#"{"action":"b3"}"#);
    let d = refused(&s, 401, || {
        s.raw_signed(&forged_digest, &h3.signature_input, &h3.signature, r#"{"action":"b3"}"#)
    });
    reason(d, "bad-signature");
    // A tampered signature.
    let h4 = sign(&k, br#"{"action":"a4"}"#, now_s(), None);
    let mut raw = B64.decode(h4.signature.trim_start_matches("sig1=:").trim_end_matches(':')).unwrap();
    raw[5] ^= 1;
    let bad_sig = format!("sig1=:{}:", B64.encode(&raw));
    refused(&s, 401, || {
        s.raw_signed(&h4.content_digest, &h4.signature_input, &bad_sig, r#"{"action":"a4"}"#)
    });
    // Outside the time window, either side.
    for created in [now_s() - 1000, now_s() + 1000] {
        let h = sign(&k, br#"{"action":"late"}"#, created, None);
        let d = refused(&s, 401, || s.signed(&h, r#"{"action":"late"}"#));
        reason(d, "signature-expired");
    }
    // An unknown key id.
    let stranger = SigningKey::from_bytes(&[13u8; 32]);
    let h = sign(&stranger, br#"{"action":"x"}"#, now_s(), None);
    refused(&s, 401, || s.signed(&h, r#"{"action":"x"}"#));
    // A signature that does not cover content-digest.
    let input =
        format!("sig1=(\"@method\" \"@path\");created={};keyid=\"{}\";alg=\"ed25519\"", now_s(), kid(&k));
    let base = format!("\"@method\": POST\n\"@path\": /v1/events\n\"@signature-params\": {}", &input[5..]);
    let sig = ed25519_dalek::Signer::sign(&k, base.as_bytes());
    let partial = format!("sig1=:{}:", B64.encode(sig.to_bytes()));
    let digest = graven_auth::httpsig::content_digest(br#"{"action":"p"}"#);
    let d = refused(&s, 401, || s.raw_signed(&digest, &input, &partial, r#"{"action":"p"}"#));
    reason(d, "signature-coverage");
    // Malformed headers: 400, never a panic.
    for (inp, sg) in [
        ("garbage(", "sig1=:AA==:"),
        ("sig1=(\"@method\")", "sig1=\"x\""),
        (&"a".repeat(9000)[..], "x=:AA==:"),
    ] {
        refused(&s, 400, || s.raw_signed(&digest, inp, sg, r#"{"action":"p"}"#));
    }

    // Client-signed events: accepted over the exact body, stored in the leaf.
    let signed = client_sign(&k, r#"{"action":"deploy.create","resource":{"type":"k8s","id":"prod/pay"}}"#);
    let r = s.post_event(&writer_key, &signed);
    assert_eq!(r.status, 201, "{}", r.body);
    let e = s.event(r.json()["index"].as_u64().unwrap());
    assert_eq!(e["client_signature"]["key_id"], kid(&k));
    assert_eq!(e["client_signature"]["alg"], "ed25519");
    // Through `graven sign-event` and as an NDJSON batch (batch verification).
    let key_file = tmp.path().join("signer.key");
    std::fs::write(&key_file, B64.encode([11u8; 32])).unwrap();
    let mut lines = String::new();
    for i in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_graven"))
            .args(["sign-event", "--key", key_file.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!(r#"{{"action":"batch.{i}","actor":{{"id":"me"}}}}"#).as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        lines.push_str(String::from_utf8(out.stdout).unwrap().trim());
        lines.push('\n');
    }
    let mut resp = agent()
        .post(&s.url("/v1/events"))
        .header("Authorization", &format!("Bearer {writer_key}"))
        .header("Content-Type", "application/x-ndjson")
        .send(lines.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{}", resp.body_mut().read_to_string().unwrap());
    // A client signature over a different body: refused, nothing appended.
    let tampered = signed.replace("prod/pay", "prod/other");
    let d = refused(&s, 403, || s.post_event(&writer_key, &tampered));
    reason(d, "client-signature-invalid");
    // One bad line refuses the whole batch, naming the line.
    let bad_batch = format!("{lines}{tampered}\n");
    let before = s.size();
    let mut resp = agent()
        .post(&s.url("/v1/events"))
        .header("Authorization", &format!("Bearer {writer_key}"))
        .header("Content-Type", "application/x-ndjson")
        .send(bad_batch.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.body_mut().read_to_string().unwrap().contains("line 4"));
    assert!(s.size() <= before + 1);
    // A client signature by another identity's key.
    let by_other = client_sign(&other, r#"{"action":"deploy.create"}"#);
    let d = refused(&s, 403, || s.post_event(&writer_key, &by_other));
    reason(d, "client-signature-key");
    assert_eq!(s.post_event(&other_key, &by_other).status, 201, "its owner may submit it");

    // A revoked public key: request signatures and client signatures both refused.
    let r = s.admin("POST", &format!("/v1/identities/svc:signer/public-keys/{}/revoke", kid(&k)), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let h = sign(&k, br#"{"action":"after"}"#, now_s(), None);
    let d = refused(&s, 401, || s.signed(&h, r#"{"action":"after"}"#));
    reason(d, "key-revoked");
    let late = client_sign(&k, r#"{"action":"after"}"#);
    refused(&s, 403, || s.post_event(&writer_key, &late));

    // `graven verify` checks every client signature offline, from keys found in the log.
    let vkey = s.admin("GET", "/v1/log", None).json()["verifier_key"].as_str().unwrap().to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args([
            "verify",
            &s.url(""),
            "--vkey",
            &vkey,
            "--json",
            "--trust-dir",
            tmp.path().join("trust").to_str().unwrap(),
        ])
        .env("GRAVEN_TOKEN", &s.token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["client_signatures"], json!({"verified": 5, "not_checked": 0}), "{v}");
}

fn append(dir: &Path, key: &Path, lines: &[String]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["log", "append", "--dir", dir.to_str().unwrap(), "--key", key.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

/// An operator writing the log files directly cannot forge an identity's client signature:
/// the leaf is well-formed and in a valid tree, but `graven verify` names it.
#[test]
fn verify_names_the_entry_whose_client_signature_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let k = SigningKey::from_bytes(&[21u8; 32]);
    let reg = json!({"action": "graven.key.add_public", "outcome": "success",
        "actor": {"id": "admin", "kind": "service_account", "auth": "api_key", "credential": "key:1"},
        "resource": {"type": "graven.identity", "id": "svc:x"}, "logged_at": "2026-01-01T00:00:00.000000Z", "v": 1,
        "details": {"key_id": kid(&k), "alg": "ed25519", "public_key": B64.encode(k.verifying_key().as_bytes())}});
    let sealed = |client: &str| {
        let mut v: Value = serde_json::from_str(&client_sign(&k, client)).unwrap();
        v["actor"] = json!({"id": "svc:x", "kind": "bot", "auth": "api_key", "credential": "key:2"});
        v["logged_at"] = json!("2026-01-01T00:00:01.000000Z");
        v["v"] = json!(1);
        v
    };
    let honest = sealed(r#"{"action":"deploy","details":{"n":1}}"#);
    let mut forged = sealed(r#"{"action":"deploy","details":{"n":1}}"#);
    forged["details"]["n"] = json!(2);
    let run = |name: &str, lines: &[String]| -> Output {
        let dir = tmp.path().join(name);
        let key = tmp.path().join(format!("{name}.key"));
        let out = Command::new(env!("CARGO_BIN_EXE_graven"))
            .args(["keygen", "--origin", "example.com/log", "--out", key.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success());
        let vkey = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        append(&dir, &key, lines);
        Command::new(env!("CARGO_BIN_EXE_graven"))
            .args([
                "verify",
                dir.to_str().unwrap(),
                "--vkey",
                &vkey,
                "--trust-dir",
                tmp.path().join(format!("t-{name}")).to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let out = run("honest", &[reg.to_string(), honest.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("client signatures: 1 verified"));
    let out = run("forged", &[reg.to_string(), honest.to_string(), forged.to_string()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("entry 2:") && err.contains("does not verify"), "{err}");
    // A signature whose key no earlier event registers.
    let out = run("unregistered", &[honest.to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("entry 0:"));
}

/// A signature is checked before any of the body is read: a client that names somebody's key id
/// with a signature that does not verify gets 401 at once, even if it announces a large body and
/// never sends it (so it cannot make the server hold bodies in memory).
#[test]
fn a_bad_signature_is_refused_before_the_body_is_read() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    s.identity("svc:signer", "writer", &[]);
    let k = SigningKey::from_bytes(&[21u8; 32]);
    s.add_public("svc:signer", &k);
    // Signed by another key, but naming k's key id.
    let forger = SigningKey::from_bytes(&[22u8; 32]);
    let t = RequestParts { method: "POST", path: "/v1/events", ..Default::default() };
    let h = sign_request(&forger, &kid(&k), &t, b"{}", now_s(), Some("n-1"));
    let before = s.size();
    let mut conn = std::net::TcpStream::connect(&s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        conn,
        "POST /v1/events HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\nContent-Digest: {}\r\nSignature-Input: {}\r\nSignature: {}\r\n\r\n",
        s.addr, h.content_digest, h.signature_input, h.signature
    )
    .unwrap();
    let started = Instant::now();
    let mut head = [0u8; 64];
    let n = conn.read(&mut head).unwrap();
    let text = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "answered only after {:?}", started.elapsed());
    // Only the denied record may have been appended.
    assert!(s.size() <= before + 1);
}
