//! The escaping each export format needs. Event fields come from whoever wrote the event:
//! printed raw, a control character, an ANSI escape sequence or a bidirectional override can
//! rewrite what a terminal shows, and a newline can forge a whole record in a line-oriented
//! SIEM feed. Everything here is written by hand against that, over the one list of such
//! characters, [`graven_verify::text::is_dangerous`].

use std::borrow::Cow;

/// The characters no record lets through raw (the verifier's list, shared by the CLI).
pub use graven_verify::text::is_dangerous;

/// JSON text made safe for a terminal without changing what it means: inside strings, every
/// dangerous character becomes a `\uXXXX` escape (they are all in the Basic Multilingual
/// Plane, so one escape each; JSON already escapes C0 controls, but not DEL, C1 controls,
/// bidirectional controls or U+2028/U+2029); outside strings, where valid JSON can only have
/// whitespace, tab, CR and LF become spaces. The result is valid JSON with the same value, and
/// re-canonicalising it (RFC 8785 writes these characters literally) gives the input's
/// canonical bytes back.
pub fn json(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_dangerous) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for c in s.chars() {
        if in_string && is_dangerous(c) {
            // (After a backslash this was not valid JSON to begin with; it stays invalid.)
            out.push_str(&format!("\\u{:04x}", c as u32));
            escaped = false;
            continue;
        }
        if !in_string && is_dangerous(c) {
            out.push(' ');
            continue;
        }
        out.push(c);
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        }
    }
    Cow::Owned(out)
}

/// A JSON value as one terminal-safe line ([`json`] over its compact form).
pub fn json_line(v: &serde_json::Value) -> String {
    json(&v.to_string()).into_owned()
}

/// A CEF header field (ArcSight CEF rev. 25): `\` and `|` escaped with a backslash; a newline
/// cannot appear in a header, so CR and LF and every other dangerous character become U+FFFD.
pub fn cef_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            c if is_dangerous(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A CEF extension value: `\`, `=` escaped with a backslash, newlines written as `\n` and
/// `\r` (the spec's multi-line escapes); every other dangerous character becomes U+FFFD.
pub fn cef_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_dangerous(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Strings an attacker would put in an event field.
    const HOSTILE: &[&str] = &[
        "a|b=c\\d",
        "line1\nline2\rline3",
        "\u{1b}[31mred\u{1b}[0m\u{1b}]0;title\u{7}",
        "admin\u{202e}txt.exe",
        "\u{2066}isolate\u{2069}\u{200f}",
        "nul\u{0}byte",
        "del\u{7f}c1\u{85}\u{9b}",
        "sep\u{2028}\u{2029}bom\u{feff}zw\u{200b}",
    ];

    fn no_dangerous(s: &str) -> bool {
        !s.chars().any(is_dangerous)
    }

    #[test]
    fn json_keeps_its_meaning_and_loses_every_dangerous_character() {
        for h in HOSTILE {
            let v = serde_json::json!({"k": h, h.to_string(): [h, 1, {"n": h}]});
            let line = json_line(&v);
            assert!(no_dangerous(&line), "{line:?}");
            assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap(), v);
            // Re-canonicalising gives the canonical bytes of the original back.
            let canonical = graven_core::jcs::canonicalize(v.to_string().as_bytes()).unwrap();
            let again = graven_core::jcs::canonicalize(line.as_bytes()).unwrap();
            assert_eq!(again, canonical);
        }
        // Escaped quotes and backslashes inside strings do not end them.
        let tricky = "{\"a\":\"\\\\\",\"b\":\"\\\"\u{202e}\"}";
        assert_eq!(json(tricky), "{\"a\":\"\\\\\",\"b\":\"\\\"\\u202e\"}");
        assert_eq!(json("{\"a\":\t1}"), "{\"a\": 1}");
        assert!(matches!(json("{\"plain\":\"ünï\"}"), Cow::Borrowed(_)));
    }

    #[test]
    fn cef_header_escapes_pipes_and_backslashes_and_drops_controls() {
        assert_eq!(cef_header("a|b\\c=d"), "a\\|b\\\\c=d");
        assert_eq!(cef_header("x\ny\u{1b}[0m\u{202e}"), "x\u{fffd}y\u{fffd}[0m\u{fffd}");
        for h in HOSTILE {
            let e = cef_header(h);
            assert!(no_dangerous(&e), "{h:?}");
            // Every pipe left is escaped, so a parser splitting on unescaped pipes sees one field.
            assert_eq!(split_unescaped(&e, '|').len(), 1, "{h:?} -> {e:?}");
        }
    }

    #[test]
    fn cef_value_escapes_equals_backslashes_and_newlines() {
        assert_eq!(cef_value("a=b\\c|d"), "a\\=b\\\\c|d");
        assert_eq!(cef_value("l1\nl2\r"), "l1\\nl2\\r");
        assert_eq!(cef_value("\u{0}\u{1b}\u{202e}\u{2069}"), "\u{fffd}".repeat(4));
        for h in HOSTILE {
            let e = cef_value(h);
            assert!(no_dangerous(&e), "{h:?}");
            assert_eq!(split_unescaped(&e, '=').len(), 1, "{h:?} -> {e:?}");
            assert_eq!(
                unescape_cef_value(&e),
                h.chars()
                    .map(|c| if is_dangerous(c) && c != '\n' && c != '\r' { '\u{fffd}' } else { c })
                    .collect::<String>()
            );
        }
    }

    /// Splits on `sep` not preceded by an escaping backslash (how CEF parsers read).
    fn split_unescaped(s: &str, sep: char) -> Vec<String> {
        let mut parts = vec![String::new()];
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                let next = chars.next().unwrap();
                parts.last_mut().unwrap().extend([c, next]);
            } else if c == sep {
                parts.push(String::new());
            } else {
                parts.last_mut().unwrap().push(c);
            }
        }
        parts
    }

    fn unescape_cef_value(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next().unwrap() {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    other => out.push(other),
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}
