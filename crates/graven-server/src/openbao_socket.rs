//! OpenBao's (and Vault's) `socket` audit device: TCP, one JSON audit entry per line, on its
//! own listener (`[openbao_socket]`, `--bao-audit-listen`), reported as the `openbao` platform
//! source (docs/sources.md). Each entry is read as `POST /v1/sources/openbao` reads one
//! ([`graven_sources::openbao::map_line`]): the token's display name and role as the subject,
//! marked `"auth": "attested"`, `attested_by` the listener's configured source identity;
//! entries of the types not configured (`types`, default `response`) and the device's test
//! entry are skipped; a retry of an entry already logged (its `request.id` and type) is not
//! logged again. HMAC'd fields stay as the device sent them.
//!
//! The device has no TLS and no acknowledgement: whoever can reach the listener can write
//! entries attested by its identity (listen on loopback or a private address), and an entry
//! OpenBao wrote into the connection just before Graven stopped is lost without OpenBao
//! knowing. The `http` device (`POST /v1/sources/openbao`) waits for Graven's answer and is
//! the form that fails closed: docs/sources.md compares them.

use std::net::{IpAddr, SocketAddr};

use tokio::io::AsyncRead;

use crate::http::AppState;
use crate::http::sources::report::Record;
use crate::metrics::StreamCounters;
use crate::stream_source::{Attester, Ended, Frame, Protocol, lines};

/// OpenBao audit entries, one per line.
#[derive(Debug, Clone)]
pub struct OpenBaoSocket {
    /// The entry types logged (of [`graven_sources::openbao::TYPES`]).
    pub types: Vec<&'static str>,
}

impl Protocol for OpenBaoSocket {
    fn platform(&self) -> &'static str {
        "openbao"
    }
    fn section(&self) -> &'static str {
        "[openbao_socket]"
    }
    fn route(&self) -> &'static str {
        "openbao-socket"
    }
    fn frame_name(&self) -> &'static str {
        "entry"
    }
    fn next_frame(&self, buf: &[u8], max: usize) -> Result<Option<Frame>, String> {
        match lines::next_line(buf, max) {
            Ok(l) => Ok(l.map(|l| Frame { msg: l.line, consumed: l.consumed })),
            Err(e) => Err(format!("{e} ([openbao_socket] max_frame_bytes)")),
        }
    }
    fn record<'a>(&self, n: u64, frame: &'a [u8], _peer: IpAddr) -> Result<Option<Record<'a>>, String> {
        if frame.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        // `map_line` names the line by its 0-based index: the connection's line `n`.
        let i = usize::try_from(n.saturating_sub(1)).unwrap_or(usize::MAX);
        graven_sources::openbao::map_line(i, frame, &self.types).map_err(|e| {
            let hint =
                if frame.first() == Some(&b'{') { "" } else { "; leave the device's `prefix` option unset" };
            format!("{} (lines counted from the connection's start){hint}", e.0)
        })
    }
    fn counters<'m>(&self, metrics: &'m crate::metrics::Metrics) -> &'m StreamCounters {
        &metrics.openbao_socket
    }
}

/// Serves one connection of the device ([`crate::stream_source::connection`]).
pub async fn connection<S: AsyncRead + Unpin>(
    protocol: &OpenBaoSocket,
    stream: S,
    peer: SocketAddr,
    who: Attester,
    st: &AppState,
    max_frame: usize,
) -> Ended {
    crate::stream_source::connection(protocol, stream, peer, who, st, max_frame).await
}
