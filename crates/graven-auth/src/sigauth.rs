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
//! 6. its `nonce` (or, without one, the signature itself) was not seen within the window by
//!    this node (else 401), nor, on a shared log with shared claims, by any node: it is then
//!    claimed for every node (`replay_claims`; claimed elsewhere: 401; the claims out of
//!    reach: 503, never accepted unchecked);
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
//! signed requests beyond about 440 per second: `bench/auth-cost.sh` ran into it).
//!
//! The cache is **per node**. On a shared log, where another node would not catch a replay
//! within the window, [`SigAuth::shared`] puts claims shared by every node behind it
//! (`crate::replay_claims`): a request new to this node is accepted only once this node has
//! claimed its key for the whole log, with one conditional create in the object store, made
//! after the signature verified (so nobody without a registered key can make the server write
//! a claim). The node's cache stays in front, so a replay to the same node costs no request.
//! If the claim cannot be made the request is refused ([`RefusalKind::Unavailable`], 503) and
//! the node forgets its own entry, so the client's retry is checked afresh; a claim that is
//! made is kept, like the node's own entry, even if the body then fails its digest (the
//! signed headers were used). Without shared claims (a single node, or a shared log that does
//! not set `replay_claims`), a signature replayed to another node within the window is not
//! caught (the request's own content, e.g. a `request_id`, still shows the duplicate in the
//! log). Because
//! Ed25519 is deterministic, two identical requests signed in the same second have the same
//! signature: send a `nonce` to make them distinct.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use graven_core::replay::{ReplayCache, Seen};
use sha2::{Digest, Sha256};

use crate::httpsig::{self, RequestParts};
use crate::principal::{Denial, Principal};
use crate::registry::Registry;
use crate::replay_claims::{Claim, ClaimError, ReplayClaims};

/// Live nonces or signatures remembered for replay detection.
pub const REPLAY_CAPACITY: usize = 2 << 20;
/// The default time window, each side of now.
pub const DEFAULT_WINDOW_SECONDS: u64 = 60;
/// The header fields whose presence makes a request a signed one (checked here).
pub const SIGNATURE_FIELDS: [&str; 2] = ["signature-input", "signature"];

/// Request-signature settings, the node's replay cache, and a shared log's shared one.
#[derive(Debug)]
pub struct SigAuth {
    window: i64,
    replay: Mutex<ReplayCache>,
    /// A shared log's claims, made by every node (None: this node's cache alone).
    shared: Option<Arc<dyn ReplayClaims>>,
    counts: Arc<ClaimCounts>,
}

/// How the shared claims of the requests this node checked went (for the metrics).
#[derive(Debug, Default)]
pub struct ClaimCounts {
    /// Claimed by this node: the request was new everywhere.
    pub new: AtomicU64,
    /// Already claimed by another node (or earlier on this one): refused as a replay.
    pub taken: AtomicU64,
    /// The shared cache could not be reached: refused with 503, nothing claimed for certain.
    pub unavailable: AtomicU64,
}

impl SigAuth {
    /// This node's replay cache alone: a single node, or a log on a local directory.
    pub fn new(window_seconds: u64) -> Self {
        SigAuth {
            window: i64::try_from(window_seconds).unwrap_or(i64::MAX / 2),
            replay: Mutex::new(ReplayCache::new(REPLAY_CAPACITY)),
            shared: None,
            counts: Arc::default(),
        }
    }

    /// This node's cache in front of claims shared by every node of a log: a request new to
    /// this node is accepted only once it has claimed its key in `claims`.
    pub fn shared(window_seconds: u64, claims: Arc<dyn ReplayClaims>) -> Self {
        SigAuth { shared: Some(claims), ..Self::new(window_seconds) }
    }

    /// Where the shared claims are kept, if they are.
    pub fn shared_location(&self) -> Option<String> {
        self.shared.as_ref().map(|c| c.location())
    }

    /// The shared claims made so far, by outcome (all zero without shared claims).
    pub fn claim_counts(&self) -> Arc<ClaimCounts> {
        self.counts.clone()
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
    /// The shared replay cache could not be reached, so whether the request is a replay is
    /// unknown: refused, never accepted unchecked (503, retry).
    Unavailable,
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
    let until = created.saturating_add(window).saturating_add(1);
    let seen = {
        let mut cache = sig.replay.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(once, until, now_s)
    };
    let replayed = |elsewhere: &str| {
        found(
            "signature-replayed",
            format!("this signature (or its nonce) was already used{elsewhere}; sign each request afresh"),
        )
    };
    match seen {
        Seen::New => {}
        Seen::Replay => return Err(replayed("")),
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
    // New to this node; on a shared log, new to the log only once claimed for every node.
    if let Some(claims) = &sig.shared {
        match claim(claims.clone(), once, until).await {
            Ok(Claim::New) => {
                sig.counts.new.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Claim::Taken) => {
                sig.counts.taken.fetch_add(1, Ordering::Relaxed);
                return Err(replayed(" (on another node of this log)"));
            }
            Err(e) => {
                sig.counts.unavailable.fetch_add(1, Ordering::Relaxed);
                // Not known to be claimed: forget it here too, so the client's retry, once the
                // store answers again, is checked afresh rather than refused as a replay.
                sig.replay.lock().unwrap_or_else(|e| e.into_inner()).remove(once);
                return Err(Refusal {
                    kind: RefusalKind::Unavailable,
                    reason: "replay-check-unavailable",
                    detail: format!("{e}; nothing was accepted, retry shortly"),
                    claimed_identity: Some(principal.identity.clone()),
                    claimed_key: Some(principal.key_id.clone()),
                });
            }
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

/// Claims `key` in the shared cache off the async runtime (the claim blocks on a network
/// request); called outside a runtime, it blocks the caller.
async fn claim(claims: Arc<dyn ReplayClaims>, key: u128, until: i64) -> Result<Claim, ClaimError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return claims.claim(key, until);
    }
    let location = claims.location();
    tokio::task::spawn_blocking(move || claims.claim(key, until)).await.unwrap_or_else(|e| {
        Err(ClaimError::Unavailable { location, cause: format!("the claim's task failed: {e}") })
    })
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
    use crate::replay_claims::StoreClaims;
    use ed25519_dalek::SigningKey;
    use graven_tlog::MemStore;

    /// A registry holding one writer with `k`'s public key; its key id.
    fn registry(dir: &std::path::Path, k: &SigningKey) -> (Registry, String) {
        use base64::Engine as _;
        let kid = graven_core::event_sig::key_id(k.verifying_key().as_bytes());
        let record: crate::identity::IdentityRecord = serde_json::from_value(serde_json::json!({
            "id": "svc:signer", "kind": "service_account", "owner": "t", "role": "writer",
            "status": "active", "created_ms": 0,
            "public_keys": [{"key_id": kid, "alg": "ed25519", "created_ms": 0,
                "public_key": base64::engine::general_purpose::STANDARD.encode(k.verifying_key().as_bytes())}],
        }))
        .unwrap();
        let reg = Registry::open(dir).unwrap();
        reg.install([(record.id.clone(), record)].into_iter().collect()).unwrap();
        (reg, kid)
    }

    /// Sends one signed request (its fields) to a node: Ok(()) or the refusal's reason.
    async fn send(
        node: &SigAuth,
        reg: &Registry,
        h: &httpsig::SignedHeaders,
        now_s: i64,
    ) -> Result<(), &'static str> {
        let fields: Vec<(&str, &[u8])> = vec![
            ("content-digest", h.content_digest.as_bytes()),
            ("signature-input", h.signature_input.as_bytes()),
            ("signature", h.signature.as_bytes()),
        ];
        let req = SignedRequest { method: "POST", path: "/v1/events", query: None, fields: &fields };
        check(node, reg, req, now_s * 1000, || async { Ok::<_, (u16, String)>(b"{}".to_vec()) })
            .await
            .map(|_| ())
            .map_err(|r| r.reason)
    }

    /// Two nodes sharing claims: a request accepted by one is refused by the other; with the
    /// store unreachable a new request is refused (503), and accepted once it is back.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_request_accepted_by_one_node_is_refused_by_the_other() {
        let d = tempfile::tempdir().unwrap();
        let k = SigningKey::from_bytes(&[5u8; 32]);
        let (reg, kid) = registry(d.path(), &k);
        let store = Arc::new(MemStore::new());
        let a = SigAuth::shared(60, Arc::new(StoreClaims::with_node_id(store.clone(), [1; 16])));
        let b = SigAuth::shared(60, Arc::new(StoreClaims::with_node_id(store.clone(), [2; 16])));
        let alone = SigAuth::new(60);
        let now = 1_800_000_000;
        let target = httpsig::RequestParts { method: "POST", path: "/v1/events", ..Default::default() };
        let h = httpsig::sign_request(&k, &kid, &target, b"{}", now, Some("n1"));
        assert_eq!(send(&a, &reg, &h, now).await, Ok(()));
        assert_eq!(send(&a, &reg, &h, now + 1).await, Err("signature-replayed"), "this node's cache");
        assert_eq!(send(&b, &reg, &h, now + 1).await, Err("signature-replayed"), "the shared claim");
        assert_eq!(
            send(&alone, &reg, &h, now + 1).await,
            Ok(()),
            "a node without shared claims: the old hole"
        );
        assert_eq!(a.claim_counts().new.load(Ordering::Relaxed), 1);
        assert_eq!(b.claim_counts().taken.load(Ordering::Relaxed), 1);

        // The store unreachable: refused, not accepted unchecked, and not remembered as used.
        let h2 = httpsig::sign_request(&k, &kid, &target, b"{}", now, Some("n2"));
        store.fail_after(0, false);
        assert_eq!(send(&b, &reg, &h2, now).await, Err("replay-check-unavailable"));
        assert_eq!(b.claim_counts().unavailable.load(Ordering::Relaxed), 1);
        store.heal();
        assert_eq!(send(&b, &reg, &h2, now).await, Ok(()), "the retry is checked afresh");
        assert_eq!(send(&a, &reg, &h2, now).await, Err("signature-replayed"));
        // A bad signature never reaches the shared claims.
        let mut forged = httpsig::sign_request(&k, &kid, &target, b"{}", now, Some("n3"));
        forged.signature = h.signature.clone();
        assert_eq!(send(&a, &reg, &forged, now).await, Err("bad-signature"));
        assert_eq!(
            a.claim_counts().new.load(Ordering::Relaxed) + b.claim_counts().new.load(Ordering::Relaxed),
            2,
            "two requests claimed, no more"
        );
    }

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
