//! The configured roots (`tsa_cert`): the certificates a TSA's certificate must chain to.

use x509_parser::pem::Pem;

use crate::cert::{Cert, CertProblem};

/// A PEM file of roots larger than this is refused.
pub const MAX_ROOTS_FILE: usize = 1024 * 1024;
/// At most this many roots.
pub const MAX_ROOTS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RootsError {
    #[error("the TSA root file is larger than {MAX_ROOTS_FILE} bytes")]
    TooLarge,
    #[error("the TSA root file holds no certificate (expected PEM blocks \"BEGIN CERTIFICATE\")")]
    Empty,
    #[error("the TSA root file holds more than {MAX_ROOTS} certificates")]
    TooMany,
    #[error("the TSA root file is not valid PEM")]
    NotPem,
    #[error("the TSA root file holds a {0:?} block; it must hold certificates only")]
    NotACertificate(String),
    #[error("certificate {index} of the TSA root file was refused: {problem}")]
    BadCertificate { index: usize, problem: CertProblem },
}

/// Trust anchors for time-stamp tokens: a token verifies only if its signer's certificate is
/// one of these or chains to one of them. An anchor is trusted as it is (its own signature is
/// not checked), but its validity must still cover the token's `genTime`, and it must be a CA
/// if it issued a certificate on the path.
#[derive(Debug, Clone)]
pub struct TsaRoots {
    certs: Vec<Vec<u8>>,
}

impl TsaRoots {
    /// Reads one or more `CERTIFICATE` PEM blocks (text between blocks is ignored, as in CA
    /// bundles; any other kind of block is refused).
    pub fn from_pem(pem: &[u8]) -> Result<Self, RootsError> {
        if pem.len() > MAX_ROOTS_FILE {
            return Err(RootsError::TooLarge);
        }
        let mut certs = Vec::new();
        for block in Pem::iter_from_buffer(pem) {
            let block = block.map_err(|_| RootsError::NotPem)?;
            if block.label != "CERTIFICATE" {
                return Err(RootsError::NotACertificate(block.label.chars().take(40).collect()));
            }
            if certs.len() == MAX_ROOTS {
                return Err(RootsError::TooMany);
            }
            certs.push(block.contents);
        }
        Self::from_der(certs)
    }

    /// Roots given as DER certificates.
    pub fn from_der(certs: Vec<Vec<u8>>) -> Result<Self, RootsError> {
        if certs.is_empty() {
            return Err(RootsError::Empty);
        }
        if certs.len() > MAX_ROOTS {
            return Err(RootsError::TooMany);
        }
        for (index, der) in certs.iter().enumerate() {
            Cert::parse(der)
                .and_then(|c| c.check_extensions())
                .map_err(|problem| RootsError::BadCertificate { index, problem })?;
        }
        Ok(TsaRoots { certs })
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    pub(crate) fn der_certs(&self) -> impl Iterator<Item = &[u8]> {
        self.certs.iter().map(Vec::as_slice)
    }

    pub(crate) fn contains(&self, der: &[u8]) -> bool {
        self.certs.iter().any(|c| c == der)
    }
}
