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
//! | [`state`] | the console's state: the server's, its sessions, whether its cookie is `Secure` |
//! | [`guard`] | the session check, the cross-site check, the headers of every answer |
//! | [`session`] | sessions: cookie tokens kept as digests, bounded, expiring |
//! | [`html`] | escaping of untrusted strings, the page frame |
//! | [`pages`] | the pages |

pub mod guard;
pub mod html;
pub mod pages;
pub mod session;
pub mod state;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::http::AppState;
pub use state::ConsoleState;

/// The whole server's router: the API ([`crate::http::app`]) and the console beside it, which
/// the API's guard does not cover (the console has its own, [`guard::signed_in`]).
/// `secure_cookie`: the server speaks TLS, so the session cookie is `Secure`.
pub fn app_with_console(state: Arc<AppState>, secure_cookie: bool) -> Router {
    let console = Arc::new(ConsoleState { app: state.clone(), sessions: Default::default(), secure_cookie });
    crate::http::app(state).merge(routes(console.clone()).with_state(console))
}

/// The console's routes.
pub fn routes(state: Arc<ConsoleState>) -> Router<Arc<ConsoleState>> {
    let signed_in_only = Router::new()
        .route("/ui", get(|| async { guard::redirect("/ui/log") }))
        .route("/ui/log", get(pages::log))
        .route("/ui/search", get(pages::search))
        .route("/ui/export", get(pages::export))
        .route("/ui/events/{index}", get(pages::event))
        .route("/ui/identities", get(pages::identities))
        .route("/ui/identity", get(pages::identity))
        .route("/ui/credential", get(pages::credential))
        .route("/ui/settings", get(pages::settings))
        .route("/ui/signout", post(pages::sign_out))
        .route_layer(axum::middleware::from_fn_with_state(state, guard::signed_in));
    Router::new()
        .route("/ui/signin", get(pages::sign_in_form).post(pages::sign_in))
        .route("/ui/assets/{name}", get(asset))
        .merge(signed_in_only)
        .layer(axum::middleware::from_fn(guard::security_headers))
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, ctype): (&'static [u8], &'static str) = match name.as_str() {
        "console.js" => (include_bytes!("assets/console.js"), "text/javascript; charset=utf-8"),
        "console.css" => (include_bytes!("assets/console.css"), "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, ctype)], body).into_response()
}
