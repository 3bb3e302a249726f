//! Everything about the S3 store against a real SeaweedFS (see `graven_testkit::s3`), in one
//! test process so that one SeaweedFS serves them all:
//!
//! - `conformance`: the `ObjectStore` conformance suite of `graven_tlog::conformance` (the
//!   store contract and the object-store log's protocol), the same one the in-memory store
//!   passes;
//! - `s3`: what only S3 has: keys under the prefix, concurrent immutable writes, Object Lock
//!   modes and periods, bucket checks, network and credential errors, async callers, and
//!   tampering undone from the retained versions.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod conformance;
mod s3;
