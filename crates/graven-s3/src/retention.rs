//! S3 Object Lock retention: the modes, a bucket's default retention rule, and the retention
//! the log's immutable objects are written with.

use std::fmt;
use std::time::Duration;

/// Object Lock retention for the log's immutable objects, sent with each such write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: RetentionMode,
    /// How long after its write a version stays locked.
    pub period: Duration,
}

/// S3 Object Lock retention modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionMode {
    /// No one, not even the account's root user, can delete or shorten the lock of a version
    /// before it expires.
    Compliance,
    /// Users with `s3:BypassGovernanceRetention` can still delete a locked version; everyone
    /// else cannot.
    Governance,
}

impl RetentionMode {
    /// Whether a version locked in this mode can be deleted by someone who cannot delete one
    /// locked in `other`: governance is weaker than compliance.
    pub fn is_weaker_than(self, other: RetentionMode) -> bool {
        self == RetentionMode::Governance && other == RetentionMode::Compliance
    }

    /// Who can delete a version locked in this mode before its lock expires.
    pub fn who_can_delete(self) -> &'static str {
        match self {
            RetentionMode::Compliance => {
                "nobody, not even the bucket owner, can delete a locked version before it expires"
            }
            RetentionMode::Governance => {
                "principals with s3:BypassGovernanceRetention (the bucket owner's keys among them) can delete a locked version before it expires; nobody else can"
            }
        }
    }
}

/// S3's spelling: `COMPLIANCE`, `GOVERNANCE`.
impl fmt::Display for RetentionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RetentionMode::Compliance => "COMPLIANCE",
            RetentionMode::Governance => "GOVERNANCE",
        })
    }
}

/// The period of a bucket's default retention rule: S3 takes either days or years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionPeriod {
    Days(u32),
    Years(u32),
}

impl RetentionPeriod {
    /// The fewest days that are never shorter than this period, wherever it starts. A year
    /// counted on the calendar has 365 or 366 days, and `y` consecutive years hold at most
    /// `ceil(y / 4)` leap days, so `y` years are at most `365 y + ceil(y / 4)` days long.
    pub fn days_at_least(self) -> u64 {
        match self {
            RetentionPeriod::Days(d) => u64::from(d),
            RetentionPeriod::Years(y) => {
                let y = u64::from(y);
                365 * y + y.div_ceil(4)
            }
        }
    }
}

impl fmt::Display for RetentionPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = match *self {
            RetentionPeriod::Days(d) => (d, "day"),
            RetentionPeriod::Years(y) => (y, "year"),
        };
        write!(f, "{n} {unit}{}", if n == 1 { "" } else { "s" })
    }
}

/// A bucket's default retention rule (`GetObjectLockConfiguration` → `Rule.DefaultRetention`):
/// what S3 gives every new version written without retention headers of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRetention {
    pub mode: RetentionMode,
    pub period: RetentionPeriod,
}

impl fmt::Display for DefaultRetention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} for {}", self.mode, self.period)
    }
}
