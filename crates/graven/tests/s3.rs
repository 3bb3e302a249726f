//! `graven serve --storage s3://...` end to end: the real binary on a real S3 service
//! (SeaweedFS, see `graven_testkit::s3`), tampered with through the S3 API as someone holding
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
use graven_s3::{DefaultRetention, RetentionMode, RetentionPeriod, S3Config, S3Store};
use graven_testkit::s3::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, Seaweed};
use serde_json::Value;

/// How a test's bucket locks the objects written to it.
#[derive(Debug, Clone, Copy)]
enum Lock {
    /// No Object Lock.
    Off,
    /// Object Lock, with no default retention rule.
    NoDefault,
    /// Object Lock, with this default retention rule.
    Default(RetentionMode, RetentionPeriod),
}

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
    fn new(hint: &str, lock: Lock) -> Place {
        let sw = Seaweed::shared();
        let mut cfg = match lock {
            Lock::Off => sw.bucket(hint, false),
            Lock::NoDefault => sw.bucket(hint, true),
            Lock::Default(mode, period) => {
                sw.bucket_with_default_retention(hint, DefaultRetention { mode, period })
            }
        };
        cfg.prefix = "audit/main".into();
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("signer.key");
        let vkey = common::keygen(&key, "s3.example/log");
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

    /// Every version (not delete markers) of every key under the log's prefix, as
    /// `(full key, version id)`, in the order S3 lists them.
    fn all_versions(&self) -> Vec<(String, String)> {
        let prefix = self.full("");
        self.s3(|c, b| async move {
            let mut all = Vec::new();
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let out = c
                    .list_object_versions()
                    .bucket(&b)
                    .prefix(&prefix)
                    .set_key_marker(key_marker.clone())
                    .set_version_id_marker(version_marker.clone())
                    .send()
                    .await
                    .unwrap();
                for v in out.versions() {
                    all.push((v.key().unwrap().to_owned(), v.version_id().unwrap().to_owned()));
                }
                if out.is_truncated() != Some(true) {
                    return all;
                }
                key_marker = out.next_key_marker().map(str::to_owned);
                version_marker = out.next_version_id_marker().map(str::to_owned);
            }
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
        self.delete_version_as(full, version, false)
    }

    /// DeleteObject of one version with `x-amz-bypass-governance-retention: true`, as the
    /// bucket owner (the only principal SeaweedFS has here, allowed everything) would send it.
    fn delete_version_bypassing(
        &self,
        full: &str,
        version: &str,
    ) -> Result<(), (Option<u16>, Option<String>)> {
        self.delete_version_as(full, version, true)
    }

    fn delete_version_as(
        &self,
        full: &str,
        version: &str,
        bypass: bool,
    ) -> Result<(), (Option<u16>, Option<String>)> {
        let (k, v) = (full.to_owned(), version.to_owned());
        self.s3(move |c, b| async move {
            c.delete_object()
                .bucket(b)
                .key(k)
                .version_id(v)
                .set_bypass_governance_retention(bypass.then_some(true))
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
    let p = Place::new("lock", Lock::NoDefault);
    let a = p.node("a", &["--retention-mode", "governance", "--retention-days", "365"]);
    assert!(a.banner.contains(&format!("storage: {} (this node: writer)", p.url)), "{:?}", a.banner);
    let objects = "objects: GOVERNANCE retention for 365 days (chosen with --retention-mode/--retention-days, counted from this node's clock; the bucket has no default retention); principals with s3:BypassGovernanceRetention (the bucket owner's keys among them) can delete a locked version before it expires; nobody else can";
    assert!(a.banner.iter().any(|l| l == objects), "{:?}", a.banner);
    // 0 and 1 are the server's own records of its bootstrap admin.
    append(&a, "lock.test", 2..400);
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
        assert_eq!(mode, ObjectLockRetentionMode::Governance, "{k}: the mode asked for");
        assert!(until > year, "{k}: retained for the 365 days asked for");
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
    let p = Place::new("compliance", Lock::NoDefault);
    let a = p.node("a", &["--retention-mode", "compliance", "--retention-days", "1"]);
    let objects = "objects: COMPLIANCE retention for 1 day (chosen with --retention-mode/--retention-days, counted from this node's clock; the bucket has no default retention); nobody, not even the bucket owner, can delete a locked version before it expires";
    assert!(a.banner.iter().any(|l| l == objects), "{:?}", a.banner);
    // 0 and 1 are the server's own records of its bootstrap admin.
    append(&a, "compliance.test", 2..300);
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

/// The bucket's default retention is COMPLIANCE. Started with no retention settings, Graven must
/// write no retention of its own: every version of every object it writes is then under the
/// bucket's rule, and not even the bucket owner's keys, asking to bypass governance retention,
/// can delete one.
#[test]
fn a_compliance_bucket_default_is_inherited_and_no_version_can_be_deleted() {
    let t0 = Instant::now();
    let p =
        Place::new("default-compliance", Lock::Default(RetentionMode::Compliance, RetentionPeriod::Days(2)));
    let started = SystemTime::now();
    let a = p.node("a", &[]);
    let objects = "objects: COMPLIANCE retention for 2 days (bucket default); nobody, not even the bucket owner, can delete a locked version before it expires";
    assert!(a.banner.iter().any(|l| l == objects), "{:?}", a.banner);
    // 0 and 1 are the server's own records of its bootstrap admin.
    append(&a, "default.test", 2..300);
    append(&a, "default.test", 300..310);
    p.verify_ok(310);

    let two_days = Duration::from_secs(2 * 86_400);
    let margin = Duration::from_secs(600);
    let (lo, hi) = (started + two_days - margin, SystemTime::now() + two_days + margin);
    let versions = p.all_versions();
    let keys: Vec<&str> = versions.iter().map(|(k, _)| k.as_str()).collect();
    for k in [
        "tile/0/000",
        "tile/0/001.p/54",
        "tile/entries/000",
        "tile/entries/001.p/54",
        "graven/checkpoint/00000000000000000310",
        "checkpoint",
        "graven/head",
    ] {
        assert!(keys.contains(&p.full(k).as_str()), "{k} not in {keys:?}");
    }
    for (k, v) in &versions {
        let deleted = p.delete_version_bypassing(k, v);
        assert!(
            deleted.is_err(),
            "the bucket owner deleted {k} version {v}, under the bucket's COMPLIANCE default"
        );
        let (status, code) = deleted.unwrap_err();
        assert_eq!((status, code.as_deref()), (Some(403), Some("AccessDenied")), "{k} {v}");
        let (mode, until) = p.retention(k, v);
        assert_eq!(mode, ObjectLockRetentionMode::Compliance, "{k} {v}: the bucket's default mode");
        assert!(until > lo && until < hi, "{k} {v}: locked for the bucket's two days");
    }
    let after = p.all_versions();
    for kv in &versions {
        assert!(after.contains(kv), "{kv:?} is gone");
    }
    append(&a, "default.test", 310..311);
    p.verify_ok(311);
    done("a_compliance_bucket_default_is_inherited_and_no_version_can_be_deleted", t0);
}

/// `graven serve` on `p` with `flags` must exit with status 2, saying each of `says`; returns
/// its stderr.
fn refused(p: &Place, node: &str, flags: &[&str], says: &[&str]) -> String {
    let mut args = vec!["--storage", &p.url, "--key", p.key.to_str().unwrap()];
    args.extend_from_slice(flags);
    let out = p.serve_exits(node, &args);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
    for s in says {
        assert!(err.contains(s), "{flags:?}: does not say {s:?}: {err}");
    }
    err
}

#[test]
fn refuses_retention_weaker_than_the_bucket_default() {
    let t0 = Instant::now();
    let p = Place::new("weaker", Lock::Default(RetentionMode::Compliance, RetentionPeriod::Days(30)));
    let mode_fix =
        ["--retention-mode governance", "weaker than", "COMPLIANCE for 30 days", "Remove --retention-mode"];
    refused(&p, "n1", &["--retention-mode", "governance"], &mode_fix);
    refused(&p, "n2", &["--retention-mode", "governance", "--retention-days", "3650"], &mode_fix);
    let days_fix = ["--retention-days 29", "shorter than", "COMPLIANCE for 30 days", "at least 30"];
    refused(&p, "n3", &["--retention-days", "29"], &days_fix);
    refused(&p, "n4", &["--retention-mode", "compliance", "--retention-days", "29"], &days_fix);
    // The same settings from graven.toml, and from the environment.
    std::fs::create_dir_all(p.data("n5")).unwrap();
    std::fs::write(
        p.data("n5").join("graven.toml"),
        "retention_mode = \"governance\"\nretention_days = 30\n",
    )
    .unwrap();
    refused(&p, "n5", &[], &mode_fix);
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["serve", "--data", p.data("n6").to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--storage", &p.url, "--key", p.key.to_str().unwrap()])
        .envs(p.env())
        .env("GRAVEN_RETENTION_DAYS", "7")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("--retention-days 7"), "{}", common::stderr(&out));
    assert_eq!(p.list(""), Vec::<String>::new(), "a refused start writes nothing");

    // A default of one year can be 366 days long: 365 days is shorter.
    let y = Place::new("weaker-years", Lock::Default(RetentionMode::Governance, RetentionPeriod::Years(1)));
    refused(
        &y,
        "n1",
        &["--retention-days", "365"],
        &["--retention-days 365", "GOVERNANCE for 1 year", "at least 366"],
    );
    // Stronger settings than the default are taken, and are what the objects get.
    let a = y.node("a", &["--retention-mode", "compliance", "--retention-days", "366"]);
    let objects = "objects: COMPLIANCE retention for 366 days (chosen with --retention-mode/--retention-days, counted from this node's clock; the bucket's default is GOVERNANCE for 1 year); nobody, not even the bucket owner, can delete a locked version before it expires";
    assert!(a.banner.iter().any(|l| l == objects), "{:?}", a.banner);
    // 0 and 1 are the server's own records of its bootstrap admin.
    append(&a, "weaker.test", 2..10);
    let tile = y.full("tile/0/000.p/10");
    let (version, _) = y.current(&tile);
    let (mode, until) = y.retention(&tile, &version);
    assert_eq!(mode, ObjectLockRetentionMode::Compliance);
    assert!(until > SystemTime::now() + Duration::from_secs(365 * 86_400), "{tile}: 366 days");
    assert!(y.delete_version_bypassing(&tile, &version).is_err());
    done("refuses_retention_weaker_than_the_bucket_default", t0);
}

#[test]
fn refuses_a_bucket_without_default_retention_until_mode_and_period_are_chosen() {
    let t0 = Instant::now();
    let p = Place::new("no-default", Lock::NoDefault);
    let fix = ["has Object Lock but no default retention", "put-object-lock-configuration"];
    let err = refused(&p, "n1", &[], &fix);
    assert!(err.contains("neither --retention-mode nor --retention-days is set"), "{err}");
    let err = refused(&p, "n2", &["--retention-mode", "compliance"], &fix);
    assert!(err.contains("--retention-days is not set"), "{err}");
    let err = refused(&p, "n3", &["--retention-days", "30"], &fix);
    assert!(err.contains("--retention-mode is not set"), "{err}");
    // --allow-no-object-lock is about buckets without Object Lock; it does not choose retention.
    refused(&p, "n4", &["--allow-no-object-lock"], &fix);
    assert_eq!(p.list(""), Vec::<String>::new(), "a refused start writes nothing");
    done("refuses_a_bucket_without_default_retention_until_mode_and_period_are_chosen", t0);
}

// ------------------------------------------------------------------------ refusing to start

#[test]
fn refuses_to_start_without_object_lock_or_with_bad_settings() {
    let t0 = Instant::now();
    let p = Place::new("no-lock", Lock::Off);
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

    // Retention asked for on a bucket that cannot hold it is refused, waiver or not.
    let err = refused(
        &p,
        "n6",
        &["--allow-no-object-lock", "--retention-mode", "compliance", "--retention-days", "30"],
        &["has no Object Lock", "cannot be honoured"],
    );
    assert!(err.contains("--retention-mode"), "{err}");
    assert_eq!(p.list(""), Vec::<String>::new());

    // Waived, it starts (warning about it), and appends.
    let a = p.node("n4", &["--allow-no-object-lock"]);
    assert!(a.banner.contains(&format!("storage: {} (this node: writer)", p.url)), "{:?}", a.banner);
    let objects = "objects: no Object Lock (--allow-no-object-lock); anyone holding the bucket's credentials can delete any version (graven verify would notice)";
    assert!(a.banner.iter().any(|l| l == objects), "{:?}", a.banner);
    // 0 and 1 are the server's own records of its bootstrap admin.
    append(&a, "nolock.test", 2..5);
    p.verify_ok(5);

    // A node given another signer key is refused at start, before it can take the lease.
    let other = p.data("other.key");
    common::keygen(&other, "other.example/log");
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
    let p = Place::new("replicas", Lock::Default(RetentionMode::Governance, RetentionPeriod::Days(1)));
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
    let p = Place::new("handover", Lock::Default(RetentionMode::Governance, RetentionPeriod::Days(1)));
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

/// Trusted time on S3 (docs/trusted-time.md): the writer's token lands under
/// `graven/timestamp/`, beside the archived checkpoint it stamps and under the same Object Lock
/// retention; `graven verify s3://… --tsa-cert` finds and checks it by listing the bucket.
/// The TSA is `openssl ts -reply` behind an HTTP handler with a test CA (`graven_testkit::tsa`).
#[test]
fn time_stamp_tokens_are_kept_like_the_archive() {
    let t0 = Instant::now();
    let p = Place::new("tsa", Lock::NoDefault);
    let pki = graven_testkit::tsa::pki();
    let root = pki.root.cert.to_str().unwrap();
    let a = p.node(
        "a",
        &[
            "--retention-mode",
            "compliance",
            "--retention-days",
            "1",
            "--tsa-url",
            &pki.rsa.url,
            "--tsa-cert",
            root,
            "--tsa-interval",
            "1",
        ],
    );
    append(&a, "stamped", 2..40);
    let size = 40u64;
    let stamped = |s: &Server| {
        let m = get(s, "/metrics", &s.token).body;
        m.lines().any(|l| l == format!("graven_tsa_stamped_size {size}"))
    };
    within(Duration::from_secs(30), "the latest checkpoint stamped", || stamped(&a).then_some(()));
    let token = p.full(&format!("graven/timestamp/{size:020}"));
    let archived = p.full(&format!("graven/checkpoint/{size:020}"));
    assert!(p.list("graven/timestamp/").contains(&token), "{:?}", p.list("graven/timestamp/"));
    let (tv, token_bytes) = p.current(&token);
    let (av, note) = p.current(&archived);
    let (token_mode, token_until) = p.retention(&token, &tv);
    let (note_mode, note_until) = p.retention(&archived, &av);
    assert_eq!(token_mode, ObjectLockRetentionMode::Compliance);
    assert_eq!(token_mode, note_mode);
    let apart = token_until.duration_since(note_until).unwrap_or_else(|e| e.duration());
    assert!(apart < Duration::from_secs(600), "retained alike: {token_until:?} and {note_until:?}");
    assert!(p.delete_version(&token, &tv).is_err(), "a retained token cannot be deleted");
    let verifier = graven_tsa::TsaVerifier::new(graven_tsa::TsaRoots::from_pem(&pki.root.pem()).unwrap());
    verifier.verify(&token_bytes, &note, None).unwrap();
    // Served as stored, and checked by the verifier straight from the bucket.
    assert_eq!(get_bytes(&a, &format!("/graven/timestamp/{size:020}"), &a.token), (200, token_bytes));
    drop(a);
    let trust = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args([
            "verify",
            &p.url,
            "--vkey",
            &p.vkey,
            "--tsa-cert",
            root,
            "--trust-dir",
            trust.path().to_str().unwrap(),
        ])
        .envs(p.env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("size {size} stamped at ")), "{text}");
    done("time_stamp_tokens_are_kept_like_the_archive", t0);
}
