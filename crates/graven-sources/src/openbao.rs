//! OpenBao (and Vault) audit entries, as the `http` audit device sends them: one JSON object,
//! or several, one per line. [`lines`] splits a body, [`map_line`] reads each: an entry of a
//! type not asked for, or the device's test entry, is `None` (skipped); the others name their
//! token (display name and role) as the subject, with `request.id` and type as their id (or,
//! for the few entries without a request id, their digest).
//!
//! HMAC'd fields (`hmac-sha256:...`) stay as the device sent them.

use serde_json::{Map, Value, json};

use crate::{MAX_ID_LEN, Record, RecordError, Subject, bad};

/// The types of an audit entry.
pub const TYPES: [&str; 2] = ["request", "response"];
/// The path of the entry an audit device sends when it is enabled.
const TEST_PATH: &str = "sys/audit/test";

/// The non-blank lines of a body.
pub fn lines(body: &[u8]) -> Vec<&[u8]> {
    body.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).collect()
}

/// Line `i` (0-based) of a body: `None` when its type is not one of `types`, or it is the
/// device's test entry.
pub fn map_line<'a>(i: usize, line: &'a [u8], types: &[&str]) -> Result<Option<Record<'a>>, RecordError> {
    let at = format!("line {}", i + 1);
    let entry: Map<String, Value> = serde_json::from_slice(line).map_err(|e| {
        bad(format!("{at} is not an OpenBao audit entry ({e}): configure the audit device with format \"json\" (its default)"))
    })?;
    let ty = entry.get("type").and_then(Value::as_str).ok_or_else(|| bad(format!("{at}.type is missing")))?;
    if !TYPES.contains(&ty) {
        return Err(bad(format!("{at}.type {ty:?} is not one of {}", TYPES.join(", "))));
    }
    let request = entry
        .get("request")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(format!("{at}.request is missing")))?;
    if !types.contains(&ty) || is_device_test(&entry, request) {
        return Ok(None);
    }
    let raw = std::str::from_utf8(line).map_err(|_| bad(format!("{at} is not UTF-8")))?;
    // Most entries carry the request's id; some (a few `sys/` requests) do not, and then the
    // entry's own digest tells a retry from a new entry: two entries alike to the nanosecond
    // of their `time` are the same one.
    let dedup_id = match request.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(id) if id.len() <= MAX_ID_LEN => format!("{id}/{ty}"),
        Some(_) => return Err(bad(format!("{at}.request.id is longer than {MAX_ID_LEN} bytes"))),
        None => format!("sha256:{}", crate::sha256_hex(line)),
    };
    Ok(Some(map_entry(&entry, request, raw, dedup_id)))
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
fn map_entry<'a>(
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
