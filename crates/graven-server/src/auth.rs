//! The bootstrap credential: one admin bearer token, created on first start.
//!
//! The token file holds the secret; the server keeps only its SHA-256 and compares in constant
//! time. Identities and roles arrive in a later step; until then every write needs this token.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::event::Actor;

pub const TOKEN_PREFIX: &str = "gvn_";

/// A verified bearer credential.
#[derive(Debug, Clone)]
pub struct BearerAuth {
    digest: [u8; 32],
    key_id: String,
}

impl BearerAuth {
    /// Loads `<data>/admin.token`, creating it (mode 0600) with 256 random bits if missing.
    /// Returns the credential and whether it was created now.
    pub fn load_or_create(path: &Path) -> std::io::Result<(Self, bool)> {
        let created = if path.exists() {
            false
        } else {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
            let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(path)?;
            f.write_all(format!("{token}\n").as_bytes())?;
            f.sync_all()?;
            true
        };
        let text = std::fs::read_to_string(path)?;
        let token = text.trim();
        if token.len() < 32 || token.len() > 256 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} does not hold a token", path.display()),
            ));
        }
        Ok((Self::from_token(token), created))
    }

    pub fn from_token(token: &str) -> Self {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let key_id = graven_core::hex::encode(&digest[..4]);
        BearerAuth { digest, key_id }
    }

    /// Checks an `Authorization` header value. Constant time in the token's contents.
    pub fn check(&self, header: Option<&str>) -> Result<Actor, AuthError> {
        let value = header.ok_or(AuthError::Missing)?;
        let token = value.strip_prefix("Bearer ").ok_or(AuthError::Scheme)?.trim();
        if token.len() > 256 {
            return Err(AuthError::Invalid);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.digest)) {
            Ok(Actor {
                id: "admin".into(),
                kind: "bootstrap".into(),
                credential: format!("key:{}", self.key_id),
                auth: "api_key".into(),
            })
        } else {
            Err(AuthError::Invalid)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "this endpoint needs a credential: send `Authorization: Bearer <token>` (the bootstrap token is in <data-dir>/admin.token)"
    )]
    Missing,
    #[error("use the Bearer scheme: `Authorization: Bearer <token>`")]
    Scheme,
    #[error("the credential is not valid")]
    Invalid,
}
