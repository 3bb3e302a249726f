//! `graven_verify::remote` against a log directory served over loopback HTTP by a small test
//! server (the tlog-tiles files, and Graven's two proof routes computed from the same tree),
//! honest and then tampered with in each way a server could lie.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use graven_core::checkpoint::{Checkpoint, VerifiedCheckpoint};
use graven_core::merkle::{self, HashSource, MemoryTree};
use graven_core::note::SignerKey;
use graven_core::tile::{self, TileId};
use graven_core::{Hash, LeafIndex, TreeSize, leaf_hash};
use graven_testkit::net::{Response, serve};
use graven_verify::remote::{self, LogTiles, RemoteError};
use graven_verify::{HttpFetch, VerifyError, fetch_checkpoint};

const ORIGIN: &str = "remote.example/log";
const SIZE: u64 = 310;

fn key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [3; 32]).unwrap()
}

fn entry(i: u64) -> Vec<u8> {
    format!("{{\"action\":\"a.{i}\"}}").into_bytes()
}

/// What the test server changes in its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    None,
    /// One byte of the first inclusion proof element flipped.
    ProofElement,
    /// The inclusion answer claims the leaf hash of the next entry.
    LeafHash,
    /// The inclusion answer claims another root.
    Root,
    /// The inclusion answer is for the next index.
    OtherIndex,
    /// One byte of the first consistency proof element flipped.
    ConsistencyElement,
    /// The entry in its bundle is altered (the tiles are not).
    Bundle(u64),
    /// The entry is altered and its level-0 tile hash changed to match (higher tiles are not).
    EntryAndTile(u64),
    /// The checkpoint is signed by another key of the same name.
    OtherKey,
    /// The proof routes answer text that is not JSON.
    NotJson,
    /// The proof routes answer 500.
    ServerError,
    /// The proof routes do not exist (a static tile mirror).
    NoProofRoutes,
}

/// A log of `SIZE` entries in a directory, and a server for it.
struct Served {
    _dir: tempfile::TempDir,
    url: String,
    tamper: Arc<Mutex<Tamper>>,
    tree: Arc<Mutex<MemoryTree>>,
}

impl Served {
    fn new() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = MemoryTree::new();
        for i in 0..SIZE {
            tree.push(leaf_hash(&entry(i)));
        }
        write_log(dir.path(), &mut tree);
        let tamper = Arc::new(Mutex::new(Tamper::None));
        let tree = Arc::new(Mutex::new(tree));
        let (root, t, tr) = (dir.path().to_path_buf(), tamper.clone(), tree.clone());
        let server = serve(move |req| answer(&req.path, &root, *t.lock().unwrap(), &tr));
        let url = format!("{}/", server.url());
        Served { _dir: dir, url, tamper, tree }
    }

    fn set(&self, t: Tamper) {
        *self.tamper.lock().unwrap() = t;
    }

    fn fetch(&self) -> HttpFetch {
        HttpFetch::new(&self.url)
    }

    fn checkpoint(&self) -> VerifiedCheckpoint {
        fetch_checkpoint(&mut self.fetch(), &key().verifier(), None).unwrap()
    }

    fn root(&self, size: u64) -> Hash {
        merkle::root(&mut *self.tree.lock().unwrap(), TreeSize(size)).unwrap()
    }
}

fn checkpoint_note(signer: &SignerKey, tree: &mut MemoryTree) -> Vec<u8> {
    let root = merkle::root(tree, TreeSize(SIZE)).unwrap();
    let body = Checkpoint::new(ORIGIN, TreeSize(SIZE), root).unwrap().to_text();
    signer.sign(&body).unwrap().into_bytes()
}

fn write_log(dir: &Path, tree: &mut MemoryTree) {
    let put = |rel: &str, bytes: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    for t in tile::tiles_for_size(TreeSize(SIZE)) {
        let hashes: Vec<Hash> =
            (0..u64::from(t.width)).map(|k| tree.node(t.level * 8, t.index * 256 + k).unwrap()).collect();
        put(&t.path(), &tile::encode_hash_tile(&hashes));
    }
    for b in tile::bundles_for_size(TreeSize(SIZE)) {
        put(&b.path(), &bundle(b.first_entry(), b.width, None));
    }
    put("checkpoint", &checkpoint_note(&key(), tree));
}

/// The bundle starting at `first` with `width` entries, entry `altered` changed.
fn bundle(first: u64, width: u16, altered: Option<u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    for i in first..first + u64::from(width) {
        let mut e = entry(i);
        if Some(i) == altered {
            e[2] = b'X';
        }
        tile::push_bundle_entry(&mut bytes, &e).unwrap();
    }
    bytes
}

fn altered_entry(i: u64) -> Vec<u8> {
    let mut e = entry(i);
    e[2] = b'X';
    e
}

fn query(q: &str, name: &str) -> u64 {
    q.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap().parse().unwrap()
}

fn b64(hashes: &[Hash]) -> String {
    let items: Vec<String> = hashes.iter().map(|h| format!("\"{}\"", h.to_base64())).collect();
    format!("[{}]", items.join(","))
}

fn flip(h: &mut Hash) {
    h.0[0] ^= 1;
}

/// The answer to one request: the file or proof asked for, changed as `tamper` says.
fn answer(target: &str, root: &Path, tamper: Tamper, tree: &Mutex<MemoryTree>) -> Response {
    let target = target.trim_start_matches('/');
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let proof_route = path.starts_with("v1/proofs/");
    let (status, body) = match tamper {
        Tamper::NotJson if proof_route => (200, b"<html>hello</html>".to_vec()),
        Tamper::ServerError if proof_route => (500, b"{}".to_vec()),
        Tamper::NoProofRoutes if proof_route => (404, Vec::new()),
        _ if path == "v1/proofs/inclusion" => {
            let (index, size) = (query(q, "index"), query(q, "tree_size"));
            let mut tree = tree.lock().unwrap();
            let mut proof = merkle::inclusion_proof(&mut *tree, LeafIndex(index), TreeSize(size)).unwrap();
            let mut root = merkle::root(&mut *tree, TreeSize(size)).unwrap();
            let mut leaf = tree.node(0, index).unwrap();
            let mut answered = index;
            match tamper {
                Tamper::ProofElement => flip(&mut proof[0]),
                Tamper::LeafHash => leaf = tree.node(0, index + 1).unwrap(),
                Tamper::Root => flip(&mut root),
                Tamper::OtherIndex => answered += 1,
                _ => {}
            }
            let json = format!(
                "{{\"index\":{answered},\"leaf_hash\":\"{}\",\"proof\":{},\"root\":\"{}\",\"tree_size\":{size}}}",
                leaf.to_base64(),
                b64(&proof),
                root.to_base64()
            );
            (200, json.into_bytes())
        }
        _ if path == "v1/proofs/consistency" => {
            let (from, to) = (query(q, "from"), query(q, "to"));
            let mut tree = tree.lock().unwrap();
            let mut proof = merkle::consistency_proof(&mut *tree, TreeSize(from), TreeSize(to)).unwrap();
            if tamper == Tamper::ConsistencyElement {
                flip(&mut proof[0]);
            }
            let (rf, rt) = (
                merkle::root(&mut *tree, TreeSize(from)).unwrap(),
                merkle::root(&mut *tree, TreeSize(to)).unwrap(),
            );
            let json = format!(
                "{{\"from\":{from},\"proof\":{},\"root_from\":\"{}\",\"root_to\":\"{}\",\"to\":{to}}}",
                b64(&proof),
                rf.to_base64(),
                rt.to_base64()
            );
            (200, json.into_bytes())
        }
        Tamper::OtherKey if path == "checkpoint" => {
            let other = SignerKey::from_seed(ORIGIN, [4; 32]).unwrap();
            (200, checkpoint_note(&other, &mut tree.lock().unwrap()))
        }
        Tamper::Bundle(i) | Tamper::EntryAndTile(i)
            if path == tile::bundle_for_entry(i, TreeSize(SIZE)).unwrap().path() =>
        {
            let b = tile::bundle_for_entry(i, TreeSize(SIZE)).unwrap();
            (200, bundle(b.first_entry(), b.width, Some(i)))
        }
        Tamper::EntryAndTile(i) if path == level0_tile(i).path() => {
            let t = level0_tile(i);
            let mut tree = tree.lock().unwrap();
            let mut hashes: Vec<Hash> =
                (0..u64::from(t.width)).map(|k| tree.node(0, t.index * 256 + k).unwrap()).collect();
            hashes[(i % 256) as usize] = leaf_hash(&altered_entry(i));
            (200, tile::encode_hash_tile(&hashes))
        }
        _ => match std::fs::read(safe_join(root, path)) {
            Ok(b) => (200, b),
            Err(_) => (404, Vec::new()),
        },
    };
    Response::status(status).body(body)
}

fn level0_tile(i: u64) -> TileId {
    tile::tiles_for_size(TreeSize(SIZE)).into_iter().find(|t| t.level == 0 && t.index == i / 256).unwrap()
}

fn safe_join(root: &Path, rel: &str) -> PathBuf {
    assert!(!rel.contains(".."), "{rel}");
    root.join(rel)
}

#[test]
fn a_served_proof_is_checked_end_to_end() {
    let s = Served::new();
    let cp = s.checkpoint();
    let mut f = s.fetch();
    for (index, size) in [(7, None), (305, None), (7, Some(100)), (0, Some(1)), (309, Some(SIZE))] {
        let p = remote::prove_inclusion(&mut f, &cp, index, size).unwrap();
        let n = size.unwrap_or(SIZE);
        assert_eq!(p.entry(), entry(index), "{index}");
        assert_eq!(p.inclusion().index(), LeafIndex(index));
        assert_eq!(p.inclusion().size(), TreeSize(n));
        assert_eq!(p.inclusion().leaf_hash(), leaf_hash(&entry(index)));
        assert_eq!(p.inclusion().root(), s.root(n));
        assert_eq!(p.checkpoint().note_bytes(), cp.note_bytes());
        match p.consistency() {
            Some((c, proof)) => {
                assert!(n < SIZE, "{index} at {n}");
                assert_eq!((c.from(), c.to(), c.root_to()), (TreeSize(n), TreeSize(SIZE), cp.root()));
                assert!(!proof.is_empty());
            }
            None => assert_eq!(n, SIZE, "{index}: a proof at the checkpoint's size needs no consistency"),
        }
    }
}

#[test]
fn every_lie_in_a_served_proof_is_refused_as_evidence() {
    let s = Served::new();
    let cp = s.checkpoint();
    type Check = fn(&RemoteError) -> bool;
    let cases: [(Tamper, Option<u64>, Check); 8] = [
        (Tamper::ProofElement, None, |e| matches!(e, RemoteError::NotIncluded { index: 7, .. })),
        (Tamper::ProofElement, Some(100), |e| matches!(e, RemoteError::NotIncluded { index: 7, .. })),
        (Tamper::LeafHash, None, |e| matches!(e, RemoteError::LeafHashMismatch { index: 7, .. })),
        (Tamper::Root, None, |e| matches!(e, RemoteError::RootMismatch { .. })),
        (Tamper::Root, Some(100), |e| matches!(e, RemoteError::Inconsistent { size: 100, .. })),
        (Tamper::OtherIndex, None, |e| matches!(e, RemoteError::WrongQuestion { index: 8, size: SIZE })),
        (Tamper::ConsistencyElement, Some(100), |e| matches!(e, RemoteError::Inconsistent { size: 100, .. })),
        // The entry the tiles hold is not the leaf the (honest) proof is for.
        (Tamper::Bundle(7), None, |e| matches!(e, RemoteError::LeafHashMismatch { index: 7, .. })),
    ];
    for (tamper, size, check) in cases {
        s.set(tamper);
        let e = remote::prove_inclusion(&mut s.fetch(), &cp, 7, size).unwrap_err();
        assert!(check(&e), "{tamper:?} at {size:?}: {e:?}");
        assert!(e.is_evidence(), "{tamper:?}: {e}");
    }
    s.set(Tamper::None);
    assert!(remote::prove_inclusion(&mut s.fetch(), &cp, 7, None).is_ok(), "the honest server again");
}

#[test]
fn unreadable_answers_and_impossible_questions_are_not_evidence() {
    let s = Served::new();
    let cp = s.checkpoint();
    for tamper in [Tamper::NotJson, Tamper::ServerError, Tamper::NoProofRoutes] {
        s.set(tamper);
        let e = remote::prove_inclusion(&mut s.fetch(), &cp, 7, None).unwrap_err();
        assert!(matches!(e, RemoteError::Answer { .. }), "{tamper:?}: {e:?}");
        assert!(!e.is_evidence(), "{tamper:?}: {e}");
        assert!(e.to_string().contains("v1/proofs/inclusion"), "{e}");
    }
    s.set(Tamper::None);
    let e = remote::prove_inclusion(&mut s.fetch(), &cp, 7, Some(SIZE + 1)).unwrap_err();
    assert!(matches!(e, RemoteError::SizeBeyondCheckpoint { size: 311, checkpoint_size: SIZE }), "{e:?}");
    let e = remote::prove_inclusion(&mut s.fetch(), &cp, 100, Some(100)).unwrap_err();
    assert!(matches!(e, RemoteError::IndexOutOfTree { index: 100, size: 100 }), "{e:?}");
    assert!(!e.is_evidence());
    // Nobody listening: an outage.
    let mut f = HttpFetch::new(&graven_testkit::net::dead_url());
    let e = remote::prove_inclusion(&mut f, &cp, 7, None).unwrap_err();
    assert!(!e.is_evidence(), "{e}");
    assert!(fetch_checkpoint(&mut f, &key().verifier(), None).unwrap_err().is_outage());
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let s = Served::new();
    s.set(Tamper::OtherKey);
    let e = fetch_checkpoint(&mut s.fetch(), &key().verifier(), None).unwrap_err();
    assert!(matches!(e, VerifyError::Checkpoint(_)) && !e.is_outage(), "{e:?}");
}

#[test]
fn entries_from_the_tiles_are_proven_included_in_the_checkpoint() {
    let s = Served::new();
    let cp = s.checkpoint();
    let mut tiles = LogTiles::new(cp.clone(), s.fetch(), s.fetch());
    for index in [0, 7, 255, 256, 300, 305, SIZE - 1] {
        let e = tiles.entry(index).unwrap();
        assert_eq!((e.index(), e.entry()), (index, entry(index).as_slice()));
        assert_eq!(e.leaf_hash(), leaf_hash(&entry(index)));
        merkle::verify_inclusion(&e.leaf_hash(), LeafIndex(index), cp.size(), &raw(e.proof()), &cp.root())
            .unwrap();
    }
    assert!(matches!(tiles.entry(SIZE), Err(RemoteError::IndexOutOfTree { index: SIZE, size: SIZE })));
    // A consistency proof from an older size, built from the tiles, holds against both roots.
    let proof = tiles.consistency_proof(TreeSize(100)).unwrap();
    merkle::verify_consistency(TreeSize(100), cp.size(), &s.root(100), &cp.root(), &raw(&proof)).unwrap();
    assert!(matches!(tiles.consistency_proof(TreeSize(0)), Err(RemoteError::Unprovable(_))));

    // An altered entry does not match its tile; an altered entry whose tile was altered to
    // match is not in the signed tree. Both are evidence; other bundles still read.
    for (tamper, check) in [
        (
            Tamper::Bundle(7),
            (|e| matches!(e, RemoteError::EntryNotInTile { index: 7 })) as fn(&RemoteError) -> bool,
        ),
        (Tamper::EntryAndTile(7), |e| matches!(e, RemoteError::NotInCheckpoint { index: 7 })),
    ] {
        s.set(tamper);
        let mut tiles = LogTiles::new(cp.clone(), s.fetch(), s.fetch());
        let e = tiles.entry(7).unwrap_err();
        assert!(check(&e) && e.is_evidence(), "{tamper:?}: {e:?}");
        assert_eq!(tiles.entry(300).unwrap().entry(), entry(300));
    }
    // A proof for a leaf hash the tree does not hold at that index is refused.
    s.set(Tamper::None);
    let mut tiles = LogTiles::new(cp.clone(), s.fetch(), s.fetch());
    let wrong = leaf_hash(&altered_entry(9));
    assert!(matches!(tiles.inclusion(9, wrong), Err(RemoteError::NotInCheckpoint { index: 9 })));
}

fn raw(hashes: &[Hash]) -> Vec<[u8; 32]> {
    hashes.iter().map(|h| h.0).collect()
}
