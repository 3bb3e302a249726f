//! `graven`: the command-line edge. It parses arguments, builds real objects from the library
//! crates, runs them, and turns errors into messages and exit codes. No logic of its own.

mod cmd_append;
mod cmd_bundle;
mod cmd_docs;
mod cmd_export;
mod cmd_identity;
mod cmd_import;
mod cmd_inventory;
mod cmd_keygen;
mod cmd_proof_file;
mod cmd_prove;
mod cmd_receipt_file;
mod cmd_search;
mod cmd_send;
mod cmd_serve;
mod cmd_sign;
mod cmd_verify;
mod cmd_witness;
mod escape;
mod export_source;
mod human;
mod input;
mod server_url;
mod table;
mod witnesses;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// mimalloc rather than the system allocator: the server allocates per request and per event,
/// and under load glibc's malloc and free took about 14 % of its CPU (perf, single-event ingest).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "graven", version, about = "Graven: a verifiable audit log for non-human identities")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the log server (defaults: ./graven-data, 127.0.0.1:7878).
    Serve(Box<cmd_serve::ServeArgs>),
    /// Rebuild the search index of a server's data directory from its log (server stopped).
    Reindex {
        /// The server's data directory [default: ./graven-data].
        #[arg(long, env = "GRAVEN_DATA", default_value = "./graven-data")]
        data: PathBuf,
    },
    /// Create an Ed25519 signer key for a log; print its verifier key.
    Keygen {
        /// The log's origin, which is also the key name (e.g. example.com/audit).
        #[arg(long)]
        origin: String,
        /// Where to write the signer key (mode 0600). Refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
    },
    /// Work with a local C2SP tiled log.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Verify a C2SP tiled log in a directory or at an http(s) URL, holding it to the last
    /// checkpoint verified before (rollback and fork detection; only new entries are re-checked)
    /// and, with --policy, to a quorum of witness cosignatures; or verify an offline evidence
    /// bundle (.tar) or a C2SP tlog-proof (.tlog-proof, with --policy and --event).
    Verify(Box<cmd_verify::VerifyArgs>),
    /// Export events as JSON Lines, OCSF or CEF, or as an offline evidence bundle.
    Export(Box<cmd_export::ExportArgs>),
    /// Search a server's events (same filters as GET /v1/events); a table, or --json.
    Search(Box<cmd_search::SearchArgs>),
    /// Print a server's latest events, and with -f keep following new ones.
    Tail(Box<cmd_search::TailArgs>),
    /// List a server's machine identities (GET /v1/inventory): registered, reported by a
    /// source, or seen in the log, with first and last seen and activity; a table, --json or --csv.
    Inventory(Box<cmd_inventory::InventoryArgs>),
    /// Send an event (from flags, or JSON/NDJSON on stdin) and check its receipt against the
    /// log's key: exit 0 only if it was logged, so a CI step can fail closed.
    Send(Box<cmd_send::SendArgs>),
    /// Import a platform's audit records into a server as a source identity: AWS CloudTrail
    /// log files from a directory or a bucket (resumable; records already logged are not
    /// logged again).
    Import {
        #[command(subcommand)]
        command: cmd_import::ImportCommand,
    },
    /// Print an inclusion proof (--index) or a consistency proof (--from, --to) from a log
    /// directory, or fetch and verify an inclusion proof from a running server (--url); with
    /// --format tlog-proof, write a C2SP tlog-proof of one entry.
    Prove(cmd_prove::ProveArgs),
    /// Manage a running server's identities (needs an admin API key).
    Identity {
        #[command(subcommand)]
        command: cmd_identity::IdentityCommand,
    },
    /// Sign an event (JSON on stdin) with an identity's Ed25519 key; print the signed event.
    SignEvent {
        /// The secret key file (from `graven key new-signing`).
        #[arg(long)]
        key: PathBuf,
    },
    /// Manage a running server's API keys and public keys (needs an admin API key).
    Key {
        #[command(subcommand)]
        command: cmd_identity::KeyCommand,
    },
    /// Run a C2SP witness for any C2SP logs (POST /add-checkpoint): cosign each checkpoint
    /// only if it is consistent with every one cosigned before; or `witness keygen`.
    Witness(cmd_witness::WitnessArgs),
    /// Print a completion script for a shell, e.g. `graven completions bash >
    /// /etc/bash_completion.d/graven` (zsh: a file named _graven on $fpath).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page graven(1) as roff (`graven man | man -l -`), or write one page
    /// per command and subcommand to a directory.
    Man {
        /// Write graven.1, graven-serve.1, graven-identity-create.1, ... here (e.g.
        /// /usr/local/share/man/man1) and list them, instead of printing graven(1).
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum LogCommand {
    /// Append stdin, one entry per line, and publish one new checkpoint. All or nothing.
    Append {
        #[arg(long)]
        dir: PathBuf,
        /// The signer key file written by `graven keygen`.
        #[arg(long)]
        key: PathBuf,
        /// Store each line as opaque bytes instead of a canonical JSON event.
        #[arg(long)]
        raw: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd_serve::run(*args),
        Command::Reindex { data } => cmd_serve::reindex(&data),
        Command::Keygen { origin, out } => cmd_keygen::run(&origin, &out),
        Command::Log { command: LogCommand::Append { dir, key, raw } } => cmd_append::run(&dir, &key, raw),
        Command::Verify(args) => cmd_verify::run(*args),
        Command::Export(args) => cmd_export::run(*args),
        Command::Search(args) => cmd_search::search(*args),
        Command::Tail(args) => cmd_search::tail(*args),
        Command::Inventory(args) => cmd_inventory::run(*args),
        Command::Send(args) => cmd_send::run(*args),
        Command::Prove(args) => cmd_prove::run(args),
        Command::Identity { command } => cmd_identity::identity(command),
        Command::Key { command } => cmd_identity::key(command),
        Command::Import { command } => cmd_import::run(command),
        Command::SignEvent { key } => cmd_sign::sign_event(&key),
        Command::Witness(args) => cmd_witness::run(args),
        Command::Completions { shell } => cmd_docs::completions(Cli::command(), shell),
        Command::Man { out_dir } => cmd_docs::man(Cli::command(), out_dir.as_deref()),
    };
    match result {
        Ok(code) => code,
        // The reader of our output went away (`graven export | head`): stop quietly, with the
        // status a shell gives a process killed by SIGPIPE, as other Unix tools do.
        Err(e) if broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            // An error may quote what a server or a log said: escaped like every message.
            eprintln!("graven: error: {}", escape::message(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
