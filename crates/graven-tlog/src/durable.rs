//! Durable file replacement: write a temporary file, fsync it, rename it over the target,
//! then fsync the directory.
//!
//! What this assumes of the filesystem (POSIX, and what ext4/xfs/btrfs provide):
//! - `fsync` on a file makes its data and size durable;
//! - `rename` within one directory atomically replaces the target: a reader (or a crash) sees
//!   the old file or the new one, never a mix;
//! - the rename itself, like any new directory entry, is durable only after `fsync` on the
//!   directory. New directories need their parent fsynced too.
//!
//! Directory fsyncs are batched: a caller writes many files, then calls [`Batch::sync`] once,
//! which fsyncs each touched directory once. Nothing written through a batch may be relied on
//! until `sync` returns `Ok`.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Files written since the last sync, and the directories whose entries changed.
#[derive(Debug, Default)]
pub struct Batch {
    dirs: BTreeSet<PathBuf>,
    /// Test hook: fail (as a crash would) once this many more file operations have run.
    crash_after: Option<usize>,
}

impl Batch {
    pub fn new(crash_after: Option<usize>) -> Self {
        Batch { dirs: BTreeSet::new(), crash_after }
    }

    fn step(&mut self) -> io::Result<()> {
        if let Some(n) = self.crash_after.as_mut() {
            if *n == 0 {
                return Err(io::Error::other("injected crash (failpoint)"));
            }
            *n -= 1;
        }
        Ok(())
    }

    /// Creates `dir` and any missing parents, remembering each parent whose entries changed.
    fn create_dirs(&mut self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.create_dirs(parent)?;
            self.dirs.insert(parent.to_path_buf());
        }
        match fs::create_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    }

    /// Writes `data` to `path` through a temporary file and an atomic rename. The file is
    /// fsynced before the rename; the directory entry is durable after [`Batch::sync`].
    pub fn write(&mut self, path: &Path, data: &[u8]) -> io::Result<()> {
        let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent directory"))?;
        let name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
        self.create_dirs(dir)?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        self.step()?;
        // Crash here: at most a stray temporary file, never referenced.
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(data)?;
        self.step()?;
        f.sync_all()?;
        drop(f);
        self.step()?;
        // Crash after the rename but before the directory sync: the new name may or may not
        // survive; either way the file behind it is complete.
        fs::rename(&tmp, path)?;
        self.dirs.insert(dir.to_path_buf());
        Ok(())
    }

    /// Fsyncs every directory touched since the last sync. After `Ok`, every file written
    /// through this batch is durable under its final name.
    pub fn sync(&mut self) -> io::Result<()> {
        for dir in std::mem::take(&mut self.dirs) {
            self.step()?;
            File::open(&dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Reads a whole file, refusing files over `limit` bytes before reading them.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is {len} bytes, over the {limit}-byte limit", path.display()),
        ));
    }
    let mut buf = Vec::with_capacity(len as usize);
    io::Read::read_to_end(&mut io::Read::take(f, limit + 1), &mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "file grew past its limit while being read"));
    }
    Ok(buf)
}
