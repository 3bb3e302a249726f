//! Where the log's objects live: an `s3://bucket/prefix` URL plus the standard AWS environment
//! variables, validated before any request is made.

use std::fmt;

use crate::Retention;

/// Longest prefix accepted. S3 keys are at most 1,024 bytes and the log's own keys need room.
pub const MAX_PREFIX_LEN: usize = 512;

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

/// What is wrong with an `s3://` URL, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    #[error("{url:?} is not an S3 URL; write it as s3://bucket or s3://bucket/prefix")]
    NotS3 { url: String },
    #[error(
        "bucket name {bucket:?} is {len} characters; S3 bucket names are 3 to 63 characters (s3://bucket/prefix)"
    )]
    BucketLength { bucket: String, len: usize },
    #[error(
        "bucket name {bucket:?} has the character {ch:?}; S3 bucket names use only lowercase letters, digits, '.' and '-'"
    )]
    BucketChar { bucket: String, ch: char },
    #[error("bucket name {bucket:?} must start and end with a lowercase letter or a digit")]
    BucketEdge { bucket: String },
    #[error("bucket name {bucket:?} has \"..\", \".-\" or \"-.\"; S3 does not allow those")]
    BucketDots { bucket: String },
    #[error("bucket name {bucket:?} looks like an IP address, which S3 does not allow")]
    BucketIp { bucket: String },
    #[error("the prefix of {url:?} has an empty segment (\"//\"); remove the extra '/'")]
    EmptySegment { url: String },
    #[error("the prefix of {url:?} has a \".\" or \"..\" segment; name the prefix without them")]
    DotSegment { url: String },
    #[error(
        "the prefix of {url:?} has the character {ch:?}; use letters, digits and any of ! - _ . * ' ( ) = + / in prefixes"
    )]
    PrefixChar { url: String, ch: char },
    #[error("the prefix of {url:?} is {len} bytes; use at most {MAX_PREFIX_LEN}")]
    PrefixLength { url: String, len: usize },
    #[error("{var}={value:?} is not an http:// or https:// URL; set it to the S3 service's address")]
    Endpoint { var: &'static str, value: String },
    #[error("{var} is set but {missing} is not; set both, or neither")]
    HalfCredentials { var: &'static str, missing: &'static str },
}

impl S3Config {
    /// Parses `s3://bucket/optional/prefix` and fills the endpoint, region and credentials
    /// from the standard AWS environment variables:
    /// `AWS_ENDPOINT_URL_S3` (else `AWS_ENDPOINT_URL`), `AWS_REGION` (else
    /// `AWS_DEFAULT_REGION`, else `us-east-1`), `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. With an endpoint, addressing is
    /// path-style. Retention is left unset.
    pub fn from_url(url: &str) -> Result<S3Config, crate::S3Error> {
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

/// Splits `s3://bucket/prefix` into a valid bucket name and prefix (one trailing `/` is
/// ignored).
pub fn parse_url(url: &str) -> Result<(String, String), UrlError> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| UrlError::NotS3 { url: url.to_owned() })?;
    let (bucket, prefix) = match rest.split_once('/') {
        Some((b, p)) => (b, p.strip_suffix('/').unwrap_or(p)),
        None => (rest, ""),
    };
    if bucket.is_empty() {
        return Err(UrlError::NotS3 { url: url.to_owned() });
    }
    validate_bucket(bucket)?;
    if !prefix.is_empty() {
        if prefix.len() > MAX_PREFIX_LEN {
            return Err(UrlError::PrefixLength { url: url.to_owned(), len: prefix.len() });
        }
        for segment in prefix.split('/') {
            if segment.is_empty() {
                return Err(UrlError::EmptySegment { url: url.to_owned() });
            }
            if segment == "." || segment == ".." {
                return Err(UrlError::DotSegment { url: url.to_owned() });
            }
            if let Some(ch) =
                segment.chars().find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()=+".contains(*c)))
            {
                return Err(UrlError::PrefixChar { url: url.to_owned(), ch });
            }
        }
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

/// S3's bucket naming rules for general purpose buckets.
pub fn validate_bucket(bucket: &str) -> Result<(), UrlError> {
    let b = || bucket.to_owned();
    let len = bucket.chars().count();
    if !(3..=63).contains(&len) {
        return Err(UrlError::BucketLength { bucket: b(), len });
    }
    if let Some(ch) =
        bucket.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return Err(UrlError::BucketChar { bucket: b(), ch });
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge_ok(bucket.chars().next()) || !edge_ok(bucket.chars().last()) {
        return Err(UrlError::BucketEdge { bucket: b() });
    }
    if bucket.contains("..") || bucket.contains(".-") || bucket.contains("-.") {
        return Err(UrlError::BucketDots { bucket: b() });
    }
    if bucket.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(UrlError::BucketIp { bucket: b() });
    }
    Ok(())
}
