//! What can be wrong with a log, as the verifier reports it.

use graven_core::checkpoint::{OpenError, VerifiedCheckpoint};
use graven_core::hash::Hash;
use graven_core::tile::TileDataError;

use crate::fetch::{CHECKPOINT, FetchError};

/// The first thing found wrong with a log. Each names the file and, where there is one, the
/// leaf index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("{path}: {source}")]
    Fetch { path: String, source: FetchError },
    #[error("{path} is missing (needed for tree size {size})")]
    Missing { path: String, size: u64 },
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] OpenError),
    #[error("{path}: {source}")]
    Data { path: String, source: TileDataError },
    #[error(
        "leaf {index}: entry in {bundle} hashes to {computed}, but {tile} holds {stored}; one of the two files was altered"
    )]
    LeafMismatch { index: u64, bundle: String, tile: String, computed: Hash, stored: Hash },
    #[error(
        "{tile}: hash {position} (covering leaves {first_leaf}..{end_leaf}) does not match the tree rebuilt from the entries; the tile was altered"
    )]
    TileMismatch { tile: String, position: u64, first_leaf: u64, end_leaf: u64 },
    #[error(
        "checkpoint: root {claimed} does not match {computed}, the root of the {size} entries in the bundles"
    )]
    RootMismatch { size: u64, claimed: Hash, computed: Hash },
    #[error(
        "checkpoint: root {claimed} does not match {computed}, the root of the remembered tree of size {from} extended by entries {from}..{size} from the bundles; the new entries or the checkpoint were altered"
    )]
    ExtendedRootMismatch { from: u64, size: u64, claimed: Hash, computed: Hash },
    #[error(
        "ROLLBACK: the log presents a checkpoint of size {} (root {}), but this verifier already verified size {} (root {}). The log went back in time: an old copy is being served, or entries were removed. Do not trust this copy; keep both checkpoints as evidence",
        .0.presented.size(), .0.presented.root(), .0.remembered.size(), .0.remembered.root()
    )]
    Rollback(Box<Divergence>),
    #[error("FORK: {}", .0.fork_detail())]
    Fork(Box<Divergence>),
    #[error(
        "the remembered checkpoint is for origin {remembered:?}, not {expected:?}; it cannot vouch for this log"
    )]
    TrustedOrigin { remembered: String, expected: String },
    #[error("entry {index}: {message}")]
    Visit { index: u64, message: String },
}

impl VerifyError {
    /// Whether this only says that the log could not be read, which is no evidence about the
    /// log at all: a file that could not be fetched (network, server error, HTTP 401/403, a
    /// disk error), or no checkpoint where the log was looked for (a wrong address, or nothing
    /// published there). Everything else is something that was read and found wrong, including
    /// a file that the signed checkpoint commits to and a reachable log does not have.
    pub fn is_outage(&self) -> bool {
        match self {
            VerifyError::Fetch { source, .. } => source.is_outage(),
            VerifyError::Missing { path, .. } => path == CHECKPOINT,
            _ => false,
        }
    }

    /// The two conflicting checkpoints, if this is a rollback or a fork.
    pub fn divergence(&self) -> Option<&Divergence> {
        match self {
            VerifyError::Rollback(d) | VerifyError::Fork(d) => Some(d),
            _ => None,
        }
    }
}

/// Two checkpoints of one log, both signed by its key, that cannot both be honest: the
/// remembered one and the one presented now. Together they are evidence against the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    pub remembered: VerifiedCheckpoint,
    pub presented: VerifiedCheckpoint,
    /// The root that the presented tree gives at the remembered size (from its tiles or
    /// rebuilt from its entries), when it is larger.
    pub root_at_remembered_size: Option<Hash>,
}

impl Divergence {
    fn fork_detail(&self) -> String {
        let (m, n) = (self.remembered.size(), self.presented.size());
        let what = match self.root_at_remembered_size {
            Some(x) if n > m => format!(
                "the checkpoint of size {n} (root {}) does not extend the checkpoint of size {m} (root {}) that this verifier already verified: the new tree gives root {x} at size {m}",
                self.presented.root(),
                self.remembered.root()
            ),
            _ => format!(
                "the log presents root {} for size {n}, but this verifier already verified root {} for that size",
                self.presented.root(),
                self.remembered.root()
            ),
        };
        format!(
            "{what}. Both checkpoints are signed by the log's key: the log rewrote its history or shows different histories to different readers (or its files or key were tampered with). Keep both checkpoints as evidence and alert the log's operator"
        )
    }
}

/// Why a [`scan_log`] visitor stopped the scan (its own message, shown as is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitError(pub String);
