//! RFC 3161 trusted time for Graven checkpoints.
//!
//! A Time-Stamp Authority (TSA) signs a statement that some bytes existed no later than a
//! given time. Graven asks one for the SHA-256 of each checkpoint note it chooses to stamp;
//! anyone holding the note, the token and the TSA's root can check the statement offline.
//!
//! - [`TimeStampRequest`]: the DER request (RFC 3161 §2.4.1).
//! - [`TsaClient`] (feature `client`): posts it over HTTP (§3.4) and returns the token.
//! - [`token_from_reply`]: the token of a `TimeStampResp`, or the TSA's refusal.
//! - [`TsaVerifier::verify`]: checks a token against the bytes and the configured roots and
//!   returns a [`VerifiedTimestamp`], which nothing else can build. Pure: no clock, no I/O.
//! - [`TimeOrder`], [`check_time_order`]: a later checkpoint never carries an earlier time.
//!
//! Standards, pinned: RFC 3161 (with RFC 5816's ESSCertIDv2), RFC 5652 (CMS `SignedData`),
//! RFC 5280 (certificates and paths), RFC 2634 / RFC 5035 (ESS signing-certificate).
//! See docs/trusted-time.md.

mod alg;
mod asn1;
mod cert;
pub mod chain;
#[cfg(feature = "client")]
pub mod client;
mod cms;
mod oid;
pub mod order;
pub mod policy;
pub mod reply;
pub mod request;
pub mod roots;
pub mod text;
pub mod time;
mod tst_info;
pub mod verify;

pub use asn1::Malformed;
pub use cert::{CertProblem, MAX_CERT_BYTES};
pub use chain::ChainError;
#[cfg(feature = "client")]
pub use client::{ClientError, TsaClient, TsaClientConfig};
pub use order::{TimeOrder, TimeOrderError, check_time_order};
pub use policy::{PolicyError, TsaPolicy};
pub use reply::{PkiStatus, Refusal, ReplyError, token_from_reply};
pub use request::TimeStampRequest;
pub use roots::{RootsError, TsaRoots};
pub use text::quote;
pub use time::{Accuracy, GenTime};
pub use verify::{MAX_TOKEN_BYTES, TokenError, TsaVerifier, VerifiedTimestamp};
