//! Witness cosignatures for the log's checkpoints: [`graven_witness_client`] wired to the
//! engine. Every committed checkpoint is offered to the rounds; consistency proofs come from
//! the log through a reader of its own; nothing here is on the ingest path.

use std::sync::{Arc, Mutex};

use graven_core::hash::{Hash, TreeSize};
use graven_core::note::VerifierKey;
use graven_engine::engine::Engine;
use graven_engine::reader::{LogReader, Source};
use graven_witness_client::{ProofSource, Witnessing};

use crate::config::WitnessingSetup;

/// The rounds and the task feeding them; stopped with the server.
#[derive(Debug)]
pub struct Started {
    pub witnessing: Witnessing,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Started {
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct ReaderProofs(Mutex<LogReader>);

impl ProofSource for ReaderProofs {
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, String> {
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        r.consistency_proof(TreeSize(old), TreeSize(new)).map_err(|e| e.to_string())
    }
}

/// Starts the rounds for `setup`'s policy (which must trust `vkey`).
pub fn start(
    setup: &WitnessingSetup,
    vkey: &VerifierKey,
    engine: &Engine,
    source: Source,
) -> Result<Started, String> {
    let witnessing = Witnessing::new(setup.policy.clone(), vkey, setup.client.clone())
        .map_err(|e| format!("{}: {e}", setup.policy_path.display()))?;
    let rounds = witnessing.start(Arc::new(ReaderProofs(Mutex::new(LogReader::on(source)))));
    let feeder = {
        let witnessing = witnessing.clone();
        let mut committed = engine.subscribe();
        tokio::spawn(async move {
            loop {
                let c = committed.borrow_and_update().clone();
                if !c.checkpoint.is_empty() {
                    witnessing.offer(c.size, c.checkpoint.clone());
                }
                if committed.changed().await.is_err() {
                    return;
                }
            }
        })
    };
    Ok(Started { witnessing, tasks: vec![rounds, feeder] })
}

/// `/v1/log`'s view of the witnessing.
pub fn info(w: &Witnessing) -> graven_api::WitnessingInfo {
    graven_api::WitnessingInfo {
        witnessed_size: w.witnessed().map(|c| c.size),
        published_size: w.published().map(|c| c.size),
        rounds: w.rounds(),
        witnesses: w
            .status()
            .into_iter()
            .map(|s| graven_api::WitnessInfo {
                name: s.name,
                url: s.url,
                cosigned_size: s.cosigned_size,
                last_latency_ms: s.last_latency.map(|d| d.as_millis() as u64),
                requests: s.requests,
                failures: s.failures,
                last_error: s.last_error.filter(|_| s.consecutive_failures > 0),
            })
            .collect(),
    }
}
