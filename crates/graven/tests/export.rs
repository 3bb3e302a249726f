//! `graven export` and `graven verify <bundle.tar>` end to end, through the real binary: from a
//! log directory and from a live server, then every kind of tampering with a bundle.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{agent, start};
use graven_core::note::SignerKey;
use graven_core::{Hash, leaf_hash};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn graven(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graven")).args(args).output().unwrap()
}

/// `graven` with an API key in `GRAVEN_TOKEN` (a server's reads need the auditor or admin role).
fn graven_as(token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graven")).args(args).env("GRAVEN_TOKEN", token).output().unwrap()
}

fn graven_stdin(args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A log directory with `n` events: actor svc:<i % 3>, action a.create or key.revoke, one
/// second apart from 2026-01-01T00:00:00Z, and some hostile strings.
struct Fixture {
    tmp: tempfile::TempDir,
    vkey: String,
}

impl Fixture {
    fn new(n: u64) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("key");
        let vkey = common::keygen(&key, "example.com/audit");
        let f = Fixture { tmp, vkey };
        f.append(0..n);
        f
    }

    fn append(&self, range: std::ops::Range<u64>) {
        let mut lines = String::new();
        for i in range {
            let action = if i % 2 == 0 { "a.create" } else { "key.revoke" };
            let ev = serde_json::json!({
                "action": action,
                "actor": {"id": format!("svc:{}", i % 3), "kind": "bot"},
                "logged_at": format!("2026-01-01T{:02}:{:02}:{:02}.000000Z", i / 3600, i / 60 % 60, i % 60),
                "outcome": "success",
                "details": {"n": i, "note": "pipe|eq=back\\slash\nnew\u{1b}[31m\u{202e}"},
            });
            lines.push_str(&ev.to_string());
            lines.push('\n');
        }
        let key = self.tmp.path().join("key");
        ok(&graven_stdin(
            &["log", "append", "--dir", self.dir().to_str().unwrap(), "--key", key.to_str().unwrap()],
            lines.as_bytes(),
        ));
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("log")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn export(&self, extra: &[&str]) -> Output {
        let dir = self.dir();
        let mut args = vec!["export", "--dir", dir.to_str().unwrap(), "--vkey", &self.vkey];
        args.extend_from_slice(extra);
        graven(&args)
    }

    fn bundle(&self, name: &str, extra: &[&str]) -> PathBuf {
        let p = self.path(name);
        let mut args = vec!["--bundle", p.to_str().unwrap()];
        args.extend_from_slice(extra);
        ok(&self.export(&args));
        p
    }

    fn verify(&self, bundle: &Path, trusted: bool) -> Output {
        let mut args = vec!["verify", bundle.to_str().unwrap()];
        if trusted {
            args.extend(["--vkey", &self.vkey]);
        }
        graven(&args)
    }
}

/// The archive's entries, in order.
fn entries(tar_bytes: &[u8]) -> Vec<(String, Vec<u8>, u64)> {
    let mut ar = tar::Archive::new(tar_bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
            let pos = e.raw_file_position();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, data, pos)
        })
        .collect()
}

/// A new archive from `files`; the manifest is recomputed when `fix_manifest`, as an
/// attacker who edits files would do.
fn build(files: &[(String, Vec<u8>)], fix_manifest: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut manifest = String::from("graven-evidence-bundle/1\n");
    for (path, data) in files {
        let data =
            if path == "manifest" && fix_manifest { manifest.clone().into_bytes() } else { data.clone() };
        if path != "manifest" {
            let role = match path.split('/').next().unwrap() {
                "verifier-key" => "verifier-key",
                "checkpoint" => "checkpoint",
                "events" => "event",
                "proofs" => "inclusion-proof",
                "checkpoints" => "older-checkpoint",
                _ => "consistency-proof",
            };
            manifest.push_str(&format!(
                "{} {role} {path}\n",
                graven_core::hex::encode(&Sha256::digest(data.as_slice()))
            ));
        }
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

fn edit(bundle: &Path, out: &Path, fix_manifest: bool, f: impl Fn(&str, &mut Vec<u8>) -> bool) {
    let files: Vec<(String, Vec<u8>)> = entries(&std::fs::read(bundle).unwrap())
        .into_iter()
        .filter_map(|(p, mut d, _)| f(&p, &mut d).then_some((p, d)))
        .collect();
    std::fs::write(out, build(&files, fix_manifest)).unwrap();
}

/// Flips one byte of `path`'s contents inside the raw archive (headers stay valid).
fn flip(bundle: &Path, out: &Path, path: &str, at: usize) {
    let mut raw = std::fs::read(bundle).unwrap();
    let (_, _, pos) = entries(&raw).into_iter().find(|(p, _, _)| p == path).unwrap();
    raw[pos as usize + at] ^= 0x01;
    std::fs::write(out, raw).unwrap();
}

fn expect_failure(out: &Output, needles: &[&str]) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(1), "expected a verification failure:\n{t}");
    assert!(t.contains("FAILED"), "{t}");
    for n in needles {
        assert!(t.contains(n), "expected {n:?} in:\n{t}");
    }
}

#[test]
fn bundle_from_a_directory_round_trips_and_every_tamper_is_named() {
    let fx = Fixture::new(700);
    // svc:1 holds indices 1, 4, 7, ...: a subset spread over three entry bundles.
    let b = fx.bundle("b.tar", &["--actor", "svc:1"]);
    let out = fx.verify(&b, true);
    let t = ok(&out);
    assert!(t.contains("OK: evidence bundle"), "{t}");
    assert!(t.contains("233 events (indices 1..=697)"), "{t}");
    assert!(t.contains("given with --vkey"), "{t}");
    let files = entries(&std::fs::read(&b).unwrap());
    assert_eq!(files.len(), 2 + 2 * 233 + 1);
    assert_eq!(files.last().unwrap().0, "manifest");
    // The event files are the exact leaves.
    let leaf4 = &files.iter().find(|(p, _, _)| p == "events/4").unwrap().1;
    let proof4: Value =
        serde_json::from_slice(&files.iter().find(|(p, _, _)| p == "proofs/4").unwrap().1).unwrap();
    assert_eq!(Hash::from_base64(proof4["leaf_hash"].as_str().unwrap()).unwrap(), leaf_hash(leaf4));
    assert_eq!(proof4["tree_size"], 700);

    // Without --vkey it verifies too, but says plainly which key it trusted and why that is weak.
    let t = ok(&fx.verify(&b, false));
    assert!(t.contains("taken from the bundle itself") && t.contains("WARNING"), "{t}");

    let bad = fx.path("bad.tar");
    // A byte of an event.
    flip(&b, &bad, "events/4", 10);
    expect_failure(
        &fx.verify(&bad, true),
        &["event 4:", "events/4 hashes to leaf hash", "manifest: events/4 has SHA-256"],
    );
    // A byte of a proof (inside the base64 of the first proof element).
    let p = String::from_utf8(proof4.to_string().into_bytes()).unwrap();
    let at = p.find("\"proof\":[\"").unwrap() + 12;
    flip(&b, &bad, "proofs/4", at);
    expect_failure(&fx.verify(&bad, true), &["event 4: proofs/4", "manifest: proofs/4 has SHA-256"]);
    // A byte of the checkpoint (its root line).
    flip(&b, &bad, "checkpoint", 22);
    expect_failure(&fx.verify(&bad, true), &["checkpoint: does not verify with the trusted key"]);
    // A byte of the manifest: a hex digit of the first hash changed to another hex digit...
    edit(&b, &bad, false, |p, d| {
        if p == "manifest" {
            let at = "graven-evidence-bundle/1\n".len() + 5;
            d[at] = if d[at] == b'0' { b'1' } else { b'0' };
        }
        true
    });
    expect_failure(&fx.verify(&bad, true), &["manifest: verifier-key has SHA-256"]);
    // ...or a bit of a role name.
    flip(&b, &bad, "manifest", "graven-evidence-bundle/1\n".len() + 65);
    expect_failure(&fx.verify(&bad, true), &["manifest: line 2: verifier-key has role \"werifier-key\""]);
    // An edited event with the manifest recomputed: the proof still catches it.
    edit(&b, &bad, true, |p, d| {
        if p == "events/7" {
            *d = String::from_utf8(d.clone()).unwrap().replace("svc:1", "svc:2").into_bytes();
        }
        true
    });
    expect_failure(
        &fx.verify(&bad, true),
        &["event 7: events/7 hashes to leaf hash", "the event or its proof was altered"],
    );
    // A proof moved to another event, manifest recomputed.
    edit(&b, &bad, true, |p, d| {
        if p == "proofs/7" {
            *d = String::from_utf8(d.clone()).unwrap().replace("\"index\":7", "\"index\":8").into_bytes();
        }
        true
    });
    expect_failure(&fx.verify(&bad, true), &["event 7: proofs/7 is for index 8"]);
    // A removed file, manifest left alone.
    edit(&b, &bad, false, |p, _| p != "proofs/10");
    expect_failure(
        &fx.verify(&bad, true),
        &["manifest: lists proofs/10, which is not in the bundle", "events/10 has no inclusion proof"],
    );
    // A removed checkpoint.
    edit(&b, &bad, true, |p, _| p != "checkpoint");
    expect_failure(&fx.verify(&bad, true), &["checkpoint: missing"]);
    // A file added that the manifest does not list.
    edit(&b, &bad, false, |_, _| true);
    let mut files: Vec<(String, Vec<u8>)> =
        entries(&std::fs::read(&b).unwrap()).into_iter().map(|(p, d, _)| (p, d)).collect();
    let manifest = files.pop().unwrap();
    files.push(("events/99999".into(), b"{}".to_vec()));
    files.push(manifest);
    std::fs::write(&bad, build(&files, false)).unwrap();
    expect_failure(
        &fx.verify(&bad, true),
        &["events/99999 is in the bundle but not listed", "proofs/99999 is missing"],
    );

    // Leaving events out (with their proofs and manifest lines) still verifies the rest.
    edit(&b, &bad, true, |p, _| !matches!(p, "events/1" | "proofs/1" | "events/400" | "proofs/400"));
    let t = ok(&fx.verify(&bad, true));
    assert!(t.contains("231 events (indices 4..=697)"), "{t}");
}

#[test]
fn a_swapped_verifier_key_is_caught_or_loudly_named() {
    let fx = Fixture::new(40);
    let b = fx.bundle("b.tar", &["--action", "a.create"]);
    let other = SignerKey::from_seed("other.example/log", [7; 32]).unwrap();
    let bad = fx.path("bad.tar");

    // The key replaced by another log's key, manifest recomputed.
    edit(&b, &bad, true, |p, d| {
        if p == "verifier-key" {
            *d = format!("{}\n", other.verifier()).into_bytes();
        }
        true
    });
    expect_failure(
        &fx.verify(&bad, false),
        &["checkpoint: does not verify with the trusted key other.example/log+"],
    );
    expect_failure(
        &fx.verify(&bad, true),
        &["verifier-key: the bundled key other.example/log+", "is not the key that was given"],
    );

    // The checkpoint re-signed with that key (same tree, the forger's origin) and the key
    // replaced: internally consistent, so it only passes when the bundle's own key is trusted,
    // and the output names that key and warns.
    edit(&b, &bad, true, |p, d| {
        if p == "verifier-key" {
            *d = format!("{}\n", other.verifier()).into_bytes();
        }
        if p == "checkpoint" {
            let text = String::from_utf8(d.clone()).unwrap();
            let body =
                text.split("\n\n").next().unwrap().replacen("example.com/audit", "other.example/log", 1);
            *d = other.sign(&format!("{body}\n")).unwrap().into_bytes();
        }
        true
    });
    let t = ok(&fx.verify(&bad, false));
    assert!(
        t.contains("trusted key: other.example/log+") && t.contains("taken from the bundle itself"),
        "{t}"
    );
    expect_failure(
        &fx.verify(&bad, true),
        &["checkpoint: does not verify with the trusted key example.com/audit+"],
    );
}

#[test]
fn older_checkpoints_come_with_consistency_proofs() {
    let fx = Fixture::new(300);
    let old = fx.path("old.checkpoint");
    std::fs::copy(fx.dir().join("checkpoint"), &old).unwrap();
    fx.append(300..520);
    let b = fx.bundle("b.tar", &["--actor", "svc:0", "--with-checkpoint", old.to_str().unwrap()]);
    let t = ok(&fx.verify(&b, true));
    assert!(t.contains("older checkpoints of size 300 are consistent"), "{t}");
    assert!(t.contains("at tree size 520"), "{t}");
    let bad = fx.path("bad.tar");
    let files = entries(&std::fs::read(&b).unwrap());
    let c =
        String::from_utf8(files.iter().find(|(p, _, _)| p == "consistency/300").unwrap().1.clone()).unwrap();
    let at = c.find("\"proof\":[\"").unwrap() + 12;
    flip(&b, &bad, "consistency/300", at);
    expect_failure(
        &fx.verify(&bad, true),
        &["checkpoints/300: consistency/300", "manifest: consistency/300 has SHA-256"],
    );
    flip(&b, &bad, "checkpoints/300", 20);
    expect_failure(&fx.verify(&bad, true), &["checkpoints/300: does not verify with the trusted key"]);
    // A checkpoint newer than the log being exported is refused at export time.
    let newer = fx.path("new.checkpoint");
    std::fs::copy(fx.dir().join("checkpoint"), &newer).unwrap();
    let small = Fixture::new(10);
    let out = graven(&[
        "export",
        "--dir",
        small.dir().to_str().unwrap(),
        "--vkey",
        &small.vkey,
        "--bundle",
        small.path("x.tar").to_str().unwrap(),
        "--with-checkpoint",
        newer.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not a checkpoint of this log"), "{}", text(&out));
    assert!(!small.path("x.tar").exists() && !small.path("x.tar.partial").exists());
}

#[test]
fn jsonl_from_a_directory_follows_the_search_semantics_and_carries_provable_hashes() {
    let fx = Fixture::new(300);
    let out = fx.export(&[
        "--actor",
        "svc:2",
        "--action",
        "key.revoke",
        "--since",
        "2026-01-01T00:01:00Z",
        "--until",
        "2026-01-01T00:04:00.5Z",
    ]);
    let t = ok(&out);
    let lines: Vec<&str> = t.lines().collect();
    // i % 3 == 2, i odd, 60 <= i <= 240 (logged at i seconds).
    let want: Vec<u64> = (60..=240).filter(|i| i % 3 == 2 && i % 2 == 1).collect();
    let got: Vec<u64> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["graven"]["index"].as_u64().unwrap())
        .collect();
    assert_eq!(got, want);
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["graven"]["origin"], "example.com/audit");
        let raw: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
            serde_json::from_str(l).unwrap();
        let claimed = Hash::from_base64(v["graven"]["leaf_hash"].as_str().unwrap()).unwrap();
        // The fixture's leaves hold U+202E, which the line writes as an escape: re-canonicalising
        // the event gives the exact leaf bytes back.
        let leaf = graven_core::jcs::canonicalize(raw["event"].get().as_bytes()).unwrap();
        assert_eq!(claimed, leaf_hash(&leaf), "leaf hash must be of the exact leaf bytes");
        common::assert_terminal_safe("export jsonl", l.as_bytes());
        // And those bytes are what the log holds at that index.
        let proof: Value = serde_json::from_str(&ok(&graven(&[
            "prove",
            "--dir",
            fx.dir().to_str().unwrap(),
            "--index",
            &v["graven"]["index"].to_string(),
        ])))
        .unwrap();
        assert_eq!(proof["leaf_hash"], v["graven"]["leaf_hash"]);
    }
    // --out writes only a fully verified export.
    let outfile = fx.path("out.cef");
    ok(&fx.export(&["--format", "cef", "--actor", "svc:0", "--out", outfile.to_str().unwrap()]));
    let cef = std::fs::read_to_string(&outfile).unwrap();
    assert_eq!(cef.lines().count(), 100);
    assert!(
        cef.lines().all(|l| l.starts_with("CEF:0|Graven|graven|") && l.contains("cs4Label=graven.origin"))
    );
    assert!(!cef.contains('\u{1b}') && !cef.contains('\u{202e}'), "hostile characters must not pass through");
    // A bad time bound is refused before anything is read.
    let bad = fx.export(&["--since", "yesterday"]);
    assert!(!bad.status.success() && text(&bad).contains("RFC 3339"), "{}", text(&bad));
}

#[test]
fn a_tampered_log_directory_exports_nothing_to_a_file() {
    let fx = Fixture::new(600);
    let bundle = fx.dir().join("tile/entries/001");
    let mut raw = std::fs::read(&bundle).unwrap();
    raw[100] ^= 1;
    std::fs::write(&bundle, raw).unwrap();
    let outfile = fx.path("out.jsonl");
    let out = fx.export(&["--out", outfile.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("failed verification") && text(&out).contains("leaf 256"), "{}", text(&out));
    assert!(!outfile.exists());
    let out = fx.export(&["--bundle", fx.path("b.tar").to_str().unwrap()]);
    assert!(!out.status.success() && !fx.path("b.tar").exists());
}

// ---- a live server ----

#[test]
fn bundle_and_records_from_a_live_server() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let url = format!("http://{}", s.addr);
    let mut batch = String::new();
    for i in 0..300 {
        let action = if i % 4 == 0 { "secret.read" } else { "deployment.create" };
        batch.push_str(&serde_json::json!({"action": action, "outcome": "success", "resource": {"type": "k8s", "id": format!("r{}", i % 5)}, "details": {"i": i}}).to_string());
        batch.push('\n');
    }
    let resp = agent()
        .post(format!("{url}/v1/events"))
        .header("Authorization", &format!("Bearer {}", s.token))
        .header("Content-Type", "application/x-ndjson")
        .send(batch.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    // The search index trails the log by a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value = agent()
            .get(format!("{url}/v1/events?limit=1"))
            .header("Authorization", &format!("Bearer {}", s.token))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .map(|b| serde_json::from_str::<Value>(&b).unwrap())
            .unwrap();
        // 300 events after the server's two records of its bootstrap admin.
        if v["indexed_size"] == 302 {
            break;
        }
        assert!(Instant::now() < deadline, "index did not catch up: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, &s.token).unwrap();
    let b = tmp.path().join("s.tar");
    let out = graven(&[
        "export",
        "--server",
        &url,
        "--token-file",
        token_file.to_str().unwrap(),
        "--vkey",
        &s.vkey,
        "--action",
        "secret.read",
        "--resource",
        "r0",
        "--bundle",
        b.to_str().unwrap(),
    ]);
    ok(&out);
    let t = ok(&graven(&["verify", b.to_str().unwrap(), "--vkey", &s.vkey]));
    // i % 4 == 0 and i % 5 == 0: 0, 20, ..., 280, at indices i + 2.
    assert!(t.contains("15 events (indices 2..=282)"), "{t}");
    // The bundled leaves are the bytes the server serves for those indices.
    let files = entries(&std::fs::read(&b).unwrap());
    let leaf = &files.iter().find(|(p, _, _)| p == "events/22").unwrap().1;
    let served: Value = agent()
        .get(format!("{url}/v1/events/22"))
        .header("Authorization", &format!("Bearer {}", s.token))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .map(|b| serde_json::from_str::<Value>(&b).unwrap())
        .unwrap();
    assert_eq!(served["leaf_hash"].as_str().unwrap(), leaf_hash(leaf).to_base64());
    let bad = tmp.path().join("bad.tar");
    flip(&b, &bad, "events/22", 5);
    expect_failure(&graven(&["verify", bad.to_str().unwrap(), "--vkey", &s.vkey]), &["event 22:"]);

    // OCSF records from the server, token from the environment, key from the server (warned).
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["export", "--server", &url, "--format", "ocsf", "--resource", "r3"])
        .env("GRAVEN_TOKEN", &s.token)
        .output()
        .unwrap();
    let t = ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("trusting the key the server states"));
    let recs: Vec<Value> = t.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(recs.len(), 60);
    for r in &recs {
        assert_eq!(r["class_uid"], 6003);
        assert_eq!(r["resources"][0]["uid"], "r3");
        let i = r["unmapped"]["graven"]["index"].as_u64().unwrap();
        assert_eq!((i - 2) % 5, 3);
        assert!(r["actor"]["user"]["uid"].is_string(), "actor comes from the credential: {r}");
    }
    // A wrong key is refused before anything is exported.
    let other = SignerKey::from_seed("other.example/log", [9; 32]).unwrap().verifier().to_string();
    let out = graven_as(&s.token, &["export", "--server", &url, "--vkey", &other]);
    assert!(!out.status.success() && out.stdout.is_empty(), "{}", text(&out));
}

#[test]
fn search_and_tail_print_hostile_fields_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let url = format!("http://{}", s.addr);
    let mut batch = String::new();
    for i in 0..12 {
        let ev = serde_json::json!({
            "action": format!("deploy.{i}"),
            "outcome": "success",
            "resource": {"type": "t", "id": format!("r\u{1b}[2J\u{202e}{i}\nfake")},
        });
        batch.push_str(&ev.to_string());
        batch.push('\n');
    }
    let resp = agent()
        .post(format!("{url}/v1/events"))
        .header("Authorization", &format!("Bearer {}", s.token))
        .header("Content-Type", "application/x-ndjson")
        .send(batch.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let dangerous =
        |t: &str| t.chars().any(|c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c));

    // tail without -f: the whole log from 0, then it exits.
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["tail", "--server", &url, "--from", "0"])
        .env("GRAVEN_TOKEN", &s.token)
        .output()
        .unwrap();
    let t = ok(&out);
    // The log starts with the server's two records of its bootstrap admin.
    assert_eq!(t.lines().count(), 1 + 2 + 12, "{t}");
    assert!(!dangerous(&t), "{t:?}");
    assert!(t.contains("r\\x1b[2J\\u{202e}3\\nfake"), "{t}");
    let out = graven_as(&s.token, &["tail", "--server", &url, "--from", "12", "--json"]);
    let idx: Vec<u64> = ok(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, vec![12, 13]);

    // search: the index trails the log by a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = graven_as(&s.token, &["search", "--server", &url, "--action", "deploy.5", "--json"]);
        let t = ok(&out);
        if !t.is_empty() {
            let v: Value = serde_json::from_str(t.lines().next().unwrap()).unwrap();
            assert_eq!(v["index"], 2 + 5);
            assert_eq!(t.lines().count(), 1);
            break;
        }
        assert!(Instant::now() < deadline, "search found nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = ok(&graven_as(&s.token, &["search", "--server", &url, "--limit", "3"]));
    assert_eq!(t.lines().count(), 1 + 3, "{t}");
    assert!(t.lines().nth(1).unwrap().starts_with("13 "), "newest first: {t}");
    assert!(!dangerous(&t), "{t:?}");
}

/// `graven export | head`: when the reader goes away, the export stops quietly with the
/// SIGPIPE status (141) instead of an error message.
#[test]
fn a_closed_pipe_ends_the_export_quietly() {
    use std::io::Read;
    let fx = Fixture::new(3000);
    let dir = fx.dir();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["export", "--dir", dir.to_str().unwrap(), "--vkey", &fx.vkey])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
}

/// `--json` output is for programs, but it is read on terminals too: characters that change how
/// a terminal shows text (ESC, C1 controls, bidi overrides, line separators, ...) are written
/// as `\uXXXX` escapes, so every line stays valid JSON meaning the same document, and a JSON
/// Lines export still gives back the exact leaf bytes by re-canonicalising its `event`.
#[test]
fn json_output_escapes_every_layout_character() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("data"), &[]);
    let url = format!("http://{}", s.addr);
    let hostile = "r\u{1b}[2J\u{202e}x\u{9b}31m\u{2028}y\u{2066}\u{7f}\u{feff}\u{85}\\u202e";
    let mut batch = String::new();
    for i in 0..3 {
        let ev = serde_json::json!({"action": format!("hostile.{i}"), "outcome": "success",
            "resource": {"type": "t", "id": hostile}, "details": {"note": hostile, "i": i}});
        batch.push_str(&ev.to_string());
        batch.push('\n');
    }
    let resp = agent()
        .post(format!("{url}/v1/events"))
        .header("Authorization", &format!("Bearer {}", s.token))
        .header("Content-Type", "application/x-ndjson")
        .send(batch.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let leaves = s.all_events();
    let stored: Vec<Value> = leaves.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    // The log starts with the server's own records of its bootstrap admin.
    let base = leaves.len() - 3;
    assert!(leaves[base..].iter().all(|l| l.contains('\u{202e}')), "the leaves hold the characters raw");

    let deadline = Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let t = ok(&graven_as(&s.token, &["search", "--server", &url, "--resource", hostile, "--json"]));
        if t.lines().count() == 3 {
            break t;
        }
        assert!(Instant::now() < deadline, "search found {t:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    common::assert_terminal_safe("search --json", lines.as_bytes());
    for l in lines.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let i = v["index"].as_u64().unwrap() as usize;
        assert_eq!(v["event"], stored[i], "the same document");
        assert_eq!(v["event"]["resource"]["id"], hostile);
    }
    let t = ok(&graven_as(&s.token, &["tail", "--server", &url, "--from", "0", "--json"]));
    common::assert_terminal_safe("tail --json", t.as_bytes());
    assert_eq!(t.lines().count(), leaves.len());

    let log_dir = s.data.join("log");
    for source in [&["--server", &url][..], &["--dir", log_dir.to_str().unwrap()][..]] {
        let mut args = vec!["export", "--vkey", &s.vkey, "--resource", hostile];
        args.extend_from_slice(source);
        let t = ok(&graven_as(&s.token, &args));
        common::assert_terminal_safe("export jsonl", t.as_bytes());
        assert_eq!(t.lines().count(), 3, "{t}");
        for l in t.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            let i = v["graven"]["index"].as_u64().unwrap() as usize;
            let raw: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
                serde_json::from_str(l).unwrap();
            let leaf = graven_core::jcs::canonicalize(raw["event"].get().as_bytes()).unwrap();
            assert_eq!(String::from_utf8(leaf.clone()).unwrap(), leaves[i], "JCS(event) is the leaf");
            assert_eq!(v["graven"]["leaf_hash"], leaf_hash(&leaf).to_base64());
        }
        args.extend_from_slice(&["--format", "ocsf"]);
        let t = ok(&graven_as(&s.token, &args));
        common::assert_terminal_safe("export ocsf", t.as_bytes());
        for l in t.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["resources"][0]["uid"], hostile);
        }
    }
}
