//! Keys, signatures and times shared by the topics.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use graven_auth::httpsig::{RequestParts, SignedHeaders, sign_request};
use graven_server::testing::{Harness, Request};

pub fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// The key id of an Ed25519 key (client signatures and RFC 9421 `keyid`).
pub fn kid(k: &SigningKey) -> String {
    graven_core::event_sig::key_id(k.verifying_key().as_bytes())
}

/// Registers `k`'s public key for identity `id`, as the admin; returns its key id.
pub fn add_public(h: &Harness, id: &str, k: &SigningKey) -> String {
    h.add_public(id, k.verifying_key().as_bytes())
}

/// RFC 9421 headers for `POST /v1/events` signed by `k`, naming `keyid`.
pub fn http_sign(
    k: &SigningKey,
    keyid: &str,
    body: &[u8],
    created: i64,
    nonce: Option<&str>,
) -> SignedHeaders {
    let t = RequestParts { method: "POST", path: "/v1/events", ..Default::default() };
    sign_request(k, keyid, &t, body, created, nonce)
}

/// `POST /v1/events` with RFC 9421 headers (no Authorization).
pub fn signed_post(h: &Harness, digest: &str, input: &str, signature: &str, body: &str) -> Request {
    h.post("/v1/events")
        .json(body)
        .header("content-digest", digest)
        .header("signature-input", input)
        .header("signature", signature)
}

/// `POST /v1/events` signed with `headers`, over `body`.
pub fn signed(h: &Harness, headers: &SignedHeaders, body: &str) -> Request {
    signed_post(h, &headers.content_digest, &headers.signature_input, &headers.signature, body)
}

/// A client-signed event (version 2) with one-time id `id`, signed at `signed_at`.
pub fn client_sign_v2(k: &SigningKey, event: &str, id: &str, signed_at: i64) -> String {
    String::from_utf8(graven_core::event_sig::sign_event_v2(k, event.as_bytes(), id, signed_at).unwrap())
        .unwrap()
}

/// A client-signed event as a client makes one: a fresh id, signed now.
pub fn client_sign(k: &SigningKey, event: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = format!("t-{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    client_sign_v2(k, event, &id, now_s())
}

/// `POST /v1/events` with an API key and a JSON body.
pub fn post_event(h: &Harness, key: &str, body: &str) -> Request {
    h.post("/v1/events").bearer(key).json(body)
}

/// `POST /v1/events` with an API key and an NDJSON batch.
pub fn post_batch(h: &Harness, key: &str, body: &str) -> Request {
    h.post("/v1/events").bearer(key).ndjson(body)
}
