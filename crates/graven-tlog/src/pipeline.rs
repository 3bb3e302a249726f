//! Pipelined commits on an object store: the next batch's head is committed (step 2 of
//! `objlog`) while a publishing thread writes the objects, the archive and the public
//! checkpoint (steps 3 and 4) of the batches committed before it.
//!
//! What keeps the head protocol's guarantees:
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

/// A committed batch waiting for the publishing thread.
struct Queued {
    sealed: Sealed,
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

struct Progress {
    queue: VecDeque<Queued>,
    /// The publishing thread is working on a round taken off the queue.
    working: bool,
    /// Every object of the tree of this size is written, and its checkpoint published.
    written: TreeSize,
    stopped: Option<Stopped>,
    /// No more submissions: the thread finishes the queue and ends.
    closing: bool,
}

struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An [`ObjectLog`] whose commits are pipelined (see the module documentation). Its
/// [`LogWriter::submit`] returns once the batch's head has landed; [`LogWriter::append_batch`]
/// is a submit that waits for its own publication.
pub struct PipelinedLog {
    log: ObjectLog,
    /// Committed batches whose objects may not all be written, oldest first.
    unwritten: VecDeque<Unwritten>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
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
        let publisher = log.take_publisher();
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                queue: VecDeque::new(),
                working: false,
                written: log.size(),
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
        Ok(PipelinedLog { log, unwritten: VecDeque::new(), shared, thread: Some(thread) })
    }

    /// Whether another writer has taken over.
    pub fn is_fenced(&self) -> bool {
        self.log.is_fenced() || self.shared.lock().stopped == Some(Stopped::Fenced)
    }

    /// Waits until the carried entries and this batch may go into one head, and says where
    /// the head starts. Errors if publishing stopped.
    fn wait_for_room(&mut self, bytes: usize) -> Result<(), LogError> {
        let mut p = self.shared.lock();
        loop {
            match p.stopped {
                Some(Stopped::Fenced) => return Err(LogError::Fenced),
                Some(Stopped::Failed) => return Err(LogError::Poisoned),
                None => {}
            }
            while self.unwritten.front().is_some_and(|u| u.to() <= p.written) {
                self.unwritten.pop_front();
            }
            let carried: usize = self.unwritten.iter().map(|u| u.bytes).sum();
            if carried == 0 || (carried <= MAX_CARRIED_BYTES && carried + bytes <= MAX_BATCH_BYTES) {
                return Ok(());
            }
            p = self.shared.changed.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn seal(&mut self, entries: &[&[u8]]) -> Result<Sealed, LogError> {
        let bytes: usize = entries.iter().map(|e| e.len() + 2).sum();
        if bytes > MAX_BATCH_BYTES {
            return Err(LogError::BatchTooLarge { bytes, max: MAX_BATCH_BYTES });
        }
        self.wait_for_room(bytes)?;
        let (from, from_root) = match self.unwritten.front() {
            Some(u) => (u.from, u.from_root),
            None => (self.log.size(), self.log.root()),
        };
        let carried: Vec<&[u8]> =
            self.unwritten.iter().flat_map(|u| u.entries.iter().map(Vec::as_slice)).collect();
        let (old, old_root) = (self.log.size(), self.log.root());
        let sealed = self.log.seal(from, from_root, &carried, entries)?;
        self.unwritten.push_back(Unwritten {
            from: old,
            from_root: old_root,
            entries: entries.iter().map(|e| e.to_vec()).collect(),
            bytes,
        });
        Ok(sealed)
    }
}

impl LogWriter for PipelinedLog {
    fn append_batch(&mut self, entries: &[&[u8]]) -> Result<Published, LogError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit(
            entries,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.recv().unwrap_or(Err(LogError::Invariant("the publishing thread ended without an answer")))
    }

    fn submit(&mut self, entries: &[&[u8]], done: OnPublished) -> Result<(), LogError> {
        if entries.is_empty() {
            // Nothing to commit: the answer is the newest published checkpoint.
            self.flush();
            let r = match self.log.checkpoint() {
                Some(cp) => Ok(Published {
                    old_size: self.log.size(),
                    new_size: self.log.size(),
                    root: self.log.root(),
                    checkpoint: cp.to_owned(),
                    leaf_hashes: Vec::new(),
                }),
                None => Err(LogError::Invariant("no checkpoint")),
            };
            done(r);
            return Ok(());
        }
        match self.seal(entries) {
            Ok(sealed) => {
                let mut p = self.shared.lock();
                p.queue.push_back(Queued { sealed, done });
                drop(p);
                self.shared.changed.notify_all();
                Ok(())
            }
            Err(e) => {
                done(Err(e.duplicate()));
                Err(e)
            }
        }
    }

    fn flush(&mut self) {
        let mut p = self.shared.lock();
        while !p.queue.is_empty() || p.working {
            p = self.shared.changed.wait(p).unwrap_or_else(|e| e.into_inner());
        }
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

impl Drop for PipelinedLog {
    /// Publishes what was committed (or fails it), then ends the publishing thread.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether `key` names a partial tile or bundle (`.../<N>.p/<W>`).
fn is_partial(key: &str) -> bool {
    key.contains(".p/")
}

/// The publishing thread: rounds until closed and drained.
fn publish_rounds(mut publisher: Publisher, shared: &Shared) {
    loop {
        let (round, stopped) = {
            let mut p = shared.lock();
            while p.queue.is_empty() && !p.closing {
                p = shared.changed.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.queue.is_empty() {
                return;
            }
            p.working = true;
            (p.queue.drain(..).collect::<Vec<_>>(), p.stopped)
        };
        let mut round = round;
        let outcome = match stopped {
            Some(Stopped::Failed) => Err(LogError::Poisoned),
            _ => publish_round(&mut publisher, &mut round),
        };
        // What the round's batches are told, and what the log's progress becomes.
        let (answer, stop) = match outcome {
            Ok(()) => (Ok(()), None),
            // Each batch's head landed before another writer moved the head on, so every later
            // head extends it: the entries are in the log (as in `ObjectLog::append`).
            Err(LogError::Fenced) => (Ok(()), Some(Stopped::Fenced)),
            Err(e) => (Err(e), Some(Stopped::Failed)),
        };
        let last = round.last().map(|q| (q.sealed.new_size, q.sealed.root, q.sealed.note.clone()));
        {
            // The written size first, so that a commit waiting for room goes on at once.
            let mut p = shared.lock();
            if answer.is_ok()
                && let Some((size, _, _)) = &last
            {
                p.written = *size;
            }
            if stop.is_some() && p.stopped != Some(Stopped::Failed) {
                p.stopped = stop;
            }
        }
        shared.changed.notify_all();
        if let Some((size, root, note)) = last {
            for q in round {
                let r = match &answer {
                    Ok(()) => Ok(Published {
                        old_size: q.sealed.old_size,
                        new_size: size,
                        root,
                        checkpoint: note.clone(),
                        leaf_hashes: q.sealed.leaf_hashes,
                    }),
                    Err(e) => Err(e.duplicate()),
                };
                (q.done)(r);
            }
        }
        // Only now is the round over: `flush` returns once every answer was given.
        shared.lock().working = false;
        shared.changed.notify_all();
    }
}

/// One round: every full object of the round's batches and the partial ones of the newest,
/// with its archived checkpoint; then its publication.
fn publish_round(publisher: &mut Publisher, round: &mut [Queued]) -> Result<(), LogError> {
    let count = round.len();
    let mut writes: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, q) in round.iter_mut().enumerate() {
        let newest = i + 1 == count;
        writes.extend(
            std::mem::take(&mut q.sealed.writes).into_iter().filter(|(k, _)| newest || !is_partial(k)),
        );
    }
    let Some(last) = round.last() else { return Ok(()) };
    publisher.finish(writes, &last.sealed.note, last.sealed.new_size, last.sealed.head_etag.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_names_are_told_from_full_ones() {
        assert!(is_partial("tile/0/x001/234.p/17"));
        assert!(is_partial("tile/entries/000.p/1"));
        assert!(!is_partial("tile/0/x001/234"));
        assert!(!is_partial("tile/entries/x001/255"));
    }
}
