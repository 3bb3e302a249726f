//! The API key format: `gvn_<key id>_<secret>`.
//!
//! - key id: 16 lowercase hex digits (64 random bits), public, names the key in events and
//!   lets the server find its record with one hash-map lookup;
//! - secret: 32 random bytes (256 bits), unpadded base64url (43 characters).
//!
//! The server stores only the SHA-256 of the whole key string and compares digests in
//! constant time. Tokens from before identities existed (`gvn_` + 43 base64url characters,
//! the old `admin.token`) are still accepted: their key id is derived from their digest.
//!
//! Kept self-contained (no `crate::` paths, only the dependencies named in fuzz/Cargo.toml):
//! the fuzz targets compile this file on its own.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "gvn_";
pub const KEY_ID_LEN: usize = 16;
const SECRET_LEN: usize = 43;
/// `gvn_` + key id + `_` + secret.
pub const KEY_LEN: usize = PREFIX.len() + KEY_ID_LEN + 1 + SECRET_LEN;
/// Longest bearer value looked at; longer ones are refused before hashing.
pub const MAX_TOKEN_LEN: usize = 256;
/// Shortest legacy token accepted (the old bootstrap token was 47 characters).
const MIN_LEGACY_LEN: usize = 32;

/// A bearer token as presented: where to look it up and what to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub key_id: String,
    pub digest: [u8; 32],
    /// Whether the key id was written in the token (and so may be quoted in a denied record);
    /// a legacy token's id is derived from a hash of its secret and is not.
    pub embedded: bool,
}

/// Why a bearer token was not even looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("API keys look like gvn_<16 hex digits>_<43 base64url characters>")]
    Shape,
    #[error("the token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Parses a bearer token. Never panics; any input either parses or is `Malformed`.
pub fn parse(token: &str) -> Result<Presented, Malformed> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Malformed::TooLong);
    }
    let b = token.as_bytes();
    if !token.starts_with(PREFIX) || !b.iter().all(|&c| is_b64url(c)) {
        return Err(Malformed::Shape);
    }
    let id = &b[PREFIX.len()..(PREFIX.len() + KEY_ID_LEN).min(b.len())];
    let current = b.len() == KEY_LEN
        && id.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        && b[PREFIX.len() + KEY_ID_LEN] == b'_';
    let digest = digest(token);
    if current {
        let key_id = String::from_utf8_lossy(id).into_owned();
        return Ok(Presented { key_id, digest, embedded: true });
    }
    if b.len() < MIN_LEGACY_LEN {
        return Err(Malformed::Shape);
    }
    Ok(Presented { key_id: legacy_key_id(&digest), digest, embedded: false })
}

/// The key id of a pre-identity token: the first 8 bytes of its SHA-256, in hex.
pub fn legacy_key_id(digest: &[u8; 32]) -> String {
    graven_core::hex::encode(&digest[..8])
}

/// A new key: the string to hand out once, its id, and the digest to store.
#[derive(Debug)]
pub struct Minted {
    pub key: String,
    pub key_id: String,
    pub digest: [u8; 32],
}

/// The key string for a key id and secret: `gvn_` + hex(id) + `_` + base64url(secret).
pub fn encode(id: &[u8; 8], secret: &[u8; 32]) -> String {
    format!("{PREFIX}{}_{}", graven_core::hex::encode(id), URL_SAFE_NO_PAD.encode(secret))
}

pub fn mint() -> std::io::Result<Minted> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).map_err(|e| std::io::Error::other(e.to_string()))?;
    getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
    let key = encode(&id, &secret);
    let key_id = graven_core::hex::encode(&id);
    let digest = digest(&key);
    Ok(Minted { key, key_id, digest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_parse_to_their_id_and_digest() {
        let m = mint().unwrap();
        assert_eq!(m.key.len(), KEY_LEN);
        assert!(m.key.starts_with("gvn_"));
        let p = parse(&m.key).unwrap();
        assert_eq!(p, Presented { key_id: m.key_id.clone(), digest: m.digest, embedded: true });
        let other = mint().unwrap();
        assert_ne!(other.key_id, m.key_id);
        assert_ne!(other.key, m.key);
    }

    #[test]
    fn legacy_tokens_get_a_derived_id() {
        let old = format!("gvn_{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(old.len(), 47);
        let p = parse(&old).unwrap();
        assert!(!p.embedded);
        assert_eq!(p.key_id, legacy_key_id(&digest(&old)));
        assert_eq!(p.key_id.len(), KEY_ID_LEN);
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let m = mint().unwrap();
        let cases = [
            String::new(),
            "gvn_".into(),
            "gvn_short".into(),
            "Bearer".into(),
            "xyz_0123456789abcdef_".to_owned() + &"A".repeat(43),
            "gvn_0123456789abcdef_".to_owned() + &"A".repeat(42) + "=",
            "gvn_0123456789abcdef_".to_owned() + &"A".repeat(42) + "é",
            m.key.replace("gvn_", "GVN_"),
            "gvn_".to_owned() + &"a".repeat(300),
            "\u{0}".repeat(64),
            "gvn_é".into(),
        ];
        for c in &cases {
            assert!(parse(c).is_err(), "{c:?} parsed");
        }
        // Every prefix and single-byte change of a good key is handled without a panic.
        for i in 0..m.key.len() {
            let _ = parse(&m.key[..i]);
            let mut b = m.key.clone().into_bytes();
            b[i] = b'!';
            let _ = parse(&String::from_utf8(b).unwrap());
        }
        // Uppercase hex in the id is not this format; it falls back to a legacy lookup that
        // cannot match the real key.
        let upper = format!("gvn_{}_{}", m.key_id.to_uppercase(), &m.key[21..]);
        if let (true, Ok(p)) = (upper != m.key, parse(&upper)) {
            assert!(!p.embedded);
            assert_ne!(p.digest, m.digest);
        }
    }
}
