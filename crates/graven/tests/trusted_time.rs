//! Trusted time end to end (docs/trusted-time.md), with the real binary and a real TSA:
//! `openssl ts -reply` behind an HTTP handler on loopback, with a test PKI the test makes
//! (`graven_testkit::tsa`). The server stamps the latest checkpoint at most once per interval
//! under continuous ingest, stores and serves each token, keeps them across a restart;
//! `graven verify --tsa-cert` (URL, directory, remembered) passes, and fails for a tampered
//! token, a token of another checkpoint, a wrong root and an out-of-order time (against the
//! other tokens and against the trust store); bundles carry the token; a TSA that refuses,
//! hangs or is down never blocks ingest and shows in /metrics; a start without a usable TSA
//! configuration is refused. Without `openssl` these tests fail; they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, graven, start, stderr};
use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::note::VerifierKey;
use graven_testkit::tsa::{Answer, openssl_reply, pki, redated, serve};
use graven_tsa::{TsaRoots, TsaVerifier};

const INTERVAL_SECS: u64 = 1;

/// What the TSA handler does with a request.
const UP: u8 = 0;
/// Answers a TimeStampResp with status rejection (2).
const REFUSE: u8 = 1;
/// Holds the request longer than the client's 10-second timeout.
const HANG: u8 = 2;

/// A real TSA (the test PKI's RSA TSA, directly under the root) behind a handler that records
/// when each request arrived and can be told to refuse or hang.
struct Tsa {
    url: String,
    hits: Arc<Mutex<Vec<Instant>>>,
    mode: Arc<AtomicU8>,
}

impl Tsa {
    fn new(mode: u8) -> Tsa {
        let p = pki();
        let (dir, config) = (p.dir.clone(), p.rsa.config.clone());
        let hits = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(AtomicU8::new(mode));
        let (h, m) = (hits.clone(), mode.clone());
        let url = serve(move |query| {
            h.lock().unwrap().push(Instant::now());
            let reply =
                |body| Answer { status: 200, content_type: "application/timestamp-reply".into(), body };
            match m.load(Ordering::SeqCst) {
                UP => reply(openssl_reply(&dir, &config, query)),
                REFUSE => reply(vec![0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02]),
                _ => {
                    std::thread::sleep(Duration::from_secs(12));
                    reply(Vec::new())
                }
            }
        });
        Tsa { url, hits, mode }
    }

    fn hits(&self) -> Vec<Instant> {
        self.hits.lock().unwrap().clone()
    }
}

fn root_pem() -> PathBuf {
    pki().root.cert.clone()
}

fn verifier() -> TsaVerifier {
    TsaVerifier::new(TsaRoots::from_pem(&pki().root.pem()).unwrap())
}

fn start_stamped(data: &Path, tsa_url: &str, extra: &[&str]) -> Server {
    let root = root_pem();
    let interval = INTERVAL_SECS.to_string();
    let mut args = vec![
        "--tsa-url",
        tsa_url,
        "--tsa-cert",
        root.to_str().unwrap(),
        "--tsa-interval",
        &interval,
        "--max-batch-wait-ms",
        "1",
    ];
    args.extend_from_slice(extra);
    let s = start(data, &args);
    assert!(s.banner.iter().any(|l| l.starts_with("trusted time: ")), "{:?}", s.banner);
    s
}

/// A metric's value (the gauges may be -1).
fn metric(s: &Server, name: &str) -> i64 {
    let m = s.req("GET", "/metrics", None, None).body;
    m.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no metric {name} in\n{m}"))
        .trim()
        .parse()
        .unwrap()
}

fn post(s: &Server, action: &str) {
    let r = s.post_event(&s.token, &format!("{{\"action\":\"{action}\"}}"));
    assert_eq!(r.status, 201, "{}", r.body);
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stamped_sizes(s: &Server) -> Vec<u64> {
    let r = s.admin("GET", "/v1/timestamps", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["sizes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect()
}

/// Waits until the server has stamped its current checkpoint (the log is quiet).
fn wait_stamped(s: &Server) -> u64 {
    let mut size = 0;
    wait_until("the latest checkpoint to be stamped", 30, || {
        size = s.size();
        metric(s, "graven_tsa_stamped_size") == size as i64
    });
    size
}

fn name(size: u64) -> String {
    format!("{size:020}")
}

fn run_verify(args: &[&str], token: Option<&str>) -> Output {
    match token {
        Some(t) => common::graven_as(args, t),
        None => graven(args, b""),
    }
}

fn ok_text(out: &Output) -> String {
    assert!(out.status.success(), "graven failed:\n{}{}", String::from_utf8_lossy(&out.stdout), stderr(out));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failed(out: &Output, needle: &str) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a verification failure:\n{}{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    err
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// `genTime` in `YYYYMMDDhhmmssZ`, `ahead` from now.
fn gen_time_in(ahead: Duration) -> String {
    let t = time::OffsetDateTime::now_utc() + ahead;
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[test]
fn the_server_stamps_at_most_once_per_interval_and_verify_checks_every_token() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let tsa = Tsa::new(UP);
    let s = start_stamped(&data, &tsa.url, &[]);
    let vkey_text = s.vkey.clone();
    let vkey = VerifierKey::parse(&vkey_text).unwrap();

    // Continuous ingest for 4.5 intervals: every checkpoint is a candidate, one request per
    // interval at most.
    let began = Instant::now();
    let mut i = 0;
    while began.elapsed() < Duration::from_millis(4500) {
        post(&s, &format!("ingest.{i}"));
        i += 1;
    }
    let during = tsa.hits();
    assert!(i > 20, "ingest kept going: {i} events");
    assert!((3..=7).contains(&during.len()), "{} requests in 4.5 s with a 1 s interval", during.len());
    // Arrival times carry the scheduling jitter of a loaded machine (a request sent late
    // arrives closer to the next one), which does not add up: each gap is well over half the
    // interval (a server stamping every checkpoint would send them milliseconds apart), and the
    // gaps average the interval at least.
    for w in during.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap >= Duration::from_millis(600), "two requests {gap:?} apart, under the 1 s interval");
    }
    let span = *during.last().unwrap() - during[0];
    let average = span / (during.len() as u32 - 1);
    assert!(
        average >= Duration::from_millis(900),
        "requests {average:?} apart on average, under the 1 s interval"
    );

    // Quiet now: the last checkpoint is stamped at the next interval, then nothing more.
    let size = wait_stamped(&s);
    let hits = tsa.hits().len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(tsa.hits().len(), hits, "a stamped checkpoint is not stamped again");
    assert_eq!(metric(&s, "graven_tsa_requests_total"), hits as i64);
    assert_eq!(metric(&s, "graven_tsa_failures_total"), 0);
    assert!(metric(&s, "graven_tsa_stamped_time_seconds") > 1_700_000_000);

    // Every token is listed, served, and stamps the archived checkpoint of its size.
    let sizes = stamped_sizes(&s);
    assert_eq!(sizes.len(), hits, "one token stored per request: {sizes:?}");
    assert_eq!(sizes.last(), Some(&size));
    assert!(sizes.windows(2).all(|w| w[0] < w[1]));
    let mut last_time = None;
    for &n in &sizes {
        let token = s.admin("GET", &format!("/graven/timestamp/{}", name(n)), None);
        assert_eq!(token.status, 200);
        let note = s.admin("GET", &format!("/graven/checkpoint/{}", name(n)), None);
        assert_eq!(note.status, 200);
        let cp = VerifiedCheckpoint::open(note.body.as_bytes(), &vkey, vkey.name()).unwrap();
        assert_eq!(cp.size().0, n);
        let token_bytes = common::agent()
            .get(&s.url(&format!("/graven/timestamp/{}", name(n))))
            .header("Authorization", &format!("Bearer {}", s.token))
            .call()
            .unwrap()
            .body_mut()
            .read_to_vec()
            .unwrap();
        assert_eq!(token_bytes, std::fs::read(data.join("log/graven/timestamp").join(name(n))).unwrap());
        let v = verifier().verify(&token_bytes, note.body.as_bytes(), None).unwrap();
        assert!(last_time.is_none_or(|t| t <= v.gen_time()));
        last_time = Some(v.gen_time());
    }
    // Read-path access: no credential, no token (the read path is not public here).
    assert_eq!(s.req("GET", &format!("/graven/timestamp/{}", name(size)), None, None).status, 401);
    assert_eq!(s.req("GET", "/v1/timestamps", None, None).status, 401);
    // One name per file, and nothing past the committed tree.
    assert_eq!(s.admin("GET", &format!("/graven/timestamp/{size}"), None).status, 404);
    assert_eq!(s.admin("GET", &format!("/graven/timestamp/{}", name(size + 1)), None).status, 404);
    assert_eq!(s.admin("GET", "/v1/timestamps?limit=1001", None).status, 400);
    let page = s.admin("GET", &format!("/v1/timestamps?after={}&limit=1", sizes[0]), None).json();
    assert_eq!(page["sizes"], serde_json::json!([sizes[1]]));

    // graven verify over HTTP and on the directory: every token checked and reported.
    let root = root_pem();
    let root = root.to_str().unwrap();
    let url = format!("http://{}", s.addr);
    let out = ok_text(&run_verify(&["verify", &url, "--vkey", &s.vkey, "--tsa-cert", root], Some(&s.token)));
    assert!(out.contains(&format!("time-stamps: {} tokens verified", sizes.len())), "{out}");
    for n in &sizes {
        assert!(out.contains(&format!("size {n} stamped at ")), "{out}");
    }
    let dir = data.join("log");
    let out =
        ok_text(&run_verify(&["verify", dir.to_str().unwrap(), "--vkey", &s.vkey, "--tsa-cert", root], None));
    assert!(out.contains(&format!("time-stamps: {} tokens verified", sizes.len())), "{out}");
    let json =
        run_verify(&["verify", dir.to_str().unwrap(), "--vkey", &s.vkey, "--tsa-cert", root, "--json"], None);
    let j: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let checked: Vec<u64> = j["timestamps"]["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["tree_size"].as_u64().unwrap())
        .collect();
    assert_eq!(checked, sizes);

    // Remembered: the second run is incremental and holds new tokens to the remembered one.
    let trust = tmp.path().join("trust");
    let trust = trust.to_str().unwrap();
    let args = ["verify", &url, "--vkey", &vkey_text, "--tsa-cert", root, "--trust-dir", trust];
    ok_text(&run_verify(&args, Some(&s.token)));
    let stamp_file = std::fs::read_dir(trust)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "timestamp"))
        .expect("the trust store keeps the newest stamp");
    assert!(std::fs::read(&stamp_file).unwrap().starts_with(b"graven-trusted-time/1\n"));

    // An evidence bundle carries the token of its checkpoint, checked with --tsa-cert.
    let bundle = tmp.path().join("evidence.tar");
    let out = common::graven_as(
        &[
            "export",
            "--server",
            &url,
            "--vkey",
            &s.vkey,
            "--bundle",
            bundle.to_str().unwrap(),
            "--tsa-cert",
            root,
        ],
        &s.token,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 time-stamp token"), "{}", stderr(&out));
    let b = bundle.to_str().unwrap();
    let out = ok_text(&graven(&["verify", b, "--vkey", &s.vkey, "--tsa-cert", root], b""));
    assert!(out.contains(&format!("time-stamp: the checkpoint of size {size} existed at ")), "{out}");
    let out = ok_text(&graven(&["verify", b, "--vkey", &s.vkey], b""));
    assert!(out.contains("were NOT checked"), "{out}");
    let rogue = pki().rogue_root.cert.to_str().unwrap().to_owned();
    failed(
        &graven(&["verify", b, "--vkey", &s.vkey, "--tsa-cert", &rogue], b""),
        &format!("timestamps/{size}"),
    );

    // A restart keeps every token, and does not stamp the same checkpoint again.
    drop(s);
    let hits = tsa.hits().len();
    let s = start_stamped(&data, &tsa.url, &[]);
    assert_eq!(stamped_sizes(&s), sizes);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(tsa.hits().len(), hits, "the restarted server knows its checkpoint is stamped");
    assert_eq!(metric(&s, "graven_tsa_stamped_size"), size as i64);
    // New events: a new stamp, held to the last one; the remembered run checks only it.
    post(&s, "after.restart");
    let new_size = wait_stamped(&s);
    assert_eq!(stamped_sizes(&s), [sizes.clone(), vec![new_size]].concat());
    let url = format!("http://{}", s.addr);
    let args = ["verify", &url, "--vkey", &vkey_text, "--tsa-cert", root, "--trust-dir", trust];
    let out = ok_text(&run_verify(&args, Some(&s.token)));
    assert!(
        out.contains(&format!("time-stamps: 1 token verified after the remembered size {size}")),
        "{out}"
    );
    assert!(out.contains(&format!("size {new_size} stamped at ")), "{out}");
}

/// A log directory stamped by a real server: events in bursts a little over an interval apart,
/// so it has at least three tokens. Returns (data dir, verifier key, stamped sizes).
fn stamped_log(tmp: &Path, tsa: &Tsa) -> (PathBuf, String, Vec<u64>) {
    let data = tmp.join("data");
    let s = start_stamped(&data, &tsa.url, &[]);
    for burst in 0..3 {
        for i in 0..5 {
            post(&s, &format!("burst{burst}.{i}"));
        }
        wait_stamped(&s);
    }
    let sizes = stamped_sizes(&s);
    assert!(sizes.len() >= 3, "{sizes:?}");
    (data, s.vkey.clone(), sizes)
}

#[test]
fn verify_refuses_tampered_misplaced_wrongly_rooted_and_out_of_order_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let tsa = Tsa::new(UP);
    let (data, vkey, sizes) = stamped_log(tmp.path(), &tsa);
    let root = root_pem();
    let root = root.to_str().unwrap();
    let verify = |dir: &Path, roots: &str| {
        graven(&["verify", dir.to_str().unwrap(), "--vkey", &vkey, "--tsa-cert", roots], b"")
    };
    let log = data.join("log");
    let out = ok_text(&verify(&log, root));
    assert!(out.contains(&format!("time-stamps: {} tokens verified", sizes.len())), "{out}");
    // Each case on its own copy of the log.
    let case = |label: &str, f: &dyn Fn(&Path)| -> PathBuf {
        let dir = tmp.path().join(label);
        copy_dir(&log, &dir);
        f(&dir.join("graven/timestamp"));
        dir
    };
    let (s1, s2) = (sizes[0], sizes[1]);

    // A tampered token: one byte of the middle of the TSTInfo changed.
    let dir = case("tampered", &|t| {
        let p = t.join(name(s2));
        let mut b = std::fs::read(&p).unwrap();
        let at = b.len() / 3;
        b[at] ^= 0x01;
        std::fs::write(p, b).unwrap();
    });
    failed(
        &verify(&dir, root),
        &format!("time-stamp token graven/timestamp/{} for the checkpoint of size {s2} is refused", name(s2)),
    );

    // A genuine token of another checkpoint, put in this one's place.
    let dir = case("misplaced", &|t| std::fs::copy(t.join(name(s1)), t.join(name(s2))).map(|_| ()).unwrap());
    failed(&verify(&dir, root), "the token stamps other bytes");

    // The right tokens, checked against another root (same name, other key).
    let rogue = pki().rogue_root.cert.to_str().unwrap().to_owned();
    failed(&verify(&log, &rogue), "does not chain to a configured root");

    // Out of order on purpose: the TSA's own key signs the first checkpoint's TSTInfo again
    // with a time an hour ahead, so a later checkpoint carries an earlier time.
    let ahead = gen_time_in(Duration::from_secs(3600));
    let dir = case("out-of-order", &|t| {
        let p = t.join(name(s1));
        let token = redated(&pki().dir, &std::fs::read(&p).unwrap(), &pki().rsa.signer, &[], &ahead);
        // On its own, the re-dated token verifies: only the order is wrong.
        verifier()
            .verify(&token, &std::fs::read(t.join("..").join("checkpoint").join(name(s1))).unwrap(), None)
            .unwrap();
        std::fs::write(p, token).unwrap();
    });
    let err = failed(&verify(&dir, root), "a later checkpoint never carries an earlier time");
    assert!(err.contains(&format!("size {s2}")) && err.contains(&format!("size {s1}")), "{err}");
    let json = graven(&["verify", dir.to_str().unwrap(), "--vkey", &vkey, "--tsa-cert", root, "--json"], b"");
    let j: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(j["alert"], "timestamp");

    // Out of order against the trust store: a run remembers a copy whose newest token is an
    // hour ahead; the honest log then stamps a new checkpoint, now, and the next remembering
    // run refuses it although the log itself is in order.
    let last = *sizes.last().unwrap();
    let ahead_copy = case("ahead", &|t| {
        let p = t.join(name(last));
        let token = redated(&pki().dir, &std::fs::read(&p).unwrap(), &pki().rsa.signer, &[], &ahead);
        std::fs::write(p, token).unwrap();
    });
    let trust = tmp.path().join("trust");
    let remembering = |dir: &Path| {
        graven(
            &[
                "verify",
                dir.to_str().unwrap(),
                "--vkey",
                &vkey,
                "--tsa-cert",
                root,
                "--trust-dir",
                trust.to_str().unwrap(),
            ],
            b"",
        )
    };
    ok_text(&remembering(&ahead_copy));
    let s = start_stamped(&data, &tsa.url, &[]);
    post(&s, "later");
    let newer = wait_stamped(&s);
    drop(s);
    assert!(newer > last);
    ok_text(&verify(&log, root));
    let err = failed(&remembering(&log), "a later checkpoint never carries an earlier time");
    assert!(err.contains(&format!("size {newer}")) && err.contains(&format!("size {last}")), "{err}");

    // The server holds new tokens to the last one it stored: a log whose newest token is an
    // hour ahead gets no new token (each is refused and counted), and what is stored stays.
    let ahead_data = tmp.path().join("ahead-data");
    copy_dir(&data, &ahead_data);
    let _ = std::fs::remove_file(ahead_data.join("log").join(graven_tlog::LOCK_FILE));
    let newest = std::fs::read(ahead_copy.join("graven/timestamp").join(name(last))).unwrap();
    let stored = std::fs::read_dir(ahead_data.join("log/graven/timestamp")).unwrap().count();
    let kept = ahead_data.join("log/graven/timestamp").join(name(newer));
    std::fs::remove_file(&kept).unwrap();
    std::fs::remove_file(ahead_data.join("log/graven/checkpoint").join(name(newer))).unwrap();
    std::fs::write(ahead_data.join("log/graven/timestamp").join(name(last)), &newest).unwrap();
    let s = start_stamped(&ahead_data, &tsa.url, &[]);
    post(&s, "after.the.future");
    wait_until("a refused token", 20, || metric(&s, "graven_tsa_failures_total") >= 1);
    assert_eq!(metric(&s, "graven_tsa_stamped_size"), last as i64);
    assert!(!kept.exists());
    assert_eq!(std::fs::read_dir(ahead_data.join("log/graven/timestamp")).unwrap().count(), stored - 1);
    drop(s);

    // A token whose archived checkpoint is missing cannot be checked: refused, not skipped.
    let dir = case("no-checkpoint", &|t| {
        std::fs::remove_file(t.join("..").join("checkpoint").join(name(s1))).unwrap()
    });
    failed(&verify(&dir, root), "is missing: the token cannot be checked without it");
}

#[test]
fn a_tsa_that_refuses_hangs_or_is_down_never_blocks_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let tsa = Tsa::new(REFUSE);
    let s = start_stamped(&tmp.path().join("a"), &tsa.url, &[]);
    let timed_posts = |s: &Server, what: &str, for_ms: u64| -> (u32, Duration) {
        let began = Instant::now();
        let (mut n, mut slowest) = (0, Duration::ZERO);
        while began.elapsed() < Duration::from_millis(for_ms) {
            let t = Instant::now();
            post(s, &format!("{what}.{n}"));
            slowest = slowest.max(t.elapsed());
            n += 1;
        }
        (n, slowest)
    };
    // Refusing: every event is acknowledged, each failure counted, nothing stored.
    let (n, slowest) = timed_posts(&s, "refused", 2500);
    assert!(n > 10 && slowest < Duration::from_secs(2), "{n} events, slowest {slowest:?}");
    wait_until("two refusals", 10, || metric(&s, "graven_tsa_failures_total") >= 2);
    assert_eq!(metric(&s, "graven_tsa_stamped_size"), -1);
    assert!(stamped_sizes(&s).is_empty());
    // Hanging past the client's timeout: ingest goes on at its own pace meanwhile.
    tsa.mode.store(HANG, Ordering::SeqCst);
    let requests = metric(&s, "graven_tsa_requests_total");
    let (n, slowest) = timed_posts(&s, "hung", 4000);
    assert!(n > 10 && slowest < Duration::from_secs(2), "{n} events, slowest {slowest:?}");
    assert!(metric(&s, "graven_tsa_requests_total") <= requests + 1, "one request in flight at most");
    // The TSA answers again: the log catches up with one stamp of its latest checkpoint.
    tsa.mode.store(UP, Ordering::SeqCst);
    let size = wait_stamped(&s);
    assert_eq!(stamped_sizes(&s), [size]);
    drop(s);

    // Down: nothing listens at the TSA's address.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/tsa", l.local_addr().unwrap())
    };
    let s = start_stamped(&tmp.path().join("b"), &closed, &[]);
    let (n, slowest) = timed_posts(&s, "down", 2500);
    assert!(n > 10 && slowest < Duration::from_secs(2), "{n} events, slowest {slowest:?}");
    wait_until("a failure", 10, || metric(&s, "graven_tsa_failures_total") >= 1);
    assert_eq!(metric(&s, "graven_tsa_stamped_size"), -1);
}

#[test]
fn serve_refuses_to_start_without_a_usable_tsa() {
    let tmp = tempfile::tempdir().unwrap();
    let root = root_pem();
    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    let missing = tmp.path().join("missing.pem");
    for (i, (args, needle)) in [
        (vec!["--tsa-url", "http://127.0.0.1:9/tsa"], "needs tsa_cert"),
        (
            vec!["--tsa-url", "http://127.0.0.1:9/tsa", "--tsa-cert", missing.to_str().unwrap()],
            "missing.pem: cannot read it",
        ),
        (vec!["--tsa-url", "http://127.0.0.1:9/tsa", "--tsa-cert", garbage.to_str().unwrap()], "tsa_cert"),
        (
            vec!["--tsa-url", "ftp://127.0.0.1/tsa", "--tsa-cert", root.to_str().unwrap()],
            "is not an http:// or https:// URL",
        ),
        (vec!["--tsa-cert", root.to_str().unwrap()], "need tsa_url"),
        (
            vec![
                "--tsa-url",
                "http://127.0.0.1:9/tsa",
                "--tsa-cert",
                root.to_str().unwrap(),
                "--tsa-interval",
                "0",
            ],
            "tsa_interval",
        ),
        (
            vec![
                "--tsa-url",
                "http://127.0.0.1:9/tsa",
                "--tsa-cert",
                root.to_str().unwrap(),
                "--tsa-policy",
                "x.y",
            ],
            "tsa_policy",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let data = tmp.path().join(format!("data{i}"));
        let mut all = vec!["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"];
        all.extend(args);
        let out = graven(&all, b"");
        assert!(!out.status.success(), "{all:?} started");
        assert!(stderr(&out).contains(needle), "{all:?}: expected {needle:?} in {}", stderr(&out));
        assert!(!data.join("log").exists(), "{all:?}: a refused start created a log");
    }
}
