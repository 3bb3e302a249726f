#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `s3://` URLs and the environment variables around them.

use std::collections::HashMap;

use graven_s3::{S3Config, S3Error, UrlError};

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn good_urls() {
    let table = [
        ("s3://my-bucket", "my-bucket", ""),
        ("s3://my-bucket/", "my-bucket", ""),
        ("s3://my.bucket.2/logs", "my.bucket.2", "logs"),
        ("s3://abc/logs/prod/", "abc", "logs/prod"),
        ("s3://abc/a_b-c.d/e(1)/x=y+z!'*", "abc", "a_b-c.d/e(1)/x=y+z!'*"),
        ("s3://012/x..y", "012", "x..y"),
    ];
    for (url, bucket, prefix) in table {
        let cfg = S3Config::from_url_with_env(url, no_env).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!((cfg.bucket.as_str(), cfg.prefix.as_str()), (bucket, prefix), "{url}");
        assert_eq!(cfg.endpoint, None);
        assert!(!cfg.path_style);
        assert_eq!(cfg.region, "us-east-1");
        assert_eq!(cfg.retention, None);
        let expected =
            if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
        assert_eq!(cfg.url(), expected);
    }
}

/// Whether an error is the one expected.
type Expect = fn(&UrlError) -> bool;

#[test]
fn bad_urls() {
    let long_bucket = format!("s3://{}", "a".repeat(64));
    let long_prefix = format!("s3://abc/{}", "p".repeat(513));
    let table: Vec<(&str, Expect)> = vec![
        ("my-bucket", |e| matches!(e, UrlError::NotS3 { .. })),
        ("S3://my-bucket", |e| matches!(e, UrlError::NotS3 { .. })),
        ("https://my-bucket.s3.amazonaws.com/x", |e| matches!(e, UrlError::NotS3 { .. })),
        ("s3://", |e| matches!(e, UrlError::NotS3 { .. })),
        ("s3:///prefix", |e| matches!(e, UrlError::NotS3 { .. })),
        ("s3://b1", |e| matches!(e, UrlError::BucketLength { len: 2, .. })),
        (&long_bucket, |e| matches!(e, UrlError::BucketLength { len: 64, .. })),
        ("s3://My-Bucket", |e| matches!(e, UrlError::BucketChar { ch: 'M', .. })),
        ("s3://my_bucket", |e| matches!(e, UrlError::BucketChar { ch: '_', .. })),
        ("s3://-bucket", |e| matches!(e, UrlError::BucketEdge { .. })),
        ("s3://bucket-", |e| matches!(e, UrlError::BucketEdge { .. })),
        ("s3://bucket.", |e| matches!(e, UrlError::BucketEdge { .. })),
        ("s3://my..bucket", |e| matches!(e, UrlError::BucketDots { .. })),
        ("s3://my.-bucket", |e| matches!(e, UrlError::BucketDots { .. })),
        ("s3://192.168.1.10", |e| matches!(e, UrlError::BucketIp { .. })),
        ("s3://abc//logs", |e| matches!(e, UrlError::EmptySegment { .. })),
        ("s3://abc/logs//prod", |e| matches!(e, UrlError::EmptySegment { .. })),
        ("s3://abc/logs//", |e| matches!(e, UrlError::EmptySegment { .. })),
        ("s3://abc/../other", |e| matches!(e, UrlError::DotSegment { .. })),
        ("s3://abc/logs/./x", |e| matches!(e, UrlError::DotSegment { .. })),
        ("s3://abc/logs/..", |e| matches!(e, UrlError::DotSegment { .. })),
        ("s3://abc/logs prod", |e| matches!(e, UrlError::PrefixChar { ch: ' ', .. })),
        ("s3://abc/logs?x=1", |e| matches!(e, UrlError::PrefixChar { ch: '?', .. })),
        ("s3://abc/logs\\x", |e| matches!(e, UrlError::PrefixChar { ch: '\\', .. })),
        ("s3://abc/lögs", |e| matches!(e, UrlError::PrefixChar { ch: 'ö', .. })),
        (&long_prefix, |e| matches!(e, UrlError::PrefixLength { len: 513, .. })),
    ];
    for (url, expected) in table {
        let err =
            S3Config::from_url_with_env(url, no_env).err().unwrap_or_else(|| panic!("{url} was accepted"));
        assert!(expected(&err), "{url}: {err:?}");
        // Every message says what the rule is.
        assert!(err.to_string().len() > 30, "{url}: {err}");
    }
}

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

#[test]
fn environment_variables() {
    let cfg = S3Config::from_url_with_env(
        "s3://abc/log",
        env(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "SECRET"),
            ("AWS_SESSION_TOKEN", "TOKEN"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert!(cfg.path_style);
    assert_eq!(cfg.region, "eu-west-1");
    assert_eq!(cfg.access_key_id.as_deref(), Some("AKID"));
    assert_eq!(cfg.secret_access_key.as_deref(), Some("SECRET"));
    assert_eq!(cfg.session_token.as_deref(), Some("TOKEN"));
    // Secrets stay out of Debug output.
    let dbg = format!("{cfg:?}");
    assert!(!dbg.contains("SECRET") && !dbg.contains("TOKEN"), "{dbg}");

    // The S3-specific endpoint wins; AWS_REGION wins over AWS_DEFAULT_REGION; empty is unset.
    let cfg = S3Config::from_url_with_env(
        "s3://abc",
        env(&[
            ("AWS_ENDPOINT_URL", "http://a:1"),
            ("AWS_ENDPOINT_URL_S3", "https://b:2"),
            ("AWS_REGION", "ap-south-1"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_SESSION_TOKEN", ""),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.endpoint.as_deref(), Some("https://b:2"));
    assert_eq!(cfg.region, "ap-south-1");
    assert_eq!(cfg.session_token, None);

    let bad = S3Config::from_url_with_env("s3://abc", env(&[("AWS_ENDPOINT_URL", "localhost:9000")]));
    assert!(matches!(bad, Err(UrlError::Endpoint { var: "AWS_ENDPOINT_URL", .. })), "{bad:?}");
    let half = S3Config::from_url_with_env("s3://abc", env(&[("AWS_ACCESS_KEY_ID", "AKID")]));
    assert!(
        matches!(half, Err(UrlError::HalfCredentials { missing: "AWS_SECRET_ACCESS_KEY", .. })),
        "{half:?}"
    );
}

#[test]
fn from_url_returns_typed_errors() {
    assert!(matches!(S3Config::from_url("s3://x"), Err(S3Error::Url(UrlError::BucketLength { .. }))));
}

#[test]
fn full_keys() {
    let mut cfg = S3Config::from_url_with_env("s3://abc/logs/prod", no_env).unwrap();
    assert_eq!(cfg.full_key("tile/0/000"), "logs/prod/tile/0/000");
    cfg.prefix.clear();
    assert_eq!(cfg.full_key("checkpoint"), "checkpoint");
}
