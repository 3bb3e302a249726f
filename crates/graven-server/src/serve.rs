//! Starting and stopping `graven serve`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graven_core::note::SignerKey;
use graven_tlog::LocalLog;

use crate::config::Config;
use crate::http::AppState;
use crate::metrics::Metrics;
use graven_engine::engine::Engine;
use graven_engine::reader::{LogReader, Source};
use graven_tlog::ObjectStore;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{} does not hold a signer key: {why}", path.display())]
    Key { path: PathBuf, why: String },
    #[error("opening the log: {0}")]
    Log(#[from] graven_tlog::LogError),
    #[error("identity registry: {0}")]
    Registry(#[from] graven_auth::registry::RegistryError),
    #[error("{0}")]
    Config(String),
    /// The cause is the error's source (printed after it), not repeated in its message.
    #[error("cannot listen on {addr}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
    #[error(
        "{addr} is already in use (another graven serve, or another program, listens there): stop it, or choose another address with --listen"
    )]
    PortInUse { addr: std::net::SocketAddr },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ServeError + 'a {
    move |source| ServeError::Io { what, path: path.to_path_buf(), source }
}

/// Loads `<data>/log.key`, creating it (mode 0600; absent or complete after a crash, never
/// replaced: `graven_fs::atomic::create`) for `origin` on first start.
fn load_or_create_key(path: &Path, origin: &str) -> Result<(SignerKey, bool), ServeError> {
    if !path.exists() {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| io("creating", path)(std::io::Error::other(e.to_string())))?;
        let key = SignerKey::from_seed(origin, seed)
            .map_err(|e| ServeError::Key { path: path.into(), why: e.to_string() })?;
        let text = format!("{}\n", key.to_secret_string());
        graven_fs::atomic::create(&graven_fs::RealFs, path, text.as_bytes(), graven_fs::Access::Private)
            .map_err(io("creating", path))?;
        return Ok((key, true));
    }
    let text = std::fs::read_to_string(path).map_err(io("reading", path))?;
    let key = SignerKey::parse(text.trim())
        .map_err(|e| ServeError::Key { path: path.into(), why: e.to_string() })?;
    Ok((key, false))
}

/// How often the denied records the rate limiter dropped are summed up in one event.
const DENIED_SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Bytes of tiles and bundles a node on an object store keeps in memory, unless configured.
const DEFAULT_TILE_CACHE_BYTES: usize = 128 << 20;

/// Loads the signer key from a file the operator named (never created here).
fn load_key(path: &Path) -> Result<SignerKey, ServeError> {
    let meta = std::fs::metadata(path).map_err(io("reading the signer key", path))?;
    if meta.len() > 4096 {
        return Err(ServeError::Key { path: path.into(), why: "the file is larger than 4 KiB".into() });
    }
    let text = std::fs::read_to_string(path).map_err(io("reading", path))?;
    SignerKey::parse(text.trim()).map_err(|e| ServeError::Key { path: path.into(), why: e.to_string() })
}

/// Sees to the bootstrap admin credential once the log can record it: every start-up change
/// to the registry is appended (attributed to the server) before it takes effect. On a shared
/// log only the writer can append; another node waits for the writer's registry instead.
async fn bootstrap(
    registry: &graven_auth::registry::Registry,
    engine: &Engine,
    data: &Path,
    shared: bool,
    clock: &dyn graven_clock::Clock,
) -> Result<graven_auth::registry::Bootstrap, ServeError> {
    let deadline = clock.now() + Duration::from_secs(60);
    loop {
        let plan = registry.plan_bootstrap(data, clock.unix_ms())?;
        if plan.events.is_empty() {
            return Ok(registry.apply_bootstrap(plan, data)?);
        }
        match crate::http::audit::record_startup(engine, &plan.events).await {
            Ok(()) => return Ok(registry.apply_bootstrap(plan, data)?),
            Err(graven_engine::engine::SubmitError::NotWriter { .. }) if shared && clock.now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                registry.refresh()?;
            }
            Err(e) => {
                return Err(ServeError::Config(format!(
                    "could not record the bootstrap admin credential in the log, so it was not registered: {e}"
                )));
            }
        }
    }
}

/// Runs the server until SIGTERM or SIGINT, then drains: see [`run_with`].
pub async fn run(config: Config) -> Result<(), ServeError> {
    let listener = bind(config.listen).await?;
    run_with(listener, config, None, None).await
}

/// Takes the address to listen on. The first thing `graven serve` does: a port already in use
/// is refused ([`ServeError::PortInUse`]) before any key, token or log is created, and before
/// a shared log's bucket is touched.
pub async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => ServeError::PortInUse { addr },
        _ => ServeError::Listen { addr, source },
    })
}

/// A shared log's object stores: the log's own, and the one its nodes claim signed requests
/// in (`replay_claims`, docs/scale-out.md), if one is set.
#[derive(Debug, Clone)]
pub struct SharedStores {
    pub log: Arc<dyn ObjectStore>,
    pub replay_claims: Option<Arc<dyn ObjectStore>>,
}

/// Serves on `listener` (from [`bind`]; a shared log's node advertises its address to the
/// others), on a log kept in `store` (object storage shared by several nodes) when given,
/// until SIGTERM or SIGINT. Then it drains: no new connections; live streams end at once;
/// requests in flight have until the drain deadline (`drain_timeout_ms`); then the sequencer
/// commits and acknowledges everything it accepted, and the node stops. With `reloader`, each
/// SIGHUP reloads the configuration (`reload`).
pub async fn run_with(
    listener: tokio::net::TcpListener,
    config: Config,
    store: Option<SharedStores>,
    reloader: Option<crate::reload::Reloader>,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: config.listen, source })?;
    let syslog_listener = bind_source(config.syslog.as_ref(), "a syslog receiver", "--syslog-listen").await?;
    let bao_listener = bind_source(
        config.openbao_socket.as_ref().map(|o| &o.stream),
        "an OpenBao audit receiver",
        "--bao-audit-listen",
    )
    .await?;
    let node = open(&config, store, addr).await?;
    for line in node.banner() {
        println!("{line}");
    }
    // The sources' listeners: their source identity checked now, looked up again per
    // connection.
    let mut listeners = Vec::new();
    if let (Some(listener), Some(setup)) = (syslog_listener, &config.syslog) {
        let scheme = if setup.tls { "tls" } else { "tcp" };
        listeners.push(start_source(
            Arc::new(crate::syslog::Syslog),
            listener,
            setup,
            &node,
            "syslog",
            scheme,
        )?);
    }
    if let (Some(listener), Some(setup)) = (bao_listener, &config.openbao_socket) {
        let protocol = Arc::new(crate::openbao_socket::OpenBaoSocket { types: setup.types.clone() });
        listeners.push(start_source(protocol, listener, &setup.stream, &node, "openbao audit", "tcp")?);
    }
    let scheme = if node.tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{addr}");
    let _ = std::io::stdout().flush();
    let router = crate::console::app_with_console(node.state.clone(), node.tls.is_some());
    let reloads = reloader.map(|r| tokio::spawn(crate::reload::on_sighup(node.state.clone(), r)));
    let served = serve_connections(listener, router, &config, &node).await;
    if let Some(task) = reloads {
        task.abort();
    }
    // The drain began: the sources' connections commit what they read and end.
    let deadline = tokio::time::Instant::now() + config.drain_timeout;
    for task in listeners {
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            tracing::warn!("source connections were still committing at the drain deadline");
        }
    }
    // No new requests now; the sequencer commits and answers what was accepted, then stops
    // (and a shared log's writer gives up its lease).
    let size = node.stop().await;
    println!("stopped; tree size {size}");
    served.map_err(|source| ServeError::Listen { addr, source })
}

/// The listener of a source with its own port (`setup`, when configured), bound before the
/// node opens so that a port in use stops the start-up early.
async fn bind_source(
    setup: Option<&crate::config::StreamSetup>,
    who: &str,
    flag: &str,
) -> Result<Option<tokio::net::TcpListener>, ServeError> {
    let Some(s) = setup else { return Ok(None) };
    bind(s.listen).await.map(Some).map_err(|e| match e {
        ServeError::PortInUse { addr } => ServeError::Config(format!(
            "{addr} is already in use (perhaps {who} listens there): stop it, or choose another address with {flag}"
        )),
        e => e,
    })
}

/// Checks a source listener's identity and starts its accept loop; prints where it listens.
fn start_source<P: crate::stream_source::Protocol>(
    protocol: Arc<P>,
    listener: tokio::net::TcpListener,
    setup: &crate::config::StreamSetup,
    node: &Node,
    name: &str,
    scheme: &str,
) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    if let Some(id) = &setup.identity {
        crate::stream_source::check_identity(&*protocol, &node.state.registry, id)
            .map_err(ServeError::Config)?;
    }
    let at = listener.local_addr().map_err(|source| ServeError::Listen { addr: setup.listen, source })?;
    println!("{name} listening on {scheme}://{at}");
    Ok(tokio::spawn(crate::stream_source::serve(
        protocol,
        listener,
        setup.clone(),
        node.state.clone(),
        node.tls.clone(),
    )))
}

/// A node opened on its data directory (and its shared store, if any), ready to serve but not
/// listening: the log and its engine, the registry with its bootstrap admin, the search index
/// and its indexer, the state the router serves, the TLS acceptor, and the background tasks
/// (last-seen times, summaries of dropped denied records, a shared registry's refresh).
/// [`run_with`] feeds it connections from a socket; the in-process test harness
/// (`testing`, feature `testing`) feeds it requests directly.
#[derive(Debug)]
pub struct Node {
    state: Arc<AppState>,
    tls: Option<crate::tls::TlsServer>,
    bootstrap: graven_auth::registry::Bootstrap,
    /// What start-up says about the log and the credentials, one line each.
    banner: Vec<String>,
    indexer: tokio::task::JoinHandle<()>,
    /// The alert rules' evaluation and the webhooks' deliveries.
    alerting: Vec<tokio::task::JoinHandle<()>>,
    flusher: tokio::task::JoinHandle<()>,
    summarizer: tokio::task::JoinHandle<()>,
    refresher: Option<tokio::task::JoinHandle<()>>,
    /// The witness rounds, with a witness policy.
    witnessing: Option<crate::witnessing::Started>,
    /// The trusted-time task, with a TSA.
    stamper: Option<tokio::task::JoinHandle<()>>,
}

/// Opens the node: the signer key, the registry, the log and its engine (a shared log's node
/// first waits for a checkpoint to serve), the bootstrap admin credential (recorded in the log
/// before it takes effect), the search index and its indexer. `addr` is where the node
/// listens: a shared log's node advertises it to the others unless `advertise_url` is set.
pub async fn open(
    config: &Config,
    store: Option<SharedStores>,
    addr: std::net::SocketAddr,
) -> Result<Node, ServeError> {
    let (store, claims) = match store {
        Some(s) => (Some(s.log), s.replay_claims),
        None => (None, None),
    };
    // Tiles and bundles never change once written: keep the recent ones in memory, so proofs,
    // entries and receipts do not each cost a request to the store.
    let cache = config.storage.as_ref().map_or(DEFAULT_TILE_CACHE_BYTES, |s| s.tile_cache_bytes);
    let store = store.map(|s| -> Arc<dyn ObjectStore> { Arc::new(graven_tlog::CachedStore::new(s, cache)) });
    let data = config.data.clone();
    std::fs::create_dir_all(&data).map_err(io("creating", &data))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700));
    }
    let (key, new_key) = match (&config.key, &store) {
        (Some(path), _) => (load_key(path)?, false),
        (None, Some(_)) => {
            return Err(ServeError::Config(
                "a log in object storage needs --key <signer key file>, the same file on every node (make one with `graven keygen`)".into(),
            ));
        }
        (None, None) => load_or_create_key(&data.join("log.key"), &config.origin)?,
    };
    let vkey = key.verifier();
    // A node given another log's key would take the lease and fail to open, over and over
    // (and could not read the shared registry): say so now.
    if let Some(store) = &store
        && let Err(e @ graven_tlog::LogError::Checkpoint(_)) =
            graven_tlog::read_published(store.as_ref(), &vkey)
    {
        return Err(ServeError::Config(format!(
            "the log in {} is not signed by the key given with --key ({e}); every node of a log needs the same signer key",
            store.location()
        )));
    }
    let token_path = data.join(graven_auth::registry::TOKEN_FILE);
    let registry = match &store {
        Some(s) => graven_auth::registry::Registry::open_shared(s.clone(), key.clone())?,
        None => graven_auth::registry::Registry::open(&data)?,
    };
    let registry = Arc::new(registry);
    let log_dir = data.join("log");
    let (engine, source) = match &store {
        None => {
            let log = LocalLog::open(&log_dir, key)?;
            let log: Box<dyn graven_tlog::LogWriter> = if config.pipeline_commits {
                Box::new(graven_tlog::PipelinedLocalLog::new(log)?)
            } else {
                Box::new(log)
            };
            let engine = Engine::start(log, LogReader::new(&log_dir), config.engine.clone())?;
            (engine, Source::Dir { fs: Arc::new(graven_tlog::RealFs), dir: log_dir.clone() })
        }
        Some(store) => {
            let shared_cfg =
                config.storage.clone().ok_or_else(|| ServeError::Config("no storage settings".into()))?;
            let scheme = if config.tls.is_some() { "https" } else { "http" };
            if shared_cfg.advertise_url.is_none() && addr.ip().is_unspecified() {
                return Err(ServeError::Config(format!(
                    "listening on {addr}, other nodes cannot tell where to send writes: pass --advertise-url http(s)://<this host>:{}",
                    addr.port()
                )));
            }
            let url = shared_cfg.advertise_url.clone().unwrap_or_else(|| format!("{scheme}://{addr}"));
            let lease = graven_engine::lease::Lease::new(
                store.clone(),
                Some(url),
                shared_cfg.lease_ttl,
                config.engine.clock.clone(),
            );
            // One round now, so the first node of a new log starts as its writer at once.
            lease.tick();
            lease.spawn().map_err(io("starting the lease thread", Path::new("graven/lease")))?;
            let shared = graven_engine::engine::Shared {
                store: store.clone(),
                key,
                lease: lease.clone(),
                poll: Duration::from_millis(250),
                pipeline: config.pipeline_commits,
            };
            let engine =
                Engine::start_shared(shared, LogReader::objects(store.clone()), config.engine.clone())?;
            // Serve nothing until there is a checkpoint to serve: written by this node as the
            // writer, or published by another.
            let mut watch = engine.subscribe();
            let deadline = shared_cfg.lease_ttl * 4 + Duration::from_secs(10);
            let found = tokio::time::timeout(deadline, watch.wait_for(|c| !c.checkpoint.is_empty())).await;
            if !matches!(found, Ok(Ok(_))) {
                lease.release();
                return Err(ServeError::Config(format!(
                    "no checkpoint in {} after {deadline:?}: no writer is running and this node could not become one (see the errors above)",
                    store.location()
                )));
            }
            (engine, Source::Objects(store.clone()))
        }
    };
    let clock = config.engine.clock.clone();
    let bootstrap = bootstrap(&registry, &engine, &data, store.is_some(), clock.as_ref()).await?;
    let indexed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let metrics = Metrics::with_timestamping(
        engine.clone(),
        indexed.clone(),
        config.witnessing.is_some(),
        config.timestamping.is_some(),
    );
    let stamps = match &source {
        Source::Dir { fs, dir } => graven_tlog::StampStore::Dir { fs: fs.clone(), dir: dir.clone() },
        Source::Objects(store) => graven_tlog::StampStore::Objects(store.clone()),
    };
    let stamper = config
        .timestamping
        .as_ref()
        .map(|setup| crate::timestamping::start(setup, &engine, stamps.clone(), metrics.clone()));
    let index_path = data.join("index.redb");
    let index =
        Arc::new(graven_index::Index::open(&index_path).map_err(|e| {
            io("opening the search index", &index_path)(std::io::Error::other(e.to_string()))
        })?);
    let indexer = tokio::spawn(graven_engine::indexer::run(
        index.clone(),
        engine.subscribe(),
        LogReader::on(source.clone()),
        indexed,
    ));
    let witnessing = match &config.witnessing {
        Some(setup) => Some(
            crate::witnessing::start(setup, &vkey, &engine, source.clone()).map_err(ServeError::Config)?,
        ),
        None => None,
    };
    if let Some(w) = &witnessing {
        metrics.set_witnessing(w.witnessing.clone());
    }
    let live = crate::reload::live_settings(config, clock.clone()).map_err(ServeError::Config)?;
    let tls = match &config.tls {
        Some(t) => Some(crate::tls::acceptor(t).map_err(ServeError::Config)?),
        None => None,
    };
    // A shared log's nodes claim each signed request in one place, so a request accepted by
    // one is refused by all (graven_auth::replay_claims); otherwise each node's own cache.
    let window = config.signature_window.as_secs();
    let http_sig = match &claims {
        Some(c) => {
            let claims = graven_auth::replay_claims::StoreClaims::new(c.clone())
                .map_err(|e| ServeError::Config(format!("a node id for the shared replay cache: {e}")))?;
            let sig = graven_auth::sigauth::SigAuth::shared(window, Arc::new(claims));
            metrics.set_replay_claims(sig.claim_counts());
            sig
        }
        None => graven_auth::sigauth::SigAuth::new(window),
    };
    let state = Arc::new(AppState {
        engine: engine.clone(),
        reader: Arc::new(Mutex::new(LogReader::on(source.clone()))),
        registry: registry.clone(),
        live: std::sync::RwLock::new(Arc::new(live)),
        denied_limiter: graven_auth::ratelimit::Limiter::new(config.denied_limits),
        admin_lock: tokio::sync::Mutex::new(()),
        metrics,
        origin: vkey.name().to_owned(),
        verifier_key: vkey.to_string(),
        max_body_bytes: config.max_body_bytes,
        body_timeout: config.body_timeout,
        index,
        http_sig,
        witnessing: witnessing.as_ref().map(|w| w.witnessing.clone()),
        witness_wait: config.witnessing.as_ref().map_or(Duration::ZERO, |w| w.wait),
        stamps,
        clock,
        source_seen: crate::source_ids::Seen::default(),
        draining: tokio::sync::watch::Sender::new(false),
    });

    let mut banner = Vec::new();
    if new_key {
        banner.push(format!("created a new log in {} with origin {}", log_dir.display(), vkey.name()));
    }
    banner.push(format!("verifier key: {vkey}"));
    banner.push(format!("admin credential: {}{}", token_path.display(), bootstrap.describe()));
    if let Some(store) = &store {
        let role = if engine.is_writer() { "writer" } else { "read replica" };
        banner.push(format!("storage: {} (this node: {role})", store.location()));
        banner.push(match state.http_sig.shared_location() {
            Some(at) => format!(
                "replay cache: shared by every node, claims in {at} (one object per signed request, kept until that location's lifecycle rule removes it)"
            ),
            None => "replay cache: this node only; a signed request replayed to another node within the window is not caught (set replay_claims, docs/scale-out.md)".into(),
        });
    }
    if config.public_read_path {
        banner.push("read path (/checkpoint, /tile, /v1/log) is public".into());
    }
    if let (Some(setup), Some(w)) = (&config.witnessing, &witnessing) {
        let names: Vec<String> =
            w.witnessing.status().into_iter().map(|s| format!("{} ({})", s.name, s.url)).collect();
        banner.push(format!("witnesses (policy {}): {}", setup.policy_path.display(), names.join(", ")));
    }
    if let Some(t) = &config.timestamping {
        banner.push(format!(
            "trusted time: {} (roots {}), at most one request every {}s",
            t.url,
            t.cert_path.display(),
            t.interval.as_secs()
        ));
    }
    banner.push(format!("tree size: {}", engine.committed().size));
    if let Some(t) = &config.tls {
        for ca in &t.client_cas {
            banner.push(format!(
                "client certificates ({:?}) checked against {}, which vouches for {}",
                t.client_auth,
                ca.file.display(),
                ca.trust_domains
            ));
        }
    }

    // Last-seen times live in memory; write them now and then, not on every request. On a
    // shared log only the writer writes them, so that a replica's write never makes an admin's
    // change on the writer fail its compare-and-swap.
    let flusher = {
        let registry = registry.clone();
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                if !engine.is_writer() {
                    continue;
                }
                let r = registry.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || r.flush()).await {
                    tracing::error!(error = %e, "writing last-seen times failed");
                }
            }
        })
    };
    // Denied records the rate limiter dropped are summed up in the log every few seconds.
    let summarizer = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(DENIED_SUMMARY_INTERVAL);
            loop {
                tick.tick().await;
                if let Err(e) = crate::http::audit::summarize_dropped(&state).await {
                    tracing::warn!(error = %e.detail, "could not log the summary of dropped denied records");
                }
            }
        })
    };
    // A shared registry changes on other nodes too; pick up their changes.
    let refresher = store.as_ref().map(|_| {
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                let r = registry.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || r.refresh()).await {
                    tracing::warn!(error = %e, "re-reading the shared identity registry failed");
                }
            }
        })
    });
    // Alerts: the rules on every committed event, and each webhook's deliveries.
    // Where each resumes is settled now, before any request is served.
    let size = engine.committed().size;
    let alert_state = data.join("alerts");
    let mark = crate::alerting::start_mark(&data, size)
        .map_err(io("keeping the alerts' watermark", &alert_state))?;
    let mut alerting = vec![tokio::spawn(crate::alerting::evaluate(state.clone(), data.to_path_buf(), mark))];
    for url in &config.alert_webhooks {
        let cursor = crate::alerting::start_cursor(&data, url, size)
            .map_err(io("keeping an alert webhook's cursor", &alert_state))?;
        alerting.push(tokio::spawn(crate::alerting::deliver(
            state.clone(),
            data.to_path_buf(),
            url.clone(),
            cursor,
        )));
    }
    Ok(Node {
        state,
        tls,
        bootstrap,
        banner,
        indexer,
        flusher,
        summarizer,
        refresher,
        witnessing,
        stamper,
        alerting,
    })
}

impl Node {
    /// What the router serves.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The TLS acceptor, when the node speaks HTTPS.
    pub fn tls(&self) -> Option<&crate::tls::TlsServer> {
        self.tls.as_ref()
    }

    /// Starts the drain (what SIGTERM does first): every live stream ends at once, and so does
    /// any stream opened from now on.
    pub fn begin_drain(&self) {
        self.state.draining.send_replace(true);
    }

    /// What start-up did about the bootstrap admin credential.
    pub fn bootstrap(&self) -> &graven_auth::registry::Bootstrap {
        &self.bootstrap
    }

    /// The lines `graven serve` prints at start, before the one naming its address.
    pub fn banner(&self) -> &[String] {
        &self.banner
    }

    /// The clean stop, once no more requests come (what SIGTERM does after the connections
    /// drained): the summary of dropped denied records, then the sequencer commits and answers
    /// everything accepted and stops (a shared log's writer gives up its lease), the search
    /// index is made durable, and the writer writes back last-seen times. Returns the final
    /// tree size.
    pub async fn stop(self) -> u64 {
        let Node { state, indexer, flusher, summarizer, refresher, witnessing, stamper, alerting, .. } = self;
        summarizer.abort();
        for t in &alerting {
            t.abort();
        }
        if let Some(w) = &witnessing {
            w.stop();
        }
        if let Some(s) = &stamper {
            s.abort();
        }
        if let Err(e) = crate::http::audit::summarize_dropped(&state).await {
            tracing::warn!(error = %e.detail, "could not log the summary of dropped denied records");
        }
        let engine = state.engine.clone();
        let was_writer = engine.is_writer();
        engine.shutdown();
        indexer.abort();
        let _ = indexer.await;
        // Indexing commits are made durable about once a second; make the rest durable now, so
        // a clean restart does not re-index them. (After a crash the index resumes from its
        // last durable size.)
        if let Err(e) = state.index.flush() {
            tracing::warn!(error = %e, "could not flush the search index; it will catch up on restart");
        }
        flusher.abort();
        if let Some(r) = refresher {
            r.abort();
        }
        // On a shared log only the writer writes the registry back.
        if was_writer && let Err(e) = state.registry.flush() {
            tracing::error!(error = %e, "writing last-seen times failed");
        }
        engine.committed().size
    }

    /// Stops as a killed process would, for tests of what a crash leaves: no summary, no
    /// flush of the index or of last-seen times. The sequencer still finishes the commit it
    /// is in (it holds the log's lock until it has stopped).
    #[cfg(feature = "testing")]
    pub(crate) async fn halt(self) {
        let Node { state, indexer, flusher, summarizer, refresher, witnessing, stamper, alerting, .. } = self;
        summarizer.abort();
        flusher.abort();
        for t in &alerting {
            t.abort();
        }
        if let Some(w) = &witnessing {
            w.stop();
        }
        if let Some(s) = &stamper {
            s.abort();
        }
        if let Some(r) = refresher {
            r.abort();
        }
        indexer.abort();
        let _ = indexer.await;
        state.engine.shutdown();
    }
}

/// The accept loop: a bounded number of connections, a deadline for request headers (so a
/// slow client cannot hold a connection by dribbling headers), and, on SIGTERM or SIGINT, the
/// drain: live streams end at once, requests in flight have until the drain deadline.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    config: &Config,
    node: &Node,
) -> std::io::Result<()> {
    let (header_timeout, tls) = (config.header_timeout, node.tls.clone());
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Over the connection limit: refuse at once rather than queue without bound.
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (router, tls, watcher) = (router.clone(), tls.clone(), graceful.watcher());
        tokio::spawn(async move {
            connection(stream, peer, tls.as_ref(), router, header_timeout, watcher).await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        drain_timeout_ms = config.drain_timeout.as_millis() as u64,
        "stopping: no new connections, live streams ended, requests in flight have until the drain deadline"
    );
    // Streams would never finish on their own; everything else is asked to (each connection
    // closes once its request is answered) and given until the deadline, so that the process
    // stops on its own well before a supervisor's SIGKILL.
    node.begin_drain();
    if tokio::time::timeout(config.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            drain_timeout_ms = config.drain_timeout.as_millis() as u64,
            "requests were still in flight at the drain deadline; stopping without them (events already accepted are still committed)"
        );
    }
    Ok(())
}

/// Serves one accepted connection until it closes or the server drains: the TLS handshake
/// first when `tls` is set (under the header deadline, so a client that stalls it holds
/// nothing), then HTTP/1.1 with a deadline for each request's headers. Any byte stream will
/// do: the accept loop hands it TCP connections, the in-process test harness in-memory ones.
pub(crate) async fn connection<S>(
    stream: S,
    peer: std::net::SocketAddr,
    tls: Option<&crate::tls::TlsServer>,
    router: axum::Router,
    header_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(tls) = tls else {
        serve_one(stream, peer, None, router, header_timeout, watcher).await;
        return;
    };
    let Ok(Ok(stream)) = tokio::time::timeout(header_timeout, tls.acceptor.accept(stream)).await else {
        return;
    };
    // The chain was verified in the handshake; read who it names, and whether a CA it chains
    // to vouches for that, once per connection.
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| tls.client_cas.client_cert(chain))
        .map(Arc::new);
    serve_one(stream, peer, cert, router, header_timeout, watcher).await;
}

/// Serves one connection (plain or TLS) until it closes or the server drains.
async fn serve_one<S>(
    stream: S,
    peer: std::net::SocketAddr,
    cert: Option<Arc<graven_auth::mtls::ClientCert>>,
    router: axum::Router,
    header_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
    // Each request learns its client's address (for denied records and rate limits) and the
    // client certificate the handshake verified, if any.
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(crate::http::Peer(peer.ip()));
        if let Some(c) = &cert {
            req.extensions_mut().insert(c.clone());
        }
        tower_service::Service::call(&mut router.clone(), req)
    });
    let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await;
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
