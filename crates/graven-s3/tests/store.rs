#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The S3 store against a real SeaweedFS (see `graven_testkit::s3`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::ObjectLockRetentionMode;
use graven_s3::{
    BucketProblem, DefaultRetention, Retention, RetentionMode, RetentionPeriod, S3Config, S3Error, S3Store,
    Versioning,
};
use graven_testkit::s3::Seaweed;
use graven_tlog::{Cond, Object, ObjectStore, StoreError, put_immutable};

fn store(hint: &str, object_lock: bool) -> S3Store {
    S3Store::connect(Seaweed::shared().bucket(hint, object_lock)).unwrap()
}

#[test]
fn get_missing_is_none() {
    let s = store("get-missing", false);
    assert_eq!(s.get("checkpoint", 100).unwrap(), None);
    assert_eq!(s.get("tile/0/000", 100).unwrap(), None);
}

#[test]
fn put_get_round_trip_under_the_prefix() {
    let mut cfg = Seaweed::shared().bucket("round-trip", false);
    cfg.prefix = "logs/one".into();
    let s = S3Store::connect(cfg.clone()).unwrap();
    assert_eq!(s.location(), format!("s3://{}/logs/one", cfg.bucket));
    let etag = s.put("tile/0/000", b"hashes", Cond::Any, false).unwrap();
    assert!(!etag.is_empty());
    assert_eq!(
        s.get("tile/0/000", 6).unwrap(),
        Some(Object { bytes: b"hashes".to_vec(), etag: etag.clone() })
    );
    // The object is at <prefix>/<key>, and nowhere else.
    let (c, b) = (s.client().clone(), cfg.bucket.clone());
    let listed = s
        .run(async move { c.list_objects_v2().bucket(b).send().await.unwrap() })
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect::<Vec<_>>();
    assert_eq!(listed, ["logs/one/tile/0/000"]);
    // Replacing gives a new ETag; the empty object works too.
    let etag2 = s.put("tile/0/000", b"", Cond::Any, false).unwrap();
    assert_ne!(etag, etag2);
    assert_eq!(s.get("tile/0/000", 0).unwrap(), Some(Object { bytes: Vec::new(), etag: etag2 }));
}

#[test]
fn objects_over_the_limit_are_refused() {
    let s = store("too-large", false);
    s.put("bundle", &[7u8; 1000], Cond::Any, false).unwrap();
    assert_eq!(s.get("bundle", 999), Err(StoreError::TooLarge { key: "bundle".into(), limit: 999 }));
    assert_eq!(s.get("bundle", 0), Err(StoreError::TooLarge { key: "bundle".into(), limit: 0 }));
    assert_eq!(s.get("bundle", 1000).unwrap().unwrap().bytes.len(), 1000);
    // A large object is refused from its announced length, before its body is read.
    s.put("big", &vec![1u8; 8 << 20], Cond::Any, false).unwrap();
    assert!(matches!(s.get("big", 1024), Err(StoreError::TooLarge { .. })));
}

#[test]
fn if_absent_creates_once() {
    let s = store("if-absent", false);
    s.put("checkpoint", b"one", Cond::IfAbsent, false).unwrap();
    assert_eq!(
        s.put("checkpoint", b"two", Cond::IfAbsent, false),
        Err(StoreError::Precondition { key: "checkpoint".into() })
    );
    assert_eq!(s.get("checkpoint", 10).unwrap().unwrap().bytes, b"one");
}

#[test]
fn if_match_needs_the_current_etag() {
    let s = store("if-match", false);
    let missing = s.put("head", b"x", Cond::IfMatch("\"0123456789abcdef0123456789abcdef\""), false);
    assert_eq!(missing, Err(StoreError::Precondition { key: "head".into() }));
    assert_eq!(s.get("head", 10).unwrap(), None);

    let e1 = s.put("head", b"one", Cond::IfAbsent, false).unwrap();
    let e2 = s.put("head", b"two", Cond::IfMatch(&e1), false).unwrap();
    assert_eq!(
        s.put("head", b"three", Cond::IfMatch(&e1), false),
        Err(StoreError::Precondition { key: "head".into() })
    );
    let e3 = s.put("head", b"three", Cond::IfMatch(&e2), false).unwrap();
    assert_eq!(s.get("head", 10).unwrap(), Some(Object { bytes: b"three".to_vec(), etag: e3 }));
}

/// Runs `writers` racing attempts; returns which ones succeeded. Each must either succeed or
/// fail its condition.
fn race(writers: usize, attempt: impl Fn(usize) -> Result<String, StoreError> + Sync) -> Vec<usize> {
    let barrier = Barrier::new(writers);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|i| {
                let (barrier, attempt) = (&barrier, &attempt);
                scope.spawn(move || {
                    barrier.wait();
                    attempt(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    results
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Ok(_) => Some(i),
            Err(StoreError::Precondition { .. }) => None,
            Err(e) => panic!("writer {i}: {e}"),
        })
        .collect()
}

#[test]
fn racing_if_match_writers_have_one_winner_per_round() {
    let s = store("race-if-match", false);
    let mut etag = s.put("head", b"start", Cond::IfAbsent, false).unwrap();
    // SeaweedFS backs losing conditional writers off by whole seconds, so each round costs a
    // few seconds; 15 rounds of 8 writers is 105 lost races.
    for round in 0..15 {
        let body = |i: usize| format!("round {round} writer {i}").into_bytes();
        let winners = race(8, |i| s.put("head", &body(i), Cond::IfMatch(&etag), false));
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let now = s.get("head", 100).unwrap().unwrap();
        assert_eq!(now.bytes, body(winners[0]), "round {round}");
        etag = now.etag;
    }
}

#[test]
fn racing_if_absent_writers_have_one_winner_per_key() {
    let s = store("race-if-absent", false);
    // SeaweedFS backs losing conditional writers off by whole seconds, so each round costs a
    // few seconds; 15 rounds of 8 writers is 105 lost races.
    for round in 0..15 {
        let key = format!("tile/0/{round:03}");
        let body = |i: usize| format!("round {round} writer {i}").into_bytes();
        let winners = race(8, |i| s.put(&key, &body(i), Cond::IfAbsent, false));
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        assert_eq!(s.get(&key, 100).unwrap().unwrap().bytes, body(winners[0]), "round {round}");
    }
}

#[test]
fn put_immutable_accepts_the_same_bytes_only() {
    let s = store("immutable", true);
    put_immutable(&s, "tile/0/000", b"abc").unwrap();
    put_immutable(&s, "tile/0/000", b"abc").unwrap();
    assert_eq!(
        put_immutable(&s, "tile/0/000", b"abd"),
        Err(StoreError::Conflict { key: "tile/0/000".into() })
    );
    assert_eq!(
        put_immutable(&s, "tile/0/000", b"abcd"),
        Err(StoreError::Conflict { key: "tile/0/000".into() })
    );
    assert_eq!(s.get("tile/0/000", 3).unwrap().unwrap().bytes, b"abc");
}

/// A TCP relay to `target` that counts the most connections open at once.
struct Relay {
    endpoint: String,
    max_open: Arc<AtomicUsize>,
}

fn relay(target: &str) -> Relay {
    let target = target.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (open, max_open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let max = max_open.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&target) else { continue };
            let n = open.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(n, Ordering::SeqCst);
            let open = open.clone();
            let pipe = |mut from: TcpStream, mut to: TcpStream| {
                move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = from.read(&mut buf) {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                }
            };
            let up = std::thread::spawn(pipe(client.try_clone().unwrap(), server.try_clone().unwrap()));
            std::thread::spawn(move || {
                pipe(server, client)();
                let _ = up.join();
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Relay { endpoint, max_open }
}

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
    let max_open = relay.max_open.load(Ordering::SeqCst);
    assert!(max_open >= 4, "at most {max_open} connections were open at once");
    assert!(max_open <= graven_s3::MAX_IN_FLIGHT, "{max_open} connections were open at once");
    for (k, v) in &objects {
        assert_eq!(&s.get(k, 1000).unwrap().unwrap().bytes, v, "{k}");
    }
    // Again: the same bytes are already there, so it succeeds.
    s.put_immutable_all(&objects).unwrap();
    // Different bytes for one key: Conflict.
    let mut altered = objects.clone();
    altered[150].1 = b"other".to_vec();
    assert_eq!(s.put_immutable_all(&altered), Err(StoreError::Conflict { key: objects[150].0.clone() }));
    assert_eq!(s.put_immutable_all(&[]), Ok(()));
    eprintln!("300 immutable puts in {took:?}, {max_open} connections at most");
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
fn request_counts_count() {
    let s = store("counts", false);
    s.put("a", b"1", Cond::Any, false).unwrap();
    s.get("a", 1).unwrap();
    s.get("b", 1).unwrap();
    let counts = s.request_counts();
    assert!(counts.contains(&("get", 2)), "{counts:?}");
    assert!(counts.contains(&("put", 1)), "{counts:?}");
}

#[test]
fn an_unreachable_endpoint_is_an_error_not_a_hang() {
    let mut cfg = Seaweed::shared().config("gt-nowhere");
    cfg.endpoint = Some(format!("http://{}", graven_testkit::net::dead_addr()));
    let s = S3Store::connect(cfg).unwrap();
    let start = Instant::now();
    let err = s.get("checkpoint", 10).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(40));
    let StoreError::Io { op: "reading", msg, .. } = err else { panic!("{err:?}") };
    assert!(msg.contains("could not reach S3"), "{msg}");
    assert!(matches!(s.put("checkpoint", b"x", Cond::Any, false), Err(StoreError::Io { op: "writing", .. })));
}

#[test]
fn connect_needs_credentials() {
    let mut cfg = Seaweed::shared().config("gt-anything");
    cfg.secret_access_key = None;
    assert!(matches!(S3Store::connect(cfg), Err(S3Error::NoCredentials)));
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
