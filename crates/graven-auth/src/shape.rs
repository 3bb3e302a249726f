//! Shaping a request body into a version-1 event (see DESIGN.md, "The event"): the body is
//! attributed to a verified [`Actor`], and the reserved `graven.` namespace is kept for the
//! server's own records.
//!
//! The server decides `v`, `logged_at` and `actor`; the client supplies the rest. Whatever the
//! client says about its own identity (`actor` in the body) is kept apart under
//! `claimed.actor`, never mixed with the verified `actor`.
//!
//! `logged_at` is stamped by the sequencer, at commit time, so it never decreases along the
//! log. The shaper writes a fixed-width placeholder and records where it is; the sequencer
//! overwrites those 27 bytes (`graven_core::event::stamp`), which keeps the canonical form
//! canonical.
//!
//! Pure, and compiled from source by the `event_shape` fuzz target (with `principal`,
//! `identity` and `apikey`): it names nothing else of this crate.

use std::borrow::Cow;

use graven_core::event::LOGGED_AT_PLACEHOLDER as PLACEHOLDER;
use graven_core::event::MAX_ENTRY_SIZE;
use graven_core::event_sig;
use graven_core::jcs::{self, JcsError, Value};
use graven_core::jcs_direct;

use crate::principal::Actor;

/// Top-level fields a client may send, besides `client_signature` (docs/events.md, held to
/// these by `crates/graven/tests/events_doc.rs`).
pub const CLIENT_FIELDS: &[&str] =
    &["action", "actor", "details", "occurred_at", "outcome", "request_id", "resource", "source"];
/// The values `outcome` may take.
pub const OUTCOMES: &[&str] = &["success", "failure", "denied"];
/// Longest `action`, `occurred_at`, `request_id`, `resource.type` and `resource.id`, in bytes.
pub const MAX_SHORT_STRING: usize = 1024;

/// Actions that only the server itself writes: identity and key changes, refused requests. The
/// offline verifier rebuilds each identity's keys from these events, so no credential may
/// append one (matched without regard to case, so `Graven.key.add_public` is refused too).
pub const RESERVED_ACTION_PREFIX: &str = "graven.";

/// Whether `action` is in the reserved `graven.` namespace.
pub fn is_reserved_action(action: &str) -> bool {
    action.len() >= RESERVED_ACTION_PREFIX.len()
        && action.as_bytes()[..RESERVED_ACTION_PREFIX.len()]
            .eq_ignore_ascii_case(RESERVED_ACTION_PREFIX.as_bytes())
}

/// Who is writing the event: a client through the API, or the server recording its own
/// changes. Only the server may use the reserved `graven.` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    Client,
    Server,
}

/// A canonical event with a placeholder for `logged_at` at `stamp_at`.
#[derive(Debug, Clone)]
pub struct Unstamped {
    pub bytes: Vec<u8>,
    pub stamp_at: usize,
    /// The client's own signature, still to be checked (`event_signature`) before the
    /// event may be sequenced.
    pub client_sig: Option<ClientSigned>,
}

/// A `client_signature` and the exact bytes it must verify over.
#[derive(Debug, Clone)]
pub struct ClientSigned {
    pub sig: graven_core::event_sig::ClientSignature,
    pub message: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("{0}")]
    Json(#[from] JcsError),
    #[error("the event must be a JSON object")]
    NotAnObject,
    #[error("missing field `action`: say what happened, e.g. \"deployment.create\"")]
    MissingAction,
    #[error("field `{path}` {why}")]
    Field { path: String, why: String },
    #[error(
        "unknown field `{0}`; allowed top-level fields are action, actor, client_signature, details, occurred_at, outcome, request_id, resource, source"
    )]
    UnknownField(String),
    #[error("{0}")]
    ClientSignature(#[from] graven_core::event_sig::EventSigError),
    #[error("action {0:?} is outside this identity's allowed actions")]
    ActionNotAllowed(String),
    #[error(
        "action {0:?} is in the reserved `graven.` namespace, which only the server itself writes (identity and key changes, refused requests); name your action without that prefix"
    )]
    ReservedAction(String),
    #[error(
        "field `{path}` nests {depth} levels deep; the server stores it one level deeper, and events may nest at most {max} levels: flatten it"
    )]
    TooDeep { path: &'static str, depth: usize, max: usize },
    #[error(
        "the canonical event is {0} bytes, over the {MAX_ENTRY_SIZE}-byte limit; store large payloads elsewhere and log their digest"
    )]
    TooLarge(usize),
}

fn field(path: &str, why: &str) -> EventError {
    EventError::Field { path: path.to_owned(), why: why.to_owned() }
}

/// A member's value as a string, if it is one, from its canonical form: without escapes
/// (the common case) the text between the quotes is the string itself.
fn as_str(canonical: &[u8]) -> Option<Cow<'_, str>> {
    let inner = canonical.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if !inner.contains(&b'\\')
        && let Ok(s) = std::str::from_utf8(inner)
    {
        return Some(Cow::Borrowed(s));
    }
    match jcs::parse(canonical) {
        Ok(Value::String(s)) => Some(Cow::Owned(s)),
        _ => None,
    }
}

fn short_string(v: Option<&str>, path: &str) -> Result<(), EventError> {
    match v {
        Some("") => Err(field(path, "must not be empty")),
        Some(s) if s.len() > MAX_SHORT_STRING => Err(field(path, "is longer than 1024 bytes")),
        Some(_) => Ok(()),
        None => Err(field(path, "must be a string")),
    }
}

fn check_timestamp(v: Option<&str>, path: &str) -> Result<(), EventError> {
    short_string(v, path)?;
    if let Some(s) = v {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|_| field(path, "must be an RFC 3339 timestamp such as 2026-11-26T17:48:19.900Z"))?;
    }
    Ok(())
}

/// Validates `body` (one JSON event from a client) and builds the canonical event attributed
/// to `actor`. A reserved `graven.` action is refused.
pub fn shape(body: &[u8], actor: &Actor) -> Result<Unstamped, EventError> {
    shape_with(body, actor, &|_| true)
}

/// [`shape`], refusing an event whose `action` `allowed` says no to.
pub fn shape_with(
    body: &[u8],
    actor: &Actor,
    allowed: &dyn Fn(&str) -> bool,
) -> Result<Unstamped, EventError> {
    shape_as(Writer::Client, body, actor, allowed)
}

/// Builds one of the server's own events (self-audit: identity and key changes, refused
/// requests), which may use the reserved `graven.` actions.
pub fn shape_self_audit(body: &[u8], actor: &Actor) -> Result<Unstamped, EventError> {
    shape_as(Writer::Server, body, actor, &|_| true)
}

/// Most levels a stored member may nest (the leaf itself is one more) so that every leaf the
/// server writes is one its own verifier, with the same [`jcs::MAX_DEPTH`], can parse.
const MAX_MEMBER_DEPTH: usize = jcs::MAX_DEPTH - 1;

/// The canonical `actor` the server writes, from the verified credential.
fn verified_actor(actor: &Actor) -> Result<Vec<u8>, EventError> {
    let mut out = Vec::with_capacity(160);
    if actor.extra.is_empty() {
        // The common case, written as `Value::write_canonical` would (keys in order), without
        // building the value: depth 1, so within the limit below.
        for (i, (key, value)) in [
            ("auth", &actor.auth),
            ("credential", &actor.credential),
            ("id", &actor.id),
            ("kind", &actor.kind),
        ]
        .into_iter()
        .enumerate()
        {
            out.extend_from_slice(if i == 0 { b"{\"" } else { b",\"" });
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            jcs::write_string(value, &mut out);
        }
        out.push(b'}');
        return Ok(out);
    }
    let mut verified = vec![
        ("auth".into(), Value::String(actor.auth.clone())),
        ("credential".into(), Value::String(actor.credential.clone())),
        ("id".into(), Value::String(actor.id.clone())),
        ("kind".into(), Value::String(actor.kind.clone())),
    ];
    verified.extend(actor.extra.iter().cloned());
    let verified_actor = Value::Object(verified);
    // What a credential records (an OIDC `act` chain, say) is bounded by its own parser, but the
    // rule is checked here, where the leaf is made.
    let depth = verified_actor.depth();
    if depth > MAX_MEMBER_DEPTH {
        return Err(EventError::TooDeep { path: "actor (from the credential)", depth, max: jcs::MAX_DEPTH });
    }
    verified_actor.write_canonical(&mut out);
    Ok(out)
}

/// One pass over the body (`jcs_direct::members`: every JSON rule checked, each member's value
/// canonical), then the members checked in the order the client wrote them; only the few that
/// are read are looked at again, and `details` and the client's `actor` are copied through as
/// they are. `tests/shape_tree.rs` holds this to the earlier version over `jcs::parse` trees.
fn shape_as(
    writer: Writer,
    body: &[u8],
    actor: &Actor,
    allowed: &dyn Fn(&str) -> bool,
) -> Result<Unstamped, EventError> {
    let Some(members) = jcs_direct::members(body)? else {
        return Err(EventError::NotAnObject);
    };
    // Checked before the members are: the client signed its own object.
    let sig = match members.get(event_sig::FIELD) {
        Some(m) => Some(event_sig::parse_client_signature(&jcs::parse(m.source)?)?),
        None => None,
    };
    let mut out: Vec<(&str, Cow<'_, [u8]>)> = Vec::with_capacity(12);
    let mut has_action = false;
    for m in members.iter() {
        match m.key {
            "action" => {
                let action = as_str(m.canonical);
                short_string(action.as_deref(), "action")?;
                if let Some(a) = action {
                    if writer == Writer::Client && is_reserved_action(&a) {
                        return Err(EventError::ReservedAction(a.into_owned()));
                    }
                    if !allowed(&a) {
                        return Err(EventError::ActionNotAllowed(a.into_owned()));
                    }
                }
                has_action = true;
            }
            "outcome" => {
                if !as_str(m.canonical).is_some_and(|s| OUTCOMES.contains(&&*s)) {
                    return Err(field("outcome", "must be one of \"success\", \"failure\", \"denied\""));
                }
            }
            "occurred_at" => check_timestamp(as_str(m.canonical).as_deref(), "occurred_at")?,
            "request_id" => short_string(as_str(m.canonical).as_deref(), "request_id")?,
            "resource" => match jcs_direct::members(m.source)? {
                Some(fields) => {
                    for f in fields.iter() {
                        if f.key == "type" || f.key == "id" {
                            short_string(as_str(f.canonical).as_deref(), &format!("resource.{}", f.key))?;
                        }
                    }
                }
                None => {
                    return Err(field(
                        "resource",
                        "must be an object such as {\"type\":\"k8s.deployment\",\"id\":\"prod/payments\"}",
                    ));
                }
            },
            "source" => {
                if m.canonical.first() != Some(&b'{') {
                    return Err(field("source", "must be an object such as {\"ip\":\"10.2.3.4\"}"));
                }
            }
            "details" => {}
            event_sig::FIELD => {}
            "actor" => {
                // What the client says about itself: kept, labelled as claimed, which puts it
                // one level deeper than the client sent it.
                let depth = m.depth + 1;
                if depth > MAX_MEMBER_DEPTH {
                    return Err(EventError::TooDeep { path: "actor", depth, max: jcs::MAX_DEPTH });
                }
                let mut claimed = Vec::with_capacity(m.canonical.len() + 10);
                claimed.extend_from_slice(b"{\"actor\":");
                claimed.extend_from_slice(m.canonical);
                claimed.push(b'}');
                out.push(("claimed", Cow::Owned(claimed)));
                continue;
            }
            other if CLIENT_FIELDS.contains(&other) => {}
            other => return Err(EventError::UnknownField(other.to_owned())),
        }
        out.push((m.key, Cow::Borrowed(m.canonical)));
    }
    if !has_action {
        return Err(EventError::MissingAction);
    }
    out.push(("actor", Cow::Owned(verified_actor(actor)?)));
    // Quoted below, where its position is noted.
    out.push(("logged_at", Cow::Borrowed(PLACEHOLDER.as_bytes())));
    out.push(("v", Cow::Borrowed(b"1")));
    // Top-level keys are all from a fixed ASCII set, so byte order is RFC 8785's UTF-16 order
    // and they need no escaping: write the members one by one and note where `logged_at`'s
    // value starts. (Searching the bytes instead would find a client's nested `logged_at`.)
    out.sort_by(|a, b| a.0.cmp(b.0));
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
        if *key == "logged_at" {
            stamp_at = Some(bytes.len() + 1);
            bytes.push(b'"');
            bytes.extend_from_slice(value);
            bytes.push(b'"');
        } else {
            bytes.extend_from_slice(value);
        }
    }
    bytes.push(b'}');
    if bytes.len() > MAX_ENTRY_SIZE {
        return Err(EventError::TooLarge(bytes.len()));
    }
    let stamp_at = stamp_at.ok_or(EventError::NotAnObject)?;
    let client_sig = sig.map(|sig| {
        let message = event_sig::signed_message_canonical(members.iter().map(|m| (m.key, m.canonical)), &sig);
        ClientSigned { sig, message }
    });
    Ok(Unstamped { bytes, stamp_at, client_sig })
}

#[cfg(test)]
mod tests {
    use graven_core::event::stamp;

    use super::*;

    fn actor() -> Actor {
        Actor {
            id: "svc:a".into(),
            kind: "service_account".into(),
            credential: "key:1".into(),
            auth: "api_key".into(),
            extra: Vec::new(),
        }
    }

    #[test]
    fn the_stamp_lands_on_the_top_level_logged_at_only() {
        // A client's nested `logged_at` holding the placeholder text must not be stamped.
        let body = format!(r#"{{"action":"x","details":{{"logged_at":"{PLACEHOLDER}"}}}}"#);
        let mut e = shape(body.as_bytes(), &actor()).unwrap();
        assert!(stamp(&mut e.bytes, e.stamp_at, "2026-11-26T17:48:20.123456Z"));
        let v: serde_json::Value = serde_json::from_slice(&e.bytes).unwrap();
        assert_eq!(v["logged_at"], "2026-11-26T17:48:20.123456Z");
        assert_eq!(v["details"]["logged_at"], PLACEHOLDER);
        // Still canonical after stamping.
        assert_eq!(graven_core::jcs::canonicalize(&e.bytes).unwrap(), e.bytes);
    }

    #[test]
    fn client_identity_claims_are_kept_apart() {
        let e = shape(br#"{"action":"x","actor":{"id":"root"}}"#, &actor()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&e.bytes).unwrap();
        assert_eq!(v["actor"]["id"], "svc:a");
        assert_eq!(v["claimed"]["actor"]["id"], "root");
        assert_eq!(v["v"], 1);
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"resource":{}}"#, "action"),
            (br#"{"action":""}"#, "action"),
            (br#"{"action":"x","outcome":"meh"}"#, "outcome"),
            (br#"{"action":"x","occurred_at":"yesterday"}"#, "occurred_at"),
            (br#"{"action":"x","resource":{"id":5}}"#, "resource.id"),
            (br#"{"action":"x","source":"1.2.3.4"}"#, "source"),
            (br#"{"action":"x","logged_at":"2026-01-01T00:00:00Z"}"#, "logged_at"),
            (br#"[1]"#, "object"),
        ];
        for (body, needle) in cases {
            let err = shape(body, &actor()).unwrap_err().to_string();
            assert!(err.contains(needle), "{} -> {err}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn clients_cannot_write_the_reserved_namespace() {
        for action in
            ["graven.key.add_public", "graven.identity.revoke", "Graven.key.revoke_public", "GRAVEN.x"]
        {
            let body = format!(
                r#"{{"action":"{action}","outcome":"success","resource":{{"type":"graven.identity","id":"x"}}}}"#
            );
            let err = shape(body.as_bytes(), &actor()).unwrap_err();
            assert_eq!(err, EventError::ReservedAction(action.into()), "{action}");
            assert!(err.to_string().contains("reserved"), "{err}");
            // Even an identity allowed every action.
            assert!(matches!(
                shape_with(body.as_bytes(), &actor(), &|_| true),
                Err(EventError::ReservedAction(_))
            ));
            // The server's own records may.
            shape_self_audit(body.as_bytes(), &actor()).unwrap();
        }
        for action in ["graven", "gravenx.key", "my.graven.key", "deploy.graven."] {
            let body = format!(r#"{{"action":"{action}"}}"#);
            shape(body.as_bytes(), &actor()).unwrap_or_else(|e| panic!("{action}: {e}"));
        }
    }

    fn nested(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    #[test]
    fn a_claimed_actor_never_nests_past_what_the_verifier_reads() {
        // The body itself may nest 64 levels; `actor` moves one level down under `claimed`.
        let max_ok = jcs::MAX_DEPTH - 2;
        let ok = format!(r#"{{"action":"x","actor":{}}}"#, nested(max_ok));
        let e = shape(ok.as_bytes(), &actor()).unwrap();
        assert_eq!(jcs::parse(&e.bytes).unwrap().depth(), jcs::MAX_DEPTH);
        let too_deep = format!(r#"{{"action":"x","actor":{}}}"#, nested(max_ok + 1));
        assert!(jcs::parse(too_deep.as_bytes()).is_ok(), "the body itself is within the parser's limit");
        let err = shape(too_deep.as_bytes(), &actor()).unwrap_err();
        assert!(matches!(err, EventError::TooDeep { path: "actor", .. }), "{err}");
        // Other members keep their depth, so the parser's own limit is enough for them.
        let details = format!(r#"{{"action":"x","details":{}}}"#, nested(jcs::MAX_DEPTH - 1));
        let e = shape(details.as_bytes(), &actor()).unwrap();
        assert!(jcs::parse(&e.bytes).is_ok());
        // A credential's own members are held to the same rule.
        let mut deep = actor();
        deep.extra.push(("on_behalf_of".into(), jcs::parse(nested(jcs::MAX_DEPTH - 1).as_bytes()).unwrap()));
        assert!(matches!(shape(br#"{"action":"x"}"#, &deep), Err(EventError::TooDeep { .. })));
    }

    proptest::proptest! {
        /// Whatever the server accepts, it stores as a leaf its own strict parser reads back
        /// (so the verifier never has to skip one), stamped or not.
        #[test]
        fn every_accepted_event_is_a_leaf_the_verifier_reads(
            depth_actor in 0usize..70,
            depth_details in 0usize..70,
            signed in proptest::bool::ANY,
            action in "[a-zA-Z.]{1,12}",
        ) {
            let mut body = format!(r#"{{"action":"{action}","actor":{},"details":{}"#, nested(depth_actor), nested(depth_details));
            if signed {
                body.push_str(r#","client_signature":{"alg":"ed25519","key_id":"0123456789abcdef","sig":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}"#);
            }
            body.push('}');
            if let Ok(mut e) = shape(body.as_bytes(), &actor()) {
                proptest::prop_assert!(!is_reserved_action(&action));
                proptest::prop_assert!(stamp(&mut e.bytes, e.stamp_at, "2026-11-26T17:48:20.123456Z"));
                let v = jcs::parse(&e.bytes);
                proptest::prop_assert!(v.is_ok(), "{:?}", v);
                proptest::prop_assert_eq!(jcs::canonicalize(&e.bytes).unwrap(), e.bytes.clone());
                if signed {
                    proptest::prop_assert!(event_sig::signed_message_from_leaf(&e.bytes).is_ok());
                }
            }
        }
    }
}
