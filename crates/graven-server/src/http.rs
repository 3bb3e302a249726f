//! The HTTP API: `fn app(state) -> Router`. Thin: parse, call the engine or the reader,
//! answer. Every error is an RFC 9457 problem that says what to fix.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::Stream;
use graven_core::hash::{Hash, LeafIndex, TreeSize};
use graven_core::tile::{self, TlogPath};
use serde::Deserialize;

use crate::audit::{self, Refusal};
use crate::auth::{self, Access};
use crate::event::{self, EventError};
use crate::metrics::{HttpLabels, Metrics};
use crate::problem::Problem;
use crate::registry::{Principal, Registry};
use graven_engine::engine::{Engine, Entry, OnceKey, Receipt, SubmitError};
use graven_engine::reader::{LogReader, ReadError};

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub engine: Engine,
    pub reader: Arc<Mutex<LogReader>>,
    pub registry: Arc<Registry>,
    /// Whether `/checkpoint`, `/tile/...` and `/v1/log` are open to anyone.
    pub public_read_path: bool,
    /// Bounds the `denied` records appended to the log.
    pub denied_limiter: crate::ratelimit::Limiter,
    /// Serialises identity and key changes (read, audit event, durable write).
    pub admin_lock: tokio::sync::Mutex<()>,
    pub metrics: Arc<Metrics>,
    pub origin: String,
    pub verifier_key: String,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    pub index: Arc<graven_index::Index>,
    /// OIDC/JWT federation, when configured: bearer tokens that are JWTs go here.
    pub oidc: Option<Arc<crate::oidc::Federation>>,
    /// SPIFFE ID → identity id, for mTLS clients.
    pub spiffe_ids: Arc<std::collections::BTreeMap<String, String>>,
    /// RFC 9421 request signatures: time window and replay cache.
    pub http_sig: crate::sigauth::SigAuth,
}

type St = State<Arc<AppState>>;

/// The client's address, put in each request's extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::IpAddr);

/// Every route and method the API serves, and the access it needs. The guard in front of the
/// router refuses any (route, method) not listed here, so a route added without an entry is
/// unreachable rather than unprotected. No entry updates or deletes an event: there is no
/// such operation.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("POST", "/v1/events", Access::Append),
    ("GET", "/v1/events", Access::Read),
    ("GET", "/v1/events/{index}", Access::Read),
    ("GET", "/v1/proofs/inclusion", Access::Read),
    ("GET", "/v1/proofs/consistency", Access::Read),
    ("GET", "/v1/stream", Access::Read),
    ("GET", "/v1/log", Access::ReadPath),
    ("GET", "/checkpoint", Access::ReadPath),
    ("GET", "/tile/{*path}", Access::ReadPath),
    ("GET", "/healthz", Access::Public),
    ("GET", "/readyz", Access::Public),
    ("GET", "/metrics", Access::Public),
    ("GET", "/openapi.json", Access::Public),
    ("POST", "/v1/identities", Access::Admin),
    ("GET", "/v1/identities", Access::Admin),
    ("GET", "/v1/identities/{id}", Access::Admin),
    ("POST", "/v1/identities/{id}/disable", Access::Admin),
    ("POST", "/v1/identities/{id}/enable", Access::Admin),
    ("POST", "/v1/identities/{id}/revoke", Access::Admin),
    ("GET", "/v1/identities/{id}/keys", Access::Admin),
    ("POST", "/v1/identities/{id}/keys", Access::Admin),
    ("POST", "/v1/identities/{id}/keys/rotate", Access::Admin),
    ("POST", "/v1/identities/{id}/keys/{key_id}/revoke", Access::Admin),
    ("GET", "/v1/identities/{id}/public-keys", Access::Admin),
    ("POST", "/v1/identities/{id}/public-keys", Access::Admin),
    ("POST", "/v1/identities/{id}/public-keys/{key_id}/revoke", Access::Admin),
];

/// The `ROUTES` entry for a request, as (`METHOD /route` label, access). HEAD is GET.
fn route_entry(method: &Method, path: &str) -> Option<(&'static str, Access)> {
    let m = if method == Method::HEAD { "GET" } else { method.as_str() };
    ROUTE_LABELS
        .iter()
        .zip(ROUTES)
        .find(|(_, (rm, rp, _))| *rm == m && *rp == path)
        .map(|(l, (_, _, a))| (*l, *a))
}

/// `METHOD /route` for each entry of `ROUTES`, in the same order (metrics and audit labels).
const ROUTE_LABELS: &[&str] = &[
    "POST /v1/events",
    "GET /v1/events",
    "GET /v1/events/{index}",
    "GET /v1/proofs/inclusion",
    "GET /v1/proofs/consistency",
    "GET /v1/stream",
    "GET /v1/log",
    "GET /checkpoint",
    "GET /tile",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /openapi.json",
    "POST /v1/identities",
    "GET /v1/identities",
    "GET /v1/identities/{id}",
    "POST /v1/identities/{id}/disable",
    "POST /v1/identities/{id}/enable",
    "POST /v1/identities/{id}/revoke",
    "GET /v1/identities/{id}/keys",
    "POST /v1/identities/{id}/keys",
    "POST /v1/identities/{id}/keys/rotate",
    "POST /v1/identities/{id}/keys/{key_id}/revoke",
    "GET /v1/identities/{id}/public-keys",
    "POST /v1/identities/{id}/public-keys",
    "POST /v1/identities/{id}/public-keys/{key_id}/revoke",
];

pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Authenticates and authorises every request before its handler runs; a refused request is
/// answered here (401 or 403) and recorded as a `denied` event (rate-limited). The verified
/// [`Principal`] is handed to the handler in the request's extensions.
async fn guard(State(st): St, matched: Option<MatchedPath>, mut req: Request, next: Next) -> Response {
    let path = matched.as_ref().map_or("", |m| m.as_str());
    let Some((route, access)) = route_entry(req.method(), path) else {
        return Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!(
                "{} is not served on {path}; nothing in this API updates or deletes an event; see /openapi.json",
                req.method()
            ),
        )
        .into_response();
    };
    // Every POST writes (an event, or an identity change with its audit event): on a read
    // replica of a shared log it goes to the writer, before any credential is looked at (the
    // writer checks it).
    if req.method() == Method::POST && !st.engine.is_writer() {
        return not_writer(&st, route, &req);
    }
    if access == Access::Public || (access == Access::ReadPath && st.public_read_path) {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    if crate::sigauth::is_signed(req.headers()) {
        let (principal, mut req) = match crate::sigauth::authenticate(&st, req, route, peer).await {
            Ok(ok) => ok,
            Err(resp) => return resp,
        };
        if let Err(resp) = check_role(&st, &principal, access, route, peer).await {
            return resp;
        }
        req.extensions_mut().insert(principal);
        return next.run(req).await;
    }
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    // Without an Authorization header, a verified client certificate (mTLS) is the credential.
    let client_cert = req.extensions().get::<Arc<crate::tls::ClientCert>>().filter(|_| header.is_none());
    let token = match (auth::bearer(header), client_cert) {
        (_, Some(_)) => "",
        (Ok(t), None) => t,
        (Err(e), None) => {
            // A missing header is not recorded: it is how every anonymous probe looks.
            let record = (e != auth::HeaderError::Missing).then_some(Refusal {
                who: None,
                claimed_key: None,
                claimed_identity: None,
                reason: "bad-scheme",
                route,
                attempted_action: None,
                peer,
            });
            return unauthorized(&st, route, record, e.to_string()).await;
        }
    };
    let authenticated = match (client_cert, &st.oidc) {
        (Some(cert), _) => crate::tls::authenticate(cert, &st.spiffe_ids, &st.registry, now_ms()),
        // API keys start with `gvn_` and have no dots; a JWT is three dot-separated parts.
        (None, Some(oidc)) if crate::jwt::looks_like_jwt(token) => {
            oidc.authenticate(token, &st.registry, now_ms()).await
        }
        (None, _) => st.registry.authenticate(token, now_ms()),
    };
    let principal = match authenticated {
        Ok(p) => p,
        Err(d) => {
            let claimed = match &d {
                crate::registry::Denial::Invalid { key_id } => key_id.clone(),
                _ => None,
            };
            let r = Refusal {
                who: d.principal().map(|p| &**p),
                claimed_key: claimed.as_deref(),
                claimed_identity: None,
                reason: d.reason(),
                route,
                attempted_action: None,
                peer,
            };
            return unauthorized(&st, route, Some(r), d.message()).await;
        }
    };
    if let Err(resp) = check_role(&st, &principal, access, route, peer).await {
        return resp;
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// A write sent to a read replica: 307 to the writer (same method and body), or 503 while no
/// writer is known (during a takeover).
fn not_writer(st: &AppState, route: &'static str, req: &Request) -> Response {
    let writer = st.engine.lease().and_then(|l| l.writer_url());
    let Some(base) = writer else {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-writer",
            "This node is a read replica",
            "this node is a read replica of a shared log and no writer is known right now (one is taking over); retry in a second",
        );
        p.retry_after = Some(1);
        return finish(st, route, Err(p));
    };
    let target =
        format!("{}{}", base.trim_end_matches('/'), req.uri().path_and_query().map_or("/", |p| p.as_str()));
    let p = Problem::new(
        StatusCode::TEMPORARY_REDIRECT,
        "not-writer",
        "This node is a read replica",
        format!("writes go to the log's writer at {base}; send this request there (same method and body)"),
    );
    let mut resp = p.into_response();
    if let Ok(v) = HeaderValue::from_str(&target) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    finish(st, route, Ok(resp))
}

/// Answers 401, after recording the refusal when there is one to record.
async fn unauthorized(
    st: &AppState,
    route: &'static str,
    record: Option<Refusal<'_>>,
    detail: String,
) -> Response {
    if let Some(r) = record {
        audit::denied(st, r).await;
    }
    let p = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required", detail);
    finish(st, route, Err(p))
}

/// Refuses (403, and a denied record) a principal whose role does not give `access`.
async fn check_role(
    st: &AppState,
    principal: &Principal,
    access: Access,
    route: &'static str,
    peer: Option<std::net::IpAddr>,
) -> Result<(), Response> {
    if !access.permits(principal.role) {
        let r = Refusal {
            who: Some(principal),
            claimed_key: None,
            claimed_identity: None,
            reason: "role",
            route,
            attempted_action: None,
            peer,
        };
        audit::denied(st, r).await;
        let p = Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed for this role",
            format!(
                "identity {} has the {} role; {route} needs {}",
                principal.identity,
                principal.role.as_str(),
                access.needs()
            ),
        );
        return Err(finish(st, route, Err(p)));
    }
    Ok(())
}

pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/events", get(search).post(post_events))
        .route("/v1/events/{index}", get(get_event))
        .route("/v1/proofs/inclusion", get(inclusion_proof))
        .route("/v1/proofs/consistency", get(consistency_proof))
        .route("/v1/stream", get(stream))
        .route("/v1/log", get(log_info))
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile_file))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(crate::identities::routes())
        .merge(crate::pubkey::routes())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .fallback(|| async { Problem::not_found("no such endpoint; see /openapi.json") })
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

fn count(state: &AppState, route: &'static str, status: StatusCode) {
    state.metrics.http.get_or_create(&HttpLabels { route, status: status.as_u16() }).inc();
}

pub(crate) fn finish(state: &AppState, route: &'static str, r: Result<Response, Problem>) -> Response {
    let resp = match r {
        Ok(r) => r,
        Err(p) => p.into_response(),
    };
    count(state, route, resp.status());
    resp
}

pub(crate) fn submit_problem(e: SubmitError) -> Problem {
    match e {
        SubmitError::Overloaded { .. } => {
            let mut p =
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "The log is busy", e.to_string());
            p.retry_after = Some(1);
            p
        }
        SubmitError::TooLarge { .. } => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "The batch is too large",
            e.to_string(),
        ),
        SubmitError::NotWriter { .. } => {
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-writer",
                "This node is not the log's writer",
                e.to_string(),
            );
            p.retry_after = Some(1);
            p
        }
        SubmitError::Replayed { .. } => Problem::new(
            StatusCode::CONFLICT,
            "client-signature-replayed",
            "Client signature already used",
            e.to_string(),
        ),
        // Storage, ShuttingDown, and whatever the engine adds later: the log is unavailable.
        _ => {
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The log cannot accept writes",
                e.to_string(),
            );
            p.retry_after = Some(5);
            p
        }
    }
}

fn event_problem(e: EventError, line: Option<usize>) -> Problem {
    let detail = match line {
        Some(n) => format!("line {n}: {e}; nothing was appended"),
        None => format!("{e}; nothing was appended"),
    };
    match e {
        EventError::TooLarge(_) => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "event-too-large", "The event is too large", detail)
        }
        EventError::ReservedAction(_) => Problem::bad_request("reserved-action", detail),
        _ => Problem::bad_request("invalid-event", detail),
    }
}

pub(crate) async fn read_body(state: &AppState, body: Body) -> Result<Bytes, Problem> {
    let limit = state.max_body_bytes;
    match tokio::time::timeout(state.body_timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "body-timeout",
            "The request body took too long",
            format!(
                "the body was not received within {} s; nothing was appended",
                state.body_timeout.as_secs()
            ),
        )),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
            let mut too_large = false;
            while let Some(s) = source {
                too_large |= s.is::<http_body_util::LengthLimitError>();
                source = s.source();
            }
            if too_large {
                Err(Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body-too-large",
                    "The request body is too large",
                    format!(
                        "the body is over the {limit}-byte limit; split it into several requests; nothing was appended"
                    ),
                ))
            } else {
                Err(Problem::bad_request(
                    "body-incomplete",
                    format!("the body could not be read ({e}); nothing was appended"),
                ))
            }
        }
    }
}

/// Receipts per chunk of a streamed NDJSON answer.
const RECEIPTS_PER_CHUNK: usize = 256;

/// Writes receipts as JSON objects, each followed by `sep`. Written directly rather than
/// through `serde_json::Value`: a bulk request answers thousands of receipts, and the strings
/// shared by a commit (checkpoint, `logged_at`) are escaped once, not once per receipt.
fn write_receipts<R: std::borrow::Borrow<Receipt>>(
    out: &mut String,
    receipts: impl IntoIterator<Item = R>,
    sep: &str,
) {
    use std::fmt::Write as _;
    /// The previous receipt's checkpoint and `logged_at`, and their JSON forms.
    type Shared = (Arc<str>, Option<Arc<str>>, String, String);
    let mut shared: Option<Shared> = None;
    // The previous receipt's proof elements and their base64 text.
    let mut encoded: Vec<(Hash, String)> = Vec::new();
    for r in receipts {
        let r = r.borrow();
        let same = shared.as_ref().is_some_and(|(c, l, _, _)| {
            Arc::ptr_eq(c, &r.checkpoint)
                && match (l, &r.logged_at) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                }
        });
        if !same {
            let cp = serde_json::to_string(&*r.checkpoint).unwrap_or_else(|_| "null".into());
            let at = serde_json::to_string(&r.logged_at.as_deref()).unwrap_or_else(|_| "null".into());
            shared = Some((r.checkpoint.clone(), r.logged_at.clone(), cp, at));
        }
        let Some((_, _, cp, at)) = &shared else { return };
        out.push_str("{\"checkpoint\":");
        out.push_str(cp);
        out.push_str(",\"inclusion_proof\":[");
        for (i, h) in r.inclusion_proof.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Neighbouring leaves share most of their proof: encode each element only when it
            // differs from the previous receipt's element at the same position.
            if encoded.get(i).is_none_or(|(prev, _)| prev != h) {
                let mut text = [0u8; 44];
                let len = B64.encode_slice(h.as_bytes(), &mut text).unwrap_or(0);
                let entry = (*h, String::from_utf8_lossy(&text[..len]).into_owned());
                match encoded.get_mut(i) {
                    Some(slot) => *slot = entry,
                    None => encoded.push(entry),
                }
            }
            out.push('"');
            out.push_str(encoded.get(i).map_or("", |(_, t)| t.as_str()));
            out.push('"');
        }
        let _ = write!(out, "],\"index\":{},\"leaf_hash\":\"", r.index);
        B64.encode_string(r.leaf_hash.as_bytes(), out);
        out.push_str("\",\"logged_at\":");
        out.push_str(at);
        let _ = write!(out, ",\"tree_size\":{}}}", r.tree_size);
        out.push_str(sep);
    }
}

async fn post_events(
    State(st): St,
    axum::Extension(principal): axum::Extension<Arc<Principal>>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = post_events_inner(&st, &principal, &headers, body).await;
    let r = match r {
        Err(Refused::Action(action, line)) => {
            let refusal = Refusal {
                who: Some(&principal),
                claimed_key: None,
                claimed_identity: None,
                reason: "action-not-allowed",
                route: "POST /v1/events",
                attempted_action: Some(&action),
                peer: peer.map(|p| p.0.0),
            };
            audit::denied(&st, refusal).await;
            let at = line.map(|n| format!("line {n}: ")).unwrap_or_default();
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "action-not-allowed",
                "Action not allowed for this identity",
                format!(
                    "{at}identity {} may log only actions matching {}; {action:?} does not match; nothing was appended",
                    principal.identity,
                    principal.allowed_actions.join(", ")
                ),
            ))
        }
        Err(Refused::Problem(p)) => Err(p),
        Err(Refused::ClientSig(c)) => {
            let refusal = Refusal {
                who: Some(&principal),
                claimed_key: None,
                claimed_identity: None,
                reason: c.reason,
                route: "POST /v1/events",
                attempted_action: None,
                peer: peer.map(|p| p.0.0),
            };
            audit::denied(&st, refusal).await;
            Err(c.problem)
        }
        Ok(r) => Ok(r),
    };
    finish(&st, "POST /v1/events", r)
}

/// Why an append was refused: a problem to answer, or an action outside the identity's
/// patterns, which is also recorded.
enum Refused {
    Problem(Problem),
    Action(String, Option<usize>),
    /// A client-signed event whose signature or key was refused (also recorded).
    ClientSig(crate::client_sig::Refusal),
}

impl From<Problem> for Refused {
    fn from(p: Problem) -> Self {
        Refused::Problem(p)
    }
}

fn shape_refusal(e: EventError, line: Option<usize>) -> Refused {
    match e {
        EventError::ActionNotAllowed(a) => Refused::Action(a, line),
        e => Refused::Problem(event_problem(e, line)),
    }
}

/// Why a submission failed: a replayed client signature is the request's doing (refused and
/// recorded, naming the line and the signature); anything else is the log's state.
/// `signed(entry)` gives the line and signature of the submission's `entry` (0-based).
fn submit_refusal<'a>(
    e: SubmitError,
    signed: impl Fn(usize) -> Option<(Option<usize>, &'a graven_core::event_sig::ClientSignature)>,
) -> Refused {
    let SubmitError::Replayed { entry } = e else { return Refused::Problem(submit_problem(e)) };
    let (line, what) = match signed(entry) {
        Some((line, sig)) => {
            let id = sig.once.as_ref().map_or("", |o| o.id.as_str());
            (line, format!("the event signed with key {} and id {id:?}", sig.key_id))
        }
        None => (Some(entry + 1), "this signed event".to_owned()),
    };
    let at = line.map(|n| format!("line {n}: ")).unwrap_or_default();
    Refused::ClientSig(crate::client_sig::Refusal {
        problem: Problem::new(
            StatusCode::CONFLICT,
            "client-signature-replayed",
            "Client signature already used",
            format!(
                "{at}{what} is already in the log, and a signed event is accepted once; if this is a retry of a request that got no answer, look the event up (GET /v1/events?actor=...) before signing it again under a new id; nothing was appended"
            ),
        ),
        reason: "client-signature-replayed",
    })
}

async fn post_events_inner(
    st: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refused> {
    let window = i64::try_from(st.engine.config().client_signature_window.as_secs()).unwrap_or(i64::MAX / 4);
    let actor = &principal.actor;
    let patterns = &principal.allowed_actions;
    let allowed = |a: &str| crate::identity::action_allowed(patterns, a);
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let mime = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let ndjson = match mime.as_str() {
        "application/x-ndjson" | "application/jsonl" | "application/jsonlines" => true,
        "application/json" | "" => false,
        other => {
            return Err(Refused::Problem(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported content type",
                format!(
                    "{other} is not accepted: send application/json (one event) or application/x-ndjson (a batch)"
                ),
            )));
        }
    };
    let body = read_body(st, body).await?;
    if !ndjson {
        let e = event::shape_with(&body, actor, &allowed).map_err(|e| shape_refusal(e, None))?;
        let signed = e.client_sig;
        let mut entry = Entry::event(e.bytes, e.stamp_at);
        if let Some(c) = &signed {
            crate::client_sig::check(&st.registry, principal, &[(None, c)], now_ms(), window)
                .map_err(Refused::ClientSig)?;
            entry.once = OnceKey::of(&c.sig, window);
        }
        let mut receipts = st
            .engine
            .submit(vec![entry])
            .await
            .map_err(|e| submit_refusal(e, |_| signed.as_ref().map(|c| (None, &c.sig))))?;
        let r = receipts.pop().ok_or_else(|| Problem::internal("no receipt"))?;
        let mut out = String::with_capacity(1200);
        write_receipts(&mut out, std::slice::from_ref(&r), "");
        let mut resp = (StatusCode::CREATED, out).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp.headers_mut().insert(header::LOCATION, header_value(&format!("/v1/events/{}", r.index)));
        return Ok(resp);
    }
    let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if lines.is_empty() {
        return Err(Refused::Problem(Problem::bad_request(
            "empty-batch",
            "the batch has no events; send one JSON event per line",
        )));
    }
    let max = st.engine.config().max_batch_events;
    if lines.len() > max {
        return Err(Refused::Problem(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "The batch is too large",
            format!("{} events in one batch; at most {max}; split it; nothing was appended", lines.len()),
        )));
    }
    let mut entries = Vec::with_capacity(lines.len());
    let mut signed = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let e = event::shape_with(line, actor, &allowed).map_err(|e| shape_refusal(e, Some(i + 1)))?;
        let mut entry = Entry::event(e.bytes, e.stamp_at);
        if let Some(c) = e.client_sig {
            entry.once = OnceKey::of(&c.sig, window);
            signed.push((Some(i + 1), c));
        }
        entries.push(entry);
    }
    if !signed.is_empty() {
        let items: Vec<(Option<usize>, &event::ClientSigned)> = signed.iter().map(|(l, c)| (*l, c)).collect();
        crate::client_sig::check(&st.registry, principal, &items, now_ms(), window)
            .map_err(Refused::ClientSig)?;
    }
    let receipts = st.engine.submit(entries).await.map_err(|e| {
        submit_refusal(e, |entry| {
            signed.iter().find(|(l, _)| *l == Some(entry + 1)).map(|(l, c)| (*l, &c.sig))
        })
    })?;
    // Streamed in chunks rather than built as one string: a 10,000-event batch answers about
    // 11 MB, and one allocation that size costs fresh, kernel-zeroed pages on every request.
    let mut rest = receipts.into_iter();
    let chunks = std::iter::from_fn(move || {
        let mut chunk = String::with_capacity(RECEIPTS_PER_CHUNK * 1200);
        write_receipts(&mut chunk, rest.by_ref().take(RECEIPTS_PER_CHUNK), "\n");
        (!chunk.is_empty()).then(|| Ok::<_, std::convert::Infallible>(Bytes::from(chunk)))
    });
    let mut resp =
        (StatusCode::CREATED, Body::from_stream(futures_util::stream::iter(chunks))).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(resp)
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

fn read_problem(e: ReadError) -> Problem {
    match e {
        ReadError::OutOfRange { .. } => Problem::not_found(e.to_string()),
        e => Problem::internal(e.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Problem::internal(format!("reader task failed: {e}")))?
}

fn parse_index(s: &str, what: &str) -> Result<u64, Problem> {
    s.parse::<u64>().map_err(|_| {
        Problem::bad_request("bad-parameter", format!("{what} must be a non-negative integer, got {s:?}"))
    })
}

/// An entry as JSON: the event itself when it is JSON, else base64.
fn entry_field(entry: &[u8]) -> (&'static str, String) {
    match serde_json::from_slice::<&serde_json::value::RawValue>(entry) {
        Ok(raw) => ("event", raw.get().to_owned()),
        Err(_) => ("entry_base64", format!("\"{}\"", B64.encode(entry))),
    }
}

async fn get_event(State(st): St, Path(index): Path<String>) -> Response {
    let r = async {
        let index = parse_index(&index, "the event index")?;
        let c = st.engine.committed();
        if index >= c.size {
            return Err(Problem::not_found(format!("no event {index}: the log has {} events (0-based)", c.size)));
        }
        let reader = st.reader.clone();
        let size = TreeSize(c.size);
        let (entry, proof) = blocking(move || {
            let mut r = reader.lock().unwrap_or_else(|p| p.into_inner());
            let entry = r.entry(index, size).map_err(read_problem)?;
            let proof = r.inclusion_proof(LeafIndex(index), size).map_err(read_problem)?;
            Ok((entry, proof))
        })
        .await?;
        let (key, value) = entry_field(&entry);
        let proof: Vec<String> = proof.iter().map(Hash::to_base64).collect();
        let body = format!(
            "{{\"index\":{index},\"tree_size\":{},\"leaf_hash\":\"{}\",\"{key}\":{value},\"checkpoint\":{},\"inclusion_proof\":{}}}",
            c.size,
            graven_core::leaf_hash(&entry).to_base64(),
            serde_json::Value::String(c.checkpoint.to_string()),
            serde_json::to_string(&proof).unwrap_or_default(),
        );
        let mut resp = body.into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(resp)
    }
    .await;
    finish(&st, "GET /v1/events/{index}", r)
}

#[derive(Debug, Deserialize)]
struct InclusionQuery {
    index: Option<String>,
    tree_size: Option<String>,
}

async fn inclusion_proof(State(st): St, Query(q): Query<InclusionQuery>) -> Response {
    let r = async {
        let index = parse_index(
            q.index
                .as_deref()
                .ok_or_else(|| Problem::bad_request("bad-parameter", "give ?index=<0-based leaf index>"))?,
            "index",
        )?;
        let c = st.engine.committed();
        let size = match q.tree_size.as_deref() {
            Some(s) => parse_index(s, "tree_size")?,
            None => c.size,
        };
        if size > c.size {
            return Err(Problem::bad_request(
                "bad-parameter",
                format!("tree_size {size} is beyond the latest checkpoint ({})", c.size),
            ));
        }
        if index >= size {
            return Err(Problem::bad_request(
                "bad-parameter",
                format!("index {index} is not in a tree of size {size}"),
            ));
        }
        let reader = st.reader.clone();
        let (leaf, root, proof) = blocking(move || {
            let mut r = reader.lock().unwrap_or_else(|p| p.into_inner());
            let entry = r.entry(index, TreeSize(size)).map_err(read_problem)?;
            let root = r.root(TreeSize(size)).map_err(read_problem)?;
            let proof = r.inclusion_proof(LeafIndex(index), TreeSize(size)).map_err(read_problem)?;
            Ok((graven_core::leaf_hash(&entry), root, proof))
        })
        .await?;
        Ok(axum::Json(serde_json::json!({
            "index": index, "tree_size": size, "leaf_hash": leaf.to_base64(), "root": root.to_base64(),
            "proof": proof.iter().map(Hash::to_base64).collect::<Vec<_>>(),
        }))
        .into_response())
    }
    .await;
    finish(&st, "GET /v1/proofs/inclusion", r)
}

#[derive(Debug, Deserialize)]
struct ConsistencyQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn consistency_proof(State(st): St, Query(q): Query<ConsistencyQuery>) -> Response {
    let r = async {
        let c = st.engine.committed();
        let from = parse_index(
            q.from.as_deref().ok_or_else(|| {
                Problem::bad_request("bad-parameter", "give ?from=<old size>&to=<new size>")
            })?,
            "from",
        )?;
        let to = match q.to.as_deref() {
            Some(s) => parse_index(s, "to")?,
            None => c.size,
        };
        if to > c.size {
            return Err(Problem::bad_request(
                "bad-parameter",
                format!("to {to} is beyond the latest checkpoint ({})", c.size),
            ));
        }
        if from > to {
            return Err(Problem::bad_request("bad-parameter", format!("from {from} is larger than to {to}")));
        }
        if from == 0 {
            return Err(Problem::bad_request(
                "bad-parameter",
                "there is no consistency proof from size 0: every tree extends the empty tree",
            ));
        }
        let reader = st.reader.clone();
        let (r1, r2, proof) = blocking(move || {
            let mut r = reader.lock().unwrap_or_else(|p| p.into_inner());
            let r1 = r.root(TreeSize(from)).map_err(read_problem)?;
            let r2 = r.root(TreeSize(to)).map_err(read_problem)?;
            let p = r.consistency_proof(TreeSize(from), TreeSize(to)).map_err(read_problem)?;
            Ok((r1, r2, p))
        })
        .await?;
        Ok(axum::Json(serde_json::json!({
            "from": from, "to": to, "root_from": r1.to_base64(), "root_to": r2.to_base64(),
            "proof": proof.iter().map(Hash::to_base64).collect::<Vec<_>>(),
        }))
        .into_response())
    }
    .await;
    finish(&st, "GET /v1/proofs/consistency", r)
}

async fn log_info(State(st): St) -> Response {
    let c = st.engine.committed();
    let r = Ok(axum::Json(serde_json::json!({
        "origin": st.origin,
        "verifier_key": st.verifier_key,
        "tree_size": c.size,
        "root": c.root.to_base64(),
        "checkpoint": &*c.checkpoint,
        // A shared log's node: whether it takes writes, and where the writer is otherwise.
        "writer": st.engine.is_writer(),
        "writer_url": st.engine.lease().and_then(|l| l.writer_url()),
        "storage": st.engine.store().map(|s| s.location()),
    }))
    .into_response());
    finish(&st, "GET /v1/log", r)
}

async fn checkpoint(State(st): St) -> Response {
    let c = st.engine.committed();
    let mut resp = c.checkpoint.to_string().into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    finish(&st, "GET /checkpoint", Ok(resp))
}

/// `GET /tile/...`: a tile or entry bundle at the committed size.
///
/// One name per file: the path is taken from the request line as sent, never from the route's
/// percent-decoded `{*path}` capture (which would serve `tile/0%2F000.p/1` as `tile/0/000.p/1`).
/// tlog-tiles paths are plain ASCII and parse strictly, so a percent-encoded byte, a doubled
/// slash, a dot segment or a backslash is not a tile path.
async fn tile_file(State(st): St, uri: axum::http::Uri) -> Response {
    let r = async {
        let full = uri.path().strip_prefix('/').unwrap_or(uri.path()).to_owned();
        if full.contains('%') {
            return Err(Problem::not_found(format!(
                "{full:?} is not a tile path: tlog-tiles paths are never percent-encoded; send each / and digit as itself (tile/0/000.p/1)"
            )));
        }
        let parsed = tile::parse_path(&full)
            .map_err(|e| Problem::not_found(format!("{full:?} is not a tile path: {e}")))?;
        let immutable = match parsed {
            TlogPath::Tile(t) => t.is_full(),
            TlogPath::Entries(b) => b.is_full(),
            TlogPath::Checkpoint => false,
        };
        let size = TreeSize(st.engine.committed().size);
        let reader = st.reader.clone();
        let bytes = blocking(move || {
            let r = reader.lock().unwrap_or_else(|p| p.into_inner());
            r.read_path(parsed, size).map_err(read_problem)
        })
        .await?
        .ok_or_else(|| Problem::not_found(format!("{full} is not part of the log at size {}", size.0)))?;
        let mut resp = bytes.into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        // A full tile never changes. A partial tile's contents are fixed by its width too, but
        // it is superseded as the log grows, so it is cached briefly.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if immutable {
                "public, max-age=31536000, immutable"
            } else {
                "public, max-age=5"
            }),
        );
        Ok(resp)
    }
    .await;
    finish(&st, "GET /tile", r)
}

async fn readyz(State(st): St) -> Response {
    let r = if st.engine.is_poisoned() {
        Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "poisoned",
            "Not ready",
            "a storage error stopped writes; restart the server to recover the log",
        ))
    } else {
        Ok("ready\n".into_response())
    };
    finish(&st, "GET /readyz", r)
}

async fn metrics(State(st): St) -> Response {
    let mut resp = st.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

async fn openapi() -> Response {
    let mut resp = include_str!("openapi.json").into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    actor: Option<String>,
    action: Option<String>,
    resource: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    order: Option<String>,
}

/// An RFC 3339 time as the index's fixed-width `logged_at` text.
fn index_time(s: &str, what: &str) -> Result<String, Problem> {
    event::parse_time_bound(s).ok_or_else(|| {
        Problem::bad_request(
            "bad-parameter",
            format!("{what} must be an RFC 3339 time such as 2026-11-26T17:48:20Z"),
        )
    })
}

/// Search over the derived index. The index may trail the log by a moment; `indexed_size`
/// says how far it has got.
async fn search(State(st): St, Query(q): Query<SearchQuery>) -> Response {
    let r = async {
        let limit = match q.limit.as_deref() {
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| Problem::bad_request("bad-parameter", "limit must be 1..=1000"))?,
            None => 0,
        };
        let order = match q.order.as_deref() {
            None | Some("newest") | Some("desc") => graven_index::Order::NewestFirst,
            Some("oldest") | Some("asc") => graven_index::Order::OldestFirst,
            Some(o) => {
                return Err(Problem::bad_request(
                    "bad-parameter",
                    format!("order {o:?}: use newest or oldest"),
                ));
            }
        };
        let query = graven_index::Query {
            actor: q.actor,
            action: q.action,
            resource: q.resource,
            outcome: q.outcome,
            since: q.since.as_deref().map(|s| index_time(s, "since")).transpose()?,
            until: q.until.as_deref().map(|s| index_time(s, "until")).transpose()?,
            limit,
            cursor: q.cursor,
            order,
        };
        let index = st.index.clone();
        let reader = st.reader.clone();
        let size = TreeSize(st.engine.committed().size);
        let (page, indexed, events) = blocking(move || {
            let page = index.search(&query).map_err(|e| match e {
                graven_index::IndexError::BadCursor | graven_index::IndexError::BadQuery(_) => {
                    Problem::bad_request("bad-parameter", e.to_string())
                }
                e => Problem::internal(e.to_string()),
            })?;
            let indexed = index.indexed_size().map_err(|e| Problem::internal(e.to_string()))?;
            let r = reader.lock().unwrap_or_else(|p| p.into_inner());
            let mut bundles: std::collections::HashMap<u64, (u64, Vec<Vec<u8>>)> = Default::default();
            let mut events = Vec::with_capacity(page.indices.len());
            for &i in &page.indices {
                if i >= size.0 {
                    continue;
                }
                let key = i / 256;
                if let std::collections::hash_map::Entry::Vacant(v) = bundles.entry(key) {
                    v.insert(r.bundle(i, size).map_err(read_problem)?);
                }
                if let Some(e) =
                    bundles.get(&key).and_then(|(first, entries)| entries.get((i - first) as usize))
                {
                    events.push((i, e.clone()));
                }
            }
            Ok((page, indexed, events))
        })
        .await?;
        let mut body = String::from("{\"events\":[");
        for (k, (i, e)) in events.iter().enumerate() {
            if k > 0 {
                body.push(',');
            }
            let (key, value) = entry_field(e);
            body.push_str(&format!("{{\"index\":{i},\"{key}\":{value}}}"));
        }
        body.push_str(&format!(
            "],\"next_cursor\":{},\"indexed_size\":{indexed},\"tree_size\":{}}}",
            serde_json::to_string(&page.next_cursor).unwrap_or_else(|_| "null".into()),
            size.0
        ));
        let mut resp = body.into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(resp)
    }
    .await;
    finish(&st, "GET /v1/events", r)
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    from: Option<String>,
}

/// Server-sent events: every entry from `from` (default: the current size), then live.
async fn stream(
    State(st): St,
    axum::Extension(principal): axum::Extension<Arc<Principal>>,
    Query(q): Query<StreamQuery>,
) -> Response {
    let start = match q.from.as_deref().map(|s| parse_index(s, "from")).transpose() {
        Ok(v) => v.unwrap_or(st.engine.committed().size),
        Err(p) => return finish(&st, "GET /v1/stream", Err(p)),
    };
    count(&st, "GET /v1/stream", StatusCode::OK);
    let rx = st.engine.subscribe();
    let reader = st.reader.clone();
    let registry = st.registry.clone();
    // The credential was checked when the stream opened; it is checked again before each read
    // of newly committed entries and every `RECHECK` while idle, so a revoked, disabled or
    // expired credential stops receiving events (and its stream is closed).
    let allowed = move || registry.still_valid(&principal, now_ms());
    Sse::new(tail(start, rx, reader, allowed))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// How often an idle stream re-checks its credential.
const RECHECK: Duration = Duration::from_secs(5);

fn tail<A: Fn() -> bool + Send + 'static>(
    start: u64,
    rx: tokio::sync::watch::Receiver<graven_engine::engine::Committed>,
    reader: Arc<Mutex<LogReader>>,
    allowed: A,
) -> impl Stream<Item = Result<SseEvent, std::convert::Infallible>> {
    struct S<A> {
        next: u64,
        buf: std::collections::VecDeque<(u64, Vec<u8>)>,
        rx: tokio::sync::watch::Receiver<graven_engine::engine::Committed>,
        reader: Arc<Mutex<LogReader>>,
        allowed: A,
    }
    let s = S { next: start, buf: Default::default(), rx, reader, allowed };
    futures_util::stream::unfold(s, |mut s| async move {
        loop {
            if let Some((i, entry)) = s.buf.pop_front() {
                let (key, value) = entry_field(&entry);
                let data = format!("{{\"index\":{i},\"{key}\":{value}}}");
                return Some((Ok(SseEvent::default().id(i.to_string()).event("event").data(data)), s));
            }
            let size = s.rx.borrow_and_update().size;
            if s.next < size {
                // Before reading more of the log for this client.
                if !(s.allowed)() {
                    return None;
                }
                let reader = s.reader.clone();
                let next = s.next;
                let got = tokio::task::spawn_blocking(move || {
                    let r = reader.lock().unwrap_or_else(|p| p.into_inner());
                    r.bundle(next, TreeSize(size))
                })
                .await;
                let Ok(Ok((first, entries))) = got else { return None };
                for (k, e) in entries.into_iter().enumerate() {
                    let i = first + k as u64;
                    if i >= s.next && i < size {
                        s.buf.push_back((i, e));
                    }
                }
                s.next = s.buf.back().map_or(size, |(i, _)| i + 1);
                continue;
            }
            match tokio::time::timeout(RECHECK, s.rx.changed()).await {
                Ok(Err(_)) => return None,
                Ok(Ok(())) => {}
                // Idle: re-check the credential, so a revoked one does not hold the stream.
                Err(_) => {
                    if !(s.allowed)() {
                        return None;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The access table, the served routes and the OpenAPI document name the same operations,
    /// and none of them is a PUT, PATCH or DELETE.
    #[test]
    fn the_route_table_matches_the_openapi_document() {
        assert_eq!(ROUTES.len(), ROUTE_LABELS.len());
        let api: serde_json::Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
        let mut documented = std::collections::BTreeSet::new();
        for (path, ops) in api["paths"].as_object().unwrap() {
            for m in ops.as_object().unwrap().keys().filter(|k| *k != "parameters") {
                documented.insert((m.to_uppercase(), path.clone()));
            }
        }
        let table: std::collections::BTreeSet<(String, String)> = ROUTES
            .iter()
            .filter(|(_, p, _)| *p != "/openapi.json")
            .map(|(m, p, _)| (m.to_string(), p.replace("{*path}", "{path}")))
            .collect();
        assert_eq!(table, documented);
        assert!(ROUTES.iter().all(|(m, _, _)| *m == "GET" || *m == "POST"));
        for ((m, p, _), label) in ROUTES.iter().zip(ROUTE_LABELS) {
            assert!(
                label.starts_with(m) && p.starts_with(&label[m.len() + 1..].replace("{*path}", "")),
                "{label}"
            );
        }
    }

    fn reference(r: &Receipt) -> serde_json::Value {
        serde_json::json!({
            "index": r.index,
            "logged_at": r.logged_at.as_deref(),
            "leaf_hash": r.leaf_hash.to_base64(),
            "tree_size": r.tree_size,
            "checkpoint": &*r.checkpoint,
            "inclusion_proof": r.inclusion_proof.iter().map(Hash::to_base64).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn written_receipts_are_the_json_of_their_fields() {
        let cp1: Arc<str> = Arc::from("example.com/log\n3\nAAAA\n\n\u{2014} example.com/log x+\"\\\n");
        let cp2: Arc<str> = Arc::from("example.com/log\n4\nBBBB\n\n\u{2014} example.com/log y\n");
        let at: Arc<str> = Arc::from("2026-11-26T21:00:00.000001Z");
        let mk = |index: u64, cp: &Arc<str>, logged_at: Option<Arc<str>>, proof: usize| Receipt {
            index,
            logged_at,
            leaf_hash: graven_core::leaf_hash(&index.to_be_bytes()),
            tree_size: index + 1,
            checkpoint: cp.clone(),
            inclusion_proof: (0..proof).map(|i| graven_core::leaf_hash(&[i as u8])).collect(),
        };
        let receipts = vec![
            mk(0, &cp1, Some(at.clone()), 0),
            mk(1, &cp1, Some(at.clone()), 3),
            mk(2, &cp1, None, 1),
            mk(3, &cp2, Some(Arc::from("2026-11-26T21:00:01.000000Z")), 2),
        ];
        let mut receipts = receipts;
        // A proof that shares its first element with the previous one but not its second.
        let mut odd = mk(4, &cp2, None, 3);
        odd.inclusion_proof[1] = graven_core::leaf_hash(b"different");
        receipts.push(odd);
        receipts.push(mk(5, &cp2, None, 3));
        let mut out = String::new();
        write_receipts(&mut out, &receipts, "\n");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), receipts.len());
        for (line, r) in lines.iter().zip(&receipts) {
            let got: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(got, reference(r), "{line}");
        }
    }
}
