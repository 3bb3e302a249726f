//! A C2SP tiled log on an object store (S3 and compatibles), with one commit point that
//! advances only by compare-and-swap, so two writers can never publish diverging trees.
//!
//! ## Objects
//! - `checkpoint`, `tile/...`, `tile/entries/...`: the C2SP tlog-tiles layout, exactly as the
//!   local log writes it, so any tlog client can read the bucket directly.
//! - `graven/head`: the commit point. It holds the latest batch itself: the size and root the
//!   batch starts from, its entries, and the signed checkpoint of the tree that ends with them.
//!   Written with `If-Match` on the ETag the writer last saw (`If-None-Match: *` for the first).
//! - `graven/checkpoint/<size, 20 digits>`: every published checkpoint, archived.
//!
//! Tiles, bundles and archived checkpoints are written create-only and under retention (Object
//! Lock), so no one can replace or delete them; `checkpoint` and `graven/head` are the only
//! objects that change.
//!
//! ## An append
//! 1. compute every new tile and bundle, and sign the new checkpoint (no I/O);
//! 2. **commit**: replace `graven/head` with the batch, `If-Match` the previous head's ETag.
//!    If another writer moved the head, the condition fails and this writer is *fenced*: it
//!    acknowledges nothing and stops. Once this write succeeds the batch is durable in the
//!    store and is part of the log, whatever happens to this process;
//! 3. write the tiles and bundles (create-only: bytes identical to an existing object are
//!    fine, other bytes are an error), and archive the checkpoint, all at once;
//! 4. replace `checkpoint`, `If-Match` the ETag of the one this writer published last;
//! 5. acknowledge.
//!
//! With pipelined commits (`pipeline`), step 2 of the next batch runs while step 3 and 4 of
//! earlier ones do: its head then also carries every entry of the batches whose objects are
//! not all written yet (the head starts where the written tree ends), and one step 3 and 4
//! finishes every batch committed meanwhile, publishing the newest checkpoint.
//!
//! Every object of step 3 is a function of the head alone, so whoever opens the log next
//! (this node after a restart, or a standby taking over) reads the head and finishes steps 3
//! and 4 with identical bytes. A writer that dies anywhere leaves a log that the next writer
//! completes, and nothing is ever written under a name the published tree refers to with
//! different bytes: a create-only write can never be blocked by debris.
//!
//! ## Opening
//! 1. read `graven/head`; none: a new log, unless `checkpoint` exists (not an object log) or
//!    an archived checkpoint does (the head was deleted);
//! 2. list the archive past the head's size: anything there means the head was rolled back;
//! 3. check the head's checkpoint and entries against the stored tiles, then finish steps 3
//!    and 4 of its batch (publishing finds a newer checkpoint if the log moved on).
//!
//! Each refusal rests on two reads, the head and then something written after a head. Another
//! writer committing between them makes the second read find its newer objects, so a refusal
//! is made only after re-reading the head and finding it unchanged (same ETag, or still
//! absent); if it moved, opening starts over from the newer head, up to [`OPEN_ATTEMPTS`]
//! times. A real rollback or deletion holds still and is refused at once.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use graven_clock::Clock;
use graven_core::checkpoint::{Checkpoint, VerifiedCheckpoint};
use graven_core::hash::{Hash, TreeSize};
use graven_core::note::{self, SignerKey, VerifierKey};
use graven_core::tile::MAX_ENTRY_SIZE;

use crate::error::LogError;
use crate::objstore::{Cond, ObjectStore, StoreError};
use crate::tail::Tail;
use crate::writer::{LogWriter, MAX_TILE_BYTES, Published};

/// The public, current checkpoint (C2SP tlog-tiles).
pub const CHECKPOINT_KEY: &str = "checkpoint";
/// The commit point.
pub const HEAD_KEY: &str = "graven/head";
/// Where every published checkpoint is archived.
pub const ARCHIVE_PREFIX: &str = "graven/checkpoint/";
/// Largest head: a batch of at most this many bytes of entries, plus its framing.
pub const MAX_HEAD_BYTES: u64 = 96 << 20;
/// Largest batch of entries one append may write to an object store.
pub const MAX_BATCH_BYTES: usize = 64 << 20;

const HEAD_MAGIC: &str = "graven-head v1";
/// Attempts of one request on an I/O error (the answer may have been lost, not the request).
const ATTEMPTS: u32 = 4;
/// Attempts of [`ObjectLog::open`] while other writers keep moving the log on under it.
pub const OPEN_ATTEMPTS: u32 = 8;

/// The archive key of the checkpoint of `size`.
pub fn archive_key(size: u64) -> String {
    format!("{ARCHIVE_PREFIX}{size:020}")
}

/// One committed batch, as stored in `graven/head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub from: TreeSize,
    pub from_root: Hash,
    pub to: TreeSize,
    /// The signed checkpoint of size `to`.
    pub checkpoint: String,
    pub entries: Vec<Vec<u8>>,
}

impl Head {
    /// `graven-head v1\n<from> <from root hex>\n<to> <checkpoint bytes>\n<checkpoint><entries>`,
    /// each entry as a 2-byte big-endian length and its bytes.
    pub fn encode<E: AsRef<[u8]>>(
        from: TreeSize,
        from_root: Hash,
        to: TreeSize,
        checkpoint: &str,
        entries: &[E],
    ) -> Vec<u8> {
        let body: usize = entries.iter().map(|e| e.as_ref().len() + 2).sum();
        let mut out = Vec::with_capacity(128 + checkpoint.len() + body);
        out.extend_from_slice(
            format!("{HEAD_MAGIC}\n{} {}\n{} {}\n", from.0, from_root.to_hex(), to.0, checkpoint.len())
                .as_bytes(),
        );
        out.extend_from_slice(checkpoint.as_bytes());
        for e in entries {
            let e = e.as_ref();
            // Entries were checked against MAX_ENTRY_SIZE (which fits in 2 bytes) before this.
            out.extend_from_slice(&(e.len().min(MAX_ENTRY_SIZE) as u16).to_be_bytes());
            out.extend_from_slice(e);
        }
        out
    }

    /// Parses a head, refusing anything malformed with a reason.
    pub fn parse(bytes: &[u8]) -> Result<Head, String> {
        let mut rest = bytes;
        let mut line = |what: &str| -> Result<&str, String> {
            let end = rest
                .iter()
                .take(128)
                .position(|&b| b == b'\n')
                .ok_or_else(|| format!("the {what} line is missing or too long"))?;
            let l = std::str::from_utf8(&rest[..end]).map_err(|_| format!("the {what} line is not UTF-8"))?;
            rest = &rest[end + 1..];
            Ok(l)
        };
        if line("version")? != HEAD_MAGIC {
            return Err(format!("it does not start with {HEAD_MAGIC:?}"));
        }
        let num = |s: Option<&str>, what: &str| -> Result<u64, String> {
            s.filter(|s| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("its {what} is not a decimal number"))
        };
        let l = line("from")?;
        let mut it = l.split(' ');
        let from = num(it.next(), "start size")?;
        let from_root = it
            .next()
            .and_then(graven_core::hex::decode)
            .and_then(|b| Hash::from_slice(&b).ok())
            .ok_or("its start root is not 64 hex digits")?;
        let l = line("to")?;
        let mut it = l.split(' ');
        let to = num(it.next(), "end size")?;
        let cp_len = num(it.next(), "checkpoint length")?;
        if cp_len > note::MAX_NOTE_SIZE as u64 || cp_len > rest.len() as u64 {
            return Err("its checkpoint length is out of range".into());
        }
        if to < from {
            return Err("it ends before it starts".into());
        }
        let (cp, mut body) = rest.split_at(cp_len as usize);
        let checkpoint = std::str::from_utf8(cp).map_err(|_| "its checkpoint is not UTF-8")?.to_owned();
        let count = to - from;
        // Each entry takes at least its 2-byte length, which bounds the count by the bytes.
        if count > body.len() as u64 / 2 {
            return Err(format!("it announces {count} entries but holds fewer"));
        }
        // The count is bounded by the bytes, but each entry costs a 24-byte Vec header: do not
        // reserve more than the bytes themselves could justify.
        let mut entries = Vec::with_capacity((count as usize).min(body.len() / 64 + 1));
        for i in 0..count {
            if body.len() < 2 {
                return Err(format!("entry {} is cut short", from + i));
            }
            let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
            if body.len() < 2 + len {
                return Err(format!("entry {} is cut short", from + i));
            }
            entries.push(body[2..2 + len].to_vec());
            body = &body[2 + len..];
        }
        if !body.is_empty() {
            return Err(format!("{} bytes follow the last entry", body.len()));
        }
        Ok(Head { from: TreeSize(from), from_root, to: TreeSize(to), checkpoint, entries })
    }
}

/// Reads `key` for a tile source: a missing object is `NotFound`.
pub fn read_object(store: &dyn ObjectStore, key: &str, limit: u64) -> io::Result<Vec<u8>> {
    match store.get(key, limit) {
        Ok(Some(o)) => Ok(o.bytes),
        Ok(None) => Err(io::Error::new(io::ErrorKind::NotFound, format!("{key} does not exist"))),
        Err(e @ StoreError::TooLarge { .. }) => {
            Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
        }
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}

/// The published checkpoint of an object-store log, checked against the log's key and
/// against the stored tiles (which must reproduce its root). `None` if nothing is published.
/// This is what a read replica serves.
pub fn read_published(
    store: &dyn ObjectStore,
    key: &VerifierKey,
) -> Result<Option<(String, VerifiedCheckpoint)>, LogError> {
    let Some(o) = store.get(CHECKPOINT_KEY, note::MAX_NOTE_SIZE as u64)? else {
        return Ok(None);
    };
    let cp = check_published(store, key, &o.bytes)?;
    Ok(Some((String::from_utf8_lossy(&o.bytes).into_owned(), cp)))
}

/// [`read_published`]'s checks, of checkpoint bytes already read.
pub(crate) fn check_published(
    store: &dyn ObjectStore,
    key: &VerifierKey,
    note: &[u8],
) -> Result<VerifiedCheckpoint, LogError> {
    let cp = VerifiedCheckpoint::open(note, key, key.name())?;
    Tail::load(cp.size(), cp.root(), &|rel, limit| read_object(store, rel, limit))?;
    Ok(cp)
}

/// How a request that failed with an I/O error is retried: `attempts` in all, waiting
/// `first_wait`, then four times longer each time.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { attempts: ATTEMPTS, first_wait: Duration::from_millis(50) }
    }
}

/// The root of the tree of `size`, computed from the stored tiles of the published tree of
/// `published` (for checking that a new checkpoint extends one served before: see
/// `replica`).
pub(crate) fn root_at(
    store: &dyn ObjectStore,
    published: TreeSize,
    size: TreeSize,
) -> Result<Hash, LogError> {
    let mut src = graven_core::tile_source::TileHashes::new(published, |t: graven_core::tile::TileId| {
        read_object(store, &t.path(), MAX_TILE_BYTES)
    });
    graven_core::merkle::root(&mut src, size).map_err(|e| LogError::Tiles(e.to_string()))
}

/// Retries `op` on I/O errors, whose outcome is unknown; other errors are answers. Waits on
/// `clock`.
fn retry_with<T>(
    policy: Retry,
    clock: &dyn Clock,
    mut op: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut wait = policy.first_wait;
    let mut attempt = 1;
    loop {
        match op() {
            Err(StoreError::Io { .. }) if attempt < policy.attempts => {
                clock.sleep(wait);
                wait *= 4;
                attempt += 1;
            }
            r => return r,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// A store error left this node's view uncertain; reopen to go on.
    Poisoned,
    /// Another writer moved the log on; this node must not write again.
    Fenced,
}

/// A tiled log on an object store, open for appending. Safe against any number of other
/// writers on the same store: at most one of them can move the head at a time, and the others
/// are fenced (see the module documentation).
pub struct ObjectLog {
    pub(crate) store: Arc<dyn ObjectStore>,
    key: SignerKey,
    size: TreeSize,
    root: Hash,
    checkpoint: Option<String>,
    head_etag: Option<String>,
    /// Steps 3 and 4: the objects, the archive and the public checkpoint.
    pub(crate) publisher: Publisher,
    tail: Option<Tail>,
    state: State,
    retry: Retry,
    /// What the retries wait on.
    clock: Arc<dyn Clock>,
}

/// A batch whose head has landed (step 2): durable and part of the log, not yet published.
pub(crate) struct Sealed {
    pub(crate) old_size: TreeSize,
    pub(crate) new_size: TreeSize,
    pub(crate) root: Hash,
    /// The signed checkpoint of `new_size`.
    pub(crate) note: String,
    /// The tiles and bundles of the tree of `new_size` that the batch adds to the one before it.
    pub(crate) writes: Vec<(String, Vec<u8>)>,
    pub(crate) leaf_hashes: Vec<Hash>,
    /// The head's ETag once this batch's head landed.
    pub(crate) head_etag: Option<String>,
}

impl std::fmt::Debug for ObjectLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectLog")
            .field("store", &self.store.location())
            .field("size", &self.size)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ObjectLog {
    /// Opens the log in `store`, creating it if the store holds none. If the last writer
    /// committed a batch but did not finish writing its tiles or publishing its checkpoint,
    /// this finishes both, with the same bytes. An existing log must be signed by `key`.
    pub fn open(store: Arc<dyn ObjectStore>, key: SignerKey) -> Result<Self, LogError> {
        Self::open_with(store, key, Retry::default())
    }

    /// [`ObjectLog::open`] with its own retry policy.
    ///
    /// Another writer may move the log on while this one opens it (a standby taking over
    /// from a live writer, or a fenced writer reopening); opening then starts over from the
    /// newer head, up to [`OPEN_ATTEMPTS`] times, and after that fails with
    /// [`LogError::Fenced`].
    pub fn open_with(store: Arc<dyn ObjectStore>, key: SignerKey, retry: Retry) -> Result<Self, LogError> {
        Self::open_on(store, key, retry, graven_clock::system())
    }

    /// [`ObjectLog::open_with`], its retries waiting on `clock` (the engine's: a simulated
    /// clock in its simulation).
    pub fn open_on(
        store: Arc<dyn ObjectStore>,
        key: SignerKey,
        retry: Retry,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LogError> {
        let mut attempt = 1;
        loop {
            match Self::open_once(store.clone(), key.clone(), retry, clock.clone()) {
                Err(LogError::Fenced) if attempt < OPEN_ATTEMPTS => attempt += 1,
                r => return r,
            }
        }
    }

    fn open_once(
        store: Arc<dyn ObjectStore>,
        key: SignerKey,
        retry: Retry,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LogError> {
        let mut log = ObjectLog {
            store: store.clone(),
            key: key.clone(),
            size: TreeSize(0),
            root: graven_core::empty_root(),
            checkpoint: None,
            head_etag: None,
            publisher: Publisher {
                store: store.clone(),
                key: key.verifier(),
                retry,
                clock: clock.clone(),
                public_etag: None,
            },
            tail: None,
            state: State::Open,
            retry,
            clock,
        };
        // Every check below reads the head first and something else after it. Another writer
        // may commit in between (its head, then its tiles, archive and checkpoint), so what
        // the second read finds past the head is evidence against the store only if the head
        // is still the one read: otherwise the log moved on, and opening starts over
        // (`Fenced`, which `open_with` retries from the newer head).
        let Some(obj) =
            retry_with(log.retry, log.clock.as_ref(), || log.store.get(HEAD_KEY, MAX_HEAD_BYTES))?
        else {
            if retry_with(log.retry, log.clock.as_ref(), || {
                log.store.get(CHECKPOINT_KEY, note::MAX_NOTE_SIZE as u64)
            })?
            .is_some()
            {
                // A writer that started the log since the head was read wrote its head first.
                if log.head_moved(None)? {
                    return Err(LogError::Fenced);
                }
                return Err(LogError::NotAnObjectLog(log.store.location()));
            }
            // Archived checkpoints are create-only and locked; a delete marker can hide one from
            // a read, not from a listing of versions. Any of them means a log lived here, and
            // starting a new one would sign a fork with the log's own key.
            if let Some(k) =
                retry_with(log.retry, log.clock.as_ref(), || log.store.first_key_after(ARCHIVE_PREFIX, ""))?
            {
                if log.head_moved(None)? {
                    return Err(LogError::Fenced);
                }
                return Err(LogError::Head(format!(
                    "it is missing, but {k} shows that this log exists: the head was deleted. Restore the latest version of graven/head (and of checkpoint) from the bucket's versions; a new log is not started over an old one"
                )));
            }
            log.tail = Some(Tail::empty());
            return Ok(log);
        };
        let head = Head::parse(&obj.bytes).map_err(LogError::Head)?;
        // The archive is the high-water mark: a checkpoint archived beyond the head, while the
        // head holds still, means the head was rolled back to an older version, and writing on
        // from it would fork. (A writer archives a checkpoint only after committing the head
        // that ends there, so one archived beyond a head that has since moved is the log
        // moving on.)
        let mark = archive_key(head.to.0);
        if let Some(k) =
            retry_with(log.retry, log.clock.as_ref(), || log.store.first_key_after(ARCHIVE_PREFIX, &mark))?
        {
            if log.head_moved(Some(&obj.etag))? {
                return Err(LogError::Fenced);
            }
            return Err(LogError::Head(format!(
                "it ends at size {}, but {k} was archived beyond it: the head was rolled back to an old version. Restore its latest version from the bucket's versions",
                head.to.0
            )));
        }
        let vkey = log.key.verifier();
        let cp = VerifiedCheckpoint::open(head.checkpoint.as_bytes(), &vkey, vkey.name())?;
        if cp.size() != head.to {
            return Err(LogError::Head(format!(
                "it ends at size {} but its checkpoint is for size {}",
                head.to.0,
                cp.size().0
            )));
        }
        let store = log.store.clone();
        let tail =
            Tail::load(head.from, head.from_root, &|rel, limit| read_object(store.as_ref(), rel, limit))?;
        let ext = tail.extend(&head.entries)?;
        if ext.root != cp.root() {
            return Err(LogError::Head("its entries do not reproduce its checkpoint's root".into()));
        }
        log.size = head.to;
        log.root = ext.root;
        log.checkpoint = Some(head.checkpoint.clone());
        log.head_etag = Some(obj.etag);
        log.finish(ext.writes, &head.checkpoint, head.to)?;
        log.tail = Some(ext.tail);
        Ok(log)
    }

    /// Whether the head is no longer the version with ETag `read` (`None`: absent) that this
    /// writer read when it began to open the log.
    fn head_moved(&self, read: Option<&str>) -> Result<bool, LogError> {
        let now = retry_with(self.retry, self.clock.as_ref(), || self.store.get(HEAD_KEY, MAX_HEAD_BYTES))?;
        Ok(now.as_ref().map(|o| o.etag.as_str()) != read)
    }

    pub fn size(&self) -> TreeSize {
        self.size
    }

    pub fn root(&self) -> Hash {
        self.root
    }

    /// The current signed checkpoint, if the log has published one.
    pub fn checkpoint(&self) -> Option<&str> {
        self.checkpoint.as_deref()
    }

    /// Whether another writer has taken over; a fenced log never writes again.
    pub fn is_fenced(&self) -> bool {
        self.state == State::Fenced
    }

    /// Appends `entries` and publishes one new checkpoint covering them. `Ok` means every
    /// entry is committed in the store and the new checkpoint is published (archived; if
    /// another writer took over right after the commit, the public checkpoint may already be
    /// a later one that includes it, and this writer is fenced from then on). An error means
    /// nothing may be acknowledged: [`LogError::Fenced`] if another writer moved the log on
    /// (the entries are not in it), otherwise the entries may or may not have been committed.
    pub fn append<E: AsRef<[u8]>>(&mut self, entries: &[E]) -> Result<Published, LogError> {
        match self.state {
            State::Open => {}
            State::Poisoned => return Err(LogError::Poisoned),
            State::Fenced => return Err(LogError::Fenced),
        }
        let bytes: usize = entries.iter().map(|e| e.as_ref().len() + 2).sum();
        if bytes > MAX_BATCH_BYTES {
            return Err(LogError::BatchTooLarge { bytes, max: MAX_BATCH_BYTES });
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
        self.follow_outcome(&result);
        result
    }

    fn commit<E: AsRef<[u8]>>(&mut self, entries: &[E]) -> Result<Published, LogError> {
        let (old, old_root) = (self.size, self.root);
        let sealed = self.seal_unchecked(old, old_root, &[], entries)?;
        // 3 and 4. Tiles, bundles and archive, then the public checkpoint.
        match self.finish(sealed.writes, &sealed.note, sealed.new_size) {
            Ok(()) => {}
            // The batch is committed, its objects and archived checkpoint written, but another
            // writer has taken over and published past it (every later head extends this
            // one): the entries are in the log, so acknowledge them, and write no more.
            Err(LogError::Fenced) => self.state = State::Fenced,
            Err(e) => return Err(e),
        }
        Ok(Published {
            old_size: sealed.old_size,
            new_size: sealed.new_size,
            root: sealed.root,
            checkpoint: sealed.note,
            leaf_hashes: sealed.leaf_hashes,
        })
    }

    /// Steps 1 and 2 of an append whose head also carries `carried`: the entries from
    /// `carried_from` (whose root is `carried_root`) up to the current size, committed by
    /// earlier heads whose objects are not all written yet (see `pipeline`). Once this
    /// returns, the batch is in the log; nothing of step 3 or 4 is done. The writer's state
    /// follows the outcome as in [`ObjectLog::append`].
    pub(crate) fn seal<E: AsRef<[u8]>>(
        &mut self,
        carried_from: TreeSize,
        carried_root: Hash,
        carried: &[&[u8]],
        entries: &[E],
    ) -> Result<Sealed, LogError> {
        match self.state {
            State::Open => {}
            State::Poisoned => return Err(LogError::Poisoned),
            State::Fenced => return Err(LogError::Fenced),
        }
        let bytes: usize =
            carried.iter().map(|e| e.len() + 2).chain(entries.iter().map(|e| e.as_ref().len() + 2)).sum();
        if bytes > MAX_BATCH_BYTES {
            return Err(LogError::BatchTooLarge { bytes, max: MAX_BATCH_BYTES });
        }
        let result = self.seal_unchecked(carried_from, carried_root, carried, entries);
        self.follow_outcome(&result);
        result
    }

    fn follow_outcome<T>(&mut self, result: &Result<T, LogError>) {
        match result {
            Err(LogError::Fenced) => self.state = State::Fenced,
            Err(LogError::Store(_) | LogError::Tiles(_) | LogError::RootMismatch) => {
                self.state = State::Poisoned
            }
            _ => {}
        }
    }

    fn seal_unchecked<E: AsRef<[u8]>>(
        &mut self,
        carried_from: TreeSize,
        carried_root: Hash,
        carried: &[&[u8]],
        entries: &[E],
    ) -> Result<Sealed, LogError> {
        let (old, old_root) = (self.size, self.root);
        if carried_from.0 + carried.len() as u64 != old.0 {
            return Err(LogError::Invariant("the carried entries do not end at the log's size"));
        }
        // 1. Everything this append writes, computed from the right edge (no I/O once the
        //    tail is in memory).
        let tail = match self.tail.take() {
            Some(t) if t.size == old => t,
            _ => {
                let store = self.store.clone();
                Tail::load(old, old_root, &|rel, limit| read_object(store.as_ref(), rel, limit))?
            }
        };
        let ext = tail.extend(entries)?;
        let new = ext.tail.size;
        let cp = Checkpoint::new(self.key.name(), new, ext.root)
            .map_err(|_| LogError::Invariant("the key name is not a valid origin"))?;
        let note = self
            .key
            .sign(&cp.to_text())
            .map_err(|_| LogError::Invariant("checkpoint text is not note text"))?;

        // 2. The commit point. Crash before it lands: nothing changed. After: the batch is in
        //    the log, and whoever opens it next finishes steps 3 and 4, from the head's start.
        let head = if carried.is_empty() {
            Head::encode(old, old_root, new, &note, entries)
        } else {
            let all: Vec<&[u8]> = carried.iter().copied().chain(entries.iter().map(AsRef::as_ref)).collect();
            Head::encode(carried_from, carried_root, new, &note, &all)
        };
        self.swap_head(&head)?;
        self.size = new;
        self.root = ext.root;
        self.checkpoint = Some(note.clone());
        self.tail = Some(ext.tail);
        Ok(Sealed {
            old_size: old,
            new_size: new,
            root: ext.root,
            note,
            writes: ext.writes,
            leaf_hashes: ext.leaf_hashes,
            head_etag: self.head_etag.clone(),
        })
    }

    /// Moves the head from the ETag this writer knows to `bytes`.
    fn swap_head(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        let store = self.store.clone();
        let expected = self.head_etag.clone();
        let cond = match &expected {
            Some(tag) => Cond::IfMatch(tag),
            None => Cond::IfAbsent,
        };
        // Whether an attempt failed with its outcome unknown (it may have landed).
        let mut unknown = false;
        let put = retry_with(self.retry, self.clock.as_ref(), || {
            let r = store.put(HEAD_KEY, bytes, cond, false);
            unknown |= matches!(r, Err(StoreError::Io { .. }));
            r
        });
        match put {
            Ok(tag) => {
                self.head_etag = Some(tag);
                Ok(())
            }
            Err(StoreError::Precondition { .. }) => {
                // Either another writer moved the head, or this very write landed and its
                // answer was lost (a retry then fails its own condition). Only the bytes tell.
                match retry_with(self.retry, self.clock.as_ref(), || store.get(HEAD_KEY, MAX_HEAD_BYTES))? {
                    Some(o) if o.bytes == bytes => {
                        self.head_etag = Some(o.etag);
                        Ok(())
                    }
                    // An earlier attempt may have landed and been overtaken since: the batch
                    // may be in the log. That is not "fenced" (which promises it is not).
                    _ if unknown => Err(LogError::Store(StoreError::Io {
                        op: "writing",
                        key: HEAD_KEY.into(),
                        msg: "the commit's outcome is unknown: a write whose answer was lost may have landed before another writer moved the head on".into(),
                    })),
                    _ => Err(LogError::Fenced),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Steps 3 and 4 of a committed batch (see [`Publisher::finish`]).
    fn finish(&mut self, writes: Vec<(String, Vec<u8>)>, note: &str, size: TreeSize) -> Result<(), LogError> {
        self.publisher.finish(writes, note, size, self.head_etag.as_deref())
    }

    /// The publishing half, for a thread of its own (`pipeline`); this writer keeps a new one
    /// that knows nothing of the public checkpoint.
    pub(crate) fn take_publisher(&mut self) -> Publisher {
        let fresh = Publisher {
            store: self.store.clone(),
            key: self.key.verifier(),
            retry: self.retry,
            clock: self.clock.clone(),
            public_etag: None,
        };
        std::mem::replace(&mut self.publisher, fresh)
    }
}

/// Steps 3 and 4 of committed batches: the objects, the archived checkpoint, the public
/// checkpoint. The writer's own, or its publishing thread's when commits are pipelined.
pub(crate) struct Publisher {
    store: Arc<dyn ObjectStore>,
    key: VerifierKey,
    retry: Retry,
    clock: Arc<dyn Clock>,
    /// ETag of the `checkpoint` object this writer last published or found.
    public_etag: Option<String>,
}

impl Publisher {
    /// Steps 3 and 4 of a committed batch: its objects and the archived checkpoint, at once
    /// (each is a function of the head alone), then the public checkpoint. Idempotent: anyone
    /// may run it again for the same head. `head_etag` is the head the writer committed or
    /// read, which tells another writer's move from tampering.
    pub(crate) fn finish(
        &mut self,
        mut writes: Vec<(String, Vec<u8>)>,
        note: &str,
        size: TreeSize,
        head_etag: Option<&str>,
    ) -> Result<(), LogError> {
        writes.push((archive_key(size.0), note.as_bytes().to_vec()));
        let store = self.store.clone();
        retry_with(self.retry, self.clock.as_ref(), || store.put_immutable_all(&writes))?;
        self.publish(note, size, head_etag)
    }

    /// [`LogError::Fenced`] if the head is no longer `head_etag`, otherwise `other`.
    fn fenced_or(&self, other: LogError, head_etag: Option<&str>) -> LogError {
        match retry_with(self.retry, self.clock.as_ref(), || self.store.get(HEAD_KEY, MAX_HEAD_BYTES)) {
            Ok(Some(o)) if Some(o.etag.as_str()) != head_etag => LogError::Fenced,
            Ok(_) => other,
            Err(e) => e.into(),
        }
    }

    /// Replaces the public checkpoint with `note`, `If-Match` the one this writer knows.
    fn publish(&mut self, note: &str, size: TreeSize, head_etag: Option<&str>) -> Result<(), LogError> {
        let store = self.store.clone();
        if self.public_etag.is_none() {
            // First publication by this writer: learn what is there.
            match retry_with(self.retry, self.clock.as_ref(), || {
                store.get(CHECKPOINT_KEY, note::MAX_NOTE_SIZE as u64)
            })? {
                Some(o) if o.bytes == note.as_bytes() => {
                    self.public_etag = Some(o.etag);
                    return Ok(());
                }
                Some(o) => {
                    let current = VerifiedCheckpoint::open(&o.bytes, &self.key, self.key.name())?;
                    if current.size() >= size {
                        // Another writer moved the log on since this one read the head, or
                        // the store was altered; only the head tells.
                        return Err(self.fenced_or(
                            LogError::Head(format!(
                                "the public checkpoint is for size {}, not behind the head's {}; the store was altered",
                                current.size().0,
                                size.0
                            )),
                            head_etag,
                        ));
                    }
                    self.public_etag = Some(o.etag);
                }
                None => {}
            }
        }
        let cond = match &self.public_etag {
            Some(tag) => Cond::IfMatch(tag),
            None => Cond::IfAbsent,
        };
        match retry_with(self.retry, self.clock.as_ref(), || {
            store.put(CHECKPOINT_KEY, note.as_bytes(), cond, false)
        }) {
            Ok(tag) => {
                self.public_etag = Some(tag);
                Ok(())
            }
            Err(StoreError::Precondition { .. }) => {
                match retry_with(self.retry, self.clock.as_ref(), || {
                    store.get(CHECKPOINT_KEY, note::MAX_NOTE_SIZE as u64)
                })? {
                    Some(o) if o.bytes == note.as_bytes() => {
                        self.public_etag = Some(o.etag);
                        Ok(())
                    }
                    _ => Err(LogError::Fenced),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl LogWriter for ObjectLog {
    fn append_batch(&mut self, entries: &[&[u8]]) -> Result<Published, LogError> {
        self.append(entries)
    }
    fn size(&self) -> TreeSize {
        ObjectLog::size(self)
    }
    fn root(&self) -> Hash {
        ObjectLog::root(self)
    }
    fn checkpoint(&self) -> Option<&str> {
        ObjectLog::checkpoint(self)
    }
}
