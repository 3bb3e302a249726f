//! Verifies a C2SP tiled log end to end, trusting nothing but a verifier key.
//!
//! This crate depends on `graven-core` only, never on Graven's writer or server: anyone can
//! check a log without running our code for producing it.
//!
//! [`verify_log`] checks the checkpoint signature, re-hashes every entry of every bundle,
//! rebuilds the tree, compares every stored hash of every tile with the rebuilt one, and
//! compares the rebuilt root with the checkpoint. It streams: memory stays `O(log n)` tiles.

pub mod bundle;
mod bundle_write;
mod fetch;

pub use bundle_write::{BundleWriteError, BundleWriter};
pub use fetch::{DirFetch, Fetch, FetchError, HttpFetch};

use graven_core::checkpoint::{OpenError, VerifiedCheckpoint};
use graven_core::hash::{Hash, TreeSize, leaf_hash};
use graven_core::merkle::RightEdge;
use graven_core::note::{self, VerifierKey};
use graven_core::tile::{self, BundleId, TILE_HEIGHT, TILE_WIDTH, TileDataError, TileId};
use graven_core::tile_source::TileHashes;

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
    #[error("entry {index}: {message}")]
    Visit { index: u64, message: String },
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
    let path = "checkpoint";
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

/// The tile currently being compared at one level.
struct LevelCursor {
    tile: TileId,
    hashes: Vec<Hash>,
}

/// Verifies the whole log behind `f` against `vkey`. `progress(entries_done, total)` is
/// called after each bundle.
pub fn verify_log<F: Fetch>(
    f: &mut F,
    vkey: &VerifierKey,
    origin: Option<&str>,
    progress: impl FnMut(u64, u64),
) -> Result<Report, VerifyError> {
    scan_log(f, vkey, origin, progress, |_, _, _| Ok(()))
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
    mut progress: impl FnMut(u64, u64),
    mut visit: impl FnMut(&VerifiedCheckpoint, u64, &[u8]) -> Result<(), VisitError>,
) -> Result<Report, VerifyError> {
    let cp = fetch_checkpoint(f, vkey, origin)?;
    let size = cp.size();
    let mut edge = RightEdge::new();
    let mut cursors: Vec<Option<LevelCursor>> = Vec::new();
    let mut report = Report {
        origin: cp.checkpoint().origin().to_owned(),
        size,
        root: cp.root(),
        bundles: 0,
        tiles: 0,
        entry_bytes: 0,
    };
    // Nodes completed by the last push whose stored copy must be compared: (level, index, hash).
    let mut completed: Vec<(u8, u64, Hash)> = Vec::with_capacity(8);

    for b in tile::bundles_for_size(size) {
        let (bytes, bundle_path) = fetch_bundle(f, b, size)?;
        let entries = decode_bundle_prefix(&bytes, b.width)
            .map_err(|source| VerifyError::Data { path: bundle_path.clone(), source })?;
        report.bundles += 1;
        report.entry_bytes += bytes.len() as u64;
        for (i, entry) in entries.iter().enumerate() {
            let index = b.first_entry() + i as u64;
            completed.clear();
            edge.push(leaf_hash(entry), |height, idx, h| {
                if height % TILE_HEIGHT == 0 {
                    completed.push((height / TILE_HEIGHT, idx, *h));
                }
            });
            for &(level, idx, computed) in &completed {
                let stored = stored_hash(f, &mut cursors, &mut report, level, idx, size)?;
                if stored == computed {
                    continue;
                }
                let tile = tile::tile_for_hash(level, idx, size).map(|t| t.path()).unwrap_or_default();
                if level == 0 {
                    return Err(VerifyError::LeafMismatch {
                        index,
                        bundle: bundle_path,
                        tile,
                        computed,
                        stored,
                    });
                }
                let span = 1u64 << (u32::from(level) * u32::from(TILE_HEIGHT));
                return Err(VerifyError::TileMismatch {
                    tile,
                    position: idx % TILE_WIDTH,
                    first_leaf: idx * span,
                    end_leaf: (idx + 1) * span,
                });
            }
            visit(&cp, index, entry).map_err(|e| VerifyError::Visit { index, message: e.0 })?;
        }
        progress(b.first_entry() + u64::from(b.width), size.0);
    }
    let computed = edge.root();
    if computed != cp.root() {
        return Err(VerifyError::RootMismatch { size: size.0, claimed: cp.root(), computed });
    }
    Ok(report)
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

fn stored_hash<F: Fetch>(
    f: &mut F,
    cursors: &mut Vec<Option<LevelCursor>>,
    report: &mut Report,
    level: u8,
    idx: u64,
    size: TreeSize,
) -> Result<Hash, VerifyError> {
    let Some(tile) = tile::tile_for_hash(level, idx, size) else {
        return Err(VerifyError::Missing { path: format!("tile/{level}/(hash {idx})"), size: size.0 });
    };
    while cursors.len() <= usize::from(level) {
        cursors.push(None);
    }
    let slot = &mut cursors[usize::from(level)];
    if slot.as_ref().map(|c| c.tile) != Some(tile) {
        let bytes = fetch_tile(f, tile, size)?;
        let hashes = tile::decode_hash_tile(&bytes, tile.width)
            .map_err(|source| VerifyError::Data { path: tile.path(), source })?;
        report.tiles += 1;
        *slot = Some(LevelCursor { tile, hashes });
    }
    let pos = (idx % TILE_WIDTH) as usize;
    slot.as_ref().and_then(|c| c.hashes.get(pos)).copied().ok_or_else(|| VerifyError::Data {
        path: tile.path(),
        source: TileDataError::TileLength { len: 0, width: tile.width },
    })
}
