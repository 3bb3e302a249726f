//! Loopback networking for tests: free ports, an address nobody listens on, and a small
//! HTTP/1.1 server that answers each request with a closure and records what it was asked.
//! Loopback only (127.0.0.1).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request head the server reads.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body the server reads.
const MAX_BODY: usize = 16 << 20;

/// A loopback address that nothing listens on (a port the OS handed out, then closed).
pub fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding a loopback port: {e}"));
    l.local_addr().unwrap_or_else(|e| panic!("a bound port's address: {e}"))
}

/// `http://<dead_addr>/`: a URL whose connections are refused.
pub fn dead_url() -> String {
    format!("http://{}/", dead_addr())
}

/// `n` distinct free loopback ports, each with `companion` above it free too when given
/// (SeaweedFS puts each server's gRPC port 10,000 above its HTTP port). The ports are held
/// while they are chosen, then let go: another process could take one before the caller binds
/// it, so a caller that starts a server on them retries on failure.
pub fn free_ports(n: usize, companion: Option<u16>) -> Result<Vec<u16>, String> {
    let mut held = Vec::new();
    let mut ports: Vec<u16> = Vec::new();
    for _ in 0..200 {
        if ports.len() == n {
            return Ok(ports);
        }
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding a loopback port: {e}"))?;
        let p = l.local_addr().map_err(|e| e.to_string())?.port();
        let Some(off) = companion else {
            held.push(l);
            ports.push(p);
            continue;
        };
        let Some(g) = p.checked_add(off) else { continue };
        if ports.iter().any(|&q| q == g || q.checked_add(off) == Some(p)) {
            continue;
        }
        let Ok(gl) = TcpListener::bind(("127.0.0.1", g)) else { continue };
        held.push(l);
        held.push(gl);
        ports.push(p);
    }
    Err(format!("found only {} of {n} free ports", ports.len()))
}

/// A request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent (`/tile/0/000?x=1`).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value (the first of that name, any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What the handler answers. Every answer carries `Content-Length` and `Connection: close`.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// `status` with an empty body.
    pub fn status(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    /// 200 with `body`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Response {
        Response::status(200).body(body)
    }

    /// 404, empty.
    pub fn not_found() -> Response {
        Response::status(404)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }
}

/// A running [`serve`]r. It lives as long as the test process (its thread is never joined).
#[derive(Debug, Clone)]
pub struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The target of every request so far, in the order they were read.
    pub fn requests(&self) -> Arc<Mutex<Vec<String>>> {
        self.requests.clone()
    }
}

/// Serves `handler` over HTTP/1.1 on a free loopback port: one thread per connection, one
/// request per connection, then the connection closes. A request the server cannot read (no
/// head within 10 s, a head over 64 KiB, a body over 16 MiB) is answered 400 without calling
/// the handler. If the handler panics, that connection closes unanswered.
pub fn serve(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
    let listener =
        TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding a loopback port: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("a bound port's address: {e}"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (log, handler) = (requests.clone(), Arc::new(handler));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (log, handler) = (log.clone(), handler.clone());
            std::thread::spawn(move || answer(conn, &log, &*handler));
        }
    });
    Server { addr, requests }
}

fn answer(mut conn: TcpStream, log: &Mutex<Vec<String>>, handler: &dyn Fn(&Request) -> Response) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let resp = match read_request(&conn) {
        Ok(req) => {
            log.lock().unwrap_or_else(|p| p.into_inner()).push(req.path.clone());
            handler(&req)
        }
        Err(why) => Response::status(400).body(why),
    };
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (n, v) in &resp.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", resp.body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&resp.body);
    let _ = conn.write_all(&bytes);
    let _ = conn.flush();
}

fn read_request(conn: &TcpStream) -> Result<Request, String> {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    let mut head = 0;
    let mut next = |line: &mut String| -> Result<(), String> {
        line.clear();
        let n = reader.by_ref().take((MAX_HEAD - head) as u64).read_line(line).map_err(|e| e.to_string())?;
        head += n;
        if n == 0 || head >= MAX_HEAD {
            return Err("the request head ended early or is too long".into());
        }
        Ok(())
    };
    next(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        next(&mut line)?;
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut req = Request { method, path, headers, body: Vec::new() };
    let len: usize = req.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    if len > MAX_BODY {
        return Err(format!("a body of {len} bytes is over the limit"));
    }
    req.body = vec![0; len];
    reader.read_exact(&mut req.body).map_err(|e| format!("reading the body: {e}"))?;
    Ok(req)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
