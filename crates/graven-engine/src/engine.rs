//! The log engine: one sequencer per log, a bounded pending pool, group commit.
//!
//! Writers call [`Engine::submit`] with canonical entries. The submission waits in a bounded
//! pool; the sequencer thread takes everything waiting (up to a count and a byte limit, after
//! an optional short wait for more), appends it to the [`LocalLog`] in one commit, and only
//! then tells every submission in the batch where its entries landed. The submitter then
//! builds its own receipts (leaf hashes and inclusion proofs against the new checkpoint) on its
//! own thread, so the sequencer does nothing but commit. A receipt therefore exists only after
//! its entry is fsynced and covered by a published, signed checkpoint.
//!
//! If a commit fails (a write or fsync error), the engine is poisoned: that batch and every
//! later submission get [`SubmitError::Storage`], and nothing more is acknowledged until the
//! process restarts and reopens the log, which runs the same commit path's recovery.
//!
//! The sequencer is a state machine: [`Sequencer::step`] takes the time and whatever is in the
//! queue, does what the node's role calls for (commit a batch, follow the published
//! checkpoint, open the log on becoming the writer), and says when it wants to run again
//! ([`NextStep`]). In production a thread drives it (`drive`: wait for a submission or the time
//! asked for, step again); a simulation drives it by hand through a [`Stepper`], on a
//! simulated clock, so that a schedule of kills and pauses replays exactly from its seed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use graven_clock::{Clock, Moment};
use graven_core::hash::{Hash, LeafIndex, TreeSize};
use graven_core::merkle::Prover;
use graven_core::note::SignerKey;
use graven_tlog::{LogError, LogWriter, ObjectLog, ObjectStore, OnPublished, PipelinedLog, Published};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::{oneshot, watch};

use graven_core::event::{format_timestamp, stamp};
use graven_core::replay::{ReplayCache, Seen};
use graven_tlog::replica::{Next, Served};

use crate::lease::Lease;
use crate::reader::LogReader;

/// The one-time key of a leaf's version 2 client signature, if it has one. A cheap byte search
/// first: most leaves are not signed.
fn once_key_of_leaf(leaf: &[u8], window: i64) -> Option<OnceKey> {
    const NEEDLE: &[u8] = b"\"client_signature\"";
    if !leaf.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
        return None;
    }
    let (sig, _) = graven_core::event_sig::signed_message_from_leaf(leaf).ok()??;
    OnceKey::of(&sig, window)
}

/// A leaf's top-level `logged_at`, if it is an event.
fn logged_at_of_leaf(leaf: &[u8]) -> Option<String> {
    match graven_core::jcs::parse(leaf).ok()? {
        graven_core::jcs::Value::Object(m) => m.into_iter().find_map(|(k, v)| match (k.as_str(), v) {
            ("logged_at", graven_core::jcs::Value::String(t)) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

/// One entry to append. `stamp_at` marks a `logged_at` placeholder for the sequencer to fill;
/// `once` is the one-time identity of its client signature, which the sequencer refuses to
/// commit twice.
#[derive(Debug, Clone)]
pub struct Entry {
    pub bytes: Vec<u8>,
    pub stamp_at: Option<usize>,
    pub once: Option<OnceKey>,
}

impl Entry {
    pub fn raw(bytes: Vec<u8>) -> Self {
        Entry { bytes, stamp_at: None, once: None }
    }

    /// An event with a `logged_at` placeholder at `stamp_at`.
    pub fn event(bytes: Vec<u8>, stamp_at: usize) -> Self {
        Entry { bytes, stamp_at: Some(stamp_at), once: None }
    }
}

/// A version 2 client signature's `(key_id, id)`, as a 128-bit digest, and the second after
/// which a replay would be refused for its `signed_at` anyway (so it can be forgotten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnceKey {
    pub digest: u128,
    pub expires_s: i64,
}

impl OnceKey {
    /// The key of a version 2 signature accepted within `window` seconds of its `signed_at`;
    /// `None` for version 1, which has no id.
    pub fn of(sig: &graven_core::event_sig::ClientSignature, window: i64) -> Option<Self> {
        use sha2::{Digest, Sha256};
        let once = sig.once.as_ref()?;
        let mut h = Sha256::new();
        h.update(b"graven-client-signature-once\n");
        h.update(sig.key_id.as_bytes());
        h.update(b"\n");
        h.update(once.id.as_bytes());
        let d = h.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&d[..16]);
        Some(OnceKey {
            digest: u128::from_be_bytes(first),
            expires_s: once.signed_at.saturating_add(window).saturating_add(1),
        })
    }
}

/// Most client-signature ids remembered at once; past it, signed events are refused with
/// [`SubmitError::Overloaded`] rather than an id forgotten before its window ends. About 40
/// bytes each: 4 Mi ids, about 170 MB, hold 300 s of 14,000 signed events per second.
pub const MAX_ONCE_KEYS: usize = 4 << 20;

/// Limits of the pending pool and of one commit.
#[derive(Clone)]
pub struct EngineConfig {
    /// A batch closes at this many events...
    pub max_batch_events: usize,
    /// ...or this many bytes of entries...
    pub max_batch_bytes: usize,
    /// ...or when this much time has passed since its first event arrived. Zero means: commit
    /// whatever is waiting as soon as the previous commit is done (natural group commit).
    pub max_batch_wait: Duration,
    /// Most events waiting to be committed, across all requests.
    pub max_pending_events: usize,
    /// Most bytes waiting to be committed.
    pub max_pending_bytes: usize,
    /// How far a client signature's `signed_at` may be from now, each way; ids are
    /// remembered this long past `signed_at`.
    pub client_signature_window: Duration,
    /// The sequencer's time: batching waits, `logged_at`, the client-signature ids' windows,
    /// a replica's polling.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("max_batch_events", &self.max_batch_events)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("max_batch_wait", &self.max_batch_wait)
            .field("max_pending_events", &self.max_pending_events)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .finish_non_exhaustive()
    }
}

/// The default [`EngineConfig::client_signature_window`], each way.
pub const DEFAULT_CLIENT_SIGNATURE_WINDOW_SECONDS: u64 = 300;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_batch_events: 65_536,
            max_batch_bytes: 64 << 20,
            max_batch_wait: Duration::ZERO,
            max_pending_events: 262_144,
            max_pending_bytes: 256 << 20,
            client_signature_window: Duration::from_secs(DEFAULT_CLIENT_SIGNATURE_WINDOW_SECONDS),
            clock: graven_clock::system(),
        }
    }
}

/// Proof that an entry is in the log: verifiable offline against the checkpoint it carries.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub index: u64,
    /// The `logged_at` the sequencer stamped, for events (not raw entries).
    pub logged_at: Option<Arc<str>>,
    pub leaf_hash: Hash,
    pub tree_size: u64,
    pub checkpoint: Arc<str>,
    pub inclusion_proof: Vec<Hash>,
}

/// One receipt for a run of entries committed together (`Engine::submit_range`).
#[derive(Debug, Clone)]
pub struct RangeReceipt {
    pub first_index: u64,
    /// The `logged_at` the sequencer stamped, when the run holds events (one commit, one time).
    pub logged_at: Option<Arc<str>>,
    pub leaf_hashes: Vec<Hash>,
    pub tree_size: u64,
    pub checkpoint: Arc<str>,
    pub range_proof: Vec<Hash>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("the pending pool is full ({pending} events waiting); retry after a short wait")]
    Overloaded { pending: usize },
    #[error("the log refused the write after a storage error and accepts nothing until restarted: {0}")]
    Storage(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// This node is a read replica of a shared log; `writer` is where the writer takes writes,
    /// if it is known.
    #[error("this node is a read replica; send writes to the log's writer{}", writer.as_deref().map(|w| format!(" at {w}")).unwrap_or_else(|| " (none is known right now; retry shortly)".into()))]
    NotWriter { writer: Option<String> },
    #[error(
        "a batch of {events} events and {bytes} bytes is larger than one commit can hold ({max_events} events, {max_bytes} bytes)"
    )]
    TooLarge { events: usize, bytes: usize, max_events: usize, max_bytes: usize },
    /// A client-signed event whose `(key_id, id)` the log already holds: a replay. `entry` is
    /// its position in the submission (0-based).
    #[error(
        "the client signature of entry {entry} (0-based) was already logged; a signed event is accepted once: sign it again with a new id"
    )]
    Replayed { entry: usize },
    /// A client-signed event whose window ended before the sequencer could log it: its id
    /// may have been forgotten by then, so it is not logged. `entry` is its position in the
    /// submission (0-based).
    #[error(
        "the client signature of entry {entry} (0-based) reached the end of its window before the event could be logged; sign it again now; nothing was appended"
    )]
    SignatureExpired { entry: usize },
    /// The writer cannot take this submission right now (its record of client-signature ids
    /// is not rebuilt yet, say); a retry shortly may succeed.
    #[error("the log cannot take this write right now: {0}; retry shortly")]
    Unavailable(String),
}

/// What readers see: the latest committed checkpoint.
#[derive(Debug, Clone)]
pub struct Committed {
    pub size: u64,
    pub root: Hash,
    pub checkpoint: Arc<str>,
}

/// A log shared by several nodes on an object store: the writer is whichever node holds the
/// lease; the others follow the published checkpoint as read replicas.
#[derive(Debug, Clone)]
pub struct Shared {
    pub store: Arc<dyn ObjectStore>,
    pub key: SignerKey,
    pub lease: Arc<Lease>,
    /// How often a replica looks for a new checkpoint.
    pub poll: Duration,
    /// Whether the writer pipelines its commits ([`PipelinedLog`]): the next batch's head is
    /// committed while the objects and checkpoint of earlier ones are written. Off in the
    /// deterministic simulation, which runs every request on the sequencer's thread.
    pub pipeline: bool,
}

struct Job {
    entries: Vec<Entry>,
    bytes: usize,
    reply: oneshot::Sender<Result<Placed, SubmitError>>,
}

/// Where a job's entries landed: committed, durable, covered by `checkpoint`.
struct Placed {
    first: u64,
    size: TreeSize,
    checkpoint: Arc<str>,
    logged_at: Arc<str>,
    /// The entries as appended (with `logged_at` filled in), and their leaf hashes.
    entries: Vec<Entry>,
    leaf_hashes: Vec<Hash>,
}

/// Jobs of more entries than this build their receipts on a blocking thread, not on the async
/// runtime's.
const INLINE_RECEIPTS: usize = 64;

/// What the engine measures; the metrics endpoint registers these.
#[derive(Debug)]
pub struct EngineStats {
    pub events_committed: Counter,
    pub commits: Counter,
    /// Commits that failed on a write or fsync error.
    pub commit_errors: Counter,
    pub pending_events: AtomicUsize,
    pub pending_bytes: AtomicUsize,
    /// Events per commit.
    pub batch_events: Histogram,
    /// Seconds from the start of a commit to its durable checkpoint.
    pub commit_seconds: Histogram,
}

impl Default for EngineStats {
    fn default() -> Self {
        EngineStats {
            events_committed: Counter::default(),
            commits: Counter::default(),
            commit_errors: Counter::default(),
            pending_events: AtomicUsize::new(0),
            pending_bytes: AtomicUsize::new(0),
            batch_events: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_125, 2.0, 16)),
        }
    }
}

/// Handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

struct Inner {
    config: EngineConfig,
    /// Idle readers for building receipts; each keeps its own tile cache.
    readers: Mutex<Vec<LogReader>>,
    /// Template for new readers (only its filesystem and directory are used).
    reader_proto: Mutex<LogReader>,
    tx: Mutex<Option<SyncSender<Job>>>,
    poisoned: Arc<AtomicBool>,
    committed: watch::Receiver<Committed>,
    stats: Arc<EngineStats>,
    thread: Mutex<Option<JoinHandle<()>>>,
    shared: Option<Shared>,
}

impl Engine {
    /// Starts the sequencer on an open log. Commits an empty log's first checkpoint at once, so
    /// that a fresh server always has a checkpoint to serve.
    pub fn start(
        mut log: Box<dyn LogWriter>,
        reader: LogReader,
        config: EngineConfig,
    ) -> Result<Self, LogError> {
        if log.checkpoint().is_none() {
            log.append_batch(&[])?;
        }
        let first = Committed {
            size: log.size().0,
            root: log.root(),
            checkpoint: Arc::from(log.checkpoint().unwrap_or_default()),
        };
        let (engine, seq) = Self::build(Some(log), None, first, reader, config);
        engine.spawn(seq)
    }

    /// Starts a node of a shared log: the writer while it holds the lease, a read replica
    /// (following the published checkpoint) otherwise. Its committed checkpoint is empty
    /// until it has found or written one.
    pub fn start_shared(shared: Shared, reader: LogReader, config: EngineConfig) -> Result<Self, LogError> {
        let (engine, seq) = Self::start_shared_stepped(shared, reader, config);
        engine.spawn(seq.seq)
    }

    /// [`Engine::start_shared`] without a thread: the caller runs the sequencer with
    /// [`Stepper::step`], on its own thread and at the times the engine's clock says. For a
    /// simulation that decides when each node runs; production uses [`Engine::start_shared`].
    pub fn start_shared_stepped(shared: Shared, reader: LogReader, config: EngineConfig) -> (Self, Stepper) {
        let first = Committed { size: 0, root: graven_core::empty_root(), checkpoint: Arc::from("") };
        let (engine, seq) = Self::build(None, Some(shared), first, reader, config);
        (engine, Stepper { seq })
    }

    fn build(
        log: Option<Box<dyn LogWriter>>,
        shared: Option<Shared>,
        first: Committed,
        reader: LogReader,
        config: EngineConfig,
    ) -> (Self, Sequencer) {
        let (committed_tx, committed) = watch::channel(first);
        // The queue holds submissions; the pool limits are enforced on events and bytes.
        let (tx, rx) = mpsc::sync_channel::<Job>(config.max_pending_events.max(1));
        let poisoned = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(EngineStats::default());
        let seq = Sequencer {
            last_stamp: String::new(),
            once: ReplayCache::new(MAX_ONCE_KEYS),
            once_ready: false,
            rebuild_after: None,
            once_reader: reader.fresh(),
            log,
            shared: shared.clone(),
            clock: config.clock.clone(),
            rx,
            arrived: None,
            closed: false,
            stopped: false,
            batch: None,
            open_again_at: None,
            last_poll: None,
            config: config.clone(),
            poisoned: poisoned.clone(),
            committed: Arc::new(committed_tx),
            stats: stats.clone(),
        };
        let engine = Engine {
            inner: Arc::new(Inner {
                config,
                readers: Mutex::new(Vec::new()),
                reader_proto: Mutex::new(reader),
                tx: Mutex::new(Some(tx)),
                poisoned,
                committed,
                stats,
                thread: Mutex::new(None),
                shared,
            }),
        };
        (engine, seq)
    }

    /// Runs `seq` on a thread of its own (see `drive`).
    fn spawn(self, seq: Sequencer) -> Result<Self, LogError> {
        let thread =
            std::thread::Builder::new().name("graven-sequencer".into()).spawn(move || drive(seq)).map_err(
                |e| graven_tlog::LogError::Io { op: "starting", path: "sequencer thread".into(), source: e },
            )?;
        *self.inner.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        Ok(self)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn stats(&self) -> &EngineStats {
        &self.inner.stats
    }

    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::SeqCst)
    }

    /// The shared log's lease, if this node is one of several on an object store.
    pub fn lease(&self) -> Option<&Arc<Lease>> {
        self.inner.shared.as_ref().map(|s| &s.lease)
    }

    /// The object store of a shared log.
    pub fn store(&self) -> Option<&Arc<dyn ObjectStore>> {
        self.inner.shared.as_ref().map(|s| &s.store)
    }

    /// Whether this node takes writes: always for a local log; for a shared one, while it
    /// holds the lease.
    pub fn is_writer(&self) -> bool {
        self.lease().is_none_or(|l| l.is_mine())
    }

    /// The latest committed checkpoint.
    pub fn committed(&self) -> Committed {
        self.inner.committed.borrow().clone()
    }

    /// A receiver that changes whenever a new checkpoint is committed.
    pub fn subscribe(&self) -> watch::Receiver<Committed> {
        self.inner.committed.clone()
    }

    /// Submits canonical entries, all or nothing, and waits until they are durable and
    /// covered by a signed checkpoint. Receipts come back in the same order.
    pub async fn submit(&self, entries: Vec<Entry>) -> Result<Vec<Receipt>, SubmitError> {
        let placed = self.place(entries).await?;
        if placed.entries.len() <= INLINE_RECEIPTS {
            return self.inner.receipts(placed);
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.receipts(placed))
            .await
            .map_err(|e| SubmitError::Storage(format!("building receipts: {e}")))?
    }

    /// [`Engine::submit`], answered with one receipt for the whole run of entries (they are
    /// always contiguous): their leaf hashes and one proof that the run is in the tree
    /// (docs/receipts.md, "Range receipts"), instead of a proof per entry.
    pub async fn submit_range(&self, entries: Vec<Entry>) -> Result<RangeReceipt, SubmitError> {
        let placed = self.place(entries).await?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.range_receipt(placed))
            .await
            .map_err(|e| SubmitError::Storage(format!("building the receipt: {e}")))?
    }

    /// Puts `entries` in the pool and waits until they are committed (durable, under a signed
    /// checkpoint).
    async fn place(&self, entries: Vec<Entry>) -> Result<Placed, SubmitError> {
        if self.is_poisoned() {
            return Err(SubmitError::Storage("an earlier commit failed".into()));
        }
        if let Some(lease) = self.lease().filter(|l| !l.is_mine()) {
            return Err(SubmitError::NotWriter { writer: lease.writer_url() });
        }
        let events = entries.len();
        let bytes: usize = entries.iter().map(|e| e.bytes.len()).sum();
        let cfg = &self.inner.config;
        if events > cfg.max_batch_events || bytes > cfg.max_batch_bytes {
            return Err(SubmitError::TooLarge {
                events,
                bytes,
                max_events: cfg.max_batch_events,
                max_bytes: cfg.max_batch_bytes,
            });
        }
        let stats = &self.inner.stats;
        // Reserve room in the pool, or push back.
        let reserved = stats
            .pending_events
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                (p + events <= cfg.max_pending_events).then_some(p + events)
            })
            .is_ok();
        if !reserved {
            return Err(SubmitError::Overloaded { pending: stats.pending_events.load(Ordering::SeqCst) });
        }
        let bytes_ok = stats
            .pending_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                (p + bytes <= cfg.max_pending_bytes).then_some(p + bytes)
            })
            .is_ok();
        if !bytes_ok {
            stats.pending_events.fetch_sub(events, Ordering::SeqCst);
            return Err(SubmitError::Overloaded { pending: stats.pending_events.load(Ordering::SeqCst) });
        }
        let release = || {
            stats.pending_events.fetch_sub(events, Ordering::SeqCst);
            stats.pending_bytes.fetch_sub(bytes, Ordering::SeqCst);
        };
        let (reply, rx) = oneshot::channel();
        let sent = {
            let guard = self.inner.tx.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_ref() {
                None => Err(SubmitError::ShuttingDown),
                Some(tx) => match tx.try_send(Job { entries, bytes, reply }) {
                    Ok(()) => Ok(()),
                    Err(TrySendError::Full(_)) => {
                        Err(SubmitError::Overloaded { pending: stats.pending_events.load(Ordering::SeqCst) })
                    }
                    Err(TrySendError::Disconnected(_)) => Err(SubmitError::ShuttingDown),
                },
            }
        };
        if let Err(e) = sent {
            release();
            return Err(e);
        }
        // The sequencer releases the pool reservation when it has answered.
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(SubmitError::ShuttingDown),
        }
    }

    /// Stops taking submissions, lets the sequencer commit and answer everything already
    /// accepted, and waits for it to finish.
    pub fn shutdown(&self) {
        drop(self.inner.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        let handle = self.inner.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Inner {
    /// One receipt for a run of committed entries: their leaf hashes and a range proof.
    fn range_receipt(&self, placed: Placed) -> Result<RangeReceipt, SubmitError> {
        if placed.leaf_hashes.len() != placed.entries.len() || placed.entries.is_empty() {
            return Err(SubmitError::Storage("the commit returned the wrong number of leaf hashes".into()));
        }
        let mut reader = {
            let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            idle.pop().unwrap_or_else(|| self.reader_proto.lock().unwrap_or_else(|p| p.into_inner()).fresh())
        };
        let count = placed.entries.len() as u64;
        let proof = reader.range_proof(placed.first, count, placed.size);
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).push(reader);
        let range_proof = proof.map_err(|e| {
            SubmitError::Storage(format!(
                "building the receipt for {}..{}: {e}",
                placed.first,
                placed.first + count
            ))
        })?;
        Ok(RangeReceipt {
            first_index: placed.first,
            logged_at: placed.entries.iter().any(|e| e.stamp_at.is_some()).then(|| placed.logged_at.clone()),
            leaf_hashes: placed.leaf_hashes,
            tree_size: placed.size.0,
            checkpoint: placed.checkpoint,
            range_proof,
        })
    }

    /// Receipts for entries that are committed: leaf hashes, and inclusion proofs against the
    /// checkpoint that covers them.
    fn receipts(&self, placed: Placed) -> Result<Vec<Receipt>, SubmitError> {
        if placed.leaf_hashes.len() != placed.entries.len() {
            return Err(SubmitError::Storage("the commit returned the wrong number of leaf hashes".into()));
        }
        let mut reader = {
            let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            idle.pop().unwrap_or_else(|| self.reader_proto.lock().unwrap_or_else(|p| p.into_inner()).fresh())
        };
        let mut prover = Prover::new(placed.size);
        let mut out = Vec::with_capacity(placed.entries.len());
        let mut failed = None;
        for ((index, e), leaf) in (placed.first..).zip(&placed.entries).zip(&placed.leaf_hashes) {
            match reader.inclusion_proof_with(&mut prover, LeafIndex(index)) {
                Ok(proof) => out.push(Receipt {
                    index,
                    logged_at: e.stamp_at.map(|_| placed.logged_at.clone()),
                    leaf_hash: *leaf,
                    tree_size: placed.size.0,
                    checkpoint: placed.checkpoint.clone(),
                    inclusion_proof: proof,
                }),
                Err(err) => {
                    failed = Some(SubmitError::Storage(format!("building the receipt for {index}: {err}")));
                    break;
                }
            }
        }
        self.readers.lock().unwrap_or_else(|p| p.into_inner()).push(reader);
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

/// What the sequencer asks of its driver after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NextStep {
    /// Step again at once: there may be more to commit.
    Now,
    /// Step again when a submission arrives, or at this moment at the latest (`None`: only
    /// when one arrives).
    Wait(Option<Moment>),
    /// Done: the queue is closed, everything accepted was answered, the lease released.
    Stop,
}

/// How long a writer that could not open the shared log waits before it looks at its role
/// again.
const OPEN_RETRY: Duration = Duration::from_millis(200);
/// How often a shared log's node looks at its role while no submission arrives.
const ROLE_CHECK: Duration = Duration::from_millis(100);
/// How long after a failed rebuild of the record of client-signature ids the next signed
/// submission tries again.
const REBUILD_RETRY: Duration = Duration::from_secs(1);

/// A shared log's sequencer, run by hand (see [`Engine::start_shared_stepped`]).
pub struct Stepper {
    seq: Sequencer,
}

impl std::fmt::Debug for Stepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stepper").finish_non_exhaustive()
    }
}

impl Stepper {
    /// One step at the engine's clock's current time: takes whatever was submitted, acts on
    /// the node's role, commits at most one batch (or a batch and the job that did not fit in
    /// it), answers. Never blocks or sleeps; the only waiting is on the store's replies.
    pub fn step(&mut self) -> NextStep {
        let now = self.seq.clock.now();
        self.seq.step(now)
    }
}

/// The sequencer's thread: steps, then waits for what the step asked for (a submission, or
/// the time to step again), until the queue closes.
fn drive(mut seq: Sequencer) {
    if seq.shared.is_none() {
        seq.rebuild_once();
    }
    loop {
        let now = seq.clock.now();
        match seq.step(now) {
            NextStep::Now => {}
            NextStep::Stop => return,
            NextStep::Wait(until) => seq.wait(now, until),
        }
    }
}

/// Submissions gathered into one commit.
struct Batch {
    jobs: Vec<Job>,
    events: usize,
    bytes: usize,
    /// When the batch closes even if it is not full ([`EngineConfig::max_batch_wait`]).
    close_at: Moment,
}

/// What the queue held.
enum Take {
    Job(Job),
    Empty,
    /// Every sender is gone (shutdown) and the queue is drained.
    Closed,
}

struct Sequencer {
    /// The last `logged_at` stamped; never goes back, even if the clock does.
    last_stamp: String,
    /// The client-signature ids logged within their window: a second use is refused. Rebuilt
    /// from the log itself whenever the log is opened, so it holds across restarts and writer
    /// changes.
    once: ReplayCache,
    /// Whether `once` was rebuilt from the log this node writes; until it is, signed events
    /// are refused rather than risk a replay going through.
    once_ready: bool,
    /// After a failed rebuild, the next one is not tried before this.
    rebuild_after: Option<Moment>,
    once_reader: LogReader,
    /// The log, while this node is its writer.
    log: Option<Box<dyn LogWriter>>,
    shared: Option<Shared>,
    clock: Arc<dyn Clock>,
    rx: mpsc::Receiver<Job>,
    /// A submission the driver took off the queue while it waited.
    arrived: Option<Job>,
    /// The driver found the queue closed.
    closed: bool,
    stopped: bool,
    /// The batch being gathered (only while waiting for [`EngineConfig::max_batch_wait`]).
    batch: Option<Batch>,
    /// A writer that could not open the shared log does not try again before this.
    open_again_at: Option<Moment>,
    /// When a replica last looked for a new checkpoint.
    last_poll: Option<Moment>,
    config: EngineConfig,
    poisoned: Arc<AtomicBool>,
    committed: Arc<watch::Sender<Committed>>,
    stats: Arc<EngineStats>,
}

impl Sequencer {
    /// One step at `now` (see [`Stepper::step`]).
    fn step(&mut self, now: Moment) -> NextStep {
        if self.stopped {
            return NextStep::Stop;
        }
        // A batch being gathered is committed whatever the role: the head's compare-and-swap
        // fences a writer that lost the lease meanwhile.
        if self.batch.is_none()
            && let Some(shared) = self.shared.clone()
            && let Some(next) = self.act_on_role(&shared, now)
        {
            return next;
        }
        self.gather_and_commit(now)
    }

    /// The driver's wait after a step that asked for one: for the next submission, until
    /// `until` at the latest.
    fn wait(&mut self, now: Moment, until: Option<Moment>) {
        if self.arrived.is_some() || self.closed {
            // Nothing to wait for but the time (a writer waiting to open the log again).
            if let Some(t) = until {
                self.clock.sleep(t.since(now));
            }
            return;
        }
        let got = match until {
            None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(t) => self.rx.recv_timeout(t.since(now)),
        };
        match got {
            Ok(job) => self.arrived = Some(job),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.closed = true,
        }
    }

    fn take(&mut self) -> Take {
        if let Some(job) = self.arrived.take() {
            return Take::Job(job);
        }
        match self.rx.try_recv() {
            Ok(job) => Take::Job(job),
            Err(TryRecvError::Empty) => Take::Empty,
            Err(TryRecvError::Disconnected) => {
                self.closed = true;
                Take::Closed
            }
        }
    }

    /// The queue is closed and drained: a shared log's writer gives up its lease, so a standby
    /// takes over at once.
    fn stop(&mut self) -> NextStep {
        self.stopped = true;
        // Batches committed but not yet published are answered before the lease goes.
        if let Some(log) = self.log.as_mut() {
            log.flush();
        }
        if let Some(shared) = &self.shared {
            shared.lease.release();
        }
        NextStep::Stop
    }

    /// On a shared log, acts on this node's role. A node that holds the lease opens the log
    /// (finishing whatever the last writer left) if it has not yet, and goes on to commit
    /// (`None`) if it still holds the lease once the log is open; any other node is a replica: it refuses submissions and follows the published
    /// checkpoint, and says when to look again.
    fn act_on_role(&mut self, shared: &Shared, now: Moment) -> Option<NextStep> {
        if shared.lease.is_mine_at(now) {
            if self.log.is_some() {
                return None;
            }
            if let Some(t) = self.open_again_at.filter(|t| now < *t) {
                return Some(NextStep::Wait(Some(t)));
            }
            if !self.open_shared(shared) {
                self.open_again_at = Some(now + OPEN_RETRY);
                return Some(NextStep::Wait(Some(now + OPEN_RETRY)));
            }
            self.open_again_at = None;
            // Opening read the head, maybe long after `now` (a slow store, a paused process).
            // Write on what it read only if the lease still holds: then the read was made
            // while this node held it, before another node could take it and commit, and the
            // head's compare-and-swap fences this node if one does later. Otherwise the head
            // may be a later writer's, and committing on it would pass the swap with a stale
            // view of the lease.
            if shared.lease.is_mine_at(self.clock.now()) {
                return None;
            }
            tracing::warn!(
                "the writer lease ran out while this node opened the log; it does not write on it"
            );
        }
        if self.log.take().is_some() {
            tracing::warn!("this node no longer holds the writer lease; it is now a read replica");
        }
        if self.last_poll.is_none_or(|t| now.since(t) >= shared.poll) {
            self.last_poll = Some(now);
            self.follow(shared);
        }
        loop {
            match self.take() {
                Take::Job(job) => {
                    self.refuse(vec![job], SubmitError::NotWriter { writer: shared.lease.writer_url() })
                }
                Take::Empty => break,
                Take::Closed => return Some(self.stop()),
            }
        }
        let poll_at = self.last_poll.unwrap_or(now) + shared.poll;
        Some(NextStep::Wait(Some(poll_at.min(now + ROLE_CHECK))))
    }

    /// The writer's part of a step: gathers what is waiting into a batch (up to the count and
    /// byte limits, for at most [`EngineConfig::max_batch_wait`] after its first submission),
    /// then commits it.
    fn gather_and_commit(&mut self, now: Moment) -> NextStep {
        let (max_events, max_bytes) = (self.config.max_batch_events, self.config.max_batch_bytes);
        // A pipelined log with a batch still queued: what arrives meanwhile joins the next one.
        if self.batch.is_none()
            && let Some(log) = self.log.as_mut()
        {
            log.ready();
        }
        loop {
            if self.batch.as_ref().is_some_and(|b| b.events >= max_events || b.bytes >= max_bytes) {
                break;
            }
            match self.take() {
                Take::Job(job) => {
                    let (events, bytes) = (job.entries.len(), job.bytes);
                    match &mut self.batch {
                        None => {
                            let close_at = now + self.config.max_batch_wait;
                            self.batch = Some(Batch { jobs: vec![job], events, bytes, close_at });
                        }
                        Some(b) if b.events + events > max_events || b.bytes + bytes > max_bytes => {
                            // Does not fit: commit what we have, then this job alone.
                            let (jobs, close_at) = (std::mem::take(&mut b.jobs), b.close_at);
                            self.commit(jobs);
                            self.batch = Some(Batch { jobs: vec![job], events, bytes, close_at });
                        }
                        Some(b) => {
                            b.events += events;
                            b.bytes += bytes;
                            b.jobs.push(job);
                        }
                    }
                }
                Take::Empty => match &self.batch {
                    None if self.shared.is_some() => return NextStep::Wait(Some(now + ROLE_CHECK)),
                    None => return NextStep::Wait(None),
                    Some(b) if now < b.close_at => return NextStep::Wait(Some(b.close_at)),
                    Some(_) => break,
                },
                Take::Closed => {
                    if let Some(b) = self.batch.take() {
                        self.commit(b.jobs);
                    }
                    return self.stop();
                }
            }
        }
        if let Some(b) = self.batch.take() {
            self.commit(b.jobs);
        }
        NextStep::Now
    }

    /// Opens the shared log as its writer. Returns whether it is open.
    fn open_shared(&mut self, shared: &Shared) -> bool {
        let opened = ObjectLog::open_on(
            shared.store.clone(),
            shared.key.clone(),
            graven_tlog::objlog::Retry::default(),
            self.clock.clone(),
        )
        .and_then(|mut log| {
            if log.checkpoint().is_none() {
                log.append::<Vec<u8>>(&[])?;
            }
            Ok(log)
        });
        // Never serve a tree that does not extend the one this node already served (as a
        // replica or an earlier writer): a head put back from an old version, say.
        let served = self.committed.borrow().clone();
        let opened = opened.and_then(|log| {
            if served.checkpoint.is_empty() || log.extends(TreeSize(served.size), served.root)? {
                Ok(log)
            } else {
                Err(LogError::Head(format!(
                    "the log in the store (size {}) does not extend the tree of size {} this node already served; refusing to write on a fork",
                    log.size().0,
                    served.size
                )))
            }
        });
        match opened {
            Ok(log) => {
                tracing::info!(
                    size = log.size().0,
                    pipeline = shared.pipeline,
                    "this node is now the log's writer"
                );
                self.committed.send_replace(Committed {
                    size: log.size().0,
                    root: log.root(),
                    checkpoint: Arc::from(log.checkpoint().unwrap_or_default()),
                });
                let log: Box<dyn LogWriter> = if shared.pipeline {
                    match PipelinedLog::new(log) {
                        Ok(l) => Box::new(l),
                        Err(e) => {
                            tracing::error!(error = %e, "could not start pipelined commits; giving up the lease");
                            self.stats.commit_errors.inc();
                            shared.lease.give_up();
                            return false;
                        }
                    }
                } else {
                    Box::new(log)
                };
                self.log = Some(log);
                self.rebuild_once();
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "could not open the shared log as its writer; giving up the lease");
                self.stats.commit_errors.inc();
                shared.lease.give_up();
                false
            }
        }
    }

    /// As a replica: takes up the published checkpoint if it moved on, after checking it is
    /// signed by the log's key, that the stored tiles reproduce its root, and that it extends
    /// the tree this node already served ([`graven_tlog::replica`]).
    fn follow(&mut self, shared: &Shared) {
        let vkey = shared.key.verifier();
        let current = self.committed.borrow().clone();
        let served = Served {
            size: TreeSize(current.size),
            root: current.root,
            checkpoint: current.checkpoint.as_bytes(),
        };
        match graven_tlog::replica::next_published(shared.store.as_ref(), &vkey, served) {
            Ok(Next::Unchanged) => {}
            Ok(Next::Extends { checkpoint, verified }) => {
                self.committed.send_replace(Committed {
                    size: verified.size().0,
                    root: verified.root(),
                    checkpoint: Arc::from(checkpoint.as_str()),
                });
            }
            Ok(Next::Conflicts { verified }) => tracing::error!(
                size = verified.size().0,
                known = current.size,
                "the published checkpoint is behind or conflicts with one this node already served; ignored"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the published checkpoint could not be read or checked; not followed")
            }
        }
    }

    /// Answers `jobs` with `e` and releases their pool reservation.
    fn refuse(&mut self, jobs: Vec<Job>, e: SubmitError) {
        let events: usize = jobs.iter().map(|j| j.entries.len()).sum();
        let bytes: usize = jobs.iter().map(|j| j.bytes).sum();
        for job in jobs {
            let _ = job.reply.send(Err(e.clone()));
        }
        self.stats.pending_events.fetch_sub(events, Ordering::SeqCst);
        self.stats.pending_bytes.fetch_sub(bytes, Ordering::SeqCst);
    }

    /// What a failed commit means for this node (the batch itself is answered by
    /// [`answer`]). A local log is poisoned until restart. A shared log's node drops its
    /// writer: when fenced it is a replica now; otherwise it reopens the log (finishing the
    /// batch if it was committed) before the next commit.
    fn commit_failed(&mut self, e: &LogError) {
        self.stats.commit_errors.inc();
        let Some(shared) = &self.shared else {
            self.poisoned.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, "commit failed; the log is poisoned until restart");
            return;
        };
        // Dropping a pipelined writer publishes (or fails) what it committed first.
        self.log = None;
        self.once_ready = false;
        if matches!(e, LogError::Fenced) {
            // Another writer moved the head: a stale one finishing its last commit after this
            // node took the lease, or the other way round. If this node still holds the lease
            // it reopens the log at the next submission (taking in the other's commit);
            // otherwise it is a replica now. Either way this batch was not committed.
            if shared.lease.is_mine() {
                tracing::warn!("another writer moved the log on; reopening it");
            } else {
                tracing::warn!("another node moved the log on; this node is now a read replica");
            }
            return;
        }
        tracing::error!(error = %e, "commit failed; the log will be reopened before the next commit");
    }

    /// Claims every client-signature id of `job`, or none: a replayed id, an id whose window
    /// has ended (or a full table, or a table not rebuilt yet) refuses the whole submission.
    fn claim_once(&mut self, job: &Job, now_s: i64) -> Result<(), SubmitError> {
        let mut claimed: Vec<u128> = Vec::new();
        let mut result = Ok(());
        for (i, e) in job.entries.iter().enumerate() {
            let Some(k) = e.once else { continue };
            if !self.once_ready {
                result = Err(SubmitError::Unavailable(
                    "the record of client-signature ids could not be rebuilt from the log (reading it failed); client-signed events are refused until it is, unsigned ones are taken".into(),
                ));
                break;
            }
            // The record keeps an id only until its window ends. An entry whose window has
            // ended by now (it waited in the queue, or behind a slow commit, after the auth
            // layer checked it) may be one whose first copy the record already forgot.
            if k.expires_s < now_s {
                result = Err(SubmitError::SignatureExpired { entry: i });
                break;
            }
            match self.once.insert(k.digest, k.expires_s, now_s) {
                Seen::New => claimed.push(k.digest),
                Seen::Replay => {
                    result = Err(SubmitError::Replayed { entry: i });
                    break;
                }
                Seen::Full => {
                    result = Err(SubmitError::Overloaded { pending: self.once.len() });
                    break;
                }
            }
        }
        if result.is_err() {
            for k in claimed {
                self.once.remove(k);
            }
        }
        result
    }

    /// Rebuilds the record of client-signature ids from the log's most recent entries: every
    /// version 2 signature logged within the last two windows (plus a minute's slack for
    /// clocks) whose window has not ended. `logged_at` never decreases along the log, so the
    /// scan walks back bundle by bundle and stops at the first bundle that ends before that.
    fn rebuild_once(&mut self) {
        // What it reads must be written: every committed batch published first.
        if let Some(log) = self.log.as_mut() {
            log.flush();
        }
        self.once.clear();
        self.once_ready = false;
        let Some(size) = self.log.as_ref().map(|l| l.size()) else { return };
        // Until it succeeds, signed submissions try again now and then (see `commit`).
        self.rebuild_after = Some(self.clock.now() + REBUILD_RETRY);
        let window = i64::try_from(self.config.client_signature_window.as_secs()).unwrap_or(i64::MAX / 4);
        let now = self.clock.unix_micros();
        let now_s = now.div_euclid(1_000_000);
        let cutoff = format_timestamp(
            now.saturating_sub(window.saturating_mul(2).saturating_add(60).saturating_mul(1_000_000)),
        );
        let started = self.clock.now();
        let mut end = size.0;
        let mut scanned = 0u64;
        while end > 0 {
            let (first, entries) = match self.once_reader.bundle(end - 1, size) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "reading the log to rebuild the client-signature ids failed; signed events are refused until a later try succeeds");
                    return;
                }
            };
            let upto = usize::try_from(end - first).unwrap_or(usize::MAX).min(entries.len());
            for entry in &entries[..upto] {
                if let Some(k) = once_key_of_leaf(entry, window)
                    && k.expires_s >= now_s
                {
                    // A full table cannot happen here unless the window was shortened a lot;
                    // what does not fit is refused later as Overloaded, never forgotten.
                    let _ = self.once.insert(k.digest, k.expires_s, now_s);
                }
            }
            scanned += upto as u64;
            end = first;
            let newest = entries[..upto].iter().rev().find_map(|e| logged_at_of_leaf(e));
            if newest.is_some_and(|t| t < cutoff) {
                break;
            }
        }
        self.once_ready = true;
        self.rebuild_after = None;
        tracing::info!(
            scanned,
            ids = self.once.len(),
            ms = self.clock.now().since(started).as_millis() as u64,
            "rebuilt the record of client-signature ids from the log"
        );
    }

    /// One group commit, then the answers.
    fn commit(&mut self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let now_s = self.clock.unix_seconds();
        // A record that could not be rebuilt when the log was opened (a read failed) is
        // rebuilt when signed events need it, at most once per REBUILD_RETRY.
        if !self.once_ready
            && self.log.is_some()
            && self.rebuild_after.is_none_or(|t| self.clock.now() >= t)
            && jobs.iter().any(|j| j.entries.iter().any(|e| e.once.is_some()))
        {
            self.rebuild_once();
        }
        let mut admitted = Vec::with_capacity(jobs.len());
        for job in jobs {
            match self.claim_once(&job, now_s) {
                Ok(()) => admitted.push(job),
                Err(e) => self.refuse(vec![job], e),
            }
        }
        let mut jobs = admitted;
        if jobs.is_empty() {
            return;
        }
        let now = format_timestamp(self.clock.unix_micros());
        if now > self.last_stamp {
            self.last_stamp = now;
        }
        let logged_at: Arc<str> = Arc::from(self.last_stamp.as_str());
        for e in jobs.iter_mut().flat_map(|j| j.entries.iter_mut()) {
            if let Some(at) = e.stamp_at {
                stamp(&mut e.bytes, at, &logged_at);
            }
        }
        let events: usize = jobs.iter().map(|j| j.entries.len()).sum();
        let bytes: usize = jobs.iter().map(|j| j.bytes).sum();
        let reply = Reply {
            jobs: Vec::new(),
            events,
            bytes,
            logged_at,
            started: self.clock.now(),
            clock: self.clock.clone(),
            stats: self.stats.clone(),
            committed: self.committed.clone(),
        };
        let log = match self.log.as_mut() {
            _ if self.poisoned.load(Ordering::SeqCst) => {
                return Reply { jobs, ..reply }
                    .refused(SubmitError::Storage("an earlier commit failed".into()));
            }
            None => return Reply { jobs, ..reply }.refused(SubmitError::NotWriter { writer: None }),
            Some(log) => log,
        };
        // The jobs go to whichever comes second: the log's answer (now, or later from its
        // publishing thread) or this thread, once the entries are no longer borrowed.
        let slot = Arc::new(Mutex::new(Slot::Empty));
        let done: OnPublished = {
            let slot = slot.clone();
            Box::new(move |r| Slot::published(&slot, r))
        };
        let submitted = {
            let entries: Vec<&[u8]> =
                jobs.iter().flat_map(|j| j.entries.iter().map(|e| e.bytes.as_slice())).collect();
            // The commit point: once `done` has `Ok`, every entry is durable and covered by a
            // published signed checkpoint.
            log.submit(&entries, done)
        };
        Slot::jobs(&slot, Reply { jobs, ..reply });
        if let Err(e) = submitted {
            self.commit_failed(&e);
        }
    }
}

/// Where a commit's answer meets its jobs (see [`Sequencer::commit`]).
enum Slot {
    Empty,
    Answer(Result<Published, LogError>),
    Jobs(Reply),
}

impl Slot {
    fn published(slot: &Mutex<Slot>, r: Result<Published, LogError>) {
        let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *s, Slot::Empty) {
            Slot::Jobs(reply) => {
                drop(s);
                reply.answer(r);
            }
            _ => *s = Slot::Answer(r),
        }
    }

    fn jobs(slot: &Mutex<Slot>, reply: Reply) {
        let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *s, Slot::Empty) {
            Slot::Answer(r) => {
                drop(s);
                reply.answer(r);
            }
            _ => *s = Slot::Jobs(reply),
        }
    }
}

/// The jobs of one commit and what answering them needs, on whichever thread the answer
/// comes.
struct Reply {
    jobs: Vec<Job>,
    events: usize,
    bytes: usize,
    logged_at: Arc<str>,
    started: Moment,
    clock: Arc<dyn Clock>,
    stats: Arc<EngineStats>,
    committed: Arc<watch::Sender<Committed>>,
}

impl Reply {
    /// Answers every job with where its entries landed, or with the error.
    fn answer(self, r: Result<Published, LogError>) {
        match r {
            Err(e) => self.refused(match e {
                LogError::Fenced => SubmitError::NotWriter { writer: None },
                e => SubmitError::Storage(e.to_string()),
            }),
            Ok(published) => {
                let Reply { jobs, events, bytes, logged_at, started, clock, stats, committed } = self;
                stats.events_committed.inc_by(events as u64);
                stats.commits.inc();
                stats.batch_events.observe(events as f64);
                stats.commit_seconds.observe(clock.now().since(started).as_secs_f64());
                let checkpoint: Arc<str> = Arc::from(published.checkpoint.as_str());
                let size = published.new_size;
                // Several batches published by one checkpoint each bring it: moved once.
                committed.send_if_modified(|c| {
                    if c.size >= size.0 && !c.checkpoint.is_empty() {
                        return false;
                    }
                    *c = Committed { size: size.0, root: published.root, checkpoint: checkpoint.clone() };
                    true
                });
                let mut next = published.old_size.0;
                let mut hashes = published.leaf_hashes.into_iter();
                for job in jobs {
                    let first = next;
                    next += job.entries.len() as u64;
                    let leaf_hashes: Vec<Hash> = hashes.by_ref().take(job.entries.len()).collect();
                    let _ = job.reply.send(Ok(Placed {
                        first,
                        size,
                        checkpoint: checkpoint.clone(),
                        logged_at: logged_at.clone(),
                        entries: job.entries,
                        leaf_hashes,
                    }));
                }
                stats.pending_events.fetch_sub(events, Ordering::SeqCst);
                stats.pending_bytes.fetch_sub(bytes, Ordering::SeqCst);
            }
        }
    }

    /// Answers every job with `e` and releases their pool reservation.
    fn refused(self, e: SubmitError) {
        for job in self.jobs {
            let _ = job.reply.send(Err(e.clone()));
        }
        self.stats.pending_events.fetch_sub(self.events, Ordering::SeqCst);
        self.stats.pending_bytes.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}
