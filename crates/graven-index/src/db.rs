//! The index itself: opening the redb file, adding entries block by block, durability, and
//! clearing. Searches are planned and run in `search`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::block::{self, Builder};
use crate::error::IndexError;
use crate::extract;
use crate::inventory::{self, Activity, CREDENTIALS, INVENTORY, InventoryTables, Pending, Usage};
use crate::query::{MAX_SCAN, Page, Query};
use crate::schema::{
    BLOCKS, CLOCKS, COUNTS, FORMAT, K_BLOCK_LEN, K_CLOCK, K_FORMAT, K_MONOTONIC, K_SIZE, POSTINGS, STATE,
    create_tables, index_key, read_clock, read_size, reset,
};
use crate::search::Plan;

/// [`Index::add`] makes its commit durable when the last durable commit is at least this old.
pub const AUTO_FLUSH: Duration = Duration::from_secs(1);

/// Distinct value keys whose count deltas an `add` holds in memory before writing them out.
const MAX_PENDING_COUNTS: usize = 16 * 1024;

/// Log entries per block.
const BLOCK_LEN: u64 = block::MAX_BLOCK as u64;

/// redb's page cache. The index is streamed, never loaded whole; this bounds its memory use.
const CACHE_BYTES: usize = 256 * 1024 * 1024;

/// The search index, wrapping a redb database.
pub struct Index {
    pub(crate) db: Database,
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
    pub(crate) fn open_with_block_len(path: &Path, block_len: u64) -> Result<Index, IndexError> {
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
            let mut inv = InventoryTables {
                inventory: txn.open_table(INVENTORY)?,
                credentials: txn.open_table(CREDENTIALS)?,
            };
            let mut pending = Pending::default();
            let mut new_from = b.len();
            while !new.is_empty() {
                let take = (len as usize - b.len()).min(new.len());
                for e in &new[..take] {
                    let ev = extract::extract(e);
                    pending.record(b.block * len + b.len() as u64, &ev, &mut inv)?;
                    b.push_extracted(&ev);
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
            pending.write(&mut inv)?;
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
    pub(crate) fn search_budget(&self, q: &Query, budget: usize) -> Result<Page, IndexError> {
        let plan = Plan::new(q)?;
        let txn = self.db.begin_read()?;
        plan.run(&txn, self.block_len, budget.max(1))
    }

    /// The inventory (see `inventory.rs`): every actor's [`Activity`] in `id` order, with the
    /// number of entries it covers (the indexed size), read from one snapshot.
    pub fn inventory(&self) -> Result<(u64, Vec<Activity>), IndexError> {
        let txn = self.db.begin_read()?;
        let size = read_size(&txn.open_table(STATE)?)?;
        let all = inventory::read_all(&txn.open_table(INVENTORY)?)?;
        Ok((size, all))
    }

    /// At most `max` actors' [`Activity`], in `id` order, after `after` (all from the first
    /// without it), with the indexed size, from one snapshot: the inventory read in bounded
    /// chunks (what `GET /v1/inventory` does, so its memory does not grow with the log's actors).
    pub fn inventory_after(
        &self,
        after: Option<&str>,
        max: usize,
    ) -> Result<(u64, Vec<Activity>), IndexError> {
        let txn = self.db.begin_read()?;
        let size = read_size(&txn.open_table(STATE)?)?;
        let chunk = inventory::read_after(&txn.open_table(INVENTORY)?, after, max)?;
        Ok((size, chunk))
    }

    /// One actor's [`Activity`], if it has any entry.
    pub fn activity(&self, actor: &str) -> Result<Option<Activity>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(INVENTORY)?;
        let got = table.get(actor)?;
        got.map(|g| Activity::decode(actor, g.value()).ok_or(IndexError::Corrupt("bad activity"))).transpose()
    }

    /// Every credential (`actor.credential`) `actor`'s entries carry, with its [`Usage`], in
    /// credential order.
    pub fn credentials(&self, actor: &str) -> Result<Vec<(String, Usage)>, IndexError> {
        let txn = self.db.begin_read()?;
        inventory::read_credentials(&txn.open_table(CREDENTIALS)?, actor)
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
