//! Proofs against a naive recursive RFC 6962 implementation, for every tree size up to 1,024.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use graven_core::merkle::{self, MemoryTree, RightEdge};
use graven_core::{Hash, LeafIndex, TreeSize, empty_root, leaf_hash, node_hash};
use proptest::prelude::*;

/// RFC 6962 §2.1 `MTH(D[n])`, literally.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = largest_pow2_below(n);
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

fn largest_pow2_below(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 §2.1.1 `PATH(m, D[n])`, literally.
fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = largest_pow2_below(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// RFC 6962 §2.1.2 `SUBPROOF(m, D[n], b)`, literally.
fn subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(leaves)] };
    }
    let k = largest_pow2_below(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], b);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(mth(&leaves[..k]));
        p
    }
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(format!("leaf {i}").as_bytes())).collect()
}

fn raw(p: &[Hash]) -> Vec<[u8; 32]> {
    p.iter().map(|h| h.0).collect()
}

/// Small deterministic generator, so that the exhaustive sweep is reproducible.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn every_size_up_to_1024_matches_the_naive_reference() {
    let all = leaves(1024);
    let mut tree = MemoryTree::new();
    let mut edge = RightEdge::new();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for n in 1..=1024usize {
        tree.push(all[n - 1]);
        edge.push(all[n - 1], |_, _, _| {});
        let size = TreeSize(n as u64);
        let prefix = &all[..n];
        let root = mth(prefix);
        assert_eq!(merkle::root(&mut tree, size).unwrap(), root, "root {n}");
        assert_eq!(edge.root(), root, "streaming root {n}");

        let mut indices = vec![0, n - 1, n / 2];
        indices.extend((0..3).map(|_| rng.below(n)));
        for m in indices {
            let got = merkle::inclusion_proof(&mut tree, LeafIndex(m as u64), size).unwrap();
            assert_eq!(got, path(m, prefix), "inclusion {m} in {n}");
            let mut prover = merkle::Prover::new(size);
            assert_eq!(prover.proof(&mut tree, LeafIndex(m as u64)).unwrap(), got, "prover {m} in {n}");
            merkle::verify_inclusion(&prefix[m], LeafIndex(m as u64), size, &raw(&got), &root).unwrap();
            // The same proof must not verify another leaf or another index.
            if n > 1 {
                let other = (m + 1) % n;
                assert!(
                    merkle::verify_inclusion(&prefix[other], LeafIndex(m as u64), size, &raw(&got), &root)
                        .is_err()
                );
                assert!(
                    merkle::verify_inclusion(&prefix[m], LeafIndex(other as u64), size, &raw(&got), &root)
                        .is_err()
                );
            }
        }

        let mut olds = vec![1, n, n / 2, n.saturating_sub(1)];
        olds.extend((0..2).map(|_| 1 + rng.below(n)));
        for m in olds.into_iter().filter(|&m| m >= 1) {
            let got = merkle::consistency_proof(&mut tree, TreeSize(m as u64), size).unwrap();
            assert_eq!(got, subproof(m, prefix, true), "consistency {m} -> {n}");
            let old_root = mth(&all[..m]);
            merkle::verify_consistency(TreeSize(m as u64), size, &old_root, &root, &raw(&got)).unwrap();
            if m < n {
                // A fork: same old size, different old root.
                let forked = leaf_hash(b"not the old root");
                assert!(
                    merkle::verify_consistency(TreeSize(m as u64), size, &forked, &root, &raw(&got)).is_err()
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any single-bit change to any element, a dropped or an added element, breaks the proof.
    #[test]
    fn mutated_inclusion_proofs_fail(n in 2usize..=1024, seed in any::<u64>(), bit in 0usize..256) {
        let all = leaves(n);
        let m = (seed % n as u64) as usize;
        let root = mth(&all);
        let proof = path(m, &all);
        let mut bytes = raw(&proof);
        prop_assume!(!bytes.is_empty());
        let which = (seed >> 32) as usize % bytes.len();
        bytes[which][bit / 8] ^= 1 << (bit % 8);
        prop_assert!(merkle::verify_inclusion(&all[m], LeafIndex(m as u64), TreeSize(n as u64), &bytes, &root).is_err());
        let mut shorter = raw(&proof);
        shorter.pop();
        prop_assert!(merkle::verify_inclusion(&all[m], LeafIndex(m as u64), TreeSize(n as u64), &shorter, &root).is_err());
        let mut longer = raw(&proof);
        longer.push([0; 32]);
        prop_assert!(merkle::verify_inclusion(&all[m], LeafIndex(m as u64), TreeSize(n as u64), &longer, &root).is_err());
    }

    #[test]
    fn mutated_consistency_proofs_fail(n in 2usize..=1024, seed in any::<u64>(), bit in 0usize..256) {
        let all = leaves(n);
        let m = 1 + (seed % (n as u64 - 1)) as usize; // 1..n-1
        let proof = subproof(m, &all, true);
        let (r1, r2) = (mth(&all[..m]), mth(&all));
        let mut bytes = raw(&proof);
        prop_assert!(merkle::verify_consistency(TreeSize(m as u64), TreeSize(n as u64), &r1, &r2, &bytes).is_ok());
        let which = (seed >> 32) as usize % bytes.len();
        bytes[which][bit / 8] ^= 1 << (bit % 8);
        prop_assert!(merkle::verify_consistency(TreeSize(m as u64), TreeSize(n as u64), &r1, &r2, &bytes).is_err());
    }
}

/// Tiles built from a streaming tree, served through `TileHashes`, give the same roots and
/// proofs as the complete in-memory tree, at and around tile boundaries.
#[test]
fn tile_backed_proofs_match_the_memory_tree() {
    use graven_core::tile::{self, TileId};
    use graven_core::tile_source::TileHashes;

    let n = 70_000u64;
    let mut tree = MemoryTree::new();
    let mut edge = RightEdge::new();
    // Every stored hash by (level, index), as a tile writer would see them.
    let mut stored: Vec<Vec<Hash>> = Vec::new();
    for i in 0..n {
        let leaf = leaf_hash(&i.to_be_bytes());
        tree.push(leaf);
        edge.push(leaf, |height, _idx, h| {
            if height % 8 == 0 {
                let level = usize::from(height / 8);
                if stored.len() <= level {
                    stored.push(Vec::new());
                }
                stored[level].push(*h);
            }
        });
    }
    let fetch = |t: TileId| -> Result<Vec<u8>, String> {
        let level = &stored[usize::from(t.level)];
        let start = (t.index * 256) as usize;
        let hashes = level.get(start..start + usize::from(t.width)).ok_or(format!("no {t}"))?;
        Ok(tile::encode_hash_tile(hashes))
    };
    let mut rng = Rng(7);
    for size in [1u64, 2, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, 69_999, 70_000] {
        let mut src = TileHashes::new(TreeSize(size), fetch);
        assert_eq!(
            merkle::root(&mut src, TreeSize(size)).unwrap(),
            merkle::root(&mut tree, TreeSize(size)).unwrap()
        );
        for _ in 0..20 {
            let m = rng.below(size as usize) as u64;
            assert_eq!(
                merkle::inclusion_proof(&mut src, LeafIndex(m), TreeSize(size)).unwrap(),
                merkle::inclusion_proof(&mut tree, LeafIndex(m), TreeSize(size)).unwrap(),
                "inclusion {m} in {size}"
            );
            let old = 1 + rng.below(size as usize) as u64;
            assert_eq!(
                merkle::consistency_proof(&mut src, TreeSize(old), TreeSize(size)).unwrap(),
                merkle::consistency_proof(&mut tree, TreeSize(old), TreeSize(size)).unwrap(),
                "consistency {old} -> {size}"
            );
        }
        // A node outside the tree is an error, not a wrong hash.
        use graven_core::merkle::HashSource;
        assert!(src.node(0, size).is_err());
    }
}

/// One `Prover` serving every leaf of a tree, in any order, gives exactly the RFC 6962 paths.
#[test]
fn prover_matches_the_rfc_for_every_leaf() {
    let all: Vec<Hash> = (0..300u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let mut tree = MemoryTree::new();
    for n in 1..=all.len() {
        tree.push(all[n - 1]);
        let size = TreeSize(n as u64);
        let mut prover = merkle::Prover::new(size);
        // Newest first, so the right edge is memoised by one leaf and reused by the others.
        for m in (0..n).rev() {
            assert_eq!(
                prover.proof(&mut tree, LeafIndex(m as u64)).unwrap(),
                path(m, &all[..n]),
                "leaf {m} of {n}"
            );
        }
        assert!(prover.proof(&mut tree, LeafIndex(n as u64)).is_err());
    }
}
