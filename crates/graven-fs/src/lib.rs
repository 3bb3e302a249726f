//! Graven's file layer, with no dependency beyond the standard library.
//!
//! - [`Fs`]: the filesystem operations Graven's durable writers use, with their durability
//!   contract; [`RealFs`], the local filesystem.
//! - [`sim::SimFs`]: a simulated disk that knows what was synced, fails before or after the
//!   N-th operation, and loses everything unsynced in a simulated power cut.
//! - [`atomic`]: the one durable, atomic way to write a whole small file ([`atomic::replace`],
//!   [`atomic::create`]), used for every file Graven keeps outside its log.
//!
//! Both the log writer (`graven-tlog`) and the verifier (`graven-verify`, for its trust store)
//! use it; it holds no log code, so the verifier still does not depend on the writer.

pub mod atomic;
mod fs;
pub mod sim;

pub use atomic::Access;
pub use fs::{Fs, LOCK_FILE, RealFs};
