//! A bounded memory of one-time values (RFC 9421 nonces and signatures, client-signature ids),
//! each kept until its time window has passed, so a second use within the window is caught.
//! Time is passed in: pure, like the rest of the core. Shared by the request-signature check
//! (`graven-auth`) and the sequencer's record of client-signature ids (`graven-engine`), which
//! must not depend on each other.

use std::collections::{BTreeMap, HashMap};

/// Seen digests, each with the second after which it is forgotten. Bounded: when `capacity`
/// are live, new ones are refused ([`Seen::Full`]) rather than an old one forgotten early.
/// Expired entries are dropped a whole second at a time as time passes.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    /// Each live key and the second it expires at.
    seen: HashMap<u128, i64>,
    by_expiry: BTreeMap<i64, Vec<u128>>,
}

/// What [`ReplayCache::insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New,
    Replay,
    Full,
}

impl ReplayCache {
    pub fn new(capacity: usize) -> Self {
        ReplayCache { capacity, seen: HashMap::new(), by_expiry: BTreeMap::new() }
    }

    /// Remembers `key` until `until` (Unix seconds), unless it was already seen.
    pub fn insert(&mut self, key: u128, until: i64, now: i64) -> Seen {
        self.expire(now);
        if self.seen.contains_key(&key) {
            return Seen::Replay;
        }
        if self.seen.len() >= self.capacity {
            return Seen::Full;
        }
        self.seen.insert(key, until);
        self.by_expiry.entry(until).or_default().push(key);
        Seen::New
    }

    /// Forgets `key` (a claim whose request was refused after all), so it may be used again.
    pub fn remove(&mut self, key: u128) {
        self.seen.remove(&key);
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.seen.clear();
        self.by_expiry.clear();
    }

    fn expire(&mut self, now: i64) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if *entry.key() >= now {
                break;
            }
            let at = *entry.key();
            for k in entry.remove() {
                // Only if it was not forgotten and inserted again since, with a later expiry.
                if self.seen.get(&k) == Some(&at) {
                    self.seen.remove(&k);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_until_its_window_passes() {
        let mut c = ReplayCache::new(2);
        assert_eq!(c.insert(1, 10, 0), Seen::New);
        assert_eq!(c.insert(1, 10, 5), Seen::Replay);
        assert_eq!(c.insert(1, 10, 10), Seen::Replay, "still live at its last second");
        assert_eq!(c.insert(1, 20, 11), Seen::New, "forgotten after it");
        assert_eq!(c.insert(2, 20, 11), Seen::New);
        assert_eq!(c.insert(3, 20, 11), Seen::Full, "bounded: nothing is forgotten early");
    }

    #[test]
    fn a_removed_key_inserted_again_keeps_its_new_expiry() {
        let mut c = ReplayCache::new(10);
        assert_eq!(c.insert(7, 10, 0), Seen::New);
        c.remove(7);
        assert_eq!(c.insert(7, 50, 1), Seen::New);
        // The old expiry bucket must not forget the new claim.
        assert_eq!(c.insert(8, 60, 20), Seen::New);
        assert_eq!(c.insert(7, 50, 20), Seen::Replay);
        assert_eq!(c.len(), 2);
    }
}
