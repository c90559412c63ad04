//! The job queue between the webhook receiver and the workers. Jobs are leased, not
//! removed, when claimed: a worker that dies leaves a lease that expires and the job is
//! claimed again. A failing job is rescheduled with its last error and never dropped.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What to do, e.g. `"user.refresh"`; interpreted by the daemon.
    pub kind: String,
    pub directory_user_id: Option<String>,
    pub user_email: Option<String>,
    pub payload: Value,
    /// Pending (unclaimed) jobs with the same key are coalesced into one.
    pub dedupe_key: Option<String>,
    pub run_at: DateTime<Utc>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, run_at: DateTime<Utc>) -> Self {
        NewJob {
            kind: kind.into(),
            directory_user_id: None,
            user_email: None,
            payload: Value::Null,
            dedupe_key: None,
            run_at,
        }
    }
}

/// The life cycle state of a job. Completed jobs are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for `run_at`.
    Pending,
    /// Claimed by a worker until `locked_until`.
    Running,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(JobState::Pending),
            "running" => Ok(JobState::Running),
            other => Err(format!("unknown job state {other:?}")),
        }
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub directory_user_id: Option<String>,
    pub user_email: Option<String>,
    pub payload: Value,
    pub dedupe_key: Option<String>,
    pub state: JobState,
    /// How many times the job was claimed (so a job that crashes its worker counts too).
    pub attempts: i32,
    pub run_at: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Result of [`crate::Store::enqueue_job`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: i64,
    /// `true` when an existing pending job with the same dedupe key absorbed this one.
    pub coalesced: bool,
}

/// Result of [`crate::JobStore::queue_summary`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueSummary {
    /// Waiting to be claimed (due or not).
    pub pending: u64,
    /// Claimed by a worker now.
    pub running: u64,
    /// Whose last attempt failed (pending again, with their error).
    pub failing: u64,
    /// When the oldest job not yet completed was enqueued.
    pub oldest_created_at: Option<DateTime<Utc>>,
}
