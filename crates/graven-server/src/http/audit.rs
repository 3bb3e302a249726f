//! The log audits itself: identity and key changes, and refused requests, become events.
//!
//! A change is attributed to the admin who made it. A refused request is attributed to the
//! identity whose credential it presented only when that credential was verified (an API key
//! whose secret matched but that is revoked, expired or disabled; a wrong role; an action
//! outside the allowed patterns). Until a credential is verified, the refusal is attributed to
//! the server itself ([`SERVER_ACTOR_ID`]), with the key id and identity the request named, if
//! any, under `claimed`: naming somebody's public key id proves nothing. No event ever holds a
//! secret: only key ids, which are public.

use std::net::IpAddr;

use serde_json::json;

use crate::http::state::AppState;
use crate::problem::Problem;
use graven_auth::principal::{Actor, Principal};
use graven_auth::shape;
use graven_engine::engine::{Entry, Receipt, SubmitError};

/// The actor of a denied record whose request proved no identity. The `graven:` prefix is
/// reserved, so no registered identity can have this id.
pub const SERVER_ACTOR_ID: &str = "graven:server";

fn server_actor() -> Actor {
    Actor {
        id: SERVER_ACTOR_ID.into(),
        kind: "server".into(),
        credential: "none".into(),
        auth: "none".into(),
        extra: Vec::new(),
    }
}

async fn append(st: &AppState, body: serde_json::Value, actor: &Actor) -> Result<Receipt, Problem> {
    let bytes = serde_json::to_vec(&body).map_err(|e| Problem::internal(e.to_string()))?;
    let e =
        shape::shape_self_audit(&bytes, actor).map_err(|e| Problem::internal(format!("audit event: {e}")))?;
    let mut receipts = st
        .engine
        .submit(vec![Entry::event(e.bytes, e.stamp_at)])
        .await
        .map_err(crate::problem::submit_problem)?;
    receipts.pop().ok_or_else(|| Problem::internal("no receipt for the audit event"))
}

/// Appends the records of start-up changes to the registry (the bootstrap admin and its key),
/// attributed to the server, all in one commit, and waits until they are durable.
pub async fn record_startup(
    engine: &graven_engine::engine::Engine,
    events: &[serde_json::Value],
) -> Result<(), SubmitError> {
    let actor = server_actor();
    let mut entries = Vec::with_capacity(events.len());
    for body in events {
        let bytes =
            serde_json::to_vec(body).map_err(|e| SubmitError::Storage(format!("start-up event: {e}")))?;
        let e = shape::shape_self_audit(&bytes, &actor)
            .map_err(|e| SubmitError::Storage(format!("start-up event: {e}")))?;
        entries.push(Entry::event(e.bytes, e.stamp_at));
    }
    engine.submit(entries).await.map(|_| ())
}

/// Appends the record of a configuration reload that changed reloadable settings (who may
/// authenticate, what is public, how many refusals are recorded), attributed to the server,
/// and waits until it is committed.
pub async fn record_reload(st: &AppState, details: serde_json::Value) -> Result<Receipt, Problem> {
    let body = json!({
        "action": "graven.config.reload",
        "outcome": "success",
        "resource": {"type": "graven.config", "id": "graven.toml"},
        "details": details,
    });
    append(st, body, &server_actor()).await
}

fn source(peer: Option<IpAddr>) -> serde_json::Value {
    match peer {
        Some(ip) => json!({"ip": ip.to_string()}),
        None => json!({}),
    }
}

/// Appends the record of an identity or key change (`action`, e.g. `graven.identity.create`)
/// made by `admin` to identity `id`, and waits until it is committed.
pub async fn change(
    st: &AppState,
    admin: &Principal,
    action: &str,
    id: &str,
    details: serde_json::Value,
    peer: Option<IpAddr>,
) -> Result<Receipt, Problem> {
    let body = json!({
        "action": action,
        "outcome": "success",
        "resource": {"type": "graven.identity", "id": id},
        "details": details,
        "source": source(peer),
    });
    append(st, body, &admin.actor).await
}

/// Appends alert events (`graven.alert`, built by `graven_rules::Alert::event`), attributed to
/// the server, in one commit, and waits until they are committed.
pub async fn record_alerts(st: &AppState, bodies: &[serde_json::Value]) -> Result<(), Problem> {
    let actor = server_actor();
    let mut entries = Vec::with_capacity(bodies.len());
    for body in bodies {
        let bytes = serde_json::to_vec(body).map_err(|e| Problem::internal(e.to_string()))?;
        let e = shape::shape_self_audit(&bytes, &actor)
            .map_err(|e| Problem::internal(format!("alert event: {e}")))?;
        entries.push(Entry::event(e.bytes, e.stamp_at));
    }
    st.engine.submit(entries).await.map(|_| ()).map_err(crate::problem::submit_problem)
}

/// Appends the record of a console sign-in or sign-out (`action`) by `who`, attributed to the
/// identity whose credential it was, and waits until it is committed.
pub async fn console_session(
    st: &AppState,
    who: &Principal,
    action: &str,
    peer: Option<IpAddr>,
) -> Result<Receipt, Problem> {
    let body = json!({
        "action": action,
        "outcome": "success",
        "resource": {"type": "graven.console", "id": "/ui"},
        "source": source(peer),
    });
    append(st, body, &who.actor).await
}

/// What a denied record says about the refused request.
#[derive(Debug, Clone)]
pub struct Refusal<'a> {
    /// The identity whose key matched, if one did.
    pub who: Option<&'a Principal>,
    /// The key id the request named, when no key matched or the credential was not verified.
    pub claimed_key: Option<&'a str>,
    /// The identity that key belongs to, when the request named a registered key but did not
    /// prove it holds it (an RFC 9421 signature that was not verified): kept under `claimed`,
    /// never as the actor.
    pub claimed_identity: Option<&'a str>,
    pub reason: &'static str,
    /// `METHOD /route`.
    pub route: &'static str,
    /// For an action outside the allowed patterns: that action (at most 256 bytes kept).
    pub attempted_action: Option<&'a str>,
    pub peer: Option<IpAddr>,
}

/// Appends an `outcome: "denied"` record unless the rate limiter says the log has had enough
/// of them; those are counted (`graven_denied_records_dropped_total`) and tallied for the next
/// [`summarize_dropped`].
pub async fn denied(st: &AppState, r: Refusal<'_>) {
    if !st.denied_limiter.allow(r.peer, r.reason, st.clock.now(), st.now_ms()) {
        st.metrics.denied_dropped.inc();
        return;
    }
    let mut details = json!({"reason": r.reason, "route": r.route});
    if let Some(a) = r.attempted_action {
        let mut end = a.len().min(256);
        while !a.is_char_boundary(end) {
            end -= 1;
        }
        details["attempted_action"] = json!(&a[..end]);
    }
    if let Some(p) = r.who {
        details["role"] = json!(p.role.as_str());
    }
    let mut body = json!({
        "action": "graven.access.denied",
        "outcome": "denied",
        "resource": {"type": "graven.route", "id": r.route},
        "details": details,
        "source": source(r.peer),
    });
    let server = server_actor();
    let actor = match r.who {
        Some(p) => &p.actor,
        None => {
            let mut claimed = serde_json::Map::new();
            if let Some(k) = r.claimed_key {
                claimed.insert("credential".into(), json!(format!("key:{k}")));
            }
            if let Some(id) = r.claimed_identity {
                claimed.insert("id".into(), json!(id));
            }
            if !claimed.is_empty() {
                body["actor"] = serde_json::Value::Object(claimed);
            }
            &server
        }
    };
    match append(st, body, actor).await {
        Ok(_) => {
            st.metrics.denied_records.inc();
        }
        Err(e) => {
            st.metrics.denied_dropped.inc();
            tracing::warn!(error = %e.detail, reason = r.reason, "could not append a denied record");
        }
    };
}

/// Sources named in one summary; the rest are counted together.
const SUMMARY_SOURCES: usize = 32;

/// Appends one `graven.access.denied_summary` event for the denied records the rate limiter
/// dropped since the last summary, if it dropped any: how many, why, and from which addresses
/// (the busiest [`SUMMARY_SOURCES`] by name). Called periodically, so a flood that crowded out
/// a brute force's records still leaves the brute force's address and count in the log.
pub async fn summarize_dropped(st: &AppState) -> Result<Option<Receipt>, Problem> {
    let Some(d) = st.denied_limiter.take_dropped() else { return Ok(None) };
    let top = d.top(SUMMARY_SOURCES);
    let named: u64 = top.iter().map(|(_, s)| s.dropped).sum();
    let sources: Vec<serde_json::Value> = top
        .iter()
        .map(|(ip, s)| {
            json!({
                "ip": ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
                "dropped": s.dropped,
                "reasons": s.reasons,
            })
        })
        .collect();
    let body = json!({
        "action": "graven.access.denied_summary",
        "outcome": "denied",
        "resource": {"type": "graven.route", "id": "*"},
        "details": {
            "dropped": d.total,
            "from": format_ms(d.first_ms),
            "until": format_ms(d.last_ms),
            "reasons": d.reasons,
            "sources": sources,
            "other_sources_dropped": d.total - named,
        },
    });
    append(st, body, &server_actor()).await.map(Some)
}

/// Unix milliseconds in the fixed `logged_at` format.
pub fn format_ms(ms: i64) -> String {
    graven_core::event::format_timestamp(ms.saturating_mul(1000))
}
