//! A witness's answers to `add-checkpoint`, as the log reads them
//! (`graven_witness_client::request`): untrusted bytes from the network.
//!
//! - `read_answer` never panics, for any status and body.
//! - A `409` body is accepted exactly when it is a canonical decimal (no leading zero unless
//!   `0`) followed by one newline, and the size re-encodes to the body.
//! - A `200` body is accepted exactly when it is 1 to 16 lines, each `— <name> <sig>` with
//!   non-empty name and signature and no other space, each ending in `\n` but the last, whose
//!   newline may be missing (siglog 0.1.0's witness sends it so); the lines joined with
//!   newlines are the body, with or without its final newline.
//! - Any other status is a refusal carrying at most 300 characters of the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// graven-witness-client's `request` module, compiled here from its source (see fuzz/Cargo.toml).
#[allow(dead_code)]
#[path = "../../crates/graven-witness-client/src/request.rs"]
mod request;

use request::{Answer, MAX_ANSWER_LINES, conflict_size, read_answer, signature_lines};

fuzz_target!(|data: &[u8]| {
    let Some((&s, rest)) = data.split_first() else { return };
    let Ok(body) = std::str::from_utf8(rest) else { return };
    let status = match s % 4 {
        0 => 200,
        1 => 409,
        2 => 422,
        _ => 500 + u16::from(s),
    };
    match read_answer(status, body) {
        Ok(Answer::Conflict(n)) => assert_eq!(format!("{n}\n"), body),
        Ok(Answer::Cosigned(lines)) => {
            assert!(!lines.is_empty() && lines.len() <= MAX_ANSWER_LINES);
            let joined = lines.join("\n");
            assert!(body == joined || body == format!("{joined}\n"), "{lines:?} from {body:?}");
            for l in &lines {
                let sig = l.strip_prefix("\u{2014} ").unwrap();
                let parts: Vec<&str> = sig.split(' ').collect();
                assert!(parts.len() == 2 && parts.iter().all(|p| !p.is_empty()) && !l.contains('\n'));
            }
        }
        Ok(Answer::Refused { status: st, body: b }) => {
            assert_eq!(st, status);
            assert!(status != 200 && status != 409 && b.chars().count() <= 300);
        }
        Err(_) => assert!(status == 200 || status == 409),
    }
    // The two readers agree with a naive reading.
    let naive_conflict = body
        .strip_suffix('\n')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && (*d == "0" || !d.starts_with('0')))
        .and_then(|d| d.parse::<u64>().ok());
    assert_eq!(conflict_size(body).ok(), naive_conflict);
    if let Ok(lines) = signature_lines(body) {
        let text = body.strip_suffix('\n').unwrap_or(body);
        assert_eq!(lines.len(), text.split('\n').count());
    }
});
