//! The HTTP API in process, one file per topic: a real node (log, engine, registry with its
//! bootstrap admin, search index) in a temporary directory, every request through
//! `graven_server::http::app` by the harness of `graven_server::testing`. What needs a real
//! process (kill -9, SIGTERM, S3 failover) or the CLI is tested in `crates/graven/tests`.
//!
//! One binary (one link) for all topics. Named `api`, not `http`: a test target named like a
//! dependency shares its file names in `target/`, and `cargo clean -p graven-server` would
//! delete the `http` crate's artifacts with it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod access;
mod alerts;
mod answers;
mod attribution;
mod client_signed;
mod cloudtrail;
mod console;
mod denied;
mod identities;
mod input;
mod inventory;
mod leaves;
mod mtls;
mod oidc;
mod openbao;
mod openbao_socket;
mod ops;
mod otlp;
mod proofs;
mod search;
mod signatures;
mod sources;
mod stream;
mod syslog;
mod tiles;
mod util;
