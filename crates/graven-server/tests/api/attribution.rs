//! Who an event is attributed to: the verified credential, never the body; and every identity
//! and key change is an event too, with no secret in it.

use graven_server::testing::{Harness, key_id};
use serde_json::{Value, json};

use crate::util::post_event;

#[test]
fn an_event_is_attributed_to_its_credential_and_changes_are_audited() {
    let h = Harness::start();
    let t = h.token().to_owned();
    let new = json!({"id": "svc:payments-worker", "kind": "service_account", "owner": "team-payments",
                     "allowed_actions": ["payment.*"], "labels": {"env": "prod"}});
    let created = h.check(h.post("/v1/identities").bearer(&t).json(new)).expect(201).json();
    assert_eq!(created["role"], "writer", "writer unless said otherwise");
    assert_eq!(created["labels"]["env"], "prod");
    let key = h
        .check(h.post("/v1/identities/svc:payments-worker/keys").bearer(&t).json("{}"))
        .expect(201)
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(key.starts_with("gvn_") && key.len() == 64, "{key}");

    // An event sent with the key, claiming to be someone else.
    let body = r#"{"action":"payment.refund","actor":{"id":"admin","kind":"human"},"resource":{"type":"order","id":"o-1"}}"#;
    let receipt = h.check(post_event(&h, &key, body)).expect(201).json();
    let index = receipt["index"].as_u64().unwrap();
    let stored = h.check(h.get(format!("/v1/events/{index}")).bearer(&t)).expect(200).json();
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
    let create = h.event(2);
    assert_eq!(create["action"], "graven.identity.create");
    assert_eq!(create["resource"], json!({"type": "graven.identity", "id": "svc:payments-worker"}));
    assert_eq!(create["actor"]["id"], "admin");
    assert_eq!(create["actor"]["credential"], format!("key:{}", key_id(&t)));
    assert_eq!(create["details"]["allowed_actions"], json!(["payment.*"]));
    let kc = h.event(3);
    assert_eq!(kc["action"], "graven.key.create");
    assert_eq!(kc["details"]["key_id"], key_id(&key));
    let all = h.all_events().join("\n");
    assert!(!all.contains(&key[21..]) && !all.contains(&t[21..]), "a secret reached the log");

    // Show and list: key ids and states, last seen, never a secret.
    let shown = h.check(h.get("/v1/identities/svc:payments-worker").bearer(&t)).expect(200);
    let v = shown.json();
    assert_eq!(v["keys"][0]["key_id"], key_id(&key));
    assert_eq!(v["keys"][0]["state"], "active");
    assert!(v["last_seen_at"].is_string(), "last seen is tracked: {v}");
    assert!(!shown.text().contains(&key[21..]));
    let list = h.check(h.get("/v1/identities").bearer(&t)).expect(200).json();
    let ids: Vec<&str> =
        list["identities"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["admin", "svc:payments-worker"]);
    // A kind that does not exist: 400, nothing changed.
    let bad = json!({"id": "x", "kind": "human", "owner": "o"});
    let size = h.size();
    h.check(h.post("/v1/identities").bearer(&t).json(bad)).expect(400).detail();
    assert_eq!(h.size(), size);
    assert_eq!(h.check(h.get("/v1/identities/x").bearer(&t)).status(), 404);
}

/// An old data directory's token (from before identities) keeps working, as the admin.
#[test]
fn a_pre_identity_token_keeps_working() {
    let old = "gvn_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF";
    let h = Harness::builder()
        .before_start(move |data| std::fs::write(data.join("admin.token"), format!("{old}\n")).unwrap())
        .start();
    assert_eq!(h.token(), old);
    // Registered as a key of admin, recorded first (attributed to the server).
    let k = h.event(1);
    assert_eq!((&k["action"], &k["details"]["migrated"]), (&json!("graven.key.create"), &json!(true)));
    assert_eq!(k["actor"]["id"], "graven:server");
    let r = h.check(post_event(&h, old, r#"{"action":"x"}"#)).expect(201).json();
    assert_eq!(h.event(r["index"].as_u64().unwrap())["actor"]["id"], "admin");
    h.check(h.get("/v1/identities").bearer(old)).expect(200);
    let _: Value = h.check(h.get("/v1/log").bearer(old)).expect(200).json();
}
