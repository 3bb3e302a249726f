//! Criterion benchmarks for graven-core's hot paths, each next to the SHA-256 limit it is bound
//! by (see BENCHMARKS.md for measured figures and the exact command).
//!
//! Run: `cargo bench -p graven-core --bench core -- --warm-up-time 1 --measurement-time 3`

// Bench setup fails loudly rather than measuring the wrong thing.
#![allow(clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use graven_core::checkpoint::Checkpoint;
use graven_core::hash::{Hash, LeafIndex, TreeSize, leaf_hash, node_hash};
use graven_core::jcs::{self, Value};
use graven_core::jcs_direct;
use graven_core::merkle::{
    MemoryTree, RightEdge, consistency_proof, inclusion_proof, root, verify_consistency, verify_inclusion,
};
use graven_core::note::{self, SignerKey};
use sha2::{Digest, Sha256};

/// Leaves in the tree the proof benchmarks run against.
const PROOF_TREE_SIZE: u64 = 1_000_000;
/// Leaves pushed per `tree_build` iteration.
const BUILD_LEAVES: u64 = 65_536;

/// The entry text `bench/verify-1m.sh` appends: `entry-0`, `entry-1`, ...
fn entry(i: u64) -> Vec<u8> {
    format!("entry-{i}").into_bytes()
}

/// A cheap deterministic index sequence so proof benchmarks do not hit one path only.
struct Lcg(u64);
impl Lcg {
    fn next_below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The machine's SHA-256 limit, with the `sha2` crate Graven uses: bulk throughput, and the
/// cost of one compression-function call (a 55-byte message is the longest that pads to a
/// single 64-byte block; a 64-byte message already needs two).
fn sha256_limit(c: &mut Criterion) {
    let mut g = c.benchmark_group("sha256_limit");
    let buf = vec![0xa5u8; 1 << 20];
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("1MiB", |b| b.iter(|| Sha256::digest(black_box(&buf[..]))));

    g.throughput(Throughput::Elements(1));
    for (name, len) in [("one_block_55B", 55usize), ("two_blocks_64B", 64)] {
        let msg = vec![0x5au8; len];
        g.bench_function(name, |b| b.iter(|| Sha256::digest(black_box(&msg[..]))));
    }
    g.finish();
}

fn leaf_hash_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("leaf_hash");
    g.throughput(Throughput::Elements(1));
    for len in [8usize, 100, 500] {
        let e = vec![b'x'; len];
        g.bench_with_input(BenchmarkId::from_parameter(format!("{len}B")), &e, |b, e| {
            b.iter(|| leaf_hash(black_box(e)))
        });
    }
    g.finish();
}

fn node_hash_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("node_hash");
    g.throughput(Throughput::Elements(1));
    let (l, r) = (leaf_hash(b"left"), leaf_hash(b"right"));
    g.bench_function("node_hash", |b| b.iter(|| node_hash(black_box(&l), black_box(&r))));
    g.finish();
}

/// `RightEdge::push` of pre-hashed leaves (node hashing only: n - 1 node hashes per n leaves),
/// and the verifier's whole per-entry compute, leaf hash plus push, with no I/O.
fn tree_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_build");
    g.throughput(Throughput::Elements(BUILD_LEAVES));
    let leaves: Vec<Hash> = (0..BUILD_LEAVES).map(|i| leaf_hash(&entry(i))).collect();
    g.bench_function("right_edge_push_65536", |b| {
        b.iter(|| {
            let mut edge = RightEdge::new();
            for l in &leaves {
                edge.push(*l, |_, _, h| {
                    black_box(h);
                });
            }
            edge.root()
        })
    });
    let entries: Vec<Vec<u8>> = (0..BUILD_LEAVES).map(entry).collect();
    g.bench_function("leaf_hash_and_push_65536", |b| {
        b.iter(|| {
            let mut edge = RightEdge::new();
            for e in &entries {
                edge.push(leaf_hash(e), |_, _, h| {
                    black_box(h);
                });
            }
            edge.root()
        })
    });
    g.finish();
}

fn proof_tree() -> (MemoryTree, Hash) {
    let mut t = MemoryTree::new();
    for i in 0..PROOF_TREE_SIZE {
        t.push(leaf_hash(&entry(i)));
    }
    let r = root(&mut t, TreeSize(PROOF_TREE_SIZE)).expect("root of the bench tree");
    (t, r)
}

/// Proof generation and verification against a 1,000,000-leaf `MemoryTree`, at pseudo-random
/// leaf indices and old sizes (one proof per iteration).
fn proofs(c: &mut Criterion) {
    let (mut tree, root_n) = proof_tree();
    let size = TreeSize(PROOF_TREE_SIZE);
    let mut g = c.benchmark_group("proofs_1M");
    g.throughput(Throughput::Elements(1));

    let mut rng = Lcg(1);
    g.bench_function("inclusion_proof", |b| {
        b.iter_batched(
            || LeafIndex(rng.next_below(PROOF_TREE_SIZE)),
            |i| inclusion_proof(&mut tree, i, size).expect("inclusion proof"),
            BatchSize::SmallInput,
        )
    });
    let mut rng = Lcg(2);
    g.bench_function("consistency_proof", |b| {
        b.iter_batched(
            || TreeSize(1 + rng.next_below(PROOF_TREE_SIZE - 1)),
            |from| consistency_proof(&mut tree, from, size).expect("consistency proof"),
            BatchSize::SmallInput,
        )
    });

    // Pre-built proofs to verify, cycled through, as the raw 32-byte elements a verifier receives.
    const SAMPLES: usize = 1024;
    let raw = |p: Vec<Hash>| -> Vec<[u8; 32]> { p.into_iter().map(|h| h.0).collect() };
    let mut rng = Lcg(3);
    let incl: Vec<(LeafIndex, Hash, Vec<[u8; 32]>)> = (0..SAMPLES)
        .map(|_| {
            let i = rng.next_below(PROOF_TREE_SIZE);
            let p = inclusion_proof(&mut tree, LeafIndex(i), size).expect("inclusion proof");
            (LeafIndex(i), leaf_hash(&entry(i)), raw(p))
        })
        .collect();
    let cons: Vec<(TreeSize, Hash, Vec<[u8; 32]>)> = (0..SAMPLES)
        .map(|_| {
            let from = TreeSize(1 + rng.next_below(PROOF_TREE_SIZE - 1));
            let r = root(&mut tree, from).expect("old root");
            (from, r, raw(consistency_proof(&mut tree, from, size).expect("consistency proof")))
        })
        .collect();

    let mut k = 0usize;
    g.bench_function("verify_inclusion", |b| {
        b.iter(|| {
            let (i, leaf, p) = &incl[k % SAMPLES];
            k += 1;
            verify_inclusion(leaf, *i, size, black_box(p), &root_n).expect("inclusion verifies")
        })
    });
    let mut k = 0usize;
    g.bench_function("verify_consistency", |b| {
        b.iter(|| {
            let (from, r, p) = &cons[k % SAMPLES];
            k += 1;
            verify_consistency(*from, size, r, &root_n, black_box(p)).expect("consistency verifies")
        })
    });
    g.finish();
}

/// Signing a checkpoint note and opening (parsing + verifying) it.
fn notes(c: &mut Criterion) {
    let key = SignerKey::from_seed("bench.example/log", [7u8; 32]).expect("signer key");
    let vkey = key.verifier();
    let text = Checkpoint::new("bench.example/log", TreeSize(PROOF_TREE_SIZE), leaf_hash(b"root"))
        .expect("checkpoint")
        .to_text();
    let signed = key.sign(&text).expect("sign");
    let trusted = [vkey];

    let mut g = c.benchmark_group("note");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sign_checkpoint", |b| b.iter(|| key.sign(black_box(&text)).expect("sign")));
    g.bench_function("open_checkpoint", |b| {
        b.iter(|| note::open(black_box(signed.as_bytes()), &trusted).expect("open").text().len())
    });
    g.finish();
}

/// A client event as `bench/ingest.sh`'s load generator sends it (`make_event`: serde_json,
/// so its keys are already sorted), ~450 bytes.
const LOADGEN_BODY: &str = r#"{"action":"deployment.update","details":{"change_ticket":"CHG-004213","image":"registry.example.com/payments-api:v2.17.3","labels":{"team":"payments"},"reason":"scale up for evening peak","replicas":{"from":3,"to":5},"seq":123456},"occurred_at":"2026-11-26T17:48:19.123456Z","outcome":"success","request_id":"req-3f9a0c1d2e4b5a69","resource":{"id":"prod/payments-api-42","type":"k8s.deployment"},"source":{"ip":"198.51.100.23","user_agent":"kubectl/1.31.2"}}"#;

/// The same event with its keys in the order a person writes them (not sorted).
const CLIENT_ORDER_BODY: &str = r#"{"action":"deployment.update","outcome":"success","occurred_at":"2026-11-26T17:48:19.123456Z","request_id":"req-3f9a0c1d2e4b5a69","resource":{"type":"k8s.deployment","id":"prod/payments-api-42"},"source":{"ip":"198.51.100.23","user_agent":"kubectl/1.31.2"},"details":{"seq":123456,"replicas":{"from":3,"to":5},"image":"registry.example.com/payments-api:v2.17.3","change_ticket":"CHG-004213","reason":"scale up for evening peak","labels":{"team":"payments"}}}"#;

/// RFC 8785 canonicalisation of a ~450-byte client event (sorted and unsorted keys) and of the
/// ~600-byte leaf the server stores for it: the tree (`jcs::canonicalize`, parse then write)
/// against the one-pass `jcs_direct::canonicalize`, in the same run.
fn canonicalize(c: &mut Criterion) {
    let Ok(Value::Object(mut leaf)) = jcs::parse(LOADGEN_BODY.as_bytes()) else {
        panic!("the body is an object")
    };
    leaf.push((
        "actor".into(),
        Value::Object(vec![
            ("auth".into(), Value::String("api_key".into())),
            ("credential".into(), Value::String("key:0123456789abcdef".into())),
            ("id".into(), Value::String("svc:deployer".into())),
            ("kind".into(), Value::String("service_account".into())),
        ]),
    ));
    leaf.push(("logged_at".into(), Value::String("2026-11-26T17:48:20.123456Z".into())));
    leaf.push(("v".into(), Value::Number(1.0)));
    let mut leaf_bytes = Vec::new();
    Value::Object(leaf).write_canonical(&mut leaf_bytes);

    let mut g = c.benchmark_group("jcs_canonicalize");
    g.throughput(Throughput::Elements(1));
    for (name, doc) in [
        ("loadgen_body", LOADGEN_BODY.as_bytes()),
        ("client_order_body", CLIENT_ORDER_BODY.as_bytes()),
        ("leaf", &leaf_bytes[..]),
    ] {
        let tree = jcs::canonicalize(doc).expect("valid");
        assert_eq!(jcs_direct::canonicalize(doc).expect("valid"), tree, "{name}: the two paths agree");
        let label = format!("{name}_{}B", doc.len());
        g.bench_with_input(BenchmarkId::new("tree", &label), doc, |b, d| {
            b.iter(|| jcs::canonicalize(black_box(d)))
        });
        g.bench_with_input(BenchmarkId::new("one_pass", &label), doc, |b, d| {
            b.iter(|| jcs_direct::canonicalize(black_box(d)))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    sha256_limit,
    leaf_hash_bench,
    node_hash_bench,
    tree_build,
    proofs,
    notes,
    canonicalize
);
criterion_main!(benches);
