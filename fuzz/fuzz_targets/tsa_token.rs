//! RFC 3161 time-stamp tokens (`graven_tsa::TsaVerifier::verify`), the TSA's reply
//! (`token_from_reply`) and the roots file (`TsaRoots::from_pem`).
//!
//! The first input byte chooses what the rest is:
//! - `0x00..=0x3F`: a token, verified against the fixed root of `crates/graven-tsa/tests/vectors/`
//!   for a message (bit 0: the vectors' message, or another one) and a nonce (bits 1–2: none,
//!   the vectors' nonce, another one);
//! - `0x40..=0x7F`: a roots file (PEM);
//! - `0x80..=0xFF`: a `TimeStampResp`; a granted reply's token is then verified as above.
//!
//! Properties:
//! - nothing panics, on any bytes;
//! - whatever verifies has the imprint of the bytes it was verified for (SHA-256 computed here
//!   with the `sha2` crate, independently of the verifier's *ring*), and fails for any other
//!   bytes;
//! - random bytes never verify: only the TSAs behind the fixed root can make a token, so a token
//!   that verifies says exactly what one of the two honest tokens says (serial, genTime, nonce,
//!   imprint, names), and carries the nonce expected of it;
//! - a reply's token is a part of the reply, and a roots file holds 1 to 64 certificates.
#![no_main]

use std::sync::LazyLock;

use graven_tsa::{TsaRoots, TsaVerifier, VerifiedTimestamp, token_from_reply};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const ROOT: &[u8] = include_bytes!("../../crates/graven-tsa/tests/vectors/root.pem");
const HONEST: [&[u8]; 2] = [
    include_bytes!("../../crates/graven-tsa/tests/vectors/rsa.token"),
    include_bytes!("../../crates/graven-tsa/tests/vectors/ec.token"),
];
const MESSAGE: &[u8] = b"graven tsa fuzz seed\n";
const OTHER: &[u8] = b"graven tsa fuzz seed\n\n";
const NONCE: u64 = 0x1122_3344_5566_7788;

static VERIFIER: LazyLock<TsaVerifier> =
    LazyLock::new(|| TsaVerifier::new(TsaRoots::from_pem(ROOT).expect("the fixed root parses")));
static HONEST_VERIFIED: LazyLock<Vec<VerifiedTimestamp>> = LazyLock::new(|| {
    HONEST.iter().map(|t| VERIFIER.verify(t, MESSAGE, Some(NONCE)).expect("the honest tokens verify")).collect()
});

fn check_token(mode: u8, token: &[u8]) {
    let message = if mode & 1 == 0 { MESSAGE } else { OTHER };
    let nonce = match (mode >> 1) & 3 {
        1 => Some(NONCE),
        2 => Some(NONCE ^ 1),
        _ => None,
    };
    let Ok(v) = VERIFIER.verify(token, message, nonce) else { return };
    let imprint: [u8; 32] = Sha256::digest(message).into();
    assert_eq!(v.imprint(), &imprint, "verified for other bytes than its imprint");
    assert!(HONEST_VERIFIED.contains(&v), "a token no honest TSA made verified: {v:?}");
    assert_eq!(message, MESSAGE);
    assert_ne!(nonce, Some(NONCE ^ 1), "a wrong nonce was accepted");
    let other = if message == MESSAGE { OTHER } else { MESSAGE };
    assert!(VERIFIER.verify(token, other, None).is_err(), "one token verified for two messages");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode {
        0x00..=0x3F => check_token(mode, rest),
        0x40..=0x7F => {
            if let Ok(roots) = TsaRoots::from_pem(rest) {
                assert!((1..=64).contains(&roots.len()));
            }
        }
        _ => {
            if let Ok(token) = token_from_reply(rest) {
                let start = token.as_ptr() as usize - rest.as_ptr() as usize;
                assert!(start + token.len() <= rest.len() && token.first() == Some(&0x30));
                check_token(mode & 0x07, token);
            }
        }
    }
});
