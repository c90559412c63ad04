//! Serving the emulator: the router, `serve` on a listener with a shutdown signal, and
//! [`spawn`] for tests and the demo (binds, starts in the background, returns a handle).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use tokio::net::TcpListener;

use crate::config::EmulatorConfig;
use crate::error::{Api, ApiError};
use crate::state::Emulator;

/// Every route of every API, with fault injection and accounting around the API ones.
pub fn router(emu: Arc<Emulator>) -> Router {
    let apis = Router::new()
        .merge(crate::directory::routes())
        .merge(crate::people::routes())
        .merge(crate::gmail::routes())
        .merge(crate::calendar::routes())
        .layer(axum::middleware::from_fn_with_state(
            emu.clone(),
            crate::faults::middleware,
        ));
    Router::new()
        .merge(apis)
        .merge(crate::oauth::routes())
        .merge(crate::control::routes())
        .fallback(fallback)
        .with_state(emu)
}

async fn fallback(uri: axum::http::Uri) -> ApiError {
    let api = Api::from_path(uri.path());
    let mut e = ApiError::not_found(
        api,
        format!(
            "The requested URL {} was not found on this server.",
            uri.path()
        ),
    );
    e.status = StatusCode::NOT_FOUND;
    e
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    emu: Arc<Emulator>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    *emu.base_url.write() = format!("http://{addr}");
    axum::serve(listener, router(emu))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A running emulator.
pub struct EmulatorHandle {
    pub emulator: Arc<Emulator>,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base_url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl EmulatorHandle {
    /// Stop serving and wait for in-flight requests; persists state when a data dir is set.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.map_err(std::io::Error::other)??;
        }
        crate::persist::save(&self.emulator).map_err(std::io::Error::other)
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Bind `config.listen`, bootstrap (load from the data dir or generate the org, write
/// key files), and serve in the background.
pub async fn spawn(config: EmulatorConfig) -> Result<EmulatorHandle, crate::persist::BootError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| crate::persist::BootError::Bind(config.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| crate::persist::BootError::Bind(config.listen, e))?;
    let emu = Arc::new(Emulator::empty(config));
    *emu.base_url.write() = format!("http://{addr}");
    crate::persist::bootstrap(&emu)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(emu.clone(), listener, async {
        let _ = rx.await;
    }));
    Ok(EmulatorHandle {
        base_url: format!("http://{addr}"),
        emulator: emu,
        shutdown: Some(tx),
        task: Some(task),
    })
}
