//! Token buckets that bound how many `denied` records reach the log: one bucket overall and
//! one per source address, so a flood of bad credentials cannot flood the log. Time is passed
//! in, so the limiter is tested without sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket { tokens: burst, last: now }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            global_rate: 20.0,
            global_burst: 50.0,
            source_rate: 2.0,
            source_burst: 10.0,
            max_sources: 4096,
        }
    }
}

#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    state: Mutex<(Option<Bucket>, HashMap<IpAddr, Bucket>)>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Self {
        Limiter { limits, state: Mutex::new((None, HashMap::new())) }
    }

    /// Takes one token from the source's bucket and the global one, or none if either is empty.
    pub fn allow(&self, source: Option<IpAddr>, now: Instant) -> bool {
        let l = self.limits;
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (global, sources) = &mut *guard;
        let g = global.get_or_insert_with(|| Bucket::full(l.global_burst, now));
        g.refill(l.global_rate, l.global_burst, now);
        if g.tokens < 1.0 {
            return false;
        }
        if let Some(ip) = source {
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
        g.tokens -= 1.0;
        true
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
        Limits { global_rate: 10.0, global_burst: 20.0, source_rate: 1.0, source_burst: 3.0, max_sources: 4 }
    }

    #[test]
    fn one_source_gets_its_burst_then_its_rate() {
        let l = Limiter::new(limits());
        let t0 = Instant::now();
        let allowed = (0..10).filter(|_| l.allow(ip(1), t0)).count();
        assert_eq!(allowed, 3);
        assert!(!l.allow(ip(1), t0 + Duration::from_millis(500)));
        assert!(l.allow(ip(1), t0 + Duration::from_millis(1000)));
        assert!(!l.allow(ip(1), t0 + Duration::from_millis(1100)));
        // Another source is not held back by the first.
        assert!(l.allow(ip(2), t0));
    }

    #[test]
    fn the_global_bucket_caps_all_sources_together() {
        let l = Limiter::new(Limits { max_sources: 1000, ..limits() });
        let t0 = Instant::now();
        let allowed = (0..100u8).filter(|&n| l.allow(ip(n), t0)).count();
        assert_eq!(allowed, 20);
        // Ten per second after that, whoever asks.
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (100..200u8).filter(|&n| l.allow(ip(n), t1)).count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn the_source_table_is_bounded() {
        let l = Limiter::new(limits());
        let t0 = Instant::now();
        for n in 0..4 {
            assert!(l.allow(ip(n), t0));
        }
        assert!(!l.allow(ip(9), t0), "table full of busy sources: new ones refused");
        // Once the old buckets have refilled they are forgotten and make room.
        assert!(l.allow(ip(9), t0 + Duration::from_secs(10)));
    }
}
