//! OpenTelemetry logs end to end with the real binary and the OpenTelemetry Python SDK
//! (docs/sources.md): an admin registers an OTLP source with `graven identity create --role
//! source --source-type otlp`, a Python service logs through the SDK's OTLP/HTTP log exporter
//! (protobuf, then gzip, with the key in its `headers`), and an auditor finds the service's
//! events with `GET /v1/events?actor=`, attested by the source, the record kept; the log
//! verifies. The SDK is `opentelemetry-sdk` with `opentelemetry-exporter-otlp-proto-http` from
//! PyPI (scripts/test.sh installs them): without them the test fails, it does not skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{graven_as, start};
use serde_json::{Value, json};

/// The service: two records through the SDK's own Logger (one with an event name, severity
/// ERROR and a `log.record.uid`), one through Python's `logging` bridge, each batch exported
/// when the provider shuts down. argv: endpoint, key, compression.
const SERVICE: &str = r#"
import logging, sys
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

endpoint, key, compression = sys.argv[1], sys.argv[2], sys.argv[3]
resource = Resource.create({"service.name": "payments-api", "service.namespace": "shop",
                            "service.instance.id": "pod-7d9f", "deployment.environment.name": "prod"})
provider = LoggerProvider(resource=resource)
exporter = OTLPLogExporter(endpoint=endpoint, headers={"Authorization": "Bearer " + key},
                           compression=Compression(compression), timeout=10)
provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
logger = provider.get_logger("payments.audit", "1.2.0")
logger.emit(timestamp=1765100000123456789, severity_number=SeverityNumber.ERROR, severity_text="ERROR",
            body="refund refused: card expired", event_name="payment.refund",
            attributes={"enduser.id": "alice@example.com", "refund.amount": 4200,
                        "log.record.uid": "01JF00000000000000000000" + compression[:2].upper()})
handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
std = logging.getLogger("payments")
std.addHandler(handler)
std.setLevel(logging.INFO)
std.info("refund queued", extra={"event.name": "payment.queue", "event.outcome": "success"})
provider.force_flush()
provider.shutdown()
print("exported")
"#;

fn run_service(endpoint: &str, key: &str, compression: &str) {
    let out = Command::new("python3")
        .args(["-c", SERVICE, endpoint, key, compression])
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "the OpenTelemetry Python SDK service failed (install it with `python3 -m pip install \
         opentelemetry-sdk opentelemetry-exporter-otlp-proto-http`; scripts/test.sh does):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The exporter logs a failed export and carries on: a clean run says nothing.
    assert!(!stderr.contains("Failed to export"), "{stderr}");
}

#[test]
fn the_opentelemetry_python_sdk_logs_to_graven_as_an_attested_service() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("d"), &["--origin", "otlp.example/log"]);
    let server = format!("http://{}", s.addr);
    let out = graven_as(
        &[
            "identity",
            "create",
            "src:otel",
            "--kind",
            "integration",
            "--owner",
            "team-observability",
            "--role",
            "source",
            "--source-type",
            "otlp",
            "--subject",
            "payments-*",
            "--server",
            &server,
        ],
        &s.token,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = graven_as(&["key", "create", "src:otel", "--server", &server], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let endpoint = format!("{server}/v1/logs");
    run_service(&endpoint, &key, "none");
    run_service(&endpoint, &key, "gzip");

    // The auditor searches for the service: four events, each attested by the source.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let events = loop {
        let r = s.req("GET", "/v1/events?actor=payments-api", Some(&s.token), None);
        assert_eq!(r.status, 200, "{}", r.body);
        let found = r.json()["events"].as_array().unwrap().clone();
        if found.len() >= 4 || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(events.len(), 4, "{events:?}");
    let events: Vec<&Value> = events.iter().map(|e| &e["event"]).collect();
    for e in &events {
        let actor = &e["actor"];
        assert_eq!(actor["id"], "payments-api");
        assert_eq!(actor["kind"], "otel_service");
        assert_eq!(actor["auth"], "attested");
        assert_eq!(actor["attested_by"]["id"], "src:otel");
        assert_eq!(actor["attested_by"]["auth"], "api_key");
        assert_eq!(actor["resource"]["service.namespace"], "shop");
        assert_eq!(actor["resource"]["telemetry.sdk.language"], "python");
        let otlp = &e["details"]["otlp"];
        assert!(otlp["record"].is_object(), "the record is kept: {e}");
        assert_eq!(otlp["record_sha256"].as_str().unwrap().len(), 64);
    }
    let refunds: Vec<&&Value> = events.iter().filter(|e| e["action"] == "payment.refund").collect();
    assert_eq!(refunds.len(), 2, "one a run: {events:?}");
    let r = refunds[0];
    assert_eq!(r["occurred_at"], "2025-12-07T09:33:20.123456789Z");
    assert_eq!(r["outcome"], "failure");
    let otlp = &r["details"]["otlp"];
    assert_eq!(otlp["severity_text"], "ERROR");
    assert_eq!(otlp["body"], "refund refused: card expired");
    assert_eq!(otlp["attributes"]["enduser.id"], "alice@example.com");
    assert_eq!(otlp["scope"], json!({"name": "payments.audit", "version": "1.2.0"}));
    assert_eq!(otlp["record"]["eventName"], "payment.refund");
    let queued: Vec<&&Value> = events.iter().filter(|e| e["action"] == "payment.queue").collect();
    assert_eq!(queued.len(), 2, "{events:?}");
    assert_eq!(queued[0]["outcome"], "success");
    assert_eq!(queued[0]["details"]["otlp"]["body"], "refund queued");
    assert!(queued[0]["occurred_at"].as_str().unwrap().ends_with('Z'));

    let trust = tmp.path().join("trust");
    let out =
        graven_as(&["verify", &server, "--vkey", &s.vkey, "--trust-dir", trust.to_str().unwrap()], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
