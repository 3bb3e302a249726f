//! `graven send`: append events to a server and check what it answers, as a step that fails
//! closed ("no receipt, no action"): exit 0 only when every event has a receipt whose
//! checkpoint is signed by the log's key and whose inclusion proof leads to that checkpoint's
//! root. The event comes from flags (`--action`, `--resource`, `--outcome`, `--detail`), or from
//! standard input (one JSON event, or NDJSON: an all-or-nothing batch).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use crate::escape;

/// Most bytes read from standard input (a server takes 64 MiB by default).
const MAX_STDIN: u64 = 64 << 20;

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// The server's base URL [env: GRAVEN_SERVER; default: http://127.0.0.1:7878].
    #[arg(long, value_parser = crate::server_url::parse)]
    server: Option<String>,
    /// File holding an API key (else GRAVEN_TOKEN).
    #[arg(long, conflicts_with = "oidc_token_env")]
    token_file: Option<PathBuf>,
    /// The name of an environment variable holding an OIDC token (a JWT) to send instead of an
    /// API key, e.g. one a CI system hands its jobs.
    #[arg(long, value_name = "VAR")]
    oidc_token_env: Option<String>,
    /// The log's verifier key, or a file holding it: every receipt is checked against it
    /// [env: GRAVEN_VKEY].
    #[arg(long)]
    vkey: Option<String>,
    /// The event's action, e.g. deployment.create (else the event is read from stdin).
    #[arg(long)]
    action: Option<String>,
    /// What was acted on, as TYPE:ID (e.g. service:payments).
    #[arg(long, requires = "action", value_name = "TYPE:ID")]
    resource: Option<String>,
    /// success, failure or denied.
    #[arg(long, requires = "action")]
    outcome: Option<String>,
    /// A member of `details`, as KEY=VALUE (repeatable; the value is a string).
    #[arg(long = "detail", requires = "action", value_name = "KEY=VALUE")]
    details: Vec<String>,
    /// The client's correlation id (`request_id`).
    #[arg(long, requires = "action")]
    request_id: Option<String>,
}

/// The event the flags describe.
fn event_from_flags(a: &SendArgs, action: &str) -> anyhow::Result<Value> {
    let mut ev = Map::new();
    ev.insert("action".into(), json!(action));
    if let Some(r) = &a.resource {
        let Some((ty, id)) = r.split_once(':').filter(|(t, i)| !t.is_empty() && !i.is_empty()) else {
            bail!("--resource {}: give TYPE:ID, e.g. service:payments", escape::for_terminal(r));
        };
        ev.insert("resource".into(), json!({"type": ty, "id": id}));
    }
    if let Some(o) = &a.outcome {
        ev.insert("outcome".into(), json!(o));
    }
    if let Some(r) = &a.request_id {
        ev.insert("request_id".into(), json!(r));
    }
    if !a.details.is_empty() {
        let mut d = Map::new();
        for kv in &a.details {
            let Some((k, v)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                bail!("--detail {}: give KEY=VALUE", escape::for_terminal(kv));
            };
            if d.insert(k.to_owned(), json!(v)).is_some() {
                bail!("--detail {}: that key is given twice", escape::for_terminal(k));
            }
        }
        ev.insert("details".into(), Value::Object(d));
    }
    Ok(Value::Object(ev))
}

/// The credential: an OIDC token from the variable named, else the API key.
fn credential(a: &SendArgs) -> anyhow::Result<String> {
    if let Some(var) = &a.oidc_token_env {
        return std::env::var(var).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).with_context(
            || format!("--oidc-token-env {var}: that environment variable is not set or empty"),
        );
    }
    crate::input::token(a.token_file.as_deref())?
        .context("no credential: give --token-file <file>, set GRAVEN_TOKEN, or --oidc-token-env <VAR>")
}

pub fn run(a: SendArgs) -> anyhow::Result<ExitCode> {
    let vkey_arg = a.vkey.clone().or_else(|| std::env::var("GRAVEN_VKEY").ok().filter(|v| !v.is_empty()));
    let Some(vkey_arg) = vkey_arg else {
        bail!(
            "--vkey (or GRAVEN_VKEY) is required: a receipt is only worth something checked against the log's key"
        )
    };
    let vkey = crate::input::load_vkey(&vkey_arg)?;
    let server = crate::server_url::resolve(a.server.as_deref())?;
    let (body, batch, count) = match &a.action {
        Some(action) => (event_from_flags(&a, action)?.to_string(), false, 1usize),
        None => {
            let mut input = Vec::new();
            std::io::stdin().lock().take(MAX_STDIN + 1).read_to_end(&mut input).context("reading stdin")?;
            if input.len() as u64 > MAX_STDIN {
                bail!("stdin is over {MAX_STDIN} bytes: send it in several runs");
            }
            let text = String::from_utf8(input).context("stdin is not UTF-8")?;
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.is_empty() {
                bail!("nothing to send: give --action, or one JSON event (or NDJSON) on stdin");
            }
            for (i, l) in lines.iter().enumerate() {
                serde_json::from_str::<Map<String, Value>>(l)
                    .with_context(|| format!("stdin line {}: not a JSON object", i + 1))?;
            }
            (lines.join("\n") + "\n", lines.len() > 1, lines.len())
        }
    };
    let token = credential(&a)?;
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .user_agent(concat!("graven/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    let url = format!("{server}/v1/events");
    let content_type = if batch { "application/x-ndjson" } else { "application/json" };
    let mut resp = agent
        .post(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", content_type)
        .send(body.as_bytes())
        .map_err(|e| {
            anyhow::anyhow!("not logged: POST {}", graven_verify::explain_request_error(&url, &e))
        })?;
    let status = resp.status().as_u16();
    let text =
        resp.body_mut().with_config().limit(64 << 20).read_to_string().context("reading the answer")?;
    if status != 201 {
        let detail = serde_json::from_str::<graven_api::Problem>(&text)
            .map(|p| p.detail)
            .unwrap_or_else(|_| text.chars().take(300).collect());
        bail!("not logged: the server answered {status}: {}", escape::for_terminal(&detail));
    }
    let receipts: Vec<graven_api::Receipt> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("not logged, as far as can be told: the answer is not receipts")?;
    if receipts.len() != count {
        bail!("not logged, as far as can be told: {count} events sent, {} receipts back", receipts.len());
    }
    for (i, r) in receipts.iter().enumerate() {
        let checked = graven_client::verify_receipt(r, &vkey).with_context(|| {
            format!("the receipt of event {} does not check out, so it cannot be shown to be logged", i + 1)
        })?;
        println!("{}", serde_json::to_string(r)?);
        eprintln!(
            "graven: logged at index {} (tree size {}), receipt checked against {}",
            checked.index,
            crate::human::count(checked.tree_size),
            escape::message(&vkey.to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}
