use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use graven_server::config::{self, Overrides};

/// Settings by flag or environment variable; flags win, then the environment, then the
/// config file (`--config`, or `<data>/graven.toml`), then the defaults.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "GRAVEN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./graven-data].
    #[arg(long, env = "GRAVEN_DATA")]
    data: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7878]. Port 0 picks a free port.
    #[arg(long, env = "GRAVEN_LISTEN")]
    listen: Option<String>,
    /// Origin (and key name) of a new log: it names the log in every checkpoint and cannot
    /// change once the log exists [default: <this host's name>/graven, announced at first
    /// start].
    #[arg(long, env = "GRAVEN_ORIGIN")]
    origin: Option<String>,
    /// Largest request body in bytes [default: 64 MiB].
    #[arg(long, env = "GRAVEN_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Most events in one group commit [default: 65536].
    #[arg(long, env = "GRAVEN_MAX_BATCH_EVENTS")]
    max_batch_events: Option<usize>,
    /// Longest a batch waits for more events, in milliseconds [default: 0].
    #[arg(long, env = "GRAVEN_MAX_BATCH_WAIT_MS")]
    max_batch_wait_ms: Option<u64>,
    /// Most events waiting to be committed before requests get 503 [default: 262144].
    #[arg(long, env = "GRAVEN_MAX_PENDING_EVENTS")]
    max_pending_events: Option<usize>,
    /// On SIGTERM, how long requests in flight may take before the server stops anyway, in
    /// milliseconds; live streams are ended at once [default: 10000].
    #[arg(long, env = "GRAVEN_DRAIN_TIMEOUT_MS")]
    drain_timeout_ms: Option<u64>,
    /// The log on standard error (one line per request and per error): text or json
    /// [default: text].
    #[arg(long, env = "GRAVEN_LOG_FORMAT")]
    log_format: Option<String>,
    /// Serve /checkpoint, /tile/... and /v1/log to anyone, for a log meant to be witnessed
    /// openly [default: auditors and admins only].
    #[arg(long, env = "GRAVEN_PUBLIC_READ_PATH")]
    public_read_path: Option<bool>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "GRAVEN_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "GRAVEN_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Accept client certificates (mTLS, SPIFFE IDs) that chain to this CA (PEM). It vouches
    /// for any SPIFFE trust domain unless --client-ca-trust-domain names some; several CAs,
    /// each bound to its trust domains, are [[client_ca]] tables in the config file.
    #[arg(long, env = "GRAVEN_CLIENT_CA")]
    client_ca: Option<PathBuf>,
    /// A SPIFFE trust domain --client-ca vouches for (repeat, or comma-separate in the
    /// environment variable); client certificates naming another are refused.
    #[arg(long = "client-ca-trust-domain", env = "GRAVEN_CLIENT_CA_TRUST_DOMAINS", value_delimiter = ',')]
    client_ca_trust_domains: Vec<String>,
    /// Whether a client certificate is optional or required [default: optional].
    #[arg(long, env = "GRAVEN_CLIENT_AUTH")]
    client_auth: Option<graven_server::tls::ClientAuth>,
    /// Keep the log in object storage: s3://bucket/prefix. Every node started on the same
    /// prefix (with the same --key) serves the log; one is the writer, the others read
    /// replicas that take over when it dies. Endpoint, region and credentials come from the
    /// config file or AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
    #[arg(long, env = "GRAVEN_STORAGE")]
    storage: Option<String>,
    /// The log's signer key file [default: <data>/log.key, created on first start; required
    /// with --storage].
    #[arg(long, env = "GRAVEN_KEY")]
    key: Option<PathBuf>,
    /// Where this node takes writes, for the other nodes' redirects [default:
    /// http(s)://<listen address>].
    #[arg(long, env = "GRAVEN_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// Object Lock retention mode for tiles, bundles and archived checkpoints: compliance or
    /// governance [default: the bucket's default retention; a bucket without one needs this
    /// and --retention-days]. Never weaker than the bucket's default.
    #[arg(long, env = "GRAVEN_RETENTION_MODE")]
    retention_mode: Option<String>,
    /// Object Lock retention period in days [default: the bucket's default retention; a
    /// bucket without one needs this and --retention-mode]. Never shorter than the bucket's
    /// default.
    #[arg(long, env = "GRAVEN_RETENTION_DAYS")]
    retention_days: Option<u64>,
    /// Start even when the bucket has no Object Lock. History can then be deleted by anyone
    /// holding the bucket's credentials (deletion is still detected by `graven verify`). It
    /// does not choose a retention for a bucket that has Object Lock.
    #[arg(long, env = "GRAVEN_ALLOW_NO_OBJECT_LOCK")]
    allow_no_object_lock: bool,
    /// Share the replay cache of RFC 9421 signatures between every node of a log in object
    /// storage: s3://bucket/prefix, in a bucket without a default Object Lock retention rule,
    /// with a lifecycle rule that expires its objects (docs/scale-out.md). A signed request
    /// accepted by one node is then refused by all. Default: each node's own cache.
    #[arg(long, env = "GRAVEN_REPLAY_CLAIMS")]
    replay_claims: Option<String>,
    /// A C2SP tlog-policy file: the witnesses (`witness <name> <vkey> <url>`) asked to cosign
    /// every checkpoint, and the quorum that makes a checkpoint witnessed (docs/witness.md).
    #[arg(long, env = "GRAVEN_WITNESS_POLICY")]
    witness_policy: Option<PathBuf>,
    /// An RFC 3161 Time-Stamp Authority's URL: the latest checkpoint is stamped at most once
    /// per --tsa-interval, and the token stored beside it (docs/trusted-time.md).
    #[arg(long, env = "GRAVEN_TSA_URL")]
    tsa_url: Option<String>,
    /// PEM file of the root certificate(s) the TSA's certificate must chain to (required
    /// with --tsa-url: every token is checked before it is stored).
    #[arg(long, env = "GRAVEN_TSA_CERT")]
    tsa_cert: Option<PathBuf>,
    /// A TSA policy OID (dotted) to ask for and require in tokens.
    #[arg(long, env = "GRAVEN_TSA_POLICY")]
    tsa_policy: Option<String>,
    /// The least number of seconds between two requests to the TSA [default: 60].
    #[arg(long, env = "GRAVEN_TSA_INTERVAL")]
    tsa_interval: Option<u64>,
    /// Take RFC 5424 syslog messages (TCP, RFC 6587 octet counting) on this IP:PORT; port 0
    /// picks a free port. Other settings are under [syslog] in the config file
    /// (docs/sources.md).
    #[arg(long, env = "GRAVEN_SYSLOG_LISTEN")]
    syslog_listen: Option<String>,
    /// The source identity (role source, a grant for syslog) that attests syslog messages
    /// from a connection without a client certificate.
    #[arg(long, env = "GRAVEN_SYSLOG_IDENTITY")]
    syslog_identity: Option<String>,
    /// Take OpenBao's (or Vault's) `socket` audit device on this IP:PORT: TCP, one JSON entry
    /// per line; port 0 picks a free port. Other settings are under [openbao_socket] in the
    /// config file (docs/sources.md).
    #[arg(long, env = "GRAVEN_BAO_AUDIT_LISTEN")]
    bao_audit_listen: Option<String>,
    /// The source identity (role source, a grant for openbao) that attests the device's
    /// entries.
    #[arg(long, env = "GRAVEN_BAO_AUDIT_IDENTITY")]
    bao_audit_identity: Option<String>,
}

pub fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let overrides = overrides(a);
    let (mut config, file) = config::resolve_with_file(overrides.clone())?;
    let announced = settle_origin(&mut config, &gethostname::gethostname())?;
    if config.storage.is_some() && config.key.is_none() {
        // Checked here too, before the store is touched: a refused start writes nothing.
        anyhow::bail!(
            "a log in object storage needs --key <signer key file>, the same file on every node (make one with `graven keygen`)"
        );
    }
    graven_server::logs::init(config.log_format).map_err(anyhow::Error::msg)?;
    let rt =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    // The port first: one taken by another process is refused before anything is created
    // or the bucket is touched.
    let listener = rt.block_on(graven_server::serve::bind(config.listen))?;
    // Said once the port is ours: a start refused for a taken port says only that.
    for line in announced {
        println!("{line}");
    }
    let store = match &config.storage {
        Some(s) => {
            // The claims' bucket first: refused, it leaves the log's bucket untouched.
            let replay_claims = match &s.replay_claims {
                Some(url) => Some(open_claims_store(s, url)?),
                None => None,
            };
            Some(graven_server::serve::SharedStores { log: open_store(s)?, replay_claims })
        }
        None => None,
    };
    // SIGHUP reads the same file again, under the same flags and environment.
    let reloader = graven_server::reload::Reloader::new(
        file,
        Box::new(move || config::resolve_with_file(overrides.clone())),
    );
    let served = rt.block_on(graven_server::serve::run_with(listener, config, store, Some(reloader)));
    // Everything durable is done by now (the sequencer has committed and stopped); a request
    // abandoned at the drain deadline, or a witness request still waiting for its answer,
    // must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    served?;
    Ok(ExitCode::SUCCESS)
}

/// The path part of an origin derived from the host name: `<host name>/graven`.
const DERIVED_ORIGIN_PATH: &str = "/graven";

/// Settles the origin before anything is created, and says what start-up will do with it.
///
/// The origin names the log in every checkpoint (C2SP tlog-checkpoint) and is the signer key's
/// name, so it is fixed once the log exists; verifiers and witnesses hold the log to it. A new
/// log gets the origin that was set (`--origin`, `GRAVEN_ORIGIN`, `origin` in the config file),
/// or else `<host name>/graven`, never a silent placeholder; the lines returned announce it and
/// how to choose another while that is still cheap. A set origin that differs from the
/// existing log's is refused: the operator expects one log and would get another's name.
/// `host` is this machine's host name (passed in for the tests).
fn settle_origin(config: &mut config::Config, host: &std::ffi::OsStr) -> anyhow::Result<Vec<String>> {
    if config.storage.is_some() && config.key.is_none() {
        return Ok(Vec::new()); // refused just below, with its own message
    }
    let key_path = config.key.clone().unwrap_or_else(|| config.data.join("log.key"));
    if key_path.exists() {
        if config.origin_given
            && let Some(existing) = key_name(&key_path)
            && existing != config.origin
        {
            anyhow::bail!(
                "the log's key {} names the origin {existing}, but {} was set (--origin, GRAVEN_ORIGIN or origin in the config file); an origin cannot change once the log exists: leave the setting out, or set it to {existing}; a new log needs another --data directory",
                key_path.display(),
                config.origin
            );
        }
        return Ok(Vec::new());
    }
    if config.key.is_some() {
        return Ok(Vec::new()); // a key file that is not there: the server says so
    }
    let how = if config.origin_given {
        "as set"
    } else {
        config.origin = derive_origin(host)?;
        "from this host's name"
    };
    Ok(vec![
        format!("new log: origin {} ({how})", config.origin),
        "  The origin names this log in every checkpoint and cannot change once the log exists.".into(),
        format!(
            "  To choose another: stop the server now, delete {}, and start it again with --origin <name> (e.g. --origin audit.example.com/graven).",
            config.data.display()
        ),
    ])
}

/// The name (origin) of the signer key in `path`, if it holds one.
fn key_name(path: &Path) -> Option<String> {
    let text = crate::input::read_small(path, crate::input::MAX_KEY_FILE).ok()?;
    let key = graven_core::note::SignerKey::parse(text.trim()).ok()?;
    Some(key.name().to_owned())
}

/// `<host name>/graven`, lower case. A host name that is not a plain DNS name (RFC 1123:
/// letters, digits, `-` and `.`, neither first nor last; `_` too, which some hosts use) is
/// refused rather than mangled: the origin is permanent, so the operator then chooses it.
fn derive_origin(host: &std::ffi::OsStr) -> anyhow::Result<String> {
    let refuse = || {
        anyhow::anyhow!(
            "this host's name ({}) does not make a log origin; name the new log with --origin <name> (e.g. --origin audit.example.com/graven), which cannot change once the log exists",
            crate::escape::message(&format!("{host:?}"))
        )
    };
    let name = host.to_str().ok_or_else(refuse)?.to_ascii_lowercase();
    let plain = !name.is_empty()
        && name.len() <= 253
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.']);
    if !plain {
        return Err(refuse());
    }
    Ok(format!("{name}{DERIVED_ORIGIN_PATH}"))
}

/// The settings given by flag or environment variable, for [`config::resolve`].
fn overrides(a: ServeArgs) -> Overrides {
    Overrides {
        config: a.config,
        listen: a.listen,
        data: a.data,
        origin: a.origin,
        max_body_bytes: a.max_body_bytes,
        max_batch_events: a.max_batch_events,
        max_batch_wait_ms: a.max_batch_wait_ms,
        max_pending_events: a.max_pending_events,
        drain_timeout_ms: a.drain_timeout_ms,
        log_format: a.log_format,
        public_read_path: a.public_read_path,
        tls_cert: a.tls_cert,
        tls_key: a.tls_key,
        client_ca: a.client_ca,
        client_ca_trust_domains: a.client_ca_trust_domains,
        client_auth: a.client_auth,
        storage: a.storage,
        key: a.key,
        advertise_url: a.advertise_url,
        allow_no_object_lock: a.allow_no_object_lock.then_some(true),
        retention_mode: a.retention_mode,
        retention_days: a.retention_days,
        replay_claims: a.replay_claims,
        witness_policy: a.witness_policy,
        tsa_url: a.tsa_url,
        tsa_cert: a.tsa_cert,
        tsa_policy: a.tsa_policy,
        tsa_interval: a.tsa_interval,
        syslog_listen: a.syslog_listen,
        syslog_identity: a.syslog_identity,
        bao_audit_listen: a.bao_audit_listen,
        bao_audit_identity: a.bao_audit_identity,
    }
}

/// The log's safety rests on the store refusing a conditional write whose condition fails
/// (`If-Match` with another ETag, `If-None-Match: *` on an existing key). Some S3-compatible
/// stores ignore these headers and write anyway; refuse to start on one.
fn check_conditional_writes(store: &dyn graven_tlog::ObjectStore) -> anyhow::Result<()> {
    use graven_tlog::{Cond, StoreError};
    const PROBE: &str = "graven/conditional-write-probe";
    store.put(PROBE, b"probe", Cond::Any, false)?;
    let ignored = |what: &str| {
        anyhow::anyhow!(
            "{} ignored {what}: it wrote anyway. Graven needs conditional writes (If-Match, If-None-Match) to keep two writers from forking the log; use a store that supports them",
            store.location()
        )
    };
    match store.put(PROBE, b"probe", Cond::IfMatch("\"graven-not-an-etag\""), false) {
        Err(StoreError::Precondition { .. }) => {}
        Ok(_) => return Err(ignored("If-Match with a wrong ETag")),
        Err(e) => return Err(e.into()),
    }
    match store.put(PROBE, b"probe", Cond::IfAbsent, false) {
        Err(StoreError::Precondition { .. }) => Ok(()),
        Ok(_) => Err(ignored("If-None-Match: * on an existing object")),
        Err(e) => Err(e.into()),
    }
}

/// Connects to the bucket and checks it can hold the log: versioning on, and Object Lock
/// unless explicitly waived. Then settles what the immutable objects are locked with (the
/// bucket's default retention, or the settings, never weaker: [`graven_s3::RetentionPlan`]),
/// and says so in one line. A refused start writes nothing to the bucket.
fn open_store(
    s: &graven_server::config::SharedStorage,
) -> anyhow::Result<std::sync::Arc<dyn graven_tlog::ObjectStore>> {
    let mut cfg = graven_s3::S3Config::from_url(&s.url)?;
    if let Some(e) = &s.endpoint {
        cfg.endpoint = Some(e.clone());
        cfg.path_style = true;
    }
    if let Some(r) = &s.region {
        cfg.region = r.clone();
    }
    let probe = graven_s3::S3Store::connect(cfg.clone())?;
    let report = probe.check_bucket()?;
    // Named once the first request has been signed: the source that answered, never a secret.
    if let Some(source) = probe.credential_source() {
        println!("S3 credentials: {source}");
    }
    report.require(s.require_object_lock)?;
    let ask = graven_s3::RetentionAsk {
        mode: s.retention_mode.map(|m| match m {
            graven_server::config::RetentionMode::Compliance => graven_s3::RetentionMode::Compliance,
            graven_server::config::RetentionMode::Governance => graven_s3::RetentionMode::Governance,
        }),
        days: s.retention_days,
    };
    let plan = graven_s3::RetentionPlan::choose(&report, ask, !s.require_object_lock)?;
    if plan == graven_s3::RetentionPlan::Unlocked {
        eprintln!(
            "graven: warning: bucket {} has no Object Lock; history in it can be deleted by anyone holding its credentials (graven verify would notice)",
            report.bucket
        );
    }
    check_conditional_writes(&probe)?;
    drop(probe);
    println!("{}", plan.summary());
    cfg.retention = plan.retention();
    Ok(std::sync::Arc::new(graven_s3::S3Store::connect(cfg)?))
}

/// Connects to where a shared log's nodes claim signed requests (`replay_claims`), with the
/// log's endpoint, region and credentials. A bucket with a default Object Lock retention rule
/// is refused: every claim (one object per signed request) would be locked for the rule's
/// period, which nothing may shorten, and Graven never writes a weaker retention than a
/// bucket's rule. Claims are written without retention; the location's lifecycle rule
/// removes them (docs/scale-out.md).
fn open_claims_store(
    s: &graven_server::config::SharedStorage,
    url: &str,
) -> anyhow::Result<std::sync::Arc<dyn graven_tlog::ObjectStore>> {
    let mut cfg = graven_s3::S3Config::from_url(url)?;
    if let Some(e) = &s.endpoint {
        cfg.endpoint = Some(e.clone());
        cfg.path_style = true;
    }
    if let Some(r) = &s.region {
        cfg.region = r.clone();
    }
    cfg.retention = None;
    let store = graven_s3::S3Store::connect(cfg)?;
    let report = store.check_bucket()?;
    if let Some(rule) = &report.default_retention {
        anyhow::bail!(
            "replay_claims: bucket {} has a default Object Lock retention rule ({rule}), which would lock every claim (one object per signed request) for that long; put the claims in a bucket without one, with a lifecycle rule that expires them (docs/scale-out.md)",
            report.bucket
        );
    }
    check_conditional_writes(&store)?;
    Ok(std::sync::Arc::new(store))
}

/// Rebuilds `<data>/index.redb` from `<data>/log`. The index is derived data; the log is the
/// truth, checked against the log's own key before anything is indexed.
pub fn reindex(data: &Path) -> anyhow::Result<ExitCode> {
    use graven_core::checkpoint::VerifiedCheckpoint;
    use graven_core::note::SignerKey;

    let key_path = data.join("log.key");
    let key_text = crate::input::read_small(&key_path, crate::input::MAX_KEY_FILE)?;
    let vkey = SignerKey::parse(key_text.trim())
        .with_context(|| format!("{} does not hold a signer key", key_path.display()))?
        .verifier();
    let log_dir = data.join("log");
    let cp_bytes = std::fs::read(log_dir.join("checkpoint")).with_context(|| {
        format!("{} has no checkpoint; is it a graven data directory?", log_dir.display())
    })?;
    let cp = VerifiedCheckpoint::open(&cp_bytes, &vkey, vkey.name())
        .context("the log's checkpoint does not verify")?;
    let index = graven_index::Index::open(&data.join("index.redb"))
        .map_err(|e| anyhow::anyhow!("opening the index (is the server still running?): {e}"))?;
    index.clear().map_err(|e| anyhow::anyhow!("clearing the index: {e}"))?;
    let reader = graven_engine::reader::LogReader::new(&log_dir);
    let bar = crate::human::progress("indexing", "entries", cp.size().0);
    let n = graven_engine::indexer::catch_up_reporting(&index, &reader, cp.size().0, &mut |done| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    println!("{}", serde_json::json!({"indexed": n, "tree_size": cp.size().0}));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn parse(args: &[&str]) -> Overrides {
        overrides(Serve::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).unwrap().args)
    }

    fn config(origin: Option<&str>, data: &Path) -> config::Config {
        let o = Overrides { data: Some(data.into()), origin: origin.map(Into::into), ..Default::default() };
        config::resolve(o).unwrap()
    }

    /// A new log without a set origin is named after the host, and start-up says so and how
    /// to choose another; host names that are not plain DNS names are refused, not mangled.
    #[test]
    fn a_new_log_is_named_after_the_host_and_says_so() {
        let d = tempfile::tempdir().unwrap();
        let mut c = config(None, d.path());
        let lines = settle_origin(&mut c, std::ffi::OsStr::new("Build-7.Example.COM")).unwrap();
        let mut underscored = config(None, d.path());
        settle_origin(&mut underscored, std::ffi::OsStr::new("ci_runner-3")).unwrap();
        assert_eq!(underscored.origin, "ci_runner-3/graven");
        assert_eq!(c.origin, "build-7.example.com/graven");
        assert!(
            lines[0].contains("build-7.example.com/graven") && lines[0].contains("host's name"),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.contains("cannot change")), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("--origin")), "{lines:?}");
        for bad in ["", "a b", "(none)", "-x", "x.", "über", "a+b"] {
            let mut c = config(None, d.path());
            let e = settle_origin(&mut c, std::ffi::OsStr::new(bad)).unwrap_err().to_string();
            assert!(e.contains("--origin"), "{bad:?}: {e}");
        }
        // A set origin is kept, and announced as set.
        let mut c = config(Some("audit.example/log"), d.path());
        let lines = settle_origin(&mut c, std::ffi::OsStr::new("host")).unwrap();
        assert_eq!(c.origin, "audit.example/log");
        assert!(lines[0].contains("audit.example/log (as set)"), "{lines:?}");
    }

    /// Once the log exists its key names it: nothing is derived or announced, and a set origin
    /// that differs is refused.
    #[test]
    fn an_existing_log_keeps_its_origin() {
        let d = tempfile::tempdir().unwrap();
        let key = graven_core::note::SignerKey::from_seed("first.example/log", [7; 32]).unwrap();
        std::fs::write(d.path().join("log.key"), format!("{}\n", key.to_secret_string())).unwrap();
        let mut c = config(None, d.path());
        assert!(settle_origin(&mut c, std::ffi::OsStr::new("host")).unwrap().is_empty());
        let mut c = config(Some("first.example/log"), d.path());
        assert!(settle_origin(&mut c, std::ffi::OsStr::new("host")).unwrap().is_empty());
        let mut c = config(Some("other.example/log"), d.path());
        let e = settle_origin(&mut c, std::ffi::OsStr::new("host")).unwrap_err().to_string();
        assert!(e.contains("first.example/log") && e.contains("cannot change"), "{e}");
    }

    /// `--client-ca` with `--client-ca-trust-domain` (repeated, or comma-separated) binds the
    /// one CA to those trust domains; the server's config resolution is tested in
    /// `crates/graven-server` (`config.rs`, and `tests/api/mtls.rs` over real handshakes).
    #[test]
    fn the_client_ca_flags_reach_the_settings() {
        let o = parse(&[
            "--client-ca",
            "ca.pem",
            "--client-ca-trust-domain",
            "prod.example",
            "--client-ca-trust-domain",
            "qa.example,dev.example",
        ]);
        assert_eq!(o.client_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(o.client_ca_trust_domains, ["prod.example", "qa.example", "dev.example"]);
        let o =
            parse(&["--client-ca", "ca.pem", "--public-read-path", "true", "--max-pending-events", "100"]);
        assert!(o.client_ca_trust_domains.is_empty());
        assert_eq!((o.public_read_path, o.max_pending_events), (Some(true), Some(100)));
    }
}
