//! The mistakes people make when pointing the CLI at a server, each answered with what to do:
//! a URL without a scheme, https:// to a plain-HTTP server, http:// to a TLS server, a server
//! that is not running, a verifier key with the right name but another key id. And one way to
//! name the server for every command: `--server`, else `GRAVEN_SERVER`, else
//! http://127.0.0.1:7878 (`search`, `tail`, `identity`, `verify`, `prove`, `export`). Tables
//! fit the terminal (checked on a real pseudo-terminal, with `script`) and are never cut in a
//! pipe; numbers are written for people.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output};

use common::{Server, start};

/// Runs the binary with `env` (and a fresh trust store); `GRAVEN_SERVER` is unset unless given.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let trust = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(args)
        .env_remove("GRAVEN_SERVER")
        .env("GRAVEN_TRUST_DIR", trust.path())
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn failed_with(out: &Output, needles: &[&str]) {
    let e = err(out);
    assert!(!out.status.success(), "succeeded: {e}");
    for n in needles {
        assert!(e.contains(n), "{n:?} not in: {e}");
    }
    common::assert_terminal_safe("stderr", &out.stderr);
}

fn plain_server(tmp: &std::path::Path) -> Server {
    start(&tmp.join("plain"), &["--origin", "mistakes.example/log"])
}

#[test]
fn a_url_without_a_scheme_is_named_with_the_fix() {
    for args in [
        vec!["search", "--server", "127.0.0.1:7878"],
        vec!["tail", "--server", "localhost:7878"],
        vec!["identity", "list", "--server", "127.0.0.1:7878"],
        vec!["export", "--server", "127.0.0.1:7878"],
        vec!["prove", "--server", "127.0.0.1:7878", "--index", "0", "--vkey", "x"],
    ] {
        let out = run(&args, &[("GRAVEN_TOKEN", "gvn_x")]);
        let host = args[args.iter().position(|a| *a == "--server").unwrap() + 1];
        failed_with(&out, &["has no scheme", &format!("did you mean http://{host}")]);
    }
    // verify's target is a directory, a file or a URL: a host:port that is none of them.
    let out = run(&["verify", "127.0.0.1:7878", "--vkey", "x"], &[]);
    failed_with(&out, &["not a directory", "did you mean http://127.0.0.1:7878"]);
    // The environment variable is checked the same way.
    let out = run(&["search"], &[("GRAVEN_SERVER", "audit.example.com"), ("GRAVEN_TOKEN", "gvn_x")]);
    failed_with(&out, &["did you mean http://audit.example.com"]);
    let out = run(&["search", "--server", "ftp://audit.example.com"], &[]);
    failed_with(&out, &["http:// or https://, not ftp://"]);
}

#[test]
fn a_stopped_server_and_the_wrong_scheme_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let s = plain_server(tmp.path());
    let dead = format!("http://{}", graven_testkit::net::dead_addr());
    for args in [
        vec!["search", "--server", &dead],
        vec!["tail", "--server", &dead],
        vec!["identity", "list", "--server", &dead],
        vec!["verify", &dead, "--vkey", &s.vkey],
        vec!["prove", "--server", &dead, "--index", "0", "--vkey", &s.vkey],
        vec!["export", "--server", &dead, "--vkey", &s.vkey],
    ] {
        let out = run(&args, &[("GRAVEN_TOKEN", &s.token)]);
        failed_with(&out, &["nothing answers at", "is `graven serve` running"]);
        // No table header above the error.
        assert!(!String::from_utf8_lossy(&out.stdout).contains("INDEX"), "{args:?}");
    }
    // https:// to a plain-HTTP server.
    let https = format!("https://{}", s.addr);
    let out = run(&["search", "--server", &https], &[("GRAVEN_TOKEN", &s.token)]);
    failed_with(&out, &["does not speak TLS", &format!("use http://{}", s.addr)]);
    let out = run(&["verify", &https, "--vkey", &s.vkey], &[("GRAVEN_TOKEN", &s.token)]);
    failed_with(&out, &["does not speak TLS", &format!("use http://{}", s.addr)]);

    // http:// to a TLS server.
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let tls = start(
        &tmp.path().join("tls"),
        &["--tls-cert", cert_file.to_str().unwrap(), "--tls-key", key_file.to_str().unwrap()],
    );
    let http = format!("http://{}", tls.addr);
    let out = run(&["search", "--server", &http], &[("GRAVEN_TOKEN", &tls.token)]);
    failed_with(&out, &["if the server uses TLS, use https://"]);
}

#[test]
fn a_key_with_the_right_name_and_another_id_shows_both_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let s = plain_server(tmp.path());
    let other = graven_core::note::SignerKey::from_seed("mistakes.example/log", [42; 32]).unwrap().verifier();
    let url = format!("http://{}", s.addr);
    let out = run(&["verify", &url, "--vkey", &other.to_string()], &[("GRAVEN_TOKEN", &s.token)]);
    let right_id = s.vkey.split('+').nth(1).unwrap();
    let wrong_id = other.to_string().split('+').nth(1).unwrap().to_owned();
    failed_with(
        &out,
        &[
            &format!("signed by mistakes.example/log+{right_id}"),
            &format!("the keys given are mistakes.example/log+{wrong_id}"),
            "the same name mistakes.example/log with another key id",
        ],
    );
}

#[test]
fn graven_server_names_the_server_for_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let s = plain_server(tmp.path());
    let url = format!("http://{}", s.addr);
    let env = [("GRAVEN_SERVER", url.as_str()), ("GRAVEN_TOKEN", s.token.as_str())];
    let ok = |args: &[&str]| {
        let out = run(args, &env);
        assert!(out.status.success(), "{args:?}: {}", err(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Search reads the index, which follows the log a moment behind a fresh start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ok(&["search", "--json"]).contains("graven.identity.create") {
        assert!(std::time::Instant::now() < deadline, "search never found the bootstrap records");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ok(&["tail", "--json"]).contains("\"index\":0"));
    assert!(ok(&["identity", "list"]).contains("admin"));
    assert!(ok(&["verify", "--vkey", &s.vkey]).starts_with("OK: mistakes.example/log verifies"));
    assert!(ok(&["prove", "--index", "0", "--vkey", &s.vkey]).contains("\"verified\":true"));
    assert!(ok(&["export", "--vkey", &s.vkey]).contains("graven.identity.create"));
    // --server beats the variable; the old name --url still works for prove.
    let out = run(&["search", "--server", &format!("http://{}", graven_testkit::net::dead_addr())], &env);
    failed_with(&out, &["nothing answers at"]);
    assert!(ok(&["prove", "--url", &url, "--index", "0", "--vkey", &s.vkey]).contains("\"verified\":true"));
    // A log directory and a server are two sources: export takes one.
    let out = run(&["export", "--dir", ".", "--server", &url], &env);
    failed_with(&out, &["not both"]);
    // With --dir, GRAVEN_SERVER is not consulted.
    let dir = s.data.join("log");
    assert!(
        ok(&["export", "--dir", dir.to_str().unwrap(), "--vkey", &s.vkey]).contains("graven.identity.create")
    );
}

/// Runs `graven args` on a pseudo-terminal `cols` wide (util-linux `script`); its output.
fn on_terminal(cols: u16, args: &[&str], env: &[(&str, &str)]) -> String {
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_graven"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let cmd = format!("stty rows 40 cols {cols}; {}", quoted.join(" "));
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("GRAVEN_SERVER")
        .envs(env.iter().copied())
        .output()
        .expect("running script (util-linux); it is in Debian's bsdutils");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

#[test]
fn tables_fit_the_terminal_and_pipes_get_every_character() {
    let tmp = tempfile::tempdir().unwrap();
    let s = plain_server(tmp.path());
    let long_action = format!("deploy.{}", "x".repeat(80));
    let writer =
        s.identity("svc:a-rather-long-service-account-name-for-the-payments-team", "writer", &["deploy.*"]);
    assert_eq!(s.post_event(&writer, &format!(r#"{{"action":"{long_action}"}}"#)).status, 201);
    let url = format!("http://{}", s.addr);
    let env = [("GRAVEN_SERVER", url.as_str()), ("GRAVEN_TOKEN", s.token.as_str())];
    // Once the index has the long event, search shows it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !String::from_utf8_lossy(&run(&["search", "--json"], &env).stdout).contains(&long_action) {
        assert!(std::time::Instant::now() < deadline, "the index never caught up");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for args in [vec!["search"], vec!["tail"], vec!["identity", "list"]] {
        let shown = on_terminal(70, &args, &env);
        assert!(shown.lines().count() >= 2, "{args:?}: {shown}");
        for line in shown.lines() {
            assert!(line.chars().count() <= 70, "{args:?}: {line:?} is wider than the terminal");
        }
        assert!(shown.contains('…'), "{args:?}: something had to be cut: {shown}");
        // --wide cuts nothing, on a terminal too (tail has it as well).
        let wide = on_terminal(70, &[args.as_slice(), &["--wide"]].concat(), &env);
        assert!(!wide.contains('…'), "{args:?} --wide: {wide}");
        // A pipe gets every character.
        let piped = run(&args, &env);
        let piped = String::from_utf8_lossy(&piped.stdout).into_owned();
        assert!(!piped.contains('…'), "{args:?} in a pipe: {piped}");
    }
    let piped = run(&["search"], &env);
    assert!(String::from_utf8_lossy(&piped.stdout).contains(&long_action));
    // Numbers for people: counts, not `1 bundles`.
    let out = run(&["verify", &url, "--vkey", &s.vkey], &env);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("verifies: 5 entries") && text.contains("1 bundle and 1 tile checked in"),
        "{text}"
    );
}
