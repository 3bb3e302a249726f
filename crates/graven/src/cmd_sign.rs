//! `graven key new-signing` and `graven sign-event`: an identity's own Ed25519 key, and
//! client-signed events (format: `graven_core::event_sig`, docs/identities.md).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;

use crate::input;

/// Reads a secret key file: the standard base64 of the 32-byte Ed25519 seed.
pub fn load_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = input::read_small(path, input::MAX_KEY_FILE)?;
    let seed: [u8; 32] = B64.decode(text.trim()).ok().and_then(|b| b.try_into().ok()).with_context(|| {
        format!("{} does not hold an Ed25519 secret key (base64 of 32 bytes)", path.display())
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

pub fn new_signing_key(out: &Path) -> anyhow::Result<ExitCode> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    input::create_secret_file(out, &B64.encode(seed))?;
    let public = key.verifying_key();
    eprintln!("key id: {}", graven_core::event_sig::key_id(public.as_bytes()));
    println!("{}", B64.encode(public.as_bytes()));
    Ok(ExitCode::SUCCESS)
}

/// Signs the event on stdin (signature version 2): a fresh random id and the current time, so
/// the server accepts it once, within its time window (docs/identities.md).
pub fn sign_event(key: &Path) -> anyhow::Result<ExitCode> {
    let key = load_signing_key(key)?;
    let event = input::read_stdin(1 << 20)?;
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let id = graven_core::hex::encode(&nonce);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let signed =
        graven_core::event_sig::sign_event_v2(&key, &event, &id, now as i64).context("the event on stdin")?;
    let mut out = std::io::stdout().lock();
    out.write_all(&signed)?;
    out.write_all(b"\n")?;
    Ok(ExitCode::SUCCESS)
}
