//! `TimeStampReq` (RFC 3161 §2.4.1), DER:
//!
//! ```text
//! TimeStampReq ::= SEQUENCE {
//!    version          INTEGER { v1(1) },
//!    messageImprint   MessageImprint,      -- SHA-256 of the bytes to stamp
//!    reqPolicy        TSAPolicyId OPTIONAL, -- only when configured
//!    nonce            INTEGER OPTIONAL,     -- the caller's random 64 bits
//!    certReq          BOOLEAN DEFAULT FALSE, -- TRUE: the TSA includes its certificate
//!    extensions       [0] IMPLICIT Extensions OPTIONAL }  -- none
//! ```

use der::asn1::ObjectIdentifier as Oid;

use crate::asn1::{encode, u64_contents};
use crate::oid;
use crate::policy::TsaPolicy;

/// A time-stamp request for the SHA-256 of some bytes (for Graven, a checkpoint note's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeStampRequest {
    der: Vec<u8>,
    imprint: [u8; 32],
    nonce: u64,
}

impl TimeStampRequest {
    /// `nonce` must be random (64 bits from the operating system's generator): it ties the
    /// answer to this request. `policy` only if the operator configured one; otherwise the
    /// TSA uses its default.
    pub fn new(message: &[u8], nonce: u64, policy: Option<&TsaPolicy>) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, message);
        let mut imprint = [0u8; 32];
        imprint.copy_from_slice(digest.as_ref());
        let mut body = encode(0x02, &[1]);
        // RFC 5754 §2: SHA-2 AlgorithmIdentifiers are generated with absent parameters.
        let alg = encode(0x30, &oid_der(&oid::SHA256));
        body.extend(encode(0x30, &[alg, encode(0x04, &imprint)].concat()));
        if let Some(p) = policy {
            body.extend(oid_der(&p.0));
        }
        body.extend(encode(0x02, &u64_contents(nonce)));
        body.extend(encode(0x01, &[0xFF]));
        TimeStampRequest { der: encode(0x30, &body), imprint, nonce }
    }

    /// The DER to send (`Content-Type: application/timestamp-query`).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn imprint(&self) -> &[u8; 32] {
        &self.imprint
    }

    pub fn nonce(&self) -> u64 {
        self.nonce
    }
}

fn oid_der(o: &Oid) -> Vec<u8> {
    encode(0x06, o.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_for_byte() {
        let req = TimeStampRequest::new(b"hello\n", 0xD7B3_5381_C704_0D67, None);
        // The same request as `openssl ts -query -data msg -sha256 -cert` made with this nonce,
        // less the NULL parameters OpenSSL writes after the SHA-256 OID.
        let expected = concat!(
            "3042",
            "020101",
            "302f",
            "300b0609608648016503040201",
            "04205891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03",
            "020900d7b35381c7040d67",
            "0101ff",
        );
        let hex: String = req.der().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        let with_policy = TimeStampRequest::new(b"hello\n", 1, Some(&TsaPolicy::parse("1.2.3.4.1").unwrap()));
        let hex: String = with_policy.der().iter().map(|b| format!("{b:02x}")).collect();
        assert!(hex.contains("06042a030401020101"), "{hex}");
    }
}
