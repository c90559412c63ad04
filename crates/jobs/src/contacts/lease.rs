//! One writing contacts run at a time: the `contacts-run` lease in the state store.
//!
//! Two runs writing the same address books at once each plan from a listing the other is
//! changing, so both create the same contacts, and the next run merges the duplicates away
//! (phones show them twice until then). A writing run (`sync`, `undo`; not `plan` or
//! `--dry-run`, which write nothing) therefore holds a named store lease ([`RUN_LEASE`]) for
//! as long as it lasts, renewed in the background. The store's lease is a compare-and-set
//! with an expiry, so a run that crashes frees it within one TTL, and the same mechanism
//! works on SQLite (one host) and PostgreSQL (several hosts).
//!
//! The lease is not tied to one run: a long-lived holder (a real-time contacts daemon)
//! acquires a [`RunLease`] once and calls [`super::run_under_lease`] for each run, and a
//! one-shot `orgsync contacts sync` then waits for it like it waits for another command.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use orgsync_store::{Lease, Store, StoreError};
use tokio::sync::watch;

/// The store lease every writer of contacts holds.
pub const RUN_LEASE: &str = "contacts-run";

/// How long a lease lasts and how often it is renewed and polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// Lifetime of the lease from its last renewal: how long a crashed holder blocks others.
    pub ttl: Duration,
    /// How often the holder renews it; several renewals fit in one `ttl`, so a slow or
    /// failed renewal is retried before the lease could expire.
    pub renew_every: Duration,
    /// How often a waiting run asks again.
    pub poll_every: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            ttl: Duration::from_secs(60),
            renew_every: Duration::from_secs(20),
            poll_every: Duration::from_secs(2),
        }
    }
}

/// Why a run could not take or keep the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another holder has it and the caller chose not to wait.
    #[error(
        "another contacts run is in progress (holder {}, since {})",
        .0.holder, since(.0)
    )]
    Held(Lease),
    /// The lease was lost mid-run (another holder took it after a renewal failed, or the
    /// store could not be reached for longer than the lease lasts); the run stopped writing.
    #[error(
        "lost the {RUN_LEASE} lease mid-run ({0}); stopped writing so that two runs never \
         write at once: some users may be partly synced, and the next run completes them"
    )]
    Lost(String),
    /// The store failed while taking the lease.
    #[error("cannot take the {RUN_LEASE} lease: {0}")]
    Store(StoreError),
}

impl LeaseError {
    pub fn kind(&self) -> crate::error::FailureKind {
        use crate::error::FailureKind;
        match self {
            LeaseError::Held(_) => FailureKind::Busy,
            LeaseError::Lost(_) => FailureKind::Interrupted,
            LeaseError::Store(_) => FailureKind::Store,
        }
    }
}

/// When `lease` was taken, for messages.
pub fn since(lease: &Lease) -> String {
    lease
        .acquired_at
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// A holder id that tells an operator who holds a lease: `HOST:PID:NONCE` (the nonce keeps
/// two runs of one process, or a recycled pid, apart).
pub fn holder_id() -> String {
    format!(
        "{}:{}:{:04x}",
        hostname(),
        std::process::id(),
        rand::random::<u16>()
    )
}

/// The machine's name, without a dependency: Linux's kernel value, else the usual
/// environment variables.
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// A held lease, renewed in the background until [`RunLease::release`] (or drop, which
/// releases it from a spawned task). [`RunLease::lost`] resolves if it is lost.
pub struct RunLease {
    store: Arc<dyn Store>,
    name: String,
    holder: String,
    lost: watch::Receiver<Option<String>>,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

impl std::fmt::Debug for RunLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLease")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl RunLease {
    /// Take `name` for `holder` if it is free (or expired): `Ok(Err(lease))` names the
    /// current holder otherwise.
    pub async fn try_acquire(
        store: Arc<dyn Store>,
        name: &str,
        holder: &str,
        timing: LeaseTiming,
    ) -> Result<Result<RunLease, Lease>, StoreError> {
        loop {
            if store
                .try_acquire_lease(name, holder, Utc::now(), ttl(timing))
                .await?
            {
                return Ok(Ok(Self::start(store, name, holder, timing)));
            }
            // Held; unless it was released between the two calls (then ask again).
            if let Some(lease) = store.get_lease(name).await? {
                return Ok(Err(lease));
            }
        }
    }

    /// Take `name` for `holder`, waiting as long as another holder has it (polling every
    /// `timing.poll_every`). `on_wait` is called when the wait starts and whenever the
    /// holder changes.
    pub async fn acquire_waiting(
        store: Arc<dyn Store>,
        name: &str,
        holder: &str,
        timing: LeaseTiming,
        mut on_wait: impl FnMut(&Lease),
    ) -> Result<RunLease, StoreError> {
        let mut seen: Option<(String, chrono::DateTime<Utc>)> = None;
        loop {
            match Self::try_acquire(store.clone(), name, holder, timing).await? {
                Ok(lease) => return Ok(lease),
                Err(current) => {
                    let who = (current.holder.clone(), current.acquired_at);
                    if seen.as_ref() != Some(&who) {
                        on_wait(&current);
                        seen = Some(who);
                    }
                }
            }
            tokio::time::sleep(timing.poll_every).await;
        }
    }

    fn start(store: Arc<dyn Store>, name: &str, holder: &str, timing: LeaseTiming) -> RunLease {
        let (tx, rx) = watch::channel(None);
        let renewer = tokio::spawn(renew(
            store.clone(),
            name.to_owned(),
            holder.to_owned(),
            timing,
            tx,
        ));
        RunLease {
            store,
            name: name.to_owned(),
            holder: holder.to_owned(),
            lost: rx,
            renewer,
            released: false,
        }
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who holds it (this process).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Why the lease was lost, if it was.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Resolves with the reason once the lease is lost; never while it is held.
    pub async fn lost(&self) -> String {
        let mut rx = self.lost.clone();
        loop {
            // Cloned out at once: the borrow must not live across an await (the run
            // future is sent between threads).
            let current = rx.borrow_and_update().clone();
            if let Some(reason) = current {
                return reason;
            }
            if rx.changed().await.is_err() {
                // The renewer ended without losing it (released): never resolves.
                return std::future::pending().await;
            }
        }
    }

    /// Stop renewing and give the lease up. A failure is logged: the lease then expires.
    pub async fn release(mut self) {
        self.released = true;
        self.renewer.abort();
        release(self.store.clone(), &self.name, &self.holder).await;
    }
}

impl Drop for RunLease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Dropped without `release` (the run's task was cancelled): give it up from a
        // task of its own, else the next run waits a whole TTL.
        self.renewer.abort();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (store, name, holder) =
                (self.store.clone(), self.name.clone(), self.holder.clone());
            rt.spawn(async move { release(store, &name, &holder).await });
        }
    }
}

async fn release(store: Arc<dyn Store>, name: &str, holder: &str) {
    match store.release_lease(name, holder).await {
        Ok(true) => tracing::debug!(lease = name, holder, "lease released"),
        Ok(false) => tracing::debug!(lease = name, holder, "lease was no longer ours"),
        Err(e) => tracing::warn!(
            lease = name,
            error = %e,
            "cannot release the lease; it expires on its own"
        ),
    }
}

fn ttl(timing: LeaseTiming) -> chrono::Duration {
    chrono::Duration::from_std(timing.ttl).unwrap_or(chrono::Duration::seconds(60))
}

/// Renew every `renew_every`. A renewal that errors is retried sooner; the lease counts as
/// lost when the store says another holder has it, or when it could not be renewed and is
/// within half a renewal interval of expiring — before anyone else can take it.
async fn renew(
    store: Arc<dyn Store>,
    name: String,
    holder: String,
    timing: LeaseTiming,
    lost: watch::Sender<Option<String>>,
) {
    let margin = timing.renew_every / 2;
    let retry = (timing.renew_every / 4).max(Duration::from_millis(100));
    let mut expires = Instant::now() + timing.ttl;
    let mut wait = timing.renew_every;
    loop {
        tokio::time::sleep(wait).await;
        let asked = Instant::now();
        let budget = expires.saturating_duration_since(asked + margin);
        let outcome = tokio::time::timeout(
            budget.max(Duration::from_millis(1)),
            store.renew_lease(&name, &holder, Utc::now(), ttl(timing)),
        )
        .await;
        let failure = match outcome {
            Ok(Ok(true)) => {
                expires = asked + timing.ttl;
                wait = timing.renew_every;
                continue;
            }
            Ok(Ok(false)) => {
                let reason = match store.get_lease(&name).await {
                    Ok(Some(l)) if l.holder != holder => {
                        format!("it expired and {} took it at {}", l.holder, since(&l))
                    }
                    _ => "it expired or was released before it could be renewed".to_owned(),
                };
                let _ = lost.send(Some(reason));
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the state store did not answer in time".to_owned(),
        };
        if Instant::now() + margin >= expires {
            let _ = lost.send(Some(format!(
                "it could not be renewed before expiring: {failure}"
            )));
            return;
        }
        tracing::warn!(lease = %name, error = %failure, "cannot renew the lease; retrying");
        wait = retry;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsync_store_sqlite::SqliteStore;

    fn quick() -> LeaseTiming {
        LeaseTiming {
            ttl: Duration::from_secs(3),
            renew_every: Duration::from_millis(300),
            poll_every: Duration::from_millis(50),
        }
    }

    async fn store() -> Arc<dyn Store> {
        Arc::new(SqliteStore::connect("sqlite::memory:").await.unwrap())
    }

    #[tokio::test]
    async fn a_second_holder_is_refused_then_waits_until_release() {
        let store = store().await;
        let first = RunLease::try_acquire(store.clone(), RUN_LEASE, "a", quick())
            .await
            .unwrap()
            .expect("free");
        let held = RunLease::try_acquire(store.clone(), RUN_LEASE, "b", quick())
            .await
            .unwrap()
            .expect_err("held by a");
        assert_eq!(held.holder, "a");

        let waits = Arc::new(std::sync::Mutex::new(Vec::new()));
        let w = waits.clone();
        let s = store.clone();
        let second = tokio::spawn(async move {
            RunLease::acquire_waiting(s, RUN_LEASE, "b", quick(), move |l| {
                w.lock().unwrap().push(l.holder.clone())
            })
            .await
        });
        // Longer than the TTL: renewal keeps "a" holding it, "b" keeps waiting.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!second.is_finished(), "b got a lease a still renews");
        assert_eq!(*waits.lock().unwrap(), vec!["a".to_owned()], "told once");
        first.release().await;
        let second = tokio::time::timeout(Duration::from_secs(30), second)
            .await
            .expect("b gets the lease after release")
            .unwrap()
            .unwrap();
        assert_eq!(
            store.get_lease(RUN_LEASE).await.unwrap().unwrap().holder,
            "b"
        );
        second.release().await;
        assert!(store.get_lease(RUN_LEASE).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_lease_taken_away_is_reported_lost() {
        let store = store().await;
        let lease = RunLease::try_acquire(store.clone(), RUN_LEASE, "a", quick())
            .await
            .unwrap()
            .unwrap();
        assert!(lease.lost_reason().is_none());
        // Someone removes it and takes it (as after an expiry): the next renewal fails.
        assert!(store.release_lease(RUN_LEASE, "a").await.unwrap());
        assert!(
            store
                .try_acquire_lease(RUN_LEASE, "b", Utc::now(), chrono::Duration::seconds(60))
                .await
                .unwrap()
        );
        let reason = tokio::time::timeout(Duration::from_secs(30), lease.lost())
            .await
            .expect("loss noticed");
        assert!(reason.contains("b took it"), "{reason}");
        drop(lease);
        // Dropping a lost lease must not release the new holder's.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            store.get_lease(RUN_LEASE).await.unwrap().unwrap().holder,
            "b"
        );
    }

    #[tokio::test]
    async fn a_dropped_lease_is_released_for_the_next_run() {
        let store = store().await;
        let lease = RunLease::try_acquire(store.clone(), RUN_LEASE, "a", quick())
            .await
            .unwrap()
            .unwrap();
        drop(lease);
        let next = RunLease::acquire_waiting(store.clone(), RUN_LEASE, "b", quick(), |_| {});
        tokio::time::timeout(Duration::from_secs(2), next)
            .await
            .expect("well before the 3 s TTL")
            .unwrap()
            .release()
            .await;
    }

    #[test]
    fn the_holder_names_host_and_pid() {
        let id = holder_id();
        assert!(id.contains(&format!(":{}:", std::process::id())), "{id}");
        assert!(!id.starts_with(':'), "{id}");
    }
}
