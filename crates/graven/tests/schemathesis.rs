//! The running server against its own description: schemathesis (PyPI, a property-based API
//! tester) reads `/openapi.json` from a real `graven serve` and sends it requests generated from
//! the document (examples, boundary and negative cases, random ones, and chains of calls), as
//! the bootstrap admin, whose role reaches every route. Every answer must be a documented
//! status, with a documented media type and headers, a body that matches its schema, and never
//! a server error.
//!
//! Needs the `schemathesis` executable at the version `scripts/test.sh` pins (it installs it
//! with pip): found through `GRAVEN_SCHEMATHESIS`, else on `PATH`, else in Python's scripts
//! directories. Without it the test fails, never skips. The seed and the example count are
//! fixed, so a run repeats the same requests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::json;

/// The checks: everything the document promises about an answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";
/// Test cases per operation and phase: about a minute and a half for the whole run.
const MAX_EXAMPLES: &str = "100";
const SEED: &str = "20261207";
/// The live stream never ends by itself: schemathesis reads at most a few events of it, and
/// one that is waiting for new entries for at most a second. Other requests get 20 s (a debug
/// build on a busy machine).
const CONFIG: &str = r#"
max-stream-events = 3
request-timeout = 20

[[operations]]
include-operation-id = "streamEvents"
request-timeout = 1
"#;

/// The version `scripts/test.sh` installs: the one the seed's requests were made with.
fn pinned_version() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("SCHEMATHESIS_VERSION="))
        .unwrap_or_else(|| panic!("{} pins no SCHEMATHESIS_VERSION", script.display()))
        .trim()
        .to_owned()
}

fn runs(exe: &Path) -> Option<String> {
    let out = Command::new(exe).arg("--version").output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The schemathesis executable, as `scripts/test.sh` finds the ones pip installs.
fn schemathesis() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("GRAVEN_SCHEMATHESIS") {
        candidates.push(p.into());
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("schemathesis")));
    }
    for query in [
        "import sysconfig; print(sysconfig.get_path('scripts'))",
        "import site; print(site.getuserbase() + '/bin')",
    ] {
        if let Ok(out) = Command::new("python3").args(["-c", query]).output() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !dir.is_empty() {
                candidates.push(Path::new(&dir).join("schemathesis"));
            }
        }
    }
    let want = pinned_version();
    let mut found = Vec::new();
    for exe in candidates {
        if let Some(v) = runs(&exe) {
            if v.split_whitespace().any(|w| w == want) {
                return exe;
            }
            found.push(format!("{} ({})", exe.display(), v.trim()));
        }
    }
    panic!(
        "schemathesis {want} not found (found: {found:?}); install it with \
         `python3 -m pip install schemathesis=={want}` (scripts/test.sh does), or point \
         GRAVEN_SCHEMATHESIS at its executable"
    );
}

#[test]
fn the_running_server_answers_as_its_openapi_document_says() {
    let exe = schemathesis();
    let tmp = tempfile::tempdir().unwrap();
    let server = common::start(&tmp.path().join("data"), &[]);
    // Something to read, search, prove and manage: events, an identity with an API key and a
    // registered public key.
    for i in 0..5 {
        let e = json!({"action": "deployment.create", "outcome": "success", "resource": {"type": "svc", "id": format!("r{i}")}});
        assert_eq!(server.post_event(&server.token, &e.to_string()).status, 201);
    }
    let who = json!({"id": "svc:schemathesis", "kind": "ci_job", "owner": "tests", "role": "auditor"});
    assert_eq!(server.admin("POST", "/v1/identities", Some(who)).status, 201);
    assert_eq!(server.admin("POST", "/v1/identities/svc:schemathesis/keys", None).status, 201);

    let base = format!("http://{}", server.addr);
    let config = tmp.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let started = Instant::now();
    let out = Command::new(&exe)
        .current_dir(tmp.path())
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{base}/openapi.json"), "--url", &base])
        .args(["--checks", CHECKS, "--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--workers", "1", "--generation-database", "none", "--no-color", "--output-truncate", "false"])
        .args(["--header", &format!("Authorization: Bearer {}", server.token)])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("schemathesis ran for {:.0} s", started.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "schemathesis found the server and its document at odds ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // It tested every operation of the document, and found nothing.
    let doc = server.admin("GET", "/openapi.json", None).json();
    let ops: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().keys().filter(|k| *k != "parameters").count())
        .sum();
    assert!(
        stdout.contains(&format!("{ops} selected / {ops} total")),
        "not every operation was tested:\n{stdout}"
    );
    assert!(!stdout.contains("failure") || stdout.contains("0 failures"), "{stdout}");
}

/// The OTLP receiver as a source whose grant names `otlp` sees it (the run above sends the
/// admin's key, which the guard refuses before the body is read): whatever protobuf or JSON
/// body schemathesis makes is answered within the document, a 200 or a typed 4xx, never a 5xx.
#[test]
fn the_otlp_receiver_answers_a_source_as_its_openapi_document_says() {
    let exe = schemathesis();
    let tmp = tempfile::tempdir().unwrap();
    let server = common::start(&tmp.path().join("data"), &[]);
    let who = json!({"id": "src:schemathesis", "kind": "integration", "owner": "tests", "role": "source",
                     "source": {"types": ["otlp"], "subjects": ["*"]}});
    assert_eq!(server.admin("POST", "/v1/identities", Some(who)).status, 201);
    let key = server.admin("POST", "/v1/identities/src:schemathesis/keys", None).json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("http://{}", server.addr);
    let config = tmp.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = Command::new(&exe)
        .current_dir(tmp.path())
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{base}/openapi.json"), "--url", &base])
        .args(["--include-operation-id", "exportOtlpLogs"])
        .args(["--checks", CHECKS, "--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--workers", "1", "--generation-database", "none", "--no-color", "--output-truncate", "false"])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found the OTLP receiver and its document at odds ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("1 selected / "), "the OTLP operation was not tested:\n{stdout}");
    assert!(!stdout.contains("failure") || stdout.contains("0 failures"), "{stdout}");
}
