//! A replay memory shared by every node of a shared log: the first node to see a signed
//! request claims its one-time key in an object store, so the same request sent to any other
//! node within its window is refused there too.
//!
//! [`ReplayClaims`] is what `sigauth` needs; [`StoreClaims`] is it over a
//! `graven_tlog::ObjectStore` (an S3 bucket in production, `MemStore` in tests).
//!
//! **A claim** is one object, `replay/<until, 20 digits>/<key, 32 hex digits>`, created with a
//! conditional write (`If-None-Match: *`, [`Cond::IfAbsent`]): of any number of nodes claiming
//! the same key, exactly one write succeeds. `until` is the second after which the request's
//! signature is outside the time window everywhere (`created + window + 1`), and the key is the
//! same 128-bit digest the node's own cache keeps; both are fixed by the signed request, so a
//! replay names the same object. The object's bytes name the node and the claim (a random
//! node id and a counter): when a write landed but its reply was lost and the retry found the
//! object there, the claim is read back and recognised as this node's own, not taken for a
//! replay.
//!
//! **Expiry and bounds.** A claim is never read after its `until`: by then the window check
//! refuses the request before it gets here. So correctness does not depend on when claims are
//! deleted, and Graven never deletes one (it never deletes anything from a store). Storage is
//! bounded by the location's lifecycle rule, which the operator sets (docs/scale-out.md): one
//! object of [`CLAIM_BYTES`] bytes per signed request, kept until the rule removes it. The
//! location must not be under an Object Lock default retention rule, which would keep every
//! claim for the rule's period (the server refuses such a bucket at start).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use graven_tlog::{Cond, ObjectStore, StoreError};

/// The bytes of one claim: a 16-byte node id and an 8-byte counter.
pub const CLAIM_BYTES: usize = 24;

/// The folder, under the store's prefix, that claims are kept in.
pub const CLAIM_FOLDER: &str = "replay/";

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This node made the claim: the request is new everywhere.
    New,
    /// Another node (or an earlier request to this one) already holds it: a replay.
    Taken,
}

/// A claim that could not be made: whether the store took it is unknown, so the request must
/// not be accepted unchecked.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimError {
    #[error("the shared replay cache at {location} could not be reached: {cause}")]
    Unavailable { location: String, cause: String },
}

/// A replay memory shared by the nodes of a log.
///
/// Contract: of any number of calls to [`ReplayClaims::claim`] with the same `key` and `until`,
/// on any nodes sharing the memory, at most one answers [`Claim::New`] before `until`; every
/// other answers [`Claim::Taken`] or an error. An error means "unknown", never "new". The call
/// blocks (it may make a network request); async callers run it off the runtime.
pub trait ReplayClaims: fmt::Debug + Send + Sync {
    /// Claims `key`, a request's one-time digest, for its window ending at `until` (Unix
    /// seconds).
    fn claim(&self, key: u128, until: i64) -> Result<Claim, ClaimError>;

    /// Where the claims are kept, for messages (`s3://bucket/prefix`).
    fn location(&self) -> String;
}

/// The object a claim of `key`, until `until`, is kept in.
pub fn claim_path(key: u128, until: i64) -> String {
    // Signed requests outside the window never get here, so `until` is near now and positive;
    // a negative one (a client's created time before 1970) is kept apart by its sign.
    format!("{CLAIM_FOLDER}{until:020}/{key:032x}")
}

/// [`ReplayClaims`] over an object store: one create-only object per claim.
#[derive(Debug)]
pub struct StoreClaims {
    store: Arc<dyn ObjectStore>,
    node: [u8; 16],
    claims: AtomicU64,
}

impl StoreClaims {
    /// Claims in `store`, made by a node with a fresh random id.
    pub fn new(store: Arc<dyn ObjectStore>) -> Result<Self, getrandom::Error> {
        let mut node = [0u8; 16];
        getrandom::fill(&mut node)?;
        Ok(Self::with_node_id(store, node))
    }

    /// Claims in `store` made by the node `node` (tests give two nodes distinct ids).
    pub fn with_node_id(store: Arc<dyn ObjectStore>, node: [u8; 16]) -> Self {
        StoreClaims { store, node, claims: AtomicU64::new(0) }
    }

    fn unavailable(&self, e: &StoreError) -> ClaimError {
        ClaimError::Unavailable { location: self.store.location(), cause: e.to_string() }
    }
}

impl ReplayClaims for StoreClaims {
    fn claim(&self, key: u128, until: i64) -> Result<Claim, ClaimError> {
        let path = claim_path(key, until);
        let mut body = [0u8; CLAIM_BYTES];
        body[..16].copy_from_slice(&self.node);
        body[16..].copy_from_slice(&self.claims.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        match self.store.put(&path, &body, Cond::IfAbsent, false) {
            Ok(_) => Ok(Claim::New),
            // Someone holds it, or our own write landed and its reply was lost (the store's
            // retry then fails its own condition): read it back to tell which.
            Err(StoreError::Precondition { .. }) => match self.store.get(&path, CLAIM_BYTES as u64) {
                Ok(Some(o)) if o.bytes == body => Ok(Claim::New),
                // Another node's bytes, or more bytes than a claim has, or gone again (a claim
                // is only removed long after its window; removed early, it was still made):
                // in every case the key was claimed before.
                Ok(_) | Err(StoreError::TooLarge { .. }) => Ok(Claim::Taken),
                Err(e) => Err(self.unavailable(&e)),
            },
            Err(e) => Err(self.unavailable(&e)),
        }
    }

    fn location(&self) -> String {
        self.store.location()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use graven_tlog::MemStore;
    use proptest::prelude::*;

    use super::*;

    fn nodes(store: &Arc<MemStore>, n: u8) -> Vec<StoreClaims> {
        (0..n).map(|i| StoreClaims::with_node_id(store.clone(), [i + 1; 16])).collect()
    }

    #[test]
    fn the_first_claim_wins_on_every_node() {
        let store = Arc::new(MemStore::new());
        let n = nodes(&store, 2);
        assert_eq!(n[0].claim(7, 100), Ok(Claim::New));
        assert_eq!(n[1].claim(7, 100), Ok(Claim::Taken), "another node");
        assert_eq!(n[0].claim(7, 100), Ok(Claim::Taken), "the same node again");
        assert_eq!(n[1].claim(8, 100), Ok(Claim::New), "another key");
        assert_eq!(n[1].claim(7, 101), Ok(Claim::New), "another window");
        let o = store.get(&claim_path(7, 100), 64).unwrap().unwrap();
        assert_eq!(o.bytes.len(), CLAIM_BYTES);
        assert_eq!(claim_path(0xab, 1_700_000_061), format!("replay/00000000001700000061/{:032x}", 0xab));
    }

    #[test]
    fn a_claim_whose_reply_was_lost_is_still_this_nodes() {
        let store = Arc::new(MemStore::new());
        let n = nodes(&store, 2);
        // The write lands, its reply is lost: the caller sees an error, the claim is made.
        store.fail_after(0, true);
        assert!(matches!(n[0].claim(1, 100), Err(ClaimError::Unavailable { .. })));
        store.heal();
        assert_eq!(n[1].claim(1, 100), Ok(Claim::Taken), "it landed: nobody else may have it");
        // A retry that meets its own landed write (as the SDK's does) is recognised by its
        // bytes: simulate by writing this node's next claim bytes first.
        let next = {
            let mut b = [0u8; CLAIM_BYTES];
            b[..16].copy_from_slice(&[1; 16]);
            b[16..].copy_from_slice(&1u64.to_be_bytes());
            b
        };
        store.put(&claim_path(2, 100), &next, Cond::IfAbsent, false).unwrap();
        assert_eq!(n[0].claim(2, 100), Ok(Claim::New), "its own bytes: not a replay");
        assert_eq!(n[1].claim(2, 100), Ok(Claim::Taken));
    }

    #[test]
    fn an_unreachable_store_is_an_error_never_new() {
        let store = Arc::new(MemStore::new());
        let n = nodes(&store, 1);
        store.fail_after(0, false);
        let e = n[0].claim(3, 100).unwrap_err();
        assert!(e.to_string().contains("could not be reached"), "{e}");
        store.heal();
        assert_eq!(n[0].claim(3, 100), Ok(Claim::New), "nothing landed: the retry claims it");
    }

    proptest! {
        /// Against a reference (a set of claimed (key, until)): any sequence of claims from
        /// three nodes on one store answers New exactly for the first claim of each pair.
        #[test]
        fn claims_match_a_set(ops in prop::collection::vec((0u8..3, 0u128..6, 100i64..103), 1..80)) {
            let store = Arc::new(MemStore::new());
            let n = nodes(&store, 3);
            let mut reference = HashSet::new();
            for (node, key, until) in ops {
                let expected = if reference.insert((key, until)) { Claim::New } else { Claim::Taken };
                prop_assert_eq!(n[node as usize].claim(key, until), Ok(expected));
            }
        }
    }
}
