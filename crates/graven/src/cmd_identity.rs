//! `graven identity ...` and `graven key ...`: the registry's admin commands, talking to a
//! running server's `/v1/identities` with an admin API key.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::table::{Table, col};

#[derive(clap::Args, Debug)]
pub struct Client {
    /// The Graven server's base URL.
    #[arg(long, env = "GRAVEN_SERVER", default_value = crate::server_url::DEFAULT_SERVER, value_parser = crate::server_url::parse)]
    server: String,
    /// File holding an admin API key (else the GRAVEN_TOKEN environment variable).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// How a list is printed: a table fitted to the terminal, or the server's JSON.
#[derive(clap::Args, Debug)]
pub struct TableOutput {
    /// The server's answer as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Cut nothing: on a terminal, a table is otherwise fitted to its width.
    #[arg(long, conflicts_with = "json")]
    wide: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum IdentityCommand {
    /// Register a new identity (prints it as JSON).
    Create {
        /// e.g. svc:payments-worker or spiffe://example.org/ns/prod/sa/deployer
        id: String,
        /// service_account, api_key, bot, ci_job, workload, agent or integration.
        #[arg(long)]
        kind: String,
        /// The accountable human or team.
        #[arg(long)]
        owner: String,
        /// writer, auditor, admin or source.
        #[arg(long, default_value = "writer")]
        role: String,
        /// An action pattern it may log, e.g. 'deploy.*' (repeatable; none: any action).
        #[arg(long = "allow")]
        allow: Vec<String>,
        /// With --role source: a platform it may report from: kubernetes, openbao, cloudtrail,
        /// otlp or syslog (repeatable).
        #[arg(long = "source-type", value_name = "TYPE")]
        source_types: Vec<String>,
        /// With --role source: a pattern of the subject ids it vouches for, e.g.
        /// 'system:serviceaccount:*' (repeatable).
        #[arg(long = "subject", value_name = "PATTERN")]
        subjects: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// A label as key=value (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        #[command(flatten)]
        client: Client,
    },
    /// List every identity: a table, or the JSON with --json.
    List {
        #[command(flatten)]
        client: Client,
        #[command(flatten)]
        output: TableOutput,
    },
    /// Show one identity and its keys (JSON).
    Show {
        id: String,
        #[command(flatten)]
        client: Client,
    },
    /// Stop an identity's keys from working until it is enabled again.
    Disable {
        id: String,
        /// Why, for the audit record.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Let a disabled identity's keys work again.
    Enable {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Revoke an identity and all its keys, for good.
    Revoke {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        client: Client,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// Make a new API key for an identity; prints only the key, once.
    Create {
        identity: String,
        /// Lifetime, e.g. 90d, 12h, 30m, 45s.
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// List an identity's keys (ids and states, never the keys).
    List {
        identity: String,
        #[command(flatten)]
        client: Client,
        #[command(flatten)]
        output: TableOutput,
    },
    /// Make a new key; the identity's other keys keep working for the overlap, then stop.
    /// Prints only the new key.
    Rotate {
        identity: String,
        /// How long the old keys keep working, e.g. 1h, 0s.
        #[arg(long, default_value = "1h")]
        overlap: String,
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Revoke one key now.
    Revoke {
        identity: String,
        key_id: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Register an Ed25519 public key (for RFC 9421 request signatures and client-signed
    /// events); prints its key id.
    AddPublic {
        identity: String,
        /// The key: base64 of its 32 bytes, PEM, or a file holding either.
        #[arg(long)]
        public_key: String,
        #[command(flatten)]
        client: Client,
    },
    /// List an identity's Ed25519 public keys: a table, or the JSON with --json.
    ListPublic {
        identity: String,
        #[command(flatten)]
        client: Client,
        #[command(flatten)]
        output: TableOutput,
    },
    /// Revoke one Ed25519 public key now.
    RevokePublic {
        identity: String,
        key_id: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Make a new Ed25519 signing key (secret file, mode 0600); prints its public key.
    NewSigning {
        /// Where to write the secret key. Refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `90d`, `12h`, `30m`, `45s` or plain seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num.parse().with_context(|| format!("{s:?} is not a duration like 90d, 12h, 30m or 45s"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("{s:?}: the unit must be s, m, h or d"),
    };
    n.checked_mul(mult).with_context(|| format!("{s:?} is too long"))
}

/// One path segment, percent-encoded.
fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let token = crate::input::token(self.token_file.as_deref())?.ok_or_else(|| {
            anyhow::anyhow!("no credential: give --token-file <file> or set GRAVEN_TOKEN to an admin API key")
        })?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let auth = format!("Bearer {token}");
        let resp = match method {
            "GET" => agent.get(&url).header("Authorization", &auth).call(),
            _ => agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        };
        let mut resp =
            resp.map_err(|e| anyhow::anyhow!("{method} {}", graven_verify::explain_request_error(&url, &e)))?;
        let status = resp.status().as_u16();
        let text =
            resp.body_mut().with_config().limit(64 << 20).read_to_string().context("reading the answer")?;
        if !(200..300).contains(&status) {
            let detail = match serde_json::from_str::<graven_api::Problem>(&text) {
                Ok(p) => p.detail,
                Err(_) => serde_json::from_str(&text).unwrap_or(Value::String(text)).to_string(),
            };
            bail!("the server answered {status}: {}", crate::escape::for_terminal(&detail));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

fn print(v: &Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

/// A list as a table (or, with `--json`, as the server sent it).
fn list(v: &Value, output: &TableOutput, table: fn(&Value) -> Table) -> anyhow::Result<ExitCode> {
    if output.json {
        return print(v);
    }
    print!("{}", table(v).render(crate::table::output_width(output.wide)));
    Ok(ExitCode::SUCCESS)
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// A time as a table shows it: whole seconds.
fn when(v: &Value, key: &str) -> String {
    let t = text(v, key);
    match t.find('.') {
        Some(dot) if dot == 19 && t.ends_with('Z') => format!("{}Z", &t[..dot]),
        _ => t,
    }
}

fn identities_table(v: &Value) -> Table {
    let mut t = Table::new(&[
        col("ID", true),
        col("KIND", true),
        col("ROLE", false),
        col("STATUS", false),
        col("OWNER", true),
        // Active keys / all keys.
        col("KEYS", false),
        col("LAST_SEEN", false),
    ]);
    for i in v["identities"].as_array().into_iter().flatten() {
        let keys = i["keys"].as_array().map_or(0, Vec::len);
        let active = i["keys"].as_array().map_or(0, |k| k.iter().filter(|k| k["state"] == "active").count());
        t.push(vec![
            text(i, "id"),
            text(i, "kind"),
            text(i, "role"),
            text(i, "status"),
            text(i, "owner"),
            format!("{active}/{keys}"),
            when(i, "last_seen_at"),
        ]);
    }
    t
}

fn keys_table(v: &Value) -> Table {
    let mut t = Table::new(&[
        col("KEY_ID", false),
        col("STATE", false),
        col("CREATED", false),
        col("EXPIRES", false),
        col("REVOKED", false),
    ]);
    for k in v["keys"].as_array().into_iter().flatten() {
        t.push(vec![
            text(k, "key_id"),
            text(k, "state"),
            when(k, "created_at"),
            when(k, "expires_at"),
            when(k, "revoked_at"),
        ]);
    }
    t
}

fn public_keys_table(v: &Value) -> Table {
    let mut t = Table::new(&[
        col("KEY_ID", false),
        col("STATE", false),
        col("PUBLIC_KEY", true),
        col("ADDED", false),
    ]);
    let items = v.get("public_keys").or_else(|| v.get("keys"));
    for k in items.and_then(Value::as_array).into_iter().flatten() {
        let state = if k.get("revoked_ms").is_some_and(|r| !r.is_null())
            || k.get("revoked_at").is_some_and(|r| !r.is_null())
        {
            "revoked".to_owned()
        } else {
            k.get("state").and_then(Value::as_str).unwrap_or("active").to_owned()
        };
        let added = if k.get("created_at").is_some() { when(k, "created_at") } else { text(k, "added_ms") };
        t.push(vec![text(k, "key_id"), state, text(k, "public_key"), added]);
    }
    t
}

fn reason_body(reason: Option<String>) -> Option<Value> {
    Some(reason.map_or_else(|| json!({}), |r| json!({"reason": r})))
}

pub fn identity(cmd: IdentityCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        IdentityCommand::Create {
            id,
            kind,
            owner,
            role,
            allow,
            source_types,
            subjects,
            description,
            labels,
            client,
        } => {
            let mut map = serde_json::Map::new();
            for l in labels {
                let (k, v) = l.split_once('=').with_context(|| format!("--label {l:?}: write key=value"))?;
                map.insert(k.to_owned(), json!(v));
            }
            let mut body = json!({
                "id": id, "kind": kind, "owner": owner, "role": role, "allowed_actions": allow,
                "description": description, "labels": map,
            });
            if !source_types.is_empty() || !subjects.is_empty() {
                body["source"] = json!({"types": source_types, "subjects": subjects});
            }
            print(&client.call("POST", "/v1/identities", Some(body))?)
        }
        IdentityCommand::List { client, output } => {
            list(&client.call("GET", "/v1/identities", None)?, &output, identities_table)
        }
        IdentityCommand::Show { id, client } => {
            print(&client.call("GET", &format!("/v1/identities/{}", seg(&id)), None)?)
        }
        IdentityCommand::Disable { id, reason, client } => print(&client.call(
            "POST",
            &format!("/v1/identities/{}/disable", seg(&id)),
            reason_body(reason),
        )?),
        IdentityCommand::Enable { id, reason, client } => print(&client.call(
            "POST",
            &format!("/v1/identities/{}/enable", seg(&id)),
            reason_body(reason),
        )?),
        IdentityCommand::Revoke { id, reason, client } => print(&client.call(
            "POST",
            &format!("/v1/identities/{}/revoke", seg(&id)),
            reason_body(reason),
        )?),
    }
}

fn print_key(k: &graven_api::NewKey) -> anyhow::Result<ExitCode> {
    println!("{}", crate::escape::for_terminal(&k.key));
    eprintln!("key id {}; this key is shown only once", crate::escape::for_terminal(&k.key_id));
    Ok(ExitCode::SUCCESS)
}

/// The answer to a key's creation or rotation.
fn new_key(v: Value) -> anyhow::Result<graven_api::NewKey> {
    serde_json::from_value(v).context("the server's answer is not a new key")
}

pub fn key(cmd: KeyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCommand::Create { identity, expires_in, client } => {
            let mut body = json!({});
            if let Some(e) = expires_in {
                body["ttl_seconds"] = json!(parse_duration(&e)?);
            }
            print_key(&new_key(client.call(
                "POST",
                &format!("/v1/identities/{}/keys", seg(&identity)),
                Some(body),
            )?)?)
        }
        KeyCommand::List { identity, client, output } => list(
            &client.call("GET", &format!("/v1/identities/{}/keys", seg(&identity)), None)?,
            &output,
            keys_table,
        ),
        KeyCommand::Rotate { identity, overlap, expires_in, client } => {
            let mut body = json!({"overlap_seconds": parse_duration(&overlap)?});
            if let Some(e) = expires_in {
                body["ttl_seconds"] = json!(parse_duration(&e)?);
            }
            let k = new_key(client.call(
                "POST",
                &format!("/v1/identities/{}/keys/rotate", seg(&identity)),
                Some(body),
            )?)?;
            for r in k.retiring.iter().flatten() {
                eprintln!(
                    "old key \"{}\" works until \"{}\"",
                    crate::escape::for_terminal(&r.key_id),
                    crate::escape::for_terminal(&r.expires_at)
                );
            }
            print_key(&k)
        }
        KeyCommand::Revoke { identity, key_id, reason, client } => print(&client.call(
            "POST",
            &format!("/v1/identities/{}/keys/{}/revoke", seg(&identity), seg(&key_id)),
            reason_body(reason),
        )?),
        KeyCommand::AddPublic { identity, public_key, client } => {
            let path = std::path::Path::new(&public_key);
            let text = if path.is_file() {
                crate::input::read_small(path, crate::input::MAX_KEY_FILE)?
            } else {
                public_key
            };
            let v = client.call(
                "POST",
                &format!("/v1/identities/{}/public-keys", seg(&identity)),
                Some(json!({"public_key": text.trim()})),
            )?;
            let added: graven_api::PublicKeyView =
                serde_json::from_value(v).context("the server's answer is not a public key")?;
            println!("{}", crate::escape::for_terminal(&added.key_id));
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::ListPublic { identity, client, output } => list(
            &client.call("GET", &format!("/v1/identities/{}/public-keys", seg(&identity)), None)?,
            &output,
            public_keys_table,
        ),
        KeyCommand::RevokePublic { identity, key_id, reason, client } => print(&client.call(
            "POST",
            &format!("/v1/identities/{}/public-keys/{}/revoke", seg(&identity), seg(&key_id)),
            reason_body(reason),
        )?),
        KeyCommand::NewSigning { out } => crate::cmd_sign::new_signing_key(&out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1h").unwrap(), 3600);
        assert_eq!(parse_duration("90d").unwrap(), 90 * 86_400);
        assert_eq!(parse_duration("45").unwrap(), 45);
        assert_eq!(parse_duration("0s").unwrap(), 0);
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
