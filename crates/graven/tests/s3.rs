//! `graven serve --storage s3://...` end to end: the real binary on a real S3 service
//! (SeaweedFS, see `graven_s3::testing`), tampered with through the S3 API as someone holding
//! the bucket's credentials would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::future::Future;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectLockRetentionMode;
use common::{Resp, Server, start_env};
use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::note::VerifierKey;
use graven_core::{Hash, LeafIndex, merkle};
use graven_s3::testing::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, Seaweed};
use graven_s3::{S3Config, S3Store};
use serde_json::Value;

/// A log's place in SeaweedFS (a fresh bucket, prefix `audit/main`), its signer key, and a raw
/// S3 client with the same credentials the nodes use.
struct Place {
    tmp: tempfile::TempDir,
    cfg: S3Config,
    s3: S3Store,
    /// `s3://bucket/audit/main`
    url: String,
    key: PathBuf,
    vkey: String,
    env: Vec<(&'static str, String)>,
}

impl Place {
    fn new(hint: &str, object_lock: bool) -> Place {
        let sw = Seaweed::shared();
        let mut cfg = sw.bucket(hint, object_lock);
        cfg.prefix = "audit/main".into();
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("signer.key");
        let out =
            common::graven(&["keygen", "--origin", "s3.example/log", "--out", key.to_str().unwrap()], b"");
        let vkey = common::ok(&out).trim().to_owned();
        let env = vec![
            ("AWS_ENDPOINT_URL", sw.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            // Empty counts as unset: nothing from the test's own environment leaks in.
            ("AWS_ENDPOINT_URL_S3", String::new()),
            ("AWS_DEFAULT_REGION", String::new()),
            ("AWS_SESSION_TOKEN", String::new()),
        ];
        let url = format!("s3://{}/{}", cfg.bucket, cfg.prefix);
        let s3 = S3Store::connect(cfg.clone()).unwrap();
        Place { tmp, cfg, s3, url, key, vkey, env }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    fn data(&self, node: &str) -> PathBuf {
        self.tmp.path().join(node)
    }

    /// `graven serve --storage <url> --key <key> <extra>` with data dir `<tmp>/<node>`.
    fn node(&self, node: &str, extra: &[&str]) -> Server {
        let mut args = vec!["--storage", &self.url, "--key", self.key.to_str().unwrap()];
        args.extend_from_slice(extra);
        start_env(&self.data(node), &args, &self.env())
    }

    /// Runs `graven serve <args>` that must exit by itself (within 60 s).
    fn serve_exits(&self, node: &str, args: &[&str]) -> Output {
        let child = Command::new(env!("CARGO_BIN_EXE_graven"))
            .args(["serve", "--data", self.data(node).to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(self.env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !waiter.is_finished() {
            if Instant::now() > deadline {
                signal(pid, "KILL");
                panic!("graven serve {args:?} was expected to exit, and still ran after 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        waiter.join().unwrap()
    }

    /// `graven verify <url> --vkey <vkey> --trust-dir <fresh>`: a first-use, full verification
    /// straight from S3.
    fn verify(&self) -> Output {
        let trust = tempfile::tempdir().unwrap();
        Command::new(env!("CARGO_BIN_EXE_graven"))
            .args(["verify", &self.url, "--vkey", &self.vkey, "--trust-dir", trust.path().to_str().unwrap()])
            .args(["--json"])
            .envs(self.env())
            .output()
            .unwrap()
    }

    fn verify_ok(&self, size: u64) {
        let out = self.verify();
        assert!(out.status.success(), "verify {}: {}", self.url, String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["tree_size"], size, "{v}");
    }

    /// Verification fails, naming `object`; returns what it said.
    fn verify_fails(&self, object: &str) -> String {
        let out = self.verify();
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "verify passed a tampered log: {said}");
        assert!(said.contains(object), "the failure does not name {object}: {said}");
        said
    }

    fn full(&self, key: &str) -> String {
        self.cfg.full_key(key)
    }

    /// Runs an S3 request with the raw client: `f(client, bucket)`.
    fn s3<T, F>(&self, f: impl FnOnce(Client, String) -> F) -> T
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        self.s3.run(f(self.s3.client().clone(), self.cfg.bucket.clone())).unwrap()
    }

    /// The full keys under `<prefix>/<under>`.
    fn list(&self, under: &str) -> Vec<String> {
        let prefix = self.full(under);
        self.s3(|c, b| async move {
            let out = c.list_objects_v2().bucket(b).prefix(prefix).max_keys(1000).send().await.unwrap();
            out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
        })
    }

    /// The current version of a full key: its version id and bytes.
    fn current(&self, full: &str) -> (String, Vec<u8>) {
        let k = full.to_owned();
        self.s3(|c, b| async move {
            let o = c.get_object().bucket(b).key(&k).send().await.unwrap_or_else(|e| panic!("{k}: {e:?}"));
            let v = o.version_id().unwrap().to_owned();
            (v, o.body.collect().await.unwrap().into_bytes().to_vec())
        })
    }

    /// The bytes of one version of a full key.
    fn version(&self, full: &str, version: &str) -> Vec<u8> {
        let (k, v) = (full.to_owned(), version.to_owned());
        self.s3(|c, b| async move {
            let o = c.get_object().bucket(b).key(k).version_id(v).send().await.unwrap();
            o.body.collect().await.unwrap().into_bytes().to_vec()
        })
    }

    /// Every version id of exactly this full key (delete markers included), newest first.
    fn versions(&self, full: &str) -> Vec<(String, bool)> {
        let k = full.to_owned();
        self.s3(|c, b| async move {
            let out = c.list_object_versions().bucket(b).prefix(&k).send().await.unwrap();
            let mut all: Vec<(String, bool, bool)> = Vec::new();
            for v in out.versions().iter().filter(|v| v.key() == Some(k.as_str())) {
                all.push((v.version_id().unwrap().to_owned(), false, v.is_latest().unwrap_or(false)));
            }
            for m in out.delete_markers().iter().filter(|m| m.key() == Some(k.as_str())) {
                all.push((m.version_id().unwrap().to_owned(), true, m.is_latest().unwrap_or(false)));
            }
            // The latest first; the order of the others does not matter here.
            all.sort_by_key(|v| !v.2);
            all.into_iter().map(|(id, marker, _)| (id, marker)).collect()
        })
    }

    /// The Object Lock retention of one version: its mode and retain-until date.
    fn retention(&self, full: &str, version: &str) -> (ObjectLockRetentionMode, SystemTime) {
        let (k, v) = (full.to_owned(), version.to_owned());
        self.s3(|c, b| async move {
            let r = c.get_object_retention().bucket(b).key(&k).version_id(v).send().await;
            let r = r.unwrap_or_else(|e| panic!("{k}: no retention: {e:?}"));
            let r = r.retention().unwrap();
            (r.mode().unwrap().clone(), SystemTime::try_from(*r.retain_until_date().unwrap()).unwrap())
        })
    }

    /// DeleteObject of one version: `Err((HTTP status, S3 error code))` if refused.
    fn delete_version(&self, full: &str, version: &str) -> Result<(), (Option<u16>, Option<String>)> {
        let (k, v) = (full.to_owned(), version.to_owned());
        self.s3(|c, b| async move {
            c.delete_object()
                .bucket(b)
                .key(k)
                .version_id(v)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| (e.raw_response().map(|r| r.status().as_u16()), e.code().map(str::to_owned)))
        })
    }

    /// PutObject, create-only if `if_absent`: the new version id, or `Err((status, code))`.
    fn put(
        &self,
        full: &str,
        bytes: &[u8],
        if_absent: bool,
    ) -> Result<String, (Option<u16>, Option<String>)> {
        let (k, body) = (full.to_owned(), bytes.to_vec());
        self.s3(move |c, b| async move {
            let mut req = c.put_object().bucket(b).key(k).body(ByteStream::from(body));
            if if_absent {
                req = req.if_none_match("*");
            }
            req.send()
                .await
                .map(|o| o.version_id().unwrap_or_default().to_owned())
                .map_err(|e| (e.raw_response().map(|r| r.status().as_u16()), e.code().map(str::to_owned)))
        })
    }
}

/// Sends a signal to a process with `kill(1)`.
fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// An agent that answers every status (redirects included) as a response.
fn no_redirects() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// POSTs NDJSON to `url`, not following redirects: the status, the Location header and the body.
fn post_ndjson(url: &str, token: &str, body: &str) -> (u16, Option<String>, String) {
    post(url, "application/x-ndjson", token, body)
}

fn post(url: &str, ctype: &str, token: &str, body: &str) -> (u16, Option<String>, String) {
    let mut r = no_redirects()
        .post(url)
        .header("Content-Type", ctype)
        .header("Authorization", &format!("Bearer {token}"))
        .send(body.as_bytes())
        .unwrap();
    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (r.status().as_u16(), location, r.body_mut().read_to_string().unwrap_or_default())
}

fn events(action: &str, range: std::ops::Range<u64>) -> String {
    range
        .map(|i| format!("{{\"action\":\"{action}\",\"resource\":{{\"type\":\"doc\",\"id\":\"d-{i}\"}}}}\n"))
        .collect()
}

/// Appends events through `s` (the writer), as its admin; returns the receipts.
fn append(s: &Server, action: &str, range: std::ops::Range<u64>) -> Vec<Value> {
    let n = range.end - range.start;
    let (status, _, body) = post_ndjson(&s.url("/v1/events"), &s.token, &events(action, range));
    assert_eq!(status, 201, "{body}");
    let receipts: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(receipts.len() as u64, n);
    receipts
}

/// Polls `f` every 100 ms until it gives `Some`, for at most `limit`; says how long it took.
fn within<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return (v, start.elapsed());
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(s: &Server, path: &str, token: &str) -> Resp {
    s.req("GET", path, Some(token), None)
}

/// Raw bytes of a GET.
fn get_bytes(s: &Server, path: &str, token: &str) -> (u16, Vec<u8>) {
    let mut r =
        common::agent().get(&s.url(path)).header("Authorization", &format!("Bearer {token}")).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_vec().unwrap())
}

fn done(name: &str, t0: Instant) {
    eprintln!("{name}: {:.1} s", t0.elapsed().as_secs_f64());
}

// ------------------------------------------------------------------------------ Object Lock

#[test]
fn object_lock_holds_and_verify_catches_what_s3_allows() {
    let t0 = Instant::now();
    let p = Place::new("lock", true);
    let a = p.node("a", &[]);
    assert!(a.banner.contains(&format!("storage: {} (this node: writer)", p.url)), "{:?}", a.banner);
    append(&a, "lock.test", 0..400);
    append(&a, "lock.test", 400..700);
    assert_eq!(a.size(), 700);
    p.verify_ok(700);

    let tile = p.full("tile/0/000");
    let bundle = p.full("tile/entries/000");
    let archived = p.full("graven/checkpoint/00000000000000000700");
    assert!(p.list("graven/checkpoint/").contains(&archived), "{:?}", p.list("graven/checkpoint/"));
    let year = SystemTime::now() + Duration::from_secs(364 * 86_400);
    for k in [&tile, &bundle, &archived] {
        let (version, bytes) = p.current(k);
        let (mode, until) = p.retention(k, &version);
        assert_eq!(mode, ObjectLockRetentionMode::Governance, "{k}: the default mode");
        assert!(until > year, "{k}: retained for 365 days by default");
        // (a), and (c) for governance mode: deleting the version itself, without the
        // governance-bypass header, is refused.
        let (status, code) = p.delete_version(k, &version).unwrap_err();
        assert_eq!((status, code.as_deref()), (Some(403), Some("AccessDenied")), "{k}");
        // (b) an overwrite that says it must not replace anything.
        let (status, _) = p.put(k, b"forged", true).unwrap_err();
        assert_eq!(status, Some(412), "{k}");
        assert_eq!(p.current(k), (version.clone(), bytes), "{k} is untouched");
        assert_eq!(p.versions(k), [(version, false)], "{k}: no version was added");
    }
    p.verify_ok(700);

    // (d) What S3 does let the credentials' holder do on a versioned bucket: add a version.
    // A forged tile, the same length, one hash changed.
    let (tile_version, tile_bytes) = p.current(&tile);
    let mut forged = tile_bytes.clone();
    forged[5 * 32] ^= 1;
    let forged_version = p.put(&tile, &forged, false).unwrap();
    assert_eq!(p.current(&tile), (forged_version.clone(), forged));
    let said = p.verify_fails("tile/0/000");
    eprintln!("verify of a forged tile said: {}", said.trim());
    // The original is still there, byte for byte; deleting the unlocked forgery restores it.
    assert_eq!(p.versions(&tile), [(forged_version.clone(), false), (tile_version.clone(), false)]);
    assert_eq!(p.version(&tile, &tile_version), tile_bytes);
    p.delete_version(&tile, &forged_version).unwrap();
    assert_eq!(p.current(&tile), (tile_version, tile_bytes));
    p.verify_ok(700);

    // A plain delete of a bundle: a delete marker hides it.
    let (bundle_version, bundle_bytes) = p.current(&bundle);
    let k = bundle.clone();
    let marker = p.s3(|c, b| async move { c.delete_object().bucket(b).key(k).send().await.unwrap() });
    assert_eq!(marker.delete_marker(), Some(true));
    let marker = marker.version_id().unwrap().to_owned();
    let said = p.verify_fails("tile/entries/000");
    eprintln!("verify of a hidden bundle said: {}", said.trim());
    assert_eq!(p.versions(&bundle), [(marker.clone(), true), (bundle_version.clone(), false)]);
    assert_eq!(p.version(&bundle, &bundle_version), bundle_bytes);
    p.delete_version(&bundle, &marker).unwrap();
    assert_eq!(p.current(&bundle), (bundle_version, bundle_bytes));
    p.verify_ok(700);

    // The writer went on through all of that.
    append(&a, "lock.test", 700..710);
    p.verify_ok(710);
    done("object_lock_holds_and_verify_catches_what_s3_allows", t0);
}

#[test]
fn compliance_mode_is_what_the_objects_get() {
    let t0 = Instant::now();
    let p = Place::new("compliance", true);
    let a = p.node("a", &["--retention-mode", "compliance", "--retention-days", "1"]);
    append(&a, "compliance.test", 0..300);
    let (lo, hi) = (
        SystemTime::now() + Duration::from_secs(86_400 - 600),
        SystemTime::now() + Duration::from_secs(86_400 + 600),
    );
    let mut keys = p.list("tile/");
    keys.extend(p.list("graven/checkpoint/"));
    for k in
        [p.full("tile/0/000"), p.full("tile/entries/000"), p.full("graven/checkpoint/00000000000000000300")]
    {
        assert!(keys.contains(&k), "{k} not in {keys:?}");
    }
    for k in &keys {
        let (version, _) = p.current(k);
        let (mode, until) = p.retention(k, &version);
        assert_eq!(mode, ObjectLockRetentionMode::Compliance, "{k}");
        assert!(until > lo && until < hi, "{k}: retained for one day");
    }
    let (version, _) = p.current(&keys[0]);
    assert!(p.delete_version(&keys[0], &version).is_err());
    drop(a);
    p.verify_ok(300);
    done("compliance_mode_is_what_the_objects_get", t0);
}

// ------------------------------------------------------------------------ refusing to start

#[test]
fn refuses_to_start_without_object_lock_or_with_bad_settings() {
    let t0 = Instant::now();
    let p = Place::new("no-lock", false);
    let key = p.key.to_str().unwrap();
    let out = p.serve_exits("n1", &["--storage", &p.url, "--key", key]);
    let err = common::stderr(&out);
    assert!(!out.status.success(), "started on a bucket without Object Lock: {err}");
    assert!(err.contains("Object Lock") && err.contains("--allow-no-object-lock"), "{err}");
    assert_eq!(p.list(""), Vec::<String>::new(), "a refused start writes nothing");

    // A signer key is required, and named.
    let out = p.serve_exits("n2", &["--storage", &p.url, "--allow-no-object-lock"]);
    let err = common::stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("--key") && err.contains("graven keygen"), "{err}");

    // Malformed locations are refused before any request, saying what is wrong.
    for (url, says) in [
        ("s3://UPPER/x", "bucket name \"UPPER\""),
        ("s3://", "s3://bucket/prefix"),
        ("s3://ok-bucket//x", "empty segment"),
        ("https://bucket/x", "s3://bucket/prefix"),
    ] {
        let out = p.serve_exits("n3", &["--storage", url, "--key", key, "--allow-no-object-lock"]);
        let err = common::stderr(&out);
        assert!(!out.status.success(), "{url}");
        assert!(err.contains(says), "{url}: {err}");
    }
    assert_eq!(p.list(""), Vec::<String>::new());

    // Waived, it starts (warning about it), and appends.
    let a = p.node("n4", &["--allow-no-object-lock"]);
    assert!(a.banner.contains(&format!("storage: {} (this node: writer)", p.url)), "{:?}", a.banner);
    append(&a, "nolock.test", 0..5);
    p.verify_ok(5);

    // A node given another signer key is refused at start, before it can take the lease.
    let other = p.data("other.key");
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["keygen", "--origin", "other.example/log", "--out", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = p.serve_exits(
        "n5",
        &["--storage", &p.url, "--key", other.to_str().unwrap(), "--allow-no-object-lock"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not signed by the key given with --key"), "{err}");
    append(&a, "nolock.test", 5..6);
    p.verify_ok(6);
    done("refuses_to_start_without_object_lock_or_with_bad_settings", t0);
}

// ---------------------------------------------------------------------------- read replicas

/// Checks an inclusion proof from `s` against the checkpoint `s` serves; returns the leaf hash.
fn proven(s: &Server, vkey: &str, token: &str, index: u64) -> (Hash, String) {
    let vkey = VerifierKey::parse(vkey).unwrap();
    let (status, note) = get_bytes(s, "/checkpoint", token);
    assert_eq!(status, 200);
    let cp = VerifiedCheckpoint::open(&note, &vkey, vkey.name()).unwrap();
    let r = get(s, &format!("/v1/proofs/inclusion?index={index}&tree_size={}", cp.size().0), token);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(Hash::from_base64(v["root"].as_str().unwrap()).unwrap(), cp.root());
    let leaf = Hash::from_base64(v["leaf_hash"].as_str().unwrap()).unwrap();
    let proof: Vec<[u8; 32]> = v["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap().0)
        .collect();
    merkle::verify_inclusion(&leaf, LeafIndex(index), cp.size(), &proof, &cp.root()).unwrap();
    (leaf, String::from_utf8(note).unwrap())
}

#[test]
fn a_read_replica_serves_the_log_and_sends_writes_to_the_writer() {
    let t0 = Instant::now();
    let p = Place::new("replicas", true);
    let a = p.node("a", &[]);
    let mut b = p.node("b", &[]);
    let token = a.token.clone();
    assert!(!token.is_empty());
    assert_eq!(b.token, "", "admin.token is written on the first node only");
    // B takes A's admin key: the identity registry is shared.
    b.token = token.clone();
    assert!(!p.data("b").join("admin.token").exists());
    assert!(b.banner.contains(&format!("storage: {} (this node: read replica)", p.url)), "{:?}", b.banner);
    assert!(b.banner.iter().any(|l| l.starts_with("admin credential: ") && l.contains("not on this node")));
    assert_eq!(a.metric("graven_writer"), 1);
    assert_eq!(b.metric("graven_writer"), 0);

    let receipts = append(&a, "replica.test", 0..300);
    let size = a.size();
    let (a_cp, a_cp_bytes) = get_bytes(&a, "/checkpoint", &token);
    assert_eq!(a_cp, 200);
    // B follows the published checkpoint, and serves it with A's admin key (one registry).
    let (_, took) = within(Duration::from_secs(5), "B serves A's checkpoint", || {
        let (st, bytes) = get_bytes(&b, "/checkpoint", &token);
        (st == 200 && bytes == a_cp_bytes).then_some(())
    });
    eprintln!("the replica had the new checkpoint after {took:?}");
    assert_eq!(get(&b, "/v1/log", &token).json()["tree_size"], size);
    for t in ["/tile/0/000", "/tile/entries/000", "/tile/1/000.p/1", &format!("/tile/0/001.p/{}", size - 256)]
    {
        let (sa, ta) = get_bytes(&a, t, &token);
        let (sb, tb) = get_bytes(&b, t, &token);
        assert_eq!((sa, sb), (200, 200), "{t}");
        assert_eq!(ta, tb, "{t}");
    }
    for r in [&receipts[0], &receipts[123], &receipts[299]] {
        let i = r["index"].as_u64().unwrap();
        let (leaf, note) = proven(&b, &p.vkey, &token, i);
        assert_eq!(leaf.to_base64(), r["leaf_hash"].as_str().unwrap(), "leaf {i}");
        assert_eq!(note.as_bytes(), a_cp_bytes);
        let e = get(&b, &format!("/v1/events/{i}"), &token);
        assert_eq!(e.status, 200, "{}", e.body);
    }
    // Search, from B's own index, built by tailing.
    let (hits, took) = within(Duration::from_secs(10), "B's search finds the new events", || {
        let v = get(&b, "/v1/events?action=replica.test&limit=1000", &token).json();
        let hits = v["events"].as_array().unwrap().len();
        (hits == 300).then_some(hits)
    });
    eprintln!("the replica's search had all {hits} events after {took:?}");

    // A write sent to B: 307 to the same path on A, before any credential is looked at.
    let body = events("replica.redirected", 0..2);
    let (status, location, problem) = post_ndjson(&b.url("/v1/events?x=1"), &token, &body);
    assert_eq!(status, 307, "{problem}");
    assert_eq!(location.as_deref(), Some(a.url("/v1/events?x=1").as_str()), "{problem}");
    let (status, _, _) = post_ndjson(&b.url("/v1/events"), "gvn_not-a-key", &body);
    assert_eq!(status, 307);
    let (status, _, receipts) = post_ndjson(&location.unwrap(), &token, &body);
    assert_eq!(status, 201, "{receipts}");
    let (status, location, problem) =
        post(&b.url("/v1/identities"), "application/json", &token, r#"{"id":"svc:x"}"#);
    assert_eq!(status, 307, "identity changes are writes too: {problem}");
    assert_eq!(location.as_deref(), Some(a.url("/v1/identities").as_str()));

    // An identity and key made on A work on B once B re-reads the registry.
    let auditor = a.identity("svc:auditor", "auditor", &[]);
    assert_eq!(get(&a, "/v1/log", &auditor).status, 200);
    let (_, took) = within(Duration::from_secs(5), "B accepts a key made on A", || {
        (get(&b, "/v1/log", &auditor).status == 200).then_some(())
    });
    eprintln!("the replica accepted the new key after {took:?}");
    let r = get(&b, "/v1/events?action=replica.test&limit=1", &auditor);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(&b, "/v1/log", "gvn_0000000000000000nonsense").status, 401);

    assert_eq!(a.metric("graven_writer"), 1);
    let m = b.req("GET", "/metrics", None, None).body;
    assert!(m.lines().any(|l| l == "graven_writer 0"), "{m}");
    assert!(m.lines().any(|l| l.starts_with("graven_store_requests{op=\"get\"}")), "{m}");
    done("a_read_replica_serves_the_log_and_sends_writes_to_the_writer", t0);
}

// ------------------------------------------------------------------------------- handover

#[test]
fn sigterm_hands_the_log_over_to_a_replica() {
    let t0 = Instant::now();
    let p = Place::new("handover", true);
    let mut a = p.node("a", &[]);
    let mut b = p.node("b", &[]);
    let token = a.token.clone();
    b.token = token.clone();
    append(&a, "handover.before", 0..100);

    // A client keeps writing to A, one event at a time, through the shutdown; every event A
    // acknowledged must survive it.
    let acked: Arc<Mutex<Vec<Value>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, token, acked, stop) = (a.url("/v1/events"), token.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let agent = no_redirects();
            let mut refused = 0;
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    return refused;
                }
                let body = events("handover.during", i..i + 1);
                let r = agent
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("Authorization", &format!("Bearer {token}"))
                    .send(body.as_bytes());
                match r {
                    Ok(mut r) if r.status().as_u16() == 201 => {
                        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
                        acked.lock().unwrap().push(v);
                    }
                    _ => {
                        refused += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            refused
        })
    };
    within(Duration::from_secs(10), "the client's writes land", || {
        (acked.lock().unwrap().len() >= 20).then_some(())
    });
    let sent = Instant::now();
    signal(a.child.id(), "TERM");

    // B takes writes within 3 s of A being told to stop.
    let body = events("handover.after", 0..1);
    let (receipt, took) = within(Duration::from_secs(3), "B takes writes after A's SIGTERM", || {
        let (status, _, body) = post_ndjson(&b.url("/v1/events"), &token, &body);
        (status == 201).then_some(body)
    });
    eprintln!("B took writes {took:?} after polling began, {:?} after SIGTERM", sent.elapsed());
    let status = a.child.wait().unwrap();
    assert!(status.success(), "A's graceful stop: {status}");
    stop.store(true, Ordering::SeqCst);
    let refused = writer.join().unwrap();
    assert_eq!(b.metric("graven_writer"), 1);

    // Everything A acknowledged is in the log B now writes, at the index A gave it.
    let acked = acked.lock().unwrap().clone();
    eprintln!("A acknowledged {} events during the run, {refused} refused or unanswered", acked.len());
    let receipt: Value = serde_json::from_str(receipt.lines().next().unwrap()).unwrap();
    let next = receipt["index"].as_u64().unwrap();
    let last = acked.last().unwrap()["index"].as_u64().unwrap();
    assert!(next > last, "B appended after A's last acknowledged event ({next} vs {last})");
    for r in &acked {
        let i = r["index"].as_u64().unwrap();
        let e = get(&b, &format!("/v1/events/{i}"), &token);
        assert_eq!(e.status, 200, "{}", e.body);
        assert_eq!(e.json()["leaf_hash"], r["leaf_hash"], "event {i}");
    }
    assert_eq!(b.size(), next + 1);
    p.verify_ok(next + 1);
    drop(a);
    done("sigterm_hands_the_log_over_to_a_replica", t0);
}
