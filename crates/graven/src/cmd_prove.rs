use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use graven_core::checkpoint::Checkpoint;
use graven_core::merkle::{self, HashSource};
use graven_core::note::{self, Note};
use graven_core::{LeafIndex, TreeSize};
use graven_verify::remote::{self, RemoteError};
use graven_verify::{DirFetch, Fetch, HttpFetch, fetch_checkpoint, tile_hashes};
use serde_json::json;

use crate::input::load_vkey;

#[derive(clap::Args, Debug)]
pub struct ProveArgs {
    /// A log directory.
    #[arg(long, required_unless_present = "url", conflicts_with = "url")]
    dir: Option<PathBuf>,
    /// A running graven server's base URL: fetch the inclusion proof of --index, check it
    /// against the signed checkpoint and the entry itself, print it and OK (exit 1 if it fails).
    #[arg(long, requires_all = ["vkey", "index"])]
    url: Option<String>,
    /// With --url: the log's verifier key, or a file that holds it.
    #[arg(long, requires = "url")]
    vkey: Option<String>,
    /// With --url: the checkpoint origin to require (default: the verifier key's name).
    #[arg(long, requires = "url")]
    origin: Option<String>,
    /// With --url: file holding an API key (else GRAVEN_TOKEN).
    #[arg(long, requires = "url")]
    token_file: Option<PathBuf>,
    /// Leaf index (0-based) for an inclusion proof.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    index: Option<u64>,
    /// Tree size to prove against (default: the current checkpoint).
    #[arg(long, requires = "index")]
    size: Option<u64>,
    /// Older tree size for a consistency proof.
    #[arg(long, requires = "to", conflicts_with = "url")]
    from: Option<u64>,
    /// Newer tree size for a consistency proof.
    #[arg(long, requires = "from")]
    to: Option<u64>,
}

pub fn run(a: ProveArgs) -> anyhow::Result<ExitCode> {
    match (&a.url, &a.dir, a.index) {
        (Some(url), _, Some(index)) => {
            let vkey = a.vkey.as_deref().context("--url needs --vkey")?;
            from_server(url, vkey, a.origin.as_deref(), index, a.size, a.token_file.as_deref())
        }
        (_, Some(dir), _) => from_dir(dir, a.index, a.size, a.from, a.to),
        _ => bail!("give --dir <log directory>, or --url <server> --vkey <key> --index <i>"),
    }
}

fn b64(hashes: &[graven_core::Hash]) -> Vec<String> {
    hashes.iter().map(|h| h.to_base64()).collect()
}

fn from_dir(
    dir: &Path,
    index: Option<u64>,
    size: Option<u64>,
    from: Option<u64>,
    to: Option<u64>,
) -> anyhow::Result<ExitCode> {
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
fn from_server(
    url: &str,
    vkey: &str,
    origin: Option<&str>,
    index: u64,
    size: Option<u64>,
    token_file: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let vkey = load_vkey(vkey)?;
    let mut f = HttpFetch::new(url);
    if let Some(t) = crate::input::token(token_file)? {
        f = f.with_bearer(&t);
    }
    let cp = match fetch_checkpoint(&mut f, &vkey, origin) {
        Ok(cp) => cp,
        Err(e) if e.is_outage() => return unreachable(&f, &e),
        Err(e) => return failed(&f, &e.to_string()),
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
    let mut out = json!({
        "index": index, "tree_size": n.0, "leaf_hash": inclusion.leaf_hash().to_base64(),
        "root": root.to_base64(), "proof": b64(p.proof()), "checkpoint_size": current.0,
        "checkpoint": String::from_utf8_lossy(cp.note_bytes()),
    });
    if let Some((_, cproof)) = p.consistency() {
        out["consistency_proof"] = json!(b64(cproof));
    }
    out["verified"] = json!(true);
    println!("{}", crate::escape::json_line(&out));
    eprintln!(
        "OK: entry {index} is in {} at tree size {n} (root {root}), under the checkpoint of size {current} signed by {}",
        crate::escape::message(cp.checkpoint().origin()),
        crate::escape::message(vkey.name())
    );
    Ok(ExitCode::SUCCESS)
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
