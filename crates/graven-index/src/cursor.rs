//! Opaque page cursors.
//!
//! A cursor is 44 lowercase hex digits encoding 22 bytes:
//! `version (1) | order (1) | position (u64 BE) | filter fingerprint (u64 BE) | check (u32 BE)`.
//!
//! The position is a log index, the boundary of the part of the index range not yet examined: for
//! oldest-first the next index to examine (inclusive lower bound), for newest-first the exclusive upper
//! bound. Being a log index, it stays valid across an index rebuild. The fingerprint covers every filter
//! (actor, action, resource, outcome, since, until), so a cursor replayed with other filters or another
//! order is rejected rather than silently applied. The check is a keyed FNV-1a over the preceding bytes;
//! it is not a MAC (cursors carry no secret and grant nothing), it only turns typos, truncations and
//! cursors from other APIs into a clean `BadCursor`.

use crate::query::{Order, Query};

const VERSION: u8 = 1;
const RAW_LEN: usize = 22;
const DOMAIN: &[u8] = b"graven-index cursor v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) order: Order,
    pub(crate) position: u64,
    pub(crate) fingerprint: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// A stable hash of the query's filters (not of limit, cursor or order).
pub(crate) fn fingerprint(q: &Query) -> u64 {
    let mut h = fnv(FNV_OFFSET, b"graven-index filters v1");
    for f in [&q.actor, &q.action, &q.resource, &q.outcome, &q.since, &q.until] {
        match f {
            None => h = fnv(h, &[0]),
            Some(v) => {
                h = fnv(h, &[1]);
                h = fnv(h, &(v.len() as u64).to_be_bytes());
                h = fnv(h, v.as_bytes());
            }
        }
    }
    h
}

fn check(body: &[u8]) -> u32 {
    let h = fnv(fnv(FNV_OFFSET, DOMAIN), body);
    (h ^ (h >> 32)) as u32
}

fn order_byte(o: Order) -> u8 {
    match o {
        Order::NewestFirst => 0,
        Order::OldestFirst => 1,
    }
}

pub(crate) fn encode(c: Cursor) -> String {
    let mut raw = [0u8; RAW_LEN];
    raw[0] = VERSION;
    raw[1] = order_byte(c.order);
    raw[2..10].copy_from_slice(&c.position.to_be_bytes());
    raw[10..18].copy_from_slice(&c.fingerprint.to_be_bytes());
    let chk = check(&raw[..18]);
    raw[18..].copy_from_slice(&chk.to_be_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(RAW_LEN * 2);
    for b in raw {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// `None` for anything [`encode`] did not produce.
pub(crate) fn decode(s: &str) -> Option<Cursor> {
    let s = s.as_bytes();
    if s.len() != RAW_LEN * 2 {
        return None;
    }
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let mut raw = [0u8; RAW_LEN];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        raw[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    let chk = u32::from_be_bytes(raw[18..22].try_into().ok()?);
    if raw[0] != VERSION || check(&raw[..18]) != chk {
        return None;
    }
    let order = match raw[1] {
        0 => Order::NewestFirst,
        1 => Order::OldestFirst,
        _ => return None,
    };
    Some(Cursor {
        order,
        position: u64::from_be_bytes(raw[2..10].try_into().ok()?),
        fingerprint: u64::from_be_bytes(raw[10..18].try_into().ok()?),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        for c in [
            Cursor { order: Order::NewestFirst, position: 0, fingerprint: 0 },
            Cursor { order: Order::OldestFirst, position: u64::MAX, fingerprint: 0x0123_4567_89ab_cdef },
        ] {
            let s = encode(c);
            assert_eq!(s.len(), 44);
            assert_eq!(decode(&s), Some(c));
            // Every single-character change is caught.
            for i in 0..s.len() {
                for repl in ['0', '7', 'f', 'F', 'g'] {
                    let mut t = s.clone().into_bytes();
                    if t[i] == repl as u8 {
                        continue;
                    }
                    t[i] = repl as u8;
                    let t = String::from_utf8(t).unwrap();
                    assert_eq!(decode(&t), None, "{t}");
                }
            }
            assert_eq!(decode(&s[..42]), None);
            assert_eq!(decode(&format!("{s}00")), None);
            assert_eq!(decode(&s.to_uppercase()), None);
        }
    }

    #[test]
    fn fingerprint_separates_fields() {
        let a = Query { actor: Some("x".into()), ..Query::default() };
        let b = Query { action: Some("x".into()), ..Query::default() };
        let c = Query { actor: Some("x".into()), limit: 5, order: Order::OldestFirst, ..Query::default() };
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), fingerprint(&c));
        assert_ne!(fingerprint(&Query::default()), fingerprint(&Query { actor: Some(String::new()), ..a }));
    }
}
