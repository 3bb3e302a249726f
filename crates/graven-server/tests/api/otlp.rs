//! OpenTelemetry logs (docs/sources.md): OTLP/HTTP at `POST /v1/logs`, protobuf or JSON, gzip
//! or not, as a `source` identity whose grant names `otlp`. The JSON bodies follow the OTLP/JSON
//! encoding (opentelemetry-proto's `examples/logs.json`); the protobuf ones are built here from
//! the messages of `logs.proto`, written out again independently of the server's.

use std::io::Write as _;

use graven_server::testing::Harness;
use prost::Message as _;
use serde_json::{Value, json};

fn source(h: &Harness, id: &str, subjects: &[&str]) -> String {
    let body = json!({"id": id, "kind": "integration", "owner": "team-observability", "role": "source",
                      "source": {"types": ["otlp"], "subjects": subjects}});
    h.check(h.post("/v1/identities").bearer(h.token()).json(body)).expect(201);
    h.new_key(id, json!({}))
}

fn attr(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

/// One resource's records, as OTLP/JSON.
fn request(service: &str, records: Vec<Value>) -> String {
    json!({"resourceLogs": [{
        "resource": {"attributes": [
            attr("service.name", json!({"stringValue": service})),
            attr("service.namespace", json!({"stringValue": "shop"})),
            attr("k8s.pod.name", json!({"stringValue": "payments-api-7d9f"})),
        ]},
        "scopeLogs": [{
            "scope": {"name": "payments.audit", "version": "1.2.0"},
            "logRecords": records
        }]
    }]})
    .to_string()
}

fn refund_record(uid: Option<&str>) -> Value {
    let mut attrs = vec![
        attr("enduser.id", json!({"stringValue": "alice@example.com"})),
        attr("refund.amount", json!({"intValue": "4200"})),
    ];
    if let Some(u) = uid {
        attrs.push(attr("log.record.uid", json!({"stringValue": u})));
    }
    json!({
        "timeUnixNano": "1544712660300000000",
        "observedTimeUnixNano": "1544712660300000001",
        "severityNumber": 17,
        "severityText": "ERROR",
        "eventName": "payment.refund",
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "body": {"stringValue": "refund failed: card expired"},
        "attributes": attrs
    })
}

fn post(
    h: &Harness,
    key: &str,
    ctype: &str,
    body: impl Into<axum::body::Bytes>,
) -> graven_server::testing::Answer {
    h.check(h.post("/v1/logs").bearer(key).body(ctype, body.into()))
}

#[test]
fn otlp_json_logs_keep_the_service_as_an_attested_actor() {
    let h = Harness::start();
    let key = source(&h, "src:otel-collector", &["payments-*"]);
    let info = json!({
        "observedTimeUnixNano": "1544712660400000000",
        "severityNumber": 9,
        "body": {"kvlistValue": {"values": [attr("msg", json!({"stringValue": "ok"})),
                                            attr("n", json!({"arrayValue": {"values": [{"intValue": 1}, {"doubleValue": 2.5}]}}))]}},
    });
    let body = request("payments-api", vec![refund_record(Some("01JF0000000000000000000001")), info]);
    let size = h.size();
    let a = post(&h, &key, "application/json", body.clone()).expect(200);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.json(), json!({}), "full success: an empty ExportLogsServiceResponse");

    let e = h.event(size);
    assert_eq!(e["action"], "payment.refund");
    assert_eq!(e["outcome"], "failure", "ERROR and above");
    assert_eq!(e["occurred_at"], "2018-12-13T14:51:00.300000000Z");
    assert_eq!(e["request_id"], "5b8efff798038103d269b633813fc60c");
    let actor = &e["actor"];
    assert_eq!(actor["id"], "payments-api", "the service, not enduser.id");
    assert_eq!(actor["kind"], "otel_service");
    assert_eq!(actor["auth"], "attested");
    assert_eq!(actor["credential"], "attested:src:otel-collector");
    assert_eq!(actor["attested_by"]["id"], "src:otel-collector");
    assert_eq!(actor["platform"], "otlp");
    assert_eq!(actor["resource"]["service.namespace"], "shop");
    assert_eq!(actor["resource"]["k8s.pod.name"], "payments-api-7d9f");
    let otlp = &e["details"]["otlp"];
    assert_eq!(otlp["severity_number"], 17);
    assert_eq!(otlp["severity_text"], "ERROR");
    assert_eq!(otlp["body"], "refund failed: card expired");
    assert_eq!(otlp["attributes"]["enduser.id"], "alice@example.com");
    assert_eq!(otlp["attributes"]["refund.amount"], 4200);
    assert_eq!(otlp["span_id"], "eee19b7ec3c1b174");
    assert_eq!(otlp["scope"], json!({"name": "payments.audit", "version": "1.2.0"}));
    assert_eq!(otlp["dedup_id"], "01JF0000000000000000000001");
    assert_eq!(otlp["record"], refund_record(Some("01JF0000000000000000000001")), "kept as sent");
    assert_eq!(otlp["record_sha256"].as_str().unwrap().len(), 64);

    let e = h.event(size + 1);
    assert_eq!(e["action"], "otel.log");
    assert!(e.get("outcome").is_none(), "INFO says nothing of an outcome");
    assert_eq!(e["occurred_at"], "2018-12-13T14:51:00.400000000Z", "observed time when no time");
    assert_eq!(e["details"]["otlp"]["body"], json!({"msg": "ok", "n": [1, 2.5]}));

    // The exporter retries (its answer was lost): the record with a log.record.uid is not
    // logged again; the one without is.
    let a = post(&h, &key, "application/json", body).expect(200).json();
    let msg = a["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(msg.contains("1 log records were already logged"), "{a}");
    assert!(a["partialSuccess"].get("rejectedLogRecords").is_none(), "none rejected: {a}");
    assert_eq!(h.size(), size + 3);
    assert_eq!(h.event(size + 2)["action"], "otel.log");
    assert_eq!(h.verify().tree_size, h.size());
}

/// The protobuf messages of opentelemetry-proto's logs.proto and common.proto that the tests
/// send.
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_logs: Vec<ResourceLogs>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceLogs {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_logs: Vec<ScopeLogs>,
        #[prost(string, tag = "3")]
        pub schema_url: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeLogs {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<Scope>,
        #[prost(message, repeated, tag = "2")]
        pub log_records: Vec<LogRecord>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Scope {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LogRecord {
        #[prost(fixed64, tag = "1")]
        pub time_unix_nano: u64,
        #[prost(fixed64, tag = "11")]
        pub observed_time_unix_nano: u64,
        #[prost(int32, tag = "2")]
        pub severity_number: i32,
        #[prost(string, tag = "3")]
        pub severity_text: String,
        #[prost(message, optional, tag = "5")]
        pub body: Option<AnyValue>,
        #[prost(message, repeated, tag = "6")]
        pub attributes: Vec<KeyValue>,
        #[prost(fixed32, tag = "8")]
        pub flags: u32,
        #[prost(bytes = "vec", tag = "9")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "10")]
        pub span_id: Vec<u8>,
        #[prost(string, tag = "12")]
        pub event_name: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
        pub value: Option<Value>,
    }
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "1")]
        String(String),
        #[prost(bool, tag = "2")]
        Bool(bool),
        #[prost(int64, tag = "3")]
        Int(i64),
        #[prost(double, tag = "4")]
        Double(f64),
        #[prost(message, tag = "5")]
        Array(ArrayValue),
        #[prost(message, tag = "6")]
        Kvlist(KeyValueList),
        #[prost(bytes = "vec", tag = "7")]
        Bytes(Vec<u8>),
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrayValue {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<AnyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValueList {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KeyValue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportLogsServiceResponse {
        #[prost(message, optional, tag = "1")]
        pub partial_success: Option<PartialSuccess>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PartialSuccess {
        #[prost(int64, tag = "1")]
        pub rejected_log_records: i64,
        #[prost(string, tag = "2")]
        pub error_message: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        #[prost(int32, tag = "1")]
        pub code: i32,
        #[prost(string, tag = "2")]
        pub message: String,
    }
}

fn kv(key: &str, v: pb::Value) -> pb::KeyValue {
    pb::KeyValue { key: key.into(), value: Some(pb::AnyValue { value: Some(v) }) }
}

fn pb_request(service: &str, records: Vec<pb::LogRecord>) -> Vec<u8> {
    pb::ExportLogsServiceRequest {
        resource_logs: vec![pb::ResourceLogs {
            resource: Some(pb::Resource {
                attributes: vec![
                    kv("service.name", pb::Value::String(service.into())),
                    kv("service.instance.id", pb::Value::String("i-1".into())),
                ],
            }),
            scope_logs: vec![pb::ScopeLogs {
                scope: Some(pb::Scope { name: "ci.audit".into(), version: String::new() }),
                log_records: records,
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

fn deploy_record() -> pb::LogRecord {
    pb::LogRecord {
        time_unix_nano: 1_765_100_000_123_456_789,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: Some(pb::AnyValue { value: Some(pb::Value::String("deployed".into())) }),
        attributes: vec![
            kv("event.name", pb::Value::String("deploy.finish".into())),
            kv("event.outcome", pb::Value::String("success".into())),
            kv("big", pb::Value::Int(1 << 60)),
            kv("blob", pb::Value::Bytes(vec![0, 1, 2])),
        ],
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        ..Default::default()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn otlp_protobuf_logs_gzip_or_not_answer_in_protobuf() {
    let h = Harness::start();
    let key = source(&h, "src:ci", &["ci-runner"]);
    let body = pb_request("ci-runner", vec![deploy_record()]);
    let size = h.size();
    let a = post(&h, &key, "application/x-protobuf", body.clone()).expect(200);
    assert_eq!(a.header("content-type"), Some("application/x-protobuf"));
    let resp = pb::ExportLogsServiceResponse::decode(a.bytes()).unwrap();
    assert_eq!(resp.partial_success, None);
    let e = h.event(size);
    assert_eq!(e["action"], "deploy.finish", "the event.name attribute");
    assert_eq!(e["outcome"], "success", "the event.outcome attribute");
    assert_eq!(e["occurred_at"], "2025-12-07T09:33:20.123456789Z");
    assert_eq!(e["request_id"], "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(e["actor"]["id"], "ci-runner");
    assert_eq!(e["actor"]["resource"], json!({"service.instance.id": "i-1"}));
    let otlp = &e["details"]["otlp"];
    assert_eq!(otlp["attributes"]["big"], "1152921504606846976", "past 2^53: a string");
    assert_eq!(otlp["attributes"]["blob"], "AAEC");
    assert_eq!(otlp["span_id"], "0102030405060708");
    // The record in OTLP/JSON, its digest of the protobuf bytes as sent.
    assert_eq!(otlp["record"]["timeUnixNano"], "1765100000123456789");
    assert_eq!(otlp["record"]["traceId"], "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(
        otlp["record"]["attributes"][2],
        json!({"key": "big", "value": {"intValue": "1152921504606846976"}})
    );

    // gzip, as the SDK exporters send with compression on.
    let zipped = h.check(h.post("/v1/logs").bearer(&key).header("content-encoding", "gzip").body(
        "application/x-protobuf",
        gzip(&pb_request("ci-runner", vec![deploy_record(), deploy_record()])),
    ));
    zipped.expect(200);
    assert_eq!(h.size(), size + 3);
    let zipped_json = h.check(
        h.post("/v1/logs")
            .bearer(&key)
            .header("content-encoding", "gzip")
            .body("application/json", gzip(request("ci-runner", vec![refund_record(None)]).as_bytes())),
    );
    zipped_json.expect(200);
    assert_eq!(h.event(size + 3)["action"], "payment.refund");
    // deflate (zlib), the exporters' other compression.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&pb_request("ci-runner", vec![deploy_record()])).unwrap();
    let deflated = h.check(
        h.post("/v1/logs")
            .bearer(&key)
            .header("content-encoding", "deflate")
            .body("application/x-protobuf", z.finish().unwrap()),
    );
    deflated.expect(200);
    assert_eq!(h.event(size + 4)["action"], "deploy.finish");
}

#[test]
fn otlp_refusals_are_typed_in_the_request_encoding_and_append_nothing() {
    let h = Harness::builder().config("max_batch_events = 50\nmax_body_bytes = 200000").start();
    let key = source(&h, "src:narrow", &["payments-api"]);
    let size = h.size();

    // A service outside the grant: 403, the whole request refused, the refusal recorded.
    let body = request("billing", vec![refund_record(None)]);
    let a = post(&h, &key, "application/json", body).expect(403);
    assert_eq!(a.header("content-type"), Some("application/json"));
    let s = a.json();
    assert_eq!(s["code"], 7, "PERMISSION_DENIED: {s}");
    assert_eq!(s["type"], "https://graven.dev/problems/source-not-allowed");
    assert!(s["message"].as_str().unwrap().contains("\"billing\" does not match"), "{s}");
    assert_eq!(h.size(), size + 1);
    assert_eq!(h.event(size)["details"]["reason"], "source-not-allowed");
    let size = h.size();
    let a =
        post(&h, &key, "application/x-protobuf", pb_request("billing", vec![deploy_record()])).expect(403);
    assert_eq!(pb::Status::decode(a.bytes()).unwrap().code, 7);
    assert_eq!(h.size(), size + 1);
    let size = h.size();

    // Bad bodies: 400 with what to fix, nothing appended.
    let deep = (0..12).fold(json!({"stringValue": "x"}), |v, _| json!({"arrayValue": {"values": [v]}}));
    let mut bad_trace = refund_record(None);
    bad_trace["traceId"] = json!("xyz");
    let mut bad_time = refund_record(None);
    bad_time["timeUnixNano"] = json!("yesterday");
    let no_service = json!({"resourceLogs": [{"resource": {"attributes": []},
                            "scopeLogs": [{"logRecords": [refund_record(None)]}]}]})
    .to_string();
    for (body, needle) in [
        ("[]".to_owned(), "not an OTLP/JSON ExportLogsServiceRequest"),
        ("{\"resourceLogs\": 5}".to_owned(), "resourceLogs is not a list"),
        ("{\"resourceLogs\": [[null, []]]}".to_owned(), "resourceLogs[0] is not an object"),
        (no_service, "resourceLogs[0].resource has no service.name"),
        (request("payments-api", vec![json!({"body": deep})]), "logRecords[0].body.arrayValue.values[0]"),
        (request("payments-api", vec![bad_trace]), "logRecords[0].traceId is not 16 bytes in hex"),
        (request("payments-api", vec![bad_time]), "logRecords[0].timeUnixNano"),
        (request("payments-api", vec![json!(5)]), "logRecords[0] is not a LogRecord object"),
    ] {
        let a = post(&h, &key, "application/json", body);
        assert_eq!(a.status(), 400, "{needle}: {}", a.text());
        let s = a.json();
        assert_eq!(s["code"], 3, "{s}");
        assert!(s["detail"].as_str().unwrap().contains(needle), "{needle}: {s}");
    }
    let a = post(&h, &key, "application/x-protobuf", vec![0xff, 0xff, 0xff]).expect(400);
    let s = pb::Status::decode(a.bytes()).unwrap();
    assert!(s.message.contains("not a protobuf ExportLogsServiceRequest"), "{}", s.message);
    let a = h.check(
        h.post("/v1/logs")
            .bearer(&key)
            .header("content-encoding", "gzip")
            .body("application/json", "not gzip"),
    );
    assert!(a.expect(400).json()["detail"].as_str().unwrap().contains("not valid gzip"));
    // Too many records, a body over the limit once decompressed, a content type OTLP does not
    // use.
    let many = request("payments-api", (0..51).map(|_| refund_record(None)).collect());
    let p = post(&h, &key, "application/json", many).expect(413).json();
    assert!(p["detail"].as_str().unwrap().contains("51 log records in one request; at most 50"), "{p}");
    let huge = request("payments-api", vec![json!({"body": {"stringValue": "x".repeat(300_000)}})]);
    let a = h.check(
        h.post("/v1/logs")
            .bearer(&key)
            .header("content-encoding", "gzip")
            .body("application/json", gzip(huge.as_bytes())),
    );
    assert!(a.expect(413).json()["detail"].as_str().unwrap().contains("decompressed"));
    let a = post(&h, &key, "text/plain", "hello").expect(415);
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    let a = h.check(
        h.post("/v1/logs").bearer(&key).header("content-encoding", "br").body("application/json", "{}"),
    );
    a.expect(415);
    assert_eq!(h.size(), size, "nothing appended");

    // A writer is not a source; a source granted only kubernetes may not send OTLP.
    let writer = h.identity("svc:w", "writer", &[]);
    post(&h, &writer, "application/json", request("payments-api", vec![])).expect(403);
    let body = json!({"id": "src:k8s", "kind": "integration", "owner": "o", "role": "source",
                      "source": {"types": ["kubernetes"], "subjects": ["*"]}});
    h.check(h.post("/v1/identities").bearer(h.token()).json(body)).expect(201);
    let k8s = h.new_key("src:k8s", json!({}));
    let s = post(&h, &k8s, "application/json", request("payments-api", vec![])).expect(403).json();
    assert!(s["detail"].as_str().unwrap().contains("does not name otlp"), "{s}");

    // And an empty request is a success that logs nothing.
    let size = h.size();
    assert_eq!(post(&h, &key, "application/json", "{}").expect(200).json(), json!({}));
    assert_eq!(h.size(), size);
}

#[test]
fn an_otlp_record_too_large_to_keep_whole_keeps_its_digest_and_a_bounded_mapping() {
    let h = Harness::start();
    let key = source(&h, "src:big", &["*"]);
    let mut r = refund_record(None);
    r["body"] = json!({"stringValue": "x".repeat(2 << 20)});
    let size = h.size();
    post(&h, &key, "application/json", request("payments-api", vec![r])).expect(200);
    let otlp = &h.event(size)["details"]["otlp"];
    assert!(otlp.get("record").is_none(), "not kept whole");
    assert!(otlp.get("body").is_none());
    assert_eq!(otlp["body_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(otlp["record_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(otlp["attributes"]["enduser.id"], "alice@example.com");
    assert_eq!(h.event(size)["action"], "payment.refund");
}
