//! What every handler shares: the state, the client's address, the clock, and the helpers
//! that answer (and count) a response.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use graven_auth::registry::Registry;
use graven_engine::engine::Engine;
use graven_engine::reader::{LogReader, ReadError};

use crate::metrics::{HttpLabels, Metrics};
use crate::problem::Problem;

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub engine: Engine,
    pub reader: Arc<Mutex<LogReader>>,
    pub registry: Arc<Registry>,
    /// The settings a reload (SIGHUP) replaces: read with [`AppState::live`].
    pub live: std::sync::RwLock<Arc<LiveSettings>>,
    /// Bounds the `denied` records appended to the log.
    pub denied_limiter: graven_auth::ratelimit::Limiter,
    /// Serialises identity and key changes (read, audit event, durable write).
    pub admin_lock: tokio::sync::Mutex<()>,
    pub metrics: Arc<Metrics>,
    pub origin: String,
    pub verifier_key: String,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    pub index: Arc<graven_index::Index>,
    /// RFC 9421 request signatures: time window and replay cache.
    pub http_sig: graven_auth::sigauth::SigAuth,
    /// Witness cosignatures, when a witness policy is configured.
    pub witnessing: Option<graven_witness_client::Witnessing>,
    /// The longest a `?witnessed=true` request waits for the quorum.
    pub witness_wait: Duration,
    /// The stored time-stamp tokens and the checkpoints they stamp (served even when no TSA
    /// is configured now).
    pub stamps: graven_tlog::StampStore,
    /// The server's time: credentials' expiry, signature windows, the denied-record limiter.
    pub clock: Arc<dyn graven_clock::Clock>,
    /// The platform event ids already logged from each source (`sources`).
    pub source_seen: crate::source_ids::Seen,
    /// Set once the server drains (SIGTERM): live streams end at once
    /// (`serve::Node::begin_drain`).
    pub draining: tokio::sync::watch::Sender<bool>,
}

/// The settings a configuration reload (SIGHUP) replaces while the server runs. They are
/// swapped as one: a request sees the old set or the new one, never a mix.
#[derive(Debug, Default)]
pub struct LiveSettings {
    /// Whether `/checkpoint`, `/tile/...` and `/v1/log` are open to anyone.
    pub public_read_path: bool,
    /// OIDC/JWT federation, when configured: bearer tokens that are JWTs go here.
    pub oidc: Option<Arc<graven_auth::oidc::Federation>>,
    /// SPIFFE ID → identity id, for mTLS clients.
    pub spiffe_ids: Arc<std::collections::BTreeMap<String, String>>,
    /// The alert rules (`[[rules]]`), evaluated on every committed event.
    pub rules: Arc<graven_rules::Rules>,
}

/// The client's address, put in each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::IpAddr);

impl AppState {
    /// The settings in force now.
    pub fn live(&self) -> Arc<LiveSettings> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `settings` in force from the next request on.
    pub(crate) fn set_live(&self, settings: LiveSettings) {
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
    }

    /// The wall clock in Unix milliseconds, for credentials' and keys' times.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.unix_ms()
    }
}

pub(crate) fn count(state: &AppState, route: &'static str, status: StatusCode) {
    state.metrics.http.get_or_create(&HttpLabels { route, status: status.as_u16() }).inc();
}

pub(crate) fn finish(state: &AppState, route: &'static str, r: Result<Response, Problem>) -> Response {
    let resp = match r {
        Ok(r) => r,
        Err(p) => p.into_response(),
    };
    count(state, route, resp.status());
    resp
}

/// A reader error as a problem: 404 for an index outside the log, else 500.
pub(crate) fn read_problem(e: ReadError) -> Problem {
    match e {
        ReadError::OutOfRange { .. } => Problem::not_found(e.to_string()),
        e => Problem::internal(e.to_string()),
    }
}

/// Runs `f` (a read of the log) on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Problem::internal(format!("reader task failed: {e}")))?
}

/// A non-negative integer query or path parameter: an index or a size, a `u64` (a number past
/// 2^64 - 1 is refused with the range, not called "not a non-negative integer").
pub(crate) fn parse_index(s: &str, what: &str) -> Result<u64, Problem> {
    s.parse::<u64>().map_err(|_| {
        Problem::bad_request(
            "bad-parameter",
            format!("{what} must be an integer from 0 to {}, got {s:?}", u64::MAX),
        )
    })
}

/// Query parameters read strictly: a parameter the route does not take, or one given twice,
/// is a `400 bad-parameter` problem naming it, instead of being ignored (a misspelt filter
/// would otherwise widen a search to every event).
#[derive(Debug)]
pub struct StrictQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for StrictQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Response> {
        match axum::extract::Query::<T>::try_from_uri(&parts.uri) {
            Ok(axum::extract::Query(q)) => Ok(StrictQuery(q)),
            Err(e) => Err(Problem::bad_request(
                "bad-parameter",
                format!("{}; /openapi.json lists this route's parameters", e.body_text()),
            )
            .into_response()),
        }
    }
}
