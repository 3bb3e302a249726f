//! The time-stamp a trust store remembers for a log, beside its checkpoint: the newest token
//! `graven verify --tsa-cert` checked, with the checkpoint it stamps, so the next run holds the
//! log's new tokens to the ordering rule ("a later checkpoint never carries an earlier time")
//! even where the log no longer shows the old one.
//!
//! File `<origin, escaped>+<key ID>.timestamp`, next to the `.checkpoint` file:
//!
//! ```text
//! graven-trusted-time/1\n
//! <length of the checkpoint in bytes, decimal>\n
//! <the checkpoint, as the log's signer wrote it><the token's DER>
//! ```
//!
//! Like the checkpoint file it is evidence, not a record: every read opens the checkpoint with
//! the log's key and verifies the token with the TSA roots given, so an edited file is refused.

use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::hash::TreeSize;
use graven_core::note::VerifierKey;
use graven_tsa::{GenTime, TsaVerifier};

const MAGIC: &str = "graven-trusted-time/1\n";
/// Largest file read back: a checkpoint and a token, each at its limit.
pub(crate) const MAX_STAMP_FILE: u64 =
    (graven_core::note::MAX_NOTE_SIZE + graven_tsa::MAX_TOKEN_BYTES + 64) as u64;

/// The stamp a trust store remembered: the size of the checkpoint and the TSA's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RememberedStamp {
    pub size: TreeSize,
    pub time: GenTime,
}

pub(crate) fn encode(note: &[u8], token: &[u8]) -> Vec<u8> {
    let mut out = format!("{MAGIC}{}\n", note.len()).into_bytes();
    out.extend_from_slice(note);
    out.extend_from_slice(token);
    out
}

/// Reads a stamp file back and checks it: the checkpoint with `key` and `origin`, the token
/// with `tsa` over the checkpoint's bytes.
pub(crate) fn decode(
    bytes: &[u8],
    key: &VerifierKey,
    origin: &str,
    tsa: &TsaVerifier,
) -> Result<RememberedStamp, String> {
    let rest =
        bytes.strip_prefix(MAGIC.as_bytes()).ok_or_else(|| format!("it does not start with {MAGIC:?}"))?;
    let end = rest.iter().take(21).position(|b| *b == b'\n').ok_or("no length line")?;
    let len: usize = std::str::from_utf8(&rest[..end])
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or("the length line is not a number")?;
    let rest = &rest[end + 1..];
    if len > rest.len() {
        return Err("it is shorter than its length line says".into());
    }
    let (note, token) = rest.split_at(len);
    let cp = VerifiedCheckpoint::open(note, key, origin).map_err(|e| format!("its checkpoint: {e}"))?;
    let verified = tsa.verify(token, note, None).map_err(|e| format!("its token: {e}"))?;
    Ok(RememberedStamp { size: cp.size(), time: verified.gen_time() })
}
