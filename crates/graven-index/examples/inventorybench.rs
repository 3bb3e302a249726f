#![allow(clippy::unwrap_used)]
//! The inventory at the console's scale: `cargo run --release -p graven-index --example inventorybench
//! -- [events] [actors] [rounds]` (default 1,000,000 events, 10,000 actors, 20 rounds).
//!
//! Indexes `events` synthetic ~450-byte events spread over 40 days and `actors` actors (a quarter of
//! them reported by one of 4 sources, a tenth of the entries denied, 2 credentials per actor) in `add`
//! calls of 16,384 entries (the indexer's transaction size) and a final flush, timing the whole; then,
//! `rounds` times, what `GET /v1/inventory` asks of the index: `inventory()` (every actor's activity,
//! one read), both windows computed for every actor, and the credentials of a page of 100 actors.
//! Prints the indexing time and the median, minimum and maximum of the read.
use std::time::Instant;

use graven_index::Index;

const DAY_S: u64 = 86_400;
/// 2026-10-29T00:00:00Z: 40 days before the benchmark's "now".
const START_S: u64 = 1_793_232_000;

fn logged_at(s: u64, us: u64) -> String {
    // Civil date from days (Howard Hinnant's algorithm), enough for a synthetic timestamp.
    let z = (s / DAY_S) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let t = s % DAY_S;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{us:06}Z", t / 3600, t / 60 % 60, t % 60)
}

fn event(i: u64, n: u64, actors: u64) -> Vec<u8> {
    let a = (i * 7919) % actors;
    let s = START_S + i * 40 * DAY_S / n;
    let outcome = if i.is_multiple_of(10) { "denied" } else { "success" };
    let actor = if a.is_multiple_of(4) {
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

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let n = args.first().copied().unwrap_or(1_000_000);
    let actors = args.get(1).copied().unwrap_or(10_000);
    let rounds = args.get(2).copied().unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("i.redb")).unwrap();
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
    let took = t.elapsed();
    println!(
        "indexed {n} events of {actors} actors in {:.1} s ({:.0} events/s), search index and inventory",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    let now_us = ((START_S + 40 * DAY_S) * 1_000_000) as i64;
    let mut times = Vec::new();
    let mut check = 0u64;
    for _ in 0..rounds {
        let t = Instant::now();
        let (size, all) = index.inventory().unwrap();
        for a in &all {
            check += a.events_last_hours(now_us) + a.events_last_days(now_us);
        }
        for a in all.iter().take(100) {
            check += index.credentials(&a.id).unwrap().len() as u64;
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!((size, all.len() as u64), (n, actors));
    }
    times.sort_by(f64::total_cmp);
    println!(
        "inventory read ({actors} actors, windows, credentials of 100): median {:.1} ms, min {:.1} ms, max {:.1} ms over {rounds} rounds (checksum {check})",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}
