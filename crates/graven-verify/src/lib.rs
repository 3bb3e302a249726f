//! Tiled-log verifier.
