#![allow(clippy::unwrap_used)]
//! Index add throughput: `cargo run --release -p graven-index --example addbench -- <chunk> [rounds]`.
//! Search latency: `... --example addbench -- --search` (indexes 1,000,000 events, then times queries).
//!
//! Indexes 200,000 synthetic ~520-byte events in `add` calls of `chunk` events into a fresh index,
//! `rounds` times (default 5), then one `flush` (included in the time); prints each round and the median,
//! by wall time and by this thread's CPU time (which other processes on the machine do not inflate).
use std::time::Instant;

fn event(i: u64) -> Vec<u8> {
    format!(
        r#"{{"action":"deploy.{}","actor":{{"auth":"api_key","id":"admin","kind":"bootstrap"}},"details":{{"change_ticket":"CHG-{:06}","image":"registry.example.com/svc:v2.1.1","labels":{{"team":"platform"}},"reason":"scheduled rollout","replicas":{{"from":3,"to":5}},"seq":{}}},"logged_at":"2026-11-26T21:00:{:02}.{:06}Z","occurred_at":"2026-11-26T10:11:12.123456Z","outcome":"success","request_id":"req-{:016x}","resource":{{"id":"prod/svc{}-{}","type":"k8s.deployment"}},"source":{{"ip":"198.51.100.7","user_agent":"kubectl/1.31.2"}},"v":1}}"#,
        i % 7,
        i,
        i,
        (i / 100000) % 60,
        i % 1_000_000,
        i * 7919,
        i % 12,
        i % 100
    )
    .into_bytes()
}

/// CPU time of this thread in ns (Linux), to see through other processes sharing the cores.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().next()?.parse().ok()
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--search") {
        return search();
    }
    let n = 200_000u64;
    let evs: Vec<Vec<u8>> = (0..n).map(event).collect();
    let chunk: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let rounds: usize = std::env::args().nth(2).map_or(5, |r| r.parse().unwrap());
    let mut rates = Vec::new();
    let mut cpu_rates = Vec::new();
    for _ in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let idx = graven_index::Index::open(&dir.path().join("i.redb")).unwrap();
        let t = Instant::now();
        let c = cpu_ns();
        let mut first = 0u64;
        for c in evs.chunks(chunk) {
            let s: Vec<&[u8]> = c.iter().map(|e| e.as_slice()).collect();
            idx.add(first, &s).unwrap();
            first += s.len() as u64;
        }
        idx.flush().unwrap();
        let el = t.elapsed().as_secs_f64();
        rates.push(n as f64 / el);
        if let (Some(c0), Some(c1)) = (c, cpu_ns()) {
            cpu_rates.push(n as f64 / ((c1 - c0) as f64 / 1e9));
        }
    }
    let shown: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    rates.sort_by(f64::total_cmp);
    cpu_rates.sort_by(f64::total_cmp);
    println!(
        "chunk {chunk}: median {:.0} events/s wall, {:.0} events/s per CPU-second (rounds: {})",
        rates[rates.len() / 2],
        cpu_rates.get(cpu_rates.len() / 2).copied().unwrap_or(0.0),
        shown.join(" ")
    );
}

/// Indexes 1,000,000 events in chunks of 65,536, then times some queries (median of 9 runs each).
fn search() {
    use graven_index::{Order, Query};
    let n = 1_000_000u64;
    let dir = tempfile::tempdir().unwrap();
    let idx = graven_index::Index::open(&dir.path().join("i.redb")).unwrap();
    let t = Instant::now();
    for first in (0..n).step_by(65_536) {
        let evs: Vec<Vec<u8>> = (first..(first + 65_536).min(n)).map(event).collect();
        let s: Vec<&[u8]> = evs.iter().map(|e| e.as_slice()).collect();
        idx.add(first, &s).unwrap();
    }
    idx.flush().unwrap();
    let file = std::fs::metadata(dir.path().join("i.redb")).unwrap().len();
    println!("indexed {n} events in {:.2?} (with generation); file {} MB", t.elapsed(), file / 1_000_000);
    let q = |f: fn(&mut Query)| {
        let mut q = Query::default();
        f(&mut q);
        q
    };
    let queries = [
        ("latest 100", q(|_| {})),
        ("actor (every entry), 1000", q(|q| (q.actor, q.limit) = (Some("admin".into()), 1000))),
        ("action 1/7", q(|q| q.action = Some("deploy.3".into()))),
        ("resource 1/300", q(|q| q.resource = Some("prod/svc5-45".into()))),
        (
            "resource 1/300, oldest",
            q(|q| (q.resource, q.order) = (Some("prod/svc5-45".into()), Order::OldestFirst)),
        ),
        (
            "resource + action 1/2100, limit 1000 (every posting of the resource)",
            q(|q| {
                (q.resource, q.action, q.limit) = (Some("prod/svc5-45".into()), Some("deploy.3".into()), 1000)
            }),
        ),
        (
            "resource + action 1/2100",
            q(|q| (q.resource, q.action) = (Some("prod/svc5-45".into()), Some("deploy.3".into()))),
        ),
        ("no such actor", q(|q| q.actor = Some("nobody".into()))),
        (
            "since/until 1 s window, oldest",
            q(|q| {
                q.since = Some("2026-11-26T21:00:05.000000Z".into());
                q.until = Some("2026-11-26T21:00:06.000000Z".into());
                q.order = Order::OldestFirst;
            }),
        ),
        (
            "action + until (first 10%)",
            q(|q| {
                q.action = Some("deploy.3".into());
                q.until = Some("2026-11-26T21:00:01.000000Z".into());
            }),
        ),
    ];
    for (name, query) in queries {
        let mut times = Vec::new();
        let mut page = None;
        for _ in 0..9 {
            let t = Instant::now();
            page = Some(idx.search(&query).unwrap());
            times.push(t.elapsed());
        }
        times.sort();
        let page = page.unwrap();
        println!(
            "{name}: {} results, cursor {}, median {:.2?}",
            page.indices.len(),
            page.next_cursor.is_some(),
            times[times.len() / 2]
        );
    }
    // Following every page of a 1/300 resource, newest first.
    let t = Instant::now();
    let mut query = q(|q| (q.resource, q.limit) = (Some("prod/svc5-45".into()), 100));
    let (mut pages, mut total) = (0, 0);
    loop {
        let page = idx.search(&query).unwrap();
        pages += 1;
        total += page.indices.len();
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    println!("paging resource 1/300 by 100: {total} results in {pages} pages, {:.2?}", t.elapsed());
}
