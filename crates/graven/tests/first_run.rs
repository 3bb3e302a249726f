//! A new operator's first contact with the binary: the origin a first start gives the log and
//! announces, shell completions and manual pages generated from the command line's definition.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::path::Path;
use std::process::Command;

use common::{graven, ok, start, stderr};

/// Starts `graven serve` on `data` with `args`, without a `GRAVEN_ORIGIN` from the caller.
fn start_clean(data: &Path, args: &[&str]) -> common::Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graven"));
    cmd.args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("GRAVEN_ORIGIN")
        .stderr(std::process::Stdio::inherit());
    let proc = graven_testkit::process::spawn_listening(&mut cmd, std::time::Duration::from_secs(60));
    let vkey = proc.banner_value("verifier key: ").unwrap().trim().to_owned();
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap().trim().to_owned();
    common::Server { proc, vkey, token, data: data.to_path_buf() }
}

/// The origin `/v1/log` reports.
fn served_origin(s: &common::Server) -> String {
    s.admin("GET", "/v1/log", None).json()["origin"].as_str().unwrap().to_owned()
}

/// Without a set origin, the first start names the log after the host, says so before it
/// serves (with how to choose another), and the log, its key and its checkpoints carry that
/// name; the next start keeps it and says nothing about it.
#[test]
fn the_first_start_derives_and_announces_the_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = start_clean(&data, &[]);
    let announced = s
        .banner_value("new log: origin ")
        .and_then(|l| l.strip_suffix(" (from this host's name)"))
        .unwrap_or_else(|| panic!("no origin announced: {:#?}", s.banner))
        .to_owned();
    let host = String::from_utf8(Command::new("hostname").output().unwrap().stdout).unwrap();
    assert_eq!(announced, format!("{}/graven", host.trim().to_ascii_lowercase()));
    let said = s.banner.join("\n");
    assert!(said.contains("cannot change once the log exists") && said.contains("--origin"), "{said}");
    // Announced before the log was created and before the server listens.
    let at = |needle: &str| s.banner.iter().position(|l| l.contains(needle)).unwrap();
    assert!(at("new log: origin") < at("created a new log"), "{said}");
    assert_eq!(served_origin(&s), announced);
    assert!(s.vkey.starts_with(&format!("{announced}+")), "{}", s.vkey);
    drop(s);

    let s = start_clean(&data, &[]);
    assert_eq!(served_origin(&s), announced);
    assert!(s.banner_value("new log:").is_none(), "{:#?}", s.banner);
}

/// A set origin is the new log's, announced as set; once the log exists, another one is
/// refused before anything is opened, and the same one is accepted.
#[test]
fn a_set_origin_is_kept_and_cannot_change() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = start(&data, &["--origin", "audit.example.com/graven"]);
    assert_eq!(s.banner_value("new log: origin "), Some("audit.example.com/graven (as set)"));
    assert_eq!(served_origin(&s), "audit.example.com/graven");
    drop(s);

    let out = graven(
        &[
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--origin",
            "other.example/log",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("audit.example.com/graven")
            && err.contains("other.example/log")
            && err.contains("cannot change"),
        "{err}"
    );
    // The environment variable is a setting like the flag.
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("GRAVEN_ORIGIN", "other.example/log")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let s = start(&data, &["--origin", "audit.example.com/graven"]);
    assert_eq!(served_origin(&s), "audit.example.com/graven");
}

/// The subcommands `graven --help` lists.
fn subcommands() -> Vec<String> {
    let help = ok(&graven(&["--help"], b""));
    let list = help.split("Commands:").nth(1).unwrap().split("\n\n").next().unwrap();
    let names: Vec<String> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(Into::into)
        .collect();
    assert!(names.len() > 10 && names.contains(&"serve".to_owned()), "{names:?}");
    names
}

/// `graven completions bash` is a bash script (`bash -n`) that completes every subcommand;
/// every other shell gets a script naming them too.
#[test]
fn completions_cover_every_subcommand() {
    let subs = subcommands();
    let bash = ok(&graven(&["completions", "bash"], b""));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("graven.bash");
    std::fs::write(&file, &bash).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
    // Sourcing it registers the completion function for `graven`.
    let registered = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p graven", file.display()))
        .output()
        .unwrap();
    assert!(registered.status.success(), "{}", String::from_utf8_lossy(&registered.stderr));
    for sub in &subs {
        assert!(bash.contains(&format!("graven,{sub})")), "bash completes no {sub}");
    }
    // Nested subcommands too.
    assert!(
        bash.contains("graven__subcmd__identity,create)") || bash.contains("graven__identity,create)"),
        "{}",
        &bash[..400]
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = ok(&graven(&["completions", shell], b""));
        for sub in &subs {
            assert!(script.contains(sub.as_str()), "{shell} names no {sub}");
        }
    }
    let out = graven(&["completions", "tcsh"], b"");
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
}

/// Checks `page` with groff (warnings on) when it is installed, and its structure always:
/// the title, NAME and SYNOPSIS sections, and a SUBCOMMANDS section naming each `subs` page.
fn check_page(page: &str, title: &str, subs: &[String]) {
    assert!(page.contains(&format!(".TH {title} 1")), "{title}: {}", &page[..page.len().min(300)]);
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION"] {
        assert!(page.contains(section), "{title}: no {section}");
    }
    for sub in subs {
        let roff = format!("{title}-{sub}(1)").replace('-', "\\-");
        assert!(page.contains(&roff), "{title} does not list {sub}");
    }
    let groff = Command::new("groff").arg("--version").output();
    if groff.is_err() {
        eprintln!("groff is not installed: {title} was checked for its structure only");
        return;
    }
    let mut child = Command::new("groff")
        // Every warning but `break`: a long word that cannot be broken in a narrow indented
        // column (a JSON sample in --help) is a matter of layout, not a fault in the page.
        .args(["-man", "-Tutf8", "-ww", "-Wbreak", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), page.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "groff on {title}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `graven man` is graven(1), a roff page groff renders without a warning, that lists every
/// subcommand's page; `--out-dir` writes those pages, each one rendering, and `man -l` reads
/// them.
#[test]
fn man_pages_render() {
    let subs = subcommands();
    let page = ok(&graven(&["man"], b""));
    check_page(&page, "graven", &subs);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man1");
    let listed = ok(&graven(&["man", "--out-dir", dir.to_str().unwrap()], b""));
    let mut files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    assert_eq!(listed.lines().count(), files.len(), "{listed}");
    assert!(files.contains(&"graven.1".to_owned()) && files.contains(&"graven-identity-create.1".to_owned()));
    for sub in &subs {
        assert!(files.contains(&format!("graven-{sub}.1")), "no page for {sub}: {files:?}");
    }
    for f in &files {
        let page = std::fs::read_to_string(dir.join(f)).unwrap();
        check_page(&page, f.trim_end_matches(".1"), &[]);
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("graven.1")).unwrap(),
        page,
        "the page printed is the one written"
    );
    // man(1) formats a page file; the options and their environment variables are there.
    if Command::new("man").arg("--version").output().is_ok() {
        let out = Command::new("man")
            .arg("-l")
            .arg(dir.join("graven-serve.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("--origin") && text.contains("GRAVEN_ORIGIN"),
            "{text}"
        );
    }
}

/// The client commands find the server in `GRAVEN_SERVER`, and `--since` takes an age.
#[test]
fn graven_server_names_the_server_and_since_takes_an_age() {
    let dead = format!("http://{}", graven_testkit::net::dead_addr());
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["search", "--since", "1h"])
        .env("GRAVEN_SERVER", &dead)
        .env_remove("GRAVEN_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&dead[7..]), "the server from GRAVEN_SERVER is the one tried: {err}");
    let out = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(["search", "--since", "yesterday"])
        .env("GRAVEN_SERVER", &dead)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a time") && err.contains("7d"), "{err}");
}
