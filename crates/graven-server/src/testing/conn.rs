//! Bytes over time: a connection served by the accept loop's own code over an in-memory stream
//! (no socket), spoken to byte by byte ([`Conn`]) or through TLS and HTTP/1.1 ([`TlsConn`]);
//! and a response whose body is read as it arrives ([`Streaming`]).

#![allow(clippy::panic)] // a harness fails the test at once, saying why

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::runtime::Handle;

use super::request::{Answer, Request};

/// The client's end of a connection the server side serves as it would a TCP connection:
/// TLS handshake if the node has TLS, header deadline, HTTP/1.1.
#[derive(Debug)]
pub struct Conn {
    pub(crate) rt: Handle,
    pub(crate) io: DuplexStream,
}

impl Conn {
    /// Sends bytes as they are.
    #[track_caller]
    pub fn write(&mut self, bytes: &[u8]) {
        let io = &mut self.io;
        self.rt.block_on(async { io.write_all(bytes).await }).unwrap_or_else(|e| panic!("writing: {e}"));
    }

    /// Reads until the server closes the connection, or `within` has passed. Returns what was
    /// read and whether the connection was closed.
    pub fn read_to_end(&mut self, within: Duration) -> (Vec<u8>, bool) {
        let io = &mut self.io;
        let mut out = Vec::new();
        let closed = self.rt.block_on(async {
            let mut buf = [0u8; 4096];
            let deadline = tokio::time::Instant::now() + within;
            loop {
                match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return true,
                    Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                    Err(_) => return false,
                }
            }
        });
        (out, closed)
    }

    /// Reads until what has arrived contains `needle`, the connection closes, or `within` has
    /// passed; returns what arrived.
    pub fn read_until(&mut self, needle: &[u8], within: Duration) -> Vec<u8> {
        let io = &mut self.io;
        let mut out = Vec::new();
        self.rt.block_on(async {
            let mut buf = [0u8; 4096];
            let deadline = tokio::time::Instant::now() + within;
            while !out.windows(needle.len().max(1)).any(|w| w == needle) {
                match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
        });
        out
    }

    /// Makes this a TLS connection (server name `localhost`) and HTTP/1.1 over it. The
    /// handshake, and a refusal of the client's certificate, may fail here or on the first
    /// request (TLS 1.3 clients learn of it only then).
    pub fn into_tls(self, config: Arc<rustls::ClientConfig>) -> std::io::Result<TlsConn> {
        let Conn { rt, io } = self;
        let connector = tokio_rustls::TlsConnector::from(config);
        let name = rustls_pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
        let sender = rt.block_on(async {
            let tls = tokio::time::timeout(Duration::from_secs(30), connector.connect(name, io))
                .await
                .map_err(|_| std::io::Error::other("TLS handshake timed out"))??;
            let (sender, conn) =
                hyper::client::conn::http1::handshake::<_, Body>(hyper_util::rt::TokioIo::new(tls))
                    .await
                    .map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            Ok::<_, std::io::Error>(sender)
        })?;
        Ok(TlsConn { rt, sender })
    }
}

/// HTTP/1.1 over TLS over an in-memory connection.
#[derive(Debug)]
pub struct TlsConn {
    rt: Handle,
    sender: hyper::client::conn::http1::SendRequest<Body>,
}

impl TlsConn {
    /// Sends `req` (its address is the connection's) and reads the whole answer.
    pub fn send(&mut self, req: Request) -> std::io::Result<Answer> {
        let mut http = req.into_http(std::net::Ipv4Addr::LOCALHOST.into());
        http.extensions_mut().clear();
        http.headers_mut().insert("host", axum::http::HeaderValue::from_static("localhost"));
        let sender = &mut self.sender;
        self.rt.block_on(async {
            let within = Duration::from_secs(30);
            let resp = tokio::time::timeout(within, sender.send_request(http))
                .await
                .map_err(|_| std::io::Error::other("no answer"))?
                .map_err(std::io::Error::other)?;
            let (parts, body) = resp.into_parts();
            let body = tokio::time::timeout(within, body.collect())
                .await
                .map_err(|_| std::io::Error::other("the body did not end"))?
                .map_err(std::io::Error::other)?
                .to_bytes();
            Ok(Answer { status: parts.status.as_u16(), headers: parts.headers, body })
        })
    }
}

/// A response whose body is read as it arrives (the live stream).
#[derive(Debug)]
pub struct Streaming {
    pub(crate) rt: Handle,
    pub(crate) status: u16,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: Body,
    /// Everything read so far.
    pub(crate) seen: String,
    pub(crate) ended: bool,
}

impl Streaming {
    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Everything read so far.
    pub fn seen(&self) -> &str {
        &self.seen
    }

    /// Whether the server ended the body.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Reads until what has arrived so far contains `needle`; fails the test if the body ends
    /// first or nothing more arrives within `within`.
    #[track_caller]
    pub fn read_until(&mut self, needle: &str, within: Duration) -> &str {
        let deadline = tokio::time::Instant::now() + within;
        while !self.seen.contains(needle) {
            assert!(!self.ended, "the stream ended before {needle:?}: {}", self.seen);
            assert!(self.next_frame(deadline), "{needle:?} did not arrive within {within:?}: {}", self.seen);
        }
        &self.seen
    }

    /// Reads until the body ends or `within` passes; returns whether it ended.
    pub fn read_to_end(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.ended && self.next_frame(deadline) {}
        self.ended
    }

    /// Reads one frame, unless `deadline` passes first (then `false`).
    fn next_frame(&mut self, deadline: tokio::time::Instant) -> bool {
        let body = &mut self.body;
        let frame = self.rt.block_on(async { tokio::time::timeout_at(deadline, body.frame()).await });
        match frame {
            Err(_) => false,
            Ok(None) | Ok(Some(Err(_))) => {
                self.ended = true;
                true
            }
            Ok(Some(Ok(f))) => {
                if let Some(data) = f.data_ref() {
                    self.seen.push_str(&String::from_utf8_lossy(data));
                }
                true
            }
        }
    }
}
