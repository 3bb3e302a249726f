//! Identity and key administration over HTTP (admin only). Every change runs the same steps
//! under one lock: read the records, check the change, append its audit event, make the
//! registry durable, answer.

pub mod identities;
pub mod public_keys;
