//! The syslog source end to end (docs/sources.md), with the real binary and real senders:
//! util-linux `logger --rfc5424 --tcp --octet-count` straight to `graven serve
//! --syslog-listen`, and rsyslogd taking messages on `imtcp` and forwarding them with `omfwd`
//! (TCP, octet-counted, `RSYSLOG_SyslogProtocol23Format`). An auditor then finds each
//! message's subject with `GET /v1/events?actor=`, attested by the listener's source
//! identity; and rsyslogd forwarding over TLS (RFC 5425, its `ossl` stream driver) with a
//! client certificate, whose SPIFFE ID attests the messages. The tests fail, never skip,
//! without `logger`, `rsyslogd`, its `ossl` driver or `curl` (scripts/test.sh installs Debian's
//! rsyslog and rsyslog-openssl).

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

/// A test PKI: a CA, and leaves it issues.
struct Pki {
    ca: rcgen::Certificate,
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "graven syslog test CA");
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&key).unwrap();
        Pki { ca, params, key }
    }

    /// A leaf's certificate and key, PEM, written to `dir/<name>.pem` and `dir/<name>.key`.
    fn leaf(&self, dir: &Path, name: &str, san: rcgen::SanType, client: bool) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.subject_alt_names.push(san);
        p.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = p.signed_by(&key, &rcgen::Issuer::from_params(&self.params, &self.key)).unwrap();
        let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c.to_str().unwrap().to_owned(), k.to_str().unwrap().to_owned())
    }
}

/// `curl` over HTTPS to the server, trusting `ca`, as the admin: the answer's body.
fn curl(ca: &str, url: &str, token: &str, body: Option<&str>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail-with-body", "--cacert", ca, "-H", &format!("Authorization: Bearer {token}")]);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data", b]);
    }
    let out = cmd.arg(url).output().expect("curl is needed");
    assert!(
        out.status.success(),
        "curl {url}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn rsyslog_forwards_over_tls_and_its_client_certificate_attests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = Pki::new();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pki.ca.pem()).unwrap();
    let ca = ca.to_str().unwrap().to_owned();
    let (server_cert, server_key) =
        pki.leaf(dir, "server", rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()), false);
    let relay = "spiffe://example.org/ns/logging/sa/rsyslog";
    let (client_cert, client_key) =
        pki.leaf(dir, "relay", rcgen::SanType::URI(relay.try_into().unwrap()), true);
    let config = dir.join("graven.toml");
    std::fs::write(&config, "[syslog]\nlisten = \"127.0.0.1:0\"\ntls = true\n").unwrap();
    let s = start(
        &dir.join("d"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--tls-cert",
            &server_cert,
            "--tls-key",
            &server_key,
            "--client-ca",
            &ca,
        ],
    );
    let addr = s.banner_value("syslog listening on tls://").expect("the TLS syslog listener").to_owned();
    let (graven_host, graven_port) = addr.rsplit_once(':').unwrap();
    let base = format!("https://{}", s.addr);
    let body = json!({"id": relay, "kind": "workload", "owner": "team-platform", "role": "source",
                      "source": {"types": ["syslog"], "subjects": ["*"]}});
    curl(&ca, &format!("{base}/v1/identities"), &s.token, Some(&body.to_string()));

    let input_port = graven_testkit::net::free_ports(1, None).unwrap()[0];
    let work = dir.join("rsyslog");
    std::fs::create_dir_all(&work).unwrap();
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}" DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{client_cert}" DefaultNetstreamDriverKeyFile="{client_key}")
module(load="imtcp" StreamDriver.Name="ptcp" StreamDriver.Mode="0")
input(type="imtcp" address="127.0.0.1" port="{input_port}" ruleset="to-graven")
ruleset(name="to-graven") {{
  action(type="omfwd" target="{graven_host}" port="{graven_port}" protocol="tcp"
         StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="x509/certvalid"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
}}
"#,
            work = work.display()
        ),
    )
    .unwrap();
    let child = Command::new("rsyslogd")
        .args(["-n", "-f", conf.to_str().unwrap(), "-i", work.join("rsyslogd.pid").to_str().unwrap()])
        .spawn()
        .expect("rsyslogd is needed: apt-get install rsyslog rsyslog-openssl (scripts/test.sh does)");
    let _rsyslogd = Rsyslogd(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", input_port)).is_err() {
        assert!(Instant::now() < deadline, "rsyslogd did not listen on 127.0.0.1:{input_port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    logger(&input_port.to_string(), &["-t", "tls-app", "--msgid", "login", "over TLS"]);
    let actor = format!("tls-app@{}", hostname());
    let deadline = Instant::now() + Duration::from_secs(30);
    let found = loop {
        let found: Value = serde_json::from_str(&curl(
            &ca,
            &format!("{base}/v1/events?actor={}", enc(&actor)),
            &s.token,
            None,
        ))
        .unwrap();
        if !found["events"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let events = found["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{found}");
    let a = &events[0]["event"]["actor"];
    assert_eq!(a["auth"], "attested");
    assert_eq!(a["attested_by"]["id"], relay);
    assert_eq!(a["attested_by"]["auth"], "mtls");
    assert_eq!(events[0]["event"]["action"], "syslog.login");
}
