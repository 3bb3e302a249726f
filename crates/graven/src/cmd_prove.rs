use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use graven_core::checkpoint::Checkpoint;
use graven_core::merkle::{self, HashSource};
use graven_core::note::{self, Note};
use graven_core::{LeafIndex, TreeSize};
use graven_verify::remote::{self, RemoteError};
use graven_verify::tlog_proof::{TlogProofCheckError, make_tlog_proof};
use graven_verify::{DirFetch, Fetch, HttpFetch, WitnessError, fetch_checkpoint, fetch_entry, tile_hashes};
use serde_json::json;

use crate::escape;
use crate::witnesses::{self, Loaded, PolicyArgs};

#[derive(clap::Args, Debug)]
pub struct ProveArgs {
    /// A log directory.
    #[arg(long, conflicts_with = "server")]
    dir: Option<PathBuf>,
    /// A running graven server's base URL (without --dir: GRAVEN_SERVER, else
    /// http://127.0.0.1:7878): fetch the inclusion proof of --index, check it against the
    /// signed checkpoint and the entry itself, print it and OK (exit 1 if it fails).
    #[arg(long, alias = "url", value_parser = crate::server_url::parse)]
    server: Option<String>,
    /// From a server: the log's verifier key, or a file that holds it (optional with --policy,
    /// whose log line names it).
    #[arg(long, conflicts_with = "dir")]
    vkey: Option<String>,
    #[command(flatten)]
    policy: PolicyArgs,
    /// What to print for --index: the JSON proof, or a C2SP tlog-proof (the checkpoint with
    /// its cosignatures, the index and the inclusion proof), checked before it is written.
    #[arg(long, value_enum, default_value = "json")]
    format: ProofFormat,
    /// With --format tlog-proof: write it to this file (e.g. entry.tlog-proof) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// With --format tlog-proof: also write the entry's exact bytes, which the proof's verifier
    /// needs (`graven verify FILE.tlog-proof --event FILE`).
    #[arg(long, value_name = "FILE")]
    event_out: Option<PathBuf>,
    /// From a server: the checkpoint origin to require (default: the verifier key's name).
    #[arg(long, conflicts_with = "dir")]
    origin: Option<String>,
    /// From a server: file holding an API key (else GRAVEN_TOKEN).
    #[arg(long, conflicts_with = "dir")]
    token_file: Option<PathBuf>,
    /// Leaf index (0-based) for an inclusion proof.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    index: Option<u64>,
    /// Tree size to prove against (default: the current checkpoint).
    #[arg(long, requires = "index")]
    size: Option<u64>,
    /// Older tree size for a consistency proof (from --dir).
    #[arg(long, requires = "to", conflicts_with = "server")]
    from: Option<u64>,
    /// Newer tree size for a consistency proof.
    #[arg(long, requires = "from")]
    to: Option<u64>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProofFormat {
    /// `{"index":..,"tree_size":..,"leaf_hash":..,"root":..,"proof":[..]}` and more.
    Json,
    /// A C2SP `tlog-proof@v1` file (`.tlog-proof`).
    TlogProof,
}

pub fn run(a: ProveArgs) -> anyhow::Result<ExitCode> {
    match a.format {
        ProofFormat::TlogProof if a.index.is_none() => {
            bail!("--format tlog-proof proves one entry: give --index")
        }
        ProofFormat::TlogProof if a.size.is_some() => {
            bail!("a tlog-proof proves against the checkpoint it carries: leave out --size")
        }
        ProofFormat::Json if a.out.is_some() || a.event_out.is_some() => {
            bail!("--out and --event-out go with --format tlog-proof")
        }
        _ => {}
    }
    match (&a.dir, a.index) {
        (Some(dir), _) => from_dir(dir, &a),
        (None, Some(index)) => {
            if a.vkey.is_none() && a.policy.policy.is_none() {
                bail!("a proof from a server needs --vkey (or --policy, whose log line names the key)");
            }
            let url = crate::server_url::resolve(a.server.as_deref())?;
            from_server(&url, &a, index)
        }
        (None, None) if a.from.is_some() => {
            bail!("a consistency proof (--from, --to) is made from a log directory: give --dir")
        }
        (None, None) => bail!(
            "give --dir <log directory>, or --index <i> --vkey <key> for a server (--server, GRAVEN_SERVER)"
        ),
    }
}

fn b64(hashes: &[graven_core::Hash]) -> Vec<String> {
    hashes.iter().map(|h| h.to_base64()).collect()
}

fn from_dir(dir: &Path, a: &ProveArgs) -> anyhow::Result<ExitCode> {
    let (index, size, from, to) = (a.index, a.size, a.from, a.to);
    let mut f = DirFetch::new(dir);
    let bytes = f
        .fetch("checkpoint", note::MAX_NOTE_SIZE as u64)
        .context("reading the checkpoint")?
        .with_context(|| format!("{} has no checkpoint; is it a log directory?", dir.display()))?;
    // Proving needs no key: the output is checked by whoever receives it. We still require a
    // well-formed note and checkpoint so that we never prove against garbage.
    let note = Note::parse(&bytes).context("the checkpoint is not a signed note")?;
    let cp = Checkpoint::parse(note.text()).context("the checkpoint body is malformed")?;
    let current = cp.size();
    if let (Some(index), ProofFormat::TlogProof) = (index, a.format) {
        if index >= current.0 {
            bail!("--index {index} is not in a tree of size {current} (indices are 0-based)");
        }
        let entry = fetch_entry(&mut f, LeafIndex(index), current).map_err(|e| anyhow::anyhow!("{e}"))?;
        let proof = merkle::inclusion_proof(&mut tile_hashes(&mut f, current), LeafIndex(index), current)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let policy = a.policy.load(None)?;
        return write_tlog_proof(a, index, &proof, &bytes, &entry, policy.as_ref(), cp.origin());
    }
    if a.policy.policy.is_some() {
        bail!("--policy with --dir applies to --format tlog-proof (a proof that carries its checkpoint)");
    }
    let mut src = tile_hashes(&mut f, current);

    if let Some(index) = index {
        let n = TreeSize(size.unwrap_or(current.0));
        if n > current {
            bail!("--size {} is beyond the checkpoint's tree size {}", n, current);
        }
        if index >= n.0 {
            bail!("--index {index} is not in a tree of size {n} (indices are 0-based)");
        }
        let leaf = src.node(0, index).map_err(|e| anyhow::anyhow!("{e}"))?;
        let root = merkle::root(&mut src, n).map_err(|e| anyhow::anyhow!("{e}"))?;
        let proof =
            merkle::inclusion_proof(&mut src, LeafIndex(index), n).map_err(|e| anyhow::anyhow!("{e}"))?;
        merkle::verify_inclusion(
            &leaf,
            LeafIndex(index),
            n,
            &proof.iter().map(|h| h.0).collect::<Vec<_>>(),
            &root,
        )
        .context("the stored tiles produced a proof that does not verify; run graven verify")?;
        println!(
            "{}",
            serde_json::json!({"index": index, "tree_size": n.0, "leaf_hash": leaf.to_base64(), "root": root.to_base64(), "proof": b64(&proof)})
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(m), Some(n)) = (from, to) else {
        bail!(
            "give --index <i> [--size <n>] for an inclusion proof, or --from <m> --to <n> for a consistency proof"
        );
    };
    if n > current.0 {
        bail!("--to {n} is beyond the checkpoint's tree size {current}");
    }
    if m > n {
        bail!("--from {m} is larger than --to {n}");
    }
    if m == 0 {
        bail!("there is no consistency proof from size 0: every tree extends the empty tree");
    }
    let (m, n) = (TreeSize(m), TreeSize(n));
    let root_from = merkle::root(&mut src, m).map_err(|e| anyhow::anyhow!("{e}"))?;
    let root_to = merkle::root(&mut src, n).map_err(|e| anyhow::anyhow!("{e}"))?;
    let proof = merkle::consistency_proof(&mut src, m, n).map_err(|e| anyhow::anyhow!("{e}"))?;
    merkle::verify_consistency(m, n, &root_from, &root_to, &proof.iter().map(|h| h.0).collect::<Vec<_>>())
        .context("the stored tiles produced a proof that does not verify; run graven verify")?;
    println!(
        "{}",
        serde_json::json!({"from": m.0, "to": n.0, "root_from": root_from.to_base64(), "root_to": root_to.to_base64(), "proof": b64(&proof)})
    );
    Ok(ExitCode::SUCCESS)
}

/// Fetches an inclusion proof from a server and has `graven_verify::remote` check it end to
/// end (the checkpoint's signature, the entry read from the tiles against the proof's leaf
/// hash, the proof against the signed root, and for an older size the server's consistency
/// proof to the checkpoint); prints the proof, or why it failed.
fn from_server(url: &str, a: &ProveArgs, index: u64) -> anyhow::Result<ExitCode> {
    let (origin, size) = (a.origin.as_deref(), a.size);
    let (vkey, policy) = witnesses::log_key(a.vkey.as_deref(), &a.policy)?;
    let mut f = HttpFetch::new(url);
    if let Some(t) = crate::input::token(a.token_file.as_deref())? {
        f = f.with_bearer(&t);
    }
    let cp = match fetch_checkpoint(&mut f, &vkey, origin) {
        Ok(cp) => cp,
        Err(e) if e.is_outage() => return unreachable(&f, &e),
        Err(e) => return failed(&f, &e.to_string()),
    };
    // With a policy, the checkpoint is accepted only with a quorum of witness cosignatures.
    let witnessed = match &policy {
        Some(p) => match p.policy.check(&cp) {
            Ok(w) => Some(w),
            Err(e) => return not_witnessed(&f, p, &e),
        },
        None => None,
    };
    let p = match remote::prove_inclusion(&mut f, &cp, index, size) {
        Ok(p) => p,
        Err(RemoteError::Log(e)) if e.is_outage() => return unreachable(&f, &e),
        Err(RemoteError::Log(e)) => return failed(&f, &format!("reading entry {index}: {e}")),
        Err(e) if e.is_evidence() => return failed(&f, &e.to_string()),
        Err(RemoteError::SizeBeyondCheckpoint { size, checkpoint_size }) => {
            bail!("--size {size} is beyond the checkpoint's tree size {checkpoint_size}")
        }
        Err(RemoteError::IndexOutOfTree { index, size }) => {
            bail!("--index {index} is not in a tree of size {size} (indices are 0-based)")
        }
        Err(e) => bail!("{}: {e}", f.location()),
    };
    let (inclusion, current) = (p.inclusion(), cp.size());
    let (n, root) = (inclusion.size(), inclusion.root());
    if a.format == ProofFormat::TlogProof {
        return write_tlog_proof(
            a,
            index,
            p.proof(),
            cp.note_bytes(),
            p.entry(),
            policy.as_ref(),
            cp.checkpoint().origin(),
        );
    }
    let mut out = json!({
        "index": index, "tree_size": n.0, "leaf_hash": inclusion.leaf_hash().to_base64(),
        "root": root.to_base64(), "proof": b64(p.proof()), "checkpoint_size": current.0,
        "checkpoint": String::from_utf8_lossy(cp.note_bytes()),
    });
    if let Some((_, cproof)) = p.consistency() {
        out["consistency_proof"] = json!(b64(cproof));
    }
    out["verified"] = json!(true);
    if let (Some(p), Some(w)) = (&policy, &witnessed) {
        out["witnesses"] = witnesses::success_json(p, w);
    }
    println!("{}", crate::escape::json_line(&out));
    eprintln!(
        "OK: entry {index} is in {} at tree size {n} (root {root}), under the checkpoint of size {current} signed by {}",
        crate::escape::message(cp.checkpoint().origin()),
        crate::escape::message(vkey.name())
    );
    if let (Some(p), Some(w)) = (&policy, &witnessed) {
        eprintln!("  {}", escape::message(&witnesses::witnessed_line(p, w)));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the tlog-proof of entry `index` (checked by `make_tlog_proof` first, under the policy
/// if there is one) to `--out` or stdout, and the entry to `--event-out`.
fn write_tlog_proof(
    a: &ProveArgs,
    index: u64,
    proof: &[graven_core::Hash],
    checkpoint: &[u8],
    entry: &[u8],
    policy: Option<&Loaded>,
    origin: &str,
) -> anyhow::Result<ExitCode> {
    let text = match make_tlog_proof(index, proof, checkpoint, entry, policy.map(|p| &p.policy)) {
        Ok(t) => t,
        Err(e @ TlogProofCheckError::Policy(_)) => {
            eprintln!("graven: no tlog-proof was written: {}", escape::message(&e.to_string()));
            eprintln!("{}", witnesses::REFUSAL_HINT);
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => bail!("no tlog-proof was written: {e}"),
    };
    let write = |path: &Path, bytes: &[u8]| {
        graven_fs::atomic::replace(&graven_fs::RealFs, path, bytes, graven_fs::Access::Default)
            .with_context(|| format!("writing {}", path.display()))
    };
    if let Some(path) = &a.event_out {
        write(path, entry)?;
    }
    match &a.out {
        Some(path) => write(path, text.as_bytes())?,
        // To a terminal, each line escaped (a log's names may hold bidi or C1 controls); to a
        // pipe or a file, the exact bytes a verifier needs.
        None if std::io::stdout().is_terminal() => {
            for line in text.lines() {
                println!("{}", escape::message(line));
            }
        }
        None => print!("{text}"),
    }
    let to = a.out.as_ref().map_or("stdout".to_owned(), |p| p.display().to_string());
    eprintln!("OK: wrote a tlog-proof of entry {index} of {} to {to}", escape::message(origin));
    Ok(ExitCode::SUCCESS)
}

/// The checkpoint lacks the policy's quorum: no proof is given (exit 1).
fn not_witnessed(f: &HttpFetch, p: &Loaded, e: &WitnessError) -> anyhow::Result<ExitCode> {
    eprintln!(
        "graven: proof FAILED for {}: {} (policy {})",
        escape::message(&f.location()),
        escape::message(&e.to_string()),
        p.path.display()
    );
    eprintln!("{}", witnesses::REFUSAL_HINT);
    Ok(ExitCode::FAILURE)
}

fn failed(f: &HttpFetch, why: &str) -> anyhow::Result<ExitCode> {
    eprintln!(
        "graven: proof FAILED for {}: {}",
        crate::escape::message(&f.location()),
        crate::escape::message(why)
    );
    Ok(ExitCode::FAILURE)
}

/// The server could not be read: an error (exit 2), not a failed proof.
fn unreachable(f: &HttpFetch, e: &graven_verify::VerifyError) -> anyhow::Result<ExitCode> {
    bail!(
        "could not read the log at {}: {e}; the log could not be read, this is not evidence of tampering",
        f.location()
    )
}
