//! Client-signed events are accepted once: a one-time id and a signing time, checked by the
//! sequencer, remembered across restarts.

use ed25519_dalek::SigningKey;
use graven_server::testing::Harness;

use crate::util::{add_public, client_sign_v2, now_s, post_batch, post_event};

/// Review item 5: a client-signed event could be sent again (by its signer, or by whoever got a
/// key for its identity) and was logged again. A signature now carries a one-time id and a
/// signing time; the server logs each (key, id) once, refuses a signing time outside its
/// window, and remembers the ids across restarts (it rebuilds them from the log itself).
#[test]
fn a_client_signed_event_is_accepted_once() {
    let mut h = Harness::start();
    let writer = h.identity("svc:signer", "writer", &[]);
    let k = SigningKey::from_bytes(&[41u8; 32]);
    add_public(&h, "svc:signer", &k);
    let event = r#"{"action":"payment.refund","resource":{"type":"order","id":"o-7"}}"#;
    let signed = client_sign_v2(&k, event, "refund-o-7-1", now_s());
    let r = h.check(post_event(&h, &writer, &signed)).expect(201);
    let logged = h.event(r.json()["index"].as_u64().unwrap());
    assert_eq!(logged["client_signature"]["id"], "refund-o-7-1");

    // The same signed event again: refused, nothing appended but the denied record.
    let d = h.denied(409, post_event(&h, &writer, &signed));
    assert_eq!(d["details"]["reason"], "client-signature-replayed", "{d}");
    // The same id on another event is the same one-time id.
    let other = client_sign_v2(
        &k,
        r#"{"action":"payment.refund","resource":{"type":"order","id":"o-8"}}"#,
        "refund-o-7-1",
        now_s(),
    );
    h.check(post_event(&h, &writer, &other)).expect(409).problem("client-signature-replayed");
    // Twice in one batch: the whole batch is refused, naming the line.
    let a = client_sign_v2(&k, event, "batch-a", now_s());
    let detail = h.check(post_batch(&h, &writer, &format!("{a}\n{a}\n"))).expect(409).detail();
    assert!(detail.starts_with("line 2:"), "{detail}");
    // Racing copies: exactly one is logged.
    let racing = client_sign_v2(&k, event, "race-1", now_s());
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> =
            (0..8).map(|_| sc.spawn(|| h.check(post_event(&h, &writer, &racing)).status())).collect();
        hs.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|&&c| c == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|&c| c == 201 || c == 409), "{statuses:?}");
    // Outside the window (±300 s by default): refused, so an old signed event cannot be
    // replayed once its id is forgotten.
    for t in [now_s() - 3600, now_s() + 3600] {
        let stale = client_sign_v2(&k, event, &format!("stale-{t}"), t);
        h.check(post_event(&h, &writer, &stale)).expect(403).problem("client-signature-stale");
    }
    // After a crash and a restart, the ids are still known: the sequencer rebuilds them from
    // the log whenever it opens it.
    h.crash_restart();
    assert_eq!(h.check(post_event(&h, &writer, &signed)).status(), 409, "a replay after a restart");
    assert_eq!(h.check(post_event(&h, &writer, &racing)).status(), 409);
    let fresh = client_sign_v2(&k, event, "refund-o-7-2", now_s());
    h.check(post_event(&h, &writer, &fresh)).expect(201);
    h.verify();
}

/// A version 1 signature has no id and no signing time, so it could be replayed at will: the
/// server no longer takes one (verifiers still check those already in a log).
#[test]
fn a_version_1_client_signature_is_refused() {
    let h = Harness::start();
    let writer = h.identity("svc:signer", "writer", &[]);
    let k = SigningKey::from_bytes(&[42u8; 32]);
    add_public(&h, "svc:signer", &k);
    let v1 = String::from_utf8(graven_core::event_sig::sign_event(&k, br#"{"action":"deploy"}"#).unwrap())
        .unwrap();
    let before = h.size();
    let p = h.check(post_event(&h, &writer, &v1)).expect(400).problem("client-signature-version");
    assert!(p["detail"].as_str().unwrap().contains("version 2"), "{p}");
    assert!(h.size() <= before + 1, "nothing but a denied record");
}
