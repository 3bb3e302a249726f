//! Trusted time (docs/trusted-time.md): the RFC 3161 time-stamp tokens a log keeps beside the
//! checkpoints they stamp, checked with the TSA roots the verifier was given (`--tsa-cert`).
//!
//! Files, relative to the log's root (a directory, a server, a bucket):
//! `graven/timestamp/<size, 20 digits>` (the token's DER) and `graven/checkpoint/<size, 20
//! digits>` (the checkpoint it stamps, as the log's signer wrote it).
//!
//! [`verify_log_stamped`] verifies the log as `verify_log_since_visiting` does, and
//! every token of a checkpoint in the range it verified (from the remembered size, or from 0
//! in full mode, up to the checkpoint verified): for each,
//! 1. the stamped checkpoint: the archived one, which must open with the log's key and origin,
//!    be of that size, and have the root of the verified checkpoint or the one the walk rebuilt
//!    from the entries at that size (else it is not a checkpoint of this tree, and the log's key
//!    signed two trees of one size); for the size verified, the verified checkpoint itself when
//!    none is archived;
//! 2. the token ([`graven_tsa::TsaVerifier::verify`]): its imprint is the SHA-256 of those
//!    bytes, its signature and certificate chain lead to a configured root, every certificate
//!    valid at its `genTime`;
//! 3. the ordering rule: no later checkpoint carries an earlier time, across the tokens found
//!    ([`graven_tsa::TimeOrder`]) and between each of them and the stamp the trust store
//!    remembered (of a smaller size after an incremental run, of any size in a full one).

use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::hash::{Hash, TreeSize};
use graven_core::note::VerifierKey;
use graven_tsa::{GenTime, TimeOrder, TimeOrderError, TsaVerifier, VerifiedTimestamp};

use crate::error::{VerifyError, VisitError};
use crate::fetch::Fetch;
use crate::report::{Mode, VerifiedLog};
use crate::verify::verify_capturing;
use crate::walk::Capture;

pub use crate::fetch::TIMESTAMP_DIR;
/// Where the checkpoints they stamp are archived.
pub const ARCHIVE_DIR: &str = "graven/checkpoint/";
/// Sizes asked for in one listing request.
const PAGE: usize = 1000;

/// The path of the token of the checkpoint of `size`.
pub fn timestamp_path(size: u64) -> String {
    format!("{TIMESTAMP_DIR}{size:020}")
}

/// The path of the archived checkpoint of `size`.
pub fn archived_checkpoint_path(size: u64) -> String {
    format!("{ARCHIVE_DIR}{size:020}")
}

/// A token that verified for a checkpoint of a verified log, in order with the others. Only
/// [`verify_log_stamped`] makes one.
#[derive(Debug, Clone)]
pub struct CheckedStamp {
    size: TreeSize,
    timestamp: VerifiedTimestamp,
    note: Vec<u8>,
    token: Vec<u8>,
}

impl CheckedStamp {
    /// The size of the checkpoint it stamps.
    pub fn size(&self) -> TreeSize {
        self.size
    }
    pub fn timestamp(&self) -> &VerifiedTimestamp {
        &self.timestamp
    }
    pub fn gen_time(&self) -> GenTime {
        self.timestamp.gen_time()
    }
    /// The checkpoint's bytes, as the log's signer wrote them.
    pub fn note(&self) -> &[u8] {
        &self.note
    }
    /// The token's DER.
    pub fn token(&self) -> &[u8] {
        &self.token
    }
}

/// What [`verify_log_stamped`] found.
#[derive(Debug, Clone, Default)]
pub struct Stamps {
    /// Every token found, checked, by increasing size.
    pub checked: Vec<CheckedStamp>,
    /// Whether the source could list its tokens (a plain tile server cannot: only the token of
    /// the verified checkpoint was looked for).
    pub listed: bool,
    /// The sizes after which tokens were looked for (the remembered size, or 0).
    pub after: u64,
}

impl Stamps {
    /// The newest stamp found, for the trust store.
    pub fn latest(&self) -> Option<&CheckedStamp> {
        self.checked.last()
    }
}

/// Verifies the log behind `f` like `verify_log_since_visiting`, then every time-stamp
/// token of a checkpoint in the range it verified (see the module documentation), with `tsa`,
/// holding their times to `remembered` (the stamp the trust store kept: its size and time).
#[allow(clippy::too_many_arguments)]
pub fn verify_log_stamped<F: Fetch>(
    f: &mut F,
    vkey: &VerifierKey,
    origin: Option<&str>,
    trusted: Option<&VerifiedCheckpoint>,
    mode: Mode,
    progress: impl FnMut(u64, u64),
    visit: impl FnMut(u64, &[u8]) -> Result<(), VisitError>,
    tsa: &TsaVerifier,
    remembered: Option<(TreeSize, GenTime)>,
) -> Result<(VerifiedLog, Stamps), VerifyError> {
    let after = match (trusted, mode) {
        (Some(t), Mode::Incremental) => t.size().0,
        _ => 0,
    };
    // Listed before the walk (which must pass each stamped size to rebuild its root); tokens of
    // checkpoints beyond the one verified (the log grew meanwhile) are left for the next run.
    let listed = list(f, after)?;
    let mut capture = Capture { sizes: listed.clone().unwrap_or_default(), roots: Vec::new() };
    let log = verify_capturing(f, vkey, origin, trusted, mode, progress, visit, &mut capture)?;
    let n = log.checkpoint().size().0;
    let mut sizes: Vec<u64> = capture.sizes.iter().copied().filter(|s| *s <= n).collect();
    if listed.is_none() && n > after {
        sizes.push(n);
    }
    let mut order = TimeOrder::new();
    let mut checked = Vec::with_capacity(sizes.len());
    for size in sizes {
        let path = timestamp_path(size);
        let token = match f.fetch(&path, graven_tsa::MAX_TOKEN_BYTES as u64) {
            Ok(Some(t)) => t,
            // Not listed, and not there: the verified checkpoint has no token.
            Ok(None) if listed.is_none() => continue,
            Ok(None) => return Err(VerifyError::Missing { path, size: n }),
            Err(source) => return Err(VerifyError::Fetch { path, source }),
        };
        let note = stamped_checkpoint(f, &log, size, &capture.roots)?;
        let timestamp = tsa.verify(&token, &note, None).map_err(|source| VerifyError::Timestamp {
            path: path.clone(),
            size,
            source,
        })?;
        order.check(TreeSize(size), &timestamp).map_err(VerifyError::TimeOrder)?;
        if let Some(kept) = remembered {
            against_remembered(TreeSize(size), timestamp.gen_time(), kept).map_err(VerifyError::TimeOrder)?;
        }
        checked.push(CheckedStamp { size: TreeSize(size), timestamp, note, token });
    }
    Ok((log, Stamps { checked, listed: listed.is_some(), after }))
}

/// The ordering rule between a token found now and the stamp the trust store remembered
/// (which may be of a larger size, in a full run): the larger size must not carry the earlier
/// time. Tokens of the same size are not ordered.
fn against_remembered(
    size: TreeSize,
    time: GenTime,
    (kept_size, kept_time): (TreeSize, GenTime),
) -> Result<(), TimeOrderError> {
    if size > kept_size && time < kept_time {
        return Err(TimeOrderError::EarlierTime {
            size,
            time,
            earlier_size: kept_size,
            earlier_time: kept_time,
        });
    }
    if size < kept_size && time > kept_time {
        return Err(TimeOrderError::EarlierTime {
            size: kept_size,
            time: kept_time,
            earlier_size: size,
            earlier_time: time,
        });
    }
    Ok(())
}

/// Every stamped size above `after`, or `None` if the source cannot list them.
fn list<F: Fetch>(f: &mut F, after: u64) -> Result<Option<Vec<u64>>, VerifyError> {
    let mut all: Vec<u64> = Vec::new();
    loop {
        let from = all.last().copied().unwrap_or(after);
        let page = f
            .stamped_sizes(from, u64::MAX, PAGE)
            .map_err(|source| VerifyError::Fetch { path: TIMESTAMP_DIR.into(), source })?;
        let Some(page) = page else { return Ok(None) };
        let done = page.len() < PAGE;
        if page.iter().any(|s| *s <= from) {
            return Err(VerifyError::StampedCheckpoint {
                path: TIMESTAMP_DIR.into(),
                size: from,
                why: "the listing of time-stamp tokens went backwards".into(),
            });
        }
        all.extend(page);
        if done {
            return Ok(Some(all));
        }
    }
}

/// The bytes of the checkpoint of `size` that a token should stamp, checked to belong to the
/// verified tree (see the module documentation): the archived checkpoint, or for the size
/// verified, the checkpoint verified when none is archived. (A witnessed log serves its
/// checkpoint with cosignature lines appended; the token stamps the log's own note, which is
/// the archived one.)
fn stamped_checkpoint<F: Fetch>(
    f: &mut F,
    log: &VerifiedLog,
    size: u64,
    roots: &[(u64, Hash)],
) -> Result<Vec<u8>, VerifyError> {
    let cp = log.checkpoint();
    let path = archived_checkpoint_path(size);
    let bad = |why: String| VerifyError::StampedCheckpoint { path: path.clone(), size, why };
    let bytes = match f.fetch(&path, graven_core::note::MAX_NOTE_SIZE as u64) {
        Ok(Some(b)) => b,
        Ok(None) if size == cp.size().0 => return Ok(cp.note_bytes().to_vec()),
        Ok(None) => return Err(bad("is missing: the token cannot be checked without it".into())),
        Err(source) => return Err(VerifyError::Fetch { path, source }),
    };
    let archived = VerifiedCheckpoint::open(&bytes, log.key(), cp.checkpoint().origin())
        .map_err(|e| bad(format!("does not open with the log's key: {e}")))?;
    if archived.size().0 != size {
        return Err(bad(format!("is for size {}", archived.size().0)));
    }
    let root = if size == cp.size().0 {
        cp.root()
    } else {
        let Some((_, root)) = roots.iter().find(|(s, _)| *s == size) else {
            return Err(bad("was not reached by the verification".into()));
        };
        *root
    };
    if archived.root() != root {
        return Err(bad(format!(
            "has root {}, but the verified entries give root {root} at that size: the log's key signed two different trees of size {size}",
            archived.root()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule read naively over the union of the remembered stamp and one found now: no
    /// larger size with an earlier time.
    #[test]
    fn against_the_remembered_stamp_either_side() {
        let t = |s| GenTime::new(s, 0).unwrap();
        let kept = (TreeSize(10), t(100));
        for size in [5u64, 10, 15] {
            for time in [50i64, 100, 150] {
                let naive = !((size > 10 && time < 100) || (size < 10 && time > 100));
                let got = against_remembered(TreeSize(size), t(time), kept);
                assert_eq!(got.is_ok(), naive, "size {size} time {time}: {got:?}");
                if let Err(TimeOrderError::EarlierTime { size: later, earlier_size, .. }) = got {
                    assert!(later > earlier_size, "the error names the larger size first");
                }
            }
        }
    }
}
