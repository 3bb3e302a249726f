//! Platform records, as a source posts them (`graven-sources`): untrusted bytes from the
//! network. The first byte picks the platform (Kubernetes `EventList`, OpenBao audit lines,
//! CloudTrail log file) and which stages or types are asked for; the rest is the body.
//!
//! - Reading and mapping never panic, for any body.
//! - A mapped record's `original_bytes` are bytes of the body, its `original` is the JSON
//!   object they hold, its id is bounded, and its subject has an id and a kind.
//! - Kubernetes: a record is skipped exactly when its stage is not asked for, and its id is
//!   `<auditID>/<stage>`.
//! - OpenBao's socket device: the line framer (`graven-server`'s `stream_source::lines`,
//!   compiled from source: `std` only) cuts the body into the lines a split at `\n` gives (one
//!   `\r` before it dropped), each at most the limit, until a line longer than the limit.
#![no_main]

#[path = "../../crates/graven-server/src/stream_source/lines.rs"]
mod stream_lines;

use graven_sources::{Record, cloudtrail, kubernetes, openbao};
use libfuzzer_sys::fuzz_target;

fn check(body: &[u8], r: &Record<'_>) {
    let start = r.original_bytes.as_ptr() as usize;
    let base = body.as_ptr() as usize;
    assert!(start >= base && start + r.original_bytes.len() <= base + body.len(), "original bytes outside the body");
    let reparsed: serde_json::Value = serde_json::from_slice(r.original_bytes).expect("the original is JSON");
    assert_eq!(reparsed, r.original, "the original is what its bytes hold");
    assert!(r.original.is_object());
    assert!(!r.subject.id.is_empty() && !r.subject.kind.is_empty());
    let id = r.dedup_id.as_ref().expect("every platform here gives records an id");
    assert!(!id.is_empty() && id.len() <= graven_sources::MAX_ID_LEN + 64, "{id}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    match sel % 3 {
        0 => {
            let stages: Vec<&str> =
                kubernetes::STAGES.iter().enumerate().filter(|(i, _)| sel >> (2 + i) & 1 == 1).map(|(_, s)| *s).collect();
            let Ok(items) = kubernetes::parse_event_list(body) else { return };
            for (i, raw) in items.iter().enumerate() {
                match kubernetes::map_item(i, raw, &stages) {
                    Ok(Some(r)) => {
                        check(body, &r);
                        let stage = r.original["stage"].as_str().expect("a taken record has a stage");
                        assert!(stages.contains(&stage));
                        let audit_id = r.original["auditID"].as_str().expect("and an auditID");
                        assert_eq!(r.dedup_id.as_deref(), Some(format!("{audit_id}/{stage}").as_str()));
                    }
                    Ok(None) => {
                        let stage = r_stage(raw.get());
                        assert!(stage.is_some_and(|s| !stages.contains(&s.as_str())), "skipped a stage asked for");
                    }
                    Err(e) => assert!(e.0.contains(&format!("items[{i}]")), "{e}"),
                }
            }
        }
        1 => {
            let types: Vec<&str> = if sel & 4 == 0 { vec!["response"] } else { vec!["request", "response"] };
            check_line_framer(body);
            for (i, line) in openbao::lines(body).iter().enumerate() {
                match openbao::map_line(i, line, &types) {
                    Ok(Some(r)) => check(body, &r),
                    Ok(None) => {}
                    Err(e) => assert!(e.0.contains(&format!("line {}", i + 1)), "{e}"),
                }
            }
        }
        _ => {
            let Ok(records) = cloudtrail::parse_log_file(body) else { return };
            for (i, raw) in records.iter().enumerate() {
                match cloudtrail::map_item(i, raw) {
                    Ok(r) => check(body, &r),
                    Err(e) => assert!(e.0.contains(&format!("Records[{i}]")), "{e}"),
                }
            }
        }
    }
});

/// The stage of a record, if it has a string one.
fn r_stage(raw: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(raw).ok()?.get("stage")?.as_str().map(str::to_owned)
}

/// The socket device's framer against a split at `\n`.
fn check_line_framer(body: &[u8]) {
    const MAX: usize = 256;
    let mut rest = body;
    let mut reference = body.split(|&b| b == b'\n');
    loop {
        match stream_lines::next_line(rest, MAX) {
            Ok(Some(l)) => {
                assert!(l.line.end < l.consumed && l.consumed <= rest.len() && l.line.len() <= MAX);
                let want = reference.next().expect("a line the split has too");
                let want = want.strip_suffix(b"\r").unwrap_or(want);
                assert_eq!(&rest[l.line.clone()], want);
                rest = &rest[l.consumed..];
            }
            Ok(None) => {
                assert!(!rest.contains(&b'\n') && rest.len() <= MAX + 1);
                return;
            }
            Err(e) => {
                assert!(e.len > MAX && e.max == MAX);
                return;
            }
        }
    }
}
