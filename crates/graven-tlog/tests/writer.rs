//! The local writer: byte-exact layout, split invariance, and a crash at every step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use graven_core::TreeSize;
use graven_core::note::SignerKey;
use graven_tlog::sim::{FailMode, SimFs};
use graven_tlog::{Fs, LocalLog, LogError};
use graven_verify::{DirFetch, Fetch, FetchError, verify_log};
use proptest::prelude::*;

fn key() -> SignerKey {
    SignerKey::from_seed("test.example/log", [42; 32]).unwrap()
}

fn entries(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(|i| format!("entry-{i}").into_bytes()).collect()
}

fn verify(dir: &Path) -> TreeSize {
    let r = verify_log(&mut DirFetch::new(dir), &key().verifier(), None, |_, _| {}).unwrap();
    r.size
}

/// Every file under `dir` except the lock, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = graven_testkit::fs::files(dir);
    out.remove(".graven-lock");
    out
}

#[test]
fn empty_append_on_new_dir_publishes_size_zero() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LocalLog::open(d.path(), key()).unwrap();
    let p = log.append::<Vec<u8>>(&[]).unwrap();
    assert_eq!(p.new_size, TreeSize(0));
    assert_eq!(p.root, graven_core::empty_root());
    assert_eq!(verify(d.path()), TreeSize(0));
}

#[test]
fn a_second_writer_is_locked_out() {
    let d = tempfile::tempdir().unwrap();
    let _first = LocalLog::open(d.path(), key()).unwrap();
    assert!(matches!(LocalLog::open(d.path(), key()), Err(LogError::Locked(_))));
}

#[test]
fn another_key_cannot_append() {
    let d = tempfile::tempdir().unwrap();
    LocalLog::open(d.path(), key()).unwrap().append(&entries(0..3)).unwrap();
    let other = SignerKey::from_seed("test.example/log", [7; 32]).unwrap();
    assert!(matches!(LocalLog::open(d.path(), other), Err(LogError::Checkpoint(_))));
}

#[test]
fn a_directory_that_is_not_a_log_is_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("notes.txt"), "hello").unwrap();
    assert!(matches!(LocalLog::open(d.path(), key()), Err(LogError::NotALog(_))));
}

#[test]
fn oversized_entry_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut log = LocalLog::open(d.path(), key()).unwrap();
    log.append(&entries(0..5)).unwrap();
    let before = files(d.path());
    let batch = vec![b"ok".to_vec(), vec![0; 65536]];
    assert!(matches!(log.append(&batch), Err(LogError::EntryTooLarge { index: 1, len: 65536 })));
    assert_eq!(files(d.path()), before);
    // A 65,535-byte entry is the largest allowed, and fine.
    log.append(&[vec![b'x'; 65535]]).unwrap();
    assert_eq!(verify(d.path()), TreeSize(6));
}

#[test]
fn tampered_right_edge_is_refused_before_appending() {
    let d = tempfile::tempdir().unwrap();
    LocalLog::open(d.path(), key()).unwrap().append(&entries(0..10)).unwrap();
    let tile = d.path().join("tile/0/000.p/10");
    let mut b = std::fs::read(&tile).unwrap();
    b[5] ^= 1;
    std::fs::write(&tile, b).unwrap();
    let mut log = LocalLog::open(d.path(), key()).unwrap();
    assert!(matches!(log.append(&entries(10..11)), Err(LogError::RootMismatch)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// However the same entries are split into appends, the committed tree and every full
    /// tile and bundle are identical to a single append's.
    #[test]
    fn split_appends_match_one_append(total in 1u64..1400, cuts in proptest::collection::vec(0u64..1400, 0..6)) {
        let all = entries(0..total);
        let one = tempfile::tempdir().unwrap();
        let p1 = LocalLog::open(one.path(), key()).unwrap().append(&all).unwrap();

        let many = tempfile::tempdir().unwrap();
        let mut log = LocalLog::open(many.path(), key()).unwrap();
        let mut points: Vec<u64> = cuts.into_iter().map(|c| c % total).collect();
        points.push(0);
        points.push(total);
        points.sort_unstable();
        points.dedup();
        let mut last = None;
        for w in points.windows(2) {
            last = Some(log.append(&all[w[0] as usize..w[1] as usize]).unwrap());
        }
        let pn = last.unwrap();
        prop_assert_eq!(pn.root, p1.root);
        prop_assert_eq!(&pn.checkpoint, &p1.checkpoint);
        let (a, b) = (files(one.path()), files(many.path()));
        for (path, bytes) in &a {
            prop_assert_eq!(Some(bytes), b.get(path), "{}", path);
        }
        prop_assert_eq!(verify(many.path()), TreeSize(total));
    }
}

/// Reads a log from the simulated disk, for the verifier.
struct SimFetch {
    fs: Arc<SimFs>,
    dir: PathBuf,
}

impl Fetch for SimFetch {
    fn fetch(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        match self.fs.read(&self.dir.join(path), limit) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    fn location(&self) -> String {
        format!("sim:{}", self.dir.display())
    }
}

/// The size the simulated disk's log verifies at; 0 if it has no checkpoint yet.
fn verify_sim(fs: &Arc<SimFs>, dir: &Path) -> u64 {
    if fs.read(&dir.join("checkpoint"), 1 << 20).is_err() {
        return 0;
    }
    let mut f = SimFetch { fs: fs.clone(), dir: dir.to_path_buf() };
    verify_log(&mut f, &key().verifier(), None, |_, _| {}).unwrap().size.0
}

/// Power cut at every step of an append, in both failure modes (the operation failed and did
/// not happen; the operation happened and then failed), dropping everything not yet synced.
/// After each: every acknowledged entry is present, the log verifies at the old or the new
/// size, and the next append (and a power cut right after it) keeps it.
#[test]
fn power_cut_at_every_step_keeps_every_acknowledged_entry() {
    let dir = Path::new("/data/log");
    for (start, mode) in
        [(0u64, FailMode::Before), (0, FailMode::After), (300, FailMode::Before), (300, FailMode::After)]
    {
        let mut step = 0;
        let mut outcomes = [0usize; 2];
        loop {
            let fs = Arc::new(SimFs::new());
            if start > 0 {
                LocalLog::open_with(fs.clone(), dir, key()).unwrap().append(&entries(0..start)).unwrap();
            }
            fs.fail_after(step, mode);
            let acked = match LocalLog::open_with(fs.clone(), dir, key()) {
                Ok(mut log) => log.append(&entries(start..900)).is_ok(),
                Err(_) => false,
            };
            fs.crash();
            let size = verify_sim(&fs, dir);
            if acked {
                assert_eq!(size, 900, "{mode:?} step {step}: an acknowledged append was lost");
            } else {
                assert!(size == start || size == 900, "{mode:?} step {step}: size {size}");
            }
            outcomes[usize::from(size == 900)] += 1;
            let mut log = LocalLog::open_with(fs.clone(), dir, key()).unwrap();
            log.append(&entries(size..size + 70)).unwrap();
            drop(log);
            fs.crash();
            assert_eq!(verify_sim(&fs, dir), size + 70, "{mode:?} step {step}: acknowledged follow-up lost");
            if acked {
                break;
            }
            step += 1;
            assert!(step < 10_000, "the append never finished");
        }
        assert!(step > 20, "expected many crash points, got {step}");
        assert!(outcomes[0] > 0 && outcomes[1] > 0, "{mode:?} from {start}: outcomes {outcomes:?}");
    }
}

/// A filesystem that holds back every change the publishing thread of a pipelined writer makes
/// while it is closed, so the sequencer writes further batches first, in a fixed order.
#[derive(Debug)]
struct HoldPublisher {
    fs: Arc<SimFs>,
    closed: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
    /// Changes held back so far.
    held: std::sync::atomic::AtomicUsize,
}

impl HoldPublisher {
    fn hold(&self) {
        if std::thread::current().name().is_some_and(|n| n.starts_with("graven-publisher")) {
            let mut closed = self.closed.lock().unwrap();
            if *closed {
                self.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            while *closed {
                closed = self.opened.wait(closed).unwrap();
            }
        }
    }

    /// Waits (up to ten seconds) until the publishing thread is held.
    fn wait_held(&self) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.held.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < until, "the publishing thread never reached the disk");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    fn set(&self, closed: bool) {
        *self.closed.lock().unwrap() = closed;
        self.opened.notify_all();
    }
}

impl Fs for HoldPublisher {
    fn read(&self, path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
        self.fs.read(path, limit)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.fs.is_dir(path)
    }
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        self.hold();
        self.fs.create_dir(path)
    }
    fn create_dir_private(&self, path: &Path) -> std::io::Result<()> {
        self.hold();
        self.fs.create_dir_private(path)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
        self.fs.list(dir)
    }
    fn write_file(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        self.hold();
        self.fs.write_file(path, data)
    }
    fn write_private(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        self.hold();
        self.fs.write_private(path, data)
    }
    fn sync_file(&self, path: &Path) -> std::io::Result<()> {
        self.hold();
        self.fs.sync_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.hold();
        self.fs.rename(from, to)
    }
    fn link(&self, existing: &Path, new: &Path) -> std::io::Result<()> {
        self.hold();
        self.fs.link(existing, new)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.hold();
        self.fs.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.hold();
        self.fs.sync_dir(dir)
    }
    fn lock(&self, dir: &Path) -> std::io::Result<Option<Box<dyn std::any::Any + Send + Sync>>> {
        self.fs.lock(dir)
    }
}

/// Pipelined local commits, three batches in flight: the second and third are written while
/// the publishing thread is held before its first change, then one round publishes the first
/// and the next publishes the other two. A power cut at every step of all of it, in both
/// failure modes, dropping everything not yet synced. After each: every acknowledged batch is
/// present, the log verifies at a size some round could have published, and the next append
/// (and a power cut right after it) keeps it.
#[test]
fn pipelined_power_cut_at_every_step_keeps_every_acknowledged_entry() {
    use graven_tlog::{LogWriter, PipelinedLocalLog};
    let dir = Path::new("/data/log");
    for (start, mode) in [(0u64, FailMode::Before), (300, FailMode::After), (300, FailMode::Before)] {
        let ends = [start, start + 10, start + 300, start + 700];
        let mut step = 0;
        let mut sizes = std::collections::BTreeSet::new();
        loop {
            let sim = Arc::new(SimFs::new());
            if start > 0 {
                LocalLog::open_with(sim.clone(), dir, key()).unwrap().append(&entries(0..start)).unwrap();
            }
            let fs = Arc::new(HoldPublisher {
                fs: sim.clone(),
                closed: std::sync::Mutex::new(false),
                opened: std::sync::Condvar::new(),
                held: Default::default(),
            });
            sim.fail_after(step, mode);
            let acks = Arc::new(std::sync::Mutex::new(Vec::new()));
            let opened = LocalLog::open_with(fs.clone(), dir, key()).and_then(PipelinedLocalLog::new);
            if let Ok(mut log) = opened {
                fs.set(true);
                for n in 0..3 {
                    let batch = entries(ends[n]..ends[n + 1]);
                    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                    let acks = acks.clone();
                    let done = Box::new(move |r: Result<graven_tlog::Published, LogError>| {
                        acks.lock().unwrap().push((n, r.is_ok()))
                    });
                    if log.submit(&refs, done).is_err() {
                        break;
                    }
                    if n == 0 {
                        // The first round holds the first batch alone.
                        fs.wait_held();
                    }
                }
                fs.set(false);
                drop(log);
            }
            sim.crash();
            let acks = acks.lock().unwrap().clone();
            let ok: Vec<usize> = acks.iter().filter(|(_, ok)| *ok).map(|(n, _)| *n).collect();
            assert_eq!(ok, (0..ok.len()).collect::<Vec<_>>(), "{mode:?} step {step}: {acks:?}");
            let size = verify_sim(&sim, dir);
            assert!(
                [ends[0], ends[1], ends[3]].contains(&size) || (start == 0 && size == 0),
                "{mode:?} step {step}: size {size}"
            );
            assert!(
                size >= ends[ok.len()],
                "{mode:?} step {step}: an acknowledged batch was lost (size {size})"
            );
            sizes.insert(size);
            let mut log = LocalLog::open_with(sim.clone(), dir, key()).unwrap();
            assert_eq!(log.size().0, size);
            log.append(&entries(size..size + 70)).unwrap();
            drop(log);
            sim.crash();
            assert_eq!(verify_sim(&sim, dir), size + 70, "{mode:?} step {step}: acknowledged follow-up lost");
            if ok.len() == 3 {
                break;
            }
            step += 1;
            assert!(step < 10_000, "the batches were never all acknowledged");
        }
        assert!(step > 20, "expected many crash points, got {step}");
        assert!(
            sizes.contains(&ends[1]) && sizes.contains(&ends[3]),
            "{mode:?} from {start}: sizes {sizes:?}"
        );
        eprintln!(
            "pipelined power cut: {mode:?} from {start}: all acknowledged from step {step}; sizes {sizes:?}"
        );
    }
}
