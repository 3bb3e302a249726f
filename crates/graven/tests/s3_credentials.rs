//! `graven serve --storage s3://...` with no keys in its environment: the credentials come from
//! the standard chain (docs/s3.md, "Credentials"). Each provider is given a loopback server
//! that speaks its documented protocol and checks what the SDK sends: an EC2 instance metadata
//! service (IMDSv2: a session token first, then the role and its credentials with that token),
//! an STS that answers AssumeRoleWithWebIdentity (the token file's content, the role's ARN), a
//! container credentials endpoint (ECS / EKS Pod Identity: the authorization token file's
//! content), and a shared credentials file for a named profile. The credentials they hand out
//! sign real requests to SeaweedFS: the server starts, appends events and reads them back.
//!
//! SeaweedFS 4.48 refuses a request that carries a session token it did not issue
//! (`InvalidAccessKeyId`, even with its own key pair), so the temporary credentials the fakes
//! hand out (a new access key, secret and session token at each fetch) go to a gate in front of
//! it ([`Gate`]): it checks each request's SigV4 signature against the issued secret, the
//! session token against the one issued with the key, and the expiry, then signs the request
//! again with SeaweedFS's own keys and passes it on. The profile and environment sources hand
//! out SeaweedFS's keys themselves, and talk to it directly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::{DateTime, DateTimeFormat};
use graven_testkit::s3::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, Seaweed};
use sha2::{Digest, Sha256};

/// One request a fake provider received.
#[derive(Debug, Clone)]
struct Req {
    at: SystemTime,
    method: String,
    path: String,
    /// Lower-case names.
    headers: HashMap<String, String>,
    body: String,
}

/// What a handler answers: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

/// A loopback HTTP/1.1 server, one request per connection, that records every request.
struct Fake {
    url: String,
    log: Arc<Mutex<Vec<Req>>>,
}

impl Fake {
    fn start(handler: impl Fn(&Req) -> Answer + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (log2, handler) = (log.clone(), Arc::new(handler));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (log, handler) = (log2.clone(), handler.clone());
                std::thread::spawn(move || {
                    let Some(req) = read_request(&mut conn) else { return };
                    let (status, headers, body) = handler(&req);
                    log.lock().unwrap().push(req);
                    let mut out = format!(
                        "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n",
                        body.len()
                    );
                    for (k, v) in headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    out.push_str(&body);
                    let _ = conn.write_all(out.as_bytes());
                });
            }
        });
        Fake { url, log }
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

fn read_request(conn: &mut std::net::TcpStream) -> Option<Req> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Req {
        at: SystemTime::now(),
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// RFC 3339, whole seconds, as IMDS, ECS and STS write `Expiration`.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    DateTime::from_secs(secs as i64).fmt(DateTimeFormat::DateTime).unwrap()
}

/// The JSON IMDS and the container endpoint answer with.
fn credentials_json(t: &Temp) -> String {
    format!(
        r#"{{"Code":"Success","LastUpdated":"{}","Type":"AWS-HMAC","AccessKeyId":"{}","SecretAccessKey":"{}","Token":"{}","Expiration":"{}"}}"#,
        rfc3339(SystemTime::now()),
        t.id,
        t.secret,
        t.token,
        rfc3339(t.expires)
    )
}

const IMDS_TOKEN: &str = "imds-session-token-7f3a";
const ROLE: &str = "graven-node";

/// An IMDSv2 service: `PUT /latest/api/token` with a TTL header gives a token; the metadata
/// paths answer only requests that carry it (401 otherwise, as IMDSv2 does when IMDSv1 is
/// off). Each fetch of the role's credentials issues new ones, expiring `ttl` later.
fn fake_imds(issued: &Issued, ttl: Duration) -> Fake {
    let issued = issued.clone();
    Fake::start(move |r| {
        let token_ok = r.headers.get("x-aws-ec2-metadata-token").map(String::as_str) == Some(IMDS_TOKEN);
        match (r.method.as_str(), r.path.as_str()) {
            ("PUT", "/latest/api/token") => match r.headers.get("x-aws-ec2-metadata-token-ttl-seconds") {
                Some(t) if t.parse::<u64>().is_ok_and(|t| (1..=21_600).contains(&t)) => {
                    (200, vec![("x-aws-ec2-metadata-token-ttl-seconds", t.clone())], IMDS_TOKEN.into())
                }
                _ => (400, vec![], String::new()),
            },
            (_, _) if !token_ok => (401, vec![], String::new()),
            ("GET", "/latest/meta-data/iam/security-credentials/") => (200, vec![], ROLE.into()),
            ("GET", p) if p == format!("/latest/meta-data/iam/security-credentials/{ROLE}") => {
                (200, vec![], credentials_json(&issued.issue(ttl)))
            }
            _ => (404, vec![], String::new()),
        }
    })
}

/// Starts `graven serve` on a fresh SeaweedFS bucket with `env` (every `AWS_*` variable of the
/// test's own environment removed first, the shared config files pointed at nothing and IMDS
/// off, so only the source under test can answer), through `gate` if given, appends an event
/// and reads it back. Keeps what the server printed on standard error.
struct Run {
    server: common::Server,
    stderr: Arc<Mutex<Vec<String>>>,
    _tmp: tempfile::TempDir,
}

fn serve_with(hint: &str, env: &[(&str, String)], gate: Option<&Gate>) -> Run {
    let sw = Seaweed::shared();
    let cfg = sw.bucket(hint, true);
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("signer.key");
    let _ = common::keygen(&key, "creds.example/log");
    let data = tmp.path().join("node");
    let url = format!("s3://{}/audit/main", cfg.bucket);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graven"));
    cmd.args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"]).args([
        "--storage",
        &url,
        "--key",
        key.to_str().unwrap(),
    ]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    let nothing = tmp.path().join("no-such-file");
    cmd.env("AWS_CONFIG_FILE", &nothing)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nothing)
        // Off unless the test gives an endpoint: nothing is asked of a real 169.254.169.254.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_S3", gate.map_or(sw.endpoint.as_str(), |g| g.url.as_str()))
        .env("AWS_REGION", "us-east-1")
        .env("GRAVEN_RETENTION_MODE", "governance")
        .env("GRAVEN_RETENTION_DAYS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stderr(Stdio::piped());
    let mut proc = graven_testkit::process::spawn_listening(&mut cmd, Duration::from_secs(60));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let pipe = proc.child.stderr.take().unwrap();
    let lines = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            lines.lock().unwrap().push(line);
        }
    });
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_owned();
    let server = common::Server { proc, vkey: String::new(), token, data };
    append_one(&server, "creds.first");
    Run { server, stderr, _tmp: tmp }
}

/// Appends one event and reads it back.
fn append_one(s: &common::Server, action: &str) {
    let before = s.size();
    let r =
        s.post_event(&s.token, &format!(r#"{{"action":"{action}","resource":{{"type":"doc","id":"d"}}}}"#));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(s.size(), before + 1);
    assert_eq!(s.event(before)["action"], action);
}

impl Run {
    /// The `S3 credentials:` line of the banner.
    fn source(&self) -> String {
        let line = self.server.proc.banner.iter().find(|l| l.starts_with("S3 credentials: "));
        line.unwrap_or_else(|| panic!("no credential source in {:#?}", self.server.proc.banner)).clone()
    }

    /// Nothing the server printed holds one of `secrets`.
    fn assert_quiet_about(&self, secrets: &[&str]) {
        let out = self.server.proc.banner.join("\n");
        let err = self.stderr.lock().unwrap().join("\n");
        for s in secrets {
            assert!(!out.contains(s) && !err.contains(s), "{s} printed:\n{out}\n{err}");
        }
    }

    /// Every request went through the gate with credentials a provider issued, and nothing
    /// printed holds an issued secret or token.
    fn assert_signed_with_issued(&self, issued: &Issued, gate: &Gate) {
        assert!(gate.refused().is_empty(), "the gate refused: {:#?}", gate.refused());
        let all = issued.all();
        assert!(all.iter().any(|t| t.used > 0), "no request used the issued credentials: {all:#?}");
        for t in &all {
            self.assert_quiet_about(&[&t.secret, &t.token]);
        }
        self.assert_quiet_about(&[SECRET_ACCESS_KEY]);
    }
}

/// The fake IMDS's fetches of the role's credentials.
fn credential_fetches(imds: &Fake) -> Vec<SystemTime> {
    imds.requests().iter().filter(|r| r.path.ends_with(ROLE)).map(|r| r.at).collect()
}

fn imds_env(imds: &Fake) -> [(&'static str, String); 2] {
    [("AWS_EC2_METADATA_DISABLED", "false".into()), ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone())]
}

#[test]
fn instance_profile_through_imdsv2() {
    let issued = Issued::default();
    let gate = Gate::start(issued.clone(), &Seaweed::shared().endpoint);
    let imds = fake_imds(&issued, Duration::from_secs(3600));
    let run = serve_with("imds", &imds_env(&imds), Some(&gate));
    assert_eq!(run.source(), format!("S3 credentials: EC2 instance profile (IMDSv2 at {})", imds.url));
    run.assert_signed_with_issued(&issued, &gate);
    run.assert_quiet_about(&[IMDS_TOKEN]);
    let reqs = imds.requests();
    // The token came first, and every metadata request carried it.
    assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("PUT", "/latest/api/token"), "{reqs:#?}");
    assert!(reqs.iter().all(|r| r.path == "/latest/api/token"
        || r.headers.get("x-aws-ec2-metadata-token").is_some_and(|t| t == IMDS_TOKEN)));
    // The start-up probe's client and the log's fetch once each; then the cache serves.
    let fetches = credential_fetches(&imds).len();
    assert!((1..=2).contains(&fetches), "{reqs:#?}");
    append_one(&run.server, "creds.second");
    assert_eq!(credential_fetches(&imds).len(), fetches);
}

#[test]
fn credentials_are_fetched_again_before_they_expire() {
    const TTL: Duration = Duration::from_secs(20);
    let issued = Issued::default();
    let gate = Gate::start(issued.clone(), &Seaweed::shared().endpoint);
    let imds = fake_imds(&issued, TTL);
    let run = serve_with("refresh", &imds_env(&imds), Some(&gate));
    // Only the log's store is left once the server listens (the probe's is dropped): the
    // next fetch is its refresh.
    let at_start = credential_fetches(&imds);
    let last = *at_start.last().unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let refresh = loop {
        if let Some(t) = credential_fetches(&imds).get(at_start.len()) {
            break *t;
        }
        assert!(Instant::now() < deadline, "no second fetch within 40 s: {:?}", imds.requests());
        std::thread::sleep(Duration::from_millis(200));
    };
    let after = refresh.duration_since(last).unwrap();
    // Before expiry, and not on every request: the lease alone is renewed every second.
    assert!(after < TTL, "refreshed {after:?} after the fetch, credentials lived {TTL:?}");
    assert!(after >= Duration::from_secs(5), "refreshed after only {after:?}");
    // The new credentials sign the requests after it; the gate refused none (an expired key
    // would have been).
    let new = issued.all()[at_start.len()].id.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !issued.all().iter().any(|t| t.id == new && t.used > 0) {
        assert!(Instant::now() < deadline, "the refreshed credentials signed nothing: {:#?}", issued.all());
        std::thread::sleep(Duration::from_millis(100));
    }
    append_one(&run.server, "creds.after-refresh");
    run.assert_signed_with_issued(&issued, &gate);
}

#[test]
fn web_identity_through_sts() {
    const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/graven-irsa";
    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXVkaXQ6Z3JhdmVuIn0.c2ln";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, JWT).unwrap();
    let issued = Issued::default();
    let gate = Gate::start(issued.clone(), &Seaweed::shared().endpoint);
    let minted = issued.clone();
    let sts = Fake::start(move |r| {
        let form: HashMap<String, String> = r
            .body
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), percent_decode(v)))
            .collect();
        let ok = r.method == "POST"
            && form.get("Action").map(String::as_str) == Some("AssumeRoleWithWebIdentity")
            && form.get("RoleArn").map(String::as_str) == Some(ROLE_ARN)
            && form.get("WebIdentityToken").map(String::as_str) == Some(JWT)
            && form.get("RoleSessionName").is_some_and(|n| !n.is_empty());
        if !ok {
            return (
                400,
                vec![],
                "<ErrorResponse><Error><Code>InvalidIdentityToken</Code></Error></ErrorResponse>".into(),
            );
        }
        let t = minted.issue(Duration::from_secs(3600));
        let body = format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials><AssumedRoleUser><Arn>{ROLE_ARN}/graven</Arn><AssumedRoleId>AROA:graven</AssumedRoleId></AssumedRoleUser><SubjectFromWebIdentityToken>system:serviceaccount:audit:graven</SubjectFromWebIdentityToken></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"#,
            t.id,
            t.secret,
            t.token,
            rfc3339(t.expires)
        );
        (200, vec![("content-type", "text/xml".into())], body)
    });
    let run = serve_with(
        "irsa",
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap().into()),
            ("AWS_ROLE_ARN", ROLE_ARN.into()),
            ("AWS_ENDPOINT_URL_STS", sts.url.clone()),
        ],
        Some(&gate),
    );
    assert_eq!(
        run.source(),
        format!(
            "S3 credentials: web identity token file {} for role {ROLE_ARN} (STS AssumeRoleWithWebIdentity)",
            token_file.display()
        )
    );
    run.assert_signed_with_issued(&issued, &gate);
    run.assert_quiet_about(&[JWT]);
    let reqs = sts.requests();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|r| r.body.contains("Action=AssumeRoleWithWebIdentity")),
        "{reqs:#?}"
    );
}

#[test]
fn container_credentials_endpoint() {
    const AUTH: &str = "pod-identity-authorization-token-91c2";
    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("eks-pod-identity-token");
    std::fs::write(&auth_file, AUTH).unwrap();
    let issued = Issued::default();
    let gate = Gate::start(issued.clone(), &Seaweed::shared().endpoint);
    let minted = issued.clone();
    let ecs = Fake::start(move |r| {
        if r.method != "GET" || r.path != "/v1/credentials" {
            return (404, vec![], String::new());
        }
        if r.headers.get("authorization").map(String::as_str) != Some(AUTH) {
            return (401, vec![], String::new());
        }
        let t = minted.issue(Duration::from_secs(3600));
        (200, vec![("content-type", "application/json".into())], credentials_json(&t))
    });
    let full_uri = format!("{}/v1/credentials", ecs.url);
    let run = serve_with(
        "pod-identity",
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", full_uri.clone()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", auth_file.to_str().unwrap().into()),
        ],
        Some(&gate),
    );
    assert_eq!(
        run.source(),
        format!(
            "S3 credentials: container credentials endpoint {full_uri} (ECS task role or EKS Pod Identity)"
        )
    );
    run.assert_signed_with_issued(&issued, &gate);
    run.assert_quiet_about(&[AUTH]);
    let reqs = ecs.requests();
    assert!(
        !reqs.is_empty()
            && reqs.iter().all(|r| r.headers.get("authorization").map(String::as_str) == Some(AUTH))
    );
}

#[test]
fn named_profile_in_the_shared_credentials_file() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    let config = dir.path().join("config");
    std::fs::write(
        &creds,
        format!(
            "[audit]\naws_access_key_id = {ACCESS_KEY_ID}\naws_secret_access_key = {SECRET_ACCESS_KEY}\n"
        ),
    )
    .unwrap();
    std::fs::write(&config, "[profile audit]\nregion = us-east-1\n").unwrap();
    let run = serve_with(
        "profile",
        &[
            ("AWS_PROFILE", "audit".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap().into()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap().into()),
        ],
        None,
    );
    assert_eq!(
        run.source(),
        format!(
            "S3 credentials: profile audit of the shared AWS config files ({}, {})",
            config.display(),
            creds.display()
        )
    );
    run.assert_quiet_about(&[SECRET_ACCESS_KEY]);
}

#[test]
fn keys_in_the_environment_come_first() {
    let issued = Issued::default();
    let imds = fake_imds(&issued, Duration::from_secs(3600));
    let mut env = vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
    ];
    env.extend(imds_env(&imds));
    let run = serve_with("env-first", &env, None);
    assert_eq!(
        run.source(),
        "S3 credentials: static keys from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), no refresh"
    );
    run.assert_quiet_about(&[SECRET_ACCESS_KEY]);
    assert!(imds.requests().is_empty(), "{:?}", imds.requests());
}

/// The gate is not a rubber stamp: credentials that were never issued, or a token that does
/// not go with the key, are refused, and `graven serve` does not start.
#[test]
fn the_gate_refuses_what_no_provider_issued() {
    let issued = Issued::default();
    let gate = Gate::start(issued.clone(), &Seaweed::shared().endpoint);
    let other = issued.issue(Duration::from_secs(3600));
    let sw = Seaweed::shared();
    let cfg = sw.bucket("gate-refuses", true);
    for (id, secret, token) in [
        ("ASIANEVERISSUED0001", "whatever", "whatever"),
        (other.id.as_str(), other.secret.as_str(), "not-the-token"),
        (other.id.as_str(), "not-the-secret", other.token.as_str()),
    ] {
        let mut c = cfg.clone();
        c.endpoint = Some(gate.url.clone());
        c.access_key_id = Some(id.into());
        c.secret_access_key = Some(secret.into());
        c.session_token = Some(token.into());
        let store = graven_s3::S3Store::connect(c).unwrap();
        assert!(store.check_bucket().is_err());
    }
    // The gate notes a refusal after it has answered: wait for the notes of all three.
    let wanted = ["never issued", "session token is not", "signature does not match"];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut refused = gate.refused();
    while !wanted.iter().all(|w| refused.iter().any(|r| r.contains(w)))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
        refused = gate.refused();
    }
    for w in wanted {
        assert!(refused.iter().any(|r| r.contains(w)), "{w}: {refused:#?}");
    }
}

#[test]
fn no_source_at_all_is_a_clear_refusal() {
    let sw = Seaweed::shared();
    let cfg = sw.bucket("no-creds", true);
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("signer.key");
    let _ = common::keygen(&key, "creds.example/log");
    let nothing = tmp.path().join("no-such-file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graven"));
    cmd.args(["serve", "--data", tmp.path().join("d").to_str().unwrap(), "--listen", "127.0.0.1:0"]).args([
        "--storage",
        &format!("s3://{}", cfg.bucket),
        "--key",
        key.to_str().unwrap(),
    ]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env("AWS_CONFIG_FILE", &nothing)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nothing)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_S3", &sw.endpoint)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no S3 credentials"), "{err}");
    assert!(err.contains("docs/s3.md"), "{err}");
}

// ---- temporary credentials, and a gate that checks them in front of SeaweedFS ----

/// Temporary credentials a fake provider handed out.
#[derive(Debug, Clone)]
struct Temp {
    id: String,
    secret: String,
    token: String,
    expires: SystemTime,
    /// S3 requests the gate let through signed with them.
    used: usize,
}

/// Every set of temporary credentials the fake providers handed out, each one distinct.
#[derive(Clone, Default)]
struct Issued(Arc<Mutex<Vec<Temp>>>);

impl Issued {
    fn issue(&self, ttl: Duration) -> Temp {
        let mut all = self.0.lock().unwrap();
        let n = all.len();
        let salt = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
        let t = Temp {
            id: format!("ASIAGRAVENTEST{n:06}"),
            secret: format!("temp-secret-{n}-{salt:08x}"),
            token: format!("temp-session-token-{n}-{salt:08x}"),
            expires: SystemTime::now() + ttl,
            used: 0,
        };
        all.push(t.clone());
        t
    }

    fn all(&self) -> Vec<Temp> {
        self.0.lock().unwrap().clone()
    }
}

/// A loopback S3 endpoint in front of SeaweedFS, because SeaweedFS refuses session tokens it
/// did not issue. It checks each request's SigV4 signature against the temporary credentials
/// the fake providers issued (the access key id names them; the session token must be theirs;
/// they must not have expired), then signs the request again with SeaweedFS's own key pair,
/// without the token, and passes it on. A request it cannot match is answered 403, and noted.
struct Gate {
    url: String,
    refused: Arc<Mutex<Vec<String>>>,
}

impl Gate {
    fn start(issued: Issued, upstream: &str) -> Gate {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let refused = Arc::new(Mutex::new(Vec::new()));
        let notes = refused.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (issued, upstream, notes) = (issued.clone(), upstream.clone(), notes.clone());
                std::thread::spawn(move || {
                    if let Err(why) = pass(conn, &issued, &upstream) {
                        notes.lock().unwrap().push(why);
                    }
                });
            }
        });
        Gate { url, refused }
    }

    fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }
}

/// One request through the gate: `Err` with the reason if it was refused.
fn pass(mut conn: std::net::TcpStream, issued: &Issued, upstream: &str) -> Result<(), String> {
    conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let request_line = line.trim_end().to_owned();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    if method.is_empty() {
        return Ok(()); // a connection closed without a request
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).map_err(|e| e.to_string())?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').ok_or("bad header")?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
    }
    let len: usize = get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;

    let refuse = |conn: &mut std::net::TcpStream, why: String| -> Result<(), String> {
        let xml = format!("<Error><Code>InvalidToken</Code><Message>{why}</Message></Error>");
        let _ = write!(
            conn,
            "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{xml}",
            xml.len()
        );
        Err(format!("{method} {target}: {why}"))
    };
    let auth = get("authorization").unwrap_or_default();
    let Some(sig) = SigV4::parse(&auth) else { return refuse(&mut conn, format!("not SigV4: {auth}")) };
    if get("x-amz-content-sha256").is_some_and(|v| v.starts_with("STREAMING-AWS4-HMAC-SHA256")) {
        return refuse(&mut conn, "signed chunks, which the gate cannot pass on".into());
    }
    let temp = {
        let mut all = issued.0.lock().unwrap();
        let Some(t) = all.iter_mut().find(|t| t.id == sig.key_id) else {
            drop(all);
            return refuse(&mut conn, format!("access key {} was never issued", sig.key_id));
        };
        if get("x-amz-security-token").as_deref() != Some(t.token.as_str()) {
            drop(all);
            return refuse(&mut conn, "the session token is not the one issued with the key".into());
        }
        if SystemTime::now() >= t.expires {
            drop(all);
            return refuse(&mut conn, format!("access key {} has expired", sig.key_id));
        }
        t.used += 1;
        t.clone()
    };
    let amz_date = get("x-amz-date").unwrap_or_default();
    let payload = get("x-amz-content-sha256").unwrap_or_default();
    let expected = sig.sign(&temp.secret, &method, &target, &headers, &sig.signed, &amz_date, &payload);
    if expected != sig.signature {
        return refuse(&mut conn, "the signature does not match the issued secret".into());
    }
    // Signed again for SeaweedFS, with its key pair and without the token.
    let signed: Vec<String> = sig.signed.iter().filter(|h| *h != "x-amz-security-token").cloned().collect();
    let resigned = sig.sign(SECRET_ACCESS_KEY, &method, &target, &headers, &signed, &amz_date, &payload);
    let mut out = format!("{request_line}\r\n");
    for (k, v) in &headers {
        if !matches!(k.as_str(), "authorization" | "x-amz-security-token" | "connection" | "expect") {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str(&format!(
        "authorization: AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/{}, SignedHeaders={}, Signature={resigned}\r\nconnection: close\r\n\r\n",
        sig.scope,
        signed.join(";")
    ));
    let mut up = std::net::TcpStream::connect(upstream).map_err(|e| e.to_string())?;
    up.write_all(out.as_bytes()).unwrap();
    up.write_all(&body).unwrap();
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    conn.write_all(&answer).map_err(|e| e.to_string())?;
    Ok(())
}

/// The parts of a SigV4 `Authorization` header.
struct SigV4 {
    key_id: String,
    /// `date/region/service/aws4_request`
    scope: String,
    signed: Vec<String>,
    signature: String,
}

impl SigV4 {
    fn parse(auth: &str) -> Option<SigV4> {
        let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ")?;
        let mut fields = HashMap::new();
        for f in rest.split(',') {
            let (k, v) = f.trim().split_once('=')?;
            fields.insert(k, v);
        }
        let (key_id, scope) = fields.get("Credential")?.split_once('/')?;
        Some(SigV4 {
            key_id: key_id.to_owned(),
            scope: scope.to_owned(),
            signed: fields.get("SignedHeaders")?.split(';').map(str::to_owned).collect(),
            signature: (*fields.get("Signature")?).to_owned(),
        })
    }

    /// The SigV4 signature of the request (AWS General Reference, "Create a signed AWS API
    /// request"), as S3 computes it: the path as sent, the query decoded, re-encoded and
    /// sorted, the signed headers trimmed, the payload hash as the client declared it.
    #[allow(clippy::too_many_arguments)]
    fn sign(
        &self,
        secret: &str,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        signed: &[String],
        amz_date: &str,
        payload: &str,
    ) -> String {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut params: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (uri_encode(&percent_decode(k)), uri_encode(&percent_decode(v)))
            })
            .collect();
        params.sort();
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut canonical_headers = String::new();
        for name in signed {
            let values: Vec<String> = headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
        }
        let canonical = format!(
            "{method}\n{path}\n{}\n{canonical_headers}\n{}\n{payload}",
            query.join("&"),
            signed.join(";")
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
            self.scope,
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let mut key = format!("AWS4{secret}").into_bytes();
        for part in self.scope.split('/') {
            key = hmac(&key, part.as_bytes());
        }
        hex(&hmac(&key, to_sign.as_bytes()))
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > 64 { Sha256::digest(key).to_vec() } else { key.to_vec() };
    k.resize(64, 0);
    let mut inner = Sha256::new();
    inner.update(k.iter().map(|b| b ^ 0x36).collect::<Vec<u8>>());
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(k.iter().map(|b| b ^ 0x5c).collect::<Vec<u8>>());
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SigV4's URI encoding: everything but `A-Z a-z 0-9 - . _ ~` as `%XX`.
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
