//! What the suite needs of a store under test beyond [`ObjectStore`] itself: fresh stores, a
//! second connection, and the few things only the store's own API can do (list what is there,
//! tell whether a version is retained, and act as someone holding the store's credentials).

use std::sync::Arc;
use std::time::Duration;

use crate::objstore::ObjectStore;

/// A kind of store the conformance suite runs on: `MemStore` in `graven-tlog`, `S3Store` on
/// SeaweedFS in `graven-s3`.
pub trait Backend: Sync {
    type Store: ObjectStore + 'static;

    /// A new, empty store that no other test uses, named after `hint` where the store has
    /// names. Retained writes are retained (S3: a bucket with Object Lock).
    fn fresh(&self, hint: &str) -> Arc<Self::Store>;

    /// Another handle on the same objects, as a second node or a restarted process has one
    /// (S3: a new client with its own connections).
    fn reconnect(&self, store: &Arc<Self::Store>) -> Arc<Self::Store>;

    /// The keys that hold an object now (not deleted ones), sorted, relative to the store.
    /// An implementation also checks here that the store wrote nothing outside its own space
    /// (S3: outside its prefix).
    fn keys(&self, store: &Self::Store) -> Vec<String>;

    /// Whether the current version of `key` is under retention (S3: Object Lock), so that no
    /// credential can delete or replace that version.
    fn retained(&self, store: &Self::Store, key: &str) -> bool;

    /// What someone holding the store's credentials can do to a key, whatever its condition or
    /// retention: write `Some(bytes)` as its new current version (unretained), or delete it
    /// with `None` (S3: a new version, or a delete marker; retained versions stay behind).
    fn tamper(&self, store: &Self::Store, key: &str, bytes: Option<&[u8]>);

    /// How hard the suite pushes this store.
    fn profile(&self) -> Profile;
}

/// How much work a property does on one store. A slow store gets smaller numbers, never a
/// weaker assertion: what each number means is the same on every store.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// Rounds of 8 racing conditional writers, in all (each round must have exactly one
    /// winner).
    pub cas_rounds: u32,
    /// Keys raced on at the same time, each in its own rounds (a store that backs losers off
    /// by seconds, as SeaweedFS does, spends that time waiting, not working).
    pub cas_keys: u32,
    /// Appends of writers taking turns on one store in a seeded order; at least one in
    /// eight is fenced.
    pub turns: u32,
    /// Writers racing on their own threads and connections.
    pub race_writers: usize,
    /// How long they race at most.
    pub race_for: Duration,
    /// Appends each racing writer tries, within `race_for` (more if none was fenced yet).
    pub race_rounds: u64,
    /// Appends the racing writers must have had acknowledged between them.
    pub race_min_acked: usize,
    /// Entries of the append that fails at each of its puts in turn (onto 300).
    pub every_put_batch: u64,
}
