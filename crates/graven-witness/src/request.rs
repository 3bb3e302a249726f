//! The `add-checkpoint` request body, C2SP `tlog-witness` §add-checkpoint:
//!
//! ```text
//! old <size>\n                  decimal, no leading zeroes ("0" for zero)
//! <base64 hash>\n               zero to 63 consistency proof lines
//! \n                            an empty line
//! <checkpoint>                  a signed note (C2SP tlog-checkpoint), to the end of the body
//! ```
//!
//! "Each line MUST terminate in a newline character" and "The client MUST NOT send more than 63
//! consistency proof lines". Parsing is strict, so one request has one encoding:
//! [`AddCheckpoint::to_bytes`] of a parsed body is the body. Pure; fuzzed (`witness_request`).

use graven_core::checkpoint::{Checkpoint, CheckpointError};
use graven_core::hash::{Hash, TreeSize};
use graven_core::note::{Note, NoteError};

/// The spec's limit on consistency proof lines.
pub const MAX_PROOF_LINES: usize = 63;

/// The framing of an `add-checkpoint` body: old size, proof, and the checkpoint's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint<'a> {
    /// The size of the checkpoint the client believes the witness last cosigned.
    pub old_size: TreeSize,
    /// An RFC 6962 §2.1.2 consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The checkpoint note, exactly as received (the rest of the body).
    pub checkpoint: &'a [u8],
}

/// Why a body's framing was refused (all of these are "400 Bad Request").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("the body must start with an old size line, `old <size>` and a newline")]
    NoOldLine,
    #[error(
        "the old size line must be `old ` and a tree size in decimal with no leading zeroes that fits in 64 bits"
    )]
    OldSize,
    #[error("consistency proof line {line} is not the standard padded base64 of a 32-byte hash")]
    ProofLine { line: usize },
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    #[error("the consistency proof must be followed by an empty line, then the checkpoint")]
    NoSeparator,
}

/// Everything that makes a request "400 Bad Request": its framing, the checkpoint note, the
/// checkpoint body, or an old size past the checkpoint's size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    #[error("{0}")]
    Request(#[from] RequestError),
    #[error("the checkpoint is not a valid signed note: {0}")]
    Note(NoteError),
    #[error("the checkpoint is malformed: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("the old size {old} is larger than the checkpoint's size {size}")]
    OldAfterSize { old: u64, size: u64 },
}

fn decimal(s: &[u8]) -> Option<u64> {
    let canonical = !s.is_empty() && s.iter().all(u8::is_ascii_digit) && (s == b"0" || !s.starts_with(b"0"));
    if !canonical {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Splits off one newline-terminated line; `None` if there is no newline.
fn line(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = rest.iter().position(|&b| b == b'\n')?;
    Some((&rest[..end], &rest[end + 1..]))
}

impl<'a> AddCheckpoint<'a> {
    /// Strict parse of the framing. The checkpoint itself is not looked at here.
    pub fn parse(body: &'a [u8]) -> Result<Self, RequestError> {
        let (first, mut rest) = line(body).ok_or(RequestError::NoOldLine)?;
        let size = first.strip_prefix(b"old ").ok_or(RequestError::NoOldLine)?;
        let old_size = TreeSize(decimal(size).ok_or(RequestError::OldSize)?);
        let mut proof = Vec::new();
        loop {
            let (l, after) = line(rest).ok_or(RequestError::NoSeparator)?;
            rest = after;
            if l.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(RequestError::TooManyProofLines);
            }
            let bad = RequestError::ProofLine { line: proof.len() + 1 };
            let text = std::str::from_utf8(l).map_err(|_| bad.clone())?;
            proof.push(Hash::from_base64(text).map_err(|_| bad)?);
        }
        Ok(AddCheckpoint { old_size, proof, checkpoint: rest })
    }

    /// The body this request was parsed from (the one encoding of it).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size.0).into_bytes();
        for h in &self.proof {
            out.extend_from_slice(h.to_base64().as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(self.checkpoint);
        out
    }
}

/// A request whose every part parsed: the framing, the note (signatures not yet checked) and
/// the checkpoint body (origin, size, root). What is left to decide needs the witness's keys
/// and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission<'a> {
    request: AddCheckpoint<'a>,
    note: Note<'a>,
    checkpoint: Checkpoint,
}

impl<'a> Submission<'a> {
    /// Parses a whole body. Every error is a "400 Bad Request" except that an old size larger
    /// than the checkpoint's is left to `machine::Machine::decide`, which the spec has
    /// check it after the signature.
    pub fn parse(body: &'a [u8]) -> Result<Self, Malformed> {
        let request = AddCheckpoint::parse(body)?;
        let note = Note::parse(request.checkpoint).map_err(Malformed::Note)?;
        let checkpoint = Checkpoint::parse(note.text())?;
        Ok(Submission { request, note, checkpoint })
    }

    pub fn request(&self) -> &AddCheckpoint<'a> {
        &self.request
    }
    pub fn note(&self) -> &Note<'a> {
        &self.note
    }
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
    pub fn origin(&self) -> &str {
        self.checkpoint.origin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: u8) -> String {
        Hash([b; 32]).to_base64()
    }

    #[test]
    fn parses_the_spec_s_shape_and_re_encodes_to_itself() {
        let body = format!("old 20852014\n{}\n{}\n\nexample.com/x\n1\n{}\n\n— k AAAA\n", h(1), h(2), h(3));
        let r = AddCheckpoint::parse(body.as_bytes()).unwrap();
        assert_eq!(r.old_size, TreeSize(20852014));
        assert_eq!(r.proof, vec![Hash([1; 32]), Hash([2; 32])]);
        assert!(r.checkpoint.starts_with(b"example.com/x\n"));
        assert_eq!(r.to_bytes(), body.as_bytes());
        let zero = AddCheckpoint::parse(b"old 0\n\nx").unwrap();
        assert_eq!((zero.old_size, zero.proof.len(), zero.checkpoint), (TreeSize(0), 0, &b"x"[..]));
    }

    #[test]
    fn refuses_every_other_framing() {
        let cases: &[(&[u8], RequestError)] = &[
            (b"", RequestError::NoOldLine),
            (b"old 1", RequestError::NoOldLine),
            (b"Old 1\n\n", RequestError::NoOldLine),
            (b"old  1\n\n", RequestError::OldSize),
            (b"old 01\n\n", RequestError::OldSize),
            (b"old -1\n\n", RequestError::OldSize),
            (b"old +1\n\n", RequestError::OldSize),
            (b"old 1 \n\n", RequestError::OldSize),
            (b"old \n\n", RequestError::OldSize),
            (b"old 18446744073709551616\n\n", RequestError::OldSize),
            (b"old 1\r\n\n", RequestError::OldSize),
            (b"old 1\n", RequestError::NoSeparator),
            (b"old 1\nAAAA\n\n", RequestError::ProofLine { line: 1 }),
            (b"old 1\n \n\n", RequestError::ProofLine { line: 1 }),
        ];
        for (body, want) in cases {
            assert_eq!(AddCheckpoint::parse(body).unwrap_err(), *want, "{:?}", String::from_utf8_lossy(body));
        }
        assert!(AddCheckpoint::parse(b"old 18446744073709551615\n\n").is_ok());
    }

    #[test]
    fn at_most_63_proof_lines() {
        let lines = |n: usize| -> Vec<u8> {
            let mut b = b"old 5\n".to_vec();
            for _ in 0..n {
                b.extend_from_slice(h(9).as_bytes());
                b.push(b'\n');
            }
            b.extend_from_slice(b"\ncp");
            b
        };
        assert_eq!(AddCheckpoint::parse(&lines(63)).unwrap().proof.len(), 63);
        assert_eq!(AddCheckpoint::parse(&lines(64)).unwrap_err(), RequestError::TooManyProofLines);
    }
}
