//! Blocks: the unit of storage. Block `b` covers log indices `b * block_len .. (b + 1) * block_len`
//! (`block_len` is a power of two, at most 4096, so an offset inside a block fits a `u16`).
//!
//! # Times
//!
//! A `logged_at` in the fixed format `YYYY-MM-DDTHH:MM:SS.ffffffZ` holds 20 digits. They are packed as
//! 20 BCD nibbles (80 bits, most significant first) plus one, so that integer order is time order and 0
//! means "no timestamp" (it sorts below every time). On disk a time is 10 bytes, big-endian.
//!
//! # Block record (`blocks` table)
//!
//! ```text
//! version u8 (= 1) | n u16 LE | clock_before [10] | dict_count[4] u16 LE | dict_bytes[4] u32 LE
//! | ids[4]: n x u16 LE | times: n x [10] | dicts[4]: dict_count x (len u32 LE, bytes)
//! ```
//!
//! `n` entries (1..=block_len), the clock (running maximum of `logged_at`) before the block's first
//! entry, then one column per field: the entry's value as an id into that field's dictionary (0: field
//! absent, `k`: the block's `k`-th distinct value), the entry's own `logged_at` (0: absent), and the four
//! dictionaries holding each distinct full (untruncated) value once, in first-seen order.
//!
//! # Postings (`postings` table)
//!
//! For each field, value key and block, the offsets within the block of the entries holding that value:
//! tag `0` then ascending `u16 LE` offsets, or tag `1` then a 512-byte bitmap (bit `o % 8` of byte
//! `o / 8`), whichever is smaller.

use crate::extract;

/// The largest block length: offsets must fit a `u16`, and a bitmap posting is 512 bytes.
pub(crate) const MAX_BLOCK: usize = 4096;
pub(crate) const TIME_BYTES: usize = 10;
const VERSION: u8 = 1;
const HEADER: usize = 1 + 2 + TIME_BYTES + 4 * 2 + 4 * 4;
const BITMAP_BYTES: usize = MAX_BLOCK / 8;
const TAG_LIST: u8 = 0;
const TAG_BITMAP: u8 = 1;

/// A packed time: 0 when absent, else the BCD digits plus one (see the module docs).
pub(crate) type Time = u128;

/// Packs a timestamp that has the fixed shape (see [`extract::is_timestamp`]); `0` for anything else.
pub(crate) fn pack_time(t: &[u8]) -> Time {
    if !extract::is_timestamp(t) {
        return 0;
    }
    let mut v: u128 = 0;
    for &c in t {
        if c.is_ascii_digit() {
            v = (v << 4) | u128::from(c - b'0');
        }
    }
    v + 1
}

pub(crate) fn time_bytes(t: Time) -> [u8; TIME_BYTES] {
    let b = t.to_be_bytes();
    let mut out = [0u8; TIME_BYTES];
    out.copy_from_slice(&b[16 - TIME_BYTES..]);
    out
}

pub(crate) fn time_from(b: &[u8]) -> Option<Time> {
    let mut full = [0u8; 16];
    full.get_mut(16 - TIME_BYTES..)?.copy_from_slice(b.get(..TIME_BYTES)?);
    Some(u128::from_be_bytes(full))
}

/// A fast non-cryptographic hash for the dictionaries (which only hold data of one block).
fn hash(b: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = K ^ (b.len() as u64);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    h ^= h >> 32;
    h = h.wrapping_mul(K);
    h ^ (h >> 29)
}

/// The distinct values of one field within one block, ids from 1 in first-seen order. Open addressing
/// over a fixed table twice the block length: no allocation per value beyond the shared arena.
#[derive(Debug)]
pub(crate) struct Dict {
    slots: Vec<u16>,
    hashes: Vec<u64>,
    /// `ends[k]`: end of value `k + 1` in `arena` (it starts where the previous one ends).
    ends: Vec<usize>,
    arena: Vec<u8>,
}

impl Dict {
    fn new(block_len: usize) -> Dict {
        Dict {
            slots: vec![0; block_len * 2],
            hashes: Vec::with_capacity(block_len),
            ends: Vec::with_capacity(block_len),
            arena: Vec::new(),
        }
    }

    fn clear(&mut self) {
        self.slots.fill(0);
        self.hashes.clear();
        self.ends.clear();
        self.arena.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The value with id `id` (1-based).
    pub(crate) fn value(&self, id: u16) -> &[u8] {
        let k = usize::from(id) - 1;
        let start = if k == 0 { 0 } else { self.ends[k - 1] };
        &self.arena[start..self.ends[k]]
    }

    /// The id of `v`, adding it if new. The caller guarantees at most `block_len` distinct values.
    fn intern(&mut self, v: &[u8]) -> u16 {
        let h = hash(v);
        let mask = self.slots.len() - 1;
        let mut i = (h as usize) & mask;
        loop {
            let s = self.slots[i];
            if s == 0 {
                self.arena.extend_from_slice(v);
                self.ends.push(self.arena.len());
                self.hashes.push(h);
                // At most block_len <= 4096 values: the id fits.
                let id = self.ends.len() as u16;
                self.slots[i] = id;
                return id;
            }
            if self.hashes[usize::from(s) - 1] == h && self.value(s) == v {
                return s;
            }
            i = (i + 1) & mask;
        }
    }
}

/// The block being filled: the entries of the last, possibly partial, block.
#[derive(Debug)]
pub(crate) struct Builder {
    block_len: usize,
    /// Block number.
    pub(crate) block: u64,
    pub(crate) clock_before: Time,
    /// Running maximum of `logged_at` through the last entry.
    pub(crate) clock: Time,
    /// Whether `logged_at` never went backwards within this block (relative to the clock).
    pub(crate) monotonic: bool,
    pub(crate) times: Vec<Time>,
    pub(crate) ids: [Vec<u16>; 4],
    pub(crate) dicts: [Dict; 4],
}

impl Builder {
    pub(crate) fn new(block_len: usize) -> Builder {
        Builder {
            block_len,
            block: 0,
            clock_before: 0,
            clock: 0,
            monotonic: true,
            times: Vec::with_capacity(block_len),
            ids: std::array::from_fn(|_| Vec::with_capacity(block_len)),
            dicts: std::array::from_fn(|_| Dict::new(block_len)),
        }
    }

    /// Empties the builder for block `block`, whose first entry follows `clock`.
    pub(crate) fn reset(&mut self, block: u64, clock: Time) {
        self.block = block;
        self.clock_before = clock;
        self.clock = clock;
        self.monotonic = true;
        self.times.clear();
        for i in 0..4 {
            self.ids[i].clear();
            self.dicts[i].clear();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.times.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.times.len() >= self.block_len
    }

    /// Appends one entry (the block must not be full).
    #[cfg(test)]
    pub(crate) fn push(&mut self, entry: &[u8]) {
        self.push_extracted(&extract::extract(entry));
    }

    /// [`push`](Self::push) of an entry already extracted.
    pub(crate) fn push_extracted(&mut self, ev: &extract::Extracted<'_>) {
        let t = ev.logged_at.as_deref().map_or(0, |s| pack_time(s.as_bytes()));
        self.push_parts(t, ev.fields.each_ref().map(|f| f.as_deref().map(str::as_bytes)));
    }

    fn push_parts(&mut self, t: Time, fields: [Option<&[u8]>; 4]) {
        if t != 0 {
            if t >= self.clock {
                self.clock = t;
            } else {
                self.monotonic = false;
            }
        }
        self.times.push(t);
        for (i, f) in fields.into_iter().enumerate() {
            let id = match f {
                None => 0,
                Some(v) => self.dicts[i].intern(v),
            };
            self.ids[i].push(id);
        }
    }

    /// Serializes the block record into `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        let n = self.len();
        out.push(VERSION);
        out.extend_from_slice(&(n as u16).to_le_bytes());
        out.extend_from_slice(&time_bytes(self.clock_before));
        for d in &self.dicts {
            out.extend_from_slice(&(d.len() as u16).to_le_bytes());
        }
        for d in &self.dicts {
            let bytes = d.arena.len() + 4 * d.len();
            out.extend_from_slice(&(bytes as u32).to_le_bytes());
        }
        for ids in &self.ids {
            for id in ids {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
        for &t in &self.times {
            out.extend_from_slice(&time_bytes(t));
        }
        for d in &self.dicts {
            for id in 1..=d.len() as u16 {
                let v = d.value(id);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
        }
    }

    /// Rebuilds the builder from a stored block record (to append to a partial last block).
    /// `None` if the record is malformed.
    pub(crate) fn load(&mut self, block: u64, rec: &[u8]) -> Option<()> {
        let view = View::parse(rec)?;
        if view.n > self.block_len {
            return None;
        }
        self.reset(block, view.clock_before);
        let mut values: [Vec<&[u8]>; 4] = Default::default();
        for (f, vals) in values.iter_mut().enumerate() {
            let mut it = view.dict_iter(f);
            for _ in 0..view.dict_count[f] {
                vals.push(it.next()?);
            }
        }
        for j in 0..view.n {
            let mut fields = [None; 4];
            for (f, slot) in fields.iter_mut().enumerate() {
                let id = view.id(f, j)?;
                if id != 0 {
                    *slot = Some(*values[f].get(usize::from(id) - 1)?);
                }
            }
            self.push_parts(view.time(j)?, fields);
        }
        Some(())
    }

    /// For field `f`, the entries of each distinct value: fills `offsets` with all offsets grouped by
    /// id (ascending within a group) and `starts` so that id `k`'s group is
    /// `offsets[starts[k - 1]..starts[k]]`.
    pub(crate) fn group(&self, f: usize, starts: &mut Vec<usize>, offsets: &mut Vec<u16>) {
        let d = self.dicts[f].len();
        starts.clear();
        starts.resize(d + 1, 0);
        for &id in &self.ids[f] {
            if id != 0 {
                starts[usize::from(id)] += 1;
            }
        }
        for k in 1..=d {
            starts[k] += starts[k - 1];
        }
        // Now `starts[k]` is the end of id k's group and `starts[k - 1]` its start.
        offsets.clear();
        offsets.resize(starts[d], 0);
        let mut next = starts.clone();
        for (o, &id) in self.ids[f].iter().enumerate() {
            if id != 0 {
                let slot = &mut next[usize::from(id) - 1];
                offsets[*slot] = o as u16;
                *slot += 1;
            }
        }
    }
}

/// Encodes a posting (ascending offsets) into `out`.
pub(crate) fn encode_posting(offsets: &[u16], out: &mut Vec<u8>) {
    out.clear();
    if offsets.len() * 2 <= BITMAP_BYTES {
        out.push(TAG_LIST);
        for o in offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
    } else {
        out.push(TAG_BITMAP);
        out.resize(1 + BITMAP_BYTES, 0);
        for &o in offsets {
            out[1 + usize::from(o / 8)] |= 1 << (o % 8);
        }
    }
}

/// The number of offsets in a posting; `None` if malformed.
pub(crate) fn posting_len(b: &[u8]) -> Option<usize> {
    let (&tag, rest) = b.split_first()?;
    match tag {
        TAG_LIST if rest.len() % 2 == 0 => Some(rest.len() / 2),
        TAG_BITMAP if rest.len() == BITMAP_BYTES => Some(rest.iter().map(|b| b.count_ones() as usize).sum()),
        _ => None,
    }
}

/// Appends the offsets of a posting, ascending, to `out`. `None` if malformed.
pub(crate) fn decode_posting(b: &[u8], out: &mut Vec<u16>) -> Option<()> {
    let (&tag, rest) = b.split_first()?;
    match tag {
        TAG_LIST => {
            if rest.len() % 2 != 0 {
                return None;
            }
            out.extend(rest.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])));
        }
        TAG_BITMAP => {
            if rest.len() != BITMAP_BYTES {
                return None;
            }
            for (i, &byte) in rest.iter().enumerate() {
                let mut bits = byte;
                while bits != 0 {
                    let bit = bits.trailing_zeros() as u16;
                    out.push(i as u16 * 8 + bit);
                    bits &= bits - 1;
                }
            }
        }
        _ => return None,
    }
    Some(())
}

/// A parsed block record, borrowing the stored bytes.
#[derive(Debug)]
pub(crate) struct View<'a> {
    pub(crate) n: usize,
    pub(crate) clock_before: Time,
    dict_count: [usize; 4],
    ids: [&'a [u8]; 4],
    times: &'a [u8],
    dicts: [&'a [u8]; 4],
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl<'a> View<'a> {
    /// `None` if the bytes are not a block record this code wrote (checks sizes, not contents).
    pub(crate) fn parse(b: &'a [u8]) -> Option<View<'a>> {
        if *b.first()? != VERSION {
            return None;
        }
        let n = usize::from(le_u16(b, 1)?);
        if n == 0 || n > MAX_BLOCK {
            return None;
        }
        let clock_before = time_from(b.get(3..)?)?;
        let mut dict_count = [0usize; 4];
        let mut dict_bytes = [0usize; 4];
        for f in 0..4 {
            dict_count[f] = usize::from(le_u16(b, 3 + TIME_BYTES + 2 * f)?);
            dict_bytes[f] = le_u32(b, 3 + TIME_BYTES + 8 + 4 * f)? as usize;
        }
        let mut at = HEADER;
        let mut ids: [&[u8]; 4] = [&[]; 4];
        for col in &mut ids {
            *col = b.get(at..at + 2 * n)?;
            at += 2 * n;
        }
        let times = b.get(at..at + TIME_BYTES * n)?;
        at += TIME_BYTES * n;
        let mut dicts: [&[u8]; 4] = [&[]; 4];
        for (f, d) in dicts.iter_mut().enumerate() {
            *d = b.get(at..at.checked_add(dict_bytes[f])?)?;
            at += dict_bytes[f];
        }
        (at == b.len()).then_some(View { n, clock_before, dict_count, ids, times, dicts })
    }

    /// Field `f`'s dictionary id of entry `j` (0: absent).
    pub(crate) fn id(&self, f: usize, j: usize) -> Option<u16> {
        le_u16(self.ids[f], 2 * j)
    }

    /// Entry `j`'s own `logged_at` (0: absent).
    pub(crate) fn time(&self, j: usize) -> Option<Time> {
        time_from(self.times.get(TIME_BYTES * j..)?)
    }

    /// Entry `j`'s own `logged_at` as stored bytes (all zero: absent); compares like the time.
    pub(crate) fn time_raw(&self, j: usize) -> Option<&'a [u8]> {
        self.times.get(TIME_BYTES * j..TIME_BYTES * (j + 1))
    }

    /// Field `f`'s dictionary values in id order; stops early if the record is malformed (callers
    /// compare the number seen with the stored count).
    fn dict_iter(&self, f: usize) -> impl Iterator<Item = &'a [u8]> {
        let mut rest = self.dicts[f];
        std::iter::from_fn(move || {
            let len = le_u32(rest, 0)? as usize;
            let v = rest.get(4..4usize.checked_add(len)?)?;
            rest = rest.get(4 + len..)?;
            Some(v)
        })
    }

    /// The id of `value` in field `f`'s dictionary: `Some(0)` if absent from this block, `None` if the
    /// record is malformed.
    pub(crate) fn lookup(&self, f: usize, value: &[u8]) -> Option<u16> {
        let mut seen = 0;
        for (k, v) in self.dict_iter(f).enumerate() {
            seen += 1;
            if v == value {
                return u16::try_from(k + 1).ok();
            }
        }
        (seen == self.dict_count[f]).then_some(0)
    }

    /// The running clock after each entry, from the first: the first `j` whose clock is `>= t`.
    pub(crate) fn first_clock_at_or_after(&self, t: Time) -> Option<usize> {
        let mut clock = self.clock_before;
        for j in 0..self.n {
            clock = clock.max(self.time(j)?);
            if clock >= t {
                return Some(j);
            }
        }
        Some(self.n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_order_like_strings() {
        let a = b"2026-11-26T17:48:20.123456Z";
        let b = b"2026-11-26T17:48:20.123457Z";
        let c = b"9999-99-99T99:99:99.999999Z";
        let z = b"0000-00-00T00:00:00.000000Z";
        assert_eq!(pack_time(z), 1);
        assert!(pack_time(a) < pack_time(b) && pack_time(b) < pack_time(c));
        assert_eq!(pack_time(b"2026-11-26T17:48:20Z"), 0);
        let t = pack_time(c);
        assert_eq!(time_from(&time_bytes(t)), Some(t));
        assert!(time_bytes(pack_time(a)) < time_bytes(pack_time(b)));
    }

    #[test]
    fn postings_round_trip() {
        let mut buf = Vec::new();
        for offsets in [vec![], vec![0u16], vec![1, 7, 4095], (0..4096).step_by(3).collect::<Vec<u16>>()] {
            encode_posting(&offsets, &mut buf);
            assert!(buf.len() <= 1 + BITMAP_BYTES);
            let mut out = Vec::new();
            decode_posting(&buf, &mut out).unwrap();
            assert_eq!(out, offsets);
            assert_eq!(posting_len(&buf), Some(offsets.len()));
        }
        assert!(decode_posting(&[0, 1], &mut Vec::new()).is_none());
        assert!(decode_posting(&[1, 0], &mut Vec::new()).is_none());
        assert!(decode_posting(&[], &mut Vec::new()).is_none());
    }

    #[test]
    fn block_round_trip() {
        let mut b = Builder::new(16);
        b.reset(3, pack_time(b"2026-11-26T17:48:20.000000Z"));
        let long = "x".repeat(2000);
        let entries = [
            format!(
                r#"{{"actor":{{"id":"a"}},"action":"{long}","logged_at":"2026-11-26T17:48:21.000000Z"}}"#
            ),
            r#"{"actor":{"id":"b"},"outcome":"ok","logged_at":"2026-11-26T17:48:19.000000Z"}"#.into(),
            "not json".into(),
            r#"{"actor":{"id":"a"},"resource":{"id":""}}"#.into(),
        ];
        for e in &entries {
            b.push(e.as_bytes());
        }
        assert!(!b.monotonic);
        let mut rec = Vec::new();
        b.encode(&mut rec);
        let v = View::parse(&rec).unwrap();
        assert_eq!(v.n, 4);
        assert_eq!(v.lookup(0, b"a"), Some(1));
        assert_eq!(v.lookup(0, b"b"), Some(2));
        assert_eq!(v.lookup(0, b"c"), Some(0));
        assert_eq!(v.lookup(1, long.as_bytes()), Some(1));
        assert_eq!(v.lookup(2, b""), Some(1));
        assert_eq!((0..4).map(|j| v.id(0, j).unwrap()).collect::<Vec<_>>(), vec![1, 2, 0, 1]);
        assert_eq!(v.time(1), Some(pack_time(b"2026-11-26T17:48:19.000000Z")));
        assert_eq!(v.time(2), Some(0));
        assert_eq!(v.first_clock_at_or_after(pack_time(b"2026-11-26T17:48:20.500000Z")), Some(0));
        assert_eq!(v.first_clock_at_or_after(pack_time(b"2026-11-26T17:48:22.000000Z")), Some(4));

        let mut c = Builder::new(16);
        c.load(3, &rec).unwrap();
        assert_eq!((c.clock, c.ids.clone(), c.times.clone()), (b.clock, b.ids.clone(), b.times.clone()));
        let mut rec2 = Vec::new();
        c.encode(&mut rec2);
        assert_eq!(rec, rec2);

        let (mut starts, mut offsets) = (Vec::new(), Vec::new());
        b.group(0, &mut starts, &mut offsets);
        assert_eq!(starts, vec![0, 2, 3]);
        assert_eq!(offsets, vec![0, 3, 1]);

        // Truncations and trailing bytes are rejected, never a panic.
        for cut in 0..rec.len() {
            assert!(View::parse(&rec[..cut]).is_none_or(|v| v.lookup(1, b"zz").is_none()));
        }
        rec.push(0);
        assert!(View::parse(&rec).is_none());
    }
}
