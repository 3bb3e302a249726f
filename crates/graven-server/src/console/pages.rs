//! The console's pages. Each reads what the API would (the same search, the same reader, the
//! same registry) and renders it with [`super::html`]; nothing here changes the log but the
//! sign-in and sign-out records.

use std::fmt::Write as _;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use graven_auth::access::Access;
use graven_core::hash::{Hash, LeafIndex, TreeSize};
use serde_json::Value;

use super::guard::{SignedIn, St, cross_site, redirect};
use super::html::{self, Frame, attr, text, url};
use super::session;
use crate::http::Peer;
use crate::http::audit::{self, Refusal};
use crate::http::search::{self, SearchQuery};
use crate::http::state::{StrictQuery, blocking, read_problem};
use crate::problem::Problem;

/// Longest sign-in form.
const MAX_FORM_BYTES: usize = 16 << 10;
/// Events on a search page.
const PAGE_EVENTS: &str = "50";

fn html_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))], body)
        .into_response()
}

fn frame(s: &SignedIn) -> Frame<'_> {
    Frame { identity: &s.principal.identity, form_token: &s.form_token }
}

/// A problem as a page (the same words the API would answer).
fn problem_page(s: &SignedIn, p: &Problem) -> Response {
    let body = format!("<p class=\"error\" id=\"problem\">{}</p>", text(&p.detail));
    html_response(p.status, html::page(p.title, Some(&frame(s)), &body))
}

fn sign_in_page(message: Option<&str>) -> String {
    let mut body = String::new();
    if let Some(m) = message {
        let _ = write!(body, "<p class=\"error\" id=\"problem\">{}</p>", text(m));
    }
    body.push_str(
        "<form method=\"post\" action=\"/ui/signin\" class=\"signin\">\
         <label for=\"credential\">An auditor's or admin's API key (or an OIDC token)</label>\
         <input type=\"password\" id=\"credential\" name=\"credential\" autocomplete=\"off\" required>\
         <button type=\"submit\" id=\"signin\">Sign in</button></form>\
         <p class=\"note\">The console is read-only. A session lasts 8 hours, or until you sign out, \
         the identity is disabled or its key revoked. Every sign-in is recorded in the log.</p>",
    );
    html::page("Sign in", None, &body)
}

/// `GET /ui/signin`.
pub async fn sign_in_form() -> Response {
    html_response(StatusCode::OK, sign_in_page(None))
}

#[derive(serde::Deserialize)]
struct SignInForm {
    credential: String,
}

/// `POST /ui/signin`: the credential checked as the API checks a bearer credential, the role
/// (auditor or admin), then a session; a refusal is recorded as any refused credential is.
pub async fn sign_in(
    State(st): St,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const ROUTE: &str = "POST /ui/signin";
    let peer = peer.map(|p| p.0.0);
    if cross_site(&headers) {
        return html_response(
            StatusCode::FORBIDDEN,
            sign_in_page(Some("a sign-in from another site is refused")),
        );
    }
    let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return html_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                sign_in_page(Some("the form is larger than 16 KiB: paste only the key or token")),
            );
        }
    };
    let Ok(form) = serde_urlencoded::from_bytes::<SignInForm>(&bytes) else {
        return html_response(
            StatusCode::BAD_REQUEST,
            sign_in_page(Some("the form has no credential field: send credential=<key>")),
        );
    };
    let credential = form.credential.trim();
    let now = st.now_ms();
    let live = st.live();
    let authenticated = match &live.oidc {
        Some(oidc) if graven_auth::jwt::looks_like_jwt(credential) => {
            oidc.authenticate(credential, &st.registry, now).await
        }
        _ => st.registry.authenticate(credential, now),
    };
    let principal = match authenticated {
        Ok(p) => p,
        Err(d) => {
            let claimed = match &d {
                graven_auth::principal::Denial::Invalid { key_id } => key_id.clone(),
                _ => None,
            };
            let r = Refusal {
                who: d.principal().map(|p| &**p),
                claimed_key: claimed.as_deref(),
                claimed_identity: None,
                reason: d.reason(),
                route: ROUTE,
                attempted_action: None,
                peer,
            };
            audit::denied(&st, r).await;
            return html_response(StatusCode::UNAUTHORIZED, sign_in_page(Some(&d.message())));
        }
    };
    if !Access::Read.permits(principal.role) {
        let r = Refusal {
            who: Some(&principal),
            claimed_key: None,
            claimed_identity: None,
            reason: "role",
            route: ROUTE,
            attempted_action: None,
            peer,
        };
        audit::denied(&st, r).await;
        let m = format!(
            "identity {} has the {} role; the console is for auditors and admins",
            principal.identity,
            principal.role.as_str()
        );
        return html_response(StatusCode::FORBIDDEN, sign_in_page(Some(&m)));
    }
    let (token, _) = match st.sessions.create(&principal.identity, principal.clone(), now) {
        Ok(made) => made,
        Err(e) => {
            let m = match e {
                session::SessionError::Full => "too many console sessions are open; try again later",
                session::SessionError::Random => "the server could not make a session token",
            };
            return html_response(StatusCode::SERVICE_UNAVAILABLE, sign_in_page(Some(m)));
        }
    };
    // Recorded before the session is handed out: no session that the log does not show.
    if let Err(p) = audit::console_session(&st, &principal, "graven.console.signin", peer).await {
        st.sessions.end(&token);
        return html_response(p.status, sign_in_page(Some(&p.detail)));
    }
    let secure = if st.secure_cookie { "; Secure" } else { "" };
    let cookie = format!(
        "{}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        session::COOKIE,
        session::LIFETIME_MS / 1000
    );
    let mut resp = redirect("/ui/log");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(serde::Deserialize)]
struct SignOutForm {
    form_token: String,
}

/// `POST /ui/signout`: ends the session (the form carries the session's form token).
pub async fn sign_out(
    State(st): St,
    Extension(s): Extension<SignedIn>,
    peer: Option<Extension<Peer>>,
    body: Body,
) -> Response {
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.unwrap_or_default();
    let ok = serde_urlencoded::from_bytes::<SignOutForm>(&bytes).is_ok_and(|f| f.form_token == s.form_token);
    if !ok {
        return (StatusCode::FORBIDDEN, "sign out from the console's own button").into_response();
    }
    st.sessions.end(&s.token);
    let _ = audit::console_session(&st, &s.principal, "graven.console.signout", peer.map(|p| p.0.0)).await;
    let mut resp = redirect("/ui/signin");
    let cookie = format!("{}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0", session::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The index of the first entry of the log (of `size` entries) logged at or after `t`
/// (the fixed-width `logged_at` text, which grows with the index), found by bisection:
/// about log2(size / 256) bundle reads. Entries without a `logged_at` count as earlier.
fn first_logged_since(r: &graven_engine::reader::LogReader, size: u64, t: &str) -> Result<u64, Problem> {
    let at = |i: u64| -> Result<Option<String>, Problem> {
        let e = r.entry(i, TreeSize(size)).map_err(read_problem)?;
        Ok(serde_json::from_slice::<Value>(&e)
            .ok()
            .and_then(|v| v.get("logged_at").and_then(Value::as_str).map(str::to_owned)))
    };
    let (mut lo, mut hi) = (0u64, size);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if at(mid)?.is_some_and(|x| x.as_str() >= t) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// `GET /ui/log`: the log's state.
pub async fn log(State(st): St, Extension(s): Extension<SignedIn>) -> Response {
    let c = st.engine.committed();
    let index = st.index.clone();
    let indexed = blocking(move || index.indexed_size().map_err(|e| Problem::internal(e.to_string()))).await;
    let latest = if c.size > 0 {
        let reader = st.reader.clone();
        let size = TreeSize(c.size);
        blocking(move || {
            let r = reader.lock().unwrap_or_else(|p| p.into_inner());
            r.entry(size.0 - 1, size).map_err(read_problem)
        })
        .await
        .ok()
        .and_then(|e| serde_json::from_slice::<Value>(&e).ok())
        .and_then(|v| v.get("logged_at").and_then(Value::as_str).map(str::to_owned))
    } else {
        None
    };
    // Ingest: the entries logged in the last minute and the last hour.
    let ingest = {
        let reader = st.reader.clone();
        let size = c.size;
        let now_us = st.now_ms().saturating_mul(1000);
        let minute = graven_core::event::format_timestamp(now_us - 60_000_000);
        let hour = graven_core::event::format_timestamp(now_us - 3_600_000_000);
        blocking(move || {
            let r = reader.lock().unwrap_or_else(|p| p.into_inner());
            Ok((size - first_logged_since(&r, size, &minute)?, size - first_logged_since(&r, size, &hour)?))
        })
        .await
    };
    let mut b = String::from("<dl class=\"facts\">");
    let mut fact = |k: &str, id: &str, v: String| {
        let _ = write!(b, "<dt>{}</dt><dd id=\"{id}\">{v}</dd>", text(k));
    };
    fact("Origin", "origin", text(&st.origin));
    fact("Tree size", "tree-size", c.size.to_string());
    fact("Root hash", "root", text(&c.root.to_base64()));
    fact("Latest event logged at", "latest", latest.map_or_else(|| "no event yet".to_owned(), |t| text(&t)));
    fact(
        "Ingest",
        "ingest",
        match ingest {
            Ok((m, h)) => format!(
                "{m} events in the last minute ({:.1} per second), {h} in the last hour",
                m as f64 / 60.0
            ),
            Err(p) => text(&p.detail),
        },
    );
    fact(
        "Search index",
        "index-lag",
        match indexed {
            Ok(n) => format!("{n} events indexed, {} behind the log", c.size.saturating_sub(n)),
            Err(p) => text(&p.detail),
        },
    );
    fact(
        "Witnesses",
        "witnesses",
        match st.witnessing.as_ref().map(crate::witnessing::info) {
            Some(w) => text(&serde_json::to_string(&w).unwrap_or_default()),
            None => "no witness policy is configured".to_owned(),
        },
    );
    fact(
        "Verifier key the server reports",
        "server-vkey",
        format!("<code>{}</code>", text(&st.verifier_key)),
    );
    b.push_str("</dl><h2>Latest checkpoint</h2>");
    let _ = write!(b, "<pre id=\"checkpoint\">{}</pre>", text(&c.checkpoint));
    b.push_str(
        "<p class=\"note\">The server reports this key; the console checks proofs only against the key \
         <a href=\"/ui/settings\">you pin in this browser</a>, which you should take from somewhere other than this server.</p>",
    );
    html_response(StatusCode::OK, html::page("Log", Some(&frame(&s)), &b))
}

fn cell(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => text(s),
        Some(Value::Null) | None => String::new(),
        Some(v) => text(&v.to_string()),
    }
}

/// One search result row.
fn row(out: &mut String, index: u64, entry: &[u8]) {
    let Ok(e) = serde_json::from_slice::<Value>(entry) else {
        let _ = write!(
            out,
            "<tr><td><a href=\"/ui/events/{index}\">{index}</a></td><td colspan=\"5\">(not a JSON event)</td></tr>"
        );
        return;
    };
    let actor = e.get("actor");
    let actor_id = actor.and_then(|a| a.get("id")).and_then(Value::as_str).unwrap_or("");
    let attested = actor.and_then(|a| a.get("attested_by")).and_then(|a| a.get("id")).and_then(Value::as_str);
    let resource = e.get("resource").map(|r| {
        let t = r.get("type").and_then(Value::as_str).unwrap_or("");
        let id = r.get("id").and_then(Value::as_str).unwrap_or("");
        format!("{t} {id}")
    });
    let mark = match attested {
        Some(by) => format!(
            " <span class=\"reported\" title=\"reported by a source\">reported by {}</span>",
            text(by)
        ),
        None => String::new(),
    };
    let _ = write!(
        out,
        "<tr><td><a href=\"/ui/events/{index}\">{index}</a></td><td>{}</td><td><a href=\"/ui/search?actor={}\">{}</a>{mark}</td><td>{}</td><td>{}</td><td class=\"outcome\">{}</td></tr>",
        cell(e.get("logged_at")),
        url(actor_id),
        text(actor_id),
        cell(e.get("action")),
        resource.map(|r| text(&r)).unwrap_or_default(),
        cell(e.get("outcome")),
    );
}

/// `GET /ui/search`: the API's filters, newest first, 50 a page.
pub async fn search(
    State(st): St,
    Extension(s): Extension<SignedIn>,
    StrictQuery(mut q): StrictQuery<SearchQuery>,
) -> Response {
    for f in [
        &mut q.actor,
        &mut q.action,
        &mut q.resource,
        &mut q.outcome,
        &mut q.since,
        &mut q.until,
        &mut q.cursor,
    ] {
        if f.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *f = None;
        }
    }
    if q.limit.is_none() {
        q.limit = Some(PAGE_EVENTS.to_owned());
    }
    let mut b = String::from("<form method=\"get\" action=\"/ui/search\" class=\"filters\">");
    for (name, label, v) in [
        ("actor", "Actor", &q.actor),
        ("action", "Action", &q.action),
        ("resource", "Resource", &q.resource),
        ("outcome", "Outcome", &q.outcome),
        ("since", "Since (RFC 3339)", &q.since),
        ("until", "Until (RFC 3339)", &q.until),
    ] {
        let _ = write!(
            b,
            "<label>{label} <input name=\"{name}\" id=\"f-{name}\" value=\"{}\"></label>",
            attr(v.as_deref().unwrap_or(""))
        );
    }
    b.push_str("<button type=\"submit\" id=\"search\">Search</button></form>");
    let filters: Vec<(&str, String)> = [
        ("actor", &q.actor),
        ("action", &q.action),
        ("resource", &q.resource),
        ("outcome", &q.outcome),
        ("since", &q.since),
        ("until", &q.until),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
    .collect();
    let page = match search::run(&st, q).await {
        Ok(p) => p,
        Err(p) => return problem_page(&s, &p),
    };
    let _ = write!(
        b,
        "<p class=\"note\" id=\"index-state\">The index has {} of the log's {} events.</p>",
        page.indexed_size, page.tree_size
    );
    b.push_str("<table id=\"results\"><thead><tr><th>Index</th><th>Logged at</th><th>Actor</th><th>Action</th><th>Resource</th><th>Outcome</th></tr></thead><tbody>");
    for (i, e) in &page.events {
        row(&mut b, *i, e);
    }
    b.push_str("</tbody></table>");
    if page.events.is_empty() {
        b.push_str("<p id=\"no-results\">No event matches.</p>");
    }
    let mut export = String::new();
    for (k, v) in &filters {
        let _ = write!(export, "&{k}={}", url(v));
    }
    let _ = write!(
        b,
        "<p class=\"exports\">Export this selection (at most {MAX_EXPORT_EVENTS} events, newest first): \
         <a id=\"export-jsonl\" href=\"/ui/export?format=jsonl{e}\">JSON Lines</a> \
         <a id=\"export-ocsf\" href=\"/ui/export?format=ocsf{e}\">OCSF</a> \
         <a id=\"export-cef\" href=\"/ui/export?format=cef{e}\">CEF</a>; \
         or an <a id=\"export-bundle\" href=\"/ui/export?format=bundle{e}\">evidence bundle</a> of its newest {MAX_BUNDLE_EVENTS} events, \
         each with its inclusion proof against the signed checkpoint (check it offline with <code>graven verify file.tar --vkey ...</code>).</p>",
        e = attr(&export)
    );
    if let Some(next) = &page.next_cursor {
        let mut href = String::from("/ui/search?");
        for (k, v) in &filters {
            let _ = write!(href, "{k}={}&", url(v));
        }
        let _ = write!(href, "cursor={}", url(next));
        let _ = write!(b, "<p><a id=\"next\" href=\"{}\">Older events</a></p>", attr(&href));
    }
    html_response(StatusCode::OK, html::page("Search", Some(&frame(&s)), &b))
}

/// Most events one export holds.
pub const MAX_EXPORT_EVENTS: u64 = 100_000;

/// The query of `GET /ui/export`: a format and the search's filters.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    format: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    resource: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// `GET /ui/export?format=jsonl|ocsf|cef&<filters>`: the selection a search shows, newest
/// first, as `graven export` writes each record (origin, index, leaf hash), at most
/// [`MAX_EXPORT_EVENTS`]; streamed as it is read.
pub async fn export(
    State(st): St,
    Extension(s): Extension<SignedIn>,
    StrictQuery(q): StrictQuery<ExportQuery>,
) -> Response {
    use futures_util::StreamExt as _;
    use graven_export::format::{Format, Record, render};
    if q.format.as_deref() == Some("bundle") {
        let filters = SearchQuery {
            actor: q.actor.filter(|v| !v.trim().is_empty()),
            action: q.action.filter(|v| !v.trim().is_empty()),
            resource: q.resource.filter(|v| !v.trim().is_empty()),
            outcome: q.outcome.filter(|v| !v.trim().is_empty()),
            since: q.since.filter(|v| !v.trim().is_empty()),
            until: q.until.filter(|v| !v.trim().is_empty()),
            limit: Some("1000".into()),
            ..SearchQuery::default()
        };
        return match bundle(&st, filters).await {
            Ok(r) => r,
            Err(p) => problem_page(&s, &p),
        };
    }
    let (format, ext) = match q.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => (Format::Jsonl, "jsonl"),
        "ocsf" => (Format::Ocsf, "ocsf.jsonl"),
        "cef" => (Format::Cef, "cef"),
        f => {
            return problem_page(
                &s,
                &Problem::bad_request(
                    "bad-parameter",
                    format!("format {f:?}: use jsonl, ocsf, cef or bundle"),
                ),
            );
        }
    };
    let blank = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let base = SearchQuery {
        actor: blank(q.actor),
        action: blank(q.action),
        resource: blank(q.resource),
        outcome: blank(q.outcome),
        since: blank(q.since),
        until: blank(q.until),
        limit: Some("1000".into()),
        ..SearchQuery::default()
    };
    // The first page now, so that a bad filter is a page with its error, not a cut download.
    let first = match search::run(&st, base.clone()).await {
        Ok(p) => p,
        Err(p) => return problem_page(&s, &p),
    };
    let origin = st.origin.clone();
    let st = st.clone();
    let lines = move |page: &search::SearchPage, left: &mut u64| -> Vec<u8> {
        let mut out = Vec::new();
        for (i, e) in &page.events {
            if *left == 0 {
                break;
            }
            *left -= 1;
            let r = Record { origin: &origin, index: *i, leaf: e, leaf_hash: graven_core::leaf_hash(e) };
            out.extend_from_slice(render(format, &r).as_bytes());
            out.push(b'\n');
        }
        out
    };
    let mut left = MAX_EXPORT_EVENTS;
    let head = lines(&first, &mut left);
    let state = (first.next_cursor, left, st, base, lines);
    let rest = futures_util::stream::unfold(state, |(cursor, mut left, st, base, lines)| async move {
        let cursor = cursor.filter(|_| left > 0)?;
        let q = SearchQuery { cursor: Some(cursor), ..base.clone() };
        match search::run(&st, q).await {
            Ok(page) => {
                let chunk = lines(&page, &mut left);
                Some((
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk)),
                    (page.next_cursor, left, st, base, lines),
                ))
            }
            Err(p) => Some((Err(std::io::Error::other(p.detail)), (None, 0, st, base, lines))),
        }
    });
    let stream =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(axum::body::Bytes::from(head)) })
            .chain(rest);
    let ctype = if format == Format::Cef { "text/plain; charset=utf-8" } else { "application/x-ndjson" };
    let disposition = format!("attachment; filename=\"graven-export.{ext}\"");
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// Most events in an evidence bundle made by the console (it is built in memory).
pub const MAX_BUNDLE_EVENTS: usize = 10_000;

/// An evidence bundle (docs/bundle-format.md, as `graven export --bundle` writes) of the newest
/// [`MAX_BUNDLE_EVENTS`] events a search selects, each with its inclusion proof against the
/// committed checkpoint, and the log's verifier key: `graven verify <file.tar> --vkey ...`
/// checks it offline.
async fn bundle(st: &super::state::ConsoleState, base: SearchQuery) -> Result<Response, Problem> {
    let c = st.engine.committed();
    let mut picked: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut q = base.clone();
    loop {
        let page = search::run(st, q.clone()).await?;
        for (i, e) in page.events {
            if i < c.size && picked.len() < MAX_BUNDLE_EVENTS {
                picked.push((i, e));
            }
        }
        match page.next_cursor {
            Some(next) if picked.len() < MAX_BUNDLE_EVENTS => q.cursor = Some(next),
            _ => break,
        }
    }
    picked.sort_by_key(|(i, _)| *i);
    picked.dedup_by_key(|(i, _)| *i);
    let key = graven_core::note::VerifierKey::parse(&st.verifier_key)
        .map_err(|e| Problem::internal(e.to_string()))?;
    let checkpoint =
        graven_core::checkpoint::VerifiedCheckpoint::open(c.checkpoint.as_bytes(), &key, key.name())
            .map_err(|e| Problem::internal(format!("the committed checkpoint: {e}")))?;
    let reader = st.reader.clone();
    let size = TreeSize(c.size);
    let tar = blocking(move || {
        let mut r = reader.lock().unwrap_or_else(|p| p.into_inner());
        let internal = |e: graven_verify::BundleWriteError| Problem::internal(e.to_string());
        let mut w = graven_verify::BundleWriter::new(Vec::new(), &key, &checkpoint).map_err(internal)?;
        for (i, leaf) in &picked {
            let proof = r.inclusion_proof(LeafIndex(*i), size).map_err(read_problem)?;
            w.add_event(*i, leaf, &proof).map_err(internal)?;
        }
        w.finish().map_err(internal)
    })
    .await?;
    let mut resp = tar.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"graven-evidence.tar\""),
    );
    Ok(resp)
}

/// `GET /ui/events/{index}`: the entry as stored, its place in the log, and the material for
/// the browser's own check (entry bytes, proof, signed checkpoint) in data attributes.
pub async fn event(State(st): St, Extension(s): Extension<SignedIn>, Path(index): Path<String>) -> Response {
    let Ok(index) = index.parse::<u64>() else {
        return problem_page(
            &s,
            &Problem::bad_request("bad-parameter", "the event index is a number: /ui/events/42"),
        );
    };
    let c = st.engine.committed();
    if index >= c.size {
        return problem_page(
            &s,
            &Problem::not_found(format!("no event {index}: the log has {} events (0-based)", c.size)),
        );
    }
    let reader = st.reader.clone();
    let size = TreeSize(c.size);
    let read = blocking(move || {
        let mut r = reader.lock().unwrap_or_else(|p| p.into_inner());
        let entry = r.entry(index, size).map_err(read_problem)?;
        let proof = r.inclusion_proof(LeafIndex(index), size).map_err(read_problem)?;
        Ok((entry, proof))
    })
    .await;
    let (entry, proof) = match read {
        Ok(x) => x,
        Err(p) => return problem_page(&s, &p),
    };
    let proof: Vec<String> = proof.iter().map(Hash::to_base64).collect();
    let shown = String::from_utf8_lossy(&entry);
    let mut b = String::new();
    let _ = write!(
        b,
        "<dl class=\"facts\"><dt>Index</dt><dd id=\"index\">{index}</dd><dt>Tree size</dt><dd>{}</dd>\
         <dt>Leaf hash the server reports</dt><dd><code>{}</code></dd></dl>",
        c.size,
        text(&graven_core::leaf_hash(&entry).to_base64())
    );
    b.push_str("<h2>Check in this browser</h2>");
    let _ = write!(
        b,
        "<div id=\"proof-check\" data-index=\"{index}\" data-size=\"{}\" data-entry=\"{}\" data-proof=\"{}\" data-checkpoint=\"{}\">\
         <p id=\"verdict\" class=\"pending\">Checking…</p><ul id=\"checks\"></ul></div>",
        c.size,
        B64.encode(&entry),
        attr(&proof.join(",")),
        B64.encode(c.checkpoint.as_bytes()),
    );
    b.push_str("<h2>The entry as stored (canonical JSON)</h2>");
    let _ = write!(b, "<pre id=\"entry\">{}</pre>", text(&shown));
    b.push_str("<h2>Signed checkpoint</h2>");
    let _ = write!(b, "<pre id=\"checkpoint\">{}</pre>", text(&c.checkpoint));
    b.push_str("<h2>Inclusion proof</h2><ol id=\"proof\">");
    for h in &proof {
        let _ = write!(b, "<li><code>{}</code></li>", text(h));
    }
    b.push_str("</ol>");
    html_response(StatusCode::OK, html::page(&format!("Event {index}"), Some(&frame(&s)), &b))
}

/// `GET /ui/settings`: the verifier key pinned in this browser (kept in its local storage by
/// the console's script; the server never sees it).
pub async fn settings(Extension(s): Extension<SignedIn>) -> Response {
    let b = "<p>Paste the log's verifier key (<code>name+keyid+base64</code>) from a source you trust: \
             the log's documentation, your deployment's configuration, a colleague. The console checks proofs \
             against this key only; it is kept in this browser and never sent to the server.</p>\
             <form id=\"pin-form\" class=\"pin\"><input id=\"vkey\" name=\"vkey\" size=\"80\" autocomplete=\"off\">\
             <button type=\"submit\" id=\"pin\">Pin this key</button><button type=\"button\" id=\"unpin\">Forget it</button></form>\
             <p id=\"pinned\">No key pinned in this browser.</p>";
    html_response(StatusCode::OK, html::page("Verifier key", Some(&frame(&s)), b))
}

/// An index entry's `logged_at`, as the log writes it.
fn seen_at(s: &graven_index::Seen) -> String {
    s.at_us.map_or_else(|| "(no time)".to_owned(), graven_core::event::format_timestamp)
}

fn seen(s: &Option<graven_api::InventorySeen>) -> String {
    match s {
        Some(s) => {
            format!("<a href=\"/ui/events/{}\">{}</a>", s.index, text(s.at.as_deref().unwrap_or("(no time)")))
        }
        None => "never".to_owned(),
    }
}

/// `GET /ui/identities`: the inventory (`GET /v1/inventory`'s filters and paging; `format=csv`
/// or `json` downloads the page).
pub async fn identities(
    State(st): St,
    Extension(s): Extension<SignedIn>,
    StrictQuery(q): StrictQuery<crate::http::inventory::InventoryQuery>,
) -> Response {
    use crate::http::inventory::{Format, parse, respond, run};
    let q = q.without_blanks();
    let raw = q.raw();
    let (filters, format) = match parse(q, None) {
        Ok(x) => x,
        Err(p) => return problem_page(&s, &p),
    };
    let page = match run(&st, filters).await {
        Ok(p) => p,
        Err(p) => return problem_page(&s, &p),
    };
    if format == Format::Csv || raw.iter().any(|(k, v)| *k == "format" && v == "json") {
        let mut resp = respond(page, format);
        let name = if format == Format::Csv { "graven-inventory.csv" } else { "graven-inventory.json" };
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        return resp;
    }
    let value = |k: &str| raw.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str()).unwrap_or("");
    let mut b = String::from("<form method=\"get\" action=\"/ui/identities\" class=\"filters\">");
    for (name, label) in [
        ("dormant_days", "Dormant for days"),
        ("key_older_than_days", "A key older than days"),
        ("kind", "Kind"),
    ] {
        let _ = write!(
            b,
            "<label>{label} <input name=\"{name}\" id=\"f-{name}\" value=\"{}\"></label>",
            attr(value(name))
        );
    }
    let select = |b: &mut String, name: &str, label: &str, options: &[(&str, &str)]| {
        let _ = write!(b, "<label>{label} <select name=\"{name}\" id=\"f-{name}\">");
        for (v, shown) in options {
            let sel = if value(name) == *v { " selected" } else { "" };
            let _ = write!(b, "<option value=\"{v}\"{sel}>{shown}</option>");
        }
        b.push_str("</select></label>");
    };
    select(
        &mut b,
        "status",
        "Status",
        &[("", "any"), ("active", "active"), ("disabled", "disabled"), ("revoked", "revoked")],
    );
    select(&mut b, "reported", "Reported by a source", &[("", "either"), ("true", "yes"), ("false", "no")]);
    select(&mut b, "never_used", "Never used", &[("", "either"), ("true", "never used")]);
    b.push_str("<button type=\"submit\" id=\"filter\">Filter</button></form>");
    let mut query = String::new();
    for (k, v) in raw.iter().filter(|(k, v)| *k != "cursor" && *k != "format" && !v.is_empty()) {
        let _ = write!(query, "&{k}={}", url(v));
    }
    let _ = write!(
        b,
        "<p class=\"note\" id=\"index-state\">{} identities on this page; the inventory counts the log's first {} of {} entries, at {}. \
         Download this page: <a id=\"inventory-csv\" href=\"/ui/identities?format=csv{q}\">CSV</a> \
         <a id=\"inventory-json\" href=\"/ui/identities?format=json{q}\">JSON</a>.</p>",
        page.identities.len(),
        page.indexed_size,
        page.tree_size,
        text(&page.now),
        q = attr(&query)
    );
    b.push_str(
        "<table id=\"identities\"><thead><tr><th>Identity</th><th>Kind</th><th>Source</th><th>Owner</th><th>Status</th>\
         <th>Keys (oldest, last used, next expiry)</th><th>First seen</th><th>Last seen</th><th>24 h</th><th>30 d</th><th>Denied</th></tr></thead><tbody>",
    );
    for i in &page.identities {
        let source = if i.registered && !i.reported {
            "registered".to_owned()
        } else if i.reported {
            format!("reported by {}", text(&i.reported_by.join(", ")))
        } else {
            "seen in the log".to_owned()
        };
        let keys = if i.keys.is_empty() {
            String::new()
        } else {
            let oldest = i.keys.iter().filter(|k| k.state == "active").map(|k| k.age_days).max();
            let last = i.keys.iter().filter_map(|k| k.last_used.as_ref()).filter_map(|u| u.at.clone()).max();
            let expires =
                i.keys.iter().filter(|k| k.state == "active").filter_map(|k| k.expires_at.clone()).min();
            format!(
                "{} ({}, {}{})",
                i.keys.len(),
                oldest.map_or_else(|| "none active".to_owned(), |d| format!("{d} days")),
                last.map_or_else(|| "never used".to_owned(), |t| text(&t)),
                expires.map_or_else(String::new, |t| format!(", one expires {}", text(&t)))
            )
        };
        let _ = write!(
            b,
            "<tr><td><a href=\"/ui/identity?id={}\">{}</a></td><td>{}</td><td>{source}</td><td>{}</td><td>{}</td><td>{keys}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            url(&i.id),
            text(&i.id),
            text(i.kind.as_deref().unwrap_or("")),
            text(i.owner.as_deref().unwrap_or("")),
            text(i.status.as_deref().unwrap_or("")),
            seen(&i.first_seen),
            seen(&i.last_seen),
            i.events_24h,
            i.events_30d,
            i.denied,
        );
    }
    b.push_str("</tbody></table>");
    if let Some(next) = &page.next_cursor {
        let _ = write!(
            b,
            "<p><a id=\"next\" href=\"/ui/identities?cursor={}{}\">More identities</a></p>",
            url(next),
            attr(&query)
        );
    }
    html_response(StatusCode::OK, html::page("Identities", Some(&frame(&s)), &b))
}

/// The query of `GET /ui/identity`: the identity and its timeline's filters.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityQuery {
    id: String,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

/// Days shown in an identity's histogram.
const HISTOGRAM_DAYS: i64 = 30;

/// `GET /ui/identity?id=...`: one identity: what the inventory knows, its activity per day
/// over 30 days, the credentials its events carry (each a link to what it did), and its
/// events newest first.
pub async fn identity(
    State(st): St,
    Extension(s): Extension<SignedIn>,
    StrictQuery(q): StrictQuery<IdentityQuery>,
) -> Response {
    if q.id.is_empty() || q.id.len() > 1024 {
        return problem_page(
            &s,
            &Problem::bad_request("bad-parameter", "give the identity: /ui/identity?id=svc:deployer"),
        );
    }
    let index = st.index.clone();
    let id = q.id.clone();
    let read = blocking(move || {
        let a = index.activity(&id).map_err(|e| Problem::internal(e.to_string()))?;
        let c = index.credentials(&id).map_err(|e| Problem::internal(e.to_string()))?;
        Ok((a, c))
    })
    .await;
    let (activity, credentials) = match read {
        Ok(x) => x,
        Err(p) => return problem_page(&s, &p),
    };
    let record = st.registry.get(&q.id);
    let mut b = String::from("<dl class=\"facts\">");
    let _ = write!(b, "<dt>Identity</dt><dd id=\"identity\">{}</dd>", text(&q.id));
    match &record {
        Some(r) => {
            let _ = write!(
                b,
                "<dt>Registered</dt><dd>{} {}, owner {}, role {}, status {}</dd>",
                text(r.kind.as_str()),
                text(&r.id),
                text(&r.owner),
                text(r.role.as_str()),
                text(r.status.as_str())
            );
        }
        None => b.push_str("<dt>Registered</dt><dd>no: known from the log only</dd>"),
    }
    let now_us = st.now_ms().saturating_mul(1000);
    match &activity {
        Some(a) => {
            let at = |x: &graven_index::Seen| {
                format!("<a href=\"/ui/events/{}\">{}</a>", x.index, text(&seen_at(x)))
            };
            let _ = write!(
                b,
                "<dt>Events</dt><dd id=\"events\">{} ({} denied{})</dd><dt>First seen</dt><dd>{}</dd><dt>Last seen</dt><dd>{}</dd>\
                 <dt>Last 24 h / 30 d</dt><dd>{} / {}</dd>",
                a.events,
                a.denied,
                if a.reported == 0 {
                    String::new()
                } else {
                    format!(", {} reported by {}", a.reported, text(&a.sources.join(", ")))
                },
                at(&a.first),
                at(&a.last),
                a.events_last_hours(now_us),
                a.events_last_days(now_us)
            );
        }
        None => b.push_str("<dt>Events</dt><dd id=\"events\">none indexed</dd>"),
    }
    b.push_str("</dl>");
    // Activity per UTC day, the last 30 days, as an inline SVG (no script, no style).
    if let Some(a) = &activity {
        let today = now_us.div_euclid(86_400_000_000);
        let counts: Vec<u64> = (0..HISTOGRAM_DAYS)
            .map(|k| {
                let day = today - (HISTOGRAM_DAYS - 1 - k);
                a.daily().iter().find(|(d, _)| i64::from(*d) == day).map_or(0, |(_, n)| u64::from(*n))
            })
            .collect();
        let max = counts.iter().copied().max().unwrap_or(0).max(1);
        b.push_str("<h2>Activity per day (UTC), the last 30 days</h2><svg id=\"histogram\" width=\"620\" height=\"110\" viewBox=\"0 0 620 110\" role=\"img\" aria-label=\"events per day\">");
        for (k, n) in counts.iter().enumerate() {
            let h = n * 90 / max;
            let ago = HISTOGRAM_DAYS as usize - 1 - k;
            let when = match ago {
                0 => "today".to_owned(),
                1 => "yesterday".to_owned(),
                d => format!("{d} days ago"),
            };
            let _ = write!(
                b,
                "<rect x=\"{}\" y=\"{}\" width=\"16\" height=\"{h}\" fill=\"#0b5cad\"><title>{when}: {n} events</title></rect>",
                k * 20 + 10,
                100 - h
            );
        }
        let _ = write!(
            b,
            "<text x=\"10\" y=\"108\" font-size=\"10\">30 days ago</text><text x=\"560\" y=\"108\" font-size=\"10\">today</text><text x=\"10\" y=\"10\" font-size=\"10\">{max}</text></svg>"
        );
    }
    if !credentials.is_empty() {
        b.push_str("<h2>Credentials its events carry</h2><table id=\"credentials\"><thead><tr><th>Credential</th><th>Events</th><th>First use</th><th>Last use</th></tr></thead><tbody>");
        for (c, u) in &credentials {
            let _ = write!(
                b,
                "<tr><td><a href=\"/ui/credential?id={}&amp;credential={}\">{}</a></td><td>{}</td><td><a href=\"/ui/events/{}\">{}</a></td><td><a href=\"/ui/events/{}\">{}</a></td></tr>",
                url(&q.id),
                url(c),
                text(c),
                u.events,
                u.first.index,
                text(&seen_at(&u.first)),
                u.last.index,
                text(&seen_at(&u.last))
            );
        }
        b.push_str("</tbody></table>");
    }
    // Its events, newest first, with the search's filters.
    let sq = SearchQuery {
        actor: Some(q.id.clone()),
        action: q.action.clone().filter(|v| !v.is_empty()),
        outcome: q.outcome.clone().filter(|v| !v.is_empty()),
        since: q.since.clone().filter(|v| !v.is_empty()),
        until: q.until.clone().filter(|v| !v.is_empty()),
        cursor: q.cursor.clone().filter(|v| !v.is_empty()),
        limit: Some(PAGE_EVENTS.to_owned()),
        ..SearchQuery::default()
    };
    let _ = write!(
        b,
        "<h2>Events, newest first</h2><form method=\"get\" action=\"/ui/identity\" class=\"filters\"><input type=\"hidden\" name=\"id\" value=\"{}\">",
        attr(&q.id)
    );
    for (name, label, v) in [
        ("action", "Action", &q.action),
        ("outcome", "Outcome", &q.outcome),
        ("since", "Since (RFC 3339)", &q.since),
        ("until", "Until (RFC 3339)", &q.until),
    ] {
        let _ = write!(
            b,
            "<label>{label} <input name=\"{name}\" value=\"{}\"></label>",
            attr(v.as_deref().unwrap_or(""))
        );
    }
    b.push_str("<button type=\"submit\">Filter</button></form>");
    let page = match search::run(&st, sq).await {
        Ok(p) => p,
        Err(p) => return problem_page(&s, &p),
    };
    b.push_str("<table id=\"results\"><thead><tr><th>Index</th><th>Logged at</th><th>Actor</th><th>Action</th><th>Resource</th><th>Outcome</th></tr></thead><tbody>");
    for (i, e) in &page.events {
        row(&mut b, *i, e);
    }
    b.push_str("</tbody></table>");
    if let Some(next) = &page.next_cursor {
        let mut href = format!("/ui/identity?id={}", url(&q.id));
        for (k, v) in
            [("action", &q.action), ("outcome", &q.outcome), ("since", &q.since), ("until", &q.until)]
        {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                let _ = write!(href, "&{k}={}", url(v));
            }
        }
        let _ = write!(href, "&cursor={}", url(next));
        let _ = write!(b, "<p><a id=\"next\" href=\"{}\">Older events</a></p>", attr(&href));
    }
    html_response(StatusCode::OK, html::page(&format!("Identity {}", q.id), Some(&frame(&s)), &b))
}

/// The query of `GET /ui/credential`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialQuery {
    id: String,
    credential: String,
    cursor: Option<String>,
}

/// Events of the identity read per credential page, at most.
const CREDENTIAL_SCAN: usize = 20_000;

/// `GET /ui/credential?id=...&credential=...`: what one credential did ("what did this leaked
/// key do?"): its use (exact, from the inventory), and the identity's events that carry it,
/// newest first, found by reading the identity's events (at most 20,000 per page, said so).
pub async fn credential(
    State(st): St,
    Extension(s): Extension<SignedIn>,
    StrictQuery(q): StrictQuery<CredentialQuery>,
) -> Response {
    if q.id.is_empty() || q.credential.is_empty() || q.id.len() > 1024 || q.credential.len() > 1024 {
        return problem_page(
            &s,
            &Problem::bad_request(
                "bad-parameter",
                "give the identity and the credential: /ui/credential?id=svc:deployer&credential=key:0123456789abcdef",
            ),
        );
    }
    let index = st.index.clone();
    let id = q.id.clone();
    let usage =
        match blocking(move || index.credentials(&id).map_err(|e| Problem::internal(e.to_string()))).await {
            Ok(u) => u.into_iter().find(|(c, _)| *c == q.credential).map(|(_, u)| u),
            Err(p) => return problem_page(&s, &p),
        };
    let mut b = format!(
        "<dl class=\"facts\"><dt>Credential</dt><dd id=\"credential\">{}</dd><dt>Of</dt><dd><a href=\"/ui/identity?id={}\">{}</a></dd>",
        text(&q.credential),
        url(&q.id),
        text(&q.id)
    );
    match &usage {
        Some(u) => {
            let _ = write!(
                b,
                "<dt>Events</dt><dd id=\"uses\">{}</dd><dt>First use</dt><dd><a href=\"/ui/events/{}\">{}</a></dd><dt>Last use</dt><dd><a href=\"/ui/events/{}\">{}</a></dd></dl>",
                u.events,
                u.first.index,
                text(&seen_at(&u.first)),
                u.last.index,
                text(&seen_at(&u.last))
            );
        }
        None => b.push_str("<dt>Events</dt><dd id=\"uses\">0: no indexed event carries it</dd></dl>"),
    }
    let mut found = Vec::new();
    let mut scanned = 0usize;
    let mut cursor = q.cursor.clone().filter(|c| !c.is_empty());
    let mut resume = None;
    while usage.is_some() && scanned < CREDENTIAL_SCAN && found.len() < 50 {
        let sq = SearchQuery {
            actor: Some(q.id.clone()),
            cursor: cursor.clone(),
            limit: Some("1000".into()),
            ..SearchQuery::default()
        };
        let page = match search::run(&st, sq).await {
            Ok(p) => p,
            Err(p) => return problem_page(&s, &p),
        };
        for (i, e) in page.events {
            scanned += 1;
            let carries = serde_json::from_slice::<Value>(&e).ok().is_some_and(|v| {
                v.get("actor").and_then(|a| a.get("credential")).and_then(Value::as_str)
                    == Some(q.credential.as_str())
            });
            if carries {
                found.push((i, e));
            }
        }
        resume = page.next_cursor.clone();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let _ = write!(
        b,
        "<h2>Its events, newest first</h2><p class=\"note\" id=\"scanned\">{} found among {scanned} events of the identity read on this page.</p>",
        found.len()
    );
    b.push_str("<table id=\"results\"><thead><tr><th>Index</th><th>Logged at</th><th>Actor</th><th>Action</th><th>Resource</th><th>Outcome</th></tr></thead><tbody>");
    for (i, e) in &found {
        row(&mut b, *i, e);
    }
    b.push_str("</tbody></table>");
    if let Some(next) = resume.filter(|_| usage.is_some()) {
        let href = format!(
            "/ui/credential?id={}&credential={}&cursor={}",
            url(&q.id),
            url(&q.credential),
            url(&next)
        );
        let _ = write!(b, "<p><a id=\"next\" href=\"{}\">Older events</a></p>", attr(&href));
    }
    html_response(StatusCode::OK, html::page("Credential", Some(&frame(&s)), &b))
}
