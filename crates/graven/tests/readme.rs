//! The README's quick start, run top to bottom against the built binary.
//!
//! The blocks the README marks with `<!-- quick-start ... -->` are joined in order and run by
//! `bash -euo pipefail` in an empty directory, with this build's `graven` first on `PATH`, a
//! fresh `HOME` (so the trust store is the test's own), no `GRAVEN_*` settings from the
//! caller's environment, and `GRAVEN_LISTEN` on a free loopback port instead of the default
//! (the quick start honours it). Any command that stops working fails the run; the test then
//! checks what the commands printed and left behind. It also holds the README's set-up section
//! to its two commands and its install command to the package that builds `graven`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest the whole quick start may take.
const DEADLINE: Duration = Duration::from_secs(180);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

/// The fenced `sh` blocks that follow a `<!-- quick-start` marker, in order. A marker not
/// followed by such a block is an error: the README and this test would have drifted apart.
fn quick_start_blocks(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].trim_start().starts_with("<!-- quick-start") {
            i += 1;
            continue;
        }
        i += 1;
        while lines.get(i).is_some_and(|l| l.trim().is_empty()) {
            i += 1;
        }
        assert_eq!(
            lines.get(i).map(|l| l.trim()),
            Some("```sh"),
            "a quick-start marker must precede a ```sh block"
        );
        i += 1;
        let mut block = String::new();
        while let Some(l) = lines.get(i) {
            i += 1;
            if l.trim() == "```" {
                break;
            }
            block.push_str(l);
            block.push('\n');
        }
        blocks.push(block);
    }
    blocks
}

/// The fenced blocks of the section that starts with `heading`, up to the next `## `.
fn section_blocks(text: &str, heading: &str) -> Vec<String> {
    let start = text.find(heading).unwrap_or_else(|| panic!("README has no {heading:?}"));
    let rest = &text[start + heading.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        let t = line.trim();
        match (&mut current, t.starts_with("```")) {
            (None, true) => current = Some(String::new()),
            (Some(b), true) => {
                blocks.push(b.trim().to_owned());
                current = None;
            }
            (Some(b), false) => {
                b.push_str(t);
                b.push('\n');
            }
            (None, false) => {}
        }
    }
    blocks
}

/// What one run of the quick start printed (standard output and error, interleaved), and
/// where it ran.
struct Run {
    ok: bool,
    output: String,
    dir: tempfile::TempDir,
}

/// Runs `script` with `bash -euo pipefail` in a fresh directory, in its own process group,
/// which is killed afterwards (a server the script left running goes with it).
fn run(script: &str, port: u16) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(dir.path().join("quick-start.sh"), script).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_graven"));
    let path = std::env::join_paths(
        std::iter::once(bin.parent().unwrap().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let out_path = dir.path().join("output");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "quick-start.sh"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GRAVEN_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("XDG_CONFIG_HOME")
        .env("HOME", &home)
        .env("PATH", path)
        .env("GRAVEN_LISTEN", format!("127.0.0.1:{port}"));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().unwrap();
    let pgid = child.id();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > DEADLINE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
    let _ = child.wait();
    let mut output = std::fs::read_to_string(&out_path).unwrap();
    if status.is_none() {
        output.push_str(&format!("\n[readme.rs: killed after {DEADLINE:?}]"));
    }
    Run { ok: status.is_some_and(|s| s.success()), output, dir }
}

/// The quick start as written: it runs to the end, and each step shows what the README says
/// it shows.
#[test]
fn the_quick_start_runs_top_to_bottom() {
    let blocks = quick_start_blocks(&readme());
    assert!(blocks.len() >= 5, "the README's quick start is marked in blocks; found {}", blocks.len());
    let script = blocks.concat();
    // A port chosen free can be taken before the server binds it: then try another.
    let mut attempt = 0;
    let r = loop {
        attempt += 1;
        let port = graven_testkit::net::free_ports(1, None).unwrap()[0];
        let r = run(&script, port);
        let log = std::fs::read_to_string(r.dir.path().join("graven-quickstart/graven-serve.log"))
            .unwrap_or_default();
        if r.ok || attempt == 3 || !log.contains("in use") {
            break r;
        }
    };
    let out = &r.output;
    assert!(r.ok, "the quick start failed:\n{out}");
    let qs = r.dir.path().join("graven-quickstart");

    // First start: the origin, derived from the host name and announced, names the pinned key.
    let origin = out
        .lines()
        .find_map(|l| l.strip_prefix("new log: origin "))
        .and_then(|l| l.strip_suffix(" (from this host's name)"))
        .unwrap_or_else(|| panic!("no origin announced:\n{out}"));
    assert!(origin.ends_with("/graven"), "{origin}");
    assert!(out.contains("cannot change once the log exists"), "{out}");
    let vkey = std::fs::read_to_string(qs.join("graven.vkey")).unwrap();
    let printed = out.lines().find_map(|l| l.strip_prefix("verifier key: ")).unwrap();
    assert_eq!(vkey.trim(), printed.trim(), "the pinned key is the one the first start printed");
    assert!(vkey.starts_with(&format!("{origin}+")), "{vkey} is the key of {origin}");

    // The identity, its event (a receipt), and the refusal outside its patterns.
    assert!(out.contains("\"id\": \"svc:deployer\""), "{out}");
    assert!(out.contains("\"leaf_hash\"") && out.contains("\"inclusion_proof\""), "{out}");
    assert!(out.contains("secrets.read: HTTP 403"), "{out}");

    // Tail, verify, prove, export, the bundle, search; a clean stop.
    assert!(out.lines().any(|l| l.contains("svc:deployer") && l.contains("deployment.create")), "{out}");
    assert!(out.contains(&format!("OK: {origin} verifies")), "{out}");
    assert!(out.contains("\"verified\":true") && out.contains("OK: entry"), "{out}");
    let exported = std::fs::read_to_string(qs.join("deployer.jsonl")).unwrap();
    // The event, and the record of the refused attempt, which is the deploy service's too.
    assert_eq!(exported.lines().count(), 2, "{exported}");
    assert!(out.contains(r#""action":"deployment.create","actor":"svc:deployer""#), "{out}");
    assert!(out.contains(r#""action":"graven.access.denied","actor":"svc:deployer""#), "{out}");
    assert!(out.contains("OK: evidence bundle evidence.tar verifies: 2 events"), "{out}");
    assert!(
        out.lines().filter(|l| l.contains("deployment.create") && l.contains("prod/payments")).count() >= 2,
        "tail and search both show the event:\n{out}"
    );
    assert!(out.contains("stopped; tree size"), "{out}");
    // The trust store is the one the README names, under the test's HOME.
    assert!(r.dir.path().join("home/.config/graven/trust").is_dir());
}

/// The set-up section keeps exactly its two commands (the server on its embedded default, and
/// the tests CI runs); the install command names the package that builds `graven`.
#[test]
fn set_up_and_install_say_what_exists() {
    let text = readme();
    let setup = section_blocks(&text, "## Set up on a fresh machine");
    assert_eq!(setup, ["cargo run --release -p graven -- serve", "scripts/test.sh"]);
    assert!(repo().join("scripts/test.sh").is_file());
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(ci.contains("scripts/test.sh"), "CI runs the README's test command");
    let install = section_blocks(&text, "## Install");
    assert_eq!(install, ["cargo install --path crates/graven --locked --profile dist"]);
    let workspace = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(workspace.contains("[profile.dist]"), "the profile the README installs with exists");
    let manifest = std::fs::read_to_string(repo().join("crates/graven/Cargo.toml")).unwrap();
    assert!(manifest.contains("[[bin]]\nname = \"graven\""), "{manifest}");
    assert!(text.contains("~/.cargo/bin/graven"), "the README says where the binary lands");
}

/// The marker parser itself: blocks in order, and a marker without its block refused.
#[test]
fn quick_start_markers_are_read_strictly() {
    let text = "a\n<!-- quick-start -->\n```sh\necho 1\n```\nb\n<!-- quick-start -->\n\n```sh\necho 2\necho 3\n```\n";
    assert_eq!(quick_start_blocks(text), ["echo 1\n", "echo 2\necho 3\n"]);
    let bad = "<!-- quick-start -->\n```text\nx\n```\n";
    assert!(std::panic::catch_unwind(|| quick_start_blocks(bad)).is_err());
}
