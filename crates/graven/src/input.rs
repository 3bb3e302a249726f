//! Bounded reading of files and stdin; the key files the CLI makes.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use graven_core::note::VerifierKey;

/// Largest key file accepted.
pub const MAX_KEY_FILE: u64 = 4096;

/// Reads a small text file whole, refusing anything over `limit` bytes.
pub fn read_small(path: &Path, limit: u64) -> anyhow::Result<String> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut s = String::new();
    f.take(limit + 1)
        .read_to_string(&mut s)
        .with_context(|| format!("reading {} (it must be UTF-8 text)", path.display()))?;
    if s.len() as u64 > limit {
        bail!("{} is over {limit} bytes; is it the right file?", path.display());
    }
    Ok(s)
}

/// Creates `path` holding `secret` and a newline, readable by its owner only, durably and
/// atomically (absent or complete after a crash), never replacing an existing file.
pub fn create_secret_file(path: &Path, secret: &str) -> anyhow::Result<()> {
    let text = format!("{secret}\n");
    graven_fs::atomic::create(&graven_fs::RealFs, path, text.as_bytes(), graven_fs::Access::Private)
        .with_context(|| format!("creating {}", path.display()))
}

/// Reads all of stdin, refusing more than `limit` bytes.
pub fn read_stdin(limit: u64) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin().lock().take(limit + 1).read_to_end(&mut buf).context("reading stdin")?;
    if buf.len() as u64 > limit {
        bail!("stdin is over {limit} bytes; append in several runs");
    }
    Ok(buf)
}

/// The credential for a server: the file given, else `GRAVEN_TOKEN`, else none.
pub fn token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    match file {
        Some(p) => Ok(Some(read_small(p, 4096)?.trim().to_owned())),
        None => Ok(std::env::var("GRAVEN_TOKEN").ok().filter(|t| !t.is_empty())),
    }
}

/// Accepts a verifier key string, or the path of a file holding one.
pub fn load_vkey(arg: &str) -> anyhow::Result<VerifierKey> {
    match VerifierKey::parse(arg) {
        Ok(k) => Ok(k),
        Err(e) => {
            let path = std::path::Path::new(arg);
            if path.is_file() {
                let text = read_small(path, MAX_KEY_FILE)?;
                VerifierKey::parse(text.trim())
                    .with_context(|| format!("{} does not hold a verifier key", path.display()))
            } else {
                Err(e).context("--vkey is neither a verifier key nor a file holding one")
            }
        }
    }
}
