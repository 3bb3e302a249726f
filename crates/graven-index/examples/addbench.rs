#![allow(clippy::unwrap_used)]
//! Index add throughput: `cargo run --release -p graven-index --example addbench -- <chunk>`.
use std::time::Instant;
fn main() {
    let n = 200_000u64;
    let evs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            format!(
                r#"{{"action":"deploy.{}","actor":{{"auth":"api_key","id":"admin","kind":"bootstrap"}},"details":{{"change_ticket":"CHG-{:06}","image":"registry.example.com/svc:v2.1.1","labels":{{"team":"platform"}},"reason":"scheduled rollout","replicas":{{"from":3,"to":5}},"seq":{}}},"logged_at":"2026-11-26T21:00:{:02}.{:06}Z","occurred_at":"2026-11-26T10:11:12.123456Z","outcome":"success","request_id":"req-{:016x}","resource":{{"id":"prod/svc{}-{}","type":"k8s.deployment"}},"source":{{"ip":"198.51.100.7","user_agent":"kubectl/1.31.2"}},"v":1}}"#,
                i % 7, i, i, (i / 100000) % 60, i % 1_000_000, i * 7919, i % 12, i % 100
            )
            .into_bytes()
        })
        .collect();
    let chunk: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let idx = graven_index::Index::open(&dir.path().join("i.redb")).unwrap();
    let t = Instant::now();
    let mut first = 0u64;
    for c in evs.chunks(chunk) {
        let s: Vec<&[u8]> = c.iter().map(|e| e.as_slice()).collect();
        idx.add(first, &s).unwrap();
        first += s.len() as u64;
    }
    let el = t.elapsed().as_secs_f64();
    println!("chunk {chunk}: {:.0} events/s", n as f64 / el);
}
