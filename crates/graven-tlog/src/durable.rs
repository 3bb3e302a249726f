//! Durable file replacement: write a temporary file, fsync it, rename it over the target,
//! then fsync the directory. See `docs/storage.md` for what this assumes of the filesystem.
//!
//! Work is batched: a caller writes many files ([`Batch::write_new`] directly, for paths
//! nothing refers to yet; [`Batch::hold`] through a temporary file for the commit point), then calls
//! [`Batch::sync`] once, which runs the fsyncs concurrently (an fsync mostly waits on the
//! device, and the device serves several at once: on this project's machines 170 files of
//! 150 KB take about 4 times less time with 4 or more fsyncs in flight than one at a time).
//! Nothing written may be relied on until `sync` returns `Ok`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use graven_fs::Fs;

/// Most fsyncs in flight at once.
const MAX_PARALLEL_SYNCS: usize = 16;

/// `Path::new("log").parent()` is the empty path, which means the current directory.
fn current_if_empty(dir: &Path) -> &Path {
    if dir.as_os_str().is_empty() { Path::new(".") } else { dir }
}

/// Files written since the last sync, and the directories whose entries changed.
#[derive(Debug)]
pub struct Batch {
    fs: Arc<dyn Fs>,
    dirs: BTreeSet<PathBuf>,
    /// Target path -> its temporary file, renamed by [`Batch::publish`]; `true` once synced.
    held: BTreeMap<PathBuf, (PathBuf, bool)>,
    /// Files written directly under their final names, not yet synced.
    fresh: Vec<PathBuf>,
    /// With a root, every directory from a written file's up to the root is synced too.
    root: Option<PathBuf>,
}

impl Batch {
    pub fn new(fs: Arc<dyn Fs>) -> Self {
        Batch { fs, dirs: BTreeSet::new(), held: BTreeMap::new(), fresh: Vec::new(), root: None }
    }

    /// A batch whose syncs also cover every directory between a written file and `root`.
    ///
    /// A directory can exist without its entry in its parent being durable: a process that
    /// created it and then died (the machine staying up) leaves it in the page cache only, and
    /// the next process, finding it, would not know to sync the parent. Syncing the whole chain
    /// on every commit closes that gap; the extra directory fsyncs run in the same concurrent
    /// round and cost little when nothing in them changed.
    pub fn within(fs: Arc<dyn Fs>, root: &Path) -> Self {
        Batch { root: Some(root.to_path_buf()), ..Self::new(fs) }
    }

    /// Remembers `dir` and, under a root, every directory above it up to the root.
    fn touch(&mut self, dir: &Path) {
        self.dirs.insert(dir.to_path_buf());
        if let Some(root) = &self.root {
            for a in dir.ancestors().skip(1) {
                if !a.starts_with(root) {
                    break;
                }
                self.dirs.insert(a.to_path_buf());
            }
        }
    }

    /// Creates `dir` and any missing parents, remembering each parent whose entries changed.
    pub fn create_dirs(&mut self, dir: &Path) -> io::Result<()> {
        let dir = current_if_empty(dir);
        if self.fs.is_dir(dir) {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            let parent = current_if_empty(parent);
            self.create_dirs(parent)?;
            self.dirs.insert(parent.to_path_buf());
        }
        match self.fs.create_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    }

    /// Writes `data` directly under `path`, which the next [`Batch::sync`] makes durable.
    ///
    /// Only for a path that nothing durable refers to yet, such as a tile beyond the committed
    /// tree: a crash can leave it torn or missing, which is harmless only because nothing
    /// reads it until a later commit point (published after the sync) refers to it. It saves
    /// the temporary file, the rename and a second round of directory fsyncs.
    pub fn write_new(&mut self, path: &Path, data: &[u8]) -> io::Result<()> {
        let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent directory"))?;
        let dir = current_if_empty(dir);
        self.create_dirs(dir)?;
        self.fs.write_file(path, data)?;
        self.touch(dir);
        if !self.fresh.iter().any(|p| p == path) {
            self.fresh.push(path.to_path_buf());
        }
        Ok(())
    }

    /// Writes `data` to a temporary file beside `path` that the next [`Batch::sync`] makes
    /// durable but does not rename; [`Batch::publish`] does, later. This lets a commit point
    /// (the checkpoint) be fsynced together with the files it covers, and still appear under
    /// its name only after they are durable.
    pub fn hold(&mut self, path: &Path, data: &[u8]) -> io::Result<()> {
        let tmp = self.write_temp(path, data)?;
        self.held.insert(path.to_path_buf(), (tmp, false));
        Ok(())
    }

    /// Renames every held file that a [`Batch::sync`] made durable over its target, and makes
    /// the new names durable. Crash before the directory sync: either the old or the new file
    /// is under the name, each complete.
    pub fn publish(&mut self) -> io::Result<()> {
        if self.held.values().any(|(_, synced)| !synced) {
            return Err(io::Error::other("publish before the held files were synced"));
        }
        for (path, (tmp, _)) in std::mem::take(&mut self.held) {
            self.fs.rename(&tmp, &path)?;
            let dir = path.parent().map(current_if_empty).unwrap_or(Path::new("."));
            self.touch(dir);
        }
        self.sync()
    }

    fn write_temp(&mut self, path: &Path, data: &[u8]) -> io::Result<PathBuf> {
        let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent directory"))?;
        let dir = current_if_empty(dir);
        let name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
        self.create_dirs(dir)?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        // Crash from here to the rename: at most a stray temporary file, never referenced.
        self.fs.write_file(&tmp, data)?;
        Ok(tmp)
    }

    /// Takes in what `other` wrote and has not synced, so that one [`Batch::sync`] makes both
    /// durable (several commits made durable together).
    pub fn absorb(&mut self, mut other: Batch) {
        for p in std::mem::take(&mut other.fresh) {
            if !self.fresh.contains(&p) {
                self.fresh.push(p);
            }
        }
        self.dirs.append(&mut other.dirs);
        self.held.append(&mut other.held);
    }

    /// Makes everything written since the last sync durable: the files written under their
    /// final names, the contents of held files, and every directory touched.
    ///
    /// Nothing is relied on until this returns, so the fsyncs need no order among themselves:
    /// they all run in one concurrent round. (A held file is renamed only by
    /// [`Batch::publish`], after its contents are durable.)
    pub fn sync(&mut self) -> io::Result<()> {
        let mut round: Vec<(bool, PathBuf)> = Vec::new();
        round.extend(std::mem::take(&mut self.fresh).into_iter().map(|p| (false, p)));
        round.extend(self.held.values().filter(|(_, synced)| !synced).map(|(tmp, _)| (false, tmp.clone())));
        round.extend(std::mem::take(&mut self.dirs).into_iter().map(|d| (true, d)));
        sync_all(&self.fs, round)?;
        for (_, synced) in self.held.values_mut() {
            *synced = true;
        }
        Ok(())
    }
}

/// Threads that run fsyncs for every batch in the process, started once: spawning threads per
/// commit cost about 300 µs for 9 threads here, on the commit's critical path.
struct SyncPool {
    jobs: Mutex<mpsc::Sender<SyncJob>>,
}

struct SyncJob {
    fs: Arc<dyn Fs>,
    dir: bool,
    path: PathBuf,
    done: mpsc::Sender<io::Result<()>>,
}

impl SyncJob {
    fn run(self) {
        let r = if self.dir { self.fs.sync_dir(&self.path) } else { self.fs.sync_file(&self.path) };
        // The batch waits for every answer; it is gone only if its thread panicked.
        let _ = self.done.send(r);
    }
}

fn pool() -> &'static SyncPool {
    static POOL: OnceLock<SyncPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SyncJob>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..MAX_PARALLEL_SYNCS - 1 {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("graven-fsync-{i}")).spawn(move || {
                loop {
                    let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    match job {
                        Ok(job) => job.run(),
                        Err(_) => return,
                    }
                }
            });
            // Without workers, jobs still run: `sync_all` does whatever the pool does not.
            drop(spawned);
        }
        SyncPool { jobs: Mutex::new(tx) }
    })
}

/// Runs every sync, up to [`MAX_PARALLEL_SYNCS`] at once (the calling thread is one of the
/// workers), waits for all of them, and returns the first error.
fn sync_all(fs: &Arc<dyn Fs>, round: Vec<(bool, PathBuf)>) -> io::Result<()> {
    let mut round = round.into_iter();
    let Some(mine) = round.next() else { return Ok(()) };
    let (done, results) = mpsc::channel();
    let mut expected = 1usize;
    {
        let jobs = pool().jobs.lock().unwrap_or_else(|p| p.into_inner());
        for (dir, path) in round {
            expected += 1;
            let job = SyncJob { fs: fs.clone(), dir, path, done: done.clone() };
            if let Err(mpsc::SendError(job)) = jobs.send(job) {
                // No pool (it could not start): run it here.
                job.run();
            }
        }
    }
    SyncJob { fs: fs.clone(), dir: mine.0, path: mine.1, done }.run();
    // One answer per job, including the ones run here; wait for all before returning, so no
    // sync of this batch outlives it. The channel closes when every job is done or dropped, so
    // a job that never answered (a worker that panicked) shows up as a missing answer.
    let mut first_err = None;
    let mut answers = 0usize;
    for r in results.iter() {
        answers += 1;
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    if answers != expected && first_err.is_none() {
        first_err =
            Some(io::Error::other(format!("{} of {expected} fsyncs never answered", expected - answers)));
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graven_fs::sim::SimFs;

    #[test]
    fn written_files_survive_a_crash_only_after_sync() {
        let fs = Arc::new(SimFs::new());
        let mut b = Batch::new(fs.clone());
        b.write_new(Path::new("/d/lost"), b"lost").unwrap();
        fs.crash();
        assert!(fs.read(Path::new("/d/lost"), 100).is_err(), "unsynced file survived a crash");
        let mut b = Batch::new(fs.clone());
        for i in 0..40 {
            b.write_new(&PathBuf::from(format!("/d/{}/f{i}", i % 3)), format!("v{i}").as_bytes()).unwrap();
        }
        b.sync().unwrap();
        fs.crash();
        for i in 0..40 {
            let got = fs.read(&PathBuf::from(format!("/d/{}/f{i}", i % 3)), 100).unwrap();
            assert_eq!(got, format!("v{i}").as_bytes());
        }
    }

    #[test]
    fn a_held_file_is_synced_with_the_batch_but_named_only_when_published() {
        let fs = Arc::new(SimFs::new());
        let mut b = Batch::new(fs.clone());
        b.write_new(Path::new("/d/tile"), b"tile").unwrap();
        b.hold(Path::new("/d/checkpoint"), b"cp").unwrap();
        assert!(b.publish().is_err(), "publish before sync must be refused");
        b.sync().unwrap();
        assert!(fs.read(Path::new("/d/checkpoint"), 100).is_err(), "named before publish");
        let ops = fs.ops();
        b.publish().unwrap();
        // One rename and one directory sync: the held file was already synced.
        assert_eq!(fs.ops() - ops, 2);
        fs.crash();
        assert_eq!(fs.read(Path::new("/d/checkpoint"), 100).unwrap(), b"cp");
        assert_eq!(fs.read(Path::new("/d/tile"), 100).unwrap(), b"tile");
    }

    #[test]
    fn new_files_and_their_directories_are_durable_after_one_sync() {
        let fs = Arc::new(SimFs::new());
        let mut b = Batch::new(fs.clone());
        for i in 0..10 {
            b.write_new(&PathBuf::from(format!("/t/{}/n{i}", i % 4)), format!("n{i}").as_bytes()).unwrap();
        }
        let ops = fs.ops();
        b.sync().unwrap();
        // 10 file syncs and 6 directory syncs (/, /t, /t/0../t/3), no renames.
        assert_eq!(fs.ops() - ops, 16);
        fs.crash();
        for i in 0..10 {
            let got = fs.read(&PathBuf::from(format!("/t/{}/n{i}", i % 4)), 100).unwrap();
            assert_eq!(got, format!("n{i}").as_bytes());
        }
    }

    #[test]
    fn a_directory_left_by_a_dead_process_is_made_durable_with_its_parents() {
        for within in [false, true] {
            let fs = Arc::new(SimFs::new());
            // A first process made /log durable, then created /log/tile/x and died before
            // syncing /log/tile (the machine stayed up, so the directories still exist).
            let mut b = Batch::new(fs.clone());
            b.create_dirs(Path::new("/log")).unwrap();
            b.sync().unwrap();
            fs.create_dir(Path::new("/log/tile")).unwrap();
            fs.create_dir(Path::new("/log/tile/x")).unwrap();
            // The next process writes into the existing directory and syncs.
            let mut b =
                if within { Batch::within(fs.clone(), Path::new("/log")) } else { Batch::new(fs.clone()) };
            b.write_new(Path::new("/log/tile/x/f"), b"data").unwrap();
            b.sync().unwrap();
            fs.crash();
            let survived = fs.read(Path::new("/log/tile/x/f"), 100).is_ok();
            assert_eq!(survived, within, "within the root: {within}");
        }
    }

    #[test]
    fn writing_a_path_twice_keeps_the_second_version() {
        let fs = Arc::new(SimFs::new());
        let mut b = Batch::new(fs.clone());
        b.write_new(Path::new("/a/x"), b"first").unwrap();
        b.write_new(Path::new("/a/x"), b"second").unwrap();
        b.sync().unwrap();
        fs.crash();
        assert_eq!(fs.read(Path::new("/a/x"), 100).unwrap(), b"second");
    }

    #[test]
    fn an_error_in_any_parallel_sync_is_returned() {
        for n in 0..30 {
            let fs = Arc::new(SimFs::new());
            let mut b = Batch::new(fs.clone());
            for i in 0..8 {
                b.write_new(&PathBuf::from(format!("/d/f{i}")), b"data").unwrap();
            }
            fs.fail_after(n, graven_fs::sim::FailMode::Before);
            let r = b.sync();
            // 8 file syncs + 2 directory syncs (/ and /d) = 10 operations.
            assert_eq!(r.is_err(), n < 10, "failure injected after {n} operations");
        }
    }
}
