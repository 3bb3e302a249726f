#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Ev, add_all, collect_all, expected, ts};
use graven_index::{DEFAULT_LIMIT, Index, IndexError, MAX_LIMIT, MAX_SCAN, Order, Query};
use proptest::prelude::*;

fn open() -> (tempfile::TempDir, Index) {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("index.redb")).unwrap();
    (dir, index)
}

fn ev(actor: &str, action: &str, t: u32) -> Ev {
    Ev {
        actor: Some(actor.into()),
        action: Some(action.into()),
        resource: Some("prod/payments".into()),
        outcome: Some("success".into()),
        logged_at: Some(ts(t)),
        garbage: false,
    }
}

// ---------------------------------------------------------------------------------------------------
// Property test: random events added in random chunks (with re-deliveries), random queries paged to the
// end through cursors, compared with a naive filter.

fn opt_of(alphabet: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop_oneof![1 => Just(None), 6 => prop::sample::select(alphabet).prop_map(|s| Some(s.to_owned()))]
}

const ACTORS: &[&str] = &["alice", "bob", "svc:payments-worker"];
const ACTIONS: &[&str] = &["deployment.create", "deployment.delete", "login"];
const RESOURCES: &[&str] = &["prod/payments", "prod/ledger", ""];
const OUTCOMES: &[&str] = &["success", "failure"];

/// Events with non-decreasing logged_at (when present), some without it, a few not JSON at all.
fn events() -> impl Strategy<Value = Vec<Ev>> {
    let one = (
        opt_of(ACTORS),
        opt_of(ACTIONS),
        opt_of(RESOURCES),
        opt_of(OUTCOMES),
        prop_oneof![8 => Just(true), 1 => Just(false)], // has logged_at
        0u32..3,                                        // time step
        prop_oneof![20 => Just(false), 1 => Just(true)], // garbage
    );
    prop::collection::vec(one, 0..150).prop_map(|raw| {
        let mut t = 1000;
        raw.into_iter()
            .map(|(actor, action, resource, outcome, has_t, step, garbage)| {
                t += step;
                Ev { actor, action, resource, outcome, logged_at: has_t.then(|| ts(t)), garbage }
            })
            .collect()
    })
}

fn queries() -> impl Strategy<Value = Query> {
    (
        prop::option::weighted(0.4, prop::sample::select(ACTORS)),
        prop::option::weighted(0.3, prop::sample::select(ACTIONS)),
        prop::option::weighted(0.3, prop::sample::select(RESOURCES)),
        prop::option::weighted(0.3, prop::sample::select(OUTCOMES)),
        prop::option::weighted(0.3, 995u32..1300),
        prop::option::weighted(0.3, 995u32..1300),
        prop_oneof![Just(0usize), 1usize..5, 5usize..40, Just(MAX_LIMIT)],
        prop_oneof![Just(Order::NewestFirst), Just(Order::OldestFirst)],
    )
        .prop_map(|(actor, action, resource, outcome, since, until, limit, order)| Query {
            actor: actor.map(Into::into),
            action: action.map(Into::into),
            resource: resource.map(Into::into),
            outcome: outcome.map(Into::into),
            since: since.map(ts),
            until: until.map(ts),
            limit,
            cursor: None,
            order,
        })
}

/// Steps `(len, kind, back)` of an indexing plan: each indexes the next `len` entries, plainly
/// (`kind` 2), after re-delivering an already indexed range starting `back + 1` entries back (`kind` 0), or
/// as one call starting `back + 1` entries back, overlapping the end (`kind` 1).
fn chunks() -> impl Strategy<Value = Vec<(usize, usize, usize)>> {
    prop::collection::vec((1usize..40, 0usize..3, 0usize..30), 1..30)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn paging_matches_naive_filter(evs in events(), plan in chunks(), qs in prop::collection::vec(queries(), 1..12)) {
        let (_dir, index) = open();
        let bytes: Vec<Vec<u8>> = evs.iter().map(Ev::json).collect();
        let all: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        // Every step indexes at least one new entry, after an optional re-delivery of an old range.
        let mut next = 0usize;
        let mut plan = plan.into_iter().cycle();
        while next < all.len() {
            let (len, kind, back) = plan.next().unwrap();
            let end = (next + len).min(all.len());
            let first = next.saturating_sub(back + 1);
            if kind == 0 {
                // Re-delivery of an already indexed range (possibly empty): a no-op.
                let stop = (first + len).min(next);
                index.add(first as u64, &all[first..stop]).unwrap();
                prop_assert_eq!(index.indexed_size().unwrap(), next as u64);
                index.add(next as u64, &all[next..end]).unwrap();
            } else if kind == 1 {
                // Overlapping the end: only the new part is indexed.
                index.add(first as u64, &all[first..end]).unwrap();
            } else {
                index.add(next as u64, &all[next..end]).unwrap();
            }
            next = end;
            prop_assert_eq!(index.indexed_size().unwrap(), next as u64);
        }
        for q in &qs {
            let want = expected(&evs, q);
            let (got, _) = collect_all(|q| index.search(q), q, evs.len() + 2);
            prop_assert_eq!(&got, &want, "query {:?}", q);
            // The index-free filter (`graven export --dir`) selects exactly the same entries.
            let scanned: Vec<u64> = (0u64..).zip(&all).filter(|(_, e)| graven_index::entry_matches(q, e)).map(|(i, _)| i).collect();
            let mut sorted = want.clone();
            sorted.sort_unstable();
            prop_assert_eq!(&scanned, &sorted, "entry_matches for query {:?}", q);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Unit tests.

#[test]
fn out_of_order_add_is_rejected() {
    let (_dir, index) = open();
    let e = ev("alice", "login", 1).json();
    match index.add(1, &[&e]) {
        Err(IndexError::OutOfOrder { expected: 0, got: 1 }) => {}
        other => panic!("{other:?}"),
    }
    index.add(0, &[&e, &e]).unwrap();
    match index.add(3, &[&e]) {
        Err(IndexError::OutOfOrder { expected: 2, got: 3 }) => {}
        other => panic!("{other:?}"),
    }
    // An empty call past the end is out of order too; at the end it is a no-op.
    assert!(matches!(index.add(5, &[]), Err(IndexError::OutOfOrder { expected: 2, got: 5 })));
    index.add(2, &[]).unwrap();
    assert_eq!(index.indexed_size().unwrap(), 2);
    let msg = IndexError::OutOfOrder { expected: 2, got: 3 }.to_string();
    assert!(msg.contains("expected first index 2, got 3"), "{msg}");
}

#[test]
fn re_adding_is_idempotent() {
    let (_dir, index) = open();
    let evs: Vec<Ev> = (0..10).map(|i| ev(if i % 2 == 0 { "alice" } else { "bob" }, "login", i)).collect();
    add_all(&index, 0, &evs[..6]);
    // Whole range already indexed: no-op, even with different bytes.
    let other = ev("mallory", "login", 0).json();
    index.add(2, &[&other, &other]).unwrap();
    index.add(0, &[other.as_slice(); 6]).unwrap();
    assert_eq!(index.indexed_size().unwrap(), 6);
    // Overlapping the end: only 6..10 is new.
    add_all(&index, 4, &evs[4..]);
    assert_eq!(index.indexed_size().unwrap(), 10);
    let q = Query { actor: Some("alice".into()), order: Order::OldestFirst, ..Query::default() };
    assert_eq!(index.search(&q).unwrap().indices, vec![0, 2, 4, 6, 8]);
    let q = Query { actor: Some("mallory".into()), ..Query::default() };
    assert!(index.search(&q).unwrap().indices.is_empty());
    let q = Query { limit: MAX_LIMIT, order: Order::OldestFirst, ..Query::default() };
    assert_eq!(index.search(&q).unwrap().indices, (0..10).collect::<Vec<_>>());
}

#[test]
fn non_json_and_partial_entries() {
    let (_dir, index) = open();
    let good = ev("alice", "login", 5).json();
    let entries: Vec<&[u8]> = vec![
        b"\x00\xff\xfe binary",
        b"[1,2,3]",
        b"\"just a string\"",
        b"{\"actor\":\"alice\",\"action\":\"login\"}", // actor is not an object: no actor
        b"{\"actor\":{\"id\":\"alice\"},\"logged_at\":\"yesterday\"}", // bad timestamp: none
        b"{\"actor\":{\"id\":\"alice\"},\"action\":\"login\"", // truncated JSON: nothing
        &good,
        b"",
    ];
    index.add(0, &entries).unwrap();
    assert_eq!(index.indexed_size().unwrap(), entries.len() as u64);
    let search = |q: Query| index.search(&Query { order: Order::OldestFirst, ..q }).unwrap().indices;
    assert_eq!(search(Query { actor: Some("alice".into()), ..Query::default() }), vec![4, 6]);
    assert_eq!(search(Query { action: Some("login".into()), ..Query::default() }), vec![3, 6]);
    assert_eq!(search(Query { since: Some(ts(0)), ..Query::default() }), vec![6]);
    assert_eq!(search(Query { until: Some(ts(99_999)), ..Query::default() }), vec![6]);
    assert_eq!(search(Query::default()), (0..8).collect::<Vec<_>>());
}

#[test]
fn bad_cursors_are_rejected() {
    let (_dir, index) = open();
    let evs: Vec<Ev> = (0..20).map(|i| ev("alice", "login", i)).collect();
    add_all(&index, 0, &evs);
    let q = Query { actor: Some("alice".into()), limit: 3, ..Query::default() };
    let page = index.search(&q).unwrap();
    assert_eq!(page.indices, vec![19, 18, 17]);
    let cursor = page.next_cursor.unwrap();
    let with = |q: &Query, c: &str| index.search(&Query { cursor: Some(c.to_owned()), ..q.clone() });
    assert_eq!(with(&q, &cursor).unwrap().indices, vec![16, 15, 14]);

    // Another order, other filters: rejected.
    for other in [
        Query { order: Order::OldestFirst, ..q.clone() },
        Query { actor: Some("bob".into()), ..q.clone() },
        Query { action: Some("login".into()), ..q.clone() },
        Query { since: Some(ts(0)), ..q.clone() },
    ] {
        assert!(matches!(with(&other, &cursor), Err(IndexError::BadCursor)), "{other:?}");
    }
    // Only the limit may change between pages.
    assert_eq!(with(&Query { limit: 1, ..q.clone() }, &cursor).unwrap().indices, vec![16]);

    // Garbage, truncations, edits.
    let mut bad = vec![
        String::new(),
        "x".into(),
        "not a cursor".into(),
        cursor[..cursor.len() - 1].to_owned(),
        format!("{cursor}0"),
        cursor.to_uppercase(),
        "0".repeat(cursor.len()),
        "é".repeat(22),
    ];
    for i in [0, 5, 20, cursor.len() - 1] {
        let mut b = cursor.clone().into_bytes();
        b[i] = if b[i] == b'0' { b'1' } else { b'0' };
        bad.push(String::from_utf8(b).unwrap());
    }
    let mut rng =
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha);
    for _ in 0..500 {
        let len = (rng.next_u32() % 60) as usize;
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        bad.push(String::from_utf8_lossy(&bytes).into_owned());
        let hex: String = bytes.iter().take(22).map(|b| format!("{b:02x}")).collect();
        bad.push(hex);
    }
    for c in &bad {
        assert!(matches!(with(&q, c), Err(IndexError::BadCursor)), "{c:?}");
    }
}

#[test]
fn limits_and_timestamps_are_validated() {
    let (_dir, index) = open();
    let evs: Vec<Ev> = (0..150).map(|i| ev("alice", "login", i)).collect();
    add_all(&index, 0, &evs);
    let page = index.search(&Query::default()).unwrap();
    assert_eq!(page.indices.len(), DEFAULT_LIMIT);
    assert_eq!(page.indices[0], 149);
    assert!(page.next_cursor.is_some());
    let page = index.search(&Query { limit: 1, ..Query::default() }).unwrap();
    assert_eq!(page.indices, vec![149]);
    let page = index.search(&Query { limit: MAX_LIMIT, ..Query::default() }).unwrap();
    assert_eq!(page.indices.len(), 150);
    assert_eq!(page.next_cursor, None);

    match index.search(&Query { limit: MAX_LIMIT + 1, ..Query::default() }) {
        Err(e @ IndexError::BadQuery(_)) => {
            assert_eq!(e.to_string(), "bad query: limit must be between 1 and 1000")
        }
        other => panic!("{other:?}"),
    }
    for bad in ["2026-11-26T17:48:20Z", "2026-11-26T17:48:20.123456", "2026-11-26 17:48:20.123456Z", "", "x"]
    {
        let q = Query { since: Some(bad.into()), ..Query::default() };
        assert!(matches!(index.search(&q), Err(IndexError::BadQuery(m)) if m.starts_with("since")), "{bad}");
        let q = Query { until: Some(bad.into()), ..Query::default() };
        assert!(matches!(index.search(&q), Err(IndexError::BadQuery(m)) if m.starts_with("until")), "{bad}");
    }
    // since inclusive, until exclusive.
    let q = Query { since: Some(ts(10)), until: Some(ts(13)), order: Order::OldestFirst, ..Query::default() };
    assert_eq!(index.search(&q).unwrap().indices, vec![10, 11, 12]);
    let q = Query { since: Some(ts(13)), until: Some(ts(10)), ..Query::default() };
    assert_eq!(index.search(&q).unwrap(), graven_index::Page::default());
}

#[test]
fn reopen_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.redb");
    let evs: Vec<Ev> = (0..7).map(|i| ev("alice", "login", i)).collect();
    {
        let index = Index::open(&path).unwrap();
        assert_eq!(index.indexed_size().unwrap(), 0);
        add_all(&index, 0, &evs[..5]);
    }
    let index = Index::open(&path).unwrap();
    assert_eq!(index.indexed_size().unwrap(), 5);
    assert!(matches!(index.add(0, &[]), Ok(())));
    add_all(&index, 5, &evs[5..]);
    let q = Query { actor: Some("alice".into()), ..Query::default() };
    assert_eq!(index.search(&q).unwrap().indices, vec![6, 5, 4, 3, 2, 1, 0]);
}

#[test]
fn clear_then_rebuild() {
    let (_dir, index) = open();
    let evs: Vec<Ev> = (0..30).map(|i| ev(if i < 15 { "alice" } else { "bob" }, "login", i)).collect();
    add_all(&index, 0, &evs);
    index.clear().unwrap();
    assert_eq!(index.indexed_size().unwrap(), 0);
    assert_eq!(index.search(&Query::default()).unwrap(), graven_index::Page::default());
    let q = Query { actor: Some("alice".into()), ..Query::default() };
    assert!(index.search(&q).unwrap().indices.is_empty());
    assert!(matches!(index.add(30, &[]), Err(IndexError::OutOfOrder { expected: 0, got: 30 })));
    // Rebuild with different content: nothing of the old index survives.
    let rebuilt: Vec<Ev> = (0..4).map(|i| ev("carol", "login", i)).collect();
    add_all(&index, 0, &rebuilt);
    assert_eq!(index.indexed_size().unwrap(), 4);
    assert!(index.search(&q).unwrap().indices.is_empty());
    let q = Query { actor: Some("carol".into()), order: Order::OldestFirst, ..Query::default() };
    assert_eq!(index.search(&q).unwrap().indices, vec![0, 1, 2, 3]);
    index.clear().unwrap();
    index.clear().unwrap();
    assert_eq!(index.indexed_size().unwrap(), 0);
}

#[test]
fn long_values_never_match_wrongly() {
    let (_dir, index) = open();
    let base = "é".repeat(511); // 1022 bytes
    let values =
        [format!("{base}ab"), format!("{base}ac"), format!("{base}a"), format!("{base}abc"), base.clone()];
    let evs: Vec<Ev> = values.iter().map(|v| Ev { actor: Some(v.clone()), ..ev("", "login", 0) }).collect();
    add_all(&index, 0, &evs);
    for (i, v) in values.iter().enumerate() {
        let q = Query { actor: Some(v.clone()), ..Query::default() };
        assert_eq!(index.search(&q).unwrap().indices, vec![i as u64], "{}", v.len());
    }
    let q = Query { actor: Some(format!("{base}abd")), ..Query::default() };
    assert!(index.search(&q).unwrap().indices.is_empty());
}

/// 300,000 candidates, one match at the very start: no call examines more than the budget, and
/// following the cursors finds the match.
///
/// Nothing can narrow the scan here: the log's timestamps went backwards once (the last entry), so
/// `until` no longer bounds the index range, and every entry but the first is a non-matching candidate.
#[test]
fn scan_budget_bounds_each_call() {
    let (_dir, index) = open();
    let n: u64 = 300_000;
    let hit = format!(r#"{{"logged_at":"{}"}}"#, ts(0)).into_bytes();
    let miss = format!(r#"{{"logged_at":"{}"}}"#, ts(10)).into_bytes();
    let back = format!(r#"{{"logged_at":"{}"}}"#, ts(5)).into_bytes();
    let mut first = 0u64;
    while first < n {
        let len = 50_000.min(n - first);
        let mut chunk: Vec<&[u8]> = vec![&miss; len as usize];
        if first == 0 {
            chunk[0] = &hit;
        }
        if first + len == n {
            chunk[len as usize - 1] = &back;
        }
        index.add(first, &chunk).unwrap();
        first += len;
    }

    for order in [Order::NewestFirst, Order::OldestFirst] {
        let q = Query { until: Some(ts(1)), order, ..Query::default() };
        let mut pages = Vec::new();
        let mut cursor = None;
        loop {
            let page = index.search(&Query { cursor: cursor.clone(), ..q.clone() }).unwrap();
            pages.push(page.indices.clone());
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
            assert!(pages.len() <= 10, "no progress");
        }
        assert_eq!(pages.concat(), vec![0], "{order:?}");
        match order {
            // Newest first: 100,000 candidates per call; the match is the third call's last candidate.
            Order::NewestFirst => assert_eq!(pages, vec![vec![], vec![], vec![0]]),
            // Oldest first: found at once, and the other 200,000 candidates take two more calls.
            Order::OldestFirst => assert_eq!(pages, vec![vec![0], vec![], vec![]]),
        }
        assert_eq!(pages.len(), n as usize / MAX_SCAN);
    }

    // With a time range that does bound the scan, the same log answers at once.
    let q = Query { since: Some(ts(10)), order: Order::OldestFirst, limit: 2, ..Query::default() };
    assert_eq!(index.search(&q).unwrap().indices, vec![1, 2]);
}
