//! Ed25519 public keys registered to identities: for RFC 9421 request signatures
//! ([`crate::sigauth`]) and client-signed events ([`crate::client_sig`]).
//!
//! A key's id is derived from the key (`graven_core::event_sig::key_id`: the first 8 bytes of
//! its SHA-256, in hex), so one key cannot belong to two identities. Registering and revoking
//! a key are self-audited like API keys (`graven.key.add_public`, `graven.key.revoke_public`);
//! the registration event carries the public key itself, so a verifier can rebuild every
//! identity's keys from the log alone and check client signatures offline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::event::Actor;
use crate::http::{AppState, Peer, finish, now_ms};
use crate::identities::{
    ChangeBody, conflict, fmt_ms, install, json_response, no_identity, parse, reason_ok,
};
use crate::identity::{IdentityRecord, Status};
use crate::problem::Problem;
use crate::registry::Principal;

/// Public keys kept per identity (active and revoked together).
pub const MAX_PUBLIC_KEYS_PER_IDENTITY: usize = 16;
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

pub use crate::identity::PublicKeyRecord;

/// Reads an Ed25519 public key: base64 (standard or URL-safe, padded or not) of the 32 raw
/// bytes, or of an RFC 8410 SubjectPublicKeyInfo, optionally as PEM (`BEGIN PUBLIC KEY`).
/// Small-order (weak) keys are refused.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let body: String =
        text.lines().map(str::trim).filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().concat();
    if body.len() > 256 {
        return Err("too long for an Ed25519 public key".into());
    }
    let raw = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(&body).ok())
        .ok_or("not base64")?;
    let bytes: [u8; 32] = match raw.len() {
        32 => raw.try_into().map_err(|_| "not 32 bytes")?,
        44 if raw[..12] == SPKI_PREFIX => raw[12..].try_into().map_err(|_| "not 32 bytes")?,
        n => {
            return Err(format!(
                "{n} bytes; an Ed25519 public key is 32 bytes (or a 44-byte SubjectPublicKeyInfo)"
            ));
        }
    };
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| "not a point on the curve")?;
    if key.is_weak() {
        return Err("a small-order key, which anyone can sign for".into());
    }
    Ok(key)
}

/// A public key ready for a request: its key, state and the principal it authenticates.
#[derive(Debug)]
pub(crate) struct Slot {
    pub key: VerifyingKey,
    pub revoked: bool,
    pub status: Status,
    pub principal: Arc<Principal>,
}

/// The public-key lookup table for a registry snapshot.
pub(crate) fn slots(
    records: &BTreeMap<String, IdentityRecord>,
    last_seen: &HashMap<String, Arc<AtomicI64>>,
) -> HashMap<String, Slot> {
    let mut out = HashMap::new();
    for r in records.values() {
        let seen = last_seen.get(&r.id).cloned().unwrap_or_default();
        for k in &r.public_keys {
            let Ok(key) = parse_public_key(&k.public_key) else { continue };
            let principal = Arc::new(Principal {
                identity: r.id.clone(),
                role: r.role,
                key_id: k.key_id.clone(),
                allowed_actions: r.allowed_actions.clone(),
                actor: Actor {
                    id: r.id.clone(),
                    kind: r.kind.as_str().into(),
                    credential: format!("pubkey:{}", k.key_id),
                    auth: "http_signature".into(),
                    extra: Vec::new(),
                },
                last_seen: seen.clone(),
                expires_ms: None,
            });
            out.insert(
                k.key_id.clone(),
                Slot { key, revoked: k.revoked_ms.is_some(), status: r.status, principal },
            );
        }
    }
    out
}

type St = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/identities/{id}/public-keys", get(list).post(add))
        .route("/v1/identities/{id}/public-keys/{key_id}/revoke", post(revoke))
}

fn view(k: &PublicKeyRecord) -> Value {
    json!({
        "key_id": k.key_id,
        "alg": k.alg,
        "public_key": k.public_key,
        "state": if k.revoked_ms.is_some() { "revoked" } else { "active" },
        "created_at": fmt_ms(k.created_ms),
        "revoked_at": k.revoked_ms.map(fmt_ms),
    })
}

async fn list(State(st): St, Path(id): Path<String>) -> Response {
    let r = st
        .registry
        .get(&id)
        .map(|r| {
            let keys: Vec<Value> = r.public_keys.iter().map(view).collect();
            json_response(StatusCode::OK, &json!({"identity": r.id, "public_keys": keys}))
        })
        .ok_or_else(|| no_identity(&id));
    finish(&st, "GET /v1/identities/{id}/public-keys", r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    /// Base64 of the 32 raw bytes, or a PEM/base64 SubjectPublicKeyInfo.
    public_key: String,
}

async fn add(
    State(st): St,
    Extension(admin): Extension<Arc<Principal>>,
    peer: Option<Extension<Peer>>,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let r = async {
        let b: AddBody = parse(body).await?;
        let key = parse_public_key(&b.public_key).map_err(|e| {
            Problem::bad_request("invalid-public-key", format!("public_key: {e}; nothing changed"))
        })?;
        let key_id = graven_core::event_sig::key_id(key.as_bytes());
        let now = now_ms();
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
            crate::audit::change(&st, &admin, "graven.key.add_public", &id, details, peer.map(|p| p.0.0)).await?;
        install(&st, records, base, receipt.index).await?;
        let mut v = view(&record);
        v["identity"] = json!(id);
        v["audit_index"] = json!(receipt.index);
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
        let b: ChangeBody = parse(body).await?;
        reason_ok(&b.reason)?;
        let now = now_ms();
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
        let receipt =
            crate::audit::change(&st, &admin, "graven.key.revoke_public", &id, details, peer.map(|p| p.0.0))
                .await?;
        install(&st, records, base, receipt.index).await?;
        let mut v = after;
        v["identity"] = json!(id);
        v["audit_index"] = json!(receipt.index);
        Ok(json_response(StatusCode::OK, &v))
    }
    .await;
    finish(&st, "POST /v1/identities/{id}/public-keys/{key_id}/revoke", r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_parse_in_every_documented_form() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let vk = sk.verifying_key();
        let raw = vk.as_bytes();
        let mut spki = SPKI_PREFIX.to_vec();
        spki.extend_from_slice(raw);
        let pem =
            format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", STANDARD.encode(&spki));
        for form in [STANDARD.encode(raw), URL_SAFE_NO_PAD.encode(raw), STANDARD.encode(&spki), pem] {
            assert_eq!(parse_public_key(&form).unwrap(), vk, "{form}");
        }
        assert!(parse_public_key(&STANDARD.encode([0u8; 31])).unwrap_err().contains("31 bytes"));
        assert!(parse_public_key("!!!").is_err());
        // The identity point is small-order: refused.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert!(parse_public_key(&STANDARD.encode(ident)).unwrap_err().contains("small-order"));
    }
}
