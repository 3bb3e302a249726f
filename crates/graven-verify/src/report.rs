//! What a verification covered, and the verified log it vouches for.

use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::hash::{Hash, TreeSize};
use graven_core::note::VerifierKey;

/// How much of a log a run re-checks when it holds the log to a remembered checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only what the remembered checkpoint did not cover: the bundles and tiles at and past
    /// its right edge. Files the remembered tree already had in full are not read again.
    Incremental,
    /// Every bundle and tile, as on first use, and still held to the remembered checkpoint.
    Full,
}

/// What the run held the log to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Nothing was remembered: the checkpoint is trusted on first use (its signature and the
    /// full re-verification are all that vouch for it).
    FirstUse,
    /// The log extends (or equals) the remembered checkpoint.
    Consistent,
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub origin: String,
    pub size: TreeSize,
    pub root: Hash,
    pub bundles: u64,
    pub tiles: u64,
    pub entry_bytes: u64,
    /// Entries whose bundles were re-hashed.
    pub entries_hashed: u64,
    /// The size of the remembered checkpoint the log was held to.
    pub previous_size: Option<TreeSize>,
    pub trust: Trust,
    /// What was actually done: `Incremental` only when there was something to build on.
    pub mode: Mode,
}

/// A log that verified: its checkpoint's signature, every file the run was asked to check,
/// and its consistency with the remembered checkpoint. Only [`verify_log_since`] makes one,
/// and [`TrustStore::remember`] accepts nothing else.
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    pub(crate) checkpoint: VerifiedCheckpoint,
    pub(crate) key: VerifierKey,
    pub(crate) report: Report,
}

impl VerifiedLog {
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }
    pub fn key(&self) -> &VerifierKey {
        &self.key
    }
    pub fn report(&self) -> &Report {
        &self.report
    }
}
