//! The one way to name a server, for every command that talks to one: `--server URL`, else the
//! `GRAVEN_SERVER` environment variable, else `http://127.0.0.1:7878` (where `graven serve`
//! listens by default). A URL is checked when it is given, so the usual slips (no scheme, a
//! scheme other than http or https) are named before anything is sent, and a request that gets
//! no answer is explained (`graven_verify::explain_request_error`).

/// Where `graven serve` listens unless told otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7878";

/// The environment variable that names the server when `--server` is not given.
pub const SERVER_ENV: &str = "GRAVEN_SERVER";

/// Longest server URL accepted.
const MAX_URL: usize = 2048;

/// A server's base URL as given, checked: `http://` or `https://`, a host, no query or
/// fragment; the trailing `/` removed. The error says what to type instead.
pub fn parse(given: &str) -> Result<String, String> {
    let s = given.trim();
    if s.is_empty() {
        return Err(format!("the server URL is empty: give its base URL, e.g. {DEFAULT_SERVER}"));
    }
    if s.len() > MAX_URL {
        return Err(format!("the server URL is longer than {MAX_URL} bytes"));
    }
    let shown = crate::escape::for_terminal(s);
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!(
            "{shown} has no scheme: did you mean http://{shown} (or https://{shown}, if the server has TLS)?"
        ));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "{shown}: a Graven server is reached over http:// or https://, not {}://",
            crate::escape::for_terminal(scheme)
        ));
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("{shown} names no host after {}://", scheme.to_ascii_lowercase()));
    }
    if s.contains(['?', '#']) || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{shown} is not a base URL: no query, fragment or spaces"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// `--server` if given, else `GRAVEN_SERVER`, else [`DEFAULT_SERVER`]; checked as [`parse`] does.
pub fn resolve(given: Option<&str>) -> anyhow::Result<String> {
    let from_env = std::env::var(SERVER_ENV).ok().filter(|v| !v.trim().is_empty());
    match (given, from_env) {
        (Some(url), _) => parse(url).map_err(anyhow::Error::msg),
        (None, Some(url)) => parse(&url).map_err(|e| anyhow::anyhow!("{SERVER_ENV}: {e}")),
        (None, None) => Ok(DEFAULT_SERVER.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_slips_are_named_with_the_fix() {
        assert_eq!(parse("http://127.0.0.1:7878/").unwrap(), "http://127.0.0.1:7878");
        assert_eq!(parse(" HTTPS://audit.example.com/graven ").unwrap(), "HTTPS://audit.example.com/graven");
        let e = parse("127.0.0.1:7878").unwrap_err();
        assert!(e.contains("no scheme") && e.contains("http://127.0.0.1:7878"), "{e}");
        let e = parse("localhost").unwrap_err();
        assert!(e.contains("did you mean http://localhost"), "{e}");
        assert!(parse("ftp://x").unwrap_err().contains("not ftp://"));
        assert!(parse("http://").unwrap_err().contains("no host"));
        assert!(parse("http:///path").unwrap_err().contains("no host"));
        assert!(parse("http://h/?a=1").unwrap_err().contains("no query"));
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse(&format!("http://{}", "a".repeat(3000))).is_err());
        // What reaches the terminal is escaped.
        let e = parse("\u{1b}[31mevil").unwrap_err();
        assert!(!e.contains('\u{1b}'), "{e:?}");
    }
}
