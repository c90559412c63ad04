//! Job workers. A notification says only "user X changed" (its body is not the user), so a
//! job re-reads the user with `users.get` and applies what the directory says now: a 404
//! means deleted and is deprovisioned per policy. Because every job applies the *current*
//! state, duplicates (replays, overlapping channels during renewal) and reordering are
//! harmless. Jobs are claimed under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so
//! several instances share the queue and a dead worker's jobs come back; a failing job is
//! rescheduled with exponential backoff and its last error, never dropped.

use std::sync::Arc;
use std::time::Duration;

use orgsync_client::RetryPolicy;
use orgsync_jobs::runs::{self, AppliedChange, JobName};
use orgsync_jobs::users::{RefreshOutcome, UsersError, WelcomeOutcome, refresh_user};
use orgsync_store::{ChangeOutcome, Job};
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::contacts::{JOB_CONTACTS_REFRESH, Step};
use crate::metrics::{JobResult, WelcomeResult};
use crate::webhook::JOB_REFRESH_USER;

/// Why a job failed; its text is the job's last error in the store.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Refresh(#[from] UsersError),
    #[error("job names no user")]
    NoUser,
    #[error("unknown job kind {0:?}")]
    UnknownKind(String),
    #[error("contacts run: {}", orgsync_jobs::error::chain_text(.0))]
    Contacts(#[source] orgsync_jobs::contacts::ContactsError),
    #[error("SCIM: {0}")]
    Scim(#[source] orgsync_jobs::scim::ScimError),
}

fn lease(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(60))
}

/// The delay before the next run of a job or delivery that failed `attempts` times:
/// `policy`'s [`RetryPolicy::reschedule_delay`] (attempts below 1 count as 1).
pub fn reschedule_after(policy: &RetryPolicy, attempts: i32) -> Duration {
    policy.reschedule_delay(u32::try_from(attempts).unwrap_or(0))
}

pub async fn run(shared: Arc<Shared>, worker: String, cancel: CancellationToken) {
    let t = shared.tuning.clone();
    while !cancel.is_cancelled() {
        let claimed = shared
            .store
            .claim_jobs(&worker, t.job_batch, shared.now(), lease(t.job_lease))
            .await;
        let jobs = match claimed {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim jobs");
                Vec::new()
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(t.poll_interval) => {}
                _ = cancel.cancelled() => {}
            }
            continue;
        }
        // Claimed jobs are finished even when a shutdown arrives meanwhile (graceful). A
        // contacts run takes seconds to minutes: it gets its own task, so the user jobs
        // claimed with it are not held up.
        for job in jobs {
            if job.kind == JOB_CONTACTS_REFRESH {
                shared.spawn_contacts(process_contacts(shared.clone(), worker.clone(), job));
            } else {
                process(&shared, &worker, job).await;
            }
        }
    }
}

/// A `contacts.refresh` job: run, put back when another writer holds the lease, or
/// rescheduled with backoff on failure.
async fn process_contacts(shared: Arc<Shared>, worker: String, job: Job) {
    match crate::contacts::run_job(&shared, &worker, &job).await {
        Step::Done(report) => {
            let now = shared.now();
            let lag = (now - job.created_at).num_milliseconds() as f64 / 1000.0;
            shared.metrics.observe_lag(lag);
            shared
                .metrics
                .job_finished(if report.totals.users_changed > 0 {
                    JobResult::Applied
                } else {
                    JobResult::Unchanged
                });
            if let Err(e) = shared.store.complete_job(job.id, &worker).await {
                tracing::warn!(job = job.id, error = %e, "cannot complete job; it will run again");
            }
        }
        Step::Later(at) => {
            if let Err(e) = shared.store.release_job(job.id, &worker, at).await {
                tracing::warn!(job = job.id, error = %e, "cannot put the contacts job back");
            }
        }
        Step::Failed(e) => fail(&shared, &worker, &job, JobError::Contacts(e)).await,
    }
}

async fn fail(shared: &Shared, worker: &str, job: &Job, error: JobError) {
    let now = shared.now();
    let delay = reschedule_after(&shared.tuning.job_retry(), job.attempts);
    let retry_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
    shared.metrics.job_finished(JobResult::Failed);
    let error = error.to_string();
    tracing::warn!(
        job = job.id,
        kind = %job.kind,
        attempts = job.attempts,
        retry_in_ms = delay.as_millis() as u64,
        %error,
        "job failed; retrying later"
    );
    if let Err(e) = shared
        .store
        .fail_job(job.id, worker, &error, retry_at, now)
        .await
    {
        tracing::warn!(job = job.id, error = %e, "cannot record job failure");
    }
}

async fn process(shared: &Shared, worker: &str, job: Job) {
    if job.kind == crate::scim::JOB_SCIM_USER {
        return process_scim(shared, worker, job).await;
    }
    let result = match job.kind.as_str() {
        JOB_REFRESH_USER => {
            let key = job
                .directory_user_id
                .clone()
                .or_else(|| job.user_email.clone());
            match key {
                Some(key) => refresh_user(
                    &shared.client,
                    &shared.config,
                    shared.store.as_ref(),
                    &key,
                    || shared.now(),
                )
                .await
                .map_err(JobError::from),
                None => Err(JobError::NoUser),
            }
        }
        other => Err(JobError::UnknownKind(other.to_owned())),
    };
    let now = shared.now();
    match result {
        Ok(outcome) => {
            let lag = (now - job.created_at).num_milliseconds() as f64 / 1000.0;
            shared.metrics.observe_lag(lag);
            shared.metrics.job_finished(match outcome.outcome {
                ChangeOutcome::Stale => JobResult::Stale,
                ChangeOutcome::Unchanged | ChangeOutcome::NotFound => JobResult::Unchanged,
                _ => JobResult::Applied,
            });
            // The welcome mail of a user this job created: sent at most once (the claim
            // is in the store); a failure is logged by the sync and retried by the next
            // reconcile, never a failed job.
            let welcome = match outcome.welcome {
                Some(WelcomeOutcome::Sent) => Some(WelcomeResult::Sent),
                Some(WelcomeOutcome::Failed) => Some(WelcomeResult::Failed),
                Some(WelcomeOutcome::Waiting) => Some(WelcomeResult::Waiting),
                Some(WelcomeOutcome::None) | None => None,
            };
            if let Some(w) = welcome {
                shared.metrics.welcome_mail(w);
            }
            record_change(shared, &job, &outcome, now).await;
            tracing::debug!(job = job.id, user = ?job.directory_user_id, ?outcome, "job done");
            if let Err(e) = shared.store.complete_job(job.id, worker).await {
                tracing::warn!(job = job.id, error = %e, "cannot complete job; it will run again");
            }
        }
        Err(error) => fail(shared, worker, &job, error).await,
    }
}

/// A `scim.user` job: one user applied to one SCIM app.
async fn process_scim(shared: &Shared, worker: &str, job: Job) {
    match crate::scim::run_job(shared, &job).await {
        Ok(report) => {
            let now = shared.now();
            let lag = (now - job.created_at).num_milliseconds() as f64 / 1000.0;
            shared.metrics.observe_lag(lag);
            let changed = report.as_ref().is_some_and(|r| r.total_changes() > 0);
            shared.metrics.job_finished(if changed {
                JobResult::Applied
            } else {
                JobResult::Unchanged
            });
            if let Some(r) = report.filter(|r| r.total_changes() > 0) {
                let changes = r
                    .changes
                    .iter()
                    .map(|c| AppliedChange {
                        at: now,
                        job: JobName::Scim,
                        action: c.action.clone(),
                        subject: c.name.clone(),
                        detail: Some(format!("SCIM app '{}': push notification", r.target)),
                    })
                    .collect();
                if let Err(e) = runs::add_changes(shared.store.as_ref(), changes).await {
                    tracing::warn!(job = job.id, error = %e, "cannot add the change to the status page's list");
                }
            }
            if let Err(e) = shared.store.complete_job(job.id, worker).await {
                tracing::warn!(job = job.id, error = %e, "cannot complete job; it will run again");
            }
        }
        Err(e) => fail(shared, worker, &job, JobError::Scim(e)).await,
    }
}

/// The change a `user.refresh` job applied, as one line of the status page's list
/// (nothing when it changed nothing). The list is a display: a store error is a warning.
async fn record_change(
    shared: &Shared,
    job: &Job,
    outcome: &RefreshOutcome,
    at: chrono::DateTime<chrono::Utc>,
) {
    let action = match outcome.outcome {
        ChangeOutcome::Created => "created",
        ChangeOutcome::Updated => "updated",
        ChangeOutcome::Reactivated => "reactivated",
        ChangeOutcome::Deactivated => "deactivated",
        ChangeOutcome::Deleted => "deleted",
        ChangeOutcome::Unchanged | ChangeOutcome::NotFound | ChangeOutcome::Stale => return,
    };
    let event = job.payload["event"].as_str().unwrap_or("push");
    let change = AppliedChange {
        at,
        job: JobName::Users,
        action: action.to_owned(),
        subject: job
            .user_email
            .clone()
            .or_else(|| job.directory_user_id.clone())
            .unwrap_or_default(),
        detail: Some(if outcome.gone {
            format!("{event} notification: deleted from the directory")
        } else if outcome.out_of_scope {
            format!("{event} notification: out of scope")
        } else {
            format!("{event} notification")
        }),
    };
    if let Err(e) = runs::add_changes(shared.store.as_ref(), vec![change]).await {
        tracing::warn!(job = job.id, error = %e, "cannot add the change to the status page's list");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(2);
        let m = Duration::from_secs(60);
        let backoff = |attempts| reschedule_after(&RetryPolicy::forever(b, m), attempts);
        assert!(backoff(1) >= b && backoff(1) <= Duration::from_millis(2200));
        assert!(backoff(3) >= Duration::from_secs(8));
        assert!(backoff(20) <= Duration::from_secs(66));
    }

    #[test]
    fn attempts_below_one_wait_the_base_delay() {
        let p = RetryPolicy::forever(Duration::from_secs(2), Duration::from_secs(60));
        for attempts in [-5, 0, 1] {
            let d = reschedule_after(&p, attempts);
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_millis(2200));
        }
    }
}
