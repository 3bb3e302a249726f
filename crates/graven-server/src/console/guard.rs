//! The console's guard: a live session whose identity and key are still valid, requests from
//! other sites refused, and the headers every answer carries.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use graven_auth::principal::Principal;

use super::session;
use super::state::ConsoleState;

pub type St = State<Arc<ConsoleState>>;

/// Every answer under `/ui`: no script but the console's own, nothing from elsewhere, never in
/// a frame, never cached, no referrer leaves for another site.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A `303 See Other` to `to`.
pub fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, HeaderValue::from_static(to))]).into_response()
}

pub async fn security_headers(req: Request, next: Next) -> Response {
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
pub async fn signed_in(State(st): St, mut req: Request, next: Next) -> Response {
    let now = st.now_ms();
    let Some(token) = session_token(req.headers()) else { return redirect("/ui/signin") };
    let Some(s) = st.sessions.get(&token, now) else { return redirect("/ui/signin") };
    if !st.registry.still_valid(&s.principal, now) {
        st.sessions.end_all_of(&s.principal.identity);
        return redirect("/ui/signin");
    }
    if req.method() == axum::http::Method::POST && cross_site(req.headers()) {
        return (StatusCode::FORBIDDEN, "a request from another site is refused").into_response();
    }
    req.extensions_mut().insert(SignedIn { principal: s.principal, token, form_token: s.form_token });
    next.run(req).await
}
