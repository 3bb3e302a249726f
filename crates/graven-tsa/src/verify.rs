//! Verifying a time-stamp token against the bytes it should stamp and the configured roots.
//!
//! Pure: bytes in, a [`VerifiedTimestamp`] or a [`TokenError`] out. No clock is read: every
//! certificate's validity is checked at the token's own `genTime`.
//!
//! The checks, in order (each names the rule it enforces):
//! 1. the token is one CMS `SignedData` with one `SignerInfo` over an id-ct-TSTInfo
//!    (RFC 3161 §2.4.2), within [`MAX_TOKEN_BYTES`];
//! 2. the signed attributes say `contentType` = id-ct-TSTInfo and `messageDigest` = the
//!    digest of the TSTInfo bytes as received (RFC 5652 §5.4, §11.1–11.2);
//! 3. the signer's certificate, found by the `sid` (issuer and serial, or key identifier)
//!    among the token's certificates and the roots, verifies the signature over the DER of the
//!    signed attributes with their `SET OF` tag (RFC 5652 §5.4);
//! 4. the ESS signing-certificate attribute (v1 or v2, both if both are present) names that
//!    certificate: its hash, and its issuer and serial if given (RFC 3161 §2.4.1, RFC 2634
//!    §5.4, RFC 5035);
//! 5. that certificate's only extended key usage is timeStamping, critical (RFC 3161 §2.3);
//! 6. it chains to a configured root, each certificate valid at `genTime` ([`crate::chain`]);
//! 7. the message imprint is SHA-256 and equals the SHA-256 of the expected bytes; the nonce
//!    is the one sent, if one was; the policy is the required one, if one is; the `tsa` name,
//!    if present, is a name of the signer's certificate (RFC 3161 §2.4.2).

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::alg::{self, Digest, SignatureProblem};
use crate::asn1::{self, Malformed, context, u64_contents};
use crate::cert::{Cert, CertProblem};
use crate::chain::{self, ChainError};
use crate::cms::{self, EssCertId, SignerId, Token};
use crate::oid;
use crate::policy::TsaPolicy;
use crate::roots::TsaRoots;
use crate::text::quote;
use crate::time::{Accuracy, GenTime};
use crate::tst_info::TstInfo;

/// Tokens larger than this are refused before parsing.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// Why a token was refused. Names from certificates are quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("the time-stamp token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("the time-stamp token is malformed: {0}")]
    Malformed(#[from] Malformed),
    #[error("a certificate in the time-stamp token is malformed: {0}")]
    MalformedCertificate(CertProblem),
    #[error("the token's content is not a TSTInfo (RFC 3161 §2.4.2)")]
    NotTstInfo,
    #[error("the signer's digest algorithm {0} is not accepted (SHA-256, SHA-384 or SHA-512)")]
    UnsupportedDigest(String),
    #[error("the signature algorithm {0} is not accepted with this key and digest")]
    UnsupportedSignature(String),
    #[error("the signed attributes have no contentType id-ct-TSTInfo")]
    ContentTypeAttribute,
    #[error("the signed messageDigest is not the digest of the token's TSTInfo: the TSTInfo was altered")]
    MessageDigest,
    #[error("no certificate in the token or among the configured roots matches the signer identifier")]
    SignerNotFound,
    #[error("the signer's certificate {subject} was refused: {problem}")]
    SignerCertificate { subject: String, problem: CertProblem },
    #[error("the TSA's signature over the signed attributes does not verify")]
    BadSignature,
    #[error("the signing-certificate attribute does not name the signer's certificate: {0}")]
    SigningCertificate(&'static str),
    #[error("the signer's certificate {subject} is not a time-stamping certificate: {reason}")]
    NotTimeStamping { subject: String, reason: &'static str },
    #[error("the TSA's certificate does not chain to a configured root: {0}")]
    Chain(ChainError),
    #[error("the message imprint is not SHA-256 (algorithm {0})")]
    ImprintAlgorithm(String),
    #[error("the token stamps other bytes: its message imprint is not the SHA-256 of the bytes given")]
    ImprintMismatch,
    #[error("the token carries no nonce, but the request sent one")]
    NonceMissing,
    #[error("the token's nonce is not the one the request sent")]
    NonceMismatch,
    #[error("the token's policy is {found}, not the required {expected}")]
    Policy { expected: String, found: String },
    #[error("the token names its TSA {name}, which is not a name of the signer's certificate")]
    TsaName { name: String },
    #[error("the TSTInfo has a critical extension, which this verifier does not process")]
    CriticalExtension,
}

/// A token that passed every check of [`TsaVerifier::verify`] for the bytes it was given.
/// Only that function makes one: holding one is proof that the check ran.
///
/// The names are as the certificates wrote them; quote them before printing
/// ([`crate::text::quote`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTimestamp {
    gen_time: GenTime,
    accuracy: Option<Accuracy>,
    serial: Vec<u8>,
    policy: String,
    imprint: [u8; 32],
    nonce: Option<Vec<u8>>,
    tsa_name: Option<String>,
    signer: String,
    root: String,
}

impl VerifiedTimestamp {
    /// When the TSA says the bytes existed (at the latest).
    pub fn gen_time(&self) -> GenTime {
        self.gen_time
    }

    /// How far the true time may be from `gen_time`, if the TSA said.
    pub fn accuracy(&self) -> Option<Accuracy> {
        self.accuracy
    }

    /// The token's serial number: unsigned, big-endian, minimal.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The serial number in lowercase hex.
    pub fn serial_hex(&self) -> String {
        self.serial.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The TSA's policy, dotted.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// The SHA-256 the token stamps: that of the bytes it was verified against.
    pub fn imprint(&self) -> &[u8; 32] {
        &self.imprint
    }

    /// The nonce's INTEGER contents, if the token has one.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_deref()
    }

    /// The TSA's name from the token (checked to be a name of its certificate), if present.
    pub fn tsa_name(&self) -> Option<&str> {
        self.tsa_name.as_deref()
    }

    /// The subject of the certificate that signed the token.
    pub fn signer(&self) -> &str {
        &self.signer
    }

    /// The subject of the configured root the signer's certificate chains to.
    pub fn root(&self) -> &str {
        &self.root
    }
}

#[cfg(test)]
impl VerifiedTimestamp {
    /// A stand-in with only a time, for the unit tests of the ordering rule.
    pub(crate) fn at(gen_time: GenTime) -> Self {
        VerifiedTimestamp {
            gen_time,
            accuracy: None,
            serial: vec![1],
            policy: String::new(),
            imprint: [0; 32],
            nonce: None,
            tsa_name: None,
            signer: String::new(),
            root: String::new(),
        }
    }
}

/// Verifies time-stamp tokens against configured roots (`tsa_cert`) and, optionally, a
/// required policy.
#[derive(Debug, Clone)]
pub struct TsaVerifier {
    roots: TsaRoots,
    policy: Option<TsaPolicy>,
}

impl TsaVerifier {
    pub fn new(roots: TsaRoots) -> Self {
        TsaVerifier { roots, policy: None }
    }

    /// Tokens must carry this policy.
    pub fn require_policy(mut self, policy: TsaPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Verifies `token` as a time-stamp of `message` (its SHA-256 is the imprint). `nonce` is
    /// the nonce the request sent, when the token is fresh from the TSA; `None` when checking a
    /// stored token later (the nonce then proves nothing).
    pub fn verify(
        &self,
        token: &[u8],
        message: &[u8],
        nonce: Option<u64>,
    ) -> Result<VerifiedTimestamp, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let parsed = Token::parse(token)?;
        if parsed.content_type != oid::CT_TST_INFO {
            return Err(TokenError::NotTstInfo);
        }
        let tst = TstInfo::parse(parsed.tst_info)?;
        let si = &parsed.signer;

        // 2. The signed attributes bind the TSTInfo bytes.
        let digest = cms::signer_digest(&si.digest_alg)
            .ok_or_else(|| TokenError::UnsupportedDigest(si.digest_alg.to_string()))?;
        if si.attrs.content_type != Some(oid::CT_TST_INFO) {
            return Err(TokenError::ContentTypeAttribute);
        }
        let md = si.attrs.message_digest.ok_or(TokenError::MessageDigest)?;
        if md != digest.hash(parsed.tst_info).as_ref() {
            return Err(TokenError::MessageDigest);
        }

        // 3. The signer's certificate and its signature.
        let mut pool = Vec::with_capacity(parsed.certificates.len() + self.roots.len());
        for der in parsed.certificates.iter().copied() {
            pool.push(Cert::parse(der).map_err(TokenError::MalformedCertificate)?);
        }
        for der in self.roots.der_certs() {
            pool.push(Cert::parse(der).map_err(TokenError::MalformedCertificate)?);
        }
        let signer = find_signer(&pool, si.sid, &si.attrs)?;
        let subject = || quote(&signer.subject());
        signer
            .check_extensions()
            .map_err(|problem| TokenError::SignerCertificate { subject: subject(), problem })?;
        let key = signer
            .public_key()
            .map_err(|problem| TokenError::SignerCertificate { subject: subject(), problem })?;
        let unsupported = || TokenError::UnsupportedSignature(si.signature_alg.to_string());
        let (family, sig_digest) = alg::signature_algorithm(&si.signature_alg).ok_or_else(unsupported)?;
        if sig_digest.is_some_and(|d| d != digest) {
            return Err(unsupported());
        }
        // RFC 5652 §5.4: the signature is over the DER of the attributes with an explicit
        // SET OF tag, not the [0] IMPLICIT tag they travel under.
        let mut signed = si.signed_attrs_raw.to_vec();
        if let Some(first) = signed.first_mut() {
            *first = 0x31;
        }
        match alg::verify(key, family, digest, &signed, si.signature) {
            Ok(()) => {}
            Err(SignatureProblem::Invalid | SignatureProblem::WrongKeyKind) => {
                return Err(TokenError::BadSignature);
            }
            Err(SignatureProblem::Unsupported) => return Err(unsupported()),
        }

        // 4. The ESS attribute names the same certificate.
        check_signing_certificate(&si.attrs, signer).map_err(TokenError::SigningCertificate)?;

        // 5. A time-stamping certificate.
        signer
            .check_time_stamping()
            .map_err(|reason| TokenError::NotTimeStamping { subject: subject(), reason })?;

        // 6. Chained to a configured root, valid at genTime.
        let root = chain::to_root(signer, &pool, &self.roots, tst.gen_time).map_err(TokenError::Chain)?;

        // 7. What the TSA states.
        if tst.critical_extension {
            return Err(TokenError::CriticalExtension);
        }
        if tst.imprint_alg != oid::SHA256 {
            return Err(TokenError::ImprintAlgorithm(tst.imprint_alg.to_string()));
        }
        let expected = Digest::Sha256.hash(message);
        if tst.imprint != expected.as_ref() {
            return Err(TokenError::ImprintMismatch);
        }
        let mut imprint = [0u8; 32];
        imprint.copy_from_slice(expected.as_ref());
        if let Some(sent) = nonce {
            match tst.nonce {
                None => return Err(TokenError::NonceMissing),
                Some(n) if n != u64_contents(sent).as_slice() => return Err(TokenError::NonceMismatch),
                Some(_) => {}
            }
        }
        if let Some(p) = &self.policy
            && tst.policy != p.0
        {
            return Err(TokenError::Policy { expected: p.to_string(), found: tst.policy.to_string() });
        }
        let tsa_name = match tst.tsa {
            Some(raw) => Some(tsa_name(raw, signer)?),
            None => None,
        };
        Ok(VerifiedTimestamp {
            gen_time: tst.gen_time,
            accuracy: tst.accuracy,
            serial: tst.serial.to_vec(),
            policy: tst.policy.to_string(),
            imprint,
            nonce: tst.nonce.map(<[u8]>::to_vec),
            tsa_name,
            signer: signer.subject(),
            root,
        })
    }
}

/// The certificate the signer identifier names. If several do (the same certificate in the
/// token and among the roots, or a decoy), the one the ESS attribute names is preferred.
fn find_signer<'p, 'a>(
    pool: &'p [Cert<'a>],
    sid: SignerId<'_>,
    attrs: &cms::SignedAttrs<'_>,
) -> Result<&'p Cert<'a>, TokenError> {
    let named = |c: &&Cert<'a>| match sid {
        SignerId::IssuerSerial { issuer, serial } => c.issuer_raw() == issuer && c.serial() == serial,
        SignerId::KeyId(id) => c.subject_key_id() == Some(id),
    };
    let mut candidates = pool.iter().filter(named);
    let first = candidates.next().ok_or(TokenError::SignerNotFound)?;
    if check_signing_certificate(attrs, first).is_ok() {
        return Ok(first);
    }
    Ok(candidates.find(|c| check_signing_certificate(attrs, c).is_ok()).unwrap_or(first))
}

/// RFC 2634 §5.4 / RFC 5035 §3: the first identifier of each signing-certificate attribute
/// present names `cert`.
fn check_signing_certificate(attrs: &cms::SignedAttrs<'_>, cert: &Cert<'_>) -> Result<(), &'static str> {
    let lists = [attrs.signing_cert.as_deref(), attrs.signing_cert_v2.as_deref()];
    if lists.iter().all(Option::is_none) {
        return Err("the token has no signing-certificate attribute (RFC 3161 §2.4.1 requires one)");
    }
    for ids in lists.into_iter().flatten() {
        let Some(first) = ids.first() else { return Err("the attribute names no certificate") };
        check_ess_id(first, cert)?;
    }
    Ok(())
}

fn check_ess_id(id: &EssCertId<'_>, cert: &Cert<'_>) -> Result<(), &'static str> {
    let digest = Digest::from_oid(&id.hash_alg).ok_or("its hash algorithm is not SHA-1 or SHA-2")?;
    if id.hash != digest.hash(cert.der()).as_ref() {
        return Err("its certificate hash is not that of the signer's certificate");
    }
    if let Some(is) = &id.issuer_serial {
        if is.serial != cert.serial() {
            return Err("its serial number is not that of the signer's certificate");
        }
        let names_issuer = is.names.iter().any(|raw| {
            asn1::single(raw, context(4, true), "directoryName")
                .and_then(|dn| asn1::single(dn.value, der::Tag::Sequence, "directoryName"))
                .is_ok_and(|name| name.raw == cert.issuer_raw())
        });
        if !names_issuer {
            return Err("its issuer is not that of the signer's certificate");
        }
    }
    Ok(())
}

/// The `tsa` GeneralName, which RFC 3161 §2.4.2 says must be a name of the signer's
/// certificate, as text.
fn tsa_name(raw: &[u8], signer: &Cert<'_>) -> Result<String, TokenError> {
    let name = match GeneralName::from_der(raw) {
        Ok(([], name)) => name,
        _ => return Err(asn1::malformed("TSTInfo.tsa", "not a GeneralName").into()),
    };
    let text = match &name {
        GeneralName::DirectoryName(n) => n.to_string(),
        GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => (*s).to_owned(),
        other => other.to_string(),
    };
    if !signer.has_name(&name) {
        return Err(TokenError::TsaName { name: quote(&text) });
    }
    Ok(text)
}
