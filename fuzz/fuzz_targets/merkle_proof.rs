//! Merkle inclusion and consistency proof verification (RFC 9162 §2.1.3–2.1.4).
//!
//! Two halves, both driven by the input bytes:
//! 1. Arbitrary proofs: a leaf hash, root(s), index, sizes (small or full 64-bit) and a list of
//!    elements of arbitrary lengths, fed to `verify_inclusion` and `verify_consistency`. They
//!    must never panic, and an accepted proof must be well-formed (every element 32 bytes, at
//!    most `MAX_PROOF_LEN`, index < size, 0 < from <= to, equal sizes need an empty proof and
//!    equal roots).
//! 2. Real proofs: a tree of up to 300 distinct leaves; proofs made by `inclusion_proof` and
//!    `consistency_proof` must verify, `RightEdge` must agree with `root`, and a proof damaged
//!    as the input says (bit flip, dropped, added, swapped or shortened element) must not.
#![no_main]

use graven_core::hash::{Hash, LeafIndex, TreeSize, leaf_hash};
use graven_core::merkle::{self, MAX_PROOF_LEN, MemoryTree, RightEdge, VerifyError};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ =
        if u.arbitrary::<bool>().unwrap_or(false) { arbitrary_proofs(&mut u) } else { real_proofs(&mut u) };
});

fn hash(u: &mut Unstructured<'_>) -> Result<Hash> {
    Ok(Hash(u.arbitrary()?))
}

/// A size or index: usually small (where proofs have a shape), sometimes any `u64`.
fn number(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => u.arbitrary::<u64>()?,
        1 => u64::MAX - u64::from(u.arbitrary::<u8>()?),
        _ => u64::from(u.arbitrary::<u16>()?),
    })
}

fn arbitrary_proofs(u: &mut Unstructured<'_>) -> Result<()> {
    let leaf = hash(u)?;
    let (r1, r2) = (hash(u)?, hash(u)?);
    let (index, size) = (number(u)?, number(u)?);
    let count = u.int_in_range(0..=MAX_PROOF_LEN + 2)?;
    let mut proof: Vec<Vec<u8>> = Vec::with_capacity(count);
    for _ in 0..count {
        if u.is_empty() {
            break;
        }
        let len = if u.ratio(7, 8)? { 32 } else { u.int_in_range(0..=40)? };
        proof.push(u.bytes(len.min(u.len()))?.to_vec());
    }
    let well_formed = proof.len() <= MAX_PROOF_LEN && proof.iter().all(|p| p.len() == 32);

    match merkle::verify_inclusion(&leaf, LeafIndex(index), TreeSize(size), &proof, &r1) {
        Ok(v) => {
            assert!(well_formed && index < size, "accepted a malformed inclusion proof");
            assert_eq!((v.index().0, v.size().0, v.leaf_hash(), v.root()), (index, size, leaf, r1));
        }
        Err(VerifyError::ElementLength { position, len }) => {
            assert_eq!(proof[position].len(), len);
            assert_ne!(len, 32);
        }
        Err(VerifyError::TooLong(n)) => assert!(n == proof.len() && n > MAX_PROOF_LEN),
        Err(VerifyError::IndexOutOfRange { index: i, size: s }) => assert!(i >= s && (i, s) == (index, size)),
        Err(VerifyError::WrongLength | VerifyError::RootMismatch) => assert!(well_formed),
        Err(e) => panic!("verify_inclusion: unexpected {e:?}"),
    }

    let (from, to) = (index, size);
    match merkle::verify_consistency(TreeSize(from), TreeSize(to), &r1, &r2, &proof) {
        Ok(v) => {
            assert!(well_formed && 0 < from && from <= to, "accepted a malformed consistency proof");
            if from == to {
                assert!(proof.is_empty() && r1 == r2);
            }
            assert_eq!((v.from().0, v.to().0, v.root_from(), v.root_to()), (from, to, r1, r2));
        }
        Err(VerifyError::SizeOrder { from: f, to: t }) => assert!(f > t && (f, t) == (from, to)),
        Err(VerifyError::FromEmpty) => assert_eq!(from, 0),
        Err(_) => {}
    }
    // A leaf's own hash is the root of a one-leaf tree with an empty proof.
    let empty: [&[u8]; 0] = [];
    assert!(merkle::verify_inclusion(&leaf, LeafIndex(0), TreeSize(1), &empty, &leaf).is_ok());
    Ok(())
}

#[derive(Debug)]
enum Damage {
    Flip { element: usize, bit: usize },
    Drop(usize),
    Add(Hash),
    Swap(usize, usize),
    Shorten(usize),
}

fn damage(u: &mut Unstructured<'_>, proof: &[Hash]) -> Result<Option<(Damage, Vec<Vec<u8>>)>> {
    let mut bad: Vec<Vec<u8>> = proof.iter().map(|h| h.0.to_vec()).collect();
    let n = bad.len();
    let d = match u.int_in_range(0..=4u8)? {
        0 if n > 0 => Damage::Flip { element: u.choose_index(n)?, bit: u.int_in_range(0..=255)? },
        1 if n > 0 => Damage::Drop(u.choose_index(n)?),
        2 => Damage::Add(hash(u)?),
        3 if n > 1 => Damage::Swap(u.choose_index(n)?, u.choose_index(n)?),
        4 if n > 0 => Damage::Shorten(u.choose_index(n)?),
        _ => return Ok(None),
    };
    match d {
        Damage::Flip { element, bit } => bad[element][bit / 8] ^= 1 << (bit % 8),
        Damage::Drop(i) => {
            bad.remove(i);
        }
        Damage::Add(h) => bad.push(h.0.to_vec()),
        Damage::Swap(i, j) => {
            if bad[i] == bad[j] {
                return Ok(None);
            }
            bad.swap(i, j);
        }
        Damage::Shorten(i) => {
            bad[i].pop();
        }
    }
    Ok(Some((d, bad)))
}

fn real_proofs(u: &mut Unstructured<'_>) -> Result<()> {
    let n: u64 = u.int_in_range(1..=300)?;
    let salt: u8 = u.arbitrary()?;
    let mut tree = MemoryTree::new();
    let mut edge = RightEdge::new();
    for i in 0..n {
        let mut entry = i.to_be_bytes().to_vec();
        entry.push(salt);
        let h = leaf_hash(&entry);
        tree.push(h);
        edge.push(h, |_, _, _| {});
    }
    let size = TreeSize(n);
    let root = merkle::root(&mut tree, size).expect("root of a stored tree");
    assert_eq!(edge.root(), root, "RightEdge and root disagree at size {n}");
    assert_eq!(edge.size(), size);

    // Inclusion.
    let index = u.int_in_range(0..=n - 1)?;
    let proof = merkle::inclusion_proof(&mut tree, LeafIndex(index), size).expect("proof");
    let leaf = tree_leaf(&mut tree, index).expect("leaf hash is stored");
    merkle::verify_inclusion(&leaf, LeafIndex(index), size, &proof_bytes(&proof), &root)
        .unwrap_or_else(|e| panic!("honest inclusion proof ({index}, {n}) rejected: {e}"));
    if let Some((d, bad)) = damage(u, &proof)? {
        assert!(
            merkle::verify_inclusion(&leaf, LeafIndex(index), size, &bad, &root).is_err(),
            "damaged inclusion proof ({index}, {n}) accepted: {d:?}"
        );
    }

    // Consistency.
    let from = u.int_in_range(1..=n)?;
    let root_from = merkle::root(&mut tree, TreeSize(from)).expect("root at from");
    let proof = merkle::consistency_proof(&mut tree, TreeSize(from), size).expect("proof");
    merkle::verify_consistency(TreeSize(from), size, &root_from, &root, &proof_bytes(&proof))
        .unwrap_or_else(|e| panic!("honest consistency proof ({from}, {n}) rejected: {e}"));
    if let Some((d, bad)) = damage(u, &proof)? {
        assert!(
            merkle::verify_consistency(TreeSize(from), size, &root_from, &root, &bad).is_err(),
            "damaged consistency proof ({from}, {n}) accepted: {d:?}"
        );
    }
    Ok(())
}

fn tree_leaf(tree: &mut MemoryTree, index: u64) -> Option<Hash> {
    use graven_core::merkle::HashSource as _;
    tree.node(0, index).ok()
}

fn proof_bytes(proof: &[Hash]) -> Vec<[u8; 32]> {
    proof.iter().map(|h| h.0).collect()
}
