//! What a search asks and what it answers, and the same filters applied to one entry without
//! an index.

use crate::extract;

/// Page size when [`Query::limit`] is 0.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest accepted [`Query::limit`].
pub const MAX_LIMIT: usize = 1000;
/// Candidates examined per [`Index::search`] call at most.
pub const MAX_SCAN: usize = 100_000;
/// Result order of [`Index::search`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Highest log index first.
    #[default]
    NewestFirst,
    /// Lowest log index first.
    OldestFirst,
}

/// A search. Every present filter must match exactly (byte-equal strings); absent filters match all.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// `actor.id`.
    pub actor: Option<String>,
    /// `action`.
    pub action: Option<String>,
    /// `resource.id`.
    pub resource: Option<String>,
    /// `outcome`.
    pub outcome: Option<String>,
    /// Inclusive lower bound on `logged_at`, format `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub since: Option<String>,
    /// Exclusive upper bound on `logged_at`, same format.
    pub until: Option<String>,
    /// `1..=MAX_LIMIT`; 0 means [`DEFAULT_LIMIT`].
    pub limit: usize,
    /// `next_cursor` of the previous page, for the same filters and order.
    pub cursor: Option<String>,
    /// Result order; a cursor only continues the order it was issued for.
    pub order: Order,
}

/// One page of results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Log indices of matching events, in the requested order.
    pub indices: Vec<u64>,
    /// Present when the scan stopped before the end of the range (page full, or scan budget spent); pass
    /// it back as [`Query::cursor`] to continue. A page may be short or even empty and still have one.
    pub next_cursor: Option<String>,
}

/// Whether one log entry matches the filters of `q` (`limit`, `cursor` and `order` are
/// ignored): exactly what [`Index::search`] returns for it, for callers that scan a log
/// without an index (`graven export --dir`). `since`/`until` must already be in the index's
/// timestamp format; a malformed bound matches nothing.
pub fn entry_matches(q: &Query, entry: &[u8]) -> bool {
    let bad_bound = |t: &Option<String>| t.as_deref().is_some_and(|t| !extract::is_timestamp(t.as_bytes()));
    if bad_bound(&q.since) || bad_bound(&q.until) {
        return false;
    }
    let ev = extract::extract(entry);
    let wanted = [&q.actor, &q.action, &q.resource, &q.outcome];
    let fields_ok =
        wanted.iter().zip(ev.fields.iter()).all(|(w, have)| w.is_none() || w.as_deref() == have.as_deref());
    let t = ev.logged_at.as_deref();
    fields_ok
        && q.since.as_deref().is_none_or(|s| t.is_some_and(|t| t >= s))
        && q.until.as_deref().is_none_or(|u| t.is_some_and(|t| t < u))
}
