//! RFC 6962 Merkle trees: roots, inclusion and consistency proofs.
//!
//! Proofs are *generated* from an abstract [`HashSource`] (tiles on disk, tiles over HTTP, an
//! in-memory tree) and *verified* by functions that return [`VerifiedInclusion`] or
//! [`VerifiedConsistency`]. Those types have private fields and no public constructor, so
//! holding one is proof that the check ran.
//!
//! Indices are 0-based: the tree of size `n` holds leaves `0..n`.
//!
//! ## Consistency from size 0
//! There is no consistency proof from the empty tree. Every tree is trivially an extension of
//! the empty tree, so a proof would carry no information; and accepting an "empty proof from
//! size 0" is the kind of special case that hides bugs. [`consistency_proof`] refuses
//! `from == 0` and [`verify_consistency`] rejects any proof with `from == 0` (this matches
//! transparency-dev/merkle). A client that remembers nothing, or remembers size 0, accepts the
//! new checkpoint on its signature alone: that is a client rule, not a proof.

use crate::hash::{Hash, LeafIndex, TreeSize, node_hash};

/// The most elements a proof can have for a tree of up to 2^64 leaves.
pub const MAX_PROOF_LEN: usize = 64;

/// A source of stored hashes of *perfect* subtrees.
///
/// `node(height, index)` is the hash of the perfect subtree of `2^height` leaves covering
/// leaves `[index << height, (index + 1) << height)`. Height 0 is a leaf hash. Callers only
/// ask for subtrees that lie entirely inside the tree they are proving against.
pub trait HashSource {
    type Error;
    fn node(&mut self, height: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// Why a proof could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError<E> {
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("cannot prove consistency from size {from} to the smaller size {to}")]
    SizeOrder { from: u64, to: u64 },
    #[error("there is no consistency proof from the empty tree; any tree extends it")]
    FromEmpty,
    #[error("reading stored hashes: {0}")]
    Source(E),
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("proof element {position} is {len} bytes; every element must be exactly 32")]
    ElementLength { position: usize, len: usize },
    #[error("proof has {0} elements, more than any tree of 2^64 leaves needs")]
    TooLong(usize),
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("consistency from size {from} to the smaller size {to} is impossible")]
    SizeOrder { from: u64, to: u64 },
    #[error("consistency proofs from the empty tree are not accepted")]
    FromEmpty,
    #[error("proof has the wrong number of elements for these tree sizes")]
    WrongLength,
    #[error("computed root does not match the expected root")]
    RootMismatch,
}

/// An inclusion proof that verified: `leaf_hash` is at `index` in the tree of `size` with `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedInclusion {
    index: LeafIndex,
    size: TreeSize,
    leaf_hash: Hash,
    root: Hash,
}

impl VerifiedInclusion {
    pub fn index(&self) -> LeafIndex {
        self.index
    }
    pub fn size(&self) -> TreeSize {
        self.size
    }
    pub fn leaf_hash(&self) -> Hash {
        self.leaf_hash
    }
    pub fn root(&self) -> Hash {
        self.root
    }
}

/// A consistency proof that verified: the tree (`to`, `root_to`) extends (`from`, `root_from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedConsistency {
    from: TreeSize,
    to: TreeSize,
    root_from: Hash,
    root_to: Hash,
}

impl VerifiedConsistency {
    pub fn from(&self) -> TreeSize {
        self.from
    }
    pub fn to(&self) -> TreeSize {
        self.to
    }
    pub fn root_from(&self) -> Hash {
        self.root_from
    }
    pub fn root_to(&self) -> Hash {
        self.root_to
    }
}

/// Largest power of two strictly less than `n` (`n >= 2`).
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Root of the (not necessarily perfect) subtree of `size >= 1` leaves starting at `start`.
/// RFC 6962 only ever asks for ranges whose left part is perfect and aligned, which is what
/// lets this recurse on stored perfect subtrees.
pub fn subtree_root<S: HashSource>(src: &mut S, start: u64, size: u64) -> Result<Hash, S::Error> {
    if size.is_power_of_two() && start.is_multiple_of(size) {
        let height = size.trailing_zeros() as u8;
        return src.node(height, start >> height);
    }
    let k = split_point(size);
    let left = subtree_root(src, start, k)?;
    let right = subtree_root(src, start + k, size - k)?;
    Ok(node_hash(&left, &right))
}

/// Root of the tree of `size` leaves.
pub fn root<S: HashSource>(src: &mut S, size: TreeSize) -> Result<Hash, S::Error> {
    if size.0 == 0 {
        return Ok(crate::hash::empty_root());
    }
    subtree_root(src, 0, size.0)
}

/// RFC 6962 §2.1.1 `PATH(m, D[n])`, leaf-side element first.
pub fn inclusion_proof<S: HashSource>(
    src: &mut S,
    index: LeafIndex,
    size: TreeSize,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index.0 >= size.0 {
        return Err(ProofError::IndexOutOfRange { index: index.0, size: size.0 });
    }
    let (mut lo, mut n, mut m) = (0u64, size.0, index.0);
    let mut path = Vec::new();
    while n > 1 {
        let k = split_point(n);
        if m < k {
            path.push(subtree_root(src, lo + k, n - k).map_err(ProofError::Source)?);
            n = k;
        } else {
            path.push(subtree_root(src, lo, k).map_err(ProofError::Source)?);
            lo += k;
            m -= k;
            n -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// Inclusion proofs for many leaves of one tree, the same as [`inclusion_proof`] gives, at the
/// cost of one stored-node lookup per proof element.
///
/// Seen bottom up, leaf `i`'s proof holds, for each height `h` below the root, the sibling
/// `s = (i >> h) ^ 1` of its ancestor, when that sibling's range `[s·2^h, (s+1)·2^h)` starts
/// inside the tree (otherwise the ancestor has no sibling at that height and is promoted). The
/// sibling is a perfect subtree, one stored node, except when the range runs past the tree's
/// size: then it is the root of the tree's incomplete right edge at that height, the same for
/// every leaf, which this computes once per height and remembers.
#[derive(Debug, Clone)]
pub struct Prover {
    size: TreeSize,
    edge: Vec<Option<Hash>>,
}

impl Prover {
    pub fn new(size: TreeSize) -> Self {
        Prover { size, edge: Vec::new() }
    }

    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// RFC 6962 §2.1.1 `PATH(index, D[size])`, leaf-side element first.
    pub fn proof<S: HashSource>(
        &mut self,
        src: &mut S,
        index: LeafIndex,
    ) -> Result<Vec<Hash>, ProofError<S::Error>> {
        let (i, n) = (index.0, self.size.0);
        if i >= n {
            return Err(ProofError::IndexOutOfRange { index: i, size: n });
        }
        // Heights below the root: the bit length of n - 1.
        let heights = 64 - (n - 1).leading_zeros();
        let mut path = Vec::with_capacity(heights as usize);
        for h in 0..heights {
            let s = (i >> h) ^ 1;
            // s <= (n - 1) >> h, so s << h <= n - 1 cannot overflow.
            let lo = s << h;
            if lo >= n {
                continue;
            }
            let width = 1u64 << h;
            if n - lo >= width {
                path.push(src.node(h as u8, s).map_err(ProofError::Source)?);
            } else {
                let slot = h as usize;
                if self.edge.len() <= slot {
                    self.edge.resize(slot + 1, None);
                }
                let root = match self.edge[slot] {
                    Some(r) => r,
                    None => {
                        let r = subtree_root(src, lo, n - lo).map_err(ProofError::Source)?;
                        self.edge[slot] = Some(r);
                        r
                    }
                };
                path.push(root);
            }
        }
        Ok(path)
    }
}

/// RFC 6962 §2.1.2 `PROOF(m, D[n])`, smallest subtree first. Refuses `from == 0`.
pub fn consistency_proof<S: HashSource>(
    src: &mut S,
    from: TreeSize,
    to: TreeSize,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if from.0 > to.0 {
        return Err(ProofError::SizeOrder { from: from.0, to: to.0 });
    }
    if from.0 == 0 {
        return Err(ProofError::FromEmpty);
    }
    let (mut lo, mut n, mut m, mut complete) = (0u64, to.0, from.0, true);
    let mut path = Vec::new();
    loop {
        if m == n {
            if !complete {
                path.push(subtree_root(src, lo, n).map_err(ProofError::Source)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            path.push(subtree_root(src, lo + k, n - k).map_err(ProofError::Source)?);
            n = k;
        } else {
            path.push(subtree_root(src, lo, k).map_err(ProofError::Source)?);
            lo += k;
            m -= k;
            n -= k;
            complete = false;
        }
    }
    path.reverse();
    Ok(path)
}

fn to_hashes<B: AsRef<[u8]>>(proof: &[B]) -> Result<Vec<Hash>, VerifyError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(VerifyError::TooLong(proof.len()));
    }
    proof
        .iter()
        .enumerate()
        .map(|(position, p)| {
            Hash::from_slice(p.as_ref()).map_err(|e| VerifyError::ElementLength { position, len: e.len })
        })
        .collect()
}

/// RFC 9162 §2.1.3.2. Every element of `proof` must be exactly 32 bytes.
pub fn verify_inclusion<B: AsRef<[u8]>>(
    leaf_hash: &Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[B],
    root: &Hash,
) -> Result<VerifiedInclusion, VerifyError> {
    let proof = to_hashes(proof)?;
    if index.0 >= size.0 {
        return Err(VerifyError::IndexOutOfRange { index: index.0, size: size.0 });
    }
    let (mut fnode, mut snode) = (index.0, size.0 - 1);
    let mut r = *leaf_hash;
    for p in &proof {
        if snode == 0 {
            return Err(VerifyError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(VerifyError::WrongLength);
    }
    if r != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(VerifiedInclusion { index, size, leaf_hash: *leaf_hash, root: *root })
}

/// RFC 9162 §2.1.4.2. Refuses `from == 0` (see the module docs). Equal sizes need an empty
/// proof and equal roots.
pub fn verify_consistency<B: AsRef<[u8]>>(
    from: TreeSize,
    to: TreeSize,
    root_from: &Hash,
    root_to: &Hash,
    proof: &[B],
) -> Result<VerifiedConsistency, VerifyError> {
    let proof = to_hashes(proof)?;
    if from.0 > to.0 {
        return Err(VerifyError::SizeOrder { from: from.0, to: to.0 });
    }
    if from.0 == 0 {
        return Err(VerifyError::FromEmpty);
    }
    let ok = || VerifiedConsistency { from, to, root_from: *root_from, root_to: *root_to };
    if from.0 == to.0 {
        if !proof.is_empty() {
            return Err(VerifyError::WrongLength);
        }
        if root_from != root_to {
            return Err(VerifyError::RootMismatch);
        }
        return Ok(ok());
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.0.is_power_of_two() {
        path.push(*root_from);
    }
    path.extend_from_slice(&proof);
    let (mut fnode, mut snode) = (from.0 - 1, to.0 - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let Some((first, rest)) = path.split_first() else {
        return Err(VerifyError::WrongLength);
    };
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(VerifyError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(VerifyError::WrongLength);
    }
    if fr != *root_from || sr != *root_to {
        return Err(VerifyError::RootMismatch);
    }
    Ok(ok())
}

/// The right edge of a growing tree: one perfect-subtree root per set bit of the size.
///
/// Appending a leaf costs one leaf push plus one node hash per carry, so building a tree of
/// `n` leaves costs `n - 1` node hashes in total and `O(log n)` memory. Every perfect subtree
/// completed along the way is reported to the caller, which is how tile writers and tile
/// verifiers see each stored hash exactly once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RightEdge {
    size: u64,
    /// Perfect-subtree roots, largest (leftmost) first.
    stack: Vec<Hash>,
}

impl RightEdge {
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the right edge of an existing tree of `size` leaves from stored hashes.
    pub fn from_source<S: HashSource>(src: &mut S, size: TreeSize) -> Result<Self, S::Error> {
        let mut stack = Vec::new();
        let mut start = 0u64;
        for height in (0..64u8).rev() {
            if size.0 >> height & 1 == 1 {
                stack.push(src.node(height, start >> height)?);
                start += 1u64 << height;
            }
        }
        Ok(RightEdge { size: size.0, stack })
    }

    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// Appends a leaf hash. `completed(height, index, hash)` is called for the leaf itself
    /// (height 0) and for every perfect subtree the append completes, lowest first.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(u8, u64, &Hash)) {
        let n = self.size;
        completed(0, n, &leaf);
        let mut h = leaf;
        let mut height = 0u8;
        while n >> height & 1 == 1 {
            let Some(left) = self.stack.pop() else {
                // Unreachable: the stack holds one hash per set bit of `n`.
                break;
            };
            h = node_hash(&left, &h);
            height += 1;
            completed(height, n >> height, &h);
        }
        self.stack.push(h);
        self.size = n + 1;
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(last) = iter.next() else {
            return crate::hash::empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// A complete in-memory tree, for tests, small tools and as a `HashSource` reference.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// `levels[h][i]` is `node(h, i)`.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut height = 0;
        loop {
            if self.levels.len() <= height {
                self.levels.push(Vec::new());
            }
            let level = &mut self.levels[height];
            level.push(h);
            if level.len() % 2 == 1 {
                break;
            }
            let n = level.len();
            h = node_hash(&level[n - 2], &level[n - 1]);
            height += 1;
        }
    }

    pub fn size(&self) -> TreeSize {
        TreeSize(self.levels.first().map_or(0, |l| l.len() as u64))
    }
}

/// The requested node is not stored (it lies outside the tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no stored hash at height {height}, index {index}")]
pub struct MissingNode {
    pub height: u8,
    pub index: u64,
}

impl HashSource for MemoryTree {
    type Error = MissingNode;
    fn node(&mut self, height: u8, index: u64) -> Result<Hash, MissingNode> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels.get(usize::from(height))?.get(i))
            .copied()
            .ok_or(MissingNode { height, index })
    }
}
