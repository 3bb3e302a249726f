//! `witness`: `add-checkpoint` throughput of a C2SP witness (`graven witness`, or any). Each
//! of `--origins` concurrent clients is the writer of its own log (an in-memory RFC 6962 tree
//! and an Ed25519 key derived from `--seed`): it grows its log by 1 to 16 entries, then sends
//! the honest `add-checkpoint` from the size the witness holds, one request at a time (a
//! witness serialises each log's requests anyway), on one keep-alive connection.
//! `witness-logs` prints the `--log ORIGIN=VKEY` flags that make a witness follow those logs.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use graven_core::checkpoint::Checkpoint;
use graven_core::hash::{TreeSize, leaf_hash};
use graven_core::merkle::{self, MemoryTree};
use graven_core::note::SignerKey;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

#[derive(clap::Args, Debug)]
pub struct WitnessArgs {
    /// The witness's submission prefix, e.g. http://127.0.0.1:7380 (loopback only).
    #[arg(long)]
    url: String,
    /// Concurrent logs (clients).
    #[arg(long, default_value_t = 8)]
    origins: u32,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args, Debug)]
pub struct WitnessLogsArgs {
    #[arg(long, default_value_t = 8)]
    origins: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn key(seed: u64, i: u32) -> anyhow::Result<SignerKey> {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..12].copy_from_slice(&i.to_le_bytes());
    SignerKey::from_seed(&format!("loadgen.example/log{i}"), s).context("key")
}

pub fn logs(a: WitnessLogsArgs) -> anyhow::Result<serde_json::Value> {
    let mut flags = Vec::new();
    for i in 0..a.origins {
        let k = key(a.seed, i)?;
        flags.push(format!("{}={}", k.name(), k.verifier()));
    }
    Ok(serde_json::json!(flags))
}

pub async fn run(a: WitnessArgs) -> anyhow::Result<serde_json::Value> {
    let rest = a.url.strip_prefix("http://").context("--url must be http://host:port")?;
    let host = rest.trim_end_matches('/').to_owned();
    let addr: std::net::SocketAddr = host.parse().context("--url must be http://<ip>:<port>")?;
    if !addr.ip().is_loopback() {
        bail!("loopback only");
    }
    let deadline = Instant::now() + Duration::from_secs(a.duration_secs);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..a.origins {
        let k = key(a.seed, i)?;
        let host = host.clone();
        tasks.spawn(async move { one_log(addr, host, k, deadline, a.seed ^ u64::from(i)).await });
    }
    let started = Instant::now();
    let (mut ok, mut other, mut lat) = (0u64, 0u64, Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (o, b, l) = r??;
        ok += o;
        other += b;
        lat.extend(l);
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    Ok(serde_json::json!({
        "mode": "witness",
        "origins": a.origins,
        "seconds": secs,
        "cosigned": ok,
        "not_200": other,
        "cosignatures_per_s": ok as f64 / secs,
        "latency_us": {"p50": pct(0.5), "p99": pct(0.99), "max": lat.last().copied().unwrap_or(0)},
    }))
}

async fn one_log(
    addr: std::net::SocketAddr,
    host: String,
    key: SignerKey,
    deadline: Instant,
    seed: u64,
) -> anyhow::Result<(u64, u64, Vec<u64>)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut tree = MemoryTree::new();
    let mut held = 0u64;
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let (mut ok, mut other, mut lat) = (0u64, 0u64, Vec::new());
    while Instant::now() < deadline {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        for _ in 0..(1 + rng % 16) {
            let n = tree.size().0;
            tree.push(leaf_hash(format!("{} entry {n}", key.name()).as_bytes()));
        }
        let size = tree.size();
        let root = merkle::root(&mut tree, size).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let note = key.sign(&Checkpoint::new(key.name(), size, root)?.to_text())?;
        let mut body = format!("old {held}\n");
        if held > 0 {
            for h in merkle::consistency_proof(&mut tree, TreeSize(held), size)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?
            {
                body.push_str(&h.to_base64());
                body.push('\n');
            }
        }
        body.push('\n');
        body.push_str(&note);
        let req = Request::post("/add-checkpoint")
            .header("host", &host)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(body)))?;
        let t = Instant::now();
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let answer = resp.into_body().collect().await?.to_bytes();
        lat.push(t.elapsed().as_micros() as u64);
        match status {
            200 => {
                ok += 1;
                held = size.0;
            }
            409 => {
                other += 1;
                held = std::str::from_utf8(&answer)?.trim().parse()?;
            }
            s => bail!("the witness answered {s}: {}", String::from_utf8_lossy(&answer)),
        }
    }
    Ok((ok, other, lat))
}
