use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::note::VerifierKey;
use graven_verify::{
    DirFetch, Fetch, HttpFetch, Mode, Remembered, Trust, TrustError, TrustStore, VerifiedLog, VerifyError,
    VisitError, verify_log_since_visiting,
};
use serde_json::{Value, json};

use crate::input;

/// Polls in a row that may fail to fetch (network down, server restarting) before `--follow`
/// gives up and alerts.
const MAX_FETCH_FAILURES_IN_A_ROW: u32 = 10;
/// How long the webhook gets to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// A log directory, the log's base URL, s3://bucket/prefix (credentials and endpoint from
    /// the AWS environment variables), or an evidence bundle file (.tar).
    target: String,
    /// For a URL: file holding an API key (else GRAVEN_TOKEN), for a server whose read path
    /// is not public.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The log's verifier key (name+id+key), or a file that holds it. Optional for an evidence
    /// bundle (its own key is then used, and the output says so).
    #[arg(long)]
    vkey: Option<String>,
    /// The checkpoint origin to require (default: the verifier key's name).
    #[arg(long)]
    origin: Option<String>,
    /// Print a one-line JSON summary on stdout (with --follow: one line per checkpoint).
    #[arg(long)]
    json: bool,
    /// Where verified checkpoints are remembered
    /// [default: $XDG_CONFIG_HOME/graven/trust, else ~/.config/graven/trust].
    #[arg(long, env = "GRAVEN_TRUST_DIR")]
    trust_dir: Option<PathBuf>,
    /// Re-verify every bundle and tile, not only what is new since the remembered checkpoint.
    #[arg(long)]
    full: bool,
    /// Keep watching: poll the log, verify each new checkpoint, stop and alert on any failure.
    #[arg(long)]
    follow: bool,
    /// Seconds between polls with --follow.
    #[arg(long, default_value_t = 60.0, requires = "follow")]
    interval: f64,
    /// With --follow: POST a JSON alert to this URL when verification fails.
    #[arg(long, requires = "follow")]
    webhook: Option<String>,
}

/// Accepts a verifier key string, or the path of a file holding one.
pub fn load_vkey(arg: &str) -> anyhow::Result<VerifierKey> {
    match VerifierKey::parse(arg) {
        Ok(k) => Ok(k),
        Err(e) => {
            let path = std::path::Path::new(arg);
            if path.is_file() {
                let text = input::read_small(path, input::MAX_KEY_FILE)?;
                VerifierKey::parse(text.trim())
                    .with_context(|| format!("{} does not hold a verifier key", path.display()))
            } else {
                Err(e).context("--vkey is neither a verifier key nor a file holding one")
            }
        }
    }
}

/// Everything one verification needs besides the fetcher.
struct Job {
    vkey: VerifierKey,
    origin: String,
    store: TrustStore,
    mode: Mode,
    json: bool,
}

pub fn run(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    if crate::cmd_bundle::is_bundle(&a.target) {
        return crate::cmd_bundle::run(&a.target, a.vkey.as_deref(), a.json);
    }
    let vkey =
        load_vkey(a.vkey.as_deref().ok_or_else(|| anyhow::anyhow!("--vkey is required to verify a log"))?)?;
    let store = TrustStore::locate(a.trust_dir.clone(), |k| std::env::var_os(k))?;
    let origin = a.origin.clone().unwrap_or_else(|| vkey.name().to_owned());
    let job =
        Job { vkey, origin, store, mode: if a.full { Mode::Full } else { Mode::Incremental }, json: a.json };
    if a.follow && !(a.interval.is_finite() && a.interval >= 0.05) {
        anyhow::bail!("--interval must be a number of seconds, at least 0.05");
    }
    if a.target.starts_with("s3://") {
        let cfg = graven_s3::S3Config::from_url(&a.target)?;
        let store = graven_s3::S3Store::connect(cfg)?;
        let mut f = graven_tlog::StoreFetch::new(std::sync::Arc::new(store));
        return if a.follow {
            follow(&mut f, &job, a.interval, a.webhook.as_deref())
        } else {
            once(&mut f, &job)
        };
    }
    if a.target.starts_with("http://") || a.target.starts_with("https://") {
        let mut f = HttpFetch::new(&a.target);
        if let Some(t) = crate::input::token(a.token_file.as_deref())? {
            f = f.with_bearer(&t);
        }
        if a.follow { follow(&mut f, &job, a.interval, a.webhook.as_deref()) } else { once(&mut f, &job) }
    } else {
        let path = std::path::Path::new(&a.target);
        if !path.is_dir() {
            anyhow::bail!("{} is not a directory or an http(s) URL", a.target);
        }
        let mut f = DirFetch::new(path);
        if a.follow { follow(&mut f, &job, a.interval, a.webhook.as_deref()) } else { once(&mut f, &job) }
    }
}

/// Why a run did not end with a remembered checkpoint.
enum Failure {
    Verify(VerifyError),
    /// Another run stored a conflicting checkpoint of the same size meanwhile: a fork too.
    Conflict(TrustError),
}

impl Failure {
    fn kind(&self) -> &'static str {
        match self {
            Failure::Verify(VerifyError::Rollback(_)) => "rollback",
            Failure::Verify(VerifyError::Fork(_)) | Failure::Conflict(_) => "fork",
            Failure::Verify(_) => "verification-failed",
        }
    }
    fn message(&self) -> String {
        match self {
            Failure::Verify(e) => e.to_string(),
            Failure::Conflict(e) => e.to_string(),
        }
    }
}

/// One run: the checkpoint remembered before it (if any), and how it ended.
struct Outcome {
    trusted: Option<VerifiedCheckpoint>,
    result: Result<(VerifiedLog, Remembered), Failure>,
    /// Client signatures verified, and those whose key was registered before this run's scan.
    client_sigs: (u64, u64),
}

/// Loads the remembered checkpoint, verifies, and remembers the result. A trust store that
/// cannot be read or written is an error (exit 2), not a verification failure.
fn verify_once<F: Fetch>(f: &mut F, job: &Job, progress: impl FnMut(u64, u64)) -> anyhow::Result<Outcome> {
    let trusted = job.store.load(&job.vkey, &job.origin)?;
    // Client signatures are checked against keys registered earlier in the log itself.
    let mut sigs =
        graven_verify::client_sigs::ClientSigChecker::new(trusted.is_none() || job.mode == Mode::Full);
    let verified = match verify_log_since_visiting(
        f,
        &job.vkey,
        Some(&job.origin),
        trusted.as_ref(),
        job.mode,
        progress,
        |i, e| sigs.visit(i, e).map_err(VisitError),
    ) {
        Ok(v) => v,
        Err(e) => return Ok(Outcome { trusted, result: Err(Failure::Verify(e)), client_sigs: (0, 0) }),
    };
    let client_sigs = (sigs.verified, sigs.unchecked);
    match job.store.remember(&verified) {
        Ok(r) => Ok(Outcome { trusted, result: Ok((verified, r)), client_sigs }),
        Err(e @ TrustError::ConflictingUpdate { .. }) => {
            Ok(Outcome { trusted, result: Err(Failure::Conflict(e)), client_sigs })
        }
        Err(e) => Err(e.into()),
    }
}

fn once<F: Fetch>(f: &mut F, job: &Job) -> anyhow::Result<ExitCode> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} verifying [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let start = Instant::now();
    let outcome = verify_once(f, job, |done, total| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let Outcome { trusted, result, client_sigs } = outcome?;
    let secs = start.elapsed().as_secs_f64();
    match result {
        Ok((v, remembered)) => {
            if job.json {
                let mut j = success_json(f, &v, &remembered, secs);
                j["client_signatures"] = json!({"verified": client_sigs.0, "not_checked": client_sigs.1});
                println!("{j}");
            } else {
                println!("{}", success_text(&v, &remembered, secs));
                if client_sigs != (0, 0) {
                    println!(
                        "client signatures: {} verified{}",
                        client_sigs.0,
                        if client_sigs.1 > 0 {
                            format!(
                                ", {} not checked (their keys were registered before the remembered checkpoint; use --full)",
                                client_sigs.1
                            )
                        } else {
                            String::new()
                        }
                    )
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            if job.json {
                println!("{}", failure_json(f, job, trusted.as_ref(), &failure));
            }
            eprintln!("graven: verification FAILED for {}: {}", f.location(), failure.message());
            if let Some(t) = &trusted {
                eprintln!("{}", remembered_hint(job, t));
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

fn follow<F: Fetch>(f: &mut F, job: &Job, interval: f64, webhook: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut last_printed: Option<(u64, graven_core::Hash)> = None;
    let mut fetch_failures = 0u32;
    loop {
        let start = Instant::now();
        let Outcome { trusted, result, .. } = verify_once(f, job, |_, _| {})?;
        let secs = start.elapsed().as_secs_f64();
        match result {
            Ok((v, remembered)) => {
                fetch_failures = 0;
                let now = (v.report().size.0, v.report().root);
                if last_printed != Some(now) {
                    if job.json {
                        println!("{}", success_json(f, &v, &remembered, secs));
                    } else {
                        println!("{}", success_text(&v, &remembered, secs));
                    }
                    last_printed = Some(now);
                }
            }
            Err(Failure::Verify(e @ VerifyError::Fetch { .. }))
                if fetch_failures + 1 < MAX_FETCH_FAILURES_IN_A_ROW =>
            {
                // The log could not be reached; that is not evidence of anything yet.
                fetch_failures += 1;
                if job.json {
                    println!(
                        "{}",
                        json!({"ok": false, "transient": true, "location": f.location(), "error": e.to_string()})
                    );
                } else {
                    println!(
                        "warning: could not read {} ({fetch_failures} of {MAX_FETCH_FAILURES_IN_A_ROW} tries): {e}",
                        f.location()
                    );
                }
            }
            Err(failure) => {
                let mut alert = failure_json(f, job, trusted.as_ref(), &failure);
                if let Some(url) = webhook {
                    let sent = post_alert(url, &alert);
                    alert["webhook"] = match &sent {
                        Ok(()) => json!("sent"),
                        Err(e) => json!(format!("failed: {e}")),
                    };
                    if let Err(e) = sent {
                        eprintln!("graven: could not deliver the alert to {url}: {e}");
                    }
                }
                if job.json {
                    println!("{alert}");
                }
                eprintln!("graven: verification FAILED for {}: {}", f.location(), failure.message());
                if let Some(t) = &trusted {
                    eprintln!("{}", remembered_hint(job, t));
                }
                return Ok(ExitCode::FAILURE);
            }
        }
        std::thread::sleep(Duration::from_secs_f64(interval));
    }
}

fn trust_name(t: Trust) -> &'static str {
    match t {
        Trust::FirstUse => "first-use",
        Trust::Consistent => "consistent",
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Incremental => "incremental",
        Mode::Full => "full",
    }
}

fn success_json<F: Fetch>(f: &F, v: &VerifiedLog, remembered: &Remembered, secs: f64) -> Value {
    let r = v.report();
    json!({
        "ok": true,
        "location": f.location(),
        "origin": r.origin,
        "tree_size": r.size.0,
        "root": r.root.to_base64(),
        "previous_size": r.previous_size.map(|s| s.0),
        "trust": trust_name(r.trust),
        "mode": mode_name(r.mode),
        "trust_file": remembered.path().display().to_string(),
        "bundles": r.bundles,
        "tiles": r.tiles,
        "entries_hashed": r.entries_hashed,
        "entry_bytes": r.entry_bytes,
        "seconds": secs,
        "entries_per_second": if secs > 0.0 { r.entries_hashed as f64 / secs } else { 0.0 },
    })
}

fn success_text(v: &VerifiedLog, remembered: &Remembered, secs: f64) -> String {
    let r = v.report();
    let head = format!(
        "OK: {} verifies: {} entries, root {}, {} bundles and {} tiles checked in {:.2}s",
        r.origin, r.size.0, r.root, r.bundles, r.tiles, secs
    );
    let tail = match (r.trust, r.previous_size, r.mode) {
        (Trust::FirstUse, _, _) | (_, None, _) => format!(
            "first use: nothing was remembered for this log, so this checkpoint is trusted on first use and remembered in {}",
            remembered.path().display()
        ),
        (Trust::Consistent, Some(m), Mode::Incremental) => format!(
            "consistent with the remembered checkpoint of size {m}; {} entries hashed incrementally (--full re-checks everything)",
            r.entries_hashed
        ),
        (Trust::Consistent, Some(m), Mode::Full) => {
            format!("consistent with the remembered checkpoint of size {m}; fully re-verified")
        }
    };
    format!("{head}\n  {tail}")
}

fn checkpoint_json(cp: &VerifiedCheckpoint) -> Value {
    json!({
        "tree_size": cp.size().0,
        "root": cp.root().to_base64(),
        "checkpoint": String::from_utf8_lossy(cp.note_bytes()),
    })
}

/// The failure as JSON; for a rollback or fork it carries both signed checkpoints as evidence.
fn failure_json<F: Fetch>(
    f: &F,
    job: &Job,
    trusted: Option<&VerifiedCheckpoint>,
    failure: &Failure,
) -> Value {
    let presented = match failure {
        Failure::Verify(e) => e.divergence().map(|d| checkpoint_json(&d.presented)),
        Failure::Conflict(_) => None,
    };
    json!({
        "ok": false,
        "alert": failure.kind(),
        "location": f.location(),
        "origin": job.origin,
        "error": failure.message(),
        "remembered": trusted.map(checkpoint_json),
        "presented": presented,
        "trust_file": job.store.path_for(&job.origin, &job.vkey).display().to_string(),
    })
}

fn remembered_hint(job: &Job, t: &VerifiedCheckpoint) -> String {
    format!(
        "graven: the remembered checkpoint (size {}) in {} was left unchanged",
        t.size().0,
        job.store.path_for(&job.origin, &job.vkey).display()
    )
}

fn post_alert(url: &str, alert: &Value) -> anyhow::Result<()> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(WEBHOOK_TIMEOUT))
        .http_status_as_error(false)
        .user_agent(concat!("graven/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    let resp = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(alert.to_string().as_bytes())
        .context("POST")?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        anyhow::bail!("the webhook answered HTTP {status}");
    }
    Ok(())
}
