//! Client-signed events: an identity signs its own event with its Ed25519 key.
//!
//! **What is signed (version 2).** The client's event object (the JSON it sends to
//! `POST /v1/events`) with its `client_signature` member minus `sig`, in RFC 8785 canonical
//! form, after a domain-separation prefix:
//!
//! ```text
//! client_signature = {"alg": "ed25519", "id": "<unique id>", "key_id": "<16 hex>",
//!                     "sig": "<base64, 64 bytes>", "signed_at": <Unix seconds>}
//! message = "graven-event-signature/v2\n" || JCS(event, with client_signature minus "sig")
//! ```
//!
//! `id` (1 to 128 bytes of `A-Z a-z 0-9 . _ : -`, e.g. a UUID) and `signed_at` make each
//! signature one-time: the server refuses an `(key_id, id)` it has already logged, and a
//! `signed_at` outside its time window, so a signed event cannot be replayed (docs/security.md).
//!
//! **Version 1** (`{"alg", "key_id", "sig"}`, prefix `graven-event-signature/v1\n`, signed over
//! the event without `client_signature`) carries neither: logs written before version 2 hold
//! such events and verifiers still check them, but the server no longer accepts new ones.
//!
//! **What the leaf holds.** The server keeps the client's fields, moves the client's `actor`
//! to `claimed.actor`, adds `actor`, `logged_at` and `v`, and stores the signature as is.
//! [`signed_message_from_leaf`] undoes exactly that (drops `actor`, `logged_at` and `v`, turns
//! `claimed.actor` back into `actor`), so a verifier recomputes the signed bytes from the leaf
//! alone. It needs the public key: see [`key_id`] and the `graven.key.add_public` self-audit
//! events (docs/identities.md).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::jcs::{self, Value};

/// Prepended to the canonical event before signing (version 1), so an event signature can never
/// be taken for a signature over anything else (a note, an HTTP request).
pub const DOMAIN: &[u8] = b"graven-event-signature/v1\n";
/// The version 2 prefix: a version 1 signature can never be taken for a version 2 one.
pub const DOMAIN_V2: &[u8] = b"graven-event-signature/v2\n";
/// Longest signature `id`.
pub const MAX_ID_LEN: usize = 128;
/// Latest `signed_at` accepted: 9999-12-31T23:59:59Z.
const MAX_SIGNED_AT: i64 = 253_402_300_799;
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
    /// Version 2's one-time id and signing time; `None` for a version 1 signature.
    pub once: Option<Once>,
}

/// What makes a version 2 signature one-time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Once {
    pub id: String,
    /// Unix seconds.
    pub signed_at: i64,
}

impl ClientSignature {
    pub fn version(&self) -> u8 {
        if self.once.is_some() { 2 } else { 1 }
    }
}

/// Whether `id` is a valid signature id: 1 to [`MAX_ID_LEN`] bytes of `A-Z a-z 0-9 . _ : -`.
pub fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
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

/// Reads a `client_signature` value: exactly `alg`, `key_id` and `sig` (version 1), or those
/// and `id` and `signed_at` (version 2).
pub fn parse_client_signature(v: &Value) -> Result<ClientSignature, EventSigError> {
    let Value::Object(members) = v else { return Err(EventSigError::Shape("not an object")) };
    let v2 = match members.len() {
        3 => false,
        5 => true,
        _ => return Err(EventSigError::Shape("exactly the members alg, id, key_id, sig and signed_at")),
    };
    let member = |k: &str| members.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let get = |k: &str| match member(k) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
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
    let once = if v2 {
        let id = get("id").ok_or(EventSigError::Shape("id must be a string"))?;
        if !valid_id(id) {
            return Err(EventSigError::Shape("id is 1 to 128 bytes of letters, digits and . _ : -"));
        }
        let signed_at = match member("signed_at") {
            Some(Value::Number(n)) if n.fract() == 0.0 && (0.0..=MAX_SIGNED_AT as f64).contains(n) => {
                *n as i64
            }
            _ => return Err(EventSigError::Shape("signed_at is the signing time in whole Unix seconds")),
        };
        Some(Once { id: id.to_owned(), signed_at })
    } else {
        None
    };
    Ok(ClientSignature { key_id: key_id.to_owned(), sig, once })
}

/// The bytes signed for a version 1 client event whose members (without `client_signature`)
/// are `members`: [`DOMAIN`] followed by their canonical JSON.
pub fn message<'a>(members: impl IntoIterator<Item = &'a (String, Value)>) -> Vec<u8> {
    let obj = Value::Object(members.into_iter().filter(|(k, _)| k != FIELD).cloned().collect());
    let mut out = DOMAIN.to_vec();
    obj.write_canonical(&mut out);
    out
}

/// The bytes `sig` must verify over, for a client event whose members are `members` (any
/// `client_signature` among them is ignored): [`message`] for version 1; for version 2,
/// [`DOMAIN_V2`] followed by the canonical event with `client_signature` minus `sig`.
pub fn signed_message<'a>(
    members: impl IntoIterator<Item = &'a (String, Value)>,
    sig: &ClientSignature,
) -> Vec<u8> {
    let Some(once) = &sig.once else { return message(members) };
    let mut m: Vec<(String, Value)> = members.into_iter().filter(|(k, _)| k != FIELD).cloned().collect();
    m.push((FIELD.into(), unsigned_member(&sig.key_id, once)));
    let mut out = DOMAIN_V2.to_vec();
    Value::Object(m).write_canonical(&mut out);
    out
}

/// [`signed_message`] for members already in canonical form: `(key, canonical value)` pairs, keys
/// unescaped (what `jcs_direct::members` gives), so the event need not be parsed into a tree.
/// The same bytes as [`signed_message`] on the parsed members.
pub fn signed_message_canonical<'a>(
    members: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    sig: &ClientSignature,
) -> Vec<u8> {
    let mut m: Vec<(&str, &[u8])> = members.into_iter().filter(|(k, _)| *k != FIELD).collect();
    // `unsigned_member`, written as `write_canonical` writes it (its keys are in order).
    let unsigned = sig.once.as_ref().map(|once| {
        let mut v = Vec::with_capacity(96 + once.id.len());
        v.extend_from_slice(b"{\"alg\":");
        jcs::write_string(ALG, &mut v);
        v.extend_from_slice(b",\"id\":");
        jcs::write_string(&once.id, &mut v);
        v.extend_from_slice(b",\"key_id\":");
        jcs::write_string(&sig.key_id, &mut v);
        v.extend_from_slice(b",\"signed_at\":");
        jcs::write_number(once.signed_at as f64, &mut v);
        v.push(b'}');
        v
    });
    if let Some(v) = &unsigned {
        m.push((FIELD, v));
    }
    // Stable, as `write_canonical`'s sort is (keys of a parsed object are unique anyway).
    m.sort_by(|a, b| jcs::cmp_utf16(a.0, b.0));
    let mut out = if unsigned.is_some() { DOMAIN_V2.to_vec() } else { DOMAIN.to_vec() };
    out.push(b'{');
    for (i, (key, value)) in m.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        jcs::write_string(key, &mut out);
        out.push(b':');
        out.extend_from_slice(value);
    }
    out.push(b'}');
    out
}

/// Version 2's `client_signature` without `sig`.
fn unsigned_member(key_id: &str, once: &Once) -> Value {
    Value::Object(vec![
        ("alg".into(), Value::String(ALG.into())),
        ("id".into(), Value::String(once.id.clone())),
        ("key_id".into(), Value::String(key_id.into())),
        ("signed_at".into(), Value::Number(once.signed_at as f64)),
    ])
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
    let signed = |client: &[(String, Value)]| signed_message(client, &sig);
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
    let message = signed(&client);
    Ok(Some((sig, message)))
}

/// Signs a client event with a version 1 signature: returns the event's canonical JSON with
/// `client_signature` added (an existing one is replaced). Version 1 carries no id or signing
/// time, so the server refuses it now; it remains for building and checking older logs.
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

/// Signs a client event with a version 2 signature, one-time `id` and signing time
/// `signed_at` (Unix seconds; the caller reads the clock): returns the event's canonical JSON
/// with `client_signature` added (an existing one is replaced).
pub fn sign_event_v2(
    key: &SigningKey,
    event: &[u8],
    id: &str,
    signed_at: i64,
) -> Result<Vec<u8>, EventSigError> {
    if !valid_id(id) {
        return Err(EventSigError::Shape("id is 1 to 128 bytes of letters, digits and . _ : -"));
    }
    if !(0..=MAX_SIGNED_AT).contains(&signed_at) {
        return Err(EventSigError::Shape("signed_at is the signing time in whole Unix seconds"));
    }
    let Value::Object(mut members) = jcs::parse(event)? else { return Err(EventSigError::NotAnObject) };
    members.retain(|(k, _)| k != FIELD);
    let kid = key_id(key.verifying_key().as_bytes());
    let once = Once { id: id.to_owned(), signed_at };
    let unsigned = ClientSignature { key_id: kid.clone(), sig: [0; 64], once: Some(once.clone()) };
    let sig = key.sign(&signed_message(&members, &unsigned));
    let Value::Object(mut member) = unsigned_member(&kid, &once) else {
        return Err(EventSigError::Shape("internal: the signature member is not an object"));
    };
    member.push(("sig".into(), Value::String(B64.encode(sig.to_bytes()))));
    members.push((FIELD.into(), Value::Object(member)));
    let mut out = Vec::with_capacity(event.len() + 240);
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
    fn the_message_from_canonical_members_is_the_same() {
        let event = "{\"zz\":[{\"b\":1,\"a\":2}],\"\u{FB33}\":1,\"\u{1F602}\":\"x\\ny\",\"a\\\"b\":null,\"action\":\"a\"}";
        let longest = "x:".repeat(MAX_ID_LEN / 2);
        for signed in [
            sign_event(&key(), event.as_bytes()).unwrap(),
            sign_event_v2(&key(), event.as_bytes(), "id-1", 1_765_000_000).unwrap(),
            sign_event_v2(&key(), event.as_bytes(), "a", 0).unwrap(),
            sign_event_v2(&key(), event.as_bytes(), &longest, MAX_SIGNED_AT).unwrap(),
        ] {
            let Value::Object(m) = jcs::parse(&signed).unwrap() else { panic!() };
            let sig = parse_client_signature(&m.iter().find(|(k, _)| k == FIELD).unwrap().1).unwrap();
            let members = crate::jcs_direct::members(&signed).unwrap().unwrap();
            assert_eq!(
                signed_message_canonical(members.iter().map(|m| (m.key, m.canonical)), &sig),
                signed_message(&m, &sig)
            );
        }
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

    /// What the server makes of a client event: `actor` moved under `claimed`, its own fields
    /// added.
    fn seal(signed: &[u8]) -> Vec<u8> {
        let Value::Object(mut m) = jcs::parse(signed).unwrap() else { panic!() };
        if let Some(pos) = m.iter().position(|(k, _)| k == "actor") {
            let (_, a) = m.remove(pos);
            m.push(("claimed".into(), Value::Object(vec![("actor".into(), a)])));
        }
        m.push(("actor".into(), Value::String("server's".into())));
        m.push(("logged_at".into(), Value::String("2026-01-01T00:00:00.000000Z".into())));
        m.push(("v".into(), Value::Number(1.0)));
        let mut leaf = Vec::new();
        Value::Object(m).write_canonical(&mut leaf);
        leaf
    }

    #[test]
    fn a_version_2_signature_binds_its_id_and_time() {
        let event = br#"{"action":"deploy","actor":{"id":"me"},"details":{"n":1}}"#;
        let signed = sign_event_v2(&key(), event, "01J8Z3-a.b:c_d", 1_765_000_000).unwrap();
        let text = String::from_utf8(signed.clone()).unwrap();
        assert!(
            text.contains(r#""id":"01J8Z3-a.b:c_d""#) && text.contains(r#""signed_at":1765000000"#),
            "{text}"
        );
        let leaf = seal(&signed);
        let (sig, msg) = signed_message_from_leaf(&leaf).unwrap().unwrap();
        assert_eq!(sig.version(), 2);
        assert_eq!(sig.once, Some(Once { id: "01J8Z3-a.b:c_d".into(), signed_at: 1_765_000_000 }));
        assert!(msg.starts_with(DOMAIN_V2));
        verify(&key().verifying_key(), &sig, &msg).unwrap();
        // A new id or time on the same signature (to slip past replay detection) breaks it.
        for (from, to) in
            [(r#""id":"01J8Z3-a.b:c_d""#, r#""id":"01J8Z3-a.b:c_e""#), ("1765000000", "1765000001")]
        {
            let t = String::from_utf8(leaf.clone()).unwrap().replace(from, to);
            let (sig, msg) = signed_message_from_leaf(t.as_bytes()).unwrap().unwrap();
            assert!(verify(&key().verifying_key(), &sig, &msg).is_err(), "{to}");
        }
        // A version 1 signature dressed up with an id and a time does not verify as version 2.
        let v1 = String::from_utf8(sign_event(&key(), event).unwrap()).unwrap();
        let dressed = v1
            .replace(r#""alg":"ed25519","#, r#""alg":"ed25519","id":"x","#)
            .replace(r#""sig":"#, r#""signed_at":1765000000,"sig":"#);
        let (sig, msg) = signed_message_from_leaf(&seal(dressed.as_bytes())).unwrap().unwrap();
        assert_eq!(sig.version(), 2);
        assert!(verify(&key().verifying_key(), &sig, &msg).is_err());
        // Bad ids and times are refused when signing and when parsing.
        for id in ["", "a b", "é", &"x".repeat(129)] {
            assert!(sign_event_v2(&key(), event, id, 1).is_err(), "{id:?}");
        }
        for t in [-1, MAX_SIGNED_AT + 1] {
            assert!(sign_event_v2(&key(), event, "x", t).is_err(), "{t}");
        }
        for bad in [
            r#"{"alg":"ed25519","id":"x","key_id":"0123456789abcdef","sig":"AA==","signed_at":1}"#,
            r#"{"alg":"ed25519","id":"","key_id":"0123456789abcdef","sig":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","signed_at":1}"#,
            r#"{"alg":"ed25519","id":"x","key_id":"0123456789abcdef","sig":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","signed_at":1.5}"#,
            r#"{"alg":"ed25519","id":"x","key_id":"0123456789abcdef","sig":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","signed_at":"1"}"#,
            r#"{"alg":"ed25519","nonce":"x","key_id":"0123456789abcdef","sig":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","signed_at":1}"#,
        ] {
            assert!(parse_client_signature(&jcs::parse(bad.as_bytes()).unwrap()).is_err(), "{bad}");
        }
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
