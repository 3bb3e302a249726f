//! OpenTelemetry logs: an OTLP/HTTP receiver at `POST /v1/logs` (OTLP 1.x: protobuf or
//! OTLP/JSON; gzip, deflate or neither). Each log record becomes one event whose actor is its
//! resource's `service.name`, attested by the source identity that sent it (the mapping:
//! [`super::otlp_map`], docs/sources.md).
//!
//! A request is all or nothing, like every source: one record Graven cannot take (not OTLP, no
//! `service.name`, a subject outside the grant, too deep) refuses the request with 400 or 403
//! and nothing is logged, so OTLP's `partial_success` never reports rejected records; it
//! carries only a warning when records were not logged again because their `log.record.uid`
//! already was. Answers follow the OTLP/HTTP spec: success is 200 with an
//! `ExportLogsServiceResponse`, a failure a `google.rpc.Status` (in JSON, also an RFC 9457
//! problem), each in the request's encoding; 503 with `Retry-After` when the log is busy, which
//! exporters retry.

use std::io::Read as _;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use graven_auth::principal::Principal;
use serde_json::json;

use super::otlp_map::{self, Encoding, OtlpError, SUBJECT_KIND};
use super::report::{Batch, Record, Subject, bad, record_refusal};
use crate::http::body::read_body;
use crate::http::state::{AppState, Peer, finish};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

const ROUTE: &str = "POST /v1/logs";

/// `POST /v1/logs`.
pub async fn logs(
    State(st): St,
    axum::Extension(principal): axum::Extension<Arc<Principal>>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let answer = match encoding(&headers) {
        // Not one of OTLP's encodings: a plain problem.
        Err(p) => Err(p),
        Ok(enc) => match logs_inner(&st, &principal, &headers, enc, body).await {
            Ok(report) => Ok(success(enc, report.duplicates)),
            Err(p) => {
                record_refusal(&st, &principal, peer.map(|p| p.0.0), ROUTE, &p).await;
                Ok(failure(enc, p))
            }
        },
    };
    finish(&st, ROUTE, answer)
}

/// The body's encoding, from `Content-Type`.
fn encoding(headers: &HeaderMap) -> Result<Encoding, Problem> {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        other => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported content type",
            format!(
                "{other:?} is not accepted: OTLP/HTTP sends application/x-protobuf or application/json; nothing was appended"
            ),
        )),
    }
}

async fn logs_inner(
    st: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    enc: Encoding,
    body: Body,
) -> Result<graven_api::SourceReport, Problem> {
    let mut batch = Batch::new(principal, "otlp")?;
    let bytes = read_body(st, body).await?;
    let coding =
        headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    let plain = match coding.as_deref() {
        None | Some("identity") => bytes.to_vec(),
        Some("gzip") => inflate(flate2::read::MultiGzDecoder::new(&bytes[..]), "gzip", st.max_body_bytes)?,
        Some("deflate") => inflate(flate2::read::ZlibDecoder::new(&bytes[..]), "deflate", st.max_body_bytes)?,
        Some(other) => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-content-encoding",
                "Unsupported content encoding",
                format!(
                    "Content-Encoding {other:?} is not accepted: send gzip, deflate or none; nothing was appended"
                ),
            ));
        }
    };
    let max = st.engine.config().max_batch_events;
    let records = otlp_map::decode(&plain, enc, max).map_err(|e| match e {
        OtlpError::TooMany { records, .. } => match Batch::check_count(st, records, "request") {
            Err(p) => Problem { detail: format!("{e}; nothing was appended"), ..p },
            Ok(()) => bad(e.to_string()),
        },
        e => bad(e.to_string()),
    })?;
    for m in records {
        let rec = Record {
            event: m.event,
            platform_fields: m.platform_fields,
            original: m.original,
            original_bytes: &m.original_bytes,
            dedup_id: m.dedup_id,
            subject: Subject { id: m.subject_id, kind: SUBJECT_KIND.to_owned(), extra: m.subject_extra },
        };
        batch.add(&m.at, rec)?;
    }
    batch.commit(st).await
}

/// A compressed body (the exporters' `compression`), decompressed to at most `limit` bytes
/// (the limit of a plain body).
fn inflate(decoder: impl std::io::Read, what: &str, limit: usize) -> Result<Vec<u8>, Problem> {
    let mut out = Vec::new();
    match decoder.take(limit as u64 + 1).read_to_end(&mut out) {
        Err(e) => Err(bad(format!("the body is not valid {what} ({e})"))),
        Ok(n) if n > limit => Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "The request body is too large",
            format!(
                "the decompressed body is over the {limit}-byte limit; lower the exporter's batch size; nothing was appended"
            ),
        )),
        Ok(_) => Ok(out),
    }
}

/// `opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportLogsServiceResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<ExportLogsPartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ExportLogsPartialSuccess {
    #[prost(int64, tag = "1")]
    rejected_log_records: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// `google.rpc.Status`, without details.
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn with_body(mut resp: Response, enc: Encoding, body: Vec<u8>) -> Response {
    *resp.body_mut() = Body::from(body);
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    let ctype = match enc {
        Encoding::Protobuf => "application/x-protobuf",
        Encoding::Json => "application/json",
    };
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp
}

/// 200 with an `ExportLogsServiceResponse`: empty, or a warning (no rejected records) naming the
/// records not logged again.
fn success(enc: Encoding, duplicates: u64) -> Response {
    let partial = (duplicates > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: 0,
        error_message: format!(
            "{duplicates} log records were already logged (the same log.record.uid from this source) and were not logged again"
        ),
    });
    let body = match enc {
        Encoding::Protobuf => {
            prost::Message::encode_to_vec(&ExportLogsServiceResponse { partial_success: partial })
        }
        Encoding::Json => match partial {
            None => b"{}".to_vec(),
            Some(p) => json!({"partialSuccess": {"errorMessage": p.error_message}}).to_string().into_bytes(),
        },
    };
    with_body(StatusCode::OK.into_response(), enc, body)
}

/// A refusal as OTLP/HTTP answers it: a `google.rpc.Status` in the request's encoding (in JSON
/// the problem document's members too), with the problem's status and `Retry-After`.
fn failure(enc: Encoding, p: Problem) -> Response {
    let code = grpc_code(p.status);
    let message = format!("{}: {}", p.title, p.detail);
    let body = match enc {
        Encoding::Protobuf => prost::Message::encode_to_vec(&Status { code, message }),
        Encoding::Json => json!({
            "type": format!("https://graven.dev/problems/{}", p.kind),
            "title": p.title,
            "status": p.status.as_u16(),
            "detail": p.detail,
            "code": code,
            "message": message,
        })
        .to_string()
        .into_bytes(),
    };
    with_body(p.into_response(), enc, body)
}

/// The gRPC status code of an HTTP status (OTLP/HTTP's `Status.code`).
fn grpc_code(s: StatusCode) -> i32 {
    match s.as_u16() {
        400 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,      // UNAUTHENTICATED
        403 => 7,       // PERMISSION_DENIED
        408 => 4,       // DEADLINE_EXCEEDED
        409 => 6,       // ALREADY_EXISTS
        413 => 8,       // RESOURCE_EXHAUSTED
        500 => 13,      // INTERNAL
        503 => 14,      // UNAVAILABLE
        _ => 2,         // UNKNOWN
    }
}
