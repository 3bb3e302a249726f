//! The console's pages at the scale issue 15 names: a log of 1,000,000 events by 10,000
//! identities (the subjects a Kubernetes source reports, as most machine identities arrive),
//! each page timed on the server (in process, through the same router `graven serve` serves,
//! without the network): five requests each, the median kept.
//!
//! Ignored by default (it appends a million events first, about a minute in release); run it
//! in release: `cargo test --release -p graven-server --features testing --test console_scale
//! -- --ignored --nocapture` (`GRAVEN_CONSOLE_EVENTS`, `GRAVEN_CONSOLE_ACTORS` change the
//! sizes). Figures in BENCHMARKS.md §10.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use graven_server::testing::Harness;
use serde_json::json;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn k8s(first: u64, n: u64, actors: u64) -> String {
    let items: Vec<_> = (first..first + n)
        .map(|i| {
            let a = (i * 7919) % actors;
            let verb = ["get", "list", "patch", "create"][(i % 4) as usize];
            let code = if i % 10 == 0 { 403 } else { 200 };
            json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                   "auditID": format!("a-{i}"), "stage": "ResponseComplete",
                   "requestURI": format!("/apis/apps/v1/namespaces/ns{}/deployments/d{}", a % 50, i % 100),
                   "verb": verb,
                   "user": {"username": format!("system:serviceaccount:ns{}:sa{a}", a % 50)},
                   "sourceIPs": ["10.0.3.7"],
                   "objectRef": {"resource": "deployments", "namespace": format!("ns{}", a % 50), "name": format!("d{}", i % 100)},
                   "responseStatus": {"code": code},
                   "stageTimestamp": "2026-12-07T10:00:00.150000Z"})
        })
        .collect();
    json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}).to_string()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "appends a million events; run in release (see the module docs)"]
fn console_pages_at_a_million_events_and_ten_thousand_identities() {
    let events = env("GRAVEN_CONSOLE_EVENTS", 1_000_000);
    let actors = env("GRAVEN_CONSOLE_ACTORS", 10_000);
    let h = Harness::builder()
        .config("max_body_bytes = 16777216\nmax_batch_events = 4096\nmax_pending_events = 65536\n")
        .start();
    let body = json!({"id": "src:cluster", "kind": "integration", "owner": "team-platform", "role": "source",
                      "source": {"types": ["kubernetes"], "subjects": ["system:serviceaccount:*"]}});
    h.check(h.post("/v1/identities").bearer(h.token()).json(body)).expect(201);
    let source = h.new_key("src:cluster", json!({}));
    let started = Instant::now();
    let mut at = 0;
    while at < events {
        let n = 2000.min(events - at);
        h.check(h.post("/v1/sources/kubernetes").bearer(&source).json(k8s(at, n, actors))).expect(200);
        at += n;
    }
    println!("appended {events} events by {actors} subjects in {:.1} s", started.elapsed().as_secs_f64());
    // The index catches up before pages are timed.
    let deadline = Instant::now() + Duration::from_secs(1800);
    while h.check(h.get("/v1/events?limit=1").bearer(h.token())).expect(200).json()["indexed_size"].as_u64()
        < Some(h.size())
    {
        assert!(Instant::now() < deadline, "the index did not catch up");
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("indexed after {:.1} s", started.elapsed().as_secs_f64());

    let key = h.identity("svc:auditor", "auditor", &[]);
    let form = format!("credential={}", graven_server::console::html::url(&key));
    let a = h.check(h.post("/ui/signin").body("application/x-www-form-urlencoded", form)).expect(303);
    let cookie = a.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let mid = h.size() / 2;
    let pages = [
        "/ui/log".to_owned(),
        "/ui/identities".to_owned(),
        "/ui/search".to_owned(),
        "/ui/search?actor=system%3Aserviceaccount%3Ans7%3Asa1357".to_owned(),
        "/ui/search?action=k8s.patch&outcome=denied".to_owned(),
        format!("/ui/events/{mid}"),
        format!("/ui/events/{}", h.size() - 1),
    ];
    println!("| page | median of 5 (ms) | bytes |");
    for p in &pages {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let a = h.check(h.get(p).header("cookie", &cookie)).expect(200);
            times.push(t.elapsed());
            bytes = a.bytes().len();
        }
        println!("| `{p}` | {:.1} | {bytes} |", median(times).as_secs_f64() * 1000.0);
    }
}
