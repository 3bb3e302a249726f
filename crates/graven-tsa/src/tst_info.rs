//! `TSTInfo` (RFC 3161 §2.4.2): what the TSA states, read into borrowed parts.
//!
//! ```text
//! TSTInfo ::= SEQUENCE {
//!    version          INTEGER { v1(1) },
//!    policy           TSAPolicyId,
//!    messageImprint   MessageImprint,
//!    serialNumber     INTEGER,
//!    genTime          GeneralizedTime,
//!    accuracy         Accuracy OPTIONAL,
//!    ordering         BOOLEAN DEFAULT FALSE,
//!    nonce            INTEGER OPTIONAL,
//!    tsa              [0] GeneralName OPTIONAL,
//!    extensions       [1] IMPLICIT Extensions OPTIONAL }
//! ```

use der::Tag;
use der::asn1::ObjectIdentifier as Oid;

use crate::asn1::{self, Cursor, Malformed, Tlv, context, malformed};
use crate::time::{Accuracy, GenTime};

/// At most this many TSTInfo extensions.
const MAX_EXTENSIONS: usize = 16;

#[derive(Debug)]
pub(crate) struct TstInfo<'a> {
    pub(crate) policy: Oid,
    pub(crate) imprint_alg: Oid,
    pub(crate) imprint: &'a [u8],
    /// The serial's INTEGER contents (non-negative, minimal).
    pub(crate) serial: &'a [u8],
    pub(crate) gen_time: GenTime,
    pub(crate) accuracy: Option<Accuracy>,
    /// The nonce's INTEGER contents, as received.
    pub(crate) nonce: Option<&'a [u8]>,
    /// The GeneralName inside `tsa [0]`, header included.
    pub(crate) tsa: Option<&'a [u8]>,
    /// Whether an extension is marked critical (none is understood here).
    pub(crate) critical_extension: bool,
}

impl<'a> TstInfo<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, Malformed> {
        let tst = asn1::single(bytes, Tag::Sequence, "TSTInfo")?;
        let mut c = Cursor::inside(tst);
        if asn1::small_unsigned(c.next("TSTInfo.version")?, "TSTInfo.version")? != 1 {
            return Err(malformed("TSTInfo.version", "not v1"));
        }
        let policy = asn1::oid(c.next("TSTInfo.policy")?, "TSTInfo.policy")?;
        let (imprint_alg, imprint) = message_imprint(c.expect(Tag::Sequence, "TSTInfo.messageImprint")?)?;
        let serial = asn1::unsigned(c.next("TSTInfo.serialNumber")?, "TSTInfo.serialNumber")?;
        let gen_time = GenTime::parse(c.expect(Tag::GeneralizedTime, "TSTInfo.genTime")?.value)?;
        let accuracy = match c.optional(Tag::Sequence, "TSTInfo.accuracy")? {
            Some(a) => Some(accuracy(a)?),
            None => None,
        };
        if let Some(o) = c.optional(Tag::Boolean, "TSTInfo.ordering")? {
            asn1::boolean(o, "TSTInfo.ordering")?;
        }
        let nonce = match c.optional(Tag::Integer, "TSTInfo.nonce")? {
            Some(n) => Some(asn1::integer(n, "TSTInfo.nonce")?),
            None => None,
        };
        let tsa = match c.optional(context(0, true), "TSTInfo.tsa")? {
            Some(t) => {
                let mut inner = Cursor::inside(t);
                let name = inner.next("TSTInfo.tsa")?;
                inner.finish("TSTInfo.tsa")?;
                Some(name.raw)
            }
            None => None,
        };
        let critical_extension = match c.optional(context(1, true), "TSTInfo.extensions")? {
            Some(e) => any_critical(e)?,
            None => false,
        };
        c.finish("TSTInfo")?;
        Ok(TstInfo {
            policy,
            imprint_alg,
            imprint,
            serial,
            gen_time,
            accuracy,
            nonce,
            tsa,
            critical_extension,
        })
    }
}

/// `MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING }`
pub(crate) fn message_imprint(mi: Tlv<'_>) -> Result<(Oid, &[u8]), Malformed> {
    let mut c = Cursor::inside(mi);
    let alg = asn1::algorithm(c.next("messageImprint.hashAlgorithm")?, "messageImprint.hashAlgorithm")?;
    let hash = asn1::octets(c.next("messageImprint.hashedMessage")?, "messageImprint.hashedMessage")?;
    c.finish("messageImprint")?;
    Ok((alg, hash))
}

/// `Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER (1..999) OPTIONAL,
/// micros [1] INTEGER (1..999) OPTIONAL }` (the module uses implicit tags).
fn accuracy(a: Tlv<'_>) -> Result<Accuracy, Malformed> {
    let mut c = Cursor::inside(a);
    let mut field = |tag, what| -> Result<Option<u64>, Malformed> {
        match c.optional(tag, what)? {
            Some(t) => asn1::small_unsigned(Tlv { tag: Tag::Integer, ..t }, what).map(Some),
            None => Ok(None),
        }
    };
    let seconds = field(Tag::Integer, "TSTInfo.accuracy.seconds")?;
    let millis = field(context(0, false), "TSTInfo.accuracy.millis")?;
    let micros = field(context(1, false), "TSTInfo.accuracy.micros")?;
    c.finish("TSTInfo.accuracy")?;
    if millis == Some(0) || micros == Some(0) {
        return Err(malformed("TSTInfo.accuracy", "millis and micros must be 1 to 999"));
    }
    Accuracy::new(seconds.unwrap_or(0), millis.unwrap_or(0), micros.unwrap_or(0))
}

/// `Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension`, `Extension ::= SEQUENCE { extnID,
/// critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }`: whether any is critical.
fn any_critical(exts: Tlv<'_>) -> Result<bool, Malformed> {
    let mut c = Cursor::inside(exts);
    let mut critical = false;
    let mut count = 0;
    while !c.is_empty() {
        count += 1;
        if count > MAX_EXTENSIONS {
            return Err(malformed("TSTInfo.extensions", "more than 16 extensions"));
        }
        let mut e = Cursor::inside(c.expect(Tag::Sequence, "TSTInfo extension")?);
        asn1::oid(e.next("TSTInfo extension id")?, "TSTInfo extension id")?;
        if let Some(b) = e.optional(Tag::Boolean, "TSTInfo extension critical")? {
            critical |= asn1::boolean(b, "TSTInfo extension critical")?;
        }
        asn1::octets(e.next("TSTInfo extension value")?, "TSTInfo extension value")?;
        e.finish("TSTInfo extension")?;
    }
    Ok(critical)
}
