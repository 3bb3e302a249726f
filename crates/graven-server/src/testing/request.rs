//! What a test sends ([`Request`], built fluently) and what it gets back ([`Answer`], checked
//! fluently). Failures name the status and the body, at the caller's line.

#![allow(clippy::panic)] // a harness fails the test at once, saying why

use std::net::IpAddr;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A request to the API: method, path and query, headers, body, and the client's address.
#[derive(Debug)]
pub struct Request {
    pub(crate) method: Method,
    pub(crate) uri: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Body,
    pub(crate) peer: Option<IpAddr>,
}

impl Request {
    /// `method` is any token (`PATCH`, `OPTIONS`, even one the API does not know).
    #[track_caller]
    pub fn new(method: &str, uri: impl Into<String>) -> Request {
        let method = Method::from_bytes(method.as_bytes()).unwrap_or_else(|e| panic!("{method}: {e}"));
        Request { method, uri: uri.into(), headers: HeaderMap::new(), body: Body::empty(), peer: None }
    }

    /// `Authorization: Bearer <token>` (an API key or a JWT).
    pub fn bearer(self, token: &str) -> Request {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Adds a header (several with the same name are all sent).
    #[track_caller]
    pub fn header(mut self, name: &str, value: &str) -> Request {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let value = HeaderValue::from_str(value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
        self.headers.append(name, value);
        self
    }

    /// A JSON body (`application/json`), written as given: a `serde_json::Value`, or text.
    pub fn json(self, body: impl std::fmt::Display) -> Request {
        self.body("application/json", body.to_string())
    }

    /// An NDJSON batch (`application/x-ndjson`), written as given.
    pub fn ndjson(self, body: impl Into<String>) -> Request {
        self.body("application/x-ndjson", body.into())
    }

    /// Any bytes, with a content type.
    pub fn body(mut self, content_type: &str, bytes: impl Into<Bytes>) -> Request {
        self.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("")),
        );
        self.body = Body::from(bytes.into());
        self
    }

    /// A body that arrives as the stream yields it: in parts, slowly, never, or cut off by an
    /// error (no content type is set).
    pub fn stream<S>(mut self, stream: S) -> Request
    where
        S: futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        self.body = Body::from_stream(stream);
        self
    }

    /// The client's address, as the accept loop records it (default: 127.0.0.1).
    pub fn from(mut self, ip: impl Into<IpAddr>) -> Request {
        self.peer = Some(ip.into());
        self
    }

    /// The `http` request, with the client's address in its extensions as the accept loop
    /// puts it there.
    #[track_caller]
    pub(crate) fn into_http(self, default_peer: IpAddr) -> axum::http::Request<Body> {
        let mut req = axum::http::Request::builder()
            .method(self.method)
            .uri(self.uri.as_str())
            .body(self.body)
            .unwrap_or_else(|e| panic!("{}: {e}", self.uri));
        *req.headers_mut() = self.headers;
        req.extensions_mut().insert(crate::http::Peer(self.peer.unwrap_or(default_peer)));
        req
    }
}

/// A response, read in full.
#[derive(Debug, Clone)]
pub struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    /// Fails the test unless the status is `status`.
    #[track_caller]
    pub fn expect(self, status: u16) -> Answer {
        assert_eq!(self.status, status, "expected {status}, got {}: {}", self.status, self.text());
        self
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// A header's value, if it is there and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Content-Type`, or "".
    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or_default()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    /// The body as one of the API's types (`graven_api::LogInfo`, ...).
    #[track_caller]
    pub fn typed<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not a {}: {e}: {}", std::any::type_name::<T>(), self.text()))
    }

    /// An NDJSON body, one JSON value per line.
    #[track_caller]
    pub fn lines(&self) -> Vec<Value> {
        self.text().lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }

    /// Fails the test unless this is an RFC 9457 problem document of type `slug` whose
    /// `status` is the response's; returns the document.
    #[track_caller]
    pub fn problem(&self, slug: &str) -> Value {
        assert_eq!(self.content_type(), "application/problem+json", "{}: {}", self.status, self.text());
        let p = self.json();
        assert_eq!(p["status"], self.status, "the problem's status is the response's: {p}");
        let kind = p["type"].as_str().unwrap_or_default();
        assert_eq!(kind.rsplit('/').next(), Some(slug), "{p}");
        p
    }

    /// The problem's `detail`, after checking it is a problem document whose `status` is the
    /// response's (of any type).
    #[track_caller]
    pub fn detail(&self) -> String {
        assert_eq!(self.content_type(), "application/problem+json", "{}: {}", self.status, self.text());
        let p = self.json();
        assert_eq!(p["status"], self.status, "the problem's status is the response's: {p}");
        p["detail"].as_str().unwrap_or_default().to_owned()
    }
}
