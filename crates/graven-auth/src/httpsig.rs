//! RFC 9421 HTTP Message Signatures (Ed25519 only) and RFC 9530 `Content-Digest` (`sha-256`).
//!
//! Pure: no clock, no I/O. The caller hands in the request's parts and the current time.
//!
//! - [`parse_signature_input`] and [`parse_signatures`] read the two headers, which are RFC 8941
//!   dictionaries, strictly and with limits ([`MAX_HEADER_LEN`], [`MAX_MEMBERS`],
//!   [`MAX_COMPONENTS`]). Any input either parses or is a [`HeaderError`]; none panics.
//! - [`signature_base`] builds the signature base exactly as RFC 9421 §2.5 says: one line
//!   `"<component>": <value>` per covered component, then `"@signature-params": <params>`,
//!   lines joined by `\n` with no newline at the end. The `@signature-params` value is the
//!   RFC 8941 serialisation of the parsed inner list and its parameters, in the order received.
//! - [`sign_request`] is the client side: it makes the three headers for a request.
//!
//! Supported components: `@method`, `@target-uri`, `@authority`, `@scheme`,
//! `@request-target`, `@path`, `@query`, and header fields by lowercase name. Component
//! parameters (`;sf`, `;key`, `;req`, `;bs`, `;name`) are not supported and are refused.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest, Sha256};

/// Longest `Signature-Input`, `Signature` or `Content-Digest` value looked at.
pub const MAX_HEADER_LEN: usize = 8192;
/// Most dictionary members (signatures, or digests) in one header.
pub const MAX_MEMBERS: usize = 8;
/// Most covered components in one signature.
pub const MAX_COMPONENTS: usize = 32;
/// Most parameters on one signature.
pub const MAX_PARAMS: usize = 16;

/// An RFC 8941 bare item. Decimals are refused (no parameter of RFC 9421 uses them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bare {
    Integer(i64),
    String(String),
    Token(String),
    Bytes(Vec<u8>),
    Boolean(bool),
}

type Params = Vec<(String, Bare)>;

/// One dictionary member's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    Item(Bare, Params),
    InnerList(Vec<(Bare, Params)>, Params),
}

/// Why a header did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("the header is longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
    #[error("the header is not a valid structured-field dictionary (RFC 8941) at byte {0}")]
    Syntax(usize),
    #[error("the header has more than {MAX_MEMBERS} members")]
    TooManyMembers,
    #[error("the header names {0:?} twice")]
    Duplicate(String),
    #[error("signature {label:?}: {why}")]
    Signature { label: String, why: &'static str },
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err<T>(&self) -> Result<T, HeaderError> {
        Err(HeaderError::Syntax(self.i))
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }
    fn ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn key(&mut self) -> Result<String, HeaderError> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => self.i += 1,
            _ => return self.err(),
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn bare(&mut self) -> Result<Bare, HeaderError> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.integer(),
            Some(b'"') => self.string(),
            Some(b':') => self.bytes(),
            Some(b'?') => {
                self.i += 1;
                match self.peek() {
                    Some(b'0') => {
                        self.i += 1;
                        Ok(Bare::Boolean(false))
                    }
                    Some(b'1') => {
                        self.i += 1;
                        Ok(Bare::Boolean(true))
                    }
                    _ => self.err(),
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => {
                let start = self.i;
                self.i += 1;
                while let Some(c) = self.peek() {
                    if c.is_ascii_alphanumeric() || b":/!#$%&'*+-.^_`|~".contains(&c) {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                Ok(Bare::Token(String::from_utf8_lossy(&self.s[start..self.i]).into_owned()))
            }
            _ => self.err(),
        }
    }

    fn integer(&mut self) -> Result<Bare, HeaderError> {
        let neg = self.eat(b'-');
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let digits = &self.s[start..self.i];
        // RFC 8941: at most 15 digits; a decimal point means a decimal, which is not supported.
        if digits.is_empty() || digits.len() > 15 || self.peek() == Some(b'.') {
            return self.err();
        }
        let mut v: i64 = 0;
        for d in digits {
            v = v * 10 + i64::from(d - b'0');
        }
        Ok(Bare::Integer(if neg { -v } else { v }))
    }

    fn string(&mut self) -> Result<Bare, HeaderError> {
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(char::from(c));
                            self.i += 1;
                        }
                        _ => return self.err(),
                    }
                }
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Bare::String(out));
                }
                Some(c @ 0x20..=0x7e) => {
                    out.push(char::from(c));
                    self.i += 1;
                }
                _ => return self.err(),
            }
        }
    }

    fn bytes(&mut self) -> Result<Bare, HeaderError> {
        self.i += 1;
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c)) {
            self.i += 1;
        }
        let text = &self.s[start..self.i];
        if !self.eat(b':') {
            return self.err();
        }
        match B64.decode(text) {
            Ok(b) => Ok(Bare::Bytes(b)),
            Err(_) => Err(HeaderError::Syntax(start)),
        }
    }

    fn params(&mut self) -> Result<Params, HeaderError> {
        let mut out: Params = Vec::new();
        while self.eat(b';') {
            self.sp();
            let k = self.key()?;
            let v = if self.eat(b'=') { self.bare()? } else { Bare::Boolean(true) };
            if out.iter().any(|(x, _)| *x == k) {
                return Err(HeaderError::Duplicate(k));
            }
            if out.len() >= MAX_PARAMS {
                return self.err();
            }
            out.push((k, v));
        }
        Ok(out)
    }

    fn member(&mut self) -> Result<Member, HeaderError> {
        if !self.eat(b'(') {
            let b = self.bare()?;
            return Ok(Member::Item(b, self.params()?));
        }
        let mut items = Vec::new();
        loop {
            self.sp();
            if self.eat(b')') {
                let p = self.params()?;
                return Ok(Member::InnerList(items, p));
            }
            if items.len() >= MAX_COMPONENTS {
                return self.err();
            }
            let b = self.bare()?;
            let p = self.params()?;
            items.push((b, p));
            if !matches!(self.peek(), Some(b' ' | b')')) {
                return self.err();
            }
        }
    }
}

/// Parses an RFC 8941 dictionary, refusing duplicate keys (a later member silently replacing
/// an earlier one is a poor fit for security headers).
pub fn parse_dictionary(header: &str) -> Result<Vec<(String, Member)>, HeaderError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(HeaderError::TooLong);
    }
    let mut p = Parser { s: header.as_bytes(), i: 0 };
    p.sp();
    let mut out: Vec<(String, Member)> = Vec::new();
    if p.peek().is_none() {
        return Ok(out);
    }
    loop {
        let k = p.key()?;
        let m = if p.eat(b'=') { p.member()? } else { Member::Item(Bare::Boolean(true), p.params()?) };
        if out.iter().any(|(x, _)| *x == k) {
            return Err(HeaderError::Duplicate(k));
        }
        if out.len() >= MAX_MEMBERS {
            return Err(HeaderError::TooManyMembers);
        }
        out.push((k, m));
        p.ows();
        if p.peek().is_none() {
            return Ok(out);
        }
        if !p.eat(b',') {
            return p.err();
        }
        p.ows();
        if p.peek().is_none() {
            return p.err();
        }
    }
}

/// One signature's parameters from `Signature-Input`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    pub label: String,
    /// Covered component names, in order (`@method`, `content-digest`, ...).
    pub components: Vec<String>,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub keyid: Option<String>,
    pub alg: Option<String>,
    pub nonce: Option<String>,
    /// Every parameter in the order received, for `@signature-params`.
    params: Params,
}

impl SignatureParams {
    pub fn covers(&self, component: &str) -> bool {
        self.components.iter().any(|c| c == component)
    }

    /// The `@signature-params` value: the inner list and its parameters, serialised.
    pub fn serialize(&self) -> String {
        let mut out = String::from("(");
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            write_string(&mut out, c);
        }
        out.push(')');
        for (k, v) in &self.params {
            out.push(';');
            out.push_str(k);
            match v {
                Bare::Boolean(true) => {}
                v => {
                    out.push('=');
                    write_bare(&mut out, v);
                }
            }
        }
        out
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn write_bare(out: &mut String, v: &Bare) {
    match v {
        Bare::Integer(n) => out.push_str(&n.to_string()),
        Bare::String(s) => write_string(out, s),
        Bare::Token(t) => out.push_str(t),
        Bare::Bytes(b) => {
            out.push(':');
            out.push_str(&B64.encode(b));
            out.push(':');
        }
        Bare::Boolean(b) => out.push_str(if *b { "?1" } else { "?0" }),
    }
}

/// Parses `Signature-Input`: every member must be an inner list of strings without
/// component parameters; `created` and `expires` must be integers, `keyid`, `alg`, `nonce`
/// and `tag` strings.
pub fn parse_signature_input(header: &str) -> Result<Vec<SignatureParams>, HeaderError> {
    let mut out = Vec::new();
    for (label, m) in parse_dictionary(header)? {
        let bad = |why| HeaderError::Signature { label: label.clone(), why };
        let Member::InnerList(items, params) = m else {
            return Err(bad("must be an inner list of covered components, e.g. (\"@method\" \"@path\")"));
        };
        let mut components: Vec<String> = Vec::with_capacity(items.len());
        for (item, p) in items {
            let Bare::String(name) = item else { return Err(bad("components must be strings")) };
            if !p.is_empty() {
                return Err(bad("component parameters (;sf, ;key, ;req, ...) are not supported"));
            }
            if components.contains(&name) {
                return Err(bad("a component is covered twice"));
            }
            components.push(name);
        }
        let mut sp = SignatureParams {
            label: label.clone(),
            components,
            created: None,
            expires: None,
            keyid: None,
            alg: None,
            nonce: None,
            params: Vec::new(),
        };
        for (k, v) in &params {
            match (k.as_str(), v) {
                ("created", Bare::Integer(n)) => sp.created = Some(*n),
                ("expires", Bare::Integer(n)) => sp.expires = Some(*n),
                ("keyid", Bare::String(s)) => sp.keyid = Some(s.clone()),
                ("alg", Bare::String(s)) => sp.alg = Some(s.clone()),
                ("nonce", Bare::String(s)) => sp.nonce = Some(s.clone()),
                ("tag", Bare::String(_)) => {}
                ("created" | "expires", _) => return Err(bad("created and expires must be integers")),
                ("keyid" | "alg" | "nonce" | "tag", _) => {
                    return Err(bad("keyid, alg, nonce and tag must be strings"));
                }
                _ => return Err(bad("unknown signature parameter")),
            }
        }
        sp.params = params;
        out.push(sp);
    }
    Ok(out)
}

/// Parses `Signature`: every member must be a byte sequence (`label=:base64:`).
pub fn parse_signatures(header: &str) -> Result<Vec<(String, Vec<u8>)>, HeaderError> {
    let mut out = Vec::new();
    for (label, m) in parse_dictionary(header)? {
        match m {
            Member::Item(Bare::Bytes(b), _) => out.push((label, b)),
            _ => {
                return Err(HeaderError::Signature {
                    label,
                    why: "must be a byte sequence, e.g. sig1=:base64:",
                });
            }
        }
    }
    Ok(out)
}

/// Parses `Content-Digest` (RFC 9530) and returns its `sha-256` value. Other algorithms may be
/// present and are ignored; a `sha-256` that is not 32 bytes is an error.
pub fn parse_content_digest(header: &str) -> Result<Option<[u8; 32]>, HeaderError> {
    for (alg, m) in parse_dictionary(header)? {
        if alg != "sha-256" {
            continue;
        }
        return match m {
            Member::Item(Bare::Bytes(b), _) => match <[u8; 32]>::try_from(b.as_slice()) {
                Ok(d) => Ok(Some(d)),
                Err(_) => Err(HeaderError::Signature { label: alg, why: "a sha-256 digest is 32 bytes" }),
            },
            _ => Err(HeaderError::Signature { label: alg, why: "must be a byte sequence" }),
        };
    }
    Ok(None)
}

/// The `Content-Digest` value for `body`: `sha-256=:<base64>:`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", B64.encode(Sha256::digest(body)))
}

/// What the signature base is built from: the request as the server received it.
#[derive(Debug, Clone, Default)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// `http` or `https`, if known.
    pub scheme: Option<&'a str>,
    /// `Host`, if known.
    pub authority: Option<&'a str>,
    /// The absolute path, without the query.
    pub path: &'a str,
    /// The query without its `?`, if the target had one.
    pub query: Option<&'a str>,
    /// Header fields (any case), in the order received; repeated names are combined.
    pub headers: Vec<(&'a str, &'a str)>,
}

/// Why the signature base could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BaseError {
    #[error("component {0:?} is not supported")]
    Unsupported(String),
    #[error("component {0:?} is covered but the request has no such field")]
    Missing(String),
    #[error("component {0:?} has a value with a line break")]
    BadValue(String),
}

fn component_value(c: &str, r: &RequestParts<'_>) -> Result<String, BaseError> {
    let missing = || BaseError::Missing(c.to_owned());
    let path = if r.path.is_empty() { "/" } else { r.path };
    let query = r.query.map(|q| format!("?{q}"));
    Ok(match c {
        "@method" => r.method.to_owned(),
        "@path" => path.to_owned(),
        "@query" => query.unwrap_or_else(|| "?".into()),
        "@authority" => r.authority.ok_or_else(missing)?.to_ascii_lowercase(),
        "@scheme" => r.scheme.ok_or_else(missing)?.to_ascii_lowercase(),
        "@request-target" => format!("{path}{}", query.unwrap_or_default()),
        "@target-uri" => format!(
            "{}://{}{path}{}",
            r.scheme.ok_or_else(missing)?.to_ascii_lowercase(),
            r.authority.ok_or_else(missing)?.to_ascii_lowercase(),
            query.unwrap_or_default()
        ),
        c if c.starts_with('@') => return Err(BaseError::Unsupported(c.to_owned())),
        c if c.is_empty() || c.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii_graphic()) => {
            return Err(BaseError::Unsupported(c.to_owned()));
        }
        c => {
            let values: Vec<&str> =
                r.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(c)).map(|(_, v)| v.trim()).collect();
            if values.is_empty() {
                return Err(missing());
            }
            values.join(", ")
        }
    })
}

/// The signature base of RFC 9421 §2.5 for `params` over `r`.
pub fn signature_base(params: &SignatureParams, r: &RequestParts<'_>) -> Result<String, BaseError> {
    let mut out = String::new();
    for c in &params.components {
        if c == "@signature-params" {
            return Err(BaseError::Unsupported(c.clone()));
        }
        let v = component_value(c, r)?;
        if v.contains(['\n', '\r']) {
            return Err(BaseError::BadValue(c.clone()));
        }
        write_string(&mut out, c);
        out.push_str(": ");
        out.push_str(&v);
        out.push('\n');
    }
    out.push_str("\"@signature-params\": ");
    out.push_str(&params.serialize());
    Ok(out)
}

/// The headers a client adds to sign a request: `Content-Digest`, `Signature-Input` and
/// `Signature`, label `sig1`, covering `@method`, `@path`, `@query` (when the request has a
/// query) and `content-digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub content_digest: String,
    pub signature_input: String,
    pub signature: String,
}

/// Signs a request (`target`'s method, path and query) with `key` registered as `keyid`,
/// created at `created` (Unix seconds).
pub fn sign_request(
    key: &SigningKey,
    keyid: &str,
    target: &RequestParts<'_>,
    body: &[u8],
    created: i64,
    nonce: Option<&str>,
) -> SignedHeaders {
    let digest = content_digest(body);
    let mut components = vec!["@method".to_owned(), "@path".to_owned()];
    if target.query.is_some() {
        components.push("@query".into());
    }
    components.push("content-digest".into());
    let mut params: Params = vec![
        ("created".into(), Bare::Integer(created)),
        ("keyid".into(), Bare::String(keyid.into())),
        ("alg".into(), Bare::String("ed25519".into())),
    ];
    if let Some(n) = nonce {
        params.push(("nonce".into(), Bare::String(n.into())));
    }
    let sp = SignatureParams {
        label: "sig1".into(),
        components,
        created: Some(created),
        expires: None,
        keyid: Some(keyid.into()),
        alg: Some("ed25519".into()),
        nonce: nonce.map(str::to_owned),
        params,
    };
    let parts = RequestParts {
        method: target.method,
        path: target.path,
        query: target.query,
        headers: vec![("content-digest", &digest)],
        ..Default::default()
    };
    // Every component above is always present, so this cannot fail; an empty base would only
    // make a signature the server refuses.
    let base = signature_base(&sp, &parts).unwrap_or_default();
    let sig = key.sign(base.as_bytes());
    SignedHeaders {
        signature_input: format!("sig1={}", sp.serialize()),
        signature: format!("sig1=:{}:", B64.encode(sig.to_bytes())),
        content_digest: digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::{Signature, VerifyingKey};

    /// RFC 9421 Appendix B.1.4, `test-key-ed25519` (JWK `d` and `x`).
    const TEST_KEY_D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
    const TEST_KEY_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";

    fn rfc_request() -> RequestParts<'static> {
        // Appendix B.2's test request (the parts B.2.6 covers).
        RequestParts {
            method: "POST",
            scheme: Some("https"),
            authority: Some("example.com"),
            path: "/foo",
            query: Some("param=Value&Pet=dog"),
            headers: vec![
                ("Host", "example.com"),
                ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
                ("Content-Type", "application/json"),
                (
                    "Content-Digest",
                    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
                ),
                ("Content-Length", "18"),
            ],
        }
    }

    #[test]
    fn rfc9421_b26_ed25519_vector() {
        let input = "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"";
        let sig_header = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";
        let params = parse_signature_input(input).unwrap();
        assert_eq!(params.len(), 1);
        let p = &params[0];
        assert_eq!(
            (p.created, p.keyid.as_deref(), p.alg.as_deref()),
            (Some(1618884473), Some("test-key-ed25519"), None)
        );
        let base = signature_base(p, &rfc_request()).unwrap();
        let expected = "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\"@authority\": example.com\n\"content-type\": application/json\n\"content-length\": 18\n\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"";
        assert_eq!(base, expected);
        let sigs = parse_signatures(sig_header).unwrap();
        assert_eq!(sigs[0].0, "sig-b26");
        let x: [u8; 32] = URL_SAFE_NO_PAD.decode(TEST_KEY_X).unwrap().try_into().unwrap();
        let vk = VerifyingKey::from_bytes(&x).unwrap();
        let sig = Signature::from_slice(&sigs[0].1).unwrap();
        vk.verify_strict(base.as_bytes(), &sig).unwrap();
        // Ed25519 is deterministic: the RFC's private key reproduces the RFC's signature.
        let d: [u8; 32] = URL_SAFE_NO_PAD.decode(TEST_KEY_D).unwrap().try_into().unwrap();
        let sk = SigningKey::from_bytes(&d);
        assert_eq!(sk.verifying_key(), vk);
        assert_eq!(sk.sign(base.as_bytes()).to_bytes().to_vec(), sigs[0].1);
        // One byte of the base changed, and the signature no longer verifies.
        assert!(vk.verify_strict(base.replace("POST", "PUT").as_bytes(), &sig).is_err());
    }

    #[test]
    fn signed_requests_have_a_byte_exact_base() {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let target =
            RequestParts { method: "POST", path: "/v1/events", query: Some("a=1"), ..Default::default() };
        let h = sign_request(&sk, "0123456789abcdef", &target, b"{}", 1_700_000_000, Some("n-1"));
        assert_eq!(h.content_digest, "sha-256=:RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=:");
        assert_eq!(
            h.signature_input,
            "sig1=(\"@method\" \"@path\" \"@query\" \"content-digest\");created=1700000000;keyid=\"0123456789abcdef\";alg=\"ed25519\";nonce=\"n-1\""
        );
        let p = &parse_signature_input(&h.signature_input).unwrap()[0];
        let parts = RequestParts {
            method: "POST",
            path: "/v1/events",
            query: Some("a=1"),
            headers: vec![("Content-Digest", &h.content_digest)],
            ..Default::default()
        };
        let base = signature_base(p, &parts).unwrap();
        assert_eq!(
            base,
            "\"@method\": POST\n\"@path\": /v1/events\n\"@query\": ?a=1\n\"content-digest\": sha-256=:RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=:\n\"@signature-params\": (\"@method\" \"@path\" \"@query\" \"content-digest\");created=1700000000;keyid=\"0123456789abcdef\";alg=\"ed25519\";nonce=\"n-1\""
        );
        let sig = Signature::from_slice(&parse_signatures(&h.signature).unwrap()[0].1).unwrap();
        sk.verifying_key().verify_strict(base.as_bytes(), &sig).unwrap();
    }

    #[test]
    fn derived_components_follow_the_rfc() {
        let r = rfc_request();
        let v = |c: &str| component_value(c, &r);
        assert_eq!(v("@target-uri").unwrap(), "https://example.com/foo?param=Value&Pet=dog");
        assert_eq!(v("@request-target").unwrap(), "/foo?param=Value&Pet=dog");
        assert_eq!(v("@query").unwrap(), "?param=Value&Pet=dog");
        assert_eq!(v("@scheme").unwrap(), "https");
        let no_query = RequestParts { query: None, path: "", ..rfc_request() };
        assert_eq!(component_value("@query", &no_query).unwrap(), "?");
        assert_eq!(component_value("@path", &no_query).unwrap(), "/");
        assert_eq!(v("x-missing"), Err(BaseError::Missing("x-missing".into())));
        assert_eq!(v("@status"), Err(BaseError::Unsupported("@status".into())));
        assert_eq!(v("Date"), Err(BaseError::Unsupported("Date".into())));
        // Repeated fields are combined with ", ", each value trimmed.
        let rep = RequestParts { headers: vec![("x-a", " 1 "), ("X-A", "2")], ..Default::default() };
        assert_eq!(component_value("x-a", &rep).unwrap(), "1, 2");
    }

    #[test]
    fn headers_parse_strictly() {
        let ok =
            parse_signature_input("a=(\"@method\");created=1, b=();created=-2;nonce=\"x\\\"y\"").unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].nonce.as_deref(), Some("x\"y"));
        assert_eq!(ok[1].serialize(), "();created=-2;nonce=\"x\\\"y\"");
        let bad = [
            "",                                   // parses to nothing: checked by callers
            "a",                                  // not an inner list
            "a=(\"@method\" \"@method\")",        // covered twice
            "a=(\"@method\";sf)",                 // component parameter
            "a=(@method)",                        // token, not string
            "a=(\"x\");created=\"1\"",            // created not an integer
            "a=(\"x\");created=1.5",              // decimal
            "a=(\"x\");created=1234567890123456", // over 15 digits
            "a=(\"x\");colour=\"red\"",           // unknown parameter
            "a=(\"x\"), a=(\"y\")",               // duplicate label
            "a=(\"x\");created=1;created=2",      // duplicate parameter
            "A=(\"x\")",                          // keys are lowercase
            "a=(\"x\"),",                         // trailing comma
            "a=(\"x\"",                           // unterminated
            "a=(\"x\u{1}\")",                     // control character
            "a=(\"x\")junk",                      // trailing bytes
        ];
        for (i, b) in bad.iter().enumerate() {
            let r = parse_signature_input(b);
            if i == 0 {
                assert_eq!(r, Ok(vec![]));
            } else {
                assert!(r.is_err(), "{b:?} parsed: {r:?}");
            }
        }
        let many = (0..9).map(|i| format!("s{i}=()")).collect::<Vec<_>>().join(", ");
        assert_eq!(parse_signature_input(&many), Err(HeaderError::TooManyMembers));
        let long = format!("a=(\"{}\")", "x".repeat(MAX_HEADER_LEN));
        assert_eq!(parse_signature_input(&long), Err(HeaderError::TooLong));
        let comps = (0..33).map(|i| format!("\"c{i}\"")).collect::<Vec<_>>().join(" ");
        assert!(parse_signature_input(&format!("a=({comps})")).is_err());
        assert!(parse_signatures("a=:AAAA:, b=:not base64!:").is_err());
        assert!(parse_signatures("a=\"AAAA\"").is_err());
        assert_eq!(parse_signatures("a=:AAEC:").unwrap(), vec![("a".into(), vec![0, 1, 2])]);
        // Every prefix of a good header is handled without a panic.
        let good =
            "sig1=(\"@method\" \"@path\" \"content-digest\");created=1700000000;keyid=\"k\";alg=\"ed25519\"";
        for i in 0..good.len() {
            let _ = parse_signature_input(&good[..i]);
            let _ = parse_signatures(&good[..i]);
        }
    }

    #[test]
    fn content_digests_parse() {
        let d = content_digest(b"hello");
        let got = parse_content_digest(&d).unwrap().unwrap();
        assert_eq!(got.to_vec(), Sha256::digest(b"hello").to_vec());
        // RFC 9530 §2 example form, with another algorithm first.
        let both = format!("sha-512=:{}:, {d}", B64.encode([0u8; 64]));
        assert_eq!(parse_content_digest(&both).unwrap(), Some(got));
        assert_eq!(parse_content_digest("sha-512=:AAAA:").unwrap(), None);
        assert!(parse_content_digest("sha-256=:AAAA:").is_err(), "wrong length");
        assert!(parse_content_digest("sha-256=\"abc\"").is_err());
        assert!(parse_content_digest("sha-256=:!!:").is_err());
    }
}
