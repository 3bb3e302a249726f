//! Sources that arrive on their own TCP listener rather than over HTTP: syslog
//! (`syslog`) and OpenBao's `socket` audit device (`openbao_socket`). What a
//! source speaks (how frames are cut from the byte stream, what record a frame is) is its
//! [`Protocol`]; everything else is here, shared:
//!
//! - the accept loop, bounded by `max_connections`, until the server drains ([`serve`]);
//! - a connection's attester: the client certificate its TLS handshake verified, else the
//!   listener's configured source identity, looked up again before every commit (a disabled or
//!   revoked identity ends the connection) ([`accepted`]);
//! - a connection is read no faster than it is logged: the complete frames buffered are
//!   committed (all or none, [`crate::http::sources::report`]'s pipeline) before the
//!   connection is read again, and while the log pushes back the connection is not read at
//!   all (TCP backpressure, never a drop). What is buffered is bounded by the longest frame
//!   (`max_frame_bytes`) and one read. A frame that cannot be logged (malformed, longer than
//!   the limit, a subject outside the grant) closes the connection once the frames before it
//!   are committed; nothing of it is logged ([`connection`]).
//!
//! Neither protocol has an acknowledgement: a sender learns of a failure only when the
//! connection closes or stops being read, so what it wrote into a connection the server then
//! lost (a crash before the commit) is lost unseen by the sender. docs/sources.md says so for
//! each source, and which form (HTTP) acknowledges.

pub mod lines;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use graven_auth::mtls::ClientCert;
use graven_auth::principal::{Actor, Denial, Principal};
use graven_auth::registry::Registry;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::StreamSetup;
use crate::http::AppState;
use crate::http::audit::{self, Refusal};
use crate::http::sources::report::{Batch, Record};
use crate::metrics::StreamCounters;
use crate::problem::Problem;

/// Bytes asked of the socket per read, besides room for one whole frame.
const READ_CHUNK: usize = 64 << 10;
/// Most frames in one commit.
const MAX_BATCH: usize = 4096;
/// How long a TLS client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause between two attempts while the log pushes back.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One frame found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame's content: `buf[msg]`.
    pub msg: std::ops::Range<usize>,
    /// Bytes of the buffer the frame takes, framing included.
    pub consumed: usize,
}

/// What a listener's source speaks.
pub trait Protocol: Send + Sync + 'static {
    /// The platform: the source grant's type, `details.<platform>`.
    fn platform(&self) -> &'static str;
    /// The configuration section (`[syslog]`), named in messages.
    fn section(&self) -> &'static str;
    /// The `route` of the refusals recorded for this listener.
    fn route(&self) -> &'static str;
    /// What a frame is called in messages (`message`, `entry`).
    fn frame_name(&self) -> &'static str;
    /// The first frame of `buf`: `Ok(None)` while it is incomplete (read more), never longer
    /// than `max` bytes; `Err` says why the stream cannot be read (the connection is closed).
    fn next_frame(&self, buf: &[u8], max: usize) -> Result<Option<Frame>, String>;
    /// Frame `n` (1-based, of the connection) as a record: `Ok(None)` for one this source
    /// skips; `Err` says why it cannot be logged, naming the frame.
    fn record<'a>(&self, n: u64, frame: &'a [u8], peer: IpAddr) -> Result<Option<Record<'a>>, String>;
    /// Its counters.
    fn counters<'m>(&self, metrics: &'m crate::metrics::Metrics) -> &'m StreamCounters;
}

/// Who attests a connection's frames.
#[derive(Debug, Clone)]
pub enum Attester {
    /// The client certificate the TLS handshake verified.
    Certificate(Arc<ClientCert>),
    /// The listener's configured source identity (a connection without a certificate).
    Listener { identity: String, listen: SocketAddr },
}

/// How a connection ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ended {
    /// Frames logged.
    pub logged: u64,
    /// Frames already logged (by their platform's id), not logged again.
    pub duplicates: u64,
    /// Frames the source skips (OpenBao: an entry of a type not asked for, the device's test
    /// entry; a blank line).
    pub skipped: u64,
    /// Why the server closed it (`None`: the sender closed it, or the server drains).
    pub error: Option<String>,
}

/// Checks at start-up that `identity` can attest `protocol`'s frames: a registered `source`
/// identity whose grant names the platform. (Whether it is active is looked up per
/// connection.)
pub fn check_identity<P: Protocol>(protocol: &P, registry: &Registry, identity: &str) -> Result<(), String> {
    let (section, platform) = (protocol.section(), protocol.platform());
    let Some(r) = registry.get(identity) else {
        return Err(format!(
            "{section} identity {identity:?} is not registered: create it with `graven identity create {identity} --kind integration --owner <team> --role source --source-type {platform} --subject '<pattern>'`, then start again"
        ));
    };
    if r.role != graven_auth::identity::Role::Source {
        return Err(format!(
            "{section} identity {identity:?} has the {} role; it must have the source role",
            r.role.as_str()
        ));
    }
    if !r.source.as_ref().is_some_and(|g| g.allows_type(platform)) {
        return Err(format!("{section} identity {identity:?}: its source grant does not name {platform}"));
    }
    Ok(())
}

/// The accept loop, until the server drains: at most `max_connections` at once (more are
/// closed at once), each served by [`accepted`]. Returns once every connection has ended.
pub async fn serve<P: Protocol>(
    protocol: Arc<P>,
    listener: tokio::net::TcpListener,
    setup: StreamSetup,
    state: Arc<AppState>,
    tls: Option<crate::tls::TlsServer>,
) {
    let listen = listener.local_addr().unwrap_or(setup.listen);
    let permits = Arc::new(tokio::sync::Semaphore::new(setup.max_connections));
    let mut draining = state.draining.subscribe();
    let mut tasks = tokio::task::JoinSet::new();
    let setup = Arc::new(setup);
    let platform = protocol.platform();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = drained(&mut draining) => break,
        };
        while tasks.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, platform, "too many connections (max_connections); closed this one");
            continue;
        };
        let (state, setup, tls, protocol) = (state.clone(), setup.clone(), tls.clone(), protocol.clone());
        tasks.spawn(async move {
            let ended = accepted(&*protocol, stream, peer, listen, &state, &setup, tls.as_ref()).await;
            drop(permit);
            match &ended.error {
                Some(e) => {
                    tracing::warn!(peer = %peer, platform, logged = ended.logged, error = %e, "source connection closed")
                }
                None => tracing::debug!(peer = %peer, platform, logged = ended.logged, "source connection ended"),
            }
        });
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

/// One accepted connection (a TCP stream, or an in-memory one in tests): its TLS handshake
/// when configured, its attester (the client certificate, else the listener's identity; a
/// connection with neither is closed), then [`connection`].
pub async fn accepted<P: Protocol, S>(
    protocol: &P,
    stream: S,
    peer: SocketAddr,
    listen: SocketAddr,
    st: &AppState,
    setup: &StreamSetup,
    tls: Option<&crate::tls::TlsServer>,
) -> Ended
where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let section = protocol.section();
    let listener = setup.identity.clone().map(|identity| Attester::Listener { identity, listen });
    let closed = |why: String| Ended { error: Some(why), ..Ended::default() };
    match tls.filter(|_| setup.tls) {
        None => match listener {
            Some(a) => connection(protocol, stream, peer, a, st, setup.max_frame_bytes).await,
            None => closed(format!("no {section} identity attests a connection without TLS")),
        },
        Some(tls) => {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return closed(format!("the TLS handshake failed: {e}")),
                Err(_) => return closed("the TLS handshake took longer than 10 s".to_owned()),
            };
            let cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| tls.client_cas.client_cert(chain))
                .map(|c| Attester::Certificate(Arc::new(c)));
            match cert.or(listener) {
                Some(a) => connection(protocol, stream, peer, a, st, setup.max_frame_bytes).await,
                None => closed(format!(
                    "a TLS connection without a client certificate, and no {section} identity"
                )),
            }
        }
    }
}

/// Returns once the server drains.
async fn drained(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|d| *d).await;
}

/// The principal behind `who`, looked up now (a disabled or revoked identity is refused).
fn authenticate<P: Protocol>(protocol: &P, st: &AppState, who: &Attester) -> Result<Arc<Principal>, Denial> {
    let now = st.now_ms();
    match who {
        Attester::Certificate(cert) => {
            graven_auth::mtls::authenticate(cert, &st.live().spiffe_ids, &st.registry, now)
        }
        Attester::Listener { identity, listen } => {
            let platform = protocol.platform();
            let credential = format!("{platform}-listener:{listen}");
            st.registry.federated(
                identity,
                &credential,
                |kind| Actor {
                    id: identity.clone(),
                    kind: kind.as_str().into(),
                    credential: credential.clone(),
                    auth: format!("{platform}_listener"),
                    extra: Vec::new(),
                },
                None,
                now,
            )
        }
    }
}

async fn refuse<P: Protocol>(
    protocol: &P,
    st: &AppState,
    who: Option<&Principal>,
    reason: &'static str,
    peer: SocketAddr,
) {
    let r = Refusal {
        who,
        claimed_key: None,
        claimed_identity: None,
        reason,
        route: protocol.route(),
        attempted_action: None,
        peer: Some(peer.ip()),
    };
    audit::denied(st, r).await;
}

/// Serves one connection (TCP, TLS, or an in-memory stream in tests) until it closes, fails
/// or the server drains: reads frames, and commits the complete ones before reading again.
pub async fn connection<P: Protocol, S: AsyncRead + Unpin>(
    protocol: &P,
    stream: S,
    peer: SocketAddr,
    who: Attester,
    st: &AppState,
    max_frame: usize,
) -> Ended {
    let ended = serve_connection(protocol, stream, peer, who, st, max_frame).await;
    if ended.error.is_some() {
        protocol.counters(&st.metrics).closed.inc();
    }
    ended
}

async fn serve_connection<P: Protocol, S: AsyncRead + Unpin>(
    protocol: &P,
    mut stream: S,
    peer: SocketAddr,
    who: Attester,
    st: &AppState,
    max_frame: usize,
) -> Ended {
    let mut ended = Ended::default();
    let principal = match authenticate(protocol, st, &who) {
        Ok(p) => p,
        Err(d) => {
            refuse(protocol, st, d.principal().map(|p| &**p), d.reason(), peer).await;
            ended.error = Some(d.message());
            return ended;
        }
    };
    let mut draining = st.draining.subscribe();
    let cap = max_frame + 16 + READ_CHUNK;
    let mut buf: Vec<u8> = Vec::with_capacity(cap);
    // A batch the pool could never take would be pushed back for ever: stay within it.
    let cfg = st.engine.config();
    let max_limit = MAX_BATCH.min(cfg.max_batch_events).min(cfg.max_pending_events).max(1);
    let max_bytes = (cfg.max_batch_bytes.min(cfg.max_pending_bytes) / 4).max(1);
    let mut limit = max_limit;
    let mut backoff = Duration::from_millis(20);
    loop {
        // Every complete frame buffered is committed before the connection is read again.
        loop {
            let (frames, framing) = frames(protocol, &buf, max_frame, limit, max_bytes);
            if frames.is_empty() {
                if let Some(e) = framing {
                    ended.error =
                        Some(format!("{e}; the connection is closed and nothing of that frame is logged"));
                    return ended;
                }
                break;
            }
            if !st.registry.still_valid(&principal, st.now_ms()) {
                refuse(protocol, st, Some(&principal), "identity-not-active", peer).await;
                ended.error = Some(format!(
                    "identity {} may no longer attest {} frames (disabled, revoked or changed)",
                    principal.identity,
                    protocol.platform()
                ));
                return ended;
            }
            let seen = ended.logged + ended.duplicates + ended.skipped;
            match commit(protocol, st, &principal, peer, &buf, &frames, seen).await {
                Ok(c) => {
                    ended.logged += c.logged;
                    ended.duplicates += c.duplicates;
                    ended.skipped += c.skipped;
                    let counters = protocol.counters(&st.metrics);
                    counters.logged.inc_by(c.logged);
                    counters.duplicates.inc_by(c.duplicates);
                    buf.drain(..c.consumed);
                    backoff = Duration::from_millis(20);
                    limit = (limit * 2).min(max_limit);
                    if let Some(e) = c.error {
                        if e.kind == "source-not-allowed" {
                            refuse(protocol, st, Some(&principal), "source-not-allowed", peer).await;
                        }
                        ended.error = Some(e.detail);
                        return ended;
                    }
                }
                Err(p) if p.kind == "batch-too-large" && limit > 1 => limit /= 2,
                Err(p) if p.retry_after.is_some() => {
                    // The log pushes back: the connection is not read meanwhile.
                    if *draining.borrow() {
                        ended.error = Some(format!(
                            "the server is stopping while the log pushes back ({}); the rest is not logged",
                            p.detail
                        ));
                        return ended;
                    }
                    // Smaller batches fit sooner into a pool others fill too.
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    limit = (limit / 2).max(1);
                }
                Err(p) => {
                    if p.kind == "source-not-allowed" {
                        refuse(protocol, st, Some(&principal), "source-not-allowed", peer).await;
                    }
                    ended.error = Some(p.detail);
                    return ended;
                }
            }
        }
        // Only an incomplete frame is left (at most `max_frame` bytes and its framing), so
        // there is always room for one more read; a zero-byte read would look like the end.
        let room = cap.saturating_sub(buf.len());
        if room == 0 {
            ended.error = Some("a frame does not fit the read buffer; the connection is closed".into());
            return ended;
        }
        let mut limited = (&mut stream).take(room as u64);
        let n = tokio::select! {
            r = limited.read_buf(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => {
                    ended.error = Some(format!("reading: {e}"));
                    return ended;
                }
            },
            _ = drained(&mut draining) => return ended,
        };
        if n == 0 {
            if buf.iter().any(|&b| !matches!(b, b'\n' | b'\r' | 0)) {
                ended.error = Some(format!(
                    "the connection closed inside a frame; its {} bytes are not logged",
                    buf.len()
                ));
            }
            return ended;
        }
    }
}

/// The complete frames at the start of `buf`, at most `limit` of them and about `max_bytes`
/// (at least one), and the framing error that stops the rest, if any.
fn frames<P: Protocol>(
    protocol: &P,
    buf: &[u8],
    max_frame: usize,
    limit: usize,
    max_bytes: usize,
) -> (Vec<Frame>, Option<String>) {
    let mut out = Vec::new();
    let (mut at, mut bytes) = (0, 0);
    while out.len() < limit && (out.is_empty() || bytes < max_bytes) {
        match protocol.next_frame(&buf[at..], max_frame) {
            Ok(Some(f)) => {
                bytes += f.msg.len();
                let f = Frame { msg: at + f.msg.start..at + f.msg.end, consumed: at + f.consumed };
                at = f.consumed;
                out.push(f);
            }
            Ok(None) => break,
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// What one commit did.
struct Committed {
    logged: u64,
    duplicates: u64,
    skipped: u64,
    /// Bytes of the buffer logged (or refused: see `error`).
    consumed: usize,
    /// The frame that stopped the batch: the ones before it are committed.
    error: Option<Problem>,
}

/// Commits the frames of `frames` up to the first that cannot be logged, all or none. `Err`
/// is the commit's own problem (nothing committed); the caller may try again.
async fn commit<P: Protocol>(
    protocol: &P,
    st: &AppState,
    principal: &Principal,
    peer: SocketAddr,
    buf: &[u8],
    frames: &[Frame],
    seen: u64,
) -> Result<Committed, Problem> {
    let mut batch = Batch::new(principal, protocol.platform())?;
    let mut consumed = 0;
    let mut error = None;
    for (i, f) in frames.iter().enumerate() {
        let n = seen + i as u64 + 1;
        let added = match protocol.record(n, &buf[f.msg.clone()], peer.ip()) {
            Ok(Some(rec)) => batch.add(&format!("{} {n} of the connection", protocol.frame_name()), rec),
            Ok(None) => {
                batch.skip();
                Ok(())
            }
            Err(e) => Err(crate::http::sources::report::bad(e)),
        };
        if let Err(p) = added {
            error = Some(p);
            break;
        }
        consumed = f.consumed;
    }
    let report = batch.commit(st).await?;
    Ok(Committed {
        logged: report.logged,
        duplicates: report.duplicates,
        skipped: report.skipped,
        consumed,
        error,
    })
}
