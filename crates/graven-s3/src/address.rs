//! An `s3://bucket/prefix` URL: the bucket's name checked against S3's rules, the prefix
//! against the log's own, before any request is made.

/// Longest prefix accepted. S3 keys are at most 1,024 bytes and the log's own keys need room.
pub const MAX_PREFIX_LEN: usize = 512;

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
