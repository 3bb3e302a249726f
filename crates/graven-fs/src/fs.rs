//! The few filesystem operations Graven's durable writers need, behind a trait, so that crash
//! tests can run the real write paths on a simulated disk that forgets whatever was not synced.
//!
//! Contract, for every implementation:
//! - `write_file` creates or truncates a file and writes it; the data is *not* durable.
//! - `write_private` is `write_file` for secrets: afterwards the file is readable and writable
//!   by its owner only (mode 0600 on Unix), whether it was created or found; a file it creates
//!   never has wider permissions, not even for a moment.
//! - `sync_file` makes that file's current data durable (its name is not, yet).
//! - `rename` atomically replaces the target name; the change is not durable.
//! - `link` gives an existing file a second name, and fails with `AlreadyExists` (changing
//!   nothing) if that name is taken: an atomic "create if absent"; not durable.
//! - `remove_file` removes one name; not durable.
//! - `sync_dir` makes the current set of names in one directory durable.
//! - `create_dir` adds a directory entry; durable only after its parent's `sync_dir`.
//!   `create_dir_private` does the same for a directory only its owner may use (0700 on Unix).
//! - `read` returns the current contents, refusing files over `limit` bytes with
//!   `io::ErrorKind::FileTooLarge`; a missing file is `io::ErrorKind::NotFound`.
//!
//! What this assumes of a real disk: rename within a directory is atomic, `fsync` of a file
//! makes its data durable, and `fsync` of a directory makes its entries durable (POSIX and
//! Linux ext4/xfs behave so; see docs/storage.md).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// Filesystem operations, with the durability contract in the module docs.
pub trait Fs: std::fmt::Debug + Send + Sync {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>>;
    fn is_dir(&self, path: &Path) -> bool;
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    fn create_dir_private(&self, path: &Path) -> io::Result<()>;
    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    fn write_private(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn link(&self, existing: &Path, new: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
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

fn too_large(path: &Path, what: String) -> io::Error {
    io::Error::new(io::ErrorKind::FileTooLarge, format!("{}: {what}", path.display()))
}

impl Fs for RealFs {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let f = File::open(path)?;
        let len = f.metadata()?.len();
        if len > limit {
            return Err(too_large(path, format!("{len} bytes, over the {limit}-byte limit")));
        }
        let mut buf = Vec::with_capacity(len as usize);
        f.take(limit + 1).read_to_end(&mut buf)?;
        if buf.len() as u64 > limit {
            return Err(too_large(path, "the file grew past its limit while being read".into()));
        }
        Ok(buf)
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn create_dir_private(&self, path: &Path) -> io::Result<()> {
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect()
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
        f.write_all(data)
    }

    fn write_private(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path)?;
        // The mode above applies only to a file this call creates; one found (a temporary file
        // a crashed writer left) is narrowed before any secret goes into it.
        #[cfg(unix)]
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        f.write_all(data)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        // fsync through any descriptor flushes the inode's dirty data.
        OpenOptions::new().write(true).open(path)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn link(&self, existing: &Path, new: &Path) -> io::Result<()> {
        fs::hard_link(existing, new)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    #[cfg(unix)]
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    #[cfg(not(unix))]
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        // Directories cannot be opened for syncing here; a rename is as durable as the OS
        // makes it.
        Ok(())
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
