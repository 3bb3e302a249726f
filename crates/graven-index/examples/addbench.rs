#![allow(clippy::unwrap_used)]
//! Index add throughput: `cargo run --release -p graven-index --example addbench -- <chunk> [rounds]`.
//!
//! Indexes 200,000 synthetic ~520-byte events in `add` calls of `chunk` events into a fresh index,
//! `rounds` times (default 5), then one `flush` (included in the time); prints each round and the median.
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

fn main() {
    let n = 200_000u64;
    let evs: Vec<Vec<u8>> = (0..n).map(event).collect();
    let chunk: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let rounds: usize = std::env::args().nth(2).map_or(5, |r| r.parse().unwrap());
    let mut rates = Vec::new();
    for _ in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let idx = graven_index::Index::open(&dir.path().join("i.redb")).unwrap();
        let t = Instant::now();
        let mut first = 0u64;
        for c in evs.chunks(chunk) {
            let s: Vec<&[u8]> = c.iter().map(|e| e.as_slice()).collect();
            idx.add(first, &s).unwrap();
            first += s.len() as u64;
        }
        idx.flush().unwrap();
        let el = t.elapsed().as_secs_f64();
        rates.push(n as f64 / el);
    }
    let shown: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    rates.sort_by(f64::total_cmp);
    println!("chunk {chunk}: median {:.0} events/s (rounds: {})", rates[rates.len() / 2], shown.join(" "));
}
