//! The check and the update are one atomic step (C2SP `tlog-witness` §add-checkpoint, the race
//! of requests A and B): concurrent requests for one log, on the real filesystem (real fsyncs,
//! so the window between check and update is wide open if it is not closed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Barrier};

use common::{Log, cosigner, trusted};
use graven_core::hash::TreeSize;
use graven_witness::machine::WitnessError;
use graven_witness::witness::{AddError, Witness};

const NOW: u64 = 1_700_000_000;

fn witness(dir: &std::path::Path, log: &Log) -> Arc<Witness> {
    Arc::new(Witness::open(Arc::new(graven_tlog::RealFs), dir, cosigner(), trusted(&[log])).unwrap())
}

/// The spec's race, over and over: several requests from the same old size to different new
/// sizes, released at once. Exactly one is cosigned; every other gets 409 with the winner's
/// size; the record is the winner's. Without the atomic step, two would be cosigned and the
/// record could roll back to the smaller.
#[test]
fn of_concurrent_requests_from_one_old_size_exactly_one_is_cosigned() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::new("example.com/log", 1, 400);
    let w = witness(tmp.path(), &log);
    let mut old = 0;
    const RACERS: u64 = 4;
    for round in 0..25 {
        let barrier = Arc::new(Barrier::new(RACERS as usize));
        let racers: Vec<_> = (1..=RACERS)
            .map(|k| {
                let (w, barrier) = (w.clone(), barrier.clone());
                let size = old + k + round % 3;
                let body = log.body(old, size);
                std::thread::spawn(move || {
                    barrier.wait();
                    (size, w.add_checkpoint(&body, NOW + round))
                })
            })
            .collect();
        let results: Vec<(u64, Result<String, AddError>)> =
            racers.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<u64> = results.iter().filter(|r| r.1.is_ok()).map(|r| r.0).collect();
        assert_eq!(winners.len(), 1, "round {round}: cosigned {winners:?}");
        let won = winners[0];
        for (size, r) in &results {
            if *size != won {
                match r {
                    Err(AddError::Refused(WitnessError::Conflict(held))) => assert_eq!(*held, TreeSize(won)),
                    other => panic!("round {round}: size {size} got {other:?}"),
                }
            }
        }
        assert_eq!(
            w.held(log.origin()).unwrap().size(),
            TreeSize(won),
            "round {round}: the record rolled back"
        );
        old = won;
    }
}

/// Clients that each read the witness's size and race to extend it (or resubmit it): the
/// cosigned requests form one chain 0 → s1 → s2 → ..., each from the size the previous one
/// left, and the record ends at the largest size ever cosigned.
#[test]
fn concurrent_clients_get_cosignatures_that_form_one_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::new("example.com/log", 1, 600));
    let w = witness(tmp.path(), &log);
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            let (w, log) = (w.clone(), log.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..40u64 {
                    let held = w.held(log.origin()).map_or(0, |h| h.size().0);
                    let size = (held + (c + i) % 4).min(log.size());
                    if w.add_checkpoint(&log.body(held, size), NOW + i).is_ok() {
                        mine.push((held, size));
                    }
                }
                mine
            })
        })
        .collect();
    let mut cosigned: Vec<(u64, u64)> = clients.into_iter().flat_map(|t| t.join().unwrap()).collect();
    cosigned.sort_unstable();
    assert!(cosigned.len() > 20, "{cosigned:?}");
    // One chain: per size, exactly one request that moved the record there (old < size),
    // from the size below it in the chain; resubmissions (old == size) only at chain sizes.
    let mut sizes: Vec<u64> = cosigned.iter().map(|c| c.1).collect();
    sizes.dedup();
    let mut below = 0;
    for &s in &sizes {
        let movers: Vec<_> = cosigned.iter().filter(|c| c.1 == s && c.0 != s).collect();
        if s == 0 {
            continue;
        }
        assert_eq!(movers.len(), 1, "size {s} reached {} times: {movers:?}", movers.len());
        assert_eq!(movers[0].0, below, "size {s} was cosigned from {}, not from {below}", movers[0].0);
        below = s;
    }
    assert_eq!(w.held(log.origin()).unwrap().size().0, below, "the record is not the largest cosigned size");
}
