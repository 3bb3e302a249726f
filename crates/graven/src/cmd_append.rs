use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use graven_core::event::canonical_event;
use graven_core::note::SignerKey;
use graven_core::tile::MAX_ENTRY_SIZE;
use graven_tlog::LocalLog;

use crate::input;

/// Most stdin one run takes. Everything is validated in memory before anything is written.
const MAX_STDIN: u64 = 4 << 30;

pub fn run(dir: &Path, key_file: &Path, raw: bool) -> anyhow::Result<ExitCode> {
    let key_text = input::read_small(key_file, input::MAX_KEY_FILE)?;
    let key = SignerKey::parse(key_text.trim_end())
        .with_context(|| format!("{} does not hold a signer key", key_file.display()))?;
    let data = input::read_stdin(MAX_STDIN)?;
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.last() == Some(&b'\n') || data.is_empty() {
        lines.pop();
    }
    let mut entries: Vec<Vec<u8>> = Vec::with_capacity(if raw { 0 } else { lines.len() });
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        if raw {
            if line.len() > MAX_ENTRY_SIZE {
                bail!(
                    "line {n}: {} bytes, over the {MAX_ENTRY_SIZE}-byte entry limit; nothing was appended",
                    line.len()
                );
            }
        } else {
            let event =
                canonical_event(line).map_err(|e| anyhow::anyhow!("line {n}: {e}; nothing was appended"))?;
            entries.push(event);
        }
    }
    let mut log = LocalLog::open(dir, key)?;
    let published = if raw { log.append(&lines)? } else { log.append(&entries)? };
    println!(
        "{}",
        serde_json::json!({
            "appended": published.new_size.0 - published.old_size.0,
            "tree_size": published.new_size.0,
            "root": published.root.to_base64(),
        })
    );
    Ok(ExitCode::SUCCESS)
}
