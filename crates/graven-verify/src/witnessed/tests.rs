#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use graven_core::checkpoint::Checkpoint;
use graven_core::cosignature::Cosigner;
use graven_core::note::SignerKey;

use super::*;

const ORIGIN: &str = "witnessed.example/log";

fn log() -> SignerKey {
    SignerKey::from_seed(ORIGIN, [1; 32]).unwrap()
}

fn witness(n: u8) -> Cosigner {
    Cosigner::from_seed(&format!("w{n}.example"), [10 + n; 32]).unwrap()
}

/// `log <key>`, three witnesses, and `group G <k> W1 W2 W3` as the quorum.
fn policy_text(k: &str) -> String {
    let mut s = format!("log {}\n", log().verifier());
    for n in 1..=3 {
        s += &format!("witness W{n} {}\n", witness(n).verifier());
    }
    s + &format!("group G {k} W1 W2 W3\nquorum G\n")
}

fn bound(k: &str) -> LogPolicy {
    LogPolicy::parse(policy_text(k).as_bytes(), ParseOptions::default(), Some(&log().verifier())).unwrap()
}

/// A checkpoint of `size` with root `[root; 32]`, signed by `signer`, cosigned by `cosigners`
/// at `1_700_000_000 + n`.
fn note_by(signer: &SignerKey, size: u64, root: u8, cosigners: &[u8]) -> String {
    let body = Checkpoint::new(ORIGIN, TreeSize(size), Hash([root; 32])).unwrap().to_text();
    let mut note = signer.sign(&body).unwrap();
    for &n in cosigners {
        note += &witness(n).cosign(&body, 1_700_000_000 + u64::from(n)).unwrap();
    }
    note
}

fn opened(note: &str) -> VerifiedCheckpoint {
    VerifiedCheckpoint::open(note.as_bytes(), &log().verifier(), ORIGIN).unwrap()
}

#[test]
fn a_policy_is_bound_to_the_log_it_lists() {
    let text = policy_text("2");
    let only = LogPolicy::parse(text.as_bytes(), ParseOptions::default(), None).unwrap();
    assert_eq!(only.log_key(), &log().verifier(), "the only log line is the log");
    let stranger = SignerKey::from_seed(ORIGIN, [2; 32]).unwrap().verifier();
    let e = LogPolicy::parse(text.as_bytes(), ParseOptions::default(), Some(&stranger)).unwrap_err();
    assert!(matches!(e, PolicyLogError::NotListed { .. }), "{e}");
    assert!(e.to_string().contains(&log().verifier().to_string()), "names the listed key: {e}");
    let none = "witness W1 ".to_owned() + &witness(1).verifier().to_string() + "\nquorum W1\n";
    let e = LogPolicy::parse(none.as_bytes(), ParseOptions::default(), None).unwrap_err();
    assert_eq!(e, PolicyLogError::NoLog);
    let e = LogPolicy::parse(none.as_bytes(), ParseOptions::default(), Some(&log().verifier())).unwrap_err();
    assert!(matches!(e, PolicyLogError::NotListed { ref listed, .. } if listed == "none"), "{e}");
    let two = format!("log {}\nlog {}\nquorum none\n", log().verifier(), stranger);
    let e = LogPolicy::parse(two.as_bytes(), ParseOptions::default(), None).unwrap_err();
    assert_eq!(e, PolicyLogError::Ambiguous(2));
    LogPolicy::parse(two.as_bytes(), ParseOptions::default(), Some(&stranger)).unwrap();
    let e = LogPolicy::parse(b"log nonsense\nquorum none\n", ParseOptions::default(), None).unwrap_err();
    assert!(matches!(e, PolicyLogError::Parse(ref p) if p.line == 1), "{e}");
}

#[test]
fn a_quorum_of_valid_cosignatures_is_needed_and_the_refusal_names_the_witnesses() {
    let p = bound("2");
    let ok = p.check(&opened(&note_by(&log(), 5, 7, &[1, 3]))).unwrap();
    assert_eq!(
        ok.cosigned(),
        &[("W1".to_owned(), Some(1_700_000_001)), ("W3".to_owned(), Some(1_700_000_003))]
    );
    assert_eq!(ok.checkpoint().size(), TreeSize(5));

    let e = p.check(&opened(&note_by(&log(), 5, 7, &[2]))).unwrap_err();
    assert_eq!(e.quorum(), Some((&["W2".to_owned()][..], &["W1".to_owned(), "W3".to_owned()][..])));
    let msg = e.to_string();
    assert!(msg.contains("size 5") && msg.contains("cosigned by W2; not by W1, W3"), "{msg}");
    let e = p.check(&opened(&note_by(&log(), 5, 7, &[]))).unwrap_err();
    assert!(e.to_string().contains("cosigned by no witness; not by W1, W2, W3"), "{e}");
}

#[test]
fn a_known_witness_line_that_does_not_verify_refuses_the_checkpoint() {
    let p = bound("1");
    // W1's cosignature of another tree, pasted under this one: its name and key ID, a bad signature.
    let other = Checkpoint::new(ORIGIN, TreeSize(6), Hash([7; 32])).unwrap().to_text();
    let note = note_by(&log(), 5, 7, &[2]) + &witness(1).cosign(&other, 1).unwrap();
    let e = p.check(&opened(&note)).unwrap_err();
    assert!(
        matches!(&e, WitnessError::Policy { problem: PolicyCheckError::BadCosignature { witness, .. }, .. } if witness == "W1"),
        "{e}"
    );
    assert_eq!(e.quorum(), None);
}

#[test]
fn lines_from_keys_the_policy_does_not_know_are_ignored() {
    let p = bound("2");
    let stranger = Cosigner::from_seed("w1.example", [99; 32]).unwrap();
    let body = Checkpoint::new(ORIGIN, TreeSize(5), Hash([7; 32])).unwrap().to_text();
    // Same name as W1, another key: ignored (signed-note), so only W2 counts.
    let note = note_by(&log(), 5, 7, &[2]) + &stranger.cosign(&body, 5).unwrap();
    assert!(p.check(&opened(&note)).unwrap_err().quorum().is_some());
    let note = note_by(&log(), 5, 7, &[2, 3]) + &stranger.cosign(&body, 5).unwrap();
    assert_eq!(p.check(&opened(&note)).unwrap().cosigned().len(), 2);
}

/// The log's key signs two histories; the witnesses saw the honest one. The fork carries only
/// the cosignature of one dishonest witness, below the quorum of two: refused.
#[test]
fn a_fork_cosigned_below_quorum_is_refused() {
    let p = bound("2");
    let honest = note_by(&log(), 8, 1, &[1, 2, 3]);
    let fork = note_by(&log(), 8, 2, &[3]);
    p.check(&opened(&honest)).unwrap();
    let e = p.check(&opened(&fork)).unwrap_err();
    assert_eq!(e.quorum().unwrap().0, &["W3".to_owned()]);
}

/// Key rotation: the policy lists two keys of one log; bound to one, a checkpoint signed only by
/// the other is refused, although the policy itself accepts it.
#[test]
fn a_checkpoint_of_another_listed_log_key_is_refused() {
    let rotated = SignerKey::from_seed(ORIGIN, [3; 32]).unwrap();
    let text = format!("log {}\n{}", rotated.verifier(), policy_text("1"));
    let p = LogPolicy::parse(text.as_bytes(), ParseOptions::default(), Some(&log().verifier())).unwrap();
    let note = note_by(&rotated, 5, 7, &[1]);
    p.policy().verify(note.as_bytes()).unwrap();
    let cp = VerifiedCheckpoint::open(note.as_bytes(), &rotated.verifier(), ORIGIN).unwrap();
    assert!(matches!(p.check(&cp), Err(WitnessError::OtherLog { .. })));
}

/// siglog's witness answers a plain Ed25519 note signature (type 0x01). By default a witness key
/// of that type is refused when the policy is read, and a policy that lists the witness's
/// cosignature key does not count the plain signature (another key ID); with the opt-in, a
/// type-0x01 witness key counts its note signature, without a timestamp.
#[test]
fn plain_note_signature_witnesses_count_only_when_admitted() {
    let siglog = SignerKey::from_seed("siglog-witness.example", [50; 32]).unwrap();
    let text = format!("log {}\nwitness S {}\nquorum S\n", log().verifier(), siglog.verifier());
    let e = LogPolicy::parse(text.as_bytes(), ParseOptions::default(), None).unwrap_err();
    assert!(e.to_string().contains("plain Ed25519 note key (type 0x01)"), "{e}");

    let body = Checkpoint::new(ORIGIN, TreeSize(5), Hash([7; 32])).unwrap().to_text();
    let note = log().sign(&body).unwrap() + &siglog.signature_line(body.as_bytes());
    let opt = ParseOptions { note_signature_witnesses: true };
    let p = LogPolicy::parse(text.as_bytes(), opt, None).unwrap();
    assert!(p.admits_note_signatures());
    assert_eq!(p.check(&opened(&note)).unwrap().cosigned(), &[("S".to_owned(), None)]);
    assert!(p.check(&opened(&log().sign(&body).unwrap())).unwrap_err().quorum().is_some());

    // The same Ed25519 key configured as a cosignature/v1 key: the plain line is not its line.
    let as_cosigner = Cosigner::from_seed("siglog-witness.example", [50; 32]).unwrap();
    let strict = format!("log {}\nwitness S {}\nquorum S\n", log().verifier(), as_cosigner.verifier());
    let p = LogPolicy::parse(strict.as_bytes(), ParseOptions::default(), None).unwrap();
    let e = p.check(&opened(&note)).unwrap_err();
    assert_eq!(e.quorum(), Some((&[][..], &["S".to_owned()][..])), "{e}");
}

proptest::proptest! {
    /// k of n: any subset of the three witnesses is accepted exactly when it has k members.
    #[test]
    fn k_of_n_matches_a_count(k in 1usize..=3, subset in proptest::collection::btree_set(1u8..=3, 0..=3)) {
        let p = bound(&k.to_string());
        let signers: Vec<u8> = subset.iter().copied().collect();
        let r = p.check(&opened(&note_by(&log(), 9, 4, &signers)));
        proptest::prop_assert_eq!(r.is_ok(), signers.len() >= k, "{:?}", r);
    }
}
