//! Starting and stopping `graven witness`: the key (created on first start), the state, the
//! listener, HTTP/1.1 with keep-alive (tlog-witness: "witnesses SHOULD support, HTTP
//! keep-alive"), a bounded number of connections, a deadline for request headers, and a
//! graceful drain on SIGTERM or SIGINT (requests in flight finish; their records are durable
//! before they are answered anyway).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::http::{AppState, app, system_clock};
use crate::keyfile::{self, KeyFileError};
use crate::store::StoreError;
use crate::witness::Witness;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("creating the data directory {}: {source}", path.display())]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Key(#[from] KeyFileError),
    #[error("opening the witness's state: {0}")]
    Store(#[from] StoreError),
    #[error("listening on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
}

/// Runs the witness until SIGTERM or SIGINT.
pub async fn run(settings: Settings) -> Result<(), ServeError> {
    let data = settings.data.clone();
    std::fs::create_dir_all(&data).map_err(|source| ServeError::DataDir { path: data.clone(), source })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700));
    }
    let (cosigner, created) = keyfile::load_or_create(&settings.key, settings.name.as_deref())?;
    let witness =
        Arc::new(Witness::open(Arc::new(graven_tlog::RealFs), &data, cosigner, settings.logs.clone())?);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: settings.listen, source })?;
    let addr =
        listener.local_addr().map_err(|source| ServeError::Listen { addr: settings.listen, source })?;
    if created {
        println!("created a new witness key in {} (keep it secret)", settings.key.display());
    }
    println!("verifier key: {}", witness.verifier());
    for origin in witness.logs().origins() {
        let held = witness.held(origin).map_or(0, |c| c.size().0);
        println!("following {origin} (cosigned size {held})");
    }
    if !settings.prefix.is_empty() {
        println!("prefix: {}", settings.prefix);
    }
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    let state = Arc::new(AppState {
        witness,
        max_body_bytes: settings.max_body_bytes,
        body_timeout: settings.body_timeout,
        clock: system_clock,
    });
    serve_connections(
        listener,
        app(state, &settings.prefix),
        settings.max_connections,
        settings.header_timeout,
    )
    .await;
    println!("stopped");
    Ok(())
}

/// The accept loop. A connection over the limit is closed at once rather than queued.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    max_connections: usize,
    header_timeout: Duration,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                tower_service::Service::call(&mut router.clone(), req)
            });
            let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(30)) => {}
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
