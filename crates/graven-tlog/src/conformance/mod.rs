//! The one conformance suite for `ObjectStore`: every property the log relies on, written
//! once, generic over the store, and run on each implementation (feature `testing`).
//!
//! - [`store`]: the store contract itself (conditional writes and their races, create-only
//!   writes, retention, listing with deleted keys, size limits, typed errors, counters).
//! - [`protocol`]: the object-store log (`ObjectLog`) on that store (the local
//!   layout byte for byte, recovery, a failure at every put, racing writers, other writers
//!   acting in the middle of an open or an append, tampering refused).
//! - [`Backend`]: what a store under test provides besides the trait: fresh stores, a second
//!   connection, and the owner's powers (list, check retention, tamper); [`Profile`], how hard
//!   to push it.
//! - [`Failing`] and [`Hooked`]: stores around the store under test that inject a fault or
//!   another writer's action at a chosen request.
//!
//! A store's test file implements [`Backend`] and calls `object_store_conformance!`,
//! which makes one `#[test]` per property, so a property added here runs on every store:
//! `MemStore` in `graven-tlog/tests/conformance.rs`, `S3Store` on SeaweedFS in
//! `graven-s3/tests/seaweed/`. Test code: the functions panic on the first property that
//! does not hold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly by design

mod backend;
pub mod protocol;
pub mod store;
mod wrappers;

pub use backend::{Backend, Profile};
pub use wrappers::{Failing, Hooked, Op};

/// One `#[test]` per conformance property, each calling it with the backend `$backend` (an
/// expression, evaluated once per test):
///
/// ```ignore
/// graven_tlog::object_store_conformance!(MemBackend);
/// ```
#[macro_export]
macro_rules! object_store_conformance {
    ($backend:expr) => {
        $crate::object_store_conformance!(@each $backend;
            store::get_of_a_missing_key_is_none,
            store::put_then_get_round_trips_with_a_new_etag_per_write,
            store::objects_over_the_limit_are_refused,
            store::if_absent_creates_once,
            store::if_match_needs_the_current_etag,
            store::racing_if_match_writers_have_one_winner_per_round,
            store::racing_if_absent_writers_have_one_winner_per_key,
            store::put_immutable_accepts_the_same_bytes_only,
            store::put_immutable_all_is_create_only_and_idempotent,
            store::retain_applies_to_exactly_the_retained_writes,
            store::listing_finds_the_next_key_under_a_prefix,
            store::a_deleted_key_reads_as_absent_but_is_still_listed,
            store::request_counts_count,
            protocol::the_layout_is_the_local_layout_byte_for_byte,
            protocol::reopening_continues_the_log_and_another_key_is_refused,
            protocol::a_committed_head_is_finished_by_the_next_writer,
            protocol::a_tampered_tile_stops_the_next_writer,
            protocol::a_failure_at_every_put_keeps_every_acknowledged_entry,
            protocol::writers_taking_turns_never_fork,
            protocol::racing_writers_never_fork,
            protocol::opening_while_another_writer_appends_is_no_alarm,
            protocol::opening_while_another_writer_commits_is_no_rollback,
            protocol::opening_an_empty_store_while_another_writer_starts_the_log_is_no_alarm,
            protocol::a_committed_batch_overtaken_before_publication_is_acknowledged,
            protocol::a_deleted_or_rolled_back_head_is_refused_not_forked,
            protocol::pipelined_commits_acknowledge_only_what_is_published,
            protocol::pipelined_commits_failing_at_every_put_keep_every_acknowledged_entry,
        );
    };
    (@each $backend:expr; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::$module::$name(&$backend);
            }
        )*
    };
}
