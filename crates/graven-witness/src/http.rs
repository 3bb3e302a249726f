//! The witness's HTTP interface, C2SP `tlog-witness` §HTTP Interface:
//!
//! - `POST <prefix>/add-checkpoint`: the body as `request` reads it; `200` with the
//!   cosignature lines (each `— <name> <base64>` and a newline), or the spec's status: `400`,
//!   `403`, `404`, `409` (body `<size>\n`, `Content-Type: text/x.tlog.size`), `422`. Beyond the
//!   spec: `413` for a body over the limit, `408` for one that does not arrive in time, `503`
//!   once a storage error has stopped the witness (until a restart), `500` for a clock that
//!   cannot be signed.
//! - `GET <prefix>/<origin hash>/checkpoint` (§Monitor Retrieval Mechanism): the latest
//!   checkpoint cosigned for the origin whose lowercase hex SHA-256 is `<origin hash>`, with the
//!   log's signature and the witness's cosignature; `404` if it never cosigned one.
//!
//! The witness uses one prefix for both the submission and the monitoring prefix (the spec
//! allows it). Handlers are thin: the decision and the durable update are
//! `witness::Witness::add_checkpoint`, run on a blocking thread (it fsyncs). Once
//! started, an update runs to the end even if the client goes away.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};

use crate::machine::WitnessError;
use crate::witness::{AddError, Witness};

/// `Content-Type` of a 409's body (tlog-witness §add-checkpoint).
pub const TLOG_SIZE: &str = "text/x.tlog.size";
const TEXT: &str = "text/plain; charset=utf-8";

/// What the handlers share.
pub struct AppState {
    pub witness: Arc<Witness>,
    /// Largest `add-checkpoint` body read.
    pub max_body_bytes: usize,
    /// Time allowed to receive a body.
    pub body_timeout: Duration,
    /// The wall clock, in POSIX seconds (the edge reads it; the rules are handed it).
    pub clock: fn() -> u64,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("witness", &self.witness)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("body_timeout", &self.body_timeout)
            .finish()
    }
}

/// The system clock in POSIX seconds (0 if it reads before 1970, which the witness refuses).
pub fn system_clock() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The router: both endpoints under `prefix` (empty, or starting with `/` and not ending
/// with one).
pub fn app(state: Arc<AppState>, prefix: &str) -> Router {
    let routes = Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{origin_hash}/checkpoint", get(checkpoint))
        .with_state(state);
    if prefix.is_empty() { routes } else { Router::new().nest(prefix, routes) }
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, message: String) -> Response {
    respond(status, TEXT, format!("{message}\n"))
}

async fn read_body(state: &AppState, body: Body) -> Result<Bytes, Response> {
    let limit = state.max_body_bytes;
    match tokio::time::timeout(state.body_timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body was not received within {} s", state.body_timeout.as_secs()),
        )),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
            let mut too_large = false;
            while let Some(s) = source {
                too_large |= s.is::<http_body_util::LengthLimitError>();
                source = s.source();
            }
            Err(if too_large {
                text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is over the {limit}-byte limit"),
                )
            } else {
                text(StatusCode::BAD_REQUEST, "the request body could not be read".into())
            })
        }
    }
}

/// `POST <prefix>/add-checkpoint`.
async fn add_checkpoint(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let bytes = match read_body(&state, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let witness = state.witness.clone();
    let now = (state.clock)();
    let decided = tokio::task::spawn_blocking(move || witness.add_checkpoint(&bytes, now)).await;
    match decided {
        Ok(Ok(lines)) => respond(StatusCode::OK, TEXT, lines),
        // "The response body MUST consist of the tree size of the latest cosigned checkpoint
        // in decimal, followed by a newline. The response MUST have a Content-Type of
        // text/x.tlog.size."
        Ok(Err(AddError::Refused(WitnessError::Conflict(size)))) => {
            respond(StatusCode::CONFLICT, TLOG_SIZE, format!("{}\n", size.0))
        }
        Ok(Err(AddError::Refused(e))) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            text(status, e.to_string())
        }
        Ok(Err(e @ AddError::Storage(_))) => {
            eprintln!("graven witness: {e}; no more cosignatures until restarted");
            text(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Ok(Err(e @ AddError::Poisoned)) => text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Ok(Err(e)) => {
            eprintln!("graven witness: {e}");
            text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "the request's task failed".into()),
    }
}

/// `GET <prefix>/<origin hash>/checkpoint`.
async fn checkpoint(State(state): State<Arc<AppState>>, Path(origin_hash): Path<String>) -> Response {
    match state.witness.checkpoint(&origin_hash) {
        Some(note) => respond(StatusCode::OK, TEXT, note.to_vec()),
        None => {
            text(StatusCode::NOT_FOUND, "this witness never cosigned a checkpoint for that origin".into())
        }
    }
}
