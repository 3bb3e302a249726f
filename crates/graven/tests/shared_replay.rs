//! A shared log's replay cache (`--replay-claims`, docs/scale-out.md): two real `graven serve`
//! nodes on one SeaweedFS log. A request signed with RFC 9421 and accepted by one node is
//! refused by the other (a read on a replica, and a write after the writer handed the log
//! over), and a node that cannot reach the claims refuses signed requests with 503 rather
//! than accept them unchecked.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Server, agent, start_env};
use ed25519_dalek::SigningKey;
use graven_auth::httpsig::{RequestParts, SignedHeaders, sign_request};
use graven_testkit::s3::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, Seaweed};
use serde_json::{Value, json};

/// A shared log in a fresh bucket (Object Lock with a one-day governance rule, as the other
/// S3 tests), and a claims bucket of its own without a default rule.
struct Log {
    tmp: tempfile::TempDir,
    url: String,
    claims: String,
    key: PathBuf,
    endpoint: String,
}

impl Log {
    fn new(hint: &str) -> Log {
        let sw = Seaweed::shared();
        let cfg = sw.bucket_with_default_retention(
            hint,
            graven_s3::DefaultRetention {
                mode: graven_s3::RetentionMode::Governance,
                period: graven_s3::RetentionPeriod::Days(1),
            },
        );
        let claims = sw.bucket(&format!("{hint}-claims"), false);
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("signer.key");
        common::keygen(&key, "replay.example/log");
        Log {
            url: format!("s3://{}/audit/main", cfg.bucket),
            claims: format!("s3://{}/claims", claims.bucket),
            endpoint: sw.endpoint.clone(),
            tmp,
            key,
        }
    }

    /// `graven serve` on the log with the shared claims, reaching S3 at `endpoint`.
    fn node(&self, name: &str, endpoint: &str) -> Server {
        let env = self.env(endpoint);
        let args = ["--storage", &self.url, "--key", self.key.to_str().unwrap()];
        start_env(&self.tmp.path().join(name), &args, &env)
    }

    fn env<'a>(&'a self, endpoint: &'a str) -> [(&'a str, &'a str); 8] {
        [
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("AWS_ENDPOINT_URL_S3", ""),
            ("AWS_DEFAULT_REGION", ""),
            ("AWS_SESSION_TOKEN", ""),
            ("GRAVEN_REPLAY_CLAIMS", &self.claims),
        ]
    }
}

/// An identity with `role` and an Ed25519 public key, registered on the writer; the key and
/// its key id.
fn signer(writer: &Server, id: &str, role: &str, seed: u8) -> (SigningKey, String) {
    writer.identity(id, role, &[]);
    let k = SigningKey::from_bytes(&[seed; 32]);
    let pk = base64::engine::general_purpose::STANDARD.encode(k.verifying_key().as_bytes());
    let r =
        writer.admin("POST", &format!("/v1/identities/{id}/public-keys"), Some(json!({"public_key": pk})));
    assert_eq!(r.status, 201, "{}", r.body);
    let kid = graven_core::event_sig::key_id(k.verifying_key().as_bytes());
    (k, kid)
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// One signed request, kept as bytes so that it can be sent again exactly.
struct Signed {
    method: &'static str,
    path: &'static str,
    body: Vec<u8>,
    headers: SignedHeaders,
}

fn sign(
    k: &SigningKey,
    kid: &str,
    method: &'static str,
    path: &'static str,
    body: &[u8],
    nonce: Option<&str>,
) -> Signed {
    let target = RequestParts { method, path, ..Default::default() };
    Signed { method, path, body: body.to_vec(), headers: sign_request(k, kid, &target, body, now_s(), nonce) }
}

/// Sends `s` to `node`: status, Retry-After, body.
fn send(node: &Server, s: &Signed) -> (u16, Option<String>, String) {
    let agent = agent();
    let url = node.url(s.path);
    let req = |b: ureq::RequestBuilder<ureq::typestate::WithBody>| {
        b.header("content-type", "application/json")
            .header("content-digest", &s.headers.content_digest)
            .header("signature-input", &s.headers.signature_input)
            .header("signature", &s.headers.signature)
            .send(&s.body[..])
    };
    let r = match s.method {
        "POST" => req(agent.post(&url)),
        _ => agent
            .get(&url)
            .header("content-digest", &s.headers.content_digest)
            .header("signature-input", &s.headers.signature_input)
            .header("signature", &s.headers.signature)
            .call(),
    };
    let mut r = r.unwrap();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), retry, r.body_mut().read_to_string().unwrap())
}

fn within<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `graven.access.denied` records among the last `n` events of the log `node` serves.
fn denied_records(node: &Server, n: u64) -> Vec<Value> {
    let size = node.size();
    (size.saturating_sub(n)..size)
        .map(|i| node.event(i))
        .filter(|e| e["action"] == "graven.access.denied")
        .collect()
}

#[test]
fn a_signed_request_accepted_by_one_node_is_refused_by_the_other() {
    let log = Log::new("replay");
    let mut a = log.node("a", &log.endpoint);
    let mut b = log.node("b", &log.endpoint);
    b.token = a.token.clone();
    let (writer_key, writer_kid) = signer(&a, "svc:signer", "writer", 21);
    let (reader_key, reader_kid) = signer(&a, "svc:reader", "auditor", 22);
    // B re-reads the shared registry every 2 s.
    let mut tries = 0;
    within(Duration::from_secs(10), "B accepts the reader's key", || {
        tries += 1;
        let probe = sign(&reader_key, &reader_kid, "GET", "/v1/log", b"", Some(&format!("probe-{tries}")));
        (send(&b, &probe).0 == 200).then_some(())
    });

    // A signed read, accepted by A, replayed to B (a read replica): refused there.
    let read = sign(&reader_key, &reader_kid, "GET", "/v1/log", b"", Some("read-1"));
    let (status, _, body) = send(&a, &read);
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = send(&b, &read);
    assert_eq!(status, 401, "a read accepted by A, replayed to B: {body}");
    assert!(body.contains("another node"), "{body}");
    for n in [&a, &b] {
        assert!(
            n.banner.iter().any(|l| l.starts_with("replay cache: shared by every node")),
            "{:?}",
            n.banner
        );
    }

    // A signed write, accepted by A (the writer). B sends writes to the writer, so the replay
    // reaches B's own check once B is the writer: A hands the log over.
    let event = br#"{"action":"replay.once","resource":{"type":"test","id":"1"}}"#;
    let write = sign(&writer_key, &writer_kid, "POST", "/v1/events", event, None);
    let (status, _, body) = send(&a, &write);
    assert_eq!(status, 201, "{body}");
    let pid = a.child.id();
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(a.child.wait().unwrap().success());
    within(Duration::from_secs(15), "B takes writes", || (b.metric("graven_writer") == 1).then_some(()));
    let (status, _, body) = send(&b, &write);
    assert_eq!(status, 401, "a write accepted by A, replayed to B after the handover: {body}");
    assert!(body.contains("already used"), "{body}");
    let denied = denied_records(&b, 5);
    assert!(
        denied.iter().any(|d| d["details"]["reason"] == "signature-replayed"
            && d["actor"]["id"] == "graven:server"
            && d["claimed"]["actor"]["credential"] == format!("key:{writer_kid}")
            && d["details"]["route"] == "POST /v1/events"),
        "a denied record for the replay: {denied:?}"
    );
    let copies = b.all_events().iter().filter(|e| e.contains("replay.once")).count();
    assert_eq!(copies, 1, "the event is in the log once");
    // A fresh request is still accepted, and B counts what it claimed.
    let fresh = sign(&writer_key, &writer_kid, "POST", "/v1/events", event, Some("fresh"));
    assert_eq!(send(&b, &fresh).0, 201);
    let m = b.req("GET", "/metrics", None, None).body;
    let count = |outcome: &str| -> u64 {
        let prefix = format!("graven_replay_claims{{outcome=\"{outcome}\"}} ");
        m.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.trim().parse().unwrap())
    };
    assert_eq!(count("taken"), 2, "{m}");
    assert!(count("new") >= 2, "{m}");
}

/// A loopback TCP relay in front of S3 that can be cut (every connection refused and the open
/// ones closed) and restored, as a network outage between one node and the store.
struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn to(upstream: &str) -> Relay {
        let upstream: SocketAddr = upstream.trim_start_matches("http://").parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                let mut open = o.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                for (mut from, mut to) in
                    [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Relay { addr, cut, open }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[test]
fn a_node_that_cannot_reach_the_shared_claims_refuses_signed_requests() {
    let log = Log::new("replay-down");
    let a = log.node("a", &log.endpoint);
    let relay = Relay::to(&log.endpoint);
    let b = log.node("b", &relay.url());
    let (k, kid) = signer(&a, "svc:reader", "auditor", 23);
    let mut tries = 0;
    within(Duration::from_secs(10), "B accepts the reader's key", || {
        tries += 1;
        let probe = sign(&k, &kid, "GET", "/v1/log", b"", Some(&format!("probe-{tries}")));
        (send(&b, &probe).0 == 200).then_some(())
    });

    // B loses S3: a signed request it has never seen is refused, 503 with Retry-After.
    relay.cut();
    let read = sign(&k, &kid, "GET", "/v1/log", b"", Some("while-cut"));
    let (status, retry, body) = send(&b, &read);
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(body.contains("replay-check-unavailable"), "{body}");
    // Unauthenticated requests are refused as before, without a claim.
    assert_eq!(b.req("GET", "/v1/log", Some("gvn_0000000000000000nonsense"), None).status, 401);

    // Back: the same request is checked afresh (it was never claimed) and accepted, once.
    relay.restore();
    let (status, _, body) = within(Duration::from_secs(30), "B reaches S3 again", || {
        let r = send(&b, &read);
        (r.0 != 503).then_some(r)
    });
    assert_eq!(status, 200, "{body}");
    assert_eq!(send(&a, &read).0, 401, "claimed by B: refused by A");
}

/// Claims under a bucket's default Object Lock rule would each be locked for the rule's period:
/// refused at start, before the node serves anything or writes to the log's bucket.
#[test]
fn a_claims_bucket_under_a_default_retention_rule_is_refused() {
    let mut log = Log::new("replay-locked");
    let locked = Seaweed::shared().bucket_with_default_retention(
        "replay-locked-claims",
        graven_s3::DefaultRetention {
            mode: graven_s3::RetentionMode::Governance,
            period: graven_s3::RetentionPeriod::Days(1),
        },
    );
    log.claims = format!("s3://{}/claims", locked.bucket);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["serve", "--data", log.tmp.path().join("a").to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--storage", &log.url, "--key", log.key.to_str().unwrap()])
        .envs(log.env(&log.endpoint))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("graven serve started on a claims bucket with a default retention rule");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("replay_claims") && err.contains("default Object Lock retention rule"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("listening on"), "{stdout}");
    let log_bucket = log.url.trim_start_matches("s3://").split('/').next().unwrap().to_owned();
    let mut cfg = locked.clone();
    cfg.bucket = log_bucket;
    cfg.prefix = String::new();
    let s3 = graven_s3::S3Store::connect(cfg).unwrap();
    use graven_tlog::ObjectStore as _;
    assert_eq!(s3.first_key_after("", "").unwrap(), None, "the log's bucket is untouched");
}
