//! Graven's pure, verifiable core.
//!
//! Everything here is deterministic computation over bytes handed in by the caller: no
//! filesystem, no network, no clock, no async runtime. The writer, the server and the verifier
//! all stand on this crate; the verifier stands on nothing else of ours.
//!
//! Formats, pinned:
//! - Merkle trees and proofs: RFC 6962 §2.1 hashing, RFC 9162 §2.1.3–2.1.4 proof algorithms.
//! - Signed notes: C2SP `signed-note` v1.0.0, Ed25519 (signature type `0x01`).
//! - Checkpoints: C2SP `tlog-checkpoint` v1.0.0.
//! - Cosignatures: C2SP `tlog-cosignature` v1.0.1, Ed25519 `cosignature/v1` (type `0x04`).
//! - Trust policies: C2SP `tlog-policy`; offline proofs: C2SP `tlog-proof@v1`.
//! - Tiles and entry bundles: C2SP `tlog-tiles` (v0.1.0 layout).
//! - Events: RFC 8785 (JCS) canonical JSON, strict.

pub mod checkpoint;
pub mod cosignature;
pub mod event;
pub mod event_sig;
pub mod glob;
pub mod hash;
pub mod hex;
pub mod jcs;
pub mod jcs_direct;
pub mod merkle;
pub mod note;
pub mod policy;
pub mod range_proof;
pub mod replay;
pub mod tile;
pub mod tile_source;
pub mod tlog_proof;

pub use hash::{Hash, LeafIndex, TreeSize, empty_root, leaf_hash, node_hash};
