//! The identity and key commands of the CLI against the real binary's server, and identity
//! changes across kill -9. The identity API's own behaviour (attribution, the access matrix,
//! denied records, the read path, the route walk, the stream) is tested in process:
//! `crates/graven-server/tests/api/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use common::{graven_as as graven, key_id, start};
use serde_json::{Value, json};

/// `graven identity` and `graven key` against a live server: what each prints, its exit
/// codes, and that the keys it prints, revokes and rotates behave so.
#[test]
fn identity_and_key_commands_print_what_the_server_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let token_file = tmp.path().join("admin.key");
    std::fs::write(&token_file, &s.token).unwrap();
    let tf = token_file.to_str().unwrap();
    let server = s.url("");

    // Create an identity (the admin key from a file), then a key, printed alone on stdout.
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
    assert_eq!(created["allowed_actions"], json!(["payment.*"]));
    let out = graven(&["key", "create", "svc:payments-worker", "--server", &server], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "only the key: {stdout:?}");
    let key = stdout.trim().to_owned();
    assert!(key.starts_with("gvn_") && key.len() == 64, "{key}");
    let r = s.post_event(&key, r#"{"action":"payment.refund"}"#);
    assert_eq!(r.status, 201, "the printed key works: {}", r.body);
    assert_eq!(s.event(r.json()["index"].as_u64().unwrap())["actor"]["id"], "svc:payments-worker");

    // show, list, key list.
    let out = graven(&["identity", "show", "svc:payments-worker", "--server", &server], &s.token);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["keys"][0]["key_id"], key_id(&key));
    assert_eq!(shown["keys"][0]["state"], "active");
    assert!(shown["last_seen_at"].is_string(), "last seen is tracked: {shown}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&key[21..]));
    let out = graven(&["identity", "list", "--server", &server], &s.token);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.starts_with("ID ") && table.contains("\nsvc:payments-worker "), "{table}");
    let out = graven(&["identity", "list", "--json", "--server", &server], &s.token);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> =
        list["identities"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["admin", "svc:payments-worker"]);
    let out = graven(&["key", "list", "svc:payments-worker", "--server", &server], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(key_id(&key)));
    // A refusal by the server exits 2 and names the status; no token, no request.
    let out = graven(
        &["identity", "create", "x", "--kind", "human", "--owner", "o", "--server", &server],
        &s.token,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("400"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = graven(&["key", "list", "svc:payments-worker", "--server", &server], "");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("GRAVEN_TOKEN"));

    // key revoke: the key stops working.
    let k2 = s.new_key("svc:payments-worker", json!({}));
    assert_eq!(s.post_event(&k2, r#"{"action":"payment.k2"}"#).status, 201);
    let out = graven(&["key", "revoke", "svc:payments-worker", key_id(&k2), "--server", &server], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.post_event(&k2, r#"{"action":"payment.revoked"}"#).status, 401);

    // key rotate --overlap: prints the new key; the old one works inside the overlap, not after.
    let out =
        graven(&["key", "rotate", "svc:payments-worker", "--overlap", "1s", "--server", &server], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rotated = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(s.post_event(&key, r#"{"action":"payment.old-in-window"}"#).status, 201);
    assert_eq!(s.post_event(&rotated, r#"{"action":"payment.new"}"#).status, 201);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(s.post_event(&key, r#"{"action":"payment.after-window"}"#).status, 401);
    assert_eq!(s.post_event(&rotated, r#"{"action":"payment.new-after"}"#).status, 201);
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
