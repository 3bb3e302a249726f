//! `GET /v1/stream`: server-sent events, every entry from a given index and then live, for as
//! long as the credential stays valid and the server is not draining. Each event's `id` is its
//! index; a client that reconnects with `Last-Event-ID` (as EventSource does) resumes right
//! after it, so a reconnection repeats nothing and skips nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use graven_auth::principal::Principal;
use graven_core::hash::TreeSize;
use graven_engine::reader::LogReader;
use serde::Deserialize;

use super::events::entry_field;
use super::state::{AppState, StrictQuery, count, finish, parse_index};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    from: Option<String>,
}

/// Server-sent events: every entry after `Last-Event-ID` if the client sent one, else from
/// `from` (default: the current size), then live.
pub async fn stream(
    State(st): St,
    axum::Extension(principal): axum::Extension<Arc<Principal>>,
    StrictQuery(q): StrictQuery<StreamQuery>,
    headers: HeaderMap,
) -> Response {
    // Both are read, whichever is used: a malformed `from` is refused even when
    // `Last-Event-ID` (which wins) makes it moot, rather than passed over unseen.
    let from = match q.from.as_deref().map(|s| parse_index(s, "from")).transpose() {
        Ok(v) => v,
        Err(p) => return finish(&st, "GET /v1/stream", Err(p)),
    };
    let start = match resume_after(&headers) {
        Ok(Some(next)) => next,
        Ok(None) => from.unwrap_or(st.engine.committed().size),
        Err(p) => return finish(&st, "GET /v1/stream", Err(p)),
    };
    count(&st, "GET /v1/stream", StatusCode::OK);
    let draining = st.draining.subscribe();
    let rx = st.engine.subscribe();
    let reader = st.reader.clone();
    let (registry, clock) = (st.registry.clone(), st.clock.clone());
    // The credential was checked when the stream opened; it is checked again before each read
    // of newly committed entries and every `RECHECK` while idle, so a revoked, disabled or
    // expired credential stops receiving events (and its stream is closed).
    let allowed = move || registry.still_valid(&principal, clock.unix_ms());
    Sse::new(tail(start, rx, reader, allowed, draining))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The index after `Last-Event-ID` (the last event a reconnecting client received), if the
/// client sent one. An empty value is none (the SSE standard's reset of the last event id);
/// anything but an index this stream could have sent is refused.
fn resume_after(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(v) = headers.get("last-event-id") else { return Ok(None) };
    let bad = || {
        Problem::bad_request(
            "bad-parameter",
            "Last-Event-ID must be the id of the last event received, an entry index (a non-negative integer)",
        )
    };
    let s = v.to_str().map_err(|_| bad())?;
    if s.is_empty() {
        return Ok(None);
    }
    let last = s.parse::<u64>().map_err(|_| bad())?;
    last.checked_add(1).map(Some).ok_or_else(bad)
}

/// How often an idle stream re-checks its credential.
const RECHECK: Duration = Duration::from_secs(5);

/// The events from `start` on; the stream ends when the credential is no longer valid, when
/// the log cannot be read (logged), or at once when the server starts to drain (`draining`),
/// so that SIGTERM is never held up by a client that would listen forever.
fn tail<A: Fn() -> bool + Send + 'static>(
    start: u64,
    rx: tokio::sync::watch::Receiver<graven_engine::engine::Committed>,
    reader: Arc<Mutex<LogReader>>,
    allowed: A,
    draining: tokio::sync::watch::Receiver<bool>,
) -> impl Stream<Item = Result<SseEvent, std::convert::Infallible>> {
    struct S<A> {
        next: u64,
        buf: std::collections::VecDeque<(u64, Vec<u8>)>,
        rx: tokio::sync::watch::Receiver<graven_engine::engine::Committed>,
        reader: Arc<Mutex<LogReader>>,
        allowed: A,
        draining: tokio::sync::watch::Receiver<bool>,
    }
    let s = S { next: start, buf: Default::default(), rx, reader, allowed, draining };
    futures_util::stream::unfold(s, |mut s| async move {
        loop {
            // Draining: end now, even with events in hand; the client resumes after the last
            // one it got.
            if *s.draining.borrow() {
                return None;
            }
            if let Some((i, entry)) = s.buf.pop_front() {
                let (key, value) = entry_field(&entry);
                let data = format!("{{\"index\":{i},\"{key}\":{value}}}");
                return Some((Ok(SseEvent::default().id(i.to_string()).event("event").data(data)), s));
            }
            let size = s.rx.borrow_and_update().size;
            if s.next < size {
                // Before reading more of the log for this client.
                if !(s.allowed)() {
                    return None;
                }
                let reader = s.reader.clone();
                let next = s.next;
                let got = tokio::task::spawn_blocking(move || {
                    let r = reader.lock().unwrap_or_else(|p| p.into_inner());
                    r.bundle(next, TreeSize(size))
                })
                .await;
                let (first, entries) = match got {
                    Ok(Ok(read)) => read,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, from = next, size, "reading the log for a stream failed; the stream is closed");
                        return None;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the reader task of a stream failed; the stream is closed");
                        return None;
                    }
                };
                for (k, e) in entries.into_iter().enumerate() {
                    let i = first + k as u64;
                    if i >= s.next && i < size {
                        s.buf.push_back((i, e));
                    }
                }
                s.next = s.buf.back().map_or(size, |(i, _)| i + 1);
                continue;
            }
            let changed = tokio::select! {
                c = tokio::time::timeout(RECHECK, s.rx.changed()) => c,
                // Draining, or the node is gone.
                _ = s.draining.wait_for(|d| *d) => return None,
            };
            match changed {
                Ok(Err(_)) => return None,
                Ok(Ok(())) => {}
                // Idle: re-check the credential, so a revoked one does not hold the stream.
                Err(_) => {
                    if !(s.allowed)() {
                        return None;
                    }
                }
            }
        }
    })
}
