//! `graven export`: SIEM formats or an offline evidence bundle, from a server or a directory.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::note;
use graven_verify::BundleWriter;

use crate::export_source::{self, Filters, Opened, Server, Source};
use crate::witnesses::{self, Loaded, PolicyArgs};
use crate::{escape, input};
use graven_export::Record;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Record format (ignored with --bundle).
    #[arg(long, value_enum, default_value = "jsonl", conflicts_with = "bundle")]
    pub format: Format,
    /// Write an offline evidence bundle (a tar file) instead of records.
    #[arg(long, value_name = "FILE.tar")]
    pub bundle: Option<PathBuf>,
    /// Write records to this file instead of stdout (only once everything verified).
    #[arg(long, conflicts_with = "bundle")]
    pub out: Option<PathBuf>,
    /// A running Graven server's base URL [env: GRAVEN_SERVER; default: http://127.0.0.1:7878,
    /// unless --dir is given].
    #[arg(long, value_parser = crate::server_url::parse)]
    pub server: Option<String>,
    /// A log directory: scanned linearly and fully verified on the way.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// File holding the bearer token for --server (else the GRAVEN_TOKEN environment variable).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The log's verifier key, or a file holding it. Required with --dir; with --server the
    /// server's own key is used when absent (and the output says so).
    #[arg(long)]
    pub vkey: Option<String>,
    /// An older checkpoint (signed note file) of the same log to include in the bundle, with a
    /// consistency proof to the bundle's checkpoint. Repeatable.
    #[arg(long = "with-checkpoint", value_name = "FILE", requires = "bundle")]
    pub with_checkpoint: Vec<PathBuf>,
    /// With --bundle: check the log's time-stamp tokens (carried in the bundle for every
    /// checkpoint it holds that has one) against these TSA roots before writing them.
    #[arg(long, value_name = "FILE", requires = "bundle")]
    pub tsa_cert: Option<PathBuf>,
    /// With --bundle: the bundle's checkpoint must meet this witness policy (see `graven
    /// verify --policy`); its cosignatures go into the bundle with it, so `graven verify
    /// FILE.tar --policy FILE` checks them offline.
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub filters: Filters,
}

/// The record formats (`graven_export::Format`), as `--format` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line: the event verbatim plus `graven` provenance.
    Jsonl,
    /// OCSF API Activity (class 6003), one JSON object per line.
    Ocsf,
    /// ArcSight Common Event Format, one line per event.
    Cef,
}

impl From<Format> for graven_export::Format {
    fn from(f: Format) -> Self {
        match f {
            Format::Jsonl => graven_export::Format::Jsonl,
            Format::Ocsf => graven_export::Format::Ocsf,
            Format::Cef => graven_export::Format::Cef,
        }
    }
}

const MAX_TOKEN_FILE: u64 = 4096;

fn source(args: &ExportArgs) -> anyhow::Result<Source> {
    match (&args.server, &args.dir) {
        (_, None) => {
            let url = crate::server_url::resolve(args.server.as_deref())?;
            let token = match &args.token_file {
                Some(p) => Some(input::read_small(p, MAX_TOKEN_FILE)?.trim().to_owned()),
                None => std::env::var("GRAVEN_TOKEN").ok().filter(|t| !t.is_empty()),
            };
            Ok(Source::Server(Server::new(&url, token)))
        }
        (None, Some(dir)) => {
            if !dir.is_dir() {
                bail!("{} is not a directory", dir.display());
            }
            Ok(Source::Dir(dir.clone()))
        }
        (Some(_), Some(_)) => bail!("give one of --server <url> or --dir <log directory>, not both"),
    }
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    args.filters.query()?; // reject malformed times before any I/O
    let src = source(&args)?;
    let vkey = args.vkey.as_deref().map(crate::input::load_vkey).transpose()?;
    let policy = args.policy.load(vkey.as_ref())?;
    if policy.is_some() && args.bundle.is_none() {
        bail!("--policy goes with --bundle (a bundle carries the checkpoint and its cosignatures)");
    }
    // Without --vkey, the policy's log line names the key.
    let vkey = vkey.or_else(|| policy.as_ref().map(|p| p.policy.log_key().clone()));
    let opened = export_source::open(&src, vkey)?;
    if opened.key_from_server {
        eprintln!(
            "graven: warning: no --vkey given; trusting the key the server states ({}). Pass --vkey to check it is the log you mean.",
            escape::message(&opened.key.to_string())
        );
    }
    match &args.bundle {
        Some(path) => bundle(&args, &src, &opened, path, policy.as_ref()),
        None => records(&args, &src, &opened),
    }
}

/// Writes to `<path>.partial`, renamed over `path` only when everything verified.
struct Staged {
    path: PathBuf,
    partial: PathBuf,
}

impl Staged {
    fn new(path: &Path) -> Self {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        Staged { path: path.to_owned(), partial: partial.into() }
    }

    fn create(&self) -> anyhow::Result<BufWriter<std::fs::File>> {
        let f = std::fs::File::create(&self.partial)
            .with_context(|| format!("creating {}", self.partial.display()))?;
        Ok(BufWriter::with_capacity(1 << 20, f))
    }

    fn commit(&self, w: BufWriter<std::fs::File>) -> anyhow::Result<()> {
        let f = w.into_inner().map_err(|e| e.into_error()).context("writing the output")?;
        f.sync_all().context("syncing the output")?;
        std::fs::rename(&self.partial, &self.path)
            .with_context(|| format!("renaming {} to {}", self.partial.display(), self.path.display()))
    }

    fn abandon(&self) {
        let _ = std::fs::remove_file(&self.partial);
    }
}

fn records(args: &ExportArgs, src: &Source, opened: &Opened) -> anyhow::Result<ExitCode> {
    let origin = opened.origin().to_owned();
    let write_all = |w: &mut dyn Write| -> anyhow::Result<u64> {
        export_source::select(src, opened, &args.filters, false, |s| {
            let r = Record {
                origin: &origin,
                index: s.index,
                leaf: s.leaf,
                leaf_hash: graven_core::leaf_hash(s.leaf),
            };
            let mut line = graven_export::render(args.format.into(), &r);
            line.push('\n');
            w.write_all(line.as_bytes()).context("writing the output")
        })
    };
    let n = match &args.out {
        Some(path) => {
            let staged = Staged::new(path);
            let mut w = staged.create()?;
            match write_all(&mut w) {
                Ok(n) => {
                    staged.commit(w)?;
                    n
                }
                Err(e) => {
                    drop(w);
                    staged.abandon();
                    return Err(e.context(format!("nothing was written to {}", path.display())));
                }
            }
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::new(stdout.lock());
            let r = write_all(&mut w);
            let flushed = w.flush();
            match r {
                Ok(n) => {
                    flushed.context("writing stdout")?;
                    n
                }
                Err(e) => {
                    return Err(
                        e.context("the records already written to stdout are NOT verified; discard them")
                    );
                }
            }
        }
    };
    eprintln!(
        "graven: exported {} from {} ({}, tree size {}), each verified against its checkpoint",
        crate::human::counted(n, "event", "events"),
        escape::message(&export_source::location(src)),
        escape::message(&origin),
        crate::human::count(opened.checkpoint.size().0)
    );
    Ok(ExitCode::SUCCESS)
}

fn bundle(
    args: &ExportArgs,
    src: &Source,
    opened: &Opened,
    path: &Path,
    policy: Option<&Loaded>,
) -> anyhow::Result<ExitCode> {
    // The policy judges the checkpoint as served, before anything is written.
    let witnessed = match policy {
        Some(p) => match p.policy.check(&opened.checkpoint) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!(
                    "graven: no bundle was written to {}: {} (policy {})",
                    path.display(),
                    escape::message(&e.to_string()),
                    p.path.display()
                );
                eprintln!("{}", witnesses::REFUSAL_HINT);
                return Ok(ExitCode::FAILURE);
            }
        },
        None => None,
    };
    let mut older = Vec::new();
    for p in &args.with_checkpoint {
        let bytes = read_note(p)?;
        let cp = VerifiedCheckpoint::open(&bytes, &opened.key, opened.key.name()).with_context(|| {
            format!("{} is not a checkpoint of this log signed by {}", p.display(), opened.key)
        })?;
        if cp.size() > opened.checkpoint.size() {
            bail!(
                "{} is of size {}, newer than the checkpoint being exported ({}); export from a log that has it",
                p.display(),
                cp.size(),
                opened.checkpoint.size()
            );
        }
        if cp.size().0 == 0 {
            bail!("{} is of size 0: the empty tree needs no consistency proof; leave it out", p.display());
        }
        older.push((p.clone(), cp));
    }
    older.sort_by_key(|(_, cp)| cp.size());
    older.dedup_by(|a, b| a.1.note_bytes() == b.1.note_bytes());
    for pair in older.windows(2) {
        if pair[0].1.size() == pair[1].1.size() {
            bail!(
                "{} and {} are different checkpoints of the same size {}: the log forked, or one of them is forged",
                pair[0].0.display(),
                pair[1].0.display(),
                pair[0].1.size()
            );
        }
    }

    let tsa = args.tsa_cert.as_deref().map(input::tsa_verifier).transpose()?;
    let staged = Staged::new(path);
    let mut stamped = 0u64;
    let result = (|| -> anyhow::Result<u64> {
        let mut w = BundleWriter::new(staged.create()?, &opened.key, &opened.checkpoint)?;
        for (p, cp) in &older {
            let proof = export_source::consistency(src, opened, cp.size())?;
            w.add_older(cp, &proof).with_context(|| format!("{}", p.display()))?;
        }
        let sizes: Vec<u64> =
            older.iter().map(|(_, cp)| cp.size().0).chain([opened.checkpoint.size().0]).collect();
        stamped = export_source::add_timestamps(src, opened, &mut w, &sizes, tsa.as_ref())?;
        export_source::select(src, opened, &args.filters, true, |s| {
            let proof = s.proof.context("no proof")?;
            Ok(w.add_event(s.index, s.leaf, proof)?)
        })?;
        let n = w.events();
        staged.commit(w.finish()?)?;
        Ok(n)
    })();
    match result {
        Ok(n) => {
            use crate::human::{bytes, count, counted};
            let size = std::fs::metadata(path).map(|m| bytes(m.len())).unwrap_or_else(|_| "?".into());
            eprintln!(
                "graven: wrote {} ({size}): {} with inclusion proofs against {} size {}, {}, {}",
                path.display(),
                counted(n, "event", "events"),
                escape::message(opened.origin()),
                count(opened.checkpoint.size().0),
                counted(older.len() as u64, "older checkpoint", "older checkpoints"),
                counted(stamped, "time-stamp token", "time-stamp tokens"),
            );
            if let (Some(p), Some(w)) = (policy, &witnessed) {
                eprintln!("  {}", escape::message(&witnesses::witnessed_line(p, w)));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            staged.abandon();
            Err(e.context(format!("no bundle was written to {}", path.display())))
        }
    }
}

fn read_note(p: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut buf = Vec::new();
    f.take(note::MAX_NOTE_SIZE as u64 + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {}", p.display()))?;
    if buf.len() > note::MAX_NOTE_SIZE {
        bail!("{} is larger than a checkpoint can be", p.display());
    }
    Ok(buf)
}
