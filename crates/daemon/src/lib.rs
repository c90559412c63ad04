//! `orgsync serve`: keep the application's user table in step with the directory within
//! seconds, survive restarts and missed notifications, and never destroy an account by
//! accident (the users job's real-time half).
//!
//! One process runs:
//! - [`webhook`]: the `users.watch` receiver. It authenticates each request (channel id
//!   known, token compared in constant time, resource id matching), records the
//!   notification once and enqueues a job in the same transaction, and answers within
//!   milliseconds without calling Google. Bad input gets a 4xx, never a 5xx (Google would
//!   retry a 5xx forever).
//! - [`worker`]s that claim jobs (`SKIP LOCKED` on PostgreSQL), re-read the user with
//!   `users.get` and apply it; failures back off and are retried, never dropped.
//! - the [`leader`] loop: exactly one instance (a store lease that fails over) keeps one
//!   channel per event type alive ([`channels`]) and runs the full reconcile on start and
//!   on a schedule — the safety net for notifications Google never delivered.
//! - [`contacts`] (`[serve] contacts`): each notification also enqueues one coalescing
//!   contacts run, so every address book is in step within a minute; the leader runs the
//!   full contacts run on its own schedule.
//! - the [`sink`]: every outbox entry POSTed to the application, signed, at least once.
//! - `/healthz`, `/readyz`, `/metrics`, and the [`status`] page (`/`, `/status.json`).
//! - the [`server`] they are served by: a connection cap and header, body and idle
//!   timeouts, so slow or idle clients cannot hold the listener.
//!
//! Every state that matters lives in the store, so instances are interchangeable and a
//! restart loses nothing; the only in-memory state is caches.

pub mod channels;
pub mod clock;
pub mod contacts;
pub mod leader;
pub mod metrics;
pub mod scim;
pub mod server;
pub mod sink;
pub mod status;
pub mod webhook;
pub mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orgsync_client::{GoogleClient, RetryPolicy};
use orgsync_jobs::config::Config;
use orgsync_store::Store;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use clock::{Clock, ManualClock, SystemClock};
pub use metrics::Metrics;

/// Intervals and limits that are not user configuration (tests shorten them).
#[derive(Debug, Clone)]
pub struct Tuning {
    /// How often idle workers look for jobs enqueued by other instances.
    pub poll_interval: Duration,
    /// How long a claimed job stays locked; a dead worker's jobs return after this.
    pub job_lease: Duration,
    /// Jobs claimed at once per worker.
    pub job_batch: u32,
    /// First retry delay of a failing job (doubled per attempt, capped by
    /// `job_backoff_max`): see [`Tuning::job_retry`].
    pub job_backoff_base: Duration,
    pub job_backoff_max: Duration,
    /// Lifetime of the leader lease; a dead leader is replaced after this.
    pub leader_lease: Duration,
    /// How often the leader loop runs (lease renewal, channel checks, schedule).
    pub leader_tick: Duration,
    /// Largest webhook body accepted (Google's bodies are a few hundred bytes).
    pub max_body_bytes: usize,
    /// How often the sink looks for undelivered outbox entries.
    pub sink_poll: Duration,
    /// First retry delay of a failed delivery, and its cap: see [`Tuning::sink_retry`].
    pub sink_backoff_base: Duration,
    pub sink_backoff_max: Duration,
    pub sink_timeout: Duration,
    /// How long a `sync` message for a channel not yet stored waits for it to appear (the
    /// sync can arrive before `users.watch` returns).
    pub sync_grace: Duration,
    /// Run the full reconcile when this instance becomes the leader.
    pub reconcile_on_start: bool,
    /// The `contacts-run` lease's lifetime, renewal and polling (how long a crashed
    /// instance keeps the address books from others).
    pub contacts_lease: orgsync_jobs::contacts::lease::LeaseTiming,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            poll_interval: Duration::from_millis(250),
            job_lease: Duration::from_secs(60),
            job_batch: 16,
            job_backoff_base: Duration::from_secs(2),
            job_backoff_max: Duration::from_secs(3600),
            leader_lease: Duration::from_secs(30),
            leader_tick: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            sink_poll: Duration::from_millis(500),
            sink_backoff_base: Duration::from_secs(1),
            sink_backoff_max: Duration::from_secs(300),
            sink_timeout: Duration::from_secs(10),
            sync_grace: Duration::from_secs(3),
            reconcile_on_start: true,
            contacts_lease: Default::default(),
        }
    }
}

impl Tuning {
    /// How failing jobs are rescheduled (never dropped); the reasons are in
    /// [`orgsync_client::retry`].
    pub fn job_retry(&self) -> RetryPolicy {
        RetryPolicy::forever(self.job_backoff_base, self.job_backoff_max)
    }

    /// How failed deliveries to the application are rescheduled (never dropped).
    pub fn sink_retry(&self) -> RetryPolicy {
        RetryPolicy::forever(self.sink_backoff_base, self.sink_backoff_max)
    }
}

/// Why the daemon could not start. Every variant but [`DaemonError::Io`] and
/// [`DaemonError::Store`] is a setting to fix; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// `[serve]` failed its own validation.
    #[error("invalid [serve] configuration: {0}")]
    Config(String),
    #[error("invalid [serve] configuration: serve.webhook_path must start with '/', got {0:?}")]
    WebhookPath(String),
    #[error("invalid [serve] configuration: serve.workers must be at least 1")]
    NoWorkers,
    #[error(
        "invalid [serve] configuration: serve.renew_ahead_secs ({renew_ahead_secs}) must be \
         less than serve.channel_ttl_secs ({channel_ttl_secs})"
    )]
    RenewAheadTooLong {
        renew_ahead_secs: u64,
        channel_ttl_secs: u64,
    },
    #[error(
        "invalid [serve] configuration: serve.public_url is not set and {addr} is not a \
         loopback address: set it to the https URL Google can reach, e.g. \
         https://orgsync.example.com{webhook_path}"
    )]
    NoPublicUrl {
        addr: SocketAddr,
        webhook_path: String,
    },
    #[error("invalid [serve] configuration: {0}")]
    Sink(#[from] sink::SinkError),
    #[error("invalid [serve] configuration: HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] orgsync_store::StoreError),
}

impl DaemonError {
    /// Whether a setting must change (rather than the machine or the store).
    pub fn is_config(&self) -> bool {
        !matches!(self, DaemonError::Io(_) | DaemonError::Store(_))
    }
}

/// What every task shares.
pub struct Shared {
    pub config: Config,
    pub client: GoogleClient,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub tuning: Tuning,
    /// Unique per process: the job-lock and lease holder name.
    pub instance_id: String,
    /// The address Google posts to (`[serve] public_url`, or derived from the listener).
    pub webhook_url: String,
    /// Channels being created by this instance: id → token (their `sync` may arrive first).
    pub pending_channels: Mutex<HashMap<String, String>>,
    /// Known channels by id (a cache of the store; misses read the store).
    pub channel_cache: Mutex<HashMap<String, orgsync_store::Channel>>,
    /// Wakes local workers when the webhook enqueued a job.
    pub wake: Notify,
    /// Whether this instance currently holds the leader lease.
    pub is_leader: std::sync::atomic::AtomicBool,
    pub(crate) sync_waiters: tokio::sync::Semaphore,
    pub(crate) http: reqwest::Client,
    pub(crate) sink_secret: Option<Vec<u8>>,
    /// Connections the HTTP server holds open now.
    pub connections: Arc<server::Connections>,
    /// Contacts runs (push-driven and scheduled) in their own tasks: aborted on shutdown
    /// and kill, so no run outlives its daemon (its job comes back when its lock expires).
    pub(crate) contacts_runs: Mutex<tokio::task::JoinSet<()>>,
    /// What the status page shows that the store does not keep (uptime, the last
    /// notification per channel).
    pub observed: status::Observed,
}

impl Shared {
    /// Run `work` as a long task of this daemon (a contacts or SCIM run), aborted on
    /// shutdown.
    pub(crate) fn spawn_contacts(
        &self,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let mut set = self.contacts_runs.lock().unwrap_or_else(|e| e.into_inner());
        // Reap finished ones so the set does not grow.
        while set.try_join_next().is_some() {}
        set.spawn(work);
    }

    fn abort_contacts(&self) {
        self.contacts_runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .abort_all();
    }
}

impl Shared {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// A running daemon.
pub struct DaemonHandle {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    cancel: CancellationToken,
    server: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl DaemonHandle {
    pub fn instance_id(&self) -> &str {
        &self.shared.instance_id
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Graceful shutdown: stop accepting, let workers finish the jobs they hold, give up
    /// the leader lease so another instance takes over at once.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        // A contacts run is cut, not awaited (a full run can take an hour): its lease is
        // released as it drops, and its job runs again on the next start.
        self.shared.abort_contacts();
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
    }

    /// Simulate a crash: every task is aborted mid-flight; nothing is released. Jobs and
    /// the lease this instance held come back to others when their leases expire.
    pub fn kill(self) {
        self.cancel.cancel();
        self.shared.abort_contacts();
        self.server.abort();
        for t in self.tasks {
            t.abort();
        }
    }

    /// Resolves when a shutdown was requested.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.cancel.clone().cancelled_owned()
    }
}

/// Start the daemon on `listener`.
pub async fn start(
    config: Config,
    client: GoogleClient,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    tuning: Tuning,
    listener: TcpListener,
) -> Result<DaemonHandle, DaemonError> {
    let addr = listener.local_addr()?;
    let serve = &config.serve;
    serve.validate().map_err(|e| match e {
        orgsync_jobs::config::ConfigError::Invalid(m) => DaemonError::Config(m),
        other => DaemonError::Config(other.to_string()),
    })?;
    if !serve.webhook_path.starts_with('/') {
        return Err(DaemonError::WebhookPath(serve.webhook_path.clone()));
    }
    if serve.workers == 0 {
        return Err(DaemonError::NoWorkers);
    }
    if serve.renew_ahead_secs >= serve.channel_ttl_secs {
        return Err(DaemonError::RenewAheadTooLong {
            renew_ahead_secs: serve.renew_ahead_secs,
            channel_ttl_secs: serve.channel_ttl_secs,
        });
    }
    let webhook_url = match &serve.public_url {
        Some(u) => u.clone(),
        None if addr.ip().is_loopback() => format!("http://{addr}{}", serve.webhook_path),
        None => {
            return Err(DaemonError::NoPublicUrl {
                addr,
                webhook_path: serve.webhook_path.clone(),
            });
        }
    };
    let sink_secret = sink::load_secret(&serve.sink)?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(tuning.sink_timeout)
        .build()
        .map_err(DaemonError::HttpClient)?;
    let workers = serve.workers;
    let shared = Arc::new(Shared {
        config,
        client,
        store,
        clock,
        metrics: Arc::new(Metrics::new()),
        tuning,
        instance_id: format!("orgsync-{}", uuid::Uuid::new_v4().simple()),
        webhook_url,
        pending_channels: Mutex::new(HashMap::new()),
        channel_cache: Mutex::new(HashMap::new()),
        wake: Notify::new(),
        is_leader: std::sync::atomic::AtomicBool::new(false),
        sync_waiters: tokio::sync::Semaphore::new(16),
        http,
        sink_secret,
        connections: Arc::new(server::Connections::new()),
        contacts_runs: Mutex::new(tokio::task::JoinSet::new()),
        observed: status::Observed::new(),
    });
    let cancel = CancellationToken::new();
    let app = webhook::router(shared.clone());
    let server_cancel = cancel.clone();
    let limits = server::Limits {
        header_timeout: Duration::from_secs(shared.config.serve.header_timeout_secs),
        body_timeout: Duration::from_secs(shared.config.serve.body_timeout_secs),
        max_connections: shared.config.serve.max_connections,
        max_body_bytes: shared.tuning.max_body_bytes,
    };
    let server = tokio::spawn(server::run(
        listener,
        app,
        limits,
        shared.connections.clone(),
        shared.metrics.clone(),
        server_cancel,
    ));
    let mut tasks = Vec::new();
    for n in 0..workers {
        tasks.push(tokio::spawn(worker::run(
            shared.clone(),
            format!("{}/w{n}", shared.instance_id),
            cancel.clone(),
        )));
    }
    tasks.push(tokio::spawn(leader::run(shared.clone(), cancel.clone())));
    if shared.config.serve.sink.url.is_some() {
        tasks.push(tokio::spawn(sink::run(shared.clone(), cancel.clone())));
    }
    tracing::info!(%addr, webhook = %shared.webhook_url, instance = %shared.instance_id, contacts = shared.config.serve.contacts, "orgsync serve started");
    Ok(DaemonHandle {
        addr,
        shared,
        cancel,
        server,
        tasks,
    })
}
