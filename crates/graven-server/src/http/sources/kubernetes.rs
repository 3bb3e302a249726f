//! Kubernetes: the API server's audit webhook backend posts `audit.k8s.io/v1` `EventList`s to
//! `POST /v1/sources/kubernetes`. A request is all or nothing: every record it takes is logged
//! in one commit, or none is. Records of stages the request does not ask for (`?stages=`,
//! default `ResponseComplete`) are skipped; a record already logged from this source (the same
//! `auditID` and stage) is not logged again, so the API server's retry after a lost answer is
//! not logged twice.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use graven_auth::principal::Principal;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::report::{Batch, Record, Subject, bad, respond};
use crate::http::body::read_body;
use crate::http::state::{AppState, Peer, StrictQuery};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

const STAGES: [&str; 4] = ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"];

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
    respond(&st, &principal, peer.map(|p| p.0.0), ROUTE, r).await
}

const ROUTE: &str = "POST /v1/sources/kubernetes";

async fn kubernetes_inner(
    st: &AppState,
    principal: &Principal,
    query: &KubernetesQuery,
    body: Body,
) -> Result<graven_api::SourceReport, Problem> {
    let mut batch = Batch::new(principal, "kubernetes")?;
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
    Batch::check_count(st, list.items.len(), "EventList (set the webhook's batch size below it)")?;
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
            batch.skip();
            continue;
        }
        let dedup_id = format!("{audit_id}/{stage}");
        let rec = map_kubernetes(&item, raw.get(), &at, dedup_id)?;
        batch.add(&at, rec)?;
    }
    batch.commit(st).await
}

/// The event a Kubernetes audit record describes (docs/sources.md has the table), and its
/// subject.
fn map_kubernetes<'a>(
    item: &Map<String, Value>,
    raw: &'a str,
    at: &str,
    dedup_id: String,
) -> Result<Record<'a>, Problem> {
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
