//! OpenBao (and Vault) audit devices: the `http` audit device posts each audit entry (one JSON
//! object; several, one per line, are taken too) to `POST /v1/sources/openbao`, with the
//! source's key in the device's `headers` option. A request is all or nothing. Entries of
//! types the request does not ask for (`?types=`, default `response`) are skipped, and so is
//! the test entry the device sends when it is enabled (`sys/audit/test`, which names no token),
//! which is answered 200 so the device starts. An entry already logged from this source (the
//! same `request.id` and type, or for an entry without an id, the same bytes) is not logged
//! again.
//!
//! HMAC'd fields (`hmac-sha256:...`) stay as the device sent them: Graven neither has nor wants
//! the device's salt.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use graven_auth::principal::Principal;
use serde_json::{Map, Value, json};

use super::report::{Batch, Record, Subject, bad, respond};
use crate::http::body::read_body;
use crate::http::state::{AppState, Peer, StrictQuery};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

const ROUTE: &str = "POST /v1/sources/openbao";
const TYPES: [&str; 2] = ["request", "response"];
/// The path of the entry an audit device sends when it is enabled.
const TEST_PATH: &str = "sys/audit/test";

/// The query of `POST /v1/sources/openbao`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBaoQuery {
    /// Comma-separated entry types to log (default `response`).
    types: Option<String>,
}

/// `POST /v1/sources/openbao`.
pub async fn openbao(
    State(st): St,
    axum::Extension(principal): axum::Extension<Arc<Principal>>,
    peer: Option<axum::Extension<Peer>>,
    StrictQuery(query): StrictQuery<OpenBaoQuery>,
    body: Body,
) -> Response {
    let r = openbao_inner(&st, &principal, &query, body).await;
    respond(&st, &principal, peer.map(|p| p.0.0), ROUTE, r).await
}

async fn openbao_inner(
    st: &AppState,
    principal: &Principal,
    query: &OpenBaoQuery,
    body: Body,
) -> Result<graven_api::SourceReport, Problem> {
    let mut batch = Batch::new(principal, "openbao")?;
    let types: Vec<&str> = match &query.types {
        None => vec!["response"],
        Some(list) => {
            let v: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if v.is_empty() || v.iter().any(|s| !TYPES.contains(s)) {
                return Err(Problem::bad_request(
                    "invalid-query",
                    format!("types={list:?}: give a comma-separated list of {}", TYPES.join(", ")),
                ));
            }
            v
        }
    };
    let bytes = read_body(st, body).await?;
    let lines: Vec<&[u8]> =
        bytes.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).collect();
    if lines.is_empty() {
        return Err(bad(
            "the body is empty: expected an OpenBao audit entry (a JSON object, or one per line)".to_owned(),
        ));
    }
    Batch::check_count(st, lines.len(), "request (one audit entry per line)")?;
    for (i, line) in lines.iter().enumerate() {
        let at = format!("line {}", i + 1);
        let entry: Map<String, Value> = serde_json::from_slice(line).map_err(|e| {
            bad(format!("{at} is not an OpenBao audit entry ({e}): configure the audit device with format \"json\" (its default)"))
        })?;
        let ty =
            entry.get("type").and_then(Value::as_str).ok_or_else(|| bad(format!("{at}.type is missing")))?;
        if !TYPES.contains(&ty) {
            return Err(bad(format!("{at}.type {ty:?} is not one of {}", TYPES.join(", "))));
        }
        let request = entry
            .get("request")
            .and_then(Value::as_object)
            .ok_or_else(|| bad(format!("{at}.request is missing")))?;
        if !types.contains(&ty) || is_device_test(&entry, request) {
            batch.skip();
            continue;
        }
        let raw = std::str::from_utf8(line).map_err(|_| bad(format!("{at} is not UTF-8")))?;
        // Most entries carry the request's id; some (a few `sys/` requests) do not, and then
        // the entry's own digest tells a retry from a new entry: two entries alike to the
        // nanosecond of their `time` are the same one.
        let dedup_id = match request.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            Some(id) if id.len() <= 256 => format!("{id}/{ty}"),
            Some(_) => return Err(bad(format!("{at}.request.id is longer than 256 bytes"))),
            None => {
                use sha2::{Digest, Sha256};
                let d = Sha256::digest(line);
                format!("sha256:{}", d.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        batch.add(&at, map_openbao(&entry, request, raw, dedup_id))?;
    }
    batch.commit(st).await
}

/// The entry a device sends when it is enabled: `sys/audit/test`, naming no token.
fn is_device_test(entry: &Map<String, Value>, request: &Map<String, Value>) -> bool {
    request.get("path").and_then(Value::as_str) == Some(TEST_PATH)
        && entry
            .get("auth")
            .and_then(Value::as_object)
            .is_none_or(|a| !a.contains_key("display_name") && !a.contains_key("accessor"))
}

/// The subject of an entry: the token's `display_name`, with the role it was issued for
/// (`metadata.role_name`, as the AppRole, Kubernetes and JWT methods record it), prefixed
/// `openbao:`: `openbao:approle:ci`, `openbao:root`. An entry with no token (a failed login) is
/// `openbao:unauthenticated`.
fn subject(entry: &Map<String, Value>) -> Subject {
    let auth = entry.get("auth").and_then(Value::as_object);
    let text = |k: &str| auth.and_then(|a| a.get(k)).and_then(Value::as_str).filter(|s| !s.is_empty());
    let metadata = auth.and_then(|a| a.get("metadata")).and_then(Value::as_object);
    let role = metadata.and_then(|m| m.get("role_name").or_else(|| m.get("role"))).and_then(Value::as_str);
    let id = match (text("display_name"), role) {
        (Some(name), Some(role)) if !name.ends_with(role) => format!("openbao:{name}:{role}"),
        (Some(name), _) => format!("openbao:{name}"),
        (None, _) => "openbao:unauthenticated".to_owned(),
    };
    let mut extra = Vec::new();
    for (k, name) in [
        ("entity_id", "entity_id"),
        ("accessor", "token_accessor"),
        ("token_type", "token_type"),
        ("display_name", "display_name"),
    ] {
        if let Some(v) = text(k) {
            extra.push((name.to_owned(), json!(v)));
        }
    }
    if let Some(role) = role {
        extra.push(("role".to_owned(), json!(role)));
    }
    if let Some(p) = auth.and_then(|a| a.get("policies")).filter(|p| p.is_array()) {
        extra.push(("policies".to_owned(), p.clone()));
    }
    if let Some(m) = metadata {
        extra.push(("metadata".to_owned(), Value::Object(m.clone())));
    }
    let kind = if text("entity_id").is_some() { "openbao_entity" } else { "openbao_token" };
    Subject { id, kind: kind.to_owned(), extra }
}

/// The event an audit entry describes (docs/sources.md has the table).
fn map_openbao<'a>(
    entry: &Map<String, Value>,
    request: &Map<String, Value>,
    raw: &'a str,
    dedup_id: String,
) -> Record<'a> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let operation = text(request.get("operation")).unwrap_or_else(|| "unknown".into());
    let mut ev = Map::new();
    ev.insert("action".into(), json!(format!("openbao.{operation}")));
    if let Some(path) = text(request.get("path")) {
        let mount = text(request.get("mount_type")).unwrap_or_else(|| "-".into());
        ev.insert("resource".into(), json!({"type": format!("openbao:{mount}"), "id": path}));
    }
    let error = text(entry.get("error"));
    if entry.get("type").and_then(Value::as_str) == Some("response") || error.is_some() {
        let outcome = match error.as_deref() {
            None | Some("") => "success",
            Some(e) if e.contains("permission denied") => "denied",
            Some(_) => "failure",
        };
        ev.insert("outcome".into(), json!(outcome));
    }
    if let Some(t) = text(entry.get("time")) {
        ev.insert("occurred_at".into(), json!(t));
    }
    if let Some(id) = text(request.get("id")) {
        ev.insert("request_id".into(), json!(id));
    }
    if let Some(ip) = request.get("remote_address").filter(|v| v.is_string()) {
        let mut source = Map::new();
        source.insert("ip".into(), ip.clone());
        if let Some(port) = request.get("remote_port").filter(|v| v.is_u64()) {
            source.insert("port".into(), port.clone());
        }
        ev.insert("source".into(), Value::Object(source));
    }
    let mut fields = Map::new();
    if let Some(t) = entry.get("type") {
        fields.insert("type".into(), t.clone());
    }
    for k in ["operation", "mount_point", "mount_type", "mount_class", "namespace", "client_id"] {
        if let Some(v) = request.get(k) {
            fields.insert(k.into(), v.clone());
        }
    }
    if let Some(e) = entry.get("error") {
        fields.insert("error".into(), e.clone());
    }
    if let Some(p) = entry.get("auth").and_then(|a| a.get("policy_results")) {
        fields.insert("policy_results".into(), p.clone());
    }
    Record {
        event: ev,
        platform_fields: fields,
        original: Value::Object(entry.clone()),
        original_bytes: raw.as_bytes(),
        dedup_id: Some(dedup_id),
        subject: subject(entry),
    }
}
