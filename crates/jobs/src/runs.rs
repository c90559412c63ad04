//! What each job did last, and the last changes it applied, kept in the state store so that
//! whoever looks — `orgsync serve`'s status page and `/status.json`, another instance, a
//! later command — sees the same answer whichever process ran the job.
//!
//! Everything lives in the `runs` scope of the sync state as small JSON documents: one
//! record per job (`contacts.last`, `users.last`), the time of each job's last complete
//! run (`contacts.last_complete`: what `serve` compares with its reconcile interval), and
//! a list of the newest [`RECENT_CHANGES`] changes (`changes`). The list is read, extended
//! and written back: two instances writing at the same instant can lose one of their
//! entries from the list, never from the address books or the table; it is a display.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use orgsync_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// Sync-state scope of everything in this module.
pub const SCOPE: &str = "runs";
/// Key of the newest changes, newest first.
const CHANGES_KEY: &str = "changes";
/// How many applied changes are kept for display.
pub const RECENT_CHANGES: usize = 50;
/// How many failures a run record names (the total is kept beside them).
pub const MAX_FAILURES: usize = 20;

/// Which job ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobName {
    /// Directory → Contacts (`contacts sync`, and serve's push-driven and scheduled runs).
    Contacts,
    /// Directory → the application's user table (`users sync`, serve's reconcile).
    Users,
    /// Directory → the `[[scim]]` apps (`scim sync`, serve's scheduled run and pushes).
    Scim,
}

impl JobName {
    pub fn as_str(self) -> &'static str {
        match self {
            JobName::Contacts => "contacts",
            JobName::Users => "users",
            JobName::Scim => "scim",
        }
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A command run by hand or by cron.
    #[default]
    Manual,
    /// `serve`'s schedule.
    Schedule,
    /// `serve` starting, when the last complete run was older than the interval.
    Start,
    /// Directory push notifications (`serve`).
    Push,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Everything was applied.
    Ok,
    /// The run went through, but some address books or users failed (named in `failures`).
    Partial,
    /// The run stopped on an error (in `message`).
    Failed,
    /// The safety guard stopped the run: it waits for a run with `--force`.
    Guard,
}

/// One subject (an address book, a user) that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFailure {
    pub subject: String,
    pub reason: String,
}

/// A job's run, as the status page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub job: JobName,
    pub trigger: Trigger,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: RunOutcome,
    /// Counts by name (`created`, `updated`, `deleted`, `unchanged`, `failed`, …), as the
    /// job's own report names them.
    pub counts: BTreeMap<String, u64>,
    /// At most [`MAX_FAILURES`] of them; `failures_total` is the full number.
    pub failures: Vec<RunFailure>,
    pub failures_total: usize,
    /// The guard's reason or the error, for `Guard` and `Failed`.
    pub message: Option<String>,
    /// Whether this run covered everything its job manages (not `--limit`, `--user`, or
    /// serve's push-driven run, which reads only the books whose view changed).
    pub complete: bool,
}

impl RunRecord {
    pub fn duration_ms(&self) -> i64 {
        (self.finished_at - self.started_at).num_milliseconds()
    }

    /// Keep the first [`MAX_FAILURES`] failures and their total.
    pub fn with_failures(mut self, failures: impl IntoIterator<Item = RunFailure>) -> Self {
        let mut total = 0;
        for f in failures {
            total += 1;
            if self.failures.len() < MAX_FAILURES {
                self.failures.push(f);
            }
        }
        self.failures_total = total;
        self
    }
}

/// One change a job applied, for the status page's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedChange {
    pub at: DateTime<Utc>,
    pub job: JobName,
    /// `created`, `updated`, `deactivated`, … as the job names it.
    pub action: String,
    /// Whom it concerns (an email), or what (`300 address books`).
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

fn last_key(job: JobName) -> String {
    format!("{}.last", job.as_str())
}

fn complete_key(job: JobName) -> String {
    format!("{}.last_complete", job.as_str())
}

/// Record `run` as its job's last run (and, when complete and clean, its last complete
/// run).
pub async fn record_run(store: &dyn Store, run: &RunRecord) -> Result<(), StoreError> {
    let json = serde_json::to_string(run).map_err(|e| StoreError::decode("run record", e))?;
    store
        .set_sync_state(SCOPE, &last_key(run.job), &json, run.finished_at)
        .await?;
    if run.complete && run.outcome == RunOutcome::Ok {
        store
            .set_sync_state(
                SCOPE,
                &complete_key(run.job),
                &run.started_at.to_rfc3339(),
                run.finished_at,
            )
            .await?;
    }
    Ok(())
}

/// The job's last recorded run; a record this version cannot read counts as none.
pub async fn last_run(store: &dyn Store, job: JobName) -> Result<Option<RunRecord>, StoreError> {
    Ok(store
        .get_sync_state(SCOPE, &last_key(job))
        .await?
        .and_then(|s| serde_json::from_str(&s).ok()))
}

/// When the job's last complete, clean run started.
pub async fn last_complete(
    store: &dyn Store,
    job: JobName,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(store
        .get_sync_state(SCOPE, &complete_key(job))
        .await?
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc)))
}

/// Add `changes` (in the order applied) to the front of the list, keeping the newest
/// [`RECENT_CHANGES`].
pub async fn add_changes(store: &dyn Store, changes: Vec<AppliedChange>) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let now = changes.iter().map(|c| c.at).max().unwrap_or_else(Utc::now);
    let mut list = changes;
    list.reverse();
    list.truncate(RECENT_CHANGES);
    list.extend(recent_changes(store).await?);
    list.truncate(RECENT_CHANGES);
    let json = serde_json::to_string(&list).map_err(|e| StoreError::decode("recent changes", e))?;
    store.set_sync_state(SCOPE, CHANGES_KEY, &json, now).await
}

/// The newest changes, newest first.
pub async fn recent_changes(store: &dyn Store) -> Result<Vec<AppliedChange>, StoreError> {
    Ok(store
        .get_sync_state(SCOPE, CHANGES_KEY)
        .await?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default())
}
