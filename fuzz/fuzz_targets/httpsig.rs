//! RFC 9421 `Signature-Input` / `Signature` and RFC 9530 `Content-Digest` headers.
//!
//! Properties checked on every input:
//! - the parsers never panic, on any bytes (as the server sees them: visible-ASCII text);
//! - a parsed `Signature-Input` member re-serialises (`@signature-params`) to text that parses
//!   back to the same parameters, and a signature base can be built or refused without panic.
#![no_main]

use httpsig::RequestParts;
use libfuzzer_sys::fuzz_target;

/// graven-auth's `httpsig` module, compiled here from its source (see fuzz/Cargo.toml).
#[allow(dead_code)]
#[path = "../../crates/graven-auth/src/httpsig.rs"]
mod httpsig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = httpsig::parse_signatures(text);
    let _ = httpsig::parse_content_digest(text);
    if let Ok(params) = httpsig::parse_signature_input(text) {
        for p in &params {
            let again = httpsig::parse_signature_input(&format!("{}={}", p.label, p.serialize()))
                .expect("a serialised signature input parses");
            assert_eq!(&again[0], p);
            let parts = RequestParts {
                method: "POST",
                path: "/v1/events",
                query: Some("a=1"),
                headers: vec![("content-digest", "sha-256=:AA==:")],
                ..Default::default()
            };
            let _ = httpsig::signature_base(p, &parts);
        }
    }
});
