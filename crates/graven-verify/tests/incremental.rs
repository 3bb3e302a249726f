//! Verification that remembers: incremental runs fetch only what is new, and a log that went
//! back (rollback) or does not extend what was verified (fork) is refused, whoever signed it.
//! Logs are built in memory from graven-core alone; a recording `Fetch` counts every request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeMap;

use graven_core::checkpoint::{Checkpoint, VerifiedCheckpoint};
use graven_core::merkle::{self, HashSource, MemoryTree};
use graven_core::note::SignerKey;
use graven_core::tile;
use graven_core::{Hash, TreeSize, leaf_hash};
use graven_verify::{Fetch, FetchError, Mode, Trust, VerifiedLog, VerifyError, verify_log_since};

const ORIGIN: &str = "incremental.example/log";

fn key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [5; 32]).unwrap()
}

/// A log's entries and tree, from which the files at any size are made.
struct Log {
    entries: Vec<Vec<u8>>,
    tree: MemoryTree,
}

impl Log {
    fn new(prefix: &str, n: u64) -> Self {
        Self::from_entries((0..n).map(|i| format!("{prefix}{i}").into_bytes()).collect())
    }

    fn from_entries(entries: Vec<Vec<u8>>) -> Self {
        let mut tree = MemoryTree::new();
        for e in &entries {
            tree.push(leaf_hash(e));
        }
        Log { entries, tree }
    }

    fn root(&mut self, size: u64) -> Hash {
        merkle::root(&mut self.tree, TreeSize(size)).unwrap()
    }

    fn checkpoint_note(&mut self, size: u64) -> Vec<u8> {
        let body = Checkpoint::new(ORIGIN, TreeSize(size), self.root(size)).unwrap().to_text();
        key().sign(&body).unwrap().into_bytes()
    }

    fn checkpoint(&mut self, size: u64) -> VerifiedCheckpoint {
        VerifiedCheckpoint::open(&self.checkpoint_note(size), &key().verifier(), ORIGIN).unwrap()
    }

    /// Every tile and bundle of the tree of `size`, and its checkpoint.
    fn files(&mut self, size: u64) -> BTreeMap<String, Vec<u8>> {
        let n = TreeSize(size);
        let mut files = BTreeMap::new();
        for t in tile::tiles_for_size(n) {
            let hashes: Vec<Hash> = (0..u64::from(t.width))
                .map(|k| self.tree.node(t.level * 8, t.index * 256 + k).unwrap())
                .collect();
            files.insert(t.path(), tile::encode_hash_tile(&hashes));
        }
        for b in tile::bundles_for_size(n) {
            let mut bytes = Vec::new();
            let first = b.first_entry() as usize;
            for e in &self.entries[first..first + usize::from(b.width)] {
                tile::push_bundle_entry(&mut bytes, e).unwrap();
            }
            files.insert(b.path(), bytes);
        }
        files.insert("checkpoint".into(), self.checkpoint_note(size));
        files
    }

    /// A directory that grew from `old` to `new` entries: the files of both sizes, the newer
    /// checkpoint.
    fn grown(&mut self, old: u64, new: u64) -> Files {
        let mut files = self.files(old);
        files.extend(self.files(new));
        Files { files, requests: Vec::new() }
    }
}

/// Serves a map of files and records every path asked for.
struct Files {
    files: BTreeMap<String, Vec<u8>>,
    requests: Vec<String>,
}

impl Fetch for Files {
    fn fetch(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        self.requests.push(path.to_owned());
        let b = self.files.get(path).cloned();
        assert!(b.as_ref().is_none_or(|b| b.len() as u64 <= limit), "{path} over its limit");
        Ok(b)
    }
    fn location(&self) -> String {
        "memory".into()
    }
}

impl Files {
    fn edit(&mut self, path: &str, at: usize) {
        self.files.get_mut(path).unwrap_or_else(|| panic!("no {path}"))[at] ^= 1;
    }
}

fn run(f: &mut Files, trusted: Option<&VerifiedCheckpoint>, mode: Mode) -> Result<VerifiedLog, VerifyError> {
    f.requests.clear();
    verify_log_since(f, &key().verifier(), None, trusted, mode, |_, _| {})
}

#[test]
fn an_incremental_run_fetches_only_the_new_edge() {
    let mut log = Log::new("e", 900);
    let trusted = log.checkpoint(600);
    let mut f = log.grown(600, 900);
    let v = run(&mut f, Some(&trusted), Mode::Incremental).unwrap();
    // The remembered right edge (600 = 512 + 64 + 16 + 8) is read from the new tree's level-1
    // tile and the level-0 tile that was partial at 600; the bundle that was partial at 600 is
    // re-read (its older 88 entries checked against that tile), then the new bundle and tile.
    assert_eq!(
        f.requests,
        [
            "checkpoint",
            "tile/1/000.p/3",
            "tile/0/002",
            "tile/entries/002",
            "tile/entries/003.p/132",
            "tile/0/003.p/132",
        ]
    );
    let r = v.report();
    assert_eq!(
        (r.size, r.previous_size, r.trust, r.mode),
        (TreeSize(900), Some(TreeSize(600)), Trust::Consistent, Mode::Incremental)
    );
    assert_eq!((r.bundles, r.tiles, r.entries_hashed), (2, 3, 256 + 132));

    // The same log in full: every file of the 900 tree (plus the up-front consistency check).
    let full = run(&mut f, Some(&trusted), Mode::Full).unwrap();
    assert_eq!(full.report().bundles, 4);
    assert_eq!(full.report().entries_hashed, 900);
    assert_eq!(full.report().mode, Mode::Full);
    assert!(f.requests.contains(&"tile/entries/000".to_owned()));

    // Nothing new: only the checkpoint is read.
    let mut same = log.grown(900, 900);
    let at_900 = log.checkpoint(900);
    let v = run(&mut same, Some(&at_900), Mode::Incremental).unwrap();
    assert_eq!(same.requests, ["checkpoint"]);
    assert_eq!(v.report().entries_hashed, 0);
}

#[test]
fn incremental_agrees_with_full_at_every_kind_of_edge() {
    let sizes = [1u64, 2, 3, 255, 256, 257, 511, 512, 513, 600, 65535, 65536, 65537, 66000, 70000];
    let mut log = Log::new("s", 70000);
    for (i, &m) in sizes.iter().enumerate() {
        let trusted = log.checkpoint(m);
        for &n in &sizes[i..] {
            let mut f = log.grown(m, n);
            let inc =
                run(&mut f, Some(&trusted), Mode::Incremental).unwrap_or_else(|e| panic!("{m}->{n}: {e}"));
            let inc_requests = f.requests.clone();
            // No bundle wholly below the remembered size is read again.
            for p in inc_requests.iter().filter(|p| p.starts_with("tile/entries/")) {
                let tile::TlogPath::Entries(b) = tile::parse_path(p).unwrap() else { panic!("{p}") };
                assert!(b.index >= m / 256, "{m}->{n}: read {p}");
            }
            let full = run(&mut f, Some(&trusted), Mode::Full).unwrap();
            assert_eq!(inc.checkpoint().root(), full.checkpoint().root());
            assert_eq!(inc.report().size, TreeSize(n));
            assert!(inc_requests.len() <= f.requests.len(), "{m}->{n}: incremental read more than full");
            // Exactly the bundles from the one at the remembered edge on.
            let expect = if n == m { 0 } else { n.div_ceil(256) - m / 256 };
            assert_eq!(inc.report().bundles, expect, "{m}->{n}: {inc_requests:?}");
            assert!(inc.report().tiles <= full.report().tiles);
        }
    }
}

#[test]
fn a_fork_signed_by_the_logs_own_key_is_caught() {
    let mut honest = Log::new("h", 600);
    let trusted = honest.checkpoint(600);
    // Another history under the same key: identical but for entry 599, then grown to 900.
    let mut entries = Log::new("h", 900).entries;
    entries[599] = b"rewritten".to_vec();
    let mut fork = Log::from_entries(entries);
    for mode in [Mode::Incremental, Mode::Full] {
        let mut f = fork.grown(600, 900);
        let err = run(&mut f, Some(&trusted), mode).unwrap_err();
        let VerifyError::Fork(d) = &err else { panic!("{mode:?}: {err}") };
        assert_eq!(d.remembered, trusted);
        assert_eq!(d.presented.size(), TreeSize(900));
        assert_eq!(d.root_at_remembered_size, Some(fork.root(600)));
        let msg = err.to_string();
        assert!(msg.starts_with("FORK:") && msg.contains("size 600") && msg.contains("size 900"), "{msg}");
        assert!(!f.requests.iter().any(|p| p.starts_with("tile/entries/")), "caught from tiles alone");
    }
    // The fork verifies on its own: only the memory of the honest checkpoint catches it.
    assert_eq!(run(&mut fork.grown(600, 900), None, Mode::Full).unwrap().report().trust, Trust::FirstUse);

    // Same size, another root.
    let mut f = fork.grown(600, 600);
    let err = run(&mut f, Some(&trusted), Mode::Incremental).unwrap_err();
    assert!(matches!(err, VerifyError::Fork(_)), "{err}");
    assert!(err.to_string().contains("already verified root"), "{err}");
}

#[test]
fn a_forked_checkpoint_over_honest_files_is_caught() {
    // The files extend the remembered tree honestly, but the checkpoint is for another tree.
    let mut honest = Log::new("h", 900);
    let trusted = honest.checkpoint(600);
    let mut fork = Log::new("x", 900);
    let mut f = honest.grown(600, 900);
    f.files.insert("checkpoint".into(), fork.checkpoint_note(900));
    let err = run(&mut f, Some(&trusted), Mode::Incremental).unwrap_err();
    assert!(matches!(err, VerifyError::ExtendedRootMismatch { from: 600, size: 900, .. }), "{err}");
}

#[test]
fn a_rollback_is_caught() {
    let mut log = Log::new("r", 900);
    let trusted = log.checkpoint(900);
    let mut f = log.grown(600, 600);
    for mode in [Mode::Incremental, Mode::Full] {
        let err = run(&mut f, Some(&trusted), mode).unwrap_err();
        assert!(matches!(err, VerifyError::Rollback(_)), "{err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("ROLLBACK:") && msg.contains("size 600") && msg.contains("size 900"),
            "{msg}"
        );
        assert!(
            msg.contains(&log.root(900).to_string()) && msg.contains(&log.root(600).to_string()),
            "{msg}"
        );
        assert_eq!(f.requests, ["checkpoint"]);
    }
}

#[test]
fn tampering_with_what_an_incremental_run_reads_is_caught() {
    let mut log = Log::new("t", 900);
    let trusted = log.checkpoint(600);
    let case = |log: &mut Log, path: &str, at: usize| {
        let mut f = log.grown(600, 900);
        f.edit(path, at);
        run(&mut f, Some(&trusted), Mode::Incremental).unwrap_err()
    };
    // An older entry in the bundle at the remembered edge: entry 520 is the 9th of bundle 2,
    // after 8 entries of 2 + 4 bytes ("t512".."t519").
    let err = case(&mut log, "tile/entries/002", 8 * 6 + 2);
    assert!(matches!(err, VerifyError::LeafMismatch { index: 520, .. }), "{err}");
    // A new entry.
    let err = case(&mut log, "tile/entries/003.p/132", 2);
    assert!(matches!(err, VerifyError::LeafMismatch { index: 768, .. }), "{err}");
    // A new hash in a tile.
    let err = case(&mut log, "tile/0/003.p/132", 32 * 5);
    assert!(matches!(err, VerifyError::LeafMismatch { index: 773, .. }), "{err}");
    // An old hash in the tile at the edge: it no longer gives the remembered root.
    let err = case(&mut log, "tile/0/002", 32 * 3);
    assert!(err.divergence().is_some(), "{err}");
    // A bundle the remembered tree held in full is not read by an incremental run, but a full
    // run still finds it.
    let mut f = log.grown(600, 900);
    f.edit("tile/entries/000", 3);
    run(&mut f, Some(&trusted), Mode::Incremental).unwrap();
    let err = run(&mut f, Some(&trusted), Mode::Full).unwrap_err();
    assert!(matches!(err, VerifyError::LeafMismatch { index: 0, .. }), "{err}");
}
