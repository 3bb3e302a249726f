//! Load generator for the ingest path of `graven serve` (`POST /v1/events`).
//!
//! Two modes:
//! - `bulk`: N keep-alive connections send NDJSON batches of B events until TOTAL events have
//!   been sent; every response must be 201 with one receipt line per event.
//! - `single`: N keep-alive connections each send one JSON event per request in a closed loop
//!   for S seconds (after a warm-up that is not counted).
//!
//! Every response status is checked (non-201s are counted by status), receipts are counted,
//! and each request's latency (send to last response byte) goes into an HdrHistogram. With
//! `--server-pid`, the server's CPU time, peak RSS and disk writes over the measured window
//! are read from `/proc`, and `/metrics` is read before and after for commit counts.
//!
//! Prints one JSON line of results on stdout. Refuses any target that is not a loopback
//! address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(name = "graven-loadgen", about = "Load generator for graven serve's ingest path")]
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
}

#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// Server base URL, e.g. http://127.0.0.1:7878 (loopback only).
    #[arg(long)]
    url: String,
    /// File holding the bearer token (the server's <data>/admin.token).
    #[arg(long)]
    token_file: std::path::PathBuf,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 8)]
    connections: usize,
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.mode {
        Mode::Bulk(a) => a.common.threads,
        Mode::Single(a) => a.common.threads,
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

fn make_batch(first_seq: u64, n: usize, rng: &mut Rng) -> BatchBody {
    let mut buf = Vec::with_capacity(n * 480);
    let mut line_ends = Vec::with_capacity(n);
    for i in 0..n {
        buf.extend_from_slice(&make_event(first_seq + i as u64, rng));
        buf.push(b'\n');
        line_ends.push(buf.len());
    }
    BatchBody { bytes: Bytes::from(buf), line_ends }
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Target {
    addr: SocketAddr,
    authority: String,
    base_path: String,
    auth: HeaderValue,
}

async fn target(common: &Common) -> anyhow::Result<Arc<Target>> {
    let rest = common
        .url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--url must start with http:// (got {})", common.url))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host(authority).await.with_context(|| format!("resolving {authority}"))?.collect();
    let addr = addrs.iter().copied().find(|a| a.ip().is_loopback()).ok_or_else(|| {
        anyhow!("{authority} is not a loopback address; this tool only targets this machine")
    })?;
    let token = std::fs::read_to_string(&common.token_file)
        .with_context(|| format!("reading {}", common.token_file.display()))?;
    let auth =
        HeaderValue::from_str(&format!("Bearer {}", token.trim())).context("token is not a header value")?;
    Ok(Arc::new(Target { addr, authority: authority.to_owned(), base_path: path.to_owned(), auth }))
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(t: &Target) -> anyhow::Result<Sender> {
    let stream =
        tokio::net::TcpStream::connect(t.addr).await.with_context(|| format!("connecting to {}", t.addr))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(
    sender: &mut Sender,
    t: &Target,
    method: Method,
    path: &str,
    ctype: Option<&'static str>,
    body: Bytes,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{}{path}", t.base_path))
        .header(HOST, t.authority.as_str())
        .header(AUTHORIZATION, t.auth.clone());
    if let Some(c) = ctype {
        req = req.header(CONTENT_TYPE, c);
    }
    let req = req.body(Full::new(body))?;
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
        self.requests += 1;
        self.bytes_sent += body_sent as u64;
        self.bytes_received += body.len() as u64;
        *self.statuses.entry(status.as_u16()).or_default() += 1;
        let _ = self.hist.record((lat.as_micros() as u64).max(1));
        if status != StatusCode::CREATED && self.first_error.is_none() {
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
        self.statuses.iter().filter(|(k, _)| **k != 201).map(|(_, v)| v).sum()
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

fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.contains('{') {
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
    if let Ok(mut s) = connect(t).await
        && let Ok((st, body)) = send(&mut s, t, Method::GET, "/metrics", None, Bytes::new()).await
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
    })
}

// ---------------------------------------------------------------------------------------------
// bulk

async fn bulk(a: BulkArgs) -> anyhow::Result<serde_json::Value> {
    if a.batch == 0 || a.events == 0 || a.common.connections == 0 {
        bail!("--batch, --events and --connections must be at least 1");
    }
    let t = target(&a.common).await?;
    let tck = clk_tck();
    let mut rng = Rng(a.common.seed);
    let pool_n = a.pool.max(1).min(a.events.div_ceil(a.batch as u64) as usize);
    let pool: Arc<Vec<BatchBody>> = Arc::new(
        (0..pool_n)
            .map(|k| make_batch((k * a.batch) as u64, a.batch.min(a.events as usize), &mut rng))
            .collect(),
    );
    let (ev_bytes, ev_n) =
        pool.iter().fold((0usize, 0usize), |(b, n), p| (b + p.bytes.len(), n + p.line_ends.len()));
    let mean_event_bytes = ev_bytes as f64 / ev_n.max(1) as f64 - 1.0;
    let nreq = a.events.div_ceil(a.batch as u64);
    let next = Arc::new(AtomicU64::new(0));

    let before = probe(&t, a.common.server_pid, tck).await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.common.connections {
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
                let t0 = Instant::now();
                match send(s, &t, Method::POST, "/v1/events", Some("application/x-ndjson"), body).await {
                    Ok((status, resp)) => {
                        st.record(status, t0.elapsed(), len, &resp);
                        if status == StatusCode::CREATED {
                            st.ok_requests += 1;
                            let lines = count_lines(&resp);
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
        "connections": a.common.connections,
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
    if a.common.connections == 0 || a.duration_secs <= 0.0 {
        bail!("--connections and --duration-secs must be positive");
    }
    let t = target(&a.common).await?;
    let tck = clk_tck();
    let mut rng = Rng(a.common.seed);
    let pool: Arc<Vec<Bytes>> =
        Arc::new((0..a.pool.max(1)).map(|i| Bytes::from(make_event(i as u64, &mut rng))).collect());
    let mean_event_bytes = pool.iter().map(Bytes::len).sum::<usize>() as f64 / pool.len() as f64;
    let start = Instant::now();
    let warm = start + Duration::from_secs_f64(a.warmup_secs.max(0.0));
    let end = warm + Duration::from_secs_f64(a.duration_secs);

    // Probes at the start and end of the measured window.
    let probe_task = {
        let (t, pid) = (t.clone(), a.common.server_pid);
        tokio::spawn(async move {
            tokio::time::sleep_until(warm.into()).await;
            let b = probe(&t, pid, tck).await;
            tokio::time::sleep_until(end.into()).await;
            let e = probe(&t, pid, tck).await;
            (b, e)
        })
    };

    let mut tasks = Vec::new();
    for c in 0..a.common.connections {
        let (t, pool) = (t.clone(), pool.clone());
        tasks.push(tokio::spawn(async move {
            let mut st = Stats::new()?;
            let mut sender: Option<Sender> = None;
            let mut i = c * 7919;
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
                let body = pool[i % pool.len()].clone();
                i += 1;
                let len = body.len();
                let t0 = Instant::now();
                let r = send(s, &t, Method::POST, "/v1/events", Some("application/json"), body).await;
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
        "connections": a.common.connections,
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
    fn counts_receipt_lines() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"{}\n{}\n"), 2);
        assert_eq!(count_lines(b"{}\n{}"), 2);
    }

    #[test]
    fn batch_slices_end_on_line_boundaries() {
        let mut rng = Rng(1);
        let b = make_batch(0, 10, &mut rng);
        let s = b.bytes.slice(..b.line_ends[3]);
        assert_eq!(count_lines(&s), 4);
        assert!(s.ends_with(b"\n"));
    }
}
