//! OIDC / JWT workload identity federation: a bearer JWT from a trusted issuer (GitHub Actions,
//! a Kubernetes cluster, any issuer with a JWKS) is mapped by trust policies to a registered
//! identity, whose role and allowed actions then apply as for an API key.
//!
//! **Per-request cost.** Parsing the token, one hash-map lookup of its `kid` in the issuer's
//! cached key set (keys parsed once per fetch), one signature check, and a scan of the policies
//! of its issuer. No network and no disk, except when the cache must be refilled (below).
//!
//! **JWKS cache.** Each issuer's key set is fetched on first use, from `jwks_uri` or from the
//! `jwks_uri` named by `<issuer>/.well-known/openid-configuration`, and kept for `jwks_ttl_ms`.
//! A token whose `kid` the cache does not hold, or a stale cache, triggers one refetch, but at
//! most one per issuer per `jwks_refetch_interval_ms`: a flood of tokens with made-up `kid`s
//! cannot make the server hammer the issuer. Fetches run off the async runtime, one at a time
//! per issuer, with a timeout and a size limit on every document. If a refetch fails, the
//! previous keys stay in use until a later refetch succeeds.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use graven_core::jcs::Value as J;
use serde::Deserialize;
use serde_json::Value;

use crate::event::Actor;
use crate::identity::glob_match;
use crate::jwt::{self, Jwk, JwtError};
use crate::registry::{Denial, Principal, Registry};

/// Largest discovery document or JWKS read.
const MAX_DOCUMENT: u64 = 64 << 10;
/// Keys taken from one JWKS.
const MAX_KEYS: usize = 64;
const MAX_ISSUERS: usize = 64;
const MAX_POLICIES: usize = 1024;
/// Nesting of `act` claims recorded; deeper delegation chains are refused.
pub const MAX_DELEGATION_DEPTH: usize = 8;

/// The `[oidc]` table of the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Tolerance for clock skew on `exp` and `nbf`, in seconds (default 60).
    pub leeway_secs: Option<u64>,
    /// How long a fetched key set is used before it is refetched (default 300,000).
    pub jwks_ttl_ms: Option<u64>,
    /// Least time between two fetches of one issuer's keys (default 30,000).
    pub jwks_refetch_interval_ms: Option<u64>,
    /// Timeout of one fetch, connection to last byte (default 5,000).
    pub fetch_timeout_ms: Option<u64>,
    #[serde(default, rename = "issuer")]
    pub issuers: Vec<IssuerConfig>,
    #[serde(default, rename = "policy")]
    pub policies: Vec<PolicyConfig>,
}

/// `[[oidc.issuer]]`: an issuer whose tokens are accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exactly the token's `iss`, e.g. `https://token.actions.githubusercontent.com`.
    pub issuer: String,
    /// Where its keys are; if absent, found through `<issuer>/.well-known/openid-configuration`.
    pub jwks_uri: Option<String>,
}

/// `[[oidc.policy]]`: tokens of `issuer` for `audience` whose claims match every rule act as
/// `identity`. Policies are tried in file order; the first that matches wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub issuer: String,
    pub audience: String,
    pub identity: String,
    /// Claim name → the exact string it must hold.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// Claim name → a glob (`*` any run, `?` one character) its string must match.
    #[serde(default)]
    pub claims_glob: BTreeMap<String, String>,
}

/// An `http(s)` URL; plain `http` only to a loopback host (tests, a local issuer).
fn check_url(what: &str, u: &str) -> Result<(), String> {
    if let Some(rest) = u.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!("{what} {u:?} must use https (plain http only to a loopback address)"));
        }
    } else if !u.starts_with("https://") {
        return Err(format!("{what} {u:?} must be an https URL"));
    }
    if u.len() > 2048 || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{what} {u:?} is not a valid URL"));
    }
    Ok(())
}

impl OidcConfig {
    /// Checks every rule the file must obey; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.issuers.len() > MAX_ISSUERS || self.policies.len() > MAX_POLICIES {
            return Err(format!("at most {MAX_ISSUERS} issuers and {MAX_POLICIES} policies"));
        }
        let mut seen = std::collections::HashSet::new();
        for i in &self.issuers {
            check_url("oidc issuer", &i.issuer)?;
            if let Some(u) = &i.jwks_uri {
                check_url("jwks_uri", u)?;
            }
            if !seen.insert(i.issuer.as_str()) {
                return Err(format!("oidc issuer {:?} is listed twice", i.issuer));
            }
        }
        for (n, p) in self.policies.iter().enumerate() {
            let at = format!("oidc policy {} (identity {:?})", n + 1, p.identity);
            if !seen.contains(p.issuer.as_str()) {
                return Err(format!("{at}: issuer {:?} has no [[oidc.issuer]] entry", p.issuer));
            }
            crate::identity::check_id(&p.identity).map_err(|e| format!("{at}: {e}"))?;
            if p.audience.is_empty() {
                return Err(format!("{at}: audience must not be empty"));
            }
            if p.claims.is_empty() && p.claims_glob.is_empty() {
                return Err(format!(
                    "{at}: give at least one claim rule (claims or claims_glob), e.g. claims = {{ sub = \"...\" }}"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct KeySet {
    keys: HashMap<String, Arc<Jwk>>,
    fetched: Option<Instant>,
}

#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    /// The `jwks_uri` found by discovery, when none is configured.
    discovered: Option<String>,
}

#[derive(Debug)]
struct Issuer {
    issuer: String,
    jwks_uri: Option<String>,
    set: RwLock<Arc<KeySet>>,
    fetch: tokio::sync::Mutex<FetchState>,
    /// Fetches made (for metrics and tests).
    fetches: std::sync::atomic::AtomicU64,
}

impl Issuer {
    fn current(&self) -> Arc<KeySet> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The verifier of federated tokens: issuers with their cached keys, and the trust policies.
#[derive(Debug)]
pub struct Federation {
    issuers: HashMap<String, Arc<Issuer>>,
    policies: Vec<PolicyConfig>,
    leeway_s: i64,
    ttl: Duration,
    refetch: Duration,
    agent: ureq::Agent,
}

fn deny(reason: &'static str, message: impl Into<String>) -> Denial {
    Denial::Federated { reason, message: message.into() }
}

fn jwt_denial(e: JwtError) -> Denial {
    deny(e.reason(), e.to_string())
}

impl Federation {
    pub fn new(cfg: &OidcConfig) -> Result<Self, String> {
        cfg.validate()?;
        let timeout = Duration::from_millis(cfg.fetch_timeout_ms.unwrap_or(5_000));
        let agent =
            ureq::Agent::config_builder().timeout_global(Some(timeout)).max_redirects(3).build().new_agent();
        let issuers = cfg
            .issuers
            .iter()
            .map(|i| {
                let st = Issuer {
                    issuer: i.issuer.clone(),
                    jwks_uri: i.jwks_uri.clone(),
                    set: RwLock::new(Arc::new(KeySet { keys: HashMap::new(), fetched: None })),
                    fetch: tokio::sync::Mutex::new(FetchState::default()),
                    fetches: Default::default(),
                };
                (i.issuer.clone(), Arc::new(st))
            })
            .collect();
        Ok(Federation {
            issuers,
            policies: cfg.policies.clone(),
            leeway_s: cfg.leeway_secs.unwrap_or(60).min(3600) as i64,
            ttl: Duration::from_millis(cfg.jwks_ttl_ms.unwrap_or(300_000)),
            refetch: Duration::from_millis(cfg.jwks_refetch_interval_ms.unwrap_or(30_000)),
            agent,
        })
    }

    /// Key-set fetches made so far for `issuer`.
    pub fn fetches(&self, issuer: &str) -> u64 {
        self.issuers.get(issuer).map_or(0, |i| i.fetches.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Verifies a bearer JWT at `now_ms` and maps it to an identity of `registry`.
    pub async fn authenticate(
        &self,
        token: &str,
        registry: &Registry,
        now_ms: i64,
    ) -> Result<Arc<Principal>, Denial> {
        let unverified = jwt::parse(token).map_err(jwt_denial)?;
        let iss = unverified.issuer().unwrap_or("");
        let Some(issuer) = self.issuers.get(iss).cloned() else {
            return Err(deny("unknown-issuer", format!("tokens from issuer {iss:?} are not trusted here")));
        };
        let key = self.key(&issuer, unverified.kid.as_deref(), unverified.alg).await?;
        let claims = unverified.verify(&key, now_ms.div_euclid(1000), self.leeway_s).map_err(jwt_denial)?;
        let mut audience_ok = false;
        let mut chosen = None;
        for p in self.policies.iter().filter(|p| p.issuer == issuer.issuer) {
            if !claims.has_audience(&p.audience) {
                continue;
            }
            audience_ok = true;
            let exact = p.claims.iter().all(|(k, v)| claims.str(k) == Some(v.as_str()));
            if exact && p.claims_glob.iter().all(|(k, g)| claims.str(k).is_some_and(|s| glob_match(g, s))) {
                chosen = Some(p);
                break;
            }
        }
        let Some(policy) = chosen else {
            return Err(if audience_ok {
                deny("no-matching-policy", "the token is valid but its claims match no trust policy")
            } else {
                deny("audience-mismatch", "the token's audience (`aud`) is not one this server accepts")
            });
        };
        let delegation = delegation(claims.claims().get("act"))?;
        let mut extra = vec![("issuer".to_owned(), J::String(issuer.issuer.clone()))];
        if let Some(sub) = claims.str("sub") {
            extra.push(("subject".into(), J::String(sub.to_owned())));
        }
        if let Some(jti) = claims.str("jti") {
            extra.push(("jti".into(), J::String(jti.to_owned())));
        }
        if !delegation.is_empty() {
            extra.push(("on_behalf_of".into(), J::Array(delegation)));
        }
        registry.federated(
            &policy.identity,
            &issuer.issuer,
            |kind| Actor {
                id: policy.identity.clone(),
                kind: kind.as_str().into(),
                credential: issuer.issuer.clone(),
                auth: "oidc".into(),
                extra,
            },
            claims.claims().get("exp").and_then(Value::as_i64).map(|s| s.saturating_mul(1000)),
            now_ms,
        )
    }

    /// The key for `kid` (or the one key that fits `alg`, for a token without `kid`), from the
    /// cache, refetching the set at most once per refetch interval when it is stale or lacks it.
    async fn key(&self, issuer: &Arc<Issuer>, kid: Option<&str>, alg: jwt::Alg) -> Result<Arc<Jwk>, Denial> {
        let find = |set: &KeySet| match kid {
            Some(k) => set.keys.get(k).cloned(),
            None => {
                let mut fits = set.keys.values().filter(|k| k.allows(alg));
                match (fits.next(), fits.next()) {
                    (Some(k), None) => Some(k.clone()),
                    _ => None,
                }
            }
        };
        let asked = Instant::now();
        let set = issuer.current();
        let fresh = set.fetched.is_some_and(|t| asked.duration_since(t) < self.ttl);
        if fresh && let Some(k) = find(&set) {
            return Ok(k);
        }
        self.refresh(issuer, asked).await;
        find(&issuer.current()).ok_or_else(|| {
            deny(
                "unknown-kid",
                format!(
                    "issuer {} has no key {:?} (its keys were refetched, or were fetched moments ago)",
                    issuer.issuer,
                    kid.unwrap_or("")
                ),
            )
        })
    }

    async fn refresh(&self, issuer: &Arc<Issuer>, asked: Instant) {
        let mut st = issuer.fetch.lock().await;
        // Someone fetched while this request waited, or tried too recently: use what there is.
        if st.last_attempt.is_some_and(|t| t >= asked || asked.duration_since(t) < self.refetch) {
            return;
        }
        st.last_attempt = Some(Instant::now());
        issuer.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (agent, iss, configured, discovered) =
            (self.agent.clone(), issuer.issuer.clone(), issuer.jwks_uri.clone(), st.discovered.clone());
        let fetched =
            tokio::task::spawn_blocking(move || fetch_keys(&agent, &iss, configured.as_deref(), discovered))
                .await;
        match fetched {
            Ok(Ok((uri, keys))) => {
                if issuer.jwks_uri.is_none() {
                    st.discovered = Some(uri);
                }
                let set = Arc::new(KeySet { keys, fetched: Some(Instant::now()) });
                *issuer.set.write().unwrap_or_else(|e| e.into_inner()) = set;
            }
            Ok(Err(e)) => {
                st.discovered = None;
                tracing::warn!(issuer = %issuer.issuer, error = %e, "could not fetch the issuer's keys; keeping the previous ones");
            }
            Err(e) => tracing::warn!(issuer = %issuer.issuer, error = %e, "key fetch task failed"),
        }
    }
}

/// The `act` chain (RFC 8693 section 4.1), outermost first, as `on_behalf_of` entries.
fn delegation(mut act: Option<&Value>) -> Result<Vec<J>, Denial> {
    let mut out = Vec::new();
    while let Some(a) = act {
        let Value::Object(a) = a else {
            return Err(deny("token-malformed", "the `act` claim must be an object"));
        };
        if out.len() == MAX_DELEGATION_DEPTH {
            return Err(deny(
                "delegation-too-deep",
                format!("the `act` chain is deeper than {MAX_DELEGATION_DEPTH}; it is not accepted"),
            ));
        }
        let Some(sub) = a.get("sub").and_then(Value::as_str) else {
            return Err(deny("token-malformed", "each `act` claim must name its actor in `sub`"));
        };
        let mut entry = vec![
            ("id".to_owned(), J::String(sub.to_owned())),
            ("via".to_owned(), J::String("rfc8693-act".into())),
        ];
        if let Some(iss) = a.get("iss").and_then(Value::as_str) {
            entry.push(("issuer".into(), J::String(iss.to_owned())));
        }
        out.push(J::Object(entry));
        act = a.get("act");
    }
    Ok(out)
}

fn get_json(agent: &ureq::Agent, url: &str) -> Result<Value, String> {
    let mut r =
        agent.get(url).header("Accept", "application/json").call().map_err(|e| format!("GET {url}: {e}"))?;
    let bytes = r
        .body_mut()
        .with_config()
        .limit(MAX_DOCUMENT)
        .read_to_vec()
        .map_err(|e| format!("GET {url}: {e} (documents are limited to 64 KiB)"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("GET {url}: not JSON: {e}"))
}

/// Fetches an issuer's key set (blocking). Returns the JWKS URL used and the usable keys.
fn fetch_keys(
    agent: &ureq::Agent,
    issuer: &str,
    configured: Option<&str>,
    discovered: Option<String>,
) -> Result<(String, HashMap<String, Arc<Jwk>>), String> {
    let uri = match configured.map(str::to_owned).or(discovered) {
        Some(u) => u,
        None => {
            let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
            let doc = get_json(agent, &url)?;
            if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
                return Err(format!("{url} names another issuer"));
            }
            let u = doc.get("jwks_uri").and_then(Value::as_str).ok_or(format!("{url} has no jwks_uri"))?;
            check_url("jwks_uri", u)?;
            u.to_owned()
        }
    };
    let doc = get_json(agent, &uri)?;
    let members = doc.get("keys").and_then(Value::as_array).ok_or(format!("{uri} has no `keys` array"))?;
    let mut keys = HashMap::new();
    for k in members.iter().take(MAX_KEYS).filter_map(Jwk::from_json) {
        keys.entry(k.kid.clone()).or_insert_with(|| Arc::new(k));
    }
    Ok((uri, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(toml_text: &str) -> OidcConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn configs_are_checked() {
        let ok = cfg(r#"
            [[issuer]]
            issuer = "https://token.actions.githubusercontent.com"
            [[policy]]
            issuer = "https://token.actions.githubusercontent.com"
            audience = "graven"
            identity = "ci:payments-deploy"
            claims = { sub = "repo:acme/payments:ref:refs/heads/main" }
        "#);
        ok.validate().unwrap();
        let cases = [
            (
                r#"[[issuer]]
                issuer = "http://issuer.example""#,
                "https",
            ),
            (
                r#"[[issuer]]
                issuer = "https://a.example"
                [[policy]]
                issuer = "https://b.example"
                audience = "x"
                identity = "ci:x"
                claims = { sub = "s" }"#,
                "no [[oidc.issuer]]",
            ),
            (
                r#"[[issuer]]
                issuer = "https://a.example"
                [[policy]]
                issuer = "https://a.example"
                audience = "x"
                identity = "ci:x""#,
                "at least one claim rule",
            ),
            (
                r#"[[issuer]]
                issuer = "https://a.example"
                [[issuer]]
                issuer = "https://a.example""#,
                "twice",
            ),
        ];
        for (text, needle) in cases {
            let e = cfg(text).validate().unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
        check_url("x", "http://127.0.0.1:8080/jwks").unwrap();
        check_url("x", "http://localhost/jwks").unwrap();
        assert!(check_url("x", "http://127.0.0.1.evil.example/jwks").is_err());
    }

    #[test]
    fn delegation_chains_are_bounded() {
        let v = serde_json::json!({"sub": "user:alice", "iss": "https://idp", "act": {"sub": "svc:b"}});
        let d = delegation(Some(&v)).unwrap();
        assert_eq!(d.len(), 2);
        let mut deep = serde_json::json!({"sub": "x"});
        for _ in 0..MAX_DELEGATION_DEPTH {
            deep = serde_json::json!({"sub": "x", "act": deep});
        }
        assert_eq!(delegation(Some(&deep)).unwrap_err().reason(), "delegation-too-deep");
        assert_eq!(delegation(Some(&serde_json::json!("x"))).unwrap_err().reason(), "token-malformed");
    }
}
