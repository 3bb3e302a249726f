//! `TSAPolicyId` (RFC 3161 §2.4.1): the policy a request asks for and a token must carry.

use std::fmt;

use der::asn1::ObjectIdentifier as Oid;

/// A TSA policy, an object identifier in dotted form (`1.3.6.1.4.1.4146.2.3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TsaPolicy(pub(crate) Oid);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an object identifier in dotted form (such as 1.2.3.4)")]
pub struct PolicyError(String);

impl TsaPolicy {
    pub fn parse(dotted: &str) -> Result<Self, PolicyError> {
        let err = || PolicyError(dotted.chars().take(80).collect());
        if !dotted.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(err());
        }
        Oid::new(dotted).map(TsaPolicy).map_err(|_| err())
    }
}

impl fmt::Display for TsaPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
