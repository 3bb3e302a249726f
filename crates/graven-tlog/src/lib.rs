//! Local tiled-log writer.
