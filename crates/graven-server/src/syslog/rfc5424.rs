//! RFC 5424 syslog messages: a pure parser (no I/O, no clock, `std` only, so the `syslog`
//! fuzz target compiles this file from source).
//!
//! Strict where the grammar is strict (PRI, VERSION, header field lengths and characters,
//! structured data), lenient only where RFC 5424 itself is: MSG may be any octets (UTF-8 when
//! it starts with a BOM), and a `\` before a character other than `"`, `\` or `]` in a
//! PARAM-VALUE is kept as it is (§6.3.3). Input is bounded by its framing; the parser also
//! caps the structured data it expands ([`MAX_SD_ELEMENTS`], [`MAX_SD_PARAMS`]).

/// Most SD-ELEMENTs taken from one message.
pub const MAX_SD_ELEMENTS: usize = 64;
/// Most SD-PARAMs taken from one SD-ELEMENT.
pub const MAX_SD_PARAMS: usize = 64;

/// One parsed message. `None` is the NILVALUE (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// 0..=23.
    pub facility: u8,
    /// 0..=7.
    pub severity: u8,
    pub version: u16,
    /// As sent: the grammar of RFC 5424 §6.2.3 checked, not the calendar.
    pub timestamp: Option<&'a str>,
    pub hostname: Option<&'a str>,
    pub app_name: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub structured_data: Vec<SdElement<'a>>,
    /// MSG, without its BOM.
    pub msg: Option<&'a [u8]>,
    /// Whether MSG started with a BOM (and is then UTF-8, checked).
    pub msg_utf8: bool,
}

/// One SD-ELEMENT: its SD-ID and its params in order, values unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdElement<'a> {
    pub id: &'a str,
    pub params: Vec<(&'a str, String)>,
}

/// Which part of the message is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    Pri,
    Version,
    Timestamp,
    Hostname,
    AppName,
    Procid,
    Msgid,
    StructuredData,
    Msg,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Pri => "PRI",
            Part::Version => "VERSION",
            Part::Timestamp => "TIMESTAMP",
            Part::Hostname => "HOSTNAME",
            Part::AppName => "APP-NAME",
            Part::Procid => "PROCID",
            Part::Msgid => "MSGID",
            Part::StructuredData => "STRUCTURED-DATA",
            Part::Msg => "MSG",
        }
    }
}

/// Why a message is not RFC 5424: the part, the byte offset where reading it failed, and
/// what was expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    pub part: Part,
    pub at: usize,
    pub why: &'static str,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not an RFC 5424 message: {} at byte {}: {}", self.part.name(), self.at, self.why)
    }
}

impl std::error::Error for ParseError {}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    fn err(&self, part: Part, why: &'static str) -> ParseError {
        ParseError { part, at: self.at, why }
    }

    fn expect(&mut self, c: u8, part: Part, why: &'static str) -> Result<(), ParseError> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.err(part, why))
        }
    }

    /// A header field: NILVALUE or 1..=max PRINTUSASCII, then SP.
    fn field(&mut self, part: Part, max: usize) -> Result<Option<&'a str>, ParseError> {
        let start = self.at;
        while self.peek().is_some_and(|c| (33..=126).contains(&c)) {
            self.at += 1;
        }
        let len = self.at - start;
        if len == 0 {
            return Err(self.err(part, "expected a value of printable US-ASCII or '-'"));
        }
        if len > max {
            return Err(ParseError { part, at: start, why: "longer than RFC 5424 allows" });
        }
        // Only printable ASCII was taken, which is UTF-8.
        let s = std::str::from_utf8(&self.b[start..self.at]).map_err(|_| ParseError {
            part,
            at: start,
            why: "not ASCII",
        })?;
        self.expect(b' ', part, "expected a space after the field")?;
        Ok((s != "-").then_some(s))
    }
}

/// Parses one message (a frame's payload, without its framing).
pub fn parse(b: &[u8]) -> Result<Message<'_>, ParseError> {
    let mut c = Cursor { b, at: 0 };
    c.expect(b'<', Part::Pri, "a message starts with '<' and its priority")?;
    let pri = digits(&mut c, Part::Pri, 3)?;
    if pri > 191 || (c.b[1] == b'0' && c.at > 2) {
        return Err(ParseError { part: Part::Pri, at: 1, why: "PRIVAL is 0 to 191, without leading zeros" });
    }
    c.expect(b'>', Part::Pri, "expected '>' after the priority")?;
    if !c.peek().is_some_and(|d| (b'1'..=b'9').contains(&d)) {
        return Err(c.err(
            Part::Version,
            "expected VERSION 1 after PRI; an RFC 3164 (BSD) message has none: send RFC 5424 (logger --rfc5424; rsyslog's template RSYSLOG_SyslogProtocol23Format)",
        ));
    }
    let version = digits(&mut c, Part::Version, 3)?;
    if version != 1 {
        return Err(ParseError { part: Part::Version, at: c.at, why: "only VERSION 1 (RFC 5424) is known" });
    }
    c.expect(b' ', Part::Version, "expected a space after VERSION")?;
    let timestamp = c.field(Part::Timestamp, 32)?;
    if let Some(t) = timestamp
        && !is_timestamp(t.as_bytes())
    {
        return Err(ParseError {
            part: Part::Timestamp,
            at: c.at - t.len() - 1,
            why: "expected an RFC 3339 date-time such as 2003-10-11T22:14:15.003Z (at most 6 fraction digits)",
        });
    }
    let hostname = c.field(Part::Hostname, 255)?;
    let app_name = c.field(Part::AppName, 48)?;
    let procid = c.field(Part::Procid, 128)?;
    let msgid = c.field(Part::Msgid, 32)?;
    let structured_data = structured_data(&mut c)?;
    let (msg, msg_utf8) = match c.peek() {
        None => (None, false),
        Some(b' ') => {
            let rest = &b[c.at + 1..];
            match rest.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
                Some(text) => {
                    if std::str::from_utf8(text).is_err() {
                        return Err(ParseError {
                            part: Part::Msg,
                            at: c.at + 4,
                            why: "MSG starts with a BOM but is not UTF-8",
                        });
                    }
                    (Some(text), true)
                }
                None => (Some(rest), false),
            }
        }
        Some(_) => return Err(c.err(Part::StructuredData, "expected a space before MSG")),
    };
    Ok(Message {
        facility: (pri / 8) as u8,
        severity: (pri % 8) as u8,
        version,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        msg,
        msg_utf8,
    })
}

/// 1..=max decimal digits.
fn digits(c: &mut Cursor<'_>, part: Part, max: usize) -> Result<u16, ParseError> {
    let start = c.at;
    let mut v: u16 = 0;
    while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
        if c.at - start == max {
            return Err(c.err(part, "too many digits"));
        }
        v = v * 10 + u16::from(d - b'0');
        c.at += 1;
    }
    if c.at == start {
        return Err(c.err(part, "expected digits"));
    }
    Ok(v)
}

/// NILVALUE or one or more SD-ELEMENTs.
fn structured_data<'a>(c: &mut Cursor<'a>) -> Result<Vec<SdElement<'a>>, ParseError> {
    const P: Part = Part::StructuredData;
    if c.peek() == Some(b'-') {
        c.at += 1;
        return Ok(Vec::new());
    }
    if c.peek() != Some(b'[') {
        return Err(c.err(P, "expected '-' or '[' (structured data)"));
    }
    let mut out: Vec<SdElement<'a>> = Vec::new();
    while c.peek() == Some(b'[') {
        if out.len() == MAX_SD_ELEMENTS {
            return Err(c.err(P, "more SD-ELEMENTs than Graven takes (64)"));
        }
        c.at += 1;
        let id = sd_name(c)?;
        if out.iter().any(|e| e.id == id) {
            return Err(c.err(P, "an SD-ID appears twice (RFC 5424 §6.3.2 forbids it)"));
        }
        let mut params = Vec::new();
        loop {
            match c.peek() {
                Some(b']') => {
                    c.at += 1;
                    break;
                }
                Some(b' ') => {
                    c.at += 1;
                    if params.len() == MAX_SD_PARAMS {
                        return Err(c.err(P, "more SD-PARAMs in one element than Graven takes (64)"));
                    }
                    let name = sd_name(c)?;
                    c.expect(b'=', P, "expected '=' after PARAM-NAME")?;
                    c.expect(b'"', P, "expected '\"' to open PARAM-VALUE")?;
                    params.push((name, param_value(c)?));
                }
                _ => return Err(c.err(P, "expected ' ' or ']' in an SD-ELEMENT")),
            }
        }
        out.push(SdElement { id, params });
    }
    Ok(out)
}

/// SD-NAME: 1..=32 PRINTUSASCII but '=', ' ', ']' and '"'.
fn sd_name<'a>(c: &mut Cursor<'a>) -> Result<&'a str, ParseError> {
    let start = c.at;
    while c.peek().is_some_and(|b| (33..=126).contains(&b) && !matches!(b, b'=' | b']' | b'"')) {
        c.at += 1;
    }
    let len = c.at - start;
    if len == 0 || len > 32 {
        return Err(ParseError {
            part: Part::StructuredData,
            at: start,
            why: "an SD-ID or PARAM-NAME is 1 to 32 printable characters, without '=', ']', '\"' or space",
        });
    }
    std::str::from_utf8(&c.b[start..c.at]).map_err(|_| ParseError {
        part: Part::StructuredData,
        at: start,
        why: "not ASCII",
    })
}

/// PARAM-VALUE after its opening '"', up to and past its closing one; unescaped.
fn param_value(c: &mut Cursor<'_>) -> Result<String, ParseError> {
    let start = c.at;
    let mut out = Vec::new();
    loop {
        match c.peek() {
            None => {
                return Err(ParseError {
                    part: Part::StructuredData,
                    at: start,
                    why: "PARAM-VALUE has no closing '\"'",
                });
            }
            Some(b'"') => {
                c.at += 1;
                break;
            }
            Some(b'\\') => {
                match c.b.get(c.at + 1) {
                    Some(&e @ (b'"' | b'\\' | b']')) => {
                        out.push(e);
                        c.at += 2;
                    }
                    // §6.3.3: any other '\' is a plain character.
                    _ => {
                        out.push(b'\\');
                        c.at += 1;
                    }
                }
            }
            Some(b) => {
                out.push(b);
                c.at += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ParseError {
        part: Part::StructuredData,
        at: start,
        why: "PARAM-VALUE is not UTF-8",
    })
}

/// FULL-DATE "T" FULL-TIME of RFC 5424 §6.2.3 (the grammar; field ranges loosely).
fn is_timestamp(t: &[u8]) -> bool {
    let d = |i: usize| t.get(i).is_some_and(u8::is_ascii_digit);
    let num = |i: usize, n: usize| (i..i + n).all(d);
    let two = |i: usize| u32::from(t[i] - b'0') * 10 + u32::from(t[i + 1] - b'0');
    if !(t.len() >= 20
        && num(0, 4)
        && t[4] == b'-'
        && num(5, 2)
        && t[7] == b'-'
        && num(8, 2)
        && t[10] == b'T'
        && num(11, 2)
        && t[13] == b':'
        && num(14, 2)
        && t[16] == b':'
        && num(17, 2))
    {
        return false;
    }
    if !((1..=12).contains(&two(5))
        && (1..=31).contains(&two(8))
        && two(11) <= 23
        && two(14) <= 59
        && two(17) <= 60)
    {
        return false;
    }
    let mut i = 19;
    if t.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while d(i) {
            i += 1;
        }
        if i == start || i - start > 6 {
            return false;
        }
    }
    match t.get(i) {
        Some(b'Z') => i + 1 == t.len(),
        Some(b'+' | b'-') => {
            i + 6 == t.len()
                && num(i + 1, 2)
                && t[i + 3] == b':'
                && num(i + 4, 2)
                && two(i + 1) <= 23
                && two(i + 4) <= 59
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of RFC 5424 §6.5 (the BOMs as the RFC marks them).
    #[test]
    fn the_rfc_examples_parse() {
        let m = parse(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8").unwrap();
        assert_eq!((m.facility, m.severity, m.version), (4, 2, 1));
        assert_eq!(m.timestamp, Some("2003-10-11T22:14:15.003Z"));
        assert_eq!(m.hostname, Some("mymachine.example.com"));
        assert_eq!(m.app_name, Some("su"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid, Some("ID47"));
        assert!(m.structured_data.is_empty());
        assert_eq!(m.msg, Some(&b"'su root' failed for lonvick on /dev/pts/8"[..]));
        assert!(m.msg_utf8);

        let m = parse(b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.").unwrap();
        assert_eq!((m.facility, m.severity), (20, 5));
        assert_eq!(m.procid, Some("8710"));
        assert_eq!(m.msgid, None);
        assert_eq!(m.msg, Some(&b"%% It's time to make the do-nuts."[..]));
        assert!(!m.msg_utf8);

        let m = parse(b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xEF\xBB\xBFAn application event log entry...").unwrap();
        assert_eq!(m.structured_data.len(), 1);
        assert_eq!(m.structured_data[0].id, "exampleSDID@32473");
        assert_eq!(
            m.structured_data[0].params,
            vec![("iut", "3".into()), ("eventSource", "Application".into()), ("eventID", "1011".into())]
        );
        assert_eq!(m.msg, Some(&b"An application event log entry..."[..]));

        let m = parse(b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]").unwrap();
        assert_eq!(m.structured_data.len(), 2);
        assert_eq!(m.structured_data[1].params, vec![("class", "high".into())]);
        assert_eq!(m.msg, None);
    }

    #[test]
    fn param_values_are_unescaped() {
        let m = parse(br#"<13>1 - h a - - [x@1 v="a\"b\\c\]d\e"] m"#).unwrap();
        assert_eq!(m.structured_data[0].params, vec![("v", r#"a"b\c]d\e"#.into())]);
        assert_eq!(m.timestamp, None);
    }

    /// Each malformed message gets its typed error, naming the part that is wrong.
    #[test]
    fn malformed_messages_are_refused_with_the_part_named() {
        let cases: &[(&[u8], Part)] = &[
            (b"", Part::Pri),
            (b"hello", Part::Pri),
            (b"<>1 - - - - - -", Part::Pri),
            (b"<192>1 - - - - - -", Part::Pri),
            (b"<013>1 - - - - - -", Part::Pri),
            (b"<13>", Part::Version),
            (b"<13>Oct 11 22:14:15 host su: x", Part::Version),
            (b"<13>2 - - - - - -", Part::Version),
            (b"<13>1 yesterday h a - - -", Part::Timestamp),
            (b"<13>1 2003-10-11T22:14:15.0000001Z h a - - -", Part::Timestamp),
            (b"<13>1 2003-13-11T22:14:15Z h a - - -", Part::Timestamp),
            (b"<13>1 - h", Part::Hostname),
            (b"<13>1 -  a - - -", Part::Hostname),
            (b"<13>1 - h aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa - - -", Part::AppName),
            (b"<13>1 - h a - mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm -", Part::Msgid),
            (b"<13>1 - h a - -", Part::Msgid),
            (b"<13>1 - h a - - ", Part::StructuredData),
            (b"<13>1 - h a - - x", Part::StructuredData),
            (b"<13>1 - h a - - [x", Part::StructuredData),
            (b"<13>1 - h a - - [x a=\"1]", Part::StructuredData),
            (b"<13>1 - h a - - [x a=1]", Part::StructuredData),
            (b"<13>1 - h a - - [x][x]", Part::StructuredData),
            (b"<13>1 - h a - - []", Part::StructuredData),
            (b"<13>1 - h a - - [x a=\"\xff\"]", Part::StructuredData),
            (b"<13>1 - h a - - -m", Part::StructuredData),
            (b"<13>1 - h a - - - \xEF\xBB\xBF\xff", Part::Msg),
        ];
        for (input, part) in cases {
            let e = parse(input).expect_err(&String::from_utf8_lossy(input));
            assert_eq!(e.part, *part, "{:?}: {e}", String::from_utf8_lossy(input));
            assert!(e.at <= input.len());
        }
    }

    /// Never a panic, and an accepted message's fields lie within it, whatever the bytes.
    #[test]
    fn any_bytes_parse_or_fail_without_panicking() {
        let seed: &[u8] = b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App\\]\"] \xEF\xBB\xBFAn entry";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut m = seed.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % (m.len() + 1);
                match next() % 3 {
                    0 if i < m.len() => m[i] = next() as u8,
                    1 => m.insert(i, next() as u8),
                    _ => m.truncate(i),
                }
            }
            if let Ok(p) = parse(&m) {
                assert!(p.facility < 24 && p.severity < 8);
                assert!(p.structured_data.len() <= MAX_SD_ELEMENTS);
            }
        }
    }
}
