//! RFC 9457 problem details: every error response says what happened and what to fix.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use graven_engine::engine::SubmitError;

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// A short, stable slug, e.g. `invalid-event`; becomes the problem `type`.
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Seconds, for 503.
    pub retry_after: Option<u32>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem { status, kind, title, detail: detail.into(), retry_after: None }
    }

    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, "The request is not valid", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", detail)
    }
}

/// Why the server failed a request (a 5xx problem's detail), kept in the answer's extensions
/// for the request log (`http::request_log`); never sent anywhere else.
#[derive(Debug, Clone)]
pub(crate) struct ServerError(pub std::sync::Arc<str>);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let cause = self.status.is_server_error().then(|| ServerError(self.detail.as_str().into()));
        let body = graven_api::Problem {
            kind: format!("https://graven.dev/problems/{}", self.kind),
            title: self.title.into(),
            status: self.status.as_u16(),
            detail: self.detail,
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut resp = (self.status, text).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110 §15.5.2: a 401 names the scheme that would authenticate the request.
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"graven\""));
        }
        if let Some(c) = cause {
            resp.extensions_mut().insert(c);
        }
        resp
    }
}

/// What a refused submission means to the client.
pub fn submit_problem(e: SubmitError) -> Problem {
    match e {
        SubmitError::Overloaded { .. } => {
            let mut p =
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "The log is busy", e.to_string());
            p.retry_after = Some(1);
            p
        }
        SubmitError::TooLarge { .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "The batch is too large",
            e.to_string(),
        ),
        SubmitError::NotWriter { .. } => {
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-writer",
                "This node is not the log's writer",
                e.to_string(),
            );
            p.retry_after = Some(1);
            p
        }
        SubmitError::Replayed { .. } => Problem::new(
            StatusCode::CONFLICT,
            "client-signature-replayed",
            "Client signature already used",
            e.to_string(),
        ),
        SubmitError::SignatureExpired { .. } => Problem::new(
            StatusCode::FORBIDDEN,
            "client-signature-stale",
            "Client signature refused",
            e.to_string(),
        ),
        // Storage, ShuttingDown, and whatever the engine adds later: the log is unavailable.
        _ => {
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The log cannot accept writes",
                e.to_string(),
            );
            p.retry_after = Some(5);
            p
        }
    }
}
