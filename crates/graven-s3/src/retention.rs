//! S3 Object Lock retention: the modes, a bucket's default retention rule, what a check of
//! the bucket found ([`BucketReport`]), and the choice, made once at start, of how the log's
//! immutable objects (tiles, bundles, archived checkpoints) are locked.
//!
//! The rule [`RetentionPlan::choose`] keeps: the log never weakens the bucket's own lock. With
//! no retention settings, the objects get the bucket's default rule (Graven sends no retention
//! headers, and S3 applies the rule to every new version: Amazon S3 User Guide, "How S3
//! Object Lock works", bucket configuration). Settings weaker than that rule are refused,
//! since headers on a write override the bucket's default. A bucket with Object Lock and no
//! default rule needs both a mode and a period: there is no silent default.

use std::fmt;
use std::time::Duration;

use crate::error::BucketProblem;

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

/// Reads a bucket's default retention rule as `GetObjectLockConfiguration` returns it: `None`
/// when there is no rule, an error for a rule S3 should not have accepted.
pub(crate) fn read_default_retention(
    bucket: &str,
    rule: Option<&aws_sdk_s3::types::DefaultRetention>,
) -> Result<Option<DefaultRetention>, BucketProblem> {
    use aws_sdk_s3::types::ObjectLockRetentionMode as Sdk;
    let Some(rule) = rule else { return Ok(None) };
    let bad = |why: String| BucketProblem::BadDefaultRetention { bucket: bucket.to_owned(), why };
    let count = |n: i32, unit: &str| {
        u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| bad(format!("a period of {n} {unit}")))
    };
    let period = match (rule.days(), rule.years()) {
        (None, None) => None,
        (Some(d), None) => Some(RetentionPeriod::Days(count(d, "days")?)),
        (None, Some(y)) => Some(RetentionPeriod::Years(count(y, "years")?)),
        (Some(_), Some(_)) => return Err(bad("both days and years".into())),
    };
    let mode = match rule.mode() {
        None => None,
        Some(Sdk::Compliance) => Some(RetentionMode::Compliance),
        Some(Sdk::Governance) => Some(RetentionMode::Governance),
        Some(other) => return Err(bad(format!("the mode {:?}", other.as_str()))),
    };
    match (mode, period) {
        (None, None) => Ok(None),
        (Some(mode), Some(period)) => Ok(Some(DefaultRetention { mode, period })),
        (Some(_), None) => Err(bad("a mode without a period".into())),
        (None, Some(_)) => Err(bad("a period without a mode".into())),
    }
}

/// The retention the operator asked for (`--retention-mode`, `--retention-days`, or their
/// environment variables or config keys); `None` where nothing was said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionAsk {
    pub mode: Option<RetentionMode>,
    pub days: Option<u64>,
}

impl RetentionAsk {
    /// The flags that were given, for messages.
    fn flags(self) -> &'static str {
        match (self.mode.is_some(), self.days.is_some()) {
            (true, true) => "--retention-mode and --retention-days",
            (true, false) => "--retention-mode",
            (false, true) => "--retention-days",
            (false, false) => "no retention settings",
        }
    }
}

/// How the log's immutable objects are locked; built only by [`RetentionPlan::choose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionPlan {
    /// No retention headers: S3 locks every version under the bucket's default rule.
    BucketDefault(DefaultRetention),
    /// Retention headers on each immutable object: `mode`, until this node's clock plus `days`.
    /// Never weaker than `bucket_default`.
    Explicit { mode: RetentionMode, days: u64, bucket_default: Option<DefaultRetention> },
    /// The bucket has no Object Lock, and `--allow-no-object-lock` accepted that.
    Unlocked,
}

/// Why the retention settings cannot be used with this bucket, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionProblem {
    #[error(transparent)]
    Bucket(#[from] BucketProblem),
    #[error(
        "bucket {bucket} has no Object Lock, so {flags} cannot be honoured: remove them (history in the bucket then stays deletable, which --allow-no-object-lock accepts), or use a bucket created with Object Lock"
    )]
    NoObjectLock { bucket: String, flags: &'static str },
    #[error(
        "--retention-mode {asked} (retention_mode) is weaker than the default retention of bucket {bucket}, {default}: {asked} lets principals with s3:BypassGovernanceRetention delete locked versions. Remove --retention-mode to lock every object under the bucket's default, or set it to {}",
        default.mode.flag()
    )]
    WeakerMode { bucket: String, asked: &'static str, default: DefaultRetention },
    #[error(
        "--retention-days {days} (retention_days) is shorter than the default retention of bucket {bucket}, {default}: ask for at least {at_least} days{}, or remove --retention-days to lock every object under the bucket's default",
        if matches!(default.period, RetentionPeriod::Years(_)) { " (a year can have 366 days)" } else { "" }
    )]
    ShorterPeriod { bucket: String, days: u64, default: DefaultRetention, at_least: u64 },
    #[error(
        "bucket {bucket} has Object Lock but no default retention, and {missing}: Graven does not pick how long history stays locked. Set both --retention-mode (compliance or governance) and --retention-days (retention_mode and retention_days in graven.toml), or give the bucket a default retention and set neither, e.g. aws s3api put-object-lock-configuration --bucket {bucket} --object-lock-configuration '{{\"ObjectLockEnabled\":\"Enabled\",\"Rule\":{{\"DefaultRetention\":{{\"Mode\":\"COMPLIANCE\",\"Days\":365}}}}}}'"
    )]
    NotChosen { bucket: String, missing: &'static str },
    #[error("--retention-days 0 (retention_days) locks nothing; give at least 1")]
    ZeroDays,
}

impl RetentionMode {
    /// The value of `--retention-mode` that names this mode.
    pub fn flag(self) -> &'static str {
        match self {
            RetentionMode::Compliance => "compliance",
            RetentionMode::Governance => "governance",
        }
    }
}

impl RetentionPlan {
    /// Chooses how the log's immutable objects are locked in the bucket `report` describes,
    /// given what the operator asked for; refuses anything that would lock them less than the
    /// bucket's own default rule, and a locked bucket with no rule and no complete choice.
    /// `allow_no_object_lock` accepts a bucket without Object Lock (nothing is then locked).
    pub fn choose(
        report: &BucketReport,
        ask: RetentionAsk,
        allow_no_object_lock: bool,
    ) -> Result<RetentionPlan, RetentionProblem> {
        let bucket = || report.bucket.clone();
        if ask.days == Some(0) {
            return Err(RetentionProblem::ZeroDays);
        }
        if !report.object_lock {
            if ask != RetentionAsk::default() {
                return Err(RetentionProblem::NoObjectLock { bucket: bucket(), flags: ask.flags() });
            }
            if !allow_no_object_lock {
                return Err(BucketProblem::NoObjectLock { bucket: bucket() }.into());
            }
            return Ok(RetentionPlan::Unlocked);
        }
        let Some(default) = report.default_retention else {
            return match (ask.mode, ask.days) {
                (Some(mode), Some(days)) => Ok(RetentionPlan::Explicit { mode, days, bucket_default: None }),
                (mode, days) => Err(RetentionProblem::NotChosen {
                    bucket: bucket(),
                    missing: match (mode, days) {
                        (None, None) => "neither --retention-mode nor --retention-days is set",
                        (None, Some(_)) => "--retention-mode is not set",
                        _ => "--retention-days is not set",
                    },
                }),
            };
        };
        if ask == RetentionAsk::default() {
            return Ok(RetentionPlan::BucketDefault(default));
        }
        let mode = ask.mode.unwrap_or(default.mode);
        if mode.is_weaker_than(default.mode) {
            return Err(RetentionProblem::WeakerMode { bucket: bucket(), asked: mode.flag(), default });
        }
        let at_least = default.period.days_at_least();
        let days = ask.days.unwrap_or(at_least);
        if days < at_least {
            return Err(RetentionProblem::ShorterPeriod { bucket: bucket(), days, default, at_least });
        }
        Ok(RetentionPlan::Explicit { mode, days, bucket_default: Some(default) })
    }

    /// The explicit retention the store must send with immutable objects
    /// (`crate::S3Config::retention`); `None` sends no retention headers.
    pub fn retention(&self) -> Option<Retention> {
        match *self {
            RetentionPlan::Explicit { mode, days, .. } => {
                Some(Retention { mode, period: Duration::from_secs(days.saturating_mul(86_400)) })
            }
            RetentionPlan::BucketDefault(_) | RetentionPlan::Unlocked => None,
        }
    }

    /// One line for the operator: what the objects get, and who can delete them.
    pub fn summary(&self) -> String {
        match self {
            RetentionPlan::BucketDefault(d) => {
                format!("objects: {} retention for {} (bucket default); {}", d.mode, d.period, d.mode.who_can_delete())
            }
            RetentionPlan::Explicit { mode, days, bucket_default } => {
                let bucket = match bucket_default {
                    Some(d) => format!("the bucket's default is {d}"),
                    None => "the bucket has no default retention".into(),
                };
                format!(
                    "objects: {mode} retention for {days} day{} (chosen with --retention-mode/--retention-days, counted from this node's clock; {bucket}); {}",
                    if *days == 1 { "" } else { "s" },
                    mode.who_can_delete()
                )
            }
            RetentionPlan::Unlocked => "objects: no Object Lock (--allow-no-object-lock); anyone holding the bucket's credentials can delete any version (graven verify would notice)".into(),
        }
    }
}

/// A bucket's versioning state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// Never enabled.
    Off,
    Enabled,
    /// Was enabled, then suspended: new writes replace the current version.
    Suspended,
}

/// What [`S3Store::check_bucket`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketReport {
    pub bucket: String,
    pub versioning: Versioning,
    pub object_lock: bool,
    /// The bucket's default retention rule, which S3 applies to every new version written
    /// without retention headers; only read when the bucket has Object Lock.
    pub default_retention: Option<DefaultRetention>,
}

impl BucketReport {
    /// Whether the bucket can hold a log: versioning must be on, and Object Lock too when
    /// `require_object_lock`.
    pub fn require(&self, require_object_lock: bool) -> Result<(), BucketProblem> {
        if require_object_lock && !self.object_lock {
            return Err(BucketProblem::NoObjectLock { bucket: self.bucket.clone() });
        }
        if self.versioning != Versioning::Enabled {
            return Err(BucketProblem::VersioningOff { bucket: self.bucket.clone() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Versioning;
    use RetentionMode::{Compliance, Governance};
    use RetentionPeriod::{Days, Years};

    fn bucket(object_lock: bool, default_retention: Option<DefaultRetention>) -> BucketReport {
        BucketReport { bucket: "b".into(), versioning: Versioning::Enabled, object_lock, default_retention }
    }

    fn rule(mode: RetentionMode, period: RetentionPeriod) -> Option<DefaultRetention> {
        Some(DefaultRetention { mode, period })
    }

    fn ask(mode: Option<RetentionMode>, days: Option<u64>) -> RetentionAsk {
        RetentionAsk { mode, days }
    }

    /// `choose` on a locked bucket with `default`.
    fn check(default: Option<DefaultRetention>, a: RetentionAsk) -> Result<RetentionPlan, RetentionProblem> {
        RetentionPlan::choose(&bucket(true, default), a, false)
    }

    #[test]
    fn nothing_asked_inherits_the_bucket_default_and_sends_no_headers() {
        for d in [rule(Compliance, Days(365)), rule(Governance, Years(7))] {
            let plan = check(d, RetentionAsk::default()).unwrap();
            assert_eq!(plan, RetentionPlan::BucketDefault(d.unwrap()));
            assert_eq!(plan.retention(), None);
        }
        let plan = check(rule(Compliance, Days(365)), RetentionAsk::default()).unwrap();
        assert_eq!(
            plan.summary(),
            "objects: COMPLIANCE retention for 365 days (bucket default); nobody, not even the bucket owner, can delete a locked version before it expires"
        );
        let plan = check(rule(Governance, Years(1)), RetentionAsk::default()).unwrap();
        assert!(plan.summary().starts_with("objects: GOVERNANCE retention for 1 year (bucket default); principals with s3:BypassGovernanceRetention"), "{}", plan.summary());
    }

    #[test]
    fn governance_is_refused_on_a_compliance_bucket() {
        for days in [None, Some(365), Some(36_500)] {
            let e = check(rule(Compliance, Days(365)), ask(Some(Governance), days)).unwrap_err();
            assert!(matches!(e, RetentionProblem::WeakerMode { asked: "governance", .. }), "{e:?}");
        }
        let e = check(rule(Compliance, Years(1)), ask(Some(Governance), None)).unwrap_err();
        let said = e.to_string();
        assert!(said.contains("COMPLIANCE for 1 year") && said.contains("set it to compliance"), "{said}");
    }

    #[test]
    fn fewer_days_than_the_default_are_refused_and_a_year_may_have_366() {
        let table: [(RetentionPeriod, u64, bool); 10] = [
            (Days(30), 29, false),
            (Days(30), 30, true),
            (Days(30), 31, true),
            (Years(1), 365, false),
            (Years(1), 366, true),
            // Four years hold at most one leap day; five can hold two.
            (Years(4), 1460, false),
            (Years(4), 1461, true),
            (Years(5), 1826, false),
            (Years(5), 1827, true),
            (Years(100), 36_525, true),
        ];
        for (period, days, ok) in table {
            for mode in [None, Some(Governance), Some(Compliance)] {
                let got = check(rule(Governance, period), ask(mode, Some(days)));
                match got {
                    Ok(plan) => {
                        assert!(ok, "{period} / {days} days was taken");
                        let m = mode.unwrap_or(Governance);
                        assert_eq!(
                            plan,
                            RetentionPlan::Explicit {
                                mode: m,
                                days,
                                bucket_default: rule(Governance, period)
                            }
                        );
                        assert_eq!(
                            plan.retention(),
                            Some(Retention { mode: m, period: Duration::from_secs(days * 86_400) })
                        );
                    }
                    Err(RetentionProblem::ShorterPeriod { at_least, .. }) => {
                        assert!(!ok, "{period} / {days} days was refused");
                        assert_eq!(at_least, period.days_at_least());
                    }
                    Err(e) => panic!("{period} / {days} days: {e:?}"),
                }
            }
        }
        let e = check(rule(Compliance, Years(1)), ask(None, Some(365))).unwrap_err();
        assert!(e.to_string().contains("at least 366 days (a year can have 366 days)"), "{e}");
    }

    #[test]
    fn a_mode_alone_takes_the_defaults_period_at_its_longest() {
        let plan = check(rule(Governance, Years(1)), ask(Some(Compliance), None)).unwrap();
        assert_eq!(
            plan,
            RetentionPlan::Explicit {
                mode: Compliance,
                days: 366,
                bucket_default: rule(Governance, Years(1))
            }
        );
        assert_eq!(
            plan.summary(),
            "objects: COMPLIANCE retention for 366 days (chosen with --retention-mode/--retention-days, counted from this node's clock; the bucket's default is GOVERNANCE for 1 year); nobody, not even the bucket owner, can delete a locked version before it expires"
        );
        let plan = check(rule(Compliance, Days(10)), ask(None, Some(20))).unwrap();
        assert_eq!(
            plan,
            RetentionPlan::Explicit {
                mode: Compliance,
                days: 20,
                bucket_default: rule(Compliance, Days(10))
            }
        );
    }

    #[test]
    fn no_default_needs_both_a_mode_and_a_period() {
        for (a, missing) in [
            (ask(None, None), "neither --retention-mode nor --retention-days is set"),
            (ask(Some(Compliance), None), "--retention-days is not set"),
            (ask(None, Some(30)), "--retention-mode is not set"),
        ] {
            let e = check(None, a).unwrap_err();
            assert_eq!(e, RetentionProblem::NotChosen { bucket: "b".into(), missing }, "{a:?}");
            assert!(e.to_string().contains("put-object-lock-configuration --bucket b"), "{e}");
            // --allow-no-object-lock does not choose for a locked bucket.
            assert_eq!(RetentionPlan::choose(&bucket(true, None), a, true), Err(e));
        }
        let plan = check(None, ask(Some(Governance), Some(1))).unwrap();
        assert_eq!(plan, RetentionPlan::Explicit { mode: Governance, days: 1, bucket_default: None });
        assert!(
            plan.summary().starts_with("objects: GOVERNANCE retention for 1 day (chosen"),
            "{}",
            plan.summary()
        );
        assert_eq!(check(None, ask(Some(Governance), Some(0))), Err(RetentionProblem::ZeroDays));
    }

    #[test]
    fn a_bucket_without_object_lock_is_unlocked_only_when_allowed_and_nothing_is_asked() {
        let unlocked = bucket(false, None);
        let e = RetentionPlan::choose(&unlocked, RetentionAsk::default(), false).unwrap_err();
        assert_eq!(e, RetentionProblem::Bucket(BucketProblem::NoObjectLock { bucket: "b".into() }));
        let plan = RetentionPlan::choose(&unlocked, RetentionAsk::default(), true).unwrap();
        assert_eq!((plan, plan.retention()), (RetentionPlan::Unlocked, None));
        for allow in [false, true] {
            let e = RetentionPlan::choose(&unlocked, ask(Some(Compliance), Some(30)), allow).unwrap_err();
            assert_eq!(
                e,
                RetentionProblem::NoObjectLock {
                    bucket: "b".into(),
                    flags: "--retention-mode and --retention-days"
                }
            );
        }
    }

    #[test]
    fn default_rules_are_read_strictly() {
        use aws_sdk_s3::types::{DefaultRetention as Sdk, ObjectLockRetentionMode as M};
        let read = |r: Sdk| read_default_retention("b", Some(&r));
        assert_eq!(read_default_retention("b", None), Ok(None));
        assert_eq!(read(Sdk::builder().build()), Ok(None));
        assert_eq!(read(Sdk::builder().mode(M::Compliance).days(3).build()), Ok(rule(Compliance, Days(3))));
        assert_eq!(read(Sdk::builder().mode(M::Governance).years(2).build()), Ok(rule(Governance, Years(2))));
        for (r, why) in [
            (Sdk::builder().mode(M::Compliance).build(), "a mode without a period"),
            (Sdk::builder().days(3).build(), "a period without a mode"),
            (Sdk::builder().mode(M::Compliance).days(3).years(1).build(), "both days and years"),
            (Sdk::builder().mode(M::Compliance).days(0).build(), "a period of 0 days"),
            (Sdk::builder().mode(M::Compliance).years(-1).build(), "a period of -1 years"),
            (Sdk::builder().mode(M::from("LEGAL")).days(3).build(), "the mode \"LEGAL\""),
        ] {
            let e = read(r).unwrap_err();
            assert_eq!(e, BucketProblem::BadDefaultRetention { bucket: "b".into(), why: why.into() });
        }
    }
}
