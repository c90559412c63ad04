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
        // Inside the faults layer: a call is charged and may fail before `fields` cuts
        // its answer, as with Google.
        .layer(axum::middleware::from_fn(crate::partial::middleware))
        .layer(axum::middleware::from_fn_with_state(
            emu.clone(),
            crate::faults::middleware,
        ));
    Router::new()
        .merge(apis)
        .merge(crate::oauth::routes())
        .merge(crate::control::routes())
        .fallback(fallback)
        .layer(axum::middleware::from_fn(read_body_first))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(emu)
}

/// Largest request body: Gmail's 35 MiB upload limit plus multipart overhead.
pub const MAX_BODY_BYTES: usize = 40 * 1024 * 1024;

/// Read every request body in full before any handler or fault answers.
///
/// Many answers come before a handler reads the body (401 from the bearer check, an
/// injected 503, a quota 429). If hyper then finds unread body bytes on a keep-alive
/// connection it closes the connection without `Connection: close`, and a client that
/// reuses the socket (google-auth-httplib2 refreshing its token after a 401) fails with
/// a broken pipe. Draining first keeps every connection reusable, as Google's are.
async fn read_body_first(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let api = Api::from_path(parts.uri.path());
    match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        Err(_) => {
            let mut e = ApiError::bad_request(
                api,
                format!("Request body too large or unreadable (limit {MAX_BODY_BYTES} bytes)."),
            );
            e.status = StatusCode::PAYLOAD_TOO_LARGE;
            let mut resp = e.into_response();
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            resp
        }
    }
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

/// How long shutdown waits for in-flight requests before closing connections.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

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
        if let Some(mut task) = self.task.take() {
            // Graceful shutdown waits for open connections; a client that holds a
            // half-sent request must not keep the emulator alive forever.
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
                Ok(joined) => joined.map_err(std::io::Error::other)??,
                Err(_) => task.abort(),
            }
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
