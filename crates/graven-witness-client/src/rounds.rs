//! The rounds: for the newest checkpoint offered, every witness is asked in parallel; the
//! round ends when each has cosigned, refused, or run out of attempts or time. Then the next
//! round starts on the newest checkpoint offered by then, but never sooner than
//! `min_round_interval` after the previous one started: a log that commits hundreds of
//! checkpoints a second asks its witnesses a few times a second at most, and every checkpoint
//! in between is covered by the next witnessed one (it is a prefix of it).
//!
//! Per witness: the size it last cosigned is remembered (in memory; after a restart it is
//! learnt again from the witness's `409`, starting from `old 0` as the spec allows). A `409`
//! is not a failure: the request is sent again at once from the size the witness holds. A
//! transport error or a `5xx` is retried with exponential back-off within the round. A witness
//! that failed a round sits out the following rounds for a back-off that doubles with each
//! failure (capped), so a dead witness costs nothing per round. A `422` (the witness refuses
//! the consistency proof) is reported loudly: either the witness or this log is misbehaving.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graven_core::cosignature::{Cosigned, CosignerKey};
use graven_core::hash::Hash;
use graven_core::note::{self, VerifierKey};
use graven_core::policy::{Policy, Witness, WitnessKey};
use tokio::sync::watch;

use crate::board::{Board, CosignedCheckpoint};
use crate::http::{CallError, WitnessHttp, valid_prefix};
use crate::request::{Answer, add_checkpoint_body};

/// Consistency proofs from the log (the server implements it over its log reader).
pub trait ProofSource: Send + Sync + 'static {
    /// The RFC 6962 consistency proof from `old` to `new` (`0 < old < new`).
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, String>;
}

/// Timeouts, attempts and back-off.
#[derive(Debug, Clone)]
pub struct WitnessingConfig {
    /// One HTTP request to one witness.
    pub request_timeout: Duration,
    /// One round, all attempts included.
    pub round_timeout: Duration,
    /// Attempts per witness per round after transport errors and 5xx answers.
    pub attempts: u32,
    /// The first retry's delay; it doubles with each retry.
    pub retry_backoff: Duration,
    /// The longest a failing witness sits out.
    pub max_backoff: Duration,
    /// The least time from the start of one round to the start of the next.
    pub min_round_interval: Duration,
}

impl Default for WitnessingConfig {
    fn default() -> Self {
        WitnessingConfig {
            request_timeout: Duration::from_secs(5),
            round_timeout: Duration::from_secs(10),
            attempts: 3,
            retry_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(60),
            min_round_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error(
        "the witness policy trusts no log key named {origin:?} with this log's key; add `log {vkey}` to it"
    )]
    LogNotInPolicy { origin: String, vkey: String },
    #[error(
        "witness {0:?} has no URL in the policy; the log needs its submission prefix (`witness <name> <vkey> <url>`)"
    )]
    NoUrl(String),
    #[error("witness {name:?}: {url:?} is not an http:// or https:// URL")]
    BadUrl { name: String, url: String },
    #[error("the witness policy names no witness")]
    NoWitness,
}

/// What is known of one witness, for `/metrics` and `/v1/log`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WitnessStatus {
    pub name: String,
    pub url: String,
    /// The size of the newest checkpoint of this log it cosigned for this node.
    pub cosigned_size: Option<u64>,
    /// How long its last successful `add-checkpoint` took.
    pub last_latency: Option<Duration>,
    pub requests: u64,
    pub cosignatures: u64,
    /// Rounds it failed (no cosignature).
    pub failures: u64,
    /// Failures in a row; it sits out rounds while this is not zero.
    pub consecutive_failures: u32,
    /// The last failure's reason (text from the network is escaped when shown).
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct WitnessSlot {
    http: WitnessHttp,
    /// The size this witness holds for the log, as last learnt.
    known: Mutex<Option<u64>>,
    status: Mutex<WitnessStatus>,
    /// Not asked again before this.
    resume_at: Mutex<Option<Instant>>,
}

#[derive(Debug)]
struct Shared {
    policy: Arc<Policy>,
    config: WitnessingConfig,
    witnesses: Vec<WitnessSlot>,
    board: Mutex<Board>,
    offered: watch::Sender<Option<(u64, Arc<str>)>>,
    /// The size of the newest witnessed checkpoint.
    witnessed: watch::Sender<u64>,
    /// Rounds started, for the tests and `/metrics`.
    rounds: std::sync::atomic::AtomicU64,
}

/// The log's witnessing: cheap to clone, shared by the handlers and the round loop.
#[derive(Debug, Clone)]
pub struct Witnessing {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Witnessing {
    /// Checks that the policy trusts `log_key` and gives every witness a URL.
    pub fn new(policy: Policy, log_key: &VerifierKey, config: WitnessingConfig) -> Result<Self, SetupError> {
        if !policy.logs().iter().any(|l| l.key == *log_key) {
            return Err(SetupError::LogNotInPolicy {
                origin: log_key.name().to_owned(),
                vkey: log_key.to_string(),
            });
        }
        if policy.witnesses().is_empty() {
            return Err(SetupError::NoWitness);
        }
        let mut witnesses = Vec::new();
        for w in policy.witnesses() {
            let name = String::from_utf8_lossy(&w.name).into_owned();
            let url = w.url.clone().ok_or_else(|| SetupError::NoUrl(name.clone()))?;
            if !valid_prefix(&url) {
                return Err(SetupError::BadUrl { name, url });
            }
            witnesses.push(WitnessSlot {
                http: WitnessHttp::new(&url, config.request_timeout),
                known: Mutex::new(None),
                status: Mutex::new(WitnessStatus { name, url, ..Default::default() }),
                resume_at: Mutex::new(None),
            });
        }
        let policy = Arc::new(policy);
        Ok(Witnessing {
            shared: Arc::new(Shared {
                board: Mutex::new(Board::new(policy.clone())),
                policy,
                config,
                witnesses,
                offered: watch::channel(None).0,
                witnessed: watch::channel(0).0,
                rounds: Default::default(),
            }),
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.shared.policy
    }

    /// A new checkpoint committed: the next round takes the newest one offered.
    pub fn offer(&self, size: u64, checkpoint: Arc<str>) {
        self.shared.offered.send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|(s, c)| *s > size || (*s == size && *c == checkpoint)) {
                return false;
            }
            *cur = Some((size, checkpoint));
            true
        });
    }

    /// Runs the rounds until the returned task is aborted. Needs a Tokio runtime.
    pub fn start(&self, proofs: Arc<dyn ProofSource>) -> tokio::task::JoinHandle<()> {
        let shared = self.shared.clone();
        tokio::spawn(async move { run(shared, proofs).await })
    }

    /// The checkpoint to publish: the newest whose round finished or that met the quorum,
    /// with its cosignatures. `None` until the first round finishes.
    pub fn published(&self) -> Option<Arc<CosignedCheckpoint>> {
        lock(&self.shared.board).published()
    }

    /// The newest checkpoint that met the quorum.
    pub fn witnessed(&self) -> Option<Arc<CosignedCheckpoint>> {
        lock(&self.shared.board).witnessed()
    }

    /// Waits up to `timeout` for a witnessed checkpoint of at least `min_size`.
    pub async fn wait_witnessed(&self, min_size: u64, timeout: Duration) -> Option<Arc<CosignedCheckpoint>> {
        let mut rx = self.shared.witnessed.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|s| *s >= min_size)).await;
        match waited {
            Ok(Ok(_)) => self.witnessed().filter(|w| w.size >= min_size),
            _ => None,
        }
    }

    pub fn status(&self) -> Vec<WitnessStatus> {
        self.shared.witnesses.iter().map(|w| lock(&w.status).clone()).collect()
    }

    pub fn rounds(&self) -> u64 {
        self.shared.rounds.load(std::sync::atomic::Ordering::Relaxed)
    }
}

async fn run(shared: Arc<Shared>, proofs: Arc<dyn ProofSource>) {
    let mut offered = shared.offered.subscribe();
    let mut last: Option<(u64, Arc<str>)> = None;
    loop {
        let next = {
            let cur = offered.borrow_and_update().clone();
            match cur {
                Some(c) if last.as_ref() != Some(&c) => c,
                _ => {
                    if offered.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
            }
        };
        let started = tokio::time::Instant::now();
        round(&shared, &proofs, next.0, next.1.clone()).await;
        last = Some(next);
        tokio::time::sleep_until(started + shared.config.min_round_interval).await;
    }
}

/// One round on the checkpoint of `size`.
async fn round(shared: &Arc<Shared>, proofs: &Arc<dyn ProofSource>, size: u64, checkpoint: Arc<str>) {
    shared.rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    lock(&shared.board).begin(size, checkpoint.clone());
    let deadline = Instant::now() + shared.config.round_timeout;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..shared.witnesses.len() {
        let resting = lock(&shared.witnesses[i].resume_at).is_some_and(|t| Instant::now() < t);
        if resting {
            continue;
        }
        let (shared, proofs, checkpoint) = (shared.clone(), proofs.clone(), checkpoint.clone());
        tasks.spawn(async move { ask(&shared, &proofs, i, size, &checkpoint, deadline).await });
    }
    let within =
        tokio::time::timeout_at(deadline.into(), async { while tasks.join_next().await.is_some() {} }).await;
    if within.is_err() {
        tasks.abort_all();
    }
    lock(&shared.board).end(size);
}

/// Why a witness gave no cosignature this round.
fn failed(shared: &Shared, i: usize, why: String) {
    let w = &shared.witnesses[i];
    let mut st = lock(&w.status);
    st.failures += 1;
    st.consecutive_failures = st.consecutive_failures.saturating_add(1);
    let shift = st.consecutive_failures.saturating_sub(1).min(16);
    let rest = shared.config.retry_backoff.saturating_mul(1 << shift).min(shared.config.max_backoff);
    // The reason may quote the witness; the server's log escapes every field.
    tracing::warn!(
        witness = %st.name,
        url = %st.url,
        failures_in_a_row = st.consecutive_failures,
        retry_in_ms = rest.as_millis() as u64,
        error = %why,
        "a witness gave no cosignature"
    );
    st.last_error = Some(why);
    *lock(&w.resume_at) = Some(Instant::now() + rest);
}

/// Why a witness's `200` answer gave no signature that counts. A plain Ed25519 note signature
/// (type 0x01) by the very key the policy names as a `cosignature/v1` key (type 0x04) is said
/// plainly: some witnesses answer that way (siglog's), and by default it does not count, since
/// a witness key is a cosignature key (C2SP tlog-policy, "Public key representation"; the
/// cosignature also states a time, which a plain signature does not).
fn unverified_answer(w: &Witness, checkpoint: &str, lines: &[String]) -> String {
    if let WitnessKey::Cosignature(k) = &w.key
        && let Some(plain) = plain_note_key(k)
        && lines.iter().any(|l| {
            let note = format!("{checkpoint}{l}\n");
            note::open(note.as_bytes(), std::slice::from_ref(&plain)).is_ok()
        })
    {
        return "answered 200 with a plain Ed25519 note signature (type 0x01) by its key, not a cosignature/v1 (type 0x04); the policy names the witness by a cosignature/v1 key, as the spec says a witness key is, so it does not count (to count such signatures: name the witness by its note key and set witness_note_signatures = true)".into();
    }
    "answered 200 without a cosignature that verifies with its key".into()
}

/// The plain Ed25519 note key (type 0x01) with the name and public key of a cosigner key.
fn plain_note_key(k: &CosignerKey) -> Option<VerifierKey> {
    use base64::Engine as _;
    let mut raw = Vec::with_capacity(33);
    raw.push(0x01);
    raw.extend_from_slice(k.public_key());
    let id = note::key_id(k.name(), 0x01, k.public_key());
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    VerifierKey::parse(&format!("{}+{id:08x}+{b64}", k.name())).ok()
}

/// Asks witness `i` to cosign, with 409 recovery and retries, until `deadline`.
async fn ask(
    shared: &Arc<Shared>,
    proofs: &Arc<dyn ProofSource>,
    i: usize,
    size: u64,
    checkpoint: &Arc<str>,
    deadline: Instant,
) {
    let slot = &shared.witnesses[i];
    let mut attempts = 0u32;
    let mut conflicts = 0u32;
    let mut backoff = shared.config.retry_backoff;
    loop {
        let old = lock(&slot.known).unwrap_or(0);
        if old > size {
            return failed(
                shared,
                i,
                format!(
                    "the witness has cosigned size {old} of this log, beyond this node's checkpoint ({size})"
                ),
            );
        }
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            let p = proofs.clone();
            match tokio::task::spawn_blocking(move || p.consistency_proof(old, size)).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    return failed(shared, i, format!("no consistency proof from {old} to {size}: {e}"));
                }
                Err(e) => return failed(shared, i, format!("proof task failed: {e}")),
            }
        };
        let body = match add_checkpoint_body(old, &proof, checkpoint) {
            Ok(b) => b,
            Err(e) => return failed(shared, i, e.to_string()),
        };
        lock(&slot.status).requests += 1;
        let http = slot.http.clone();
        let started = Instant::now();
        let answer = tokio::task::spawn_blocking(move || http.add_checkpoint(&body))
            .await
            .unwrap_or_else(|e| Err(CallError::Transport(format!("request task failed: {e}"))));
        let latency = started.elapsed();
        let retry = match answer {
            Ok(Answer::Cosigned(lines)) => {
                let good: Vec<String> = lines
                    .iter()
                    .filter(|l| {
                        let note = format!("{checkpoint}{l}\n");
                        matches!(shared.policy.witness_signed(i, note.as_bytes()), Cosigned::Valid(_))
                    })
                    .cloned()
                    .collect();
                if good.is_empty() {
                    *lock(&slot.known) = None;
                    let why = unverified_answer(&shared.policy.witnesses()[i], checkpoint, &lines);
                    return failed(shared, i, why);
                }
                *lock(&slot.known) = Some(size);
                let newly = lock(&shared.board).add(size, checkpoint, i, good);
                {
                    let mut st = lock(&slot.status);
                    st.cosigned_size = Some(size);
                    st.last_latency = Some(latency);
                    st.cosignatures += 1;
                    st.consecutive_failures = 0;
                }
                *lock(&slot.resume_at) = None;
                if newly {
                    shared.witnessed.send_if_modified(|s| {
                        let up = *s < size;
                        if up {
                            *s = size;
                        }
                        up
                    });
                }
                return;
            }
            Ok(Answer::Conflict(held)) => {
                conflicts += 1;
                *lock(&slot.known) = Some(held);
                if conflicts > 3 {
                    return failed(shared, i, format!("409 again and again (it holds size {held})"));
                }
                continue;
            }
            Ok(Answer::Refused { status: 422, body }) => {
                *lock(&slot.known) = None;
                return failed(
                    shared,
                    i,
                    format!(
                        "422: the witness refused the consistency proof from size {old} to {size} ({body:?}); the witness or this log is misbehaving"
                    ),
                );
            }
            Ok(Answer::Refused { status, body }) if status < 500 => {
                return failed(shared, i, format!("{status}: {body:?}"));
            }
            Ok(Answer::Refused { status, body }) => format!("{status}: {body:?}"),
            Err(e @ CallError::Answer(_)) => return failed(shared, i, e.to_string()),
            Err(e) => e.to_string(),
        };
        attempts += 1;
        if attempts >= shared.config.attempts || Instant::now() + backoff >= deadline {
            return failed(shared, i, retry);
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graven_core::checkpoint::Checkpoint;
    use graven_core::cosignature::Cosigner;
    use graven_core::hash::TreeSize;
    use graven_core::note::SignerKey;
    use graven_core::policy::ParseOptions;

    /// A witness named by a cosignature/v1 key that answers with a plain note signature by the
    /// same Ed25519 key (as siglog's does) is told apart from one whose answer is just wrong.
    #[test]
    fn a_plain_note_signature_by_the_witness_key_is_named_as_such() {
        let log = SignerKey::from_seed("example.com/log", [1; 32]).unwrap();
        let cosig = Cosigner::from_seed("w.example", [2; 32]).unwrap();
        let plain = SignerKey::from_seed("w.example", [2; 32]).unwrap();
        let stranger = SignerKey::from_seed("w.example", [3; 32]).unwrap();
        let text =
            format!("log {}\nwitness w {} http://127.0.0.1:9\nquorum w\n", log.verifier(), cosig.verifier());
        let policy = Policy::parse(text.as_bytes(), ParseOptions::default()).unwrap();
        let body = Checkpoint::new("example.com/log", TreeSize(3), Hash([4; 32])).unwrap().to_text();
        let checkpoint = log.sign(&body).unwrap();
        let line = |k: &SignerKey| k.signature_line(body.as_bytes()).trim_end().to_owned();
        let w = &policy.witnesses()[0];
        let why = unverified_answer(w, &checkpoint, &[line(&plain)]);
        assert!(why.contains("plain Ed25519 note signature (type 0x01)"), "{why}");
        assert!(why.contains("witness_note_signatures = true"), "{why}");
        let why = unverified_answer(w, &checkpoint, &[line(&stranger)]);
        assert_eq!(why, "answered 200 without a cosignature that verifies with its key");
        // The genuine cosignature does count (so it never reaches this message).
        let good = cosig.cosign(&body, 1_700_000_000).unwrap();
        let note = format!("{checkpoint}{good}");
        assert!(matches!(policy.witness_signed(0, note.as_bytes()), Cosigned::Valid(_)));
    }
}
