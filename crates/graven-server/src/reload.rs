//! Reloading the configuration on SIGHUP, without dropping a connection.
//!
//! The file is read and resolved again exactly as at start (flags and environment still win).
//! A file that does not resolve, or whose OIDC federation cannot be built, is refused: the
//! running configuration stays as it was and the refusal is logged with its cause. Otherwise
//! the keys in [`RELOADABLE_KEYS`] that changed are first recorded in the log, as a
//! `graven.config.reload` event by the server with the file's SHA-256 (a change to who may
//! authenticate is never made unseen; if the log cannot take the record, the reload is
//! refused), then put in force for every request from then on, as one swap. A changed key
//! that is not reloadable (the listen address, storage, TLS files, ...) is logged as waiting
//! for a restart and does not take effect.

use std::sync::Arc;

use crate::config::{Config, ConfigError, FileSnapshot, RELOADABLE_KEYS};
use crate::http::audit;
use crate::http::state::{AppState, LiveSettings};

/// Resolves the configuration again, as at start.
pub type Resolve = Box<dyn Fn() -> Result<(Config, FileSnapshot), ConfigError> + Send + Sync>;

/// What a SIGHUP reloads from, and what it compares against.
pub struct Reloader {
    resolve: Resolve,
    /// The file as the server started with it: a non-reloadable key that differs from it
    /// waits for a restart.
    started: FileSnapshot,
    /// The file whose reloadable keys are in force.
    applied: FileSnapshot,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").field("started", &self.started.path).finish_non_exhaustive()
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Reloadable keys that changed and are now in force.
    pub applied: Vec<String>,
    /// Keys that differ from the file the server started with and wait for a restart.
    pub restart_needed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Setting(String),
    #[error("the log did not take the record of the reload ({0})")]
    NotRecorded(String),
}

/// The reloadable settings of `config`: what [`AppState::live`] serves.
pub fn live_settings(config: &Config, clock: Arc<dyn graven_clock::Clock>) -> Result<LiveSettings, String> {
    let oidc = match &config.oidc {
        Some(c) => Some(Arc::new(graven_auth::oidc::Federation::new(c, clock)?)),
        None => None,
    };
    Ok(LiveSettings {
        public_read_path: config.public_read_path,
        oidc,
        spiffe_ids: Arc::new(config.tls.as_ref().map(|t| t.spiffe_ids.clone()).unwrap_or_default()),
        rules: Arc::new(config.rules.clone()),
    })
}

impl Reloader {
    /// `started`: the file the running configuration came from; `resolve` reads it again.
    pub fn new(started: FileSnapshot, resolve: Resolve) -> Reloader {
        Reloader { applied: started.clone(), started, resolve }
    }

    /// Reads the configuration again and applies what may change while running.
    pub async fn reload(&mut self, state: &AppState) -> Result<Reloaded, ReloadError> {
        let (config, file) = (self.resolve)()?;
        let live = live_settings(&config, state.clock.clone()).map_err(ReloadError::Setting)?;
        let reloadable = |k: &String| RELOADABLE_KEYS.contains(&k.as_str());
        let applied: Vec<String> = self.applied.changed_keys(&file).into_iter().filter(reloadable).collect();
        let restart_needed: Vec<String> =
            self.started.changed_keys(&file).into_iter().filter(|k| !reloadable(k)).collect();
        if !applied.is_empty() {
            let details = serde_json::json!({
                "changed": applied,
                "restart_needed": restart_needed,
                "config_file": file.path.as_ref().map(|p| p.display().to_string()),
                "config_sha256": file.sha256,
            });
            audit::record_reload(state, details).await.map_err(|e| ReloadError::NotRecorded(e.detail))?;
            state.set_live(live);
            state.denied_limiter.set_limits(config.denied_limits);
        }
        self.applied = file;
        Ok(Reloaded { applied, restart_needed })
    }
}

/// Reloads on every SIGHUP until the task is aborted, logging what each reload did.
#[cfg(unix)]
pub async fn on_sighup(state: Arc<AppState>, mut reloader: Reloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP: the configuration will not be reloaded");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match reloader.reload(&state).await {
            Ok(r) => {
                if r.applied.is_empty() {
                    tracing::info!("SIGHUP: configuration read again; nothing that can be reloaded changed");
                } else {
                    tracing::info!(changed = %r.applied.join(","), "SIGHUP: configuration reloaded");
                }
                if !r.restart_needed.is_empty() {
                    tracing::warn!(
                        keys = %r.restart_needed.join(","),
                        "SIGHUP: these settings changed in the config file but take effect only after a restart"
                    );
                }
            }
            Err(e) => tracing::error!(
                error = %e,
                "SIGHUP: reload refused; the running configuration is unchanged"
            ),
        }
    }
}

/// Not on this platform: there is no SIGHUP.
#[cfg(not(unix))]
pub async fn on_sighup(_state: Arc<AppState>, _reloader: Reloader) {}
