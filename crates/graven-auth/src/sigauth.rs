//! RFC 9421 HTTP Message Signatures as a credential (Ed25519, `keyid` = a registered public
//! key's id), checked for the HTTP layer's guard when a request carries `Signature-Input`.
//!
//! Framework-free: [`check`] takes the request's method, path, query and header fields, and a
//! way to read its body; it answers the principal and the body, or a [`Refusal`] that the HTTP
//! layer turns into a problem document and a `denied` record.
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

use std::future::Future;
use std::sync::{Arc, Mutex};

use graven_core::replay::{ReplayCache, Seen};
use sha2::{Digest, Sha256};

use crate::httpsig::{self, RequestParts};
use crate::principal::{Denial, Principal};
use crate::registry::Registry;

/// Live nonces or signatures remembered for replay detection.
pub const REPLAY_CAPACITY: usize = 2 << 20;
/// The default time window, each side of now.
pub const DEFAULT_WINDOW_SECONDS: u64 = 60;
/// The header fields whose presence makes a request a signed one (checked here).
pub const SIGNATURE_FIELDS: [&str; 2] = ["signature-input", "signature"];

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

/// Whether a request with these header names presents an RFC 9421 signature (and so is
/// checked here).
pub fn is_signed<'a>(mut names: impl Iterator<Item = &'a str>) -> bool {
    names.any(|n| SIGNATURE_FIELDS.iter().any(|f| n.eq_ignore_ascii_case(f)))
}

/// The parts of a request the check reads. `fields` are the header field lines in the order
/// received, names lowercase (as HTTP/1 parsers give them), values as raw bytes.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub fields: &'a [(&'a str, &'a [u8])],
}

/// What kind of answer a refusal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalKind {
    /// The signature headers do not parse, or miss a required part (400).
    Malformed,
    /// The signature does not authenticate the request (401).
    Unauthorized,
    /// Too many signed requests in the window: the replay cache is full (503, retry).
    Busy,
    /// The body could not be read; `status` is the HTTP status its reader gave.
    Body { status: u16 },
}

/// A refusal: its kind, the denied-record reason, what to tell the client, and the key id and
/// identity the request named. A refused signed request is never attributed to that
/// identity: either the signature was not verified, or it was and the request is still not
/// the identity's act (a replay, a body that is not the one signed), so the denied record's
/// actor is the server and what the request named goes under `claimed`.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub reason: &'static str,
    pub detail: String,
    pub claimed_identity: Option<String>,
    pub claimed_key: Option<String>,
}

fn refuse(kind: RefusalKind, reason: &'static str, detail: impl Into<String>) -> Refusal {
    Refusal { kind, reason, detail: detail.into(), claimed_identity: None, claimed_key: None }
}

/// Visible ASCII and tab: what an HTTP field value may hold to be read as text.
fn visible(v: &[u8]) -> Option<&str> {
    if v.iter().all(|&b| b == b'\t' || (32..127).contains(&b)) { std::str::from_utf8(v).ok() } else { None }
}

/// Every field line of `name`, combined with ", " (RFC 9110 §5.3). `None` if absent.
fn combined(fields: &[(&str, &[u8])], name: &str) -> Result<Option<String>, Refusal> {
    let mut out: Option<String> = None;
    for (_, v) in fields.iter().filter(|(n, _)| *n == name) {
        let v = visible(v).ok_or_else(|| {
            refuse(RefusalKind::Malformed, "malformed-signature", format!("{name} is not visible ASCII"))
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
                RefusalKind::Malformed,
                "malformed-signature",
                format!("{name} is longer than {} bytes", httpsig::MAX_HEADER_LEN),
            ));
        }
    }
    Ok(out)
}

/// Checks a signed request at `now_ms`. On success returns the principal and the body (read
/// with `read_body`, only once the signature has verified, to check `Content-Digest`); the
/// body reader answers the HTTP status and message of a body it could not read.
pub async fn check<B, F, Fut>(
    sig: &SigAuth,
    registry: &Registry,
    req: SignedRequest<'_>,
    now_ms: i64,
    read_body: F,
) -> Result<(Arc<Principal>, B), Refusal>
where
    B: AsRef<[u8]>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<B, (u16, String)>>,
{
    let bad = |d: String| refuse(RefusalKind::Malformed, "malformed-signature", d);
    let unauth = |reason, d: String| refuse(RefusalKind::Unauthorized, reason, d);
    let fields = req.fields;
    let input = combined(fields, "signature-input")?
        .ok_or_else(|| bad("a Signature header needs its Signature-Input (RFC 9421)".into()))?;
    let sigs = combined(fields, "signature")?
        .ok_or_else(|| bad("a Signature-Input header needs its Signature (RFC 9421)".into()))?;
    let params = httpsig::parse_signature_input(&input).map_err(|e| bad(format!("Signature-Input: {e}")))?;
    let sigs = httpsig::parse_signatures(&sigs).map_err(|e| bad(format!("Signature: {e}")))?;
    // The first signature is the one checked; others (e.g. a proxy's) are ignored.
    let p = params.first().ok_or_else(|| bad("Signature-Input names no signature".into()))?;
    let signature = sigs
        .iter()
        .find(|(l, _)| *l == p.label)
        .map(|(_, s)| s)
        .ok_or_else(|| bad(format!("Signature has no member {:?}", p.label)))?;
    let signature = ed25519_dalek::Signature::from_slice(signature)
        .map_err(|_| bad("an ed25519 signature is 64 bytes".into()))?;
    if p.alg.as_deref().is_some_and(|a| a != "ed25519") {
        return Err(bad(format!("alg {:?}: only ed25519 is accepted", p.alg.as_deref().unwrap_or(""))));
    }
    let keyid = p.keyid.as_deref().ok_or_else(|| bad("the signature has no keyid".into()))?;
    let created = p.created.ok_or_else(|| bad("the signature has no created time".into()))?;
    let query = req.query.filter(|q| !q.is_empty());
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
    let now = now_ms;
    let (principal, key) = registry.public_key(keyid, now).map_err(|d| Refusal {
        kind: RefusalKind::Unauthorized,
        reason: d.reason(),
        detail: match &d {
            Denial::Invalid { .. } => {
                format!("keyid {keyid:?} is not a registered public key (graven key add-public)")
            }
            d => d.message(),
        },
        claimed_identity: d.principal().map(|p| p.identity.clone()),
        claimed_key: match &d {
            Denial::Invalid { key_id } => key_id.clone(),
            d => d.principal().map(|p| p.key_id.clone()),
        },
    })?;
    let found = |reason, detail: String| Refusal {
        kind: RefusalKind::Unauthorized,
        reason,
        detail,
        claimed_identity: Some(principal.identity.clone()),
        claimed_key: Some(principal.key_id.clone()),
    };
    let now_s = now.div_euclid(1000);
    let window = sig.window;
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
    let claimed_digest = match combined(fields, "content-digest")? {
        Some(h) => httpsig::parse_content_digest(&h).map_err(|e| bad(format!("Content-Digest: {e}")))?,
        None => None,
    }
    .ok_or_else(|| bad("send Content-Digest: sha-256=:<base64 of the body's SHA-256>: (RFC 9530)".into()))?;
    // The signature covers the Content-Digest header, not the body itself, so it is checked
    // before a single byte of the body is read: an unauthenticated client cannot make the
    // server buffer bodies by naming somebody else's key id.
    let mut field_lines: Vec<(&str, &str)> = Vec::new();
    for (n, v) in fields {
        match visible(v) {
            Some(v) => field_lines.push((n, v)),
            // A covered header must be in the signature base whole; refuse rather than drop it.
            None if p.covers(n) => {
                return Err(bad(format!("header {n} is covered by the signature but is not visible ASCII")));
            }
            None => {}
        }
    }
    let rp = RequestParts {
        method: req.method,
        scheme: None,
        authority: fields.iter().find(|(n, _)| *n == "host").and_then(|(_, v)| visible(v)),
        path: req.path,
        query: req.query,
        headers: field_lines,
    };
    let base = httpsig::signature_base(p, &rp)
        .map_err(|e| found("bad-signature", format!("signature base: {e}")))?;
    if key.verify_strict(base.as_bytes(), &signature).is_err() {
        return Err(found(
            "bad-signature",
            format!("the signature does not verify with public key {keyid} over this request"),
        ));
    }
    let once = match &p.nonce {
        Some(n) => tagged(b"nonce", format!("{keyid}\n{n}").as_bytes()),
        None => tagged(b"sig", &signature.to_bytes()),
    };
    let seen = {
        let mut cache = sig.replay.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(once, created.saturating_add(window).saturating_add(1), now_s)
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
            return Err(Refusal {
                kind: RefusalKind::Busy,
                reason: "replay-cache-full",
                detail: "too many signed requests in the time window; retry shortly".into(),
                claimed_identity: Some(principal.identity.clone()),
                claimed_key: Some(principal.key_id.clone()),
            });
        }
    }
    let bytes = read_body()
        .await
        .map_err(|(status, detail)| refuse(RefusalKind::Body { status }, "body-unreadable", detail))?;
    if <[u8; 32]>::from(Sha256::digest(bytes.as_ref())) != claimed_digest {
        return Err(found(
            "digest-mismatch",
            "the body does not match its Content-Digest; nothing was appended".into(),
        ));
    }
    Ok((principal, bytes))
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
