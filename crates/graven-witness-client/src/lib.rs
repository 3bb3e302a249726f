//! The log's side of witnessing (C2SP `tlog-witness`, `tlog-cosignature`, `tlog-policy`).
//!
//! For each checkpoint the log commits, a *round* asks every witness of the policy, in
//! parallel, to cosign it (`POST <submission prefix>/add-checkpoint`), with the consistency
//! proof from the size that witness last cosigned (learnt from its `409` answer, as the spec
//! says). Every cosignature line is checked against the witness's key before it is kept. A
//! checkpoint is *witnessed* once the policy's quorum is met.
//!
//! Nothing here blocks the log: rounds run beside ingest, one at a time, each on the newest
//! checkpoint, so the number of witness requests is one per witness per round, whatever the
//! number of events.
//!
//! | module | what it holds |
//! |---|---|
//! | `request` | the `add-checkpoint` body, and reading a witness's answer |
//! | `board` | the checkpoints of recent rounds and their cosignatures; the quorum (pure) |
//! | `http` | one witness's HTTP client (blocking, keep-alive) |
//! | `rounds` | the loop: rounds, 409 recovery, retries, back-off, per-witness status |

pub mod board;
pub mod http;
pub mod request;
pub mod rounds;

pub use board::{Board, CosignedCheckpoint};
pub use rounds::{ProofSource, SetupError, WitnessStatus, Witnessing, WitnessingConfig};
