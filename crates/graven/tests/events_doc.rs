//! docs/events.md, held to the code: its field tables, outcomes and limits are read from the
//! page and compared with the shaper's constants and behaviour (`graven_auth::shape`), the
//! strict JSON parser's (`graven_core::jcs`), the client signature's and the server's defaults.
//! A limit changed in the code, or on the page alone, fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeSet;

use graven_auth::principal::Actor;
use graven_auth::shape::{self, EventError};
use graven_core::{event, event_sig, jcs};

fn doc() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The cells of every table row in the section under `heading` (up to the next heading),
/// header and separator rows left out.
fn rows(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let start = doc.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no section {heading:?}"));
    let body = &doc[start + heading.len() + 2..];
    let body = &body[..body.find("\n#").unwrap_or(body.len())];
    let mut out: Vec<Vec<String>> = body
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_owned()).collect())
        .collect();
    assert!(out.len() > 1, "{heading}: no table");
    out.remove(0); // the header
    out
}

/// The first cell's name between backticks.
fn name(row: &[String]) -> String {
    row[0].trim_matches('`').to_owned()
}

/// The first number in `cell`, thousands separators and all (`67,108,864 bytes (64 MiB)`).
fn number(cell: &str) -> u64 {
    let digits: String = cell
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .collect();
    digits.replace(',', "").parse().unwrap_or_else(|_| panic!("no number in {cell:?}"))
}

fn actor() -> Actor {
    Actor {
        id: "svc:deployer".into(),
        kind: "service_account".into(),
        credential: "key:7f3a9c0d11e2b4a8".into(),
        auth: "api_key".into(),
        extra: Vec::new(),
    }
}

fn shape(body: &str) -> Result<shape::Unstamped, EventError> {
    shape::shape(body.as_bytes(), &actor())
}

fn nested(depth: usize) -> String {
    "[".repeat(depth) + &"]".repeat(depth)
}

/// The tables of what a client sends and what the server adds name exactly the members the
/// shaper accepts and writes; anything else is refused.
#[test]
fn the_field_tables_are_the_shapers() {
    let d = doc();
    let sent: BTreeSet<String> = rows(&d, "## What a client sends").iter().map(|r| name(r)).collect();
    let mut accepted: BTreeSet<String> = shape::CLIENT_FIELDS.iter().map(|s| s.to_string()).collect();
    accepted.insert(event_sig::FIELD.to_owned());
    assert_eq!(sent, accepted);

    // Everything a client may send, and what comes out.
    let body = r#"{"action":"deployment.create","outcome":"success","occurred_at":"2026-11-26T17:48:19.900Z",
        "resource":{"type":"k8s.deployment","id":"prod/payments","region":"eu"},"source":{"ip":"10.2.3.4"},
        "request_id":"01JDQ4Z3V6","details":{"replicas":3},"actor":{"id":"payments-deployer"}}"#;
    let stored = shape(body).unwrap();
    let stored: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&stored.bytes).unwrap();
    let kept: BTreeSet<&str> = shape::CLIENT_FIELDS.iter().copied().filter(|f| *f != "actor").collect();
    let added: BTreeSet<String> = stored.keys().filter(|k| !kept.contains(k.as_str())).cloned().collect();
    let documented: BTreeSet<String> = rows(&d, "## What the server adds").iter().map(|r| name(r)).collect();
    assert_eq!(documented, added);
    assert_eq!(stored["v"], 1);
    assert_eq!(stored["claimed"]["actor"]["id"], "payments-deployer");
    assert_eq!(stored["actor"]["credential"], "key:7f3a9c0d11e2b4a8");

    // Members the server writes, and unknown ones, are refused.
    for f in ["v", "logged_at", "claimed", "sealed", "actions"] {
        let e = shape(&format!(r#"{{"action":"x","{f}":1}}"#)).unwrap_err();
        assert!(matches!(e, EventError::UnknownField(ref n) if n == f), "{f}: {e}");
    }
    assert_eq!(shape(r#"{"outcome":"success"}"#).unwrap_err(), EventError::MissingAction);
}

/// The outcomes listed are the ones accepted; nothing else is.
#[test]
fn the_outcomes_are_the_shapers() {
    let listed: Vec<String> = rows(&doc(), "## Outcomes").iter().map(|r| name(r)).collect();
    assert_eq!(listed, shape::OUTCOMES);
    for o in &listed {
        shape(&format!(r#"{{"action":"x","outcome":"{o}"}}"#)).unwrap();
    }
    for o in ["error", "Success", ""] {
        assert!(shape(&format!(r#"{{"action":"x","outcome":"{o}"}}"#)).is_err(), "{o}");
    }
}

/// The reserved namespace is the one the shaper keeps for the server.
#[test]
fn the_reserved_namespace_is_the_shapers() {
    let d = doc();
    assert_eq!(shape::RESERVED_ACTION_PREFIX, "graven.");
    assert!(d.contains("Actions starting with `graven.`"));
    let listed = rows(&d, "## Reserved namespace");
    assert!(listed.iter().all(|r| r[0].starts_with("`graven.")), "{listed:?}");
    assert_eq!(
        shape(r#"{"action":"Graven.key.revoke"}"#).unwrap_err(),
        EventError::ReservedAction("Graven.key.revoke".into())
    );
}

/// Every limit on the page is the code's, and the code has none the page leaves out; each is
/// also checked at its edge where the shaper or the parser enforces it.
#[test]
fn the_limits_are_the_codes() {
    let d = doc();
    let server = graven_server::config::resolve(graven_server::config::Overrides {
        data: Some(tempfile::tempdir().unwrap().path().join("none")),
        ..Default::default()
    })
    .unwrap();
    let engine = graven_engine::engine::EngineConfig::default();
    let code: Vec<(&str, u64)> = vec![
        ("event_json_bytes", jcs::MAX_INPUT as u64),
        ("stored_event_bytes", event::MAX_ENTRY_SIZE as u64),
        ("json_depth", jcs::MAX_DEPTH as u64),
        ("claimed_actor_depth", jcs::MAX_DEPTH as u64 - 2),
        ("short_string_bytes", shape::MAX_SHORT_STRING as u64),
        ("exact_integer", 1 << 53),
        ("signature_id_bytes", event_sig::MAX_ID_LEN as u64),
        ("logged_at_chars", event::TIMESTAMP_LEN as u64),
        ("max_body_bytes", server.max_body_bytes as u64),
        ("max_batch_events", engine.max_batch_events as u64),
        ("client_signature_window_seconds", graven_engine::engine::DEFAULT_CLIENT_SIGNATURE_WINDOW_SECONDS),
    ];
    let page: Vec<(String, u64)> = rows(&d, "## Limits").iter().map(|r| (name(r), number(&r[1]))).collect();
    let page_names: BTreeSet<&str> = page.iter().map(|(n, _)| n.as_str()).collect();
    let code_names: BTreeSet<&str> = code.iter().map(|(n, _)| *n).collect();
    assert_eq!(page_names, code_names, "the page and the code list different limits");
    for (n, v) in &page {
        let want = code.iter().find(|(c, _)| c == n).map(|(_, v)| *v);
        assert_eq!(Some(*v), want, "docs/events.md says {n} is {v}");
    }
    assert_eq!(
        engine.client_signature_window.as_secs(),
        graven_engine::engine::DEFAULT_CLIENT_SIGNATURE_WINDOW_SECONDS
    );
}

/// The limits the shaper and the parser enforce, at their edges.
#[test]
fn the_limits_hold_at_their_edges() {
    // One event as sent: at most MAX_INPUT bytes (padding with whitespace, which is allowed).
    let small = r#"{"action":"x"}"#;
    let at = format!("{small}{}", " ".repeat(jcs::MAX_INPUT - small.len()));
    shape(&at).unwrap();
    let over = format!("{at} ");
    assert!(matches!(shape(&over), Err(EventError::Json(jcs::JcsError::InputTooLarge { .. }))));

    // The stored event: exactly MAX_ENTRY_SIZE bytes is accepted, one more is not.
    let base = shape(r#"{"action":"x","details":""}"#).unwrap().bytes.len();
    let pad = event::MAX_ENTRY_SIZE - base;
    let body = |n: usize| format!(r#"{{"action":"x","details":"{}"}}"#, "a".repeat(n));
    assert_eq!(shape(&body(pad)).unwrap().bytes.len(), event::MAX_ENTRY_SIZE);
    assert_eq!(shape(&body(pad + 1)).unwrap_err(), EventError::TooLarge(event::MAX_ENTRY_SIZE + 1));

    // Depth: the event is level 1, so `details` may nest MAX_DEPTH - 1 levels.
    shape(&format!(r#"{{"action":"x","details":{}}}"#, nested(jcs::MAX_DEPTH - 1))).unwrap();
    let e = shape(&format!(r#"{{"action":"x","details":{}}}"#, nested(jcs::MAX_DEPTH))).unwrap_err();
    assert!(matches!(e, EventError::Json(jcs::JcsError::TooDeep { .. })), "{e}");
    // The client's actor goes two levels down: MAX_DEPTH - 2.
    shape(&format!(r#"{{"action":"x","actor":{}}}"#, nested(jcs::MAX_DEPTH - 2))).unwrap();
    let e = shape(&format!(r#"{{"action":"x","actor":{}}}"#, nested(jcs::MAX_DEPTH - 1))).unwrap_err();
    assert!(matches!(e, EventError::TooDeep { path: "actor", .. }), "{e}");

    // Short strings: 1 to MAX_SHORT_STRING bytes (UTF-8 bytes, not characters).
    let long = "a".repeat(shape::MAX_SHORT_STRING);
    let too_long = "é".repeat(shape::MAX_SHORT_STRING / 2) + "a";
    for (field, ok, bad, empty) in [
        (
            "action",
            format!(r#""action":"{long}""#),
            format!(r#""action":"{too_long}""#),
            r#""action":"""#.to_owned(),
        ),
        (
            "request_id",
            format!(r#""action":"x","request_id":"{long}""#),
            format!(r#""action":"x","request_id":"{too_long}""#),
            r#""action":"x","request_id":"""#.to_owned(),
        ),
        (
            "resource.type",
            format!(r#""action":"x","resource":{{"type":"{long}"}}"#),
            format!(r#""action":"x","resource":{{"type":"{too_long}"}}"#),
            r#""action":"x","resource":{"type":""}"#.to_owned(),
        ),
        (
            "resource.id",
            format!(r#""action":"x","resource":{{"id":"{long}"}}"#),
            format!(r#""action":"x","resource":{{"id":"{too_long}"}}"#),
            r#""action":"x","resource":{"id":""}"#.to_owned(),
        ),
    ] {
        shape(&format!("{{{ok}}}")).unwrap_or_else(|e| panic!("{field}: {e}"));
        for refused in [bad, empty] {
            let e = shape(&format!("{{{refused}}}")).unwrap_err();
            assert!(matches!(&e, EventError::Field { path, .. } if path == field), "{field}: {e}");
        }
    }

    // Integers: up to 2^53 exactly.
    assert!(jcs::parse(b"9007199254740992").is_ok());
    assert!(jcs::parse(b"9007199254740993").is_err());
    assert!(jcs::parse(b"-9007199254740993").is_err());

    // A signature id: 1 to MAX_ID_LEN bytes.
    assert!(event_sig::valid_id(&"a".repeat(event_sig::MAX_ID_LEN)));
    assert!(!event_sig::valid_id(&"a".repeat(event_sig::MAX_ID_LEN + 1)));
    assert!(!event_sig::valid_id(""));

    // logged_at: always TIMESTAMP_LEN characters.
    assert_eq!(event::format_timestamp(0).len(), event::TIMESTAMP_LEN);
    assert_eq!(event::LOGGED_AT_PLACEHOLDER.len(), event::TIMESTAMP_LEN);
}
