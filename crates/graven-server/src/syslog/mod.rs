//! Syslog: RFC 5424 messages over TCP, octet-counted (RFC 6587), or over TLS (RFC 5425), on
//! their own listener (`[syslog]`, `--syslog-listen`), reported as a platform source
//! (docs/sources.md): each message's subject (`APP-NAME@HOSTNAME`, or `[graven@32473
//! actor=...]`) is stored as its actor, `"auth": "attested"`, `attested_by` the connection's
//! source identity: its client certificate's, or the listener's configured `identity`.
//!
//! The listener, its backpressure and its attestation are [`crate::stream_source`]'s; this
//! module is what syslog speaks: its frames, its messages, their records.
//!
//! | module | what |
//! |---|---|
//! | [`framing`] | RFC 6587 frames, pure |
//! | [`rfc5424`] | the message parser, pure |
//! | [`map`] | a message as a source record |

pub mod framing;
pub mod map;
pub mod rfc5424;

use std::net::{IpAddr, SocketAddr};

use tokio::io::AsyncRead;

use crate::http::AppState;
use crate::http::sources::report::Record;
use crate::metrics::StreamCounters;
pub use crate::stream_source::{Attester, Ended};
use crate::stream_source::{Frame, Protocol};

/// RFC 5424 over RFC 6587 frames.
#[derive(Debug, Clone, Copy, Default)]
pub struct Syslog;

impl Protocol for Syslog {
    fn platform(&self) -> &'static str {
        "syslog"
    }
    fn section(&self) -> &'static str {
        "[syslog]"
    }
    fn route(&self) -> &'static str {
        "syslog"
    }
    fn frame_name(&self) -> &'static str {
        "message"
    }
    fn next_frame(&self, buf: &[u8], max: usize) -> Result<Option<Frame>, String> {
        match framing::next_frame(buf, max) {
            Ok(f) => Ok(f.map(|f| Frame { msg: f.msg, consumed: f.consumed })),
            Err(e) => Err(e.to_string()),
        }
    }
    fn record<'a>(&self, n: u64, frame: &'a [u8], peer: IpAddr) -> Result<Option<Record<'a>>, String> {
        let at = format!("message {n} of the connection");
        let m = rfc5424::parse(frame).map_err(|e| format!("{at}: {e}"))?;
        map::record(&m, frame, peer).map(Some).map_err(|e| format!("{at}: {e}"))
    }
    fn counters<'m>(&self, metrics: &'m crate::metrics::Metrics) -> &'m StreamCounters {
        &metrics.syslog
    }
}

/// Serves one syslog connection ([`crate::stream_source::connection`]).
pub async fn connection<S: AsyncRead + Unpin>(
    stream: S,
    peer: SocketAddr,
    who: Attester,
    st: &AppState,
    max_frame: usize,
) -> Ended {
    crate::stream_source::connection(&Syslog, stream, peer, who, st, max_frame).await
}
