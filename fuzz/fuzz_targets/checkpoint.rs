//! Checkpoint bodies (C2SP tlog-checkpoint), bare or inside a signed note.
//!
//! Properties:
//! - `Checkpoint::parse` never panics.
//! - Strict parse means one encoding: if it parses, `to_text()` is the input exactly, and it
//!   re-parses to an equal value; `with_extensions` rebuilds the same value from its parts.
//! - If the input is a signed note, its text is checked the same way, and
//!   `VerifiedCheckpoint::open` with the Tessera test key agrees with `note::open` followed by
//!   `Checkpoint::parse`.
#![no_main]

use std::sync::LazyLock;

use graven_core::checkpoint::{Checkpoint, OpenError, VerifiedCheckpoint};
use graven_core::note::{self, Note, VerifierKey};
use libfuzzer_sys::fuzz_target;

/// Tessera's test log key; the checkpoint seeds are signed by it.
const TESSERA_VKEY: &str = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
const TESSERA_ORIGIN: &str = "example.com/log/testdata";

static LOG_KEY: LazyLock<VerifierKey> =
    LazyLock::new(|| VerifierKey::parse(TESSERA_VKEY).expect("test key parses"));

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        check_body(s);
    }
    if let Ok(n) = Note::parse(data) {
        check_body(n.text());
    }
    check_open(data);
});

fn check_body(s: &str) {
    let Ok(c) = Checkpoint::parse(s) else { return };
    let text = c.to_text();
    assert_eq!(text, s, "parse accepted a non-canonical encoding");
    assert_eq!(Checkpoint::parse(&text).as_ref(), Ok(&c), "to_text() does not re-parse to c");
    let rebuilt = Checkpoint::with_extensions(c.origin(), c.size(), c.root(), c.extensions().to_vec());
    assert_eq!(rebuilt.as_ref(), Ok(&c), "with_extensions disagrees with parse");
    assert!(!c.origin().is_empty());
    assert!(c.extensions().iter().all(|e| !e.is_empty() && !e.contains('\n')));
}

fn check_open(data: &[u8]) {
    let opened = VerifiedCheckpoint::open(data, &LOG_KEY, TESSERA_ORIGIN);
    let by_hand = note::open(data, std::slice::from_ref(&*LOG_KEY));
    match (&opened, &by_hand) {
        (Ok(v), Ok(n)) => {
            assert_eq!(v.note_bytes(), data);
            assert_eq!(v.checkpoint().to_text(), n.text());
            assert_eq!(v.checkpoint().origin(), TESSERA_ORIGIN);
        }
        (Err(OpenError::Note(a)), Err(b)) => assert_eq!(a, b),
        (Err(OpenError::Body(a)), Ok(n)) => assert_eq!(Checkpoint::parse(n.text()).err().as_ref(), Some(a)),
        (Err(OpenError::OriginMismatch { found, .. }), Ok(n)) => {
            let c = Checkpoint::parse(n.text()).expect("origin mismatch on an unparseable body");
            assert_eq!(c.origin(), found);
            assert_ne!(found, TESSERA_ORIGIN);
        }
        (a, b) => panic!("VerifiedCheckpoint::open gave {a:?} but note::open gave {b:?}"),
    }
}
