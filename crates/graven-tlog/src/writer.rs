//! What every log writer shares: the result of a commit, the trait the sequencer drives
//! either writer through, and the largest files a writer writes.

use graven_core::hash::{Hash, TreeSize};
use graven_core::tile::{MAX_ENTRY_SIZE, TILE_WIDTH};

use crate::error::LogError;

/// Largest hash tile: 256 hashes.
pub const MAX_TILE_BYTES: u64 = TILE_WIDTH * 32;
/// Largest entry bundle: 256 entries of 65,535 bytes, each with a 2-byte length.
pub const MAX_BUNDLE_BYTES: u64 = TILE_WIDTH * (2 + MAX_ENTRY_SIZE as u64);

/// The result of an append: the new checkpoint, signed and durable.
#[derive(Debug, Clone)]
pub struct Published {
    pub old_size: TreeSize,
    pub new_size: TreeSize,
    pub root: Hash,
    /// The signed checkpoint note, as written.
    pub checkpoint: String,
    /// The leaf hash of each appended entry, in order.
    pub leaf_hashes: Vec<Hash>,
}

/// What is called once a submitted batch is published, or cannot be.
pub type OnPublished = Box<dyn FnOnce(Result<Published, LogError>) + Send>;

/// What a sequencer needs of a log, on a local disk or on an object store.
pub trait LogWriter: Send + std::fmt::Debug {
    /// Appends `entries` and publishes one checkpoint covering them; see `LocalLog::append`
    /// and `ObjectLog::append` for what an error means on each.
    fn append_batch(&mut self, entries: &[&[u8]]) -> Result<Published, LogError>;

    /// Appends `entries` and calls `done` with what [`LogWriter::append_batch`] would return,
    /// once they are published (`Ok` means what it means there: durable, and covered by a
    /// published signed checkpoint, which may be a later one than theirs). A writer that
    /// pipelines commits returns once the batch is committed and calls `done` later, from
    /// another thread, in the order of submission; this default calls it before returning.
    /// An error returned here was given to `done` too: it says the writer is unusable.
    fn submit(&mut self, entries: &[&[u8]], done: OnPublished) -> Result<(), LogError> {
        match self.append_batch(entries) {
            Ok(p) => {
                done(Ok(p));
                Ok(())
            }
            Err(e) => {
                done(Err(e.duplicate()));
                Err(e)
            }
        }
    }

    /// Returns once every submitted batch was published or failed (its `done` called).
    fn flush(&mut self) {}

    /// Returns once a new batch would not wait behind another committed one: a pipelined
    /// writer keeps at most one batch queued while a round is published. The sequencer calls
    /// it before it gathers a batch, so that a batch takes in everything that arrived while
    /// the earlier ones were published rather than being cut small.
    fn ready(&mut self) {}

    fn size(&self) -> TreeSize;
    fn root(&self) -> Hash;
    fn checkpoint(&self) -> Option<&str>;
}
