//! The blocking HTTP client of a TSA (RFC 3161 §3.4): POST the request, read the reply within
//! a size and a time limit, return the token if the TSA granted it.
//!
//! The token it returns is not verified: verify it ([`crate::verify::TsaVerifier::verify`], with the
//! nonce sent) before storing it.

use std::time::Duration;

use crate::policy::TsaPolicy;
use crate::reply::{MAX_REPLY_BYTES, ReplyError, token_from_reply};
use crate::request::TimeStampRequest;
use crate::text::quote;

/// How to reach a TSA.
#[derive(Debug, Clone)]
pub struct TsaClientConfig {
    /// `tsa_url`: an `http://` or `https://` URL.
    pub url: String,
    /// For the whole exchange (connect, send, answer). Default 10 s.
    pub timeout: Duration,
    /// The request's `reqPolicy`, if the operator configured one.
    pub policy: Option<TsaPolicy>,
}

impl TsaClientConfig {
    pub fn new(url: impl Into<String>) -> Self {
        TsaClientConfig { url: url.into(), timeout: Duration::from_secs(10), policy: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("tsa_url {0} is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("POST {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("POST {url}: HTTP status {status} (a TSA answers 200 with application/timestamp-reply)")]
    Status { url: String, status: u16 },
    #[error("POST {url}: the answer's Content-Type is {found}, not application/timestamp-reply")]
    ContentType { url: String, found: String },
    #[error("POST {url}: the answer is larger than {MAX_REPLY_BYTES} bytes")]
    TooLarge { url: String },
    #[error("POST {url}: {source}")]
    Reply { url: String, source: ReplyError },
}

/// A TSA client. Cheap to clone; holds a connection pool.
#[derive(Debug, Clone)]
pub struct TsaClient {
    url: String,
    agent: ureq::Agent,
    policy: Option<TsaPolicy>,
}

impl TsaClient {
    pub fn new(config: TsaClientConfig) -> Result<Self, ClientError> {
        let lower = config.url.to_ascii_lowercase();
        let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/'))
            || config.url.chars().any(char::is_whitespace)
        {
            return Err(ClientError::BadUrl(quote(&config.url)));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("graven-tsa/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(TsaClient { url: config.url, agent, policy: config.policy })
    }

    /// Asks the TSA to stamp the SHA-256 of `message`, with `nonce` (random, from the caller);
    /// returns the token's bytes, not yet verified.
    pub fn timestamp(&self, message: &[u8], nonce: u64) -> Result<Vec<u8>, ClientError> {
        let request = TimeStampRequest::new(message, nonce, self.policy.as_ref());
        self.send(request.der())
    }

    /// Posts a DER `TimeStampReq` as it is, and returns the granted token.
    pub fn send(&self, request: &[u8]) -> Result<Vec<u8>, ClientError> {
        let url = || self.url.clone();
        let mut resp = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/timestamp-query")
            .header("Accept", "application/timestamp-reply")
            .send(request)
            .map_err(|e| ClientError::Transport { url: url(), reason: e.to_string() })?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(ClientError::Status { url: url(), status });
        }
        let content_type =
            resp.headers().get("content-type").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let media = content_type.as_deref().and_then(|v| v.split(';').next()).map(str::trim);
        if !media.is_some_and(|m| m.eq_ignore_ascii_case("application/timestamp-reply")) {
            return Err(ClientError::ContentType {
                url: url(),
                found: quote(content_type.as_deref().unwrap_or("absent")),
            });
        }
        let body = resp.body_mut().with_config().limit(MAX_REPLY_BYTES as u64).read_to_vec().map_err(
            |e| match e {
                ureq::Error::BodyExceedsLimit(_) => ClientError::TooLarge { url: url() },
                e => ClientError::Transport { url: url(), reason: e.to_string() },
            },
        )?;
        let token = token_from_reply(&body).map_err(|source| ClientError::Reply { url: url(), source })?;
        Ok(token.to_vec())
    }
}
