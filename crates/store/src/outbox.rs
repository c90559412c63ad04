//! The outbox: every change to an app user writes one entry in the same transaction as the
//! row, so a sink (the application's webhook) can deliver changes at least once, in order per
//! user, with a stable idempotency key — even across crashes and hours of downtime.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::users::AppUser;

/// What happened to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxKind {
    Created,
    Updated,
    Deactivated,
    Reactivated,
    Deleted,
}

impl OutboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Created => "created",
            OutboxKind::Updated => "updated",
            OutboxKind::Deactivated => "deactivated",
            OutboxKind::Reactivated => "reactivated",
            OutboxKind::Deleted => "deleted",
        }
    }
}

impl fmt::Display for OutboxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutboxKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "created" => OutboxKind::Created,
            "updated" => OutboxKind::Updated,
            "deactivated" => OutboxKind::Deactivated,
            "reactivated" => OutboxKind::Reactivated,
            "deleted" => OutboxKind::Deleted,
            other => return Err(format!("unknown outbox kind {other:?}")),
        })
    }
}

/// An outbox entry to insert (the backend assigns `seq`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutboxEntry {
    pub idempotency_key: Uuid,
    pub kind: OutboxKind,
    pub directory_id: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

impl NewOutboxEntry {
    /// The entry for a change of `user`. The payload is
    /// `{"kind", "user", "reason", "changed_fields"}`: the full user after the change (before
    /// it, for deletions), so a receiver can apply entries without reading anything back.
    pub fn for_user(
        kind: OutboxKind,
        user: &AppUser,
        reason: Option<&str>,
        changed_fields: &[String],
        now: DateTime<Utc>,
    ) -> Self {
        let payload = serde_json::json!({
            "kind": kind.as_str(),
            "user": user,
            "reason": reason,
            "changed_fields": changed_fields,
        });
        NewOutboxEntry {
            idempotency_key: Uuid::new_v4(),
            kind,
            directory_id: user.profile.directory_id.clone(),
            payload,
            created_at: now,
        }
    }
}

/// A stored outbox entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Monotonic per store; delivery order within one user.
    pub seq: i64,
    pub idempotency_key: Uuid,
    pub kind: OutboxKind,
    pub directory_id: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    /// Delivery attempts so far (incremented when claimed).
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// Set while a deliverer holds the entry.
    pub leased_until: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}
