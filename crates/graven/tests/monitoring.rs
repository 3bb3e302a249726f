//! What ships for monitoring (packaging/monitoring/, docs/monitoring.md) is checked with
//! Prometheus' own `promtool` (Debian's `prometheus` package; `scripts/test.sh` installs it):
//! the alert rules load and pass their unit tests, every query of the Grafana dashboard parses,
//! the real server's `/metrics` passes `promtool check metrics` in the classic text format and
//! switches to OpenMetrics when asked, and every metric the rules and the dashboard name is one
//! the server exports (with witnesses and a TSA configured, so that all families are there).
//! Without promtool these tests fail; they never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, agent, spawn_witness, start};
use graven_core::cosignature::Cosigner;
use graven_core::note::SignerKey;

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/monitoring")
}

/// Runs `promtool` with `args` (and `stdin`); fails the test with an install hint if it is missing.
fn promtool(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(monitoring_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "running promtool ({e}): install Debian's `prometheus` package (apt-get install prometheus)"
            )
        });
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alert_rules_load_and_pass_their_unit_tests() {
    let out = promtool(&["check", "rules", "graven-alerts.yml"], None);
    assert_success("promtool check rules", &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("SUCCESS: 14 rules found"), "{out:?}");
    assert_success("promtool test rules", &promtool(&["test", "rules", "graven-alerts.test.yml"], None));
    // Every alert has a unit test that expects it to fire.
    let rules = std::fs::read_to_string(monitoring_dir().join("graven-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(monitoring_dir().join("graven-alerts.test.yml")).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(tests.contains(&format!("alertname: {alert}\n")), "no unit test for {alert}");
    }
}

/// The dashboard's queries, with Grafana's variables replaced by what they stand for.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(monitoring_dir().join("graven-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let expr =
                expr.replace("$__rate_interval", "5m").replace("$job", "graven").replace("$instance", ".*");
            out.push((
                format!("{} / {}", panel["title"].as_str().unwrap(), target["refId"].as_str().unwrap()),
                expr,
            ));
        }
    }
    assert!(out.len() >= 20, "{out:?}");
    out
}

#[test]
fn every_dashboard_query_parses() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, (_, expr)) in dashboard_queries().iter().enumerate() {
        rules.push_str(&format!(
            "      - record: graven_dashboard:query_{n}\n        expr: {}\n",
            serde_json::json!(expr)
        ));
    }
    let file = tmp.path().join("dashboard-queries.yml");
    std::fs::write(&file, rules).unwrap();
    assert_success(
        "promtool check rules (the dashboard's queries)",
        &promtool(&["check", "rules", file.to_str().unwrap()], None),
    );
    // promtool can fail: a broken query is refused.
    std::fs::write(
        &file,
        "groups:\n  - name: d\n    rules:\n      - record: x:y\n        expr: rate(graven_tree_size[5m]\n",
    )
    .unwrap();
    assert!(!promtool(&["check", "rules", file.to_str().unwrap()], None).status.success());
}

/// The metric names a PromQL text refers to (Graven's and the process ones).
fn names_in(promql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = promql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        if word(bytes[i]) && (i == 0 || !word(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && word(bytes[i]) {
                i += 1;
            }
            let w = &promql[start..i];
            if (w.starts_with("graven_") || w.starts_with("process_")) && !w.contains(':') {
                out.insert(w.to_owned());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// A server with a witness policy (one live witness, one that is down) and a TSA that is down,
/// so that every metric family is exported.
fn server_with_every_family(tmp: &Path) -> (Server, common::Witness) {
    let data = tmp.join("log");
    std::fs::create_dir_all(&data).unwrap();
    let key = SignerKey::from_seed("metrics.example/log", [9; 32]).unwrap();
    std::fs::write(data.join("log.key"), key.to_secret_string()).unwrap();
    let log_flag = format!("metrics.example/log={}", key.verifier());
    let wdir = tmp.join("w1");
    std::fs::create_dir_all(&wdir).unwrap();
    let live = spawn_witness(&wdir, "w1.example", &log_flag);
    let down = graven_testkit::net::dead_addr();
    let dead_vkey = Cosigner::from_seed("w2.example", [8; 32]).unwrap().verifier();
    let policy = format!(
        "log {}\nwitness w1 {} http://{}\nwitness w2 {dead_vkey} http://{down}\n\
         group any 1 w1 w2\nquorum any\n",
        key.verifier(),
        live.vkey,
        live.addr
    );
    let policy_file = tmp.join("witnesses.policy");
    std::fs::write(&policy_file, policy).unwrap();
    let root = graven_testkit::tsa::pki().root.cert.clone();
    let tsa_down = graven_testkit::net::dead_addr();
    let s = start(
        &data,
        &[
            "--witness-policy",
            policy_file.to_str().unwrap(),
            "--tsa-url",
            &format!("http://{tsa_down}/tsa"),
            "--tsa-cert",
            root.to_str().unwrap(),
            "--tsa-interval",
            "1",
        ],
    );
    (s, live)
}

fn get_metrics(s: &Server, accept: Option<&str>) -> (String, String) {
    let mut req = agent().get(s.url("/metrics"));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let mut resp = req.call().unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    (ct, resp.body_mut().read_to_string().unwrap())
}

#[test]
fn the_servers_metrics_pass_promtool_and_cover_the_rules_and_the_dashboard() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _witness) = server_with_every_family(tmp.path());
    let writer = s.identity("metrics-bot", "writer", &["deploy.*"]);
    for _ in 0..3 {
        let r = s.post_event(&writer, r#"{"action":"deploy.start"}"#);
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // A refusal, so that the denied counters have a sample.
    assert_eq!(s.post_event("gk_wrong", r#"{"action":"deploy.start"}"#).status, 401);
    // Wait for a witness round (one cosignature, one failure) and a failed TSA request.
    let deadline = Instant::now() + Duration::from_secs(30);
    let classic = loop {
        let (ct, m) = get_metrics(&s, None);
        assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
        let ready = m.contains("graven_witness_up{witness=\"w1\"} 1")
            && m.contains("graven_witness_up{witness=\"w2\"} 0")
            && m.lines().any(|l| l.starts_with("graven_tsa_failures_total ") && !l.ends_with(" 0"));
        if ready {
            break m;
        }
        assert!(Instant::now() < deadline, "the witness rounds and TSA requests never showed:\n{m}");
        std::thread::sleep(Duration::from_millis(200));
    };

    // promtool reads the classic format and finds nothing to lint.
    let out = promtool(&["check", "metrics"], Some(classic.as_bytes()));
    assert_success("promtool check metrics", &out);
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "promtool check metrics: {out:?}");
    // ... and would say so: a counter without `_total` is a lint problem.
    let bad = "# HELP graven_bad A counter.\n# TYPE graven_bad counter\ngraven_bad 1\n";
    assert!(!promtool(&["check", "metrics"], Some(bad.as_bytes())).status.success());

    // OpenMetrics when asked, as Prometheus asks.
    let (ct, om) = get_metrics(
        &s,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
    );
    assert_eq!(ct, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(om.ends_with("# EOF\n") && om.contains("# TYPE graven_events_committed counter\n"), "{om}");

    // Every metric the alert rules and the dashboard name is exported.
    let exported: BTreeSet<String> = classic
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    let rules = std::fs::read_to_string(monitoring_dir().join("graven-alerts.yml")).unwrap();
    let mut named = BTreeSet::new();
    for line in rules.lines().filter_map(|l| l.trim().strip_prefix("expr: ")) {
        named.extend(names_in(line));
    }
    for (_, q) in dashboard_queries() {
        named.extend(names_in(&q));
    }
    assert!(named.len() > 20, "{named:?}");
    // Exported only by a node of a shared (S3) log; crates/graven/tests/s3.rs checks it there.
    let shared_log_only = ["graven_store_requests"];
    let missing: Vec<_> =
        named.difference(&exported).filter(|n| !shared_log_only.contains(&n.as_str())).collect();
    assert!(
        missing.is_empty(),
        "named by the rules or the dashboard but not exported: {missing:?}\n{classic}"
    );
}
