//! Client signatures through the CLI: `graven key add-public` and `graven sign-event` against
//! the real binary's server, and `graven verify` checking client signatures offline. The API's
//! own handling of RFC 9421 requests and client-signed events is tested in process:
//! `crates/graven-server/tests/api/signatures.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{agent, graven_as as graven, start};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn kid(k: &SigningKey) -> String {
    graven_core::event_sig::key_id(k.verifying_key().as_bytes())
}

/// Signs `event` as a client does (version 2: a fresh id, signed now).
fn client_sign(k: &SigningKey, event: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = format!("t-{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    String::from_utf8(graven_core::event_sig::sign_event_v2(k, event.as_bytes(), &id, now_s()).unwrap())
        .unwrap()
}

/// `graven key add-public` registers a key from a file and prints its id; `graven sign-event`
/// signs events the server accepts (an NDJSON batch); `graven verify` of the live server checks
/// every client signature from the keys the log registers.
#[test]
fn the_cli_registers_keys_and_signs_events_the_server_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let writer_key = s.identity("svc:signer", "writer", &[]);
    let k = SigningKey::from_bytes(&[11u8; 32]);
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

    // One event signed in the test, three by `graven sign-event`, sent as one NDJSON batch.
    let signed = client_sign(&k, r#"{"action":"deploy.create","resource":{"type":"k8s","id":"prod/pay"}}"#);
    assert_eq!(s.post_event(&writer_key, &signed).status, 201);
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
    assert_eq!(v["client_signatures"], json!({"verified": 4, "not_checked": 0}), "{v}");
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
        let vkey = common::keygen(&key, "example.com/log");
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
