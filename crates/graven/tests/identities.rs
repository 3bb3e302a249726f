//! Identities, API keys and roles, end to end: the real binary on a free loopback port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Resp, agent, graven_as as graven, key_id, refused, start};
use serde_json::{Value, json};

#[test]
fn attribution_is_committed_into_the_leaf_and_changes_are_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let token_file = tmp.path().join("admin.key");
    std::fs::write(&token_file, &s.token).unwrap();
    let tf = token_file.to_str().unwrap();
    let server = s.url("");

    // Through the CLI: create an identity, then a key, printed alone on stdout.
    let out = graven(
        &[
            "identity",
            "create",
            "svc:payments-worker",
            "--kind",
            "service_account",
            "--owner",
            "team-payments",
            "--allow",
            "payment.*",
            "--label",
            "env=prod",
            "--server",
            &server,
            "--token-file",
            tf,
        ],
        "",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["role"], "writer");
    assert_eq!(created["labels"]["env"], "prod");
    let out = graven(&["key", "create", "svc:payments-worker", "--server", &server], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "only the key: {stdout:?}");
    let key = stdout.trim().to_owned();
    assert!(key.starts_with("gvn_") && key.len() == 64, "{key}");

    // An event sent with the key, claiming to be someone else.
    let body = r#"{"action":"payment.refund","actor":{"id":"admin","kind":"human"},"resource":{"type":"order","id":"o-1"}}"#;
    let r = s.post_event(&key, body);
    assert_eq!(r.status, 201, "{}", r.body);
    let receipt = r.json();
    let index = receipt["index"].as_u64().unwrap();
    let stored = s.admin("GET", &format!("/v1/events/{index}"), None).json();
    assert_eq!(stored["leaf_hash"], receipt["leaf_hash"], "the leaf the receipt proves is the stored event");
    let ev = &stored["event"];
    assert_eq!(
        ev["actor"],
        json!({"id": "svc:payments-worker", "kind": "service_account", "auth": "api_key", "credential": format!("key:{}", key_id(&key))})
    );
    assert_eq!(
        ev["claimed"]["actor"],
        json!({"id": "admin", "kind": "human"}),
        "the claim only lands in `claimed`"
    );

    // The identity and key changes are events too, by the admin, with no secret in them.
    // (After the server's own records of its bootstrap admin, at 0 and 1.)
    let admin_kid = key_id(&s.token).to_owned();
    let create = s.event(2);
    assert_eq!(create["action"], "graven.identity.create");
    assert_eq!(create["resource"], json!({"type": "graven.identity", "id": "svc:payments-worker"}));
    assert_eq!(create["actor"]["id"], "admin");
    assert_eq!(create["actor"]["credential"], format!("key:{admin_kid}"));
    assert_eq!(create["details"]["allowed_actions"], json!(["payment.*"]));
    let kc = s.event(3);
    assert_eq!(kc["action"], "graven.key.create");
    assert_eq!(kc["details"]["key_id"], key_id(&key));
    let all = s.all_events().join("\n");
    assert!(!all.contains(&key[21..]) && !all.contains(&s.token[21..]), "a secret reached the log");

    // show, list, key list.
    let out = graven(&["identity", "show", "svc:payments-worker", "--server", &server], &s.token);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["keys"][0]["key_id"], key_id(&key));
    assert_eq!(shown["keys"][0]["state"], "active");
    assert!(shown["last_seen_at"].is_string(), "last seen is tracked: {shown}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&key[21..]));
    let out = graven(&["identity", "list", "--server", &server], &s.token);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> =
        list["identities"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["admin", "svc:payments-worker"]);
    let out = graven(
        &["identity", "create", "x", "--kind", "human", "--owner", "o", "--server", &server],
        &s.token,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("400"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = graven(&["key", "list", "svc:payments-worker", "--server", &server], "");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("GRAVEN_TOKEN"));
}

#[test]
fn security_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let writer = s.identity("svc:deployer", "writer", &["deploy.*"]);
    let auditor = s.identity("audit:soc", "auditor", &[]);
    let base = s.post_event(&writer, r#"{"action":"deploy.create"}"#);
    assert_eq!(base.status, 201, "{}", base.body);
    let action_count =
        |a: &str| s.all_events().iter().filter(|e| e.contains(&format!("\"action\":\"{a}\""))).count();

    // Impersonation: the admin's key id with a made-up secret.
    let forged = format!("gvn_{}_{}", key_id(&s.token), "A".repeat(43));
    let d =
        refused(&s, 401, || s.post_event(&forged, r#"{"action":"matrix.forged"}"#)).expect("a denied record");
    assert_eq!(d["actor"]["id"], "graven:server");
    assert_eq!(d["claimed"]["actor"]["credential"], format!("key:{}", key_id(&s.token)));
    assert_eq!(d["details"]["reason"], "invalid-credential");
    assert_eq!(d["source"]["ip"], "127.0.0.1");
    assert!(
        !serde_json::to_string(&d).unwrap().contains(&"A".repeat(43)),
        "the presented secret is not logged"
    );
    // Impersonation by the body: accepted, but as the writer itself.
    let r = s.post_event(&writer, r#"{"action":"deploy.as-admin","actor":{"id":"admin"}}"#);
    assert_eq!(r.status, 201);
    let e = s.event(r.json()["index"].as_u64().unwrap());
    assert_eq!((&e["actor"]["id"], &e["claimed"]["actor"]["id"]), (&json!("svc:deployer"), &json!("admin")));

    // Malformed credentials are 401, never 500.
    for bad in
        ["gvn_", "nonsense", "gvn_0123456789abcdef_short", &"gvn_x".repeat(100), "gvn_0123456789ABCDEF_!!"]
    {
        refused(&s, 401, || s.post_event(bad, r#"{"action":"matrix.malformed"}"#));
    }
    refused(&s, 401, || s.post_event("", r#"{"action":"matrix.empty"}"#));

    // A revoked key.
    let k2 = s.new_key("svc:deployer", json!({}));
    assert_eq!(s.post_event(&k2, r#"{"action":"deploy.k2"}"#).status, 201);
    let out = graven(&["key", "revoke", "svc:deployer", key_id(&k2), "--server", &s.url("")], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d = refused(&s, 401, || s.post_event(&k2, r#"{"action":"matrix.revoked-key"}"#))
        .expect("a denied record");
    assert_eq!((&d["actor"]["id"], &d["details"]["reason"]), (&json!("svc:deployer"), &json!("key-revoked")));
    assert_eq!(d["actor"]["credential"], format!("key:{}", key_id(&k2)));

    // An expired key.
    let k3 = s.new_key("svc:deployer", json!({"ttl_seconds": 1}));
    assert_eq!(s.post_event(&k3, r#"{"action":"deploy.k3"}"#).status, 201);
    std::thread::sleep(Duration::from_millis(1200));
    refused(&s, 401, || s.post_event(&k3, r#"{"action":"matrix.expired"}"#));

    // Rotation: the old key works inside the overlap window, not after it.
    let out = graven(&["key", "rotate", "svc:deployer", "--overlap", "2s", "--server", &s.url("")], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rotated = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(s.post_event(&writer, r#"{"action":"deploy.old-in-window"}"#).status, 201);
    assert_eq!(s.post_event(&rotated, r#"{"action":"deploy.new"}"#).status, 201);
    std::thread::sleep(Duration::from_millis(2200));
    refused(&s, 401, || s.post_event(&writer, r#"{"action":"matrix.after-window"}"#));
    assert_eq!(s.post_event(&rotated, r#"{"action":"deploy.new-after"}"#).status, 201);
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
        let d = refused(&s, 403, || s.req("GET", path, Some(&writer), None));
        if let Some(d) = d {
            assert_eq!(
                (&d["actor"]["id"], &d["details"]["reason"]),
                (&json!("svc:deployer"), &json!("role"))
            );
        }
    }
    refused(&s, 403, || {
        s.req(
            "POST",
            "/v1/identities",
            Some(&writer),
            Some(r#"{"id":"svc:me2","kind":"bot","owner":"x","role":"admin"}"#),
        )
    });
    assert_eq!(s.admin("GET", "/v1/identities/svc:me2", None).status, 404);

    // A writer outside its patterns, alone or in a batch: nothing appended.
    let d = refused(&s, 403, || s.post_event(&writer, r#"{"action":"matrix.secret.read"}"#));
    if let Some(d) = d {
        assert_eq!(d["details"]["attempted_action"], "matrix.secret.read");
        assert_eq!(d["actor"]["id"], "svc:deployer");
    }
    refused(&s, 403, || {
        let url = s.url("/v1/events");
        let mut r = agent()
            .post(&url)
            .header("Authorization", &format!("Bearer {writer}"))
            .header("Content-Type", "application/x-ndjson")
            .send("{\"action\":\"deploy.ok\"}\n{\"action\":\"matrix.batch\"}\n".as_bytes())
            .unwrap();
        Resp { status: r.status().as_u16(), body: r.body_mut().read_to_string().unwrap() }
    });
    assert_eq!(action_count("deploy.ok"), 0, "no line of a refused batch is appended");

    // An auditor may read but not append.
    assert_eq!(s.req("GET", "/v1/events/0", Some(&auditor), None).status, 200);
    assert_eq!(s.req("GET", "/checkpoint", Some(&auditor), None).status, 200);
    refused(&s, 403, || s.post_event(&auditor, r#"{"action":"matrix.auditor"}"#));
    refused(&s, 403, || s.req("POST", "/v1/identities/svc:deployer/disable", Some(&auditor), None));

    // A disabled identity, then enabled again; a revoked one, for good.
    assert_eq!(
        s.admin("POST", "/v1/identities/svc:deployer/disable", Some(json!({"reason": "test"}))).status,
        200
    );
    let d = refused(&s, 401, || s.post_event(&writer, r#"{"action":"matrix.disabled"}"#));
    if let Some(d) = d {
        assert_eq!(d["details"]["reason"], "identity-disabled");
    }
    assert_eq!(s.admin("POST", "/v1/identities/svc:deployer/enable", None).status, 200);
    assert_eq!(s.post_event(&writer, r#"{"action":"deploy.enabled"}"#).status, 201);
    assert_eq!(s.admin("POST", "/v1/identities/svc:deployer/revoke", None).status, 200);
    refused(&s, 401, || s.post_event(&writer, r#"{"action":"matrix.revoked-identity"}"#));
    assert_eq!(s.admin("POST", "/v1/identities/svc:deployer/enable", None).status, 409, "revoked is final");
    assert_eq!(s.admin("POST", "/v1/identities/svc:deployer/keys", None).status, 409);

    // An admin cannot delete or alter an event: there is no such route.
    let before = s.all_events();
    for m in ["DELETE", "PUT", "PATCH"] {
        for p in ["/v1/events/0", "/v1/events", "/tile/entries/000.p/1", "/checkpoint"] {
            let r = s.req(m, p, Some(&s.token), Some(r#"{"action":"matrix.overwrite"}"#));
            assert_eq!(r.status, 405, "{m} {p}: {}", r.body);
        }
    }
    assert_eq!(s.all_events(), before, "the log is unchanged");
    // An admin cannot lock itself out.
    assert_eq!(s.admin("POST", "/v1/identities/admin/revoke", None).status, 409);

    // No refused request's event was appended, and every refusal is either recorded or counted.
    let all = s.all_events().join("\n");
    assert!(!all.contains("\"action\":\"matrix."), "a refused event reached the log");
    let denied = s.all_events().iter().filter(|e| e.contains("\"outcome\":\"denied\"")).count() as u64;
    assert_eq!(s.metric("graven_denied_records_total"), denied);
    // 1 forged + 5 malformed + 1 empty-token scheme + revoked + expired + after-window + 7 reads
    // + 1 create + 2 patterns + 2 auditor + disabled + revoked identity = 24 refusals.
    assert_eq!(denied + s.metric("graven_denied_records_dropped_total"), 24);
}

#[test]
fn denied_records_are_rate_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let bad = format!("gvn_{}_{}", "0".repeat(16), "B".repeat(43));
    let started = Instant::now();
    for _ in 0..40 {
        assert_eq!(s.post_event(&bad, r#"{"action":"flood"}"#).status, 401);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let recorded = s.metric("graven_denied_records_total");
    let dropped = s.metric("graven_denied_records_dropped_total");
    assert_eq!(recorded + dropped, 40);
    // One source: a burst of 10, then 2 a second.
    assert!(recorded >= 10, "{recorded}");
    assert!(recorded as f64 <= 10.0 + 2.0 * elapsed + 1.0, "{recorded} recorded in {elapsed:.1} s");
    assert!(dropped > 0);
    // Besides the server's two records of its bootstrap admin.
    assert_eq!(s.size(), 2 + recorded, "only the recorded denials are in the log");
}

#[test]
fn the_read_path_is_private_unless_configured_public() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    assert_eq!(s.post_event(&s.token, r#"{"action":"x"}"#).status, 201);
    for p in
        ["/checkpoint", "/tile/entries/000.p/3", "/v1/log", "/v1/events/0", "/v1/events", "/v1/identities"]
    {
        assert_eq!(s.req("GET", p, None, None).status, 401, "{p}");
    }
    for p in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(s.req("GET", p, None, None).status, 200, "{p}");
    }
    // The server's two records of its bootstrap admin, and the event.
    assert_eq!(s.size(), 3, "anonymous probes without a credential are not recorded");
    drop(s);
    let s = start(&tmp.path().join("data"), &["--public-read-path", "true"]);
    for p in ["/checkpoint", "/tile/entries/000.p/3", "/v1/log"] {
        assert_eq!(s.req("GET", p, None, None).status, 200, "{p}");
    }
    assert_eq!(s.req("GET", "/v1/events/0", None, None).status, 401, "events stay private");
    let vkey = s.admin("GET", "/v1/log", None).json()["verifier_key"].as_str().unwrap().to_owned();
    let trust = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["verify", &s.url("/"), "--vkey", &vkey, "--json"])
        .env("GRAVEN_TRUST_DIR", trust.path())
        .env_remove("GRAVEN_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// An old data directory's token (from before identities) keeps working, as the admin.
#[test]
fn a_pre_identity_token_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let old = "gvn_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF";
    std::fs::write(data.join("admin.token"), format!("{old}\n")).unwrap();
    let s = start(&data, &[]);
    assert_eq!(s.token, old);
    // Registered as a key of admin, recorded first (attributed to the server).
    let k = s.event(1);
    assert_eq!((&k["action"], &k["details"]["migrated"]), (&json!("graven.key.create"), &json!(true)));
    let r = s.post_event(old, r#"{"action":"x"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(s.event(r.json()["index"].as_u64().unwrap())["actor"]["id"], "admin");
    assert_eq!(s.admin("GET", "/v1/identities", None).status, 200);
}

/// Identity and key changes are durable once acknowledged: a kill -9 right after the 201
/// loses none of them.
#[test]
fn identity_changes_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut made: Vec<(String, String)> = Vec::new();
    let mut revoked: Vec<String> = Vec::new();
    for cycle in 0..5 {
        let s = start(&data, &[]);
        for (id, key) in &made {
            let r = s.post_event(key, r#"{"action":"still.here"}"#);
            assert_eq!(r.status, 201, "cycle {cycle}: {id}'s key stopped working: {}", r.body);
        }
        for key in &revoked {
            assert_eq!(s.post_event(key, r#"{"action":"revoked"}"#).status, 401, "cycle {cycle}");
        }
        let id = format!("svc:worker-{cycle}");
        let key = s.identity(&id, "writer", &[]);
        let spare = s.new_key(&id, json!({}));
        let r = s.admin("POST", &format!("/v1/identities/{id}/keys/{}/revoke", key_id(&spare)), None);
        assert_eq!(r.status, 200, "{}", r.body);
        // kill -9 at once after the last acknowledgement.
        let mut s = s;
        s.child.kill().unwrap();
        s.child.wait().unwrap();
        made.push((id, key));
        revoked.push(spare);
    }
    let s = start(&data, &[]);
    let list = s.admin("GET", "/v1/identities", None).json();
    assert_eq!(list["identities"].as_array().unwrap().len(), 1 + made.len());
    // Every change is in the log too: create, key create ×2, key revoke per cycle, after the
    // server's two records of its bootstrap admin.
    let changes = s
        .all_events()
        .iter()
        .filter(|e| e.contains("\"action\":\"graven.") && !e.contains("graven.access.denied"))
        .count();
    assert_eq!(changes, 2 + 4 * made.len());
    let file = std::fs::read_to_string(s.data.join("identities.json")).unwrap();
    for (_, key) in &made {
        assert!(!file.contains(&key[21..]), "the registry holds no secret");
    }
}

fn sample(path: &str, key_id: &str) -> String {
    path.replace("{index}", "0")
        .replace("{id}", "svc:walker")
        .replace("{key_id}", key_id)
        .replace("{path}", "entries/000.p/1")
}

/// Walks every documented route with every method, as the admin: nothing updates or deletes
/// an event, methods a route does not document are refused, and the only events added are the
/// server's own `graven.*` records of identity changes.
#[test]
fn no_route_alters_or_deletes_an_event() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let walker = s.identity("svc:walker", "writer", &[]);
    let body: String = (0..300).map(|i| format!("{{\"action\":\"walk.{i}\"}}\n")).collect();
    let mut r = agent()
        .post(&s.url("/v1/events"))
        .header("Authorization", &format!("Bearer {walker}"))
        .header("Content-Type", "application/x-ndjson")
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.body_mut().read_to_string().unwrap());
    let before = s.all_events();

    let api = s.req("GET", "/openapi.json", None, None).json();
    let paths = api["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 21, "the OpenAPI document lists every route but itself");
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
            let r = s.req(m, &url, Some(&s.token), Some("{}"));
            walked += 1;
            if documented {
                assert_ne!(r.status, 405, "{m} {url}");
                assert!(r.status < 500, "{m} {url}: {}", r.body);
            } else {
                assert_eq!(r.status, 405, "{m} {url}: {}", r.body);
            }
        }
    }
    assert_eq!(walked, 21 * 7 - 2, "every documented route, every method");
    for p in
        ["/v1/events/0/delete", "/v1/events/0/edit", "/v1/admin", "/v1/events/0/redact", "/tile/../log.key"]
    {
        for m in methods {
            let r = s.req(m, p, Some(&s.token), Some("{}"));
            assert!(r.status == 404 || r.status == 405, "{m} {p}: {}", r.status);
        }
    }

    let after = s.all_events();
    assert_eq!(&after[..before.len()], &before[..], "an event changed");
    for e in &after[before.len()..] {
        let v: Value = serde_json::from_str(e).unwrap();
        assert!(v["action"].as_str().unwrap().starts_with("graven."), "the walk appended {e}");
        assert_eq!(v["actor"]["id"], "admin");
    }
}

/// A live tail does not outlive its credential: once the auditor's key is revoked, the stream
/// delivers no further event and is closed.
#[test]
fn a_stream_ends_when_its_credential_is_revoked() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let auditor = s.identity("svc:watcher", "auditor", &[]);
    assert_eq!(s.post_event(&s.token, r#"{"action":"before.revoke"}"#).status, 201);
    let mut conn = std::net::TcpStream::connect(&s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        conn,
        "GET /v1/stream?from={} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {auditor}\r\n\r\n",
        s.size() - 1,
        s.addr
    )
    .unwrap();
    // Read until the first event has arrived.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("before.revoke") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "stream closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    // Revoke the key, then append an event the stream must not deliver.
    let r = s.admin("POST", &format!("/v1/identities/svc:watcher/keys/{}/revoke", key_id(&auditor)), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.post_event(&s.token, r#"{"action":"after.revoke"}"#).status, 201);
    // The server closes the stream (end of the chunked body, then EOF) without sending it.
    let mut rest = Vec::new();
    let started = Instant::now();
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(e) => panic!("stream still open after {:?}: {e}", started.elapsed()),
        }
        if String::from_utf8_lossy(&rest).ends_with("0\r\n\r\n") {
            break;
        }
    }
    let rest = String::from_utf8_lossy(&rest).into_owned();
    assert!(!rest.contains("after.revoke"), "a revoked key still received: {rest}");
    // The event itself was appended.
    assert_eq!(s.event(s.size() - 1)["action"], "after.revoke");
}
