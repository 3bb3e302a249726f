//! Event shaping as it was before `shape` read bodies in one pass (commit 7639393): the body
//! parsed into a `jcs::Value` tree, checked, and written back with `Value::write_canonical`.
//! Kept, unchanged but for its imports, as the reference the one-pass `shape` is held to
//! (`tests/shape_tree.rs`, the `event_shape` fuzz target) and measured against
//! (`benches/shape.rs`). The includer provides `shape` (graven-auth's module) and `Actor`.

use graven_core::event::LOGGED_AT_PLACEHOLDER as PLACEHOLDER;
use graven_core::event::MAX_ENTRY_SIZE;
use graven_core::event_sig;
use graven_core::jcs::{self, Value};

use super::Actor;
use super::shape::{
    CLIENT_FIELDS, ClientSigned, EventError, MAX_SHORT_STRING, OUTCOMES, Unstamped, is_reserved_action,
};

/// Who is writing the event: a client through the API, or the server recording its own
/// changes. Only the server may use the reserved `graven.` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Client,
    Server,
}

/// Most levels a stored member may nest (the leaf itself is one more) so that every leaf the
/// server writes is one its own verifier, with the same [`jcs::MAX_DEPTH`], can parse.
const MAX_MEMBER_DEPTH: usize = jcs::MAX_DEPTH - 1;

fn field(path: &str, why: &str) -> EventError {
    EventError::Field { path: path.to_owned(), why: why.to_owned() }
}

fn short_string(v: &Value, path: &str) -> Result<(), EventError> {
    match v {
        Value::String(s) if s.is_empty() => Err(field(path, "must not be empty")),
        Value::String(s) if s.len() > MAX_SHORT_STRING => Err(field(path, "is longer than 1024 bytes")),
        Value::String(_) => Ok(()),
        _ => Err(field(path, "must be a string")),
    }
}

fn check_timestamp(v: &Value, path: &str) -> Result<(), EventError> {
    short_string(v, path)?;
    if let Value::String(s) = v {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|_| field(path, "must be an RFC 3339 timestamp such as 2026-11-26T17:48:19.900Z"))?;
    }
    Ok(())
}

pub fn shape_as(
    writer: Writer,
    body: &[u8],
    actor: &Actor,
    allowed: &dyn Fn(&str) -> bool,
) -> Result<Unstamped, EventError> {
    let Value::Object(members) = jcs::parse(body)? else {
        return Err(EventError::NotAnObject);
    };
    let mut out: Vec<(String, Value)> = Vec::with_capacity(members.len() + 3);
    let mut has_action = false;
    // Checked and computed before the members are taken apart: the client signed its own
    // object.
    let client_sig = match members.iter().find(|(k, _)| k == event_sig::FIELD) {
        Some((_, v)) => {
            let sig = event_sig::parse_client_signature(v)?;
            let message = event_sig::signed_message(&members, &sig);
            Some(ClientSigned { sig, message })
        }
        None => None,
    };
    for (key, value) in members {
        match key.as_str() {
            "action" => {
                short_string(&value, "action")?;
                if let Value::String(a) = &value {
                    if writer == Writer::Client && is_reserved_action(a) {
                        return Err(EventError::ReservedAction(a.clone()));
                    }
                    if !allowed(a) {
                        return Err(EventError::ActionNotAllowed(a.clone()));
                    }
                }
                has_action = true;
            }
            "outcome" => {
                if !matches!(&value, Value::String(s) if OUTCOMES.contains(&s.as_str())) {
                    return Err(field("outcome", "must be one of \"success\", \"failure\", \"denied\""));
                }
            }
            "occurred_at" => check_timestamp(&value, "occurred_at")?,
            "request_id" => short_string(&value, "request_id")?,
            "resource" => match &value {
                Value::Object(fields) => {
                    for (k, v) in fields {
                        if k == "type" || k == "id" {
                            short_string(v, &format!("resource.{k}"))?;
                        }
                    }
                }
                _ => {
                    return Err(field(
                        "resource",
                        "must be an object such as {\"type\":\"k8s.deployment\",\"id\":\"prod/payments\"}",
                    ));
                }
            },
            "source" => {
                if !matches!(value, Value::Object(_)) {
                    return Err(field("source", "must be an object such as {\"ip\":\"10.2.3.4\"}"));
                }
            }
            "details" => {}
            event_sig::FIELD => {}
            "actor" => {
                // What the client says about itself: kept, labelled as claimed, which puts it
                // one level deeper than the client sent it.
                let depth = value.depth() + 1;
                if depth > MAX_MEMBER_DEPTH {
                    return Err(EventError::TooDeep { path: "actor", depth, max: jcs::MAX_DEPTH });
                }
                out.push(("claimed".into(), Value::Object(vec![("actor".into(), value)])));
                continue;
            }
            other if CLIENT_FIELDS.contains(&other) => {}
            other => return Err(EventError::UnknownField(other.to_owned())),
        }
        out.push((key, value));
    }
    if !has_action {
        return Err(EventError::MissingAction);
    }
    let mut members = vec![
        ("auth".into(), Value::String(actor.auth.clone())),
        ("credential".into(), Value::String(actor.credential.clone())),
        ("id".into(), Value::String(actor.id.clone())),
        ("kind".into(), Value::String(actor.kind.clone())),
    ];
    members.extend(actor.extra.iter().cloned());
    let verified_actor = Value::Object(members);
    // What a credential records (an OIDC `act` chain, say) is bounded by its own parser, but the
    // rule is checked here, where the leaf is made.
    let depth = verified_actor.depth();
    if depth > MAX_MEMBER_DEPTH {
        return Err(EventError::TooDeep { path: "actor (from the credential)", depth, max: jcs::MAX_DEPTH });
    }
    out.push(("actor".into(), verified_actor));
    out.push(("logged_at".into(), Value::String(PLACEHOLDER.into())));
    out.push(("v".into(), Value::Number(1.0)));
    // Top-level keys are all from a fixed ASCII set, so byte order is RFC 8785's UTF-16 order
    // and they need no escaping: write the members one by one and note where `logged_at`'s
    // value starts. (Searching the bytes instead would find a client's nested `logged_at`.)
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let mut bytes = Vec::with_capacity(body.len() + 160);
    let mut stamp_at = None;
    bytes.push(b'{');
    for (i, (key, value)) in out.iter().enumerate() {
        if i > 0 {
            bytes.push(b',');
        }
        bytes.push(b'"');
        bytes.extend_from_slice(key.as_bytes());
        bytes.extend_from_slice(b"\":");
        if key == "logged_at" {
            stamp_at = Some(bytes.len() + 1);
        }
        value.write_canonical(&mut bytes);
    }
    bytes.push(b'}');
    if bytes.len() > MAX_ENTRY_SIZE {
        return Err(EventError::TooLarge(bytes.len()));
    }
    let stamp_at = stamp_at.ok_or(EventError::NotAnObject)?;
    Ok(Unstamped { bytes, stamp_at, client_sig })
}
