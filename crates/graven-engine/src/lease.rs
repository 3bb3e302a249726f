//! Which node of a shared (object-store) log is its writer: a lease object, `graven/lease`,
//! taken and renewed by compare-and-swap.
//!
//! The writer rewrites the lease every `ttl / 5` with a counter that changes its bytes (and so
//! its ETag). A standby polls it at the same pace; when it has seen the same ETag for a whole
//! `ttl` on its own monotonic clock, the writer is presumed dead and the standby swaps the
//! lease to itself (`If-Match` the stale ETag, so of several standbys one wins). No clock is
//! compared across machines.
//!
//! The writer stops writing when it has not renewed for `ttl * 4 / 5`, before any standby
//! can take over. The lease is only about liveness, though: safety does not depend on it.
//! Every commit is a compare-and-swap of the log's head, so a writer that still believes it
//! holds the lease after losing it is fenced by its next commit (see `graven_tlog::objlog`).
//!
//! Time comes from the [`Clock`] the lease is given: [`Lease::tick`] is one round at the
//! clock's time, and the thread of [`Lease::spawn`] only runs rounds and sleeps between them,
//! so a simulation can run the rounds itself on a simulated clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graven_clock::{Clock, Moment};
use graven_tlog::{Cond, ObjectStore, StoreError};
use serde::{Deserialize, Serialize};

/// The lease object's key.
pub const LEASE_KEY: &str = "graven/lease";
const MAX_LEASE_BYTES: u64 = 64 * 1024;

/// Whether `u` is an http(s) URL with no spaces or control characters, of sane length.
pub fn plausible_url(u: &str) -> bool {
    (u.starts_with("http://") || u.starts_with("https://"))
        && u.len() <= 2048
        && !u.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Record {
    /// The holder's node id; `None` once released.
    holder: Option<String>,
    /// Where the holder takes writes, for redirects.
    url: Option<String>,
    /// Bumped by every write, so every renewal has a new ETag.
    renewals: u64,
    /// The holder's wall clock at the write, for people reading the object.
    written_ms: i64,
}

#[derive(Debug, Default)]
struct State {
    /// The ETag of the lease as this node last wrote or saw it.
    etag: Option<String>,
    renewals: u64,
    /// This node holds the lease until then.
    mine_until: Option<Moment>,
    /// The other holder's last seen ETag and when it was first seen.
    seen: Option<(String, Moment)>,
    writer_url: Option<String>,
}

/// This node's view of the lease. Shared between the lease thread, the sequencer and the HTTP
/// handlers.
#[derive(Debug)]
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    node: String,
    url: Option<String>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    stopped: AtomicBool,
    /// Held for a whole round and by [`Lease::release`]: a renewal in flight when the node
    /// releases the lease would otherwise land after the release (or a round that began
    /// before it would take the freed lease again), leaving the lease held by a stopped node
    /// until it expires.
    round: Mutex<()>,
}

impl Lease {
    /// `url` is where this node takes writes, advertised to the others for redirects. The
    /// node's id is random.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        url: Option<String>,
        ttl: Duration,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let mut id = [0u8; 8];
        let _ = getrandom::fill(&mut id);
        Self::with_node_id(store, url, ttl, clock, graven_core::hex::encode(&id))
    }

    /// [`Lease::new`] with the node's id chosen by the caller (a simulation's, so that a run
    /// writes the same bytes every time). Ids must differ between nodes, and between two runs
    /// of one node: a node recognises its own writes by its id.
    pub fn with_node_id(
        store: Arc<dyn ObjectStore>,
        url: Option<String>,
        ttl: Duration,
        clock: Arc<dyn Clock>,
        node: String,
    ) -> Arc<Self> {
        Arc::new(Lease {
            store,
            node,
            url,
            ttl,
            clock,
            state: Mutex::new(State::default()),
            stopped: AtomicBool::new(false),
            round: Mutex::new(()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this node may write now.
    pub fn is_mine(&self) -> bool {
        self.is_mine_at(self.clock.now())
    }

    /// Whether this node may write at `now` (a reading of the lease's clock).
    pub fn is_mine_at(&self, now: Moment) -> bool {
        self.state().mine_until.is_some_and(|t| now < t)
    }

    /// This node's id, as the lease record names its holder.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// Where the current writer takes writes, if it is another node and said so.
    pub fn writer_url(&self) -> Option<String> {
        if self.is_mine() { None } else { self.state().writer_url.clone() }
    }

    /// The sequencer found itself fenced: another node moved the log on.
    pub fn lost(&self) {
        let mut s = self.state();
        s.mine_until = None;
        s.etag = None;
    }

    fn record(&self, renewals: u64, holder: bool) -> Vec<u8> {
        let r = Record {
            holder: holder.then(|| self.node.clone()),
            url: if holder { self.url.clone() } else { None },
            renewals,
            written_ms: self.clock.unix_ms(),
        };
        serde_json::to_vec(&r).unwrap_or_default()
    }

    /// One round: renew if this node holds the lease, else watch it and take it when free or
    /// stale. Returns whether this node holds it afterwards.
    pub fn tick(&self) -> bool {
        let _round = self.round.lock().unwrap_or_else(|p| p.into_inner());
        if self.stopped.load(Ordering::SeqCst) {
            return false;
        }
        let started = self.clock.now();
        let (holding, etag, renewals) = {
            let s = self.state();
            (s.mine_until.is_some(), s.etag.clone(), s.renewals)
        };
        if let (true, Some(etag)) = (holding, etag) {
            let bytes = self.record(renewals + 1, true);
            return match self.store.put(LEASE_KEY, &bytes, Cond::IfMatch(&etag), false) {
                Ok(tag) => self.hold(tag, renewals + 1, started),
                Err(StoreError::Precondition { .. }) => {
                    // A renewal that landed but whose reply was lost (this round's, retried by
                    // the store's client, or an earlier round's) makes this condition fail. If
                    // the lease still names this node, no one took it since: renew on top of
                    // what is there. (The bytes differ from an earlier round's: they hold the
                    // time.) The deadline counts from this round's start, and this write lands
                    // after it.
                    if let Ok(Some(o)) = self.store.get(LEASE_KEY, MAX_LEASE_BYTES) {
                        if o.bytes == bytes {
                            return self.hold(o.etag, renewals + 1, started);
                        }
                        let theirs: Option<Record> = serde_json::from_slice(&o.bytes).ok();
                        if let Some(r) = theirs.filter(|r| r.holder.as_deref() == Some(self.node.as_str())) {
                            let bytes = self.record(r.renewals.max(renewals) + 1, true);
                            if let Ok(tag) = self.store.put(LEASE_KEY, &bytes, Cond::IfMatch(&o.etag), false)
                            {
                                return self.hold(tag, r.renewals.max(renewals) + 1, started);
                            }
                        }
                    }
                    tracing::warn!("the lease was taken by another node; this node stops writing");
                    self.lost();
                    false
                }
                // Unknown outcome: keep the current deadline; the next round tries again.
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the lease failed");
                    self.is_mine()
                }
            };
        }
        let current = match self.store.get(LEASE_KEY, MAX_LEASE_BYTES) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "reading the lease failed");
                return false;
            }
        };
        let Some(obj) = current else {
            return match self.store.put(LEASE_KEY, &self.record(1, true), Cond::IfAbsent, false) {
                Ok(tag) => self.hold(tag, 1, started),
                Err(_) => false,
            };
        };
        let rec: Option<Record> = serde_json::from_slice(&obj.bytes).ok();
        let renewals = rec.as_ref().map_or(0, |r| r.renewals);
        let free = rec.as_ref().is_some_and(|r| r.holder.is_none());
        let stale = {
            let mut s = self.state();
            // The URL comes from an object anyone with the bucket's credentials can write;
            // redirect only to something that is plainly an http(s) base URL.
            s.writer_url = rec.as_ref().and_then(|r| r.url.clone()).filter(|u| plausible_url(u));
            match &s.seen {
                Some((tag, since)) if *tag == obj.etag => self.clock.now().since(*since) >= self.ttl,
                _ => {
                    s.seen = Some((obj.etag.clone(), self.clock.now()));
                    false
                }
            }
        };
        if !(free || stale) {
            return false;
        }
        let bytes = self.record(renewals + 1, true);
        match self.store.put(LEASE_KEY, &bytes, Cond::IfMatch(&obj.etag), false) {
            Ok(tag) => {
                tracing::info!(node = %self.node, "took the writer lease");
                self.hold(tag, renewals + 1, started)
            }
            Err(_) => false,
        }
    }

    fn hold(&self, etag: String, renewals: u64, started: Moment) -> bool {
        let mut s = self.state();
        s.etag = Some(etag);
        s.renewals = renewals;
        s.mine_until = Some(started + self.ttl * 4 / 5);
        s.seen = None;
        s.writer_url = None;
        true
    }

    /// Gives the lease up at once, without stopping: this node cannot write (its log would not
    /// open), so another node should not have to wait a whole `ttl` to try. This node may take
    /// the lease again later, like any standby.
    pub fn give_up(&self) {
        let _round = self.round.lock().unwrap_or_else(|p| p.into_inner());
        let (etag, renewals) = {
            let mut s = self.state();
            let e = s.etag.take();
            s.mine_until = None;
            (e, s.renewals)
        };
        if let Some(etag) = etag {
            let _ = self.store.put(LEASE_KEY, &self.record(renewals + 1, false), Cond::IfMatch(&etag), false);
        }
    }

    /// Gives the lease up (on shutdown), so a standby takes over at once instead of after a
    /// `ttl`. Best effort: if it fails, the lease simply expires.
    pub fn release(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Waits for a round in flight (give_up takes the round lock), so the release is written
        // last, with its ETag, and no round after it takes the lease again.
        self.give_up();
    }

    /// Runs [`Lease::tick`] every `ttl / 5` on a thread of its own until [`Lease::release`].
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let lease = self.clone();
        std::thread::Builder::new().name("graven-lease".into()).spawn(move || {
            let period = lease.ttl / 5;
            while !lease.stopped.load(Ordering::SeqCst) {
                let started = lease.clock.now();
                lease.tick();
                lease.clock.sleep(period.saturating_sub(lease.clock.now().since(started)));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use graven_tlog::{MemStore, Object};

    use super::*;

    /// A [`MemStore`] whose next `If-Match` write of the lease, once armed, lands and then
    /// waits (as a slow reply would) until told to return.
    #[derive(Debug, Default)]
    struct Gated {
        inner: MemStore,
        gate: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
    }

    impl ObjectStore for Gated {
        fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError> {
            self.inner.get(key, limit)
        }
        fn put(&self, key: &str, data: &[u8], cond: Cond<'_>, retain: bool) -> Result<String, StoreError> {
            let landed = self.inner.put(key, data, cond, retain);
            if matches!(cond, Cond::IfMatch(_))
                && let Some((landed_tx, go)) = self.gate.lock().unwrap().take()
            {
                landed_tx.send(()).unwrap();
                go.recv().unwrap();
            }
            landed
        }
        fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError> {
            self.inner.first_key_after(prefix, after)
        }

        fn location(&self) -> String {
            "gated".into()
        }
    }

    fn holder(store: &dyn ObjectStore) -> Option<String> {
        let obj = store.get(LEASE_KEY, MAX_LEASE_BYTES).unwrap().unwrap();
        serde_json::from_slice::<Record>(&obj.bytes).unwrap().holder
    }

    #[test]
    fn release_during_a_renewal_still_frees_the_lease() {
        let store = Arc::new(Gated { inner: MemStore::new(), ..Default::default() });
        let lease = Lease::new(
            store.clone(),
            Some("http://a".into()),
            Duration::from_secs(5),
            graven_clock::system(),
        );
        assert!(lease.tick(), "takes the free lease");
        // A renewal is in flight: it has landed, its reply has not come back yet.
        let (landed_tx, landed) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        *store.gate.lock().unwrap() = Some((landed_tx, go_rx));
        let renewing = std::thread::spawn({
            let lease = lease.clone();
            move || lease.tick()
        });
        landed.recv().unwrap();
        // Shutdown releases the lease meanwhile.
        let releasing = std::thread::spawn({
            let lease = lease.clone();
            move || lease.release()
        });
        // Real time: the release must be waiting on the round lock when the renewal returns.
        graven_clock::SystemClock.sleep(Duration::from_millis(200));
        go.send(()).unwrap();
        renewing.join().unwrap();
        releasing.join().unwrap();
        assert_eq!(holder(store.as_ref()), None, "a released lease is free for the next writer at once");
        assert!(!lease.is_mine());
        // And no round after the release takes it again.
        assert!(!lease.tick());
        assert_eq!(holder(store.as_ref()), None);
    }

    /// A renewal that landed but whose reply was lost does not cost the writer its lease: the
    /// next round finds its own record there (its id, not its exact bytes: they hold the
    /// time) and renews on top of it, and no standby sees a stale lease meanwhile.
    #[test]
    fn a_renewal_whose_reply_was_lost_keeps_the_lease() {
        let store = Arc::new(MemStore::new());
        let clock = graven_clock::SimClock::new(1_767_225_600_000_000);
        let ttl = Duration::from_secs(5);
        let lease = Lease::with_node_id(store.clone(), None, ttl, Arc::new(clock.clone()), "a".into());
        let standby = Lease::with_node_id(store.clone(), None, ttl, Arc::new(clock.clone()), "b".into());
        assert!(lease.tick());
        assert!(!standby.tick());
        clock.advance(ttl / 5);
        store.fail_after(0, true);
        assert!(lease.tick(), "the outcome is unknown: the deadline stands");
        store.heal();
        for _ in 0..10 {
            clock.advance(ttl / 5);
            assert!(!standby.tick(), "the lease is renewed: the standby never takes it");
            assert!(lease.tick(), "the writer keeps its lease");
        }
        assert_eq!(holder(store.as_ref()).as_deref(), Some("a"));
    }

    #[test]
    fn no_round_takes_the_lease_after_release() {
        let store = Arc::new(MemStore::new());
        let lease = Lease::new(store.clone(), None, Duration::from_secs(5), graven_clock::system());
        assert!(lease.tick());
        lease.release();
        assert_eq!(holder(store.as_ref()), None);
        assert!(!lease.tick());
        assert_eq!(holder(store.as_ref()), None);
    }
}
