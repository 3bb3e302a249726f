//! What the rounds gathered: the checkpoints of recent rounds with the cosignature lines that
//! verified, which of them met the quorum, and which one the log publishes. Pure: no I/O, no
//! clock; `rounds` drives it.

use std::collections::VecDeque;
use std::sync::Arc;

use graven_core::policy::Policy;

/// How many recent rounds' checkpoints are kept (a slow witness's answer for a checkpoint
/// still in this window is added to it).
pub const RECENT_ROUNDS: usize = 8;

/// A checkpoint of the log with the witness cosignatures gathered for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedCheckpoint {
    pub size: u64,
    /// The checkpoint note as the log signed it (ends with the log's signature line and `\n`).
    pub checkpoint: Arc<str>,
    /// The verified signature lines (without newline), with the index of the witness (in the
    /// policy) that made each.
    pub lines: Vec<(usize, String)>,
    /// Whether the lines meet the policy's quorum.
    pub witnessed: bool,
}

impl CosignedCheckpoint {
    /// The note with the cosignature lines appended after the log's signature, as served on
    /// `/checkpoint` (C2SP tlog-witness: "it can move the valid signatures to its own view of
    /// the checkpoint").
    pub fn note(&self) -> String {
        let mut s = String::with_capacity(self.checkpoint.len() + self.lines.len() * 120);
        s.push_str(&self.checkpoint);
        for (_, l) in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// The indexes of the witnesses that cosigned.
    pub fn cosigners(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.lines.iter().map(|(i, _)| *i).collect();
        w.dedup();
        w
    }
}

/// The recent rounds.
#[derive(Debug)]
pub struct Board {
    policy: Arc<Policy>,
    recent: VecDeque<CosignedCheckpoint>,
    /// The newest checkpoint that met the quorum.
    witnessed: Option<Arc<CosignedCheckpoint>>,
    /// The newest checkpoint whose round finished or that met the quorum: what `/checkpoint`
    /// serves.
    published: Option<Arc<CosignedCheckpoint>>,
}

impl Board {
    pub fn new(policy: Arc<Policy>) -> Self {
        Board { policy, recent: VecDeque::new(), witnessed: None, published: None }
    }

    /// A round starts on `checkpoint` (of `size`). A size at or below one already on the board
    /// keeps what that entry gathered.
    pub fn begin(&mut self, size: u64, checkpoint: Arc<str>) {
        if self.recent.iter().any(|c| c.size == size && c.checkpoint == checkpoint) {
            return;
        }
        self.recent.retain(|c| c.size != size);
        let witnessed = self.policy.quorum_met(&vec![false; self.policy.witnesses().len()]);
        self.recent.push_back(CosignedCheckpoint { size, checkpoint, lines: Vec::new(), witnessed });
        self.recent.make_contiguous().sort_by_key(|c| c.size);
        while self.recent.len() > RECENT_ROUNDS {
            self.recent.pop_front();
        }
    }

    /// Witness `witness` cosigned the checkpoint of `size` with `lines` (already verified by
    /// the caller against that witness's key over exactly that checkpoint). Returns whether
    /// this made the checkpoint witnessed.
    pub fn add(&mut self, size: u64, checkpoint: &str, witness: usize, lines: Vec<String>) -> bool {
        let Some(entry) = self.recent.iter_mut().find(|c| c.size == size && &*c.checkpoint == checkpoint)
        else {
            return false;
        };
        entry.lines.retain(|(w, _)| *w != witness);
        entry.lines.extend(lines.into_iter().map(|l| (witness, l)));
        entry.lines.sort_by_key(|(w, _)| *w);
        let mut flags = vec![false; self.policy.witnesses().len()];
        for (w, _) in &entry.lines {
            if let Some(f) = flags.get_mut(*w) {
                *f = true;
            }
        }
        let was = entry.witnessed;
        entry.witnessed = self.policy.quorum_met(&flags);
        let snapshot = Arc::new(entry.clone());
        let snapshot_witnessed = snapshot.witnessed;
        if snapshot.witnessed && self.witnessed.as_ref().is_none_or(|w| w.size <= size) {
            self.witnessed = Some(snapshot.clone());
        }
        // The published checkpoint gains the lines that arrive for it, and moves up to a
        // newer checkpoint as soon as that one is witnessed.
        if self.published.as_ref().is_some_and(|p| p.size == size)
            || (snapshot.witnessed && self.newer_than_published(size))
        {
            self.published = Some(snapshot);
        }
        !was && snapshot_witnessed
    }

    /// The round on the checkpoint of `size` is over (every witness answered, failed or ran
    /// out of time): it is published, with what it gathered, unless a newer one already is.
    pub fn end(&mut self, size: u64) {
        if !self.newer_than_published(size) && self.published.as_ref().is_none_or(|p| p.size != size) {
            return;
        }
        if let Some(entry) = self.recent.iter().find(|c| c.size == size) {
            self.published = Some(Arc::new(entry.clone()));
        }
    }

    fn newer_than_published(&self, size: u64) -> bool {
        self.published.as_ref().is_none_or(|p| p.size < size)
    }

    pub fn witnessed(&self) -> Option<Arc<CosignedCheckpoint>> {
        self.witnessed.clone()
    }

    pub fn published(&self) -> Option<Arc<CosignedCheckpoint>> {
        self.published.clone()
    }

    /// The entry for `size`, if it is still on the board.
    pub fn get(&self, size: u64) -> Option<&CosignedCheckpoint> {
        self.recent.iter().find(|c| c.size == size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graven_core::policy::ParseOptions;

    fn policy(quorum: &str) -> Arc<Policy> {
        let log = graven_core::note::SignerKey::from_seed("example.com/log", [9; 32]).unwrap();
        let mut s = format!("log {}\n", log.verifier());
        for n in 1..=3u8 {
            let w = graven_core::cosignature::Cosigner::from_seed(&format!("w{n}.example"), [n; 32]).unwrap();
            s.push_str(&format!("witness w{n} {}\n", w.verifier()));
        }
        s.push_str(&format!("group g2 2 w1 w2 w3\nquorum {quorum}\n"));
        Arc::new(Policy::parse(s.as_bytes(), ParseOptions::default()).unwrap())
    }

    #[test]
    fn a_checkpoint_is_witnessed_at_the_quorum_and_published_then_or_at_the_rounds_end() {
        let mut b = Board::new(policy("g2"));
        b.begin(5, "cp5\n".into());
        assert!(b.published().is_none());
        assert!(!b.add(5, "cp5\n", 0, vec!["— w1 A".into()]));
        assert!(b.witnessed().is_none() && b.published().is_none());
        assert!(b.add(5, "cp5\n", 2, vec!["— w3 C".into()]));
        let w = b.witnessed().unwrap();
        assert_eq!((w.size, w.cosigners()), (5, vec![0, 2]));
        assert_eq!(w.note(), "cp5\n— w1 A\n— w3 C\n");
        assert_eq!(b.published().unwrap().size, 5);
        // A late line for the published checkpoint joins it; a line for another note does not.
        assert!(!b.add(5, "cp5\n", 1, vec!["— w2 B".into()]));
        assert!(!b.add(5, "other\n", 1, vec!["— w2 X".into()]));
        assert_eq!(b.published().unwrap().cosigners(), vec![0, 1, 2]);
        // A round that ends without the quorum is published, unwitnessed; the witnessed one stays.
        b.begin(9, "cp9\n".into());
        b.add(9, "cp9\n", 1, vec!["— w2 B9".into()]);
        assert_eq!(b.published().unwrap().size, 5);
        b.end(9);
        let p = b.published().unwrap();
        assert_eq!((p.size, p.witnessed), (9, false));
        assert_eq!(b.witnessed().unwrap().size, 5);
        // An older round ending never moves the published checkpoint back.
        b.end(5);
        assert_eq!(b.published().unwrap().size, 9);
    }

    #[test]
    fn the_board_keeps_a_bounded_number_of_rounds_and_a_policy_without_quorum_needs_none() {
        let mut b = Board::new(policy("none"));
        for s in 0..(RECENT_ROUNDS as u64 + 5) {
            b.begin(s, format!("cp{s}\n").into());
        }
        assert!(b.get(0).is_none());
        assert!(b.get(RECENT_ROUNDS as u64 + 4).unwrap().witnessed);
    }
}
