//! Trusted time on the read path (docs/trusted-time.md): the stored time-stamp tokens and the
//! checkpoints they stamp, under the same names as in the log's storage, so a verifier reads
//! them from a server, a directory or a bucket alike; and the list of stamped sizes.
//!
//! - `GET /graven/timestamp/<size, 20 digits>`: the token's DER;
//! - `GET /graven/checkpoint/<size, 20 digits>`: the checkpoint it stamps, as the log's signer
//!   wrote it (on an object store every archived checkpoint is there);
//! - `GET /v1/timestamps?after=&until=&limit=`: the stamped sizes, in increasing order.
//!
//! Only sizes up to the committed one are served.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use graven_tlog::stamps::parse_size_name;
use serde::Deserialize;

use super::state::{AppState, StrictQuery, blocking, finish, parse_index};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

/// Most sizes in one answer of `GET /v1/timestamps`.
pub const MAX_LIST: usize = 1000;

/// A stored file's size from its name: exactly 20 digits (one name per file), within the
/// committed tree.
fn committed_size(st: &AppState, name: &str, what: &str) -> Result<u64, Problem> {
    let size = parse_size_name(name).ok_or_else(|| {
        Problem::not_found(format!(
            "{name:?} is not a {what} name: the tree size in exactly 20 digits, such as 00000000000000000042"
        ))
    })?;
    let committed = st.engine.committed().size;
    if size > committed {
        return Err(Problem::not_found(format!("size {size} is beyond the committed tree ({committed})")));
    }
    Ok(size)
}

fn immutable(bytes: Vec<u8>, content_type: &'static str) -> Response {
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    resp
}

/// `GET /graven/timestamp/{size}`.
pub async fn token(State(st): St, Path(name): Path<String>) -> Response {
    let r = async {
        let size = committed_size(&st, &name, "time-stamp token")?;
        let stamps = st.stamps.clone();
        let token =
            blocking(move || stamps.token(size).map_err(|e| Problem::internal(e.to_string()))).await?;
        let token = token.ok_or_else(|| {
            Problem::not_found(format!("the checkpoint of size {size} has no time-stamp token"))
        })?;
        // The DER of a TimeStampToken (RFC 3161 §2.4.2), a CMS ContentInfo.
        Ok(immutable(token, "application/octet-stream"))
    }
    .await;
    finish(&st, "GET /graven/timestamp/{size}", r)
}

/// `GET /graven/checkpoint/{size}`.
pub async fn archived_checkpoint(State(st): St, Path(name): Path<String>) -> Response {
    let r = async {
        let size = committed_size(&st, &name, "checkpoint")?;
        let stamps = st.stamps.clone();
        let note =
            blocking(move || stamps.checkpoint(size).map_err(|e| Problem::internal(e.to_string()))).await?;
        let note =
            note.ok_or_else(|| Problem::not_found(format!("no archived checkpoint of size {size}")))?;
        Ok(immutable(note, "text/plain; charset=utf-8"))
    }
    .await;
    finish(&st, "GET /graven/checkpoint/{size}", r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    after: Option<String>,
    until: Option<String>,
    limit: Option<String>,
}

/// `GET /v1/timestamps`: `{"sizes":[...]}`, the stamped sizes in `after + 1 ..= until` (default
/// 0 and the committed size), at most `limit` (default and most [`MAX_LIST`]). Page with
/// `after` = the last size received.
pub async fn list(State(st): St, StrictQuery(q): StrictQuery<ListQuery>) -> Response {
    let r = async {
        let committed = st.engine.committed().size;
        let after = q.after.as_deref().map(|s| parse_index(s, "after")).transpose()?.unwrap_or(0);
        let until = q.until.as_deref().map(|s| parse_index(s, "until")).transpose()?.unwrap_or(committed);
        let limit =
            q.limit.as_deref().map(|s| parse_index(s, "limit")).transpose()?.unwrap_or(MAX_LIST as u64);
        if limit == 0 || limit > MAX_LIST as u64 {
            return Err(Problem::bad_request("bad-parameter", format!("limit must be from 1 to {MAX_LIST}")));
        }
        let until = until.min(committed);
        let stamps = st.stamps.clone();
        let sizes = blocking(move || {
            stamps.list(after, until, limit as usize).map_err(|e| Problem::internal(e.to_string()))
        })
        .await?;
        Ok(axum::Json(graven_api::TimestampList { sizes }).into_response())
    }
    .await;
    finish(&st, "GET /v1/timestamps", r)
}
