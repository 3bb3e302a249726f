//! The server's hand-written answers read as the `graven-api` types that clients use.

use graven_engine::engine::Entry;
use graven_server::testing::Harness;

#[test]
fn answers_read_as_the_wire_types() {
    let h = Harness::start();
    let t = h.token().to_owned();
    // After the server's two records of its bootstrap admin: one entry that is not JSON
    // (index 2), then three that are.
    let mut entries = vec![Entry::raw(b"\x00not json".to_vec())];
    entries.extend((0..3).map(|i| Entry::raw(format!(r#"{{"action":"a{i}"}}"#).into_bytes())));
    h.block_on(h.state().engine.submit(entries)).unwrap();
    let size = h.size();

    let info: graven_api::LogInfo = h.check(h.get("/v1/log").bearer(&t)).expect(200).typed();
    assert_eq!((info.tree_size, info.writer, info.origin.as_str()), (size, true, "localhost/graven"));

    for (index, json) in [(3u64, true), (2, false)] {
        let a = h.check(h.get(format!("/v1/events/{index}")).bearer(&t)).expect(200);
        let e: graven_api::StoredEvent<serde_json::Value> = a.typed();
        assert_eq!((e.index, e.tree_size), (index, size));
        assert_eq!(e.event.is_some(), json);
        assert_eq!(e.entry_base64.is_some(), !json);
        // The hand-written answer is what the type writes, key for key.
        assert_eq!(serde_json::to_value(&e).unwrap(), a.json());
    }

    let p: graven_api::InclusionProof =
        h.check(h.get("/v1/proofs/inclusion?index=4").bearer(&t)).expect(200).typed();
    assert_eq!((p.index, p.tree_size), (4, size));
    let c: graven_api::ConsistencyProof =
        h.check(h.get("/v1/proofs/consistency?from=1").bearer(&t)).expect(200).typed();
    assert_eq!((c.from, c.to), (1, size));

    let a = h.check(h.get("/v1/events?limit=10").bearer(&t)).expect(200);
    let page: graven_api::SearchPage<serde_json::Value> = a.typed();
    assert_eq!(page.tree_size, size);
    assert_eq!(serde_json::to_value(&page).unwrap(), a.json());

    let who: graven_api::IdentityView = h.check(h.get("/v1/identities/admin").bearer(&t)).expect(200).typed();
    assert_eq!((who.id.as_str(), who.role.as_str(), who.keys.len()), ("admin", "admin", 1));

    // A refusal is a problem document.
    let p: graven_api::Problem = h.check(h.get("/v1/events/1")).expect(401).typed();
    assert_eq!((p.status, p.slug()), (401, "unauthorized"));
}
