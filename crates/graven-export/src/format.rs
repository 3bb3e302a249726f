//! Export record formats: JSON Lines, OCSF 1.3.0 API Activity (class 6003), and ArcSight CEF.
//! The mapping is documented in docs/export.md; keep the two in step. (Moved from the `graven`
//! binary's `export_format.rs`.)
//!
//! Every record carries the log's origin, the event's 0-based index and its RFC 6962 leaf hash
//! (standard padded base64, like every hash Graven prints), so a SIEM record can later be
//! proven against the log with `graven prove --index` or an evidence bundle.

use graven_core::Hash;
use serde_json::{Map, Value, json};

use crate::escape;

/// The OCSF schema version the records follow.
pub const OCSF_VERSION: &str = "1.3.0";
/// OCSF Application Activity category and its API Activity class.
pub const OCSF_CATEGORY_UID: u64 = 6;
pub const OCSF_CLASS_UID: u64 = 6003;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line: the event verbatim plus `graven` provenance.
    Jsonl,
    /// OCSF API Activity (class 6003), one JSON object per line.
    Ocsf,
    /// ArcSight Common Event Format, one line per event.
    Cef,
}

/// One event to export.
#[derive(Debug)]
pub struct Record<'a> {
    pub origin: &'a str,
    pub index: u64,
    /// The exact leaf bytes.
    pub leaf: &'a [u8],
    pub leaf_hash: Hash,
}

/// The record as one line, without the final newline. No format lets a character that
/// changes how a terminal shows text through (see [`escape::is_dangerous`]).
pub fn render(format: Format, r: &Record<'_>) -> String {
    match format {
        Format::Jsonl => jsonl(r),
        Format::Ocsf => escape::json_line(&ocsf(r)),
        Format::Cef => cef(r),
    }
}

fn provenance(r: &Record<'_>) -> Value {
    json!({"origin": r.origin, "index": r.index, "leaf_hash": r.leaf_hash.to_base64()})
}

/// `{"event":<the leaf>,"graven":{...}}`, where `event` is the leaf's bytes verbatim, except
/// that characters a terminal would act on are written as `\uXXXX` escapes; that is only done
/// for a canonical (RFC 8785) leaf, so that re-canonicalising `event` always gives the leaf's
/// bytes back. A leaf that is not JSON (a raw entry), or not canonical JSON and holding such
/// characters, is carried as `entry_base64` instead of `event`.
pub fn jsonl(r: &Record<'_>) -> String {
    let graven = escape::json_line(&provenance(r));
    let event = serde_json::from_slice::<&serde_json::value::RawValue>(r.leaf)
        .ok()
        .map(|raw| raw.get())
        // Whitespace around the value would not survive in the line: keep the exact bytes.
        .filter(|text| text.as_bytes() == r.leaf)
        .and_then(|text| match escape::json(text) {
            std::borrow::Cow::Borrowed(t) => Some(t.to_owned()),
            std::borrow::Cow::Owned(escaped) => {
                let canonical = graven_core::jcs::canonicalize(r.leaf).is_ok_and(|c| c == r.leaf);
                canonical.then_some(escaped)
            }
        });
    match event {
        Some(e) => format!("{{\"event\":{e},\"graven\":{graven}}}"),
        None => {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(r.leaf);
            format!("{{\"entry_base64\":\"{b64}\",\"graven\":{graven}}}")
        }
    }
}

/// The event's JSON object, or an empty one for a leaf that is not a JSON object.
fn event_object(leaf: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice::<Value>(leaf) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn str_at<'a>(v: &'a Map<String, Value>, path: &[&str]) -> Option<&'a str> {
    let (last, parents) = path.split_last()?;
    let mut m = v;
    for p in parents {
        m = m.get(*p)?.as_object()?;
    }
    m.get(*last)?.as_str()
}

/// Milliseconds since the Unix epoch of an RFC 3339 time.
fn epoch_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// OCSF API Activity `activity_id` from the last dot-separated word of the action.
pub fn activity(action: &str) -> (u64, &'static str) {
    let verb = action.rsplit(['.', ':', '/']).next().unwrap_or("").to_ascii_lowercase();
    match verb.as_str() {
        "create" | "add" | "insert" | "issue" | "register" | "post" | "put" | "upload" | "new" => {
            (1, "Create")
        }
        "read" | "get" | "list" | "view" | "describe" | "search" | "fetch" | "download" | "query" => {
            (2, "Read")
        }
        "update" | "patch" | "modify" | "edit" | "set" | "change" | "rotate" | "replace" | "enable"
        | "disable" => (3, "Update"),
        "delete" | "remove" | "revoke" | "destroy" | "purge" | "erase" => (4, "Delete"),
        _ => (99, "Other"),
    }
}

/// OCSF `severity_id` / CEF severity / OCSF `status_id` for an outcome.
fn outcome_codes(outcome: Option<&str>) -> (u64, &'static str, u8, u64, &'static str) {
    match outcome {
        Some("success") => (1, "Informational", 3, 1, "Success"),
        Some("failure") => (2, "Low", 5, 2, "Failure"),
        Some("denied") => (3, "Medium", 7, 2, "Failure"),
        Some(_) => (1, "Informational", 5, 99, "Other"),
        None => (1, "Informational", 5, 0, "Unknown"),
    }
}

pub fn ocsf(r: &Record<'_>) -> Value {
    let ev = event_object(r.leaf);
    let action = str_at(&ev, &["action"]).unwrap_or("unknown");
    let (activity_id, activity_name) = activity(action);
    let outcome = str_at(&ev, &["outcome"]);
    let (severity_id, severity, _, status_id, status) = outcome_codes(outcome);
    let logged_at = str_at(&ev, &["logged_at"]);
    let occurred_at = str_at(&ev, &["occurred_at"]);
    let logged_ms = logged_at.and_then(epoch_ms);
    // OCSF `time` is when the activity happened: the client's occurred_at when it gave one,
    // else the moment the log sealed the event.
    let time = occurred_at.and_then(epoch_ms).or(logged_ms).unwrap_or(0);

    let mut metadata = json!({
        "version": OCSF_VERSION,
        "product": {"name": "Graven", "vendor_name": "Graven", "version": env!("CARGO_PKG_VERSION")},
        "log_name": r.origin,
        "log_provider": "graven",
        "uid": format!("{}/{}", r.origin, r.index),
    });
    if let Some(ms) = logged_ms {
        metadata["logged_time"] = json!(ms);
    }
    if let Some(t) = occurred_at {
        metadata["original_time"] = json!(t);
    }
    if let Some(id) = str_at(&ev, &["request_id"]) {
        metadata["correlation_uid"] = json!(id);
    }

    let mut user = Map::new();
    if let Some(id) = str_at(&ev, &["actor", "id"]) {
        user.insert("uid".into(), json!(id));
        user.insert("name".into(), json!(id));
    }
    if let Some(kind) = str_at(&ev, &["actor", "kind"]) {
        user.insert("type".into(), json!(kind));
        user.insert("type_id".into(), json!(99));
    }
    if let Some(c) = str_at(&ev, &["actor", "credential"]) {
        user.insert("credential_uid".into(), json!(c));
    }
    let mut actor = json!({ "user": user });
    if let Some(iss) = str_at(&ev, &["actor", "issuer"]) {
        actor["idp"] = json!({"name": iss});
    }

    let mut api = json!({ "operation": action });
    if let Some(id) = str_at(&ev, &["request_id"]) {
        api["request"] = json!({"uid": id});
    }

    let src_endpoint = match str_at(&ev, &["source", "ip"]) {
        Some(ip) => json!({"ip": ip}),
        None => json!({"name": "unknown"}),
    };

    let mut unmapped = Map::new();
    unmapped.insert("graven".into(), provenance(r));
    for key in ["details", "claimed", "sealed", "client_signature"] {
        if let Some(v) = ev.get(key) {
            unmapped.insert(key.into(), v.clone());
        }
    }
    if let Some(a) = ev.get("actor").and_then(Value::as_object) {
        let rest: Map<String, Value> = a
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "id" | "kind" | "credential" | "issuer"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !rest.is_empty() {
            unmapped.insert("actor".into(), Value::Object(rest));
        }
    }
    if let Some(o) = outcome {
        unmapped.insert("outcome".into(), json!(o));
    }
    if ev.is_empty() {
        use base64::Engine as _;
        unmapped
            .insert("entry_base64".into(), json!(base64::engine::general_purpose::STANDARD.encode(r.leaf)));
    }

    let mut out = json!({
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": OCSF_CATEGORY_UID,
        "category_name": "Application Activity",
        "class_uid": OCSF_CLASS_UID,
        "class_name": "API Activity",
        "type_uid": OCSF_CLASS_UID * 100 + activity_id,
        "type_name": format!("API Activity: {activity_name}"),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "time": time,
        "metadata": metadata,
        "actor": actor,
        "api": api,
        "src_endpoint": src_endpoint,
        "unmapped": unmapped,
    });
    if let Some(o) = outcome {
        out["status_detail"] = json!(o);
    }
    if let (Some(rid), rtype) = (str_at(&ev, &["resource", "id"]), str_at(&ev, &["resource", "type"])) {
        let mut res = json!({"uid": rid});
        if let Some(t) = rtype {
            res["type"] = json!(t);
        }
        out["resources"] = json!([res]);
    }
    if let Some(ua) = str_at(&ev, &["source", "user_agent"]) {
        out["http_request"] = json!({"user_agent": ua});
    }
    out
}

/// `CEF:0|Graven|graven|<version>|<action>|<action> <outcome>|<severity>|<extensions>`.
pub fn cef(r: &Record<'_>) -> String {
    let ev = event_object(r.leaf);
    let action = str_at(&ev, &["action"]).unwrap_or("unknown");
    let outcome = str_at(&ev, &["outcome"]);
    let (_, _, severity, _, _) = outcome_codes(outcome);
    let name = match outcome {
        Some(o) => format!("{action} {o}"),
        None => action.to_owned(),
    };
    let mut ext: Vec<(&str, String)> = Vec::new();
    if let Some(ms) = str_at(&ev, &["logged_at"]).and_then(epoch_ms) {
        ext.push(("rt", ms.to_string()));
    }
    if let Some(ms) = str_at(&ev, &["occurred_at"]).and_then(epoch_ms) {
        ext.push(("start", ms.to_string()));
    }
    ext.push(("act", action.to_owned()));
    if let Some(o) = outcome {
        ext.push(("outcome", o.to_owned()));
    }
    if let Some(v) = str_at(&ev, &["actor", "id"]) {
        ext.push(("suser", v.to_owned()));
    }
    if let Some(v) = str_at(&ev, &["actor", "credential"]) {
        ext.push(("suid", v.to_owned()));
    }
    if let Some(v) = str_at(&ev, &["actor", "kind"]) {
        ext.push(("cs1Label", "actorKind".into()));
        ext.push(("cs1", v.to_owned()));
    }
    // A subject a source reported (docs/sources.md) says so, and names the source: never read
    // as an actor that authenticated itself.
    if str_at(&ev, &["actor", "auth"]) == Some("attested")
        && let Some(by) = str_at(&ev, &["actor", "attested_by", "id"])
    {
        ext.push(("flexString1Label", "attestedBy".into()));
        ext.push(("flexString1", by.to_owned()));
    }
    // `src` must be an IP address; anything else the client sent goes to a custom string.
    if let Some(v) = str_at(&ev, &["source", "ip"]) {
        if v.parse::<std::net::IpAddr>().is_ok() {
            ext.push(("src", v.to_owned()));
        } else {
            ext.push(("cs6Label", "sourceIp".into()));
            ext.push(("cs6", v.to_owned()));
        }
    }
    if let Some(v) = str_at(&ev, &["source", "user_agent"]) {
        ext.push(("requestClientApplication", v.to_owned()));
    }
    if let Some(v) = str_at(&ev, &["request_id"]) {
        ext.push(("externalId", v.to_owned()));
    }
    if let Some(v) = str_at(&ev, &["resource", "type"]) {
        ext.push(("cs2Label", "resourceType".into()));
        ext.push(("cs2", v.to_owned()));
    }
    if let Some(v) = str_at(&ev, &["resource", "id"]) {
        ext.push(("cs3Label", "resourceId".into()));
        ext.push(("cs3", v.to_owned()));
    }
    if let Some(d) = ev.get("details") {
        ext.push(("msg", d.to_string()));
    }
    ext.push(("cs4Label", "graven.origin".into()));
    ext.push(("cs4", r.origin.to_owned()));
    ext.push(("cn1Label", "graven.index".into()));
    ext.push(("cn1", r.index.to_string()));
    ext.push(("cs5Label", "graven.leaf_hash".into()));
    ext.push(("cs5", r.leaf_hash.to_base64()));

    let mut line = format!(
        "CEF:0|Graven|graven|{}|{}|{}|{severity}|",
        escape::cef_header(env!("CARGO_PKG_VERSION")),
        escape::cef_header(action),
        escape::cef_header(&name),
    );
    for (i, (k, v)) in ext.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(k);
        line.push('=');
        line.push_str(&escape::cef_value(v));
    }
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use graven_core::leaf_hash;

    const EVENT: &str = r#"{"action":"deployment.create","actor":{"auth":"bearer","credential":"key:7f3a9c","id":"svc:payments-worker","kind":"service_account"},"details":{"replicas":3},"logged_at":"2026-11-26T17:48:20.123456Z","occurred_at":"2026-11-26T17:48:19.900Z","outcome":"success","request_id":"01JABC","resource":{"id":"prod/payments","type":"k8s.deployment"},"source":{"ip":"10.2.3.4","user_agent":"deployer/1.4"},"v":1}"#;

    fn rec(leaf: &[u8]) -> Record<'_> {
        Record { origin: "example.com/log", index: 41, leaf, leaf_hash: leaf_hash(leaf) }
    }

    /// OCSF 1.3.0 API Activity (6003): attributes the schema marks required (base event:
    /// activity_id, category_uid, class_uid, severity_id, time, type_uid, metadata with
    /// product and version; API Activity: actor, api with operation, src_endpoint).
    const OCSF_6003_REQUIRED: &[&str] = &[
        "activity_id",
        "category_uid",
        "class_uid",
        "severity_id",
        "time",
        "type_uid",
        "metadata",
        "metadata.product",
        "metadata.product.vendor_name",
        "metadata.version",
        "actor",
        "api",
        "api.operation",
        "src_endpoint",
    ];

    fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
        path.split('.').try_fold(v, |v, k| v.get(k)).filter(|v| !v.is_null())
    }

    fn check_required(v: &Value) {
        for attr in OCSF_6003_REQUIRED {
            assert!(get(v, attr).is_some(), "OCSF record lacks required {attr}: {v}");
        }
        assert_eq!(v["class_uid"], 6003);
        assert_eq!(v["category_uid"], 6);
        let activity = v["activity_id"].as_u64().unwrap();
        assert_eq!(v["type_uid"].as_u64().unwrap(), 6003 * 100 + activity);
        assert!([0, 1, 2, 3, 4, 99].contains(&activity));
        assert!(v["time"].is_i64() || v["time"].is_u64());
        assert!(get(v, "src_endpoint").unwrap().as_object().is_some_and(|o| !o.is_empty()));
    }

    #[test]
    fn ocsf_has_every_required_attribute_and_maps_fields() {
        let v = ocsf(&rec(EVENT.as_bytes()));
        check_required(&v);
        assert_eq!(v["activity_id"], 1);
        assert_eq!(v["api"]["operation"], "deployment.create");
        assert_eq!(v["actor"]["user"]["uid"], "svc:payments-worker");
        assert_eq!(v["actor"]["user"]["credential_uid"], "key:7f3a9c");
        assert_eq!(v["src_endpoint"]["ip"], "10.2.3.4");
        assert_eq!(v["http_request"]["user_agent"], "deployer/1.4");
        assert_eq!(v["resources"][0]["uid"], "prod/payments");
        assert_eq!(v["api"]["request"]["uid"], "01JABC");
        assert_eq!(v["status_id"], 1);
        // occurred_at 2026-11-26T17:48:19.900Z, logged_at .123456 s later.
        assert_eq!(v["time"], 1_795_715_299_900_i64);
        assert_eq!(v["metadata"]["logged_time"], 1_795_715_300_123_i64);
        assert_eq!(v["unmapped"]["details"]["replicas"], 3);
        assert_eq!(v["unmapped"]["graven"]["index"], 41);
        assert_eq!(v["unmapped"]["graven"]["origin"], "example.com/log");
        assert_eq!(v["unmapped"]["graven"]["leaf_hash"], leaf_hash(EVENT.as_bytes()).to_base64());
    }

    #[test]
    fn ocsf_required_attributes_survive_sparse_and_raw_entries() {
        for leaf in [&br#"{"action":"x"}"#[..], b"not json at all", br#"[1,2]"#, br#"{"outcome":"denied"}"#] {
            let v = ocsf(&rec(leaf));
            check_required(&v);
        }
        let v = ocsf(&rec(br#"{"action":"key.revoke","outcome":"denied"}"#));
        assert_eq!((v["activity_id"].as_u64(), v["severity_id"].as_u64()), (Some(4), Some(3)));
    }

    #[test]
    fn jsonl_carries_the_leaf_verbatim_and_its_hash() {
        let line = jsonl(&rec(EVENT.as_bytes()));
        assert!(line.contains(EVENT), "leaf bytes must appear verbatim");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["graven"]["origin"], "example.com/log");
        assert_eq!(v["graven"]["index"], 41);
        let m: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
            serde_json::from_str(&line).unwrap();
        let raw = m["event"];
        assert_eq!(
            Hash::from_base64(v["graven"]["leaf_hash"].as_str().unwrap()).unwrap(),
            leaf_hash(raw.get().as_bytes())
        );
        // Characters a terminal acts on: escaped, and JCS(event) is still the leaf.
        let hostile = graven_core::jcs::canonicalize(
            json!({"a": "x\u{1b}[2J\u{202e}\u{9b}\u{2028}\u{7f}", "b": "\\u202e"}).to_string().as_bytes(),
        )
        .unwrap();
        let line = jsonl(&rec(&hostile));
        assert!(!line.chars().any(escape::is_dangerous), "{line:?}");
        let m: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
            serde_json::from_str(&line).unwrap();
        assert_eq!(graven_core::jcs::canonicalize(m["event"].get().as_bytes()).unwrap(), hostile);
        // Not canonical, or padded with whitespace: the exact bytes, in base64.
        for leaf in [&b"{\"b\":\"\xe2\x80\xae\",\"a\":1}"[..], b" {\"a\":1}"] {
            let v: Value = serde_json::from_str(&jsonl(&rec(leaf))).unwrap();
            assert!(v.get("event").is_none(), "{v}");
            use base64::Engine as _;
            assert_eq!(
                base64::engine::general_purpose::STANDARD
                    .decode(v["entry_base64"].as_str().unwrap())
                    .unwrap(),
                leaf
            );
        }
        let raw_line = jsonl(&rec(b"\xffraw"));
        let v: Value = serde_json::from_str(&raw_line).unwrap();
        assert_eq!(v["entry_base64"], "/3Jhdw==");
    }

    #[test]
    fn an_attested_actor_is_marked_and_names_its_source() {
        let leaf = br#"{"action":"k8s.get","actor":{"attested_by":{"auth":"api_key","credential":"key:ab","id":"src:cluster","kind":"integration"},"auth":"attested","credential":"attested:src:cluster","id":"system:serviceaccount:ci:deployer","kind":"kubernetes_service_account","platform":"kubernetes"},"v":1}"#;
        let line = cef(&rec(leaf));
        assert!(line.contains("suser=system:serviceaccount:ci:deployer"), "{line}");
        assert!(line.contains("suid=attested:src:cluster"), "{line}");
        assert!(line.contains("flexString1Label=attestedBy flexString1=src:cluster"), "{line}");
        let v = ocsf(&rec(leaf));
        assert_eq!(v["actor"]["user"]["uid"], "system:serviceaccount:ci:deployer");
        assert_eq!(v["actor"]["user"]["credential_uid"], "attested:src:cluster");
        assert_eq!(v["unmapped"]["actor"]["auth"], "attested");
        assert_eq!(v["unmapped"]["actor"]["attested_by"]["id"], "src:cluster");
        // A directly authenticated actor has no such field.
        assert!(!cef(&rec(EVENT.as_bytes())).contains("attestedBy"));
    }

    #[test]
    fn cef_escapes_hostile_fields() {
        let hostile = "evil|act=x\\y\nCEF:0|forged|\r\u{1b}[2J\u{202e}\u{0}";
        let ev = json!({
            "action": hostile, "outcome": "denied",
            "actor": {"id": hostile, "kind": "bot"},
            "resource": {"id": hostile, "type": "t"},
            "details": {"note": hostile},
        })
        .to_string();
        let line = cef(&rec(ev.as_bytes()));
        assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        assert!(!line.chars().any(escape::is_dangerous), "{line:?}");
        assert!(line.starts_with("CEF:0|Graven|graven|"));
        // A CEF reader splits the header on the first 7 unescaped pipes...
        let (header, extension) = split_header(&line);
        assert_eq!(header[..4], ["CEF:0", "Graven", "graven", env!("CARGO_PKG_VERSION")]);
        assert_eq!(
            header[4],
            "evil\\|act=x\\\\y\u{fffd}CEF:0\\|forged\\|\u{fffd}\u{fffd}[2J\u{fffd}\u{fffd}"
        );
        assert_eq!(header[6], "7", "denied maps to severity 7");
        // ...and finds each extension key just before an unescaped `=`: no forged key appears.
        assert_eq!(
            extension_keys(extension),
            [
                "act", "outcome", "suser", "cs1Label", "cs1", "cs2Label", "cs2", "cs3Label", "cs3", "msg",
                "cs4Label", "cs4", "cn1Label", "cn1", "cs5Label", "cs5"
            ]
        );
        assert!(
            line.contains("suser=evil|act\\=x\\\\y\\nCEF:0|forged|\\r\u{fffd}[2J\u{fffd}\u{fffd}"),
            "{line}"
        );
        assert!(line.contains("|7|"), "denied maps to severity 7");
        assert!(line.contains("cn1Label=graven.index cn1=41"));
        assert!(line.contains("cs4Label=graven.origin cs4=example.com/log"));
        assert!(line.contains(&format!("cs5={}", leaf_hash(ev.as_bytes()).to_base64().replace('=', "\\="))));
    }

    /// The 8 header fields (still escaped) and the extension, as a CEF reader splits them.
    fn split_header(line: &str) -> (Vec<String>, &str) {
        let mut fields = vec![String::new()];
        let mut chars = line.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let (_, n) = chars.next().unwrap();
                    fields.last_mut().unwrap().extend([c, n]);
                }
                '|' if fields.len() == 7 => return (fields, &line[i + 1..]),
                '|' => fields.push(String::new()),
                c => fields.last_mut().unwrap().push(c),
            }
        }
        panic!("fewer than 8 header fields: {line}");
    }

    fn extension_keys(ext: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut current = String::new();
        let mut chars = ext.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                    current.clear();
                }
                ' ' => current.clear(),
                '=' => {
                    keys.push(std::mem::take(&mut current));
                }
                c => current.push(c),
            }
        }
        keys
    }

    #[test]
    fn activity_from_verb() {
        assert_eq!(activity("deployment.create").0, 1);
        assert_eq!(activity("secrets.LIST").0, 2);
        assert_eq!(activity("key.rotate").0, 3);
        assert_eq!(activity("identity:delete").0, 4);
        assert_eq!(activity("login").0, 99);
    }
}
