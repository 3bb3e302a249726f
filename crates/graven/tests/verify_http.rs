//! `graven verify <url>` fetches ahead (`--fetch-ahead N`, default 16): up to N files are in
//! flight while the entries are still checked in order; `--fetch-ahead 0` asks for one file at
//! a time. Fetching ahead changes neither the verdict nor what is found: a tampered bundle is
//! still named, whether it arrived ahead or not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestLog, graven, numbered, ok};
use graven_core::tile;
use graven_testkit::net::Response;

/// A tile server for `dir` that holds each answer 3 ms and counts how many requests it is
/// answering at once (the most seen), with `tamper` applied to each body it serves.
struct Counting {
    url: String,
    most: Arc<AtomicUsize>,
    _server: graven_testkit::net::Server,
}

fn counting_server(dir: PathBuf, tamper: fn(&str, Vec<u8>) -> Vec<u8>) -> Counting {
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), most.clone());
    let server = graven_testkit::net::serve(move |req| {
        let path = req.path.trim_start_matches('/').to_owned();
        let at_once = n.fetch_add(1, Ordering::SeqCst) + 1;
        m.fetch_max(at_once, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(3));
        let body = tile::parse_path(&path).ok().and_then(|_| std::fs::read(dir.join(&path)).ok());
        n.fetch_sub(1, Ordering::SeqCst);
        match body {
            Some(b) => Response::ok(tamper(&path, b)),
            None => Response::not_found(),
        }
    });
    Counting { url: format!("{}/", server.url()), most, _server: server }
}

fn log_of(bundles: u64) -> TestLog {
    let log = TestLog::new("ahead.example/log");
    ok(&log.append_raw(&numbered("entry-", 0..bundles * 256 + 17)));
    log
}

fn verify(url: &str, vkey: &str, ahead: &str) -> std::process::Output {
    graven(&["verify", url, "--vkey", vkey, "--full", "--fetch-ahead", ahead, "--json"], b"")
}

#[test]
fn files_are_fetched_ahead_within_the_bound_and_one_at_a_time_with_zero() {
    let log = log_of(40);
    let s = counting_server(log.dir.clone(), |_, b| b);
    let out = verify(&s.url, &log.vkey, "8");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report["tree_size"], 40 * 256 + 17);
    let most = s.most.load(Ordering::SeqCst);
    // Eight ahead, and the walk's own request for a file not hinted (a higher-level tile).
    assert!((2..=9).contains(&most), "at most 8 ahead (+1), and more than one: {most}");

    let s = counting_server(log.dir.clone(), |_, b| b);
    let out = verify(&s.url, &log.vkey, "0");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.most.load(Ordering::SeqCst), 1, "--fetch-ahead 0: one request at a time");
    // The bound is checked when given.
    let out = verify(&s.url, &log.vkey, "1000");
    assert!(!out.status.success());
}

#[test]
fn a_tampered_bundle_fetched_ahead_is_still_found() {
    let log = log_of(24);
    // Bundle 20 (entries 5120..5375) has one byte changed: far ahead of the first requests.
    let s = counting_server(log.dir.clone(), |path, mut b| {
        if path == "tile/entries/020" {
            let last = b.len() - 2;
            b[last] ^= 1;
        }
        b
    });
    for ahead in ["16", "0"] {
        let out = verify(&s.url, &log.vkey, ahead);
        assert_eq!(
            out.status.code(),
            Some(1),
            "--fetch-ahead {ahead}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let error = report["error"].as_str().unwrap();
        assert!(
            error.contains("5375") || error.contains("tile/entries/020"),
            "--fetch-ahead {ahead}: {error}"
        );
    }
}
