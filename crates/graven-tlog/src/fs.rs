//! The few filesystem operations the writer needs, behind a trait, so that crash tests can run
//! the real commit path on a simulated disk that forgets whatever was not synced.
//!
//! Contract, for every implementation:
//! - `write_file` creates or truncates a file and writes it; the data is *not* durable.
//! - `sync_file` makes that file's current data durable (its name is not, yet).
//! - `rename` atomically replaces the target name; the change is not durable.
//! - `sync_dir` makes the current set of names in one directory durable.
//! - `create_dir` adds a directory entry; durable only after its parent's `sync_dir`.
//! - `read` returns the current contents, refusing files over `limit` bytes.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// Filesystem operations used by [`crate::LocalLog`].
pub trait Fs: std::fmt::Debug + Send + Sync {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>>;
    fn is_dir(&self, path: &Path) -> bool;
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes the exclusive writer lock for `dir`, held while the returned guard lives.
    /// `Ok(None)` if another writer holds it.
    fn lock(&self, dir: &Path) -> io::Result<Option<Box<dyn std::any::Any + Send + Sync>>>;
}

/// The real, local filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

/// Name of the writer's lock file inside a log directory.
pub const LOCK_FILE: &str = ".graven-lock";

impl Fs for RealFs {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let f = File::open(path)?;
        let len = f.metadata()?.len();
        if len > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is {len} bytes, over the {limit}-byte limit", path.display()),
            ));
        }
        let mut buf = Vec::with_capacity(len as usize);
        f.take(limit + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "file grew past its limit while being read",
            ));
        }
        Ok(buf)
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect()
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
        f.write_all(data)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        // fsync through any descriptor flushes the inode's dirty data.
        OpenOptions::new().write(true).open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock(&self, dir: &Path) -> io::Result<Option<Box<dyn std::any::Any + Send + Sync>>> {
        let path = dir.join(LOCK_FILE);
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Box::new(f))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}
