//! Canonical events: what a JSON line becomes before it is a leaf.
//!
//! An event is a JSON object, canonicalised with strict RFC 8785 ([`crate::jcs`]), and at most
//! [`MAX_ENTRY_SIZE`] bytes once canonical (the tile format's `u16` length prefix).

use crate::jcs::JcsError;
use crate::jcs_direct;
pub use crate::tile::MAX_ENTRY_SIZE;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("{0}")]
    Json(#[from] JcsError),
    #[error("an event must be a JSON object {{...}}, not {0}")]
    NotAnObject(&'static str),
    #[error(
        "canonical event is {0} bytes, over the {MAX_ENTRY_SIZE}-byte limit; store large payloads elsewhere and log their digest"
    )]
    TooLarge(usize),
}

/// Canonicalises one JSON event. Rejects anything that is not a JSON object or that cannot be
/// represented exactly (see [`crate::jcs`]).
pub fn canonical_event(input: &[u8]) -> Result<Vec<u8>, EventError> {
    // One pass, no tree; what the value is shows in the first byte of its canonical form.
    let out = jcs_direct::canonicalize(input)?;
    let kind = match out.first() {
        Some(b'{') => None,
        Some(b'n') => Some("null"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'"') => Some("a string"),
        Some(b'[') => Some("an array"),
        _ => Some("a number"),
    };
    if let Some(kind) = kind {
        return Err(EventError::NotAnObject(kind));
    }
    if out.len() > MAX_ENTRY_SIZE {
        return Err(EventError::TooLarge(out.len()));
    }
    Ok(out)
}

/// `logged_at`'s fixed-width format, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds): fixed
/// width, so text order is time order. The shaper writes [`LOGGED_AT_PLACEHOLDER`] where the
/// sequencer later [`stamp`]s the commit time, which keeps the canonical form canonical.
pub const TIMESTAMP_LEN: usize = 27;

/// What an event holds in `logged_at` until the sequencer stamps it.
pub const LOGGED_AT_PLACEHOLDER: &str = "0000-00-00T00:00:00.000000Z";

/// Writes `timestamp` (one of [`format_timestamp`]'s) over the [`TIMESTAMP_LEN`] bytes at
/// `stamp_at` of an event, in place. False, and nothing written, if it does not fit.
pub fn stamp(event: &mut [u8], stamp_at: usize, timestamp: &str) -> bool {
    match event.get_mut(stamp_at..stamp_at.saturating_add(TIMESTAMP_LEN)) {
        Some(slot) if timestamp.len() == TIMESTAMP_LEN => {
            slot.copy_from_slice(timestamp.as_bytes());
            true
        }
        _ => false,
    }
}

/// Unix microseconds of `9999-12-31T23:59:59.999999Z`, the last instant the format can write.
const MAX_MICROS: i64 = 253_402_300_799_999_999;
/// Unix microseconds of `0000-01-01T00:00:00.000000Z`, the first.
const MIN_MICROS: i64 = -62_167_219_200_000_000;

/// Formats a time, in microseconds since the Unix epoch, in the fixed `logged_at` format.
/// Times outside years 0000 to 9999 are clamped to them, so the text is always
/// [`TIMESTAMP_LEN`] bytes. (Proleptic Gregorian calendar; the day count is H. Hinnant's
/// `civil_from_days`.)
pub fn format_timestamp(unix_micros: i64) -> String {
    let t = unix_micros.clamp(MIN_MICROS, MAX_MICROS);
    let micros = t.rem_euclid(1_000_000);
    let secs = t.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", sod / 3600, (sod / 60) % 60, sod % 60)
}

/// Year, month (1 to 12) and day (1 to 31) of the day `z` days after 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_and_exact() {
        let cases = [
            (1_764_179_300_000_001, "2025-11-26T17:48:20.000001Z"),
            (0, "1970-01-01T00:00:00.000000Z"),
            (-1, "1969-12-31T23:59:59.999999Z"),
            (951_782_400_000_000, "2000-02-29T00:00:00.000000Z"),
            (MAX_MICROS, "9999-12-31T23:59:59.999999Z"),
            (MIN_MICROS, "0000-01-01T00:00:00.000000Z"),
            (i64::MAX, "9999-12-31T23:59:59.999999Z"),
            (i64::MIN, "0000-01-01T00:00:00.000000Z"),
        ];
        for (t, want) in cases {
            let s = format_timestamp(t);
            assert_eq!(s, want, "{t}");
            assert_eq!(s.len(), TIMESTAMP_LEN);
        }
        assert_eq!(LOGGED_AT_PLACEHOLDER.len(), TIMESTAMP_LEN);
    }

    #[test]
    fn text_order_is_time_order() {
        let mut prev = format_timestamp(MIN_MICROS);
        let mut t = MIN_MICROS;
        while t < MAX_MICROS - 7_777_777_777_777 {
            t += 7_777_777_777_777;
            let s = format_timestamp(t);
            assert!(s > prev, "{prev} then {s}");
            prev = s;
        }
    }

    #[test]
    fn stamping_writes_in_place_or_not_at_all() {
        let mut e = format!(r#"{{"logged_at":"{LOGGED_AT_PLACEHOLDER}"}}"#).into_bytes();
        assert!(stamp(&mut e, 14, "2026-11-26T17:48:20.123456Z"));
        assert_eq!(e, br#"{"logged_at":"2026-11-26T17:48:20.123456Z"}"#);
        assert!(!stamp(&mut e, 14, "2026"), "a short stamp is refused");
        assert!(!stamp(&mut e, usize::MAX, "2026-11-26T17:48:20.123456Z"), "out of bounds");
    }
}
