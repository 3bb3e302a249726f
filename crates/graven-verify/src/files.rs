//! Reading a tiled log's files: the checkpoint, hash tiles and entry bundles, each within its
//! size limit, with the C2SP fallback from a deleted partial file to the full one.

use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::hash::{LeafIndex, TreeSize};
use graven_core::note::{self, VerifierKey};
use graven_core::tile::{self, BundleId, TileDataError, TileId};
use graven_core::tile_source::{TileHashes, TileSourceError};

use crate::error::VerifyError;
use crate::fetch::{CHECKPOINT, Fetch, MAX_BUNDLE_BYTES, MAX_TILE_BYTES};

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
pub(crate) fn from_tile_source(e: TileSourceError<VerifyError>) -> VerifyError {
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
pub(crate) fn decode_bundle_prefix(bytes: &[u8], width: u16) -> Result<Vec<&[u8]>, TileDataError> {
    match tile::decode_bundle(bytes, width) {
        Err(TileDataError::TrailingData { .. }) if width < 256 => {
            let mut all = tile::decode_bundle(bytes, 256)?;
            all.truncate(usize::from(width));
            Ok(all)
        }
        r => r,
    }
}
