//! Tiled-log paths (C2SP tlog-tiles).
//!
//! Properties:
//! - `parse_path` never panics.
//! - One tile, one name: a path that parses to a tile or bundle is exactly what `.path()`
//!   prints for it, and the parsed fields are in range.
//! - The other direction: any (level, index, width) taken from the input bytes prints to a path
//!   that parses back to the same tile and bundle.
#![no_main]

use graven_core::tile::{self, BundleId, MAX_LEVEL, TileId, TlogPath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        check_parse(s);
    }
    check_encode(data);
});

fn check_parse(s: &str) {
    match tile::parse_path(s) {
        Ok(TlogPath::Checkpoint) => assert_eq!(s, "checkpoint"),
        Ok(TlogPath::Tile(t)) => {
            assert_eq!(t.path(), s, "non-canonical tile path accepted");
            assert!(t.level <= MAX_LEVEL && (1..=256).contains(&t.width), "{t:?}");
            let (level, index) = s["tile/".len()..].split_once('/').expect("tile/<L>/<N>");
            assert_eq!(tile::parse_tile(level, index), Ok(t));
            let full = t.as_full();
            assert_eq!(tile::parse_path(&full.path()), Ok(TlogPath::Tile(full)));
        }
        Ok(TlogPath::Entries(b)) => {
            assert_eq!(b.path(), s, "non-canonical bundle path accepted");
            assert!((1..=256).contains(&b.width), "{b:?}");
            let full = b.as_full();
            assert_eq!(tile::parse_path(&full.path()), Ok(TlogPath::Entries(full)));
        }
        Err(_) => {}
    }
}

fn check_encode(data: &[u8]) {
    let Some((head, _)) = data.split_first_chunk::<11>() else { return };
    let level = head[0] % (MAX_LEVEL + 1);
    let index = u64::from_be_bytes(head[1..9].try_into().expect("8 bytes"));
    let width = u16::from_be_bytes([head[9], head[10]]) % 256 + 1;
    let t = TileId { level, index, width };
    assert_eq!(tile::parse_path(&t.path()), Ok(TlogPath::Tile(t)), "{t:?} does not round-trip");
    let b = BundleId { index, width };
    assert_eq!(tile::parse_path(&b.path()), Ok(TlogPath::Entries(b)), "{b:?} does not round-trip");
}
