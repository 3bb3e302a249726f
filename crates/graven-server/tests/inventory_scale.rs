//! `GET /v1/inventory` at the console's scale, without HTTP: a log of 1,000,000 entries by
//! 10,000 identities (7,500 registered, each with 2 API keys, and 2,500 subjects reported by 4
//! sources), the registry in memory; the handler's work timed (registry copy, the index's
//! inventory read in chunks until the page is full, merge, filters, the page's credentials,
//! the answer encoded).
//!
//! Ignored by default (it indexes a million entries first); run it in release:
//! `cargo test --release -p graven-server --test inventory_scale -- --ignored --nocapture`
//! (`GRAVEN_INVENTORY_EVENTS`, `GRAVEN_INVENTORY_ACTORS` change the sizes). Figures in
//! BENCHMARKS.md §9.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Instant;

use graven_auth::identity::{IdentityRecord, KeyRecord, Kind, Role, Status};
use graven_server::http::inventory::{Chunks, Filters, csv, page};

const DAY_S: u64 = 86_400;
/// 2026-10-29T00:00:00Z: 40 days before the measurement's "now".
const START_S: u64 = 1_793_232_000;

fn logged_at(s: u64, us: u64) -> String {
    graven_core::event::format_timestamp((s * 1_000_000 + us) as i64)
}

fn is_reported(a: u64) -> bool {
    a.is_multiple_of(4)
}

fn event(i: u64, n: u64, actors: u64) -> Vec<u8> {
    let a = (i * 7919) % actors;
    let s = START_S + i * 40 * DAY_S / n;
    let outcome = if i.is_multiple_of(10) { "denied" } else { "success" };
    let actor = if is_reported(a) {
        format!(
            r#"{{"attested_by":{{"auth":"api_key","credential":"key:src{0}","id":"src:cluster-{0}","kind":"integration"}},"auth":"attested","credential":"attested:src:cluster-{0}","id":"system:serviceaccount:ns{1}:sa{1}","kind":"kubernetes_service_account","platform":"kubernetes"}}"#,
            a % 16 / 4,
            a
        )
    } else {
        format!(
            r#"{{"auth":"api_key","credential":"key:{:016x}","id":"svc:worker-{a:05}","kind":"service_account"}}"#,
            a * 2 + i % 2
        )
    };
    format!(
        r#"{{"action":"deploy.{}","actor":{actor},"details":{{"seq":{i}}},"logged_at":"{}","outcome":"{outcome}","request_id":"req-{i:016x}","resource":{{"id":"prod/svc{}","type":"k8s.deployment"}},"source":{{"ip":"198.51.100.7","user_agent":"kubectl/1.31.2"}},"v":1}}"#,
        i % 7,
        logged_at(s, i % 1_000_000),
        i % 100
    )
    .into_bytes()
}

fn record(a: u64) -> IdentityRecord {
    let created_ms = ((START_S - 90 * DAY_S) * 1000) as i64;
    let key = |k: u64| KeyRecord {
        key_id: format!("{k:016x}"),
        sha256: "0".repeat(64),
        created_ms,
        expires_ms: None,
        revoked_ms: None,
    };
    IdentityRecord {
        id: format!("svc:worker-{a:05}"),
        kind: Kind::ServiceAccount,
        owner: "team-platform".into(),
        description: String::new(),
        labels: BTreeMap::new(),
        allowed_actions: Vec::new(),
        role: Role::Writer,
        status: Status::Active,
        created_ms,
        status_changed_ms: None,
        last_seen_ms: None,
        keys: vec![key(a * 2), key(a * 2 + 1)],
        public_keys: Vec::new(),
        source: None,
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "indexes a million entries; run in release with --ignored"]
fn inventory_of_ten_thousand_identities_over_a_million_entries() {
    let n = env("GRAVEN_INVENTORY_EVENTS", 1_000_000);
    let actors = env("GRAVEN_INVENTORY_ACTORS", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let index = graven_index::Index::open(&dir.path().join("index.redb")).unwrap();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + 16_384).min(n);
        let chunk: Vec<Vec<u8>> = (i..end).map(|k| event(k, n, actors)).collect();
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        index.add(i, &refs).unwrap();
        i = end;
    }
    index.flush().unwrap();
    eprintln!("indexed {n} entries of {actors} identities in {:.1} s", t.elapsed().as_secs_f64());
    let records: BTreeMap<String, IdentityRecord> =
        (0..actors).filter(|&a| !is_reported(a)).map(|a| (format!("svc:worker-{a:05}"), record(a))).collect();
    let now_ms = ((START_S + 40 * DAY_S) * 1000) as i64;

    let cases: [(&str, Filters, bool); 4] = [
        ("first page (limit 100)", Filters { limit: 100, ..Filters::default() }, false),
        ("limit 1000", Filters { limit: 1000, ..Filters::default() }, false),
        (
            "dormant_days=1&reported=false (every row read and filtered)",
            Filters { limit: 100, dormant_days: Some(1), reported: Some(false), ..Filters::default() },
            false,
        ),
        ("CSV of all 10,000 rows", Filters { limit: 10_000, ..Filters::default() }, true),
    ];
    for (name, filters, as_csv) in cases {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..15 {
            let t = Instant::now();
            let records = records.clone(); // the registry's copy, as `Registry::records` makes
            let activities = Chunks::new(&index, None);
            let (items, _) =
                page(activities, &records, now_ms, &filters, |id| Ok(index.credentials(id).unwrap()))
                    .unwrap();
            let bytes = if as_csv { csv(&items).len() } else { serde_json::to_string(&items).unwrap().len() };
            assert!(bytes > 0);
            rows = items.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        eprintln!("{name}: {rows} rows, median {:.1} ms over 15 runs", median(times));
    }
}
