//! Text that came from a TSA (certificate names, status strings) made safe to print: every
//! character outside printable ASCII is written as `\u{..}`, so no control sequence, line break
//! or bidirectional override reaches a terminal or a log line as itself.

use std::fmt::Write;

/// `s` in double quotes, with `"`, `\` and every character outside printable ASCII escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn escapes_everything_but_printable_ascii() {
        assert_eq!(quote("CN=Test TSA"), "\"CN=Test TSA\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("\x1b[31m\n\u{202e}é"), "\"\\u{1b}[31m\\u{a}\\u{202e}\\u{e9}\"");
    }
}
