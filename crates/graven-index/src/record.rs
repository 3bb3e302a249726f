//! The packed per-entry record stored in the `meta` table, used for post-filtering and for the
//! since/until binary search.
//!
//! Layout: `flags: u8`, `clock: [u8; 27]`, then `logged_at: [u8; 27]` if `OWN_TIME`, then for each
//! present field (actor, action, resource, outcome, in that order) a LEB128 length and the full,
//! untruncated UTF-8 value.
//!
//! `clock` is the running maximum of `logged_at` over entries `0..=i` (27 zero bytes before the first
//! timestamp). It is non-decreasing by construction, even if the log's timestamps are not, which is what
//! makes binary search over it sound. When the entry's own `logged_at` equals the clock (always, for a
//! log whose timestamps never go backwards) it is not stored twice.

pub(crate) const TIME_LEN: usize = 27;
/// The clock before any timestamp has been seen: sorts below every valid timestamp.
pub(crate) const NO_TIME: [u8; TIME_LEN] = [0; TIME_LEN];

const TIME_IS_CLOCK: u8 = 1 << 4;
const OWN_TIME: u8 = 1 << 5;
const KNOWN_FLAGS: u8 = 0b11_1111;

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) clock: &'a [u8],
    pub(crate) logged_at: Option<&'a [u8]>,
    pub(crate) fields: [Option<&'a [u8]>; 4],
}

pub(crate) fn encode(
    buf: &mut Vec<u8>,
    clock: &[u8; TIME_LEN],
    logged_at: Option<&[u8]>,
    fields: [Option<&[u8]>; 4],
) {
    buf.clear();
    let mut flags = 0u8;
    for (i, f) in fields.iter().enumerate() {
        if f.is_some() {
            flags |= 1 << i;
        }
    }
    let own = match logged_at {
        Some(t) if t == clock => {
            flags |= TIME_IS_CLOCK;
            None
        }
        Some(t) => {
            flags |= OWN_TIME;
            Some(t)
        }
        None => None,
    };
    buf.push(flags);
    buf.extend_from_slice(clock);
    if let Some(t) = own {
        buf.extend_from_slice(t);
    }
    for f in fields.into_iter().flatten() {
        let mut n = f.len();
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                buf.push(byte);
                break;
            }
            buf.push(byte | 0x80);
        }
        buf.extend_from_slice(f);
    }
}

/// `None` if the bytes are not a record this code wrote.
pub(crate) fn decode(b: &[u8]) -> Option<Record<'_>> {
    let (&flags, rest) = b.split_first()?;
    if flags & !KNOWN_FLAGS != 0 || flags & (TIME_IS_CLOCK | OWN_TIME) == (TIME_IS_CLOCK | OWN_TIME) {
        return None;
    }
    let (clock, mut rest) = rest.split_at_checked(TIME_LEN)?;
    let logged_at = if flags & OWN_TIME != 0 {
        let (t, r) = rest.split_at_checked(TIME_LEN)?;
        rest = r;
        Some(t)
    } else if flags & TIME_IS_CLOCK != 0 {
        Some(clock)
    } else {
        None
    };
    let mut fields = [None; 4];
    for (i, slot) in fields.iter_mut().enumerate() {
        if flags & (1 << i) == 0 {
            continue;
        }
        let mut n: usize = 0;
        let mut shift = 0u32;
        loop {
            let (&byte, r) = rest.split_first()?;
            rest = r;
            n |= usize::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift >= usize::BITS {
                return None;
            }
        }
        let (v, r) = rest.split_at_checked(n)?;
        rest = r;
        *slot = Some(v);
    }
    rest.is_empty().then_some(Record { clock, logged_at, fields })
}

/// Only the clock, without decoding the rest (binary search).
pub(crate) fn clock(b: &[u8]) -> Option<&[u8]> {
    b.get(1..1 + TIME_LEN)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let clock = *b"2026-11-26T17:48:20.123456Z";
        let older = b"2026-11-26T17:48:19.000000Z";
        let long = vec![b'x'; 300];
        type Case<'a> = (Option<&'a [u8]>, [Option<&'a [u8]>; 4]);
        let cases: Vec<Case<'_>> = vec![
            (None, [None; 4]),
            (Some(&clock), [Some(b"a"), None, Some(b""), Some(&long)]),
            (Some(older), [None, Some(b"act"), None, None]),
        ];
        let mut buf = Vec::new();
        for (t, f) in cases {
            encode(&mut buf, &clock, t, f);
            let r = decode(&buf).unwrap();
            assert_eq!(r, Record { clock: &clock, logged_at: t, fields: f });
            assert_eq!(self::clock(&buf), Some(&clock[..]));
            // Truncations and trailing bytes are rejected, never a panic.
            for cut in 0..buf.len() {
                assert!(decode(&buf[..cut]).is_none());
            }
            buf.push(0);
            assert!(decode(&buf).is_none());
        }
        assert!(decode(&[0xff; 40]).is_none());
    }
}
