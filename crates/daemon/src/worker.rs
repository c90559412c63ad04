//! Job workers. A notification says only "user X changed" (its body is not the user), so a
//! job re-reads the user with `users.get` and applies what the directory says now: a 404
//! means deleted and is deprovisioned per policy. Because every job applies the *current*
//! state, duplicates (replays, overlapping channels during renewal) and reordering are
//! harmless. Jobs are claimed under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so
//! several instances share the queue and a dead worker's jobs come back; a failing job is
//! rescheduled with exponential backoff and its last error, never dropped.

use std::sync::Arc;
use std::time::Duration;

use orgsync_store::{ChangeOutcome, Job};
use orgsync_jobs::users::{WelcomeOutcome, refresh_user};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::webhook::JOB_REFRESH_USER;

/// Counter of welcome mails sent by the workers, by result.
pub const WELCOME_METRIC: &str = "orgsync_welcome_mail_total";

fn lease(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(60))
}

/// The delay before attempt `attempts + 1`: base · 2^(attempts-1), capped, plus ≤10% jitter.
pub fn backoff(base: Duration, max: Duration, attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 30) as u32 - 1;
    let d = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
    let jitter = rand::rng().random_range(0..=d.as_millis() as u64 / 10);
    d + Duration::from_millis(jitter)
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
        // Claimed jobs are finished even when a shutdown arrives meanwhile (graceful).
        for job in jobs {
            process(&shared, &worker, job).await;
        }
    }
}

async fn process(shared: &Shared, worker: &str, job: Job) {
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
                .map_err(|e| e.to_string()),
                None => Err("job names no user".to_owned()),
            }
        }
        other => Err(format!("unknown job kind {other:?}")),
    };
    let now = shared.now();
    match result {
        Ok(outcome) => {
            let lag = (now - job.created_at).num_milliseconds() as f64 / 1000.0;
            shared.metrics.observe_lag(lag);
            let label = match outcome.outcome {
                ChangeOutcome::Stale => "stale",
                ChangeOutcome::Unchanged | ChangeOutcome::NotFound => "unchanged",
                _ => "applied",
            };
            shared.metrics.inc("orgsync_jobs_total", label);
            // The welcome mail of a user this job created: sent at most once (the claim
            // is in the store); a failure is logged by the sync and retried by the next
            // reconcile, never a failed job.
            match outcome.welcome {
                Some(WelcomeOutcome::Sent) => shared.metrics.inc(WELCOME_METRIC, "sent"),
                Some(WelcomeOutcome::Failed) => shared.metrics.inc(WELCOME_METRIC, "failed"),
                Some(WelcomeOutcome::Waiting) => shared.metrics.inc(WELCOME_METRIC, "waiting"),
                Some(WelcomeOutcome::None) | None => {}
            }
            tracing::debug!(job = job.id, user = ?job.directory_user_id, ?outcome, "job done");
            if let Err(e) = shared.store.complete_job(job.id, worker).await {
                tracing::warn!(job = job.id, error = %e, "cannot complete job; it will run again");
            }
        }
        Err(error) => {
            let t = &shared.tuning;
            let delay = backoff(t.job_backoff_base, t.job_backoff_max, job.attempts);
            let retry_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
            shared.metrics.inc("orgsync_jobs_total", "failed");
            tracing::warn!(
                job = job.id,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(2);
        let m = Duration::from_secs(60);
        assert!(backoff(b, m, 1) >= b && backoff(b, m, 1) <= Duration::from_millis(2200));
        assert!(backoff(b, m, 3) >= Duration::from_secs(8));
        assert!(backoff(b, m, 20) <= Duration::from_secs(66));
    }
}
