//! Rounds against real witnesses: `graven witness`'s service (crates/graven-witness) served on
//! loopback, and a real RFC 6962 log built with graven-core (the witness's own test log).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../graven-witness/tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Log, trusted};
use graven_core::cosignature::Cosigner;
use graven_core::hash::Hash;
use graven_core::policy::{ParseOptions, Policy};
use graven_witness::http::{AppState, app};
use graven_witness::witness::Witness;
use graven_witness_client::{ProofSource, Witnessing, WitnessingConfig};

/// A witness served on a free loopback port, with its data directory.
struct Served {
    url: String,
    cosigner: Cosigner,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

fn clock() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn serve_witness(n: u8, logs: &[&Log], dir: Option<tempfile::TempDir>) -> Served {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let cosigner = Cosigner::from_seed(&format!("w{n}.example"), [n; 32]).unwrap();
    let witness =
        Witness::open(Arc::new(graven_tlog::RealFs), dir.path(), cosigner.clone(), trusted(logs)).unwrap();
    let state = Arc::new(AppState {
        witness: Arc::new(witness),
        max_body_bytes: 64 << 10,
        body_timeout: Duration::from_secs(5),
        clock,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app(state, "")).await.unwrap();
    });
    Served { url, cosigner, _dir: dir, task }
}

/// A URL where nothing listens.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn policy(log: &Log, witnesses: &[(&str, String, String)], quorum: &str) -> Policy {
    let mut s = format!("log {}\n", log.vkey());
    for (name, vkey, url) in witnesses {
        s.push_str(&format!("witness {name} {vkey} {url}\n"));
    }
    s.push_str(&format!(
        "group all-of-them {} {}\n",
        quorum,
        witnesses.iter().map(|w| w.0).collect::<Vec<_>>().join(" ")
    ));
    s.push_str("quorum all-of-them\n");
    Policy::parse(s.as_bytes(), ParseOptions::default()).unwrap()
}

struct Proofs(Mutex<Log>);
impl ProofSource for Proofs {
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, String> {
        Ok(self.0.lock().unwrap().proof(old, new))
    }
}

fn config() -> WitnessingConfig {
    WitnessingConfig {
        request_timeout: Duration::from_secs(2),
        round_timeout: Duration::from_secs(4),
        attempts: 2,
        retry_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        min_round_interval: Duration::ZERO,
    }
}

fn offer(w: &Witnessing, log: &Log, size: u64) {
    w.offer(size, String::from_utf8(log.checkpoint(size)).unwrap().into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_witnesses_cosign_each_round_and_the_note_meets_the_policy() {
    let mut log = Log::new("example.com/log", 7, 5);
    let ws = [
        serve_witness(1, &[&log], None).await,
        serve_witness(2, &[&log], None).await,
        serve_witness(3, &[&log], None).await,
    ];
    let entries: Vec<(&str, String, String)> = ws
        .iter()
        .zip(["w1", "w2", "w3"])
        .map(|(s, n)| (n, s.cosigner.verifier().to_string(), s.url.clone()))
        .collect();
    let pol = policy(&log, &entries, "3");
    let w = Witnessing::new(pol.clone(), &log.vkey(), config()).unwrap();
    let proofs = Arc::new(Proofs(Mutex::new(log.clone())));
    let _task = w.start(proofs.clone());
    offer(&w, &log, 5);
    let got = w.wait_witnessed(5, Duration::from_secs(10)).await.expect("witnessed at size 5");
    assert_eq!(got.size, 5);
    let checked = pol.verify(got.note().as_bytes()).unwrap();
    assert_eq!(checked.cosigned().len(), 3);
    // The log grows: the next round sends proofs from 5 (the size each witness holds).
    log.grow_to(40, "honest");
    *proofs.0.lock().unwrap() = log.clone();
    offer(&w, &log, 40);
    let got = w.wait_witnessed(40, Duration::from_secs(10)).await.expect("witnessed at size 40");
    pol.verify(got.note().as_bytes()).unwrap();
    for st in w.status() {
        assert_eq!(st.cosigned_size, Some(40), "{st:?}");
        assert_eq!(st.failures, 0, "{st:?}");
        // One request per round: from 0 at first (a fresh witness), then from 5.
        assert_eq!(st.requests, 2, "{st:?}");
    }
    assert_eq!(w.published().unwrap().size, 40);
    for s in ws {
        s.task.abort();
    }
}

/// A restarted log knows nothing of what its witnesses hold: it sends `old 0`, learns each
/// witness's size from the 409, and sends the right proof at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_size_a_witness_holds_is_learnt_from_its_409() {
    let mut log = Log::new("example.com/log", 7, 12);
    let ws = serve_witness(1, &[&log], None).await;
    let entries = vec![("w1", ws.cosigner.verifier().to_string(), ws.url.clone())];
    let pol = policy(&log, &entries, "1");
    let proofs = Arc::new(Proofs(Mutex::new(log.clone())));
    {
        let first = Witnessing::new(pol.clone(), &log.vkey(), config()).unwrap();
        let task = first.start(proofs.clone());
        offer(&first, &log, 12);
        first.wait_witnessed(12, Duration::from_secs(10)).await.expect("first life");
        task.abort();
    }
    log.grow_to(30, "honest");
    *proofs.0.lock().unwrap() = log.clone();
    let second = Witnessing::new(pol.clone(), &log.vkey(), config()).unwrap();
    let _task = second.start(proofs.clone());
    offer(&second, &log, 30);
    let got = second.wait_witnessed(30, Duration::from_secs(10)).await.expect("second life");
    pol.verify(got.note().as_bytes()).unwrap();
    let st = &second.status()[0];
    assert_eq!((st.requests, st.failures, st.cosigned_size), (2, 0, Some(30)), "old 0 (409), then old 12");
}

/// One dead witness of three with a quorum of two: every checkpoint is still witnessed, the
/// dead one is reported and sits out rounds. With two dead, nothing is witnessed, the round's
/// checkpoint is still published (unwitnessed), and waiting for the quorum times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_witnesses_are_reported_and_never_block_publication() {
    let mut log = Log::new("example.com/log", 7, 3);
    let a = serve_witness(1, &[&log], None).await;
    let b = serve_witness(2, &[&log], None).await;
    let dead = Cosigner::from_seed("w3.example", [3; 32]).unwrap();
    let entries = vec![
        ("w1", a.cosigner.verifier().to_string(), a.url.clone()),
        ("w2", b.cosigner.verifier().to_string(), b.url.clone()),
        ("w3", dead.verifier().to_string(), dead_url()),
    ];
    let pol = policy(&log, &entries, "2");
    let w = Witnessing::new(pol.clone(), &log.vkey(), config()).unwrap();
    let proofs = Arc::new(Proofs(Mutex::new(log.clone())));
    let _task = w.start(proofs.clone());
    offer(&w, &log, 3);
    let got = w.wait_witnessed(3, Duration::from_secs(10)).await.expect("quorum of two");
    assert_eq!(got.cosigners(), vec![0, 1]);
    // Wait for the round to end, then look at the dead witness.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = &w.status()[2];
    assert!(st.failures >= 1 && st.cosigned_size.is_none() && st.last_error.is_some(), "{st:?}");

    // Now a second witness dies: no quorum.
    b.task.abort();
    tokio::time::sleep(Duration::from_millis(50)).await;
    log.grow_to(9, "honest");
    *proofs.0.lock().unwrap() = log.clone();
    offer(&w, &log, 9);
    assert!(w.wait_witnessed(9, Duration::from_secs(1)).await.is_none());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w.published().unwrap().size != 9 {
        assert!(std::time::Instant::now() < deadline, "the round on 9 never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let p = w.published().unwrap();
    assert!(!p.witnessed);
    assert_eq!(p.cosigners(), vec![0]);
    assert!(pol.verify(p.note().as_bytes()).is_err());
    assert_eq!(w.witnessed().unwrap().size, 3);
    a.task.abort();
}

/// A validly signed fork (same key, another history) is offered after the witnesses cosigned
/// the honest log: they refuse it, and it is never witnessed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_offered_after_the_honest_history_is_never_witnessed() {
    let mut honest = Log::new("example.com/log", 7, 10);
    let a = serve_witness(1, &[&honest], None).await;
    let entries = vec![("w1", a.cosigner.verifier().to_string(), a.url.clone())];
    let pol = policy(&honest, &entries, "1");
    let w = Witnessing::new(pol.clone(), &honest.vkey(), config()).unwrap();
    let _task = w.start(Arc::new(Proofs(Mutex::new(honest.clone()))));
    offer(&w, &honest, 10);
    w.wait_witnessed(10, Duration::from_secs(10)).await.unwrap();

    honest.grow_to(20, "honest");
    let fork = honest.fork(6, 20);
    let forked = Witnessing::new(pol.clone(), &fork.vkey(), config()).unwrap();
    let _t2 = forked.start(Arc::new(Proofs(Mutex::new(fork.clone()))));
    offer(&forked, &fork, 20);
    assert!(forked.wait_witnessed(20, Duration::from_secs(2)).await.is_none());
    let st = &forked.status()[0];
    assert!(st.last_error.as_deref().is_some_and(|e| e.contains("422")), "{st:?}");
    // The honest history still gets cosigned from where the witness is.
    let w2 = Witnessing::new(pol, &honest.vkey(), config()).unwrap();
    let _t3 = w2.start(Arc::new(Proofs(Mutex::new(honest.clone()))));
    offer(&w2, &honest, 20);
    w2.wait_witnessed(20, Duration::from_secs(10)).await.expect("honest 20");
    a.task.abort();
}

/// A witness answering with a cosignature by another key (or garbage) gives nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cosignature_that_does_not_verify_is_not_kept() {
    let log = Log::new("example.com/log", 7, 4);
    let a = serve_witness(1, &[&log], None).await;
    let impostor = Cosigner::from_seed("w1.example", [99; 32]).unwrap();
    // The policy trusts a different key under the witness's name.
    let entries = vec![("w1", impostor.verifier().to_string(), a.url.clone())];
    let pol = policy(&log, &entries, "1");
    let w = Witnessing::new(pol, &log.vkey(), config()).unwrap();
    let _task = w.start(Arc::new(Proofs(Mutex::new(log.clone()))));
    offer(&w, &log, 4);
    assert!(w.wait_witnessed(4, Duration::from_secs(1)).await.is_none());
    let st = &w.status()[0];
    assert!(st.last_error.as_deref().is_some_and(|e| e.contains("verifies")), "{st:?}");
    a.task.abort();
}

#[test]
fn a_policy_that_does_not_trust_this_log_or_lacks_urls_is_refused() {
    let log = Log::new("example.com/log", 7, 1);
    let other = Log::new("example.com/log", 8, 1);
    let wk = Cosigner::from_seed("w1.example", [1; 32]).unwrap().verifier().to_string();
    let pol = policy(&log, &[("w1", wk.clone(), "http://127.0.0.1:9".into())], "1");
    let e = Witnessing::new(pol, &other.vkey(), config()).unwrap_err();
    assert!(e.to_string().contains("add `log"), "{e}");
    let no_url = Policy::parse(
        format!("log {}\nwitness w1 {wk}\nquorum w1\n", log.vkey()).as_bytes(),
        ParseOptions::default(),
    )
    .unwrap();
    let e = Witnessing::new(no_url, &log.vkey(), config()).unwrap_err();
    assert!(e.to_string().contains("no URL"), "{e}");
}

/// The policy example in docs/witness.md parses, with real keys (the log's is the test log's
/// key from seed 5), a URL for every witness, and a quorum of two of the three.
#[test]
fn the_documented_policy_example_is_a_valid_policy_for_the_log() {
    let doc = include_str!("../../../docs/witness.md");
    let section = doc.split("## Graven as a witnessed log").nth(1).unwrap();
    let example = section.split("```").nth(1).unwrap();
    let pol = Policy::parse(example.trim_start_matches('\n').as_bytes(), ParseOptions::default()).unwrap();
    let log = graven_core::note::SignerKey::from_seed("witnessed.example/log", [5; 32]).unwrap();
    assert_eq!(pol.logs()[0].key, log.verifier());
    assert_eq!(pol.witnesses().len(), 3);
    assert!(pol.witnesses().iter().all(|w| w.url.is_some()));
    assert!(pol.quorum_met(&[true, false, true]) && !pol.quorum_met(&[false, false, true]));
    Witnessing::new(pol, &log.verifier(), config()).unwrap();
}

/// Under a stream of checkpoints, rounds start at most once per `min_round_interval`, each on
/// the newest checkpoint offered, and the last one offered is witnessed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_are_spaced_by_the_interval_and_take_the_newest_checkpoint() {
    let mut log = Log::new("example.com/log", 7, 2);
    let ws = [serve_witness(1, &[&log], None).await, serve_witness(2, &[&log], None).await];
    let entries: Vec<(&str, String, String)> = ws
        .iter()
        .zip(["w1", "w2"])
        .map(|(s, n)| (n, s.cosigner.verifier().to_string(), s.url.clone()))
        .collect();
    let pol = policy(&log, &entries, "2");
    let interval = Duration::from_millis(250);
    let w = Witnessing::new(
        pol.clone(),
        &log.vkey(),
        WitnessingConfig { min_round_interval: interval, ..config() },
    )
    .unwrap();
    log.grow_to(200, "honest");
    let proofs = Arc::new(Proofs(Mutex::new(log.clone())));
    let _task = w.start(proofs.clone());
    // 198 checkpoints, one every 5 ms: about a second of commits.
    let start = std::time::Instant::now();
    for size in 3..=200 {
        offer(&w, &log, size);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let offered_for = start.elapsed();
    let got = w.wait_witnessed(200, Duration::from_secs(10)).await.expect("the newest is witnessed");
    assert_eq!(got.size, 200);
    pol.verify(got.note().as_bytes()).unwrap();
    let elapsed = start.elapsed();
    let rounds = w.rounds();
    // At most one round per interval over the whole time (plus the first, at once).
    let most = elapsed.as_millis() / interval.as_millis() + 1;
    assert!(rounds as u128 <= most, "{rounds} rounds in {elapsed:?} ({offered_for:?} of offers)");
    assert!(rounds >= 2, "{rounds} rounds: the checkpoints offered later got a round of their own");
    for st in w.status() {
        assert_eq!(st.requests, rounds, "one request per witness per round: {st:?}");
    }
    for s in ws {
        s.task.abort();
    }
}
