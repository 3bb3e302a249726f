//! Graven's log engine: everything between an accepted entry and a served proof, with no HTTP
//! and no credentials.
//!
//! - [`engine`]: the bounded admission pool, the sequencer thread (group commit into any
//!   [`graven_tlog::LogWriter`], `logged_at` stamped at commit, client-signature ids checked
//!   once), receipts, and for a shared log the replica that follows the published checkpoint.
//! - [`lease`]: which node of a shared log writes.
//! - [`reader`]: [`reader::LogReader`], proofs, entries and tile files at a committed size.
//! - [`indexer`]: the search index's feed, tailing committed checkpoints.
//! - [`clock`]: where the engine gets the time.
//!
//! Module dependencies point one way: `engine` → {`lease`, `reader`, `clock`}, `lease` →
//! `clock`, `indexer` → {`engine`, `reader`}.

pub mod clock;
pub mod engine;
pub mod indexer;
pub mod lease;
pub mod reader;
