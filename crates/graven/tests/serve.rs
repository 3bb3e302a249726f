//! `graven serve` end to end: the real binary on a free loopback port, on a local disk and on
//! S3. What needs a real process stays here: the API served end to end (a smoke test; the API's
//! behaviour in detail is tested in process, `crates/graven-server/tests/api/`), kill -9 and
//! SIGTERM, and the CLI's `reindex`, `verify` and `prove` against a live server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, agent, start, start_env};
use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::note::VerifierKey;
use graven_core::{Hash, LeafIndex, merkle};
use graven_testkit::fs::copy_dir;
use serde_json::Value;

struct Resp {
    status: u16,
    ctype: String,
    body: String,
}

impl Server {
    fn post(&self, ctype: &str, body: &[u8], token: Option<&str>) -> Resp {
        let mut req = agent().post(&self.url("/v1/events")).header("Content-Type", ctype);
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut r = req.send(body).unwrap();
        into_resp(&mut r)
    }

    /// A GET with the bootstrap admin key (reads need the auditor or admin role).
    fn get(&self, path: &str) -> Resp {
        self.get_as(path, Some(&self.token))
    }

    fn get_as(&self, path: &str, token: Option<&str>) -> Resp {
        let mut req = agent().get(&self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut r = req.call().unwrap();
        into_resp(&mut r)
    }
}

fn into_resp(r: &mut ureq::http::Response<ureq::Body>) -> Resp {
    let status = r.status().as_u16();
    let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let ctype = h("content-type").unwrap_or_default();
    let body = String::from_utf8_lossy(&r.body_mut().read_to_vec().unwrap()).into_owned();
    Resp { status, ctype, body }
}

/// Checks a receipt offline: the checkpoint it carries opens with the log key, and the
/// inclusion proof takes its leaf hash to that checkpoint's root.
fn check_receipt(vkey: &str, r: &Value) -> (u64, Hash) {
    let vkey = VerifierKey::parse(vkey).unwrap();
    let cp =
        VerifiedCheckpoint::open(r["checkpoint"].as_str().unwrap().as_bytes(), &vkey, vkey.name()).unwrap();
    assert_eq!(cp.size().0, r["tree_size"].as_u64().unwrap());
    let index = r["index"].as_u64().unwrap();
    let leaf = Hash::from_base64(r["leaf_hash"].as_str().unwrap()).unwrap();
    let proof: Vec<[u8; 32]> = r["inclusion_proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Hash::from_base64(p.as_str().unwrap()).unwrap().0)
        .collect();
    merkle::verify_inclusion(&leaf, LeafIndex(index), cp.size(), &proof, &cp.root()).unwrap();
    (index, leaf)
}

/// A first-use, full verification (a fresh, empty trust store each time).
fn verify(target: &str, vkey: &str) -> Value {
    verify_with(target, vkey, "")
}

/// [`verify`] over HTTP with the server's admin key (the read path is not public by default).
fn verify_url(s: &Server, vkey: &str) -> Value {
    verify_with(&s.url("/"), vkey, &s.token)
}

fn verify_with(target: &str, vkey: &str, token: &str) -> Value {
    verify_env(target, vkey, token, &[])
}

fn verify_env(target: &str, vkey: &str, token: &str, env: &[(&str, String)]) -> Value {
    let trust = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["verify", target, "--vkey", vkey, "--json"])
        .env("GRAVEN_TRUST_DIR", trust.path())
        .env("GRAVEN_TOKEN", token)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(out.status.success(), "verify {target}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Where a test server keeps its log: the local disk (`<data>/log`), or a bucket with Object
/// Lock on the shared SeaweedFS (`--storage s3://...`, with a signer key made for it). The
/// storage conformance tests below run on both.
enum Backend {
    Local,
    S3 { cfg: Box<graven_s3::S3Config>, key: std::path::PathBuf, pipelined: bool, _tmp: tempfile::TempDir },
}

impl Backend {
    fn s3(hint: &str) -> Self {
        let mut cfg = graven_testkit::s3::Seaweed::shared().bucket(hint, true);
        cfg.prefix = "audit/log".into();
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("signer.key");
        common::keygen(&key, "localhost/graven");
        Backend::S3 { cfg: Box::new(cfg), key, pipelined: false, _tmp: tmp }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Backend::Local => Vec::new(),
            // The test bucket has no default retention: the environment chooses one.
            Backend::S3 { cfg, .. } => graven_testkit::s3::env(cfg),
        }
    }

    /// Starts a server with its data directory at `data`, and waits until it takes writes.
    fn start(&self, data: &Path) -> Server {
        let Backend::S3 { cfg, key, pipelined, _tmp } = self else { return start(data, &[]) };
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let config = _tmp.path().join("pipelined.toml");
        std::fs::write(&config, format!("pipeline_commits = {pipelined}\n")).unwrap();
        let s = start_env(
            data,
            &["--storage", &cfg.url(), "--key", key.to_str().unwrap(), "--config", config.to_str().unwrap()],
            &env,
        );
        // A restarted node waits for the lease its killed predecessor held to expire.
        let deadline = Instant::now() + Duration::from_secs(15);
        while s.metric("graven_writer") != 1 {
            assert!(Instant::now() < deadline, "the node did not become the writer");
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// `graven verify` of the stored log itself (the directory, or the bucket through S3).
    fn verify_stored(&self, s: &Server) -> Value {
        match self {
            Backend::Local => verify(s.data.join("log").to_str().unwrap(), &s.vkey),
            Backend::S3 { cfg, .. } => verify_env(&cfg.url(), &s.vkey, "", &self.env()),
        }
    }
}

/// The bytes of event `index` as stored, and its leaf hash.
fn stored_event(s: &Server, index: u64) -> (String, Hash) {
    let r = s.get(&format!("/v1/events/{index}"));
    assert_eq!(r.status, 200, "{}", r.body);
    #[derive(serde::Deserialize)]
    struct Stored<'a> {
        #[serde(borrow)]
        event: &'a serde_json::value::RawValue,
        leaf_hash: String,
    }
    let v: Stored = serde_json::from_str(&r.body).unwrap();
    let bytes = v.event.get().to_owned();
    let leaf = graven_core::leaf_hash(bytes.as_bytes());
    assert_eq!(leaf.to_base64(), v.leaf_hash);
    (bytes, leaf)
}

#[test]
fn end_to_end() {
    end_to_end_on(&Backend::Local);
}

#[test]
fn end_to_end_on_s3() {
    end_to_end_on(&Backend::s3("e2e"));
}

fn end_to_end_on(backend: &Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let s = backend.start(&tmp.path().join("data"));
    // The log starts with the server's own records of its bootstrap admin.
    let b0 = s.size();
    assert_eq!(b0, 2);

    // A live tail, connected before anything is appended.
    let mut sse = TcpStream::connect(&s.addr).unwrap();
    sse.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        sse,
        "GET /v1/stream?from=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
        s.token
    )
    .unwrap();

    let single = s.post(
        "application/json",
        br#"{"action":"deployment.create","resource":{"type":"k8s.deployment","id":"prod/payments"},"outcome":"success","actor":{"id":"root","kind":"human"},"details":{"replicas":3}}"#,
        Some(&s.token),
    );
    assert_eq!(single.status, 201, "{}", single.body);
    let receipt: Value = serde_json::from_str(&single.body).unwrap();
    let (i0, leaf0) = check_receipt(&s.vkey, &receipt);
    assert_eq!(i0, b0);

    let batch: String = (0..50)
        .map(|i| {
            format!("{{\"action\":\"secret.read\",\"resource\":{{\"type\":\"vault\",\"id\":\"kv/{i}\"}}}}\n")
        })
        .collect();
    let b = s.post("application/x-ndjson", batch.as_bytes(), Some(&s.token));
    assert_eq!(b.status, 201, "{}", b.body);
    assert!(b.ctype.starts_with("application/x-ndjson"));
    let receipts: Vec<Value> = b.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(receipts.len(), 50);
    for (k, r) in receipts.iter().enumerate() {
        let (i, leaf) = check_receipt(&s.vkey, r);
        assert_eq!(i, b0 + 1 + k as u64, "receipts come back in line order");
        assert_eq!(stored_event(&s, i).1, leaf);
    }

    // The stored event: attributed to the verified credential, the client's claim kept apart.
    let (text, leaf) = stored_event(&s, b0);
    assert_eq!(leaf, leaf0);
    let ev: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ev["actor"]["id"], "admin");
    assert_eq!(ev["actor"]["auth"], "api_key");
    assert_eq!(ev["claimed"]["actor"]["id"], "root");
    assert_eq!(ev["v"], 1);
    assert_eq!(ev["logged_at"], receipt["logged_at"]);
    assert_eq!(
        graven_core::jcs::canonicalize(text.as_bytes()).unwrap(),
        text.as_bytes(),
        "stored canonically"
    );

    // Proof endpoints agree with the checkpoint.
    let p: Value = serde_json::from_str(&s.get("/v1/proofs/inclusion?index=7").body).unwrap();
    assert_eq!(p["tree_size"], b0 + 51);
    let c: Value =
        serde_json::from_str(&s.get(&format!("/v1/proofs/consistency?from=1&to={}", b0 + 51)).body).unwrap();
    let proof: Vec<[u8; 32]> = c["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| Hash::from_base64(x.as_str().unwrap()).unwrap().0)
        .collect();
    merkle::verify_consistency(
        graven_core::TreeSize(1),
        graven_core::TreeSize(b0 + 51),
        &Hash::from_base64(c["root_from"].as_str().unwrap()).unwrap(),
        &Hash::from_base64(c["root_to"].as_str().unwrap()).unwrap(),
        &proof,
    )
    .unwrap();

    // Search: by actor, action and time range, paged with a cursor. The index follows the log.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value = serde_json::from_str(&s.get("/v1/events?limit=1").body).unwrap();
        if v["indexed_size"] == b0 + 51 {
            break;
        }
        assert!(Instant::now() < deadline, "the index never caught up: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let page: Value =
        serde_json::from_str(&s.get("/v1/events?action=secret.read&limit=20&order=oldest").body).unwrap();
    let got: Vec<u64> =
        page["events"].as_array().unwrap().iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(got, (b0 + 1..b0 + 21).collect::<Vec<u64>>());
    let cursor = page["next_cursor"].as_str().unwrap();
    let page2: Value = serde_json::from_str(
        &s.get(&format!("/v1/events?action=secret.read&limit=20&order=oldest&cursor={cursor}")).body,
    )
    .unwrap();
    assert_eq!(page2["events"][0]["index"], b0 + 21);
    let by_actor: Value = serde_json::from_str(&s.get("/v1/events?actor=admin&limit=1000").body).unwrap();
    assert_eq!(by_actor["events"].as_array().unwrap().len(), 51);
    assert_eq!(by_actor["events"][0]["index"], b0 + 50, "newest first by default");
    let nobody: Value = serde_json::from_str(&s.get("/v1/events?actor=svc:nobody").body).unwrap();
    assert!(nobody["events"].as_array().unwrap().is_empty());
    let t0 = receipt["logged_at"].as_str().unwrap();
    let t1 = receipts[0]["logged_at"].as_str().unwrap();
    assert!(t1 > t0, "separate commits get increasing logged_at ({t0}, {t1})");
    let window: Value =
        serde_json::from_str(&s.get(&format!("/v1/events?since={t0}&until={t1}")).body).unwrap();
    let got: Vec<u64> =
        window["events"].as_array().unwrap().iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(got, vec![b0], "until is exclusive");
    assert_eq!(s.get("/v1/events?cursor=garbage").status, 400);
    assert_eq!(s.get("/v1/events?since=yesterday").status, 400);

    // The tile read path verifies, over HTTP and on disk.
    assert_eq!(verify_url(&s, &s.vkey)["tree_size"], b0 + 51);
    assert_eq!(backend.verify_stored(&s)["tree_size"], b0 + 51);
    let full = s.get(&format!("/tile/entries/000.p/{}", b0 + 51));
    assert_eq!(full.status, 200);
    assert_eq!(
        s.get(&format!("/tile/entries/000.p/{}", b0 + 52)).status,
        404,
        "beyond the checkpoint is never served"
    );
    assert_eq!(s.get("/tile/0/../../admin.token").status, 404);

    // The tail delivered the events appended after it connected.
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains(&format!("\"index\":{},", b0 + 50)) {
        let n = sse.read(&mut buf).expect("the SSE tail stalled");
        assert!(n > 0, "SSE stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"));
    assert!(seen.contains("id: 0\n") && seen.contains("deployment.create"));

    // Health, readiness, metrics, OpenAPI.
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/readyz").status, 200);
    let m = s.get("/metrics").body;
    assert!(m.contains(&format!("graven_events_committed_total {}", b0 + 51)), "{m}");
    assert!(m.contains("graven_commit_seconds_bucket"));
    // Search saw all of them above, so the index has caught up.
    assert!(
        m.contains(&format!("graven_index_size {}\n", b0 + 51)) && m.contains("graven_index_lag_events 0\n"),
        "{m}"
    );
    let api: Value = serde_json::from_str(&s.get("/openapi.json").body).unwrap();
    assert!(api["paths"]["/v1/events"]["post"].is_object());

    // The accept loop tells each request its client's address: a refusal's record names it.
    let before = s.size();
    let bad = format!("gvn_{}_{}", "0123456789abcdef", "A".repeat(43));
    assert_eq!(s.get_as("/v1/log", Some(&bad)).status, 401);
    let (denied, _) = stored_event(&s, before);
    let denied: Value = serde_json::from_str(&denied).unwrap();
    assert_eq!(
        (&denied["action"], &denied["source"]["ip"]),
        (&"graven.access.denied".into(), &"127.0.0.1".into())
    );
}

/// SIGKILL the server under concurrent writers, restart it, and check every acknowledged
/// event. `GRAVEN_CRASH_CYCLES` sets the number of cycles (CI: 50; try 1000 by hand).
#[test]
fn kill_9_under_load_loses_no_acknowledged_event() {
    let cycles: usize = std::env::var("GRAVEN_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    kill_9_cycles(&Backend::Local, cycles);
}

/// The same on S3. Each restart waits out the killed process's writer lease (5 s), so fewer
/// cycles; the failover test (tests/failover.rs) kills the writer 20 more times, with a standby.
#[test]
fn kill_9_under_load_loses_no_acknowledged_event_on_s3() {
    kill_9_cycles(&Backend::s3("kill9"), 6);
}

/// The same on S3 with pipelined commits (`pipeline_commits = true`, off by default there).
#[test]
fn kill_9_under_load_loses_no_acknowledged_event_on_s3_pipelined() {
    let mut backend = Backend::s3("kill9-pipelined");
    if let Backend::S3 { pipelined, .. } = &mut backend {
        *pipelined = true;
    }
    kill_9_cycles(&backend, 6);
}

fn kill_9_cycles(backend: &Backend, cycles: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut acked: Vec<(u64, Hash)> = Vec::new();
    let mut last_size = 0u64;
    let mut seed = 0x9E3779B97F4A7C15u64;
    for cycle in 0..cycles {
        let s = backend.start(&data);
        // Everything acknowledged before is still there, byte for byte; the log never shrank.
        let size = s.size();
        assert!(size >= last_size, "cycle {cycle}: the checkpoint went back from {last_size} to {size}");
        for &(i, leaf) in acked.iter().rev().take(200) {
            assert!(i < size, "cycle {cycle}: acknowledged event {i} missing (size {size})");
            assert_eq!(stored_event(&s, i).1, leaf, "cycle {cycle}: event {i} changed");
        }
        if cycle % 10 == 0 {
            backend.verify_stored(&s);
        }
        last_size = size;

        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..4 {
            let (addr, token, vkey, stop) = (s.addr.clone(), s.token.clone(), s.vkey.clone(), stop.clone());
            writers.push(std::thread::spawn(move || {
                let mut mine = Vec::new();
                let agent = agent();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    n += 1;
                    let body: String =
                        (0..1 + (n % 5)).map(|k| format!("{{\"action\":\"w{w}.{n}.{k}\"}}\n")).collect();
                    let r = agent
                        .post(&format!("http://{addr}/v1/events"))
                        .header("Authorization", &format!("Bearer {token}"))
                        .header("Content-Type", "application/x-ndjson")
                        .send(body.as_bytes());
                    let Ok(mut r) = r else { break };
                    if r.status() != 201 {
                        continue;
                    }
                    let Ok(text) = r.body_mut().read_to_string() else { break };
                    for line in text.lines() {
                        let v: Value = serde_json::from_str(line).unwrap();
                        mine.push(check_receipt(&vkey, &v));
                    }
                }
                mine
            }));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 180));
        let mut s = s;
        let _ = s.child.kill();
        let _ = s.child.wait();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for w in writers {
            acked.extend(w.join().unwrap());
        }
        drop(s);
    }
    // Final check of everything ever acknowledged.
    let s = backend.start(&data);
    let size = s.size();
    acked.sort_unstable_by_key(|a| a.0);
    for w in acked.windows(2) {
        assert_ne!(w[0].0, w[1].0, "two acknowledgements for index {}", w[0].0);
    }
    for &(i, leaf) in &acked {
        assert!(i < size);
        assert_eq!(stored_event(&s, i).1, leaf, "event {i} changed");
    }
    backend.verify_stored(&s);
    assert!(acked.len() > cycles, "too few acknowledged events ({}) to mean anything", acked.len());
    eprintln!("{cycles} kill -9 cycles, {} acknowledged events checked, final size {size}", acked.len());
}

/// SIGTERM: requests already accepted are committed and answered before the process exits.
#[test]
fn sigterm_drains_accepted_events() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let body: String = (0..2000).map(|i| format!("{{\"action\":\"drain.{i}\"}}\n")).collect();
    let mut handles = Vec::new();
    for _ in 0..4 {
        let (url, token, body) = (s.url("/v1/events"), s.token.clone(), body.clone());
        handles.push(std::thread::spawn(move || {
            agent()
                .post(&url)
                .header("Authorization", &format!("Bearer {token}"))
                .header("Content-Type", "application/x-ndjson")
                .send(body.as_bytes())
                .map(|mut r| (r.status().as_u16(), r.body_mut().read_to_string().unwrap_or_default()))
        }));
    }
    std::thread::sleep(Duration::from_millis(30));
    let pid = s.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let mut acked = 0;
    for h in handles {
        if let Ok((201, text)) = h.join().unwrap() {
            acked += text.lines().count();
        }
    }
    let mut s = s;
    let status = s.child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let trust = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["verify", s.data.join("log").to_str().unwrap(), "--vkey", &s.vkey, "--json"])
        .env("GRAVEN_TRUST_DIR", trust.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["tree_size"].as_u64().unwrap() >= acked as u64);
}

/// The index is derived: deleting it and running `graven reindex` gives the same answers.
#[test]
fn reindex_rebuilds_search_from_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = start(&data, &[]);
    let body: String = (0..300).map(|i| format!("{{\"action\":\"job.{}\"}}\n", i % 3)).collect();
    assert_eq!(s.post("application/x-ndjson", body.as_bytes(), Some(&s.token)).status, 201);
    let search = |s: &Server| -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v: Value = serde_json::from_str(&s.get("/v1/events?action=job.1&limit=1000").body).unwrap();
            // 300 after the server's two records of its bootstrap admin.
            if v["indexed_size"] == 302 {
                return v["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["index"].as_u64().unwrap())
                    .collect();
            }
            assert!(Instant::now() < deadline, "index never caught up");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let before = search(&s);
    assert_eq!(before.len(), 100);
    drop(s);
    std::fs::remove_file(data.join("index.redb")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["reindex", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["indexed"], 302);
    let s = start(&data, &[]);
    assert_eq!(search(&s), before);
}

/// `graven verify` with a trust store that persists across calls, against `target`.
fn verify_remembering(s: &Server, vkey: &str, trust: &Path) -> (Option<i32>, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["verify", &s.url("/"), "--vkey", vkey, "--json", "--trust-dir", trust.to_str().unwrap()])
        .env("GRAVEN_TOKEN", &s.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout:?}"));
    (out.status.code(), v, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Responses the server counted for one route (all statuses), from `/metrics`.
fn served(s: &Server, route: &str) -> u64 {
    let needle = format!("route=\"{route}\"");
    s.get("/metrics")
        .body
        .lines()
        .filter(|l| l.starts_with("graven_http_responses_total{") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn post_batch(s: &Server, prefix: &str, n: usize) {
    let body: String = (0..n).map(|i| format!("{{\"action\":\"{prefix}.{i}\"}}\n")).collect();
    assert_eq!(s.post("application/x-ndjson", body.as_bytes(), Some(&s.token)).status, 201);
}

/// Verification that remembers, against the real server: an incremental run asks for exactly
/// the new tiles (counted by the server itself), `prove --url` checks a proof end to end, and
/// a rolled-back or forked server (same key) is refused.
#[test]
fn verify_remembers_a_live_server() {
    let tmp = tempfile::tempdir().unwrap();
    let trust = tmp.path().join("trust");
    let data = tmp.path().join("data");
    let s = start(&data, &[]);
    // 298 after the server's two records of its bootstrap admin: 300 in all.
    post_batch(&s, "first", 298);
    let (code, v, _) = verify_remembering(&s, &s.vkey, &trust);
    assert_eq!((code, &v["tree_size"], &v["trust"]), (Some(0), &300.into(), &"first-use".into()));
    let vkey = s.vkey.clone();
    drop(s);
    let old = tmp.path().join("data-at-300");
    copy_dir(&data, &old);

    let s = start(&data, &[]);
    post_batch(&s, "second", 10);
    let (tiles, checkpoints) = (served(&s, "GET /tile"), served(&s, "GET /checkpoint"));
    let (code, v, err) = verify_remembering(&s, &s.vkey, &trust);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        (&v["tree_size"], &v["previous_size"], &v["mode"]),
        (&310.into(), &300.into(), &"incremental".into())
    );
    // 300 = 256 + 32 + 8 + 4: the edge comes from tile/1/000.p/1 and tile/0/001.p/54, then the
    // one bundle past 256 (tile/entries/001.p/54). A full run would read 5 tile files.
    assert_eq!(served(&s, "GET /tile") - tiles, 3);
    assert_eq!(served(&s, "GET /checkpoint") - checkpoints, 1);

    // prove --url: the proof, the entry from the tiles and the signed checkpoint agree.
    let prove = |extra: &[&str], key: &str| {
        Command::new(env!("CARGO_BIN_EXE_graven"))
            .args(["prove", "--url", &s.url("/"), "--vkey", key])
            .env("GRAVEN_TOKEN", &s.token)
            .args(extra)
            .output()
            .unwrap()
    };
    for extra in [&["--index", "7"][..], &["--index", "305"], &["--index", "7", "--size", "100"]] {
        let out = prove(extra, &vkey);
        assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        let p: Value = serde_json::from_slice(&out.stdout).unwrap();
        let index = p["index"].as_u64().unwrap();
        assert_eq!(p["verified"], true);
        assert_eq!(p["leaf_hash"].as_str().unwrap(), stored_event(&s, index).1.to_base64());
        assert_eq!(p["consistency_proof"].is_array(), extra.len() == 4, "{p}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("OK: entry"));
    }
    let other = graven_core::note::SignerKey::from_seed("localhost/graven", [1; 32]).unwrap().verifier();
    let out = prove(&["--index", "7"], &other.to_string());
    assert_eq!(out.status.code(), Some(1), "a checkpoint not signed by --vkey is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAILED"));
    drop(s);

    // Rollback: the server restarted on an older copy of its data directory.
    let s = start(&old, &[]);
    assert_eq!(s.size(), 300);
    let (code, v, err) = verify_remembering(&s, &vkey, &trust);
    assert_eq!((code, &v["alert"]), (Some(1), &"rollback".into()), "{err}");
    assert!(err.contains("ROLLBACK") && err.contains("size 300") && err.contains("size 310"), "{err}");
    drop(s);

    // Fork: a server with the same signing key but another history.
    let fork = tmp.path().join("fork");
    std::fs::create_dir_all(&fork).unwrap();
    std::fs::copy(data.join("log.key"), fork.join("log.key")).unwrap();
    let s = start(&fork, &[]);
    assert_eq!(s.vkey, vkey, "same key");
    post_batch(&s, "forked", 398);
    let (code, v, err) = verify_remembering(&s, &vkey, &trust);
    assert_eq!((code, &v["alert"]), (Some(1), &"fork".into()), "{err}");
    assert!(err.contains("FORK") && err.contains("size 310") && err.contains("size 400"), "{err}");
    assert_eq!(v["presented"]["tree_size"], 400);
    // The fork is a valid log on its own.
    assert_eq!(verify_url(&s, &vkey)["tree_size"], 400);
}
