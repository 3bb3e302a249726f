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
use crate::table::{self, Column, Table, col};

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
    /// Cut nothing: on a terminal, a table is otherwise fitted to its width.
    #[arg(long, conflicts_with = "json")]
    pub wide: bool,
}

impl ServerArgs {
    pub(crate) fn server(&self) -> anyhow::Result<Server> {
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

/// The event table: index, time, actor, action, resource, outcome; the three names shrink to
/// fit a terminal.
const EVENT_COLUMNS: [Column; 6] = [
    col("INDEX", false),
    col("LOGGED_AT", false),
    col("ACTOR", true),
    col("ACTION", true),
    col("RESOURCE", true),
    col("OUTCOME", false),
];

/// The widest a streamed row's cells get when nothing else bounds them (`tail`, in a pipe).
const STREAM_WIDTHS: [usize; 6] = [10, 20, MAX_FIELD, MAX_FIELD, MAX_FIELD, 10];

fn field<'a>(ev: &'a Value, path: &[&str]) -> &'a str {
    path.iter().try_fold(ev, |v, k| v.get(*k)).and_then(Value::as_str).unwrap_or("-")
}

/// `2026-11-26T17:48:20.123456Z` → `2026-11-26T17:48:20Z`: a table shows whole seconds
/// (`--json` keeps the server's time as it is).
fn short_time(t: &str) -> String {
    match (t.find('.'), t.ends_with('Z')) {
        (Some(dot), true) if dot == 19 => format!("{}Z", &t[..dot]),
        _ => t.to_owned(),
    }
}

/// The cells of `{"index":N,"event":{...}}` (or of a raw entry), not yet escaped.
fn cells(item: &Value) -> Vec<String> {
    let index = item.get("index").and_then(Value::as_u64).map_or("?".to_owned(), |i| i.to_string());
    let Some(ev) = item.get("event") else {
        let n = item.get("entry_base64").and_then(Value::as_str).map_or(0, str::len);
        return vec![
            index,
            "-".into(),
            format!("(raw entry, {n} bytes of base64)"),
            "-".into(),
            "-".into(),
            "-".into(),
        ];
    };
    vec![
        index,
        short_time(field(ev, &["logged_at"])),
        field(ev, &["actor", "id"]).to_owned(),
        field(ev, &["action"]).to_owned(),
        field(ev, &["resource", "id"]).to_owned(),
        field(ev, &["outcome"]).to_owned(),
    ]
}

/// The column widths of a streamed table: its cells are not known in advance, so each column
/// gets its stream width, fitted to the terminal as a table of such rows would be.
fn stream_widths(width: Option<usize>) -> Vec<usize> {
    let mut t = Table::new(&EVENT_COLUMNS);
    t.push(STREAM_WIDTHS.iter().map(|w| "x".repeat(*w)).collect());
    t.widths(width)
}

/// How streamed rows are laid out: column widths, and whether a longer cell is cut to its
/// column (on a terminal) or widens it for that row (in a pipe, or with `--wide`).
#[derive(Debug)]
struct Layout {
    widths: Vec<usize>,
    cut: bool,
}

impl Layout {
    fn for_output(wide: bool) -> Layout {
        match table::output_width(wide) {
            Some(w) => Layout { widths: stream_widths(Some(w)), cut: true },
            None => Layout { widths: STREAM_WIDTHS.to_vec(), cut: false },
        }
    }
}

/// One streamed table row (every field escaped).
fn stream_row(item: &Value, layout: &Layout) -> String {
    let cells: Vec<String> = cells(item).iter().map(|c| for_terminal(c).into_owned()).collect();
    if layout.cut {
        return table::line(&cells, &layout.widths);
    }
    let widths: Vec<usize> =
        cells.iter().zip(&layout.widths).map(|(c, &w)| w.max(c.chars().count())).collect();
    table::line(&cells, &widths)
}

/// One row cut as on a terminal: each name at most 40 characters.
#[cfg(test)]
fn row(item: &Value) -> String {
    stream_row(item, &Layout { widths: STREAM_WIDTHS.to_vec(), cut: true })
}

fn print_item(out: &mut impl Write, item: &Value, layout: Option<&Layout>) -> anyhow::Result<()> {
    match layout {
        None => writeln!(out, "{}", crate::escape::json_line(item))?,
        Some(l) => writeln!(out, "{}", stream_row(item, l))?,
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
    // A table is laid out once every row is in (and so never printed above an error).
    let mut table = Table::new(&EVENT_COLUMNS);
    while printed < args.limit {
        let page_size = (args.limit - printed).min(1000) as usize;
        let page = server.search(&args.filters, &args.order, page_size, cursor.as_deref())?;
        for item in page.events.iter().take((args.limit - printed) as usize) {
            let item = serde_json::to_value(item)?;
            if args.server.json {
                print_item(&mut out, &item, None)?;
            } else {
                table.push(cells(&item));
            }
            printed += 1;
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    if !args.server.json {
        out.write_all(table.render(table::output_width(args.server.wide)).as_bytes())?;
        if table.is_empty() {
            eprintln!("graven: no events match");
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
    let table_layout = Layout::for_output(args.server.wide);
    let layout = (!args.server.json).then_some(&table_layout);
    if let Some(l) = layout {
        let header: Vec<String> = EVENT_COLUMNS.iter().map(|c| c.header.to_owned()).collect();
        writeln!(out, "{}", table::line(&header, &l.widths))?;
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
                let ended = print_stream(reader, &mut next, until, &mut out, layout)?;
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
    layout: Option<&Layout>,
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
        print_item(out, &serde_json::to_value(&item)?, layout)?;
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
        let lost = print_stream(sse(&[3, 4, 5]).as_bytes(), &mut next, None, &mut out, None).unwrap();
        assert_eq!((lost.as_deref(), next), (Some("the server closed the stream"), 6));
        let lost = print_stream(sse(&[4, 5, 6, 7]).as_bytes(), &mut next, None, &mut out, None).unwrap();
        assert!(lost.is_some());
        assert_eq!(printed(&out), [3, 4, 5, 6, 7]);
        // Without -f it stops at the size it started with.
        let mut out = Vec::new();
        let mut next = 0;
        let done = print_stream(sse(&[0, 1, 2, 3]).as_bytes(), &mut next, Some(2), &mut out, None).unwrap();
        assert_eq!((done, printed(&out)), (None, vec![0, 1]));
    }

    #[test]
    fn a_gap_in_the_stream_is_an_error() {
        let mut out = Vec::new();
        let mut next = 3;
        let e = print_stream(sse(&[3, 5]).as_bytes(), &mut next, None, &mut out, None).unwrap_err();
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
