//! A simulated filesystem that knows which bytes are durable, for crash tests.
//!
//! It keeps two views: what a running process sees, and what would survive a power cut.
//! [`SimFs::crash`] throws the first away: names not made durable by `sync_dir` vanish or
//! revert, and file data not made durable by `sync_file` is lost (the file reads back empty).
//! A failpoint makes the N-th mutating operation fail, either before it takes effect
//! ("failed, not written") or after ("failed, but written"), and every later one fail too, as
//! if the process had died there.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::fs::Fs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Dir,
    File(u64),
}

/// How the failpoint fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// The failing operation has no effect.
    Before,
    /// The failing operation takes effect, then reports an error.
    After,
}

#[derive(Debug, Default)]
struct State {
    next_inode: u64,
    names: BTreeMap<PathBuf, Entry>,
    durable_names: BTreeMap<PathBuf, Entry>,
    data: HashMap<u64, Vec<u8>>,
    durable_data: HashMap<u64, Vec<u8>>,
    /// Files (by inode) and directories created or written as private.
    private_files: HashSet<u64>,
    private_dirs: BTreeSet<PathBuf>,
    fail_after: Option<(usize, FailMode)>,
    dead: bool,
    ops: usize,
}

/// See the module docs. Paths are absolute; `/` exists.
#[derive(Debug)]
pub struct SimFs {
    state: Mutex<State>,
}

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

fn injected() -> io::Error {
    io::Error::other("simulated crash (failpoint)")
}

impl SimFs {
    pub fn new() -> Self {
        let mut s = State::default();
        s.names.insert(PathBuf::from("/"), Entry::Dir);
        s.durable_names.insert(PathBuf::from("/"), Entry::Dir);
        SimFs { state: Mutex::new(s) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fail the operation after `n` more mutating operations succeed, in `mode`.
    pub fn fail_after(&self, n: usize, mode: FailMode) {
        self.state().fail_after = Some((n, mode));
    }

    /// Mutating operations performed so far.
    pub fn ops(&self) -> usize {
        self.state().ops
    }

    /// Whether `path` is a file or directory only its owner may use (made by `write_private`
    /// or `create_dir_private`).
    pub fn is_private(&self, path: &Path) -> bool {
        let s = self.state();
        match s.names.get(path) {
            Some(Entry::File(id)) => s.private_files.contains(id),
            Some(Entry::Dir) => s.private_dirs.contains(path),
            None => false,
        }
    }

    /// Every name (files and directories) a running process sees, for tests that check what
    /// a write left behind.
    pub fn names(&self) -> Vec<PathBuf> {
        self.state().names.keys().cloned().collect()
    }

    /// Power cut: keep only what was made durable; clear the failpoint.
    pub fn crash(&self) {
        let mut s = self.state();
        let durable = s.durable_names.clone();
        // A name survives only if every ancestor directory survives.
        let names: BTreeMap<PathBuf, Entry> = durable
            .iter()
            .filter(|(p, _)| p.ancestors().skip(1).all(|a| durable.get(a) == Some(&Entry::Dir)))
            .map(|(p, e)| (p.clone(), *e))
            .collect();
        let mut data = HashMap::new();
        for e in names.values() {
            if let Entry::File(id) = e {
                data.insert(*id, s.durable_data.get(id).cloned().unwrap_or_default());
            }
        }
        s.private_dirs.retain(|p| names.contains_key(p));
        s.names = names.clone();
        s.durable_names = names;
        s.data = data;
        s.fail_after = None;
        s.dead = false;
    }

    /// Runs one mutating operation under the failpoint.
    fn mutate<T>(&self, op: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut s = self.state();
        if s.dead {
            return Err(injected());
        }
        s.ops += 1;
        match s.fail_after {
            Some((0, FailMode::Before)) => {
                s.dead = true;
                Err(injected())
            }
            Some((0, FailMode::After)) => {
                s.dead = true;
                op(&mut s)?;
                Err(injected())
            }
            Some((n, mode)) => {
                s.fail_after = Some((n - 1, mode));
                op(&mut s)
            }
            None => op(&mut s),
        }
    }
}

fn parent_is_dir(s: &State, path: &Path) -> io::Result<()> {
    match path.parent().and_then(|p| s.names.get(p)) {
        Some(Entry::Dir) => Ok(()),
        _ => Err(io::Error::new(io::ErrorKind::NotFound, format!("no directory for {}", path.display()))),
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

fn create_dir_in(s: &mut State, path: &Path) -> io::Result<()> {
    parent_is_dir(s, path)?;
    if s.names.contains_key(path) {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, "exists"));
    }
    s.names.insert(path.to_path_buf(), Entry::Dir);
    Ok(())
}

/// Writes `data` to `path`, creating the file if needed; returns its inode.
fn write_in(s: &mut State, path: &Path, data: &[u8]) -> io::Result<u64> {
    parent_is_dir(s, path)?;
    let id = match s.names.get(path) {
        Some(Entry::File(id)) => *id,
        Some(Entry::Dir) => return Err(io::Error::other("is a directory")),
        None => {
            s.next_inode += 1;
            s.next_inode
        }
    };
    s.names.insert(path.to_path_buf(), Entry::File(id));
    s.data.insert(id, data.to_vec());
    Ok(id)
}

impl Fs for SimFs {
    fn read(&self, path: &Path, limit: u64) -> io::Result<Vec<u8>> {
        let s = self.state();
        match s.names.get(path) {
            Some(Entry::File(id)) => {
                let d = s.data.get(id).cloned().unwrap_or_default();
                if d.len() as u64 > limit {
                    return Err(io::Error::new(io::ErrorKind::FileTooLarge, "over limit"));
                }
                Ok(d)
            }
            _ => Err(not_found(path)),
        }
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.state().names.get(path) == Some(&Entry::Dir)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.mutate(|s| create_dir_in(s, path))
    }

    fn create_dir_private(&self, path: &Path) -> io::Result<()> {
        self.mutate(|s| {
            create_dir_in(s, path)?;
            s.private_dirs.insert(path.to_path_buf());
            Ok(())
        })
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let s = self.state();
        if s.names.get(dir) != Some(&Entry::Dir) {
            return Err(not_found(dir));
        }
        Ok(s.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
            .collect())
    }

    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.mutate(|s| write_in(s, path, data).map(|_| ()))
    }

    fn write_private(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.mutate(|s| {
            let id = write_in(s, path, data)?;
            s.private_files.insert(id);
            Ok(())
        })
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.mutate(|s| match s.names.get(path) {
            Some(Entry::File(id)) => {
                let id = *id;
                let d = s.data.get(&id).cloned().unwrap_or_default();
                s.durable_data.insert(id, d);
                Ok(())
            }
            _ => Err(not_found(path)),
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.mutate(|s| {
            parent_is_dir(s, to)?;
            let e = s.names.remove(from).ok_or_else(|| not_found(from))?;
            s.names.insert(to.to_path_buf(), e);
            Ok(())
        })
    }

    fn link(&self, existing: &Path, new: &Path) -> io::Result<()> {
        self.mutate(|s| {
            parent_is_dir(s, new)?;
            let Some(Entry::File(id)) = s.names.get(existing).copied() else {
                return Err(not_found(existing));
            };
            if s.names.contains_key(new) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", new.display()),
                ));
            }
            s.names.insert(new.to_path_buf(), Entry::File(id));
            Ok(())
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.mutate(|s| match s.names.get(path) {
            Some(Entry::File(_)) => {
                s.names.remove(path);
                Ok(())
            }
            _ => Err(not_found(path)),
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.mutate(|s| {
            if s.names.get(dir) != Some(&Entry::Dir) {
                return Err(not_found(dir));
            }
            let children = |m: &BTreeMap<PathBuf, Entry>| -> Vec<PathBuf> {
                m.keys().filter(|p| p.parent() == Some(dir)).cloned().collect()
            };
            for p in children(&s.durable_names) {
                s.durable_names.remove(&p);
            }
            for p in children(&s.names) {
                let e = s.names[&p];
                s.durable_names.insert(p, e);
            }
            Ok(())
        })
    }

    fn lock(&self, _dir: &Path) -> io::Result<Option<Box<dyn std::any::Any + Send + Sync>>> {
        Ok(Some(Box::new(())))
    }
}
