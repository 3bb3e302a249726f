//! The committed tree's right edge, and the pure step both writers share: given the edge and
//! new entries, every tile and bundle the append creates, as `(path, bytes)`.
//!
//! Every path an extension writes lies beyond the tree it started from: full tiles and bundles
//! that complete only now, and partial ones under widths new to the new size. So nothing the
//! committed tree refers to is ever written again, on any backend.

use std::io;

use graven_core::hash::{Hash, TreeSize, leaf_hash};
use graven_core::merkle::RightEdge;
use graven_core::tile::{self, BundleId, MAX_ENTRY_SIZE, TILE_HEIGHT, TILE_WIDTH, TileId};
use graven_core::tile_source::{TileHashes, TileSourceError};

use crate::error::LogError;
use crate::writer::{MAX_BUNDLE_BYTES, MAX_TILE_BYTES};

/// What an append needs of the committed tree besides full tiles: everything at its right edge.
#[derive(Debug, Clone)]
pub(crate) struct Tail {
    pub(crate) size: TreeSize,
    edge: RightEdge,
    /// Per level, the hashes of the partial tile (empty when the level's tiles are all full).
    pending: Vec<Vec<Hash>>,
    /// The partial bundle's bytes.
    bundle: Vec<u8>,
}

/// The files an append creates, and what it computed.
#[derive(Debug)]
pub(crate) struct Extension {
    /// Relative path (`tile/0/001`, `tile/entries/001.p/7`) and contents, bundles before the
    /// hash tiles that cover them.
    pub(crate) writes: Vec<(String, Vec<u8>)>,
    pub(crate) leaf_hashes: Vec<Hash>,
    pub(crate) root: Hash,
    /// The tail of the new tree.
    pub(crate) tail: Tail,
}

impl Tail {
    /// The tail of the empty tree.
    pub(crate) fn empty() -> Self {
        Tail { size: TreeSize(0), edge: RightEdge::new(), pending: Vec::new(), bundle: Vec::new() }
    }

    /// Reads the right edge, partial tiles and partial bundle of the tree of `size` through
    /// `read` (a relative path and a byte limit), and checks that they reproduce `root`.
    pub(crate) fn load(
        size: TreeSize,
        root: Hash,
        read: &dyn Fn(&str, u64) -> io::Result<Vec<u8>>,
    ) -> Result<Tail, LogError> {
        let mut src = TileHashes::new(size, |t: TileId| read(&t.path(), MAX_TILE_BYTES));
        let tiles_err = |e: TileSourceError<io::Error>| LogError::Tiles(e.to_string());
        let edge = RightEdge::from_source(&mut src, size).map_err(tiles_err)?;
        if edge.root() != root {
            return Err(LogError::RootMismatch);
        }
        let mut pending: Vec<Vec<Hash>> = Vec::new();
        for level in 0..=tile::MAX_LEVEL {
            let n = tile::hashes_at_level(size, level);
            if n == 0 {
                break;
            }
            let width = n % TILE_WIDTH;
            let hashes = if width == 0 {
                Vec::new()
            } else {
                let t = TileId { level, index: n / TILE_WIDTH, width: width as u16 };
                src.tile(t).map_err(tiles_err)?.to_vec()
            };
            pending.push(hashes);
        }
        let mut bundle = Vec::new();
        let bundle_len = size.0 % TILE_WIDTH;
        if bundle_len != 0 {
            let b = BundleId { index: size.0 / TILE_WIDTH, width: bundle_len as u16 };
            bundle = read(&b.path(), MAX_BUNDLE_BYTES).map_err(|e| LogError::Tiles(format!("{b}: {e}")))?;
            tile::decode_bundle(&bundle, b.width).map_err(|e| LogError::Tiles(format!("{b}: {e}")))?;
        }
        Ok(Tail { size, edge, pending, bundle })
    }

    /// Appends `entries`: the new tiles and bundles, leaf hashes and root. Pure; entries over
    /// the size limit are refused before anything is computed.
    pub(crate) fn extend<E: AsRef<[u8]>>(self, entries: &[E]) -> Result<Extension, LogError> {
        if let Some((index, e)) = entries.iter().enumerate().find(|(_, e)| e.as_ref().len() > MAX_ENTRY_SIZE)
        {
            return Err(LogError::EntryTooLarge { index, len: e.as_ref().len() });
        }
        let old = self.size;
        let Tail { mut edge, mut pending, mut bundle, .. } = self;
        let mut dirty = vec![false; pending.len()];
        let mut bundle_len = old.0 % TILE_WIDTH;
        let mut writes: Vec<(String, Vec<u8>)> = Vec::new();
        let mut tiles: Vec<(String, Vec<u8>)> = Vec::new();
        let mut completed: Vec<(u8, u64, Hash)> = Vec::with_capacity(8);
        let mut leaf_hashes = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let e = e.as_ref();
            let index = old.0 + i as u64;
            tile::push_bundle_entry(&mut bundle, e)
                .map_err(|_| LogError::EntryTooLarge { index: i, len: e.len() })?;
            bundle_len += 1;
            if bundle_len == TILE_WIDTH {
                let b = BundleId { index: index / TILE_WIDTH, width: 256 };
                writes.push((b.path(), std::mem::take(&mut bundle)));
                bundle_len = 0;
            }
            completed.clear();
            let leaf = leaf_hash(e);
            leaf_hashes.push(leaf);
            edge.push(leaf, |height, idx, h| {
                if height % TILE_HEIGHT == 0 {
                    completed.push((height / TILE_HEIGHT, idx, *h));
                }
            });
            for &(level, idx, h) in &completed {
                let level = usize::from(level);
                while pending.len() <= level {
                    pending.push(Vec::new());
                    dirty.push(false);
                }
                let p = &mut pending[level];
                if idx % TILE_WIDTH != p.len() as u64 {
                    return Err(LogError::Invariant("tile position out of step with the tree"));
                }
                p.push(h);
                dirty[level] = true;
                if p.len() as u64 == TILE_WIDTH {
                    let t = TileId::full(level as u8, idx / TILE_WIDTH);
                    tiles.push((t.path(), tile::encode_hash_tile(p)));
                    p.clear();
                }
            }
        }
        let new = edge.size();
        // Partial tiles and bundle of the new size, under names new to this size (the width is
        // part of the name).
        for (level, p) in pending.iter().enumerate() {
            if p.is_empty() || !dirty[level] {
                continue;
            }
            let n = tile::hashes_at_level(new, level as u8);
            let t = TileId { level: level as u8, index: n / TILE_WIDTH, width: (n % TILE_WIDTH) as u16 };
            if usize::from(t.width) != p.len() {
                return Err(LogError::Invariant("partial tile width out of step with the tree"));
            }
            tiles.push((t.path(), tile::encode_hash_tile(p)));
        }
        if bundle_len != 0 && new != old {
            let b = BundleId { index: new.0 / TILE_WIDTH, width: bundle_len as u16 };
            writes.push((b.path(), bundle.clone()));
        }
        writes.append(&mut tiles);
        let root = edge.root();
        Ok(Extension { writes, leaf_hashes, root, tail: Tail { size: new, edge, pending, bundle } })
    }
}
