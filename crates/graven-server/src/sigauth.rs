//! RFC 9421 HTTP Message Signatures as a credential (Ed25519, `keyid` = a registered public
//! key's id), checked by the guard in [`crate::http`] when a request carries `Signature-Input`.
//!
//! A request is accepted only if, in this order:
//! 1. `Signature-Input` and `Signature` parse (else 400) and the first signature has a
//!    matching `Signature` member, a `keyid`, a `created` time, and `alg` absent or `ed25519`;
//! 2. it covers `@method`, `@path`, `content-digest`, and `@query` when the target has a
//!    query (else 401);
//! 3. `keyid` names a usable public key of an active identity (else 401);
//! 4. `created` is within the window of now (default ±60 s) and `expires`, if given, is
//!    still ahead (else 401);
//! 5. the Ed25519 signature verifies over the RFC 9421 §2.5 signature base (else 401), which
//!    covers the `Content-Digest` header: no byte of the body is read before this;
//! 6. its `nonce` (or, without one, the signature itself) was not seen within the window
//!    (else 401);
//! 7. `Content-Digest` has a `sha-256` equal to the SHA-256 of the body received (else 401).
//!
//! **Replays.** A replay is the same signed request sent again, so one key per request is
//! enough: the nonce when there is one (a replay carries the same nonce, inside the signed
//! parameters), else the signature. Keys are 128-bit digests kept in memory until their
//! `created + window` has passed, at most [`REPLAY_CAPACITY`] (about 40 bytes each, so at most
//! about 85 MB); when that many are live the server answers 503 rather than forget one early.
//! With the default ±60 s window a key lives at most about 121 s, so one node sustains about
//! 17,000 signed requests per second; a longer window lowers that in proportion (the first
//! version kept two 32-byte keys per request for ±300 s with room for 262,144, so it refused
//! signed requests beyond about 440 per second: `bench/auth-cost.sh` ran into it). The cache is **per node**: behind a load balancer, a
//! signature replayed to another node within the window is not caught by this cache (the
//! request's own content, e.g. a `request_id`, still shows the duplicate in the log). Because
//! Ed25519 is deterministic, two identical requests signed in the same second have the same
//! signature: send a `nonce` to make them distinct.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use graven_core::httpsig::{self, RequestParts};
use sha2::{Digest, Sha256};

use crate::audit::{self, Refusal};
use crate::http::{AppState, finish, now_ms, read_body};
use crate::problem::Problem;
use crate::registry::Principal;
use graven_core::replay::{ReplayCache, Seen};

/// Live nonces or signatures remembered for replay detection.
pub const REPLAY_CAPACITY: usize = 2 << 20;
/// The default time window, each side of now.
pub const DEFAULT_WINDOW_SECONDS: u64 = 60;

/// Request-signature settings and the replay cache.
#[derive(Debug)]
pub struct SigAuth {
    window: i64,
    replay: Mutex<ReplayCache>,
}

impl SigAuth {
    pub fn new(window_seconds: u64) -> Self {
        SigAuth {
            window: i64::try_from(window_seconds).unwrap_or(i64::MAX / 2),
            replay: Mutex::new(ReplayCache::new(REPLAY_CAPACITY)),
        }
    }
}

impl Default for SigAuth {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW_SECONDS)
    }
}

/// Whether the request presents an RFC 9421 signature (and so is checked here).
pub fn is_signed(headers: &HeaderMap) -> bool {
    headers.contains_key("signature-input") || headers.contains_key("signature")
}

/// A refusal: the status, the denied-record reason, what to tell the client, and the key id
/// and identity the request named. A refused signed request is never attributed to that
/// identity: either the signature was not verified, or it was and the request is still not
/// the identity's act (a replay, a body that is not the one signed), so the denied record's
/// actor is the server and what the request named goes under `claimed`.
struct Refused {
    status: StatusCode,
    reason: &'static str,
    detail: String,
    claimed_identity: Option<String>,
    claimed_key: Option<String>,
}

fn refuse(status: StatusCode, reason: &'static str, detail: impl Into<String>) -> Refused {
    Refused { status, reason, detail: detail.into(), claimed_identity: None, claimed_key: None }
}

/// Every field line of `name`, combined with ", " (RFC 9110 §5.3). `None` if absent.
fn combined(headers: &HeaderMap, name: &str) -> Result<Option<String>, Refused> {
    let mut out: Option<String> = None;
    for v in headers.get_all(name) {
        let v = v.to_str().map_err(|_| {
            refuse(StatusCode::BAD_REQUEST, "malformed-signature", format!("{name} is not visible ASCII"))
        })?;
        match &mut out {
            Some(o) => {
                o.push_str(", ");
                o.push_str(v);
            }
            None => out = Some(v.to_owned()),
        }
        if out.as_ref().is_some_and(|o| o.len() > httpsig::MAX_HEADER_LEN) {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "malformed-signature",
                format!("{name} is longer than {} bytes", httpsig::MAX_HEADER_LEN),
            ));
        }
    }
    Ok(out)
}

/// Checks the request's signature. On success returns the principal and the request with its
/// body buffered (it was read to check `Content-Digest`). On failure the answer is ready (and a
/// denied record appended when the request named a credential).
pub async fn authenticate(
    st: &AppState,
    req: Request,
    route: &'static str,
    peer: Option<IpAddr>,
) -> Result<(Arc<Principal>, Request), Response> {
    match check(st, req).await {
        Ok(ok) => Ok(ok),
        Err(r) => {
            let refusal = Refusal {
                who: None,
                claimed_key: r.claimed_key.as_deref(),
                claimed_identity: r.claimed_identity.as_deref(),
                reason: r.reason,
                route,
                attempted_action: None,
                peer,
            };
            audit::denied(st, refusal).await;
            let p = if r.status == StatusCode::SERVICE_UNAVAILABLE {
                let mut p = Problem::new(r.status, "replay-cache-full", "Too many signed requests", r.detail);
                p.retry_after = Some(1);
                p
            } else if r.status == StatusCode::BAD_REQUEST {
                Problem::bad_request("malformed-signature", r.detail)
            } else {
                Problem::new(r.status, "unauthorized", "Authentication required", r.detail)
            };
            Err(finish(st, route, Err(p)))
        }
    }
}

async fn check(st: &AppState, req: Request) -> Result<(Arc<Principal>, Request), Refused> {
    let bad = |d: String| refuse(StatusCode::BAD_REQUEST, "malformed-signature", d);
    let unauth = |reason, d: String| refuse(StatusCode::UNAUTHORIZED, reason, d);
    let headers = req.headers();
    let input = combined(headers, "signature-input")?
        .ok_or_else(|| bad("a Signature header needs its Signature-Input (RFC 9421)".into()))?;
    let sigs = combined(headers, "signature")?
        .ok_or_else(|| bad("a Signature-Input header needs its Signature (RFC 9421)".into()))?;
    let params = httpsig::parse_signature_input(&input).map_err(|e| bad(format!("Signature-Input: {e}")))?;
    let sigs = httpsig::parse_signatures(&sigs).map_err(|e| bad(format!("Signature: {e}")))?;
    // The first signature is the one checked; others (e.g. a proxy's) are ignored.
    let p = params.first().ok_or_else(|| bad("Signature-Input names no signature".into()))?;
    let sig = sigs
        .iter()
        .find(|(l, _)| *l == p.label)
        .map(|(_, s)| s)
        .ok_or_else(|| bad(format!("Signature has no member {:?}", p.label)))?;
    let sig = ed25519_dalek::Signature::from_slice(sig)
        .map_err(|_| bad("an ed25519 signature is 64 bytes".into()))?;
    if p.alg.as_deref().is_some_and(|a| a != "ed25519") {
        return Err(bad(format!("alg {:?}: only ed25519 is accepted", p.alg.as_deref().unwrap_or(""))));
    }
    let keyid = p.keyid.as_deref().ok_or_else(|| bad("the signature has no keyid".into()))?;
    let created = p.created.ok_or_else(|| bad("the signature has no created time".into()))?;
    let query = req.uri().query().filter(|q| !q.is_empty());
    let mut needed = vec!["@method", "@path", "content-digest"];
    if query.is_some() {
        needed.push("@query");
    }
    if let Some(c) = needed.iter().find(|c| !p.covers(c)) {
        return Err(unauth(
            "signature-coverage",
            format!("the signature must cover {}; it does not cover {c}", needed.join(", ")),
        ));
    }
    let now = now_ms();
    let (principal, key) = st.registry.public_key(keyid, now).map_err(|d| Refused {
        status: StatusCode::UNAUTHORIZED,
        reason: d.reason(),
        detail: match &d {
            crate::registry::Denial::Invalid { .. } => {
                format!("keyid {keyid:?} is not a registered public key (graven key add-public)")
            }
            d => d.message(),
        },
        claimed_identity: d.principal().map(|p| p.identity.clone()),
        claimed_key: match &d {
            crate::registry::Denial::Invalid { key_id } => key_id.clone(),
            d => d.principal().map(|p| p.key_id.clone()),
        },
    })?;
    let found = |reason, detail: String| Refused {
        status: StatusCode::UNAUTHORIZED,
        reason,
        detail,
        claimed_identity: Some(principal.identity.clone()),
        claimed_key: Some(principal.key_id.clone()),
    };
    let now_s = now.div_euclid(1000);
    let window = st.http_sig.window;
    if (now_s - created).abs() > window {
        return Err(found(
            "signature-expired",
            format!(
                "the signature was created at {created}, more than {window} s from the server's time {now_s}; sign again with a correct clock"
            ),
        ));
    }
    if p.expires.is_some_and(|e| e <= now_s) {
        return Err(found("signature-expired", "the signature has expired (its expires parameter)".into()));
    }
    let claimed_digest = match combined(headers, "content-digest")? {
        Some(h) => httpsig::parse_content_digest(&h).map_err(|e| bad(format!("Content-Digest: {e}")))?,
        None => None,
    }
    .ok_or_else(|| bad("send Content-Digest: sha-256=:<base64 of the body's SHA-256>: (RFC 9530)".into()))?;
    // The signature covers the Content-Digest header, not the body itself, so it is checked
    // before a single byte of the body is read: an unauthenticated client cannot make the
    // server buffer bodies by naming somebody else's key id.
    let (parts, body) = req.into_parts();
    let mut field_lines: Vec<(&str, &str)> = Vec::new();
    for (n, v) in parts.headers.iter() {
        match v.to_str() {
            Ok(v) => field_lines.push((n.as_str(), v)),
            // A covered header must be in the signature base whole; refuse rather than drop it.
            Err(_) if p.covers(n.as_str()) => {
                return Err(bad(format!("header {n} is covered by the signature but is not visible ASCII")));
            }
            Err(_) => {}
        }
    }
    let rp = RequestParts {
        method: parts.method.as_str(),
        scheme: None,
        authority: parts.headers.get("host").and_then(|h| h.to_str().ok()),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: field_lines,
    };
    let base = httpsig::signature_base(p, &rp)
        .map_err(|e| found("bad-signature", format!("signature base: {e}")))?;
    if key.verify_strict(base.as_bytes(), &sig).is_err() {
        return Err(found(
            "bad-signature",
            format!("the signature does not verify with public key {keyid} over this request"),
        ));
    }
    let key = match &p.nonce {
        Some(n) => tagged(b"nonce", format!("{keyid}\n{n}").as_bytes()),
        None => tagged(b"sig", &sig.to_bytes()),
    };
    let seen = {
        let mut cache = st.http_sig.replay.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key, created.saturating_add(window).saturating_add(1), now_s)
    };
    match seen {
        Seen::New => {}
        Seen::Replay => {
            return Err(found(
                "signature-replayed",
                "this signature (or its nonce) was already used; sign each request afresh".into(),
            ));
        }
        Seen::Full => {
            return Err(Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: "replay-cache-full",
                detail: "too many signed requests in the time window; retry shortly".into(),
                claimed_identity: Some(principal.identity.clone()),
                claimed_key: Some(principal.key_id.clone()),
            });
        }
    }
    let bytes = read_body(st, body).await.map_err(|p| refuse(p.status, "body-unreadable", p.detail))?;
    if <[u8; 32]>::from(Sha256::digest(&bytes)) != claimed_digest {
        return Err(found(
            "digest-mismatch",
            "the body does not match its Content-Digest; nothing was appended".into(),
        ));
    }
    Ok((principal, Request::from_parts(parts, Body::from(bytes))))
}

/// The first 128 bits of SHA-256(tag || 0 || data): collisions between honest requests are
/// out of reach, and an attacker gains nothing from one (a collision only refuses a request).
fn tagged(tag: &[u8], data: &[u8]) -> u128 {
    let mut h = Sha256::new();
    h.update(tag);
    h.update([0]);
    h.update(data);
    let d = h.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&d[..16]);
    u128::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_cache_remembers_for_the_window_and_is_bounded() {
        let mut c = ReplayCache::new(3);
        assert_eq!(c.insert(1, 100, 0), Seen::New);
        assert_eq!(c.insert(1, 100, 50), Seen::Replay);
        assert_eq!(c.insert(2, 200, 50), Seen::New);
        assert_eq!(c.insert(3, 200, 50), Seen::New);
        assert_eq!(c.insert(4, 200, 50), Seen::Full, "full of live entries: refuse, never forget early");
        // At 101 the first entry has expired and is forgotten.
        assert_eq!(c.insert(4, 300, 101), Seen::New);
        assert_eq!(c.len(), 3);
        assert_eq!(c.insert(1, 300, 101), Seen::Full);
        assert_eq!(c.insert(2, 300, 150), Seen::Replay, "still live until 200");
        assert_eq!(c.insert(1, 400, 201), Seen::New);
        assert_eq!(c.len(), 2);
    }
}
