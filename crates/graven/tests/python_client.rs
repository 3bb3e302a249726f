//! The Python client package (`clients/python`, `graven_client`) against a real server: it is
//! installed the way its README says (`pip install ./clients/python`, into a temporary
//! directory) and its whole unittest suite runs with `GRAVEN_SERVER`, `GRAVEN_TOKEN` (a
//! writer's key) and `GRAVEN_VKEY` pointing at a `graven serve` child: the offline unit tests
//! and the live ones (`tests/test_live.py`: send, batch, tampered receipts, refusals, the
//! fail-closed helpers). Fails, never skips, without `python3`, `cryptography` or a way to
//! build the package.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{python_with_cryptography, start};

/// How many tests the package's suite holds (unit and live); a change to it changes this.
const PYTHON_TESTS: usize = 67;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `pip install --no-build-isolation` builds with the installed setuptools, which before 70.1
/// needs the `wheel` package for its wheels; installs them with pip if missing
/// (as `common::python_with_cryptography` does cryptography), and fails if that does not work.
fn python_can_build_wheels() {
    let probe = "import setuptools, sys\n\
                 v = tuple(int(x) for x in setuptools.__version__.split('.')[:2])\n\
                 if v < (70, 1): import wheel";
    let can = || Command::new("python3").args(["-c", probe]).output().is_ok_and(|o| o.status.success());
    if can() {
        return;
    }
    // As scripts/test.sh installs its tools: into the interpreter, else (an externally managed
    // Python) into the user's site.
    let pip = |extra: &[&str]| {
        Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(extra)
            .args(["setuptools>=61", "wheel==0.45.1"])
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed = pip(&[]) || pip(&["--user", "--break-system-packages"]);
    assert!(
        installed && can(),
        "python3 needs setuptools (and, before setuptools 70.1, wheel) to install clients/python; \
         `python3 -m pip install setuptools wheel` failed"
    );
}

#[test]
fn the_python_package_installs_and_passes_its_suite_against_a_live_server() {
    python_with_cryptography();
    python_can_build_wheels();
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");

    // (1) Install it as a user would, without its dependency (cryptography is checked above)
    // so that the step needs no network.
    let install = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-build-isolation",
            "--no-deps",
        ])
        .arg("--target")
        .arg(&site)
        .arg("./clients/python")
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(install.status.success(), "pip install ./clients/python failed:\n{}", text(&install));

    // The suite must import the installed copy, not the source tree.
    let which = Command::new("python3")
        .args(["-c", "import graven_client; print(graven_client.__file__)"])
        .env("PYTHONPATH", &site)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(which.status.success(), "{}", text(&which));
    assert!(
        String::from_utf8_lossy(&which.stdout).trim().starts_with(site.to_str().unwrap()),
        "{}",
        text(&which)
    );

    // (2) A server, a writer, and the suite.
    let s = start(&tmp.path().join("d"), &["--origin", "python.example/log"]);
    let writer = s.identity("svc:py", "writer", &[]);
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "clients/python/tests"])
        .current_dir(repo())
        .env("PYTHONPATH", &site)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("GRAVEN_SERVER", format!("http://{}", s.addr))
        .env("GRAVEN_TOKEN", &writer)
        .env("GRAVEN_VKEY", &s.vkey)
        .output()
        .unwrap();
    let report = text(&out);
    assert!(out.status.success(), "the Python client's tests failed:\n{report}");
    let ran = report
        .lines()
        .find_map(|l| l.strip_prefix("Ran ")?.split_whitespace().next()?.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no \"Ran N tests\" line:\n{report}"));
    assert_eq!(ran, PYTHON_TESTS, "{report}");
    assert!(report.lines().any(|l| l.trim() == "OK"), "{report}");

    // The events are in the log: the live tests appended some.
    assert!(s.size() > 10, "tree size {}", s.size());
}
