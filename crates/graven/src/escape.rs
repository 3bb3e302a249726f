//! Making untrusted event text safe to show on a terminal.
//!
//! Event fields come from whoever wrote the event. Printed raw, a control character, an ANSI
//! escape sequence or a bidirectional override can rewrite what a terminal shows (hide text,
//! move the cursor, reverse a line so `deny` reads `yned`). Everything here is written by hand
//! against that. JSON output goes through [`json_line`], from the export formats' own escaping
//! (`graven_export::escape`, which also holds CEF's).

use std::borrow::Cow;

/// Characters that change how text is laid out or shown rather than being shown themselves:
/// C0 and C1 controls (ESC starts ANSI sequences), DEL, bidirectional controls (embeddings,
/// overrides, isolates and marks), line and paragraph separators, zero-width and other
/// invisible format characters, and the BOM. One list, shared with the verifier library.
pub use graven_verify::text::is_dangerous;

/// A JSON value as one line, made safe for a terminal without changing what it means.
pub use graven_export::escape::json_line;

/// For people: every dangerous character (and the backslash, so the output is unambiguous)
/// becomes a visible escape: `\n`, `\r`, `\t`, `\\`, `\x1b`, `\u{202e}`. Everything else,
/// including ordinary non-ASCII text, is kept.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\\' || is_dangerous(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && is_dangerous(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_dangerous(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// For a whole message whose untrusted parts were already quoted (the verifier's messages quote
/// leaf strings with [`graven_verify::text::quote`]): every dangerous character left becomes a
/// visible escape as in [`for_terminal`], and backslashes are kept as they are, so quoted text
/// is not escaped twice. The last line of defence before a terminal.
pub fn message(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_dangerous) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && is_dangerous(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_dangerous(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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
    fn terminal_escapes_are_visible_and_reversible_in_shape() {
        assert_eq!(for_terminal("plain ünïcode ✓"), "plain ünïcode ✓");
        assert!(matches!(for_terminal("plain"), Cow::Borrowed(_)));
        assert_eq!(for_terminal("a\nb"), "a\\nb");
        assert_eq!(for_terminal("\u{1b}[31m"), "\\x1b[31m");
        assert_eq!(for_terminal("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(for_terminal("\u{2066}"), "\\u{2066}");
        assert_eq!(for_terminal("n\u{0}"), "n\\x00");
        assert_eq!(for_terminal("c1\u{9b}"), "c1\\x9b");
        // A literal backslash-n in the input must not look like an escaped newline.
        assert_eq!(for_terminal("a\\nb"), "a\\\\nb");
        for h in HOSTILE {
            assert!(no_dangerous(&for_terminal(h)), "{h:?}");
        }
    }

    #[test]
    fn messages_lose_every_dangerous_character_but_keep_their_quoting() {
        assert_eq!(message("key \"a\\u{202e}b\""), "key \"a\\u{202e}b\"");
        assert_eq!(message("x\u{1b}[2J\u{202e}\n"), "x\\x1b[2J\\u{202e}\\n");
        for h in HOSTILE {
            assert!(no_dangerous(&message(h)), "{h:?}");
        }
    }
}
