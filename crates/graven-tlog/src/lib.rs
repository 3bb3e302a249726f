//! Graven's log writers and what they share, each durable with one commit point:
//!
//! - [`LocalLog`] (`local`): a C2SP tiled log in a local directory; the commit protocol is in
//!   that module's docs and in docs/storage.md.
//! - [`ObjectLog`] (`objlog`): the log on an object store ([`ObjectStore`], `objstore`), its
//!   head moved by compare-and-swap; what a replica checks before serving (`replica`);
//!   [`PipelinedLog`] (`pipeline`): its commits pipelined, the next head committed while a
//!   thread of its own writes and publishes the earlier ones.
//! - [`StampStore`] (`stamps`): trusted-time tokens beside the checkpoints they stamp.
//! - [`LogWriter`] (`writer`): what the sequencer drives either through; [`Published`], the
//!   result of a commit; [`LogError`] (`error`).
//! - `tail` (the committed tree's right edge and partial files, which both writers extend) and
//!   `durable` (the local writer's batch of fsyncs).
//! - `conformance` (feature `testing`): the one test suite every [`ObjectStore`] passes, run
//!   on [`MemStore`] here and on S3 in `graven-s3`.
//!
//! Files go through [`Fs`], from `graven-fs` (re-exported here with the simulated disk,
//! [`sim`]), so the crash tests run the real commit path.

#[cfg(feature = "testing")]
pub mod conformance;
mod durable;
mod error;
mod local;
pub mod objlog;
pub mod objstore;
pub mod pipeline;
pub mod replica;
pub mod stamps;
mod tail;
mod writer;

pub use error::LogError;
/// The filesystem layer (its trait, the real filesystem, the simulated disk), from `graven-fs`.
pub use graven_fs::{Fs, LOCK_FILE, RealFs, sim};
pub use local::{LocalLog, PipelinedLocalLog};
pub use objlog::{ObjectLog, read_object, read_published};
#[cfg(feature = "verify")]
pub use objstore::StoreFetch;
pub use objstore::{CachedStore, Cond, MemStore, Object, ObjectStore, StoreError, put_immutable};
pub use pipeline::PipelinedLog;
pub use stamps::{StampError, StampStore};
pub use writer::{LogWriter, MAX_BUNDLE_BYTES, MAX_TILE_BYTES, OnPublished, Published};
