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
//! (`InvalidAccessKeyId`, with the right key pair), so the fake providers hand out SeaweedFS's
//! own key pair with an empty session token, which SeaweedFS ignores. The providers' protocol
//! is exercised in full; that SeaweedFS would check a real session token is not.

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
                    let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
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
    Some(Req { at: SystemTime::now(), method, path, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// RFC 3339, whole seconds, as IMDS, ECS and STS write `Expiration`.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    DateTime::from_secs(secs as i64).fmt(DateTimeFormat::DateTime).unwrap()
}

/// The JSON IMDS and the container endpoint answer with: SeaweedFS's key pair, an empty session
/// token (see the crate docs), expiring `ttl` from now.
fn credentials_json(ttl: Duration) -> String {
    format!(
        r#"{{"Code":"Success","LastUpdated":"{}","Type":"AWS-HMAC","AccessKeyId":"{ACCESS_KEY_ID}","SecretAccessKey":"{SECRET_ACCESS_KEY}","Token":"","Expiration":"{}"}}"#,
        rfc3339(SystemTime::now()),
        rfc3339(SystemTime::now() + ttl)
    )
}

const IMDS_TOKEN: &str = "imds-session-token-7f3a";
const ROLE: &str = "graven-node";

/// An IMDSv2 service: `PUT /latest/api/token` with a TTL header gives a token; the metadata
/// paths answer only requests that carry it (401 otherwise, as IMDSv2 does when IMDSv1 is
/// off). Credentials expire `ttl` after each fetch.
fn fake_imds(ttl: Duration) -> Fake {
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
                (200, vec![], credentials_json(ttl))
            }
            _ => (404, vec![], String::new()),
        }
    })
}

/// Starts `graven serve` on a fresh SeaweedFS bucket with `env` (every `AWS_*` variable of the
/// test's own environment removed first, the shared config files pointed at nothing, so only
/// the provider under test can answer), appends an event and reads it back. Returns the
/// server, and everything it printed on standard error so far.
struct Run {
    server: common::Server,
    stderr: Arc<Mutex<Vec<String>>>,
    _tmp: tempfile::TempDir,
}

fn serve_with(hint: &str, env: &[(&str, String)]) -> Run {
    let sw = Seaweed::shared();
    let cfg = sw.bucket(hint, true);
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("signer.key");
    let _ = common::keygen(&key, "creds.example/log");
    let data = tmp.path().join("node");
    let url = format!("s3://{}/audit/main", cfg.bucket);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graven"));
    cmd.args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--storage", &url, "--key", key.to_str().unwrap()]);
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
        .env("AWS_ENDPOINT_URL_S3", &sw.endpoint)
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
    let r = s.post_event(&s.token, &format!(r#"{{"action":"{action}","resource":{{"type":"doc","id":"d"}}}}"#));
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
}

#[test]
fn instance_profile_through_imdsv2() {
    let imds = fake_imds(Duration::from_secs(3600));
    let run = serve_with("imds", &[("AWS_EC2_METADATA_DISABLED", "false".into()), ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone())]);
    assert_eq!(run.source(), format!("S3 credentials: EC2 instance profile (IMDSv2 at {})", imds.url));
    run.assert_quiet_about(&[SECRET_ACCESS_KEY, IMDS_TOKEN]);
    let reqs = imds.requests();
    // The token came first, and every metadata request carried it.
    assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("PUT", "/latest/api/token"), "{reqs:#?}");
    assert!(reqs.iter().all(|r| r.path == "/latest/api/token" || r.headers.get("x-aws-ec2-metadata-token").is_some_and(|t| t == IMDS_TOKEN)));
    assert!(reqs.iter().any(|r| r.path.ends_with(ROLE)), "{reqs:#?}");
    let fetches = reqs.iter().filter(|r| r.path.ends_with(ROLE)).count();
    // The start-up probe's client and the log's: one fetch each, then the cache.
    append_one(&run.server, "creds.second");
    assert_eq!(imds.requests().iter().filter(|r| r.path.ends_with(ROLE)).count(), fetches);
}

#[test]
fn credentials_are_fetched_again_before_they_expire() {
    const TTL: Duration = Duration::from_secs(20);
    let imds = fake_imds(TTL);
    let run = serve_with("refresh", &[("AWS_EC2_METADATA_DISABLED", "false".into()), ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone())]);
    let fetches = |imds: &Fake| -> Vec<SystemTime> {
        imds.requests().iter().filter(|r| r.path.ends_with(ROLE)).map(|r| r.at).collect()
    };
    // Only the log's store is left once the server listens (the probe's is dropped): the
    // next fetch is its refresh.
    let at_start = fetches(&imds);
    let last = *at_start.last().unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let refresh = loop {
        if let Some(t) = fetches(&imds).get(at_start.len()) {
            break *t;
        }
        assert!(Instant::now() < deadline, "no second fetch within 40 s: {:?}", imds.requests());
        std::thread::sleep(Duration::from_millis(200));
    };
    let after = refresh.duration_since(last).unwrap();
    // Before expiry, and not on every request: the lease alone is renewed every second.
    assert!(after < TTL, "refreshed {after:?} after the fetch, credentials lived {TTL:?}");
    assert!(after >= Duration::from_secs(5), "refreshed after only {after:?}");
    append_one(&run.server, "creds.after-refresh");
    let err = run.stderr.lock().unwrap().join("\n");
    assert!(!err.contains("ExpiredToken") && !err.contains("error"), "{err}");
}

#[test]
fn web_identity_through_sts() {
    const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/graven-irsa";
    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXVkaXQ6Z3JhdmVuIn0.c2ln";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, JWT).unwrap();
    let sts = Fake::start(|r| {
        let form: HashMap<String, String> = r
            .body
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.replace("%3A", ":").replace("%2F", "/")))
            .collect();
        let ok = r.method == "POST"
            && form.get("Action").map(String::as_str) == Some("AssumeRoleWithWebIdentity")
            && form.get("RoleArn").map(String::as_str) == Some(ROLE_ARN)
            && form.get("WebIdentityToken").map(String::as_str) == Some(JWT)
            && form.get("RoleSessionName").is_some_and(|n| !n.is_empty());
        if !ok {
            return (400, vec![], "<ErrorResponse><Error><Code>InvalidIdentityToken</Code></Error></ErrorResponse>".into());
        }
        let body = format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{ACCESS_KEY_ID}</AccessKeyId><SecretAccessKey>{SECRET_ACCESS_KEY}</SecretAccessKey><SessionToken></SessionToken><Expiration>{}</Expiration></Credentials><AssumedRoleUser><Arn>{ROLE_ARN}/graven</Arn><AssumedRoleId>AROA:graven</AssumedRoleId></AssumedRoleUser><SubjectFromWebIdentityToken>system:serviceaccount:audit:graven</SubjectFromWebIdentityToken></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"#,
            rfc3339(SystemTime::now() + Duration::from_secs(3600))
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
    );
    assert_eq!(
        run.source(),
        format!(
            "S3 credentials: web identity token file {} for role {ROLE_ARN} (STS AssumeRoleWithWebIdentity)",
            token_file.display()
        )
    );
    run.assert_quiet_about(&[SECRET_ACCESS_KEY, JWT]);
    let reqs = sts.requests();
    assert!(!reqs.is_empty() && reqs.iter().all(|r| r.body.contains("WebIdentityToken=")), "{reqs:#?}");
}

#[test]
fn container_credentials_endpoint() {
    const AUTH: &str = "pod-identity-authorization-token-91c2";
    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("eks-pod-identity-token");
    std::fs::write(&auth_file, AUTH).unwrap();
    let ecs = Fake::start(|r| {
        if r.method != "GET" || r.path != "/v1/credentials" {
            return (404, vec![], String::new());
        }
        if r.headers.get("authorization").map(String::as_str) != Some(AUTH) {
            return (401, vec![], String::new());
        }
        (200, vec![("content-type", "application/json".into())], credentials_json(Duration::from_secs(3600)))
    });
    let full_uri = format!("{}/v1/credentials", ecs.url);
    let run = serve_with(
        "pod-identity",
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", full_uri.clone()),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", auth_file.to_str().unwrap().into()),
        ],
    );
    assert_eq!(
        run.source(),
        format!("S3 credentials: container credentials endpoint {full_uri} (ECS task role or EKS Pod Identity)")
    );
    run.assert_quiet_about(&[SECRET_ACCESS_KEY, AUTH]);
    assert!(ecs.requests().iter().all(|r| r.headers.get("authorization").map(String::as_str) == Some(AUTH)));
}

#[test]
fn named_profile_in_the_shared_credentials_file() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    let config = dir.path().join("config");
    std::fs::write(&creds, format!("[audit]\naws_access_key_id = {ACCESS_KEY_ID}\naws_secret_access_key = {SECRET_ACCESS_KEY}\n")).unwrap();
    std::fs::write(&config, "[profile audit]\nregion = us-east-1\n").unwrap();
    let run = serve_with(
        "profile",
        &[
            ("AWS_PROFILE", "audit".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap().into()),
            ("AWS_CONFIG_FILE", config.to_str().unwrap().into()),
        ],
    );
    assert_eq!(
        run.source(),
        format!("S3 credentials: profile audit of the shared AWS config files ({}, {})", config.display(), creds.display())
    );
    run.assert_quiet_about(&[SECRET_ACCESS_KEY]);
}

#[test]
fn keys_in_the_environment_come_first() {
    let imds = fake_imds(Duration::from_secs(3600));
    let run = serve_with(
        "env-first",
        &[
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            ("AWS_EC2_METADATA_DISABLED", "false".into()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone()),
        ],
    );
    assert!(run.source().starts_with("S3 credentials: static keys from the environment"), "{}", run.source());
    run.assert_quiet_about(&[SECRET_ACCESS_KEY]);
    assert!(imds.requests().is_empty(), "{:?}", imds.requests());
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
    cmd.args(["serve", "--data", tmp.path().join("d").to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--storage", &format!("s3://{}", cfg.bucket), "--key", key.to_str().unwrap()]);
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
