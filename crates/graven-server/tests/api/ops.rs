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
    assert!(m.content_type().starts_with("application/openmetrics-text"), "{}", m.content_type());
    let m = m.text();
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
