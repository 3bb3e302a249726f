//! Kubernetes API server audit: an `audit.k8s.io/v1` `EventList`, as the audit webhook
//! backend posts it. [`parse_event_list`] reads the list, [`map_item`] each record: a record of
//! a stage not asked for is `None` (skipped); the others name their user as the subject, with
//! `auditID` and stage as their id.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::{MAX_ID_LEN, Record, RecordError, Subject, bad};

/// The stages of an audit record, in order.
pub const STAGES: [&str; 4] = ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"];

/// The records of an `audit.k8s.io/v1` `EventList`, unread.
pub fn parse_event_list(bytes: &[u8]) -> Result<Vec<&RawValue>, RecordError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct EventList<'a> {
        kind: String,
        api_version: String,
        #[serde(borrow, default)]
        items: Vec<&'a RawValue>,
    }
    let list: EventList<'_> = serde_json::from_slice(bytes).map_err(|e| {
        bad(format!("the body is not an audit.k8s.io/v1 EventList ({e}): configure the API server's audit webhook backend to post here"))
    })?;
    if list.kind != "EventList" || list.api_version != "audit.k8s.io/v1" {
        return Err(bad(format!(
            "kind {:?}, apiVersion {:?}: expected an EventList of audit.k8s.io/v1",
            list.kind, list.api_version
        )));
    }
    Ok(list.items)
}

/// Record `i` of a list: `None` when its stage is not one of `stages`.
pub fn map_item<'a>(i: usize, raw: &'a RawValue, stages: &[&str]) -> Result<Option<Record<'a>>, RecordError> {
    let at = format!("items[{i}]");
    let item: Map<String, Value> = serde_json::from_str(raw.get())
        .map_err(|e| bad(format!("{at} is not an audit event object ({e})")))?;
    let text = |k: &str| item.get(k).and_then(Value::as_str);
    let stage = text("stage").ok_or_else(|| bad(format!("{at}.stage is missing")))?;
    if !STAGES.contains(&stage) {
        return Err(bad(format!("{at}.stage {stage:?} is not one of {}", STAGES.join(", "))));
    }
    let audit_id = text("auditID").filter(|s| !s.is_empty() && s.len() <= MAX_ID_LEN).ok_or_else(|| {
        bad(format!("{at}.auditID is missing (or longer than {MAX_ID_LEN} bytes): every audit event has one"))
    })?;
    if !stages.contains(&stage) {
        return Ok(None);
    }
    let dedup_id = format!("{audit_id}/{stage}");
    map_record(&item, raw.get(), &at, dedup_id).map(Some)
}

/// The event a Kubernetes audit record describes (docs/sources.md has the table), and its
/// subject.
fn map_record<'a>(
    item: &Map<String, Value>,
    raw: &'a str,
    at: &str,
    dedup_id: String,
) -> Result<Record<'a>, RecordError> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let user =
        item.get("user").and_then(Value::as_object).ok_or_else(|| bad(format!("{at}.user is missing")))?;
    let username = text(user.get("username"))
        .filter(|u| !u.is_empty())
        .ok_or_else(|| bad(format!("{at}.user.username is missing")))?;
    let kind = if username.starts_with("system:serviceaccount:") {
        "kubernetes_service_account"
    } else if username.starts_with("system:node:") {
        "kubernetes_node"
    } else {
        "kubernetes_user"
    };
    let mut extra = Vec::new();
    if let Some(uid) = user.get("uid").filter(|v| v.is_string()) {
        extra.push(("uid".to_owned(), uid.clone()));
    }
    let strings = |v: Option<&Value>| -> Option<Value> {
        let a = v?.as_array()?;
        (a.len() <= 256 && a.iter().all(Value::is_string)).then(|| Value::Array(a.clone()))
    };
    if let Some(groups) = strings(user.get("groups")) {
        extra.push(("groups".to_owned(), groups));
    }
    if let Some(imp) = item.get("impersonatedUser").and_then(Value::as_object) {
        let mut who = Map::new();
        if let Some(u) = imp.get("username").filter(|u| u.is_string()) {
            who.insert("id".into(), u.clone());
        }
        if let Some(g) = strings(imp.get("groups")) {
            who.insert("groups".into(), g);
        }
        extra.push(("impersonating".to_owned(), Value::Object(who)));
    }
    let verb = text(item.get("verb")).unwrap_or_else(|| "unknown".into());
    let obj = item.get("objectRef").and_then(Value::as_object);
    let mut ev = Map::new();
    ev.insert("action".into(), json!(format!("k8s.{verb}")));
    if let Some(o) = obj {
        let group = text(o.get("apiGroup")).filter(|g| !g.is_empty()).unwrap_or_else(|| "core".into());
        let mut ty = format!("k8s:{group}/{}", text(o.get("resource")).unwrap_or_else(|| "-".into()));
        if let Some(sub) = text(o.get("subresource")) {
            ty.push('/');
            ty.push_str(&sub);
        }
        let name = text(o.get("name"));
        let id = match (text(o.get("namespace")), name) {
            (Some(ns), Some(n)) => format!("{ns}/{n}"),
            (None, Some(n)) => n,
            (Some(ns), None) => format!("{ns}/"),
            (None, None) => text(item.get("requestURI")).unwrap_or_else(|| "-".into()),
        };
        ev.insert("resource".into(), json!({"type": ty, "id": id}));
    } else if let Some(uri) = text(item.get("requestURI")) {
        ev.insert("resource".into(), json!({"type": "k8s:uri", "id": uri}));
    }
    if let Some(code) = item.get("responseStatus").and_then(|s| s.get("code")).and_then(Value::as_u64) {
        let outcome = match code {
            0..=399 => "success",
            401 | 403 => "denied",
            _ => "failure",
        };
        ev.insert("outcome".into(), json!(outcome));
    }
    if let Some(t) = text(item.get("requestReceivedTimestamp")) {
        ev.insert("occurred_at".into(), json!(t));
    }
    if let Some(id) = text(item.get("auditID")) {
        ev.insert("request_id".into(), json!(id));
    }
    let mut source = Map::new();
    if let Some(ips) = item.get("sourceIPs").and_then(Value::as_array) {
        if let Some(first) = ips.first() {
            source.insert("ip".into(), first.clone());
        }
        source.insert("ips".into(), Value::Array(ips.clone()));
    }
    if let Some(ua) = item.get("userAgent") {
        source.insert("user_agent".into(), ua.clone());
    }
    if !source.is_empty() {
        ev.insert("source".into(), Value::Object(source));
    }
    let mut k8s = Map::new();
    for k in [
        "stage",
        "level",
        "verb",
        "requestURI",
        "objectRef",
        "responseStatus",
        "annotations",
        "stageTimestamp",
    ] {
        if let Some(v) = item.get(k) {
            k8s.insert(k.into(), v.clone());
        }
    }
    Ok(Record {
        event: ev,
        platform_fields: k8s,
        original: Value::Object(item.clone()),
        original_bytes: raw.as_bytes(),
        dedup_id: Some(dedup_id),
        subject: Subject { id: username, kind: kind.to_owned(), extra },
    })
}
