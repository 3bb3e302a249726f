//! OTLP logs, decoded and mapped, with no I/O: an `ExportLogsServiceRequest` (OTLP/HTTP,
//! protobuf or OTLP/JSON, opentelemetry-proto v1) becomes one [`Mapped`] record per log record,
//! or a [`OtlpError`] that says which record is wrong. The handler (`otlp.rs`) reads the body
//! and commits; the fuzz target `otlp_logs` compiles this file alone (so it names no other
//! module of the crate).
//!
//! Both encodings meet in OTLP/JSON: a protobuf log record is turned into the JSON the spec
//! gives for it (lowerCamelCase names, trace and span ids in hex, 64-bit integers as decimal
//! strings, enums as integers), and one mapper reads that. The record kept in the log is that
//! JSON; the digest kept beside it is of the record's bytes as received (the `LogRecord`
//! message's protobuf bytes, or its JSON text).

use std::fmt;

use base64::Engine as _;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// Deepest nesting of `AnyValue`s (arrays and key-value lists in a body or an attribute): 8
/// levels keep the stored record (four JSON levels a level in OTLP/JSON) within the event's
/// depth limit.
pub const MAX_ANY_DEPTH: usize = 8;
/// Largest mapped body, attribute set or resource attribute set kept as JSON beside the record
/// (and on the actor); a larger one is kept as its SHA-256 and size, so that the mapped fields
/// always fit an entry when the whole record does not.
pub const MAX_MAPPED_JSON: usize = 16 << 10;
/// Longest `service.name` and `log.record.uid`.
pub const MAX_ID: usize = 256;

/// The body's encoding, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (OTLP/JSON).
    Json,
}

/// Why a request cannot be taken; nothing of it is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtlpError {
    /// Not an `ExportLogsServiceRequest`, or a record that breaks OTLP's rules or ours.
    Invalid(String),
    /// More log records than one request may carry.
    TooMany { records: usize, max: usize },
}

impl fmt::Display for OtlpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtlpError::Invalid(s) => f.write_str(s),
            OtlpError::TooMany { records, max } => write!(
                f,
                "{records} log records in one request; at most {max} (lower the exporter's batch size, e.g. the SDK's max_export_batch_size or the Collector's send_batch_size)"
            ),
        }
    }
}

fn invalid(s: impl Into<String>) -> OtlpError {
    OtlpError::Invalid(s.into())
}

/// One log record, mapped (docs/sources.md has the table).
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// Where it is in the request: `resourceLogs[0].scopeLogs[1].logRecords[2]`.
    pub at: String,
    /// `action`, `occurred_at`, `outcome`, `request_id`.
    pub event: Map<String, Value>,
    /// What goes under `details.otlp` beside the record.
    pub platform_fields: Map<String, Value>,
    /// The record in OTLP/JSON.
    pub original: Value,
    /// The record's bytes as received.
    pub original_bytes: Vec<u8>,
    /// Its `log.record.uid` attribute.
    pub dedup_id: Option<String>,
    /// The resource's `service.name`.
    pub subject_id: String,
    /// The resource's other attributes, kept on the actor.
    pub subject_extra: Vec<(String, Value)>,
}

/// The actor kind of every OTLP subject.
pub const SUBJECT_KIND: &str = "otel_service";

/// Decodes an `ExportLogsServiceRequest` of at most `max_records` log records and maps each.
pub fn decode(body: &[u8], encoding: Encoding, max_records: usize) -> Result<Vec<Mapped>, OtlpError> {
    let resources = match encoding {
        Encoding::Protobuf => from_protobuf(body)?,
        Encoding::Json => from_json(body)?,
    };
    let records: usize = resources.iter().flat_map(|r| &r.scopes).map(|s| s.records.len()).sum();
    if records > max_records {
        return Err(OtlpError::TooMany { records, max: max_records });
    }
    let mut out = Vec::with_capacity(records);
    for (i, res) in resources.iter().enumerate() {
        let resource_at = format!("resourceLogs[{i}].resource");
        let subject = Subject::of(&res.resource, &resource_at)?;
        for (j, scope) in res.scopes.iter().enumerate() {
            let scope_at = format!("resourceLogs[{i}].scopeLogs[{j}].scope");
            let scope_fields = scope_fields(&scope.scope, &scope_at)?;
            for (k, (record, bytes)) in scope.records.iter().enumerate() {
                let at = format!("resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]");
                let Value::Object(rec) = record else {
                    return Err(invalid(format!("{at} is not a LogRecord object")));
                };
                out.push(map_record(rec, bytes, &at, &subject, &scope_fields)?);
            }
        }
    }
    Ok(out)
}

/// A request in OTLP/JSON's shape, whichever encoding it came in.
struct Resource {
    resource: Value,
    scopes: Vec<Scope>,
}

struct Scope {
    scope: Value,
    /// Each record in OTLP/JSON, with its bytes as received.
    records: Vec<(Value, Vec<u8>)>,
}

// ---- OTLP/JSON ----

/// A JSON object with its members unparsed (a map, so that serde cannot take an array for it).
type Object<'a> = std::collections::HashMap<String, &'a RawValue>;

fn from_json(body: &[u8]) -> Result<Vec<Resource>, OtlpError> {
    let req: Object<'_> = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "the body is not an OTLP/JSON ExportLogsServiceRequest ({e}); send OTLP/HTTP logs as application/json or application/x-protobuf"
        ))
    })?;
    let parse = |raw: &RawValue, at: &str| -> Result<Value, OtlpError> {
        serde_json::from_str(raw.get()).map_err(|e| invalid(format!("{at}: {e}")))
    };
    let mut out = Vec::new();
    for (i, rl) in members(&req, "resourceLogs", "")?.into_iter().enumerate() {
        let at = format!("resourceLogs[{i}]");
        let rl = object(rl, &at)?;
        let resource = match member(&rl, "resource") {
            Some(r) => parse(r, &format!("{at}.resource"))?,
            None => Value::Null,
        };
        let mut scopes = Vec::new();
        for (j, sl) in members(&rl, "scopeLogs", &at)?.into_iter().enumerate() {
            let at = format!("{at}.scopeLogs[{j}]");
            let sl = object(sl, &at)?;
            let scope = match member(&sl, "scope") {
                Some(s) => parse(s, &format!("{at}.scope"))?,
                None => Value::Null,
            };
            let mut records = Vec::new();
            for (k, raw) in members(&sl, "logRecords", &at)?.into_iter().enumerate() {
                let at = format!("{at}.logRecords[{k}]");
                records.push((parse(raw, &at)?, raw.get().as_bytes().to_vec()));
            }
            scopes.push(Scope { scope, records });
        }
        out.push(Resource { resource, scopes });
    }
    Ok(out)
}

fn object<'a>(raw: &'a RawValue, at: &str) -> Result<Object<'a>, OtlpError> {
    serde_json::from_str(raw.get()).map_err(|e| invalid(format!("{at} is not an object ({e})")))
}

/// A member by its lowerCamelCase name or its original snake_case one (protobuf's JSON mapping
/// takes both); null is a field's default.
fn member<'a>(o: &Object<'a>, camel: &str) -> Option<&'a RawValue> {
    o.get(camel).or_else(|| o.get(&snake(camel))).copied().filter(|r| r.get() != "null")
}

/// A repeated member: its elements, unparsed.
fn members<'a>(o: &Object<'a>, camel: &str, at: &str) -> Result<Vec<&'a RawValue>, OtlpError> {
    match member(o, camel) {
        None => Ok(Vec::new()),
        Some(r) => serde_json::from_str(r.get()).map_err(|e| {
            let at = if at.is_empty() { camel.to_owned() } else { format!("{at}.{camel}") };
            invalid(format!("{at} is not a list ({e})"))
        }),
    }
}

fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

// ---- protobuf (opentelemetry-proto v1: logs/v1/logs.proto, common/v1/common.proto) ----

mod pb {
    //! The messages of `ExportLogsServiceRequest`, with each `LogRecord` left as its bytes (a
    //! message and a `bytes` field share the wire type), so that its digest is of the bytes
    //! received.

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(message, repeated, tag = "1")]
        pub resource_logs: Vec<ResourceLogs>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceLogs {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_logs: Vec<ScopeLogs>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "2")]
        pub dropped_attributes_count: u32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeLogs {
        #[prost(message, optional, tag = "1")]
        pub scope: Option<Scope>,
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub log_records: Vec<Vec<u8>>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Scope {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub version: String,
        #[prost(message, repeated, tag = "3")]
        pub attributes: Vec<KeyValue>,
        #[prost(uint32, tag = "4")]
        pub dropped_attributes_count: u32,
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
        #[prost(uint32, tag = "7")]
        pub dropped_attributes_count: u32,
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
}

fn from_protobuf(body: &[u8]) -> Result<Vec<Resource>, OtlpError> {
    use prost::Message as _;
    let req = pb::Request::decode(body).map_err(|e| {
        invalid(format!(
            "the body is not a protobuf ExportLogsServiceRequest ({e}); send OTLP/HTTP logs as application/x-protobuf or application/json"
        ))
    })?;
    let mut out = Vec::new();
    for (i, rl) in req.resource_logs.into_iter().enumerate() {
        let resource = match rl.resource {
            None => Value::Null,
            Some(r) => {
                let mut o = Map::new();
                o.insert("attributes".into(), key_values(&r.attributes, 0));
                if r.dropped_attributes_count != 0 {
                    o.insert("droppedAttributesCount".into(), json!(r.dropped_attributes_count));
                }
                Value::Object(o)
            }
        };
        let mut scopes = Vec::new();
        for (j, sl) in rl.scope_logs.into_iter().enumerate() {
            let scope = match sl.scope {
                None => Value::Null,
                Some(s) => {
                    let mut o = Map::new();
                    if !s.name.is_empty() {
                        o.insert("name".into(), json!(s.name));
                    }
                    if !s.version.is_empty() {
                        o.insert("version".into(), json!(s.version));
                    }
                    if !s.attributes.is_empty() {
                        o.insert("attributes".into(), key_values(&s.attributes, 0));
                    }
                    Value::Object(o)
                }
            };
            let mut records = Vec::new();
            for (k, bytes) in sl.log_records.into_iter().enumerate() {
                let r = pb::LogRecord::decode(bytes.as_slice()).map_err(|e| {
                    invalid(format!(
                        "resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}] is not a LogRecord ({e})"
                    ))
                })?;
                records.push((record_json(&r), bytes));
            }
            scopes.push(Scope { scope, records });
        }
        out.push(Resource { resource, scopes });
    }
    Ok(out)
}

/// A protobuf log record in OTLP/JSON: default values left out, as protobuf's JSON mapping does.
fn record_json(r: &pb::LogRecord) -> Value {
    let mut o = Map::new();
    if r.time_unix_nano != 0 {
        o.insert("timeUnixNano".into(), json!(r.time_unix_nano.to_string()));
    }
    if r.observed_time_unix_nano != 0 {
        o.insert("observedTimeUnixNano".into(), json!(r.observed_time_unix_nano.to_string()));
    }
    if r.severity_number != 0 {
        o.insert("severityNumber".into(), json!(r.severity_number));
    }
    if !r.severity_text.is_empty() {
        o.insert("severityText".into(), json!(r.severity_text));
    }
    if let Some(b) = &r.body {
        o.insert("body".into(), any_json(b, 0));
    }
    if !r.attributes.is_empty() {
        o.insert("attributes".into(), key_values(&r.attributes, 0));
    }
    if r.dropped_attributes_count != 0 {
        o.insert("droppedAttributesCount".into(), json!(r.dropped_attributes_count));
    }
    if r.flags != 0 {
        o.insert("flags".into(), json!(r.flags));
    }
    if !r.trace_id.is_empty() {
        o.insert("traceId".into(), json!(hex(&r.trace_id)));
    }
    if !r.span_id.is_empty() {
        o.insert("spanId".into(), json!(hex(&r.span_id)));
    }
    if !r.event_name.is_empty() {
        o.insert("eventName".into(), json!(r.event_name));
    }
    Value::Object(o)
}

/// Past [`MAX_ANY_DEPTH`] a value becomes `{"tooDeep": true}`, which the mapper refuses: prost
/// itself stops at 100 levels, so this recursion is bounded either way.
fn any_json(v: &pb::AnyValue, depth: usize) -> Value {
    if depth > MAX_ANY_DEPTH {
        return json!({"tooDeep": true});
    }
    match &v.value {
        None => json!({}),
        Some(pb::Value::String(s)) => json!({"stringValue": s}),
        Some(pb::Value::Bool(b)) => json!({"boolValue": b}),
        Some(pb::Value::Int(i)) => json!({"intValue": i.to_string()}),
        Some(pb::Value::Double(d)) => match serde_json::Number::from_f64(*d) {
            Some(n) => json!({"doubleValue": n}),
            None if d.is_nan() => json!({"doubleValue": "NaN"}),
            None if *d > 0.0 => json!({"doubleValue": "Infinity"}),
            None => json!({"doubleValue": "-Infinity"}),
        },
        Some(pb::Value::Array(a)) => {
            let values: Vec<Value> = a.values.iter().map(|v| any_json(v, depth + 1)).collect();
            json!({"arrayValue": {"values": values}})
        }
        Some(pb::Value::Kvlist(l)) => json!({"kvlistValue": {"values": key_values(&l.values, depth + 1)}}),
        Some(pb::Value::Bytes(b)) => {
            json!({"bytesValue": base64::engine::general_purpose::STANDARD.encode(b)})
        }
    }
}

fn key_values(kvs: &[pb::KeyValue], depth: usize) -> Value {
    Value::Array(
        kvs.iter()
            .map(|kv| match &kv.value {
                Some(v) => json!({"key": kv.key, "value": any_json(v, depth)}),
                None => json!({"key": kv.key}),
            })
            .collect(),
    )
}

// ---- the mapping, from OTLP/JSON ----

/// A field by its lowerCamelCase name, or by its original snake_case one.
fn field<'a>(o: &'a Map<String, Value>, camel: &str) -> Option<&'a Value> {
    o.get(camel).or_else(|| o.get(&snake(camel))).filter(|v| !v.is_null())
}

/// An `AnyValue` as plain JSON: a string, a boolean, a number (an integer beyond ±2^53 as its
/// decimal string, so that no digit is lost), an array, an object; bytes in base64.
fn plain(v: &Value, at: &str, depth: usize) -> Result<Value, OtlpError> {
    if depth > MAX_ANY_DEPTH {
        return Err(invalid(format!(
            "{at} nests arrays or key-value lists more than {MAX_ANY_DEPTH} levels deep"
        )));
    }
    let Value::Object(o) = v else {
        return Err(invalid(format!("{at} is not an AnyValue object")));
    };
    if o.contains_key("tooDeep") {
        return Err(invalid(format!(
            "{at} nests arrays or key-value lists more than {MAX_ANY_DEPTH} levels deep"
        )));
    }
    if let Some(s) = field(o, "stringValue") {
        return s
            .as_str()
            .map(|s| json!(s))
            .ok_or_else(|| invalid(format!("{at}.stringValue is not a string")));
    }
    if let Some(b) = field(o, "boolValue") {
        return b
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| invalid(format!("{at}.boolValue is not a boolean")));
    }
    if let Some(i) = field(o, "intValue") {
        let n = int64(i).ok_or_else(|| invalid(format!("{at}.intValue is not a 64-bit integer")))?;
        return Ok(if n.unsigned_abs() <= 1 << 53 { json!(n) } else { json!(n.to_string()) });
    }
    if let Some(d) = field(o, "doubleValue") {
        return match d {
            Value::Number(_) => Ok(d.clone()),
            Value::String(s) if ["NaN", "Infinity", "-Infinity"].contains(&s.as_str()) => Ok(d.clone()),
            // Protobuf's JSON mapping also writes a double as a string.
            Value::String(s) => match s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                Some(n) => Ok(Value::Number(n)),
                None => Err(invalid(format!("{at}.doubleValue is not a number"))),
            },
            _ => Err(invalid(format!("{at}.doubleValue is not a number"))),
        };
    }
    if let Some(a) = field(o, "arrayValue") {
        let values = a.as_object().and_then(|a| field(a, "values")).map(Value::as_array);
        let values = match values {
            None => &Vec::new(),
            Some(Some(v)) => v,
            Some(None) => return Err(invalid(format!("{at}.arrayValue.values is not an array"))),
        };
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            out.push(plain(v, &format!("{at}.arrayValue.values[{i}]"), depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    if let Some(l) = field(o, "kvlistValue") {
        let values = l.as_object().and_then(|l| field(l, "values")).cloned().unwrap_or(json!([]));
        return attributes(&values, &format!("{at}.kvlistValue.values"), depth + 1).map(Value::Object);
    }
    if let Some(b) = field(o, "bytesValue") {
        return match b.as_str() {
            Some(s) if base64::engine::general_purpose::STANDARD.decode(s).is_ok() => Ok(json!(s)),
            _ => Err(invalid(format!("{at}.bytesValue is not base64"))),
        };
    }
    Ok(Value::Null)
}

/// A 64-bit integer as OTLP/JSON writes it: a decimal string or a number.
fn int64(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn uint64(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// A `KeyValue` list as one JSON object (a repeated key: the last value, as the spec's
/// attribute rules say keys are unique).
fn attributes(v: &Value, at: &str, depth: usize) -> Result<Map<String, Value>, OtlpError> {
    let list = v.as_array().ok_or_else(|| invalid(format!("{at} is not a list of KeyValue")))?;
    let mut out = Map::new();
    for (i, kv) in list.iter().enumerate() {
        let kv_at = format!("{at}[{i}]");
        let o = kv.as_object().ok_or_else(|| invalid(format!("{kv_at} is not a KeyValue object")))?;
        let key = field(o, "key")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{kv_at}.key is missing")))?;
        let value = match field(o, "value") {
            Some(v) => plain(v, &format!("{kv_at}.value"), depth)?,
            None => Value::Null,
        };
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

/// `value` as it is when its JSON is at most [`MAX_MAPPED_JSON`] bytes, else its SHA-256 and
/// size (the whole record, when it fits, still has it).
fn kept(name: &str, value: Value, into: &mut Vec<(String, Value)>) {
    let text = value.to_string();
    if text.len() <= MAX_MAPPED_JSON {
        into.push((name.to_owned(), value));
    } else {
        use sha2::Digest as _;
        into.push((format!("{name}_sha256"), json!(hex(&sha2::Sha256::digest(text.as_bytes())))));
        into.push((format!("{name}_json_bytes"), json!(text.len())));
    }
}

/// The subject of a resource's records: its `service.name`, with its other attributes.
struct Subject {
    id: String,
    extra: Vec<(String, Value)>,
}

impl Subject {
    fn of(resource: &Value, at: &str) -> Result<Subject, OtlpError> {
        let attrs = match resource.as_object().and_then(|r| field(r, "attributes")) {
            Some(a) => attributes(a, &format!("{at}.attributes"), 0)?,
            None => Map::new(),
        };
        let mut attrs = attrs;
        let id = match attrs.remove("service.name") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID => s,
            _ => {
                return Err(invalid(format!(
                    "{at} has no service.name attribute (a string of 1 to {MAX_ID} bytes): the service is the actor of its logs; set OTEL_SERVICE_NAME or the resource's service.name"
                )));
            }
        };
        let mut extra = Vec::new();
        if !attrs.is_empty() {
            kept("resource", Value::Object(attrs), &mut extra);
        }
        Ok(Subject { id, extra })
    }
}

fn scope_fields(scope: &Value, at: &str) -> Result<Map<String, Value>, OtlpError> {
    let mut out = Map::new();
    let Some(s) = scope.as_object() else {
        return Ok(out);
    };
    for k in ["name", "version"] {
        match field(s, k) {
            None => {}
            Some(Value::String(v)) => {
                out.insert(k.into(), json!(v));
            }
            Some(_) => return Err(invalid(format!("{at}.{k} is not a string"))),
        }
    }
    if let Some(a) = field(s, "attributes") {
        let mut kv = Vec::new();
        kept("attributes", Value::Object(attributes(a, &format!("{at}.attributes"), 0)?), &mut kv);
        out.extend(kv);
    }
    Ok(out)
}

/// `SEVERITY_NUMBER_ERROR`: from here up a record says something failed.
const SEVERITY_ERROR: i64 = 17;
const SEVERITY_NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// `severityNumber`: an integer, or the enum's name (`SEVERITY_NUMBER_ERROR2`).
fn severity(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().filter(|n| (0..=24).contains(n)),
        Value::String(s) => {
            let name = s.strip_prefix("SEVERITY_NUMBER_")?;
            if name == "UNSPECIFIED" {
                return Some(0);
            }
            let (base, step) = match name.find(|c: char| c.is_ascii_digit()) {
                Some(p) => (&name[..p], name[p..].parse::<i64>().ok().filter(|s| (2..=4).contains(s))?),
                None => (name, 1),
            };
            let level = SEVERITY_NAMES.iter().position(|n| *n == base)? as i64;
            Some(level * 4 + step)
        }
        _ => None,
    }
}

/// A trace or span id in OTLP/JSON: hex of `bytes` bytes (empty: none).
fn id_hex(o: &Map<String, Value>, name: &str, bytes: usize, at: &str) -> Result<Option<String>, OtlpError> {
    match field(o, name) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() == 2 * bytes && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(s.to_ascii_lowercase()))
        }
        Some(_) => Err(invalid(format!("{at}.{name} is not {bytes} bytes in hex"))),
    }
}

fn map_record(
    rec: &Map<String, Value>,
    bytes: &[u8],
    at: &str,
    subject: &Subject,
    scope: &Map<String, Value>,
) -> Result<Mapped, OtlpError> {
    let attrs = match field(rec, "attributes") {
        Some(a) => attributes(a, &format!("{at}.attributes"), 0)?,
        None => Map::new(),
    };
    let body = match field(rec, "body") {
        Some(b) => Some(plain(b, &format!("{at}.body"), 0)?),
        None => None,
    };
    let text = |k: &str| -> Result<Option<&str>, OtlpError> {
        match field(rec, k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
            Some(_) => Err(invalid(format!("{at}.{k} is not a string"))),
        }
    };
    let time = |k: &str| -> Result<Option<u64>, OtlpError> {
        match field(rec, k) {
            None => Ok(None),
            Some(v) => uint64(v)
                .map(|n| Some(n).filter(|n| *n != 0))
                .ok_or_else(|| invalid(format!("{at}.{k} is not a 64-bit count of nanoseconds"))),
        }
    };
    let time_unix = time("timeUnixNano")?;
    let observed = time("observedTimeUnixNano")?;
    let severity_number = match field(rec, "severityNumber") {
        None => None,
        Some(v) => Some(severity(v).ok_or_else(|| invalid(format!("{at}.severityNumber is not 0 to 24")))?),
    };
    let severity_text = text("severityText")?;
    let event_name =
        text("eventName")?.or(attrs.get("event.name").and_then(Value::as_str).filter(|s| !s.is_empty()));
    let trace_id = id_hex(rec, "traceId", 16, at)?;
    let span_id = id_hex(rec, "spanId", 8, at)?;

    let mut ev = Map::new();
    let action = match event_name {
        Some(n) if n.len() <= 1024 && !n.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("graven.")) => n,
        _ => "otel.log",
    };
    ev.insert("action".into(), json!(action));
    if let Some(ns) = time_unix.or(observed) {
        ev.insert("occurred_at".into(), json!(rfc3339(ns)));
    }
    let stated = attrs
        .get("event.outcome")
        .and_then(Value::as_str)
        .filter(|o| ["success", "failure", "denied"].contains(o));
    let outcome = stated.or(severity_number.filter(|s| *s >= SEVERITY_ERROR).map(|_| "failure"));
    if let Some(o) = outcome {
        ev.insert("outcome".into(), json!(o));
    }
    if let Some(t) = &trace_id {
        ev.insert("request_id".into(), json!(t));
    }

    let mut fields = Vec::new();
    if let Some(n) = severity_number {
        fields.push(("severity_number".to_owned(), json!(n)));
    }
    if let Some(s) = severity_text {
        fields.push(("severity_text".to_owned(), json!(s)));
    }
    if let Some(n) = event_name {
        fields.push(("event_name".to_owned(), json!(n)));
    }
    if let Some(b) = body {
        kept("body", b, &mut fields);
    }
    if !attrs.is_empty() {
        kept("attributes", Value::Object(attrs.clone()), &mut fields);
    }
    if let Some(t) = trace_id {
        fields.push(("trace_id".to_owned(), json!(t)));
    }
    if let Some(s) = span_id {
        fields.push(("span_id".to_owned(), json!(s)));
    }
    if let Some(ns) = observed {
        fields.push(("observed_at".to_owned(), json!(rfc3339(ns))));
    }
    if !scope.is_empty() {
        fields.push(("scope".to_owned(), Value::Object(scope.clone())));
    }
    let dedup_id = match attrs.get("log.record.uid") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID => Some(s.clone()),
        Some(_) => {
            return Err(invalid(format!(
                "{at}: the log.record.uid attribute is not a string of 1 to {MAX_ID} bytes"
            )));
        }
    };
    Ok(Mapped {
        at: at.to_owned(),
        event: ev,
        platform_fields: fields.into_iter().collect(),
        original: Value::Object(rec.clone()),
        original_bytes: bytes.to_vec(),
        dedup_id,
        subject_id: subject.id.clone(),
        subject_extra: subject.extra.clone(),
    })
}

/// Nanoseconds since the Unix epoch as RFC 3339 in UTC, to the nanosecond.
fn rfc3339(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (u64 nanoseconds end in 2554).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_544_712_660_300_000_000), "2018-12-13T14:51:00.300000000Z");
        assert_eq!(rfc3339(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(rfc3339(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn severity_names_and_numbers() {
        assert_eq!(severity(&json!(17)), Some(17));
        assert_eq!(severity(&json!("SEVERITY_NUMBER_ERROR")), Some(17));
        assert_eq!(severity(&json!("SEVERITY_NUMBER_INFO2")), Some(10));
        assert_eq!(severity(&json!("SEVERITY_NUMBER_FATAL4")), Some(24));
        assert_eq!(severity(&json!(25)), None);
        assert_eq!(severity(&json!("SEVERITY_NUMBER_INFO5")), None);
    }

    /// The fuzz seed `protobuf-request` was written by opentelemetry-proto's own Python
    /// messages, so it also checks the field numbers here.
    #[test]
    fn a_request_written_by_opentelemetry_proto_maps_as_its_json_twin() {
        let seed = include_bytes!("../../../../../fuzz/seeds/otlp_logs/protobuf-request");
        let m = decode(&seed[1..], Encoding::Protobuf, 10).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].subject_id, "payments-api");
        assert_eq!(m[0].subject_extra, vec![("resource".to_owned(), json!({"k8s.pod.name": "p"}))]);
        assert_eq!(m[0].event["action"], "payment.refund");
        assert_eq!(m[0].event["outcome"], "failure");
        assert_eq!(m[0].event["occurred_at"], "2018-12-13T14:51:00.300000000Z");
        assert_eq!(m[0].event["request_id"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(m[0].dedup_id.as_deref(), Some("01JF01"));
        assert_eq!(
            m[0].platform_fields["attributes"],
            json!({"log.record.uid": "01JF01", "n": -7, "d": 2.5, "b": "AAE=", "a": [true], "m": {"x": "y"}})
        );
        assert_eq!(m[0].platform_fields["scope"], json!({"name": "payments.audit", "version": "1.2.0"}));
        assert_eq!(m[1].event, json!({"action": "otel.log"}).as_object().unwrap().clone());
        // The record as kept (OTLP/JSON) maps as the protobuf one did.
        let service = json!({"key": "service.name", "value": {"stringValue": "payments-api"}});
        let pod = json!({"key": "k8s.pod.name", "value": {"stringValue": "p"}});
        let req = json!({"resourceLogs": [{"resource": {"attributes": [service, pod]},
            "scopeLogs": [{"scope": {"name": "payments.audit", "version": "1.2.0"},
                           "logRecords": [m[0].original.clone()]}]}]});
        let j = decode(req.to_string().as_bytes(), Encoding::Json, 10).unwrap();
        assert_eq!((&j[0].event, &j[0].platform_fields), (&m[0].event, &m[0].platform_fields));
        assert_eq!(j[0].original, m[0].original);
        assert_ne!(j[0].original_bytes, m[0].original_bytes, "the digest is of the bytes received");
    }

    #[test]
    fn an_empty_event_name_is_no_action_and_doubles_may_be_strings() {
        let rec = json!({"attributes": [{"key": "event.name", "value": {"stringValue": ""}},
                                        {"key": "x", "value": {"doubleValue": "1.5"}}]});
        let req = json!({"resourceLogs": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "s"}}]},
            "scopeLogs": [{"logRecords": [rec]}]}]});
        let m = decode(req.to_string().as_bytes(), Encoding::Json, 10).unwrap();
        assert_eq!(m[0].event["action"], "otel.log");
        assert_eq!(m[0].platform_fields["attributes"]["x"], 1.5);
        assert_eq!(
            decode(req.to_string().as_bytes(), Encoding::Json, 0),
            Err(OtlpError::TooMany { records: 1, max: 0 })
        );
    }

    #[test]
    fn snake_case_names_are_read_too() {
        let o = json!({"time_unix_nano": "5"});
        assert_eq!(field(o.as_object().unwrap(), "timeUnixNano"), Some(&json!("5")));
    }
}
