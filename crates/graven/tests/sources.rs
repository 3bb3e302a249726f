//! A platform source end to end with the real binary and CLI (docs/sources.md): an admin
//! registers a Kubernetes source with `graven identity create --role source`, the audit webhook
//! posts an `audit.k8s.io/v1` `EventList` to `/v1/sources/kubernetes` with its key, and an
//! auditor finds the service account's actions with `graven search --actor`, attested by the
//! source, and the service account in `graven inventory`; the log verifies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{agent, graven_as, start};
use serde_json::{Value, json};

#[test]
fn a_kubernetes_source_registered_with_the_cli_feeds_search_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("d"), &["--origin", "sources.example/log"]);
    let server = format!("http://{}", s.addr);
    let out = graven_as(
        &[
            "identity",
            "create",
            "src:cluster-prod",
            "--kind",
            "integration",
            "--owner",
            "team-platform",
            "--role",
            "source",
            "--source-type",
            "kubernetes",
            "--subject",
            "system:serviceaccount:*",
            "--server",
            &server,
        ],
        &s.token,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["role"], "source");
    assert_eq!(created["source"], json!({"types": ["kubernetes"], "subjects": ["system:serviceaccount:*"]}));
    let out = graven_as(&["key", "create", "src:cluster-prod", "--server", &server], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    let sa = "system:serviceaccount:ci:deployer";
    let list = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": [
        {"level": "Metadata", "auditID": "7e3b1c54-0d2f-4f0a-9a0e-2b8d7c6e5f41", "stage": "ResponseComplete",
         "requestURI": "/apis/apps/v1/namespaces/prod/deployments/payments", "verb": "patch",
         "user": {"username": sa, "uid": "0f6b", "groups": ["system:serviceaccounts", "system:authenticated"]},
         "sourceIPs": ["10.0.3.7"], "userAgent": "argocd-application-controller/v2.13",
         "objectRef": {"resource": "deployments", "namespace": "prod", "name": "payments", "apiGroup": "apps", "apiVersion": "v1"},
         "responseStatus": {"metadata": {}, "code": 200},
         "requestReceivedTimestamp": "2026-12-07T10:00:00.123456Z", "stageTimestamp": "2026-12-07T10:00:00.150000Z"}
    ]});
    let mut r = agent()
        .post(format!("{server}/v1/sources/kubernetes"))
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(list.to_string().as_bytes())
        .unwrap();
    let body = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["logged"], 1);

    // An auditor's search finds the service account's action, attested by the source.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let found = loop {
        let out = graven_as(&["search", "--actor", sa, "--json", "--server", &server], &s.token);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !text.trim().is_empty() || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let e: Value = serde_json::from_str(found.lines().next().expect("the service account's event")).unwrap();
    assert_eq!(e["event"]["action"], "k8s.patch");
    assert_eq!(e["event"]["actor"]["auth"], "attested");
    assert_eq!(e["event"]["actor"]["attested_by"]["id"], "src:cluster-prod");
    // The table says who attested it too: the actor is the subject, not the source.
    let out = graven_as(&["search", "--actor", sa, "--server", &server], &s.token);
    assert!(String::from_utf8_lossy(&out.stdout).contains(sa));

    // The inventory has the subject, reported by the source, and the source's key as used.
    let out = graven_as(&["inventory", "--reported", "true", "--json", "--server", &server], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0]["id"].as_str(), rows[0]["registered"].as_bool()), (Some(sa), Some(false)));
    assert_eq!(rows[0]["reported_by"], json!(["src:cluster-prod"]));
    assert_eq!(rows[0]["events_24h"], 1);
    let out = graven_as(&["inventory", "--csv", "--registered", "true", "--server", &server], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(csv.starts_with("id,kind,registered,"), "{csv}");
    let src_row = csv.lines().find(|l| l.starts_with("\"src:cluster-prod\"")).unwrap();
    assert!(src_row.contains(",\"integration\",true,false,"), "{src_row}");
    let out = graven_as(&["inventory", "--server", &server], &s.token);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.contains("reported by src:cluster-prod") && table.contains("SEEN_AS"), "{table}");

    let trust = tmp.path().join("trust");
    let out =
        graven_as(&["verify", &server, "--vkey", &s.vkey, "--trust-dir", trust.to_str().unwrap()], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
