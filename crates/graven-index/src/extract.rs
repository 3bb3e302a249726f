//! Lenient extraction of the indexed fields from one log entry.
//!
//! A log entry may hold arbitrary bytes. Anything that is not a JSON object yields no fields, and each
//! field is taken independently: a field of the wrong JSON type is simply absent, it does not spoil the
//! others. Nothing is allocated for strings without escapes.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The indexed fields of one event. `fields` is in `crate::Field` order: actor.id, action, resource.id,
/// outcome.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Extracted<'a> {
    pub(crate) fields: [Option<Cow<'a, str>>; 4],
    /// Only set when the value has the fixed 27-character timestamp format.
    pub(crate) logged_at: Option<Cow<'a, str>>,
    /// `actor.kind`, `actor.credential` and `actor.attested_by.id` (strings; for the inventory).
    pub(crate) actor: ActorExtra<'a>,
}

/// The members of `actor` besides its `id` that the inventory keeps (each a string, else absent).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ActorExtra<'a> {
    pub(crate) kind: Option<Cow<'a, str>>,
    pub(crate) credential: Option<Cow<'a, str>>,
    /// The `id` of `actor.attested_by`, when that is an object with a string `id`.
    pub(crate) attested_by: Option<Cow<'a, str>>,
    /// The `credential` of `actor.attested_by` (the reporting source's key), when a string.
    pub(crate) attested_credential: Option<Cow<'a, str>>,
}

pub(crate) fn extract(entry: &[u8]) -> Extracted<'_> {
    match fast::extract(entry) {
        Some(out) => out,
        None => extract_serde(entry),
    }
}

/// The reference extraction: serde_json with lenient visitors. [`fast::extract`] must agree with it
/// whenever it answers.
fn extract_serde(entry: &[u8]) -> Extracted<'_> {
    match serde_json::from_slice::<Top<'_>>(entry) {
        Ok(top) => {
            let mut out = top.0;
            if out.logged_at.as_deref().is_some_and(|t| !is_timestamp(t.as_bytes())) {
                out.logged_at = None;
            }
            out
        }
        Err(_) => Extracted::default(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`: shape only (digits and separators), which is what makes the
/// lexicographic order of two such strings their time order.
pub(crate) fn is_timestamp(t: &[u8]) -> bool {
    const SHAPE: &[u8; 27] = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
    t.len() == SHAPE.len()
        && t.iter().zip(SHAPE).all(|(&c, &s)| if s == b'd' { c.is_ascii_digit() } else { c == s })
}

/// A fast path for the common case, a single pass over the bytes with no allocation.
///
/// It accepts a strict subset of what [`extract_serde`] accepts: JSON without escapes or control
/// characters in strings, at most [`fast::MAX_DEPTH`] levels of nesting, and, where the extractor looks
/// at a value's type (the indexed fields), numbers only as plain integers of at most 18 digits (which
/// serde_json parses without any range error). On anything else it returns `None`, never a verdict,
/// and the caller falls back to serde_json, which decides. Within that subset it applies the same rules:
/// the last occurrence of a duplicated key wins, a field of the wrong type is absent.
mod fast {
    use std::borrow::Cow;

    // `crate::extract`, not `super`: the same items, named so that the module-cycle check
    // (which reads a file's `super` as its parent's) sees no edge to the crate root.
    use crate::extract::{ActorExtra, Extracted, is_timestamp};

    pub(super) const MAX_DEPTH: usize = 32;

    /// Byte classes inside strings: 0 ASCII, 1 `"`, 2 escape or control character (bail), 3 non-ASCII
    /// (the string is then validated as UTF-8).
    const CLASS: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = if i == b'"' as usize {
                1
            } else if i == b'\\' as usize || i < 0x20 {
                2
            } else if i >= 0x80 {
                3
            } else {
                0
            };
            i += 1;
        }
        t
    };

    struct P<'a> {
        b: &'a [u8],
        i: usize,
    }

    pub(super) fn extract(entry: &[u8]) -> Option<Extracted<'_>> {
        let mut p = P { b: entry, i: 0 };
        let mut out = Extracted::default();
        p.ws();
        p.eat(b'{')?;
        p.ws();
        if p.peek()? == b'}' {
            p.i += 1;
        } else {
            loop {
                let key = p.raw_string()?;
                p.ws();
                p.eat(b':')?;
                p.ws();
                match key {
                    b"actor" => {
                        let (id, extra) = p.actor_of()?;
                        out.fields[0] = id.map(Cow::Borrowed);
                        out.actor = extra;
                    }
                    b"action" => out.fields[1] = p.lenient(1)?.map(Cow::Borrowed),
                    b"resource" => out.fields[2] = p.id_of(1)?.map(Cow::Borrowed),
                    b"outcome" => out.fields[3] = p.lenient(1)?.map(Cow::Borrowed),
                    b"logged_at" => out.logged_at = p.lenient(1)?.map(Cow::Borrowed),
                    _ => p.value(1)?,
                }
                if p.next_member()? {
                    if entry[p.i - 1] != b'}' {
                        return None;
                    }
                    break;
                }
            }
        }
        p.ws();
        if p.i != entry.len() {
            return None;
        }
        if out.logged_at.as_deref().is_some_and(|t| !is_timestamp(t.as_bytes())) {
            out.logged_at = None;
        }
        Some(out)
    }

    impl<'a> P<'a> {
        fn peek(&self) -> Option<u8> {
            self.b.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            (self.peek()? == c).then(|| self.i += 1)
        }

        fn ws(&mut self) {
            while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
                self.i += 1;
            }
        }

        /// After a member or element: `true` at the closing bracket (consumed), `false` after a comma
        /// (consumed, with the whitespace around it).
        fn next_member(&mut self) -> Option<bool> {
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.ws();
                    Some(false)
                }
                b'}' | b']' => {
                    self.i += 1;
                    Some(true)
                }
                _ => None,
            }
        }

        /// A string without escapes or control characters, valid UTF-8; the cursor is at its quote.
        fn string(&mut self) -> Option<&'a str> {
            let raw = self.raw_string()?;
            // `raw_string` validated non-ASCII strings; this is then cheap (ASCII fast path).
            std::str::from_utf8(raw).ok()
        }

        /// [`string`](Self::string) as bytes: the cursor is at the opening quote and ends after the
        /// closing one. Scans 8 bytes at a time while they hold no quote, backslash or control byte.
        fn raw_string(&mut self) -> Option<&'a [u8]> {
            const ONES: u64 = 0x0101_0101_0101_0101;
            const HIGH: u64 = 0x8080_8080_8080_8080;
            self.eat(b'"')?;
            let start = self.i;
            let mut ascii = true;
            loop {
                if let Some(chunk) = self.b.get(self.i..self.i + 8) {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(chunk);
                    let w = u64::from_le_bytes(w);
                    let quote = w ^ (ONES * u64::from(b'"'));
                    let slash = w ^ (ONES * u64::from(b'\\'));
                    // Exact "some byte is zero / below 0x20" tests (no false negatives).
                    let special = (quote.wrapping_sub(ONES) & !quote)
                        | (slash.wrapping_sub(ONES) & !slash)
                        | (w.wrapping_sub(ONES * 0x20) & !w);
                    let special = special & HIGH;
                    if special == 0 {
                        ascii &= w & HIGH == 0;
                        self.i += 8;
                        continue;
                    }
                    // The lowest flagged byte is exact (borrows only flag bytes above a true one): it is
                    // the first quote, backslash or control byte.
                    let first = (special.trailing_zeros() / 8) as usize;
                    ascii &= w & HIGH & ((1u64 << (8 * first)) - 1) == 0;
                    self.i += first;
                    if self.b[self.i] != b'"' {
                        return None;
                    }
                    break;
                }
                // The last few bytes, one at a time.
                let c = *self.b.get(self.i)?;
                match CLASS[usize::from(c)] {
                    0 => self.i += 1,
                    1 => break,
                    3 => {
                        ascii = false;
                        self.i += 1;
                    }
                    _ => return None,
                }
            }
            let raw = &self.b[start..self.i];
            self.i += 1;
            if !ascii {
                std::str::from_utf8(raw).ok()?;
            }
            Some(raw)
        }

        /// Any value (the rest of the subset), ignored.
        fn value(&mut self, depth: usize) -> Option<()> {
            match self.peek()? {
                b'"' => self.raw_string().map(|_| ()),
                b'{' => self.container(depth, true),
                b'[' => self.container(depth, false),
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                _ => self.number(),
            }
        }

        fn container(&mut self, depth: usize, object: bool) -> Option<()> {
            if depth >= MAX_DEPTH {
                return None;
            }
            self.i += 1;
            self.ws();
            if self.peek()? == if object { b'}' } else { b']' } {
                self.i += 1;
                return Some(());
            }
            loop {
                if object {
                    self.raw_string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.ws();
                }
                self.value(depth + 1)?;
                if self.next_member()? {
                    // The bracket must match the container.
                    let close = self.b[self.i - 1];
                    return (close == if object { b'}' } else { b']' }).then_some(());
                }
            }
        }

        fn literal(&mut self, word: &[u8]) -> Option<()> {
            let end = self.i + word.len();
            (self.b.get(self.i..end)? == word).then(|| self.i = end)
        }

        fn digits(&mut self) -> usize {
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            self.i - start
        }

        /// A JSON number (grammar only; serde_json ignores such values without parsing them).
        fn number(&mut self) -> Option<()> {
            let _ = self.eat(b'-');
            match self.peek()? {
                b'0' => self.i += 1,
                b'1'..=b'9' => {
                    self.digits();
                }
                _ => return None,
            }
            if self.eat(b'.').is_some() && self.digits() == 0 {
                return None;
            }
            if let Some(b'e' | b'E') = self.peek() {
                self.i += 1;
                if let Some(b'+' | b'-') = self.peek() {
                    self.i += 1;
                }
                if self.digits() == 0 {
                    return None;
                }
            }
            Some(())
        }

        /// A value whose type matters: `Some(s)` for a string, `None` for other values. Numbers only
        /// as integers of at most 18 digits, which serde_json parses without a range error.
        fn lenient(&mut self, depth: usize) -> Option<Option<&'a str>> {
            match self.peek()? {
                b'"' => self.string().map(Some),
                b'-' | b'0'..=b'9' => {
                    let _ = self.eat(b'-');
                    let n = self.digits();
                    if n == 0 || n > 18 || (n > 1 && self.b[self.i - n] == b'0') {
                        return None;
                    }
                    if let Some(b'.' | b'e' | b'E') = self.peek() {
                        return None;
                    }
                    Some(None)
                }
                _ => self.value(depth).map(|()| None),
            }
        }

        /// `resource`: the string `id` member of an object (last one wins), else `None`. `depth` is
        /// the value's own nesting level.
        fn id_of(&mut self, depth: usize) -> Option<Option<&'a str>> {
            if self.peek()? != b'{' {
                return self.lenient(depth).map(|_| None);
            }
            self.i += 1;
            self.ws();
            let mut id = None;
            if self.peek()? == b'}' {
                self.i += 1;
                return Some(None);
            }
            loop {
                let key = self.raw_string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
                if key == b"id" {
                    id = self.lenient(depth + 1)?;
                } else {
                    self.value(depth + 1)?;
                }
                if self.next_member()? {
                    return (self.b[self.i - 1] == b'}').then_some(id);
                }
            }
        }

        /// `actor.attested_by` (nesting level 2): its string `id` and `credential` members (last
        /// of each wins), both `None` when it is not an object.
        #[allow(clippy::type_complexity)]
        fn attester_of(&mut self) -> Option<(Option<&'a str>, Option<&'a str>)> {
            if self.peek()? != b'{' {
                return self.lenient(2).map(|_| (None, None));
            }
            self.i += 1;
            self.ws();
            let (mut id, mut credential) = (None, None);
            if self.peek()? == b'}' {
                self.i += 1;
                return Some((None, None));
            }
            loop {
                let key = self.raw_string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
                match key {
                    b"id" => id = self.lenient(3)?,
                    b"credential" => credential = self.lenient(3)?,
                    _ => self.value(3)?,
                }
                if self.next_member()? {
                    return (self.b[self.i - 1] == b'}').then_some((id, credential));
                }
            }
        }

        /// `actor`: its string `id`, and the members the inventory keeps; all absent when it is not
        /// an object. The last occurrence of each member wins.
        #[allow(clippy::type_complexity)]
        fn actor_of(&mut self) -> Option<(Option<&'a str>, ActorExtra<'a>)> {
            let mut extra = ActorExtra::default();
            if self.peek()? != b'{' {
                return self.lenient(1).map(|_| (None, extra));
            }
            self.i += 1;
            self.ws();
            let mut id = None;
            if self.peek()? == b'}' {
                self.i += 1;
                return Some((None, extra));
            }
            loop {
                let key = self.raw_string()?;
                self.ws();
                self.eat(b':')?;
                self.ws();
                match key {
                    b"id" => id = self.lenient(2)?,
                    b"kind" => extra.kind = self.lenient(2)?.map(Cow::Borrowed),
                    b"credential" => extra.credential = self.lenient(2)?.map(Cow::Borrowed),
                    b"attested_by" => {
                        let (id, credential) = self.attester_of()?;
                        extra.attested_by = id.map(Cow::Borrowed);
                        extra.attested_credential = credential.map(Cow::Borrowed);
                    }
                    _ => self.value(2)?,
                }
                if self.next_member()? {
                    return (self.b[self.i - 1] == b'}').then_some((id, extra));
                }
            }
        }
    }
}

struct Top<'a>(Extracted<'a>);

enum TopKey {
    Actor,
    Action,
    Resource,
    Outcome,
    LoggedAt,
    Other,
}

impl<'de> Deserialize<'de> for TopKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TopKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TopKey, E> {
                Ok(match v {
                    "actor" => TopKey::Actor,
                    "action" => TopKey::Action,
                    "resource" => TopKey::Resource,
                    "outcome" => TopKey::Outcome,
                    "logged_at" => TopKey::LoggedAt,
                    _ => TopKey::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
                let mut out = Extracted::default();
                while let Some(key) = map.next_key::<TopKey>()? {
                    match key {
                        TopKey::Actor => {
                            let a = map.next_value::<ActorOf<'de>>()?;
                            out.fields[0] = a.id;
                            out.actor = a.extra;
                        }
                        TopKey::Action => out.fields[1] = map.next_value::<Lenient<'de>>()?.0,
                        TopKey::Resource => out.fields[2] = map.next_value::<IdOf<'de>>()?.0,
                        TopKey::Outcome => out.fields[3] = map.next_value::<Lenient<'de>>()?.0,
                        TopKey::LoggedAt => out.logged_at = map.next_value::<Lenient<'de>>()?.0,
                        TopKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Top(out))
            }
        }
        // Anything but an object is rejected here and becomes "no fields" in `extract`.
        d.deserialize_map(V)
    }
}

/// A string value, or `None` for any other JSON value (which is consumed and ignored).
struct Lenient<'a>(Option<Cow<'a, str>>);

struct LenientVisitor;

impl<'de> Visitor<'de> for LenientVisitor {
    type Value = Lenient<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Lenient<'de>, E> {
        Ok(Lenient(Some(Cow::Borrowed(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Lenient<'de>, E> {
        Ok(Lenient(Some(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Lenient<'de>, E> {
        Ok(Lenient(Some(Cow::Owned(v))))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Lenient<'de>, E> {
        Ok(Lenient(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lenient<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }
}

impl<'de> Deserialize<'de> for Lenient<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor)
    }
}

/// The string `id` member of an object (`actor`, `resource`); `None` for anything else.
struct IdOf<'a>(Option<Cow<'a, str>>);

enum IdKey {
    Id,
    Other,
}

impl<'de> Deserialize<'de> for IdKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IdKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdKey, E> {
                Ok(if v == "id" { IdKey::Id } else { IdKey::Other })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for IdOf<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdOf<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IdOf<'de>, A::Error> {
                let mut id = None;
                while let Some(key) = map.next_key::<IdKey>()? {
                    match key {
                        IdKey::Id => id = map.next_value::<Lenient<'de>>()?.0,
                        IdKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(IdOf(id))
            }
            // Every non-object value: consume it through the lenient visitor and drop it.
            fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<IdOf<'de>, E> {
                Ok(IdOf(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<IdOf<'de>, A::Error> {
                LenientVisitor.visit_seq(seq).map(|_| IdOf(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `actor`: its string `id` and the members the inventory keeps; all `None` for a non-object.
#[derive(Default)]
struct ActorOf<'a> {
    id: Option<Cow<'a, str>>,
    extra: ActorExtra<'a>,
}

enum ActorKey {
    Id,
    Kind,
    Credential,
    AttestedBy,
    Other,
}

impl<'de> Deserialize<'de> for ActorKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ActorKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ActorKey, E> {
                Ok(match v {
                    "id" => ActorKey::Id,
                    "kind" => ActorKey::Kind,
                    "credential" => ActorKey::Credential,
                    "attested_by" => ActorKey::AttestedBy,
                    _ => ActorKey::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for ActorOf<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ActorOf<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ActorOf<'de>, A::Error> {
                let mut out = ActorOf::default();
                while let Some(key) = map.next_key::<ActorKey>()? {
                    match key {
                        ActorKey::Id => out.id = map.next_value::<Lenient<'de>>()?.0,
                        ActorKey::Kind => out.extra.kind = map.next_value::<Lenient<'de>>()?.0,
                        ActorKey::Credential => out.extra.credential = map.next_value::<Lenient<'de>>()?.0,
                        ActorKey::AttestedBy => {
                            let a = map.next_value::<ActorOf<'de>>()?;
                            out.extra.attested_by = a.id;
                            out.extra.attested_credential = a.extra.credential;
                        }
                        ActorKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
            // Every non-object value is consumed whole (through `IdOf`, which ignores it).
            fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<ActorOf<'de>, E> {
                Ok(ActorOf::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<ActorOf<'de>, E> {
                Ok(ActorOf::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ActorOf<'de>, E> {
                Ok(ActorOf::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<ActorOf<'de>, E> {
                Ok(ActorOf::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<ActorOf<'de>, E> {
                Ok(ActorOf::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ActorOf<'de>, E> {
                Ok(ActorOf::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<ActorOf<'de>, E> {
                Ok(ActorOf::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<ActorOf<'de>, E> {
                Ok(ActorOf::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ActorOf<'de>, A::Error> {
                LenientVisitor.visit_seq(seq).map(|_| ActorOf::default())
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fields(json: &str) -> (Vec<Option<String>>, Option<String>) {
        let e = extract(json.as_bytes());
        (e.fields.iter().map(|f| f.as_deref().map(str::to_owned)).collect(), e.logged_at.map(|t| t.into()))
    }

    #[test]
    fn full_event() {
        let (f, t) = fields(
            r#"{"action":"deployment.create","actor":{"auth":"bearer","id":"svc:payments-worker","kind":"service_account"},"logged_at":"2026-11-26T17:48:20.123456Z","outcome":"success","resource":{"id":"prod/payments","type":"k8s.deployment"},"v":1}"#,
        );
        assert_eq!(
            f,
            vec![
                Some("svc:payments-worker".into()),
                Some("deployment.create".into()),
                Some("prod/payments".into()),
                Some("success".into())
            ]
        );
        assert_eq!(t.as_deref(), Some("2026-11-26T17:48:20.123456Z"));
    }

    #[test]
    fn escapes_and_wrong_types() {
        let (f, t) = fields(
            r#"{"action":7,"actor":{"id":"a\u00e9\"b","x":[1,{"y":2}]},"resource":"flat","outcome":{"id":"x"},"logged_at":"2026-11-26 17:48:20"}"#,
        );
        assert_eq!(f, vec![Some("aé\"b".into()), None, None, None]);
        assert_eq!(t, None);
        let (f, _) = fields(r#"{"actor":[1,2],"resource":{"id":null},"action":"a"}"#);
        assert_eq!(f, vec![None, Some("a".into()), None, None]);
    }

    #[test]
    fn not_objects() {
        for raw in [&b"[1,2]"[..], b"\"str\"", b"42", b"", b"\xff\xfe", b"{\"actor\":{\"id\":\"a\"}", b"{} x"]
        {
            assert_eq!(extract(raw), Extracted::default(), "{raw:?}");
        }
    }

    #[test]
    fn timestamp_shape() {
        assert!(is_timestamp(b"2026-11-26T17:48:20.123456Z"));
        assert!(!is_timestamp(b"2026-11-26T17:48:20.12345Z"));
        assert!(!is_timestamp(b"2026-11-26T17:48:20.123456+"));
        assert!(!is_timestamp(b"2026-11-26t17:48:20.123456Z"));
        assert!(!is_timestamp(b"2026-1a-26T17:48:20.123456Z"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod fast_tests {
    use proptest::prelude::*;

    use super::*;

    fn atom() -> impl Strategy<Value = Vec<u8>> {
        let plain: Vec<&'static [u8]> = vec![
            b"\"a\"",
            b"\"\"",
            b"\"svc:x\"",
            b"\"\xc3\xa9\"",
            b"\"\x7f\"",
            b"\"2026-11-26T17:48:20.123456Z\"",
            b"\"2026-11-26T17:48:20Z\"",
            b"0",
            b"-0",
            b"7",
            b"1.5",
            b"1e5",
            b"123456789012345678",
            b"true",
            b"false",
            b"null",
            b"[]",
            b"{}",
        ];
        let tricky: Vec<&'static [u8]> = vec![
            b"\"\xff\"",
            b"\"\xc3\"",
            b"\"a\\\"b\"",
            b"\"\\u00e9\"",
            b"\"\\ud800\"",
            b"\"\x01\"",
            b"01",
            b"-",
            b"1.",
            b".5",
            b"1E+5",
            b"1e",
            b"1e400",
            b"-1e-400",
            b"1234567890123456789",
            b"99999999999999999999999999999",
            b"tru",
            b"nul",
            b"[1,]",
            b"{,}",
            b"[}",
            b"{]",
        ];
        prop_oneof![
            20 => prop::sample::select(plain).prop_map(<[u8]>::to_vec),
            1 => prop::sample::select(tricky).prop_map(<[u8]>::to_vec),
        ]
    }

    /// JSON-ish byte soup built from tokens that probe every rule the fast path relies on: escapes,
    /// control characters, invalid UTF-8, number edge cases, duplicate keys, wrong types, bad brackets.
    fn token() -> impl Strategy<Value = Vec<u8>> {
        let atom = atom();
        let key = prop_oneof![
            20 => prop::sample::select(vec![
                &b"\"actor\""[..],
                b"\"action\"",
                b"\"resource\"",
                b"\"outcome\"",
                b"\"logged_at\"",
                b"\"id\"",
                b"\"kind\"",
                b"\"credential\"",
                b"\"attested_by\"",
                b"\"x\"",
                b"\"\xc3\xa9\"",
            ]),
            1 => prop::sample::select(vec![&b"\"act\\u0069on\""[..], b"\"i\\u0064\"", b"7"]),
        ]
        .prop_map(<[u8]>::to_vec);
        let ws = prop_oneof![
            40 => Just(Vec::new()),
            8 => prop::sample::select(vec![&b" "[..], b"\n\t\r "]).prop_map(<[u8]>::to_vec),
            1 => Just(b"\x0c".to_vec()),
        ];
        atom.prop_recursive(3, 16, 4, move |inner| {
            let member = (key.clone(), ws.clone(), inner.clone(), ws.clone());
            prop_oneof![
                3 => prop::collection::vec(member, 0..8).prop_map(|ms| {
                    let mut v = b"{".to_vec();
                    for (i, (k, w1, val, w2)) in ms.into_iter().enumerate() {
                        if i > 0 {
                            v.push(b',');
                        }
                        v.extend(w1);
                        v.extend(k);
                        v.push(b':');
                        v.extend(val);
                        v.extend(w2);
                    }
                    v.push(b'}');
                    v
                }),
                1 => prop::collection::vec(inner, 0..4).prop_map(|xs| {
                    let mut v = b"[".to_vec();
                    for (i, x) in xs.into_iter().enumerate() {
                        if i > 0 {
                            v.extend_from_slice(b" , ");
                        }
                        v.extend(x);
                    }
                    v.push(b']');
                    v
                }),
            ]
        })
    }

    /// A document, optionally mutated (truncated, a byte changed or inserted).
    fn document() -> impl Strategy<Value = Vec<u8>> {
        let top = prop::collection::vec(token(), 1..7).prop_map(|vals| {
            let keys: [&[u8]; 6] =
                [b"\"actor\"", b"\"action\"", b"\"resource\"", b"\"outcome\"", b"\"logged_at\"", b"\"z\""];
            let mut v = b"{".to_vec();
            for (i, val) in vals.into_iter().enumerate() {
                if i > 0 {
                    v.push(b',');
                }
                v.extend_from_slice(keys[(i * 7 + val.len()) % keys.len()]);
                v.push(b':');
                v.extend(val);
            }
            v.push(b'}');
            v
        });
        // Flat, event-like objects: mostly within the fast path's subset.
        let member = (
            0usize..6,
            prop_oneof![3 => atom(), 2 => (atom(), atom()).prop_map(|(a, b)| {
                let mut v = b"{\"id\":".to_vec();
                v.extend(a);
                v.extend_from_slice(b",\"kind\":");
                v.extend(b);
                v.push(b'}');
                v
            }), 2 => (atom(), atom(), atom(), prop::bool::ANY).prop_map(|(a, b, c, nested)| {
                // An actor with the members the inventory keeps (a reported subject's shape).
                let mut v = b"{\"credential\":".to_vec();
                v.extend(a);
                v.extend_from_slice(b",\"attested_by\":");
                if nested {
                    v.extend_from_slice(b"{\"kind\":1,\"credential\":");
                    v.extend(c.clone());
                    v.extend_from_slice(b",\"id\":");
                    v.extend(b);
                    v.push(b'}');
                } else {
                    v.extend(b);
                }
                v.extend_from_slice(b",\"id\":");
                v.extend(c);
                v.push(b'}');
                v
            })],
        );
        let flat = prop::collection::vec(member, 0..8).prop_map(|ms| {
            let keys: [&[u8]; 6] =
                [b"\"actor\"", b"\"action\"", b"\"resource\"", b"\"outcome\"", b"\"logged_at\"", b"\"z\""];
            let mut v = b"{".to_vec();
            for (i, (k, val)) in ms.into_iter().enumerate() {
                if i > 0 {
                    v.push(b',');
                }
                v.extend_from_slice(keys[k]);
                v.push(b':');
                v.extend(val);
            }
            v.push(b'}');
            v
        });
        (
            prop_oneof![3 => flat, 3 => top, 1 => token()],
            prop_oneof![3 => Just(0usize), 1 => 1usize..4],
            any::<prop::sample::Index>(),
            any::<u8>(),
            prop::sample::select(&b"{}[],:\" \\0e-x"[..]),
        )
            .prop_map(|(mut d, how, at, byte, punct)| {
                let i = if d.is_empty() { 0 } else { at.index(d.len()) };
                match how {
                    0 => {}
                    1 => d.truncate(i),
                    2 if !d.is_empty() => d[i] = byte,
                    _ => d.insert(i, punct),
                }
                d
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 8000, ..ProptestConfig::default() })]

        /// Whenever the fast path answers, it agrees with serde_json.
        #[test]
        fn fast_path_agrees_with_serde(doc in document()) {
            if let Some(fast) = fast::extract(&doc) {
                prop_assert_eq!(fast, extract_serde(&doc), "{}", String::from_utf8_lossy(&doc));
            }
        }
    }

    #[test]
    fn fast_path_takes_ordinary_events() {
        let docs: [&[u8]; 4] = [
            br#"{"action":"deployment.create","actor":{"auth":"bearer","id":"svc:payments-worker","kind":"service_account"},"details":{"n":[1,2.5,-3e7,true,null,{"k":"v/"}]},"logged_at":"2026-11-26T17:48:20.123456Z","outcome":"success","resource":{"id":"prod/payments","type":"k8s.deployment"},"v":1}"#,
            b" { \"actor\" : { \"id\" : \"\xc3\xa9\" } , \"action\" : 5 , \"outcome\" : [ ] } ",
            b"{}",
            br#"{"actor":{"id":"a","id":"b"},"action":"x","action":null,"resource":7,"logged_at":"now"}"#,
        ];
        for d in docs {
            let fast = fast::extract(d);
            assert!(fast.is_some(), "{}", String::from_utf8_lossy(d));
            assert_eq!(fast.unwrap(), extract_serde(d));
        }
        let e = fast::extract(docs[3]).unwrap();
        assert_eq!(e.fields[0].as_deref(), Some("b"));
        assert_eq!(e.fields[1], None);
        // Outside the subset: left to serde_json.
        for d in [&br#"{"action":"a\"b"}"#[..], br#"{"action":1e400}"#, b"[1]", b"{} x", b"{\"a\":1]"] {
            assert!(fast::extract(d).is_none(), "{}", String::from_utf8_lossy(d));
        }
    }
}
