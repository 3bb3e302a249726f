//! The object-store conformance suite (`graven_tlog::conformance`) on the in-memory store,
//! pushed harder than a real store can be in the time (more rounds, more turns). The same
//! suite runs on S3 (SeaweedFS) in `graven-s3/tests/seaweed/`.

use std::sync::Arc;
use std::time::Duration;

use graven_tlog::MemStore;
use graven_tlog::conformance::{Backend, Profile};

struct Memory;

impl Backend for Memory {
    type Store = MemStore;

    fn fresh(&self, _hint: &str) -> Arc<MemStore> {
        Arc::new(MemStore::new())
    }

    fn reconnect(&self, store: &Arc<MemStore>) -> Arc<MemStore> {
        store.clone()
    }

    fn keys(&self, store: &MemStore) -> Vec<String> {
        store.keys()
    }

    fn retained(&self, store: &MemStore, key: &str) -> bool {
        store.retained(key)
    }

    fn tamper(&self, store: &MemStore, key: &str, bytes: Option<&[u8]>) {
        store.tamper(key, bytes);
    }

    fn profile(&self) -> Profile {
        Profile {
            cas_rounds: 100,
            cas_keys: 4,
            turns: 400,
            race_writers: 3,
            race_for: Duration::from_secs(10),
            race_rounds: 60,
            race_min_acked: 100,
            every_put_batch: 600,
        }
    }
}

graven_tlog::object_store_conformance!(Memory);
