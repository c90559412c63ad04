//! SCIM applications in real time (`[[scim]]` targets).
//!
//! Each push notification enqueues one `scim.user` job per target, in the same
//! transaction that records the notification. The job re-reads the user and applies
//! their current state to that one app ([`orgsync_jobs::scim::refresh_user`]), so
//! replays and reordering are harmless; its dedupe key (per target and user) keeps one
//! pending job per person, and a failure (the app down, a refusal) is retried with the
//! queue's backoff, never dropped. One app down delays only its own jobs.
//!
//! Groups have no push in the Directory API: the leader runs the full SCIM sync every
//! `serve.scim_interval_secs` (default five minutes), which also repairs anything the
//! jobs missed. Its schedule is kept in the store, so a restart does not reset it.

use chrono::{DateTime, Utc};
use orgsync_jobs::scim::{ScimError, ScimOptions, ScimReport, refresh_user, sync};
use orgsync_store::{Job, NewJob};

use crate::Shared;

/// The kind of a job that applies one user to one SCIM target.
pub const JOB_SCIM_USER: &str = "scim.user";
const NEXT_SCIM_KEY: &str = "next_scim_at";

/// The jobs a notification about `user_id` enqueues: one per `[[scim]]` target.
pub fn jobs_for_notification(shared: &Shared, user_id: &str, now: DateTime<Utc>) -> Vec<NewJob> {
    shared
        .config
        .scim
        .iter()
        .map(|t| {
            let mut job = NewJob::new(JOB_SCIM_USER, now);
            job.directory_user_id = Some(user_id.to_string());
            job.payload = serde_json::json!({ "target": t.name, "received_at": now });
            job.dedupe_key = Some(format!("scim:{}:user:{user_id}", t.name));
            job
        })
        .collect()
}

/// Run one `scim.user` job.
pub(crate) async fn run_job(shared: &Shared, job: &Job) -> Result<Option<ScimReport>, ScimError> {
    let name = job.payload["target"].as_str().unwrap_or_default();
    let Some(target) = shared.config.scim.iter().find(|t| t.name == name) else {
        // The target left the configuration since the job was queued: nothing to do.
        tracing::info!(
            job = job.id,
            target = name,
            "SCIM target no longer configured"
        );
        return Ok(None);
    };
    let Some(user) = job.directory_user_id.as_deref() else {
        return Ok(None);
    };
    refresh_user(
        &shared.client,
        &shared.config,
        target,
        shared.store.as_ref(),
        user,
        Utc::now,
    )
    .await
    .map(Some)
}

/// Whether the full SCIM sync is due (never scheduled counts as due).
pub(crate) async fn due(shared: &Shared) -> bool {
    if shared.config.scim.is_empty() {
        return false;
    }
    match crate::leader::scheduled(shared, NEXT_SCIM_KEY).await {
        Ok(Some(at)) => shared.now() >= at,
        Ok(None) => true,
        Err(_) => false,
    }
}

/// The full SCIM sync of every target, then the next one scheduled.
pub(crate) async fn run_full(shared: &Shared) {
    let started = shared.now();
    match sync(
        &shared.client,
        &shared.config,
        shared.store.as_ref(),
        None,
        ScimOptions {
            trigger: orgsync_jobs::runs::Trigger::Schedule,
            ..ScimOptions::default()
        },
    )
    .await
    {
        Ok(results) => {
            for (name, result) in results {
                match result {
                    Ok(r) => tracing::info!(
                        target = %name,
                        changes = r.total_changes(),
                        failures = r.failures.len(),
                        ms = r.duration_ms,
                        "SCIM sync done"
                    ),
                    Err(ScimError::Guard {
                        reason,
                        what_to_check,
                        ..
                    }) => tracing::error!(
                        target = %name, %reason, %what_to_check,
                        "SCIM sync stopped by the safety guard; run `orgsync scim plan` to review, \
                         `orgsync scim sync --force` if intended"
                    ),
                    Err(e) => {
                        tracing::error!(target = %name, error = %e, "SCIM sync failed; retrying at the next schedule")
                    }
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "SCIM sync failed; retrying at the next schedule"),
    }
    let next = started + chrono::Duration::seconds(shared.config.serve.scim_interval_secs as i64);
    crate::leader::schedule(shared, NEXT_SCIM_KEY, next).await;
}
