#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::fs;

use super::*;
use crate::{Mode, Report, Trust};
use graven_core::checkpoint::Checkpoint;
use graven_core::note::SignerKey;

const ORIGIN: &str = "trust.example/log";

fn signer(origin: &str, seed: u8) -> SignerKey {
    SignerKey::from_seed(origin, [seed; 32]).unwrap()
}

fn checkpoint(key: &SignerKey, size: u64, root: u8) -> VerifiedCheckpoint {
    let body = Checkpoint::new(key.name(), TreeSize(size), Hash([root; 32])).unwrap().to_text();
    let note = key.sign(&body).unwrap();
    VerifiedCheckpoint::open(note.as_bytes(), &key.verifier(), key.name()).unwrap()
}

/// Only the verifier makes these; the crate's own tests may, to exercise the store alone.
fn verified(key: &SignerKey, size: u64, root: u8) -> VerifiedLog {
    let cp = checkpoint(key, size, root);
    let report = Report {
        origin: key.name().to_owned(),
        size: cp.size(),
        root: cp.root(),
        bundles: 0,
        tiles: 0,
        entry_bytes: 0,
        entries_hashed: 0,
        previous_size: None,
        trust: Trust::FirstUse,
        mode: Mode::Full,
    };
    VerifiedLog { checkpoint: cp, key: key.verifier(), report }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn remember_writes_the_note_bytes_atomically_and_load_reverifies_them() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TrustStore::new(tmp.path().join("nested/trust"));
    let key = signer(ORIGIN, 1);
    assert_eq!(store.load(&key.verifier(), ORIGIN).unwrap(), None, "nothing remembered yet");

    let first = verified(&key, 3, 7);
    let r = store.remember(&first).unwrap();
    assert!(matches!(r, Remembered::Updated { .. }), "{r:?}");
    assert_eq!(fs::read(r.path()).unwrap(), first.checkpoint().note_bytes(), "bytes as received");
    assert_eq!(
        names_in(store.dir()),
        vec![format!("trust.example%2Flog+{:08x}.checkpoint", key.id())],
        "exactly one file, no temporary left behind"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(store.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the store directory is private");
    }

    let second = verified(&key, 10, 8);
    assert!(matches!(store.remember(&second).unwrap(), Remembered::Updated { .. }));
    let loaded = store.load(&key.verifier(), ORIGIN).unwrap().unwrap();
    assert_eq!((loaded.size(), loaded.root()), (TreeSize(10), Hash([8; 32])));
    assert_eq!(names_in(store.dir()).len(), 1, "replaced in place");

    // The same checkpoint again changes nothing.
    assert!(matches!(store.remember(&second).unwrap(), Remembered::Unchanged { .. }));
}

#[test]
fn a_temporary_file_left_by_a_crashed_writer_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TrustStore::new(tmp.path());
    let key = signer(ORIGIN, 1);
    store.remember(&verified(&key, 3, 7)).unwrap();
    let name = file_name(ORIGIN, key.id());
    // What a writer killed between creating and renaming its temporary file leaves behind.
    fs::write(tmp.path().join(format!(".{name}.4242.tmp")), b"half a checkp").unwrap();
    let loaded = store.load(&key.verifier(), ORIGIN).unwrap().unwrap();
    assert_eq!(loaded.size(), TreeSize(3), "the old checkpoint is still the remembered one");
    store.remember(&verified(&key, 4, 9)).unwrap();
    assert_eq!(store.load(&key.verifier(), ORIGIN).unwrap().unwrap().size(), TreeSize(4));
}

#[test]
fn origins_cannot_escape_the_directory_or_share_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TrustStore::new(tmp.path());
    let long_a = format!("{}a", "x".repeat(1000));
    let long_b = format!("{}b", "x".repeat(1000));
    let origins = [
        "../../etc/passwd",
        "..",
        ".",
        "",
        "a/b",
        "a_b",
        "a%2Fb",
        "a\\b",
        "A/B",
        "é",
        "/abs",
        &long_a,
        &long_b,
    ];
    let mut seen = std::collections::BTreeSet::new();
    for origin in origins {
        let name = file_name(origin, 0x1234abcd);
        assert!(!name.starts_with('.'), "{origin:?} gives hidden or relative name {name:?}");
        assert!(!name.contains('/') && !name.contains('\\'), "{origin:?} gives {name:?}");
        assert!(name.len() <= 255, "{origin:?} gives a {}-byte name", name.len());
        assert!(name.ends_with("+1234abcd.checkpoint"), "{name:?}");
        assert!(seen.insert(name.clone()), "{origin:?} shares the file {name:?}");
        assert_eq!(
            store.path_for(origin, &signer("k", 1).verifier()).parent(),
            Some(tmp.path()),
            "{origin:?} escapes"
        );
    }
    assert_eq!(file_name("../../etc/passwd", 1), "%2E.%2F..%2Fetc%2Fpasswd+00000001.checkpoint");

    // A long origin round-trips through the store.
    let key = signer(&long_a[..200], 3);
    let log = verified(&key, 5, 1);
    store.remember(&log).unwrap();
    assert_eq!(store.load(&key.verifier(), key.name()).unwrap().unwrap().size(), TreeSize(5));
}

#[test]
fn an_oversized_store_file_is_refused_without_reading_it_all() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TrustStore::new(tmp.path());
    let key = signer(ORIGIN, 1);
    let path = store.path_for(ORIGIN, &key.verifier());
    fs::write(&path, vec![b'a'; MAX_FILE_BYTES as usize + 1]).unwrap();
    let err = store.load(&key.verifier(), ORIGIN).unwrap_err();
    assert!(matches!(err, TrustError::TooLarge { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()) && msg.contains("1048576"), "{msg}");
    // Remembering over it is refused too: the store never silently drops what it cannot read.
    assert!(store.remember(&verified(&key, 1, 1)).is_err());
}

#[test]
fn a_corrupted_or_swapped_store_file_gives_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TrustStore::new(tmp.path());
    let key = signer(ORIGIN, 1);
    let log = verified(&key, 3, 7);
    let path = store.remember(&log).unwrap().path().to_path_buf();

    // Truncated.
    let bytes = log.checkpoint().note_bytes();
    fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let err = store.load(&key.verifier(), ORIGIN).unwrap_err();
    assert!(matches!(err, TrustError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("move it aside") && msg.contains("first use"), "{msg}");

    // Edited size, signature left alone.
    let text = String::from_utf8(bytes.to_vec()).unwrap().replacen("\n3\n", "\n4\n", 1);
    fs::write(&path, text).unwrap();
    assert!(matches!(store.load(&key.verifier(), ORIGIN), Err(TrustError::Corrupt { .. })));

    // A validly signed checkpoint of another log (another key) put in its place.
    let other = signer(ORIGIN, 2);
    fs::write(&path, checkpoint(&other, 9, 9).note_bytes()).unwrap();
    assert!(matches!(store.load(&key.verifier(), ORIGIN), Err(TrustError::Corrupt { .. })));

    // Garbage.
    fs::write(&path, [0xff, 0, 1, 2]).unwrap();
    assert!(matches!(store.load(&key.verifier(), ORIGIN), Err(TrustError::Corrupt { .. })));
}

#[test]
fn a_concurrent_larger_or_conflicting_update_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TrustStore::new(tmp.path());
    let key = signer(ORIGIN, 1);
    store.remember(&verified(&key, 10, 1)).unwrap();
    let r = store.remember(&verified(&key, 5, 2)).unwrap();
    assert!(matches!(r, Remembered::KeptLarger { size: TreeSize(10), .. }), "{r:?}");
    let err = store.remember(&verified(&key, 10, 3)).unwrap_err();
    assert!(matches!(err, TrustError::ConflictingUpdate { size: 10, .. }), "{err:?}");
    assert!(err.to_string().starts_with("FORK"), "{err}");
    assert_eq!(store.load(&key.verifier(), ORIGIN).unwrap().unwrap().root(), Hash([1; 32]));
}

#[test]
fn location_follows_flag_then_xdg_then_home() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
    };
    let at = |explicit: Option<&str>, pairs: &'static [(&'static str, &'static str)]| {
        TrustStore::locate(explicit.map(PathBuf::from), env(pairs)).map(|s| s.dir().to_path_buf())
    };
    assert_eq!(at(Some("/t"), &[("XDG_CONFIG_HOME", "/x")]).unwrap(), PathBuf::from("/t"));
    assert_eq!(
        at(None, &[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")]).unwrap(),
        PathBuf::from("/x/graven/trust")
    );
    assert_eq!(
        at(None, &[("XDG_CONFIG_HOME", "relative"), ("HOME", "/h")]).unwrap(),
        PathBuf::from("/h/.config/graven/trust"),
        "a relative XDG_CONFIG_HOME is ignored"
    );
    assert!(matches!(at(None, &[]), Err(TrustError::NoLocation)));
}

/// A power cut at every step of `remember`, in both failure modes (the operation failed and
/// did not happen; it happened and then failed), on a simulated disk that drops whatever was
/// not synced: the store then loads the old checkpoint or the new one (never a mix, never a
/// corrupt file), a `remember` that returned is always there, and a later one works. From
/// nothing, the store's missing directories are made on the way.
#[test]
fn power_cut_at_every_step_of_remember_keeps_the_old_or_the_new_checkpoint() {
    use graven_fs::sim::{FailMode, SimFs};
    let key = signer(ORIGIN, 1);
    let dir = Path::new("/home/u/.config/graven/trust");
    for (old, mode) in [
        (None, FailMode::Before),
        (None, FailMode::After),
        (Some(3), FailMode::Before),
        (Some(3), FailMode::After),
    ] {
        let mut step = 0;
        let mut outcomes = [0usize; 2];
        loop {
            let fs = Arc::new(SimFs::new());
            let store = TrustStore::with_fs(fs.clone(), dir);
            if let Some(size) = old {
                store.remember(&verified(&key, size, 7)).unwrap();
            }
            fs.fail_after(step, mode);
            let acked = store.remember(&verified(&key, 10, 8)).is_ok();
            fs.crash();
            let loaded = store
                .load(&key.verifier(), ORIGIN)
                .unwrap_or_else(|e| panic!("{mode:?} step {step}: unreadable after a power cut: {e}"))
                .map(|c| c.size().0);
            if acked {
                assert_eq!(loaded, Some(10), "{mode:?} step {step}: an acknowledged remember was lost");
                assert!(fs.is_private(dir) && fs.is_private(&store.path_for(ORIGIN, &key.verifier())));
            } else {
                assert!(loaded == old || loaded == Some(10), "{mode:?} step {step}: {loaded:?}");
            }
            outcomes[usize::from(loaded == Some(10))] += 1;
            store.remember(&verified(&key, 20, 9)).unwrap();
            fs.crash();
            assert_eq!(store.load(&key.verifier(), ORIGIN).unwrap().map(|c| c.size().0), Some(20));
            if acked {
                break;
            }
            step += 1;
            assert!(step < 100, "remember never finished");
        }
        assert!(step >= 4, "{mode:?}: only {step} crash points");
        assert!(outcomes[0] > 0 && outcomes[1] > 0, "{mode:?}: outcomes {outcomes:?}");
    }
}
