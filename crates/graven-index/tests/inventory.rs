//! The inventory against a naive recomputation from the list of events: random events (actors,
//! kinds, credentials, reporting sources, outcomes, times that may go backwards or be missing,
//! entries that are not JSON), added in random chunks with re-deliveries and reopens of the
//! index, and a clear and rebuild at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use graven_index::{Activity, Index, Seen, Usage};
use proptest::prelude::*;

/// 2026-11-01T00:00:00Z in Unix seconds (computed apart from the crate's own date code).
const BASE_S: i64 = 1_793_491_200;
const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;

#[derive(Debug, Clone)]
struct Ev {
    actor: Option<&'static str>,
    kind: Option<&'static str>,
    credential: Option<&'static str>,
    attested_by: Option<&'static str>,
    outcome: Option<&'static str>,
    /// (day since 2026-11-01 in 0..61, hour, minute)
    time: Option<(i64, i64, i64)>,
    garbage: bool,
}

impl Ev {
    fn micros(&self) -> Option<i64> {
        self.time.map(|(d, h, m)| BASE_S * 1_000_000 + d * DAY_US + h * HOUR_US + m * 60_000_000)
    }

    fn json(&self) -> Vec<u8> {
        if self.garbage {
            return b"\xffnot json{".to_vec();
        }
        let mut m = serde_json::Map::new();
        if let Some(a) = self.actor {
            let mut actor = serde_json::json!({"id": a, "auth": "api_key"});
            if let Some(k) = self.kind {
                actor["kind"] = k.into();
            }
            if let Some(c) = self.credential {
                actor["credential"] = c.into();
            }
            if let Some(s) = self.attested_by {
                actor["attested_by"] = serde_json::json!({"id": s, "kind": "integration", "auth": "api_key", "credential": format!("key:{s}")});
            }
            m.insert("actor".into(), actor);
        }
        if let Some(o) = self.outcome {
            m.insert("outcome".into(), o.into());
        }
        if let Some((d, h, mi)) = self.time {
            let (month, day) = if d < 30 { (11, d + 1) } else { (12, d - 29) };
            m.insert(
                "logged_at".into(),
                format!("2026-{month:02}-{day:02}T{h:02}:{mi:02}:00.000000Z").into(),
            );
        }
        m.insert("action".into(), "x.y".into());
        serde_json::to_vec(&m).unwrap()
    }
}

fn events() -> impl Strategy<Value = Vec<Ev>> {
    let pick = |v: Vec<&'static str>, p: f64| prop::option::weighted(p, prop::sample::select(v));
    let one = (
        pick(vec!["svc:a", "svc:b", "system:serviceaccount:ci:deployer", "é"], 0.95),
        pick(vec!["bot", "service_account", "kubernetes_service_account"], 0.7),
        pick(vec!["key:1", "key:2", "attested:src:k8s"], 0.8),
        pick(vec!["src:k8s", "src:bao"], 0.3),
        pick(vec!["success", "denied", "failure"], 0.8),
        prop::option::weighted(0.9, (0i64..61, 0i64..24, 0i64..60)),
        prop::bool::weighted(0.03),
    );
    prop::collection::vec(one, 0..120).prop_map(|raw| {
        raw.into_iter()
            .map(|(actor, kind, credential, attested_by, outcome, time, garbage)| Ev {
                actor,
                kind,
                credential,
                attested_by,
                outcome,
                time,
                garbage,
            })
            .collect()
    })
}

/// What the inventory should say about one actor, recomputed from the whole list.
#[derive(Debug, PartialEq)]
struct Naive {
    kind: Option<String>,
    first: Seen,
    last: Seen,
    events: u64,
    denied: u64,
    reported: u64,
    sources: Vec<String>,
    last_24h: u64,
    last_30d: u64,
}

fn naive(evs: &[Ev], now_us: i64) -> BTreeMap<String, Naive> {
    let mut out: BTreeMap<String, Naive> = BTreeMap::new();
    for (i, e) in evs.iter().enumerate() {
        let Some(id) = e.actor.filter(|_| !e.garbage) else { continue };
        let at = Seen { index: i as u64, at_us: e.micros() };
        let n = out.entry(id.to_owned()).or_insert(Naive {
            kind: None,
            first: at,
            last: at,
            events: 0,
            denied: 0,
            reported: 0,
            sources: Vec::new(),
            last_24h: 0,
            last_30d: 0,
        });
        n.last = at;
        n.events += 1;
        n.denied += u64::from(e.outcome == Some("denied"));
        if let Some(k) = e.kind {
            n.kind = Some(k.into());
        }
        if let Some(s) = e.attested_by {
            n.reported += 1;
            if !n.sources.iter().any(|x| x == s) {
                n.sources.push(s.into());
            }
        }
        if let Some(t) = e.micros() {
            let in_window = |len: i64, buckets: i64| {
                let (b, now) = (t.div_euclid(len), now_us.div_euclid(len));
                b <= now && b > now - buckets
            };
            n.last_24h += u64::from(in_window(HOUR_US, 24));
            n.last_30d += u64::from(in_window(DAY_US, 30));
        }
    }
    out
}

fn naive_credentials(evs: &[Ev]) -> BTreeMap<(String, String), Usage> {
    let mut out: BTreeMap<(String, String), Usage> = BTreeMap::new();
    for (i, e) in evs.iter().enumerate() {
        let Some(id) = e.actor.filter(|_| !e.garbage) else { continue };
        let at = Seen { index: i as u64, at_us: e.micros() };
        let mut uses = Vec::new();
        if let Some(c) = e.credential {
            uses.push((id.to_owned(), c.to_owned()));
        }
        if let Some(s) = e.attested_by {
            uses.push((s.to_owned(), format!("key:{s}")));
        }
        for key in uses {
            let u = out.entry(key).or_insert(Usage { first: at, last: at, events: 0 });
            u.last = at;
            u.events += 1;
        }
    }
    out
}

fn observed(index: &Index, now_us: i64) -> BTreeMap<String, Naive> {
    let (_, all) = index.inventory().unwrap();
    let ids: Vec<&str> = all.iter().map(|a| a.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "the inventory is in id order");
    all.into_iter()
        .map(|a: Activity| {
            let n = Naive {
                kind: a.kind.clone(),
                first: a.first,
                last: a.last,
                events: a.events,
                denied: a.denied,
                reported: a.reported,
                sources: a.sources.clone(),
                last_24h: a.events_last_hours(now_us),
                last_30d: a.events_last_days(now_us),
            };
            (a.id, n)
        })
        .collect()
}

fn observed_credentials(index: &Index, evs: &[Ev]) -> BTreeMap<(String, String), Usage> {
    let mut out = BTreeMap::new();
    let mut actors: Vec<&str> = evs.iter().flat_map(|e| [e.actor, e.attested_by]).flatten().collect();
    actors.sort_unstable();
    actors.dedup();
    for a in actors {
        for (c, u) in index.credentials(a).unwrap() {
            out.insert((a.to_owned(), c), u);
        }
    }
    out
}

/// The inventory read in chunks of `n` equals the whole read.
fn chunked(index: &Index, n: usize) -> Vec<Activity> {
    let mut out: Vec<Activity> = Vec::new();
    loop {
        let after = out.last().map(|a| a.id.clone());
        let (_, chunk) = index.inventory_after(after.as_deref(), n).unwrap();
        assert!(chunk.len() <= n);
        let done = chunk.len() < n;
        out.extend(chunk);
        if done {
            return out;
        }
    }
}

fn check(index: &Index, evs: &[Ev], nows: &[i64]) -> Result<(), TestCaseError> {
    let whole = index.inventory().unwrap().1;
    for n in [1, 2, 3, 100] {
        prop_assert_eq!(&chunked(index, n), &whole, "in chunks of {}", n);
    }
    for &now in nows {
        prop_assert_eq!(observed(index, now), naive(evs, now), "now = {}", now);
    }
    prop_assert_eq!(observed_credentials(index, evs), naive_credentials(evs));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Aggregates equal the naive recomputation at several `now`s at or after the newest event,
    /// however the entries were delivered (chunks, re-deliveries, reopens), and after a rebuild.
    #[test]
    fn inventory_matches_naive_recomputation(
        evs in events(),
        steps in prop::collection::vec((1usize..40, prop::bool::weighted(0.2), prop::bool::weighted(0.2)), 1..30),
        later in prop::collection::vec(0i64..(45 * DAY_US), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.redb");
        let bytes: Vec<Vec<u8>> = evs.iter().map(Ev::json).collect();
        let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
        let mut index = Index::open(&path).unwrap();
        let mut steps = steps.into_iter().cycle();
        let mut prev = 0usize;
        loop {
            let next = index.indexed_size().unwrap() as usize;
            if next >= refs.len() {
                break;
            }
            let (n, redeliver, reopen) = steps.next().unwrap();
            if redeliver {
                // The previous chunk again (a restart's re-delivery): counted once.
                index.add(prev as u64, &refs[prev..next]).unwrap();
            }
            let end = (next + n).min(refs.len());
            index.add(next as u64, &refs[next..end]).unwrap();
            prev = next;
            if reopen {
                index.flush().unwrap();
                drop(index);
                index = Index::open(&path).unwrap();
            }
        }
        let newest = evs.iter().filter(|e| !e.garbage).filter_map(Ev::micros).max().unwrap_or(BASE_S * 1_000_000);
        let nows: Vec<i64> = later.iter().map(|d| newest + d).chain([newest]).collect();
        check(&index, &evs, &nows)?;
        prop_assert_eq!(index.inventory().unwrap().0, evs.len() as u64);

        // `graven reindex`: cleared, rebuilt in one call, the same inventory.
        index.clear().unwrap();
        prop_assert!(index.inventory().unwrap().1.is_empty());
        index.add(0, &refs).unwrap();
        check(&index, &evs, &nows)?;
    }
}

/// A reported subject: kind, reporting source and credential come from the leaf's actor.
#[test]
fn a_reported_subject_is_recorded_with_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.redb")).unwrap();
    let leaf = br#"{"action":"k8s.create","actor":{"attested_by":{"auth":"api_key","credential":"key:3f0c","id":"src:cluster-prod","kind":"integration"},"auth":"attested","credential":"attested:src:cluster-prod","groups":["system:serviceaccounts"],"id":"system:serviceaccount:ci:deployer","kind":"kubernetes_service_account","platform":"kubernetes"},"logged_at":"2026-11-26T17:48:20.123456Z","outcome":"denied","resource":{"id":"prod/payments","type":"k8s:apps/deployments"},"v":1}"#;
    index.add(0, &[&leaf[..]]).unwrap();
    let a = index.activity("system:serviceaccount:ci:deployer").unwrap().unwrap();
    assert_eq!(a.kind.as_deref(), Some("kubernetes_service_account"));
    assert_eq!(a.sources, vec!["src:cluster-prod".to_owned()]);
    assert_eq!((a.events, a.denied, a.reported), (1, 1, 1));
    assert_eq!(a.last, Seen { index: 0, at_us: Some(1_795_715_300_123_456) });
    assert_eq!(a.events_last_hours(1_795_715_300_123_456 + HOUR_US), 1);
    assert_eq!(a.events_last_hours(1_795_715_300_123_456 + 24 * HOUR_US), 0);
    let creds = index.credentials("system:serviceaccount:ci:deployer").unwrap();
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].0, "attested:src:cluster-prod");
    // The source's own key is recorded as used, under the source.
    let src = index.credentials("src:cluster-prod").unwrap();
    assert_eq!(src.len(), 1);
    assert_eq!((src[0].0.as_str(), src[0].1.last.index, src[0].1.events), ("key:3f0c", 0, 1));
    // The source itself acted in no entry: it is not in the inventory of the log.
    assert_eq!(index.activity("src:cluster-prod").unwrap(), None);
}

/// At most `MAX_SOURCES` reporting sources are kept, the first ones seen.
#[test]
fn sources_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.redb")).unwrap();
    let leaves: Vec<Vec<u8>> = (0..20)
        .map(|i| format!(r#"{{"actor":{{"attested_by":{{"id":"src:{i:02}"}},"id":"u"}}}}"#).into_bytes())
        .collect();
    let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
    index.add(0, &refs).unwrap();
    let a = index.activity("u").unwrap().unwrap();
    assert_eq!(a.reported, 20);
    let want: Vec<String> = (0..graven_index::MAX_SOURCES).map(|i| format!("src:{i:02}")).collect();
    assert_eq!(a.sources, want);
}
