//! The wire types of Graven's HTTP API: what a client sends and what the server answers, as
//! the server, the CLI, clients and the load generator read it. Serde only: hashes are the
//! strict base64 strings the server sends (`graven_core::Hash::from_base64` reads them), times
//! are the fixed-width `logged_at` text.
//!
//! Field order is the JSON's: the server's hand-written receipt encoder is checked against
//! [`Receipt`]'s serialisation, and views built with these types keep the key order the server
//! always wrote (alphabetical).
//!
//! Events themselves are the log's bytes, not a type of this crate: [`SearchPage`],
//! [`StreamItem`] and [`StoredEvent`] are generic over the event's representation (a
//! `serde_json::Value` for a reader, a raw value for one that keeps the bytes), and so is
//! [`NewEvent`], the request's description (the server shapes the bytes it receives, see
//! `graven_auth::shape`).
//!
//! The `schema` feature derives [`schemars::JsonSchema`] for every type: the JSON schemas of
//! the OpenAPI document (`components/schemas` of the server's `openapi.json`) are generated
//! from these types by the server's `openapi` test, so the document cannot drift from what is
//! sent and answered. Doc comments become the schemas' descriptions. Without the feature the
//! crate is serde alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /v1/events`: one per event (the single answer, or one NDJSON line of a batch). Proof
/// that the entry is in the log, verifiable offline against the checkpoint it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Receipt {
    /// The signed checkpoint (a C2SP tlog-checkpoint in a C2SP signed note) the proof leads to.
    pub checkpoint: String,
    /// RFC 6962 inclusion proof of `index` in the tree of `tree_size`, base64 hashes.
    pub inclusion_proof: Vec<String>,
    /// 0-based leaf index.
    pub index: u64,
    /// The RFC 6962 leaf hash of the stored entry, base64.
    pub leaf_hash: String,
    /// The `logged_at` the sequencer stamped (`YYYY-MM-DDTHH:MM:SS.ffffffZ`; events only,
    /// `null` for raw entries). It never decreases along the log.
    pub logged_at: Option<String>,
    /// The size of the tree the proof and the checkpoint are for.
    pub tree_size: u64,
    /// Whether `checkpoint` carries the cosignatures of the witness policy's quorum (receipts
    /// asked with `?witnessed=true`); `false` for a checkpoint not yet witnessed, or a log
    /// without witnesses.
    #[serde(default)]
    pub witnessed: bool,
}

/// `POST /v1/events?receipt=range` (an NDJSON batch): one receipt for the whole batch, which
/// is always a contiguous run of leaves (docs/receipts.md, "Range receipts"). A client checks
/// it by recomputing each event's leaf hash, then the tree's root from those leaf hashes and
/// `range_proof`, and comparing with the signed checkpoint's root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RangeReceipt {
    /// The signed checkpoint (a C2SP tlog-checkpoint in a C2SP signed note) the proof leads to.
    pub checkpoint: String,
    /// The 0-based index of the batch's first event; the others follow in order.
    pub first_index: u64,
    /// The RFC 6962 leaf hash of each stored entry, in order, base64.
    pub leaf_hashes: Vec<String>,
    /// The `logged_at` the sequencer stamped: one commit, one time (`null` for raw entries).
    pub logged_at: Option<String>,
    /// The hashes, base64, of the tree's nodes outside the run, in the order a left-to-right
    /// walk from the root meets them (docs/receipts.md): at most two per level.
    pub range_proof: Vec<String>,
    /// The size of the tree the proof and the checkpoint are for.
    pub tree_size: u64,
}

/// `GET /v1/proofs/inclusion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InclusionProof {
    /// 0-based leaf index.
    pub index: u64,
    /// The RFC 6962 leaf hash of the entry, base64.
    pub leaf_hash: String,
    /// RFC 6962 inclusion proof (RFC 9162 section 2.1.3), base64 hashes.
    pub proof: Vec<String>,
    /// The tree's root hash, base64.
    pub root: String,
    pub tree_size: u64,
    /// With `?witnessed=true`: the witnessed checkpoint of `tree_size`, with its cosignatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// `GET /v1/proofs/consistency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ConsistencyProof {
    /// The older tree size.
    pub from: u64,
    /// RFC 6962 consistency proof (RFC 9162 section 2.1.4), base64 hashes.
    pub proof: Vec<String>,
    /// The root of the tree of size `from`, base64.
    pub root_from: String,
    /// The root of the tree of size `to`, base64.
    pub root_to: String,
    /// The newer tree size.
    pub to: u64,
}

/// `GET /v1/log`: the log and this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LogInfo {
    /// The latest signed checkpoint.
    pub checkpoint: String,
    /// The log's origin line (C2SP tlog-checkpoint).
    pub origin: String,
    /// The root hash of the latest checkpoint, base64.
    pub root: String,
    /// Where a shared log is stored; `null` for a local one.
    pub storage: Option<String>,
    pub tree_size: u64,
    /// The log's C2SP signed-note verifier key; pin it from a source other than this server.
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// One entry as the API shows it: the event when it is JSON, else the entry's bytes in base64
/// (exactly one of `event` and `entry_base64`). Also the `data` of each `/v1/stream` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "StreamItem"))]
pub struct StreamItem<E> {
    /// 0-based leaf index.
    pub index: u64,
    /// The stored event, as the leaf holds it (docs/events.md: the client's members, and `v`,
    /// `logged_at`, `actor` and `claimed` the server added).
    #[serde(default = "none::<E>", skip_serializing_if = "Option::is_none")]
    pub event: Option<E>,
    /// An entry that is not JSON (a raw entry), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_base64: Option<String>,
}

fn none<E>() -> Option<E> {
    None
}

/// `GET /v1/events` (search): a page of events, oldest or newest first, and where to go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "SearchPage"))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "StoredEvent"))]
pub struct StoredEvent<E> {
    /// 0-based leaf index.
    pub index: u64,
    /// The size of the tree the proof and the checkpoint are for.
    pub tree_size: u64,
    /// The RFC 6962 leaf hash of the entry, base64.
    pub leaf_hash: String,
    /// The stored event, when the entry is JSON.
    #[serde(default = "none::<E>", skip_serializing_if = "Option::is_none")]
    pub event: Option<E>,
    /// An entry that is not JSON (a raw entry), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_base64: Option<String>,
    /// The latest signed checkpoint.
    pub checkpoint: String,
    /// RFC 6962 inclusion proof of `index` in the tree of `tree_size`, base64 hashes.
    pub inclusion_proof: Vec<String>,
}

/// An API key as `/v1/identities` shows it: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KeyView {
    /// On the answer to revoking a key: the log index of the change's audit event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_index: Option<u64>,
    pub created_at: String,
    pub expires_at: Option<String>,
    /// On the answer to revoking a key: the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// 16 hex digits: the `<key id>` of `gvn_<key id>_<secret>`.
    pub key_id: String,
    pub revoked_at: Option<String>,
    /// `active`, `expired` or `revoked`.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["active", "expired", "revoked"])))]
    pub state: String,
}

/// An identity as `/v1/identities` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IdentityView {
    /// Glob patterns (`*` any run, `?` one character) of the actions it may log; empty: any.
    pub allowed_actions: Vec<String>,
    /// The log index of the change's audit event, on answers to a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_index: Option<u64>,
    pub created_at: String,
    pub description: String,
    pub id: String,
    pub keys: Vec<KeyView>,
    /// One of [`IdentityKind`]'s values.
    pub kind: String,
    pub labels: BTreeMap<String, String>,
    pub last_seen_at: Option<String>,
    pub owner: String,
    /// `writer`, `auditor`, `admin` or `source`.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["writer", "auditor", "admin", "source"])))]
    pub role: String,
    /// For the source role: what it may report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceGrant>,
    /// `active`, `disabled` or `revoked` (final).
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["active", "disabled", "revoked"])))]
    pub status: String,
    pub status_changed_at: Option<String>,
}

/// `GET /v1/identities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct IdentityList {
    pub identities: Vec<IdentityView>,
}

/// `GET /v1/inventory`: a page of machine identities (registered ones, reported subjects and
/// any other actor of the log), in `id` order, and a cursor for the next (docs/inventory.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InventoryPage {
    pub identities: Vec<InventoryItem>,
    /// Entries `0..indexed_size` of the log are counted; the inventory trails the log by as
    /// much as the search index does.
    pub indexed_size: u64,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// The server's time the windows (`events_24h`, `events_30d`) and ages were computed at.
    pub now: String,
    /// The log's committed size when the answer was made (`indexed_size` trails it).
    pub tree_size: u64,
}

/// One identity of the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InventoryItem {
    /// Entries of the log attributed to it with `outcome: "denied"`.
    pub denied: u64,
    /// Entries attributed to it.
    pub events: u64,
    /// Entries whose `logged_at` is in the current UTC hour or the 23 before it.
    pub events_24h: u64,
    /// Entries whose `logged_at` is in the current UTC day or the 29 before it.
    pub events_30d: u64,
    /// Its first entry in the log; `null` if it has none.
    pub first_seen: Option<InventorySeen>,
    pub id: String,
    /// Its API keys, for a registered identity: never the keys themselves.
    pub keys: Vec<InventoryKey>,
    /// The registry's kind for a registered identity, else the `actor.kind` of its latest entry
    /// that has one.
    pub kind: Option<String>,
    /// Its last entry in the log; `null` if it has none.
    pub last_seen: Option<InventorySeen>,
    /// The registry's owner, for a registered identity.
    pub owner: Option<String>,
    /// Whether it is in the identity registry.
    pub registered: bool,
    /// Whether a source reported entries for it (`actor.attested_by`).
    pub reported: bool,
    /// The sources that reported it (`actor.attested_by.id`), first seen first, at most 8.
    pub reported_by: Vec<String>,
    /// Entries of it that a source reported.
    pub reported_events: u64,
    /// The registry's role, for a registered identity.
    pub role: Option<String>,
    /// The registry's status (`active`, `disabled`, `revoked`), for a registered identity.
    pub status: Option<String>,
}

/// One entry of an identity or of a credential: its log index and `logged_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InventorySeen {
    /// `null` if the entry has no `logged_at`.
    pub at: Option<String>,
    pub index: u64,
}

/// An API key of a registered identity, with its use in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InventoryKey {
    /// Whole days since it was created.
    pub age_days: u64,
    pub created_at: String,
    /// Entries made with it (`actor.credential` = `key:<key id>`).
    pub events: u64,
    pub expires_at: Option<String>,
    pub key_id: String,
    /// The last entry made with it; `null` if it was never used for an entry.
    pub last_used: Option<InventorySeen>,
    /// `active`, `expired` or `revoked`.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["active", "expired", "revoked"])))]
    pub state: String,
}

/// `GET /v1/identities/{id}/keys`: an identity's API keys, never the keys themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KeyList {
    pub identity: String,
    pub keys: Vec<KeyView>,
}

/// A registered Ed25519 public key as `/v1/identities/{id}/public-keys` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PublicKeyView {
    /// `ed25519`.
    pub alg: String,
    /// On answers to a change: the log index of its audit event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_index: Option<u64>,
    pub created_at: String,
    /// On answers to a change: the identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// 16 hex digits: the first 8 bytes of the SHA-256 of the key.
    pub key_id: String,
    /// Base64 of the 32 raw bytes.
    pub public_key: String,
    pub revoked_at: Option<String>,
    /// `active` or `revoked`.
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["active", "revoked"])))]
    pub state: String,
}

/// `GET /v1/identities/{id}/public-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PublicKeyList {
    pub identity: String,
    pub public_keys: Vec<PublicKeyView>,
}

/// A key rotation's older key, usable until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Retiring {
    pub expires_at: String,
    pub key_id: String,
}

/// The answer to creating or rotating an API key: the only time the key itself is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NewKey {
    /// The log index of the change's audit event.
    pub audit_index: u64,
    pub expires_at: Option<String>,
    pub identity: String,
    /// The key: `gvn_<key id>_<secret>`. Shown once; only its SHA-256 is stored.
    pub key: String,
    pub key_id: String,
    /// Rotation only: how long the identity's other keys keep working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_seconds: Option<u64>,
    /// Rotation only: the identity's other keys and when they stop working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring: Option<Vec<Retiring>>,
}

/// An RFC 9457 problem document: every error the API answers (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Problem {
    /// What happened and what to do.
    pub detail: String,
    /// The HTTP status code.
    pub status: u16,
    /// A short summary of the problem type.
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

/// `GET /v1/timestamps`: the tree sizes of the checkpoints that have a stored RFC 3161
/// time-stamp token, in increasing order (fetch each at `/graven/timestamp/<size, 20 digits>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TimestampList {
    pub sizes: Vec<u64>,
}

// ---- request bodies ----

/// `POST /v1/events`: one event as a client sends it (docs/events.md); a batch is one per line
/// of `application/x-ndjson`. The server adds `v`, `logged_at` and the verified `actor`, and
/// keeps the client's own `actor` under `claimed.actor`. The canonical (RFC 8785) event is at
/// most 65,535 bytes; lengths are in bytes.
///
/// The server reads the body with its own strict parser (`graven_auth::shape`), which keeps
/// the client's bytes; its fields and rules are held to this type by the server's tests.
/// `V` is any JSON value. Members are absent or of their type: `null` is not a value the
/// shaper takes for any member but `details` and `actor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "NewEvent"))]
#[serde(deny_unknown_fields)]
pub struct NewEvent<V> {
    /// What happened, e.g. `deployment.create`; not in the reserved `graven.` namespace, and
    /// matching one of the identity's `allowed_actions` patterns if it has any.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 1024)))]
    pub action: String,
    /// What the client says about itself: never trusted, stored as `claimed.actor`.
    #[serde(default = "none::<V>", skip_serializing_if = "Option::is_none")]
    pub actor: Option<V>,
    /// The identity's own Ed25519 signature over the event (docs/events.md, client signatures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "ClientSignature"))]
    pub client_signature: Option<ClientSignature>,
    /// Anything else about the event.
    #[serde(default = "none::<V>", skip_serializing_if = "Option::is_none")]
    pub details: Option<V>,
    /// When it happened, by the client's clock: RFC 3339, stored as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "String", length(min = 1, max = 1024), extend("format" = "date-time"))
    )]
    pub occurred_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Outcome"))]
    pub outcome: Option<Outcome>,
    /// The client's correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "String", length(min = 1, max = 1024)))]
    pub request_id: Option<String>,
    /// What was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Resource<V>"))]
    pub resource: Option<Resource<V>>,
    /// Where the request came from (`ip`, `user_agent`, ...): any members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "BTreeMap<String, V>"))]
    pub source: Option<BTreeMap<String, V>>,
}

/// An event's `outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The action was done.
    Success,
    /// It was tried and failed.
    Failure,
    /// It was refused.
    Denied,
}

/// An event's `resource`: `type` and `id` (search filters on them), other members free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "Resource"))]
pub struct Resource<V> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "String", length(min = 1, max = 1024)))]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "String", length(min = 1, max = 1024)))]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, V>,
}

/// An event's `client_signature`, version 2 (`graven sign-event`; docs/events.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientSignature {
    /// `ed25519`.
    #[cfg_attr(feature = "schema", schemars(extend("const" = "ed25519")))]
    pub alg: String,
    /// A one-time id (a UUID, say).
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9._:-]+$"))
    )]
    pub id: String,
    /// 16 lowercase hex digits: the first 8 bytes of the SHA-256 of the public key.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^[0-9a-f]{16}$")))]
    pub key_id: String,
    /// Standard base64 of the 64-byte Ed25519 signature over `graven-event-signature/v2\n` and
    /// the RFC 8785 form of the event with `client_signature` minus `sig`.
    pub sig: String,
    /// The signing time, whole Unix seconds.
    #[cfg_attr(feature = "schema", schemars(range(max = 253_402_300_799u64)))]
    pub signed_at: u64,
}

/// `POST /v1/identities`: a new identity, active, with no keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewIdentity {
    /// Glob patterns (`*` any run, `?` one character) of the actions it may log; empty: any.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(length(max = 32), inner(length(min = 1, max = 128), regex(pattern = r"^[!-~]+$")))
    )]
    pub allowed_actions: Vec<String>,
    /// At most 1024 bytes, no control characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(length(max = 1024), regex(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"))
    )]
    pub description: String,
    /// E.g. `svc:payments-worker` or a SPIFFE ID; the `graven:` prefix is reserved. IDs are
    /// never reused.
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1, max = 256), regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$"))
    )]
    pub id: String,
    pub kind: IdentityKind,
    /// At most 32; keys are 1 to 63 bytes of letters, digits and `. _ - /`, values at most 256
    /// bytes without control characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "schema",
        schemars(
            inner(length(max = 256), regex(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")),
            extend("maxProperties" = 32, "propertyNames" = {"pattern": "^[A-Za-z0-9._/-]{1,63}$"})
        )
    )]
    pub labels: BTreeMap<String, String>,
    /// Who answers for it (a team, a person): not blank, no control characters.
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1, max = 256), regex(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"))
    )]
    pub owner: String,
    #[serde(default)]
    pub role: Role,
    /// Required for, and only for, the `source` role: what it may report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceGrant>,
}

/// What a `source` identity may report (docs/sources.md): from which platforms, and for which
/// subjects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SourceGrant {
    /// The platforms it may report from: `kubernetes` and `openbao` (`/v1/sources/<type>`),
    /// `otlp` (`/v1/logs`), `syslog` (the syslog listener), `cloudtrail` (`graven import
    /// cloudtrail`).
    #[cfg_attr(
        feature = "schema",
        schemars(
            length(min = 1, max = 5),
            inner(regex(pattern = r"^(kubernetes|openbao|syslog|otlp|cloudtrail)$"))
        )
    )]
    pub types: Vec<String>,
    /// Glob patterns (`*` any run, `?` one character) of the subject ids it vouches for, e.g.
    /// `system:serviceaccount:*`; `*` for any.
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1, max = 32), inner(length(min = 1, max = 128), regex(pattern = r"^[!-~]+$")))
    )]
    pub subjects: Vec<String>,
}

/// `POST /v1/sources/kubernetes`: what a Kubernetes API server's audit webhook backend sends
/// (an `audit.k8s.io/v1` `EventList`). Described for clients; the server reads the records
/// itself (docs/sources.md), keeping each one as it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KubernetesEventList {
    /// `EventList`.
    #[cfg_attr(feature = "schema", schemars(extend("const" = "EventList")))]
    pub kind: String,
    /// `audit.k8s.io/v1`.
    #[serde(rename = "apiVersion")]
    #[cfg_attr(feature = "schema", schemars(extend("const" = "audit.k8s.io/v1")))]
    pub api_version: String,
    /// The audit records, at most `max_batch_events`.
    #[serde(default)]
    pub items: Vec<KubernetesAuditEvent>,
}

/// One `audit.k8s.io/v1` `Event`: the members Graven reads (every other member is kept with
/// the record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KubernetesAuditEvent {
    /// The request's unique id: with the stage, what a retried record is recognised by.
    #[serde(rename = "auditID")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 256)))]
    pub audit_id: String,
    /// `RequestReceived`, `ResponseStarted`, `ResponseComplete` or `Panic`.
    #[cfg_attr(
        feature = "schema",
        schemars(extend("enum" = ["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"]))
    )]
    pub stage: String,
    /// The authenticated user: `username` becomes the event's actor id. The record's other
    /// members (`verb`, `objectRef`, `responseStatus`, ...) are read as docs/sources.md says
    /// and kept with it.
    pub user: KubernetesUser,
}

/// `user` (and `impersonatedUser`) of a Kubernetes audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KubernetesUser {
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 1024)))]
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

/// `POST /v1/sources/openbao`: one OpenBao (or Vault) audit entry, as the `http` audit device
/// sends it (several, one per line, are taken too). Described for clients; the server reads
/// the entry itself (docs/sources.md), keeping it as it came, HMAC'd fields included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OpenBaoAuditEntry {
    /// `request` (written before OpenBao acts) or `response` (after).
    #[serde(rename = "type")]
    #[cfg_attr(feature = "schema", schemars(extend("enum" = ["request", "response"])))]
    pub entry_type: String,
    /// The request: its `id` (with the type, what a retried entry is recognised by),
    /// `operation`, `path`, `mount_type`, `remote_address`, ...
    pub request: OpenBaoRequest,
    /// The token that made the request (`display_name`, `metadata.role_name`, `entity_id`,
    /// `policies`, ...): the event's actor. Absent on a request made without a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<OpenBaoAuth>,
    /// When OpenBao wrote the entry (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// Why the request failed, if it did (`permission denied` makes the outcome `denied`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `auth` of an OpenBao audit entry: the members Graven reads (the rest is kept with the entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OpenBaoAuth {
    /// The token's display name (`approle`, `root`, `kubernetes-ns-sa`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The identity entity the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// What the auth method recorded about the login, e.g. `role_name`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
}

/// `request` of an OpenBao audit entry: the members Graven reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OpenBaoRequest {
    /// The request's id, on most entries (an entry without one is recognised by its bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = 256)))]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `POST /v1/sources/cloudtrail`: the records of an AWS CloudTrail log file, as CloudTrail
/// writes it (unzipped). Described for clients; the server reads each record itself
/// (docs/sources.md), keeping it as it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CloudTrailLogFile {
    /// The records, at most `max_batch_events`.
    #[serde(rename = "Records")]
    pub records: Vec<CloudTrailRecord>,
}

/// One CloudTrail record: the members Graven reads (every other member is kept with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CloudTrailRecord {
    /// The record's unique id: what a re-imported record is recognised by.
    #[serde(rename = "eventID")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = 256)))]
    pub event_id: String,
    /// The service, e.g. `s3.amazonaws.com`.
    #[serde(rename = "eventSource")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub event_source: String,
    /// The API call, e.g. `GetObject`.
    #[serde(rename = "eventName")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub event_name: String,
    /// Who made the call: the event's actor.
    #[serde(rename = "userIdentity")]
    pub user_identity: CloudTrailUserIdentity,
}

/// `userIdentity` of a CloudTrail record: the members Graven reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CloudTrailUserIdentity {
    /// `IAMUser`, `AssumedRole`, `AWSService`, `AWSAccount`, `Root`, `FederatedUser`, ...
    #[serde(rename = "type")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub identity_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(rename = "accountId", default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(rename = "invokedBy", default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
}

/// What a source endpoint did with a batch (`POST /v1/sources/<type>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SourceReport {
    /// Events appended, one per record taken.
    pub logged: u64,
    /// The index of the first of them (absent when none was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_index: Option<u64>,
    /// Records of a stage the request did not ask for (Kubernetes: `stages`), not logged.
    pub skipped: u64,
    /// Records already logged (the same platform event id from the same source): not logged
    /// again.
    pub duplicates: u64,
}

/// What sort of non-human identity it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    ServiceAccount,
    ApiKey,
    Bot,
    CiJob,
    Workload,
    Agent,
    Integration,
}

/// What an identity may do. No role may alter or delete an event: there is no such operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Append events, attributed to itself, optionally only actions matching its patterns.
    #[default]
    Writer,
    /// Read, search, prove, export, stream.
    Auditor,
    /// Everything an auditor may, append as itself, and manage identities and keys.
    Admin,
    /// Report its subjects' events on a platform's source endpoint (docs/sources.md).
    Source,
}

/// `POST /v1/identities/{id}/keys` and `.../keys/rotate`: a new API key. Without `expires_at`
/// or `ttl_seconds` it does not expire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// When the key stops working (RFC 3339, in the future). Not with `ttl_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("format" = "date-time")))]
    pub expires_at: Option<String>,
    /// `keys/rotate` only: how long the identity's other keys keep working [default: 3600].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(max = 2_592_000u64)))]
    pub overlap_seconds: Option<u64>,
    /// How many seconds from now the key stops working. Not with `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1u64, max = 316_224_000u64)))]
    pub ttl_seconds: Option<u64>,
}

/// The body of a status change (`disable`, `enable`, `revoke`) or of revoking a key: optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    /// Why, for the audit event: at most 1024 bytes, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(length(max = 1024), regex(pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$"))
    )]
    pub reason: Option<String>,
}

/// `POST /v1/identities/{id}/public-keys`: an Ed25519 public key to register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PublicKeyRequest {
    /// Base64 of the 32 raw bytes, or a (PEM or base64) SubjectPublicKeyInfo.
    pub public_key: String,
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

    #[test]
    fn request_bodies_refuse_unknown_fields_and_fill_defaults() {
        let id: NewIdentity = serde_json::from_str(r#"{"id":"svc:a","kind":"ci_job","owner":"o"}"#).unwrap();
        assert_eq!((id.kind, id.role), (IdentityKind::CiJob, Role::Writer));
        assert!(id.labels.is_empty() && id.allowed_actions.is_empty() && id.description.is_empty());
        assert!(serde_json::from_str::<NewIdentity>(r#"{"id":"a","kind":"bot","owner":"o","x":1}"#).is_err());
        assert!(serde_json::from_str::<NewIdentity>(r#"{"id":"a","kind":"human","owner":"o"}"#).is_err());
        assert!(serde_json::from_str::<ChangeRequest>(r#"{"why":"x"}"#).is_err());
        assert_eq!(serde_json::from_str::<KeyRequest>("{}").unwrap(), KeyRequest::default());
        let e: NewEvent<serde_json::Value> = serde_json::from_str(
            r#"{"action":"a","outcome":"denied","resource":{"type":"t","id":"i","zone":"z"},"details":[1]}"#,
        )
        .unwrap();
        assert_eq!(e.outcome, Some(Outcome::Denied));
        let r = e.resource.unwrap();
        assert_eq!(
            (r.kind.as_deref(), r.id.as_deref(), r.other["zone"].as_str()),
            (Some("t"), Some("i"), Some("z"))
        );
        assert!(serde_json::from_str::<NewEvent<serde_json::Value>>(r#"{"action":"a","v":1}"#).is_err());
    }
}
