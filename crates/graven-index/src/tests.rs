//! Unit tests that need crate internals: tiny scan budgets, timestamps that go backwards, long values,
//! and on-disk format changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Ev, collect_all, expected, ts};
use proptest::prelude::*;

use crate::{Index, Order, Query};

fn long(tail: &str) -> String {
    // 1022 bytes of two-byte characters, so truncation to MAX_KEY_BYTES lands mid-character.
    format!("{}{tail}", "é".repeat(511))
}

fn alphabet() -> Vec<String> {
    let mut v: Vec<String> = ["a", "b", ""].iter().map(|s| (*s).to_owned()).collect();
    // Values around the truncation limit that share their truncated key.
    v.extend([long(""), long("x"), long("xy"), long("xyz"), long("xz")]);
    v
}

fn value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![1 => Just(None), 4 => prop::sample::select(alphabet()).prop_map(Some)]
}

/// Events whose timestamps may go backwards and may be missing.
fn events() -> impl Strategy<Value = Vec<Ev>> {
    let one = (
        value(),
        value(),
        prop::option::weighted(0.7, prop::sample::select(vec!["a", "b"])),
        prop::option::weighted(0.7, prop::sample::select(vec!["success", "failure"])),
        prop::option::weighted(0.85, 0u32..30),
        prop::bool::weighted(0.05),
    );
    prop::collection::vec(one, 0..80).prop_map(|raw| {
        raw.into_iter()
            .map(|(actor, action, resource, outcome, t, garbage)| Ev {
                actor,
                action,
                resource: resource.map(Into::into),
                outcome: outcome.map(Into::into),
                logged_at: t.map(ts),
                garbage,
            })
            .collect()
    })
}

fn queries() -> impl Strategy<Value = Query> {
    (
        prop::option::weighted(0.4, prop::sample::select(alphabet())),
        prop::option::weighted(0.3, prop::sample::select(alphabet())),
        prop::option::weighted(0.2, prop::sample::select(vec!["a", "b", "c"])),
        prop::option::weighted(0.2, prop::sample::select(vec!["success", "failure"])),
        prop::option::weighted(0.3, 0u32..32),
        prop::option::weighted(0.3, 0u32..32),
        0usize..6,
        prop::bool::ANY,
    )
        .prop_map(|(actor, action, resource, outcome, since, until, limit, newest)| Query {
            actor,
            action,
            resource: resource.map(Into::into),
            outcome: outcome.map(Into::into),
            since: since.map(ts),
            until: until.map(ts),
            limit,
            cursor: None,
            order: if newest { Order::NewestFirst } else { Order::OldestFirst },
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Paging with scan budgets of 1 to 7 candidates (so most pages stop on the budget) returns exactly
    /// the naive filter's result, also when timestamps go backwards and values exceed the key limit.
    #[test]
    fn tiny_budgets_disorder_and_long_values(
        evs in events(),
        chunk in 1usize..20,
        qs in prop::collection::vec((queries(), 1usize..8), 1..10),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.redb")).unwrap();
        let bytes: Vec<Vec<u8>> = evs.iter().map(Ev::json).collect();
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        for (n, part) in refs.chunks(chunk).enumerate() {
            index.add((n * chunk) as u64, part).unwrap();
        }
        for (q, budget) in &qs {
            let want = expected(&evs, q);
            // Each page examines at least one candidate, so this many pages always suffice.
            let (got, _) = collect_all(|q| index.search_budget(q, *budget), q, evs.len() + 2);
            prop_assert_eq!(&got, &want, "query {:?} budget {}", q, budget);
            // The full budget agrees.
            let (full, _) = collect_all(|q| index.search(q), q, evs.len() + 2);
            prop_assert_eq!(&full, &want);
        }
    }
}

#[test]
fn other_format_is_cleared_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    {
        let index = Index::open(&path).unwrap();
        common::add_all(&index, 0, &[Ev { actor: Some("a".into()), ..Ev::default() }]);
        assert_eq!(index.indexed_size().unwrap(), 1);
        let txn = index.db.begin_write().unwrap();
        txn.open_table(crate::STATE).unwrap().insert(crate::K_FORMAT, &b"graven-index/0"[..]).unwrap();
        txn.commit().unwrap();
    }
    let index = Index::open(&path).unwrap();
    assert_eq!(index.indexed_size().unwrap(), 0);
    let q = Query { actor: Some("a".into()), ..Query::default() };
    assert!(index.search(&q).unwrap().indices.is_empty());
    drop(index);
    // And a current-format index is left alone.
    let index = Index::open(&path).unwrap();
    common::add_all(&index, 0, &[Ev { actor: Some("a".into()), ..Ev::default() }]);
    drop(index);
    assert_eq!(Index::open(&path).unwrap().indexed_size().unwrap(), 1);
}

#[test]
fn disorder_is_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.redb")).unwrap();
    let at = |t| Ev { logged_at: Some(ts(t)), ..Ev::default() };
    common::add_all(&index, 0, &[at(5), at(6)]);
    common::add_all(&index, 2, &[at(1)]); // backwards, in a later call
    common::add_all(&index, 3, &[at(7)]);
    let q = Query { until: Some(ts(2)), ..Query::default() };
    assert_eq!(index.search(&q).unwrap().indices, vec![2]);
    let q = Query { since: Some(ts(6)), order: Order::OldestFirst, ..Query::default() };
    assert_eq!(index.search(&q).unwrap().indices, vec![1, 3]);
}

#[test]
fn truncated_keys() {
    assert_eq!(crate::index_key("abc"), "abc");
    let v = long("xyz");
    let k = crate::index_key(&v);
    assert!(k.len() <= crate::MAX_KEY_BYTES && k.len() > crate::EXACT_KEY_BYTES);
    assert!(v.starts_with(k));
    let exact = "a".repeat(crate::MAX_KEY_BYTES);
    assert_eq!(crate::index_key(&exact), exact);
}

#[test]
fn clear_empties_every_table() {
    use redb::{ReadableDatabase, ReadableTableMetadata};
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.redb")).unwrap();
    let e = Ev {
        actor: Some("a".into()),
        action: Some("b".into()),
        resource: Some("c".into()),
        outcome: Some("d".into()),
        logged_at: Some(ts(1)),
        garbage: false,
    };
    common::add_all(&index, 0, &[e.clone(), e]);
    index.clear().unwrap();
    let txn = index.db.begin_read().unwrap();
    assert_eq!(txn.open_table(crate::BLOCKS).unwrap().len().unwrap(), 0);
    assert_eq!(txn.open_table(crate::CLOCKS).unwrap().len().unwrap(), 0);
    assert_eq!(txn.open_table(crate::POSTINGS).unwrap().len().unwrap(), 0);
    assert_eq!(txn.open_table(crate::COUNTS).unwrap().len().unwrap(), 0);
    // Only the format and block length stamps are left.
    assert_eq!(txn.open_table(crate::STATE).unwrap().len().unwrap(), 2);
}
