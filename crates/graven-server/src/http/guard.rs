//! The guard in front of every route: finds the request's entry in [`super::routes::ROUTES`],
//! sends writes on a read replica to the writer, and authenticates and authorises the
//! request by whichever credential it carries (an RFC 9421 signature, a client certificate,
//! an OIDC token or an API key). A refused request is answered here (401, 403) and recorded as
//! a `denied` event (rate-limited).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use graven_auth::access::{self as auth, Access};
use graven_auth::principal::{Denial, Principal};

use super::body::read_body;
use super::request_log::Identity;
use super::routes::route_entry;
use super::state::{AppState, Peer, finish};
use crate::http::audit::{self, Refusal};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

/// Authenticates and authorises every request before its handler runs; a refused request is
/// answered here (401 or 403) and recorded as a `denied` event (rate-limited). The verified
/// [`Principal`] is handed to the handler in the request's extensions.
pub async fn guard(State(st): St, matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
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
    let live = st.live();
    if access == Access::Public || (access == Access::ReadPath && live.public_read_path) {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    if graven_auth::sigauth::is_signed(req.headers().keys().map(|n| n.as_str())) {
        let (principal, req) = match signed_request(&st, req, route, peer).await {
            Ok(ok) => ok,
            Err(resp) => return resp,
        };
        if let Err(resp) = check_role(&st, &principal, access, route, peer).await {
            return resp;
        }
        return run_as(principal, req, next).await;
    }
    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    // Without an Authorization header, a verified client certificate (mTLS) is the credential.
    let client_cert =
        req.extensions().get::<Arc<graven_auth::mtls::ClientCert>>().filter(|_| header.is_none());
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
    let authenticated = match (client_cert, &live.oidc) {
        (Some(cert), _) => graven_auth::mtls::authenticate(cert, &live.spiffe_ids, &st.registry, st.now_ms()),
        // API keys start with `gvn_` and have no dots; a JWT is three dot-separated parts.
        (None, Some(oidc)) if graven_auth::jwt::looks_like_jwt(token) => {
            oidc.authenticate(token, &st.registry, st.now_ms()).await
        }
        (None, _) => st.registry.authenticate(token, st.now_ms()),
    };
    let principal = match authenticated {
        Ok(p) => p,
        Err(d) => {
            let claimed = match &d {
                Denial::Invalid { key_id } => key_id.clone(),
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
    run_as(principal, req, next).await
}

/// Runs the handler with the verified principal in the request's extensions; the answer names
/// the identity for the request log.
async fn run_as(principal: Arc<Principal>, mut req: Request, next: Next) -> Response {
    let who = principal.clone();
    req.extensions_mut().insert(principal);
    let mut resp = next.run(req).await;
    Identity::mark(&mut resp, &who.identity);
    resp
}

/// Checks a request that carries an RFC 9421 signature ([`graven_auth::sigauth`]). On success
/// returns the principal and the request with its body buffered (it was read to check
/// `Content-Digest`). On failure the answer is ready, and a denied record appended.
async fn signed_request(
    st: &AppState,
    req: Request,
    route: &'static str,
    peer: Option<std::net::IpAddr>,
) -> Result<(Arc<Principal>, Request), Response> {
    let (parts, body) = req.into_parts();
    let checked = {
        let fields: Vec<(&str, &[u8])> =
            parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        let signed = graven_auth::sigauth::SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            fields: &fields,
        };
        let read = || async { read_body(st, body).await.map_err(|p| (p.status.as_u16(), p.detail)) };
        graven_auth::sigauth::check(&st.http_sig, &st.registry, signed, st.now_ms(), read).await
    };
    let r = match checked {
        Ok((principal, bytes)) => return Ok((principal, Request::from_parts(parts, Body::from(bytes)))),
        Err(r) => r,
    };
    let refusal = Refusal {
        who: None,
        claimed_key: r.claimed_key.as_deref(),
        claimed_identity: r.claimed_identity.as_deref(),
        reason: r.reason,
        route,
        attempted_action: None,
        peer,
    };
    audit::denied(st, refusal).await;
    use graven_auth::sigauth::RefusalKind;
    let status = match r.kind {
        RefusalKind::Malformed => StatusCode::BAD_REQUEST,
        RefusalKind::Busy | RefusalKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        RefusalKind::Body { status } => StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        _ => StatusCode::UNAUTHORIZED,
    };
    let p = if r.kind == RefusalKind::Unavailable {
        // The shared replay cache did not answer: fail closed, the client retries.
        let mut p = Problem::new(status, "replay-check-unavailable", "Replay check unavailable", r.detail);
        p.retry_after = Some(1);
        p
    } else if status == StatusCode::SERVICE_UNAVAILABLE {
        let mut p = Problem::new(status, "replay-cache-full", "Too many signed requests", r.detail);
        p.retry_after = Some(1);
        p
    } else if status == StatusCode::BAD_REQUEST {
        Problem::bad_request("malformed-signature", r.detail)
    } else {
        Problem::new(status, "unauthorized", "Authentication required", r.detail)
    };
    Err(finish(st, route, Err(p)))
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
        let mut resp = finish(st, route, Err(p));
        Identity::mark(&mut resp, &principal.identity);
        return Err(resp);
    }
    Ok(())
}
