//! The one way Graven writes a whole small file durably and atomically. Every file it keeps
//! outside the log goes through here: the identity registry (`identities.json`), the
//! verifier's trust store, the log's signing key, `admin.token`, and the keys the CLI makes.
//!
//! # [`replace`]: the file holds the old bytes or the new, never a mix
//!
//! 1. Write the bytes to a temporary file beside the target, `.<name>.<pid>-<n>.tmp` (same
//!    directory, so the rename stays within one directory of one filesystem).
//! 2. fsync the temporary file. *A crash up to here leaves the target as it was (and perhaps
//!    the temporary file, which nothing reads).*
//! 3. Rename it over the target. *A crash from here until step 4 returns may leave either
//!    name durable, but both hold complete bytes: the old file's, or the new, synced in 2.*
//! 4. fsync the directory. *Only now does `replace` return `Ok`: the new bytes are durable.*
//!
//! # [`create`]: the file is absent or complete, and an existing file is never replaced
//!
//! Steps 1 and 2 as above, then 3. `link` the temporary file to the target name, which fails
//! with `AlreadyExists` and changes nothing if the name is taken (an atomic "create if
//! absent": a crash never leaves a half-written key file behind, which the next start would
//! refuse to read), 4. remove the temporary name, 5. fsync the directory.
//!
//! # The contract, for callers
//!
//! - `Ok(())`: the target holds exactly the bytes given, and will after a power cut.
//! - `Err(_)`: nothing is acknowledged. The target holds its old contents or the new ones,
//!   each complete (a step after the rename can fail); a reader sees one or the other. An
//!   error of kind `AlreadyExists` from [`create`] means the target existed and is untouched.
//! - The target's directory must exist; making *it* durable is the caller's job
//!   ([`create_dir_all`] does it).
//! - A temporary file is removed when a step fails, if the disk lets it; a crash can leave
//!   one behind. Its name starts with `.` and ends with `.tmp`: no caller's file is named so,
//!   and nothing reads it.
//! - Concurrent writers of one target (two processes, or two threads) each use their own
//!   temporary file, so the last rename wins with a whole file.
//! - With [`Access::Private`] every file and directory made here is its owner's only (0600,
//!   0700 on Unix) from the moment it exists.
//!
//! What it assumes of the disk is [`Fs`]'s contract: rename within a directory is atomic,
//! file and directory fsyncs are durable; [`create`] also needs hard links (every POSIX local
//! filesystem and NTFS have them; FAT and some network or FUSE filesystems do not, and there
//! `create` fails with the filesystem's error rather than fall back to a check-then-rename
//! that could replace a key). Crash tests run every step on [`crate::sim::SimFs`],
//! failing before and after each operation (`tests/atomic.rs`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fs::Fs;

/// Who may read what [`replace`], [`create`] and [`create_dir_all`] make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The process's default permissions (its umask decides).
    Default,
    /// The owner only: secrets, credentials, and the state a verifier relies on.
    Private,
}

/// Makes `path` hold `bytes`, durably and atomically (see the module docs).
pub fn replace(fs: &dyn Fs, path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    let (dir, tmp) = temp_beside(path)?;
    let result = (|| {
        write_synced(fs, &tmp, bytes, access)?;
        fs.rename(&tmp, path).map_err(step("renaming into place", path))?;
        fs.sync_dir(dir).map_err(step("syncing the directory", dir))
    })();
    if result.is_err() {
        // Gone already if the rename happened; otherwise it is of no use to anyone.
        let _ = fs.remove_file(&tmp);
    }
    result
}

/// Creates `path` holding `bytes`, durably and atomically, if and only if it does not exist
/// (see the module docs). An existing file is an error of kind `AlreadyExists`, and untouched.
pub fn create(fs: &dyn Fs, path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    let (dir, tmp) = temp_beside(path)?;
    let linked = write_synced(fs, &tmp, bytes, access)
        .and_then(|()| fs.link(&tmp, path).map_err(step("creating", path)));
    let removed = fs.remove_file(&tmp).map_err(step("removing", &tmp));
    linked?;
    removed?;
    fs.sync_dir(dir).map_err(step("syncing the directory", dir))
}

/// Creates `path` and any missing parent, each made durable in its parent before the next is
/// made, so that a file later made durable in `path` is reachable after a power cut.
pub fn create_dir_all(fs: &dyn Fs, path: &Path, access: Access) -> io::Result<()> {
    if fs.is_dir(path) {
        return Ok(());
    }
    let parent = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a directory", path.display()),
            ));
        }
    };
    create_dir_all(fs, parent, access)?;
    let made = match access {
        Access::Default => fs.create_dir(path),
        Access::Private => fs.create_dir_private(path),
    };
    match made {
        Ok(()) => {}
        // Another process made it meanwhile: its parent's sync is that process's job, but
        // doing it again costs little and keeps the guarantee.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && fs.is_dir(path) => {}
        Err(e) => return Err(step("creating", path)(e)),
    }
    fs.sync_dir(parent).map_err(step("syncing the directory", parent))
}

fn write_synced(fs: &dyn Fs, tmp: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    match access {
        Access::Default => fs.write_file(tmp, bytes),
        Access::Private => fs.write_private(tmp, bytes),
    }
    .map_err(step("writing", tmp))?;
    fs.sync_file(tmp).map_err(step("syncing", tmp))
}

/// The directory of `path` and a temporary name in it no other writer uses.
fn temp_beside(path: &Path) -> io::Result<(&Path, PathBuf)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} does not name a file", path.display()))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{}-{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    Ok((dir, dir.join(tmp)))
}

/// Adds which step failed, and on which path, keeping the error's kind.
fn step<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> io::Error + 'a {
    move |e| io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}
