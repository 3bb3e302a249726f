//! Graven as a witnessed log, end to end with the real binary: `graven serve --witness-policy`
//! with three `graven witness` processes on loopback (quorum two of three). `/checkpoint`
//! carries the cosignatures, `?witnessed=true` receipts and proofs meet the policy (checked with
//! graven-core's policy verifier, and the inclusion proof against the cosigned root), `/v1/log`
//! and `/metrics` show each witness, dead witnesses never block plain ingest and make
//! `?witnessed=true` a 503 that appends nothing, and a restarted log learns each witness's
//! size from its 409.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, Witness, spawn_witness as witness, start};
use graven_core::hash::{Hash, LeafIndex, TreeSize};
use graven_core::note::SignerKey;
use graven_core::policy::{ParseOptions, Policy};

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn b64(s: &str) -> Hash {
    Hash::from_base64(s).unwrap()
}

/// Checks a receipt or witnessed proof: the checkpoint meets the policy, and the inclusion
/// proof leads from the leaf to its root.
fn check_witnessed(
    policy: &Policy,
    checkpoint: &str,
    index: u64,
    tree_size: u64,
    leaf: &str,
    proof: &[serde_json::Value],
) {
    let w = policy.verify(checkpoint.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{checkpoint}"));
    assert!(w.cosigned().len() >= 2, "{:?}", w.cosigned());
    let body = w.checkpoint().checkpoint();
    assert_eq!(body.size(), TreeSize(tree_size));
    let proof: Vec<Hash> = proof.iter().map(|p| b64(p.as_str().unwrap())).collect();
    let proof: Vec<&[u8; 32]> = proof.iter().map(|h| h.as_bytes()).collect();
    graven_core::merkle::verify_inclusion(
        &b64(leaf),
        LeafIndex(index),
        TreeSize(tree_size),
        &proof,
        &body.root(),
    )
    .unwrap();
}

#[test]
fn a_witnessed_log_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("log");
    std::fs::create_dir_all(&data).unwrap();
    let key = SignerKey::from_seed("witnessed.example/log", [5; 32]).unwrap();
    std::fs::write(data.join("log.key"), key.to_secret_string()).unwrap();
    let log_flag = format!("witnessed.example/log={}", key.verifier());
    let mut ws: Vec<Witness> = (1..=3)
        .map(|n| {
            let d = tmp.path().join(format!("w{n}"));
            std::fs::create_dir_all(&d).unwrap();
            witness(&d, &format!("w{n}.example"), &log_flag)
        })
        .collect();
    let mut text = format!("log {}\n", key.verifier());
    for (n, w) in ws.iter().enumerate() {
        text.push_str(&format!("witness w{} {} http://{}\n", n + 1, w.vkey, w.addr));
    }
    text.push_str("group two-of-three 2 w1 w2 w3\nquorum two-of-three\n");
    let policy_file = tmp.path().join("witnesses.policy");
    std::fs::write(&policy_file, &text).unwrap();
    let policy = Policy::parse(text.as_bytes(), ParseOptions::default()).unwrap();

    let s: Server = start(&data, &["--witness-policy", policy_file.to_str().unwrap()]);
    assert!(s.banner.iter().any(|l| l.starts_with("witnesses (policy ")), "{:?}", s.banner);
    let writer = s.identity("ci-bot", "writer", &["deploy.*"]);

    // A plain append: its receipt's checkpoint is not yet witnessed.
    let r = s.post_event(&writer, r#"{"action":"deploy.start"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["witnessed"], false);

    // /checkpoint soon carries a quorum of cosignatures, after the log's own signature.
    wait_until("a witnessed /checkpoint", 30, || {
        let cp = s.req("GET", "/checkpoint", Some(&s.token), None).body;
        policy.verify(cp.as_bytes()).is_ok_and(|w| w.checkpoint().size().0 == s.size())
    });

    // ?witnessed=true: the receipt is against a witnessed checkpoint.
    let r = s.req("POST", "/v1/events?witnessed=true", Some(&writer), Some(r#"{"action":"deploy.finish"}"#));
    assert_eq!(r.status, 201, "{}", r.body);
    let j = r.json();
    assert_eq!(j["witnessed"], true, "{j}");
    let index = j["index"].as_u64().unwrap();
    check_witnessed(
        &policy,
        j["checkpoint"].as_str().unwrap(),
        index,
        j["tree_size"].as_u64().unwrap(),
        j["leaf_hash"].as_str().unwrap(),
        j["inclusion_proof"].as_array().unwrap(),
    );

    // A witnessed proof for an index already held.
    let p = s.admin("GET", "/v1/proofs/inclusion?index=0&witnessed=true", None);
    assert_eq!(p.status, 200, "{}", p.body);
    let j = p.json();
    check_witnessed(
        &policy,
        j["checkpoint"].as_str().unwrap(),
        0,
        j["tree_size"].as_u64().unwrap(),
        j["leaf_hash"].as_str().unwrap(),
        j["proof"].as_array().unwrap(),
    );
    let bad = s.admin("GET", "/v1/proofs/inclusion?index=0&witnessed=true&tree_size=1", None);
    assert_eq!(bad.status, 400, "{}", bad.body);

    // /v1/log and /metrics show each witness.
    let info = s.admin("GET", "/v1/log", None).json();
    let witnesses = info["witnessing"]["witnesses"].as_array().unwrap().clone();
    assert_eq!(witnesses.len(), 3, "{info}");
    for w in &witnesses {
        assert!(w["cosigned_size"].as_u64().unwrap() >= 1, "{w}");
        assert_eq!(w["failures"], 0, "{w}");
    }
    assert!(info["witnessing"]["witnessed_size"].as_u64().unwrap() > index);
    let metrics = s.req("GET", "/metrics", None, None).body;
    assert!(metrics.contains("graven_witness_cosigned_size{witness=\"w2\"}"), "{metrics}");
    assert!(s.metric("graven_witnessed_tree_size") > index);

    // Two witnesses die: plain ingest goes on; the quorum is out of reach.
    drop(ws.pop());
    drop(ws.pop());
    for i in 0..5 {
        let r = s.post_event(&writer, &format!(r#"{{"action":"deploy.step","details":{{"n":{i}}}}}"#));
        assert_eq!(r.status, 201, "{}", r.body);
    }
    wait_until("the dead witnesses to be reported", 60, || {
        let info = s.admin("GET", "/v1/log", None).json();
        info["witnessing"]["witnesses"].as_array().unwrap()[1..]
            .iter()
            .all(|w| w["failures"].as_u64().unwrap() >= 1)
    });
    let size = s.size();
    let r = s.req("POST", "/v1/events?witnessed=true", Some(&writer), Some(r#"{"action":"deploy.x"}"#));
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body.contains("witness-quorum-unavailable") && r.body.contains("nothing was appended"),
        "{}",
        r.body
    );
    assert_eq!(s.size(), size, "a refused witnessed append appends nothing");
    let retry = common::agent()
        .post(&s.url("/v1/events?witnessed=true"))
        .header("Authorization", &format!("Bearer {writer}"))
        .header("Content-Type", "application/json")
        .send(r#"{"action":"deploy.y"}"#)
        .unwrap();
    assert_eq!(retry.status().as_u16(), 503);
    assert_eq!(retry.headers().get("retry-after").unwrap().to_str().unwrap(), "5");
    // A witnessed proof for an index beyond what was witnessed is a 503 too (after the wait).
    let last = s.size() - 1;
    let p = s.admin("GET", &format!("/v1/proofs/inclusion?index={last}&witnessed=true"), None);
    assert_eq!(p.status, 503, "{}", p.body);

    // A restart knows nothing of what the witnesses hold; with one back, the log learns its
    // size from the 409 and the quorum is met again on new checkpoints.
    drop(s);
    let d2 = tmp.path().join("w2");
    ws.push(witness(&d2, "w2.example", &log_flag));
    // The restarted witness listens on a new port: rewrite the policy's URL for w2.
    let text2 = text.replace(
        &text.lines().nth(2).unwrap().split(' ').nth(3).unwrap().to_owned(),
        &format!("http://{}", ws[1].addr),
    );
    std::fs::write(&policy_file, &text2).unwrap();
    let s = start(&data, &["--witness-policy", policy_file.to_str().unwrap()]);
    let r = s.req("POST", "/v1/events?witnessed=true", Some(&writer), Some(r#"{"action":"deploy.again"}"#));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["witnessed"], true, "{}", r.body);
    let info = s.admin("GET", "/v1/log", None).json();
    let w2 = &info["witnessing"]["witnesses"][1];
    assert!(w2["requests"].as_u64().unwrap() >= 2, "old 0, then the 409's size: {w2}");
}

/// A policy that does not trust this log's key stops the server at start, saying what to add.
#[test]
fn a_policy_for_another_log_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("log");
    std::fs::create_dir_all(&data).unwrap();
    let key = SignerKey::from_seed("witnessed.example/log", [5; 32]).unwrap();
    std::fs::write(data.join("log.key"), key.to_secret_string()).unwrap();
    let other = SignerKey::from_seed("witnessed.example/log", [6; 32]).unwrap();
    let w = graven_core::cosignature::Cosigner::from_seed("w1.example", [1; 32]).unwrap();
    let policy = tmp.path().join("p");
    std::fs::write(
        &policy,
        format!("log {}\nwitness w1 {} http://127.0.0.1:9\nquorum w1\n", other.verifier(), w.verifier()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .arg("--witness-policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("log {}", key.verifier())), "{err}");
}
