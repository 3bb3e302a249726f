//! The HTTP interface in process (`fn app(state) -> Router`): status codes, bodies and content
//! types exactly as C2SP `tlog-witness` says, the body limit, the monitoring path and the
//! prefix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Log, body, cosigner, trusted};
use graven_witness::http::{AppState, app};
use graven_witness::machine::origin_hash;
use graven_witness::witness::Witness;
use http_body_util::BodyExt;

struct Served {
    router: axum::Router,
    _tmp: tempfile::TempDir,
}

fn clock() -> u64 {
    1_700_000_000
}

fn serve(logs: &[&Log], prefix: &str) -> Served {
    let tmp = tempfile::tempdir().unwrap();
    let witness =
        Witness::open(Arc::new(graven_tlog::RealFs), tmp.path(), cosigner(), trusted(logs)).unwrap();
    let state = Arc::new(AppState {
        witness: Arc::new(witness),
        max_body_bytes: 64 << 10,
        body_timeout: Duration::from_secs(5),
        clock,
    });
    Served { router: app(state, prefix), _tmp: tmp }
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Served {
    async fn call(&self, method: &str, path: &str, body: Vec<u8>) -> Answer {
        let req = Request::builder().method(method).uri(path).body(Body::from(body)).unwrap();
        let resp = tower_service::Service::call(&mut self.router.clone(), req).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer { status, content_type, body: String::from_utf8(bytes.to_vec()).unwrap() }
    }

    async fn add(&self, body: Vec<u8>) -> Answer {
        self.call("POST", "/add-checkpoint", body).await
    }
}

#[tokio::test]
async fn add_checkpoint_answers_with_the_spec_s_statuses_bodies_and_types() {
    let mut log = Log::new("example.com/log", 1, 10);
    let other = Log::new("example.com/other", 2, 3);
    let s = serve(&[&log], "");

    // 200: one cosignature line, starting with an em dash, ending in a newline.
    let a = s.add(log.body(0, 10)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.starts_with("\u{2014} witness.example/w1 ") && a.body.ends_with('\n'), "{:?}", a.body);
    assert_eq!(a.body.lines().count(), 1);

    // 409: the size held, a newline, text/x.tlog.size.
    let a = s.add(log.body(0, 10)).await;
    assert_eq!(
        (a.status, a.content_type.as_str(), a.body.as_str()),
        (StatusCode::CONFLICT, "text/x.tlog.size", "10\n")
    );

    // 400, 403, 404, 422.
    assert_eq!(s.add(b"old 1\n".to_vec()).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.add(body(10, &[], &log.checkpoint(5))).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.add(other.body(0, 3)).await.status, StatusCode::NOT_FOUND);
    let impostor = Log {
        key: graven_core::note::SignerKey::from_seed("example.com/log", [9; 32]).unwrap(),
        ..log.clone()
    };
    assert_eq!(s.add(impostor.body(10, 10)).await.status, StatusCode::FORBIDDEN);
    log.grow_to(20, "honest");
    assert_eq!(
        s.add(body(10, &log.proof(5, 20), &log.checkpoint(20))).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let a = s.add(log.body(10, 20)).await;
    assert_eq!(a.status, StatusCode::OK);

    // Only POST.
    assert_eq!(s.call("GET", "/add-checkpoint", vec![]).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_nothing_changes() {
    let log = Log::new("example.com/log", 1, 10);
    let s = serve(&[&log], "");
    let mut big = log.body(0, 10);
    big.extend(std::iter::repeat_n(b'x', 70 << 10));
    assert_eq!(s.add(big).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s.add(log.body(0, 10)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_monitoring_path_serves_the_cosigned_checkpoint_or_404() {
    let log = Log::new("example.com/log", 1, 10);
    let s = serve(&[&log], "/w");
    let path = format!("/w/{}/checkpoint", origin_hash(log.origin()));
    assert_eq!(s.call("GET", &path, vec![]).await.status, StatusCode::NOT_FOUND, "never cosigned");
    let lines = s.call("POST", "/w/add-checkpoint", log.body(0, 10)).await.body;
    let a = s.call("GET", &path, vec![]).await;
    assert_eq!(a.status, StatusCode::OK);
    // The checkpoint, the log's signature the witness verified, the cosignature it returned.
    assert_eq!(a.body, format!("{}{lines}", String::from_utf8(log.checkpoint(10)).unwrap()));
    let vk = cosigner().verifier();
    let parsed = graven_core::note::Note::parse(a.body.as_bytes()).unwrap();
    assert!(matches!(
        graven_core::cosignature::check(&parsed, &[vk])[0],
        graven_core::cosignature::Cosigned::Valid(_)
    ));
    graven_core::checkpoint::VerifiedCheckpoint::open(a.body.as_bytes(), &log.vkey(), log.origin()).unwrap();
    // Not under another prefix, not by an uppercase or unknown hash.
    assert_eq!(s.call("POST", "/add-checkpoint", log.body(10, 10)).await.status, StatusCode::NOT_FOUND);
    let upper = format!("/w/{}/checkpoint", origin_hash(log.origin()).to_uppercase());
    assert_eq!(s.call("GET", &upper, vec![]).await.status, StatusCode::NOT_FOUND);
    let other = format!("/w/{}/checkpoint", origin_hash("example.com/other"));
    assert_eq!(s.call("GET", &other, vec![]).await.status, StatusCode::NOT_FOUND);
}
