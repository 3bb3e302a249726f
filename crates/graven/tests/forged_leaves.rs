//! Leaves an operator (or, in an old log, any writer) could put in the log to fool `graven
//! verify`'s client-signature check: forged key registrations, leaves the strict parser refuses
//! that still carry a client signature, replayed signatures, and text that rewrites the terminal.
//! Each log is written the way an operator would, with `graven log append --raw` and the log key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::process::Output;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{TestLog, assert_terminal_safe, graven, ok, stderr};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

fn kid(k: &SigningKey) -> String {
    graven_core::event_sig::key_id(k.verifying_key().as_bytes())
}

fn canonical(v: &Value) -> String {
    String::from_utf8(graven_core::jcs::canonicalize(v.to_string().as_bytes()).unwrap()).unwrap()
}

/// A registry event as the server writes it, attributed to `actor`.
fn registry(actor: &str, action: &str, identity: &str, details: Value) -> String {
    canonical(&json!({"action": action, "outcome": "success",
        "actor": {"id": actor, "kind": "service_account", "auth": "api_key", "credential": "key:1"},
        "resource": {"type": "graven.identity", "id": identity}, "source": {},
        "logged_at": "2026-01-01T00:00:00.000000Z", "v": 1, "details": details}))
}

fn add_public(actor: &str, identity: &str, k: &SigningKey) -> String {
    registry(
        actor,
        "graven.key.add_public",
        identity,
        json!({"key_id": kid(k), "alg": "ed25519", "public_key": B64.encode(k.verifying_key().as_bytes())}),
    )
}

/// `client` signed with `k`, then sealed by the server in `actor`'s name.
fn signed(k: &SigningKey, actor: &str, client: &str) -> String {
    let bytes = graven_core::event_sig::sign_event(k, client.as_bytes()).unwrap();
    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    v["actor"] = json!({"id": actor, "kind": "bot", "auth": "api_key", "credential": "key:2"});
    v["logged_at"] = json!("2026-01-01T00:00:01.000000Z");
    v["v"] = json!(1);
    canonical(&v)
}

/// A log holding exactly `lines` (each stored verbatim), verified once with `--json`.
fn verify_lines(lines: &[String]) -> (Output, Option<Value>) {
    let log = TestLog::new("forged.example/log");
    ok(&log.append_raw((lines.join("\n") + "\n").as_bytes()));
    let out = graven(&["verify", log.dir.to_str().unwrap(), "--vkey", &log.vkey, "--json"], b"");
    let v = serde_json::from_slice(&out.stdout).ok();
    (out, v)
}

fn verified(lines: &[String]) -> Value {
    let (out, v) = verify_lines(lines);
    assert_eq!(out.status.code(), Some(0), "must verify; stderr: {}", stderr(&out));
    v.unwrap()
}

fn refused(lines: &[String], needles: &[&str]) -> String {
    let (out, v) = verify_lines(lines);
    assert_eq!(out.status.code(), Some(1), "must fail; stdout {:?}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(v.unwrap()["alert"], "verification-failed");
    let err = stderr(&out);
    for n in needles {
        assert!(err.contains(n), "{err:?} should mention {n:?}");
    }
    err
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A registry event is honoured only when its actor is an admin as recorded in the log itself:
/// the bootstrap `admin`, or an identity an admin created with role `admin` and has not revoked.
/// Any other registry event changes no key, and is counted and reported.
#[test]
fn registry_events_are_honoured_only_from_admins() {
    let k = key(31);
    let reg = add_public("admin", "svc:x", &k);
    let honest = signed(&k, "svc:x", r#"{"action":"deploy","details":{"n":1}}"#);
    let honest2 = signed(&k, "svc:x", r#"{"action":"deploy","details":{"n":2}}"#);

    // A writer registers garbage as a key: before, `graven verify` failed on it forever.
    let garbage =
        registry("svc:evil", "graven.key.add_public", "x", json!({"key_id": "x", "public_key": "garbage"}));
    let v = verified(&[reg.clone(), honest.clone(), garbage.clone()]);
    assert_eq!(v["client_signatures"]["verified"], 1, "{v}");
    assert_eq!(v["registry_events_ignored"], json!({"count": 1, "first_index": 2}), "{v}");

    // A writer revokes the victim's key, or the victim: the genuine events still verify.
    let revoke_key = registry("svc:evil", "graven.key.revoke_public", "svc:x", json!({"key_id": kid(&k)}));
    let revoke_id = registry("svc:evil", "graven.identity.revoke", "svc:x", json!({}));
    let v = verified(&[reg.clone(), honest.clone(), revoke_key.clone(), revoke_id, honest2.clone()]);
    assert_eq!(v["client_signatures"]["verified"], 2, "{v}");
    assert_eq!(v["registry_events_ignored"], json!({"count": 2, "first_index": 2}), "{v}");
    // The start-up events of the server itself are not honoured either.
    let by_server =
        registry("graven:server", "graven.key.revoke_public", "svc:x", json!({"key_id": kid(&k)}));
    let v = verified(&[reg.clone(), by_server, honest2.clone()]);
    assert_eq!(v["registry_events_ignored"]["count"], 1, "{v}");
    // A writer's key registration does not let it sign in anyone's name.
    let mine = key(32);
    let v =
        verify_lines(&[add_public("svc:evil", "svc:y", &mine), signed(&mine, "svc:y", r#"{"action":"a"}"#)]);
    assert_eq!(v.0.status.code(), Some(1), "{}", stderr(&v.0));
    assert!(stderr(&v.0).contains("entry 1:") && stderr(&v.0).contains("registers"), "{}", stderr(&v.0));

    // An admin's own revocation is honoured.
    let revoked = registry("admin", "graven.key.revoke_public", "svc:x", json!({"key_id": kid(&k)}));
    refused(&[reg.clone(), honest.clone(), revoked, honest2.clone()], &["entry 3:", "revoked at entry 2"]);

    // Admins created by an admin count; one created by a writer does not; a revoked one no longer.
    let k2 = key(33);
    let make_admin = |by: &str, id: &str| {
        registry(by, "graven.identity.create", id, json!({"role": "admin", "kind": "bot"}))
    };
    let by_ops = add_public("ops", "svc:z", &k2);
    let z = signed(&k2, "svc:z", r#"{"action":"z"}"#);
    let v = verified(&[make_admin("admin", "ops"), by_ops.clone(), z.clone()]);
    assert_eq!(v["client_signatures"]["verified"], 1, "{v}");
    assert_eq!(v["registry_events_ignored"]["count"], 0, "{v}");
    let writer_made = registry("admin", "graven.identity.create", "ops", json!({"role": "writer"}));
    refused(&[writer_made, by_ops.clone(), z.clone()], &["entry 2:"]);
    refused(&[make_admin("svc:evil", "ops"), by_ops.clone(), z.clone()], &["entry 2:"]);
    let fired = registry("admin", "graven.identity.revoke", "ops", json!({}));
    refused(&[make_admin("admin", "ops"), fired, by_ops, z], &["entry 3:"]);

    // A malformed registration that an admin really wrote is still a verification failure.
    let bad =
        registry("admin", "graven.key.add_public", "x", json!({"key_id": "x", "public_key": "garbage"}));
    refused(&[bad], &["entry 0:", "Ed25519 public key"]);

    // The text output reports the ignored events too.
    let log = TestLog::new("forged.example/text");
    ok(&log.append_raw(format!("{reg}\n{honest}\n{garbage}\n").as_bytes()));
    let text = ok(&log.verify_afresh());
    assert!(text.contains("1 registry event ignored") && text.contains("first at entry 2"), "{text}");
}

/// A leaf the strict RFC 8785 parser refuses is not an event; it is counted and reported, and if
/// a lenient reading finds a client signature in it, verification fails naming it.
#[test]
fn a_client_signed_leaf_the_strict_parser_refuses_fails_verification() {
    let k = key(41);
    let reg = add_public("admin", "svc:x", &k);
    let honest = signed(&k, "svc:x", r#"{"action":"deploy","details":{"n":1}}"#);
    // The genuine event plus one member the strict parser refuses: a number beyond 2^53, a
    // duplicate key, a lone surrogate. The server would index and serve each in svc:x's name.
    let padded = |member: &str| format!("{{{member},{}", &honest[1..]);
    for (forged, what) in [
        (padded(r#""pad":9007199254740993"#), "big number"),
        (padded(r#""action":"delete""#), "duplicate key"),
        (padded(r#""pad":"\ud800""#), "lone surrogate"),
        (padded(r#""client\u005fsignature":1,"pad":1e400"#), "escaped name"),
        (format!(" {honest} x"), "trailing data"),
    ] {
        let err = refused(&[reg.clone(), honest.clone(), forged], &["entry 2:"]);
        assert!(err.contains("client signature") && err.contains("strict"), "{what}: {err}");
    }
    let v = verified(&[reg.clone(), honest.clone()]);
    assert_eq!(v["non_events"], json!({"count": 0, "first_index": null}), "{v}");
    // A strictly parsed event whose client_signature is malformed.
    let mut bad: Value = serde_json::from_str(&honest).unwrap();
    bad["client_signature"]["sig"] = json!("AAAA");
    refused(&[reg.clone(), canonical(&bad)], &["entry 1:", "client_signature"]);

    // Raw lines are legitimate: counted, reported, no failure.
    let v =
        verified(&["plain text".into(), reg.clone(), "[1,2]".into(), honest.clone(), "{\"n\":1e400}".into()]);
    assert_eq!(v["non_events"], json!({"count": 3, "first_index": 0}), "{v}");
    assert_eq!(v["client_signatures"]["verified"], 1, "{v}");
    let log = TestLog::new("forged.example/raw");
    ok(&log.append_raw(b"plain text\nmore\n"));
    let text = ok(&log.verify_afresh());
    assert!(text.contains("2 entries are not Graven events") && text.contains("first at entry 0"), "{text}");
}

/// The same client signature twice in the log is a replay: verification fails naming both.
#[test]
fn a_replayed_client_signature_fails_naming_both_entries() {
    let k = key(51);
    let reg = add_public("admin", "svc:x", &k);
    let honest = signed(&k, "svc:x", r#"{"action":"payment.send","details":{"amount":100}}"#);
    // Sealed again later: a different leaf, the same signature.
    let mut again: Value = serde_json::from_str(&honest).unwrap();
    again["logged_at"] = json!("2026-01-02T00:00:00.000000Z");
    let other = signed(&k, "svc:x", r#"{"action":"payment.send","details":{"amount":5}}"#);
    verified(&[reg.clone(), honest.clone(), other.clone()]);
    refused(&[reg.clone(), honest.clone(), other.clone(), canonical(&again)], &["entry 3:", "entry 1"]);
    refused(&[reg, honest.clone(), honest], &["entry 2:", "entry 1", "replay"]);
}

/// Leaf strings quoted by the verifier's messages are escaped, in text and in `--json`.
#[test]
fn verify_messages_quote_leaf_strings_escaped() {
    let hostile = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{202e}txt.exe\u{9b}31m\u{2028}\u{2066}";
    let k = key(61);
    let cases = [
        // An admin's registration with a hostile key id.
        vec![registry(
            "admin",
            "graven.key.add_public",
            hostile,
            json!({"key_id": hostile, "public_key": "x"}),
        )],
        // A key registered to one identity by an admin, and to a hostile one.
        vec![add_public("admin", "svc:x", &k), add_public("admin", hostile, &k)],
        // A signature whose event names a hostile actor.
        vec![add_public("admin", "svc:x", &k), signed(&k, hostile, r#"{"action":"a"}"#)],
    ];
    for lines in cases {
        let log = TestLog::new("hostile.example/log");
        ok(&log.append_raw((lines.join("\n") + "\n").as_bytes()));
        for extra in [&[][..], &["--json"][..]] {
            let mut args = vec!["verify", log.dir.to_str().unwrap(), "--vkey", &log.vkey];
            args.extend_from_slice(extra);
            let out = graven(&args, b"");
            assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
            assert!(stderr(&out).contains("\\u{202e}"), "{}", stderr(&out));
            assert_terminal_safe("stderr", &out.stderr);
            assert_terminal_safe("stdout", &out.stdout);
        }
    }
}

/// Version 2 signatures carry a one-time id: two different events signed with the same key and
/// id (which the server refuses) fail verification when they are in the log anyway.
#[test]
fn a_reused_signature_id_fails_naming_both_entries() {
    let k = key(52);
    let reg = add_public("admin", "svc:x", &k);
    let seal = |client: &str, id: &str| {
        let signed = graven_core::event_sig::sign_event_v2(&k, client.as_bytes(), id, 1_767_225_600).unwrap();
        let mut v: Value = serde_json::from_slice(&signed).unwrap();
        v["actor"] = json!({"id": "svc:x", "kind": "bot", "auth": "api_key", "credential": "key:2"});
        v["logged_at"] = json!("2026-01-01T00:00:01.000000Z");
        v["v"] = json!(1);
        canonical(&v)
    };
    let a = seal(r#"{"action":"payment.send","details":{"amount":100}}"#, "pay-1");
    let b = seal(r#"{"action":"payment.send","details":{"amount":5}}"#, "pay-2");
    let c = seal(r#"{"action":"payment.send","details":{"amount":9}}"#, "pay-1");
    verified(&[reg.clone(), a.clone(), b.clone()]);
    refused(&[reg, a, b, c], &["entry 3:", "entry 1", "pay-1"]);
}
