//! The index's one error type.

/// Errors from the index.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The redb file could not be opened, read or written.
    #[error("index storage error: {0}")]
    Storage(#[from] redb::Error),
    /// [`Index::add`] was called with a gap after the indexed entries.
    #[error("index entries must be added in order: expected first index {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
    /// The cursor is malformed, or was issued for another order or other filters.
    #[error("invalid cursor: malformed, or issued for a different order or different filters")]
    BadCursor,
    /// A query parameter is out of range or malformed.
    #[error("bad query: {0}")]
    BadQuery(&'static str),
    /// The index file holds data this code did not write. The index is derived data: delete it (or
    /// [`Index::clear`]) and rebuild.
    #[error("index is corrupt ({0}); clear and rebuild it")]
    Corrupt(&'static str),
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for IndexError {
            fn from(e: $t) -> Self {
                IndexError::Storage(e.into())
            }
        }
    )*};
}
storage_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
