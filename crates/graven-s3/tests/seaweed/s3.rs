//! What only S3 has, against SeaweedFS: the prefix, concurrent immutable writes, Object Lock
//! (modes, periods, the bucket's default rule, refused version deletes), bucket checks,
//! errors for a missing bucket, an unreachable endpoint or missing credentials, callers on a
//! tokio runtime, and tampering undone from the retained versions. The contract every store
//! keeps is in the conformance suite (`conformance.rs`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::ObjectLockRetentionMode;
use graven_core::TreeSize;
use graven_core::note::SignerKey;
use graven_s3::{
    BucketProblem, DefaultRetention, Retention, RetentionMode, RetentionPeriod, S3Config, S3Error, S3Store,
    Versioning,
};
use graven_testkit::s3::Seaweed;
use graven_tlog::{
    Cond, LogError, ObjectLog, ObjectStore, StoreError, StoreFetch, put_immutable, read_published,
};
use graven_verify::{VerifyError, verify_log};

fn store(hint: &str, object_lock: bool) -> S3Store {
    S3Store::connect(Seaweed::shared().bucket(hint, object_lock)).unwrap()
}

/// The store keeps its objects at `<prefix>/<key>` and nowhere else, and says where.
#[test]
fn keys_live_under_the_prefix_and_nowhere_else() {
    let mut cfg = Seaweed::shared().bucket("round-trip", false);
    cfg.prefix = "logs/one".into();
    let s = S3Store::connect(cfg.clone()).unwrap();
    assert_eq!(s.location(), format!("s3://{}/logs/one", cfg.bucket));
    s.put("tile/0/000", b"hashes", Cond::Any, false).unwrap();
    let (c, b) = (s.client().clone(), cfg.bucket.clone());
    let listed = s
        .run(async move { c.list_objects_v2().bucket(b).send().await.unwrap() })
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect::<Vec<_>>();
    assert_eq!(listed, ["logs/one/tile/0/000"]);
}

/// A TCP relay to `target` that counts the most requests awaiting their answer at once, and
/// the most connections open at once. HTTP/1.1 carries one request at a time on a connection:
/// a request waits from the first byte the client sends until the first byte of the answer.
/// That undercounts requests in flight (not the time an answer takes to be read), never
/// overcounts; connections can outnumber requests (a pooled connection is replaced before the
/// relay sees the old one close), so they are only reported.
struct Relay {
    endpoint: String,
    max_waiting: Arc<AtomicUsize>,
    max_open: Arc<AtomicUsize>,
}

fn relay(target: &str) -> Relay {
    let target = target.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (open, max_open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (waiting, max_waiting) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (max_o, max_w) = (max_open.clone(), max_waiting.clone());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&target) else { continue };
            let n = open.fetch_add(1, Ordering::SeqCst) + 1;
            max_o.fetch_max(n, Ordering::SeqCst);
            // Whether this connection's request awaits its answer.
            let asked = Arc::new(AtomicBool::new(false));
            let ask = {
                let (asked, waiting, max_w) = (asked.clone(), waiting.clone(), max_w.clone());
                move || {
                    if !asked.swap(true, Ordering::SeqCst) {
                        let n = waiting.fetch_add(1, Ordering::SeqCst) + 1;
                        max_w.fetch_max(n, Ordering::SeqCst);
                    }
                }
            };
            let answer = {
                let (asked, waiting) = (asked.clone(), waiting.clone());
                move || {
                    if asked.swap(false, Ordering::SeqCst) {
                        waiting.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            };
            let open = open.clone();
            let pipe = |mut from: TcpStream, mut to: TcpStream, seen: Box<dyn Fn() + Send>| {
                move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        seen();
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                }
            };
            let up = std::thread::spawn(pipe(
                client.try_clone().unwrap(),
                server.try_clone().unwrap(),
                Box::new(ask),
            ));
            std::thread::spawn(move || {
                pipe(server, client, Box::new(answer.clone()))();
                let _ = up.join();
                // A request the server never answered no longer waits.
                answer();
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Relay { endpoint, max_waiting, max_open }
}

/// The store's own `put_immutable_all` keeps several requests in flight, and never more than
/// its bound.
#[test]
fn put_immutable_all_writes_concurrently() {
    let sw = Seaweed::shared();
    let mut cfg = sw.bucket("immutable-all", true);
    let relay = relay(&sw.endpoint);
    cfg.endpoint = Some(relay.endpoint.clone());
    let s = S3Store::connect(cfg).unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("tile/entries/x{i:03}"), format!("bundle {i}").repeat(i % 7 + 1).into_bytes()))
        .collect();
    let start = Instant::now();
    s.put_immutable_all(&objects).unwrap();
    let took = start.elapsed();
    let max_waiting = relay.max_waiting.load(Ordering::SeqCst);
    let max_open = relay.max_open.load(Ordering::SeqCst);
    assert!(max_waiting >= 4, "at most {max_waiting} requests awaited their answer at once");
    assert!(max_waiting <= graven_s3::MAX_IN_FLIGHT, "{max_waiting} requests awaited their answer at once");
    for (k, v) in &objects {
        assert_eq!(&s.get(k, 1000).unwrap().unwrap().bytes, v, "{k}");
    }
    // What it does with objects already there (the same bytes, other bytes) is in the
    // conformance suite (`put_immutable_all_is_create_only_and_idempotent`).
    eprintln!(
        "300 immutable puts in {took:?}, {max_waiting} requests in flight and {max_open} connections at most"
    );
}

fn lock_check(mode: RetentionMode) {
    let sw = Seaweed::shared();
    let mut cfg = sw.bucket(&format!("lock-{mode:?}"), true);
    cfg.retention = Some(Retention { mode, period: Duration::from_secs(24 * 3600) });
    let s = S3Store::connect(cfg.clone()).unwrap();
    let report = s.check_bucket().unwrap();
    assert_eq!(report.versioning, Versioning::Enabled);
    assert!(report.object_lock);
    assert_eq!(report.require(true), Ok(()));

    let before = std::time::SystemTime::now();
    put_immutable(&s, "tile/0/000", b"locked bytes").unwrap();
    let (c, b, k) = (s.client().clone(), cfg.bucket.clone(), cfg.full_key("tile/0/000"));
    let out = s
        .run(async move {
            let head = c.head_object().bucket(&b).key(&k).send().await.unwrap();
            let version = head.version_id().unwrap().to_owned();
            let retention =
                c.get_object_retention().bucket(&b).key(&k).version_id(&version).send().await.unwrap();
            let retention = retention.retention().unwrap().clone();
            // Deleting the version itself is refused.
            let delete_version = c.delete_object().bucket(&b).key(&k).version_id(&version).send().await;
            // A plain delete only adds a delete marker.
            let plain = c.delete_object().bucket(&b).key(&k).send().await.unwrap();
            let old = c.get_object().bucket(&b).key(&k).version_id(&version).send().await.unwrap();
            let old = old.body.collect().await.unwrap().into_bytes().to_vec();
            (retention, delete_version.map_err(|e| e.code().map(str::to_owned)), plain.delete_marker(), old)
        })
        .unwrap();
    let (retention, delete_version, marker, old) = out;
    let expected_mode = match mode {
        RetentionMode::Compliance => ObjectLockRetentionMode::Compliance,
        RetentionMode::Governance => ObjectLockRetentionMode::Governance,
    };
    assert_eq!(retention.mode(), Some(&expected_mode));
    let until = std::time::SystemTime::try_from(*retention.retain_until_date().unwrap()).unwrap();
    let period = until.duration_since(before).unwrap();
    assert!(
        period > Duration::from_secs(24 * 3600 - 60) && period < Duration::from_secs(24 * 3600 + 60),
        "{period:?}"
    );
    assert!(delete_version.is_err(), "a locked version was deleted");
    assert_eq!(marker, Some(true));
    assert_eq!(old, b"locked bytes");
    // The current version is the delete marker: the store sees no object, and a create-only
    // write succeeds as a new version.
    assert_eq!(s.get("tile/0/000", 100).unwrap(), None);
    s.put("tile/0/000", b"new bytes", Cond::IfAbsent, true).unwrap();
    assert_eq!(s.get("tile/0/000", 100).unwrap().unwrap().bytes, b"new bytes");
}

#[test]
fn governance_retention_blocks_version_deletes() {
    lock_check(RetentionMode::Governance);
}

#[test]
fn compliance_retention_blocks_version_deletes() {
    lock_check(RetentionMode::Compliance);
}

#[test]
fn check_bucket_reports_lock_and_versioning() {
    let sw = Seaweed::shared();
    let plain = S3Store::connect(sw.bucket("check-plain", false)).unwrap();
    let r = plain.check_bucket().unwrap();
    assert_eq!((r.versioning, r.object_lock), (Versioning::Enabled, false));
    assert_eq!(r.require(false), Ok(()));
    let err = r.require(true).unwrap_err();
    assert!(matches!(err, BucketProblem::NoObjectLock { .. }));
    assert!(err.to_string().contains("--allow-no-object-lock"), "{err}");

    assert_eq!(r.default_retention, None);

    let locked = S3Store::connect(sw.bucket("check-locked", true)).unwrap();
    let r = locked.check_bucket().unwrap();
    assert_eq!((r.versioning, r.object_lock), (Versioning::Enabled, true));
    assert_eq!(r.default_retention, None, "a bucket with Object Lock and no rule");

    let missing = S3Store::connect(sw.config("gt-no-such-bucket")).unwrap();
    assert!(matches!(missing.check_bucket(), Err(S3Error::NoSuchBucket { .. })));
    assert_eq!(missing.get("x", 10).map_err(|e| matches!(e, StoreError::Io { .. })), Err(true));
}

#[test]
fn create_bucket_is_idempotent() {
    let sw = Seaweed::shared();
    let cfg = sw.bucket("create-twice", true);
    let s = S3Store::connect(cfg).unwrap();
    s.create_bucket(true).unwrap();
    s.create_bucket(false).unwrap();
    // An existing bucket without Object Lock does not satisfy a request for one.
    let plain = S3Store::connect(sw.bucket("create-plain", false)).unwrap();
    plain.create_bucket(false).unwrap();
    assert!(matches!(plain.create_bucket(true), Err(S3Error::Bucket(BucketProblem::NoObjectLock { .. }))));
}

#[test]
fn retained_writes_need_a_locked_bucket() {
    let sw = Seaweed::shared();
    let mut cfg = sw.bucket("retain-unlocked", false);
    cfg.retention = Some(Retention { mode: RetentionMode::Governance, period: Duration::from_secs(60) });
    let s = S3Store::connect(cfg).unwrap();
    let err = s.put("x", b"y", Cond::IfAbsent, true).unwrap_err();
    let StoreError::Io { op: "writing", key, msg } = err else { panic!("{err:?}") };
    assert_eq!(key, "x");
    assert!(msg.contains("400") && msg.contains("InvalidRequest"), "{msg}");
    // Unretained writes still work.
    s.put("x", b"y", Cond::IfAbsent, false).unwrap();
}

#[test]
fn an_unreachable_endpoint_is_an_error_not_a_hang() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = Seaweed::shared().config("gt-nowhere");
    cfg.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let s = S3Store::connect(cfg).unwrap();
    let start = Instant::now();
    let err = s.get("checkpoint", 10).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(40));
    let StoreError::Io { op: "reading", msg, .. } = err else { panic!("{err:?}") };
    assert!(msg.contains("could not reach S3"), "{msg}");
    assert!(matches!(s.put("checkpoint", b"x", Cond::Any, false), Err(StoreError::Io { op: "writing", .. })));
}

#[test]
fn connect_refuses_half_a_key_pair() {
    let mut cfg = Seaweed::shared().config("gt-anything");
    cfg.secret_access_key = None;
    assert!(matches!(S3Store::connect(cfg), Err(S3Error::HalfKeyPair)));
}

#[test]
fn works_when_called_from_async_code() {
    let cfg: S3Config = Seaweed::shared().bucket("from-async", false);
    for flavor in ["current_thread", "multi_thread"] {
        let rt = match flavor {
            "current_thread" => tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            _ => tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap(),
        };
        let cfg = cfg.clone();
        rt.block_on(async move {
            // Built, used and dropped on a runtime thread.
            let s = S3Store::connect(cfg).unwrap();
            let key = format!("k-{flavor}");
            let etag = s.put(&key, b"v", Cond::IfAbsent, false).unwrap();
            assert_eq!(s.get(&key, 1).unwrap().unwrap().etag, etag);
            let task = tokio::spawn(async move {
                s.put(&key, b"w", Cond::IfMatch(&etag), false).unwrap();
                s
            });
            let s = task.await.unwrap();
            drop(s);
        });
    }
}

#[tokio::test]
async fn works_in_a_tokio_test() {
    let s = store("tokio-test", false);
    s.put("a", b"b", Cond::Any, false).unwrap();
    assert_eq!(s.get("a", 1).unwrap().unwrap().bytes, b"b");
}

/// A bucket's default retention rule, in days or years, is what `check_bucket` reports, and a
/// retained write with no retention of its own gets it from S3.
#[test]
fn the_bucket_default_retention_is_reported_and_applied() {
    let sw = Seaweed::shared();
    for rule in [
        DefaultRetention { mode: RetentionMode::Compliance, period: RetentionPeriod::Days(2) },
        DefaultRetention { mode: RetentionMode::Governance, period: RetentionPeriod::Years(1) },
    ] {
        let cfg = sw.bucket_with_default_retention(&format!("default-{:?}", rule.period), rule);
        assert_eq!(cfg.retention, None);
        let s = S3Store::connect(cfg.clone()).unwrap();
        let r = s.check_bucket().unwrap();
        assert_eq!((r.object_lock, r.default_retention), (true, Some(rule)));

        let before = std::time::SystemTime::now();
        put_immutable(&s, "tile/0/000", b"locked by the bucket").unwrap();
        let (c, b, k) = (s.client().clone(), cfg.bucket.clone(), cfg.full_key("tile/0/000"));
        let retention = s
            .run(async move {
                let r = c.get_object_retention().bucket(&b).key(&k).send().await.unwrap();
                r.retention().unwrap().clone()
            })
            .unwrap();
        let expected_mode = match rule.mode {
            RetentionMode::Compliance => ObjectLockRetentionMode::Compliance,
            RetentionMode::Governance => ObjectLockRetentionMode::Governance,
        };
        assert_eq!(retention.mode(), Some(&expected_mode), "{rule}");
        let until = std::time::SystemTime::try_from(*retention.retain_until_date().unwrap()).unwrap();
        let days = until.duration_since(before).unwrap().as_secs_f64() / 86_400.0;
        let (lo, hi) = match rule.period {
            RetentionPeriod::Days(d) => (f64::from(d) - 0.01, f64::from(d) + 0.01),
            RetentionPeriod::Years(y) => (365.0 * f64::from(y) - 0.01, 366.0 * f64::from(y) + 0.01),
        };
        assert!(days > lo && days < hi, "{rule}: locked for {days} days");
    }
}

fn key() -> SignerKey {
    SignerKey::from_seed("test.example/log", [42; 32]).unwrap()
}

fn entries(range: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    range.map(|i| format!("entry-{i}").into_bytes()).collect()
}

fn connect(cfg: &S3Config) -> Arc<S3Store> {
    Arc::new(S3Store::connect(cfg.clone()).unwrap())
}

fn verify(store: Arc<dyn ObjectStore>) -> Result<u64, VerifyError> {
    let mut f = StoreFetch::new(store);
    verify_log(&mut f, &key().verifier(), None, |_, _| {}).map(|r| r.size.0)
}

/// The versions of one key: (version id, is a delete marker, is the current version).
fn versions(s: &S3Store, key: &str) -> Vec<(String, bool, bool)> {
    let cfg = s.config().clone();
    let full = cfg.full_key(key);
    let c = s.client().clone();
    s.run(async move {
        let out = c.list_object_versions().bucket(&cfg.bucket).prefix(&full).send().await.unwrap();
        let mut v = Vec::new();
        for o in out.versions() {
            if o.key() == Some(full.as_str()) {
                v.push((o.version_id().unwrap().to_owned(), false, o.is_latest() == Some(true)));
            }
        }
        for m in out.delete_markers() {
            if m.key() == Some(full.as_str()) {
                v.push((m.version_id().unwrap().to_owned(), true, m.is_latest() == Some(true)));
            }
        }
        v
    })
    .unwrap()
}

/// A tile overwritten with a plain PutObject (a new current version), and a bundle deleted (a
/// delete marker): the verifier names each, the next writer refuses the damaged right edge,
/// and the retained original versions are intact and restore the log.
#[test]
fn tampering_is_detected_and_the_retained_versions_restore_the_log() {
    let start = Instant::now();
    let mut cfg = Seaweed::shared().bucket("log-tamper", true);
    cfg.prefix = "tamper".into();
    let store = connect(&cfg);
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(0..600)).unwrap();
    ObjectLog::open(store.clone(), key()).unwrap().append(&entries(600..610)).unwrap();
    assert_eq!(verify(store.clone()).unwrap(), 610);
    // The right edge of size 610 is read from tile/1/000.p/2 (the level-1 hashes of the two
    // full level-0 tiles) and tile/0/002.p/98; tile/entries/001 is the second full bundle.
    let (overwritten, deleted) = ("tile/1/000.p/2", "tile/entries/001");
    let original: HashMap<&str, Vec<u8>> = [overwritten, deleted]
        .into_iter()
        .map(|k| (k, store.get(k, 1 << 20).unwrap().unwrap().bytes))
        .collect();
    assert_eq!(original[overwritten].len(), 64);

    let raw = |op: &'static str, k: &str, version: Option<String>| {
        let (c, b, full) = (store.client().clone(), cfg.bucket.clone(), cfg.full_key(k));
        store
            .run(async move {
                match op {
                    "put" => {
                        let body = aws_sdk_s3::primitives::ByteStream::from(vec![0u8; 64]);
                        c.put_object()
                            .bucket(&b)
                            .key(&full)
                            .body(body)
                            .send()
                            .await
                            .map(|_| Vec::new())
                            .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
                    }
                    "delete" => c
                        .delete_object()
                        .bucket(&b)
                        .key(&full)
                        .send()
                        .await
                        .map(|_| Vec::new())
                        .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e))),
                    "get" => {
                        let o = c
                            .get_object()
                            .bucket(&b)
                            .key(&full)
                            .set_version_id(version)
                            .send()
                            .await
                            .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
                        Ok(o.body.collect().await.unwrap().into_bytes().to_vec())
                    }
                    "retention" => {
                        let r = c
                            .get_object_retention()
                            .bucket(&b)
                            .key(&full)
                            .set_version_id(version)
                            .send()
                            .await
                            .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
                        Ok(format!("{:?}", r.retention().and_then(|r| r.mode())).into_bytes())
                    }
                    "restore" => {
                        let source = format!("{b}/{full}?versionId={}", version.unwrap());
                        c.copy_object()
                            .bucket(&b)
                            .key(&full)
                            .copy_source(source)
                            .send()
                            .await
                            .map(|_| Vec::new())
                            .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
                    }
                    _ => unreachable!(),
                }
            })
            .unwrap()
    };

    // 1. A committed tile replaced: a new current version with other bytes.
    raw("put", overwritten, None).unwrap();
    assert_eq!(store.get(overwritten, 100).unwrap().unwrap().bytes, vec![0u8; 64]);
    let e = verify(store.clone()).unwrap_err();
    assert!(e.to_string().contains(overwritten), "{e}");
    let e = ObjectLog::open(store.clone(), key()).unwrap_err();
    assert!(matches!(e, LogError::RootMismatch | LogError::Tiles(_)), "{e}");
    let e = read_published(store.as_ref(), &key().verifier()).unwrap_err();
    assert!(matches!(e, LogError::RootMismatch | LogError::Tiles(_)), "{e}");

    // 2. A committed bundle deleted: a delete marker.
    raw("delete", deleted, None).unwrap();
    assert_eq!(store.get(deleted, 1 << 20).unwrap(), None);
    let e = verify(store.clone()).unwrap_err();
    // The first damage the verifier meets is named; restore the tile first to see the bundle.
    assert!(e.to_string().contains(overwritten) || e.to_string().contains(deleted), "{e}");

    // The originals are retained versions, byte for byte what Graven wrote, and restore.
    for (k, marker_expected) in [(overwritten, false), (deleted, true)] {
        let v = versions(&store, k);
        assert_eq!(v.len(), 2, "{k}: {v:?}");
        // One current version (the replacement, or the delete marker) and the original.
        let current: Vec<_> = v.iter().filter(|(_, _, latest)| *latest).collect();
        assert_eq!(current.len(), 1, "{k}: {v:?}");
        assert_eq!(current[0].1, marker_expected, "{k}: {v:?}");
        let (orig, _, _) = v.iter().find(|(_, marker, latest)| !marker && !latest).unwrap();
        assert_eq!(raw("get", k, Some(orig.clone())).unwrap(), original[k], "{k}");
        let mode = String::from_utf8(raw("retention", k, Some(orig.clone())).unwrap()).unwrap();
        assert!(mode.contains("Governance"), "{k}: {mode}");
        if k == overwritten {
            // With the tile restored, the deleted bundle is what the verifier names.
            raw("restore", k, Some(orig.clone())).unwrap();
            let e = verify(store.clone()).unwrap_err();
            assert!(
                matches!(&e, VerifyError::Missing { path, .. } if path == deleted)
                    || e.to_string().contains(deleted),
                "{e}"
            );
            // The right edge is whole again: a writer opens (the bundle is not on it).
            assert_eq!(ObjectLog::open(store.clone(), key()).unwrap().size(), TreeSize(610));
        } else {
            raw("restore", k, Some(orig.clone())).unwrap();
        }
        assert_eq!(store.get(k, 1 << 20).unwrap().unwrap().bytes, original[k], "{k}");
    }
    assert_eq!(verify(store.clone()).unwrap(), 610);
    let mut log = ObjectLog::open(store.clone(), key()).unwrap();
    log.append(&entries(610..700)).unwrap();
    assert_eq!(verify(store.clone()).unwrap(), 700);
    eprintln!("tamper test: {:?}", start.elapsed());
}
