//! The simulated disk itself: what survives a power cut, and how the failpoint fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::Path;

use graven_fs::Fs;
use graven_fs::sim::{FailMode, SimFs};

/// Unsynced data and unsynced names are lost in a crash.
#[test]
fn simulated_disk_forgets_what_was_not_synced() {
    let fs = SimFs::new();
    let d = Path::new("/d");
    fs.create_dir(d).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs.write_file(&d.join("a"), b"synced").unwrap();
    fs.sync_file(&d.join("a")).unwrap();
    fs.sync_dir(d).unwrap();
    fs.write_file(&d.join("a"), b"not synced").unwrap();
    fs.write_file(&d.join("b"), b"no name").unwrap();
    fs.sync_file(&d.join("b")).unwrap();
    fs.crash();
    assert_eq!(fs.read(&d.join("a"), 100).unwrap(), b"synced");
    assert!(fs.read(&d.join("b"), 100).is_err());
}

/// A second name (`link`) and a removed name are durable only after `sync_dir`, like any
/// name; `link` never replaces an existing name.
#[test]
fn links_and_removals_are_names_like_any_other() {
    let fs = SimFs::new();
    let d = Path::new("/d");
    fs.create_dir(d).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs.write_file(&d.join("t"), b"data").unwrap();
    fs.sync_file(&d.join("t")).unwrap();
    fs.link(&d.join("t"), &d.join("a")).unwrap();
    assert_eq!(fs.link(&d.join("t"), &d.join("a")).unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
    fs.remove_file(&d.join("t")).unwrap();
    assert_eq!(fs.read(&d.join("a"), 100).unwrap(), b"data");
    fs.crash();
    assert!(fs.list(d).unwrap().is_empty(), "nothing in /d was synced");
    fs.write_file(&d.join("t"), b"data").unwrap();
    fs.sync_file(&d.join("t")).unwrap();
    fs.link(&d.join("t"), &d.join("a")).unwrap();
    fs.remove_file(&d.join("t")).unwrap();
    fs.sync_dir(d).unwrap();
    fs.crash();
    assert_eq!(fs.list(d).unwrap(), ["a"]);
    assert_eq!(fs.read(&d.join("a"), 100).unwrap(), b"data");
}

/// "Before" fails without effect, "after" takes effect and then fails; either way every later
/// operation fails too, until the power cut.
#[test]
fn the_failpoint_fails_both_ways_and_then_everything() {
    for (mode, written) in [(FailMode::Before, false), (FailMode::After, true)] {
        let fs = SimFs::new();
        fs.fail_after(1, mode);
        fs.create_dir(Path::new("/d")).unwrap();
        assert!(fs.write_file(Path::new("/d/f"), b"x").is_err());
        assert_eq!(fs.read(Path::new("/d/f"), 10).is_ok(), written, "{mode:?}");
        assert!(fs.sync_dir(Path::new("/")).is_err(), "dead after the failpoint");
        assert_eq!(fs.ops(), 2, "operations refused after the failpoint are not counted");
        fs.crash();
        assert!(!fs.is_dir(Path::new("/d")), "never synced");
        fs.create_dir(Path::new("/d")).unwrap();
    }
}
