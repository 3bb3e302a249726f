//! HTML for the console: every untrusted string goes through [`text`] (element content) or
//! [`attr`] (attribute values), [`url`] for a query component; the page frame is [`page`].
//!
//! Besides HTML's five special characters, both replace every character that could make text
//! read other than it is with a visible `[U+XXXX]`: C0 and C1 controls (but tab and line
//! feed), bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069, the
//! marks U+200E, U+200F, U+061C), zero-width characters (U+200B–U+200D, U+2060, U+FEFF), line
//! and paragraph separators (U+2028, U+2029): an event cannot hide a word or reverse a name in
//! the console.

use std::fmt::Write as _;

/// Whether `c` is shown as `[U+XXXX]` rather than as itself.
pub fn is_hidden(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}'
        | '\u{061c}' | '\u{feff}' | '\u{2028}' | '\u{2029}')
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_hidden(c) => {
                let _ = write!(out, "[U+{:04X}]", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// `s` as element content.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    escape(s, &mut out);
    out
}

/// `s` as a double-quoted attribute value.
pub fn attr(s: &str) -> String {
    text(s)
}

/// `s` percent-encoded as a query component (then safe in an attribute too).
pub fn url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Who is signed in, for the frame.
#[derive(Debug)]
pub struct Frame<'a> {
    pub identity: &'a str,
    pub form_token: &'a str,
}

/// A whole page: the navigation, `body` (already HTML), the console's own script and style.
pub fn page(title: &str, frame: Option<&Frame<'_>>, body: &str) -> String {
    let nav = match frame {
        Some(f) => format!(
            "<nav><a href=\"/ui/log\">Log</a><a href=\"/ui/identities\">Identities</a><a href=\"/ui/search\">Search</a><a href=\"/ui/search?action=graven.alert\" id=\"alerts\">Alerts</a><a href=\"/ui/settings\">Verifier key</a>\
             <span class=\"who\">{}</span><form method=\"post\" action=\"/ui/signout\" class=\"signout\"><input type=\"hidden\" name=\"form_token\" value=\"{}\"><button type=\"submit\" id=\"signout\">Sign out</button></form></nav>",
            text(f.identity),
            attr(f.form_token)
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Graven</title><link rel=\"stylesheet\" href=\"/ui/assets/console.css\"><script src=\"/ui/assets/console.js\" defer></script></head>\
         <body><header><span class=\"brand\">Graven</span>{nav}</header><main><h1>{}</h1>{body}</main></body></html>\n",
        text(title),
        text(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_hidden_characters_are_inert() {
        assert_eq!(text("<script>alert('x')</script>"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
        assert_eq!(attr("\" onmouseover=\"x"), "&quot; onmouseover=&quot;x");
        assert_eq!(text("admin\u{202e}nimda"), "admin[U+202E]nimda");
        assert_eq!(text("a\u{0}b\u{1b}[31mc\u{85}"), "a[U+0000]b[U+001B][31mc[U+0085]");
        assert_eq!(text("tab\tand\nline"), "tab\tand\nline");
        assert_eq!(text("zero\u{200b}width\u{feff}"), "zero[U+200B]width[U+FEFF]");
        assert_eq!(text("naïve ✓"), "naïve ✓");
    }

    /// Whatever the input, the output has no markup character and no hidden one.
    #[test]
    fn no_input_escapes() {
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            let s: String = (0..12)
                .filter_map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    char::from_u32(x % 0x3000)
                })
                .collect();
            let out = text(&s);
            assert!(!out.contains(['<', '>', '"', '\'']), "{s:?} -> {out:?}");
            assert!(!out.chars().any(is_hidden), "{s:?} -> {out:?}");
            let u = url(&s);
            assert!(u.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
        }
    }
}
