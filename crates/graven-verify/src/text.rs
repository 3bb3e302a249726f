//! Quoting text taken from a log leaf in the verifier's own messages.
//!
//! A leaf's strings were written by whoever wrote the leaf. A message that quotes one raw can
//! rewrite what a terminal shows: an ANSI escape sequence clears the screen or moves the
//! cursor, a bidirectional override reverses a line, a C1 control or a line separator forges
//! a new line. Every string a message takes from a leaf goes through [`quote`], so the
//! library's messages are safe to print whatever program shows them.

/// Characters that change how text is laid out or shown rather than being shown themselves:
/// C0 and C1 controls (ESC starts ANSI sequences), DEL, bidirectional controls (embeddings,
/// overrides, isolates and marks), line and paragraph separators, zero-width and other
/// invisible format characters, and the BOM.
pub fn is_dangerous(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}'                     // Arabic letter mark
        | '\u{180e}'                    // Mongolian vowel separator
        | '\u{200b}'..='\u{200f}'       // zero-width space/joiners, LRM, RLM
        | '\u{2028}'..='\u{202e}'       // line/paragraph separators, LRE RLE PDF LRO RLO
        | '\u{2060}'..='\u{206f}'       // word joiner, invisible operators, LRI RLI FSI PDI, deprecated
        | '\u{feff}'                    // BOM / zero-width no-break space
        | '\u{fff9}'..='\u{fffb}'       // interlinear annotation
    )
}

/// `s` in double quotes, with `"` and `\` escaped by a backslash and every [`is_dangerous`]
/// character written as a visible escape (`\n`, `\r`, `\t`, `\x1b`, `\u{202e}`), so that the
/// quoted text is one line, shows exactly what the leaf holds, and cannot be confused with
/// the rest of the message.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && is_dangerous(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_dangerous(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_text_holds_no_dangerous_character_and_stays_unambiguous() {
        assert_eq!(quote("svc:x"), "\"svc:x\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("\u{1b}[2J\u{202e}\u{9b}\u{2028}\n"), "\"\\x1b[2J\\u{202e}\\x9b\\u{2028}\\n\"");
        for c in ['\u{0}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}', '\u{200f}', '\u{2066}', '\u{feff}'] {
            assert!(!quote(&format!("x{c}y")).chars().any(is_dangerous), "{c:?}");
        }
        assert_eq!(quote("plain ünïcode ✓"), "\"plain ünïcode ✓\"");
    }
}
