//! A deliberately lenient look at a leaf that the strict RFC 8785 parser refused.
//!
//! The strict parser ([`graven_core::jcs::parse`]) refuses numbers a double cannot hold,
//! duplicate keys, lone surrogates and more, so that a signature covers exactly what every
//! reader sees. But other readers (the server's indexer, a SIEM, `serde_json`) are lenient and
//! may still show such a leaf as an event. A leaf that carries a client signature must
//! therefore either parse strictly and verify, or fail verification; this module answers the
//! one question that needs: *could any reader take this leaf for an object with a top-level
//! member of this name?*
//!
//! It reads as much as any lenient reader would accept, and more: leading whitespace and BOM,
//! numbers and literals of any shape, duplicate keys, any escape (lone surrogates included),
//! keys in single quotes or bare, anything after the first object. It never fails: it answers
//! `false` where it finds no such member before the first object ends or the input does.
//! Linear time, no recursion, no allocation beyond one key.

/// Whether `entry`, read leniently, is an object one of whose top-level keys is `name`.
pub(crate) fn has_top_level_member(entry: &[u8], name: &str) -> bool {
    let mut r = Reader { b: entry, i: 0 };
    r.skip_space();
    if r.b[r.i..].starts_with("\u{feff}".as_bytes()) {
        r.i += 3;
        r.skip_space();
    }
    if r.peek() != Some(b'{') {
        return false;
    }
    r.i += 1;
    loop {
        r.skip_space();
        let Some(c) = r.peek() else { return false };
        let key = match c {
            b'}' => return false,
            b',' => {
                r.i += 1;
                continue;
            }
            b'"' | b'\'' => r.string(c),
            _ => r.bare(),
        };
        r.skip_space();
        if r.peek() == Some(b':') && key == name.as_bytes() {
            return true;
        }
        if !r.skip_value() {
            return false;
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace() || c == 0x0b) {
            self.i += 1;
        }
    }

    /// A quoted string starting at `self.i` (the quote `q`), unescaped as well as it can be.
    fn string(&mut self, q: u8) -> Vec<u8> {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            if c == q {
                break;
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else { break };
            self.i += 1;
            match e {
                b'u' => {
                    let unit = |r: &Self, at: usize| {
                        r.b.get(at..at + 4)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                    };
                    let Some(hi) = unit(self, self.i) else {
                        out.push(b'u');
                        continue;
                    };
                    self.i += 4;
                    let mut code = hi;
                    if (0xd800..0xdc00).contains(&hi)
                        && self.b.get(self.i..self.i + 2) == Some(b"\\u")
                        && let Some(lo) = unit(self, self.i + 2)
                        && (0xdc00..0xe000).contains(&lo)
                    {
                        self.i += 6;
                        code = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                    }
                    let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                    out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                }
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'b' => out.push(0x08),
                b'f' => out.push(0x0c),
                other => out.push(other),
            }
        }
        out
    }

    /// An unquoted key: everything up to a colon, a space, a comma or a brace.
    fn bare(&mut self) -> Vec<u8> {
        let start = self.i;
        while self.peek().is_some_and(|c| {
            !matches!(c, b':' | b',' | b'{' | b'}' | b'[' | b']') && !c.is_ascii_whitespace()
        }) {
            self.i += 1;
        }
        if self.i == start {
            // Not a key at all (a stray bracket): step over it so the scan moves on.
            self.i += 1;
        }
        self.b[start..self.i].to_vec()
    }

    /// Skips the rest of a member (its colon and value) up to the comma that ends it. Returns
    /// false if the top-level object or the input ended instead.
    fn skip_value(&mut self) -> bool {
        let mut depth = 0u64;
        while let Some(c) = self.peek() {
            match c {
                b'"' | b'\'' => {
                    self.string(c);
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return false,
                b'}' | b']' => depth -= 1,
                b',' if depth == 0 => {
                    self.i += 1;
                    return true;
                }
                _ => {}
            }
            self.i += 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::has_top_level_member as has;

    #[test]
    fn finds_the_member_however_the_leaf_bends_json() {
        let f = "client_signature";
        for yes in [
            r#"{"client_signature":{}}"#,
            r#"{"pad":9007199254740993,"client_signature":1}"#,
            r#"{"action":"a","action":"b","client_signature":1}"#,
            r#"{"pad":"\ud800","client_signature":1}"#,
            r#"{"client\u005fsignature":1}"#,
            r#"  {"n":1e400 , "x":[1,{"y":"}"}],'client_signature':1} trailing"#,
            "\u{feff}{client_signature: 1}",
            r#"{"a":"\"","client_signature":1"#,
        ] {
            assert!(has(yes.as_bytes(), f), "{yes}");
        }
        // Any bytes at all: an answer, never a panic or a hang.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let alphabet = b"{}[]\"',:\\u0dD8c_ \n\tclient_signature\xef\xbb\xbf";
        for len in 0..2000 {
            let bytes: Vec<u8> = (0..len % 97)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = has(&bytes, f);
        }
        for no in [
            "",
            "plain text",
            "[{\"client_signature\":1}]",
            r#"{"a":{"client_signature":1}}"#,
            r#"{"a":"client_signature"}"#,
            r#"{"a":1} {"client_signature":1}"#,
            r#"{"client_signature_x":1}"#,
            "{\"a\":\"\\",
        ] {
            assert!(!has(no.as_bytes(), f), "{no}");
        }
    }
}
