//! The Directory → app users job: a full reconcile of the application's user table with
//! the directory, and the per-user refresh the daemon's workers run for a push
//! notification.
//!
//! A reconcile reads the whole directory once, hands it with the stored rows to the pure
//! planner ([`orgsync_core::users::plan_users`]), asks the
//! [`orgsync_core::guard::SafetyGuard`] whether the plan may be written (a failed or empty
//! read must never deprovision anyone, see <https://github.com/awslabs/ssosync/issues/194>),
//! and only then applies it in chunked transactions, each change with its outbox entry.
//! Every change carries the instant the directory was read, so a slow reconcile can never
//! undo what a newer notification already applied (the store refuses stale changes).
//!
//! The planner and the store hash content differently (the planner's view vs the stored
//! row), so rows are converted back to the planner's type for comparison; the two
//! conversions here are exact inverses for everything the planner can produce.
//!
//! `reconcile.rs` is the full run, `push.rs` one notification's refresh, `welcome.rs` the
//! welcome mail both of them send.

mod push;
mod reconcile;
mod welcome;

pub use push::{RefreshOutcome, refresh_user};
pub(crate) use push::{in_scope_query, membership_for};
pub use reconcile::{APP_USER_FIELDS, directory_fields, reconcile};
pub use welcome::{
    WELCOME_CLAIM_STALE_SECS, WELCOME_SCOPE, WelcomeFailure, WelcomeOutcome, WelcomeRecord,
    WelcomeReport, WelcomeState, Welcomer,
};

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use orgsync_core::guard::GuardVerdict;
use orgsync_core::users::{
    AppPhone, AppUserDesired, DeprovisionPolicy, ObservedAppUser, RoleRule, UserMapping,
    UsersPlanOptions,
};
use orgsync_store::{AppUser, Phone, Store, UserProfile, UserQuery};
use serde::Serialize;

use crate::config::{Deprovision, UsersConfig};

/// Sync-state scope under which the job records its runs.
pub const STATE_SCOPE: &str = "users";
/// Key of the last reconcile's summary (JSON) in [`STATE_SCOPE`].
pub const LAST_RECONCILE_KEY: &str = "last_reconcile";
/// Changes per store transaction: large enough to be fast, small enough to keep locks short.
pub const APPLY_CHUNK: usize = 500;

/// Options of one reconcile.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReconcileOptions {
    /// Plan and report only; write nothing.
    pub dry_run: bool,
    /// Proceed when the guard would stop.
    pub force: bool,
    /// What started the run, for its record ([`crate::runs`]).
    pub trigger: crate::runs::Trigger,
}

/// One planned or applied change, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeLine {
    pub action: &'static str,
    pub directory_id: String,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a reconcile did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsersReport {
    pub dry_run: bool,
    /// Directory users the read returned (before scope).
    pub directory_read: usize,
    pub created: usize,
    pub updated: usize,
    pub reactivated: usize,
    pub deactivated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    /// Changes the store refused because a newer observation was already applied.
    pub stale: usize,
    /// `proceed`, `forced` or `stop` with the reason.
    pub guard: Option<GuardVerdict>,
    /// Google API calls per method during this run.
    pub calls: BTreeMap<String, u64>,
    pub duration_ms: u64,
    /// Time spent inside `users.list` calls (their summed latency): what the directory
    /// read costs, beside `duration_ms`.
    pub users_list_ms: u64,
    /// The changes (planned with `dry_run`, applied otherwise).
    pub changes: Vec<ChangeLine>,
    /// When the directory was read (the observation time of every change).
    pub observed_at: Option<DateTime<Utc>>,
    /// Welcome mail to new users (absent when `[mail.welcome]` is not enabled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub welcome: Option<WelcomeReport>,
}

impl UsersReport {
    pub fn total_changes(&self) -> usize {
        self.created + self.updated + self.reactivated + self.deactivated + self.deleted
    }

    /// The human summary (printed by `orgsync users sync`, mailed by `--report-to`).
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for c in &self.changes {
            let _ = match &c.reason {
                Some(reason) => writeln!(out, "{:<10} {} ({reason})", c.action, c.email),
                None => writeln!(out, "{:<10} {}", c.action, c.email),
            };
        }
        let _ = writeln!(
            out,
            "users{}: {} created, {} updated, {} reactivated, {} deactivated, {} deleted{}; \
             {} unchanged; {} read from the directory in {} ms ({} API calls)",
            if self.dry_run { " (dry run)" } else { "" },
            self.created,
            self.updated,
            self.reactivated,
            self.deactivated,
            self.deleted,
            if self.dry_run { " would be" } else { "" },
            self.unchanged,
            self.directory_read,
            self.duration_ms,
            self.calls.values().sum::<u64>()
        );
        if self.stale > 0 {
            let _ = writeln!(
                out,
                "{} changes skipped: a newer notification was already applied",
                self.stale
            );
        }
        if let Some(w) = &self.welcome {
            if self.dry_run {
                let _ = writeln!(out, "welcome (dry run): would send {}", w.would_send);
            } else {
                let _ = write!(out, "welcome: sent {}, failed {}", w.sent, w.failed);
                if w.waiting > 0 {
                    let _ = write!(out, ", {} waiting (inactive or being sent)", w.waiting);
                }
                if w.initial_import {
                    let _ = write!(out, " (first import: none for existing users)");
                }
                let _ = writeln!(out);
            }
            for f in &w.failures {
                let _ = writeln!(out, "  welcome failed {}: {}", f.email, f.error);
            }
        }
        out
    }
}

/// Why a reconcile did not complete.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The guard stopped the run before writing anything.
    #[error("{reason}")]
    Guard {
        reason: String,
        what_to_check: String,
        report: Box<UsersReport>,
    },
    #[error("reading the directory failed: {0}")]
    Directory(#[from] orgsync_client::Error),
    #[error(transparent)]
    Store(#[from] orgsync_store::StoreError),
    /// A custom attribute the config names does not exist in the Directory.
    #[error(transparent)]
    UnknownAttribute(#[from] crate::attributes::UnknownAttribute),
}

impl UsersError {
    pub fn kind(&self) -> crate::error::FailureKind {
        use crate::error::FailureKind;
        match self {
            UsersError::Guard { .. } => FailureKind::Guard,
            UsersError::Directory(e) => FailureKind::Google(e.kind()),
            UsersError::Store(_) => FailureKind::Store,
            UsersError::UnknownAttribute(_) => FailureKind::Config,
        }
    }
}

/// The planner options `[users]` describes (deprovision policy and role rules).
pub fn plan_options(users: &UsersConfig) -> UsersPlanOptions {
    UsersPlanOptions {
        policy: match users.deprovision {
            Deprovision::Deactivate => DeprovisionPolicy::Deactivate,
            Deprovision::Delete => DeprovisionPolicy::Delete,
            Deprovision::Keep => DeprovisionPolicy::Keep,
        },
        mapping: UserMapping {
            roles: users
                .roles
                .iter()
                .map(|r| RoleRule {
                    schema: r.schema.clone(),
                    field: r.field.clone(),
                    equals: r.equals.clone(),
                    role: r.role.clone(),
                })
                .collect(),
            admin_role: None,
        },
    }
}

/// The stored profile for a planned row.
pub fn profile_from_desired(d: &AppUserDesired) -> UserProfile {
    UserProfile {
        directory_id: d.directory_id.clone(),
        primary_email: d.primary_email.clone(),
        given_name: d.given_name.clone().unwrap_or_default(),
        family_name: d.family_name.clone().unwrap_or_default(),
        display_name: d.full_name.clone().unwrap_or_default(),
        is_admin: d.is_admin,
        suspended: d.suspended,
        archived: d.archived,
        org_unit_path: d.org_unit_path.clone().unwrap_or_default(),
        department: d.department.clone(),
        title: d.title.clone(),
        phones: d
            .phones
            .iter()
            .map(|p| Phone {
                value: p.value.clone(),
                kind: p.kind.clone(),
            })
            .collect(),
        custom_schemas: serde_json::Value::Object(d.custom_schemas.to_map()),
        roles: d.roles.iter().cloned().collect(),
        active: d.active,
        directory_etag: d.directory_etag.clone(),
    }
}

/// The planner's view of a stored row (inverse of [`profile_from_desired`]).
pub fn desired_from_profile(p: &UserProfile) -> AppUserDesired {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    AppUserDesired {
        directory_id: p.directory_id.clone(),
        primary_email: p.primary_email.clone(),
        given_name: opt(&p.given_name),
        family_name: opt(&p.family_name),
        full_name: opt(&p.display_name),
        is_admin: p.is_admin,
        suspended: p.suspended,
        archived: p.archived,
        org_unit_path: opt(&p.org_unit_path),
        department: p.department.clone(),
        title: p.title.clone(),
        phones: p
            .phones
            .iter()
            .map(|x| AppPhone {
                value: x.value.clone(),
                kind: x.kind.clone(),
            })
            .collect(),
        custom_schemas: p
            .custom_schemas
            .as_object()
            .map(orgsync_core::users::SchemaValues::new)
            .unwrap_or_default(),
        roles: p.roles.iter().cloned().collect::<BTreeSet<_>>(),
        active: p.active,
        directory_etag: p.directory_etag.clone(),
    }
}

fn observed(row: &AppUser) -> ObservedAppUser {
    ObservedAppUser {
        directory_id: row.profile.directory_id.clone(),
        email: row.profile.primary_email.clone(),
        content_hash: desired_from_profile(&row.profile).content_hash(),
        active: row.profile.active,
    }
}

/// Every stored app user, active or not, in directory-id order, as the planner sees it:
/// each page of rows is reduced to id, email, content hash and state as it arrives, so
/// the whole table is never in memory (at 100,000 rows it was a few hundred MB).
pub async fn load_all_observed(store: &dyn Store) -> orgsync_store::Result<Vec<ObservedAppUser>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_users(&UserQuery {
                active_only: false,
                after_id: after.clone(),
                limit: 1000,
            })
            .await?;
        let done = page.len() < 1000;
        after = page.last().map(|u| u.profile.directory_id.clone());
        all.extend(page.iter().map(observed));
        if done || after.is_none() {
            return Ok(all);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsync_core::users::app_user_desired;
    use orgsync_wire::directory::User;
    use orgsync_wire::directory::UserName;

    #[test]
    fn profile_conversion_round_trips_the_planner_hash() {
        let mut u = User {
            id: Some("42".into()),
            primary_email: Some("Ada@Example.com".into()),
            name: Some(UserName {
                given_name: Some("Ada".into()),
                family_name: None,
                full_name: Some("Ada".into()),
                ..Default::default()
            }),
            suspended: Some(true),
            org_unit_path: Some("/Eng".into()),
            etag: Some("e".into()),
            ..Default::default()
        };
        u.custom_schemas = Some(
            serde_json::json!({"Roles": {"x": true}})
                .as_object()
                .unwrap()
                .clone(),
        );
        let d = app_user_desired(&u, &UserMapping::default()).unwrap();
        let back = desired_from_profile(&profile_from_desired(&d));
        assert_eq!(back, d);
        assert_eq!(back.content_hash(), d.content_hash());
        assert!(!profile_from_desired(&d).active);
    }
}
