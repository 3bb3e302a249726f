//! Architecture invariants, checked against the real dependency graph (`cargo tree`).
//!
//! 1. `graven-core` is pure: no async runtime, no network or filesystem crate, no randomness,
//!    no clock. Its whole dependency closure must stay inside an allow-list; anything new must
//!    be reviewed and added here on purpose.
//! 2. The verifier never depends on the writer: `graven-verify` must not reach `graven-tlog`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::process::Command;

fn normal_deps(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none", "-f", "{p}", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Hashing, Ed25519, base64, number formatting, error derive, and their own internals.
const CORE_ALLOWED: &[&str] = &[
    "graven-core",
    "base64",
    "block-buffer",
    "cfg-if",
    "const-oid",
    "cpufeatures",
    "crypto-common",
    "curve25519-dalek",
    "curve25519-dalek-derive",
    "digest",
    "ed25519",
    "ed25519-dalek",
    "hybrid-array",
    "proc-macro2",
    "quote",
    "ryu-js",
    "sha2",
    "signature",
    "subtle",
    "syn",
    "thiserror",
    "thiserror-impl",
    "typenum",
    "unicode-ident",
    "zeroize",
];

#[test]
fn core_has_no_io_or_async_dependency() {
    let deps = normal_deps("graven-core");
    assert!(deps.contains("sha2"), "cargo tree output not understood: {deps:?}");
    let unexpected: Vec<&String> = deps.iter().filter(|d| !CORE_ALLOWED.contains(&d.as_str())).collect();
    assert!(
        unexpected.is_empty(),
        "graven-core grew dependencies {unexpected:?}. The core must stay free of I/O, async, \
         randomness and clocks; move that code to another crate, or review and extend CORE_ALLOWED"
    );
    for banned in
        ["tokio", "mio", "futures", "libc", "getrandom", "rand", "ureq", "graven-tlog", "graven-verify"]
    {
        assert!(!deps.contains(banned), "graven-core depends on {banned}");
    }
}

#[test]
fn verifier_does_not_depend_on_the_writer() {
    let deps = normal_deps("graven-verify");
    assert!(deps.contains("graven-core"));
    assert!(!deps.contains("graven-tlog"), "graven-verify must not depend on the writer (graven-tlog)");
    assert!(!deps.contains("tokio"), "graven-verify is a blocking client; keep async out of it");
}
