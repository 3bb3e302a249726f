//! `graven search` and `graven tail`: reading a server's events as a person (a table whose
//! every field is escaped) or as a program (`--json`, one object per line as the server sent
//! it, with the characters a terminal would act on written as `\uXXXX` escapes).

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::escape::for_terminal;
use crate::export_source::{Filters, Server, StreamError};

#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// The Graven server's base URL.
    #[arg(long, env = "GRAVEN_SERVER", default_value = crate::server_url::DEFAULT_SERVER, value_parser = crate::server_url::parse)]
    pub server: String,
    /// File holding the bearer token (else the GRAVEN_TOKEN environment variable).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl ServerArgs {
    fn server(&self) -> anyhow::Result<Server> {
        let token = match &self.token_file {
            Some(p) => Some(crate::input::read_small(p, 4096)?.trim().to_owned()),
            None => std::env::var("GRAVEN_TOKEN").ok().filter(|t| !t.is_empty()),
        };
        Ok(Server::new(&self.server, token))
    }
}

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub filters: Filters,
    /// Most events to print.
    #[arg(long, default_value_t = 100)]
    pub limit: u64,
    /// newest (default) or oldest first.
    #[arg(long, default_value = "newest", value_parser = ["newest", "oldest"])]
    pub order: String,
}

#[derive(clap::Args, Debug)]
pub struct TailArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Keep printing new events as they are committed.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// First index to print (default: the last 10 events).
    #[arg(long)]
    pub from: Option<u64>,
}

const MAX_FIELD: usize = 40;

fn field<'a>(ev: &'a Value, path: &[&str]) -> &'a str {
    path.iter().try_fold(ev, |v, k| v.get(*k)).and_then(Value::as_str).unwrap_or("-")
}

/// Escapes, then shortens to `width` characters with a visible ellipsis.
fn cell(s: &str, width: usize) -> String {
    let e = for_terminal(s);
    if e.chars().count() <= width {
        return e.into_owned();
    }
    let mut out: String = e.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub const HEADER: &str = "INDEX      LOGGED_AT                    ACTOR                                    ACTION                                   RESOURCE                                 OUTCOME";

/// One table row for `{"index":N,"event":{...}}` (or `entry_base64` for a raw entry).
pub fn row(item: &Value) -> String {
    let index = item.get("index").and_then(Value::as_u64).map_or("?".to_owned(), |i| i.to_string());
    let Some(ev) = item.get("event") else {
        return format!(
            "{index:<10} (raw entry, {} bytes of base64)",
            item.get("entry_base64").and_then(Value::as_str).map_or(0, str::len)
        );
    };
    format!(
        "{index:<10} {:<28} {:<w$} {:<w$} {:<w$} {}",
        cell(field(ev, &["logged_at"]), 28),
        cell(field(ev, &["actor", "id"]), MAX_FIELD),
        cell(field(ev, &["action"]), MAX_FIELD),
        cell(field(ev, &["resource", "id"]), MAX_FIELD),
        cell(field(ev, &["outcome"]), 10),
        w = MAX_FIELD,
    )
}

fn print_item(out: &mut impl Write, item: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", crate::escape::json_line(item))?;
    } else {
        writeln!(out, "{}", row(item))?;
    }
    Ok(())
}

pub fn search(args: SearchArgs) -> anyhow::Result<ExitCode> {
    args.filters.query()?;
    let server = args.server.server()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let mut cursor: Option<String> = None;
    while printed < args.limit {
        let page_size = (args.limit - printed).min(1000) as usize;
        let page = server.search(&args.filters, &args.order, page_size, cursor.as_deref())?;
        // The header once the server has answered: an error is not printed under a table.
        if cursor.is_none() && !args.server.json {
            writeln!(out, "{HEADER}")?;
        }
        for item in page.events.iter().take((args.limit - printed) as usize) {
            print_item(&mut out, &serde_json::to_value(item)?, args.server.json)?;
            printed += 1;
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn tail(args: TailArgs) -> anyhow::Result<ExitCode> {
    let server = args.server.server()?;
    let size = server.log_info()?.tree_size;
    let from = args.from.unwrap_or(size.saturating_sub(10));
    if !args.follow && from >= size {
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !args.server.json {
        writeln!(out, "{HEADER}")?;
    }
    // Without -f, printing stops at the size the log had when we started.
    let until = (!args.follow).then_some(size);
    let mut next = from;
    let mut backoff = Backoff::default();
    loop {
        // After a lost stream, resume right after the last index printed (`Last-Event-ID`).
        let resume = (next > from).then(|| next - 1);
        let lost = match server.stream(next, resume) {
            Ok(reader) => {
                let before = next;
                let ended = print_stream(reader, &mut next, until, &mut out, args.server.json)?;
                if next > before {
                    backoff = Backoff::default();
                }
                match ended {
                    None => return Ok(ExitCode::SUCCESS),
                    Some(why) => why,
                }
            }
            Err(StreamError::Refused(why)) => bail!("{}", for_terminal(&why)),
            Err(StreamError::Unavailable(why)) => why,
        };
        if !args.follow {
            bail!("{}", for_terminal(&lost));
        }
        // -f follows through restarts and outages, as `tail -F` does: a server stopped for an
        // upgrade, a crash, a network cut.
        let wait = backoff.next_wait();
        eprintln!(
            "graven: {}; reconnecting from index {next} in {:.1}s",
            for_terminal(&lost),
            wait.as_secs_f64()
        );
        std::thread::sleep(wait);
    }
}

/// Waits between reconnections: 250 ms, doubling up to 8 s; back to the start once a stream
/// delivers an event again.
#[derive(Debug)]
struct Backoff(std::time::Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(std::time::Duration::from_millis(250))
    }
}

impl Backoff {
    fn next_wait(&mut self) -> std::time::Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(std::time::Duration::from_secs(8));
        wait
    }
}

/// Prints the entries a stream delivers, each index once and in order (`next` is the next
/// index to print): one already printed is skipped (a server that resumes too early), one
/// past `next` is an error (a server that skipped entries). Returns `None` once every entry
/// below `until` is printed, or why the stream was lost (to reconnect).
fn print_stream(
    mut reader: impl std::io::BufRead,
    next: &mut u64,
    until: Option<u64>,
    out: &mut impl Write,
    json: bool,
) -> anyhow::Result<Option<String>> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        // Server-sent events: `data:` lines accumulate until a blank line ends the event.
        let n = match (&mut reader).take(1 << 20).read_line(&mut line) {
            Ok(n) => n,
            Err(e) => return Ok(Some(format!("reading the stream: {e}"))),
        };
        if n == 0 {
            return Ok(Some("the server closed the stream".into()));
        }
        let l = line.trim_end_matches(['\n', '\r']);
        if let Some(d) = l.strip_prefix("data:") {
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
            continue;
        }
        if !l.is_empty() || data.is_empty() {
            continue;
        }
        let item: graven_api::StreamItem<Value> =
            serde_json::from_str(&data).context("the stream sent an event that is not an entry")?;
        data.clear();
        match item.index.cmp(next) {
            std::cmp::Ordering::Less => continue,
            std::cmp::Ordering::Greater => {
                bail!("the stream skipped entries {} to {}; not printing past the gap", *next, item.index - 1)
            }
            std::cmp::Ordering::Equal => {}
        }
        print_item(out, &serde_json::to_value(&item)?, json)?;
        out.flush()?;
        *next = item.index + 1;
        if until.is_some_and(|size| *next >= size) {
            return Ok(None);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rows_escape_every_field_and_stay_one_line() {
        let item = serde_json::json!({"index": 7, "event": {
            "logged_at": "2026-11-26T17:48:20.123456Z",
            "actor": {"id": "svc:\u{1b}[2Jevil\nforged row"},
            "action": "deploy\u{202e}etaerc",
            "resource": {"id": "a\u{2066}b\u{0}c"},
            "outcome": "success\r",
        }});
        let r = row(&item);
        assert!(!r.chars().any(crate::escape::is_dangerous), "{r:?}");
        assert!(r.contains("svc:\\x1b[2Jevil\\nforged row"), "{r}");
        assert!(r.contains("deploy\\u{202e}etaerc"), "{r}");
        assert!(r.contains("a\\u{2066}b\\x00c"), "{r}");
        assert!(r.starts_with("7 "));
    }

    fn sse(indices: &[u64]) -> String {
        indices
            .iter()
            .map(|i| {
                format!("id: {i}\nevent: event\ndata: {{\"index\":{i},\"event\":{{\"action\":\"a\"}}}}\n\n")
            })
            .collect()
    }

    fn printed(out: &[u8]) -> Vec<u64> {
        std::str::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["index"].as_u64().unwrap())
            .collect()
    }

    /// Each index is printed once, in order: a resumed stream that starts too early repeats
    /// nothing; the end of the stream is a reason to reconnect, not an error.
    #[test]
    fn a_resumed_stream_prints_each_index_once() {
        let mut out = Vec::new();
        let mut next = 3;
        let lost = print_stream(sse(&[3, 4, 5]).as_bytes(), &mut next, None, &mut out, true).unwrap();
        assert_eq!((lost.as_deref(), next), (Some("the server closed the stream"), 6));
        let lost = print_stream(sse(&[4, 5, 6, 7]).as_bytes(), &mut next, None, &mut out, true).unwrap();
        assert!(lost.is_some());
        assert_eq!(printed(&out), [3, 4, 5, 6, 7]);
        // Without -f it stops at the size it started with.
        let mut out = Vec::new();
        let mut next = 0;
        let done = print_stream(sse(&[0, 1, 2, 3]).as_bytes(), &mut next, Some(2), &mut out, true).unwrap();
        assert_eq!((done, printed(&out)), (None, vec![0, 1]));
    }

    #[test]
    fn a_gap_in_the_stream_is_an_error() {
        let mut out = Vec::new();
        let mut next = 3;
        let e = print_stream(sse(&[3, 5]).as_bytes(), &mut next, None, &mut out, true).unwrap_err();
        assert!(e.to_string().contains("skipped entries 4 to 4"), "{e}");
        assert_eq!(printed(&out), [3]);
    }

    #[test]
    fn reconnections_back_off_to_a_bound() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
    }

    #[test]
    fn long_fields_are_cut_visibly() {
        let long = "x".repeat(100);
        let item = serde_json::json!({"index": 1, "event": {"action": long}});
        let r = row(&item);
        assert!(r.contains(&format!("{}…", "x".repeat(MAX_FIELD - 1))), "{r}");
        assert!(!r.contains(&"x".repeat(MAX_FIELD + 1)));
        let raw = row(&serde_json::json!({"index": 2, "entry_base64": "AAAA"}));
        assert!(raw.contains("raw entry"));
    }
}
