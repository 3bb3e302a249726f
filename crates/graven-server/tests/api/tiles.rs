//! The C2SP tlog-tiles read path: one name per file, nothing past the committed checkpoint,
//! and what it serves verifies.
//!
//! A static tile host serves each file under exactly one path; so must `GET /tile/...`. A
//! percent-encoded byte (`%2F` for the slash, `%30` for a digit, `%2E` for the dot), a doubled
//! slash, a dot segment or a backslash is another spelling of a path, and is refused with a
//! problem document instead of being decoded into the canonical one.

use axum::http::Uri;
use graven_engine::engine::Entry;
use graven_server::testing::Harness;

#[test]
fn each_tile_has_one_name_over_http() {
    // The read path public, so no credential is involved; 3 entries in all (the server's two
    // records of its bootstrap admin, and one raw entry).
    let h = Harness::builder().overrides(|o| o.public_read_path = Some(true)).start();
    h.block_on(h.state().engine.submit(vec![Entry::raw(b"entry 2".to_vec())])).unwrap();
    assert_eq!(h.size(), 3);
    let hashes = h.check(h.get("/tile/0/000.p/3")).expect(200);
    assert_eq!(hashes.bytes().len(), 3 * 32, "the canonical name serves the partial hash tile");
    let bundle = h.check(h.get("/tile/entries/000.p/3")).expect(200);
    assert!(!bundle.bytes().is_empty());

    let other_names = [
        "/tile/0%2F000.p/3",
        "/tile/0%2f000.p/3",
        "/tile/entries%2F000.p/3",
        "/tile/entries%2f000.p%2f3",
        "/tile/0/000%2Ep/3",
        "/tile/0/000%2ep/3",
        "/tile/%30/000.p/3",
        "/tile/0/%30%30%30.p/3",
        "/tile/0/000.p/%33",
        "/tile/%65ntries/000.p/3",
        "/tile/0//000.p/3",
        "/tile//0/000.p/3",
        "/tile/0/000.p//3",
        "/tile/0/000.p/3/",
        "/tile/0/./000.p/3",
        "/tile/0/x/../000.p/3",
        "/tile/0/000.p/3%00",
        "/tile/0%5C000.p/3",
        "/tile/0%5c000.p/3",
        "/tile/0\\000.p/3",
        "/tile/0%252F000.p/3",
    ];
    for name in other_names {
        // A client library may refuse to even build some of these; those cannot be sent.
        if Uri::try_from(name).is_err() {
            continue;
        }
        let a = h.check(h.get(name));
        assert_eq!(a.status(), 404, "{name} was served: {}", a.text());
        let p = a.problem("not-found");
        assert!(p["detail"].as_str().unwrap().contains("not a tile path"), "{name}: {p}");
    }
    // A percent-encoded name says why it is refused.
    let p = h.check(h.get("/tile/0%2F000.p/3")).expect(404).json();
    assert!(p["detail"].as_str().unwrap().contains("percent-encoded"), "{p}");
}

#[test]
fn the_read_path_serves_the_committed_log_only() {
    let h = Harness::start();
    let t = h.token().to_owned();
    let batch: String = (0..51).map(|i| format!("{{\"action\":\"a.{i}\"}}\n")).collect();
    h.check(h.post("/v1/events").bearer(&t).ndjson(batch)).expect(201);
    let size = h.size();
    assert_eq!(size, 53);
    h.check(h.get(format!("/tile/entries/000.p/{size}")).bearer(&t)).expect(200);
    let beyond = h.check(h.get(format!("/tile/entries/000.p/{}", size + 1)).bearer(&t));
    assert_eq!(beyond.status(), 404, "beyond the checkpoint is never served");
    h.check(h.get("/tile/0/../../admin.token").bearer(&t)).expect(404);
    // What the read path serves verifies, as what is on disk does.
    assert_eq!(h.verify_over_http(Some(&t)).unwrap().tree_size, size);
    assert_eq!(h.verify().tree_size, size);
}
