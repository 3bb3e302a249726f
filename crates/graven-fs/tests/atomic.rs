//! The durable, atomic file writes: a power cut at every step, in both failure modes, and the
//! real filesystem's permissions and refusals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::io;
use std::path::Path;

use graven_fs::atomic::{self, Access};
use graven_fs::sim::{FailMode, SimFs};
use graven_fs::{Fs, RealFs};

const DIR: &str = "/data";

/// A simulated disk with `/data` durably made, and `/data/f` holding `old` if given.
fn disk(old: Option<&[u8]>) -> SimFs {
    let fs = SimFs::new();
    atomic::create_dir_all(&fs, Path::new(DIR), Access::Default).unwrap();
    if let Some(old) = old {
        atomic::replace(&fs, &Path::new(DIR).join("f"), old, Access::Default).unwrap();
    }
    fs
}

/// Names in `/data` that are not temporary files.
fn visible(fs: &SimFs) -> Vec<String> {
    fs.names()
        .iter()
        .filter(|p| p.parent() == Some(Path::new(DIR)))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| !(n.starts_with('.') && n.ends_with(".tmp")))
        .collect()
}

/// Runs `write` with a failpoint at every operation, in both modes, then cuts the power.
/// `check(acked, contents after the cut)` judges each outcome. Returns how many crash points
/// there were per mode.
fn at_every_step(
    old: Option<&[u8]>,
    write: impl Fn(&SimFs) -> io::Result<()>,
    check: impl Fn(bool, Option<Vec<u8>>, &str),
) -> usize {
    let mut points = 0;
    for mode in [FailMode::Before, FailMode::After] {
        let mut step = 0;
        loop {
            let fs = disk(old);
            fs.fail_after(step, mode);
            let acked = write(&fs).is_ok();
            fs.crash();
            let got = match fs.read(&Path::new(DIR).join("f"), 1 << 20) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => panic!("{mode:?} step {step}: unreadable after a power cut: {e}"),
            };
            check(acked, got, &format!("{mode:?} step {step}"));
            assert!(visible(&fs).len() <= 1, "{mode:?} step {step}: {:?}", visible(&fs));
            if acked {
                break;
            }
            step += 1;
            assert!(step < 100, "the write never finished");
        }
        points = step;
    }
    points
}

#[test]
fn replace_leaves_the_old_or_the_new_file_at_every_power_cut() {
    let (old, new) = (b"the old registry".as_slice(), b"the new registry, longer".as_slice());
    let points = at_every_step(
        Some(old),
        |fs| atomic::replace(fs, &Path::new(DIR).join("f"), new, Access::Private),
        |acked, got, at| {
            let got = got.unwrap_or_else(|| panic!("{at}: the file vanished"));
            if acked {
                assert_eq!(got, new, "{at}: an acknowledged replace was lost");
            } else {
                assert!(got == old || got == new, "{at}: a mix: {got:?}");
            }
        },
    );
    assert_eq!(points, 4, "write, sync, rename, sync the directory");
    // From nothing: absent or complete.
    at_every_step(
        None,
        |fs| atomic::replace(fs, &Path::new(DIR).join("f"), new, Access::Default),
        |acked, got, at| match got {
            Some(g) => assert_eq!(g, new, "{at}"),
            None => assert!(!acked, "{at}: an acknowledged replace was lost"),
        },
    );
}

#[test]
fn create_leaves_no_file_or_a_complete_one_at_every_power_cut() {
    let new = b"secret key\n".as_slice();
    let points = at_every_step(
        None,
        |fs| atomic::create(fs, &Path::new(DIR).join("f"), new, Access::Private),
        |acked, got, at| match got {
            Some(g) => assert_eq!(g, new, "{at}: a partial file"),
            None => assert!(!acked, "{at}: an acknowledged create was lost"),
        },
    );
    assert_eq!(points, 5, "write, sync, link, remove the temporary name, sync the directory");
    // Over an existing file: refused at every step, and the old file never changes.
    let old = b"the key already there".as_slice();
    at_every_step(
        Some(old),
        |fs| match atomic::create(fs, &Path::new(DIR).join("f"), new, Access::Private) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
            Ok(()) => panic!("created over an existing file"),
        },
        |_, got, at| assert_eq!(got.as_deref(), Some(old), "{at}"),
    );
}

#[test]
fn private_writes_are_private_and_nothing_is_left_behind() {
    let fs = disk(None);
    let f = Path::new(DIR).join("f");
    atomic::replace(&fs, &f, b"a", Access::Private).unwrap();
    assert!(fs.is_private(&f));
    atomic::replace(&fs, &f, b"b", Access::Default).unwrap();
    assert!(!fs.is_private(&f), "a default write makes a default file");
    let g = Path::new(DIR).join("g");
    atomic::create(&fs, &g, b"k", Access::Private).unwrap();
    assert!(fs.is_private(&g));
    let names: Vec<_> = fs.list(Path::new(DIR)).unwrap();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    atomic::create_dir_all(&fs, Path::new("/x/y/z"), Access::Private).unwrap();
    fs.crash();
    assert!(fs.is_dir(Path::new("/x/y/z")), "every level was made durable");
    assert!(fs.is_private(Path::new("/x")) && fs.is_private(Path::new("/x/y/z")));
}

#[test]
fn on_the_real_filesystem() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("identities.json");
    atomic::replace(&RealFs, &f, b"one", Access::Private).unwrap();
    atomic::replace(&RealFs, &f, b"two", Access::Private).unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"two");
    let key = d.path().join("log.key");
    atomic::create(&RealFs, &key, b"k1", Access::Private).unwrap();
    let e = atomic::create(&RealFs, &key, b"k2", Access::Private).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    assert_eq!(std::fs::read(&key).unwrap(), b"k1", "an existing file is never replaced");
    let mut names: Vec<_> =
        std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["identities.json", "log.key"], "no temporary file left");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [&f, &key] {
            assert_eq!(std::fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600, "{}", p.display());
        }
        // A temporary file a crashed writer left with wide permissions is narrowed before use.
        let stale = d.path().join("stale");
        std::fs::write(&stale, b"x").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        RealFs.write_private(&stale, b"secret").unwrap();
        assert_eq!(std::fs::metadata(&stale).unwrap().permissions().mode() & 0o777, 0o600);
        let nested = d.path().join("a/b");
        atomic::create_dir_all(&RealFs, &nested, Access::Private).unwrap();
        for p in [d.path().join("a"), nested] {
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o700);
        }
    }
    // Too large to read is its own kind of error.
    assert_eq!(RealFs.read(&f, 2).unwrap_err().kind(), io::ErrorKind::FileTooLarge);
}

/// Many threads replacing one file: every read sees one whole version.
#[test]
fn concurrent_replaces_each_write_a_whole_file() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("f");
    atomic::replace(&RealFs, &f, &[0u8; 4096], Access::Default).unwrap();
    std::thread::scope(|s| {
        for t in 1..=4u8 {
            let f = &f;
            s.spawn(move || {
                for _ in 0..20 {
                    atomic::replace(&RealFs, f, &[t; 4096], Access::Default).unwrap();
                }
            });
        }
        for _ in 0..50 {
            let b = std::fs::read(&f).unwrap();
            assert!(b.len() == 4096 && b.iter().all(|&x| x == b[0]), "a mixed file");
        }
    });
}
