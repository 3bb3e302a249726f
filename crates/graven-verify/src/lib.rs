//! Verifies a C2SP tiled log end to end, trusting nothing but a verifier key and, once it has
//! seen the log, the last checkpoint it verified.
//!
//! This crate depends on `graven-core` (and `graven-fs` for its trust store, `graven-tsa` for
//! time-stamp tokens) only, never on Graven's writer or server: anyone can check a log without
//! running our code for producing it.
//!
//! [`verify_log`] checks the checkpoint signature, re-hashes every entry of every bundle,
//! rebuilds the tree, compares every stored hash of every tile with the rebuilt one, and
//! compares the rebuilt root with the checkpoint. It streams: memory stays `O(log n)` tiles.
//!
//! [`verify_log_since`] does the same while holding the log to a checkpoint verified earlier
//! (kept in a [`TrustStore`]): a smaller tree is a rollback, a tree that does not extend the
//! remembered one is a fork, and in [`Mode::Incremental`] only what the remembered checkpoint
//! did not already cover is fetched and hashed.
//!
//! [`verify_log_stamped`] also checks the log's RFC 3161 time-stamp tokens against configured
//! TSA roots ([`timestamps`], with `graven-tsa`); the trust store remembers the newest one.
//!
//! [`LogPolicy`] holds a checkpoint to a C2SP `tlog-policy` (a quorum of witness
//! cosignatures) after it verified; [`tlog_proof`] reads and writes C2SP `tlog-proof` files.

pub mod bundle;
mod bundle_write;
pub mod client_sigs;
mod error;
mod fetch;
mod files;
mod lenient;
pub mod remote;
mod report;
pub mod text;
pub mod timestamps;
pub mod tlog_proof;
mod trust;
mod verify;
mod walk;
mod witnessed;

pub use bundle_write::{BundleWriteError, BundleWriter};
pub use error::{Divergence, VerifyError, VisitError};
pub use fetch::{DEFAULT_FETCH_AHEAD, DirFetch, Fetch, FetchError, MAX_BUNDLE_BYTES, MAX_TILE_BYTES};
#[cfg(feature = "http")]
pub use fetch::{HttpFetch, explain_request_error};
pub use files::{fetch_bundle, fetch_checkpoint, fetch_entry, fetch_tile, tile_hashes};
pub use report::{Mode, Report, Trust, VerifiedLog};
pub use timestamps::{CheckedStamp, Stamps, verify_log_stamped};
pub use trust::{Remembered, RememberedStamp, StoredCheckpoint, TrustError, TrustStore};
pub use verify::{scan_log, verify_log, verify_log_since, verify_log_since_visiting};
pub use witnessed::{LogPolicy, PolicyLogError, WitnessError, WitnessedCheckpoint, WitnessedLog};
