//! Trusted time for the log's checkpoints ([docs/trusted-time.md]): a task that asks the
//! configured Time-Stamp Authority to stamp the latest committed checkpoint, at most once per
//! interval, checks the token with the nonce it sent, and stores it create-only beside the
//! checkpoint ([`graven_tlog::StampStore`]).
//!
//! Nothing here is on the ingest path: the task only reads the engine's committed checkpoint,
//! and the TSA is called on a blocking thread with the client's timeout. A TSA that is slow,
//! down or refusing costs a counted failure and a line on stderr, never a delayed event.
//!
//! What is stamped is the checkpoint as the engine committed it (`Engine::committed`), the
//! note signed by the log's key alone: with witnesses, `/checkpoint` serves the same note with
//! cosignature lines appended, which are not part of the stamped bytes.
//!
//! [docs/trusted-time.md]: ../../docs/trusted-time.md

use std::sync::Arc;
use std::time::Duration;

use graven_core::hash::TreeSize;
use graven_engine::engine::Engine;
use graven_tlog::{StampError, StampStore};
use graven_tsa::{ClientError, GenTime, TimeOrder, TimeOrderError, TokenError};

use crate::config::TimestampingSetup;
use crate::metrics::Metrics;

/// How often a node that is not the writer (or has nothing new) looks again.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Why one stamp was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StampFailure {
    #[error("no random nonce: {0}")]
    Nonce(String),
    #[error("{0}")]
    Tsa(#[from] ClientError),
    #[error("the TSA's token was refused, not stored: {0}")]
    Token(#[from] TokenError),
    #[error("the TSA's token was refused, not stored: {0}")]
    Order(#[from] TimeOrderError),
    #[error("storing the token: {0}")]
    Store(#[from] StampError),
    #[error("the stamping thread failed: {0}")]
    Thread(String),
}

/// The last stamp this node knows of: its size, and its time if its token verified.
type Last = Option<(u64, Option<GenTime>)>;

/// Starts the task. It runs until aborted (with the server).
pub fn start(
    setup: &TimestampingSetup,
    engine: &Engine,
    stamps: StampStore,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    let setup = Arc::new(setup.clone());
    let engine = engine.clone();
    tokio::spawn(async move {
        let mut committed = engine.subscribe();
        // Tokens survive restarts: never stamp a size twice, and hold new tokens to the
        // ordering rule against the newest stored one.
        let resumed = {
            let (setup, stamps, size) = (setup.clone(), stamps.clone(), engine.committed().size);
            tokio::task::spawn_blocking(move || resume(&setup, &stamps, size)).await
        };
        let mut last: Last = match resumed {
            Ok(Ok(last)) => last,
            Ok(Err(e)) => {
                report(&format!("could not read the stored timestamps: {e}"));
                None
            }
            Err(e) => {
                report(&format!("could not read the stored timestamps: {e}"));
                None
            }
        };
        if let Some((size, time)) = last {
            metrics.tsa.stamped(size, time);
        }
        let mut next = tokio::time::Instant::now();
        loop {
            // Wait for a checkpoint not stamped yet, on the node that writes the log.
            loop {
                let c = committed.borrow_and_update().clone();
                if engine.is_writer() && c.size > 0 && last.is_none_or(|(s, _)| c.size > s) {
                    break;
                }
                tokio::select! {
                    changed = committed.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
            // At most one request per interval, successful or not.
            tokio::time::sleep_until(next).await;
            let c = engine.committed();
            next = tokio::time::Instant::now() + setup.interval;
            metrics.tsa.requests.inc();
            let outcome = {
                let (setup, stamps) = (setup.clone(), stamps.clone());
                tokio::task::spawn_blocking(move || {
                    stamp(&setup, &stamps, c.size, c.checkpoint.as_bytes(), last)
                })
                .await
                .unwrap_or_else(|e| Err(StampFailure::Thread(e.to_string())))
            };
            match outcome {
                Ok(time) => {
                    last = Some((c.size, Some(time)));
                    metrics.tsa.stamped(c.size, Some(time));
                }
                Err(e) => {
                    metrics.tsa.failures.inc();
                    report(&format!(
                        "stamping the checkpoint of size {} failed (the next try is in {}s; ingest is not affected): {e}",
                        c.size,
                        setup.interval.as_secs()
                    ));
                    // Another node stored a token for this size first: it stands.
                    if matches!(e, StampFailure::Store(StampError::Conflict { .. })) {
                        last = Some((c.size, None));
                    }
                }
            }
        }
    })
}

/// One stamp: a fresh nonce, the TSA's token for the SHA-256 of `note`, checked with that
/// nonce and against the last stored stamp, then stored. Blocking.
fn stamp(
    setup: &TimestampingSetup,
    stamps: &StampStore,
    size: u64,
    note: &[u8],
    last: Last,
) -> Result<GenTime, StampFailure> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| StampFailure::Nonce(e.to_string()))?;
    let nonce = u64::from_be_bytes(nonce);
    let token = setup.client.timestamp(note, nonce)?;
    let verified = setup.verifier.verify(&token, note, Some(nonce))?;
    if let Some((s, Some(t))) = last {
        TimeOrder::resume(TreeSize(s), t).check(TreeSize(size), &verified)?;
    }
    stamps.put(size, note, &token)?;
    Ok(verified.gen_time())
}

/// The newest stamp stored at or below `size`, with its time if its token still verifies.
fn resume(setup: &TimestampingSetup, stamps: &StampStore, size: u64) -> Result<Last, StampError> {
    let Some(s) = stamps.latest(size)? else { return Ok(None) };
    let time = match (stamps.token(s)?, stamps.checkpoint(s)?) {
        (Some(token), Some(note)) => match setup.verifier.verify(&token, &note, None) {
            Ok(v) => Some(v.gen_time()),
            Err(e) => {
                report(&format!("the stored token for size {s} does not verify with tsa_cert: {e}"));
                None
            }
        },
        _ => None,
    };
    Ok(Some((s, time)))
}

/// A warning in the server's log; the text may quote a TSA's words (the log escapes every
/// character outside printable ASCII).
fn report(what: &str) {
    tracing::warn!(error = %what, "trusted time");
}
