//! `/v1/identities`: the registry's HTTP API (admin only; `http::guard` checks that).
//!
//! Every change runs the same steps under one lock: read the records, check the change,
//! append its audit event (attributed to the admin, committed), make the new records durable,
//! answer. A change is acknowledged only after both its event and the registry file are on
//! disk. If the registry write fails after the event was committed, the answer says so: the
//! log then holds a record of a change that did not take effect, never the reverse.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use graven_api::{ChangeRequest, IdentityList, IdentityView, KeyList, KeyRequest, KeyView, NewKey, Retiring};
use serde_json::json;

use crate::http::audit;
use crate::http::body::read_json as parse;
use crate::http::state::{AppState, Peer, finish};
use crate::problem::Problem;
use graven_auth::apikey;
use graven_auth::identity::{self, IdentityRecord, KeyRecord, Kind, NewIdentity, Role, Status};
use graven_auth::principal::Principal;

/// Longest overlap a rotation may give the old key.
const MAX_OVERLAP_SECONDS: u64 = 30 * 86_400;
/// Longest lifetime a key may be given.
const MAX_TTL_SECONDS: u64 = 10 * 366 * 86_400;

type St = State<Arc<AppState>>;
type Admin = Extension<Arc<Principal>>;
type MaybePeer = Option<Extension<Peer>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/identities", get(list).post(create))
        .route("/v1/identities/{id}", get(show))
        .route("/v1/identities/{id}/disable", post(disable))
        .route("/v1/identities/{id}/enable", post(enable))
        .route("/v1/identities/{id}/revoke", post(revoke))
        .route("/v1/identities/{id}/keys", get(list_keys).post(create_key))
        .route("/v1/identities/{id}/keys/rotate", post(rotate_key))
        .route("/v1/identities/{id}/keys/{key_id}/revoke", post(revoke_key))
}

fn ip(peer: MaybePeer) -> Option<IpAddr> {
    peer.map(|p| p.0.0)
}

pub(crate) fn fmt_ms(ms: i64) -> String {
    crate::http::audit::format_ms(ms)
}

fn key_record_view(k: &KeyRecord, now: i64) -> KeyView {
    let state = if k.revoked_ms.is_some() {
        "revoked"
    } else if k.usable(now) {
        "active"
    } else {
        "expired"
    };
    KeyView {
        key_id: k.key_id.clone(),
        state: state.into(),
        created_at: fmt_ms(k.created_ms),
        expires_at: k.expires_ms.map(fmt_ms),
        revoked_at: k.revoked_ms.map(fmt_ms),
        identity: None,
        audit_index: None,
    }
}

fn view(r: &IdentityRecord, now: i64) -> IdentityView {
    IdentityView {
        id: r.id.clone(),
        kind: r.kind.as_str().into(),
        owner: r.owner.clone(),
        description: r.description.clone(),
        labels: r.labels.clone(),
        allowed_actions: r.allowed_actions.clone(),
        role: r.role.as_str().into(),
        status: r.status.as_str().into(),
        created_at: fmt_ms(r.created_ms),
        status_changed_at: r.status_changed_ms.map(fmt_ms),
        last_seen_at: r.last_seen_ms.map(fmt_ms),
        keys: r.keys.iter().map(|k| key_record_view(k, now)).collect(),
        audit_index: None,
        source: r
            .source
            .as_ref()
            .map(|g| graven_api::SourceGrant { types: g.types.clone(), subjects: g.subjects.clone() }),
    }
}

/// An answer of a wire type ([`graven_api`], whose schemas the OpenAPI document carries).
pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    let body = match serde_json::to_string(v) {
        Ok(b) => b,
        Err(e) => return Problem::internal(format!("encoding the answer failed: {e}")).into_response(),
    };
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub(crate) fn conflict(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::CONFLICT, "conflict", "The change conflicts with the identity's state", detail)
}

pub(crate) fn no_identity(id: &str) -> Problem {
    Problem::not_found(format!(
        "no identity {id:?}; list them with GET /v1/identities (graven identity list)"
    ))
}

/// Makes the records durable (on a blocking thread), after `receipt`'s audit event.
pub(crate) async fn install(
    st: &AppState,
    records: BTreeMap<String, IdentityRecord>,
    base: u64,
    audit_index: u64,
) -> Result<(), Problem> {
    let reg = st.registry.clone();
    tokio::task::spawn_blocking(move || reg.install_over(records, base))
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(|e| match e {
            graven_auth::registry::RegistryError::Conflict => conflict(format!(
                "another node changed the identity registry while this change was made; the attempt is recorded in the log (event {audit_index}) but it did not take effect. Read the identity again and retry"
            )),
            e => Problem::internal(format!(
                "the change was recorded in the log (event {audit_index}) but saving the registry failed, so it did not take effect: {e}"
            )),
        })
}

async fn list(State(st): St) -> Response {
    let now = st.now_ms();
    let identities = st.registry.records().values().map(|r| view(r, now)).collect();
    finish(&st, "GET /v1/identities", Ok(json_response(StatusCode::OK, &IdentityList { identities })))
}

async fn show(State(st): St, Path(id): Path<String>) -> Response {
    let r = st
        .registry
        .get(&id)
        .map(|r| json_response(StatusCode::OK, &view(&r, st.now_ms())))
        .ok_or_else(|| no_identity(&id));
    finish(&st, "GET /v1/identities/{id}", r)
}

async fn list_keys(State(st): St, Path(id): Path<String>) -> Response {
    let now = st.now_ms();
    let r = st
        .registry
        .get(&id)
        .map(|r| {
            let keys = r.keys.iter().map(|k| key_record_view(k, now)).collect();
            json_response(StatusCode::OK, &KeyList { identity: r.id, keys })
        })
        .ok_or_else(|| no_identity(&id));
    finish(&st, "GET /v1/identities/{id}/keys", r)
}

async fn create(State(st): St, Extension(admin): Admin, peer: MaybePeer, body: Body) -> Response {
    let r = async {
        let new = new_identity(parse(body).await?);
        let now = st.now_ms();
        let rec = new
            .into_record(now)
            .map_err(|e| Problem::bad_request("invalid-identity", format!("{e}; nothing changed")))?;
        let _g = st.admin_lock.lock().await;
        let (mut records, base) = st.registry.records_at();
        if records.contains_key(&rec.id) {
            return Err(conflict(format!("identity {} already exists; IDs are never reused", rec.id)));
        }
        if records.len() >= identity::MAX_IDENTITIES {
            return Err(conflict(format!(
                "the registry holds its maximum of {} identities",
                identity::MAX_IDENTITIES
            )));
        }
        let details = json!({
            "kind": rec.kind, "owner": rec.owner, "role": rec.role, "description": rec.description,
            "labels": rec.labels, "allowed_actions": rec.allowed_actions,
        });
        let mut details = details;
        if let Some(g) = &rec.source {
            details["source"] = json!(g);
        }
        let receipt =
            audit::change(&st, &admin, "graven.identity.create", &rec.id, details, ip(peer)).await?;
        records.insert(rec.id.clone(), rec.clone());
        install(&st, records, base, receipt.index).await?;
        let v = IdentityView { audit_index: Some(receipt.index), ..view(&rec, now) };
        let mut resp = json_response(StatusCode::CREATED, &v);
        let loc = format!("/v1/identities/{}", pct(&rec.id));
        if let Ok(h) = HeaderValue::from_str(&loc) {
            resp.headers_mut().insert(header::LOCATION, h);
        }
        Ok(resp)
    }
    .await;
    finish(&st, "POST /v1/identities", r)
}

/// The request's identity as the registry's: the wire type is what the OpenAPI document
/// describes, so the server reads exactly that.
fn new_identity(n: graven_api::NewIdentity) -> NewIdentity {
    use graven_api::{IdentityKind as K, Role as R};
    NewIdentity {
        id: n.id,
        kind: match n.kind {
            K::ServiceAccount => Kind::ServiceAccount,
            K::ApiKey => Kind::ApiKey,
            K::Bot => Kind::Bot,
            K::CiJob => Kind::CiJob,
            K::Workload => Kind::Workload,
            K::Agent => Kind::Agent,
            K::Integration => Kind::Integration,
        },
        owner: n.owner,
        description: n.description,
        labels: n.labels,
        allowed_actions: n.allowed_actions,
        role: match n.role {
            R::Writer => Role::Writer,
            R::Auditor => Role::Auditor,
            R::Admin => Role::Admin,
            R::Source => Role::Source,
        },
        source: n.source.map(|g| graven_auth::identity::SourceGrant { types: g.types, subjects: g.subjects }),
    }
}

/// Percent-encodes an identity ID for use as one path segment.
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn reason_ok(reason: &Option<String>) -> Result<(), Problem> {
    match reason {
        Some(r) if r.len() > 1024 || r.chars().any(char::is_control) => Err(Problem::bad_request(
            "invalid-request",
            "`reason` must be at most 1024 bytes without control characters",
        )),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Copy)]
enum StatusChange {
    Disable,
    Enable,
    Revoke,
}

async fn disable(st: St, admin: Admin, peer: MaybePeer, id: Path<String>, body: Body) -> Response {
    status_change(st, admin, peer, id, body, StatusChange::Disable).await
}

async fn enable(st: St, admin: Admin, peer: MaybePeer, id: Path<String>, body: Body) -> Response {
    status_change(st, admin, peer, id, body, StatusChange::Enable).await
}

async fn revoke(st: St, admin: Admin, peer: MaybePeer, id: Path<String>, body: Body) -> Response {
    status_change(st, admin, peer, id, body, StatusChange::Revoke).await
}

async fn status_change(
    State(st): St,
    Extension(admin): Admin,
    peer: MaybePeer,
    Path(id): Path<String>,
    body: Body,
    change: StatusChange,
) -> Response {
    let (route, action) = match change {
        StatusChange::Disable => ("POST /v1/identities/{id}/disable", "graven.identity.disable"),
        StatusChange::Enable => ("POST /v1/identities/{id}/enable", "graven.identity.enable"),
        StatusChange::Revoke => ("POST /v1/identities/{id}/revoke", "graven.identity.revoke"),
    };
    let r = async {
        let b: ChangeRequest = parse(body).await?;
        reason_ok(&b.reason)?;
        let now = st.now_ms();
        let _g = st.admin_lock.lock().await;
        let (mut records, base) = st.registry.records_at();
        let rec = records.get_mut(&id).ok_or_else(|| no_identity(&id))?;
        if rec.status == Status::Revoked {
            return Err(conflict(format!("identity {id} is revoked, which is final")));
        }
        if id == admin.identity && !matches!(change, StatusChange::Enable) {
            return Err(conflict(
                "an admin cannot disable or revoke its own identity; use another admin's key",
            ));
        }
        let from = rec.status;
        rec.status = match (change, from) {
            (StatusChange::Disable, Status::Active) => Status::Disabled,
            (StatusChange::Enable, Status::Disabled) => Status::Active,
            (StatusChange::Revoke, _) => Status::Revoked,
            (_, s) => return Err(conflict(format!("identity {id} is already {}", s.as_str()))),
        };
        rec.status_changed_ms = Some(now);
        if rec.status == Status::Revoked {
            for k in rec.keys.iter_mut().filter(|k| k.revoked_ms.is_none()) {
                k.revoked_ms = Some(now);
            }
            for k in rec.public_keys.iter_mut().filter(|k| k.revoked_ms.is_none()) {
                k.revoked_ms = Some(now);
            }
        }
        let after = rec.clone();
        let details = json!({"from": from.as_str(), "to": after.status.as_str(), "reason": b.reason});
        let receipt = audit::change(&st, &admin, action, &id, details, ip(peer)).await?;
        install(&st, records, base, receipt.index).await?;
        let v = IdentityView { audit_index: Some(receipt.index), ..view(&after, now) };
        Ok(json_response(StatusCode::OK, &v))
    }
    .await;
    finish(&st, route, r)
}

fn expiry(b: &KeyRequest, now: i64) -> Result<Option<i64>, Problem> {
    match (&b.expires_at, b.ttl_seconds) {
        (Some(_), Some(_)) => {
            Err(Problem::bad_request("invalid-request", "give expires_at or ttl_seconds, not both"))
        }
        (None, None) => Ok(None),
        (None, Some(s)) if s == 0 || s > MAX_TTL_SECONDS => {
            Err(Problem::bad_request("invalid-request", format!("ttl_seconds must be 1..={MAX_TTL_SECONDS}")))
        }
        (None, Some(s)) => Ok(Some(now + (s as i64) * 1000)),
        (Some(t), None) => {
            let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).map_err(
                |_| {
                    Problem::bad_request(
                        "invalid-request",
                        "expires_at must be an RFC 3339 time such as 2027-01-01T00:00:00Z",
                    )
                },
            )?;
            let ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
            if ms <= now {
                return Err(Problem::bad_request("invalid-request", "expires_at is in the past"));
            }
            Ok(Some(ms))
        }
    }
}

/// Adds a new key to `rec`. Keys that stopped working are never forgotten: their records keep
/// their ids dead (a key id that was revoked or expired can never become usable again).
fn add_new_key(rec: &mut IdentityRecord, now: i64, expires: Option<i64>) -> Result<apikey::Minted, Problem> {
    let usable = rec.keys.iter().filter(|k| k.usable(now)).count();
    if usable >= identity::MAX_KEYS_PER_IDENTITY {
        return Err(conflict(format!(
            "identity {} has {usable} usable keys, the maximum; revoke one first",
            rec.id
        )));
    }
    if rec.keys.len() >= identity::MAX_KEY_RECORDS_PER_IDENTITY {
        return Err(conflict(format!(
            "identity {} has had {} keys, the most one identity may ever have (revoked and expired keys are kept for good); create a new identity",
            rec.id,
            rec.keys.len()
        )));
    }
    let m = apikey::mint().map_err(|e| Problem::internal(format!("no randomness for a key: {e}")))?;
    rec.keys.push(KeyRecord {
        key_id: m.key_id.clone(),
        sha256: graven_core::hex::encode(&m.digest),
        created_ms: now,
        expires_ms: expires,
        revoked_ms: None,
    });
    Ok(m)
}

async fn create_key(st: St, admin: Admin, peer: MaybePeer, id: Path<String>, body: Body) -> Response {
    new_key(st, admin, peer, id, body, false).await
}

async fn rotate_key(st: St, admin: Admin, peer: MaybePeer, id: Path<String>, body: Body) -> Response {
    new_key(st, admin, peer, id, body, true).await
}

async fn new_key(
    State(st): St,
    Extension(admin): Admin,
    peer: MaybePeer,
    Path(id): Path<String>,
    body: Body,
    rotate: bool,
) -> Response {
    let (route, action) = if rotate {
        ("POST /v1/identities/{id}/keys/rotate", "graven.key.rotate")
    } else {
        ("POST /v1/identities/{id}/keys", "graven.key.create")
    };
    let r = async {
        let b: KeyRequest = parse(body).await?;
        let now = st.now_ms();
        let expires = expiry(&b, now)?;
        let overlap = match (rotate, b.overlap_seconds) {
            (false, Some(_)) => {
                return Err(Problem::bad_request(
                    "invalid-request",
                    "overlap_seconds is for keys/rotate only",
                ));
            }
            (_, Some(s)) if s > MAX_OVERLAP_SECONDS => {
                return Err(Problem::bad_request(
                    "invalid-request",
                    format!("overlap_seconds must be at most {MAX_OVERLAP_SECONDS} (30 days)"),
                ));
            }
            (_, o) => o.unwrap_or(3600),
        };
        let _g = st.admin_lock.lock().await;
        let (mut records, base) = st.registry.records_at();
        let rec = records.get_mut(&id).ok_or_else(|| no_identity(&id))?;
        if rec.status == Status::Revoked {
            return Err(conflict(format!("identity {id} is revoked, which is final; it gets no new keys")));
        }
        let mut retiring = Vec::new();
        let mut retiring_keys = Vec::new();
        if rotate {
            let until = now + (overlap as i64) * 1000;
            for k in rec.keys.iter_mut().filter(|k| k.usable(now)) {
                let e = k.expires_ms.map_or(until, |e| e.min(until));
                k.expires_ms = Some(e);
                retiring.push(json!({"key_id": k.key_id, "expires_at": fmt_ms(e)}));
                retiring_keys.push(Retiring { key_id: k.key_id.clone(), expires_at: fmt_ms(e) });
            }
        }
        let m = add_new_key(rec, now, expires)?;
        let mut details = json!({"key_id": m.key_id, "expires_at": expires.map(fmt_ms)});
        if rotate {
            details["overlap_seconds"] = json!(overlap);
            details["retiring"] = json!(retiring);
        }
        let receipt = audit::change(&st, &admin, action, &id, details.clone(), ip(peer)).await?;
        install(&st, records, base, receipt.index).await?;
        let answer = NewKey {
            audit_index: receipt.index,
            expires_at: expires.map(fmt_ms),
            identity: id.clone(),
            key: m.key,
            key_id: m.key_id,
            overlap_seconds: rotate.then_some(overlap),
            retiring: rotate.then_some(retiring_keys),
        };
        let mut resp = json_response(StatusCode::CREATED, &answer);
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(resp)
    }
    .await;
    finish(&st, route, r)
}

async fn revoke_key(
    State(st): St,
    Extension(admin): Admin,
    peer: MaybePeer,
    Path((id, key_id)): Path<(String, String)>,
    body: Body,
) -> Response {
    let r = async {
        let b: ChangeRequest = parse(body).await?;
        reason_ok(&b.reason)?;
        let now = st.now_ms();
        let _g = st.admin_lock.lock().await;
        let (mut records, base) = st.registry.records_at();
        let rec = records.get_mut(&id).ok_or_else(|| no_identity(&id))?;
        let key = rec.keys.iter_mut().find(|k| k.key_id == key_id).ok_or_else(|| {
            Problem::not_found(format!(
                "identity {id} has no key {key_id:?}; see GET /v1/identities/{{id}}/keys"
            ))
        })?;
        if key.revoked_ms.is_some() {
            return Err(conflict(format!("key {key_id} is already revoked")));
        }
        if key_id == admin.key_id {
            return Err(conflict(
                "this request is signed with the key it would revoke; use another admin key",
            ));
        }
        key.revoked_ms = Some(now);
        let view_after = key_record_view(key, now);
        let details = json!({"key_id": key_id, "reason": b.reason});
        let receipt = audit::change(&st, &admin, "graven.key.revoke", &id, details, ip(peer)).await?;
        install(&st, records, base, receipt.index).await?;
        let v = KeyView { identity: Some(id), audit_index: Some(receipt.index), ..view_after };
        Ok(json_response(StatusCode::OK, &v))
    }
    .await;
    finish(&st, "POST /v1/identities/{id}/keys/{key_id}/revoke", r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_as_one_segment() {
        assert_eq!(pct("svc:payments-worker"), "svc:payments-worker");
        assert_eq!(pct("spiffe://example.org/ns/a"), "spiffe:%2F%2Fexample.org%2Fns%2Fa");
    }

    #[test]
    fn expiry_is_checked() {
        let b = |e: Option<&str>, t: Option<u64>| KeyRequest {
            expires_at: e.map(str::to_owned),
            ttl_seconds: t,
            overlap_seconds: None,
        };
        assert_eq!(expiry(&b(None, None), 0).unwrap(), None);
        assert_eq!(expiry(&b(None, Some(2)), 1000).unwrap(), Some(3000));
        assert!(expiry(&b(None, Some(0)), 0).is_err());
        assert!(
            expiry(
                &b(Some("2000-01-01T00:00:00Z"), None),
                graven_clock::Clock::unix_ms(&graven_clock::SystemClock)
            )
            .is_err()
        );
        assert!(expiry(&b(Some("soon"), None), 0).is_err());
        assert!(expiry(&b(Some("2099-01-01T00:00:00Z"), Some(1)), 0).is_err());
        assert!(expiry(&b(Some("2099-01-01T00:00:00Z"), None), 0).unwrap().is_some());
    }
}
