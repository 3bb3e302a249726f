//! The C2SP tlog-tiles read path through the real router, in process: one name per file.
//!
//! A static tile host serves each file under exactly one path; so must `GET /tile/...`. A
//! percent-encoded byte (`%2F` for the slash, `%30` for a digit, `%2E` for the dot), a doubled
//! slash, a dot segment or a backslash is another spelling of a path, and is refused with a
//! problem document instead of being decoded into the canonical one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode, Uri};
use graven_core::note::SignerKey;
use graven_engine::engine::{Engine, EngineConfig, Entry};
use graven_engine::reader::LogReader;
use graven_server::http::{AppState, app};
use graven_tlog::LocalLog;
use http_body_util::BodyExt;

struct Harness {
    _tmp: tempfile::TempDir,
    engine: Engine,
    router: axum::Router,
}

/// A real engine on a real log directory with `n` entries, and the router over it with the
/// read path public (so no credential is involved).
async fn harness(n: usize) -> Harness {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let log_dir = data.join("log");
    let key = SignerKey::from_seed("tile-route.test/log", [9; 32]).unwrap();
    let vkey = key.verifier();
    let log = LocalLog::open(&log_dir, key).unwrap();
    let engine = Engine::start(Box::new(log), LogReader::new(&log_dir), EngineConfig::default()).unwrap();
    engine.submit((0..n).map(|i| Entry::raw(format!("entry {i}").into_bytes())).collect()).await.unwrap();
    let registry = graven_auth::registry::Registry::open(&data).unwrap();
    let indexed = Arc::new(AtomicU64::new(0));
    let state = Arc::new(AppState {
        engine: engine.clone(),
        reader: Arc::new(Mutex::new(LogReader::new(&log_dir))),
        registry: Arc::new(registry),
        public_read_path: true,
        denied_limiter: graven_auth::ratelimit::Limiter::new(Default::default()),
        admin_lock: tokio::sync::Mutex::new(()),
        metrics: graven_server::metrics::Metrics::new(engine.clone(), indexed, false),
        origin: vkey.name().to_owned(),
        verifier_key: vkey.to_string(),
        max_body_bytes: 1 << 20,
        body_timeout: std::time::Duration::from_secs(5),
        index: Arc::new(graven_index::Index::open(&data.join("index.redb")).unwrap()),
        oidc: None,
        spiffe_ids: Arc::new(Default::default()),
        http_sig: graven_auth::sigauth::SigAuth::new(60),
        witnessing: None,
        witness_wait: std::time::Duration::ZERO,
        stamps: graven_tlog::StampStore::Dir { fs: Arc::new(graven_tlog::RealFs), dir: log_dir.clone() },
        clock: graven_clock::system(),
    });
    Harness { _tmp: tmp, engine, router: app(state) }
}

impl Harness {
    async fn get(&self, uri: Uri) -> (StatusCode, String, Vec<u8>) {
        let req = Request::get(uri).body(Body::empty()).unwrap();
        let resp = tower_service::Service::call(&mut self.router.clone(), req).await.unwrap();
        let status = resp.status();
        let ctype =
            resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (status, ctype, resp.into_body().collect().await.unwrap().to_bytes().to_vec())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tile_has_one_name_over_http() {
    let h = harness(3).await;
    let (status, _, hashes) = h.get(Uri::from_static("/tile/0/000.p/3")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(hashes.len(), 3 * 32, "the canonical name serves the partial hash tile");
    let (status, _, bundle) = h.get(Uri::from_static("/tile/entries/000.p/3")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!bundle.is_empty());

    let other_names = [
        "/tile/0%2F000.p/3",
        "/tile/0%2f000.p/3",
        "/tile/entries%2F000.p/3",
        "/tile/entries%2f000.p%2f3",
        "/tile/0/000%2Ep/3",
        "/tile/0/000%2ep/3",
        "/tile/%30/000.p/3",
        "/tile/0/%30%30%30.p/3",
        "/tile/0/000.p/%33",
        "/tile/%65ntries/000.p/3",
        "/tile/0//000.p/3",
        "/tile//0/000.p/3",
        "/tile/0/000.p//3",
        "/tile/0/000.p/3/",
        "/tile/0/./000.p/3",
        "/tile/0/x/../000.p/3",
        "/tile/0/000.p/3%00",
        "/tile/0%5C000.p/3",
        "/tile/0%5c000.p/3",
        "/tile/0\\000.p/3",
        "/tile/0%252F000.p/3",
    ];
    for name in other_names {
        // A client library may refuse to even build some of these; those cannot be sent.
        let Ok(uri) = Uri::try_from(name) else { continue };
        let (status, ctype, body) = h.get(uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name} was served: {}", String::from_utf8_lossy(&body));
        assert_eq!(ctype, "application/problem+json", "{name}");
        let p: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(p["status"], 404, "{p}");
        assert!(p["detail"].as_str().unwrap().contains("not a tile path"), "{name}: {p}");
    }
    // A percent-encoded name says why it is refused.
    let (_, _, body) = h.get(Uri::from_static("/tile/0%2F000.p/3")).await;
    let p: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(p["detail"].as_str().unwrap().contains("percent-encoded"), "{p}");
    h.engine.shutdown();
}
