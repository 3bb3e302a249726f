//! The local writer: byte-exact layout, split invariance, and a crash at every step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::Path;

use graven_core::note::SignerKey;
use graven_core::TreeSize;
use graven_tlog::{LocalLog, LogError};
use graven_verify::{DirFetch, verify_log};
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
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                if rel != ".graven-lock" {
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
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

/// Crash the append after each of its file operations in turn. After every crash the log
/// must reopen at the old size or the new one, verify, and accept the next append.
#[test]
fn crash_at_every_step_leaves_a_valid_log() {
    let mut step = 0;
    let mut saw_new = false;
    loop {
        let d = tempfile::tempdir().unwrap();
        let mut log = LocalLog::open(d.path(), key()).unwrap();
        log.append(&entries(0..300)).unwrap();
        log.set_crash_after(Some(step));
        let crashed = log.append(&entries(300..900)).is_err();
        if crashed {
            assert!(matches!(log.append(&entries(0..1)), Err(LogError::Poisoned)));
        }
        drop(log);
        let size = verify(d.path());
        assert!(size == TreeSize(300) || size == TreeSize(900), "step {step}: size {size}");
        saw_new |= size == TreeSize(900);
        let mut log = LocalLog::open(d.path(), key()).unwrap();
        assert_eq!(log.size(), size);
        let next = log.append(&entries(size.0..size.0 + 70)).unwrap();
        assert_eq!(verify(d.path()), next.new_size);
        if !crashed {
            break;
        }
        step += 1;
        assert!(step < 10_000, "the append never finished");
    }
    assert!(step > 10, "expected many crash points, got {step}");
    assert!(saw_new);
}
