//! AWS requires a checksum on every write to a bucket with Object Lock: "Content-MD5 or
//! x-amz-sdk-checksum-algorithm header is required for any request to upload an object with a
//! retention period configured using Amazon S3 Object Lock" (S3 User Guide, "Locking objects
//! with Object Lock"), and a bucket with a default retention period makes every write such a
//! request. SeaweedFS does not check this, so this test's own S3 endpoint does: it records every
//! request the store sends, decodes its body (plain, or `aws-chunked` with trailers), and checks
//! that each write carries a SHA-256 checksum, as a header or a trailer, equal to the SHA-256 of
//! the bytes it wrote, for writes with retention and without (a tile in a bucket whose default
//! retention applies), conditional or not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graven_s3::{Retention, RetentionMode, S3Config, S3Store};
use graven_tlog::{Cond, ObjectStore};

/// One request as the endpoint saw it: method, path, headers (names lowercased), decoded body,
/// and the trailers of an `aws-chunked` body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    trailers: BTreeMap<String, String>,
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line.trim_end_matches(['\r', '\n']).to_owned()
}

/// Decodes an `aws-chunked` body: `<hex size>[;chunk-signature=...]\r\n<data>\r\n` ... a zero
/// chunk, then trailer lines `name:value` up to a blank line.
fn aws_chunked(raw: &[u8]) -> (Vec<u8>, BTreeMap<String, String>) {
    let mut r = BufReader::new(raw);
    let mut body = Vec::new();
    let mut trailers = BTreeMap::new();
    loop {
        let line = read_line(&mut r);
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        let mut chunk = vec![0; size];
        r.read_exact(&mut chunk).unwrap();
        body.extend_from_slice(&chunk);
        assert_eq!(read_line(&mut r), "");
    }
    loop {
        let line = read_line(&mut r);
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').unwrap();
        trailers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    (body, trailers)
}

/// An S3 endpoint on a loopback port that records every request and answers each write 200
/// with an ETag.
fn endpoint() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let stream = stream.unwrap();
            let log = log.clone();
            std::thread::spawn(move || {
                let mut w = stream.try_clone().unwrap();
                let mut r = BufReader::new(stream);
                loop {
                    let start = read_line(&mut r);
                    if start.is_empty() {
                        return;
                    }
                    let mut parts = start.split(' ');
                    let (method, path) = (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned());
                    let mut headers = BTreeMap::new();
                    loop {
                        let line = read_line(&mut r);
                        if line.is_empty() {
                            break;
                        }
                        let (k, v) = line.split_once(':').unwrap();
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                    let mut raw = Vec::new();
                    if let Some(n) = headers.get("content-length") {
                        raw = vec![0; n.parse().unwrap()];
                        r.read_exact(&mut raw).unwrap();
                    } else if headers.get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
                        // HTTP chunked framing around the body.
                        loop {
                            let size =
                                usize::from_str_radix(read_line(&mut r).split(';').next().unwrap(), 16)
                                    .unwrap();
                            if size == 0 {
                                while !read_line(&mut r).is_empty() {}
                                break;
                            }
                            let mut c = vec![0; size];
                            r.read_exact(&mut c).unwrap();
                            raw.extend_from_slice(&c);
                            read_line(&mut r);
                        }
                    }
                    let aws = headers.get("content-encoding").is_some_and(|e| e.contains("aws-chunked"));
                    let (body, trailers) = if aws { aws_chunked(&raw) } else { (raw, BTreeMap::new()) };
                    log.lock().unwrap().push(Seen { method, path, headers, body, trailers });
                    w.write_all(
                        b"HTTP/1.1 200 OK\r\nETag: \"0123456789abcdef\"\r\nContent-Length: 0\r\n\r\n",
                    )
                    .unwrap();
                }
            });
        }
    });
    (url, seen)
}

fn sha256_b64(data: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(data))
}

#[test]
fn every_write_carries_the_sha256_of_its_bytes() {
    let (url, seen) = endpoint();
    let cfg = S3Config {
        bucket: "locked".into(),
        prefix: "audit/main".into(),
        endpoint: Some(url),
        region: "us-east-1".into(),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test-secret".into()),
        session_token: None,
        path_style: true,
        retention: Some(Retention { mode: RetentionMode::Compliance, period: Duration::from_secs(86_400) }),
    };
    let store = S3Store::connect(cfg).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let writes: [(&str, &[u8], Cond<'_>, bool); 4] = [
        ("head", b"a head", Cond::IfAbsent, true),
        ("tile/0/000", &big, Cond::Any, false),
        ("checkpoint", b"a checkpoint\n", Cond::IfMatch("\"0123456789abcdef\""), true),
        ("tile/entries/000", b"", Cond::IfAbsent, false),
    ];
    for (key, data, cond, retain) in writes {
        store.put(key, data, cond, retain).unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let puts: Vec<&Seen> = seen.iter().filter(|s| s.method == "PUT").collect();
    assert_eq!(puts.len(), 4, "{seen:#?}");
    for ((key, data, _, retain), put) in writes.iter().zip(&puts) {
        let path = put.path.split('?').next().unwrap();
        assert!(path.ends_with(&format!("/locked/audit/main/{key}")), "{}", put.path);
        assert_eq!(put.body, *data, "{key}: the bytes written");
        let want = sha256_b64(data);
        let header = put.headers.get("x-amz-checksum-sha256");
        let trailer = put.trailers.get("x-amz-checksum-sha256");
        assert!(
            header == Some(&want) || trailer == Some(&want),
            "{key}: no SHA-256 checksum of the bytes (header {header:?}, trailer {trailer:?}, headers {:?})",
            put.headers
        );
        if trailer.is_some() {
            assert_eq!(
                put.headers.get("x-amz-trailer").map(String::as_str),
                Some("x-amz-checksum-sha256"),
                "{key}"
            );
        }
        assert_eq!(
            put.headers.get("x-amz-sdk-checksum-algorithm").map(String::as_str),
            Some("SHA256"),
            "{key}: {:?}",
            put.headers
        );
        assert_eq!(put.headers.contains_key("x-amz-object-lock-mode"), *retain, "{key}");
        if *retain {
            assert_eq!(put.headers["x-amz-object-lock-mode"], "COMPLIANCE");
            assert!(put.headers.contains_key("x-amz-object-lock-retain-until-date"));
        }
    }
}
