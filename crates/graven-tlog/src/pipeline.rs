//! Pipelined commits: the sequencer's thread prepares and commits the next batch while a
//! publishing thread of the writer's own makes earlier batches durable and published, and
//! answers them, in order, once they are. [`Publishing`] is that thread and its queue, shared
//! by both writers; a round of it takes every batch queued since the last one and publishes
//! them under the newest one's checkpoint ([`Publish`]).
//!
//! - On a local disk (`PipelinedLocalLog`, in `local`), the next batch's files are written while
//!   the earlier batches' fsyncs run; a round fsyncs every batch's files with the newest
//!   checkpoint, held, in one concurrent round, then renames it into place. Every file a
//!   batch writes lies beyond every tree that could be published before it, so a power cut
//!   anywhere leaves the last published checkpoint valid (`local`).
//! - On an object store ([`PipelinedLog`]), the next batch's head is committed (step 2 of
//!   `objlog`) while the publishing thread writes the objects, the archive and the public
//!   checkpoint (steps 3 and 4) of the batches committed before it.
//!
//! What keeps the object store's head protocol's guarantees:
//! - **The head still carries everything a next writer needs.** A head commits its batch and
//!   also every entry of the earlier batches whose objects are not all written yet: it starts
//!   at the size up to which the publishing thread has written every object (the *written
//!   size*, always a size it published, so its partial tiles exist), not at the previous
//!   head's end. Whoever opens the log after a crash at any put rebuilds every missing object
//!   from the head alone, as before.
//! - **Acknowledged means published.** A batch's `done` is called only once a checkpoint that
//!   covers it is archived and published (its own or a later one), in submission order.
//! - **No fork.** Heads move by the same compare-and-swap, one at a time, from the
//!   sequencer's thread; the publishing thread never writes the head.
//!
//! One round of the publishing thread takes every batch committed since its last round and
//! writes their full tiles and bundles and the partial ones of the newest only, archives that
//! newest checkpoint and publishes it. Partial objects of the sizes in between are never
//! written: their checkpoints were signed into a head but never published (C2SP tlog-tiles
//! asks for the partial tiles of the checkpoints a log publishes). Under load, a round thus
//! finishes several commits with one set of partial objects, one archive and one publication.
//!
//! The head re-carries unwritten entries, so a batch's bytes may go up in more than one head.
//! Bounded: a head is committed while earlier ones are unwritten only if their entries come
//! to at most [`MAX_CARRIED_BYTES`]; otherwise the commit waits for the publishing thread
//! (large batches gain little from overlap and would pay for it in bytes).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use graven_core::hash::{Hash, TreeSize};

use crate::error::LogError;
use crate::objlog::{MAX_BATCH_BYTES, ObjectLog, Publisher, Sealed};
use crate::writer::{LogWriter, OnPublished, Published};

/// Most bytes of entries (with their 2-byte lengths) a head carries for earlier batches whose
/// objects are not written yet. Past it, the next commit waits for the publishing thread.
pub const MAX_CARRIED_BYTES: usize = 4 << 20;

/// Most committed heads waiting for the publishing thread while it publishes a round. A head
/// costs one request; a round costs its partial objects, the archive and the checkpoint
/// whatever number of batches it takes, so on a busy store letting a few heads queue makes a
/// round take several batches and the requests per event fall.
pub const MAX_QUEUED_HEADS: usize = 4;

/// A committed batch, as a pipelined writer's sequencer hands it to its publishing thread.
pub(crate) struct Committed<W> {
    pub(crate) old_size: TreeSize,
    pub(crate) new_size: TreeSize,
    pub(crate) root: Hash,
    /// The signed checkpoint of `new_size`.
    pub(crate) note: String,
    pub(crate) leaf_hashes: Vec<Hash>,
    /// What is left to do for the batch (its writes), taken by [`Publish::publish`].
    pub(crate) work: Option<W>,
}

/// The publishing half of a pipelined writer.
pub(crate) trait Publish: Send + 'static {
    type Work: Send + 'static;
    /// Makes every batch of a round durable and published under the newest one's checkpoint
    /// (`note`, of `size`), given each batch's work, oldest first. [`LogError::Fenced`] means
    /// the batches are in the log but another writer took over.
    fn publish(&mut self, works: Vec<Self::Work>, note: &str, size: TreeSize) -> Result<(), LogError>;
}

/// A batch waiting for the publishing thread.
struct Queued<W> {
    committed: Committed<W>,
    done: OnPublished,
}

/// Why the publishing thread stopped publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    /// Another writer moved the log on: batches committed before are acknowledged, no more
    /// are taken.
    Fenced,
    /// A write failed: whether the queued batches are published is unknown until the log is
    /// reopened.
    Failed,
}

struct Progress<W> {
    queue: VecDeque<Queued<W>>,
    /// The publishing thread is working on a round taken off the queue.
    working: bool,
    /// Every batch up to this size is durable and published.
    written: TreeSize,
    stopped: Option<Stopped>,
    /// No more submissions: the thread finishes the queue and ends.
    closing: bool,
}

struct Shared<W> {
    progress: Mutex<Progress<W>>,
    changed: Condvar,
}

impl<W> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, Progress<W>> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, p: MutexGuard<'a, Progress<W>>) -> MutexGuard<'a, Progress<W>> {
        self.changed.wait(p).unwrap_or_else(|e| e.into_inner())
    }
}

/// A publishing thread and its queue: what both pipelined writers share.
pub(crate) struct Publishing<W: Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Option<JoinHandle<()>>,
}

impl<W: Send + 'static> Publishing<W> {
    /// Starts the thread; everything up to `written` is durable and published already.
    pub(crate) fn start<P: Publish<Work = W>>(publisher: P, written: TreeSize) -> Result<Self, LogError> {
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                queue: VecDeque::new(),
                working: false,
                written,
                stopped: None,
                closing: false,
            }),
            changed: Condvar::new(),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("graven-publisher".into())
                .spawn(move || publish_rounds(publisher, &shared))
                .map_err(|e| LogError::Io {
                    op: "starting",
                    path: "the publishing thread".into(),
                    source: e,
                })?
        };
        Ok(Publishing { shared, thread: Some(thread) })
    }

    /// Waits until `ready(written)` holds; an error if publishing stopped meanwhile.
    pub(crate) fn wait_until(&self, mut ready: impl FnMut(TreeSize) -> bool) -> Result<(), LogError> {
        let mut p = self.shared.lock();
        loop {
            match p.stopped {
                Some(Stopped::Fenced) => return Err(LogError::Fenced),
                Some(Stopped::Failed) => return Err(LogError::Poisoned),
                None => {}
            }
            if ready(p.written) {
                return Ok(());
            }
            p = self.shared.wait(p);
        }
    }

    /// Returns once fewer than `max` batches are queued (not yet taken by the publishing
    /// thread), or publishing stopped.
    pub(crate) fn wait_taken(&self, max: usize) {
        let mut p = self.shared.lock();
        while p.queue.len() >= max.max(1) && p.stopped.is_none() {
            p = self.shared.wait(p);
        }
    }

    pub(crate) fn is_fenced(&self) -> bool {
        self.shared.lock().stopped == Some(Stopped::Fenced)
    }

    pub(crate) fn queue(&self, committed: Committed<W>, done: OnPublished) {
        self.shared.lock().queue.push_back(Queued { committed, done });
        self.shared.changed.notify_all();
    }

    /// Returns once every queued batch was answered.
    pub(crate) fn flush(&self) {
        let mut p = self.shared.lock();
        while !p.queue.is_empty() || p.working {
            p = self.shared.wait(p);
        }
    }
}

impl<W: Send + 'static> Drop for Publishing<W> {
    /// Publishes what was queued (or fails it), then ends the thread.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The publishing thread: rounds until closed and drained.
fn publish_rounds<P: Publish>(mut publisher: P, shared: &Shared<P::Work>) {
    loop {
        let (mut round, stopped) = {
            let mut p = shared.lock();
            while p.queue.is_empty() && !p.closing {
                p = shared.wait(p);
            }
            if p.queue.is_empty() {
                return;
            }
            p.working = true;
            (p.queue.drain(..).collect::<Vec<_>>(), p.stopped)
        };
        let Some(newest) =
            round.last().map(|q| (q.committed.new_size, q.committed.root, q.committed.note.clone()))
        else {
            continue;
        };
        let outcome = match stopped {
            Some(Stopped::Failed) => Err(LogError::Poisoned),
            _ => {
                let works = round.iter_mut().filter_map(|q| q.committed.work.take()).collect();
                publisher.publish(works, &newest.2, newest.0)
            }
        };
        // What the round's batches are told, and what the log's progress becomes.
        let (answer, stop) = match outcome {
            Ok(()) => (Ok(()), None),
            // Each batch's commit point landed before another writer moved the log on, so
            // every later one extends it: the entries are in the log (as in
            // `ObjectLog::append`).
            Err(LogError::Fenced) => (Ok(()), Some(Stopped::Fenced)),
            Err(e) => (Err(e), Some(Stopped::Failed)),
        };
        {
            // The written size first, so that a commit waiting for room goes on at once.
            let mut p = shared.lock();
            if answer.is_ok() {
                p.written = newest.0;
            }
            if stop.is_some() && p.stopped != Some(Stopped::Failed) {
                p.stopped = stop;
            }
        }
        shared.changed.notify_all();
        let (size, root, note) = newest;
        for q in round {
            let r = match &answer {
                Ok(()) => Ok(Published {
                    old_size: q.committed.old_size,
                    new_size: size,
                    root,
                    checkpoint: note.clone(),
                    leaf_hashes: q.committed.leaf_hashes,
                }),
                Err(e) => Err(e.duplicate()),
            };
            (q.done)(r);
        }
        // Only now is the round over: `flush` returns once every answer was given.
        shared.lock().working = false;
        shared.changed.notify_all();
    }
}

/// A committed batch whose objects are not all written: what its head carried.
struct Unwritten {
    from: TreeSize,
    from_root: Hash,
    entries: Vec<Vec<u8>>,
    bytes: usize,
}

impl Unwritten {
    fn to(&self) -> TreeSize {
        TreeSize(self.from.0 + self.entries.len() as u64)
    }
}

/// What is left of an object-store batch once its head landed.
pub(crate) struct ObjectWork {
    writes: Vec<(String, Vec<u8>)>,
    head_etag: Option<String>,
}

impl Publish for Publisher {
    type Work = ObjectWork;

    /// Every full object of the round's batches and the partial ones of the newest size, with
    /// its archived checkpoint; then its publication.
    fn publish(&mut self, works: Vec<ObjectWork>, note: &str, size: TreeSize) -> Result<(), LogError> {
        let mut head_etag = None;
        let writes = round_writes(works.into_iter().map(|w| {
            head_etag = w.head_etag;
            w.writes
        }));
        self.finish(writes, note, size, head_etag.as_deref())
    }
}

/// What a round of batches writes, given each batch's writes oldest first: every full tile and
/// bundle, and the partial ones of the newest size. A batch writes the partial tiles it changed,
/// so the newest size's partial tile at some level may be an earlier batch's (the newest left
/// that level as it was): for each tile, the last partial written, unless the tile was
/// completed later in the round. Partial tiles superseded within the round belong to sizes
/// never published, and are not written.
fn round_writes(batches: impl Iterator<Item = Vec<(String, Vec<u8>)>>) -> Vec<(String, Vec<u8>)> {
    let mut full: Vec<(String, Vec<u8>)> = Vec::new();
    // Tile (its path without `.p/<width>`) -> its last partial write.
    let mut partial: std::collections::BTreeMap<String, (String, Vec<u8>)> =
        std::collections::BTreeMap::new();
    for writes in batches {
        for (key, bytes) in writes {
            match key.split_once(".p/") {
                Some((tile, _)) => {
                    partial.insert(tile.to_owned(), (key, bytes));
                }
                None => {
                    partial.remove(&key);
                    full.push((key, bytes));
                }
            }
        }
    }
    full.extend(partial.into_values());
    full
}

/// An [`ObjectLog`] whose commits are pipelined (see the module documentation). Its
/// [`LogWriter::submit`] returns once the batch's head has landed; [`LogWriter::append_batch`]
/// is a submit that waits for its own publication.
pub struct PipelinedLog {
    log: ObjectLog,
    /// Committed batches whose objects may not all be written, oldest first.
    unwritten: VecDeque<Unwritten>,
    publishing: Publishing<ObjectWork>,
}

impl std::fmt::Debug for PipelinedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelinedLog").field("log", &self.log).finish_non_exhaustive()
    }
}

impl PipelinedLog {
    /// Starts pipelining commits on `log`, an open object-store log that has published a
    /// checkpoint (everything it committed is written).
    pub fn new(log: ObjectLog) -> Result<Self, LogError> {
        if log.checkpoint().is_none() {
            return Err(LogError::Invariant("a log is pipelined once it has published a checkpoint"));
        }
        let mut log = log;
        let publishing = Publishing::start(log.take_publisher(), log.size())?;
        Ok(PipelinedLog { log, unwritten: VecDeque::new(), publishing })
    }

    /// Whether another writer has taken over.
    pub fn is_fenced(&self) -> bool {
        self.log.is_fenced() || self.publishing.is_fenced()
    }

    fn seal(&mut self, entries: &[&[u8]]) -> Result<Committed<ObjectWork>, LogError> {
        let bytes: usize = entries.iter().map(|e| e.len() + 2).sum();
        if bytes > MAX_BATCH_BYTES {
            return Err(LogError::BatchTooLarge { bytes, max: MAX_BATCH_BYTES });
        }
        // Room in the head for the carried entries and this batch.
        let unwritten = &mut self.unwritten;
        self.publishing.wait_until(|written| {
            while unwritten.front().is_some_and(|u| u.to() <= written) {
                unwritten.pop_front();
            }
            let carried: usize = unwritten.iter().map(|u| u.bytes).sum();
            carried == 0 || (carried <= MAX_CARRIED_BYTES && carried + bytes <= MAX_BATCH_BYTES)
        })?;
        let (from, from_root) = match self.unwritten.front() {
            Some(u) => (u.from, u.from_root),
            None => (self.log.size(), self.log.root()),
        };
        let carried: Vec<&[u8]> =
            self.unwritten.iter().flat_map(|u| u.entries.iter().map(Vec::as_slice)).collect();
        let (old, old_root) = (self.log.size(), self.log.root());
        let sealed: Sealed = self.log.seal(from, from_root, &carried, entries)?;
        self.unwritten.push_back(Unwritten {
            from: old,
            from_root: old_root,
            entries: entries.iter().map(|e| e.to_vec()).collect(),
            bytes,
        });
        Ok(Committed {
            old_size: sealed.old_size,
            new_size: sealed.new_size,
            root: sealed.root,
            note: sealed.note,
            leaf_hashes: sealed.leaf_hashes,
            work: Some(ObjectWork { writes: sealed.writes, head_etag: sealed.head_etag }),
        })
    }
}

/// [`LogWriter::append_batch`] of a pipelined writer: a submission that waits for its answer.
pub(crate) fn append_and_wait(log: &mut dyn LogWriter, entries: &[&[u8]]) -> Result<Published, LogError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    log.submit(
        entries,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    )?;
    rx.recv().unwrap_or(Err(LogError::Invariant("the publishing thread ended without an answer")))
}

/// The answer to an empty submission: the newest checkpoint, once everything before is
/// published.
pub(crate) fn nothing_to_commit(log: &mut dyn LogWriter, done: OnPublished) {
    log.flush();
    let r = match log.checkpoint() {
        Some(cp) => Ok(Published {
            old_size: log.size(),
            new_size: log.size(),
            root: log.root(),
            checkpoint: cp.to_owned(),
            leaf_hashes: Vec::new(),
        }),
        None => Err(LogError::Invariant("no checkpoint")),
    };
    done(r);
}

impl LogWriter for PipelinedLog {
    fn append_batch(&mut self, entries: &[&[u8]]) -> Result<Published, LogError> {
        append_and_wait(self, entries)
    }

    fn submit(&mut self, entries: &[&[u8]], done: OnPublished) -> Result<(), LogError> {
        if entries.is_empty() {
            nothing_to_commit(self, done);
            return Ok(());
        }
        match self.seal(entries) {
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
        self.publishing.wait_taken(MAX_QUEUED_HEADS);
        // A head already carrying as much as it may: the next batch would wait for the round
        // anyway, so it waits before it is gathered, and takes in what arrives meanwhile (bulk
        // batches then grow as they would one commit at a time). An error is the next
        // submission's to report.
        let unwritten = &mut self.unwritten;
        let _ = self.publishing.wait_until(|written| {
            while unwritten.front().is_some_and(|u| u.to() <= written) {
                unwritten.pop_front();
            }
            unwritten.iter().map(|u| u.bytes).sum::<usize>() <= MAX_CARRIED_BYTES
        });
    }

    fn size(&self) -> TreeSize {
        self.log.size()
    }
    fn root(&self) -> Hash {
        self.log.root()
    }
    fn checkpoint(&self) -> Option<&str> {
        self.log.checkpoint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(keys: &[&str]) -> Vec<(String, Vec<u8>)> {
        keys.iter().map(|k| (k.to_string(), k.as_bytes().to_vec())).collect()
    }

    #[test]
    fn a_round_writes_every_full_object_and_the_last_partial_of_each_tile() {
        let got = round_writes(
            [
                w(&["tile/0/001", "tile/1/000.p/2", "tile/0/002.p/8", "tile/entries/002.p/8"]),
                w(&["tile/0/002.p/18", "tile/entries/002.p/18"]),
                w(&["tile/0/003.p/1"]),
            ]
            .into_iter(),
        );
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["tile/0/001", "tile/0/002.p/18", "tile/0/003.p/1", "tile/1/000.p/2", "tile/entries/002.p/18"]
        );
    }

    #[test]
    fn a_partial_tile_completed_later_in_the_round_is_not_written() {
        let got = round_writes(
            [w(&["tile/entries/004.p/10"]), w(&["tile/entries/004", "tile/entries/005.p/3"])].into_iter(),
        );
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["tile/entries/004", "tile/entries/005.p/3"]);
    }
}
