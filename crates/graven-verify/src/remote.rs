//! Proofs from a server, checked: what `graven prove --url` and `graven export --server` rely
//! on. Nothing the server says is taken on trust.
//!
//! - The checkpoint must be signed by the verifier key (`fetch_checkpoint`).
//! - An entry's bytes come from the log's tiles (the C2SP tlog-tiles read path), must hash to
//!   the level-0 tile's hash, and must be proven included in the signed tree
//!   ([`LogTiles::entry`]); the server's search answer may choose *which* entries, never what
//!   they hold.
//! - A proof the server computes (`GET /v1/proofs/inclusion`, `/v1/proofs/consistency`) must
//!   be for the leaf and size asked, its leaf hash must be the hash of the entry read from the
//!   tiles, and its root must be the signed one, or be proven consistent with it by the
//!   server's consistency proof ([`prove_inclusion`]).
//!
//! Every result is a verified type: its fields are private and only the check that passed
//! builds it. [`RemoteError::is_evidence`] separates "read it and found it wrong" from "could
//! not read it" and from a question the signed tree cannot answer.

use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::hash::{Hash, LeafIndex, TreeSize, leaf_hash};
use graven_core::jcs::{self, Value};
use graven_core::merkle::{self, HashSource as _, MAX_PROOF_LEN, VerifiedConsistency, VerifiedInclusion};
use graven_core::tile::{self, BundleId, TileDataError, TileId};
use graven_core::tile_source::TileHashes;

use crate::error::VerifyError;
use crate::fetch::Fetch;
use crate::files::{decode_bundle_prefix, fetch_bundle, fetch_entry, fetch_tile, from_tile_source};

/// Largest proof answer read from a server: 64 hashes and a little JSON.
pub const MAX_PROOF_ANSWER: u64 = 64 * 1024;

/// Why a server's proof or entry was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// Reading the log's own files failed, or they were found wrong (see
    /// [`VerifyError::is_outage`]).
    #[error("{0}")]
    Log(#[from] VerifyError),
    /// The size asked for is past the signed checkpoint.
    #[error("size {size} is beyond the checkpoint's tree size {checkpoint_size}")]
    SizeBeyondCheckpoint { size: u64, checkpoint_size: u64 },
    /// The index asked for is not in the tree asked about.
    #[error("index {index} is not in a tree of size {size} (indices are 0-based)")]
    IndexOutOfTree { index: u64, size: u64 },
    /// The server's answer could not be read as a proof: the request failed, nothing is there,
    /// or it is not the expected JSON.
    #[error("{path}: {why}")]
    Answer { path: String, why: String },
    /// The server answered for another leaf or tree size than the one asked.
    #[error("the server answered for another leaf or size: index {index}, tree size {size}")]
    WrongQuestion { index: u64, size: u64 },
    /// The entry read from the tiles is not the leaf the server's proof is for.
    #[error("entry {index} as stored hashes to {stored}, but the server's proof is for leaf hash {claimed}")]
    LeafHashMismatch { index: u64, stored: Hash, claimed: Hash },
    /// The proof leads to another root than the signed checkpoint's, at the same size.
    #[error("the proof is for root {root}, but the signed checkpoint has {signed}")]
    RootMismatch { root: Hash, signed: Hash },
    /// The proof's root at an older size is not consistent with the signed checkpoint.
    #[error("root {root} at size {size} is not consistent with the signed checkpoint: {source}")]
    Inconsistent { root: Hash, size: u64, source: merkle::VerifyError },
    /// The server's inclusion proof does not lead from the leaf to its root.
    #[error("the inclusion proof of entry {index} does not verify: {source}")]
    NotIncluded { index: u64, source: merkle::VerifyError },
    /// The entry served in a bundle does not hash to the served level-0 tile.
    #[error(
        "event {index}: the entry read does not match the tile read; whoever serves the log is serving altered data"
    )]
    EntryNotInTile { index: u64 },
    /// No such proof exists (from the empty tree, or to a smaller tree).
    #[error("{0}")]
    Unprovable(String),
    /// The tiles' proof for an entry does not lead to the signed root.
    #[error("event {index} is not included in the signed checkpoint: the tiles served prove another tree")]
    NotInCheckpoint { index: u64 },
}

impl RemoteError {
    /// Whether the log or the server was read and found wrong: evidence against what was
    /// served. `false` for a log that could not be read (network, server error, a missing
    /// or unreadable answer) and for a question the signed tree cannot answer.
    pub fn is_evidence(&self) -> bool {
        match self {
            RemoteError::Log(e) => !e.is_outage(),
            RemoteError::SizeBeyondCheckpoint { .. }
            | RemoteError::IndexOutOfTree { .. }
            | RemoteError::Answer { .. }
            | RemoteError::Unprovable(_) => false,
            RemoteError::WrongQuestion { .. }
            | RemoteError::LeafHashMismatch { .. }
            | RemoteError::RootMismatch { .. }
            | RemoteError::Inconsistent { .. }
            | RemoteError::NotIncluded { .. }
            | RemoteError::EntryNotInTile { .. }
            | RemoteError::NotInCheckpoint { .. } => true,
        }
    }
}

/// An entry a server proved included in its signed checkpoint, every part of it checked: the
/// entry (read from the tiles) has the proof's leaf hash, the inclusion proof leads to the
/// proof's root, and that root is the checkpoint's, or (for an older size) consistent with it
/// by the server's consistency proof. Only [`prove_inclusion`] makes one.
#[derive(Debug, Clone)]
pub struct ProvenEntry {
    checkpoint: VerifiedCheckpoint,
    entry: Vec<u8>,
    inclusion: VerifiedInclusion,
    proof: Vec<Hash>,
    consistency: Option<(VerifiedConsistency, Vec<Hash>)>,
}

impl ProvenEntry {
    /// The signed checkpoint everything was checked against.
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }
    /// The entry's bytes, as the tiles hold them.
    pub fn entry(&self) -> &[u8] {
        &self.entry
    }
    /// The leaf, the tree size and the root the inclusion proof is for.
    pub fn inclusion(&self) -> &VerifiedInclusion {
        &self.inclusion
    }
    /// The server's inclusion proof.
    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }
    /// For a proof against an older size: the verified consistency from that size to the
    /// checkpoint, and the server's proof of it.
    pub fn consistency(&self) -> Option<(&VerifiedConsistency, &[Hash])> {
        self.consistency.as_ref().map(|(c, p)| (c, p.as_slice()))
    }
}

/// Asks the server behind `f` for the inclusion proof of entry `index` in the tree of `size`
/// (the checkpoint's size if `None`), and checks it end to end against `checkpoint` (see the
/// module docs): the answer is for the leaf and size asked; the entry, read from the tiles,
/// has the proof's leaf hash; the root is the checkpoint's, or consistent with it by the
/// server's consistency proof; the proof leads from the leaf to the root.
pub fn prove_inclusion<F: Fetch>(
    f: &mut F,
    checkpoint: &VerifiedCheckpoint,
    index: u64,
    size: Option<u64>,
) -> Result<ProvenEntry, RemoteError> {
    let current = checkpoint.size();
    let n = TreeSize(size.unwrap_or(current.0));
    if n > current {
        return Err(RemoteError::SizeBeyondCheckpoint { size: n.0, checkpoint_size: current.0 });
    }
    if index >= n.0 {
        return Err(RemoteError::IndexOutOfTree { index, size: n.0 });
    }
    let path = format!("v1/proofs/inclusion?index={index}&tree_size={}", n.0);
    let answer = Answer::get(f, &path)?;
    let proof = answer.hashes("proof")?;
    let (leaf, root) = (answer.hash("leaf_hash")?, answer.hash("root")?);
    let (answered_index, answered_size) = (answer.u64("index")?, answer.u64("tree_size")?);
    if answered_index != index || answered_size != n.0 {
        return Err(RemoteError::WrongQuestion { index: answered_index, size: answered_size });
    }
    let entry = fetch_entry(f, LeafIndex(index), current)?;
    let stored = leaf_hash(&entry);
    if stored != leaf {
        return Err(RemoteError::LeafHashMismatch { index, stored, claimed: leaf });
    }
    // The root the proof leads to must be the signed one, or provably consistent with it.
    let consistency = if n == current {
        if root != checkpoint.root() {
            return Err(RemoteError::RootMismatch { root, signed: checkpoint.root() });
        }
        None
    } else {
        let path = format!("v1/proofs/consistency?from={}&to={}", n.0, current.0);
        let cproof = Answer::get(f, &path)?.hashes("proof")?;
        let verified = merkle::verify_consistency(n, current, &root, &checkpoint.root(), &raw(&cproof))
            .map_err(|source| RemoteError::Inconsistent { root, size: n.0, source })?;
        Some((verified, cproof))
    };
    let inclusion = merkle::verify_inclusion(&leaf, LeafIndex(index), n, &raw(&proof), &root)
        .map_err(|source| RemoteError::NotIncluded { index, source })?;
    Ok(ProvenEntry { checkpoint: checkpoint.clone(), entry, inclusion, proof, consistency })
}

/// An entry read from a log's tiles and proven included in a signed checkpoint. Only
/// [`LogTiles::entry`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEntry {
    entry: Vec<u8>,
    inclusion: VerifiedInclusion,
    proof: Vec<Hash>,
}

impl VerifiedEntry {
    pub fn index(&self) -> u64 {
        self.inclusion.index().0
    }
    /// The entry's bytes.
    pub fn entry(&self) -> &[u8] {
        &self.entry
    }
    pub fn leaf_hash(&self) -> Hash {
        self.inclusion.leaf_hash()
    }
    /// The inclusion proof against the checkpoint, built from the tiles and checked.
    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }
}

type TileFetch = Box<dyn FnMut(TileId) -> Result<Vec<u8>, VerifyError>>;

/// A log's tiles under a verified checkpoint, read through any [`Fetch`] (a server's
/// tlog-tiles path, a directory): entries proven included, and proofs built from the tiles
/// and checked against the checkpoint before they are handed out. Tiles are cached, and the
/// last bundle read is kept, so reading entries in log order fetches each file once.
pub struct LogTiles<F: Fetch> {
    checkpoint: VerifiedCheckpoint,
    bundles: F,
    hashes: TileHashes<TileFetch>,
    bundle: Option<(BundleId, Vec<u8>)>,
}

impl<F: Fetch> std::fmt::Debug for LogTiles<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogTiles").field("location", &self.bundles.location()).finish_non_exhaustive()
    }
}

impl<F: Fetch> LogTiles<F> {
    /// `bundles` reads entry bundles, `tiles` hash tiles (two handles on the same log: a
    /// proof may need tiles while a bundle is in use).
    pub fn new<T: Fetch + 'static>(checkpoint: VerifiedCheckpoint, bundles: F, mut tiles: T) -> Self {
        let size = checkpoint.size();
        let fetch: TileFetch = Box::new(move |t| fetch_tile(&mut tiles, t, size));
        LogTiles { checkpoint, bundles, hashes: TileHashes::new(size, fetch), bundle: None }
    }

    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }

    /// Entry `index` of the checkpoint's tree: read from its bundle, compared with the
    /// level-0 tile's hash, and proven included in the checkpoint by a proof built from the
    /// tiles.
    pub fn entry(&mut self, index: u64) -> Result<VerifiedEntry, RemoteError> {
        let size = self.checkpoint.size();
        let Some(b) = tile::bundle_for_entry(index, size) else {
            return Err(RemoteError::IndexOutOfTree { index, size: size.0 });
        };
        if self.bundle.as_ref().map(|(id, _)| *id) != Some(b) {
            let (bytes, _) = fetch_bundle(&mut self.bundles, b, size)?;
            self.bundle = Some((b, bytes));
        }
        let Some((_, bytes)) = &self.bundle else {
            return Err(RemoteError::IndexOutOfTree { index, size: size.0 });
        };
        let entries = decode_bundle_prefix(bytes, b.width)
            .map_err(|source| VerifyError::Data { path: b.path(), source })?;
        let Some(entry) = entries.get((index - b.first_entry()) as usize).map(|e| e.to_vec()) else {
            let source = TileDataError::Count { found: entries.len(), width: b.width };
            return Err(VerifyError::Data { path: b.path(), source }.into());
        };
        let hash = leaf_hash(&entry);
        let stored = self.hashes.node(0, index).map_err(from_tile_source)?;
        if stored != hash {
            return Err(RemoteError::EntryNotInTile { index });
        }
        let (inclusion, proof) = self.inclusion(index, hash)?;
        Ok(VerifiedEntry { entry, inclusion, proof })
    }

    /// The inclusion proof of the leaf hash `hash` at `index`, built from the tiles and
    /// checked against the checkpoint's root.
    pub fn inclusion(
        &mut self,
        index: u64,
        hash: Hash,
    ) -> Result<(VerifiedInclusion, Vec<Hash>), RemoteError> {
        let size = self.checkpoint.size();
        let proof =
            merkle::inclusion_proof(&mut self.hashes, LeafIndex(index), size).map_err(|e| match e {
                merkle::ProofError::Source(e) => RemoteError::Log(from_tile_source(e)),
                _ => RemoteError::IndexOutOfTree { index, size: size.0 },
            })?;
        let verified =
            merkle::verify_inclusion(&hash, LeafIndex(index), size, &raw(&proof), &self.checkpoint.root())
                .map_err(|_| RemoteError::NotInCheckpoint { index })?;
        Ok((verified, proof))
    }

    /// The consistency proof from the tree of `older` leaves to the checkpoint, built from the
    /// tiles. It is checked by whoever holds the older tree's root (an evidence bundle's
    /// writer checks it against the older checkpoint before writing it).
    pub fn consistency_proof(&mut self, older: TreeSize) -> Result<Vec<Hash>, RemoteError> {
        let size = self.checkpoint.size();
        merkle::consistency_proof(&mut self.hashes, older, size).map_err(|e| match e {
            merkle::ProofError::Source(e) => RemoteError::Log(from_tile_source(e)),
            e => RemoteError::Unprovable(format!("no consistency proof from size {older} to {size}: {e}")),
        })
    }
}

fn raw(hashes: &[Hash]) -> Vec<[u8; 32]> {
    hashes.iter().map(|h| h.0).collect()
}

/// A JSON object the server answered with, read by the core's strict parser.
struct Answer {
    path: String,
    members: Vec<(String, Value)>,
}

impl Answer {
    fn get<F: Fetch>(f: &mut F, path: &str) -> Result<Answer, RemoteError> {
        let bad = |why: String| RemoteError::Answer { path: path.to_owned(), why };
        let bytes = match f.fetch(path, MAX_PROOF_ANSWER) {
            Ok(Some(b)) => b,
            Ok(None) => return Err(bad(format!("not found at {}; is this a graven server?", f.location()))),
            Err(e) => return Err(bad(e.to_string())),
        };
        match jcs::parse(&bytes) {
            Ok(Value::Object(members)) => Ok(Answer { path: path.to_owned(), members }),
            Ok(_) => Err(bad("the answer is not a JSON object".into())),
            Err(e) => Err(bad(format!("the answer is not the expected JSON: {e}"))),
        }
    }

    fn field(&self, name: &str) -> Result<&Value, RemoteError> {
        self.members
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| self.bad(name, "is missing"))
    }

    fn bad(&self, name: &str, why: &str) -> RemoteError {
        RemoteError::Answer { path: self.path.clone(), why: format!("the server's `{name}` {why}") }
    }

    fn u64(&self, name: &str) -> Result<u64, RemoteError> {
        match self.field(name)? {
            // The strict parser keeps only numbers exactly equal to their literal, and integers
            // up to 2^53: exactly representable, so the conversion is exact.
            Value::Number(n) if *n >= 0.0 && n.fract() == 0.0 => Ok(*n as u64),
            _ => Err(self.bad(name, "is not a non-negative integer")),
        }
    }

    fn hash(&self, name: &str) -> Result<Hash, RemoteError> {
        match self.field(name)? {
            Value::String(s) => Hash::from_base64(s).map_err(|_| self.bad(name, "is not a base64 hash")),
            _ => Err(self.bad(name, "is not a string")),
        }
    }

    fn hashes(&self, name: &str) -> Result<Vec<Hash>, RemoteError> {
        let Value::Array(items) = self.field(name)? else { return Err(self.bad(name, "is not a list")) };
        if items.len() > MAX_PROOF_LEN {
            return Err(self.bad(name, "has more elements than any proof needs"));
        }
        items
            .iter()
            .map(|v| match v {
                Value::String(s) => Hash::from_base64(s).ok(),
                _ => None,
            })
            .collect::<Option<Vec<Hash>>>()
            .ok_or_else(|| self.bad(name, "is malformed: every element must be a base64 hash"))
    }
}
