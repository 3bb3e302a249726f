//! `GET /v1/events` with filters: a page of the derived search index, each event read from the
//! log at the committed size.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use graven_core::hash::TreeSize;
use serde::Deserialize;

use super::events::entry_field;
use super::state::{AppState, StrictQuery, blocking, finish, read_problem};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

/// The filters of a search, as the query string gives them (the console's search page takes
/// the same).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub order: Option<String>,
}

/// One page of a search: the events (index and entry bytes, read from the log at the
/// committed size), the cursor of the next page, and how far the index and the log have got.
#[derive(Debug)]
pub struct SearchPage {
    pub events: Vec<(u64, Vec<u8>)>,
    pub next_cursor: Option<String>,
    pub indexed_size: u64,
    pub tree_size: u64,
}

/// Parses an RFC 3339 time (a search's `since` or `until`) into the fixed `logged_at` format
/// the index compares against. `None` if it is not RFC 3339.
pub fn parse_time_bound(s: &str) -> Option<String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok().map(format_time)
}

/// A time in the fixed `logged_at` format ([`graven_core::event::format_timestamp`]).
pub fn format_time(t: time::OffsetDateTime) -> String {
    graven_core::event::format_timestamp(i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX))
}

/// An RFC 3339 time as the index's fixed-width `logged_at` text.
fn index_time(s: &str, what: &str) -> Result<String, Problem> {
    parse_time_bound(s).ok_or_else(|| {
        Problem::bad_request(
            "bad-parameter",
            format!("{what} must be an RFC 3339 time such as 2026-11-26T17:48:20Z"),
        )
    })
}

/// Search over the derived index. The index may trail the log by a moment; `indexed_size`
/// says how far it has got.
pub async fn search(State(st): St, StrictQuery(q): StrictQuery<SearchQuery>) -> Response {
    let r = async {
        let page = run(&st, q).await?;
        let mut body = String::from("{\"events\":[");
        for (k, (i, e)) in page.events.iter().enumerate() {
            if k > 0 {
                body.push(',');
            }
            let (key, value) = entry_field(e);
            body.push_str(&format!("{{\"index\":{i},\"{key}\":{value}}}"));
        }
        body.push_str(&format!(
            "],\"next_cursor\":{},\"indexed_size\":{},\"tree_size\":{}}}",
            serde_json::to_string(&page.next_cursor).unwrap_or_else(|_| "null".into()),
            page.indexed_size,
            page.tree_size
        ));
        let mut resp = body.into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(resp)
    }
    .await;
    finish(&st, "GET /v1/events", r)
}

/// Runs a search: its parameters checked (a typed 400 for each mistake), a page of the index,
/// each event read from the log at the committed size.
pub async fn run(st: &AppState, q: SearchQuery) -> Result<SearchPage, Problem> {
    // Absent is the index's default page; a limit given is used as given (0 is not "the
    // default"), within 1..=1000.
    let limit = match q.limit.as_deref() {
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=graven_index::MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(Problem::bad_request(
                    "bad-parameter",
                    format!("limit must be from 1 to {}, got {l:?}", graven_index::MAX_LIMIT),
                ));
            }
        },
        None => 0,
    };
    let order = match q.order.as_deref() {
        None | Some("newest") | Some("desc") => graven_index::Order::NewestFirst,
        Some("oldest") | Some("asc") => graven_index::Order::OldestFirst,
        Some(o) => {
            return Err(Problem::bad_request("bad-parameter", format!("order {o:?}: use newest or oldest")));
        }
    };
    let query = graven_index::Query {
        actor: q.actor,
        action: q.action,
        resource: q.resource,
        outcome: q.outcome,
        since: q.since.as_deref().map(|s| index_time(s, "since")).transpose()?,
        until: q.until.as_deref().map(|s| index_time(s, "until")).transpose()?,
        limit,
        cursor: q.cursor,
        order,
    };
    let index = st.index.clone();
    let reader = st.reader.clone();
    let size = TreeSize(st.engine.committed().size);
    blocking(move || {
        let page = index.search(&query).map_err(|e| match e {
            graven_index::IndexError::BadCursor | graven_index::IndexError::BadQuery(_) => {
                Problem::bad_request("bad-parameter", e.to_string())
            }
            e => Problem::internal(e.to_string()),
        })?;
        let indexed = index.indexed_size().map_err(|e| Problem::internal(e.to_string()))?;
        let r = reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut bundles: std::collections::HashMap<u64, (u64, Vec<Vec<u8>>)> = Default::default();
        let mut events = Vec::with_capacity(page.indices.len());
        for &i in &page.indices {
            if i >= size.0 {
                continue;
            }
            let key = i / 256;
            if let std::collections::hash_map::Entry::Vacant(v) = bundles.entry(key) {
                v.insert(r.bundle(i, size).map_err(read_problem)?);
            }
            if let Some(e) = bundles.get(&key).and_then(|(first, entries)| entries.get((i - first) as usize))
            {
                events.push((i, e.clone()));
            }
        }
        Ok(SearchPage { events, next_cursor: page.next_cursor, indexed_size: indexed, tree_size: size.0 })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width() {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_764_179_300_000_001_000).unwrap();
        let s = format_time(t);
        assert_eq!(s.len(), graven_core::event::TIMESTAMP_LEN);
        assert_eq!(s, "2025-11-26T17:48:20.000001Z");
        assert_eq!(parse_time_bound("2025-11-26T18:48:20.000001+01:00").as_deref(), Some(s.as_str()));
        assert_eq!(parse_time_bound("yesterday"), None);
    }
}
