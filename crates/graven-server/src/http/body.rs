//! Request bodies: every one read with a size limit and a deadline.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::state::AppState;
use crate::problem::Problem;

/// Reads a request body within the server's limit (`max_body_bytes`) and deadline
/// (`body_timeout`).
pub async fn read_body(state: &AppState, body: Body) -> Result<Bytes, Problem> {
    let limit = state.max_body_bytes;
    match tokio::time::timeout(state.body_timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "body-timeout",
            "The request body took too long",
            format!(
                "the body was not received within {} s; nothing was appended",
                state.body_timeout.as_secs()
            ),
        )),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
            let mut too_large = false;
            while let Some(s) = source {
                too_large |= s.is::<http_body_util::LengthLimitError>();
                source = s.source();
            }
            if too_large {
                Err(Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "The request body is too large",
                    format!(
                        "the body is over the {limit}-byte limit; split it into several requests; nothing was appended"
                    ),
                ))
            } else {
                Err(Problem::bad_request(
                    "body-incomplete",
                    format!("the body could not be read ({e}); nothing was appended"),
                ))
            }
        }
    }
}

/// Largest body of the identity and key routes.
const MAX_JSON_BODY: usize = 64 << 10;

/// Reads a small JSON body strictly: a JSON object (serde would take a struct from an array
/// too: `[null, null]` as a key request), unknown fields refused. An empty body is `{}`.
pub async fn read_json<T: DeserializeOwned>(body: Body) -> Result<T, Problem> {
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "The request body is too large",
            format!("identity requests are at most {MAX_JSON_BODY} bytes of JSON"),
        )
    })?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Problem::bad_request(
            "invalid-request",
            "the body must be a JSON object (or empty); see /openapi.json for this route's fields; nothing changed",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Problem::bad_request("invalid-request", format!("{e}; nothing changed")))
}
