//! Helpers shared by the end-to-end tests of the `graven` binary.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use graven_core::tile;

/// Runs the binary. Unless the call names a `--trust-dir`, it gets a fresh, empty trust store:
/// tests never touch the user's own, and each `verify` is a first-use full verification.
pub fn graven(args: &[&str], stdin: &[u8]) -> Output {
    let fresh_trust = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_graven"))
        .args(args)
        .env("GRAVEN_TRUST_DIR", fresh_trust.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "graven failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub struct TestLog {
    pub _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub key: PathBuf,
    pub vkey: String,
    /// This log's own trust store: its `verify` runs remember, and are incremental.
    pub trust: PathBuf,
}

impl TestLog {
    pub fn new(origin: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("log.key");
        let out = graven(&["keygen", "--origin", origin, "--out", key.to_str().unwrap()], b"");
        let vkey = ok(&out).trim().to_owned();
        TestLog { dir: tmp.path().join("log"), key, vkey, trust: tmp.path().join("trust"), _tmp: tmp }
    }

    pub fn append_raw(&self, lines: &[u8]) -> Output {
        graven(
            &[
                "log",
                "append",
                "--dir",
                self.dir.to_str().unwrap(),
                "--key",
                self.key.to_str().unwrap(),
                "--raw",
            ],
            lines,
        )
    }

    pub fn append_json(&self, lines: &[u8]) -> Output {
        graven(
            &["log", "append", "--dir", self.dir.to_str().unwrap(), "--key", self.key.to_str().unwrap()],
            lines,
        )
    }

    pub fn verify(&self) -> Output {
        let trust = self.trust.to_str().unwrap();
        graven(&["verify", self.dir.to_str().unwrap(), "--vkey", &self.vkey, "--trust-dir", trust], b"")
    }

    /// A first-use, full verification that remembers nothing.
    pub fn verify_afresh(&self) -> Output {
        graven(&["verify", self.dir.to_str().unwrap(), "--vkey", &self.vkey], b"")
    }
}

pub fn numbered(prefix: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    range.map(|i| format!("{prefix}{i}\n")).collect::<String>().into_bytes()
}

/// A minimal static file server on a free loopback port, serving `dir`. It records the path
/// of every request, in order.
pub fn serve(dir: PathBuf) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req).lines().next().unwrap_or_default().to_owned();
            let path = line.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_owned();
            log.lock().unwrap().push(path.clone());
            // Only canonical tlog paths are served, as a real tile server should.
            let body = tile::parse_path(&path).ok().and_then(|_| std::fs::read(dir.join(&path)).ok());
            let resp = match body {
                Some(b) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&b);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = s.write_all(&resp);
        }
    });
    (format!("http://{addr}/"), requests)
}
