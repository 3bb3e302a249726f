//! RFC 8785 canonical JSON in one pass, without a [`Value`](crate::jcs::Value) tree: the same
//! strict rules, limits, bytes and errors as `jcs::canonicalize`, at a fraction of the
//! allocations (every event the server takes goes through here, see BENCHMARKS.md §3).
//!
//! The input is read once, left to right, and its canonical form written as it goes: strings
//! are re-escaped straight from the input, numbers checked and printed in place. Only object
//! keys are kept, unescaped, for the two things that need them: duplicate keys (refused at the
//! second key, as `jcs::parse` does, before anything after it is read) and the member order of
//! RFC 8785 §3.2.3. Each object's members are written in input order, as `"key":value`
//! segments; when the object closes, and only if its keys are not already in UTF-16 order,
//! the segments are put in order in place. So the error for a bad input is the one `jcs::parse`
//! gives, at the same offset: both read the document in the same order and check the same
//! things at the same bytes. The tree-based `jcs::canonicalize` is the reference this module is
//! tested against (`tests/jcs_vectors.rs`, the `jcs` fuzz target).
//!
//! Nesting uses an explicit stack of at most [`MAX_DEPTH`] frames, never recursion. Putting an
//! object's members in order copies its bytes once, when it closes, so no byte of the input is
//! copied more than [`MAX_DEPTH`] times however the document nests.
//!
//! [`members`] does the same but leaves the top-level object's members apart, each with its
//! canonical value, its text in the input and its depth: what event shaping needs to check a
//! few members and copy the rest through without parsing them twice.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Range;

use crate::jcs::{JcsError, MAX_DEPTH, MAX_INPUT, cmp_utf16, exact_number, hex_digit, write_string};

/// Keys an object may have before duplicates are looked up in a set rather than by comparing
/// with every earlier key: events' objects are small, and this keeps them free of allocation.
const LINEAR_KEYS: usize = 16;

/// The bytes that end a run of string text copied as it is: `"`, `\` and the controls.
const STOPS_A_RUN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The first position from `pos` on, in steps of eight bytes, where the next eight bytes hold
/// one that stops a run (or fewer than eight are left). Each test is exact for the whole word:
/// `(x - 0x01…) & !x & 0x80…` is non-zero iff some byte of `x` is zero, and with `0x20…` iff some
/// byte is below 0x20.
fn skip_words(bytes: &[u8], mut pos: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    const SPACES: u64 = u64::from_ne_bytes([0x20; 8]);
    while let Some(Ok(word)) = bytes.get(pos..pos + 8).map(<[u8; 8]>::try_from) {
        let x = u64::from_ne_bytes(word);
        let (q, b) = (x ^ QUOTES, x ^ BACKSLASHES);
        let hits = (q.wrapping_sub(ONES) & !q) | (b.wrapping_sub(ONES) & !b) | (x.wrapping_sub(SPACES) & !x);
        if hits & HIGHS != 0 {
            break;
        }
        pos += 8;
    }
    pos
}

/// Integer literals of at most this many digits are exact doubles below 2^53 and print as
/// written: no need for the general number rule.
const SHORT_INTEGER_DIGITS: usize = 15;

/// The RFC 8785 canonical form of `input`, checked exactly as `jcs::canonicalize` checks it
/// (see `jcs` for every rule): the same bytes when it is accepted, the same error when not.
pub fn canonicalize(input: &[u8]) -> Result<Vec<u8>, JcsError> {
    let mut pass = Pass::new(input, false)?;
    pass.run()?;
    Ok(pass.out)
}

/// A JSON object, checked and canonicalised, with its top-level members kept apart.
#[derive(Debug)]
pub struct Members<'a> {
    input: &'a [u8],
    out: Vec<u8>,
    keys: String,
    members: Vec<Segment>,
}

/// One top-level member of [`Members`].
#[derive(Debug, Clone, Copy)]
pub struct Member<'m> {
    /// The key, unescaped.
    pub key: &'m str,
    /// The value's RFC 8785 canonical form.
    pub canonical: &'m [u8],
    /// The value as it was written in the input (valid JSON: it was checked).
    pub source: &'m [u8],
    /// How deeply arrays and objects nest in the value, as `Value::depth` counts: a scalar is
    /// 0, `[]` is 1.
    pub depth: usize,
}

impl<'a> Members<'a> {
    /// The members, in input order.
    pub fn iter(&self) -> impl Iterator<Item = Member<'_>> {
        self.members.iter().map(|s| self.member(s))
    }

    /// The member with key `key`, if any.
    pub fn get(&self, key: &str) -> Option<Member<'_>> {
        self.iter().find(|m| m.key == key)
    }

    fn member(&self, s: &Segment) -> Member<'_> {
        Member {
            key: self.keys.get(s.key.clone()).unwrap_or_default(),
            canonical: self.out.get(s.value.clone()).unwrap_or_default(),
            source: self.input.get(s.source.clone()).unwrap_or_default(),
            depth: s.depth,
        }
    }
}

/// Checks `input` as [`canonicalize`] does; `None` when it holds something other than an object,
/// else its top-level members (in input order, each value canonical).
pub fn members(input: &[u8]) -> Result<Option<Members<'_>>, JcsError> {
    let mut pass = Pass::new(input, true)?;
    pass.run()?;
    if pass.out.first() != Some(&b'{') {
        return Ok(None);
    }
    Ok(Some(Members { input, out: pass.out, keys: pass.keys, members: pass.segments }))
}

/// One member of an object being written: `"key":value` at `start..value.end` of the output.
#[derive(Debug, Clone)]
struct Segment {
    /// The unescaped key, in `Pass::keys`.
    key: Range<usize>,
    /// Where `"key":value` starts in the output.
    start: usize,
    /// The canonical value in the output (its end set once the value is complete).
    value: Range<usize>,
    /// The value's text in the input (top level only).
    source: Range<usize>,
    /// The value's depth (top level only).
    depth: usize,
}

/// An array or object being read.
struct Frame {
    object: bool,
    /// The object's first segment in `Pass::segments` and first key byte in `Pass::keys`.
    segments: usize,
    keys: usize,
    /// The object's keys once it has more than [`LINEAR_KEYS`].
    seen: Option<BTreeSet<Box<str>>>,
}

struct Pass<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    out: Vec<u8>,
    /// Unescaped keys of every open object, each object's after its parent's.
    keys: String,
    /// Segments of every open object, each object's after its parent's.
    segments: Vec<Segment>,
    stack: Vec<Frame>,
    /// Deepest the stack has been since the current top-level member's value began.
    deepest: usize,
    /// Leave the top-level object's members in input order, for [`members`].
    keep_top: bool,
    /// Reused: segments being reordered, a number's canonical text.
    scratch: Vec<u8>,
}

const EXPECTED_VALUE: &str = "a JSON value (object, array, string, number, true, false or null)";

impl<'a> Pass<'a> {
    fn new(input: &'a [u8], keep_top: bool) -> Result<Self, JcsError> {
        if input.len() > MAX_INPUT {
            return Err(JcsError::InputTooLarge { offset: MAX_INPUT, len: input.len(), max: MAX_INPUT });
        }
        let text =
            std::str::from_utf8(input).map_err(|e| JcsError::InvalidUtf8 { offset: e.valid_up_to() })?;
        if text.starts_with('\u{FEFF}') {
            return Err(JcsError::ByteOrderMark { offset: 0 });
        }
        Ok(Pass {
            text,
            bytes: input,
            pos: 0,
            // Sized for an event, so that one rarely reallocates (the output is at most the
            // input's length unless a number like `1e20` is written out in full).
            out: Vec::with_capacity(input.len()),
            keys: String::with_capacity(256),
            segments: Vec::with_capacity(32),
            stack: Vec::with_capacity(8),
            deepest: 0,
            keep_top,
            scratch: Vec::new(),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// As `jcs`'s parser reports it: the whole character found at `pos`, or the end of input.
    fn unexpected(&self, pos: usize, expected: &'static str) -> JcsError {
        match self.text.get(pos..).and_then(|rest| rest.chars().next()) {
            Some(found) => JcsError::UnexpectedCharacter { offset: pos, found, expected },
            None => JcsError::UnexpectedEnd { offset: self.bytes.len(), expected },
        }
    }

    /// The whole document. Reads a value, then what may follow it in its container, until the
    /// top-level value is complete; the same grammar, in the same order, as `jcs`'s parser.
    fn run(&mut self) -> Result<(), JcsError> {
        self.skip_whitespace();
        loop {
            // A value starts at `pos`.
            let mut complete = self.value()?;
            // Close every container that this value completes.
            while complete {
                let Some(top) = self.stack.last() else {
                    self.skip_whitespace();
                    if self.pos < self.bytes.len() {
                        return Err(JcsError::TrailingData { offset: self.pos });
                    }
                    return Ok(());
                };
                let object = top.object;
                if object {
                    self.end_member();
                }
                self.skip_whitespace();
                match (self.peek(), object) {
                    (Some(b','), _) => {
                        self.pos += 1;
                        self.out.push(b',');
                        self.skip_whitespace();
                        if object {
                            self.begin_member()?;
                        }
                        complete = false;
                    }
                    (Some(b']'), false) => {
                        self.pos += 1;
                        self.out.push(b']');
                        self.stack.pop();
                    }
                    (Some(b'}'), true) => {
                        self.pos += 1;
                        self.close_object();
                    }
                    (_, false) => return Err(self.unexpected(self.pos, "',' or ']' in array")),
                    (_, true) => return Err(self.unexpected(self.pos, "',' or '}' in object")),
                }
            }
        }
    }

    /// Reads the value at `pos`. True if it is complete; false if it opened a container whose
    /// first item (or first member's value) starts at `pos` now.
    fn value(&mut self) -> Result<bool, JcsError> {
        match self.peek() {
            Some(b'{') => {
                self.open(true)?;
                self.skip_whitespace();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    self.close_object();
                    return Ok(true);
                }
                self.begin_member()?;
                Ok(false)
            }
            Some(b'[') => {
                self.open(false)?;
                self.skip_whitespace();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    self.out.push(b']');
                    self.stack.pop();
                    return Ok(true);
                }
                Ok(false)
            }
            Some(b'"') => {
                self.pos += 1;
                let mut out = std::mem::take(&mut self.out);
                let result = self.string(&mut Canonical(&mut out));
                self.out = out;
                result.map(|_| true)
            }
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number().map(|()| true),
            _ => Err(self.unexpected(self.pos, EXPECTED_VALUE)),
        }
    }

    /// Opens the array or object whose bracket is at `pos`, if it is within [`MAX_DEPTH`].
    fn open(&mut self, object: bool) -> Result<(), JcsError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(JcsError::TooDeep { offset: self.pos, max: MAX_DEPTH });
        }
        self.pos += 1;
        self.out.push(if object { b'{' } else { b'[' });
        self.stack.push(Frame { object, segments: self.segments.len(), keys: self.keys.len(), seen: None });
        self.deepest = self.deepest.max(self.stack.len());
        Ok(())
    }

    fn literal(&mut self, literal: &'static str) -> Result<bool, JcsError> {
        for (i, &want) in literal.as_bytes().iter().enumerate() {
            if self.bytes.get(self.pos + i) != Some(&want) {
                return Err(self.unexpected(self.pos + i, literal));
            }
        }
        self.pos += literal.len();
        self.out.extend_from_slice(literal.as_bytes());
        Ok(true)
    }

    /// Reads a member's key, its duplicate check and its colon, and writes `"key":`; `pos` is
    /// then at the value.
    fn begin_member(&mut self) -> Result<(), JcsError> {
        self.skip_whitespace();
        if self.peek() != Some(b'"') {
            return Err(self.unexpected(self.pos, "a string key in double quotes"));
        }
        let key_offset = self.pos;
        self.pos += 1;
        let key_start = self.keys.len();
        let mut keys = std::mem::take(&mut self.keys);
        let read = self.string(&mut Plain(&mut keys));
        self.keys = keys;
        let escaped = read?;
        self.check_duplicate(key_start, key_offset)?;
        self.skip_whitespace();
        if self.peek() != Some(b':') {
            return Err(self.unexpected(self.pos, "':' after object key"));
        }
        self.pos += 1;
        self.skip_whitespace();

        let start = self.out.len();
        let key = self.keys.get(key_start..).unwrap_or_default();
        if escaped {
            write_string(key, &mut self.out);
        } else {
            // Nothing in it needs escaping (a run stops at every byte that does): as it is.
            self.out.push(b'"');
            self.out.extend_from_slice(key.as_bytes());
            self.out.push(b'"');
        }
        self.out.push(b':');
        if self.stack.len() == 1 {
            self.deepest = 1;
        }
        self.segments.push(Segment {
            key: key_start..self.keys.len(),
            start,
            value: self.out.len()..self.out.len(),
            source: self.pos..self.pos,
            depth: 0,
        });
        Ok(())
    }

    /// Refuses the key just read (at `key_start..` of `keys`, its quote at `key_offset`) if the
    /// open object already has it; the second occurrence is the error, as in `jcs::parse`.
    fn check_duplicate(&mut self, key_start: usize, key_offset: usize) -> Result<(), JcsError> {
        let Some(frame) = self.stack.last_mut() else { return Ok(()) };
        let key = self.keys.get(key_start..).unwrap_or_default();
        let duplicate = if let Some(seen) = frame.seen.as_mut() {
            !seen.insert(key.into())
        } else {
            let earlier = self.segments.get(frame.segments..).unwrap_or_default();
            let duplicate = earlier.iter().any(|s| self.keys.get(s.key.clone()) == Some(key));
            if !duplicate && earlier.len() + 1 > LINEAR_KEYS {
                let mut seen: BTreeSet<Box<str>> =
                    earlier.iter().map(|s| self.keys.get(s.key.clone()).unwrap_or_default().into()).collect();
                seen.insert(key.into());
                frame.seen = Some(seen);
            }
            duplicate
        };
        if duplicate {
            return Err(JcsError::DuplicateKey { offset: key_offset, key: key.to_owned() });
        }
        Ok(())
    }

    /// The value of the open object's last member is complete (whitespace after it not read).
    fn end_member(&mut self) {
        let top_level = self.stack.len() == 1;
        let (end, pos, deepest) = (self.out.len(), self.pos, self.deepest);
        if let Some(s) = self.segments.last_mut() {
            s.value.end = end;
            if top_level {
                s.source.end = pos;
                s.depth = deepest.saturating_sub(1);
            }
        }
    }

    /// The object's `}` was read: writes it, with the members put in RFC 8785 order first.
    fn close_object(&mut self) {
        let Some(frame) = self.stack.pop() else { return };
        if self.keep_top && self.stack.is_empty() {
            self.out.push(b'}');
            return;
        }
        let segments = self.segments.get_mut(frame.segments..).unwrap_or_default();
        let keys = &self.keys;
        let key = |s: &Segment| keys.get(s.key.clone()).unwrap_or_default();
        let sorted = segments.windows(2).all(|w| match w {
            [a, b] => compare_keys(key(a), key(b)) == Ordering::Less,
            _ => true,
        });
        if !sorted && let (Some(first), Some(last)) = (segments.first(), segments.last()) {
            let (from, to) = (first.start, last.value.end);
            self.scratch.clear();
            self.scratch.extend_from_slice(self.out.get(from..to).unwrap_or_default());
            self.out.truncate(from);
            segments.sort_unstable_by(|a, b| compare_keys(key(a), key(b)));
            for (i, s) in segments.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                let text = self.scratch.get(s.start - from..s.value.end - from).unwrap_or_default();
                self.out.extend_from_slice(text);
            }
        }
        self.out.push(b'}');
        self.segments.truncate(frame.segments);
        self.keys.truncate(frame.keys);
    }

    /// Reads a string whose opening quote is just before `pos`, through its closing quote,
    /// into `sink`; every check of `jcs`'s `parse_string`, at the same offsets. True if it held
    /// an escape sequence (else its text in the input is its canonical text, quotes aside).
    fn string(&mut self, sink: &mut impl Sink) -> Result<bool, JcsError> {
        sink.open();
        let mut run_start = self.pos;
        let mut escaped = false;
        loop {
            // Skip the bytes that are copied as they are: eight at a time while none of them
            // stops a run, then one by one.
            self.pos = skip_words(self.bytes, self.pos);
            while let Some(&b) = self.bytes.get(self.pos) {
                if STOPS_A_RUN[usize::from(b)] {
                    break;
                }
                self.pos += 1;
            }
            match self.peek() {
                None => return Err(self.unexpected(self.pos, "'\"' to close the string")),
                Some(b'"') => {
                    self.push_run(sink, run_start)?;
                    self.pos += 1;
                    sink.close();
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    self.push_run(sink, run_start)?;
                    let c = self.escape()?;
                    sink.push_char(c);
                    run_start = self.pos;
                    escaped = true;
                }
                Some(byte) => return Err(JcsError::ControlCharacter { offset: self.pos, byte }),
            }
        }
    }

    fn push_run(&self, sink: &mut impl Sink, run_start: usize) -> Result<(), JcsError> {
        let run = self.text.get(run_start..self.pos).ok_or(JcsError::InvalidUtf8 { offset: run_start })?;
        sink.push_str(run);
        Ok(())
    }

    /// Reads one escape sequence at its backslash and returns the character it stands for.
    fn escape(&mut self) -> Result<char, JcsError> {
        let start = self.pos;
        self.pos += 1; // '\\'
        let simple = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let unit = self.hex4(start)?;
                let c = match unit {
                    0xD800..=0xDBFF => {
                        let low_start = self.pos;
                        if self.bytes.get(low_start..low_start + 2) != Some(b"\\u") {
                            return Err(JcsError::LoneSurrogate { offset: start, code_unit: unit });
                        }
                        self.pos += 2;
                        let low = self.hex4(low_start)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(JcsError::LoneSurrogate { offset: start, code_unit: unit });
                        }
                        char::from_u32(
                            0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00),
                        )
                    }
                    _ => char::from_u32(u32::from(unit)),
                };
                return c.ok_or(JcsError::LoneSurrogate { offset: start, code_unit: unit });
            }
            None => return Err(self.unexpected(self.pos, "an escape character after '\\'")),
            Some(_) => {
                let found = self.text.get(self.pos..).and_then(|r| r.chars().next()).unwrap_or('\\');
                return Err(JcsError::InvalidEscape { offset: start, found });
            }
        };
        self.pos += 1;
        Ok(simple)
    }

    fn hex4(&mut self, escape_start: usize) -> Result<u16, JcsError> {
        let mut unit: u16 = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or(JcsError::InvalidUnicodeEscape { offset: escape_start })?;
            unit = (unit << 4) | digit as u16;
            self.pos += 1;
        }
        Ok(unit)
    }

    /// Reads a number (RFC 8259 grammar, then the number rule of `jcs`) and writes its ES6 form.
    fn number(&mut self) -> Result<(), JcsError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(JcsError::LeadingZero { offset: start });
                }
            }
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => {
                return Err(JcsError::InvalidNumber { offset: self.pos, detail: "a digit must follow '-'" });
            }
        }
        let int_digits = self.pos - int_start;
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(JcsError::InvalidNumber {
                    offset: self.pos,
                    detail: "at least one digit must follow the decimal point",
                });
            }
            self.skip_digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(JcsError::InvalidNumber {
                    offset: self.pos,
                    detail: "at least one digit must follow the exponent marker",
                });
            }
            self.skip_digits();
        }
        let literal = self.bytes.get(start..self.pos).unwrap_or_default();
        if integer && int_digits <= SHORT_INTEGER_DIGITS {
            // An integer below 10^15 is an exact double, and ES6 prints it as written (no
            // leading zeros: the grammar refused them), except that -0 prints as 0.
            if literal == b"-0" {
                self.out.push(b'0');
            } else {
                self.out.extend_from_slice(literal);
            }
            return Ok(());
        }
        let literal = self.text.get(start..self.pos).ok_or(JcsError::InvalidUtf8 { offset: start })?;
        exact_number(literal, start, &mut self.scratch)?;
        self.out.extend_from_slice(&self.scratch);
        Ok(())
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }
}

/// RFC 8785 §3.2.3 order of two unescaped keys (UTF-16 code units), by bytes where that is the
/// same: UTF-8 byte order is code point order, which differs from UTF-16 order only between a
/// character above U+FFFF and one in U+E000–U+FFFF, both of which start with a byte ≥ 0xEE.
fn compare_keys(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).position(|(p, q)| p != q) {
        None => x.len().cmp(&y.len()),
        Some(i) => match (x.get(i), y.get(i)) {
            (Some(&p), Some(&q)) if p < 0xEE || q < 0xEE => p.cmp(&q),
            _ => cmp_utf16(a, b),
        },
    }
}

/// Where a string's characters go: the canonical output, or an unescaped key.
trait Sink {
    fn open(&mut self) {}
    fn close(&mut self) {}
    /// Text with no `"`, `\` or control character.
    fn push_str(&mut self, s: &str);
    /// A character from an escape sequence.
    fn push_char(&mut self, c: char);
}

/// Writes the string as RFC 8785 §3.2.2.2 does: only `"`, `\` and controls escaped.
struct Canonical<'o>(&'o mut Vec<u8>);

impl Sink for Canonical<'_> {
    fn open(&mut self) {
        self.0.push(b'"');
    }
    fn close(&mut self) {
        self.0.push(b'"');
    }
    fn push_str(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }
    fn push_char(&mut self, c: char) {
        let short: &[u8] = match c {
            '"' => b"\\\"",
            '\\' => b"\\\\",
            '\u{8}' => b"\\b",
            '\u{c}' => b"\\f",
            '\n' => b"\\n",
            '\r' => b"\\r",
            '\t' => b"\\t",
            '\u{0}'..='\u{1f}' => {
                let b = c as u8;
                self.0.extend_from_slice(b"\\u00");
                self.0.push(hex_digit(b >> 4));
                self.0.push(hex_digit(b & 0x0f));
                return;
            }
            _ => {
                let mut buf = [0u8; 4];
                self.0.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                return;
            }
        };
        self.0.extend_from_slice(short);
    }
}

/// Keeps the string unescaped.
struct Plain<'o>(&'o mut String);

impl Sink for Plain<'_> {
    fn push_str(&mut self, s: &str) {
        self.0.push_str(s);
    }
    fn push_char(&mut self, c: char) {
        self.0.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jcs;

    /// The one-pass result and the tree-based reference agree.
    fn check(doc: &str) -> Result<Vec<u8>, JcsError> {
        let got = canonicalize(doc.as_bytes());
        assert_eq!(got, jcs::canonicalize(doc.as_bytes()), "{doc:?}");
        got
    }

    #[test]
    fn agrees_with_the_tree_on_hand_picked_documents() {
        for doc in [
            "{}",
            "[]",
            " [ 1 , { } ] ",
            r#"{"b":1,"a":{"d":[1,2,{"z":0,"y":-0}],"c":"\u0000\u001f\"\\\/é\uD83D\uDE02"},"":3}"#,
            "{\"\u{FB33}\":1,\"\u{1F602}\":2,\"\u{FB33}x\":3}",
            r#"{"a\u0000b":1,"a":2,"a\"":3}"#,
            "[1.5e3,0.1,-0,-0.0,123456789012345,1234567890123456,9007199254740993,1e400,1E-7]",
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"\u0061":[}"#,
            "[1,]",
            "{\"a\" 1}",
            "tru",
            "\"abc",
            "[\"\\uD800\\u12\"]",
            "{\"a\":1}x",
            "[01]",
            "[-]",
        ] {
            let _ = check(doc);
        }
    }

    #[test]
    fn depth_is_limited_without_recursion() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(check(&ok).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(check(&deep), Err(JcsError::TooDeep { offset: MAX_DEPTH, max: MAX_DEPTH }));
        let mixed = r#"{"a":["#.repeat(40) + &"]}".repeat(40);
        let _ = check(&mixed);
    }

    #[test]
    fn many_keys_use_a_set_and_still_find_duplicates() {
        let mut doc: Vec<String> = (0..100).rev().map(|i| format!("\"k{i}\":{i}")).collect();
        let ok = format!("{{{}}}", doc.join(","));
        assert!(check(&ok).is_ok());
        doc.push("\"k7\":0".into());
        doc.push("\"x\":[".into());
        let dup = format!("{{{}}}", doc.join(","));
        assert!(matches!(check(&dup), Err(JcsError::DuplicateKey { .. })));
    }

    #[test]
    fn members_are_kept_apart_in_input_order() {
        let doc = br#"{ "z" : [ {"b":1,"a":2} ], "a\n":"x", "n":1.0 }"#;
        let m = members(doc).unwrap().unwrap();
        let got: Vec<_> = m.iter().map(|m| (m.key, m.canonical, m.source, m.depth)).collect();
        assert_eq!(
            got,
            [
                ("z", &br#"[{"a":2,"b":1}]"#[..], &br#"[ {"b":1,"a":2} ]"#[..], 2),
                ("a\n", br#""x""#, br#""x""#, 0),
                ("n", b"1", b"1.0", 0),
            ]
        );
        assert_eq!(m.get("n").map(|m| m.canonical), Some(&b"1"[..]));
        assert!(members(b"[1]").unwrap().is_none());
        assert!(members(b" \"{\" ").unwrap().is_none());
        assert_eq!(members(b"{\"a\":}").unwrap_err(), jcs::canonicalize(b"{\"a\":}").unwrap_err());
    }

    #[test]
    fn word_skipping_stops_at_every_byte_that_ends_a_run() {
        for stop in (0u8..0x20).chain([b'"', b'\\']) {
            for at in 0..20 {
                let mut bytes = vec![b'a'; 24];
                bytes.extend([0x7f, 0x80, 0xff, b'!', b'#', b'[', b']', 0xc3]);
                bytes[at] = stop;
                let end = skip_words(&bytes, 0);
                assert!(end <= at && at < end + 8, "{stop:#x} at {at}: {end}");
            }
        }
        let plain: Vec<u8> = (0x20u8..=0xff).filter(|&b| b != b'"' && b != b'\\').collect();
        assert_eq!(skip_words(&plain, 0), plain.len() / 8 * 8);
        assert_eq!(skip_words(b"abc", 0), 0);
    }

    #[test]
    fn key_order_matches_utf16() {
        let keys = [
            "",
            "a",
            "aa",
            "b",
            "\u{7f}",
            "\u{80}",
            "\u{e000}",
            "\u{fb33}",
            "\u{ffff}",
            "\u{10000}",
            "\u{1f602}",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(compare_keys(a, b), cmp_utf16(a, b), "{a:?} {b:?}");
            }
        }
    }
}
