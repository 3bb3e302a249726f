//! The wire types of Graven's HTTP API: what the server answers, as the CLI, clients and the
//! load generator read it. Serde only: hashes are the strict base64 strings the server sends
//! (`graven_core::Hash::from_base64` reads them), times are the fixed-width `logged_at` text.
//!
//! Field order is the JSON's: the server's hand-written receipt encoder is checked against
//! [`Receipt`]'s serialisation, and views built with these types keep the key order the server
//! always wrote (alphabetical).
//!
//! Events themselves are the log's bytes, not a type of this crate: [`SearchPage`],
//! [`StreamItem`] and [`StoredEvent`] are generic over the event's representation (a
//! `serde_json::Value` for a reader, a raw value for one that keeps the bytes).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /v1/events`: one per event (the single answer, or one NDJSON line of a batch). Proof
/// that the entry is in the log, verifiable offline against the checkpoint it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The signed checkpoint (a C2SP signed note) the proof leads to.
    pub checkpoint: String,
    /// RFC 6962 inclusion proof of `index` in the tree of `tree_size`, base64 hashes.
    pub inclusion_proof: Vec<String>,
    /// 0-based leaf index.
    pub index: u64,
    pub leaf_hash: String,
    /// The `logged_at` the sequencer stamped (events only; `null` for raw entries).
    pub logged_at: Option<String>,
    pub tree_size: u64,
    /// Whether `checkpoint` carries the cosignatures of the witness policy's quorum (receipts
    /// asked with `?witnessed=true`); `false` for a checkpoint not yet witnessed, or a log
    /// without witnesses.
    #[serde(default)]
    pub witnessed: bool,
}

/// `GET /v1/proofs/inclusion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub index: u64,
    pub leaf_hash: String,
    pub proof: Vec<String>,
    pub root: String,
    pub tree_size: u64,
    /// With `?witnessed=true`: the witnessed checkpoint of `tree_size`, with its cosignatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// `GET /v1/proofs/consistency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub from: u64,
    pub proof: Vec<String>,
    pub root_from: String,
    pub root_to: String,
    pub to: u64,
}

/// `GET /v1/log`: the log and this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogInfo {
    pub checkpoint: String,
    pub origin: String,
    pub root: String,
    /// Where a shared log is stored; `null` for a local one.
    pub storage: Option<String>,
    pub tree_size: u64,
    pub verifier_key: String,
    /// Whether this node takes writes.
    pub writer: bool,
    /// Where the writer takes writes, when this node is a read replica that knows.
    pub writer_url: Option<String>,
    /// The witnesses cosigning the log's checkpoints, when a witness policy is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnessing: Option<WitnessingInfo>,
}

/// `GET /v1/log`'s `witnessing`: the quorum's progress and each witness's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessingInfo {
    /// The size of the newest checkpoint that met the policy's quorum (`null`: none yet).
    pub witnessed_size: Option<u64>,
    /// The size of the checkpoint `/checkpoint` serves, with the cosignatures gathered for it.
    pub published_size: Option<u64>,
    /// Witness rounds started since this node started.
    pub rounds: u64,
    pub witnesses: Vec<WitnessInfo>,
}

/// One witness of the policy, as this node last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessInfo {
    pub name: String,
    pub url: String,
    /// The newest size of this log it cosigned for this node.
    pub cosigned_size: Option<u64>,
    /// Its last successful `add-checkpoint`'s duration.
    pub last_latency_ms: Option<u64>,
    pub requests: u64,
    /// Rounds it failed.
    pub failures: u64,
    /// Why it last failed (`null` once it cosigns again).
    pub last_error: Option<String>,
}

/// One entry as the API shows it: the event when it is JSON, else the entry's bytes in base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamItem<E> {
    pub index: u64,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub event: Option<E>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_base64: Option<String>,
}

fn none<E>() -> Option<E> {
    None
}

/// `GET /v1/events` (search): a page of events, oldest or newest first, and where to go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchPage<E> {
    pub events: Vec<StreamItem<E>>,
    /// The cursor of the next page; `null` on the last.
    pub next_cursor: Option<String>,
    /// Entries the search index has taken in (it follows the log).
    pub indexed_size: u64,
    /// The committed size the events were read at.
    pub tree_size: u64,
}

/// `GET /v1/events/{index}`: one entry and its inclusion proof in the current tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent<E> {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub event: Option<E>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_base64: Option<String>,
    pub checkpoint: String,
    pub inclusion_proof: Vec<String>,
}

/// An API key as `/v1/identities` shows it: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub created_at: String,
    pub expires_at: Option<String>,
    pub key_id: String,
    pub revoked_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}

/// An identity as `/v1/identities` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityView {
    pub allowed_actions: Vec<String>,
    /// The log index of the change's audit event, on answers to a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_index: Option<u64>,
    pub created_at: String,
    pub description: String,
    pub id: String,
    pub keys: Vec<KeyView>,
    pub kind: String,
    pub labels: BTreeMap<String, String>,
    pub last_seen_at: Option<String>,
    pub owner: String,
    pub role: String,
    pub status: String,
    pub status_changed_at: Option<String>,
}

/// A registered Ed25519 public key as `/v1/identities/{id}/public-keys` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyView {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_index: Option<u64>,
    pub created_at: String,
    /// On answers to a change: the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub key_id: String,
    pub public_key: String,
    pub revoked_at: Option<String>,
    /// `active` or `revoked`.
    pub state: String,
}

/// A key rotation's older key, usable until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retiring {
    pub expires_at: String,
    pub key_id: String,
}

/// The answer to creating or rotating an API key: the only time the key itself is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKey {
    pub audit_index: u64,
    pub expires_at: Option<String>,
    pub identity: String,
    /// The key: `gvn_<key id>_<secret>`.
    pub key: String,
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_seconds: Option<u64>,
    /// Rotation only: the identity's other keys and when they stop working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring: Option<Vec<Retiring>>,
}

/// An RFC 9457 problem document: every error the API answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// What happened and what to do.
    pub detail: String,
    pub status: u16,
    pub title: String,
    /// `https://graven.dev/problems/<slug>`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl Problem {
    /// The problem's slug: the last segment of its `type`.
    pub fn slug(&self) -> &str {
        self.kind.rsplit('/').next().unwrap_or(&self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_members_read_as_none_and_are_not_written() {
        let raw: StreamItem<serde_json::Value> =
            serde_json::from_str(r#"{"index":3,"entry_base64":"AAAA"}"#).unwrap();
        assert_eq!(raw.event, None);
        assert_eq!(serde_json::to_string(&raw).unwrap(), r#"{"index":3,"entry_base64":"AAAA"}"#);
        let ev: StreamItem<serde_json::Value> =
            serde_json::from_str(r#"{"index":4,"event":{"action":"x"}}"#).unwrap();
        assert_eq!(ev.event.unwrap()["action"], "x");
        let p: Problem = serde_json::from_str(
            r#"{"type":"https://graven.dev/problems/not-found","title":"Not found","status":404,"detail":"no"}"#,
        )
        .unwrap();
        assert_eq!((p.slug(), p.status), ("not-found", 404));
    }
}

/// `GET /v1/timestamps`: the tree sizes of the checkpoints that have a stored RFC 3161
/// time-stamp token, in increasing order (fetch each at `/graven/timestamp/<size, 20 digits>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimestampList {
    pub sizes: Vec<u64>,
}
