//! The trust store: the last checkpoint verified for each log, so that the next run can hold
//! the log to it (rollback and fork detection) and verify only what is new.
//!
//! Layout: one file per (origin, verifier key ID) in one directory, named
//! `<origin, escaped>+<key ID, 8 hex digits>.checkpoint`. A file holds the checkpoint's signed
//! note exactly as received, so it is re-verified with the log's key every time it is read: a
//! file that was edited, truncated or swapped for another log's is refused, never trusted.
//!
//! Escaping keeps every name inside the directory: ASCII letters, digits, `-` and `_` stand for
//! themselves, `.` too except in first place, and every other byte becomes `%XX`. The mapping
//! is one-to-one, so two origins never share a file. Over-long origins are cut and suffixed with
//! a SHA-256 digest of the whole origin.
//!
//! Writes are atomic and durable, with [`graven_fs::atomic::replace`]: a temporary file in the
//! same directory (named with a leading `.`, which no store file has), written, fsynced,
//! renamed over the old file, and the directory fsynced. A crash leaves the old checkpoint or
//! the new one, never a mix, and a `remember` that returned is durable (a power-cut test runs
//! every step on a simulated disk). The directory and its files are the user's only.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use graven_core::checkpoint::{OpenError, VerifiedCheckpoint};
use graven_core::hash::{Hash, TreeSize};
use graven_core::note::{self, VerifierKey};
use graven_fs::atomic::{self, Access};
use graven_fs::{Fs, RealFs};

use crate::report::VerifiedLog;

/// The most bytes read back from a store file: the note size limit.
pub const MAX_FILE_BYTES: u64 = note::MAX_NOTE_SIZE as u64;
/// Longest escaped origin kept whole in a file name (file names are limited to 255 bytes).
const MAX_ORIGIN_IN_NAME: usize = 160;

/// Why the trust store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error(
        "trust store {}: {source}. Check that it is a readable and writable directory, or choose another with --trust-dir or GRAVEN_TRUST_DIR",
        path.display()
    )]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "trust store file {} is larger than {limit} bytes, the most a checkpoint can be; graven did not write it. Move it aside to inspect it (the log will then be trusted again on first use)",
        path.display()
    )]
    TooLarge { path: PathBuf, limit: u64 },
    #[error(
        "trust store file {} does not hold a checkpoint of this log signed by its key ({source}); it was altered or replaced. Keep it for inspection and move it aside: the next run will trust the log again on first use",
        path.display()
    )]
    Corrupt { path: PathBuf, source: OpenError },
    #[error(
        "FORK: another run stored a checkpoint of size {size} with root {stored} in {}, but this run verified root {verified} for that size; both are signed by the log's key. Keep both as evidence",
        path.display()
    )]
    ConflictingUpdate { path: PathBuf, size: u64, stored: Hash, verified: Hash },
    #[error(
        "no place for the trust store: neither XDG_CONFIG_HOME nor HOME is set. Pass --trust-dir <dir> or set GRAVEN_TRUST_DIR"
    )]
    NoLocation,
}

/// What [`TrustStore::remember`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remembered {
    /// The verified checkpoint is now the remembered one.
    Updated { path: PathBuf },
    /// The store already held a checkpoint of the same size and root; left as it was.
    Unchanged { path: PathBuf },
    /// Another run stored a larger checkpoint meanwhile; it was kept.
    KeptLarger { path: PathBuf, size: TreeSize },
}

impl Remembered {
    pub fn path(&self) -> &Path {
        match self {
            Remembered::Updated { path }
            | Remembered::Unchanged { path }
            | Remembered::KeptLarger { path, .. } => path,
        }
    }
}

/// A directory of remembered checkpoints. Nothing is created until the first
/// [`TrustStore::remember`].
#[derive(Debug, Clone)]
pub struct TrustStore {
    dir: PathBuf,
    fs: Arc<dyn Fs>,
}

impl TrustStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self::with_fs(Arc::new(RealFs), dir)
    }

    /// A store on any [`Fs`], such as the crash-simulating [`graven_fs::sim::SimFs`].
    pub fn with_fs(fs: Arc<dyn Fs>, dir: impl Into<PathBuf>) -> Self {
        TrustStore { dir: dir.into(), fs }
    }

    /// `explicit` if given (a flag, or `GRAVEN_TRUST_DIR`), else `$XDG_CONFIG_HOME/graven/trust`,
    /// else `$HOME/.config/graven/trust` (`%APPDATA%\graven\trust` on Windows). `var` reads
    /// the environment; relative XDG and HOME values are ignored, as the XDG spec asks.
    pub fn locate(
        explicit: Option<PathBuf>,
        var: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, TrustError> {
        if let Some(dir) = explicit {
            return Ok(TrustStore::new(dir));
        }
        let abs = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
        let dir = abs("XDG_CONFIG_HOME")
            .map(|c| c.join("graven").join("trust"))
            .or_else(|| abs("HOME").map(|h| h.join(".config").join("graven").join("trust")))
            .or_else(|| abs("APPDATA").map(|a| a.join("graven").join("trust")))
            .ok_or(TrustError::NoLocation)?;
        Ok(TrustStore::new(dir))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that remembers `origin` under `key`.
    pub fn path_for(&self, origin: &str, key: &VerifierKey) -> PathBuf {
        self.dir.join(file_name(origin, key.id()))
    }

    /// The remembered checkpoint of `origin` under `key`, verified again with `key`, or `None`
    /// if there is none yet.
    pub fn load(&self, key: &VerifierKey, origin: &str) -> Result<Option<VerifiedCheckpoint>, TrustError> {
        let path = self.path_for(origin, key);
        let bytes = match self.fs.read(&path, MAX_FILE_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
                return Err(TrustError::TooLarge { path, limit: MAX_FILE_BYTES });
            }
            Err(source) => return Err(TrustError::Io { path, source }),
        };
        match VerifiedCheckpoint::open(&bytes, key, origin) {
            Ok(cp) => Ok(Some(cp)),
            Err(source) => Err(TrustError::Corrupt { path, source }),
        }
    }

    /// Makes `log`'s checkpoint the remembered one. Only a [`VerifiedLog`] can be remembered,
    /// so the store only ever advances to a checkpoint that fully verified.
    ///
    /// Another run may have stored a checkpoint since this one loaded its own: a larger one is
    /// kept, and one of the same size with another root is a fork.
    pub fn remember(&self, log: &VerifiedLog) -> Result<Remembered, TrustError> {
        let cp = log.checkpoint();
        let origin = cp.checkpoint().origin();
        let path = self.path_for(origin, log.key());
        if let Some(current) = self.load(log.key(), origin)? {
            if current.size() > cp.size() {
                return Ok(Remembered::KeptLarger { path, size: current.size() });
            }
            if current.size() == cp.size() {
                if current.root() != cp.root() {
                    return Err(TrustError::ConflictingUpdate {
                        path,
                        size: cp.size().0,
                        stored: current.root(),
                        verified: cp.root(),
                    });
                }
                return Ok(Remembered::Unchanged { path });
            }
        }
        // Each new directory's own entry is durable before a file in it counts.
        atomic::create_dir_all(&*self.fs, &self.dir, Access::Private)
            .map_err(|source| TrustError::Io { path: self.dir.clone(), source })?;
        atomic::replace(&*self.fs, &path, cp.note_bytes(), Access::Private)
            .map_err(|source| TrustError::Io { path: path.clone(), source })?;
        Ok(Remembered::Updated { path })
    }
}

/// The store file name for `origin` under key ID `key_id`. Never empty, never `.` or `..`,
/// never contains a separator, never starts with `.`.
fn file_name(origin: &str, key_id: u32) -> String {
    let mut name = String::with_capacity(origin.len() + 20);
    for (i, b) in origin.bytes().enumerate() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => name.push(char::from(b)),
            b'.' if i > 0 => name.push('.'),
            _ => {
                let _ = write!(name, "%{b:02X}");
            }
        }
    }
    if name.len() > MAX_ORIGIN_IN_NAME {
        // Only ASCII was pushed, so any byte offset is a char boundary.
        name.truncate(MAX_ORIGIN_IN_NAME);
        let digest = graven_core::hash::leaf_hash(origin.as_bytes()).to_hex();
        name.push('~');
        name.push_str(&digest[..32]);
    }
    let _ = write!(name, "+{key_id:08x}.checkpoint");
    name
}

#[cfg(test)]
mod tests;
