//! `--policy FILE` (C2SP tlog-policy) through the real binary: `graven verify` of a directory, a
//! URL and `--follow`, `graven prove --url`, evidence bundles, C2SP tlog-proof files, and the
//! trust store's cosignatures. Witnesses are `graven_core::cosignature::Cosigner`s whose
//! cosignature lines are appended to the log's checkpoint, as a server that gathered them
//! serves it (C2SP tlog-witness: "signature lines appended").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use common::{TestLog, assert_terminal_safe, graven, numbered, ok, serve, stderr};
use graven_core::cosignature::Cosigner;
use graven_core::note::{Note, SignerKey};
use serde_json::Value;

/// Cosignature times: witness n cosigns at T0 + n (T0 + 1 is 2025-10-09T08:53:21Z).
const T0: u64 = 1_760_000_000;

fn witness(n: u8) -> Cosigner {
    Cosigner::from_seed(&format!("witness{n}.example"), [100 + n; 32]).unwrap()
}

/// `log <vkey>`, witnesses W1, W2 and W3, and a quorum of `k` of them.
fn policy_text(vkey: &str, k: &str) -> String {
    let mut s = format!("# the log\nlog {vkey}\n\n");
    for n in 1..=3 {
        s += &format!("witness W{n} {}\n", witness(n).verifier());
    }
    s + &format!("group three {k} W1 W2 W3\nquorum three\n")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The checkpoint note's text (what witnesses cosign).
fn note_text(note: &str) -> String {
    Note::parse(note.as_bytes()).unwrap().text().to_owned()
}

/// The cosignature lines of `cosigners` for `note`.
fn cosignatures(note: &str, cosigners: &[u8]) -> String {
    let text = note_text(note);
    cosigners.iter().map(|&n| witness(n).cosign(&text, T0 + u64::from(n)).unwrap()).collect()
}

/// Appends the cosignatures of `cosigners` to the checkpoint of the log in `dir`.
fn cosign(dir: &Path, cosigners: &[u8]) {
    let path = dir.join("checkpoint");
    let note = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, note.clone() + &cosignatures(&note, cosigners)).unwrap();
}

fn run(args: &[&str]) -> Output {
    graven(args, b"")
}

fn json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: stdout {text:?}, stderr {}", stderr(out)))
}

fn failed(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "must be refused (exit 1); stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} should mention {n:?}");
    }
    assert_terminal_safe("stderr", &out.stderr);
    err
}

/// A log of `n` raw entries, its policy (2 of 3) and its directory as a string.
struct Fx {
    log: TestLog,
    policy: PathBuf,
}

impl Fx {
    fn new(origin: &str, n: u64) -> Fx {
        let log = TestLog::new(origin);
        ok(&log.append_raw(&numbered("entry ", 0..n)));
        let policy = write(log.dir.parent().unwrap(), "policy.txt", &policy_text(&log.vkey, "2"));
        Fx { log, policy }
    }
    fn dir(&self) -> &str {
        self.log.dir.to_str().unwrap()
    }
    fn policy(&self) -> &str {
        self.policy.to_str().unwrap()
    }
    fn path(&self, name: &str) -> PathBuf {
        self.log.dir.parent().unwrap().join(name)
    }
    /// `graven verify <target> --policy <policy> --trust-dir <this log's store>`.
    fn verify(&self, target: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "verify",
            target,
            "--policy",
            self.policy(),
            "--trust-dir",
            self.log.trust.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    }
}

#[test]
fn verify_with_a_policy_names_the_witnesses_that_cosigned() {
    let fx = Fx::new("policy.example/log", 40);
    cosign(&fx.log.dir, &[1, 3]);
    // No --vkey: the policy's log line is the key.
    let out = fx.verify(fx.dir(), &[]);
    let text = ok(&out);
    assert!(text.contains("OK: policy.example/log verifies: 40 entries"), "{text}");
    assert!(
        text.contains(&format!("witnessed: the quorum of the policy {} is met; cosigned by W1 (cosigned 2025-10-09T08:53:21Z), W3 (cosigned 2025-10-09T08:53:23Z)", fx.policy())),
        "{text}"
    );
    let v = json(&fx.verify(fx.dir(), &["--json", "--vkey", &fx.log.vkey]));
    assert_eq!(v["ok"], true);
    assert_eq!(v["witnesses"]["quorum_met"], true);
    let cosigned = v["witnesses"]["cosigned"].as_array().unwrap();
    assert_eq!(cosigned.len(), 2);
    assert_eq!((&cosigned[0]["witness"], &cosigned[0]["timestamp"]), (&"W1".into(), &(T0 + 1).into()));
    assert_eq!(cosigned[1]["time"], "2025-10-09T08:53:23Z");
    assert_eq!(v["remembered_witnessed"]["quorum_met"], true, "{v}");
    // Over HTTP, from a plain tile server: the same.
    let (url, _) = serve(fx.log.dir.clone());
    let v = json(&fx.verify(&url, &["--json", "--full"]));
    assert_eq!((&v["ok"], &v["witnesses"]["quorum_met"]), (&true.into(), &true.into()), "{v}");
}

#[test]
fn verify_with_a_policy_refuses_a_checkpoint_below_quorum_naming_who_signed() {
    let fx = Fx::new("quorum.example/log", 10);
    cosign(&fx.log.dir, &[2]);
    let out = fx.verify(fx.dir(), &["--json"]);
    failed(
        &out,
        &[
            "verification FAILED",
            "refused by the witness policy",
            "the witness quorum is not met: cosigned by W2; not by W1, W3",
            "Nothing was remembered",
        ],
    );
    let v = json(&out);
    assert_eq!((&v["alert"], &v["witnesses"]["quorum_met"]), (&"not-witnessed".into(), &false.into()), "{v}");
    assert_eq!(v["witnesses"]["cosigned"], serde_json::json!(["W2"]));
    assert_eq!(v["witnesses"]["not_cosigned"], serde_json::json!(["W1", "W3"]));
    // Nothing was remembered: the next run without a policy is a first use.
    let plain = ok(&fx.log.verify());
    assert!(plain.contains("trusted on first use"), "{plain}");
    // Without any cosignature at all, the message says so.
    let bare = Fx::new("bare.example/log", 3);
    failed(&bare.verify(bare.dir(), &[]), &["cosigned by no witness; not by W1, W2, W3"]);
    // A witness line that does not verify (W1's cosignature of another checkpoint): refused,
    // even though W2 and W3 make a quorum.
    let other = Fx::new("bad-line.example/log", 4);
    let note = std::fs::read_to_string(other.log.dir.join("checkpoint")).unwrap();
    let wrong = witness(1).cosign(&note_text(&note).replacen("\n4\n", "\n5\n", 1), T0).unwrap();
    std::fs::write(other.log.dir.join("checkpoint"), note.clone() + &cosignatures(&note, &[2, 3]) + &wrong)
        .unwrap();
    failed(&other.verify(other.dir(), &[]), &["the cosignature of witness W1 does not verify"]);
}

#[test]
fn the_policy_must_list_the_log_s_key() {
    let fx = Fx::new("listed.example/log", 3);
    cosign(&fx.log.dir, &[1, 2, 3]);
    let stranger = SignerKey::from_seed("listed.example/log", [9; 32]).unwrap().verifier().to_string();
    let other = write(fx.log.dir.parent().unwrap(), "other.txt", &policy_text(&stranger, "1"));
    let out = run(&["verify", fx.dir(), "--vkey", &fx.log.vkey, "--policy", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "a policy for another log is a usage error");
    let err = stderr(&out);
    assert!(err.contains("does not list this log's key") && err.contains(&stranger), "{err}");
    // Without --vkey the policy's log is taken, and the log is not signed by it.
    let out = run(&["verify", fx.dir(), "--policy", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // A malformed policy names its line.
    let bad = write(fx.log.dir.parent().unwrap(), "bad.txt", "log x\nquorum none\n");
    let out = run(&["verify", fx.dir(), "--policy", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("policy line 1"), "{}", stderr(&out));
}

/// The operator signs a second history with the log's own key and shows it to a fresh auditor.
/// The honest log is cosigned by all three witnesses; the fork only by W3, who went along with
/// it (a dishonest subset below the quorum of two). `graven verify --policy` refuses the fork,
/// from a directory and over HTTP, and an auditor who remembered the honest log reports a FORK.
#[test]
fn a_validly_signed_fork_cosigned_below_quorum_is_refused() {
    let fx = Fx::new("fork.example/log", 300);
    cosign(&fx.log.dir, &[1, 2, 3]);
    let fork_dir = fx.path("fork");
    ok(&graven(
        &[
            "log",
            "append",
            "--dir",
            fork_dir.to_str().unwrap(),
            "--key",
            fx.log.key.to_str().unwrap(),
            "--raw",
        ],
        &numbered("rewritten ", 0..300),
    ));
    cosign(&fork_dir, &[3]);
    let fork = fork_dir.to_str().unwrap();
    // Validly signed by the log's key: without a policy a fresh verifier accepts it.
    assert!(ok(&fx.log.verify_afresh()).contains("verifies"));
    assert!(ok(&run(&["verify", fork, "--vkey", &fx.log.vkey])).contains("verifies"));
    // With the policy, a fresh verifier refuses the fork and accepts the honest log.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_verify = |target: &str| {
        run(&[
            "verify",
            target,
            "--policy",
            fx.policy(),
            "--trust-dir",
            fresh.path().to_str().unwrap(),
            "--json",
        ])
    };
    let out = fresh_verify(fork);
    failed(&out, &["cosigned by W3; not by W1, W2"]);
    assert_eq!(json(&out)["alert"], "not-witnessed");
    let (fork_url, _) = serve(fork_dir.clone());
    failed(&fresh_verify(&fork_url), &["cosigned by W3; not by W1, W2"]);
    assert!(std::fs::read_dir(fresh.path()).map_or(0, |d| d.count()) == 0, "the fork was not remembered");
    assert_eq!(json(&fresh_verify(fx.dir()))["witnesses"]["quorum_met"], true);
    // Remembered the honest log, shown the fork: the fork is reported as a fork (evidence).
    let out = fresh_verify(fork);
    failed(&out, &["FORK"]);
    assert_eq!(json(&out)["alert"], "fork");
}

/// siglog's witness signs checkpoints with a plain Ed25519 note signature (type 0x01). The spec's
/// rule stands by default; `--policy-accept-note-signatures` admits such a witness key.
#[test]
fn plain_note_signature_witnesses_count_only_with_the_opt_in() {
    let fx = Fx::new("siglog.example/log", 5);
    let siglog = SignerKey::from_seed("siglog-witness.example", [77; 32]).unwrap();
    let path = fx.log.dir.join("checkpoint");
    let note = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, note.clone() + &siglog.signature_line(note_text(&note).as_bytes())).unwrap();
    let vkey = &fx.log.vkey;
    let plain = write(
        fx.log.dir.parent().unwrap(),
        "plain.txt",
        &format!("log {vkey}\nwitness S {}\nquorum S\n", siglog.verifier()),
    );
    let plain = plain.to_str().unwrap();
    let out = run(&["verify", fx.dir(), "--policy", plain]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("plain Ed25519 note key (type 0x01)") && err.contains("policy line 2"), "{err}");

    let text = ok(&run(&["verify", fx.dir(), "--policy", plain, "--policy-accept-note-signatures"]));
    assert!(text.contains("cosigned by S (a plain note signature, no time)"), "{text}");
    let v = json(&run(&["verify", fx.dir(), "--policy", plain, "--policy-accept-note-signatures", "--json"]));
    assert_eq!(v["witnesses"]["cosigned"][0]["timestamp"], Value::Null, "{v}");

    // The same Ed25519 key listed as a cosignature/v1 key (what the spec calls a witness key):
    // its plain note signature is not a cosignature, so the quorum is not met.
    let as_cosigner = Cosigner::from_seed("siglog-witness.example", [77; 32]).unwrap();
    let strict = write(
        fx.log.dir.parent().unwrap(),
        "strict.txt",
        &format!("log {vkey}\nwitness S {}\nquorum S\n", as_cosigner.verifier()),
    );
    for extra in [&[][..], &["--policy-accept-note-signatures"]] {
        let mut args = vec!["verify", fx.dir(), "--policy", strict.to_str().unwrap()];
        args.extend_from_slice(extra);
        failed(&run(&args), &["cosigned by no witness; not by S"]);
    }
    // The flag means nothing without a policy.
    assert_eq!(
        run(&["verify", fx.dir(), "--vkey", vkey, "--policy-accept-note-signatures"]).status.code(),
        Some(2)
    );
}

#[test]
fn the_trust_store_keeps_cosignatures_and_reports_an_entry_that_no_longer_meets_the_policy() {
    let fx = Fx::new("store.example/log", 20);
    cosign(&fx.log.dir, &[1, 3]);
    let v = json(&fx.verify(fx.dir(), &["--json"]));
    let trust_file = PathBuf::from(v["trust_file"].as_str().unwrap());
    let stored = std::fs::read_to_string(&trust_file).unwrap();
    assert_eq!(stored, std::fs::read_to_string(fx.log.dir.join("checkpoint")).unwrap(), "cosignatures kept");
    assert!(stored.contains("\u{2014} witness1.example ") && stored.contains("\u{2014} witness3.example "));

    // The policy now requires all three witnesses; the log grew and all three cosigned.
    ok(&fx.log.append_raw(&numbered("entry ", 20..30)));
    cosign(&fx.log.dir, &[1, 2, 3]);
    let all = write(fx.log.dir.parent().unwrap(), "all.txt", &policy_text(&fx.log.vkey, "all"));
    let out = run(&[
        "verify",
        fx.dir(),
        "--policy",
        all.to_str().unwrap(),
        "--trust-dir",
        fx.log.trust.to_str().unwrap(),
        "--json",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: the remembered checkpoint (size 20)")
            && err.contains("cosigned by W1, W3; not by W2")
            && err.contains("still holds the log to its history"),
        "{err}"
    );
    let v = json(&out);
    assert_eq!((&v["previous_size"], &v["trust"]), (&20.into(), &"consistent".into()));
    assert_eq!(v["remembered_witnessed"]["quorum_met"], false, "{v}");
    // The new checkpoint met the stricter policy and replaced the entry: no more warning.
    let again = run(&[
        "verify",
        fx.dir(),
        "--policy",
        all.to_str().unwrap(),
        "--trust-dir",
        fx.log.trust.to_str().unwrap(),
    ]);
    assert!(again.status.success() && !stderr(&again).contains("warning"), "{}", stderr(&again));

    // A cosignature line altered in the store file (the log's own signature left intact):
    // reported as a cosignature that does not verify; the run still holds the log to it.
    let stored = std::fs::read_to_string(&trust_file).unwrap();
    let line = stored.lines().find(|l| l.contains("witness2.example")).unwrap();
    let sig = line.rsplit(' ').next().unwrap();
    let mut altered = sig.as_bytes().to_vec();
    altered[30] = if altered[30] == b'A' { b'B' } else { b'A' };
    std::fs::write(&trust_file, stored.replace(sig, std::str::from_utf8(&altered).unwrap())).unwrap();
    let out = run(&[
        "verify",
        fx.dir(),
        "--policy",
        all.to_str().unwrap(),
        "--trust-dir",
        fx.log.trust.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("the cosignature of witness W2 does not verify")
            && err.contains("remembered checkpoint (size 30)"),
        "{err}"
    );
    assert_terminal_safe("stderr", &out.stderr);
}

/// `--follow --policy`: a new checkpoint whose cosignatures have not arrived is not accepted
/// (nothing is remembered) and is polled again; once cosigned, it is accepted.
#[test]
fn follow_with_a_policy_waits_for_the_quorum() {
    let fx = Fx::new("follow-policy.example/log", 10);
    cosign(&fx.log.dir, &[1, 2]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["verify", fx.dir(), "--policy", fx.policy(), "--trust-dir", fx.log.trust.to_str().unwrap()])
        .args(["--follow", "--interval", "0.5", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let v = next();
    assert_eq!((&v["ok"], &v["tree_size"]), (&true.into(), &10.into()), "{v}");
    // The log grows; its new checkpoint is not cosigned yet.
    ok(&fx.log.append_raw(&numbered("entry ", 10..20)));
    let v = next();
    assert_eq!(
        (&v["ok"], &v["alert"], &v["transient"]),
        (&false.into(), &"not-witnessed".into(), &true.into()),
        "{v}"
    );
    assert_eq!(v["witnesses"]["not_cosigned"], serde_json::json!(["W1", "W2", "W3"]));
    cosign(&fx.log.dir, &[2, 3]);
    let v = loop {
        let v = next();
        if v["ok"] == true {
            break v;
        }
        assert_eq!(v["transient"], true, "{v}");
    };
    assert_eq!((&v["tree_size"], &v["previous_size"]), (&20.into(), &10.into()), "{v}");
    assert_eq!(v["witnesses"]["cosigned"][1]["witness"], "W3");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bundles_carry_the_cosignatures_and_are_checked_offline_with_a_policy() {
    let fx = Fx::new("bundle-policy.example/log", 12);
    let bundle = fx.path("b.tar");
    let b = bundle.to_str().unwrap();
    // Not cosigned yet: with the policy no bundle is written.
    let out = run(&["export", "--dir", fx.dir(), "--policy", fx.policy(), "--bundle", b]);
    failed(&out, &["no bundle was written", "cosigned by no witness"]);
    assert!(!bundle.exists() && !fx.path("b.tar.partial").exists());
    // Written without the policy, it verifies without one, and is refused with one.
    ok(&run(&["export", "--dir", fx.dir(), "--vkey", &fx.log.vkey, "--bundle", b]));
    ok(&run(&["verify", b, "--vkey", &fx.log.vkey]));
    let out = run(&["verify", b, "--policy", fx.policy(), "--json"]);
    failed(&out, &["checkpoint: the checkpoint of size 12", "cosigned by no witness; not by W1, W2, W3"]);
    let v = json(&out);
    assert_eq!(v["witnesses"]["not_cosigned"], serde_json::json!(["W1", "W2", "W3"]), "{v}");

    // Cosigned: written with the policy (no --vkey: the policy names the log), carrying the
    // cosignatures, and checked offline with the policy.
    cosign(&fx.log.dir, &[1, 2]);
    let out = run(&["export", "--dir", fx.dir(), "--policy", fx.policy(), "--bundle", b]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("cosigned by W1 (cosigned 2025-10-09T08:53:21Z), W2"), "{}", stderr(&out));
    let text = ok(&run(&["verify", b, "--policy", fx.policy()]));
    assert!(text.contains("OK: evidence bundle") && text.contains("cosigned by W1"), "{text}");
    assert!(text.contains("the log line of the policy given with --policy"), "{text}");
    let v = json(&run(&["verify", b, "--policy", fx.policy(), "--vkey", &fx.log.vkey, "--json"]));
    assert_eq!((&v["key_source"], &v["witnesses"]["quorum_met"]), (&"given".into(), &true.into()), "{v}");
    // A stricter policy refuses the same bundle, naming W3.
    let all = write(fx.log.dir.parent().unwrap(), "all.txt", &policy_text(&fx.log.vkey, "all"));
    failed(&run(&["verify", b, "--policy", all.to_str().unwrap()]), &["cosigned by W1, W2; not by W3"]);
    // --policy without --bundle is refused.
    assert_eq!(run(&["export", "--dir", fx.dir(), "--policy", fx.policy()]).status.code(), Some(2));
}

#[test]
fn tlog_proof_from_a_directory_round_trips_and_every_refusal_is_named() {
    let fx = Fx::new("tlog-proof.example/log", 70);
    cosign(&fx.log.dir, &[1, 3]);
    let (proof, event) = (fx.path("e41.tlog-proof"), fx.path("e41.bin"));
    let out = run(&[
        "prove",
        "--dir",
        fx.dir(),
        "--index",
        "41",
        "--format",
        "tlog-proof",
        "--policy",
        fx.policy(),
        "--out",
        proof.to_str().unwrap(),
        "--event-out",
        event.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&event).unwrap(), b"entry 41");
    let text = std::fs::read_to_string(&proof).unwrap();
    let checkpoint = std::fs::read_to_string(fx.log.dir.join("checkpoint")).unwrap();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 41\n"), "{text}");
    assert!(text.ends_with(&format!("\n\n{checkpoint}")), "the checkpoint verbatim, cosignatures included");
    // Printed to a pipe, the same bytes.
    let stdout = run(&["prove", "--dir", fx.dir(), "--index", "41", "--format", "tlog-proof"]);
    assert_eq!(String::from_utf8(stdout.stdout).unwrap(), text);

    let p = proof.to_str().unwrap();
    let verify = |proof: &str, event: &Path, policy: &str, extra: &[&str]| {
        let mut args = vec!["verify", proof, "--policy", policy, "--event", event.to_str().unwrap()];
        args.extend_from_slice(extra);
        run(&args)
    };
    let out = ok(&verify(p, &event, fx.policy(), &[]));
    assert!(
        out.contains("proves that the event (8 bytes")
            && out.contains("is entry 41 of tlog-proof.example/log"),
        "{out}"
    );
    assert!(out.contains("cosigned by W1 (cosigned 2025-10-09T08:53:21Z), W3"), "{out}");
    let v = json(&verify(p, &event, fx.policy(), &["--json", "--vkey", &fx.log.vkey]));
    assert_eq!((&v["ok"], &v["index"], &v["tree_size"]), (&true.into(), &41.into(), &70.into()), "{v}");

    // Wrong event bytes.
    let other = write(fx.log.dir.parent().unwrap(), "other.bin", "entry 42");
    failed(
        &verify(p, &other, fx.policy(), &[]),
        &["is not proven to be entry 41", "not the entry this proof is for"],
    );
    // A tampered proof line (another valid hash).
    let line = text.lines().nth(2).unwrap();
    let mut hash = graven_core::Hash::from_base64(line).unwrap();
    hash.0[5] ^= 0x40;
    let tampered = write(
        fx.log.dir.parent().unwrap(),
        "tampered.tlog-proof",
        &text.replacen(line, &hash.to_base64(), 1),
    );
    failed(&verify(tampered.to_str().unwrap(), &event, fx.policy(), &[]), &["is not proven to be entry 41"]);
    // A proof line that is not a hash.
    let garbled = write(fx.log.dir.parent().unwrap(), "garbled.tlog-proof", &text.replacen(line, "AAAA", 1));
    failed(&verify(garbled.to_str().unwrap(), &event, fx.policy(), &[]), &["tlog-proof line 3"]);
    // Missing quorum: a policy that needs all three.
    let all = write(fx.log.dir.parent().unwrap(), "all.txt", &policy_text(&fx.log.vkey, "all"));
    failed(&verify(p, &event, all.to_str().unwrap(), &[]), &["cosigned by W1, W3; not by W2"]);
    // Wrong log key: a policy for another key of the same name.
    let stranger = SignerKey::from_seed("tlog-proof.example/log", [9; 32]).unwrap().verifier().to_string();
    let wrong = write(fx.log.dir.parent().unwrap(), "wrong.txt", &policy_text(&stranger, "1"));
    failed(&verify(p, &event, wrong.to_str().unwrap(), &[]), &["not signed by a log this policy trusts"]);
    // The policy lists the log, but --vkey names another key it lists.
    let both = write(
        fx.log.dir.parent().unwrap(),
        "both.txt",
        &format!("log {stranger}\n{}", policy_text(&fx.log.vkey, "2")),
    );
    failed(
        &verify(p, &event, both.to_str().unwrap(), &["--vkey", &stranger]),
        &["not signed by the given log key"],
    );
    ok(&verify(p, &event, both.to_str().unwrap(), &[]));
    // No policy, or no event: a usage error.
    assert_eq!(run(&["verify", p, "--event", event.to_str().unwrap()]).status.code(), Some(2));
    assert_eq!(run(&["verify", p, "--policy", fx.policy()]).status.code(), Some(2));
    // With the stricter policy, the writer refuses to write one.
    let out = run(&[
        "prove",
        "--dir",
        fx.dir(),
        "--index",
        "41",
        "--format",
        "tlog-proof",
        "--policy",
        all.to_str().unwrap(),
    ]);
    failed(&out, &["no tlog-proof was written", "not by W2"]);
    assert!(out.stdout.is_empty());
}

/// A tlog-proof checked from the spec texts alone (C2SP tlog-proof, signed-note, tlog-cosignature,
/// RFC 6962 / RFC 9162 inclusion), by a program that shares no code with Graven: argv is the log's
/// vkey, the quorum k, the proof file, the event file, then the witnesses' vkeys. Prints
/// "valid <index> <witness names>" or "invalid <why>".
const PY_TLOG_PROOF: &str = r#"
import base64, hashlib, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.exceptions import InvalidSignature

def parse_vkey(v, typ):
    name, kid, b = v.split("+", 2)
    raw = base64.b64decode(b, validate=True)
    assert raw[0] == typ and len(raw) == 33
    assert hashlib.sha256(name.encode() + b"\n" + bytes([typ]) + raw[1:]).digest()[:4].hex() == kid
    return name, bytes.fromhex(kid), Ed25519PublicKey.from_public_bytes(raw[1:])

def node(l, r):
    return hashlib.sha256(b"\x01" + l + r).digest()

def included(leaf, index, size, proof, root):
    # RFC 9162 section 2.1.3.2
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root

def check(log_vkey, k, path, event_path, witnesses):
    text = open(path, "rb").read().decode()
    head, note = text.split("\n\n", 1)
    lines = head.split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1":
        return "invalid header"
    i = 1
    if lines[i].startswith("extra "):
        i += 1
    if not lines[i].startswith("index "):
        return "invalid index line"
    index = int(lines[i][6:])
    proof = [base64.b64decode(l, validate=True) for l in lines[i + 1:]]
    if any(len(p) != 32 for p in proof):
        return "invalid proof line"
    cut = note.rindex("\n\n") + 1
    body, sigs = note[:cut], note[cut + 1:].splitlines()
    origin, size, root = body.split("\n")[:3]
    lname, lid, lkey = parse_vkey(log_vkey, 0x01)
    if origin != lname:
        return "invalid origin"
    logged, cosigned = False, []
    ws = [parse_vkey(w, 0x04) for w in witnesses]
    for line in sigs:
        dash, name, b = line.split(" ")
        sig = base64.b64decode(b, validate=True)
        try:
            if name == lname and sig[:4] == lid:
                lkey.verify(sig[4:], body.encode())
                logged = True
            for wname, wid, wkey in ws:
                if name == wname and sig[:4] == wid:
                    ts = struct.unpack(">Q", sig[4:12])[0]
                    wkey.verify(sig[12:], ("cosignature/v1\ntime %d\n" % ts).encode() + body.encode())
                    cosigned.append(wname)
        except InvalidSignature:
            return "invalid signature by " + name
    if not logged:
        return "invalid no log signature"
    if len(cosigned) < k:
        return "invalid quorum"
    leaf = hashlib.sha256(b"\x00" + open(event_path, "rb").read()).digest()
    if not included(leaf, index, int(size), proof, base64.b64decode(root)):
        return "invalid inclusion"
    return "valid %d %s" % (index, " ".join(cosigned))

print(check(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]))
"#;

/// The tlog-proofs Graven writes verify with the independent checker, for entries across the
/// tree; a damaged one, or another entry's bytes, do not (so the checker can fail).
#[test]
fn written_tlog_proofs_verify_with_an_independent_checker() {
    common::python_with_cryptography();
    let fx = Fx::new("independent.example/log", 300);
    cosign(&fx.log.dir, &[1, 3]);
    let script = write(fx.log.dir.parent().unwrap(), "check_tlog_proof.py", PY_TLOG_PROOF);
    let witnesses: Vec<String> = (1..=3).map(|n| witness(n).verifier().to_string()).collect();
    let check = |proof: &Path, event: &Path| -> String {
        let out = Command::new("python3")
            .arg(&script)
            .args([fx.log.vkey.as_str(), "2", proof.to_str().unwrap(), event.to_str().unwrap()])
            .args(&witnesses)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    for index in [0u64, 1, 255, 256, 299] {
        let (proof, event) = (fx.path(&format!("{index}.tlog-proof")), fx.path(&format!("{index}.bin")));
        let i = index.to_string();
        ok(&run(&[
            "prove",
            "--dir",
            fx.dir(),
            "--index",
            &i,
            "--format",
            "tlog-proof",
            "--out",
            proof.to_str().unwrap(),
            "--event-out",
            event.to_str().unwrap(),
        ]));
        let verdict = check(&proof, &event);
        assert_eq!(verdict, format!("valid {index} witness1.example witness3.example"), "entry {index}");
    }
    let other = fx.path("1.bin");
    assert_eq!(check(&fx.path("0.tlog-proof"), &other), "invalid inclusion");
    let text = std::fs::read_to_string(fx.path("0.tlog-proof")).unwrap();
    let resized =
        write(fx.log.dir.parent().unwrap(), "resized.tlog-proof", &text.replacen("\n300\n", "\n301\n", 1));
    assert!(check(&resized, &fx.path("0.bin")).starts_with("invalid signature"), "the checker can fail");
}

/// Strings a log or a proof file carries reach the terminal escaped: a checkpoint signed by a
/// key whose name holds a bidi override and a C1 control (neither is a space or a '+', so
/// signed-note allows them), refused by the policy with that name in the message.
#[test]
fn strings_from_a_proof_or_a_log_are_escaped() {
    let fx = Fx::new("escape.example/log", 4);
    let hostile = SignerKey::from_seed("evil\u{202e}\u{9b}31m.example", [5; 32]).unwrap();
    let body = note_text(&std::fs::read_to_string(fx.log.dir.join("checkpoint")).unwrap());
    let note = hostile.sign(&body).unwrap();
    let text = format!("c2sp.org/tlog-proof@v1\nindex 0\n\n{note}");
    let p = write(fx.log.dir.parent().unwrap(), "hostile.tlog-proof", &text);
    let event = write(fx.log.dir.parent().unwrap(), "e.bin", "entry 0");
    let out =
        run(&["verify", p.to_str().unwrap(), "--policy", fx.policy(), "--event", event.to_str().unwrap()]);
    let err = failed(&out, &["not signed by a log this policy trusts"]);
    assert!(err.contains("evil\\u{202e}"), "{err}");
    let out = run(&[
        "verify",
        p.to_str().unwrap(),
        "--policy",
        fx.policy(),
        "--event",
        event.to_str().unwrap(),
        "--json",
    ]);
    assert_terminal_safe("stdout", &out.stdout);
}

// ---- graven prove --url, against a real server whose /checkpoint carries cosignatures ----

/// A loopback proxy in front of a `graven serve`: it forwards every GET and appends to
/// `/checkpoint` the cosignatures of the witnesses in `cosigners`, as a server that gathered
/// them serves it.
fn cosigning_proxy(upstream: String, cosigners: Arc<Mutex<Vec<u8>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (upstream, cosigners) = (upstream.clone(), cosigners.clone());
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let auth = head
                    .lines()
                    .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("authorization")))
                    .map(|(_, v)| v.trim().to_owned());
                let mut req = common::agent().get(format!("{upstream}{path}"));
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                let mut resp = req.call().unwrap();
                let status = resp.status().as_u16();
                let mut body = resp.body_mut().read_to_vec().unwrap();
                if path == "/checkpoint" && status == 200 {
                    let note = String::from_utf8(body.clone()).unwrap();
                    body.extend_from_slice(cosignatures(&note, &cosigners.lock().unwrap()).as_bytes());
                }
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                out.extend_from_slice(&body);
                let _ = conn.write_all(&out);
            });
        }
    });
    url
}

#[test]
fn prove_url_with_a_policy_and_tlog_proofs_from_a_server() {
    let tmp = tempfile::tempdir().unwrap();
    let s = common::start(&tmp.path().join("data"), &[]);
    for i in 0..12 {
        let r = s.post_event(&s.token, &format!("{{\"action\":\"deploy.{i}\"}}"));
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let cosigners = Arc::new(Mutex::new(vec![2]));
    let proxy = cosigning_proxy(format!("http://{}", s.addr), cosigners.clone());
    let policy = write(tmp.path(), "policy.txt", &policy_text(&s.vkey, "2"));
    let policy = policy.to_str().unwrap();
    let prove = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_graven"))
            .args(["prove", "--url", &proxy, "--index", "7", "--policy", policy])
            .args(extra)
            .env("GRAVEN_TOKEN", &s.token)
            .output()
            .unwrap()
    };
    // One cosignature of the two the policy needs: refused, naming the witnesses.
    let out = prove(&[]);
    failed(&out, &["proof FAILED", "cosigned by W2; not by W1, W3"]);
    assert!(out.stdout.is_empty());
    let out = prove(&["--format", "tlog-proof"]);
    failed(&out, &["cosigned by W2; not by W1, W3"]);

    *cosigners.lock().unwrap() = vec![1, 2];
    let out = prove(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((&v["verified"], &v["witnesses"]["quorum_met"]), (&true.into(), &true.into()), "{v}");
    assert_eq!(v["witnesses"]["cosigned"][0]["time"], "2025-10-09T08:53:21Z");
    assert!(stderr(&out).contains("cosigned by W1 (cosigned 2025-10-09T08:53:21Z), W2"), "{}", stderr(&out));

    // A tlog-proof of entry 7, with the entry's bytes; checked offline.
    let (proof, event) = (tmp.path().join("e7.tlog-proof"), tmp.path().join("e7.json"));
    let out = prove(&[
        "--format",
        "tlog-proof",
        "--out",
        proof.to_str().unwrap(),
        "--event-out",
        event.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Entry 7: the server logged its two bootstrap records first.
    assert!(String::from_utf8(std::fs::read(&event).unwrap()).unwrap().contains("\"action\":\"deploy.5\""));
    let text = ok(&run(&[
        "verify",
        proof.to_str().unwrap(),
        "--policy",
        policy,
        "--event",
        event.to_str().unwrap(),
    ]));
    assert!(text.contains("is entry 7 of") && text.contains("cosigned by W1"), "{text}");
    let other = tmp.path().join("e8.json");
    std::fs::write(&other, [std::fs::read(&event).unwrap(), b" ".to_vec()].concat()).unwrap();
    failed(
        &run(&["verify", proof.to_str().unwrap(), "--policy", policy, "--event", other.to_str().unwrap()]),
        &["is not proven to be entry 7"],
    );
    // --size and tlog-proof do not go together (the proof is against the checkpoint it carries).
    assert_eq!(prove(&["--format", "tlog-proof", "--size", "9"]).status.code(), Some(2));
}
