//! Fixtures shared by Graven's tests, each written once: the shared test vectors
//! ([`vectors`]), loopback addresses and a small HTTP server ([`net`]), a child process that
//! prints the address it listens on ([`process`]), and, with the feature `s3`, a real S3
//! service on SeaweedFS with a fresh bucket per test ([`s3`]).
//!
//! A dev-dependency only: no shipped crate may depend on it (`crates/graven/tests/
//! architecture.rs` checks that). It depends on no Graven crate but `graven-s3` (feature
//! `s3`), so any crate's tests can use it, the core's included. What is specific to one crate
//! stays in that crate's tests (the `graven` binary's runners in `crates/graven/tests/common`,
//! the server's in-process harness in `graven_server::testing`).
//!
//! Helpers panic, saying why, when a fixture cannot be had: a test fails, it never skips.

#![allow(clippy::panic, clippy::expect_used)] // a fixture that cannot be had fails the test at once

pub mod fs;
pub mod net;
pub mod process;
#[cfg(feature = "s3")]
pub mod s3;
/// A real RFC 3161 TSA (`openssl ts -reply` behind a loopback HTTP handler) and a test PKI.
pub mod tsa;

use std::path::PathBuf;

/// The shared test vectors: `GRAVEN_VECTORS` when set, else `shared/vectors` beside the
/// checkout (`<checkout>/../shared/vectors`). Panics, naming the place it looked, if the
/// directory is not there.
#[track_caller]
pub fn vectors() -> PathBuf {
    let p = match std::env::var_os("GRAVEN_VECTORS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    };
    assert!(p.is_dir(), "test vectors not found at {}; set GRAVEN_VECTORS", p.display());
    p
}
