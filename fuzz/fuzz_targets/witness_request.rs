//! The witness's `add-checkpoint` request body (C2SP tlog-witness) and the rules that decide
//! it (`graven_witness::request`, `graven_witness::machine`).
//!
//! The first byte chooses a mode.
//!
//! Raw bytes (even first byte), against a witness that follows one log and holds its
//! checkpoint at size 8:
//! - `AddCheckpoint::parse` never panics; what it accepts re-encodes to the input exactly
//!   (one encoding), has at most 63 proof lines, and its old size line is canonical.
//! - `Submission::parse` accepts exactly when the framing, the note and the checkpoint body
//!   each parse.
//! - `Machine::add_checkpoint` never panics; it cosigns only a request whose old size is 8,
//!   whose checkpoint opens with the log's key, and then its answer is one cosignature line that
//!   verifies with the witness's key over the checkpoint's text, and the new record is that
//!   checkpoint. Without a valid log signature the answer is 400, 403 or 404, never 409 or 422
//!   (a forger learns nothing of the witness's state).
//!
//! Structured (odd first byte): the next bytes choose the size the witness holds, an old size,
//! a new size (each 0..=64, on a fixed 64-entry log) and one of eight damages to an honest
//! request (none, a flipped proof bit, a dropped or an added proof element, another key with
//! the log's name, a damaged signature, another root, another origin). The status must be the
//! one a reference written from the spec's order of checks gives, and an honest request from
//! the size held is always cosigned.
#![no_main]

use std::sync::LazyLock;

use graven_core::checkpoint::{Checkpoint, VerifiedCheckpoint};
use graven_core::cosignature::{self, Cosigned, Cosigner};
use graven_core::hash::{Hash, TreeSize, leaf_hash};
use graven_core::merkle::{self, MemoryTree};
use graven_core::note::{Note, SignerKey};
use graven_witness::logs::TrustedLogs;
use graven_witness::machine::{Machine, State, Timestamp};
use graven_witness::request::{AddCheckpoint, MAX_PROOF_LINES, Submission};
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "example.com/fuzz-log";
const ENTRIES: u64 = 64;
const NOW: u64 = 1_700_000_000;

struct Fixture {
    log: SignerKey,
    tree: MemoryTree,
    machine: Machine,
    /// `states[h]`: the witness holding the honest checkpoint at size `h` (and nothing at 0).
    states: Vec<State>,
}

static FIX: LazyLock<Fixture> = LazyLock::new(|| {
    let log = SignerKey::from_seed(ORIGIN, [1; 32]).expect("key");
    let mut tree = MemoryTree::new();
    for i in 0..ENTRIES {
        tree.push(leaf_hash(format!("entry {i}").as_bytes()));
    }
    let mut logs = TrustedLogs::new();
    logs.add(ORIGIN, log.verifier()).expect("log");
    let machine = Machine::new(Cosigner::from_seed("witness.example/fuzz", [2; 32]).expect("w"), logs);
    let mut fix = Fixture { log, tree, machine, states: Vec::new() };
    let now = Timestamp::new(NOW).expect("now");
    let mut states = vec![State::new()];
    for h in 1..=ENTRIES {
        let (s, _) = fix.machine.add_checkpoint(&State::new(), &fix.body(0, h), now).expect("honest");
        states.push(s);
    }
    fix.states = states;
    fix
});

impl Fixture {
    fn root(&self, size: u64) -> Hash {
        merkle::root(&mut self.tree.clone(), TreeSize(size)).expect("root")
    }
    fn text(&self, origin: &str, size: u64, root: Hash) -> String {
        Checkpoint::new(origin, TreeSize(size), root).expect("checkpoint").to_text()
    }
    fn proof(&self, old: u64, size: u64) -> Vec<Hash> {
        if old == 0 || old >= size {
            return Vec::new();
        }
        merkle::consistency_proof(&mut self.tree.clone(), TreeSize(old), TreeSize(size)).expect("proof")
    }
    fn body(&self, old: u64, size: u64) -> Vec<u8> {
        let note = self.log.sign(&self.text(ORIGIN, size, self.root(size))).expect("sign");
        frame(old, &self.proof(old, size), note.as_bytes())
    }
}

fn frame(old: u64, proof: &[Hash], note: &[u8]) -> Vec<u8> {
    let mut b = format!("old {old}\n").into_bytes();
    for h in proof {
        b.extend_from_slice(h.to_base64().as_bytes());
        b.push(b'\n');
    }
    b.push(b'\n');
    b.extend_from_slice(note);
    b
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 { raw(rest) } else { structured(rest) }
});

fn status(r: &Result<(State, String), graven_witness::machine::WitnessError>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(e) => e.status(),
    }
}

/// A 200 must carry one valid cosignature over the submitted checkpoint, and the new record
/// must be that checkpoint.
fn check_cosigned(body: &[u8], state: &State, lines: &str) {
    let sub = Submission::parse(body).expect("a cosigned body parses");
    let fix = &*FIX;
    VerifiedCheckpoint::open(sub.request().checkpoint, &fix.log.verifier(), ORIGIN)
        .expect("only a checkpoint signed by the log is cosigned");
    assert!(lines.starts_with('\u{2014}') && lines.ends_with('\n') && lines.matches('\n').count() == 1);
    let note = format!("{}\n{lines}", sub.note().text());
    let parsed = Note::parse(note.as_bytes()).expect("cosigned note parses");
    assert!(matches!(
        cosignature::check(&parsed, &[fix.machine.verifier()]).as_slice(),
        [Cosigned::Valid(_)]
    ));
    let held = state.get(ORIGIN).expect("a record");
    assert_eq!(held.checkpoint(), sub.checkpoint());
}

fn raw(data: &[u8]) {
    let framed = AddCheckpoint::parse(data);
    if let Ok(r) = &framed {
        assert_eq!(r.to_bytes(), data, "a non-canonical request was accepted");
        assert!(r.proof.len() <= MAX_PROOF_LINES);
    }
    let sub = Submission::parse(data);
    let parts_parse = framed
        .as_ref()
        .is_ok_and(|r| Note::parse(r.checkpoint).is_ok_and(|n| Checkpoint::parse(n.text()).is_ok()));
    assert_eq!(sub.is_ok(), parts_parse);

    let fix = &*FIX;
    let state = &fix.states[8];
    let result = fix.machine.add_checkpoint(state, data, Timestamp::new(NOW).expect("now"));
    let signed = framed
        .as_ref()
        .is_ok_and(|r| VerifiedCheckpoint::open(r.checkpoint, &fix.log.verifier(), ORIGIN).is_ok());
    match &result {
        Ok((next, lines)) => {
            assert!(signed);
            assert_eq!(framed.as_ref().map(|r| r.old_size), Ok(TreeSize(8)));
            check_cosigned(data, next, lines);
        }
        Err(e) if !signed => assert!(matches!(e.status(), 400 | 403 | 404), "{e:?} without a log signature"),
        Err(_) => {}
    }
}

fn structured(data: &[u8]) {
    let fix = &*FIX;
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let (held, old, size) = (u64::from(byte(0)) % 65, u64::from(byte(1)) % 65, u64::from(byte(2)) % 65);
    let damage = byte(3) % 8;
    let pick = usize::from(byte(4));

    let mut proof = fix.proof(old, size);
    let mut origin = ORIGIN;
    let mut root = fix.root(size);
    let mut signer = fix.log.clone();
    let mut break_signature = false;
    match damage {
        1 if !proof.is_empty() => {
            let n = pick % proof.len();
            proof[n].0[usize::from(byte(5)) % 32] ^= 1 << (byte(6) % 8);
        }
        2 if !proof.is_empty() => {
            proof.pop();
        }
        3 => proof.push(Hash([byte(5); 32])),
        4 => signer = SignerKey::from_seed(ORIGIN, [9; 32]).expect("key"),
        5 => break_signature = true,
        6 => root = Hash([byte(5) | 1; 32]),
        7 => origin = "example.com/not-followed",
        _ => {}
    }
    let text = fix.text(origin, size, root);
    let mut note = if origin == ORIGIN {
        signer.sign(&text).expect("sign")
    } else {
        SignerKey::from_seed(origin, [1; 32]).expect("key").sign(&text).expect("sign")
    };
    if break_signature {
        // Another valid-looking signature under the log's name and key ID, over other text.
        note = format!("{text}\n{}", fix.log.signature_line(b"other text\n"));
    }
    let body = frame(old, &proof, note.as_bytes());
    let state = &fix.states[held as usize];
    let result = fix.machine.add_checkpoint(state, &body, Timestamp::new(NOW).expect("now"));

    // The reference, in the spec's order.
    let honest_proof = fix.proof(old, size);
    let expected = if damage == 7 {
        404
    } else if damage == 4 || damage == 5 {
        403
    } else if old > size {
        400
    } else if old != held {
        409
    } else if size == 0 && root != graven_core::hash::empty_root() {
        422
    } else if old == 0 {
        if proof.is_empty() { 200 } else { 422 }
    } else if old == size {
        if proof.is_empty() && root == fix.root(size) { 200 } else { 422 }
    } else if proof == honest_proof && root == fix.root(size) {
        200
    } else {
        422
    };
    assert_eq!(status(&result), expected, "held {held} old {old} size {size} damage {damage}: {result:?}");
    if let Ok((next, lines)) = &result {
        check_cosigned(&body, next, lines);
    }
    if damage == 0 && old == held && size >= old {
        assert_eq!(status(&result), 200, "an honest request from the size held was refused");
    }
}
