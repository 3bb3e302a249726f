//! Platform sources (docs/sources.md): a `source` identity reports the events of the subjects
//! it vouches for, as the platform records them, and each is stored with that subject as its
//! actor, marked `"auth": "attested"` and `attested_by` the source's own verified credential,
//! so a reported actor is never taken for one that authenticated itself.
//!
//! Kubernetes: the API server's audit webhook backend posts `audit.k8s.io/v1` `EventList`s to
//! `POST /v1/sources/kubernetes`. A request is all or nothing: every record it takes is logged
//! in one commit, or none is. Records of stages the request does not ask for (`?stages=`,
//! default `ResponseComplete`) are skipped; a record already logged from this source (the same
//! `auditID` and stage, remembered while the server runs) is not logged again, so the API
//! server's retry after a lost answer is not logged twice.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use graven_auth::principal::{Actor, Principal};
use graven_auth::shape::{self as event, EventError};
use graven_engine::engine::Entry;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::body::read_body;
use super::state::{AppState, Peer, StrictQuery, finish};
use crate::http::audit::{self, Refusal};
use crate::problem::{Problem, submit_problem};
use crate::source_ids::event_key;

type St = State<Arc<AppState>>;

const STAGES: [&str; 4] = ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"];

fn bad(detail: String) -> Problem {
    Problem::bad_request("invalid-source-record", format!("{detail}; nothing was appended"))
}

fn forbidden(detail: String) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "source-not-allowed", "Not allowed for this source", detail)
}

/// The query of `POST /v1/sources/kubernetes`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesQuery {
    /// Comma-separated stages to log (default `ResponseComplete`).
    stages: Option<String>,
}

/// `POST /v1/sources/kubernetes`.
pub async fn kubernetes(
    State(st): St,
    axum::Extension(principal): axum::Extension<Arc<Principal>>,
    peer: Option<axum::Extension<Peer>>,
    StrictQuery(query): StrictQuery<KubernetesQuery>,
    body: Body,
) -> Response {
    let r = kubernetes_inner(&st, &principal, &query, body).await;
    if let Err(p) = &r
        && p.kind == "source-not-allowed"
    {
        // A source naming a subject (or a platform) outside its grant is refused like any
        // credential used beyond its rights, and recorded.
        let refusal = Refusal {
            who: Some(&principal),
            claimed_key: None,
            claimed_identity: None,
            reason: "source-not-allowed",
            route: "POST /v1/sources/kubernetes",
            attempted_action: None,
            peer: peer.map(|p| p.0.0),
        };
        audit::denied(&st, refusal).await;
    }
    finish(&st, "POST /v1/sources/kubernetes", r)
}

async fn kubernetes_inner(
    st: &AppState,
    principal: &Principal,
    query: &KubernetesQuery,
    body: Body,
) -> Result<Response, Problem> {
    let grant = principal.source.as_ref().filter(|g| g.allows_type("kubernetes")).ok_or_else(|| {
        forbidden(format!(
            "identity {} may not report Kubernetes events (its source grant does not name kubernetes); nothing was appended",
            principal.identity
        ))
    })?;
    let stages: Vec<String> = match &query.stages {
        None => vec!["ResponseComplete".to_owned()],
        Some(list) => {
            let v: Vec<String> =
                list.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            if v.is_empty() || v.iter().any(|s| !STAGES.contains(&s.as_str())) {
                return Err(Problem::bad_request(
                    "invalid-query",
                    format!("stages={list:?}: give a comma-separated list of {}", STAGES.join(", ")),
                ));
            }
            v
        }
    };
    let bytes = read_body(st, body).await?;
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct EventList<'a> {
        kind: String,
        api_version: String,
        #[serde(borrow, default)]
        items: Vec<&'a RawValue>,
    }
    let list: EventList<'_> = serde_json::from_slice(&bytes).map_err(|e| {
        bad(format!("the body is not an audit.k8s.io/v1 EventList ({e}): configure the API server's audit webhook backend to post here"))
    })?;
    if list.kind != "EventList" || list.api_version != "audit.k8s.io/v1" {
        return Err(bad(format!(
            "kind {:?}, apiVersion {:?}: expected an EventList of audit.k8s.io/v1",
            list.kind, list.api_version
        )));
    }
    let max = st.engine.config().max_batch_events;
    if list.items.len() > max {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "The batch is too large",
            format!(
                "{} records in one EventList; at most {max} (set the webhook's batch size below it); nothing was appended",
                list.items.len()
            ),
        ));
    }
    let mut taken: Vec<(u128, Entry)> = Vec::new();
    let mut skipped = 0u64;
    for (i, raw) in list.items.iter().enumerate() {
        let at = format!("items[{i}]");
        let item: Map<String, Value> = serde_json::from_str(raw.get())
            .map_err(|e| bad(format!("{at} is not an audit event object ({e})")))?;
        let text = |k: &str| item.get(k).and_then(Value::as_str);
        let stage = text("stage").ok_or_else(|| bad(format!("{at}.stage is missing")))?;
        if !STAGES.contains(&stage) {
            return Err(bad(format!("{at}.stage {stage:?} is not one of {}", STAGES.join(", "))));
        }
        let audit_id = text("auditID").filter(|s| !s.is_empty() && s.len() <= 256).ok_or_else(|| {
            bad(format!("{at}.auditID is missing (or longer than 256 bytes): every audit event has one"))
        })?;
        if !stages.iter().any(|s| s == stage) {
            skipped += 1;
            continue;
        }
        let (body, subject) = map_kubernetes(&item, raw.get(), &at, true)?;
        if !grant.allows_subject(&subject.id) {
            return Err(forbidden(format!(
                "{at}: identity {} vouches only for subjects matching {}; {:?} does not match; nothing was appended",
                principal.identity,
                grant.subjects.join(", "),
                subject.id
            )));
        }
        let actor = attested(subject, principal);
        let shaped = match event::shape(&body, &actor) {
            Ok(e) => e,
            // Too large or too deep with the whole record: its digest and the mapped fields.
            Err(EventError::TooLarge(_) | EventError::Json(_)) => {
                let (body, _) = map_kubernetes(&item, raw.get(), &at, false)?;
                event::shape(&body, &actor).map_err(|e| bad(format!("{at}: {e}")))?
            }
            Err(e) => return Err(bad(format!("{at}: {e}"))),
        };
        let key = event_key(&principal.identity, "kubernetes", audit_id, stage);
        taken.push((key, Entry::event(shaped.bytes, shaped.stamp_at)));
    }
    let keys: Vec<u128> = taken.iter().map(|(k, _)| *k).collect();
    let dup = st.source_seen.claim(&keys).map_err(|_| {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "retry",
            "A record is being logged by another request",
            "a record of this batch is being logged by a request still in flight; send the batch again in a moment (its records already logged are not logged twice); nothing was appended".to_owned(),
        );
        p.retry_after = Some(1);
        p
    })?;
    let mut fresh_keys = Vec::new();
    let mut entries = Vec::new();
    for ((key, entry), d) in taken.into_iter().zip(&dup) {
        if !d {
            fresh_keys.push(key);
            entries.push(entry);
        }
    }
    let duplicates = dup.iter().filter(|d| **d).count() as u64;
    let first_index = if entries.is_empty() {
        None
    } else {
        let n = entries.len();
        match st.engine.submit(entries).await {
            Ok(receipts) => {
                st.source_seen.settle(&fresh_keys, true);
                debug_assert_eq!(receipts.len(), n);
                receipts.first().map(|r| r.index)
            }
            Err(e) => {
                st.source_seen.settle(&fresh_keys, false);
                return Err(submit_problem(e));
            }
        }
    };
    let report =
        graven_api::SourceReport { logged: fresh_keys.len() as u64, first_index, skipped, duplicates };
    let body = serde_json::to_string(&report).map_err(|e| Problem::internal(e.to_string()))?;
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

/// The subject a record names, before it is marked attested.
struct Subject {
    id: String,
    kind: &'static str,
    extra: Vec<(String, Value)>,
}

/// The event a Kubernetes audit record describes (docs/sources.md has the table), and its
/// subject. With `whole`, the record itself goes under `details.kubernetes.record`; its
/// SHA-256 always goes under `details.kubernetes.record_sha256`.
fn map_kubernetes(
    item: &Map<String, Value>,
    raw: &str,
    at: &str,
    whole: bool,
) -> Result<(Vec<u8>, Subject), Problem> {
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
    let digest = Sha256::digest(raw.as_bytes());
    k8s.insert("record_sha256".into(), json!(digest.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    if whole {
        k8s.insert("record".into(), Value::Object(item.clone()));
    }
    ev.insert("details".into(), json!({"kubernetes": k8s}));
    let body = serde_json::to_vec(&Value::Object(ev)).map_err(|e| Problem::internal(e.to_string()))?;
    Ok((body, Subject { id: username, kind, extra }))
}

/// A JSON value as the shaper's own JSON type (which keeps numbers and order as RFC 8785
/// wants them).
fn to_jcs(v: &Value) -> graven_core::jcs::Value {
    graven_core::jcs::parse(v.to_string().as_bytes()).unwrap_or(graven_core::jcs::Value::Null)
}

/// The stored actor of a reported event: the subject, marked as attested by the source.
fn attested(subject: Subject, source: &Principal) -> Actor {
    let by = json!({
        "id": source.actor.id,
        "kind": source.actor.kind,
        "credential": source.actor.credential,
        "auth": source.actor.auth,
    });
    let mut extra = vec![("attested_by".to_owned(), by), ("platform".to_owned(), json!("kubernetes"))];
    extra.extend(subject.extra);
    let extra = extra.into_iter().map(|(k, v)| (k, to_jcs(&v))).collect();
    Actor {
        id: subject.id,
        kind: subject.kind.to_owned(),
        credential: format!("attested:{}", source.identity),
        auth: "attested".to_owned(),
        extra,
    }
}
