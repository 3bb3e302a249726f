//! Kubernetes: the API server's audit webhook backend posts `audit.k8s.io/v1` `EventList`s to
//! `POST /v1/sources/kubernetes`. A request is all or nothing: every record it takes is logged
//! in one commit, or none is. Records of stages the request does not ask for (`?stages=`,
//! default `ResponseComplete`) are skipped; a record already logged from this source (the same
//! `auditID` and stage) is not logged again, so the API server's retry after a lost answer is
//! not logged twice.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use graven_auth::principal::Principal;
use graven_sources::kubernetes::{self, STAGES};

use super::report::{Batch, record_problem, respond};
use crate::http::body::read_body;
use crate::http::state::{AppState, Peer, StrictQuery};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

/// The query of `POST /v1/sources/kubernetes`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesQuery {
    /// Comma-separated stages to log (default `ResponseComplete`).
    stages: Option<String>,
}

/// `POST /v1/sources/kubernetes`.
pub async fn kubernetes(
    State(st): St,
    axum::Extension(principal): axum::Extension<Arc<Principal>>,
    peer: Option<axum::Extension<Peer>>,
    StrictQuery(query): StrictQuery<KubernetesQuery>,
    body: Body,
) -> Response {
    let r = kubernetes_inner(&st, &principal, &query, body).await;
    respond(&st, &principal, peer.map(|p| p.0.0), ROUTE, r).await
}

const ROUTE: &str = "POST /v1/sources/kubernetes";

async fn kubernetes_inner(
    st: &AppState,
    principal: &Principal,
    query: &KubernetesQuery,
    body: Body,
) -> Result<graven_api::SourceReport, Problem> {
    let mut batch = Batch::new(principal, "kubernetes")?;
    let stages = match &query.stages {
        None => vec!["ResponseComplete"],
        Some(list) => graven_sources::parse_list(list, &STAGES).ok_or_else(|| {
            Problem::bad_request(
                "invalid-query",
                format!("stages={list:?}: give a comma-separated list of {}", STAGES.join(", ")),
            )
        })?,
    };
    let bytes = read_body(st, body).await?;
    let items = kubernetes::parse_event_list(&bytes).map_err(record_problem)?;
    Batch::check_count(st, items.len(), "EventList (set the webhook's batch size below it)")?;
    for (i, raw) in items.iter().enumerate() {
        match kubernetes::map_item(i, raw, &stages).map_err(record_problem)? {
            Some(rec) => batch.add(&format!("items[{i}]"), rec)?,
            None => batch.skip(),
        }
    }
    batch.commit(st).await
}
