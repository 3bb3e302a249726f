//! `graven verify FILE.json --vkey K`: receipts kept from appends, checked offline
//! (docs/receipts.md): a receipt per event (one JSON object, or NDJSON as a batch answers) or
//! a batch's range receipt. No network, no trust store: what a receipt shows is that its
//! server signed a tree holding those leaves; `graven verify` of the log shows that tree is
//! the one everyone sees.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;

use crate::escape;

/// Largest receipt file read: a 10,000-event batch's receipts are about 11 MB.
const MAX_FILE: u64 = 64 << 20;

/// Whether `target` names a receipt file (`.json`, `.jsonl`, `.ndjson`) rather than a log.
pub fn is_receipt_file(target: &str) -> bool {
    let p = Path::new(target);
    p.extension().is_some_and(|e| ["json", "jsonl", "ndjson"].iter().any(|x| e.eq_ignore_ascii_case(x)))
        && p.is_file()
}

pub fn verify(target: &str, vkey: Option<&str>, json_out: bool) -> anyhow::Result<ExitCode> {
    let Some(vkey) = vkey else {
        bail!("--vkey is required to check receipts: they are checked against the log's key")
    };
    let vkey = crate::input::load_vkey(vkey)?;
    let shown = escape::for_terminal(target).to_string();
    let mut text = Vec::new();
    std::fs::File::open(target)
        .with_context(|| shown.clone())?
        .take(MAX_FILE + 1)
        .read_to_end(&mut text)
        .with_context(|| shown.clone())?;
    if text.len() as u64 > MAX_FILE {
        bail!("{shown} is over {MAX_FILE} bytes: not a receipt file");
    }
    let text = String::from_utf8(text).with_context(|| format!("{shown} is not UTF-8"))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let whole: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    let mut checked = Vec::new();
    let mut failed = None;
    if whole.as_ref().is_some_and(|v| v.get("range_proof").is_some()) {
        let r: graven_api::RangeReceipt =
            serde_json::from_str(&text).with_context(|| format!("{shown}: not a range receipt"))?;
        match graven_client::verify_range_receipt(&r, &vkey) {
            Ok(b) => checked.push((b.first_index, b.leaf_hashes.len() as u64, b.tree_size)),
            Err(e) => failed = Some(format!("the range receipt does not check out: {e}")),
        }
    } else {
        if lines.is_empty() {
            bail!("{shown} holds no receipt");
        }
        for (i, l) in lines.iter().enumerate() {
            let r: graven_api::Receipt =
                serde_json::from_str(l).with_context(|| format!("{shown} line {}: not a receipt", i + 1))?;
            match graven_client::verify_receipt(&r, &vkey) {
                Ok(v) => checked.push((v.index, 1, v.tree_size)),
                Err(e) => {
                    failed = Some(format!(
                        "the receipt on line {} (event {}) does not check out: {e}",
                        i + 1,
                        r.index
                    ));
                    break;
                }
            }
        }
    }
    let events: u64 = checked.iter().map(|c| c.1).sum();
    if let Some(why) = failed {
        if json_out {
            println!("{}", json!({"ok": false, "error": why}));
        }
        eprintln!("graven: {shown}: {} ; not shown logged", escape::message(&why));
        return Ok(ExitCode::from(1));
    }
    if json_out {
        let items: Vec<_> =
            checked.iter().map(|(i, n, s)| json!({"first_index": i, "events": n, "tree_size": s})).collect();
        println!("{}", json!({"ok": true, "events": events, "receipts": items, "key": vkey.to_string()}));
    }
    eprintln!(
        "graven: {shown}: {} receipt{} for {} event{}, each proved in a tree signed by {}",
        checked.len(),
        if checked.len() == 1 { "" } else { "s" },
        crate::human::count(events),
        if events == 1 { "" } else { "s" },
        escape::message(&vkey.to_string())
    );
    Ok(ExitCode::SUCCESS)
}
