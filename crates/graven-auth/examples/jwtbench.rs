#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)] // a benchmark reads the clock; the library never does
//! JWT verification cost per core: `cargo run --release -p graven-server --example jwtbench [-- n]`.
//!
//! Signs one RS256 (2048-bit) and one ES256 token, then verifies each `n` times (default 20,000)
//! on this thread the way a request does: parse the compact token, check the signature with the
//! key parsed from the JWKS, check the times. Prints verifications per second of this thread's
//! CPU time. (The JWKS lookup is one hash-map probe and is not timed.)
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64URL};
use graven_auth::jwt::{self, Jwk};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::json;

fn cpu_secs() -> f64 {
    // Thread CPU time from /proc, so other processes on the machine do not inflate the figure.
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn time(name: &str, n: u32, token: &str, key: &Jwk) {
    let (wall, cpu) = (Instant::now(), cpu_secs());
    for _ in 0..n {
        let claims = jwt::parse(token).unwrap().verify(key, 1_000, 60).unwrap();
        std::hint::black_box(claims);
    }
    let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu_secs() - cpu);
    println!(
        "{name}: {n} verifications, {:.1} µs each (wall), {:.0}/s per core (thread CPU {cpu:.2} s)",
        wall * 1e6 / f64::from(n),
        f64::from(n) / if cpu > 0.0 { cpu } else { wall }
    );
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rng = SystemRandom::new();
    let b64 = |b: &[u8]| B64URL.encode(b);
    let claims = json!({"iss": "https://issuer.example", "sub": "repo:acme/payments:ref:refs/heads/main",
                        "aud": "graven", "exp": 2_000, "iat": 900, "jti": "abc"});
    let input = |alg: &str| {
        format!(
            "{}.{}",
            b64(json!({"alg": alg, "kid": "k"}).to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        )
    };

    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../graven/tests/fixtures/oidc-test-rsa-2048.pk8.pem"
    ))
    .unwrap();
    let der = STANDARD.decode(pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()).unwrap();
    let rsa = RsaKeyPair::from_pkcs8(&der).unwrap();
    let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public());
    let rsa_jwk = Jwk::from_json(&json!({"kty": "RSA", "kid": "k", "n": b64(&c.n), "e": b64(&c.e)})).unwrap();
    let rs_input = input("RS256");
    let mut sig = vec![0; rsa.public().modulus_len()];
    rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, rs_input.as_bytes(), &mut sig).unwrap();
    let rs_token = format!("{rs_input}.{}", b64(&sig));

    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pk8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(alg, pk8.as_ref(), &rng).unwrap();
    let p = ec.public_key().as_ref();
    let ec_jwk = Jwk::from_json(
        &json!({"kty": "EC", "crv": "P-256", "kid": "k", "x": b64(&p[1..33]), "y": b64(&p[33..])}),
    )
    .unwrap();
    let es_input = input("ES256");
    let es_token = format!("{es_input}.{}", b64(ec.sign(&rng, es_input.as_bytes()).unwrap().as_ref()));

    time("RS256", n, &rs_token, &rsa_jwk);
    time("ES256", n, &es_token, &ec_jwk);
}
