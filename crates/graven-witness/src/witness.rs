//! The witness as a service holds it: the pure rules (`machine`), the durable records
//! (`store`) and one lock per origin that makes "check, then update" atomic.
//!
//! C2SP `tlog-witness` §add-checkpoint: "The witness MUST persist the new checkpoint before
//! responding. Note that checking the old size against the latest checkpoint and persisting the
//! new checkpoint must be performed atomically", lest two requests checked against the same
//! record both be cosigned and the later write roll the record back. Here a request holds its
//! origin's lock from the check until the new record is durable and in memory, so requests for
//! one origin are decided one after the other, each against the record the previous one left.
//! Requests for different origins do not wait for each other.
//!
//! After a storage error the witness is poisoned: it answers nothing more (503) until it is
//! restarted and has read its records back, because it no longer knows which record the disk
//! holds.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use graven_core::cosignature::{Cosigner, CosignerKey};
use graven_tlog::Fs;

use crate::logs::TrustedLogs;
use crate::machine::{CosignedCheckpoint, Machine, Timestamp, WitnessError, origin_hash};
use crate::request::Submission;
use crate::store::{Store, StoreError};

/// Why a request got no cosignature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The spec's refusals (400, 403, 404, 409, 422).
    #[error("{0}")]
    Refused(#[from] WitnessError),
    /// Writing this request's record failed; the witness is now poisoned.
    #[error("storing the cosigned checkpoint failed, so it was not cosigned: {0}")]
    Storage(StoreError),
    /// An earlier storage error poisoned the witness.
    #[error("the witness stopped cosigning after a storage error; restart it")]
    Poisoned,
    /// The clock gave a time a cosignature cannot carry (0, or over 2^63 - 1).
    #[error("the system clock reads {0} s since the epoch, which a cosignature cannot carry")]
    Clock(u64),
}

struct Slot {
    origin: String,
    /// The record, locked from a request's check to its durable update.
    held: Mutex<Option<CosignedCheckpoint>>,
    /// A copy of the record's note for monitors, so that reading it never waits for an fsync.
    published: Mutex<Option<Arc<[u8]>>>,
}

impl Slot {
    fn new(origin: String, held: Option<CosignedCheckpoint>) -> Self {
        let published = Mutex::new(held.as_ref().map(|c| Arc::from(c.note_bytes())));
        Slot { origin, held: Mutex::new(held), published }
    }
}

/// See the module docs.
pub struct Witness {
    machine: Machine,
    store: Store,
    /// Origin → its record. Fixed at open: one slot per followed origin, and one per record on
    /// disk (a log no longer followed is still served to monitors).
    slots: BTreeMap<String, Slot>,
    /// Origin hash → origin, for the monitoring path.
    by_hash: BTreeMap<String, String>,
    poisoned: AtomicBool,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("key", &self.machine.verifier())
            .field("origins", &self.slots.len())
            .field("poisoned", &self.poisoned.load(Ordering::SeqCst))
            .finish()
    }
}

impl Witness {
    /// Opens the witness's state in `data` (created if missing) on `fs`, following `logs`.
    pub fn open(
        fs: Arc<dyn Fs>,
        data: &Path,
        cosigner: Cosigner,
        logs: TrustedLogs,
    ) -> Result<Self, StoreError> {
        let (store, records) = Store::open(fs, data, &cosigner.verifier())?;
        let mut slots: BTreeMap<String, Slot> =
            logs.origins().map(|o| (o.to_owned(), Slot::new(o.to_owned(), None))).collect();
        for r in records {
            let origin = r.origin().to_owned();
            slots.insert(origin.clone(), Slot::new(origin, Some(r)));
        }
        let by_hash = slots.values().map(|s| (origin_hash(&s.origin), s.origin.clone())).collect();
        Ok(Witness {
            machine: Machine::new(cosigner, logs),
            store,
            slots,
            by_hash,
            poisoned: AtomicBool::new(false),
        })
    }

    /// The witness's verifier key (`cosignature/v1`, type `0x04`).
    pub fn verifier(&self) -> CosignerKey {
        self.machine.verifier()
    }

    pub fn logs(&self) -> &TrustedLogs {
        self.machine.logs()
    }

    /// `add-checkpoint`: decides `body` at `now_posix` (seconds) and, if it is to be cosigned,
    /// makes the new record durable and returns the response body (the cosignature lines).
    pub fn add_checkpoint(&self, body: &[u8], now_posix: u64) -> Result<String, AddError> {
        let now = Timestamp::new(now_posix).ok_or(AddError::Clock(now_posix))?;
        let submission = Submission::parse(body).map_err(WitnessError::from)?;
        // 404 and 403 need no state: decided before the lock, so forgeries never hold it.
        let auth = self.machine.authenticate(&submission)?;
        let Some(slot) = self.slots.get(submission.origin()) else {
            // Cannot happen: every followed origin has a slot. Refusing is the safe answer.
            return Err(WitnessError::UnknownOrigin(submission.origin().to_owned()).into());
        };
        // The origin's lock is held from the check to the durable update: see the module docs.
        let Ok(mut held) = slot.held.lock() else {
            return Err(AddError::Poisoned);
        };
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(AddError::Poisoned);
        }
        let next = self.machine.decide(&auth, held.as_ref(), now)?;
        if let Err(e) = self.store.persist(&next) {
            self.poisoned.store(true, Ordering::SeqCst);
            return Err(AddError::Storage(e));
        }
        let lines = next.cosignature_line().to_owned();
        if let Ok(mut p) = slot.published.lock() {
            *p = Some(Arc::from(next.note_bytes()));
        }
        *held = Some(next);
        Ok(lines)
    }

    /// The latest checkpoint cosigned for the origin whose lowercase hex SHA-256 is
    /// `origin_hash`, with the log's signatures and the witness's cosignature; `None` if the
    /// witness never cosigned one.
    pub fn checkpoint(&self, origin_hash: &str) -> Option<Arc<[u8]>> {
        let origin = self.by_hash.get(origin_hash)?;
        self.slots.get(origin)?.published.lock().ok()?.clone()
    }

    /// The record held for `origin`.
    pub fn held(&self, origin: &str) -> Option<CosignedCheckpoint> {
        self.slots.get(origin)?.held.lock().ok()?.clone()
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }
}
