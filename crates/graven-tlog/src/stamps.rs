//! Trusted-time tokens kept beside the checkpoints they stamp (docs/trusted-time.md).
//!
//! Names, relative to the log's root, on a local directory and on an object store alike:
//! - `graven/timestamp/<size, 20 digits>`: the DER of the RFC 3161 token that stamps the
//!   checkpoint of that size;
//! - `graven/checkpoint/<size, 20 digits>`: that checkpoint, exactly as the log's signer wrote
//!   it. On an object store the writer archives every checkpoint there before publishing it
//!   (`objlog`); a local log has no archive, so [`StampStore::put`] writes the stamped
//!   checkpoint there first.
//!
//! Both are create-only: written once, never replaced (identical bytes written again are
//! success, other bytes a [`StampError::Conflict`]). On an object store the token is written
//! like the archive, with [`put_immutable`], so under the same retention (Object Lock). The
//! tokens live under their own prefix, so the archive listing that is the log's high-water
//! mark is unchanged. Nothing here checks a token: the server verifies one before storing it,
//! and a verifier checks what it reads.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use graven_fs::Fs;
use graven_fs::atomic::{self, Access};

use crate::objlog::ARCHIVE_PREFIX;
use crate::objstore::{ObjectStore, StoreError, put_immutable, sizes_under};

/// Where every token is kept.
pub const TIMESTAMP_PREFIX: &str = "graven/timestamp/";
/// Tokens larger than this are not stored or read (graven-tsa refuses them too).
pub const MAX_TOKEN_BYTES: u64 = 64 << 10;
/// Largest checkpoint note read back (the note size limit).
const MAX_NOTE_BYTES: u64 = graven_core::note::MAX_NOTE_SIZE as u64;

/// The key of the token that stamps the checkpoint of `size`.
pub fn timestamp_key(size: u64) -> String {
    format!("{TIMESTAMP_PREFIX}{size:020}")
}

pub use crate::objstore::parse_size_name;

/// Why a stamp could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StampError {
    #[error("{op} {key}: {source}")]
    Io { op: &'static str, key: String, source: io::Error },
    #[error("object store: {0}")]
    Store(#[from] StoreError),
    #[error(
        "{key} already holds different bytes; stamped checkpoints and their tokens are never replaced (another node stamped this size first, or the log was altered)"
    )]
    Conflict { key: String },
}

/// Where a log's stamps are kept: its directory, or its object store.
#[derive(Debug, Clone)]
pub enum StampStore {
    Dir { fs: Arc<dyn Fs>, dir: PathBuf },
    Objects(Arc<dyn ObjectStore>),
}

impl StampStore {
    /// Stores `token` as the stamp of `note`, the checkpoint of `size`, create-only (see the
    /// module docs). On a directory the checkpoint is written first, so a token is never
    /// without the checkpoint it stamps; each file is durable (fsynced, and its directory)
    /// before this returns.
    pub fn put(&self, size: u64, note: &[u8], token: &[u8]) -> Result<(), StampError> {
        let key = timestamp_key(size);
        match self {
            StampStore::Dir { fs, dir } => {
                create_file(fs.as_ref(), dir, &archive_key(size), note)?;
                create_file(fs.as_ref(), dir, &key, token)
            }
            // The writer archived the checkpoint before publishing it.
            StampStore::Objects(store) => match put_immutable(store.as_ref(), &key, token) {
                // A longer object already there is refused as too large to compare: other bytes.
                Err(StoreError::Conflict { key } | StoreError::TooLarge { key, .. }) => {
                    Err(StampError::Conflict { key })
                }
                r => Ok(r?),
            },
        }
    }

    /// The token that stamps the checkpoint of `size`, if there is one.
    pub fn token(&self, size: u64) -> Result<Option<Vec<u8>>, StampError> {
        self.read(&timestamp_key(size), MAX_TOKEN_BYTES)
    }

    /// The archived checkpoint of `size` (on a local log: only stamped ones), if there is one.
    pub fn checkpoint(&self, size: u64) -> Result<Option<Vec<u8>>, StampError> {
        self.read(&archive_key(size), MAX_NOTE_BYTES)
    }

    /// The stamped sizes in `after + 1 ..= until`, in increasing order, at most `limit`.
    pub fn list(&self, after: u64, until: u64, limit: usize) -> Result<Vec<u64>, StampError> {
        match self {
            StampStore::Dir { fs, dir } => {
                let names = match fs.list(&dir.join(TIMESTAMP_PREFIX)) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(source) => {
                        return Err(StampError::Io { op: "listing", key: TIMESTAMP_PREFIX.into(), source });
                    }
                };
                let mut sizes: Vec<u64> = names
                    .iter()
                    .filter_map(|n| n.to_str().and_then(parse_size_name))
                    .filter(|s| *s > after && *s <= until)
                    .collect();
                sizes.sort_unstable();
                sizes.truncate(limit);
                Ok(sizes)
            }
            StampStore::Objects(store) => {
                Ok(sizes_under(store.as_ref(), TIMESTAMP_PREFIX, after, until, limit)?)
            }
        }
    }

    /// The largest stamped size at most `until`, if any. On an object store, a binary search
    /// over the key space with "first key after" (at most about 64 requests), so a restart does
    /// not list every token.
    pub fn latest(&self, until: u64) -> Result<Option<u64>, StampError> {
        match self {
            StampStore::Dir { .. } => Ok(self.list(0, until, usize::MAX)?.last().copied()),
            StampStore::Objects(store) => {
                // Invariant: `found` is stamped (or None), and no size in (hi, until] is.
                let (mut lo, mut hi) = (0u64, until);
                let mut found = None;
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    let next = store
                        .first_key_after(TIMESTAMP_PREFIX, &timestamp_key(mid))?
                        .and_then(|k| k.strip_prefix(TIMESTAMP_PREFIX).and_then(parse_size_name));
                    match next {
                        Some(s) if s <= hi => {
                            found = Some(s);
                            lo = s;
                        }
                        _ => hi = mid,
                    }
                }
                if found.is_none() && self.token(0)?.is_some() {
                    return Ok(Some(0));
                }
                Ok(found)
            }
        }
    }

    fn read(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, StampError> {
        match self {
            StampStore::Dir { fs, dir } => match fs.read(&dir.join(key), limit) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(StampError::Io { op: "reading", key: key.into(), source }),
            },
            StampStore::Objects(store) => Ok(store.get(key, limit)?.map(|o| o.bytes)),
        }
    }
}

fn archive_key(size: u64) -> String {
    format!("{ARCHIVE_PREFIX}{size:020}")
}

/// Creates `dir/key` with `bytes` (durably, never replacing); the same bytes already there are
/// success.
fn create_file(fs: &dyn Fs, dir: &std::path::Path, key: &str, bytes: &[u8]) -> Result<(), StampError> {
    let path = dir.join(key);
    let io = |op| move |source| StampError::Io { op, key: key.to_owned(), source };
    if let Some(parent) = path.parent() {
        atomic::create_dir_all(fs, parent, Access::Default).map_err(io("creating the directory of"))?;
    }
    match atomic::create(fs, &path, bytes, Access::Default) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs.read(&path, bytes.len() as u64) {
            Ok(existing) if existing == bytes => Ok(()),
            Ok(_) => Err(StampError::Conflict { key: key.to_owned() }),
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
                Err(StampError::Conflict { key: key.to_owned() })
            }
            Err(source) => Err(StampError::Io { op: "reading", key: key.to_owned(), source }),
        },
        Err(source) => Err(io("creating")(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objstore::MemStore;

    fn stores() -> (tempfile::TempDir, Vec<StampStore>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StampStore::Dir { fs: Arc::new(graven_fs::RealFs), dir: tmp.path().join("log") };
        (tmp, vec![dir, StampStore::Objects(Arc::new(MemStore::new()))])
    }

    #[test]
    fn create_only_listed_in_order_and_the_latest_found() {
        let (_tmp, stores) = stores();
        for s in stores {
            assert_eq!(s.latest(1000).unwrap(), None);
            for size in [7u64, 300, 12, 999, 1000, 5000] {
                s.put(size, format!("note {size}\n").as_bytes(), format!("token {size}").as_bytes()).unwrap();
            }
            // Again with the same bytes: fine. Other bytes: refused, the first kept.
            s.put(12, b"note 12\n", b"token 12").unwrap();
            assert!(matches!(s.put(12, b"note 12\n", b"other"), Err(StampError::Conflict { .. })), "{s:?}");
            assert_eq!(s.token(12).unwrap().unwrap(), b"token 12");
            assert_eq!(s.token(13).unwrap(), None);
            assert_eq!(s.list(0, u64::MAX, 100).unwrap(), [7, 12, 300, 999, 1000, 5000]);
            assert_eq!(s.list(7, 1000, 100).unwrap(), [12, 300, 999, 1000]);
            assert_eq!(s.list(7, 1000, 2).unwrap(), [12, 300]);
            for (until, latest) in
                [(6, None), (7, Some(7)), (11, Some(7)), (999, Some(999)), (4999, Some(1000))]
            {
                assert_eq!(s.latest(until).unwrap(), latest, "{until} {s:?}");
            }
            assert_eq!(s.latest(u64::MAX).unwrap(), Some(5000));
            if let StampStore::Dir { .. } = s {
                assert_eq!(s.checkpoint(300).unwrap().unwrap(), b"note 300\n");
            }
        }
    }

    #[test]
    fn the_object_store_keeps_tokens_under_retention() {
        let mem = Arc::new(MemStore::new());
        let s = StampStore::Objects(mem.clone());
        s.put(42, b"note\n", b"token").unwrap();
        assert!(mem.retained(&timestamp_key(42)));
        assert_eq!(timestamp_key(42), "graven/timestamp/00000000000000000042");
        assert_eq!(
            mem.keys(),
            ["graven/timestamp/00000000000000000042"],
            "the note is the writer's to archive"
        );
    }

    #[test]
    fn names_parse_strictly() {
        assert_eq!(parse_size_name("00000000000000000042"), Some(42));
        for bad in [
            "42",
            "0000000000000000042",
            "+0000000000000000042",
            "000000000000000000420",
            "9999999999999999999x",
        ] {
            assert_eq!(parse_size_name(bad), None, "{bad}");
        }
        assert_eq!(parse_size_name("99999999999999999999"), None, "beyond u64");
    }
}
