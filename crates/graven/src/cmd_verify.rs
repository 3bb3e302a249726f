use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use graven_core::note::VerifierKey;
use graven_verify::{DirFetch, Fetch, HttpFetch, verify_log};

use crate::input;

/// Accepts a verifier key string, or the path of a file holding one.
pub fn load_vkey(arg: &str) -> anyhow::Result<VerifierKey> {
    match VerifierKey::parse(arg) {
        Ok(k) => Ok(k),
        Err(e) => {
            let path = std::path::Path::new(arg);
            if path.is_file() {
                let text = input::read_small(path, input::MAX_KEY_FILE)?;
                VerifierKey::parse(text.trim())
                    .with_context(|| format!("{} does not hold a verifier key", path.display()))
            } else {
                Err(e).context("--vkey is neither a verifier key nor a file holding one")
            }
        }
    }
}

pub fn run(target: &str, vkey: Option<&str>, origin: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    if crate::cmd_bundle::is_bundle(target) {
        return crate::cmd_bundle::run(target, vkey, json);
    }
    let vkey = load_vkey(vkey.ok_or_else(|| anyhow::anyhow!("--vkey is required to verify a log"))?)?;
    if target.starts_with("http://") || target.starts_with("https://") {
        let mut f = HttpFetch::new(target);
        report(&mut f, &vkey, origin, json)
    } else {
        let path = std::path::Path::new(target);
        if !path.is_dir() {
            anyhow::bail!("{target} is not a directory or an http(s) URL");
        }
        let mut f = DirFetch::new(path);
        report(&mut f, &vkey, origin, json)
    }
}

fn report<F: Fetch>(
    f: &mut F,
    vkey: &VerifierKey,
    origin: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} verifying [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let start = Instant::now();
    let result = verify_log(f, vkey, origin, |done, total| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let secs = start.elapsed().as_secs_f64();
    match result {
        Ok(r) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": true,
                        "location": f.location(),
                        "origin": r.origin,
                        "tree_size": r.size.0,
                        "root": r.root.to_base64(),
                        "bundles": r.bundles,
                        "tiles": r.tiles,
                        "entry_bytes": r.entry_bytes,
                        "seconds": secs,
                        "entries_per_second": if secs > 0.0 { r.size.0 as f64 / secs } else { 0.0 },
                    })
                );
            } else {
                println!(
                    "OK: {} verifies: {} entries, root {}, {} bundles and {} tiles checked in {:.2}s",
                    r.origin, r.size.0, r.root, r.bundles, r.tiles, secs
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "location": f.location(), "error": e.to_string()})
                );
            }
            eprintln!("graven: verification FAILED for {}: {e}", f.location());
            Ok(ExitCode::FAILURE)
        }
    }
}
