//! Prometheus metrics: ingest, batch sizes, commit latency, pool depth, storage errors, HTTP
//! responses by route and status, the build, and the process. Served in the classic text format
//! or OpenMetrics, as the scraper asks ([`exposition`]).

pub mod exposition;
mod process;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use graven_engine::engine::Engine;

use self::exposition::Exposition;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct OpLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WitnessLabels {
    witness: String,
}

/// Per-witness gauges, set from the rounds' status at each scrape.
#[derive(Debug, Default)]
struct WitnessMetrics {
    cosigned_size: Family<WitnessLabels, Gauge>,
    latency: Family<WitnessLabels, Gauge<f64, AtomicU64>>,
    requests: Family<WitnessLabels, Gauge>,
    failures: Family<WitnessLabels, Gauge>,
    up: Family<WitnessLabels, Gauge>,
    witnessed_size: Gauge,
    rounds: Gauge,
}

/// The trusted-time task's counters (registered only when a TSA is configured).
#[derive(Debug, Default)]
pub struct TsaMetrics {
    /// Requests sent to the TSA.
    pub requests: Counter,
    /// Requests that did not end with a stored token (TSA down or refusing, a token refused).
    pub failures: Counter,
    /// The size of the newest stamped checkpoint (-1: none).
    stamped_size: Gauge,
    /// Its `genTime`, in Unix seconds (-1: unknown).
    stamped_time: Gauge,
}

impl TsaMetrics {
    pub fn stamped(&self, size: u64, time: Option<graven_tsa::GenTime>) {
        self.stamped_size.set(size as i64);
        self.stamped_time.set(time.map_or(-1, |t| t.unix_seconds()));
    }
}

/// A source listener's counters (syslog, OpenBao's socket device): frames logged, frames not
/// logged again (their platform's id was), connections the server closed on an error.
#[derive(Debug, Default)]
pub struct StreamCounters {
    pub logged: Counter,
    pub duplicates: Counter,
    pub closed: Counter,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The standard `process_*` metrics, which carry no `graven_` prefix.
    process: Registry,
    engine: Engine,
    pending_events: Gauge,
    pending_bytes: Gauge,
    tree_size: Gauge,
    poisoned: Gauge,
    indexed: Arc<AtomicU64>,
    index_size: Gauge,
    index_lag: Gauge,
    pub http: Family<HttpLabels, Counter>,
    writer: Gauge,
    store_requests: Family<OpLabels, Gauge>,
    /// A shared log's replay claims (`replay_claims`), by outcome; set by [`Metrics::set_replay_claims`].
    replay_claims: Family<OutcomeLabels, Gauge>,
    replay_counts: std::sync::OnceLock<Arc<graven_auth::sigauth::ClaimCounts>>,
    /// `denied` records appended to the log.
    pub denied_records: Counter,
    /// `denied` records not appended: over the rate limit (or the log refused them).
    pub denied_dropped: Counter,
    /// The syslog listener: messages logged, messages not logged again (their `event_id` was),
    /// connections the server closed on an error (a message it could not log).
    pub syslog: StreamCounters,
    /// The OpenBao `socket` audit device's listener: entries logged, entries not logged again
    /// (their request id and type were), connections closed on an error.
    pub openbao_socket: StreamCounters,
    witness: WitnessMetrics,
    /// Alerts raised, by rule; webhook posts, by outcome.
    alerts: Family<RuleLabels, Counter>,
    webhooks: Family<OutcomeLabels, Counter>,
    witnessing: std::sync::OnceLock<graven_witness_client::Witnessing>,
    pub tsa: TsaMetrics,
}

impl Metrics {
    /// `indexed` is the search index's progress: entries `0..indexed` are searchable.
    /// `witnessed`: the log has a witness policy (the witness metrics are shown only then).
    pub fn new(engine: Engine, indexed: Arc<AtomicU64>, witnessed: bool) -> Arc<Self> {
        Self::with_timestamping(engine, indexed, witnessed, false)
    }

    /// [`Metrics::new`]; `timestamped`: a TSA is configured (the trusted-time metrics are
    /// shown only then).
    pub fn with_timestamping(
        engine: Engine,
        indexed: Arc<AtomicU64>,
        witnessed: bool,
        timestamped: bool,
    ) -> Arc<Self> {
        let mut registry = Registry::with_prefix("graven");
        registry.register(
            "build",
            "The running build: its version, target and profile (always 1)",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                ("os", std::env::consts::OS),
                ("arch", std::env::consts::ARCH),
                ("profile", if cfg!(debug_assertions) { "debug" } else { "release" }),
            ]),
        );
        let mut process = Registry::default();
        process.register_collector(Box::new(process::ProcessCollector));
        let s = engine.stats();
        registry.register("events_committed", "Events durably committed", s.events_committed.clone());
        registry.register("commits", "Group commits", s.commits.clone());
        registry.register(
            "commit_errors",
            "Commits that failed on a write or fsync error",
            s.commit_errors.clone(),
        );
        registry.register("batch_events", "Events per group commit", s.batch_events.clone());
        registry.register(
            "commit_seconds",
            "Time from commit start to durable signed checkpoint",
            s.commit_seconds.clone(),
        );
        let pending_events = Gauge::default();
        let pending_bytes = Gauge::default();
        let tree_size = Gauge::default();
        let poisoned = Gauge::default();
        registry.register("pending_events", "Events waiting in the pending pool", pending_events.clone());
        registry.register("pending_bytes", "Bytes waiting in the pending pool", pending_bytes.clone());
        registry.register("tree_size", "Entries covered by the latest checkpoint", tree_size.clone());
        registry.register("poisoned", "1 if the log refuses writes after a storage error", poisoned.clone());
        let index_size = Gauge::default();
        let index_lag = Gauge::default();
        registry.register("index_size", "Entries indexed for search", index_size.clone());
        registry.register(
            "index_lag_events",
            "Committed entries not yet searchable (the search index follows the log)",
            index_lag.clone(),
        );
        let writer = Gauge::default();
        registry.register("writer", "1 if this node takes writes (always, for a local log)", writer.clone());
        let store_requests = Family::<OpLabels, Gauge>::default();
        registry.register(
            "store_requests",
            "Requests made to the object store since start, by operation (shared logs only)",
            store_requests.clone(),
        );
        let replay_claims = Family::<OutcomeLabels, Gauge>::default();
        registry.register(
            "replay_claims",
            "Signed requests this node claimed in the shared replay cache since start, by outcome: new, taken (a replay), unavailable (refused with 503) (shared logs with replay_claims only)",
            replay_claims.clone(),
        );
        let http = Family::<HttpLabels, Counter>::default();
        registry.register("http_responses", "HTTP responses by route and status", http.clone());
        let denied_records = Counter::default();
        let denied_dropped = Counter::default();
        registry.register("denied_records", "Refused requests recorded in the log", denied_records.clone());
        registry.register(
            "denied_records_dropped",
            "Refused requests not recorded because of the rate limit",
            denied_dropped.clone(),
        );
        let syslog = StreamCounters::default();
        registry.register("syslog_messages", "Syslog messages logged", syslog.logged.clone());
        registry.register(
            "syslog_duplicates",
            "Syslog messages not logged again: their event_id was logged before",
            syslog.duplicates.clone(),
        );
        registry.register(
            "syslog_connections_closed",
            "Syslog connections the server closed on a message it could not log (the reason is in the server log)",
            syslog.closed.clone(),
        );
        let openbao_socket = StreamCounters::default();
        registry.register(
            "openbao_socket_entries",
            "OpenBao socket audit device entries logged",
            openbao_socket.logged.clone(),
        );
        registry.register(
            "openbao_socket_duplicates",
            "OpenBao socket audit device entries not logged again: their request id and type were logged before",
            openbao_socket.duplicates.clone(),
        );
        registry.register(
            "openbao_socket_connections_closed",
            "OpenBao socket audit device connections the server closed on an entry it could not log (the reason is in the server log)",
            openbao_socket.closed.clone(),
        );
        let alerts = Family::<RuleLabels, Counter>::default();
        registry.register("alerts", "Alerts raised (graven.alert events appended), by rule", alerts.clone());
        let webhooks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "alert_webhook_posts",
            "Alert webhook posts, by outcome (delivered, failed: retried)",
            webhooks.clone(),
        );
        let witness = WitnessMetrics::default();
        if witnessed {
            registry.register(
                "witness_cosigned_size",
                "The newest tree size each witness cosigned for this node",
                witness.cosigned_size.clone(),
            );
            registry.register(
                "witness_latency_seconds",
                "Each witness's last successful add-checkpoint, in seconds",
                witness.latency.clone(),
            );
            registry.register(
                "witness_requests",
                "add-checkpoint requests sent to each witness",
                witness.requests.clone(),
            );
            registry.register(
                "witness_failures",
                "Witness rounds each witness failed",
                witness.failures.clone(),
            );
            registry.register(
                "witness_up",
                "1 if the witness's last round gave a cosignature",
                witness.up.clone(),
            );
            registry.register(
                "witnessed_tree_size",
                "The size of the newest checkpoint that met the witness quorum",
                witness.witnessed_size.clone(),
            );
            registry.register("witness_rounds", "Witness rounds started", witness.rounds.clone());
        }
        let tsa = TsaMetrics::default();
        tsa.stamped_size.set(-1);
        tsa.stamped_time.set(-1);
        if timestamped {
            registry.register("tsa_requests", "Time-stamp requests sent to the TSA", tsa.requests.clone());
            registry.register(
                "tsa_failures",
                "Time-stamp requests that stored no token (TSA unreachable or refusing, token refused)",
                tsa.failures.clone(),
            );
            registry.register(
                "tsa_stamped_size",
                "The tree size of the newest checkpoint with a stored time-stamp token (-1: none)",
                tsa.stamped_size.clone(),
            );
            registry.register(
                "tsa_stamped_time_seconds",
                "The TSA's genTime of that token, in Unix seconds (-1: unknown)",
                tsa.stamped_time.clone(),
            );
        }
        Arc::new(Metrics {
            registry,
            process,
            engine,
            pending_events,
            pending_bytes,
            tree_size,
            poisoned,
            indexed,
            index_size,
            index_lag,
            http,
            writer,
            store_requests,
            replay_claims,
            replay_counts: std::sync::OnceLock::new(),
            denied_records,
            denied_dropped,
            syslog,
            openbao_socket,
            witness,
            alerts,
            webhooks,
            witnessing: std::sync::OnceLock::new(),
            tsa,
        })
    }

    /// Reports the shared replay claims from now on (a shared log with `replay_claims`).
    pub fn set_replay_claims(&self, counts: Arc<graven_auth::sigauth::ClaimCounts>) {
        let _ = self.replay_counts.set(counts);
    }

    /// Reports the witness rounds from now on.
    /// An alert raised by `rule`.
    pub fn alert(&self, rule: &str) {
        self.alerts.get_or_create(&RuleLabels { rule: rule.to_owned() }).inc();
    }

    /// A webhook post that was `delivered` or `failed`.
    pub fn webhook(&self, outcome: &'static str) {
        self.webhooks.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn set_witnessing(&self, w: graven_witness_client::Witnessing) {
        let _ = self.witnessing.set(w);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        self.render_as(Exposition::OpenMetrics)
    }

    /// The exposition in the format asked for.
    pub fn render_as(&self, format: Exposition) -> String {
        let s = self.engine.stats();
        self.pending_events.set(s.pending_events.load(Ordering::SeqCst) as i64);
        self.pending_bytes.set(s.pending_bytes.load(Ordering::SeqCst) as i64);
        let size = self.engine.committed().size;
        let indexed = self.indexed.load(Ordering::Relaxed);
        self.tree_size.set(size as i64);
        self.index_size.set(indexed as i64);
        self.index_lag.set(size.saturating_sub(indexed) as i64);
        self.poisoned.set(i64::from(self.engine.is_poisoned()));
        self.writer.set(i64::from(self.engine.is_writer()));
        if let Some(store) = self.engine.store() {
            for (op, n) in store.request_counts() {
                self.store_requests.get_or_create(&OpLabels { op }).set(n as i64);
            }
        }
        if let Some(c) = self.replay_counts.get() {
            for (outcome, n) in [("new", &c.new), ("taken", &c.taken), ("unavailable", &c.unavailable)] {
                self.replay_claims
                    .get_or_create(&OutcomeLabels { outcome })
                    .set(n.load(Ordering::Relaxed) as i64);
            }
        }
        if let Some(w) = self.witnessing.get() {
            for st in w.status() {
                let l = WitnessLabels { witness: st.name.clone() };
                self.witness.cosigned_size.get_or_create(&l).set(st.cosigned_size.map_or(-1, |s| s as i64));
                if let Some(d) = st.last_latency {
                    self.witness.latency.get_or_create(&l).set(d.as_secs_f64());
                }
                self.witness.requests.get_or_create(&l).set(st.requests as i64);
                self.witness.failures.get_or_create(&l).set(st.failures as i64);
                self.witness
                    .up
                    .get_or_create(&l)
                    .set(i64::from(st.consecutive_failures == 0 && st.cosignatures > 0));
            }
            self.witness.witnessed_size.set(w.witnessed().map_or(-1, |c| c.size as i64));
            self.witness.rounds.set(w.rounds() as i64);
        }
        let mut out = String::new();
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let encoded = encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &self.process))
            .and_then(|()| encode_eof(&mut out));
        if encoded.is_err() {
            out.clear();
        }
        match format {
            Exposition::OpenMetrics => out,
            Exposition::Classic => exposition::openmetrics_to_classic(&out),
        }
    }
}
