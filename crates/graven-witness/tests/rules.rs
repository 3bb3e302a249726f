//! One test per rule of C2SP `tlog-witness` §add-checkpoint, against the pure state machine,
//! with a real log (graven-core signer key, RFC 6962 tree, signed checkpoints, consistency
//! proofs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Log, body, cosigner, machine};
use graven_core::cosignature::{self, Cosigned, CosignerKey};
use graven_core::hash::{Hash, TreeSize, empty_root};
use graven_core::note::{Note, SignerKey};
use graven_witness::machine::{Forbidden, State, Timestamp, Unprocessable, WitnessError};
use graven_witness::request::{Malformed, RequestError};

const NOW: u64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::new(NOW).unwrap()
}

/// Runs one request; returns the next state and the response body.
fn add(m: &graven_witness::machine::Machine, s: &State, b: &[u8]) -> Result<(State, String), WitnessError> {
    m.add_checkpoint(s, b, now())
}

/// A witness that has cosigned `log` at `size` (from nothing).
fn cosigned_at(log: &Log, size: u64) -> (graven_witness::machine::Machine, State) {
    let m = machine(&[log]);
    let (s, _) = add(&m, &State::new(), &log.body(0, size)).unwrap();
    (m, s)
}

fn check_cosignature(log: &Log, size: u64, lines: &str) -> u64 {
    assert!(lines.starts_with('\u{2014}') && lines.ends_with('\n'), "{lines:?}");
    assert_eq!(lines.matches('\n').count(), 1, "one cosignature line");
    let note = format!("{}\n{lines}", log.text(size));
    let parsed = Note::parse(note.as_bytes()).unwrap();
    match cosignature::check(&parsed, &[cosigner().verifier()]).as_slice() {
        [Cosigned::Valid(ts)] => *ts,
        other => panic!("cosignature does not verify: {other:?}"),
    }
}

// ---- 200 ----

#[test]
fn a_first_checkpoint_with_old_size_0_is_cosigned_and_recorded() {
    let log = Log::new("example.com/log", 1, 10);
    let m = machine(&[&log]);
    let (s, lines) = add(&m, &State::new(), &log.body(0, 10)).unwrap();
    assert_eq!(check_cosignature(&log, 10, &lines), NOW);
    let held = s.get(log.origin()).unwrap();
    assert_eq!(held.size(), TreeSize(10));
    assert_eq!(held.timestamp(), NOW);
    // The record: the checkpoint, the log's verified signature, the witness's cosignature.
    let expected = format!("{}{lines}", String::from_utf8(log.checkpoint(10)).unwrap());
    assert_eq!(held.note_bytes(), expected.as_bytes());
    let back =
        graven_witness::machine::CosignedCheckpoint::from_stored(held.note_bytes(), &cosigner().verifier());
    assert_eq!(back.as_ref(), Ok(held));
}

#[test]
fn a_grown_checkpoint_with_a_valid_consistency_proof_is_cosigned() {
    let mut log = Log::new("example.com/log", 1, 1);
    let m = machine(&[&log]);
    let mut s = State::new();
    let mut old = 0;
    for size in [1, 2, 3, 4, 7, 8, 9, 16, 17, 100, 1000] {
        log.grow_to(size, "honest");
        let (next, lines) = add(&m, &s, &log.body(old, size)).unwrap();
        check_cosignature(&log, size, &lines);
        assert_eq!(next.get(log.origin()).unwrap().size(), TreeSize(size));
        (s, old) = (next, size);
    }
}

#[test]
fn the_same_checkpoint_again_is_cosigned_again() {
    let log = Log::new("example.com/log", 1, 5);
    let (m, s) = cosigned_at(&log, 5);
    let (s2, lines) = add(&m, &s, &log.body(5, 5)).unwrap();
    check_cosignature(&log, 5, &lines);
    assert_eq!(s2.get(log.origin()).unwrap().size(), TreeSize(5));
}

#[test]
fn an_empty_log_of_size_0_with_the_empty_root_is_cosigned() {
    let log = Log::new("example.com/log", 1, 0);
    let (m, s) = cosigned_at(&log, 0);
    assert_eq!(s.get(log.origin()).unwrap().checkpoint().root(), empty_root());
    // The next request's old size is 0 again, and needs no proof.
    let mut grown = log.clone();
    grown.grow_to(3, "honest");
    add(&m, &s, &grown.body(0, 3)).unwrap();
}

#[test]
fn signatures_from_unknown_keys_are_ignored_and_not_kept() {
    let log = Log::new("example.com/log", 1, 4);
    let stranger = SignerKey::from_seed("someone.example/else", [9; 32]).unwrap();
    let mut note = String::from_utf8(log.checkpoint(4)).unwrap();
    note.push_str(&stranger.signature_line(log.text(4).as_bytes()));
    // A line with an unknown key's name and garbage is ignored too.
    note.push_str("\u{2014} other.example/w AAAAAAAAAAAAAAAAAAAAAAAA\n");
    let m = machine(&[&log]);
    let (s, _) = add(&m, &State::new(), &body(0, &[], note.as_bytes())).unwrap();
    let kept = String::from_utf8(s.get(log.origin()).unwrap().note_bytes().to_vec()).unwrap();
    assert!(!kept.contains("someone.example") && !kept.contains("other.example"), "{kept}");
}

#[test]
fn a_log_may_have_several_keys_and_either_verifies() {
    let log = Log::new("example.com/log", 1, 4);
    let mut rotated = log.clone();
    rotated.key = SignerKey::from_seed("example.com/log", [2; 32]).unwrap();
    let mut logs = common::trusted(&[&log]);
    logs.add(log.origin(), rotated.vkey()).unwrap();
    let m = graven_witness::machine::Machine::new(cosigner(), logs);
    let (s, _) = add(&m, &State::new(), &log.body(0, 4)).unwrap();
    add(&m, &s, &rotated.body(4, 4)).unwrap();
}

// ---- 400 ----

#[test]
fn a_malformed_body_is_400() {
    let log = Log::new("example.com/log", 1, 4);
    let m = machine(&[&log]);
    let cp = log.checkpoint(4);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "empty"),
        (cp.clone(), "no old line"),
        ([b"old 00\n\n".as_slice(), &cp].concat(), "leading zero"),
        ([b"old 0\n".as_slice(), &cp].concat(), "no empty line"),
        ([b"old 0\nnot base64\n\n".as_slice(), &cp].concat(), "bad proof line"),
        ([b"old 0\r\n\n".as_slice(), &cp].concat(), "CRLF"),
        (b"old 0\n\nexample.com/log\n4\n".to_vec(), "note without signatures"),
        ([b"old 0\n\n".as_slice(), &cp[..cp.len() - 1]].concat(), "note without final newline"),
    ];
    for (b, what) in cases {
        let e = add(&m, &State::new(), &b).unwrap_err();
        assert_eq!(e.status(), 400, "{what}: {e}");
        assert!(matches!(e, WitnessError::Malformed(_)), "{what}: {e:?}");
    }
}

#[test]
fn a_malformed_checkpoint_body_is_400() {
    let log = Log::new("example.com/log", 1, 4);
    let m = machine(&[&log]);
    // Validly signed by the log, but the size line has a leading zero.
    let text = format!("example.com/log\n04\n{}\n", log.root(4));
    let note = log.key.sign(&text).unwrap();
    let e = add(&m, &State::new(), &body(0, &[], note.as_bytes())).unwrap_err();
    assert!(matches!(e, WitnessError::Malformed(Malformed::Checkpoint(_))), "{e:?}");
}

#[test]
fn more_than_63_proof_lines_is_400() {
    let log = Log::new("example.com/log", 1, 4);
    let m = machine(&[&log]);
    let e = add(&m, &State::new(), &body(0, &[Hash([1; 32]); 64], &log.checkpoint(4))).unwrap_err();
    assert_eq!(e, WitnessError::Malformed(Malformed::Request(RequestError::TooManyProofLines)));
    assert_eq!(e.status(), 400);
}

#[test]
fn an_old_size_larger_than_the_checkpoint_is_400() {
    let log = Log::new("example.com/log", 1, 10);
    let (m, s) = cosigned_at(&log, 10);
    // The log's own, smaller checkpoint with the witness's size as old: a rollback.
    let e = add(&m, &s, &body(10, &[], &log.checkpoint(5))).unwrap_err();
    assert_eq!(e, WitnessError::Malformed(Malformed::OldAfterSize { old: 10, size: 5 }));
    assert_eq!(e.status(), 400);
}

// ---- 404 ----

#[test]
fn an_unknown_origin_is_404() {
    let log = Log::new("example.com/log", 1, 4);
    let other = Log::new("example.com/other", 2, 4);
    let m = machine(&[&log]);
    let e = add(&m, &State::new(), &other.body(0, 4)).unwrap_err();
    assert_eq!(e, WitnessError::UnknownOrigin("example.com/other".into()));
    assert_eq!(e.status(), 404);
}

// ---- 403 ----

#[test]
fn no_signature_from_a_trusted_key_is_403() {
    let log = Log::new("example.com/log", 1, 4);
    let m = machine(&[&log]);
    // Same name, another key (so another key ID): an unknown key, ignored; none trusted left.
    let impostor = Log { key: SignerKey::from_seed("example.com/log", [7; 32]).unwrap(), ..log.clone() };
    let e = add(&m, &State::new(), &impostor.body(0, 4)).unwrap_err();
    assert_eq!(e, WitnessError::Forbidden(Forbidden::NoTrustedSignature));
    assert_eq!(e.status(), 403);
}

#[test]
fn a_trusted_key_s_signature_that_fails_is_403_even_beside_a_valid_one() {
    let log = Log::new("example.com/log", 1, 4);
    let m = machine(&[&log]);
    let good = String::from_utf8(log.checkpoint(4)).unwrap();
    // The log's signature line over another text, appended to the valid note: name and key ID
    // match a trusted key, and the signature does not verify over this text.
    let wrong = log.key.signature_line(log.fork(2, 5).text(5).as_bytes());
    for note in [format!("{good}{wrong}"), format!("{}\n{wrong}", log.text(4))] {
        let e = add(&m, &State::new(), &body(0, &[], note.as_bytes())).unwrap_err();
        assert!(matches!(e, WitnessError::Forbidden(Forbidden::InvalidSignature { .. })), "{e:?}");
        assert_eq!(e.status(), 403);
    }
}

#[test]
fn signature_checks_come_before_the_size_checks() {
    // A forged request learns nothing of the witness's state: 403, not 409 or 400.
    let log = Log::new("example.com/log", 1, 10);
    let (m, s) = cosigned_at(&log, 10);
    let impostor = Log { key: SignerKey::from_seed("example.com/log", [7; 32]).unwrap(), ..log.clone() };
    assert_eq!(add(&m, &s, &impostor.body(0, 4)).unwrap_err().status(), 403);
    assert_eq!(add(&m, &s, &body(20, &[], &impostor.checkpoint(4))).unwrap_err().status(), 403);
}

// ---- 409 ----

#[test]
fn an_old_size_other_than_the_cosigned_size_is_409_with_that_size() {
    let log = Log::new("example.com/log", 1, 20);
    // Never cosigned: the held size is 0.
    let m = machine(&[&log]);
    assert_eq!(add(&m, &State::new(), &log.body(5, 10)).unwrap_err(), WitnessError::Conflict(TreeSize(0)));
    let (m, s) = cosigned_at(&log, 10);
    for old in [0, 5, 9, 11, 20] {
        let e = add(&m, &s, &log.body(old, 20)).unwrap_err();
        assert_eq!(e, WitnessError::Conflict(TreeSize(10)), "old {old}");
        assert_eq!(e.status(), 409);
    }
}

// ---- 422 ----

#[test]
fn size_0_with_another_root_than_the_empty_tree_s_is_422() {
    let log = Log::new("example.com/log", 1, 4);
    let m = machine(&[&log]);
    let note = log.key.sign(&format!("example.com/log\n0\n{}\n", log.root(4))).unwrap();
    let e = add(&m, &State::new(), &body(0, &[], note.as_bytes())).unwrap_err();
    assert_eq!(e, WitnessError::Unprocessable(Unprocessable::EmptyTreeRoot));
    assert_eq!(e.status(), 422);
}

#[test]
fn a_non_empty_proof_with_old_size_0_is_422() {
    let log = Log::new("example.com/log", 1, 4);
    let m = machine(&[&log]);
    let e = add(&m, &State::new(), &body(0, &log.proof(2, 4), &log.checkpoint(4))).unwrap_err();
    assert_eq!(e, WitnessError::Unprocessable(Unprocessable::ProofFromEmpty));
    assert_eq!(e.status(), 422);
}

#[test]
fn a_consistency_proof_that_does_not_verify_is_422() {
    let mut log = Log::new("example.com/log", 1, 10);
    let (m, s) = cosigned_at(&log, 10);
    log.grow_to(30, "honest");
    let good = log.proof(10, 30);
    let mut flipped = good.clone();
    flipped[0].0[0] ^= 1;
    let cases =
        [flipped, good[..good.len() - 1].to_vec(), [good.clone(), vec![Hash([0; 32])]].concat(), vec![]];
    for proof in cases {
        let e = add(&m, &s, &body(10, &proof, &log.checkpoint(30))).unwrap_err();
        assert!(matches!(e, WitnessError::Unprocessable(Unprocessable::Inconsistent(_))), "{e:?}");
        assert_eq!(e.status(), 422);
    }
    add(&m, &s, &body(10, &good, &log.checkpoint(30))).unwrap();
}

#[test]
fn the_cosigned_size_with_another_root_is_422() {
    let log = Log::new("example.com/log", 1, 10);
    let (m, s) = cosigned_at(&log, 10);
    let fork = log.fork(4, 10);
    let e = add(&m, &s, &fork.body(10, 10)).unwrap_err();
    assert_eq!(e, WitnessError::Unprocessable(Unprocessable::SameSizeOtherRoot));
    assert_eq!(e.status(), 422);
    // A proof at equal sizes is no excuse either.
    let e = add(&m, &s, &body(10, &[Hash([1; 32])], &log.checkpoint(10))).unwrap_err();
    assert_eq!(e.status(), 422);
}

/// A validly signed fork (same key, another history), shown after the honest log: 409 when it
/// claims a fresh start, 422 with its own proof from the cosigned size, never a cosignature.
#[test]
fn a_validly_signed_fork_is_never_cosigned() {
    let log = Log::new("example.com/log", 1, 10);
    let (m, s) = cosigned_at(&log, 10);
    let fork = log.fork(6, 40);
    assert_eq!(add(&m, &s, &fork.body(0, 40)).unwrap_err(), WitnessError::Conflict(TreeSize(10)));
    let e = add(&m, &s, &fork.body(10, 40)).unwrap_err();
    assert!(matches!(e, WitnessError::Unprocessable(Unprocessable::Inconsistent(_))), "{e:?}");
    // Nor with the honest log's proof.
    let mut honest = log.clone();
    honest.grow_to(40, "honest");
    let e = add(&m, &s, &body(10, &honest.proof(10, 40), &fork.checkpoint(40))).unwrap_err();
    assert_eq!(e.status(), 422);
    // The state did not move: the honest log goes on.
    add(&m, &s, &honest.body(10, 40)).unwrap();
}

// ---- time ----

#[test]
fn cosignature_times_never_go_back() {
    let mut log = Log::new("example.com/log", 1, 3);
    let m = machine(&[&log]);
    let (s, _) = m.add_checkpoint(&State::new(), &log.body(0, 3), Timestamp::new(2000).unwrap()).unwrap();
    log.grow_to(5, "honest");
    // The clock stepped back: the cosignature keeps the later time.
    let (s, lines) = m.add_checkpoint(&s, &log.body(3, 5), Timestamp::new(1000).unwrap()).unwrap();
    assert_eq!(check_cosignature(&log, 5, &lines), 2000);
    assert_eq!(s.get(log.origin()).unwrap().timestamp(), 2000);
    assert!(Timestamp::new(0).is_none(), "the timestamp MUST NOT be zero");
    assert!(Timestamp::new(1 << 63).is_none());
}

#[test]
fn the_new_state_differs_only_in_the_submitted_origin() {
    let a = Log::new("example.com/a", 1, 3);
    let b = Log::new("example.com/b", 2, 3);
    let m = machine(&[&a, &b]);
    let (s1, _) = add(&m, &State::new(), &a.body(0, 3)).unwrap();
    let (s2, _) = add(&m, &s1, &b.body(0, 3)).unwrap();
    assert_eq!(s2.get(a.origin()), s1.get(a.origin()));
    assert!(s1.get(b.origin()).is_none() && s2.get(b.origin()).is_some());
    // A refused request has no next state at all.
    assert!(add(&m, &s2, &a.body(0, 3)).is_err());
}

#[test]
fn the_verifier_key_is_a_cosignature_v1_key() {
    let k = cosigner().verifier().to_string();
    assert!(CosignerKey::parse(&k).is_ok());
    assert!(graven_core::note::VerifierKey::parse(&k).is_err());
}
