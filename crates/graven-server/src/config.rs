//! Configuration: defaults, then a TOML file, then environment variables, then flags.
//!
//! The binary turns flags and environment variables into an [`Overrides`] (clap reads both,
//! flags first); [`resolve`] lays those over the file and the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use graven_engine::engine::EngineConfig;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
pub const DEFAULT_DATA: &str = "./graven-data";
pub const DEFAULT_ORIGIN: &str = "localhost/graven";
/// Largest config file read.
const MAX_CONFIG_FILE: u64 = 64 << 10;

/// Settings from a TOML file. Every key is optional; unknown keys are an error (a typo should
/// not silently fall back to a default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub origin: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub max_batch_events: Option<usize>,
    pub max_batch_bytes: Option<usize>,
    pub max_batch_wait_ms: Option<u64>,
    pub max_pending_events: Option<usize>,
    pub max_pending_bytes: Option<usize>,
    pub body_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub header_timeout_ms: Option<u64>,
    /// On SIGTERM: how long requests in flight may take to finish before the server stops
    /// anyway (live streams are ended at once). Default 10,000, well inside the 30 s
    /// Kubernetes gives a pod before SIGKILL.
    pub drain_timeout_ms: Option<u64>,
    /// The request and error log on standard error: `text` (default) or `json`.
    pub log_format: Option<String>,
    pub public_read_path: Option<bool>,
    /// HTTPS: the server's certificate chain and private key (PEM files).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// mTLS: the CAs (PEM) that client certificates must chain to, and the SPIFFE trust
    /// domains each vouches for.
    pub client_ca: Option<ClientCaSetting>,
    pub client_auth: Option<crate::tls::ClientAuth>,
    /// SPIFFE ID → identity id (see docs/identities.md).
    pub spiffe_ids: Option<std::collections::BTreeMap<String, String>>,
    /// OIDC/JWT federation: issuers and trust policies.
    pub oidc: Option<graven_auth::oidc::OidcConfig>,
    /// RFC 9421 signatures: how far `created` may be from now, each way, in seconds.
    pub signature_window_seconds: Option<u64>,
    /// Client-signed events: how far `signed_at` may be from now, each way, in seconds.
    pub client_signature_window_seconds: Option<u64>,
    /// `s3://bucket/prefix`: keep the log in object storage, shared by every node started on
    /// the same prefix (one writer, the rest read replicas). Default: `<data>/log`.
    pub storage: Option<String>,
    /// The log's signer key file. Default: `<data>/log.key`, created on first start. Every
    /// node of a shared log must be given the same key.
    pub key: Option<PathBuf>,
    /// Where this node takes writes, as other nodes should redirect to it
    /// (default: `http(s)://<listen address>`).
    pub advertise_url: Option<String>,
    /// A shared log's writer lease: a standby takes over this long after the writer stops
    /// renewing it.
    pub lease_ttl_ms: Option<u64>,
    /// The writer prepares and commits the next batch while the previous ones are made
    /// durable and published (default: on a local disk yes, on S3 no; docs/storage.md,
    /// docs/scale-out.md).
    pub pipeline_commits: Option<bool>,
    /// S3 endpoint and region; the AWS environment variables are used when these are unset.
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    /// Object Lock retention of tiles, bundles and archived checkpoints: `compliance` or
    /// `governance`, for `retention_days`. Unset: the bucket's default retention (a bucket
    /// without one needs both); never weaker than that default.
    pub retention_mode: Option<String>,
    pub retention_days: Option<u64>,
    /// Start even if the bucket has no Object Lock (history is then deletable by anyone
    /// holding the bucket's credentials).
    pub allow_no_object_lock: Option<bool>,
    /// MiB of tiles and bundles a node on S3 keeps in memory (default 128).
    pub tile_cache_mb: Option<u64>,
    /// `s3://bucket/prefix`: a shared log's replay cache for RFC 9421 signatures, shared by
    /// every node (docs/scale-out.md). Unset: each node remembers only what it saw.
    pub replay_claims: Option<String>,
    /// A C2SP tlog-policy file naming the witnesses (with their URLs) that cosign each
    /// checkpoint, and the quorum (see docs/witness.md).
    pub witness_policy: Option<PathBuf>,
    /// Count plain Ed25519 note signatures (type 0x01) from witnesses whose policy key is a
    /// note key, as some witnesses answer; default: cosignature/v1 keys only, as the spec says.
    pub witness_note_signatures: Option<bool>,
    /// One `add-checkpoint` request's timeout (default 5,000).
    pub witness_timeout_ms: Option<u64>,
    /// The longest a `?witnessed=true` request waits for the quorum (default 10,000).
    pub witness_wait_ms: Option<u64>,
    /// The least time between the starts of two witness rounds (default 1,000; 0 asks the
    /// witnesses about every checkpoint).
    pub witness_interval_ms: Option<u64>,
    /// An RFC 3161 Time-Stamp Authority that stamps the latest checkpoint (docs/trusted-time.md):
    /// its URL, the PEM file of the root(s) its certificate must chain to, an optional policy
    /// OID to ask for and require, and the least number of seconds between two requests.
    pub tsa_url: Option<String>,
    pub tsa_cert: Option<PathBuf>,
    pub tsa_policy: Option<String>,
    pub tsa_interval: Option<u64>,
    /// How many refused requests become `denied` records in the log (the rest are counted and
    /// summed up every 10 s). Reloaded on SIGHUP.
    pub denied_records: Option<DeniedRecordsConfig>,
    /// `[syslog]`: RFC 5424 messages over TCP or TLS (docs/sources.md).
    pub syslog: Option<SyslogFileConfig>,
    /// `[openbao_socket]`: OpenBao's (or Vault's) `socket` audit device (docs/sources.md).
    pub openbao_socket: Option<OpenBaoSocketFileConfig>,
    /// `[[rules]]`: alert rules (docs/rules.md). Reloaded on SIGHUP.
    #[serde(default)]
    pub rules: Vec<graven_rules::RuleConfig>,
    /// `[alerts]`: where alerts are delivered (docs/rules.md).
    pub alerts: Option<AlertsFileConfig>,
}

/// `[alerts]`: webhooks that receive every alert (JSON, retried until answered 2xx).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsFileConfig {
    /// `http://` or `https://` URLs.
    #[serde(default)]
    pub webhooks: Vec<String>,
}

/// Most alert webhooks.
const MAX_WEBHOOKS: usize = 16;

fn resolve_alerts(file: &FileConfig) -> Result<(graven_rules::Rules, Vec<String>), ConfigError> {
    let rules = graven_rules::Rules::from_config(&file.rules)
        .map_err(|e| ConfigError::Setting(format!("[[rules]]: {e}")))?;
    let webhooks = file.alerts.as_ref().map(|a| a.webhooks.clone()).unwrap_or_default();
    if webhooks.len() > MAX_WEBHOOKS {
        return Err(ConfigError::Setting(format!(
            "[alerts] webhooks: {} given, at most {MAX_WEBHOOKS}",
            webhooks.len()
        )));
    }
    for w in &webhooks {
        let ok = (w.starts_with("https://") || w.starts_with("http://"))
            && w.len() <= 2048
            && !w.contains(char::is_whitespace);
        if !ok {
            return Err(ConfigError::Invalid {
                what: "[alerts] webhook",
                value: w.clone(),
                why: "expected an http:// or https:// URL without spaces",
            });
        }
    }
    Ok((rules, webhooks))
}

/// `[openbao_socket]`: a listener for OpenBao's `socket` audit device (TCP, one JSON entry
/// per line), reported by a `source` identity with a grant for `openbao`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenBaoSocketFileConfig {
    /// `IP:PORT` (`--bao-audit-listen`).
    pub listen: Option<String>,
    /// The source identity that attests the entries (`--bao-audit-identity`).
    pub identity: Option<String>,
    /// The entry types logged: `request`, `response` (default `["response"]`).
    pub types: Option<Vec<String>>,
    /// Longest entry (default 1 MiB).
    pub max_frame_bytes: Option<usize>,
    /// Most open connections (default 64); more are refused.
    pub max_connections: Option<usize>,
}

/// The resolved `[openbao_socket]` settings.
#[derive(Debug, Clone)]
pub struct OpenBaoSocketSetup {
    pub stream: StreamSetup,
    /// The entry types logged (of `graven_sources::openbao::TYPES`).
    pub types: Vec<&'static str>,
}

/// Default longest OpenBao audit entry.
pub const DEFAULT_OPENBAO_MAX_FRAME_BYTES: usize = 1 << 20;
/// Longest OpenBao audit entry accepted as a setting.
const MAX_OPENBAO_FRAME_BYTES: usize = 16 << 20;

/// `[syslog]`: a listener for RFC 5424 messages, octet-counted (RFC 6587) over TCP or TLS
/// (RFC 5425), reported by a `source` identity with a grant for `syslog`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogFileConfig {
    /// `IP:PORT` (`--syslog-listen`).
    pub listen: Option<String>,
    /// The source identity that attests messages from a connection without a client
    /// certificate (`--syslog-identity`).
    pub identity: Option<String>,
    /// TLS (RFC 5425) with the server's `tls_cert`, `tls_key` and client CAs.
    pub tls: Option<bool>,
    /// Longest message (default 65,536 bytes).
    pub max_frame_bytes: Option<usize>,
    /// Most open syslog connections (default 1,024); more are refused.
    pub max_connections: Option<usize>,
}

/// The resolved settings of a source's own listener (`[syslog]`, `[openbao_socket]`).
#[derive(Debug, Clone)]
pub struct StreamSetup {
    pub listen: SocketAddr,
    /// Attests a connection without a client certificate; without it such a connection is
    /// refused.
    pub identity: Option<String>,
    /// TLS with the server's certificate (syslog only: RFC 5425).
    pub tls: bool,
    pub max_frame_bytes: usize,
    pub max_connections: usize,
}

/// Default longest syslog message.
pub const DEFAULT_SYSLOG_MAX_FRAME_BYTES: usize = 64 << 10;
/// RFC 5425 §4.3.1: a receiver must take messages of up to 2,048 octets.
const MIN_SYSLOG_FRAME_BYTES: usize = 2048;
/// Longest syslog message accepted as a setting: one entry's worth.
const MAX_SYSLOG_FRAME_BYTES: usize = 1 << 20;

fn resolve_syslog(
    o: &Overrides,
    file: &FileConfig,
    tls: Option<&crate::tls::TlsConfig>,
) -> Result<Option<StreamSetup>, ConfigError> {
    let f = file.syslog.clone().unwrap_or_default();
    let Some(listen_s) = o.syslog_listen.clone().or(f.listen.clone()) else {
        if file.syslog.is_some() || o.syslog_identity.is_some() {
            return Err(ConfigError::Setting(
                "[syslog] needs listen (or --syslog-listen), e.g. listen = \"127.0.0.1:6514\"".into(),
            ));
        }
        return Ok(None);
    };
    let listen: SocketAddr = listen_s.parse().map_err(|_| ConfigError::Invalid {
        what: "syslog listen address",
        value: listen_s.clone(),
        why: "expected IP:PORT, e.g. 127.0.0.1:6514",
    })?;
    let identity = o.syslog_identity.clone().or(f.identity.clone());
    let use_tls = f.tls.unwrap_or(false);
    if use_tls && tls.is_none() {
        return Err(ConfigError::Setting(
            "[syslog] tls = true needs the server's tls_cert and tls_key (and client_ca for client certificates)"
                .into(),
        ));
    }
    let client_certs = use_tls && tls.is_some_and(|t| !t.client_cas.is_empty());
    if identity.is_none() && !client_certs {
        return Err(ConfigError::Setting(
            "[syslog] needs identity (or --syslog-identity): the source identity that attests the messages of a connection without a client certificate".into(),
        ));
    }
    let max_frame_bytes = f.max_frame_bytes.unwrap_or(DEFAULT_SYSLOG_MAX_FRAME_BYTES);
    if !(MIN_SYSLOG_FRAME_BYTES..=MAX_SYSLOG_FRAME_BYTES).contains(&max_frame_bytes) {
        return Err(ConfigError::Invalid {
            what: "syslog max_frame_bytes",
            value: max_frame_bytes.to_string(),
            why: "from 2048 (RFC 5425's least) to 1048576",
        });
    }
    let max_connections = f.max_connections.unwrap_or(1024);
    if max_connections == 0 {
        return Err(ConfigError::Invalid {
            what: "syslog max_connections",
            value: "0".into(),
            why: "must be at least 1",
        });
    }
    Ok(Some(StreamSetup { listen, identity, tls: use_tls, max_frame_bytes, max_connections }))
}

fn resolve_openbao_socket(
    o: &Overrides,
    file: &FileConfig,
) -> Result<Option<OpenBaoSocketSetup>, ConfigError> {
    let f = file.openbao_socket.clone().unwrap_or_default();
    let Some(listen_s) = o.bao_audit_listen.clone().or(f.listen.clone()) else {
        if file.openbao_socket.is_some() || o.bao_audit_identity.is_some() {
            return Err(ConfigError::Setting(
                "[openbao_socket] needs listen (or --bao-audit-listen), e.g. listen = \"127.0.0.1:9090\""
                    .into(),
            ));
        }
        return Ok(None);
    };
    let listen: SocketAddr = listen_s.parse().map_err(|_| ConfigError::Invalid {
        what: "openbao_socket listen address",
        value: listen_s.clone(),
        why: "expected IP:PORT, e.g. 127.0.0.1:9090",
    })?;
    let Some(identity) = o.bao_audit_identity.clone().or(f.identity.clone()) else {
        return Err(ConfigError::Setting(
            "[openbao_socket] needs identity (or --bao-audit-identity): the source identity that attests the entries (OpenBao's socket device has no TLS, so the listener's identity is the only attester)".into(),
        ));
    };
    let types = match &f.types {
        None => vec!["response"],
        Some(list) if list.is_empty() => {
            return Err(ConfigError::Invalid {
                what: "openbao_socket types",
                value: "[]".into(),
                why: "name at least one of request, response",
            });
        }
        Some(list) => {
            let mut types = Vec::new();
            for t in list {
                let Some(known) = graven_sources::openbao::TYPES.iter().find(|k| *k == t) else {
                    return Err(ConfigError::Invalid {
                        what: "openbao_socket types",
                        value: t.clone(),
                        why: "each one of request, response",
                    });
                };
                if !types.contains(known) {
                    types.push(*known);
                }
            }
            types
        }
    };
    let max_frame_bytes = f.max_frame_bytes.unwrap_or(DEFAULT_OPENBAO_MAX_FRAME_BYTES);
    if !(MIN_SYSLOG_FRAME_BYTES..=MAX_OPENBAO_FRAME_BYTES).contains(&max_frame_bytes) {
        return Err(ConfigError::Invalid {
            what: "openbao_socket max_frame_bytes",
            value: max_frame_bytes.to_string(),
            why: "from 2048 to 16777216",
        });
    }
    let max_connections = f.max_connections.unwrap_or(64);
    if max_connections == 0 {
        return Err(ConfigError::Invalid {
            what: "openbao_socket max_connections",
            value: "0".into(),
            why: "must be at least 1",
        });
    }
    let stream =
        StreamSetup { listen, identity: Some(identity), tls: false, max_frame_bytes, max_connections };
    Ok(Some(OpenBaoSocketSetup { stream, types }))
}

/// `[denied_records]`: token buckets for the `denied` records of refused requests, all sources
/// together and per client address. Rates are per second; bursts are how many may be recorded
/// at once after a quiet spell.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeniedRecordsConfig {
    pub rate: Option<f64>,
    pub burst: Option<f64>,
    pub per_source_rate: Option<f64>,
    pub per_source_burst: Option<f64>,
}

/// The largest rate and burst `[denied_records]` accepts.
const MAX_DENIED_RATE: f64 = 100_000.0;

fn resolve_denied_records(
    c: Option<&DeniedRecordsConfig>,
) -> Result<graven_auth::ratelimit::Limits, ConfigError> {
    let d = graven_auth::ratelimit::Limits::default();
    let Some(c) = c else { return Ok(d) };
    let check = |what: &'static str, v: Option<f64>, least: f64, default: f64| match v {
        None => Ok(default),
        Some(v) if v.is_finite() && v >= least && v <= MAX_DENIED_RATE => Ok(v),
        Some(v) => Err(ConfigError::Invalid {
            what,
            value: v.to_string(),
            why: if least > 0.5 { "from 1 to 100000" } else { "above 0, at most 100000" },
        }),
    };
    let positive = |what: &'static str, v: Option<f64>, default: f64| match v {
        Some(v) if v <= 0.0 => {
            Err(ConfigError::Invalid { what, value: v.to_string(), why: "above 0, at most 100000" })
        }
        v => check(what, v, f64::MIN_POSITIVE, default),
    };
    Ok(graven_auth::ratelimit::Limits {
        global_rate: positive("denied_records.rate", c.rate, d.global_rate)?,
        global_burst: check("denied_records.burst", c.burst, 1.0, d.global_burst)?,
        source_rate: positive("denied_records.per_source_rate", c.per_source_rate, d.source_rate)?,
        source_burst: check("denied_records.per_source_burst", c.per_source_burst, 1.0, d.source_burst)?,
        ..d
    })
}

/// The top-level keys of the config file that `SIGHUP` applies to a running server; a change
/// to any other key is reported as needing a restart.
pub const RELOADABLE_KEYS: &[&str] = &["oidc", "spiffe_ids", "denied_records", "public_read_path", "rules"];

/// The config file a configuration was resolved from, as read: for a reload, to tell which
/// keys changed and to record which file is in force.
#[derive(Debug, Clone, Default)]
pub struct FileSnapshot {
    /// `None`: no file (flags, environment and defaults only).
    pub path: Option<PathBuf>,
    pub table: toml::Table,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: Option<String>,
}

impl FileSnapshot {
    /// The top-level keys whose values differ between `self` and `newer`, in order.
    pub fn changed_keys(&self, newer: &FileSnapshot) -> Vec<String> {
        let keys: std::collections::BTreeSet<&String> = self.table.keys().chain(newer.table.keys()).collect();
        keys.into_iter().filter(|k| self.table.get(*k) != newer.table.get(*k)).cloned().collect()
    }
}

/// Values given by flag or environment variable (already merged by the binary, flags first).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub origin: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub max_batch_events: Option<usize>,
    pub max_batch_wait_ms: Option<u64>,
    pub max_pending_events: Option<usize>,
    pub drain_timeout_ms: Option<u64>,
    pub log_format: Option<String>,
    pub public_read_path: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// One client CA (`--client-ca`); it replaces the file's `client_ca` setting.
    pub client_ca: Option<PathBuf>,
    /// The trust domains `--client-ca` vouches for (`--client-ca-trust-domain`); none: any.
    pub client_ca_trust_domains: Vec<String>,
    pub client_auth: Option<crate::tls::ClientAuth>,
    pub storage: Option<String>,
    pub key: Option<PathBuf>,
    pub advertise_url: Option<String>,
    pub allow_no_object_lock: Option<bool>,
    pub retention_mode: Option<String>,
    pub retention_days: Option<u64>,
    /// `--replay-claims`: replaces the file's `replay_claims`.
    pub replay_claims: Option<String>,
    /// `--witness-policy`: replaces the file's `witness_policy`.
    pub witness_policy: Option<PathBuf>,
    /// `--tsa-url`, `--tsa-cert`, `--tsa-policy`, `--tsa-interval` (seconds).
    pub tsa_url: Option<String>,
    pub tsa_cert: Option<PathBuf>,
    pub tsa_policy: Option<String>,
    pub tsa_interval: Option<u64>,
    /// `--syslog-listen`, `--syslog-identity`: replace `[syslog]`'s `listen` and `identity`.
    pub syslog_listen: Option<String>,
    pub syslog_identity: Option<String>,
    /// `--bao-audit-listen`, `--bao-audit-identity`: replace `[openbao_socket]`'s `listen` and
    /// `identity`.
    pub bao_audit_listen: Option<String>,
    pub bao_audit_identity: Option<String>,
}

/// `client_ca` in the config file: one PEM file (`client_ca = "ca.pem"`, vouching for any
/// SPIFFE trust domain, as before trust domains could be named), or client CA tables, each
/// bound to the trust domains it vouches for:
///
/// ```toml
/// [[client_ca]]
/// file = "/etc/graven/prod-ca.pem"
/// trust_domains = ["prod.example"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCaSetting {
    File(PathBuf),
    Bound(Vec<ClientCaTable>),
}

/// One `[[client_ca]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCaTable {
    pub file: PathBuf,
    pub trust_domains: Vec<String>,
}

impl<'de> Deserialize<'de> for ClientCaSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = ClientCaSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a PEM file (client_ca = \"ca.pem\") or [[client_ca]] tables with file and trust_domains",
                )
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ClientCaSetting, E> {
                Ok(ClientCaSetting::File(PathBuf::from(s)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<ClientCaSetting, A::Error> {
                let tables =
                    Vec::<ClientCaTable>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(ClientCaSetting::Bound(tables))
            }
        }
        d.deserialize_any(Either)
    }
}

/// The trust domains of one client CA, checked.
fn trust_domains(file: &Path, names: &[String]) -> Result<graven_auth::mtls::TrustDomains, ConfigError> {
    let at = || format!("client CA {}", file.display());
    if names.is_empty() {
        return Err(ConfigError::Setting(format!(
            "{}: list the SPIFFE trust domains it vouches for, e.g. trust_domains = [\"prod.example\"]",
            at()
        )));
    }
    if names.len() > graven_auth::mtls::MAX_TRUST_DOMAINS {
        return Err(ConfigError::Setting(format!(
            "{}: at most {} trust domains",
            at(),
            graven_auth::mtls::MAX_TRUST_DOMAINS
        )));
    }
    for n in names {
        if !graven_auth::mtls::is_trust_domain(n) {
            return Err(ConfigError::Setting(format!(
                "{}: {n:?} is not a trust domain name (lowercase letters, digits, '.', '-', '_'; no spiffe:// and no path)",
                at()
            )));
        }
    }
    Ok(graven_auth::mtls::TrustDomains::Only(names.iter().cloned().collect()))
}

/// The client CAs: `--client-ca` (with its `--client-ca-trust-domain`s) if given, else the
/// file's `client_ca`.
fn client_cas(o: &Overrides, file: &FileConfig) -> Result<Vec<crate::tls::ClientCa>, ConfigError> {
    use crate::tls::ClientCa;
    use graven_auth::mtls::TrustDomains;
    if let Some(path) = &o.client_ca {
        let trust_domains = if o.client_ca_trust_domains.is_empty() {
            TrustDomains::Any
        } else {
            trust_domains(path, &o.client_ca_trust_domains)?
        };
        return Ok(vec![ClientCa { file: path.clone(), trust_domains }]);
    }
    if !o.client_ca_trust_domains.is_empty() {
        return Err(ConfigError::Setting(
            "--client-ca-trust-domain needs --client-ca (or use [[client_ca]] tables in the config file)"
                .into(),
        ));
    }
    match &file.client_ca {
        None => Ok(Vec::new()),
        Some(ClientCaSetting::File(path)) => {
            Ok(vec![ClientCa { file: path.clone(), trust_domains: TrustDomains::Any }])
        }
        Some(ClientCaSetting::Bound(tables)) => {
            if tables.is_empty() || tables.len() > crate::tls::MAX_CLIENT_CAS {
                return Err(ConfigError::Setting(format!(
                    "give 1 to {} [[client_ca]] tables",
                    crate::tls::MAX_CLIENT_CAS
                )));
            }
            tables
                .iter()
                .map(|t| {
                    Ok(ClientCa {
                        file: t.file.clone(),
                        trust_domains: trust_domains(&t.file, &t.trust_domains)?,
                    })
                })
                .collect()
        }
    }
}

/// Object Lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionMode {
    Compliance,
    Governance,
}

/// A log kept in object storage and shared by several nodes.
#[derive(Debug, Clone)]
pub struct SharedStorage {
    /// `s3://bucket/prefix`.
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// The retention asked for; `None` where unset (no default: see [`FileConfig`]).
    pub retention_mode: Option<RetentionMode>,
    pub retention_days: Option<u64>,
    pub require_object_lock: bool,
    pub advertise_url: Option<String>,
    pub lease_ttl: Duration,
    /// Bytes of tiles and bundles kept in memory.
    pub tile_cache_bytes: usize,
    /// `s3://bucket/prefix` where every node claims the signed requests it accepts, so that a
    /// request accepted by one is refused by all; `None`: each node's own cache only.
    pub replay_claims: Option<String>,
}

/// Longest retention accepted: 100 years.
const MAX_RETENTION_DAYS: u64 = 36_500;
pub const DEFAULT_LEASE_TTL_MS: u64 = 5_000;
/// How long requests in flight may take after SIGTERM: well inside Kubernetes' default grace
/// period of 30 s, so the process stops on its own before it is killed.
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 10_000;
/// Longest drain deadline accepted: five minutes.
const MAX_DRAIN_TIMEOUT_MS: u64 = 300_000;

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data: PathBuf,
    /// Used only when the log is created; an existing log keeps its key's name.
    pub origin: String,
    /// Whether `origin` was set (flag, environment or file) rather than [`DEFAULT_ORIGIN`]:
    /// the binary derives a new log's origin from the host name when it was not.
    pub origin_given: bool,
    /// Largest request body, single event or NDJSON batch.
    pub max_body_bytes: usize,
    /// Whether the writer pipelines its commits (`pipeline_commits`).
    pub pipeline_commits: bool,
    /// How long a client may take to send its body.
    pub body_timeout: Duration,
    /// Most open client connections; more are refused.
    pub max_connections: usize,
    /// How long a client may take to send its request line and headers.
    pub header_timeout: Duration,
    /// After SIGTERM, how long requests in flight may take before the server stops anyway.
    pub drain_timeout: Duration,
    /// How the log lines on standard error are written.
    pub log_format: crate::logs::LogFormat,
    /// Serve `/checkpoint`, `/tile/...` and `/v1/log` to anyone (a log meant to be witnessed
    /// openly). Default: auditors and admins only.
    pub public_read_path: bool,
    /// HTTPS (and mTLS) when set; plain HTTP otherwise.
    pub tls: Option<crate::tls::TlsConfig>,
    pub oidc: Option<graven_auth::oidc::OidcConfig>,
    /// RFC 9421 signatures are refused when `created` is further than this from now.
    pub signature_window: Duration,
    pub engine: EngineConfig,
    /// The signer key file, if not `<data>/log.key`.
    pub key: Option<PathBuf>,
    /// Object storage, if the log is not in `<data>/log`.
    pub storage: Option<SharedStorage>,
    /// Witnesses cosigning the log's checkpoints, when a policy is configured.
    pub witnessing: Option<WitnessingSetup>,
    /// A Time-Stamp Authority stamping the log's checkpoints, when `tsa_url` is set.
    pub timestamping: Option<TimestampingSetup>,
    /// How many refused requests become `denied` records (`[denied_records]`).
    pub denied_limits: graven_auth::ratelimit::Limits,
    /// The syslog listener, when `[syslog]` or `--syslog-listen` is set.
    pub syslog: Option<StreamSetup>,
    /// OpenBao's socket audit device listener, when `[openbao_socket]` or
    /// `--bao-audit-listen` is set.
    pub openbao_socket: Option<OpenBaoSocketSetup>,
    /// The alert rules (`[[rules]]`).
    pub rules: graven_rules::Rules,
    /// Where alerts are delivered (`[alerts] webhooks`).
    pub alert_webhooks: Vec<String>,
}

/// The TSA, checked at start: a well-formed URL and a readable root file.
#[derive(Debug, Clone)]
pub struct TimestampingSetup {
    pub url: String,
    pub cert_path: PathBuf,
    /// The client (its URL checked), with the policy to ask for.
    pub client: graven_tsa::TsaClient,
    /// Checks tokens against `tsa_cert` (and the policy, if one is set).
    pub verifier: graven_tsa::TsaVerifier,
    /// The least time between two requests.
    pub interval: Duration,
}

/// Default least time between two requests to the TSA.
pub const DEFAULT_TSA_INTERVAL_SECONDS: u64 = 60;
/// Longest interval accepted: a day.
const MAX_TSA_INTERVAL_SECONDS: u64 = 86_400;

fn resolve_timestamping(o: &Overrides, file: &FileConfig) -> Result<Option<TimestampingSetup>, ConfigError> {
    use std::io::Read;
    let url = o.tsa_url.clone().or(file.tsa_url.clone());
    let cert = o.tsa_cert.clone().or(file.tsa_cert.clone());
    let policy = o.tsa_policy.clone().or(file.tsa_policy.clone());
    let interval = o.tsa_interval.or(file.tsa_interval);
    let Some(url) = url else {
        if cert.is_some() || policy.is_some() || interval.is_some() {
            return Err(ConfigError::Setting(
                "tsa_cert, tsa_policy and tsa_interval need tsa_url, the Time-Stamp Authority's URL".into(),
            ));
        }
        return Ok(None);
    };
    let Some(cert_path) = cert else {
        return Err(ConfigError::Setting(format!(
            "tsa_url {url:?} needs tsa_cert: a PEM file of the root certificate(s) the TSA's certificate must chain to (tokens are checked before they are stored)"
        )));
    };
    let interval = interval.unwrap_or(DEFAULT_TSA_INTERVAL_SECONDS);
    if interval == 0 || interval > MAX_TSA_INTERVAL_SECONDS {
        return Err(ConfigError::Invalid {
            what: "tsa_interval",
            value: interval.to_string(),
            why: "a number of seconds from 1 to 86400",
        });
    }
    let policy = match policy {
        Some(p) => Some(
            graven_tsa::TsaPolicy::parse(&p).map_err(|e| ConfigError::Setting(format!("tsa_policy: {e}")))?,
        ),
        None => None,
    };
    if url.len() > 2048 {
        return Err(ConfigError::Invalid { what: "tsa_url", value: url, why: "longer than 2048 bytes" });
    }
    let mut client_config = graven_tsa::TsaClientConfig::new(url.clone());
    client_config.policy = policy;
    let client = graven_tsa::TsaClient::new(client_config).map_err(|e| {
        ConfigError::Setting(format!("{e}; expected for example tsa_url = \"https://tsa.example/tsr\""))
    })?;
    let read = |e: std::io::Error| {
        ConfigError::Setting(format!("tsa_cert {}: cannot read it: {e}", cert_path.display()))
    };
    let f = std::fs::File::open(&cert_path).map_err(read)?;
    let mut pem = Vec::new();
    f.take(graven_tsa::roots::MAX_ROOTS_FILE as u64 + 1).read_to_end(&mut pem).map_err(read)?;
    let roots = graven_tsa::TsaRoots::from_pem(&pem)
        .map_err(|e| ConfigError::Setting(format!("tsa_cert {}: {e}", cert_path.display())))?;
    let mut verifier = graven_tsa::TsaVerifier::new(roots);
    if let Some(p) = policy {
        verifier = verifier.require_policy(p);
    }
    Ok(Some(TimestampingSetup { url, cert_path, client, verifier, interval: Duration::from_secs(interval) }))
}

/// The witness policy and how the log talks to its witnesses.
#[derive(Debug, Clone)]
pub struct WitnessingSetup {
    pub policy_path: PathBuf,
    pub policy: graven_core::policy::Policy,
    pub client: graven_witness_client::WitnessingConfig,
    /// The longest a `?witnessed=true` request waits for the quorum.
    pub wait: Duration,
}

/// Largest wait a client can be made to sit through for a quorum.
const MAX_WITNESS_WAIT_MS: u64 = 120_000;
/// Longest pause between witness rounds: a checkpoint waits at most this long for its round.
const MAX_WITNESS_INTERVAL_MS: u64 = 60_000;

fn resolve_witnessing(o: &Overrides, file: &FileConfig) -> Result<Option<WitnessingSetup>, ConfigError> {
    use std::io::Read;
    let Some(path) = o.witness_policy.clone().or(file.witness_policy.clone()) else {
        return Ok(None);
    };
    let f = std::fs::File::open(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
    let mut bytes = Vec::new();
    f.take(graven_core::policy::MAX_POLICY_SIZE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
    let opts = graven_core::policy::ParseOptions {
        note_signature_witnesses: file.witness_note_signatures.unwrap_or(false),
    };
    let policy = graven_core::policy::Policy::parse(&bytes, opts)
        .map_err(|e| ConfigError::Parse { path: path.clone(), why: format!("witness policy: {e}") })?;
    let mut client = graven_witness_client::WitnessingConfig::default();
    if let Some(ms) = file.witness_timeout_ms {
        if ms == 0 || ms > MAX_WITNESS_WAIT_MS {
            return Err(ConfigError::Invalid {
                what: "witness_timeout_ms",
                value: ms.to_string(),
                why: "from 1 to 120000",
            });
        }
        client.request_timeout = Duration::from_millis(ms);
        client.round_timeout = client.request_timeout.saturating_mul(2);
    }
    if let Some(ms) = file.witness_interval_ms {
        if ms > MAX_WITNESS_INTERVAL_MS {
            return Err(ConfigError::Invalid {
                what: "witness_interval_ms",
                value: ms.to_string(),
                why: "at most 60000 (one minute)",
            });
        }
        client.min_round_interval = Duration::from_millis(ms);
    }
    let wait_ms = file.witness_wait_ms.unwrap_or(10_000);
    if wait_ms > MAX_WITNESS_WAIT_MS {
        return Err(ConfigError::Invalid {
            what: "witness_wait_ms",
            value: wait_ms.to_string(),
            why: "at most 120000 (two minutes)",
        });
    }
    Ok(Some(WitnessingSetup { policy_path: path, policy, client, wait: Duration::from_millis(wait_ms) }))
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {why}")]
    Parse { path: PathBuf, why: String },
    #[error("{what} {value:?} is invalid: {why}")]
    Invalid { what: &'static str, value: String, why: &'static str },
    #[error("{0}")]
    Setting(String),
}

fn read_file(path: &Path) -> Result<(FileConfig, FileSnapshot), ConfigError> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    let mut text = String::new();
    f.take(MAX_CONFIG_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|source| ConfigError::Read { path: path.into(), source })?;
    if text.len() as u64 > MAX_CONFIG_FILE {
        return Err(ConfigError::Parse { path: path.into(), why: "larger than 64 KiB".into() });
    }
    let parse = |e: toml::de::Error| ConfigError::Parse { path: path.into(), why: e.to_string() };
    let config: FileConfig = toml::from_str(&text).map_err(parse)?;
    let table: toml::Table = toml::from_str(&text).map_err(parse)?;
    let sha256 = {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    };
    Ok((config, FileSnapshot { path: Some(path.into()), table, sha256: Some(sha256) }))
}

/// Lays flags/env over the file over the defaults. The file is `--config`, or
/// `<data>/graven.toml` if that exists.
pub fn resolve(o: Overrides) -> Result<Config, ConfigError> {
    resolve_with_file(o).map(|(config, _)| config)
}

/// [`resolve`], with the file as it was read (one read: the two always agree).
pub fn resolve_with_file(o: Overrides) -> Result<(Config, FileSnapshot), ConfigError> {
    let explicit = o.config.clone();
    let data_hint = o.data.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
    let (mut file, snapshot) = match explicit {
        Some(p) => read_file(&p)?,
        None => {
            let p = data_hint.join("graven.toml");
            if p.is_file() { read_file(&p)? } else { (FileConfig::default(), FileSnapshot::default()) }
        }
    };
    let denied_limits = resolve_denied_records(file.denied_records.as_ref())?;
    let tls = resolve_tls(&o, &file)?;
    let syslog = resolve_syslog(&o, &file, tls.as_ref())?;
    let openbao_socket = resolve_openbao_socket(&o, &file)?;
    let (rules, alert_webhooks) = resolve_alerts(&file)?;
    let storage = resolve_storage(&o, &file)?;
    let witnessing = resolve_witnessing(&o, &file)?;
    let timestamping = resolve_timestamping(&o, &file)?;
    let key = o.key.clone().or(file.key.clone());
    let oidc = match file.oidc.take() {
        Some(c) => {
            c.validate().map_err(ConfigError::Setting)?;
            Some(c)
        }
        None => None,
    };
    let d = EngineConfig::default();
    let listen_s = o.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen: SocketAddr = listen_s.parse().map_err(|_| ConfigError::Invalid {
        what: "listen address",
        value: listen_s.clone(),
        why: "expected IP:PORT, e.g. 127.0.0.1:7878",
    })?;
    let drain_ms = o.drain_timeout_ms.or(file.drain_timeout_ms).unwrap_or(DEFAULT_DRAIN_TIMEOUT_MS);
    if drain_ms > MAX_DRAIN_TIMEOUT_MS {
        return Err(ConfigError::Invalid {
            what: "drain_timeout_ms",
            value: drain_ms.to_string(),
            why: "at most 300000 (five minutes); keep it below the time your supervisor waits before SIGKILL",
        });
    }
    let log_format = match o.log_format.or(file.log_format) {
        None => crate::logs::LogFormat::default(),
        Some(f) => f.parse().map_err(|_| ConfigError::Invalid {
            what: "log_format",
            value: f,
            why: "expected text or json",
        })?,
    };
    let origin_given = o.origin.is_some() || file.origin.is_some();
    let origin = o.origin.or(file.origin).unwrap_or_else(|| DEFAULT_ORIGIN.into());
    if !graven_core::note::is_valid_key_name(&origin) {
        return Err(ConfigError::Invalid { what: "origin", value: origin, why: "no spaces or '+' allowed" });
    }
    let positive = |what: &'static str, v: usize| {
        if v == 0 {
            Err(ConfigError::Invalid { what, value: v.to_string(), why: "must be at least 1" })
        } else {
            Ok(v)
        }
    };
    let engine = EngineConfig {
        max_batch_events: positive(
            "max_batch_events",
            o.max_batch_events.or(file.max_batch_events).unwrap_or(d.max_batch_events),
        )?,
        max_batch_bytes: positive("max_batch_bytes", file.max_batch_bytes.unwrap_or(d.max_batch_bytes))?,
        max_batch_wait: o
            .max_batch_wait_ms
            .or(file.max_batch_wait_ms)
            .map(Duration::from_millis)
            .unwrap_or(d.max_batch_wait),
        max_pending_events: positive(
            "max_pending_events",
            o.max_pending_events.or(file.max_pending_events).unwrap_or(d.max_pending_events),
        )?,
        max_pending_bytes: positive(
            "max_pending_bytes",
            file.max_pending_bytes.unwrap_or(d.max_pending_bytes),
        )?,
        client_signature_window: match file.client_signature_window_seconds {
            Some(s) => Duration::from_secs(positive("client_signature_window_seconds", s as usize)? as u64),
            None => d.client_signature_window,
        },
        clock: d.clock,
    };
    let mut engine = engine;
    if storage.is_some() {
        // One head object holds a whole batch.
        engine.max_batch_bytes = engine.max_batch_bytes.min(graven_tlog::objlog::MAX_BATCH_BYTES / 2);
    }
    let on_local_disk = storage.is_none();
    let config = Config {
        key,
        storage,
        listen,
        data: o.data.or(file.data).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA)),
        origin,
        origin_given,
        max_body_bytes: positive(
            "max_body_bytes",
            o.max_body_bytes.or(file.max_body_bytes).unwrap_or(64 << 20),
        )?,
        // On by default on a local disk, where it was measured to help; off on S3, where it
        // was not (BENCHMARKS.md §5): there it is the operator's choice.
        pipeline_commits: file.pipeline_commits.unwrap_or(on_local_disk),
        body_timeout: Duration::from_millis(file.body_timeout_ms.unwrap_or(30_000)),
        max_connections: positive("max_connections", file.max_connections.unwrap_or(4096))?,
        header_timeout: Duration::from_millis(file.header_timeout_ms.unwrap_or(10_000)),
        drain_timeout: Duration::from_millis(drain_ms),
        log_format,
        public_read_path: o.public_read_path.or(file.public_read_path).unwrap_or(false),
        tls,
        oidc,
        signature_window: Duration::from_secs(
            file.signature_window_seconds.unwrap_or(graven_auth::sigauth::DEFAULT_WINDOW_SECONDS),
        ),
        engine,
        witnessing,
        timestamping,
        denied_limits,
        syslog,
        openbao_socket,
        rules,
        alert_webhooks,
    };
    Ok((config, snapshot))
}

fn resolve_storage(o: &Overrides, file: &FileConfig) -> Result<Option<SharedStorage>, ConfigError> {
    let replay_claims = o.replay_claims.clone().or(file.replay_claims.clone());
    let Some(url) = o.storage.clone().or(file.storage.clone()) else {
        if replay_claims.is_some() {
            return Err(ConfigError::Setting(
                "replay_claims (--replay-claims) shares the replay cache between the nodes of a log in object storage; a log on a local directory has one node, whose own cache suffices: remove the setting, or set storage too".into(),
            ));
        }
        return Ok(None);
    };
    if let Some(r) = &replay_claims
        && (!r.starts_with("s3://") || r.len() > 1024)
    {
        return Err(ConfigError::Invalid {
            what: "replay_claims",
            value: r.clone(),
            why: "expected s3://bucket/prefix, in a bucket without a default Object Lock retention rule",
        });
    }
    if !url.starts_with("s3://") || url.len() > 1024 {
        return Err(ConfigError::Invalid {
            what: "storage",
            value: url,
            why: "expected s3://bucket/prefix (the local log needs no --storage)",
        });
    }
    // No defaults: what a bucket's objects get is settled against its own retention at start.
    let retention_mode = match o.retention_mode.clone().or(file.retention_mode.clone()) {
        None => None,
        Some(m) if m == "compliance" => Some(RetentionMode::Compliance),
        Some(m) if m == "governance" => Some(RetentionMode::Governance),
        Some(m) => {
            return Err(ConfigError::Invalid {
                what: "retention_mode",
                value: m,
                why: "expected compliance or governance",
            });
        }
    };
    let retention_days = o.retention_days.or(file.retention_days);
    if let Some(days) = retention_days
        && (days == 0 || days > MAX_RETENTION_DAYS)
    {
        return Err(ConfigError::Invalid {
            what: "retention_days",
            value: days.to_string(),
            why: "must be between 1 and 36500",
        });
    }
    let ttl = file.lease_ttl_ms.unwrap_or(DEFAULT_LEASE_TTL_MS);
    if !(500..=600_000).contains(&ttl) {
        return Err(ConfigError::Invalid {
            what: "lease_ttl_ms",
            value: ttl.to_string(),
            why: "must be between 500 and 600000",
        });
    }
    let advertise_url = o.advertise_url.clone().or(file.advertise_url.clone());
    if let Some(u) = &advertise_url
        && (!(u.starts_with("http://") || u.starts_with("https://"))
            || u.len() > 2048
            || u.contains(char::is_whitespace))
    {
        return Err(ConfigError::Invalid {
            what: "advertise_url",
            value: u.clone(),
            why: "expected http(s)://host:port, with no spaces",
        });
    }
    let cache_mb = file.tile_cache_mb.unwrap_or(128);
    if cache_mb > 1 << 20 {
        return Err(ConfigError::Invalid {
            what: "tile_cache_mb",
            value: cache_mb.to_string(),
            why: "must be at most 1048576 (1 TiB)",
        });
    }
    Ok(Some(SharedStorage {
        tile_cache_bytes: (cache_mb as usize) << 20,
        url,
        endpoint: file.s3_endpoint.clone(),
        region: file.s3_region.clone(),
        retention_mode,
        retention_days,
        require_object_lock: !o.allow_no_object_lock.or(file.allow_no_object_lock).unwrap_or(false),
        advertise_url,
        lease_ttl: Duration::from_millis(ttl),
        replay_claims,
    }))
}

fn resolve_tls(o: &Overrides, file: &FileConfig) -> Result<Option<crate::tls::TlsConfig>, ConfigError> {
    let pick = |a: &Option<PathBuf>, b: &Option<PathBuf>| a.clone().or_else(|| b.clone());
    let cert = pick(&o.tls_cert, &file.tls_cert);
    let key = pick(&o.tls_key, &file.tls_key);
    let client_cas = client_cas(o, file)?;
    let client_auth = o.client_auth.or(file.client_auth);
    let spiffe_ids = file.spiffe_ids.clone().unwrap_or_default();
    let setting = |s: &str| Err(ConfigError::Setting(s.to_owned()));
    let (cert, key) = match (cert, key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => {
            if !client_cas.is_empty() || client_auth.is_some() || !spiffe_ids.is_empty() {
                return setting(
                    "client_ca, client_auth and spiffe_ids need TLS: set tls_cert and tls_key too",
                );
            }
            return Ok(None);
        }
        _ => return setting("set both tls_cert and tls_key, or neither (plain HTTP)"),
    };
    if client_cas.is_empty() && client_auth == Some(crate::tls::ClientAuth::Required) {
        return setting("client_auth = \"required\" needs client_ca, the CA client certificates chain to");
    }
    for (spiffe, id) in &spiffe_ids {
        if !graven_auth::mtls::is_spiffe_id(spiffe) {
            return Err(ConfigError::Setting(format!("spiffe_ids: {spiffe:?} is not a SPIFFE ID")));
        }
        graven_auth::identity::check_id(id)
            .map_err(|e| ConfigError::Setting(format!("spiffe_ids.{spiffe}: {e}")))?;
    }
    Ok(Some(crate::tls::TlsConfig {
        cert,
        key,
        client_cas,
        client_auth: client_auth.unwrap_or_default(),
        spiffe_ids,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("graven.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn denied_records_limits_are_bounded() {
        let d = tempfile::tempdir().unwrap();
        let resolve_text = |text: &str| {
            resolve_with_file(Overrides { config: Some(write_file(d.path(), text)), ..Default::default() })
        };
        let (c, file) = resolve_text("[denied_records]\nrate = 5.5\nper_source_burst = 3\n").unwrap();
        assert_eq!((c.denied_limits.global_rate, c.denied_limits.source_burst), (5.5, 3.0));
        assert_eq!(c.denied_limits.global_burst, 50.0, "the defaults where the table says nothing");
        assert!(file.sha256.as_ref().is_some_and(|h| h.len() == 64));
        for bad in [
            "rate = 0.0",
            "rate = -1.0",
            "rate = nan",
            "rate = inf",
            "burst = 0.5",
            "per_source_burst = 100001.0",
            "per_source_rate = -0.0",
        ] {
            let e = resolve_text(&format!("[denied_records]\n{bad}\n")).unwrap_err().to_string();
            assert!(e.contains("denied_records."), "{bad}: {e}");
        }
        assert!(resolve_text("[denied_records]\nrates = 1.0\n").is_err(), "an unknown key");
    }

    #[test]
    fn openbao_socket_settings_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let resolve_text = |text: &str, o: Overrides| {
            resolve(Overrides { config: Some(write_file(d.path(), text)), ..o }).map_err(|e| e.to_string())
        };
        let c = resolve_text(
            "[openbao_socket]\nlisten = \"127.0.0.1:9090\"\nidentity = \"src:bao\"\n",
            Overrides::default(),
        )
        .unwrap();
        let s = c.openbao_socket.unwrap();
        assert_eq!((s.stream.max_frame_bytes, s.stream.max_connections, s.stream.tls), (1 << 20, 64, false));
        assert_eq!(s.types, vec!["response"]);
        let c = resolve_text(
            "[openbao_socket]\nlisten = \"127.0.0.1:9090\"\nidentity = \"src:bao\"\ntypes = [\"request\", \"response\", \"request\"]\n",
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.openbao_socket.unwrap().types, vec!["request", "response"]);
        let o = Overrides {
            bao_audit_listen: Some("127.0.0.1:0".into()),
            bao_audit_identity: Some("src:other".into()),
            ..Default::default()
        };
        let s = resolve_text("", o).unwrap().openbao_socket.unwrap();
        assert_eq!(
            (s.stream.listen.to_string().as_str(), s.stream.identity.as_deref()),
            ("127.0.0.1:0", Some("src:other"))
        );
        assert!(resolve_text("", Overrides::default()).unwrap().openbao_socket.is_none());
        let at = "[openbao_socket]\nlisten = \"127.0.0.1:9090\"\nidentity = \"x\"\n";
        for (bad, says) in [
            ("[openbao_socket]\nidentity = \"src:bao\"\n".to_owned(), "needs listen"),
            ("[openbao_socket]\nlisten = \"localhost:9090\"\nidentity = \"x\"\n".to_owned(), "IP:PORT"),
            ("[openbao_socket]\nlisten = \"127.0.0.1:9090\"\n".to_owned(), "needs identity"),
            (format!("{at}types = []\n"), "at least one"),
            (format!("{at}types = [\"reply\"]\n"), "\"reply\""),
            (format!("{at}max_frame_bytes = 100\n"), "2048"),
            (format!("{at}max_connections = 0\n"), "at least 1"),
            (format!("{at}tls = true\n"), "unknown field"),
        ] {
            let e = resolve_text(&bad, Overrides::default()).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn replay_claims_need_a_shared_log_and_an_s3_url() {
        let d = tempfile::tempdir().unwrap();
        let resolve_text = |text: &str, o: Overrides| {
            resolve(Overrides { config: Some(write_file(d.path(), text)), ..o }).map_err(|e| e.to_string())
        };
        let shared = "storage = \"s3://log/prod\"\n";
        let c =
            resolve_text(&format!("{shared}replay_claims = \"s3://claims/prod\"\n"), Overrides::default())
                .unwrap();
        assert_eq!(c.storage.unwrap().replay_claims.as_deref(), Some("s3://claims/prod"));
        // The flag replaces the file's.
        let o = Overrides { replay_claims: Some("s3://other/x".into()), ..Default::default() };
        let c = resolve_text(&format!("{shared}replay_claims = \"s3://claims/prod\"\n"), o).unwrap();
        assert_eq!(c.storage.unwrap().replay_claims.as_deref(), Some("s3://other/x"));
        assert_eq!(resolve_text(shared, Overrides::default()).unwrap().storage.unwrap().replay_claims, None);
        let e = resolve_text("replay_claims = \"s3://claims/prod\"\n", Overrides::default()).unwrap_err();
        assert!(e.contains("local directory") && e.contains("storage"), "{e}");
        let e = resolve_text(&format!("{shared}replay_claims = \"/tmp/claims\"\n"), Overrides::default())
            .unwrap_err();
        assert!(e.contains("replay_claims") && e.contains("s3://"), "{e}");
    }

    #[test]
    fn syslog_settings_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let resolve_text = |text: &str, o: Overrides| {
            resolve(Overrides { config: Some(write_file(d.path(), text)), ..o }).map_err(|e| e.to_string())
        };
        let c = resolve_text(
            "[syslog]\nlisten = \"127.0.0.1:6514\"\nidentity = \"src:relay\"\n",
            Overrides::default(),
        )
        .unwrap();
        let s = c.syslog.unwrap();
        assert_eq!((s.max_frame_bytes, s.max_connections, s.tls), (65536, 1024, false));
        // Flags replace the file's listen and identity.
        let o = Overrides {
            syslog_listen: Some("127.0.0.1:0".into()),
            syslog_identity: Some("src:other".into()),
            ..Default::default()
        };
        let s = resolve_text("", o).unwrap().syslog.unwrap();
        assert_eq!(
            (s.listen.to_string().as_str(), s.identity.as_deref()),
            ("127.0.0.1:0", Some("src:other"))
        );
        assert!(resolve_text("", Overrides::default()).unwrap().syslog.is_none());
        for (bad, says) in [
            ("[syslog]\nidentity = \"src:relay\"\n", "needs listen"),
            ("[syslog]\nlisten = \"localhost:6514\"\nidentity = \"x\"\n", "IP:PORT"),
            ("[syslog]\nlisten = \"127.0.0.1:6514\"\n", "needs identity"),
            ("[syslog]\nlisten = \"127.0.0.1:6514\"\nidentity = \"x\"\ntls = true\n", "tls_cert"),
            ("[syslog]\nlisten = \"127.0.0.1:6514\"\nidentity = \"x\"\nmax_frame_bytes = 100\n", "2048"),
            ("[syslog]\nlisten = \"127.0.0.1:6514\"\nidentity = \"x\"\nmax_connections = 0\n", "at least 1"),
            ("[syslog]\nlisten = \"127.0.0.1:6514\"\nidentity = \"x\"\nport = 1\n", "unknown field"),
        ] {
            let e = resolve_text(bad, Overrides::default()).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_snapshot_names_the_keys_that_changed() {
        let d = tempfile::tempdir().unwrap();
        let read = |text: &str| {
            resolve_with_file(Overrides { config: Some(write_file(d.path(), text)), ..Default::default() })
                .unwrap()
                .1
        };
        let a = read("listen = \"127.0.0.1:9000\"\npublic_read_path = true\n[denied_records]\nrate = 1.0\n");
        let b = read(
            "# a comment only\nlisten = \"127.0.0.1:9000\"\npublic_read_path = true\n[denied_records]\nrate = 1.0\n",
        );
        assert!(a.changed_keys(&b).is_empty(), "comments and layout are not changes");
        assert_ne!(a.sha256, b.sha256, "but the file's digest says which file it was");
        let c = read("public_read_path = false\n[denied_records]\nrate = 2.0\n[oidc]\n");
        assert_eq!(a.changed_keys(&c), ["denied_records", "listen", "oidc", "public_read_path"]);
    }

    #[test]
    fn flags_and_env_beat_the_file_which_beats_defaults() {
        let d = tempfile::tempdir().unwrap();
        let file = write_file(
            d.path(),
            "listen = \"127.0.0.1:9000\"\nmax_batch_events = 10\norigin = \"file.example/log\"\n",
        );
        let c = resolve(Overrides { config: Some(file.clone()), ..Default::default() }).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.engine.max_batch_events, 10);
        assert_eq!(c.origin, "file.example/log");
        assert!(c.origin_given, "the file set it");
        assert_eq!(c.max_body_bytes, 64 << 20, "default where neither says anything");
        assert!(!c.public_read_path, "the read path is private by default");
        let c = resolve(Overrides {
            config: Some(file),
            listen: Some("127.0.0.1:9001".into()),
            max_batch_events: Some(20),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(c.engine.max_batch_events, 20);
        assert_eq!(c.origin, "file.example/log");
        // Nobody set it: the library's default, marked as such (the binary derives another).
        let c = resolve(Overrides { data: Some(d.path().join("none")), ..Default::default() }).unwrap();
        assert_eq!((c.origin.as_str(), c.origin_given), (DEFAULT_ORIGIN, false));
    }

    #[test]
    fn witness_settings_are_bounded() {
        let d = tempfile::tempdir().unwrap();
        let key = graven_core::note::SignerKey::from_seed("file.example/log", [3; 32]).unwrap();
        let w = graven_core::cosignature::Cosigner::from_seed("w1.example", [1; 32]).unwrap();
        let policy = d.path().join("policy");
        std::fs::write(
            &policy,
            format!("log {}\nwitness w1 {} http://127.0.0.1:9\nquorum w1\n", key.verifier(), w.verifier()),
        )
        .unwrap();
        let with = |text: &str| {
            let file =
                write_file(d.path(), &format!("witness_policy = {:?}\n{text}", policy.display().to_string()));
            resolve(Overrides { config: Some(file), ..Default::default() })
        };
        let c = with("").unwrap().witnessing.unwrap();
        assert_eq!(c.client.min_round_interval, Duration::from_secs(1), "one round a second by default");
        assert_eq!(c.wait, Duration::from_secs(10));
        let c = with("witness_interval_ms = 0\nwitness_wait_ms = 500\n").unwrap().witnessing.unwrap();
        assert_eq!(c.client.min_round_interval, Duration::ZERO);
        assert_eq!(c.wait, Duration::from_millis(500));
        for (text, needle) in [
            ("witness_interval_ms = 60001\n", "witness_interval_ms"),
            ("witness_wait_ms = 120001\n", "witness_wait_ms"),
            ("witness_timeout_ms = 0\n", "witness_timeout_ms"),
        ] {
            let err = with(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn client_cas_are_bound_to_trust_domains() {
        use crate::tls::ClientCa;
        use graven_auth::mtls::TrustDomains;
        let d = tempfile::tempdir().unwrap();
        let tls = "tls_cert = \"s.pem\"\ntls_key = \"s.key\"\n";
        let resolve_text = |text: &str, o: Overrides| {
            let file = write_file(d.path(), &format!("{tls}{text}"));
            resolve(Overrides { config: Some(file), ..o }).map(|c| c.tls.unwrap().client_cas)
        };
        // The single file keeps its old meaning: one CA, any trust domain.
        let cas = resolve_text("client_ca = \"ca.pem\"\n", Overrides::default()).unwrap();
        assert_eq!(cas, vec![ClientCa { file: "ca.pem".into(), trust_domains: TrustDomains::Any }]);
        let cas = resolve_text(
            "[[client_ca]]\nfile = \"a.pem\"\ntrust_domains = [\"prod.example\"]\n[[client_ca]]\nfile = \"b.pem\"\ntrust_domains = [\"qa.example\", \"staging.example\"]\n",
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(cas.len(), 2);
        assert!(cas[0].trust_domains.vouches_for("prod.example"));
        assert!(!cas[0].trust_domains.vouches_for("staging.example"));
        assert!(
            cas[1].trust_domains.vouches_for("staging.example")
                && cas[1].trust_domains.vouches_for("qa.example")
        );
        // The flag replaces the file's setting, bound or not.
        let flag = Overrides {
            client_ca: Some("flag.pem".into()),
            client_ca_trust_domains: vec!["prod.example".into()],
            ..Default::default()
        };
        let cas = resolve_text("client_ca = \"ca.pem\"\n", flag).unwrap();
        assert_eq!(cas[0].file, PathBuf::from("flag.pem"));
        assert_eq!(cas[0].trust_domains, TrustDomains::Only(["prod.example".to_owned()].into()));
        for (text, o, needle) in [
            (
                "[[client_ca]]\nfile = \"a.pem\"\ntrust_domains = []\n",
                Overrides::default(),
                "trust_domains = [",
            ),
            ("[[client_ca]]\nfile = \"a.pem\"\n", Overrides::default(), "trust_domains"),
            (
                "[[client_ca]]\nfile = \"a.pem\"\ntrust_domains = [\"spiffe://prod.example\"]\n",
                Overrides::default(),
                "not a trust domain",
            ),
            (
                "[[client_ca]]\nfile = \"a.pem\"\ntrust_domains = [\"Prod.example\"]\n",
                Overrides::default(),
                "not a trust domain",
            ),
            (
                "[[client_ca]]\nfile = \"a.pem\"\ntrust_domain = [\"prod.example\"]\n",
                Overrides::default(),
                "trust_domain",
            ),
            ("client_ca = 7\n", Overrides::default(), "[[client_ca]] tables"),
            (
                "",
                Overrides { client_ca_trust_domains: vec!["prod.example".into()], ..Default::default() },
                "needs --client-ca",
            ),
            (
                "",
                Overrides {
                    client_ca: Some("ca.pem".into()),
                    client_ca_trust_domains: vec!["prod example".into()],
                    ..Default::default()
                },
                "not a trust domain",
            ),
        ] {
            let e = resolve_text(text, o).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn a_tsa_needs_a_readable_root_file_and_a_well_formed_url() {
        let d = tempfile::tempdir().unwrap();
        let o = |url: Option<&str>, cert: Option<PathBuf>| Overrides {
            data: Some(d.path().to_path_buf()),
            tsa_url: url.map(str::to_owned),
            tsa_cert: cert,
            ..Default::default()
        };
        let err = |o: Overrides| resolve(o).unwrap_err().to_string();
        assert!(resolve(o(None, None)).unwrap().timestamping.is_none());
        let e = err(o(Some("http://127.0.0.1:9/tsa"), None));
        assert!(e.contains("needs tsa_cert"), "{e}");
        let missing = d.path().join("missing.pem");
        let e = err(o(Some("http://127.0.0.1:9/tsa"), Some(missing.clone())));
        assert!(e.contains("missing.pem") && e.contains("No such file"), "{e}");
        let garbage = d.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let e = err(o(Some("http://127.0.0.1:9/tsa"), Some(garbage)));
        assert!(e.contains("tsa_cert") && e.contains("no certificate"), "{e}");
        let e = err(o(None, Some(missing)));
        assert!(e.contains("need tsa_url"), "{e}");
        let e = err(Overrides { tsa_interval: Some(5), ..o(None, None) });
        assert!(e.contains("need tsa_url"), "{e}");
        for bad in ["ftp://tsa.example/", "http://", "https:///tsa", "tsa.example", "http://tsa example/"] {
            let e = err(o(Some(bad), Some(d.path().join("missing.pem"))));
            assert!(e.contains("is not an http:// or https:// URL") && e.contains("tsa_url ="), "{bad}: {e}");
        }
    }

    #[test]
    fn the_drain_deadline_and_the_log_format_are_settings() {
        use crate::logs::LogFormat;
        let d = tempfile::tempdir().unwrap();
        let c = resolve(Overrides { data: Some(d.path().to_path_buf()), ..Default::default() }).unwrap();
        assert_eq!(c.drain_timeout, Duration::from_secs(10), "well inside Kubernetes' 30 s");
        assert_eq!(c.log_format, LogFormat::Text);
        write_file(d.path(), "drain_timeout_ms = 2500\nlog_format = \"json\"\n");
        let o = || Overrides { data: Some(d.path().to_path_buf()), ..Default::default() };
        let c = resolve(o()).unwrap();
        assert_eq!((c.drain_timeout, c.log_format), (Duration::from_millis(2500), LogFormat::Json));
        let c =
            resolve(Overrides { drain_timeout_ms: Some(0), log_format: Some("text".into()), ..o() }).unwrap();
        assert_eq!((c.drain_timeout, c.log_format), (Duration::ZERO, LogFormat::Text));
        let e = resolve(Overrides { drain_timeout_ms: Some(300_001), ..o() }).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { what: "drain_timeout_ms", .. }), "{e}");
        let e = resolve(Overrides { log_format: Some("JSON ".into()), ..o() }).unwrap_err();
        assert!(e.to_string().contains("expected text or json"), "{e}");
    }

    #[test]
    fn the_data_dir_file_is_found_and_typos_are_errors() {
        let d = tempfile::tempdir().unwrap();
        write_file(d.path(), "max_pending_events = 7\npublic_read_path = true\n");
        let c = resolve(Overrides { data: Some(d.path().to_path_buf()), ..Default::default() }).unwrap();
        assert_eq!(c.engine.max_pending_events, 7);
        assert!(c.public_read_path);
        write_file(d.path(), "max_pendng_events = 7\n");
        let e = resolve(Overrides { data: Some(d.path().to_path_buf()), ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("max_pendng_events"), "{e}");
        let e = resolve(Overrides { listen: Some("localhost".into()), ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("IP:PORT"), "{e}");
        let e = resolve(Overrides { origin: Some("has space".into()), ..Default::default() }).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { what: "origin", .. }));
        let e = resolve(Overrides { max_batch_events: Some(0), ..Default::default() }).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { what: "max_batch_events", .. }));
    }
}
