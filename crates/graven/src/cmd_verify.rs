use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::note::VerifierKey;
use graven_verify::client_sigs::{ClientSigChecker, Tally};
use graven_verify::{
    DirFetch, Fetch, HttpFetch, Mode, Remembered, Stamps, Trust, TrustError, TrustStore, VerifiedLog,
    VerifyError, VisitError, WitnessError, WitnessedCheckpoint, verify_log_since_visiting,
    verify_log_stamped,
};
use serde_json::{Value, json};

use crate::escape;
use crate::witnesses::{self, Loaded, PolicyArgs};

/// Polls in a row that may fail to fetch (network down, server restarting) before `--follow`
/// gives up and alerts.
const MAX_FETCH_FAILURES_IN_A_ROW: u32 = 10;
/// How long the webhook gets to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// A log directory, the log's base URL, s3://bucket/prefix (credentials and endpoint from
    /// the AWS environment variables), an evidence bundle file (.tar), a C2SP tlog-proof
    /// file (.tlog-proof, with --policy and --event), or a file of receipts (.json, .jsonl:
    /// a receipt per event, or a batch's range receipt; docs/receipts.md). Default: the server GRAVEN_SERVER names,
    /// else http://127.0.0.1:7878.
    #[arg(value_name = "TARGET")]
    target: Option<String>,
    /// For a URL: file holding an API key (else GRAVEN_TOKEN), for a server whose read path
    /// is not public.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// For a URL: how many files to fetch ahead of the verification, at most (the entries
    /// are still checked in order; 0 fetches one file at a time).
    #[arg(long, value_name = "N", default_value_t = graven_verify::DEFAULT_FETCH_AHEAD as u16, value_parser = clap::value_parser!(u16).range(0..=256))]
    fetch_ahead: u16,
    /// The log's verifier key (name+id+key), or a file that holds it. Optional with --policy
    /// (the policy's log line names it), and for an evidence bundle (its own key is then used,
    /// and the output says so).
    #[arg(long)]
    vkey: Option<String>,
    #[command(flatten)]
    policy: PolicyArgs,
    /// For a .tlog-proof: the file holding the event's exact bytes (the log entry), or - for
    /// stdin.
    #[arg(long, value_name = "FILE")]
    event: Option<PathBuf>,
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
    /// The default for a directory and an evidence bundle; for a URL or s3:// it re-reads
    /// the whole log instead of only what is new.
    #[arg(long, conflicts_with = "incremental")]
    full: bool,
    /// Read only what is new since the remembered checkpoint, trusting that the entries it
    /// covered have not changed since (the default for a URL or s3://, and for every poll of
    /// --follow after the first).
    #[arg(long)]
    incremental: bool,
    /// Keep watching: poll the log, verify each new checkpoint, stop and alert on any failure.
    #[arg(long)]
    follow: bool,
    /// Seconds between polls with --follow.
    #[arg(long, default_value_t = 60.0, requires = "follow")]
    interval: f64,
    /// With --follow: POST a JSON alert to this URL when verification fails.
    #[arg(long, requires = "follow")]
    webhook: Option<String>,
    /// PEM file of the root certificate(s) of the log's Time-Stamp Authority: check every
    /// RFC 3161 token of the checkpoints verified, and their order (docs/trusted-time.md).
    #[arg(long, value_name = "FILE")]
    tsa_cert: Option<PathBuf>,
}

/// Everything one verification needs besides the fetcher.
struct Job {
    vkey: VerifierKey,
    origin: String,
    store: TrustStore,
    /// For a one-shot run and the first poll of `--follow`.
    mode: Mode,
    /// For the later polls of `--follow`.
    follow_mode: Mode,
    json: bool,
    /// `--tsa-cert`: time-stamp tokens are checked with these roots.
    tsa: Option<graven_tsa::TsaVerifier>,
    /// With --policy: what every checkpoint must meet.
    policy: Option<Loaded>,
}

pub fn run(mut a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let target = match a.target.take() {
        Some(t) => t,
        None => crate::server_url::resolve(None)?,
    };
    run_on(&target, a)
}

fn run_on(target: &str, a: VerifyArgs) -> anyhow::Result<ExitCode> {
    if crate::cmd_proof_file::is_tlog_proof(target) {
        if a.follow {
            anyhow::bail!("--follow watches a log; a .tlog-proof file is checked once");
        }
        return crate::cmd_proof_file::verify(
            target,
            a.event.as_deref(),
            a.vkey.as_deref(),
            &a.policy,
            a.json,
        );
    }
    if a.event.is_some() {
        anyhow::bail!("--event goes with a .tlog-proof file, whose entry it is");
    }
    if crate::cmd_receipt_file::is_receipt_file(target) {
        if a.follow {
            anyhow::bail!("--follow watches a log; a receipt file is checked once");
        }
        return crate::cmd_receipt_file::verify(target, a.vkey.as_deref(), a.json);
    }
    let tsa = a.tsa_cert.as_deref().map(crate::input::tsa_verifier).transpose()?;
    if crate::cmd_bundle::is_bundle(target) {
        return crate::cmd_bundle::run(target, a.vkey.as_deref(), &a.policy, a.json, tsa.as_ref());
    }
    let is_url = ["http://", "https://"]
        .iter()
        .any(|p| target.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p)));
    let target = if is_url {
        crate::server_url::parse(target).map_err(anyhow::Error::msg)?
    } else {
        target.to_owned()
    };
    let target = target.as_str();
    if !is_url && !target.starts_with("s3://") && !std::path::Path::new(target).is_dir() {
        let shown = escape::for_terminal(target);
        if !std::path::Path::new(target).exists()
            && !target.contains("://")
            && let Err(as_url) = crate::server_url::parse(target)
        {
            anyhow::bail!("{shown} is not a directory; as a server's URL, {as_url}");
        }
        anyhow::bail!(
            "{shown} is not a directory, an evidence bundle, a .tlog-proof file, a receipt file (.json) or an http(s) or s3:// URL"
        );
    }
    let (vkey, policy) = match a.vkey.as_deref() {
        None if a.policy.policy.is_none() => {
            anyhow::bail!("--vkey is required to verify a log (or --policy, whose log line names the key)")
        }
        v => witnesses::log_key(v, &a.policy)?,
    };
    let store = TrustStore::locate(a.trust_dir.clone(), |k| std::env::var_os(k))?;
    let origin = a.origin.clone().unwrap_or_else(|| vkey.name().to_owned());
    // A local directory (or bundle) is cheap to re-read, and its trust-store entry is keyed
    // by origin and key, not by location: a copy of a verified log with an altered old entry
    // must not pass as "nothing new". Remote logs stay incremental, and say so.
    let remote = is_url || target.starts_with("s3://");
    let mode = match (a.full, a.incremental) {
        (true, _) => Mode::Full,
        (_, true) => Mode::Incremental,
        _ if remote => Mode::Incremental,
        _ => Mode::Full,
    };
    let follow_mode = if a.full { Mode::Full } else { Mode::Incremental };
    let job = Job { vkey, origin, store, mode, follow_mode, json: a.json, tsa, policy };
    if a.follow && !(a.interval.is_finite() && a.interval >= 0.05) {
        anyhow::bail!("--interval must be a number of seconds, at least 0.05");
    }
    if target.starts_with("s3://") {
        let cfg = graven_s3::S3Config::from_url(target)?;
        let store = graven_s3::S3Store::connect(cfg)?;
        let mut f = graven_tlog::StoreFetch::new(std::sync::Arc::new(store));
        return if a.follow {
            follow(&mut f, &job, a.interval, a.webhook.as_deref())
        } else {
            once(&mut f, &job)
        };
    }
    if is_url {
        let mut f = HttpFetch::new(target).with_fetch_ahead(usize::from(a.fetch_ahead));
        if let Some(t) = crate::input::token(a.token_file.as_deref())? {
            f = f.with_bearer(&t);
        }
        if a.follow { follow(&mut f, &job, a.interval, a.webhook.as_deref()) } else { once(&mut f, &job) }
    } else {
        let path = std::path::Path::new(target);
        let mut f = DirFetch::new(path);
        if a.follow { follow(&mut f, &job, a.interval, a.webhook.as_deref()) } else { once(&mut f, &job) }
    }
}

/// Why a run did not end with a remembered checkpoint.
enum Failure {
    /// The log could not be read: no evidence about it either way (exit 2).
    Unreachable(VerifyError),
    Verify(VerifyError),
    /// Another run stored a conflicting checkpoint of the same size meanwhile: a fork too.
    Conflict(TrustError),
    /// The log verified, but its checkpoint does not meet the witness policy.
    NotWitnessed(WitnessError),
}

impl Failure {
    fn kind(&self) -> &'static str {
        match self {
            Failure::Verify(
                VerifyError::Timestamp { .. }
                | VerifyError::TimeOrder(_)
                | VerifyError::StampedCheckpoint { .. },
            ) => "timestamp",
            Failure::Verify(VerifyError::Rollback(_)) => "rollback",
            Failure::Verify(VerifyError::Fork(_)) | Failure::Conflict(_) => "fork",
            Failure::Verify(_) => "verification-failed",
            Failure::Unreachable(_) => "unreachable",
            Failure::NotWitnessed(_) => "not-witnessed",
        }
    }
    fn message(&self) -> String {
        match self {
            Failure::Verify(e) | Failure::Unreachable(e) => e.to_string(),
            Failure::Conflict(e) => e.to_string(),
            Failure::NotWitnessed(e) => e.to_string(),
        }
    }
    /// A checkpoint that may yet gain cosignatures: the log's own signature and the quorum's
    /// other rules held, only cosignatures are missing (a witness is slow, or down).
    fn awaiting_cosignatures(&self) -> bool {
        matches!(self, Failure::NotWitnessed(e) if e.quorum().is_some())
    }
}

/// What the client-signature check of one run found.
#[derive(Debug, Default, Clone, Copy)]
struct Sigs {
    verified: u64,
    /// Signatures whose key was registered before this run's scan.
    unchecked: u64,
    registry_ignored: Tally,
    non_events: Tally,
    /// Whether the scan started at entry 0.
    complete: bool,
}

/// A run that ended with a remembered checkpoint.
struct Verified {
    log: VerifiedLog,
    remembered: Remembered,
    /// With a policy: the witnesses that cosigned.
    witnessed: Option<WitnessedCheckpoint>,
}

/// One run: the checkpoint remembered before it (if any), and how it ended.
struct Outcome {
    trusted: Option<VerifiedCheckpoint>,
    /// With a policy and a remembered checkpoint: whether its stored cosignatures meet the
    /// policy now.
    trusted_witnessed: Option<Result<WitnessedCheckpoint, WitnessError>>,
    result: Result<Verified, Failure>,
    sigs: Sigs,
    /// The time-stamp tokens checked (with `--tsa-cert`).
    stamps: Option<Stamps>,
}

/// Loads the remembered checkpoint, verifies, and remembers the result. A trust store that
/// cannot be read or written is an error (exit 2), not a verification failure.
fn verify_once<F: Fetch>(
    f: &mut F,
    job: &Job,
    mode: Mode,
    progress: impl FnMut(u64, u64),
) -> anyhow::Result<Outcome> {
    let (trusted, trusted_witnessed) = match &job.policy {
        Some(p) => match job.store.load_witnessed(&p.policy, &job.origin)? {
            Some(stored) => (Some(stored.checkpoint), Some(stored.witnessed)),
            None => (None, None),
        },
        None => (job.store.load(&job.vkey, &job.origin)?, None),
    };
    // Client signatures are checked against keys registered earlier in the log itself.
    let complete = trusted.is_none() || mode == Mode::Full;
    let mut checker = ClientSigChecker::new(complete);
    let visit = |i: u64, e: &[u8]| checker.visit(i, e).map_err(VisitError);
    let mut stamps = None;
    let result = match &job.tsa {
        None => verify_log_since_visiting(
            f,
            &job.vkey,
            Some(&job.origin),
            trusted.as_ref(),
            mode,
            progress,
            visit,
        ),
        Some(tsa) => {
            let kept = job.store.load_stamp(&job.vkey, &job.origin, tsa)?.map(|r| (r.size, r.time));
            verify_log_stamped(
                f,
                &job.vkey,
                Some(&job.origin),
                trusted.as_ref(),
                mode,
                progress,
                visit,
                tsa,
                kept,
            )
            .map(|(v, s)| {
                stamps = Some(s);
                v
            })
        }
    };
    let sigs = Sigs {
        verified: checker.verified,
        unchecked: checker.unchecked,
        registry_ignored: checker.registry_ignored,
        non_events: checker.non_events,
        complete,
    };
    let done = |result: Result<Verified, Failure>, stamps: Option<Stamps>| -> anyhow::Result<Outcome> {
        Ok(Outcome { trusted, trusted_witnessed, result, sigs, stamps })
    };
    // The tree is checked first, so that a fork or a rollback of a remembered checkpoint is
    // reported as such (evidence against the log), whatever its cosignatures.
    let log = match result {
        Ok(v) => v,
        Err(e) if e.is_outage() => return done(Err(Failure::Unreachable(e)), stamps),
        Err(e) => return done(Err(Failure::Verify(e)), stamps),
    };
    let (remembered, witnessed) = match &job.policy {
        Some(p) => match p.policy.check_log(&log) {
            Ok(w) => (job.store.remember_witnessed(&w, &p.policy), Some(w.witnessed().clone())),
            Err(e) => return done(Err(Failure::NotWitnessed(e)), stamps),
        },
        None => (job.store.remember(&log), None),
    };
    match remembered {
        Ok(remembered) => {
            if let (Some(tsa), Some(latest)) = (&job.tsa, stamps.as_ref().and_then(Stamps::latest)) {
                job.store.remember_stamp(&log, latest, tsa)?;
            }
            done(Ok(Verified { log, remembered, witnessed }), stamps)
        }
        Err(e @ TrustError::ConflictingUpdate { .. }) => done(Err(Failure::Conflict(e)), stamps),
        Err(e) => Err(e.into()),
    }
}

/// A remembered checkpoint whose stored cosignatures do not meet the policy (it still holds the
/// log to its history).
fn remembered_warning(job: &Job, trusted: Option<&VerifiedCheckpoint>, e: &WitnessError) -> String {
    format!(
        "warning: the remembered checkpoint (size {}) in {} does not meet the policy with the cosignatures stored with it: {e}. It still holds the log to its history (rollback and fork checks); it is replaced by the next checkpoint of this log that meets the policy",
        trusted.map_or(0, |t| t.size().0),
        job.store.path_for(&job.origin, &job.vkey).display()
    )
}

fn once<F: Fetch>(f: &mut F, job: &Job) -> anyhow::Result<ExitCode> {
    let bar = crate::human::progress("verifying", "entries", 0);
    let start = Instant::now();
    let outcome = verify_once(f, job, job.mode, |done, total| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let Outcome { trusted, trusted_witnessed, result, sigs, stamps } = outcome?;
    let secs = start.elapsed().as_secs_f64();
    if let Some(Err(e)) = &trusted_witnessed {
        eprintln!("{}", escape::message(&remembered_warning(job, trusted.as_ref(), e)));
    }
    match result {
        Ok(v) => {
            if job.json {
                let mut j = success_json(f, job, &v, secs, &sigs);
                add_remembered_witnessed(&mut j, trusted_witnessed.as_ref());
                add_stamps_json(&mut j, stamps.as_ref());
                println!("{}", escape::json_line(&j));
            } else {
                print_lines(&success_text(job, &v, secs));
                for line in sig_lines(&sigs).into_iter().chain(stamp_lines(stamps.as_ref())) {
                    println!("{}", escape::message(&line));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(Failure::Unreachable(e)) => {
            if job.json {
                println!("{}", escape::json_line(&unreachable_json(f, job, &e)));
            }
            eprintln!("{}", unreachable_text(f, &e));
            Ok(ExitCode::from(2))
        }
        Err(failure) => {
            if job.json {
                println!("{}", escape::json_line(&failure_json(f, job, trusted.as_ref(), &failure)));
            }
            eprintln!(
                "graven: verification FAILED for {}: {}",
                escape::message(&f.location()),
                escape::message(&failure.message())
            );
            if matches!(failure, Failure::NotWitnessed(_)) {
                eprintln!("{}", witnesses::REFUSAL_HINT);
            }
            if let Some(t) = &trusted {
                eprintln!("{}", escape::message(&remembered_hint(job, t)));
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// With a policy and a remembered checkpoint, whether its stored cosignatures meet the policy.
fn add_remembered_witnessed(j: &mut Value, status: Option<&Result<WitnessedCheckpoint, WitnessError>>) {
    if let Some(status) = status {
        j["remembered_witnessed"] = match status {
            Ok(w) => json!({"quorum_met": true, "cosigned": witnesses::cosigned_json(w)}),
            Err(e) => json!({"quorum_met": false, "error": e.to_string()}),
        };
    }
}

/// The log could not be read: say what failed, and that it proves nothing about the log.
fn unreachable_text<F: Fetch>(f: &F, e: &VerifyError) -> String {
    let what = escape::message(&e.to_string()).into_owned();
    let hint = if matches!(e, VerifyError::Missing { .. }) {
        "Is this the log's address? Nothing was verified."
    } else {
        "Check the address, the network and, for a server, the credential (--token-file or GRAVEN_TOKEN), then run again. Nothing was verified."
    };
    format!(
        "graven: could not read the log at {}: {what}\n  The log could not be read; this is not evidence of tampering. {hint}",
        escape::message(&f.location())
    )
}

fn unreachable_json<F: Fetch>(f: &F, job: &Job, e: &VerifyError) -> Value {
    json!({
        "ok": false,
        "error_kind": "unreachable",
        "location": f.location(),
        "origin": job.origin,
        "error": e.to_string(),
        "note": "the log could not be read; this is not evidence of tampering",
    })
}

/// What the client-signature check found besides failures, one line each.
fn sig_lines(s: &Sigs) -> Vec<String> {
    let mut lines = Vec::new();
    if s.verified + s.unchecked > 0 {
        let unchecked = if s.unchecked > 0 {
            format!(
                ", {} not checked (their keys were registered before the remembered checkpoint; use --full)",
                s.unchecked
            )
        } else {
            String::new()
        };
        lines.push(format!("client signatures: {} verified{unchecked}", s.verified));
    }
    if let (n @ 1.., Some(first)) = (s.registry_ignored.count, s.registry_ignored.first) {
        let partial = if s.complete {
            ""
        } else {
            "; this run did not scan the log from its start, so admins created before it are not known (--full judges them all)"
        };
        lines.push(format!(
            "{n} registry event{} ignored (first at entry {first}): {} actor is not an admin recorded in the log, so {} registered or revoked no key{partial}",
            plural(n, "", "s"),
            plural(n, "its", "their"),
            plural(n, "it", "they"),
        ));
    }
    if let (n @ 1.., Some(first)) = (s.non_events.count, s.non_events.first) {
        lines.push(format!(
            "{n} {} (first at entry {first}): not a JSON object the strict RFC 8785 parser accepts (a line appended with --raw, for example) and carrying no client signature",
            plural(n, "entry is not a Graven event", "entries are not Graven events"),
        ));
    }
    lines
}

/// What the time-stamp check found (with `--tsa-cert`), one line each.
fn stamp_lines(stamps: Option<&Stamps>) -> Vec<String> {
    let Some(s) = stamps else { return Vec::new() };
    let range = if s.after > 0 { format!(" after the remembered size {}", s.after) } else { String::new() };
    let mut lines = Vec::new();
    if s.checked.is_empty() {
        let how = if s.listed {
            ""
        } else {
            " (this source cannot list tokens: only the verified checkpoint's was looked for)"
        };
        lines.push(format!("time-stamps: none found{range}{how}"));
        return lines;
    }
    lines.push(format!(
        "time-stamps: {} token{} verified{range} against the TSA roots given (no later checkpoint carries an earlier time):",
        s.checked.len(),
        plural(s.checked.len() as u64, "", "s")
    ));
    for c in &s.checked {
        lines.push(format!(
            "  size {} stamped at {} by {}",
            c.size(),
            c.gen_time(),
            graven_tsa::quote(c.timestamp().signer())
        ));
    }
    lines
}

fn add_stamps_json(j: &mut Value, stamps: Option<&Stamps>) {
    if let Some(s) = stamps {
        j["timestamps"] = json!({
            "listed": s.listed,
            "after": s.after,
            "checked": s.checked.iter().map(|c| json!({
                "tree_size": c.size().0,
                "gen_time": c.gen_time().to_string(),
                "tsa": c.timestamp().signer(),
                "serial": c.timestamp().serial_hex(),
            })).collect::<Vec<_>>(),
        });
    }
}

/// Prints our own multi-line text, each line escaped on its own.
fn print_lines(text: &str) {
    for line in text.lines() {
        println!("{}", escape::message(line));
    }
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn tally_json(t: Tally) -> Value {
    json!({"count": t.count, "first_index": t.first})
}

fn follow<F: Fetch>(f: &mut F, job: &Job, interval: f64, webhook: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut last_printed: Option<(u64, graven_core::Hash)> = None;
    let mut fetch_failures = 0u32;
    // Polls in a row whose checkpoint lacked only cosignatures.
    let mut unwitnessed = 0u32;
    let mut warned_remembered = false;
    loop {
        let start = Instant::now();
        let mode = if last_printed.is_none() { job.mode } else { job.follow_mode };
        let Outcome { trusted, trusted_witnessed, result, sigs, stamps } =
            verify_once(f, job, mode, |_, _| {})?;
        let secs = start.elapsed().as_secs_f64();
        if let (Some(Err(e)), false) = (&trusted_witnessed, warned_remembered) {
            eprintln!("{}", escape::message(&remembered_warning(job, trusted.as_ref(), e)));
            warned_remembered = true;
        }
        match result {
            Ok(v) => {
                fetch_failures = 0;
                unwitnessed = 0;
                let now = (v.log.report().size.0, v.log.report().root);
                if last_printed != Some(now) {
                    if job.json {
                        let mut j = success_json(f, job, &v, secs, &sigs);
                        add_remembered_witnessed(&mut j, trusted_witnessed.as_ref());
                        add_stamps_json(&mut j, stamps.as_ref());
                        println!("{}", escape::json_line(&j));
                    } else {
                        print_lines(&success_text(job, &v, secs));
                        for line in sig_lines(&sigs).into_iter().chain(stamp_lines(stamps.as_ref())) {
                            println!("{}", escape::message(&line));
                        }
                    }
                    last_printed = Some(now);
                }
            }
            Err(failure)
                if failure.awaiting_cosignatures() && unwitnessed + 1 < MAX_FETCH_FAILURES_IN_A_ROW =>
            {
                // The witnesses may not have cosigned the newest checkpoint yet: it is not
                // trusted (nothing is remembered), and the next poll looks again.
                unwitnessed += 1;
                if job.json {
                    let mut j = failure_json(f, job, trusted.as_ref(), &failure);
                    j["transient"] = json!(true);
                    println!("{}", escape::json_line(&j));
                } else {
                    println!(
                        "warning: not accepted yet ({unwitnessed} of {MAX_FETCH_FAILURES_IN_A_ROW} polls): {}",
                        escape::message(&failure.message())
                    );
                }
            }
            Err(Failure::Unreachable(e)) if fetch_failures + 1 < MAX_FETCH_FAILURES_IN_A_ROW => {
                // The log could not be reached; that is not evidence of anything.
                fetch_failures += 1;
                if job.json {
                    let mut j = unreachable_json(f, job, &e);
                    j["transient"] = json!(true);
                    println!("{}", escape::json_line(&j));
                } else {
                    println!(
                        "warning: could not read {} ({fetch_failures} of {MAX_FETCH_FAILURES_IN_A_ROW} tries): {}",
                        escape::message(&f.location()),
                        escape::message(&e.to_string())
                    );
                }
            }
            Err(Failure::Unreachable(e)) => {
                // Giving up is an outage too: the monitor stops, but nothing was found wrong.
                let mut report = unreachable_json(f, job, &e);
                report["tries"] = json!(MAX_FETCH_FAILURES_IN_A_ROW);
                if let Some(url) = webhook {
                    deliver(url, &mut report);
                }
                if job.json {
                    println!("{}", escape::json_line(&report));
                }
                eprintln!("{}", unreachable_text(f, &e));
                eprintln!("graven: gave up after {MAX_FETCH_FAILURES_IN_A_ROW} failed polls in a row");
                return Ok(ExitCode::from(2));
            }
            Err(failure) => {
                let mut alert = failure_json(f, job, trusted.as_ref(), &failure);
                if let Some(url) = webhook {
                    deliver(url, &mut alert);
                }
                if job.json {
                    println!("{}", escape::json_line(&alert));
                }
                eprintln!(
                    "graven: verification FAILED for {}: {}",
                    escape::message(&f.location()),
                    escape::message(&failure.message())
                );
                if failure.awaiting_cosignatures() {
                    eprintln!(
                        "graven: the log's checkpoints lacked the policy's quorum for {MAX_FETCH_FAILURES_IN_A_ROW} polls in a row"
                    );
                }
                if let Some(t) = &trusted {
                    eprintln!("{}", escape::message(&remembered_hint(job, t)));
                }
                return Ok(ExitCode::FAILURE);
            }
        }
        std::thread::sleep(Duration::from_secs_f64(interval));
    }
}

/// POSTs `report` to the webhook and records in it whether that worked.
fn deliver(url: &str, report: &mut Value) {
    let sent = post_alert(url, report);
    report["webhook"] = match &sent {
        Ok(()) => json!("sent"),
        Err(e) => json!(format!("failed: {e}")),
    };
    if let Err(e) = sent {
        eprintln!(
            "graven: could not deliver the report to {}: {}",
            escape::message(url),
            escape::message(&format!("{e:#}"))
        );
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

fn success_json<F: Fetch>(f: &F, job: &Job, v: &Verified, secs: f64, sigs: &Sigs) -> Value {
    let (r, remembered) = (v.log.report(), &v.remembered);
    let mut j = json!({
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
        "entries_not_reread": not_reread(r),
        "entry_bytes": r.entry_bytes,
        "seconds": secs,
        "entries_per_second": if secs > 0.0 { r.entries_hashed as f64 / secs } else { 0.0 },
        "client_signatures": {"verified": sigs.verified, "not_checked": sigs.unchecked},
        "registry_events_ignored": tally_json(sigs.registry_ignored),
        "non_events": tally_json(sigs.non_events),
    });
    if let (Some(p), Some(w)) = (&job.policy, &v.witnessed) {
        j["witnesses"] = witnesses::success_json(p, w);
    }
    j
}

/// Entries of the log that this run did not read (an incremental run trusts the ones the
/// remembered checkpoint covered).
fn not_reread(r: &graven_verify::Report) -> u64 {
    match r.mode {
        Mode::Incremental => r.size.0.saturating_sub(r.entries_hashed),
        Mode::Full => 0,
    }
}

fn success_text(job: &Job, v: &Verified, secs: f64) -> String {
    let (r, remembered) = (v.log.report(), &v.remembered);
    use crate::human::{count, counted, duration};
    let head = format!(
        "OK: {} verifies: {}, root {}, {} and {} checked in {}",
        r.origin,
        counted(r.size.0, "entry", "entries"),
        r.root,
        counted(r.bundles, "bundle", "bundles"),
        counted(r.tiles, "tile", "tiles"),
        duration(secs)
    );
    let tail = match (r.trust, r.previous_size, r.mode) {
        (Trust::FirstUse, _, _) | (_, None, _) => format!(
            "first use: nothing was remembered for this log, so this checkpoint is trusted on first use and remembered in {}",
            remembered.path().display()
        ),
        (Trust::Consistent, Some(m), Mode::Incremental) => format!(
            "consistent with the remembered checkpoint of size {}; {} hashed; {} stored entries were not re-read: this run trusts that they are unchanged since they were verified (run with --full to re-read everything)",
            count(m.0),
            counted(r.entries_hashed, "entry", "entries"),
            count(not_reread(r))
        ),
        (Trust::Consistent, Some(m), Mode::Full) => {
            format!("consistent with the remembered checkpoint of size {}; fully re-verified", count(m.0))
        }
    };
    match (&job.policy, &v.witnessed) {
        (Some(p), Some(w)) => format!("{head}\n  {}\n  {tail}", witnesses::witnessed_line(p, w)),
        _ => format!("{head}\n  {tail}"),
    }
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
        Failure::Verify(e) | Failure::Unreachable(e) => e.divergence().map(|d| checkpoint_json(&d.presented)),
        Failure::Conflict(_) | Failure::NotWitnessed(_) => None,
    };
    let mut j = json!({
        "ok": false,
        "error_kind": "alert",
        "alert": failure.kind(),
        "location": f.location(),
        "origin": job.origin,
        "error": failure.message(),
        "remembered": trusted.map(checkpoint_json),
        "presented": presented,
        "trust_file": job.store.path_for(&job.origin, &job.vkey).display().to_string(),
    });
    if let (Failure::NotWitnessed(e), Some(p)) = (failure, &job.policy) {
        j["witnesses"] = witnesses::refusal_json(&p.path, e);
    }
    j
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
