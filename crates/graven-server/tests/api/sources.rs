//! Platform sources (docs/sources.md), Kubernetes first: the API server's audit webhook posts
//! `audit.k8s.io/v1` `EventList`s to `POST /v1/sources/kubernetes` as a `source` identity. The
//! records here follow the documented `audit.k8s.io/v1` `Event` shape (a service account
//! creating a deployment, a user impersonating another, a refused secret read, each stage of
//! one request).

use graven_server::testing::Harness;
use serde_json::{Value, json};

const SA: &str = "system:serviceaccount:ci:deployer";

/// A source identity allowed to report Kubernetes subjects matching `subjects`; its key.
fn source(h: &Harness, id: &str, subjects: &[&str]) -> String {
    let body = json!({"id": id, "kind": "integration", "owner": "team-platform", "role": "source",
                      "source": {"types": ["kubernetes"], "subjects": subjects}});
    h.check(h.post("/v1/identities").bearer(h.token()).json(body)).expect(201);
    h.new_key(id, json!({}))
}

fn record(audit_id: &str, stage: &str, user: Value, verb: &str, object: Value, code: Option<u64>) -> Value {
    let mut r = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": audit_id, "stage": stage,
        "requestURI": "/apis/apps/v1/namespaces/prod/deployments",
        "verb": verb, "user": user,
        "sourceIPs": ["10.0.3.7"], "userAgent": "kubectl/v1.31.0 (linux/amd64)",
        "objectRef": object,
        "requestReceivedTimestamp": "2026-12-07T10:00:00.123456Z",
        "stageTimestamp": "2026-12-07T10:00:00.234567Z",
        "annotations": {"authorization.k8s.io/decision": "allow"}
    });
    if let Some(c) = code {
        r["responseStatus"] = json!({"metadata": {}, "code": c});
    }
    r
}

fn sa_user() -> Value {
    json!({"username": SA, "uid": "6f1c0b0e-1111-4a2b-9c3d-000000000001",
           "groups": ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"]})
}

fn deployment() -> Value {
    json!({"resource": "deployments", "namespace": "prod", "name": "payments", "apiGroup": "apps", "apiVersion": "v1"})
}

fn list(items: Vec<Value>) -> String {
    json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}).to_string()
}

fn post(h: &Harness, key: &str, query: &str, body: String) -> graven_server::testing::Answer {
    h.check(h.post(format!("/v1/sources/kubernetes{query}")).bearer(key).json(body))
}

#[test]
fn kubernetes_audit_events_keep_their_real_actor_marked_attested() {
    let h = Harness::start();
    let key = source(&h, "src:cluster-prod", &["system:serviceaccount:*", "alice@example.com"]);
    let items = vec![
        record("a1", "RequestReceived", sa_user(), "create", deployment(), None),
        record("a1", "ResponseComplete", sa_user(), "create", deployment(), Some(201)),
        // A user impersonating the service account; the API server refused it.
        {
            let mut r = record(
                "a2",
                "ResponseComplete",
                json!({"username": "alice@example.com", "groups": ["devs"]}),
                "get",
                json!({"resource": "secrets", "namespace": "prod", "name": "db-password", "apiVersion": "v1"}),
                Some(403),
            );
            r["impersonatedUser"] = json!({"username": SA, "groups": ["system:serviceaccounts"]});
            r
        },
    ];
    let size = h.size();
    let a = post(&h, &key, "", list(items.clone())).expect(200).json();
    // Only ResponseComplete by default.
    assert_eq!(a, json!({"logged": 2, "first_index": size, "skipped": 1, "duplicates": 0}));

    let e = h.event(size);
    assert_eq!(e["action"], "k8s.create");
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["resource"], json!({"type": "k8s:apps/deployments", "id": "prod/payments"}));
    assert_eq!(e["request_id"], "a1");
    assert_eq!(e["occurred_at"], "2026-12-07T10:00:00.123456Z");
    assert_eq!(e["source"]["ip"], "10.0.3.7");
    let actor = &e["actor"];
    assert_eq!(actor["id"], SA);
    assert_eq!(actor["kind"], "kubernetes_service_account");
    assert_eq!(actor["auth"], "attested", "never taken for a directly authenticated actor");
    assert_eq!(actor["credential"], "attested:src:cluster-prod");
    assert_eq!(actor["attested_by"]["id"], "src:cluster-prod");
    assert_eq!(actor["attested_by"]["auth"], "api_key");
    assert!(actor["attested_by"]["credential"].as_str().unwrap().starts_with("key:"));
    assert_eq!(actor["groups"][1], "system:serviceaccounts:ci");
    // The record is kept, with its digest.
    let k8s = &e["details"]["kubernetes"];
    assert_eq!(k8s["record"]["auditID"], "a1");
    assert_eq!(k8s["record"]["stage"], "ResponseComplete");
    assert_eq!(k8s["record_sha256"].as_str().unwrap().len(), 64);

    let e = h.event(size + 1);
    assert_eq!((e["action"].as_str(), e["outcome"].as_str()), (Some("k8s.get"), Some("denied")));
    assert_eq!(e["actor"]["id"], "alice@example.com");
    assert_eq!(e["actor"]["kind"], "kubernetes_user");
    assert_eq!(e["actor"]["impersonating"]["id"], SA);
    assert_eq!(e["resource"], json!({"type": "k8s:core/secrets", "id": "prod/db-password"}));

    // Search finds the reported subject as an actor (once the index has caught up).
    let enc = SA.replace(':', "%3A");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let found = loop {
        let found = h.check(h.get(format!("/v1/events?actor={enc}")).bearer(h.token())).expect(200).json();
        if found["indexed_size"].as_u64() >= Some(size + 2) || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(found["events"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["events"][0]["event"]["action"], "k8s.create");

    // The API server retries the same batch (its answer was lost): nothing is logged twice.
    let a = post(&h, &key, "", list(items.clone())).expect(200).json();
    assert_eq!(a, json!({"logged": 0, "skipped": 1, "duplicates": 2}));
    // All stages when asked: the RequestReceived record is new, the others are not.
    let a = post(&h, &key, "?stages=RequestReceived,ResponseComplete", list(items)).expect(200).json();
    assert_eq!((a["logged"].as_u64(), a["duplicates"].as_u64()), (Some(1), Some(2)));
    assert_eq!(h.event(size + 2)["details"]["kubernetes"]["stage"], "RequestReceived");
    assert!(h.event(size + 2).get("outcome").is_none(), "no response yet at that stage");
    let v = h.verify();
    assert_eq!(v.tree_size, h.size());
}

#[test]
fn a_source_reports_only_what_its_grant_allows_and_only_on_its_endpoint() {
    let h = Harness::start();
    let key = source(&h, "src:narrow", &["system:serviceaccount:ci:*"]);
    let size = h.size();
    // A subject outside its patterns: the whole batch is refused, nothing appended.
    let outsider = record(
        "b1",
        "ResponseComplete",
        json!({"username": "system:admin"}),
        "delete",
        deployment(),
        Some(200),
    );
    let ok = record("b2", "ResponseComplete", sa_user(), "create", deployment(), Some(201));
    let p = post(&h, &key, "", list(vec![ok.clone(), outsider])).expect(403).json();
    assert!(p["detail"].as_str().unwrap().contains("\"system:admin\" does not match"), "{p}");
    // Only the refusal is recorded, as the source's.
    assert_eq!(h.size(), size + 1);
    let d = h.event(size);
    assert_eq!((d["outcome"].as_str(), d["actor"]["id"].as_str()), (Some("denied"), Some("src:narrow")));
    assert_eq!(d["details"]["reason"], "source-not-allowed");
    // A source cannot append as itself, read, or manage anything.
    h.check(h.post("/v1/events").bearer(&key).json(r#"{"action":"x.y"}"#)).expect(403);
    h.check(h.get("/v1/events").bearer(&key)).expect(403);
    h.check(h.get("/v1/identities").bearer(&key)).expect(403);
    // Writers and admins cannot report for others.
    let writer = h.identity("svc:w", "writer", &[]);
    post(&h, &writer, "", list(vec![ok.clone()])).expect(403);
    post(&h, h.token(), "", list(vec![ok.clone()])).expect(403);
    // Bad input: a clear 400, nothing appended.
    for (body, needle) in [
        ("[]".to_owned(), "not an audit.k8s.io/v1 EventList"),
        (
            json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1beta1", "items": []}).to_string(),
            "expected an EventList of audit.k8s.io/v1",
        ),
        (list(vec![json!({"stage": "ResponseComplete"})]), "items[0].auditID is missing"),
        (list(vec![json!({"auditID": "x", "stage": "Done"})]), "items[0].stage \"Done\""),
        (
            list(vec![json!({"auditID": "x", "stage": "ResponseComplete", "verb": "get"})]),
            "items[0].user is missing",
        ),
    ] {
        let p = post(&h, &key, "", body).expect(400).json();
        assert!(p["detail"].as_str().unwrap().contains(needle), "{needle}: {p}");
    }
    post(&h, &key, "?stages=Done", list(vec![ok.clone()])).expect(400);
    post(&h, &key, "?stage=Panic", list(vec![ok.clone()])).expect(400);
    let appended: Vec<Value> = (size..h.size()).map(|i| h.event(i)).collect();
    assert!(
        appended.iter().all(|e| e["action"].as_str().unwrap().starts_with("graven.")),
        "only the server's own records (refusals, the writer's creation): {appended:?}"
    );
    // And the allowed subject goes in.
    assert_eq!(post(&h, &key, "", list(vec![ok])).expect(200).json()["logged"], 1);
}

#[test]
fn a_record_too_large_to_keep_whole_keeps_its_digest_and_the_mapped_fields() {
    let h = Harness::start();
    let key = source(&h, "src:big", &["*"]);
    let mut r = record("c1", "ResponseComplete", sa_user(), "create", deployment(), Some(201));
    // A RequestResponse-level record whose object is over the entry limit.
    r["level"] = json!("RequestResponse");
    r["requestObject"] = json!({"data": "x".repeat(2 << 20)});
    let size = h.size();
    post(&h, &key, "", list(vec![r])).expect(200);
    let e = h.event(size);
    let k8s = &e["details"]["kubernetes"];
    assert!(k8s.get("record").is_none(), "not kept whole");
    assert_eq!(k8s["record_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(k8s["verb"], "create");
    assert_eq!(e["actor"]["id"], SA);
}
