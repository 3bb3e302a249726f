//! Verifying a whole log: every entry, every tile, the root, and (when one is remembered) the
//! consistency with the checkpoint verified before.

use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::note::VerifierKey;

use crate::error::{VerifyError, VisitError};
use crate::fetch::Fetch;
use crate::files::fetch_checkpoint;
use crate::report::{Mode, Report, VerifiedLog};
use crate::walk;

/// Verifies the whole log behind `f` against `vkey`, remembering nothing. `progress(entries_done,
/// total)` is called after each bundle.
pub fn verify_log<F: Fetch>(
    f: &mut F,
    vkey: &VerifierKey,
    origin: Option<&str>,
    progress: impl FnMut(u64, u64),
) -> Result<Report, VerifyError> {
    verify_log_since(f, vkey, origin, None, Mode::Full, progress).map(|v| v.report)
}

/// [`verify_log`] that also hands every entry to `visit(checkpoint, index, entry)`, in log
/// order, as it is read. The checkpoint's signature has been checked before the first call,
/// and each entry's hash has been compared with the level-0 tile that covers it; the tiles
/// themselves are only proven against the root when the scan ends, so a caller that emits
/// entries as it goes must treat its output as unverified until this returns `Ok`.
pub fn scan_log<F: Fetch>(
    f: &mut F,
    vkey: &VerifierKey,
    origin: Option<&str>,
    progress: impl FnMut(u64, u64),
    mut visit: impl FnMut(&VerifiedCheckpoint, u64, &[u8]) -> Result<(), VisitError>,
) -> Result<Report, VerifyError> {
    let cp = fetch_checkpoint(f, vkey, Some(origin.unwrap_or(vkey.name())))?;
    walk::check(f, &cp, None, Mode::Full, progress, &mut visit, &mut walk::Capture::default())
}

/// Verifies the log behind `f` and holds it to `trusted`, the last checkpoint of this log (same
/// origin, same key) that verified before, if there is one.
///
/// - A smaller tree than `trusted` is a [`VerifyError::Rollback`].
/// - The same size with another root, or a larger tree whose tiles do not give `trusted`'s
///   root at `trusted`'s size, is a [`VerifyError::Fork`], even when the new checkpoint is
///   validly signed by the log's own key.
/// - In [`Mode::Incremental`] the right edge of the remembered tree is read from the new
///   tree's tiles and must hash to the remembered root; then only the bundles from the
///   remembered size on are fetched and hashed (the older entries of the bundle at the edge are
///   checked against the tile the remembered root covers), every stored hash they complete is
///   compared, and the root rebuilt from the remembered edge plus the new entries must be the
///   checkpoint's. Sound as long as the remembered root is; files the remembered tree held in
///   full are not read again (use [`Mode::Full`] for that, e.g. for a new mirror).
///
/// Memory stays `O(log n)` tiles in both modes.
pub fn verify_log_since<F: Fetch>(
    f: &mut F,
    vkey: &VerifierKey,
    origin: Option<&str>,
    trusted: Option<&VerifiedCheckpoint>,
    mode: Mode,
    progress: impl FnMut(u64, u64),
) -> Result<VerifiedLog, VerifyError> {
    verify_log_since_visiting(f, vkey, origin, trusted, mode, progress, |_, _| Ok(()))
}

/// [`verify_log_since`] that also hands each entry it reads to `visit(index, entry)` (only
/// the entries from the remembered size on, in incremental mode), e.g. a
/// [`client_sigs::ClientSigChecker`]. A visitor error fails the verification.
pub fn verify_log_since_visiting<F: Fetch>(
    f: &mut F,
    vkey: &VerifierKey,
    origin: Option<&str>,
    trusted: Option<&VerifiedCheckpoint>,
    mode: Mode,
    progress: impl FnMut(u64, u64),
    visit: impl FnMut(u64, &[u8]) -> Result<(), VisitError>,
) -> Result<VerifiedLog, VerifyError> {
    let mut capture = walk::Capture::default();
    verify_capturing(f, vkey, origin, trusted, mode, progress, visit, &mut capture)
}

/// [`verify_log_since_visiting`] that also keeps the roots the walk rebuilt at
/// `capture.sizes` (for `timestamps`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn verify_capturing<F: Fetch>(
    f: &mut F,
    vkey: &VerifierKey,
    origin: Option<&str>,
    trusted: Option<&VerifiedCheckpoint>,
    mode: Mode,
    progress: impl FnMut(u64, u64),
    mut visit: impl FnMut(u64, &[u8]) -> Result<(), VisitError>,
    capture: &mut walk::Capture,
) -> Result<VerifiedLog, VerifyError> {
    let origin = origin.unwrap_or(vkey.name());
    let cp = fetch_checkpoint(f, vkey, Some(origin))?;
    let report = walk::check(f, &cp, trusted, mode, progress, &mut |_, i, e| visit(i, e), capture)?;
    Ok(VerifiedLog { checkpoint: cp, key: vkey.clone(), report })
}
