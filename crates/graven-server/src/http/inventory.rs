//! `GET /v1/inventory`: every machine identity, from the registry and from the inventory the
//! index keeps as entries are indexed (`graven_index::Activity`), merged by id, filtered and paged;
//! as JSON or CSV (docs/inventory.md). Nothing here reads the log.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use graven_api::{InventoryItem, InventoryKey, InventoryPage, InventorySeen};
use graven_auth::identity::{IdentityRecord, KeyRecord, Status};
use graven_index::{Activity, Seen, Usage};
use serde::Deserialize;

use super::state::{AppState, StrictQuery, blocking, finish};
use crate::problem::Problem;

type St = State<Arc<AppState>>;

/// JSON pages: 100 identities unless `limit` says otherwise, at most 1,000.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// CSV answers: 10,000 rows unless `limit` says otherwise, at most 10,000 (the rest through the
/// `Graven-Next-Cursor` header).
pub const MAX_CSV_LIMIT: usize = 10_000;
/// The largest `dormant_days` and `key_older_than_days` (100 years).
pub const MAX_DAYS: u64 = 36_500;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryQuery {
    dormant_days: Option<String>,
    never_used: Option<String>,
    key_older_than_days: Option<String>,
    status: Option<String>,
    kind: Option<String>,
    reported: Option<String>,
    registered: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    format: Option<String>,
}

impl InventoryQuery {
    /// The same query without the parameters given empty (a form's unset fields).
    pub fn without_blanks(mut self) -> Self {
        for f in [
            &mut self.dormant_days,
            &mut self.never_used,
            &mut self.key_older_than_days,
            &mut self.status,
            &mut self.kind,
            &mut self.reported,
            &mut self.registered,
            &mut self.limit,
            &mut self.cursor,
            &mut self.format,
        ] {
            if f.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *f = None;
            }
        }
        self
    }

    /// The parameters as given (the console writes them back into its form and links).
    pub fn raw(&self) -> Vec<(&'static str, String)> {
        [
            ("dormant_days", &self.dormant_days),
            ("never_used", &self.never_used),
            ("key_older_than_days", &self.key_older_than_days),
            ("status", &self.status),
            ("kind", &self.kind),
            ("reported", &self.reported),
            ("registered", &self.registered),
            ("limit", &self.limit),
            ("cursor", &self.cursor),
            ("format", &self.format),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}

/// The answer's media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// A parsed, checked query: which identities, and where the page starts.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub dormant_days: Option<u64>,
    pub never_used: Option<bool>,
    pub key_older_than_days: Option<u64>,
    pub status: Option<Status>,
    pub kind: Option<String>,
    pub reported: Option<bool>,
    pub registered: Option<bool>,
    pub limit: usize,
    /// The page starts after this id.
    pub after: Option<String>,
}

fn bad(detail: String) -> Problem {
    Problem::bad_request("bad-parameter", detail)
}

fn days(v: &str, what: &str) -> Result<u64, Problem> {
    match v.parse::<u64>() {
        Ok(n) if n <= MAX_DAYS => Ok(n),
        _ => Err(bad(format!("{what} must be a whole number of days from 0 to {MAX_DAYS}, got {v:?}"))),
    }
}

fn flag(v: &str, what: &str) -> Result<bool, Problem> {
    match v {
        // `?never_used` alone (an empty value) means true.
        "" | "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(format!("{what} must be true or false, got {v:?}"))),
    }
}

/// Checks every parameter: each one that does not parse is a 400 naming it.
pub fn parse(q: InventoryQuery, accept: Option<&str>) -> Result<(Filters, Format), Problem> {
    let format = match q.format.as_deref() {
        Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some(f) => return Err(bad(format!("format must be json or csv, got {f:?}"))),
        None if accept.is_some_and(|a| a.to_ascii_lowercase().contains("text/csv")) => Format::Csv,
        None => Format::Json,
    };
    let (default, max) = match format {
        Format::Json => (DEFAULT_LIMIT, MAX_LIMIT),
        Format::Csv => (MAX_CSV_LIMIT, MAX_CSV_LIMIT),
    };
    let limit = match q.limit.as_deref() {
        None => default,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => return Err(bad(format!("limit must be from 1 to {max}, got {l:?}"))),
        },
    };
    let status = match q.status.as_deref() {
        None => None,
        Some("active") => Some(Status::Active),
        Some("disabled") => Some(Status::Disabled),
        Some("revoked") => Some(Status::Revoked),
        Some(s) => return Err(bad(format!("status must be active, disabled or revoked, got {s:?}"))),
    };
    if q.kind.as_deref().is_some_and(str::is_empty) {
        return Err(bad("kind must not be empty".into()));
    }
    let filters = Filters {
        dormant_days: q.dormant_days.as_deref().map(|v| days(v, "dormant_days")).transpose()?,
        never_used: q.never_used.as_deref().map(|v| flag(v, "never_used")).transpose()?,
        key_older_than_days: q
            .key_older_than_days
            .as_deref()
            .map(|v| days(v, "key_older_than_days"))
            .transpose()?,
        status,
        kind: q.kind,
        reported: q.reported.as_deref().map(|v| flag(v, "reported")).transpose()?,
        registered: q.registered.as_deref().map(|v| flag(v, "registered")).transpose()?,
        limit,
        after: q.cursor.as_deref().map(decode_cursor).transpose()?,
    };
    Ok((filters, format))
}

/// A cursor is `i` and the hex of the last id answered (ids may hold any character).
fn encode_cursor(id: &str) -> String {
    let mut s = String::with_capacity(1 + 2 * id.len());
    s.push('i');
    for b in id.bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn decode_cursor(c: &str) -> Result<String, Problem> {
    let invalid = || bad("invalid cursor: pass the next_cursor of an earlier answer".into());
    let hex = c.strip_prefix('i').ok_or_else(invalid)?;
    if hex.len() % 2 != 0 || hex.len() > 2 * 64 * 1024 {
        return Err(invalid());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// One identity before it is shown: what the registry and the log each know of it.
struct Row<'a> {
    id: &'a str,
    record: Option<&'a IdentityRecord>,
    activity: Option<&'a Activity>,
}

impl Row<'_> {
    fn kind(&self) -> Option<&str> {
        match (self.record, self.activity) {
            (Some(r), _) => Some(r.kind.as_str()),
            (None, Some(a)) => a.kind.as_deref(),
            (None, None) => None,
        }
    }

    /// `key_use`: for an identity with no entry of its own, `Some` if an entry was made with one
    /// of its API keys (a source's key is used by the entries it reports, which are not its
    /// own), holding the latest such entry's time.
    fn matches(&self, f: &Filters, now_ms: i64, key_use: Option<Option<i64>>) -> bool {
        let key_used = key_use.is_some();
        let events = self.activity.map_or(0, |a| a.events);
        let reported = self.activity.is_some_and(|a| a.reported > 0);
        if f.registered.is_some_and(|v| v != self.record.is_some())
            || f.reported.is_some_and(|v| v != reported)
            || f.never_used.is_some_and(|v| v != (events == 0 && !key_used))
            || f.status.is_some_and(|s| self.record.is_none_or(|r| r.status != s))
            || f.kind.as_deref().is_some_and(|k| self.kind() != Some(k))
        {
            return false;
        }
        if let Some(n) = f.dormant_days {
            // Idle since its last entry (or the last entry made with its keys), or, never
            // used, since it was registered.
            let last_us = self.activity.and_then(|a| a.last.at_us).or(key_use.flatten());
            let since_ms = match (last_us, self.record) {
                (Some(us), _) => us / 1000,
                (None, Some(r)) if events == 0 && !key_used => r.created_ms,
                _ => return false, // entries without a time: how long it has been idle is unknown
            };
            if now_ms.saturating_sub(since_ms) < (n as i64).saturating_mul(DAY_MS) {
                return false;
            }
        }
        if let Some(n) = f.key_older_than_days {
            let old = |k: &KeyRecord| {
                k.usable(now_ms) && now_ms.saturating_sub(k.created_ms) >= (n as i64).saturating_mul(DAY_MS)
            };
            if !self.record.is_some_and(|r| r.keys.iter().any(old)) {
                return false;
            }
        }
        true
    }
}

fn seen(s: Seen) -> InventorySeen {
    InventorySeen { at: s.at_us.map(graven_core::event::format_timestamp), index: s.index }
}

fn item(row: &Row<'_>, usage: &[(String, Usage)], now_ms: i64) -> InventoryItem {
    let a = row.activity;
    let now_us = now_ms.saturating_mul(1000);
    let keys = row.record.map_or_else(Vec::new, |r| {
        r.keys
            .iter()
            .map(|k| {
                let cred = format!("key:{}", k.key_id);
                let used = usage.iter().find(|(c, _)| *c == cred).map(|(_, u)| *u);
                let state = if k.revoked_ms.is_some() {
                    "revoked"
                } else if k.usable(now_ms) {
                    "active"
                } else {
                    "expired"
                };
                InventoryKey {
                    age_days: u64::try_from(now_ms.saturating_sub(k.created_ms) / DAY_MS).unwrap_or(0),
                    created_at: crate::http::audit::format_ms(k.created_ms),
                    events: used.map_or(0, |u| u.events),
                    expires_at: k.expires_ms.map(crate::http::audit::format_ms),
                    key_id: k.key_id.clone(),
                    last_used: used.map(|u| seen(u.last)),
                    state: state.into(),
                }
            })
            .collect()
    });
    InventoryItem {
        denied: a.map_or(0, |a| a.denied),
        events: a.map_or(0, |a| a.events),
        events_24h: a.map_or(0, |a| a.events_last_hours(now_us)),
        events_30d: a.map_or(0, |a| a.events_last_days(now_us)),
        first_seen: a.map(|a| seen(a.first)),
        id: row.id.to_owned(),
        keys,
        kind: row.kind().map(str::to_owned),
        last_seen: a.map(|a| seen(a.last)),
        owner: row.record.map(|r| r.owner.clone()),
        registered: row.record.is_some(),
        reported: a.is_some_and(|a| a.reported > 0),
        reported_by: a.map_or_else(Vec::new, |a| a.sources.clone()),
        reported_events: a.map_or(0, |a| a.reported),
        role: row.record.map(|r| r.role.as_str().to_owned()),
        status: row.record.map(|r| r.status.as_str().to_owned()),
    }
}

/// Activities read from the index in chunks of [`CHUNK`], so that an answer holds one chunk
/// and its page in memory however many actors the log has.
#[derive(Debug)]
pub struct Chunks<'a> {
    index: &'a graven_index::Index,
    buf: std::collections::VecDeque<Activity>,
    after: Option<String>,
    done: bool,
    /// The indexed size of the first chunk's snapshot.
    pub indexed_size: Option<u64>,
}

/// Activities per read of the index.
pub const CHUNK: usize = 1024;

impl<'a> Chunks<'a> {
    /// The activities after `after`, in id order.
    pub fn new(index: &'a graven_index::Index, after: Option<&str>) -> Chunks<'a> {
        Chunks {
            index,
            buf: Default::default(),
            after: after.map(str::to_owned),
            done: false,
            indexed_size: None,
        }
    }
}

impl Iterator for Chunks<'_> {
    type Item = Result<Activity, Problem>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            match self.index.inventory_after(self.after.as_deref(), CHUNK) {
                Err(e) => {
                    self.done = true;
                    return Some(Err(Problem::internal(e.to_string())));
                }
                Ok((size, chunk)) => {
                    self.indexed_size.get_or_insert(size);
                    self.done = chunk.len() < CHUNK;
                    self.after = chunk.last().map(|a| a.id.clone());
                    self.buf.extend(chunk);
                }
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

/// One page: the registry's identities and the log's actors (`activities`, in id order, from
/// after `f.after`) merged by id, filtered. `usage` gives a registered identity's credentials'
/// use (asked only for the page's registered identities, and for `never_used` and
/// `dormant_days` for those with no entry of their own). Returns the items and the next cursor.
/// It stops reading `activities` once the page is full.
pub fn page(
    mut activities: impl Iterator<Item = Result<Activity, Problem>>,
    records: &BTreeMap<String, IdentityRecord>,
    now_ms: i64,
    f: &Filters,
    mut usage: impl FnMut(&str) -> Result<Vec<(String, Usage)>, Problem>,
) -> Result<(Vec<InventoryItem>, Option<String>), Problem> {
    let lower = f.after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    let mut recs = records.range::<str, _>((lower, Bound::Unbounded)).peekable();
    let mut next_act = activities.next().transpose()?;
    let mut items = Vec::new();
    loop {
        let (take_act, take_rec) = match (&next_act, recs.peek()) {
            (None, None) => return Ok((items, None)),
            (Some(a), Some((id, _))) if a.id.as_str() == id.as_str() => (true, true),
            (Some(a), Some((id, _))) if a.id.as_str() < id.as_str() => (true, false),
            (Some(_), None) => (true, false),
            (_, Some(_)) => (false, true),
        };
        let act = if take_act {
            let a = next_act.take();
            next_act = activities.next().transpose()?;
            a
        } else {
            None
        };
        let rec = if take_rec { recs.next() } else { None };
        let row = match (&act, rec) {
            (_, Some((id, r))) => Row { id: id.as_str(), record: Some(r), activity: act.as_ref() },
            (Some(a), None) => Row { id: a.id.as_str(), record: None, activity: Some(a) },
            (None, None) => continue, // not reached: one of them was taken
        };
        let has_keys = row.record.is_some_and(|r| !r.keys.is_empty());
        let idle = row.activity.is_none_or(|a| a.events == 0);
        // Credentials are read only for the page's identities, and for `never_used` and
        // `dormant_days`, only for registered identities with keys and no entry of their own.
        let mut u = None;
        if (f.never_used.is_some() || f.dormant_days.is_some()) && has_keys && idle {
            u = Some(usage(row.id)?);
        }
        let key_use = u.as_ref().and_then(|u: &Vec<(String, Usage)>| {
            let keys = u.iter().filter(|(c, _)| c.starts_with("key:"));
            keys.map(|(_, u)| u.last.at_us).reduce(|a, b| a.max(b))
        });
        if !row.matches(f, now_ms, key_use) {
            continue;
        }
        if items.len() >= f.limit {
            // One more matches: the page is full and the next one starts after its last item.
            let next = items.last().map(|last| encode_cursor(&last.id));
            return Ok((items, next));
        }
        let u = match u {
            Some(u) => u,
            None if has_keys => usage(row.id)?,
            None => Vec::new(),
        };
        items.push(item(&row, &u, now_ms));
    }
}

/// One page of the inventory for `filters` (what `GET /v1/inventory` answers, and the
/// console's identities page shows).
pub async fn run(st: &AppState, filters: Filters) -> Result<InventoryPage, Problem> {
    let now_ms = st.now_ms();
    let index = st.index.clone();
    let records = st.registry.records();
    let internal = |e: graven_index::IndexError| Problem::internal(e.to_string());
    let (indexed_size, items, next) = blocking(move || {
        let mut chunks = Chunks::new(&index, filters.after.as_deref());
        let (items, next) =
            page(&mut chunks, &records, now_ms, &filters, |id| index.credentials(id).map_err(internal))?;
        // `page` reads the first chunk whatever the filters; this is its snapshot's size.
        let size = match chunks.indexed_size {
            Some(s) => s,
            None => index.indexed_size().map_err(internal)?,
        };
        Ok((size, items, next))
    })
    .await?;
    // Read after the index, so that `indexed_size <= tree_size`.
    let tree_size = st.engine.committed().size;
    Ok(InventoryPage {
        identities: items,
        indexed_size,
        next_cursor: next,
        now: crate::http::audit::format_ms(now_ms),
        tree_size,
    })
}

pub async fn inventory(
    State(st): St,
    headers: HeaderMap,
    StrictQuery(q): StrictQuery<InventoryQuery>,
) -> Response {
    let r = async {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
        let (filters, format) = parse(q, accept)?;
        let page = run(&st, filters).await?;
        Ok(respond(page, format))
    }
    .await;
    finish(&st, "GET /v1/inventory", r)
}

/// A page as JSON, or as CSV with its cursor and indexed size in headers.
pub fn respond(page: InventoryPage, format: Format) -> Response {
    match format {
        Format::Json => crate::http::admin::identities::json_response(axum::http::StatusCode::OK, &page),
        Format::Csv => {
            let mut resp = csv(&page.identities).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
            );
            if let Some(c) = page.next_cursor.and_then(|c| HeaderValue::from_str(&c).ok()) {
                h.insert("graven-next-cursor", c);
            }
            if let Ok(v) = HeaderValue::from_str(&page.indexed_size.to_string()) {
                h.insert("graven-indexed-size", v);
            }
            resp
        }
    }
}

/// The CSV columns, in order.
pub const CSV_HEADER: &str = "id,kind,registered,reported,reported_by,owner,status,role,first_seen_at,first_seen_index,last_seen_at,last_seen_index,events,events_24h,events_30d,denied,reported_events,keys,oldest_active_key_age_days,key_last_used_at";

/// The items as CSV (RFC 4180, CRLF line ends, a header row), every text field made safe for a
/// spreadsheet by [`csv_text`].
pub fn csv(items: &[InventoryItem]) -> String {
    let mut out = String::with_capacity(64 + items.len() * 200);
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    let text = |out: &mut String, s: &str| {
        out.push_str(&csv_text(s));
        out.push(',');
    };
    let num = |out: &mut String, n: Option<u64>| {
        if let Some(n) = n {
            out.push_str(&n.to_string());
        }
        out.push(',');
    };
    for i in items {
        text(&mut out, &i.id);
        text(&mut out, i.kind.as_deref().unwrap_or(""));
        out.push_str(if i.registered { "true," } else { "false," });
        out.push_str(if i.reported { "true," } else { "false," });
        text(&mut out, &i.reported_by.join(" "));
        text(&mut out, i.owner.as_deref().unwrap_or(""));
        text(&mut out, i.status.as_deref().unwrap_or(""));
        text(&mut out, i.role.as_deref().unwrap_or(""));
        text(&mut out, i.first_seen.as_ref().and_then(|s| s.at.as_deref()).unwrap_or(""));
        num(&mut out, i.first_seen.as_ref().map(|s| s.index));
        text(&mut out, i.last_seen.as_ref().and_then(|s| s.at.as_deref()).unwrap_or(""));
        num(&mut out, i.last_seen.as_ref().map(|s| s.index));
        for n in [i.events, i.events_24h, i.events_30d, i.denied, i.reported_events] {
            num(&mut out, Some(n));
        }
        let keys: Vec<String> = i.keys.iter().map(|k| format!("{}:{}", k.key_id, k.state)).collect();
        text(&mut out, &keys.join(" "));
        num(&mut out, i.keys.iter().filter(|k| k.state == "active").map(|k| k.age_days).max());
        let last_used = i.keys.iter().filter_map(|k| k.last_used.as_ref()?.at.as_deref()).max();
        out.push_str(&csv_text(last_used.unwrap_or("")));
        out.push_str("\r\n");
    }
    out
}

/// One text field: always in double quotes, `"` doubled; every character that changes how text
/// is laid out or shown (C0 and C1 controls, line breaks included, DEL, bidirectional controls,
/// line separators, zero-width characters, the BOM: the list of `graven_verify::text::is_dangerous`,
/// which the server does not depend on) written as a visible `\u{…}` escape, so a record is one
/// line; and a field that would start with `=`, `+`, `-` or `@` (a formula to a spreadsheet)
/// prefixed with `'`. The JSON answer has the exact values.
pub fn csv_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    out.push('"');
    if s.starts_with(['=', '+', '-', '@']) {
        out.push('\'');
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\"\""),
            c if is_dangerous(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The characters of `graven_verify::text::is_dangerous` (kept equal by a test in
/// `tests/api/inventory.rs`, which can reach the verifier).
pub fn is_dangerous(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use graven_auth::identity::{Kind, Role};

    const DAY_US: i64 = DAY_MS * 1000;
    /// 2026-11-01T00:00:00Z.
    const T0_US: i64 = 1_793_491_200_000_000;

    fn rec(id: &str, created_days: i64, keys: &[(&str, i64, Option<i64>)], status: Status) -> IdentityRecord {
        let ms = |d: i64| T0_US / 1000 + d * DAY_MS;
        IdentityRecord {
            id: id.into(),
            kind: Kind::ServiceAccount,
            owner: "team".into(),
            description: String::new(),
            labels: BTreeMap::new(),
            allowed_actions: Vec::new(),
            role: Role::Writer,
            status,
            created_ms: ms(created_days),
            status_changed_ms: None,
            last_seen_ms: None,
            keys: keys
                .iter()
                .map(|&(k, created, expires)| KeyRecord {
                    key_id: k.into(),
                    sha256: String::new(),
                    created_ms: ms(created),
                    expires_ms: expires.map(ms),
                    revoked_ms: None,
                })
                .collect(),
            public_keys: Vec::new(),
            source: None,
        }
    }

    fn entry(actor: &str, credential: &str, attester: Option<(&str, &str)>, day: i64) -> Vec<u8> {
        let mut a = serde_json::json!({"id": actor, "credential": credential, "kind": "bot"});
        if let Some((s, c)) = attester {
            a["attested_by"] = serde_json::json!({"id": s, "credential": c});
        }
        let at = graven_core::event::format_timestamp(T0_US + day * DAY_US);
        serde_json::to_vec(&serde_json::json!({"actor": a, "logged_at": at, "outcome": "success"})).unwrap()
    }

    /// The time-dependent filters at a `now` of day 39.5 (12:00 UTC): an identity that acted on
    /// day 2 (idle 37.5 days), one that acted on day 39 at 00:00, a source whose key reported a
    /// subject then (not dormant although it has no entry of its own), one registered on day 0
    /// and never used, and keys of several ages, one expired.
    #[test]
    fn dormant_never_used_and_key_age_at_a_given_now() {
        let dir = tempfile::tempdir().unwrap();
        let index = graven_index::Index::open(&dir.path().join("i.redb")).unwrap();
        let entries = [
            entry("svc:old", "key:k-old", None, 2),
            entry("svc:new", "key:k-new", None, 39),
            entry("sa:subject", "attested:src", Some(("src:k8s", "key:k-src")), 39),
        ];
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        index.add(0, &refs).unwrap();
        let records: BTreeMap<String, IdentityRecord> = [
            rec("svc:old", 0, &[("k-old", 0, None)], Status::Active),
            rec("svc:new", 0, &[("k-new", 35, None), ("k-gone", 0, Some(10))], Status::Active),
            rec("src:k8s", 0, &[("k-src", 1, None)], Status::Active),
            rec("svc:idle", 0, &[("k-idle", 0, None)], Status::Disabled),
        ]
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
        let now_ms = (T0_US + 39 * DAY_US + DAY_US / 2) / 1000;
        let ids = |f: Filters| -> Vec<String> {
            let f = Filters { limit: 100, ..f };
            let (items, next) = page(Chunks::new(&index, None), &records, now_ms, &f, |id| {
                Ok(index.credentials(id).unwrap())
            })
            .unwrap();
            assert_eq!(next, None);
            items.into_iter().map(|i| i.id).collect()
        };
        assert_eq!(ids(Filters { dormant_days: Some(30), ..Filters::default() }), ["svc:idle", "svc:old"]);
        assert_eq!(ids(Filters { dormant_days: Some(1), ..Filters::default() }), ["svc:idle", "svc:old"]);
        assert_eq!(ids(Filters { dormant_days: Some(39), ..Filters::default() }), ["svc:idle"]);
        assert_eq!(ids(Filters { dormant_days: Some(40), ..Filters::default() }), Vec::<String>::new());
        assert_eq!(
            ids(Filters { dormant_days: Some(0), ..Filters::default() }),
            ["sa:subject", "src:k8s", "svc:idle", "svc:new", "svc:old"]
        );
        assert_eq!(ids(Filters { never_used: Some(true), ..Filters::default() }), ["svc:idle"]);
        // Keys: k-new is 4.5 days old, k-gone expired (not active), k-src 38.5 days, the rest 39.5.
        assert_eq!(
            ids(Filters { key_older_than_days: Some(6), ..Filters::default() }),
            ["src:k8s", "svc:idle", "svc:old"]
        );
        assert_eq!(
            ids(Filters { key_older_than_days: Some(39), ..Filters::default() }),
            ["svc:idle", "svc:old"]
        );
        assert_eq!(ids(Filters { key_older_than_days: Some(5), ..Filters::default() }).len(), 3);
        assert_eq!(ids(Filters { key_older_than_days: Some(4), ..Filters::default() }).len(), 4);
        assert_eq!(ids(Filters { status: Some(Status::Disabled), ..Filters::default() }), ["svc:idle"]);
        assert_eq!(ids(Filters { registered: Some(false), ..Filters::default() }), ["sa:subject"]);
        // Windows at `now`: the day-39 entries are 12 hours old, within 24 hours and 30 days;
        // day 2's in neither.
        let (items, _) = page(
            Chunks::new(&index, None),
            &records,
            now_ms,
            &Filters { limit: 100, ..Filters::default() },
            |id| Ok(index.credentials(id).unwrap()),
        )
        .unwrap();
        let row = |id: &str| items.iter().find(|i| i.id == id).unwrap().clone();
        assert_eq!((row("svc:new").events_24h, row("svc:new").events_30d), (1, 1));
        assert_eq!((row("svc:old").events_24h, row("svc:old").events_30d, row("svc:old").events), (0, 0, 1));
        let src = row("src:k8s");
        assert_eq!((src.events, src.keys[0].events), (0, 1));
        assert_eq!(src.keys[0].last_used.as_ref().map(|s| s.index), Some(2));
        assert_eq!(src.keys[0].age_days, 38);
        let new = row("svc:new");
        let states: Vec<&str> = new.keys.iter().map(|k| k.state.as_str()).collect();
        assert_eq!(states, ["active", "expired"]);
        // To the hour: at day 40 00:00 the day-39 00:00 entry is 24 hours old, outside the
        // current hour and the 23 before it; still inside the current day and the 29 before it.
        let day40 = (T0_US + 40 * DAY_US) / 1000;
        let (items, _) = page(
            Chunks::new(&index, None),
            &records,
            day40,
            &Filters { limit: 100, ..Filters::default() },
            |_| Ok(Vec::new()),
        )
        .unwrap();
        let new = items.iter().find(|i| i.id == "svc:new").unwrap();
        assert_eq!((new.events_24h, new.events_30d), (0, 1));
    }

    /// More actors than a chunk: pages walked through cursors list every actor and every
    /// registered identity once, in id order, across chunk boundaries.
    #[test]
    fn pages_cross_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let index = graven_index::Index::open(&dir.path().join("i.redb")).unwrap();
        let n = CHUNK * 2 + 300;
        let entries: Vec<Vec<u8>> = (0..n).map(|i| entry(&format!("a:{i:05}"), "key:x", None, 1)).collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        index.add(0, &refs).unwrap();
        // Registered: every third actor, and ids between actors that never acted.
        let records: BTreeMap<String, IdentityRecord> = (0..n)
            .step_by(3)
            .flat_map(|i| [format!("a:{i:05}"), format!("a:{i:05}~idle")])
            .map(|id| (id.clone(), rec(&id, 0, &[], Status::Active)))
            .collect();
        let mut want: Vec<String> =
            (0..n).map(|i| format!("a:{i:05}")).chain(records.keys().cloned()).collect();
        want.sort_unstable();
        want.dedup();
        let now_ms = (T0_US + 2 * DAY_US) / 1000;
        for limit in [7, 700, 1000] {
            let (mut got, mut after) = (Vec::new(), None);
            loop {
                let f = Filters { limit, after: after.clone(), ..Filters::default() };
                let (items, next) =
                    page(Chunks::new(&index, f.after.as_deref()), &records, now_ms, &f, |_| Ok(Vec::new()))
                        .unwrap();
                assert!(items.len() <= limit);
                got.extend(items.into_iter().map(|i| i.id));
                match next {
                    Some(c) => after = Some(decode_cursor(&c).unwrap()),
                    None => break,
                }
            }
            assert_eq!(got, want, "limit {limit}");
        }
        let f = Filters { limit: 10_000, registered: Some(false), ..Filters::default() };
        let (items, _) = page(Chunks::new(&index, None), &records, now_ms, &f, |_| Ok(Vec::new())).unwrap();
        assert_eq!(items.len(), n - n.div_ceil(3));
    }

    /// Every CSV record has the header's number of fields (counted outside quotes), whatever
    /// the strings hold.
    #[test]
    fn csv_records_have_the_headers_fields() {
        let seen = Some(InventorySeen { at: Some("2026-12-07T10:00:00.000000Z".into()), index: 3 });
        let item = |id: &str, keys: Vec<InventoryKey>| InventoryItem {
            denied: 1,
            events: 2,
            events_24h: 1,
            events_30d: 2,
            first_seen: seen.clone(),
            id: id.into(),
            keys,
            kind: Some("k,\"ind".into()),
            last_seen: None,
            owner: Some("=o".into()),
            registered: true,
            reported: true,
            reported_by: vec!["src:a".into(), "src,\"b\n".into()],
            reported_events: 1,
            role: None,
            status: Some("active".into()),
        };
        let key = InventoryKey {
            age_days: 3,
            created_at: "2026-12-04T10:00:00.000000Z".into(),
            events: 1,
            expires_at: None,
            key_id: "0123456789abcdef".into(),
            last_used: seen.clone(),
            state: "active".into(),
        };
        let text = csv(&[item("a,\"b\"\r\n", vec![key.clone(), key]), item("", Vec::new())]);
        let fields = |line: &str| {
            let mut quoted = false;
            1 + line
                .chars()
                .filter(|&c| {
                    if c == '"' {
                        quoted = !quoted;
                    }
                    c == ',' && !quoted
                })
                .count()
        };
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 4, "{text}");
        for l in &lines[..3] {
            assert_eq!(fields(l), CSV_HEADER.split(',').count(), "{l}");
        }
        assert!(lines[1].ends_with(",3,\"2026-12-07T10:00:00.000000Z\""), "{}", lines[1]);
        assert!(lines[1].contains(",\"'=o\","), "{}", lines[1]);
    }

    #[test]
    fn cursors_round_trip_any_id() {
        for id in ["svc:a", "", "é\"\n,=x", "system:serviceaccount:ci:deployer"] {
            assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), id);
        }
        for bad in ["", "x00", "i0", "izz", "iff"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_text_neutralises_formulas_quotes_and_line_breaks() {
        assert_eq!(csv_text("svc:a"), "\"svc:a\"");
        assert_eq!(csv_text("=cmd|' /C calc'!A0"), "\"'=cmd|' /C calc'!A0\"");
        assert_eq!(csv_text("+1"), "\"'+1\"");
        assert_eq!(csv_text("-2"), "\"'-2\"");
        assert_eq!(csv_text("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(csv_text("a,\"b\"\r\nc"), "\"a,\"\"b\"\"\\u{d}\\u{a}c\"");
        assert_eq!(csv_text("\tx\u{202e}"), "\"\\u{9}x\\u{202e}\"");
    }
}
