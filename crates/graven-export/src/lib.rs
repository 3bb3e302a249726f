//! Export record formats: JSON Lines, OCSF 1.3.0 API Activity (class 6003), and ArcSight CEF
//! (`format`), and the escaping each format needs so that no record lets through a character
//! that changes how a terminal shows text, or forges a field or a record (`escape`). The
//! mapping is documented in docs/export.md.
//!
//! Callers hand in events that were already verified (`graven_verify::scan_log`, or
//! `graven_verify::remote::LogTiles`); this crate renders, it checks nothing. It is a crate of
//! its own, not a module of `graven-verify`, so that the verifier, which anyone should be able
//! to audit, does not take on a JSON library and a date parser for presentation.

pub mod escape;
pub mod format;

pub use format::{
    Format, OCSF_CATEGORY_UID, OCSF_CLASS_UID, OCSF_VERSION, Record, activity, cef, jsonl, ocsf, render,
};
