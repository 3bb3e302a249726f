//! Entry bundles and hash tiles (C2SP tlog-tiles).
//!
//! Input: the first byte is the width minus one (1..=256); the rest is the bundle or tile.
//! Properties:
//! - `decode_bundle` and `decode_hash_tile` never panic.
//! - A decoded bundle has exactly `width` entries, and re-encoding them with `push_bundle_entry`
//!   reproduces the input bytes (so there is one encoding and no ignored bytes).
//! - A hash tile decodes exactly when it is `32 * width` bytes, into `width` hashes that encode
//!   back to the input.
#![no_main]

use graven_core::tile::{self, TileDataError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&w, bytes)) = data.split_first() else { return };
    let width = u16::from(w) + 1;

    match tile::decode_bundle(bytes, width) {
        Ok(entries) => {
            assert_eq!(entries.len(), usize::from(width));
            let mut again = Vec::with_capacity(bytes.len());
            for e in &entries {
                tile::push_bundle_entry(&mut again, e).expect("a decoded entry fits a bundle");
            }
            assert_eq!(again, bytes, "re-encoded bundle differs from the input");
        }
        Err(TileDataError::Count { found, width: w2 }) => {
            assert_eq!(w2, width);
            assert!(found < usize::from(width), "Count error with {found} >= {width} entries");
        }
        Err(TileDataError::TrailingData { extra }) => assert!(extra > 0 && extra <= bytes.len()),
        Err(TileDataError::Truncated { entry }) => assert!(entry < usize::from(width)),
        Err(e) => panic!("unexpected bundle error {e:?}"),
    }

    let want = usize::from(width) * 32;
    match tile::decode_hash_tile(bytes, width) {
        Ok(hashes) => {
            assert_eq!(bytes.len(), want);
            assert_eq!(hashes.len(), usize::from(width));
            assert_eq!(tile::encode_hash_tile(&hashes), bytes);
        }
        Err(TileDataError::TileLength { len, width: w2 }) => {
            assert_eq!((len, w2), (bytes.len(), width));
            assert_ne!(len, want, "a tile of the right length was rejected");
        }
        Err(e) => panic!("unexpected tile error {e:?}"),
    }
});
