//! C2SP `tlog-proof@v1` files (`.tlog-proof`): an offline proof that one entry is in a log,
//! carrying its checkpoint and the witnesses' cosignatures.
//!
//! [`verify_tlog_proof`] follows the spec's "Verifying a tlog proof" in its order:
//!
//! 1. the leaf hash: for Graven (and any tlog-tiles log) the RFC 6962 leaf hash of the entry's
//!    exact bytes, which the verifier holds; the file's `extra` line is not needed for it, and
//!    is never trusted (it is unauthenticated; it is only reported);
//! 2. the checkpoint's origin is a log of the policy, and the checkpoint is signed by that
//!    log's key (by the one key given, if one is);
//! 3. the cosignatures of the policy's witnesses verify and meet its quorum;
//! 4. the inclusion proof binds the leaf hash to the signed root.
//!
//! [`make_tlog_proof`] writes one, and checks it as a verifier would before returning it, so it
//! cannot hand out a proof its own verifier refuses.

use graven_core::checkpoint::{Checkpoint, OpenError, VerifiedCheckpoint};
use graven_core::hash::{Hash, LeafIndex, leaf_hash};
use graven_core::merkle::{self, VerifiedInclusion};
use graven_core::note::{Note, VerifierKey};
use graven_core::policy::{Policy, PolicyCheckError};
use graven_core::tlog_proof::{TlogProof, TlogProofError};

use crate::witnessed::{LogPolicy, WitnessedCheckpoint};

/// Why a tlog-proof was refused, or could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofCheckError {
    /// The file is not a well-formed `c2sp.org/tlog-proof@v1` (the message names the line).
    #[error("{0}")]
    Format(TlogProofError),
    /// The checkpoint is not signed by a log of the policy, a witness's cosignature does not
    /// verify, or the quorum is not met.
    #[error("the proof's checkpoint is refused by the witness policy: {0}")]
    Policy(PolicyCheckError),
    /// The checkpoint is accepted by the policy through another log than the one given.
    #[error("the proof's checkpoint is not signed by the given log key {key}: {problem}")]
    OtherLog { key: String, problem: OpenError },
    /// The checkpoint's body is malformed (only when no policy checked it).
    #[error("the proof's checkpoint: {0}")]
    Checkpoint(String),
    /// The event's leaf hash and the proof do not lead to the signed root.
    #[error(
        "the event is not proven to be entry {index}: its leaf hash {leaf_hash} with the proof's {proof_len} hashes does not lead to root {root} of the checkpoint of size {size} ({problem}). The event bytes are not the entry this proof is for, or the proof was altered"
    )]
    NotIncluded {
        index: u64,
        leaf_hash: Hash,
        proof_len: usize,
        size: u64,
        root: Hash,
        problem: merkle::VerifyError,
    },
}

/// An entry proven by a tlog-proof: its checkpoint met the policy, and its leaf hash is
/// included in that checkpoint's tree. Only [`verify_tlog_proof`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenEvent {
    witnessed: WitnessedCheckpoint,
    inclusion: VerifiedInclusion,
    extra: Option<Vec<u8>>,
}

impl ProvenEvent {
    /// The checkpoint and the witnesses that cosigned it.
    pub fn witnessed(&self) -> &WitnessedCheckpoint {
        &self.witnessed
    }
    /// The index, leaf hash, tree size and root proven.
    pub fn inclusion(&self) -> &VerifiedInclusion {
        &self.inclusion
    }
    /// The file's `extra` data: unauthenticated, not used, never to be trusted.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }
}

/// Verifies the tlog-proof `file` for `event` (the entry's exact bytes) under `policy`. With
/// `log`, the checkpoint must be signed by that key (which the policy must list too, or the
/// policy refuses it).
pub fn verify_tlog_proof(
    file: &[u8],
    event: &[u8],
    policy: &Policy,
    log: Option<&VerifierKey>,
) -> Result<ProvenEvent, TlogProofCheckError> {
    let proof = TlogProof::parse(file).map_err(TlogProofCheckError::Format)?;
    // 1. The leaf hash, from the bytes the verifier holds.
    let leaf = leaf_hash(event);
    // 2 and 3. The log's signature and origin, the witnesses' cosignatures, the quorum.
    let witnessed = policy.verify(&proof.checkpoint).map_err(TlogProofCheckError::Policy)?;
    if let Some(key) = log {
        VerifiedCheckpoint::open(&proof.checkpoint, key, key.name())
            .map_err(|problem| TlogProofCheckError::OtherLog { key: key.to_string(), problem })?;
    }
    // 4. The inclusion proof, from the leaf to the signed root.
    let cp = witnessed.checkpoint();
    let inclusion = included(&proof, &leaf, cp.size().0, cp.root())?;
    Ok(ProvenEvent { witnessed, inclusion, extra: proof.extra })
}

fn included(
    proof: &TlogProof,
    leaf: &Hash,
    size: u64,
    root: Hash,
) -> Result<VerifiedInclusion, TlogProofCheckError> {
    let raw: Vec<[u8; 32]> = proof.proof.iter().map(|h| h.0).collect();
    merkle::verify_inclusion(leaf, proof.index, graven_core::TreeSize(size), &raw, &root).map_err(|problem| {
        TlogProofCheckError::NotIncluded {
            index: proof.index.0,
            leaf_hash: *leaf,
            proof_len: proof.proof.len(),
            size,
            root,
            problem,
        }
    })
}

/// The text of a tlog-proof (no `extra` line: Graven's leaf hash needs none) for `event` at
/// `index`, with the inclusion proof `proof` against `checkpoint_note` (the signed note exactly
/// as the log served it, cosignatures included). Before returning, the text is read back and
/// checked as a verifier would: with `policy`, by [`verify_tlog_proof`] under it and its log's
/// key; without, the event's inclusion in the checkpoint's root (the signature is then the
/// receiver's to check).
pub fn make_tlog_proof(
    index: u64,
    proof: &[Hash],
    checkpoint_note: &[u8],
    event: &[u8],
    policy: Option<&LogPolicy>,
) -> Result<String, TlogProofCheckError> {
    let text = TlogProof {
        extra: None,
        index: LeafIndex(index),
        proof: proof.to_vec(),
        checkpoint: checkpoint_note.to_vec(),
    }
    .to_text();
    match policy {
        Some(p) => {
            verify_tlog_proof(text.as_bytes(), event, p.policy(), Some(p.log_key()))?;
        }
        None => {
            let back = TlogProof::parse(text.as_bytes()).map_err(TlogProofCheckError::Format)?;
            let note =
                Note::parse(&back.checkpoint).map_err(|e| TlogProofCheckError::Checkpoint(e.to_string()))?;
            let cp =
                Checkpoint::parse(note.text()).map_err(|e| TlogProofCheckError::Checkpoint(e.to_string()))?;
            included(&back, &leaf_hash(event), cp.size().0, cp.root())?;
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
