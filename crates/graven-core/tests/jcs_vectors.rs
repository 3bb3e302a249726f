//! RFC 8785 (JCS) conformance: the upstream cyberphone test vectors, the ES6 number samples,
//! one named test per attack the strict parser must refuse, and property tests.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use graven_core::jcs::{self, JcsError, MAX_DEPTH, MAX_INPUT, Value};
use graven_core::jcs_direct;
use proptest::prelude::*;

/// `<vectors>/jcs/<sub>` (the vectors found as every other suite finds them: `GRAVEN_VECTORS`,
/// else beside the checkout).
fn vector_dir(sub: &str) -> PathBuf {
    graven_testkit::vectors().join("jcs").join(sub)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Parses an `outhex` file: whitespace-separated two-digit hex bytes.
fn decode_outhex(text: &[u8]) -> Vec<u8> {
    std::str::from_utf8(text)
        .unwrap()
        .split_ascii_whitespace()
        .map(|pair| u8::from_str_radix(pair, 16).unwrap_or_else(|e| panic!("bad hex {pair:?}: {e}")))
        .collect()
}

fn canon(input: &[u8]) -> Result<Vec<u8>, JcsError> {
    jcs::canonicalize(input)
}

fn canon_str(input: &str) -> Result<String, JcsError> {
    canon(input.as_bytes()).map(|b| String::from_utf8(b).unwrap())
}

fn replace_once(haystack: &str, from: &str, to: &str) -> String {
    assert_eq!(haystack.matches(from).count(), 1, "{from:?} must occur exactly once");
    haystack.replacen(from, to, 1)
}

/// Byte offset of `needle` in `haystack` (which must contain it exactly once).
fn offset_of(haystack: &str, needle: &str) -> usize {
    assert_eq!(haystack.matches(needle).count(), 1, "{needle:?} must occur exactly once");
    haystack.find(needle).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Upstream vectors
// ---------------------------------------------------------------------------------------------

/// Vectors that contain numbers the strict rule rejects; handled in their own tests below.
const STRICT_EXCEPTIONS: &[&str] = &["values.json"];

#[test]
fn upstream_vectors_canonicalise_to_output_and_outhex() {
    let mut names: Vec<String> = std::fs::read_dir(vector_dir("testdata/input"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    // Guard against the directory silently losing files.
    for expected in
        ["arrays.json", "french.json", "structures.json", "unicode.json", "values.json", "weird.json"]
    {
        assert!(names.iter().any(|n| n == expected), "missing upstream vector {expected}");
    }

    let mut checked = 0;
    for name in &names {
        let input = read(&vector_dir("testdata/input").join(name));
        let output = read(&vector_dir("testdata/output").join(name));
        let outhex = decode_outhex(&read(&vector_dir("testdata/outhex").join(name.replace(".json", ".txt"))));
        assert_eq!(output, outhex, "{name}: output/ and outhex/ disagree");

        if STRICT_EXCEPTIONS.contains(&name.as_str()) {
            assert!(canon(&input).is_err(), "{name} was expected to hit the strict number rule");
            continue;
        }
        let got = canon(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&output),
            "{name}: canonical output differs from output/{name}"
        );
        assert_eq!(got, outhex, "{name}: canonical output differs from outhex");
        // Canonical output is a fixed point.
        assert_eq!(canon(&output).unwrap(), output, "{name}: output is not a fixed point");
        checked += 1;
    }
    assert_eq!(checked, names.len() - STRICT_EXCEPTIONS.len());
}

/// `values.json` holds `333333333.33333329` (not exactly a double: it becomes 333333333.3333333)
/// and `1E30` (an integer beyond 2^53). Both must be rejected with the right variant at the right
/// offset; with them replaced, the rest of the file must canonicalise to the expected bytes.
#[test]
fn upstream_values_json_hits_the_strict_number_rule() {
    let input = String::from_utf8(read(&vector_dir("testdata/input/values.json"))).unwrap();
    let output = String::from_utf8(read(&vector_dir("testdata/output/values.json"))).unwrap();
    let outhex = decode_outhex(&read(&vector_dir("testdata/outhex/values.txt")));
    assert_eq!(output.as_bytes(), outhex);

    // 1. As shipped: the inexact literal comes first.
    assert_eq!(
        canon_str(&input),
        Err(JcsError::InexactNumber {
            offset: offset_of(&input, "333333333.33333329"),
            canonical: "333333333.3333333".into(),
        })
    );

    // 2. With the exact spelling of that double, the next offender is the huge integer.
    let exact = replace_once(&input, "333333333.33333329", "333333333.3333333");
    assert_eq!(canon_str(&exact), Err(JcsError::IntegerTooLarge { offset: offset_of(&exact, "1E30") }));

    // 3. With 1E30 sent as a string (what the error tells the author to do), everything else
    //    matches upstream byte for byte.
    let fixed = replace_once(&exact, "1E30", "\"1E30\"");
    let expected = replace_once(&output, "1e+30", "\"1E30\"");
    assert_eq!(canon_str(&fixed).unwrap(), expected);

    // 4. The offending literals on their own.
    assert!(matches!(
        canon_str("333333333.33333329"),
        Err(JcsError::InexactNumber { offset: 0, ref canonical }) if canonical == "333333333.3333333"
    ));
    assert_eq!(canon_str("1E30"), Err(JcsError::IntegerTooLarge { offset: 0 }));
    assert_eq!(canon_str("[1e+30]"), Err(JcsError::IntegerTooLarge { offset: 1 }));
}

#[test]
fn es6_number_samples_format_exactly() {
    let csv = String::from_utf8(read(&vector_dir("es6-number-samples.csv"))).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let hex_col = header.iter().position(|h| *h == "hex_ieee754").expect("hex_ieee754 column");
    let expected_col = header.iter().position(|h| *h == "expected").expect("expected column");

    let mut count = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split(',').collect();
        let bits = u64::from_str_radix(cols[hex_col], 16).unwrap();
        let expected = cols[expected_col];
        let f = f64::from_bits(bits);

        let mut out = Vec::new();
        Value::Number(f).write_canonical(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), expected, "bits {:016x}", bits);

        // Reading the ES6 text back: accepted and a fixed point, unless beyond ±2^53.
        if f.abs() > 9_007_199_254_740_992.0 {
            assert_eq!(canon_str(expected), Err(JcsError::IntegerTooLarge { offset: 0 }));
        } else {
            assert_eq!(canon_str(expected).unwrap(), expected);
            assert_eq!(jcs::parse(expected.as_bytes()).unwrap(), Value::Number(f));
        }
        count += 1;
    }
    assert!(count >= 7, "expected at least the 7 upstream samples, found {count}");
}

// ---------------------------------------------------------------------------------------------
// Named attacks: each must be refused with the right variant at the right offset.
// ---------------------------------------------------------------------------------------------

#[test]
fn attack_duplicate_key() {
    assert_eq!(canon_str(r#"{"a":1,"a":2}"#), Err(JcsError::DuplicateKey { offset: 7, key: "a".into() }));
    // Nested objects have their own key sets.
    assert_eq!(canon_str(r#"{"a":{"a":1},"b":{"a":2}}"#).unwrap(), r#"{"a":{"a":1},"b":{"a":2}}"#);
}

#[test]
fn attack_duplicate_key_after_unescape() {
    assert_eq!(
        canon_str(r#"{"a":1,"\u0061":2}"#),
        Err(JcsError::DuplicateKey { offset: 7, key: "a".into() })
    );
    assert_eq!(
        canon_str("{\"\u{1F602}\":1,\"\\uD83D\\uDE02\":2}"),
        Err(JcsError::DuplicateKey { offset: 10, key: "\u{1F602}".into() })
    );
}

#[test]
fn attack_lone_high_surrogate() {
    for input in [r#""\uD800""#, r#""\uD800x""#, r#""\uDBFF\u0041""#, r#""\uD800\uD800""#, r#""\uD800\n""#] {
        let err = canon_str(input).unwrap_err();
        assert!(
            matches!(err, JcsError::LoneSurrogate { offset: 1, code_unit: 0xD800..=0xDBFF }),
            "{input}: {err:?}"
        );
    }
}

#[test]
fn attack_lone_low_surrogate() {
    assert_eq!(canon_str(r#""\uDC00""#), Err(JcsError::LoneSurrogate { offset: 1, code_unit: 0xDC00 }));
    assert_eq!(canon_str(r#""ab\uDFFF""#), Err(JcsError::LoneSurrogate { offset: 3, code_unit: 0xDFFF }));
}

#[test]
fn attack_reversed_surrogate_pair() {
    assert_eq!(canon_str(r#""\uDE02\uD83D""#), Err(JcsError::LoneSurrogate { offset: 1, code_unit: 0xDE02 }));
    // The correct order is accepted and written as literal UTF-8.
    assert_eq!(canon_str(r#""\uD83D\uDE02""#).unwrap(), "\"\u{1F602}\"");
}

#[test]
fn attack_invalid_utf8_overlong() {
    // C0 AF is an overlong encoding of '/'.
    assert_eq!(canon(b"\"\xC0\xAF\""), Err(JcsError::InvalidUtf8 { offset: 1 }));
    // E0 80 AF: overlong three-byte form.
    assert_eq!(canon(b"[\"\xE0\x80\xAF\"]"), Err(JcsError::InvalidUtf8 { offset: 2 }));
}

#[test]
fn attack_invalid_utf8_truncated() {
    // E2 82 is the start of '€' without its last byte.
    assert_eq!(canon(b"\"\xE2\x82\""), Err(JcsError::InvalidUtf8 { offset: 1 }));
    assert_eq!(canon(b"\"ok\xF0\x9F\x98"), Err(JcsError::InvalidUtf8 { offset: 3 }));
}

#[test]
fn attack_invalid_utf8_ff_and_encoded_surrogate() {
    assert_eq!(canon(b"\"\xFF\""), Err(JcsError::InvalidUtf8 { offset: 1 }));
    assert_eq!(canon(b"{\"a\":1}\xFF"), Err(JcsError::InvalidUtf8 { offset: 7 }));
    // ED A0 80 would be U+D800 (CESU-style surrogate) and is not UTF-8.
    assert_eq!(canon(b"\"\xED\xA0\x80\""), Err(JcsError::InvalidUtf8 { offset: 1 }));
}

#[test]
fn attack_byte_order_mark() {
    assert_eq!(canon(b"\xEF\xBB\xBF{}"), Err(JcsError::ByteOrderMark { offset: 0 }));
    // U+FEFF anywhere else outside a string is just an unexpected character.
    assert!(matches!(
        canon("[\u{FEFF}1]".as_bytes()),
        Err(JcsError::UnexpectedCharacter { offset: 1, found: '\u{FEFF}', .. })
    ));
    // Inside a string it is ordinary content.
    assert_eq!(canon_str("\"\u{FEFF}\"").unwrap(), "\"\u{FEFF}\"");
}

#[test]
fn attack_integer_2_pow_53_plus_1() {
    assert_eq!(canon_str("9007199254740993"), Err(JcsError::IntegerTooLarge { offset: 0 }));
    assert_eq!(canon_str("[9007199254740993.0]"), Err(JcsError::IntegerTooLarge { offset: 1 }));
    assert_eq!(canon_str("9007199254740992").unwrap(), "9007199254740992");
}

#[test]
fn attack_negative_integer_2_pow_53_plus_1() {
    assert_eq!(canon_str("-9007199254740993"), Err(JcsError::IntegerTooLarge { offset: 0 }));
    assert_eq!(canon_str(r#"{"n":-9007199254740993}"#), Err(JcsError::IntegerTooLarge { offset: 5 }));
    assert_eq!(canon_str("-9007199254740992").unwrap(), "-9007199254740992");
}

#[test]
fn attack_overflow_1e400() {
    assert_eq!(canon_str("1e400"), Err(JcsError::NumberOutOfRange { offset: 0 }));
    assert_eq!(canon_str("[0,-1e400]"), Err(JcsError::NumberOutOfRange { offset: 3 }));
}

#[test]
fn attack_inexact_1_00000000000000000001() {
    assert_eq!(
        canon_str("1.00000000000000000001"),
        Err(JcsError::InexactNumber { offset: 0, canonical: "1".into() })
    );
    // Exact spellings of doubles with extra zeros are fine.
    assert_eq!(canon_str("1.00000000000000000000").unwrap(), "1");
}

/// A double exactly halfway between two 17-digit decimals: ES6 picks the even one ("…720.2"),
/// Rust's `Display` the other ("…720.3"). Only the ES6 spelling is the canonical text; the other
/// spelling, and even the exact binary expansion ("…720.25"), would change on canonicalisation
/// and are refused with the text to send instead.
#[test]
fn inexact_tie_and_exact_expansion_are_refused() {
    let f: f64 = "1676637145909720.25".parse().unwrap();
    assert_eq!(f.to_string(), "1676637145909720.3");
    for input in ["1676637145909720.3", "1676637145909720.25"] {
        assert_eq!(
            canon_str(input),
            Err(JcsError::InexactNumber { offset: 0, canonical: "1676637145909720.2".into() }),
            "{input}"
        );
    }
    assert_eq!(canon_str("1676637145909720.2").unwrap(), "1676637145909720.2");
    // 0.1's exact binary expansion is not 0.1.
    assert_eq!(
        canon_str("0.1000000000000000055511151231257827021181583404541015625"),
        Err(JcsError::InexactNumber { offset: 0, canonical: "0.1".into() })
    );
}

#[test]
fn attack_depth_limit() {
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert_eq!(canon_str(&nested(MAX_DEPTH)).unwrap(), nested(MAX_DEPTH));
    assert_eq!(
        canon_str(&nested(MAX_DEPTH + 1)),
        Err(JcsError::TooDeep { offset: MAX_DEPTH, max: MAX_DEPTH })
    );

    let objects = |n: usize| format!("{}1{}", "{\"k\":".repeat(n), "}".repeat(n));
    assert_eq!(canon_str(&objects(MAX_DEPTH)).unwrap(), objects(MAX_DEPTH));
    assert_eq!(
        canon_str(&objects(MAX_DEPTH + 1)),
        Err(JcsError::TooDeep { offset: 5 * MAX_DEPTH, max: MAX_DEPTH })
    );

    // Far deeper than any stack could take if the parser recursed without bound.
    let hostile = "[".repeat(MAX_INPUT);
    assert_eq!(canon_str(&hostile), Err(JcsError::TooDeep { offset: MAX_DEPTH, max: MAX_DEPTH }));
}

#[test]
fn attack_trailing_garbage() {
    assert_eq!(canon_str("{} x"), Err(JcsError::TrailingData { offset: 3 }));
    assert_eq!(canon_str("1 2"), Err(JcsError::TrailingData { offset: 2 }));
    assert_eq!(canon_str("{}}"), Err(JcsError::TrailingData { offset: 2 }));
    assert_eq!(canon_str("null\0"), Err(JcsError::TrailingData { offset: 4 }));
    assert_eq!(canon_str(" {} \r\n\t").unwrap(), "{}");
}

#[test]
fn attack_leading_zero() {
    assert_eq!(canon_str("01"), Err(JcsError::LeadingZero { offset: 0 }));
    assert_eq!(canon_str("-01"), Err(JcsError::LeadingZero { offset: 0 }));
    assert_eq!(canon_str("[1,00]"), Err(JcsError::LeadingZero { offset: 3 }));
    assert_eq!(canon_str("0.01").unwrap(), "0.01");
}

#[test]
fn attack_raw_control_character_in_string() {
    assert_eq!(canon(b"\"a\tb\""), Err(JcsError::ControlCharacter { offset: 2, byte: b'\t' }));
    assert_eq!(canon(b"\"\x00\""), Err(JcsError::ControlCharacter { offset: 1, byte: 0 }));
    assert_eq!(canon(b"{\"k\x1f\":1}"), Err(JcsError::ControlCharacter { offset: 3, byte: 0x1f }));
    // DEL is not a JSON control character and passes through literally.
    assert_eq!(canon(b"\"\x7f\"").unwrap(), b"\"\x7f\"");
}

#[test]
fn attack_input_over_max_input() {
    let mut at_limit = vec![b' '; MAX_INPUT - 1];
    at_limit.push(b'0');
    assert_eq!(canon(&at_limit).unwrap(), b"0");

    let mut over = vec![b' '; MAX_INPUT];
    over.push(b'0');
    assert_eq!(
        canon(&over),
        Err(JcsError::InputTooLarge { offset: MAX_INPUT, len: MAX_INPUT + 1, max: MAX_INPUT })
    );
}

#[test]
fn accepted_number_spellings() {
    for (input, expected) in [
        ("1.0", "1"),
        ("1e2", "100"),
        ("0.1", "0.1"),
        ("-0", "0"),
        ("1E-7", "1e-7"),
        ("4.50", "4.5"),
        ("2e-3", "0.002"),
        ("1E+2", "100"),
    ] {
        assert_eq!(canon_str(input).unwrap(), expected, "{input}");
    }
}

#[test]
fn error_messages_say_what_and_where() {
    let input = r#"{"a": 1, "b": 2, "a": 3}"#;
    assert_eq!(
        canon_str(input).unwrap_err().to_string(),
        "duplicate key \"a\" at byte 17: each key may appear once per object"
    );
    let too_large = vec![b' '; MAX_INPUT + 1];
    let inputs: [&[u8]; 17] = [
        &too_large,
        b"\"\xFF\"",
        b"\xEF\xBB\xBF1",
        b"[1,",
        b"[1;",
        b"1 1",
        br#"{"a":1,"a":2}"#,
        br#""\q""#,
        br#""\u00G0""#,
        br#""\uD800""#,
        b"\"\x01\"",
        &[b'['; MAX_DEPTH + 1],
        b"01",
        b"1.",
        b"1e400",
        b"9007199254740993",
        b"1.00000000000000000001",
    ];
    for input in inputs {
        let err = canon(input).unwrap_err();
        let msg = err.to_string();
        // "<what is wrong> at byte N: <what to fix>"
        assert!(msg.contains(&format!(" at byte {}: ", err.offset())), "{msg}");
        assert!(msg.len() > msg.find(": ").unwrap() + 10, "message should say what to do: {msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

/// A generated document. Objects hold unique keys in a random order.
#[derive(Debug, Clone)]
enum Gen {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Gen>),
    Obj(Vec<(String, Gen)>),
}

const TWO_POW_53: f64 = 9_007_199_254_740_992.0;

/// Finite doubles the strict rule accepts: every one with |f| <= 2^53 (its ES6 text round-trips
/// exactly), biased towards integers, short decimals, subnormals and the edges.
fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        // Any sign and mantissa with a biased exponent up to 1075, i.e. |f| < 2^53, subnormals included.
        (any::<bool>(), 0u64..(1 << 52), 0u64..=1075)
            .prop_map(|(neg, m, e)| f64::from_bits((u64::from(neg) << 63) | (e << 52) | m)),
        (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
        (-100_000i64..100_000, 0i32..8).prop_map(|(i, k)| i as f64 / 10f64.powi(k)),
        prop::sample::select(vec![0.0, -0.0, TWO_POW_53, -TWO_POW_53, 5e-324, 1e-7, 1e21 / 1e6, 0.1, 1.5]),
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::char::range('a', 'e'),
            2 => any::<char>(),
            1 => prop::char::range('\u{0}', '\u{1f}'),
            1 => prop::sample::select(vec!['"', '\\', '/', '\u{7f}', '\u{2028}', '\u{2029}', '\u{FEFF}']),
            1 => prop::char::range('\u{E000}', '\u{FFFF}'),
            1 => prop::char::range('\u{10000}', '\u{10FFFF}'),
        ],
        0..max,
    )
    .prop_map(String::from_iter)
}

fn document() -> impl Strategy<Value = Gen> {
    let leaf = prop_oneof![
        Just(Gen::Null),
        any::<bool>().prop_map(Gen::Bool),
        number().prop_map(Gen::Num),
        text(12).prop_map(Gen::Str),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Gen::Arr),
            prop::collection::btree_map(text(4), inner, 0..6)
                .prop_map(|m| m.into_iter().collect::<Vec<_>>())
                .prop_shuffle()
                .prop_map(Gen::Obj),
        ]
    })
}

/// A tiny deterministic generator for serialisation choices (whitespace, escape style).
struct Choices(u64);

impl Choices {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn ws(&mut self, out: &mut String) {
        for _ in 0..self.next(3) {
            out.push([' ', '\t', '\n', '\r'][self.next(4) as usize]);
        }
    }
}

/// Writes a string either through serde_json or with every non-ASCII character `\u`-escaped
/// (surrogate pairs for non-BMP) and `/` escaped, to exercise the unescaper.
fn write_json_string(s: &str, choices: &mut Choices, out: &mut String) {
    if choices.next(2) == 0 {
        out.push_str(&serde_json::to_string(s).unwrap());
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
        }
    }
    out.push('"');
}

/// Writes a number as serde_json does (`ryu`: `1.0`, `-0.0`, `1e-7`), as the ES6 text itself, or
/// as the ES6 digits spelled with an integer significand, three extra zeros and a compensating
/// exponent (`-1.5e-7` becomes `-15000E-11`). All three denote exactly the ES6 decimal value.
///
/// Not Rust's own `{}`/`{:e}`: on exact ties between two shortest candidates Rust rounds
/// differently from ES6 (and ryu), so its text can denote a different decimal; see
/// `rust_std_float_text_is_accepted_or_refused_never_changed`.
fn write_json_number(f: f64, choices: &mut Choices, out: &mut String) {
    match choices.next(3) {
        0 => out.push_str(&serde_json::to_string(&f).unwrap()),
        1 => out.push_str(&es6(f)),
        _ if f == 0.0 => out.push_str(if f.is_sign_negative() { "-0.000e+7" } else { "0.0E-2" }),
        _ => {
            let text = es6(f);
            let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
            let exp: i64 = exp.parse().unwrap();
            let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
            let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
            let digits = format!("{int}{frac}");
            // "0.001" has digits "0001": drop the leading zeros (JSON forbids them).
            let digits = digits.trim_start_matches('0');
            let e = exp - frac.len() as i64 - 3;
            out.push_str(&format!("{sign}{digits}000E{e}"));
        }
    }
}

fn es6(f: f64) -> String {
    let mut out = Vec::new();
    Value::Number(f).write_canonical(&mut out);
    String::from_utf8(out).unwrap()
}

fn to_text(g: &Gen, choices: &mut Choices, out: &mut String) {
    match g {
        Gen::Null => out.push_str("null"),
        Gen::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Gen::Num(f) => write_json_number(*f, choices, out),
        Gen::Str(s) => write_json_string(s, choices, out),
        Gen::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                choices.ws(out);
                to_text(item, choices, out);
                choices.ws(out);
            }
            out.push(']');
        }
        Gen::Obj(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                choices.ws(out);
                write_json_string(k, choices, out);
                choices.ws(out);
                out.push(':');
                choices.ws(out);
                to_text(v, choices, out);
                choices.ws(out);
            }
            out.push('}');
        }
    }
}

fn to_value(g: &Gen) -> Value {
    match g {
        Gen::Null => Value::Null,
        Gen::Bool(b) => Value::Bool(*b),
        Gen::Num(f) => Value::Number(*f),
        Gen::Str(s) => Value::String(s.clone()),
        Gen::Arr(items) => Value::Array(items.iter().map(to_value).collect()),
        Gen::Obj(members) => Value::Object(members.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
    }
}

/// The serde_json value a correct reader should see. serde_json (without its `float_roundtrip`
/// feature) does not round every decimal correctly, so the expected number is whatever
/// serde_json makes of the ES6 text; exact f64 identity is checked separately via `jcs::parse`.
fn to_serde(g: &Gen) -> serde_json::Value {
    match g {
        Gen::Null => serde_json::Value::Null,
        Gen::Bool(b) => serde_json::Value::Bool(*b),
        Gen::Num(f) => serde_json::from_str(&es6(*f)).unwrap(),
        Gen::Str(s) => serde_json::Value::String(s.clone()),
        Gen::Arr(items) => serde_json::Value::Array(items.iter().map(to_serde).collect()),
        Gen::Obj(members) => {
            serde_json::Value::Object(members.iter().map(|(k, v)| (k.clone(), to_serde(v))).collect())
        }
    }
}

/// A JSON-ish byte alphabet, so random inputs get past the first byte more often.
fn jsonish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: Vec<u8> = b"{}[]\",:\\/u0123456789abcdefABCDEF.-+eE ntrulsx\t\n\r\x00\x1f\xC3\xA9\xED\xA0\x80\xF0\x9F\x98\x82\xEF\xBB\xBF\xFF".to_vec();
    prop::collection::vec(prop::sample::select(alphabet), 0..96)
}

proptest! {
    // 512 cases by default; PROPTEST_CASES overrides for longer local runs.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_documents_canonicalise_consistently(g in document(), seed in any::<u64>()) {
        let mut text = String::new();
        to_text(&g, &mut Choices(seed), &mut text);

        let expected_value = to_value(&g);
        prop_assert_eq!(jcs::parse(text.as_bytes()), Ok(expected_value.clone()), "input: {}", text);

        let canonical = canon(text.as_bytes()).unwrap();
        let mut written = Vec::new();
        expected_value.write_canonical(&mut written);
        prop_assert_eq!(&canonical, &written);

        // Idempotent: canonical output is a fixed point.
        prop_assert_eq!(canon(&canonical).unwrap(), canonical.clone());
        // No insignificant whitespace survives (whitespace inside strings is escaped or literal
        // space; a literal space can only come from string content).
        prop_assert!(!canonical.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r')));

        // An independent reader agrees on the meaning.
        let reread: serde_json::Value = serde_json::from_slice(&canonical).unwrap();
        prop_assert_eq!(reread, to_serde(&g));
    }

    #[test]
    fn es6_numbers_round_trip(f in number()) {
        let s = es6(f);
        let back: f64 = s.parse().unwrap();
        prop_assert_eq!(back, f);
        prop_assert_eq!(canon_str(&s).unwrap(), s.clone());
    }

    /// Rust's `{}` and `{:e}` print a shortest round-trip text too, but break exact ties
    /// differently from ES6. Whatever they print must either canonicalise to the ES6 text with
    /// the same decimal value, or be refused: the value is never silently changed.
    #[test]
    fn rust_std_float_text_is_accepted_or_refused_never_changed(
        f in prop_oneof![number(), any::<f64>().prop_filter("finite", |f| f.is_finite())],
    ) {
        let expected = es6(f);
        for text in [format!("{f}"), format!("{f:e}"), format!("{f:?}")] {
            match canon_str(&text) {
                Ok(out) => prop_assert_eq!(&out, &expected, "{}", text),
                Err(JcsError::InexactNumber { offset: 0, canonical }) => {
                    prop_assert_eq!(&canonical, &expected, "{}", text);
                }
                Err(JcsError::IntegerTooLarge { offset: 0 }) => {
                    prop_assert!(f.abs() > TWO_POW_53, "{}", text);
                }
                Err(e) => prop_assert!(false, "{text}: unexpected {e:?}"),
            }
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(out) = canon(&bytes) {
            prop_assert_eq!(canon(&out).unwrap(), out);
        }
    }

    #[test]
    fn never_panics_on_jsonish_bytes(bytes in jsonish_bytes()) {
        if let Ok(out) = canon(&bytes) {
            prop_assert_eq!(canon(&out).unwrap(), out);
        }
    }

    #[test]
    fn never_panics_on_mutated_documents(
        g in document(),
        seed in any::<u64>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut text = String::new();
        to_text(&g, &mut Choices(seed), &mut text);
        let mut bytes = text.into_bytes();
        for (at, byte) in edits {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
        }
        let truncated = &bytes[..cut.index(bytes.len() + 1)];
        for input in [&bytes[..], truncated] {
            if let Ok(out) = canon(input) {
                prop_assert_eq!(canon(&out).unwrap(), out);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The one-pass canonicaliser (`jcs_direct`) against the tree (`jcs::parse` + `write_canonical`)
// ---------------------------------------------------------------------------------------------

/// Both paths on `input`: the same bytes, or the same error (variant, offset and fields); and
/// `jcs_direct::members` agrees with the tree member by member.
fn agree(input: &[u8]) -> Result<(), TestCaseError> {
    let tree = jcs::canonicalize(input);
    prop_assert_eq!(&jcs_direct::canonicalize(input), &tree, "input: {:?}", String::from_utf8_lossy(input));
    match (jcs_direct::members(input), jcs::parse(input)) {
        (Ok(Some(members)), Ok(Value::Object(expected))) => {
            let got: Vec<_> = members.iter().collect();
            prop_assert_eq!(got.len(), expected.len());
            for (m, (key, value)) in got.iter().zip(&expected) {
                prop_assert_eq!(m.key, key.as_str());
                let mut canonical = Vec::new();
                value.write_canonical(&mut canonical);
                prop_assert_eq!(m.canonical, &canonical[..]);
                prop_assert_eq!(m.depth, value.depth());
                prop_assert_eq!(&jcs::parse(m.source).unwrap(), value);
            }
        }
        (Ok(None), Ok(v)) => prop_assert!(!matches!(v, Value::Object(_))),
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        (a, b) => prop_assert!(false, "members gave {a:?}, the tree {b:?}"),
    }
    Ok(())
}

/// Like [`document`], with objects wide enough (up to 40 keys) to pass `jcs_direct`'s switch from
/// comparing keys one by one to a set.
fn wide_document() -> impl Strategy<Value = Gen> {
    document().prop_recursive(2, 200, 40, |inner| {
        prop::collection::btree_map(text(3), inner, 0..40)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
            .prop_shuffle()
            .prop_map(Gen::Obj)
    })
}

/// A copy of one member of the `which`-th object (in depth-first order) inserted again at `at`,
/// with another value: a duplicate key, as a hostile client would send it.
fn duplicate_a_key(g: &mut Gen, which: &mut usize, at: usize, value: &Gen) -> bool {
    match g {
        Gen::Obj(members) if !members.is_empty() => {
            if *which == 0 {
                let key = members[at % members.len()].0.clone();
                members.insert(at % (members.len() + 1), (key, value.clone()));
                return true;
            }
            *which -= 1;
            members.iter_mut().any(|(_, v)| duplicate_a_key(v, which, at, value))
        }
        Gen::Obj(members) => members.iter_mut().any(|(_, v)| duplicate_a_key(v, which, at, value)),
        Gen::Arr(items) => items.iter_mut().any(|v| duplicate_a_key(v, which, at, value)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn one_pass_agrees_on_generated_documents(g in wide_document(), seed in any::<u64>()) {
        let mut text = String::new();
        to_text(&g, &mut Choices(seed), &mut text);
        agree(text.as_bytes())?;
        // And on the canonical form itself (already sorted: no reordering).
        let canonical = jcs::canonicalize(text.as_bytes()).unwrap();
        agree(&canonical)?;
    }

    #[test]
    fn one_pass_agrees_on_duplicate_keys(
        g in wide_document(),
        seed in any::<u64>(),
        which in 0usize..8,
        at in any::<usize>(),
        value in document(),
        tail in prop::sample::select(vec!["", ",", "x", "[", "1.00000000000000000001"]),
    ) {
        let mut g = g;
        let mut which = which;
        duplicate_a_key(&mut g, &mut which, at, &value);
        let mut text = String::new();
        to_text(&g, &mut Choices(seed), &mut text);
        agree(text.as_bytes())?;
        // An error later in the document must not hide the duplicate (or the other way round).
        text.push_str(tail);
        agree(text.as_bytes())?;
    }

    #[test]
    fn one_pass_agrees_on_mutated_documents(
        g in wide_document(),
        seed in any::<u64>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut text = String::new();
        to_text(&g, &mut Choices(seed), &mut text);
        let mut bytes = text.into_bytes();
        for (at, byte) in edits {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
        }
        let truncated = &bytes[..cut.index(bytes.len() + 1)];
        agree(&bytes)?;
        agree(truncated)?;
    }

    #[test]
    fn one_pass_agrees_on_jsonish_bytes(bytes in jsonish_bytes()) {
        agree(&bytes)?;
    }

    #[test]
    fn one_pass_agrees_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        agree(&bytes)?;
    }
}

#[test]
fn one_pass_agrees_on_the_upstream_vectors_and_the_limits() {
    for dir in ["testdata/input", "testdata/output"] {
        for entry in std::fs::read_dir(vector_dir(dir)).unwrap() {
            agree(&read(&entry.unwrap().path())).unwrap();
        }
    }
    let deepest = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    agree(deepest.as_bytes()).unwrap();
    let too_deep = "{\"a\":".repeat(MAX_DEPTH + 1) + "1" + &"}".repeat(MAX_DEPTH + 1);
    agree(too_deep.as_bytes()).unwrap();
    agree(&vec![b' '; MAX_INPUT + 1]).unwrap();
    agree(b"\xEF\xBB\xBF{}").unwrap();
    agree(b"{\"a\":\"\xC3\"}").unwrap();
}
