//! Stored hashes read from tiles: a [`HashSource`] over any way of fetching a tile.
//!
//! The fetching itself (files, HTTP, object storage) is handed in as a closure, so this stays
//! free of I/O. Decoded tiles are cached; the cache is bounded.

use std::collections::HashMap;

use crate::hash::{Hash, TreeSize, node_hash};
use crate::merkle::HashSource;
use crate::tile::{self, TILE_HEIGHT, TileDataError, TileId};

/// Tiles kept decoded at once. 4,096 tiles are 32 MiB of hashes.
const CACHE_TILES: usize = 4096;

/// Why a stored hash could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TileSourceError<E> {
    #[error("fetching {tile}: {source}")]
    Fetch { tile: TileId, source: E },
    #[error("{tile}: {source}")]
    Data { tile: TileId, source: TileDataError },
    #[error("no hash at height {height}, index {index} in a tree of size {size}")]
    OutOfTree { height: u8, index: u64, size: u64 },
}

/// Reads `node(height, index)` from the tiles of a tree of `size` leaves.
#[derive(Debug)]
pub struct TileHashes<F> {
    fetch: F,
    size: TreeSize,
    cache: HashMap<TileId, Vec<Hash>>,
}

impl<F, E> TileHashes<F>
where
    F: FnMut(TileId) -> Result<Vec<u8>, E>,
{
    /// `fetch(tile)` returns the bytes of that tile (at exactly the width asked for).
    pub fn new(size: TreeSize, fetch: F) -> Self {
        TileHashes { fetch, size, cache: HashMap::new() }
    }

    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// The decoded hashes of `tile`, fetched once.
    pub fn tile(&mut self, tile: TileId) -> Result<&[Hash], TileSourceError<E>> {
        if !self.cache.contains_key(&tile) {
            let bytes = (self.fetch)(tile).map_err(|source| TileSourceError::Fetch { tile, source })?;
            let hashes = tile::decode_hash_tile(&bytes, tile.width)
                .map_err(|source| TileSourceError::Data { tile, source })?;
            if self.cache.len() >= CACHE_TILES {
                self.cache.clear();
            }
            self.cache.insert(tile, hashes);
        }
        Ok(self.cache.get(&tile).map(Vec::as_slice).unwrap_or(&[]))
    }
}

impl<F, E> HashSource for TileHashes<F>
where
    F: FnMut(TileId) -> Result<Vec<u8>, E>,
{
    type Error = TileSourceError<E>;

    fn node(&mut self, height: u8, index: u64) -> Result<Hash, Self::Error> {
        let size = self.size.0;
        let out = || TileSourceError::OutOfTree { height, index, size };
        let level = height / TILE_HEIGHT;
        let sub = height % TILE_HEIGHT;
        // The node covers 2^sub consecutive hashes of `level`, all inside one tile.
        let first = index.checked_shl(u32::from(sub)).filter(|f| f >> sub == index).ok_or_else(out)?;
        let count = 1u64 << sub;
        let Some(last) = first.checked_add(count - 1) else { return Err(out()) };
        let Some(tile) = tile::tile_for_hash(level, last, self.size) else { return Err(out()) };
        let hashes = self.tile(tile)?;
        let start = (first % tile::TILE_WIDTH) as usize;
        let range = hashes.get(start..start + count as usize).ok_or_else(out)?;
        Ok(perfect_root(range))
    }
}

/// Root of a power-of-two run of hashes.
fn perfect_root(hashes: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks_exact(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    level.first().copied().unwrap_or_else(crate::hash::empty_root)
}
