//! Canonical events: what a JSON line becomes before it is a leaf.
//!
//! An event is a JSON object, canonicalised with strict RFC 8785 ([`crate::jcs`]), and at most
//! [`MAX_ENTRY_SIZE`] bytes once canonical (the tile format's `u16` length prefix).

use crate::jcs::{self, JcsError, Value};
pub use crate::tile::MAX_ENTRY_SIZE;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("{0}")]
    Json(#[from] JcsError),
    #[error("an event must be a JSON object {{...}}, not {0}")]
    NotAnObject(&'static str),
    #[error(
        "canonical event is {0} bytes, over the {MAX_ENTRY_SIZE}-byte limit; store large payloads elsewhere and log their digest"
    )]
    TooLarge(usize),
}

/// Canonicalises one JSON event. Rejects anything that is not a JSON object or that cannot be
/// represented exactly (see [`crate::jcs`]).
pub fn canonical_event(input: &[u8]) -> Result<Vec<u8>, EventError> {
    let value = jcs::parse(input)?;
    let kind = match &value {
        Value::Object(_) => None,
        Value::Null => Some("null"),
        Value::Bool(_) => Some("a boolean"),
        Value::Number(_) => Some("a number"),
        Value::String(_) => Some("a string"),
        Value::Array(_) => Some("an array"),
    };
    if let Some(kind) = kind {
        return Err(EventError::NotAnObject(kind));
    }
    let mut out = Vec::with_capacity(input.len());
    value.write_canonical(&mut out);
    if out.len() > MAX_ENTRY_SIZE {
        return Err(EventError::TooLarge(out.len()));
    }
    Ok(out)
}
