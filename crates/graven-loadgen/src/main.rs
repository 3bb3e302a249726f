//! Load generator for `graven serve`: the ingest path (`POST /v1/events`) and proof serving
//! (`GET /v1/proofs/inclusion`).
//!
//! Three modes:
//! - `bulk`: N keep-alive connections send NDJSON batches of B events until TOTAL events have
//!   been sent; every response must be 201 with one receipt line per event.
//! - `single`: N keep-alive connections each send one JSON event per request in a closed loop
//!   for S seconds (after a warm-up that is not counted).
//! - `proofs`: N keep-alive connections each ask for inclusion proofs of uniformly random
//!   indices in a closed loop for S seconds (after a warm-up). The tree size and root come
//!   from `GET /v1/log` at the start (its checkpoint must verify with the log's verifier key),
//!   every request is pinned to that tree size, and the first `--verify` proofs (then one in
//!   `--verify-every`) are checked against the root with `merkle::verify_inclusion`.
//!
//! Every response status is checked (non-201s are counted by status), receipts are counted,
//! and each request's latency (send to last response byte) goes into an HdrHistogram. With
//! `--server-pid`, the server's CPU time, peak RSS and disk writes over the measured window
//! are read from `/proc`, and `/metrics` is read before and after for commit counts.
//!
//! Credentials (`--auth`, for both modes; the output's `"auth"` field says which):
//! - `bearer` (default): an API key from `--token-file`, sent as `Authorization: Bearer`.
//! - `jwt`: a pre-minted JWT from `--jwt-file`, sent as `Authorization: Bearer` (OIDC federation).
//! - `httpsig`: every request is signed (RFC 9421, `graven_auth::httpsig::sign_request`, with
//!   `Content-Digest`) by the Ed25519 key in `--signing-key` (the file `graven key new-signing`
//!   writes), with a fresh `created` and a unique `nonce` per request so the replay cache takes
//!   each one. The signing happens before the request's latency clock starts.
//! - `mtls`: HTTPS (`https://` URL, server CA in `--ca`) with the client certificate
//!   `--client-cert`/`--client-key`; no `Authorization` header.
//!
//! `--client-signed --signing-key <file>` signs every generated event (version 2,
//! `graven_core::event_sig::sign_event_v2`, a unique id each), so the server checks client
//! signatures (one batch verification per NDJSON request): bulk signs every batch before the
//! run; single signs each request's event just before sending it, outside the latency clock.
//!
//! Prints one JSON line of results on stdout. Refuses any target that is not a loopback
//! address.

mod witness;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use clap::Parser;
use ed25519_dalek::SigningKey;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(name = "graven-loadgen", about = "Load generator for graven serve's ingest and proof paths")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(clap::Subcommand, Debug)]
enum Mode {
    /// NDJSON batches: --connections N --batch B --events TOTAL.
    Bulk(BulkArgs),
    /// One event per request, closed loop, for --duration-secs.
    Single(SingleArgs),
    /// Inclusion proofs of random indices, closed loop, for --duration-secs.
    Proofs(ProofsArgs),
    /// A C2SP witness's add-checkpoint throughput: --origins concurrent logs.
    Witness(witness::WitnessArgs),
    /// The --log ORIGIN=VKEY flags for the logs `witness` writes (a JSON array).
    WitnessLogs(witness::WitnessLogsArgs),
}

#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// Server base URL, e.g. http://127.0.0.1:7878 (loopback only).
    #[arg(long)]
    url: String,
    /// How requests are authenticated.
    #[arg(long, value_enum, default_value_t = AuthKind::Bearer)]
    auth: AuthKind,
    /// --auth bearer: file holding the API key (e.g. the server's <data>/admin.token).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// --auth jwt: file holding a JWT, sent as a bearer token.
    #[arg(long)]
    jwt_file: Option<PathBuf>,
    /// --auth httpsig and --client-signed: file holding the Ed25519 secret key (standard
    /// base64 of the 32-byte seed, as `graven key new-signing` writes it).
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// The registered public key's id; derived from --signing-key when absent (and checked
    /// against it when given).
    #[arg(long)]
    key_id: Option<String>,
    /// --auth mtls: the client certificate chain (PEM).
    #[arg(long)]
    client_cert: Option<PathBuf>,
    /// --auth mtls: the client certificate's private key (PEM).
    #[arg(long)]
    client_key: Option<PathBuf>,
    /// https:// URLs: the CA certificate(s) that sign the server's certificate (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Sign every event with --signing-key (client-signed events).
    #[arg(long)]
    client_signed: bool,
    /// Concurrent keep-alive connections [default: 8; proofs: 64].
    #[arg(long)]
    connections: Option<usize>,
    /// Client runtime threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server's process id: report its CPU time, peak RSS and disk writes over the run.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seed for the generated events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    /// API key (`Authorization: Bearer gvn_...`) from --token-file.
    Bearer,
    /// A JWT from --jwt-file as the bearer token (OIDC federation).
    Jwt,
    /// RFC 9421 signature over every request, with --signing-key.
    Httpsig,
    /// A client certificate over HTTPS.
    Mtls,
}

impl Common {
    fn connections(&self, default: usize) -> usize {
        self.connections.unwrap_or(default)
    }
}

impl AuthKind {
    fn name(self) -> &'static str {
        match self {
            AuthKind::Bearer => "bearer",
            AuthKind::Jwt => "jwt",
            AuthKind::Httpsig => "httpsig",
            AuthKind::Mtls => "mtls",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
struct BulkArgs {
    #[command(flatten)]
    common: Common,
    /// Events per request.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Events to send in total.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Distinct pre-built request bodies to cycle through.
    #[arg(long, default_value_t = 8)]
    pool: usize,
    /// `each`: a receipt per event (the server's default); `range`: one range receipt per
    /// batch (`?receipt=range`, docs/receipts.md).
    #[arg(long, default_value = "each", value_parser = ["each", "range"])]
    receipt: String,
    /// With --server-pid: after the run, wait up to this long for the server to go idle
    /// (its search index catching up) and report that time and CPU too.
    #[arg(long, default_value_t = 300)]
    drain_max_secs: u64,
}

#[derive(clap::Args, Debug, Clone)]
struct SingleArgs {
    #[command(flatten)]
    common: Common,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Warm-up before measuring, in seconds (requests run but are not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// Distinct pre-built events to cycle through.
    #[arg(long, default_value_t = 8192)]
    pool: usize,
}

#[derive(clap::Args, Debug, Clone)]
struct ProofsArgs {
    #[command(flatten)]
    common: Common,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Warm-up before measuring, in seconds (requests run but are not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// Verify the first this many proofs (warm-up included) against the checkpoint's root.
    #[arg(long, default_value_t = 100)]
    verify: u64,
    /// After the first --verify, verify one proof in this many (0: no more).
    #[arg(long, default_value_t = 100)]
    verify_every: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.mode {
        Mode::Bulk(a) => a.common.threads,
        Mode::Single(a) => a.common.threads,
        Mode::Proofs(a) => a.common.threads,
        Mode::Witness(_) | Mode::WitnessLogs(_) => 1,
    };
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?
    };
    let out = rt.block_on(async move {
        match cli.mode {
            Mode::Bulk(a) => bulk(a).await,
            Mode::Single(a) => single(a).await,
            Mode::Proofs(a) => proofs(a).await,
            Mode::Witness(a) => witness::run(a).await,
            Mode::WitnessLogs(a) => witness::logs(a),
        }
    })?;
    println!("{out}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Events

/// splitmix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const ACTIONS: &[&str] = &[
    "deployment.update",
    "deployment.create",
    "secret.read",
    "role.binding.grant",
    "bucket.policy.update",
    "api_key.rotate",
    "db.snapshot.export",
    "user.session.create",
];
const SERVICES: &[&str] =
    &["payments-api", "checkout-web", "ledger-worker", "identity-svc", "search-indexer", "billing-cron"];
const TEAMS: &[&str] = &["payments", "storefront", "platform", "identity", "data"];
const REASONS: &[&str] = &[
    "scale up for evening peak",
    "patch CVE-2026-1234",
    "scheduled key rotation",
    "hotfix: raise pool limit",
];

/// One client event of about 450 bytes, with a realistic nested `details` object.
fn make_event(seq: u64, rng: &mut Rng) -> Vec<u8> {
    let svc = rng.pick(SERVICES);
    let outcome = match rng.below(20) {
        0 => "failure",
        1 => "denied",
        _ => "success",
    };
    let from = 2 + rng.below(6);
    let ev = json!({
        "action": rng.pick(ACTIONS),
        "outcome": outcome,
        "occurred_at": format!(
            "2026-11-26T{:02}:{:02}:{:02}.{:06}Z",
            rng.below(24), rng.below(60), rng.below(60), rng.below(1_000_000)
        ),
        "request_id": format!("req-{:016x}", rng.next()),
        "resource": {"type": "k8s.deployment", "id": format!("prod/{svc}-{}", rng.below(100))},
        "source": {
            "ip": format!("198.51.100.{}", rng.below(255)),
            "user_agent": "kubectl/1.31.2",
        },
        "details": {
            "seq": seq,
            "replicas": {"from": from, "to": from + 1 + rng.below(4)},
            "image": format!("registry.example.com/{svc}:v2.{}.{}", rng.below(40), rng.below(10)),
            "change_ticket": format!("CHG-{:06}", rng.below(1_000_000)),
            "reason": rng.pick(REASONS),
            "labels": {"team": rng.pick(TEAMS)},
        },
    });
    ev.to_string().into_bytes()
}

/// A pre-built NDJSON body and where each line ends (exclusive, after its newline).
struct BatchBody {
    bytes: Bytes,
    line_ends: Vec<usize>,
}

/// [`make_event`], client-signed with `signer` when given.
fn make_event_signed(seq: u64, rng: &mut Rng, signer: Option<&SigningKey>) -> anyhow::Result<Vec<u8>> {
    let ev = make_event(seq, rng);
    match signer {
        Some(k) => sign_now(k, &ev, seq),
        None => Ok(ev),
    }
}

/// Signs `ev` (version 2) with an id unique to this run and `seq`, and the current time: the
/// server accepts each signed event once, within its time window.
fn sign_now(k: &SigningKey, ev: &[u8], seq: u64) -> anyhow::Result<Vec<u8>> {
    static RUN: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let run = RUN.get_or_init(|| now.as_nanos());
    let id = format!("lg-{run:x}-{seq}");
    graven_core::event_sig::sign_event_v2(k, ev, &id, now.as_secs() as i64).context("signing an event")
}

fn make_batch(
    first_seq: u64,
    n: usize,
    rng: &mut Rng,
    signer: Option<&SigningKey>,
) -> anyhow::Result<BatchBody> {
    let mut buf = Vec::with_capacity(n * if signer.is_some() { 640 } else { 480 });
    let mut line_ends = Vec::with_capacity(n);
    for i in 0..n {
        buf.extend_from_slice(&make_event_signed(first_seq + i as u64, rng, signer)?);
        buf.push(b'\n');
        line_ends.push(buf.len());
    }
    Ok(BatchBody { bytes: Bytes::from(buf), line_ends })
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// How each request proves who sends it.
enum Auth {
    /// `Authorization` as is (API key or JWT as a bearer token).
    Header(HeaderValue),
    /// RFC 9421: sign each request; nonces are `<prefix>-<counter>`.
    HttpSig { key: Box<SigningKey>, key_id: String, nonce_prefix: String, counter: AtomicU64 },
    /// The TLS client certificate does it.
    None,
}

struct Target {
    addr: SocketAddr,
    authority: String,
    base_path: String,
    auth: Auth,
    tls: Option<(tokio_rustls::TlsConnector, rustls_pki_types::ServerName<'static>)>,
}

/// Checks that the credential options fit `--auth` (and nothing unused is given, which is
/// usually a mistake in a benchmark script).
fn validate(c: &Common) -> anyhow::Result<()> {
    let only = |given: bool, flag: &str, for_what: &str| -> anyhow::Result<()> {
        if given {
            bail!("{flag} is only used with {for_what} (--auth is {})", c.auth.name());
        }
        Ok(())
    };
    let need = |given: bool, flag: &str| -> anyhow::Result<()> {
        if !given {
            bail!("--auth {} needs {flag}", c.auth.name());
        }
        Ok(())
    };
    let https = c.url.starts_with("https://");
    if !https && !c.url.starts_with("http://") {
        bail!("--url must start with http:// or https:// (got {})", c.url);
    }
    match c.auth {
        AuthKind::Bearer => need(c.token_file.is_some(), "--token-file")?,
        AuthKind::Jwt => need(c.jwt_file.is_some(), "--jwt-file")?,
        AuthKind::Httpsig => need(c.signing_key.is_some(), "--signing-key")?,
        AuthKind::Mtls => {
            need(c.client_cert.is_some() && c.client_key.is_some(), "--client-cert and --client-key")?;
            need(https, "an https:// --url")?;
        }
    }
    only(c.auth != AuthKind::Bearer && c.token_file.is_some(), "--token-file", "--auth bearer")?;
    only(c.auth != AuthKind::Jwt && c.jwt_file.is_some(), "--jwt-file", "--auth jwt")?;
    only(
        c.auth != AuthKind::Mtls && (c.client_cert.is_some() || c.client_key.is_some()),
        "--client-cert/--client-key",
        "--auth mtls",
    )?;
    let signs = c.auth == AuthKind::Httpsig || c.client_signed;
    only(!signs && c.signing_key.is_some(), "--signing-key", "--auth httpsig or --client-signed")?;
    only(c.signing_key.is_none() && c.key_id.is_some(), "--key-id", "--signing-key")?;
    if c.client_signed && c.signing_key.is_none() {
        bail!("--client-signed needs --signing-key");
    }
    if https && c.ca.is_none() {
        bail!("an https:// --url needs --ca (the CA that signs the server's certificate)");
    }
    only(!https && c.ca.is_some(), "--ca", "an https:// --url")?;
    Ok(())
}

/// Reads a secret key file as `graven key new-signing` writes it, and the key id of its public
/// key, which must equal `expected` when given.
fn load_signing_key(path: &std::path::Path, expected: Option<&str>) -> anyhow::Result<(SigningKey, String)> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let seed = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .with_context(|| format!("{}: not base64", path.display()))?;
    let seed: [u8; 32] =
        seed.try_into().map_err(|_| anyhow!("{}: an Ed25519 secret key is 32 bytes", path.display()))?;
    let key = SigningKey::from_bytes(&seed);
    let id = graven_core::event_sig::key_id(key.verifying_key().as_bytes());
    if let Some(e) = expected
        && e != id
    {
        bail!("--key-id {e} is not the id of --signing-key's public key ({id})");
    }
    Ok((key, id))
}

fn tls_connector(c: &Common) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let ca = c.ca.as_ref().ok_or_else(|| anyhow!("--ca is required for https://"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))? {
        roots.add(cert.with_context(|| format!("{}: bad PEM", ca.display()))?)?;
    }
    let builder =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
    let cfg = match (&c.client_cert, &c.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("reading {}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{}: bad PEM", cert.display()))?;
            let key =
                PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(cfg)))
}

/// A nonce prefix that differs between processes (time and pid), so two loadgen runs against
/// one server do not collide in its replay cache.
fn nonce_prefix() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{:x}{:x}", t.as_nanos() as u64, std::process::id())
}

fn make_auth(c: &Common) -> anyhow::Result<Auth> {
    let read = |p: &PathBuf| -> anyhow::Result<HeaderValue> {
        let token = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        HeaderValue::from_str(&format!("Bearer {}", token.trim())).context("the token is not a header value")
    };
    Ok(match (c.auth, &c.token_file, &c.jwt_file, &c.signing_key) {
        (AuthKind::Bearer, Some(p), _, _) | (AuthKind::Jwt, _, Some(p), _) => Auth::Header(read(p)?),
        (AuthKind::Httpsig, _, _, Some(p)) => {
            let (key, key_id) = load_signing_key(p, c.key_id.as_deref())?;
            Auth::HttpSig {
                key: Box::new(key),
                key_id,
                nonce_prefix: nonce_prefix(),
                counter: AtomicU64::new(0),
            }
        }
        (AuthKind::Mtls, ..) => Auth::None,
        _ => bail!("--auth {} is missing its credential", c.auth.name()),
    })
}

/// The key that signs events with --client-signed.
fn event_signer(c: &Common) -> anyhow::Result<Option<SigningKey>> {
    match (&c.signing_key, c.client_signed) {
        (Some(p), true) => Ok(Some(load_signing_key(p, c.key_id.as_deref())?.0)),
        _ => Ok(None),
    }
}

async fn target(common: &Common) -> anyhow::Result<Arc<Target>> {
    validate(common)?;
    let https = common.url.starts_with("https://");
    let rest = common.url.split_once("://").map_or("", |(_, r)| r);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host(authority).await.with_context(|| format!("resolving {authority}"))?.collect();
    let addr = addrs.iter().copied().find(|a| a.ip().is_loopback()).ok_or_else(|| {
        anyhow!("{authority} is not a loopback address; this tool only targets this machine")
    })?;
    let tls = if https {
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| anyhow!("{host} is not a TLS server name: {e}"))?;
        Some((tls_connector(common)?, name))
    } else {
        None
    };
    Ok(Arc::new(Target {
        addr,
        authority: authority.to_owned(),
        base_path: path.to_owned(),
        auth: make_auth(common)?,
        tls,
    }))
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(t: &Target) -> anyhow::Result<Sender> {
    let stream =
        tokio::net::TcpStream::connect(t.addr).await.with_context(|| format!("connecting to {}", t.addr))?;
    stream.set_nodelay(true)?;
    let sender = match &t.tls {
        None => {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender
        }
        Some((connector, name)) => {
            let tls = connector.connect(name.clone(), stream).await.context("TLS handshake")?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            sender
        }
    };
    Ok(sender)
}

/// Builds a request; with `authed`, adds the credential (for --auth httpsig, signs it).
fn build(
    t: &Target,
    method: Method,
    path: &str,
    ctype: Option<&'static str>,
    body: Bytes,
    authed: bool,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let full_path = format!("{}{path}", t.base_path);
    let mut req =
        Request::builder().method(method.clone()).uri(&full_path).header(HOST, t.authority.as_str());
    if let Some(c) = ctype {
        req = req.header(CONTENT_TYPE, c);
    }
    if authed {
        match &t.auth {
            Auth::Header(h) => req = req.header(AUTHORIZATION, h.clone()),
            Auth::HttpSig { key, key_id, nonce_prefix, counter } => {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let nonce = format!("{nonce_prefix}-{n}");
                let created = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                let (p, q) =
                    full_path.split_once('?').map_or((full_path.as_str(), None), |(p, q)| (p, Some(q)));
                let parts = graven_auth::httpsig::RequestParts {
                    method: method.as_str(),
                    path: p,
                    query: q,
                    ..Default::default()
                };
                let h = graven_auth::httpsig::sign_request(key, key_id, &parts, &body, created, Some(&nonce));
                req = req
                    .header("content-digest", h.content_digest)
                    .header("signature-input", h.signature_input)
                    .header("signature", h.signature);
            }
            Auth::None => {}
        }
    }
    Ok(req.body(Full::new(body))?)
}

async fn exchange(sender: &mut Sender, req: Request<Full<Bytes>>) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

// ---------------------------------------------------------------------------------------------
// Results

struct Stats {
    requests: u64,
    ok_requests: u64,
    events_sent: u64,
    events_acked: u64,
    receipt_mismatches: u64,
    bytes_sent: u64,
    bytes_received: u64,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    first_error: Option<String>,
    hist: Histogram<u64>,
}

impl Stats {
    fn new() -> anyhow::Result<Self> {
        Ok(Stats {
            requests: 0,
            ok_requests: 0,
            events_sent: 0,
            events_acked: 0,
            receipt_mismatches: 0,
            bytes_sent: 0,
            bytes_received: 0,
            statuses: BTreeMap::new(),
            transport_errors: 0,
            first_error: None,
            // Microseconds, up to 10 minutes, 3 significant digits.
            hist: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        })
    }

    fn merge(&mut self, o: Stats) -> anyhow::Result<()> {
        self.requests += o.requests;
        self.ok_requests += o.ok_requests;
        self.events_sent += o.events_sent;
        self.events_acked += o.events_acked;
        self.receipt_mismatches += o.receipt_mismatches;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        for (k, v) in o.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        self.transport_errors += o.transport_errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.hist.add(&o.hist)?;
        Ok(())
    }

    fn error(&mut self, e: String) {
        self.transport_errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    fn record(&mut self, status: StatusCode, lat: Duration, body_sent: usize, body: &Bytes) {
        self.record_expecting(StatusCode::CREATED, status, lat, body_sent, body);
    }

    /// [`Stats::record`] for a request whose success is `expected`.
    fn record_expecting(
        &mut self,
        expected: StatusCode,
        status: StatusCode,
        lat: Duration,
        body_sent: usize,
        body: &Bytes,
    ) {
        self.requests += 1;
        self.bytes_sent += body_sent as u64;
        self.bytes_received += body.len() as u64;
        *self.statuses.entry(status.as_u16()).or_default() += 1;
        let _ = self.hist.record((lat.as_micros() as u64).max(1));
        if status != expected && self.first_error.is_none() {
            self.first_error =
                Some(format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])));
        }
    }

    fn latency_ms(&self) -> serde_json::Value {
        let q = |p: f64| self.hist.value_at_quantile(p) as f64 / 1000.0;
        json!({
            "p50": q(0.50), "p90": q(0.90), "p99": q(0.99), "p99_9": q(0.999),
            "max": self.hist.max() as f64 / 1000.0, "mean": self.hist.mean() / 1000.0,
        })
    }

    fn non_201(&self) -> u64 {
        self.non(201)
    }

    fn non(&self, ok: u16) -> u64 {
        self.statuses.iter().filter(|(k, _)| **k != ok).map(|(_, v)| v).sum()
    }
}

/// Counts receipt lines in an NDJSON response (a last line without a newline counts too).
fn count_lines(body: &[u8]) -> u64 {
    let n = body.iter().filter(|&&b| b == b'\n').count() as u64;
    if body.last().is_some_and(|&b| b != b'\n') { n + 1 } else { n }
}

// ---------------------------------------------------------------------------------------------
// /proc and /metrics probes

#[derive(Debug, Clone, Default)]
struct Probe {
    at: Option<Instant>,
    server_cpu_s: Option<f64>,
    server_hwm_kb: Option<u64>,
    server_rss_kb: Option<u64>,
    server_write_bytes: Option<u64>,
    self_cpu_s: Option<f64>,
    machine_busy: Option<(u64, u64)>,
    metrics: BTreeMap<String, f64>,
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

fn proc_cpu_s(pid: &str, tck: f64) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / tck)
}

fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

fn proc_write_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    s.lines().find(|l| l.starts_with("write_bytes:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// (busy jiffies, total jiffies) over all CPUs.
fn machine_jiffies() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?;
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// Unlabelled samples, and the object store's request counts (`graven_store_requests{op="get"}`).
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || (line.contains('{') && !line.starts_with("graven_store_requests{")) {
            continue;
        }
        let mut it = line.split_whitespace();
        if let (Some(k), Some(v)) = (it.next(), it.next())
            && let Ok(v) = v.parse::<f64>()
        {
            m.insert(k.to_owned(), v);
        }
    }
    m
}

/// Probes at the start and the end of a measured window, `warm` to `end`.
fn probes_at(
    t: Arc<Target>,
    pid: Option<u32>,
    tck: f64,
    warm: Instant,
    end: Instant,
) -> tokio::task::JoinHandle<(Probe, Probe)> {
    tokio::spawn(async move {
        tokio::time::sleep_until(warm.into()).await;
        let b = probe(&t, pid, tck).await;
        tokio::time::sleep_until(end.into()).await;
        let e = probe(&t, pid, tck).await;
        (b, e)
    })
}

async fn probe(t: &Target, pid: Option<u32>, tck: f64) -> Probe {
    let mut p = Probe {
        at: Some(Instant::now()),
        self_cpu_s: proc_cpu_s("self", tck),
        machine_busy: machine_jiffies(),
        ..Probe::default()
    };
    if let Some(pid) = pid {
        p.server_cpu_s = proc_cpu_s(&pid.to_string(), tck);
        p.server_hwm_kb = proc_status_kb(pid, "VmHWM:");
        p.server_rss_kb = proc_status_kb(pid, "VmRSS:");
        p.server_write_bytes = proc_write_bytes(pid);
    }
    // /metrics is public: no credential (and no signature to spend a nonce on).
    if let Ok(mut s) = connect(t).await
        && let Ok(req) = build(t, Method::GET, "/metrics", None, Bytes::new(), false)
        && let Ok((st, body)) = exchange(&mut s, req).await
        && st.is_success()
    {
        p.metrics = parse_metrics(&String::from_utf8_lossy(&body));
    }
    p
}

fn delta(a: &Probe, b: &Probe) -> serde_json::Value {
    let secs = match (a.at, b.at) {
        (Some(x), Some(y)) => y.duration_since(x).as_secs_f64(),
        _ => 0.0,
    };
    let sub = |x: Option<f64>, y: Option<f64>| x.zip(y).map(|(x, y)| y - x);
    let server_cpu = sub(a.server_cpu_s, b.server_cpu_s);
    let self_cpu = sub(a.self_cpu_s, b.self_cpu_s);
    let busy = a.machine_busy.zip(b.machine_busy).map(|((b0, t0), (b1, t1))| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
        if t1 > t0 { (b1 - b0) as f64 / (t1 - t0) as f64 * 100.0 * cores } else { 0.0 }
    });
    let m = |k: &str| -> Option<f64> { Some(b.metrics.get(k)? - a.metrics.get(k)?) };
    let store_requests: serde_json::Map<String, serde_json::Value> = b
        .metrics
        .iter()
        .filter_map(|(k, v)| {
            let op = k.strip_prefix("graven_store_requests{op=\"")?.strip_suffix("\"}")?;
            Some((op.to_owned(), json!(v - a.metrics.get(k).copied().unwrap_or(0.0))))
        })
        .collect();
    let commits = m("graven_batch_events_count");
    let committed = m("graven_batch_events_sum");
    let commit_s = m("graven_commit_seconds_sum");
    json!({
        "window_s": secs,
        "server_cpu_s": server_cpu,
        "server_cpu_pct": server_cpu.map(|c| if secs > 0.0 { c / secs * 100.0 } else { 0.0 }),
        "client_cpu_pct": self_cpu.map(|c| if secs > 0.0 { c / secs * 100.0 } else { 0.0 }),
        "machine_busy_pct_of_one_core": busy,
        "server_vmhwm_kb": b.server_hwm_kb,
        "server_vmrss_kb": b.server_rss_kb,
        "server_disk_write_bytes": a.server_write_bytes.zip(b.server_write_bytes).map(|(x, y)| y - x),
        "commits": commits,
        "events_per_commit": commits.zip(committed).map(|(c, e)| if c > 0.0 { e / c } else { 0.0 }),
        "commit_seconds_mean_ms": commits.zip(commit_s).map(|(c, s)| if c > 0.0 { s / c * 1000.0 } else { 0.0 }),
        "commit_busy_pct": commit_s.map(|s| if secs > 0.0 { s / secs * 100.0 } else { 0.0 }),
        "tree_size": b.metrics.get("graven_tree_size"),
        "events_committed": m("graven_events_committed_total"),
        "store_requests": if store_requests.is_empty() { serde_json::Value::Null } else { store_requests.into() },
    })
}

// ---------------------------------------------------------------------------------------------
// bulk

/// The leaf hashes of a range receipt (0 if it is not one).
fn count_leaf_hashes(resp: &[u8]) -> u64 {
    serde_json::from_slice::<graven_api::RangeReceipt>(resp).map_or(0, |r| r.leaf_hashes.len() as u64)
}

async fn bulk(a: BulkArgs) -> anyhow::Result<serde_json::Value> {
    let range = a.receipt == "range";
    let connections = a.common.connections(8);
    if a.batch == 0 || a.events == 0 || connections == 0 {
        bail!("--batch, --events and --connections must be at least 1");
    }
    let t = target(&a.common).await?;
    let signer = event_signer(&a.common)?;
    let tck = clk_tck();
    let mut rng = Rng(a.common.seed);
    // Signed events are accepted once each: then every request needs its own batch.
    let pool_n = if signer.is_some() {
        a.events.div_ceil(a.batch as u64) as usize
    } else {
        a.pool.max(1).min(a.events.div_ceil(a.batch as u64) as usize)
    };
    let pool: Arc<Vec<BatchBody>> = Arc::new(
        (0..pool_n)
            .map(|k| {
                make_batch((k * a.batch) as u64, a.batch.min(a.events as usize), &mut rng, signer.as_ref())
            })
            .collect::<anyhow::Result<_>>()?,
    );
    let (ev_bytes, ev_n) =
        pool.iter().fold((0usize, 0usize), |(b, n), p| (b + p.bytes.len(), n + p.line_ends.len()));
    let mean_event_bytes = ev_bytes as f64 / ev_n.max(1) as f64 - 1.0;
    let nreq = a.events.div_ceil(a.batch as u64);
    let next = Arc::new(AtomicU64::new(0));

    let before = probe(&t, a.common.server_pid, tck).await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (t, pool, next) = (t.clone(), pool.clone(), next.clone());
        let (batch, total) = (a.batch as u64, a.events);
        tasks.push(tokio::spawn(async move {
            let mut st = Stats::new()?;
            let mut sender: Option<Sender> = None;
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= nreq {
                    break;
                }
                let n = batch.min(total - k * batch) as usize;
                let p = &pool[(k as usize) % pool.len()];
                let body = p.bytes.slice(..p.line_ends[n - 1]);
                let len = body.len();
                st.events_sent += n as u64;
                if sender.is_none() {
                    match connect(&t).await {
                        Ok(s) => sender = Some(s),
                        Err(e) => {
                            st.error(format!("{e:#}"));
                            continue;
                        }
                    }
                }
                let Some(s) = sender.as_mut() else { continue };
                let path = if range { "/v1/events?receipt=range" } else { "/v1/events" };
                let req = build(&t, Method::POST, path, Some("application/x-ndjson"), body, true)?;
                let t0 = Instant::now();
                match exchange(s, req).await {
                    Ok((status, resp)) => {
                        st.record(status, t0.elapsed(), len, &resp);
                        if status == StatusCode::CREATED {
                            st.ok_requests += 1;
                            let lines = if range { count_leaf_hashes(&resp) } else { count_lines(&resp) };
                            if lines != n as u64 {
                                st.receipt_mismatches += 1;
                            }
                            st.events_acked += lines.min(n as u64);
                        }
                    }
                    Err(e) => {
                        st.error(format!("{e:#}"));
                        sender = None;
                    }
                }
            }
            anyhow::Ok(st)
        }));
    }
    let mut total = Stats::new()?;
    for task in tasks {
        total.merge(task.await??)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = probe(&t, a.common.server_pid, tck).await;
    // The search index is built behind the log, off the request path: wait until the server
    // is idle again, so the CPU it spends per event includes catching up.
    let drain = match a.common.server_pid {
        Some(pid) => {
            let pid_s = pid.to_string();
            let t0 = Instant::now();
            let mut last = proc_cpu_s(&pid_s, tck).unwrap_or(0.0);
            let mut quiet = 0;
            while t0.elapsed() < Duration::from_secs(a.drain_max_secs) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = proc_cpu_s(&pid_s, tck).unwrap_or(0.0);
                // Under 10 % of a core for two samples in a row counts as idle.
                quiet = if now - last < 0.025 { quiet + 1 } else { 0 };
                last = now;
                if quiet >= 2 {
                    break;
                }
            }
            let drained = probe(&t, a.common.server_pid, tck).await;
            // The last half second was idle: do not count it.
            let drain_s = (t0.elapsed().as_secs_f64() - 0.5).max(0.0);
            let cpu = before.server_cpu_s.zip(drained.server_cpu_s).map(|(x, y)| y - x);
            json!({
                "drain_s": drain_s,
                "server_cpu_s_incl_drain": cpu,
                "server_cpu_us_per_event_incl_drain": cpu.map(|c| c * 1e6 / total.events_acked.max(1) as f64),
                "events_per_s_incl_drain": total.events_acked as f64 / (elapsed + drain_s),
                "server_vmhwm_kb_after_drain": drained.server_hwm_kb,
            })
        }
        None => serde_json::Value::Null,
    };
    Ok(json!({
        "mode": "bulk",
        "auth": a.common.auth.name(),
        "client_signed": a.common.client_signed,
        "connections": connections,
        "batch": a.batch,
        "events_requested": a.events,
        "events_sent": total.events_sent,
        "events_acked": total.events_acked,
        "mean_client_event_bytes": mean_event_bytes,
        "elapsed_s": elapsed,
        "events_per_s": total.events_acked as f64 / elapsed,
        "request_mb_per_s": total.bytes_sent as f64 / elapsed / 1e6,
        "response_mb_per_s": total.bytes_received as f64 / elapsed / 1e6,
        "response_bytes_per_event": total.bytes_received as f64 / total.events_acked.max(1) as f64,
        "requests": total.requests,
        "non_201": total.non_201(),
        "statuses": total.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "receipt_mismatches": total.receipt_mismatches,
        "transport_errors": total.transport_errors,
        "first_error": total.first_error,
        "request_latency_ms": total.latency_ms(),
        "server": delta(&before, &after),
        "drain": drain,
    }))
}

// ---------------------------------------------------------------------------------------------
// single

async fn single(a: SingleArgs) -> anyhow::Result<serde_json::Value> {
    let connections = a.common.connections(8);
    if connections == 0 || a.duration_secs <= 0.0 {
        bail!("--connections and --duration-secs must be positive");
    }
    let t = target(&a.common).await?;
    let signer = event_signer(&a.common)?;
    let tck = clk_tck();
    let mut rng = Rng(a.common.seed);
    // Unsigned here; with a signer, each request signs its event afresh (outside the latency
    // clock), since a signed event is accepted once.
    let pool: Arc<Vec<Bytes>> =
        Arc::new((0..a.pool.max(1)).map(|i| Bytes::from(make_event(i as u64, &mut rng))).collect());
    let signer = signer.map(Arc::new);
    let mean_event_bytes = pool.iter().map(Bytes::len).sum::<usize>() as f64 / pool.len() as f64;
    let start = Instant::now();
    let warm = start + Duration::from_secs_f64(a.warmup_secs.max(0.0));
    let end = warm + Duration::from_secs_f64(a.duration_secs);

    // Probes at the start and end of the measured window.
    let probe_task = probes_at(t.clone(), a.common.server_pid, tck, warm, end);

    let mut tasks = Vec::new();
    for c in 0..connections {
        let (t, pool, signer) = (t.clone(), pool.clone(), signer.clone());
        tasks.push(tokio::spawn(async move {
            let mut st = Stats::new()?;
            let mut sender: Option<Sender> = None;
            let mut i = c * 7919;
            let mut sent = 0u64;
            while Instant::now() < end {
                if sender.is_none() {
                    match connect(&t).await {
                        Ok(s) => sender = Some(s),
                        Err(e) => {
                            st.error(format!("{e:#}"));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let Some(s) = sender.as_mut() else { continue };
                let mut body = pool[i % pool.len()].clone();
                i += 1;
                if let Some(k) = &signer {
                    sent += 1;
                    body = Bytes::from(sign_now(k, &body, (c as u64) << 40 | sent)?);
                }
                let len = body.len();
                let req = build(&t, Method::POST, "/v1/events", Some("application/json"), body, true)?;
                let t0 = Instant::now();
                let r = exchange(s, req).await;
                let done = Instant::now();
                let counted = done >= warm && done <= end;
                match r {
                    Ok((status, resp)) => {
                        if counted {
                            st.events_sent += 1;
                            st.record(status, done - t0, len, &resp);
                            if status == StatusCode::CREATED {
                                st.ok_requests += 1;
                                // A receipt is one JSON object carrying its index.
                                if resp.starts_with(b"{") && resp.windows(8).any(|w| w == b"\"index\":") {
                                    st.events_acked += 1;
                                } else {
                                    st.receipt_mismatches += 1;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        if counted {
                            st.error(format!("{e:#}"));
                        }
                        sender = None;
                    }
                }
            }
            anyhow::Ok(st)
        }));
    }
    let mut total = Stats::new()?;
    for task in tasks {
        total.merge(task.await??)?;
    }
    let (before, after) = probe_task.await?;
    let window = a.duration_secs;
    Ok(json!({
        "mode": "single",
        "auth": a.common.auth.name(),
        "client_signed": a.common.client_signed,
        "connections": connections,
        "duration_s": window,
        "warmup_s": a.warmup_secs,
        "mean_client_event_bytes": mean_event_bytes,
        "events_acked": total.events_acked,
        "events_per_s": total.events_acked as f64 / window,
        "requests": total.requests,
        "request_mb_per_s": total.bytes_sent as f64 / window / 1e6,
        "response_mb_per_s": total.bytes_received as f64 / window / 1e6,
        "non_201": total.non_201(),
        "statuses": total.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "receipt_mismatches": total.receipt_mismatches,
        "transport_errors": total.transport_errors,
        "first_error": total.first_error,
        "latency_ms": total.latency_ms(),
        "server": delta(&before, &after),
    }))
}

// ---------------------------------------------------------------------------------------------
// proofs

/// The log as `GET /v1/log` describes it, its checkpoint verified with its verifier key.
struct LogHead {
    size: u64,
    root: graven_core::Hash,
}

async fn log_head(t: &Target) -> anyhow::Result<LogHead> {
    let mut s = connect(t).await?;
    let req = build(t, Method::GET, "/v1/log", None, Bytes::new(), true)?;
    let (status, body) = exchange(&mut s, req).await?;
    if status != StatusCode::OK {
        bail!("GET /v1/log: HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
    }
    let v: graven_api::LogInfo =
        serde_json::from_slice(&body).context("GET /v1/log: not the log's description")?;
    let size = v.tree_size;
    let root = graven_core::Hash::from_base64(&v.root).map_err(|e| anyhow!("bad root: {e:?}"))?;
    let vkey = graven_core::note::VerifierKey::parse(&v.verifier_key)
        .map_err(|e| anyhow!("GET /v1/log: bad verifier_key: {e:?}"))?;
    let cp = graven_core::checkpoint::VerifiedCheckpoint::open(v.checkpoint.as_bytes(), &vkey, &v.origin)
        .map_err(|e| anyhow!("GET /v1/log: the checkpoint does not verify: {e:?}"))?;
    if cp.size().0 != size || cp.root() != root {
        bail!("GET /v1/log: tree_size/root differ from the signed checkpoint's");
    }
    Ok(LogHead { size, root })
}

/// Checks an inclusion proof response for leaf `index` in the tree of `head`.
fn check_proof(body: &[u8], index: u64, head: &LogHead) -> Result<(), String> {
    let v: graven_api::InclusionProof =
        serde_json::from_slice(body).map_err(|e| format!("not an inclusion proof: {e}"))?;
    let hash = |s: &str, what: &str| -> Result<graven_core::Hash, String> {
        graven_core::Hash::from_base64(s).map_err(|e| format!("bad {what}: {e:?}"))
    };
    if v.index != index {
        return Err(format!("asked for index {index}, got {}", v.index));
    }
    if v.tree_size != head.size {
        return Err(format!("asked for tree size {}, got {}", head.size, v.tree_size));
    }
    if hash(&v.root, "root")? != head.root {
        return Err("the root is not the checkpoint's".into());
    }
    let leaf = hash(&v.leaf_hash, "leaf_hash")?;
    let proof = v
        .proof
        .iter()
        .map(|p| hash(p, "proof element").map(|h| *h.as_bytes()))
        .collect::<Result<Vec<[u8; 32]>, String>>()?;
    graven_core::merkle::verify_inclusion(
        &leaf,
        graven_core::LeafIndex(index),
        graven_core::TreeSize(head.size),
        &proof,
        &head.root,
    )
    .map_err(|e| format!("does not verify: {e:?}"))?;
    Ok(())
}

#[derive(Default)]
struct Checked {
    verified: u64,
    failures: u64,
    first_failure: Option<String>,
}

async fn proofs(a: ProofsArgs) -> anyhow::Result<serde_json::Value> {
    let connections = a.common.connections(64);
    if connections == 0 || a.duration_secs <= 0.0 {
        bail!("--connections and --duration-secs must be positive");
    }
    if a.common.client_signed {
        bail!("--client-signed is for the ingest modes");
    }
    let t = target(&a.common).await?;
    let tck = clk_tck();
    let head = Arc::new(log_head(&t).await?);
    if head.size == 0 {
        bail!("the log is empty: there is nothing to prove");
    }
    let seen = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let warm = start + Duration::from_secs_f64(a.warmup_secs.max(0.0));
    let end = warm + Duration::from_secs_f64(a.duration_secs);

    let probe_task = probes_at(t.clone(), a.common.server_pid, tck, warm, end);

    let mut tasks = Vec::new();
    for c in 0..connections {
        let (t, head, seen) = (t.clone(), head.clone(), seen.clone());
        let (verify_first, verify_every) = (a.verify, a.verify_every);
        let mut rng = Rng(a.common.seed ^ (c as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
        tasks.push(tokio::spawn(async move {
            let mut st = Stats::new()?;
            let mut ck = Checked::default();
            let mut sender: Option<Sender> = None;
            while Instant::now() < end {
                if sender.is_none() {
                    match connect(&t).await {
                        Ok(s) => sender = Some(s),
                        Err(e) => {
                            st.error(format!("{e:#}"));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let Some(s) = sender.as_mut() else { continue };
                let index = rng.below(head.size);
                let path = format!("/v1/proofs/inclusion?index={index}&tree_size={}", head.size);
                let req = build(&t, Method::GET, &path, None, Bytes::new(), true)?;
                let t0 = Instant::now();
                let r = exchange(s, req).await;
                let done = Instant::now();
                let counted = done >= warm && done <= end;
                match r {
                    Ok((status, resp)) => {
                        if status == StatusCode::OK {
                            let k = seen.fetch_add(1, Ordering::Relaxed);
                            if k < verify_first || (verify_every > 0 && k % verify_every == 0) {
                                match check_proof(&resp, index, &head) {
                                    Ok(()) => ck.verified += 1,
                                    Err(e) => {
                                        ck.failures += 1;
                                        ck.first_failure.get_or_insert_with(|| format!("index {index}: {e}"));
                                    }
                                }
                            }
                        }
                        if counted {
                            st.record_expecting(StatusCode::OK, status, done - t0, 0, &resp);
                            if status == StatusCode::OK {
                                st.ok_requests += 1;
                            }
                        }
                    }
                    Err(e) => {
                        if counted {
                            st.error(format!("{e:#}"));
                        }
                        sender = None;
                    }
                }
            }
            anyhow::Ok((st, ck))
        }));
    }
    let mut total = Stats::new()?;
    let mut checked = Checked::default();
    for task in tasks {
        let (st, ck) = task.await??;
        total.merge(st)?;
        checked.verified += ck.verified;
        checked.failures += ck.failures;
        if checked.first_failure.is_none() {
            checked.first_failure = ck.first_failure;
        }
    }
    let (before, after) = probe_task.await?;
    let window = a.duration_secs;
    let server = delta(&before, &after);
    let per_1000 = |v: Option<&serde_json::Value>| -> serde_json::Value {
        match v.and_then(serde_json::Value::as_object) {
            Some(m) if total.ok_requests > 0 => m
                .iter()
                .map(|(k, n)| {
                    (k.clone(), json!(n.as_f64().unwrap_or(0.0) * 1000.0 / total.ok_requests as f64))
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
            _ => serde_json::Value::Null,
        }
    };
    Ok(json!({
        "mode": "proofs",
        "auth": a.common.auth.name(),
        "connections": connections,
        "duration_s": window,
        "warmup_s": a.warmup_secs,
        "tree_size": head.size,
        "proofs_ok": total.ok_requests,
        "proofs_per_s": total.ok_requests as f64 / window,
        "requests": total.requests,
        "response_mb_per_s": total.bytes_received as f64 / window / 1e6,
        "non_200": total.non(200),
        "statuses": total.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "verified": checked.verified,
        "verify_failures": checked.failures,
        "first_verify_failure": checked.first_failure,
        "transport_errors": total.transport_errors,
        "first_error": total.first_error,
        "latency_ms": total.latency_ms(),
        "store_requests_per_1000_proofs": per_1000(server.get("store_requests")),
        "server": server,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_about_450_bytes_and_valid_json() {
        let mut rng = Rng(7);
        let mut total = 0;
        for i in 0..1000 {
            let e = make_event(i, &mut rng);
            let v: serde_json::Value = serde_json::from_slice(&e).unwrap();
            assert!(v.get("action").is_some());
            total += e.len();
        }
        let mean = total / 1000;
        assert!((400..=500).contains(&mean), "mean event size {mean}");
    }

    #[test]
    fn proofs_are_checked_against_the_checkpoint_root() {
        use graven_core::merkle::{self, MemoryTree};
        use graven_core::{LeafIndex, TreeSize};
        let mut tree = MemoryTree::new();
        for i in 0..13u8 {
            tree.push(graven_core::leaf_hash(&[i]));
        }
        let size = TreeSize(13);
        let head = LogHead { size: 13, root: merkle::root(&mut tree, size).unwrap() };
        let body = |index: u64, leaf: u8, root: graven_core::Hash| {
            let proof = merkle::inclusion_proof(&mut tree.clone(), LeafIndex(index), size).unwrap();
            serde_json::to_vec(&json!({
                "index": index, "tree_size": 13, "leaf_hash": graven_core::leaf_hash(&[leaf]).to_base64(),
                "root": root.to_base64(), "proof": proof.iter().map(|h| h.to_base64()).collect::<Vec<_>>(),
            }))
            .unwrap()
        };
        for i in 0..13 {
            check_proof(&body(i, i as u8, head.root), i, &head).unwrap();
        }
        assert!(check_proof(&body(5, 6, head.root), 5, &head).unwrap_err().contains("does not verify"));
        assert!(check_proof(&body(5, 5, head.root), 4, &head).unwrap_err().contains("index"));
        let other = graven_core::leaf_hash(b"x");
        assert!(check_proof(&body(5, 5, other), 5, &head).unwrap_err().contains("root"));
        assert!(check_proof(b"garbage", 5, &head).is_err());
        let mut v: serde_json::Value = serde_json::from_slice(&body(5, 5, head.root)).unwrap();
        v["proof"].as_array_mut().unwrap().pop();
        assert!(check_proof(&serde_json::to_vec(&v).unwrap(), 5, &head).is_err());
    }

    #[test]
    fn store_request_counts_are_kept_from_metrics() {
        let text = "# HELP x\ngraven_events_committed_total 10\ngraven_store_requests{op=\"get\"} 3\n\
                    graven_http_responses_total{route=\"x\",status=\"200\"} 4\n";
        let m = parse_metrics(text);
        assert_eq!(m.get("graven_events_committed_total"), Some(&10.0));
        assert_eq!(m.get("graven_store_requests{op=\"get\"}"), Some(&3.0));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn counts_receipt_lines() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"{}\n{}\n"), 2);
        assert_eq!(count_lines(b"{}\n{}"), 2);
    }

    #[test]
    fn batch_slices_end_on_line_boundaries() {
        let mut rng = Rng(1);
        let b = make_batch(0, 10, &mut rng, None).unwrap();
        let s = b.bytes.slice(..b.line_ends[3]);
        assert_eq!(count_lines(&s), 4);
        assert!(s.ends_with(b"\n"));
    }

    fn common(args: &[&str]) -> anyhow::Result<Common> {
        let mut v = vec!["graven-loadgen", "single"];
        v.extend_from_slice(args);
        let cli = Cli::try_parse_from(v)?;
        let Mode::Single(a) = cli.mode else { unreachable!() };
        validate(&a.common)?;
        Ok(a.common)
    }

    fn err(args: &[&str]) -> String {
        format!("{:#}", common(args).unwrap_err())
    }

    const URL: &str = "http://127.0.0.1:1";

    #[test]
    fn credential_options_are_validated() {
        let c = common(&["--url", URL, "--token-file", "t"]).unwrap();
        assert_eq!(c.auth, AuthKind::Bearer);
        assert!(err(&["--url", URL]).contains("--token-file"));
        assert!(err(&["--url", URL, "--auth", "jwt", "--token-file", "t"]).contains("--jwt-file"));
        common(&["--url", URL, "--auth", "jwt", "--jwt-file", "j"]).unwrap();
        assert!(
            err(&["--url", URL, "--auth", "jwt", "--jwt-file", "j", "--token-file", "t"])
                .contains("--token-file is only used with --auth bearer")
        );
        assert!(err(&["--url", URL, "--auth", "httpsig"]).contains("--signing-key"));
        common(&["--url", URL, "--auth", "httpsig", "--signing-key", "k", "--key-id", "00"]).unwrap();
        assert!(err(&["--url", URL, "--token-file", "t", "--signing-key", "k"]).contains("--client-signed"));
        common(&["--url", URL, "--token-file", "t", "--signing-key", "k", "--client-signed"]).unwrap();
        assert!(err(&["--url", URL, "--token-file", "t", "--client-signed"]).contains("--signing-key"));
        assert!(err(&["--url", URL, "--auth", "nope", "--token-file", "t"]).contains("nope"));
        let mtls = ["--auth", "mtls", "--client-cert", "c", "--client-key", "k"];
        let mut https = vec!["--url", "https://127.0.0.1:1", "--ca", "ca"];
        https.extend_from_slice(&mtls);
        common(&https).unwrap();
        let mut plain = vec!["--url", URL];
        plain.extend_from_slice(&mtls);
        assert!(err(&plain).contains("https://"));
        assert!(err(&["--url", "https://127.0.0.1:1", "--token-file", "t"]).contains("--ca"));
        assert!(err(&["--url", "ftp://x", "--token-file", "t"]).contains("--url"));
    }

    fn key_file(dir: &std::path::Path) -> (PathBuf, SigningKey) {
        use base64::Engine as _;
        let key = SigningKey::from_bytes(&[42u8; 32]);
        let p = dir.join("signing.key");
        std::fs::write(&p, format!("{}\n", base64::engine::general_purpose::STANDARD.encode([42u8; 32])))
            .unwrap();
        (p, key)
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "graven-loadgen-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_key_id_is_derived_and_checked() {
        let d = tempdir();
        let (p, key) = key_file(&d);
        let id = graven_core::event_sig::key_id(key.verifying_key().as_bytes());
        assert_eq!(load_signing_key(&p, None).unwrap().1, id);
        assert_eq!(load_signing_key(&p, Some(&id)).unwrap().1, id);
        assert!(
            format!("{:#}", load_signing_key(&p, Some("0011223344556677")).unwrap_err()).contains("--key-id")
        );
        std::fs::write(&p, "bm90IDMyIGJ5dGVz").unwrap();
        assert!(format!("{:#}", load_signing_key(&p, None).unwrap_err()).contains("32 bytes"));
        let _ = std::fs::remove_dir_all(&d);
    }

    /// What the server does with a signed request (sigauth.rs), with graven_core's parser,
    /// signature base and digest.
    fn server_verifies(req: &Request<Full<Bytes>>, body: &[u8], key: &SigningKey) -> (String, String) {
        use graven_auth::httpsig;
        let h = |n: &str| req.headers().get(n).unwrap().to_str().unwrap().to_owned();
        assert!(req.headers().get(AUTHORIZATION).is_none());
        let params = httpsig::parse_signature_input(&h("signature-input")).unwrap();
        let p = &params[0];
        for c in ["@method", "@path", "content-digest"] {
            assert!(p.covers(c), "{c}");
        }
        let sigs = httpsig::parse_signatures(&h("signature")).unwrap();
        let (label, sig) = &sigs[0];
        assert_eq!(*label, p.label);
        let digest = httpsig::parse_content_digest(&h("content-digest")).unwrap().unwrap();
        assert_eq!(h("content-digest"), httpsig::content_digest(body));
        assert_eq!(digest.len(), 32);
        let headers: Vec<(&str, &str)> =
            req.headers().iter().map(|(n, v)| (n.as_str(), v.to_str().unwrap())).collect();
        let rp = httpsig::RequestParts {
            method: req.method().as_str(),
            authority: Some("127.0.0.1:1"),
            path: req.uri().path(),
            query: req.uri().query(),
            headers,
            ..Default::default()
        };
        let base = httpsig::signature_base(p, &rp).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(sig).unwrap();
        key.verifying_key().verify_strict(base.as_bytes(), &sig).unwrap();
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!((p.created.unwrap() - now).abs() <= 5);
        assert_eq!(
            p.keyid.as_deref(),
            Some(graven_core::event_sig::key_id(key.verifying_key().as_bytes()).as_str())
        );
        (p.nonce.clone().unwrap(), h("signature"))
    }

    #[test]
    fn httpsig_requests_verify_and_each_has_its_own_nonce() {
        let d = tempdir();
        let (p, key) = key_file(&d);
        let key_s = p.to_str().unwrap();
        let c = common(&["--url", "http://127.0.0.1:1/base/", "--auth", "httpsig", "--signing-key", key_s])
            .unwrap();
        let (signing, key_id) = load_signing_key(&p, None).unwrap();
        let t = Target {
            addr: "127.0.0.1:1".parse().unwrap(),
            authority: "127.0.0.1:1".into(),
            base_path: "/base".into(),
            auth: make_auth(&c).unwrap(),
            tls: None,
        };
        assert!(matches!(&t.auth, Auth::HttpSig { key_id: k, .. } if *k == key_id));
        assert_eq!(signing.to_bytes(), key.to_bytes());
        let body = Bytes::from_static(b"{\"action\":\"x\"}\n");
        let r1 =
            build(&t, Method::POST, "/v1/events", Some("application/x-ndjson"), body.clone(), true).unwrap();
        assert_eq!(r1.uri().path(), "/base/v1/events");
        let r2 =
            build(&t, Method::POST, "/v1/events", Some("application/x-ndjson"), body.clone(), true).unwrap();
        let (n1, s1) = server_verifies(&r1, &body, &key);
        let (n2, s2) = server_verifies(&r2, &body, &key);
        assert_ne!(n1, n2, "nonces repeat");
        assert_ne!(s1, s2, "signatures repeat");
        // A different body does not match the first request's digest.
        assert_ne!(
            graven_auth::httpsig::content_digest(b"other"),
            r1.headers()["content-digest"].to_str().unwrap()
        );
        // Unauthenticated probes carry nothing.
        let g = build(&t, Method::GET, "/metrics", None, Bytes::new(), false).unwrap();
        assert!(g.headers().get("signature-input").is_none() && g.headers().get(AUTHORIZATION).is_none());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn bearer_and_jwt_send_the_file_as_a_bearer_token() {
        let d = tempdir();
        let f = d.join("jwt");
        std::fs::write(&f, "aaa.bbb.ccc\n").unwrap();
        let c = common(&["--url", URL, "--auth", "jwt", "--jwt-file", f.to_str().unwrap()]).unwrap();
        let Auth::Header(h) = make_auth(&c).unwrap() else { panic!("not a header") };
        assert_eq!(h, "Bearer aaa.bbb.ccc");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn client_signed_events_verify() {
        use graven_core::jcs::{self, Value};
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let mut rng = Rng(5);
        let b = make_batch(0, 3, &mut rng, Some(&key)).unwrap();
        assert_eq!(count_lines(&b.bytes), 3);
        for line in b.bytes.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let Value::Object(mut m) = jcs::parse(line).unwrap() else { panic!("not an object") };
            let i = m.iter().position(|(k, _)| k == "client_signature").unwrap();
            let (_, sig) = m.remove(i);
            let sig = graven_core::event_sig::parse_client_signature(&sig).unwrap();
            assert_eq!(sig.version(), 2);
            let msg = graven_core::event_sig::signed_message(&m, &sig);
            graven_core::event_sig::verify(&key.verifying_key(), &sig, &msg).unwrap();
        }
    }
}
