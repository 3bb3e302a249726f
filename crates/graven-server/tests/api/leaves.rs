//! What the server writes into a leaf: never the reserved `graven.` namespace for a client,
//! never a leaf its own verifier cannot read.

use graven_server::testing::Harness;
use serde_json::{Value, json};

use crate::util::{post_batch, post_event};

/// Review item 1: a writer posting a `graven.key.add_public` with a garbage key made the log
/// fail verification forever. The `graven.` namespace is the server's own.
#[test]
fn a_writer_cannot_forge_registry_events() {
    let h = Harness::start();
    let writer = h.identity("svc:writer", "writer", &[]);
    let forged = [
        json!({"action":"graven.key.add_public","outcome":"success","resource":{"type":"graven.identity","id":"x"},"details":{"key_id":"x","public_key":"garbage"}}),
        json!({"action":"graven.key.revoke_public","outcome":"success","resource":{"type":"graven.identity","id":"svc:victim"},"details":{"key_id":"0123456789abcdef"}}),
        json!({"action":"graven.identity.revoke","outcome":"success","resource":{"type":"graven.identity","id":"admin"}}),
        json!({"action":"Graven.Key.Add_Public","outcome":"success","resource":{"type":"graven.identity","id":"x"}}),
    ];
    let before = h.size();
    for f in &forged {
        for token in [writer.as_str(), h.token()] {
            let p = h.check(post_event(&h, token, &f.to_string())).expect(400).problem("reserved-action");
            assert!(p["detail"].as_str().unwrap().contains("nothing was appended"), "{p}");
        }
    }
    // In a batch: the whole batch is refused, naming the line.
    let ok = json!({"action":"deploy.start"}).to_string();
    let detail =
        h.check(post_batch(&h, &writer, &format!("{ok}\n{}\n{ok}\n", forged[0]))).expect(400).detail();
    assert!(detail.starts_with("line 2:"), "{detail}");
    assert_eq!(h.size(), before, "nothing was appended");
    // The log still verifies, and a writer's own actions still go in.
    h.check(post_event(&h, &writer, &ok)).expect(201);
    h.verify();
}

/// Review item 2: a body whose `actor` nests 63 levels was accepted, stored 64 deep under
/// `claimed` (one past the parser's limit) and then skipped by the verifier.
#[test]
fn the_server_never_writes_a_leaf_its_verifier_cannot_read() {
    let h = Harness::start();
    let writer = h.identity("svc:writer", "writer", &[]);
    let nested = |d: usize| "[".repeat(d) + &"]".repeat(d);
    let before = h.size();
    let deep = format!(r#"{{"action":"deploy","actor":{}}}"#, nested(63));
    let detail = h.check(post_event(&h, &writer, &deep)).expect(400).detail();
    assert!(detail.contains("`actor`"), "{detail}");
    assert_eq!(h.size(), before);
    // One level less is stored, and reads back.
    let fits = format!(r#"{{"action":"deploy","actor":{}}}"#, nested(62));
    h.check(post_event(&h, &writer, &fits)).expect(201);
    let stored: Value = h.event(before);
    assert_eq!(stored["action"], "deploy");
    // Every stored leaf parses with the strict parser the verifier uses.
    for (i, e) in h.all_events().iter().enumerate() {
        graven_core::jcs::parse(e.as_bytes()).unwrap_or_else(|err| panic!("leaf {i} does not parse: {err}"));
    }
    let v = h.verify();
    assert_eq!((v.non_events, v.tree_size), (0, h.size()));
}
