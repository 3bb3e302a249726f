//! The server's hand-written answers read as the `graven-api` types that clients use: the
//! router in process, over a real engine, registry and (empty) search index.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use graven_auth::registry::{Registry, TOKEN_FILE};
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
    token: String,
}

async fn harness() -> Harness {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_path_buf();
    let log_dir = data.join("log");
    let key = SignerKey::from_seed("answers.test/log", [3; 32]).unwrap();
    let vkey = key.verifier();
    let log = LocalLog::open(&log_dir, key).unwrap();
    let engine = Engine::start(Box::new(log), LogReader::new(&log_dir), EngineConfig::default()).unwrap();
    let mut entries = vec![Entry::raw(b"\x00not json".to_vec())];
    entries.extend((0..3).map(|i| Entry::raw(format!(r#"{{"action":"a{i}"}}"#).into_bytes())));
    engine.submit(entries).await.unwrap();
    let registry = Registry::open(&data).unwrap();
    let plan = registry.plan_bootstrap(&data, 0).unwrap();
    registry.apply_bootstrap(plan, &data).unwrap();
    let token = std::fs::read_to_string(data.join(TOKEN_FILE)).unwrap().trim().to_owned();
    let state = Arc::new(AppState {
        engine: engine.clone(),
        reader: Arc::new(Mutex::new(LogReader::new(&log_dir))),
        registry: Arc::new(registry),
        public_read_path: false,
        denied_limiter: graven_auth::ratelimit::Limiter::new(Default::default()),
        admin_lock: tokio::sync::Mutex::new(()),
        metrics: graven_server::metrics::Metrics::new(engine.clone(), Arc::new(AtomicU64::new(0)), false),
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
    Harness { _tmp: tmp, engine, router: app(state), token }
}

impl Harness {
    async fn get(&self, uri: &str, auth: bool) -> (StatusCode, Vec<u8>) {
        let mut req = Request::get(uri);
        if auth {
            req = req.header("authorization", format!("Bearer {}", self.token));
        }
        let resp = tower_service::Service::call(&mut self.router.clone(), req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        (resp.status(), resp.into_body().collect().await.unwrap().to_bytes().to_vec())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_read_as_the_wire_types() {
    let h = harness().await;
    let size = h.engine.committed().size;

    let (status, body) = h.get("/v1/log", true).await;
    assert_eq!(status, StatusCode::OK);
    let info: graven_api::LogInfo = serde_json::from_slice(&body).unwrap();
    assert_eq!((info.tree_size, info.writer, info.origin.as_str()), (size, true, "answers.test/log"));

    for (index, json) in [(1u64, true), (0, false)] {
        let (status, body) = h.get(&format!("/v1/events/{index}"), true).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let e: graven_api::StoredEvent<serde_json::Value> = serde_json::from_slice(&body).unwrap();
        assert_eq!((e.index, e.tree_size), (index, size));
        assert_eq!(e.event.is_some(), json);
        assert_eq!(e.entry_base64.is_some(), !json);
        // The hand-written answer is what the type writes, key for key.
        let again: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(again, serde_json::from_slice::<serde_json::Value>(&body).unwrap());
    }

    let (status, body) = h.get("/v1/proofs/inclusion?index=2", true).await;
    assert_eq!(status, StatusCode::OK);
    let p: graven_api::InclusionProof = serde_json::from_slice(&body).unwrap();
    assert_eq!((p.index, p.tree_size), (2, size));
    let (status, body) = h.get("/v1/proofs/consistency?from=1", true).await;
    assert_eq!(status, StatusCode::OK);
    let c: graven_api::ConsistencyProof = serde_json::from_slice(&body).unwrap();
    assert_eq!((c.from, c.to), (1, size));

    let (status, body) = h.get("/v1/events?limit=10", true).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let page: graven_api::SearchPage<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    assert_eq!(page.tree_size, size);
    let again: serde_json::Value = serde_json::to_value(&page).unwrap();
    assert_eq!(again, serde_json::from_slice::<serde_json::Value>(&body).unwrap());

    let (status, body) = h.get("/v1/identities/admin", true).await;
    assert_eq!(status, StatusCode::OK);
    let who: graven_api::IdentityView = serde_json::from_slice(&body).unwrap();
    assert_eq!((who.id.as_str(), who.role.as_str(), who.keys.len()), ("admin", "admin", 1));

    // A refusal is a problem document.
    let (status, body) = h.get("/v1/events/1", false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let p: graven_api::Problem = serde_json::from_slice(&body).unwrap();
    assert_eq!((p.status, p.slug()), (401, "unauthorized"));
    h.engine.shutdown();
}
