//! `graven witness` end to end, over loopback, against the real binary: C2SP `tlog-witness`
//! add-checkpoint and the monitoring path, a validly signed fork shown after the honest log,
//! cosignatures checked by graven-core AND by an independent Python implementation written
//! from the C2SP `tlog-cosignature` text, keep-alive, SIGTERM, `witness.toml`, `witness
//! keygen`, and a kill -9 loop with concurrent clients.
//!
//! Self-contained (no `common` module): it builds its logs with graven-core.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graven_core::checkpoint::Checkpoint;
use graven_core::cosignature::{self, Cosigned, CosignerKey};
use graven_core::hash::{Hash, TreeSize, leaf_hash};
use graven_core::merkle::{self, MemoryTree};
use graven_core::note::{Note, SignerKey};
use graven_testkit::process::{Listening, spawn_listening};
use sha2::{Digest, Sha256};

// ---- a log ----

/// A log (signer key, RFC 6962 tree) that can be forked: same key, another history.
struct Log {
    key: SignerKey,
    tree: Mutex<MemoryTree>,
}

impl Log {
    fn new(key: &SignerKey, size: u64, history: &str, shared_prefix: Option<(&Log, u64)>) -> Log {
        let mut tree = MemoryTree::new();
        let mut leaves = Vec::new();
        if let Some((base, at)) = shared_prefix {
            let base_tree = base.tree.lock().unwrap();
            leaves.extend((0..at).map(|i| merkle::HashSource::node(&mut base_tree.clone(), 0, i).unwrap()));
        }
        while (leaves.len() as u64) < size {
            leaves.push(leaf_hash(format!("{history} {}", leaves.len()).as_bytes()));
        }
        for l in leaves {
            tree.push(l);
        }
        Log { key: key.clone(), tree: Mutex::new(tree) }
    }
    fn origin(&self) -> &str {
        self.key.name()
    }
    fn root(&self, size: u64) -> Hash {
        merkle::root(&mut *self.tree.lock().unwrap(), TreeSize(size)).unwrap()
    }
    fn text(&self, size: u64) -> String {
        Checkpoint::new(self.origin(), TreeSize(size), self.root(size)).unwrap().to_text()
    }
    fn checkpoint(&self, size: u64) -> String {
        self.key.sign(&self.text(size)).unwrap()
    }
    fn proof(&self, from: u64, to: u64) -> Vec<Hash> {
        if from == 0 || from >= to {
            return vec![];
        }
        merkle::consistency_proof(&mut *self.tree.lock().unwrap(), TreeSize(from), TreeSize(to)).unwrap()
    }
    fn body(&self, old: u64, size: u64) -> Vec<u8> {
        body(old, &self.proof(old, size), &self.checkpoint(size))
    }
}

fn body(old: u64, proof: &[Hash], checkpoint: &str) -> Vec<u8> {
    let mut b = format!("old {old}\n");
    for h in proof {
        b.push_str(&h.to_base64());
        b.push('\n');
    }
    b.push('\n');
    b.push_str(checkpoint);
    b.into_bytes()
}

fn origin_hash(origin: &str) -> String {
    Sha256::digest(origin.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

// ---- the witness process ----

/// `graven witness` on a free loopback port, killed when dropped; its process, address and
/// start-up lines are the [`Listening`]'s it derefs to.
struct Witness {
    proc: Listening,
    vkey: CosignerKey,
}

impl std::ops::Deref for Witness {
    type Target = Listening;
    fn deref(&self) -> &Listening {
        &self.proc
    }
}

impl std::ops::DerefMut for Witness {
    fn deref_mut(&mut self) -> &mut Listening {
        &mut self.proc
    }
}

fn graven() -> Command {
    Command::new(env!("CARGO_BIN_EXE_graven"))
}

/// Starts `graven witness <args> --listen 127.0.0.1:0` and waits for its "listening on" line.
fn start(args: &[&str]) -> Witness {
    let mut cmd = graven();
    cmd.arg("witness").args(args).args(["--listen", "127.0.0.1:0"]).stderr(Stdio::inherit());
    let proc = spawn_listening(&mut cmd, Duration::from_secs(60));
    let vkey =
        CosignerKey::parse(proc.banner_value("verifier key: ").expect("no verifier key line")).unwrap();
    Witness { proc, vkey }
}

fn log_flag(log: &Log) -> String {
    format!("{}={}", log.origin(), log.key.verifier())
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// `POST /add-checkpoint` to the witness at `addr`.
fn post(agent: &ureq::Agent, addr: &str, body: &[u8]) -> Result<Answer, ureq::Error> {
    let mut r = agent.post(format!("http://{addr}/add-checkpoint")).send(body)?;
    let content_type =
        r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    Ok(Answer { status: r.status().as_u16(), content_type, body: r.body_mut().read_to_string()? })
}

impl Witness {
    fn add(&self, body: &[u8]) -> Answer {
        post(&agent(), &self.addr, body).unwrap()
    }
    fn monitored(&self, origin: &str) -> Answer {
        let mut r =
            agent().get(format!("http://{}/{}/checkpoint", self.addr, origin_hash(origin))).call().unwrap();
        Answer {
            status: r.status().as_u16(),
            content_type: String::new(),
            body: r.body_mut().read_to_string().unwrap(),
        }
    }
}

/// A returned cosignature: the checkpoint text it was for and the response line.
#[derive(Clone, Debug)]
struct Returned {
    size: u64,
    root: Hash,
    text: String,
    line: String,
}

fn check_with_core(vkey: &CosignerKey, r: &Returned) -> u64 {
    let note = format!("{}\n{}", r.text, r.line);
    match cosignature::check(&Note::parse(note.as_bytes()).unwrap(), std::slice::from_ref(vkey)).as_slice() {
        [Cosigned::Valid(ts)] => *ts,
        other => panic!("cosignature does not verify with graven-core: {other:?} {r:?}"),
    }
}

// ---- the independent check ----

/// `cosignature/v1` checked from the spec text alone (C2SP tlog-cosignature, Ed25519): the
/// vkey is `<name>+<hex key ID>+base64(0x04 || key)`, the key ID is SHA-256(name || "\n" ||
/// 0x04 || key)[:4], the signature line is `— <name> base64(key ID || u64 timestamp ||
/// Ed25519 signature)`, and the signed message is "cosignature/v1\ntime <ts>\n" + the note
/// text. Reads JSON lines {vkey, text, line}; prints one "valid <ts>" or "invalid <why>" per
/// line.
const PY_CHECKER: &str = r#"
import base64, hashlib, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.exceptions import InvalidSignature

def check(vkey, text, line):
    name, key_id_hex, key_b64 = vkey.split("+", 2)
    raw = base64.b64decode(key_b64, validate=True)
    if len(raw) != 33 or raw[0] != 0x04:
        return "invalid not a cosignature/v1 key"
    key = raw[1:]
    key_id = hashlib.sha256(name.encode() + b"\n" + b"\x04" + key).digest()[:4]
    if key_id.hex() != key_id_hex:
        return "invalid key ID of the vkey"
    if not line.endswith("\n"):
        return "invalid line without newline"
    dash, sig_name, sig_b64 = line[:-1].split(" ")
    if dash != "\u2014" or sig_name != name:
        return "invalid line shape or name"
    sig = base64.b64decode(sig_b64, validate=True)
    if len(sig) != 4 + 8 + 64 or sig[:4] != key_id:
        return "invalid signature length or key ID"
    ts = int.from_bytes(sig[4:12], "big")
    if ts == 0 or ts > 2**63 - 1:
        return "invalid timestamp"
    message = b"cosignature/v1\ntime " + str(ts).encode() + b"\n" + text.encode()
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(sig[12:], message)
    except InvalidSignature:
        return "invalid signature"
    return "valid %d" % ts

for l in sys.stdin:
    r = json.loads(l)
    print(check(r["vkey"], r["text"], r["line"]))
"#;

/// Runs the Python checker over `items` (vkey, text, line); its verdicts, in order.
fn python_check(items: &[(String, String, String)]) -> Vec<String> {
    let lines: Vec<serde_json::Value> =
        items.iter().map(|(v, t, l)| serde_json::json!({"vkey": v, "text": t, "line": l})).collect();
    common::python_verdicts("check_cosignature.py", PY_CHECKER, &lines)
}

/// Every returned cosignature passes the independent check, and a damaged one does not (so
/// the check can fail).
fn check_independently(vkey: &CosignerKey, returned: &[Returned]) {
    let v = vkey.to_string();
    let mut items: Vec<_> = returned.iter().map(|r| (v.clone(), r.text.clone(), r.line.clone())).collect();
    let r0 = &returned[0];
    let other_text = r0.text.replacen('\n', "x\n", 1);
    items.push((v.clone(), other_text, r0.line.clone()));
    let verdicts = python_check(&items);
    for (r, verdict) in returned.iter().zip(&verdicts) {
        let ts = check_with_core(vkey, r);
        assert_eq!(verdict, &format!("valid {ts}"), "{r:?}");
    }
    assert_eq!(verdicts.last().unwrap(), "invalid signature", "the independent check accepts anything");
}

// ---- tests ----

#[test]
fn the_witness_cosigns_the_honest_log_and_never_a_validly_signed_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SignerKey::from_seed("example.com/log", [1; 32]).unwrap();
    let honest = Log::new(&key, 200, "honest", None);
    let fork = Log::new(&key, 200, "fork", Some((&honest, 5)));
    let key_file = tmp.path().join("w.key");
    let data = tmp.path().join("data");
    let args = |name: bool| -> Vec<String> {
        let mut a =
            vec!["--data".into(), data.display().to_string(), "--key".into(), key_file.display().to_string()];
        if name {
            a.extend(["--name".into(), "witness.example/w1".into()]);
        }
        a.extend(["--log".into(), log_flag(&honest)]);
        a
    };
    let argv = args(true);
    let w = start(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    // First start: the key was created (0600) and its verifier key printed.
    assert!(w.banner.iter().any(|l| l.starts_with("created a new witness key in")), "{:?}", w.banner);
    assert_eq!(w.vkey.name(), "witness.example/w1");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(w.monitored(honest.origin()).status, 404, "never cosigned yet");

    // The honest log, growing.
    let mut returned = Vec::new();
    let mut old = 0;
    for size in [10, 11, 16, 17, 64, 100] {
        let a = w.add(&honest.body(old, size));
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.body.starts_with("\u{2014} witness.example/w1 ") && a.body.ends_with('\n'));
        returned.push(Returned { size, root: honest.root(size), text: honest.text(size), line: a.body });
        old = size;
    }

    // The fork, shown after: a fresh start is a 409 with the size held; its own proof from the
    // size held is a 422; a fork at the size held is a 422. Never a cosignature.
    let a = w.add(&fork.body(0, 150));
    assert_eq!((a.status, a.content_type.as_str(), a.body.as_str()), (409, "text/x.tlog.size", "100\n"));
    assert_eq!(w.add(&fork.body(100, 150)).status, 422);
    assert_eq!(w.add(&fork.body(100, 100)).status, 422);
    assert_eq!(w.add(&body(100, &honest.proof(100, 150), &fork.checkpoint(150))).status, 422);
    assert_eq!(w.add(&fork.body(64, 150)).status, 409);

    // The monitoring path: the latest, with the log's signature and the cosignature.
    let m = w.monitored(honest.origin());
    assert_eq!(m.status, 200);
    assert_eq!(m.body, format!("{}{}", honest.checkpoint(100), returned.last().unwrap().line));

    // Restarted (SIGTERM, drained), it holds what it cosigned, and does not need --name.
    let pid = w.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let mut w = w;
    let status = w.child.wait().unwrap();
    assert!(status.success(), "SIGTERM: {status:?}");
    let argv = args(false);
    let w2 = start(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(w2.vkey, w.vkey);
    assert!(
        w2.banner.iter().any(|l| l == "following example.com/log (cosigned size 100)"),
        "{:?}",
        w2.banner
    );
    assert_eq!(w2.add(&fork.body(0, 150)).body, "100\n");
    assert_eq!(w2.add(&fork.body(100, 150)).status, 422);
    let a = w2.add(&honest.body(100, 200));
    assert_eq!(a.status, 200);
    returned.push(Returned { size: 200, root: honest.root(200), text: honest.text(200), line: a.body });

    // Every cosignature verifies with graven-core and with the independent implementation.
    check_independently(&w2.vkey, &returned);
    // And the spec's other statuses over the wire.
    assert_eq!(w2.add(b"old 1\n").status, 400);
    let other = Log::new(&SignerKey::from_seed("example.com/other", [2; 32]).unwrap(), 3, "x", None);
    assert_eq!(w2.add(&other.body(0, 3)).status, 404);
    let impostor = Log::new(&SignerKey::from_seed("example.com/log", [3; 32]).unwrap(), 300, "honest", None);
    assert_eq!(w2.add(&impostor.body(200, 200)).status, 403);
}

/// Two requests on one connection: HTTP/1.1 keep-alive.
#[test]
fn the_witness_keeps_connections_alive() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SignerKey::from_seed("example.com/log", [1; 32]).unwrap();
    let log = Log::new(&key, 10, "honest", None);
    let data = tmp.path().join("d");
    let w = start(&["--data", data.to_str().unwrap(), "--name", "w.example/1", "--log", &log_flag(&log)]);
    let mut conn = std::net::TcpStream::connect(&w.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
    for (old, size, want) in [(0, 5, "200"), (5, 10, "200"), (0, 10, "409")] {
        let b = log.body(old, size);
        write!(
            conn,
            "POST /add-checkpoint HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            w.addr,
            b.len()
        )
        .unwrap();
        conn.write_all(&b).unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with(&format!("HTTP/1.1 {want}")), "{status:?}");
        let mut len = 0;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            if h == "\r\n" {
                break;
            }
            assert!(!h.to_ascii_lowercase().starts_with("connection: close"), "{h}");
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length: ") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut b = vec![0; len];
        reader.read_exact(&mut b).unwrap();
    }
}

/// Settings from `witness.toml` in the data directory; unknown keys refused; `witness keygen`.
#[test]
fn witness_toml_and_keygen() {
    let tmp = tempfile::tempdir().unwrap();
    let key_file = tmp.path().join("w.key");
    let out = graven()
        .args(["witness", "keygen", "--name", "witness.example/k", "--out"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vkey = CosignerKey::parse(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    let again = graven()
        .args(["witness", "keygen", "--name", "witness.example/k", "--out"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(!again.status.success(), "keygen overwrote a key");

    let log_key = SignerKey::from_seed("example.com/log", [1; 32]).unwrap();
    let log = Log::new(&log_key, 4, "honest", None);
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let toml = format!(
        "key = {:?}\nprefix = \"/w\"\n[[log]]\norigin = \"example.com/log\"\nvkey = \"{}\"\n",
        key_file.display().to_string(),
        log_key.verifier()
    );
    std::fs::write(data.join("witness.toml"), &toml).unwrap();
    let w = start(&["--data", data.to_str().unwrap()]);
    assert_eq!(w.vkey, vkey, "the key named in witness.toml");
    let a = agent().post(format!("http://{}/w/add-checkpoint", w.addr)).send(log.body(0, 4)).unwrap();
    assert_eq!(a.status().as_u16(), 200);
    drop(w);

    std::fs::write(data.join("witness.toml"), format!("{toml}listn = \"x\"\n")).unwrap();
    let out = graven()
        .args(["witness", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listn"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A log key named after another origin is refused.
    let out = graven()
        .args(["witness", "--data", tmp.path().join("x").to_str().unwrap(), "--name", "w.example/x", "--log"])
        .arg(format!("example.com/other={}", log_key.verifier()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not the origin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIGKILL the witness again and again while honest clients push a growing log and a forger
/// pushes a validly signed fork (diverging before the first size cosigned), concurrently.
/// Across all cycles, no two returned cosignatures are for inconsistent checkpoints (every
/// pair checked with a consistency proof from the honest log, or by root at equal sizes), the
/// fork is never cosigned, and after each restart the witness holds at least the largest size
/// it ever returned a cosignature for. `GRAVEN_WITNESS_CRASH_CYCLES` sets the cycles.
#[test]
fn kill_9_never_yields_two_inconsistent_cosignatures() {
    let cycles: u64 =
        std::env::var("GRAVEN_WITNESS_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
    const TOTAL: u64 = 2500;
    let tmp = tempfile::tempdir().unwrap();
    let key = SignerKey::from_seed("example.com/log", [1; 32]).unwrap();
    let honest = Arc::new(Log::new(&key, TOTAL, "honest", None));
    let fork = Arc::new(Log::new(&key, TOTAL, "fork", Some((&honest, 4))));
    let data = tmp.path().join("data");
    let data_s = data.display().to_string();
    let flag = log_flag(&honest);
    let args = ["--data", &data_s, "--name", "witness.example/k9", "--log", &flag];
    let published = Arc::new(AtomicU64::new(8));
    let returned: Arc<Mutex<Vec<(bool, Returned)>>> = Arc::new(Mutex::new(Vec::new()));
    let fork_refused = Arc::new(AtomicU64::new(0));
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut vkey = None;
    for cycle in 0..cycles {
        let mut w = start(&args);
        vkey.get_or_insert(w.vkey.clone());
        // Durable before returned: the witness holds at least every size it vouched for.
        let held = held_size(&w, honest.origin());
        let max_returned = returned.lock().unwrap().iter().map(|r| r.1.size).max().unwrap_or(0);
        assert!(
            held >= max_returned,
            "cycle {cycle}: holds {held} after returning a cosignature for {max_returned}"
        );
        if cycle == 0 {
            // The witness sees the honest log first.
            let a = w.add(&honest.body(0, 8));
            assert_eq!(a.status, 200);
            returned
                .lock()
                .unwrap()
                .push((true, Returned { size: 8, root: honest.root(8), text: honest.text(8), line: a.body }));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for c in 0..4u64 {
            let (addr, honest, fork, published, returned, stop, fork_refused) = (
                w.addr.clone(),
                honest.clone(),
                fork.clone(),
                published.clone(),
                returned.clone(),
                stop.clone(),
                fork_refused.clone(),
            );
            clients.push(std::thread::spawn(move || {
                let agent = agent();
                let mut old = 0;
                let mut n = c;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let is_fork = c == 3;
                    let log = if is_fork { &fork } else { &honest };
                    let top =
                        if is_fork { TOTAL } else { published.fetch_add(n % 3, Ordering::SeqCst).min(TOTAL) };
                    let size = (old + n % 7).clamp(5, top).max(old);
                    // The forger sometimes claims a fresh start.
                    let old_sent = if is_fork && n % 4 == 0 { 0 } else { old };
                    let Ok(a) = post(&agent, &addr, &log.body(old_sent, size)) else { break };
                    match a.status {
                        200 => {
                            let r =
                                Returned { size, root: log.root(size), text: log.text(size), line: a.body };
                            returned.lock().unwrap().push((!is_fork, r));
                            old = size;
                        }
                        409 => {
                            assert_eq!(a.content_type, "text/x.tlog.size");
                            old = a.body.trim_end_matches('\n').parse().unwrap();
                            if is_fork {
                                fork_refused.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        422 | 400 if is_fork => {
                            fork_refused.fetch_add(1, Ordering::SeqCst);
                        }
                        s => panic!("an honest client got {s}: {}", a.body),
                    }
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(40 + rand(200)));
        let _ = w.child.kill(); // SIGKILL
        let _ = w.child.wait();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
        drop(w);
    }
    let w = start(&args);
    let held = held_size(&w, honest.origin());
    let all = returned.lock().unwrap().clone();
    let vkey = vkey.unwrap();
    assert!(all.iter().all(|(honest, _)| *honest), "the fork was cosigned");
    assert!(all.iter().all(|r| r.1.size <= held), "a cosigned size was lost");
    // Every pair: equal roots at equal sizes, else a consistency proof from the honest log
    // between the two roots.
    let mut distinct: Vec<(u64, Hash)> = all.iter().map(|r| (r.1.size, r.1.root)).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let mut pairs = 0u64;
    for (i, a) in distinct.iter().enumerate() {
        for b in &distinct[i + 1..] {
            pairs += 1;
            if a.0 == b.0 {
                assert_eq!(a.1, b.1, "two cosignatures at size {} with different roots", a.0);
                continue;
            }
            let proof = honest.proof(a.0, b.0);
            let proof: Vec<&[u8; 32]> = proof.iter().map(|h| h.as_bytes()).collect();
            merkle::verify_consistency(TreeSize(a.0), TreeSize(b.0), &a.1, &b.1, &proof)
                .unwrap_or_else(|e| panic!("cosigned {a:?} and {b:?}, which are inconsistent: {e}"));
        }
    }
    let list: Vec<Returned> = all.iter().map(|r| r.1.clone()).collect();
    check_independently(&vkey, &list);
    let refused = fork_refused.load(Ordering::SeqCst);
    assert!(list.len() as u64 > cycles * 3, "too few cosignatures ({}) to mean anything", list.len());
    assert!(refused > cycles, "too few fork attempts ({refused}) to mean anything");
    eprintln!(
        "{cycles} kill -9 cycles: {} cosignatures returned ({} distinct checkpoints, {pairs} pairs checked), {refused} fork submissions refused, final size {held}",
        list.len(),
        distinct.len()
    );
}

fn held_size(w: &Witness, origin: &str) -> u64 {
    let m = w.monitored(origin);
    if m.status == 404 {
        return 0;
    }
    assert_eq!(m.status, 200);
    let note = Note::parse(m.body.as_bytes()).unwrap();
    Checkpoint::parse(note.text()).unwrap().size().0
}
