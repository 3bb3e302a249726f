//! Syslog: RFC 5424 messages over TCP, octet-counted (RFC 6587), or over TLS (RFC 5425), on
//! their own listener (`[syslog]`, `--syslog-listen`), reported as a platform source
//! (docs/sources.md): each message's subject (`APP-NAME@HOSTNAME`, or `[graven@32473
//! actor=...]`) is stored as its actor, `"auth": "attested"`, `attested_by` the connection's
//! source identity: its client certificate's, or the listener's configured `identity`.
//!
//! Syslog has no acknowledgement, so a connection is read no faster than it is logged: the
//! complete messages buffered are committed (all or none, [`crate::http::sources::report`]'s
//! pipeline) before the connection is read again, and while the log pushes back the
//! connection is not read at all (TCP backpressure, never a drop). What is buffered is
//! bounded by the longest message (`max_frame_bytes`) and one read. A message that cannot be
//! logged (not RFC 5424, longer than the limit, a subject outside the grant) closes the
//! connection once the messages before it are committed; nothing of it is logged.
//!
//! | module | what |
//! |---|---|
//! | [`framing`] | RFC 6587 frames, pure |
//! | [`rfc5424`] | the message parser, pure |
//! | [`map`] | a message as a source record |

pub mod framing;
pub mod map;
pub mod rfc5424;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use graven_auth::mtls::ClientCert;
use graven_auth::principal::{Actor, Denial, Principal};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::SyslogSetup;
use crate::http::AppState;
use crate::http::audit::{self, Refusal};
use crate::http::sources::report::{Batch, bad};
use crate::problem::Problem;

/// The platform, and the `route` of the refusals recorded for this listener.
const PLATFORM: &str = "syslog";
const ROUTE: &str = "syslog";
/// Bytes asked of the socket per read, besides room for one whole frame.
const READ_CHUNK: usize = 64 << 10;
/// Most messages in one commit.
const MAX_BATCH: usize = 4096;
/// How long a TLS client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause between two attempts while the log pushes back.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Who attests a connection's messages.
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
    /// Messages logged.
    pub logged: u64,
    /// Messages already logged (by their `event_id`), not logged again.
    pub duplicates: u64,
    /// Why the server closed it (`None`: the sender closed it, or the server drains).
    pub error: Option<String>,
}

/// Checks at start-up that `identity` can attest syslog messages: a registered `source`
/// identity whose grant names `syslog`. (Whether it is active is looked up per connection.)
pub fn check_identity(registry: &graven_auth::registry::Registry, identity: &str) -> Result<(), String> {
    let Some(r) = registry.get(identity) else {
        return Err(format!(
            "[syslog] identity {identity:?} is not registered: create it with `graven identity create {identity} --kind integration --owner <team> --role source --source-type syslog --subject '<pattern>'`, then start again"
        ));
    };
    if r.role != graven_auth::identity::Role::Source {
        return Err(format!(
            "[syslog] identity {identity:?} has the {} role; it must have the source role",
            r.role.as_str()
        ));
    }
    if !r.source.as_ref().is_some_and(|g| g.allows_type(PLATFORM)) {
        return Err(format!("[syslog] identity {identity:?}: its source grant does not name syslog"));
    }
    Ok(())
}

/// The accept loop, until the server drains: at most `max_connections` at once (more are
/// closed at once), each served by [`connection`]. Returns once every connection has ended.
pub async fn serve(
    listener: tokio::net::TcpListener,
    setup: SyslogSetup,
    state: Arc<AppState>,
    tls: Option<crate::tls::TlsServer>,
) {
    let listen = listener.local_addr().unwrap_or(setup.listen);
    let permits = Arc::new(tokio::sync::Semaphore::new(setup.max_connections));
    let mut draining = state.draining.subscribe();
    let mut tasks = tokio::task::JoinSet::new();
    let setup = Arc::new(setup);
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
            tracing::warn!(peer = %peer, "syslog: too many connections (max_connections); closed this one");
            continue;
        };
        let (state, setup, tls) = (state.clone(), setup.clone(), tls.clone());
        tasks.spawn(async move {
            let ended = accepted(stream, peer, listen, &state, &setup, tls.as_ref()).await;
            drop(permit);
            match &ended.error {
                Some(e) => {
                    tracing::warn!(peer = %peer, logged = ended.logged, error = %e, "syslog: connection closed")
                }
                None => tracing::debug!(peer = %peer, logged = ended.logged, "syslog: connection ended"),
            }
        });
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

/// One accepted connection (a TCP stream, or an in-memory one in tests): its TLS handshake
/// when configured, its attester (the client certificate, else the listener's identity; a
/// connection with neither is closed), then [`connection`].
pub async fn accepted<S>(
    stream: S,
    peer: SocketAddr,
    listen: SocketAddr,
    st: &AppState,
    setup: &SyslogSetup,
    tls: Option<&crate::tls::TlsServer>,
) -> Ended
where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let listener = setup.identity.clone().map(|identity| Attester::Listener { identity, listen });
    let closed = |why: &str| Ended { error: Some(why.to_owned()), ..Ended::default() };
    match tls.filter(|_| setup.tls) {
        None => match listener {
            Some(a) => connection(stream, peer, a, st, setup.max_frame_bytes).await,
            None => closed("no [syslog] identity attests a connection without TLS"),
        },
        Some(tls) => {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return closed(&format!("the TLS handshake failed: {e}")),
                Err(_) => return closed("the TLS handshake took longer than 10 s"),
            };
            let cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| tls.client_cas.client_cert(chain))
                .map(|c| Attester::Certificate(Arc::new(c)));
            match cert.or(listener) {
                Some(a) => connection(stream, peer, a, st, setup.max_frame_bytes).await,
                None => closed("a TLS connection without a client certificate, and no [syslog] identity"),
            }
        }
    }
}

/// Returns once the server drains.
async fn drained(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|d| *d).await;
}

/// The principal behind `who`, looked up now (a disabled or revoked identity is refused).
fn authenticate(st: &AppState, who: &Attester) -> Result<Arc<Principal>, Denial> {
    let now = st.now_ms();
    match who {
        Attester::Certificate(cert) => {
            graven_auth::mtls::authenticate(cert, &st.live().spiffe_ids, &st.registry, now)
        }
        Attester::Listener { identity, listen } => {
            let credential = format!("syslog-listener:{listen}");
            st.registry.federated(
                identity,
                &credential,
                |kind| Actor {
                    id: identity.clone(),
                    kind: kind.as_str().into(),
                    credential: credential.clone(),
                    auth: "syslog_listener".into(),
                    extra: Vec::new(),
                },
                None,
                now,
            )
        }
    }
}

async fn refuse(st: &AppState, who: Option<&Principal>, reason: &'static str, peer: SocketAddr) {
    let r = Refusal {
        who,
        claimed_key: None,
        claimed_identity: None,
        reason,
        route: ROUTE,
        attempted_action: None,
        peer: Some(peer.ip()),
    };
    audit::denied(st, r).await;
}

/// Serves one connection (TCP, TLS, or an in-memory stream in tests) until it closes, fails
/// or the server drains: reads frames, and commits the complete ones before reading again.
pub async fn connection<S: AsyncRead + Unpin>(
    stream: S,
    peer: SocketAddr,
    who: Attester,
    st: &AppState,
    max_frame: usize,
) -> Ended {
    let ended = serve_connection(stream, peer, who, st, max_frame).await;
    if ended.error.is_some() {
        st.metrics.syslog_closed.inc();
    }
    ended
}

async fn serve_connection<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    who: Attester,
    st: &AppState,
    max_frame: usize,
) -> Ended {
    let mut ended = Ended::default();
    let principal = match authenticate(st, &who) {
        Ok(p) => p,
        Err(d) => {
            refuse(st, d.principal().map(|p| &**p), d.reason(), peer).await;
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
            let (frames, framing) = frames(&buf, max_frame, limit, max_bytes);
            if frames.is_empty() {
                if let Some(e) = framing {
                    ended.error =
                        Some(format!("{e}; the connection is closed and nothing of that frame is logged"));
                    return ended;
                }
                break;
            }
            if !st.registry.still_valid(&principal, st.now_ms()) {
                refuse(st, Some(&principal), "identity-not-active", peer).await;
                ended.error = Some(format!(
                    "identity {} may no longer attest messages (disabled, revoked or changed)",
                    principal.identity
                ));
                return ended;
            }
            let seen = ended.logged + ended.duplicates;
            match commit(st, &principal, peer, &buf, &frames, seen).await {
                Ok(c) => {
                    ended.logged += c.logged;
                    ended.duplicates += c.duplicates;
                    st.metrics.syslog_messages.inc_by(c.logged);
                    st.metrics.syslog_duplicates.inc_by(c.duplicates);
                    buf.drain(..c.consumed);
                    backoff = Duration::from_millis(20);
                    limit = (limit * 2).min(max_limit);
                    if let Some(e) = c.error {
                        if e.kind == "source-not-allowed" {
                            refuse(st, Some(&principal), "source-not-allowed", peer).await;
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
                        refuse(st, Some(&principal), "source-not-allowed", peer).await;
                    }
                    ended.error = Some(p.detail);
                    return ended;
                }
            }
        }
        // Only an incomplete frame is left (at most MSG-LEN and `max_frame` bytes), so there is
        // always room for one more read; a zero-byte read would look like the end.
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
fn frames(
    buf: &[u8],
    max_frame: usize,
    limit: usize,
    max_bytes: usize,
) -> (Vec<framing::Frame>, Option<framing::FrameError>) {
    let mut out = Vec::new();
    let (mut at, mut bytes) = (0, 0);
    while out.len() < limit && (out.is_empty() || bytes < max_bytes) {
        match framing::next_frame(&buf[at..], max_frame) {
            Ok(Some(f)) => {
                bytes += f.msg.len();
                let f = framing::Frame { msg: at + f.msg.start..at + f.msg.end, consumed: at + f.consumed };
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
    /// Bytes of the buffer logged (or refused: see `error`).
    consumed: usize,
    /// The message that stopped the batch: the ones before it are committed.
    error: Option<Problem>,
}

/// Commits the messages of `frames` up to the first that cannot be logged, all or none.
/// `Err` is the commit's own problem (nothing committed); the caller may try again.
async fn commit(
    st: &AppState,
    principal: &Principal,
    peer: SocketAddr,
    buf: &[u8],
    frames: &[framing::Frame],
    seen: u64,
) -> Result<Committed, Problem> {
    let mut batch = Batch::new(principal, PLATFORM)?;
    let mut consumed = 0;
    let mut error = None;
    for (i, f) in frames.iter().enumerate() {
        let bytes = &buf[f.msg.clone()];
        let at = format!("message {} of the connection", seen + i as u64 + 1);
        let added = rfc5424::parse(bytes)
            .map_err(|e| bad(format!("{at}: {e}")))
            .and_then(|m| map::record(&m, bytes, peer.ip()).map_err(|e| bad(format!("{at}: {e}"))))
            .and_then(|rec| batch.add(&at, rec));
        if let Err(p) = added {
            error = Some(p);
            break;
        }
        consumed = f.consumed;
    }
    let report = batch.commit(st).await?;
    Ok(Committed { logged: report.logged, duplicates: report.duplicates, consumed, error })
}
