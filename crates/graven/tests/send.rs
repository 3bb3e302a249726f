//! `graven send` against a real server: an event from flags or a batch from stdin is logged and
//! each receipt is checked against the log's key (exit 0, the receipts on stdout); anything
//! that does not show the events logged fails the step: a refusal, a batch with one bad line
//! (and nothing appended), a stopped server, the wrong key, and a server whose receipt does not
//! check out (its proof altered).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{Server, start};
use serde_json::Value;

fn send(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_graven"))
        .arg("send")
        .args(args)
        .env_remove("GRAVEN_SERVER")
        .env_remove("GRAVEN_TOKEN")
        .env_remove("GRAVEN_VKEY")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn receipts(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn failed(out: &Output, needle: &str) {
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {}", String::from_utf8_lossy(&out.stdout));
    assert!(e.contains(needle), "{needle:?} not in: {e}");
    assert!(out.stdout.is_empty(), "a failed send prints no receipt");
}

fn setup() -> (tempfile::TempDir, Server, String) {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("d"), &["--origin", "send.example/log"]);
    let writer = s.identity("ci:deployer", "writer", &["deploy.*"]);
    (tmp, s, writer)
}

#[test]
fn an_event_from_flags_is_logged_and_its_receipt_checked() {
    let (_tmp, s, writer) = setup();
    let url = format!("http://{}", s.addr);
    let env = [
        ("GRAVEN_SERVER", url.as_str()),
        ("GRAVEN_TOKEN", writer.as_str()),
        ("GRAVEN_VKEY", s.vkey.as_str()),
    ];
    let out = send(
        &[
            "--action",
            "deploy.create",
            "--resource",
            "service:payments",
            "--outcome",
            "success",
            "--detail",
            "env=prod",
            "--detail",
            "sha=abc123",
        ],
        b"",
        &env,
    );
    let r = receipts(&out);
    assert_eq!(r.len(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("receipt checked against send.example/log+"));
    let e = s.event(r[0]["index"].as_u64().unwrap());
    assert_eq!(e["action"], "deploy.create");
    assert_eq!(e["resource"], serde_json::json!({"type": "service", "id": "payments"}));
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["details"], serde_json::json!({"env": "prod", "sha": "abc123"}));
    assert_eq!(e["actor"]["id"], "ci:deployer");
    assert_eq!(r[0]["leaf_hash"].as_str().unwrap().len(), 44);

    // A batch from stdin: every event logged, one receipt each.
    let before = s.size();
    let out = send(&["--vkey", &s.vkey], b"{\"action\":\"deploy.a\"}\n\n{\"action\":\"deploy.b\"}\n", &env);
    let r = receipts(&out);
    assert_eq!(r.iter().map(|r| r["index"].as_u64().unwrap()).collect::<Vec<_>>(), [before, before + 1]);
    assert_eq!(s.event(before + 1)["action"], "deploy.b");
}

#[test]
fn whatever_does_not_show_the_event_logged_fails_the_step() {
    let (_tmp, s, writer) = setup();
    let url = format!("http://{}", s.addr);
    let env = [
        ("GRAVEN_SERVER", url.as_str()),
        ("GRAVEN_TOKEN", writer.as_str()),
        ("GRAVEN_VKEY", s.vkey.as_str()),
    ];
    let size = s.size();
    // Refused by the server: an action the identity may not take.
    failed(&send(&["--action", "secret.read"], b"", &env), "not logged: the server answered 403");
    // A batch with one bad line: refused whole, nothing appended.
    failed(
        &send(&[], b"{\"action\":\"deploy.a\"}\n{\"action\":\"\"}\n", &env),
        "not logged: the server answered 400",
    );
    // Not JSON: refused before anything is sent.
    failed(&send(&[], b"{\"action\":\"deploy.a\"}\nnot json\n", &env), "stdin line 2: not a JSON object");
    failed(&send(&[], b"", &env), "nothing to send");
    assert_eq!(s.size(), size + 1, "only the refusal record was appended");
    // No key to check against, or the wrong one (same name, another key).
    let no_key = [("GRAVEN_SERVER", url.as_str()), ("GRAVEN_TOKEN", writer.as_str())];
    failed(&send(&["--action", "deploy.x"], b"", &no_key), "--vkey (or GRAVEN_VKEY) is required");
    let other =
        graven_core::note::SignerKey::from_seed("send.example/log", [7; 32]).unwrap().verifier().to_string();
    failed(&send(&["--action", "deploy.x", "--vkey", &other], b"", &env), "does not check out");
    // No credential; a stopped server.
    let no_token = [("GRAVEN_SERVER", url.as_str()), ("GRAVEN_VKEY", s.vkey.as_str())];
    failed(&send(&["--action", "deploy.x"], b"", &no_token), "no credential");
    failed(
        &send(&["--action", "deploy.x", "--oidc-token-env", "NO_SUCH_VAR_HERE"], b"", &no_token),
        "NO_SUCH_VAR_HERE",
    );
    let dead = format!("http://{}", graven_testkit::net::dead_addr());
    failed(&send(&["--action", "deploy.x", "--server", &dead], b"", &env), "nothing answers at");
}

#[test]
fn a_receipt_that_does_not_check_out_fails_the_step() {
    let (_tmp, s, writer) = setup();
    // A real receipt, served back by a server that alters it.
    let genuine = s.post_event(&writer, r#"{"action":"deploy.create"}"#);
    assert_eq!(genuine.status, 201);
    type Change = Box<dyn Fn(&mut Value)>;
    let tampered: Vec<(&str, Change)> = vec![
        (
            "a proof hash changed",
            Box::new(|r: &mut Value| {
                r["inclusion_proof"][0] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()
            }),
        ),
        (
            "another leaf",
            Box::new(|r: &mut Value| r["leaf_hash"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
        ),
        ("another index", Box::new(|r: &mut Value| r["index"] = (r["index"].as_u64().unwrap() ^ 1).into())),
        ("a size that is not the checkpoint's", Box::new(|r: &mut Value| r["tree_size"] = 1000.into())),
        (
            "the checkpoint's signature broken",
            Box::new(|r: &mut Value| {
                let cp = r["checkpoint"].as_str().unwrap().replacen('\n', "\n9", 1);
                r["checkpoint"] = cp.into();
            }),
        ),
    ];
    for (what, change) in tampered {
        let mut r: Value = serde_json::from_str(&genuine.body).unwrap();
        change(&mut r);
        let body = r.to_string();
        let fake = graven_testkit::net::serve(move |_| {
            graven_testkit::net::Response::status(201).body(body.clone())
        });
        let env = [("GRAVEN_TOKEN", writer.as_str()), ("GRAVEN_VKEY", s.vkey.as_str())];
        let out = send(&["--action", "deploy.create", "--server", &fake.url()], b"", &env);
        failed(&out, "does not check out");
        eprintln!("refused, {what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    // And the genuine one, served the same way, passes: the fake server is not the reason.
    let body = genuine.body.clone();
    let fake =
        graven_testkit::net::serve(move |_| graven_testkit::net::Response::status(201).body(body.clone()));
    let env = [("GRAVEN_TOKEN", writer.as_str()), ("GRAVEN_VKEY", s.vkey.as_str())];
    assert_eq!(receipts(&send(&["--action", "deploy.create", "--server", &fake.url()], b"", &env)).len(), 1);
}

/// `graven verify` of a receipt file, offline: one event's receipts as `graven send` printed
/// them, a batch's range receipt; altered or checked against another key, they fail.
#[test]
fn kept_receipts_verify_offline_and_altered_ones_do_not() {
    let (tmp, s, writer) = setup();
    let url = format!("http://{}", s.addr);
    let env = [
        ("GRAVEN_SERVER", url.as_str()),
        ("GRAVEN_TOKEN", writer.as_str()),
        ("GRAVEN_VKEY", s.vkey.as_str()),
    ];
    let out = send(&[], b"{\"action\":\"deploy.a\"}\n{\"action\":\"deploy.b\"}\n", &env);
    assert!(out.status.success());
    let each = tmp.path().join("receipts.jsonl");
    std::fs::write(&each, &out.stdout).unwrap();
    let mut r = common::agent()
        .post(format!("{url}/v1/events?receipt=range"))
        .header("Authorization", &format!("Bearer {writer}"))
        .header("Content-Type", "application/x-ndjson")
        .send(&b"{\"action\":\"deploy.c\"}\n{\"action\":\"deploy.d\"}\n{\"action\":\"deploy.e\"}\n"[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let range_text = r.body_mut().read_to_string().unwrap();
    let range = tmp.path().join("batch-receipt.json");
    std::fs::write(&range, &range_text).unwrap();

    let verify = |file: &std::path::Path, vkey: &str| {
        Command::new(env!("CARGO_BIN_EXE_graven"))
            .args(["verify", file.to_str().unwrap(), "--vkey", vkey, "--json"])
            .output()
            .unwrap()
    };
    for (file, events) in [(&each, 2), (&range, 3)] {
        let out = verify(file, &s.vkey);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((v["ok"].as_bool(), v["events"].as_u64()), (Some(true), Some(events)), "{v}");
    }
    // Another log's key with the same name: not shown logged.
    let other = tmp.path().join("other.key");
    let other_vkey = common::keygen(&other, "send.example/log");
    for file in [&each, &range] {
        let out = verify(file, &other_vkey);
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // A leaf hash swapped for another event's: refused.
    let mut v: Value = serde_json::from_str(&range_text).unwrap();
    let first = v["leaf_hashes"][0].clone();
    v["leaf_hashes"][0] = v["leaf_hashes"][1].clone();
    v["leaf_hashes"][1] = first;
    std::fs::write(&range, v.to_string()).unwrap();
    let out = verify(&range, &s.vkey);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not check out"));
}
