//! RFC 8785 canonical JSON (strict) and canonical events.
//!
//! Properties:
//! - `canonicalize`, `parse` and `canonical_event` never panic.
//! - Canonical output is valid UTF-8, and canonicalising it again gives the same bytes.
//! - `canonical_event` agrees with `canonicalize`: the same bytes for an object of at most
//!   `MAX_ENTRY_SIZE` bytes, the same error for bad JSON, `NotAnObject` / `TooLarge` otherwise.
//! - The one-pass canonicaliser (`jcs_direct`) agrees with the tree (`jcs::parse` then
//!   `write_canonical`): the same bytes, or the same error (variant, offset and fields); and
//!   `jcs_direct::members` gives each top-level member's key, canonical value and depth as the
//!   tree has them.
//! - Differential: whatever the strict parser accepts, serde_json (correctly rounded floats)
//!   accepts too, both as input and as canonical output, and the two mean the same document
//!   (numbers compared as doubles, object members as unordered maps).
#![no_main]

use graven_core::event::{self, EventError, MAX_ENTRY_SIZE};
use graven_core::jcs::{self, Value};
use graven_core::jcs_direct;
use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;

fuzz_target!(|data: &[u8]| {
    let canon = jcs::canonicalize(data);
    assert_eq!(jcs_direct::canonicalize(data), canon, "the one-pass canonicaliser and the tree disagree");
    match (jcs_direct::members(data), jcs::parse(data)) {
        (Ok(Some(members)), Ok(Value::Object(tree))) => {
            assert_eq!(members.iter().count(), tree.len());
            for (m, (key, value)) in members.iter().zip(&tree) {
                let mut canonical = Vec::new();
                value.write_canonical(&mut canonical);
                assert_eq!((m.key, m.canonical, m.depth), (key.as_str(), &canonical[..], value.depth()));
                assert_eq!(jcs::parse(m.source).as_ref(), Ok(value), "a member's source is its value");
            }
        }
        (Ok(None), Ok(v)) => assert!(!matches!(v, Value::Object(_))),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("members gave {a:?}, the tree {b:?}"),
    }
    let ev = event::canonical_event(data);

    match (&canon, &ev) {
        (Err(a), Err(EventError::Json(b))) => assert_eq!(a, b, "canonicalize and canonical_event disagree"),
        (Ok(out), Ok(e)) => {
            assert_eq!(out, e, "canonical_event bytes differ from canonicalize");
            assert!(e.starts_with(b"{") && e.len() <= MAX_ENTRY_SIZE);
        }
        (Ok(out), Err(EventError::NotAnObject(_))) => assert!(!out.starts_with(b"{")),
        (Ok(out), Err(EventError::TooLarge(n))) => {
            assert!(out.starts_with(b"{") && out.len() == *n && *n > MAX_ENTRY_SIZE);
        }
        (a, b) => panic!("canonicalize gave {a:?} but canonical_event gave {b:?}"),
    }

    let Ok(out) = canon else { return };
    assert!(std::str::from_utf8(&out).is_ok(), "canonical output is not UTF-8");
    let again = jcs::canonicalize(&out).unwrap_or_else(|e| {
        panic!("canonical output does not re-parse: {e}\n{}", String::from_utf8_lossy(&out))
    });
    assert_eq!(again, out, "canonicalize is not idempotent");

    let theirs_in: Json =
        serde_json::from_slice(data).unwrap_or_else(|e| panic!("jcs accepted what serde_json rejects: {e}"));
    let theirs_out: Json = serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("serde_json rejects the canonical output: {e}"));
    assert!(
        same(&theirs_in, &theirs_out),
        "canonical output means something else:\n in: {theirs_in}\nout: {theirs_out}"
    );
});

/// Structural equality with numbers compared as doubles (so `1.0`, `1e0` and `1` are equal).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64() && x.as_f64().is_some(),
        (Json::Array(x), Json::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
