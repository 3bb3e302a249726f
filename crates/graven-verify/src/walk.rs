//! The streaming walk over a log's bundles: hash each entry, grow the right edge, compare
//! every completed subtree at a tile boundary with its stored hash, compare the root.
//!
//! A walk starts at 0 (first use, or [`Mode::Full`]) or at the remembered size (incremental).
//! Either way it first settles how the presented checkpoint relates to the remembered one.

use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::hash::{Hash, TreeSize, leaf_hash};
use graven_core::merkle::RightEdge;
use graven_core::tile::{self, MAX_LEVEL, TILE_HEIGHT, TILE_WIDTH, TileDataError, TileId};

use graven_core::tile_source::TileHashes;

use crate::error::{Divergence, VerifyError, VisitError};
use crate::fetch::Fetch;
use crate::files::{decode_bundle_prefix, fetch_bundle, fetch_tile, from_tile_source};
use crate::report::{Mode, Report, Trust};

/// The tile currently being compared at one level.
struct LevelCursor {
    tile: TileId,
    hashes: Vec<Hash>,
}

/// Where the walk over the bundles begins, and what it must meet on the way.
struct Start {
    edge: RightEdge,
    cursors: Vec<Option<LevelCursor>>,
    /// A full walk past a remembered size checks the rebuilt root there too.
    check_at: Option<(TreeSize, Hash)>,
}

/// Roots the walk rebuilt at chosen sizes on its way: those of the checkpoints that time-stamp
/// tokens stamp, so each can be held to the tree the walk verified.
#[derive(Debug, Default)]
pub(crate) struct Capture {
    /// In increasing order; sizes the walk does not pass (at or below where it starts, or beyond
    /// the checkpoint) get no root.
    pub sizes: Vec<u64>,
    pub roots: Vec<(u64, Hash)>,
}

/// Called with each entry the walk hashed (from the remembered size on), after the tiles
/// covering it were compared.
pub(crate) type Visitor<'a> = dyn FnMut(&VerifiedCheckpoint, u64, &[u8]) -> Result<(), VisitError> + 'a;

pub(crate) fn check<F: Fetch>(
    f: &mut F,
    cp: &VerifiedCheckpoint,
    trusted: Option<&VerifiedCheckpoint>,
    mode: Mode,
    progress: impl FnMut(u64, u64),
    visit: &mut Visitor<'_>,
    capture: &mut Capture,
) -> Result<Report, VerifyError> {
    let size = cp.size();
    let mut report = Report {
        origin: cp.checkpoint().origin().to_owned(),
        size,
        root: cp.root(),
        bundles: 0,
        tiles: 0,
        entry_bytes: 0,
        entries_hashed: 0,
        previous_size: trusted.map(VerifiedCheckpoint::size),
        trust: if trusted.is_some() { Trust::Consistent } else { Trust::FirstUse },
        mode: Mode::Full,
    };
    let Some(old) = trusted else {
        let start = Start { edge: RightEdge::new(), cursors: Vec::new(), check_at: None };
        walk(f, cp, None, start, &mut report, progress, visit, capture)?;
        return Ok(report);
    };
    if old.checkpoint().origin() != cp.checkpoint().origin() {
        return Err(VerifyError::TrustedOrigin {
            remembered: old.checkpoint().origin().to_owned(),
            expected: cp.checkpoint().origin().to_owned(),
        });
    }
    let diverged = |root_at_remembered_size| {
        Box::new(Divergence { remembered: old.clone(), presented: cp.clone(), root_at_remembered_size })
    };
    let m = old.size();
    if size < m {
        return Err(VerifyError::Rollback(diverged(None)));
    }
    if size == m {
        if cp.root() != old.root() {
            return Err(VerifyError::Fork(diverged(None)));
        }
        if mode == Mode::Incremental {
            // The very tree already verified: nothing new to fetch.
            report.mode = Mode::Incremental;
            return Ok(report);
        }
        let start = Start { edge: RightEdge::new(), cursors: Vec::new(), check_at: None };
        walk(f, cp, Some(old), start, &mut report, progress, visit, capture)?;
        return Ok(report);
    }

    // Consistency, from the new tree's own tiles: the perfect subtrees that make up the
    // remembered tree must hash to the remembered root. Any tree that does not extend it
    // fails here (short of a SHA-256 collision), whoever signed it.
    let mut fetched = 0u64;
    let mut hashes = TileHashes::new(size, |t| {
        fetched += 1;
        fetch_tile(f, t, size)
    });
    let edge = RightEdge::from_source(&mut hashes, m).map_err(from_tile_source)?;
    if edge.root() != old.root() {
        return Err(VerifyError::Fork(diverged(Some(edge.root()))));
    }
    let start = match mode {
        Mode::Full => Start { edge: RightEdge::new(), cursors: Vec::new(), check_at: Some((m, old.root())) },
        Mode::Incremental => {
            // The tiles that hold the old right edge (one per level at most) are the first
            // ones the walk needs at each level: keep them rather than fetch them again.
            let mut cursors = Vec::new();
            for level in 0..=MAX_LEVEL {
                let n = tile::hashes_at_level(m, level);
                if n == 0 {
                    break;
                }
                cursors.push(None);
                if n.is_multiple_of(TILE_WIDTH) {
                    continue;
                }
                if let Some(t) = tile::tile_for_hash(level, n - 1, size) {
                    let hashes = hashes.tile(t).map_err(from_tile_source)?.to_vec();
                    cursors[usize::from(level)] = Some(LevelCursor { tile: t, hashes });
                }
            }
            report.mode = Mode::Incremental;
            Start { edge, cursors, check_at: None }
        }
    };
    drop(hashes);
    report.tiles += fetched;
    walk(f, cp, Some(old), start, &mut report, progress, visit, capture)?;
    Ok(report)
}

/// Walks the bundles from `start.edge.size()` to the checkpoint's size.
#[allow(clippy::too_many_arguments)]
fn walk<F: Fetch>(
    f: &mut F,
    cp: &VerifiedCheckpoint,
    old: Option<&VerifiedCheckpoint>,
    start: Start,
    report: &mut Report,
    mut progress: impl FnMut(u64, u64),
    visit: &mut Visitor<'_>,
    capture: &mut Capture,
) -> Result<(), VerifyError> {
    let size = cp.size();
    let Start { mut edge, mut cursors, check_at } = start;
    let from = edge.size().0;
    let mut next_capture = capture.sizes.partition_point(|s| *s <= from);
    // Nodes completed by the last push whose stored copy must be compared: (level, index, hash).
    let mut completed: Vec<(u8, u64, Hash)> = Vec::with_capacity(8);

    let last_bundle = size.0.div_ceil(TILE_WIDTH);
    for bundle_index in from / TILE_WIDTH..last_bundle {
        let Some(b) = tile::bundle_for_entry(bundle_index * TILE_WIDTH, size) else { break };
        let held = cursors.first().and_then(|c| c.as_ref()).map(|c| c.tile);
        f.prefetch(&upcoming(bundle_index, last_bundle, size, held));
        let (bytes, bundle_path) = fetch_bundle(f, b, size)?;
        let entries = decode_bundle_prefix(&bytes, b.width)
            .map_err(|source| VerifyError::Data { path: bundle_path.clone(), source })?;
        report.bundles += 1;
        report.entry_bytes += bytes.len() as u64;
        report.entries_hashed += entries.len() as u64;
        for (i, entry) in entries.iter().enumerate() {
            let index = b.first_entry() + i as u64;
            let computed = leaf_hash(entry);
            if index < from {
                // An older entry in the bundle at the remembered edge: its leaf hash is in the
                // level-0 tile whose hashes the remembered root already vouched for.
                let stored = stored_hash(f, &mut cursors, report, 0, index, size)?;
                if stored != computed {
                    return Err(leaf_mismatch(index, bundle_path, computed, stored, size));
                }
                continue;
            }
            completed.clear();
            edge.push(computed, |height, idx, h| {
                if height % TILE_HEIGHT == 0 {
                    completed.push((height / TILE_HEIGHT, idx, *h));
                }
            });
            for &(level, idx, computed) in &completed {
                let stored = stored_hash(f, &mut cursors, report, level, idx, size)?;
                if stored == computed {
                    continue;
                }
                if level == 0 {
                    return Err(leaf_mismatch(index, bundle_path, computed, stored, size));
                }
                let tile = tile::tile_for_hash(level, idx, size).map(|t| t.path()).unwrap_or_default();
                let span = 1u64 << (u32::from(level) * u32::from(TILE_HEIGHT));
                return Err(VerifyError::TileMismatch {
                    tile,
                    position: idx % TILE_WIDTH,
                    first_leaf: idx * span,
                    end_leaf: (idx + 1) * span,
                });
            }
            if let (Some((m, root)), Some(old)) = (check_at, old)
                && edge.size() == m
                && edge.root() != root
            {
                return Err(VerifyError::Fork(Box::new(Divergence {
                    remembered: old.clone(),
                    presented: cp.clone(),
                    root_at_remembered_size: Some(edge.root()),
                })));
            }
            while capture.sizes.get(next_capture) == Some(&edge.size().0) {
                capture.roots.push((edge.size().0, edge.root()));
                next_capture += 1;
            }
            visit(cp, index, entry).map_err(|e| VerifyError::Visit { index, message: e.0 })?;
        }
        progress(b.first_entry() + u64::from(b.width), size.0);
    }
    let computed = edge.root();
    if computed != cp.root() {
        if from > 0 {
            return Err(VerifyError::ExtendedRootMismatch {
                from,
                size: size.0,
                claimed: cp.root(),
                computed,
            });
        }
        return Err(VerifyError::RootMismatch { size: size.0, claimed: cp.root(), computed });
    }
    Ok(())
}

/// How many bundles ahead of the walk their files are named to [`Fetch::prefetch`].
const HINT_BUNDLES: u64 = 32;

/// The files the walk reads next, in the order it reads them: each bundle from `bundle_index`
/// on, then, for a full bundle, the level-0 tile of its hashes unless it is `held` (compared once the bundle is
/// hashed; a partial bundle's hashes are checked through the root instead, so its tile is not
/// read and not named).
fn upcoming(bundle_index: u64, last_bundle: u64, size: TreeSize, held: Option<TileId>) -> Vec<(String, u64)> {
    let end = last_bundle.min(bundle_index.saturating_add(HINT_BUNDLES));
    let mut out = Vec::with_capacity(2 * (end - bundle_index.min(end)) as usize);
    for i in bundle_index..end {
        let first = i * TILE_WIDTH;
        let Some(b) = tile::bundle_for_entry(first, size) else { break };
        out.push((b.path(), crate::fetch::MAX_BUNDLE_BYTES));
        // The level-0 tile the walk already holds (the remembered edge's) is not read again.
        if let Some(t) = tile::tile_for_hash(0, first, size).filter(|t| b.is_full() && Some(*t) != held) {
            out.push((t.path(), crate::fetch::MAX_TILE_BYTES));
        }
    }
    out
}

fn leaf_mismatch(index: u64, bundle: String, computed: Hash, stored: Hash, size: TreeSize) -> VerifyError {
    let tile = tile::tile_for_hash(0, index, size).map(|t| t.path()).unwrap_or_default();
    VerifyError::LeafMismatch { index, bundle, tile, computed, stored }
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
