//! An in-process test harness for the HTTP API (feature `testing`).
//!
//! [`Harness`] opens a real node (`serve::open`: a real log, engine, registry with its
//! bootstrap admin key, search index and indexer, the same settings resolution as `graven
//! serve`) in a temporary directory, and sends requests through `http::app` with
//! `tower::ServiceExt::oneshot`: no socket, no process. Every test goes through one helper,
//! [`Harness::check`]:
//!
//! ```text
//! let h = Harness::start();
//! let key = h.identity("svc:deployer", "writer", &["deploy.*"]);
//! let receipt = h.check(h.post("/v1/events").bearer(&key).json(r#"{"action":"deploy.create"}"#))
//!     .expect(201)
//!     .json();
//! h.check(h.post("/v1/events").bearer(&key).json(r#"{"action":"graven.key.revoke"}"#))
//!     .expect(400)
//!     .problem("reserved-action");
//! ```
//!
//! A request carries the client's address as the accept loop records it (127.0.0.1 unless
//! [`Request::from`] says otherwise). A test can also read the log directly ([`Harness::size`],
//! [`Harness::event`]), verify it with `graven-verify` ([`Harness::verify`]), restart the node
//! on the same directory, cleanly or as after a crash ([`Harness::restart`],
//! [`Harness::crash_restart`]), and open connections served by the accept loop's own code over
//! an in-memory stream ([`Harness::connect`]), for what needs bytes on a wire: header and body
//! deadlines, TLS handshakes with client certificates.
//!
//! The harness owns a Tokio runtime and its methods block, so tests are plain `#[test]`
//! functions (several threads may send at once).

#![allow(clippy::panic)] // a harness fails the test at once, saying why

mod conn;
mod request;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use graven_core::hash::TreeSize;
use graven_verify::{Fetch, FetchError};
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub use conn::{Conn, Streaming, TlsConn};
pub use request::{Answer, Request};

use crate::config::{self, Overrides};
use crate::serve::Node;

/// A node in a temporary directory, and requests to it. See the [module](self) documentation.
pub struct Harness {
    rt: Option<tokio::runtime::Runtime>,
    tmp: tempfile::TempDir,
    overrides: Overrides,
    /// The settings as resolved at the last start.
    config: Option<config::Config>,
    node: Option<Node>,
    router: Option<axum::Router>,
    /// Keeps in-memory connections open; dropped on stop, which drains them.
    graceful: Option<hyper_util::server::graceful::GracefulShutdown>,
    token: String,
    next_peer: AtomicU32,
    /// What [`Harness::reload_config`] reloads with, as `graven serve` does on SIGHUP.
    reloader: Option<std::sync::Mutex<crate::reload::Reloader>>,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("data", &self.data())
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// How to start a [`Harness`]: settings as `graven serve` takes them.
#[must_use]
pub struct Builder {
    toml: String,
    overrides: Overrides,
    prepare: Vec<Prepare>,
}

/// Something done to the data directory before the first start.
type Prepare = Box<dyn FnOnce(&Path)>;

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").field("toml", &self.toml).field("overrides", &self.overrides).finish()
    }
}

impl Builder {
    /// Settings in the config file's TOML (`<data>/graven.toml`, read as `graven serve` reads
    /// it): `[oidc]`, `tls_cert`, `body_timeout_ms`, ...
    pub fn config(mut self, toml: &str) -> Builder {
        self.toml.push_str(toml);
        self.toml.push('\n');
        self
    }

    /// Settings as flags would give them (`--public-read-path`, `--client-ca`, ...).
    pub fn overrides(mut self, f: impl FnOnce(&mut Overrides)) -> Builder {
        f(&mut self.overrides);
        self
    }

    /// Runs `f` on the data directory before the first start (e.g. to leave an old
    /// `admin.token` there).
    pub fn before_start(mut self, f: impl FnOnce(&Path) + 'static) -> Builder {
        self.prepare.push(Box::new(f));
        self
    }

    #[track_caller]
    pub fn start(self) -> Harness {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
        if !self.toml.is_empty() {
            let path = data.join("graven.toml");
            std::fs::write(&path, &self.toml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        for f in self.prepare {
            f(&data);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a runtime: {e}"));
        let mut h = Harness {
            rt: Some(rt),
            tmp,
            overrides: self.overrides,
            config: None,
            node: None,
            router: None,
            graceful: None,
            token: String::new(),
            next_peer: AtomicU32::new(1),
            reloader: None,
        };
        h.start_node();
        h
    }
}

/// What a verification of the log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub tree_size: u64,
    /// Client signatures checked against keys the log itself registers.
    pub client_signatures: u64,
    /// Client signatures that could not be checked (a scan not from entry 0).
    pub client_signatures_not_checked: u64,
    /// Registry events not honoured (not by an admin the log records).
    pub registry_events_ignored: u64,
    /// Entries that are not Graven events.
    pub non_events: u64,
}

impl Harness {
    /// A node with the default settings.
    #[track_caller]
    pub fn start() -> Harness {
        Harness::builder().start()
    }

    pub fn builder() -> Builder {
        Builder { toml: String::new(), overrides: Overrides::default(), prepare: Vec::new() }
    }

    /// The data directory (`log/`, `identities.json`, `admin.token`, `index.redb`, ...).
    pub fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// The bootstrap admin's API key, from `admin.token` as of the last start ("" if absent).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The log's verifier key (C2SP note format).
    pub fn vkey(&self) -> String {
        self.state().verifier_key.clone()
    }

    /// What the node serves; fails the test if it is stopped.
    #[track_caller]
    pub fn state(&self) -> &Arc<crate::http::AppState> {
        self.node().state()
    }

    #[track_caller]
    fn node(&self) -> &Node {
        self.node.as_ref().unwrap_or_else(|| panic!("the node is stopped"))
    }

    #[track_caller]
    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().unwrap_or_else(|| panic!("the harness is shut down"))
    }

    /// Runs a future on the harness's runtime (for direct calls into the engine and the like).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt().block_on(f)
    }

    /// What `graven serve` would have printed at start, before its address.
    pub fn banner(&self) -> Vec<String> {
        self.node().banner().to_vec()
    }

    // ---- requests ----

    pub fn get(&self, uri: impl Into<String>) -> Request {
        Request::new("GET", uri)
    }

    pub fn post(&self, uri: impl Into<String>) -> Request {
        Request::new("POST", uri)
    }

    /// A request with any method.
    #[track_caller]
    pub fn request(&self, method: &str, uri: impl Into<String>) -> Request {
        Request::new(method, uri)
    }

    /// Sends `req` through the router and reads the whole answer.
    #[track_caller]
    pub fn check(&self, req: Request) -> Answer {
        let http = req.into_http(Ipv4Addr::LOCALHOST.into());
        let router = self.router.clone().unwrap_or_else(|| panic!("the node is stopped"));
        self.rt().block_on(async move {
            let resp = match router.oneshot(http).await {
                Ok(r) => r,
                Err(e) => match e {},
            };
            let (parts, body) = resp.into_parts();
            let body = tokio::time::timeout(Duration::from_secs(60), axum::body::to_bytes(body, usize::MAX))
                .await
                .unwrap_or_else(|_| panic!("the body did not end within 60 s (a stream? use `open`)"))
                .unwrap_or_else(|e| panic!("reading the body: {e}"));
            Answer { status: parts.status.as_u16(), headers: parts.headers, body }
        })
    }

    /// Sends `req` and returns as soon as the response's head is there; its body is read as
    /// it arrives (the live stream).
    #[track_caller]
    pub fn open(&self, req: Request) -> Streaming {
        let http = req.into_http(Ipv4Addr::LOCALHOST.into());
        let router = self.router.clone().unwrap_or_else(|| panic!("the node is stopped"));
        let resp = self.rt().block_on(async move {
            match router.oneshot(http).await {
                Ok(r) => r,
                Err(e) => match e {},
            }
        });
        let (parts, body) = resp.into_parts();
        Streaming {
            rt: self.rt().handle().clone(),
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
            seen: String::new(),
            ended: false,
        }
    }

    /// A connection from 127.0.0.1 served as the accept loop serves a TCP connection (its
    /// TLS handshake when the node has TLS, the header deadline, HTTP/1.1), over an in-memory
    /// stream.
    pub fn connect(&self) -> Conn {
        let (client, server) = tokio::io::duplex(1 << 16);
        let tls = self.node().tls().cloned();
        let router = self.router.clone().unwrap_or_else(|| panic!("the node is stopped"));
        let header_timeout = self.config.as_ref().map_or(Duration::from_secs(10), |c| c.header_timeout);
        let watcher = self.graceful.as_ref().map(|g| g.watcher()).unwrap_or_else(|| panic!("stopped"));
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 40000));
        self.rt().spawn(async move {
            crate::serve::connection(server, peer, tls.as_ref(), router, header_timeout, watcher).await;
        });
        Conn { rt: self.rt().handle().clone(), io: client }
    }

    /// The node's TLS acceptor, when it speaks TLS (for listeners other than HTTP's, such as
    /// syslog's).
    pub fn tls(&self) -> Option<&crate::tls::TlsServer> {
        self.node().tls()
    }

    /// One HTTPS request on a new connection with the client settings `tls` (its roots, and
    /// its certificate if any). A failed handshake is an error.
    pub fn check_tls(&self, tls: Arc<rustls::ClientConfig>, req: Request) -> std::io::Result<Answer> {
        self.connect().into_tls(tls)?.send(req)
    }

    /// A fresh client address for each call (127.1.x.y), so that the per-address limit on
    /// denied records does not drop a record a test wants to read.
    pub fn fresh_peer(&self) -> IpAddr {
        let n = self.next_peer.fetch_add(1, Ordering::Relaxed);
        IpAddr::V4(Ipv4Addr::new(127, 1, (n >> 8) as u8, n as u8))
    }

    // ---- the log ----

    /// The committed tree size.
    pub fn size(&self) -> u64 {
        self.state().engine.committed().size
    }

    /// Entry `index`'s stored bytes.
    #[track_caller]
    pub fn entry(&self, index: u64) -> Vec<u8> {
        let size = TreeSize(self.size());
        let reader = self.state().reader.lock().unwrap_or_else(|p| p.into_inner());
        reader.entry(index, size).unwrap_or_else(|e| panic!("entry {index}: {e}"))
    }

    /// Entry `index` as JSON.
    #[track_caller]
    pub fn event(&self, index: u64) -> Value {
        let bytes = self.entry(index);
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("entry {index} is not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
        })
    }

    /// Every entry as stored, as text.
    pub fn all_events(&self) -> Vec<String> {
        (0..self.size()).map(|i| String::from_utf8_lossy(&self.entry(i)).into_owned()).collect()
    }

    /// The events from `from` on whose `action` is `action`.
    pub fn events_with_action(&self, from: u64, action: &str) -> Vec<Value> {
        (from..self.size()).map(|i| self.event(i)).filter(|e| e["action"] == action).collect()
    }

    /// Verifies the log directory with `graven-verify`, as `graven verify <dir>` does (client
    /// signatures against the keys the log registers); fails the test if it does not verify.
    #[track_caller]
    pub fn verify(&self) -> Verified {
        let mut fetch = graven_verify::DirFetch::new(self.data().join("log"));
        self.verify_from(&mut fetch).unwrap_or_else(|e| panic!("the log does not verify: {e}"))
    }

    /// Verifies the log as served over HTTP (`/checkpoint`, `/tile/...`), with `token` or
    /// anonymously.
    pub fn verify_over_http(&self, token: Option<&str>) -> Result<Verified, String> {
        self.verify_from(&mut RouterFetch { h: self, token: token.map(str::to_owned) })
    }

    fn verify_from<F: Fetch>(&self, fetch: &mut F) -> Result<Verified, String> {
        use graven_verify::client_sigs::ClientSigChecker;
        let vkey = graven_core::note::VerifierKey::parse(&self.vkey()).map_err(|e| e.to_string())?;
        let mut sigs = ClientSigChecker::new(true);
        let log = graven_verify::verify_log_since_visiting(
            fetch,
            &vkey,
            None,
            None,
            graven_verify::Mode::Full,
            |_, _| {},
            |i, e| sigs.visit(i, e).map_err(graven_verify::VisitError),
        )
        .map_err(|e| e.to_string())?;
        Ok(Verified {
            tree_size: log.report().size.0,
            client_signatures: sigs.verified,
            client_signatures_not_checked: sigs.unchecked,
            registry_events_ignored: sigs.registry_ignored.count,
            non_events: sigs.non_events.count,
        })
    }

    /// A metric's value (a counter or gauge without labels), 0 when absent.
    pub fn metric(&self, name: &str) -> u64 {
        let text = self.state().metrics.render();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Replaces `<data>/graven.toml` with `toml` and reloads it, as `graven serve` does on
    /// SIGHUP (`reload`).
    pub fn reload_config(&self, toml: &str) -> Result<crate::reload::Reloaded, crate::reload::ReloadError> {
        let path = self.data().join("graven.toml");
        std::fs::write(&path, toml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reloader = self.reloader.as_ref().unwrap_or_else(|| panic!("the node is not running"));
        let mut reloader = reloader.lock().unwrap_or_else(|e| e.into_inner());
        self.rt().block_on(reloader.reload(self.state()))
    }

    /// Responses the node counted for `route` (e.g. `GET /tile`), all statuses.
    pub fn served(&self, route: &str) -> u64 {
        let needle = format!("route=\"{route}\"");
        self.state()
            .metrics
            .render()
            .lines()
            .filter(|l| l.starts_with("graven_http_responses_total{") && l.contains(&needle))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// What SIGTERM does first ([`Node::begin_drain`]): every live stream ends, and so does
    /// any opened after.
    pub fn begin_drain(&self) {
        self.node().begin_drain();
    }

    // ---- restarts ----

    /// The clean stop `graven serve` makes on SIGTERM, then a start on the same directory.
    pub fn restart(&mut self) {
        self.restart_with(|_, _| {});
    }

    /// [`restart`](Self::restart), changing the settings or the directory in between.
    pub fn restart_with(&mut self, f: impl FnOnce(&mut Overrides, &Path)) {
        self.stop_node(true);
        let data = self.data();
        f(&mut self.overrides, &data);
        self.start_node();
    }

    /// Stops the node as a killed process stops (no summary of dropped denied records, no
    /// flush of the search index or of last-seen times), then starts it on the same directory.
    pub fn crash_restart(&mut self) {
        self.crash_restart_with(|_, _| {});
    }

    /// [`crash_restart`](Self::crash_restart), changing the settings or the directory in
    /// between.
    pub fn crash_restart_with(&mut self, f: impl FnOnce(&mut Overrides, &Path)) {
        self.stop_node(false);
        let data = self.data();
        f(&mut self.overrides, &data);
        self.start_node();
    }

    #[track_caller]
    fn start_node(&mut self) {
        let data = self.data();
        let o = Overrides {
            data: Some(data.clone()),
            listen: Some("127.0.0.1:0".into()),
            ..self.overrides.clone()
        };
        let (config, file) = config::resolve_with_file(o.clone()).unwrap_or_else(|e| panic!("settings: {e}"));
        self.reloader = Some(std::sync::Mutex::new(crate::reload::Reloader::new(
            file,
            Box::new(move || config::resolve_with_file(o.clone())),
        )));
        let addr = config.listen;
        let node = self
            .rt()
            .block_on(crate::serve::open(&config, None, addr))
            .unwrap_or_else(|e| panic!("starting the node: {e}"));
        self.router = Some(crate::console::app_with_console(node.state().clone(), node.tls().is_some()));
        self.graceful = Some(hyper_util::server::graceful::GracefulShutdown::new());
        self.node = Some(node);
        self.config = Some(config);
        self.token = std::fs::read_to_string(data.join(graven_auth::registry::TOKEN_FILE))
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
    }

    fn stop_node(&mut self, clean: bool) {
        self.router = None;
        self.graceful = None;
        let Some(node) = self.node.take() else { return };
        let index = Arc::downgrade(&node.state().index);
        let Some(rt) = self.rt.as_ref() else { return };
        if clean {
            rt.block_on(node.stop());
        } else {
            rt.block_on(node.halt());
        }
        // An indexing transaction already running finishes on its own thread; the index file
        // can be opened again once it has let go.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while index.strong_count() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The last reference can go on another thread while the database is still closing
        // (seen as "Database already open" from the next start): wait until it opens here.
        let path = self.data().join("index.redb");
        while std::time::Instant::now() < deadline {
            match graven_index::Index::open(&path) {
                Ok(closed_again) => {
                    drop(closed_again);
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    // ---- fixtures ----

    /// Creates an identity (`role`, allowed action patterns `allow`) and one API key for it,
    /// as the admin; returns the key.
    #[track_caller]
    pub fn identity(&self, id: &str, role: &str, allow: &[&str]) -> String {
        let body = json!({"id": id, "kind": "service_account", "owner": "team-payments", "role": role, "allowed_actions": allow});
        self.check(self.post("/v1/identities").bearer(&self.token).json(body)).expect(201);
        self.new_key(id, json!({}))
    }

    /// A new API key for identity `id`, as the admin.
    #[track_caller]
    pub fn new_key(&self, id: &str, body: Value) -> String {
        let a =
            self.check(self.post(format!("/v1/identities/{}/keys", enc(id))).bearer(&self.token).json(body));
        a.expect(201).json()["key"].as_str().unwrap_or_default().to_owned()
    }

    /// Registers the raw Ed25519 public key `public` for identity `id`, as the admin; returns
    /// its key id.
    #[track_caller]
    pub fn add_public(&self, id: &str, public: &[u8; 32]) -> String {
        use base64::Engine as _;
        let body = json!({"public_key": base64::engine::general_purpose::STANDARD.encode(public)});
        let path = format!("/v1/identities/{}/public-keys", enc(id));
        let a = self.check(self.post(path).bearer(&self.token).json(body)).expect(201);
        let kid = a.json()["key_id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(kid, graven_core::event_sig::key_id(public), "the key id is the key's");
        kid
    }

    /// Sends a request that must be refused with `status` (a problem document), and checks
    /// that it appended nothing but, rate limits allowing, one `denied` record, which it
    /// returns.
    #[track_caller]
    pub fn refused(&self, status: u16, req: Request) -> Option<Value> {
        let before = self.size();
        let a = self.check(req).expect(status);
        a.detail();
        // The denied record is committed before the answer is sent.
        let after = self.size();
        assert!(after <= before + 1, "a refused request appended {} events", after - before);
        (after == before + 1).then(|| {
            let e = self.event(before);
            assert_eq!(e["outcome"], "denied", "{e}");
            assert_eq!(e["action"], "graven.access.denied", "{e}");
            e
        })
    }

    /// [`refused`](Self::refused), from an address of its own ([`fresh_peer`](Self::fresh_peer))
    /// unless the request names one, so its denied record is not dropped by the per-address
    /// limit; fails the test if there is no record.
    #[track_caller]
    pub fn denied(&self, status: u16, req: Request) -> Value {
        let req = if req.peer.is_some() { req } else { req.from(self.fresh_peer()) };
        self.refused(status, req).unwrap_or_else(|| panic!("no denied record was appended"))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop_node(false);
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(10));
        }
    }
}

/// An identity id in a URL path.
pub fn enc(id: &str) -> String {
    id.replace('/', "%2F")
}

/// The key id of an API key `gvn_<key id>_<secret>`.
pub fn key_id(key: &str) -> &str {
    key.get(4..20).unwrap_or_default()
}

/// The log's files through the router, as a verifier over HTTP reads them.
struct RouterFetch<'a> {
    h: &'a Harness,
    token: Option<String>,
}

impl Fetch for RouterFetch<'_> {
    fn fetch(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let mut req = self.h.get(format!("/{path}"));
        if let Some(t) = &self.token {
            req = req.bearer(t);
        }
        let a = self.h.check(req);
        match StatusCode::from_u16(a.status()) {
            Ok(StatusCode::OK) if a.bytes().len() as u64 > limit => {
                Err(FetchError::TooLarge { path: path.to_owned(), limit })
            }
            Ok(StatusCode::OK) => Ok(Some(a.bytes().to_vec())),
            Ok(StatusCode::NOT_FOUND) => Ok(None),
            _ => Err(FetchError::Status { url: format!("/{path}"), status: a.status() }),
        }
    }

    fn location(&self) -> String {
        "the router".into()
    }
}
