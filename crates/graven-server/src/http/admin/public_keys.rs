//! `/v1/identities/{id}/public-keys`: registering and revoking identities' Ed25519 public keys
//! (admin only), self-audited like API keys (`graven.key.add_public`,
//! `graven.key.revoke_public`). The registration event carries the public key itself, so a
//! verifier can rebuild every identity's keys from the log alone. The keys' rules are
//! [`graven_auth::public_key`]'s.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use graven_api::{ChangeRequest, PublicKeyList, PublicKeyRequest, PublicKeyView};
use graven_auth::identity::Status;
use graven_auth::principal::Principal;
use graven_auth::public_key::{MAX_PUBLIC_KEYS_PER_IDENTITY, PublicKeyRecord, parse_public_key};
use serde_json::json;

use super::identities::{conflict, fmt_ms, install, json_response, no_identity, reason_ok};
use crate::http::body::read_json as parse;
use crate::http::state::{AppState, Peer, finish};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/identities/{id}/public-keys", get(list).post(add))
        .route("/v1/identities/{id}/public-keys/{key_id}/revoke", post(revoke))
}

fn view(k: &PublicKeyRecord) -> PublicKeyView {
    PublicKeyView {
        key_id: k.key_id.clone(),
        alg: k.alg.clone(),
        public_key: k.public_key.clone(),
        state: if k.revoked_ms.is_some() { "revoked" } else { "active" }.into(),
        created_at: fmt_ms(k.created_ms),
        revoked_at: k.revoked_ms.map(fmt_ms),
        identity: None,
        audit_index: None,
    }
}

async fn list(State(st): St, Path(id): Path<String>) -> Response {
    let r = st
        .registry
        .get(&id)
        .map(|r| {
            let public_keys = r.public_keys.iter().map(view).collect();
            json_response(StatusCode::OK, &PublicKeyList { identity: r.id, public_keys })
        })
        .ok_or_else(|| no_identity(&id));
    finish(&st, "GET /v1/identities/{id}/public-keys", r)
}

async fn add(
    State(st): St,
    Extension(admin): Extension<Arc<Principal>>,
    peer: Option<Extension<Peer>>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let r = async {
        let b: PublicKeyRequest = parse(body).await?;
        let key = parse_public_key(&b.public_key).map_err(|e| {
            Problem::bad_request("invalid-public-key", format!("public_key: {e}; nothing changed"))
        })?;
        let key_id = graven_core::event_sig::key_id(key.as_bytes());
        let now = st.now_ms();
        let _g = st.admin_lock.lock().await;
        let (mut records, base) = st.registry.records_at();
        if let Some(owner) = records.values().find(|r| r.public_keys.iter().any(|k| k.key_id == key_id)) {
            return Err(conflict(format!(
                "this public key (key id {key_id}) is already registered to {}; a key belongs to one identity",
                owner.id
            )));
        }
        let rec = records.get_mut(&id).ok_or_else(|| no_identity(&id))?;
        if rec.status == Status::Revoked {
            return Err(conflict(format!("identity {id} is revoked, which is final; it gets no new keys")));
        }
        if rec.public_keys.len() >= MAX_PUBLIC_KEYS_PER_IDENTITY {
            return Err(conflict(format!(
                "identity {id} has {MAX_PUBLIC_KEYS_PER_IDENTITY} public keys, the maximum"
            )));
        }
        let record = PublicKeyRecord {
            key_id: key_id.clone(),
            alg: "ed25519".into(),
            public_key: STANDARD.encode(key.as_bytes()),
            created_ms: now,
            revoked_ms: None,
        };
        rec.public_keys.push(record.clone());
        // The event carries the key itself: verifiers rebuild the key set from the log.
        let details = json!({"key_id": key_id, "alg": "ed25519", "public_key": record.public_key});
        let receipt =
            crate::http::audit::change(&st, &admin, "graven.key.add_public", &id, details, peer.map(|p| p.0.0)).await?;
        install(&st, records, base, receipt.index).await?;
        let v = PublicKeyView { identity: Some(id), audit_index: Some(receipt.index), ..view(&record) };
        Ok(json_response(StatusCode::CREATED, &v))
    }
    .await;
    finish(&st, "POST /v1/identities/{id}/public-keys", r)
}

async fn revoke(
    State(st): St,
    Extension(admin): Extension<Arc<Principal>>,
    peer: Option<Extension<Peer>>,
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
        let key = rec.public_keys.iter_mut().find(|k| k.key_id == key_id).ok_or_else(|| {
            Problem::not_found(format!(
                "identity {id} has no public key {key_id:?}; see GET /v1/identities/{{id}}/public-keys"
            ))
        })?;
        if key.revoked_ms.is_some() {
            return Err(conflict(format!("public key {key_id} is already revoked")));
        }
        if key_id == admin.key_id {
            return Err(conflict(
                "this request is signed with the key it would revoke; use another admin key",
            ));
        }
        key.revoked_ms = Some(now);
        let after = view(key);
        let details = json!({"key_id": key_id, "reason": b.reason});
        let receipt = crate::http::audit::change(
            &st,
            &admin,
            "graven.key.revoke_public",
            &id,
            details,
            peer.map(|p| p.0.0),
        )
        .await?;
        install(&st, records, base, receipt.index).await?;
        let v = PublicKeyView { identity: Some(id), audit_index: Some(receipt.index), ..after };
        Ok(json_response(StatusCode::OK, &v))
    }
    .await;
    finish(&st, "POST /v1/identities/{id}/public-keys/{key_id}/revoke", r)
}
