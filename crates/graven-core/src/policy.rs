//! C2SP `tlog-policy`: which logs are trusted, which witnesses, and the quorum of witnesses
//! whose cosignatures make a checkpoint valid.
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> all|any|<k> <name>...
//! quorum <name>            # exactly one; `none` requires no cosignature
//! ```
//!
//! Parsing follows the spec to the letter: whitespace is spaces and tabs only; empty and `#`
//! lines are ignored; only tab, newline, 0x20–0x7E and 0x80–0xFF may appear; a group or the
//! quorum may name only witnesses and groups defined on earlier lines (so no cycles); a name is
//! defined once and listed at most once per group; `none` is predefined and cannot be a member;
//! `1 <= k <= n`; two logs or two witnesses may not wrap the same public key; names are opaque
//! octet strings. Witness keys are `cosignature/v1` keys (type `0x04`) as the spec says;
//! [`ParseOptions::note_signature_witnesses`] also admits plain Ed25519 note keys (type `0x01`)
//! for witnesses that answer with an ordinary note signature instead of a cosignature (see
//! docs/witness.md for what such a signature does not state).
//!
//! [`Policy::verify`] opens a checkpoint against the policy: signed by one of the logs (whose
//! key name is the checkpoint's origin), every cosignature line from a known witness valid, and
//! the quorum met. Only it makes a [`WitnessedCheckpoint`].

use crate::checkpoint::{Checkpoint, CheckpointError, VerifiedCheckpoint};
use crate::cosignature::{self, Cosigned, CosignerKey};
use crate::note::{self, KeyError, Note, NoteError, VerifierKey};

/// Largest policy file accepted.
pub const MAX_POLICY_SIZE: usize = 64 << 10;
/// Most logs, witnesses and groups (each); the spec recommends supporting at least 32.
pub const MAX_ENTRIES: usize = 256;

/// How to read a policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Admit witnesses whose key is a plain Ed25519 note key (type `0x01`).
    pub note_signature_witnesses: bool,
}

/// A witness's key: a cosigner key, or (when admitted) a plain note key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessKey {
    Cosignature(CosignerKey),
    Note(VerifierKey),
}

impl WitnessKey {
    pub fn name(&self) -> &str {
        match self {
            WitnessKey::Cosignature(k) => k.name(),
            WitnessKey::Note(k) => k.name(),
        }
    }
    fn public_key(&self) -> [u8; 32] {
        match self {
            WitnessKey::Cosignature(k) => *k.public_key(),
            WitnessKey::Note(k) => k.public_key(),
        }
    }
}

impl std::fmt::Display for WitnessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WitnessKey::Cosignature(k) => k.fmt(f),
            WitnessKey::Note(k) => k.fmt(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub key: VerifierKey,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// The policy's name for it (opaque octets; UTF-8 in practice).
    pub name: Vec<u8>,
    pub key: WitnessKey,
    pub url: Option<String>,
}

/// A name in the policy's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: Vec<u8>,
    threshold: usize,
    members: Vec<Member>,
}

/// What the quorum line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quorum {
    None,
    Of(Member),
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    logs: Vec<Log>,
    witnesses: Vec<Witness>,
    groups: Vec<Group>,
    quorum: Quorum,
}

/// Why a policy file was refused: the line (1-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy line {line}: {why}")]
pub struct PolicyError {
    pub line: usize,
    pub why: String,
}

fn err(line: usize, why: impl Into<String>) -> PolicyError {
    PolicyError { line, why: why.into() }
}

/// Why a checkpoint does not satisfy a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyCheckError {
    #[error("the checkpoint is not signed by a log this policy trusts: {0}")]
    Log(NoteError),
    #[error("checkpoint body: {0}")]
    Body(#[from] CheckpointError),
    #[error("the checkpoint's origin {origin:?} is not the name of the log key that signed it ({key:?})")]
    Origin { origin: String, key: String },
    #[error("the cosignature of witness {witness} does not verify: {why}")]
    BadCosignature { witness: String, why: String },
    #[error(
        "the witness quorum is not met: cosigned by {}; not by {}",
        if cosigned.is_empty() { "no witness".to_owned() } else { cosigned.join(", ") },
        missing.join(", ")
    )]
    Quorum { cosigned: Vec<String>, missing: Vec<String> },
}

/// A checkpoint signed by a log of the policy and cosigned by a quorum of its witnesses. Only
/// [`Policy::verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessedCheckpoint {
    checkpoint: VerifiedCheckpoint,
    /// The witnesses (policy names) whose cosignature verified, with its timestamp (`None`
    /// for a plain note signature, which carries none).
    cosigned: Vec<(String, Option<u64>)>,
}

impl WitnessedCheckpoint {
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }
    pub fn cosigned(&self) -> &[(String, Option<u64>)] {
        &self.cosigned
    }
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn utf8(line: usize, what: &str, b: &[u8]) -> Result<String, PolicyError> {
    String::from_utf8(b.to_vec()).map_err(|_| err(line, format!("the {what} is not UTF-8")))
}

impl Policy {
    /// Parses a policy file.
    pub fn parse(bytes: &[u8], opts: ParseOptions) -> Result<Self, PolicyError> {
        if bytes.len() > MAX_POLICY_SIZE {
            return Err(err(
                0,
                format!("the file is {} bytes, over the {MAX_POLICY_SIZE}-byte limit", bytes.len()),
            ));
        }
        let mut p =
            Policy { logs: Vec::new(), witnesses: Vec::new(), groups: Vec::new(), quorum: Quorum::None };
        let mut quorum_seen = false;
        // The namespace of witnesses and groups, in definition order.
        let mut names: Vec<(Vec<u8>, Member)> = Vec::new();
        let lookup =
            |names: &[(Vec<u8>, Member)], n: &[u8]| names.iter().find(|(k, _)| k == n).map(|(_, m)| *m);
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            if let Some(&b) = raw.iter().find(|&&b| b != b'\t' && (b < 0x20 || b == 0x7f)) {
                return Err(err(
                    line,
                    format!("byte 0x{b:02x} is not allowed (only tab, newline and printable text)"),
                ));
            }
            let words: Vec<&[u8]> = raw.split(|&b| is_space(b)).filter(|w| !w.is_empty()).collect();
            let Some((&keyword, args)) = words.split_first() else { continue };
            if keyword.starts_with(b"#") {
                continue;
            }
            match keyword {
                b"log" => {
                    let (vkey, url) = match args {
                        [k] => (*k, None),
                        [k, u] => (*k, Some(utf8(line, "URL", u)?)),
                        _ => return Err(err(line, "expected `log <vkey> [<url>]`")),
                    };
                    let key = VerifierKey::parse(&utf8(line, "vkey", vkey)?)
                        .map_err(|e| err(line, format!("log key: {e}")))?;
                    if p.logs.iter().any(|l| l.key.public_key() == key.public_key()) {
                        return Err(err(line, "this log's public key is already listed"));
                    }
                    if p.logs.len() == MAX_ENTRIES {
                        return Err(err(line, format!("more than {MAX_ENTRIES} logs")));
                    }
                    p.logs.push(Log { key, url });
                }
                b"witness" => {
                    let (name, vkey, url) = match args {
                        [n, k] => (*n, *k, None),
                        [n, k, u] => (*n, *k, Some(utf8(line, "URL", u)?)),
                        _ => return Err(err(line, "expected `witness <name> <vkey> [<url>]`")),
                    };
                    define(&names, name, line)?;
                    let text = utf8(line, "vkey", vkey)?;
                    let key = match CosignerKey::parse(&text) {
                        Ok(k) => WitnessKey::Cosignature(k),
                        Err(KeyError::Algorithm(0x01)) if opts.note_signature_witnesses => WitnessKey::Note(
                            VerifierKey::parse(&text).map_err(|e| err(line, format!("witness key: {e}")))?,
                        ),
                        Err(KeyError::Algorithm(0x01)) => {
                            return Err(err(
                                line,
                                "this witness key is a plain Ed25519 note key (type 0x01); a witness key is a cosignature/v1 key (type 0x04), unless plain note signatures from witnesses are explicitly allowed",
                            ));
                        }
                        Err(e) => return Err(err(line, format!("witness key: {e}"))),
                    };
                    if p.witnesses.iter().any(|w| w.key.public_key() == key.public_key()) {
                        return Err(err(line, "this witness's public key is already listed"));
                    }
                    if p.witnesses.len() == MAX_ENTRIES {
                        return Err(err(line, format!("more than {MAX_ENTRIES} witnesses")));
                    }
                    names.push((name.to_vec(), Member::Witness(p.witnesses.len())));
                    p.witnesses.push(Witness { name: name.to_vec(), key, url });
                }
                b"group" => {
                    let [name, k, members @ ..] = args else {
                        return Err(err(line, "expected `group <name> all|any|<k> <name>...`"));
                    };
                    define(&names, name, line)?;
                    if members.is_empty() {
                        return Err(err(line, "a group needs at least one member"));
                    }
                    let mut list = Vec::with_capacity(members.len());
                    for m in members {
                        if *m == b"none" {
                            return Err(err(line, "`none` cannot be a group member"));
                        }
                        let member = lookup(&names, m).ok_or_else(|| {
                            err(
                                line,
                                format!(
                                    "{:?} is not a witness or group defined on an earlier line",
                                    String::from_utf8_lossy(m)
                                ),
                            )
                        })?;
                        if list.contains(&member) {
                            return Err(err(
                                line,
                                format!("{:?} is listed twice", String::from_utf8_lossy(m)),
                            ));
                        }
                        list.push(member);
                    }
                    let n = list.len();
                    let threshold = match *k {
                        b"all" => n,
                        b"any" => 1,
                        digits => {
                            let ok = !digits.is_empty()
                                && digits.iter().all(u8::is_ascii_digit)
                                && (digits == b"0" || digits[0] != b'0');
                            let k = ok
                                .then(|| std::str::from_utf8(digits).ok()?.parse::<usize>().ok())
                                .flatten()
                                .ok_or_else(|| {
                                    err(line, "the threshold is `all`, `any` or a decimal number")
                                })?;
                            if !(1..=n).contains(&k) {
                                return Err(err(
                                    line,
                                    format!("the threshold {k} is not between 1 and the {n} members"),
                                ));
                            }
                            k
                        }
                    };
                    if p.groups.len() == MAX_ENTRIES {
                        return Err(err(line, format!("more than {MAX_ENTRIES} groups")));
                    }
                    names.push((name.to_vec(), Member::Group(p.groups.len())));
                    p.groups.push(Group { name: name.to_vec(), threshold, members: list });
                }
                b"quorum" => {
                    let [name] = args else { return Err(err(line, "expected `quorum <name>`")) };
                    if quorum_seen {
                        return Err(err(line, "a policy has exactly one quorum line"));
                    }
                    quorum_seen = true;
                    p.quorum = if *name == b"none" {
                        Quorum::None
                    } else {
                        Quorum::Of(lookup(&names, name).ok_or_else(|| {
                            err(
                                line,
                                format!(
                                    "{:?} is not a witness or group defined on an earlier line",
                                    String::from_utf8_lossy(name)
                                ),
                            )
                        })?)
                    };
                }
                other => {
                    return Err(err(
                        line,
                        format!(
                            "unknown keyword {:?} (log, witness, group or quorum)",
                            String::from_utf8_lossy(other)
                        ),
                    ));
                }
            }
        }
        if !quorum_seen {
            return Err(err(0, "the policy has no quorum line (`quorum none` requires no cosignature)"));
        }
        // A log's own key can never witness it: whoever runs the log would cosign itself.
        if let Some(w) =
            p.witnesses.iter().find(|w| p.logs.iter().any(|l| l.key.public_key() == w.key.public_key()))
        {
            return Err(err(
                0,
                format!(
                    "witness {:?} has the public key of a listed log; a log cannot witness itself",
                    String::from_utf8_lossy(&w.name)
                ),
            ));
        }
        Ok(p)
    }

    pub fn logs(&self) -> &[Log] {
        &self.logs
    }

    pub fn witnesses(&self) -> &[Witness] {
        &self.witnesses
    }

    /// Whether the quorum holds when exactly the witnesses marked in `cosigned` (by index into
    /// [`Policy::witnesses`]) have cosigned.
    pub fn quorum_met(&self, cosigned: &[bool]) -> bool {
        let member = |m: Member, groups: &[bool]| match m {
            Member::Witness(i) => cosigned.get(i).copied().unwrap_or(false),
            Member::Group(g) => groups.get(g).copied().unwrap_or(false),
        };
        // Groups only name earlier groups, so one pass in order evaluates them all.
        let mut groups = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let n = g.members.iter().filter(|&&m| member(m, &groups)).count();
            groups.push(n >= g.threshold);
        }
        match self.quorum {
            Quorum::None => true,
            Quorum::Of(m) => member(m, &groups),
        }
    }

    /// Opens `note_bytes` as a checkpoint under this policy.
    pub fn verify(&self, note_bytes: &[u8]) -> Result<WitnessedCheckpoint, PolicyCheckError> {
        let keys: Vec<VerifierKey> = self.logs.iter().map(|l| l.key.clone()).collect();
        let opened = note::open(note_bytes, &keys).map_err(PolicyCheckError::Log)?;
        let body = Checkpoint::parse(opened.text())?;
        let signer = &opened.verified_by()[0];
        if body.origin() != signer.name() {
            return Err(PolicyCheckError::Origin {
                origin: body.origin().to_owned(),
                key: signer.name().to_owned(),
            });
        }
        let checkpoint =
            VerifiedCheckpoint::open(note_bytes, signer, signer.name()).map_err(|e| match e {
                crate::checkpoint::OpenError::Note(n) => PolicyCheckError::Log(n),
                crate::checkpoint::OpenError::Body(b) => PolicyCheckError::Body(b),
                crate::checkpoint::OpenError::OriginMismatch { expected, found } => {
                    PolicyCheckError::Origin { origin: found, key: expected }
                }
            })?;
        let parsed = Note::parse(note_bytes).map_err(PolicyCheckError::Log)?;
        let mut flags = vec![false; self.witnesses.len()];
        let mut cosigned = Vec::new();
        for (i, w) in self.witnesses.iter().enumerate() {
            let name = String::from_utf8_lossy(&w.name).into_owned();
            match witness_signature(w, &parsed, note_bytes) {
                Cosigned::Valid(ts) => {
                    flags[i] = true;
                    let ts = matches!(w.key, WitnessKey::Cosignature(_)).then_some(ts);
                    cosigned.push((name, ts));
                }
                Cosigned::Absent => {}
                Cosigned::Invalid(e) => {
                    return Err(PolicyCheckError::BadCosignature { witness: name, why: e.to_string() });
                }
            }
        }
        if !self.quorum_met(&flags) {
            let missing = self
                .witnesses
                .iter()
                .zip(&flags)
                .filter(|(_, f)| !**f)
                .map(|(w, _)| String::from_utf8_lossy(&w.name).into_owned())
                .collect();
            return Err(PolicyCheckError::Quorum {
                cosigned: cosigned.into_iter().map(|(n, _)| n).collect(),
                missing,
            });
        }
        Ok(WitnessedCheckpoint { checkpoint, cosigned })
    }
}

impl Policy {
    /// Whether witness `i` (an index into [`Policy::witnesses`]) signed the note `note_bytes`:
    /// valid (with the cosignature's timestamp, 0 for a plain note signature), absent, or
    /// present but invalid. The log's signature is not checked here; [`Policy::verify`] does
    /// both. A log gathering cosignatures uses this to keep only the lines that verify.
    pub fn witness_signed(&self, i: usize, note_bytes: &[u8]) -> Cosigned {
        let (Some(w), Ok(parsed)) = (self.witnesses.get(i), Note::parse(note_bytes)) else {
            return Cosigned::Absent;
        };
        witness_signature(w, &parsed, note_bytes)
    }
}

/// One witness's signature on a parsed note: cosignature/v1 for a cosigner key, a plain
/// Ed25519 note signature for an admitted note key.
fn witness_signature(w: &Witness, parsed: &Note<'_>, note_bytes: &[u8]) -> Cosigned {
    match &w.key {
        WitnessKey::Cosignature(k) => cosignature::check(parsed, std::slice::from_ref(k)).remove(0),
        WitnessKey::Note(k) => match note::open(note_bytes, std::slice::from_ref(k)) {
            Ok(_) => Cosigned::Valid(0),
            Err(NoteError::Unverified { .. }) => Cosigned::Absent,
            Err(_) => Cosigned::Invalid(cosignature::CosignatureError::Invalid),
        },
    }
}

/// Refuses `name` if it is `none` or already defined.
fn define(names: &[(Vec<u8>, Member)], name: &[u8], line: usize) -> Result<(), PolicyError> {
    if name == b"none" {
        return Err(err(line, "`none` is predefined and cannot be defined again"));
    }
    if names.iter().any(|(n, _)| n == name) {
        return Err(err(line, format!("{:?} is already defined", String::from_utf8_lossy(name))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosignature::Cosigner;
    use crate::hash::{Hash, TreeSize};
    use crate::note::SignerKey;

    fn w(n: u8) -> Cosigner {
        Cosigner::from_seed(&format!("witness{n}.example"), [n; 32]).unwrap()
    }

    fn log() -> SignerKey {
        SignerKey::from_seed("example.com/log", [42; 32]).unwrap()
    }

    /// The spec's example: two groups of three, 2-of-3 and any-of-3, both required.
    fn example() -> String {
        let mut s = format!("log {}\n\n", log().verifier());
        for n in 1..=3 {
            s += &format!("witness X{n} {}\n", w(n).verifier());
        }
        s += "group X-witnesses 2 X1 X2 X3\n\n";
        for n in 4..=6 {
            s += &format!("witness Y{} {} https://y{n}.example/\n", n - 3, w(n).verifier());
        }
        s += "group Y-witnesses any Y1 Y2 Y3\n\t# a comment\ngroup X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n";
        s
    }

    fn signed(cosigners: &[u8]) -> String {
        let body = Checkpoint::new("example.com/log", TreeSize(5), Hash([3; 32])).unwrap().to_text();
        let mut note = log().sign(&body).unwrap();
        for &n in cosigners {
            note += &w(n).cosign(&body, 1_700_000_000 + u64::from(n)).unwrap();
        }
        note
    }

    #[test]
    fn the_spec_example_needs_two_x_and_one_y() {
        let p = Policy::parse(example().as_bytes(), ParseOptions::default()).unwrap();
        assert_eq!((p.logs().len(), p.witnesses().len()), (1, 6));
        assert_eq!(p.witnesses()[3].url.as_deref(), Some("https://y4.example/"));
        let ok = p.verify(signed(&[1, 3, 5]).as_bytes()).unwrap();
        assert_eq!(
            ok.cosigned(),
            &[
                ("X1".to_owned(), Some(1_700_000_001)),
                ("X3".into(), Some(1_700_000_003)),
                ("Y2".into(), Some(1_700_000_005))
            ]
        );
        assert_eq!(ok.checkpoint().size(), TreeSize(5));
        for short in [&[1u8, 2][..], &[1, 4, 5], &[4, 5, 6], &[]] {
            let e = p.verify(signed(short).as_bytes()).unwrap_err();
            assert!(matches!(e, PolicyCheckError::Quorum { .. }), "{short:?}: {e}");
        }
        let e = p.verify(signed(&[2, 6]).as_bytes()).unwrap_err().to_string();
        assert!(e.contains("cosigned by X2, Y3") && e.contains("not by X1, X3, Y1, Y2"), "{e}");
    }

    #[test]
    fn a_bad_cosignature_from_a_known_witness_is_an_error_not_an_absence() {
        let p = Policy::parse(example().as_bytes(), ParseOptions::default()).unwrap();
        let good = signed(&[1, 2, 4]);
        // Witness 2's line re-signed over another size: same name and key ID, wrong signature.
        let other = Checkpoint::new("example.com/log", TreeSize(6), Hash([3; 32])).unwrap().to_text();
        let forged_line = w(2).cosign(&other, 1_700_000_002).unwrap();
        let honest_line = w(2)
            .cosign(
                &Checkpoint::new("example.com/log", TreeSize(5), Hash([3; 32])).unwrap().to_text(),
                1_700_000_002,
            )
            .unwrap();
        let forged = good.replace(&honest_line, &forged_line);
        assert_ne!(forged, good);
        let e = p.verify(forged.as_bytes()).unwrap_err();
        assert!(matches!(e, PolicyCheckError::BadCosignature { ref witness, .. } if witness == "X2"), "{e}");
        // Not signed by the log: refused whatever the cosignatures.
        let stranger = SignerKey::from_seed("example.com/log", [9; 32]).unwrap();
        let body = Checkpoint::new("example.com/log", TreeSize(5), Hash([3; 32])).unwrap().to_text();
        let mut n = stranger.sign(&body).unwrap();
        for c in [1, 2, 4] {
            n += &w(c).cosign(&body, 1).unwrap();
        }
        assert!(matches!(p.verify(n.as_bytes()), Err(PolicyCheckError::Log(_))));
    }

    #[test]
    fn quorum_none_needs_no_witness_and_origin_must_be_the_log_key_name() {
        let p = Policy::parse(
            format!("log {}\nquorum none\n", log().verifier()).as_bytes(),
            ParseOptions::default(),
        )
        .unwrap();
        p.verify(signed(&[]).as_bytes()).unwrap();
        let other_origin =
            log().sign("other.example/log\n5\nAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\n").unwrap();
        assert!(matches!(p.verify(other_origin.as_bytes()), Err(PolicyCheckError::Origin { .. })));
    }

    #[test]
    fn every_rule_of_the_syntax_is_enforced() {
        let lk = log().verifier().to_string();
        let (a, b) = (w(1).verifier().to_string(), w(2).verifier().to_string());
        let cases: &[(String, &str)] = &[
            (format!("log {lk}\n"), "no quorum line"),
            ("quorum none\nquorum none\n".to_owned(), "exactly one quorum"),
            (format!("witness A {a}\nwitness A {b}\nquorum A\n"), "already defined"),
            (format!("witness A {a}\nwitness B {a}\nquorum A\n"), "already listed"),
            (format!("log {lk}\nlog {lk}\nquorum none\n"), "already listed"),
            (format!("witness none {a}\nquorum none\n"), "predefined"),
            (format!("witness A {a}\ngroup G any none\nquorum G\n"), "cannot be a group member"),
            (format!("witness A {a}\ngroup G any A A\nquorum G\n"), "listed twice"),
            (format!("group G any A\nwitness A {a}\nquorum G\n"), "earlier line"),
            (format!("witness A {a}\nquorum B\n"), "earlier line"),
            (format!("witness A {a}\ngroup G 2 A\nquorum G\n"), "between 1 and"),
            (format!("witness A {a}\ngroup G 0 A\nquorum G\n"), "between 1 and"),
            (format!("witness A {a}\ngroup G 01 A\nquorum G\n"), "threshold"),
            (format!("witness A {a}\ngroup G\nquorum G\n"), "expected `group"),
            (format!("witness A {a}\ngroup G all\nquorum G\n"), "at least one member"),
            (format!("witness A {lk}\nquorum A\n"), "plain Ed25519 note key"),
            (format!("log {a}\nquorum none\n"), "log key"),
            (format!("witness A {a}\r\nquorum A\n"), "0x0d"),
            (format!("witnesses A {a}\nquorum A\n"), "unknown keyword"),
            ("quorum none extra\n".to_owned(), "expected `quorum"),
        ];
        for (text, needle) in cases {
            let e = Policy::parse(text.as_bytes(), ParseOptions::default()).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        // Plain note keys as witnesses, only when asked for.
        let opt = ParseOptions { note_signature_witnesses: true };
        let p = Policy::parse(format!("log {lk}\nwitness A {lk}\nquorum A\n").as_bytes(), opt);
        assert!(p.unwrap_err().to_string().contains("cannot witness itself"));
        let same_material = Cosigner::from_seed("example.com/log", [42; 32]).unwrap().verifier();
        let e = Policy::parse(
            format!("log {lk}\nwitness A {same_material}\nquorum A\n").as_bytes(),
            ParseOptions::default(),
        );
        assert!(e.unwrap_err().to_string().contains("cannot witness itself"));
    }

    #[test]
    fn a_plain_note_signature_witness_counts_only_when_admitted() {
        let sw = SignerKey::from_seed("siglog-witness.example", [77; 32]).unwrap();
        let text = format!("log {}\nwitness S {}\nquorum S\n", log().verifier(), sw.verifier());
        assert!(Policy::parse(text.as_bytes(), ParseOptions::default()).is_err());
        let p = Policy::parse(text.as_bytes(), ParseOptions { note_signature_witnesses: true }).unwrap();
        let body = Checkpoint::new("example.com/log", TreeSize(5), Hash([3; 32])).unwrap().to_text();
        let note = log().sign(&body).unwrap() + &sw.signature_line(body.as_bytes());
        let ok = p.verify(note.as_bytes()).unwrap();
        assert_eq!(ok.cosigned(), &[("S".to_owned(), None)]);
        assert!(matches!(
            p.verify(log().sign(&body).unwrap().as_bytes()),
            Err(PolicyCheckError::Quorum { .. })
        ));
    }

    proptest::proptest! {
        /// The quorum of any random group structure agrees with a naive recursive evaluation.
        #[test]
        fn quorum_evaluation_matches_a_naive_reference(
            n_witnesses in 1usize..7,
            groups in proptest::collection::vec((proptest::collection::vec(0usize..20, 1..5), 0usize..5), 0..6),
            signed in proptest::collection::vec(proptest::bool::ANY, 7),
            quorum_pick in 0usize..20,
        ) {
            let mut text = String::new();
            let mut defined: Vec<String> = Vec::new();
            for i in 0..n_witnesses {
                text += &format!("witness W{i} {}\n", w(i as u8 + 1).verifier());
                defined.push(format!("W{i}"));
            }
            // Groups over distinct earlier names; the naive model keeps (threshold, members).
            let mut model: Vec<(usize, Vec<usize>)> = Vec::new();
            for (gi, (picks, k)) in groups.iter().enumerate() {
                let mut members: Vec<usize> = picks.iter().map(|p| p % defined.len()).collect();
                members.sort_unstable();
                members.dedup();
                let k = 1 + k % members.len();
                let names: Vec<&str> = members.iter().map(|&m| defined[m].as_str()).collect();
                text += &format!("group G{gi} {k} {}\n", names.join(" "));
                model.push((k, members));
                defined.push(format!("G{gi}"));
            }
            let q = quorum_pick % defined.len();
            text += &format!("quorum {}\n", defined[q]);
            let p = Policy::parse(text.as_bytes(), ParseOptions::default()).unwrap();
            fn naive(name: usize, n_w: usize, signed: &[bool], model: &[(usize, Vec<usize>)]) -> bool {
                if name < n_w {
                    return signed[name];
                }
                let (k, members) = &model[name - n_w];
                members.iter().filter(|&&m| naive(m, n_w, signed, model)).count() >= *k
            }
            let flags = &signed[..n_witnesses];
            proptest::prop_assert_eq!(p.quorum_met(flags), naive(q, n_witnesses, flags, &model));
        }
    }
}
