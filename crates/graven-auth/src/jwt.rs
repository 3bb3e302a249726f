//! JSON Web Tokens (RFC 7519) in JWS compact form (RFC 7515), and the JSON Web Keys (RFC 7517)
//! that verify them. Pure: no I/O and no clock; times are handed in.
//!
//! Only asymmetric algorithms exist here: RS256/384/512, PS256/384/512, ES256, ES384 and
//! EdDSA (Ed25519), all verified by `ring`. `none` and the HMAC family are not algorithms this
//! code knows, so a token naming them is refused before any key is looked at; and a key is
//! used only with the family its JWK type allows (an RSA key verifies RS*/PS* and nothing
//! else), so an HS256 token "signed" with an RSA public key as the HMAC secret cannot pass.
//! Header parameters that point at keys (`jku`, `x5u`, `jwk`) are ignored: keys come only from
//! the issuer's configured JWKS.
//!
//! Kept self-contained (no `crate::` paths, only the dependencies named in fuzz/Cargo.toml):
//! the fuzz targets compile this file on its own.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::signature::{self, RsaPublicKeyComponents};
use serde_json::{Map, Value};

/// Largest token accepted (GitHub's and Kubernetes' tokens are 1–2 KiB).
pub const MAX_TOKEN_LEN: usize = 8 << 10;
/// Longest `kid` kept.
const MAX_KID_LEN: usize = 256;
/// Members of one JWKS looked at; later ones are ignored.
pub const MAX_KEYS: usize = 64;
/// Latest time claim accepted: 9999-12-31T23:59:59Z, in Unix seconds.
pub const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// A JWS algorithm this server verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    pub const ALL: [Alg; 9] = [
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
        Alg::Es256,
        Alg::Es384,
        Alg::EdDsa,
    ];

    pub fn parse(s: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }
}

/// The public key material of a JWK.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    /// Big-endian modulus and exponent.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed SEC1 point (`04 || x || y`).
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// A signature-verifying public key from a JWKS, parsed once when the set is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: String,
    /// The JWK's own `alg`, if it names one: then only that algorithm may use it.
    alg: Option<Alg>,
    material: Material,
}

impl Jwk {
    /// Parses one member of a JWKS `keys` array. `None` for keys this server never uses for
    /// tokens: no `kid`, `use` other than `sig`, symmetric (`oct`) or unknown types and curves,
    /// malformed numbers, RSA moduli under 2048 bits.
    pub fn from_json(v: &Value) -> Option<Jwk> {
        let s = |name: &str| v.get(name).and_then(Value::as_str);
        let b = |name: &str| s(name).and_then(|t| B64URL.decode(t).ok());
        let kid = s("kid").filter(|k| !k.is_empty() && k.len() <= MAX_KID_LEN)?.to_owned();
        if s("use").is_some_and(|u| u != "sig") {
            return None;
        }
        let alg = match v.get("alg") {
            None => None,
            Some(a) => Some(Alg::parse(a.as_str()?)?),
        };
        let point = |x: Vec<u8>, y: Vec<u8>, len: usize| {
            (x.len() == len && y.len() == len).then(|| [&[4u8][..], &x, &y].concat())
        };
        let material = match (s("kty")?, s("crv")) {
            ("RSA", _) => {
                let n = strip_zeros(b("n")?);
                let e = strip_zeros(b("e")?);
                if n.len() < 256 || n.len() > 1024 || e.is_empty() || e.len() > 8 {
                    return None;
                }
                Material::Rsa { n, e }
            }
            ("EC", Some("P-256")) => Material::P256(point(b("x")?, b("y")?, 32)?),
            ("EC", Some("P-384")) => Material::P384(point(b("x")?, b("y")?, 48)?),
            ("OKP", Some("Ed25519")) => Material::Ed25519(b("x").filter(|x| x.len() == 32)?),
            _ => return None,
        };
        let jwk = Jwk { kid, alg, material };
        // A JWK whose `alg` contradicts its type is not used at all.
        if let Some(a) = alg
            && !jwk.family_allows(a)
        {
            return None;
        }
        Some(jwk)
    }

    fn family_allows(&self, alg: Alg) -> bool {
        match self.material {
            Material::Rsa { .. } => {
                matches!(alg, Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512)
            }
            Material::P256(_) => alg == Alg::Es256,
            Material::P384(_) => alg == Alg::Es384,
            Material::Ed25519(_) => alg == Alg::EdDsa,
        }
    }

    /// Whether this key may verify a token whose header says `alg`.
    pub fn allows(&self, alg: Alg) -> bool {
        self.family_allows(alg) && self.alg.is_none_or(|a| a == alg)
    }

    fn verify(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        match (&self.material, alg) {
            (Material::Rsa { n, e }, alg) => {
                let params = match alg {
                    Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                RsaPublicKeyComponents { n, e }.verify(params, message, sig).is_ok()
            }
            (Material::P256(p), Alg::Es256) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, p)
                    .verify(message, sig)
                    .is_ok()
            }
            (Material::P384(p), Alg::Es384) => {
                signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, p)
                    .verify(message, sig)
                    .is_ok()
            }
            (Material::Ed25519(k), Alg::EdDsa) => {
                signature::UnparsedPublicKey::new(&signature::ED25519, k).verify(message, sig).is_ok()
            }
            _ => false,
        }
    }
}

/// Why a JWKS document gave no key set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    #[error("it is not a JSON object with a `keys` array (RFC 7517 section 5)")]
    NoKeys,
}

/// The usable keys of a JWKS document (RFC 7517 section 5), by `kid`: the first [`MAX_KEYS`]
/// members of its `keys` array, each read by [`Jwk::from_json`]. Members this server cannot
/// use are skipped; of two usable members with one `kid`, the first is kept.
pub fn key_set(doc: &Value) -> Result<HashMap<String, Jwk>, JwksError> {
    let members = doc.get("keys").and_then(Value::as_array).ok_or(JwksError::NoKeys)?;
    let mut keys = HashMap::new();
    for k in members.iter().take(MAX_KEYS).filter_map(Jwk::from_json) {
        keys.entry(k.kid.clone()).or_insert(k);
    }
    Ok(keys)
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let lead = v.iter().take_while(|&&b| b == 0).count();
    v.drain(..lead);
    v
}

/// Why a token was refused, before or at its signature and times.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    #[error("the token is not a JWT: {0}")]
    Malformed(&'static str),
    #[error(
        "the token's algorithm {0:?} is not accepted (accepted: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"
    )]
    Algorithm(String),
    #[error("the token names critical header parameters, which this server does not support")]
    Critical,
    #[error("the key {0:?} cannot verify a {1} token")]
    KeyMismatch(String, &'static str),
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has no `exp` claim; only tokens that expire are accepted")]
    NoExpiry,
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet (`nbf` is in the future)")]
    NotYetValid,
    #[error(
        "the token's `{0}` claim must be a whole number of seconds since 1970 (a JSON integer from 0 to {MAX_NUMERIC_DATE}), not a fraction, an exponent or a string"
    )]
    TimeClaim(&'static str),
    #[error(
        "the token's `iat` (issued at) is in the future, beyond the allowed clock skew; check the issuer's clock"
    )]
    IssuedInFuture,
}

impl JwtError {
    /// A stable slug for denied records.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Malformed(_) => "token-malformed",
            JwtError::Algorithm(_) => "token-algorithm",
            JwtError::Critical => "token-critical-header",
            JwtError::KeyMismatch(..) => "token-key-mismatch",
            JwtError::BadSignature => "token-signature",
            JwtError::NoExpiry => "token-no-expiry",
            JwtError::Expired => "token-expired",
            JwtError::NotYetValid => "token-not-yet-valid",
            JwtError::TimeClaim(_) => "token-time-claim",
            JwtError::IssuedInFuture => "token-issued-in-future",
        }
    }
}

/// Whether a bearer credential has the shape of a JWS compact token (three base64url parts).
/// API keys start with `gvn_` and have no dots.
pub fn looks_like_jwt(token: &str) -> bool {
    token.len() <= MAX_TOKEN_LEN
        && token.bytes().filter(|&b| b == b'.').count() == 2
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A token split and decoded, its signature not yet checked: nothing in it is trusted except
/// as a hint for which issuer and key to check it with.
#[derive(Debug)]
pub struct Unverified<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn json_part(part: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = B64URL.decode(part).map_err(|_| JwtError::Malformed("a part is not unpadded base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JwtError::Malformed("a part is not a JSON object")),
    }
}

/// Splits and decodes a compact JWS. Refuses unknown algorithms (`none`, `HS256`, ...) and
/// critical header parameters.
pub fn parse(token: &str) -> Result<Unverified<'_>, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed("longer than 8 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed("expected three dot-separated parts"));
    };
    let header = json_part(h)?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) => Alg::parse(a).ok_or_else(|| JwtError::Algorithm(a.clone()))?,
        _ => return Err(JwtError::Malformed("the header has no `alg`")),
    };
    if header.contains_key("crit") {
        return Err(JwtError::Critical);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) if k.len() <= MAX_KID_LEN => Some(k.clone()),
        Some(_) => return Err(JwtError::Malformed("`kid` is not a short string")),
    };
    let claims = json_part(p)?;
    let signature = B64URL.decode(s).map_err(|_| JwtError::Malformed("the signature is not base64url"))?;
    if signature.is_empty() {
        return Err(JwtError::Malformed("the signature is empty"));
    }
    Ok(Unverified { alg, kid, claims, signing_input: &token[..h.len() + 1 + p.len()], signature })
}

/// Claims whose signature verified and whose time window includes `now`. Built only by
/// [`Unverified::verify`].
#[derive(Debug, Clone)]
pub struct Verified {
    claims: Map<String, Value>,
    exp: i64,
}

impl Verified {
    /// The `exp` claim, Unix seconds (always present and in range in a verified token).
    pub fn expires_at(&self) -> i64 {
        self.exp
    }

    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// Whether `aud` (a string or an array of strings) holds `audience`.
    pub fn has_audience(&self, audience: &str) -> bool {
        match self.claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(v)) => v.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        }
    }
}

impl Unverified<'_> {
    /// The `iss` claim, unverified: used only to pick the issuer whose keys to check with.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// Checks the signature with `key`, then the time claims against `now_s` (Unix seconds)
    /// with `leeway_s` of tolerance for clock skew: `exp` (required), `nbf` and `iat` must be
    /// integers in range ([`numeric_date`]); `now < exp + leeway`, `now + leeway >= nbf`, and
    /// `iat <= now + leeway`.
    pub fn verify(self, key: &Jwk, now_s: i64, leeway_s: i64) -> Result<Verified, JwtError> {
        if !key.allows(self.alg) {
            return Err(JwtError::KeyMismatch(key.kid.clone(), self.alg.as_str()));
        }
        if !key.verify(self.alg, self.signing_input.as_bytes(), &self.signature) {
            return Err(JwtError::BadSignature);
        }
        let exp = numeric_date(&self.claims, "exp")?.ok_or(JwtError::NoExpiry)?;
        let nbf = numeric_date(&self.claims, "nbf")?;
        let iat = numeric_date(&self.claims, "iat")?;
        if now_s >= exp.saturating_add(leeway_s) {
            return Err(JwtError::Expired);
        }
        if nbf.is_some_and(|nbf| now_s.saturating_add(leeway_s) < nbf) {
            return Err(JwtError::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now_s.saturating_add(leeway_s)) {
            return Err(JwtError::IssuedInFuture);
        }
        Ok(Verified { claims: self.claims, exp })
    }
}

/// The time claim `name` (RFC 7519 section 2, NumericDate), if present: a JSON integer from 0
/// to [`MAX_NUMERIC_DATE`]. RFC 7519 allows fractions; no issuer this server federates with
/// sends them, and accepting only integers leaves one reading of each value (`1e12` is not
/// rounded, `"2030"` is not skipped).
pub fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            // `as_i64` is `None` for a float (`1e12`, `1.0`) and for integers above i64::MAX.
            Some(t) if (0..=MAX_NUMERIC_DATE).contains(&t) => Ok(Some(t)),
            _ => Err(JwtError::TimeClaim(name)),
        },
        Some(_) => Err(JwtError::TimeClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    fn b64(b: &[u8]) -> String {
        B64URL.encode(b)
    }

    fn es256() -> (EcdsaKeyPair, Jwk) {
        let rng = SystemRandom::new();
        let pk8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pk8.as_ref(), &rng).unwrap();
        let pt = kp.public_key().as_ref();
        let jwk =
            json!({"kty": "EC", "crv": "P-256", "kid": "e1", "x": b64(&pt[1..33]), "y": b64(&pt[33..])});
        (kp, Jwk::from_json(&jwk).unwrap())
    }

    fn token(header: Value, claims: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let sig = sign(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    #[test]
    fn es256_and_eddsa_verify_and_times_are_checked() {
        let (kp, jwk) = es256();
        let rng = SystemRandom::new();
        let sign = |m: &[u8]| kp.sign(&rng, m).unwrap().as_ref().to_vec();
        let t = token(json!({"alg": "ES256", "kid": "e1"}), json!({"iss": "i", "exp": 1000}), sign);
        assert!(looks_like_jwt(&t));
        let u = parse(&t).unwrap();
        assert_eq!((u.alg, u.kid.as_deref(), u.issuer()), (Alg::Es256, Some("e1"), Some("i")));
        assert_eq!(u.verify(&jwk, 999, 0).unwrap().str("iss"), Some("i"));
        assert_eq!(parse(&t).unwrap().verify(&jwk, 1000, 0).unwrap_err(), JwtError::Expired);
        parse(&t).unwrap().verify(&jwk, 1009, 10).unwrap();
        let t = token(json!({"alg": "ES256"}), json!({"exp": 1000, "nbf": 500}), sign);
        assert_eq!(parse(&t).unwrap().verify(&jwk, 400, 60).unwrap_err(), JwtError::NotYetValid);
        parse(&t).unwrap().verify(&jwk, 450, 60).unwrap();
        let t = token(json!({"alg": "ES256"}), json!({"iss": "i"}), sign);
        assert_eq!(parse(&t).unwrap().verify(&jwk, 0, 0).unwrap_err(), JwtError::NoExpiry);

        let pk8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(pk8.as_ref()).unwrap();
        let edjwk = Jwk::from_json(
            &json!({"kty": "OKP", "crv": "Ed25519", "kid": "d", "x": b64(ed.public_key().as_ref())}),
        )
        .unwrap();
        let t = token(json!({"alg": "EdDSA"}), json!({"exp": 10}), |m| ed.sign(m).as_ref().to_vec());
        parse(&t).unwrap().verify(&edjwk, 0, 0).unwrap();
        // The EC key cannot verify an EdDSA token, nor the Ed25519 key an ES256 one.
        assert!(matches!(parse(&t).unwrap().verify(&jwk, 0, 0), Err(JwtError::KeyMismatch(..))));
    }

    #[test]
    fn tampering_none_and_hmac_are_refused() {
        let (kp, jwk) = es256();
        let rng = SystemRandom::new();
        let t = token(json!({"alg": "ES256"}), json!({"exp": 10, "sub": "a"}), |m| {
            kp.sign(&rng, m).unwrap().as_ref().to_vec()
        });
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], b64(br#"{"exp":10,"sub":"b"}"#), parts[2]);
        assert_eq!(parse(&forged).unwrap().verify(&jwk, 0, 0).unwrap_err(), JwtError::BadSignature);
        let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(parse(&none).unwrap_err(), JwtError::Algorithm("none".into()));
        let none_sig = format!("{}.{}.{}", b64(br#"{"alg":"none"}"#), parts[1], parts[2]);
        assert_eq!(parse(&none_sig).unwrap_err(), JwtError::Algorithm("none".into()));
        let hs = format!("{}.{}.{}", b64(br#"{"alg":"HS256"}"#), parts[1], parts[2]);
        assert_eq!(parse(&hs).unwrap_err(), JwtError::Algorithm("HS256".into()));
        let crit = format!("{}.{}.{}", b64(br#"{"alg":"ES256","crit":["x"]}"#), parts[1], parts[2]);
        assert_eq!(parse(&crit).unwrap_err(), JwtError::Critical);
        for bad in ["a.b", "a.b.c.d", "!.b.c", &format!("{}=.{}.{}", parts[0], parts[1], parts[2])] {
            assert!(matches!(parse(bad), Err(JwtError::Malformed(_))), "{bad}");
        }
        assert!(!looks_like_jwt("gvn_0123456789abcdef_secret"));
    }

    /// `exp`, `nbf` and `iat` are NumericDates (RFC 7519 section 2); here they must be JSON
    /// integers between 0 and 253402300799 (the end of year 9999). A float, a string or a
    /// number out of range is refused and the error names the claim, instead of being rounded
    /// (`1e12`) or ignored (`"2030"`).
    #[test]
    fn time_claims_must_be_integers_in_range() {
        let (kp, jwk) = es256();
        let rng = SystemRandom::new();
        let sign = |m: &[u8]| kp.sign(&rng, m).unwrap().as_ref().to_vec();
        let now = 1_700_000_000i64;
        let bad: [(&str, Value); 9] = [
            ("exp", json!(1e12)),
            ("exp", json!(1.5)),
            ("exp", json!("2030")),
            ("exp", json!(-1)),
            ("exp", json!(u64::MAX)),
            ("exp", json!(253_402_300_800u64)),
            ("nbf", json!("2030")),
            ("nbf", json!(1.7e9)),
            ("iat", json!(true)),
        ];
        for (claim, v) in bad {
            let mut c = json!({"iss": "i", "exp": now + 600});
            c[claim] = v.clone();
            let t = token(json!({"alg": "ES256"}), c, sign);
            let e = parse(&t).unwrap().verify(&jwk, now, 60).map(|_| ()).unwrap_err();
            assert_eq!(e.reason(), "token-time-claim", "{claim}: {v}: {e}");
            assert_eq!(e, JwtError::TimeClaim(claim));
            assert!(e.to_string().contains(&format!("`{claim}`")), "{claim}: {v}: {e}");
        }
        // Integers in range, at the edges, are accepted.
        for exp in [now + 1, 253_402_300_799] {
            let t = token(json!({"alg": "ES256"}), json!({"exp": exp, "nbf": 0, "iat": now}), sign);
            parse(&t).unwrap().verify(&jwk, now, 0).unwrap();
        }
    }

    /// A token issued in the future (beyond the clock-skew leeway) is refused: a clock that
    /// runs ahead at the issuer, or a token minted to be used later, is not valid yet.
    #[test]
    fn a_token_issued_in_the_future_is_refused() {
        let (kp, jwk) = es256();
        let rng = SystemRandom::new();
        let sign = |m: &[u8]| kp.sign(&rng, m).unwrap().as_ref().to_vec();
        let now = 1_700_000_000i64;
        let t = token(json!({"alg": "ES256"}), json!({"exp": now + 3600, "iat": now + 61}), sign);
        let e = parse(&t).unwrap().verify(&jwk, now, 60).map(|_| ()).unwrap_err();
        assert_eq!(e.reason(), "token-issued-in-future", "{e}");
        assert_eq!(e, JwtError::IssuedInFuture);
        assert!(e.to_string().contains("`iat`"), "{e}");
        // Within the leeway, it is accepted; with a wider leeway too.
        let t = token(json!({"alg": "ES256"}), json!({"exp": now + 3600, "iat": now + 60}), sign);
        parse(&t).unwrap().verify(&jwk, now, 60).unwrap();
        let t = token(json!({"alg": "ES256"}), json!({"exp": now + 3600, "iat": now + 200}), sign);
        parse(&t).unwrap().verify(&jwk, now, 300).unwrap();
    }

    #[test]
    fn a_key_set_keeps_the_first_usable_member_of_each_kid_among_the_first_64() {
        let rsa = |kid: &str, alg: &str| json!({"kty": "RSA", "kid": kid, "alg": alg, "n": b64(&[0xff; 256]), "e": "AQAB"});
        let doc = json!({"keys": [
            {"kty": "oct", "kid": "a", "k": "c2VjcmV0"},
            rsa("a", "RS384"),
            rsa("a", "RS256"),
            rsa("b", "PS256"),
        ]});
        let set = key_set(&doc).unwrap();
        assert_eq!(set.len(), 2);
        assert!(set["a"].allows(Alg::Rs384) && !set["a"].allows(Alg::Rs256), "the first usable `a`");
        assert!(set["b"].allows(Alg::Ps256));
        let many: Vec<Value> = (0..70).map(|i| rsa(&format!("k{i}"), "RS256")).collect();
        let set = key_set(&json!({ "keys": many })).unwrap();
        assert_eq!(set.len(), MAX_KEYS);
        assert!(set.contains_key("k63") && !set.contains_key("k64"));
        for bad in [json!({}), json!({"keys": {}}), json!([]), json!("keys")] {
            assert_eq!(key_set(&bad).unwrap_err(), JwksError::NoKeys, "{bad}");
        }
    }

    #[test]
    fn unusable_jwks_members_are_skipped() {
        let skip = [
            json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}),
            json!({"kty": "RSA", "kid": "small", "n": b64(&[0xff; 128]), "e": "AQAB"}),
            json!({"kty": "RSA", "n": b64(&[0xff; 256]), "e": "AQAB"}),
            json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": b64(&[0xff; 256]), "e": "AQAB"}),
            json!({"kty": "RSA", "kid": "hs", "alg": "HS256", "n": b64(&[0xff; 256]), "e": "AQAB"}),
            json!({"kty": "RSA", "kid": "es", "alg": "ES256", "n": b64(&[0xff; 256]), "e": "AQAB"}),
            json!({"kty": "EC", "kid": "c", "crv": "P-521", "x": "AA", "y": "AA"}),
        ];
        for j in skip {
            assert!(Jwk::from_json(&j).is_none(), "{j}");
        }
        let rsa = Jwk::from_json(
            &json!({"kty": "RSA", "kid": "r", "alg": "RS256", "n": b64(&[0xff; 256]), "e": "AQAB"}),
        )
        .unwrap();
        assert!(rsa.allows(Alg::Rs256) && !rsa.allows(Alg::Ps256) && !rsa.allows(Alg::Es256));
    }
}
