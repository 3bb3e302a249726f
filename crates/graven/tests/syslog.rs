//! The syslog source end to end (docs/sources.md), with the real binary and real senders:
//! util-linux `logger --rfc5424 --tcp --octet-count` straight to `graven serve
//! --syslog-listen`, and rsyslogd taking messages on `imtcp` and forwarding them with `omfwd`
//! (TCP, octet-counted, `RSYSLOG_SyslogProtocol23Format`). An auditor then finds each
//! message's subject with `GET /v1/events?actor=`, attested by the listener's source
//! identity. Both tests fail, never skip, without `logger` or `rsyslogd` (scripts/test.sh
//! installs Debian's rsyslog).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, start};
use serde_json::{Value, json};

const SOURCE: &str = "src:syslog-relay";

/// A server with a syslog listener attested by [`SOURCE`] (registered on a first start, as an
/// admin would, then the server restarted with `--syslog-listen`), and that listener's
/// address.
fn server_with_syslog(data: &Path) -> (Server, String) {
    let first = start(data, &[]);
    let body = json!({"id": SOURCE, "kind": "integration", "owner": "team-platform", "role": "source",
                      "source": {"types": ["syslog"], "subjects": ["*"]}});
    let r = first.admin("POST", "/v1/identities", Some(body));
    assert_eq!(r.status, 201, "{}", r.body);
    drop(first);
    let s = start(data, &["--syslog-listen", "127.0.0.1:0", "--syslog-identity", SOURCE]);
    let addr =
        s.banner_value("syslog listening on tcp://").expect("the syslog listener's address").to_owned();
    (s, addr)
}

/// The events whose actor is `actor`, once the index has them (up to 30 s).
fn events_of(s: &Server, actor: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.req("GET", &format!("/v1/events?actor={}", enc(actor)), Some(&s.token), None);
        assert_eq!(r.status, 200, "{}", r.body);
        let events = r.json()["events"].as_array().cloned().unwrap_or_default();
        if !events.is_empty() || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn hostname() -> String {
    let out = Command::new("hostname").output().expect("hostname");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn logger(port: &str, args: &[&str]) {
    let out = Command::new("logger")
        .args(["--rfc5424", "--tcp", "--octet-count", "-n", "127.0.0.1", "-P", port])
        .args(args)
        .output()
        .expect("logger (util-linux) is needed: apt-get install bsdutils");
    assert!(out.status.success(), "logger: {}", String::from_utf8_lossy(&out.stderr));
}

/// Checks an event reported through the syslog listener.
fn check_attested(e: &Value, actor: &str) {
    let actor_v = &e["event"]["actor"];
    assert_eq!(actor_v["id"], actor);
    assert_eq!(actor_v["auth"], "attested");
    assert_eq!(actor_v["attested_by"]["id"], SOURCE);
    assert_eq!(actor_v["attested_by"]["auth"], "syslog_listener");
    assert_eq!(e["event"]["source"]["ip"], "127.0.0.1");
}

#[test]
fn logger_sends_rfc5424_octet_counted_over_tcp_and_search_finds_it_attested() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, addr) = server_with_syslog(&tmp.path().join("d"));
    let port = addr.rsplit(':').next().unwrap().to_owned();
    logger(
        &port,
        &[
            "-t",
            "deployer",
            "--msgid",
            "deploy",
            "--sd-id",
            "graven@32473",
            "--sd-param",
            "outcome=\"success\"",
            "--sd-param",
            "event_id=\"d-42\"",
            "-p",
            "auth.notice",
            "released payments v2.3",
        ],
    );
    let actor = format!("deployer@{}", hostname());
    let events = events_of(&s, &actor);
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    check_attested(e, &actor);
    assert_eq!(e["event"]["action"], "syslog.deploy");
    assert_eq!(e["event"]["outcome"], "success");
    let d = &e["event"]["details"]["syslog"];
    assert_eq!((d["facility"].as_str(), d["severity"].as_str()), (Some("auth"), Some("notice")));
    assert_eq!(d["msg"], "released payments v2.3");
    assert_eq!(d["dedup_id"], "d-42");
    assert!(d["structured_data"]["timeQuality"].is_object(), "{d}");

    // logger again with the same event_id: not logged twice.
    let size = s.size();
    logger(&port, &["-t", "deployer", "--sd-id", "graven@32473", "--sd-param", "event_id=\"d-42\"", "again"]);
    logger(&port, &["-t", "deployer", "fresh"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.size() < size + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.size(), size + 1, "the repeated event_id was logged again");
}

/// rsyslogd in the foreground, unprivileged paths in `dir`, killed when dropped.
struct Rsyslogd(Child);

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn rsyslog_forwards_with_omfwd_octet_counted_and_search_finds_it_attested() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, addr) = server_with_syslog(&tmp.path().join("d"));
    let (graven_host, graven_port) = addr.rsplit_once(':').unwrap();
    let input_port = graven_testkit::net::free_ports(1, None).unwrap()[0];
    let work = tmp.path().join("rsyslog");
    std::fs::create_dir_all(&work).unwrap();
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{input_port}" ruleset="to-graven")
ruleset(name="to-graven") {{
  action(type="omfwd" target="{graven_host}" port="{graven_port}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
}}
"#,
            work = work.display()
        ),
    )
    .unwrap();
    let child = Command::new("rsyslogd")
        .args(["-n", "-f", conf.to_str().unwrap(), "-i", work.join("rsyslogd.pid").to_str().unwrap()])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rsyslogd is needed: apt-get install rsyslog (scripts/test.sh does)");
    let _rsyslogd = Rsyslogd(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", input_port)).is_err() {
        assert!(Instant::now() < deadline, "rsyslogd did not listen on 127.0.0.1:{input_port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    logger(
        &input_port.to_string(),
        &["-t", "relayed-app", "--msgid", "rotate", "-p", "local3.warning", "rotated the signing key"],
    );
    let actor = format!("relayed-app@{}", hostname());
    let events = events_of(&s, &actor);
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    check_attested(e, &actor);
    assert_eq!(e["event"]["action"], "syslog.rotate");
    let d = &e["event"]["details"]["syslog"];
    assert_eq!((d["facility"].as_str(), d["severity"].as_str()), (Some("local3"), Some("warning")));
    assert!(d["msg"].as_str().unwrap().starts_with("rotated the signing key"), "{d}");
    assert!(d["record"].as_str().unwrap().starts_with("<156>1 "), "{d}");
}
