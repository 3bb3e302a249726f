//! The server's log on standard error: one line per `tracing` event, as text (the default) or
//! JSON (`log_format`). What is logged: every request (`http::request_log`) and every
//! error the server meets (storage, witnesses, trusted time, the registry, the lease).
//!
//! Every value is written in printable ASCII: any other character is escaped (`\n`, `\u{1b}`,
//! `\u{202e}`, and `\\` for a backslash), so nothing a request, a witness or a stored file put
//! in a field can move a terminal's cursor, forge a line or hide text. Secrets are kept out
//! where the events are made: no credential, header or key is ever a field.
//!
//! Graven's own events are kept from `INFO` up; other crates' (hyper, the AWS SDK) from `WARN`.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// `2026-05-01T12:00:00.123456789Z  INFO graven_server::http::request_log: request method=GET ...`
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`, then the fields.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(()),
        }
    }
}

/// Sends this process's `tracing` events to standard error in `format`. Once per process;
/// a second call is an error.
pub fn init(format: LogFormat) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt as _;
    let lines = Lines::new(format, |line| {
        // One write of the whole line, so lines from several threads never interleave.
        let _ = std::io::stderr().lock().write_all(line);
    });
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(lines))
        .map_err(|e| format!("setting up the log: {e}"))
}

/// Where each whole line goes.
type Sink = Box<dyn Fn(&[u8]) + Send + Sync>;

/// The `tracing` layer that writes each event as one line.
pub struct Lines {
    format: LogFormat,
    out: Sink,
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lines").field("format", &self.format).finish_non_exhaustive()
    }
}

impl Lines {
    /// Lines in `format`, each handed whole (with its newline) to `out`.
    pub fn new(format: LogFormat, out: impl Fn(&[u8]) + Send + Sync + 'static) -> Lines {
        Lines { format, out: Box::new(out) }
    }
}

/// Graven's events from `INFO`, everyone else's from `WARN`.
fn wanted(m: &Metadata<'_>) -> bool {
    let ours = m.target().starts_with("graven");
    *m.level() <= if ours { Level::INFO } else { Level::WARN }
}

impl<S: Subscriber> Layer<S> for Lines {
    fn register_callsite(&self, m: &'static Metadata<'static>) -> Interest {
        if wanted(m) { Interest::always() } else { Interest::never() }
    }

    fn enabled(&self, m: &Metadata<'_>, _: Context<'_, S>) -> bool {
        wanted(m)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::INFO)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let line = match self.format {
            LogFormat::Text => text(&now, event.metadata(), &fields),
            LogFormat::Json => json(&now, event.metadata(), &fields),
        };
        (self.out)(line.as_bytes());
    }
}

/// One event's fields, in the order they were given.
#[derive(Default)]
struct Fields {
    message: String,
    values: Vec<(&'static str, Val)>,
}

enum Val {
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%x` arrives here as its Display, `?x` as its Debug; both are text to escape.
        let s = format!("{value:?}");
        if field.name() == "message" {
            self.message = s;
        } else {
            self.values.push((field.name(), Val::Str(s)));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.values.push((field.name(), Val::Str(value.to_owned())));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.values.push((field.name(), Val::U64(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.values.push((field.name(), Val::I64(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.values.push((field.name(), Val::F64(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.values.push((field.name(), Val::Bool(value)));
    }
}

/// `s` in printable ASCII: other characters as `\n`, `\r`, `\t` or `\u{hex}`, and a backslash
/// doubled, so the escapes cannot be forged.
pub fn ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    out
}

/// A number as text; a float with at most three decimals.
fn number(v: &Val) -> Option<String> {
    match v {
        Val::U64(n) => Some(n.to_string()),
        Val::I64(n) => Some(n.to_string()),
        Val::F64(n) if n.is_finite() => Some(format!("{:.3}", n)),
        Val::F64(_) => None,
        Val::Bool(b) => Some(b.to_string()),
        Val::Str(_) => None,
    }
}

fn text(now: &str, m: &Metadata<'_>, f: &Fields) -> String {
    let mut line = format!("{now} {:>5} {}: {}", m.level().as_str(), m.target(), ascii(&f.message));
    for (name, v) in &f.values {
        let value = match (number(v), v) {
            (Some(n), _) => n,
            (None, Val::Str(s)) => {
                let s = ascii(s);
                // Quoted when it would otherwise read as more than one field.
                if s.is_empty() || s.contains([' ', '"', '=']) {
                    format!("\"{}\"", s.replace('"', "\\\""))
                } else {
                    s
                }
            }
            (None, _) => "NaN".into(),
        };
        let _ = write!(line, " {name}={value}");
    }
    line.push('\n');
    line
}

fn json(now: &str, m: &Metadata<'_>, f: &Fields) -> String {
    let string = |s: &str| serde_json::Value::String(ascii(s)).to_string();
    let mut line = format!(
        "{{\"timestamp\":{},\"level\":{},\"target\":{},\"message\":{}",
        string(now),
        string(m.level().as_str()),
        string(m.target()),
        string(&f.message)
    );
    for (name, v) in &f.values {
        let value = match v {
            Val::Str(s) => string(s),
            Val::F64(n) if n.is_finite() => {
                // Milliseconds to the microsecond are precise enough, and short.
                serde_json::Number::from_f64((n * 1000.0).round() / 1000.0)
                    .map_or_else(|| "null".into(), |n| n.to_string())
            }
            v => number(v).unwrap_or_else(|| "null".into()),
        };
        let _ = write!(line, ",{}:{value}", string(name));
    }
    line.push_str("}\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt as _;

    /// The lines `f` logs in `format`.
    fn capture(format: LogFormat, f: impl FnOnce()) -> Vec<String> {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let lines =
            Lines::new(format, move |l| sink.lock().unwrap().push(String::from_utf8_lossy(l).into_owned()));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(lines), f);
        got.lock().unwrap().clone()
    }

    const HOSTILE: &str = "evil\u{1b}[2J\nfake=line \u{202e}txt\\u{1b} \"q\"";

    #[test]
    fn json_lines_carry_every_field_escaped() {
        let lines = capture(LogFormat::Json, || {
            tracing::info!(method = "GET", status = 200u16, latency_ms = 1.23456, who = %HOSTILE, "request");
            tracing::debug!("not kept");
            tracing::warn!(target: "hyper", "another crate's warning");
            tracing::info!(target: "hyper", "another crate's chatter");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!((v["message"].as_str(), v["level"].as_str()), (Some("request"), Some("INFO")));
        assert_eq!((v["method"].as_str(), v["status"].as_u64()), (Some("GET"), Some(200)));
        assert_eq!(v["latency_ms"].as_f64(), Some(1.235));
        assert_eq!(v["who"].as_str(), Some("evil\\u{1b}[2J\\nfake=line \\u{202e}txt\\\\u{1b} \"q\""));
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        for l in &lines {
            assert!(l.ends_with('\n') && l.matches('\n').count() == 1);
            assert!(l.chars().all(|c| c == '\n' || (' '..='~').contains(&c)), "{l:?}");
        }
    }

    #[test]
    fn text_lines_are_one_line_of_printable_ascii() {
        let lines = capture(LogFormat::Text, || {
            tracing::error!(route = "/v1/events/{index}", status = 500u16, error = %HOSTILE, "request");
        });
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert!(
            l.contains(" ERROR graven_server::logs::tests: request route=/v1/events/{index} status=500 "),
            "{l}"
        );
        assert!(
            l.ends_with(" error=\"evil\\u{1b}[2J\\nfake=line \\u{202e}txt\\\\u{1b} \\\"q\\\"\"\n"),
            "{l}"
        );
        assert!(l.chars().all(|c| c == '\n' || (' '..='~').contains(&c)), "{l:?}");
    }

    #[test]
    fn the_format_is_text_or_json() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert!("JSON".parse::<LogFormat>().is_err() && "".parse::<LogFormat>().is_err());
    }
}
