//! Graven's log engine: everything between an accepted entry and a served proof, with no HTTP
//! and no credentials.
//!
//! - [`engine`]: the bounded admission pool, the sequencer thread (group commit into any
//!   [`graven_tlog::LogWriter`], `logged_at` stamped at commit, client-signature ids checked
//!   once), receipts, and for a shared log the replica that follows the published checkpoint.
//! - [`lease`]: which node of a shared log writes.
//! - [`reader`]: [`reader::LogReader`], proofs, entries and tile files at a committed size.
//! - [`indexer`]: the search index's feed, tailing committed checkpoints.
//!
//! Time comes from a [`graven_clock::Clock`] handed in ([`engine::EngineConfig::clock`], the
//! lease's), never from the OS inside the logic (`clippy.toml` bans it); the sequencer is a
//! state machine that a thread drives in production and a simulation drives in
//! `tests/sim/`.
//!
//! Module dependencies point one way: `engine` → {`lease`, `reader`}, `indexer` → {`engine`,
//! `reader`}.

pub mod engine;
pub mod indexer;
pub mod lease;
pub mod reader;
