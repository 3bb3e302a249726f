//! `GET /v1/inventory` (docs/inventory.md): registered identities, subjects reported by a
//! Kubernetes source and other actors, merged; the filters, paging, CSV and its escaping, who
//! may read it, parameter errors, and the same answer after a restart and after a rebuild of
//! the index.

use std::time::{Duration, Instant};

use graven_server::testing::{Harness, key_id};
use serde_json::{Value, json};

use crate::util::post_event;

const SA: &str = "system:serviceaccount:ci:deployer";
const HOSTILE: &str = "=cmd|' /C calc'!A0,\"x\"\nline";

fn source(h: &Harness) -> String {
    let body = json!({"id": "src:cluster-prod", "kind": "integration", "owner": "team-platform", "role": "source",
                      "source": {"types": ["kubernetes"], "subjects": ["*"]}});
    h.check(h.post("/v1/identities").bearer(h.token()).json(body)).expect(201);
    h.new_key("src:cluster-prod", json!({}))
}

fn k8s(h: &Harness, key: &str, audit_id: &str, user: &str, code: u64) {
    let record = json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": audit_id, "stage": "ResponseComplete",
        "requestURI": "/apis/apps/v1/namespaces/prod/deployments",
        "verb": "create", "user": {"username": user, "groups": ["system:serviceaccounts"]},
        "sourceIPs": ["10.0.3.7"], "userAgent": "kubectl/v1.31.0",
        "objectRef": {"resource": "deployments", "namespace": "prod", "name": "payments", "apiGroup": "apps"},
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": "2026-12-07T10:00:00.123456Z",
        "stageTimestamp": "2026-12-07T10:00:00.234567Z"
    });
    let list =
        json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": [record]});
    h.check(h.post("/v1/sources/kubernetes").bearer(key).json(list.to_string())).expect(200);
}

/// The inventory once the index has caught up with the log.
fn caught_up(h: &Harness, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = h.check(h.get("/v1/inventory?limit=1000").bearer(token)).expect(200).json();
        assert_eq!(v["tree_size"], h.size());
        if v["indexed_size"] == h.size() {
            return v;
        }
        assert!(Instant::now() < deadline, "the inventory never caught up: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn by_id<'a>(page: &'a Value, id: &str) -> &'a Value {
    page["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {page}"))
}

fn ids(h: &Harness, token: &str, query: &str) -> Vec<String> {
    let v = h.check(h.get(format!("/v1/inventory?{query}")).bearer(token)).expect(200).json();
    v["identities"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

/// The scene every test here starts from: a writer that acted (once refused), an idle identity,
/// an auditor, a Kubernetes source that reported a service account twice (once refused) and a
/// subject with a hostile name.
fn scene() -> (Harness, String, String) {
    let h = Harness::start();
    let writer = h.identity("svc:deployer", "writer", &["deploy.*"]);
    let auditor = h.identity("audit:soc", "auditor", &[]);
    h.identity("svc:idle", "writer", &[]);
    h.check(post_event(&h, &writer, r#"{"action":"deploy.create"}"#)).expect(201);
    h.refused(403, post_event(&h, &writer, r#"{"action":"secret.read"}"#));
    let src = source(&h);
    k8s(&h, &src, "a1", SA, 201);
    k8s(&h, &src, "a2", SA, 403);
    k8s(&h, &src, "a3", HOSTILE, 201);
    (h, writer, auditor)
}

#[test]
fn registered_reported_and_other_actors_with_their_activity() {
    let (h, writer, auditor) = scene();
    let page = caught_up(&h, &auditor);
    assert_eq!(page["next_cursor"], Value::Null);
    let listed: Vec<&str> =
        page["identities"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(listed, sorted, "in id order");
    for id in
        ["admin", "audit:soc", "graven:server", "src:cluster-prod", "svc:deployer", "svc:idle", SA, HOSTILE]
    {
        assert!(listed.contains(&id), "{id} missing from {listed:?}");
    }

    // A registered identity that acted: its key's last use is its last event.
    let d = by_id(&page, "svc:deployer");
    assert_eq!((d["registered"].clone(), d["reported"].clone()), (json!(true), json!(false)));
    assert_eq!(
        (d["owner"].clone(), d["status"].clone(), d["kind"].clone()),
        (json!("team-payments"), json!("active"), json!("service_account"))
    );
    assert_eq!(
        (d["events"].clone(), d["denied"].clone(), d["events_24h"].clone(), d["events_30d"].clone()),
        (json!(2), json!(1), json!(2), json!(2))
    );
    let last = d["last_seen"]["index"].as_u64().unwrap();
    assert_eq!(h.event(last)["outcome"], "denied");
    assert_eq!(h.event(d["first_seen"]["index"].as_u64().unwrap())["action"], "deploy.create");
    assert_eq!(d["keys"][0]["key_id"], key_id(&writer));
    assert_eq!(d["keys"][0]["state"], "active");
    assert_eq!(d["keys"][0]["age_days"], 0);
    assert_eq!(d["keys"][0]["last_used"]["index"], last);
    assert_eq!(d["keys"][0]["events"], 2);

    // A registered identity that never acted.
    let idle = by_id(&page, "svc:idle");
    assert_eq!(
        (idle["events"].clone(), idle["first_seen"].clone(), idle["last_seen"].clone()),
        (json!(0), Value::Null, Value::Null)
    );
    assert_eq!(idle["keys"][0]["last_used"], Value::Null);

    // A reported subject: not registered, reported by the source, seen at the source's posts.
    let sa = by_id(&page, SA);
    assert_eq!((sa["registered"].clone(), sa["reported"].clone()), (json!(false), json!(true)));
    assert_eq!(sa["reported_by"], json!(["src:cluster-prod"]));
    assert_eq!(sa["kind"], "kubernetes_service_account");
    assert_eq!(
        (sa["events"].clone(), sa["reported_events"].clone(), sa["denied"].clone()),
        (json!(2), json!(2), json!(1))
    );
    assert_eq!(
        (sa["owner"].clone(), sa["status"].clone(), sa["keys"].clone()),
        (Value::Null, Value::Null, json!([]))
    );
    let sa_last = sa["last_seen"]["index"].as_u64().unwrap();
    let e = h.event(sa_last);
    assert_eq!((e["actor"]["id"].clone(), e["request_id"].clone()), (json!(SA), json!("a2")));
    assert_eq!(sa["last_seen"]["at"], e["logged_at"]);

    // Filters.
    // Never used: no entry of its own and no entry made with its keys (the source's key made
    // the Kubernetes entries, so the source was used).
    assert_eq!(ids(&h, &auditor, "never_used=true"), ["audit:soc", "svc:idle"]);
    let src = by_id(&page, "src:cluster-prod");
    assert_eq!((src["events"].clone(), src["keys"][0]["events"].clone()), (json!(0), json!(3)));
    assert_eq!(src["keys"][0]["last_used"]["index"], sa_last + 1);
    assert!(!ids(&h, &auditor, "never_used=false").contains(&"svc:idle".to_owned()));
    let mut reported = vec![SA.to_owned(), HOSTILE.to_owned()];
    reported.sort_unstable();
    assert_eq!(ids(&h, &auditor, "reported=true"), reported);
    assert!(ids(&h, &auditor, "reported=false").contains(&"svc:deployer".to_owned()));
    assert_eq!(ids(&h, &auditor, "kind=kubernetes_service_account"), [SA]);
    assert_eq!(ids(&h, &auditor, "registered=false&reported=false"), ["graven:server"]);
    assert!(ids(&h, &auditor, "dormant_days=1").is_empty(), "everything here is fresh");
    assert!(ids(&h, &auditor, "dormant_days=0").contains(&"svc:idle".to_owned()));
    assert!(ids(&h, &auditor, "key_older_than_days=1").is_empty());
    let keyed = ids(&h, &auditor, "key_older_than_days=0");
    assert!(keyed.contains(&"svc:deployer".to_owned()) && !keyed.contains(&SA.to_owned()));
    assert!(ids(&h, &auditor, "status=disabled").is_empty());
    h.check(h.post("/v1/identities/svc:idle/disable").bearer(h.token()).json(json!({"reason": "idle"})))
        .expect(200);
    assert_eq!(ids(&h, &auditor, "status=disabled"), ["svc:idle"]);

    // Paging: pages of 2 walk the same list.
    let all = ids(&h, &auditor, "limit=1000");
    let (mut walked, mut cursor) = (Vec::new(), String::new());
    loop {
        let v = h.check(h.get(format!("/v1/inventory?limit=2{cursor}")).bearer(&auditor)).expect(200).json();
        let got = v["identities"].as_array().unwrap();
        assert!(got.len() <= 2);
        walked.extend(got.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(walked, all);

    // Auditor and admin may read it; a writer and a source may not.
    h.check(h.get("/v1/inventory").bearer(h.token())).expect(200);
    h.refused(403, h.get("/v1/inventory").bearer(&writer));
    h.refused(401, h.get("/v1/inventory"));
}

#[test]
fn csv_export_neutralises_hostile_strings() {
    let (h, _, auditor) = scene();
    let json = caught_up(&h, &auditor);
    let n = json["identities"].as_array().unwrap().len();
    for req in [
        h.get("/v1/inventory?format=csv").bearer(&auditor),
        h.get("/v1/inventory").bearer(&auditor).header("accept", "text/csv"),
    ] {
        let a = h.check(req).expect(200);
        assert_eq!(a.content_type(), "text/csv; charset=utf-8; header=present");
        let text = a.text();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), n + 2, "a header, one line per identity, and the final CRLF: {text}");
        assert_eq!(*lines.last().unwrap(), "");
        assert!(lines[0].starts_with("id,kind,registered,reported,reported_by,owner,status"));
        assert!(!text.replace("\r\n", "").contains('\n'), "no bare line break inside a record");
        // The hostile subject: quoted, its quotes doubled, its line break visible, and a
        // leading ' so that a spreadsheet reads text, not a formula.
        let row = lines.iter().find(|l| l.contains("cmd|")).unwrap();
        assert!(
            row.starts_with(
                r#""'=cmd|' /C calc'!A0,""x""\u{a}line","kubernetes_user",false,true,"src:cluster-prod","#
            ),
            "{row}"
        );
        let sa = lines.iter().find(|l| l.starts_with(&format!("\"{SA}\""))).unwrap();
        assert!(sa.contains(",2,2,2,1,2,"), "events, 24 h, 30 d, denied, reported: {sa}");
    }
    // The JSON answer keeps the exact value.
    assert!(json["identities"].as_array().unwrap().iter().any(|i| i["id"] == HOSTILE));
    // A CSV page that stops early says where the next starts.
    let a = h.check(h.get("/v1/inventory?format=csv&limit=1").bearer(&auditor)).expect(200);
    let next = a.header("graven-next-cursor").unwrap().to_owned();
    let b = h
        .check(h.get(format!("/v1/inventory?format=csv&limit=1&cursor={next}")).bearer(&auditor))
        .expect(200);
    assert_ne!(a.text(), b.text());
    assert_eq!(a.text().split("\r\n").next(), b.text().split("\r\n").next());
}

#[test]
fn every_parameter_is_checked() {
    let h = Harness::start();
    for (query, names) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("format=csv&limit=10001", "limit"),
        ("limit=x", "limit"),
        ("dormant_days=-1", "dormant_days"),
        ("dormant_days=36501", "dormant_days"),
        ("key_older_than_days=1.5", "key_older_than_days"),
        ("never_used=maybe", "never_used"),
        ("reported=1", "reported"),
        ("registered=yes", "registered"),
        ("status=gone", "status"),
        ("kind=", "kind"),
        ("format=xml", "format"),
        ("cursor=zz", "cursor"),
        ("cursor=i6", "cursor"),
        ("color=red", "color"),
        ("limit=1&limit=2", "limit"),
    ] {
        let p = h
            .check(h.get(format!("/v1/inventory?{query}")).bearer(h.token()))
            .expect(400)
            .problem("bad-parameter");
        assert!(p["detail"].as_str().unwrap().contains(names), "{query}: {p}");
    }
    h.check(
        h.get("/v1/inventory?never_used&format=json&limit=1000&dormant_days=0&key_older_than_days=36500")
            .bearer(h.token()),
    )
    .expect(200);
}

/// The inventory is derived data: the same after a clean restart, a crash, and a rebuild of the
/// index from the log.
#[test]
fn the_same_inventory_after_restarts_and_a_rebuild() {
    let (mut h, _, auditor) = scene();
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("now");
        v
    };
    let before = strip(caught_up(&h, &auditor));
    h.restart();
    assert_eq!(strip(caught_up(&h, &auditor)), before);
    h.crash_restart();
    assert_eq!(strip(caught_up(&h, &auditor)), before);
    h.restart_with(|_, dir| std::fs::remove_file(dir.join("index.redb")).unwrap());
    assert_eq!(strip(caught_up(&h, &auditor)), before);
}

/// The server's CSV escaping uses the verifier's list of characters that change how text is
/// shown (it does not depend on the verifier, so the list is a copy).
#[test]
fn the_csv_character_list_is_the_verifiers() {
    for c in (0..=0x10ffff).filter_map(char::from_u32) {
        assert_eq!(
            graven_server::http::inventory::is_dangerous(c),
            graven_verify::text::is_dangerous(c),
            "{:x}",
            u32::from(c)
        );
    }
}
