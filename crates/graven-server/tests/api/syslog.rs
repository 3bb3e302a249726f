//! The syslog source (docs/sources.md): RFC 5424 messages, octet-counted (RFC 6587), read from
//! a connection attested by the listener's source identity. The connection here is an
//! in-memory stream fed the bytes a sender would write; the real listener, `logger` and
//! rsyslog are in crates/graven/tests/syslog.rs.

use graven_server::syslog::{self, Attester, Ended};
use graven_server::testing::Harness;
use serde_json::{Value, json};

const MAX_FRAME: usize = 2048;

/// A source identity allowed to report syslog subjects matching `subjects`.
fn source(h: &Harness, id: &str, subjects: &[&str]) {
    let body = json!({"id": id, "kind": "integration", "owner": "team-platform", "role": "source",
                      "source": {"types": ["syslog"], "subjects": subjects}});
    h.check(h.post("/v1/identities").bearer(h.token()).json(body)).expect(201);
}

/// Octet-counted frames of `msgs`.
fn framed(msgs: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(format!("{} ", m.len()).as_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// Sends `bytes` on one connection attested by `identity`'s listener, then closes it.
fn send(h: &Harness, identity: &str, bytes: &[u8]) -> Ended {
    send_max(h, identity, bytes, MAX_FRAME)
}

/// [`send`] to a listener whose longest message is `max_frame` bytes.
fn send_max(h: &Harness, identity: &str, bytes: &[u8], max_frame: usize) -> Ended {
    use tokio::io::AsyncWriteExt;
    let who = Attester::Listener { identity: identity.into(), listen: "127.0.0.1:6514".parse().unwrap() };
    let peer = "127.0.0.1:40000".parse().unwrap();
    h.block_on(async {
        let (mut client, server) = tokio::io::duplex(bytes.len() + 1);
        client.write_all(bytes).await.unwrap();
        drop(client);
        syslog::connection(server, peer, who, h.state(), max_frame).await
    })
}

const SU: &[u8] = b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8";

#[test]
fn syslog_messages_keep_their_subject_marked_attested_by_the_listener_identity() {
    let h = Harness::start();
    source(&h, "src:syslog-relay", &["*@mymachine.example.com", "svc:*"]);
    let size = h.size();
    let named = br#"<86>1 2026-12-07T10:00:00.5+01:00 mymachine.example.com sshd 4242 login [graven@32473 actor="svc:deployer" action="ssh.login" outcome="denied" resource_type="host" resource_id="db-1" event_id="e-1"][meta sequenceId="7"] denied"#;
    let ended = send(&h, "src:syslog-relay", &framed(&[SU, named]));
    assert_eq!(ended, Ended { logged: 2, duplicates: 0, skipped: 0, error: None });
    assert_eq!(h.size(), size + 2);

    let e = h.event(size);
    assert_eq!(e["action"], "syslog.ID47");
    assert_eq!(e["actor"]["id"], "su@mymachine.example.com");
    assert_eq!(e["actor"]["kind"], "syslog_app");
    assert_eq!(e["actor"]["auth"], "attested");
    assert_eq!(e["actor"]["credential"], "attested:src:syslog-relay");
    assert_eq!(e["actor"]["platform"], "syslog");
    assert_eq!(
        e["actor"]["attested_by"],
        json!({"id": "src:syslog-relay", "kind": "integration", "credential": "syslog-listener:127.0.0.1:6514", "auth": "syslog_listener"})
    );
    assert_eq!(e["occurred_at"], "2003-10-11T22:14:15.003Z");
    assert_eq!(e["source"], json!({"host": "mymachine.example.com", "ip": "127.0.0.1"}));
    assert!(e.get("outcome").is_none(), "severity says nothing of the outcome");
    let d = &e["details"]["syslog"];
    assert_eq!((d["facility"].as_str(), d["severity"].as_str()), (Some("auth"), Some("crit")));
    assert_eq!(d["msg"], "'su root' failed for lonvick on /dev/pts/8");
    assert_eq!(d["record"], String::from_utf8_lossy(SU).as_ref());
    assert_eq!(d["record_sha256"].as_str().unwrap().len(), 64);
    assert!(d.get("dedup_id").is_none(), "no event_id, no de-duplication");

    let e = h.event(size + 1);
    assert_eq!((e["action"].as_str(), e["outcome"].as_str()), (Some("ssh.login"), Some("denied")));
    assert_eq!(e["actor"]["id"], "svc:deployer");
    assert_eq!(e["actor"]["app_name"], "sshd");
    assert_eq!(e["resource"], json!({"type": "host", "id": "db-1"}));
    assert_eq!(e["occurred_at"], "2026-12-07T10:00:00.5+01:00");
    let d = &e["details"]["syslog"];
    assert_eq!(d["structured_data"]["meta"], json!({"sequenceId": "7"}));
    assert_eq!(d["dedup_id"], "e-1");
    assert_eq!(d["procid"], "4242");

    // The sender sends the same message again (it could not tell whether it arrived): an
    // event_id already logged from this source is not logged again; one without is.
    let ended = send(&h, "src:syslog-relay", &framed(&[named, SU]));
    assert_eq!(ended, Ended { logged: 1, duplicates: 1, skipped: 0, error: None });
    assert_eq!(h.metric("graven_syslog_messages_total"), 3);
    assert_eq!(h.metric("graven_syslog_duplicates_total"), 1);
    assert_eq!(h.metric("graven_syslog_connections_closed_total"), 0);

    // Search finds the subject as an actor.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let found = loop {
        let found = h.check(h.get("/v1/events?actor=svc%3Adeployer").bearer(h.token())).expect(200).json();
        if found["indexed_size"].as_u64() >= Some(size + 3) || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(found["events"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["events"][0]["event"]["actor"]["auth"], "attested");
    assert_eq!(h.verify().tree_size, h.size());
}

#[test]
fn a_frame_longer_than_the_limit_closes_the_connection_and_nothing_of_it_is_logged() {
    let h = Harness::start();
    source(&h, "src:syslog-relay", &["*"]);
    let size = h.size();
    let mut bytes = framed(&[SU]);
    bytes.extend_from_slice(format!("{} <13>1 - h a - - - ", MAX_FRAME + 1).as_bytes());
    bytes.extend_from_slice(&vec![b'x'; MAX_FRAME + 1 - 17]);
    bytes.extend_from_slice(&framed(&[SU]));
    let ended = send(&h, "src:syslog-relay", &bytes);
    assert_eq!(ended.logged, 1, "{ended:?}");
    let e = ended.error.unwrap();
    assert!(e.contains("longer than the limit of 2048") && e.contains("nothing of that frame"), "{e}");
    assert_eq!(h.metric("graven_syslog_connections_closed_total"), 1);
    assert_eq!(h.size(), size + 1, "only the message before it");

    // A frame cut short by the end of the connection: nothing partial is logged.
    let ended = send(&h, "src:syslog-relay", &framed(&[SU])[..50]);
    assert!(ended.error.unwrap().contains("closed inside a frame"));
    assert_eq!(h.size(), size + 1);
}

#[test]
fn a_message_that_is_not_rfc_5424_is_refused_after_the_ones_before_it_are_logged() {
    let h = Harness::start();
    source(&h, "src:syslog-relay", &["*"]);
    let size = h.size();
    let bsd: &[u8] = b"<13>Oct 11 22:14:15 mymachine su: 'su root' failed";
    let ended = send(&h, "src:syslog-relay", &framed(&[SU, bsd, SU]));
    assert_eq!(ended.logged, 1);
    let e = ended.error.unwrap();
    assert!(e.contains("message 2 of the connection") && e.contains("VERSION"), "{e}");
    assert_eq!(h.size(), size + 1);
    // No subject at all.
    let ended = send(&h, "src:syslog-relay", &framed(&[b"<13>1 - - - - - - hi"]));
    assert!(ended.error.unwrap().contains("names no subject"));
    // Not syslog framing at all.
    let ended = send(&h, "src:syslog-relay", b"GET / HTTP/1.1\r\n\r\n");
    assert!(ended.error.unwrap().contains("expected MSG-LEN"));
    assert_eq!(h.size(), size + 1);
}

#[test]
fn a_subject_outside_the_grant_or_an_inactive_identity_is_refused_and_recorded() {
    let h = Harness::start();
    source(&h, "src:syslog-relay", &["*@web-*"]);
    let size = h.size();
    let ended = send(&h, "src:syslog-relay", &framed(&[SU]));
    assert_eq!(ended.logged, 0);
    assert!(ended.error.unwrap().contains("does not match"));
    let denied: Vec<Value> = h.events_with_action(size, "graven.access.denied");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["details"]["reason"], "source-not-allowed");
    assert_eq!(denied[0]["actor"]["id"], "src:syslog-relay");

    // A disabled identity attests nothing, from its next connection on.
    h.check(h.post("/v1/identities/src:syslog-relay/disable").bearer(h.token()).json("{}")).expect(200);
    let size = h.size();
    let ended = send(&h, "src:syslog-relay", &framed(&[b"<13>1 - web-1 app - - - hi"]));
    assert_eq!(ended.logged, 0);
    assert!(ended.error.unwrap().contains("disabled"));
    assert!(h.events_with_action(size, "syslog.message").is_empty());
    // An identity that is not a syslog source: refused likewise.
    h.check(
        h.post("/v1/identities").bearer(h.token()).json(json!({"id": "svc:w", "kind": "bot", "owner": "me"})),
    )
    .expect(201);
    let ended = send(&h, "svc:w", &framed(&[SU]));
    assert!(ended.error.unwrap().contains("may not report syslog"));
}

/// A pool smaller than a batch: the connection commits in batches the pool can take (it would
/// otherwise be pushed back for ever), and every message is logged.
#[test]
fn batches_stay_within_the_pending_pool() {
    let h = Harness::builder().config("max_pending_events = 2\n").start();
    source(&h, "src:syslog-relay", &["*"]);
    let size = h.size();
    let msgs: Vec<Vec<u8>> = (0..7).map(|i| format!("<13>1 - web-1 app - - - n{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let ended = send(&h, "src:syslog-relay", &framed(&refs));
    assert_eq!(ended, Ended { logged: 7, duplicates: 0, skipped: 0, error: None });
    assert_eq!(h.size(), size + 7);
    assert_eq!(h.event(size + 6)["details"]["syslog"]["msg"], "n6");
}

/// A message too large for one entry is still logged: its SHA-256 and its header fields, the
/// parts too large left out and named, never cut.
#[test]
fn a_message_too_large_to_keep_is_logged_with_its_digest_and_header() {
    let h = Harness::start();
    source(&h, "src:syslog-relay", &["*"]);
    let size = h.size();
    let mut big = b"<13>1 2026-12-07T10:00:00Z web-1 app - dump [x@1 k=\"v\"] ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70_000));
    let mid: Vec<u8> = [&b"<13>1 - web-1 app - - - "[..], &[b'b'; 30_000][..]].concat();
    let ended = send_max(&h, "src:syslog-relay", &framed(&[&big, &mid]), 100_000);
    assert_eq!(ended, Ended { logged: 2, duplicates: 0, skipped: 0, error: None });
    let d = &h.event(size)["details"]["syslog"];
    assert!(d.get("record").is_none() && d.get("msg").is_none(), "the record or its msg was kept");
    assert_eq!(d["omitted"], json!(["msg"]));
    assert_eq!(d["structured_data"], json!({"x@1": {"k": "v"}}));
    assert_eq!(d["msgid"], "dump");
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(&big).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(d["record_sha256"], digest);
    // Too large for the mapped fields, but the whole record fits: kept whole.
    let d = &h.event(size + 1)["details"]["syslog"];
    assert_eq!(d["omitted"], json!(["msg"]));
    assert_eq!(d["record"].as_str().unwrap().len(), mid.len());
}
