//! JSON Web Keys and key sets (`graven_auth::jwt::Jwk::from_json`, `jwt::key_set`), as read
//! from an issuer's JWKS document (untrusted: it comes over the network).
//!
//! Properties:
//! - Nothing panics, on any bytes read as JSON.
//! - A JWK that parses yields a key of the family it claims: `kty: RSA` verifies exactly the
//!   RSA algorithms (RS256..PS512), `EC`/`P-256` exactly ES256, `EC`/`P-384` exactly ES384,
//!   `OKP`/`Ed25519` exactly EdDSA, narrowed to its own `alg` when it names one (which must
//!   then be of the family); its `kid` is the member's non-empty `kid`; `use`, if any, is `sig`.
//! - A key set holds at most `MAX_KEYS` keys, each under its own `kid`, and each is the key of
//!   the first member, among the first `MAX_KEYS`, that parses with that `kid`.
#![no_main]

use jwt::{Alg, Jwk};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// graven-auth's `jwt` module, compiled here from its source (see fuzz/Cargo.toml).
#[allow(dead_code)]
#[path = "../../crates/graven-auth/src/jwt.rs"]
mod jwt;

/// The algorithms a member's `kty`/`crv` claim, by the JOSE registry (RFC 7518 section 3.1,
/// RFC 8037 section 3.1).
fn family(v: &Value) -> Vec<Alg> {
    let s = |n: &str| v.get(n).and_then(Value::as_str);
    match (s("kty"), s("crv")) {
        (Some("RSA"), _) => vec![Alg::Rs256, Alg::Rs384, Alg::Rs512, Alg::Ps256, Alg::Ps384, Alg::Ps512],
        (Some("EC"), Some("P-256")) => vec![Alg::Es256],
        (Some("EC"), Some("P-384")) => vec![Alg::Es384],
        (Some("OKP"), Some("Ed25519")) => vec![Alg::EdDsa],
        _ => vec![],
    }
}

fn check_member(v: &Value) -> Option<Jwk> {
    let k = Jwk::from_json(v)?;
    let mut want = family(v);
    assert!(!want.is_empty(), "a key of no known family parsed: {v}");
    if let Some(a) = v.get("alg") {
        let a = Alg::parse(a.as_str().expect("a parsed JWK's alg is a string")).expect("a known alg");
        assert!(want.contains(&a), "alg {a:?} outside the key's family: {v}");
        want = vec![a];
    }
    let allowed: Vec<Alg> = Alg::ALL.into_iter().filter(|a| k.allows(*a)).collect();
    assert_eq!(allowed, want, "{v}");
    assert_eq!(Some(k.kid.as_str()), v.get("kid").and_then(Value::as_str));
    assert!(!k.kid.is_empty());
    assert!(v.get("use").is_none_or(|u| u == "sig"), "{v}");
    Some(k)
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else { return };
    // The document as one key, and each member of a `keys` array.
    check_member(&doc);
    let Ok(set) = jwt::key_set(&doc) else {
        assert!(doc.get("keys").and_then(Value::as_array).is_none());
        return;
    };
    assert!(set.len() <= jwt::MAX_KEYS);
    let members = doc["keys"].as_array().unwrap();
    let mut first = std::collections::HashMap::new();
    for m in members.iter().take(jwt::MAX_KEYS) {
        if let Some(k) = check_member(m) {
            first.entry(k.kid.clone()).or_insert(k);
        }
    }
    assert_eq!(set, first);
    for (kid, k) in &set {
        assert_eq!(kid, &k.kid);
    }
});
