//! What ships beside the binary: the licence and third-party notices, the systemd unit, the
//! container image definition, and the deployment guide's commands. (The sample config file is
//! checked against the server's config resolver in `crates/graven-server/tests/sample_config.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

// ---- LICENSE and THIRD-PARTY-NOTICES.md ----

/// The workspace says Apache-2.0; LICENSE must be that licence's text.
#[test]
fn the_licence_file_is_the_apache_license_2_0() {
    let manifest = read("Cargo.toml");
    assert!(manifest.contains("license = \"Apache-2.0\""), "the workspace's declared licence changed");
    let text = read("LICENSE");
    assert!(text.contains("Apache License\n                           Version 2.0, January 2004"));
    assert!(text.contains("END OF TERMS AND CONDITIONS"));
    assert_eq!(text.lines().count(), 202, "the licence's text, whole and unchanged");
}

/// `THIRD-PARTY-NOTICES.md` lists exactly the crates compiled into the binary on Linux (names
/// and versions), as `cargo tree` resolves them now: a dependency added, removed or updated
/// without running `scripts/third-party-notices.py` fails here.
#[test]
fn the_third_party_notices_list_the_binarys_dependencies() {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "-p", "graven", "-e", "normal"])
        .args(["--prefix", "none", "-f", "{p}"])
        .args(["--target", "x86_64-unknown-linux-gnu", "--target", "aarch64-unknown-linux-gnu"])
        .current_dir(repo())
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    let closure: BTreeSet<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (name, version) = (words.next()?, words.next()?);
            // Workspace crates (a path after the version) are Graven's own.
            let ours = words.next().is_some_and(|w| w.starts_with("(/"));
            (!ours).then(|| (name.to_owned(), version.trim_start_matches('v').to_owned()))
        })
        .collect();
    assert!(closure.len() > 100, "cargo tree listed too little: {closure:?}");

    let notices = read("THIRD-PARTY-NOTICES.md");
    let table = notices
        .split("\n## Crates\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("THIRD-PARTY-NOTICES.md has a `## Crates` table");
    let listed: BTreeSet<(String, String)> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| crate |"))
        .map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            (cells[0].trim_start_matches("| ").to_owned(), cells[1].to_owned())
        })
        .collect();
    let missing: Vec<_> = closure.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&closure).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "THIRD-PARTY-NOTICES.md is stale; run `python3 scripts/third-party-notices.py` and commit it.\n\
         in the binary, not listed: {missing:?}\nlisted, not in the binary: {stale:?}"
    );
    // Each crate used under a licence that asks for its notice has a text below the table.
    for line in table.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| crate |")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let used_under = cells[3];
        let needs_text =
            used_under.split(" AND ").any(|l| !["Apache-2.0", "Unlicense", "CC0-1.0"].contains(&l));
        let (name, version) = (cells[0].trim_start_matches("| "), cells[1]);
        let crate_ = format!("{name} {version}");
        let has_text = notices.lines().any(|l| {
            l.strip_prefix("### ")
                .and_then(|h| h.split(": ").next())
                .is_some_and(|who| who.split(", ").any(|c| c == crate_))
        });
        assert!(
            !needs_text || has_text,
            "{crate_} is used under {used_under} but its notice is not reproduced"
        );
    }
}

// ---- packaging/systemd/graven.service ----

fn unit() -> String {
    read("packaging/systemd/graven.service")
}

/// The directives of the `[Service]` section, as (key, value) in order.
fn directives(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .skip_while(|l| l.trim() != "[Service]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn the_systemd_unit_is_sandboxed_and_outlasts_the_drain() {
    let d = directives(&unit());
    let get = |key: &str| d.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    for (key, value) in [
        ("User", "graven"),
        ("StateDirectory", "graven"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ] {
        assert_eq!(get(key), Some(value), "{key}");
    }
    assert_eq!(
        get("ExecStart"),
        Some("/usr/local/bin/graven serve --config /etc/graven/graven.toml"),
        "docs/deploy.md and the sample config's `data` follow this command line"
    );
    // After SIGTERM the server gives requests until its drain deadline, then commits what it
    // accepted and flushes the index; systemd must not SIGKILL it first. A minute of margin.
    let stop: u64 = get("TimeoutStopSec").and_then(|v| v.parse().ok()).expect("TimeoutStopSec in seconds");
    let drain = graven_server::config::DEFAULT_DRAIN_TIMEOUT_MS / 1000;
    assert!(stop >= drain + 60, "TimeoutStopSec={stop} leaves no minute after the {drain} s drain deadline");
}

/// `systemd-analyze verify` (Debian's `systemd` package) reads the unit as systemd would and
/// reports any unknown or malformed directive, and `systemd-analyze security` rates its
/// sandbox. The unit's ExecStart is pointed at the binary under test, which verify requires to
/// exist.
#[test]
fn the_systemd_unit_passes_systemd_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graven.service");
    std::fs::write(&path, unit().replace("/usr/local/bin/graven", env!("CARGO_BIN_EXE_graven"))).unwrap();
    let analyze = |args: &[&str]| {
        Command::new("systemd-analyze").args(args).arg(&path).output().unwrap_or_else(|e| {
            panic!(
                "running systemd-analyze ({e}): install Debian's `systemd` package (apt-get install systemd)"
            )
        })
    };
    let out = analyze(&["verify"]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    // An exposure of at most 2.0 out of 10 ("OK"; it rates this unit 1.2).
    let out = analyze(&["security", "--offline=yes", "--threshold=20"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "systemd-analyze security rates the unit above 2.0:\n{said}");
}

/// The sysusers.d file that makes the unit's user parses (`systemd-sysusers --dry-run`).
#[test]
fn the_sysusers_file_makes_the_units_user() {
    let path = repo().join("packaging/systemd/graven-sysusers.conf");
    let out = Command::new("systemd-sysusers")
        .arg("--dry-run")
        .arg("--root")
        .arg(tempfile::tempdir().unwrap().path())
        .arg(&path)
        .output()
        .expect("running systemd-sysusers (Debian's `systemd` package)");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "systemd-sysusers: {said}");
    assert!(said.contains("Creating user 'graven'") && said.contains("Creating group 'graven'"), "{said}");
}

// ---- packaging/Containerfile ----

/// The instructions of the Containerfile, continuation lines joined.
fn instructions() -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("packaging/Containerfile").lines() {
        if current.is_empty() && (line.trim_start().starts_with('#') || line.trim().is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

#[test]
fn the_container_image_builds_with_the_tested_toolchain_and_runs_unprivileged() {
    let all = instructions();
    // The toolchain: the one running these tests, which is the workspace's rust-version.
    let rustc = Command::new("rustc").arg("--version").output().unwrap();
    let rustc = String::from_utf8(rustc.stdout).unwrap();
    let version = rustc.split_whitespace().nth(1).unwrap();
    assert!(
        all.iter().any(|i| i == &format!("ARG RUST_VERSION={version}")),
        "packaging/Containerfile pins another toolchain than {rustc}"
    );
    assert!(all.iter().any(|i| i.starts_with("FROM docker.io/library/rust:${RUST_VERSION}-")));
    assert!(all.iter().any(|i| i.contains("cargo build --locked --profile dist -p graven")));
    // The last stage runs as a numeric, non-root user and keeps its data on a volume.
    let last = all.iter().rposition(|i| i.starts_with("FROM ")).unwrap();
    let user = all[last..].iter().find_map(|i| i.strip_prefix("USER ")).expect("USER in the final stage");
    let uid: u32 = user.split(':').next().unwrap().parse().expect("a numeric USER (runAsNonRoot checks it)");
    assert_ne!(uid, 0);
    assert!(all[last..].iter().any(|i| i.starts_with("VOLUME") && i.contains("/var/lib/graven")));
    assert!(all[last..].iter().any(|i| {
        i.split_whitespace().collect::<Vec<_>>()
            == ["ENV", "GRAVEN_DATA=/var/lib/graven", "GRAVEN_LISTEN=0.0.0.0:7878"]
    }));
}

/// The image's HEALTHCHECK command, run as the container would run it (bash, GRAVEN_LISTEN
/// set), against a real `graven serve`: it passes while the server is up and fails once it is
/// gone.
#[test]
fn the_container_healthcheck_passes_against_a_running_server() {
    let all = instructions();
    let check = all.iter().find(|i| i.starts_with("HEALTHCHECK ")).expect("a HEALTHCHECK");
    let json = &check[check.find("CMD [").expect("HEALTHCHECK ... CMD [exec form]") + 4..];
    let argv: Vec<String> = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let run = |listen: &str| {
        Command::new(&argv[0])
            .args(&argv[1..])
            .env("GRAVEN_LISTEN", listen)
            .output()
            .unwrap()
            .status
            .success()
    };
    let data = tempfile::tempdir().unwrap();
    let mut server = common::start(data.path(), &[]);
    let port = server.addr.rsplit(':').next().unwrap().to_owned();
    assert!(run(&format!("0.0.0.0:{port}")), "the healthcheck failed against a running server");
    server.kill();
    assert!(!run(&format!("0.0.0.0:{port}")), "the healthcheck passed with no server");
}

// ---- backups (docs/deploy.md, "Backups and restore") ----

/// Copies every file under `from` into `to` (same relative paths) but those `skip` names,
/// pausing between files so that commits land in the middle of the copy.
fn copy_tree(from: &Path, to: &Path, skip: &[&str], rel: &Path) {
    for entry in std::fs::read_dir(from.join(rel)).unwrap() {
        let entry = entry.unwrap();
        let rel = rel.join(entry.file_name());
        if skip.iter().any(|s| Path::new(s) == rel) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(to.join(&rel)).unwrap();
            copy_tree(from, to, skip, &rel);
        } else if let Ok(bytes) = std::fs::read(entry.path()) {
            std::fs::write(to.join(&rel), bytes).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

/// The guide's copy of a running server, in its order (`identities.json`, then
/// `log/checkpoint`, then the rest of `log/`), taken while events are being committed:
/// the copy verifies, the live log extends it (checked against a copy of the backups' trust
/// store), and restored as the guide says (checkpoint last, `graven reindex`) it serves the
/// copied tree.
#[test]
fn a_backup_copied_in_the_guides_order_while_the_server_writes_verifies_and_restores() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let live = tempfile::tempdir().unwrap();
    let server = Arc::new(common::start(live.path(), &[]));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (server, stop, acked) = (server.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = format!(
                    r#"{{"action":"backup.test","resource":{{"type":"t","id":"{n}"}},"outcome":"success"}}"#
                );
                let r = server.post_event(&server.token, &body);
                assert_eq!(r.status, 201, "{}", r.body);
                acked.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        })
    };
    while acked.load(Ordering::Relaxed) < 300 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let backup = tempfile::tempdir().unwrap();
    let b = backup.path();
    std::fs::create_dir_all(b.join("log")).unwrap();
    std::fs::copy(live.path().join("identities.json"), b.join("identities.json")).unwrap();
    std::fs::copy(live.path().join("log/checkpoint"), b.join("log/checkpoint")).unwrap();
    let at_checkpoint = acked.load(Ordering::Relaxed);
    copy_tree(&live.path().join("log"), &b.join("log"), &["checkpoint", ".graven-lock"], Path::new(""));
    let after_copy = acked.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(after_copy > at_checkpoint, "no event was committed while the tiles were copied");

    // Check the backup with the backups' own trust store.
    let trust = tempfile::tempdir().unwrap();
    let trust_dir = trust.path().to_str().unwrap();
    let log = b.join("log");
    let out = common::graven(
        &["verify", log.to_str().unwrap(), "--vkey", &server.vkey, "--trust-dir", trust_dir, "--json"],
        b"",
    );
    let report: serde_json::Value = serde_json::from_str(common::ok(&out).trim()).unwrap();
    let backup_size = report["tree_size"].as_u64().expect("the verify report's tree_size");
    let live_size = server.size();
    assert!(live_size > backup_size, "the live log grew past the backup ({live_size} > {backup_size})");

    // The running log extends the backup: verified against a copy of that trust store.
    let check = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(trust.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), check.path().join(f.file_name())).unwrap();
    }
    let url = server.url("/");
    let out = common::graven_as(
        &["verify", &url, "--vkey", &server.vkey, "--trust-dir", check.path().to_str().unwrap()],
        &server.token,
    );
    common::ok(&out);

    // Restore: the key (and the bootstrap admin key, kept with the secrets) from their own
    // copies, then `graven reindex`, then start.
    for secret in ["log.key", "admin.token"] {
        std::fs::copy(live.path().join(secret), b.join(secret)).unwrap();
    }
    common::ok(&common::graven(&["reindex", "--data", b.to_str().unwrap()], b""));
    let restored = common::start(b, &[]);
    assert_eq!(restored.size(), backup_size, "the restored server serves the copied tree");
    let hits = restored.admin("GET", "/v1/events?action=backup.test&limit=1000", None).json();
    assert_eq!(
        hits["events"].as_array().map(Vec::len),
        Some((usize::try_from(backup_size).unwrap() - 2).min(1000)),
        "the rebuilt index finds every copied event (all but the 2 start-up records): {hits}"
    );
}

// ---- docs/deploy.md ----

/// Every `graven ...` command in the deployment guide (its code blocks and its code spans)
/// names a real subcommand, and every `--flag` it uses is one that subcommand has
/// (`graven <subcommand> --help`).
#[test]
fn every_command_in_the_deployment_guide_exists() {
    let doc = read("docs/deploy.md");
    let mut commands = Vec::new();
    let mut in_code = false;
    let mut pending = String::new();
    let mut prose = String::new();
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            prose.push_str(line);
            prose.push(' ');
            continue;
        }
        if line.trim_start().starts_with('#') {
            continue;
        }
        let line = line.split(" # ").next().unwrap_or("");
        match line.strip_suffix('\\') {
            Some(part) => pending.push_str(part),
            None => {
                pending.push_str(line);
                commands.extend(graven_commands(&std::mem::take(&mut pending)));
            }
        }
    }
    // And the ones quoted in the text: `graven ...` code spans.
    for span in prose.split('`').skip(1).step_by(2) {
        if let Some(rest) = span.strip_prefix("graven ") {
            commands.push(shell_words(rest));
        }
    }
    assert!(commands.len() >= 20, "found only {commands:?}");
    let mut help_cache = std::collections::HashMap::new();
    let mut help = |path: &[String]| -> String {
        help_cache
            .entry(path.to_vec())
            .or_insert_with(|| {
                let out = common::graven(
                    &[path.iter().map(String::as_str).collect::<Vec<_>>(), vec!["--help"]].concat(),
                    b"",
                );
                assert!(out.status.success(), "graven {} --help failed", path.join(" "));
                String::from_utf8(out.stdout).unwrap()
            })
            .clone()
    };
    for words in &commands {
        // Descend through subcommands while the help lists the next word as one.
        let mut path: Vec<String> = Vec::new();
        for w in words {
            let text = help(&path);
            let listed = text
                .split("Commands:")
                .nth(1)
                .map(|c| c.split("\n\n").next().unwrap_or(""))
                .is_some_and(|c| c.lines().any(|l| l.split_whitespace().next() == Some(w.as_str())));
            if listed {
                path.push(w.clone());
            } else {
                break;
            }
        }
        assert!(!path.is_empty(), "docs/deploy.md: `graven {}`: no such subcommand", words.join(" "));
        let text = help(&path);
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            let name = flag.split('=').next().unwrap();
            assert!(
                text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).any(|t| t == name),
                "docs/deploy.md: `graven {}`: `graven {}` has no {name}",
                words.join(" "),
                path.join(" ")
            );
        }
    }
}

/// The `graven` invocations in one shell line: the words after each `graven` that starts a
/// command (after `|`, `&&`, `||`, `;` or `$(`, behind any `VAR=value` assignments and
/// `sudo -u <user>`), up to the end of that command.
fn graven_commands(line: &str) -> Vec<Vec<String>> {
    const SEPARATORS: [&str; 9] = ["|", "&&", "||", ";", "$(", ")", ">", ">>", "2>&1"];
    let words = shell_words(line);
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        // At the start of a command: skip what may stand before the program.
        while i < words.len() && words[i].contains('=') && !words[i].starts_with('-') {
            i += 1;
        }
        if words.get(i).is_some_and(|w| w == "sudo") {
            i += if words.get(i + 1).is_some_and(|w| w == "-u") { 3 } else { 1 };
        }
        let end = words[i.min(words.len())..]
            .iter()
            .position(|w| SEPARATORS.contains(&w.as_str()))
            .map_or(words.len(), |p| i + p);
        if words.get(i).is_some_and(|w| w == "graven" || w.ends_with("/graven")) {
            out.push(words[i + 1..end].to_vec());
        }
        i = end + 1;
    }
    out
}

/// Splits a shell line into words: quotes grouped, `$(` and `)` kept as words of their own.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, '$') if chars.peek() == Some(&'(') => {
                chars.next();
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                words.push("$(".into());
            }
            (None, ')') => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                words.push(")".into());
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}
