//! Failover of a log on S3 (a real SeaweedFS): two `graven serve` nodes on one bucket, a
//! client writing without pause, and the writer killed with SIGKILL again and again. The
//! standby must take over within 10 s each time, every acknowledged event must be at its
//! receipt's index, no index may be acknowledged twice, and the log must verify from S3.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use graven_s3::S3Config;
use graven_testkit::process::{Listening, spawn_listening};
use graven_testkit::s3::{Seaweed, env};

const CYCLES: usize = 20;
const TAKEOVER_LIMIT: Duration = Duration::from_secs(10);

/// A node: `graven serve` on a free loopback port, killed (SIGKILL) when dropped.
type Node = Listening;

fn start(data: &Path, key: &Path, cfg: &S3Config) -> Node {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graven"));
    cmd.args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--storage", &cfg.url(), "--key", key.to_str().unwrap()])
        .envs(env(cfg))
        .stderr(Stdio::null());
    spawn_listening(&mut cmd, Duration::from_secs(60))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

fn is_writer(addr: &str) -> bool {
    let Ok(mut r) = agent().get(format!("http://{addr}/metrics")).call() else { return false };
    let body = r.body_mut().read_to_string().unwrap_or_default();
    body.lines().any(|l| l == "graven_writer 1")
}

/// One acknowledged event: its number (unique, in the event), and its receipt.
#[derive(Debug, Clone)]
struct Ack {
    n: u64,
    index: u64,
    leaf: String,
    /// When the request that acknowledged it was sent, and when the answer was read.
    sent: Instant,
    at: Instant,
}

/// Writes batches of events to whichever node takes them, following redirects, retrying a
/// batch whose outcome is unknown (as a real client does), until told to stop.
fn client(nodes: Arc<Mutex<Vec<String>>>, token: String, acks: Arc<Mutex<Vec<Ack>>>, stop: Arc<AtomicBool>) {
    let a = agent();
    let mut next = 0u64;
    let mut target = 0usize;
    let mut redirect: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        let batch: Vec<u64> = (next..next + 20).collect();
        let body: String = batch
            .iter()
            .map(|n| {
                format!(
                    "{{\"action\":\"failover.write\",\"resource\":{{\"type\":\"seq\",\"id\":\"n{n}\"}}}}\n"
                )
            })
            .collect();
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let url = match redirect.take() {
                Some(u) => u,
                None => {
                    let list = nodes.lock().unwrap().clone();
                    format!("http://{}/v1/events", list[target % list.len()])
                }
            };
            let sent_at = Instant::now();
            let sent = a
                .post(&url)
                .header("Authorization", &format!("Bearer {token}"))
                .header("Content-Type", "application/x-ndjson")
                .send(body.as_bytes());
            let mut r = match sent {
                Ok(r) => r,
                Err(_) => {
                    target += 1;
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            let status = r.status().as_u16();
            if status == 307 {
                redirect = r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
                continue;
            }
            let text = r.body_mut().read_to_string().unwrap_or_default();
            if status != 201 {
                target += 1;
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let at = Instant::now();
            let mut got = acks.lock().unwrap();
            for (line, n) in text.lines().zip(&batch) {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                got.push(Ack {
                    n: *n,
                    index: v["index"].as_u64().unwrap(),
                    leaf: v["leaf_hash"].as_str().unwrap().to_owned(),
                    sent: sent_at,
                    at,
                });
            }
            assert_eq!(text.lines().count(), batch.len(), "one receipt per event");
            break;
        }
        next += 20;
    }
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh Object-Locked bucket (prefix `log`), a temp dir, a signer key in it, and its
/// verifier key.
fn setup(hint: &str, origin: &str) -> (S3Config, tempfile::TempDir, PathBuf, String) {
    let mut cfg = Seaweed::shared().bucket(hint, true);
    cfg.prefix = "log".into();
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("signer.key");
    let vkey = common::keygen(&key, origin);
    (cfg, tmp, key, vkey)
}

/// Checks every acknowledgement against the log in S3: no index acknowledged twice, each below
/// the published size, each entry the acknowledged one (leaf hash and event number); then
/// `graven verify` of the bucket. Returns the published size.
fn check_acknowledged(cfg: &S3Config, acks: &[Ack], vkey: &str, trust: &Path) -> u64 {
    let mut by_index = std::collections::HashMap::new();
    for a in acks {
        assert!(by_index.insert(a.index, a.n).is_none(), "index {} acknowledged twice", a.index);
    }
    let store = graven_s3::S3Store::connect(cfg.clone()).unwrap();
    let text = String::from_utf8(graven_tlog::read_object(&store, "checkpoint", 1 << 20).unwrap()).unwrap();
    let size: u64 = text.lines().nth(1).unwrap().parse().unwrap();
    let mut bundles: std::collections::HashMap<u64, Vec<Vec<u8>>> = std::collections::HashMap::new();
    for a in acks {
        assert!(a.index < size, "acknowledged index {} beyond the published size {size}", a.index);
        let entries = bundles.entry(a.index / 256).or_insert_with(|| {
            let id = graven_core::tile::bundle_for_entry(a.index, graven_core::TreeSize(size)).unwrap();
            let bytes = graven_tlog::read_object(&store, &id.path(), 1 << 25).unwrap();
            graven_core::tile::decode_bundle(&bytes, id.width)
                .unwrap()
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect()
        });
        let entry = &entries[(a.index % 256) as usize];
        let leaf = base64::engine::general_purpose::STANDARD.encode(graven_core::leaf_hash(entry).as_bytes());
        assert_eq!(leaf, a.leaf, "index {}: the stored entry is not the acknowledged one", a.index);
        let ev: serde_json::Value = serde_json::from_slice(entry).unwrap();
        assert_eq!(ev["resource"]["id"], format!("n{}", a.n), "index {}", a.index);
    }
    // The log verifies from S3 with the standard verifier.
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["verify", &cfg.url(), "--vkey", vkey, "--trust-dir", trust.to_str().unwrap()])
        .envs(env(cfg))
        .output()
        .unwrap();
    assert!(out.status.success(), "verify: {}", String::from_utf8_lossy(&out.stderr));
    size
}

#[test]
fn the_standby_takes_over_within_10s_of_a_kill_and_no_acknowledged_event_is_lost() {
    let (cfg, tmp, key, vkey) = setup("failover", "failover.example/log");
    let data: [PathBuf; 2] = [tmp.path().join("a"), tmp.path().join("b")];

    let mut nodes: [Option<Node>; 2] = [Some(start(&data[0], &key, &cfg)), None];
    wait_until(Duration::from_secs(10), "the first node to write", || {
        is_writer(&nodes[0].as_ref().unwrap().addr)
    });
    nodes[1] = Some(start(&data[1], &key, &cfg));
    let token = std::fs::read_to_string(data[0].join("admin.token")).unwrap().trim().to_owned();
    let addrs =
        Arc::new(Mutex::new(nodes.iter().map(|n| n.as_ref().unwrap().addr.clone()).collect::<Vec<_>>()));
    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (addrs, acks, stop, token) = (addrs.clone(), acks.clone(), stop.clone(), token.clone());
        std::thread::spawn(move || client(addrs, token, acks, stop))
    };

    let mut takeovers = Vec::new();
    for cycle in 0..CYCLES {
        // Load flowing, and the standby up long enough to have seen the lease.
        let before = acks.lock().unwrap().len();
        wait_until(Duration::from_secs(15), "events to be acknowledged", || {
            acks.lock().unwrap().len() > before + 100
        });
        let w = (0..2)
            .find(|&i| is_writer(&nodes[i].as_ref().unwrap().addr))
            .unwrap_or_else(|| panic!("cycle {cycle}: no node is the writer"));
        nodes[w].as_mut().unwrap().child.kill().unwrap(); // SIGKILL
        let killed = Instant::now();
        nodes[w].as_mut().unwrap().child.wait().unwrap();
        // The first acknowledgement of a request sent after the kill (an answer sent by the
        // dying node just before it died may be read after it).
        wait_until(TAKEOVER_LIMIT + Duration::from_secs(5), "an acknowledgement after the kill", || {
            acks.lock().unwrap().last().is_some_and(|a| a.sent > killed)
        });
        let first = acks.lock().unwrap().iter().find(|a| a.sent > killed).map(|a| a.at).unwrap();
        let took = first - killed;
        takeovers.push(took);
        assert!(took <= TAKEOVER_LIMIT, "cycle {cycle}: the standby took {took:?} to take over");
        assert!(is_writer(&nodes[1 - w].as_ref().unwrap().addr), "cycle {cycle}: the survivor writes");
        // The killed node comes back as the standby.
        nodes[w] = None;
        let n = start(&data[w], &key, &cfg);
        addrs.lock().unwrap()[w] = n.addr.clone();
        nodes[w] = Some(n);
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    // Every acknowledged event is at its receipt's index, no index was acknowledged twice, and
    // the log verifies.
    let acks = acks.lock().unwrap().clone();
    let size = check_acknowledged(&cfg, &acks, &vkey, &tmp.path().join("trust"));

    takeovers.sort();
    eprintln!(
        "{CYCLES} kills, {} acknowledged events, tree size {size}; takeover median {:?}, max {:?}",
        acks.len(),
        takeovers[takeovers.len() / 2],
        takeovers.last().unwrap()
    );
}

/// A writer that is paused (SIGSTOP, as a long GC pause or a frozen VM would) loses the lease to
/// the standby, and when it wakes up, with requests of its own in flight, it is fenced: it
/// publishes nothing that diverges, acknowledges nothing twice, and becomes a replica.
#[test]
fn a_paused_writer_wakes_up_fenced() {
    let (cfg, tmp, key, vkey) = setup("paused", "paused.example/log");
    let a = start(&tmp.path().join("a"), &key, &cfg);
    wait_until(Duration::from_secs(10), "the first node to write", || is_writer(&a.addr));
    let b = start(&tmp.path().join("b"), &key, &cfg);
    let token = std::fs::read_to_string(tmp.path().join("a/admin.token")).unwrap().trim().to_owned();
    let addrs = Arc::new(Mutex::new(vec![a.addr.clone(), b.addr.clone()]));
    let acks = Arc::new(Mutex::new(Vec::<Ack>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (addrs, acks, stop, token) = (addrs.clone(), acks.clone(), stop.clone(), token.clone());
        std::thread::spawn(move || client(addrs, token, acks, stop))
    };
    wait_until(Duration::from_secs(15), "events to be acknowledged", || acks.lock().unwrap().len() > 200);
    let signal = |sig: &str| {
        assert!(Command::new("kill").args([sig, &a.child.id().to_string()]).status().unwrap().success());
    };
    signal("-STOP");
    let paused = Instant::now();
    // The client's request to the frozen node hangs until its own timeout, so the takeover is
    // timed from the standby's side: when it reports itself the writer.
    wait_until(TAKEOVER_LIMIT + Duration::from_secs(5), "the standby to take over", || is_writer(&b.addr));
    let took = paused.elapsed();
    assert!(took <= TAKEOVER_LIMIT, "the standby took {took:?}");
    wait_until(Duration::from_secs(15), "writes to resume on the standby", || {
        acks.lock().unwrap().last().is_some_and(|x| x.sent > paused)
    });
    // Wake the old writer while the client is still writing, and let both run a while.
    signal("-CONT");
    let before = acks.lock().unwrap().len();
    wait_until(Duration::from_secs(15), "more events after the wake-up", || {
        acks.lock().unwrap().len() > before + 200
    });
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(is_writer(&b.addr) && !is_writer(&a.addr), "the woken writer must have stepped down");

    let acks = acks.lock().unwrap().clone();
    let size = check_acknowledged(&cfg, &acks, &vkey, &tmp.path().join("trust"));
    eprintln!("paused writer: takeover {took:?}, {} acknowledged events, size {size}", acks.len());
}
