//! Holding a log's checkpoints to a C2SP `tlog-policy`: the log's own signature, and a quorum of
//! witness cosignatures.
//!
//! A checkpoint signed by the log's key proves what the key signed, not that everyone was shown
//! the same history. With a policy, a checkpoint is accepted only if the witnesses the policy
//! names, in the quorum it defines, cosigned it; each of them cosigns only checkpoints
//! consistent with every one it cosigned before (C2SP `tlog-witness`), so a fork or a rewritten
//! history cannot reach a verifier unless a quorum of witnesses misbehaves.
//!
//! [`LogPolicy`] is a parsed policy bound to the one log a command verifies: the log's key must
//! be one of the policy's `log` lines (tlog-policy: "a checkpoint is considered valid if it is
//! signed by any one of the listed logs"; here the log is known from context, and the policy
//! must agree with it). [`LogPolicy::check`] applies it to a checkpoint that already verified
//! with that key; only it makes a [`WitnessedCheckpoint`] and a [`WitnessedLog`].
//!
//! Which witness key types count is the policy's parse option
//! ([`ParseOptions::note_signature_witnesses`]): by default only `cosignature/v1` keys (type
//! `0x04`), as tlog-policy and tlog-cosignature say; see `docs/witness.md`.

use graven_core::checkpoint::{OpenError, VerifiedCheckpoint};
use graven_core::hash::{Hash, TreeSize};
use graven_core::note::VerifierKey;
use graven_core::policy::{ParseOptions, Policy, PolicyCheckError, PolicyError};

pub use graven_core::policy::WitnessedCheckpoint;

use crate::report::VerifiedLog;

/// Why a policy cannot be used for this log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyLogError {
    #[error("{0}")]
    Parse(#[from] PolicyError),
    #[error(
        "the policy does not list this log's key {key}; its log lines are: {listed}. Add `log {key}` to the policy, or give the key the policy names"
    )]
    NotListed { key: String, listed: String },
    #[error("the policy lists no log; add a `log <vkey>` line with this log's verifier key")]
    NoLog,
    #[error("the policy lists {0} logs; name the one to verify with --vkey")]
    Ambiguous(usize),
}

/// A checkpoint that verified with the log's key but not under the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// No quorum of valid cosignatures, a cosignature line from a witness of the policy that
    /// does not verify, or an origin that is not the log key's name.
    #[error("the checkpoint of size {size} (root {root}) is refused by the witness policy: {problem}")]
    Policy { size: TreeSize, root: Hash, problem: PolicyCheckError },
    /// The policy accepts the checkpoint, but through another of its logs than the one verified.
    #[error(
        "the checkpoint of size {size} (root {root}) is not signed by the log key {key} that the policy was bound to: {problem}"
    )]
    OtherLog { size: TreeSize, root: Hash, key: String, problem: OpenError },
}

impl WitnessError {
    /// For a missing quorum: the witnesses (policy names) whose cosignature verified, and the
    /// others.
    pub fn quorum(&self) -> Option<(&[String], &[String])> {
        match self {
            WitnessError::Policy { problem: PolicyCheckError::Quorum { cosigned, missing }, .. } => {
                Some((cosigned, missing))
            }
            _ => None,
        }
    }
}

/// A tlog-policy bound to one log's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPolicy {
    policy: Policy,
    log: VerifierKey,
    options: ParseOptions,
}

impl LogPolicy {
    /// Parses a policy file and binds it to `log` (which must be listed), or to the policy's
    /// only log when `log` is `None`.
    pub fn parse(
        bytes: &[u8],
        options: ParseOptions,
        log: Option<&VerifierKey>,
    ) -> Result<Self, PolicyLogError> {
        let policy = Policy::parse(bytes, options)?;
        Self::new(policy, options, log)
    }

    /// Binds `policy` (parsed with `options`) to `log`, or to its only log.
    pub fn new(
        policy: Policy,
        options: ParseOptions,
        log: Option<&VerifierKey>,
    ) -> Result<Self, PolicyLogError> {
        let logs = policy.logs();
        let log = match log {
            Some(k) => {
                if !logs.iter().any(|l| l.key == *k) {
                    let listed = if logs.is_empty() {
                        "none".to_owned()
                    } else {
                        logs.iter().map(|l| l.key.to_string()).collect::<Vec<_>>().join(", ")
                    };
                    return Err(PolicyLogError::NotListed { key: k.to_string(), listed });
                }
                k.clone()
            }
            None => match logs {
                [] => return Err(PolicyLogError::NoLog),
                [only] => only.key.clone(),
                many => return Err(PolicyLogError::Ambiguous(many.len())),
            },
        };
        Ok(LogPolicy { policy, log, options })
    }

    /// The log's key: the one a verification with this policy must use.
    pub fn log_key(&self) -> &VerifierKey {
        &self.log
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether witnesses with plain Ed25519 note keys (type `0x01`) were admitted.
    pub fn admits_note_signatures(&self) -> bool {
        self.options.note_signature_witnesses
    }

    /// Checks `cp` (the signed note exactly as received, cosignatures included) under the
    /// policy: signed by this policy's log with the origin its key names, every cosignature line
    /// from a witness of the policy valid, and the quorum met.
    pub fn check(&self, cp: &VerifiedCheckpoint) -> Result<WitnessedCheckpoint, WitnessError> {
        let (size, root) = (cp.size(), cp.root());
        let witnessed = self.policy.verify(cp.note_bytes()).map_err(|problem| WitnessError::Policy {
            size,
            root,
            problem,
        })?;
        // The policy accepts any of its logs; the checkpoint must be this log's.
        VerifiedCheckpoint::open(cp.note_bytes(), &self.log, self.log.name())
            .map_err(|problem| WitnessError::OtherLog { size, root, key: self.log.to_string(), problem })?;
        Ok(witnessed)
    }

    /// [`LogPolicy::check`] for a log that fully verified with this policy's key.
    pub fn check_log(&self, log: &VerifiedLog) -> Result<WitnessedLog, WitnessError> {
        let witnessed = self.check(log.checkpoint())?;
        Ok(WitnessedLog { log: log.clone(), witnessed })
    }
}

/// A log that fully verified ([`VerifiedLog`]) and whose checkpoint the policy accepts. Only
/// [`LogPolicy::check_log`] makes one; `TrustStore::remember_witnessed` takes it.
#[derive(Debug, Clone)]
pub struct WitnessedLog {
    log: VerifiedLog,
    witnessed: WitnessedCheckpoint,
}

impl WitnessedLog {
    pub fn log(&self) -> &VerifiedLog {
        &self.log
    }
    pub fn witnessed(&self) -> &WitnessedCheckpoint {
        &self.witnessed
    }
}

#[cfg(test)]
mod tests;
