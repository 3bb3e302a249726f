//! What is particular to the object-store writer rather than to a store: the head object's
//! strict parser, and the cache of immutable objects in front of a store. Its protocol on a
//! store (layout, recovery, a failure at every put, racing writers, tampering) is in the
//! conformance suite (`graven_tlog::conformance`), run on the in-memory store by
//! `tests/conformance.rs` and on SeaweedFS by `graven-s3`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;

use graven_core::note::SignerKey;
use graven_core::{Hash, TreeSize};
use graven_tlog::objlog::{CHECKPOINT_KEY, HEAD_KEY, Head};
use graven_tlog::{MemStore, ObjectLog, ObjectStore, StoreError, StoreFetch};
use graven_verify::verify_log;
use proptest::prelude::*;

fn key() -> SignerKey {
    SignerKey::from_seed("test.example/log", [42; 32]).unwrap()
}

fn entries(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(|i| format!("entry-{i}").into_bytes()).collect()
}

fn verify(store: &Arc<MemStore>) -> u64 {
    let mut f = StoreFetch::new(store.clone());
    verify_log(&mut f, &key().verifier(), None, |_, _| {}).unwrap().size.0
}

#[test]
fn malformed_heads_are_refused_with_a_reason() {
    let cp = "test.example/log\n1\nAAAA\n\n— x y\n";
    let good = Head::encode(TreeSize(0), Hash([0; 32]), TreeSize(1), cp, &[b"e".as_slice()]);
    assert_eq!(Head::parse(&good).unwrap().entries, vec![b"e".to_vec()]);
    let mut cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"graven-head v2\n".to_vec(),
        good[..good.len() - 1].to_vec(),
        [good.as_slice(), b"x"].concat(),
        Head::encode(TreeSize(5), Hash([0; 32]), TreeSize(1), cp, &[] as &[&[u8]]),
        b"graven-head v1\n0 00\n1 3\nabc".to_vec(),
        b"graven-head v1\n0 0000000000000000000000000000000000000000000000000000000000000000\n99999999999999999999 3\nabc".to_vec(),
    ];
    cases.push(vec![b'g'; 4096]);
    for c in cases {
        assert!(Head::parse(&c).is_err(), "{:?}", String::from_utf8_lossy(&c));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The head parser never panics on arbitrary bytes.
    #[test]
    fn head_parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Head::parse(&b);
        let mut framed = b"graven-head v1\n0 ".to_vec();
        framed.extend_from_slice(&b);
        let _ = Head::parse(&framed);
    }
}

/// The cache in front of a store answers repeated reads of tiles and bundles itself, serves
/// what this node wrote without reading it back, never caches the objects that change, and
/// stays within its bound.
#[test]
fn the_cache_serves_immutable_objects_and_nothing_else() {
    let inner = Arc::new(MemStore::new());
    let cached = Arc::new(graven_tlog::CachedStore::new(inner.clone(), 64 * 1024));
    let gets = |s: &MemStore| s.request_counts().iter().find(|(op, _)| *op == "get").unwrap().1;
    let mut log = ObjectLog::open(cached.clone(), key()).unwrap();
    log.append(&entries(0..600)).unwrap();
    let before = gets(&inner);
    for _ in 0..3 {
        assert_eq!(
            cached.get("tile/entries/001", 1 << 20).unwrap().unwrap().bytes,
            inner.get("tile/entries/001", 1 << 20).unwrap().unwrap().bytes
        );
    }
    assert_eq!(gets(&inner), before + 3, "only the comparison reads reach the store");
    assert!(cached.hits() >= 3);
    // The checkpoint and the head change: always read from the store.
    let g = gets(&inner);
    cached.get(CHECKPOINT_KEY, 1 << 20).unwrap().unwrap();
    cached.get(HEAD_KEY, 1 << 30).unwrap().unwrap();
    assert_eq!(gets(&inner), g + 2);
    // A size limit still holds for a cached object.
    assert!(matches!(cached.get("tile/entries/001", 10), Err(StoreError::TooLarge { .. })));
    // Bounded: a log many times the cache's size never holds more than the bound.
    log.append(&entries(600..20_000)).unwrap();
    assert!(cached.cached_bytes() <= 64 * 1024, "{}", cached.cached_bytes());
    assert_eq!(verify(&inner), 20_000);
    let mut f = StoreFetch::new(cached.clone());
    assert_eq!(verify_log(&mut f, &key().verifier(), None, |_, _| {}).unwrap().size.0, 20_000);
}
