//! Graven's search index: the data behind
//! `GET /v1/events?actor=&action=&resource=&outcome=&since=&until=&limit=&cursor=&order=`.
//!
//! The index is **derived data**. It is built from the log's entries (the RFC 8785 canonical JSON of each
//! event), can be deleted and rebuilt from the log at any time, and is never the source of truth. It
//! lives in one [redb](https://docs.rs/redb) file.
//!
//! # Blocks
//!
//! Log indices are grouped into blocks of 4096 consecutive entries: block `b` holds `b * 4096 ..
//! (b + 1) * 4096`, and an entry is addressed inside its block by a `u16` offset. Everything is stored
//! per block, so indexing costs a few B-tree writes per block (per distinct value), not per entry. The
//! last block may be partial; while it fills, each `add` rewrites its record and the postings of the values
//! it added to (the writer keeps the partial block in memory between calls, and reloads it from its
//! record after a reopen).
//!
//! # Tables
//!
//! * `state: &str -> &[u8]`: `size` (entries `0..size` are indexed, u64 BE), `clock` (the largest
//!   `logged_at` seen, a packed time as u128 BE), `monotonic` (whether `logged_at` has never gone
//!   backwards), `format`, `block_len` (entries per block, u64 BE).
//! * `blocks: u64 -> &[u8]`: per block, its record (layout in `block.rs`): the number of entries, the
//!   clock before its first entry, one column per field holding each entry's value as an id into the
//!   block's dictionary of distinct full (untruncated) values, one column of each entry's own `logged_at`
//!   packed into 10 bytes (20 BCD digits plus one; 0 when absent, so byte order is time order), and the
//!   four dictionaries. Used to post-filter candidates and to locate `since`/`until` inside a block.
//! * `clocks: u64 -> u128`: per block, the clock (running maximum of `logged_at`) after its last entry;
//!   non-decreasing, binary-searched to turn `since`/`until` into a block.
//! * `postings: (u8, &str, u64) -> &[u8]`: per field (0 actor, 1 action, 2 resource, 3 outcome), value
//!   key and block, the offsets of the block's entries holding that value: ascending `u16`s, or a
//!   512-byte bitmap when that is smaller.
//! * `counts: (u8, &str) -> u64`: how many entries of the complete blocks hold each value key, to pick
//!   the most selective filter. A block is counted when it fills up, so adds that end mid-block write no
//!   counts; searches add the value's entries in the partial last block from its posting.
//! * `inventory: &str -> &[u8]` and `credentials: (&str, &str) -> &[u8]`: per actor, its
//!   [`Activity`]; per actor and credential, its [`Usage`]; updated in the same transaction as
//!   the rest (see `inventory.rs`, and docs/inventory.md for what the API makes of them).
//!
//! # Durability
//!
//! [`Index::add`] commits without fsync (redb `Durability::None`) unless the last durable commit is at
//! least [`AUTO_FLUSH`] old; [`Index::flush`] (and [`Index::add_durable`]) make everything durable.
//! Searches see every commit at once. After a crash, redb reopens the file at its last durable commit,
//! atomic and consistent, so `indexed_size()` may be smaller than before the crash and the caller
//! re-indexes from there (exactly what it does on every start). redb frees the pages of replaced data
//! only at durable commits, which is one more reason to flush now and then (at least every few seconds
//! while indexing continuously, and at the end of a catch-up).
//!
//! # Extraction
//!
//! Indexed fields are `actor.id`, `action`, `resource.id`, `outcome` (strings) and `logged_at` (a string
//! in the fixed 27-character format `YYYY-MM-DDTHH:MM:SS.ffffffZ`). An entry that is not a JSON object
//! has no fields; a field that is missing or has another JSON type (or a `logged_at` in another format)
//! is absent. An absent field never matches a filter on it, and a missing `logged_at` never matches a
//! `since` or `until`. Such entries still count as indexed. Each entry is parsed once, by a single-pass
//! scanner for the common subset of JSON (no escapes in strings, shallow nesting), which defers to
//! serde_json for anything else (see `extract.rs`).
//!
//! # Long values
//!
//! Values longer than [`MAX_KEY_BYTES`] are indexed under a truncated key (the longest prefix of at most
//! `MAX_KEY_BYTES` bytes that ends on a character boundary); values sharing a truncated key share its
//! postings. The full value is kept in the block's dictionary, and every query that could be affected by
//! truncation (a filter value long enough to collide with a truncated key) is post-filtered against it,
//! so truncation only costs speed, never correctness.
//!
//! # Searching
//!
//! One filter drives the scan: the one whose value key is held by the fewest entries (from `counts`).
//! Its postings within the index range are visited block by block in the requested order, so blocks
//! without the value are never read; each candidate is checked against the remaining filters and the
//! time bounds using its block's record (each filter value is looked up once per block in the
//! dictionary, then compared as an id). Without field filters every entry of the range is a candidate.
//! `since` narrows the index range by binary search over the running maximum of `logged_at` (blocks'
//! end clocks, then the entries of one block; sound even if timestamps went backwards); `until` narrows
//! it the same way only while the log's timestamps have never gone backwards, which the server
//! guarantees. Every candidate is post-filtered on time, so results are exact either way. At most
//! [`MAX_SCAN`] candidates are examined per call; when the budget runs out first, the page holds what was
//! found and a cursor to continue from. Cursors hold a log index (see `cursor.rs`), so they stay valid
//! across rebuilds.
//!
//! # Concurrency
//!
//! `Index` is `Send + Sync`: searches run on read snapshots concurrently with `add`; `add`, `flush` and
//! `clear` calls are serialized. redb allows one open handle per file per process; opening the same file
//! twice fails with [`IndexError::Storage`].

mod block;
mod cursor;
mod db;
mod error;
mod extract;
mod inventory;
mod query;
mod schema;
mod search;

pub use db::{AUTO_FLUSH, Index};
pub use error::IndexError;
pub use inventory::{Activity, DAYS, HOURS, MAX_SOURCES, Seen, Usage};
pub use query::{DEFAULT_LIMIT, MAX_LIMIT, MAX_SCAN, Order, Page, Query, entry_matches};
pub use schema::MAX_KEY_BYTES;

// Lets the shared test model (tests/common) name this crate from unit tests too.
#[cfg(test)]
extern crate self as graven_index;

#[cfg(test)]
mod tests;
