//! Event shaping (`graven_auth::shape::shape_with`, `shape_self_audit`; `graven_core::event::stamp`): every
//! request body a client sends goes through it, and what it returns is what the log stores.
//!
//! The first input byte chooses the verified actor (with or without credential members) and
//! whether an allowed-actions rule applies; the rest is the body.
//! - Never panics, whatever the body.
//! - An accepted event is canonical JSON (RFC 8785) that the strict parser reads back, within
//!   the entry size limit, also once stamped: the server never writes a leaf its verifier
//!   cannot read.
//! - Its `actor` is exactly the verified actor; the body's own `actor`, if any, is under
//!   `claimed.actor`, unchanged; `v` is 1 and `logged_at` the stamp.
//! - A client never gets a reserved `graven.` action through, and an action the rule refuses
//!   is refused; the server's own path accepts exactly what the client path does, plus the
//!   reserved actions.
//! - The one-pass shaper agrees with the tree-based one it replaced
//!   (`crates/graven-auth/tests/reference/shape_tree.rs`): the same leaf, stamp position and
//!   signed message, or the same error, on both paths.
//! - For a client-signed event, the bytes the server checks the signature over are exactly the
//!   bytes a verifier rebuilds from the stored leaf (`event_sig::signed_message_from_leaf`).
#![no_main]

use graven_core::jcs::{self, Value};
use libfuzzer_sys::fuzz_target;

// graven-auth's `shape` module, compiled here from its source (see fuzz/Cargo.toml), with the
// modules it names (`principal`, and what that names), under the same names as in the crate.
#[allow(dead_code)]
#[path = "../../crates/graven-auth/src/apikey.rs"]
mod apikey;
#[allow(dead_code)]
#[path = "../../crates/graven-auth/src/identity.rs"]
mod identity;
#[allow(dead_code)]
#[path = "../../crates/graven-auth/src/principal.rs"]
mod principal;
#[allow(dead_code)]
#[path = "../../crates/graven-auth/src/shape.rs"]
mod shape;
// The reference the one-pass shaper is held to; it names `shape` and `Actor` from here.
#[path = "../../crates/graven-auth/tests/reference/shape_tree.rs"]
mod shape_tree;

use principal::Actor;

const STAMP: &str = "2026-11-26T17:48:20.123456Z";

fn member<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let mut actor = Actor {
        id: "svc:fuzz".into(),
        kind: "service_account".into(),
        credential: "key:0123456789abcdef".into(),
        auth: "api_key".into(),
        extra: Vec::new(),
    };
    if mode & 1 == 1 {
        actor.auth = "oidc".into();
        actor.extra.push(("issuer".into(), Value::String("https://issuer.example".into())));
        actor.extra.push((
            "on_behalf_of".into(),
            Value::Object(vec![("sub".into(), Value::String("user\u{202e}".into()))]),
        ));
    }
    let restricted = mode & 2 == 2;
    let allowed = |a: &str| !restricted || a.starts_with("deploy.");
    let client = shape::shape_with(body, &actor, &allowed);
    let server = shape::shape_self_audit(body, &actor);
    same(&client, &shape_tree::shape_as(shape_tree::Writer::Client, body, &actor, &allowed));
    same(&server, &shape_tree::shape_as(shape_tree::Writer::Server, body, &actor, &|_| true));
    match (&client, &server) {
        (Ok(c), Ok(s)) => assert_eq!(c.bytes, s.bytes, "the two paths shape alike"),
        (Ok(_), Err(e)) => panic!("the client path accepted what the server path refused: {e}"),
        (Err(shape::EventError::ReservedAction(a)), Ok(_)) => assert!(shape::is_reserved_action(a)),
        (Err(shape::EventError::ActionNotAllowed(a)), Ok(_)) => assert!(restricted && !allowed(a)),
        (Err(e), Ok(_)) => panic!("only the action may tell the two paths apart: {e}"),
        (Err(_), Err(_)) => {}
    }
    let Ok(mut e) = client else { return };
    assert!(e.bytes.len() <= graven_core::event::MAX_ENTRY_SIZE);
    assert!(graven_core::event::stamp(&mut e.bytes, e.stamp_at, STAMP));
    let leaf = jcs::parse(&e.bytes).unwrap_or_else(|err| panic!("a stored leaf does not parse: {err}"));
    assert_eq!(jcs::canonicalize(&e.bytes).unwrap(), e.bytes, "the leaf is canonical");
    let Value::String(action) = member(&leaf, "action").unwrap() else { panic!("action is a string") };
    assert!(!shape::is_reserved_action(action), "a client wrote {action:?}");
    assert!(allowed(action));
    assert_eq!(member(&leaf, "logged_at"), Some(&Value::String(STAMP.into())));
    assert_eq!(member(&leaf, "v"), Some(&Value::Number(1.0)));
    let stored_actor = member(&leaf, "actor").unwrap();
    assert_eq!(member(stored_actor, "id"), Some(&Value::String(actor.id.clone())));
    assert_eq!(member(stored_actor, "credential"), Some(&Value::String(actor.credential.clone())));
    assert_eq!(member(stored_actor, "auth"), Some(&Value::String(actor.auth.clone())));
    let sent = jcs::parse(body).unwrap();
    let canonical = |v: Option<&Value>| {
        v.map(|v| {
            let mut out = Vec::new();
            v.write_canonical(&mut out);
            out
        })
    };
    assert_eq!(
        canonical(member(&sent, "actor")),
        canonical(member(&leaf, "claimed").and_then(|c| member(c, "actor"))),
        "the body's actor is kept, unchanged, under claimed"
    );
    match (&e.client_sig, graven_core::event_sig::signed_message_from_leaf(&e.bytes)) {
        (None, Ok(None)) => {}
        (Some(c), Ok(Some((sig, message)))) => {
            assert_eq!(c.sig, sig, "the stored signature is the one checked");
            assert_eq!(c.message, message, "server and verifier agree on the signed bytes");
        }
        (c, r) => panic!("the server's and the verifier's view of the signature differ: {c:?} / {r:?}"),
    }
});

/// The one-pass and the tree-based shaper gave the same answer.
fn same(
    new: &Result<shape::Unstamped, shape::EventError>,
    old: &Result<shape::Unstamped, shape::EventError>,
) {
    match (new, old) {
        (Ok(n), Ok(o)) => {
            assert_eq!(n.bytes, o.bytes, "one-pass and tree shaping write different leaves");
            assert_eq!(n.stamp_at, o.stamp_at);
            let sig =
                |u: &shape::Unstamped| u.client_sig.as_ref().map(|c| (c.sig.clone(), c.message.clone()));
            assert_eq!(sig(n), sig(o), "one-pass and tree shaping sign over different bytes");
        }
        (Err(n), Err(o)) => assert_eq!(n, o, "one-pass and tree shaping refuse differently"),
        (n, o) => panic!("one-pass shaping gave {n:?}, the tree {o:?}"),
    }
}
