//! The object-store log's head object (`graven/head`), which a writer reads at open.
//!
//! Properties:
//! - `Head::parse` never panics, on any bytes.
//! - What it accepts is self-consistent: exactly `to - from` entries, each at most 65,535
//!   bytes, `from <= to`.
//! - Encoding what was parsed and parsing it again gives the same head (the encoder is the
//!   writer's; the parser must read back everything the writer can write).
#![no_main]

use graven_tlog::objlog::Head;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(h) = Head::parse(data) else { return };
    assert!(h.from <= h.to);
    assert_eq!(h.entries.len() as u64, h.to.0 - h.from.0);
    assert!(h.entries.iter().all(|e| e.len() <= 65_535));
    let again = Head::encode(h.from, h.from_root, h.to, &h.checkpoint, &h.entries);
    assert_eq!(Head::parse(&again).as_ref(), Ok(&h), "encode(parse(x)) does not parse back to the same head");
});
