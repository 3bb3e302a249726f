//! `GET /v1/stream`: server-sent events, every entry from a given index and then live, for as
//! long as the credential stays valid.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use graven_auth::principal::Principal;
use graven_core::hash::TreeSize;
use graven_engine::reader::LogReader;
use serde::Deserialize;

use super::events::entry_field;
use super::state::{AppState, count, finish, parse_index};

type St = State<Arc<AppState>>;

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    from: Option<String>,
}

/// Server-sent events: every entry from `from` (default: the current size), then live.
pub async fn stream(
    State(st): St,
    axum::Extension(principal): axum::Extension<Arc<Principal>>,
    Query(q): Query<StreamQuery>,
) -> Response {
    let start = match q.from.as_deref().map(|s| parse_index(s, "from")).transpose() {
        Ok(v) => v.unwrap_or(st.engine.committed().size),
        Err(p) => return finish(&st, "GET /v1/stream", Err(p)),
    };
    count(&st, "GET /v1/stream", StatusCode::OK);
    let rx = st.engine.subscribe();
    let reader = st.reader.clone();
    let (registry, clock) = (st.registry.clone(), st.clock.clone());
    // The credential was checked when the stream opened; it is checked again before each read
    // of newly committed entries and every `RECHECK` while idle, so a revoked, disabled or
    // expired credential stops receiving events (and its stream is closed).
    let allowed = move || registry.still_valid(&principal, clock.unix_ms());
    Sse::new(tail(start, rx, reader, allowed))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// How often an idle stream re-checks its credential.
const RECHECK: Duration = Duration::from_secs(5);

fn tail<A: Fn() -> bool + Send + 'static>(
    start: u64,
    rx: tokio::sync::watch::Receiver<graven_engine::engine::Committed>,
    reader: Arc<Mutex<LogReader>>,
    allowed: A,
) -> impl Stream<Item = Result<SseEvent, std::convert::Infallible>> {
    struct S<A> {
        next: u64,
        buf: std::collections::VecDeque<(u64, Vec<u8>)>,
        rx: tokio::sync::watch::Receiver<graven_engine::engine::Committed>,
        reader: Arc<Mutex<LogReader>>,
        allowed: A,
    }
    let s = S { next: start, buf: Default::default(), rx, reader, allowed };
    futures_util::stream::unfold(s, |mut s| async move {
        loop {
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
                let Ok(Ok((first, entries))) = got else { return None };
                for (k, e) in entries.into_iter().enumerate() {
                    let i = first + k as u64;
                    if i >= s.next && i < size {
                        s.buf.push_back((i, e));
                    }
                }
                s.next = s.buf.back().map_or(size, |(i, _)| i + 1);
                continue;
            }
            match tokio::time::timeout(RECHECK, s.rx.changed()).await {
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
