//! End-to-end tests of the real `graven` binary: the contract other tools call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::{TestLog, graven, numbered, ok, serve, stderr};
use graven_testkit::vectors;

use graven_core::merkle;
use graven_core::note::SignerKey;
use graven_core::tile;
use graven_core::{Hash, LeafIndex, TreeSize};
use serde_json::Value;

fn all_files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// Must-show 2: feeding leaf-0 … leaf-69999 in one run reproduces the reference log byte for
/// byte: the checkpoint, every full tile and bundle, and the partial tiles for size 70000.
#[test]
fn reference_log_is_reproduced_byte_for_byte() {
    let reference = vectors().join("tlog-tiles/reference-70000");
    let keys = std::fs::read_to_string(reference.join("KEYS.txt")).unwrap();
    let field = |name: &str| keys.lines().find_map(|l| l.strip_prefix(name)).unwrap().trim().to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("key");
    std::fs::write(&key, field("skey ")).unwrap();
    let dir = tmp.path().join("log");
    let out = graven(
        &["log", "append", "--dir", dir.to_str().unwrap(), "--key", key.to_str().unwrap(), "--raw"],
        &numbered("leaf-", 0..70000),
    );
    let summary: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(summary["tree_size"], 70000);

    let size = TreeSize(70000);
    let mut expected: BTreeSet<String> = tile::tiles_for_size(size).map(|t| t.path()).collect();
    expected.extend(tile::bundles_for_size(size).map(|b| b.path()));
    expected.insert("checkpoint".into());
    assert_eq!(
        expected.len(),
        274 + 274 + 2 + 1 + 1,
        "tiles of a 70000 tree: 274 L0, 2 L1, 1 L2 + 274 bundles"
    );
    for f in &expected {
        let want = std::fs::read(reference.join(f)).unwrap_or_else(|e| panic!("reference {f}: {e}"));
        let got = std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("ours {f}: {e}"));
        assert!(want == got, "{f} differs from the reference");
    }
    // Nothing else was written (apart from the writer's lock file).
    let mut ours = all_files(&dir);
    ours.remove(".graven-lock");
    assert_eq!(ours, expected);
    // And the reference's own key verifies what we wrote.
    ok(&graven(&["verify", dir.to_str().unwrap(), "--vkey", &field("vkey ")], b""));
}

/// Must-show 3: a log written by another implementation verifies.
#[test]
fn tessera_log_verifies() {
    let dir = vectors().join("tlog-tiles/tessera-testdata/testdata/log");
    let out = graven(
        &[
            "verify",
            dir.to_str().unwrap(),
            "--vkey",
            "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx",
            "--json",
        ],
        b"",
    );
    let v: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["tree_size"], 15);
    assert_eq!(v["root"], "rKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=");
    // The wrong key is refused.
    let bad = graven(
        &[
            "verify",
            dir.to_str().unwrap(),
            "--vkey",
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        ],
        b"",
    );
    assert_eq!(bad.status.code(), Some(1));
}

/// A copy of a freshly built 700-entry log (two full tiles and bundles, partial tiles at
/// levels 0 and 1) for tampering.
fn tamper_fixture() -> TestLog {
    let log = TestLog::new("tamper.example/log");
    ok(&log.append_raw(&numbered("event ", 0..700)));
    ok(&log.verify());
    log
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

fn expect_failure(log: &TestLog, needles: &[&str]) {
    let out = log.verify_afresh();
    assert_eq!(out.status.code(), Some(1), "verify must fail; stderr: {}", stderr(&out));
    let msg = stderr(&out);
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} should mention {n:?}");
    }
}

/// Must-show 4: each kind of tampering is caught and named.
#[test]
fn flipped_bit_in_a_bundle() {
    let log = tamper_fixture();
    // Entry 3 of bundle 1 is leaf 259: skip 3 entries of (2 + 9) bytes and the length prefix.
    flip(&log.dir.join("tile/entries/001"), 3 * 11 + 2 + 4);
    expect_failure(&log, &["leaf 259", "tile/entries/001", "tile/0/001"]);
}

#[test]
fn flipped_bit_in_a_level0_tile() {
    let log = tamper_fixture();
    flip(&log.dir.join("tile/0/000"), 32 * 17 + 5);
    expect_failure(&log, &["leaf 17", "tile/0/000"]);
}

#[test]
fn flipped_bit_in_a_level1_tile() {
    let log = tamper_fixture();
    flip(&log.dir.join("tile/1/000.p/2"), 32 + 1);
    expect_failure(&log, &["tile/1/000.p/2", "hash 1"]);
}

#[test]
fn missing_tile() {
    let log = tamper_fixture();
    std::fs::remove_file(log.dir.join("tile/0/001")).unwrap();
    expect_failure(&log, &["tile/0/001", "missing"]);
}

#[test]
fn truncated_bundle() {
    let log = tamper_fixture();
    let p = log.dir.join("tile/entries/002.p/188");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 3]).unwrap();
    expect_failure(&log, &["tile/entries/002.p/188", "entry 187"]);
}

#[test]
fn edited_checkpoint() {
    let log = tamper_fixture();
    let p = log.dir.join("checkpoint");
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replacen("\n700\n", "\n699\n", 1)).unwrap();
    expect_failure(&log, &["checkpoint", "does not verify"]);
}

#[test]
fn checkpoint_signed_by_another_key() {
    let log = tamper_fixture();
    let p = log.dir.join("checkpoint");
    let text = std::fs::read_to_string(&p).unwrap();
    let body = text.split("\n\n").next().unwrap().to_owned() + "\n";
    // Same name, different key: a different key ID, so the signature is from an unknown key.
    let other = SignerKey::from_seed("tamper.example/log", [9; 32]).unwrap();
    std::fs::write(&p, other.sign(&body).unwrap()).unwrap();
    expect_failure(&log, &["checkpoint", "no signature from a trusted key"]);
}

/// Even a checkpoint validly signed by the log's own key is caught when it does not match the
/// data: the rebuilt root is compared, not trusted.
#[test]
fn checkpoint_signed_by_the_log_key_with_a_wrong_root() {
    let log = tamper_fixture();
    let skey = SignerKey::parse(std::fs::read_to_string(&log.key).unwrap().trim()).unwrap();
    let cp = graven_core::checkpoint::Checkpoint::new(skey.name(), TreeSize(700), Hash([3; 32])).unwrap();
    std::fs::write(log.dir.join("checkpoint"), skey.sign(&cp.to_text()).unwrap()).unwrap();
    expect_failure(&log, &["checkpoint: root", "700 entries"]);
}

#[test]
fn invalid_json_line_aborts_the_whole_run() {
    let log = TestLog::new("json.example/log");
    ok(&log.append_json(b"{\"a\":1}\n"));
    let before: Vec<(String, Vec<u8>)> = all_files(&log.dir)
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(log.dir.join(&f)).unwrap()))
        .collect();
    for (input, needle) in [
        (&b"{\"ok\":1}\n{\"ok\":2}\n{\"dup\":1,\"dup\":2}\n"[..], "line 3"),
        (b"{\"ok\":1}\nnot json\n", "line 2"),
        (b"{\"n\":9007199254740993}\n", "line 1"),
        (b"[1,2]\n", "line 1"),
        (b"{\"s\":\"\\ud800\"}\n", "line 1"),
    ] {
        let out = log.append_json(input);
        assert!(!out.status.success());
        let msg = stderr(&out);
        assert!(msg.contains(needle) && msg.contains("nothing was appended"), "{msg}");
        let after: Vec<(String, Vec<u8>)> = all_files(&log.dir)
            .into_iter()
            .map(|f| (f.clone(), std::fs::read(log.dir.join(&f)).unwrap()))
            .collect();
        assert_eq!(before, after, "a failed run changed the log directory");
    }
}

#[test]
fn json_events_are_stored_canonically() {
    let log = TestLog::new("json.example/log");
    ok(&log.append_json("{ \"b\" : 2.50, \"a\": \"\\u00e9\" }\r\n{\"z\":[1e2,true,null]}".as_bytes()));
    let bundle = std::fs::read(log.dir.join("tile/entries/000.p/2")).unwrap();
    let entries = tile::decode_bundle(&bundle, 2).unwrap();
    assert_eq!(entries[0], "{\"a\":\"é\",\"b\":2.5}".as_bytes());
    assert_eq!(entries[1], b"{\"z\":[100,true,null]}");
    ok(&log.verify());
}

#[test]
fn raw_lines_keep_their_bytes_and_appends_resume() {
    let log = TestLog::new("raw.example/log");
    ok(&log.append_raw(b"first\n\nthird \r\n"));
    ok(&log.append_raw(&numbered("x", 0..300)));
    let out = log.append_raw(b"last line without newline");
    let v: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(v["tree_size"], 304);
    let bundle = std::fs::read(log.dir.join("tile/entries/000")).unwrap();
    let entries = tile::decode_bundle(&bundle, 256).unwrap();
    assert_eq!(&entries[..3], &[&b"first"[..], b"", b"third \r"]);
    ok(&log.verify());
}

/// A bare relative directory name (no `./`) works for creating and appending.
#[test]
fn relative_log_directory() {
    let log = TestLog::new("rel.example/log");
    let work = log.dir.parent().unwrap();
    let run = |args: &[&str], input: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_graven"))
            .args(args)
            .env("GRAVEN_TRUST_DIR", &log.trust)
            .current_dir(work)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    ok(&run(&["log", "append", "--dir", "relt", "--key", "log.key", "--raw"], b"a\nb\n"));
    ok(&run(&["log", "append", "--dir", "relt", "--key", "log.key", "--raw"], b"c\n"));
    let v: Value =
        serde_json::from_str(&ok(&run(&["verify", "relt", "--vkey", &log.vkey, "--json"], b""))).unwrap();
    assert_eq!(v["tree_size"], 3);
}

#[test]
fn keygen_writes_a_private_key_and_refuses_to_overwrite() {
    let log = TestLog::new("keys.example/log");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let secret = std::fs::read_to_string(&log.key).unwrap();
    assert!(secret.starts_with("PRIVATE+KEY+keys.example/log+"));
    let skey = SignerKey::parse(secret.trim()).unwrap();
    assert_eq!(skey.verifier().to_string(), log.vkey);
    let again = graven(&["keygen", "--origin", "keys.example/log", "--out", log.key.to_str().unwrap()], b"");
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&log.key).unwrap(), secret, "the key was overwritten");
    let bad = graven(
        &["keygen", "--origin", "has space", "--out", log.dir.with_extension("k").to_str().unwrap()],
        b"",
    );
    assert!(!bad.status.success());
}

#[test]
fn proofs_verify_against_the_checkpoints() {
    let log = TestLog::new("prove.example/log");
    ok(&log.append_raw(&numbered("p", 0..1000)));
    let d = log.dir.to_str().unwrap();
    let cp_text = std::fs::read_to_string(log.dir.join("checkpoint")).unwrap();
    let vkey = graven_core::note::VerifierKey::parse(&log.vkey).unwrap();
    let cp =
        graven_core::checkpoint::VerifiedCheckpoint::open(cp_text.as_bytes(), &vkey, vkey.name()).unwrap();

    for (index, size) in [(0u64, None), (999, None), (5, Some(300u64)), (299, Some(300))] {
        let mut args = vec!["prove", "--dir", d, "--index"];
        let i = index.to_string();
        args.push(&i);
        let s = size.map(|s| s.to_string());
        if let Some(s) = &s {
            args.extend(["--size", s]);
        }
        let v: Value = serde_json::from_str(&ok(&graven(&args, b""))).unwrap();
        let n = v["tree_size"].as_u64().unwrap();
        assert_eq!(n, size.unwrap_or(1000));
        let b64 = |x: &Value| Hash::from_base64(x.as_str().unwrap()).unwrap();
        let proof: Vec<[u8; 32]> = v["proof"].as_array().unwrap().iter().map(|p| b64(p).0).collect();
        let leaf = graven_core::leaf_hash(format!("p{index}").as_bytes());
        assert_eq!(b64(&v["leaf_hash"]), leaf);
        merkle::verify_inclusion(&leaf, LeafIndex(index), TreeSize(n), &proof, &b64(&v["root"])).unwrap();
        if size.is_none() {
            assert_eq!(b64(&v["root"]), cp.root());
        }
    }
    let v: Value =
        serde_json::from_str(&ok(&graven(&["prove", "--dir", d, "--from", "300", "--to", "1000"], b"")))
            .unwrap();
    let b64 = |x: &Value| Hash::from_base64(x.as_str().unwrap()).unwrap();
    let proof: Vec<[u8; 32]> = v["proof"].as_array().unwrap().iter().map(|p| b64(p).0).collect();
    assert_eq!(b64(&v["root_to"]), cp.root());
    merkle::verify_consistency(TreeSize(300), TreeSize(1000), &b64(&v["root_from"]), &cp.root(), &proof)
        .unwrap();

    for bad in [
        vec!["prove", "--dir", d, "--index", "1000"],
        vec!["prove", "--dir", d, "--index", "1", "--size", "1001"],
        vec!["prove", "--dir", d, "--from", "0", "--to", "10"],
        vec!["prove", "--dir", d, "--from", "11", "--to", "10"],
    ] {
        let out = graven(&bad, b"");
        assert!(!out.status.success(), "{bad:?} should fail");
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
}

#[test]
fn verify_over_http() {
    let log = TestLog::new("http.example/log");
    ok(&log.append_raw(&numbered("h", 0..600)));
    let (url, requests) = serve(log.dir.clone());
    let v: Value =
        serde_json::from_str(&ok(&graven(&["verify", &url, "--vkey", &log.vkey, "--json"], b""))).unwrap();
    assert_eq!(v["tree_size"], 600);
    // checkpoint + 3 bundles + 3 level-0 tiles + 1 level-1 tile.
    assert_eq!(requests.lock().unwrap().len(), 8);
    flip(&log.dir.join("tile/entries/000"), 10);
    let out = graven(&["verify", &url, "--vkey", &log.vkey], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("tile/entries/000"), "{}", stderr(&out));
}

/// Durability by crashing: SIGKILL `graven log append` at random moments. After each kill the
/// log verifies at the old size or the new one, never anything else, and appends continue.
#[test]
fn kill_9_during_append_never_breaks_the_log() {
    let log = TestLog::new("crash.example/log");
    // Calibrate: how long does an uninterrupted append of this size take here?
    let started = std::time::Instant::now();
    ok(&log.append_raw(&numbered("c", 0..2000)));
    let window_us = (started.elapsed().as_micros() as u64 * 3 / 2).max(1000);
    let mut size = 2000u64;
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut outcomes = (0, 0);
    for round in 0..20 {
        let batch = 2000 + (round * 37) as u64;
        let input = numbered("k", size..size + batch);
        let mut child = Command::new(env!("CARGO_BIN_EXE_graven"))
            .args([
                "log",
                "append",
                "--dir",
                log.dir.to_str().unwrap(),
                "--key",
                log.key.to_str().unwrap(),
                "--raw",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&input).unwrap();
        drop(stdin);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_micros(seed % window_us));
        let _ = child.kill();
        let status = child.wait().unwrap();
        // Incremental, held to the last size verified: a crash must never look like a rollback.
        let trust = log.trust.to_str().unwrap();
        let out = graven(
            &["verify", log.dir.to_str().unwrap(), "--vkey", &log.vkey, "--json", "--trust-dir", trust],
            b"",
        );
        let v: Value = serde_json::from_str(&ok(&out)).unwrap();
        assert_eq!(v["trust"], if round == 0 { "first-use" } else { "consistent" });
        let now = v["tree_size"].as_u64().unwrap();
        if status.success() {
            assert_eq!(now, size + batch, "an acknowledged append is missing");
        } else {
            assert!(
                now == size || now == size + batch,
                "round {round}: size {now}, expected {size} or {}",
                size + batch
            );
        }
        if now == size {
            outcomes.0 += 1
        } else {
            outcomes.1 += 1
        }
        size = now;
    }
    let final_out = log.append_raw(b"after the storm\n");
    let v: Value = serde_json::from_str(&ok(&final_out)).unwrap();
    assert_eq!(v["tree_size"].as_u64().unwrap(), size + 1);
    ok(&log.verify());
    eprintln!("kill -9 rounds: {} left the old size, {} the new", outcomes.0, outcomes.1);
    assert!(outcomes.0 > 0, "no round was interrupted; the kill window is miscalibrated");
}

#[test]
fn proofs_at_tile_boundaries() {
    // Sizes at and around tile boundaries read partial tiles of the stored tree correctly.
    let log = TestLog::new("edge.example/log");
    ok(&log.append_raw(&numbered("e", 0..513)));
    let d = log.dir.to_str().unwrap();
    for size in ["1", "256", "257", "512", "513"] {
        let v: Value =
            serde_json::from_str(&ok(&graven(&["prove", "--dir", d, "--index", "0", "--size", size], b"")))
                .unwrap();
        assert_eq!(v["tree_size"].as_u64().unwrap().to_string(), size);
    }
}
