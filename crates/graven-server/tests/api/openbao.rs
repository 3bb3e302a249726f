//! OpenBao's `http` audit device posting to `POST /v1/sources/openbao` as a `source` identity.
//! The entries are what a real OpenBao 2.7.2 (`bao server -dev`) wrote to an audit device
//! while a root token set up AppRole and a token of role `ci` logged in and was refused a
//! secret (`tests/fixtures/openbao-2.7.2-audit.jsonl`, 23 entries: the device's test entry,
//! then a request and a response for each of 11 requests). The real server posting to the
//! real binary is `crates/graven/tests/openbao.rs`.

use graven_server::testing::Harness;
use serde_json::{Value, json};

const ENTRIES: &str = include_str!("../fixtures/openbao-2.7.2-audit.jsonl");

fn source(h: &Harness, id: &str, subjects: &[&str]) -> String {
    let body = json!({"id": id, "kind": "integration", "owner": "team-secrets", "role": "source",
                      "source": {"types": ["openbao"], "subjects": subjects}});
    h.check(h.post("/v1/identities").bearer(h.token()).json(body)).expect(201);
    h.new_key(id, json!({}))
}

fn post(h: &Harness, key: &str, query: &str, body: &str) -> graven_server::testing::Answer {
    // The device sends no Content-Type.
    h.check(h.post(format!("/v1/sources/openbao{query}")).bearer(key).body("", body.to_owned()))
}

fn lines() -> Vec<&'static str> {
    ENTRIES.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn openbao_audit_entries_keep_the_token_and_role_as_an_attested_actor() {
    let h = Harness::start();
    let key = source(&h, "src:bao-prod", &["openbao:*"]);
    let size = h.size();

    // The test entry the device sends when it is enabled: answered 200, nothing logged, so
    // OpenBao starts.
    let a = post(&h, &key, "", lines()[0]).expect(200).json();
    assert_eq!(a, json!({"logged": 0, "skipped": 1, "duplicates": 0}));
    assert_eq!(h.size(), size);

    // Every entry, one per line: the responses are logged (the default), in one commit.
    let a = post(&h, &key, "", ENTRIES).expect(200).json();
    assert_eq!(a, json!({"logged": 11, "first_index": size, "skipped": 12, "duplicates": 0}));
    let events: Vec<Value> = (size..h.size()).map(|i| h.event(i)).collect();
    assert!(events.iter().all(|e| e["actor"]["auth"] == "attested"));
    assert!(events.iter().all(|e| e["actor"]["attested_by"]["id"] == "src:bao-prod"));
    assert!(events.iter().all(|e| e["actor"]["platform"] == "openbao"));

    // The AppRole login: the token it issued, of role ci, with its entity.
    let login = events.iter().find(|e| e["resource"]["id"] == "auth/approle/login").unwrap();
    assert_eq!(login["action"], "openbao.update");
    assert_eq!(login["outcome"], "success");
    assert_eq!(login["resource"]["type"], "openbao:approle");
    let actor = &login["actor"];
    assert_eq!(actor["id"], "openbao:approle:ci");
    assert_eq!(actor["kind"], "openbao_entity");
    assert_eq!(actor["role"], "ci");
    assert_eq!(actor["entity_id"], "5379333f-c567-0633-13c7-2635923c047f");
    assert_eq!(actor["policies"], json!(["default"]));
    assert_eq!(actor["credential"], "attested:src:bao-prod");
    assert_eq!(login["request_id"], "bd33b97d-de67-418c-0a07-65884e66d1ec");
    assert_eq!(login["source"]["ip"], "127.0.0.1");
    assert_eq!(login["occurred_at"], "2026-12-07T17:37:16.146927814Z");
    // HMAC'd fields stay as the device sent them, in the kept entry.
    let bao = &login["details"]["openbao"];
    assert_eq!(bao["type"], "response");
    assert_eq!(bao["mount_type"], "approle");
    let kept = &bao["record"];
    assert!(kept["request"]["data"]["secret_id"].as_str().unwrap().starts_with("hmac-sha256:"));
    assert_eq!(bao["record_sha256"].as_str().unwrap().len(), 64);

    // The refused read by that token: denied.
    let refused: Vec<&Value> = events.iter().filter(|e| e["outcome"] == "denied").collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["actor"]["id"], "openbao:approle:ci");
    assert_eq!(refused[0]["details"]["openbao"]["error"], "permission denied");
    // The root token's requests.
    assert!(
        events
            .iter()
            .any(|e| e["actor"]["id"] == "openbao:root" && e["resource"]["id"] == "auth/token/create")
    );

    // Search finds the role's token as an actor, once the index has caught up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let found = loop {
        let found =
            h.check(h.get("/v1/events?actor=openbao%3Aapprole%3Aci").bearer(h.token())).expect(200).json();
        if found["indexed_size"].as_u64() >= Some(size + 11) || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(found["events"].as_array().unwrap().len(), 2, "{found}");

    // The device retries (its answer was lost): nothing is logged twice; the request entries
    // when asked for are new.
    let a = post(&h, &key, "", ENTRIES).expect(200).json();
    assert_eq!(a, json!({"logged": 0, "skipped": 12, "duplicates": 11}));
    let a = post(&h, &key, "?types=request,response", ENTRIES).expect(200).json();
    assert_eq!(a, json!({"logged": 11, "first_index": size + 11, "skipped": 1, "duplicates": 11}));
    let request = h.event(size + 11);
    assert_eq!(request["details"]["openbao"]["type"], "request");
    assert!(request.get("outcome").is_none(), "no outcome before OpenBao acts");
    assert_eq!(h.verify().tree_size, h.size());
}

#[test]
fn openbao_entries_outside_the_grant_or_malformed_are_refused_whole() {
    let h = Harness::start();
    let key = source(&h, "src:bao-narrow", &["openbao:approle:*"]);
    let size = h.size();
    // The root token's entries are outside the grant: the whole request is refused and the
    // refusal recorded as the source's.
    let p = post(&h, &key, "", ENTRIES).expect(403).json();
    assert!(p["detail"].as_str().unwrap().contains("\"openbao:root\" does not match"), "{p}");
    assert_eq!(h.size(), size + 1);
    assert_eq!(h.event(size)["details"]["reason"], "source-not-allowed");
    // A Kubernetes source may not post here.
    let body = json!({"id": "src:k8s", "kind": "integration", "owner": "t", "role": "source",
                      "source": {"types": ["kubernetes"], "subjects": ["*"]}});
    h.check(h.post("/v1/identities").bearer(h.token()).json(body)).expect(201);
    let k8s = h.new_key("src:k8s", json!({}));
    let p = post(&h, &k8s, "", lines()[20]).expect(403).json();
    assert!(p["detail"].as_str().unwrap().contains("may not report openbao events"), "{p}");

    let before = h.size();
    let good = lines()[20];
    for (body, needle) in [
        (String::new(), "the body is empty"),
        ("[1]".to_owned(), "line 1 is not an OpenBao audit entry"),
        (format!("{good}\n{{\"type\": \"response\"}}"), "line 2.request is missing"),
        (format!("{good}\n{{\"type\": \"audit\", \"request\": {{}}}}"), "line 2.type \"audit\""),
        (
            format!(r#"{{"type": "response", "request": {{"id": "{}"}}}}"#, "x".repeat(257)),
            "line 1.request.id is longer than 256 bytes",
        ),
    ] {
        let p = post(&h, &key, "", &body).expect(400).json();
        assert!(p["detail"].as_str().unwrap().contains(needle), "{needle}: {p}");
        assert!(p["detail"].as_str().unwrap().contains("nothing was appended"), "{p}");
    }
    post(&h, &key, "?types=everything", good).expect(400);
    post(&h, &key, "?type=response", good).expect(400);
    assert_eq!(h.size(), before, "nothing appended by refused input");
    assert_eq!(post(&h, &key, "", good).expect(200).json()["logged"], 1);
}

#[test]
fn a_retry_after_a_restart_or_a_crash_is_not_logged_twice() {
    let mut h = Harness::start();
    let key = source(&h, "src:bao-prod", &["openbao:*"]);
    let size = h.size();
    assert_eq!(post(&h, &key, "", ENTRIES).expect(200).json()["logged"], 11);
    // A clean restart: the ids are read back from the log before the first claim.
    h.restart();
    let a = post(&h, &key, "", ENTRIES).expect(200).json();
    assert_eq!(a, json!({"logged": 0, "skipped": 12, "duplicates": 11}));
    // Killed: the same.
    assert_eq!(post(&h, &key, "?types=request", ENTRIES).expect(200).json()["logged"], 11);
    h.crash_restart();
    let a = post(&h, &key, "?types=request,response", ENTRIES).expect(200).json();
    assert_eq!(a, json!({"logged": 0, "skipped": 1, "duplicates": 22}));
    assert_eq!(h.size(), size + 22);
    // Another source's identical entries are its own: not duplicates of these.
    let other = source(&h, "src:bao-dr", &["openbao:*"]);
    assert_eq!(post(&h, &other, "", ENTRIES).expect(200).json()["logged"], 11);
}
