//! Checking client-signed events before they are sequenced.
//!
//! Each `client_signature` must name a usable public key of the identity that is appending
//! (an identity submits only events it signed itself), and verify over the event as the client
//! sent it (`graven_core::event_sig`). A batch is checked with one Ed25519 batch verification;
//! if that fails, the events are checked one by one to name the first bad line. One bad
//! signature refuses the whole request: nothing is appended.
//!
//! Batch verification (ed25519-dalek `verify_batch`) checks the cofactored equation and
//! single verification here and in `graven verify` is strict (`verify_strict`), so a signer
//! that crafts a signature with small-order components could pass the batch yet fail strict
//! verification; `graven verify` then flags that event, which is the safe direction. Keys are
//! checked for small order when they are registered.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::principal::Principal;
use crate::registry::Registry;
use crate::shape::ClientSigned;

/// Why a client-signed event was refused: the denied-record reason (also the problem type)
/// and what to tell the client. The HTTP layer answers [`Refusal::is_request_error`] with 400
/// and every other refusal with 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub detail: String,
}

impl Refusal {
    /// Whether the request itself is malformed (a version 1 signature), rather than refused.
    pub fn is_request_error(&self) -> bool {
        self.reason == "client-signature-version"
    }
}

fn at(line: Option<usize>) -> String {
    line.map(|n| format!("line {n}: ")).unwrap_or_default()
}

fn forbidden(reason: &'static str, detail: String) -> Refusal {
    Refusal { reason, detail }
}

/// Checks every `(line, signed event)` of one request appended by `principal`: version 2
/// signatures only, `signed_at` within `window_s` seconds of now, keys and signatures as below.
/// Whether an id was used before is the sequencer's to check (the engine's `OnceKey`), so
/// that two requests racing with the same signed event cannot both pass.
pub fn check(
    registry: &Registry,
    principal: &Principal,
    items: &[(Option<usize>, &ClientSigned)],
    now_ms: i64,
    window_s: i64,
) -> Result<(), Refusal> {
    if items.is_empty() {
        return Ok(());
    }
    let now_s = now_ms.div_euclid(1000);
    for (line, c) in items {
        let Some(once) = &c.sig.once else {
            return Err(Refusal {
                reason: "client-signature-version",
                detail: format!(
                    "{}the event carries a version 1 client signature, which has no id or signing time and so could be replayed; sign it with version 2 (`graven sign-event`, or add \"id\" and \"signed_at\": docs/identities.md); nothing was appended",
                    at(*line)
                ),
            });
        };
        if (once.signed_at - now_s).abs() > window_s {
            return Err(forbidden(
                "client-signature-stale",
                format!(
                    "{}the event was signed at {} (Unix seconds), more than {window_s} s from the server's time {now_s}; a signed event is accepted only within that window, so it cannot be replayed later: sign it again now; nothing was appended",
                    at(*line),
                    once.signed_at
                ),
            ));
        }
    }
    let mut keys: Vec<VerifyingKey> = Vec::with_capacity(items.len());
    for (line, c) in items {
        let kid = &c.sig.key_id;
        let (owner, key) = registry.public_key(kid, now_ms).map_err(|d| {
            forbidden(
                "client-signature-key",
                format!(
                    "{}the event is signed with key {kid}, which cannot be used ({}); nothing was appended",
                    at(*line),
                    d.reason()
                ),
            )
        })?;
        if owner.identity != principal.identity {
            return Err(forbidden(
                "client-signature-key",
                format!(
                    "{}the event is signed with key {kid} of identity {}, but the request comes from {}; an identity submits only events it signed itself; nothing was appended",
                    at(*line),
                    owner.identity,
                    principal.identity
                ),
            ));
        }
        keys.push(key);
    }
    let sigs: Vec<Signature> = items.iter().map(|(_, c)| Signature::from_bytes(&c.sig.sig)).collect();
    let ok = if items.len() == 1 {
        keys[0].verify_strict(&items[0].1.message, &sigs[0]).is_ok()
    } else {
        let msgs: Vec<&[u8]> = items.iter().map(|(_, c)| c.message.as_slice()).collect();
        ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
    };
    if ok {
        return Ok(());
    }
    let bad = items
        .iter()
        .zip(&keys)
        .zip(&sigs)
        .find(|(((_, c), k), s)| k.verify_strict(&c.message, s).is_err())
        .map(|(((line, c), _), _)| (*line, c.sig.key_id.clone()));
    let (line, kid) = bad.unwrap_or((None, String::new()));
    Err(forbidden(
        "client-signature-invalid",
        format!(
            "{}the client signature (key {kid}) does not verify over this event: it was signed over different content, or with another key; nothing was appended",
            at(line)
        ),
    ))
}
