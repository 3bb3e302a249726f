//! Power cuts at every crash point of the witness's durable path, on `graven_tlog::sim::SimFs`
//! (a disk that forgets whatever was not synced, with a failpoint before or after the N-th
//! operation). After each crash the witness reopens with the old or the new record for the
//! origin, whole, never an unreadable one; a cosignature it returned is never lost; and it
//! never afterwards cosigns a checkpoint inconsistent with one it returned before.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Log, consistent, cosigner, trusted};
use graven_core::cosignature::{self, Cosigned};
use graven_core::hash::Hash;
use graven_core::note::Note;
use graven_tlog::sim::{FailMode, SimFs};
use graven_witness::witness::{AddError, Witness};

const NOW: u64 = 1_700_000_000;
const DATA: &str = "/witness";

fn open(fs: &Arc<SimFs>, log: &Log) -> Witness {
    Witness::open(fs.clone(), Path::new(DATA), cosigner(), trusted(&[log])).unwrap()
}

/// The (size, root) a returned cosignature line vouches for, after checking it.
fn vouched(log: &Log, size: u64, lines: &str) -> (u64, Hash) {
    let note = format!("{}\n{lines}", log.text(size));
    let parsed = Note::parse(note.as_bytes()).unwrap();
    assert!(matches!(cosignature::check(&parsed, &[cosigner().verifier()])[0], Cosigned::Valid(_)));
    (size, log.root(size))
}

/// Every request a forger holding the log's key could make after the witness cosigned
/// `returned` (and perhaps a newer, unreturned record): forks from several points, with the
/// fork's own proofs from every old size it may try, and the honest log's proofs.
fn fork_attempts(honest: &Log, held: u64) -> Vec<(Log, Vec<u8>)> {
    let mut out = Vec::new();
    for at in [0, 1, held.saturating_sub(1), held / 2] {
        if at >= held {
            continue;
        }
        let fork = honest.fork(at, held + 7);
        for size in [held, held + 3, held + 7] {
            for old in [0, at, held] {
                if old <= size {
                    out.push((fork.clone(), fork.body(old, size)));
                }
            }
            if honest.size() >= size {
                out.push((
                    fork.clone(),
                    common::body(held, &honest.proof(held, size), &fork.checkpoint(size)),
                ));
            }
        }
    }
    out
}

/// One crash scenario: the witness holds `before` (returned), then is asked to move to `after`
/// with the disk failing at operation `fail_at` of that update in `mode`, then the power goes.
fn one_crash(before: Option<u64>, after: u64, fail_at: Option<(usize, FailMode)>) -> &'static str {
    let mut honest = Log::new("example.com/log", 1, after + 20);
    honest.grow_to(after + 20, "honest");
    let fs = Arc::new(SimFs::new());
    let w = open(&fs, &honest);
    let mut returned = Vec::new();
    if let Some(b) = before {
        let lines = w.add_checkpoint(&honest.body(0, b), NOW).unwrap();
        returned.push(vouched(&honest, b, &lines));
    }
    let old_note = before
        .map(|_| w.checkpoint(&graven_witness::machine::origin_hash(honest.origin())).unwrap().to_vec());
    if let Some((n, mode)) = fail_at {
        fs.fail_after(n, mode);
    }
    let result = w.add_checkpoint(&honest.body(before.unwrap_or(0), after), NOW + 1);
    match &result {
        Ok(lines) => returned.push(vouched(&honest, after, lines)),
        Err(AddError::Storage(_)) => {
            assert!(w.is_poisoned());
            // Poisoned: nothing more is answered until a restart.
            assert!(matches!(w.add_checkpoint(&honest.body(after, after), NOW + 2), Err(AddError::Poisoned)));
        }
        Err(e) => panic!("unexpected refusal: {e}"),
    }
    drop(w);
    fs.crash();

    // Reopens: never unreadable.
    let w = open(&fs, &honest);
    let held = w.held(honest.origin());
    let outcome = match (&held, before) {
        (None, None) => "none",
        (Some(h), Some(b)) if h.size().0 == b => {
            // Whole: the very bytes of the old record.
            assert_eq!(Some(h.note_bytes().to_vec()), old_note, "the old record changed");
            "old"
        }
        (Some(h), _) if h.size().0 == after => "new",
        (h, _) => panic!("after the crash the witness holds {h:?}, neither {before:?} nor {after}"),
    };
    // Durable before returned: a cosignature that left is never forgotten.
    if result.is_ok() {
        assert_eq!(outcome, "new", "a returned cosignature's record was lost in the crash");
    }
    if let Some(h) = &held {
        // The new record, if it survived, is exactly what the witness would have returned.
        let text = honest.text(h.size().0);
        assert!(h.note_bytes().starts_with(text.as_bytes()));
    }

    // Never afterwards inconsistent with anything returned before the crash.
    // (A witness that holds nothing returned nothing: there is nothing to be consistent with.)
    let held_size = held.as_ref().map_or(0, |h| h.size().0);
    let attempts = if held.is_some() { fork_attempts(&honest, held_size) } else { Vec::new() };
    for (fork, body) in attempts {
        if let Ok(lines) = w.add_checkpoint(&body, NOW + 3) {
            let size = graven_witness::request::Submission::parse(&body).unwrap().checkpoint().size().0;
            let got = vouched(&fork, size, &lines);
            for r in &returned {
                assert!(
                    consistent(&honest, *r, got),
                    "cosigned {got:?} after a crash, inconsistent with {r:?}"
                );
            }
            returned.push(got);
        }
    }
    // The honest log goes on from what the witness holds.
    let lines = w.add_checkpoint(&honest.body(held_size, after + 20), NOW + 4).unwrap();
    let got = vouched(&honest, after + 20, &lines);
    for r in &returned {
        assert!(consistent(&honest, *r, got));
    }
    outcome
}

/// How many mutating disk operations one update takes (write, sync, rename, sync dir).
fn ops_per_update(before: Option<u64>) -> usize {
    let honest = Log::new("example.com/log", 1, 30);
    let fs = Arc::new(SimFs::new());
    let w = open(&fs, &honest);
    if let Some(b) = before {
        w.add_checkpoint(&honest.body(0, b), NOW).unwrap();
    }
    let start = fs.ops();
    w.add_checkpoint(&honest.body(before.unwrap_or(0), 30), NOW).unwrap();
    fs.ops() - start
}

#[test]
fn a_power_cut_at_every_point_of_an_update_leaves_the_old_or_the_new_record() {
    for before in [Some(10), None] {
        let ops = ops_per_update(before);
        assert_eq!(ops, 4, "write, fsync, rename, fsync of the directory");
        let mut seen = std::collections::BTreeMap::new();
        for n in 0..=ops {
            for mode in [FailMode::Before, FailMode::After] {
                let outcome = one_crash(before, 25, Some((n, mode)));
                *seen.entry(outcome).or_insert(0) += 1;
            }
        }
        // A crash with no failure at all, right after the answer.
        assert_eq!(one_crash(before, 25, None), "new");
        eprintln!("before {before:?}: outcomes {seen:?}");
        // Both outcomes happen: the test really reaches both sides of the commit point.
        assert!(seen.len() >= 2, "{seen:?}");
    }
}

/// Crashes while the witness opens a fresh data directory (creating it and its checkpoints
/// directory): it always opens again, and then works.
#[test]
fn a_power_cut_while_creating_the_data_directory_is_harmless() {
    let honest = Log::new("example.com/log", 1, 5);
    let fresh = Arc::new(SimFs::new());
    drop(open(&fresh, &honest));
    let ops = fresh.ops();
    assert!(ops >= 4, "mkdir, fsync, mkdir, fsync: {ops}");
    for n in 0..=ops {
        for mode in [FailMode::Before, FailMode::After] {
            let fs = Arc::new(SimFs::new());
            fs.fail_after(n, mode);
            let _ = Witness::open(fs.clone(), Path::new(DATA), cosigner(), trusted(&[&honest]));
            fs.crash();
            let w = open(&fs, &honest);
            assert!(w.held(honest.origin()).is_none());
            w.add_checkpoint(&honest.body(0, 5), NOW).unwrap();
        }
    }
}

/// Many steps of an honest log and a forger, with a power cut at a random operation now and
/// then (seeded, so a failure replays). Across every crash, every cosignature ever returned
/// is consistent with every other.
#[test]
fn a_simulated_life_of_crashes_never_yields_two_inconsistent_cosignatures() {
    let seeds: u64 = std::env::var("GRAVEN_WITNESS_SIM_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    for seed in 1..=seeds {
        simulate(seed);
    }
}

fn simulate(seed: u64) {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut honest = Log::new("example.com/log", 1, 4);
    let fs = Arc::new(SimFs::new());
    let mut w = open(&fs, &honest);
    // The witness sees the honest log first: from then on, any fork that diverges before what
    // it holds is inconsistent with a cosignature it returned, and must never be cosigned.
    let first = w.add_checkpoint(&honest.body(0, 4), NOW).unwrap();
    let mut returned: Vec<(u64, Hash)> = vec![vouched(&honest, 4, &first)];
    let (mut crashes, mut cosigned, mut refused) = (0, 0, 0);
    for step in 0..150u64 {
        if next(6) == 0 {
            // Arm a failpoint within the next few operations, then cut the power after the
            // next request.
            fs.fail_after(next(6) as usize, if next(2) == 0 { FailMode::Before } else { FailMode::After });
        }
        let held = w.held(honest.origin()).map_or(0, |h| h.size().0);
        honest.grow_to(honest.size() + next(5), "honest");
        let (from, body) = match next(4) {
            // The log, honestly, from what the witness holds.
            0 | 1 => {
                let size = held + next(honest.size() - held + 1);
                (honest.clone(), honest.body(held, size))
            }
            // The log from a stale old size.
            2 => {
                let old = next(held + 1);
                let size = old + next(honest.size() - old + 1);
                (honest.clone(), honest.body(old, size))
            }
            // The forger.
            _ => {
                // Diverging before the size the witness holds (a fork diverging after it is,
                // to the witness, just the log growing: it cannot tell, and need not).
                let at = next(held);
                let fork = honest.fork(at, honest.size() + 1 + next(5));
                let old = [0, held, at][next(3) as usize];
                let size = old.max(at) + next(fork.size() - old.max(at) + 1);
                (fork.clone(), fork.body(old.min(size), size))
            }
        };
        match w.add_checkpoint(&body, NOW + step) {
            Ok(lines) => {
                let size = graven_witness::request::Submission::parse(&body).unwrap().checkpoint().size().0;
                let got = vouched(&from, size, &lines);
                for r in &returned {
                    assert!(consistent(&honest, *r, got), "seed {seed} step {step}: {got:?} against {r:?}");
                }
                returned.push(got);
                cosigned += 1;
            }
            Err(AddError::Refused(_)) => refused += 1,
            Err(AddError::Storage(_) | AddError::Poisoned) => {}
            Err(e) => panic!("{e}"),
        }
        if w.is_poisoned() || next(10) == 0 {
            drop(w);
            fs.crash();
            crashes += 1;
            w = open(&fs, &honest);
            // Durable before returned: the record is at least the last cosignature returned.
            let held = w.held(honest.origin()).map_or(0, |h| h.size().0);
            assert!(returned.iter().all(|r| r.0 <= held), "seed {seed} step {step}: record {held} went back");
        }
    }
    eprintln!("seed {seed}: {cosigned} cosigned, {refused} refused, {crashes} power cuts");
    assert!(cosigned > 10 && refused > 10 && crashes > 5, "seed {seed}: {cosigned} {refused} {crashes}");
}
