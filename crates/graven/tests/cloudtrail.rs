//! `graven import cloudtrail` end to end with the real binary: CloudTrail log files as
//! CloudTrail writes them (`AWSLogs/<account>/CloudTrail/<region>/<y>/<m>/<d>/*.json.gz`, the
//! records in the documented format of `crates/graven-server/tests/fixtures/cloudtrail-records.json`)
//! from a directory and from an S3 bucket (SeaweedFS), into a server as a source identity:
//! every record is logged once, an interrupted import resumes where it stopped, and an import
//! run again, with or without its state, logs nothing twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Output;

use common::{graven_as, start};
use graven_tlog::{Cond, ObjectStore};
use serde_json::{Value, json};

const FIXTURE: &str = include_str!("../../graven-server/tests/fixtures/cloudtrail-records.json");

fn records() -> Vec<Value> {
    serde_json::from_str::<Value>(FIXTURE).unwrap()["Records"].as_array().unwrap().clone()
}

fn gz(v: &Value) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(v.to_string().as_bytes()).unwrap();
    e.finish().unwrap()
}

/// Three log files of the fixture's records (2, 2, 1), under CloudTrail's key layout.
fn log_files() -> Vec<(String, Vec<u8>)> {
    let r = records();
    let dir = "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/12/01";
    [(0..2, "0900Z_a"), (2..4, "0905Z_b"), (4..5, "0910Z_c")]
        .into_iter()
        .map(|(range, stamp)| {
            let name = format!("{dir}/111122223333_CloudTrail_eu-west-1_20261201T{stamp}.json.gz");
            (name, gz(&json!({"Records": r[range].to_vec()})))
        })
        .collect()
}

fn import(from: &str, server: &str, key: &str, state: &Path, env: &[(&str, String)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_graven"));
    cmd.args(["import", "cloudtrail", from, "--server", server, "--state", state.to_str().unwrap()])
        .env("GRAVEN_TOKEN", key)
        .env_remove("GRAVEN_SERVER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn summary(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A source identity allowed CloudTrail's subjects; its key.
fn source(s: &common::Server) -> String {
    let r = s.admin(
        "POST",
        "/v1/identities",
        Some(json!({"id": "src:cloudtrail", "kind": "integration", "owner": "team-cloud", "role": "source",
                    "source": {"types": ["cloudtrail"], "subjects": ["arn:aws:iam::111122223333:*", "*.amazonaws.com", "aws:account:*"]}})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    s.new_key("src:cloudtrail", json!({}))
}

#[test]
fn cloudtrail_files_from_a_directory_import_once_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("d"), &["--origin", "cloudtrail.example/log"]);
    let server = format!("http://{}", s.addr);
    let key = source(&s);
    let logs = tmp.path().join("logs");
    let files = log_files();
    // The first two files only, and a third that is not a log file at all.
    for (name, bytes) in &files[..2] {
        let p = logs.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let broken = logs.join(&files[2].0);
    std::fs::write(&broken, b"not gzip").unwrap();
    std::fs::write(logs.join("AWSLogs/README.txt"), b"not a log file").unwrap();
    let state = tmp.path().join("state");
    let size = s.size();

    // The broken file stops the import, naming it; the two before it are done.
    let out = import(logs.to_str().unwrap(), &server, &key, &state, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0910Z_c.json.gz") && err.contains("not a gzip file"), "{err}");
    assert_eq!(s.size(), size + 4);
    assert_eq!(std::fs::read_to_string(&state).unwrap().lines().count(), 2);

    // Fixed, and run again: only the third file is read and sent.
    std::fs::write(&broken, &files[2].1).unwrap();
    let sum = summary(&import(logs.to_str().unwrap(), &server, &key, &state, &[]));
    assert_eq!(sum, json!({"files": 1, "files_already_done": 2, "records": 1, "logged": 1, "duplicates": 0}));
    assert_eq!(s.size(), size + 5);
    // Every record once, attributed to its AWS identity.
    let events: Vec<Value> = (size..size + 5).map(|i| s.event(i)).collect();
    let ids: Vec<&str> =
        events.iter().map(|e| e["details"]["cloudtrail"]["eventID"].as_str().unwrap()).collect();
    let want: Vec<String> = records().iter().map(|r| r["eventID"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, want.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(events[1]["actor"]["id"], "arn:aws:iam::111122223333:role/payments-api");
    assert!(events.iter().all(|e| e["actor"]["attested_by"]["id"] == "src:cloudtrail"));

    // Run again: nothing to do. Without its state: everything is read, nothing logged twice.
    let sum = summary(&import(logs.to_str().unwrap(), &server, &key, &state, &[]));
    assert_eq!(sum["files_already_done"], 3);
    let fresh = tmp.path().join("state2");
    let sum = summary(&import(logs.to_str().unwrap(), &server, &key, &fresh, &[]));
    assert_eq!(sum, json!({"files": 3, "files_already_done": 0, "records": 5, "logged": 0, "duplicates": 5}));
    assert_eq!(s.size(), size + 5);

    // An auditor asks what the leaked access key's user did.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let found = loop {
        let out = graven_as(
            &[
                "search",
                "--actor",
                "arn:aws:iam::111122223333:user/ci-deployer",
                "--json",
                "--server",
                &server,
            ],
            &s.token,
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.lines().count() >= 2 || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let actions: Vec<String> = found
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"]["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions.len(), 2, "{found}");
    assert!(
        actions.contains(&"aws.iam.CreateAccessKey".to_owned())
            && actions.contains(&"aws.s3.PutObject".to_owned())
    );

    // A key that is not a source's is refused, with the server's reason.
    let writer = s.identity("svc:w", "writer", &[]);
    let out = import(logs.to_str().unwrap(), &server, &writer, &tmp.path().join("state3"), &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn cloudtrail_files_import_from_an_s3_bucket() {
    let sw = graven_testkit::s3::Seaweed::shared();
    let mut cfg = sw.bucket("cloudtrail-import", false);
    let store = graven_s3::S3Store::connect(cfg.clone()).unwrap();
    for (name, bytes) in log_files() {
        store.put(&name, &bytes, Cond::Any, false).unwrap();
    }
    // Something else in the bucket: not read.
    store.put("AWSLogs/111122223333/CloudTrail-Digest/x.txt", b"digest", Cond::Any, false).unwrap();
    cfg.prefix = "AWSLogs/111122223333".into();
    let tmp = tempfile::tempdir().unwrap();
    let s = start(&tmp.path().join("d"), &["--origin", "cloudtrail-s3.example/log"]);
    let server = format!("http://{}", s.addr);
    let key = source(&s);
    let env = graven_testkit::s3::env(&cfg);
    let from = format!("s3://{}/{}", cfg.bucket, cfg.prefix);
    let size = s.size();
    let sum = summary(&import(&from, &server, &key, &tmp.path().join("state"), &env));
    assert_eq!(sum, json!({"files": 3, "files_already_done": 0, "records": 5, "logged": 5, "duplicates": 0}));
    assert_eq!(s.size(), size + 5);
    assert_eq!(s.event(size + 2)["actor"]["id"], "ec2.amazonaws.com");
    let sum = summary(&import(&from, &server, &key, &tmp.path().join("state"), &env));
    assert_eq!(sum["files_already_done"], 3);
}
