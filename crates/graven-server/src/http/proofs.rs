//! `GET /v1/proofs/inclusion` and `GET /v1/proofs/consistency`, at any committed size.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use graven_core::hash::{Hash, LeafIndex, TreeSize};
use serde::Deserialize;

use super::state::{AppState, StrictQuery, blocking, finish, parse_index, read_problem};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    index: Option<String>,
    tree_size: Option<String>,
    /// Read by `witnessed::wants_witnessed` from the raw query; named here so it is allowed.
    #[allow(dead_code)]
    witnessed: Option<String>,
}

pub async fn inclusion_proof(
    State(st): St,
    uri: axum::http::Uri,
    StrictQuery(q): StrictQuery<InclusionQuery>,
) -> Response {
    let r = async {
        let witnessed = super::witnessed::wants_witnessed(uri.query())?;
        let index = parse_index(
            q.index
                .as_deref()
                .ok_or_else(|| Problem::bad_request("bad-parameter", "give ?index=<0-based leaf index>"))?,
            "index",
        )?;
        let c = st.engine.committed();
        let mut cosigned = None;
        let size = match (q.tree_size.as_deref(), witnessed) {
            (Some(_), true) => {
                return Err(Problem::bad_request(
                    "bad-parameter",
                    "give tree_size or witnessed=true, not both: a witnessed proof is at the size of the newest witnessed checkpoint",
                ));
            }
            (Some(s), false) => parse_index(s, "tree_size")?,
            (None, false) => c.size,
            (None, true) => {
                if index >= c.size {
                    return Err(Problem::bad_request(
                        "bad-parameter",
                        format!("index {index} is not in the log (size {})", c.size),
                    ));
                }
                let w = super::witnessed::covering(&st, index).await?.ok_or_else(|| super::witnessed::not_yet(&st, index))?;
                let size = w.size;
                cosigned = Some(w);
                size
            }
        };
        if size > c.size {
            return Err(Problem::bad_request(
                "bad-parameter",
                format!("tree_size {size} is beyond the latest checkpoint ({})", c.size),
            ));
        }
        if index >= size {
            return Err(Problem::bad_request(
                "bad-parameter",
                format!("index {index} is not in a tree of size {size}"),
            ));
        }
        let reader = st.reader.clone();
        let (leaf, root, proof) = blocking(move || {
            let mut r = reader.lock().unwrap_or_else(|p| p.into_inner());
            let entry = r.entry(index, TreeSize(size)).map_err(read_problem)?;
            let root = r.root(TreeSize(size)).map_err(read_problem)?;
            let proof = r.inclusion_proof(LeafIndex(index), TreeSize(size)).map_err(read_problem)?;
            Ok((graven_core::leaf_hash(&entry), root, proof))
        })
        .await?;
        Ok(axum::Json(graven_api::InclusionProof {
            index,
            tree_size: size,
            leaf_hash: leaf.to_base64(),
            root: root.to_base64(),
            proof: proof.iter().map(Hash::to_base64).collect(),
            checkpoint: cosigned.map(|w| w.note()),
        })
        .into_response())
    }
    .await;
    finish(&st, "GET /v1/proofs/inclusion", r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    from: Option<String>,
    to: Option<String>,
}

pub async fn consistency_proof(State(st): St, StrictQuery(q): StrictQuery<ConsistencyQuery>) -> Response {
    let r = async {
        let c = st.engine.committed();
        let from = parse_index(
            q.from.as_deref().ok_or_else(|| {
                Problem::bad_request("bad-parameter", "give ?from=<old size>&to=<new size>")
            })?,
            "from",
        )?;
        let to = match q.to.as_deref() {
            Some(s) => parse_index(s, "to")?,
            None => c.size,
        };
        if to > c.size {
            return Err(Problem::bad_request(
                "bad-parameter",
                format!("to {to} is beyond the latest checkpoint ({})", c.size),
            ));
        }
        if from > to {
            return Err(Problem::bad_request("bad-parameter", format!("from {from} is larger than to {to}")));
        }
        if from == 0 {
            return Err(Problem::bad_request(
                "bad-parameter",
                "there is no consistency proof from size 0: every tree extends the empty tree",
            ));
        }
        let reader = st.reader.clone();
        let (r1, r2, proof) = blocking(move || {
            let mut r = reader.lock().unwrap_or_else(|p| p.into_inner());
            let r1 = r.root(TreeSize(from)).map_err(read_problem)?;
            let r2 = r.root(TreeSize(to)).map_err(read_problem)?;
            let p = r.consistency_proof(TreeSize(from), TreeSize(to)).map_err(read_problem)?;
            Ok((r1, r2, p))
        })
        .await?;
        Ok(axum::Json(graven_api::ConsistencyProof {
            from,
            to,
            root_from: r1.to_base64(),
            root_to: r2.to_base64(),
            proof: proof.iter().map(Hash::to_base64).collect(),
        })
        .into_response())
    }
    .await;
    finish(&st, "GET /v1/proofs/consistency", r)
}
