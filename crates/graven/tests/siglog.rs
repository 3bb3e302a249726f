//! Interoperability with **siglog** (crates.io), an implementation of a C2SP log and witness
//! that Graven's authors did not write, over loopback, against its real binaries:
//!
//! 1. siglog's log, started with `--external-witnesses` pointing at `graven witness`: Graven
//!    cosigns siglog's checkpoints (siglog's own consistency proofs are checked on the way),
//!    and the cosignatures verify as `cosignature/v1` with graven-core and with a Python check
//!    written from the C2SP `tlog-cosignature` text.
//! 2. `graven serve --witness-policy` with siglog's `witness`: siglog answers a plain Ed25519
//!    note signature (type 0x01), not a `cosignature/v1` (type 0x04). By default it does not
//!    count (a policy naming it by its note key is refused at start; named by a cosignature key
//!    it never verifies, and `/v1/log` says why); with `witness_note_signatures = true` it
//!    counts. Consistency proofs across growth, and the 409 recovery after a restart.
//! 3. A validly signed fork of a Graven log (same key, another history) shown to both
//!    witnesses after the honest log: 409, then 422; never cosigned, and refused by the policy
//!    verifier.
//!
//! The siglog binaries come from `GRAVEN_SIGLOG_BIN_DIR` (scripts/test.sh installs the pinned
//! version and sets it), else `target/siglog/<version>/bin`. Without them these tests fail;
//! they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Server, agent, start};
use graven_core::checkpoint::Checkpoint;
use graven_core::cosignature::{self, Cosigned, Cosigner, CosignerKey};
use graven_core::hash::{Hash, TreeSize, leaf_hash};
use graven_core::merkle::{self, MemoryTree};
use graven_core::note::{self, Note, SignerKey, VerifierKey};
use graven_core::policy::{ParseOptions, Policy, PolicyCheckError};
use sha2::{Digest, Sha256};

/// The siglog release these tests run against (scripts/test.sh installs exactly this one).
const SIGLOG_VERSION: &str = "0.1.0";

/// The path of one of siglog's binaries (`siglog` or `witness`); fails, with what to do, if it
/// is missing.
fn siglog_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("GRAVEN_SIGLOG_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/siglog").join(SIGLOG_VERSION).join("bin")
    });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "siglog's `{name}` binary is not at {}: the interoperability tests need siglog {SIGLOG_VERSION}. \
         scripts/test.sh installs it; by hand: `cargo install siglog --version {SIGLOG_VERSION} --locked \
         --root DIR` and GRAVEN_SIGLOG_BIN_DIR=DIR/bin",
        path.display()
    );
    path
}

// ---- processes ----

/// A siglog process (log or witness) on a loopback port, killed when dropped. Its output (both
/// streams) goes to a file the test can read.
struct Siglog {
    child: Child,
    addr: String,
    output: PathBuf,
}

impl Drop for Siglog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Siglog {
    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts siglog's `bin` with `args` and `--listen 127.0.0.1:<free port>`, in a clean
/// environment (siglog reads many settings from variables) plus `env`, and waits for `/health`.
/// Siglog cannot be given port 0 and report the port, so a free port is picked first; if
/// another process took it meanwhile, it tries another.
fn spawn_siglog(bin: &str, dir: &Path, args: &[String], env: &[(&str, String)]) -> Siglog {
    let exe = siglog_bin(bin);
    std::fs::create_dir_all(dir).unwrap();
    for attempt in 0..5 {
        let addr = format!("127.0.0.1:{}", free_port());
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let output = dir.join(format!("{bin}-{}-{attempt}.out", RUNS.fetch_add(1, Ordering::Relaxed)));
        let out = std::fs::File::create(&output).unwrap();
        let child = Command::new(&exe)
            .args(args)
            .args(["--listen", &addr])
            .env_clear()
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        let mut s = Siglog { child, addr, output };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = s.child.try_wait().unwrap() {
                let out = s.output();
                if out.contains("in use") {
                    break; // the port was taken: try another
                }
                panic!("siglog's {bin} exited ({status}) before serving:\n{out}");
            }
            let up = agent().get(s.url("/health")).call().is_ok_and(|r| r.status().as_u16() == 200);
            if up {
                return s;
            }
            assert!(Instant::now() < deadline, "siglog's {bin} did not come up:\n{}", s.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("siglog's {bin} found no free port in 5 attempts");
}

fn sqlite(dir: &Path, name: &str) -> String {
    format!("sqlite:{}?mode=rwc", dir.join(name).display())
}

/// siglog's log server: `origin`, signed with `key` (whose name is the origin), witnessed by
/// `witnesses` (`name=url,...`).
fn siglog_log(dir: &Path, key: &SignerKey, witnesses: &str) -> Siglog {
    let args: Vec<String> = [
        "--database-url",
        &sqlite(dir, "siglog.db"),
        "--storage-backend",
        "fs",
        "--fs-root",
        &dir.join("tiles").display().to_string(),
        "--origin",
        key.name(),
        "--checkpoint-interval",
        "1",
        "--batch-max-age-ms",
        "20",
        "--external-witnesses",
        witnesses,
    ]
    .map(str::to_owned)
    .to_vec();
    spawn_siglog("siglog", dir, &args, &[("LOG_PRIVATE_KEY", key.to_secret_string())])
}

/// siglog's witness, signing with `key`, following the logs `origin=vkey`.
fn siglog_witness(dir: &Path, key: &SignerKey, logs: &[String]) -> Siglog {
    let mut args = vec!["--database-url".to_owned(), sqlite(dir, "witness.db")];
    for l in logs {
        args.extend(["--log".to_owned(), l.clone()]);
    }
    spawn_siglog("witness", dir, &args, &[("WITNESS_PRIVATE_KEY", key.to_secret_string())])
}

/// A `graven witness` child, killed when dropped.
struct GravenWitness {
    child: Child,
    addr: String,
    vkey: CosignerKey,
}

impl Drop for GravenWitness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GravenWitness {
    fn start(dir: &Path, name: &str, logs: &[String]) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_graven"));
        cmd.args(["witness", "--data"]).arg(dir.join("data")).arg("--key").arg(dir.join("witness.key"));
        cmd.args(["--name", name, "--listen", "127.0.0.1:0"]);
        for l in logs {
            cmd.args(["--log", l]);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (mut addr, mut vkey) = (String::new(), None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while addr.is_empty() {
            assert!(Instant::now() < deadline, "the witness did not start");
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "the witness exited before listening");
            if let Some(v) = line.trim_end().strip_prefix("verifier key: ") {
                vkey = Some(CosignerKey::parse(v).unwrap());
            }
            if let Some(a) = line.trim_end().strip_prefix("listening on http://") {
                addr = a.to_owned();
            }
        }
        std::thread::spawn(move || for _ in out.lines() {});
        GravenWitness { child, addr, vkey: vkey.expect("no verifier key line") }
    }

    /// The monitoring path: the latest checkpoint of `origin` it cosigned (None if none).
    fn latest(&self, origin: &str) -> Option<String> {
        let hash: String = Sha256::digest(origin.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let mut r = agent().get(format!("http://{}/{hash}/checkpoint", self.addr)).call().unwrap();
        match r.status().as_u16() {
            404 => None,
            200 => Some(r.body_mut().read_to_string().unwrap()),
            s => panic!("monitoring path: {s}"),
        }
    }
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// `POST <prefix>/add-checkpoint` with `old`, `proof` and `checkpoint`.
fn add_checkpoint(prefix: &str, old: u64, proof: &[Hash], checkpoint: &str) -> Answer {
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&h.to_base64());
        body.push('\n');
    }
    body.push('\n');
    body.push_str(checkpoint);
    let mut r = agent().post(format!("{prefix}/add-checkpoint")).send(body.as_bytes()).unwrap();
    let content_type =
        r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    Answer { status: r.status().as_u16(), content_type, body: r.body_mut().read_to_string().unwrap() }
}

/// Adds an entry to siglog's log and returns its index. siglog keeps its queue in SQLite and
/// answers 500 "database is locked" when its writer holds the database past the driver's
/// 5 s busy timeout (seen on a loaded 2-core machine); the insert failed then, so the entry is
/// sent again. Any other answer fails the test.
fn siglog_add(s: &Siglog, entry: &[u8]) -> usize {
    for attempt in 1..=10 {
        let mut r = agent().post(s.url("/add")).send(entry).unwrap();
        let body = r.body_mut().read_to_string().unwrap();
        let status = r.status().as_u16();
        if status == 500 && body.contains("database is locked") && attempt < 10 {
            std::thread::sleep(Duration::from_millis(200 * attempt));
            continue;
        }
        assert_eq!(status, 200, "{body}");
        return body.trim().parse().unwrap();
    }
    unreachable!("the loop returns or fails on its last attempt")
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- notes ----

/// A note's text (the checkpoint body) and its signature lines (each with its newline).
fn split_note(note: &str) -> (String, Vec<String>) {
    let (text, sigs) = note.split_once("\n\n").unwrap_or_else(|| panic!("not a note: {note:?}"));
    (format!("{text}\n"), sigs.lines().map(|l| format!("{l}\n")).collect())
}

/// The signature lines of `note` by key name `name`.
fn lines_by(note: &str, name: &str) -> Vec<String> {
    split_note(note).1.into_iter().filter(|l| l.starts_with(&format!("\u{2014} {name} "))).collect()
}

fn body_of(note: &str) -> Checkpoint {
    Checkpoint::parse(Note::parse(note.as_bytes()).unwrap().text()).unwrap()
}

/// The verifier key (type 0x01) of a siglog witness key.
fn note_vkey(key: &SignerKey) -> VerifierKey {
    key.verifier()
}

/// The same Ed25519 public key as a `cosignature/v1` key (type 0x04), as an operator would
/// write it in a policy that keeps the spec's rule for witness keys.
fn cosignature_vkey(name: &str, seed: [u8; 32]) -> CosignerKey {
    Cosigner::from_seed(name, seed).unwrap().verifier()
}

// ---- the independent check ----

/// Witness signatures checked from the spec texts alone, with Python's `cryptography`:
/// - `cosignature` (C2SP tlog-cosignature, Ed25519): vkey `<name>+<hex key ID>+base64(0x04 ||
///   key)`, key ID SHA-256(name || "\n" || 0x04 || key)[:4], line `— <name> base64(key ID ||
///   u64 big-endian timestamp || Ed25519 signature)`, signed message "cosignature/v1\ntime
///   <ts>\n" + the note text;
/// - `note` (C2SP signed-note, Ed25519): vkey `<name>+<hex key ID>+base64(0x01 || key)`, key ID
///   SHA-256(name || "\n" || 0x01 || key)[:4], line `— <name> base64(key ID || Ed25519
///   signature)`, signed message the note text.
///
/// Reads JSON lines {kind, vkey, text, line}; prints "valid <ts>" (cosignature), "valid"
/// (note) or "invalid <why>" per line.
const PY_CHECKER: &str = r#"
import base64, hashlib, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.exceptions import InvalidSignature

def check(kind, vkey, text, line):
    alg = {"cosignature": 0x04, "note": 0x01}[kind]
    name, key_id_hex, key_b64 = vkey.split("+", 2)
    raw = base64.b64decode(key_b64, validate=True)
    if len(raw) != 33 or raw[0] != alg:
        return "invalid key type"
    key = raw[1:]
    key_id = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + key).digest()[:4]
    if key_id.hex() != key_id_hex:
        return "invalid key ID of the vkey"
    if not line.endswith("\n"):
        return "invalid line without newline"
    dash, sig_name, sig_b64 = line[:-1].split(" ")
    if dash != "\u2014" or sig_name != name:
        return "invalid line shape or name"
    sig = base64.b64decode(sig_b64, validate=True)
    if sig[:4] != key_id:
        return "invalid key ID"
    if kind == "note":
        if len(sig) != 4 + 64:
            return "invalid signature length"
        message, ed_sig, verdict = text.encode(), sig[4:], "valid"
    else:
        if len(sig) != 4 + 8 + 64:
            return "invalid signature length"
        ts = int.from_bytes(sig[4:12], "big")
        if ts == 0 or ts > 2**63 - 1:
            return "invalid timestamp"
        message = b"cosignature/v1\ntime " + str(ts).encode() + b"\n" + text.encode()
        ed_sig, verdict = sig[12:], "valid %d" % ts
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(ed_sig, message)
    except InvalidSignature:
        return "invalid signature"
    return verdict

for l in sys.stdin:
    r = json.loads(l)
    print(check(r["kind"], r["vkey"], r["text"], r["line"]))
"#;

/// One item for the Python checker.
struct PyItem {
    kind: &'static str,
    vkey: String,
    text: String,
    line: String,
}

/// The Python checker's verdicts on `items`, in order.
fn python_check(items: &[PyItem]) -> Vec<String> {
    let lines: Vec<serde_json::Value> = items
        .iter()
        .map(|i| serde_json::json!({"kind": i.kind, "vkey": i.vkey, "text": i.text, "line": i.line}))
        .collect();
    common::python_verdicts("check_signatures.py", PY_CHECKER, &lines)
}

/// Checks every item with Python and expects `want(i)`; and one damaged copy of the first
/// item (its text changed) must be "invalid signature", so the check can fail.
fn python_agrees(items: Vec<PyItem>, want: impl Fn(usize) -> String) {
    let first = &items[0];
    let damaged = PyItem {
        kind: first.kind,
        vkey: first.vkey.clone(),
        text: first.text.replacen('\n', "x\n", 1),
        line: first.line.clone(),
    };
    let n = items.len();
    let mut all = items;
    all.push(damaged);
    let verdicts = python_check(&all);
    for (i, v) in verdicts[..n].iter().enumerate() {
        assert_eq!(v, &want(i), "item {i}: {}", all[i].line);
    }
    assert_eq!(verdicts[n], "invalid signature", "the independent check accepts anything");
}

// ---- 1. siglog's log, witnessed by Graven ----

/// siglog's log asks `graven witness` to cosign each checkpoint it publishes. Graven cosigns
/// them (the first from a fresh start, the next ones with siglog's own consistency proofs,
/// which Graven's witness verifies), and every cosignature verifies as `cosignature/v1` with
/// graven-core and with the independent Python check, over checkpoints that are exactly the
/// RFC 6962 trees of the entries added (computed here) and that siglog published.
///
/// siglog 0.1.0 does not keep them: its log reads a witness's answer as one 68-byte signature
/// (key ID and Ed25519 signature, a plain note signature) and drops the 76-byte
/// `cosignature/v1` (key ID, timestamp, signature) with a warning, so its published
/// checkpoints carry only its own signature. The test pins that (a newer siglog that keeps
/// them fails here, and the assertion is to be turned around), and it is why the witness's
/// cosignatures are read from its monitoring path (C2SP tlog-witness, "Monitor Retrieval
/// Mechanism"), which serves exactly the line it returned.
#[test]
fn siglogs_log_is_cosigned_by_a_graven_witness() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SignerKey::from_seed("siglog.example/log", [11; 32]).unwrap();
    let origin = key.name().to_owned();
    let w = GravenWitness::start(
        &tmp.path().join("w"),
        "graven.example/witness",
        &[format!("{origin}={}", key.verifier())],
    );
    let s = siglog_log(&tmp.path().join("siglog"), &key, &format!("graven=http://{}", w.addr));
    let trusted = [key.verifier()];

    let mut tree = MemoryTree::new();
    let mut leaves: Vec<Option<Hash>> = Vec::new();
    let mut published: Vec<String> = Vec::new();
    let mut cosigned: Vec<String> = Vec::new();
    let mut total = 0u64;
    for batch in 1..=12u64 {
        for k in 0..batch {
            let entry = format!(r#"{{"name":"pkg-{batch}-{k}","version":"1.0.{k}"}}"#);
            let index = siglog_add(&s, entry.as_bytes());
            if leaves.len() <= index {
                leaves.resize(index + 1, None);
            }
            leaves[index] = Some(leaf_hash(entry.as_bytes()));
        }
        total += batch;
        // siglog asks its witnesses before it writes the checkpoint: once /checkpoint is at
        // `total`, Graven's witness has answered for it.
        let mut cp = String::new();
        wait_until("siglog's checkpoint", 60, || {
            let mut r = agent().get(s.url("/checkpoint")).call().unwrap();
            cp = r.body_mut().read_to_string().unwrap();
            // siglog's file storage can be read mid-write under load: a checkpoint that does not
            // parse yet is waited out like an old one (the cosigned ones are checked strictly).
            let size = Note::parse(cp.as_bytes())
                .ok()
                .and_then(|n| Checkpoint::parse(n.text()).ok())
                .map(|c| c.size());
            r.status().as_u16() == 200 && size == Some(TreeSize(total))
        });
        published.push(cp);
        if let Some(latest) = w.latest(&origin)
            && !cosigned.contains(&latest)
        {
            cosigned.push(latest);
        }
        let grown = cosigned.iter().filter(|c| body_of(c).size().0 > 0).count();
        if grown >= 3 {
            break;
        }
    }
    for l in leaves.iter() {
        tree.push(l.expect("siglog assigned every index once"));
    }
    let mut root = |n: u64| merkle::root(&mut tree, TreeSize(n)).unwrap();

    // Graven cosigned several sizes; all but the first came with a consistency proof made by
    // siglog from the size Graven held (learnt from Graven's 409), which Graven verified.
    let sizes: Vec<u64> = cosigned.iter().map(|c| body_of(c).size().0).collect();
    assert!(sizes.iter().filter(|&&n| n > 0).count() >= 2, "cosigned sizes {sizes:?}");
    assert!(sizes.windows(2).all(|p| p[0] < p[1]), "cosigned sizes {sizes:?}");

    let mut items = Vec::new();
    let mut timestamps = Vec::new();
    for c in &cosigned {
        // siglog's log signature verifies with graven-core; the tree is the entries' tree.
        let opened = note::open(c.as_bytes(), &trusted).unwrap();
        let body = Checkpoint::parse(opened.text()).unwrap();
        assert_eq!(body.origin(), origin);
        assert_eq!(body.root(), root(body.size().0), "siglog's root at size {}", body.size().0);
        // Graven's cosignature: cosignature/v1 with graven-core.
        let parsed = Note::parse(c.as_bytes()).unwrap();
        let ts = match cosignature::check(&parsed, std::slice::from_ref(&w.vkey)).as_slice() {
            [Cosigned::Valid(ts)] => *ts,
            other => panic!("{other:?}\n{c}"),
        };
        timestamps.push(ts);
        let line = lines_by(c, w.vkey.name());
        assert_eq!(line.len(), 1, "{c}");
        items.push(PyItem {
            kind: "cosignature",
            vkey: w.vkey.to_string(),
            text: opened.text().to_owned(),
            line: line[0].clone(),
        });
    }
    // ... and with the independent implementation.
    python_agrees(items, |i| format!("valid {}", timestamps[i]));

    // What siglog published: signed by its key, the entries' tree, each cosigned checkpoint of
    // a sampled size among them; and (siglog 0.1.0) no line from Graven's witness.
    for p in &published {
        let opened = note::open(p.as_bytes(), &trusted).unwrap();
        let body = Checkpoint::parse(opened.text()).unwrap();
        assert_eq!(body.root(), root(body.size().0));
        assert!(
            lines_by(p, w.vkey.name()).is_empty(),
            "siglog now keeps Graven's cosignature on its checkpoint; check it there instead:\n{p}"
        );
        if let Some(c) = cosigned.iter().find(|c| body_of(c).size() == body.size()) {
            assert_eq!(split_note(c).0, opened.text());
        }
    }
    let out = s.output();
    assert!(
        out.contains("Failed to parse signature from external witness graven")
            && out.contains("expected 68, got 76"),
        "siglog's reason for dropping the cosignatures is not the one documented in docs/witness.md:\n{out}"
    );
}

// ---- 2. Graven's log, witnessed by siglog ----

const SIGLOG_WITNESS: &str = "siglog-witness.example";
const SIGLOG_WITNESS_SEED: [u8; 32] = [12; 32];

/// A Graven log's data directory with its key and, if given, `graven.toml`.
fn graven_log_dir(dir: &Path, key: &SignerKey, toml: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("log.key"), key.to_secret_string()).unwrap();
    if !toml.is_empty() {
        std::fs::write(dir.join("graven.toml"), toml).unwrap();
    }
    dir.to_path_buf()
}

fn witness_info(s: &Server, i: usize) -> serde_json::Value {
    s.admin("GET", "/v1/log", None).json()["witnessing"]["witnesses"][i].clone()
}

/// `graven serve` with siglog's witness, `witness_note_signatures = true` and the witness
/// named by its note key (type 0x01): siglog's plain signatures count toward the quorum.
/// Checkpoints are witnessed as the log grows (siglog verifies Graven's consistency proofs);
/// after a restart the log learns siglog's size from its 409 and goes on. siglog's signatures
/// verify with graven-core's policy verifier and with the independent Python check.
#[test]
fn graven_log_is_witnessed_by_siglogs_witness_when_plain_signatures_are_admitted() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SignerKey::from_seed("graven.example/log", [13; 32]).unwrap();
    let wkey = SignerKey::from_seed(SIGLOG_WITNESS, SIGLOG_WITNESS_SEED).unwrap();
    let sw = siglog_witness(&tmp.path().join("sw"), &wkey, &[format!("{}={}", key.name(), key.verifier())]);
    let text = format!(
        "log {}\nwitness siglog {} {}\nquorum siglog\n",
        key.verifier(),
        note_vkey(&wkey),
        sw.url("")
    );
    let policy_file = tmp.path().join("witnesses.policy");
    std::fs::write(&policy_file, &text).unwrap();
    let policy = Policy::parse(text.as_bytes(), ParseOptions { note_signature_witnesses: true }).unwrap();
    let data = graven_log_dir(&tmp.path().join("log"), &key, "witness_note_signatures = true\n");
    let flag = ["--witness-policy", policy_file.to_str().unwrap()];

    let s = start(&data, &flag);
    let writer = s.identity("ci-bot", "writer", &["deploy.*"]);
    let mut witnessed: Vec<String> = Vec::new();
    let witness_upto = |s: &Server, witnessed: &mut Vec<String>| {
        let size = s.size();
        let mut cp = String::new();
        wait_until("a checkpoint witnessed by siglog", 60, || {
            cp = s.req("GET", "/checkpoint", Some(&s.token), None).body;
            policy.verify(cp.as_bytes()).is_ok_and(|w| w.checkpoint().size().0 == size)
        });
        let w = policy.verify(cp.as_bytes()).unwrap();
        assert_eq!(w.cosigned(), &[("siglog".to_owned(), None)], "a plain signature states no time");
        witnessed.push(cp);
    };
    // Growth, checkpoint by checkpoint: siglog checks Graven's consistency proofs.
    for round in 0..3 {
        for i in 0..=round {
            let r = s.post_event(
                &writer,
                &format!(r#"{{"action":"deploy.step","details":{{"r":{round},"i":{i}}}}}"#),
            );
            assert_eq!(r.status, 201, "{}", r.body);
        }
        witness_upto(&s, &mut witnessed);
    }
    let info = witness_info(&s, 0);
    assert_eq!(info["failures"], 0, "{info}");
    assert_eq!(info["cosigned_size"].as_u64(), Some(s.size()), "{info}");
    // ?witnessed=true receipts meet the policy.
    let r = s.req("POST", "/v1/events?witnessed=true", Some(&writer), Some(r#"{"action":"deploy.done"}"#));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["witnessed"], true, "{}", r.body);
    policy.verify(r.json()["checkpoint"].as_str().unwrap().as_bytes()).unwrap();

    // A restart forgets the size siglog holds: `old 0`, siglog's 409, then a proof from there.
    let held = s.size();
    drop(s);
    let s = start(&data, &flag);
    let r = s.req("POST", "/v1/events?witnessed=true", Some(&writer), Some(r#"{"action":"deploy.again"}"#));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["witnessed"], true, "{}", r.body);
    let info = witness_info(&s, 0);
    assert!(info["requests"].as_u64().unwrap() >= 2, "old 0, then the 409's size: {info}");
    assert_eq!(info["failures"], 0, "{info}");
    assert!(
        sw.output().contains("status=409"),
        "siglog's witness never answered 409 (it holds {held}):\n{}",
        sw.output()
    );
    witness_upto(&s, &mut witnessed);

    // Every siglog signature: a plain Ed25519 note signature (68 bytes), checked in Python too.
    let vkey = note_vkey(&wkey).to_string();
    let items: Vec<PyItem> = witnessed
        .iter()
        .map(|cp| {
            let line = lines_by(cp, SIGLOG_WITNESS);
            assert_eq!(line.len(), 1, "{cp}");
            PyItem { kind: "note", vkey: vkey.clone(), text: split_note(cp).0, line: line[0].clone() }
        })
        .collect();
    python_agrees(items, |_| "valid".to_owned());
}

/// The spec's rule for witness keys by default: a witness key is a `cosignature/v1` key (type
/// 0x04). Named by its note key (0x01), siglog's witness makes `graven serve` refuse the policy
/// at start. Named by a `cosignature/v1` key over the same public key, siglog's answers (valid
/// plain note signatures by that key) never count: the checkpoint is not witnessed, and
/// `/v1/log` says why.
#[test]
fn siglogs_plain_signatures_do_not_count_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SignerKey::from_seed("graven.example/log", [14; 32]).unwrap();
    let wkey = SignerKey::from_seed(SIGLOG_WITNESS, SIGLOG_WITNESS_SEED).unwrap();
    let sw = siglog_witness(&tmp.path().join("sw"), &wkey, &[format!("{}={}", key.name(), key.verifier())]);
    let data = graven_log_dir(&tmp.path().join("log"), &key, "witness_wait_ms = 2000\n");

    // Named by its note key: refused at start, saying what a witness key is.
    let note_policy = tmp.path().join("note.policy");
    std::fs::write(
        &note_policy,
        format!(
            "log {}\nwitness siglog {} {}\nquorum siglog\n",
            key.verifier(),
            note_vkey(&wkey),
            sw.url("")
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .arg("--witness-policy")
        .arg(&note_policy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plain Ed25519 note key (type 0x01)") && err.contains("cosignature/v1 key (type 0x04)"),
        "{err}"
    );

    // Named by a cosignature/v1 key over the same public key.
    let cosig_key = cosignature_vkey(SIGLOG_WITNESS, SIGLOG_WITNESS_SEED);
    let text = format!("log {}\nwitness siglog {cosig_key} {}\nquorum siglog\n", key.verifier(), sw.url(""));
    let policy_file = tmp.path().join("cosig.policy");
    std::fs::write(&policy_file, &text).unwrap();
    let policy = Policy::parse(text.as_bytes(), ParseOptions::default()).unwrap();
    let s = start(&data, &["--witness-policy", policy_file.to_str().unwrap()]);
    let writer = s.identity("ci-bot", "writer", &["deploy.*"]);
    let r = s.post_event(&writer, r#"{"action":"deploy.start"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let mut info = serde_json::Value::Null;
    wait_until("/v1/log to report siglog's plain signature", 60, || {
        info = witness_info(&s, 0);
        info["failures"].as_u64().unwrap() >= 1
    });
    let why = info["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("plain Ed25519 note signature (type 0x01)")
            && why.contains("cosignature/v1 (type 0x04)")
            && why.contains("witness_note_signatures"),
        "{info}"
    );
    assert_eq!(info["cosigned_size"], serde_json::Value::Null, "{info}");
    // siglog did sign (its witness answered 200), but the signature does not count.
    assert!(sw.output().contains("status=200"), "{}", sw.output());
    let cp = s.req("GET", "/checkpoint", Some(&s.token), None).body;
    assert!(lines_by(&cp, SIGLOG_WITNESS).is_empty(), "an unverified line was published:\n{cp}");
    match policy.verify(cp.as_bytes()) {
        Err(PolicyCheckError::Quorum { cosigned, missing }) => {
            assert!(cosigned.is_empty());
            assert_eq!(missing, ["siglog"]);
        }
        other => panic!("{other:?}\n{cp}"),
    }
    let r = s.req("POST", "/v1/events?witnessed=true", Some(&writer), Some(r#"{"action":"deploy.x"}"#));
    assert_eq!(r.status, 503, "{}", r.body);
}

// ---- 3. a fork, shown to both witnesses after the honest log ----

/// An honest Graven log is witnessed by `graven witness` and siglog's witness (both required).
/// Then a fork (another `graven serve` with the same key and another history) asks the same
/// witnesses: each answers 409 with the honest size for `old 0`, and 422 for the fork's own
/// proof from that size; the fork is never cosigned, its `/v1/log` reports the 422s, and the
/// policy verifier refuses its checkpoint, as it is and with the honest cosignatures copied
/// onto it.
///
#[test]
fn a_fork_of_a_graven_log_is_refused_by_both_witnesses() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SignerKey::from_seed("graven.example/forked", [15; 32]).unwrap();
    let follow = [format!("{}={}", key.name(), key.verifier())];
    let gw = GravenWitness::start(&tmp.path().join("gw"), "graven.example/witness", &follow);
    let wkey = SignerKey::from_seed(SIGLOG_WITNESS, SIGLOG_WITNESS_SEED).unwrap();
    let sw = siglog_witness(&tmp.path().join("sw"), &wkey, &follow);
    let text = format!(
        "log {}\nwitness graven {} http://{}\nwitness siglog {} {}\ngroup both all graven siglog\nquorum both\n",
        key.verifier(),
        gw.vkey,
        gw.addr,
        note_vkey(&wkey),
        sw.url("")
    );
    let policy_file = tmp.path().join("witnesses.policy");
    std::fs::write(&policy_file, &text).unwrap();
    let policy = Policy::parse(text.as_bytes(), ParseOptions { note_signature_witnesses: true }).unwrap();
    // A round for every checkpoint, so the fork's rounds follow its commits closely.
    let toml = "witness_note_signatures = true\nwitness_interval_ms = 0\n";
    let flag = ["--witness-policy", policy_file.to_str().unwrap()];

    // The honest log, witnessed by both.
    let honest = start(&graven_log_dir(&tmp.path().join("honest"), &key, toml), &flag);
    let writer = honest.identity("ci-bot", "writer", &["deploy.*"]);
    for i in 0..3 {
        let r = honest.post_event(&writer, &format!(r#"{{"action":"deploy.honest","details":{{"i":{i}}}}}"#));
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let held = honest.size();
    let mut honest_cp = String::new();
    wait_until("the honest checkpoint witnessed by both", 60, || {
        honest_cp = honest.req("GET", "/checkpoint", Some(&honest.token), None).body;
        policy.verify(honest_cp.as_bytes()).is_ok_and(|w| w.checkpoint().size().0 == held)
    });
    drop(honest);

    // The fork: the same key, another history, longer.
    let fork = start(&graven_log_dir(&tmp.path().join("fork"), &key, toml), &flag);
    let forger = fork.identity("ci-bot", "writer", &["deploy.*"]);
    let mut n = 0;
    let mut statuses = (String::new(), String::new());
    wait_until("the fork's rounds to be refused by both witnesses with 422", 90, || {
        n += 1;
        let r = fork.post_event(&forger, &format!(r#"{{"action":"deploy.forged","details":{{"n":{n}}}}}"#));
        assert_eq!(r.status, 201, "{}", r.body);
        std::thread::sleep(Duration::from_millis(300));
        let (g, s) = (witness_info(&fork, 0), witness_info(&fork, 1));
        statuses = (g.to_string(), s.to_string());
        let e = |w: &serde_json::Value| w["last_error"].as_str().unwrap_or_default().starts_with("422");
        fork.size() > held && e(&g) && e(&s)
    });
    let (g, s) = (witness_info(&fork, 0), witness_info(&fork, 1));
    for w in [&g, &s] {
        assert_eq!(w["cosigned_size"], serde_json::Value::Null, "the fork was cosigned: {statuses:?}");
        assert!(w["last_error"].as_str().unwrap().contains("misbehaving"), "{w}");
    }

    // The same, asked directly: 409 with the honest size, then 422 for the fork's proof.
    // /checkpoint serves the newest finished round's checkpoint: one past the honest size.
    let mut fork_cp = String::new();
    wait_until("a published fork checkpoint past the honest size", 30, || {
        fork_cp = fork.req("GET", "/checkpoint", Some(&fork.token), None).body;
        body_of(&fork_cp).size().0 > held
    });
    let size = body_of(&fork_cp).size().0;
    let p = fork.admin("GET", &format!("/v1/proofs/consistency?from={held}&to={size}"), None);
    assert_eq!(p.status, 200, "{}", p.body);
    let proof: Vec<Hash> = p.json()["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    for prefix in [format!("http://{}", gw.addr), sw.url("")] {
        let a = add_checkpoint(&prefix, 0, &[], &fork_cp);
        assert_eq!(
            (a.status, a.content_type.as_str(), a.body.clone()),
            (409, "text/x.tlog.size", format!("{held}\n")),
            "{prefix}"
        );
        let a = add_checkpoint(&prefix, held, &proof, &fork_cp);
        assert_eq!(a.status, 422, "{prefix}: {}", a.body);
    }
    // The honest record stands in Graven's witness.
    assert_eq!(gw.latest(key.name()).map(|c| body_of(&c).size().0), Some(held));

    // The policy verifier refuses the fork's checkpoint: no witness cosigned it ...
    match policy.verify(fork_cp.as_bytes()) {
        Err(PolicyCheckError::Quorum { cosigned, missing }) => {
            assert!(cosigned.is_empty(), "{cosigned:?}");
            assert_eq!(missing, ["graven", "siglog"]);
        }
        other => panic!("{other:?}\n{fork_cp}"),
    }
    // ... and the honest checkpoint's cosignatures copied onto it do not verify.
    let mut spliced = fork_cp.clone();
    for name in [gw.vkey.name(), SIGLOG_WITNESS] {
        let line = lines_by(&honest_cp, name);
        assert_eq!(line.len(), 1, "{honest_cp}");
        spliced.push_str(&line[0]);
    }
    assert!(
        matches!(policy.verify(spliced.as_bytes()), Err(PolicyCheckError::BadCosignature { .. })),
        "{spliced}"
    );
    // `graven verify --policy` refuses the fork as served, naming who did not cosign.
    let trust = tmp.path().join("trust");
    let out = common::graven_as(
        &[
            "verify",
            &format!("http://{}", fork.addr),
            "--policy",
            policy_file.to_str().unwrap(),
            "--policy-accept-note-signatures",
            "--trust-dir",
            trust.to_str().unwrap(),
        ],
        &fork.token,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("graven") && err.contains("siglog"), "{err}");
    // While the honest checkpoint verifies, cosigned by both.
    let ok = policy.verify(honest_cp.as_bytes()).unwrap();
    let names: Vec<&str> = ok.cosigned().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["graven", "siglog"]);
}
