//! Unit tests that need crate internals: tiny scan budgets, timestamps that go backwards, long values,
//! and on-disk format changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Ev, collect_all, expected, ts};
use proptest::prelude::*;

use crate::schema::{
    BLOCKS, CLOCKS, COUNTS, EXACT_KEY_BYTES, K_FORMAT, MAX_KEY_BYTES, POSTINGS, STATE, index_key,
};
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
        txn.open_table(STATE).unwrap().insert(K_FORMAT, &b"graven-index/0"[..]).unwrap();
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
    assert_eq!(index_key("abc"), "abc");
    let v = long("xyz");
    let k = index_key(&v);
    assert!(k.len() <= MAX_KEY_BYTES && k.len() > EXACT_KEY_BYTES);
    assert!(v.starts_with(k));
    let exact = "a".repeat(MAX_KEY_BYTES);
    assert_eq!(index_key(&exact), exact);
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
    assert_eq!(txn.open_table(BLOCKS).unwrap().len().unwrap(), 0);
    assert_eq!(txn.open_table(CLOCKS).unwrap().len().unwrap(), 0);
    assert_eq!(txn.open_table(POSTINGS).unwrap().len().unwrap(), 0);
    assert_eq!(txn.open_table(COUNTS).unwrap().len().unwrap(), 0);
    // Only the format and block length stamps are left.
    assert_eq!(txn.open_table(STATE).unwrap().len().unwrap(), 2);
}

/// One raw log entry of the block-layout model test: few distinct values (so filters match many
/// entries), fields that may be missing or of the wrong type, and entries that are not JSON objects.
#[derive(Debug, Clone)]
enum Raw {
    Object { actor: Val, action: Val, resource: Val, outcome: Val, t: Option<u32> },
    NotObject(&'static str),
}

#[derive(Debug, Clone)]
enum Val {
    Missing,
    Str(&'static str),
    Number,
}

impl Raw {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Raw::NotObject(s) => s.as_bytes().to_vec(),
            Raw::Object { actor, action, resource, outcome, t } => {
                let mut m = serde_json::Map::new();
                let val = |v: &Val| match v {
                    Val::Missing => None,
                    Val::Str(s) => Some(serde_json::Value::from(*s)),
                    Val::Number => Some(serde_json::Value::from(7)),
                };
                if let Some(v) = val(actor) {
                    m.insert("actor".into(), serde_json::json!({ "id": v }));
                }
                if let Some(v) = val(action) {
                    m.insert("action".into(), v);
                }
                if let Some(v) = val(resource) {
                    m.insert("resource".into(), serde_json::json!({ "id": v, "type": "t" }));
                }
                if let Some(v) = val(outcome) {
                    m.insert("outcome".into(), v);
                }
                match t {
                    Some(t) => m.insert("logged_at".into(), ts(*t).into()),
                    None => m.insert("logged_at".into(), "2026-11-26 bad".into()),
                };
                serde_json::to_vec(&serde_json::Value::Object(m)).unwrap()
            }
        }
    }
}

fn val(values: &'static [&'static str]) -> impl Strategy<Value = Val> {
    prop_oneof![
        1 => Just(Val::Missing),
        1 => Just(Val::Number),
        8 => prop::sample::select(values).prop_map(Val::Str),
    ]
}

const MODEL_ACTORS: &[&str] = &["a", "b", ""];
const MODEL_ACTIONS: &[&str] = &["x", "y"];
const MODEL_OUTCOMES: &[&str] = &["ok", "no"];

/// Entries plus whether their timestamps are kept in log order (else they jump around).
fn raw_events() -> impl Strategy<Value = Vec<Raw>> {
    let one = prop_oneof![
        20 => (val(MODEL_ACTORS), val(MODEL_ACTIONS), val(&["r"]), val(MODEL_OUTCOMES),
            prop::option::weighted(0.9, 0u32..40))
            .prop_map(|(actor, action, resource, outcome, t)| Raw::Object { actor, action, resource, outcome, t }),
        1 => prop::sample::select(vec!["[1,2]", "\"s\"", "", "\u{ff}", "{\"actor\":"]).prop_map(Raw::NotObject),
    ];
    (prop::collection::vec(one, 0..300), prop::bool::ANY).prop_map(|(mut evs, sorted)| {
        if sorted {
            // Non-decreasing timestamps (where present), so `until` also narrows the range.
            let mut ts: Vec<u32> = evs
                .iter()
                .filter_map(|e| match e {
                    Raw::Object { t, .. } => *t,
                    Raw::NotObject(_) => None,
                })
                .collect();
            ts.sort_unstable();
            let mut it = ts.into_iter();
            for e in &mut evs {
                if let Raw::Object { t: Some(t), .. } = e {
                    *t = it.next().unwrap();
                }
            }
        }
        evs
    })
}

fn model_queries() -> impl Strategy<Value = Query> {
    (
        prop::option::weighted(0.4, prop::sample::select(vec!["a", "b", "", "zz"])),
        prop::option::weighted(0.3, prop::sample::select(MODEL_ACTIONS)),
        prop::option::weighted(0.2, prop::sample::select(vec!["r", "q"])),
        prop::option::weighted(0.3, prop::sample::select(MODEL_OUTCOMES)),
        prop::option::weighted(0.4, 0u32..42),
        prop::option::weighted(0.4, 0u32..42),
        0usize..7,
        prop::bool::ANY,
    )
        .prop_map(|(actor, action, resource, outcome, since, until, limit, newest)| Query {
            actor: actor.map(Into::into),
            action: action.map(Into::into),
            resource: resource.map(Into::into),
            outcome: outcome.map(Into::into),
            since: since.map(ts),
            until: until.map(ts),
            limit,
            cursor: None,
            order: if newest { Order::NewestFirst } else { Order::OldestFirst },
        })
}

/// The reference: every entry extracted on its own, filtered linearly.
fn model_search(model: &[crate::extract::Extracted<'_>], q: &Query) -> Vec<u64> {
    let want = [&q.actor, &q.action, &q.resource, &q.outcome];
    let mut out: Vec<u64> = (0u64..)
        .zip(model)
        .filter(|(_, e)| {
            want.iter().zip(&e.fields).all(|(w, have)| w.as_ref().is_none_or(|w| have.as_deref() == Some(w)))
                && q.since.as_ref().is_none_or(|s| e.logged_at.as_deref().is_some_and(|t| t >= s.as_str()))
                && q.until.as_ref().is_none_or(|u| e.logged_at.as_deref().is_some_and(|t| t < u.as_str()))
        })
        .map(|(i, _)| i)
        .collect();
    if q.order == Order::NewestFirst {
        out.reverse();
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The block layout against a naive model: tiny blocks (so queries cross many block boundaries and
    /// adds end mid-block), adds in random chunks with re-deliveries and overlaps, the index sometimes
    /// reopened between adds (so the partial last block is reloaded from disk) or flushed, then random
    /// queries paged to the end through cursors in both orders with small scan budgets.
    #[test]
    fn blocks_match_naive_model(
        evs in raw_events(),
        block_bits in 0u32..5,
        steps in prop::collection::vec((1usize..50, 0usize..10, 0usize..20), 1..20),
        qs in prop::collection::vec((model_queries(), 1usize..10), 1..12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.redb");
        let block_len = 1u64 << block_bits;
        let mut index = Index::open_with_block_len(&path, block_len).unwrap();
        let bytes: Vec<Vec<u8>> = evs.iter().map(Raw::bytes).collect();
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        let model: Vec<_> = refs.iter().map(|b| crate::extract::extract(b)).collect();

        let mut next = 0usize;
        let mut steps = steps.into_iter().cycle();
        while next < refs.len() {
            let (len, what, back) = steps.next().unwrap();
            let end = (next + len).min(refs.len());
            // Sometimes start before the end: the overlap is skipped.
            let first = if what == 0 { next.saturating_sub(back) } else { next };
            index.add(first as u64, &refs[first..end]).unwrap();
            next = end;
            prop_assert_eq!(index.indexed_size().unwrap(), next as u64);
            match what {
                1 => {
                    drop(index);
                    index = Index::open_with_block_len(&path, block_len).unwrap();
                    prop_assert_eq!(index.indexed_size().unwrap(), next as u64);
                }
                2 => index.flush().unwrap(),
                3 => {
                    // An already indexed range: a no-op.
                    let from = next.saturating_sub(back + 1);
                    index.add(from as u64, &refs[from..next]).unwrap();
                }
                _ => {}
            }
        }
        for (q, budget) in &qs {
            let want = model_search(&model, q);
            let (got, _) = collect_all(|q| index.search_budget(q, *budget), q, refs.len() + 2);
            prop_assert_eq!(&got, &want, "query {:?} budget {}", q, budget);
            let (full, _) = collect_all(|q| index.search(q), q, refs.len() + 2);
            prop_assert_eq!(&full, &want, "query {:?}", q);
        }
    }
}

/// Dropped without a flush: the index reopens consistent, at a size no larger than what was added,
/// and indexing resumes from there.
#[test]
fn unflushed_adds_resume_from_indexed_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    let evs: Vec<Ev> = (0..50).map(|i| Ev { actor: Some(format!("u{}", i % 3)), ..Ev::default() }).collect();
    {
        let index = Index::open_with_block_len(&path, 8).unwrap();
        common::add_all(&index, 0, &evs[..10]);
        index.flush().unwrap();
        common::add_all(&index, 10, &evs[10..21]);
    }
    let index = Index::open_with_block_len(&path, 8).unwrap();
    let size = index.indexed_size().unwrap();
    assert!((10..=21).contains(&size), "{size}");
    common::add_all(&index, size, &evs[size as usize..]);
    index.flush().unwrap();
    let q = Query { actor: Some("u1".into()), limit: MAX, order: Order::OldestFirst, ..Query::default() };
    let want: Vec<u64> = (0..50).filter(|i| i % 3 == 1).collect();
    assert_eq!(index.search(&q).unwrap().indices, want);
    // add_durable on an already indexed range still makes everything durable.
    index.add_durable(0, &[]).unwrap();
}

const MAX: usize = crate::MAX_LIMIT;

/// A file written by format 1 (per-entry tables) is cleared on open, its old tables included.
#[test]
fn format_one_tables_are_dropped() {
    use redb::{ReadableDatabase, TableDefinition, TableHandle};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TableDefinition::<&str, &[u8]>::new("state"))
            .unwrap()
            .insert("format", &b"graven-index/1"[..])
            .unwrap();
        txn.open_table(TableDefinition::<u64, &[u8]>::new("meta")).unwrap().insert(0, &b"x"[..]).unwrap();
        txn.open_table(TableDefinition::<(&str, u64), ()>::new("by_actor"))
            .unwrap()
            .insert(("a", 0), ())
            .unwrap();
        txn.commit().unwrap();
    }
    let index = Index::open(&path).unwrap();
    assert_eq!(index.indexed_size().unwrap(), 0);
    let txn = index.db.begin_read().unwrap();
    let names: Vec<String> = txn.list_tables().unwrap().map(|t| t.name().to_owned()).collect();
    assert!(!names.iter().any(|n| n == "meta" || n == "by_actor"), "{names:?}");
}
