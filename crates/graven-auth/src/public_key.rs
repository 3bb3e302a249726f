//! Ed25519 public keys registered to identities, for RFC 9421 request signatures
//! (`sigauth`) and client-signed events (`event_signature`): the accepted
//! encodings and the per-identity bound.
//!
//! A key's id is derived from the key (`graven_core::event_sig::key_id`: the first 8 bytes of
//! its SHA-256, in hex), so one key cannot belong to two identities. Registering and revoking
//! a key are self-audited like API keys (`graven.key.add_public`, `graven.key.revoke_public`,
//! by the server's admin routes); the registration event carries the public key itself, so a
//! verifier can rebuild every identity's keys from the log alone and check client signatures
//! offline.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::VerifyingKey;

pub use crate::identity::PublicKeyRecord;

/// Public keys kept per identity (active and revoked together).
pub const MAX_PUBLIC_KEYS_PER_IDENTITY: usize = 16;
/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

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
