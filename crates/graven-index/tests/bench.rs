#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Indexing throughput. Run with
//! `cargo test --release -p graven-index --test bench -- --ignored --nocapture`.

use std::time::Instant;

use graven_index::{Index, Order, Query};

const ACTORS: [&str; 8] = [
    "user:alice",
    "user:bob",
    "user:carol",
    "svc:payments-worker",
    "svc:ledger",
    "svc:deployer",
    "user:dave",
    "user:erin",
];
const ACTIONS: [&str; 5] = ["deployment.create", "deployment.delete", "login", "secret.read", "role.grant"];

fn event(i: u64) -> Vec<u8> {
    let actor = ACTORS[(i % 8) as usize];
    let action = ACTIONS[(i / 3 % 5) as usize];
    let outcome = if i.is_multiple_of(17) { "failure" } else { "success" };
    let (s, us) = (i / 1000, i % 1000 * 1000);
    format!(
        r#"{{"action":"{action}","actor":{{"auth":"bearer","id":"{actor}","kind":"service_account"}},"logged_at":"2026-11-26T{:02}:{:02}:{:02}.{us:06}Z","outcome":"{outcome}","resource":{{"id":"prod/app-{}","type":"k8s.deployment"}},"v":1}}"#,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60,
        i % 1000,
    )
    .into_bytes()
}

#[test]
#[ignore = "benchmark: run in release mode"]
fn index_one_million() {
    const N: u64 = 1_000_000;
    const BATCH: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("index.redb")).unwrap();
    let events: Vec<Vec<u8>> = (0..N).map(event).collect();
    let bytes: usize = events.iter().map(Vec::len).sum();
    let start = Instant::now();
    for first in (0..N).step_by(BATCH as usize) {
        let refs: Vec<&[u8]> =
            events[first as usize..(first + BATCH) as usize].iter().map(Vec::as_slice).collect();
        index.add(first, &refs).unwrap();
    }
    let took = start.elapsed();
    assert_eq!(index.indexed_size().unwrap(), N);
    let file = std::fs::metadata(dir.path().join("index.redb")).unwrap().len();
    println!(
        "indexed {N} events ({} MB of JSON) in {:.2?} in batches of {BATCH}: {:.0} events/s; index file {} MB",
        bytes / 1_000_000,
        took,
        N as f64 / took.as_secs_f64(),
        file / 1_000_000
    );

    let queries = [
        ("actor", Query { actor: Some("user:alice".into()), ..Query::default() }),
        (
            "actor+action+outcome",
            Query {
                actor: Some("svc:ledger".into()),
                action: Some("role.grant".into()),
                outcome: Some("failure".into()),
                ..Query::default()
            },
        ),
        (
            "since/until window",
            Query {
                since: Some("2026-11-26T00:05:00.000000Z".into()),
                until: Some("2026-11-26T00:06:00.000000Z".into()),
                order: Order::OldestFirst,
                ..Query::default()
            },
        ),
        ("latest 100", Query::default()),
        ("no match", Query { actor: Some("user:nobody".into()), ..Query::default() }),
    ];
    for (name, q) in queries {
        let start = Instant::now();
        let page = index.search(&q).unwrap();
        println!(
            "search {name}: {} results, cursor: {}, {:.2?}",
            page.indices.len(),
            page.next_cursor.is_some(),
            start.elapsed()
        );
    }
    let start = Instant::now();
    index.clear().unwrap();
    println!("clear: {:.2?}", start.elapsed());
}

/// One event per `add` call: each call is one durable redb commit.
#[test]
#[ignore = "benchmark: run in release mode"]
fn index_one_at_a_time() {
    const N: u64 = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(&dir.path().join("index.redb")).unwrap();
    let events: Vec<Vec<u8>> = (0..N).map(event).collect();
    let start = Instant::now();
    for (i, e) in (0..).zip(&events) {
        index.add(i, &[e.as_slice()]).unwrap();
    }
    let took = start.elapsed();
    println!("{N} single-event adds in {took:.2?}: {:.0} commits/s", N as f64 / took.as_secs_f64());
}
