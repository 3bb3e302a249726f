//! `?witnessed=true`: receipts and inclusion proofs against a checkpoint that carries the
//! witness policy's quorum of cosignatures.

use std::sync::Arc;

use axum::http::StatusCode;
use graven_core::hash::{LeafIndex, TreeSize};
use graven_engine::engine::Receipt;
use graven_witness_client::CosignedCheckpoint;

use super::state::{AppState, blocking, read_problem};
use crate::problem::Problem;

/// Seconds a client is told to wait before asking again for a quorum.
const RETRY_AFTER_SECONDS: u32 = 5;

/// The `witnessed` query parameter: absent, `true` or `false` (nothing else).
pub(crate) fn wants_witnessed(query: Option<&str>) -> Result<bool, Problem> {
    let mut wanted = false;
    for pair in query.unwrap_or("").split('&') {
        let Some(v) = pair.strip_prefix("witnessed=") else {
            if pair == "witnessed" {
                return Err(Problem::bad_request("bad-parameter", "give witnessed=true or witnessed=false"));
            }
            continue;
        };
        wanted = match v {
            "true" => true,
            "false" => false,
            other => {
                return Err(Problem::bad_request(
                    "bad-parameter",
                    format!(
                        "witnessed must be true or false, got {:?}",
                        other.chars().take(40).collect::<String>()
                    ),
                ));
            }
        };
    }
    Ok(wanted)
}

fn no_witnesses() -> Problem {
    Problem::bad_request(
        "no-witness-policy",
        "this log has no witness policy, so no checkpoint is ever witnessed: drop witnessed=true, or configure witness_policy (see docs/witness.md)",
    )
}

fn unavailable(detail: String) -> Problem {
    let mut p = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "witness-quorum-unavailable",
        "Witness quorum not available",
        detail,
    );
    p.retry_after = Some(RETRY_AFTER_SECONDS);
    p
}

/// Before an append with `?witnessed=true`: refuses (nothing appended) when the witnesses that
/// are answering cannot meet the quorum, so that a client never gets an error for an event
/// that was appended.
pub(crate) fn quorum_reachable(st: &AppState) -> Result<(), Problem> {
    let w = st.witnessing.as_ref().ok_or_else(no_witnesses)?;
    let status = w.status();
    let healthy: Vec<bool> = status.iter().map(|s| s.consecutive_failures == 0).collect();
    if w.policy().quorum_met(&healthy) {
        return Ok(());
    }
    let failing: Vec<String> = status
        .iter()
        .filter(|s| s.consecutive_failures > 0)
        .map(|s| format!("{} ({})", s.name, s.last_error.as_deref().unwrap_or("failed")))
        .collect();
    Err(unavailable(format!(
        "the witnesses answering cannot meet the quorum (failing: {}); nothing was appended; try again later, or append without witnessed=true",
        failing.join("; ")
    )))
}

/// Waits (bounded) for a witnessed checkpoint covering `index`.
pub(crate) async fn covering(st: &AppState, index: u64) -> Result<Option<Arc<CosignedCheckpoint>>, Problem> {
    let w = st.witnessing.as_ref().ok_or_else(no_witnesses)?;
    Ok(w.wait_witnessed(index.saturating_add(1), st.witness_wait).await)
}

/// The 503 for a read that found no witnessed checkpoint covering `index` in time.
pub(crate) fn not_yet(st: &AppState, index: u64) -> Problem {
    unavailable(format!(
        "no checkpoint covering index {index} met the witness quorum within {} ms; ask again later (GET /v1/proofs/inclusion?index={index}&witnessed=true); /v1/log shows each witness's state",
        st.witness_wait.as_millis()
    ))
}

/// The same receipts, proved against the witnessed checkpoint `w` (every index below its size).
pub(crate) async fn reprove(
    st: &AppState,
    receipts: Vec<Receipt>,
    w: &CosignedCheckpoint,
) -> Result<Vec<Receipt>, Problem> {
    let size = w.size;
    let checkpoint: Arc<str> = w.note().into();
    let reader = st.reader.clone();
    blocking(move || {
        let mut r = reader.lock().unwrap_or_else(|p| p.into_inner());
        receipts
            .into_iter()
            .map(|rc| {
                let proof = r.inclusion_proof(LeafIndex(rc.index), TreeSize(size)).map_err(read_problem)?;
                Ok(Receipt { tree_size: size, checkpoint: checkpoint.clone(), inclusion_proof: proof, ..rc })
            })
            .collect()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter_is_true_false_or_absent() {
        assert!(!wants_witnessed(None).unwrap());
        assert!(!wants_witnessed(Some("index=3")).unwrap());
        assert!(wants_witnessed(Some("index=3&witnessed=true")).unwrap());
        assert!(!wants_witnessed(Some("witnessed=false")).unwrap());
        for bad in ["witnessed=yes", "witnessed=", "witnessed", "witnessed=TRUE"] {
            assert_eq!(wants_witnessed(Some(bad)).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
