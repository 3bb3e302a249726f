//! A real log for the witness's tests, built with graven-core: an Ed25519 signer key, an
//! in-memory RFC 6962 tree, signed checkpoints at any size and consistency proofs between sizes.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use graven_core::checkpoint::Checkpoint;
use graven_core::cosignature::Cosigner;
use graven_core::hash::{Hash, TreeSize, leaf_hash};
use graven_core::merkle::{self, MemoryTree};
use graven_core::note::{SignerKey, VerifierKey};
use graven_witness::logs::TrustedLogs;
use graven_witness::machine::Machine;

#[derive(Clone)]
pub struct Log {
    pub key: SignerKey,
    pub leaves: Vec<Vec<u8>>,
    pub tree: MemoryTree,
}

impl Log {
    /// A log named `origin` whose key comes from `seed`, with `size` entries.
    pub fn new(origin: &str, seed: u8, size: u64) -> Self {
        let mut log = Log {
            key: SignerKey::from_seed(origin, [seed; 32]).unwrap(),
            leaves: vec![],
            tree: MemoryTree::new(),
        };
        log.grow_to(size, "honest");
        log
    }

    pub fn origin(&self) -> &str {
        self.key.name()
    }

    pub fn vkey(&self) -> VerifierKey {
        self.key.verifier()
    }

    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// Appends entries named after `history` until the log has `size` entries.
    pub fn grow_to(&mut self, size: u64, history: &str) {
        while (self.leaves.len() as u64) < size {
            let entry = format!("{history} entry {}", self.leaves.len()).into_bytes();
            self.tree.push(leaf_hash(&entry));
            self.leaves.push(entry);
        }
    }

    /// The same log (same key) sharing only its first `at` entries with this one, then
    /// growing another history up to `size`: a validly signed fork.
    pub fn fork(&self, at: u64, size: u64) -> Log {
        let mut f = Log { key: self.key.clone(), leaves: vec![], tree: MemoryTree::new() };
        for e in &self.leaves[..at as usize] {
            f.tree.push(leaf_hash(e));
            f.leaves.push(e.clone());
        }
        f.grow_to(size, "fork");
        f
    }

    pub fn root(&self, size: u64) -> Hash {
        merkle::root(&mut self.tree.clone(), TreeSize(size)).unwrap()
    }

    pub fn text(&self, size: u64) -> String {
        Checkpoint::new(self.origin(), TreeSize(size), self.root(size)).unwrap().to_text()
    }

    /// The signed checkpoint note at `size`.
    pub fn checkpoint(&self, size: u64) -> Vec<u8> {
        self.key.sign(&self.text(size)).unwrap().into_bytes()
    }

    /// RFC 6962 consistency proof; empty from 0 and between equal sizes.
    pub fn proof(&self, from: u64, to: u64) -> Vec<Hash> {
        if from == 0 || from == to {
            return vec![];
        }
        merkle::consistency_proof(&mut self.tree.clone(), TreeSize(from), TreeSize(to)).unwrap()
    }

    /// An honest `add-checkpoint` body from `old` to `size`.
    pub fn body(&self, old: u64, size: u64) -> Vec<u8> {
        body(old, &self.proof(old, size), &self.checkpoint(size))
    }
}

/// An `add-checkpoint` body from its parts.
pub fn body(old: u64, proof: &[Hash], checkpoint: &[u8]) -> Vec<u8> {
    let mut b = format!("old {old}\n").into_bytes();
    for h in proof {
        b.extend_from_slice(h.to_base64().as_bytes());
        b.push(b'\n');
    }
    b.push(b'\n');
    b.extend_from_slice(checkpoint);
    b
}

pub fn cosigner() -> Cosigner {
    Cosigner::from_seed("witness.example/w1", [42; 32]).unwrap()
}

pub fn trusted(logs: &[&Log]) -> TrustedLogs {
    let mut t = TrustedLogs::new();
    for l in logs {
        t.add(l.origin(), l.vkey()).unwrap();
    }
    t
}

pub fn machine(logs: &[&Log]) -> Machine {
    Machine::new(cosigner(), trusted(logs))
}

/// Whether two checkpoints (size, root) of `log`'s origin can both be honest: equal roots at
/// equal sizes, or the smaller one's root is `honest`'s root at that size and so is the larger
/// one's (both lie on the one honest history).
pub fn consistent(honest: &Log, a: (u64, Hash), b: (u64, Hash)) -> bool {
    let ((s1, r1), (s2, r2)) = if a.0 <= b.0 { (a, b) } else { (b, a) };
    if s1 == s2 {
        return r1 == r2;
    }
    if s1 == 0 {
        return true;
    }
    // A consistency proof from the honest log, checked against the two roots.
    if s2 > honest.size() {
        return false;
    }
    let proof = honest.proof(s1, s2);
    let proof: Vec<&[u8; 32]> = proof.iter().map(|h| h.as_bytes()).collect();
    merkle::verify_consistency(TreeSize(s1), TreeSize(s2), &r1, &r2, &proof).is_ok()
}
