//! The witness's durable state: one file per origin, `<data>/checkpoints/<origin hash>`,
//! holding the latest cosigned checkpoint (the note the monitoring endpoint serves), written
//! through [`graven_tlog::Fs`] so that the crash tests run this very code on a simulated disk.
//!
//! ## What it assumes of the disk
//! Exactly the [`graven_tlog::fs`] contract: file data is durable after `sync_file`, a
//! `rename` atomically replaces its target, and names in a directory are durable after
//! `sync_dir` of that directory.
//!
//! ## The commit protocol, and what a crash at each step leaves
//! [`Store::persist`] replaces a record:
//!
//! 1. `write_file(<hash>.tmp)`: a crash leaves the old record; the temporary file is garbage
//!    (ignored at open, overwritten by the next write).
//! 2. `sync_file(<hash>.tmp)`: the same.
//! 3. `rename(<hash>.tmp, <hash>)`: the new name is not durable yet, so a crash leaves the old
//!    record or the new one, each whole (the new file's data was synced in step 2).
//! 4. `sync_dir(checkpoints)`: the new record is durable. Only now may the witness return the
//!    cosignature it holds.
//!
//! A record is never written in place, so no crash can leave a mix of two records or a torn
//! one. Every record is checked before it is written (it must read back as a record this
//! witness made) and after it is read back at open; a record that does not is an error that
//! stops the witness, never an absent record: forgetting a record would let the witness cosign
//! a fork of what it cosigned before.
//!
//! The data directory is locked (`Fs::lock`) while a store is open, so two witness processes
//! never share one state (each would check against its own copy and could cosign both sides of
//! a fork).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use graven_core::cosignature::CosignerKey;
use graven_core::note::MAX_NOTE_SIZE;
use graven_tlog::Fs;

use crate::machine::{CosignedCheckpoint, RecordError, origin_hash};

/// The directory of records inside the data directory.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
const TMP_SUFFIX: &str = ".tmp";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{} is in use by another witness process (its lock is held)", .0.display())]
    Locked(PathBuf),
    #[error("{} is not a record this witness made: {why}", path.display())]
    Record { path: PathBuf, why: RecordError },
    #[error("{} holds the record of origin {origin:?}, whose file would be named {expected}", path.display())]
    Misfiled { path: PathBuf, origin: String, expected: String },
    #[error("{} is not a file the witness writes (expected <64 hex digits> or <64 hex digits>.tmp)", .0.display())]
    Unexpected(PathBuf),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { what, path: path.to_path_buf(), source }
}

fn is_hash_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The records of one data directory. See the module docs for the protocol.
pub struct Store {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    key: CosignerKey,
    _lock: Box<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).field("key", &self.key).finish()
    }
}

/// Makes `dir` exist durably (created, then its parent's entry synced).
fn ensure_dir(fs: &dyn Fs, dir: &Path) -> Result<(), StoreError> {
    if fs.is_dir(dir) {
        return Ok(());
    }
    fs.create_dir(dir).map_err(io("creating", dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs.sync_dir(parent).map_err(io("syncing", parent))?;
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the store in `data`, locks it, and reads back every record,
    /// each of which must carry a valid cosignature by `key`. Leftover temporary files are
    /// ignored.
    pub fn open(
        fs: Arc<dyn Fs>,
        data: &Path,
        key: &CosignerKey,
    ) -> Result<(Store, Vec<CosignedCheckpoint>), StoreError> {
        ensure_dir(fs.as_ref(), data)?;
        let lock =
            fs.lock(data).map_err(io("locking", data))?.ok_or_else(|| StoreError::Locked(data.into()))?;
        let dir = data.join(CHECKPOINTS_DIR);
        ensure_dir(fs.as_ref(), &dir)?;
        let mut names = fs.list(&dir).map_err(io("listing", &dir))?;
        names.sort();
        let mut records = Vec::new();
        for name in names {
            let path = dir.join(&name);
            let Some(name) = name.to_str() else {
                return Err(StoreError::Unexpected(path));
            };
            if name.strip_suffix(TMP_SUFFIX).is_some_and(is_hash_name) {
                continue;
            }
            if !is_hash_name(name) {
                return Err(StoreError::Unexpected(path));
            }
            let bytes = fs.read(&path, MAX_NOTE_SIZE as u64).map_err(io("reading", &path))?;
            let record = CosignedCheckpoint::from_stored(&bytes, key)
                .map_err(|why| StoreError::Record { path: path.clone(), why })?;
            let expected = origin_hash(record.origin());
            if expected != name {
                return Err(StoreError::Misfiled { path, origin: record.origin().to_owned(), expected });
            }
            records.push(record);
        }
        Ok((Store { fs, dir, key: key.clone(), _lock: lock }, records))
    }

    /// Makes `record` the durable record of its origin. When this returns `Ok`, a crash can no
    /// longer bring back an older record. On `Err` the disk holds the old record or the new one
    /// (either is safe, since the new one is consistent with the old and was not yet
    /// returned); the caller must not trust its view of the disk again until it reopens.
    pub fn persist(&self, record: &CosignedCheckpoint) -> Result<(), StoreError> {
        let name = origin_hash(record.origin());
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        // Right before writing: the bytes read back as this very record, so what the witness
        // writes it can always open again.
        match CosignedCheckpoint::from_stored(record.note_bytes(), &self.key) {
            Ok(back) if back == *record => {}
            Ok(_) => return Err(StoreError::Record { path, why: RecordError::ReadsBackDifferently }),
            Err(why) => return Err(StoreError::Record { path, why }),
        }
        // Crash points: see the module docs, steps 1 to 4.
        self.fs.write_file(&tmp, record.note_bytes()).map_err(io("writing", &tmp))?;
        self.fs.sync_file(&tmp).map_err(io("syncing", &tmp))?;
        self.fs.rename(&tmp, &path).map_err(io("renaming into place", &path))?;
        self.fs.sync_dir(&self.dir).map_err(io("syncing", &self.dir))?;
        Ok(())
    }
}
