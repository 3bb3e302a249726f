//! The object-store writer's protocol, on the in-memory store: the same bytes as the local
//! writer, recovery of a half-finished commit, a failure at every request, and racing
//! writers that never fork. (The same protocol against a real S3 server is tested in
//! `graven-s3`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use graven_core::note::SignerKey;
use graven_core::{Hash, TreeSize};
use graven_tlog::objlog::{ARCHIVE_PREFIX, CHECKPOINT_KEY, HEAD_KEY, Head, Retry, archive_key};
use graven_tlog::{
    Cond, LocalLog, LogError, MemStore, Object, ObjectLog, ObjectStore, StoreError, StoreFetch,
    read_published,
};
use graven_verify::verify_log;
use proptest::prelude::*;

fn key() -> SignerKey {
    SignerKey::from_seed("test.example/log", [42; 32]).unwrap()
}

fn entries(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(|i| format!("entry-{i}").into_bytes()).collect()
}

fn verify(store: &Arc<MemStore>) -> u64 {
    let mut f = StoreFetch::new(store.clone());
    verify_log(&mut f, &key().verifier(), None, |_, _| {}).unwrap().size.0
}

/// Every object of the tlog-tiles layout (not Graven's own `graven/` objects).
fn tlog_objects(store: &MemStore) -> BTreeMap<String, Vec<u8>> {
    store
        .keys()
        .into_iter()
        .filter(|k| !k.starts_with("graven/"))
        .map(|k| {
            let v = store.get(&k, 1 << 30).unwrap().unwrap().bytes;
            (k, v)
        })
        .collect()
}

/// Every file of a local log's directory but its lock, by relative path.
fn local_files(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = graven_testkit::fs::files(dir);
    out.remove(".graven-lock");
    out
}

/// The store holds exactly the local log's files (same names, same bytes), every immutable
/// object is retained, and every checkpoint is archived.
#[test]
fn the_object_layout_is_the_local_layout_byte_for_byte() {
    let store = Arc::new(MemStore::new());
    let d = tempfile::tempdir().unwrap();
    let mut local = LocalLog::open(&d.path().join("log"), key()).unwrap();
    let mut obj = ObjectLog::open(store.clone(), key()).unwrap();
    let mut sizes = vec![];
    for (a, b) in [(0, 0), (0, 1), (1, 255), (255, 256), (256, 700), (700, 70_000), (70_000, 70_001)] {
        let e = entries(a..b);
        let p1 = local.append(&e).unwrap();
        let p2 = obj.append(&e).unwrap();
        assert_eq!(p1.checkpoint, p2.checkpoint);
        assert_eq!(p1.leaf_hashes, p2.leaf_hashes);
        sizes.push(b);
    }
    let mut local = local_files(&d.path().join("log"));
    local.retain(|k, _| !k.starts_with('.'));
    assert_eq!(tlog_objects(&store), local);
    for k in store.keys() {
        let immutable = k.starts_with("tile/") || k.starts_with(ARCHIVE_PREFIX);
        assert_eq!(store.retained(&k), immutable, "{k}");
    }
    for s in sizes {
        assert!(store.get(&archive_key(s), 1 << 20).unwrap().is_some(), "archive of {s}");
    }
    assert_eq!(verify(&store), 70_001);
}

#[test]
fn reopening_continues_the_log_and_another_key_is_refused() {
    let store = Arc::new(MemStore::new());
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(0..300)).unwrap();
    let mut log = ObjectLog::open(store.clone(), key()).unwrap();
    assert_eq!(log.size(), TreeSize(300));
    log.append(&entries(300..301)).unwrap();
    assert_eq!(verify(&store), 301);
    let other = SignerKey::from_seed("test.example/log", [7; 32]).unwrap();
    assert!(matches!(ObjectLog::open(store.clone(), other), Err(LogError::Checkpoint(_))));
    // A prefix with a checkpoint but no head is not ours.
    let foreign = Arc::new(MemStore::new());
    foreign.put(CHECKPOINT_KEY, b"x", graven_tlog::Cond::Any, false).unwrap();
    assert!(matches!(ObjectLog::open(foreign, key()), Err(LogError::NotAnObjectLog(_))));
}

/// A writer that commits the head and dies leaves a log the next writer completes with the
/// same bytes, including the entries it never acknowledged.
#[test]
fn a_committed_head_is_finished_by_the_next_writer() {
    let store = Arc::new(MemStore::new());
    let mut log = ObjectLog::open(store.clone(), key()).unwrap();
    log.append(&entries(0..100)).unwrap();
    // The head write lands, every later write fails.
    store.fail_after(1, false);
    assert!(log.append(&entries(100..900)).is_err());
    store.heal();
    assert_eq!(read_published(store.as_ref(), &key().verifier()).unwrap().unwrap().1.size(), TreeSize(100));
    let mut next = ObjectLog::open(store.clone(), key()).unwrap();
    assert_eq!(next.size(), TreeSize(900));
    assert_eq!(verify(&store), 900);
    next.append(&entries(900..901)).unwrap();
    assert_eq!(verify(&store), 901);
}

/// A tile of the committed tree replaced behind the writer's back is found before anything
/// is appended.
#[test]
fn a_tampered_tile_stops_the_next_writer() {
    let store = Arc::new(MemStore::new());
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(0..600)).unwrap();
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(600..610)).unwrap();
    // The right edge of size 600 is read from the level-1 tile of two hashes.
    store.tamper("tile/1/000.p/2", Some(&[0u8; 64]));
    let e = ObjectLog::open(store.clone(), key()).unwrap_err();
    assert!(matches!(e, LogError::RootMismatch | LogError::Tiles(_)), "{e}");
}

#[test]
fn malformed_heads_are_refused_with_a_reason() {
    let cp = "test.example/log\n1\nAAAA\n\n— x y\n";
    let good = Head::encode(TreeSize(0), Hash([0; 32]), TreeSize(1), cp, &[b"e".as_slice()]);
    assert_eq!(Head::parse(&good).unwrap().entries, vec![b"e".to_vec()]);
    let mut cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"graven-head v2\n".to_vec(),
        good[..good.len() - 1].to_vec(),
        [good.as_slice(), b"x"].concat(),
        Head::encode(TreeSize(5), Hash([0; 32]), TreeSize(1), cp, &[] as &[&[u8]]),
        b"graven-head v1\n0 00\n1 3\nabc".to_vec(),
        b"graven-head v1\n0 0000000000000000000000000000000000000000000000000000000000000000\n99999999999999999999 3\nabc".to_vec(),
    ];
    cases.push(vec![b'g'; 4096]);
    for c in cases {
        assert!(Head::parse(&c).is_err(), "{:?}", String::from_utf8_lossy(&c));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The head parser never panics on arbitrary bytes.
    #[test]
    fn head_parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Head::parse(&b);
        let mut framed = b"graven-head v1\n0 ".to_vec();
        framed.extend_from_slice(&b);
        let _ = Head::parse(&framed);
    }
}

/// A failure at every request of an append, both when the request fails and when it lands
/// but its answer is lost. After each: an acknowledged append is present; the next writer
/// opens, completes whatever was committed, and the log verifies at the old or new size.
#[test]
fn a_failure_at_every_request_keeps_every_acknowledged_entry() {
    for land in [false, true] {
        let mut step = 0;
        let mut outcomes = [0usize; 2];
        loop {
            let store = Arc::new(MemStore::new());
            ObjectLog::open(store.clone(), key()).unwrap().append(&entries(0..300)).unwrap();
            store.fail_after(step, land);
            let fast = Retry { attempts: 2, first_wait: std::time::Duration::from_millis(1) };
            let acked = match ObjectLog::open_with(store.clone(), key(), fast) {
                Ok(mut log) => log.append(&entries(300..900)).is_ok(),
                Err(_) => false,
            };
            store.heal();
            let mut next = ObjectLog::open(store.clone(), key()).unwrap();
            let size = next.size().0;
            if acked {
                assert_eq!(size, 900, "land={land} step {step}: an acknowledged append was lost");
            } else {
                assert!(size == 300 || size == 900, "land={land} step {step}: size {size}");
            }
            assert_eq!(verify(&store), size, "land={land} step {step}");
            outcomes[usize::from(size == 900)] += 1;
            next.append(&entries(size..size + 70)).unwrap();
            assert_eq!(verify(&store), size + 70);
            if acked {
                break;
            }
            step += 1;
            assert!(step < 1000, "the append never finished");
        }
        assert!(step >= 5, "expected several failure points, got {step}");
        assert!(outcomes[1] > 0, "land={land}: outcomes {outcomes:?}");
    }
}

/// Two writers on one store, taking turns at random, each reopening when fenced: every
/// checkpoint either one published is a prefix of the one final tree, and no two differ at
/// the same size.
#[test]
fn racing_writers_never_fork() {
    let store = Arc::new(MemStore::new());
    let mut writers =
        [ObjectLog::open(store.clone(), key()).unwrap(), ObjectLog::open(store.clone(), key()).unwrap()];
    let mut published: BTreeMap<u64, String> = BTreeMap::new();
    let mut fenced = 0;
    let mut seed = 12345u64;
    let mut next = 0u64;
    for _ in 0..400 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let w = (seed >> 33) as usize % 2;
        let n = 1 + (seed >> 40) % 40;
        match writers[w].append(&entries(next..next + n)) {
            Ok(p) => {
                if let Some(prev) = published.insert(p.new_size.0, p.checkpoint.clone()) {
                    assert_eq!(prev, p.checkpoint, "two checkpoints for size {}", p.new_size.0);
                }
                next += n;
            }
            Err(LogError::Fenced) => {
                fenced += 1;
                writers[w] = ObjectLog::open(store.clone(), key()).unwrap();
                next = writers[w].size().0;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(fenced > 50, "the writers should have fenced each other often, got {fenced}");
    let final_size = verify(&store);
    let mut f = StoreFetch::new(store.clone());
    for (size, cp) in &published {
        assert!(*size <= final_size);
        // Each published checkpoint verifies against the final tree (consistency).
        let trusted = graven_core::checkpoint::VerifiedCheckpoint::open(
            cp.as_bytes(),
            &key().verifier(),
            "test.example/log",
        )
        .unwrap();
        graven_verify::verify_log_since(
            &mut f,
            &key().verifier(),
            None,
            Some(&trusted),
            graven_verify::Mode::Full,
            |_, _| {},
        )
        .unwrap();
    }
    assert!(store.get(HEAD_KEY, 1 << 30).unwrap().is_some());
}

/// A store that runs a hook once, just before its first read (or, with `on_put`, write) of
/// one key: another writer acting between two requests of this one.
struct Hooked {
    inner: Arc<MemStore>,
    key: &'static str,
    on_put: bool,
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Hooked {
    fn run_hook(&self, key: &str, put: bool) {
        if key == self.key && put == self.on_put {
            let hook = self.hook.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
        }
    }
}

impl std::fmt::Debug for Hooked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooked").field("key", &self.key).finish_non_exhaustive()
    }
}

impl ObjectStore for Hooked {
    fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError> {
        self.run_hook(key, false);
        self.inner.get(key, limit)
    }

    fn put(&self, key: &str, data: &[u8], cond: Cond<'_>, retain: bool) -> Result<String, StoreError> {
        self.run_hook(key, true);
        self.inner.put(key, data, cond, retain)
    }

    fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError> {
        self.inner.first_key_after(prefix, after)
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

/// A writer that opens the log while another appends to it (a standby taking over, or a
/// fenced writer reopening) may find the public checkpoint ahead of the head it read: the
/// log moved on, which is no sign of tampering. It opens at the newer head.
#[test]
fn opening_while_another_writer_appends_is_no_alarm() {
    let store = Arc::new(MemStore::new());
    let mut a = ObjectLog::open(store.clone(), key()).unwrap();
    a.append(&entries(0..10)).unwrap();
    // B reads the head (size 10) and its tiles; before B reads the public checkpoint, A
    // appends and publishes size 20.
    let hooked = Arc::new(Hooked {
        inner: store.clone(),
        key: CHECKPOINT_KEY,
        on_put: false,
        hook: Mutex::new(Some(Box::new(move || {
            a.append(&entries(10..20)).unwrap();
        }))),
    });
    let mut b = ObjectLog::open(hooked, key()).unwrap();
    assert_eq!(b.size(), TreeSize(20));
    b.append(&entries(20..25)).unwrap();
    assert_eq!(verify(&store), 25);
}

/// A writer whose batch is committed, but which another writer overtakes before it publishes
/// its checkpoint: the other writer finishes the batch and publishes past it. The batch is in
/// the log, so the append is acknowledged (never answered `Fenced`, which says the entries
/// are not in the log); the overtaken writer is fenced from then on.
#[test]
fn a_committed_batch_overtaken_before_publication_is_acknowledged() {
    let store = Arc::new(MemStore::new());
    let hooked =
        Arc::new(Hooked { inner: store.clone(), key: CHECKPOINT_KEY, on_put: true, hook: Mutex::new(None) });
    let mut a = ObjectLog::open(hooked.clone(), key()).unwrap();
    a.append(&entries(0..10)).unwrap();
    // After A commits 10..20, before it replaces the public checkpoint: B opens (finishing
    // A's batch) and appends 20..25.
    let inner = store.clone();
    *hooked.hook.lock().unwrap() = Some(Box::new(move || {
        let mut b = ObjectLog::open(inner, key()).unwrap();
        assert_eq!(b.size(), TreeSize(20));
        b.append(&entries(20..25)).unwrap();
    }));
    let p = a.append(&entries(10..20)).unwrap();
    assert_eq!((p.old_size, p.new_size), (TreeSize(10), TreeSize(20)));
    assert_eq!(store.get(&archive_key(20), 1 << 20).unwrap().unwrap().bytes, p.checkpoint.as_bytes());
    assert!(a.is_fenced());
    assert!(matches!(a.append(&entries(25..26)), Err(LogError::Fenced)));
    assert_eq!(verify(&store), 25);
}

/// The cache in front of a store answers repeated reads of tiles and bundles itself, serves
/// what this node wrote without reading it back, never caches the objects that change, and
/// stays within its bound.
#[test]
fn the_cache_serves_immutable_objects_and_nothing_else() {
    let inner = Arc::new(MemStore::new());
    let cached = Arc::new(graven_tlog::CachedStore::new(inner.clone(), 64 * 1024));
    let gets = |s: &MemStore| s.request_counts().iter().find(|(op, _)| *op == "get").unwrap().1;
    let mut log = ObjectLog::open(cached.clone(), key()).unwrap();
    log.append(&entries(0..600)).unwrap();
    let before = gets(&inner);
    for _ in 0..3 {
        assert_eq!(
            cached.get("tile/entries/001", 1 << 20).unwrap().unwrap().bytes,
            inner.get("tile/entries/001", 1 << 20).unwrap().unwrap().bytes
        );
    }
    assert_eq!(gets(&inner), before + 3, "only the comparison reads reach the store");
    assert!(cached.hits() >= 3);
    // The checkpoint and the head change: always read from the store.
    let g = gets(&inner);
    cached.get(CHECKPOINT_KEY, 1 << 20).unwrap().unwrap();
    cached.get(HEAD_KEY, 1 << 30).unwrap().unwrap();
    assert_eq!(gets(&inner), g + 2);
    // A size limit still holds for a cached object.
    assert!(matches!(cached.get("tile/entries/001", 10), Err(StoreError::TooLarge { .. })));
    // Bounded: a log many times the cache's size never holds more than the bound.
    log.append(&entries(600..20_000)).unwrap();
    assert!(cached.cached_bytes() <= 64 * 1024, "{}", cached.cached_bytes());
    assert_eq!(verify(&inner), 20_000);
    let mut f = StoreFetch::new(cached.clone());
    assert_eq!(verify_log(&mut f, &key().verifier(), None, |_, _| {}).unwrap().size.0, 20_000);
}

/// The two objects that change are not locked, so someone holding the store's credentials can
/// delete them (a delete marker) or put old versions back. Neither may make the log's own key
/// sign a fork: a writer refuses to start a new log where archived checkpoints exist, and to
/// continue from a head older than the newest archived checkpoint.
#[test]
fn a_deleted_or_rolled_back_head_is_refused_not_forked() {
    let store = Arc::new(MemStore::new());
    let mut log = ObjectLog::open(store.clone(), key()).unwrap();
    log.append(&entries(0..100)).unwrap();
    let old_head = store.get(HEAD_KEY, 1 << 30).unwrap().unwrap().bytes;
    let old_cp = store.get(CHECKPOINT_KEY, 1 << 20).unwrap().unwrap().bytes;
    log.append(&entries(100..200)).unwrap();
    drop(log);

    // Deleted: no head, no checkpoint.
    let deleted = Arc::new(MemStore::new());
    for k in store.keys() {
        deleted.tamper(&k, Some(&store.get(&k, 1 << 30).unwrap().unwrap().bytes));
    }
    deleted.tamper(HEAD_KEY, None);
    deleted.tamper(CHECKPOINT_KEY, None);
    let e = ObjectLog::open(deleted.clone(), key()).unwrap_err();
    assert!(e.to_string().contains("head was deleted"), "{e}");

    // Rolled back: the old head and checkpoint put back.
    store.tamper(HEAD_KEY, Some(&old_head));
    store.tamper(CHECKPOINT_KEY, Some(&old_cp));
    let e = ObjectLog::open(store.clone(), key()).unwrap_err();
    assert!(e.to_string().contains("rolled back"), "{e}");
}
