//! Range proofs: that a contiguous run of leaves `[first, first + n)` is in the tree of `size`,
//! with one proof for the whole run (docs/receipts.md, "Range receipts").
//!
//! The tree is the RFC 6962 one: a node over `[lo, lo + len)` with `len >= 2` splits at the
//! largest power of two `k < len` into `[lo, lo + k)` and `[lo + k, lo + len)`. Walk it from
//! the root, left before right: a node whose leaves all lie outside the run is one proof
//! element (its hash); a node with a leaf in the run is split further, down to the run's
//! leaves, whose hashes the verifier has. The proof is those outside nodes' hashes in the
//! order the walk meets them. At most two per level (the run's left and right edges), so at
//! most 2 x 64 for any tree; the verifier does the same walk, taking the run's leaf hashes and
//! the proof's elements in order, and must use every one of both.
//!
//! A run of one leaf gives a proof of the same hashes as its RFC 6962 inclusion proof, in the
//! walk's order (left to right), not the inclusion proof's (leaf side first).

use crate::hash::{Hash, TreeSize, node_hash};
use crate::merkle::{HashSource, ProofError, VerifyError, split_point, subtree_root};

/// The most elements a range proof can have, for a tree of up to 2^64 leaves.
pub const MAX_RANGE_PROOF_LEN: usize = 128;

/// The proof that leaves `[first, first + count)` are in the tree of `size`.
pub fn range_proof<S: HashSource>(
    src: &mut S,
    first: u64,
    count: u64,
    size: TreeSize,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    let end = first
        .checked_add(count)
        .filter(|e| count > 0 && *e <= size.0)
        .ok_or(ProofError::IndexOutOfRange { index: first.saturating_add(count.max(1)) - 1, size: size.0 })?;
    let mut out = Vec::new();
    prove(src, 0, size.0, first, end, &mut out).map_err(ProofError::Source)?;
    Ok(out)
}

fn prove<S: HashSource>(
    src: &mut S,
    lo: u64,
    len: u64,
    first: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let hi = lo + len;
    if hi <= first || lo >= end {
        out.push(subtree_root(src, lo, len)?);
        return Ok(());
    }
    if len == 1 {
        return Ok(());
    }
    let k = split_point(len);
    prove(src, lo, k, first, end, out)?;
    prove(src, lo + k, len - k, first, end, out)
}

/// A range proof that verified: `leaf_hashes` are leaves `[first, first + n)` of the tree of
/// `size` with `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRange {
    first: u64,
    count: u64,
    size: TreeSize,
    root: Hash,
}

impl VerifiedRange {
    pub fn first(&self) -> u64 {
        self.first
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn size(&self) -> TreeSize {
        self.size
    }
    pub fn root(&self) -> Hash {
        self.root
    }
}

/// Checks that `leaf_hashes` are leaves `[first, first + leaf_hashes.len())` of the tree of
/// `size` whose root is `root`, with `proof` from [`range_proof`].
pub fn verify_range(
    first: u64,
    leaf_hashes: &[Hash],
    size: TreeSize,
    proof: &[Hash],
    root: &Hash,
) -> Result<VerifiedRange, VerifyError> {
    let count = leaf_hashes.len() as u64;
    let end = first.checked_add(count).filter(|e| count > 0 && *e <= size.0);
    let Some(end) = end else {
        return Err(VerifyError::IndexOutOfRange {
            index: first.saturating_add(count.max(1)) - 1,
            size: size.0,
        });
    };
    if proof.len() > MAX_RANGE_PROOF_LEN {
        return Err(VerifyError::TooLong(proof.len()));
    }
    let mut leaves = leaf_hashes.iter();
    let mut elements = proof.iter();
    let computed = walk(0, size.0, first, end, &mut leaves, &mut elements).ok_or(VerifyError::WrongLength)?;
    if leaves.next().is_some() || elements.next().is_some() {
        return Err(VerifyError::WrongLength);
    }
    if computed != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(VerifiedRange { first, count, size, root: *root })
}

/// The hash of the node over `[lo, lo + len)`, from the run's leaves and the proof's elements
/// (`None` when either runs out). Depth at most 64: each level halves `len` at least.
fn walk<'a>(
    lo: u64,
    len: u64,
    first: u64,
    end: u64,
    leaves: &mut impl Iterator<Item = &'a Hash>,
    elements: &mut impl Iterator<Item = &'a Hash>,
) -> Option<Hash> {
    let hi = lo + len;
    if hi <= first || lo >= end {
        return elements.next().copied();
    }
    if len == 1 {
        return leaves.next().copied();
    }
    let k = split_point(len);
    let left = walk(lo, k, first, end, leaves, elements)?;
    let right = walk(lo + k, len - k, first, end, leaves, elements)?;
    Some(node_hash(&left, &right))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::merkle::{self, MemoryTree};
    use crate::{LeafIndex, leaf_hash};

    fn tree(n: u64) -> (MemoryTree, Vec<Hash>) {
        let mut t = MemoryTree::new();
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(format!("{i}").as_bytes())).collect();
        for l in &leaves {
            t.push(*l);
        }
        (t, leaves)
    }

    #[test]
    fn every_range_of_every_small_tree_proves_and_nothing_else_does() {
        for n in 1..=33u64 {
            let (mut t, leaves) = tree(n);
            let size = TreeSize(n);
            let root = merkle::root(&mut t, size).unwrap();
            for first in 0..n {
                for count in 1..=n - first {
                    let proof = range_proof(&mut t, first, count, size).unwrap();
                    assert!(proof.len() <= 2 * 64);
                    let run = &leaves[first as usize..(first + count) as usize];
                    let v = verify_range(first, run, size, &proof, &root).unwrap();
                    assert_eq!((v.first(), v.count(), v.root()), (first, count, root));
                    // Shifted, shortened, a leaf altered, an element altered, an element added:
                    // refused.
                    if first + count < n {
                        assert!(verify_range(first + 1, run, size, &proof, &root).is_err());
                    }
                    if count > 1 {
                        assert!(verify_range(first, &run[1..], size, &proof, &root).is_err());
                    }
                    let mut bad = run.to_vec();
                    bad[0] = leaf_hash(b"x");
                    assert!(verify_range(first, &bad, size, &proof, &root).is_err());
                    if let Some(p) = proof.first() {
                        let mut bad = proof.clone();
                        bad[0] = node_hash(p, p);
                        assert!(verify_range(first, run, size, &bad, &root).is_err());
                    }
                    let mut longer = proof.clone();
                    longer.push(root);
                    assert_eq!(verify_range(first, run, size, &longer, &root), Err(VerifyError::WrongLength));
                }
            }
        }
    }

    #[test]
    fn a_run_of_one_has_the_hashes_of_its_inclusion_proof() {
        for n in 1..=40u64 {
            let (mut t, _) = tree(n);
            for i in 0..n {
                let mut incl = merkle::inclusion_proof(&mut t, LeafIndex(i), TreeSize(n)).unwrap();
                let mut range = range_proof(&mut t, i, 1, TreeSize(n)).unwrap();
                incl.sort_by_key(|h| h.0);
                range.sort_by_key(|h| h.0);
                assert_eq!(range, incl);
            }
        }
    }

    #[test]
    fn the_proof_stays_logarithmic_and_bounds_are_checked() {
        let (mut t, leaves) = tree(1000);
        let size = TreeSize(1000);
        let root = merkle::root(&mut t, size).unwrap();
        let proof = range_proof(&mut t, 137, 600, size).unwrap();
        assert!(proof.len() <= 2 * 10, "{}", proof.len());
        assert!(verify_range(137, &leaves[137..737], size, &proof, &root).is_ok());
        assert!(range_proof(&mut t, 990, 11, size).is_err());
        assert!(range_proof(&mut t, 0, 0, size).is_err());
        assert!(verify_range(0, &[], size, &[], &root).is_err());
        assert!(verify_range(u64::MAX, &leaves[..1], size, &[], &root).is_err());
        assert_eq!(
            verify_range(0, &leaves[..1], size, &vec![root; 129], &root),
            Err(VerifyError::TooLong(129))
        );
    }
}
