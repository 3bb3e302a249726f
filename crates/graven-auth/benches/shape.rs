//! Event shaping, the CPU every ingested event costs the server before it is sequenced
//! (BENCHMARKS.md §3): the one-pass `shape` against the tree-based shaper it replaced
//! (`tests/reference/shape_tree.rs`), in the same run, on the load generator's ~450-byte event
//! (unsigned and client-signed) and on the same event with unsorted keys.
//!
//! Run: `cargo bench -p graven-auth --bench shape -- --warm-up-time 1 --measurement-time 3`

// Bench setup fails loudly rather than measuring the wrong thing.
#![allow(clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use graven_auth::principal::Actor;
use graven_auth::shape;

// Only the client path is measured.
#[allow(dead_code)]
#[path = "../tests/reference/shape_tree.rs"]
mod shape_tree;

/// As in `graven-core`'s `benches/core.rs`: what `bench/ingest.sh`'s load generator sends
/// (serde_json, keys sorted).
const LOADGEN_BODY: &str = r#"{"action":"deployment.update","details":{"change_ticket":"CHG-004213","image":"registry.example.com/payments-api:v2.17.3","labels":{"team":"payments"},"reason":"scale up for evening peak","replicas":{"from":3,"to":5},"seq":123456},"occurred_at":"2026-11-26T17:48:19.123456Z","outcome":"success","request_id":"req-3f9a0c1d2e4b5a69","resource":{"id":"prod/payments-api-42","type":"k8s.deployment"},"source":{"ip":"198.51.100.23","user_agent":"kubectl/1.31.2"}}"#;

/// The same event with its keys in the order a person writes them (not sorted).
const CLIENT_ORDER_BODY: &str = r#"{"action":"deployment.update","outcome":"success","occurred_at":"2026-11-26T17:48:19.123456Z","request_id":"req-3f9a0c1d2e4b5a69","resource":{"type":"k8s.deployment","id":"prod/payments-api-42"},"source":{"ip":"198.51.100.23","user_agent":"kubectl/1.31.2"},"details":{"seq":123456,"replicas":{"from":3,"to":5},"image":"registry.example.com/payments-api:v2.17.3","change_ticket":"CHG-004213","reason":"scale up for evening peak","labels":{"team":"payments"}}}"#;

fn shaping(c: &mut Criterion) {
    let actor = Actor {
        id: "svc:deployer".into(),
        kind: "service_account".into(),
        credential: "key:0123456789abcdef".into(),
        auth: "api_key".into(),
        extra: Vec::new(),
    };
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let signed =
        graven_core::event_sig::sign_event_v2(&key, LOADGEN_BODY.as_bytes(), "bench-1", 1_764_179_300)
            .expect("signs");
    let allowed = |_: &str| true;

    let mut g = c.benchmark_group("shape");
    g.throughput(Throughput::Elements(1));
    for (name, body) in [
        ("loadgen_body", LOADGEN_BODY.as_bytes()),
        ("client_order_body", CLIENT_ORDER_BODY.as_bytes()),
        ("signed_v2_body", &signed[..]),
    ] {
        let new = shape::shape_with(body, &actor, &allowed).expect("shapes");
        let old = shape_tree::shape_as(shape_tree::Writer::Client, body, &actor, &allowed).expect("shapes");
        assert_eq!(new.bytes, old.bytes, "{name}: the two paths agree");
        assert_eq!(
            new.client_sig.map(|c| c.message),
            old.client_sig.map(|c| c.message),
            "{name}: the same signed message"
        );
        let label = format!("{name}_{}B_to_{}B", body.len(), new.bytes.len());
        g.bench_with_input(BenchmarkId::new("tree", &label), body, |b, body| {
            b.iter(|| shape_tree::shape_as(shape_tree::Writer::Client, black_box(body), &actor, &allowed))
        });
        g.bench_with_input(BenchmarkId::new("one_pass", &label), body, |b, body| {
            b.iter(|| shape::shape_with(black_box(body), &actor, &allowed))
        });
    }
    g.finish();
}

criterion_group!(benches, shaping);
criterion_main!(benches);
