//! Durable file replacement: write a temporary file, fsync it, rename it over the target,
//! then fsync the directory. See `docs/storage.md` for what this assumes of the filesystem.
//!
//! Directory fsyncs are batched: a caller writes many files, then calls [`Batch::sync`] once,
//! which fsyncs each touched directory once. Nothing written through a batch may be relied on
//! until `sync` returns `Ok`.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::fs::Fs;

/// `Path::new("log").parent()` is the empty path, which means the current directory.
fn current_if_empty(dir: &Path) -> &Path {
    if dir.as_os_str().is_empty() { Path::new(".") } else { dir }
}

/// Files written since the last sync, and the directories whose entries changed.
#[derive(Debug)]
pub struct Batch<'a> {
    fs: &'a dyn Fs,
    dirs: BTreeSet<PathBuf>,
}

impl<'a> Batch<'a> {
    pub fn new(fs: &'a dyn Fs) -> Self {
        Batch { fs, dirs: BTreeSet::new() }
    }

    /// Creates `dir` and any missing parents, remembering each parent whose entries changed.
    pub fn create_dirs(&mut self, dir: &Path) -> io::Result<()> {
        let dir = current_if_empty(dir);
        if self.fs.is_dir(dir) {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            let parent = current_if_empty(parent);
            self.create_dirs(parent)?;
            self.dirs.insert(parent.to_path_buf());
        }
        match self.fs.create_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    }

    /// Writes `data` to `path` through a temporary file and an atomic rename. The file is
    /// fsynced before the rename; the directory entry is durable after [`Batch::sync`].
    pub fn write(&mut self, path: &Path, data: &[u8]) -> io::Result<()> {
        let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent directory"))?;
        let dir = current_if_empty(dir);
        let name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
        self.create_dirs(dir)?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        // Crash from here to the rename: at most a stray temporary file, never referenced.
        self.fs.write_file(&tmp, data)?;
        self.fs.sync_file(&tmp)?;
        // Crash after the rename but before the directory sync: the new name may or may not
        // survive; either way the file behind it is complete.
        self.fs.rename(&tmp, path)?;
        self.dirs.insert(dir.to_path_buf());
        Ok(())
    }

    /// Fsyncs every directory touched since the last sync. After `Ok`, every file written
    /// through this batch is durable under its final name.
    pub fn sync(&mut self) -> io::Result<()> {
        // Deepest first, so a new directory's own entries are durable before its parent
        // makes the directory itself reachable.
        let mut dirs: Vec<PathBuf> = std::mem::take(&mut self.dirs).into_iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            self.fs.sync_dir(&dir)?;
        }
        Ok(())
    }
}
