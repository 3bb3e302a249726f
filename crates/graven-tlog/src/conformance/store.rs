//! The [`ObjectStore`] contract, one function per property: reads, conditional writes and
//! their races, create-only writes, retention, listing (deleted keys included), size limits,
//! typed errors and request counts.

use std::sync::Barrier;

use super::backend::Backend;
use crate::objstore::{Cond, Object, ObjectStore, StoreError, put_immutable};

/// A key that was never written reads as `None`, not as an error.
pub fn get_of_a_missing_key_is_none(b: &impl Backend) {
    let s = b.fresh("get-missing");
    assert_eq!(s.get("checkpoint", 100).unwrap(), None);
    assert_eq!(s.get("tile/0/000", 100).unwrap(), None);
}

/// A write reads back byte for byte with the ETag it returned; every write gives a new ETag;
/// the empty object is an object.
pub fn put_then_get_round_trips_with_a_new_etag_per_write(b: &impl Backend) {
    let s = b.fresh("round-trip");
    let etag = s.put("tile/0/000", b"hashes", Cond::Any, false).unwrap();
    assert!(!etag.is_empty());
    assert_eq!(
        s.get("tile/0/000", 6).unwrap(),
        Some(Object { bytes: b"hashes".to_vec(), etag: etag.clone() })
    );
    assert_eq!(b.keys(&s), ["tile/0/000"]);
    // Replacing gives a new ETag; the empty object works too.
    let etag2 = s.put("tile/0/000", b"", Cond::Any, false).unwrap();
    assert_ne!(etag, etag2);
    assert_eq!(s.get("tile/0/000", 0).unwrap(), Some(Object { bytes: Vec::new(), etag: etag2 }));
}

/// A read with a limit refuses a larger object with [`StoreError::TooLarge`], naming the key
/// and the limit; exactly the limit is fine.
pub fn objects_over_the_limit_are_refused(b: &impl Backend) {
    let s = b.fresh("too-large");
    s.put("bundle", &[7u8; 1000], Cond::Any, false).unwrap();
    assert_eq!(s.get("bundle", 999), Err(StoreError::TooLarge { key: "bundle".into(), limit: 999 }));
    assert_eq!(s.get("bundle", 0), Err(StoreError::TooLarge { key: "bundle".into(), limit: 0 }));
    assert_eq!(s.get("bundle", 1000).unwrap().unwrap().bytes.len(), 1000);
    // A large object is refused too (S3: from its announced length, before its body is read).
    s.put("big", &vec![1u8; 8 << 20], Cond::Any, false).unwrap();
    assert!(matches!(s.get("big", 1024), Err(StoreError::TooLarge { .. })));
}

/// `IfAbsent` creates once; the second write fails its condition and changes nothing.
pub fn if_absent_creates_once(b: &impl Backend) {
    let s = b.fresh("if-absent");
    s.put("checkpoint", b"one", Cond::IfAbsent, false).unwrap();
    assert_eq!(
        s.put("checkpoint", b"two", Cond::IfAbsent, false),
        Err(StoreError::Precondition { key: "checkpoint".into() })
    );
    assert_eq!(s.get("checkpoint", 10).unwrap().unwrap().bytes, b"one");
}

/// `IfMatch` writes only over the current ETag: not over a missing key, not over an older
/// version's ETag.
pub fn if_match_needs_the_current_etag(b: &impl Backend) {
    let s = b.fresh("if-match");
    let missing = s.put("head", b"x", Cond::IfMatch("\"0123456789abcdef0123456789abcdef\""), false);
    assert_eq!(missing, Err(StoreError::Precondition { key: "head".into() }));
    assert_eq!(s.get("head", 10).unwrap(), None);

    let e1 = s.put("head", b"one", Cond::IfAbsent, false).unwrap();
    let e2 = s.put("head", b"two", Cond::IfMatch(&e1), false).unwrap();
    assert_eq!(
        s.put("head", b"three", Cond::IfMatch(&e1), false),
        Err(StoreError::Precondition { key: "head".into() })
    );
    let e3 = s.put("head", b"three", Cond::IfMatch(&e2), false).unwrap();
    assert_eq!(s.get("head", 10).unwrap(), Some(Object { bytes: b"three".to_vec(), etag: e3 }));
}

/// Runs `writers` racing attempts; returns which ones succeeded. Each must either succeed or
/// fail its condition.
fn race(writers: usize, attempt: impl Fn(usize) -> Result<String, StoreError> + Sync) -> Vec<usize> {
    let barrier = Barrier::new(writers);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|i| {
                let (barrier, attempt) = (&barrier, &attempt);
                scope.spawn(move || {
                    barrier.wait();
                    attempt(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    results
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Ok(_) => Some(i),
            Err(StoreError::Precondition { .. }) => None,
            Err(e) => panic!("writer {i}: {e}"),
        })
        .collect()
}

/// 8 writers `IfMatch` the same ETag at once: exactly one wins each round, and its bytes are
/// what the key holds (the compare-and-swap the log's head relies on). The profile's rounds
/// are shared out between keys raced on at the same time.
pub fn racing_if_match_writers_have_one_winner_per_round(b: &impl Backend) {
    let s = b.fresh("race-if-match");
    let p = b.profile();
    std::thread::scope(|scope| {
        for k in 0..p.cas_keys {
            let s = &s;
            scope.spawn(move || {
                let key = format!("head-{k}");
                let mut etag = s.put(&key, b"start", Cond::IfAbsent, false).unwrap();
                for round in 0..p.cas_rounds.div_ceil(p.cas_keys) {
                    let body = |i: usize| format!("{key} round {round} writer {i}").into_bytes();
                    let winners = race(8, |i| s.put(&key, &body(i), Cond::IfMatch(&etag), false));
                    assert_eq!(winners.len(), 1, "{key} round {round}: winners {winners:?}");
                    let now = s.get(&key, 100).unwrap().unwrap();
                    assert_eq!(now.bytes, body(winners[0]), "{key} round {round}");
                    etag = now.etag;
                }
            });
        }
    });
}

/// 8 writers create the same key at once: exactly one wins, and its bytes are what the key
/// holds. One key per round; the profile's keys are raced on at the same time.
pub fn racing_if_absent_writers_have_one_winner_per_key(b: &impl Backend) {
    let s = b.fresh("race-if-absent");
    let p = b.profile();
    std::thread::scope(|scope| {
        for k in 0..p.cas_keys {
            let s = &s;
            scope.spawn(move || {
                for round in (k..p.cas_rounds).step_by(p.cas_keys as usize) {
                    let key = format!("tile/0/{round:03}");
                    let body = |i: usize| format!("round {round} writer {i}").into_bytes();
                    let winners = race(8, |i| s.put(&key, &body(i), Cond::IfAbsent, false));
                    assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
                    assert_eq!(s.get(&key, 100).unwrap().unwrap().bytes, body(winners[0]), "round {round}");
                }
            });
        }
    });
}

/// [`put_immutable`]: writing the same bytes again is success; other bytes (longer or shorter
/// ones included) are [`StoreError::Conflict`] and change nothing.
pub fn put_immutable_accepts_the_same_bytes_only(b: &impl Backend) {
    let s = b.fresh("immutable");
    put_immutable(s.as_ref(), "tile/0/000", b"abc").unwrap();
    put_immutable(s.as_ref(), "tile/0/000", b"abc").unwrap();
    assert_eq!(
        put_immutable(s.as_ref(), "tile/0/000", b"abd"),
        Err(StoreError::Conflict { key: "tile/0/000".into() })
    );
    assert_eq!(
        put_immutable(s.as_ref(), "tile/0/000", b"abcd"),
        Err(StoreError::Conflict { key: "tile/0/000".into() })
    );
    // Fewer bytes than the object holds: still a conflict, not a read over a size limit.
    assert_eq!(
        put_immutable(s.as_ref(), "tile/0/000", b"ab"),
        Err(StoreError::Conflict { key: "tile/0/000".into() })
    );
    assert_eq!(s.get("tile/0/000", 3).unwrap().unwrap().bytes, b"abc");
    assert!(b.retained(&s, "tile/0/000"));
}

/// [`ObjectStore::put_immutable_all`] (the store's own, concurrent where it has one) writes
/// every object retained; again with the same bytes is success; one object with other bytes
/// is [`StoreError::Conflict`] naming it; nothing to write is success.
pub fn put_immutable_all_is_create_only_and_idempotent(b: &impl Backend) {
    let s = b.fresh("immutable-all");
    let objects: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("tile/entries/x{i:03}"), format!("bundle {i}").repeat(i % 7 + 1).into_bytes()))
        .collect();
    s.put_immutable_all(&objects).unwrap();
    for (k, v) in &objects {
        assert_eq!(&s.get(k, 1000).unwrap().unwrap().bytes, v, "{k}");
    }
    assert!(b.retained(&s, &objects[0].0) && b.retained(&s, &objects[299].0));
    // Again: the same bytes are already there, so it succeeds.
    s.put_immutable_all(&objects).unwrap();
    // Different bytes for one key: Conflict.
    let mut altered = objects.clone();
    altered[150].1 = b"other".to_vec();
    assert_eq!(s.put_immutable_all(&altered), Err(StoreError::Conflict { key: objects[150].0.clone() }));
    assert_eq!(s.get(&objects[150].0, 1000).unwrap().unwrap().bytes, objects[150].1);
    assert_eq!(s.put_immutable_all(&[]), Ok(()));
}

/// `retain` decides retention, write by write: a retained write is retained, an unretained one
/// is not (the log's two mutable objects are written unretained).
pub fn retain_applies_to_exactly_the_retained_writes(b: &impl Backend) {
    let s = b.fresh("retain");
    s.put("graven/checkpoint/00000000000000000001", b"kept", Cond::IfAbsent, true).unwrap();
    s.put("graven/head", b"moves", Cond::IfAbsent, false).unwrap();
    assert!(b.retained(&s, "graven/checkpoint/00000000000000000001"));
    assert!(!b.retained(&s, "graven/head"));
    assert_eq!(b.keys(&s), ["graven/checkpoint/00000000000000000001", "graven/head"]);
}

/// `first_key_after` gives the first key under the prefix strictly after the bound, in byte
/// order, and `None` past the last; other prefixes are not its business.
pub fn listing_finds_the_next_key_under_a_prefix(b: &impl Backend) {
    let s = b.fresh("listing");
    assert_eq!(s.first_key_after("graven/checkpoint/", "").unwrap(), None);
    for k in ["graven/checkpoint/002", "graven/checkpoint/010", "graven/head", "checkpoint", "tile/0/000"] {
        s.put(k, k.as_bytes(), Cond::IfAbsent, false).unwrap();
    }
    let next = |after: &str| s.first_key_after("graven/checkpoint/", after).unwrap();
    assert_eq!(next("").as_deref(), Some("graven/checkpoint/002"));
    assert_eq!(next("graven/checkpoint/001").as_deref(), Some("graven/checkpoint/002"));
    assert_eq!(next("graven/checkpoint/002").as_deref(), Some("graven/checkpoint/010"));
    assert_eq!(next("graven/checkpoint/009").as_deref(), Some("graven/checkpoint/010"));
    assert_eq!(next("graven/checkpoint/010"), None);
    assert_eq!(
        s.first_key_after("graven/", "graven/checkpoint/010").unwrap().as_deref(),
        Some("graven/head")
    );
    assert_eq!(s.first_key_after("tile/", "").unwrap().as_deref(), Some("tile/0/000"));
    assert_eq!(s.first_key_after("nothing/", "").unwrap(), None);
}

/// A deleted key (on S3 a delete marker, even over a retained version) reads as absent and may
/// be created again, but a listing still finds it: deletion cannot hide that a key existed.
pub fn a_deleted_key_reads_as_absent_but_is_still_listed(b: &impl Backend) {
    let s = b.fresh("deleted");
    put_immutable(s.as_ref(), "graven/checkpoint/007", b"archived").unwrap();
    b.tamper(&s, "graven/checkpoint/007", None);
    assert_eq!(s.get("graven/checkpoint/007", 100).unwrap(), None);
    assert!(b.keys(&s).is_empty(), "{:?}", b.keys(&s));
    assert_eq!(
        s.first_key_after("graven/checkpoint/", "").unwrap().as_deref(),
        Some("graven/checkpoint/007")
    );
    assert_eq!(
        s.first_key_after("graven/checkpoint/", "graven/checkpoint/006").unwrap().as_deref(),
        Some("graven/checkpoint/007")
    );
    // The current version is the deletion: a create-only write succeeds, as a new version.
    s.put("graven/checkpoint/007", b"new bytes", Cond::IfAbsent, true).unwrap();
    assert_eq!(s.get("graven/checkpoint/007", 100).unwrap().unwrap().bytes, b"new bytes");
}

/// The request counters count what was asked of the store.
pub fn request_counts_count(b: &impl Backend) {
    let s = b.fresh("counts");
    s.put("a", b"1", Cond::Any, false).unwrap();
    s.get("a", 1).unwrap();
    s.get("b", 1).unwrap();
    let counts = s.request_counts();
    assert!(counts.contains(&("get", 2)), "{counts:?}");
    assert!(counts.contains(&("put", 1)), "{counts:?}");
}
