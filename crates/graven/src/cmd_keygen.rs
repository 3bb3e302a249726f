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
    crate::input::create_secret_file(out, &key.to_secret_string())?;
    println!("{}", key.verifier());
    Ok(ExitCode::SUCCESS)
}
