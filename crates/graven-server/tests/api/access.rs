//! Who may do what: credentials refused (forged, malformed, revoked, expired, rotated out),
//! roles, allowed actions, disabled and revoked identities; no route alters an event; the read
//! path is private unless configured public.

use std::time::Duration;

use graven_server::testing::{Harness, key_id};
use serde_json::{Value, json};

use crate::util::{post_batch, post_event};

/// A request as an HTTP client sends it: a body only with the methods that take one.
fn with_body(
    h: &Harness,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> graven_server::testing::Request {
    let req = h.request(method, path).bearer(token);
    if matches!(method, "POST" | "PUT" | "PATCH") { req.json(body) } else { req }
}

#[test]
fn security_matrix() {
    let h = Harness::start();
    let t = h.token().to_owned();
    let writer = h.identity("svc:deployer", "writer", &["deploy.*"]);
    let auditor = h.identity("audit:soc", "auditor", &[]);
    h.check(post_event(&h, &writer, r#"{"action":"deploy.create"}"#)).expect(201);
    let action_count =
        |a: &str| h.all_events().iter().filter(|e| e.contains(&format!("\"action\":\"{a}\""))).count();

    // Impersonation: the admin's key id with a made-up secret.
    let forged = format!("gvn_{}_{}", key_id(&t), "A".repeat(43));
    let d =
        h.refused(401, post_event(&h, &forged, r#"{"action":"matrix.forged"}"#)).expect("a denied record");
    assert_eq!(d["actor"]["id"], "graven:server");
    assert_eq!(d["claimed"]["actor"]["credential"], format!("key:{}", key_id(&t)));
    assert_eq!(d["details"]["reason"], "invalid-credential");
    assert_eq!(d["source"]["ip"], "127.0.0.1");
    assert!(
        !serde_json::to_string(&d).unwrap().contains(&"A".repeat(43)),
        "the presented secret is not logged"
    );
    // Impersonation by the body: accepted, but as the writer itself.
    let r = h
        .check(post_event(&h, &writer, r#"{"action":"deploy.as-admin","actor":{"id":"admin"}}"#))
        .expect(201);
    let e = h.event(r.json()["index"].as_u64().unwrap());
    assert_eq!((&e["actor"]["id"], &e["claimed"]["actor"]["id"]), (&json!("svc:deployer"), &json!("admin")));

    // Malformed credentials are 401, never 500.
    for bad in
        ["gvn_", "nonsense", "gvn_0123456789abcdef_short", &"gvn_x".repeat(100), "gvn_0123456789ABCDEF_!!"]
    {
        h.refused(401, post_event(&h, bad, r#"{"action":"matrix.malformed"}"#));
    }
    h.refused(401, post_event(&h, "", r#"{"action":"matrix.empty"}"#));

    // A revoked key.
    let k2 = h.new_key("svc:deployer", json!({}));
    h.check(post_event(&h, &k2, r#"{"action":"deploy.k2"}"#)).expect(201);
    h.check(h.post(format!("/v1/identities/svc:deployer/keys/{}/revoke", key_id(&k2))).bearer(&t))
        .expect(200);
    let d =
        h.refused(401, post_event(&h, &k2, r#"{"action":"matrix.revoked-key"}"#)).expect("a denied record");
    assert_eq!((&d["actor"]["id"], &d["details"]["reason"]), (&json!("svc:deployer"), &json!("key-revoked")));
    assert_eq!(d["actor"]["credential"], format!("key:{}", key_id(&k2)));

    // An expired key.
    let k3 = h.new_key("svc:deployer", json!({"ttl_seconds": 1}));
    h.check(post_event(&h, &k3, r#"{"action":"deploy.k3"}"#)).expect(201);
    std::thread::sleep(Duration::from_millis(1200));
    h.refused(401, post_event(&h, &k3, r#"{"action":"matrix.expired"}"#));

    // Rotation: the old key works inside the overlap window, not after it.
    let rotate =
        h.post("/v1/identities/svc:deployer/keys/rotate").bearer(&t).json(json!({"overlap_seconds": 2}));
    let rotated = h.check(rotate).expect(201).json()["key"].as_str().unwrap().to_owned();
    h.check(post_event(&h, &writer, r#"{"action":"deploy.old-in-window"}"#)).expect(201);
    h.check(post_event(&h, &rotated, r#"{"action":"deploy.new"}"#)).expect(201);
    std::thread::sleep(Duration::from_millis(2200));
    h.refused(401, post_event(&h, &writer, r#"{"action":"matrix.after-window"}"#));
    h.check(post_event(&h, &rotated, r#"{"action":"deploy.new-after"}"#)).expect(201);
    let writer = rotated;

    // A writer may not read, search, stream, read tiles or manage identities.
    for path in [
        "/v1/events/0",
        "/v1/events?actor=admin",
        "/v1/stream?from=0",
        "/checkpoint",
        "/tile/0/000.p/1",
        "/v1/identities",
        "/v1/proofs/inclusion?index=0",
    ] {
        if let Some(d) = h.refused(403, h.get(path).bearer(&writer)) {
            assert_eq!(
                (&d["actor"]["id"], &d["details"]["reason"]),
                (&json!("svc:deployer"), &json!("role"))
            );
        }
    }
    let me2 = r#"{"id":"svc:me2","kind":"bot","owner":"x","role":"admin"}"#;
    h.refused(403, h.post("/v1/identities").bearer(&writer).json(me2));
    h.check(h.get("/v1/identities/svc:me2").bearer(&t)).expect(404);

    // A writer outside its patterns, alone or in a batch: nothing appended.
    if let Some(d) = h.refused(403, post_event(&h, &writer, r#"{"action":"matrix.secret.read"}"#)) {
        assert_eq!(d["details"]["attempted_action"], "matrix.secret.read");
        assert_eq!(d["actor"]["id"], "svc:deployer");
    }
    h.refused(403, post_batch(&h, &writer, "{\"action\":\"deploy.ok\"}\n{\"action\":\"matrix.batch\"}\n"));
    assert_eq!(action_count("deploy.ok"), 0, "no line of a refused batch is appended");

    // An auditor may read but not append.
    h.check(h.get("/v1/events/0").bearer(&auditor)).expect(200);
    h.check(h.get("/checkpoint").bearer(&auditor)).expect(200);
    h.refused(403, post_event(&h, &auditor, r#"{"action":"matrix.auditor"}"#));
    h.refused(403, h.post("/v1/identities/svc:deployer/disable").bearer(&auditor).json("{}"));

    // A disabled identity, then enabled again; a revoked one, for good.
    h.check(h.post("/v1/identities/svc:deployer/disable").bearer(&t).json(json!({"reason": "test"})))
        .expect(200);
    if let Some(d) = h.refused(401, post_event(&h, &writer, r#"{"action":"matrix.disabled"}"#)) {
        assert_eq!(d["details"]["reason"], "identity-disabled");
    }
    h.check(h.post("/v1/identities/svc:deployer/enable").bearer(&t).json("{}")).expect(200);
    h.check(post_event(&h, &writer, r#"{"action":"deploy.enabled"}"#)).expect(201);
    h.check(h.post("/v1/identities/svc:deployer/revoke").bearer(&t).json("{}")).expect(200);
    h.refused(401, post_event(&h, &writer, r#"{"action":"matrix.revoked-identity"}"#));
    let again = h.check(h.post("/v1/identities/svc:deployer/enable").bearer(&t).json("{}"));
    assert_eq!(again.status(), 409, "revoked is final");
    h.check(h.post("/v1/identities/svc:deployer/keys").bearer(&t).json("{}")).expect(409);

    // An admin cannot delete or alter an event: there is no such route.
    let before = h.all_events();
    for m in ["DELETE", "PUT", "PATCH"] {
        for p in ["/v1/events/0", "/v1/events", "/tile/entries/000.p/1", "/checkpoint"] {
            let r = h.check(with_body(&h, m, p, &t, r#"{"action":"matrix.overwrite"}"#));
            assert_eq!(r.status(), 405, "{m} {p}: {}", r.text());
        }
    }
    assert_eq!(h.all_events(), before, "the log is unchanged");
    // An admin cannot lock itself out.
    h.check(h.post("/v1/identities/admin/revoke").bearer(&t).json("{}")).expect(409);

    // No refused request's event was appended, and every refusal is either recorded or counted.
    let all = h.all_events().join("\n");
    assert!(!all.contains("\"action\":\"matrix."), "a refused event reached the log");
    let denied = h.all_events().iter().filter(|e| e.contains("\"outcome\":\"denied\"")).count() as u64;
    assert_eq!(h.metric("graven_denied_records_total"), denied);
    // 1 forged + 5 malformed + 1 empty-token scheme + revoked + expired + after-window + 7 reads
    // + 1 create + 2 patterns + 2 auditor + disabled + revoked identity = 24 refusals.
    assert_eq!(denied + h.metric("graven_denied_records_dropped_total"), 24);
}

#[test]
fn the_read_path_is_private_unless_configured_public() {
    let mut h = Harness::start();
    h.check(post_event(&h, h.token(), r#"{"action":"x"}"#)).expect(201);
    for p in
        ["/checkpoint", "/tile/entries/000.p/3", "/v1/log", "/v1/events/0", "/v1/events", "/v1/identities"]
    {
        h.check(h.get(p)).expect(401);
    }
    for p in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        h.check(h.get(p)).expect(200);
    }
    // The server's two records of its bootstrap admin, and the event.
    assert_eq!(h.size(), 3, "anonymous probes without a credential are not recorded");
    assert!(h.verify_over_http(None).is_err(), "a private read path does not verify anonymously");
    h.crash_restart_with(|o, _| o.public_read_path = Some(true));
    for p in ["/checkpoint", "/tile/entries/000.p/3", "/v1/log"] {
        h.check(h.get(p)).expect(200);
    }
    assert_eq!(h.check(h.get("/v1/events/0")).status(), 401, "events stay private");
    // Anyone can verify it, with no credential, from what the read path serves.
    assert_eq!(h.verify_over_http(None).unwrap().tree_size, 3);
}

fn sample(path: &str, key_id: &str) -> String {
    path.replace("{index}", "0")
        .replace("{id}", "svc:walker")
        .replace("{key_id}", key_id)
        .replace("{path}", "entries/000.p/1")
        .replace("{size}", "00000000000000000001")
}

/// Walks every documented route with every method, as the admin: nothing updates or deletes
/// an event, methods a route does not document are refused, and the only events added are the
/// server's own `graven.*` records of identity changes.
#[test]
fn no_route_alters_or_deletes_an_event() {
    let h = Harness::start();
    let t = h.token().to_owned();
    let walker = h.identity("svc:walker", "writer", &[]);
    let body: String = (0..300).map(|i| format!("{{\"action\":\"walk.{i}\"}}\n")).collect();
    h.check(post_batch(&h, &walker, &body)).expect(201);
    let before = h.all_events();

    let api = h.check(h.get("/openapi.json")).expect(200).json();
    let paths = api["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 29, "the OpenAPI document lists every route but itself");
    let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    let mut walked = 0;
    for (path, ops) in paths {
        for m in methods {
            let documented = ops.get(m.to_lowercase()).is_some() || (m == "HEAD" && ops.get("get").is_some());
            assert!(!matches!(m, "PUT" | "PATCH" | "DELETE") || !documented, "{m} {path} is documented");
            if path.contains("stream") && documented {
                continue; // an endless response; its refusals are walked below
            }
            let url = sample(path, key_id(&walker));
            let r = h.check(with_body(&h, m, &url, &t, "{}"));
            walked += 1;
            if documented {
                assert_ne!(r.status(), 405, "{m} {url}");
                assert!(r.status() < 500, "{m} {url}: {}", r.text());
            } else {
                assert_eq!(r.status(), 405, "{m} {url}: {}", r.text());
            }
        }
    }
    assert_eq!(walked, 29 * 7 - 2, "every documented route, every method");
    for p in
        ["/v1/events/0/delete", "/v1/events/0/edit", "/v1/admin", "/v1/events/0/redact", "/tile/../log.key"]
    {
        for m in methods {
            let r = h.check(with_body(&h, m, p, &t, "{}"));
            assert!(r.status() == 404 || r.status() == 405, "{m} {p}: {}", r.status());
        }
    }

    let after = h.all_events();
    assert_eq!(&after[..before.len()], &before[..], "an event changed");
    for e in &after[before.len()..] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert!(v["action"].as_str().unwrap().starts_with("graven."), "the walk appended {e}");
        assert_eq!(v["actor"]["id"], "admin");
    }
}
