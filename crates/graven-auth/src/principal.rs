//! Who a verified request is: the [`Principal`] a credential maps to, the [`Actor`] its
//! events are attributed to, and the [`Denial`] of a credential that maps to no usable one.
//!
//! Built by the registry (`registry`) for API keys and public keys, by
//! `oidc` for OIDC tokens and by `mtls` for client certificates; read by
//! the shaper (`shape`) and by the HTTP layer. Kept small and free of I/O: the
//! `event_shape` fuzz target compiles it from source with `identity`, `apikey` and `shape`.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use graven_core::jcs::Value;

use crate::apikey::Malformed;
use crate::identity::Role;

/// The verified identity that sent the request.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub id: String,
    pub kind: String,
    pub credential: String,
    pub auth: String,
    /// More members of `actor` that a credential type records (OIDC: `issuer`, `subject`,
    /// `jti`, `on_behalf_of`; mTLS: the certificate's serial and fingerprint). Names must not
    /// repeat the four above.
    pub extra: Vec<(String, Value)>,
}

/// The identity behind a verified key, prepared once per registry change.
#[derive(Debug)]
pub struct Principal {
    pub identity: String,
    pub role: Role,
    pub key_id: String,
    pub allowed_actions: Vec<String>,
    /// For the source role: what it may report.
    pub source: Option<crate::identity::SourceGrant>,
    /// What events this principal appends are attributed to.
    pub actor: Actor,
    pub(crate) last_seen: Arc<AtomicI64>,
    /// When the credential itself stops being valid, if it says so (a JWT's `exp`). Key expiry
    /// and revocation are looked up afresh by `registry::Registry::still_valid`.
    pub expires_ms: Option<i64>,
}

/// Why a credential was refused. The variants holding a principal are keys whose secret
/// matched: the presenter holds a real key that may no longer be used.
#[derive(Debug, Clone)]
pub enum Denial {
    Malformed(Malformed),
    /// No usable key: unknown id, or the secret did not match. `key_id` only if the token
    /// carried one in the current format (never anything derived from a secret).
    Invalid {
        key_id: Option<String>,
    },
    KeyRevoked(Arc<Principal>),
    KeyExpired(Arc<Principal>),
    IdentityDisabled(Arc<Principal>),
    IdentityRevoked(Arc<Principal>),
    /// A federated credential (OIDC token, client certificate) that was refused before it
    /// named a usable identity; `reason` is a stable slug (`oidc`, `mtls`).
    Federated {
        reason: &'static str,
        message: String,
    },
}

impl Denial {
    /// A stable slug for the denied record and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::Malformed(_) => "malformed-credential",
            Denial::Invalid { .. } => "invalid-credential",
            Denial::KeyRevoked(_) => "key-revoked",
            Denial::KeyExpired(_) => "key-expired",
            Denial::IdentityDisabled(_) => "identity-disabled",
            Denial::IdentityRevoked(_) => "identity-revoked",
            Denial::Federated { reason, .. } => reason,
        }
    }

    pub fn principal(&self) -> Option<&Arc<Principal>> {
        match self {
            Denial::KeyRevoked(p)
            | Denial::KeyExpired(p)
            | Denial::IdentityDisabled(p)
            | Denial::IdentityRevoked(p) => Some(p),
            _ => None,
        }
    }

    /// What to tell the client: what happened and what to do.
    pub fn message(&self) -> String {
        match self {
            Denial::Malformed(m) => format!("the credential is not valid: {m}"),
            Denial::Invalid { .. } => "the credential is not valid".into(),
            Denial::KeyRevoked(p) if p.actor.auth == "http_signature" => {
                format!("public key {} was revoked; ask an admin to register a new one", p.key_id)
            }
            Denial::KeyRevoked(p) => {
                format!("API key {} was revoked; ask an admin for a new key (graven key create)", p.key_id)
            }
            Denial::KeyExpired(p) => format!(
                "API key {} has expired (or was rotated and its overlap window ended); use the current key",
                p.key_id
            ),
            Denial::IdentityDisabled(p) => {
                format!(
                    "identity {} is disabled; an admin can enable it (graven identity enable)",
                    p.identity
                )
            }
            Denial::IdentityRevoked(p) => format!("identity {} is revoked, which is final", p.identity),
            Denial::Federated { message, .. } => message.clone(),
        }
    }
}
