//! Leader election and the leader's duties.
//!
//! Exactly one instance manages channels and the reconcile schedule: the holder of the
//! store lease [`LEASE`]. It renews the lease every tick; if it dies, the lease expires and
//! another instance takes over on its next tick (failover within `leader_lease` +
//! `leader_tick`). On graceful shutdown the lease is released at once.
//!
//! Duties, each tick: keep one channel per event type ([`crate::channels::ensure`]), run
//! the full contacts and SCIM runs when due ([`crate::contacts`], [`crate::scim`]), and
//! run the full reconcile when it is due — on becoming leader (so every start repairs what
//! was missed while nobody listened) and every `reconcile_interval_secs` after the last
//! one, a schedule kept in the store so a restart does not reset it. The reconcile runs in
//! its own task so lease renewal never waits for a long directory read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Duration;
use orgsync_jobs::users::{ReconcileOptions, UsersError, reconcile};
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::channels::{ChannelCtx, ensure};
use crate::metrics::{ChannelOp, ReconcileResult};

/// Name of the leader lease.
pub const LEASE: &str = "orgsync.serve.leader";
pub(crate) const SCHEDULE_SCOPE: &str = "serve";
const NEXT_RECONCILE_KEY: &str = "next_reconcile_at";

pub fn channel_ctx(shared: &Shared) -> ChannelCtx<'_> {
    ChannelCtx {
        client: &shared.client,
        store: shared.store.as_ref(),
        google: &shared.config.google,
        serve: &shared.config.serve,
        webhook_url: &shared.webhook_url,
        pending: Some(&shared.pending_channels),
        cache: Some(&shared.channel_cache),
    }
}

pub async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let ttl = Duration::from_std(shared.tuning.leader_lease).unwrap_or(Duration::seconds(30));
    let reconciling = Arc::new(AtomicBool::new(false));
    let contacts_running = Arc::new(AtomicBool::new(false));
    let scim_running = Arc::new(AtomicBool::new(false));
    let mut was_leader = false;
    while !cancel.is_cancelled() {
        let now = shared.now();
        let leader = match shared
            .store
            .try_acquire_lease(LEASE, &shared.instance_id, now, ttl)
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the leader lease");
                false
            }
        };
        shared.is_leader.store(leader, Ordering::Relaxed);
        if leader && !was_leader {
            tracing::info!(instance = %shared.instance_id, "became leader");
        }
        if leader {
            let report = ensure(&channel_ctx(&shared), now, false).await;
            for c in &report.created {
                shared.metrics.channel_op(ChannelOp::Created);
                tracing::debug!(channel = %c, "channel created");
            }
            for _ in &report.stopped {
                shared.metrics.channel_op(ChannelOp::Stopped);
            }
            for e in &report.errors {
                shared.metrics.channel_op(ChannelOp::Error);
                tracing::warn!(error = %e, "channel maintenance failed; retrying next tick");
            }
            let on_start = !was_leader && shared.tuning.reconcile_on_start;
            let due = on_start || reconcile_due(&shared).await;
            if due && !reconciling.swap(true, Ordering::SeqCst) {
                let s = shared.clone();
                let flag = reconciling.clone();
                let trigger = if on_start {
                    orgsync_jobs::runs::Trigger::Start
                } else {
                    orgsync_jobs::runs::Trigger::Schedule
                };
                tokio::spawn(async move {
                    run_reconcile(&s, trigger).await;
                    flag.store(false, Ordering::SeqCst);
                });
            }
            let became = !was_leader && shared.tuning.reconcile_on_start;
            if !was_leader && !shared.tuning.reconcile_on_start && shared.config.serve.contacts {
                crate::contacts::postpone_if_unscheduled(&shared).await;
            }
            if shared.config.serve.contacts
                && !contacts_running.load(Ordering::SeqCst)
                && crate::contacts::reconcile_due(&shared, became).await
                && !contacts_running.swap(true, Ordering::SeqCst)
            {
                let s = shared.clone();
                let flag = contacts_running.clone();
                let trigger = if became {
                    orgsync_jobs::runs::Trigger::Start
                } else {
                    orgsync_jobs::runs::Trigger::Schedule
                };
                shared.spawn_contacts(async move {
                    // Cleared when the task ends, or is aborted.
                    let _flag = ClearOnDrop(flag);
                    crate::contacts::run_reconcile(&s, trigger).await;
                });
            }
            if !scim_running.load(Ordering::SeqCst)
                && crate::scim::due(&shared).await
                && !scim_running.swap(true, Ordering::SeqCst)
            {
                let s = shared.clone();
                let flag = scim_running.clone();
                shared.spawn_contacts(async move {
                    let _flag = ClearOnDrop(flag);
                    crate::scim::run_full(&s).await;
                });
            }
        }
        was_leader = leader;
        tokio::select! {
            _ = tokio::time::sleep(shared.tuning.leader_tick) => {}
            _ = cancel.cancelled() => {}
        }
    }
    if was_leader {
        let _ = shared.store.release_lease(LEASE, &shared.instance_id).await;
        shared.is_leader.store(false, Ordering::Relaxed);
    }
}

/// Clears its flag when dropped, however the task holding it ends.
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// When the run scheduled under `key` is due: `Ok(None)` when none is scheduled; an
/// unreadable value counts as due now.
pub(crate) async fn scheduled(
    shared: &Shared,
    key: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, orgsync_store::StoreError> {
    Ok(shared
        .store
        .get_sync_state(SCHEDULE_SCOPE, key)
        .await?
        .map(|v| {
            v.parse::<i64>()
                .map(orgsync_store::time::from_ms)
                .unwrap_or_else(|_| shared.now())
        }))
}

/// Schedule the run under `key` at `at` (kept in the store, so a restart keeps it).
pub(crate) async fn schedule(shared: &Shared, key: &str, at: chrono::DateTime<chrono::Utc>) {
    let value = orgsync_store::time::to_ms(at).to_string();
    if let Err(e) = shared
        .store
        .set_sync_state(SCHEDULE_SCOPE, key, &value, shared.now())
        .await
    {
        tracing::warn!(error = %e, key, "cannot record the next scheduled run");
    }
}

async fn reconcile_due(shared: &Shared) -> bool {
    match scheduled(shared, NEXT_RECONCILE_KEY).await {
        Ok(Some(at)) => shared.now() >= at,
        Ok(None) => true,
        Err(_) => false,
    }
}

async fn run_reconcile(shared: &Shared, trigger: orgsync_jobs::runs::Trigger) {
    let started = shared.now();
    let result = reconcile(
        &shared.client,
        &shared.config,
        shared.store.as_ref(),
        ReconcileOptions {
            trigger,
            ..ReconcileOptions::default()
        },
        || shared.now(),
    )
    .await;
    let next = started + Duration::seconds(shared.config.serve.reconcile_interval_secs as i64);
    let label = match &result {
        Ok(r) => {
            tracing::info!(
                created = r.created,
                updated = r.updated,
                reactivated = r.reactivated,
                deactivated = r.deactivated,
                deleted = r.deleted,
                unchanged = r.unchanged,
                ms = r.duration_ms,
                "full reconcile done"
            );
            ReconcileResult::Ok
        }
        Err(UsersError::Guard {
            reason,
            what_to_check,
            ..
        }) => {
            tracing::error!(%reason, %what_to_check, "full reconcile stopped by the safety guard; run `orgsync users sync` to review, --force if intended");
            ReconcileResult::Guard
        }
        Err(e) => {
            tracing::error!(error = %e, "full reconcile failed; retrying at the next schedule");
            ReconcileResult::Error
        }
    };
    shared.metrics.reconcile_finished(label);
    schedule(shared, NEXT_RECONCILE_KEY, next).await;
}
