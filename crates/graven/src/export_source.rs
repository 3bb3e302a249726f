//! Where exported events come from, and how each is verified on the way.
//!
//! * A log directory is scanned linearly, bundle by bundle, with the same streaming check as
//!   `graven verify` (every entry against its tile, the whole tree against the checkpoint).
//! * A server is asked which indices match (`GET /v1/events`, the search index), then each
//!   event's bytes come from the tlog-tiles read path and its inclusion proof is rebuilt from
//!   the tiles and checked against the checkpoint before the event is used
//!   (`graven_verify::remote::LogTiles`). The search answer only selects; it is never trusted
//!   for content.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use graven_core::checkpoint::VerifiedCheckpoint;
use graven_core::note::VerifierKey;
use graven_core::{Hash, TreeSize};
use graven_verify::remote::LogTiles;
use graven_verify::{DirFetch, Fetch, HttpFetch, VisitError, scan_log};

/// The search filters, with the server's semantics (see graven-index): exact, byte-equal
/// `actor.id`, `action`, `resource.id`, `outcome`; `since` inclusive and `until` exclusive on
/// `logged_at`, both RFC 3339.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Filters {
    /// Only events whose actor.id is exactly this.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only events whose action is exactly this.
    #[arg(long)]
    pub action: Option<String>,
    /// Only events whose resource.id is exactly this.
    #[arg(long)]
    pub resource: Option<String>,
    /// Only events with this outcome (success, failure, denied).
    #[arg(long)]
    pub outcome: Option<String>,
    /// Only events logged at or after this time: RFC 3339 (2026-11-26T17:48:20Z), a date
    /// (2026-11-26, midnight UTC), or an age (90s, 30m, 1h, 7d, 2w: that long ago).
    #[arg(long, value_parser = time_bound)]
    pub since: Option<String>,
    /// Only events logged before this time (same forms as --since).
    #[arg(long, value_parser = time_bound)]
    pub until: Option<String>,
}

/// `--since`/`--until` as the RFC 3339 time the server takes.
fn time_bound(s: &str) -> Result<String, String> {
    time_bound_at(s, time::OffsetDateTime::now_utc())
}

/// [`time_bound`] with the present given: an age counts back from `now`.
fn time_bound_at(s: &str, now: time::OffsetDateTime) -> Result<String, String> {
    use time::format_description::well_known::Rfc3339;
    let bad = || {
        format!(
            "{s:?} is not a time: give RFC 3339 (2026-11-26T17:48:20Z), a date (2026-11-26) or an age (30m, 1h, 7d)"
        )
    };
    if s.len() > 64 {
        return Err(bad());
    }
    if time::OffsetDateTime::parse(s, &Rfc3339).is_ok() {
        return Ok(s.to_owned());
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &date_format) {
        return d.midnight().assume_utc().format(&Rfc3339).map_err(|_| bad());
    }
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    let ago = n.checked_mul(seconds).map(time::Duration::seconds).ok_or_else(bad)?;
    let at = now.checked_sub(ago).ok_or_else(bad)?;
    at.format(&Rfc3339).map_err(|_| bad())
}

impl Filters {
    /// The query the search index would run, for matching entries locally.
    pub fn query(&self) -> anyhow::Result<graven_index::Query> {
        let bound = |s: &Option<String>, what: &str| -> anyhow::Result<Option<String>> {
            s.as_deref()
                .map(|t| {
                    graven_server::http::parse_time_bound(t).with_context(|| {
                        format!("--{what} {t:?} is not an RFC 3339 time such as 2026-11-26T17:48:20Z")
                    })
                })
                .transpose()
        };
        Ok(graven_index::Query {
            actor: self.actor.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            outcome: self.outcome.clone(),
            since: bound(&self.since, "since")?,
            until: bound(&self.until, "until")?,
            ..Default::default()
        })
    }

    /// `name=value` pairs for `GET /v1/events`.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("actor", &self.actor),
            ("action", &self.action),
            ("resource", &self.resource),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

/// A Graven server's HTTP API.
#[derive(Debug)]
pub struct Server {
    pub base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// Largest JSON answer read from the API.
const MAX_API_BODY: u64 = 64 << 20;

impl Server {
    pub fn new(base: &str, token: Option<String>) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(120)))
            .http_status_as_error(false)
            .user_agent(concat!("graven/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Server { base, token, agent }
    }

    pub fn fetcher(&self) -> HttpFetch {
        let f = HttpFetch::new(&self.base);
        match &self.token {
            Some(t) => f.with_bearer(t),
            None => f,
        }
    }

    fn request(&self, path: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let req = self.agent.get(format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.header("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    fn read(
        &self,
        req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
        what: &str,
        limit: u64,
    ) -> anyhow::Result<Vec<u8>> {
        let mut resp = req.call().map_err(|e| {
            anyhow::anyhow!("{what}: {}", graven_verify::explain_request_error(&self.base, &e))
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .with_context(|| format!("{what}: reading the answer"))?;
        if status != 200 {
            let detail = serde_json::from_slice::<graven_api::Problem>(&body)
                .map(|p| p.detail)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(300).collect());
            bail!("{what}: the server answered {status}: {}", crate::escape::for_terminal(&detail));
        }
        Ok(body)
    }

    /// `GET /v1/log`: the log's description.
    pub fn log_info(&self) -> anyhow::Result<graven_api::LogInfo> {
        let body = self.read(self.request("/v1/log"), "GET /v1/log", MAX_API_BODY)?;
        serde_json::from_slice(&body).context("GET /v1/log: the answer is not the log's description")
    }

    /// The log's verifier key as the server states it (`GET /v1/log`).
    pub fn stated_key(&self) -> anyhow::Result<VerifierKey> {
        let info = self.log_info()?;
        VerifierKey::parse(&info.verifier_key).context("GET /v1/log: verifier_key is malformed")
    }

    /// `GET /v1/stream?from=N` (server-sent events) as a line reader, with no overall
    /// deadline (a tail can run for days); a silent connection still fails after 60 s, four
    /// missed keep-alives. `resume` is the last index already received, sent as
    /// `Last-Event-ID` (the server then starts right after it, as it does for EventSource).
    pub fn stream(
        &self,
        from: u64,
        resume: Option<u64>,
    ) -> Result<impl std::io::BufRead + use<>, StreamError> {
        let agent = ureq::Agent::config_builder()
            .timeout_global(None)
            .timeout_recv_body(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .user_agent(concat!("graven/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let mut req = agent.get(format!("{}/v1/stream", self.base)).query("from", from.to_string());
        if let Some(last) = resume {
            req = req.header("Last-Event-ID", &last.to_string());
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut resp = req.call().map_err(|e| {
            StreamError::Unavailable(format!(
                "GET /v1/stream: {}",
                graven_verify::explain_request_error(&self.base, &e)
            ))
        })?;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = resp.body_mut().with_config().limit(64 << 10).read_to_vec().unwrap_or_default();
            let detail = serde_json::from_slice::<graven_api::Problem>(&body)
                .map(|p| p.detail)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(300).collect());
            let why = format!("GET /v1/stream: the server answered {status}: {detail}");
            // A server that is starting, stopping or overloaded (or a proxy in front of one
            // that is away) may answer the next try; a refusal will not change.
            return Err(if status >= 500 || status == 429 {
                StreamError::Unavailable(why)
            } else {
                StreamError::Refused(why)
            });
        }
        Ok(std::io::BufReader::new(resp.into_body().into_reader()))
    }

    /// One page of search results.
    pub fn search(
        &self,
        filters: &Filters,
        order: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> anyhow::Result<graven_api::SearchPage<serde_json::Value>> {
        let mut req = self.request("/v1/events").query("order", order).query("limit", limit.to_string());
        for (k, v) in filters.pairs() {
            req = req.query(k, v);
        }
        if let Some(c) = cursor {
            req = req.query("cursor", c);
        }
        let body = self.read(req, "GET /v1/events", MAX_API_BODY)?;
        serde_json::from_slice(&body).context("GET /v1/events: the answer is not a page of events")
    }

    /// One page of the inventory (`GET /v1/inventory`, JSON).
    pub fn inventory(
        &self,
        query: &[(&str, String)],
        limit: usize,
        cursor: Option<&str>,
    ) -> anyhow::Result<graven_api::InventoryPage> {
        let mut req = self.request("/v1/inventory").query("limit", limit.to_string());
        for (k, v) in query {
            req = req.query(*k, v);
        }
        if let Some(c) = cursor {
            req = req.query("cursor", c);
        }
        let body = self.read(req, "GET /v1/inventory", MAX_API_BODY)?;
        serde_json::from_slice(&body).context("GET /v1/inventory: the answer is not a page of the inventory")
    }
}

/// Why `GET /v1/stream` gave no stream. The text may quote the server: escape it before
/// printing.
#[derive(Debug)]
pub enum StreamError {
    /// The server could not be reached, or answered that it cannot serve now (5xx, 429):
    /// worth another try.
    Unavailable(String),
    /// The server refused the request (a credential, a parameter): another try would not help.
    Refused(String),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Unavailable(why) | StreamError::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StreamError {}

#[derive(Debug)]
pub enum Source {
    Dir(PathBuf),
    Server(Server),
}

/// How long an export over a server waits for the search index to cover its checkpoint.
const INDEX_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The trusted starting point of an export: a checkpoint verified with a key.
#[derive(Debug)]
pub struct Opened {
    pub key: VerifierKey,
    /// True when the key came from the server itself rather than from `--vkey`.
    pub key_from_server: bool,
    pub checkpoint: VerifiedCheckpoint,
}

impl Opened {
    pub fn origin(&self) -> &str {
        self.checkpoint.checkpoint().origin()
    }
}

pub fn open(source: &Source, vkey: Option<VerifierKey>) -> anyhow::Result<Opened> {
    match source {
        Source::Dir(dir) => {
            let key = vkey.context("--dir needs --vkey: the log's verifier key (or a file holding it)")?;
            let mut f = DirFetch::new(dir);
            let checkpoint = graven_verify::fetch_checkpoint(&mut f, &key, None)
                .with_context(|| format!("{} does not verify", dir.display()))?;
            Ok(Opened { key, key_from_server: false, checkpoint })
        }
        Source::Server(s) => {
            let (key, key_from_server) = match vkey {
                Some(k) => (k, false),
                None => (s.stated_key()?, true),
            };
            let checkpoint = graven_verify::fetch_checkpoint(&mut s.fetcher(), &key, None)
                .with_context(|| format!("the checkpoint of {} does not verify with {key}", s.base))?;
            Ok(Opened { key, key_from_server, checkpoint })
        }
    }
}

/// What the caller is handed for each selected event.
#[derive(Debug)]
pub struct Selected<'a> {
    pub index: u64,
    pub leaf: &'a [u8],
    /// The inclusion proof against the opened checkpoint, when asked for.
    pub proof: Option<&'a [Hash]>,
}

/// Calls `visit` for every event that matches `filters`, in log order, each verified as
/// described in the module docs. Returns how many were visited. With a directory, the whole
/// log is only known to be intact when this returns `Ok`.
pub fn select(
    source: &Source,
    opened: &Opened,
    filters: &Filters,
    want_proofs: bool,
    mut visit: impl FnMut(&Selected<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let size = opened.checkpoint.size();
    let mut count = 0u64;
    // On a terminal: how far through the log the export is (entries scanned, or the index
    // reached through the search's matches).
    let bar = crate::human::progress("exporting", "entries", size.0);
    let result = select_into(source, opened, filters, want_proofs, &mut visit, &mut count, bar.as_ref());
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result.map(|()| count)
}

fn select_into(
    source: &Source,
    opened: &Opened,
    filters: &Filters,
    want_proofs: bool,
    visit: &mut dyn FnMut(&Selected<'_>) -> anyhow::Result<()>,
    count: &mut u64,
    bar: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<()> {
    let size = opened.checkpoint.size();
    match source {
        Source::Dir(dir) => {
            let query = filters.query()?;
            let mut f = DirFetch::new(dir);
            let mut tiles = LogTiles::new(opened.checkpoint.clone(), DirFetch::new(dir), DirFetch::new(dir));
            let mut failure: Option<anyhow::Error> = None;
            let result = scan_log(
                &mut f,
                &opened.key,
                None,
                |done, _| {
                    if let Some(b) = bar {
                        b.set_position(done);
                    }
                },
                |cp, index, entry| {
                    if cp.note_bytes() != opened.checkpoint.note_bytes() {
                        return Err(VisitError(
                            "the log's checkpoint changed during the export (is a writer running?); run it again"
                                .into(),
                        ));
                    }
                    if !graven_index::entry_matches(&query, entry) {
                        return Ok(());
                    }
                    let proof = if want_proofs {
                        match tiles.inclusion(index, graven_core::leaf_hash(entry)) {
                            Ok((_, p)) => Some(p),
                            Err(e) => return Err(VisitError(format!("building its inclusion proof: {e}"))),
                        }
                    } else {
                        None
                    };
                    *count += 1;
                    visit(&Selected { index, leaf: entry, proof: proof.as_deref() }).map_err(|e| {
                        let msg = format!("{e:#}");
                        failure = Some(e);
                        VisitError(msg)
                    })
                },
            );
            if let Some(e) = failure {
                return Err(e);
            }
            result.with_context(|| format!("{} failed verification", dir.display()))?;
        }
        Source::Server(s) => {
            let mut tiles = LogTiles::new(opened.checkpoint.clone(), s.fetcher(), s.fetcher());
            let mut cursor: Option<String> = None;
            let mut last: Option<u64> = None;
            // The search index trails the log by a moment: a selection made before it covers
            // the checkpoint this export proves against would silently miss its newest events.
            let deadline = std::time::Instant::now() + INDEX_WAIT;
            loop {
                let page = s.search(filters, "oldest", 1, None)?;
                if page.indexed_size >= size.0 {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    bail!(
                        "the server's search index covers {} of the {} entries of the checkpoint after {}s; try again once it has caught up (GET /metrics: graven_index_lag_events)",
                        page.indexed_size,
                        size.0,
                        INDEX_WAIT.as_secs()
                    );
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            loop {
                let page = s.search(filters, "oldest", 1000, cursor.as_deref())?;
                for e in &page.events {
                    let index = e.index;
                    if index >= size.0 {
                        // Appended after the checkpoint this export proves against.
                        continue;
                    }
                    if last.is_some_and(|l| index <= l) {
                        bail!("GET /v1/events returned index {index} out of order");
                    }
                    last = Some(index);
                    // The bytes from the tiles, checked against the level-0 tile and proven
                    // included in the signed checkpoint.
                    let v = tiles.entry(index)?;
                    *count += 1;
                    if let Some(b) = bar {
                        b.set_position(index + 1);
                    }
                    visit(&Selected { index, leaf: v.entry(), proof: want_proofs.then_some(v.proof()) })?;
                }
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
        }
    }
    Ok(())
}

/// A consistency proof from `older` to the opened checkpoint, built from the source's tiles.
pub fn consistency(source: &Source, opened: &Opened, older: TreeSize) -> anyhow::Result<Vec<Hash>> {
    let size = opened.checkpoint.size();
    let cp = opened.checkpoint.clone();
    let proof = match source {
        Source::Dir(dir) => {
            LogTiles::new(cp, DirFetch::new(dir), DirFetch::new(dir)).consistency_proof(older)
        }
        Source::Server(s) => LogTiles::new(cp, s.fetcher(), s.fetcher()).consistency_proof(older),
    };
    proof.with_context(|| format!("building the consistency proof from size {older} to {size}"))
}

/// Adds to the bundle the time-stamp token of each of `sizes` (the bundle's checkpoint and the
/// older ones it holds) that has one, checked with `tsa` if given; returns how many. A token
/// stamps the log's own note (archived at `graven/checkpoint/<size>`); when the bundle's
/// checkpoint is not byte for byte that note (a witnessed log serves it with cosignatures),
/// the note goes in as an older checkpoint of the same size for the token to be checked against.
pub fn add_timestamps<W: std::io::Write>(
    source: &Source,
    opened: &Opened,
    w: &mut graven_verify::BundleWriter<W>,
    sizes: &[u64],
    tsa: Option<&graven_tsa::TsaVerifier>,
) -> anyhow::Result<u64> {
    use graven_verify::timestamps::{archived_checkpoint_path, timestamp_path};
    let mut f: Box<dyn Fetch> = match source {
        Source::Dir(dir) => Box::new(DirFetch::new(dir)),
        Source::Server(s) => Box::new(s.fetcher()),
    };
    let mut added = 0;
    for &size in sizes {
        let path = timestamp_path(size);
        let Some(token) = f.fetch(&path, graven_tsa::MAX_TOKEN_BYTES as u64).with_context(|| path.clone())?
        else {
            continue;
        };
        let archived_path = archived_checkpoint_path(size);
        let archived = f
            .fetch(&archived_path, graven_core::note::MAX_NOTE_SIZE as u64)
            .with_context(|| archived_path.clone())?;
        if size == opened.checkpoint.size().0
            && let Some(note) = archived.filter(|n| n.as_slice() != opened.checkpoint.note_bytes())
        {
            let cp = VerifiedCheckpoint::open(&note, &opened.key, opened.key.name())
                .with_context(|| format!("{archived_path} is not a checkpoint of this log"))?;
            w.add_older(&cp, &[]).with_context(|| archived_path.clone())?;
        }
        w.add_timestamp(size, &token, tsa).with_context(|| path.clone())?;
        added += 1;
    }
    Ok(added)
}

/// Where the files come from, for messages.
pub fn location(source: &Source) -> String {
    match source {
        Source::Dir(d) => DirFetch::new(d).location(),
        Source::Server(s) => s.base.clone(),
    }
}

#[cfg(test)]
mod time_bound_tests {
    use super::time_bound_at;

    #[test]
    fn ages_dates_and_rfc3339_become_rfc3339() {
        let now = time::macros::datetime!(2026-12-07 12:00:00 UTC);
        let t = |s: &str| time_bound_at(s, now);
        assert_eq!(t("1h").unwrap(), "2026-12-07T11:00:00Z");
        assert_eq!(t("90s").unwrap(), "2026-12-07T11:58:30Z");
        assert_eq!(t("7d").unwrap(), "2026-11-30T12:00:00Z");
        assert_eq!(t("2w").unwrap(), "2026-11-23T12:00:00Z");
        assert_eq!(t("30m").unwrap(), "2026-12-07T11:30:00Z");
        assert_eq!(t("2026-11-26").unwrap(), "2026-11-26T00:00:00Z");
        assert_eq!(t("2026-11-26T17:48:20Z").unwrap(), "2026-11-26T17:48:20Z");
        for bad in ["", "h", "1y", "-1h", "1.5h", "99999999999999999999d", "2026-13-01", "yesterday", "1 h"] {
            let e = t(bad).unwrap_err();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
        assert!(t(&"1".repeat(100)).is_err(), "long input");
    }
}
