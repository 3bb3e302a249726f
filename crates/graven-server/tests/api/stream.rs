//! The live stream: every entry from its start, then live, for as long as its credential
//! stays valid.

use std::time::Duration;

use graven_server::testing::{Harness, key_id};

#[test]
fn the_stream_delivers_every_entry_from_its_start_then_live() {
    let h = Harness::start();
    let t = h.token().to_owned();
    let b0 = h.size();
    // Connected before anything is appended.
    let mut sse = h.open(h.get("/v1/stream?from=0").bearer(&t).header("accept", "text/event-stream"));
    assert_eq!(sse.status(), 200);
    assert!(sse.header("content-type").unwrap_or_default().starts_with("text/event-stream"));
    h.check(h.post("/v1/events").bearer(&t).json(r#"{"action":"deployment.create"}"#)).expect(201);
    let batch: String =
        (0..50).map(|i| format!("{{\"action\":\"secret.read\",\"details\":{{\"n\":{i}}}}}\n")).collect();
    h.check(h.post("/v1/events").bearer(&t).ndjson(batch)).expect(201);
    let seen = sse.read_until(&format!("\"index\":{},", b0 + 50), Duration::from_secs(20));
    assert!(seen.contains("id: 0\n") && seen.contains("deployment.create"), "{seen}");
    h.check(h.get("/v1/stream?from=x").bearer(&t)).expect(400).problem("bad-parameter");
}

/// A live tail does not outlive its credential: once the auditor's key is revoked, the stream
/// delivers no further event and is closed.
#[test]
fn a_stream_ends_when_its_credential_is_revoked() {
    let h = Harness::start();
    let auditor = h.identity("svc:watcher", "auditor", &[]);
    h.check(h.post("/v1/events").bearer(h.token()).json(r#"{"action":"before.revoke"}"#)).expect(201);
    let mut stream = h.open(h.get(format!("/v1/stream?from={}", h.size() - 1)).bearer(&auditor));
    assert_eq!(stream.status(), 200);
    // Read until the first event has arrived.
    stream.read_until("before.revoke", Duration::from_secs(20));
    let before = stream.seen().len();
    // Revoke the key, then append an event the stream must not deliver.
    let revoke = h.post(format!("/v1/identities/svc:watcher/keys/{}/revoke", key_id(&auditor)));
    h.check(revoke.bearer(h.token()).json("{}")).expect(200);
    h.check(h.post("/v1/events").bearer(h.token()).json(r#"{"action":"after.revoke"}"#)).expect(201);
    // The server ends the stream without sending it.
    assert!(stream.read_to_end(Duration::from_secs(20)), "stream still open: {}", stream.seen());
    let rest = &stream.seen()[before..];
    assert!(!rest.contains("after.revoke"), "a revoked key still received: {rest}");
    // The event itself was appended.
    assert_eq!(h.event(h.size() - 1)["action"], "after.revoke");
}
