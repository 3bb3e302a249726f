//! Writes evidence bundles (format in `bundle` and `docs/bundle-format.md`).
//!
//! The writer checks every proof against the bundle's checkpoint right before writing it, so
//! it cannot produce a bundle that its own verifier would reject.

use std::collections::BTreeSet;
use std::io::{self, Write};

use graven_core::checkpoint::{OpenError, VerifiedCheckpoint};
use graven_core::hash::{Hash, LeafIndex, leaf_hash};
use graven_core::merkle;
use graven_core::note::VerifierKey;
use sha2::{Digest, Sha256};

use crate::bundle::{self, FileId, MAX_EVENTS, MAX_OLDER};

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleWriteError {
    #[error("writing the bundle: {0}")]
    Io(#[from] io::Error),
    #[error("the checkpoint does not verify with the bundle's verifier key: {0}")]
    Checkpoint(OpenError),
    #[error("event {index}: the inclusion proof does not verify against the bundle's checkpoint: {source}")]
    Inclusion { index: u64, source: merkle::VerifyError },
    #[error("event {index}: {what}")]
    Event { index: u64, what: &'static str },
    #[error("older checkpoint of size {size}: {what}")]
    Older { size: u64, what: &'static str },
    #[error(
        "older checkpoint of size {size}: the consistency proof does not verify against the bundle's checkpoint: {source}"
    )]
    Consistency { size: u64, source: merkle::VerifyError },
    #[error("more than {0} {1} for one bundle; narrow the filters")]
    TooMany(u64, &'static str),
    #[error("time-stamp token of size {size}: {what}")]
    Stamp { size: u64, what: String },
}

/// Streams a bundle into `W`: `verifier-key` and `checkpoint` first, then older checkpoints
/// with their consistency proofs, then each event followed by its proof, and the manifest last.
pub struct BundleWriter<W: Write> {
    tar: tar::Builder<W>,
    checkpoint: VerifiedCheckpoint,
    manifest: String,
    last_event: Option<u64>,
    events: u64,
    older: BTreeSet<u64>,
    /// The older checkpoints' bytes, for the time-stamp tokens that stamp them.
    older_notes: std::collections::BTreeMap<u64, Vec<u8>>,
    stamps: BTreeSet<u64>,
}

impl<W: Write> std::fmt::Debug for BundleWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleWriter").field("events", &self.events).finish_non_exhaustive()
    }
}

impl<W: Write> BundleWriter<W> {
    /// Starts a bundle proving against `checkpoint`, which must verify with `key`.
    pub fn new(w: W, key: &VerifierKey, checkpoint: &VerifiedCheckpoint) -> Result<Self, BundleWriteError> {
        // Re-open with the key that goes into the bundle: the verifier will do the same.
        let checkpoint = VerifiedCheckpoint::open(checkpoint.note_bytes(), key, key.name())
            .map_err(BundleWriteError::Checkpoint)?;
        let mut tar = tar::Builder::new(w);
        tar.mode(tar::HeaderMode::Deterministic);
        let mut b = BundleWriter {
            tar,
            checkpoint,
            manifest: format!("{}\n", bundle::FORMAT),
            last_event: None,
            events: 0,
            older: BTreeSet::new(),
            older_notes: std::collections::BTreeMap::new(),
            stamps: BTreeSet::new(),
        };
        b.file(FileId::VerifierKey, bundle::key_file(key).as_bytes())?;
        let note = b.checkpoint.note_bytes().to_vec();
        b.file(FileId::Checkpoint, &note)?;
        Ok(b)
    }

    /// The checkpoint every proof in this bundle is against.
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }

    /// Adds an older checkpoint of the same log and the consistency proof from it to the
    /// bundle's checkpoint. The same checkpoint twice is added once.
    pub fn add_older(&mut self, older: &VerifiedCheckpoint, proof: &[Hash]) -> Result<(), BundleWriteError> {
        let size = older.size().0;
        let to = self.checkpoint.size();
        if size == 0 {
            return Err(BundleWriteError::Older { size, what: "the empty tree needs no proof" });
        }
        if older.checkpoint().origin() != self.checkpoint.checkpoint().origin() {
            return Err(BundleWriteError::Older { size, what: "it is from another log (origin differs)" });
        }
        if size > to.0 {
            return Err(BundleWriteError::Older { size, what: "it is newer than the bundle's checkpoint" });
        }
        if self.older.contains(&size) {
            return Err(BundleWriteError::Older {
                size,
                what: "another checkpoint of the same size was already added",
            });
        }
        if self.older.len() as u64 >= MAX_OLDER {
            return Err(BundleWriteError::TooMany(MAX_OLDER, "older checkpoints"));
        }
        let root_to = self.checkpoint.root();
        let raw: Vec<&[u8]> = proof.iter().map(|h| &h.0[..]).collect();
        merkle::verify_consistency(older.size(), to, &older.root(), &root_to, &raw)
            .map_err(|source| BundleWriteError::Consistency { size, source })?;
        self.file(FileId::OlderCheckpoint(size), older.note_bytes())?;
        let json = bundle::consistency_json(older.size(), to, &older.root(), &root_to, proof);
        self.file(FileId::ConsistencyProof(size), json.as_bytes())?;
        self.older.insert(size);
        self.older_notes.insert(size, older.note_bytes().to_vec());
        Ok(())
    }

    /// Adds the RFC 3161 time-stamp token of the checkpoint of `size`, which must already be in
    /// the bundle (an older checkpoint of that size, else the bundle's checkpoint). With `tsa`
    /// (the TSA roots) the token is checked against that checkpoint's bytes before it is
    /// written, as the bundle verifier will check it.
    pub fn add_timestamp(
        &mut self,
        size: u64,
        token: &[u8],
        tsa: Option<&graven_tsa::TsaVerifier>,
    ) -> Result<(), BundleWriteError> {
        let bad = |what: String| BundleWriteError::Stamp { size, what };
        if self.stamps.contains(&size) {
            return Err(bad("a token for this size was already added".into()));
        }
        if token.len() > graven_tsa::MAX_TOKEN_BYTES {
            return Err(bad(format!("larger than {} bytes", graven_tsa::MAX_TOKEN_BYTES)));
        }
        let note = match self.older_notes.get(&size) {
            Some(n) => n.clone(),
            None if size == self.checkpoint.size().0 => self.checkpoint.note_bytes().to_vec(),
            None => return Err(bad("the bundle holds no checkpoint of that size".into())),
        };
        if let Some(tsa) = tsa {
            tsa.verify(token, &note, None).map_err(|e| bad(format!("refused: {e}")))?;
        }
        self.file(FileId::Timestamp(size), token)?;
        self.stamps.insert(size);
        Ok(())
    }

    /// Adds one event (its exact leaf bytes) and its inclusion proof. Indices must increase.
    pub fn add_event(&mut self, index: u64, leaf: &[u8], proof: &[Hash]) -> Result<(), BundleWriteError> {
        if self.last_event.is_some_and(|last| index <= last) {
            return Err(BundleWriteError::Event { index, what: "events must be added in increasing order" });
        }
        if self.events >= MAX_EVENTS {
            return Err(BundleWriteError::TooMany(MAX_EVENTS, "events"));
        }
        if leaf.len() > graven_core::tile::MAX_ENTRY_SIZE {
            return Err(BundleWriteError::Event { index, what: "the entry is larger than a leaf can be" });
        }
        let (size, root) = (self.checkpoint.size(), self.checkpoint.root());
        let lh = leaf_hash(leaf);
        let raw: Vec<&[u8]> = proof.iter().map(|h| &h.0[..]).collect();
        merkle::verify_inclusion(&lh, LeafIndex(index), size, &raw, &root)
            .map_err(|source| BundleWriteError::Inclusion { index, source })?;
        self.file(FileId::Event(index), leaf)?;
        let json = bundle::inclusion_json(index, size, &lh, &root, proof);
        self.file(FileId::InclusionProof(index), json.as_bytes())?;
        self.last_event = Some(index);
        self.events += 1;
        Ok(())
    }

    /// Events added so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Writes the manifest and the end-of-archive marker; returns the inner writer.
    pub fn finish(mut self) -> Result<W, BundleWriteError> {
        let manifest = std::mem::take(&mut self.manifest);
        append(&mut self.tar, bundle::MANIFEST, manifest.as_bytes())?;
        Ok(self.tar.into_inner()?)
    }

    fn file(&mut self, id: FileId, bytes: &[u8]) -> Result<(), BundleWriteError> {
        append(&mut self.tar, &id.path(), bytes)?;
        let sha: [u8; 32] = Sha256::digest(bytes).into();
        self.manifest.push_str(&bundle::manifest_line(id, &sha));
        Ok(())
    }
}

/// A plain ustar member with fixed metadata (mode 0644, owner 0, mtime 0), so the same
/// selection from the same log gives the same bytes.
fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    tar.append(&h, bytes)
}
