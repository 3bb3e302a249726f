//! The object identifiers this crate reads or writes, with where each is defined.

use der::asn1::ObjectIdentifier as Oid;

// RFC 5652 (CMS) §5.1, §11.1, §11.2.
pub(crate) const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
pub(crate) const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
pub(crate) const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");

// RFC 3161 §2.4.2: id-ct-TSTInfo.
pub(crate) const CT_TST_INFO: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.4");

// RFC 2634 §5.4 (ESS signing-certificate) and RFC 5035 §3 (signing-certificate v2).
pub(crate) const SIGNING_CERTIFICATE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.12");
pub(crate) const SIGNING_CERTIFICATE_V2: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.47");

// Digests: RFC 3279 §2.2.1 (SHA-1), RFC 5754 §2 (SHA-2).
pub(crate) const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
pub(crate) const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
pub(crate) const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
pub(crate) const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");

// RSA: RFC 8017 Appendix A (rsaEncryption), RFC 4055 §5 (sha*WithRSAEncryption).
pub(crate) const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
pub(crate) const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
pub(crate) const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");

// ECDSA: RFC 5480 §2.1.1 (key and curves), RFC 5758 §3.2 (signatures).
pub(crate) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub(crate) const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub(crate) const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
pub(crate) const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
pub(crate) const ECDSA_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");

// RFC 5280 §4.2.1: the certificate extensions this crate understands.
pub(crate) const EXT_SUBJECT_KEY_ID: Oid = Oid::new_unwrap("2.5.29.14");
pub(crate) const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
pub(crate) const EXT_SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
pub(crate) const EXT_BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
pub(crate) const EXT_CERTIFICATE_POLICIES: Oid = Oid::new_unwrap("2.5.29.32");
pub(crate) const EXT_AUTHORITY_KEY_ID: Oid = Oid::new_unwrap("2.5.29.35");
pub(crate) const EXT_EXTENDED_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
