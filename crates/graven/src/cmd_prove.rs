use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use graven_core::checkpoint::Checkpoint;
use graven_core::merkle::{self, HashSource};
use graven_core::note::{self, Note};
use graven_core::{LeafIndex, TreeSize};
use graven_verify::{DirFetch, Fetch, tile_hashes};

fn b64(hashes: &[graven_core::Hash]) -> Vec<String> {
    hashes.iter().map(|h| h.to_base64()).collect()
}

pub fn run(
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
