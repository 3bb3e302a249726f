//! Commit latency of the local log on the real disk:
//! `cargo run --release -p graven-tlog --example commitbench -- <entries per commit> <commits> [dir]`.
//! Prints the median and p99 commit time and the entry rate.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let per: usize = args.get(1).map_or(128, |a| a.parse().unwrap());
    let commits: usize = args.get(2).map_or(200, |a| a.parse().unwrap());
    let tmp = tempfile::tempdir_in(args.get(3).map_or("/tmp", String::as_str)).unwrap();
    let key = graven_core::note::SignerKey::from_seed("bench.example/log", [7; 32]).unwrap();
    let mut log = graven_tlog::LocalLog::open(&tmp.path().join("log"), key).unwrap();
    let entry = vec![b'x'; 600];
    let batch: Vec<&[u8]> = (0..per).map(|_| entry.as_slice()).collect();
    let mut times = Vec::with_capacity(commits);
    let start = Instant::now();
    for _ in 0..commits {
        let t = Instant::now();
        log.append(&batch).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let total = start.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    println!(
        "{per} entries/commit: median {:.2} ms, p99 {:.2} ms, {:.0} entries/s",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        (per * commits) as f64 / total
    );
}
