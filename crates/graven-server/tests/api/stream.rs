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

/// The `id:` of every event a stream delivered, in order.
fn ids(seen: &str) -> Vec<u64> {
    seen.lines().filter_map(|l| l.strip_prefix("id: ")?.trim().parse().ok()).collect()
}

/// A client that reconnects sends the last id it received (`Last-Event-ID`, as EventSource
/// does, with the URL it first asked for): the stream resumes right after that index, whatever
/// `from` says, with nothing repeated and nothing skipped.
#[test]
fn a_stream_resumes_after_last_event_id() {
    let h = Harness::start();
    let t = h.token().to_owned();
    let batch: String = (0..20).map(|i| format!("{{\"action\":\"resume.{i}\"}}\n")).collect();
    h.check(h.post("/v1/events").bearer(&t).ndjson(batch)).expect(201);
    let last = h.size() - 1;
    let resumed = |req| {
        let mut sse = h.open(req);
        assert_eq!(sse.status(), 200);
        sse.read_until(&format!("\"index\":{last},"), Duration::from_secs(20));
        ids(sse.seen())
    };
    let got = resumed(h.get("/v1/stream?from=0").bearer(&t).header("last-event-id", "7"));
    assert_eq!(got, (8..=last).collect::<Vec<_>>());
    let got = resumed(h.get("/v1/stream").bearer(&t).header("Last-Event-ID", &(last - 1).to_string()));
    assert_eq!(got, vec![last]);
    // An id that is not an index the stream sent is refused, not read as "from the start".
    for bad in ["x", "-1", "18446744073709551615", "3.0"] {
        let a = h.check(h.get("/v1/stream?from=0").bearer(&t).header("last-event-id", bad));
        a.expect(400).problem("bad-parameter");
    }
}

/// When the server starts to drain (SIGTERM), an open stream ends at once, cleanly, so the
/// connection can close and the client reconnect elsewhere or later with `Last-Event-ID`.
#[test]
fn a_stream_ends_when_the_server_drains() {
    let h = Harness::start();
    let t = h.token().to_owned();
    let mut sse = h.open(h.get("/v1/stream?from=0").bearer(&t));
    sse.read_until("id: 1\n", Duration::from_secs(20));
    h.begin_drain();
    assert!(sse.read_to_end(Duration::from_secs(5)), "the stream is still open: {}", sse.seen());
    // A stream opened while draining ends at once too.
    let mut late = h.open(h.get("/v1/stream?from=0").bearer(&t));
    assert!(late.read_to_end(Duration::from_secs(5)), "a new stream stayed open: {}", late.seen());
}

/// Found by schemathesis: a `from` that is not an index was taken without a word when the
/// request also carried `Last-Event-ID` (which wins), so a client's mistake went unseen. Every
/// parameter is read, whichever one is used.
#[test]
fn a_malformed_from_is_refused_even_beside_last_event_id() {
    let h = Harness::start();
    let t = h.token().to_owned();
    for from in ["AAA", "-1"] {
        let sse = h.open(h.get(format!("/v1/stream?from={from}")).bearer(&t).header("last-event-id", "0"));
        assert_eq!(sse.status(), 400, "from={from}: {}", sse.seen());
        assert_eq!(sse.header("content-type"), Some("application/problem+json"));
    }
}
