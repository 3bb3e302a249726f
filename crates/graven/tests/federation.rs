//! OIDC/JWT federation and mTLS with SPIFFE IDs, end to end: the real binary on a free
//! loopback port, a JWKS served by a local HTTP server with rotating keys, and certificates
//! made in the test with real TLS handshakes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64URL};
use common::{Resp, Server};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

// ---------------------------------------------------------------- the server under test

fn start(data: &Path, config: &str) -> Server {
    std::fs::create_dir_all(data).unwrap();
    let cfg = data.join("test.toml");
    std::fs::write(&cfg, config).unwrap();
    common::start(data, &["--config", cfg.to_str().unwrap()])
}

/// Plain-HTTP requests through ureq.
fn http(s: &Server, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Resp {
    let a = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent();
    let url = format!("http://{}{path}", s.addr);
    let mut r = match (method, token) {
        ("GET", Some(t)) => a.get(&url).header("Authorization", &format!("Bearer {t}")).call(),
        ("GET", None) => a.get(&url).call(),
        ("POST", Some(t)) => a
            .post(&url)
            .header("Authorization", &format!("Bearer {t}"))
            .header("Content-Type", "application/json")
            .send(body.unwrap_or("{}").as_bytes()),
        ("POST", None) => {
            a.post(&url).header("Content-Type", "application/json").send(body.unwrap_or("{}").as_bytes())
        }
        m => panic!("{m:?}"),
    }
    .unwrap();
    Resp { status: r.status().as_u16(), body: r.body_mut().read_to_string().unwrap_or_default() }
}

/// Runs a request that must be refused with `status`, and checks that it appended nothing but
/// one `denied` record, which it returns. Denied records are rate-limited (a burst of 10 per
/// client address, then 2 a second), so a request whose record was dropped is retried.
fn refused(size: &dyn Fn() -> u64, event: &dyn Fn(u64) -> Value, status: u16, f: &dyn Fn() -> Resp) -> Value {
    for _ in 0..5 {
        let before = size();
        let r = f();
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(r.json()["status"], status, "a problem document");
        let after = size();
        assert!(after <= before + 1, "a refused request appended {} events", after - before);
        if after == before + 1 {
            let e = event(before);
            assert_eq!(e["outcome"], "denied", "{e}");
            assert_eq!(e["action"], "graven.access.denied", "{e}");
            return e;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("no denied record was appended");
}

fn create_identity(post: &dyn Fn(&str, Value) -> Resp, id: &str, kind: &str, allow: &[&str]) {
    let r = post(
        "/v1/identities",
        json!({"id": id, "kind": kind, "owner": "team-platform", "role": "writer", "allowed_actions": allow}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

// ---------------------------------------------------------------- a JWKS on loopback

/// A tiny issuer: `/.well-known/openid-configuration` and `/jwks`, whose key set the test
/// replaces at will. Counts the key-set fetches.
struct Issuer {
    url: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicU64>,
}

fn issuer() -> Issuer {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let jwks = Arc::new(Mutex::new(json!({"keys": []})));
    let fetches = Arc::new(AtomicU64::new(0));
    let (j, f, u) = (jwks.clone(), fetches.clone(), url.clone());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req).lines().next().unwrap_or("").to_owned();
            let body = if line.starts_with("GET /.well-known/openid-configuration ") {
                json!({"issuer": u, "jwks_uri": format!("{u}/jwks")}).to_string()
            } else if line.starts_with("GET /jwks ") {
                f.fetch_add(1, Ordering::SeqCst);
                j.lock().unwrap().to_string()
            } else {
                let _ =
                    c.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                continue;
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = c.write_all(head.as_bytes());
            let _ = c.write_all(body.as_bytes());
        }
    });
    Issuer { url, jwks, fetches }
}

impl Issuer {
    fn publish(&self, keys: &[&Key]) {
        *self.jwks.lock().unwrap() = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    }
}

enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

struct Key {
    kid: String,
    signer: Signer,
}

fn b64(b: &[u8]) -> String {
    B64URL.encode(b)
}

fn ec_key(kid: &str) -> Key {
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pk8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let kp = EcdsaKeyPair::from_pkcs8(alg, pk8.as_ref(), &rng).unwrap();
    Key { kid: kid.into(), signer: Signer::Ec(kp) }
}

/// RSA keys cannot be generated by ring; this one was made for these tests with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`.
fn rsa_key(kid: &str) -> Key {
    let pem = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oidc-test-rsa-2048.pk8.pem"),
    )
    .unwrap();
    let b: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(b).unwrap();
    Key { kid: kid.into(), signer: Signer::Rsa(RsaKeyPair::from_pkcs8(&der).unwrap()) }
}

impl Key {
    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Ec(_) => "ES256",
            Signer::Rsa(_) => "RS256",
        }
    }

    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Ec(kp) => {
                let p = kp.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
                       "x": b64(&p[1..33]), "y": b64(&p[33..])})
            }
            Signer::Rsa(kp) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
            }
        }
    }

    /// A token with this key's `alg` and `kid` unless `header` overrides them.
    fn sign(&self, header: Value, claims: &Value) -> String {
        let mut h = json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"});
        for (k, v) in header.as_object().unwrap() {
            h[k] = v.clone();
        }
        let input = format!("{}.{}", b64(h.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Ec(kp) => kp.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Rsa(kp) => {
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig).unwrap();
                sig
            }
        };
        format!("{input}.{}", b64(&sig))
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

const GH_SUB: &str = "repo:acme/payments:ref:refs/heads/main";
const K8S_SUB: &str = "system:serviceaccount:prod:deployer";

fn claims(iss: &str, sub: &str) -> Value {
    json!({"iss": iss, "sub": sub, "aud": "graven", "iat": now(), "exp": now() + 600,
           "jti": format!("jti-{}", now())})
}

fn oidc_config(iss: &str, settings: &str, jwks_uri: bool) -> String {
    let uri = if jwks_uri { format!("jwks_uri = \"{iss}/jwks\"") } else { String::new() };
    format!(
        r#"
[oidc]
leeway_secs = 5
{settings}

[[oidc.issuer]]
issuer = "{iss}"
{uri}

[[oidc.policy]]
issuer = "{iss}"
audience = "graven"
identity = "ci:payments-deploy"
claims = {{ sub = "{GH_SUB}" }}

[[oidc.policy]]
issuer = "{iss}"
audience = "graven"
identity = "workload:deployer"
claims_glob = {{ sub = "system:serviceaccount:prod:deploy*" }}

[[oidc.policy]]
issuer = "{iss}"
audience = "graven"
identity = "ci:unregistered"
claims = {{ sub = "repo:acme/nobody" }}
"#
    )
}

struct Plain<'a>(&'a Server);

impl Plain<'_> {
    fn size(&self) -> u64 {
        http(self.0, "GET", "/v1/log", Some(&self.0.token), None).json()["tree_size"].as_u64().unwrap()
    }
    fn event(&self, i: u64) -> Value {
        let r = http(self.0, "GET", &format!("/v1/events/{i}"), Some(&self.0.token), None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["event"].clone()
    }
    fn admin_post(&self, path: &str, body: Value) -> Resp {
        http(self.0, "POST", path, Some(&self.0.token), Some(&body.to_string()))
    }
    fn post_event(&self, token: &str, body: &str) -> Resp {
        http(self.0, "POST", "/v1/events", Some(token), Some(body))
    }
    fn refused(&self, status: u16, token: &str, action: &str) -> Value {
        let body = json!({"action": action}).to_string();
        refused(&|| self.size(), &|i| self.event(i), status, &|| self.post_event(token, &body))
    }
}

#[test]
fn oidc_tokens_are_attributed_and_follow_key_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let iss = issuer();
    let (ec1, ec2, rsa1) = (ec_key("ec-1"), ec_key("ec-2"), rsa_key("rsa-1"));
    iss.publish(&[&ec1, &rsa1]);
    // No jwks_uri: found through discovery. A short TTL and refetch interval to see rotation.
    let settings = "jwks_ttl_ms = 1500\njwks_refetch_interval_ms = 300";
    let s = start(&tmp.path().join("data"), &oidc_config(&iss.url, settings, false));
    let p = Plain(&s);
    create_identity(&|path, b| p.admin_post(path, b), "ci:payments-deploy", "ci_job", &[]);
    create_identity(&|path, b| p.admin_post(path, b), "workload:deployer", "workload", &["deploy.*"]);

    // ES256 with a nested delegation chain, and a body claiming to be someone else.
    let mut c = claims(&iss.url, GH_SUB);
    c["jti"] = json!("run-4242-attempt-1");
    c["act"] = json!({"sub": "user:alice", "iss": "https://idp.example", "act": {"sub": "svc:orchestrator"}});
    let t = ec1.sign(json!({}), &c);
    let r = p.post_event(&t, r#"{"action":"deployment.create","actor":{"id":"admin","auth":"api_key"}}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let e = p.event(r.json()["index"].as_u64().unwrap());
    assert_eq!(
        e["actor"],
        json!({"id": "ci:payments-deploy", "kind": "ci_job", "auth": "oidc", "credential": iss.url,
               "issuer": iss.url, "subject": GH_SUB, "jti": "run-4242-attempt-1",
               "on_behalf_of": [
                   {"id": "user:alice", "via": "rfc8693-act", "issuer": "https://idp.example"},
                   {"id": "svc:orchestrator", "via": "rfc8693-act"}]}),
        "{e}"
    );
    assert_eq!(e["claimed"]["actor"], json!({"id": "admin", "auth": "api_key"}), "only `claimed` changes");

    // RS256, a glob policy, and the mapped identity's allowed actions.
    let t = rsa1.sign(json!({}), &claims(&iss.url, K8S_SUB));
    let r = p.post_event(&t, r#"{"action":"deploy.rollout"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let e = p.event(r.json()["index"].as_u64().unwrap());
    assert_eq!(
        (e["actor"]["id"].as_str(), e["actor"]["kind"].as_str()),
        (Some("workload:deployer"), Some("workload"))
    );
    assert_eq!(e["actor"]["subject"], K8S_SUB);
    let d = p.refused(403, &t, "secret.read");
    assert_eq!(d["details"]["reason"], "action-not-allowed", "{d}");
    assert_eq!(d["actor"]["id"], "workload:deployer", "{d}");
    // A writer token cannot read.
    assert_eq!(http(&s, "GET", "/v1/events/0", Some(&t), None).status, 403);
    let fetches_before_rotation = iss.fetches.load(Ordering::SeqCst);
    assert_eq!(fetches_before_rotation, 1, "one fetch served every token so far");

    // Rotation: the issuer adds ec-2. A token with the new kid triggers one refetch.
    iss.publish(&[&ec1, &ec2, &rsa1]);
    std::thread::sleep(Duration::from_millis(400));
    let r =
        p.post_event(&ec2.sign(json!({}), &claims(&iss.url, GH_SUB)), r#"{"action":"deployment.create"}"#);
    assert_eq!(r.status, 201, "a new key is accepted after rotation: {}", r.body);
    assert!(iss.fetches.load(Ordering::SeqCst) > fetches_before_rotation);

    // The issuer retires ec-1. Once the cache has expired, ec-1 tokens are refused.
    iss.publish(&[&ec2, &rsa1]);
    std::thread::sleep(Duration::from_millis(1700));
    let old = ec1.sign(json!({}), &claims(&iss.url, GH_SUB));
    let d = p.refused(401, &old, "deployment.create");
    assert_eq!(d["details"]["reason"], "unknown-kid", "{d}");
    let r =
        p.post_event(&ec2.sign(json!({}), &claims(&iss.url, GH_SUB)), r#"{"action":"deployment.create"}"#);
    assert_eq!(r.status, 201, "the current key still works: {}", r.body);
}

#[test]
fn oidc_security_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    let iss = issuer();
    let (ec1, rsa1, stranger) = (ec_key("ec-1"), rsa_key("rsa-1"), ec_key("ec-unknown"));
    iss.publish(&[&ec1, &rsa1]);
    // Keys are kept for long and refetched at most once a minute.
    let settings = "jwks_ttl_ms = 600000\njwks_refetch_interval_ms = 60000";
    let s = start(&tmp.path().join("data"), &oidc_config(&iss.url, settings, true));
    let p = Plain(&s);
    create_identity(&|path, b| p.admin_post(path, b), "ci:payments-deploy", "ci_job", &[]);
    let good = claims(&iss.url, GH_SUB);
    let r = p.post_event(&ec1.sign(json!({}), &good), r#"{"action":"warm.up"}"#);
    assert_eq!(r.status, 201, "{}", r.body);

    let reason = |status: u16, token: &str, expect: &str| {
        let d = p.refused(status, token, "matrix.attempt");
        assert_eq!(d["details"]["reason"], expect, "{d}");
        assert_eq!(
            d["actor"]["id"],
            if expect == "identity-disabled" { "ci:payments-deploy" } else { "graven:server" }
        );
    };
    let parts = |t: &str| t.split('.').map(str::to_owned).collect::<Vec<_>>();
    let valid = ec1.sign(json!({}), &good);
    let vp = parts(&valid);

    // alg: none, with and without a signature part.
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), vp[1]);
    let d = p.refused(401, &none, "matrix.attempt");
    assert!(d["details"]["reason"].as_str().unwrap().starts_with("token-"), "{d}");
    reason(401, &format!("{}.{}.{}", b64(br#"{"alg":"none"}"#), vp[1], vp[2]), "token-algorithm");

    // HS256 "signed" with the RSA public key (as the issuer publishes it) as the HMAC secret.
    let secret = rsa1.jwk().to_string();
    let h = b64(json!({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}).to_string().as_bytes());
    let input = format!("{h}.{}", vp[1]);
    let mac =
        ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()), input.as_bytes());
    reason(401, &format!("{input}.{}", b64(mac.as_ref())), "token-algorithm");
    // The same confusion with the header claiming an RSA algorithm: a signature check fails.
    let h = b64(json!({"alg": "RS256", "kid": "rsa-1"}).to_string().as_bytes());
    let input = format!("{h}.{}", vp[1]);
    let mac =
        ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()), input.as_bytes());
    reason(401, &format!("{input}.{}", b64(mac.as_ref())), "token-signature");
    // An EC key named by an RS256 token: the key's type forbids it.
    reason(401, &ec1.sign(json!({"alg": "RS256"}), &good), "token-key-mismatch");

    // Tampered claims.
    let mut other = good.clone();
    other["sub"] = json!("repo:acme/payments:ref:refs/heads/evil");
    reason(401, &format!("{}.{}.{}", vp[0], b64(other.to_string().as_bytes()), vp[2]), "token-signature");

    // Wrong issuer (signed by a trusted key, but naming an issuer not configured).
    let mut c = good.clone();
    c["iss"] = json!("http://127.0.0.1:1");
    reason(401, &ec1.sign(json!({}), &c), "unknown-issuer");
    // Wrong audience.
    let mut c = good.clone();
    c["aud"] = json!(["other-service"]);
    reason(401, &ec1.sign(json!({}), &c), "audience-mismatch");
    // Expired, beyond the leeway; not yet valid; no expiry at all.
    let mut c = good.clone();
    c["exp"] = json!(now() - 60);
    reason(401, &ec1.sign(json!({}), &c), "token-expired");
    let mut c = good.clone();
    c["nbf"] = json!(now() + 600);
    reason(401, &ec1.sign(json!({}), &c), "token-not-yet-valid");
    let mut c = good.clone();
    c.as_object_mut().unwrap().remove("exp");
    reason(401, &ec1.sign(json!({}), &c), "token-no-expiry");
    // Claims that match no trust policy.
    reason(
        401,
        &ec1.sign(json!({}), &claims(&iss.url, "repo:acme/payments:ref:refs/heads/dev")),
        "no-matching-policy",
    );
    // A policy that names an identity nobody registered.
    reason(401, &ec1.sign(json!({}), &claims(&iss.url, "repo:acme/nobody")), "unknown-identity");

    // Unknown kid: refused, and a flood of them refetches the JWKS at most once a minute.
    let started = Instant::now();
    let fetches = iss.fetches.load(Ordering::SeqCst);
    for _ in 0..5 {
        reason(401, &stranger.sign(json!({}), &good), "unknown-kid");
    }
    let allowed = 1 + started.elapsed().as_secs() / 60;
    let extra = iss.fetches.load(Ordering::SeqCst) - fetches;
    assert!(extra <= allowed, "{extra} fetches for 5 unknown-kid tokens");

    // The mapped identity disabled: its tokens stop working; enabled again, they work.
    let r = p.admin_post("/v1/identities/ci:payments-deploy/disable", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    reason(401, &valid, "identity-disabled");
    let r = p.admin_post("/v1/identities/ci:payments-deploy/enable", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = p.post_event(&valid, r#"{"action":"after.enable"}"#);
    assert_eq!(r.status, 201, "{}", r.body);

    // No attempted event reached the log: only denied records and the accepted ones.
    let n = p.size();
    let actions: Vec<String> =
        (0..n).map(|i| p.event(i)["action"].as_str().unwrap_or_default().to_owned()).collect();
    assert!(!actions.iter().any(|a| a == "matrix.attempt"), "{actions:?}");
    // API keys work beside tokens.
    assert_eq!(http(&s, "GET", "/v1/log", Some(&s.token), None).status, 200);
}

/// A loopback HTTP server answering each request with `answer(its own URL, path)`: the status
/// line and headers after `HTTP/1.1 `, and the body. Records the path of every request.
fn tiny_server(
    answer: impl Fn(&str, &str) -> (String, String) + Send + 'static,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (u, log) = (url.clone(), seen.clone());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req).lines().next().unwrap_or("").to_owned();
            let path = line.split(' ').nth(1).unwrap_or("").to_owned();
            log.lock().unwrap().push(path.clone());
            let (head, body) = answer(&u, &path);
            let resp = format!(
                "HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = c.write_all(resp.as_bytes());
        }
    });
    (url, seen)
}

fn json_ok(body: Value) -> (String, String) {
    ("200 OK\r\nContent-Type: application/json".into(), body.to_string())
}

fn redirect(to: &str) -> (String, String) {
    (format!("302 Found\r\nLocation: {to}"), String::new())
}

/// The issuer's key set and discovery document may be reached through a redirect only within
/// the origin (scheme, host and port) that was asked: a redirect to another origin is refused,
/// so whoever controls a redirect on the issuer's host cannot substitute their own keys.
#[test]
fn oidc_fetches_refuse_redirects_to_another_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let (good, rogue) = (ec_key("good"), ec_key("rogue"));
    // The attacker's server, on another port of the loopback (another origin).
    let rogue_jwks = json!({"keys": [rogue.jwk()]});
    let (rogue_url, rogue_seen) = tiny_server(move |u, path| match path {
        "/jwks" => json_ok(rogue_jwks.clone()),
        "/.well-known/openid-configuration" => json_ok(json!({"issuer": u, "jwks_uri": format!("{u}/jwks")})),
        _ => ("404 Not Found".into(), String::new()),
    });
    // Issuer A: discovery is fine, its key set redirects to the attacker.
    let r = rogue_url.clone();
    let (a, _) = tiny_server(move |u, path| match path {
        "/.well-known/openid-configuration" => json_ok(json!({"issuer": u, "jwks_uri": format!("{u}/jwks")})),
        "/jwks" => redirect(&format!("{r}/jwks")),
        _ => ("404 Not Found".into(), String::new()),
    });
    // Issuer B: its discovery document redirects to the attacker's.
    let r = rogue_url.clone();
    let (b, _) = tiny_server(move |_, path| match path {
        "/.well-known/openid-configuration" => redirect(&format!("{r}/.well-known/openid-configuration")),
        _ => ("404 Not Found".into(), String::new()),
    });
    // Issuer C: a redirect within its own origin (a relative Location) is followed.
    let good_jwks = json!({"keys": [good.jwk()]});
    let (c, _) = tiny_server(move |_, path| match path {
        "/jwks" => redirect("/keys/current"),
        "/keys/current" => json_ok(good_jwks.clone()),
        _ => ("404 Not Found".into(), String::new()),
    });
    let mut config = String::from("[oidc]\nleeway_secs = 5\n");
    for (iss, jwks) in [(&a, None), (&b, None), (&c, Some(format!("{c}/jwks")))] {
        config += &format!("\n[[oidc.issuer]]\nissuer = \"{iss}\"\n");
        if let Some(j) = jwks {
            config += &format!("jwks_uri = \"{j}\"\n");
        }
        config += &format!(
            "\n[[oidc.policy]]\nissuer = \"{iss}\"\naudience = \"graven\"\nidentity = \"ci:payments-deploy\"\nclaims = {{ sub = \"{GH_SUB}\" }}\n"
        );
    }
    let s = start(&tmp.path().join("data"), &config);
    let p = Plain(&s);
    create_identity(&|path, b| p.admin_post(path, b), "ci:payments-deploy", "ci_job", &[]);

    for iss in [&a, &b] {
        let t = rogue.sign(json!({}), &claims(iss, GH_SUB));
        let d = p.refused(401, &t, "redirect.attempt");
        assert_eq!(d["details"]["reason"], "unknown-kid", "{iss}: {d}");
    }
    assert!(
        rogue_seen.lock().unwrap().is_empty(),
        "the server followed a redirect to another origin: {:?}",
        rogue_seen.lock().unwrap()
    );
    let r = p.post_event(&good.sign(json!({}), &claims(&c, GH_SUB)), r#"{"action":"deployment.create"}"#);
    assert_eq!(r.status, 201, "a same-origin redirect is followed: {}", r.body);
}

/// `exp`, `nbf` and `iat` must be integers (a float or a string is not rounded or skipped), and
/// a token issued in the future is refused, end to end with a denied record.
#[test]
fn oidc_time_claims_are_integers_and_not_issued_in_the_future() {
    let tmp = tempfile::tempdir().unwrap();
    let iss = issuer();
    let ec1 = ec_key("ec-1");
    iss.publish(&[&ec1]);
    let s = start(&tmp.path().join("data"), &oidc_config(&iss.url, "", true));
    let p = Plain(&s);
    create_identity(&|path, b| p.admin_post(path, b), "ci:payments-deploy", "ci_job", &[]);
    let r = p.post_event(&ec1.sign(json!({}), &claims(&iss.url, GH_SUB)), r#"{"action":"warm.up"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let cases = [
        ("exp", json!(1e12), "token-time-claim"),
        ("exp", json!((now() + 600) as f64 + 0.5), "token-time-claim"),
        ("nbf", json!("2030"), "token-time-claim"),
        ("iat", json!(now() + 3600), "token-issued-in-future"),
    ];
    for (claim, value, reason) in cases {
        let mut c = claims(&iss.url, GH_SUB);
        c[claim] = value.clone();
        let d = p.refused(401, &ec1.sign(json!({}), &c), "time.attempt");
        assert_eq!(d["details"]["reason"], reason, "{claim} = {value}: {d}");
    }
}

// ---------------------------------------------------------------- mTLS

struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    params: rcgen::CertificateParams,
}

fn ca(name: &str) -> Pki {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    Pki { ca: p.self_signed(&key).unwrap(), ca_key: key, params: p }
}

struct Leaf {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Pki {
    fn leaf(&self, dns: &[&str], uris: &[&str], client: bool, serial: u8) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        for u in uris {
            p.subject_alt_names.push(rcgen::SanType::URI((*u).try_into().unwrap()));
        }
        p.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x42, serial]));
        let issuer = rcgen::Issuer::from_params(&self.params, &self.ca_key);
        Leaf { cert: p.signed_by(&key, &issuer).unwrap(), key }
    }
}

/// One HTTPS request over a real TLS handshake, optionally with a client certificate.
fn https(
    addr: &str,
    ca: &Pki,
    client: Option<&Leaf>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<Resp> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.ca.der().clone()).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(l) => b
            .with_client_auth_cert(
                vec![l.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(l.key.serialize_der().into()),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // rustls reports a peer that closed without close_notify; the response is complete.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other("no response"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status"))?;
    // Bodies here are small; a chunked one is de-chunked crudely (one chunk).
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        rest.split("\r\n").nth(1).unwrap_or("").to_owned()
    } else {
        rest.to_owned()
    };
    Ok(Resp { status, body })
}

fn write_pem(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    p
}

#[test]
fn mtls_clients_are_attributed_by_spiffe_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = ca("graven test CA");
    let server = pki.leaf(&["localhost"], &[], false, 1);
    let mapped = pki.leaf(&[], &["spiffe://example.org/ns/prod/sa/payments"], true, 2);
    let direct = pki.leaf(&[], &["spiffe://example.org/ns/prod/sa/deployer"], true, 3);
    let no_spiffe = pki.leaf(&["client.example.org"], &["https://example.org/not-spiffe"], true, 4);
    let rogue = ca("rogue CA");
    let rogue_client = rogue.leaf(&[], &["spiffe://example.org/ns/prod/sa/deployer"], true, 5);
    let cert = write_pem(dir, "server.pem", &server.cert.pem());
    let key = write_pem(dir, "server.key", &server.key.serialize_pem());
    let ca_pem = write_pem(dir, "ca.pem", &pki.ca.pem());
    let config = format!(
        "tls_cert = {:?}\ntls_key = {:?}\nclient_ca = {:?}\n\n[spiffe_ids]\n\"spiffe://example.org/ns/prod/sa/payments\" = \"workload:payments\"\n",
        cert, key, ca_pem
    );
    let s = start(&dir.join("data"), &config);
    let req = |client: Option<&Leaf>, method: &str, path: &str, token: Option<&str>, body: &str| {
        https(&s.addr, &pki, client, method, path, token, body)
    };
    let admin = |method: &str, path: &str, body: Value| {
        req(None, method, path, Some(&s.token), &body.to_string()).unwrap()
    };
    let size = || admin("GET", "/v1/log", json!({})).json()["tree_size"].as_u64().unwrap();
    let event = |i: u64| admin("GET", &format!("/v1/events/{i}"), json!({})).json()["event"].clone();
    create_identity(&|p, b| admin("POST", p, b), "workload:payments", "workload", &[]);
    create_identity(&|p, b| admin("POST", p, b), "spiffe://example.org/ns/prod/sa/deployer", "workload", &[]);

    // A mapped SPIFFE ID; the body's claimed actor changes only `claimed`.
    let r = req(
        Some(&mapped),
        "POST",
        "/v1/events",
        None,
        r#"{"action":"payment.refund","actor":{"id":"admin"}}"#,
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let e = event(r.json()["index"].as_u64().unwrap());
    let fingerprint = {
        use sha2::Digest;
        graven_core::hex::encode(&sha2::Sha256::digest(mapped.cert.der()))
    };
    assert_eq!(
        e["actor"],
        json!({"id": "workload:payments", "kind": "workload", "auth": "mtls",
               "credential": "spiffe://example.org/ns/prod/sa/payments",
               "cert_serial": "4202", "cert_sha256": fingerprint}),
        "{e}"
    );
    assert_eq!(e["claimed"]["actor"]["id"], "admin");
    // A SPIFFE ID that is itself the identity id.
    let r = req(Some(&direct), "POST", "/v1/events", None, r#"{"action":"deploy.create"}"#).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let e = event(r.json()["index"].as_u64().unwrap());
    assert_eq!(e["actor"]["id"], "spiffe://example.org/ns/prod/sa/deployer");
    assert_eq!(e["actor"]["auth"], "mtls");
    // A writer's certificate cannot read.
    assert_eq!(req(Some(&direct), "GET", "/v1/events/0", None, "").unwrap().status, 403);

    // A certificate from the right CA without a SPIFFE ID: 401 and a denied record only.
    let d = refused(&size, &event, 401, &|| {
        req(Some(&no_spiffe), "POST", "/v1/events", None, r#"{"action":"mtls.attempt"}"#).unwrap()
    });
    assert_eq!(d["details"]["reason"], "no-spiffe-id", "{d}");
    // A certificate from an unknown CA: the handshake fails, nothing is appended.
    let before = size();
    let r = req(Some(&rogue_client), "POST", "/v1/events", None, r#"{"action":"mtls.attempt"}"#);
    assert!(r.is_err(), "a client certificate from an unknown CA was accepted: {r:?}");
    assert_eq!(size(), before);
    // No certificate and no header (client certificates are optional here): 401, not recorded.
    let r = req(None, "POST", "/v1/events", None, r#"{"action":"mtls.attempt"}"#).unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    // A disabled identity's certificate stops working.
    assert_eq!(admin("POST", "/v1/identities/workload:payments/disable", json!({})).status, 200);
    let d = refused(&size, &event, 401, &|| {
        req(Some(&mapped), "POST", "/v1/events", None, r#"{"action":"mtls.attempt"}"#).unwrap()
    });
    assert_eq!(d["details"]["reason"], "identity-disabled", "{d}");
    let n = size();
    assert!((0..n).all(|i| event(i)["action"] != "mtls.attempt"));
    drop(s);

    // client_auth = "required": a client without a certificate fails the handshake.
    let s = start(
        &dir.join("data2"),
        &config.replace("[spiffe_ids]", "client_auth = \"required\"\n[spiffe_ids]"),
    );
    let r = https(&s.addr, &pki, None, "GET", "/healthz", None, "");
    assert!(r.is_err(), "no client certificate, yet served: {r:?}");
    let r = https(&s.addr, &pki, Some(&direct), "GET", "/healthz", None, "").unwrap();
    assert_eq!(r.status, 200);
}

/// The server certificate (from `pki`) and its key, written to `dir`.
fn server_files(dir: &Path, pki: &Pki) -> (PathBuf, PathBuf) {
    let server = pki.leaf(&["localhost"], &[], false, 1);
    (
        write_pem(dir, "server.pem", &server.cert.pem()),
        write_pem(dir, "server.key", &server.key.serialize_pem()),
    )
}

/// SPIFFE X.509-SVID section 2: "An X.509 SVID MUST contain exactly one URI SAN". A
/// certificate with a SPIFFE ID and another URI is not an SVID and maps to no one (401 and a
/// denied record), whichever order its URIs are in.
#[test]
fn mtls_a_certificate_with_two_uri_sans_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = ca("graven test CA");
    let (cert, key) = server_files(dir, &pki);
    let ca_pem = write_pem(dir, "ca.pem", &pki.ca.pem());
    let s = start(
        &dir.join("data"),
        &format!("tls_cert = {cert:?}\ntls_key = {key:?}\nclient_ca = {ca_pem:?}\n"),
    );
    let req = |client: Option<&Leaf>, method: &str, path: &str, token: Option<&str>, body: &str| {
        https(&s.addr, &pki, client, method, path, token, body).unwrap()
    };
    let admin =
        |method: &str, path: &str, body: Value| req(None, method, path, Some(&s.token), &body.to_string());
    let size = || admin("GET", "/v1/log", json!({})).json()["tree_size"].as_u64().unwrap();
    let event = |i: u64| admin("GET", &format!("/v1/events/{i}"), json!({})).json()["event"].clone();
    let id = "spiffe://prod.example/ns/prod/sa/payments";
    create_identity(&|p, b| admin("POST", p, b), id, "workload", &[]);
    let one = pki.leaf(&[], &[id], true, 2);
    let r = req(Some(&one), "POST", "/v1/events", None, r#"{"action":"payment.refund"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    for (serial, uris) in [(3, [id, "https://prod.example/other"]), (4, ["https://prod.example/other", id])] {
        let two = pki.leaf(&[], &uris, true, serial);
        let d = refused(&size, &event, 401, &|| {
            req(Some(&two), "POST", "/v1/events", None, r#"{"action":"mtls.attempt"}"#)
        });
        assert_eq!(d["details"]["reason"], "no-spiffe-id", "{uris:?}: {d}");
    }
}

/// Each client CA vouches only for the SPIFFE trust domains listed with it: a certificate
/// that chains to the staging CA and names a production SPIFFE ID is refused (401 and a
/// denied record), though its chain is valid and the identity exists.
#[test]
fn mtls_each_client_ca_vouches_only_for_its_trust_domains() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (prod, staging) = (ca("prod CA"), ca("staging CA"));
    let (cert, key) = server_files(dir, &prod);
    let prod_pem = write_pem(dir, "prod-ca.pem", &prod.ca.pem());
    let staging_pem = write_pem(dir, "staging-ca.pem", &staging.ca.pem());
    let config = format!(
        "tls_cert = {cert:?}\ntls_key = {key:?}\n\n[[client_ca]]\nfile = {prod_pem:?}\ntrust_domains = [\"prod.example\"]\n\n[[client_ca]]\nfile = {staging_pem:?}\ntrust_domains = [\"staging.example\", \"qa.example\"]\n"
    );
    let s = start(&dir.join("data"), &config);
    let req = |client: Option<&Leaf>, method: &str, path: &str, token: Option<&str>, body: &str| {
        https(&s.addr, &prod, client, method, path, token, body).unwrap()
    };
    let admin =
        |method: &str, path: &str, body: Value| req(None, method, path, Some(&s.token), &body.to_string());
    let size = || admin("GET", "/v1/log", json!({})).json()["tree_size"].as_u64().unwrap();
    let event = |i: u64| admin("GET", &format!("/v1/events/{i}"), json!({})).json()["event"].clone();
    let (prod_id, staging_id) =
        ("spiffe://prod.example/ns/prod/sa/payments", "spiffe://staging.example/sa/ci");
    create_identity(&|p, b| admin("POST", p, b), prod_id, "workload", &[]);
    create_identity(&|p, b| admin("POST", p, b), staging_id, "workload", &[]);

    // Each CA for its own domain.
    for (client, id) in [
        (prod.leaf(&[], &[prod_id], true, 2), prod_id),
        (staging.leaf(&[], &[staging_id], true, 3), staging_id),
    ] {
        let r = req(Some(&client), "POST", "/v1/events", None, r#"{"action":"deploy.create"}"#);
        assert_eq!(r.status, 201, "{id}: {}", r.body);
        assert_eq!(event(r.json()["index"].as_u64().unwrap())["actor"]["id"], id);
    }
    // The staging CA naming a production identity, and the production CA a staging one.
    for client in [staging.leaf(&[], &[prod_id], true, 4), prod.leaf(&[], &[staging_id], true, 5)] {
        let d = refused(&size, &event, 401, &|| {
            req(Some(&client), "POST", "/v1/events", None, r#"{"action":"mtls.attempt"}"#)
        });
        assert_eq!(d["details"]["reason"], "trust-domain-not-vouched", "{d}");
        assert_eq!(d["actor"]["id"], "graven:server", "{d}");
    }
    let n = size();
    assert!((0..n).all(|i| event(i)["action"] != "mtls.attempt"));
    drop(s);

    // One CA given by flag, bound by --client-ca-trust-domain: its certificate for another
    // domain is refused, for its own domain accepted.
    let data = dir.join("data2");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = write_pem(&data, "test.toml", &format!("tls_cert = {cert:?}\ntls_key = {key:?}\n"));
    let s = common::start(
        &data,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--client-ca",
            prod_pem.to_str().unwrap(),
            "--client-ca-trust-domain",
            "prod.example",
        ],
    );
    let req = |client: Option<&Leaf>, method: &str, path: &str, token: Option<&str>, body: &str| {
        https(&s.addr, &prod, client, method, path, token, body).unwrap()
    };
    let admin =
        |method: &str, path: &str, body: Value| req(None, method, path, Some(&s.token), &body.to_string());
    let size = || admin("GET", "/v1/log", json!({})).json()["tree_size"].as_u64().unwrap();
    let event = |i: u64| admin("GET", &format!("/v1/events/{i}"), json!({})).json()["event"].clone();
    create_identity(&|p, b| admin("POST", p, b), prod_id, "workload", &[]);
    create_identity(&|p, b| admin("POST", p, b), staging_id, "workload", &[]);
    let r = req(
        Some(&prod.leaf(&[], &[prod_id], true, 6)),
        "POST",
        "/v1/events",
        None,
        r#"{"action":"deploy.create"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let other = prod.leaf(&[], &[staging_id], true, 7);
    let d = refused(&size, &event, 401, &|| {
        req(Some(&other), "POST", "/v1/events", None, r#"{"action":"mtls.attempt"}"#)
    });
    assert_eq!(d["details"]["reason"], "trust-domain-not-vouched", "{d}");
}
