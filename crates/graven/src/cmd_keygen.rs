use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use graven_core::note::SignerKey;

pub fn run(origin: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    let key = SignerKey::from_seed(origin, seed)
        .with_context(|| format!("origin {origin:?} cannot be a key name"))?;
    if out.exists() {
        bail!("{} already exists; refusing to overwrite a key", out.display());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(out).with_context(|| format!("creating {}", out.display()))?;
    f.write_all(format!("{}\n", key.to_secret_string()).as_bytes())?;
    f.sync_all()?;
    println!("{}", key.verifier());
    Ok(ExitCode::SUCCESS)
}
