//! Alerts (docs/rules.md): the rules of `[[rules]]` (reloaded on SIGHUP) evaluated on every
//! committed event, in log order ([`graven_rules::Evaluator`]); an alert is itself an event
//! (`graven.alert`, by `graven:server`, naming the rule and the index of the event that raised
//! it), counted in `/metrics`, and delivered to the `[alerts]` webhooks.
//!
//! **The log is the queue.** Evaluation keeps a watermark, `<data>/alerts/evaluated`: every
//! event below it has been evaluated and its alerts committed. It is written (durably) only
//! after the alerts it covers are acknowledged (at once then, else at most once a second), so a crash re-evaluates the events since, and
//! an alert already in the log for a (rule, event index) is not appended again. What the rules
//! know of the past (last activity, actions performed, recent counts) is learnt by reading the
//! log from its start when rules are first in force. Each webhook keeps its own cursor
//! (`<data>/alerts/webhook-<digest>`): the alert events after it are posted in order, each
//! retried until the receiver answers 2xx, and the cursor moves only then: delivery is at
//! least once (a receiver tells a repeat by the `Graven-Alert-Index` header).
//!
//! Only a writer appends: on a shared log's replica the task waits.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use graven_core::hash::TreeSize;
use graven_rules::{Alert, Evaluator, Rules};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http::AppState;
use crate::http::audit;

/// Events read per step.
const STEP: u64 = 4096;
/// The longest pause between two attempts (appending alerts, posting to a webhook).
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a webhook may take to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The state directory's files.
fn dir(data: &Path) -> PathBuf {
    data.join("alerts")
}

fn read_mark(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn write_mark(path: &Path, value: u64) -> std::io::Result<()> {
    let fs = graven_fs::RealFs;
    if let Some(parent) = path.parent() {
        graven_fs::atomic::create_dir_all(&fs, parent, graven_fs::atomic::Access::Default)?;
    }
    graven_fs::atomic::replace(&fs, path, format!("{value}\n").as_bytes(), graven_fs::atomic::Access::Default)
}

/// How often a mark that moved is written when nothing forces it: the marks are not on the
/// path of a commit, and an older mark only means reading (never raising or posting) again.
const MARK_EVERY: Duration = Duration::from_secs(1);

/// A durable mark (the watermark, a webhook's cursor) in memory, written when forced or at most
/// once per [`MARK_EVERY`], so that a busy log does not cost an fsync per commit.
struct Mark {
    path: PathBuf,
    value: u64,
    written: u64,
    at: std::time::Instant,
}

impl Mark {
    fn new(path: PathBuf, value: u64) -> Mark {
        Mark { path, value, written: value, at: std::time::Instant::now() }
    }

    /// Moves the mark to `to`; writes it if `force`, or if it moved and was last written
    /// [`MARK_EVERY`] ago.
    fn advance(&mut self, to: u64, force: bool) -> std::io::Result<()> {
        self.value = to;
        if self.value != self.written && (force || self.at.elapsed() >= MARK_EVERY) {
            write_mark(&self.path, self.value)?;
            self.written = self.value;
            self.at = std::time::Instant::now();
        }
        Ok(())
    }
}

/// The entries `[from, to)` of the log at size `to`, read on a blocking thread.
async fn read(st: &Arc<AppState>, from: u64, to: u64) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let reader = st.reader.clone();
    tokio::task::spawn_blocking(move || {
        let r = reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity((to - from) as usize);
        let mut i = from;
        while i < to {
            let (first, entries) = r.bundle(i, TreeSize(to)).map_err(|e| e.to_string())?;
            for (k, e) in entries.into_iter().enumerate() {
                let at = first + k as u64;
                if at >= i && at < to {
                    out.push((at, e));
                }
            }
            i = first + 256;
        }
        Ok(out)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Where evaluation resumes: the kept watermark, or on a first start the log's size now (rules
/// apply from when alerting first ran), kept at once so that a crash cannot move it on.
pub fn start_mark(data: &Path, size: u64) -> std::io::Result<u64> {
    let path = dir(data).join("evaluated");
    match read_mark(&path) {
        Some(m) => Ok(m),
        None => write_mark(&path, size).map(|()| size),
    }
}

/// A webhook's cursor: the kept one, or on its first start the log's size now.
pub fn start_cursor(data: &Path, url: &str, size: u64) -> std::io::Result<u64> {
    let path = dir(data).join(webhook_file(url));
    match read_mark(&path) {
        Some(m) => Ok(m),
        None => write_mark(&path, size).map(|()| size),
    }
}

/// Evaluates the rules on every committed event from `mark` ([`start_mark`]) until the task
/// is aborted.
pub async fn evaluate(st: Arc<AppState>, data: PathBuf, mark: u64) {
    let mut mark = Mark::new(dir(&data).join("evaluated"), mark);
    let mut committed = st.engine.subscribe();
    let mut rules: Arc<Rules> = st.live().rules.clone();
    let mut eval = Evaluator::new((*rules).clone());
    // How far the evaluator has learnt from, and whether the alerts already in the log after
    // the watermark are known (after a start, or a replica becoming the writer).
    let mut learnt = 0u64;
    let mut known: Option<HashSet<(String, u64)>> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        let size = st.engine.committed().size;
        let live = st.live().rules.clone();
        if !Arc::ptr_eq(&live, &rules) {
            eval.set_rules((*live).clone());
            rules = live;
        }
        let w = mark.value;
        let step = async {
            if !st.engine.is_writer() {
                known = None;
                return Ok(false);
            }
            if rules.is_empty() {
                // Nothing to raise: move the watermark on (rules added later apply from then);
                // learning waits for rules.
                mark.advance(size, false).map_err(|e| e.to_string())?;
                return Ok(false);
            }
            // Learn the past below the watermark without alerting.
            while learnt < w {
                let to = (learnt + STEP).min(w);
                for (i, e) in read(&st, learnt, to).await? {
                    eval.observe(i, &e, false);
                }
                learnt = to;
            }
            if known.is_none() {
                let mut k = HashSet::new();
                let mut at = w;
                while at < size {
                    let to = (at + STEP).min(size);
                    for (_, e) in read(&st, at, to).await? {
                        if let Ok(v) = serde_json::from_slice::<Value>(&e)
                            && let Some(key) = Alert::key_of_event(&v)
                        {
                            k.insert(key);
                        }
                    }
                    at = to;
                }
                known = Some(k);
            }
            if w >= size {
                // Idle: write a mark that moved since it was last written.
                mark.advance(w, false).map_err(|e| e.to_string())?;
                return Ok(false);
            }
            let to = (w + STEP).min(size);
            let mut raised: Vec<Alert> = Vec::new();
            for (i, e) in read(&st, w, to).await? {
                raised.extend(eval.observe(i, &e, true));
            }
            learnt = to;
            raised.retain(|a| !known.as_ref().is_some_and(|k| k.contains(&(a.rule.clone(), a.event_index))));
            if !raised.is_empty() {
                let bodies: Vec<Value> = raised.iter().map(Alert::event).collect();
                audit::record_alerts(&st, &bodies).await.map_err(|p| p.detail)?;
                for a in &raised {
                    st.metrics.alert(&a.rule);
                }
            }
            // Written at once after alerts were committed; otherwise now and then (a crash re-reads
            // the events since, and an alert the log holds is not raised again).
            mark.advance(to, !raised.is_empty()).map_err(|e| e.to_string())?;
            Ok::<bool, String>(to < size)
        };
        match step.await {
            Ok(true) => {
                backoff = Duration::from_millis(200);
                continue;
            }
            Ok(false) => backoff = Duration::from_millis(200),
            Err(e) => {
                // The evaluator may have learnt part of a range it will read again: start over
                // from the watermark (the learning pass rebuilds it).
                tracing::warn!(error = %e, "alerts: evaluating failed; retrying");
                eval = Evaluator::new((*rules).clone());
                learnt = 0;
                known = None;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        // Wait for the log to grow (or a reload, or a role change: checked every few seconds).
        let _ = tokio::time::timeout(Duration::from_secs(2), committed.changed()).await;
    }
}

/// The file name part of a webhook's cursor.
fn webhook_file(url: &str) -> String {
    let d = Sha256::digest(url.as_bytes());
    format!("webhook-{}", graven_core::hex::encode(&d[..8]))
}

/// Posts every alert event from `cursor` ([`start_cursor`]) on to `url`, in order, until the
/// task is aborted.
pub async fn deliver(st: Arc<AppState>, data: PathBuf, url: String, cursor: u64) {
    let mut cursor = Mark::new(dir(&data).join(webhook_file(&url)), cursor);
    let mut committed = st.engine.subscribe();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(WEBHOOK_TIMEOUT))
        .build()
        .new_agent();
    let mut backoff = Duration::from_secs(1);
    loop {
        let size = st.engine.committed().size;
        let from = cursor.value;
        if from < size {
            let to = (from + STEP).min(size);
            let entries = match read(&st, from, to).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "alerts: reading the log for a webhook failed");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            for (i, e) in entries {
                let Ok(event) = serde_json::from_slice::<Value>(&e) else { continue };
                if Alert::key_of_event(&event).is_none() {
                    continue;
                }
                let body = serde_json::json!({"origin": st.origin, "index": i, "alert": event}).to_string();
                loop {
                    let (agent, url2, body2) = (agent.clone(), url.clone(), body.clone());
                    let sent = tokio::task::spawn_blocking(move || {
                        agent
                            .post(&url2)
                            .header("content-type", "application/json")
                            .header("graven-alert-index", i.to_string())
                            .send(body2)
                            .map(|r| r.status().as_u16())
                    })
                    .await;
                    match sent {
                        Ok(Ok(s)) if (200..300).contains(&s) => {
                            st.metrics.webhook("delivered");
                            backoff = Duration::from_secs(1);
                            break;
                        }
                        other => {
                            st.metrics.webhook("failed");
                            let why = match other {
                                Ok(Ok(s)) => format!("answered {s}"),
                                Ok(Err(e)) => e.to_string(),
                                Err(e) => e.to_string(),
                            };
                            tracing::warn!(url = %url, index = i, error = %why, "alerts: webhook delivery failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }
                // Delivered: the cursor passes it for good.
                if let Err(e) = cursor.advance(i + 1, true) {
                    tracing::error!(error = %e, url = %url, "alerts: cannot keep the webhook's cursor");
                }
            }
            if let Err(e) = cursor.advance(to, false) {
                tracing::error!(error = %e, url = %url, "alerts: cannot keep the webhook's cursor");
            }
            continue;
        }
        // Idle: write a cursor that moved since it was last written.
        if let Err(e) = cursor.advance(from, false) {
            tracing::error!(error = %e, url = %url, "alerts: cannot keep the webhook's cursor");
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), committed.changed()).await;
    }
}
