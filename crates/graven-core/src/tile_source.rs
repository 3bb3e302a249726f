//! Stored hashes read from tiles: a [`HashSource`] over any way of fetching a tile.
//!
//! The fetching itself (files, HTTP, object storage) is handed in as a closure, so this stays
//! free of I/O. Decoded tiles are cached; the cache is bounded.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::hash::{Hash, TreeSize, node_hash};
use crate::merkle::HashSource;
use crate::tile::{self, TILE_HEIGHT, TileDataError, TileId};

/// Tiles kept decoded at once, each with its interior nodes (511 hashes, 16 KiB): 16 MiB.
const CACHE_TILES: usize = 1024;

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

/// One tile and every perfect subtree inside it: `levels[j][i]` is the root of hashes
/// `i * 2^j .. (i + 1) * 2^j` of the tile. Any node at most 8 levels above the tile's own
/// level is then one lookup.
#[derive(Debug)]
struct TileTree {
    levels: Vec<Vec<Hash>>,
}

impl TileTree {
    fn new(hashes: Vec<Hash>) -> Self {
        let mut levels = vec![hashes];
        while let Some(last) = levels.last() {
            if last.len() < 2 {
                break;
            }
            let next: Vec<Hash> = last.chunks_exact(2).map(|p| node_hash(&p[0], &p[1])).collect();
            levels.push(next);
        }
        TileTree { levels }
    }
}

/// A multiply-rotate hasher for [`TileId`] keys. Every proof element is a cache lookup, and
/// SipHash cost more than the rest of the lookup (measured: about 4 % of the server's CPU in
/// bulk ingest). The keys are a few integers the caller computes, never attacker-chosen bytes
/// at scale, and the cache holds at most [`CACHE_TILES`] entries, so flooding is no concern.
#[derive(Debug, Default, Clone, Copy)]
struct TileIdHasher(u64);

impl TileIdHasher {
    fn mix(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(26) ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl Hasher for TileIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.mix(u64::from(v));
    }
    fn write_u16(&mut self, v: u16) {
        self.mix(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }
    fn finish(&self) -> u64 {
        // Fold the high bits down: hashbrown takes its bucket from the low bits.
        self.0 ^ (self.0 >> 29)
    }
}

/// Reads `node(height, index)` from the tiles of a tree of `size` leaves.
#[derive(Debug)]
pub struct TileHashes<F> {
    fetch: F,
    size: TreeSize,
    cache: HashMap<TileId, TileTree, BuildHasherDefault<TileIdHasher>>,
}

impl<F, E> TileHashes<F>
where
    F: FnMut(TileId) -> Result<Vec<u8>, E>,
{
    /// `fetch(tile)` returns the bytes of that tile (at exactly the width asked for).
    pub fn new(size: TreeSize, fetch: F) -> Self {
        TileHashes { fetch, size, cache: HashMap::default() }
    }

    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// Moves to a larger tree of the same log. Cached tiles stay valid: a tile's contents are
    /// fixed by its level, index and width.
    pub fn grow(&mut self, size: TreeSize) {
        if size > self.size {
            self.size = size;
        }
    }

    fn tile_tree(&mut self, tile: TileId) -> Result<&TileTree, TileSourceError<E>> {
        if !self.cache.contains_key(&tile) {
            let bytes = (self.fetch)(tile).map_err(|source| TileSourceError::Fetch { tile, source })?;
            let hashes = tile::decode_hash_tile(&bytes, tile.width)
                .map_err(|source| TileSourceError::Data { tile, source })?;
            if self.cache.len() >= CACHE_TILES {
                self.cache.clear();
            }
            self.cache.insert(tile, TileTree::new(hashes));
        }
        self.cache.get(&tile).ok_or(TileSourceError::Data {
            tile,
            source: TileDataError::TileLength { len: 0, width: tile.width },
        })
    }

    /// The decoded hashes of `tile`, fetched once.
    pub fn tile(&mut self, tile: TileId) -> Result<&[Hash], TileSourceError<E>> {
        Ok(self.tile_tree(tile)?.levels.first().map(Vec::as_slice).unwrap_or(&[]))
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
        let Some(last) = first.checked_add((1u64 << sub) - 1) else { return Err(out()) };
        let Some(tile) = tile::tile_for_hash(level, last, self.size) else { return Err(out()) };
        let tree = self.tile_tree(tile)?;
        let pos = ((first % tile::TILE_WIDTH) >> sub) as usize;
        tree.levels.get(usize::from(sub)).and_then(|l| l.get(pos)).copied().ok_or_else(out)
    }
}
