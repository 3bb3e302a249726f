//! A client for Graven's HTTP API, for services and jobs that log what they do.
//!
//! ```no_run
//! use graven_client::Client;
//! use serde_json::json;
//!
//! # fn main() -> Result<(), graven_client::Error> {
//! // GRAVEN_SERVER, GRAVEN_TOKEN (an API key) and GRAVEN_VKEY (the log's verifier key).
//! let client = Client::from_env()?;
//! let receipt = client.send(&json!({"action": "deployment.create", "outcome": "success"}))?;
//! println!("logged at {} in a tree of {}", receipt.index, receipt.tree_size);
//!
//! // No receipt, no action: the intent is logged (and its receipt checked) first.
//! let deployed = client.act_if_logged(
//!     &json!({"action": "deployment.start", "resource": {"type": "service", "id": "payments"}}),
//!     |_receipt| "deploy it here",
//! )?;
//! # let _ = deployed;
//! # Ok(())
//! # }
//! ```
//!
//! - **Every receipt is checked** before it is returned ([`verify_receipt`]): its checkpoint is
//!   signed by the log's key and its inclusion proof leads from the event's leaf hash to that
//!   checkpoint's root. What that proves: the server committed to this leaf at this index in a
//!   tree it signed; that the same tree is what everyone else sees is for witnesses and
//!   `graven verify` to show.
//! - **Retries never log twice**: a request is tried again only when the server said nothing
//!   was appended (503, 429, honouring `Retry-After`) or it was never sent (the connection
//!   could not be made). Anything else that leaves the outcome unknown (a timeout after the
//!   body was sent, a broken connection, another 5xx) is [`Error::MaybeLogged`], never retried.

use std::time::Duration;

pub use graven_api::{RangeReceipt, Receipt};
use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::note::VerifierKey;
use graven_core::{Hash, LeafIndex, TreeSize, merkle};
use serde_json::Value;

/// Why a receipt does not show its event logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("its checkpoint does not open with the log's key: {0}")]
    Checkpoint(String),
    #[error("its tree_size {receipt} is not its checkpoint's size {checkpoint}")]
    SizeMismatch { receipt: u64, checkpoint: u64 },
    #[error("its {0} is not a base64 hash")]
    NotAHash(&'static str),
    #[error("its inclusion proof does not lead to the checkpoint's root: {0}")]
    Proof(String),
}

/// What went wrong. Every variant says whether the event may be in the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client is not configured (a missing variable, a bad key or URL). Nothing was sent.
    #[error("{0}")]
    Config(String),
    /// The server refused the request (an RFC 9457 problem): nothing was appended.
    #[error("the server answered {status} ({kind}): {detail}")]
    Refused { status: u16, kind: String, title: String, detail: String, retry_after: Option<u64> },
    /// The request may or may not have been logged (it was sent, and no answer says which).
    /// Not retried: a second try could log the event twice.
    #[error("the event may or may not be logged: {0}")]
    MaybeLogged(String),
    /// The server could not be reached (after the retries): nothing was sent.
    #[error("the server could not be reached, nothing was sent: {0}")]
    Unreachable(String),
    /// The server answered, but a receipt does not check out: treat the event as not shown to
    /// be logged.
    #[error("the receipt of event {event} (0-based) does not check out: {source}")]
    Receipt { event: usize, source: ReceiptError },
}

/// A receipt checked against the log's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: Hash,
    pub logged_at: Option<String>,
    /// The receipt as the server sent it (keep it: it is verifiable offline, for ever).
    pub receipt: Receipt,
}

/// A receipt's checkpoint, opened with the log's key, for the tree size the receipt names.
fn open_checkpoint(
    note: &str,
    tree_size: u64,
    vkey: &VerifierKey,
) -> Result<VerifiedCheckpoint, ReceiptError> {
    let cp = VerifiedCheckpoint::open(note.as_bytes(), vkey, vkey.name())
        .map_err(|e| ReceiptError::Checkpoint(e.to_string()))?;
    if cp.size().0 != tree_size {
        return Err(ReceiptError::SizeMismatch { receipt: tree_size, checkpoint: cp.size().0 });
    }
    Ok(cp)
}

/// Checks a receipt offline: the checkpoint is signed by `vkey` (for the log `vkey` names),
/// its size is the receipt's, and the inclusion proof leads from the leaf hash at its index to
/// the checkpoint's root.
pub fn verify_receipt(r: &Receipt, vkey: &VerifierKey) -> Result<VerifiedReceipt, ReceiptError> {
    let cp = open_checkpoint(&r.checkpoint, r.tree_size, vkey)?;
    let leaf = Hash::from_base64(&r.leaf_hash).map_err(|_| ReceiptError::NotAHash("leaf_hash"))?;
    let proof = r
        .inclusion_proof
        .iter()
        .map(|h| Hash::from_base64(h).map(|h| h.0))
        .collect::<Result<Vec<[u8; 32]>, _>>()
        .map_err(|_| ReceiptError::NotAHash("inclusion proof"))?;
    merkle::verify_inclusion(&leaf, LeafIndex(r.index), TreeSize(r.tree_size), &proof, &cp.root())
        .map_err(|e| ReceiptError::Proof(e.to_string()))?;
    Ok(VerifiedReceipt {
        index: r.index,
        tree_size: r.tree_size,
        leaf_hash: leaf,
        logged_at: r.logged_at.clone(),
        receipt: r.clone(),
    })
}

/// A batch's range receipt checked against the log's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBatch {
    /// The index of the batch's first event; the others follow in order.
    pub first_index: u64,
    pub tree_size: u64,
    /// Each event's leaf hash, in order.
    pub leaf_hashes: Vec<Hash>,
    /// The receipt as the server sent it (verifiable offline with [`verify_range_receipt`]).
    pub receipt: RangeReceipt,
}

/// Checks a range receipt offline: the checkpoint is signed by `vkey`, its size is the
/// receipt's, and the leaf hashes with the range proof give the checkpoint's root
/// (docs/receipts.md).
pub fn verify_range_receipt(r: &RangeReceipt, vkey: &VerifierKey) -> Result<VerifiedBatch, ReceiptError> {
    let cp = open_checkpoint(&r.checkpoint, r.tree_size, vkey)?;
    let hashes = |v: &[String], what| {
        v.iter()
            .map(|h| Hash::from_base64(h))
            .collect::<Result<Vec<Hash>, _>>()
            .map_err(|_| ReceiptError::NotAHash(what))
    };
    let leaves = hashes(&r.leaf_hashes, "leaf_hashes")?;
    let proof = hashes(&r.range_proof, "range proof")?;
    graven_core::range_proof::verify_range(r.first_index, &leaves, TreeSize(r.tree_size), &proof, &cp.root())
        .map_err(|e| ReceiptError::Proof(e.to_string()))?;
    Ok(VerifiedBatch {
        first_index: r.first_index,
        tree_size: r.tree_size,
        leaf_hashes: leaves,
        receipt: r.clone(),
    })
}

/// When to try a refused request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries after the first.
    pub retries: u32,
    /// The first wait; doubled each time, up to `max_wait`, unless the server says how long.
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { retries: 5, first_wait: Duration::from_millis(200), max_wait: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait before try `attempt` (1 for the first retry): `Retry-After` if the server gave
    /// one, else the doubling back-off, with up to a quarter of jitter, at most `max_wait`.
    pub fn wait(&self, attempt: u32, retry_after: Option<u64>) -> Duration {
        if let Some(s) = retry_after {
            return Duration::from_secs(s).min(self.max_wait);
        }
        let base = self.first_wait.saturating_mul(1 << attempt.saturating_sub(1).min(20)).min(self.max_wait);
        let jitter = base.as_millis() as u64 / 4;
        let j = if jitter == 0 { 0 } else { jitter_seed() % (jitter + 1) };
        (base + Duration::from_millis(j)).min(self.max_wait)
    }
}

/// A little randomness for jitter, without a dependency: the hasher's random keys.
fn jitter_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A client of one server, with one credential, checking receipts against one log key.
#[derive(Debug, Clone)]
pub struct Client {
    server: String,
    token: String,
    vkey: VerifierKey,
    retry: RetryPolicy,
    agent: ureq::Agent,
}

impl Client {
    /// A client of `server` (`http(s)://host:port`), sending the API key `token`, checking
    /// receipts against `vkey` (`<name>+<id>+<key>`).
    pub fn new(server: &str, token: &str, vkey: &str) -> Result<Client, Error> {
        let server = server.trim_end_matches('/').to_owned();
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(Error::Config(format!("server {server:?}: give an http:// or https:// URL")));
        }
        if token.trim().is_empty() {
            return Err(Error::Config("no API key: give one (or set GRAVEN_TOKEN)".into()));
        }
        let vkey: VerifierKey = vkey
            .trim()
            .parse()
            .map_err(|e| Error::Config(format!("the log's verifier key does not parse: {e}")))?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .user_agent(concat!("graven-client-rust/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Client { server, token: token.trim().to_owned(), vkey, retry: RetryPolicy::default(), agent })
    }

    /// A client configured by `GRAVEN_SERVER` (default `http://127.0.0.1:7878`), `GRAVEN_TOKEN`
    /// and `GRAVEN_VKEY`.
    pub fn from_env() -> Result<Client, Error> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let server = var("GRAVEN_SERVER").unwrap_or_else(|| "http://127.0.0.1:7878".into());
        let token = var("GRAVEN_TOKEN").ok_or_else(|| Error::Config("GRAVEN_TOKEN is not set".into()))?;
        let vkey = var("GRAVEN_VKEY").ok_or_else(|| {
            Error::Config("GRAVEN_VKEY is not set: receipts are only worth something checked".into())
        })?;
        Client::new(&server, &token, &vkey)
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    /// Sends one event; returns its checked receipt.
    pub fn send(&self, event: &Value) -> Result<VerifiedReceipt, Error> {
        let mut r = self.post(event.to_string(), "application/json", 1)?;
        Ok(r.remove(0))
    }

    /// Sends a batch (all or nothing: every event is logged in one commit, or none); returns
    /// one checked receipt for the whole batch (a range receipt: its leaf hashes and one proof,
    /// some 50 bytes an event).
    pub fn send_batch(&self, events: &[Value]) -> Result<VerifiedBatch, Error> {
        if events.is_empty() {
            return Err(Error::Config("an empty batch: nothing to send".into()));
        }
        let body: String = events.iter().map(|e| e.to_string() + "\n").collect();
        let text =
            self.post_raw(&format!("{}/v1/events?receipt=range", self.server), body, "application/x-ndjson")?;
        let r: RangeReceipt = serde_json::from_str(&text)
            .map_err(|e| Error::MaybeLogged(format!("the answer is not a range receipt: {e}")))?;
        if r.leaf_hashes.len() != events.len() {
            return Err(Error::MaybeLogged(format!(
                "{} events sent, {} leaf hashes back",
                events.len(),
                r.leaf_hashes.len()
            )));
        }
        verify_range_receipt(&r, &self.vkey).map_err(|source| Error::Receipt { event: 0, source })
    }

    /// [`Client::send_batch`] with one receipt per event, each checkable on its own.
    pub fn send_batch_each(&self, events: &[Value]) -> Result<Vec<VerifiedReceipt>, Error> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let body: String = events.iter().map(|e| e.to_string() + "\n").collect();
        let text = self.post_raw(&format!("{}/v1/events", self.server), body, "application/x-ndjson")?;
        self.receipts(&text, events.len())
    }

    /// No receipt, no action: sends `event` (the intent), checks its receipt, and only then
    /// runs `action`. If the event is not shown logged, `action` does not run and the error
    /// is returned.
    pub fn act_if_logged<T>(
        &self,
        event: &Value,
        action: impl FnOnce(&VerifiedReceipt) -> T,
    ) -> Result<T, Error> {
        let receipt = self.send(event)?;
        Ok(action(&receipt))
    }

    fn post(&self, body: String, content_type: &str, count: usize) -> Result<Vec<VerifiedReceipt>, Error> {
        let text = self.post_raw(&format!("{}/v1/events", self.server), body, content_type)?;
        self.receipts(&text, count)
    }

    /// Posts `body` (retrying as [`RetryPolicy`] says); the text of a 201.
    fn post_raw(&self, url: &str, body: String, content_type: &str) -> Result<String, Error> {
        let mut attempt = 0u32;
        loop {
            let sent = self
                .agent
                .post(url)
                .header("Authorization", &format!("Bearer {}", self.token))
                .header("Content-Type", content_type)
                .send(body.as_bytes());
            let (retry_after, why) = match sent {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let text = resp
                        .body_mut()
                        .with_config()
                        .limit(64 << 20)
                        .read_to_string()
                        .map_err(|e| Error::MaybeLogged(format!("reading the answer: {e}")))?;
                    if status == 201 {
                        return Ok(text);
                    }
                    let p = serde_json::from_str::<graven_api::Problem>(&text).ok();
                    let refused = Error::Refused {
                        status,
                        kind: p.as_ref().map(|p| p.kind.clone()).unwrap_or_default(),
                        title: p.as_ref().map(|p| p.title.clone()).unwrap_or_default(),
                        detail: p.map(|p| p.detail).unwrap_or_else(|| text.chars().take(300).collect()),
                        retry_after,
                    };
                    // A 5xx other than 503 does not say that nothing was appended.
                    if status >= 500 && status != 503 {
                        return Err(Error::MaybeLogged(refused.to_string()));
                    }
                    if status != 503 && status != 429 {
                        return Err(refused);
                    }
                    (retry_after, refused)
                }
                Err(e) if never_sent(&e) => (None, Error::Unreachable(format!("POST {url}: {e}"))),
                Err(e) => return Err(Error::MaybeLogged(format!("POST {url}: {e}"))),
            };
            if attempt >= self.retry.retries {
                return Err(why);
            }
            attempt += 1;
            std::thread::sleep(self.retry.wait(attempt, retry_after));
        }
    }

    fn receipts(&self, text: &str, count: usize) -> Result<Vec<VerifiedReceipt>, Error> {
        let receipts: Vec<Receipt> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .map_err(|e| Error::MaybeLogged(format!("the answer is not receipts: {e}")))?;
        if receipts.len() != count {
            return Err(Error::MaybeLogged(format!("{count} events sent, {} receipts back", receipts.len())));
        }
        receipts
            .iter()
            .enumerate()
            .map(|(i, r)| verify_receipt(r, &self.vkey).map_err(|source| Error::Receipt { event: i, source }))
            .collect()
    }
}

/// Whether a request failed before any of it reached the server (safe to try again).
fn never_sent(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Resolve | ureq::Timeout::Connect),
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
