//! Settings of `graven witness`: flags, over a `witness.toml` (`--config FILE`, or
//! `<data>/witness.toml` if it exists), over the defaults. Unknown keys in the file are an
//! error (a typo must not fall back to a default). Logs given by flag and by file are all
//! followed.
//!
//! ```toml
//! listen = "127.0.0.1:7380"
//! key = "/etc/graven-witness/witness.key"
//! name = "witness.example.com/w1"      # only used to create the key
//! [[log]]
//! origin = "example.com/log"
//! vkey = "example.com/log+1234abcd+AQ..."
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::logs::{LogSettingError, TrustedLogs};

pub const DEFAULT_DATA: &str = "./graven-witness";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7380";
pub const CONFIG_FILE: &str = "witness.toml";
/// A checkpoint is a few hundred bytes; 16 post-quantum signatures (the most a verifier must
/// accept, signed-note) are about 80 kB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 << 10;
const MAX_CONFIG_FILE: u64 = 64 << 10;

/// `witness.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data: Option<PathBuf>,
    pub listen: Option<String>,
    /// The witness's key file (default `<data>/witness.key`), created on first start.
    pub key: Option<PathBuf>,
    /// The witness's name, to create its key (ignored, but checked, once the key exists).
    pub name: Option<String>,
    /// URL path prefix of both endpoints (default: none).
    pub prefix: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub body_timeout_ms: Option<u64>,
    pub header_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    #[serde(default)]
    pub log: Vec<LogEntry>,
}

/// `[[log]]`: one key of one followed log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    pub origin: String,
    /// The log's Ed25519 note verifier key, named `origin`.
    pub vkey: String,
}

/// What the flags say (each optional; `logs` are `ORIGIN=VKEY`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data: Option<PathBuf>,
    pub listen: Option<String>,
    pub key: Option<PathBuf>,
    pub name: Option<String>,
    pub prefix: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub logs: Vec<String>,
}

/// Everything the service needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub key: PathBuf,
    pub name: Option<String>,
    pub prefix: String,
    pub logs: TrustedLogs,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    pub header_timeout: Duration,
    pub max_connections: usize,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {why}", path.display())]
    Parse { path: PathBuf, why: String },
    #[error("listen address {0:?} is not an IP address and port (e.g. 127.0.0.1:7380)")]
    Listen(String),
    #[error("log {index} ({origin:?}): {why}")]
    Log { index: usize, origin: String, why: LogSettingError },
    #[error("--log {0:?}: {1}")]
    LogFlag(String, LogSettingError),
    #[error("no log to witness: pass --log ORIGIN=VKEY (repeatable), or [[log]] tables in witness.toml")]
    NoLogs,
    #[error(
        "prefix {0:?} must be empty, or start with '/' and not end with one, with no '{{', '}}', '*', '?', '#' or spaces"
    )]
    Prefix(String),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    if meta.len() > MAX_CONFIG_FILE {
        return Err(ConfigError::Parse { path: path.into(), why: "the file is over 64 KiB".into() });
    }
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    parse(&text).map_err(|why| ConfigError::Parse { path: path.into(), why })
}

/// Parses a `witness.toml`'s text.
pub fn parse(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

fn valid_prefix(p: &str) -> bool {
    p.is_empty()
        || (p.starts_with('/')
            && !p.ends_with('/')
            && p.bytes().all(|b| b.is_ascii_graphic() && !b"{}*?#".contains(&b))
            && !p.contains("//"))
}

/// Lays the flags over the file over the defaults.
pub fn resolve(o: Overrides) -> Result<Settings, ConfigError> {
    let data_flag = o.data.clone();
    let file = match &o.config {
        Some(path) => read_file(path)?,
        None => {
            let data = data_flag.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
            let path = data.join(CONFIG_FILE);
            if path.exists() { read_file(&path)? } else { FileConfig::default() }
        }
    };
    let data = o.data.or(file.data).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
    let listen_text = o.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = listen_text.parse().map_err(|_| ConfigError::Listen(listen_text.clone()))?;
    let key = o.key.or(file.key).unwrap_or_else(|| data.join("witness.key"));
    let prefix = o.prefix.or(file.prefix).unwrap_or_default();
    if !valid_prefix(&prefix) {
        return Err(ConfigError::Prefix(prefix));
    }
    let mut logs = TrustedLogs::new();
    for (index, entry) in file.log.iter().enumerate() {
        let err = |why| ConfigError::Log { index: index + 1, origin: entry.origin.clone(), why };
        let vkey = graven_core::note::VerifierKey::parse(&entry.vkey).map_err(|e| err(e.into()))?;
        logs.add(&entry.origin, vkey).map_err(err)?;
    }
    for flag in &o.logs {
        let (origin, vkey) =
            TrustedLogs::parse_setting(flag).map_err(|e| ConfigError::LogFlag(flag.clone(), e))?;
        logs.add(&origin, vkey).map_err(|e| ConfigError::LogFlag(flag.clone(), e))?;
    }
    if logs.is_empty() {
        return Err(ConfigError::NoLogs);
    }
    let max_body_bytes = o.max_body_bytes.or(file.max_body_bytes).unwrap_or(DEFAULT_MAX_BODY_BYTES);
    let max_connections = file.max_connections.unwrap_or(1024);
    if max_body_bytes == 0 {
        return Err(ConfigError::Zero("max_body_bytes"));
    }
    if max_connections == 0 {
        return Err(ConfigError::Zero("max_connections"));
    }
    Ok(Settings {
        data,
        listen,
        key,
        name: o.name.or(file.name),
        prefix,
        logs,
        max_body_bytes,
        body_timeout: Duration::from_millis(file.body_timeout_ms.unwrap_or(10_000).max(1)),
        header_timeout: Duration::from_millis(file.header_timeout_ms.unwrap_or(10_000).max(1)),
        max_connections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use graven_core::note::SignerKey;

    fn vkey(origin: &str) -> String {
        SignerKey::from_seed(origin, [3; 32]).unwrap().verifier().to_string()
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("listen = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err().contains("lisen"));
        let bad_log = format!("[[log]]\norigin = \"a\"\nvkey = \"{}\"\nurl = \"x\"\n", vkey("a"));
        assert!(parse(&bad_log).unwrap_err().contains("url"));
    }

    #[test]
    fn flags_and_file_logs_are_all_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("w.toml");
        std::fs::write(
            &file,
            format!("listen = \"127.0.0.1:9\"\nprefix = \"/w\"\n[[log]]\norigin = \"example.com/a\"\nvkey = \"{}\"\n", vkey("example.com/a")),
        )
        .unwrap();
        let s = resolve(Overrides {
            config: Some(file.clone()),
            listen: Some("127.0.0.1:0".into()),
            logs: vec![format!("example.com/b={}", vkey("example.com/b"))],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.listen.port(), 0, "the flag wins");
        assert_eq!(s.prefix, "/w");
        assert_eq!(s.logs.origins().collect::<Vec<_>>(), ["example.com/a", "example.com/b"]);
        // A key named after another origin, no logs at all, a bad prefix.
        std::fs::write(
            &file,
            format!("[[log]]\norigin = \"example.com/a\"\nvkey = \"{}\"\n", vkey("example.com/b")),
        )
        .unwrap();
        assert!(matches!(
            resolve(Overrides { config: Some(file.clone()), ..Default::default() }),
            Err(ConfigError::Log { .. })
        ));
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            resolve(Overrides { config: Some(file.clone()), ..Default::default() }),
            Err(ConfigError::NoLogs)
        ));
        let logs = vec![format!("example.com/b={}", vkey("example.com/b"))];
        for p in ["w", "/w/", "/{x}", "/a b"] {
            let o = Overrides {
                config: Some(file.clone()),
                prefix: Some(p.into()),
                logs: logs.clone(),
                ..Default::default()
            };
            assert!(matches!(resolve(o), Err(ConfigError::Prefix(_))), "{p}");
        }
    }
}
