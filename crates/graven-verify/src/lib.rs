//! Verifies a C2SP tiled log end to end, trusting nothing but a verifier key and, once it has
//! seen the log, the last checkpoint it verified.
//!
//! This crate depends on `graven-core` only, never on Graven's writer or server: anyone can
//! check a log without running our code for producing it.
//!
//! [`verify_log`] checks the checkpoint signature, re-hashes every entry of every bundle,
//! rebuilds the tree, compares every stored hash of every tile with the rebuilt one, and
//! compares the rebuilt root with the checkpoint. It streams: memory stays `O(log n)` tiles.
//!
//! [`verify_log_since`] does the same while holding the log to a checkpoint verified earlier
//! (kept in a [`TrustStore`]): a smaller tree is a rollback, a tree that does not extend the
//! remembered one is a fork, and in [`Mode::Incremental`] only what the remembered checkpoint
//! did not already cover is fetched and hashed.

pub mod bundle;
mod bundle_write;
pub mod client_sigs;
mod fetch;
mod lenient;
pub mod text;
mod trust;
mod walk;

pub use bundle_write::{BundleWriteError, BundleWriter};
#[cfg(feature = "http")]
pub use fetch::HttpFetch;
pub use fetch::{DirFetch, Fetch, FetchError};
pub use trust::{Remembered, TrustError, TrustStore};

use graven_core::checkpoint::{OpenError, VerifiedCheckpoint};
use graven_core::hash::{Hash, LeafIndex, TreeSize};
use graven_core::note::{self, VerifierKey};
use graven_core::tile::{self, BundleId, TILE_WIDTH, TileDataError, TileId};
use graven_core::tile_source::{TileHashes, TileSourceError};

/// The path of the log's checkpoint (C2SP tlog-tiles).
const CHECKPOINT: &str = "checkpoint";
/// Largest hash tile: 256 hashes of 32 bytes.
pub const MAX_TILE_BYTES: u64 = TILE_WIDTH * 32;
/// Largest entry bundle: 256 entries of at most 65,535 bytes, each with a 2-byte length.
pub const MAX_BUNDLE_BYTES: u64 = TILE_WIDTH * (2 + tile::MAX_ENTRY_SIZE as u64);

/// The first thing found wrong with a log. Each names the file and, where there is one, the
/// leaf index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("{path}: {source}")]
    Fetch { path: String, source: FetchError },
    #[error("{path} is missing (needed for tree size {size})")]
    Missing { path: String, size: u64 },
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] OpenError),
    #[error("{path}: {source}")]
    Data { path: String, source: TileDataError },
    #[error(
        "leaf {index}: entry in {bundle} hashes to {computed}, but {tile} holds {stored}; one of the two files was altered"
    )]
    LeafMismatch { index: u64, bundle: String, tile: String, computed: Hash, stored: Hash },
    #[error(
        "{tile}: hash {position} (covering leaves {first_leaf}..{end_leaf}) does not match the tree rebuilt from the entries; the tile was altered"
    )]
    TileMismatch { tile: String, position: u64, first_leaf: u64, end_leaf: u64 },
    #[error(
        "checkpoint: root {claimed} does not match {computed}, the root of the {size} entries in the bundles"
    )]
    RootMismatch { size: u64, claimed: Hash, computed: Hash },
    #[error(
        "checkpoint: root {claimed} does not match {computed}, the root of the remembered tree of size {from} extended by entries {from}..{size} from the bundles; the new entries or the checkpoint were altered"
    )]
    ExtendedRootMismatch { from: u64, size: u64, claimed: Hash, computed: Hash },
    #[error(
        "ROLLBACK: the log presents a checkpoint of size {} (root {}), but this verifier already verified size {} (root {}). The log went back in time: an old copy is being served, or entries were removed. Do not trust this copy; keep both checkpoints as evidence",
        .0.presented.size(), .0.presented.root(), .0.remembered.size(), .0.remembered.root()
    )]
    Rollback(Box<Divergence>),
    #[error("FORK: {}", .0.fork_detail())]
    Fork(Box<Divergence>),
    #[error(
        "the remembered checkpoint is for origin {remembered:?}, not {expected:?}; it cannot vouch for this log"
    )]
    TrustedOrigin { remembered: String, expected: String },
    #[error("entry {index}: {message}")]
    Visit { index: u64, message: String },
}

impl VerifyError {
    /// Whether this only says that the log could not be read, which is no evidence about the
    /// log at all: a file that could not be fetched (network, server error, HTTP 401/403, a
    /// disk error), or no checkpoint where the log was looked for (a wrong address, or nothing
    /// published there). Everything else is something that was read and found wrong, including
    /// a file that the signed checkpoint commits to and a reachable log does not have.
    pub fn is_outage(&self) -> bool {
        match self {
            VerifyError::Fetch { source, .. } => source.is_outage(),
            VerifyError::Missing { path, .. } => path == CHECKPOINT,
            _ => false,
        }
    }

    /// The two conflicting checkpoints, if this is a rollback or a fork.
    pub fn divergence(&self) -> Option<&Divergence> {
        match self {
            VerifyError::Rollback(d) | VerifyError::Fork(d) => Some(d),
            _ => None,
        }
    }
}

/// Two checkpoints of one log, both signed by its key, that cannot both be honest: the
/// remembered one and the one presented now. Together they are evidence against the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    pub remembered: VerifiedCheckpoint,
    pub presented: VerifiedCheckpoint,
    /// The root that the presented tree gives at the remembered size (from its tiles or
    /// rebuilt from its entries), when it is larger.
    pub root_at_remembered_size: Option<Hash>,
}

impl Divergence {
    fn fork_detail(&self) -> String {
        let (m, n) = (self.remembered.size(), self.presented.size());
        let what = match self.root_at_remembered_size {
            Some(x) if n > m => format!(
                "the checkpoint of size {n} (root {}) does not extend the checkpoint of size {m} (root {}) that this verifier already verified: the new tree gives root {x} at size {m}",
                self.presented.root(),
                self.remembered.root()
            ),
            _ => format!(
                "the log presents root {} for size {n}, but this verifier already verified root {} for that size",
                self.presented.root(),
                self.remembered.root()
            ),
        };
        format!(
            "{what}. Both checkpoints are signed by the log's key: the log rewrote its history or shows different histories to different readers (or its files or key were tampered with). Keep both checkpoints as evidence and alert the log's operator"
        )
    }
}

/// How much of a log a run re-checks when it holds the log to a remembered checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only what the remembered checkpoint did not cover: the bundles and tiles at and past
    /// its right edge. Files the remembered tree already had in full are not read again.
    Incremental,
    /// Every bundle and tile, as on first use, and still held to the remembered checkpoint.
    Full,
}

/// What the run held the log to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Nothing was remembered: the checkpoint is trusted on first use (its signature and the
    /// full re-verification are all that vouch for it).
    FirstUse,
    /// The log extends (or equals) the remembered checkpoint.
    Consistent,
}

/// Why a [`scan_log`] visitor stopped the scan (its own message, shown as is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitError(pub String);

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub origin: String,
    pub size: TreeSize,
    pub root: Hash,
    pub bundles: u64,
    pub tiles: u64,
    pub entry_bytes: u64,
    /// Entries whose bundles were re-hashed.
    pub entries_hashed: u64,
    /// The size of the remembered checkpoint the log was held to.
    pub previous_size: Option<TreeSize>,
    pub trust: Trust,
    /// What was actually done: `Incremental` only when there was something to build on.
    pub mode: Mode,
}

/// A log that verified: its checkpoint's signature, every file the run was asked to check,
/// and its consistency with the remembered checkpoint. Only [`verify_log_since`] makes one,
/// and [`TrustStore::remember`] accepts nothing else.
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    checkpoint: VerifiedCheckpoint,
    key: VerifierKey,
    report: Report,
}

impl VerifiedLog {
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }
    pub fn key(&self) -> &VerifierKey {
        &self.key
    }
    pub fn report(&self) -> &Report {
        &self.report
    }
}

/// Fetches `tile`; if a partial tile is gone, falls back to the full tile that replaced it
/// (C2SP tlog-tiles lets logs delete partial tiles once full) and keeps its first `width`
/// hashes.
pub fn fetch_tile<F: Fetch>(f: &mut F, tile: TileId, size: TreeSize) -> Result<Vec<u8>, VerifyError> {
    let path = tile.path();
    match f.fetch(&path, MAX_TILE_BYTES) {
        Ok(Some(b)) => return Ok(b),
        Ok(None) if !tile.is_full() => {}
        Ok(None) => return Err(VerifyError::Missing { path, size: size.0 }),
        Err(source) => return Err(VerifyError::Fetch { path, source }),
    }
    let full = tile.as_full().path();
    match f.fetch(&full, MAX_TILE_BYTES) {
        Ok(Some(mut b)) if b.len() as u64 == MAX_TILE_BYTES => {
            b.truncate(usize::from(tile.width) * 32);
            Ok(b)
        }
        Ok(Some(b)) => Err(VerifyError::Data {
            path: full,
            source: TileDataError::TileLength { len: b.len(), width: 256 },
        }),
        Ok(None) => Err(VerifyError::Missing { path, size: size.0 }),
        Err(source) => Err(VerifyError::Fetch { path: full, source }),
    }
}

/// Fetches an entry bundle, with the same partial-to-full fallback as [`fetch_tile`]. Returns
/// the bytes and the path they came from.
pub fn fetch_bundle<F: Fetch>(
    f: &mut F,
    b: BundleId,
    size: TreeSize,
) -> Result<(Vec<u8>, String), VerifyError> {
    let path = b.path();
    match f.fetch(&path, MAX_BUNDLE_BYTES) {
        Ok(Some(bytes)) => return Ok((bytes, path)),
        Ok(None) if !b.is_full() => {}
        Ok(None) => return Err(VerifyError::Missing { path, size: size.0 }),
        Err(source) => return Err(VerifyError::Fetch { path, source }),
    }
    let full = b.as_full().path();
    match f.fetch(&full, MAX_BUNDLE_BYTES) {
        Ok(Some(bytes)) => Ok((bytes, full)),
        Ok(None) => Err(VerifyError::Missing { path, size: size.0 }),
        Err(source) => Err(VerifyError::Fetch { path: full, source }),
    }
}

/// Reads and verifies the log's checkpoint. `origin` defaults to the key's name.
pub fn fetch_checkpoint<F: Fetch>(
    f: &mut F,
    vkey: &VerifierKey,
    origin: Option<&str>,
) -> Result<VerifiedCheckpoint, VerifyError> {
    let path = CHECKPOINT;
    let bytes = match f.fetch(path, note::MAX_NOTE_SIZE as u64) {
        Ok(Some(b)) => b,
        Ok(None) => return Err(VerifyError::Missing { path: path.into(), size: 0 }),
        Err(source) => return Err(VerifyError::Fetch { path: path.into(), source }),
    };
    Ok(VerifiedCheckpoint::open(&bytes, vkey, origin.unwrap_or(vkey.name()))?)
}

/// A [`graven_core::merkle::HashSource`] over the tiles of `f` for a tree of `size`.
pub fn tile_hashes<F: Fetch>(
    f: &mut F,
    size: TreeSize,
) -> TileHashes<impl FnMut(TileId) -> Result<Vec<u8>, VerifyError> + '_> {
    TileHashes::new(size, move |t| fetch_tile(f, t, size))
}

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
    walk::check(f, &cp, None, Mode::Full, progress, &mut visit)
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
    mut visit: impl FnMut(u64, &[u8]) -> Result<(), VisitError>,
) -> Result<VerifiedLog, VerifyError> {
    let origin = origin.unwrap_or(vkey.name());
    let cp = fetch_checkpoint(f, vkey, Some(origin))?;
    let report = walk::check(f, &cp, trusted, mode, progress, &mut |_, i, e| visit(i, e))?;
    Ok(VerifiedLog { checkpoint: cp, key: vkey.clone(), report })
}

/// The entry at `index` of the tree of `size`, read from its bundle. The caller checks it
/// (its leaf hash against an inclusion proof or a tile).
pub fn fetch_entry<F: Fetch>(f: &mut F, index: LeafIndex, size: TreeSize) -> Result<Vec<u8>, VerifyError> {
    let Some(b) = tile::bundle_for_entry(index.0, size) else {
        return Err(VerifyError::Missing { path: format!("tile/entries/(entry {})", index.0), size: size.0 });
    };
    let (bytes, path) = fetch_bundle(f, b, size)?;
    let entries =
        decode_bundle_prefix(&bytes, b.width).map_err(|source| VerifyError::Data { path, source })?;
    entries.get((index.0 - b.first_entry()) as usize).map(|e| e.to_vec()).ok_or(VerifyError::Data {
        path: b.path(),
        source: TileDataError::Count { found: entries.len(), width: b.width },
    })
}

/// A tile read through [`TileHashes`] failed: report it as if it had been read directly.
fn from_tile_source(e: TileSourceError<VerifyError>) -> VerifyError {
    match e {
        TileSourceError::Fetch { source, .. } => source,
        TileSourceError::Data { tile, source } => VerifyError::Data { path: tile.path(), source },
        TileSourceError::OutOfTree { height, index, size } => VerifyError::Missing {
            path: format!("tile/{}/(hash {index} at height {height})", height / tile::TILE_HEIGHT),
            size,
        },
        e => VerifyError::Missing { path: e.to_string(), size: 0 },
    }
}

/// A bundle may be the full bundle standing in for a partial one: take its first `width`
/// entries, but still require it to be well formed throughout.
fn decode_bundle_prefix(bytes: &[u8], width: u16) -> Result<Vec<&[u8]>, TileDataError> {
    match tile::decode_bundle(bytes, width) {
        Err(TileDataError::TrailingData { .. }) if width < 256 => {
            let mut all = tile::decode_bundle(bytes, 256)?;
            all.truncate(usize::from(width));
            Ok(all)
        }
        r => r,
    }
}
