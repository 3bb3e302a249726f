//! C2SP tlog-tiles path vectors, tile counts, and tile/bundle encodings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod common;

use common::{read_json, vectors};
use graven_core::TreeSize;
use graven_core::tile::{self, BundleId, PathError, TileDataError, TileId, TlogPath};

#[test]
fn tile_paths_encode_and_parse() {
    let v = read_json("tlog-tiles/paths.json");
    let cases = v["tile_paths"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for c in cases {
        let t = TileId {
            level: c["level"].as_u64().unwrap() as u8,
            index: c["index"].as_u64().unwrap(),
            width: c["width"].as_u64().unwrap() as u16,
        };
        let want = c["path"].as_str().unwrap();
        assert_eq!(t.path(), want);
        assert_eq!(tile::parse_path(want).unwrap(), TlogPath::Tile(t), "{want}");
    }
    for c in v["entry_paths"].as_array().unwrap() {
        let b = BundleId { index: c["index"].as_u64().unwrap(), width: c["width"].as_u64().unwrap() as u16 };
        let want = c["path"].as_str().unwrap();
        assert_eq!(b.path(), want);
        assert_eq!(tile::parse_path(want).unwrap(), TlogPath::Entries(b), "{want}");
    }
    assert_eq!(tile::parse_path("checkpoint").unwrap(), TlogPath::Checkpoint);
}

#[test]
fn bundle_for_log_index() {
    let v = read_json("tlog-tiles/paths.json");
    for c in v["entries_path_for_log_index"].as_array().unwrap() {
        let seq = c["seq"].as_u64().unwrap();
        let size = TreeSize(c["log_size"].as_u64().unwrap());
        assert_eq!(tile::bundle_for_entry(seq, size).unwrap().path(), c["path"].as_str().unwrap(), "{c}");
    }
    assert_eq!(tile::bundle_for_entry(10, TreeSize(10)), None);
}

#[test]
fn parse_level_and_index() {
    let v = read_json("tlog-tiles/paths.json");
    let cases = v["parse_level_and_index"].as_array().unwrap();
    assert!(cases.len() >= 19);
    for c in cases {
        let (level, index) = (c["level"].as_str().unwrap(), c["index"].as_str().unwrap());
        let got = tile::parse_tile(level, index);
        if c["ok"].as_bool().unwrap() {
            let t = got.unwrap_or_else(|e| panic!("{level} {index}: {e}"));
            assert_eq!(u64::from(t.level), c["want_level"].as_u64().unwrap());
            assert_eq!(t.index, c["want_index"].as_u64().unwrap());
            assert_eq!(u64::from(t.width), c["want_width"].as_u64().unwrap());
            // And the full path form parses to the same tile.
            assert_eq!(tile::parse_path(&format!("tile/{level}/{index}")).unwrap(), TlogPath::Tile(t));
        } else {
            assert!(got.is_err(), "tile/{level}/{index} must be rejected");
        }
    }
}

#[test]
fn file_server_negative_paths() {
    let v = read_json("tlog-tiles/paths.json");
    let cases = v["extra_negative_paths_for_a_file_server"].as_array().unwrap();
    assert!(cases.len() >= 12);
    for c in cases {
        let p = c["path"].as_str().unwrap();
        assert!(tile::parse_path(p).is_err(), "{p} must be rejected: {}", c["why"]);
    }
    // The Go sumdb layout is a different format: none of its paths is a C2SP path.
    for c in v["NOT_C2SP_sumdb_format"]["cases"].as_array().unwrap() {
        let p = c["path"].as_str().unwrap();
        assert!(tile::parse_path(p).is_err(), "sumdb path {p} must not parse as C2SP");
    }
    assert_eq!(tile::parse_path(&"x".repeat(200)), Err(PathError::TooLong));
}

#[test]
fn tile_counts_for_a_size() {
    let v = read_json("tlog-tiles/paths.json");
    for c in v["tile_counts"].as_array().unwrap() {
        let size = TreeSize(c["tree_size"].as_u64().unwrap());
        let tiles: Vec<TileId> = tile::tiles_for_size(size).collect();
        let count =
            |level: u8, full: bool| tiles.iter().filter(|t| t.level == level && t.is_full() == full).count();
        let partial_width =
            |level: u8| tiles.iter().find(|t| t.level == level && !t.is_full()).map_or(0, |t| t.width);
        if let Some(n) = c.get("level0_full") {
            assert_eq!(count(0, true) as u64, n.as_u64().unwrap(), "{c}");
        }
        if let Some(n) = c.get("level1_full") {
            assert_eq!(count(1, true) as u64, n.as_u64().unwrap(), "{c}");
        }
        for (level, key) in
            [(0u8, "level0_partial_width"), (1, "level1_partial_width"), (2, "level2_partial_width")]
        {
            if let Some(w) = c.get(key) {
                assert_eq!(u64::from(partial_width(level)), w.as_u64().unwrap(), "{key} {c}");
            }
        }
    }
}

/// The reference log's files are exactly the tiles `tiles_for_size` names, at every size that
/// has a checkpoint there.
#[test]
fn reference_log_has_exactly_the_tiles_of_each_size() {
    let dir = vectors().join("tlog-tiles/reference-70000");
    for size in [1u64, 255, 256, 257, 65535, 65536, 65537, 70000] {
        for t in tile::tiles_for_size(TreeSize(size)) {
            let bytes =
                std::fs::read(dir.join(t.path())).unwrap_or_else(|e| panic!("{t} for size {size}: {e}"));
            assert_eq!(tile::decode_hash_tile(&bytes, t.width).unwrap().len(), usize::from(t.width));
        }
        for b in tile::bundles_for_size(TreeSize(size)) {
            let bytes =
                std::fs::read(dir.join(b.path())).unwrap_or_else(|e| panic!("{b} for size {size}: {e}"));
            let entries = tile::decode_bundle(&bytes, b.width).unwrap();
            let first = b.first_entry();
            for (i, e) in entries.iter().enumerate() {
                assert_eq!(*e, format!("leaf-{}", first + i as u64).as_bytes());
            }
        }
    }
}

#[test]
fn tile_and_bundle_decoding_is_strict() {
    let hashes = vec![graven_core::Hash([1; 32]), graven_core::Hash([2; 32])];
    let bytes = tile::encode_hash_tile(&hashes);
    assert_eq!(tile::decode_hash_tile(&bytes, 2).unwrap(), hashes);
    assert_eq!(tile::decode_hash_tile(&bytes[..63], 2), Err(TileDataError::TileLength { len: 63, width: 2 }));
    assert!(tile::decode_hash_tile(&bytes, 3).is_err());

    let mut bundle = Vec::new();
    for e in [&b"one"[..], b"", b"three"] {
        tile::push_bundle_entry(&mut bundle, e).unwrap();
    }
    assert_eq!(tile::decode_bundle(&bundle, 3).unwrap(), vec![&b"one"[..], b"", b"three"]);
    assert_eq!(tile::decode_bundle(&bundle, 2), Err(TileDataError::TrailingData { extra: 7 }));
    assert_eq!(tile::decode_bundle(&bundle, 4), Err(TileDataError::Count { found: 3, width: 4 }));
    assert_eq!(
        tile::decode_bundle(&bundle[..bundle.len() - 1], 3),
        Err(TileDataError::Truncated { entry: 2 })
    );
    assert_eq!(tile::decode_bundle(&bundle[..1], 1), Err(TileDataError::Truncated { entry: 0 }));
    assert_eq!(
        tile::push_bundle_entry(&mut Vec::new(), &vec![0; 65536]),
        Err(TileDataError::EntryTooLarge(65536))
    );
    // Tessera's bundles decode with the same code.
    let t = std::fs::read(vectors().join("tlog-tiles/tessera-testdata/testdata/log/tile/entries/000.p/15"))
        .unwrap();
    assert_eq!(tile::decode_bundle(&t, 15).unwrap()[0], b"one");
}
