//! The witness's rules, pure: C2SP `tlog-witness` §add-checkpoint, applied to a parsed
//! request, the checkpoint the witness last cosigned for that origin, and the time. No I/O, no
//! clock, no lock: `witness::Witness` makes a decision and its update atomic and
//! durable.
//!
//! The checks run in the order the spec states them:
//!
//! | check | status |
//! |---|---|
//! | the body's framing, the note, the checkpoint body ([`Submission::parse`]) | 400 |
//! | the origin is one the witness follows ([`Machine::authenticate`]) | 404 |
//! | a signature by a trusted key, and no trusted key's signature that fails (idem) | 403 |
//! | old size <= checkpoint size ([`Machine::decide`], from here on) | 400 |
//! | old size == size of the latest cosigned checkpoint (0 if none) | 409, body `<size>\n` |
//! | size 0 has the empty tree's root (RFC 6962 §2.1) | 422 |
//! | old size 0: empty proof | 422 |
//! | old size == size: same root as the one cosigned | 422 |
//! | otherwise: the RFC 6962 §2.1.2 consistency proof from the cosigned root verifies | 422 |
//!
//! Then the witness cosigns (C2SP `tlog-cosignature`, Ed25519 `cosignature/v1`, never with a
//! zero timestamp) and the cosigned checkpoint becomes its record for the origin.
//!
//! Architecture invariant: a [`CosignedCheckpoint`] is made only here, by [`Machine::decide`]
//! (which takes only an [`Authenticated`] request) after every check passed, or by [`CosignedCheckpoint::from_stored`], which checks the
//! witness's own cosignature on bytes read back from disk. So the record the witness holds is
//! always one it cosigned, and each record is consistent with the one before it.

use std::collections::BTreeMap;

use graven_core::checkpoint::Checkpoint;
use graven_core::cosignature::{self, Cosigned, Cosigner, CosignerKey, MAX_TIMESTAMP};
use graven_core::hash::{TreeSize, empty_root};
use graven_core::merkle::{self, VerifyError};
use graven_core::note::{self, Note, NoteErrorClass};
use sha2::{Digest, Sha256};

use crate::logs::TrustedLogs;
use crate::request::{Malformed, Submission};

/// A cosignature's time: POSIX seconds, at least 1 (tlog-witness: "the timestamp MUST NOT be
/// zero") and at most 2^63 - 1 (tlog-cosignature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(u64);

impl Timestamp {
    /// `None` for 0 or for more than 2^63 - 1: a clock that says so is broken, and the witness
    /// must not sign its reading.
    pub fn new(posix_seconds: u64) -> Option<Self> {
        (1..=MAX_TIMESTAMP).contains(&posix_seconds).then_some(Timestamp(posix_seconds))
    }
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Lowercase hex SHA-256 of an origin: the name of its record, and the `<origin hash>` of the
/// monitoring path (tlog-witness §Monitor Retrieval Mechanism).
pub fn origin_hash(origin: &str) -> String {
    graven_core::hex::encode(&Sha256::digest(origin.as_bytes()))
}

/// 403: the checkpoint is not signed as the witness requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Forbidden {
    #[error("no signature from a key this witness trusts for the origin")]
    NoTrustedSignature,
    #[error("the signature by trusted key {key:?} does not verify")]
    InvalidSignature { key: String },
}

/// 422: the checkpoint is not consistent with what the witness cosigned, or not a valid tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unprocessable {
    #[error("a checkpoint of size 0 must have the empty tree's root (RFC 6962 §2.1)")]
    EmptyTreeRoot,
    #[error("the old size is 0, so the consistency proof must be empty")]
    ProofFromEmpty,
    #[error("the checkpoint has the size the witness cosigned, but another root hash")]
    SameSizeOtherRoot,
    #[error("the consistency proof from the cosigned checkpoint does not verify: {0}")]
    Inconsistent(VerifyError),
}

/// Why the witness does not cosign: one variant per status the spec gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// 400 Bad Request.
    #[error("malformed request: {0}")]
    Malformed(#[from] Malformed),
    /// 404 Not Found.
    #[error("this witness does not follow the log with origin {0:?}")]
    UnknownOrigin(String),
    /// 403 Forbidden.
    #[error("{0}")]
    Forbidden(Forbidden),
    /// 409 Conflict; the size of the latest checkpoint cosigned for the origin (0 if none).
    #[error("the latest checkpoint this witness cosigned for the log has size {}; send that old size and a consistency proof from it", .0.0)]
    Conflict(TreeSize),
    /// 422 Unprocessable Entity.
    #[error("{0}")]
    Unprocessable(Unprocessable),
}

impl WitnessError {
    /// The HTTP status the spec gives.
    pub fn status(&self) -> u16 {
        match self {
            WitnessError::Malformed(_) => 400,
            WitnessError::Forbidden(_) => 403,
            WitnessError::UnknownOrigin(_) => 404,
            WitnessError::Conflict(_) => 409,
            WitnessError::Unprocessable(_) => 422,
        }
    }
}

/// The latest checkpoint the witness cosigned for one origin: the note it keeps (the checkpoint
/// text, the log's signature lines the witness verified, and its own cosignature line), the
/// parsed body, and the cosignature's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedCheckpoint {
    note: Vec<u8>,
    checkpoint: Checkpoint,
    timestamp: u64,
    /// The line returned to the client (em dash to newline).
    cosignature: String,
}

/// Why stored bytes are not a record this witness made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("not a signed note: {0}")]
    Note(note::NoteError),
    #[error("not a checkpoint: {0}")]
    Checkpoint(graven_core::checkpoint::CheckpointError),
    #[error(
        "it carries no cosignature by this witness's key {0}; was the data directory made with another key?"
    )]
    NotCosigned(String),
    #[error("this witness's cosignature on it does not verify: {0}")]
    BadCosignature(cosignature::CosignatureError),
    #[error("it carries {0} cosignature lines by this witness's key; a record has exactly one")]
    SeveralCosignatures(usize),
    #[error("it does not read back as the record that was to be written")]
    ReadsBackDifferently,
}

impl CosignedCheckpoint {
    /// Reads back a record: a note whose one line by `key` is a valid cosignature. The log's
    /// signature is kept as stored and not checked again (the log's key may have rotated since;
    /// the witness's own cosignature says that it checked it then).
    pub fn from_stored(bytes: &[u8], key: &CosignerKey) -> Result<Self, RecordError> {
        let parsed = Note::parse(bytes).map_err(RecordError::Note)?;
        let checkpoint = Checkpoint::parse(parsed.text()).map_err(RecordError::Checkpoint)?;
        let mine: Vec<_> =
            parsed.signatures().iter().filter(|s| s.name == key.name() && s.key_id == key.id()).collect();
        let [line] = mine.as_slice() else {
            return Err(if mine.is_empty() {
                RecordError::NotCosigned(key.to_string())
            } else {
                RecordError::SeveralCosignatures(mine.len())
            });
        };
        let timestamp = match cosignature::check(&parsed, std::slice::from_ref(key)).as_slice() {
            [Cosigned::Valid(ts)] => *ts,
            [Cosigned::Invalid(e)] => return Err(RecordError::BadCosignature(e.clone())),
            _ => return Err(RecordError::NotCosigned(key.to_string())),
        };
        let cosignature = format!("{}\n", line.line);
        Ok(CosignedCheckpoint { note: bytes.to_vec(), checkpoint, timestamp, cosignature })
    }

    /// The note as the monitoring endpoint serves it and as it is stored.
    pub fn note_bytes(&self) -> &[u8] {
        &self.note
    }
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
    pub fn origin(&self) -> &str {
        self.checkpoint.origin()
    }
    pub fn size(&self) -> TreeSize {
        self.checkpoint.size()
    }
    /// The POSIX time of the witness's cosignature.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }
    /// The witness's cosignature line, with its newline: the `add-checkpoint` response body.
    pub fn cosignature_line(&self) -> &str {
        &self.cosignature
    }
}

/// Per origin, the latest checkpoint cosigned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    held: BTreeMap<String, CosignedCheckpoint>,
}

impl State {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn get(&self, origin: &str) -> Option<&CosignedCheckpoint> {
        self.held.get(origin)
    }
    /// Records `c` as the latest for its origin.
    pub fn insert(&mut self, c: CosignedCheckpoint) {
        self.held.insert(c.origin().to_owned(), c);
    }
    pub fn iter(&self) -> impl Iterator<Item = &CosignedCheckpoint> {
        self.held.values()
    }
}

/// A request whose checkpoint is signed by a key the witness trusts for its origin: made only by
/// [`Machine::authenticate`].
#[derive(Debug, Clone)]
pub struct Authenticated<'s> {
    sub: &'s Submission<'s>,
    /// The signature lines of trusted keys, verified, each once.
    log_lines: Vec<&'s str>,
}

impl<'s> Authenticated<'s> {
    pub fn submission(&self) -> &'s Submission<'s> {
        self.sub
    }
}

/// Who the witness is (its cosigning key) and which logs it follows.
#[derive(Debug, Clone)]
pub struct Machine {
    cosigner: Cosigner,
    logs: TrustedLogs,
}

impl Machine {
    pub fn new(cosigner: Cosigner, logs: TrustedLogs) -> Self {
        Machine { cosigner, logs }
    }

    pub fn verifier(&self) -> CosignerKey {
        self.cosigner.verifier()
    }

    pub fn logs(&self) -> &TrustedLogs {
        &self.logs
    }

    /// The whole transition: `state` and a request body in, the next state and the response
    /// body (the cosignature lines) out. The next state differs from `state` only in the
    /// submitted origin's record.
    pub fn add_checkpoint(
        &self,
        state: &State,
        body: &[u8],
        now: Timestamp,
    ) -> Result<(State, String), WitnessError> {
        let submission = Submission::parse(body)?;
        let auth = self.authenticate(&submission)?;
        let cosigned = self.decide(&auth, state.get(submission.origin()), now)?;
        let lines = cosigned.cosignature_line().to_owned();
        let mut next = state.clone();
        next.insert(cosigned);
        Ok((next, lines))
    }

    /// The checks that need no state: the origin is followed (404) and the checkpoint carries a
    /// valid signature by a key trusted for it, and no trusted key's signature that fails (403).
    /// Only this makes an [`Authenticated`]. The witness runs it before it takes the origin's
    /// lock, so forged requests never hold that lock.
    pub fn authenticate<'s>(&self, sub: &'s Submission<'s>) -> Result<Authenticated<'s>, WitnessError> {
        let origin = sub.origin();
        // "If the checkpoint origin is unknown, the witness MUST respond with a 404."
        let keys = self.logs.keys(origin).ok_or_else(|| WitnessError::UnknownOrigin(origin.to_owned()))?;
        // "The witness MUST verify the checkpoint signature against the public key(s) it trusts
        // for the checkpoint origin, and it MUST ignore signatures from unknown keys." 403 if no
        // trusted signature, or if a trusted key's signature fails to verify. Checked over the
        // bytes received.
        let verified = note::open(sub.request().checkpoint, keys).map_err(|e| match e.class() {
            NoteErrorClass::InvalidSignature => WitnessError::Forbidden(Forbidden::InvalidSignature {
                key: match e {
                    note::NoteError::InvalidSignature { name } => name,
                    _ => origin.to_owned(),
                },
            }),
            NoteErrorClass::Unverified => WitnessError::Forbidden(Forbidden::NoTrustedSignature),
            NoteErrorClass::Malformed => WitnessError::Malformed(Malformed::Note(e)),
        })?;
        // The signature lines of the trusted keys, all verified by `open` (which fails on any
        // trusted line that does not verify), each once, in order. Other lines (other
        // witnesses, unknown keys) were not checked and are not kept.
        let mut log_lines: Vec<&'s str> = Vec::new();
        for s in sub.note().signatures() {
            let trusted = verified.verified_by().iter().any(|k| k.name() == s.name && k.id() == s.key_id);
            if trusted && !log_lines.contains(&s.line) {
                log_lines.push(s.line);
            }
        }
        Ok(Authenticated { sub, log_lines })
    }

    /// Decides an authenticated request against `held`, the latest checkpoint cosigned for its
    /// origin (`None` if never), in the spec's order (see the module docs). On success, the new
    /// record: the caller must make it durable before it returns its cosignature line to anyone.
    ///
    /// The cosignature's time is `now`, or the previous cosignature's time for this origin if
    /// that is later: a cosignature says the tree is the largest seen "as of" its time, so a
    /// clock stepping back must not make a larger tree look older than a smaller one.
    pub fn decide(
        &self,
        auth: &Authenticated<'_>,
        held: Option<&CosignedCheckpoint>,
        now: Timestamp,
    ) -> Result<CosignedCheckpoint, WitnessError> {
        let sub = auth.sub;
        debug_assert!(held.is_none_or(|h| h.origin() == sub.origin()));
        let (old, size, root) = (sub.request().old_size, sub.checkpoint().size(), sub.checkpoint().root());
        // "The old size MUST be equal to or lower than the checkpoint size. Otherwise ... 400."
        if old > size {
            return Err(Malformed::OldAfterSize { old: old.0, size: size.0 }.into());
        }
        // "The witness MUST check that the old size matches the size of the latest checkpoint
        // it cosigned for the checkpoint's origin (or zero if it never cosigned a checkpoint for
        // that origin). If it doesn't match ... 409."
        let held_size = held.map_or(TreeSize(0), CosignedCheckpoint::size);
        if old != held_size {
            return Err(WitnessError::Conflict(held_size));
        }
        let unprocessable = |u| Err(WitnessError::Unprocessable(u));
        // "A checkpoint of size zero MUST have the root hash of the empty tree."
        if size.0 == 0 && root != empty_root() {
            return unprocessable(Unprocessable::EmptyTreeRoot);
        }
        let proof = &sub.request().proof;
        match (old.0, held) {
            // "If the proof is not empty when the old size is zero ... 422."
            (0, _) => {
                if !proof.is_empty() {
                    return unprocessable(Unprocessable::ProofFromEmpty);
                }
            }
            (_, None) => {
                // Cannot happen: a non-zero old size equal to the held size means a record
                // exists. Were it to, refusing is the safe answer.
                return Err(WitnessError::Conflict(held_size));
            }
            (_, Some(held)) => {
                // "If the old size matches the checkpoint size, the witness MUST check that the
                // root hashes are also identical."
                if old == size && held.checkpoint.root() != root {
                    return unprocessable(Unprocessable::SameSizeOtherRoot);
                }
                // RFC 6962 §2.1.2 from the root it cosigned (an equal size needs an empty proof).
                let proof: Vec<&[u8; 32]> = proof.iter().map(|h| h.as_bytes()).collect();
                if let Err(e) = merkle::verify_consistency(old, size, &held.checkpoint.root(), &root, &proof)
                {
                    return unprocessable(Unprocessable::Inconsistent(e));
                }
            }
        }
        let timestamp = held.map_or(now.0, |h| h.timestamp.max(now.0));
        let text = sub.note().text();
        // Cannot fail: both times are within 1..=2^63-1 (a `Timestamp`, and a verified record's).
        // Were it to, refusing is the safe answer.
        let cosignature =
            self.cosigner.cosign(text, timestamp).map_err(|_| WitnessError::Conflict(held_size))?;
        // The record: the text, the log's verified signature lines, then the cosignature.
        let mut stored = String::with_capacity(text.len() + 256);
        stored.push_str(text);
        stored.push('\n');
        for line in &auth.log_lines {
            stored.push_str(line);
            stored.push('\n');
        }
        stored.push_str(&cosignature);
        Ok(CosignedCheckpoint {
            note: stored.into_bytes(),
            checkpoint: sub.checkpoint().clone(),
            timestamp,
            cosignature,
        })
    }
}
