//! `graven verify FILE.tlog-proof --policy P --event E`: a C2SP tlog-proof checked offline with
//! the entry's bytes (`graven_verify::tlog_proof`).

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use graven_core::note;
use graven_core::tlog_proof::{MAX_EXTRA, MAX_PROOF_LINES};
use graven_verify::tlog_proof::{self, TlogProofCheckError};
use serde_json::json;

use crate::escape;
use crate::witnesses::{self, PolicyArgs};

/// The file's extension (C2SP tlog-proof: "Proofs SHOULD be stored with file extension
/// `.tlog-proof`").
pub const EXTENSION: &str = "tlog-proof";
/// Largest event read: far more than a Graven entry (65,535 bytes), for other logs' entries.
const MAX_EVENT: u64 = 16 << 20;
/// Largest proof file read: what the parser could accept, and one byte more for it to refuse.
const MAX_FILE: u64 = (note::MAX_NOTE_SIZE + 2 * MAX_EXTRA + 64 * (MAX_PROOF_LINES + 2)) as u64 + 1;

pub fn is_tlog_proof(target: &str) -> bool {
    let p = Path::new(target);
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case(EXTENSION)) && !p.is_dir()
}

fn read_bounded(mut r: impl Read, limit: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.by_ref().take(limit + 1).read_to_end(&mut buf).with_context(|| format!("reading {what}"))?;
    if buf.len() as u64 > limit {
        bail!("{what} is over {limit} bytes");
    }
    Ok(buf)
}

fn read_event(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        return read_bounded(std::io::stdin().lock(), MAX_EVENT, "the event on stdin");
    }
    let f = std::fs::File::open(path).with_context(|| format!("opening the event {}", path.display()))?;
    read_bounded(f, MAX_EVENT, &format!("the event {}", path.display()))
}

pub fn verify(
    target: &str,
    event: Option<&Path>,
    vkey: Option<&str>,
    policy: &PolicyArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let Some((policy_path, policy)) = policy.load_unbound()? else {
        bail!(
            "a .tlog-proof is checked against a witness policy: give --policy FILE (a C2SP tlog-policy; one `log <vkey>` line and `quorum none` check the log's signature alone)"
        );
    };
    let Some(event_path) = event else {
        bail!("give --event FILE with the exact bytes of the entry the proof is for (- for stdin)");
    };
    let key = vkey.map(crate::input::load_vkey).transpose()?;
    let file = std::fs::File::open(target).with_context(|| format!("opening {target}"))?;
    let bytes = read_bounded(file, MAX_FILE, target)?;
    let event = read_event(event_path)?;
    match tlog_proof::verify_tlog_proof(&bytes, &event, &policy, key.as_ref()) {
        Ok(p) => {
            let (inc, w) = (p.inclusion(), p.witnessed());
            let cp = w.checkpoint();
            let loaded_path = policy_path.display().to_string();
            if json {
                println!(
                    "{}",
                    escape::json_line(&json!({
                        "ok": true,
                        "proof": target,
                        "origin": cp.checkpoint().origin(),
                        "index": inc.index().0,
                        "leaf_hash": inc.leaf_hash().to_base64(),
                        "tree_size": inc.size().0,
                        "root": inc.root().to_base64(),
                        "event_bytes": event.len(),
                        "extra_bytes": p.extra().map(<[u8]>::len),
                        "witnesses": {"policy": loaded_path, "quorum_met": true, "cosigned": witnesses::cosigned_json(w)},
                    }))
                );
            }
            let mut lines = vec![
                format!(
                    "OK: {target} proves that the event ({} bytes, leaf hash {}) is entry {} of {}, in the tree of size {} with root {}",
                    event.len(),
                    inc.leaf_hash(),
                    inc.index().0,
                    cp.checkpoint().origin(),
                    inc.size().0,
                    inc.root()
                ),
                format!(
                    "  witnessed: the quorum of the policy {loaded_path} is met; cosigned by {}",
                    witnesses::cosigned_text(w)
                ),
            ];
            if let Some(extra) = p.extra() {
                lines.push(format!(
                    "  the proof's extra data ({} bytes) is unauthenticated and was not used",
                    extra.len()
                ));
            }
            for l in lines {
                if json {
                    eprintln!("{}", escape::message(&l));
                } else {
                    println!("{}", escape::message(&l));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json {
                let cosigned = match &e {
                    TlogProofCheckError::Policy(graven_core::policy::PolicyCheckError::Quorum {
                        cosigned,
                        missing,
                    }) => {
                        json!({"policy": policy_path.display().to_string(), "quorum_met": false, "cosigned": cosigned, "not_cosigned": missing})
                    }
                    _ => serde_json::Value::Null,
                };
                println!(
                    "{}",
                    escape::json_line(&json!({
                        "ok": false,
                        "error_kind": "alert",
                        "alert": "verification-failed",
                        "proof": target,
                        "error": e.to_string(),
                        "witnesses": cosigned,
                    }))
                );
            }
            eprintln!(
                "graven: {} FAILED verification: {}",
                escape::message(target),
                escape::message(&e.to_string())
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
