//! OpenBao (and Vault) audit devices: the `http` audit device posts each audit entry (one JSON
//! object; several, one per line, are taken too) to `POST /v1/sources/openbao`, with the
//! source's key in the device's `headers` option. A request is all or nothing. Entries of
//! types the request does not ask for (`?types=`, default `response`) are skipped, and so is
//! the test entry the device sends when it is enabled (`sys/audit/test`, which names no token),
//! which is answered 200 so the device starts. An entry already logged from this source (the
//! same `request.id` and type, or for an entry without an id, the same bytes) is not logged
//! again.
//!
//! HMAC'd fields (`hmac-sha256:...`) stay as the device sent them: Graven neither has nor wants
//! the device's salt.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use graven_auth::principal::Principal;
use graven_sources::openbao::{self, TYPES};

use super::report::{Batch, record_problem, respond};
use crate::http::body::read_body;
use crate::http::state::{AppState, Peer, StrictQuery};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

const ROUTE: &str = "POST /v1/sources/openbao";

/// The query of `POST /v1/sources/openbao`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBaoQuery {
    /// Comma-separated entry types to log (default `response`).
    types: Option<String>,
}

/// `POST /v1/sources/openbao`.
pub async fn openbao(
    State(st): St,
    axum::Extension(principal): axum::Extension<Arc<Principal>>,
    peer: Option<axum::Extension<Peer>>,
    StrictQuery(query): StrictQuery<OpenBaoQuery>,
    body: Body,
) -> Response {
    let r = openbao_inner(&st, &principal, &query, body).await;
    respond(&st, &principal, peer.map(|p| p.0.0), ROUTE, r).await
}

async fn openbao_inner(
    st: &AppState,
    principal: &Principal,
    query: &OpenBaoQuery,
    body: Body,
) -> Result<graven_api::SourceReport, Problem> {
    let mut batch = Batch::new(principal, "openbao")?;
    let types = match &query.types {
        None => vec!["response"],
        Some(list) => graven_sources::parse_list(list, &TYPES).ok_or_else(|| {
            Problem::bad_request(
                "invalid-query",
                format!("types={list:?}: give a comma-separated list of {}", TYPES.join(", ")),
            )
        })?,
    };
    let bytes = read_body(st, body).await?;
    let lines = openbao::lines(&bytes);
    if lines.is_empty() {
        return Err(record_problem(graven_sources::RecordError(
            "the body is empty: expected an OpenBao audit entry (a JSON object, or one per line)".to_owned(),
        )));
    }
    Batch::check_count(st, lines.len(), "request (one audit entry per line)")?;
    for (i, line) in lines.iter().enumerate() {
        match openbao::map_line(i, line, &types).map_err(record_problem)? {
            Some(rec) => batch.add(&format!("line {}", i + 1), rec)?,
            None => batch.skip(),
        }
    }
    batch.commit(st).await
}
