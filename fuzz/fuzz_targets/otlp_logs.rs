//! OpenTelemetry logs (`http::sources::otlp_map::decode`): every `POST /v1/logs` body goes
//! through it, in the encoding its `Content-Type` names.
//!
//! The first input byte chooses the encoding (even: protobuf, odd: OTLP/JSON), the rest is the
//! body.
//! - `decode` never panics, and never maps more records than it is allowed.
//! - What it maps has a subject of 1 to `MAX_ID` bytes, an action of 1 to 1024 bytes outside
//!   the reserved `graven.` namespace, a dedup id of 1 to `MAX_ID` bytes when any, and mapped
//!   fields that serialize.
//! - An OTLP/JSON record's bytes are the JSON of the record it keeps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp_map::{Encoding, MAX_ID, OtlpError, decode};

/// graven-server's `otlp_map` module, compiled here from its source (see fuzz/Cargo.toml): it
/// names no other module of its crate.
#[allow(dead_code)]
#[path = "../../crates/graven-server/src/http/sources/otlp_map.rs"]
mod otlp_map;

const MAX_RECORDS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else { return };
    let encoding = if first % 2 == 0 { Encoding::Protobuf } else { Encoding::Json };
    let mapped = match decode(body, encoding, MAX_RECORDS) {
        Ok(m) => m,
        Err(OtlpError::TooMany { records, max }) => {
            assert!(records > max);
            return;
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(mapped.len() <= MAX_RECORDS);
    for m in mapped {
        assert!(!m.subject_id.is_empty() && m.subject_id.len() <= MAX_ID);
        let action = m.event["action"].as_str().expect("every record has an action");
        assert!(!action.is_empty() && action.len() <= 1024);
        assert!(!action.to_ascii_lowercase().starts_with("graven."), "{action}");
        if let Some(id) = &m.dedup_id {
            assert!(!id.is_empty() && id.len() <= MAX_ID);
        }
        serde_json::to_vec(&m.platform_fields).expect("the mapped fields serialize");
        if encoding == Encoding::Json {
            let again: serde_json::Value = serde_json::from_slice(&m.original_bytes).expect("the record's bytes");
            assert_eq!(again, m.original);
        }
    }
});
