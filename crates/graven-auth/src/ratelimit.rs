//! Token buckets that bound how many `denied` records reach the log: one bucket per source
//! address and one overall, so a flood of bad credentials cannot flood the log. What the
//! buckets drop is not lost: it is tallied (per source, per reason, bounded) and written to the
//! log as one summary event now and then ([`Limiter::take_dropped`]), so a brute force hidden
//! in a flood from many addresses still shows, with its address and its count. Time is passed
//! in, so the limiter is tested without sleeping.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use graven_clock::Moment;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Moment,
}

impl Bucket {
    fn full(burst: f64, now: Moment) -> Self {
        Bucket { tokens: burst, last: now }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Moment) {
        let dt = now.since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.last = now;
    }
}

/// Rates are per second; bursts are how many may go at once after a quiet spell.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub global_rate: f64,
    pub global_burst: f64,
    pub source_rate: f64,
    pub source_burst: f64,
    /// Most sources tracked; when full, idle ones are forgotten, else new sources are refused.
    pub max_sources: usize,
    /// Most sources the tally of dropped records names; drops from further sources are only
    /// counted together.
    pub max_tallied_sources: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            global_rate: 20.0,
            global_burst: 50.0,
            source_rate: 2.0,
            source_burst: 10.0,
            max_sources: 4096,
            max_tallied_sources: 1024,
        }
    }
}

/// Dropped records from one source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceDrops {
    pub dropped: u64,
    pub reasons: BTreeMap<&'static str, u64>,
}

/// What the limiter dropped since the last [`Limiter::take_dropped`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    pub total: u64,
    /// Wall-clock milliseconds of the first and last drop.
    pub first_ms: i64,
    pub last_ms: i64,
    pub reasons: BTreeMap<&'static str, u64>,
    /// Per source (`None`: the request had no known address), up to `max_tallied_sources`.
    pub sources: HashMap<Option<IpAddr>, SourceDrops>,
    /// Drops from sources past that bound, and how many such sources were seen (at most the
    /// number of drops: a source may be counted again after the table filled).
    pub untallied: u64,
}

impl Dropped {
    /// The sources with the most drops, most first (ties by address), at most `n`.
    pub fn top(&self, n: usize) -> Vec<(Option<IpAddr>, &SourceDrops)> {
        let mut all: Vec<_> = self.sources.iter().map(|(ip, d)| (*ip, d)).collect();
        all.sort_by(|a, b| b.1.dropped.cmp(&a.1.dropped).then(a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

#[derive(Debug, Default)]
struct State {
    limits: Limits,
    global: Option<Bucket>,
    sources: HashMap<IpAddr, Bucket>,
    dropped: Dropped,
}

#[derive(Debug)]
pub struct Limiter {
    state: Mutex<State>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Self {
        Limiter { state: Mutex::new(State { limits, ..State::default() }) }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).limits
    }

    /// New limits (a configuration reload), from the next request on. The buckets keep what
    /// they hold, cut to the new bursts at their next refill; the tally of drops is kept.
    pub fn set_limits(&self, limits: Limits) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).limits = limits;
    }

    /// Takes one token from the source's bucket and the global one, or none if either is empty;
    /// then the refusal (`reason`) is tallied instead. `now` is a monotonic reading (buckets
    /// refill with it); `now_ms` is the wall clock, for the summary's time range.
    pub fn allow(&self, source: Option<IpAddr>, reason: &'static str, now: Moment, now_ms: i64) -> bool {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *guard;
        if self.take(state, source, now) {
            return true;
        }
        let d = &mut state.dropped;
        if d.total == 0 {
            d.first_ms = now_ms;
        }
        d.total += 1;
        d.last_ms = now_ms;
        *d.reasons.entry(reason).or_default() += 1;
        let room = d.sources.len() < state.limits.max_tallied_sources;
        match d.sources.get_mut(&source) {
            Some(s) => {
                s.dropped += 1;
                *s.reasons.entry(reason).or_default() += 1;
            }
            None if room => {
                let s = d.sources.entry(source).or_default();
                s.dropped = 1;
                s.reasons.insert(reason, 1);
            }
            None => d.untallied += 1,
        }
        false
    }

    fn take(&self, state: &mut State, source: Option<IpAddr>, now: Moment) -> bool {
        let l = state.limits;
        let g = state.global.get_or_insert_with(|| Bucket::full(l.global_burst, now));
        g.refill(l.global_rate, l.global_burst, now);
        if g.tokens < 1.0 {
            return false;
        }
        if let Some(ip) = source {
            let sources = &mut state.sources;
            if !sources.contains_key(&ip) && sources.len() >= l.max_sources {
                // Forget sources whose buckets have refilled: they are as good as new.
                sources.retain(|_, b| {
                    b.refill(l.source_rate, l.source_burst, now);
                    b.tokens < l.source_burst
                });
                if sources.len() >= l.max_sources {
                    return false;
                }
            }
            let b = sources.entry(ip).or_insert_with(|| Bucket::full(l.source_burst, now));
            b.refill(l.source_rate, l.source_burst, now);
            if b.tokens < 1.0 {
                return false;
            }
            b.tokens -= 1.0;
        }
        if let Some(g) = state.global.as_mut() {
            g.tokens -= 1.0;
        }
        true
    }

    /// What was dropped since the last call, or `None` if nothing was; starts a new tally.
    pub fn take_dropped(&self) -> Option<Dropped> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (guard.dropped.total > 0).then(|| std::mem::take(&mut guard.dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    fn limits() -> Limits {
        Limits {
            global_rate: 10.0,
            global_burst: 20.0,
            source_rate: 1.0,
            source_burst: 3.0,
            max_sources: 4,
            max_tallied_sources: 8,
        }
    }

    impl Limiter {
        fn allow_at(&self, source: Option<IpAddr>, now: Moment) -> bool {
            self.allow(source, "invalid-credential", now, 0)
        }
    }

    /// The review's case: a flood from many addresses drains the global bucket, so a brute
    /// force from one address gets (almost) no records of its own. Its drops are tallied by
    /// address, and it tops the summary.
    #[test]
    fn a_brute_force_inside_a_flood_is_named_by_the_tally() {
        let l = Limiter::new(Limits { max_sources: 10_000, max_tallied_sources: 64, ..limits() });
        let t0 = Moment::ZERO + Duration::from_secs(1000);
        let attacker = ip(250);
        let mut recorded_for_attacker = 0;
        for second in 0..10u64 {
            let t = t0 + Duration::from_secs(second);
            for n in 0..200u16 {
                // 200 addresses, one bad request each per second...
                let flood = Some(IpAddr::from([10, 1, (n >> 8) as u8, n as u8]));
                l.allow(flood, "invalid-credential", t, second as i64 * 1000);
                // ...and the brute force: 20 guesses per second from one address.
                if n % 10 == 0 && l.allow(attacker, "invalid-credential", t, second as i64 * 1000) {
                    recorded_for_attacker += 1;
                }
            }
        }
        let d = l.take_dropped().unwrap();
        assert!(recorded_for_attacker <= 12, "the flood crowds it out: {recorded_for_attacker}");
        let top = d.top(1);
        assert_eq!(top[0].0, attacker, "the brute force tops the summary");
        assert_eq!(top[0].1.dropped, 200 - recorded_for_attacker);
        assert_eq!(top[0].1.reasons["invalid-credential"], top[0].1.dropped);
        // Every drop is accounted for, named or not.
        let named: u64 = d.sources.values().map(|s| s.dropped).sum();
        assert_eq!(named + d.untallied, d.total);
        assert_eq!(d.sources.len(), 64, "the tally is bounded");
        assert_eq!((d.first_ms, d.last_ms), (0, 9000));
        assert!(l.take_dropped().is_none(), "a new tally starts empty");
    }

    #[test]
    fn one_source_gets_its_burst_then_its_rate() {
        let l = Limiter::new(limits());
        let t0 = Moment::ZERO + Duration::from_secs(1000);
        let allowed = (0..10).filter(|_| l.allow_at(ip(1), t0)).count();
        assert_eq!(allowed, 3);
        assert!(!l.allow_at(ip(1), t0 + Duration::from_millis(500)));
        assert!(l.allow_at(ip(1), t0 + Duration::from_millis(1000)));
        assert!(!l.allow_at(ip(1), t0 + Duration::from_millis(1100)));
        // Another source is not held back by the first.
        assert!(l.allow_at(ip(2), t0));
    }

    #[test]
    fn the_global_bucket_caps_all_sources_together() {
        let l = Limiter::new(Limits { max_sources: 1000, ..limits() });
        let t0 = Moment::ZERO + Duration::from_secs(1000);
        let allowed = (0..100u8).filter(|&n| l.allow_at(ip(n), t0)).count();
        assert_eq!(allowed, 20);
        // Ten per second after that, whoever asks.
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (100..200u8).filter(|&n| l.allow_at(ip(n), t1)).count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn the_source_table_is_bounded() {
        let l = Limiter::new(limits());
        let t0 = Moment::ZERO + Duration::from_secs(1000);
        for n in 0..4 {
            assert!(l.allow_at(ip(n), t0));
        }
        assert!(!l.allow_at(ip(9), t0), "table full of busy sources: new ones refused");
        // Once the old buckets have refilled they are forgotten and make room.
        assert!(l.allow_at(ip(9), t0 + Duration::from_secs(10)));
    }

    #[test]
    fn new_limits_apply_from_the_next_request() {
        let l = Limiter::new(limits());
        let t0 = Moment::ZERO + Duration::from_secs(1000);
        assert_eq!((0..10).filter(|_| l.allow_at(ip(1), t0)).count(), 3);
        // Tighter: a source with a full bucket gets the new, smaller burst.
        l.set_limits(Limits { source_burst: 1.0, ..limits() });
        assert_eq!(l.limits().source_burst, 1.0);
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| l.allow_at(ip(2), t1)).count(), 1);
        // Looser: ten at once.
        l.set_limits(Limits { source_burst: 10.0, ..limits() });
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| l.allow_at(ip(3), t2)).count(), 10);
        // The tally of drops survives the changes.
        assert_eq!(l.take_dropped().unwrap().total, 7 + 9 + 10);
    }
}
