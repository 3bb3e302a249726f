//! `graven witness`: a C2SP `tlog-witness` for any C2SP log, Graven's or not.
//!
//! A witness cosigns a log's checkpoint only if it is consistent with every checkpoint it
//! cosigned before for that log, so a log's key holder cannot show two parties two histories
//! (or rewrite one) without a witness refusing, once clients require its cosignature. See
//! `docs/witness.md`.
//!
//! Specifications, followed to the letter and cited where relied on: C2SP `tlog-witness`
//! (`add-checkpoint`, the monitoring path; not `sign-subtree`), `tlog-cosignature` v1.0.1
//! (Ed25519 `cosignature/v1`, type `0x04`; not the ML-DSA-44 form), `signed-note` v1.0.0 and
//! `tlog-checkpoint` v1.0.0 (through `graven-core`).
//!
//! | module | what |
//! |---|---|
//! | `request` | the `add-checkpoint` body: strict parse (pure, fuzzed) |
//! | `logs` | the logs followed: origin → trusted Ed25519 note keys |
//! | `machine` | the rules, pure: state + request + time → new record and cosignature, or the spec's status |
//! | `store` | one durable file per origin through `graven_tlog::Fs` (write, fsync, rename, fsync dir) |
//! | `witness` | the rules made atomic (one lock per origin) and durable before answering |
//! | `http`, `serve`, `config`, `keyfile` | (feature `http`) the HTTP service, settings and key file |

pub mod logs;
pub mod machine;
pub mod request;
pub mod store;
pub mod witness;

#[cfg(feature = "http")]
pub mod config;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "http")]
pub mod keyfile;
#[cfg(feature = "http")]
pub mod serve;
