#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use graven_core::cosignature::Cosigner;
use graven_core::hash::TreeSize;
use graven_core::merkle::MemoryTree;
use graven_core::note::{NoteError, SignerKey};
use graven_core::policy::ParseOptions;

use super::*;

const ORIGIN: &str = "proof.example/log";
const SIZE: u64 = 13;
const INDEX: u64 = 9;

fn log() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [5; 32]).unwrap()
}

fn witness(n: u8) -> Cosigner {
    Cosigner::from_seed(&format!("w{n}.proof.example"), [60 + n; 32]).unwrap()
}

fn event(i: u64) -> Vec<u8> {
    format!("{{\"action\":\"deploy\",\"n\":{i}}}").into_bytes()
}

fn tree() -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..SIZE {
        t.push(leaf_hash(&event(i)));
    }
    t
}

/// The log's checkpoint of `SIZE`, signed by `signer`, cosigned by `cosigners`.
fn checkpoint(signer: &SignerKey, cosigners: &[u8]) -> String {
    let root = merkle::root(&mut tree(), TreeSize(SIZE)).unwrap();
    let body = Checkpoint::new(ORIGIN, TreeSize(SIZE), root).unwrap().to_text();
    let mut note = signer.sign(&body).unwrap();
    for &n in cosigners {
        note += &witness(n).cosign(&body, 1_750_000_000 + u64::from(n)).unwrap();
    }
    note
}

/// The log, witnesses A, B and C, any two of them.
fn policy_text() -> Vec<u8> {
    format!(
        "log {}\nwitness A {}\nwitness B {}\nwitness C {}\ngroup two 2 A B C\nquorum two\n",
        log().verifier(),
        witness(1).verifier(),
        witness(2).verifier(),
        witness(3).verifier()
    )
    .into_bytes()
}

fn policy() -> LogPolicy {
    LogPolicy::parse(&policy_text(), ParseOptions::default(), None).unwrap()
}

fn proof_hashes() -> Vec<Hash> {
    merkle::inclusion_proof(&mut tree(), LeafIndex(INDEX), TreeSize(SIZE)).unwrap()
}

/// A proof file written by `make_tlog_proof` for entry `INDEX`, cosigned by `cosigners`.
fn file(cosigners: &[u8]) -> String {
    make_tlog_proof(INDEX, &proof_hashes(), checkpoint(&log(), cosigners).as_bytes(), &event(INDEX), None)
        .unwrap()
}

fn verify(text: &str, ev: &[u8]) -> Result<ProvenEvent, TlogProofCheckError> {
    let p = policy();
    verify_tlog_proof(text.as_bytes(), ev, p.policy(), Some(p.log_key()))
}

#[test]
fn a_written_proof_has_the_spec_s_layout_and_verifies_with_the_event() {
    let text = file(&[1, 3]);
    let hashes: String = proof_hashes().iter().map(|h| h.to_base64() + "\n").collect();
    assert_eq!(
        text,
        format!("c2sp.org/tlog-proof@v1\nindex {INDEX}\n{hashes}\n{}", checkpoint(&log(), &[1, 3]))
    );
    let proven = verify(&text, &event(INDEX)).unwrap();
    assert_eq!(proven.inclusion().index(), LeafIndex(INDEX));
    assert_eq!(proven.inclusion().leaf_hash(), leaf_hash(&event(INDEX)));
    assert_eq!(proven.witnessed().checkpoint().size(), TreeSize(SIZE));
    assert_eq!(
        proven.witnessed().cosigned(),
        &[("A".to_owned(), Some(1_750_000_001)), ("C".to_owned(), Some(1_750_000_003))]
    );
    assert_eq!(proven.extra(), None);
    // Without naming the log key, any log of the policy will do (here, its only one).
    verify_tlog_proof(text.as_bytes(), &event(INDEX), policy().policy(), None).unwrap();
    // With a policy, the writer checks the whole proof before it returns it.
    let checked = make_tlog_proof(
        INDEX,
        &proof_hashes(),
        checkpoint(&log(), &[1, 3]).as_bytes(),
        &event(INDEX),
        Some(&policy()),
    )
    .unwrap();
    assert_eq!(checked, text);
}

#[test]
fn extra_data_is_reported_and_never_used() {
    let text = file(&[1, 2]).replacen("\nindex", "\nextra aGVsbG8=\nindex", 1);
    let proven = verify(&text, &event(INDEX)).unwrap();
    assert_eq!(proven.extra(), Some(&b"hello"[..]));
    assert!(matches!(verify(&text, &event(INDEX + 1)), Err(TlogProofCheckError::NotIncluded { .. })));
}

#[test]
fn other_event_bytes_are_refused() {
    let text = file(&[1, 2]);
    for other in
        [event(INDEX + 1), event(INDEX)[1..].to_vec(), [event(INDEX), b"\n".to_vec()].concat(), Vec::new()]
    {
        let e = verify(&text, &other).unwrap_err();
        assert!(matches!(e, TlogProofCheckError::NotIncluded { index: INDEX, .. }), "{e}");
        assert!(e.to_string().contains("not the entry this proof is for"), "{e}");
    }
    // Another entry's bytes at the index the file claims: still no.
    let moved = text.replacen(&format!("index {INDEX}"), "index 8", 1);
    assert!(matches!(verify(&moved, &event(8)), Err(TlogProofCheckError::NotIncluded { .. })));
}

#[test]
fn a_tampered_proof_line_is_refused() {
    let text = file(&[1, 2]);
    let first = proof_hashes()[0];
    let mut bytes = first.0;
    bytes[0] ^= 1;
    let flipped = text.replacen(&first.to_base64(), &Hash(bytes).to_base64(), 1);
    assert!(matches!(verify(&flipped, &event(INDEX)), Err(TlogProofCheckError::NotIncluded { .. })));
    // A line dropped, or one added.
    let dropped = text.replacen(&format!("{}\n", first.to_base64()), "", 1);
    assert!(matches!(verify(&dropped, &event(INDEX)), Err(TlogProofCheckError::NotIncluded { .. })));
    let added =
        text.replacen(&first.to_base64(), &format!("{}\n{}", first.to_base64(), first.to_base64()), 1);
    assert!(matches!(verify(&added, &event(INDEX)), Err(TlogProofCheckError::NotIncluded { .. })));
    // A line that is not a hash: refused while reading, naming the line.
    let garbled = text.replacen(&first.to_base64(), "not-base64", 1);
    let e = verify(&garbled, &event(INDEX)).unwrap_err();
    assert!(matches!(e, TlogProofCheckError::Format(TlogProofError::Format { line: 3, .. })), "{e}");
    // The checkpoint's size edited: the log's signature no longer verifies.
    let resized = text.replacen(&format!("\n{SIZE}\n"), &format!("\n{}\n", SIZE + 1), 1);
    let e = verify(&resized, &event(INDEX)).unwrap_err();
    assert!(
        matches!(e, TlogProofCheckError::Policy(PolicyCheckError::Log(NoteError::InvalidSignature { .. }))),
        "{e}"
    );
}

#[test]
fn a_checkpoint_without_the_quorum_is_refused_naming_the_witnesses() {
    let e = verify(&file(&[2]), &event(INDEX)).unwrap_err();
    assert!(matches!(e, TlogProofCheckError::Policy(PolicyCheckError::Quorum { .. })), "{e}");
    assert!(e.to_string().contains("cosigned by B; not by A, C"), "{e}");
    // The writer refuses to write it under that policy.
    let e = make_tlog_proof(
        INDEX,
        &proof_hashes(),
        checkpoint(&log(), &[2]).as_bytes(),
        &event(INDEX),
        Some(&policy()),
    )
    .unwrap_err();
    assert!(matches!(e, TlogProofCheckError::Policy(PolicyCheckError::Quorum { .. })), "{e}");
}

#[test]
fn a_checkpoint_of_another_log_key_is_refused() {
    // Same origin, another key, cosigned by every witness: not a log of the policy.
    let stranger = SignerKey::from_seed(ORIGIN, [6; 32]).unwrap();
    let text = make_tlog_proof(
        INDEX,
        &proof_hashes(),
        checkpoint(&stranger, &[1, 2, 3]).as_bytes(),
        &event(INDEX),
        None,
    )
    .unwrap();
    let e = verify(&text, &event(INDEX)).unwrap_err();
    assert!(
        matches!(e, TlogProofCheckError::Policy(PolicyCheckError::Log(NoteError::Unverified { .. }))),
        "{e}"
    );
    // A policy that lists both keys accepts it, unless the log key is named.
    let both = format!("log {}\n{}", stranger.verifier(), String::from_utf8_lossy(&policy_text()));
    let p = Policy::parse(both.as_bytes(), ParseOptions::default()).unwrap();
    verify_tlog_proof(text.as_bytes(), &event(INDEX), &p, None).unwrap();
    let e = verify_tlog_proof(text.as_bytes(), &event(INDEX), &p, Some(&log().verifier())).unwrap_err();
    assert!(matches!(e, TlogProofCheckError::OtherLog { .. }), "{e}");
}

#[test]
fn the_writer_refuses_a_proof_that_does_not_hold() {
    let cp = checkpoint(&log(), &[]);
    let e = make_tlog_proof(INDEX, &proof_hashes(), cp.as_bytes(), &event(0), None).unwrap_err();
    assert!(matches!(e, TlogProofCheckError::NotIncluded { .. }), "{e}");
    let e = make_tlog_proof(SIZE, &proof_hashes(), cp.as_bytes(), &event(INDEX), None).unwrap_err();
    assert!(matches!(e, TlogProofCheckError::NotIncluded { .. }), "{e}");
}

proptest::proptest! {
    /// Every entry of trees of every size up to 40 round-trips, and no other entry's bytes verify.
    #[test]
    fn every_entry_round_trips(size in 1u64..40, pick in 0u64..40, other in 0u64..40) {
        let index = pick % size;
        let mut t = MemoryTree::new();
        for i in 0..size {
            t.push(leaf_hash(&event(i)));
        }
        let root = merkle::root(&mut t, TreeSize(size)).unwrap();
        let body = Checkpoint::new(ORIGIN, TreeSize(size), root).unwrap().to_text();
        let note = log().sign(&body).unwrap() + &witness(1).cosign(&body, 1).unwrap() + &witness(2).cosign(&body, 2).unwrap();
        let proof = merkle::inclusion_proof(&mut t, LeafIndex(index), TreeSize(size)).unwrap();
        let text = make_tlog_proof(index, &proof, note.as_bytes(), &event(index), Some(&policy())).unwrap();
        proptest::prop_assert!(verify(&text, &event(index)).is_ok());
        let other = other % size;
        proptest::prop_assert_eq!(verify(&text, &event(other)).is_ok(), other == index);
    }
}
