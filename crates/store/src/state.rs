//! Small persistent state: generic (scope, key) → value pairs, the per-target state of the
//! contacts sync, and named leases for leader election.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Incremental state of the contacts sync for one target user: the People sync
/// token and the hash of the last directory view applied to their address book.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactsUserState {
    /// The target user's directory id (the key).
    pub target_id: String,
    pub target_email: String,
    /// People API `nextSyncToken`; `None` forces a full read.
    pub sync_token: Option<String>,
    /// Hash of the last applied directory view.
    pub view_hash: Option<String>,
    /// Resource name of the managed contact group (`contactGroups/...`).
    pub managed_group: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for ContactsUserState {
    // A sync token grants nothing on its own, but it is opaque and long: keep logs short.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContactsUserState")
            .field("target_id", &self.target_id)
            .field("target_email", &self.target_email)
            .field("sync_token", &self.sync_token.as_ref().map(|_| "<set>"))
            .field("view_hash", &self.view_hash)
            .field("managed_group", &self.managed_group)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// A named lease (leader election): held by `holder` until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}
