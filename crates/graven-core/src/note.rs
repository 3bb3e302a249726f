//! C2SP `signed-note` v1.0.0 with Ed25519 signatures (type `0x01`).
//!
//! A note is `text` (ending in a newline), a blank line, then one or more signature lines
//! `— <key name> base64(key ID || signature)`. [`open`] checks the *bytes received*: the
//! signature is verified over the exact text slice of the input, never over a re-encoding.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Largest note accepted, in bytes. Checkpoints are a few hundred bytes; this leaves room for
/// many cosignatures (even post-quantum ones of ~5 kB) while bounding work on hostile input.
pub const MAX_NOTE_SIZE: usize = 1 << 20;
/// Most signature lines accepted in one note. The spec requires accepting at least 16; this is
/// the limit of the Go reference implementation, so the same notes are accepted by both.
pub const MAX_SIGNATURES: usize = 100;

/// Signature type identifier for Ed25519 (C2SP signed-note §Signature types).
pub const ALG_ED25519: u8 = 0x01;

pub(crate) const EM_DASH_SPACE: &str = "\u{2014} ";

/// Why a note was rejected. The variants fall in three classes, see [`NoteError::class`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    #[error("note is {0} bytes, larger than the {MAX_NOTE_SIZE}-byte limit")]
    TooLarge(usize),
    #[error("note is not valid UTF-8 (at byte {0})")]
    InvalidUtf8(usize),
    #[error("note contains control character 0x{byte:02x} at byte {offset}; only newline is allowed")]
    ControlCharacter { byte: u8, offset: usize },
    #[error("note has no blank line followed by signature lines")]
    NoSignatures,
    #[error("note does not end with a newline")]
    NoFinalNewline,
    #[error("signature line {line} is malformed: {why}")]
    MalformedSignature { line: usize, why: &'static str },
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    #[error(
        "the signature by trusted key {name} does not verify: the note was altered or signed by another key"
    )]
    InvalidSignature { name: String },
    #[error("{}", unverified_message(seen, trusted))]
    Unverified {
        /// The signers, as `name+keyid` (the key id in hex, as in a verifier key).
        seen: Vec<String>,
        /// The trusted keys, the same way.
        trusted: Vec<String>,
    },
}

/// Says who signed and who was trusted, and points out the usual mistake: a key with the
/// right name but another key id (another log of the same name, or a wrong `--vkey`).
fn unverified_message(seen: &[String], trusted: &[String]) -> String {
    let list = |v: &[String]| if v.is_empty() { "nobody".to_owned() } else { v.join(", ") };
    let name = |s: &String| s.rsplit_once('+').map_or(s.clone(), |(n, _)| n.to_owned());
    let mut msg = format!(
        "no signature from a trusted key: the note is signed by {}, the keys given are {}",
        list(seen),
        list(trusted)
    );
    if let Some(same) = seen.iter().find(|s| trusted.iter().any(|t| name(t) == name(s))) {
        msg.push_str(&format!(
            " (the same name {} with another key id: a different log of that name, or the wrong verifier key)",
            name(same)
        ));
    }
    msg
}

/// The three outcomes a caller may need to tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteErrorClass {
    Malformed,
    InvalidSignature,
    Unverified,
}

impl NoteError {
    pub fn class(&self) -> NoteErrorClass {
        match self {
            NoteError::InvalidSignature { .. } => NoteErrorClass::InvalidSignature,
            NoteError::Unverified { .. } => NoteErrorClass::Unverified,
            _ => NoteErrorClass::Malformed,
        }
    }
}

/// Why a key string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("a verifier key has three parts, <name>+<8 hex digit key ID>+<base64 key>")]
    Shape,
    #[error("a signer key looks like PRIVATE+KEY+<name>+<8 hex digit key ID>+<base64 key>")]
    SignerShape,
    #[error("key name {0:?} is invalid: it must be non-empty and contain no spaces or '+'")]
    Name(String),
    #[error("key ID must be exactly 8 hex digits")]
    KeyIdFormat,
    #[error("key material is not standard padded base64")]
    Base64,
    #[error(
        "unsupported signature type 0x{0:02x} here: a log key is Ed25519 (0x01), a witness key Ed25519 cosignature/v1 (0x04)"
    )]
    Algorithm(u8),
    #[error("an Ed25519 key is 1 type byte and 32 key bytes, got {0} bytes")]
    Length(usize),
    #[error("not a valid Ed25519 public key")]
    PublicKey,
    #[error(
        "key ID {given:08x} does not match the key (expected {computed:08x}); the key string was altered"
    )]
    KeyIdMismatch { given: u32, computed: u32 },
}

/// C2SP key names: non-empty, no Unicode whitespace, no `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// `SHA-256(name || 0x0A || type || public key)[:4]`, big-endian.
pub fn key_id(name: &str, alg: u8, public_key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', alg]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn parse_key_parts(s: &str) -> Result<(&str, u32, [u8; 32]), KeyError> {
    parse_key_parts_of(s, ALG_ED25519)
}

/// Splits `<name>+<hex id>+<base64(alg || 32-byte key)>` for a key of type `alg` (the key ID is
/// checked by the caller, which knows how the key derives it).
pub(crate) fn parse_key_parts_of(s: &str, want: u8) -> Result<(&str, u32, [u8; 32]), KeyError> {
    // Names cannot hold '+', but base64 can: split at the first two only.
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::Shape);
    };
    if !is_valid_key_name(name) {
        return Err(KeyError::Name(name.to_owned()));
    }
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::KeyIdFormat);
    }
    let id = u32::from_str_radix(id_hex, 16).map_err(|_| KeyError::KeyIdFormat)?;
    let raw = B64.decode(key_b64).map_err(|_| KeyError::Base64)?;
    let Some((&alg, material)) = raw.split_first() else {
        return Err(KeyError::Length(0));
    };
    if alg != want {
        return Err(KeyError::Algorithm(alg));
    }
    let material: [u8; 32] = material.try_into().map_err(|_| KeyError::Length(raw.len()))?;
    Ok((name, id, material))
}

/// An Ed25519 verifier key, `<name>+<hex id>+<base64(0x01 || public key)>`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let (name, id, material) = parse_key_parts(s.trim_end_matches(['\n', '\r']))?;
        let key = VerifyingKey::from_bytes(&material).map_err(|_| KeyError::PublicKey)?;
        let computed = key_id(name, ALG_ED25519, key.as_bytes());
        if computed != id {
            return Err(KeyError::KeyIdMismatch { given: id, computed });
        }
        Ok(VerifierKey { name: name.to_owned(), id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        *self.key.as_bytes()
    }

    /// Verifies an Ed25519 signature over `msg`, rejecting non-canonical encodings.
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
            return false;
        };
        self.key.verify_strict(msg, &sig).is_ok()
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }
}

impl std::fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl std::str::FromStr for VerifierKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        VerifierKey::parse(s)
    }
}

/// An Ed25519 signer key, `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
/// Its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    id: u32,
    key: SigningKey,
}

impl SignerKey {
    pub const PREFIX: &'static str = "PRIVATE+KEY+";

    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let rest =
            s.trim_end_matches(['\n', '\r']).strip_prefix(Self::PREFIX).ok_or(KeyError::SignerShape)?;
        let (name, id, seed) = parse_key_parts(rest)?;
        let key = SigningKey::from_bytes(&seed);
        let computed = key_id(name, ALG_ED25519, key.verifying_key().as_bytes());
        if computed != id {
            return Err(KeyError::KeyIdMismatch { given: id, computed });
        }
        Ok(SignerKey { name: name.to_owned(), id, key })
    }

    /// Builds a key from a 32-byte Ed25519 seed. The caller supplies the randomness.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, KeyError> {
        if !is_valid_key_name(name) {
            return Err(KeyError::Name(name.to_owned()));
        }
        let key = SigningKey::from_bytes(&seed);
        let id = key_id(name, ALG_ED25519, key.verifying_key().as_bytes());
        Ok(SignerKey { name: name.to_owned(), id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn verifier(&self) -> VerifierKey {
        VerifierKey { name: self.name.clone(), id: self.id, key: self.key.verifying_key() }
    }

    /// The secret key string. Handle with care: whoever holds it can sign for the log.
    pub fn to_secret_string(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(&self.key.to_bytes());
        format!("{}{}+{:08x}+{}", Self::PREFIX, self.name, self.id, B64.encode(raw))
    }

    /// The signature line for `text`, including the em dash and the final newline.
    pub fn signature_line(&self, text: &[u8]) -> String {
        let sig = self.key.sign(text);
        let mut raw = Vec::with_capacity(68);
        raw.extend_from_slice(&self.id.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        format!("{EM_DASH_SPACE}{} {}\n", self.name, B64.encode(raw))
    }

    /// Signs `text` and returns the complete note. `text` must be valid note text: non-empty,
    /// ending in a newline, with no control characters other than newline.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let mut out = String::with_capacity(text.len() + 128);
        out.push_str(text);
        out.push('\n');
        out.push_str(&self.signature_line(text.as_bytes()));
        if out.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge(out.len()));
        }
        Ok(out)
    }
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignerKey({}+{:08x}, secret hidden)", self.name, self.id)
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if let Some((offset, &byte)) = text.as_bytes().iter().enumerate().find(|&(_, &b)| b < 0x20 && b != b'\n')
    {
        return Err(NoteError::ControlCharacter { byte, offset });
    }
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::NoFinalNewline);
    }
    Ok(())
}

/// One parsed signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature<'a> {
    pub name: &'a str,
    pub key_id: u32,
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
    /// The whole line as received, without its newline.
    pub line: &'a str,
}

/// A syntactically valid note whose signatures have not been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note<'a> {
    text: &'a str,
    signatures: Vec<NoteSignature<'a>>,
}

impl<'a> Note<'a> {
    /// Strict parse of a note as received.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge(bytes.len()));
        }
        let msg = std::str::from_utf8(bytes).map_err(|e| NoteError::InvalidUtf8(e.valid_up_to()))?;
        if let Some((offset, &byte)) = bytes.iter().enumerate().find(|&(_, &b)| b < 0x20 && b != b'\n') {
            return Err(NoteError::ControlCharacter { byte, offset });
        }
        if !msg.ends_with('\n') {
            return Err(NoteError::NoFinalNewline);
        }
        // The text is separated from the signatures by the *last* blank line.
        let split = msg.rfind("\n\n").ok_or(NoteError::NoSignatures)?;
        let text = &msg[..=split];
        let sig_block = &msg[split + 2..];
        if sig_block.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let mut signatures = Vec::new();
        for (i, line) in sig_block.split_terminator('\n').enumerate() {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            signatures.push(parse_signature_line(line, i + 1)?);
        }
        Ok(Note { text, signatures })
    }

    /// The signed text, including its final newline, exactly as received.
    pub fn text(&self) -> &'a str {
        self.text
    }

    pub fn signatures(&self) -> &[NoteSignature<'a>] {
        &self.signatures
    }
}

pub(crate) fn parse_signature_line(line: &str, n: usize) -> Result<NoteSignature<'_>, NoteError> {
    let bad = |why| NoteError::MalformedSignature { line: n, why };
    let rest = line.strip_prefix(EM_DASH_SPACE).ok_or(bad("it must start with an em dash and a space"))?;
    let (name, sig_b64) = rest.split_once(' ').ok_or(bad("it must be '— <name> <base64 signature>'"))?;
    if !is_valid_key_name(name) {
        return Err(bad("the key name is empty or contains a space or '+'"));
    }
    let raw = B64.decode(sig_b64).map_err(|_| bad("the signature is not standard padded base64"))?;
    if raw.len() < 5 {
        return Err(bad("the signature is shorter than a key ID and one byte"));
    }
    let key_id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    Ok(NoteSignature { name, key_id, signature: raw[4..].to_vec(), line })
}

/// A note with at least one signature verified by a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedNote<'a> {
    text: &'a str,
    verified_by: Vec<VerifierKey>,
    other_signatures: Vec<NoteSignature<'a>>,
}

impl<'a> VerifiedNote<'a> {
    /// The verified text, exactly as received.
    pub fn text(&self) -> &'a str {
        self.text
    }
    /// The trusted keys whose signatures verified, in the order they appear.
    pub fn verified_by(&self) -> &[VerifierKey] {
        &self.verified_by
    }
    /// Signatures from keys the caller did not pass (witnesses, rotated keys), unchecked.
    pub fn other_signatures(&self) -> &[NoteSignature<'a>] {
        &self.other_signatures
    }
}

/// Parses `bytes` and verifies it against `trusted`.
///
/// Signatures from unknown keys are ignored (kept in `other_signatures`). A signature from a
/// trusted key that does not verify rejects the whole note. At least one trusted signature
/// must verify.
pub fn open<'a>(bytes: &'a [u8], trusted: &[VerifierKey]) -> Result<VerifiedNote<'a>, NoteError> {
    let note = Note::parse(bytes)?;
    let mut verified_by: Vec<VerifierKey> = Vec::new();
    let mut other_signatures = Vec::new();
    for sig in note.signatures {
        let known = trusted.iter().find(|k| k.name == sig.name && k.id == sig.key_id);
        match known {
            Some(k) => {
                if !k.verify(note.text.as_bytes(), &sig.signature) {
                    return Err(NoteError::InvalidSignature { name: k.name.clone() });
                }
                if !verified_by.contains(k) {
                    verified_by.push(k.clone());
                }
            }
            None => {
                if !other_signatures.iter().any(|o: &NoteSignature<'_>| o.line == sig.line) {
                    other_signatures.push(sig);
                }
            }
        }
    }
    if verified_by.is_empty() {
        let seen = other_signatures.iter().map(|s| format!("{}+{:08x}", s.name, s.key_id)).collect();
        let trusted = trusted.iter().map(|k| format!("{}+{:08x}", k.name, k.id)).collect();
        return Err(NoteError::Unverified { seen, trusted });
    }
    Ok(VerifiedNote { text: note.text, verified_by, other_signatures })
}
