//! AWS CloudTrail: `POST /v1/sources/cloudtrail` takes the records of a CloudTrail log file
//! (`{"Records": [...]}`, as CloudTrail writes them to S3, unzipped), which `graven import
//! cloudtrail` reads from a directory or a bucket and posts. A request is all or nothing; a
//! record already logged from this source (the same `eventID`) is not logged again, so an
//! import run twice, or resumed, logs each record once.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use graven_auth::principal::Principal;
use graven_sources::cloudtrail;

use super::report::{Batch, record_problem, respond};
use crate::http::body::read_body;
use crate::http::state::{AppState, Peer, StrictQuery};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

const ROUTE: &str = "POST /v1/sources/cloudtrail";

/// `POST /v1/sources/cloudtrail` takes no query parameters.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudTrailQuery {}

/// `POST /v1/sources/cloudtrail`.
pub async fn cloudtrail(
    State(st): St,
    axum::Extension(principal): axum::Extension<Arc<Principal>>,
    peer: Option<axum::Extension<Peer>>,
    StrictQuery(_query): StrictQuery<CloudTrailQuery>,
    body: Body,
) -> Response {
    let r = cloudtrail_inner(&st, &principal, body).await;
    respond(&st, &principal, peer.map(|p| p.0.0), ROUTE, r).await
}

async fn cloudtrail_inner(
    st: &AppState,
    principal: &Principal,
    body: Body,
) -> Result<graven_api::SourceReport, Problem> {
    let mut batch = Batch::new(principal, "cloudtrail")?;
    let bytes = read_body(st, body).await?;
    let records = cloudtrail::parse_log_file(&bytes).map_err(record_problem)?;
    Batch::check_count(st, records.len(), "request (split the file's Records)")?;
    for (i, raw) in records.iter().enumerate() {
        let rec = cloudtrail::map_item(i, raw).map_err(record_problem)?;
        batch.add(&format!("Records[{i}]"), rec)?;
    }
    batch.commit(st).await
}
