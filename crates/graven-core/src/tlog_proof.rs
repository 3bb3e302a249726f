//! C2SP `tlog-proof@v1`: an offline-verifiable proof that an entry is in a log, as text.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>            (optional)
//! index <decimal>
//! <base64 hash>             (zero or more: the inclusion proof, leaf's sibling first)
//!
//! <the checkpoint note, verbatim, with its cosignatures>
//! ```
//!
//! Parsing is strict (one encoding per proof); [`TlogProof::verify`] checks the checkpoint
//! against a trust policy (log signature and witness quorum) and the inclusion of a leaf hash
//! the caller computed from the entry it holds.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::hash::{Hash, LeafIndex};
use crate::merkle::{self, VerifiedInclusion};
use crate::note::{self, Note};
use crate::policy::{Policy, PolicyCheckError, WitnessedCheckpoint};

/// The first line.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Most inclusion proof lines: a tree of at most 2^64 entries needs at most 64.
pub const MAX_PROOF_LINES: usize = 64;
/// Largest `extra` data, decoded.
pub const MAX_EXTRA: usize = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque and unauthenticated: never trusted implicitly.
    pub extra: Option<Vec<u8>>,
    pub index: LeafIndex,
    pub proof: Vec<Hash>,
    /// The checkpoint note exactly as it appears in the file.
    pub checkpoint: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofError {
    #[error("tlog-proof line {line}: {why}")]
    Format { line: usize, why: &'static str },
    #[error("tlog-proof checkpoint: {0}")]
    Note(#[from] note::NoteError),
    #[error("tlog-proof checkpoint: {0}")]
    Policy(#[from] PolicyCheckError),
    #[error("the inclusion proof does not verify: {0}")]
    Inclusion(#[from] merkle::VerifyError),
}

fn fmt(line: usize, why: &'static str) -> TlogProofError {
    TlogProofError::Format { line, why }
}

fn decimal(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

impl TlogProof {
    /// Strict parse of a `.tlog-proof` file.
    pub fn parse(bytes: &[u8]) -> Result<Self, TlogProofError> {
        let limit = note::MAX_NOTE_SIZE + 2 * MAX_EXTRA + 64 * (MAX_PROOF_LINES + 2);
        if bytes.len() > limit {
            return Err(fmt(0, "the file is larger than any valid proof"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| fmt(0, "the file is not UTF-8"))?;
        // The header block ends at the first empty line; the checkpoint follows verbatim.
        let split = text.find("\n\n").ok_or(fmt(0, "no empty line before the checkpoint"))?;
        let (head, checkpoint) = (&text[..=split], &text[split + 2..]);
        let mut lines = head.split_terminator('\n').enumerate().map(|(i, l)| (i + 1, l)).peekable();
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err(fmt(1, "the first line must be c2sp.org/tlog-proof@v1")),
        }
        let mut extra = None;
        if let Some(&(n, l)) = lines.peek()
            && let Some(b) = l.strip_prefix("extra ")
        {
            let data = B64.decode(b).map_err(|_| fmt(n, "extra is not standard padded base64"))?;
            if data.len() > MAX_EXTRA {
                return Err(fmt(n, "extra data is larger than 64 KiB"));
            }
            if B64.encode(&data) != b {
                return Err(fmt(n, "extra is not canonical base64"));
            }
            extra = Some(data);
            lines.next();
        }
        let (n, l) = lines.next().ok_or(fmt(2, "missing the index line"))?;
        let index = l
            .strip_prefix("index ")
            .and_then(decimal)
            .ok_or(fmt(n, "expected `index <decimal without leading zeroes>`"))?;
        let mut proof = Vec::new();
        for (n, l) in lines {
            if proof.len() == MAX_PROOF_LINES {
                return Err(fmt(n, "more than 64 inclusion proof lines"));
            }
            let h = Hash::from_base64(l).map_err(|_| fmt(n, "a proof line is not the base64 of a 32-byte hash (an empty line must come before the checkpoint)"))?;
            proof.push(h);
        }
        // The checkpoint must at least be a well-formed note; its signatures are checked by verify.
        Note::parse(checkpoint.as_bytes())?;
        Ok(TlogProof { extra, index: LeafIndex(index), proof, checkpoint: checkpoint.as_bytes().to_vec() })
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.checkpoint.len() + 64 * (self.proof.len() + 3));
        out.push_str(HEADER);
        out.push('\n');
        if let Some(e) = &self.extra {
            out.push_str("extra ");
            out.push_str(&B64.encode(e));
            out.push('\n');
        }
        out.push_str(&format!("index {}\n", self.index.0));
        for h in &self.proof {
            out.push_str(&h.to_base64());
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(&self.checkpoint));
        out
    }

    /// Verifies the proof for `leaf_hash` (which the caller computes from the entry it holds):
    /// the checkpoint satisfies `policy`, and the inclusion proof binds the leaf to its root.
    pub fn verify(
        &self,
        leaf_hash: &Hash,
        policy: &Policy,
    ) -> Result<(WitnessedCheckpoint, VerifiedInclusion), TlogProofError> {
        let witnessed = policy.verify(&self.checkpoint)?;
        let cp = witnessed.checkpoint();
        let proof: Vec<[u8; 32]> = self.proof.iter().map(|h| h.0).collect();
        let inclusion = merkle::verify_inclusion(leaf_hash, self.index, cp.size(), &proof, &cp.root())?;
        Ok((witnessed, inclusion))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::cosignature::Cosigner;
    use crate::hash::TreeSize;
    use crate::merkle::MemoryTree;
    use crate::note::SignerKey;
    use crate::policy::ParseOptions;

    fn setup() -> (Policy, TlogProof, Hash) {
        let log = SignerKey::from_seed("example.com/log", [1; 32]).unwrap();
        let wit = Cosigner::from_seed("witness.example", [2; 32]).unwrap();
        let mut tree = MemoryTree::new();
        for i in 0..11u8 {
            tree.push(crate::leaf_hash(&[i]));
        }
        let size = TreeSize(11);
        let body = Checkpoint::new("example.com/log", size, merkle::root(&mut tree, size).unwrap())
            .unwrap()
            .to_text();
        let note = log.sign(&body).unwrap() + &wit.cosign(&body, 1_700_000_000).unwrap();
        let proof = merkle::inclusion_proof(&mut tree, LeafIndex(6), size).unwrap();
        let policy = format!("log {}\nwitness W {}\nquorum W\n", log.verifier(), wit.verifier());
        let policy = Policy::parse(policy.as_bytes(), ParseOptions::default()).unwrap();
        let p = TlogProof {
            extra: Some(b"context".to_vec()),
            index: LeafIndex(6),
            proof,
            checkpoint: note.into_bytes(),
        };
        (policy, p, crate::leaf_hash(&[6]))
    }

    #[test]
    fn a_proof_round_trips_and_verifies() {
        let (policy, p, leaf) = setup();
        let text = p.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra Y29udGV4dA==\nindex 6\n"), "{text}");
        let back = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!(back, p);
        let (w, _) = back.verify(&leaf, &policy).unwrap();
        assert_eq!(w.cosigned()[0].0, "W");
        // Another leaf, index or proof does not verify.
        assert!(back.verify(&crate::leaf_hash(&[7]), &policy).is_err());
        let mut moved = back.clone();
        moved.index = LeafIndex(7);
        assert!(moved.verify(&leaf, &policy).is_err());
        // Without extra, the line is absent.
        let bare = TlogProof { extra: None, ..p };
        assert!(bare.to_text().starts_with("c2sp.org/tlog-proof@v1\nindex 6\n"));
        assert_eq!(TlogProof::parse(bare.to_text().as_bytes()).unwrap(), bare);
    }

    #[test]
    fn malformed_proofs_are_refused_naming_the_line() {
        let (_, p, _) = setup();
        let good = p.to_text();
        let cases: Vec<(String, &str)> = vec![
            (good.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1), "first line"),
            (good.replacen("index 6", "index 06", 1), "index"),
            (good.replacen("index 6", "index -6", 1), "index"),
            (good.replacen("index 6\n", "", 1), "index"),
            (good.replacen("extra Y29udGV4dA==", "extra Y29udGV4dA", 1), "base64"),
            (good.replacen("\n\n", "\n", 1), "empty line"),
            (good.replacen(&p.proof[0].to_base64(), "AAAA", 1), "32-byte"),
            (good.replace("\u{2014} ", "- "), "signature"),
        ];
        for (text, needle) in cases {
            let e = TlogProof::parse(text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }
}
