//! Searching: a query validated into a plan, the driving filter chosen by its counts, and the
//! walk over candidate blocks within the scan budget.

use redb::{ReadTransaction, ReadableTable};

use crate::block::{self, Time, View};
use crate::cursor;
use crate::error::IndexError;
use crate::extract;
use crate::query::{DEFAULT_LIMIT, MAX_LIMIT, Order, Page, Query};
use crate::schema::{
    BLOCKS, CLOCKS, COUNTS, EXACT_KEY_BYTES, K_MONOTONIC, POSTINGS, STATE, index_key, read_size,
};

/// A validated query.
pub(crate) struct Plan<'q> {
    filters: [Option<&'q str>; 4],
    since: Option<Time>,
    until: Option<Time>,
    limit: usize,
    order: Order,
    fingerprint: u64,
    cursor: Option<u64>,
}

impl<'q> Plan<'q> {
    pub(crate) fn new(q: &'q Query) -> Result<Plan<'q>, IndexError> {
        let limit = match q.limit {
            0 => DEFAULT_LIMIT,
            n if n <= MAX_LIMIT => n,
            _ => return Err(IndexError::BadQuery("limit must be between 1 and 1000")),
        };
        let since = q.since.as_deref();
        if since.is_some_and(|t| !extract::is_timestamp(t.as_bytes())) {
            return Err(IndexError::BadQuery("since must be a timestamp like 2026-11-26T17:48:20.123456Z"));
        }
        let until = q.until.as_deref();
        if until.is_some_and(|t| !extract::is_timestamp(t.as_bytes())) {
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

    pub(crate) fn run(&self, txn: &ReadTransaction, len: u64, budget: usize) -> Result<Page, IndexError> {
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
