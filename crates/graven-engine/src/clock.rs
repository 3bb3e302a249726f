//! Where the engine gets the wall-clock time: injected into the sequencer (for `logged_at`
//! and the client-signature window) so tests control it. The lease's liveness timing runs on
//! the monotonic clock and its record's `written_ms` (for people reading the object) on
//! [`system_unix_ms`]; both are the next place a simulated clock goes.

use std::sync::Arc;

/// A source of the current time.
pub type Clock = Arc<dyn Fn() -> time::OffsetDateTime + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(time::OffsetDateTime::now_utc)
}

/// Microseconds since the Unix epoch of a clock's reading.
pub fn unix_micros(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// The system clock in Unix milliseconds.
pub fn system_unix_ms() -> i64 {
    unix_micros(time::OffsetDateTime::now_utc()) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The core formats `logged_at` without the `time` crate; it must write exactly what the
    /// server wrote with it before.
    #[test]
    fn the_core_format_matches_the_time_crate() {
        let mut t: i64 = -62_000_000_000_000_000;
        while t < 253_000_000_000_000_000 {
            let dt = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t) * 1000).unwrap();
            let with_time = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.microsecond()
            );
            assert_eq!(graven_core::event::format_timestamp(unix_micros(dt)), with_time, "{t}");
            t += 12_345_678_901_234;
        }
    }
}
