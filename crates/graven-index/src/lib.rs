//! Graven's search index: the data behind
//! `GET /v1/events?actor=&action=&resource=&outcome=&since=&until=&limit=&cursor=&order=`.
//!
//! The index is **derived data**. It is built from the log's entries (the RFC 8785 canonical JSON of each
//! event), can be deleted and rebuilt from the log at any time, and is never the source of truth. It
//! lives in one [redb](https://docs.rs/redb) file.
//!
//! # Blocks
//!
//! Log indices are grouped into blocks of 4096 consecutive entries: block `b` holds `b * 4096 ..
//! (b + 1) * 4096`, and an entry is addressed inside its block by a `u16` offset. Everything is stored
//! per block, so indexing costs a few B-tree writes per block (per distinct value), not per entry. The
//! last block may be partial; while it fills, each `add` rewrites its record and the postings of the values
//! it added to (the writer keeps the partial block in memory between calls, and reloads it from its
//! record after a reopen).
//!
//! # Tables
//!
//! * `state: &str -> &[u8]`: `size` (entries `0..size` are indexed, u64 BE), `clock` (the largest
//!   `logged_at` seen, a packed time as u128 BE), `monotonic` (whether `logged_at` has never gone
//!   backwards), `format`, `block_len` (entries per block, u64 BE).
//! * `blocks: u64 -> &[u8]`: per block, its record (layout in `block.rs`): the number of entries, the
//!   clock before its first entry, one column per field holding each entry's value as an id into the
//!   block's dictionary of distinct full (untruncated) values, one column of each entry's own `logged_at`
//!   packed into 10 bytes (20 BCD digits plus one; 0 when absent, so byte order is time order), and the
//!   four dictionaries. Used to post-filter candidates and to locate `since`/`until` inside a block.
//! * `clocks: u64 -> u128`: per block, the clock (running maximum of `logged_at`) after its last entry;
//!   non-decreasing, binary-searched to turn `since`/`until` into a block.
//! * `postings: (u8, &str, u64) -> &[u8]`: per field (0 actor, 1 action, 2 resource, 3 outcome), value
//!   key and block, the offsets of the block's entries holding that value: ascending `u16`s, or a
//!   512-byte bitmap when that is smaller.
//! * `counts: (u8, &str) -> u64`: how many entries of the complete blocks hold each value key, to pick
//!   the most selective filter. A block is counted when it fills up, so adds that end mid-block write no
//!   counts; searches add the value's entries in the partial last block from its posting.
//!
//! # Durability
//!
//! [`Index::add`] commits without fsync (redb `Durability::None`) unless the last durable commit is at
//! least [`AUTO_FLUSH`] old; [`Index::flush`] (and [`Index::add_durable`]) make everything durable.
//! Searches see every commit at once. After a crash, redb reopens the file at its last durable commit,
//! atomic and consistent, so `indexed_size()` may be smaller than before the crash and the caller
//! re-indexes from there (exactly what it does on every start). redb frees the pages of replaced data
//! only at durable commits, which is one more reason to flush now and then (at least every few seconds
//! while indexing continuously, and at the end of a catch-up).
//!
//! # Extraction
//!
//! Indexed fields are `actor.id`, `action`, `resource.id`, `outcome` (strings) and `logged_at` (a string
//! in the fixed 27-character format `YYYY-MM-DDTHH:MM:SS.ffffffZ`). An entry that is not a JSON object
//! has no fields; a field that is missing or has another JSON type (or a `logged_at` in another format)
//! is absent. An absent field never matches a filter on it, and a missing `logged_at` never matches a
//! `since` or `until`. Such entries still count as indexed. Each entry is parsed once, by a single-pass
//! scanner for the common subset of JSON (no escapes in strings, shallow nesting), which defers to
//! serde_json for anything else (see `event.rs`).
//!
//! # Long values
//!
//! Values longer than [`MAX_KEY_BYTES`] are indexed under a truncated key (the longest prefix of at most
//! `MAX_KEY_BYTES` bytes that ends on a character boundary); values sharing a truncated key share its
//! postings. The full value is kept in the block's dictionary, and every query that could be affected by
//! truncation (a filter value long enough to collide with a truncated key) is post-filtered against it,
//! so truncation only costs speed, never correctness.
//!
//! # Searching
//!
//! One filter drives the scan: the one whose value key is held by the fewest entries (from `counts`).
//! Its postings within the index range are visited block by block in the requested order, so blocks
//! without the value are never read; each candidate is checked against the remaining filters and the
//! time bounds using its block's record (each filter value is looked up once per block in the
//! dictionary, then compared as an id). Without field filters every entry of the range is a candidate.
//! `since` narrows the index range by binary search over the running maximum of `logged_at` (blocks'
//! end clocks, then the entries of one block; sound even if timestamps went backwards); `until` narrows
//! it the same way only while the log's timestamps have never gone backwards, which the server
//! guarantees. Every candidate is post-filtered on time, so results are exact either way. At most
//! [`MAX_SCAN`] candidates are examined per call; when the budget runs out first, the page holds what was
//! found and a cursor to continue from. Cursors hold a log index (see `cursor.rs`), so they stay valid
//! across rebuilds.
//!
//! # Concurrency
//!
//! `Index` is `Send + Sync`: searches run on read snapshots concurrently with `add`; `add`, `flush` and
//! `clear` calls are serialized. redb allows one open handle per file per process; opening the same file
//! twice fails with [`IndexError::Storage`].

mod block;
mod cursor;
mod event;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};

use crate::block::{Builder, Time, View};

/// Page size when [`Query::limit`] is 0.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest accepted [`Query::limit`].
pub const MAX_LIMIT: usize = 1000;
/// Candidates examined per [`Index::search`] call at most.
pub const MAX_SCAN: usize = 100_000;
/// Field values longer than this many bytes are indexed under a truncated key (see the crate docs).
pub const MAX_KEY_BYTES: usize = 1024;
/// [`Index::add`] makes its commit durable when the last durable commit is at least this old.
pub const AUTO_FLUSH: Duration = Duration::from_secs(1);

/// A value this long or shorter cannot equal a truncated key: truncation at a character boundary removes
/// at most 3 bytes from `MAX_KEY_BYTES`, so truncated keys are longer than this.
const EXACT_KEY_BYTES: usize = MAX_KEY_BYTES - 4;

/// Distinct value keys whose count deltas an `add` holds in memory before writing them out.
const MAX_PENDING_COUNTS: usize = 16 * 1024;

/// Log entries per block.
const BLOCK_LEN: u64 = block::MAX_BLOCK as u64;

/// Bumped whenever the on-disk layout changes; an index in another format is cleared on open.
const FORMAT: &[u8] = b"graven-index/2";
/// redb's page cache. The index is streamed, never loaded whole; this bounds its memory use.
const CACHE_BYTES: usize = 256 * 1024 * 1024;

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const CLOCKS: TableDefinition<u64, u128> = TableDefinition::new("clocks");
const POSTINGS: TableDefinition<(u8, &str, u64), &[u8]> = TableDefinition::new("postings");
const COUNTS: TableDefinition<(u8, &str), u64> = TableDefinition::new("counts");

const K_SIZE: &str = "size";
const K_CLOCK: &str = "clock";
const K_MONOTONIC: &str = "monotonic";
const K_FORMAT: &str = "format";
const K_BLOCK_LEN: &str = "block_len";

/// Errors from the index.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The redb file could not be opened, read or written.
    #[error("index storage error: {0}")]
    Storage(#[from] redb::Error),
    /// [`Index::add`] was called with a gap after the indexed entries.
    #[error("index entries must be added in order: expected first index {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
    /// The cursor is malformed, or was issued for another order or other filters.
    #[error("invalid cursor: malformed, or issued for a different order or different filters")]
    BadCursor,
    /// A query parameter is out of range or malformed.
    #[error("bad query: {0}")]
    BadQuery(&'static str),
    /// The index file holds data this code did not write. The index is derived data: delete it (or
    /// [`Index::clear`]) and rebuild.
    #[error("index is corrupt ({0}); clear and rebuild it")]
    Corrupt(&'static str),
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for IndexError {
            fn from(e: $t) -> Self {
                IndexError::Storage(e.into())
            }
        }
    )*};
}
storage_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Result order of [`Index::search`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Highest log index first.
    #[default]
    NewestFirst,
    /// Lowest log index first.
    OldestFirst,
}

/// A search. Every present filter must match exactly (byte-equal strings); absent filters match all.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// `actor.id`.
    pub actor: Option<String>,
    /// `action`.
    pub action: Option<String>,
    /// `resource.id`.
    pub resource: Option<String>,
    /// `outcome`.
    pub outcome: Option<String>,
    /// Inclusive lower bound on `logged_at`, format `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub since: Option<String>,
    /// Exclusive upper bound on `logged_at`, same format.
    pub until: Option<String>,
    /// `1..=MAX_LIMIT`; 0 means [`DEFAULT_LIMIT`].
    pub limit: usize,
    /// `next_cursor` of the previous page, for the same filters and order.
    pub cursor: Option<String>,
    /// Result order; a cursor only continues the order it was issued for.
    pub order: Order,
}

/// One page of results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Log indices of matching events, in the requested order.
    pub indices: Vec<u64>,
    /// Present when the scan stopped before the end of the range (page full, or scan budget spent); pass
    /// it back as [`Query::cursor`] to continue. A page may be short or even empty and still have one.
    pub next_cursor: Option<String>,
}

/// The search index, wrapping a redb database.
pub struct Index {
    db: Database,
    /// Entries per block: [`BLOCK_LEN`], smaller in tests.
    block_len: u64,
    writer: Mutex<Writer>,
}

/// State kept between [`Index::add`] calls (which are serialized by this mutex).
struct Writer {
    /// The partial last block as of the last commit, so that appending to it needs no reload.
    /// `None` when unknown (after an error, `clear`, or on open).
    tail: Option<Builder>,
    last_durable: Instant,
    /// Scratch buffers, kept to avoid allocating per block.
    record: Vec<u8>,
    posting: Vec<u8>,
    starts: Vec<usize>,
    offsets: Vec<u16>,
    merged: Vec<u16>,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index").field("block_len", &self.block_len).finish_non_exhaustive()
    }
}

impl Index {
    /// Opens the index at `path`, creating it if missing. An index written in another on-disk format is
    /// cleared (it is derived data), so `indexed_size()` then reports 0 and the caller re-indexes.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        Self::open_with_block_len(path, BLOCK_LEN)
    }

    /// [`open`](Self::open) with another block length (a power of two up to [`BLOCK_LEN`]); tests use
    /// tiny blocks to exercise block boundaries. An index built with another block length is cleared.
    fn open_with_block_len(path: &Path, block_len: u64) -> Result<Index, IndexError> {
        debug_assert!(block_len.is_power_of_two() && block_len <= BLOCK_LEN);
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(path)?;
        let index = Index {
            db,
            block_len,
            writer: Mutex::new(Writer {
                tail: None,
                last_durable: Instant::now(),
                record: Vec::new(),
                posting: Vec::new(),
                starts: Vec::new(),
                offsets: Vec::new(),
                merged: Vec::new(),
            }),
        };
        let stamp = block_len.to_be_bytes();
        let txn = index.db.begin_write()?;
        let current = {
            let state = txn.open_table(STATE)?;
            let format = state.get(K_FORMAT)?.map(|g| g.value() == FORMAT);
            let same_blocks = state.get(K_BLOCK_LEN)?.is_some_and(|g| g.value() == stamp);
            let empty = state.is_empty()?;
            match format {
                Some(true) if same_blocks => true,
                None if empty => false,
                _ => {
                    // Written by another version of this crate: rebuild from scratch.
                    drop(state);
                    reset(&txn)?;
                    false
                }
            }
        };
        if current {
            txn.abort()?;
        } else {
            create_tables(&txn, block_len)?;
            txn.commit()?;
        }
        Ok(index)
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        // The writer's state is only trusted when consistent: `tail` is taken out during `add` and put
        // back only after a successful commit, so a panic mid-add leaves `None`.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of log entries indexed: entries `0..n`.
    pub fn indexed_size(&self) -> Result<u64, IndexError> {
        let txn = self.db.begin_read()?;
        let state = txn.open_table(STATE)?;
        read_size(&state)
    }

    /// Indexes entries `first..first+events.len()`. Must be called in order: `first` must equal
    /// [`indexed_size`](Self::indexed_size) (else [`IndexError::OutOfOrder`]), except that a call whose
    /// whole range is already indexed is a no-op returning `Ok` (idempotent re-delivery after a restart),
    /// and a call overlapping the end indexes only the new part.
    ///
    /// One redb write transaction per call. It is visible to searches at once but, for speed, **not
    /// durable** unless the last durable commit is older than [`AUTO_FLUSH`]: call
    /// [`flush`](Self::flush) to make everything durable (at the end of a catch-up, on shutdown). After
    /// a crash the index reopens, consistent, at its last durable size, and the caller re-indexes from
    /// [`indexed_size`](Self::indexed_size). Use [`add_durable`](Self::add_durable) for a call that
    /// must be durable when it returns.
    pub fn add(&self, first: u64, events: &[&[u8]]) -> Result<(), IndexError> {
        self.add_with(first, events, false)
    }

    /// [`add`](Self::add), then a durable commit: everything indexed so far survives a crash.
    pub fn add_durable(&self, first: u64, events: &[&[u8]]) -> Result<(), IndexError> {
        self.add_with(first, events, true)
    }

    /// Makes every commit so far durable (one fsync). redb frees the pages of superseded data only at
    /// durable commits, so a caller that adds continuously should flush at least every few seconds;
    /// [`add`](Self::add) does so itself after [`AUTO_FLUSH`].
    pub fn flush(&self) -> Result<(), IndexError> {
        let mut w = self.writer();
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        w.last_durable = Instant::now();
        Ok(())
    }

    fn add_with(&self, first: u64, events: &[&[u8]], durable: bool) -> Result<(), IndexError> {
        let mut w = self.writer();
        let tail = w.tail.take();
        let mut txn = self.db.begin_write()?;
        let mut state = txn.open_table(STATE)?;
        let size = read_size(&state)?;
        if first > size {
            w.tail = tail;
            return Err(IndexError::OutOfOrder { expected: size, got: first });
        }
        // first <= size, so the difference fits; events beyond it are new.
        let skip = usize::try_from(size - first).unwrap_or(usize::MAX);
        let Some(mut new) = events.get(skip..).filter(|n| !n.is_empty()) else {
            drop(state);
            txn.abort()?;
            w.tail = tail;
            if durable {
                drop(w);
                self.flush()?;
            }
            return Ok(());
        };

        let clock = read_clock(&state)?;
        let mut monotonic = state.get(K_MONOTONIC)?.is_none_or(|g| g.value() != [0]);
        let len = self.block_len;
        let mut b = match tail {
            Some(b) if b.block * len + b.len() as u64 == size => b,
            _ => {
                let mut b = Builder::new(len as usize);
                let block = size / len;
                if size % len == 0 {
                    b.reset(block, clock);
                } else {
                    let blocks = txn.open_table(BLOCKS)?;
                    let rec = blocks.get(block)?.ok_or(IndexError::Corrupt("missing block"))?;
                    b.load(block, rec.value()).ok_or(IndexError::Corrupt("bad block"))?;
                    if b.len() as u64 != size % len || b.clock != clock {
                        return Err(IndexError::Corrupt("last block does not match the state"));
                    }
                }
                b
            }
        };

        // Count deltas, summed over the call's blocks (values repeat across blocks) and written out
        // whenever they hold many keys, so memory stays bounded however large the call.
        let mut counts: [HashMap<String, u64>; 4] = Default::default();
        {
            let mut tables = Tables {
                blocks: txn.open_table(BLOCKS)?,
                clocks: txn.open_table(CLOCKS)?,
                postings: txn.open_table(POSTINGS)?,
            };
            let mut count_table = txn.open_table(COUNTS)?;
            let mut new_from = b.len();
            while !new.is_empty() {
                let take = (len as usize - b.len()).min(new.len());
                for e in &new[..take] {
                    b.push(e);
                }
                new = &new[take..];
                w.write_block(&b, new_from, &mut tables, &mut counts)?;
                monotonic &= b.monotonic;
                if b.is_full() {
                    let (next, clock) = (b.block + 1, b.clock);
                    b.reset(next, clock);
                }
                new_from = 0;
                if new.is_empty() || counts.iter().map(HashMap::len).sum::<usize>() > MAX_PENDING_COUNTS {
                    write_counts(&mut count_table, &mut counts)?;
                }
            }
        }
        let new_size = b.block * len + b.len() as u64;
        state.insert(K_SIZE, &new_size.to_be_bytes()[..])?;
        state.insert(K_CLOCK, &b.clock.to_be_bytes()[..])?;
        state.insert(K_MONOTONIC, &[u8::from(monotonic)][..])?;
        drop(state);
        let durable = durable || w.last_durable.elapsed() >= AUTO_FLUSH;
        txn.set_durability(if durable { Durability::Immediate } else { Durability::None })?;
        txn.commit()?;
        if durable {
            w.last_durable = Instant::now();
        }
        w.tail = Some(b);
        Ok(())
    }

    /// Returns one page of the log indices matching `q`, in `q.order`.
    pub fn search(&self, q: &Query) -> Result<Page, IndexError> {
        self.search_budget(q, MAX_SCAN)
    }

    /// [`search`](Self::search) with an explicit scan budget (tests use small ones).
    fn search_budget(&self, q: &Query, budget: usize) -> Result<Page, IndexError> {
        let plan = Plan::new(q)?;
        let txn = self.db.begin_read()?;
        plan.run(&txn, self.block_len, budget.max(1))
    }

    /// Deletes everything (for `graven reindex`): afterwards `indexed_size()` is 0. Durable.
    pub fn clear(&self) -> Result<(), IndexError> {
        let mut w = self.writer();
        w.tail = None;
        let txn = self.db.begin_write()?;
        reset(&txn)?;
        create_tables(&txn, self.block_len)?;
        txn.commit()?;
        w.last_durable = Instant::now();
        Ok(())
    }
}

struct Tables<'t> {
    blocks: redb::Table<'t, u64, &'static [u8]>,
    clocks: redb::Table<'t, u64, u128>,
    postings: redb::Table<'t, (u8, &'static str, u64), &'static [u8]>,
}

impl Writer {
    /// Stores block `b` (record, end clock, and the postings of every value that gained entries at
    /// offsets `new_from..`) and, if the block is full, adds its entries per value key to `counts`.
    fn write_block(
        &mut self,
        b: &Builder,
        new_from: usize,
        t: &mut Tables<'_>,
        counts: &mut [HashMap<String, u64>; 4],
    ) -> Result<(), IndexError> {
        b.encode(&mut self.record);
        t.blocks.insert(b.block, self.record.as_slice())?;
        t.clocks.insert(b.block, b.clock)?;
        let new_in = |g: &[u16]| g.len() - g.partition_point(|&o| usize::from(o) < new_from);
        for (f, tag) in (0..4).zip(0u8..) {
            b.group(f, &mut self.starts, &mut self.offsets);
            let dict = &b.dicts[f];
            let value =
                |id: u16| std::str::from_utf8(dict.value(id)).map_err(|_| IndexError::Corrupt("bad value"));
            // One posting per key, in key order (cheaper B-tree inserts). Long values may share a
            // truncated key: their entries are merged.
            let mut by_key: Vec<(&str, u16)> = Vec::with_capacity(dict.len());
            for id in 1..=dict.len() as u16 {
                by_key.push((index_key(value(id)?), id));
            }
            by_key.sort_unstable();
            for group in by_key.chunk_by(|a, b| a.0 == b.0) {
                let entries =
                    |id: u16| &self.offsets[self.starts[usize::from(id) - 1]..self.starts[usize::from(id)]];
                let full = b.is_full();
                if full {
                    // A block is counted once, when it is complete (see `counts` in the crate docs).
                    let n: usize = group.iter().map(|&(_, id)| entries(id).len()).sum();
                    add_count(&mut counts[f], group[0].0, n);
                }
                if group.iter().all(|&(_, id)| new_in(entries(id)) == 0) {
                    continue;
                }
                let offsets = match group {
                    [(_, id)] => entries(*id),
                    _ => {
                        self.merged.clear();
                        for &(_, id) in group {
                            self.merged.extend_from_slice(entries(id));
                        }
                        self.merged.sort_unstable();
                        &self.merged
                    }
                };
                block::encode_posting(offsets, &mut self.posting);
                t.postings.insert((tag, group[0].0, b.block), self.posting.as_slice())?;
            }
        }
        Ok(())
    }
}

/// Adds the pending count deltas to the `counts` table and clears them.
fn write_counts(
    table: &mut redb::Table<'_, (u8, &'static str), u64>,
    counts: &mut [HashMap<String, u64>; 4],
) -> Result<(), IndexError> {
    for (tag, map) in (0u8..).zip(counts.iter_mut()) {
        for (key, n) in map.drain() {
            let old = table.get((tag, key.as_str()))?.map_or(0, |g| g.value());
            table.insert((tag, key.as_str()), old.saturating_add(n))?;
        }
    }
    Ok(())
}

fn add_count(map: &mut HashMap<String, u64>, key: &str, n: usize) {
    match map.get_mut(key) {
        Some(c) => *c += n as u64,
        None => {
            map.insert(key.to_owned(), n as u64);
        }
    }
}

fn reset(txn: &WriteTransaction) -> Result<(), IndexError> {
    txn.delete_table(STATE)?;
    txn.delete_table(BLOCKS)?;
    txn.delete_table(CLOCKS)?;
    txn.delete_table(POSTINGS)?;
    txn.delete_table(COUNTS)?;
    // Tables of format 1, if the file was written by it.
    for name in ["meta", "by_actor", "by_action", "by_resource", "by_outcome"] {
        txn.delete_table(TableDefinition::<u64, ()>::new(name))?;
    }
    Ok(())
}

/// Creates every table (so reads never meet a missing one) and stamps the format.
fn create_tables(txn: &WriteTransaction, block_len: u64) -> Result<(), IndexError> {
    txn.open_table(BLOCKS)?;
    txn.open_table(CLOCKS)?;
    txn.open_table(POSTINGS)?;
    txn.open_table(COUNTS)?;
    let mut state = txn.open_table(STATE)?;
    state.insert(K_FORMAT, FORMAT)?;
    state.insert(K_BLOCK_LEN, &block_len.to_be_bytes()[..])?;
    Ok(())
}

fn read_size(state: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<u64, IndexError> {
    match state.get(K_SIZE)? {
        None => Ok(0),
        Some(g) => {
            let b: [u8; 8] = g.value().try_into().map_err(|_| IndexError::Corrupt("bad size"))?;
            Ok(u64::from_be_bytes(b))
        }
    }
}

fn read_clock(state: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Time, IndexError> {
    match state.get(K_CLOCK)? {
        None => Ok(0),
        Some(g) => {
            let b: [u8; 16] = g.value().try_into().map_err(|_| IndexError::Corrupt("bad clock"))?;
            Ok(u128::from_be_bytes(b))
        }
    }
}

/// Whether one log entry matches the filters of `q` (`limit`, `cursor` and `order` are
/// ignored): exactly what [`Index::search`] returns for it, for callers that scan a log
/// without an index (`graven export --dir`). `since`/`until` must already be in the index's
/// timestamp format; a malformed bound matches nothing.
pub fn entry_matches(q: &Query, entry: &[u8]) -> bool {
    let bad_bound = |t: &Option<String>| t.as_deref().is_some_and(|t| !event::is_timestamp(t.as_bytes()));
    if bad_bound(&q.since) || bad_bound(&q.until) {
        return false;
    }
    let ev = event::extract(entry);
    let wanted = [&q.actor, &q.action, &q.resource, &q.outcome];
    let fields_ok =
        wanted.iter().zip(ev.fields.iter()).all(|(w, have)| w.is_none() || w.as_deref() == have.as_deref());
    let t = ev.logged_at.as_deref();
    fields_ok
        && q.since.as_deref().is_none_or(|s| t.is_some_and(|t| t >= s))
        && q.until.as_deref().is_none_or(|u| t.is_some_and(|t| t < u))
}

/// The key a value is indexed under: the value itself, or its longest prefix of at most
/// `MAX_KEY_BYTES` bytes ending on a character boundary.
fn index_key(value: &str) -> &str {
    if value.len() <= MAX_KEY_BYTES {
        return value;
    }
    let mut end = MAX_KEY_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// A validated query.
struct Plan<'q> {
    filters: [Option<&'q str>; 4],
    since: Option<Time>,
    until: Option<Time>,
    limit: usize,
    order: Order,
    fingerprint: u64,
    cursor: Option<u64>,
}

impl<'q> Plan<'q> {
    fn new(q: &'q Query) -> Result<Plan<'q>, IndexError> {
        let limit = match q.limit {
            0 => DEFAULT_LIMIT,
            n if n <= MAX_LIMIT => n,
            _ => return Err(IndexError::BadQuery("limit must be between 1 and 1000")),
        };
        let since = q.since.as_deref();
        if since.is_some_and(|t| !event::is_timestamp(t.as_bytes())) {
            return Err(IndexError::BadQuery("since must be a timestamp like 2026-11-26T17:48:20.123456Z"));
        }
        let until = q.until.as_deref();
        if until.is_some_and(|t| !event::is_timestamp(t.as_bytes())) {
            return Err(IndexError::BadQuery("until must be a timestamp like 2026-11-26T17:48:20.123456Z"));
        }
        let fingerprint = cursor::fingerprint(q);
        let cursor = match q.cursor.as_deref() {
            None => None,
            Some(s) => match cursor::decode(s) {
                Some(c) if c.order == q.order && c.fingerprint == fingerprint => Some(c.position),
                _ => return Err(IndexError::BadCursor),
            },
        };
        Ok(Plan {
            filters: [q.actor.as_deref(), q.action.as_deref(), q.resource.as_deref(), q.outcome.as_deref()],
            since: since.map(|t| block::pack_time(t.as_bytes())),
            until: until.map(|t| block::pack_time(t.as_bytes())),
            limit,
            order: q.order,
            fingerprint,
            cursor,
        })
    }

    fn empty() -> Page {
        Page { indices: Vec::new(), next_cursor: None }
    }

    fn run(&self, txn: &ReadTransaction, len: u64, budget: usize) -> Result<Page, IndexError> {
        let state = txn.open_table(STATE)?;
        let size = read_size(&state)?;
        let monotonic = state.get(K_MONOTONIC)?.is_none_or(|g| g.value() != [0]);
        let blocks = txn.open_table(BLOCKS)?;
        let clocks = txn.open_table(CLOCKS)?;

        // The index range [lo, hi) that can hold matches.
        let mut lo = 0;
        let mut hi = size;
        if let Some(since) = self.since {
            // Every entry before `lo` has clock (running max of logged_at) < since, so logged_at < since.
            lo = first_clock_at_or_after(&blocks, &clocks, len, size, since)?;
        }
        if let (Some(until), true) = (self.until, monotonic) {
            // With non-decreasing timestamps, every entry from `hi` on has logged_at = clock >= until.
            hi = first_clock_at_or_after(&blocks, &clocks, len, size, until)?;
        }
        match (self.order, self.cursor) {
            (Order::OldestFirst, Some(p)) => lo = lo.max(p),
            (Order::NewestFirst, Some(p)) => hi = hi.min(p),
            (_, None) => {}
        }
        if lo >= hi {
            return Ok(Self::empty());
        }

        // Drive the scan with the filter whose value is held by the fewest entries.
        let counts = txn.open_table(COUNTS)?;
        let postings = txn.open_table(POSTINGS)?;
        // Counts cover complete blocks only; a partial last block is counted from its postings.
        let partial = (size % len != 0).then_some(size / len);
        let mut driver: Option<(u8, &str, u64)> = None;
        for (tag, value) in (0u8..).zip(self.filters.iter()) {
            let Some(value) = value else { continue };
            let key = index_key(value);
            let mut n = counts.get((tag, key))?.map_or(0, |g| g.value());
            if let Some(last) = partial
                && let Some(p) = postings.get((tag, key, last))?
            {
                n += block::posting_len(p.value()).ok_or(IndexError::Corrupt("bad posting"))? as u64;
            }
            if n == 0 {
                return Ok(Self::empty());
            }
            if driver.is_none_or(|(_, _, best)| n < best) {
                driver = Some((tag, key, n));
            }
        }

        // Only the driving filter, with a value that cannot collide with a truncated key, and no time
        // bounds: every candidate matches, so block records need not be read.
        let others = self.filters.iter().filter(|f| f.is_some()).count() > 1;
        let exact_key = driver.is_none_or(|(tag, _, _)| {
            self.filters[usize::from(tag)].is_none_or(|v| v.len() <= EXACT_KEY_BYTES)
        });
        let post_filter = others || !exact_key || self.since.is_some() || self.until.is_some();

        let mut scan = Scan {
            plan: self,
            lo,
            hi,
            len,
            budget,
            examined: 0,
            indices: Vec::new(),
            offsets: Vec::with_capacity(len as usize),
            post_filter,
            blocks: &blocks,
        };
        let (first_block, last_block) = (lo / len, (hi - 1) / len);
        let rev = self.order == Order::NewestFirst;
        let mut stop = None;
        match driver {
            Some((tag, key, _)) => {
                let range = postings.range((tag, key, first_block)..=(tag, key, last_block))?;
                let items: Box<dyn Iterator<Item = PostingItem<'_>>> =
                    if rev { Box::new(range.rev()) } else { Box::new(range) };
                for item in items {
                    let (k, v) = item?;
                    scan.offsets.clear();
                    block::decode_posting(v.value(), &mut scan.offsets)
                        .ok_or(IndexError::Corrupt("bad posting"))?;
                    stop = scan.block(k.value().2)?;
                    if stop.is_some() {
                        break;
                    }
                }
            }
            None => {
                let blocks: Box<dyn Iterator<Item = u64>> = if rev {
                    Box::new((first_block..=last_block).rev())
                } else {
                    Box::new(first_block..=last_block)
                };
                for b in blocks {
                    scan.offsets.clear();
                    scan.offsets.extend(0..len as u16);
                    stop = scan.block(b)?;
                    if stop.is_some() {
                        break;
                    }
                }
            }
        }
        let next_cursor = stop.map(|position| {
            cursor::encode(cursor::Cursor { order: self.order, position, fingerprint: self.fingerprint })
        });
        Ok(Page { indices: scan.indices, next_cursor })
    }
}

/// One entry of the postings table.
type PostingItem<'a> = Result<
    (redb::AccessGuard<'a, (u8, &'static str, u64)>, redb::AccessGuard<'a, &'static [u8]>),
    redb::StorageError,
>;

/// One search's walk over candidates, block by block.
struct Scan<'p, 'q, 't> {
    plan: &'p Plan<'q>,
    lo: u64,
    hi: u64,
    len: u64,
    budget: usize,
    /// Candidates examined so far.
    examined: usize,
    indices: Vec<u64>,
    /// The current block's candidate offsets, ascending (the caller fills it).
    offsets: Vec<u16>,
    post_filter: bool,
    blocks: &'t redb::ReadOnlyTable<u64, &'static [u8]>,
}

impl Scan<'_, '_, '_> {
    /// Examines block `b`'s candidates (`self.offsets`, restricted to `[lo, hi)`) in the plan's order.
    /// Returns the cursor position if the page filled up or the budget ran out before a candidate.
    fn block(&mut self, b: u64) -> Result<Option<u64>, IndexError> {
        let base = b * self.len;
        let (lo, hi) = (self.lo, self.hi);
        let start = self.offsets.partition_point(|&o| base + u64::from(o) < lo);
        let end = self.offsets.partition_point(|&o| base + u64::from(o) < hi);
        let Some(cands) = self.offsets.get(start..end).filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let rev = self.plan.order == Order::NewestFirst;
        // The position to resume at, `idx` not yet examined.
        let resume = |idx: u64| if rev { idx + 1 } else { idx };
        let first = if rev { cands[cands.len() - 1] } else { cands[0] };
        if self.indices.len() == self.plan.limit || self.examined == self.budget {
            return Ok(Some(resume(base + u64::from(first))));
        }

        let guard;
        let mut check = None;
        if self.post_filter {
            guard = self.blocks.get(b)?.ok_or(IndexError::Corrupt("indexed entry without block"))?;
            let view = View::parse(guard.value()).ok_or(IndexError::Corrupt("bad block"))?;
            // Per filter, the id its value has in this block (0: no entry here has it).
            let mut want = [None; 4];
            for (f, value) in self.plan.filters.iter().enumerate() {
                if let Some(v) = value {
                    want[f] = Some(view.lookup(f, v.as_bytes()).ok_or(IndexError::Corrupt("bad block"))?);
                }
            }
            let since = self.plan.since.map(block::time_bytes);
            let until = self.plan.until.map(block::time_bytes);
            check = Some((view, want, since, until));
        }
        let n = cands.len();
        for k in 0..n {
            let o = if rev { cands[n - 1 - k] } else { cands[k] };
            let idx = base + u64::from(o);
            if self.indices.len() == self.plan.limit || self.examined == self.budget {
                return Ok(Some(resume(idx)));
            }
            self.examined += 1;
            if let Some((view, want, since, until)) = &check {
                let j = usize::from(o);
                if j >= view.n {
                    return Err(IndexError::Corrupt("posting beyond its block"));
                }
                let mut ok = true;
                for (f, w) in want.iter().enumerate() {
                    if let Some(w) = *w {
                        ok &= w != 0 && view.id(f, j) == Some(w);
                    }
                }
                if ok && (since.is_some() || until.is_some()) {
                    let t = view.time_raw(j).ok_or(IndexError::Corrupt("bad block"))?;
                    let present = t.iter().any(|&x| x != 0);
                    ok = present && since.is_none_or(|s| t >= &s[..]) && until.is_none_or(|u| t < &u[..]);
                }
                if !ok {
                    continue;
                }
            }
            self.indices.push(idx);
        }
        Ok(None)
    }
}

/// The first index in `0..size` whose clock (running maximum of `logged_at`) is `>= t`, `size` if
/// none. Binary search over the blocks' end clocks, then a walk through one block.
fn first_clock_at_or_after(
    blocks: &impl ReadableTable<u64, &'static [u8]>,
    clocks: &impl ReadableTable<u64, u128>,
    len: u64,
    size: u64,
    t: Time,
) -> Result<u64, IndexError> {
    let (mut lo, mut hi) = (0u64, size.div_ceil(len));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let clock = clocks.get(mid)?.ok_or(IndexError::Corrupt("indexed block without clock"))?.value();
        if clock < t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo == size.div_ceil(len) {
        return Ok(size);
    }
    let rec = blocks.get(lo)?.ok_or(IndexError::Corrupt("indexed entry without block"))?;
    let view = View::parse(rec.value()).ok_or(IndexError::Corrupt("bad block"))?;
    let j = view.first_clock_at_or_after(t).ok_or(IndexError::Corrupt("bad block"))?;
    Ok((lo * len + j as u64).min(size))
}

// Lets the shared test model (tests/common) name this crate from unit tests too.
#[cfg(test)]
extern crate self as graven_index;

#[cfg(test)]
mod tests;
