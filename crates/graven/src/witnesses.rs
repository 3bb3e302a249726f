//! `--policy FILE` (a C2SP tlog-policy) for the commands that accept a checkpoint: reading it,
//! binding it to the log's key, and saying which witnesses cosigned.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use graven_core::note::VerifierKey;
use graven_core::policy::{MAX_POLICY_SIZE, ParseOptions, Policy};
use graven_verify::{LogPolicy, WitnessError, WitnessedCheckpoint};
use serde_json::{Value, json};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct PolicyArgs {
    /// A C2SP tlog-policy file: accept the log's checkpoint only if it is signed by the
    /// policy's log (which must be this log's key; without --vkey, the policy's only log is
    /// the log) and cosigned by a quorum of the policy's witnesses. The output names the
    /// witnesses that cosigned; a refusal names those that did and did not.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// With --policy: also admit witnesses whose key in the policy is a plain Ed25519 note key
    /// (type 0x01, as siglog's witness uses), and count their plain note signature on the
    /// checkpoint. Such a signature has no timestamp and no cosignature/v1 statement; off by
    /// default, since C2SP tlog-policy and tlog-cosignature make witness keys cosignature keys
    /// (type 0x04). See docs/witness.md.
    #[arg(long, requires = "policy")]
    pub policy_accept_note_signatures: bool,
}

/// A policy read from its file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub policy: LogPolicy,
}

impl PolicyArgs {
    fn options(&self) -> ParseOptions {
        ParseOptions { note_signature_witnesses: self.policy_accept_note_signatures }
    }

    fn read(&self) -> anyhow::Result<Option<(PathBuf, Vec<u8>)>> {
        let Some(path) = &self.policy else { return Ok(None) };
        let f =
            std::fs::File::open(path).with_context(|| format!("opening the policy {}", path.display()))?;
        let mut bytes = Vec::new();
        f.take(MAX_POLICY_SIZE as u64 + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading the policy {}", path.display()))?;
        Ok(Some((path.clone(), bytes)))
    }

    /// The policy, bound to `log` (which it must list) or to its only log.
    pub fn load(&self, log: Option<&VerifierKey>) -> anyhow::Result<Option<Loaded>> {
        let Some((path, bytes)) = self.read()? else { return Ok(None) };
        let policy = LogPolicy::parse(&bytes, self.options(), log)
            .with_context(|| format!("the policy {}", path.display()))?;
        Ok(Some(Loaded { path, policy }))
    }

    /// The policy as parsed, bound to no log (a tlog-proof may come from any of its logs).
    pub fn load_unbound(&self) -> anyhow::Result<Option<(PathBuf, Policy)>> {
        let Some((path, bytes)) = self.read()? else { return Ok(None) };
        let policy = Policy::parse(&bytes, self.options())
            .with_context(|| format!("the policy {}", path.display()))?;
        Ok(Some((path, policy)))
    }
}

/// The log's key: `--vkey` if given (the policy must list it), else the policy's only log.
pub fn log_key(vkey: Option<&str>, policy: &PolicyArgs) -> anyhow::Result<(VerifierKey, Option<Loaded>)> {
    let given = vkey.map(crate::input::load_vkey).transpose()?;
    let loaded = policy.load(given.as_ref())?;
    match (given, &loaded) {
        (Some(k), _) => Ok((k, loaded)),
        (None, Some(l)) => Ok((l.policy.log_key().clone(), loaded)),
        (None, None) => anyhow::bail!("--vkey is required (or --policy, whose log line names the key)"),
    }
}

/// A cosignature's time, RFC 3339 in UTC.
pub fn rfc3339(ts: u64) -> String {
    i64::try_from(ts)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{ts} seconds after 1970 (past the year 9999)"))
}

/// `W1 (cosigned 2025-01-01T00:00:00Z), W3 (...)`.
pub fn cosigned_text(w: &WitnessedCheckpoint) -> String {
    let names: Vec<String> = w
        .cosigned()
        .iter()
        .map(|(name, ts)| match ts {
            Some(t) => format!("{name} (cosigned {})", rfc3339(*t)),
            None => format!("{name} (a plain note signature, no time)"),
        })
        .collect();
    if names.is_empty() { "no witness (the policy's quorum is none)".to_owned() } else { names.join(", ") }
}

/// `witnessed under the policy FILE: cosigned by ...`.
pub fn witnessed_line(p: &Loaded, w: &WitnessedCheckpoint) -> String {
    format!(
        "witnessed: the quorum of the policy {} is met; cosigned by {}",
        p.path.display(),
        cosigned_text(w)
    )
}

pub fn cosigned_json(w: &WitnessedCheckpoint) -> Value {
    Value::Array(
        w.cosigned()
            .iter()
            .map(|(name, ts)| json!({"witness": name, "timestamp": ts, "time": ts.map(rfc3339)}))
            .collect(),
    )
}

/// The `"witnesses"` member of a success: the policy and who cosigned.
pub fn success_json(p: &Loaded, w: &WitnessedCheckpoint) -> Value {
    json!({"policy": p.path.display().to_string(), "quorum_met": true, "cosigned": cosigned_json(w)})
}

/// The `"witnesses"` member of a refusal.
pub fn refusal_json(p: &Path, e: &WitnessError) -> Value {
    let (cosigned, missing) = e.quorum().map_or((None, None), |(c, m)| (Some(c), Some(m)));
    json!({"policy": p.display().to_string(), "quorum_met": false, "cosigned": cosigned, "not_cosigned": missing, "error": e.to_string()})
}

/// Why having no quorum matters, after a refusal.
pub const REFUSAL_HINT: &str = "The log's own signature verified, but without a quorum of the policy's witnesses nothing shows that others were shown the same history. Nothing was remembered.";
