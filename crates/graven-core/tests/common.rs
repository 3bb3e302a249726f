//! Shared helpers for the data-driven tests over `../shared/vectors`.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

use base64::Engine as _;

/// The shared vectors directory: `GRAVEN_VECTORS` if set, else `shared/vectors` beside the repo.
pub use graven_testkit::vectors;

pub fn read_json(rel: &str) -> serde_json::Value {
    let path = vectors().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

pub fn unhex(s: &str) -> Vec<u8> {
    graven_core::hex::decode(s).unwrap()
}
