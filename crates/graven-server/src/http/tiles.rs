//! The tiled-log read path (C2SP tlog-tiles): `GET /checkpoint`, `GET /tile/...`, and the
//! log's description `GET /v1/log`. Everything is served at the committed size only.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use graven_core::hash::TreeSize;
use graven_core::tile::{self, TlogPath};

use super::state::{AppState, blocking, finish, read_problem};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

pub async fn log_info(State(st): St) -> Response {
    let c = st.engine.committed();
    let r = Ok(axum::Json(graven_api::LogInfo {
        origin: st.origin.clone(),
        verifier_key: st.verifier_key.clone(),
        tree_size: c.size,
        root: c.root.to_base64(),
        checkpoint: c.checkpoint.to_string(),
        // A shared log's node: whether it takes writes, and where the writer is otherwise.
        writer: st.engine.is_writer(),
        writer_url: st.engine.lease().and_then(|l| l.writer_url()),
        storage: st.engine.store().map(|s| s.location()),
        witnessing: st.witnessing.as_ref().map(crate::witnessing::info),
    })
    .into_response());
    finish(&st, "GET /v1/log", r)
}

/// `GET /checkpoint`. With witnesses, the checkpoint of the newest finished (or already
/// witnessed) round with the cosignature lines gathered for it, after the log's signature (C2SP
/// tlog-witness); it trails the committed checkpoint by at most a round. Without, or before
/// the first round ends, the committed checkpoint.
pub async fn checkpoint(State(st): St) -> Response {
    let published = st.witnessing.as_ref().and_then(|w| w.published());
    let text = match published {
        Some(p) => p.note(),
        None => st.engine.committed().checkpoint.to_string(),
    };
    let mut resp = text.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    finish(&st, "GET /checkpoint", Ok(resp))
}

/// `GET /tile/...`: a tile or entry bundle at the committed size.
///
/// One name per file: the path is taken from the request line as sent, never from the route's
/// percent-decoded `{*path}` capture (which would serve `tile/0%2F000.p/1` as `tile/0/000.p/1`).
/// tlog-tiles paths are plain ASCII and parse strictly, so a percent-encoded byte, a doubled
/// slash, a dot segment or a backslash is not a tile path.
pub async fn tile_file(State(st): St, uri: axum::http::Uri) -> Response {
    let r = async {
        let full = uri.path().strip_prefix('/').unwrap_or(uri.path()).to_owned();
        if full.contains('%') {
            return Err(Problem::not_found(format!(
                "{full:?} is not a tile path: tlog-tiles paths are never percent-encoded; send each / and digit as itself (tile/0/000.p/1)"
            )));
        }
        let parsed = tile::parse_path(&full)
            .map_err(|e| Problem::not_found(format!("{full:?} is not a tile path: {e}")))?;
        let immutable = match parsed {
            TlogPath::Tile(t) => t.is_full(),
            TlogPath::Entries(b) => b.is_full(),
            TlogPath::Checkpoint => false,
        };
        let size = TreeSize(st.engine.committed().size);
        let reader = st.reader.clone();
        let bytes = blocking(move || {
            let r = reader.lock().unwrap_or_else(|p| p.into_inner());
            r.read_path(parsed, size).map_err(read_problem)
        })
        .await?
        .ok_or_else(|| Problem::not_found(format!("{full} is not part of the log at size {}", size.0)))?;
        let mut resp = bytes.into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        // A full tile never changes. A partial tile's contents are fixed by its width too, but
        // it is superseded as the log grows, so it is cached briefly.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if immutable {
                "public, max-age=31536000, immutable"
            } else {
                "public, max-age=5"
            }),
        );
        Ok(resp)
    }
    .await;
    finish(&st, "GET /tile", r)
}
