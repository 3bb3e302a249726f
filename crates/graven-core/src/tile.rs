//! C2SP `tlog-tiles`: tile and entry-bundle paths, their encodings, and which of them a tree
//! of a given size consists of.
//!
//! A hash tile at level `L` holds up to 256 consecutive hashes of perfect subtrees of height
//! `8 * L` (level 0: leaf hashes). A full tile is at `tile/<L>/<N>`; the tile that holds the
//! last `W < 256` hashes of a level is at `tile/<L>/<N>.p/<W>`. Entry bundles mirror level 0 at
//! `tile/entries/<N>[.p/<W>]`, each entry prefixed by its length as a big-endian `u16`.

use crate::hash::{Hash, TreeSize};

/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// Tree levels spanned by one tile: `2^TILE_HEIGHT == TILE_WIDTH`.
pub const TILE_HEIGHT: u8 = 8;
/// Highest tile level a path may name (C2SP: `L` is at most 63).
pub const MAX_LEVEL: u8 = 63;
/// Longest entry a bundle can hold: its length prefix is a `u16`.
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;
/// Longest path [`parse_path`] looks at. The longest valid path is well under 64 bytes.
pub const MAX_PATH_LEN: usize = 128;

/// A hash tile: `width` hashes starting at hash `index * 256` of `level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
    /// 1..=256; 256 is a full tile.
    pub width: u16,
}

/// An entry bundle: `width` entries starting at entry `index * 256`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId {
    pub index: u64,
    /// 1..=256; 256 is a full bundle.
    pub width: u16,
}

/// Any path of a tiled log's read API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlogPath {
    Checkpoint,
    Tile(TileId),
    Entries(BundleId),
}

/// Why a path was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    #[error("not a tiled-log path: expected checkpoint, tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")]
    Shape,
    #[error("tile level must be a decimal number 0..=63 without leading zeroes")]
    Level,
    #[error(
        "tile index must be 3-digit groups, all but the last prefixed with 'x', without a leading zero group"
    )]
    Index,
    #[error("tile index does not fit in 64 bits")]
    Overflow,
    #[error("partial width must be a decimal number 1..=255 without leading zeroes")]
    Width,
}

fn encode_index(mut n: u64) -> String {
    let mut groups = Vec::new();
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let mut s = String::with_capacity(groups.len() * 5);
    for (i, g) in groups.iter().rev().enumerate() {
        if i > 0 {
            s.push('/');
        }
        if i + 1 < groups.len() {
            s.push('x');
        }
        s.push_str(&format!("{g:03}"));
    }
    s
}

fn width_suffix(width: u16) -> String {
    if u64::from(width) >= TILE_WIDTH { String::new() } else { format!(".p/{width}") }
}

impl TileId {
    pub fn full(level: u8, index: u64) -> Self {
        TileId { level, index, width: 256 }
    }
    pub fn is_full(&self) -> bool {
        self.width == 256
    }
    pub fn path(&self) -> String {
        format!("tile/{}/{}{}", self.level, encode_index(self.index), width_suffix(self.width))
    }
    /// The same tile with all 256 hashes, where a partial tile may be found once it has filled.
    pub fn as_full(&self) -> Self {
        TileId::full(self.level, self.index)
    }
}

impl BundleId {
    pub fn is_full(&self) -> bool {
        self.width == 256
    }
    pub fn path(&self) -> String {
        format!("tile/entries/{}{}", encode_index(self.index), width_suffix(self.width))
    }
    pub fn as_full(&self) -> Self {
        BundleId { index: self.index, width: 256 }
    }
    /// Index of the first entry in this bundle.
    pub fn first_entry(&self) -> u64 {
        self.index * TILE_WIDTH
    }
}

impl std::fmt::Display for TileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path())
    }
}

impl std::fmt::Display for BundleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path())
    }
}

/// Parses a path relative to the log's prefix. Never panics; rejects every non-canonical form
/// (leading zeroes, `x000` groups, empty segments, traversal, non-ASCII digits) so that one
/// tile has exactly one name.
pub fn parse_path(path: &str) -> Result<TlogPath, PathError> {
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if path == "checkpoint" {
        return Ok(TlogPath::Checkpoint);
    }
    let rest = path.strip_prefix("tile/").ok_or(PathError::Shape)?;
    let (level, index) = rest.split_once('/').ok_or(PathError::Shape)?;
    if level == "entries" {
        let (index, width) = parse_index(index)?;
        return Ok(TlogPath::Entries(BundleId { index, width }));
    }
    Ok(TlogPath::Tile(parse_tile(level, index)?))
}

/// Parses the `<L>` and `<N>[.p/<W>]` parts of a hash-tile path.
pub fn parse_tile(level: &str, index: &str) -> Result<TileId, PathError> {
    let level = parse_decimal(level, 2).ok_or(PathError::Level)?;
    if level > u64::from(MAX_LEVEL) {
        return Err(PathError::Level);
    }
    let (index, width) = parse_index(index)?;
    Ok(TileId { level: level as u8, index, width })
}

/// Parses `<N>[.p/<W>]`.
fn parse_index(s: &str) -> Result<(u64, u16), PathError> {
    let (n, width) = match s.split_once(".p/") {
        Some((n, w)) => {
            let w = parse_decimal(w, 3).ok_or(PathError::Width)?;
            if !(1..TILE_WIDTH).contains(&w) {
                return Err(PathError::Width);
            }
            (n, w as u16)
        }
        None => (s, 256),
    };
    let groups: Vec<&str> = n.split('/').collect();
    // u64::MAX has 20 digits: at most 7 groups.
    if groups.len() > 7 {
        return Err(PathError::Overflow);
    }
    let mut value: u64 = 0;
    for (i, g) in groups.iter().enumerate() {
        let last = i + 1 == groups.len();
        let digits = if last { *g } else { g.strip_prefix('x').ok_or(PathError::Index)? };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PathError::Index);
        }
        let d = u64::from(digits.parse::<u16>().map_err(|_| PathError::Index)?);
        if i == 0 && !last && d == 0 {
            return Err(PathError::Index);
        }
        value = value.checked_mul(1000).and_then(|v| v.checked_add(d)).ok_or(PathError::Overflow)?;
    }
    Ok((value, width))
}

/// ASCII decimal with at most `max_len` digits and no leading zero.
fn parse_decimal(s: &str, max_len: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// Number of stored hashes at tile `level` for a tree of `size` leaves.
pub fn hashes_at_level(size: TreeSize, level: u8) -> u64 {
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    if shift >= 64 { 0 } else { size.0 >> shift }
}

/// The tile at `level` that holds stored hash `entry` in a tree of `size` leaves.
/// `None` if the tree has no such hash.
pub fn tile_for_hash(level: u8, entry: u64, size: TreeSize) -> Option<TileId> {
    let n = hashes_at_level(size, level);
    if entry >= n {
        return None;
    }
    let index = entry / TILE_WIDTH;
    let width = (n - index * TILE_WIDTH).min(TILE_WIDTH) as u16;
    Some(TileId { level, index, width })
}

/// The bundle holding entry `entry` in a tree of `size` leaves.
pub fn bundle_for_entry(entry: u64, size: TreeSize) -> Option<BundleId> {
    tile_for_hash(0, entry, size).map(|t| BundleId { index: t.index, width: t.width })
}

/// Every hash tile of a tree of `size` leaves, level by level, left to right.
pub fn tiles_for_size(size: TreeSize) -> impl Iterator<Item = TileId> {
    (0..=MAX_LEVEL)
        .map(move |level| (level, hashes_at_level(size, level)))
        .take_while(|&(_, n)| n > 0)
        .flat_map(|(level, n)| {
            let tiles = n.div_ceil(TILE_WIDTH);
            (0..tiles).map(move |index| TileId {
                level,
                index,
                width: (n - index * TILE_WIDTH).min(TILE_WIDTH) as u16,
            })
        })
}

/// Every entry bundle of a tree of `size` leaves, left to right.
pub fn bundles_for_size(size: TreeSize) -> impl Iterator<Item = BundleId> {
    tiles_for_size(size).take_while(|t| t.level == 0).map(|t| BundleId { index: t.index, width: t.width })
}

/// Why tile or bundle bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileDataError {
    #[error("hash tile is {len} bytes; a tile of width {width} is {} bytes", usize::from(*width) * 32)]
    TileLength { len: usize, width: u16 },
    #[error("entry bundle ends inside entry {entry} (a length prefix or its data is cut short)")]
    Truncated { entry: usize },
    #[error("entry bundle has {found} entries, expected {width}")]
    Count { found: usize, width: u16 },
    #[error("entry bundle has {extra} bytes after its last entry")]
    TrailingData { extra: usize },
    #[error("entry of {0} bytes is longer than the 65535-byte limit of a bundle")]
    EntryTooLarge(usize),
}

/// Decodes a hash tile of exactly `width` hashes.
pub fn decode_hash_tile(bytes: &[u8], width: u16) -> Result<Vec<Hash>, TileDataError> {
    if bytes.len() != usize::from(width) * 32 {
        return Err(TileDataError::TileLength { len: bytes.len(), width });
    }
    Ok(bytes.chunks_exact(32).filter_map(|c| Hash::from_slice(c).ok()).collect())
}

/// Encodes hashes as a tile.
pub fn encode_hash_tile(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

/// Decodes an entry bundle holding exactly `width` entries. The entries borrow from `bytes`.
pub fn decode_bundle(bytes: &[u8], width: u16) -> Result<Vec<&[u8]>, TileDataError> {
    let mut entries = Vec::with_capacity(usize::from(width));
    let mut rest = bytes;
    while !rest.is_empty() {
        if entries.len() == usize::from(width) {
            return Err(TileDataError::TrailingData { extra: rest.len() });
        }
        let entry = entries.len();
        let (len, tail) = match rest {
            [a, b, tail @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), tail),
            _ => return Err(TileDataError::Truncated { entry }),
        };
        let data = tail.get(..len).ok_or(TileDataError::Truncated { entry })?;
        entries.push(data);
        rest = &tail[len..];
    }
    if entries.len() != usize::from(width) {
        return Err(TileDataError::Count { found: entries.len(), width });
    }
    Ok(entries)
}

/// Appends one entry, length-prefixed, to a bundle being built.
pub fn push_bundle_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), TileDataError> {
    let len = u16::try_from(entry.len()).map_err(|_| TileDataError::EntryTooLarge(entry.len()))?;
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}
