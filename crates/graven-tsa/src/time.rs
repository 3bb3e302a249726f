//! `genTime` and `accuracy` (RFC 3161 §2.4.2), as Unix time.

use std::fmt;
use std::time::Duration;

use crate::asn1::{Malformed, malformed};

/// The time a TSA put in a token: seconds since the Unix epoch (UTC, leap seconds not
/// counted, as Unix time does) and nanoseconds within that second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenTime {
    unix_seconds: i64,
    nanos: u32,
}

impl GenTime {
    /// A time from Unix seconds and nanoseconds; `None` if `nanos` is a second or more.
    pub fn new(unix_seconds: i64, nanos: u32) -> Option<Self> {
        (nanos < 1_000_000_000).then_some(GenTime { unix_seconds, nanos })
    }

    pub fn unix_seconds(self) -> i64 {
        self.unix_seconds
    }

    pub fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// Parses the contents of an RFC 3161 `GeneralizedTime`: `YYYYMMDDhhmmss[.f]Z`, the
    /// fraction (1 to 9 digits) with no trailing zero, UTC only (§2.4.2).
    pub(crate) fn parse(value: &[u8]) -> Result<Self, Malformed> {
        let bad = |why| malformed("TSTInfo.genTime", why);
        let (body, fraction) = match value {
            [body @ .., b'Z'] if body.len() == 14 => (body, &[][..]),
            [body @ .., b'Z'] if body.len() > 15 && body[14] == b'.' => (&body[..14], &body[15..]),
            _ => return Err(bad("not YYYYMMDDhhmmss[.fraction]Z")),
        };
        let digits = |s: &[u8]| -> Result<u32, Malformed> {
            s.iter().try_fold(0u32, |acc, b| {
                if b.is_ascii_digit() { Ok(acc * 10 + u32::from(b - b'0')) } else { Err(bad("not a digit")) }
            })
        };
        let year = digits(&body[0..4])?;
        let month = digits(&body[4..6])?;
        let day = digits(&body[6..8])?;
        let hour = digits(&body[8..10])?;
        let minute = digits(&body[10..12])?;
        let second = digits(&body[12..14])?;
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(bad("no such date"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(bad("no such time of day"));
        }
        if fraction.len() > 9 {
            return Err(bad("more than nanosecond precision"));
        }
        if fraction.last() == Some(&b'0') {
            return Err(bad("fraction with a trailing zero"));
        }
        let nanos = digits(fraction)? * 10u32.pow(9 - fraction.len() as u32);
        let days = days_from_civil(i64::from(year), month, day);
        let unix_seconds =
            days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second);
        Ok(GenTime { unix_seconds, nanos })
    }

    /// The civil date and time, UTC.
    fn civil(self) -> (i64, u32, u32, u32, u32, u32) {
        let days = self.unix_seconds.div_euclid(86_400);
        let secs = self.unix_seconds.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        // secs is in 0..86_400, so these fit.
        let secs = secs as u32;
        (y, m, d, secs / 3_600, secs / 60 % 60, secs % 60)
    }
}

/// RFC 3339, UTC: `2026-12-07T04:47:11Z`, with the fraction if there is one.
impl fmt::Display for GenTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s) = self.civil();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")?;
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        f.write_str("Z")
    }
}

/// How far the true time may be from `genTime`, either way (RFC 3161 §2.4.2 `Accuracy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accuracy {
    seconds: u64,
    millis: u16,
    micros: u16,
}

impl Accuracy {
    /// `millis` and `micros` are 0 when absent, else 1 to 999 (the ASN.1 constraint).
    pub(crate) fn new(seconds: u64, millis: u64, micros: u64) -> Result<Self, Malformed> {
        let bad = || malformed("TSTInfo.accuracy", "millis and micros must be 1 to 999");
        let millis = u16::try_from(millis).ok().filter(|v| *v <= 999).ok_or_else(bad)?;
        let micros = u16::try_from(micros).ok().filter(|v| *v <= 999).ok_or_else(bad)?;
        Ok(Accuracy { seconds, millis, micros })
    }

    /// The accuracy as a duration.
    pub fn as_duration(self) -> Duration {
        // At most u64::MAX seconds and 999,999 microseconds: within Duration's range.
        Duration::new(self.seconds, u32::from(self.millis) * 1_000_000 + u32::from(self.micros) * 1_000)
    }
}

impl fmt::Display for Accuracy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "±{:?}", self.as_duration())
    }
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the algorithm of H. Hinnant's
/// "chrono-compatible low-level date algorithms", `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`] (`civil_from_days` of the same paper).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // d is in 1..=31 and m in 1..=12 by construction.
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<GenTime, Malformed> {
        GenTime::parse(s.as_bytes())
    }

    #[test]
    fn known_instants() {
        assert_eq!(parse("19700101000000Z").unwrap().unix_seconds(), 0);
        // `date -u -d 2026-12-07T04:47:11Z +%s`
        assert_eq!(parse("20261207044711Z").unwrap().unix_seconds(), 1_796_618_831);
        assert_eq!(parse("20000229235959Z").unwrap().unix_seconds(), 951_868_799);
        assert_eq!(parse("19691231235959Z").unwrap().unix_seconds(), -1);
        let t = parse("20261207044711.5Z").unwrap();
        assert_eq!((t.unix_seconds(), t.subsec_nanos()), (1_796_618_831, 500_000_000));
        assert_eq!(parse("20261207044711.000000001Z").unwrap().subsec_nanos(), 1);
    }

    #[test]
    fn refuses_what_rfc_3161_forbids() {
        for bad in [
            "20261207044711",             // no Z
            "20261207044711+0100",        // offset
            "202612070447Z",              // no seconds
            "20261207044711.Z",           // empty fraction
            "20261207044711.50Z",         // trailing zero
            "20261207044711.0Z",          // zero fraction must be omitted
            "20261207044711,5Z",          // comma
            "20261207044711.1234567891Z", // past nanoseconds
            "20261307044711Z",            // month 13
            "20250229044711Z",            // not a leap year
            "20261207244711Z",            // hour 24
            "20261207044760Z",            // second 60
            "2026120704471aZ",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse("20240229044711Z").is_ok());
    }

    #[test]
    fn civil_round_trip_and_display() {
        for days in [-800_000i64, -1, 0, 1, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(parse("20261207044711.25Z").unwrap().to_string(), "2026-12-07T04:47:11.25Z");
        assert_eq!(parse("99991231235959Z").unwrap().to_string(), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn accuracy_is_in_range() {
        let a = Accuracy::new(u64::MAX, 999, 999).unwrap();
        assert_eq!(a.as_duration(), Duration::new(u64::MAX, 999_999_000));
        assert!(a.to_string().starts_with('±'));
        assert_eq!(Accuracy::new(1, 500, 100).unwrap().as_duration(), Duration::from_micros(1_500_100));
        assert!(Accuracy::new(0, 1000, 0).is_err());
    }
}
