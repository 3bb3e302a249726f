//! The HTTP API: `fn app(state) -> Router`. Thin: parse, call the engine or the reader,
//! answer. Every error is an RFC 9457 problem that says what to fix.
//!
//! | module | what |
//! |---|---|
//! | [`routes`] | the one table of operations: method, path, metric label, access |
//! | [`guard`] | credentials (signature, client certificate, OIDC token, API key) and roles |
//! | [`body`] | request bodies within a size limit and a deadline |
//! | [`events`] | appending events (receipts) and reading one |
//! | [`proofs`] | inclusion and consistency proofs |
//! | [`request_log`] | one log line per request: method, route, status, identity, latency |
//! | [`tiles`] | the tlog-tiles read path and `/v1/log` |
//! | [`search`] | searching the derived index |
//! | [`stream`] | the live stream of entries |
//! | [`state`] | what the handlers share |
//! | [`timestamps`] | trusted time: stored time-stamp tokens, the checkpoints they stamp, the stamped sizes |
//! | [`witnessed`] | `?witnessed=true`: receipts and proofs against a checkpoint with the witness quorum |
//!
//! The identity and key administration routes are in `admin`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub mod admin;
pub mod audit;
pub mod body;
pub mod events;
pub mod guard;
pub mod inventory;
pub mod proofs;
pub mod request_log;
pub mod routes;
pub mod search;
pub mod sources;
pub mod state;
pub mod stream;
pub mod tiles;
pub mod timestamps;
pub mod witnessed;

pub use search::parse_time_bound;
pub use state::{AppState, Peer};

use crate::metrics::exposition::Exposition;
use crate::problem::Problem;
use state::finish;

type St = State<Arc<AppState>>;

/// The router: every route of [`routes::ROUTES`] behind the [`guard::guard`], every request
/// (the fallback's too) logged by [`request_log::log`].
pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/events", get(search::search).post(events::post_events))
        .route("/v1/events/{index}", get(events::get_event))
        .route("/v1/sources/kubernetes", axum::routing::post(sources::kubernetes::kubernetes))
        .route("/v1/sources/openbao", axum::routing::post(sources::openbao::openbao))
        .route("/v1/sources/cloudtrail", axum::routing::post(sources::cloudtrail::cloudtrail))
        .route("/v1/logs", axum::routing::post(sources::otlp::logs))
        .route("/v1/proofs/inclusion", get(proofs::inclusion_proof))
        .route("/v1/proofs/consistency", get(proofs::consistency_proof))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/inventory", get(inventory::inventory))
        .route("/v1/log", get(tiles::log_info))
        .route("/checkpoint", get(tiles::checkpoint))
        .route("/tile/{*path}", get(tiles::tile_file))
        .route("/graven/timestamp/{size}", get(timestamps::token))
        .route("/graven/checkpoint/{size}", get(timestamps::archived_checkpoint))
        .route("/v1/timestamps", get(timestamps::list))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(crate::http::admin::identities::routes())
        .merge(crate::http::admin::public_keys::routes())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard::guard))
        .fallback(|| async { Problem::not_found("no such endpoint; see /openapi.json") })
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(request_log::log))
        .with_state(state)
}

async fn readyz(State(st): St) -> Response {
    let r = if st.engine.is_poisoned() {
        Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "poisoned",
            "Not ready",
            "a storage error stopped writes; restart the server to recover the log",
        ))
    } else {
        Ok("ready\n".into_response())
    };
    finish(&st, "GET /readyz", r)
}

/// The classic Prometheus text format, or OpenMetrics when the `Accept` header prefers it.
async fn metrics(State(st): St, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Exposition::negotiate(accept);
    let mut resp = st.metrics.render_as(format).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    resp.headers_mut().insert(header::VARY, HeaderValue::from_static("accept"));
    resp
}

async fn openapi() -> Response {
    let mut resp = include_str!("../openapi.json").into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
