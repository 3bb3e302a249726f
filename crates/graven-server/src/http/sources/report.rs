//! What every source shares, from a record the platform's own module has mapped to an event
//! to one all-or-nothing commit:
//! - the source's grant names the platform ([`Batch::new`]) and every subject ([`Batch::add`]);
//! - the stored actor is the subject, `"auth": "attested"`, `attested_by` the source's
//!   credential as the server verified it;
//! - the original record goes under `details.<platform>.record` when the event stays within
//!   the entry limit, else only its SHA-256 (always under `details.<platform>.record_sha256`)
//!   and the mapped fields: never silently cut;
//! - a record with the platform's own event id (`details.<platform>.dedup_id`) already logged
//!   from this source is not logged again ([`Batch::commit`]), so a retry after a lost answer
//!   is not logged twice, after a restart too (the ids are read back from the log's last
//!   entries before the first claim).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use graven_auth::identity::SourceGrant;
use graven_auth::principal::{Actor, Principal};
use graven_auth::shape::{self as event, EventError};
use graven_engine::engine::Entry;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::http::audit::{self, Refusal};
use crate::http::state::{AppState, finish};
use crate::problem::{Problem, submit_problem};
use crate::source_ids::{MAX_REMEMBERED_EVENTS, event_key, key_of_leaf};

/// A record that cannot be read as the platform's format: 400, nothing appended.
pub fn bad(detail: String) -> Problem {
    Problem::bad_request("invalid-source-record", format!("{detail}; nothing was appended"))
}

/// A platform or a subject outside the source's grant: 403, recorded by [`respond`].
pub fn forbidden(detail: String) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "source-not-allowed", "Not allowed for this source", detail)
}

pub use graven_sources::{Record, Subject};

/// A record the platform's module could not read: 400, nothing appended.
pub fn record_problem(e: graven_sources::RecordError) -> Problem {
    bad(e.0)
}

/// The records of one request from one source, checked and shaped, not yet committed.
#[derive(Debug)]
pub struct Batch<'p> {
    principal: &'p Principal,
    grant: &'p SourceGrant,
    platform: &'static str,
    taken: Vec<(Option<u128>, Entry)>,
    skipped: u64,
}

impl<'p> Batch<'p> {
    /// A batch of `platform` records from `principal`, whose grant must name the platform.
    pub fn new(principal: &'p Principal, platform: &'static str) -> Result<Self, Problem> {
        let grant = principal.source.as_ref().filter(|g| g.allows_type(platform)).ok_or_else(|| {
            forbidden(format!(
                "identity {} may not report {platform} events (its source grant does not name {platform}); nothing was appended",
                principal.identity
            ))
        })?;
        Ok(Batch { principal, grant, platform, taken: Vec::new(), skipped: 0 })
    }

    /// At most `max` records in one request (the engine's batch limit).
    pub fn check_count(st: &AppState, n: usize, what: &str) -> Result<(), Problem> {
        let max = st.engine.config().max_batch_events;
        if n > max {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch-too-large",
                "The batch is too large",
                format!("{n} records in one {what}; at most {max}; nothing was appended"),
            ));
        }
        Ok(())
    }

    /// A record the request did not ask for (a stage, a level): counted, not logged.
    pub fn skip(&mut self) {
        self.skipped += 1;
    }

    /// Checks the record's subject against the grant and shapes its event. `at` names the
    /// record in errors (`items[3]`).
    pub fn add(&mut self, at: &str, rec: Record<'_>) -> Result<(), Problem> {
        if !self.grant.allows_subject(&rec.subject.id) {
            return Err(forbidden(format!(
                "{at}: identity {} vouches only for subjects matching {}; {:?} does not match; nothing was appended",
                self.principal.identity,
                self.grant.subjects.join(", "),
                rec.subject.id
            )));
        }
        let actor = attested(rec.subject, self.principal, self.platform);
        let digest = Sha256::digest(rec.original_bytes);
        let mut fields = rec.platform_fields;
        fields.insert("record_sha256".into(), json!(hex(&digest)));
        if let Some(id) = &rec.dedup_id {
            fields.insert("dedup_id".into(), json!(id));
        }
        let body = |fields: &Map<String, Value>| -> Result<Vec<u8>, Problem> {
            let mut ev = rec.event.clone();
            ev.insert("details".into(), json!({ self.platform: fields }));
            serde_json::to_vec(&Value::Object(ev)).map_err(|e| Problem::internal(e.to_string()))
        };
        let mut whole = fields.clone();
        whole.insert("record".into(), rec.original);
        let shaped = match event::shape(&body(&whole)?, &actor) {
            Ok(e) => e,
            // Too large or too deep with the whole record: its digest and the mapped fields.
            Err(EventError::TooLarge(_) | EventError::Json(_)) => {
                event::shape(&body(&fields)?, &actor).map_err(|e| bad(format!("{at}: {e}")))?
            }
            Err(e) => return Err(bad(format!("{at}: {e}"))),
        };
        let key = rec.dedup_id.map(|id| event_key(&self.principal.actor.id, self.platform, &id));
        self.taken.push((key, Entry::event(shaped.bytes, shaped.stamp_at)));
        Ok(())
    }

    /// Commits every record not already logged, in one commit, or none.
    pub async fn commit(self, st: &AppState) -> Result<graven_api::SourceReport, Problem> {
        let keys: Vec<u128> = self.taken.iter().filter_map(|(k, _)| *k).collect();
        if !keys.is_empty() {
            remember_the_log(st).await?;
        }
        let dup = st.source_seen.claim(&keys).map_err(|_| {
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "retry",
                "A record is being logged by another request",
                "a record of this batch is being logged by a request still in flight; send the batch again in a moment (its records already logged are not logged twice); nothing was appended".to_owned(),
            );
            p.retry_after = Some(1);
            p
        })?;
        let mut dup = dup.into_iter();
        let mut fresh_keys = Vec::new();
        let mut entries = Vec::new();
        let mut duplicates = 0u64;
        for (key, entry) in self.taken {
            let Some(k) = key else {
                entries.push(entry);
                continue;
            };
            if dup.next().unwrap_or(false) {
                duplicates += 1;
            } else {
                fresh_keys.push(k);
                entries.push(entry);
            }
        }
        let logged = entries.len() as u64;
        let first_index = if entries.is_empty() {
            None
        } else {
            match st.engine.submit(entries).await {
                Ok(receipts) => {
                    st.source_seen.settle(&fresh_keys, true);
                    receipts.first().map(|r| r.index)
                }
                Err(e) => {
                    st.source_seen.settle(&fresh_keys, false);
                    return Err(submit_problem(e));
                }
            }
        };
        Ok(graven_api::SourceReport { logged, first_index, skipped: self.skipped, duplicates })
    }
}

/// Before a node's first claim: the ids of the reported leaves among the log's last
/// [`MAX_REMEMBERED_EVENTS`] entries, so a retry that arrives after a restart (or at a new
/// writer) is recognised. Other source requests wait for it; a failed read answers 503 and is
/// tried again by the next request.
async fn remember_the_log(st: &AppState) -> Result<(), Problem> {
    st.source_seen
        .rebuilt
        .get_or_try_init(|| async {
            let size = st.engine.committed().size;
            let reader = st.reader.lock().unwrap_or_else(|e| e.into_inner()).fresh();
            let started = std::time::Instant::now();
            let keys = tokio::task::spawn_blocking(move || -> Result<Vec<u128>, String> {
                let tree = graven_core::hash::TreeSize(size);
                let mut keys = Vec::new();
                let mut index = size.saturating_sub(MAX_REMEMBERED_EVENTS as u64);
                while index < size {
                    let (first, entries) = reader.bundle(index, tree).map_err(|e| e.to_string())?;
                    let skip = usize::try_from(index - first).unwrap_or(usize::MAX);
                    keys.extend(entries.iter().skip(skip).filter_map(|e| key_of_leaf(e)));
                    index = first + entries.len() as u64;
                }
                Ok(keys)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map_err(|e| {
                tracing::error!(error = %e, "reading the log for the ids sources have had logged failed; source requests are answered 503 until a later try succeeds");
                let mut p = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "retry",
                    "The server is starting its sources",
                    "the server could not yet read which records sources have had logged; send the batch again in a moment; nothing was appended".to_owned(),
                );
                p.retry_after = Some(1);
                p
            })?;
            st.source_seen.remember_logged(&keys);
            tracing::info!(
                scanned_to = size,
                ids = keys.len(),
                ms = started.elapsed().as_millis() as u64,
                "remembered the platform event ids sources had logged"
            );
            Ok::<u64, Problem>(size)
        })
        .await
        .map(|_| ())
}

/// The answer to a source's request: its [`graven_api::SourceReport`], or its problem. A
/// source naming a subject (or a platform) outside its grant is refused like any credential
/// used beyond its rights, and recorded as a `denied` event of the source.
pub async fn respond(
    st: &AppState,
    principal: &Principal,
    peer: Option<std::net::IpAddr>,
    route: &'static str,
    r: Result<graven_api::SourceReport, Problem>,
) -> Response {
    if let Err(p) = &r {
        record_refusal(st, principal, peer, route, p).await;
    }
    let r = r.and_then(|report| {
        let body = serde_json::to_string(&report).map_err(|e| Problem::internal(e.to_string()))?;
        let mut resp = (StatusCode::OK, body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(resp)
    });
    finish(st, route, r)
}

/// Records `p` as a `denied` event of the source when it is a refusal of the source's rights
/// (a platform or subject outside its grant): what [`respond`] does, for a source that answers
/// in its platform's own format.
pub async fn record_refusal(
    st: &AppState,
    principal: &Principal,
    peer: Option<std::net::IpAddr>,
    route: &'static str,
    p: &Problem,
) {
    if p.kind == "source-not-allowed" {
        let refusal = Refusal {
            who: Some(principal),
            claimed_key: None,
            claimed_identity: None,
            reason: "source-not-allowed",
            route,
            attempted_action: None,
            peer,
        };
        audit::denied(st, refusal).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A JSON value as the shaper's own JSON type (which keeps numbers and order as RFC 8785
/// wants them).
fn to_jcs(v: &Value) -> graven_core::jcs::Value {
    graven_core::jcs::parse(v.to_string().as_bytes()).unwrap_or(graven_core::jcs::Value::Null)
}

/// The stored actor of a reported event: the subject, marked as attested by the source.
fn attested(subject: Subject, source: &Principal, platform: &str) -> Actor {
    let by = json!({
        "id": source.actor.id,
        "kind": source.actor.kind,
        "credential": source.actor.credential,
        "auth": source.actor.auth,
    });
    let mut extra = vec![("attested_by".to_owned(), by), ("platform".to_owned(), json!(platform))];
    extra.extend(subject.extra);
    let extra = extra.into_iter().map(|(k, v)| (k, to_jcs(&v))).collect();
    Actor {
        id: subject.id,
        kind: subject.kind,
        credential: format!("attested:{}", source.identity),
        auth: "attested".to_owned(),
        extra,
    }
}
