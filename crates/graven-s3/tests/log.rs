#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The object-store log protocol (`graven_tlog::ObjectLog`) against a real S3 service
//! (SeaweedFS, see `graven_testkit::s3`): the same bytes as the local log, retention on every
//! immutable object, racing writers that never fork, recovery of a half-finished commit after
//! a failure at every request, and tampering found by the verifier and undone from the
//! retained versions. The same protocol on the in-memory store is tested in `graven-tlog`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use aws_sdk_s3::types::ObjectLockMode;
use graven_core::TreeSize;
use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::note::SignerKey;
use graven_s3::{S3Config, S3Store};
use graven_testkit::s3::Seaweed;
use graven_tlog::StoreFetch;
use graven_tlog::objlog::{ARCHIVE_PREFIX, CHECKPOINT_KEY, HEAD_KEY, Retry, archive_key};
use graven_tlog::{Cond, LocalLog, LogError, Object, ObjectLog, ObjectStore, StoreError, read_published};
use graven_verify::{Mode, VerifyError, verify_log, verify_log_since, verify_log_since_visiting};

const ORIGIN: &str = "test.example/log";

fn key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [42; 32]).unwrap()
}

fn entries(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(|i| format!("entry-{i}").into_bytes()).collect()
}

fn connect(cfg: &S3Config) -> Arc<S3Store> {
    Arc::new(S3Store::connect(cfg.clone()).unwrap())
}

fn verify(store: Arc<dyn ObjectStore>) -> Result<u64, VerifyError> {
    let mut f = StoreFetch::new(store);
    verify_log(&mut f, &key().verifier(), None, |_, _| {}).map(|r| r.size.0)
}

/// Every entry of the log in `store`, in order, read by the verifier (which checks them).
fn log_entries(store: Arc<dyn ObjectStore>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut f = StoreFetch::new(store);
    verify_log_since_visiting(
        &mut f,
        &key().verifier(),
        None,
        None,
        Mode::Full,
        |_, _| {},
        |i, e| {
            assert_eq!(i, out.len() as u64);
            out.push(e.to_vec());
            Ok(())
        },
    )
    .unwrap();
    out
}

fn open_checkpoint(note: &str) -> VerifiedCheckpoint {
    VerifiedCheckpoint::open(note.as_bytes(), &key().verifier(), ORIGIN).unwrap()
}

/// The keys of every current object under the store's prefix, relative to it (delete markers
/// and old versions are not listed).
fn list_keys(s: &S3Store, under: &str) -> Vec<String> {
    let cfg = s.config().clone();
    let full = cfg.full_key(under);
    let strip = cfg.full_key("");
    let c = s.client().clone();
    s.run(async move {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = c
                .list_objects_v2()
                .bucket(&cfg.bucket)
                .prefix(&full)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            keys.extend(out.contents().iter().filter_map(|o| o.key()).map(|k| k[strip.len()..].to_owned()));
            match out.next_continuation_token() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        keys.sort();
        keys
    })
    .unwrap()
}

fn local_files(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = graven_testkit::fs::files(dir);
    out.retain(|rel, _| !rel.starts_with('.'));
    out
}

/// The tlog-tiles objects (not Graven's own `graven/` objects) under the store's prefix.
fn tlog_objects(s: &S3Store) -> BTreeMap<String, Vec<u8>> {
    list_keys(s, "")
        .into_iter()
        .filter(|k| !k.starts_with("graven/"))
        .map(|k| {
            let v = s.get(&k, 1 << 30).unwrap().unwrap().bytes;
            (k, v)
        })
        .collect()
}

/// The Object Lock mode of the current version of each key, read with HeadObject.
fn lock_modes(s: &S3Store, keys: Vec<String>) -> Vec<(String, Option<ObjectLockMode>)> {
    let cfg = s.config().clone();
    let c = s.client().clone();
    s.run(async move {
        let mut out = Vec::new();
        for k in keys {
            let h = c.head_object().bucket(&cfg.bucket).key(cfg.full_key(&k)).send().await.unwrap();
            out.push((k, h.object_lock_mode().cloned()));
        }
        out
    })
    .unwrap()
}

/// The same appends, from an empty first one across tile and bundle boundaries, into a local
/// log and into an object log on a locked bucket under a prefix: the same checkpoints and leaf
/// hashes, the same tlog files byte for byte, retention exactly on the immutable objects, and
/// a log that verifies and that a new writer continues.
#[test]
fn the_bucket_holds_the_local_layout_byte_for_byte_with_retention() {
    let start = Instant::now();
    let mut cfg = Seaweed::shared().bucket("log-layout", true);
    cfg.prefix = "logs/audit".into();
    let store = connect(&cfg);
    let d = tempfile::tempdir().unwrap();
    let mut local = LocalLog::open(&d.path().join("log"), key()).unwrap();
    let mut obj = ObjectLog::open(store.clone(), key()).unwrap();
    let mut sizes = vec![];
    for (a, b) in [(0, 0), (0, 1), (1, 255), (255, 256), (256, 700), (700, 70_000)] {
        let e = entries(a..b);
        let p1 = local.append(&e).unwrap();
        let p2 = obj.append(&e).unwrap();
        assert_eq!(p1.checkpoint, p2.checkpoint, "after {b}");
        assert_eq!(p1.leaf_hashes, p2.leaf_hashes, "after {b}");
        assert_eq!((p2.old_size, p2.new_size), (TreeSize(a), TreeSize(b)));
        sizes.push(b);
    }
    drop(obj);
    // A new writer, on a new connection, continues where the first stopped.
    let store = connect(&cfg);
    let mut obj = ObjectLog::open(store.clone(), key()).unwrap();
    assert_eq!(obj.size(), TreeSize(70_000));
    let e = entries(70_000..70_001);
    assert_eq!(local.append(&e).unwrap().checkpoint, obj.append(&e).unwrap().checkpoint);
    sizes.push(70_001);

    let files = local_files(&d.path().join("log"));
    let objects = tlog_objects(&store);
    assert!(objects.len() > 500, "{} objects", objects.len());
    assert_eq!(objects.keys().collect::<Vec<_>>(), files.keys().collect::<Vec<_>>());
    assert!(objects == files, "the bytes differ");
    // Nothing else under the prefix but the head and the archive, and nothing outside it.
    let keys = list_keys(&store, "");
    let archived: Vec<String> = keys.iter().filter(|k| k.starts_with(ARCHIVE_PREFIX)).cloned().collect();
    assert_eq!(archived, sizes.iter().map(|&s| archive_key(s)).collect::<Vec<_>>());
    assert_eq!(keys.len(), objects.len() + archived.len() + 1);
    assert!(keys.contains(&HEAD_KEY.to_owned()));
    let mut whole = cfg.clone();
    whole.prefix = String::new();
    let outside = list_keys(&S3Store::connect(whole).unwrap(), "");
    assert!(outside.iter().all(|k| k.starts_with("logs/audit/")), "{outside:?}");
    for (s, k) in sizes.iter().zip(&archived) {
        let note = store.get(k, 1 << 16).unwrap().unwrap().bytes;
        assert_eq!(open_checkpoint(std::str::from_utf8(&note).unwrap()).size(), TreeSize(*s));
    }
    // Retention: on every tile, bundle and archived checkpoint; not on the two mutable objects.
    for (k, mode) in lock_modes(&store, keys) {
        let mutable = k == CHECKPOINT_KEY || k == HEAD_KEY;
        assert!(mutable || k.starts_with("tile/") || k.starts_with(ARCHIVE_PREFIX), "{k}");
        if mutable {
            assert_eq!(mode, None, "{k}");
        } else {
            assert_eq!(mode, Some(ObjectLockMode::Governance), "{k}");
        }
    }
    assert_eq!(verify(store.clone()).unwrap(), 70_001);
    let (_, published) = read_published(store.as_ref(), &key().verifier()).unwrap().unwrap();
    assert_eq!(published.size(), TreeSize(70_001));
    eprintln!("layout test: {} objects, {:?}", objects.len(), start.elapsed());
}

/// What one racing writer saw.
#[derive(Default)]
struct Outcomes {
    /// (old size, new size, checkpoint, entries) of every append that returned `Ok`.
    acked: Vec<(u64, u64, String, Vec<Vec<u8>>)>,
    /// Entries of every append that returned `Fenced`.
    fenced: Vec<Vec<Vec<u8>>>,
    /// Other errors (of appends or of reopening), as text.
    errors: Vec<String>,
    reopens: u64,
    /// Opens that gave up with `Fenced` after their attempts.
    open_fenced: u64,
}

/// Writers on their own connections race on one bucket and prefix, reopening whenever they
/// are fenced. Every checkpoint any of them published, and every archived one, is a prefix of
/// the one final tree; no two differ at the same size; every acknowledged batch is in the log
/// where its writer was told it is; and a fenced batch is not in the log.
#[test]
fn racing_writers_on_one_bucket_never_fork() {
    const WRITERS: usize = 3;
    const RUN: Duration = Duration::from_secs(10);
    let start = Instant::now();
    let mut cfg = Seaweed::shared().bucket("log-race", true);
    cfg.prefix = "race".into();
    let barrier = Barrier::new(WRITERS);
    let rounds = AtomicU64::new(0);
    let outcomes: Vec<Outcomes> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (cfg, barrier, rounds) = (&cfg, &barrier, &rounds);
                scope.spawn(move || {
                    let store = connect(cfg);
                    let mut out = Outcomes::default();
                    let mut log = ObjectLog::open(store.clone(), key()).unwrap();
                    barrier.wait();
                    let begin = Instant::now();
                    let mut round = 0u64;
                    while begin.elapsed() < RUN {
                        round += 1;
                        rounds.fetch_add(1, Ordering::Relaxed);
                        let n = 1 + (round * 7 + w as u64 * 3) % 5;
                        let batch: Vec<Vec<u8>> = (0..n)
                            .map(|i| format!("writer {w} round {round} entry {i}").into_bytes())
                            .collect();
                        match log.append(&batch) {
                            Ok(p) => out.acked.push((p.old_size.0, p.new_size.0, p.checkpoint, batch)),
                            Err(e) => {
                                if matches!(e, LogError::Fenced) {
                                    out.fenced.push(batch);
                                } else {
                                    out.errors.push(format!("append: {e}"));
                                }
                                // Reopen (the other writers may be moving the log meanwhile).
                                loop {
                                    out.reopens += 1;
                                    match ObjectLog::open(store.clone(), key()) {
                                        Ok(l) => break log = l,
                                        // Moved on under it every time it tried: again.
                                        Err(LogError::Fenced) => out.open_fenced += 1,
                                        Err(e) => out.errors.push(format!("open: {e}")),
                                    }
                                    assert!(out.errors.len() < 5, "{:#?}", out.errors);
                                }
                            }
                        }
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let raced = start.elapsed();

    let store = connect(&cfg);
    let final_entries = log_entries(store.clone());
    let final_size = final_entries.len() as u64;
    assert_eq!(verify(store.clone()).unwrap(), final_size);

    // No two checkpoints for one size; every acknowledged batch is where it was said to be.
    let mut published: BTreeMap<u64, String> = BTreeMap::new();
    let mut acked_entries = 0;
    for o in &outcomes {
        for (old, new, cp, batch) in &o.acked {
            if let Some(prev) = published.insert(*new, cp.clone()) {
                assert_eq!(&prev, cp, "two checkpoints for size {new}");
            }
            assert_eq!(&final_entries[*old as usize..*new as usize], batch.as_slice());
            acked_entries += batch.len();
        }
    }
    // A fenced batch is not in the log: Fenced means "not committed".
    let index: HashMap<&[u8], usize> =
        final_entries.iter().enumerate().map(|(i, e)| (e.as_slice(), i)).collect();
    assert_eq!(index.len(), final_entries.len(), "an entry is in the log twice");
    let fenced_but_committed: Vec<_> = outcomes
        .iter()
        .flat_map(|o| &o.fenced)
        .filter(|b| b.iter().any(|e| index.contains_key(e.as_slice())))
        .map(|b| String::from_utf8_lossy(&b[0]).into_owned())
        .collect();

    // Every archived checkpoint too; each published one is archived.
    let archived: BTreeMap<u64, String> = list_keys(&store, ARCHIVE_PREFIX)
        .into_iter()
        .map(|k| {
            let note = String::from_utf8(store.get(&k, 1 << 16).unwrap().unwrap().bytes).unwrap();
            let size = open_checkpoint(&note).size().0;
            assert_eq!(k, archive_key(size));
            (size, note)
        })
        .collect();
    for (size, cp) in &published {
        assert_eq!(archived.get(size), Some(cp), "the checkpoint of {size} is not archived as published");
    }
    // Each is a prefix of the final tree: replaying the final entries into a local log gives a
    // byte-identical checkpoint at every archived size (signatures are deterministic) ...
    let d = tempfile::tempdir().unwrap();
    let mut replay = LocalLog::open(&d.path().join("log"), key()).unwrap();
    let mut at = 0;
    for (size, cp) in &archived {
        let p = replay.append(&final_entries[at as usize..*size as usize]).unwrap();
        at = *size;
        assert_eq!(&p.checkpoint, cp, "the archived checkpoint of size {size} is not of the final tree");
    }
    // ... and the verifier, holding each published checkpoint, proves the final log consistent
    // with it.
    let mut f = StoreFetch::new(store.clone());
    for (i, cp) in published.values().enumerate() {
        let trusted = open_checkpoint(cp);
        let mode = if i % 25 == 0 { Mode::Full } else { Mode::Incremental };
        let v = verify_log_since(&mut f, &key().verifier(), None, Some(&trusted), mode, |_, _| {}).unwrap();
        assert_eq!(v.checkpoint().size().0, final_size);
    }

    let acked: usize = outcomes.iter().map(|o| o.acked.len()).sum();
    let fenced: usize = outcomes.iter().map(|o| o.fenced.len()).sum();
    let reopens: u64 = outcomes.iter().map(|o| o.reopens).sum();
    let open_fenced: u64 = outcomes.iter().map(|o| o.open_fenced).sum();
    let errors: Vec<&String> = outcomes.iter().flat_map(|o| &o.errors).collect();
    eprintln!(
        "race: {WRITERS} writers, {} rounds, {acked} acknowledged appends ({acked_entries} entries), {fenced} \
         fenced, {reopens} reopens ({open_fenced} gave up fenced), final size {final_size}, {} checkpoints published, {} archived, \
         fenced but committed: {fenced_but_committed:?}, other errors: {errors:?}; race {raced:?}, total {:?}",
        rounds.load(Ordering::Relaxed),
        published.len(),
        archived.len(),
        start.elapsed()
    );
    assert!(errors.is_empty(), "errors other than Fenced: {errors:#?}");
    assert!(
        fenced_but_committed.is_empty(),
        "appends answered Fenced were committed: {fenced_but_committed:?}"
    );
    assert!(fenced > 0, "the writers never fenced each other");
    assert!(acked >= 100, "only {acked} appends were acknowledged");
}

/// An S3 store that fails every put after a budget of them, around the real server: a failed
/// put is either not sent, or (with `land`) sent and its answer "lost".
#[derive(Debug)]
struct FailingStore {
    inner: Arc<S3Store>,
    puts_left: AtomicU64,
    land: AtomicBool,
    puts: AtomicU64,
}

impl FailingStore {
    /// After `n` more puts, every put fails.
    fn fail_after(&self, n: u64) {
        self.puts_left.store(n, Ordering::SeqCst);
    }

    fn new(inner: Arc<S3Store>, budget: u64, land: bool) -> Self {
        FailingStore {
            inner,
            puts_left: AtomicU64::new(budget),
            land: AtomicBool::new(land),
            puts: AtomicU64::new(0),
        }
    }
}

impl ObjectStore for FailingStore {
    fn get(&self, key: &str, limit: u64) -> Result<Option<Object>, StoreError> {
        self.inner.get(key, limit)
    }

    fn put(&self, key: &str, data: &[u8], cond: Cond<'_>, retain: bool) -> Result<String, StoreError> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        let fail =
            self.puts_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err();
        if !fail {
            return self.inner.put(key, data, cond, retain);
        }
        let mut msg = "injected failure".to_owned();
        if self.land.load(Ordering::SeqCst) {
            let r = self.inner.put(key, data, cond, retain);
            msg = format!("injected lost reply (the put said {r:?})");
        }
        Err(StoreError::Io { op: "writing", key: key.to_owned(), msg })
    }

    // The trait's sequential put_immutable_all, through `put`, so every put is counted.

    fn first_key_after(&self, prefix: &str, after: &str) -> Result<Option<String>, StoreError> {
        self.inner.first_key_after(prefix, after)
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

/// A writer commits the head and "dies": every later put fails. The next writer, on a clean
/// connection, finishes the batch with exactly the bytes the local log writes for it.
#[test]
fn a_committed_head_is_finished_by_the_next_writer_on_s3() {
    let start = Instant::now();
    let mut cfg = Seaweed::shared().bucket("log-recover", true);
    cfg.prefix = "recover".into();
    let store = connect(&cfg);
    let d = tempfile::tempdir().unwrap();
    let mut local = LocalLog::open(&d.path().join("log"), key()).unwrap();
    let mut log = ObjectLog::open(store.clone(), key()).unwrap();
    let first = entries(0..100);
    assert_eq!(log.append(&first).unwrap().checkpoint, local.append(&first).unwrap().checkpoint);
    drop(log);

    let dying = Arc::new(FailingStore::new(store.clone(), u64::MAX, false));
    let mut log = ObjectLog::open_with(dying.clone(), key(), Retry::default()).unwrap();
    // The head write lands; every later put fails.
    dying.fail_after(1);
    let before = dying.puts.load(Ordering::SeqCst);
    let e = log.append(&entries(100..900)).unwrap_err();
    assert!(matches!(e, LogError::Store(StoreError::Io { .. })), "{e}");
    assert!(dying.puts.load(Ordering::SeqCst) > before + 1, "the append stopped at the head");
    // The head moved; nothing else did.
    assert_eq!(read_published(store.as_ref(), &key().verifier()).unwrap().unwrap().1.size(), TreeSize(100));
    assert!(store.get(&archive_key(900), 1 << 16).unwrap().is_none());

    let store = connect(&cfg);
    let mut next = ObjectLog::open(store.clone(), key()).unwrap();
    assert_eq!(next.size(), TreeSize(900));
    let p = local.append(&entries(100..900)).unwrap();
    assert_eq!(next.checkpoint(), Some(p.checkpoint.as_str()));
    assert!(tlog_objects(&store) == local_files(&d.path().join("log")), "the finished batch differs");
    assert_eq!(verify(store.clone()).unwrap(), 900);
    let e = entries(900..901);
    assert_eq!(next.append(&e).unwrap().checkpoint, local.append(&e).unwrap().checkpoint);
    assert_eq!(verify(store.clone()).unwrap(), 901);
    eprintln!("recovery test: {:?}", start.elapsed());
}

/// A failure at every put of an append of 300 entries onto 300 (opening included), both
/// when the request is not sent and when it lands but its answer is lost. After each: an
/// acknowledged append is present, and the next writer opens, completes whatever was
/// committed, and the log verifies at the old or the new size and goes on.
#[test]
fn a_failure_at_every_put_keeps_every_acknowledged_entry_on_s3() {
    let start = Instant::now();
    let cfg = Seaweed::shared().bucket("log-every-put", true);
    let fast = Retry { attempts: 2, first_wait: Duration::from_millis(1) };
    let mut summary = Vec::new();
    for land in [false, true] {
        let mut step = 0;
        let mut outcomes = [0usize; 2];
        loop {
            let mut cfg = cfg.clone();
            cfg.prefix = format!("land-{land}/step-{step}");
            let store = connect(&cfg);
            ObjectLog::open(store.clone(), key()).unwrap().append(&entries(0..300)).unwrap();
            let failing = Arc::new(FailingStore::new(store.clone(), step, land));
            let acked = match ObjectLog::open_with(failing.clone(), key(), fast) {
                Ok(mut log) => log.append(&entries(300..600)).is_ok(),
                Err(_) => false,
            };
            let mut next = ObjectLog::open(store.clone(), key()).unwrap();
            let size = next.size().0;
            if acked {
                assert_eq!(size, 600, "land={land} step {step}: an acknowledged append was lost");
            } else {
                assert!(size == 300 || size == 600, "land={land} step {step}: size {size}");
            }
            assert_eq!(verify(store.clone()).unwrap(), size, "land={land} step {step}");
            outcomes[usize::from(size == 600)] += 1;
            next.append(&entries(size..size + 70)).unwrap();
            assert_eq!(verify(store.clone()).unwrap(), size + 70, "land={land} step {step}");
            if acked {
                break;
            }
            step += 1;
            assert!(step < 100, "the append never finished");
        }
        assert!(step >= 5, "expected several failure points, got {step}");
        assert!(outcomes[1] > 0, "land={land}: outcomes {outcomes:?}");
        summary.push((land, step, outcomes));
    }
    eprintln!(
        "every-put test: (land, failure points, [old, new] outcomes) {summary:?}, {:?}",
        start.elapsed()
    );
}

/// The versions of one key: (version id, is a delete marker, is the current version).
fn versions(s: &S3Store, key: &str) -> Vec<(String, bool, bool)> {
    let cfg = s.config().clone();
    let full = cfg.full_key(key);
    let c = s.client().clone();
    s.run(async move {
        let out = c.list_object_versions().bucket(&cfg.bucket).prefix(&full).send().await.unwrap();
        let mut v = Vec::new();
        for o in out.versions() {
            if o.key() == Some(full.as_str()) {
                v.push((o.version_id().unwrap().to_owned(), false, o.is_latest() == Some(true)));
            }
        }
        for m in out.delete_markers() {
            if m.key() == Some(full.as_str()) {
                v.push((m.version_id().unwrap().to_owned(), true, m.is_latest() == Some(true)));
            }
        }
        v
    })
    .unwrap()
}

/// A tile overwritten with a plain PutObject (a new current version), and a bundle deleted (a
/// delete marker): the verifier names each, the next writer refuses the damaged right edge,
/// and the retained original versions are intact and restore the log.
#[test]
fn tampering_is_detected_and_the_retained_versions_restore_the_log() {
    let start = Instant::now();
    let mut cfg = Seaweed::shared().bucket("log-tamper", true);
    cfg.prefix = "tamper".into();
    let store = connect(&cfg);
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(0..600)).unwrap();
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(600..610)).unwrap();
    assert_eq!(verify(store.clone()).unwrap(), 610);
    // The right edge of size 610 is read from tile/1/000.p/2 (the level-1 hashes of the two
    // full level-0 tiles) and tile/0/002.p/98; tile/entries/001 is the second full bundle.
    let (overwritten, deleted) = ("tile/1/000.p/2", "tile/entries/001");
    let original: HashMap<&str, Vec<u8>> = [overwritten, deleted]
        .into_iter()
        .map(|k| (k, store.get(k, 1 << 20).unwrap().unwrap().bytes))
        .collect();
    assert_eq!(original[overwritten].len(), 64);

    let raw = |op: &'static str, k: &str, version: Option<String>| {
        let (c, b, full) = (store.client().clone(), cfg.bucket.clone(), cfg.full_key(k));
        store
            .run(async move {
                match op {
                    "put" => {
                        let body = aws_sdk_s3::primitives::ByteStream::from(vec![0u8; 64]);
                        c.put_object()
                            .bucket(&b)
                            .key(&full)
                            .body(body)
                            .send()
                            .await
                            .map(|_| Vec::new())
                            .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
                    }
                    "delete" => c
                        .delete_object()
                        .bucket(&b)
                        .key(&full)
                        .send()
                        .await
                        .map(|_| Vec::new())
                        .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e))),
                    "get" => {
                        let o = c
                            .get_object()
                            .bucket(&b)
                            .key(&full)
                            .set_version_id(version)
                            .send()
                            .await
                            .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
                        Ok(o.body.collect().await.unwrap().into_bytes().to_vec())
                    }
                    "retention" => {
                        let r = c
                            .get_object_retention()
                            .bucket(&b)
                            .key(&full)
                            .set_version_id(version)
                            .send()
                            .await
                            .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
                        Ok(format!("{:?}", r.retention().and_then(|r| r.mode())).into_bytes())
                    }
                    "restore" => {
                        let source = format!("{b}/{full}?versionId={}", version.unwrap());
                        c.copy_object()
                            .bucket(&b)
                            .key(&full)
                            .copy_source(source)
                            .send()
                            .await
                            .map(|_| Vec::new())
                            .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
                    }
                    _ => unreachable!(),
                }
            })
            .unwrap()
    };

    // 1. A committed tile replaced: a new current version with other bytes.
    raw("put", overwritten, None).unwrap();
    assert_eq!(store.get(overwritten, 100).unwrap().unwrap().bytes, vec![0u8; 64]);
    let e = verify(store.clone()).unwrap_err();
    assert!(e.to_string().contains(overwritten), "{e}");
    let e = ObjectLog::open(store.clone(), key()).unwrap_err();
    assert!(matches!(e, LogError::RootMismatch | LogError::Tiles(_)), "{e}");
    let e = read_published(store.as_ref(), &key().verifier()).unwrap_err();
    assert!(matches!(e, LogError::RootMismatch | LogError::Tiles(_)), "{e}");

    // 2. A committed bundle deleted: a delete marker.
    raw("delete", deleted, None).unwrap();
    assert_eq!(store.get(deleted, 1 << 20).unwrap(), None);
    let e = verify(store.clone()).unwrap_err();
    // The first damage the verifier meets is named; restore the tile first to see the bundle.
    assert!(e.to_string().contains(overwritten) || e.to_string().contains(deleted), "{e}");

    // The originals are retained versions, byte for byte what Graven wrote, and restore.
    for (k, marker_expected) in [(overwritten, false), (deleted, true)] {
        let v = versions(&store, k);
        assert_eq!(v.len(), 2, "{k}: {v:?}");
        // One current version (the replacement, or the delete marker) and the original.
        let current: Vec<_> = v.iter().filter(|(_, _, latest)| *latest).collect();
        assert_eq!(current.len(), 1, "{k}: {v:?}");
        assert_eq!(current[0].1, marker_expected, "{k}: {v:?}");
        let (orig, _, _) = v.iter().find(|(_, marker, latest)| !marker && !latest).unwrap();
        assert_eq!(raw("get", k, Some(orig.clone())).unwrap(), original[k], "{k}");
        let mode = String::from_utf8(raw("retention", k, Some(orig.clone())).unwrap()).unwrap();
        assert!(mode.contains("Governance"), "{k}: {mode}");
        if k == overwritten {
            // With the tile restored, the deleted bundle is what the verifier names.
            raw("restore", k, Some(orig.clone())).unwrap();
            let e = verify(store.clone()).unwrap_err();
            assert!(
                matches!(&e, VerifyError::Missing { path, .. } if path == deleted)
                    || e.to_string().contains(deleted),
                "{e}"
            );
            // The right edge is whole again: a writer opens (the bundle is not on it).
            assert_eq!(ObjectLog::open(store.clone(), key()).unwrap().size(), TreeSize(610));
        } else {
            raw("restore", k, Some(orig.clone())).unwrap();
        }
        assert_eq!(store.get(k, 1 << 20).unwrap().unwrap().bytes, original[k], "{k}");
    }
    assert_eq!(verify(store.clone()).unwrap(), 610);
    let mut log = ObjectLog::open(store.clone(), key()).unwrap();
    log.append(&entries(610..700)).unwrap();
    assert_eq!(verify(store.clone()).unwrap(), 700);
    eprintln!("tamper test: {:?}", start.elapsed());
}
