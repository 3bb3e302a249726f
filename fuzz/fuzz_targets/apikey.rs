//! API keys (`graven_auth::apikey::parse`, `encode`): every bearer token that is not a JWT
//! goes through `parse` before any lookup.
//!
//! The first input byte chooses what the rest is.
//!
//! Odd: any text as a token.
//! - `parse` never panics, and refuses anything over `MAX_TOKEN_LEN` bytes, not starting with
//!   `gvn_`, or with a byte outside base64url.
//! - What it accepts carries the SHA-256 of the whole token.
//! - A current-format key (`embedded`) is exactly `gvn_` + its 16-lowercase-hex key id + `_` +
//!   43 characters, and re-encodes to the input: `encode(id, secret)` of its decoded parts is
//!   the token (when the secret is canonical base64url, as every minted one is).
//! - A legacy token (not `embedded`) is at least 32 bytes, and its key id is derived from its
//!   digest, never read from the token.
//!
//! Even: 40 bytes as a key id (8) and a secret (32).
//! - `encode` gives a `KEY_LEN`-byte key that parses back to that key id, embedded, with its
//!   digest; and it has no dot, so the router never takes it for a JWT.
#![no_main]

use apikey::{KEY_ID_LEN, KEY_LEN, MAX_TOKEN_LEN, PREFIX};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use sha2::Digest;

/// graven-auth's `apikey` module, compiled here from its source (see fuzz/Cargo.toml).
#[allow(dead_code)]
#[path = "../../crates/graven-auth/src/apikey.rs"]
mod apikey;
/// graven-auth's `jwt` module, compiled here from its source (see fuzz/Cargo.toml).
#[allow(dead_code)]
#[path = "../../crates/graven-auth/src/jwt.rs"]
mod jwt;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let Ok(parts) = <[u8; 40]>::try_from(rest.get(..40).unwrap_or(&[])) else { return };
        let (id, secret) = parts.split_at(8);
        let key = apikey::encode(id.try_into().unwrap(), secret.try_into().unwrap());
        assert_eq!(key.len(), KEY_LEN);
        assert!(!jwt::looks_like_jwt(&key));
        let p = apikey::parse(&key).expect("an encoded key parses");
        assert!(p.embedded);
        assert_eq!(p.key_id, hex(id));
        assert_eq!(p.digest, <[u8; 32]>::from(sha2::Sha256::digest(key.as_bytes())));
        return;
    }
    let Ok(token) = std::str::from_utf8(rest) else { return };
    let Ok(p) = apikey::parse(token) else { return };
    assert!(token.len() <= MAX_TOKEN_LEN);
    assert!(token.starts_with(PREFIX));
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{token:?}");
    assert_eq!(p.digest, <[u8; 32]>::from(sha2::Sha256::digest(token.as_bytes())));
    if p.embedded {
        assert_eq!(token.len(), KEY_LEN);
        let id_end = PREFIX.len() + KEY_ID_LEN;
        assert_eq!(&token[PREFIX.len()..id_end], p.key_id);
        assert!(p.key_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(&token[id_end..=id_end], "_");
        let mut id = [0u8; 8];
        for (i, pair) in p.key_id.as_bytes().chunks(2).enumerate() {
            id[i] = u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap();
        }
        if let Ok(secret) = URL_SAFE_NO_PAD.decode(&token[id_end + 1..]) {
            let secret: [u8; 32] = secret.try_into().expect("43 base64url characters are 32 bytes");
            assert_eq!(apikey::encode(&id, &secret), token, "does not re-encode to the input");
        }
    } else {
        assert!(token.len() >= 32);
        assert_eq!(p.key_id, apikey::legacy_key_id(&p.digest));
        assert_eq!(p.key_id.len(), KEY_ID_LEN);
    }
});
