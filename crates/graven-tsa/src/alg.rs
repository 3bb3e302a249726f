//! Digest and signature algorithms, checked with *ring*.
//!
//! Accepted: SHA-256/384/512 digests (SHA-1 only where RFC 2634's `ESSCertID` requires it);
//! RSA PKCS #1 v1.5 with SHA-256/384/512 (2048 to 8192-bit keys, *ring*'s range); ECDSA over
//! P-256 and P-384 with SHA-256 or SHA-384. That is what `openssl ts` and common TSAs produce
//! with RSA and EC keys.

use der::asn1::ObjectIdentifier as Oid;
use ring::signature::{self, VerificationAlgorithm};

use crate::oid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Digest {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    pub(crate) fn from_oid(alg: &Oid) -> Option<Self> {
        match *alg {
            oid::SHA1 => Some(Digest::Sha1),
            oid::SHA256 => Some(Digest::Sha256),
            oid::SHA384 => Some(Digest::Sha384),
            oid::SHA512 => Some(Digest::Sha512),
            _ => None,
        }
    }

    pub(crate) fn hash(self, data: &[u8]) -> ring::digest::Digest {
        let alg = match self {
            Digest::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            Digest::Sha256 => &ring::digest::SHA256,
            Digest::Sha384 => &ring::digest::SHA384,
            Digest::Sha512 => &ring::digest::SHA512,
        };
        ring::digest::digest(alg, data)
    }
}

/// The kinds of public key signatures are checked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    P256,
    P384,
}

/// A subject public key: its kind and the key bytes (`RSAPublicKey` DER, or an uncompressed
/// EC point), borrowed from the certificate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublicKey<'a> {
    pub(crate) kind: KeyKind,
    pub(crate) bytes: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Rsa,
    Ecdsa,
}

/// A signature algorithm identifier: its key family, and the digest it names. CMS signer
/// infos from OpenSSL say plain `rsaEncryption`, whose digest is the signer info's
/// `digestAlgorithm` (RFC 3370 §3.2).
pub(crate) fn signature_algorithm(alg: &Oid) -> Option<(Family, Option<Digest>)> {
    match *alg {
        oid::RSA_ENCRYPTION => Some((Family::Rsa, None)),
        oid::SHA256_WITH_RSA => Some((Family::Rsa, Some(Digest::Sha256))),
        oid::SHA384_WITH_RSA => Some((Family::Rsa, Some(Digest::Sha384))),
        oid::SHA512_WITH_RSA => Some((Family::Rsa, Some(Digest::Sha512))),
        oid::ECDSA_WITH_SHA256 => Some((Family::Ecdsa, Some(Digest::Sha256))),
        oid::ECDSA_WITH_SHA384 => Some((Family::Ecdsa, Some(Digest::Sha384))),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureProblem {
    /// The algorithm is for another kind of key than the signer's.
    WrongKeyKind,
    /// This key kind and digest are not a combination accepted here.
    Unsupported,
    /// The signature does not verify.
    Invalid,
}

/// Checks `sig` over `message` with `key`, using `family` and `digest`.
pub(crate) fn verify(
    key: PublicKey<'_>,
    family: Family,
    digest: Digest,
    message: &[u8],
    sig: &[u8],
) -> Result<(), SignatureProblem> {
    let alg: &'static dyn VerificationAlgorithm = match (family, key.kind, digest) {
        (Family::Rsa, KeyKind::Rsa, Digest::Sha256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (Family::Rsa, KeyKind::Rsa, Digest::Sha384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (Family::Rsa, KeyKind::Rsa, Digest::Sha512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (Family::Ecdsa, KeyKind::P256, Digest::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
        (Family::Ecdsa, KeyKind::P256, Digest::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
        (Family::Ecdsa, KeyKind::P384, Digest::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
        (Family::Ecdsa, KeyKind::P384, Digest::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
        (Family::Rsa, KeyKind::P256 | KeyKind::P384, _) | (Family::Ecdsa, KeyKind::Rsa, _) => {
            return Err(SignatureProblem::WrongKeyKind);
        }
        _ => return Err(SignatureProblem::Unsupported),
    };
    signature::UnparsedPublicKey::new(alg, key.bytes)
        .verify(message, sig)
        .map_err(|_| SignatureProblem::Invalid)
}
