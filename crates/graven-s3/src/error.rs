//! What can go wrong setting up the store or checking its bucket, and what to do about it.

use crate::address::UrlError;

/// Why setting up the store or checking its bucket failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(
        "half a key pair: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (to use the standard credential chain)"
    )]
    HalfKeyPair,
    #[error("starting the S3 client's threads: {0}")]
    Runtime(std::io::Error),
    #[error("bucket {bucket} does not exist{at}; create it first (with Object Lock, for retention)")]
    NoSuchBucket { bucket: String, at: String },
    #[error("bucket {bucket} exists and belongs to someone else (or denies access); choose another name")]
    BucketTaken { bucket: String },
    #[error("{op} bucket {bucket}: {msg}")]
    Service { op: &'static str, bucket: String, msg: String },
    #[error(transparent)]
    Bucket(#[from] BucketProblem),
}

/// A bucket setting the log needs and does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BucketProblem {
    #[error(
        "bucket {bucket} does not have versioning enabled; enable it (aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled)"
    )]
    VersioningOff { bucket: String },
    #[error(
        "retention is required but bucket {bucket} has no Object Lock; create the bucket with Object Lock or pass --allow-no-object-lock"
    )]
    NoObjectLock { bucket: String },
    #[error(
        "bucket {bucket} has a default retention rule that cannot be used ({why}); set one mode and one period, e.g. aws s3api put-object-lock-configuration --bucket {bucket} --object-lock-configuration '{{\"ObjectLockEnabled\":\"Enabled\",\"Rule\":{{\"DefaultRetention\":{{\"Mode\":\"COMPLIANCE\",\"Days\":365}}}}}}'"
    )]
    BadDefaultRetention { bucket: String, why: String },
}
