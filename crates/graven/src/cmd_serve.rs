use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use graven_server::config::{self, Overrides};

/// Settings by flag or environment variable; flags win, then the environment, then the
/// config file (`--config`, or `<data>/graven.toml`), then the defaults.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "GRAVEN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./graven-data].
    #[arg(long, env = "GRAVEN_DATA")]
    data: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7878]. Port 0 picks a free port.
    #[arg(long, env = "GRAVEN_LISTEN")]
    listen: Option<String>,
    /// Origin (and key name) for a new log [default: localhost/graven].
    #[arg(long, env = "GRAVEN_ORIGIN")]
    origin: Option<String>,
    /// Largest request body in bytes [default: 64 MiB].
    #[arg(long, env = "GRAVEN_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Most events in one group commit [default: 65536].
    #[arg(long, env = "GRAVEN_MAX_BATCH_EVENTS")]
    max_batch_events: Option<usize>,
    /// Longest a batch waits for more events, in milliseconds [default: 0].
    #[arg(long, env = "GRAVEN_MAX_BATCH_WAIT_MS")]
    max_batch_wait_ms: Option<u64>,
    /// Most events waiting to be committed before requests get 503 [default: 262144].
    #[arg(long, env = "GRAVEN_MAX_PENDING_EVENTS")]
    max_pending_events: Option<usize>,
}

pub fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = config::resolve(Overrides {
        config: a.config,
        listen: a.listen,
        data: a.data,
        origin: a.origin,
        max_body_bytes: a.max_body_bytes,
        max_batch_events: a.max_batch_events,
        max_batch_wait_ms: a.max_batch_wait_ms,
        max_pending_events: a.max_pending_events,
    })?;
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(graven_server::server::run(config))?;
    Ok(ExitCode::SUCCESS)
}
