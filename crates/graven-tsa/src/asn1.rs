//! A strict DER cursor: one element at a time, over the `der` crate's header decoding.
//!
//! `der` decodes each tag and length under DER's rules (definite, minimal lengths; no
//! constructed forms of primitive universal types); this module adds the few value checks the
//! time-stamp structures need (minimal INTEGERs, DER BOOLEANs, OIDs). Nothing here recurses:
//! the structures are walked by fixed code, so nesting depth is bounded by the code, not by the
//! input, and every loop over a `SET OF` or `SEQUENCE OF` is bounded by its caller.

use der::asn1::ObjectIdentifier;
use der::{Decode, Header, Reader, SliceReader, Tag, TagNumber};

/// Bytes that are not the structure they should be. `what` names the field (for example
/// `"TSTInfo.genTime"`), `why` says what is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {why}")]
pub struct Malformed {
    pub what: &'static str,
    pub why: &'static str,
}

pub(crate) fn malformed(what: &'static str, why: &'static str) -> Malformed {
    Malformed { what, why }
}

/// One DER element: its tag, its contents, and all of its bytes (header included) as received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub(crate) tag: Tag,
    pub(crate) value: &'a [u8],
    pub(crate) raw: &'a [u8],
}

/// A context-specific tag `[n]`, constructed or not.
pub(crate) const fn context(number: u32, constructed: bool) -> Tag {
    Tag::ContextSpecific { constructed, number: TagNumber(number) }
}

/// Walks the elements of a constructed value (or of a whole buffer) in order.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { rest: bytes }
    }

    /// The contents of `tlv`, to be walked.
    pub(crate) fn inside(tlv: Tlv<'a>) -> Self {
        Cursor { rest: tlv.value }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element, whatever its tag.
    pub(crate) fn next(&mut self, what: &'static str) -> Result<Tlv<'a>, Malformed> {
        if self.rest.is_empty() {
            return Err(malformed(what, "missing"));
        }
        let bad = |_| malformed(what, "not valid DER (tag or length)");
        let mut reader = SliceReader::new(self.rest).map_err(bad)?;
        let header = Header::decode(&mut reader).map_err(bad)?;
        let header_len =
            usize::try_from(u32::from(reader.position())).map_err(|_| malformed(what, "too long"))?;
        let body_len =
            usize::try_from(u32::from(header.length())).map_err(|_| malformed(what, "too long"))?;
        let total = header_len.checked_add(body_len).ok_or(malformed(what, "too long"))?;
        let raw = self.rest.get(..total).ok_or(malformed(what, "truncated"))?;
        let value = raw.get(header_len..).ok_or(malformed(what, "truncated"))?;
        self.rest = self.rest.get(total..).unwrap_or_default();
        Ok(Tlv { tag: header.tag(), value, raw })
    }

    /// The next element, which must have tag `tag`.
    pub(crate) fn expect(&mut self, tag: Tag, what: &'static str) -> Result<Tlv<'a>, Malformed> {
        let tlv = self.next(what)?;
        if tlv.tag != tag {
            return Err(malformed(what, "unexpected tag"));
        }
        Ok(tlv)
    }

    /// The next element if it has tag `tag` (an OPTIONAL or DEFAULT field), else nothing.
    pub(crate) fn optional(&mut self, tag: Tag, what: &'static str) -> Result<Option<Tlv<'a>>, Malformed> {
        if self.peek_tag() == Some(tag) { self.expect(tag, what).map(Some) } else { Ok(None) }
    }

    /// The tag of the next element, if there is one and its tag decodes.
    pub(crate) fn peek_tag(&self) -> Option<Tag> {
        let mut reader = SliceReader::new(self.rest).ok()?;
        Header::decode(&mut reader).ok().map(|h| h.tag())
    }

    /// Fails if anything is left: every structure here is read to its end.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), Malformed> {
        if self.rest.is_empty() { Ok(()) } else { Err(malformed(what, "unexpected trailing data")) }
    }
}

/// `bytes` holds exactly one element, with tag `tag`.
pub(crate) fn single<'a>(bytes: &'a [u8], tag: Tag, what: &'static str) -> Result<Tlv<'a>, Malformed> {
    let mut c = Cursor::new(bytes);
    let tlv = c.expect(tag, what)?;
    c.finish(what)?;
    Ok(tlv)
}

pub(crate) fn oid(tlv: Tlv<'_>, what: &'static str) -> Result<ObjectIdentifier, Malformed> {
    if tlv.tag != Tag::ObjectIdentifier {
        return Err(malformed(what, "not an OBJECT IDENTIFIER"));
    }
    ObjectIdentifier::from_bytes(tlv.value).map_err(|_| malformed(what, "not a valid OBJECT IDENTIFIER"))
}

/// A non-negative INTEGER in minimal form; returns its magnitude, big-endian, without the sign
/// byte (`[0]` for zero).
pub(crate) fn unsigned<'a>(tlv: Tlv<'a>, what: &'static str) -> Result<&'a [u8], Malformed> {
    if tlv.tag != Tag::Integer {
        return Err(malformed(what, "not an INTEGER"));
    }
    match tlv.value {
        [] => Err(malformed(what, "empty INTEGER")),
        [0] => Ok(tlv.value),
        [0, next, ..] if *next < 0x80 => Err(malformed(what, "INTEGER not in minimal form")),
        [0, rest @ ..] => Ok(rest),
        [first, ..] if *first >= 0x80 => Err(malformed(what, "negative INTEGER")),
        _ => Ok(tlv.value),
    }
}

/// A non-negative INTEGER that fits in a `u64`.
pub(crate) fn small_unsigned(tlv: Tlv<'_>, what: &'static str) -> Result<u64, Malformed> {
    let magnitude = unsigned(tlv, what)?;
    if magnitude.len() > 8 {
        return Err(malformed(what, "INTEGER out of range"));
    }
    Ok(magnitude.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// An INTEGER of any sign in minimal form; returns its two's-complement contents.
pub(crate) fn integer<'a>(tlv: Tlv<'a>, what: &'static str) -> Result<&'a [u8], Malformed> {
    if tlv.tag != Tag::Integer {
        return Err(malformed(what, "not an INTEGER"));
    }
    match tlv.value {
        [] => Err(malformed(what, "empty INTEGER")),
        [0, next, ..] if *next < 0x80 => Err(malformed(what, "INTEGER not in minimal form")),
        [0xFF, next, ..] if *next >= 0x80 => Err(malformed(what, "INTEGER not in minimal form")),
        v => Ok(v),
    }
}

/// The INTEGER contents of `v`: minimal, with a leading zero byte when the top bit is set.
pub(crate) fn u64_contents(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    let mut out = Vec::with_capacity(9);
    if bytes[skip] >= 0x80 {
        out.push(0);
    }
    out.extend_from_slice(&bytes[skip..]);
    out
}

/// A DER element: `tag` (one byte) and `contents`, with a minimal definite length.
pub(crate) fn encode(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

pub(crate) fn boolean(tlv: Tlv<'_>, what: &'static str) -> Result<bool, Malformed> {
    match (tlv.tag, tlv.value) {
        (Tag::Boolean, [0x00]) => Ok(false),
        (Tag::Boolean, [0xFF]) => Ok(true),
        (Tag::Boolean, _) => Err(malformed(what, "BOOLEAN not in DER form")),
        _ => Err(malformed(what, "not a BOOLEAN")),
    }
}

pub(crate) fn octets<'a>(tlv: Tlv<'a>, what: &'static str) -> Result<&'a [u8], Malformed> {
    if tlv.tag != Tag::OctetString {
        return Err(malformed(what, "not an OCTET STRING"));
    }
    Ok(tlv.value)
}

/// An `AlgorithmIdentifier` whose parameters are absent or NULL, as for every digest and
/// signature algorithm accepted here (RFC 5754 §2 and §3.2, RFC 4055 §5, RFC 5758 §3.2).
pub(crate) fn algorithm(tlv: Tlv<'_>, what: &'static str) -> Result<ObjectIdentifier, Malformed> {
    let (alg, params) = algorithm_with_params(tlv, what)?;
    match params {
        None => Ok(alg),
        Some(p) if p.tag == Tag::Null && p.value.is_empty() => Ok(alg),
        Some(_) => Err(malformed(what, "unexpected algorithm parameters")),
    }
}

/// An `AlgorithmIdentifier` with whatever parameters it has.
pub(crate) fn algorithm_with_params<'a>(
    tlv: Tlv<'a>,
    what: &'static str,
) -> Result<(ObjectIdentifier, Option<Tlv<'a>>), Malformed> {
    if tlv.tag != Tag::Sequence {
        return Err(malformed(what, "not an AlgorithmIdentifier"));
    }
    let mut c = Cursor::inside(tlv);
    let alg = oid(c.next(what)?, what)?;
    let params = if c.is_empty() { None } else { Some(c.next(what)?) };
    c.finish(what)?;
    Ok((alg, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_must_be_minimal_and_definite() {
        assert!(single(&[0x04, 0x01, 0xAA], Tag::OctetString, "x").is_ok());
        // 0x81 0x01: a long-form length that fits the short form.
        assert!(single(&[0x04, 0x81, 0x01, 0xAA], Tag::OctetString, "x").is_err());
        // Indefinite length.
        assert!(single(&[0x30, 0x80, 0x00, 0x00], Tag::Sequence, "x").is_err());
        // Truncated, trailing.
        assert!(single(&[0x04, 0x02, 0xAA], Tag::OctetString, "x").is_err());
        assert!(single(&[0x04, 0x01, 0xAA, 0x00], Tag::OctetString, "x").is_err());
        // A constructed OCTET STRING (BER only).
        assert!(single(&[0x24, 0x03, 0x04, 0x01, 0xAA], Tag::OctetString, "x").is_err());
    }

    #[test]
    fn integers_and_booleans_are_strict() {
        let int = |v: &'static [u8]| Tlv { tag: Tag::Integer, value: v, raw: v };
        assert_eq!(unsigned(int(&[0]), "x").unwrap(), &[0]);
        assert_eq!(unsigned(int(&[0, 0x80]), "x").unwrap(), &[0x80]);
        assert!(unsigned(int(&[0, 0x7F]), "x").is_err());
        assert!(unsigned(int(&[0x80]), "x").is_err());
        assert!(unsigned(int(&[]), "x").is_err());
        assert_eq!(small_unsigned(int(&[0x01, 0x00]), "x").unwrap(), 256);
        assert!(small_unsigned(int(&[1, 2, 3, 4, 5, 6, 7, 8, 9]), "x").is_err());
        assert_eq!(integer(int(&[0xFF]), "x").unwrap(), &[0xFF]);
        assert!(integer(int(&[0xFF, 0x80]), "x").is_err());
        let b = |v: &'static [u8]| Tlv { tag: Tag::Boolean, value: v, raw: v };
        assert!(boolean(b(&[0xFF]), "x").unwrap());
        assert!(!boolean(b(&[0x00]), "x").unwrap());
        assert!(boolean(b(&[0x01]), "x").is_err());
    }

    #[test]
    fn encodes_what_it_decodes() {
        for v in [0u64, 1, 0x7F, 0x80, 0xFF, 0x100, u64::MAX, 0x8000_0000_0000_0000] {
            let der = encode(0x02, &u64_contents(v));
            let tlv = single(&der, Tag::Integer, "x").unwrap();
            assert_eq!(small_unsigned(tlv, "x").unwrap(), v, "{der:02x?}");
        }
        for len in [0usize, 127, 128, 255, 256, 70_000] {
            let der = encode(0x04, &vec![7; len]);
            assert_eq!(single(&der, Tag::OctetString, "x").unwrap().value.len(), len);
        }
    }
}
