//! AWS CloudTrail log files: `{"Records": [...]}`, as CloudTrail writes them (unzipped).
//! [`parse_log_file`] reads a file, [`map_item`] each record: its `userIdentity` is the subject
//! and its `eventID` its id.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::{MAX_ID_LEN, Record, RecordError, Subject, bad};

/// The records of a CloudTrail log file, unread.
pub fn parse_log_file(bytes: &[u8]) -> Result<Vec<&RawValue>, RecordError> {
    #[derive(serde::Deserialize)]
    struct LogFile<'a> {
        #[serde(rename = "Records", borrow)]
        records: Vec<&'a RawValue>,
    }
    let file: LogFile<'_> = serde_json::from_slice(bytes).map_err(|e| {
        bad(format!("the body is not a CloudTrail log file ({e}): send {{\"Records\": [...]}}, as CloudTrail writes it (unzipped)"))
    })?;
    Ok(file.records)
}

/// Record `i` of a file.
pub fn map_item(i: usize, raw: &RawValue) -> Result<Record<'_>, RecordError> {
    let at = format!("Records[{i}]");
    let rec: Map<String, Value> = serde_json::from_str(raw.get())
        .map_err(|e| bad(format!("{at} is not a CloudTrail record object ({e})")))?;
    let event_id = rec
        .get("eventID")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_ID_LEN)
        .ok_or_else(|| {
            bad(format!(
                "{at}.eventID is missing (or longer than {MAX_ID_LEN} bytes): every CloudTrail record has one"
            ))
        })?
        .to_owned();
    map_record(&rec, raw.get(), &at, event_id)
}

/// The subject of a record's `userIdentity` (docs/sources.md has the table).
fn subject(who: &Map<String, Value>, at: &str) -> Result<Subject, RecordError> {
    fn text<'m>(m: &'m Map<String, Value>, k: &str) -> Option<&'m str> {
        m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    let ty = text(who, "type").ok_or_else(|| bad(format!("{at}.userIdentity.type is missing")))?;
    let issuer = who
        .get("sessionContext")
        .and_then(|c| c.get("sessionIssuer"))
        .and_then(Value::as_object)
        .filter(|i| text(i, "arn").is_some());
    let account = text(who, "accountId");
    let (id, kind) = match ty {
        // The role, not the session: sessions come and go, the role is the machine identity.
        "AssumedRole" => match (issuer, text(who, "arn")) {
            (Some(i), _) => (text(i, "arn").unwrap_or_default().to_owned(), "aws_assumed_role"),
            (None, Some(arn)) => (arn.to_owned(), "aws_assumed_role"),
            (None, None) => return Err(bad(format!("{at}.userIdentity: an AssumedRole without an arn"))),
        },
        "AWSService" => match text(who, "invokedBy") {
            Some(service) => (service.to_owned(), "aws_service"),
            None => return Err(bad(format!("{at}.userIdentity: an AWSService without invokedBy"))),
        },
        "AWSAccount" => match account.or_else(|| text(who, "principalId")) {
            Some(acct) => (format!("aws:account:{acct}"), "aws_account"),
            None => return Err(bad(format!("{at}.userIdentity: an AWSAccount without accountId"))),
        },
        other => {
            let kind = match other {
                "IAMUser" => "aws_iam_user",
                "Root" => "aws_root",
                "FederatedUser" => "aws_federated_user",
                "IdentityCenterUser" => "aws_identity_center_user",
                _ => "aws_identity",
            };
            match text(who, "arn").or_else(|| text(who, "principalId")) {
                Some(id) => (id.to_owned(), kind),
                None => {
                    return Err(bad(format!("{at}.userIdentity: a {other} without an arn or principalId")));
                }
            }
        }
    };
    let mut extra = vec![("aws_type".to_owned(), json!(ty))];
    for (k, name) in [
        ("arn", "arn"),
        ("accountId", "account_id"),
        ("accessKeyId", "access_key_id"),
        ("principalId", "principal_id"),
        ("userName", "user_name"),
        ("invokedBy", "invoked_by"),
    ] {
        if let Some(v) = text(who, k) {
            extra.push((name.to_owned(), json!(v)));
        }
    }
    if let Some(c) = who.get("sessionContext").filter(|c| c.is_object()) {
        extra.push(("session_context".to_owned(), c.clone()));
    }
    Ok(Subject { id, kind: kind.to_owned(), extra })
}

/// The event a CloudTrail record describes.
fn map_record<'a>(
    rec: &Map<String, Value>,
    raw: &'a str,
    at: &str,
    event_id: String,
) -> Result<Record<'a>, RecordError> {
    let text = |k: &str| rec.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let who = rec
        .get("userIdentity")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(format!("{at}.userIdentity is missing")))?;
    let subject = subject(who, at)?;
    let source = text("eventSource").ok_or_else(|| bad(format!("{at}.eventSource is missing")))?;
    let name = text("eventName").ok_or_else(|| bad(format!("{at}.eventName is missing")))?;
    let service = source.strip_suffix(".amazonaws.com").unwrap_or(source);
    let mut ev = Map::new();
    ev.insert("action".into(), json!(format!("aws.{service}.{name}")));
    if let Some(r) = rec.get("resources").and_then(Value::as_array).and_then(|a| a.first())
        && let Some(arn) = r.get("ARN").and_then(Value::as_str)
    {
        let ty = r.get("type").and_then(Value::as_str).unwrap_or("aws");
        ev.insert("resource".into(), json!({"type": ty, "id": arn}));
    }
    let outcome = match text("errorCode") {
        None => "success",
        Some(code) if is_denial(code) => "denied",
        Some(_) => "failure",
    };
    ev.insert("outcome".into(), json!(outcome));
    if let Some(t) = text("eventTime") {
        ev.insert("occurred_at".into(), json!(t));
    }
    if let Some(id) = text("requestID") {
        ev.insert("request_id".into(), json!(id));
    }
    let mut src = Map::new();
    if let Some(ip) = text("sourceIPAddress") {
        // An AWS service acting for the caller appears by name, not address.
        if ip.parse::<std::net::IpAddr>().is_ok() {
            src.insert("ip".into(), json!(ip));
        } else {
            src.insert("host".into(), json!(ip));
        }
    }
    if let Some(ua) = text("userAgent") {
        src.insert("user_agent".into(), json!(ua));
    }
    if !src.is_empty() {
        ev.insert("source".into(), Value::Object(src));
    }
    let mut fields = Map::new();
    for k in [
        "eventID",
        "eventVersion",
        "eventSource",
        "eventName",
        "eventType",
        "eventCategory",
        "awsRegion",
        "recipientAccountId",
        "readOnly",
        "managementEvent",
        "errorCode",
        "errorMessage",
        "sharedEventID",
        "vpcEndpointId",
        "resources",
    ] {
        if let Some(v) = rec.get(k) {
            fields.insert(k.into(), v.clone());
        }
    }
    Ok(Record {
        event: ev,
        platform_fields: fields,
        original: Value::Object(rec.clone()),
        original_bytes: raw.as_bytes(),
        dedup_id: Some(event_id),
        subject,
    })
}

/// Whether an `errorCode` is a refusal of the caller's rights (`AccessDenied`,
/// `UnauthorizedOperation`, `Client.UnauthorizedOperation`, `AccessDeniedException`, ...).
fn is_denial(code: &str) -> bool {
    let c = code.to_ascii_lowercase();
    c.contains("accessdenied") || c.contains("unauthorized") || c.contains("forbidden")
}
