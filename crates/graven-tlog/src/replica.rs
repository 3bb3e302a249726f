//! What a node of a shared log needs in order to serve a checkpoint it did not write: the
//! published checkpoint, checked, and whether one tree extends another.
//!
//! **Contract.** [`next_published`] answers [`Next::Extends`] only for a checkpoint that
//! (1) is signed by the log's key, (2) whose root the stored tiles reproduce (so every proof
//! this node serves from them holds), and (3) whose tree extends the tree the caller last
//! served: not smaller, and with the same root at the old size. A checkpoint that is signed
//! and reproduced but does not extend is [`Next::Conflicts`], never served; anything that
//! cannot be read or checked is an error, and the caller keeps serving what it had. A writer
//! that (re)opens the log checks the same rule with [`ObjectLog::extends`].
//!
//! Reads only: nothing here writes to the store.

use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::hash::{Hash, TreeSize};
use graven_core::note::{self, VerifierKey};

use crate::error::LogError;
use crate::objlog::ObjectLog;
use crate::objlog::{CHECKPOINT_KEY, check_published, root_at};
use crate::objstore::ObjectStore;

/// The tree a node last served: its size and root, and the checkpoint's bytes (empty if it
/// has served none).
#[derive(Debug, Clone, Copy)]
pub struct Served<'a> {
    pub size: TreeSize,
    pub root: Hash,
    pub checkpoint: &'a [u8],
}

/// What [`next_published`] found.
#[derive(Debug)]
#[non_exhaustive]
pub enum Next {
    /// Nothing is published, or exactly the checkpoint already served.
    Unchanged,
    /// A checkpoint to serve: signed, reproduced by the tiles, extending the tree served.
    Extends { checkpoint: String, verified: VerifiedCheckpoint },
    /// Signed and reproduced by the tiles, but smaller than the tree served or with another
    /// root at its size: a rollback or a fork. Not to be served.
    Conflicts { verified: VerifiedCheckpoint },
}

/// The log's published checkpoint, checked against `key`, the stored tiles and the tree
/// `served` (see the module's contract).
pub fn next_published(
    store: &dyn ObjectStore,
    key: &VerifierKey,
    served: Served<'_>,
) -> Result<Next, LogError> {
    let Some(o) = store.get(CHECKPOINT_KEY, note::MAX_NOTE_SIZE as u64)? else {
        return Ok(Next::Unchanged);
    };
    if o.bytes == served.checkpoint {
        return Ok(Next::Unchanged);
    }
    let verified = check_published(store, key, &o.bytes)?;
    if !served.checkpoint.is_empty() && !extends(store, verified.size(), served.size, served.root)? {
        return Ok(Next::Conflicts { verified });
    }
    Ok(Next::Extends { checkpoint: String::from_utf8_lossy(&o.bytes).into_owned(), verified })
}

/// Whether the published tree of size `published` (read from the stored tiles) extends the
/// tree of `size` and `root`: it is at least as large, and its first `size` entries have that
/// root.
pub fn extends(
    store: &dyn ObjectStore,
    published: TreeSize,
    size: TreeSize,
    root: Hash,
) -> Result<bool, LogError> {
    Ok(published >= size && root_at(store, published, size)? == root)
}

impl ObjectLog {
    /// Whether this log's tree extends the tree of `size` and `root` (one a node served
    /// before, as a replica or an earlier writer): see [`extends`].
    pub fn extends(&self, size: TreeSize, root: Hash) -> Result<bool, LogError> {
        extends(self.store.as_ref(), self.size(), size, root)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use graven_core::note::SignerKey;

    use super::*;
    use crate::{Cond, MemStore};

    fn key() -> SignerKey {
        SignerKey::from_seed("replica.test/log", [5; 32]).unwrap()
    }

    #[test]
    fn a_replica_takes_up_only_checkpoints_that_extend_what_it_served() {
        let store = Arc::new(MemStore::new());
        let vkey = key().verifier();
        let none = Served { size: TreeSize(0), root: graven_core::empty_root(), checkpoint: b"" };
        assert!(matches!(next_published(store.as_ref(), &vkey, none).unwrap(), Next::Unchanged));
        let mut log = ObjectLog::open(store.clone(), key()).unwrap();
        log.append(&[b"a".to_vec(), b"b".to_vec()]).unwrap();
        let Next::Extends { checkpoint: first, verified } =
            next_published(store.as_ref(), &vkey, none).unwrap()
        else {
            panic!("the first checkpoint is taken up");
        };
        assert_eq!(verified.size(), TreeSize(2));
        let served = Served { size: verified.size(), root: verified.root(), checkpoint: first.as_bytes() };
        assert!(matches!(next_published(store.as_ref(), &vkey, served).unwrap(), Next::Unchanged));
        log.append(&[b"c".to_vec()]).unwrap();
        assert!(log.extends(served.size, served.root).unwrap());
        let Next::Extends { verified: grown, .. } = next_published(store.as_ref(), &vkey, served).unwrap()
        else {
            panic!("a grown tree is taken up");
        };
        assert_eq!(grown.size(), TreeSize(3));
        // The old checkpoint put back: signed and reproduced, but behind what was served.
        let newer = Served { size: grown.size(), root: grown.root(), checkpoint: b"x" };
        store.put(CHECKPOINT_KEY, first.as_bytes(), Cond::Any, false).unwrap();
        assert!(matches!(next_published(store.as_ref(), &vkey, newer).unwrap(), Next::Conflicts { .. }));
        // Another root at the served size: a fork.
        let forked = Served { size: TreeSize(2), root: graven_core::leaf_hash(b"other"), checkpoint: b"x" };
        assert!(matches!(next_published(store.as_ref(), &vkey, forked).unwrap(), Next::Conflicts { .. }));
        assert!(!log.extends(forked.size, forked.root).unwrap());
        // Not signed by the log's key: an error, never served.
        let other = SignerKey::from_seed("replica.test/log", [6; 32]).unwrap().verifier();
        assert!(next_published(store.as_ref(), &other, none).is_err());
    }
}
