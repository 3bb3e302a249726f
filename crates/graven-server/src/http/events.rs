//! `POST /v1/events` (one JSON event, or a batch as NDJSON) and `GET /v1/events/{index}`.
//!
//! An append: the body is shaped into events attributed to the verified principal
//! ([`graven_auth::shape`]), client signatures are checked
//! ([`graven_auth::event_signature`]), the engine commits, and the answer is one receipt per
//! event, written directly (see [`write_receipts`]).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use graven_auth::event_signature;
use graven_auth::principal::Principal;
use graven_auth::shape::{self as event, EventError};
use graven_core::hash::{Hash, LeafIndex, TreeSize};
use graven_engine::engine::{Entry, OnceKey, Receipt, SubmitError};

use super::body::read_body;
use super::state::{AppState, Peer, blocking, finish, parse_index, read_problem};
use crate::http::audit::{self, Refusal};
use crate::problem::{Problem, submit_problem};

type St = State<Arc<AppState>>;

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

/// Receipts per chunk of a streamed NDJSON answer.
const RECEIPTS_PER_CHUNK: usize = 256;

/// Writes receipts as JSON objects, each followed by `sep`. Written directly rather than
/// through `serde_json::Value`: a bulk request answers thousands of receipts, and the strings
/// shared by a commit (checkpoint, `logged_at`) are escaped once, not once per receipt.
/// `witnessed` says whether their checkpoint carries the witness quorum.
pub fn write_receipts<R: std::borrow::Borrow<Receipt>>(
    out: &mut String,
    receipts: impl IntoIterator<Item = R>,
    sep: &str,
    witnessed: bool,
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
        let _ = write!(out, ",\"tree_size\":{},\"witnessed\":{witnessed}}}", r.tree_size);
        out.push_str(sep);
    }
}

pub async fn post_events(
    State(st): St,
    axum::Extension(principal): axum::Extension<Arc<Principal>>,
    peer: Option<axum::Extension<Peer>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = post_events_inner(&st, &principal, uri.query(), &headers, body).await;
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
        Err(Refused::ClientSig(problem, reason)) => {
            let refusal = Refusal {
                who: Some(&principal),
                claimed_key: None,
                claimed_identity: None,
                reason,
                route: "POST /v1/events",
                attempted_action: None,
                peer: peer.map(|p| p.0.0),
            };
            audit::denied(&st, refusal).await;
            Err(problem)
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
    /// A client-signed event whose signature or key was refused, or that was replayed: the
    /// problem and the denied-record reason (also recorded).
    ClientSig(Problem, &'static str),
}

impl From<Problem> for Refused {
    fn from(p: Problem) -> Self {
        Refused::Problem(p)
    }
}

/// A refused client signature as the problem to answer: 400 for a request that is malformed
/// (a version 1 signature), else 403.
fn client_sig_refusal(r: event_signature::Refusal) -> Refused {
    let problem = if r.is_request_error() {
        Problem::bad_request(r.reason, r.detail)
    } else {
        Problem::new(StatusCode::FORBIDDEN, r.reason, "Client signature refused", r.detail)
    };
    Refused::ClientSig(problem, r.reason)
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
    Refused::ClientSig(
        Problem::new(
            StatusCode::CONFLICT,
            "client-signature-replayed",
            "Client signature already used",
            format!(
                "{at}{what} is already in the log, and a signed event is accepted once; if this is a retry of a request that got no answer, look the event up (GET /v1/events?actor=...) before signing it again under a new id; nothing was appended"
            ),
        ),
        "client-signature-replayed",
    )
}

/// `receipt=range` asks a batch for one range receipt (docs/receipts.md); `receipt=each`, the
/// default, for one receipt per event.
fn wants_range(query: Option<&str>) -> Result<bool, Problem> {
    let mut range = false;
    for pair in query.unwrap_or("").split('&') {
        let Some((k, v)) = pair.split_once('=').or((pair == "receipt").then_some((pair, ""))) else {
            continue;
        };
        if k != "receipt" {
            continue;
        }
        range = match v {
            "range" => true,
            "each" => false,
            other => {
                return Err(Problem::bad_request(
                    "bad-parameter",
                    format!(
                        "receipt must be each (a receipt per event) or range (one receipt for a batch), got {:?}",
                        other.chars().take(40).collect::<String>()
                    ),
                ));
            }
        };
    }
    Ok(range)
}

async fn post_events_inner(
    st: &AppState,
    principal: &Principal,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refused> {
    let witnessed = super::witnessed::wants_witnessed(query)?;
    let range = wants_range(query)?;
    if range && witnessed {
        return Err(Refused::Problem(Problem::bad_request(
            "bad-parameter",
            "receipt=range with witnessed=true is not served yet: ask for per-event receipts (receipt=each) with witnessed=true, or a range receipt and fetch a witnessed checkpoint later",
        )));
    }
    let window = i64::try_from(st.engine.config().client_signature_window.as_secs()).unwrap_or(i64::MAX / 4);
    let actor = &principal.actor;
    let patterns = &principal.allowed_actions;
    let allowed = |a: &str| graven_auth::identity::action_allowed(patterns, a);
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
    if witnessed {
        super::witnessed::quorum_reachable(st)?;
    }
    if !ndjson {
        if range {
            return Err(Refused::Problem(Problem::bad_request(
                "bad-parameter",
                "receipt=range is for a batch (application/x-ndjson; a batch of one is fine); one application/json event gets its own receipt",
            )));
        }
        let e = event::shape_with(&body, actor, &allowed).map_err(|e| shape_refusal(e, None))?;
        let signed = e.client_sig;
        let mut entry = Entry::event(e.bytes, e.stamp_at);
        if let Some(c) = &signed {
            event_signature::check(&st.registry, principal, &[(None, c)], st.now_ms(), window)
                .map_err(client_sig_refusal)?;
            entry.once = OnceKey::of(&c.sig, window);
        }
        let mut receipts = st
            .engine
            .submit(vec![entry])
            .await
            .map_err(|e| submit_refusal(e, |_| signed.as_ref().map(|c| (None, &c.sig))))?;
        let r = receipts.pop().ok_or_else(|| Problem::internal("no receipt"))?;
        let (r, cosigned) = if witnessed { witness_receipts(st, vec![r]).await? } else { (vec![r], false) };
        let r = r.into_iter().next().ok_or_else(|| Problem::internal("no receipt"))?;
        let mut out = String::with_capacity(1200);
        write_receipts(&mut out, std::slice::from_ref(&r), "", cosigned);
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
        event_signature::check(&st.registry, principal, &items, st.now_ms(), window)
            .map_err(client_sig_refusal)?;
    }
    if range {
        let r = st.engine.submit_range(entries).await.map_err(|e| {
            submit_refusal(e, |entry| {
                signed.iter().find(|(l, _)| *l == Some(entry + 1)).map(|(l, c)| (*l, &c.sig))
            })
        })?;
        let wire = graven_api::RangeReceipt {
            checkpoint: r.checkpoint.to_string(),
            first_index: r.first_index,
            leaf_hashes: r.leaf_hashes.iter().map(|h| B64.encode(h.as_bytes())).collect(),
            logged_at: r.logged_at.as_deref().map(str::to_owned),
            range_proof: r.range_proof.iter().map(|h| B64.encode(h.as_bytes())).collect(),
            tree_size: r.tree_size,
        };
        let body = serde_json::to_string(&wire).map_err(|e| Problem::internal(e.to_string()))?;
        let mut resp = (StatusCode::CREATED, body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(resp);
    }
    let receipts = st.engine.submit(entries).await.map_err(|e| {
        submit_refusal(e, |entry| {
            signed.iter().find(|(l, _)| *l == Some(entry + 1)).map(|(l, c)| (*l, &c.sig))
        })
    })?;
    let (receipts, cosigned) =
        if witnessed { witness_receipts(st, receipts).await? } else { (receipts, false) };
    // Streamed in chunks rather than built as one string: a 10,000-event batch answers about
    // 11 MB, and one allocation that size costs fresh, kernel-zeroed pages on every request.
    let mut rest = receipts.into_iter();
    let chunks = std::iter::from_fn(move || {
        let mut chunk = String::with_capacity(RECEIPTS_PER_CHUNK * 1200);
        write_receipts(&mut chunk, rest.by_ref().take(RECEIPTS_PER_CHUNK), "\n", cosigned);
        (!chunk.is_empty()).then(|| Ok::<_, std::convert::Infallible>(Bytes::from(chunk)))
    });
    let mut resp =
        (StatusCode::CREATED, Body::from_stream(futures_util::stream::iter(chunks))).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    Ok(resp)
}

/// Receipts of appended events, re-proved against a witnessed checkpoint once one covers them
/// all (within the configured wait). The events are in the log either way: when the quorum is
/// not met in time the receipts stay as they were, marked unwitnessed, rather than an error
/// for an append that happened (a client retrying would append twice); the client fetches a
/// witnessed proof later by index.
async fn witness_receipts(st: &AppState, receipts: Vec<Receipt>) -> Result<(Vec<Receipt>, bool), Refused> {
    let Some(last) = receipts.iter().map(|r| r.index).max() else { return Ok((receipts, false)) };
    match super::witnessed::covering(st, last).await? {
        Some(w) => Ok((super::witnessed::reprove(st, receipts, &w).await?, true)),
        None => Ok((receipts, false)),
    }
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

/// An entry as JSON: the event itself when it is JSON, else base64.
pub(crate) fn entry_field(entry: &[u8]) -> (&'static str, String) {
    match serde_json::from_slice::<&serde_json::value::RawValue>(entry) {
        Ok(raw) => ("event", raw.get().to_owned()),
        Err(_) => ("entry_base64", format!("\"{}\"", B64.encode(entry))),
    }
}

pub async fn get_event(State(st): St, Path(index): Path<String>) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(r: &Receipt) -> serde_json::Value {
        serde_json::json!({
            "index": r.index,
            "logged_at": r.logged_at.as_deref(),
            "leaf_hash": r.leaf_hash.to_base64(),
            "tree_size": r.tree_size,
            "checkpoint": &*r.checkpoint,
            "inclusion_proof": r.inclusion_proof.iter().map(Hash::to_base64).collect::<Vec<_>>(),
            "witnessed": false,
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
        write_receipts(&mut out, &receipts, "\n", false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), receipts.len());
        for (line, r) in lines.iter().zip(&receipts) {
            let got: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(got, reference(r), "{line}");
            // Byte for byte what the API type serialises, and what it reads back.
            let typed = graven_api::Receipt {
                checkpoint: r.checkpoint.to_string(),
                inclusion_proof: r.inclusion_proof.iter().map(Hash::to_base64).collect(),
                index: r.index,
                leaf_hash: r.leaf_hash.to_base64(),
                logged_at: r.logged_at.as_deref().map(str::to_owned),
                tree_size: r.tree_size,
                witnessed: false,
            };
            assert_eq!(*line, serde_json::to_string(&typed).unwrap());
            assert_eq!(serde_json::from_str::<graven_api::Receipt>(line).unwrap(), typed);
        }
    }
}
