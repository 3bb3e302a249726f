//! Why opening, appending to or following a log failed: one error for both writers.

use std::io;
use std::path::{Path, PathBuf};

use graven_core::checkpoint::OpenError;
use graven_core::tile::MAX_ENTRY_SIZE;

use crate::objstore::StoreError;

/// Why opening or appending to a local log failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("{op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("another process is writing to the log in {}; wait for it to finish", .0.display())]
    Locked(PathBuf),
    #[error("{} is not empty and holds no checkpoint, so it is not a log; use an empty or new directory", .0.display())]
    NotALog(PathBuf),
    #[error("the existing checkpoint does not open with this key: {0}; is this the right key for this log?")]
    Checkpoint(#[from] OpenError),
    #[error("stored tiles of the committed tree are unreadable: {0}")]
    Tiles(String),
    #[error(
        "stored tiles do not reproduce the checkpoint's root; the log directory was altered. Run `graven verify` on it"
    )]
    RootMismatch,
    #[error("entry {index} is {len} bytes; entries are at most {MAX_ENTRY_SIZE} bytes")]
    EntryTooLarge { index: usize, len: usize },
    #[error("the log hit a write error earlier and refuses further writes until it is reopened")]
    Poisoned,
    #[error("object store: {0}")]
    Store(#[from] StoreError),
    #[error(
        "another node has become the log's writer and moved the log on; this node stopped writing, and acknowledged nothing it had not committed"
    )]
    Fenced,
    #[error("the log's head object (graven/head) is unusable: {0}")]
    Head(String),
    #[error(
        "{0} holds a checkpoint but no graven/head, so it is not a Graven object-store log (or its head was deleted); use an empty prefix"
    )]
    NotAnObjectLog(String),
    #[error("a batch of {bytes} bytes is larger than one object-store commit can hold ({max} bytes)")]
    BatchTooLarge { bytes: usize, max: usize },
    #[error("internal invariant broken: {0}")]
    Invariant(&'static str),
}

impl LogError {
    /// The same error for a second recipient (several batches failing for one cause): the
    /// variants that carry an I/O or open error are given as their message.
    pub fn duplicate(&self) -> LogError {
        match self {
            LogError::Locked(p) => LogError::Locked(p.clone()),
            LogError::NotALog(p) => LogError::NotALog(p.clone()),
            LogError::Tiles(s) => LogError::Tiles(s.clone()),
            LogError::RootMismatch => LogError::RootMismatch,
            LogError::EntryTooLarge { index, len } => LogError::EntryTooLarge { index: *index, len: *len },
            LogError::Poisoned => LogError::Poisoned,
            LogError::Store(e) => LogError::Store(e.clone()),
            LogError::Fenced => LogError::Fenced,
            LogError::Head(s) => LogError::Head(s.clone()),
            LogError::NotAnObjectLog(s) => LogError::NotAnObjectLog(s.clone()),
            LogError::BatchTooLarge { bytes, max } => LogError::BatchTooLarge { bytes: *bytes, max: *max },
            LogError::Invariant(s) => LogError::Invariant(s),
            LogError::Io { op, path, source } => LogError::Io {
                op,
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            LogError::Checkpoint(e) => LogError::Head(format!("its checkpoint does not open: {e}")),
        }
    }
}

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io { op, path: path.to_path_buf(), source }
}
