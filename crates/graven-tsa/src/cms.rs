//! The `TimeStampToken`: a CMS `ContentInfo` holding `SignedData` (RFC 5652 §3, §5; RFC 3161
//! §2.4.2), read into borrowed parts. Nothing is checked here beyond the structure; `verify`
//! does the checking.

use der::Tag;
use der::asn1::ObjectIdentifier as Oid;

use crate::alg::Digest;
use crate::asn1::{self, Cursor, Malformed, Tlv, context, malformed};
use crate::oid;

/// At most this many certificates in a token (a TSA sends its own and perhaps a chain).
pub(crate) const MAX_CERTS: usize = 16;
/// At most this many signed attributes (OpenSSL writes four).
pub(crate) const MAX_SIGNED_ATTRS: usize = 32;
/// At most this many `ESSCertID`s in a signing-certificate attribute.
const MAX_ESS_IDS: usize = 16;
/// At most this many digest algorithms listed in `SignedData`.
const MAX_DIGEST_ALGS: usize = 8;
/// At most this many names in an `IssuerSerial`.
const MAX_NAMES: usize = 8;

/// The parts of a time-stamp token that verification reads.
#[derive(Debug)]
pub(crate) struct Token<'a> {
    /// The encapsulated content type (must be id-ct-TSTInfo).
    pub(crate) content_type: Oid,
    /// The DER of the TSTInfo, as received (the contents of `eContent`).
    pub(crate) tst_info: &'a [u8],
    /// Each certificate of `certificates`, as received.
    pub(crate) certificates: Vec<&'a [u8]>,
    pub(crate) signer: SignerInfo<'a>,
}

/// How the signer info names its certificate (RFC 5652 §5.3 `SignerIdentifier`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum SignerId<'a> {
    /// The issuer's `Name` (header included) and the serial's INTEGER contents.
    IssuerSerial { issuer: &'a [u8], serial: &'a [u8] },
    /// A subject key identifier.
    KeyId(&'a [u8]),
}

#[derive(Debug)]
pub(crate) struct SignerInfo<'a> {
    pub(crate) sid: SignerId<'a>,
    pub(crate) digest_alg: Oid,
    /// The `[0] IMPLICIT` signed attributes, as received (first byte `0xA0`).
    pub(crate) signed_attrs_raw: &'a [u8],
    pub(crate) attrs: SignedAttrs<'a>,
    pub(crate) signature_alg: Oid,
    pub(crate) signature: &'a [u8],
}

/// The signed attributes verification needs. Each attribute type appears at most once.
#[derive(Debug, Default)]
pub(crate) struct SignedAttrs<'a> {
    pub(crate) content_type: Option<Oid>,
    pub(crate) message_digest: Option<&'a [u8]>,
    /// RFC 2634 §5.4 `SigningCertificate`'s `ESSCertID`s (SHA-1).
    pub(crate) signing_cert: Option<Vec<EssCertId<'a>>>,
    /// RFC 5035 §3 `SigningCertificateV2`'s `ESSCertIDv2`s.
    pub(crate) signing_cert_v2: Option<Vec<EssCertId<'a>>>,
}

/// One `ESSCertID` or `ESSCertIDv2`.
#[derive(Debug)]
pub(crate) struct EssCertId<'a> {
    /// The digest algorithm's OID (SHA-1 for v1; SHA-256 when v2 leaves it out).
    pub(crate) hash_alg: Oid,
    pub(crate) hash: &'a [u8],
    pub(crate) issuer_serial: Option<IssuerSerial<'a>>,
}

/// RFC 2634 §5.4.1 `IssuerSerial`: the issuer's names (each GeneralName, header included) and
/// the serial's INTEGER contents.
#[derive(Debug)]
pub(crate) struct IssuerSerial<'a> {
    pub(crate) names: Vec<&'a [u8]>,
    pub(crate) serial: &'a [u8],
}

impl<'a> Token<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, Malformed> {
        // ContentInfo ::= SEQUENCE { contentType, content [0] EXPLICIT ANY }
        let ci = asn1::single(bytes, Tag::Sequence, "ContentInfo")?;
        let mut c = Cursor::inside(ci);
        if asn1::oid(c.next("ContentInfo.contentType")?, "ContentInfo.contentType")? != oid::SIGNED_DATA {
            return Err(malformed("ContentInfo.contentType", "not id-signedData"));
        }
        let explicit = c.expect(context(0, true), "ContentInfo.content")?;
        c.finish("ContentInfo")?;
        let sd = asn1::single(explicit.value, Tag::Sequence, "SignedData")?;
        Self::signed_data(sd)
    }

    fn signed_data(sd: Tlv<'a>) -> Result<Self, Malformed> {
        let mut c = Cursor::inside(sd);
        let version = asn1::small_unsigned(c.next("SignedData.version")?, "SignedData.version")?;
        if !matches!(version, 1 | 3 | 4 | 5) {
            return Err(malformed("SignedData.version", "not a CMSVersion of SignedData"));
        }
        let digests = c.expect(Tag::Set, "SignedData.digestAlgorithms")?;
        let mut d = Cursor::inside(digests);
        for _ in 0..MAX_DIGEST_ALGS {
            if d.is_empty() {
                break;
            }
            asn1::algorithm_with_params(
                d.next("SignedData.digestAlgorithms")?,
                "SignedData.digestAlgorithms",
            )?;
        }
        d.finish("SignedData.digestAlgorithms (too many)")?;

        // EncapsulatedContentInfo ::= SEQUENCE { eContentType, eContent [0] EXPLICIT OCTET STRING }
        let eci = c.expect(Tag::Sequence, "SignedData.encapContentInfo")?;
        let mut e = Cursor::inside(eci);
        let content_type = asn1::oid(e.next("eContentType")?, "eContentType")?;
        let wrapped = e.expect(context(0, true), "eContent")?;
        e.finish("encapContentInfo")?;
        let tst_info = asn1::octets(asn1::single(wrapped.value, Tag::OctetString, "eContent")?, "eContent")?;

        let mut certificates = Vec::new();
        if let Some(set) = c.optional(context(0, true), "SignedData.certificates")? {
            let mut s = Cursor::inside(set);
            while !s.is_empty() {
                if certificates.len() == MAX_CERTS {
                    return Err(malformed("SignedData.certificates", "more than 16 certificates"));
                }
                // Only plain X.509 certificates; the other CertificateChoices are refused.
                certificates.push(s.expect(Tag::Sequence, "SignedData.certificates")?.raw);
            }
        }
        // Revocation information is not used: skipped as one element.
        c.optional(context(1, true), "SignedData.crls")?;

        let infos = c.expect(Tag::Set, "SignedData.signerInfos")?;
        c.finish("SignedData")?;
        // RFC 3161 §2.4.2: the token carries the TSA's signature and no other.
        let signer =
            SignerInfo::parse(asn1::single(infos.value, Tag::Sequence, "SignerInfo (exactly one)")?)?;
        Ok(Token { content_type, tst_info, certificates, signer })
    }
}

impl<'a> SignerInfo<'a> {
    fn parse(si: Tlv<'a>) -> Result<Self, Malformed> {
        let mut c = Cursor::inside(si);
        let version = asn1::small_unsigned(c.next("SignerInfo.version")?, "SignerInfo.version")?;
        let sid_tlv = c.next("SignerInfo.sid")?;
        let sid = match (version, sid_tlv.tag) {
            (1, Tag::Sequence) => {
                let mut s = Cursor::inside(sid_tlv);
                let issuer = s.expect(Tag::Sequence, "SignerInfo.sid.issuer")?.raw;
                let serial =
                    asn1::integer(s.next("SignerInfo.sid.serialNumber")?, "SignerInfo.sid.serialNumber")?;
                s.finish("SignerInfo.sid")?;
                SignerId::IssuerSerial { issuer, serial }
            }
            (3, t) if t == context(0, false) => SignerId::KeyId(sid_tlv.value),
            _ => return Err(malformed("SignerInfo.sid", "does not match SignerInfo.version")),
        };
        let digest_alg =
            asn1::algorithm(c.next("SignerInfo.digestAlgorithm")?, "SignerInfo.digestAlgorithm")?;
        // RFC 3161 tokens sign TSTInfo, not id-data, so signed attributes are required (RFC 5652 §5.3).
        let attrs_tlv = c.expect(context(0, true), "SignerInfo.signedAttrs")?;
        let attrs = SignedAttrs::parse(attrs_tlv)?;
        let signature_alg =
            asn1::algorithm(c.next("SignerInfo.signatureAlgorithm")?, "SignerInfo.signatureAlgorithm")?;
        let signature = asn1::octets(c.next("SignerInfo.signature")?, "SignerInfo.signature")?;
        // Unsigned attributes (such as counter-signatures) are not used: skipped as one element.
        c.optional(context(1, true), "SignerInfo.unsignedAttrs")?;
        c.finish("SignerInfo")?;
        Ok(SignerInfo { sid, digest_alg, signed_attrs_raw: attrs_tlv.raw, attrs, signature_alg, signature })
    }
}

impl<'a> SignedAttrs<'a> {
    fn parse(set: Tlv<'a>) -> Result<Self, Malformed> {
        let mut out = SignedAttrs::default();
        let mut seen: Vec<Oid> = Vec::new();
        let mut c = Cursor::inside(set);
        while !c.is_empty() {
            if seen.len() == MAX_SIGNED_ATTRS {
                return Err(malformed("SignerInfo.signedAttrs", "more than 32 attributes"));
            }
            // Attribute ::= SEQUENCE { attrType, attrValues SET OF AttributeValue }
            let attr = c.expect(Tag::Sequence, "signed attribute")?;
            let mut a = Cursor::inside(attr);
            let kind = asn1::oid(a.next("signed attribute type")?, "signed attribute type")?;
            let values = a.expect(Tag::Set, "signed attribute values")?;
            a.finish("signed attribute")?;
            if seen.contains(&kind) {
                return Err(malformed("SignerInfo.signedAttrs", "an attribute type appears twice"));
            }
            seen.push(kind);
            match kind {
                oid::CONTENT_TYPE => {
                    let v = asn1::single(
                        values.value,
                        Tag::ObjectIdentifier,
                        "contentType attribute (one value)",
                    )?;
                    out.content_type = Some(asn1::oid(v, "contentType attribute")?);
                }
                oid::MESSAGE_DIGEST => {
                    let v =
                        asn1::single(values.value, Tag::OctetString, "messageDigest attribute (one value)")?;
                    out.message_digest = Some(v.value);
                }
                oid::SIGNING_CERTIFICATE => {
                    let v = asn1::single(
                        values.value,
                        Tag::Sequence,
                        "signingCertificate attribute (one value)",
                    )?;
                    out.signing_cert = Some(signing_certificate(v, false)?);
                }
                oid::SIGNING_CERTIFICATE_V2 => {
                    let v = asn1::single(
                        values.value,
                        Tag::Sequence,
                        "signingCertificateV2 attribute (one value)",
                    )?;
                    out.signing_cert_v2 = Some(signing_certificate(v, true)?);
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// `SigningCertificate` / `SigningCertificateV2`: `SEQUENCE { certs SEQUENCE OF ESSCertID[v2],
/// policies OPTIONAL }`. The policies are not used.
fn signing_certificate(v: Tlv<'_>, v2: bool) -> Result<Vec<EssCertId<'_>>, Malformed> {
    let what = if v2 { "SigningCertificateV2" } else { "SigningCertificate" };
    let mut c = Cursor::inside(v);
    let certs = c.expect(Tag::Sequence, what)?;
    c.optional(Tag::Sequence, what)?;
    c.finish(what)?;
    let mut ids = Vec::new();
    let mut s = Cursor::inside(certs);
    while !s.is_empty() {
        if ids.len() == MAX_ESS_IDS {
            return Err(malformed(what, "more than 16 certificate identifiers"));
        }
        let id = s.expect(Tag::Sequence, what)?;
        let mut i = Cursor::inside(id);
        // ESSCertIDv2's hashAlgorithm is DEFAULT id-sha256; ESSCertID's hash is SHA-1.
        let hash_alg = match i.optional(Tag::Sequence, "ESSCertIDv2.hashAlgorithm")? {
            Some(alg) if v2 => asn1::algorithm(alg, "ESSCertIDv2.hashAlgorithm")?,
            Some(_) => return Err(malformed("ESSCertID", "unexpected hash algorithm")),
            None if v2 => oid::SHA256,
            None => oid::SHA1,
        };
        let hash = asn1::octets(i.next("ESSCertID.certHash")?, "ESSCertID.certHash")?;
        let issuer_serial = match i.optional(Tag::Sequence, "ESSCertID.issuerSerial")? {
            Some(is) => Some(issuer_serial(is)?),
            None => None,
        };
        i.finish("ESSCertID")?;
        ids.push(EssCertId { hash_alg, hash, issuer_serial });
    }
    if ids.is_empty() {
        return Err(malformed(what, "no certificate identifier"));
    }
    Ok(ids)
}

fn issuer_serial(is: Tlv<'_>) -> Result<IssuerSerial<'_>, Malformed> {
    let mut c = Cursor::inside(is);
    let general_names = c.expect(Tag::Sequence, "IssuerSerial.issuer")?;
    let serial = asn1::integer(c.next("IssuerSerial.serialNumber")?, "IssuerSerial.serialNumber")?;
    c.finish("IssuerSerial")?;
    let mut names = Vec::new();
    let mut n = Cursor::inside(general_names);
    while !n.is_empty() {
        if names.len() == MAX_NAMES {
            return Err(malformed("IssuerSerial.issuer", "more than 8 names"));
        }
        names.push(n.next("IssuerSerial.issuer")?.raw);
    }
    Ok(IssuerSerial { names, serial })
}

/// The signer info's digest algorithm, if it is one accepted for signatures (not SHA-1).
pub(crate) fn signer_digest(alg: &Oid) -> Option<Digest> {
    Digest::from_oid(alg).filter(|d| *d != Digest::Sha1)
}
