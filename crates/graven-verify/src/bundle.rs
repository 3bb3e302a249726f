//! Offline evidence bundles: the format, and a verifier that needs nothing but the file.
//!
//! A bundle is a POSIX ustar archive (see `docs/bundle-format.md` for the byte-level
//! description). It holds some events of one log (the exact leaf bytes), an inclusion proof for
//! each against ONE signed checkpoint, optionally older checkpoints of the same log with
//! consistency proofs to that checkpoint, the log's verifier key, and a manifest that lists
//! every other file with its SHA-256 and role.
//!
//! [`verify_bundle`] reads the archive once, as a stream, and never trusts a declared size:
//! entry count, path length, per-file size, total size and the bytes held back while waiting
//! for a proof's partner are all bounded. It does not stop at the first problem: it reports
//! each one (up to [`MAX_PROBLEMS`]) naming the file and the leaf index that no longer verify.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, Read};

use graven_core::checkpoint::{OpenError, VerifiedCheckpoint};
use graven_core::hash::{Hash, LeafIndex, TreeSize, leaf_hash};
use graven_core::jcs::{self, Value};
use graven_core::merkle::{self, MAX_PROOF_LEN};
use graven_core::note::{self, KeyError, VerifierKey};
use sha2::{Digest, Sha256};

use crate::witnessed::{LogPolicy, WitnessError, WitnessedCheckpoint};

/// The first line of the manifest.
pub const FORMAT: &str = "graven-evidence-bundle/1";
/// The manifest's path; it is the last entry of the archive.
pub const MANIFEST: &str = "manifest";

/// Most events one bundle may hold.
pub const MAX_EVENTS: u64 = 1_000_000;
/// Most older checkpoints one bundle may hold.
pub const MAX_OLDER: u64 = 100;
/// Most archive entries: two per event, three per older checkpoint (with its time-stamp token),
/// key, checkpoint, its token, manifest.
pub const MAX_ENTRIES: u64 = 2 * MAX_EVENTS + 3 * MAX_OLDER + 4;
/// Longest entry path accepted (every valid path is far shorter).
pub const MAX_PATH_LEN: usize = 64;
/// Largest proof file (64 base64 elements need about 3 KiB).
pub const MAX_PROOF_BYTES: u64 = 8 * 1024;
/// Largest verifier key file.
pub const MAX_KEY_BYTES: u64 = 4 * 1024;
/// Longest manifest line, newline included.
pub const MAX_MANIFEST_LINE: usize = 256;
/// Largest manifest (it is read line by line, never held whole).
pub const MAX_MANIFEST_BYTES: u64 = (MAX_ENTRIES + 1) * MAX_MANIFEST_LINE as u64;
/// Largest archive read, in bytes.
pub const MAX_TOTAL_BYTES: u64 = 64 << 30;
/// Most bytes of events and proofs held in memory while waiting for their partner file or for
/// the checkpoint. A bundle written in the documented order needs a few KiB.
pub const MAX_BUFFERED_BYTES: u64 = 256 << 20;
/// Problems reported before the verifier stops reading.
pub const MAX_PROBLEMS: usize = 100;

/// A file a bundle may hold, other than the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileId {
    /// `verifier-key`: the log's verifier key, one line.
    VerifierKey,
    /// `checkpoint`: the signed note every proof is checked against.
    Checkpoint,
    /// `events/<index>`: the exact leaf bytes.
    Event(u64),
    /// `proofs/<index>`: the inclusion proof of that event.
    InclusionProof(u64),
    /// `checkpoints/<size>`: an older signed checkpoint of the same log.
    OlderCheckpoint(u64),
    /// `consistency/<size>`: the consistency proof from that older checkpoint.
    ConsistencyProof(u64),
    /// `timestamps/<size>`: an RFC 3161 time-stamp token (DER) of the checkpoint of that size
    /// in the bundle (`checkpoints/<size>` if present, else `checkpoint`).
    Timestamp(u64),
}

impl FileId {
    pub fn path(&self) -> String {
        match self {
            FileId::VerifierKey => "verifier-key".into(),
            FileId::Checkpoint => "checkpoint".into(),
            FileId::Event(i) => format!("events/{i}"),
            FileId::InclusionProof(i) => format!("proofs/{i}"),
            FileId::OlderCheckpoint(n) => format!("checkpoints/{n}"),
            FileId::ConsistencyProof(n) => format!("consistency/{n}"),
            FileId::Timestamp(n) => format!("timestamps/{n}"),
        }
    }

    /// The role named in the manifest.
    pub fn role(&self) -> &'static str {
        match self {
            FileId::VerifierKey => "verifier-key",
            FileId::Checkpoint => "checkpoint",
            FileId::Event(_) => "event",
            FileId::InclusionProof(_) => "inclusion-proof",
            FileId::OlderCheckpoint(_) => "older-checkpoint",
            FileId::ConsistencyProof(_) => "consistency-proof",
            FileId::Timestamp(_) => "timestamp",
        }
    }

    /// Strict: a path that parses re-encodes to itself (no leading zeros, no `./`, no `..`,
    /// nothing absolute).
    pub fn parse(path: &str) -> Option<FileId> {
        match path {
            "verifier-key" => return Some(FileId::VerifierKey),
            "checkpoint" => return Some(FileId::Checkpoint),
            _ => {}
        }
        let (dir, num) = path.split_once('/')?;
        let n = parse_decimal(num)?;
        match dir {
            "events" => Some(FileId::Event(n)),
            "proofs" => Some(FileId::InclusionProof(n)),
            "checkpoints" => Some(FileId::OlderCheckpoint(n)),
            "consistency" => Some(FileId::ConsistencyProof(n)),
            "timestamps" => Some(FileId::Timestamp(n)),
            _ => None,
        }
    }

    /// The largest size a file of this kind may have.
    pub fn limit(&self) -> u64 {
        match self {
            FileId::VerifierKey => MAX_KEY_BYTES,
            FileId::Checkpoint | FileId::OlderCheckpoint(_) => note::MAX_NOTE_SIZE as u64,
            FileId::Event(_) => graven_core::tile::MAX_ENTRY_SIZE as u64,
            FileId::InclusionProof(_) | FileId::ConsistencyProof(_) => MAX_PROOF_BYTES,
            FileId::Timestamp(_) => graven_tsa::MAX_TOKEN_BYTES as u64,
        }
    }
}

/// A decimal `u64` without sign or leading zeros.
fn parse_decimal(s: &str) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// The `verifier-key` file: the key and one newline.
pub fn key_file(key: &VerifierKey) -> String {
    format!("{key}\n")
}

fn b64_list(hashes: &[Hash]) -> String {
    let items: Vec<String> = hashes.iter().map(|h| format!("\"{}\"", h.to_base64())).collect();
    format!("[{}]", items.join(","))
}

/// An inclusion proof file: RFC 8785 canonical JSON (keys sorted, no whitespace).
pub fn inclusion_json(index: u64, size: TreeSize, leaf: &Hash, root: &Hash, proof: &[Hash]) -> String {
    format!(
        "{{\"index\":{index},\"leaf_hash\":\"{}\",\"proof\":{},\"root\":\"{}\",\"tree_size\":{}}}",
        leaf.to_base64(),
        b64_list(proof),
        root.to_base64(),
        size.0
    )
}

/// A consistency proof file: RFC 8785 canonical JSON.
pub fn consistency_json(
    from: TreeSize,
    to: TreeSize,
    root_from: &Hash,
    root_to: &Hash,
    proof: &[Hash],
) -> String {
    format!(
        "{{\"from\":{},\"proof\":{},\"root_from\":\"{}\",\"root_to\":\"{}\",\"to\":{}}}",
        from.0,
        b64_list(proof),
        root_from.to_base64(),
        root_to.to_base64(),
        to.0
    )
}

/// One manifest line: `<sha256 hex> <role> <path>\n`.
pub fn manifest_line(id: FileId, sha256: &[u8; 32]) -> String {
    format!("{} {} {}\n", graven_core::hex::encode(sha256), id.role(), id.path())
}

/// Which key the checkpoint was checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// A key the caller supplied (`--vkey`): the bundle is evidence about that log.
    Given,
    /// The key inside the bundle: proves only that the bundle is internally consistent, since
    /// whoever made the bundle chose the key.
    Bundled,
    /// The log key of the witness policy the bundle was checked under (its only `log` line).
    Policy,
}

/// What a bundle that verified proves.
#[derive(Debug, Clone)]
pub struct BundleReport {
    pub origin: String,
    pub tree_size: TreeSize,
    pub root: Hash,
    pub key: VerifierKey,
    pub key_source: KeySource,
    /// Indices of the events proven included, ascending.
    pub events: Vec<u64>,
    /// Older checkpoints proven consistent: (size, root), ascending.
    pub older: Vec<(u64, Hash)>,
    /// Archive entries read, the manifest included.
    pub files: u64,
    /// Time-stamp tokens checked with the TSA roots given: (size, the TSA's time), ascending.
    pub stamps: Vec<(u64, graven_tsa::GenTime)>,
    /// Sizes whose token was not checked, because no TSA roots were given.
    pub unchecked_stamps: Vec<u64>,
    /// With a policy: the checkpoint as it met the policy (the witnesses that cosigned it).
    pub witnessed: Option<WitnessedCheckpoint>,
}

/// A bundle that did not verify: every problem found, in the order found.
#[derive(Debug)]
pub struct BundleFailure {
    pub problems: Vec<Problem>,
    /// Reading stopped after [`MAX_PROBLEMS`] problems or at a fatal one.
    pub stopped_early: bool,
    /// The key that was (or would have been) trusted, when one was known.
    pub key: Option<(VerifierKey, KeySource)>,
}

impl std::fmt::Display for BundleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        if self.stopped_early {
            f.write_str("\n(stopped reading the bundle here)")?;
        }
        Ok(())
    }
}

/// One thing wrong with a bundle. Each message names the file, and the leaf index where there
/// is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("the bundle is not a readable tar archive: {0}")]
    Tar(io::Error),
    #[error("the bundle has more than {limit} {what}; refusing to read further")]
    Limit { what: &'static str, limit: u64 },
    #[error("archive entry {path:?}: {why}")]
    Entry { path: String, why: EntryProblem },
    #[error("manifest: {0}")]
    Manifest(ManifestProblem),
    #[error("verifier-key: {0}")]
    Key(KeyProblem),
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointProblem),
    #[error("event {index}: {why}")]
    Event { index: u64, why: EventProblem },
    #[error("checkpoints/{size}: {why}")]
    Older { size: u64, why: OlderProblem },
    #[error("timestamps/{size}: {why}")]
    Stamp { size: u64, why: StampProblem },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StampProblem {
    #[error(
        "the bundle holds no checkpoint of size {size} (checkpoints/{size} or checkpoint) for it to stamp"
    )]
    NoCheckpoint { size: u64 },
    #[error("the token is refused: {0}")]
    Token(graven_tsa::TokenError),
    #[error("{0}")]
    Order(graven_tsa::TimeOrderError),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryProblem {
    #[error(
        "not a file a bundle may hold (allowed: verifier-key, checkpoint, events/N, proofs/N, checkpoints/N, consistency/N, timestamps/N, manifest; absolute paths, `..` and other names are refused)"
    )]
    BadPath,
    #[error("not a regular file (links, directories and extension headers are refused)")]
    NotRegular,
    #[error("appears twice")]
    Duplicate,
    #[error("{size} bytes, over the {limit}-byte limit for this kind of file")]
    TooLarge { size: u64, limit: u64 },
    #[error("follows the manifest, which must be the last entry")]
    AfterManifest,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestProblem {
    #[error("missing: the bundle has no manifest (truncated, or a file was removed)")]
    Missing,
    #[error("line 1 must be {FORMAT:?}")]
    Format,
    #[error("line {line}: {why}")]
    Syntax { line: u64, why: &'static str },
    #[error("line {line}: {path} has role {role:?}, but that path's role is {expected:?}")]
    Role { line: u64, path: String, role: String, expected: &'static str },
    #[error("line {line}: {path} is listed twice")]
    Duplicate { line: u64, path: String },
    #[error("line {line}: {path} is listed out of archive order")]
    Order { line: u64, path: String },
    #[error("lists {path}, which is not in the bundle: the file was removed")]
    Removed { path: String },
    #[error(
        "{path} has SHA-256 {actual}, but the manifest lists {listed}: the file or the manifest was altered"
    )]
    Hash { path: String, listed: String, actual: String },
    #[error("{path} is in the bundle but not listed: a file was added")]
    Unlisted { path: String },
    #[error("reading it failed: {0}")]
    Read(io::Error),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    #[error("missing, and no key was given (--vkey): nothing to check the checkpoint against")]
    Missing,
    #[error("not exactly one verifier key line ({0})")]
    Malformed(String),
    #[error("the bundled key {bundled} is not the key that was given to trust ({given})")]
    NotTheGivenKey { bundled: String, given: String },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointProblem {
    #[error("missing: there is nothing to prove the events against")]
    Missing,
    #[error("does not verify with the trusted key {key}: {source}")]
    Signature { key: String, source: OpenError },
    /// Signed by the log, but its cosignatures do not meet the witness policy.
    #[error("{0}")]
    NotWitnessed(WitnessError),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventProblem {
    #[error("proofs/{index} is malformed: {why}")]
    ProofFormat { index: u64, why: FormatProblem },
    #[error("proofs/{index} is for index {found}")]
    ProofIndex { index: u64, found: u64 },
    #[error("proofs/{index} is against tree size {found}, the checkpoint's is {size}")]
    ProofSize { index: u64, found: u64, size: u64 },
    #[error("proofs/{index} names root {found}, the checkpoint's is {root}")]
    ProofRoot { index: u64, found: Hash, root: Hash },
    #[error(
        "events/{index} hashes to leaf hash {computed}, but proofs/{index} proves {claimed}: the event or its proof was altered"
    )]
    LeafHash { index: u64, computed: Hash, claimed: Hash },
    #[error(
        "proofs/{index} does not prove the event's inclusion in the checkpoint (size {size}, root {root}): {source}"
    )]
    Inclusion { index: u64, size: u64, root: Hash, source: merkle::VerifyError },
    #[error("events/{index} has no inclusion proof (proofs/{index} is missing)")]
    NoProof { index: u64 },
    #[error("proofs/{index} has no event (events/{index} is missing)")]
    NoEvent { index: u64 },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OlderProblem {
    #[error("does not verify with the trusted key: {0}")]
    Signature(OpenError),
    #[error("the file name says size {size} but the checkpoint is of size {found}")]
    Size { size: u64, found: u64 },
    #[error("is newer than the bundle's checkpoint (size {bundle})")]
    Newer { bundle: u64 },
    #[error("size 0: the empty tree needs no proof, and a bundle holds none")]
    Empty,
    #[error("has no consistency proof (consistency/{size} is missing)")]
    NoProof { size: u64 },
    #[error("consistency/{size} has no checkpoint (checkpoints/{size} is missing)")]
    NoCheckpoint { size: u64 },
    #[error("consistency/{size} is malformed: {why}")]
    ProofFormat { size: u64, why: FormatProblem },
    #[error("consistency/{size} does not match: {field} is not what the checkpoints say")]
    ProofField { size: u64, field: &'static str },
    #[error("consistency/{size} does not prove that the bundle's checkpoint extends this one: {source}")]
    Consistency { size: u64, source: merkle::VerifyError },
}

/// Why a proof file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatProblem {
    #[error("not JSON: {0}")]
    Json(jcs::JcsError),
    #[error("not in RFC 8785 canonical form")]
    NotCanonical,
    #[error("must be an object with exactly the members {0}")]
    Members(&'static str),
    #[error("{0} must be a non-negative integer below 2^53")]
    Integer(&'static str),
    #[error("{0} must be the base64 of 32 bytes")]
    Hash(&'static str),
    #[error("proof must be an array of at most 64 base64 hashes")]
    Proof,
}

/// Bytes read from the archive, failing (instead of ending) past the limit.
struct Limited<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other(format!("the archive is larger than {MAX_TOTAL_BYTES} bytes")));
        }
        let max = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

struct Seen {
    position: u64,
    sha256: [u8; 32],
    listed: bool,
}

struct Checker<'k> {
    given: Option<&'k VerifierKey>,
    tsa: Option<&'k graven_tsa::TsaVerifier>,
    timestamps: BTreeMap<u64, Vec<u8>>,
    stamps: Vec<(u64, graven_tsa::GenTime)>,
    /// Where `given` came from.
    given_source: KeySource,
    bundled: Option<VerifierKey>,
    checkpoint: Option<Vec<u8>>,
    anchor: Option<VerifiedCheckpoint>,
    anchor_failed: bool,
    events: BTreeMap<u64, Vec<u8>>,
    proofs: BTreeMap<u64, Vec<u8>>,
    buffered: u64,
    older: BTreeMap<u64, Vec<u8>>,
    consistency: BTreeMap<u64, Vec<u8>>,
    seen: HashMap<FileId, Seen>,
    verified: Vec<u64>,
    problems: Vec<Problem>,
    manifest_seen: bool,
}

/// Verifies the bundle read from `r`, fully offline. With `trusted` the checkpoint must be
/// signed by that key (and the bundled key must be the same); without it the bundled key is
/// used, which the report says: a bundled key alone proves nothing about who runs the log.
pub fn verify_bundle<R: Read>(
    r: R,
    trusted: Option<&VerifierKey>,
) -> Result<BundleReport, Box<BundleFailure>> {
    verify(r, trusted.map(|k| (k, KeySource::Given)), None, None)
}

/// [`verify_bundle`] that also checks the bundle's time-stamp tokens with `tsa` (the TSA roots
/// given with `--tsa-cert`): each against the checkpoint of its size in the bundle, and all of
/// them against the ordering rule. Without `tsa` they are listed as not checked.
pub fn verify_bundle_with<R: Read>(
    r: R,
    trusted: Option<&VerifierKey>,
    tsa: Option<&graven_tsa::TsaVerifier>,
) -> Result<BundleReport, Box<BundleFailure>> {
    verify(r, trusted.map(|k| (k, KeySource::Given)), None, tsa)
}

/// [`verify_bundle_with`] under a witness policy: the checkpoint must be signed by the policy's
/// log key (the bundled key must be the same), and its cosignatures, as the bundle carries
/// them, must meet the policy. `key_given` says whether that key was also given by the caller
/// ([`KeySource::Given`]) or only named by the policy ([`KeySource::Policy`]).
pub fn verify_bundle_witnessed<R: Read>(
    r: R,
    policy: &LogPolicy,
    key_given: bool,
    tsa: Option<&graven_tsa::TsaVerifier>,
) -> Result<BundleReport, Box<BundleFailure>> {
    let source = if key_given { KeySource::Given } else { KeySource::Policy };
    verify(r, Some((policy.log_key(), source)), Some(policy), tsa)
}

fn verify<R: Read>(
    r: R,
    trusted: Option<(&VerifierKey, KeySource)>,
    policy: Option<&LogPolicy>,
    tsa: Option<&graven_tsa::TsaVerifier>,
) -> Result<BundleReport, Box<BundleFailure>> {
    let mut c = Checker {
        given: trusted.map(|(k, _)| k),
        given_source: trusted.map_or(KeySource::Given, |(_, s)| s),
        tsa,
        timestamps: BTreeMap::new(),
        stamps: Vec::new(),
        bundled: None,
        checkpoint: None,
        anchor: None,
        anchor_failed: false,
        events: BTreeMap::new(),
        proofs: BTreeMap::new(),
        buffered: 0,
        older: BTreeMap::new(),
        consistency: BTreeMap::new(),
        seen: HashMap::new(),
        verified: Vec::new(),
        problems: Vec::new(),
        manifest_seen: false,
    };
    let stopped_early = c.read(Limited { inner: r, left: MAX_TOTAL_BYTES }).is_err();
    let files = c.seen.len() as u64 + u64::from(c.manifest_seen);
    if !stopped_early {
        c.finish();
    }
    // The policy judges the checkpoint as the bundle carries it, cosignatures included.
    let mut witnessed = None;
    if let (Some(p), Some(anchor)) = (policy, &c.anchor) {
        match p.check(anchor) {
            Ok(w) => witnessed = Some(w),
            Err(e) => c.problems.push(Problem::Checkpoint(CheckpointProblem::NotWitnessed(e))),
        }
    }
    let key = c.trusted_key().map(|(k, s)| (k.clone(), s));
    match (c.problems.is_empty(), c.anchor, key) {
        (true, Some(anchor), Some((key, key_source))) => {
            let mut older = Vec::new();
            for bytes in c.older.values() {
                if let Ok(cp) = VerifiedCheckpoint::open(bytes, &key, key.name()) {
                    older.push((cp.size().0, cp.root()));
                }
            }
            Ok(BundleReport {
                origin: anchor.checkpoint().origin().to_owned(),
                tree_size: anchor.size(),
                root: anchor.root(),
                key,
                key_source,
                events: c.verified,
                older,
                files,
                unchecked_stamps: if tsa.is_none() {
                    c.timestamps.keys().copied().collect()
                } else {
                    Vec::new()
                },
                stamps: c.stamps,
                witnessed,
            })
        }
        (_, _, key) => Err(Box::new(BundleFailure { problems: c.problems, stopped_early, key })),
    }
}

/// Returned by the reading loop when it has to stop.
struct Stop;

impl Checker<'_> {
    fn trusted_key(&self) -> Option<(&VerifierKey, KeySource)> {
        match (self.given, &self.bundled) {
            (Some(k), _) => Some((k, self.given_source)),
            (None, Some(k)) => Some((k, KeySource::Bundled)),
            (None, None) => None,
        }
    }

    fn problem(&mut self, p: Problem) -> Result<(), Stop> {
        self.problems.push(p);
        if self.problems.len() >= MAX_PROBLEMS { Err(Stop) } else { Ok(()) }
    }

    fn fatal(&mut self, p: Problem) -> Stop {
        self.problems.push(p);
        Stop
    }

    fn read<R: Read>(&mut self, r: R) -> Result<(), Stop> {
        let mut archive = tar::Archive::new(r);
        let entries = match archive.entries() {
            Ok(e) => e.raw(true),
            Err(e) => return Err(self.fatal(Problem::Tar(e))),
        };
        let mut count = 0u64;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.fatal(Problem::Tar(e)))?;
            count += 1;
            if count > MAX_ENTRIES {
                return Err(self.fatal(Problem::Limit { what: "archive entries", limit: MAX_ENTRIES }));
            }
            let raw_path = entry.path_bytes();
            if raw_path.len() > MAX_PATH_LEN {
                let path = String::from_utf8_lossy(&raw_path[..MAX_PATH_LEN]).into_owned() + "...";
                self.problem(Problem::Entry { path, why: EntryProblem::BadPath })?;
                continue;
            }
            let path = String::from_utf8_lossy(&raw_path).into_owned();
            if self.manifest_seen {
                self.problem(Problem::Entry { path, why: EntryProblem::AfterManifest })?;
                continue;
            }
            if entry.header().entry_type() != tar::EntryType::Regular {
                self.problem(Problem::Entry { path, why: EntryProblem::NotRegular })?;
                continue;
            }
            let size = entry.size();
            if path == MANIFEST {
                if size > MAX_MANIFEST_BYTES {
                    let why = EntryProblem::TooLarge { size, limit: MAX_MANIFEST_BYTES };
                    self.problem(Problem::Entry { path, why })?;
                    continue;
                }
                self.manifest_seen = true;
                self.check_manifest(io::BufReader::new((&mut entry).take(MAX_MANIFEST_BYTES)))?;
                continue;
            }
            let Some(id) = FileId::parse(&path) else {
                self.problem(Problem::Entry { path, why: EntryProblem::BadPath })?;
                continue;
            };
            if self.seen.contains_key(&id) {
                self.problem(Problem::Entry { path, why: EntryProblem::Duplicate })?;
                continue;
            }
            let limit = id.limit();
            if size > limit {
                self.problem(Problem::Entry { path, why: EntryProblem::TooLarge { size, limit } })?;
                continue;
            }
            // The header's size is at most `limit`, so this allocation is bounded too.
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            if let Err(e) = (&mut entry).take(limit + 1).read_to_end(&mut bytes) {
                return Err(self.fatal(Problem::Tar(e)));
            }
            let sha256: [u8; 32] = Sha256::digest(&bytes).into();
            self.seen.insert(id, Seen { position: count, sha256, listed: false });
            self.accept(id, bytes)?;
        }
        Ok(())
    }

    fn accept(&mut self, id: FileId, bytes: Vec<u8>) -> Result<(), Stop> {
        match id {
            FileId::VerifierKey => {
                let key = match parse_key_file(&bytes) {
                    Ok(k) => k,
                    Err(why) => return self.problem(Problem::Key(KeyProblem::Malformed(why))),
                };
                if let Some(given) = self.given.filter(|g| **g != key) {
                    let why =
                        KeyProblem::NotTheGivenKey { bundled: key.to_string(), given: given.to_string() };
                    self.problem(Problem::Key(why))?;
                }
                self.bundled = Some(key);
                self.try_anchor()
            }
            FileId::Checkpoint => {
                self.checkpoint = Some(bytes);
                self.try_anchor()
            }
            FileId::Event(i) => {
                self.hold(bytes.len())?;
                self.events.insert(i, bytes);
                self.try_pair(i)
            }
            FileId::InclusionProof(i) => {
                self.hold(bytes.len())?;
                self.proofs.insert(i, bytes);
                self.try_pair(i)
            }
            FileId::OlderCheckpoint(n) => {
                self.older.insert(n, bytes);
                Ok(())
            }
            FileId::ConsistencyProof(n) => {
                self.consistency.insert(n, bytes);
                Ok(())
            }
            FileId::Timestamp(n) => {
                self.timestamps.insert(n, bytes);
                Ok(())
            }
        }
    }

    fn hold(&mut self, len: usize) -> Result<(), Stop> {
        self.buffered += len as u64;
        if self.buffered > MAX_BUFFERED_BYTES {
            return Err(self.fatal(Problem::Limit {
                what: "bytes of events and proofs waiting for their partner file or the checkpoint",
                limit: MAX_BUFFERED_BYTES,
            }));
        }
        Ok(())
    }

    fn try_anchor(&mut self) -> Result<(), Stop> {
        if self.anchor.is_some() || self.anchor_failed {
            return Ok(());
        }
        let (Some((key, _)), Some(bytes)) = (self.trusted_key(), self.checkpoint.as_deref()) else {
            return Ok(());
        };
        match VerifiedCheckpoint::open(bytes, key, key.name()) {
            Ok(cp) => self.anchor = Some(cp),
            Err(source) => {
                let key = key.to_string();
                self.anchor_failed = true;
                return self.problem(Problem::Checkpoint(CheckpointProblem::Signature { key, source }));
            }
        }
        let ready: Vec<u64> = self.events.keys().filter(|i| self.proofs.contains_key(i)).copied().collect();
        for i in ready {
            self.try_pair(i)?;
        }
        Ok(())
    }

    fn try_pair(&mut self, index: u64) -> Result<(), Stop> {
        if self.anchor.is_none() || !self.events.contains_key(&index) || !self.proofs.contains_key(&index) {
            return Ok(());
        }
        let (Some(event), Some(proof)) = (self.events.remove(&index), self.proofs.remove(&index)) else {
            return Ok(());
        };
        self.buffered -= (event.len() + proof.len()) as u64;
        let Some(anchor) = &self.anchor else { return Ok(()) };
        match check_event(anchor, index, &event, &proof) {
            Ok(()) => {
                self.verified.push(index);
                Ok(())
            }
            Err(why) => self.problem(Problem::Event { index, why }),
        }
    }

    fn check_manifest<R: BufRead>(&mut self, mut r: R) -> Result<(), Stop> {
        let mut line_no = 0u64;
        let mut last_position = 0u64;
        let mut line = Vec::with_capacity(MAX_MANIFEST_LINE);
        loop {
            line.clear();
            if let Err(e) = (&mut r).take(MAX_MANIFEST_LINE as u64).read_until(b'\n', &mut line) {
                return self.problem(Problem::Manifest(ManifestProblem::Read(e)));
            }
            if line.is_empty() {
                break;
            }
            line_no += 1;
            let Some(text) = line.strip_suffix(b"\n").and_then(|l| std::str::from_utf8(l).ok()) else {
                let why = if line.len() >= MAX_MANIFEST_LINE {
                    "too long"
                } else {
                    "not UTF-8 text ending in a newline"
                };
                return self.problem(Problem::Manifest(ManifestProblem::Syntax { line: line_no, why }));
            };
            if line_no == 1 {
                if text != FORMAT {
                    return self.problem(Problem::Manifest(ManifestProblem::Format));
                }
                continue;
            }
            let mut parts = text.splitn(3, ' ');
            let (Some(hash), Some(role), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
                let why = "expected `<sha256 hex> <role> <path>`";
                self.problem(Problem::Manifest(ManifestProblem::Syntax { line: line_no, why }))?;
                continue;
            };
            let is_hex = hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !is_hex {
                let why = "the SHA-256 must be 64 lowercase hex digits";
                self.problem(Problem::Manifest(ManifestProblem::Syntax { line: line_no, why }))?;
                continue;
            }
            let Some(id) = FileId::parse(path) else {
                let why = "names a path a bundle cannot hold";
                self.problem(Problem::Manifest(ManifestProblem::Syntax { line: line_no, why }))?;
                continue;
            };
            if role != id.role() {
                let p = ManifestProblem::Role {
                    line: line_no,
                    path: path.to_owned(),
                    role: role.to_owned(),
                    expected: id.role(),
                };
                self.problem(Problem::Manifest(p))?;
                continue;
            }
            let Some(seen) = self.seen.get_mut(&id) else {
                self.problem(Problem::Manifest(ManifestProblem::Removed { path: path.to_owned() }))?;
                continue;
            };
            if seen.listed {
                let p = ManifestProblem::Duplicate { line: line_no, path: path.to_owned() };
                self.problem(Problem::Manifest(p))?;
                continue;
            }
            seen.listed = true;
            let actual = graven_core::hex::encode(&seen.sha256);
            let position = seen.position;
            if actual != hash {
                let p = ManifestProblem::Hash { path: path.to_owned(), listed: hash.to_owned(), actual };
                self.problem(Problem::Manifest(p))?;
            } else if position < last_position {
                self.problem(Problem::Manifest(ManifestProblem::Order {
                    line: line_no,
                    path: path.to_owned(),
                }))?;
            }
            last_position = last_position.max(position);
        }
        if line_no == 0 {
            return self.problem(Problem::Manifest(ManifestProblem::Format));
        }
        let mut unlisted: Vec<FileId> =
            self.seen.iter().filter(|(_, s)| !s.listed).map(|(id, _)| *id).collect();
        unlisted.sort();
        for id in unlisted {
            self.problem(Problem::Manifest(ManifestProblem::Unlisted { path: id.path() }))?;
        }
        Ok(())
    }

    /// Checks what can only be checked once everything was read.
    fn finish(&mut self) {
        let _ = self.finish_inner();
    }

    fn finish_inner(&mut self) -> Result<(), Stop> {
        if !self.manifest_seen {
            self.problem(Problem::Manifest(ManifestProblem::Missing))?;
        }
        if self.checkpoint.is_none() {
            self.problem(Problem::Checkpoint(CheckpointProblem::Missing))?;
        }
        if self.trusted_key().is_none() {
            self.problem(Problem::Key(KeyProblem::Missing))?;
        }
        let Some(anchor) = self.anchor.clone() else { return Ok(()) };
        let events: Vec<u64> = self.events.keys().copied().collect();
        for index in events {
            self.problem(Problem::Event { index, why: EventProblem::NoProof { index } })?;
        }
        let proofs: Vec<u64> = self.proofs.keys().copied().collect();
        for index in proofs {
            self.problem(Problem::Event { index, why: EventProblem::NoEvent { index } })?;
        }
        let Some((key, _)) = self.trusted_key() else { return Ok(()) };
        let key = key.clone();
        let older = std::mem::take(&mut self.older);
        for (&size, bytes) in &older {
            if let Err(why) = check_older(&anchor, &key, size, bytes, self.consistency.get(&size)) {
                self.problem(Problem::Older { size, why })?;
            }
        }
        let orphans: Vec<u64> = self.consistency.keys().filter(|s| !older.contains_key(s)).copied().collect();
        for size in orphans {
            self.problem(Problem::Older { size, why: OlderProblem::NoCheckpoint { size } })?;
        }
        self.older = older;
        self.check_stamps(&anchor)
    }

    /// Each token against the checkpoint of its size (`checkpoints/N`, else `checkpoint`), then
    /// the ordering rule over all of them. A token for no checkpoint of the bundle is always a
    /// problem; the tokens themselves are only checked when TSA roots were given.
    fn check_stamps(&mut self, anchor: &VerifiedCheckpoint) -> Result<(), Stop> {
        let tsa = self.tsa;
        let timestamps = std::mem::take(&mut self.timestamps);
        let mut verified = Vec::new();
        for (&size, token) in &timestamps {
            let note = match self.older.get(&size) {
                Some(n) => n.as_slice(),
                None if size == anchor.size().0 => anchor.note_bytes(),
                None => {
                    self.problem(Problem::Stamp { size, why: StampProblem::NoCheckpoint { size } })?;
                    continue;
                }
            };
            let Some(tsa) = tsa else { continue };
            match tsa.verify(token, note, None) {
                Ok(v) => verified.push((TreeSize(size), v)),
                Err(e) => self.problem(Problem::Stamp { size, why: StampProblem::Token(e) })?,
            }
        }
        self.timestamps = timestamps;
        if let Err(e) = graven_tsa::check_time_order(verified.iter().map(|(s, v)| (*s, v))) {
            let size = match &e {
                graven_tsa::TimeOrderError::EarlierTime { size, .. } => size.0,
                _ => 0,
            };
            return self.problem(Problem::Stamp { size, why: StampProblem::Order(e) });
        }
        self.stamps = verified.iter().map(|(s, v)| (s.0, v.gen_time())).collect();
        Ok(())
    }
}

fn parse_key_file(bytes: &[u8]) -> Result<VerifierKey, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let line = text.strip_suffix('\n').ok_or_else(|| "no final newline".to_owned())?;
    let key = VerifierKey::parse(line).map_err(|e: KeyError| e.to_string())?;
    if key_file(&key) != text {
        return Err("extra bytes around the key".to_owned());
    }
    Ok(key)
}

fn check_event(
    anchor: &VerifiedCheckpoint,
    index: u64,
    event: &[u8],
    proof: &[u8],
) -> Result<(), EventProblem> {
    let fmt = |why| EventProblem::ProofFormat { index, why };
    let fields = object_members(proof, &["index", "leaf_hash", "proof", "root", "tree_size"]).map_err(fmt)?;
    let found = integer(&fields[0], "index").map_err(fmt)?;
    let claimed = hash(&fields[1], "leaf_hash").map_err(fmt)?;
    let elements = hash_list(&fields[2]).map_err(fmt)?;
    let root = hash(&fields[3], "root").map_err(fmt)?;
    let size = integer(&fields[4], "tree_size").map_err(fmt)?;
    if found != index {
        return Err(EventProblem::ProofIndex { index, found });
    }
    if size != anchor.size().0 {
        return Err(EventProblem::ProofSize { index, found: size, size: anchor.size().0 });
    }
    if root != anchor.root() {
        return Err(EventProblem::ProofRoot { index, found: root, root: anchor.root() });
    }
    let computed = leaf_hash(event);
    if computed != claimed {
        return Err(EventProblem::LeafHash { index, computed, claimed });
    }
    let raw: Vec<&[u8]> = elements.iter().map(|h| &h.0[..]).collect();
    merkle::verify_inclusion(&computed, LeafIndex(index), anchor.size(), &raw, &anchor.root()).map_err(
        |source| EventProblem::Inclusion { index, size: anchor.size().0, root: anchor.root(), source },
    )?;
    Ok(())
}

fn check_older(
    anchor: &VerifiedCheckpoint,
    key: &VerifierKey,
    size: u64,
    bytes: &[u8],
    proof: Option<&Vec<u8>>,
) -> Result<(), OlderProblem> {
    let older = VerifiedCheckpoint::open(bytes, key, key.name()).map_err(OlderProblem::Signature)?;
    if older.size().0 != size {
        return Err(OlderProblem::Size { size, found: older.size().0 });
    }
    if size == 0 {
        return Err(OlderProblem::Empty);
    }
    if size > anchor.size().0 {
        return Err(OlderProblem::Newer { bundle: anchor.size().0 });
    }
    let proof = proof.ok_or(OlderProblem::NoProof { size })?;
    let fmt = |why| OlderProblem::ProofFormat { size, why };
    let fields = object_members(proof, &["from", "proof", "root_from", "root_to", "to"]).map_err(fmt)?;
    let from = integer(&fields[0], "from").map_err(fmt)?;
    let elements = hash_list(&fields[1]).map_err(fmt)?;
    let root_from = hash(&fields[2], "root_from").map_err(fmt)?;
    let root_to = hash(&fields[3], "root_to").map_err(fmt)?;
    let to = integer(&fields[4], "to").map_err(fmt)?;
    let field = |field| OlderProblem::ProofField { size, field };
    if from != size {
        return Err(field("from"));
    }
    if to != anchor.size().0 {
        return Err(field("to"));
    }
    if root_from != older.root() {
        return Err(field("root_from"));
    }
    if root_to != anchor.root() {
        return Err(field("root_to"));
    }
    let raw: Vec<&[u8]> = elements.iter().map(|h| &h.0[..]).collect();
    merkle::verify_consistency(older.size(), anchor.size(), &older.root(), &anchor.root(), &raw)
        .map_err(|source| OlderProblem::Consistency { size, source })?;
    Ok(())
}

/// Parses `bytes` as canonical JSON holding an object with exactly `names` (sorted), and
/// returns the values in that order.
fn object_members(bytes: &[u8], names: &'static [&'static str]) -> Result<Vec<Value>, FormatProblem> {
    let members_msg = match names.len() {
        5 if names[0] == "index" => "index, leaf_hash, proof, root, tree_size",
        _ => "from, proof, root_from, root_to, to",
    };
    let value = jcs::parse(bytes).map_err(FormatProblem::Json)?;
    let mut canonical = Vec::with_capacity(bytes.len());
    value.write_canonical(&mut canonical);
    if canonical != bytes {
        return Err(FormatProblem::NotCanonical);
    }
    let Value::Object(members) = value else { return Err(FormatProblem::Members(members_msg)) };
    // Canonical form sorts members, so equal key lists in order mean exactly these members.
    if members.len() != names.len() || members.iter().zip(names).any(|((k, _), n)| k != n) {
        return Err(FormatProblem::Members(members_msg));
    }
    Ok(members.into_iter().map(|(_, v)| v).collect())
}

fn integer(v: &Value, name: &'static str) -> Result<u64, FormatProblem> {
    match v {
        Value::Number(n) if *n >= 0.0 && n.fract() == 0.0 && *n < 9_007_199_254_740_992.0 => Ok(*n as u64),
        _ => Err(FormatProblem::Integer(name)),
    }
}

fn hash(v: &Value, name: &'static str) -> Result<Hash, FormatProblem> {
    match v {
        Value::String(s) => Hash::from_base64(s).map_err(|_| FormatProblem::Hash(name)),
        _ => Err(FormatProblem::Hash(name)),
    }
}

fn hash_list(v: &Value) -> Result<Vec<Hash>, FormatProblem> {
    let Value::Array(items) = v else { return Err(FormatProblem::Proof) };
    if items.len() > MAX_PROOF_LEN {
        return Err(FormatProblem::Proof);
    }
    items.iter().map(|i| hash(i, "proof").map_err(|_| FormatProblem::Proof)).collect()
}
