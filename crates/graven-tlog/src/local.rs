//! A C2SP tiled log in a local directory, written durably with one commit point.
//!
//! The directory is laid out exactly as C2SP `tlog-tiles` specifies (`checkpoint`,
//! `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`), so any tlog client can read it, and
//! a static file server can publish it.
//!
//! ## The commit protocol
//! The signed `checkpoint` file is the only commit point. An append
//! 1. writes every new tile and bundle directly under its final name (each such name lies
//!    beyond the committed tree, so nothing refers to it yet),
//! 2. signs the new checkpoint and writes it to a temporary file,
//! 3. fsyncs all of these files and every directory it touched, concurrently,
//! 4. renames the checkpoint's temporary file over `checkpoint`, then fsyncs its directory.
//!
//! Files for sizes beyond the checkpoint are never read as part of the committed tree, and an
//! append never writes a file the committed tree refers to (full tiles below the committed
//! size are never rewritten; partial tiles are written under their new width). So a crash at any point leaves the previous checkpoint, and everything it covers,
//! valid. The next append simply overwrites whatever the interrupted one left behind.
//!
//! After any I/O error the log is poisoned: it refuses further appends until reopened, because
//! after a failed fsync the state of the page cache can no longer be trusted.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use graven_core::checkpoint::{Checkpoint, VerifiedCheckpoint};
use graven_core::hash::{Hash, TreeSize};
use graven_core::note::{self, SignerKey, VerifierKey};
use graven_core::tile::MAX_ENTRY_SIZE;
use graven_fs::{Fs, LOCK_FILE, RealFs};

use crate::durable;
use crate::error::{LogError, io_err};
use crate::pipeline::{Committed, Publish, Publishing, append_and_wait, nothing_to_commit};
use crate::tail::Tail;
use crate::writer::{LogWriter, OnPublished, Published};

/// A local tiled log open for appending. Holds an exclusive lock on the directory.
pub struct LocalLog {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    key: SignerKey,
    size: TreeSize,
    root: Hash,
    checkpoint: Option<String>,
    poisoned: bool,
    /// The committed tree's right edge, partial tiles and partial bundle, kept from the last
    /// commit so the next one need not read and re-check them. `None` after open.
    tail: Option<Tail>,
    _lock: Box<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for LocalLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLog")
            .field("dir", &self.dir)
            .field("key", &self.key)
            .field("size", &self.size)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl LocalLog {
    /// Opens the log in `dir`, creating it (and the directory) if it is empty or missing.
    /// An existing log must have been signed by `key`.
    pub fn open(dir: &Path, key: SignerKey) -> Result<Self, LogError> {
        Self::open_with(Arc::new(RealFs), dir, key)
    }

    /// [`LocalLog::open`] on any [`Fs`], such as the crash-simulating [`graven_fs::sim::SimFs`].
    pub fn open_with(fs: Arc<dyn Fs>, dir: &Path, key: SignerKey) -> Result<Self, LogError> {
        let mut batch = durable::Batch::new(fs.clone());
        if !fs.is_dir(dir) {
            batch.create_dirs(dir).map_err(io_err("creating", dir))?;
            batch.sync().map_err(io_err("creating", dir))?;
        }
        let lock = match fs.lock(dir).map_err(io_err("locking", dir))? {
            Some(l) => l,
            None => return Err(LogError::Locked(dir.to_path_buf())),
        };
        let cp_path = dir.join("checkpoint");
        let mut log = LocalLog {
            fs: fs.clone(),
            dir: dir.to_path_buf(),
            key,
            size: TreeSize(0),
            root: graven_core::empty_root(),
            checkpoint: None,
            poisoned: false,
            tail: None,
            _lock: lock,
        };
        match fs.read(&cp_path, note::MAX_NOTE_SIZE as u64) {
            Ok(bytes) => {
                let vkey = log.key.verifier();
                let cp = VerifiedCheckpoint::open(&bytes, &vkey, vkey.name())?;
                log.size = cp.size();
                log.root = cp.root();
                log.checkpoint = Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Only our own debris (an interrupted first append) may be here.
                for name in fs.list(dir).map_err(io_err("listing", dir))? {
                    let name = name.to_string_lossy();
                    let ours = name == "tile" || name == LOCK_FILE || name.starts_with(".checkpoint.tmp");
                    if !ours {
                        return Err(LogError::NotALog(dir.to_path_buf()));
                    }
                }
            }
            Err(e) => return Err(io_err("reading", &cp_path)(e)),
        }
        Ok(log)
    }

    pub fn size(&self) -> TreeSize {
        self.size
    }

    pub fn root(&self) -> Hash {
        self.root
    }

    pub fn verifier(&self) -> VerifierKey {
        self.key.verifier()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current signed checkpoint, if the log has published one.
    pub fn checkpoint(&self) -> Option<&str> {
        self.checkpoint.as_deref()
    }

    /// Appends `entries` and publishes one new checkpoint covering them. Either every entry
    /// is appended and the new checkpoint is durable when this returns `Ok`, or the log's
    /// committed state is unchanged. Entries are validated before anything is written.
    pub fn append<E: AsRef<[u8]>>(&mut self, entries: &[E]) -> Result<Published, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if let Some((index, e)) = entries.iter().enumerate().find(|(_, e)| e.as_ref().len() > MAX_ENTRY_SIZE)
        {
            return Err(LogError::EntryTooLarge { index, len: e.as_ref().len() });
        }
        if let (true, Some(cp)) = (entries.is_empty(), &self.checkpoint) {
            return Ok(Published {
                old_size: self.size,
                new_size: self.size,
                root: self.root,
                checkpoint: cp.clone(),
                leaf_hashes: Vec::new(),
            });
        }
        let result = self.commit(entries);
        if matches!(result, Err(LogError::Io { .. })) {
            self.poisoned = true;
        }
        result
    }

    /// Reads the committed tree's right edge, partial tiles and partial bundle from disk, and
    /// checks that they reproduce the committed root.
    fn load_tail(&self) -> Result<Tail, LogError> {
        let (fs, dir) = (self.fs.as_ref(), &self.dir);
        Tail::load(self.size, self.root, &|rel: &str, limit| fs.read(&dir.join(rel), limit))
    }

    /// The commit path: steps 1 to 3 as a pipelined writer takes them (`seal_unchecked`: the
    /// right edge, every new tile and bundle under its final name, not synced, the checkpoint
    /// signed), then steps 4 and 5 here. Each step says what a crash at that point leaves
    /// behind; an error anywhere poisons the log (`append`), so the in-memory state the seal
    /// moved on is never used again.
    fn commit<E: AsRef<[u8]>>(&mut self, entries: &[E]) -> Result<Published, LogError> {
        let entries: Vec<&[u8]> = entries.iter().map(AsRef::as_ref).collect();
        let sealed = self.seal_unchecked(&entries)?;
        let mut batch = sealed.work.ok_or(LogError::Invariant("a sealed batch without its files"))?;
        // 3. The checkpoint to a temporary file, held back from its name. Crash here: stray
        //    temporary files only.
        let cp_path = self.dir.join("checkpoint");
        batch.hold(&cp_path, sealed.note.as_bytes()).map_err(io_err("writing", &cp_path))?;
        // 4. Every tile durable under its final name, and the held checkpoint's contents
        //    (fsyncs in parallel, then directory fsyncs). Crash before this returns: files
        //    beyond the committed size at most, which the committed checkpoint never refers
        //    to; the old checkpoint is still the commit point.
        batch.sync().map_err(io_err("syncing directories of", &self.dir))?;
        // 5. Commit: rename the checkpoint over the old one and fsync the directory. A crash
        //    before the rename leaves the old checkpoint; after it but before the directory
        //    sync, either one may survive, and both are valid because every tile of the new
        //    tree is already durable.
        batch.publish().map_err(io_err("publishing", &cp_path))?;
        Ok(Published {
            old_size: sealed.old_size,
            new_size: sealed.new_size,
            root: sealed.root,
            checkpoint: sealed.note,
            leaf_hashes: sealed.leaf_hashes,
        })
    }
}

impl LocalLog {
    /// Steps 1 and 2 of an append (see `commit`) for a pipelined writer: every new tile and
    /// bundle written under its final name, not synced, and the checkpoint signed, not
    /// written; the returned batch of files is made durable and the checkpoint published by
    /// the publishing thread ([`LocalPublisher`]). Each file lies beyond this writer's newest
    /// tree, so beyond every tree it or a crash could leave published: a crash leaves the
    /// published checkpoint valid whatever of these files survives.
    pub(crate) fn seal(&mut self, entries: &[&[u8]]) -> Result<Committed<durable::Batch>, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if let Some((index, e)) = entries.iter().enumerate().find(|(_, e)| e.len() > MAX_ENTRY_SIZE) {
            return Err(LogError::EntryTooLarge { index, len: e.len() });
        }
        let result = self.seal_unchecked(entries);
        if matches!(result, Err(LogError::Io { .. })) {
            self.poisoned = true;
        }
        result
    }

    fn seal_unchecked(&mut self, entries: &[&[u8]]) -> Result<Committed<durable::Batch>, LogError> {
        let old = self.size;
        let dir = self.dir.clone();
        let mut batch = durable::Batch::within(self.fs.clone(), &self.dir);
        let tail = match self.tail.take() {
            Some(t) if t.size == old => t,
            _ => self.load_tail()?,
        };
        let ext = tail.extend(entries)?;
        for (rel, bytes) in &ext.writes {
            let path = dir.join(rel);
            batch.write_new(&path, bytes).map_err(io_err("writing", &path))?;
        }
        let new = ext.tail.size;
        let cp = Checkpoint::new(self.key.name(), new, ext.root)
            .map_err(|_| LogError::Invariant("the key name is not a valid origin"))?;
        let note = self
            .key
            .sign(&cp.to_text())
            .map_err(|_| LogError::Invariant("checkpoint text is not note text"))?;
        self.size = new;
        self.root = ext.root;
        self.checkpoint = Some(note.clone());
        self.tail = Some(ext.tail);
        Ok(Committed {
            old_size: old,
            new_size: new,
            root: ext.root,
            note,
            leaf_hashes: ext.leaf_hashes,
            work: Some(batch),
        })
    }

    /// The publishing half, for a pipelined writer's thread.
    pub(crate) fn publisher(&self) -> LocalPublisher {
        LocalPublisher { fs: self.fs.clone(), dir: self.dir.clone() }
    }
}

/// Steps 4 and 5 of a local append (see `LocalLog::commit`) for a round of pipelined commits:
/// the files of every batch and the newest checkpoint, held, made durable in one concurrent
/// round of fsyncs; then the checkpoint renamed over the old one and its directory synced.
pub(crate) struct LocalPublisher {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
}

impl Publish for LocalPublisher {
    type Work = durable::Batch;

    fn publish(&mut self, works: Vec<durable::Batch>, note: &str, _size: TreeSize) -> Result<(), LogError> {
        let mut batch = durable::Batch::within(self.fs.clone(), &self.dir);
        for w in works {
            batch.absorb(w);
        }
        let cp_path = self.dir.join("checkpoint");
        batch.hold(&cp_path, note.as_bytes()).map_err(io_err("writing", &cp_path))?;
        batch.sync().map_err(io_err("syncing directories of", &self.dir))?;
        batch.publish().map_err(io_err("publishing", &cp_path))
    }
}

/// A [`LocalLog`] whose commits are pipelined (`pipeline`): the next batch's files are written
/// while the previous batches are made durable and published, and one round of fsyncs and
/// one checkpoint publish every batch written meanwhile. Acknowledged still means durable and
/// published; a crash anywhere leaves the last published checkpoint valid.
pub struct PipelinedLocalLog {
    log: LocalLog,
    publishing: Publishing<durable::Batch>,
}

impl std::fmt::Debug for PipelinedLocalLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelinedLocalLog").field("log", &self.log).finish_non_exhaustive()
    }
}

impl PipelinedLocalLog {
    /// Pipelines the commits of `log`, publishing an empty log's first checkpoint first.
    pub fn new(mut log: LocalLog) -> Result<Self, LogError> {
        if log.checkpoint().is_none() {
            log.append::<&[u8]>(&[])?;
        }
        let publishing = Publishing::start(log.publisher(), log.size())?;
        Ok(PipelinedLocalLog { log, publishing })
    }
}

impl LogWriter for PipelinedLocalLog {
    fn append_batch(&mut self, entries: &[&[u8]]) -> Result<Published, LogError> {
        append_and_wait(self, entries)
    }

    fn submit(&mut self, entries: &[&[u8]], done: OnPublished) -> Result<(), LogError> {
        if entries.is_empty() {
            nothing_to_commit(self, done);
            return Ok(());
        }
        let sealed = self.publishing.wait_until(|_| true).and_then(|()| self.log.seal(entries));
        match sealed {
            Ok(committed) => {
                self.publishing.queue(committed, done);
                Ok(())
            }
            Err(e) => {
                done(Err(e.duplicate()));
                Err(e)
            }
        }
    }

    fn flush(&mut self) {
        self.publishing.flush();
    }

    fn ready(&mut self) {
        // One batch queued at most: on a local disk a batch costs CPU (its hashes, signature
        // and files), which many small batches would multiply.
        self.publishing.wait_taken(1);
    }

    fn size(&self) -> TreeSize {
        self.log.size
    }
    fn root(&self) -> Hash {
        self.log.root
    }
    fn checkpoint(&self) -> Option<&str> {
        self.log.checkpoint.as_deref()
    }
}

impl LogWriter for LocalLog {
    fn append_batch(&mut self, entries: &[&[u8]]) -> Result<Published, LogError> {
        self.append(entries)
    }
    fn size(&self) -> TreeSize {
        self.size
    }
    fn root(&self) -> Hash {
        self.root
    }
    fn checkpoint(&self) -> Option<&str> {
        self.checkpoint.as_deref()
    }
}
