//! One log line per request (`logs` writes it): the method, the route template that
//! matched (`/v1/events/{index}`, never the path as sent, which a client chooses; `-` when no
//! route matched), the status, the identity when the request was authenticated, the client's
//! address and the latency until the answer's head was ready (for `/v1/stream`, until the
//! stream opened). An answer with a server error (5xx) carries its cause, which is logged too,
//! at `ERROR` for a 500 and `WARN` otherwise (the log unavailable, busy, or a read replica).
//!
//! Nothing else about the request is logged: no header (so no credential), no query, no body.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use super::state::Peer;
use crate::problem::ServerError;

/// Who a request was authenticated as, put in its answer's extensions by the guard.
#[derive(Debug, Clone)]
pub(crate) struct Identity(pub Arc<str>);

impl Identity {
    /// Marks `resp` as answered to `identity`.
    pub(crate) fn mark(resp: &mut Response, identity: &str) {
        resp.extensions_mut().insert(Identity(identity.into()));
    }
}

/// The middleware around every route (and the fallback) that logs the request once answered.
pub async fn log(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|m| Arc::<str>::from(m.as_str()));
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    let resp = next.run(req).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = resp.status().as_u16();
    let identity = resp.extensions().get::<Identity>().map(|i| i.0.clone());
    let error = resp.extensions().get::<ServerError>().map(|e| e.0.clone());
    // The method is a token hyper checked, the route one of ours, the identity one the
    // registry accepted; the formatter escapes them all the same.
    let (method, route) = (method.as_str(), route.as_deref().unwrap_or("-"));
    let (identity, error) = (identity.as_deref(), error.as_deref());
    let peer = peer.map(tracing::field::display);
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(method, route, status, identity, peer, latency_ms, error, "request")
        };
    }
    match (status, error) {
        (500, Some(_)) => line!(error),
        (_, Some(_)) => line!(warn),
        _ => line!(info),
    }
    resp
}
