//! An RFC 5424 message as a source record (docs/sources.md has the table): its subject, its
//! event, its syslog fields, the message as received.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::rfc5424::Message;
use crate::http::sources::report::{Record, Subject};

/// The SD-ID whose params name Graven's fields: `name@PEN` as RFC 5424 §7.2.2 wants, with
/// 32473, the private enterprise number RFC 5612 reserves for documentation, since Graven has
/// none of its own.
pub const SD_ID: &str = "graven@32473";

/// Longest `event_id` taken for de-duplication.
const MAX_EVENT_ID: usize = 256;

/// Most JSON bytes of `msg`, and of `structured_data`, among the mapped fields: with both at
/// most this, the mapped fields always fit an entry (65,535 bytes), so a message too large to
/// keep whole is still logged, with its SHA-256 (the record, when it fits, holds them too).
const MAX_MAPPED_PART: usize = 16 << 10;

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];

/// The record a message describes. `Err` says why it names no subject.
pub fn record<'a>(m: &Message<'_>, frame: &'a [u8], peer: std::net::IpAddr) -> Result<Record<'a>, String> {
    let ours = |name: &str| -> Option<&str> {
        let e = m.structured_data.iter().find(|e| e.id == SD_ID)?;
        e.params.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    };
    let id = match (ours("actor"), m.app_name, m.hostname) {
        (Some(a), _, _) => a.to_owned(),
        (None, Some(app), Some(host)) => format!("{app}@{host}"),
        _ => {
            return Err(format!(
                "the message names no subject: give APP-NAME and HOSTNAME (the subject is APP-NAME@HOSTNAME), or [{SD_ID} actor=\"...\"]"
            ));
        }
    };
    let mut extra = Vec::new();
    for (k, v) in [("app_name", m.app_name), ("hostname", m.hostname), ("procid", m.procid)] {
        if let Some(v) = v {
            extra.push((k.to_owned(), json!(v)));
        }
    }
    let mut ev = Map::new();
    let action = match (ours("action"), m.msgid) {
        (Some(a), _) => a.to_owned(),
        (None, Some(id)) => format!("syslog.{id}"),
        (None, None) => "syslog.message".to_owned(),
    };
    ev.insert("action".into(), json!(action));
    if let Some(o) = ours("outcome") {
        ev.insert("outcome".into(), json!(o));
    }
    // The grammar was checked by the parser; the calendar (a 31st of February) is checked
    // here, so that such a time stays in details instead of failing the record.
    if let Some(t) = m.timestamp
        && time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok()
    {
        ev.insert("occurred_at".into(), json!(t));
    }
    if let Some(r) = ours("request_id") {
        ev.insert("request_id".into(), json!(r));
    }
    if let Some(ty) = ours("resource_type") {
        let mut res = Map::new();
        res.insert("type".into(), json!(ty));
        if let Some(rid) = ours("resource_id") {
            res.insert("id".into(), json!(rid));
        }
        ev.insert("resource".into(), Value::Object(res));
    }
    let mut source = Map::new();
    if let Some(h) = m.hostname {
        source.insert("host".into(), json!(h));
    }
    source.insert("ip".into(), json!(peer.to_string()));
    ev.insert("source".into(), Value::Object(source));

    let mut fields = Map::new();
    fields.insert("facility".into(), json!(FACILITIES.get(usize::from(m.facility)).copied().unwrap_or("?")));
    fields.insert("severity".into(), json!(SEVERITIES.get(usize::from(m.severity)).copied().unwrap_or("?")));
    for (k, v) in [
        ("timestamp", m.timestamp),
        ("hostname", m.hostname),
        ("app_name", m.app_name),
        ("procid", m.procid),
        ("msgid", m.msgid),
    ] {
        if let Some(v) = v {
            fields.insert(k.into(), json!(v));
        }
    }
    if !m.structured_data.is_empty() {
        let mut sd = Map::new();
        for e in &m.structured_data {
            let mut params = Map::new();
            for (k, v) in &e.params {
                // A param may repeat (RFC 5424 §6.3.3): its values, in order.
                match params.get_mut(*k) {
                    None => {
                        params.insert((*k).to_owned(), json!(v));
                    }
                    Some(Value::Array(a)) => a.push(json!(v)),
                    Some(prev) => *prev = json!([prev.clone(), v]),
                }
            }
            sd.insert(e.id.to_owned(), Value::Object(params));
        }
        fields.insert("structured_data".into(), Value::Object(sd));
    }
    if let Some(msg) = m.msg {
        fields.insert("msg".into(), json!(String::from_utf8_lossy(msg)));
    }
    // Left out, and said so, rather than cut: a part too large for the mapped fields.
    // JSON is at most 6 bytes per byte of the message (`\u00XX`): a short message needs no
    // measuring.
    let mut omitted = Vec::new();
    for part in ["structured_data", "msg"] {
        if frame.len() * 6 + 64 > MAX_MAPPED_PART
            && fields.get(part).is_some_and(|v| v.to_string().len() > MAX_MAPPED_PART)
        {
            fields.remove(part);
            omitted.push(part);
        }
    }
    if !omitted.is_empty() {
        fields.insert("omitted".into(), json!(omitted));
    }
    let dedup_id = match ours("event_id") {
        Some(e) if e.len() > MAX_EVENT_ID => {
            return Err(format!("[{SD_ID} event_id] is longer than {MAX_EVENT_ID} bytes"));
        }
        e => e.map(str::to_owned),
    };
    let original = match std::str::from_utf8(frame) {
        Ok(text) => json!(text),
        Err(_) => json!({"base64": base64::engine::general_purpose::STANDARD.encode(frame)}),
    };
    Ok(Record {
        event: ev,
        platform_fields: fields,
        original,
        original_bytes: frame,
        dedup_id,
        subject: Subject { id, kind: "syslog_app".to_owned(), extra },
    })
}
