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

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io { op, path: path.to_path_buf(), source }
}
