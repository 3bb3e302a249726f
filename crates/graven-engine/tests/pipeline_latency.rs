//! What pipelined commits do on a store whose requests are slow but not busy: the in-memory
//! store behind a fixed delay per request, the engine of a shared log with and without
//! pipelining, the same closed-loop load. A model of a remote object store (every request
//! takes a round trip, the service is never the bottleneck), not a measurement of one; the
//! figures go to BENCHMARKS.md §5b, marked as such.
//!
//! `cargo test --release -p graven-engine --test pipeline_latency -- --ignored --nocapture`
//! (env: DELAY_MS, default 20; CLIENTS, default 64; SECS, default 5).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use graven_core::note::SignerKey;
use graven_engine::engine::{Engine, EngineConfig, Entry, Shared};
use graven_engine::lease::Lease;
use graven_engine::reader::LogReader;
use graven_tlog::{Cond, MemStore, Object, ObjectStore, StoreError};

fn key() -> SignerKey {
    SignerKey::from_seed("latency.test/log", [9; 32]).unwrap()
}

/// The in-memory store, every request taking `delay` (writes of immutable objects in parallel,
/// as the S3 store sends them), counting requests.
#[derive(Debug)]
struct Remote {
    inner: MemStore,
    delay: Duration,
    requests: AtomicU64,
}

impl ObjectStore for Remote {
    fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError> {
        graven_clock::system().sleep(self.delay);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key, limit)
    }
    fn put(&self, key: &str, data: &[u8], cond: Cond<'_>, retain: bool) -> Result<String, StoreError> {
        graven_clock::system().sleep(self.delay);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.put(key, data, cond, retain)
    }
    fn put_immutable_all(&self, objects: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        std::thread::scope(|s| {
            let runs: Vec<_> = objects
                .chunks(objects.len().div_ceil(32).max(1))
                .map(|chunk| {
                    s.spawn(move || {
                        chunk.iter().try_for_each(|(k, d)| graven_tlog::put_immutable(self, k, d))
                    })
                })
                .collect();
            runs.into_iter().try_for_each(|r| r.join().unwrap())
        })
    }
    fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError> {
        graven_clock::system().sleep(self.delay);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.first_key_after(prefix, after)
    }
    fn location(&self) -> String {
        "remote-model".into()
    }
}

struct Run {
    events_per_s: f64,
    events_per_commit: f64,
    requests_per_1000: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn run(pipeline: bool, delay: Duration, clients: usize, secs: u64) -> Run {
    let store = Arc::new(Remote { inner: MemStore::new(), delay, requests: AtomicU64::new(0) });
    let dyn_store: Arc<dyn ObjectStore> = store.clone();
    let lease = Lease::with_node_id(
        dyn_store.clone(),
        None,
        Duration::from_secs(60),
        graven_clock::system(),
        "a".into(),
    );
    assert!(lease.tick());
    let shared =
        Shared { store: dyn_store.clone(), key: key(), lease, poll: Duration::from_millis(250), pipeline };
    let engine =
        Engine::start_shared(shared, LogReader::objects(dyn_store), EngineConfig::default()).unwrap();
    engine.subscribe().wait_for(|c| !c.checkpoint.is_empty()).await.unwrap();
    let (commits0, events0) = (engine.stats().commits.get(), engine.stats().events_committed.get());
    let requests0 = store.requests.load(Ordering::Relaxed);
    let clock = graven_clock::system();
    let started = clock.now();
    let until = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let e = engine.clone();
        let clock = clock.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while clock.now() < until {
                let t = clock.now();
                let body = format!("{{\"client\":{c},\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(500));
                e.submit(vec![Entry::raw(body.into_bytes())]).await.unwrap();
                lat.push(clock.now().since(t).as_secs_f64() * 1000.0);
                i += 1;
            }
            lat
        }));
    }
    let mut lat: Vec<f64> = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let wall = clock.now().since(started).as_secs_f64();
    let events = (engine.stats().events_committed.get() - events0) as f64;
    let commits = (engine.stats().commits.get() - commits0) as f64;
    let requests = (store.requests.load(Ordering::Relaxed) - requests0) as f64;
    engine.shutdown();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Run {
        events_per_s: events / wall,
        events_per_commit: events / commits.max(1.0),
        requests_per_1000: requests * 1000.0 / events.max(1.0),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a model for BENCHMARKS.md, run by hand"]
async fn pipelined_commits_on_a_store_with_a_fixed_delay() {
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let delay = Duration::from_millis(env("DELAY_MS", 20));
    let (clients, secs) = (env("CLIENTS", 64) as usize, env("SECS", 5));
    println!(
        "delay {delay:?} per request, {clients} clients submitting one event at a time, {secs} s per run"
    );
    for round in 1..=3 {
        for pipeline in if round % 2 == 1 { [true, false] } else { [false, true] } {
            let r = run(pipeline, delay, clients, secs).await;
            println!(
                "round {round} {:>9}: {:>8.0} events/s, {:>5.1} events/commit, {:>6.1} requests/1000 events, p50 {:>6.1} ms, p99 {:>6.1} ms",
                if pipeline { "pipelined" } else { "serial" },
                r.events_per_s,
                r.events_per_commit,
                r.requests_per_1000,
                r.p50_ms,
                r.p99_ms
            );
            assert!(r.events_per_s > 0.0);
        }
    }
}
