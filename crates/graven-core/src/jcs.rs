//! Strict RFC 8785 JSON Canonicalization Scheme (JCS), written by hand.
//!
//! Events are hashed and signed over their canonical bytes, so two parties that read the same
//! document must arrive at the same bytes *and* the same meaning. JCS pins the bytes; this module
//! adds strictness so that the meaning cannot drift either: anything that a lenient parser would
//! quietly reinterpret is rejected with a [`JcsError`] that names the byte offset and says what to
//! fix. Nothing is ever silently changed.
//!
//! # What is accepted
//!
//! - At most [`MAX_INPUT`] bytes (checked before any parsing).
//! - Valid UTF-8 with no leading byte order mark.
//! - Exactly one JSON value (RFC 8259 grammar) with optional surrounding whitespace; only space,
//!   tab, LF and CR count as whitespace. Anything after the value is an error.
//! - Arrays and objects nested at most [`MAX_DEPTH`] levels deep (a top-level array or object is
//!   depth 1). The parser recurses once per level, so its stack use is bounded by [`MAX_DEPTH`].
//! - Object keys unique per object, compared after unescaping (`"a"` and `"\u0061"` collide).
//! - String escapes `\" \\ \/ \b \f \n \r \t \uXXXX` only. A high surrogate escape
//!   (`\uD800`–`\uDBFF`) must be immediately followed by a low surrogate escape
//!   (`\uDC00`–`\uDFFF`); any other surrogate escape is a lone surrogate and is rejected, since it
//!   has no UTF-8 encoding. Raw control characters U+0000–U+001F inside strings are rejected.
//!
//! # The number rule
//!
//! JCS serialises numbers as IEEE-754 doubles printed by ECMAScript's `Number.prototype.toString`.
//! A number literal whose value a double cannot hold would therefore be *changed* by
//! canonicalisation, and a signature over the canonical bytes would cover a value the author
//! never wrote. So after checking the RFC 8259 number grammar strictly (no leading zeros, no `+`,
//! no bare `.`, no `NaN` or `Infinity`), a number is parsed with Rust's correctly rounded
//! `str::parse::<f64>` and rejected when:
//!
//! 1. the result is not finite (for example `1e400`);
//! 2. the literal is an integer of magnitude greater than 2^53 (9007199254740992), or it rounds to
//!    a double of magnitude greater than 2^53 (every such double is an integer): integers beyond
//!    ±2^53 cannot be represented exactly, so send them as strings;
//! 3. the exact decimal value of the literal differs from the exact decimal value of the ES6 text
//!    of the parsed double. Both texts are normalised to (sign, significant digits without leading
//!    or trailing zeros, exponent) and compared; zero has no sign.
//!
//! So `1.0`, `1e2`, `0.1`, `-0` and `1E-7` are accepted (they print as `1`, `100`, `0.1`, `0` and
//! `1e-7`, the same values), while `1.00000000000000000001`, `9007199254740993` and `1e-400` are
//! rejected. `-0` canonicalises to `0`, as ES6 and JCS require.
//!
//! What is compared is the text the author wrote against the text that would be signed, so even
//! the exact binary expansion of a double (`0.1000000000000000055511151231257827021181583404541015625`)
//! is rejected when its ES6 text is shorter (`0.1`), and so is a shortest text that breaks an exact
//! tie differently from ES6 (Rust's `Display` prints `1676637145909720.3` where ES6, `ryu` and
//! `serde_json` print `1676637145909720.2`). The error carries the text to send instead.
//!
//! # Canonical output
//!
//! [`Value::write_canonical`] writes RFC 8785 §3.2: no whitespace; strings with only `\" \\ \b \f
//! \n \r \t` and lowercase `\u00xx` escapes (for the remaining control characters), everything else
//! as literal UTF-8 (including U+2028, U+2029 and non-BMP characters); numbers in ES6 form; object
//! members sorted by the UTF-16 code units of their unescaped keys (§3.2.3), which differs from
//! UTF-8 byte order for characters above U+FFFF versus U+E000–U+FFFF.
//!
//! `jcs_direct` gives the same bytes and the same errors in one pass, without a tree, and is what
//! the ingest path uses; [`canonicalize`] here stays the reference it is tested against.

use std::cmp::Ordering;
use std::collections::BTreeSet;

/// Deepest nesting of arrays and objects that [`parse`] accepts; a top-level array or object is
/// depth 1, so exactly `MAX_DEPTH` nested arrays are accepted and one more is rejected.
///
/// Events are shallow records; the limit exists so that hostile input cannot exhaust the stack
/// (the parser recurses once per level) or produce trees that are expensive to walk.
pub const MAX_DEPTH: usize = 64;

/// Largest input, in bytes, that [`parse`] and [`canonicalize`] accept. Larger inputs are rejected
/// before any parsing so that the cost of a hostile document is bounded up front.
pub const MAX_INPUT: usize = 1 << 20;

/// 2^53 as decimal digits: the largest magnitude up to which every integer is an exact double.
const MAX_EXACT_INTEGER_DIGITS: &[u8; 16] = b"9007199254740992";

/// 2^53 as a double.
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// A parsed JSON value.
///
/// [`Value::Object`] keeps members in input order (so error reporting and round trips can refer to
/// the document as written); [`Value::write_canonical`] sorts them. Values returned by [`parse`]
/// never contain duplicate keys or non-finite numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number; always finite and exactly equal to its literal when produced by [`parse`].
    Number(f64),
    /// A string, unescaped.
    String(String),
    /// An array, in order.
    Array(Vec<Value>),
    /// An object's members in input order, keys unescaped.
    Object(Vec<(String, Value)>),
}

/// Why an input was rejected. Every variant carries the byte `offset` into the input where the
/// problem is (see [`JcsError::offset`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JcsError {
    /// The input is longer than [`MAX_INPUT`]; `offset` is the first byte past the limit.
    #[error(
        "input too large at byte {offset}: {len} bytes is over the {max}-byte limit; send a \
         smaller document"
    )]
    InputTooLarge {
        /// First byte beyond the limit.
        offset: usize,
        /// Length of the input.
        len: usize,
        /// The limit, [`MAX_INPUT`].
        max: usize,
    },
    /// The input is not valid UTF-8.
    #[error("invalid UTF-8 at byte {offset}: JSON text must be UTF-8; re-encode the document")]
    InvalidUtf8 {
        /// First byte of the invalid sequence.
        offset: usize,
    },
    /// The input starts with a UTF-8 byte order mark.
    #[error("byte order mark at byte {offset}: JSON text must not start with U+FEFF; strip the BOM")]
    ByteOrderMark {
        /// Always 0.
        offset: usize,
    },
    /// The input ended in the middle of a value.
    #[error("unexpected end of input at byte {offset}: expected {expected}; the document is truncated")]
    UnexpectedEnd {
        /// The input length.
        offset: usize,
        /// What the grammar required next.
        expected: &'static str,
    },
    /// A character the grammar does not allow here.
    #[error("unexpected character {found:?} at byte {offset}: expected {expected}")]
    UnexpectedCharacter {
        /// Where the character starts.
        offset: usize,
        /// The character found.
        found: char,
        /// What the grammar required instead.
        expected: &'static str,
    },
    /// Something other than whitespace follows the single top-level value.
    #[error(
        "trailing data at byte {offset}: the input must hold exactly one JSON value; remove \
         everything after it"
    )]
    TrailingData {
        /// First non-whitespace byte after the value.
        offset: usize,
    },
    /// An object key appears twice (after unescaping).
    #[error("duplicate key {key:?} at byte {offset}: each key may appear once per object")]
    DuplicateKey {
        /// Opening quote of the second occurrence.
        offset: usize,
        /// The unescaped key.
        key: String,
    },
    /// A backslash followed by a character that is not a JSON escape.
    #[error(
        "invalid escape \\{found} at byte {offset}: only \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \
         \\uXXXX are allowed; write a literal backslash as \\\\"
    )]
    InvalidEscape {
        /// The backslash.
        offset: usize,
        /// The character after the backslash.
        found: char,
    },
    /// `\u` not followed by four hexadecimal digits.
    #[error(
        "invalid \\u escape at byte {offset}: \\u must be followed by exactly four hexadecimal \
         digits"
    )]
    InvalidUnicodeEscape {
        /// The backslash of the `\u` escape.
        offset: usize,
    },
    /// A surrogate escape that is not part of a high-then-low pair.
    #[error(
        "lone surrogate \\u{code_unit:04X} at byte {offset}: a high surrogate \\uD800-\\uDBFF must \
         be immediately followed by a low surrogate \\uDC00-\\uDFFF, and a low surrogate may only \
         follow a high one; escape the character as a valid pair or write it as UTF-8"
    )]
    LoneSurrogate {
        /// The backslash of the offending escape.
        offset: usize,
        /// The surrogate code unit.
        code_unit: u16,
    },
    /// An unescaped control character (U+0000–U+001F) inside a string.
    #[error(
        "raw control character U+{byte:04X} in a string at byte {offset}: control characters must \
         be escaped, e.g. \\n, \\t or \\u001f"
    )]
    ControlCharacter {
        /// The control byte.
        offset: usize,
        /// Its value.
        byte: u8,
    },
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    #[error(
        "nesting too deep at byte {offset}: arrays and objects may nest at most {max} levels; \
         flatten the document"
    )]
    TooDeep {
        /// The bracket or brace that opens level `max + 1`.
        offset: usize,
        /// The limit, [`MAX_DEPTH`].
        max: usize,
    },
    /// A number with a superfluous leading zero, like `01`.
    #[error(
        "leading zero in number at byte {offset}: JSON numbers must not start with 0 followed by \
         a digit; drop the leading zero"
    )]
    LeadingZero {
        /// Start of the number.
        offset: usize,
    },
    /// A number literal that breaks the RFC 8259 grammar.
    #[error("malformed number at byte {offset}: {detail}")]
    InvalidNumber {
        /// Where the grammar broke.
        offset: usize,
        /// What was required.
        detail: &'static str,
    },
    /// A number whose magnitude overflows a double.
    #[error(
        "number out of range at byte {offset}: it overflows an IEEE-754 double; send it as a \
         string"
    )]
    NumberOutOfRange {
        /// Start of the number.
        offset: usize,
    },
    /// An integer (or a value rounding to an integer) of magnitude above 2^53.
    #[error(
        "number at byte {offset}: integer beyond ±2^53 cannot be represented exactly; send it as \
         a string"
    )]
    IntegerTooLarge {
        /// Start of the number.
        offset: usize,
    },
    /// A number whose value would change when stored as a double.
    #[error(
        "inexact number at byte {offset}: an IEEE-754 double cannot hold it exactly and it would \
         become {canonical}; send {canonical} instead, or send the value as a string"
    )]
    InexactNumber {
        /// Start of the number.
        offset: usize,
        /// The ES6 text of the nearest double.
        canonical: String,
    },
}

impl JcsError {
    /// The byte offset into the input where the problem is.
    pub fn offset(&self) -> usize {
        match self {
            Self::InputTooLarge { offset, .. }
            | Self::InvalidUtf8 { offset }
            | Self::ByteOrderMark { offset }
            | Self::UnexpectedEnd { offset, .. }
            | Self::UnexpectedCharacter { offset, .. }
            | Self::TrailingData { offset }
            | Self::DuplicateKey { offset, .. }
            | Self::InvalidEscape { offset, .. }
            | Self::InvalidUnicodeEscape { offset }
            | Self::LoneSurrogate { offset, .. }
            | Self::ControlCharacter { offset, .. }
            | Self::TooDeep { offset, .. }
            | Self::LeadingZero { offset }
            | Self::InvalidNumber { offset, .. }
            | Self::NumberOutOfRange { offset }
            | Self::IntegerTooLarge { offset }
            | Self::InexactNumber { offset, .. } => *offset,
        }
    }
}

/// Parses `input` strictly (see the module docs) and returns its RFC 8785 canonical bytes.
pub fn canonicalize(input: &[u8]) -> Result<Vec<u8>, JcsError> {
    let value = parse(input)?;
    let mut out = Vec::with_capacity(input.len());
    value.write_canonical(&mut out);
    Ok(out)
}

/// Parses `input` strictly into a [`Value`] tree; see the module docs for every rule enforced.
pub fn parse(input: &[u8]) -> Result<Value, JcsError> {
    if input.len() > MAX_INPUT {
        return Err(JcsError::InputTooLarge { offset: MAX_INPUT, len: input.len(), max: MAX_INPUT });
    }
    let text = std::str::from_utf8(input).map_err(|e| JcsError::InvalidUtf8 { offset: e.valid_up_to() })?;
    if text.starts_with('\u{FEFF}') {
        return Err(JcsError::ByteOrderMark { offset: 0 });
    }
    let mut parser = Parser { text, bytes: input, pos: 0 };
    parser.skip_whitespace();
    let value = parser.parse_value(0)?;
    parser.skip_whitespace();
    if parser.pos < input.len() {
        return Err(JcsError::TrailingData { offset: parser.pos });
    }
    Ok(value)
}

impl Value {
    /// How deeply arrays and objects nest in this value, counted as [`parse`] counts them: a
    /// scalar is 0, `[]` and `{}` are 1, `[[1]]` is 2. Walks with an explicit stack, so a
    /// hand-built value of any depth is measured without recursion.
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack: Vec<(&Value, usize)> = vec![(self, 0)];
        while let Some((v, above)) = stack.pop() {
            match v {
                Value::Array(items) => {
                    deepest = deepest.max(above + 1);
                    stack.extend(items.iter().map(|i| (i, above + 1)));
                }
                Value::Object(members) => {
                    deepest = deepest.max(above + 1);
                    stack.extend(members.iter().map(|(_, m)| (m, above + 1)));
                }
                _ => {}
            }
        }
        deepest
    }

    /// Appends the RFC 8785 canonical form of this value to `out`.
    ///
    /// The walk uses an explicit stack rather than recursion, so even a hand-built tree deeper
    /// than [`MAX_DEPTH`] cannot overflow the call stack here. Values from [`parse`] are always
    /// valid JCS; for hand-built values, a non-finite number is written as `null` (what
    /// ECMAScript's `JSON.stringify` does), and duplicate keys are written in input order.
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        /// A container being written: its remaining children and whether one was written yet.
        enum Frame<'a> {
            Array(std::slice::Iter<'a, Value>, bool),
            Object(std::vec::IntoIter<&'a (String, Value)>, bool),
        }

        let mut stack: Vec<Frame<'_>> = Vec::new();
        let mut next = Some(self);
        loop {
            if let Some(value) = next.take() {
                match value {
                    Value::Null => out.extend_from_slice(b"null"),
                    Value::Bool(true) => out.extend_from_slice(b"true"),
                    Value::Bool(false) => out.extend_from_slice(b"false"),
                    Value::Number(n) => write_number(*n, out),
                    Value::String(s) => write_string(s, out),
                    Value::Array(items) => {
                        out.push(b'[');
                        stack.push(Frame::Array(items.iter(), false));
                    }
                    Value::Object(members) => {
                        out.push(b'{');
                        let mut sorted: Vec<&(String, Value)> = members.iter().collect();
                        // Stable, so equal keys (only possible in hand-built values) keep order.
                        sorted.sort_by(|a, b| cmp_utf16(&a.0, &b.0));
                        stack.push(Frame::Object(sorted.into_iter(), false));
                    }
                }
            }
            let Some(top) = stack.last_mut() else { break };
            match top {
                Frame::Array(items, started) => match items.next() {
                    Some(item) => {
                        if *started {
                            out.push(b',');
                        }
                        *started = true;
                        next = Some(item);
                    }
                    None => {
                        out.push(b']');
                        stack.pop();
                    }
                },
                Frame::Object(members, started) => match members.next() {
                    Some((key, value)) => {
                        if *started {
                            out.push(b',');
                        }
                        *started = true;
                        write_string(key, out);
                        out.push(b':');
                        next = Some(value);
                    }
                    None => {
                        out.push(b'}');
                        stack.pop();
                    }
                },
            }
        }
    }
}

/// RFC 8785 §3.2.3: order keys by their UTF-16 code units, not by UTF-8 bytes or code points.
pub(crate) fn cmp_utf16(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// RFC 8785 §3.2.2.3: ES6 `Number.prototype.toString`.
pub(crate) fn write_number(n: f64, out: &mut Vec<u8>) {
    if !n.is_finite() {
        // Unreachable for parsed values; JSON.stringify's answer for hand-built ones.
        out.extend_from_slice(b"null");
    } else if n == 0.0 {
        // Covers -0, which ES6 prints as "0"; made explicit rather than left to the formatter.
        out.push(b'0');
    } else if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        // An integer below 2^53 is exact, and ES6 prints it as its plain decimal digits (no
        // exponent below 1e21): the common case, without the general formatter.
        let mut v = n.abs() as u64;
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        while v > 0 {
            at -= 1;
            digits[at] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        if n < 0.0 {
            out.push(b'-');
        }
        out.extend_from_slice(&digits[at..]);
    } else {
        out.extend_from_slice(ryu_js::Buffer::new().format_finite(n).as_bytes());
    }
}

/// RFC 8785 §3.2.2.2: escape only `"`, `\` and U+0000–U+001F, with the short forms where JSON
/// has them and lowercase `\u00xx` otherwise; everything else is copied as UTF-8. Appends `s`,
/// quoted, as [`Value::String`] would be written.
pub fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        // Every byte matched above is ASCII, so the run before it ends on a char boundary.
        out.extend_from_slice(bytes.get(run_start..i).unwrap_or_default());
        run_start = i + 1;
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0x0f));
        } else {
            out.extend_from_slice(short);
        }
    }
    out.extend_from_slice(bytes.get(run_start..).unwrap_or_default());
    out.push(b'"');
}

/// Lowercase hex digit for a nibble (`n` < 16).
pub(crate) fn hex_digit(n: u8) -> u8 {
    if n < 10 { b'0' + n } else { b'a' + (n - 10) }
}

/// Recursive-descent parser over validated UTF-8. `pos` is always a byte offset into `bytes`;
/// all reads go through `get`, so malformed input cannot cause an out-of-bounds panic.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The error for "expected `expected` at `pos`", distinguishing end of input from a wrong
    /// character (reported as the whole character, not a byte of it).
    fn unexpected(&self, pos: usize, expected: &'static str) -> JcsError {
        match self.text.get(pos..).and_then(|rest| rest.chars().next()) {
            Some(found) => JcsError::UnexpectedCharacter { offset: pos, found, expected },
            None => JcsError::UnexpectedEnd { offset: self.bytes.len(), expected },
        }
    }

    /// Parses one value starting at `pos` (no leading whitespace). `depth` is the number of
    /// arrays and objects that enclose it.
    fn parse_value(&mut self, depth: usize) -> Result<Value, JcsError> {
        const EXPECTED: &str = "a JSON value (object, array, string, number, true, false or null)";
        match self.peek() {
            Some(b'{') => self.parse_object(depth + 1),
            Some(b'[') => self.parse_array(depth + 1),
            Some(b'"') => self.parse_string().map(Value::String),
            Some(b't') => self.parse_literal("true", Value::Bool(true)),
            Some(b'f') => self.parse_literal("false", Value::Bool(false)),
            Some(b'n') => self.parse_literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.parse_number().map(Value::Number),
            _ => Err(self.unexpected(self.pos, EXPECTED)),
        }
    }

    fn parse_literal(&mut self, literal: &'static str, value: Value) -> Result<Value, JcsError> {
        for (i, &want) in literal.as_bytes().iter().enumerate() {
            if self.bytes.get(self.pos + i) != Some(&want) {
                return Err(self.unexpected(self.pos + i, literal));
            }
        }
        self.pos += literal.len();
        Ok(value)
    }

    /// Rejects the container opening at `pos` if it would be at `depth` > [`MAX_DEPTH`]. Checked
    /// before descending, which is what bounds the recursion.
    fn check_depth(&self, depth: usize) -> Result<(), JcsError> {
        if depth > MAX_DEPTH {
            return Err(JcsError::TooDeep { offset: self.pos, max: MAX_DEPTH });
        }
        Ok(())
    }

    fn parse_array(&mut self, depth: usize) -> Result<Value, JcsError> {
        self.check_depth(depth)?;
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.parse_value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.unexpected(self.pos, "',' or ']' in array")),
            }
        }
    }

    fn parse_object(&mut self, depth: usize) -> Result<Value, JcsError> {
        self.check_depth(depth)?;
        self.pos += 1; // '{'
        let mut members = Vec::new();
        // Ordered set: deterministic and O(log n) per key, so many keys cannot make this slow.
        let mut seen = BTreeSet::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected(self.pos, "a string key in double quotes"));
            }
            let key_offset = self.pos;
            let key = self.parse_string()?;
            if seen.contains(&key) {
                return Err(JcsError::DuplicateKey { offset: key_offset, key });
            }
            seen.insert(key.clone());
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.unexpected(self.pos, "':' after object key"));
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = self.parse_value(depth)?;
            members.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.unexpected(self.pos, "',' or '}' in object")),
            }
        }
    }

    /// Parses a string starting at its opening quote and returns it unescaped.
    fn parse_string(&mut self) -> Result<String, JcsError> {
        self.pos += 1; // '"'
        let mut out = String::new();
        let mut run_start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.unexpected(self.pos, "'\"' to close the string")),
                Some(b'"') => {
                    self.push_run(&mut out, run_start)?;
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.push_run(&mut out, run_start)?;
                    self.parse_escape(&mut out)?;
                    run_start = self.pos;
                }
                Some(byte @ 0x00..=0x1f) => {
                    return Err(JcsError::ControlCharacter { offset: self.pos, byte });
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Copies the unescaped run `run_start..pos` into `out`. Runs end at ASCII bytes, hence on
    /// char boundaries; the error arm only exists so that no path can panic.
    fn push_run(&self, out: &mut String, run_start: usize) -> Result<(), JcsError> {
        let run = self.text.get(run_start..self.pos).ok_or(JcsError::InvalidUtf8 { offset: run_start })?;
        out.push_str(run);
        Ok(())
    }

    /// Parses one escape sequence starting at its backslash.
    fn parse_escape(&mut self, out: &mut String) -> Result<(), JcsError> {
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
                let unit = self.parse_hex4(start)?;
                let c = match unit {
                    0xD800..=0xDBFF => {
                        let low_start = self.pos;
                        if self.bytes.get(low_start..low_start + 2) != Some(b"\\u") {
                            return Err(JcsError::LoneSurrogate { offset: start, code_unit: unit });
                        }
                        self.pos += 2;
                        let low = self.parse_hex4(low_start)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(JcsError::LoneSurrogate { offset: start, code_unit: unit });
                        }
                        let scalar = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                        char::from_u32(scalar)
                    }
                    _ => char::from_u32(u32::from(unit)),
                };
                // `None` only for a low surrogate with no high one before it.
                let c = c.ok_or(JcsError::LoneSurrogate { offset: start, code_unit: unit })?;
                out.push(c);
                return Ok(());
            }
            None => return Err(self.unexpected(self.pos, "an escape character after '\\'")),
            Some(_) => {
                let found = self.text.get(self.pos..).and_then(|r| r.chars().next()).unwrap_or('\\');
                return Err(JcsError::InvalidEscape { offset: start, found });
            }
        };
        self.pos += 1;
        out.push(simple);
        Ok(())
    }

    /// Reads four hex digits at `pos` as a UTF-16 code unit; `escape_start` locates the error.
    fn parse_hex4(&mut self, escape_start: usize) -> Result<u16, JcsError> {
        let mut unit: u16 = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or(JcsError::InvalidUnicodeEscape { offset: escape_start })?;
            // Four nibbles fill exactly 16 bits, so the shift never loses a digit.
            unit = (unit << 4) | digit as u16;
            self.pos += 1;
        }
        Ok(unit)
    }

    /// Parses a number per the RFC 8259 grammar and the exactness rule in the module docs.
    fn parse_number(&mut self) -> Result<f64, JcsError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
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
        if self.peek() == Some(b'.') {
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

        let literal = self.text.get(start..self.pos).ok_or(JcsError::InvalidUtf8 { offset: start })?;
        exact_number(literal, start, &mut Vec::new())
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }
}

/// The number rule of the module docs, for a `literal` that already passed the RFC 8259 number
/// grammar and starts at byte `start`: its value, with its ES6 text left in `canonical`
/// (cleared first). Shared by [`parse`] and the one-pass canonicaliser (`jcs_direct`).
pub(crate) fn exact_number(literal: &str, start: usize, canonical: &mut Vec<u8>) -> Result<f64, JcsError> {
    let value: f64 = literal.parse().map_err(|_| JcsError::InvalidNumber {
        offset: start,
        detail: "not a number Rust can parse (this is a bug: the grammar check passed)",
    })?;
    if !value.is_finite() {
        return Err(JcsError::NumberOutOfRange { offset: start });
    }
    let written = Decimal::from_literal(literal);
    if written.is_integer_beyond_2_53() || value.abs() > MAX_EXACT_INTEGER {
        return Err(JcsError::IntegerTooLarge { offset: start });
    }
    canonical.clear();
    write_number(value, canonical);
    let text = std::str::from_utf8(canonical).map_err(|_| JcsError::InvalidNumber {
        offset: start,
        detail: "not a number Rust can print (this is a bug: the formatter writes ASCII)",
    })?;
    if Decimal::from_literal(text) != written {
        return Err(JcsError::InexactNumber { offset: start, canonical: text.to_owned() });
    }
    Ok(value)
}

/// The exact value of a decimal literal as `(-1)^negative × digits × 10^exponent`, normalised so
/// that equal values compare equal: `digits` has no leading or trailing zeros, and zero is
/// `digits = []`, `exponent = 0`, `negative = false` (JSON's `-0` and `0` denote the same value).
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

impl Decimal {
    /// Normalises a literal in JSON number syntax (which also covers ES6 output such as `1e+21`).
    /// Exponents are accumulated with saturation; a saturated exponent only arises for literals
    /// whose double is infinite or zero, which are rejected or compared correctly regardless.
    fn from_literal(literal: &str) -> Self {
        let bytes = literal.as_bytes();
        let (negative, rest) = match bytes.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, bytes),
        };
        let (mantissa, exp_text) = match rest.iter().position(|&b| b == b'e' || b == b'E') {
            Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i + 1..).unwrap_or_default()),
            None => (rest, &[][..]),
        };

        let mut digits = Vec::with_capacity(mantissa.len());
        let mut fraction_len: i64 = 0;
        let mut in_fraction = false;
        for &b in mantissa {
            if b == b'.' {
                in_fraction = true;
            } else if b.is_ascii_digit() {
                digits.push(b);
                if in_fraction {
                    fraction_len = fraction_len.saturating_add(1);
                }
            }
        }

        let (exp_negative, exp_digits) = match exp_text.split_first() {
            Some((b'-', d)) => (true, d),
            Some((b'+', d)) => (false, d),
            _ => (false, exp_text),
        };
        let mut exp: i64 = 0;
        for &b in exp_digits.iter().filter(|b| b.is_ascii_digit()) {
            exp = exp.saturating_mul(10).saturating_add(i64::from(b - b'0'));
        }
        if exp_negative {
            exp = -exp;
        }
        let mut exponent = exp.saturating_sub(fraction_len);

        let Some(first_nonzero) = digits.iter().position(|&d| d != b'0') else {
            return Self { negative: false, digits: Vec::new(), exponent: 0 };
        };
        digits.drain(..first_nonzero);
        while digits.last() == Some(&b'0') {
            digits.pop();
            exponent = exponent.saturating_add(1);
        }
        Self { negative, digits, exponent }
    }

    /// Whether this is an integer of magnitude greater than 2^53.
    fn is_integer_beyond_2_53(&self) -> bool {
        if self.digits.is_empty() || self.exponent < 0 {
            return false;
        }
        let integer_digits =
            i64::try_from(self.digits.len()).unwrap_or(i64::MAX).saturating_add(self.exponent);
        match integer_digits.cmp(&16) {
            Ordering::Less => false,
            Ordering::Greater => true,
            Ordering::Equal => {
                let padded = self.digits.iter().copied().chain(std::iter::repeat(b'0')).take(16);
                padded.cmp(MAX_EXACT_INTEGER_DIGITS.iter().copied()) == Ordering::Greater
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> Result<String, JcsError> {
        canonicalize(s.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    fn dec(s: &str) -> (bool, String, i64) {
        let d = Decimal::from_literal(s);
        (d.negative, String::from_utf8(d.digits).unwrap(), d.exponent)
    }

    #[test]
    fn depth_counts_as_the_parser_does() {
        for (doc, d) in [("1", 0), ("{}", 1), ("[]", 1), ("[[1],{}]", 2), (r#"{"a":{"b":[[]]}}"#, 4)] {
            assert_eq!(parse(doc.as_bytes()).unwrap().depth(), d, "{doc}");
        }
        let deepest = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert_eq!(parse(deepest.as_bytes()).unwrap().depth(), MAX_DEPTH);
    }

    #[test]
    fn decimal_normalisation() {
        assert_eq!(dec("0"), (false, String::new(), 0));
        assert_eq!(dec("-0.000e-5"), (false, String::new(), 0));
        assert_eq!(dec("1.0"), (false, "1".into(), 0));
        assert_eq!(dec("100"), (false, "1".into(), 2));
        assert_eq!(dec("1e2"), (false, "1".into(), 2));
        assert_eq!(dec("1e+21"), (false, "1".into(), 21));
        assert_eq!(dec("-0.00120E3"), (true, "12".into(), -1));
        assert_eq!(dec("9.999999999999997e-7"), (false, "9999999999999997".into(), -22));
        assert_eq!(Decimal::from_literal("0.1"), Decimal::from_literal("1e-1"));
        assert_ne!(Decimal::from_literal("1"), Decimal::from_literal("-1"));
        // Saturating exponents do not panic.
        let _ = dec("1e99999999999999999999999999");
        let _ = dec("1e-99999999999999999999999999");
    }

    #[test]
    fn integers_print_as_the_general_formatter_does() {
        let general = |n: f64| ryu_js::Buffer::new().format_finite(n).to_owned();
        let mut values = vec![1.0, -1.0, 9.0, 10.0, -10.0, 123_456_789.0, 1e15, 1e15 + 1.0, 4_294_967_296.0];
        values.extend([9_007_199_254_740_991.0, -9_007_199_254_740_991.0, 9_007_199_254_740_992.0, 1e20]);
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> (x % 64)) as f64;
            values.push(v);
            values.push(-v);
        }
        for n in values {
            if n == 0.0 {
                continue;
            }
            let mut out = Vec::new();
            write_number(n, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), general(n), "{n}");
        }
    }

    #[test]
    fn integer_bound() {
        let beyond = |s: &str| Decimal::from_literal(s).is_integer_beyond_2_53();
        assert!(!beyond("9007199254740992"));
        assert!(!beyond("-9007199254740992"));
        assert!(beyond("9007199254740993"));
        assert!(beyond("-9007199254740993"));
        assert!(beyond("90071992547409920"));
        assert!(!beyond("9007199254740992.5"));
        assert!(beyond("1e16"));
        assert!(!beyond("1e15"));
        assert!(!beyond("0e999"));
    }

    #[test]
    fn numbers_accepted_and_rejected() {
        assert_eq!(canon("1.0").unwrap(), "1");
        assert_eq!(canon("1e2").unwrap(), "100");
        assert_eq!(canon("0.1").unwrap(), "0.1");
        assert_eq!(canon("-0").unwrap(), "0");
        assert_eq!(canon("-0.0e7").unwrap(), "0");
        assert_eq!(canon("1E-7").unwrap(), "1e-7");
        assert_eq!(canon("9007199254740992").unwrap(), "9007199254740992");
        assert_eq!(canon("5e-324").unwrap(), "5e-324");
        assert_eq!(canon("1e-400"), Err(JcsError::InexactNumber { offset: 0, canonical: "0".into() }));
        assert_eq!(canon("9007199254740993.5"), Err(JcsError::IntegerTooLarge { offset: 0 }));
        assert_eq!(
            canon("9007199254740992.5"),
            Err(JcsError::InexactNumber { offset: 0, canonical: "9007199254740992".into() })
        );
        assert_eq!(
            canon("[1,-]"),
            Err(JcsError::InvalidNumber { offset: 4, detail: "a digit must follow '-'" })
        );
        assert!(matches!(canon("1."), Err(JcsError::InvalidNumber { offset: 2, .. })));
        assert!(matches!(canon("1e"), Err(JcsError::InvalidNumber { offset: 2, .. })));
        assert!(matches!(canon("1e+"), Err(JcsError::InvalidNumber { offset: 3, .. })));
        assert!(matches!(canon("+1"), Err(JcsError::UnexpectedCharacter { offset: 0, found: '+', .. })));
        assert!(matches!(canon(".5"), Err(JcsError::UnexpectedCharacter { offset: 0, found: '.', .. })));
        assert!(matches!(canon("NaN"), Err(JcsError::UnexpectedCharacter { offset: 0, found: 'N', .. })));
        assert!(matches!(canon("-Infinity"), Err(JcsError::InvalidNumber { offset: 1, .. })));
    }

    #[test]
    fn strings_escape_minimally() {
        assert_eq!(
            canon(r#""\u0000\u001F\u007f\/\b\f\n\r\t\"\\""#).unwrap(),
            "\"\\u0000\\u001f\u{7f}/\\b\\f\\n\\r\\t\\\"\\\\\""
        );
        assert_eq!(canon(r#""\u2028\u2029\uD83D\uDE02""#).unwrap(), "\"\u{2028}\u{2029}\u{1F602}\"");
        assert!(matches!(canon(r#""\x""#), Err(JcsError::InvalidEscape { offset: 1, found: 'x' })));
        assert!(matches!(canon(r#""\é""#), Err(JcsError::InvalidEscape { offset: 1, found: 'é' })));
        assert_eq!(canon(r#""\u12G4""#), Err(JcsError::InvalidUnicodeEscape { offset: 1 }));
        assert_eq!(canon(r#""\u12"#), Err(JcsError::InvalidUnicodeEscape { offset: 1 }));
        assert_eq!(canon(r#""\uD800\u12"#), Err(JcsError::InvalidUnicodeEscape { offset: 7 }));
        assert!(matches!(canon(r#""abc"#), Err(JcsError::UnexpectedEnd { offset: 4, .. })));
        assert!(matches!(canon(r#""abc\"#), Err(JcsError::UnexpectedEnd { offset: 5, .. })));
    }

    #[test]
    fn keys_sort_by_utf16() {
        // U+FB33 sorts after U+1F602 in UTF-16 (0xFB33 > 0xD83D) but before it in UTF-8.
        assert_eq!(canon("{\"\u{FB33}\":1,\"\u{1F602}\":2}").unwrap(), "{\"\u{1F602}\":2,\"\u{FB33}\":1}");
        assert_eq!(canon(r#"{"b":1,"a":2,"":3,"aa":4}"#).unwrap(), r#"{"":3,"a":2,"aa":4,"b":1}"#);
    }

    #[test]
    fn structure_errors() {
        assert!(matches!(canon(""), Err(JcsError::UnexpectedEnd { offset: 0, .. })));
        assert!(matches!(canon("  "), Err(JcsError::UnexpectedEnd { offset: 2, .. })));
        assert!(matches!(canon("[1,]"), Err(JcsError::UnexpectedCharacter { offset: 3, found: ']', .. })));
        assert!(matches!(canon("{\"a\":1,}"), Err(JcsError::UnexpectedCharacter { offset: 7, .. })));
        assert!(matches!(
            canon("{'a':1}"),
            Err(JcsError::UnexpectedCharacter { offset: 1, found: '\'', .. })
        ));
        assert!(matches!(canon("{\"a\" 1}"), Err(JcsError::UnexpectedCharacter { offset: 5, .. })));
        assert!(matches!(canon("[1 2]"), Err(JcsError::UnexpectedCharacter { offset: 3, .. })));
        assert!(matches!(canon("tru"), Err(JcsError::UnexpectedEnd { offset: 3, .. })));
        assert!(matches!(canon("trUe"), Err(JcsError::UnexpectedCharacter { offset: 2, found: 'U', .. })));
        assert!(matches!(
            canon("[\u{a0}1]"),
            Err(JcsError::UnexpectedCharacter { offset: 1, found: '\u{a0}', .. })
        ));
        assert!(matches!(canon("\u{c}1"), Err(JcsError::UnexpectedCharacter { offset: 0, .. })));
        assert!(matches!(canon("1 /* c */"), Err(JcsError::TrailingData { offset: 2 })));
        assert_eq!(canon(" \t\r\n[ 1 , { } ]\n").unwrap(), "[1,{}]");
    }

    #[test]
    fn offsets_and_messages() {
        let err = canon(r#"{"x": 1, "y": 2, "a": 3, "a": 4}"#).unwrap_err();
        assert_eq!(err.offset(), 25);
        assert_eq!(err.to_string(), "duplicate key \"a\" at byte 25: each key may appear once per object");
        let err = canon("9007199254740993").unwrap_err();
        assert_eq!(
            err.to_string(),
            "number at byte 0: integer beyond ±2^53 cannot be represented exactly; send it as a string"
        );
        let err = canon(r#""\udc00""#).unwrap_err();
        assert!(err.to_string().starts_with("lone surrogate \\uDC00 at byte 1: "), "{err}");
    }

    #[test]
    fn hand_built_values() {
        let mut out = Vec::new();
        Value::Array(vec![Value::Number(f64::NAN), Value::Number(f64::NEG_INFINITY), Value::Number(-0.0)])
            .write_canonical(&mut out);
        assert_eq!(out, b"[null,null,0]");

        // Far deeper than MAX_DEPTH: the writer must not recurse.
        let mut deep = Value::Null;
        for _ in 0..10_000 {
            deep = Value::Array(vec![deep]);
        }
        let mut out = Vec::new();
        deep.write_canonical(&mut out);
        assert_eq!(out.len(), 2 * 10_000 + 4);
        // Drop iteratively too, so the test itself does not overflow the stack in debug builds.
        let mut cur = deep;
        while let Value::Array(mut items) = cur {
            cur = items.pop().unwrap_or(Value::Null);
        }
    }
}
