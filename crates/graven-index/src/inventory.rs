//! The inventory: what the log says about each actor, kept as entries are indexed.
//!
//! Every entry with a string `actor.id` updates that actor's [`Activity`] (first and last entry,
//! counts, the kind it was last given, the sources that reported it, and hourly and daily
//! buckets of its recent events) and the [`Usage`] of its `actor.credential` (and, for an entry
//! a source reported, the use of the source's own credential, `actor.attested_by.credential`,
//! under the source's id, so that a source's keys show their last use too), in the same redb
//! write transaction that indexes the entry. So the inventory is exactly as far as the search
//! index (`indexed_size`), survives a restart, and is rebuilt by `graven reindex` like the rest.
//! Nothing here scans the log on a read: a read is one pass over the `inventory` table.
//!
//! # Windows
//!
//! An activity keeps the event counts of the newest [`HOURS`] UTC hours and [`DAYS`] UTC days
//! that hold any of its events, by `logged_at`. [`Activity::events_last_hours`] at `now` counts the
//! events of the current UTC hour and the 23 before it (a window between 23 and 24 hours long,
//! exact to the hour); [`Activity::events_last_days`] the current UTC day and the 29 before it.
//! The answer is exact for any `now` not earlier than the actor's newest `logged_at` (the server's
//! clock, which stamps `logged_at`, only moves forward); an entry whose `logged_at` is older than
//! every kept bucket (a log whose time went backwards) is not counted in a window, where it could
//! never fall anyway. Entries without a `logged_at` in the fixed format count everywhere but in
//! the windows and the times.

use std::collections::HashMap;

use redb::{ReadableTable, TableDefinition};

use crate::error::IndexError;
use crate::extract::Extracted;

/// `inventory: actor id -> Activity` (encoded by [`Activity::encode`]).
pub(crate) const INVENTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("inventory");
/// `credentials: (actor id, credential) -> Usage` (encoded by [`Usage::encode`]).
pub(crate) const CREDENTIALS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("credentials");

/// Hourly buckets kept per actor (the 24-hour window).
pub const HOURS: u32 = 24;
/// Daily buckets kept per actor (the 30-day window).
pub const DAYS: u32 = 30;
/// Distinct reporting sources kept per actor, in the order first seen.
pub const MAX_SOURCES: usize = 8;
/// Distinct actors (and credentials) an `add` holds in memory before writing them out.
const MAX_PENDING: usize = 16 * 1024;

const US_PER_HOUR: i64 = 3_600_000_000;
const US_PER_DAY: i64 = 24 * US_PER_HOUR;
const RECORD_VERSION: u8 = 1;

/// One entry of an actor: its log index and `logged_at` (Unix microseconds; `None` when the entry
/// has no `logged_at` in the fixed format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub index: u64,
    pub at_us: Option<i64>,
}

/// What the log says about one actor (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// `actor.id`.
    pub id: String,
    /// The `actor.kind` of its latest entry that has one.
    pub kind: Option<String>,
    /// Its first and last entries, by log index.
    pub first: Seen,
    pub last: Seen,
    /// Entries attributed to it.
    pub events: u64,
    /// Entries with `outcome: "denied"`.
    pub denied: u64,
    /// Entries reported by a source (`actor.attested_by`).
    pub reported: u64,
    /// The sources (`actor.attested_by.id`) that reported it, first seen first, at most
    /// [`MAX_SOURCES`].
    pub sources: Vec<String>,
    /// `(UTC hour since the epoch, events)`, ascending, the newest [`HOURS`] hours with events.
    hours: Vec<(u32, u32)>,
    /// `(UTC day since the epoch, events)`, ascending, the newest [`DAYS`] days with events.
    days: Vec<(u32, u32)>,
}

/// The use of one credential by one actor (`actor.credential`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub first: Seen,
    pub last: Seen,
    pub events: u64,
}

impl Activity {
    fn new(id: &str, at: Seen) -> Activity {
        Activity {
            id: id.to_owned(),
            kind: None,
            first: at,
            last: at,
            events: 0,
            denied: 0,
            reported: 0,
            sources: Vec::new(),
            hours: Vec::new(),
            days: Vec::new(),
        }
    }

    /// Events in the current UTC hour at `now_us` and the `HOURS - 1` hours before it.
    pub fn events_last_hours(&self, now_us: i64) -> u64 {
        window(&self.hours, bucket(now_us, US_PER_HOUR), HOURS)
    }

    /// Events in the current UTC day at `now_us` and the `DAYS - 1` days before it.
    /// `(UTC day since the epoch, events)`, ascending: the newest days with events (at most
    /// the window's), for a histogram.
    pub fn daily(&self) -> &[(u32, u32)] {
        &self.days
    }

    pub fn events_last_days(&self, now_us: i64) -> u64 {
        window(&self.days, bucket(now_us, US_PER_DAY), DAYS)
    }

    fn apply(&mut self, at: Seen, ev: &Extracted<'_>) {
        self.last = at;
        self.events += 1;
        if ev.fields[3].as_deref() == Some("denied") {
            self.denied += 1;
        }
        if let Some(k) = ev.actor.kind.as_deref()
            && self.kind.as_deref() != Some(k)
        {
            self.kind = Some(k.to_owned());
        }
        if let Some(src) = ev.actor.attested_by.as_deref() {
            self.reported += 1;
            if self.sources.len() < MAX_SOURCES && !self.sources.iter().any(|s| s == src) {
                self.sources.push(src.to_owned());
            }
        }
        if let Some(us) = at.at_us {
            count(&mut self.hours, bucket(us, US_PER_HOUR), HOURS);
            count(&mut self.days, bucket(us, US_PER_DAY), DAYS);
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(RECORD_VERSION);
        put_opt_str(out, self.kind.as_deref());
        put_seen(out, self.first);
        put_seen(out, self.last);
        for n in [self.events, self.denied, self.reported] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.push(self.sources.len() as u8);
        for s in &self.sources {
            put_str(out, s);
        }
        for buckets in [&self.hours, &self.days] {
            out.push(buckets.len() as u8);
            for &(b, n) in buckets {
                out.extend_from_slice(&b.to_be_bytes());
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
    }

    pub(crate) fn decode(id: &str, b: &[u8]) -> Option<Activity> {
        let mut r = Reader(b);
        if r.u8()? != RECORD_VERSION {
            return None;
        }
        let kind = r.opt_str()?;
        let (first, last) = (r.seen()?, r.seen()?);
        let (events, denied, reported) = (r.u64()?, r.u64()?, r.u64()?);
        let n = r.u8()?;
        let mut sources = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            sources.push(r.str()?);
        }
        let mut buckets = [Vec::new(), Vec::new()];
        for v in &mut buckets {
            let n = r.u8()?;
            for _ in 0..n {
                v.push((r.u32()?, r.u32()?));
            }
        }
        let [hours, days] = buckets;
        r.0.is_empty().then(|| Activity {
            id: id.to_owned(),
            kind,
            first,
            last,
            events,
            denied,
            reported,
            sources,
            hours,
            days,
        })
    }
}

impl Usage {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(RECORD_VERSION);
        put_seen(out, self.first);
        put_seen(out, self.last);
        out.extend_from_slice(&self.events.to_be_bytes());
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Usage> {
        let mut r = Reader(b);
        if r.u8()? != RECORD_VERSION {
            return None;
        }
        let u = Usage { first: r.seen()?, last: r.seen()?, events: r.u64()? };
        r.0.is_empty().then_some(u)
    }
}

/// The bucket (hour or day since the epoch) of a time; times before 1970 are bucket 0.
fn bucket(us: i64, len: i64) -> u32 {
    u32::try_from(us.max(0) / len).unwrap_or(u32::MAX)
}

/// Adds one event to bucket `b` of an ascending list that keeps only the newest `keep` buckets
/// (those after the newest minus `keep`).
fn count(buckets: &mut Vec<(u32, u32)>, b: u32, keep: u32) {
    let newest = buckets.last().map_or(b, |&(n, _)| n.max(b));
    if b + keep <= newest {
        return; // older than every bucket a window at or after `newest` can reach
    }
    match buckets.binary_search_by_key(&b, |&(k, _)| k) {
        Ok(i) => buckets[i].1 = buckets[i].1.saturating_add(1),
        Err(i) => buckets.insert(i, (b, 1)),
    }
    let cut = buckets.partition_point(|&(k, _)| k + keep <= newest);
    buckets.drain(..cut);
}

fn window(buckets: &[(u32, u32)], now: u32, len: u32) -> u64 {
    buckets.iter().filter(|&&(b, _)| b <= now && b + len > now).map(|&(_, n)| u64::from(n)).sum()
}

/// A fixed-format `logged_at` (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, shape already checked) as Unix
/// microseconds; `None` when a field is out of range.
pub(crate) fn unix_micros(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b.get(r)?.iter().try_fold(0i64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0')))
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s, us) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000_000 + s * 1_000_000 + us)
}

/// The inventory changes of one `add` call, held in memory and written out in bounded rounds.
#[derive(Default)]
pub(crate) struct Pending {
    actors: HashMap<String, Activity>,
    credentials: HashMap<(String, String), Usage>,
    scratch: Vec<u8>,
}

pub(crate) struct InventoryTables<'t> {
    pub(crate) inventory: redb::Table<'t, &'static str, &'static [u8]>,
    pub(crate) credentials: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
}

impl Pending {
    /// Records entry `index` (already extracted as `ev`); loads the actor's record on first touch.
    pub(crate) fn record(
        &mut self,
        index: u64,
        ev: &Extracted<'_>,
        t: &mut InventoryTables<'_>,
    ) -> Result<(), IndexError> {
        let Some(id) = ev.fields[0].as_deref() else { return Ok(()) };
        if self.actors.len() >= MAX_PENDING || self.credentials.len() >= MAX_PENDING {
            self.write(t)?;
        }
        let at = Seen { index, at_us: ev.logged_at.as_deref().and_then(unix_micros) };
        let activity = match self.actors.get_mut(id) {
            Some(a) => a,
            None => {
                let a = match t.inventory.get(id)? {
                    Some(g) => Activity::decode(id, g.value()).ok_or(IndexError::Corrupt("bad activity"))?,
                    None => Activity::new(id, at),
                };
                self.actors.entry(id.to_owned()).or_insert(a)
            }
        };
        activity.apply(at, ev);
        // The actor's credential; and for a reported entry, the reporting source's own
        // credential (`actor.attested_by.credential`), recorded under the source's id.
        let attester = ev.actor.attested_by.as_deref().zip(ev.actor.attested_credential.as_deref());
        for (id, c) in ev.actor.credential.as_deref().map(|c| (id, c)).into_iter().chain(attester) {
            let key = (id.to_owned(), c.to_owned());
            let usage = match self.credentials.get_mut(&key) {
                Some(u) => u,
                None => {
                    let u = match t.credentials.get((id, c))? {
                        Some(g) => Usage::decode(g.value()).ok_or(IndexError::Corrupt("bad usage"))?,
                        None => Usage { first: at, last: at, events: 0 },
                    };
                    self.credentials.entry(key).or_insert(u)
                }
            };
            usage.last = at;
            usage.events += 1;
        }
        Ok(())
    }

    /// Writes every held record to its table and forgets them.
    pub(crate) fn write(&mut self, t: &mut InventoryTables<'_>) -> Result<(), IndexError> {
        let mut actors: Vec<_> = self.actors.drain().collect();
        actors.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (id, a) in actors {
            a.encode(&mut self.scratch);
            t.inventory.insert(id.as_str(), self.scratch.as_slice())?;
        }
        let mut creds: Vec<_> = self.credentials.drain().collect();
        creds.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for ((id, c), u) in creds {
            u.encode(&mut self.scratch);
            t.credentials.insert((id.as_str(), c.as_str()), self.scratch.as_slice())?;
        }
        Ok(())
    }
}

/// Every actor's activity, in `id` order, from one read of the table.
pub(crate) fn read_all(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<Activity>, IndexError> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        out.push(Activity::decode(k.value(), v.value()).ok_or(IndexError::Corrupt("bad activity"))?);
    }
    Ok(out)
}

/// At most `max` activities after `after` (exclusive), in `id` order.
pub(crate) fn read_after(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    after: Option<&str>,
    max: usize,
) -> Result<Vec<Activity>, IndexError> {
    let lower = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
    let mut out = Vec::new();
    for row in table.range::<&str>((lower, std::ops::Bound::Unbounded))?.take(max) {
        let (k, v) = row?;
        out.push(Activity::decode(k.value(), v.value()).ok_or(IndexError::Corrupt("bad activity"))?);
    }
    Ok(out)
}

/// Every credential `actor` used, in credential order.
pub(crate) fn read_credentials(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    actor: &str,
) -> Result<Vec<(String, Usage)>, IndexError> {
    let mut out = Vec::new();
    for row in table.range((actor, "")..)? {
        let (k, v) = row?;
        let (a, c) = k.value();
        if a != actor {
            break;
        }
        out.push((c.to_owned(), Usage::decode(v.value()).ok_or(IndexError::Corrupt("bad usage"))?));
    }
    Ok(out)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

fn put_seen(out: &mut Vec<u8>, s: Seen) {
    out.extend_from_slice(&s.index.to_be_bytes());
    match s.at_us {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.to_be_bytes());
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }
    fn str(&mut self) -> Option<String> {
        let n = usize::try_from(self.u32()?).ok()?;
        let s = std::str::from_utf8(self.0.get(..n)?).ok()?.to_owned();
        self.0 = &self.0[n..];
        Some(s)
    }
    fn opt_str(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.str().map(Some),
            _ => None,
        }
    }
    fn seen(&mut self) -> Option<Seen> {
        let index = self.u64()?;
        let at_us = match self.u8()? {
            0 => None,
            1 => Some(i64::from_be_bytes(self.take()?)),
            _ => return None,
        };
        Some(Seen { index, at_us })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unix_micros_matches_known_times() {
        assert_eq!(unix_micros("1970-01-01T00:00:00.000000Z"), Some(0));
        assert_eq!(unix_micros("2026-11-26T17:48:20.123456Z"), Some(1_795_715_300_123_456));
        assert_eq!(unix_micros("2000-02-29T23:59:59.999999Z"), Some(951_868_799_999_999));
        assert_eq!(unix_micros("2026-13-01T00:00:00.000000Z"), None);
    }

    #[test]
    fn buckets_keep_the_newest_and_count_windows() {
        let mut v = Vec::new();
        for b in [5, 5, 7, 3, 40, 6] {
            count(&mut v, b, 30);
        }
        // 3, 5, 6 and 7 are within 30 of 40 only if b + 30 > 40: 11.. are kept; all older dropped.
        assert_eq!(v, vec![(40, 1)]);
        let mut v = Vec::new();
        for b in [10, 12, 12, 39, 9] {
            count(&mut v, b, 30);
        }
        assert_eq!(v, vec![(10, 1), (12, 2), (39, 1)]);
        assert_eq!(window(&v, 39, 30), 4);
        assert_eq!(window(&v, 40, 30), 3);
        assert_eq!(window(&v, 11, 30), 1);
    }

    #[test]
    fn records_round_trip() {
        let mut a = Activity::new("svc:x", Seen { index: 3, at_us: Some(-5) });
        a.kind = Some("bot".into());
        a.sources = vec!["src:a".into(), "é".into()];
        a.hours = vec![(1, 2), (3, 4)];
        a.days = vec![(9, 9)];
        a.last = Seen { index: 9, at_us: None };
        a.events = 7;
        let mut b = Vec::new();
        a.encode(&mut b);
        assert_eq!(Activity::decode("svc:x", &b), Some(a));
        assert_eq!(Activity::decode("svc:x", &b[..b.len() - 1]), None);
        let u = Usage {
            first: Seen { index: 1, at_us: None },
            last: Seen { index: 2, at_us: Some(9) },
            events: 2,
        };
        u.encode(&mut b);
        assert_eq!(Usage::decode(&b), Some(u));
    }
}
