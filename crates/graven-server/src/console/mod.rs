//! The auditor's console at `/ui` (docs/console.md): server-rendered HTML pages over the same
//! log, index and registry as the API, read-only, signed in with an auditor's or admin's API
//! key (or an OIDC token where an issuer is configured). Its script and style are embedded in
//! the binary (`assets/`), and every answer carries a strict Content-Security-Policy: no inline
//! script, nothing from another origin, no framing.
//!
//! The event page hands the browser the entry's bytes, its inclusion proof and the signed
//! checkpoint; `assets/console.js` checks them with WebCrypto (SHA-256, Ed25519) against a
//! verifier key the auditor pinned in that browser, never one the page supplies.
//!
//! | module | what |
//! |---|---|
//! | [`session`] | sessions: cookie tokens kept as digests, bounded, expiring |
//! | [`html`] | escaping of untrusted strings, the page frame |
//! | [`pages`] | the pages |

pub mod html;
pub mod pages;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use graven_auth::principal::Principal;

use crate::http::AppState;

type St = State<Arc<AppState>>;

/// The console's state: its sessions, and whether its cookie must be `Secure` (the server
/// speaks TLS).
#[derive(Debug, Default)]
pub struct Console {
    pub sessions: session::Sessions<Arc<Principal>>,
    pub secure_cookie: bool,
}

/// Every answer under `/ui`: no script but the console's own, nothing from elsewhere, never in
/// a frame, never cached, no referrer leaves for another site.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes (they bypass the API's guard: the console has its own, [`signed_in`]).
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let signed_in_only = Router::new()
        .route("/ui", get(|| async { redirect("/ui/log") }))
        .route("/ui/log", get(pages::log))
        .route("/ui/search", get(pages::search))
        .route("/ui/events/{index}", get(pages::event))
        .route("/ui/identities", get(pages::identities))
        .route("/ui/settings", get(pages::settings))
        .route("/ui/signout", post(pages::sign_out))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), signed_in));
    Router::new()
        .route("/ui/signin", get(pages::sign_in_form).post(pages::sign_in))
        .route("/ui/assets/{name}", get(asset))
        .merge(signed_in_only)
        .layer(axum::middleware::from_fn(security_headers))
}

/// A `303 See Other` to `to`.
pub fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, HeaderValue::from_static(to))]).into_response()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends `Origin: null` with
    // the console's own form posts, which [`cross_site`] must refuse.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    resp
}

/// The signed-in session of a request, for the handlers.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub principal: Arc<Principal>,
    pub token: String,
    pub form_token: String,
}

/// The session cookie's token, if the request has one.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| session::cookie(h, session::COOKIE))
        .map(str::to_owned)
}

/// A request from another site (by `Sec-Fetch-Site`, or an `Origin` that is not this host):
/// refused for every state-changing request of the console.
pub fn cross_site(headers: &HeaderMap) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if h("sec-fetch-site").is_some_and(|s| s == "cross-site" || s == "same-site") {
        return true;
    }
    match (h("origin"), h("host")) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            rest != Some(host)
        }
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The console's guard: a live session whose identity and key are still valid (disabled,
/// revoked or expired ends it), else the sign-in page.
async fn signed_in(State(st): St, mut req: Request, next: Next) -> Response {
    let now = st.now_ms();
    let Some(token) = session_token(req.headers()) else { return redirect("/ui/signin") };
    let Some(s) = st.console.sessions.get(&token, now) else { return redirect("/ui/signin") };
    if !st.registry.still_valid(&s.principal, now) {
        st.console.sessions.end_all_of(&s.principal.identity);
        return redirect("/ui/signin");
    }
    if req.method() == axum::http::Method::POST && cross_site(req.headers()) {
        return (StatusCode::FORBIDDEN, "a request from another site is refused").into_response();
    }
    req.extensions_mut().insert(SignedIn { principal: s.principal, token, form_token: s.form_token });
    next.run(req).await
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, ctype): (&'static [u8], &'static str) = match name.as_str() {
        "console.js" => (include_bytes!("assets/console.js"), "text/javascript; charset=utf-8"),
        "console.css" => (include_bytes!("assets/console.css"), "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, ctype)], body).into_response()
}
