//! The Rust client (`crates/graven-client`) against the real `graven serve`: one event and a
//! batch logged with checked receipts, a refusal with the server's words, a receipt of another
//! log refused, and the fail-closed helper running its action only once the intent is logged.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::start;
use graven_client::{Client, Error};
use serde_json::json;

#[test]
fn the_rust_client_logs_checks_receipts_and_fails_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("d"), &["--origin", "rust-client.example/log"]);
    let server = format!("http://{}", s.addr);
    let key = s.identity("svc:payments", "writer", &["payment.*", "deploy.*"]);
    let client = Client::new(&server, &key, &s.vkey).unwrap();

    let size = s.size();
    let r = client
        .send(&json!({"action": "payment.refund", "resource": {"type": "order", "id": "o-1"}}))
        .unwrap();
    assert_eq!(r.index, size);
    assert!(r.tree_size > size);
    assert_eq!(s.event(size)["actor"]["id"], "svc:payments");
    // The receipt stays checkable offline.
    let vkey = s.vkey.parse().unwrap();
    assert_eq!(graven_client::verify_receipt(&r.receipt, &vkey).unwrap(), r);

    // A batch: one range receipt, checked; its leaf hashes are the stored events'.
    let batch: Vec<_> =
        (0..5).map(|i| json!({"action": "payment.capture", "request_id": format!("c-{i}")})).collect();
    let b = client.send_batch(&batch).unwrap();
    assert_eq!((b.first_index, b.leaf_hashes.len()), (size + 1, 5));
    for (i, h) in b.leaf_hashes.iter().enumerate() {
        let stored =
            s.req("GET", &format!("/v1/events/{}", size + 1 + i as u64), Some(&s.token), None).json();
        assert_eq!(stored["leaf_hash"], h.to_base64());
        assert_eq!(stored["event"]["request_id"], format!("c-{i}"));
    }
    assert_eq!(graven_client::verify_range_receipt(&b.receipt, &vkey).unwrap(), b);
    // Per-event receipts when asked.
    let rs = client.send_batch_each(&batch[..2]).unwrap();
    assert_eq!(rs.iter().map(|r| r.index).collect::<Vec<_>>(), [size + 6, size + 7]);

    // An action the identity may not log: refused, with the server's problem, nothing appended.
    let before = s.size();
    match client.send(&json!({"action": "secret.read"})) {
        Err(Error::Refused { status: 403, detail, .. }) => {
            assert!(detail.contains("secret.read"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    // No receipt, no action: the refused intent does not run; the allowed one does.
    let mut ran = false;
    assert!(client.act_if_logged(&json!({"action": "secret.read"}), |_| ran = true).is_err());
    assert!(!ran);
    let done = client.act_if_logged(&json!({"action": "deploy.start"}), |r| r.index).unwrap();
    assert_eq!(s.event(done)["action"], "deploy.start");
    assert!(s.size() > before);

    // Receipts checked against another log's key do not pass: nothing is shown logged.
    let other = graven_core::note::SignerKey::from_seed("rust-client.example/log", [3; 32]).unwrap();
    let wrong = Client::new(&server, &key, &other.verifier().to_string()).unwrap();
    assert!(matches!(wrong.send(&json!({"action": "payment.refund"})), Err(Error::Receipt { event: 0, .. })));
}
