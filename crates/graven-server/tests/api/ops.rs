//! What operators and clients read besides the log: health, readiness, metrics, the OpenAPI
//! document.

use std::time::{Duration, Instant};

use graven_server::testing::Harness;

#[test]
fn health_readiness_metrics_and_openapi() {
    let h = Harness::start();
    let t = h.token().to_owned();
    let batch: String = (0..51).map(|i| format!("{{\"action\":\"a.{i}\"}}\n")).collect();
    h.check(h.post("/v1/events").bearer(&t).ndjson(batch)).expect(201);
    let size = h.size();
    assert_eq!(h.check(h.get("/healthz")).expect(200).text(), "ok\n");
    assert_eq!(h.check(h.get("/readyz")).expect(200).text(), "ready\n");
    // Once the index has caught up, the metrics say so.
    let deadline = Instant::now() + Duration::from_secs(20);
    let m = loop {
        let m = h.check(h.get("/metrics")).expect(200);
        if m.text().contains("graven_index_lag_events 0\n") {
            break m;
        }
        assert!(Instant::now() < deadline, "the index never caught up: {}", m.text());
        std::thread::sleep(Duration::from_millis(50));
    };
    // The classic text format unless OpenMetrics is asked for.
    assert_eq!(m.content_type(), "text/plain; version=0.0.4; charset=utf-8");
    let m = m.text();
    assert!(m.contains("# TYPE graven_events_committed_total counter\n"), "{m}");
    assert!(!m.contains("# EOF") && !m.contains("# UNIT"), "{m}");
    assert!(m.contains("# TYPE graven_build_info gauge\n"), "{m}");
    assert!(m.contains(&format!("graven_build_info{{version=\"{}\",", env!("CARGO_PKG_VERSION"))), "{m}");
    for process in ["process_cpu_seconds_total ", "process_resident_memory_bytes ", "process_open_fds "] {
        assert!(m.lines().any(|l| l.starts_with(process)), "no {process}in {m}");
    }
    let om = h
        .check(h.get("/metrics").header("accept", "application/openmetrics-text; version=1.0.0"))
        .expect(200);
    assert_eq!(om.content_type(), "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let om = om.text();
    assert!(om.contains("# TYPE graven_events_committed counter\n") && om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE graven_build info\n"), "{om}");
    assert!(m.contains(&format!("graven_events_committed_total {size}")), "{m}");
    assert!(m.contains("graven_commit_seconds_bucket"));
    assert!(m.contains(&format!("graven_index_size {size}\n")), "{m}");
    assert!(m.contains("graven_writer 1\n"), "{m}");
    assert_eq!(h.metric("graven_index_lag_events"), 0);
    assert!(h.served("POST /v1/events") >= 1);
    let api = h.check(h.get("/openapi.json")).expect(200);
    assert_eq!(api.content_type(), "application/json");
    assert!(api.json()["paths"]["/v1/events"]["post"].is_object());
}
