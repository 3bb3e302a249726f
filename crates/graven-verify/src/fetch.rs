//! Where a log's files come from: a directory or an HTTP(S) base URL.

use std::io;
use std::path::PathBuf;

use graven_core::tile::{self, TILE_WIDTH};

/// The path of the log's checkpoint (C2SP tlog-tiles).
pub(crate) const CHECKPOINT: &str = "checkpoint";
/// Where a Graven log keeps its time-stamp tokens (see `timestamps`).
pub const TIMESTAMP_DIR: &str = "graven/timestamp/";
/// Largest hash tile: 256 hashes of 32 bytes.
pub const MAX_TILE_BYTES: u64 = TILE_WIDTH * 32;
/// Largest entry bundle: 256 entries of at most 65,535 bytes, each with a 2-byte length.
pub const MAX_BUNDLE_BYTES: u64 = TILE_WIDTH * (2 + tile::MAX_ENTRY_SIZE as u64);

/// Why a file could not be fetched (as opposed to not existing).
///
/// [`FetchError::TooLarge`] says the file is there but cannot be what the log should hold;
/// every other variant says the file could not be read at all (see [`FetchError::is_outage`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{path} is larger than the {limit}-byte limit for that kind of file")]
    TooLarge { path: String, limit: u64 },
    /// The request or the transfer failed (connection refused, timeout, TLS, a cut body).
    #[error("HTTP: {0}")]
    Http(String),
    /// The server answered, but with neither the file (200) nor "no such file" (404, 410):
    /// 401 or 403 (a credential is needed), 429, 5xx, ...
    #[error("GET {url}: HTTP status {status}{}", status_hint(*.status))]
    Status { url: String, status: u16 },
    /// A source other than the ones here (an object store) failed.
    #[error("{0}")]
    Other(String),
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => " (the server refuses to serve the log without a valid credential)",
        429 | 503 => " (the server is overloaded or down)",
        500..=599 => " (the server failed)",
        _ => "",
    }
}

impl FetchError {
    /// Whether this only says the file could not be read (the network, the server, a
    /// credential, the disk), as opposed to saying something about its contents.
    pub fn is_outage(&self) -> bool {
        !matches!(self, FetchError::TooLarge { .. })
    }
}

/// A source of a tiled log's files, by path relative to the log's root (`checkpoint`,
/// `tile/0/000`, ...). `Ok(None)` means the file does not exist.
pub trait Fetch {
    fn fetch(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError>;
    /// Where the files come from, for messages.
    fn location(&self) -> String;
    /// The tree sizes of the checkpoints with a time-stamp token
    /// (`graven/timestamp/<size, 20 digits>`) in `after + 1 ..= until`, in increasing order, at
    /// most `limit`; `Ok(None)` if this source cannot list them (only the token of the
    /// checkpoint being verified is then looked for).
    fn stamped_sizes(
        &mut self,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Option<Vec<u64>>, FetchError> {
        let _ = (after, until, limit);
        Ok(None)
    }
    /// A hint: these files (path, size limit) will be asked for next, in this order. A source
    /// that can fetch several at once may start some of them now, within its own bound; what
    /// [`Fetch::fetch`] returns is the same either way. Default: nothing.
    fn prefetch(&mut self, upcoming: &[(String, u64)]) {
        let _ = upcoming;
    }
}

/// The size a token file is named after: exactly 20 ASCII digits.
pub(crate) fn parse_size_name(name: &str) -> Option<u64> {
    if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// A log in a local directory.
#[derive(Debug, Clone)]
pub struct DirFetch {
    root: PathBuf,
}

impl DirFetch {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirFetch { root: root.into() }
    }
}

impl Fetch for DirFetch {
    fn fetch(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let full = self.root.join(path);
        let f = match std::fs::File::open(&full) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let len = f.metadata()?.len();
        if len > limit {
            return Err(FetchError::TooLarge { path: path.to_owned(), limit });
        }
        // Sized from the metadata, so the common case is one read call plus the EOF check.
        let mut buf = Vec::with_capacity(len as usize + 1);
        io::Read::read_to_end(&mut io::Read::take(f, limit + 1), &mut buf)?;
        if buf.len() as u64 > limit {
            return Err(FetchError::TooLarge { path: path.to_owned(), limit });
        }
        Ok(Some(buf))
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn stamped_sizes(
        &mut self,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Option<Vec<u64>>, FetchError> {
        let dir = self.root.join(TIMESTAMP_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(Vec::new())),
            Err(e) => return Err(e.into()),
        };
        let mut sizes = Vec::new();
        for e in entries {
            let name = e?.file_name();
            if let Some(s) = name.to_str().and_then(parse_size_name).filter(|s| *s > after && *s <= until) {
                sizes.push(s);
            }
        }
        sizes.sort_unstable();
        sizes.truncate(limit);
        Ok(Some(sizes))
    }
}

/// Why a request to `url` got no HTTP answer, said as its usual cause: nothing listening, a
/// plain-HTTP server asked over https://, a TLS server asked over http://, a name that does
/// not resolve, a server that does not answer in time. Anything else is said as it is.
#[cfg(feature = "http")]
pub fn explain_request_error(url: &str, e: &ureq::Error) -> String {
    let https = url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    let swap = |to: &str| match url.split_once("://") {
        Some((_, rest)) => format!("{to}://{}", rest.split('/').next().unwrap_or(rest)),
        None => url.to_owned(),
    };
    let text = e.to_string();
    let tls_mismatch = matches!(e, ureq::Error::Rustls(_) | ureq::Error::Tls(_))
        || text.contains("corrupt message")
        || text.contains("InvalidContentType");
    match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "nothing answers at {url} (connection refused): is `graven serve` running there, on that address and port?"
        ),
        ureq::Error::HostNotFound => format!("the host of {url} was not found (DNS): check the name"),
        ureq::Error::Timeout(_) => format!("{url} did not answer in time ({text})"),
        _ if https && tls_mismatch => format!(
            "{url}: the server does not speak TLS ({text}); if it serves plain HTTP, use {}",
            swap("http")
        ),
        ureq::Error::Io(io)
            if !https
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                ) =>
        {
            format!(
                "{url}: the connection ended without an HTTP answer ({text}); if the server uses TLS, use {}",
                swap("https")
            )
        }
        ureq::Error::Protocol(_) if !https => {
            format!("{url}: the answer is not HTTP ({text}); if the server uses TLS, use {}", swap("https"))
        }
        _ => format!("{url}: {text}"),
    }
}

#[cfg(feature = "http")]
/// A log served over HTTP or HTTPS (the C2SP tlog-tiles read path).
#[derive(Debug)]
pub struct HttpFetch {
    base: String,
    agent: ureq::Agent,
    /// `Authorization` header value sent with every request, if any.
    authorization: Option<String>,
    /// Requests made so far, for tests and `--json` output.
    pub requests: u64,
    /// Most requests [`Fetch::prefetch`] keeps in flight (0: one request at a time).
    ahead: usize,
    /// Requests started ahead, oldest first, each with where its answer will arrive.
    inflight: std::collections::VecDeque<Pending>,
}

#[cfg(feature = "http")]
type Answer = Result<Option<Vec<u8>>, FetchError>;

#[cfg(feature = "http")]
#[derive(Debug)]
struct Pending {
    path: String,
    limit: u64,
    answer: std::sync::mpsc::Receiver<Answer>,
}

/// How many requests `HttpFetch` keeps in flight by default while a verifier walks the log.
pub const DEFAULT_FETCH_AHEAD: usize = 16;

#[cfg(feature = "http")]
impl HttpFetch {
    /// `base` is the log's prefix URL; a trailing slash is added if missing.
    pub fn new(base: &str) -> Self {
        let mut base = base.to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .http_status_as_error(false)
            .user_agent(concat!("graven-verify/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        HttpFetch {
            base,
            agent,
            authorization: None,
            requests: 0,
            ahead: DEFAULT_FETCH_AHEAD,
            inflight: std::collections::VecDeque::new(),
        }
    }

    /// Keeps at most `n` requests in flight ahead of the walk (0: one request at a time).
    pub fn with_fetch_ahead(mut self, n: usize) -> Self {
        self.ahead = n;
        self
    }

    /// One GET, on any thread.
    fn get(agent: &ureq::Agent, url: &str, authorization: Option<&str>, path: &str, limit: u64) -> Answer {
        let mut req = agent.get(url);
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        let mut resp = req.call().map_err(|e| FetchError::Http(explain_request_error(url, &e)))?;
        match resp.status().as_u16() {
            200 => {}
            404 | 410 => return Ok(None),
            status => return Err(FetchError::Status { url: url.to_owned(), status }),
        }
        let body = resp.body_mut().with_config().limit(limit).read_to_vec().map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge { path: path.to_owned(), limit },
            e => FetchError::Http(format!("GET {url}: {e}")),
        })?;
        Ok(Some(body))
    }

    /// Sends `Authorization: Bearer <token>` with every request (a server that guards its
    /// read path; public tile mirrors need none).
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.authorization = Some(format!("Bearer {token}"));
        self
    }
}

#[cfg(feature = "http")]
impl Fetch for HttpFetch {
    fn fetch(&mut self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, FetchError> {
        // An answer already on its way (with the same or a larger limit, checked again here).
        if let Some(pos) = self.inflight.iter().position(|p| p.path == path) {
            // Requests started before this one and not asked for are abandoned (the walk
            // moved on); their threads finish on their own.
            let pending = self.inflight.drain(..=pos).next_back();
            if let Some(p) = pending.filter(|p| p.limit == limit)
                && let Ok(answer) = p.answer.recv()
            {
                return answer;
            }
        }
        let url = format!("{}{}", self.base, path);
        self.requests += 1;
        Self::get(&self.agent, &url, self.authorization.as_deref(), path, limit)
    }

    fn prefetch(&mut self, upcoming: &[(String, u64)]) {
        for (path, limit) in upcoming {
            if self.inflight.len() >= self.ahead {
                break;
            }
            if self.inflight.iter().any(|p| &p.path == path) {
                continue;
            }
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let (agent, auth) = (self.agent.clone(), self.authorization.clone());
            let (url, p, l) = (format!("{}{}", self.base, path), path.clone(), *limit);
            let started = std::thread::Builder::new().name("graven-fetch".into()).spawn(move || {
                let _ = tx.send(Self::get(&agent, &url, auth.as_deref(), &p, l));
            });
            if started.is_err() {
                break; // no thread to be had: the walk fetches it itself
            }
            self.requests += 1;
            self.inflight.push_back(Pending { path: path.clone(), limit: *limit, answer: rx });
        }
    }

    fn location(&self) -> String {
        self.base.clone()
    }

    /// `GET <base>v1/timestamps` (Graven's server); `None` where the server has no such route
    /// (a plain tile server).
    fn stamped_sizes(
        &mut self,
        after: u64,
        until: u64,
        limit: usize,
    ) -> Result<Option<Vec<u64>>, FetchError> {
        let path = format!("v1/timestamps?after={after}&until={until}&limit={limit}");
        let Some(body) = self.fetch(&path, 64 << 10)? else { return Ok(None) };
        let bad = |why: &str| FetchError::Http(format!("GET {}{path}: {why}", self.base));
        let value = graven_core::jcs::parse(&body).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let sizes = match value {
            graven_core::jcs::Value::Object(members) => {
                members.into_iter().find(|(k, _)| k == "sizes").map(|(_, v)| v)
            }
            _ => None,
        };
        let Some(graven_core::jcs::Value::Array(items)) = sizes else {
            return Err(bad("expected {\"sizes\":[...]}"));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                graven_core::jcs::Value::Number(n)
                    if n.fract() == 0.0
                        && n > after as f64
                        && n <= until as f64
                        && n < 9.007_199_254_740_992e15 =>
                {
                    out.push(n as u64);
                }
                _ => return Err(bad("a size that is not an integer in the range asked for")),
            }
        }
        if out.len() > limit || out.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("more sizes than asked for, or not in increasing order"));
        }
        Ok(Some(out))
    }
}
