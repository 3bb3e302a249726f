//! `graven verify` remembers: rollback and fork detection against the trust store, incremental
//! runs that fetch only what is new (every request counted), and the `--follow` monitor.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{TestLog, graven, numbered, ok, serve, stderr};
use graven_testkit::fs::copy_dir;
use graven_testkit::net::Response;
use serde_json::Value;

fn verify(target: &str, log: &TestLog, extra: &[&str]) -> Output {
    let mut args = vec!["verify", target, "--vkey", &log.vkey, "--trust-dir", log.trust.to_str().unwrap()];
    args.extend_from_slice(extra);
    graven(&args, b"")
}

fn json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: stdout {text:?}, stderr {}", stderr(out)))
}

/// Another log written with `log`'s own signer key: validly signed, different history.
fn forked_log(log: &TestLog, name: &str, entries: u64) -> String {
    let dir = log.dir.with_file_name(name);
    ok(&graven(
        &["log", "append", "--dir", dir.to_str().unwrap(), "--key", log.key.to_str().unwrap(), "--raw"],
        &numbered("forked ", 0..entries),
    ));
    dir.to_str().unwrap().to_owned()
}

fn expect_refused(out: &Output, alert: &str, needles: &[&str]) -> Value {
    assert_eq!(out.status.code(), Some(1), "must fail; stderr: {}", stderr(out));
    let msg = stderr(out);
    for n in needles {
        assert!(msg.contains(n), "{msg:?} should mention {n:?}");
    }
    let v = json(out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["alert"], alert, "{v}");
    v
}

#[test]
fn a_directory_rolled_back_or_forked_is_refused() {
    let log = TestLog::new("trust.example/log");
    let d = log.dir.to_str().unwrap().to_owned();
    ok(&log.append_raw(&numbered("e", 0..600)));
    let first = ok(&verify(&d, &log, &[]));
    assert!(first.contains("trusted on first use"), "{first}");
    let old = log.dir.with_file_name("old-600");
    copy_dir(&log.dir, &old);

    ok(&log.append_raw(&numbered("e", 600..900)));
    // A directory is re-read in full by default; --incremental asks for only what is new.
    let v = json(&verify(&d, &log, &["--json", "--incremental"]));
    assert_eq!(
        (&v["tree_size"], &v["previous_size"], &v["trust"], &v["mode"]),
        (&Value::from(900), &Value::from(600), &Value::from("consistent"), &Value::from("incremental"))
    );
    let trust_file = v["trust_file"].as_str().unwrap().to_owned();
    assert!(trust_file.starts_with(log.trust.to_str().unwrap()));
    let remembered = std::fs::read(&trust_file).unwrap();
    assert_eq!(remembered, std::fs::read(log.dir.join("checkpoint")).unwrap(), "the note as received");

    // Rollback: an older copy of the same log.
    let out = verify(old.to_str().unwrap(), &log, &["--json"]);
    let v = expect_refused(&out, "rollback", &["ROLLBACK", "size 600", "size 900", &trust_file]);
    assert_eq!((&v["remembered"]["tree_size"], &v["presented"]["tree_size"]), (&900.into(), &600.into()));

    // Fork: a bigger log signed by the log's own key that does not extend what was verified.
    let fork = forked_log(&log, "fork-1000", 1000);
    let v = expect_refused(&verify(&fork, &log, &["--json"]), "fork", &["FORK", "size 900", "size 1000"]);
    assert!(v["presented"]["checkpoint"].as_str().unwrap().contains("\n1000\n"), "{v}");
    assert!(v["remembered"]["checkpoint"].as_str().unwrap().contains("\n900\n"), "{v}");
    // ... even with --full, and at the same size.
    expect_refused(&verify(&fork, &log, &["--json", "--full"]), "fork", &["FORK"]);
    let same = forked_log(&log, "fork-900", 900);
    expect_refused(&verify(&same, &log, &["--json"]), "fork", &["FORK", "already verified root"]);
    // Each fork is a valid log on its own: only the memory of the first one catches it.
    ok(&graven(&["verify", &fork, "--vkey", &log.vkey], b""));
    ok(&graven(&["verify", &same, "--vkey", &log.vkey], b""));
    assert_eq!(std::fs::read(&trust_file).unwrap(), remembered, "a failed run changed the trust store");

    // The honest log still verifies, with nothing new to check.
    let v = json(&verify(&d, &log, &["--json", "--incremental"]));
    assert_eq!((&v["entries_hashed"], &v["bundles"]), (&0.into(), &0.into()));

    // A damaged trust store is an error that says what to do, not a silent first use.
    std::fs::write(&trust_file, b"not a checkpoint\n").unwrap();
    let out = verify(&d, &log, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("trust store file") && stderr(&out).contains("move it aside"));
    std::fs::write(&trust_file, vec![b'x'; 2 << 20]).unwrap();
    let out = verify(&d, &log, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("larger than 1048576 bytes"), "{}", stderr(&out));
}

#[test]
fn an_incremental_run_over_http_fetches_only_the_new_tiles() {
    let log = TestLog::new("count.example/log");
    ok(&log.append_raw(&numbered("c", 0..600)));
    let (url, requests) = serve(log.dir.clone());
    let v = json(&verify(&url, &log, &["--json"]));
    assert_eq!(v["trust"], "first-use");
    // First use is a full verification: checkpoint, 3 bundles, 3 level-0 tiles, 1 level-1 tile.
    assert_eq!(requests.lock().unwrap().len(), 8);

    ok(&log.append_raw(&numbered("c", 600..900)));
    requests.lock().unwrap().clear();
    let v = json(&verify(&url, &log, &["--json"]));
    assert_eq!(
        (&v["trust"], &v["mode"], &v["tree_size"]),
        (&"consistent".into(), &"incremental".into(), &900.into())
    );
    // The remembered edge (600 = 512 + 64 + 16 + 8) comes from the new level-1 tile and the
    // level-0 tile that was partial at 600; then the bundle that was partial, and what is new.
    // Nothing the 600-entry tree held in full is fetched again, and nothing twice. (Files are
    // fetched ahead, several at once, so the order they arrive in is not fixed.)
    let mut fetched = requests.lock().unwrap().clone();
    fetched.sort();
    assert_eq!(
        fetched,
        [
            "checkpoint",
            "tile/1/000.p/3",
            "tile/0/002",
            "tile/entries/002",
            "tile/entries/003.p/132",
            "tile/0/003.p/132",
        ]
        .map(str::to_owned)
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert_eq!((&v["bundles"], &v["tiles"], &v["entries_hashed"]), (&2.into(), &3.into(), &388.into()));

    // No change: one request.
    requests.lock().unwrap().clear();
    ok(&verify(&url, &log, &[]));
    assert_eq!(*requests.lock().unwrap(), ["checkpoint"]);

    // --full: every file of the 900 tree again.
    requests.lock().unwrap().clear();
    let v = json(&verify(&url, &log, &["--json", "--full"]));
    assert_eq!((&v["mode"], &v["trust"]), (&"full".into(), &"consistent".into()));
    assert_eq!(requests.lock().unwrap().len(), 1 + 4 + 4 + 1);
}

/// A one-shot webhook receiver on a free loopback port: the body of the first POST, which
/// must be to `/alerts` (else the sender is dropped and the test's wait fails).
fn webhook() -> (String, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(Some(tx));
    let server = graven_testkit::net::serve(move |req| {
        let tx = tx.lock().unwrap().take().expect("one webhook call only");
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/alerts"), "{req:?}");
        tx.send(String::from_utf8_lossy(&req.body).into_owned()).unwrap();
        Response::status(204)
    });
    (format!("{}/alerts", server.url()), rx)
}

#[test]
fn follow_verifies_each_new_checkpoint_and_alerts_on_a_fork() {
    let log = TestLog::new("follow.example/log");
    ok(&log.append_raw(&numbered("f", 0..600)));
    // The followed path is a symlink, swapped in one rename when the log is replaced.
    let target = log.dir.with_file_name("followed");
    std::os::unix::fs::symlink(&log.dir, &target).unwrap();
    let (hook, alerts) = webhook();
    let mut child = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["verify", target.to_str().unwrap(), "--vkey", &log.vkey, "--trust-dir"])
        .arg(&log.trust)
        .args(["--follow", "--interval", "0.1", "--json", "--webhook", &hook])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };

    let v = next();
    assert_eq!((&v["ok"], &v["tree_size"], &v["trust"]), (&true.into(), &600.into(), &"first-use".into()));
    ok(&log.append_raw(&numbered("f", 600..900)));
    let v = next();
    assert_eq!(
        (&v["tree_size"], &v["previous_size"], &v["mode"]),
        (&900.into(), &600.into(), &"incremental".into())
    );

    let fork = forked_log(&log, "fork", 1000);
    let link = log.dir.with_file_name("followed.new");
    std::os::unix::fs::symlink(&fork, &link).unwrap();
    std::fs::rename(&link, &target).unwrap();

    let v = next();
    assert_eq!(
        (&v["ok"], &v["alert"], &v["webhook"]),
        (&false.into(), &"fork".into(), &"sent".into()),
        "{v}"
    );
    let alert: Value = serde_json::from_str(&alerts.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(alert["alert"], "fork");
    assert_eq!(
        (&alert["remembered"]["tree_size"], &alert["presented"]["tree_size"]),
        (&900.into(), &1000.into())
    );
    assert!(alert["error"].as_str().unwrap().starts_with("FORK"), "{alert}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("--follow did not exit after the fork");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("FORK"), "{err}");
}

#[test]
fn the_default_trust_store_is_under_the_config_directory() {
    let log = TestLog::new("home.example/log");
    ok(&log.append_raw(b"a\n"));
    let home = tempfile::tempdir().unwrap();
    let xdg = tempfile::tempdir().unwrap();
    let run = |xdg_config: Option<&Path>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_graven"));
        cmd.args(["verify", log.dir.to_str().unwrap(), "--vkey", &log.vkey, "--json"])
            .env_remove("GRAVEN_TRUST_DIR")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", home.path());
        if let Some(x) = xdg_config {
            cmd.env("XDG_CONFIG_HOME", x);
        }
        json(&cmd.output().unwrap())
    };
    let v = run(None);
    let file = Path::new(v["trust_file"].as_str().unwrap());
    assert!(file.starts_with(home.path().join(".config/graven/trust")), "{file:?}");
    assert!(file.is_file());
    let v = run(Some(xdg.path()));
    assert!(Path::new(v["trust_file"].as_str().unwrap()).starts_with(xdg.path().join("graven/trust")), "{v}");
    assert_eq!(v["trust"], "first-use", "a different store remembers nothing");
    assert_eq!(run(None)["trust"], "consistent", "the HOME store remembered the first run");
}

/// The trust store is keyed by origin and key, not by location: a copy of a verified log with an
/// altered old entry must not pass as "nothing new". A directory is re-read in full by default.
#[test]
fn a_copy_of_a_verified_directory_with_an_altered_old_entry_is_refused() {
    let log = TestLog::new("copy.example/log");
    ok(&log.append_raw(&numbered("e", 0..600)));
    let d = log.dir.to_str().unwrap().to_owned();
    ok(&verify(&d, &log, &[]));
    let copy = log.dir.with_file_name("copy");
    copy_dir(&log.dir, &copy);
    // Entry 5 ("e5") of the first bundle: skip 5 entries of (2 + 2) bytes and the length prefix.
    let bundle = copy.join("tile/entries/000");
    let mut b = std::fs::read(&bundle).unwrap();
    assert_eq!(&b[5 * 4 + 2..5 * 4 + 4], b"e5");
    b[5 * 4 + 2] = b'x';
    std::fs::write(&bundle, b).unwrap();
    let out = verify(copy.to_str().unwrap(), &log, &["--json"]);
    let v = expect_refused(&out, "verification-failed", &["leaf 5", "tile/entries/000"]);
    assert_eq!(v["ok"], false);
    // The honest directory: a full check by default, still held to the remembered checkpoint.
    let v = json(&verify(&d, &log, &["--json"]));
    assert_eq!(
        (&v["mode"], &v["trust"], &v["entries_hashed"]),
        (&"full".into(), &"consistent".into(), &600.into())
    );
    let text = ok(&verify(&d, &log, &[]));
    assert!(text.contains("fully re-verified"), "{text}");
}

/// Over HTTP a run stays incremental, and says plainly what it did not re-read.
#[test]
fn an_incremental_remote_run_says_that_stored_entries_were_not_reread() {
    let log = TestLog::new("remote.example/log");
    ok(&log.append_raw(&numbered("r", 0..300)));
    let (url, _) = serve(log.dir.clone());
    ok(&verify(&url, &log, &[]));
    ok(&log.append_raw(&numbered("r", 300..310)));
    let text = ok(&verify(&url, &log, &[]));
    // The walk re-reads the bundle that was partial at 300 (entries 256..310), nothing before.
    assert!(text.contains("256 stored entries were not re-read") && text.contains("--full"), "{text}");
    let v = json(&verify(&url, &log, &["--json"]));
    assert_eq!((&v["mode"], &v["entries_not_reread"]), (&"incremental".into(), &310.into()), "{v}");
    let v = json(&verify(&url, &log, &["--json", "--full"]));
    assert_eq!((&v["mode"], &v["entries_not_reread"]), (&"full".into(), &0.into()), "{v}");
}

/// A log that cannot be read is an outage, not evidence of tampering: exit 2, a message that says
/// what failed and that it is not tampering, and in `--json` an `error_kind` that is not an alert.
#[test]
fn an_unreachable_log_exits_2_and_is_not_reported_as_tampering() {
    let log = TestLog::new("down.example/log");
    ok(&log.append_raw(&numbered("d", 0..10)));
    // A loopback port nobody listens on.
    let dead = graven_testkit::net::dead_url();
    let out = verify(&dead, &log, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&dead) && err.contains("not evidence of tampering"), "{err}");
    assert!(!err.contains("FAILED"), "{err}");
    let out = verify(&dead, &log, &["--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(
        (&v["ok"], &v["error_kind"], &v["alert"]),
        (&false.into(), &"unreachable".into(), &Value::Null)
    );

    // A real server that refuses the read path without a credential: 401.
    let tmp = tempfile::tempdir().unwrap();
    let s = common::start(&tmp.path().join("data"), &[]);
    let out = verify(&s.url("/"), &log, &["--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("401") && stderr(&out).contains("not evidence of tampering"),
        "{}",
        stderr(&out)
    );
    assert_eq!(json(&out)["error_kind"], "unreachable");

    // --follow tolerates failed polls, and its final give-up is an outage too.
    let started = Instant::now();
    let out = verify(&dead, &log, &["--follow", "--interval", "0.05", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!((&v["error_kind"], &v["alert"]), (&"unreachable".into(), &Value::Null), "{v}");
    assert!(stderr(&out).contains("not evidence of tampering"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(60));

    // A file present but wrong, on a reachable server, is still a verification failure.
    let (url, _) = serve(log.dir.clone());
    let mut b = std::fs::read(log.dir.join("tile/entries/000.p/10")).unwrap();
    b[3] ^= 1;
    std::fs::write(log.dir.join("tile/entries/000.p/10"), b).unwrap();
    let out = verify(&url, &log, &["--json"]);
    expect_refused(&out, "verification-failed", &["tile/entries/000.p/10"]);
}
