//! The logs a witness follows: for each origin, the public keys it trusts to sign that origin's
//! checkpoints. C2SP `tlog-witness` §Introduction: "Each witness is configured with a list of
//! supported log public keys. For each log, uniquely identified by its origin line, the witness
//! is only required to keep track of the latest checkpoint it observed and verified."
//!
//! A key is an Ed25519 note verifier key (signed-note §Verifier keys, type `0x01`) whose name is
//! the origin (tlog-checkpoint §Signatures: "The log's key name in its signature line SHOULD
//! match the origin line"; Graven requires it, so one setting cannot be read two ways). An
//! origin may have several keys (a log rotating its key): a checkpoint signed by any of them
//! verifies.

use std::collections::BTreeMap;

use graven_core::note::{KeyError, VerifierKey};

/// Why a log setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogSettingError {
    #[error("a log is given as ORIGIN=VKEY, where VKEY is the log's Ed25519 verifier key named ORIGIN")]
    Shape,
    #[error("the log key is not an Ed25519 note verifier key: {0}")]
    Key(#[from] KeyError),
    #[error(
        "the log key is named {name:?}, not the origin {origin:?}; a log's key must be named after its origin"
    )]
    NameNotOrigin { origin: String, name: String },
    #[error("origin {0:?} is not a valid key name (empty, or with spaces or '+')")]
    Origin(String),
}

/// Origin → trusted keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedLogs {
    by_origin: BTreeMap<String, Vec<VerifierKey>>,
}

impl TrustedLogs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key` for `origin`. The key's name must be the origin. Adding a key twice is a
    /// no-op.
    pub fn add(&mut self, origin: &str, key: VerifierKey) -> Result<(), LogSettingError> {
        if !graven_core::note::is_valid_key_name(origin) {
            return Err(LogSettingError::Origin(origin.to_owned()));
        }
        if key.name() != origin {
            return Err(LogSettingError::NameNotOrigin {
                origin: origin.to_owned(),
                name: key.name().to_owned(),
            });
        }
        let keys = self.by_origin.entry(origin.to_owned()).or_default();
        if !keys.contains(&key) {
            keys.push(key);
        }
        Ok(())
    }

    /// Parses `ORIGIN=VKEY` (the `--log` flag). The origin may itself hold `=`: the split is
    /// the one whose VKEY is named ORIGIN, and there is at most one such split because key names
    /// cannot hold `+`.
    pub fn parse_setting(s: &str) -> Result<(String, VerifierKey), LogSettingError> {
        let s = s.trim();
        let mut first_error = None;
        for (i, _) in s.match_indices('=') {
            let (origin, vkey) = (&s[..i], &s[i + 1..]);
            match VerifierKey::parse(vkey) {
                Ok(k) if k.name() == origin => return Ok((origin.to_owned(), k)),
                Ok(k) => {
                    first_error.get_or_insert(LogSettingError::NameNotOrigin {
                        origin: origin.to_owned(),
                        name: k.name().to_owned(),
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(LogSettingError::Key(e));
                }
            }
        }
        Err(first_error.unwrap_or(LogSettingError::Shape))
    }

    /// The keys trusted for `origin`, if the witness follows it.
    pub fn keys(&self, origin: &str) -> Option<&[VerifierKey]> {
        self.by_origin.get(origin).map(Vec::as_slice)
    }

    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.by_origin.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_origin.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_origin.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graven_core::note::SignerKey;

    #[test]
    fn a_setting_names_its_origin() {
        let k = SignerKey::from_seed("example.com/log", [1; 32]).unwrap().verifier();
        let (origin, key) = TrustedLogs::parse_setting(&format!("example.com/log={k}")).unwrap();
        assert_eq!((origin.as_str(), &key), ("example.com/log", &k));
        // An origin with '=' in it.
        let odd = SignerKey::from_seed("a=b", [2; 32]).unwrap().verifier();
        assert_eq!(TrustedLogs::parse_setting(&format!("a=b={odd}")).unwrap().0, "a=b");
        // Another name, another type, no '=' at all.
        assert!(matches!(
            TrustedLogs::parse_setting(&format!("example.com/other={k}")),
            Err(LogSettingError::NameNotOrigin { .. })
        ));
        let cosigner = graven_core::cosignature::Cosigner::from_seed("example.com/log", [1; 32]).unwrap();
        assert!(matches!(
            TrustedLogs::parse_setting(&format!("example.com/log={}", cosigner.verifier())),
            Err(LogSettingError::Key(KeyError::Algorithm(4)))
        ));
        assert_eq!(TrustedLogs::parse_setting("nothing"), Err(LogSettingError::Shape));
        let mut logs = TrustedLogs::new();
        logs.add("example.com/log", k.clone()).unwrap();
        logs.add("example.com/log", k.clone()).unwrap();
        assert_eq!(logs.keys("example.com/log").unwrap().len(), 1);
        assert!(logs.add("example.com/x", k).is_err());
        assert!(logs.keys("example.com/x").is_none());
    }
}
