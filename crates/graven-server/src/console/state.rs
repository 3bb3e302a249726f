//! The console's state: the server's own ([`AppState`], which it derefs to), its sessions, and
//! whether its cookie must be `Secure`.

use std::sync::Arc;

use graven_auth::principal::Principal;

use super::session::Sessions;
use crate::http::AppState;

#[derive(Debug)]
pub struct ConsoleState {
    pub app: Arc<AppState>,
    pub sessions: Sessions<Arc<Principal>>,
    /// The server speaks TLS: the session cookie is `Secure`.
    pub secure_cookie: bool,
}

impl std::ops::Deref for ConsoleState {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.app
    }
}
