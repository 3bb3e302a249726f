//! The OpenAPI document (`src/openapi.json`, served at `/openapi.json`) as a contract.
//!
//! Its `components/schemas` are generated here from the wire types (`graven-api` with its
//! `schema` feature: `schemars` derives), never written by hand: answers with the serialising
//! contract (what the server writes), request bodies with the deserialising one (what it
//! reads). The rest of the document (paths, parameters, responses, media types) is written by
//! hand in the file itself, and held to its shape by the checks below; the running server is
//! held to all of it by `crates/graven/tests/schemathesis.rs`.
//!
//! `UPDATE_OPENAPI=1 cargo test -p graven-server --test openapi` rewrites the file with the
//! schemas the types give now; without it, the test fails when the committed file differs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use schemars::JsonSchema;
use schemars::generate::{Contract, SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

/// An event as the API shows it: any JSON value (events are objects; docs/events.md).
type Event = Value;

fn document_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/openapi.json")
}

fn generator(contract: Contract) -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    settings.contract = contract;
    settings.into_generator()
}

fn add<T: JsonSchema>(g: &mut SchemaGenerator) {
    let s = g.subschema_for::<T>();
    assert!(s.get("$ref").is_some(), "{} is not a named schema: {s:?}", T::schema_name());
}

/// Every schema of the document, from the wire types.
fn generated_schemas() -> Map<String, Value> {
    use graven_api::*;
    let mut answers = generator(Contract::Serialize);
    add::<Receipt>(&mut answers);
    add::<RangeReceipt>(&mut answers);
    add::<InclusionProof>(&mut answers);
    add::<ConsistencyProof>(&mut answers);
    add::<LogInfo>(&mut answers);
    add::<StoredEvent<Event>>(&mut answers);
    add::<SearchPage<Event>>(&mut answers);
    add::<StreamItem<Event>>(&mut answers);
    add::<TimestampList>(&mut answers);
    add::<InventoryPage>(&mut answers);
    add::<IdentityList>(&mut answers);
    add::<IdentityView>(&mut answers);
    add::<KeyList>(&mut answers);
    add::<KeyView>(&mut answers);
    add::<NewKey>(&mut answers);
    add::<PublicKeyList>(&mut answers);
    add::<PublicKeyView>(&mut answers);
    add::<Problem>(&mut answers);
    add::<SourceReport>(&mut answers);
    let mut requests = generator(Contract::Deserialize);
    add::<NewEvent<Event>>(&mut requests);
    add::<NewIdentity>(&mut requests);
    add::<KeyRequest>(&mut requests);
    add::<ChangeRequest>(&mut requests);
    add::<PublicKeyRequest>(&mut requests);
    add::<KubernetesEventList>(&mut requests);
    add::<OpenBaoAuditEntry>(&mut requests);
    add::<CloudTrailLogFile>(&mut requests);
    let mut all = answers.take_definitions(true);
    for (name, schema) in requests.take_definitions(true) {
        if let Some(same) = all.get(&name) {
            assert_eq!(same, &schema, "{name} is both read and written, with different schemas");
        }
        all.insert(name, schema);
    }
    all
}

/// The document as the types give it: the committed one with its schemas generated anew.
fn generated_document() -> String {
    let text = std::fs::read_to_string(document_path()).unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["components"]["schemas"] = Value::Object(generated_schemas());
    let mut out = serde_json::to_string_pretty(&sorted(doc)).unwrap();
    out.push('\n');
    out
}

/// `v` with every object's members in key order, whatever serde_json's map keeps.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let ordered: BTreeMap<String, Value> = m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        v => v,
    }
}

#[test]
fn the_committed_document_is_what_the_wire_types_give() {
    let want = generated_document();
    let path = document_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        // Replaced whole, so the other tests of this file read the old or the new document.
        let tmp = path.with_extension("json.new");
        std::fs::write(&tmp, &want).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap();
    if have != want {
        let line = have.lines().zip(want.lines()).position(|(a, b)| a != b).unwrap_or(0) + 1;
        panic!(
            "{} is not what the wire types give (first difference at line {line}); run \
             `UPDATE_OPENAPI=1 cargo test -p graven-server --test openapi` and commit the result",
            path.display()
        );
    }
}

fn document() -> Value {
    serde_json::from_str(&std::fs::read_to_string(document_path()).unwrap()).unwrap()
}

/// Follows a local `$ref` (`#/a/b`) to what it names.
fn resolve<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    doc.pointer(r.strip_prefix('#')?)
}

/// Every operation, as (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method != "parameters" {
                out.push((method.to_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

#[test]
fn every_operation_has_a_unique_operation_id_and_the_document_names_its_server() {
    let doc = document();
    let ops = operations(&doc);
    assert!(ops.len() >= 28, "{} operations", ops.len());
    let mut seen = BTreeSet::new();
    for (method, path, op) in &ops {
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(
            !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()),
            "{method} {path}: operationId {id:?} is not an identifier"
        );
        assert!(seen.insert(id.to_owned()), "operationId {id} is used twice");
    }
    let servers = doc["servers"].as_array().expect("servers");
    assert_eq!(servers[0]["url"], "http://127.0.0.1:7878");
    assert!(servers[0]["description"].as_str().unwrap().contains("graven serve"));
}

/// A `content` map: every media type has a schema.
fn check_content(where_: &str, content: &Value) {
    let content = content.as_object().unwrap_or_else(|| panic!("{where_}: content is not a map"));
    assert!(!content.is_empty(), "{where_}: content lists no media type");
    for (media, m) in content {
        assert!(m.get("schema").is_some(), "{where_} {media}: no schema");
    }
}

#[test]
fn every_request_body_and_every_response_has_a_schema_for_each_media_type() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        let at = format!("{method} {path}");
        if let Some(body) = op.get("requestBody") {
            check_content(&format!("{at} request body"), &body["content"]);
        }
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{at}: no responses"));
        assert!(responses.keys().any(|c| c.starts_with('2')), "{at}: no success response");
        for (status, resp) in responses {
            let resp = match resp.get("$ref").and_then(Value::as_str) {
                Some(r) => resolve(&doc, r).unwrap_or_else(|| panic!("{at} {status}: {r} does not resolve")),
                None => resp,
            };
            assert!(resp["description"].is_string(), "{at} {status}: no description");
            // A response without a body would say so explicitly; this API has none.
            match resp.get("content") {
                Some(c) => check_content(&format!("{at} {status}"), c),
                None => assert_eq!(resp["x-empty-body"], json!(true), "{at} {status}: no content"),
            }
            if !status.starts_with('2') {
                let problem = &resp["content"]["application/problem+json"]["schema"]["$ref"];
                assert_eq!(problem, "#/components/schemas/Problem", "{at} {status}: not a problem document");
            }
        }
    }
}

#[test]
fn every_ref_resolves() {
    fn walk<'a>(v: &'a Value, refs: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => refs.push(r),
                        _ => walk(v, refs),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let doc = document();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(refs.len() > 50, "{} refs", refs.len());
    for r in refs {
        assert!(r.starts_with("#/"), "{r}: only references inside the document are used");
        assert!(resolve(&doc, r).is_some(), "{r} does not resolve");
    }
    // And every schema the types give is used by some operation, directly or through another.
    let text = doc.to_string();
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(text.contains(&format!("\"#/components/schemas/{name}\"")), "schema {name} is never used");
    }
}

/// The event body is read by the shaper (`graven_auth::shape`), not by serde: its documented
/// members, outcomes and lengths are held to the shaper's own lists here.
#[test]
fn the_event_schema_is_what_the_shaper_accepts() {
    let schemas = generated_schemas();
    let event = &schemas["NewEvent"];
    let members: BTreeSet<&str> =
        event["properties"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut accepted: BTreeSet<&str> = graven_auth::shape::CLIENT_FIELDS.iter().copied().collect();
    accepted.insert(graven_core::event_sig::FIELD);
    assert_eq!(members, accepted);
    assert_eq!(event["required"], json!(["action"]));
    assert_eq!(event["additionalProperties"], json!(false));
    let max = graven_auth::shape::MAX_SHORT_STRING as u64;
    for m in ["action", "occurred_at", "request_id"] {
        let s = &event["properties"][m];
        assert_eq!(s["type"], "string", "{m}: absent or a string, never null");
        assert_eq!(s["maxLength"].as_u64(), Some(max), "{m}: {s}");
    }
    let outcomes: Vec<&str> = schemas["Outcome"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["const"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, graven_auth::shape::OUTCOMES);
}
