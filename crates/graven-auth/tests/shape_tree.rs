//! The one-pass `shape` against the tree-based shaper it replaced (`reference/shape_tree.rs`):
//! on generated event bodies, valid and broken, both give the same leaf bytes, stamp position
//! and signed message, or the same error.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use graven_auth::principal::Actor;
use graven_auth::shape::{self, EventError, Unstamped};
use graven_core::jcs::Value;
use proptest::prelude::*;

#[path = "reference/shape_tree.rs"]
mod shape_tree;

use shape_tree::Writer;

fn actor(oidc: bool) -> Actor {
    let mut actor = Actor {
        // Characters the canonical form escapes, and one it does not.
        id: "svc:a\"\\\n\u{1F602}".into(),
        kind: "service_account".into(),
        credential: "key:0123456789abcdef".into(),
        auth: "api_key".into(),
        extra: Vec::new(),
    };
    if oidc {
        actor.auth = "oidc".into();
        actor.extra.push(("issuer".into(), Value::String("https://issuer.example".into())));
        actor.extra.push((
            "on_behalf_of".into(),
            Value::Object(vec![("sub".into(), Value::String("user\u{202e}\"".into()))]),
        ));
    }
    actor
}

/// Same outcome: equal errors, or equal leaves (bytes, stamp position, signature and message).
fn same(
    new: &Result<Unstamped, EventError>,
    old: &Result<Unstamped, EventError>,
) -> Result<(), TestCaseError> {
    match (new, old) {
        (Ok(n), Ok(o)) => {
            prop_assert_eq!(String::from_utf8_lossy(&n.bytes), String::from_utf8_lossy(&o.bytes));
            prop_assert_eq!(n.stamp_at, o.stamp_at);
            let sig = |u: &Unstamped| u.client_sig.as_ref().map(|c| (c.sig.clone(), c.message.clone()));
            prop_assert_eq!(sig(n), sig(o));
        }
        (Err(n), Err(o)) => prop_assert_eq!(n, o),
        (n, o) => prop_assert!(false, "one-pass {n:?}, tree {o:?}"),
    }
    Ok(())
}

fn check(body: &[u8], oidc: bool, restricted: bool) -> Result<(), TestCaseError> {
    let actor = actor(oidc);
    let allowed = |a: &str| !restricted || a.starts_with("deploy.");
    same(
        &shape::shape_with(body, &actor, &allowed),
        &shape_tree::shape_as(Writer::Client, body, &actor, &allowed),
    )?;
    same(
        &shape::shape_self_audit(body, &actor),
        &shape_tree::shape_as(Writer::Server, body, &actor, &|_| true),
    )
}

/// A JSON string literal for `s`, every character above `~` and `/` sometimes `\u`-escaped.
fn string(s: &str, escape: bool) -> String {
    if !escape {
        return serde_json::to_string(s).unwrap();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' if c != '/' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z.]{0,10}",
        1 => any::<String>(),
        1 => Just("graven.key.add".to_owned()),
        1 => Just("deploy.update".to_owned()),
        1 => Just("x".repeat(1025)),
        1 => Just("2026-11-26T17:48:19.900Z".to_owned()),
        1 => Just("success".to_owned()),
        1 => Just("failure\n".to_owned()),
    ]
}

/// Any JSON value as text, nested up to `depth`, numbers included (some not exact doubles).
fn json(depth: u32) -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        15 => (text(), any::<bool>()).prop_map(|(s, e)| string(&s, e)),
        15 => prop::sample::select(vec!["null", "true", "-0", "1.50", "1e3", "0.1", "5", "-12.5e-3"]).prop_map(str::to_owned),
        // Refused by the number rule.
        1 => prop::sample::select(vec!["9007199254740993", "1.00000000000000000001", "2"]).prop_map(str::to_owned),
    ];
    leaf.prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::btree_map("[a-e]{0,2}", inner, 0..5)
                .prop_map(|m| m
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", string(&k, false)))
                    .collect::<Vec<_>>())
                .prop_shuffle()
                .prop_map(|m| format!("{{{}}}", m.join(" , "))),
        ]
    })
}

fn nested(depth: usize) -> String {
    "[".repeat(depth) + &"]".repeat(depth)
}

/// The members of an event body, as `"key":value` texts: each field the shaper knows, present or
/// not, mostly valid, then sometimes one more member (unknown, or a repeated key).
fn members() -> impl Strategy<Value = Vec<String>> {
    let sig_v2 = r#"{"alg":"ed25519","id":"once-1","key_id":"0123456789abcdef","sig":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","signed_at":1764179300}"#;
    let sig_v1 = r#"{"sig":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","alg":"ed25519","key_id":"0123456789abcdef"}"#;
    let short = |valid: &'static [&'static str]| {
        prop_oneof![
            20 => (prop::sample::select(valid), any::<bool>()).prop_map(|(s, e)| string(s, e)),
            1 => (text(), any::<bool>()).prop_map(|(s, e)| string(&s, e)),
            1 => json(1),
        ]
    };
    let resource = (
        prop::option::of(short(&["k8s.deployment", "t"])),
        prop::option::of(short(&["prod/x", "é"])),
        any::<bool>(),
        json(2),
    )
        .prop_map(|(t, id, type_first, extra)| {
            let mut fields = Vec::new();
            if let Some(t) = t {
                fields.push(format!("\"type\":{t}"));
            }
            if let Some(id) = id {
                fields.push(format!("\"id\":{id}"));
            }
            if !type_first {
                fields.reverse();
            }
            fields.push(format!("\"labels\":{extra}"));
            format!("{{{}}}", fields.join(","))
        });
    let field = |key: &'static str, value: BoxedStrategy<String>| {
        prop::option::weighted(0.6, value.prop_map(move |v| format!("\"{key}\":{v}")))
    };
    let extra = prop_oneof![
        (
            prop::sample::select(vec![
                "logged_at",
                "claimed",
                "v",
                "Action",
                "act\\u0069on",
                "details",
                "action"
            ]),
            json(1)
        )
            .prop_map(|(k, v)| format!("\"{k}\":{v}")),
    ];
    (
        (
            field("action", short(&["deploy.update", "graven.key.add", "x", "deploy.\u{1F602}"]).boxed()),
            field("outcome", short(&["success", "failure", "denied", "meh"]).boxed()),
            field(
                "occurred_at",
                short(&[
                    "2026-11-26T17:48:19.900Z",
                    "2026-11-26T17:48:19+01:00",
                    "2026-01-01T00:00:00Z",
                    "2026-11-26T17:48:19.123456789Z",
                    "yesterday",
                ])
                .boxed(),
            ),
            field("request_id", short(&["req-1", "r/1", "é", "req-2", "req-3", ""]).boxed()),
        ),
        (
            field("resource", prop_oneof![5 => resource, 1 => json(1)].boxed()),
            field(
                "source",
                prop_oneof![3 => json(2).prop_map(|j| format!("{{\"ip\":{j}}}")), 1 => json(1)].boxed(),
            ),
            field("details", prop_oneof![5 => json(4), 1 => (55usize..66).prop_map(nested)].boxed()),
            field("actor", prop_oneof![5 => json(3), 1 => (58usize..64).prop_map(nested)].boxed()),
            field(
                "client_signature",
                prop_oneof![3 => Just(sig_v2.to_owned()), 3 => Just(sig_v1.to_owned()), 1 => json(1)].boxed(),
            ),
        ),
        prop::option::weighted(0.15, extra),
    )
        .prop_map(|((a, b, c, d), (e, f, g, h, i), extra)| {
            [a, b, c, d, e, f, g, h, i, extra].into_iter().flatten().collect::<Vec<_>>()
        })
        .prop_shuffle()
}

/// An event body: its members in any order, with or without whitespace.
fn body() -> impl Strategy<Value = String> {
    (members(), any::<bool>()).prop_map(|(members, spaced)| {
        let sep = if spaced { " ,\n " } else { "," };
        format!("{{{}}}", members.join(sep))
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn one_pass_shape_agrees_with_the_tree(body in body(), oidc in any::<bool>(), restricted in any::<bool>()) {
        check(body.as_bytes(), oidc, restricted)?;
    }

    #[test]
    fn one_pass_shape_agrees_on_broken_bodies(
        body in body(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..3),
        cut in any::<prop::sample::Index>(),
        oidc in any::<bool>(),
    ) {
        let mut bytes = body.into_bytes();
        for (at, byte) in edits {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
        }
        check(&bytes, oidc, false)?;
        check(&bytes[..cut.index(bytes.len() + 1)], oidc, false)?;
    }
}

#[test]
fn one_pass_shape_agrees_on_the_edges() {
    let big = format!(r#"{{"action":"x","details":"{}"}}"#, "a".repeat(70_000));
    let cases: Vec<String> = vec![
        "[1]".into(),
        "{}".into(),
        "".into(),
        "{\"action\":\"x\"} x".into(),
        big,
        format!(r#"{{"action":"x","details":"{}"}}"#, "a".repeat(65_000)),
        r#"{"action":"x","resource":{"type":5,"id":5}}"#.into(),
        r#"{"action":"x","resource":{"id":"","type":5}}"#.into(),
        r#"{"outcome":"meh","zzz":1}"#.into(),
        r#"{"zzz":1,"outcome":"meh"}"#.into(),
        r#"{"action":"\u0067raven.x"}"#.into(),
        r#"{"action":"x","client_signature":{"alg":"rsa"},"zzz":1}"#.into(),
        r#"{"action":"x","action":"y"}"#.into(),
    ];
    for body in cases {
        for oidc in [false, true] {
            check(body.as_bytes(), oidc, true).unwrap_or_else(|e| panic!("{body:.80}: {e}"));
        }
    }
}
