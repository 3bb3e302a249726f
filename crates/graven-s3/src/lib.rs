//! [`graven_tlog::ObjectStore`] on S3 (or an S3-compatible service), with the AWS SDK.
//!
//! - Keys live under the configured prefix: `<prefix>/<key>`.
//! - Conditional writes use `If-None-Match: *` ([`Cond::IfAbsent`]) and `If-Match: <etag>`
//!   ([`Cond::IfMatch`]); a `412 Precondition Failed`, a `409 ConditionalRequestConflict`, or a
//!   `404` on an `If-Match` write is [`StoreError::Precondition`].
//! - Retained writes carry the configured Object Lock mode and retain-until date (now +
//!   period), if any ([`S3Config::retention`]); without one they carry no retention headers,
//!   and S3 applies the bucket's default retention rule. Every write carries a SHA-256
//!   checksum, which S3 requires for writes under Object Lock.
//!
//! ## Threads
//! [`ObjectStore`] is synchronous, and is called both from plain threads and from inside the
//! server's tokio runtime. So the store owns a small runtime of its own (two worker threads
//! named `graven-s3`), spawns each request there and waits for the answer on a std channel.
//! It never calls `block_on`, which panics inside a runtime. A caller on an async worker
//! thread still blocks that thread for the request's duration; async code should call the
//! store from `spawn_blocking`. Dropping the store, anywhere, shuts its runtime down in the
//! background.
//!
//! ## Retries and timeouts
//! The SDK's standard retry policy (3 attempts, exponential backoff) applies to every request,
//! conditional writes included. A conditional write whose first attempt landed but whose reply
//! was lost is retried and then fails its own condition: the caller sees
//! [`StoreError::Precondition`] for a write that happened. The log's protocol handles that by
//! re-reading the object (as [`graven_tlog::put_immutable`] does). Connecting times out after
//! [`CONNECT_TIMEOUT`], a whole operation (retries included) after [`OPERATION_TIMEOUT`], so an
//! unreachable endpoint is an error, not a hang.
//!
//! ## Credentials
//! The keys in the configuration ([`S3Config::from_url`] reads `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY`) come first. Without them, the AWS SDK's standard chain: the
//! environment, the shared config files and SSO, a web identity token file, a container
//! endpoint (ECS, EKS Pod Identity), the EC2 instance profile (IMDSv2); temporary credentials
//! are fetched again before they expire. [`S3Store::credential_source`] names the source.
//! Every S3 operation the store calls, and the IAM action it needs: [`iam::S3_CALLS`].

mod address;
mod config;
mod credentials;
mod error;
pub mod iam;
mod retention;
mod store;

pub use address::{MAX_PREFIX_LEN, UrlError, parse_url, validate_bucket};
pub use config::S3Config;
pub use error::{BucketProblem, S3Error};
pub use retention::{
    BucketReport, DefaultRetention, Retention, RetentionAsk, RetentionMode, RetentionPeriod, RetentionPlan,
    RetentionProblem, Versioning,
};
pub use store::{CONNECT_TIMEOUT, MAX_IN_FLIGHT, OPERATION_TIMEOUT, S3Store};
