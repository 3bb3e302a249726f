//! `graven import cloudtrail <dir | file | s3://bucket/prefix>`: reads AWS CloudTrail log files
//! (`.json.gz` as CloudTrail writes them, or `.json`) and posts their records to a server's
//! `POST /v1/sources/cloudtrail` as a `source` identity (docs/sources.md).
//!
//! - **Resumable**: each file done is appended to a state file (and synced) once the server
//!   has answered for all its records; a run skips the files named there, so an interrupted
//!   import goes on where it stopped. CloudTrail never rewrites a log file, so a name is enough.
//! - **Idempotent**: the server de-duplicates by `eventID`, so a file imported twice (a lost
//!   state file, a run killed between the server's answer and the state's write) logs each
//!   record once.
//! - Files in name order (CloudTrail's names carry the time); a large file's records are sent
//!   in several requests; an answer of 503 or 429 (or a broken connection) is retried after its
//!   `Retry-After` or with back-off; any other refusal stops the import with the server's reason
//!   and the file's name, and the files before it stay done.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use graven_tlog::ObjectStore;
use serde_json::value::RawValue;

use crate::escape;

/// Most bytes of one log file, compressed or not (CloudTrail's are a few MB at most).
const MAX_FILE_BYTES: u64 = 256 << 20;
/// Most bytes of one request's body: below a server's default `max_body_bytes` (64 MiB).
const MAX_REQUEST_BYTES: usize = 8 << 20;

#[derive(clap::Subcommand, Debug)]
pub enum ImportCommand {
    /// Import AWS CloudTrail log files from a directory (searched recursively), one file, or
    /// s3://bucket/prefix (credentials from the AWS_* variables, as for an S3 log).
    Cloudtrail(CloudTrailArgs),
}

#[derive(clap::Args, Debug)]
pub struct CloudTrailArgs {
    /// A directory of CloudTrail log files (AWSLogs/...), one file, or s3://bucket/prefix.
    from: String,
    /// The server's base URL [env: GRAVEN_SERVER; default: http://127.0.0.1:7878].
    #[arg(long, value_parser = crate::server_url::parse)]
    server: Option<String>,
    /// File holding the source identity's API key (else GRAVEN_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The file that records which log files are done, for resuming.
    #[arg(long, default_value = "graven-import-cloudtrail.state")]
    state: PathBuf,
    /// Most records per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    /// How many times a request refused for load (503, 429) or cut off is tried again.
    #[arg(long, default_value_t = 8)]
    retries: u32,
}

/// Where the log files are.
enum Files {
    Local(Vec<PathBuf>),
    S3(Box<graven_s3::S3Store>),
}

impl Files {
    fn open(from: &str) -> anyhow::Result<Files> {
        if from.starts_with("s3://") {
            let cfg = graven_s3::S3Config::from_url(from)
                .map_err(|e| anyhow::anyhow!("{}: {e}", escape::for_terminal(from)))?;
            let store = graven_s3::S3Store::connect(cfg)
                .map_err(|e| anyhow::anyhow!("{}: {e}", escape::for_terminal(from)))?;
            return Ok(Files::S3(Box::new(store)));
        }
        let root = PathBuf::from(from);
        let meta = std::fs::metadata(&root).with_context(|| format!("{}", root.display()))?;
        let mut files = Vec::new();
        if meta.is_dir() {
            walk(&root, &mut files, 0)?;
        } else {
            files.push(root);
        }
        files.sort();
        Ok(Files::Local(files))
    }

    /// The names of the log files, in order, and their bytes when asked for.
    fn names(&self) -> anyhow::Result<Vec<String>> {
        match self {
            Files::Local(files) => Ok(files.iter().map(|p| p.display().to_string()).collect()),
            Files::S3(store) => {
                let mut names = Vec::new();
                let mut after = String::new();
                while let Some(key) =
                    store.first_key_after("", &after).map_err(|e| anyhow::anyhow!("listing: {e}"))?
                {
                    if is_log_file(&key) {
                        names.push(key.clone());
                    }
                    after = key;
                }
                Ok(names)
            }
        }
    }

    fn read(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        let raw = match self {
            Files::Local(_) => {
                let f = std::fs::File::open(name).with_context(|| name.to_owned())?;
                let mut buf = Vec::new();
                f.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf).with_context(|| name.to_owned())?;
                buf
            }
            Files::S3(store) => {
                store
                    .get(name, MAX_FILE_BYTES + 1)
                    .map_err(|e| anyhow::anyhow!("reading {name}: {e}"))?
                    .with_context(|| format!("{name}: gone since it was listed"))?
                    .bytes
            }
        };
        if raw.len() as u64 > MAX_FILE_BYTES {
            bail!("{name} is over {MAX_FILE_BYTES} bytes: not a CloudTrail log file");
        }
        if !name.ends_with(".gz") {
            return Ok(raw);
        }
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut out)
            .with_context(|| format!("{name}: not a gzip file"))?;
        if out.len() as u64 > MAX_FILE_BYTES {
            bail!("{name} unzips to over {MAX_FILE_BYTES} bytes: not a CloudTrail log file");
        }
        Ok(out)
    }
}

fn is_log_file(name: &str) -> bool {
    name.ends_with(".json.gz") || name.ends_with(".json")
}

/// The log files under `dir`, at most 32 directories deep.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: u32) -> anyhow::Result<()> {
    if depth > 32 {
        bail!("{}: more than 32 directories deep", dir.display());
    }
    for e in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let e = e.with_context(|| format!("{}", dir.display()))?;
        let ty = e.file_type()?;
        let path = e.path();
        if ty.is_dir() {
            walk(&path, out, depth + 1)?;
        } else if ty.is_file() && is_log_file(&path.to_string_lossy()) {
            out.push(path);
        }
    }
    Ok(())
}

/// The files done, one name per line.
fn read_state(path: &Path) -> anyhow::Result<std::collections::HashSet<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(e).with_context(|| format!("reading the state file {}", path.display())),
    }
}

/// Records `name` as done, durably, before the next file is begun.
fn mark_done(state: &mut std::fs::File, name: &str) -> anyhow::Result<()> {
    state.write_all(format!("{name}\n").as_bytes())?;
    state.sync_data()?;
    Ok(())
}

#[derive(Default)]
struct Totals {
    files: u64,
    skipped_files: u64,
    records: u64,
    logged: u64,
    duplicates: u64,
}

pub fn run(cmd: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Cloudtrail(a) = cmd;
    let server = crate::server_url::resolve(a.server.as_deref())?;
    let token = crate::input::token(a.token_file.as_deref())?
        .context("no credential: give --token-file <file> or set GRAVEN_TOKEN (a key of a source identity allowed cloudtrail)")?;
    let files = Files::open(&a.from)?;
    let names = files.names()?;
    if names.is_empty() {
        bail!("no CloudTrail log files (*.json.gz, *.json) in {}", escape::for_terminal(&a.from));
    }
    let done = read_state(&a.state)?;
    let mut state = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&a.state)
        .with_context(|| format!("opening the state file {}", a.state.display()))?;
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .user_agent(concat!("graven/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    let url = format!("{server}/v1/sources/cloudtrail");
    let mut t = Totals::default();
    for name in &names {
        if done.contains(name) {
            t.skipped_files += 1;
            continue;
        }
        let bytes = files.read(name)?;
        #[derive(serde::Deserialize)]
        struct LogFile<'a> {
            #[serde(rename = "Records", borrow)]
            records: Vec<&'a RawValue>,
        }
        let file: LogFile<'_> = serde_json::from_slice(&bytes).with_context(|| {
            format!("{}: not a CloudTrail log file ({{\"Records\": [...]}})", escape::for_terminal(name))
        })?;
        let (mut logged, mut duplicates) = (0u64, 0u64);
        for chunk in chunks(&file.records, a.batch as usize) {
            let body =
                format!("{{\"Records\":[{}]}}", chunk.iter().map(|r| r.get()).collect::<Vec<_>>().join(","));
            let report = post(&agent, &url, &token, &body, a.retries)
                .with_context(|| format!("importing {}", escape::for_terminal(name)))?;
            logged += report.logged;
            duplicates += report.duplicates;
        }
        mark_done(&mut state, name)
            .with_context(|| format!("writing the state file {}", a.state.display()))?;
        t.files += 1;
        t.records += file.records.len() as u64;
        t.logged += logged;
        t.duplicates += duplicates;
        eprintln!(
            "graven: {}: {} records, {} logged, {} already logged",
            escape::for_terminal(name),
            file.records.len(),
            logged,
            duplicates
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "files": t.files, "files_already_done": t.skipped_files, "records": t.records,
            "logged": t.logged, "duplicates": t.duplicates,
        })
    );
    eprintln!(
        "graven: imported {} files ({} done before, per {}): {} records, {} logged, {} already logged",
        t.files,
        t.skipped_files,
        a.state.display(),
        crate::human::count(t.records),
        crate::human::count(t.logged),
        crate::human::count(t.duplicates)
    );
    Ok(ExitCode::SUCCESS)
}

/// `records` in runs of at most `n` records and [`MAX_REQUEST_BYTES`] bytes (a record larger
/// than that goes alone, for the server to judge).
fn chunks<'a>(records: &'a [&'a RawValue], n: usize) -> Vec<&'a [&'a RawValue]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0usize);
    for (i, r) in records.iter().enumerate() {
        let len = r.get().len() + 1;
        if i > start && (i - start >= n || bytes + len > MAX_REQUEST_BYTES) {
            out.push(&records[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += len;
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

/// Posts one request, trying again after a refusal for load or a broken connection.
fn post(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    body: &str,
    retries: u32,
) -> anyhow::Result<graven_api::SourceReport> {
    let mut attempt = 0u32;
    loop {
        let wait = match agent
            .post(url)
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
        {
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
                    .limit(1 << 20)
                    .read_to_string()
                    .context("reading the answer")?;
                if status == 200 {
                    return serde_json::from_str(&text).context("the answer is not a source report");
                }
                let detail = serde_json::from_str::<graven_api::Problem>(&text)
                    .map(|p| p.detail)
                    .unwrap_or_else(|_| text.chars().take(300).collect());
                if status != 503 && status != 429 {
                    bail!("the server answered {status}: {}", escape::for_terminal(&detail));
                }
                if attempt >= retries {
                    bail!(
                        "the server answered {status} {} times: {}",
                        attempt + 1,
                        escape::for_terminal(&detail)
                    );
                }
                Duration::from_secs(retry_after.unwrap_or(1 << attempt.min(5)).min(60))
            }
            Err(e) => {
                if attempt >= retries {
                    bail!("POST {}", graven_verify::explain_request_error(url, &e));
                }
                Duration::from_secs(1 << attempt.min(5))
            }
        };
        attempt += 1;
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_order_and_both_limits() {
        let owned: Vec<Box<RawValue>> =
            (0..7).map(|i| RawValue::from_string(format!("{{\"i\":{i}}}")).unwrap()).collect();
        let recs: Vec<&RawValue> = owned.iter().map(|b| b.as_ref()).collect();
        let c = chunks(&recs, 3);
        assert_eq!(c.iter().map(|c| c.len()).collect::<Vec<_>>(), [3, 3, 1]);
        let flat: Vec<&str> = c.iter().flat_map(|c| c.iter().map(|r| r.get())).collect();
        assert_eq!(flat, recs.iter().map(|r| r.get()).collect::<Vec<_>>());
        assert!(chunks(&[], 3).is_empty());
        // Over the byte limit: one record per request, however many are allowed.
        let big = RawValue::from_string(format!("\"{}\"", "x".repeat(MAX_REQUEST_BYTES))).unwrap();
        let two = [big.as_ref(), big.as_ref()];
        assert_eq!(chunks(&two, 1000).len(), 2);
    }
}
