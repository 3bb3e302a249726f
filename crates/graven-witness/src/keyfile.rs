//! The witness's key file: `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || seed)>`, the
//! `cosignature/v1` signer key (C2SP `tlog-cosignature`, type `0x04`), mode 0600. Created with
//! fresh randomness when asked; never overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use graven_core::cosignature::Cosigner;

/// Largest key file read.
const MAX_KEY_FILE: u64 = 4096;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{} does not hold a witness key (cosignature/v1): {why}; make one with `graven witness keygen --name NAME --out FILE`", path.display())]
    NotAWitnessKey { path: PathBuf, why: String },
    #[error("{} does not exist; give the witness's name (--name, e.g. witness.example.com/w1) to create it there", .0.display())]
    NoName(PathBuf),
    #[error("{} already exists; refusing to overwrite a key", .0.display())]
    Exists(PathBuf),
    #[error("{name:?} cannot be a witness name: {why}")]
    Name { name: String, why: String },
    #[error("no randomness available to make a key: {0}")]
    Random(String),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> KeyFileError + 'a {
    move |source| KeyFileError::Io { what, path: path.to_path_buf(), source }
}

/// Reads a witness key file.
pub fn load(path: &Path) -> Result<Cosigner, KeyFileError> {
    let meta = std::fs::metadata(path).map_err(io("reading", path))?;
    if meta.len() > MAX_KEY_FILE {
        return Err(KeyFileError::NotAWitnessKey { path: path.into(), why: "it is over 4 KiB".into() });
    }
    let text = std::fs::read_to_string(path).map_err(io("reading", path))?;
    Cosigner::parse(text.trim())
        .map_err(|e| KeyFileError::NotAWitnessKey { path: path.into(), why: e.to_string() })
}

/// Creates a new key named `name` in `path` (mode 0600, synced, as is its directory entry).
/// Refuses to overwrite anything.
pub fn create(path: &Path, name: &str) -> Result<Cosigner, KeyFileError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyFileError::Random(e.to_string()))?;
    let key = Cosigner::from_seed(name, seed)
        .map_err(|e| KeyFileError::Name { name: name.to_owned(), why: e.to_string() })?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => KeyFileError::Exists(path.into()),
        _ => io("creating", path)(e),
    })?;
    f.write_all(format!("{}\n", key.to_secret_string()).as_bytes()).map_err(io("writing", path))?;
    f.sync_all().map_err(io("syncing", path))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("syncing", dir))?;
    Ok(key)
}

/// Loads `path`, or creates it for `name` if it does not exist. `true` if it was created.
pub fn load_or_create(path: &Path, name: Option<&str>) -> Result<(Cosigner, bool), KeyFileError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => {
            let key = load(path)?;
            if let Some(n) = name.filter(|n| *n != key.name()) {
                return Err(KeyFileError::Name {
                    name: n.to_owned(),
                    why: format!("{} holds the key of witness {:?}", path.display(), key.name()),
                });
            }
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = name.ok_or_else(|| KeyFileError::NoName(path.into()))?;
            Ok((create(path, name)?, true))
        }
        Err(e) => Err(io("reading", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("witness.key");
        assert!(matches!(load_or_create(&path, None), Err(KeyFileError::NoName(_))));
        let (k, created) = load_or_create(&path, Some("witness.example/w1")).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (again, created) = load_or_create(&path, None).unwrap();
        assert!(!created);
        assert_eq!(again.verifier(), k.verifier());
        assert!(matches!(create(&path, "witness.example/w1"), Err(KeyFileError::Exists(_))));
        assert!(matches!(load_or_create(&path, Some("other/name")), Err(KeyFileError::Name { .. })));
        // A log key is not a witness key.
        let log = tmp.path().join("log.key");
        let lk = graven_core::note::SignerKey::from_seed("example.com/log", [1; 32]).unwrap();
        std::fs::write(&log, lk.to_secret_string()).unwrap();
        assert!(matches!(load(&log), Err(KeyFileError::NotAWitnessKey { .. })));
    }
}
