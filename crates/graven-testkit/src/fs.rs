//! Directories in tests: every file under one, by relative path, and a copy of one.

use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `dir` (recursively), by its path relative to `dir` (`/`-separated on
/// Unix), with its bytes. Callers drop what they do not compare (a lock file, say).
#[track_caller]
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries {
            let p = e.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned();
                let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                out.insert(rel, bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Copies the directory `from` to `to` (created), recursively: files and directories only.
#[track_caller]
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    for e in entries {
        let e = e.unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        let is_dir = e.file_type().unwrap_or_else(|err| panic!("{}: {err}", e.path().display())).is_dir();
        if is_dir {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))
                .unwrap_or_else(|err| panic!("copying {}: {err}", e.path().display()));
        }
    }
}
