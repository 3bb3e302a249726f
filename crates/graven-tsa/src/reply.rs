//! `TimeStampResp` (RFC 3161 §2.4.2): the TSA's status and, when granted, the token.
//!
//! ```text
//! TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }
//! PKIStatusInfo ::= SEQUENCE { status PKIStatus, statusString PKIFreeText OPTIONAL,
//!                              failInfo PKIFailureInfo OPTIONAL }
//! ```

use std::fmt;

use der::Tag;

use crate::asn1::{self, Cursor, Malformed};
use crate::text::quote;

/// A reply larger than this is refused (a token with a chain of a few certificates is a few
/// kilobytes).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;
/// At most this many status strings are read, each cut to 200 characters.
const MAX_STATUS_STRINGS: usize = 8;

/// RFC 3161 §2.4.2 `PKIStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PkiStatus {
    Granted,
    GrantedWithMods,
    Rejection,
    Waiting,
    RevocationWarning,
    RevocationNotification,
    Other(u64),
}

impl fmt::Display for PkiStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkiStatus::Granted => f.write_str("granted"),
            PkiStatus::GrantedWithMods => f.write_str("grantedWithMods"),
            PkiStatus::Rejection => f.write_str("rejection"),
            PkiStatus::Waiting => f.write_str("waiting"),
            PkiStatus::RevocationWarning => f.write_str("revocationWarning"),
            PkiStatus::RevocationNotification => f.write_str("revocationNotification"),
            PkiStatus::Other(n) => write!(f, "unknown status {n}"),
        }
    }
}

/// RFC 3161 §2.4.2 `PKIFailureInfo` bit names.
const FAILURES: [(usize, &str); 8] = [
    (0, "badAlg"),
    (2, "badRequest"),
    (5, "badDataFormat"),
    (14, "timeNotAvailable"),
    (15, "unacceptedPolicy"),
    (16, "unacceptedExtension"),
    (17, "addInfoNotAvailable"),
    (25, "systemFailure"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    #[error("the TSA's reply is larger than {MAX_REPLY_BYTES} bytes")]
    TooLarge,
    #[error("the TSA's reply is malformed: {0}")]
    Malformed(#[from] Malformed),
    #[error("the TSA refused the request: {0}")]
    Refused(Refusal),
    #[error("the TSA granted the request but sent no token")]
    NoToken,
}

/// A status other than granted: what the TSA said, its text quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: PkiStatus,
    /// The status strings, as sent (quote them before printing; `Display` does).
    pub text: Vec<String>,
    pub failures: Vec<&'static str>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status {}", self.status)?;
        for t in &self.text {
            write!(f, ", {}", quote(t))?;
        }
        if !self.failures.is_empty() {
            write!(f, " (failInfo: {})", self.failures.join(", "))?;
        }
        Ok(())
    }
}

/// The token of a granted reply (its bytes, as received; not yet verified), or why there is
/// none.
pub fn token_from_reply(reply: &[u8]) -> Result<&[u8], ReplyError> {
    if reply.len() > MAX_REPLY_BYTES {
        return Err(ReplyError::TooLarge);
    }
    let resp = asn1::single(reply, Tag::Sequence, "TimeStampResp")?;
    let mut c = Cursor::inside(resp);
    let info = c.expect(Tag::Sequence, "TimeStampResp.status")?;
    let token = c.optional(Tag::Sequence, "TimeStampResp.timeStampToken")?;
    c.finish("TimeStampResp")?;

    let mut s = Cursor::inside(info);
    let status = match asn1::small_unsigned(s.next("PKIStatus")?, "PKIStatus")? {
        0 => PkiStatus::Granted,
        1 => PkiStatus::GrantedWithMods,
        2 => PkiStatus::Rejection,
        3 => PkiStatus::Waiting,
        4 => PkiStatus::RevocationWarning,
        5 => PkiStatus::RevocationNotification,
        n => PkiStatus::Other(n),
    };
    let mut text = Vec::new();
    if let Some(strings) = s.optional(Tag::Sequence, "PKIStatusInfo.statusString")? {
        let mut t = Cursor::inside(strings);
        while !t.is_empty() && text.len() < MAX_STATUS_STRINGS {
            let utf8 = t.expect(Tag::Utf8String, "PKIStatusInfo.statusString")?;
            let s = std::str::from_utf8(utf8.value)
                .map_err(|_| asn1::malformed("PKIStatusInfo.statusString", "not UTF-8"))?;
            text.push(s.chars().take(200).collect());
        }
    }
    let mut failures = Vec::new();
    if let Some(bits) = s.optional(Tag::BitString, "PKIStatusInfo.failInfo")? {
        let data = bits.value.get(1..).unwrap_or_default();
        for (bit, name) in FAILURES {
            if data.get(bit / 8).is_some_and(|b| b & (0x80 >> (bit % 8)) != 0) {
                failures.push(name);
            }
        }
    }
    s.finish("PKIStatusInfo")?;

    match status {
        PkiStatus::Granted | PkiStatus::GrantedWithMods => token.map(|t| t.raw).ok_or(ReplyError::NoToken),
        _ => Err(ReplyError::Refused(Refusal { status, text, failures })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn a_refusal_names_status_text_and_failure() {
        // What `openssl ts -reply` answers to a request naming a policy it does not have.
        let reply = hex(concat!(
            "3030302e02010230240c2252657175657374656420706f6c696379206973206e6f742073757070",
            "6f727465642e0303000001"
        ));
        let err = token_from_reply(&reply).unwrap_err();
        let ReplyError::Refused(r) = &err else { panic!("{err}") };
        assert_eq!(r.status, PkiStatus::Rejection);
        assert_eq!(r.failures, ["unacceptedPolicy"]);
        assert_eq!(
            err.to_string(),
            "the TSA refused the request: status rejection, \"Requested policy is not supported.\" \
             (failInfo: unacceptedPolicy)"
        );
        // ... and to bytes that are not a request at all.
        let reply = hex(concat!(
            "3030302e02010230250c23426164207265717565737420666f726d6174206f722073797374656d20",
            "6572726f722e03020204"
        ));
        let Err(ReplyError::Refused(r)) = token_from_reply(&reply) else { panic!() };
        assert_eq!(r.text, ["Bad request format or system error."]);
        assert_eq!(r.failures, ["badDataFormat"]);
    }

    #[test]
    fn granted_without_token_and_garbage() {
        assert_eq!(token_from_reply(&hex("30053003020100")), Err(ReplyError::NoToken));
        assert!(matches!(token_from_reply(b"<html>"), Err(ReplyError::Malformed(_))));
        assert!(matches!(token_from_reply(&[]), Err(ReplyError::Malformed(_))));
    }
}
