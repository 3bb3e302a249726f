//! C2SP `tlog-proof@v1` files: the parser (`graven_core::tlog_proof::TlogProof::parse`) and the
//! verifier that `graven verify FILE.tlog-proof` runs (`graven_verify::tlog_proof`).
//!
//! A fixed log of 37 entries (`entry <i>`), signed by a fixed key and cosigned by three fixed
//! witnesses, under the policy "the log, any two of the three witnesses". The first byte chooses
//! a mode.
//!
//! Raw (any first byte but `0xff`; the next byte is the length of the event, then the event,
//! then the file):
//! - `TlogProof::parse` never panics; what it accepts re-encodes to the input exactly (one
//!   encoding), re-parses to the same value, has at most 64 proof lines and canonical `extra`.
//! - `verify_tlog_proof` never panics; what it accepts proves the leaf hash of the event given,
//!   at the file's index, under a checkpoint signed by the log's key with at least two valid
//!   cosignatures, and its root is one the fixed log signed (the honest tree's root at that size).
//!
//! Structured (first byte `0xff`): the next bytes choose an entry, which witnesses cosign, and
//! one of eight damages (none, a flipped proof bit, a dropped or an added proof line, another
//! index, another event, a cosignature removed, the size edited). `make_tlog_proof` writes the
//! honest proof, which verifies exactly when two witnesses cosigned; every damage is refused.
#![no_main]

use std::sync::LazyLock;

use graven_core::checkpoint::Checkpoint;
use graven_core::cosignature::Cosigner;
use graven_core::hash::{Hash, LeafIndex, TreeSize, leaf_hash};
use graven_core::merkle::{self, MemoryTree};
use graven_core::note::SignerKey;
use graven_core::policy::{ParseOptions, Policy};
use graven_core::tlog_proof::{MAX_PROOF_LINES, TlogProof};
use graven_verify::tlog_proof::{make_tlog_proof, verify_tlog_proof};
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "fuzz.example/proof-log";
const ENTRIES: u64 = 37;

struct Fixture {
    log: SignerKey,
    witnesses: Vec<Cosigner>,
    tree: MemoryTree,
    policy: Policy,
}

static FIX: LazyLock<Fixture> = LazyLock::new(|| {
    let log = SignerKey::from_seed(ORIGIN, [3; 32]).expect("log key");
    let witnesses: Vec<Cosigner> = (0..3u8)
        .map(|i| Cosigner::from_seed(&format!("w{i}.proof.example"), [30 + i; 32]).expect("witness key"))
        .collect();
    let mut tree = MemoryTree::new();
    for i in 0..ENTRIES {
        tree.push(leaf_hash(&entry(i)));
    }
    let mut text = format!("log {}\n", log.verifier());
    for (i, w) in witnesses.iter().enumerate() {
        text += &format!("witness W{i} {}\n", w.verifier());
    }
    text += "group two 2 W0 W1 W2\nquorum two\n";
    let policy = Policy::parse(text.as_bytes(), ParseOptions::default()).expect("policy");
    Fixture { log, witnesses, tree, policy }
});

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&0xff, rest)) => structured(rest),
        _ => raw(data),
    }
});

fn raw(data: &[u8]) {
    let Some((&len, rest)) = data.split_first() else { return };
    let (event, file) = rest.split_at(usize::from(len).min(rest.len()));
    if let Ok(p) = TlogProof::parse(file) {
        assert_eq!(p.to_text().as_bytes(), file, "parse accepted a non-canonical encoding");
        assert_eq!(TlogProof::parse(p.to_text().as_bytes()).as_ref(), Ok(&p));
        assert!(p.proof.len() <= MAX_PROOF_LINES);
    }
    let fix = &*FIX;
    if let Ok(proven) = verify_tlog_proof(file, event, &fix.policy, Some(&fix.log.verifier())) {
        let inc = proven.inclusion();
        assert_eq!(inc.leaf_hash(), leaf_hash(event));
        let w = proven.witnessed();
        assert!(w.cosigned().len() >= 2, "accepted with {} cosignatures", w.cosigned().len());
        let size = w.checkpoint().size();
        assert_eq!(inc.size(), size);
        // The log's key signs only the honest tree here, so the root must be its root.
        let honest = (1..=ENTRIES).contains(&size.0).then(|| merkle::root(&mut fix.tree.clone(), size).expect("root"));
        assert_eq!(Some(inc.root()), honest, "accepted a root the log never signed");
    }
}

fn structured(data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let fix = &*FIX;
    let size = 1 + u64::from(byte(0)) % ENTRIES;
    let index = u64::from(byte(1)) % size;
    let cosigners: Vec<usize> = (0..3).filter(|i| byte(2) >> i & 1 == 1).collect();
    let damage = byte(3) % 8;

    let mut tree = fix.tree.clone();
    let root = merkle::root(&mut tree, TreeSize(size)).expect("root");
    let body = Checkpoint::new(ORIGIN, TreeSize(size), root).expect("checkpoint").to_text();
    let mut note = fix.log.sign(&body).expect("sign");
    for &i in &cosigners {
        note += &fix.witnesses[i].cosign(&body, 1_700_000_000 + i as u64).expect("cosign");
    }
    let proof = merkle::inclusion_proof(&mut tree, LeafIndex(index), TreeSize(size)).expect("proof");
    let text = make_tlog_proof(index, &proof, note.as_bytes(), &entry(index), None).expect("an honest proof is written");
    let quorum = cosigners.len() >= 2;
    let verify = |file: &str, event: &[u8]| verify_tlog_proof(file.as_bytes(), event, &fix.policy, None);
    assert_eq!(verify(&text, &entry(index)).is_ok(), quorum, "honest proof, {} cosignatures", cosigners.len());

    let first = proof.first().map(Hash::to_base64);
    let damaged: Option<(String, Vec<u8>)> = match damage {
        1 => first.as_ref().map(|f| {
            let mut h = proof[0];
            h.0[usize::from(byte(4)) % 32] ^= 1 << (byte(5) % 8);
            (text.replacen(f.as_str(), &h.to_base64(), 1), entry(index))
        }),
        2 => first.as_ref().map(|f| (text.replacen(&format!("{f}\n"), "", 1), entry(index))),
        3 => Some((text.replacen("\n\n", &format!("\n{}\n\n", Hash([byte(4); 32]).to_base64()), 1), entry(index))),
        4 => {
            let other = (index + 1 + u64::from(byte(4))) % ENTRIES;
            (other != index).then(|| (text.replacen(&format!("index {index}\n"), &format!("index {other}\n"), 1), entry(index)))
        }
        5 => {
            let mut ev = entry(index);
            ev.push(byte(4));
            Some((text.clone(), ev))
        }
        6 => cosigners.first().map(|&i| {
            let line = fix.witnesses[i].cosign(&body, 1_700_000_000 + i as u64).expect("cosign");
            (text.replacen(&line, "", 1), entry(index))
        }),
        7 => Some((text.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1), entry(index))),
        _ => None,
    };
    if let Some((file, event)) = damaged {
        let r = verify(&file, &event);
        // Removing one cosignature of three still leaves a quorum of two.
        let still_holds = damage == 6 && cosigners.len() == 3;
        assert_eq!(r.is_ok(), still_holds, "damage {damage} not refused: {r:?}");
    }
}
