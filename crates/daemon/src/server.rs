//! The HTTP/1.1 server in front of the router: connection cap, header, body and idle
//! timeouts, and 413/408 answers that clients can read.
//!
//! `axum::serve` has no timeouts and no connection cap: a client that sends one header
//! byte every few seconds, or a body one byte at a time, holds its connection (a task, a
//! descriptor and hyper's buffers) forever, and enough of them exhaust the descriptors
//! Google's pushes need. This module serves each connection with hyper's own HTTP/1
//! builder instead, so that:
//!
//! - **headers** must arrive within `[serve] header_timeout_secs` (hyper's
//!   `header_read_timeout`, driven by a tokio timer). Hyper starts that clock when a
//!   connection opens and again whenever it goes idle after a response, so the same
//!   setting closes idle keep-alive connections;
//! - **bodies** are read here, before the router runs, within `body_timeout_secs` of the
//!   headers (one deadline for the whole body, not per read: a trickle of one byte per
//!   second never finishes). Too slow: `408 Request Timeout` with `Connection: close`
//!   ([RFC 9110 §15.5.9](https://www.rfc-editor.org/rfc/rfc9110#section-15.5.9));
//! - **oversized bodies** get `413 Content Too Large` that the client can read: a server
//!   that answers and closes while the client is still sending makes the kernel reset the
//!   connection, and the client sees a broken pipe instead of the 413. So a body of up to
//!   [`MAX_DRAIN_BYTES`] is read to its end and discarded first (within the body
//!   deadline). A larger declared length, or a client waiting for `100 Continue`, is
//!   answered at once: draining megabytes for a rejection would be a cost an attacker
//!   chooses;
//! - **at most `max_connections`** connections are served. A connection arriving at the
//!   cap closes the one that has waited longest for its next request (idle, or still
//!   sending headers or a body) and takes its place. A connection whose request is being
//!   handled is never chosen; when every connection is busy the new one waits for the
//!   first to finish (handlers answer in milliseconds). A flood of slow clients thus only
//!   displaces itself, and a `/healthz` probe or a push always gets a place. The same
//!   eviction runs when `accept` fails for lack of descriptors.
//!
//! Memory: each served connection holds hyper's read buffer (8 KiB, growing to
//! [`MAX_BUF_BYTES`] at most, which also caps the size of a request's headers) and the
//! body being collected (at most `max_body_bytes`), so the cap bounds what clients can
//! make the process hold.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::metrics::{CloseReason, Metrics, RejectReason};

/// Oversized bodies up to this size are read and discarded so that the client can read the
/// 413 (Google's push bodies are a few hundred bytes; nothing legitimate comes close).
pub const MAX_DRAIN_BYTES: u64 = 1024 * 1024;

/// Largest read buffer per connection (hyper's `max_buf_size`); request headers must fit.
/// Google's push headers are well under 4 KiB.
pub const MAX_BUF_BYTES: usize = 64 * 1024;

/// The exported name of the counter of connections the server closed, by reason (what
/// [`Metrics::get`] reads).
pub const CLOSED_TOTAL: &str = "orgsync_http_connections_closed_total";

/// What the server enforces (from `[serve]` and [`crate::Tuning`]).
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_body_bytes: usize,
}

/// Marks a connection whose request the router is handling (never evicted).
const BUSY: u64 = u64::MAX;

struct Conn {
    /// When the connection last became idle (ns since [`Connections::epoch`]), or [`BUSY`].
    idle_since: AtomicU64,
    evict: CancellationToken,
}

/// The open connections, for eviction and the `orgsync_http_connections_open` gauge.
pub struct Connections {
    epoch: Instant,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Connections {
    pub(crate) fn new() -> Self {
        Connections {
            epoch: Instant::now(),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections being served now.
    pub fn open(&self) -> usize {
        self.lock().len()
    }

    fn add(&self, id: u64) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            idle_since: AtomicU64::new(self.now()),
            evict: CancellationToken::new(),
        });
        self.lock().insert(id, conn.clone());
        conn
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Close the connection that has waited longest for a request; false if all are busy.
    fn evict_longest_idle(&self) -> bool {
        let mut open = self.lock();
        let victim = open
            .iter()
            .map(|(id, c)| (*id, c.idle_since.load(Ordering::Relaxed)))
            .filter(|(_, since)| *since != BUSY)
            .min_by_key(|(_, since)| *since)
            .map(|(id, _)| id);
        match victim.and_then(|id| open.remove(&id)) {
            Some(c) => {
                c.evict.cancel();
                true
            }
            None => false,
        }
    }
}

/// Serve `router` on `listener` until `shutdown`, then finish the requests in flight.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    connections: Arc<Connections>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    let mut next_id = 0u64;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors (EMFILE, ENFILE): free one; anything else
                    // (a connection reset before accept) is the client's problem.
                    if matches!(e.raw_os_error(), Some(23 | 24))
                        && connections.evict_longest_idle()
                    {
                        metrics.connection_closed(CloseReason::Evicted);
                    }
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                        _ = shutdown.cancelled() => break,
                    }
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if connections.evict_longest_idle() {
                    metrics.connection_closed(CloseReason::Evicted);
                }
                tokio::select! {
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = shutdown.cancelled() => break,
                }
            }
        };
        next_id += 1;
        // Registered here, not in the task, so the next accept can already evict it.
        let conn = connections.add(next_id);
        tokio::spawn(serve_connection(
            stream,
            next_id,
            conn,
            router.clone(),
            limits.clone(),
            connections.clone(),
            metrics.clone(),
            shutdown.clone(),
            permit,
        ));
    }
    drop(listener);
    // Every connection task holds a permit until it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    stream: TcpStream,
    id: u64,
    conn: Arc<Conn>,
    router: Router,
    limits: Arc<Limits>,
    connections: Arc<Connections>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let service = {
        let (conn, connections, metrics, limits) = (
            conn.clone(),
            connections.clone(),
            metrics.clone(),
            limits.clone(),
        );
        hyper::service::service_fn(move |req| {
            handle(
                req,
                router.clone(),
                limits.clone(),
                conn.clone(),
                connections.clone(),
                metrics.clone(),
            )
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_BUF_BYTES);
    let served = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    let mut draining = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        metrics.connection_closed(CloseReason::HeaderTimeout);
                    } else {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                break;
            }
            // Dropping the connection closes it.
            _ = conn.evict.cancelled() => break,
            _ = shutdown.cancelled(), if !draining => {
                served.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
    connections.remove(id);
}

/// Why a body was not collected.
enum BodyError {
    TooLarge,
    TimedOut,
    Broken,
}

async fn handle(
    req: Request<Incoming>,
    router: Router,
    limits: Arc<Limits>,
    conn: Arc<Conn>,
    connections: Arc<Connections>,
    metrics: Arc<Metrics>,
) -> Result<Response<ResponseBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let deadline = Instant::now() + limits.body_timeout;
    let bytes = match collect(&parts.headers, body, limits.max_body_bytes, deadline).await {
        Ok(b) => b,
        Err(e) => {
            let (status, reason) = match e {
                BodyError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, RejectReason::BodyTooLarge),
                BodyError::TimedOut => (StatusCode::REQUEST_TIMEOUT, RejectReason::BodyTimeout),
                BodyError::Broken => (StatusCode::BAD_REQUEST, RejectReason::BodyUnreadable),
            };
            metrics.notification_rejected(reason);
            let reason = reason.as_str();
            let mut resp = Response::new(ResponseBody {
                inner: Body::from(format!("rejected: {reason}\n")),
                _busy: None,
            });
            *resp.status_mut() = status;
            let headers = resp.headers_mut();
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return Ok(resp);
        }
    };
    conn.idle_since.store(BUSY, Ordering::Relaxed);
    let busy = BusyGuard { conn, connections };
    let req = Request::from_parts(parts, Body::from(bytes));
    let Ok(resp) = router.oneshot(req).await;
    Ok(resp.map(|inner| ResponseBody {
        inner,
        _busy: Some(busy),
    }))
}

/// The next frame of `body`, or [`BodyError::TimedOut`] at `deadline`.
async fn next_frame(
    body: &mut Incoming,
    deadline: Instant,
) -> Result<Option<Result<Frame<Bytes>, hyper::Error>>, BodyError> {
    tokio::time::timeout_at(deadline, poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)))
        .await
        .map_err(|_| BodyError::TimedOut)
}

/// The whole body, at most `limit` bytes, by `deadline`.
async fn collect(
    headers: &HeaderMap,
    mut body: Incoming,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, BodyError> {
    if let Some(declared) = body.size_hint().exact()
        && declared > limit as u64
    {
        // A client waiting for `100 Continue` has not sent the body: answer at once.
        let expects_continue = headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if declared <= MAX_DRAIN_BYTES && !expects_continue {
            drain(&mut body, 0, deadline).await;
        }
        return Err(BodyError::TooLarge);
    }
    let mut buf = Vec::new();
    while let Some(frame) = next_frame(&mut body, deadline).await? {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                // A chunked body over the limit: discard the rest, up to the drain bound.
                let seen = (buf.len() + data.len()) as u64;
                drop(buf);
                drain(&mut body, seen, deadline).await;
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Read and discard `body` until its end, [`MAX_DRAIN_BYTES`] in all or `deadline`,
/// whichever comes first (the caller answers either way).
async fn drain(body: &mut Incoming, mut seen: u64, deadline: Instant) {
    while seen <= MAX_DRAIN_BYTES {
        match next_frame(body, deadline).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    seen += data.len() as u64;
                }
            }
            _ => return,
        }
    }
}

/// Marks the connection idle again once hyper is done with the response body.
struct BusyGuard {
    conn: Arc<Conn>,
    connections: Arc<Connections>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(self.connections.now(), Ordering::Relaxed);
    }
}

/// The router's response body, holding the connection busy until it is written.
pub struct ResponseBody {
    inner: Body,
    _busy: Option<BusyGuard>,
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
