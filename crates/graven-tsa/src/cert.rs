//! One X.509 certificate (RFC 5280), parsed with x509-parser, and the checks made of it here:
//! its key, its signature by an issuer, its validity at a time, CA and TSA usage.

use der::asn1::ObjectIdentifier as Oid;
use x509_parser::asn1_rs::{Any, Oid as X509Oid, Tag as X509Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::alg::{self, KeyKind, PublicKey, SignatureProblem};
use crate::oid;
use crate::time::GenTime;

/// Certificates larger than this are refused before parsing.
pub const MAX_CERT_BYTES: usize = 16 * 1024;

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertProblem {
    #[error("larger than {MAX_CERT_BYTES} bytes")]
    TooLarge,
    #[error("not a DER X.509 certificate")]
    Malformed,
    #[error("its two signature algorithm fields differ")]
    AlgorithmFieldsDiffer,
    #[error("it has the extension {0} twice")]
    DuplicateExtension(String),
    #[error("it has a critical extension this verifier does not process ({0})")]
    UnknownCriticalExtension(String),
    #[error("its public key is not RSA, P-256 or P-384 (algorithm {0})")]
    UnsupportedKey(String),
    #[error("its signature algorithm {0} is not accepted")]
    UnsupportedSignature(String),
}

#[derive(Debug)]
pub(crate) struct Cert<'a> {
    x509: X509Certificate<'a>,
}

fn oid_of(o: &X509Oid<'_>) -> Option<Oid> {
    Oid::from_bytes(o.as_bytes()).ok()
}

fn oid_text(o: &X509Oid<'_>) -> String {
    o.to_id_string()
}

/// Extensions whose criticality this crate honours: it processes their meaning (basic
/// constraints, key usage, extended key usage) or they restrict nothing it relies on (names,
/// key identifiers, policies: no policy is required of a TSA here).
const UNDERSTOOD: [Oid; 7] = [
    oid::EXT_BASIC_CONSTRAINTS,
    oid::EXT_KEY_USAGE,
    oid::EXT_EXTENDED_KEY_USAGE,
    oid::EXT_SUBJECT_ALT_NAME,
    oid::EXT_SUBJECT_KEY_ID,
    oid::EXT_AUTHORITY_KEY_ID,
    oid::EXT_CERTIFICATE_POLICIES,
];

impl<'a> Cert<'a> {
    /// Parses exactly one certificate: nothing may follow it. Its extensions are checked
    /// separately ([`Cert::check_extensions`]), when it is used.
    pub(crate) fn parse(der: &'a [u8]) -> Result<Self, CertProblem> {
        if der.len() > MAX_CERT_BYTES {
            return Err(CertProblem::TooLarge);
        }
        let x509 = match X509Certificate::from_der(der) {
            Ok(([], c)) => c,
            _ => return Err(CertProblem::Malformed),
        };
        let (outer, inner) = (&x509.signature_algorithm, &x509.tbs_certificate.signature);
        let params =
            |p: &Option<Any<'_>>| p.as_ref().map(|a| (a.header.class(), a.header.tag(), a.data.to_vec()));
        if outer.algorithm != inner.algorithm || params(&outer.parameters) != params(&inner.parameters) {
            return Err(CertProblem::AlgorithmFieldsDiffer);
        }
        Ok(Cert { x509 })
    }

    /// RFC 5280 §4.2: no extension twice, and no critical extension this crate does not
    /// process. Checked for every certificate used: the TSA's, each issuer, each root.
    pub(crate) fn check_extensions(&self) -> Result<(), CertProblem> {
        let x509 = &self.x509;
        let mut seen: Vec<&[u8]> = Vec::new();
        for ext in x509.extensions() {
            if seen.contains(&ext.oid.as_bytes()) {
                return Err(CertProblem::DuplicateExtension(oid_text(&ext.oid)));
            }
            seen.push(ext.oid.as_bytes());
            if ext.critical && !oid_of(&ext.oid).is_some_and(|o| UNDERSTOOD.contains(&o)) {
                return Err(CertProblem::UnknownCriticalExtension(oid_text(&ext.oid)));
            }
        }
        Ok(())
    }

    /// All of the certificate's bytes, as received.
    pub(crate) fn der(&self) -> &'a [u8] {
        self.x509.as_raw()
    }

    pub(crate) fn subject_raw(&self) -> &'a [u8] {
        self.x509.tbs_certificate.subject.as_raw()
    }

    pub(crate) fn issuer_raw(&self) -> &'a [u8] {
        self.x509.tbs_certificate.issuer.as_raw()
    }

    /// The serial number's INTEGER contents, as received.
    pub(crate) fn serial(&self) -> &'a [u8] {
        self.x509.raw_serial()
    }

    /// The subject, for messages (RFC 4514 style, as x509-parser prints it).
    pub(crate) fn subject(&self) -> String {
        self.x509.subject().to_string()
    }

    pub(crate) fn subject_key_id(&self) -> Option<&'a [u8]> {
        let ext =
            self.x509.get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER);
        match ext {
            Ok(Some(e)) => match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
                _ => None,
            },
            _ => None,
        }
    }

    pub(crate) fn public_key(&self) -> Result<PublicKey<'a>, CertProblem> {
        let spki = &self.x509.tbs_certificate.subject_pki;
        let alg = oid_of(&spki.algorithm.algorithm);
        let unsupported = || CertProblem::UnsupportedKey(oid_text(&spki.algorithm.algorithm));
        let kind = match alg {
            Some(oid::RSA_ENCRYPTION) => KeyKind::Rsa,
            Some(oid::EC_PUBLIC_KEY) => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .filter(|p| p.header.tag() == X509Tag::Oid)
                    .and_then(|p| Oid::from_bytes(p.data).ok());
                match curve {
                    Some(oid::SECP256R1) => KeyKind::P256,
                    Some(oid::SECP384R1) => KeyKind::P384,
                    _ => return Err(unsupported()),
                }
            }
            _ => return Err(unsupported()),
        };
        if spki.subject_public_key.unused_bits != 0 {
            return Err(CertProblem::Malformed);
        }
        // Borrowed from the input: x509-parser keeps the BIT STRING's bytes in place.
        let bytes: &'a [u8] = match &spki.subject_public_key.data {
            std::borrow::Cow::Borrowed(b) => b,
            std::borrow::Cow::Owned(_) => return Err(CertProblem::Malformed),
        };
        Ok(PublicKey { kind, bytes })
    }

    /// Whether `issuer`'s key verifies this certificate's signature (names are compared by the
    /// caller). An algorithm not accepted here is an error, not a `false`.
    pub(crate) fn signed_by(&self, issuer: &Cert<'_>) -> Result<bool, CertProblem> {
        let alg = &self.x509.signature_algorithm.algorithm;
        let unsupported = || CertProblem::UnsupportedSignature(oid_text(alg));
        let (family, digest) = match oid_of(alg).as_ref().and_then(alg::signature_algorithm) {
            Some((family, Some(digest))) => (family, digest),
            _ => return Err(unsupported()),
        };
        let key = issuer.public_key()?;
        let sig = &self.x509.signature_value;
        if sig.unused_bits != 0 {
            return Ok(false);
        }
        match alg::verify(key, family, digest, self.x509.tbs_certificate.as_ref(), &sig.data) {
            Ok(()) => Ok(true),
            Err(SignatureProblem::Invalid | SignatureProblem::WrongKeyKind) => Ok(false),
            Err(SignatureProblem::Unsupported) => Err(unsupported()),
        }
    }

    /// Whether `t` lies within the certificate's validity period (both ends included).
    pub(crate) fn valid_at(&self, t: GenTime) -> bool {
        let v = self.x509.validity();
        let (start, end) = (v.not_before.timestamp(), v.not_after.timestamp());
        start <= t.unix_seconds()
            && (t.unix_seconds() < end || (t.unix_seconds() == end && t.subsec_nanos() == 0))
    }

    pub(crate) fn validity_text(&self) -> String {
        let v = self.x509.validity();
        let show = |t: i64| GenTime::new(t, 0).map(|g| g.to_string()).unwrap_or_default();
        format!("{} to {}", show(v.not_before.timestamp()), show(v.not_after.timestamp()))
    }

    /// RFC 5280 §4.2.1.9 and §4.2.1.3: may this certificate issue certificates, with
    /// `below` intermediate CA certificates under it on the path?
    pub(crate) fn check_issuer(&self, below: usize) -> Result<(), &'static str> {
        let bc = match self.x509.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => bc.value,
            _ => return Err("it is not a CA certificate (basicConstraints cA)"),
        };
        if let Some(limit) = bc.path_len_constraint
            && u64::try_from(below).unwrap_or(u64::MAX) > u64::from(limit)
        {
            return Err("its pathLenConstraint is exceeded");
        }
        match self.x509.key_usage() {
            Ok(None) => Ok(()),
            Ok(Some(ku)) if ku.value.key_cert_sign() => Ok(()),
            _ => Err("its keyUsage does not allow keyCertSign"),
        }
    }

    /// RFC 3161 §2.3: the TSA's certificate has exactly one extended key usage extension, it
    /// is critical, and its only purpose is id-kp-timeStamping. A key usage, if present, allows
    /// signatures.
    pub(crate) fn check_time_stamping(&self) -> Result<(), &'static str> {
        let eku = match self.x509.extended_key_usage() {
            Ok(Some(eku)) => eku,
            Ok(None) => return Err("it has no extended key usage extension"),
            Err(_) => return Err("its extended key usage extension is malformed"),
        };
        if !eku.critical {
            return Err("its extended key usage extension is not critical");
        }
        let e = eku.value;
        let others = e.any || e.server_auth || e.client_auth || e.code_signing || e.email_protection;
        if !e.time_stamping || others || e.ocsp_signing || !e.other.is_empty() {
            return Err("its extended key usage is not timeStamping alone");
        }
        match self.x509.key_usage() {
            Ok(None) => Ok(()),
            Ok(Some(ku)) if ku.value.digital_signature() || ku.value.non_repudiation() => Ok(()),
            _ => Err("its keyUsage allows neither digitalSignature nor nonRepudiation"),
        }
    }

    /// Whether `name` (a GeneralName element, header included) is one of this certificate's
    /// names: its subject, or an entry of its subjectAltName.
    pub(crate) fn has_name(&self, name: &GeneralName<'_>) -> bool {
        if let GeneralName::DirectoryName(n) = name
            && n.as_raw() == self.subject_raw()
        {
            return true;
        }
        let Ok(Some(san)) = self.x509.subject_alternative_name() else { return false };
        san.value.general_names.iter().any(|g| match (g, name) {
            (GeneralName::DirectoryName(a), GeneralName::DirectoryName(b)) => a.as_raw() == b.as_raw(),
            (GeneralName::DNSName(a), GeneralName::DNSName(b)) => a.eq_ignore_ascii_case(b),
            (GeneralName::RFC822Name(a), GeneralName::RFC822Name(b)) => a == b,
            (GeneralName::URI(a), GeneralName::URI(b)) => a == b,
            _ => false,
        })
    }
}
