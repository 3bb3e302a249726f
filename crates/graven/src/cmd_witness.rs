//! `graven witness`: run a C2SP tlog-witness (see `graven-witness` and docs/witness.md), or
//! make its key.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use graven_witness::config::{self, Overrides};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WitnessArgs {
    #[command(subcommand)]
    command: Option<WitnessCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Subcommand, Debug)]
enum WitnessCommand {
    /// Create a witness key (cosignature/v1, mode 0600); print its verifier key.
    Keygen {
        /// The witness's name, a schema-less URL (e.g. witness.example.com/w1).
        #[arg(long)]
        name: String,
        /// Where to write the key. Refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Settings by flag or environment variable; flags win, then the environment, then the
/// config file (`--config`, or `<data>/witness.toml`), then the defaults.
#[derive(clap::Args, Debug)]
struct RunArgs {
    /// TOML config file (same settings; unknown keys are an error).
    #[arg(long, env = "GRAVEN_WITNESS_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: the latest cosigned checkpoint of each log [default: ./graven-witness].
    #[arg(long, env = "GRAVEN_WITNESS_DATA")]
    data: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7380]. Port 0 picks a free port.
    #[arg(long, env = "GRAVEN_WITNESS_LISTEN")]
    listen: Option<String>,
    /// The witness's key file [default: <data>/witness.key]; created on first start (with
    /// --name) if it does not exist.
    #[arg(long, env = "GRAVEN_WITNESS_KEY")]
    key: Option<PathBuf>,
    /// The witness's name, to create its key (e.g. witness.example.com/w1).
    #[arg(long, env = "GRAVEN_WITNESS_NAME")]
    name: Option<String>,
    /// A log to witness: ORIGIN=VKEY, VKEY being the log's Ed25519 verifier key named ORIGIN.
    /// Repeat for more logs, or for more keys of one log.
    #[arg(long = "log")]
    logs: Vec<String>,
    /// URL path prefix of /add-checkpoint and /<origin hash>/checkpoint (e.g. /witness).
    #[arg(long, env = "GRAVEN_WITNESS_PREFIX")]
    prefix: Option<String>,
    /// Largest add-checkpoint body in bytes [default: 262144].
    #[arg(long, env = "GRAVEN_WITNESS_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
}

pub fn run(a: WitnessArgs) -> anyhow::Result<ExitCode> {
    if let Some(WitnessCommand::Keygen { name, out }) = a.command {
        let key = graven_witness::keyfile::create(&out, &name)?;
        println!("{}", key.verifier());
        return Ok(ExitCode::SUCCESS);
    }
    let r = a.run;
    let settings = config::resolve(Overrides {
        config: r.config,
        data: r.data,
        listen: r.listen,
        key: r.key,
        name: r.name,
        prefix: r.prefix,
        max_body_bytes: r.max_body_bytes,
        logs: r.logs,
    })?;
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(graven_witness::serve::run(settings))?;
    Ok(ExitCode::SUCCESS)
}
