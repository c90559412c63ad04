//! Address books in step within a minute: the contacts job driven by push notifications.
//!
//! Every user notification the webhook accepts also enqueues one `contacts.refresh` job
//! under a single dedupe key, due `[serve] contacts_batch_secs` later. Further
//! notifications coalesce into that pending job, so a burst (an onboarding script adding a
//! hundred people) becomes one run, and one write per address book, not a hundred. A
//! notification arriving while a run is going enqueues the next run; nothing is missed.
//!
//! The run is the contacts job itself ([`orgsync_jobs::contacts::run_under_lease`]) with
//! [`ContactsOptions::changed_views_only`]: the directory is read once, and only the books
//! whose directory view differs from the one last written are read and written. The same
//! rules as `orgsync contacts sync` hold (ownership, field-level ownership, scope, leavers,
//! photos, the guard), because it is the same code. Each written book's sync token is moved
//! past orgsync's own writes and its view recorded, so the nightly run still costs one read
//! per book. A scope change (someone moved out of the sources) changes every view and is
//! applied the same way; a new target has no state and gets its book filled.
//!
//! Writers never overlap: the run holds the `contacts-run` store lease, like `orgsync
//! contacts sync` does. A job that finds it held (a manual sync, another instance) is put
//! back to run a moment later, not failed. The job stays locked while it runs (its lock is
//! extended), so no other worker starts it twice; a crashed instance's job comes back when
//! its lock expires and runs again (the run is idempotent: it plans from what it reads).
//!
//! The leader also runs the full contacts run on `[serve] contacts_reconcile_interval_secs`,
//! and at once on start when the last complete run is older than that: the safety net for
//! notifications Google never delivered, and what repairs contacts people edited.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orgsync_jobs::contacts::lease::{self, RunLease};
use orgsync_jobs::contacts::{self, ContactsError, ContactsOptions, ContactsReport, Mode};
use orgsync_jobs::runs::{self, JobName, Trigger};
use orgsync_store::{Job, NewJob};

use crate::Shared;

/// Job kind of a push-driven contacts run.
pub const JOB_CONTACTS_REFRESH: &str = "contacts.refresh";
/// The one dedupe key every contacts job shares: pending ones coalesce into one run.
const DEDUPE_KEY: &str = "contacts.refresh";
/// How soon a job that found the lease held tries again.
const LEASE_RETRY: Duration = Duration::from_secs(2);
/// How soon a failed scheduled run is tried again (a failing push-driven job backs off
/// like any job).
const SCHEDULE_RETRY: chrono::Duration = chrono::Duration::minutes(15);
/// `sync_state` keys of the schedule (in the leader's scope).
pub(crate) const NEXT_CONTACTS_KEY: &str = "next_contacts_reconcile_at";

/// The contacts job to enqueue with a user notification, when `[serve] contacts` is on.
pub fn job_for_notification(shared: &Shared, user_id: &str, now: DateTime<Utc>) -> Option<NewJob> {
    let serve = &shared.config.serve;
    if !serve.contacts {
        return None;
    }
    let mut job = NewJob::new(
        JOB_CONTACTS_REFRESH,
        now + chrono::Duration::seconds(serve.contacts_batch_secs as i64),
    );
    job.dedupe_key = Some(DEDUPE_KEY.into());
    job.payload = serde_json::json!({ "last_user": user_id, "received_at": now });
    Some(job)
}

/// What became of a contacts job.
pub(crate) enum Step {
    /// Done (applied, or stopped by the guard: that waits for a person, not a retry).
    Done(Box<ContactsReport>),
    /// Another writer holds the lease: run again at this time.
    Later(DateTime<Utc>),
    /// Failed; retried with backoff.
    Failed(ContactsError),
}

/// Run one `contacts.refresh` job (claimed by `worker`).
pub(crate) async fn run_job(shared: &Arc<Shared>, worker: &str, job: &Job) -> Step {
    let store = shared.store.clone();
    let held = match RunLease::try_acquire(
        store.clone(),
        lease::RUN_LEASE,
        &holder(shared),
        shared.tuning.contacts_lease,
    )
    .await
    {
        Ok(Ok(held)) => held,
        Ok(Err(current)) => {
            tracing::debug!(holder = %current.holder, "contacts run waits for the lease");
            return Step::Later(
                shared.now() + chrono::Duration::from_std(LEASE_RETRY).unwrap_or_default(),
            );
        }
        Err(e) => return Step::Failed(lease::LeaseError::Store(e).into()),
    };
    let options = ContactsOptions {
        changed_views_only: true,
        trigger: Trigger::Push,
        ..ContactsOptions::new(Mode::Sync)
    };
    let run = contacts::run_under_lease(&held, &shared.client, store, &shared.config, &options);
    let result = keep_locked(shared, worker, job.id, run).await;
    held.release().await;
    match result {
        Ok(report) => {
            log_report(&report, "push");
            Step::Done(Box::new(report))
        }
        Err(e) => Step::Failed(e),
    }
}

/// Drive `work`, extending job `id`'s lock while it runs (a run may outlast the lease).
async fn keep_locked<T>(
    shared: &Shared,
    worker: &str,
    id: i64,
    work: impl std::future::Future<Output = T>,
) -> T {
    let lease = shared.tuning.job_lease;
    let every = lease / 3;
    let extend = async {
        loop {
            tokio::time::sleep(every).await;
            let until = shared.now() + chrono::Duration::from_std(lease).unwrap_or_default();
            match shared.store.extend_job(id, worker, until).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(job = id, "contacts job lock lost; it may run again"),
                Err(e) => {
                    tracing::warn!(job = id, error = %e, "cannot extend the contacts job lock")
                }
            }
        }
    };
    tokio::pin!(work);
    tokio::select! {
        out = &mut work => out,
        never = extend => never,
    }
}

fn holder(shared: &Shared) -> String {
    format!("{} ({})", lease::holder_id(), shared.instance_id)
}

fn log_report(report: &ContactsReport, why: &str) {
    let t = &report.totals;
    if !report.guard.may_proceed() || t.users_guarded > 0 {
        tracing::error!(
            run = why,
            books_guarded = t.users_guarded,
            "contacts run stopped by the safety guard; run `orgsync contacts sync` to review, \
             --force if intended"
        );
        return;
    }
    tracing::info!(
        run = why,
        books = t.targets,
        books_written = t.users_changed,
        books_unread = t.users_unread,
        created = t.created,
        updated = t.updated,
        deleted = t.deleted,
        failed = t.users_failed,
        ms = report.duration_ms,
        "contacts run done"
    );
}

/// Whether the leader should start the full contacts run now. On becoming leader: when the
/// last complete run is older than the interval (or there was none). Otherwise when the
/// stored schedule says so.
pub(crate) async fn reconcile_due(shared: &Shared, became_leader: bool) -> bool {
    let now = shared.now();
    let interval =
        chrono::Duration::seconds(shared.config.serve.contacts_reconcile_interval_secs as i64);
    let next = if became_leader {
        Ok(None)
    } else {
        crate::leader::scheduled(shared, NEXT_CONTACTS_KEY).await
    };
    match next {
        Ok(Some(at)) => now >= at,
        Ok(None) => match runs::last_complete(shared.store.as_ref(), JobName::Contacts).await {
            Ok(Some(at)) => now - at >= interval,
            Ok(None) => true,
            Err(_) => false,
        },
        Err(_) => false,
    }
}

/// `serve --no-initial-reconcile`: no full contacts run on start; when no run is
/// scheduled yet, the first comes one interval from now.
pub(crate) async fn postpone_if_unscheduled(shared: &Shared) {
    if let Ok(None) = crate::leader::scheduled(shared, NEXT_CONTACTS_KEY).await {
        let next = shared.now()
            + chrono::Duration::seconds(
                shared.config.serve.contacts_reconcile_interval_secs as i64,
            );
        crate::leader::schedule(shared, NEXT_CONTACTS_KEY, next).await;
    }
}

/// The leader's full contacts run (`trigger`: schedule or start), then the next date.
pub(crate) async fn run_reconcile(shared: &Shared, trigger: Trigger) {
    let started = shared.now();
    let mut options = ContactsOptions {
        trigger,
        ..ContactsOptions::new(Mode::Sync)
    };
    options.lease.timing = shared.tuning.contacts_lease;
    let result = contacts::run(
        &shared.client,
        shared.store.clone(),
        &shared.config,
        &options,
    )
    .await;
    let interval =
        chrono::Duration::seconds(shared.config.serve.contacts_reconcile_interval_secs as i64);
    let next = match &result {
        Ok(report) => {
            log_report(report, "scheduled");
            started + interval
        }
        Err(e) => {
            tracing::error!(
                error = %orgsync_jobs::error::chain_text(e),
                "full contacts run failed; trying again in 15 minutes"
            );
            shared.now() + SCHEDULE_RETRY.min(interval)
        }
    };
    crate::leader::schedule(shared, NEXT_CONTACTS_KEY, next).await;
}
