//! Graven's search index: the data behind
//! `GET /v1/events?actor=&action=&resource=&outcome=&since=&until=&limit=&cursor=&order=`.
//!
//! The index is **derived data**. It is built from the log's entries (the RFC 8785 canonical JSON of each
//! event), can be deleted and rebuilt from the log at any time, and is never the source of truth. It
//! lives in one [redb](https://docs.rs/redb) file.
//!
//! # Tables
//!
//! * `state: &str -> &[u8]`: `size` (entries `0..size` are indexed), `clock` (the largest `logged_at`
//!   seen), `monotonic` (whether `logged_at` has never gone backwards), `format`.
//! * `meta: u64 -> &[u8]`: per log index, a packed record of the full field values and timestamps (see
//!   `record.rs`), used to post-filter candidates and to turn `since`/`until` into an index range.
//! * `by_actor`, `by_action`, `by_resource`, `by_outcome`: `(&str, u64) -> ()`, the entries holding each
//!   value, in log order.
//! * `counts: (u8, &str) -> u64`: how many entries hold each value, to pick the most selective filter.
//!
//! # Extraction
//!
//! Indexed fields are `actor.id`, `action`, `resource.id`, `outcome` (strings) and `logged_at` (a string
//! in the fixed 27-character format `YYYY-MM-DDTHH:MM:SS.ffffffZ`). An entry that is not a JSON object
//! has no fields; a field that is missing or has another JSON type (or a `logged_at` in another format)
//! is absent. An absent field never matches a filter on it, and a missing `logged_at` never matches a
//! `since` or `until`. Such entries still count as indexed.
//!
//! # Long values
//!
//! Values longer than [`MAX_KEY_BYTES`] are indexed under a truncated key (the longest prefix of at most
//! `MAX_KEY_BYTES` bytes that ends on a character boundary). The full value is kept in `meta`, and every
//! query that could be affected by truncation (a filter value long enough to collide with a truncated
//! key) is post-filtered against it, so truncation only costs speed, never correctness.
//!
//! # Searching
//!
//! One filter drives the scan: the one whose value is held by the fewest entries (from `counts`). Its
//! entries within the index range are visited in the requested order; each is checked against the
//! remaining filters using `meta`. Without field filters the scan walks `meta` itself. `since` narrows the
//! index range by binary search over the running maximum of `logged_at` (sound even if timestamps went
//! backwards); `until` narrows it the same way only while the log's timestamps have never gone backwards,
//! which the server guarantees. Every candidate is post-filtered on time, so results are exact either
//! way. At most [`MAX_SCAN`] candidates are examined per call; when the budget runs out first, the page
//! holds what was found and a cursor to continue from.
//!
//! # Concurrency
//!
//! `Index` is `Send + Sync`: searches run on read snapshots concurrently with `add`. redb allows one open
//! handle per file per process; opening the same file twice fails with [`IndexError::Storage`].

mod cursor;
mod event;
mod record;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use redb::{
    AccessGuard, Database, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    StorageError, TableDefinition, WriteTransaction,
};

use crate::record::{NO_TIME, TIME_LEN};

/// Page size when [`Query::limit`] is 0.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest accepted [`Query::limit`].
pub const MAX_LIMIT: usize = 1000;
/// Candidates examined per [`Index::search`] call at most.
pub const MAX_SCAN: usize = 100_000;
/// Field values longer than this many bytes are indexed under a truncated key (see the crate docs).
pub const MAX_KEY_BYTES: usize = 1024;

/// A value this long or shorter cannot equal a truncated key: truncation at a character boundary removes
/// at most 3 bytes from `MAX_KEY_BYTES`, so truncated keys are longer than this.
const EXACT_KEY_BYTES: usize = MAX_KEY_BYTES - 4;

/// Bumped whenever the on-disk layout changes; an index in another format is cleared on open.
const FORMAT: &[u8] = b"graven-index/1";
/// redb's page cache. The index is streamed, never loaded whole; this bounds its memory use.
const CACHE_BYTES: usize = 256 * 1024 * 1024;

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const META: TableDefinition<u64, &[u8]> = TableDefinition::new("meta");
const COUNTS: TableDefinition<(u8, &str), u64> = TableDefinition::new("counts");
const BY_FIELD: [TableDefinition<(&str, u64), ()>; 4] = [
    TableDefinition::new("by_actor"),
    TableDefinition::new("by_action"),
    TableDefinition::new("by_resource"),
    TableDefinition::new("by_outcome"),
];

const K_SIZE: &str = "size";
const K_CLOCK: &str = "clock";
const K_MONOTONIC: &str = "monotonic";
const K_FORMAT: &str = "format";

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
    redb::CommitError
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
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index").finish_non_exhaustive()
    }
}

impl Index {
    /// Opens the index at `path`, creating it if missing. An index written in another on-disk format is
    /// cleared (it is derived data), so `indexed_size()` then reports 0 and the caller re-indexes.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        let db = Database::builder().set_cache_size(CACHE_BYTES).create(path)?;
        let index = Index { db };
        let txn = index.db.begin_write()?;
        let current = {
            let state = txn.open_table(STATE)?;
            let format = state.get(K_FORMAT)?.map(|g| g.value() == FORMAT);
            let empty = state.is_empty()?;
            match format {
                Some(true) => true,
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
            create_tables(&txn)?;
            txn.commit()?;
        }
        Ok(index)
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
    /// and a call overlapping the end indexes only the new part. One redb write transaction per call.
    pub fn add(&self, first: u64, events: &[&[u8]]) -> Result<(), IndexError> {
        let txn = self.db.begin_write()?;
        let mut state = txn.open_table(STATE)?;
        let size = read_size(&state)?;
        if first > size {
            return Err(IndexError::OutOfOrder { expected: size, got: first });
        }
        // first <= size, so the difference fits; events beyond it are new.
        let skip = usize::try_from(size - first).unwrap_or(usize::MAX);
        let Some(new) = events.get(skip..).filter(|n| !n.is_empty()) else {
            drop(state);
            txn.abort()?;
            return Ok(());
        };

        let mut clock: [u8; TIME_LEN] = match state.get(K_CLOCK)? {
            None => NO_TIME,
            Some(g) => g.value().try_into().map_err(|_| IndexError::Corrupt("bad clock"))?,
        };
        let mut monotonic = match state.get(K_MONOTONIC)? {
            None => true,
            Some(g) => g.value() != [0],
        };
        {
            let mut meta = txn.open_table(META)?;
            let mut by_field = [
                txn.open_table(BY_FIELD[0])?,
                txn.open_table(BY_FIELD[1])?,
                txn.open_table(BY_FIELD[2])?,
                txn.open_table(BY_FIELD[3])?,
            ];
            let mut counts: [HashMap<String, u64>; 4] = Default::default();
            let mut buf = Vec::with_capacity(256);
            for (idx, entry) in (size..).zip(new.iter()) {
                let ev = event::extract(entry);
                let logged_at = ev.logged_at.as_deref().map(str::as_bytes);
                if let Some(t) = logged_at {
                    if t >= &clock[..] {
                        clock.copy_from_slice(t);
                    } else {
                        monotonic = false;
                    }
                }
                let fields = [0, 1, 2, 3].map(|i| ev.fields[i].as_deref().map(str::as_bytes));
                record::encode(&mut buf, &clock, logged_at, fields);
                meta.insert(idx, buf.as_slice())?;
                for (i, value) in ev.fields.iter().enumerate() {
                    let Some(value) = value else { continue };
                    let key = index_key(value);
                    by_field[i].insert((key, idx), ())?;
                    match counts[i].get_mut(key) {
                        Some(n) => *n += 1,
                        None => {
                            counts[i].insert(key.to_owned(), 1);
                        }
                    }
                }
            }
            let mut count_table = txn.open_table(COUNTS)?;
            for (tag, map) in (0u8..).zip(counts.iter()) {
                for (key, n) in map {
                    let old = count_table.get((tag, key.as_str()))?.map_or(0, |g| g.value());
                    count_table.insert((tag, key.as_str()), old.saturating_add(*n))?;
                }
            }
        }
        let new_size = size + new.len() as u64;
        state.insert(K_SIZE, &new_size.to_be_bytes()[..])?;
        state.insert(K_CLOCK, &clock[..])?;
        state.insert(K_MONOTONIC, &[u8::from(monotonic)][..])?;
        drop(state);
        txn.commit()?;
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
        plan.run(&txn, budget.max(1))
    }

    /// Deletes everything (for `graven reindex`): afterwards `indexed_size()` is 0.
    pub fn clear(&self) -> Result<(), IndexError> {
        let txn = self.db.begin_write()?;
        reset(&txn)?;
        create_tables(&txn)?;
        txn.commit()?;
        Ok(())
    }
}

fn reset(txn: &WriteTransaction) -> Result<(), IndexError> {
    txn.delete_table(STATE)?;
    txn.delete_table(META)?;
    txn.delete_table(COUNTS)?;
    for t in BY_FIELD {
        txn.delete_table(t)?;
    }
    Ok(())
}

/// Creates every table (so reads never meet a missing one) and stamps the format.
fn create_tables(txn: &WriteTransaction) -> Result<(), IndexError> {
    txn.open_table(META)?;
    txn.open_table(COUNTS)?;
    for t in BY_FIELD {
        txn.open_table(t)?;
    }
    let mut state = txn.open_table(STATE)?;
    state.insert(K_FORMAT, FORMAT)?;
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
    since: Option<&'q str>,
    until: Option<&'q str>,
    limit: usize,
    order: Order,
    fingerprint: u64,
    cursor: Option<u64>,
}

/// One candidate: its log index and, when the scan walks `meta`, its record.
type Candidate<'t> = Result<(u64, Option<AccessGuard<'t, &'static [u8]>>), StorageError>;

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
            since,
            until,
            limit,
            order: q.order,
            fingerprint,
            cursor,
        })
    }

    fn empty() -> Page {
        Page { indices: Vec::new(), next_cursor: None }
    }

    fn run(&self, txn: &ReadTransaction, budget: usize) -> Result<Page, IndexError> {
        let state = txn.open_table(STATE)?;
        let size = read_size(&state)?;
        let monotonic = state.get(K_MONOTONIC)?.is_none_or(|g| g.value() != [0]);
        let meta = txn.open_table(META)?;

        // The index range [lo, hi) that can hold matches.
        let mut lo = 0;
        let mut hi = size;
        if let Some(since) = self.since {
            // Every entry before `lo` has clock (running max of logged_at) < since, so logged_at < since.
            lo = first_clock_at_or_after(&meta, size, since.as_bytes())?;
        }
        if let (Some(until), true) = (self.until, monotonic) {
            // With non-decreasing timestamps, every entry from `hi` on has logged_at = clock >= until.
            hi = first_clock_at_or_after(&meta, size, until.as_bytes())?;
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
        let mut driver: Option<(usize, &str, u64)> = None;
        for (i, value) in self.filters.iter().enumerate() {
            let Some(value) = value else { continue };
            let key = index_key(value);
            let n = counts.get((i as u8, key))?.map_or(0, |g| g.value());
            if n == 0 {
                return Ok(Self::empty());
            }
            if driver.is_none_or(|(_, _, best)| n < best) {
                driver = Some((i, key, n));
            }
        }

        let rev = self.order == Order::NewestFirst;
        let field_table;
        let candidates: Box<dyn Iterator<Item = Candidate<'_>> + '_> = match driver {
            Some((i, key, _)) => {
                field_table = txn.open_table(BY_FIELD[i])?;
                let range = field_table.range((key, lo)..(key, hi))?;
                let it = range.map(|r| r.map(|(k, _)| (k.value().1, None)));
                if rev { Box::new(it.rev()) } else { Box::new(it) }
            }
            None => {
                let range = meta.range(lo..hi)?;
                let it = range.map(|r| r.map(|(k, v)| (k.value(), Some(v))));
                if rev { Box::new(it.rev()) } else { Box::new(it) }
            }
        };

        // Only the driving filter, with a value that cannot collide with a truncated key, and no time
        // bounds: every candidate matches, so `meta` need not be read.
        let others = self.filters.iter().filter(|f| f.is_some()).count() > 1;
        let exact_key =
            driver.is_none_or(|(i, _, _)| self.filters[i].is_none_or(|v| v.len() <= EXACT_KEY_BYTES));
        let post_filter = others || !exact_key || self.since.is_some() || self.until.is_some();

        let mut indices = Vec::new();
        // `examined`: candidates examined before this one.
        for (examined, candidate) in candidates.enumerate() {
            let (idx, rec) = candidate?;
            if indices.len() == self.limit || examined == budget {
                // Stopped with `idx` not yet examined: resume there.
                let position = match self.order {
                    Order::OldestFirst => idx,
                    Order::NewestFirst => idx + 1,
                };
                let c = cursor::Cursor { order: self.order, position, fingerprint: self.fingerprint };
                return Ok(Page { indices, next_cursor: Some(cursor::encode(c)) });
            }
            if post_filter {
                let rec = match rec {
                    Some(r) => r,
                    None => meta.get(idx)?.ok_or(IndexError::Corrupt("indexed entry without record"))?,
                };
                let r = record::decode(rec.value()).ok_or(IndexError::Corrupt("bad record"))?;
                if !self.matches(&r) {
                    continue;
                }
            }
            indices.push(idx);
        }
        Ok(Page { indices, next_cursor: None })
    }

    fn matches(&self, r: &record::Record<'_>) -> bool {
        let fields_ok = self
            .filters
            .iter()
            .zip(r.fields.iter())
            .all(|(want, have)| want.is_none_or(|w| *have == Some(w.as_bytes())));
        fields_ok
            && self.since.is_none_or(|s| r.logged_at.is_some_and(|t| t >= s.as_bytes()))
            && self.until.is_none_or(|u| r.logged_at.is_some_and(|t| t < u.as_bytes()))
    }
}

/// The first index in `0..size` whose clock is `>= t` (`size` if none). Clocks are non-decreasing.
fn first_clock_at_or_after(
    meta: &impl ReadableTable<u64, &'static [u8]>,
    size: u64,
    t: &[u8],
) -> Result<u64, IndexError> {
    let (mut lo, mut hi) = (0u64, size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let g = meta.get(mid)?.ok_or(IndexError::Corrupt("indexed entry without record"))?;
        let clock = record::clock(g.value()).ok_or(IndexError::Corrupt("bad record"))?;
        if clock < t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

// Lets the shared test model (tests/common) name this crate from unit tests too.
#[cfg(test)]
extern crate self as graven_index;

#[cfg(test)]
mod tests;
