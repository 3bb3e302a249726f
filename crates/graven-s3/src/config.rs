//! Where the log's objects live: an `s3://bucket/prefix` URL plus the standard AWS environment
//! variables, validated before any request is made.

use std::fmt;

use crate::address::{UrlError, parse_url};
use crate::error::S3Error;
use crate::retention::Retention;

/// The S3 bucket and prefix the log lives under, and how to reach and authenticate to it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Prepended to every key with a `/`; empty means the bucket's root. Never starts or ends
    /// with `/`.
    pub prefix: String,
    /// `http(s)://host:port` of an S3-compatible service; `None` means AWS's own endpoint for
    /// `region`.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted
    /// (`bucket.endpoint/key`); what most S3-compatible services need.
    pub path_style: bool,
    /// The explicit Object Lock retention that `retain`-ed writes carry. `None` sends no
    /// retention headers: the objects get the bucket's default retention, if it has one, and
    /// none otherwise.
    pub retention: Option<Retention>,
}

// Credentials stay out of logs and panic messages.
impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("session_token", &redact(&self.session_token))
            .field("path_style", &self.path_style)
            .field("retention", &self.retention)
            .finish()
    }
}

impl S3Config {
    /// Parses `s3://bucket/optional/prefix` and fills the endpoint, region and credentials
    /// from the standard AWS environment variables:
    /// `AWS_ENDPOINT_URL_S3` (else `AWS_ENDPOINT_URL`), `AWS_REGION` (else
    /// `AWS_DEFAULT_REGION`, else `us-east-1`), `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. With an endpoint, addressing is
    /// path-style. Retention is left unset.
    pub fn from_url(url: &str) -> Result<S3Config, S3Error> {
        Ok(Self::from_url_with_env(url, |k| std::env::var(k).ok())?)
    }

    /// [`Self::from_url`] with the environment given by `env` (for tests and embedding).
    /// Empty values count as unset.
    pub fn from_url_with_env(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<S3Config, UrlError> {
        let (bucket, prefix) = parse_url(url)?;
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let endpoint = match (var("AWS_ENDPOINT_URL_S3"), var("AWS_ENDPOINT_URL")) {
            (Some(e), _) => Some(("AWS_ENDPOINT_URL_S3", e)),
            (None, Some(e)) => Some(("AWS_ENDPOINT_URL", e)),
            (None, None) => None,
        };
        let endpoint = match endpoint {
            None => None,
            Some((name, e)) => {
                let e = e.trim().trim_end_matches('/').to_owned();
                let rest = e.strip_prefix("https://").or_else(|| e.strip_prefix("http://"));
                if rest.is_none_or(|r| r.is_empty()) {
                    return Err(UrlError::Endpoint { var: name, value: e });
                }
                Some(e)
            }
        };
        let region =
            var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into());
        let access_key_id = var("AWS_ACCESS_KEY_ID");
        let secret_access_key = var("AWS_SECRET_ACCESS_KEY");
        match (&access_key_id, &secret_access_key) {
            (Some(_), None) => {
                return Err(UrlError::HalfCredentials {
                    var: "AWS_ACCESS_KEY_ID",
                    missing: "AWS_SECRET_ACCESS_KEY",
                });
            }
            (None, Some(_)) => {
                return Err(UrlError::HalfCredentials {
                    var: "AWS_SECRET_ACCESS_KEY",
                    missing: "AWS_ACCESS_KEY_ID",
                });
            }
            _ => {}
        }
        Ok(S3Config {
            bucket,
            prefix,
            path_style: endpoint.is_some(),
            endpoint,
            region: region.trim().to_owned(),
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
            retention: None,
        })
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The full S3 key of one of the log's keys.
    pub fn full_key(&self, key: &str) -> String {
        let key = key.trim_start_matches('/');
        if self.prefix.is_empty() { key.to_owned() } else { format!("{}/{key}", self.prefix) }
    }
}
