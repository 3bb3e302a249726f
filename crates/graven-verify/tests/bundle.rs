//! The bundle writer and verifier in memory, and archives built to attack the reader.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use graven_core::checkpoint::{Checkpoint, VerifiedCheckpoint};
use graven_core::merkle::{self, MemoryTree};
use graven_core::note::SignerKey;
use graven_core::{LeafIndex, TreeSize, leaf_hash};
use graven_verify::BundleWriter;
use graven_verify::bundle::{self, BundleFailure, KeySource};

fn key() -> SignerKey {
    SignerKey::from_seed("example.com/log", [1; 32]).unwrap()
}

fn leaves(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect()
}

fn tree(leaves: &[Vec<u8>]) -> MemoryTree {
    let mut t = MemoryTree::new();
    for l in leaves {
        t.push(leaf_hash(l));
    }
    t
}

fn signed(k: &SignerKey, t: &mut MemoryTree, size: u64) -> VerifiedCheckpoint {
    let root = merkle::root(t, TreeSize(size)).unwrap();
    let text = Checkpoint::new(k.name(), TreeSize(size), root).unwrap().to_text();
    VerifiedCheckpoint::open(k.sign(&text).unwrap().as_bytes(), &k.verifier(), k.name()).unwrap()
}

/// A bundle of `select` out of 20 leaves, with an older checkpoint of size 7.
fn good_bundle(select: &[u64]) -> Vec<u8> {
    let k = key();
    let ls = leaves(20);
    let mut t = tree(&ls);
    let cp = signed(&k, &mut t, 20);
    let old = signed(&k, &mut t, 7);
    let mut w = BundleWriter::new(Vec::new(), &k.verifier(), &cp).unwrap();
    let cproof = merkle::consistency_proof(&mut t, TreeSize(7), TreeSize(20)).unwrap();
    w.add_older(&old, &cproof).unwrap();
    for &i in select {
        let p = merkle::inclusion_proof(&mut t, LeafIndex(i), TreeSize(20)).unwrap();
        w.add_event(i, &ls[i as usize], &p).unwrap();
    }
    w.finish().unwrap()
}

fn fail(bytes: &[u8]) -> Box<BundleFailure> {
    bundle::verify_bundle(bytes, Some(&key().verifier())).expect_err("must not verify")
}

fn assert_problem(f: &BundleFailure, needle: &str) {
    let all = f.to_string();
    assert!(all.contains(needle), "expected {needle:?} in:\n{all}");
}

#[test]
fn writer_output_verifies_with_the_given_or_the_bundled_key() {
    let b = good_bundle(&[0, 3, 19]);
    let r = bundle::verify_bundle(&b[..], Some(&key().verifier())).unwrap();
    assert_eq!(r.events, vec![0, 3, 19]);
    assert_eq!(r.older.len(), 1);
    assert_eq!(r.older[0].0, 7);
    assert_eq!((r.tree_size, r.key_source), (TreeSize(20), KeySource::Given));
    assert_eq!(r.files, 2 + 2 + 6 + 1);
    let r = bundle::verify_bundle(&b[..], None).unwrap();
    assert_eq!(r.key_source, KeySource::Bundled);
    // Deterministic: the same selection gives the same bytes.
    assert_eq!(good_bundle(&[0, 3, 19]), b);
}

#[test]
fn writer_refuses_proofs_that_do_not_verify() {
    let k = key();
    let ls = leaves(8);
    let mut t = tree(&ls);
    let cp = signed(&k, &mut t, 8);
    let mut w = BundleWriter::new(Vec::new(), &k.verifier(), &cp).unwrap();
    let p = merkle::inclusion_proof(&mut t, LeafIndex(2), TreeSize(8)).unwrap();
    assert!(w.add_event(3, &ls[3], &p).is_err(), "proof of another leaf");
    assert!(w.add_event(2, b"other bytes", &p).is_err(), "bytes that are not the leaf");
    w.add_event(2, &ls[2], &p).unwrap();
    assert!(w.add_event(2, &ls[2], &p).is_err(), "indices must increase");
    let other = SignerKey::from_seed("example.com/log", [2; 32]).unwrap();
    assert!(
        BundleWriter::new(Vec::new(), &other.verifier(), &cp).is_err(),
        "checkpoint not signed by that key"
    );
}

/// A raw ustar header with any name bytes (the tar crate refuses to build some of these).
fn raw_entry(out: &mut Vec<u8>, name: &[u8], kind: u8, declared: u64, data: &[u8]) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{declared:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// `good` with its end-of-archive marker removed, then `extra` entries, then the marker.
fn with_extra(good: &[u8], extra: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = good.to_vec();
    while out.len() >= 512 && out[out.len() - 512..].iter().all(|&b| b == 0) {
        out.truncate(out.len() - 512);
    }
    // Put the hostile entries before the manifest is not needed: after it they are refused
    // for that reason too, so insert them at the front instead.
    let mut front = Vec::new();
    extra(&mut front);
    front.extend_from_slice(&out);
    front.extend_from_slice(&[0u8; 1024]);
    front
}

#[test]
fn hostile_paths_and_entry_types_are_refused() {
    let good = good_bundle(&[1]);
    for (name, kind) in [
        (&b"/etc/passwd"[..], b'0'),
        (b"../events/1", b'0'),
        (b"events/../checkpoint", b'0'),
        (b"./checkpoint", b'0'),
        (b"events/01", b'0'),
        (b"events/-1", b'0'),
        (b"events/18446744073709551616", b'0'),
        (b"unknown", b'0'),
        (b"events", b'5'),
        (b"events/5", b'2'),
        (b"././@LongLink", b'L'),
        (b"PaxHeaders/x", b'x'),
    ] {
        let bytes = with_extra(&good, |out| raw_entry(out, name, kind, 2, b"{}"));
        let f = fail(&bytes);
        let name = String::from_utf8_lossy(name);
        let want =
            if kind == b'0' && !matches!(&*name, "events/5") { "not a file a bundle may hold" } else { "" };
        assert_problem(&f, &format!("archive entry {name:?}"));
        assert_problem(&f, want);
    }
}

#[test]
fn declared_sizes_are_bounded_before_reading() {
    let good = good_bundle(&[1]);
    // An event that claims 1 GiB: refused on the header alone; the archive then ends early,
    // which the tar reader reports, and nothing near 1 GiB is allocated.
    let bytes = with_extra(&good, |out| raw_entry(out, b"events/2", b'0', 1 << 30, b"{}"));
    let f = fail(&bytes);
    assert_problem(&f, "archive entry \"events/2\": 1073741824 bytes, over the 65535-byte limit");
    // A proof over 8 KiB, actually present.
    let big = vec![b' '; 9000];
    let bytes = with_extra(&good, |out| raw_entry(out, b"proofs/2", b'0', big.len() as u64, &big));
    assert_problem(&fail(&bytes), "over the 8192-byte limit");
    // A path longer than any valid one.
    let long = vec![b'a'; 99];
    let bytes = with_extra(&good, |out| raw_entry(out, &long, b'0', 0, b""));
    assert_problem(&fail(&bytes), "not a file a bundle may hold");
}

#[test]
fn duplicates_and_files_after_the_manifest_are_refused() {
    let good = good_bundle(&[1]);
    let bytes = with_extra(&good, |out| raw_entry(out, b"checkpoint", b'0', 2, b"{}"));
    assert_problem(&fail(&bytes), "archive entry \"checkpoint\": appears twice");
    let mut bytes = good.clone();
    while bytes[bytes.len() - 512..].iter().all(|&b| b == 0) {
        bytes.truncate(bytes.len() - 512);
    }
    raw_entry(&mut bytes, b"events/3", b'0', 2, b"{}");
    bytes.extend_from_slice(&[0u8; 1024]);
    assert_problem(&fail(&bytes), "follows the manifest");
}

#[test]
fn garbage_and_truncation_never_panic() {
    let good = good_bundle(&[1, 2, 3]);
    for cut in [0, 100, 512, 1000, good.len() / 2, good.len() - 1100] {
        let f = fail(&good[..cut]);
        assert!(!f.problems.is_empty(), "cut at {cut}");
        if cut > 0 {
            let all = f.to_string();
            assert!(all.contains("manifest") || all.contains("tar"), "cut at {cut}: {all}");
        }
    }
    for seed in 0..64u64 {
        let mut b = good.clone();
        let at = (seed * 7919) as usize % b.len();
        b[at] ^= 0x5a;
        // Any flip in a file's bytes or in a header must be caught (padding is not data).
        let r = bundle::verify_bundle(&b[..], Some(&key().verifier()));
        let in_padding = good[at] == 0 && r.is_ok();
        assert!(r.is_err() || in_padding, "flip at {at} went unnoticed");
    }
}

/// Time-stamp tokens in a bundle, from a real TSA (`openssl ts -reply` over HTTP with a test
/// CA, `graven_testkit::tsa`): checked with the roots given, listed as unchecked without them,
/// refused with another root, for bytes other than their checkpoint's, for a size the bundle
/// has no checkpoint of, and out of order (the older checkpoint re-signed by the TSA's key an
/// hour after the newer one).
#[test]
fn timestamps_are_checked_against_the_checkpoint_of_their_size() {
    use graven_testkit::tsa::{pki, redated};
    use graven_tsa::{TsaClient, TsaClientConfig, TsaRoots, TsaVerifier};
    let p = pki();
    let roots = TsaVerifier::new(TsaRoots::from_pem(&p.root.pem()).unwrap());
    let rogue = TsaVerifier::new(TsaRoots::from_pem(&p.rogue_root.pem()).unwrap());
    let client = TsaClient::new(TsaClientConfig::new(&p.rsa.url)).unwrap();
    let k = key();
    let ls = leaves(20);
    let mut t = tree(&ls);
    let cp = signed(&k, &mut t, 20);
    let old = signed(&k, &mut t, 7);
    let old_token = client.timestamp(old.note_bytes(), 1).unwrap();
    let new_token = client.timestamp(cp.note_bytes(), 2).unwrap();
    let build = |tokens: &[(u64, &[u8])]| {
        let mut w = BundleWriter::new(Vec::new(), &k.verifier(), &cp).unwrap();
        let cproof = merkle::consistency_proof(&mut tree(&ls), TreeSize(7), TreeSize(20)).unwrap();
        w.add_older(&old, &cproof).unwrap();
        for (size, token) in tokens {
            w.add_timestamp(*size, token, None).unwrap();
        }
        let proof = merkle::inclusion_proof(&mut tree(&ls), LeafIndex(3), TreeSize(20)).unwrap();
        w.add_event(3, &ls[3], &proof).unwrap();
        w.finish().unwrap()
    };
    let b = build(&[(7, &old_token), (20, &new_token)]);
    let vk = k.verifier();
    let r = bundle::verify_bundle_with(&b[..], Some(&vk), Some(&roots)).unwrap();
    assert_eq!(r.stamps.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [7, 20]);
    assert!(r.unchecked_stamps.is_empty());
    let r = bundle::verify_bundle(&b[..], Some(&vk)).unwrap();
    assert_eq!(r.unchecked_stamps, [7, 20]);
    assert!(r.stamps.is_empty());
    let f = bundle::verify_bundle_with(&b[..], Some(&vk), Some(&rogue)).unwrap_err();
    assert_problem(&f, "timestamps/7: the token is refused");
    assert_problem(&f, "does not chain to a configured root");

    // The writer checks a token against its checkpoint when given the roots.
    let mut w = BundleWriter::new(Vec::new(), &vk, &cp).unwrap();
    let err = w.add_timestamp(20, &old_token, Some(&roots)).unwrap_err().to_string();
    assert!(err.contains("stamps other bytes"), "{err}");
    assert!(
        w.add_timestamp(7, &old_token, None).unwrap_err().to_string().contains("no checkpoint of that size")
    );
    // Swapped, the tokens stamp other bytes than the checkpoints of their names.
    let b = build(&[(7, &new_token), (20, &old_token)]);
    let f = bundle::verify_bundle_with(&b[..], Some(&vk), Some(&roots)).unwrap_err();
    assert_problem(&f, "timestamps/7: the token is refused: the token stamps other bytes");
    assert_problem(&f, "timestamps/20: the token is refused: the token stamps other bytes");
    // Out of order: the older checkpoint's token re-dated to an hour from now.
    let ahead = {
        let t = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        graven_tsa::GenTime::new(secs, 0).unwrap().to_string()
    };
    let ahead: String = ahead.chars().filter(|c| c.is_ascii_digit()).take(14).collect::<String>() + "Z";
    let late_old = redated(&p.dir, &old_token, &p.rsa.signer, &[], &ahead);
    let b = build(&[(7, &late_old), (20, &new_token)]);
    let f = bundle::verify_bundle_with(&b[..], Some(&vk), Some(&roots)).unwrap_err();
    assert_problem(&f, "timestamps/20: the checkpoint of size 20 is stamped");
    assert_problem(&f, "a later checkpoint never carries an earlier time");
}
