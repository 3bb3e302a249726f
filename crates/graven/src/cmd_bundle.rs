//! `graven verify <bundle.tar>`: an evidence bundle checked fully offline. A bundle is always
//! checked in full (every file, every proof); nothing of it is remembered between runs.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use graven_core::note::VerifierKey;
use graven_verify::bundle::{self, KeySource};

use crate::escape;
use crate::witnesses::{self, PolicyArgs};

/// Whether `target` names an evidence bundle rather than a log.
pub fn is_bundle(target: &str) -> bool {
    let p = Path::new(target);
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("tar")) && !p.is_dir()
}

fn describe(key: &VerifierKey, source: KeySource) -> String {
    match source {
        KeySource::Given => format!("trusted key: {key} (given with --vkey)"),
        KeySource::Policy => format!("trusted key: {key} (the log line of the policy given with --policy)"),
        KeySource::Bundled => format!(
            "trusted key: {key} (taken from the bundle itself, because no --vkey was given).\n  \
             WARNING: a key shipped inside a bundle proves only that the bundle is internally \
             consistent, not who runs the log. Compare it with the log's published key, or run \
             again with --vkey."
        ),
    }
}

pub fn run(
    target: &str,
    vkey: Option<&str>,
    policy: &PolicyArgs,
    json: bool,
    tsa: Option<&graven_tsa::TsaVerifier>,
) -> anyhow::Result<ExitCode> {
    let trusted = vkey.map(crate::input::load_vkey).transpose()?;
    let policy = policy.load(trusted.as_ref())?;
    let file = std::fs::File::open(target).with_context(|| format!("opening {target}"))?;
    let start = Instant::now();
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let result = match &policy {
        Some(p) => bundle::verify_bundle_witnessed(reader, &p.policy, trusted.is_some(), tsa),
        None => bundle::verify_bundle_with(reader, trusted.as_ref(), tsa),
    };
    let secs = start.elapsed().as_secs_f64();
    match result {
        Ok(r) => {
            if json {
                let mut j = serde_json::json!({
                    "ok": true,
                    "bundle": target,
                    "origin": r.origin,
                    "tree_size": r.tree_size.0,
                    "root": r.root.to_base64(),
                    "trusted_key": r.key.to_string(),
                    "key_source": match r.key_source { KeySource::Given => "given", KeySource::Bundled => "bundled", KeySource::Policy => "policy" },
                    "events": r.events.len(),
                    "older_checkpoints": r.older.iter().map(|(s, _)| s).collect::<Vec<_>>(),
                    "timestamps": r.stamps.iter().map(|(s, t)| serde_json::json!({"tree_size": s, "gen_time": t.to_string()})).collect::<Vec<_>>(),
                    "timestamps_not_checked": r.unchecked_stamps,
                    "files": r.files,
                    "seconds": secs,
                    "entries_per_second": if secs > 0.0 { r.events.len() as f64 / secs } else { 0.0 },
                    "mode": "full",
                });
                if let (Some(p), Some(w)) = (&policy, &r.witnessed) {
                    j["witnesses"] = witnesses::success_json(p, w);
                }
                println!("{}", escape::json_line(&j));
            }
            let range = match (r.events.first(), r.events.last()) {
                (Some(a), Some(b)) => format!(" (indices {a}..={b})"),
                _ => String::new(),
            };
            let older = if r.older.is_empty() {
                String::new()
            } else {
                let sizes: Vec<String> = r.older.iter().map(|(s, _)| s.to_string()).collect();
                format!("; older checkpoints of size {} are consistent with it", sizes.join(", "))
            };
            let witnessed = match (&policy, &r.witnessed) {
                (Some(p), Some(w)) => format!("\n{}", witnesses::witnessed_line(p, w)),
                _ => String::new(),
            };
            let mut stamps = String::new();
            for (size, time) in &r.stamps {
                stamps.push_str(&format!("\ntime-stamp: the checkpoint of size {size} existed at {time} (token verified against --tsa-cert)"));
            }
            if !r.unchecked_stamps.is_empty() {
                let sizes: Vec<String> = r.unchecked_stamps.iter().map(u64::to_string).collect();
                stamps.push_str(&format!(
                    "\ntime-stamp tokens for sizes {} were NOT checked: pass --tsa-cert with the TSA's root certificate",
                    sizes.join(", ")
                ));
            }
            let out = format!(
                "OK: evidence bundle {target} verifies: {} events{range} proven included in {} at tree size {}, root {}{older}; {} files match the manifest ({secs:.2}s){stamps}\n{}{witnessed}",
                r.events.len(),
                r.origin,
                r.tree_size,
                r.root,
                r.files,
                describe(&r.key, r.key_source)
            );
            // Each line escaped on its own: the bundle's origin and key are its own words.
            let out: Vec<String> = out.lines().map(|l| escape::message(l).into_owned()).collect();
            if json {
                eprintln!("{}", out.join("\n"));
            } else {
                println!("{}", out.join("\n"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => {
            if json {
                let mut j = serde_json::json!({
                    "ok": false,
                    "error_kind": "alert",
                    "alert": "verification-failed",
                    "bundle": target,
                    "problems": f.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    "trusted_key": f.key.as_ref().map(|(k, _)| k.to_string()),
                });
                let refusal = f.problems.iter().find_map(|p| match p {
                    bundle::Problem::Checkpoint(bundle::CheckpointProblem::NotWitnessed(e)) => Some(e),
                    _ => None,
                });
                if let (Some(p), Some(e)) = (&policy, refusal) {
                    j["witnesses"] = witnesses::refusal_json(&p.path, e);
                }
                println!("{}", escape::json_line(&j));
            }
            eprintln!("graven: evidence bundle {} FAILED verification:", escape::message(target));
            for p in &f.problems {
                eprintln!("  - {}", escape::for_terminal(&p.to_string()));
            }
            if f.stopped_early {
                eprintln!("  (stopped reading the bundle here)");
            }
            if let Some((k, s)) = &f.key {
                for l in describe(k, *s).lines() {
                    eprintln!("{}", escape::message(l));
                }
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
