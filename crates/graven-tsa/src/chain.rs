//! From the TSA's certificate to a configured root (RFC 5280 §6, reduced to what a
//! time-stamp verifier needs): names link each certificate to its issuer, the issuer's key
//! verifies the certificate's signature, every issuer is a CA within its path length, and
//! every certificate on the path, the root included, is valid at the token's `genTime`.
//!
//! Revocation is not checked (no CRL or OCSP is fetched); see docs/trusted-time.md.

use crate::cert::{Cert, CertProblem};
use crate::roots::TsaRoots;
use crate::text::quote;
use crate::time::GenTime;

/// A path has at most this many certificates above the TSA's.
pub const MAX_DEPTH: usize = 8;
/// At most this many issuer signatures are tried while searching for a path.
const MAX_SIGNATURE_CHECKS: usize = 64;

/// Why the TSA's certificate does not lead to a configured root. Names are quoted (they come
/// from certificates).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    #[error("no certificate in the token or among the configured roots issued {subject}")]
    NoIssuer { subject: String },
    #[error("certificate {subject} is not valid at genTime {at} (it is valid from {validity})")]
    NotValidAt { subject: String, at: GenTime, validity: String },
    #[error("{issuer} may not issue {subject}: {reason}")]
    NotAnIssuer { issuer: String, subject: String, reason: &'static str },
    #[error("the signature of {issuer} on {subject} does not verify")]
    BadSignature { issuer: String, subject: String },
    #[error("certificate {subject} was refused: {problem}")]
    Certificate { subject: String, problem: CertProblem },
    #[error("no path to a configured root within {MAX_DEPTH} certificates")]
    TooLong,
}

/// Finds a path from `leaf` to one of `roots` through `pool` (the token's certificates and the
/// roots), depth first; returns the root's subject.
pub(crate) fn to_root(
    leaf: &Cert<'_>,
    pool: &[Cert<'_>],
    roots: &TsaRoots,
    at: GenTime,
) -> Result<String, ChainError> {
    let mut budget = MAX_SIGNATURE_CHECKS;
    extend(leaf, 0, pool, roots, at, &mut budget)
}

fn extend(
    current: &Cert<'_>,
    depth: usize,
    pool: &[Cert<'_>],
    roots: &TsaRoots,
    at: GenTime,
    budget: &mut usize,
) -> Result<String, ChainError> {
    let subject = || quote(&current.subject());
    if !current.valid_at(at) {
        return Err(ChainError::NotValidAt { subject: subject(), at, validity: current.validity_text() });
    }
    if roots.contains(current.der()) {
        return Ok(current.subject());
    }
    if depth >= MAX_DEPTH {
        return Err(ChainError::TooLong);
    }
    let mut last = ChainError::NoIssuer { subject: subject() };
    for issuer in pool.iter().filter(|c| c.subject_raw() == current.issuer_raw() && c.der() != current.der())
    {
        let names = || (quote(&issuer.subject()), subject());
        if *budget == 0 {
            return Err(ChainError::TooLong);
        }
        *budget -= 1;
        if let Err(problem) = issuer.check_extensions() {
            last = ChainError::Certificate { subject: names().0, problem };
            continue;
        }
        match current.signed_by(issuer) {
            Ok(true) => {}
            Ok(false) => {
                let (issuer, subject) = names();
                last = ChainError::BadSignature { issuer, subject };
                continue;
            }
            Err(problem) => {
                last = ChainError::Certificate { subject: subject(), problem };
                continue;
            }
        }
        if let Err(reason) = issuer.check_issuer(depth) {
            let (issuer, subject) = names();
            last = ChainError::NotAnIssuer { issuer, subject, reason };
            continue;
        }
        match extend(issuer, depth + 1, pool, roots, at, budget) {
            Ok(root) => return Ok(root),
            Err(e) => last = e,
        }
    }
    Err(last)
}
