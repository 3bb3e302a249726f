//! Alert rules (docs/rules.md), pure: [`Rules::from_config`] checks the `[[rules]]` of the
//! configuration, and an [`Evaluator`] reads the committed events in log order, keeping what
//! the rules need to know of the past (each actor's last activity and number of events, the
//! actions each actor has performed, recent timestamps per rule and key), and says which
//! [`Alert`]s an event raises. No I/O and no clock: an event's time is its `logged_at`, so the
//! same log always raises the same alerts.
//!
//! The kinds:
//! - `outside_allowed`: an actor acting outside its allowed actions, hours (UTC) or source
//!   networks;
//! - `dormant_active`: an actor with no event for `days` days acting again;
//! - `new_action`: an action the actor has never performed before (once it has `min_events`
//!   events);
//! - `rate`: more than `max` events of one actor within `window_seconds`;
//! - `denied_burst`: more than `max` denied events within `window_seconds`, per identity or
//!   per source address.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use graven_core::glob::glob_match;
use serde::Deserialize;
use serde_json::{Value, json};

/// The action of an alert's own event. Events with it are never evaluated.
pub const ALERT_ACTION: &str = "graven.alert";
/// The kinds of rule.
const KINDS: [&str; 5] = ["outside_allowed", "dormant_active", "new_action", "rate", "denied_burst"];
/// Most rules.
pub const MAX_RULES: usize = 256;
/// Most (actor, action) pairs remembered for `new_action`; past it, no pair is learnt (and
/// [`Evaluator::pairs_full`] says so).
pub const MAX_PAIRS: usize = 1_000_000;
/// Most keys (actor or address) with a live window per rule; past it, stale ones are dropped
/// and then new keys are not counted until some expire.
pub const MAX_KEYS_PER_RULE: usize = 100_000;
/// Most events in a window (`max` + 1 are kept per key).
pub const MAX_WINDOW_EVENTS: u64 = 100_000;

/// One `[[rules]]` table as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    /// `outside_allowed`, `dormant_active`, `new_action`, `rate`, `denied_burst`.
    pub kind: String,
    /// Actor id patterns the rule applies to (default: every actor).
    #[serde(default)]
    pub actors: Vec<String>,
    /// `outside_allowed`: allowed action patterns.
    #[serde(default)]
    pub actions: Vec<String>,
    /// `outside_allowed`: allowed hours, UTC, `HH:MM-HH:MM` (may wrap midnight).
    pub hours: Option<String>,
    /// `outside_allowed`: allowed source networks (CIDR).
    #[serde(default)]
    pub networks: Vec<String>,
    /// `dormant_active`: days without an event.
    pub days: Option<u64>,
    /// `new_action`: events the actor must have had before a new action alerts (default 1).
    pub min_events: Option<u64>,
    /// `rate`, `denied_burst`: the most events allowed within the window.
    pub max: Option<u64>,
    /// `rate`, `denied_burst`: the window.
    pub window_seconds: Option<u64>,
    /// `denied_burst`: `identity` (default) or `source` (the event's `source.ip`).
    pub per: Option<String>,
    /// `low`, `medium` (default), `high`, `critical`.
    pub severity: Option<String>,
}

/// A rule that does not make sense: what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError(pub String);

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleError {}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(s: &str) -> Option<Net> {
        let (a, p) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if p.is_empty() { max } else { p.parse::<u8>().ok().filter(|p| *p <= max)? };
        Some(Net { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    OutsideAllowed { actions: Vec<String>, hours: Option<(u32, u32)>, networks: Vec<Net> },
    DormantActive { micros: i64 },
    NewAction { min_events: u64 },
    Rate { max: u64, window_us: i64 },
    DeniedBurst { max: u64, window_us: i64, per_source: bool },
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::OutsideAllowed { .. } => "outside_allowed",
            Kind::DormantActive { .. } => "dormant_active",
            Kind::NewAction { .. } => "new_action",
            Kind::Rate { .. } => "rate",
            Kind::DeniedBurst { .. } => "denied_burst",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    name: String,
    actors: Vec<String>,
    severity: String,
    kind: Kind,
}

/// The checked rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// Minutes after midnight of `HH:MM`.
fn minutes(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Rules {
    /// Checks `configs`: every mistake is named with its rule and what to write instead.
    pub fn from_config(configs: &[RuleConfig]) -> Result<Rules, RuleError> {
        if configs.len() > MAX_RULES {
            return Err(RuleError(format!("{} rules: at most {MAX_RULES}", configs.len())));
        }
        let mut names = HashSet::new();
        let mut rules = Vec::with_capacity(configs.len());
        for c in configs {
            let at = format!("rule {:?}", c.name);
            let bad = |what: String| RuleError(format!("{at}: {what}"));
            if c.name.is_empty() || c.name.len() > 128 || !c.name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(RuleError(format!(
                    "rule name {:?}: give 1 to 128 printable ASCII characters without spaces",
                    c.name
                )));
            }
            if !names.insert(c.name.as_str()) {
                return Err(bad("two rules have this name: names must be unique".into()));
            }
            let severity = c.severity.clone().unwrap_or_else(|| "medium".into());
            if !["low", "medium", "high", "critical"].contains(&severity.as_str()) {
                return Err(bad(format!("severity {severity:?}: use low, medium, high or critical")));
            }
            let window = |kind: &str| -> Result<(u64, i64), RuleError> {
                let max =
                    c.max.ok_or_else(|| bad(format!("{kind} needs max (the most events in the window)")))?;
                if max == 0 || max >= MAX_WINDOW_EVENTS {
                    return Err(bad(format!("max {max}: from 1 to {}", MAX_WINDOW_EVENTS - 1)));
                }
                let w = c.window_seconds.ok_or_else(|| bad(format!("{kind} needs window_seconds")))?;
                if w == 0 || w > 31 * 86_400 {
                    return Err(bad(format!("window_seconds {w}: from 1 to 2678400 (31 days)")));
                }
                Ok((max, (w as i64) * 1_000_000))
            };
            // The kind-specific keys given; each must be one the kind takes.
            let given = [
                ("actions", !c.actions.is_empty()),
                ("hours", c.hours.is_some()),
                ("networks", !c.networks.is_empty()),
                ("days", c.days.is_some()),
                ("min_events", c.min_events.is_some()),
                ("max", c.max.is_some()),
                ("window_seconds", c.window_seconds.is_some()),
                ("per", c.per.is_some()),
            ];
            let takes: &[&str] = match c.kind.as_str() {
                "outside_allowed" => &["actions", "hours", "networks"],
                "dormant_active" => &["days"],
                "new_action" => &["min_events"],
                "rate" => &["max", "window_seconds"],
                "denied_burst" => &["max", "window_seconds", "per"],
                _ => &[],
            };
            if KINDS.contains(&c.kind.as_str())
                && let Some((k, _)) = given.iter().find(|(k, set)| *set && !takes.contains(k))
            {
                return Err(bad(format!("{k} has no meaning for kind {:?}", c.kind)));
            }
            let kind = match c.kind.as_str() {
                "outside_allowed" => {
                    let hours = match &c.hours {
                        None => None,
                        Some(h) => {
                            let (a, b) = h
                                .split_once('-')
                                .ok_or_else(|| bad(format!("hours {h:?}: write HH:MM-HH:MM (UTC)")))?;
                            let (a, b) = (minutes(a.trim()), minutes(b.trim()));
                            match (a, b) {
                                (Some(a), Some(b)) if a != b => Some((a, b)),
                                _ => {
                                    return Err(bad(format!(
                                        "hours {h:?}: write HH:MM-HH:MM (UTC), two different times"
                                    )));
                                }
                            }
                        }
                    };
                    let mut networks = Vec::new();
                    for n in &c.networks {
                        networks.push(Net::parse(n).ok_or_else(|| {
                            bad(format!("network {n:?}: write a CIDR such as 10.0.0.0/8 or 2001:db8::/32"))
                        })?);
                    }
                    if c.actions.is_empty() && hours.is_none() && networks.is_empty() {
                        return Err(bad("outside_allowed needs actions, hours or networks".into()));
                    }
                    Kind::OutsideAllowed { actions: c.actions.clone(), hours, networks }
                }
                "dormant_active" => {
                    let days = c.days.ok_or_else(|| bad("dormant_active needs days".into()))?;
                    if days == 0 || days > 3650 {
                        return Err(bad(format!("days {days}: from 1 to 3650")));
                    }
                    Kind::DormantActive { micros: (days as i64) * 86_400 * 1_000_000 }
                }
                "new_action" => Kind::NewAction { min_events: c.min_events.unwrap_or(1) },
                "rate" => {
                    let (max, window_us) = window("rate")?;
                    Kind::Rate { max, window_us }
                }
                "denied_burst" => {
                    let (max, window_us) = window("denied_burst")?;
                    let per_source = match c.per.as_deref() {
                        None | Some("identity") => false,
                        Some("source") => true,
                        Some(p) => return Err(bad(format!("per {p:?}: use identity or source"))),
                    };
                    Kind::DeniedBurst { max, window_us, per_source }
                }
                k => {
                    return Err(bad(format!(
                        "kind {k:?}: use outside_allowed, dormant_active, new_action, rate or denied_burst"
                    )));
                }
            };
            rules.push(Rule { name: c.name.clone(), actors: c.actors.clone(), severity, kind });
        }
        Ok(Rules { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }
}

/// What an event raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub rule: String,
    pub kind: &'static str,
    pub severity: String,
    /// The index of the event that raised it.
    pub event_index: u64,
    /// Its actor, or for a `denied_burst` per source, the address.
    pub subject: String,
    pub summary: String,
}

impl Alert {
    /// The alert's own event, as the server appends it (attributed to the server).
    pub fn event(&self) -> Value {
        json!({
            "action": ALERT_ACTION,
            "resource": {"type": "graven.rule", "id": self.rule},
            "details": {
                "rule": self.rule,
                "kind": self.kind,
                "severity": self.severity,
                "event_index": self.event_index,
                "subject": self.subject,
                "summary": self.summary,
            },
        })
    }

    /// The (rule, event index) of an alert event already in the log, if `event` is one.
    pub fn key_of_event(event: &Value) -> Option<(String, u64)> {
        if event.get("action").and_then(Value::as_str) != Some(ALERT_ACTION) {
            return None;
        }
        let d = event.get("details")?;
        Some((d.get("rule")?.as_str()?.to_owned(), d.get("event_index")?.as_u64()?))
    }
}

#[derive(Debug, Default)]
struct Window {
    times: VecDeque<i64>,
    /// No alert for this key before this time (one alert per window).
    quiet_until: i64,
}

/// The past the rules need, and the rules.
#[derive(Debug, Default)]
pub struct Evaluator {
    rules: Rules,
    last_seen: HashMap<String, i64>,
    events: HashMap<String, u64>,
    pairs: HashSet<(String, String)>,
    pairs_full: bool,
    windows: HashMap<String, HashMap<String, Window>>,
}

/// The microseconds since the Unix epoch of an RFC 3339 time.
fn micros(t: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

impl Evaluator {
    pub fn new(rules: Rules) -> Self {
        Evaluator { rules, ..Default::default() }
    }

    /// Replaces the rules (a reload); what was learnt of the past is kept, and the windows of
    /// rules that are gone are dropped.
    pub fn set_rules(&mut self, rules: Rules) {
        self.windows.retain(|name, _| rules.rules.iter().any(|r| &r.name == name));
        self.rules = rules;
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Whether `new_action` stopped learning pairs ([`MAX_PAIRS`]).
    pub fn pairs_full(&self) -> bool {
        self.pairs_full
    }

    /// Reads committed event `index` (its bytes as logged), and returns the alerts it raises
    /// when `alert` (else only learns from it: the events before the rules' watermark). Alert
    /// events and entries that are not events are skipped.
    pub fn observe(&mut self, index: u64, entry: &[u8], alert: bool) -> Vec<Alert> {
        let Ok(event) = serde_json::from_slice::<Value>(entry) else { return Vec::new() };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
        let action = text(event.get("action"));
        if action == ALERT_ACTION || action.is_empty() {
            return Vec::new();
        }
        let actor = text(event.get("actor").and_then(|a| a.get("id")));
        let Some(at) = event.get("logged_at").and_then(Value::as_str).and_then(micros) else {
            return Vec::new();
        };
        let denied = event.get("outcome").and_then(Value::as_str) == Some("denied");
        let ip: Option<IpAddr> = event
            .get("source")
            .and_then(|s| s.get("ip"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        let previous = self.last_seen.get(&actor).copied();
        let count = self.events.get(&actor).copied().unwrap_or(0);
        let pair = (actor.clone(), action.clone());
        let new_pair = !self.pairs.contains(&pair);
        let mut alerts = Vec::new();
        for r in &self.rules.rules {
            if !r.actors.is_empty() && !r.actors.iter().any(|p| glob_match(p, &actor)) {
                continue;
            }
            let mut raise = |subject: &str, summary: String| {
                if alert {
                    alerts.push(Alert {
                        rule: r.name.clone(),
                        kind: r.kind.name(),
                        severity: r.severity.clone(),
                        event_index: index,
                        subject: subject.to_owned(),
                        summary,
                    });
                }
            };
            match &r.kind {
                Kind::OutsideAllowed { actions, hours, networks } => {
                    let mut why = Vec::new();
                    if !actions.is_empty() && !actions.iter().any(|p| glob_match(p, &action)) {
                        why.push(format!("action {action:?} is not among the allowed actions"));
                    }
                    if let Some((from, to)) = hours {
                        let minute = u32::try_from(at.rem_euclid(86_400_000_000) / 60_000_000).unwrap_or(0);
                        let inside = if from < to {
                            (*from..*to).contains(&minute)
                        } else {
                            minute >= *from || minute < *to
                        };
                        if !inside {
                            why.push(format!(
                                "at {:02}:{:02} UTC, outside the allowed hours",
                                minute / 60,
                                minute % 60
                            ));
                        }
                    }
                    if !networks.is_empty() {
                        match ip {
                            Some(ip) if networks.iter().any(|n| n.contains(ip)) => {}
                            Some(ip) => why.push(format!("from {ip}, outside the allowed networks")),
                            None => why.push("from no known address, so not from an allowed network".into()),
                        }
                    }
                    if !why.is_empty() {
                        raise(
                            &actor,
                            format!("{actor} acted outside what it is allowed: {}", why.join("; ")),
                        );
                    }
                }
                Kind::DormantActive { micros } => {
                    if let Some(prev) = previous
                        && at - prev >= *micros
                    {
                        let days = (at - prev) / 86_400_000_000;
                        raise(&actor, format!("{actor} acted ({action}) after {days} days without an event"));
                    }
                }
                Kind::NewAction { min_events } => {
                    if new_pair && count >= *min_events && !self.pairs_full {
                        raise(
                            &actor,
                            format!("{actor} performed {action:?} for the first time (after {count} events)"),
                        );
                    }
                }
                Kind::Rate { max, window_us } => {
                    let w = self.windows.entry(r.name.clone()).or_default();
                    if let Some(n) = count_in(w, &actor, at, *window_us, *max) {
                        raise(
                            &actor,
                            format!(
                                "{actor}: {n} events within {} s (the most allowed is {max})",
                                window_us / 1_000_000
                            ),
                        );
                    }
                }
                Kind::DeniedBurst { max, window_us, per_source } => {
                    if !denied {
                        continue;
                    }
                    let key = if *per_source {
                        match ip {
                            Some(ip) => ip.to_string(),
                            None => continue,
                        }
                    } else {
                        actor.clone()
                    };
                    let w = self.windows.entry(r.name.clone()).or_default();
                    if let Some(n) = count_in(w, &key, at, *window_us, *max) {
                        let by = if *per_source { "from" } else { "for" };
                        raise(
                            &key,
                            format!(
                                "{n} denied events {by} {key} within {} s (the most allowed is {max})",
                                window_us / 1_000_000
                            ),
                        );
                    }
                }
            }
        }
        self.last_seen.insert(actor.clone(), at.max(previous.unwrap_or(i64::MIN)));
        *self.events.entry(actor).or_default() += 1;
        if new_pair {
            if self.pairs.len() < MAX_PAIRS {
                self.pairs.insert(pair);
            } else {
                self.pairs_full = true;
            }
        }
        alerts
    }
}

/// Counts an event of `key` at `at` in its window; `Some(count)` when that passes `max` and the
/// key is not quiet (then it is quiet for one window).
fn count_in(
    windows: &mut HashMap<String, Window>,
    key: &str,
    at: i64,
    window_us: i64,
    max: u64,
) -> Option<usize> {
    if !windows.contains_key(key) && windows.len() >= MAX_KEYS_PER_RULE {
        windows.retain(|_, w| w.times.back().is_some_and(|t| at - t < window_us) || w.quiet_until > at);
        if windows.len() >= MAX_KEYS_PER_RULE {
            return None;
        }
    }
    let w = windows.entry(key.to_owned()).or_default();
    while w.times.front().is_some_and(|t| at - t >= window_us) {
        w.times.pop_front();
    }
    w.times.push_back(at);
    let keep = usize::try_from(max + 1).unwrap_or(usize::MAX);
    while w.times.len() > keep {
        w.times.pop_front();
    }
    if w.times.len() as u64 > max && at >= w.quiet_until {
        w.quiet_until = at + window_us;
        return Some(w.times.len());
    }
    None
}

#[cfg(test)]
mod tests;
