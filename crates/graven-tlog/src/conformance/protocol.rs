//! The object-store log ([`ObjectLog`]) on a store under test, one function per property: the
//! local log's layout byte for byte with retention on exactly the immutable objects, reopening,
//! recovery of a half-finished commit, a failure at every put, writers racing and taking turns
//! without ever forking, other writers acting between two requests of an open or an append,
//! and tampering (a replaced tile, a deleted or rolled-back head) refused rather than forked.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::hash::TreeSize;
use graven_core::note::SignerKey;
use graven_verify::{Mode, VerifyError, verify_log, verify_log_since, verify_log_since_visiting};

use super::backend::Backend;
use super::wrappers::{Failing, Hooked, Op};
use crate::error::LogError;
use crate::local::LocalLog;
use crate::objlog::{
    ARCHIVE_PREFIX, CHECKPOINT_KEY, HEAD_KEY, ObjectLog, Retry, archive_key, read_published,
};
use crate::objstore::{Cond, ObjectStore, StoreError, StoreFetch};

const ORIGIN: &str = "test.example/log";

fn key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [42; 32]).unwrap()
}

fn entries(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(|i| format!("entry-{i}").into_bytes()).collect()
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

/// The files of a local log, by path relative to its directory (not the lock file).
fn local_files(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                if !rel.starts_with('.') {
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The tlog-tiles objects (not Graven's own `graven/` objects) in the store.
fn tlog_objects<B: Backend>(b: &B, s: &B::Store) -> BTreeMap<String, Vec<u8>> {
    b.keys(s)
        .into_iter()
        .filter(|k| !k.starts_with("graven/"))
        .map(|k| {
            let v = s.get(&k, 1 << 30).unwrap().unwrap().bytes;
            (k, v)
        })
        .collect()
}

/// The same appends, from an empty first one across tile and bundle boundaries, into a local
/// log and into an object log: the same checkpoints and leaf hashes, the same tlog files byte
/// for byte, every checkpoint archived, retention exactly on the immutable objects, and a log
/// that verifies and that a new writer on a new connection continues.
pub fn the_layout_is_the_local_layout_byte_for_byte(b: &impl Backend) {
    let store = b.fresh("log-layout");
    let d = tempfile::tempdir().unwrap();
    let mut local = LocalLog::open(&d.path().join("log"), key()).unwrap();
    let mut obj = ObjectLog::open(store.clone(), key()).unwrap();
    let mut sizes = vec![];
    for (a, z) in [(0, 0), (0, 1), (1, 255), (255, 256), (256, 700), (700, 70_000)] {
        let e = entries(a..z);
        let p1 = local.append(&e).unwrap();
        let p2 = obj.append(&e).unwrap();
        assert_eq!(p1.checkpoint, p2.checkpoint, "after {z}");
        assert_eq!(p1.leaf_hashes, p2.leaf_hashes, "after {z}");
        assert_eq!((p2.old_size, p2.new_size), (TreeSize(a), TreeSize(z)));
        sizes.push(z);
    }
    drop(obj);
    // A new writer, on a new connection, continues where the first stopped.
    let store = b.reconnect(&store);
    let mut obj = ObjectLog::open(store.clone(), key()).unwrap();
    assert_eq!(obj.size(), TreeSize(70_000));
    let e = entries(70_000..70_001);
    let (p1, p2) = (local.append(&e).unwrap(), obj.append(&e).unwrap());
    assert_eq!((p1.checkpoint, p1.leaf_hashes), (p2.checkpoint, p2.leaf_hashes));
    sizes.push(70_001);

    let files = local_files(&d.path().join("log"));
    let objects = tlog_objects(b, &store);
    assert!(objects.len() > 500, "{} objects", objects.len());
    assert_eq!(objects.keys().collect::<Vec<_>>(), files.keys().collect::<Vec<_>>());
    assert!(objects == files, "the bytes differ");
    // Nothing else but the head and the archive.
    let keys = b.keys(&store);
    let archived: Vec<String> = keys.iter().filter(|k| k.starts_with(ARCHIVE_PREFIX)).cloned().collect();
    assert_eq!(archived, sizes.iter().map(|&s| archive_key(s)).collect::<Vec<_>>());
    assert_eq!(keys.len(), objects.len() + archived.len() + 1);
    assert!(keys.contains(&HEAD_KEY.to_owned()));
    for (s, k) in sizes.iter().zip(&archived) {
        let note = store.get(k, 1 << 16).unwrap().unwrap().bytes;
        assert_eq!(open_checkpoint(std::str::from_utf8(&note).unwrap()).size(), TreeSize(*s));
    }
    // Retention: on every tile, bundle and archived checkpoint; not on the two mutable objects.
    for k in &keys {
        let mutable = k == CHECKPOINT_KEY || k == HEAD_KEY;
        assert!(mutable || k.starts_with("tile/") || k.starts_with(ARCHIVE_PREFIX), "{k}");
        assert_eq!(b.retained(&store, k), !mutable, "{k}");
    }
    assert_eq!(verify(store.clone()).unwrap(), 70_001);
    let (_, published) = read_published(store.as_ref(), &key().verifier()).unwrap().unwrap();
    assert_eq!(published.size(), TreeSize(70_001));
}

/// A second writer opens where the first stopped; a writer with another key is refused; a
/// store with a checkpoint but no head is not an object log.
pub fn reopening_continues_the_log_and_another_key_is_refused(b: &impl Backend) {
    let store = b.fresh("reopen");
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(0..300)).unwrap();
    let mut log = ObjectLog::open(b.reconnect(&store), key()).unwrap();
    assert_eq!(log.size(), TreeSize(300));
    log.append(&entries(300..301)).unwrap();
    assert_eq!(verify(store.clone()).unwrap(), 301);
    let other = SignerKey::from_seed(ORIGIN, [7; 32]).unwrap();
    assert!(matches!(ObjectLog::open(store.clone(), other), Err(LogError::Checkpoint(_))));
    // A store with a checkpoint but no head is not ours.
    let foreign = b.fresh("foreign");
    foreign.put(CHECKPOINT_KEY, b"x", Cond::Any, false).unwrap();
    assert!(matches!(ObjectLog::open(foreign, key()), Err(LogError::NotAnObjectLog(_))));
}

/// A writer commits the head and "dies": every later put fails. The next writer, on a clean
/// connection, finishes the batch with exactly the bytes the local log writes for it, the
/// entries it never acknowledged included.
pub fn a_committed_head_is_finished_by_the_next_writer(b: &impl Backend) {
    let store = b.fresh("log-recover");
    let d = tempfile::tempdir().unwrap();
    let mut local = LocalLog::open(&d.path().join("log"), key()).unwrap();
    let mut log = ObjectLog::open(store.clone(), key()).unwrap();
    let first = entries(0..100);
    assert_eq!(log.append(&first).unwrap().checkpoint, local.append(&first).unwrap().checkpoint);
    drop(log);

    let dying = Arc::new(Failing::new(store.clone(), u64::MAX, false));
    let mut log = ObjectLog::open_with(dying.clone(), key(), Retry::default()).unwrap();
    // The head write lands; every later put fails.
    dying.fail_after(1);
    let before = dying.puts();
    let e = log.append(&entries(100..900)).unwrap_err();
    assert!(matches!(e, LogError::Store(StoreError::Io { .. })), "{e}");
    assert!(dying.puts() > before + 1, "the append stopped at the head");
    // The head moved; nothing else did.
    assert_eq!(read_published(store.as_ref(), &key().verifier()).unwrap().unwrap().1.size(), TreeSize(100));
    assert!(store.get(&archive_key(900), 1 << 16).unwrap().is_none());

    let store = b.reconnect(&store);
    let mut next = ObjectLog::open(store.clone(), key()).unwrap();
    assert_eq!(next.size(), TreeSize(900));
    let p = local.append(&entries(100..900)).unwrap();
    assert_eq!(next.checkpoint(), Some(p.checkpoint.as_str()));
    assert!(tlog_objects(b, &store) == local_files(&d.path().join("log")), "the finished batch differs");
    assert_eq!(verify(store.clone()).unwrap(), 900);
    let e = entries(900..901);
    assert_eq!(next.append(&e).unwrap().checkpoint, local.append(&e).unwrap().checkpoint);
    assert_eq!(verify(store.clone()).unwrap(), 901);
}

/// A tile of the committed tree replaced behind the writer's back is found before anything
/// is appended, and by the verifier and a replica, naming it.
pub fn a_tampered_tile_stops_the_next_writer(b: &impl Backend) {
    let store = b.fresh("tampered-tile");
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(0..600)).unwrap();
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(600..610)).unwrap();
    // The right edge of size 610 is read from the level-1 tile of two hashes.
    b.tamper(&store, "tile/1/000.p/2", Some(&[0u8; 64]));
    let e = ObjectLog::open(store.clone(), key()).unwrap_err();
    assert!(matches!(e, LogError::RootMismatch | LogError::Tiles(_)), "{e}");
    let e = read_published(store.as_ref(), &key().verifier()).unwrap_err();
    assert!(matches!(e, LogError::RootMismatch | LogError::Tiles(_)), "{e}");
    let e = verify(store.clone()).unwrap_err();
    assert!(e.to_string().contains("tile/1/000.p/2"), "{e}");
}

/// A failure at every put of an append onto 300 entries (opening included), both when the
/// request is not sent and when it lands but its answer is lost. After each: an acknowledged
/// append is present, and the next writer opens, completes whatever was committed, and the
/// log verifies at the old or the new size and goes on. Each failure point is its own store,
/// so a few of them run at once.
pub fn a_failure_at_every_put_keeps_every_acknowledged_entry(b: &impl Backend) {
    /// Failure points tried at the same time.
    const AT_ONCE: u64 = 4;
    let end = 300 + b.profile().every_put_batch;
    for land in [false, true] {
        let mut outcomes = [0usize; 2];
        let mut first_acked = None;
        let mut from = 0;
        while first_acked.is_none() {
            let results: Vec<(u64, bool, u64)> = std::thread::scope(|scope| {
                let runs: Vec<_> = (from..from + AT_ONCE)
                    .map(|step| scope.spawn(move || (step, fail_at_put(b, land, step, end))))
                    .collect();
                runs.into_iter()
                    .map(|r| r.join().unwrap())
                    .map(|(step, (acked, size))| (step, acked, size))
                    .collect()
            });
            // In order, up to the first failure point the append survived (the ones after it,
            // run alongside, passed the same checks).
            for (step, acked, size) in results {
                if first_acked.is_none() {
                    outcomes[usize::from(size == end)] += 1;
                    if acked {
                        first_acked = Some(step);
                    }
                }
            }
            from += AT_ONCE;
            assert!(from < 100 + AT_ONCE, "the append never finished");
        }
        let step = first_acked.unwrap_or(u64::MAX);
        assert!(step < 100, "the append never finished");
        assert!(step >= 5, "expected several failure points, got {step}");
        assert!(outcomes[1] > 0, "land={land}: outcomes {outcomes:?}");
        eprintln!(
            "every put: land={land}: acknowledged from failure point {step} on; [old, new] sizes {outcomes:?}"
        );
    }
}

/// One failure point of [`a_failure_at_every_put_keeps_every_acknowledged_entry`]: every put
/// from the `step`-th on fails. Whether the append was acknowledged, and the size the next
/// writer found.
fn fail_at_put(b: &impl Backend, land: bool, step: u64, end: u64) -> (bool, u64) {
    let fast = Retry { attempts: 2, first_wait: Duration::from_millis(1) };
    let store = b.fresh(&format!("every-put-{land}-{step}"));
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(0..300)).unwrap();
    let failing = Arc::new(Failing::new(store.clone(), step, land));
    let acked = match ObjectLog::open_with(failing, key(), fast) {
        Ok(mut log) => log.append(&entries(300..end)).is_ok(),
        Err(_) => false,
    };
    let mut next = ObjectLog::open(store.clone(), key()).unwrap();
    let size = next.size().0;
    if acked {
        assert_eq!(size, end, "land={land} step {step}: an acknowledged append was lost");
    } else {
        assert!(size == 300 || size == end, "land={land} step {step}: size {size}");
    }
    assert_eq!(verify(store.clone()).unwrap(), size, "land={land} step {step}");
    next.append(&entries(size..size + 70)).unwrap();
    assert_eq!(verify(store.clone()).unwrap(), size + 70, "land={land} step {step}");
    (acked, size)
}

/// Two writers on their own connections take turns in a seeded order, each reopening when
/// fenced: every checkpoint either one published is a prefix of the one final tree (the
/// verifier proves it consistent), and no two differ at the same size. Deterministic: a
/// failure replays exactly.
pub fn writers_taking_turns_never_fork(b: &impl Backend) {
    let store = b.fresh("turns");
    let handles = [store.clone(), b.reconnect(&store)];
    let mut writers = handles.clone().map(|s| ObjectLog::open(s, key()).unwrap());
    let rounds = b.profile().turns;
    let mut published: BTreeMap<u64, String> = BTreeMap::new();
    let mut fenced = 0;
    let mut seed = 12345u64;
    let mut next = 0u64;
    for _ in 0..rounds {
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
                writers[w] = ObjectLog::open(handles[w].clone(), key()).unwrap();
                next = writers[w].size().0;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(fenced > rounds / 8, "the writers should have fenced each other often, got {fenced}");
    let final_size = verify(store.clone()).unwrap();
    let mut f = StoreFetch::new(store.clone());
    for (size, cp) in &published {
        assert!(*size <= final_size);
        // Each published checkpoint verifies against the final tree (consistency).
        let trusted = open_checkpoint(cp);
        verify_log_since(&mut f, &key().verifier(), None, Some(&trusted), Mode::Full, |_, _| {}).unwrap();
    }
    assert!(store.get(HEAD_KEY, 1 << 30).unwrap().is_some());
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

/// Writers on their own threads and connections race on one store, reopening whenever they
/// are fenced. Every checkpoint any of them published, and every archived one, is a prefix of
/// the one final tree; no two differ at the same size; every acknowledged batch is in the log
/// where its writer was told it is; a fenced batch is not in the log; and nothing fails but
/// with `Fenced`.
pub fn racing_writers_never_fork(b: &impl Backend) {
    let profile = b.profile();
    let writers = profile.race_writers;
    let start = Instant::now();
    let store = b.fresh("log-race");
    let barrier = Barrier::new(writers);
    let rounds = AtomicU64::new(0);
    // Fences so far, of all writers: each goes on past its rounds (within the time) until the
    // writers have fenced one another, which a fast store on a busy machine may take a while to
    // do.
    let fences = AtomicU64::new(0);
    let outcomes: Vec<Outcomes> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (store, barrier, rounds, fences) = (&store, &barrier, &rounds, &fences);
                scope.spawn(move || {
                    let store = b.reconnect(store);
                    let mut out = Outcomes::default();
                    let mut log = ObjectLog::open(store.clone(), key()).unwrap();
                    barrier.wait();
                    let begin = Instant::now();
                    let mut round = 0u64;
                    while begin.elapsed() < profile.race_for
                        && (round < profile.race_rounds || fences.load(Ordering::SeqCst) == 0)
                    {
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
                                    fences.fetch_add(1, Ordering::SeqCst);
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

    let store = b.reconnect(&store);
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
    let archived: BTreeMap<u64, String> = b
        .keys(&store)
        .into_iter()
        .filter(|k| k.starts_with(ARCHIVE_PREFIX))
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
    // byte-identical checkpoint at every archived size (signatures are deterministic; the
    // local log is on the simulated disk, as only its checkpoints matter here) ...
    let disk = Arc::new(graven_fs::sim::SimFs::new());
    let mut replay = LocalLog::open_with(disk, std::path::Path::new("/log"), key()).unwrap();
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
        "race: {writers} writers, {} rounds, {acked} acknowledged appends ({acked_entries} entries), {fenced} \
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
    assert!(acked >= profile.race_min_acked, "only {acked} appends were acknowledged");
}

/// A writer that opens the log while another appends to it (a standby taking over, or a
/// fenced writer reopening) may find the public checkpoint ahead of the head it read: the
/// log moved on, which is no sign of tampering. It opens at the newer head.
pub fn opening_while_another_writer_appends_is_no_alarm(b: &impl Backend) {
    let store = b.fresh("open-while-append");
    let mut a = ObjectLog::open(store.clone(), key()).unwrap();
    a.append(&entries(0..10)).unwrap();
    // B reads the head (size 10) and its tiles; before B reads the public checkpoint, A
    // appends and publishes size 20.
    let hooked = Arc::new(Hooked::new(b.reconnect(&store), Op::Get, CHECKPOINT_KEY));
    hooked.set(move || {
        a.append(&entries(10..20)).unwrap();
    });
    let mut other = ObjectLog::open(hooked.clone(), key()).unwrap();
    assert!(hooked.ran());
    assert_eq!(other.size(), TreeSize(20));
    other.append(&entries(20..25)).unwrap();
    assert_eq!(verify(store).unwrap(), 25);
}

/// A writer that opens the log reads the head, then lists the archive past it (the
/// high-water mark). Another writer that commits and archives a batch between those two reads
/// is the log moving on, not a rollback: the opener starts over from the newer head.
pub fn opening_while_another_writer_commits_is_no_rollback(b: &impl Backend) {
    let store = b.fresh("open-while-commit");
    let mut a = ObjectLog::open(store.clone(), key()).unwrap();
    a.append(&entries(0..10)).unwrap();
    // B reads the head (size 10); before B lists the archive, A commits and archives 10..20.
    let hooked = Arc::new(Hooked::new(b.reconnect(&store), Op::List, ARCHIVE_PREFIX));
    hooked.set(move || {
        a.append(&entries(10..20)).unwrap();
    });
    let mut other = ObjectLog::open(hooked.clone(), key()).unwrap();
    assert!(hooked.ran());
    assert_eq!(other.size(), TreeSize(20));
    other.append(&entries(20..25)).unwrap();
    assert_eq!(verify(store).unwrap(), 25);
}

/// Two writers that open an empty store at once: while one finds no head, the other starts
/// the log (head, tiles, archive, checkpoint). The first then sees a checkpoint, or an archived
/// one, without the head it read as missing; that is the log starting, not a foreign prefix or
/// a deleted head: it opens the new log.
pub fn opening_an_empty_store_while_another_writer_starts_the_log_is_no_alarm(b: &impl Backend) {
    // Between the missing head and the read of the public checkpoint; then between that and
    // the listing of the archive.
    for (op, at) in [(Op::Get, CHECKPOINT_KEY), (Op::List, ARCHIVE_PREFIX)] {
        let store = b.fresh("open-while-start");
        let hooked = Arc::new(Hooked::new(b.reconnect(&store), op, at));
        let first = store.clone();
        hooked.set(move || {
            ObjectLog::open(first, key()).unwrap().append(&entries(0..10)).unwrap();
        });
        let mut other = ObjectLog::open(hooked.clone(), key()).unwrap_or_else(|e| panic!("{op:?} {at}: {e}"));
        assert!(hooked.ran(), "{op:?} {at}");
        assert_eq!(other.size(), TreeSize(10), "{op:?} {at}");
        other.append(&entries(10..15)).unwrap();
        assert_eq!(verify(store).unwrap(), 15);
    }
}

/// A writer whose batch is committed, but which another writer overtakes before it publishes
/// its checkpoint: the other writer finishes the batch and publishes past it. The batch is in
/// the log, so the append is acknowledged (never answered `Fenced`, which says the entries
/// are not in the log); the overtaken writer is fenced from then on.
pub fn a_committed_batch_overtaken_before_publication_is_acknowledged(b: &impl Backend) {
    let store = b.fresh("overtaken");
    let hooked = Arc::new(Hooked::new(store.clone(), Op::Put, CHECKPOINT_KEY));
    let mut a = ObjectLog::open(hooked.clone(), key()).unwrap();
    a.append(&entries(0..10)).unwrap();
    // After A commits 10..20, before it replaces the public checkpoint: B opens (finishing
    // A's batch) and appends 20..25.
    let inner = b.reconnect(&store);
    hooked.set(move || {
        let mut other = ObjectLog::open(inner, key()).unwrap();
        assert_eq!(other.size(), TreeSize(20));
        other.append(&entries(20..25)).unwrap();
    });
    let p = a.append(&entries(10..20)).unwrap();
    assert!(hooked.ran());
    assert_eq!((p.old_size, p.new_size), (TreeSize(10), TreeSize(20)));
    assert_eq!(store.get(&archive_key(20), 1 << 20).unwrap().unwrap().bytes, p.checkpoint.as_bytes());
    assert!(a.is_fenced());
    assert!(matches!(a.append(&entries(25..26)), Err(LogError::Fenced)));
    assert_eq!(verify(store).unwrap(), 25);
}

/// The two objects that change are not locked, so someone holding the store's credentials can
/// delete them (a delete marker) or put old versions back. Neither may make the log's own key
/// sign a fork: a writer refuses to start a new log where archived checkpoints exist, and to
/// continue from a head older than the newest archived checkpoint.
pub fn a_deleted_or_rolled_back_head_is_refused_not_forked(b: &impl Backend) {
    let store = b.fresh("rollback");
    let mut log = ObjectLog::open(store.clone(), key()).unwrap();
    log.append(&entries(0..100)).unwrap();
    let old_head = store.get(HEAD_KEY, 1 << 30).unwrap().unwrap().bytes;
    let old_cp = store.get(CHECKPOINT_KEY, 1 << 20).unwrap().unwrap().bytes;
    log.append(&entries(100..200)).unwrap();
    drop(log);

    // Deleted: no head, no checkpoint.
    b.tamper(&store, HEAD_KEY, None);
    b.tamper(&store, CHECKPOINT_KEY, None);
    let e = ObjectLog::open(store.clone(), key()).unwrap_err();
    assert!(e.to_string().contains("head was deleted"), "{e}");

    // Rolled back: the old head and checkpoint put back.
    b.tamper(&store, HEAD_KEY, Some(&old_head));
    b.tamper(&store, CHECKPOINT_KEY, Some(&old_cp));
    let e = ObjectLog::open(store.clone(), key()).unwrap_err();
    assert!(e.to_string().contains("rolled back"), "{e}");
}

/// Results of pipelined submissions, in the order their `done` ran.
type Acks = Arc<std::sync::Mutex<Vec<(usize, Result<crate::writer::Published, String>)>>>;

fn ack_into(acks: &Acks, n: usize) -> crate::writer::OnPublished {
    let acks = acks.clone();
    Box::new(move |r| acks.lock().unwrap().push((n, r.map_err(|e| e.to_string()))))
}

/// Pipelined commits: three batches committed while the publishing thread is held at its
/// first write. Nothing is acknowledged before a checkpoint covering it is published; the
/// head carries every entry whose objects are not written; once let go, the first batch is
/// published alone and the next two together, with one checkpoint, one archive and the
/// partial objects of that size (some written by the middle batch: it completes a level-0
/// tile, so the level-1 partial tile of the newest size is its, the last batch leaving level 1
/// as it was), none of the size in between, which was never published; the log verifies and a
/// plain writer goes on from it.
pub fn pipelined_commits_acknowledge_only_what_is_published(b: &impl Backend) {
    use crate::pipeline::PipelinedLog;
    use crate::writer::LogWriter;
    let store = b.fresh("pipelined");
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(0..300)).unwrap();
    let gate = Arc::new(super::wrappers::Gate::new(store.clone(), HEAD_KEY));
    let mut log = PipelinedLog::new(ObjectLog::open(gate.clone(), key()).unwrap()).unwrap();
    let _open = super::wrappers::OpenOnDrop(gate.clone());
    gate.close();
    let acks: Acks = Default::default();
    let batches = [entries(300..310), entries(310..520), entries(520..530)];
    for (n, batch) in batches.iter().enumerate() {
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        log.submit(&refs, ack_into(&acks, n)).unwrap();
        if n == 0 {
            assert!(gate.wait_for_held(1), "the publishing thread never reached the store");
        }
    }
    assert_eq!(log.size(), TreeSize(530));
    assert!(acks.lock().unwrap().is_empty(), "acknowledged before publication");
    let head = crate::objlog::Head::parse(&store.get(HEAD_KEY, 1 << 30).unwrap().unwrap().bytes).unwrap();
    assert_eq!(
        (head.from, head.to),
        (TreeSize(300), TreeSize(530)),
        "the head carries every unwritten entry"
    );
    assert_eq!(head.entries, entries(300..530));
    assert_eq!(read_published(store.as_ref(), &key().verifier()).unwrap().unwrap().1.size(), TreeSize(300));

    gate.open();
    log.flush();
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    assert_eq!(acks.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [0, 1, 2], "answered in order");
    let sizes: Vec<(u64, u64)> = acks
        .iter()
        .map(|(_, r)| {
            let p = r.as_ref().unwrap();
            assert_eq!(open_checkpoint(&p.checkpoint).size(), p.new_size);
            (p.old_size.0, p.new_size.0)
        })
        .collect();
    assert_eq!(sizes, [(300, 310), (310, 530), (520, 530)]);
    let published = read_published(store.as_ref(), &key().verifier()).unwrap().unwrap();
    assert_eq!(published.1.size(), TreeSize(530));
    assert!(store.get(&archive_key(310), 1 << 16).unwrap().is_some());
    assert!(store.get(&archive_key(530), 1 << 16).unwrap().is_some());
    assert!(store.get(&archive_key(520), 1 << 16).unwrap().is_none(), "520 was never published");
    assert!(store.get("tile/entries/002.p/8", 1 << 30).unwrap().is_none(), "a partial bundle of 520");
    assert!(store.get("tile/entries/002.p/18", 1 << 30).unwrap().is_some());
    assert!(store.get("tile/1/000.p/2", 1 << 30).unwrap().is_some(), "the level-1 partial tile of 530");
    drop(log);
    assert_eq!(log_entries(store.clone()), entries(0..530));
    let mut next = ObjectLog::open(b.reconnect(&store), key()).unwrap();
    assert_eq!(next.size(), TreeSize(530));
    next.append(&entries(530..540)).unwrap();
    assert_eq!(verify(store).unwrap(), 540);
}

/// Pipelined commits failing at every put, three batches in flight (held as in
/// [`pipelined_commits_acknowledge_only_what_is_published`]), with the put either not sent
/// or sent and its answer lost. After each: every acknowledged batch is in the log the next
/// writer opens, which ends at a batch boundary, verifies and goes on.
pub fn pipelined_commits_failing_at_every_put_keep_every_acknowledged_entry(b: &impl Backend) {
    let ends = [300u64, 310, 520, 530];
    for land in [false, true] {
        let mut step = 0;
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let acked = pipelined_fail_at_put(b, land, step, &ends);
            seen.insert(acked);
            if acked == 3 {
                break;
            }
            step += 1;
            assert!(step < 200, "the batches were never all acknowledged");
        }
        assert!(step >= 6, "expected several failure points, got {step}");
        assert!(seen.contains(&0) && seen.contains(&1), "land={land}: acknowledged counts {seen:?}");
        eprintln!(
            "pipelined every put: land={land}: all acknowledged from failure point {step} on; counts {seen:?}"
        );
    }
}

/// One failure point: every put from the `step`-th on fails. How many batches were
/// acknowledged.
fn pipelined_fail_at_put(b: &impl Backend, land: bool, step: u64, ends: &[u64; 4]) -> usize {
    use crate::pipeline::PipelinedLog;
    use crate::writer::LogWriter;
    let fast = Retry { attempts: 2, first_wait: Duration::from_millis(1) };
    let store = b.fresh(&format!("pipelined-every-put-{land}-{step}"));
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(0..ends[0])).unwrap();
    let failing = Arc::new(Failing::new(store.clone(), step, land));
    let gate = Arc::new(super::wrappers::Gate::new(failing.clone(), HEAD_KEY));
    let acks: Acks = Default::default();
    if let Ok(log) = ObjectLog::open_with(gate.clone(), key(), fast) {
        let mut log = PipelinedLog::new(log).unwrap();
        let _open = super::wrappers::OpenOnDrop(gate.clone());
        gate.close();
        for n in 0..3 {
            let batch = entries(ends[n]..ends[n + 1]);
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            if log.submit(&refs, ack_into(&acks, n)).is_err() {
                break;
            }
            if n == 0 {
                // The publishing thread is held at its first put (or its round has failed).
                let _ = gate.wait_for_held(1);
            }
        }
        gate.open();
        drop(log);
    }
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    let ok: Vec<usize> = acks.iter().filter(|(_, r)| r.is_ok()).map(|(n, _)| *n).collect();
    // Acknowledged in order, a prefix of the batches.
    assert_eq!(ok, (0..ok.len()).collect::<Vec<_>>(), "land={land} step {step}: {acks:?}");
    let mut next = ObjectLog::open(store.clone(), key()).unwrap();
    let size = next.size().0;
    assert!(ends.contains(&size), "land={land} step {step}: size {size} is not a batch boundary");
    assert!(size >= ends[ok.len()], "land={land} step {step}: an acknowledged batch was lost (size {size})");
    assert_eq!(verify(store.clone()).unwrap(), size, "land={land} step {step}");
    assert_eq!(log_entries(store.clone()), entries(0..size));
    next.append(&entries(size..size + 70)).unwrap();
    assert_eq!(verify(store.clone()).unwrap(), size + 70, "land={land} step {step}");
    ok.len()
}
