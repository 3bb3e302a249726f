//! C2SP `tlog-cosignature` v1.0.1, the Ed25519 form (`cosignature/v1`, signature type `0x04`).
//!
//! A cosignature is a note signature line on a checkpoint by a *witness*: a statement that, as
//! of its timestamp, the checkpoint is the largest consistent tree head the witness has seen for
//! that origin. The signature is a `timestamped_signature`:
//!
//! ```text
//! u64 timestamp (big-endian POSIX seconds) || Ed25519 signature (64 bytes)
//! ```
//!
//! over the message
//!
//! ```text
//! cosignature/v1\n
//! time <timestamp, decimal, no leading zeroes>\n
//! <the checkpoint's note text, extension lines included, final newline included>
//! ```
//!
//! The key ID is `SHA-256(name || "\n" || 0x04 || public key)[:4]`, so a cosigner key can never
//! be taken for a log key (type `0x01`) with the same name and key, nor the other way round.
//! Pure: the caller supplies the time and the key seed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::note::{self, EM_DASH_SPACE, KeyError, Note, NoteSignature};

/// Signature type identifier for Ed25519 `cosignature/v1` (C2SP tlog-cosignature).
pub const ALG_COSIGNATURE_V1: u8 = 0x04;
/// The largest timestamp a cosignature may carry (the spec's 2^63 - 1).
pub const MAX_TIMESTAMP: u64 = (1 << 63) - 1;
/// `timestamp || signature`.
const SIGNATURE_LEN: usize = 8 + 64;

/// The bytes an Ed25519 cosigner signs for `note_text` at `timestamp`.
pub fn message(timestamp: u64, note_text: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(note_text.len() + 40);
    m.extend_from_slice(b"cosignature/v1\ntime ");
    m.extend_from_slice(timestamp.to_string().as_bytes());
    m.push(b'\n');
    m.extend_from_slice(note_text.as_bytes());
    m
}

/// A witness's public key, `<name>+<hex id>+<base64(0x04 || public key)>`.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignerKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl CosignerKey {
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let (name, id, material) =
            note::parse_key_parts_of(s.trim_end_matches(['\n', '\r']), ALG_COSIGNATURE_V1)?;
        let key = VerifyingKey::from_bytes(&material).map_err(|_| KeyError::PublicKey)?;
        if key.is_weak() {
            return Err(KeyError::PublicKey);
        }
        let computed = note::key_id(name, ALG_COSIGNATURE_V1, key.as_bytes());
        if computed != id {
            return Err(KeyError::KeyIdMismatch { given: id, computed });
        }
        Ok(CosignerKey { name: name.to_owned(), id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Checks one signature line against this key: it must carry this key's name and ID, and a
    /// `timestamped_signature` that verifies (strictly) over `note_text` at its timestamp.
    /// Returns the timestamp.
    pub fn verify(&self, note_text: &str, sig: &NoteSignature<'_>) -> Result<u64, CosignatureError> {
        if sig.name != self.name || sig.key_id != self.id {
            return Err(CosignatureError::NotThisKey);
        }
        let raw: &[u8; SIGNATURE_LEN] =
            sig.signature.as_slice().try_into().map_err(|_| CosignatureError::Length(sig.signature.len()))?;
        let (ts, signature) = raw.split_at(8);
        let timestamp = u64::from_be_bytes(ts.try_into().map_err(|_| CosignatureError::Length(raw.len()))?);
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::Timestamp(timestamp));
        }
        let signature =
            ed25519_dalek::Signature::from_slice(signature).map_err(|_| CosignatureError::Invalid)?;
        self.key
            .verify_strict(&message(timestamp, note_text), &signature)
            .map_err(|_| CosignatureError::Invalid)?;
        Ok(timestamp)
    }
}

impl std::fmt::Display for CosignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_COSIGNATURE_V1);
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }
}

impl std::fmt::Debug for CosignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CosignerKey({self})")
    }
}

/// A witness's signing key, `PRIVATE+KEY+<name>+<hex id>+<base64(0x04 || seed)>`. Its `Debug`
/// output never shows the secret.
#[derive(Clone)]
pub struct Cosigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl Cosigner {
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let rest = s
            .trim_end_matches(['\n', '\r'])
            .strip_prefix(note::SignerKey::PREFIX)
            .ok_or(KeyError::SignerShape)?;
        let (name, id, seed) = note::parse_key_parts_of(rest, ALG_COSIGNATURE_V1)?;
        let key = SigningKey::from_bytes(&seed);
        let computed = note::key_id(name, ALG_COSIGNATURE_V1, key.verifying_key().as_bytes());
        if computed != id {
            return Err(KeyError::KeyIdMismatch { given: id, computed });
        }
        Ok(Cosigner { name: name.to_owned(), id, key })
    }

    /// Builds a key from a 32-byte Ed25519 seed. The caller supplies the randomness.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, KeyError> {
        if !note::is_valid_key_name(name) {
            return Err(KeyError::Name(name.to_owned()));
        }
        let key = SigningKey::from_bytes(&seed);
        let id = note::key_id(name, ALG_COSIGNATURE_V1, key.verifying_key().as_bytes());
        Ok(Cosigner { name: name.to_owned(), id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> CosignerKey {
        CosignerKey { name: self.name.clone(), id: self.id, key: self.key.verifying_key() }
    }

    /// The secret key string. Whoever holds it can cosign for this witness.
    pub fn to_secret_string(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_COSIGNATURE_V1);
        raw.extend_from_slice(&self.key.to_bytes());
        format!("{}{}+{:08x}+{}", note::SignerKey::PREFIX, self.name, self.id, B64.encode(raw))
    }

    /// The cosignature line (em dash, name, base64, final newline) for `note_text` at
    /// `timestamp` (POSIX seconds, at most [`MAX_TIMESTAMP`]).
    pub fn cosign(&self, note_text: &str, timestamp: u64) -> Result<String, CosignatureError> {
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::Timestamp(timestamp));
        }
        let sig = self.key.sign(&message(timestamp, note_text));
        let mut raw = Vec::with_capacity(4 + SIGNATURE_LEN);
        raw.extend_from_slice(&self.id.to_be_bytes());
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        Ok(format!("{EM_DASH_SPACE}{} {}\n", self.name, B64.encode(raw)))
    }
}

impl std::fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cosigner({}+{:08x}, secret hidden)", self.name, self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignatureError {
    #[error("the signature line is not from this witness key (name or key ID differ)")]
    NotThisKey,
    #[error("a cosignature/v1 signature is 8 timestamp bytes and 64 signature bytes, got {0} bytes")]
    Length(usize),
    #[error("the cosignature's timestamp {0} is over 2^63 - 1")]
    Timestamp(u64),
    #[error("the cosignature does not verify over this checkpoint")]
    Invalid,
}

/// What one witness key found in a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cosigned {
    /// A valid cosignature, with its timestamp.
    Valid(u64),
    /// No signature line with this key's name and ID.
    Absent,
    /// A line with this key's name and ID that does not verify: the note is malformed (per
    /// signed-note), which a verifier treats as a failure, not as a missing cosignature.
    Invalid(CosignatureError),
}

/// For each of `keys`, whether `note` carries its valid cosignature (a key with several lines
/// is valid if any verifies; any failing line from a key makes it `Invalid`).
pub fn check(note: &Note<'_>, keys: &[CosignerKey]) -> Vec<Cosigned> {
    keys.iter()
        .map(|k| {
            let mut found = Cosigned::Absent;
            for sig in note.signatures().iter().filter(|s| s.name == k.name && s.key_id == k.id) {
                match k.verify(note.text(), sig) {
                    Ok(ts) if !matches!(found, Cosigned::Invalid(_)) => found = Cosigned::Valid(ts),
                    Ok(_) => {}
                    Err(e) => found = Cosigned::Invalid(e),
                }
            }
            found
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKPOINT: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn witness() -> Cosigner {
        Cosigner::from_seed("witness.example.com/w1", [7; 32]).unwrap()
    }

    #[test]
    fn the_message_is_the_spec_s() {
        assert_eq!(
            message(1679315147, CHECKPOINT),
            b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        assert!(message(0, "x\n").starts_with(b"cosignature/v1\ntime 0\n"));
    }

    #[test]
    fn a_cosignature_verifies_and_binds_its_time_and_text() {
        let w = witness();
        let line = w.cosign(CHECKPOINT, 1_700_000_000).unwrap();
        let note = format!("{CHECKPOINT}\n{line}");
        let parsed = Note::parse(note.as_bytes()).unwrap();
        assert_eq!(check(&parsed, &[w.verifier()]), vec![Cosigned::Valid(1_700_000_000)]);
        // The key string round-trips, and a key of another type or name is no match.
        let vk = CosignerKey::parse(&w.verifier().to_string()).unwrap();
        assert_eq!(vk, w.verifier());
        let other = Cosigner::from_seed("witness.example.com/w2", [7; 32]).unwrap().verifier();
        assert_eq!(check(&parsed, &[other]), vec![Cosigned::Absent]);
        assert!(crate::note::VerifierKey::parse(&w.verifier().to_string()).is_err(), "not a log key");
        // Another checkpoint, or another time, does not verify.
        let moved = note.replace("20852163", "20852164");
        assert!(matches!(
            check(&Note::parse(moved.as_bytes()).unwrap(), &[w.verifier()])[0],
            Cosigned::Invalid(_)
        ));
        let sig = parsed.signatures()[0].clone();
        let mut raw = sig.signature.clone();
        raw[7] ^= 1;
        let bumped = NoteSignature { signature: raw, ..sig };
        assert_eq!(w.verifier().verify(CHECKPOINT, &bumped), Err(CosignatureError::Invalid));
        // The secret round-trips and never shows in Debug.
        let back = Cosigner::parse(&w.to_secret_string()).unwrap();
        assert_eq!(back.verifier(), w.verifier());
        assert!(!format!("{w:?}").contains(&w.to_secret_string()[12..]));
        assert!(w.cosign(CHECKPOINT, MAX_TIMESTAMP + 1).is_err());
    }

    /// The spec's example line: a key ID, then the timestamp of its example message.
    #[test]
    fn the_spec_example_has_the_documented_shape() {
        let line = "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==";
        let sig = note::parse_signature_line(line, 1).unwrap();
        assert_eq!(sig.signature.len(), SIGNATURE_LEN);
        let ts = u64::from_be_bytes(sig.signature[..8].try_into().unwrap());
        assert_eq!(ts, 1679315147);
    }

    /// The key ID is the spec's: SHA-256(name || "\n" || 0x04 || key)[:4], which differs from
    /// the same key's log (0x01) key ID.
    #[test]
    fn the_key_id_commits_to_the_type() {
        let w = witness();
        let pk = *w.verifier().public_key();
        assert_eq!(w.verifier().id(), note::key_id("witness.example.com/w1", 0x04, &pk));
        assert_ne!(w.verifier().id(), note::key_id("witness.example.com/w1", 0x01, &pk));
    }
}
