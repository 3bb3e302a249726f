//! Running `graven serve` as a service, with the real binary: SIGTERM while a live stream is
//! open and while a request is in flight (the drain deadline), `graven tail -f` across server
//! restarts, the request log on standard error, a port already in use, and SIGHUP reloads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent;
use graven_testkit::process::{Listening, spawn_listening};
use serde_json::Value;

/// The drain deadline `graven serve` has unless told otherwise (`drain_timeout_ms`).
const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// A `graven serve` child; its standard error is kept line by line (and echoed).
struct Node {
    proc: Listening,
    token: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn start(data: &Path, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_graven"));
        cmd.args(["serve", "--data", data.to_str().unwrap(), "--listen", listen])
            .args(extra)
            .envs(env.iter().copied())
            .stderr(Stdio::piped());
        let mut proc = spawn_listening(&mut cmd, Duration::from_secs(60));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = proc.child.stderr.take().unwrap();
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                eprintln!("[serve] {line}");
                lines.lock().unwrap().push(line);
            }
        });
        let token = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_owned();
        Node { proc, token, stderr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proc.addr)
    }

    /// Appends `n` events as the admin in one batch; returns their indices.
    fn append(&self, prefix: &str, n: usize) -> Vec<u64> {
        let body: String = (0..n).map(|i| format!("{{\"action\":\"{prefix}.{i}\"}}\n")).collect();
        let mut r = agent()
            .post(&self.url("/v1/events"))
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/x-ndjson")
            .send(body.as_bytes())
            .unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        assert_eq!(r.status().as_u16(), 201, "{text}");
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["index"].as_u64().unwrap()).collect()
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut req = agent().get(&self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut r = req.call().unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default())
    }

    fn size(&self) -> u64 {
        let (status, body) = self.get("/v1/log", Some(&self.token));
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["tree_size"].as_u64().unwrap()
    }

    /// Sends SIGTERM; returns how the process ended and how long it took, or kills it and
    /// fails the test if it is still alive after `within`.
    fn terminate(&mut self, within: Duration) -> (ExitStatus, Duration) {
        let pid = self.proc.child.id().to_string();
        let sent = Instant::now();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        match wait_exit(&mut self.proc.child, within) {
            Some(status) => (status, sent.elapsed()),
            None => {
                self.proc.kill();
                panic!("graven serve was still running {within:?} after SIGTERM");
            }
        }
    }

    fn logged(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    fn hangup(&self) {
        let pid = self.proc.child.id().to_string();
        assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    }

    /// Waits until a line of standard error holds every one of `needles`.
    fn wait_logged(&self, needles: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(l) = self.logged().into_iter().find(|l| needles.iter().all(|n| l.contains(n))) {
                return l;
            }
            assert!(Instant::now() < deadline, "never logged {needles:?}: {:#?}", self.logged());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A counter of `/metrics`.
    fn metric(&self, name: &str) -> u64 {
        let (_, m) = self.get("/metrics", None);
        m.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The events whose action is `action`, oldest first, once the index has `n` of them.
    fn events_with_action(&self, action: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self.get(&format!("/v1/events?action={action}"), Some(&self.token));
            assert_eq!(status, 200, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            let mut found: Vec<Value> = v["events"].as_array().unwrap().clone();
            if found.len() >= n {
                found.sort_by_key(|e| e["index"].as_u64());
                return found;
            }
            assert!(Instant::now() < deadline, "fewer than {n} {action} events: {body}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `/v1/stream` client on a raw connection: every byte it received, and whether the
/// server closed the connection.
struct Sse {
    seen: Arc<Mutex<String>>,
    closed: Arc<AtomicBool>,
}

impl Sse {
    fn open(addr: &str, token: &str, query: &str) -> Sse {
        let mut conn = TcpStream::connect(addr).unwrap();
        write!(
            conn,
            "GET /v1/stream{query} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let (seen, closed) = (Arc::new(Mutex::new(String::new())), Arc::new(AtomicBool::new(false)));
        let (s, c) = (seen.clone(), closed.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
            c.store(true, Ordering::SeqCst);
        });
        Sse { seen, closed }
    }

    fn wait_for(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.seen.lock().unwrap().contains(needle) {
            assert!(Instant::now() < deadline, "{needle:?} never arrived: {}", self.seen.lock().unwrap());
            assert!(!self.closed.load(Ordering::SeqCst), "closed before {needle:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// SIGTERM with a live `/v1/stream` client connected: the stream is ended at once, the
/// process exits well within the drain deadline (Kubernetes waits 30 s before SIGKILL), and
/// every acknowledged event is there after a restart.
#[test]
fn sigterm_with_a_stream_open_exits_within_the_drain_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut node = Node::start(&data, "127.0.0.1:0", &[], &[]);
    let sse = Sse::open(&node.proc.addr, &node.token, "?from=0");
    let acked = node.append("drain", 50);
    let last = *acked.last().unwrap();
    // The stream has delivered everything and now waits for more.
    sse.wait_for(&format!("id: {last}\n"), Duration::from_secs(20));

    let (status, took) = node.terminate(Duration::from_secs(30));
    eprintln!("measured: graven serve exited {took:?} after SIGTERM with a /v1/stream client connected");
    assert!(status.success(), "a clean stop exits 0, got {status}");
    assert!(took < DEFAULT_DRAIN, "exited after {took:?}, past the {DEFAULT_DRAIN:?} drain deadline");
    // The server ended the response cleanly (the last chunk) before closing the connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sse.closed.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the stream's connection is still open");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(sse.seen.lock().unwrap().ends_with("0\r\n\r\n"), "the stream was cut, not ended");

    let node = Node::start(&data, "127.0.0.1:0", &[], &[]);
    assert!(node.size() > last);
    for (n, i) in acked.iter().enumerate() {
        let (status, body) = node.get(&format!("/v1/events/{i}"), Some(&node.token));
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["event"]["action"], format!("drain.{n}"));
    }
}

/// A request still in flight when SIGTERM arrives (here a body that stops half-way) gets until
/// the drain deadline (`--drain-timeout-ms`), and not longer: then the process stops.
#[test]
fn a_request_in_flight_gets_until_the_drain_deadline() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let deadline = Duration::from_millis(1500);
    let mut node = Node::start(&data, "127.0.0.1:0", &["--drain-timeout-ms", "1500"], &[]);
    let mut conn = TcpStream::connect(&node.proc.addr).unwrap();
    write!(
        conn,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"action\":",
        node.token
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (status, took) = node.terminate(Duration::from_secs(30));
    eprintln!(
        "measured: graven serve exited {took:?} after SIGTERM with a request in flight (deadline {deadline:?})"
    );
    assert!(status.success(), "{status}");
    assert!(took >= deadline - Duration::from_millis(100), "the request in flight was not given its time");
    assert!(took < deadline + Duration::from_secs(5), "exited {took:?} after SIGTERM");
    // The drain deadline is also read from the environment and the config file, and checked.
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("GRAVEN_DRAIN_TIMEOUT_MS", "9999999")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("drain_timeout_ms") && err.contains("9999999"), "{err}");
}

/// `graven tail -f` keeps following across a clean restart (SIGTERM) and a crash (SIGKILL) of
/// the server on the same address: it reconnects with back-off and resumes after the last index
/// it printed, so the indices it prints run on with no duplicate and no gap.
#[test]
fn tail_follows_across_server_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = graven_testkit::net::free_ports(1, None).unwrap()[0];
    let listen = format!("127.0.0.1:{port}");
    let mut node = Node::start(&data, &listen, &[], &[]);
    node.append("before", 10);

    let mut tail = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["tail", "-f", "--json", "--from", "0", "--server", &format!("http://{listen}")])
        .env("GRAVEN_TOKEN", &node.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let printed = Arc::new(Mutex::new(Vec::<u64>::new()));
    {
        let (out, printed) = (tail.stdout.take().unwrap(), printed.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                printed.lock().unwrap().push(v["index"].as_u64().unwrap());
            }
        });
    }
    let said = Arc::new(Mutex::new(String::new()));
    {
        let (mut err, said) = (tail.stderr.take().unwrap(), said.clone());
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            *said.lock().unwrap() = s;
        });
    }
    let printed_up_to = |size: u64, tail: &mut Child| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while printed.lock().unwrap().last().is_none_or(|&i| i + 1 < size) {
            if let Some(status) = tail.try_wait().unwrap() {
                panic!("graven tail -f exited ({status}); it printed {:?}", printed.lock().unwrap());
            }
            assert!(Instant::now() < deadline, "tail printed only {:?} of {size}", printed.lock().unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    printed_up_to(node.size(), &mut tail);

    // A clean restart: the stream is ended, the server is away for a moment.
    let (status, _) = node.terminate(Duration::from_secs(30));
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(700));
    let mut node = Node::start(&data, &listen, &[], &[]);
    node.append("after-restart", 10);
    printed_up_to(node.size(), &mut tail);

    // A crash: the connection is reset, nothing ends the stream.
    node.proc.kill();
    let node = Node::start(&data, &listen, &[], &[]);
    node.append("after-crash", 10);
    let size = node.size();
    printed_up_to(size, &mut tail);

    let _ = tail.kill();
    let _ = tail.wait();
    let got = printed.lock().unwrap().clone();
    assert_eq!(got, (0..size).collect::<Vec<_>>(), "indices printed, in order");
    std::thread::sleep(Duration::from_millis(100));
    let said = said.lock().unwrap().clone();
    eprintln!("graven tail -f said:\n{said}");
    assert!(said.contains("reconnect"), "tail said nothing about reconnecting: {said}");
    common::assert_terminal_safe("tail's messages", said.as_bytes());
}

/// One line per request on standard error (JSON with `--log-format json`, text by default):
/// method, route template (never the raw path), status, the identity when authenticated and
/// the latency; a storage error a request met is logged with it, and a witness that fails too.
/// No credential ever appears.
#[test]
fn requests_are_logged_one_line_each_without_secrets() {
    use graven_core::note::SignerKey;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // A log key made here, so a witness policy can name the log before its first start; the
    // one witness is never there.
    let key = SignerKey::from_seed("logs.example/log", [7; 32]).unwrap();
    std::fs::write(data.join("log.key"), key.to_secret_string()).unwrap();
    let w = graven_core::cosignature::Cosigner::from_seed("w1.example", [1; 32]).unwrap();
    let policy = tmp.path().join("witnesses.policy");
    let witness_url = graven_testkit::net::dead_url();
    std::fs::write(
        &policy,
        format!("log {}\nwitness w1 {} {witness_url}\nquorum w1\n", key.verifier(), w.verifier()),
    )
    .unwrap();
    let flags = ["--log-format", "json", "--witness-policy", policy.to_str().unwrap()];
    let mut node = Node::start(&data, "127.0.0.1:0", &flags, &[]);
    let admin = node.token.clone();
    let forged = "gvn_0123456789abcdef_notarealsecretnotarealsecret00";

    node.append("logged", 2);
    assert_eq!(node.get("/v1/events/0", Some(&admin)).0, 200);
    assert_eq!(node.get("/v1/events/1", Some(forged)).0, 401);
    assert_eq!(node.get("/v1/identities/svc%3Anobody", Some(&admin)).0, 404);
    assert_eq!(node.get("/no/such/%1b%5b31mroute", None).0, 404);
    assert_eq!(node.get("/healthz", None).0, 200);
    // A storage error: the bundle that holds the newest entries is gone from the disk.
    let size = node.size();
    let bundle = data.join(format!("log/tile/entries/000.p/{size}"));
    let saved = tmp.path().join("bundle");
    std::fs::rename(&bundle, &saved).unwrap_or_else(|e| panic!("{}: {e}", bundle.display()));
    assert_eq!(node.get(&format!("/v1/events/{}", size - 1), Some(&admin)).0, 500);
    std::fs::rename(&saved, &bundle).unwrap();

    let requests = |node: &Node, n: usize| -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got: Vec<Value> = node
                .logged()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["message"] == "request")
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{} request lines: {:#?}", got.len(), node.logged());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let lines = requests(&node, 8);
    let find = |route: &str, status: u64| {
        lines
            .iter()
            .find(|v| v["route"] == route && v["status"] == status)
            .unwrap_or_else(|| panic!("no line for {route} {status}: {lines:#?}"))
    };
    let post = find("/v1/events", 201);
    assert_eq!((post["method"].as_str(), post["identity"].as_str()), (Some("POST"), Some("admin")));
    assert!(post["latency_ms"].as_f64().unwrap() >= 0.0, "{post}");
    assert!(post["timestamp"].is_string() && post["level"] == "INFO", "{post}");
    assert_eq!(find("/v1/events/{index}", 200)["identity"], "admin");
    let refused = find("/v1/events/{index}", 401);
    assert!(refused.get("identity").is_none(), "an unauthenticated request names no identity: {refused}");
    assert_eq!(find("/v1/identities/{id}", 404)["identity"], "admin");
    assert!(find("/healthz", 200).get("identity").is_none());
    // A path that matches no route is logged as such, never as sent.
    find("-", 404);
    let failed = find("/v1/events/{index}", 500);
    assert_eq!(failed["level"], "ERROR", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("tile/entries/000"),
        "the storage error is named: {failed}"
    );
    // The witness that is not there: its failure is logged, naming it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !node.logged().iter().any(|l| l.contains("\"witness\":\"w1\"") && l.contains("\"error\"")) {
        assert!(Instant::now() < deadline, "no witness error logged: {:#?}", node.logged());
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = node.terminate(Duration::from_secs(30));
    let all = node.logged().join("\n");
    for secret in [admin.as_str(), forged, "notarealsecret", &key.to_secret_string(), "Bearer"] {
        assert!(!all.contains(secret), "the log shows {secret:?}:\n{all}");
    }
    for l in node.logged() {
        common::assert_terminal_safe("a log line", l.as_bytes());
        assert!(l.trim_start().starts_with('{'), "not JSON: {l}");
        assert!(!l.contains("%1b") && !l.contains("31mroute"), "a raw path was logged: {l}");
    }

    // Text, the default, chosen here through the environment.
    let node = Node::start(&data, "127.0.0.1:0", &[], &[("GRAVEN_LOG_FORMAT", "text")]);
    assert_eq!(node.get("/v1/events/1", Some(&node.token)).0, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        if let Some(l) = node.logged().into_iter().find(|l| l.contains("route=/v1/events/{index}")) {
            break l;
        }
        assert!(Instant::now() < deadline, "no text line: {:#?}", node.logged());
        std::thread::sleep(Duration::from_millis(20));
    };
    for field in [" INFO ", "request", "method=GET", "status=200", "identity=admin", "latency_ms="] {
        assert!(line.contains(field), "{field:?} missing: {line}");
    }
    assert!(!line.contains(&node.token));
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0", "--log-format", "xml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("xml") && err.contains("json") && err.contains("text"), "{err}");
}

/// A port already in use: one clear message, a non-zero exit, and nothing created (no key, no
/// admin token, no log), since the port is taken before anything else is done.
#[test]
fn a_port_in_use_is_reported_once_before_anything_is_created() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["serve", "--data", data.to_str().unwrap(), "--listen", &addr.to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("graven serve said: {err}");
    assert!(!out.status.success(), "exit {:?}", out.status);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert_eq!(err.matches("already in use").count(), 1, "said once: {err}");
    assert!(err.contains(&addr.to_string()) && err.contains("--listen"), "says which and what to do: {err}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let left: Vec<PathBuf> = match std::fs::read_dir(&data) {
        Ok(d) => d.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    assert!(left.is_empty(), "the data directory holds {left:?}");
    drop(taken);
}

/// SIGHUP reloads the config file while a live stream stays connected: a reloadable change is
/// recorded in the log (with the file's SHA-256) and then in force; a file that does not
/// resolve is refused with its cause and changes nothing; a changed setting that needs a
/// restart is named and not applied; new `[denied_records]` limits hold from the next refusal.
#[test]
fn sighup_reloads_the_config_without_dropping_a_connection() {
    use sha2::Digest;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let conf = data.join("graven.toml");
    std::fs::write(&conf, "public_read_path = false\n").unwrap();
    let node = Node::start(&data, "127.0.0.1:0", &[], &[]);
    assert_eq!(node.get("/checkpoint", None).0, 401);
    let sse = Sse::open(&node.proc.addr, &node.token, "?from=0");

    // A reloadable key: the public read path opens, and the log says so first.
    let text = "# opened for the witnesses\npublic_read_path = true\n";
    std::fs::write(&conf, text).unwrap();
    node.hangup();
    wait_until("the public read path", Duration::from_secs(20), || node.get("/checkpoint", None).0 == 200);
    node.wait_logged(&["SIGHUP: configuration reloaded", "public_read_path"], Duration::from_secs(5));
    let reloads = node.events_with_action("graven.config.reload", 1);
    let e = &reloads[0]["event"];
    assert_eq!(e["actor"]["id"], "graven:server", "{e}");
    assert_eq!(e["details"]["changed"], serde_json::json!(["public_read_path"]), "{e}");
    let sha: String = sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(e["details"]["config_sha256"], sha, "{e}");
    assert_eq!(e["details"]["config_file"], conf.display().to_string(), "{e}");

    // Refusals recorded under the default limits (10 at once per address).
    let key = "gvn_000000000000000000000000.nottherightsecretnottherightsecret00";
    let denied = |n: usize| {
        for _ in 0..n {
            assert_eq!(node.get("/v1/identities", Some(key)).0, 401);
        }
    };
    let before = node.metric("graven_denied_records_total");
    denied(3);
    wait_until("3 denied records", Duration::from_secs(10), || {
        node.metric("graven_denied_records_total") == before + 3
    });

    // A file that does not resolve: refused, with its cause; nothing changes.
    std::fs::write(&conf, "public_read_path = \"yes\"\n").unwrap();
    node.hangup();
    let refused = node.wait_logged(&["reload refused"], Duration::from_secs(20));
    assert!(refused.contains("public_read_path") && refused.contains("unchanged"), "{refused}");
    std::fs::write(&conf, "public_read_path = true\n[denied_records]\nper_source_burst = 0.5\n").unwrap();
    node.hangup();
    let refused = node.wait_logged(&["reload refused", "per_source_burst"], Duration::from_secs(20));
    assert!(refused.contains("from 1 to 100000"), "{refused}");
    assert_eq!(node.get("/checkpoint", None).0, 200, "a refused reload changed the configuration");

    // Reloadable and restart-only keys at once: the first apply, the second waits.
    std::fs::write(
        &conf,
        "public_read_path = false\nmax_connections = 10\n[denied_records]\nper_source_burst = 1\nper_source_rate = 0.001\n",
    )
    .unwrap();
    node.hangup();
    wait_until("the public read path to close", Duration::from_secs(20), || {
        node.get("/checkpoint", None).0 == 401
    });
    let restart = node.wait_logged(&["take effect only after a restart"], Duration::from_secs(5));
    assert!(restart.contains("max_connections") && !restart.contains("denied_records"), "{restart}");
    let reloads = node.events_with_action("graven.config.reload", 2);
    assert_eq!(reloads.len(), 2, "a refused reload is not recorded: {reloads:?}");
    let e = &reloads[1]["event"];
    assert_eq!(e["details"]["changed"], serde_json::json!(["denied_records", "public_read_path"]), "{e}");
    assert_eq!(e["details"]["restart_needed"], serde_json::json!(["max_connections"]), "{e}");
    // One record per address at once now: of five refusals, one is recorded, four dropped.
    let (recorded, dropped) =
        (node.metric("graven_denied_records_total"), node.metric("graven_denied_records_dropped_total"));
    denied(5);
    wait_until("the new limits", Duration::from_secs(10), || {
        node.metric("graven_denied_records_dropped_total") == dropped + 4
    });
    assert_eq!(node.metric("graven_denied_records_total"), recorded + 1);

    // The stream was never dropped: it still delivers what is appended now.
    let last = *node.append("after-reload", 3).last().unwrap();
    sse.wait_for(&format!("id: {last}\n"), Duration::from_secs(20));
    assert!(!sse.closed.load(Ordering::SeqCst));
}
