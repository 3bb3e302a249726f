//! OpenBao's `socket` audit device (docs/sources.md): one JSON entry per line on a connection
//! attested by the listener's source identity. The connection here is an in-memory stream fed
//! what the device writes, in small pieces that cut entries anywhere; the entries are what a
//! real OpenBao 2.7.2 wrote (`tests/fixtures/openbao-2.7.2-audit.jsonl`, as in openbao.rs).
//! A real `bao server -dev` writing to the real listener is `crates/graven/tests/openbao.rs`.

use graven_server::openbao_socket::{self, OpenBaoSocket};
use graven_server::stream_source::{Attester, Ended};
use graven_server::testing::Harness;
use serde_json::{Value, json};

const ENTRIES: &str = include_str!("../fixtures/openbao-2.7.2-audit.jsonl");
const MAX_FRAME: usize = 64 << 10;

fn source(h: &Harness, id: &str, subjects: &[&str]) {
    let body = json!({"id": id, "kind": "integration", "owner": "team-secrets", "role": "source",
                      "source": {"types": ["openbao"], "subjects": subjects}});
    h.check(h.post("/v1/identities").bearer(h.token()).json(body)).expect(201);
}

/// Writes `bytes` on one connection attested by `identity`'s listener, `chunk` bytes at a
/// time, then closes it.
fn send(
    h: &Harness,
    types: &[&'static str],
    identity: &str,
    bytes: &[u8],
    chunk: usize,
    max: usize,
) -> Ended {
    use tokio::io::AsyncWriteExt;
    let who = Attester::Listener { identity: identity.into(), listen: "127.0.0.1:9090".parse().unwrap() };
    let peer = "127.0.0.1:40001".parse().unwrap();
    let protocol = OpenBaoSocket { types: types.to_vec() };
    let bytes = bytes.to_vec();
    h.block_on(async move {
        let (mut client, server) = tokio::io::duplex(4096);
        let writer = tokio::spawn(async move {
            for piece in bytes.chunks(chunk.max(1)) {
                if client.write_all(piece).await.is_err() {
                    return;
                }
            }
        });
        let ended = openbao_socket::connection(&protocol, server, peer, who, h.state(), max).await;
        let _ = writer.await;
        ended
    })
}

fn lines() -> Vec<&'static str> {
    ENTRIES.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn socket_entries_keep_the_token_and_role_attested_by_the_listener_identity() {
    let h = Harness::start();
    source(&h, "src:bao-socket", &["openbao:*"]);
    let size = h.size();

    // The device writes each entry and a newline; the connection reads them in 7-byte pieces.
    let ended = send(&h, &["response"], "src:bao-socket", ENTRIES.as_bytes(), 7, MAX_FRAME);
    assert_eq!(ended, Ended { logged: 11, duplicates: 0, skipped: 12, error: None });
    assert_eq!(h.size(), size + 11);
    let events: Vec<Value> = (size..h.size()).map(|i| h.event(i)).collect();
    for e in &events {
        assert_eq!(e["actor"]["auth"], "attested");
        assert_eq!(e["actor"]["platform"], "openbao");
        assert_eq!(
            e["actor"]["attested_by"],
            json!({"id": "src:bao-socket", "kind": "integration", "credential": "openbao-listener:127.0.0.1:9090", "auth": "openbao_listener"})
        );
        assert!(e["outcome"].as_str().is_some(), "a response has an outcome: {e}");
    }
    let login = events.iter().find(|e| e["resource"]["id"] == "auth/approle/login").unwrap();
    assert_eq!(login["actor"]["id"], "openbao:approle:ci");
    assert_eq!(login["actor"]["entity_id"], "5379333f-c567-0633-13c7-2635923c047f");
    // Each event keeps its entry whole, as the HTTP form does.
    let responses: Vec<Value> = lines()
        .into_iter()
        .filter(|l| l.contains("\"type\":\"response\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kept: Vec<Value> = events.iter().map(|e| e["details"]["openbao"]["record"].clone()).collect();
    assert_eq!(kept, responses);
    assert_eq!(h.metric("graven_openbao_socket_entries_total"), 11);

    // The device writes them again (a reconnect after a lost connection): not logged twice,
    // the same entries posted by the HTTP form's identity are another source's.
    let ended = send(&h, &["response"], "src:bao-socket", ENTRIES.as_bytes(), 4096, MAX_FRAME);
    assert_eq!(ended, Ended { logged: 0, duplicates: 11, skipped: 12, error: None });
    assert_eq!(h.size(), size + 11);
    assert_eq!(h.metric("graven_openbao_socket_duplicates_total"), 11);

    // Requests too, when the listener is configured for them: the 11 requests are new.
    let ended = send(&h, &["request", "response"], "src:bao-socket", ENTRIES.as_bytes(), 1000, MAX_FRAME);
    assert_eq!(ended, Ended { logged: 11, duplicates: 11, skipped: 1, error: None });

    // Search finds the role.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let found = loop {
        let found =
            h.check(h.get("/v1/events?actor=openbao%3Aapprole%3Aci").bearer(h.token())).expect(200).json();
        if found["indexed_size"].as_u64() >= Some(h.size()) || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(found["events"].as_array().unwrap().len(), 3, "{found}");
    assert_eq!(h.verify().tree_size, h.size());
}

#[test]
fn a_bad_entry_closes_the_connection_after_the_ones_before_it_are_logged() {
    let h = Harness::start();
    source(&h, "src:bao-socket", &["openbao:*"]);
    let size = h.size();
    let all = lines();
    let (first, second) = (all[2], all[4]);
    assert!(first.contains("\"type\":\"response\"") && second.contains("\"type\":\"response\""));

    // Not JSON (a device with a `prefix`): the entry before it is logged, nothing after.
    let bytes = format!("{first}\nbao-audit: {second}\n{second}\n");
    let ended = send(&h, &["response"], "src:bao-socket", bytes.as_bytes(), 64, MAX_FRAME);
    assert_eq!((ended.logged, ended.duplicates), (1, 0));
    let e = ended.error.unwrap();
    assert!(e.contains("line 2") && e.contains("prefix"), "{e}");
    assert_eq!(h.size(), size + 1);
    assert_eq!(h.metric("graven_openbao_socket_connections_closed_total"), 1);

    // JSON, but not an audit entry.
    let ended = send(&h, &["response"], "src:bao-socket", b"{\"type\":\"response\"}\n", 64, MAX_FRAME);
    assert!(ended.error.unwrap().contains("line 1.request is missing"));

    // A line longer than the limit: refused before it is all read; nothing of it is logged.
    let long = format!("{second}\n{}\n", "x".repeat(4000));
    let ended = send(&h, &["response"], "src:bao-socket", long.as_bytes(), 512, 2048);
    assert_eq!(ended.logged, 1, "{ended:?}");
    let e = ended.error.unwrap();
    assert!(e.contains("longer than the limit of 2048") && e.contains("max_frame_bytes"), "{e}");

    // An entry cut short by the end of the connection: nothing partial is logged.
    let cut = &all[6][..100];
    let ended = send(&h, &["response"], "src:bao-socket", cut.as_bytes(), 64, MAX_FRAME);
    assert!(ended.error.unwrap().contains("closed inside a frame"));
    assert_eq!(h.size(), size + 2);
}

#[test]
fn a_subject_outside_the_grant_or_an_inactive_identity_is_refused_and_recorded() {
    let h = Harness::start();
    source(&h, "src:bao-socket", &["openbao:root"]);
    let size = h.size();
    let ended = send(&h, &["response"], "src:bao-socket", ENTRIES.as_bytes(), 4096, MAX_FRAME);
    assert_eq!(ended.logged, 2, "the root token's two responses before the first outside the grant");
    let e = ended.error.unwrap();
    assert!(e.contains("does not match"), "{e}");
    let denied: Vec<Value> = h.events_with_action(size, "graven.access.denied");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["details"]["reason"], "source-not-allowed");
    assert_eq!(denied[0]["details"]["route"], "openbao-socket");
    assert_eq!(denied[0]["actor"]["id"], "src:bao-socket");
    assert!(
        h.events_with_action(size, "openbao.update").iter().all(|e| e["actor"]["id"] == "openbao:root"),
        "only subjects within the grant"
    );

    // Disabled: nothing from its next connection on.
    h.check(h.post("/v1/identities/src:bao-socket/disable").bearer(h.token()).json("{}")).expect(200);
    let size = h.size();
    let ended = send(&h, &["response"], "src:bao-socket", ENTRIES.as_bytes(), 4096, MAX_FRAME);
    assert_eq!(ended.logged, 0);
    assert!(ended.error.unwrap().contains("disabled"));
    assert!(h.events_with_action(size, "openbao.update").is_empty());
    // A syslog source may not report OpenBao entries.
    let body = json!({"id": "src:syslog", "kind": "integration", "owner": "me", "role": "source",
                      "source": {"types": ["syslog"], "subjects": ["*"]}});
    h.check(h.post("/v1/identities").bearer(h.token()).json(body)).expect(201);
    let ended = send(&h, &["response"], "src:syslog", ENTRIES.as_bytes(), 4096, MAX_FRAME);
    assert!(ended.error.unwrap().contains("may not report openbao"));
}
