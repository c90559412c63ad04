//! App users: the application's copy of directory users, keyed by the immutable directory id
//! (never the email, so a rename updates the same row).
//!
//! The decision "is this a create, an update, a (re)activation or nothing?" is pure and lives
//! here ([`decide`]), so SQLite and PostgreSQL cannot drift apart: backends only load the
//! current row, call [`decide`], and execute the resulting [`UserWrite`] plus its outbox
//! entry in the same transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::outbox::{NewOutboxEntry, OutboxKind};
use crate::time::truncate_ms;

/// One phone number of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phone {
    pub value: String,
    /// Google's phone type (`work`, `mobile`, `home`, `custom:...`).
    pub kind: String,
}

/// The directory-derived content of an app user: what a reconcile or a job wants the row to
/// say. Everything here takes part in the content hash except `directory_etag`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    pub directory_id: String,
    pub primary_email: String,
    pub given_name: String,
    pub family_name: String,
    pub display_name: String,
    pub is_admin: bool,
    pub suspended: bool,
    pub archived: bool,
    pub org_unit_path: String,
    pub department: Option<String>,
    pub title: Option<String>,
    pub phones: Vec<Phone>,
    /// Custom-schema values as Google returns them (`{"Schema": {"field": value}}`).
    pub custom_schemas: Value,
    /// Roles derived by the configured rules.
    pub roles: Vec<String>,
    /// Whether the user should be active in the application (the planner decides: suspended
    /// or archived users are inactive).
    pub active: bool,
    /// The directory's etag of the user resource; not part of the content hash.
    pub directory_etag: Option<String>,
}

impl UserProfile {
    /// A minimal active profile, convenient for tests and callers that fill fields in.
    pub fn new(directory_id: impl Into<String>, primary_email: impl Into<String>) -> Self {
        UserProfile {
            directory_id: directory_id.into(),
            primary_email: primary_email.into(),
            given_name: String::new(),
            family_name: String::new(),
            display_name: String::new(),
            is_admin: false,
            suspended: false,
            archived: false,
            org_unit_path: "/".to_owned(),
            department: None,
            title: None,
            phones: Vec::new(),
            custom_schemas: Value::Object(Default::default()),
            roles: Vec::new(),
            active: true,
            directory_etag: None,
        }
    }

    /// SHA-256 (hex) over a canonical JSON form of every content field (object keys sorted,
    /// so Google reordering custom-schema keys does not look like a change). The etag is
    /// excluded: it changes for directory fields orgsync does not map.
    pub fn content_hash(&self) -> String {
        let mut hasher = Sha256::new();
        let mut canonical = String::new();
        write_canonical(&self.content_value(), &mut canonical);
        hasher.update(canonical.as_bytes());
        hex::encode(hasher.finalize())
    }

    /// The content fields as a JSON object (without the etag).
    fn content_value(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.remove("directory_etag");
        }
        v
    }

    /// Names of the content fields that differ between `self` and `other`, sorted.
    pub fn changed_fields(&self, other: &UserProfile) -> Vec<String> {
        let (a, b) = (self.content_value(), other.content_value());
        let (Value::Object(a), Value::Object(b)) = (a, b) else {
            return Vec::new();
        };
        let mut changed: Vec<String> = a
            .iter()
            .filter(|(k, v)| b.get(k.as_str()) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        changed.sort();
        changed
    }
}

/// Appends a canonical (sorted-key, compact) JSON rendering of `v` to `out`.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A stored app user: the profile plus bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppUser {
    #[serde(flatten)]
    pub profile: UserProfile,
    /// [`UserProfile::content_hash`] of `profile`.
    pub content_hash: String,
    pub created_at: DateTime<Utc>,
    /// Last time the content changed.
    pub updated_at: DateTime<Utc>,
    /// When the user became inactive; `None` while active.
    pub deactivated_at: Option<DateTime<Utc>>,
    /// The observation time of the newest directory read applied to this row (also bumped
    /// by unchanged reads). Older observations are refused as [`ChangeOutcome::Stale`].
    pub last_synced_at: DateTime<Utc>,
}

impl AppUser {
    pub fn directory_id(&self) -> &str {
        &self.profile.directory_id
    }
    pub fn primary_email(&self) -> &str {
        &self.profile.primary_email
    }
    pub fn active(&self) -> bool {
        self.profile.active
    }
}

/// One change a reconcile or a job applies. `observed_at` is when the directory was read:
/// a change observed before the row's `last_synced_at` is stale and ignored, so a slow full
/// reconcile cannot undo what a newer notification job already applied.
// Most changes in a chunk are upserts, so boxing the profile would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum UserChange {
    /// Create or update from the directory.
    Upsert {
        profile: UserProfile,
        observed_at: DateTime<Utc>,
    },
    /// Keep the row, set `active = false`.
    Deactivate {
        directory_id: String,
        reason: String,
        observed_at: DateTime<Utc>,
    },
    /// Remove the row.
    Delete {
        directory_id: String,
        reason: String,
        observed_at: DateTime<Utc>,
    },
}

impl UserChange {
    pub fn directory_id(&self) -> &str {
        match self {
            UserChange::Upsert { profile, .. } => &profile.directory_id,
            UserChange::Deactivate { directory_id, .. }
            | UserChange::Delete { directory_id, .. } => directory_id,
        }
    }
    pub fn observed_at(&self) -> DateTime<Utc> {
        match self {
            UserChange::Upsert { observed_at, .. }
            | UserChange::Deactivate { observed_at, .. }
            | UserChange::Delete { observed_at, .. } => *observed_at,
        }
    }
}

/// What applying one [`UserChange`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOutcome {
    Created,
    Updated,
    /// Content identical: no outbox entry, only `last_synced_at`/etag refreshed.
    Unchanged,
    Deactivated,
    Reactivated,
    Deleted,
    /// Deactivate/delete of a user the store does not have.
    NotFound,
    /// Observed before the row's `last_synced_at`; ignored.
    Stale,
}

/// The per-change outcomes of [`crate::Store::apply_user_changes`], in input order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplyReport {
    pub outcomes: Vec<(String, ChangeOutcome)>,
}

impl ApplyReport {
    /// How many changes ended with `outcome`.
    pub fn count(&self, outcome: ChangeOutcome) -> usize {
        self.outcomes.iter().filter(|(_, o)| *o == outcome).count()
    }
    /// How many changes wrote an outbox entry.
    pub fn written(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|(_, o)| {
                !matches!(
                    o,
                    ChangeOutcome::Unchanged | ChangeOutcome::NotFound | ChangeOutcome::Stale
                )
            })
            .count()
    }
}

/// Filter and page for [`crate::Store::list_users`]: ordered by directory id, starting after
/// `after_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserQuery {
    pub active_only: bool,
    pub after_id: Option<String>,
    pub limit: u32,
}

impl Default for UserQuery {
    fn default() -> Self {
        UserQuery {
            active_only: false,
            after_id: None,
            limit: 1000,
        }
    }
}

/// The row operation a backend must perform for one change (see [`decide`]).
#[allow(clippy::large_enum_variant)] // short-lived, one at a time
#[derive(Debug, Clone, PartialEq)]
pub enum UserWrite {
    /// Insert this new row.
    Insert(AppUser),
    /// Replace the whole row with this one.
    Update(AppUser),
    /// Content unchanged: only set `directory_etag` and `last_synced_at`.
    Touch {
        directory_id: String,
        directory_etag: Option<String>,
        last_synced_at: DateTime<Utc>,
    },
    /// Delete the row.
    Remove { directory_id: String },
    /// Do nothing.
    Nothing,
}

/// The pure decision for one change against the current row: the outcome, the row write,
/// and the outbox entry to insert in the same transaction (if any).
pub fn decide(
    existing: Option<&AppUser>,
    change: &UserChange,
    now: DateTime<Utc>,
) -> (ChangeOutcome, UserWrite, Option<NewOutboxEntry>) {
    let now = truncate_ms(now);
    let observed_at = truncate_ms(change.observed_at());
    if let Some(cur) = existing
        && observed_at < cur.last_synced_at
    {
        return (ChangeOutcome::Stale, UserWrite::Nothing, None);
    }
    match change {
        UserChange::Upsert { profile, .. } => {
            let hash = profile.content_hash();
            match existing {
                None => {
                    let user = AppUser {
                        profile: profile.clone(),
                        content_hash: hash,
                        created_at: now,
                        updated_at: now,
                        deactivated_at: (!profile.active).then_some(now),
                        last_synced_at: observed_at,
                    };
                    let entry =
                        NewOutboxEntry::for_user(OutboxKind::Created, &user, None, &[], now);
                    (ChangeOutcome::Created, UserWrite::Insert(user), Some(entry))
                }
                Some(cur) if cur.content_hash == hash => (
                    ChangeOutcome::Unchanged,
                    UserWrite::Touch {
                        directory_id: profile.directory_id.clone(),
                        directory_etag: profile.directory_etag.clone(),
                        last_synced_at: observed_at,
                    },
                    None,
                ),
                Some(cur) => {
                    let (outcome, kind, deactivated_at) = match (cur.profile.active, profile.active)
                    {
                        (true, false) => (
                            ChangeOutcome::Deactivated,
                            OutboxKind::Deactivated,
                            Some(now),
                        ),
                        (false, true) => {
                            (ChangeOutcome::Reactivated, OutboxKind::Reactivated, None)
                        }
                        _ => (
                            ChangeOutcome::Updated,
                            OutboxKind::Updated,
                            cur.deactivated_at,
                        ),
                    };
                    let changed = cur.profile.changed_fields(profile);
                    let user = AppUser {
                        profile: profile.clone(),
                        content_hash: hash,
                        created_at: cur.created_at,
                        updated_at: now,
                        deactivated_at,
                        last_synced_at: observed_at,
                    };
                    let entry = NewOutboxEntry::for_user(kind, &user, None, &changed, now);
                    (outcome, UserWrite::Update(user), Some(entry))
                }
            }
        }
        UserChange::Deactivate { reason, .. } => match existing {
            None => (ChangeOutcome::NotFound, UserWrite::Nothing, None),
            Some(cur) if !cur.profile.active => {
                (ChangeOutcome::Unchanged, UserWrite::Nothing, None)
            }
            Some(cur) => {
                let mut profile = cur.profile.clone();
                profile.active = false;
                let user = AppUser {
                    content_hash: profile.content_hash(),
                    profile,
                    created_at: cur.created_at,
                    updated_at: now,
                    deactivated_at: Some(now),
                    last_synced_at: observed_at,
                };
                let entry = NewOutboxEntry::for_user(
                    OutboxKind::Deactivated,
                    &user,
                    Some(reason),
                    &["active".to_owned()],
                    now,
                );
                (
                    ChangeOutcome::Deactivated,
                    UserWrite::Update(user),
                    Some(entry),
                )
            }
        },
        UserChange::Delete {
            directory_id,
            reason,
            ..
        } => match existing {
            None => (ChangeOutcome::NotFound, UserWrite::Nothing, None),
            Some(cur) => {
                let entry =
                    NewOutboxEntry::for_user(OutboxKind::Deleted, cur, Some(reason), &[], now);
                (
                    ChangeOutcome::Deleted,
                    UserWrite::Remove {
                        directory_id: directory_id.clone(),
                    },
                    Some(entry),
                )
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_ignores_key_order_and_etag() {
        let mut a = UserProfile::new("1", "a@example.com");
        a.custom_schemas = serde_json::json!({"S": {"x": 1, "y": 2}});
        let mut b = a.clone();
        b.custom_schemas = serde_json::from_str(r#"{"S": {"y": 2, "x": 1}}"#).unwrap();
        b.directory_etag = Some("\"etag\"".into());
        assert_eq!(a.content_hash(), b.content_hash());
        b.title = Some("CTO".into());
        assert_ne!(a.content_hash(), b.content_hash());
        assert_eq!(a.changed_fields(&b), vec!["title".to_owned()]);
    }

    #[test]
    fn stale_observation_is_refused() {
        let t0 = Utc::now();
        let p = UserProfile::new("1", "a@example.com");
        let (_, write, _) = decide(
            None,
            &UserChange::Upsert {
                profile: p.clone(),
                observed_at: t0,
            },
            t0,
        );
        let UserWrite::Insert(user) = write else {
            panic!("expected insert")
        };
        let older = t0 - chrono::Duration::seconds(5);
        let (outcome, write, entry) = decide(
            Some(&user),
            &UserChange::Delete {
                directory_id: "1".into(),
                reason: "gone".into(),
                observed_at: older,
            },
            t0,
        );
        assert_eq!(outcome, ChangeOutcome::Stale);
        assert_eq!(write, UserWrite::Nothing);
        assert!(entry.is_none());
    }
}
