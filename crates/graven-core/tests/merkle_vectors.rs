//! RFC 6962 vectors: the transparency-dev probes (including the negative ones) and the
//! classic 8-leaf reference tree.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::path::Path;

use common::{b64, read_json, unhex, vectors};
use graven_core::merkle::{self, MemoryTree};
use graven_core::{Hash, LeafIndex, TreeSize, empty_root, leaf_hash, node_hash};
use serde_json::Value;

fn json_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn proof_of(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(a) => a.iter().map(|p| b64(p.as_str().unwrap())).collect(),
        other => panic!("unexpected proof {other}"),
    }
}

/// A root or leaf hash field; `None` if it is not 32 bytes (such probes must fail).
fn hash_of(v: &Value) -> Option<Hash> {
    Hash::from_slice(&b64(v.as_str().unwrap())).ok()
}

#[test]
fn transparency_dev_inclusion_probes() {
    let mut files = Vec::new();
    json_files(&vectors().join("merkle/transparency-dev/testdata/inclusion"), &mut files);
    assert!(files.len() >= 90, "expected the 98 inclusion probes, found {}", files.len());
    for f in &files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let index = v["leafIdx"].as_u64().unwrap();
        let size = v["treeSize"].as_u64().unwrap();
        let proof = proof_of(&v["proof"]);
        let got = match (hash_of(&v["leafHash"]), hash_of(&v["root"])) {
            (Some(leaf), Some(root)) => {
                merkle::verify_inclusion(&leaf, LeafIndex(index), TreeSize(size), &proof, &root).is_ok()
            }
            _ => false,
        };
        assert_eq!(got, !want_err, "{}: {}", f.display(), v["desc"]);
    }
}

/// Probes we answer differently on purpose. transparency-dev accepts equal sizes with equal
/// *byte strings* as roots, whatever their length; Graven's roots are 32-byte hashes, so a
/// root of any other length is rejected before any proof logic runs.
const DELIBERATE_DEVIATIONS: &[&str] = &["sizes-are-equal-one-and-proof-is-empty.json"];

#[test]
fn transparency_dev_consistency_probes() {
    let mut files = Vec::new();
    json_files(&vectors().join("merkle/transparency-dev/testdata/consistency"), &mut files);
    assert!(files.len() >= 90, "expected the 98 consistency probes, found {}", files.len());
    let mut deviations = 0;
    for f in &files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let proof = proof_of(&v["proof"]);
        let got = match (
            hash_of(&v["root1"]),
            hash_of(&v["root2"]),
            v["size1"].as_u64().unwrap(),
            v["size2"].as_u64().unwrap(),
        ) {
            (Some(r1), Some(r2), s1, s2) => {
                merkle::verify_consistency(TreeSize(s1), TreeSize(s2), &r1, &r2, &proof).is_ok()
            }
            _ => false,
        };
        let name = f.file_name().unwrap().to_str().unwrap();
        if DELIBERATE_DEVIATIONS.contains(&name) {
            // Our roots are typed 32-byte hashes: a 12-byte "root" cannot even be passed in.
            assert!(hash_of(&v["root1"]).is_none() && !want_err, "{name} is no longer a deviation");
            deviations += 1;
            continue;
        }
        assert_eq!(got, !want_err, "{}: {}", f.display(), v["desc"]);
    }
    assert_eq!(deviations, DELIBERATE_DEVIATIONS.len());
}

/// The "garbage" probes put an empty string in the proof list; the element-length check must
/// be what rejects them, not an accident of the arithmetic.
#[test]
fn empty_proof_element_is_a_length_error() {
    let v = read_json("merkle/transparency-dev/testdata/inclusion/0/preceding-garbage.json");
    let leaf = hash_of(&v["leafHash"]).unwrap();
    let root = hash_of(&v["root"]).unwrap();
    let err = merkle::verify_inclusion(&leaf, LeafIndex(0), TreeSize(1), &proof_of(&v["proof"]), &root)
        .unwrap_err();
    assert_eq!(err, merkle::VerifyError::ElementLength { position: 0, len: 0 });
}

fn h(s: &str) -> Hash {
    Hash::from_slice(&unhex(s)).unwrap()
}

fn reference_tree() -> (Value, MemoryTree) {
    let v = read_json("merkle/rfc6962-reference-tree.json");
    let mut t = MemoryTree::new();
    for leaf in v["leaves_hex"].as_array().unwrap() {
        t.push(leaf_hash(&unhex(leaf.as_str().unwrap())));
    }
    (v, t)
}

#[test]
fn reference_tree_hasher_kats() {
    let (v, _) = reference_tree();
    let kats = v["hasher_kats"].as_array().unwrap();
    assert_eq!(kats.len(), 4);
    for k in kats {
        let want = k["want_hex"].as_str().unwrap();
        let got = match k["kind"].as_str().unwrap() {
            "empty_root" => empty_root().to_hex(),
            "leaf" => leaf_hash(&unhex(k["leaf_hex"].as_str().unwrap())).to_hex(),
            "node" => {
                // The KAT hashes raw byte strings, not 32-byte hashes: compute it directly.
                use sha2::Digest;
                let mut d = sha2::Sha256::new();
                d.update([1u8]);
                d.update(unhex(k["left_hex"].as_str().unwrap()));
                d.update(unhex(k["right_hex"].as_str().unwrap()));
                graven_core::hex::encode(&d.finalize())
            }
            other => panic!("unknown kat kind {other}"),
        };
        assert_eq!(got, want, "{}", k["desc"]);
    }
    // node_hash itself, on 32-byte inputs, against the tree's level-1 node.
    let l0 = leaf_hash(&[]);
    let l1 = leaf_hash(&[0]);
    assert_eq!(node_hash(&l0, &l1).to_hex(), v_level(&v, 1, 0));
}

fn v_level(v: &Value, level: usize, i: usize) -> String {
    v["node_hashes_by_level_hex"][level][i].as_str().unwrap().to_owned()
}

#[test]
fn reference_tree_roots_and_nodes() {
    let (v, mut full) = reference_tree();
    let roots = v["roots_by_size_hex"].as_array().unwrap();
    assert_eq!(roots.len(), 9);
    for (size, want) in roots.iter().enumerate() {
        let got = merkle::root(&mut full, TreeSize(size as u64)).unwrap();
        assert_eq!(got.to_hex(), want.as_str().unwrap(), "root of size {size}");
        // The streaming right edge agrees.
        let mut edge = merkle::RightEdge::new();
        for leaf in v["leaves_hex"].as_array().unwrap().iter().take(size) {
            edge.push(leaf_hash(&unhex(leaf.as_str().unwrap())), |_, _, _| {});
        }
        assert_eq!(edge.root().to_hex(), want.as_str().unwrap());
    }
    use graven_core::merkle::HashSource;
    for (level, hashes) in v["node_hashes_by_level_hex"].as_array().unwrap().iter().enumerate() {
        for (i, want) in hashes.as_array().unwrap().iter().enumerate() {
            assert_eq!(full.node(level as u8, i as u64).unwrap().to_hex(), want.as_str().unwrap());
        }
    }
}

#[test]
fn reference_tree_proofs() {
    let (v, mut t) = reference_tree();
    let roots: Vec<Hash> =
        v["roots_by_size_hex"].as_array().unwrap().iter().map(|r| h(r.as_str().unwrap())).collect();
    let incl = v["inclusion_proofs"].as_array().unwrap();
    assert_eq!(incl.len(), 5);
    for p in incl {
        let i = p["leaf_index"].as_u64().unwrap();
        let n = p["tree_size"].as_u64().unwrap();
        let want: Vec<Hash> =
            p["proof_hex"].as_array().unwrap().iter().map(|x| h(x.as_str().unwrap())).collect();
        let got = merkle::inclusion_proof(&mut t, LeafIndex(i), TreeSize(n)).unwrap();
        assert_eq!(got, want, "inclusion {i} in {n}");
        let leaf = leaf_hash(&unhex(v["leaves_hex"][i as usize].as_str().unwrap()));
        let bytes: Vec<[u8; 32]> = got.iter().map(|x| x.0).collect();
        let ok =
            merkle::verify_inclusion(&leaf, LeafIndex(i), TreeSize(n), &bytes, &roots[n as usize]).unwrap();
        assert_eq!(ok.index(), LeafIndex(i));
    }
    let cons = v["consistency_proofs"].as_array().unwrap();
    assert_eq!(cons.len(), 5);
    for p in cons {
        let m = p["size1"].as_u64().unwrap();
        let n = p["size2"].as_u64().unwrap();
        let want: Vec<Hash> =
            p["proof_hex"].as_array().unwrap().iter().map(|x| h(x.as_str().unwrap())).collect();
        let got = merkle::consistency_proof(&mut t, TreeSize(m), TreeSize(n)).unwrap();
        assert_eq!(got, want, "consistency {m} -> {n}");
        let bytes: Vec<[u8; 32]> = got.iter().map(|x| x.0).collect();
        merkle::verify_consistency(TreeSize(m), TreeSize(n), &roots[m as usize], &roots[n as usize], &bytes)
            .unwrap();
    }
}

#[test]
fn consistency_from_zero_is_refused_both_ways() {
    let (_, mut t) = reference_tree();
    assert!(matches!(
        merkle::consistency_proof(&mut t, TreeSize(0), TreeSize(8)),
        Err(merkle::ProofError::FromEmpty)
    ));
    let r = empty_root();
    let none: [[u8; 32]; 0] = [];
    assert_eq!(
        merkle::verify_consistency(TreeSize(0), TreeSize(0), &r, &r, &none).unwrap_err(),
        merkle::VerifyError::FromEmpty
    );
}
