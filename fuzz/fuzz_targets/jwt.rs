//! JWS compact tokens (`graven_auth::jwt`): `parse`, `Unverified::verify`, `looks_like_jwt`.
//!
//! The first input byte chooses what the rest is.
//!
//! Odd: an arbitrary token, checked under two fixed keys (Ed25519 and P-256) at a time and
//! leeway read from the input.
//! - Nothing panics.
//! - A token that parses has the shape the router sends to the federation verifier
//!   (`looks_like_jwt`), so a parseable JWT never reaches the API key lookup.
//! - A token that verifies under the Ed25519 key was signed by it: its signature is exactly the
//!   key's (deterministic, RFC 8032) signature of the signing input, and its header says EdDSA.
//!   One that verifies under the P-256 key says ES256. No other key family verifies.
//! - A verified token obeys the time rules, checked here against an independent reading of
//!   the claims (integers in range; `now < exp + leeway`, `now + leeway >= nbf`,
//!   `iat <= now + leeway`).
//!
//! Even: an honest token. The input gives the claims (any JSON text), the time and leeway, and
//! a byte position; the target signs the token with the Ed25519 key.
//! - `verify` accepts it exactly when the independent time rules say it should (and the
//!   claims are a JSON object).
//! - Changing any one byte of it (the input says which, and to what) makes it fail to parse
//!   or fail to verify: the signature covers every byte that is read.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jwt::{Jwk, JwtError};
use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Map, Value, json};

/// graven-auth's `jwt` module, compiled here from its source (see fuzz/Cargo.toml).
#[allow(dead_code)]
#[path = "../../crates/graven-auth/src/jwt.rs"]
mod jwt;

const ED_SEED: [u8; 32] = [7; 32];
/// The P-256 public key, uncompressed: the generator point G (its private key is 1), so no
/// key pair needs to be made; nothing signs with it here.
const P256_X: &str = "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY";
const P256_Y: &str = "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";

fn keys() -> (Ed25519KeyPair, Jwk, Jwk) {
    let kp = Ed25519KeyPair::from_seed_unchecked(&ED_SEED).unwrap();
    let ed = Jwk::from_json(&json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed",
                                    "x": B64URL.encode(kp.public_key().as_ref())}))
    .unwrap();
    let ec =
        Jwk::from_json(&json!({"kty": "EC", "crv": "P-256", "kid": "ec", "x": P256_X, "y": P256_Y})).unwrap();
    (kp, ed, ec)
}

/// What `verify` must decide about the time claims, read independently of `jwt`.
fn times_ok(claims: &Map<String, Value>, now: i64, leeway: i64) -> Option<bool> {
    let read = |name: &str| -> Result<Option<i64>, ()> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => match n.as_i64() {
                Some(t) if (0..=253_402_300_799).contains(&t) => Ok(Some(t)),
                _ => Err(()),
            },
            Some(_) => Err(()),
        }
    };
    let (Ok(Some(exp)), Ok(nbf), Ok(iat)) = (read("exp"), read("nbf"), read("iat")) else {
        return Some(false);
    };
    Some(
        now < exp.saturating_add(leeway)
            && nbf.is_none_or(|n| now.saturating_add(leeway) >= n)
            && iat.is_none_or(|i| i <= now.saturating_add(leeway)),
    )
}

fn claims_of(token: &str) -> Option<Map<String, Value>> {
    let p = token.split('.').nth(1)?;
    match serde_json::from_slice(&B64URL.decode(p).ok()?) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn time_from(b: &[u8]) -> (i64, i64) {
    let mut t = [0u8; 8];
    let n = b.len().min(5);
    t[..n].copy_from_slice(&b[..n]);
    // Seconds up to about 35,000 years, leeway 0..=3600 as the config allows.
    let now = i64::from_le_bytes(t) % 1_100_000_000_000;
    let leeway = i64::from(b.get(5).copied().unwrap_or(0)) * 15;
    (now, leeway.min(3600))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (kp, ed, ec) = keys();
    if mode % 2 == 1 {
        if rest.len() < 6 {
            return;
        }
        let (now, leeway) = time_from(&rest[..6]);
        let Ok(token) = std::str::from_utf8(&rest[6..]) else { return };
        let Ok(u) = jwt::parse(token) else { return };
        assert!(jwt::looks_like_jwt(token), "parses but would not be routed as a JWT: {token:?}");
        let alg = u.alg;
        if let Ok(v) = u.verify(&ed, now, leeway) {
            let (input, sig) = token.rsplit_once('.').unwrap();
            assert_eq!(alg, jwt::Alg::EdDsa);
            assert_eq!(B64URL.decode(sig).unwrap(), kp.sign(input.as_bytes()).as_ref(), "verified a forgery");
            assert_eq!(times_ok(v.claims(), now, leeway), Some(true), "time rules: {:?}", v.claims());
        }
        if let Ok(v) = jwt::parse(token).unwrap().verify(&ec, now, leeway) {
            assert_eq!(alg, jwt::Alg::Es256);
            assert_eq!(times_ok(v.claims(), now, leeway), Some(true), "time rules: {:?}", v.claims());
        }
        return;
    }
    // An honest token: [now 5 bytes][leeway 1][position 2][new byte 1] then the claims text.
    if rest.len() < 9 {
        return;
    }
    let (now, leeway) = time_from(&rest[..6]);
    let pos = usize::from(u16::from_le_bytes([rest[6], rest[7]]));
    let new_byte = rest[8];
    let Ok(claims_text) = std::str::from_utf8(&rest[9..]) else { return };
    let header = B64URL.encode(br#"{"alg":"EdDSA","kid":"ed"}"#);
    let input = format!("{header}.{}", B64URL.encode(claims_text.as_bytes()));
    let token = format!("{input}.{}", B64URL.encode(kp.sign(input.as_bytes()).as_ref()));
    if token.len() > jwt::MAX_TOKEN_LEN {
        assert!(jwt::parse(&token).is_err());
        return;
    }
    let claims = claims_of(&token);
    let verified = jwt::parse(&token).map(|u| u.verify(&ed, now, leeway));
    match (&claims, &verified) {
        (None, r) => {
            assert!(matches!(r, Err(JwtError::Malformed(_))), "claims that are not a JSON object: {r:?}")
        }
        (Some(c), Ok(r)) => {
            let want = times_ok(c, now, leeway) == Some(true);
            assert_eq!(r.is_ok(), want, "claims {c:?} at {now} ± {leeway}: {r:?}");
            if let Ok(v) = r {
                assert_eq!(v.claims(), c);
                assert_eq!(Some(v.expires_at()), c.get("exp").and_then(Value::as_i64));
            }
        }
        (Some(_), Err(e)) => panic!("an honest token does not parse: {e}"),
    }
    // One byte changed: never verifies. (A time the token fails anyway proves nothing, so
    // the check runs at a time it passes, when there is one.)
    if !matches!(verified, Ok(Ok(_))) {
        return;
    }
    let mut bad = token.clone().into_bytes();
    let at = pos % bad.len();
    if bad[at] == new_byte {
        return;
    }
    bad[at] = new_byte;
    let Ok(bad) = String::from_utf8(bad) else { return };
    if let Ok(u) = jwt::parse(&bad) {
        let r = u.verify(&ed, now, leeway);
        assert!(r.is_err(), "a token changed at byte {at} still verifies: {bad:?}");
    }
});
