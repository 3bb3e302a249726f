//! Time for Graven's engine and auth layer, handed in rather than read from the OS.
//!
//! Logic takes a [`Clock`] (or a reading of one) and never calls `Instant::now`,
//! `SystemTime::now` or `thread::sleep` itself: the engine's and the auth crate's
//! `clippy.toml` ban them. In production every clock is [`SystemClock`], the one place those
//! calls are made. In tests a [`SimClock`] moves only when the test moves it, so a lease
//! expiry, a batching wait or a cache's time to live is a function call, not a sleep, and a
//! run is the same every time (see the engine's simulation, `graven-engine/tests/sim`).
//!
//! A clock gives two readings, for two different uses:
//! - [`Clock::now`], a monotonic [`Moment`]: for durations, deadlines, time to live and rate
//!   limits. It never goes back, and only differences between readings of one clock mean
//!   anything.
//! - [`Clock::unix_micros`], the wall clock: for timestamps written down (`logged_at`, a lease
//!   record's `written_ms`) and for windows agreed with other machines (a signature's
//!   `created`, a token's `exp`). It may jump either way, so it never measures a duration.

use std::fmt;
use std::ops::{Add, Sub};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A reading of a clock's monotonic time: how long after that clock's origin. Comparable
/// only with readings of the same clock (every [`SystemClock`] of a process shares one origin,
/// as do every view of one [`SimClock`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moment(Duration);

impl Moment {
    /// The clock's origin.
    pub const ZERO: Moment = Moment(Duration::ZERO);

    /// The moment `d` after the origin.
    pub const fn from_origin(d: Duration) -> Moment {
        Moment(d)
    }

    /// How long after the origin this is.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// How long after `earlier` this is; zero if `earlier` is later.
    pub fn since(self, earlier: Moment) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

/// Saturating: a moment past the end of `Duration` stays there.
impl Add<Duration> for Moment {
    type Output = Moment;
    fn add(self, d: Duration) -> Moment {
        Moment(self.0.saturating_add(d))
    }
}

/// Saturating at the origin.
impl Sub<Duration> for Moment {
    type Output = Moment;
    fn sub(self, d: Duration) -> Moment {
        Moment(self.0.saturating_sub(d))
    }
}

/// Where the engine and the auth layer get the time. See the crate documentation for which
/// reading serves what.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Monotonic time.
    fn now(&self) -> Moment;

    /// The wall clock, in microseconds since the Unix epoch (negative before it).
    fn unix_micros(&self) -> i64;

    /// Blocks the calling thread until [`Clock::now`] has moved on by `d`. Only threads that
    /// drive the logic sleep (the lease's, for example); the logic itself never does.
    fn sleep(&self, d: Duration);

    /// The wall clock in Unix milliseconds.
    fn unix_ms(&self) -> i64 {
        self.unix_micros().div_euclid(1000)
    }

    /// The wall clock in whole Unix seconds.
    fn unix_seconds(&self) -> i64 {
        self.unix_micros().div_euclid(1_000_000)
    }
}

/// The operating system's clocks: `Instant` (monotonic) and `SystemTime` (wall). The one place
/// the engine and the auth layer read them.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// The origin of every [`SystemClock`] reading in this process.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Clock for SystemClock {
    fn now(&self) -> Moment {
        Moment(origin().elapsed())
    }

    fn unix_micros(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
        }
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// The system clock, shared.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[derive(Debug)]
struct SimState {
    /// Monotonic time since the origin.
    mono: Duration,
    /// The wall clock, before any view's offset.
    wall_micros: i64,
}

#[derive(Debug)]
struct SimInner {
    state: Mutex<SimState>,
    /// Woken whenever time moves, for threads in [`Clock::sleep`].
    moved: Condvar,
}

/// A clock that moves only when told to ([`SimClock::advance`], [`SimClock::advance_to`]).
/// Clones and [`SimClock::with_wall_offset`] views share one timeline; a view adds its own
/// fixed offset to the wall clock, as a machine whose clock is a little off does.
///
/// [`Clock::sleep`] blocks until some other thread has advanced the clock far enough: a
/// simulated clock never moves by itself. A single-threaded simulation therefore never calls
/// it; it steps the logic itself and moves the clock between steps.
#[derive(Debug, Clone)]
pub struct SimClock {
    inner: Arc<SimInner>,
    wall_offset_micros: i64,
}

impl SimClock {
    /// A clock at its origin whose wall clock reads `unix_micros`.
    pub fn new(unix_micros: i64) -> Self {
        SimClock {
            inner: Arc::new(SimInner {
                state: Mutex::new(SimState { mono: Duration::ZERO, wall_micros: unix_micros }),
                moved: Condvar::new(),
            }),
            wall_offset_micros: 0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Another view of the same timeline whose wall clock reads `offset_micros` more (or less,
    /// if negative) than this one's.
    pub fn with_wall_offset(&self, offset_micros: i64) -> SimClock {
        SimClock {
            inner: self.inner.clone(),
            wall_offset_micros: self.wall_offset_micros.saturating_add(offset_micros),
        }
    }

    /// Moves both clocks on by `d`.
    pub fn advance(&self, d: Duration) {
        let mut s = self.state();
        s.mono = s.mono.saturating_add(d);
        s.wall_micros = s.wall_micros.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        drop(s);
        self.inner.moved.notify_all();
    }

    /// Moves both clocks on to monotonic time `t`; nothing happens if it has passed.
    pub fn advance_to(&self, t: Moment) {
        let now = self.state().mono;
        if t.0 > now {
            self.advance(t.0 - now);
        }
    }

    /// Sets the wall clock (of the shared timeline) to `unix_micros`, as an NTP step does;
    /// the monotonic time does not move.
    pub fn set_unix_micros(&self, unix_micros: i64) {
        self.state().wall_micros = unix_micros.saturating_sub(self.wall_offset_micros);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Moment {
        Moment(self.state().mono)
    }

    fn unix_micros(&self) -> i64 {
        self.state().wall_micros.saturating_add(self.wall_offset_micros)
    }

    fn sleep(&self, d: Duration) {
        let mut s = self.state();
        let until = s.mono.saturating_add(d);
        while s.mono < until {
            s = self.inner.moved.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_clock_moves_only_when_told() {
        let c = SimClock::new(1_700_000_000_000_000);
        assert_eq!(c.now(), Moment::ZERO);
        assert_eq!(c.now(), Moment::ZERO);
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now().since_origin(), Duration::from_millis(1500));
        assert_eq!(c.unix_ms(), 1_700_000_001_500);
        assert_eq!(c.unix_seconds(), 1_700_000_001);
        c.advance_to(Moment::from_origin(Duration::from_secs(1)));
        assert_eq!(c.now().since_origin(), Duration::from_millis(1500), "never back");
    }

    #[test]
    fn views_share_the_timeline_and_offset_the_wall_clock() {
        let c = SimClock::new(0);
        let ahead = c.with_wall_offset(30_000_000);
        c.advance(Duration::from_secs(2));
        assert_eq!(ahead.now(), c.now());
        assert_eq!(ahead.unix_seconds(), 32);
        // A wall-clock step moves neither monotonic clock, and keeps the views' offsets.
        ahead.set_unix_micros(-5_000_000);
        assert_eq!(ahead.unix_seconds(), -5);
        assert_eq!(c.unix_seconds(), -35);
        assert_eq!(c.unix_ms(), -35_000);
        assert_eq!(c.now().since_origin(), Duration::from_secs(2));
    }

    #[test]
    fn a_simulated_sleep_returns_when_another_thread_advances_the_clock() {
        let c = SimClock::new(0);
        let sleeper = std::thread::spawn({
            let c = c.clone();
            move || {
                let before = c.now();
                c.sleep(Duration::from_secs(10));
                (before, c.now())
            }
        });
        let mut steps = 0;
        while !sleeper.is_finished() {
            assert!(steps < 10_000, "the sleeper never woke");
            c.advance(Duration::from_millis(500));
            std::thread::sleep(Duration::from_millis(1));
            steps += 1;
        }
        let (before, after) = sleeper.join().unwrap();
        assert!(after.since(before) >= Duration::from_secs(10), "woke after {:?}", after.since(before));
    }

    #[test]
    fn moments_saturate() {
        let m = Moment::from_origin(Duration::from_secs(1));
        assert_eq!(m - Duration::from_secs(5), Moment::ZERO);
        assert_eq!(Moment::ZERO.since(m), Duration::ZERO);
        assert_eq!(m.since(Moment::ZERO), Duration::from_secs(1));
        assert_eq!(
            Moment::from_origin(Duration::MAX) + Duration::from_secs(1),
            Moment::from_origin(Duration::MAX)
        );
    }

    #[test]
    fn the_system_clock_reads_the_os() {
        let c = SystemClock;
        let (a, b) = (c.now(), c.now());
        assert!(b >= a);
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64;
        assert!((c.unix_micros() - wall).abs() < 5_000_000);
        c.sleep(Duration::from_millis(5));
        assert!(c.now().since(b) >= Duration::from_millis(5));
    }
}
