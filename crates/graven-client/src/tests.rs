#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use graven_core::checkpoint::Checkpoint;
use graven_core::merkle::MemoryTree;
use graven_core::note::SignerKey;

use super::*;

const ORIGIN: &str = "client.example/log";

fn signer() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [7; 32]).unwrap()
}

/// A tree of `n` events and the receipt of event `i`, signed by `key`.
fn receipt(n: u64, i: u64, key: &SignerKey) -> Receipt {
    let mut tree = MemoryTree::new();
    for k in 0..n {
        tree.push(graven_core::leaf_hash(format!("{{\"n\":{k}}}").as_bytes()));
    }
    let size = TreeSize(n);
    let root = merkle::root(&mut tree, size).unwrap();
    let text = Checkpoint::new(ORIGIN, size, root).unwrap().to_text();
    let proof = merkle::inclusion_proof(&mut tree, LeafIndex(i), size).unwrap();
    Receipt {
        checkpoint: key.sign(&text).unwrap(),
        inclusion_proof: proof.iter().map(Hash::to_base64).collect(),
        index: i,
        leaf_hash: graven_core::leaf_hash(format!("{{\"n\":{i}}}").as_bytes()).to_base64(),
        logged_at: Some("2026-12-07T10:00:00.000000Z".into()),
        tree_size: n,
        witnessed: false,
    }
}

#[test]
fn receipts_check_out_only_with_the_right_key_proof_and_size() {
    let key = signer();
    let vkey = key.verifier();
    for n in 1..=17 {
        for i in 0..n {
            let v = verify_receipt(&receipt(n, i, &key), &vkey).unwrap();
            assert_eq!((v.index, v.tree_size), (i, n));
        }
    }
    let good = receipt(9, 4, &key);
    // Another log's key.
    let other = SignerKey::from_seed(ORIGIN, [8; 32]).unwrap().verifier();
    assert!(matches!(verify_receipt(&good, &other), Err(ReceiptError::Checkpoint(_))));
    // The proof altered, the index moved, the leaf swapped, the size claimed otherwise.
    let mut r = good.clone();
    r.inclusion_proof[0] = Hash([0; 32]).to_base64();
    assert!(matches!(verify_receipt(&r, &vkey), Err(ReceiptError::Proof(_))));
    let mut r = good.clone();
    r.index = 5;
    assert!(matches!(verify_receipt(&r, &vkey), Err(ReceiptError::Proof(_))));
    let mut r = good.clone();
    r.leaf_hash = graven_core::leaf_hash(b"{\"n\":99}").to_base64();
    assert!(matches!(verify_receipt(&r, &vkey), Err(ReceiptError::Proof(_))));
    let mut r = good.clone();
    r.tree_size = 10;
    assert!(matches!(verify_receipt(&r, &vkey), Err(ReceiptError::SizeMismatch { .. })));
    let mut r = good;
    r.leaf_hash = "not base64!".into();
    assert!(matches!(verify_receipt(&r, &vkey), Err(ReceiptError::NotAHash("leaf_hash"))));
}

#[test]
fn the_back_off_doubles_honours_retry_after_and_is_capped() {
    let p =
        RetryPolicy { retries: 5, first_wait: Duration::from_millis(100), max_wait: Duration::from_secs(1) };
    for attempt in 1..=3u32 {
        let w = p.wait(attempt, None);
        let base = Duration::from_millis(100 * (1 << (attempt - 1)));
        assert!(w >= base && w <= base + base / 4, "{attempt}: {w:?}");
    }
    assert_eq!(p.wait(30, None), Duration::from_secs(1));
    assert_eq!(p.wait(1, Some(0)), Duration::ZERO);
    assert_eq!(p.wait(1, Some(3600)), Duration::from_secs(1));
}

/// A server on a loopback port answering each request with the next of `answers` (status,
/// extra headers, body); counts the requests.
fn stub(answers: Vec<(u16, &'static str, String)>) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for (stream, (status, headers, body)) in l.incoming().zip(answers) {
            let mut stream = stream.unwrap();
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut b = vec![0; len];
            r.read_exact(&mut b).unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let resp = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
                body.len()
            );
            stream.write_all(resp.as_bytes()).unwrap();
        }
    });
    (addr, seen)
}

fn quick() -> RetryPolicy {
    RetryPolicy { retries: 3, first_wait: Duration::from_millis(10), max_wait: Duration::from_millis(50) }
}

#[test]
fn only_answers_that_say_nothing_was_appended_are_retried() {
    let key = signer();
    let vkey = key.verifier().to_string();
    let ok = serde_json::to_string(&receipt(3, 2, &key)).unwrap();
    let busy = r#"{"type":"https://graven.dev/problems/overloaded","title":"Busy","status":503,"detail":"try later"}"#;

    // 503 then 429, each with Retry-After, then 201: logged, on the third request.
    let (url, seen) = stub(vec![
        (503, "Retry-After: 0\r\n", busy.into()),
        (429, "Retry-After: 0\r\n", busy.into()),
        (201, "", ok.clone()),
    ]);
    let c = Client::new(&url, "gvn_test", &vkey).unwrap().with_retry(quick());
    let r = c.send(&serde_json::json!({"action": "a.b"})).unwrap();
    assert_eq!((r.index, seen.load(Ordering::SeqCst)), (2, 3));

    // A 500 may have logged it: not retried.
    let (url, seen) = stub(vec![(500, "", "oops".into()), (201, "", ok.clone())]);
    let c = Client::new(&url, "gvn_test", &vkey).unwrap().with_retry(quick());
    assert!(matches!(c.send(&serde_json::json!({"action": "a.b"})), Err(Error::MaybeLogged(_))));
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    // A refusal is final, with the problem's words.
    let bad = r#"{"type":"https://graven.dev/problems/invalid-event","title":"Bad","status":400,"detail":"action is missing"}"#;
    let (url, seen) = stub(vec![(400, "", bad.into()), (201, "", ok.clone())]);
    let c = Client::new(&url, "gvn_test", &vkey).unwrap().with_retry(quick());
    match c.send(&serde_json::json!({})) {
        Err(Error::Refused { status: 400, detail, .. }) => assert_eq!(detail, "action is missing"),
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    // Busy every time: refused after the retries.
    let (url, seen) = stub(vec![(503, "Retry-After: 0\r\n", busy.into()); 4]);
    let c = Client::new(&url, "gvn_test", &vkey).unwrap().with_retry(quick());
    assert!(matches!(c.send(&serde_json::json!({"action": "a.b"})), Err(Error::Refused { status: 503, .. })));
    assert_eq!(seen.load(Ordering::SeqCst), 4);

    // A receipt for another log: not shown logged, and the action does not run.
    let foreign =
        serde_json::to_string(&receipt(3, 2, &SignerKey::from_seed(ORIGIN, [9; 32]).unwrap())).unwrap();
    let (url, _) = stub(vec![(201, "", foreign)]);
    let c = Client::new(&url, "gvn_test", &vkey).unwrap().with_retry(quick());
    let mut ran = false;
    let r = c.act_if_logged(&serde_json::json!({"action": "a.b"}), |_| ran = true);
    assert!(matches!(r, Err(Error::Receipt { event: 0, .. })), "{r:?}");
    assert!(!ran, "no receipt, no action");
}

#[test]
fn a_server_that_cannot_be_reached_is_tried_again_and_nothing_was_sent() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let c = Client::new(&format!("http://127.0.0.1:{port}"), "gvn_test", &signer().verifier().to_string())
        .unwrap()
        .with_retry(quick());
    assert!(matches!(c.send(&serde_json::json!({"action": "a.b"})), Err(Error::Unreachable(_))));
    assert!(matches!(Client::new("ftp://x", "k", "v"), Err(Error::Config(_))));
    assert!(matches!(Client::new("http://x", " ", "v"), Err(Error::Config(_))));
    assert!(matches!(Client::new("http://x", "k", "not a key"), Err(Error::Config(_))));
}
