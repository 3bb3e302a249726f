//! Console sessions: a random 256-bit token in an HttpOnly, SameSite=Strict cookie (Secure
//! when the server speaks TLS), kept here only as its SHA-256, with the identity it was made
//! for and an absolute expiry. Bounded: when [`MAX_SESSIONS`] are live, a sign-in is refused
//! rather than another session forgotten early. Kept in memory: a restart signs everybody out.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE: &str = "graven_session";
/// How long a session lasts from its sign-in.
pub const LIFETIME_MS: i64 = 8 * 3600 * 1000;
/// Most sessions live at once.
pub const MAX_SESSIONS: usize = 10_000;

/// One signed-in session, of whoever `T` says signed in.
#[derive(Debug, Clone)]
pub struct Session<T> {
    /// The identity that signed in.
    pub identity: String,
    /// What it signed in as (the console keeps the verified principal, re-checked on every
    /// request).
    pub principal: T,
    pub expires_ms: i64,
    /// The token sign-out forms carry, so another site cannot sign a person out.
    pub form_token: String,
}

/// The live sessions.
#[derive(Debug)]
pub struct Sessions<T> {
    live: Mutex<HashMap<[u8; 32], Session<T>>>,
}

impl<T> Default for Sessions<T> {
    fn default() -> Self {
        Sessions { live: Mutex::new(HashMap::new()) }
    }
}

/// Why a session could not be made.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionError {
    Full,
    Random,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random_token() -> Result<String, SessionError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|_| SessionError::Random)?;
    Ok(B64URL.encode(b))
}

impl<T: Clone> Sessions<T> {
    /// A new session for `identity`: its token (the cookie's value) and the session.
    pub fn create(
        &self,
        identity: &str,
        principal: T,
        now_ms: i64,
    ) -> Result<(String, Session<T>), SessionError> {
        let token = random_token()?;
        let session = Session {
            identity: identity.to_owned(),
            principal,
            expires_ms: now_ms.saturating_add(LIFETIME_MS),
            form_token: random_token()?,
        };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, s| s.expires_ms > now_ms);
        if live.len() >= MAX_SESSIONS {
            return Err(SessionError::Full);
        }
        live.insert(digest(&token), session.clone());
        Ok((token, session))
    }

    /// The live session of `token`, if any (an expired one is forgotten).
    pub fn get(&self, token: &str, now_ms: i64) -> Option<Session<T>> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let key = digest(token);
        match live.get(&key) {
            Some(s) if s.expires_ms > now_ms => Some(s.clone()),
            Some(_) => {
                live.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `token`.
    pub fn end(&self, token: &str) -> Option<Session<T>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&digest(token))
    }

    /// Ends every session of `identity` (it was disabled or revoked).
    pub fn end_all_of(&self, identity: &str) {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, s| s.identity != identity);
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').map(str::trim).find_map(|c| c.strip_prefix(name)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_its_expiry_and_ends_when_asked() {
        let s: Sessions<u8> = Sessions::default();
        let (token, made) = s.create("svc:auditor", 1, 1_000).unwrap();
        assert_eq!(token.len(), 43);
        assert_ne!(token, made.form_token);
        assert_eq!(s.get(&token, 2_000).unwrap().identity, "svc:auditor");
        assert!(s.get("not-a-token", 2_000).is_none());
        assert!(s.get(&token, 1_000 + LIFETIME_MS).is_none(), "expired");
        let (token, _) = s.create("svc:auditor", 1, 1_000).unwrap();
        assert!(s.end(&token).is_some());
        assert!(s.get(&token, 2_000).is_none());
        let (token, _) = s.create("svc:auditor", 1, 1_000).unwrap();
        s.end_all_of("svc:auditor");
        assert!(s.get(&token, 2_000).is_none());
    }

    #[test]
    fn sessions_are_bounded_and_expired_ones_make_room() {
        let s: Sessions<u8> = Sessions::default();
        for _ in 0..MAX_SESSIONS {
            s.create("a", 1, 0).unwrap();
        }
        assert_eq!(s.create("a", 1, 1).unwrap_err(), SessionError::Full);
        assert!(s.create("a", 1, LIFETIME_MS).is_ok(), "the expired ones are dropped first");
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(cookie("a=1; graven_session=xyz; b=2", COOKIE), Some("xyz"));
        assert_eq!(cookie("graven_session_x=1", COOKIE), None);
        assert_eq!(cookie("", COOKIE), None);
    }
}
