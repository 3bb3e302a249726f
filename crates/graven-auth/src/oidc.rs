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
//!
//! **URLs.** The issuer, the discovery URL, the `jwks_uri` and every redirect target are parsed
//! with a real URL parser (the WHATWG URL Standard, as the `url` crate implements it) and
//! fetched in their parsed and re-serialised form, so the host checked is the host connected
//! to. Each must be `https`, or plain `http` to a loopback host; none may carry userinfo
//! (`user:pass@`), a fragment or a backslash. Redirects are followed only within the origin
//! (scheme, host and port) of the URL asked for, at most [`MAX_REDIRECTS`] of them: the keys
//! that decide who may write to the log come from the origin the operator (or the issuer's
//! own discovery document) named, never from wherever a redirect points. A discovered
//! `jwks_uri` may be plain `http` only when the issuer itself is.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use graven_clock::{Clock, Moment};

use graven_core::jcs::Value as J;
use serde::Deserialize;
use serde_json::Value;
use url::{Host, Url};

use crate::identity::glob_match;
use crate::jwt::{self, Jwk, JwtError};
use crate::principal::{Actor, Denial, Principal};
use crate::registry::Registry;

/// Largest discovery document or JWKS read.
const MAX_DOCUMENT: u64 = 64 << 10;
const MAX_ISSUERS: usize = 64;
const MAX_POLICIES: usize = 1024;
/// Nesting of `act` claims recorded; deeper delegation chains are refused.
pub const MAX_DELEGATION_DEPTH: usize = 8;
/// Same-origin redirects followed by one fetch.
pub const MAX_REDIRECTS: usize = 3;
/// Longest issuer or JWKS URL.
const MAX_URL_LEN: usize = 2048;

/// The `[oidc]` table of the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Tolerance for clock skew on `exp`, `nbf` and `iat`, in seconds (default 60, at most 3600).
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

/// What a URL names, for the rules it must obey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlRole {
    /// An issuer identifier: OpenID Connect Discovery 1.0 section 2 allows scheme, host, port
    /// and path, and no query or fragment.
    Issuer,
    /// A document to fetch (discovery, JWKS, a redirect target): a query is allowed.
    Fetch,
}

/// Whether a parsed URL's host is a loopback host: `localhost`, 127.0.0.0/8 or `::1`.
fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(Host::Domain(d)) => d == "localhost",
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses `u` and checks it: `https`, or plain `http` to a loopback host (tests, a local
/// issuer); no userinfo, no fragment, no backslash (parsers disagree on what it ends), and no
/// query in an issuer. The returned URL is what is fetched: its serialisation is what every
/// later parser (the HTTP client's included) sees, so it cannot name another host.
fn check_url(what: &str, u: &str, role: UrlRole) -> Result<Url, String> {
    if u.len() > MAX_URL_LEN || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{what} {u:?} is not a valid URL (at most {MAX_URL_LEN} bytes, no spaces)"));
    }
    if u.contains('\\') {
        return Err(format!("{what} {u:?} contains a backslash; write the URL with `/` only"));
    }
    // The WHATWG parser forgives `https:host` and `HTTPS://`; ask for the one plain spelling.
    let Some(rest) = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://")) else {
        return Err(format!("{what} {u:?} must be an https URL (starting with https://)"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let url = Url::parse(u).map_err(|e| format!("{what} {u:?} is not a valid URL: {e}"))?;
    if authority.contains('@') || !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{what} {u:?} must not contain userinfo (user:password@); name the host only"));
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(format!("{what} {u:?} must use https (plain http only to a loopback address)"));
    }
    if url.fragment().is_some() {
        return Err(format!("{what} {u:?} must not have a fragment (#...)"));
    }
    if role == UrlRole::Issuer && url.query().is_some() {
        return Err(format!(
            "{what} {u:?} must not have a query (?...): an issuer is scheme, host, port and path"
        ));
    }
    Ok(url)
}

/// `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 section 4).
fn discovery_url(issuer: &str) -> Result<Url, String> {
    let u = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    check_url("oidc discovery URL", &u, UrlRole::Fetch)
}

impl OidcConfig {
    /// Checks every rule the file must obey; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.issuers.len() > MAX_ISSUERS || self.policies.len() > MAX_POLICIES {
            return Err(format!("at most {MAX_ISSUERS} issuers and {MAX_POLICIES} policies"));
        }
        let mut seen = std::collections::HashSet::new();
        for i in &self.issuers {
            check_url("oidc issuer", &i.issuer, UrlRole::Issuer)?;
            match &i.jwks_uri {
                Some(u) => check_url("jwks_uri", u, UrlRole::Fetch).map(drop)?,
                None => discovery_url(&i.issuer).map(drop)?,
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
    fetched: Option<Moment>,
}

#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<Moment>,
    /// The `jwks_uri` found by discovery, when none is configured.
    discovered: Option<Url>,
}

/// Where an issuer's keys are: a configured `jwks_uri`, or its discovery document.
#[derive(Debug, Clone)]
enum KeySource {
    Jwks(Url),
    Discovery { issuer: Url, discovery: Url },
}

#[derive(Debug)]
struct Issuer {
    issuer: String,
    source: KeySource,
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
    /// Time limit of one refresh (discovery, key set and redirects together).
    timeout: Duration,
    agent: ureq::Agent,
    /// The time of the cache (time to live, refetch interval) and of the fetches' deadline.
    clock: Arc<dyn Clock>,
}

fn deny(reason: &'static str, message: impl Into<String>) -> Denial {
    Denial::Federated { reason, message: message.into() }
}

fn jwt_denial(e: JwtError) -> Denial {
    deny(e.reason(), e.to_string())
}

impl Federation {
    /// The issuers and policies of `cfg`; key sets are cached on `clock`'s time.
    pub fn new(cfg: &OidcConfig, clock: Arc<dyn Clock>) -> Result<Self, String> {
        cfg.validate()?;
        let timeout = Duration::from_millis(cfg.fetch_timeout_ms.unwrap_or(5_000));
        // Redirects are followed by `get_json`, which checks each target; the client follows none.
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .save_redirect_history(false)
            .build()
            .new_agent();
        let mut issuers = HashMap::new();
        for i in &cfg.issuers {
            let source = match &i.jwks_uri {
                Some(u) => KeySource::Jwks(check_url("jwks_uri", u, UrlRole::Fetch)?),
                None => KeySource::Discovery {
                    issuer: check_url("oidc issuer", &i.issuer, UrlRole::Issuer)?,
                    discovery: discovery_url(&i.issuer)?,
                },
            };
            let st = Issuer {
                issuer: i.issuer.clone(),
                source,
                set: RwLock::new(Arc::new(KeySet { keys: HashMap::new(), fetched: None })),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
                fetches: Default::default(),
            };
            issuers.insert(i.issuer.clone(), Arc::new(st));
        }
        Ok(Federation {
            issuers,
            policies: cfg.policies.clone(),
            leeway_s: cfg.leeway_secs.unwrap_or(60).min(3600) as i64,
            ttl: Duration::from_millis(cfg.jwks_ttl_ms.unwrap_or(300_000)),
            refetch: Duration::from_millis(cfg.jwks_refetch_interval_ms.unwrap_or(30_000)),
            timeout,
            agent,
            clock,
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
        let kept = kept_claims(claims.claims());
        if !kept.is_empty() {
            extra.push(("claims".into(), J::Object(kept)));
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
            Some(claims.expires_at().saturating_mul(1000)),
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
        let asked = self.clock.now();
        let set = issuer.current();
        let fresh = set.fetched.is_some_and(|t| asked.since(t) < self.ttl);
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

    async fn refresh(&self, issuer: &Arc<Issuer>, asked: Moment) {
        let mut st = issuer.fetch.lock().await;
        // Someone fetched while this request waited, or tried too recently: use what there is.
        if st.last_attempt.is_some_and(|t| t >= asked || asked.since(t) < self.refetch) {
            return;
        }
        st.last_attempt = Some(self.clock.now());
        issuer.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (agent, iss, source, discovered, clock) = (
            self.agent.clone(),
            issuer.issuer.clone(),
            issuer.source.clone(),
            st.discovered.clone(),
            self.clock.clone(),
        );
        let deadline = self.clock.now() + self.timeout;
        let fetched = tokio::task::spawn_blocking(move || {
            fetch_keys(&agent, &iss, &source, discovered, (clock.as_ref(), deadline))
        })
        .await;
        match fetched {
            Ok(Ok((uri, keys))) => {
                if matches!(issuer.source, KeySource::Discovery { .. }) {
                    st.discovered = Some(uri);
                }
                let set = Arc::new(KeySet { keys, fetched: Some(self.clock.now()) });
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

/// The claims of CI and workload tokens that say which run of which pipeline acted, kept on
/// the actor (`actor.claims`) when the token has them as strings: GitHub Actions' (`run_id`,
/// `workflow_ref`, `sha`, `actor`, ...) and GitLab CI's (`project_path`, `pipeline_id`, ...).
/// Each is the issuer's signed word, like `sub`.
pub const KEPT_CLAIMS: &[&str] = &[
    "repository",
    "repository_owner",
    "workflow",
    "workflow_ref",
    "job_workflow_ref",
    "run_id",
    "run_number",
    "run_attempt",
    "ref",
    "sha",
    "actor",
    "event_name",
    "environment",
    "project_path",
    "pipeline_id",
    "job_id",
    "user_login",
];

/// Longest kept claim value; a longer one is left out rather than cut.
const MAX_KEPT_CLAIM: usize = 1024;

fn kept_claims(claims: &serde_json::Map<String, Value>) -> Vec<(String, J)> {
    KEPT_CLAIMS
        .iter()
        .filter_map(|name| {
            let v = claims.get(*name)?.as_str()?;
            (v.len() <= MAX_KEPT_CLAIM && !v.chars().any(char::is_control))
                .then(|| ((*name).to_owned(), J::String(v.to_owned())))
        })
        .collect()
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

/// A deadline on a clock.
type Deadline<'a> = (&'a dyn Clock, Moment);

/// GETs a JSON document (blocking) by `deadline`, following at most [`MAX_REDIRECTS`]
/// redirects, each only to a URL that passes [`check_url`] and has the origin of `start`.
fn get_json(agent: &ureq::Agent, start: &Url, deadline: Deadline<'_>) -> Result<Value, String> {
    let mut url = start.clone();
    for _ in 0..=MAX_REDIRECTS {
        let left = deadline.1.since(deadline.0.now());
        if left.is_zero() {
            return Err(format!("GET {url}: timed out"));
        }
        let mut r = agent
            .get(url.as_str())
            .config()
            .timeout_global(Some(left))
            .build()
            .header("Accept", "application/json")
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = r.status().as_u16();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("");
            let next = url
                .join(location)
                .map_err(|e| format!("GET {url}: redirect to {location:?} is not a valid URL: {e}"))?;
            let next = check_url("redirect target", next.as_str(), UrlRole::Fetch)
                .map_err(|e| format!("GET {url}: {e}"))?;
            if next.origin() != start.origin() {
                return Err(format!(
                    "GET {url}: redirected to {next}, another origin; redirects are followed only within {}",
                    start.origin().ascii_serialization()
                ));
            }
            url = next;
            continue;
        }
        if !(200..300).contains(&status) {
            return Err(format!("GET {url}: HTTP status {status}"));
        }
        let bytes = r
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT)
            .read_to_vec()
            .map_err(|e| format!("GET {url}: {e} (documents are limited to 64 KiB)"))?;
        return serde_json::from_slice(&bytes).map_err(|e| format!("GET {url}: not JSON: {e}"));
    }
    Err(format!("GET {start}: more than {MAX_REDIRECTS} redirects"))
}

/// The `jwks_uri` of a discovery document, checked like a configured one; plain `http` only
/// when the issuer itself is plain `http` (so on loopback): a remote https issuer cannot point
/// this server at its own loopback services.
fn discovered_jwks_uri(issuer: &Url, jwks_uri: &str) -> Result<Url, String> {
    let u = check_url("discovered jwks_uri", jwks_uri, UrlRole::Fetch)?;
    if u.scheme() == "http" && issuer.scheme() != "http" {
        return Err(format!(
            "the jwks_uri {u} is plain http; an https issuer's keys must be fetched over https"
        ));
    }
    Ok(u)
}

/// Fetches an issuer's key set (blocking). Returns the JWKS URL used and the usable keys.
fn fetch_keys(
    agent: &ureq::Agent,
    issuer: &str,
    source: &KeySource,
    discovered: Option<Url>,
    deadline: Deadline<'_>,
) -> Result<(Url, HashMap<String, Arc<Jwk>>), String> {
    let uri = match (source, discovered) {
        (KeySource::Jwks(u), _) => u.clone(),
        (KeySource::Discovery { .. }, Some(u)) => u,
        (KeySource::Discovery { issuer: issuer_url, discovery }, None) => {
            let doc = get_json(agent, discovery, deadline)?;
            if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
                return Err(format!("{discovery} names another issuer"));
            }
            let u =
                doc.get("jwks_uri").and_then(Value::as_str).ok_or(format!("{discovery} has no jwks_uri"))?;
            discovered_jwks_uri(issuer_url, u).map_err(|e| format!("{discovery}: {e}"))?
        }
    };
    let doc = get_json(agent, &uri, deadline)?;
    let keys = jwt::key_set(&doc).map_err(|e| format!("{uri}: {e}"))?;
    Ok((uri, keys.into_iter().map(|(kid, k)| (kid, Arc::new(k))).collect()))
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
        check_url("x", "http://127.0.0.1:8080/jwks", UrlRole::Fetch).unwrap();
        check_url("x", "http://localhost/jwks", UrlRole::Fetch).unwrap();
        assert!(check_url("x", "http://127.0.0.1.evil.example/jwks", UrlRole::Fetch).is_err());
    }

    /// Issuer and JWKS URLs are read by a real URL parser: what passes is what is fetched. A
    /// loopback-looking prefix with userinfo (`http://localhost:1@127.0.0.2/`, which fetches
    /// from 127.0.0.2 as user `localhost`) or a host that merely starts like one is refused.
    #[test]
    fn urls_are_parsed_not_pattern_matched() {
        let with = |issuer: &str, jwks: &str| {
            cfg(&format!("[[issuer]]\nissuer = {issuer:?}\njwks_uri = {jwks:?}\n")).validate()
        };
        let refused = [
            ("https://a.example", "http://localhost:1@127.0.0.2/jwks.json", "userinfo"),
            ("https://a.example", "https://user@keys.example/jwks", "userinfo"),
            ("https://a.example", "https://:pw@keys.example/jwks", "userinfo"),
            ("http://localhost:1@127.0.0.2", "https://keys.example/jwks", "userinfo"),
            ("https://a.example", "http://127.0.0.1.evil.example/jwks", "https"),
            ("https://a.example", "http://localhost.evil.example/jwks", "https"),
            ("https://a.example", "http://127.0.0.1\\@evil.example/jwks", "backslash"),
            ("https://a.example", "http://evil.example\\@127.0.0.1/jwks", "backslash"),
            ("https://a.example", "https://keys.example/jwks#k", "fragment"),
            ("https://a.example?x=1", "https://keys.example/jwks", "query"),
            ("https://a.example#x", "https://keys.example/jwks", "fragment"),
            ("https://a.example", "ftp://keys.example/jwks", "https"),
            ("https://a.example", "https:keys.example/jwks", "https://"),
            ("https://a.example", "HTTP://127.0.0.1/jwks", "https://"),
            ("https://a.example", "http://@127.0.0.1/jwks", "userinfo"),
            ("https://a.example", "http://127.0.0.1:99999/jwks", "not a valid URL"),
            ("https://a.example", "https://", "not a valid URL"),
        ];
        for (issuer, jwks, needle) in refused {
            let e = with(issuer, jwks).expect_err(&format!("{issuer} {jwks}"));
            assert!(e.contains(needle), "{issuer} {jwks}: {e}");
        }
        let https_issuer = Url::parse("https://accounts.example").unwrap();
        let e = discovered_jwks_uri(&https_issuer, "http://127.0.0.1:8080/jwks").unwrap_err();
        assert!(e.contains("https issuer"), "{e}");
        discovered_jwks_uri(&https_issuer, "https://keys.example/jwks").unwrap();
        assert!(discovered_jwks_uri(&https_issuer, "https://u@keys.example/jwks").is_err());
        let local_issuer = Url::parse("http://127.0.0.1:9000").unwrap();
        discovered_jwks_uri(&local_issuer, "http://127.0.0.1:9000/jwks").unwrap();
        for (issuer, jwks) in [
            (
                "https://token.actions.githubusercontent.com",
                "https://token.actions.githubusercontent.com/.well-known/jwks",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/jwks?v=2"),
            ("http://localhost", "http://[::1]:9000/jwks"),
            ("https://kubernetes.default.svc", "http://127.0.0.2/jwks"),
        ] {
            with(issuer, jwks).unwrap();
        }
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

    /// The key-set cache runs on the clock it is given: a set is used for `jwks_ttl_ms`, then
    /// fetched again; a `kid` the set lacks makes it fetch again at most once per
    /// `jwks_refetch_interval_ms`, however many tokens ask. On a simulated clock, exactly at
    /// the boundaries, without sleeping (the issuer is a small server on loopback).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_key_cache_runs_on_the_clock_it_is_given() {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::Mutex;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let published: Arc<Mutex<Vec<&str>>> = Arc::new(Mutex::new(vec!["k1"]));
        std::thread::spawn({
            let published = published.clone();
            move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { return };
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    let keys: Vec<String> = published
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|kid| {
                            use base64::Engine as _;
                            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
                                .encode([kid.len() as u8; 32]);
                            format!(r#"{{"kty":"OKP","crv":"Ed25519","kid":"{kid}","x":"{x}"}}"#)
                        })
                        .collect();
                    let body = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            }
        });
        let c = cfg(&format!(
            "jwks_ttl_ms = 60000\njwks_refetch_interval_ms = 10000\n[[issuer]]\nissuer = \"{issuer}\"\njwks_uri = \"{issuer}/jwks\"\n"
        ));
        let clock = graven_clock::SimClock::new(1_767_225_600_000_000);
        let fed = Federation::new(&c, Arc::new(clock.clone())).unwrap();
        let iss = fed.issuers[&issuer].clone();
        let key = |kid: &'static str| {
            let (fed, iss) = (&fed, iss.clone());
            async move { fed.key(&iss, Some(kid), jwt::Alg::EdDsa).await.is_ok() }
        };
        let second = Duration::from_secs(1);

        assert!(key("k1").await);
        assert!(key("k1").await);
        assert_eq!(fed.fetches(&issuer), 1, "a fresh set is used as it is");
        clock.advance(59 * second);
        assert!(key("k1").await);
        assert_eq!(fed.fetches(&issuer), 1, "still fresh 1 ms before its time to live ends");
        clock.advance(second);
        assert!(key("k1").await);
        assert_eq!(fed.fetches(&issuer), 2, "fetched again once its time to live ends");

        // The issuer adds k2; a token naming it arrives at once: the set was fetched moments
        // ago, so not again, and a flood of unknown kids changes nothing.
        published.lock().unwrap().push("k22");
        for _ in 0..20 {
            assert!(!key("k22").await);
        }
        assert_eq!(fed.fetches(&issuer), 2);
        clock.advance(9 * second);
        assert!(!key("k22").await);
        assert_eq!(fed.fetches(&issuer), 2, "not within the refetch interval");
        clock.advance(second);
        assert!(key("k22").await, "one refetch per interval, and the new key is found");
        assert_eq!(fed.fetches(&issuer), 3);
        assert!(key("k1").await);
        assert_eq!(fed.fetches(&issuer), 3);
    }
}
