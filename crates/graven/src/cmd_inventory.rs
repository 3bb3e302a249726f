//! `graven inventory`: `GET /v1/inventory` (docs/inventory.md) as a table, as JSON lines
//! (`--json`, one identity per line), or as CSV (`--csv`, the server's CSV escaping, the
//! pages joined under one header).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::cmd_search::ServerArgs;
use crate::export_source::Server;
use crate::table::{self, Column, Table, col};

#[derive(clap::Args, Debug)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// CSV (a header and a line per identity; text made safe for spreadsheets).
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// Only identities with no event for at least this many days.
    #[arg(long, value_name = "N")]
    pub dormant_days: Option<u64>,
    /// Only identities with no event of their own and none made with their keys.
    #[arg(long)]
    pub never_used: bool,
    /// Only registered identities with an active API key at least this many days old.
    #[arg(long, value_name = "N")]
    pub key_older_than_days: Option<u64>,
    /// Only registered identities with this status.
    #[arg(long, value_parser = ["active", "disabled", "revoked"])]
    pub status: Option<String>,
    /// Only identities of this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only identities a source reported (true) or not (false).
    #[arg(long, value_parser = ["true", "false"])]
    pub reported: Option<String>,
    /// Only registered identities (true) or actors the registry does not know (false).
    #[arg(long, value_parser = ["true", "false"])]
    pub registered: Option<String>,
    /// Most identities to print.
    #[arg(long, default_value_t = 10_000)]
    pub limit: u64,
}

impl InventoryArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let mut put = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                q.push((k, v));
            }
        };
        put("dormant_days", self.dormant_days.map(|n| n.to_string()));
        put("never_used", self.never_used.then(|| "true".to_owned()));
        put("key_older_than_days", self.key_older_than_days.map(|n| n.to_string()));
        put("status", self.status.clone());
        put("kind", self.kind.clone());
        put("reported", self.reported.clone());
        put("registered", self.registered.clone());
        q
    }
}

const COLUMNS: [Column; 10] = [
    col("ID", true),
    col("KIND", true),
    col("SEEN_AS", true),
    col("OWNER", true),
    col("STATUS", false),
    col("LAST_SEEN", false),
    col("EVENTS", false),
    col("24H", false),
    col("30D", false),
    col("DENIED", false),
];

fn cells(i: &graven_api::InventoryItem) -> Vec<String> {
    let seen_as = match (i.registered, i.reported_by.is_empty()) {
        (true, true) => "registered".to_owned(),
        (true, false) => format!("registered, reported by {}", i.reported_by.join(" ")),
        (false, false) => format!("reported by {}", i.reported_by.join(" ")),
        (false, true) => "log".to_owned(),
    };
    let last = i
        .last_seen
        .as_ref()
        .and_then(|s| s.at.as_deref())
        .map_or("-".to_owned(), |t| format!("{}Z", t.get(..19).unwrap_or(t)));
    vec![
        i.id.clone(),
        i.kind.clone().unwrap_or_else(|| "-".into()),
        seen_as,
        i.owner.clone().unwrap_or_else(|| "-".into()),
        i.status.clone().unwrap_or_else(|| "-".into()),
        last,
        i.events.to_string(),
        i.events_24h.to_string(),
        i.events_30d.to_string(),
        i.denied.to_string(),
    ]
}

pub fn run(args: InventoryArgs) -> anyhow::Result<ExitCode> {
    let server: Server = args.server.server()?;
    let query = args.query();
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    while (items.len() as u64) < args.limit {
        let page_size = (args.limit - items.len() as u64).min(1000) as usize;
        let page = server.inventory(&query, page_size, cursor.as_deref())?;
        items.extend(page.identities);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    items.truncate(usize::try_from(args.limit).unwrap_or(usize::MAX));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.csv {
        out.write_all(graven_server::http::inventory::csv(&items).as_bytes())?;
    } else if args.server.json {
        for i in &items {
            let v = serde_json::to_value(i).context("encoding an identity")?;
            writeln!(out, "{}", crate::escape::json_line(&v))?;
        }
    } else {
        let mut t = Table::new(&COLUMNS);
        for i in &items {
            t.push(cells(i));
        }
        out.write_all(t.render(table::output_width(args.server.wide)).as_bytes())?;
        if t.is_empty() {
            eprintln!("graven: no identity matches");
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
