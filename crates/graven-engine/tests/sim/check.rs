//! The invariants, checked against an oracle built independently of the engine: every version
//! the commit point (`graven/head`) and the public `checkpoint` ever had, read from the
//! [`MemStore`]'s version history, replayed into a [`MemoryTree`].
//!
//! After every step:
//! 1. *The log never forks.* Each version of the head starts where the one before ended (same
//!    size, same root) and its signed checkpoint is the root of everything before plus its
//!    entries. Each version of the public checkpoint is signed, never smaller than the one
//!    before, and is the oracle's root at its size.
//! 2. *No index is acknowledged twice, and an acknowledgement is true*: its entry is, byte for
//!    byte, the event sent (with the `logged_at` it was given), its inclusion proof verifies
//!    against its checkpoint, and that checkpoint is the oracle's root at its size.
//! 3. *A replica never serves a tree that does not extend what it served*: every live node's
//!    committed checkpoint is signed, a prefix of the oracle, and never smaller than the one
//!    it served before (within one run of the process).
//! 4. *A client signature's (key, id) is committed at most once*, across every writer.
//! 5. *At most one node believes it holds the lease* at any moment.
//! 6. *One writer per lease term, and terms do not interleave*: a term begins with each
//!    version of the lease object that names a holder other than the version before it.
//!    Every version of the head was written by a node that had taken the lease by then, in
//!    its latest term; and once the holder of a term has committed, no holder of an earlier
//!    term commits again (a writer that lost its lease is fenced, not merely outvoted).
//! 7. *An event is committed at most once*: no attempt of an event (the same bytes but the
//!    `logged_at`) appears twice in the log, whether or not it was acknowledged.
//!
//! At the end ([`Checker::finish`]): the log in the store verifies (the standard verifier),
//! every acknowledged entry is in it byte for byte, exactly once (with 7), the published checkpoint caught up with the
//! head, an event refused as a replay is in the log, an attempt refused before anything was
//! written (not the writer, overloaded) is not, and after the faults stopped every client was
//! answered again (liveness).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use graven_clock::Moment;
use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::hash::{Hash, LeafIndex, TreeSize};
use graven_core::merkle::{self, MemoryTree};
use graven_core::note::VerifierKey;
use graven_engine::engine::{Engine, Receipt};
use graven_engine::lease::{LEASE_KEY, Lease};
use graven_tlog::MemStore;
use graven_tlog::objlog::{CHECKPOINT_KEY, HEAD_KEY, Head};

use crate::client::Sent;

/// One version of the head: the lease id of the node that wrote it, and how many versions the
/// lease object had when it landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadWrite {
    pub writer: String,
    pub lease_versions: usize,
}

#[derive(Debug)]
pub struct Checker {
    vkey: VerifierKey,
    tree: MemoryTree,
    leaves: Vec<Vec<u8>>,
    heads: usize,
    head_to: u64,
    head_root: Hash,
    checkpoints: usize,
    published: Option<(u64, Hash)>,
    /// Each committed client signature's (key id, id), and where.
    once_at: HashMap<(String, String), u64>,
    /// Each acknowledged index, and the attempt acknowledged there.
    acked: HashMap<u64, (usize, u64, u64)>,
    acks: Vec<(u64, Vec<u8>)>,
    /// What each run of each node served last, and that checkpoint's text.
    served: HashMap<(usize, u64), (u64, Hash, Arc<str>)>,
    refused: HashSet<(usize, u64, u64)>,
    replayed: Vec<(String, String)>,
    verified: HashMap<Vec<u8>, (u64, Hash)>,
    pub believers_max: usize,
    pub writer_changes: u64,
    last_writer: Option<(usize, u64)>,
    /// Every attempt `(client, event, attempt)` in the log, and where.
    attempts: HashMap<(usize, u64, u64), u64>,
    /// The lease object's versions read so far, and the holder of the last one.
    lease_versions: usize,
    lease_holder: Option<String>,
    /// Each lease term: the number of lease versions before it began, and its holder.
    terms: Vec<(usize, String)>,
    /// The head versions checked against the terms so far, and the latest term that committed.
    head_terms: usize,
    last_term: Option<usize>,
}

impl Checker {
    pub fn new(vkey: VerifierKey, _nodes: usize) -> Checker {
        Checker {
            vkey,
            tree: MemoryTree::new(),
            leaves: Vec::new(),
            heads: 0,
            head_to: 0,
            head_root: graven_core::empty_root(),
            checkpoints: 0,
            published: None,
            once_at: HashMap::new(),
            acked: HashMap::new(),
            acks: Vec::new(),
            served: HashMap::new(),
            refused: HashSet::new(),
            replayed: Vec::new(),
            verified: HashMap::new(),
            believers_max: 0,
            writer_changes: 0,
            last_writer: None,
            attempts: HashMap::new(),
            lease_versions: 0,
            lease_holder: None,
            terms: Vec::new(),
            head_terms: 0,
            last_term: None,
        }
    }

    pub fn size(&self) -> u64 {
        self.head_to
    }

    pub fn acks(&self) -> u64 {
        self.acks.len() as u64
    }

    fn root_at(&mut self, size: u64) -> Result<Hash, String> {
        if size > self.head_to {
            return Err(format!("size {size} is beyond the committed log ({})", self.head_to));
        }
        merkle::root(&mut self.tree, TreeSize(size)).map_err(|e| e.to_string())
    }

    /// The size and root of a signed checkpoint (each text is verified once).
    fn open(&mut self, note: &[u8]) -> Result<(u64, Hash), String> {
        if let Some(v) = self.verified.get(note) {
            return Ok(*v);
        }
        let cp = VerifiedCheckpoint::open(note, &self.vkey, self.vkey.name())
            .map_err(|e| format!("a checkpoint does not verify: {e}"))?;
        self.verified.insert(note.to_vec(), (cp.size().0, cp.root()));
        Ok((cp.size().0, cp.root()))
    }

    /// Takes in every new version of the head and of the public checkpoint.
    fn follow_store(&mut self, store: &MemStore) -> Result<(), String> {
        for bytes in store.versions(HEAD_KEY, self.heads) {
            self.heads += 1;
            let head = Head::parse(&bytes).map_err(|e| format!("head version {}: {e}", self.heads))?;
            if head.from.0 != self.head_to || head.from_root != self.head_root {
                return Err(format!(
                    "FORK: head version {} continues a tree of size {} but the log was at size {} (a second writer committed on a stale head)",
                    self.heads, head.from.0, self.head_to
                ));
            }
            let (cp_size, cp_root) = self.open(head.checkpoint.as_bytes())?;
            for e in head.entries {
                let i = self.leaves.len() as u64;
                if let Some((sig, _)) = graven_core::event_sig::signed_message_from_leaf(&e).ok().flatten()
                    && let Some(once) = sig.once
                    && let Some(first) = self.once_at.insert((sig.key_id.clone(), once.id.clone()), i)
                {
                    return Err(format!(
                        "the client signature (key {}, id {}) was committed twice: at {first} and at {i}",
                        sig.key_id, once.id
                    ));
                }
                if let Some(a) = attempt_of(&e)
                    && let Some(first) = self.attempts.insert(a, i)
                {
                    return Err(format!(
                        "c{}e{}a{} was committed twice: at {first} and at {i} (one attempt, sent once, must land at most once)",
                        a.0, a.1, a.2
                    ));
                }
                self.tree.push(graven_core::leaf_hash(&e));
                self.leaves.push(e);
            }
            self.head_to = head.to.0;
            if cp_size != head.to.0 || self.leaves.len() as u64 != head.to.0 {
                return Err(format!(
                    "head version {} says size {cp_size} but holds entries up to {}",
                    self.heads,
                    self.leaves.len()
                ));
            }
            let root = self.root_at(head.to.0)?;
            if cp_root != root {
                return Err(format!(
                    "head version {}: its checkpoint's root is not the root of its entries",
                    self.heads
                ));
            }
            self.head_root = root;
        }
        for bytes in store.versions(CHECKPOINT_KEY, self.checkpoints) {
            self.checkpoints += 1;
            let (size, root) = self.open(&bytes)?;
            if let Some((before, _)) = self.published
                && size < before
            {
                return Err(format!("the public checkpoint went back from size {before} to {size}"));
            }
            if self.root_at(size)? != root {
                return Err(format!(
                    "FORK: the public checkpoint of size {size} is not a prefix of the committed log"
                ));
            }
            self.published = Some((size, root));
        }
        Ok(())
    }

    pub fn after_step(
        &mut self,
        store: &MemStore,
        nodes: &[(usize, u64, Engine, Arc<Lease>)],
        now: Moment,
    ) -> Result<(), String> {
        self.follow_store(store)?;
        for (i, inc, engine, _) in nodes {
            let c = engine.committed();
            if c.checkpoint.is_empty() {
                continue;
            }
            let last = self.served.get(&(*i, *inc)).cloned();
            if last.as_ref().is_none_or(|l| l.2 != c.checkpoint) {
                if self.open(c.checkpoint.as_bytes())? != (c.size, c.root) {
                    return Err(format!("n{i}.{inc} serves a checkpoint that is not the tree it says"));
                }
                if self.root_at(c.size)? != c.root {
                    return Err(format!(
                        "n{i}.{inc} serves a tree of size {} that is not a prefix of the log",
                        c.size
                    ));
                }
                if let Some((size, _, _)) = last
                    && c.size < size
                {
                    return Err(format!("n{i}.{inc} served size {size}, then the smaller {}", c.size));
                }
                self.served.insert((*i, *inc), (c.size, c.root, c.checkpoint.clone()));
            }
        }
        let believers: Vec<(usize, u64)> =
            nodes.iter().filter(|n| n.3.is_mine_at(now)).map(|n| (n.0, n.1)).collect();
        self.believers_max = self.believers_max.max(believers.len());
        if believers.len() > 1 {
            return Err(format!("{} nodes believe they hold the lease: {believers:?}", believers.len()));
        }
        if let Some(&w) = believers.first()
            && self.last_writer != Some(w)
        {
            self.writer_changes += 1;
            self.last_writer = Some(w);
        }
        Ok(())
    }

    /// Invariant 6: `writes` names the writer of each head version so far (in order) and when,
    /// in lease versions, it landed. Terms are read from the lease object's versions.
    pub fn terms(&mut self, store: &MemStore, writes: &[HeadWrite]) -> Result<(), String> {
        for bytes in store.versions(LEASE_KEY, self.lease_versions) {
            let holder = serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| format!("lease version {}: {e}", self.lease_versions + 1))?
                .get("holder")
                .and_then(|h| h.as_str().map(str::to_owned));
            if let Some(h) = &holder
                && self.lease_holder.as_ref() != Some(h)
            {
                self.terms.push((self.lease_versions, h.clone()));
            }
            self.lease_holder = holder;
            self.lease_versions += 1;
        }
        for (k, w) in writes.iter().enumerate().skip(self.head_terms) {
            let term = self
                .terms
                .iter()
                .rposition(|(began, holder)| *began < w.lease_versions && *holder == w.writer)
                .ok_or_else(|| {
                    format!(
                        "head version {} was written by {}, which had never taken the lease",
                        k + 1,
                        w.writer
                    )
                })?;
            if let Some(last) = self.last_term
                && term < last
            {
                return Err(format!(
                    "TERMS: head version {} was written by {} in lease term {} after the holder of the later term {} ({}) had committed",
                    k + 1,
                    w.writer,
                    term + 1,
                    last + 1,
                    self.terms[last].1
                ));
            }
            self.last_term = Some(term);
            self.head_terms = k + 1;
        }
        Ok(())
    }

    /// An acknowledgement of `sent`, checked now.
    pub fn ack(&mut self, store: &MemStore, client: usize, sent: &Sent, r: &Receipt) -> Result<(), String> {
        self.follow_store(store)?;
        let what = format!("the acknowledgement of {} at {}", sent.label(), r.index);
        if let Some(other) = self.acked.insert(r.index, (client, sent.event, sent.attempt)) {
            return Err(format!(
                "index {} acknowledged twice: to c{}e{}a{} and to {}",
                r.index,
                other.0,
                other.1,
                other.2,
                sent.label()
            ));
        }
        if r.index >= self.head_to {
            return Err(format!("{what}: beyond the committed log (size {})", self.head_to));
        }
        let logged_at = r.logged_at.as_deref().ok_or(format!("{what}: no logged_at"))?;
        let leaf = sent.leaf(logged_at);
        if self.leaves[r.index as usize] != leaf {
            return Err(format!("{what}: the log holds other bytes there"));
        }
        if graven_core::leaf_hash(&leaf) != r.leaf_hash {
            return Err(format!("{what}: wrong leaf hash"));
        }
        let (size, root) = self.open(r.checkpoint.as_bytes())?;
        if size != r.tree_size || self.root_at(r.tree_size)? != root {
            return Err(format!("{what}: its checkpoint is not a prefix of the log"));
        }
        let proof: Vec<[u8; 32]> = r.inclusion_proof.iter().map(|h| h.0).collect();
        merkle::verify_inclusion(&r.leaf_hash, LeafIndex(r.index), TreeSize(size), &proof, &root)
            .map_err(|e| format!("{what}: the inclusion proof fails: {e}"))?;
        self.acks.push((r.index, leaf));
        Ok(())
    }

    /// `sent` was refused as a replay: the log must hold its (key, id) by the end.
    pub fn replayed(&mut self, sent: &Sent) -> Result<(), String> {
        let Some((once, _)) = &sent.signed else {
            return Err(format!("{} is not signed but was refused as a replay", sent.label()));
        };
        self.replayed.push(once.clone());
        Ok(())
    }

    /// `sent` was refused before anything was written: this attempt must never be in the log.
    pub fn refused(&mut self, client: usize, sent: &Sent) {
        if sent.signed.is_none() {
            self.refused.insert((client, sent.event, sent.attempt));
        }
    }

    /// The end of a run: `settle` is the moment by which every client must have been answered
    /// again (two ttl before the end, at least four after the faults stopped).
    pub fn finish(
        &mut self,
        store: &Arc<MemStore>,
        settle: Moment,
        clients: &[(usize, Option<Moment>)],
    ) -> Result<(), String> {
        self.follow_store(store)?;
        // Liveness: after the faults stopped, the log caught up and every client was answered.
        let (size, root) = self.published.ok_or("nothing was ever published")?;
        if (size, root) != (self.head_to, self.head_root) {
            return Err(format!(
                "LIVENESS: the head is at size {} but the public checkpoint stayed at {size} after the faults stopped",
                self.head_to
            ));
        }
        for (c, last) in clients {
            if last.is_none_or(|t| t < settle) {
                return Err(format!(
                    "LIVENESS: client c{c} had no acknowledgement after {:?} (two ttl before the end, four after the faults stopped); its last at {:?}",
                    settle.since_origin(),
                    last.map(Moment::since_origin)
                ));
            }
        }
        // The log in the store, with the standard verifier.
        let mut fetch = graven_tlog::StoreFetch::new(store.clone());
        let report = graven_verify::verify_log(&mut fetch, &self.vkey, None, |_, _| {})
            .map_err(|e| format!("the final log does not verify: {e}"))?;
        if report.size.0 != size {
            return Err(format!("the verifier read size {}, the checkpoint says {size}", report.size));
        }
        // Every acknowledged entry, read back from the store.
        let reader = graven_engine::reader::LogReader::objects(store.clone());
        for (index, leaf) in &self.acks {
            let stored = reader.entry(*index, TreeSize(size)).map_err(|e| format!("reading {index}: {e}"))?;
            if &stored != leaf {
                return Err(format!("the acknowledged entry {index} is not in the final log byte for byte"));
            }
        }
        for once in &self.replayed {
            if !self.once_at.contains_key(once) {
                return Err(format!(
                    "(key {}, id {}) was refused as a replay but is not in the log",
                    once.0, once.1
                ));
            }
        }
        for (i, leaf) in self.leaves.iter().enumerate() {
            if let Some(a) = attempt_of(leaf)
                && self.refused.contains(&a)
            {
                return Err(format!(
                    "entry {i} is c{}e{}a{}, an attempt that was refused as not written",
                    a.0, a.1, a.2
                ));
            }
        }
        Ok(())
    }
}

/// The `(client, event, attempt)` an entry's `sim` member names.
fn attempt_of(leaf: &[u8]) -> Option<(usize, u64, u64)> {
    let graven_core::jcs::Value::Object(m) = graven_core::jcs::parse(leaf).ok()? else { return None };
    let graven_core::jcs::Value::Object(sim) = &m.iter().find(|(k, _)| k == "sim")?.1 else { return None };
    let num = |k: &str| match &sim.iter().find(|(n, _)| n == k)?.1 {
        graven_core::jcs::Value::Number(n) => n.to_string().parse::<u64>().ok(),
        _ => None,
    };
    Some((num("c")? as usize, num("e")?, num("a")?))
}
