//! Client-signed events: an identity signs its own event with its Ed25519 key.
//!
//! **What is signed.** The client's event object (the JSON it sends to `POST /v1/events`)
//! without its `client_signature` member, in RFC 8785 canonical form, after a
//! domain-separation prefix:
//!
//! ```text
//! message = "graven-event-signature/v1\n" || JCS(event without "client_signature")
//! ```
//!
//! **What the leaf holds.** The server keeps the client's fields, moves the client's `actor`
//! to `claimed.actor`, adds `actor`, `logged_at` and `v`, and stores the signature as is:
//! `"client_signature": {"alg": "ed25519", "key_id": "<16 hex>", "sig": "<base64, 64 bytes>"}`.
//! [`signed_message_from_leaf`] undoes exactly that (drops `actor`, `logged_at`, `v` and
//! `client_signature`, turns `claimed.actor` back into `actor`), so a verifier recomputes the
//! signed bytes from the leaf alone. It needs the public key: see [`key_id`] and the
//! `graven.key.add_public` self-audit events (docs/identities.md).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::jcs::{self, Value};

/// Prepended to the canonical event before signing, so an event signature can never be taken
/// for a signature over anything else (a note, an HTTP request).
pub const DOMAIN: &[u8] = b"graven-event-signature/v1\n";
pub const FIELD: &str = "client_signature";
pub const ALG: &str = "ed25519";

/// The key id of an Ed25519 public key: the first 8 bytes of its SHA-256, in lowercase hex.
/// The same key always gets the same id, so one key cannot be registered twice.
pub fn key_id(public_key: &[u8; 32]) -> String {
    crate::hex::encode(&Sha256::digest(public_key)[..8])
}

/// A `client_signature` member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSignature {
    pub key_id: String,
    pub sig: [u8; 64],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventSigError {
    #[error(
        "`client_signature` must be {{\"alg\": \"ed25519\", \"key_id\": \"<16 hex digits>\", \"sig\": \"<base64 of 64 bytes>\"}}: {0}"
    )]
    Shape(&'static str),
    #[error("the event is not a JSON object")]
    NotAnObject,
    #[error("the event is not valid JSON: {0}")]
    Json(#[from] jcs::JcsError),
    #[error("the signature does not verify over this event with key {0}")]
    BadSignature(String),
}

/// Reads a `client_signature` value: exactly `alg`, `key_id` and `sig`.
pub fn parse_client_signature(v: &Value) -> Result<ClientSignature, EventSigError> {
    let Value::Object(members) = v else { return Err(EventSigError::Shape("not an object")) };
    if members.len() != 3 {
        return Err(EventSigError::Shape("exactly the members alg, key_id and sig"));
    }
    let get = |k: &str| {
        members.iter().find(|(n, _)| n == k).and_then(|(_, v)| match v {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        })
    };
    if get("alg") != Some(ALG) {
        return Err(EventSigError::Shape("alg must be \"ed25519\""));
    }
    let key_id = get("key_id").ok_or(EventSigError::Shape("key_id must be a string"))?;
    if key_id.len() != 16 || !key_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(EventSigError::Shape("key_id is 16 lowercase hex digits"));
    }
    let sig = get("sig").ok_or(EventSigError::Shape("sig must be a string"))?;
    let sig: [u8; 64] = B64
        .decode(sig)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(EventSigError::Shape("sig is the standard base64 of 64 bytes"))?;
    Ok(ClientSignature { key_id: key_id.to_owned(), sig })
}

/// The bytes signed for a client event whose members (without `client_signature`) are
/// `members`: [`DOMAIN`] followed by their canonical JSON.
pub fn message<'a>(members: impl IntoIterator<Item = &'a (String, Value)>) -> Vec<u8> {
    let obj = Value::Object(members.into_iter().filter(|(k, _)| k != FIELD).cloned().collect());
    let mut out = DOMAIN.to_vec();
    obj.write_canonical(&mut out);
    out
}

/// Verifies `sig` over `message` with `key` (strict: no small-order keys, canonical `S`).
pub fn verify(key: &VerifyingKey, sig: &ClientSignature, message: &[u8]) -> Result<(), EventSigError> {
    key.verify_strict(message, &Signature::from_bytes(&sig.sig))
        .map_err(|_| EventSigError::BadSignature(sig.key_id.clone()))
}

/// For a sealed event (a leaf): its client signature and the message it must verify over, or
/// `None` if the event is not client-signed.
pub fn signed_message_from_leaf(leaf: &[u8]) -> Result<Option<(ClientSignature, Vec<u8>)>, EventSigError> {
    let Value::Object(members) = jcs::parse(leaf)? else { return Err(EventSigError::NotAnObject) };
    let Some((_, sv)) = members.iter().find(|(k, _)| k == FIELD) else { return Ok(None) };
    let sig = parse_client_signature(sv)?;
    let mut client: Vec<(String, Value)> = Vec::with_capacity(members.len());
    for (k, v) in &members {
        match k.as_str() {
            "actor" | "logged_at" | "v" | FIELD => {}
            "claimed" => {
                // The server writes `claimed` only as {"actor": <what the client sent>}.
                if let Value::Object(c) = v
                    && let [(name, actor)] = c.as_slice()
                    && name == "actor"
                {
                    client.push(("actor".into(), actor.clone()));
                } else {
                    return Err(EventSigError::Shape("the leaf's `claimed` is not {\"actor\": ...}"));
                }
            }
            _ => client.push((k.clone(), v.clone())),
        }
    }
    Ok(Some((sig, message(&client))))
}

/// Signs a client event: returns the event's canonical JSON with `client_signature` added.
/// An existing `client_signature` is replaced.
pub fn sign_event(key: &SigningKey, event: &[u8]) -> Result<Vec<u8>, EventSigError> {
    let Value::Object(mut members) = jcs::parse(event)? else { return Err(EventSigError::NotAnObject) };
    members.retain(|(k, _)| k != FIELD);
    let sig = key.sign(&message(&members));
    let kid = key_id(key.verifying_key().as_bytes());
    members.push((
        FIELD.into(),
        Value::Object(vec![
            ("alg".into(), Value::String(ALG.into())),
            ("key_id".into(), Value::String(kid)),
            ("sig".into(), Value::String(B64.encode(sig.to_bytes()))),
        ]),
    ));
    let mut out = Vec::with_capacity(event.len() + 160);
    Value::Object(members).write_canonical(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9u8; 32])
    }

    #[test]
    fn the_message_is_the_prefix_and_the_canonical_event() {
        let Value::Object(m) =
            jcs::parse(br#"{"resource":{"id":"x","type":"t"},"action":"a","client_signature":1}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            message(&m),
            b"graven-event-signature/v1\n{\"action\":\"a\",\"resource\":{\"id\":\"x\",\"type\":\"t\"}}"
                .to_vec()
        );
    }

    #[test]
    fn a_signed_event_verifies_from_the_sealed_leaf() {
        let signed =
            sign_event(&key(), br#"{"action":"deploy","actor":{"id":"me"},"details":{"n":1}}"#).unwrap();
        // What the server makes of it: actor moved to claimed, server fields added.
        let Value::Object(mut m) = jcs::parse(&signed).unwrap() else { panic!() };
        let pos = m.iter().position(|(k, _)| k == "actor").unwrap();
        let (_, a) = m.remove(pos);
        m.push(("claimed".into(), Value::Object(vec![("actor".into(), a)])));
        m.push(("actor".into(), Value::String("server's".into())));
        m.push(("logged_at".into(), Value::String("2026-01-01T00:00:00.000000Z".into())));
        m.push(("v".into(), Value::Number(1.0)));
        let mut leaf = Vec::new();
        Value::Object(m).write_canonical(&mut leaf);
        let (sig, msg) = signed_message_from_leaf(&leaf).unwrap().unwrap();
        assert_eq!(sig.key_id, key_id(key().verifying_key().as_bytes()));
        verify(&key().verifying_key(), &sig, &msg).unwrap();
        // A changed field breaks it.
        let tampered = String::from_utf8(leaf).unwrap().replace("\"n\":1", "\"n\":2");
        let (sig, msg) = signed_message_from_leaf(tampered.as_bytes()).unwrap().unwrap();
        assert_eq!(verify(&key().verifying_key(), &sig, &msg), Err(EventSigError::BadSignature(sig.key_id)));
        assert_eq!(signed_message_from_leaf(br#"{"action":"a"}"#).unwrap(), None);
    }

    #[test]
    fn malformed_signature_members_are_refused() {
        let good = r#"{"alg":"ed25519","key_id":"0123456789abcdef","sig":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}"#;
        assert!(parse_client_signature(&jcs::parse(good.as_bytes()).unwrap()).is_ok());
        for bad in [
            r#"{"alg":"rsa","key_id":"0123456789abcdef","sig":"AA=="}"#,
            r#"{"alg":"ed25519","key_id":"0123456789ABCDEF","sig":"AA=="}"#,
            r#"{"alg":"ed25519","key_id":"0123456789abcdef","sig":"AA=="}"#,
            r#"{"alg":"ed25519","key_id":"0123456789abcdef"}"#,
            r#"{"alg":"ed25519","key_id":"0123456789abcdef","sig":"x","extra":1}"#,
            r#""sig""#,
        ] {
            assert!(parse_client_signature(&jcs::parse(bad.as_bytes()).unwrap()).is_err(), "{bad}");
        }
    }
}
