//! The Directory → app users job (issue 5): a full reconcile of the application's user
//! table with the directory, and the per-user refresh the daemon's workers run for a push
//! notification.
//!
//! A reconcile reads the whole directory once, hands it with the stored rows to the pure
//! planner ([`orgsync_core::users::plan_users`]), asks the [`SafetyGuard`] whether the plan
//! may be written (a failed or empty read must never deprovision anyone: prior-art §3.3 item
//! 1), and only then applies it in chunked transactions, each change with its outbox entry.
//! Every change carries the instant the directory was read, so a slow reconcile can never
//! undo what a newer notification already applied (the store refuses stale changes).
//!
//! The planner and the store hash content differently (the planner's view vs the stored
//! row), so rows are converted back to the planner's type for comparison; the two
//! conversions here are exact inverses for everything the planner can produce.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use orgsync_client::directory::UsersListParams;
use orgsync_client::{ErrorKind, GoogleClient};
use orgsync_core::guard::{GuardVerdict, SafetyGuard};
use orgsync_core::scope::{GroupMembership, ScopeRules};
use orgsync_core::users::{
    AppPhone, AppUserDesired, DeactivationReason, DeprovisionPolicy, ObservedAppUser, RoleRule,
    UserMapping, UsersPlan, UsersPlanOptions, app_user_desired, plan_users,
};
use orgsync_store::{AppUser, ChangeOutcome, Phone, Store, UserChange, UserProfile, UserQuery};
use orgsync_wire::directory::User;
use serde::Serialize;

use crate::config::{Config, Deprovision, GoogleConfig, UsersConfig};
use crate::directory::read_directory;

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
    /// The changes (planned with `dry_run`, applied otherwise).
    pub changes: Vec<ChangeLine>,
    /// When the directory was read (the observation time of every change).
    pub observed_at: Option<DateTime<Utc>>,
}

impl UsersReport {
    pub fn total_changes(&self) -> usize {
        self.created + self.updated + self.reactivated + self.deactivated + self.deleted
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
        custom_schemas: serde_json::Value::Object(d.custom_schemas.clone()),
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
        custom_schemas: p.custom_schemas.as_object().cloned().unwrap_or_default(),
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

/// Every stored app user, active or not, in directory-id order.
pub async fn load_all_users(store: &dyn Store) -> orgsync_store::Result<Vec<AppUser>> {
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
        all.extend(page);
        if done || after.is_none() {
            return Ok(all);
        }
    }
}

fn reason_str(r: DeactivationReason) -> &'static str {
    match r {
        DeactivationReason::Suspended => "suspended in the directory",
        DeactivationReason::Archived => "archived in the directory",
        DeactivationReason::Gone => "gone from the directory or out of scope",
    }
}

/// The store changes of a plan, with a report line each, in a stable order.
fn changes_of(plan: &UsersPlan, observed_at: DateTime<Utc>) -> Vec<(UserChange, ChangeLine)> {
    let mut out = Vec::new();
    let line = |action, id: &str, email: &str, reason: Option<&str>| ChangeLine {
        action,
        directory_id: id.to_owned(),
        email: email.to_owned(),
        reason: reason.map(str::to_owned),
    };
    let upsert = |d: &AppUserDesired| UserChange::Upsert {
        profile: profile_from_desired(d),
        observed_at,
    };
    for d in &plan.creates {
        out.push((
            upsert(d),
            line("create", &d.directory_id, &d.primary_email, None),
        ));
    }
    for d in &plan.updates {
        out.push((
            upsert(d),
            line("update", &d.directory_id, &d.primary_email, None),
        ));
    }
    for d in &plan.reactivations {
        out.push((
            upsert(d),
            line("reactivate", &d.directory_id, &d.primary_email, None),
        ));
    }
    for x in &plan.deactivations {
        let reason = reason_str(x.reason);
        let change = match &x.desired {
            Some(d) => upsert(d),
            None => UserChange::Deactivate {
                directory_id: x.directory_id.clone(),
                reason: reason.to_owned(),
                observed_at,
            },
        };
        out.push((
            change,
            line("deactivate", &x.directory_id, &x.email, Some(reason)),
        ));
    }
    for id in &plan.deletes {
        out.push((
            UserChange::Delete {
                directory_id: id.clone(),
                reason: reason_str(DeactivationReason::Gone).to_owned(),
                observed_at,
            },
            line("delete", id, "", Some(reason_str(DeactivationReason::Gone))),
        ));
    }
    out
}

fn calls_since(
    client: &GoogleClient,
    before: &orgsync_client::StatsSnapshot,
) -> BTreeMap<String, u64> {
    let after = client.stats().snapshot();
    after
        .methods
        .iter()
        .filter_map(|(m, s)| {
            let prev = before.methods.get(m).map_or(0, |p| p.calls);
            (s.calls > prev).then(|| (m.to_string(), s.calls - prev))
        })
        .collect()
}

/// A full reconcile of the app users with the directory. `now` is the caller's clock
/// (the daemon's may be simulated); it stamps the observation and the writes.
pub async fn reconcile(
    client: &GoogleClient,
    config: &Config,
    store: &dyn Store,
    opts: ReconcileOptions,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<UsersReport, UsersError> {
    let started = Instant::now();
    let before = client.stats().snapshot();
    let observed_at = now();
    let rules = &config.users.scope;
    let read = read_directory(client, &config.google, &[rules], "full").await?;
    let users = read_scope_query(&read, rules);
    let rows = load_all_users(store).await?;
    let observed_rows: Vec<ObservedAppUser> = rows.iter().map(observed).collect();
    let plan = plan_users(
        &users,
        &read.groups,
        rules,
        &observed_rows,
        &plan_options(&config.users),
    );
    let guard = SafetyGuard {
        max_delete_share: config.users.max_deprovision_share,
        force: opts.force,
    };
    let mut verdict = guard.check_users(&plan);
    // A Workspace always has at least the admin orgsync reads as: a read that returned
    // nobody is a failed read, and it never deprovisions anyone, not even with --force.
    if read.users.is_empty() && plan.deprovisions > 0 {
        verdict = GuardVerdict::Stop {
            reason: format!(
                "safety guard: the directory read returned no users at all, yet this run would \
                 remove {} of {} active app users; nothing was written (--force does not \
                 override an empty read)",
                plan.deprovisions, plan.observed_active
            ),
            what_to_check: "check [google] customer/domain and admin_subject, and that the \
                            service account's delegation grants the Directory read scope"
                .into(),
        };
    }
    let email_of: BTreeMap<&str, &str> = rows
        .iter()
        .map(|r| (r.directory_id(), r.primary_email()))
        .collect();
    let mut changes = changes_of(&plan, observed_at);
    for (_, line) in &mut changes {
        if line.email.is_empty()
            && let Some(e) = email_of.get(line.directory_id.as_str())
        {
            line.email = (*e).to_owned();
        }
    }
    let mut report = UsersReport {
        dry_run: opts.dry_run,
        directory_read: read.users.len(),
        unchanged: plan.unchanged,
        guard: Some(verdict.clone()),
        observed_at: Some(observed_at),
        ..UsersReport::default()
    };
    if let GuardVerdict::Stop {
        reason,
        what_to_check,
    } = &verdict
    {
        report.changes = changes.into_iter().map(|(_, l)| l).collect();
        report.calls = calls_since(client, &before);
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Err(UsersError::Guard {
            reason: reason.clone(),
            what_to_check: what_to_check.clone(),
            report: Box::new(report),
        });
    }
    if opts.dry_run {
        for (_, l) in &changes {
            match l.action {
                "create" => report.created += 1,
                "update" => report.updated += 1,
                "reactivate" => report.reactivated += 1,
                "deactivate" => report.deactivated += 1,
                _ => report.deleted += 1,
            }
        }
        report.changes = changes.into_iter().map(|(_, l)| l).collect();
    } else {
        for chunk in changes.chunks(APPLY_CHUNK) {
            let batch: Vec<UserChange> = chunk.iter().map(|(c, _)| c.clone()).collect();
            let applied = store.apply_user_changes(&batch, now()).await?;
            for ((_, line), (_, outcome)) in chunk.iter().zip(&applied.outcomes) {
                let counted = count_outcome(&mut report, *outcome);
                if counted {
                    report.changes.push(line.clone());
                }
            }
        }
    }
    report.calls = calls_since(client, &before);
    report.duration_ms = started.elapsed().as_millis() as u64;
    if !opts.dry_run {
        let summary = serde_json::json!({
            "at": observed_at,
            "directory_read": report.directory_read,
            "created": report.created,
            "updated": report.updated,
            "reactivated": report.reactivated,
            "deactivated": report.deactivated,
            "deleted": report.deleted,
            "unchanged": report.unchanged,
            "duration_ms": report.duration_ms,
        });
        store
            .set_sync_state(STATE_SCOPE, LAST_RECONCILE_KEY, &summary.to_string(), now())
            .await?;
    }
    Ok(report)
}

/// Adds one applied outcome to the counters; `true` when it changed something.
fn count_outcome(report: &mut UsersReport, outcome: ChangeOutcome) -> bool {
    match outcome {
        ChangeOutcome::Created => report.created += 1,
        ChangeOutcome::Updated => report.updated += 1,
        ChangeOutcome::Reactivated => report.reactivated += 1,
        ChangeOutcome::Deactivated => report.deactivated += 1,
        ChangeOutcome::Deleted => report.deleted += 1,
        ChangeOutcome::Unchanged | ChangeOutcome::NotFound => {
            report.unchanged += 1;
            return false;
        }
        ChangeOutcome::Stale => {
            report.stale += 1;
            return false;
        }
    }
    true
}

/// The users a scope's Directory `query` leaves (all of them without a query; an explicit
/// `include` still reaches people outside it), as [`crate::directory::DirectoryRead::select`].
fn read_scope_query(read: &crate::directory::DirectoryRead, rules: &ScopeRules) -> Vec<User> {
    match &rules.query {
        None => read.users.clone(),
        Some(_) => {
            let keep: BTreeSet<String> = read
                .select(&ScopeRules {
                    include_suspended: true,
                    include_archived: true,
                    ..rules.clone()
                })
                .users
                .into_keys()
                .collect();
            read.users
                .iter()
                .filter(|u| u.id.as_ref().is_some_and(|id| keep.contains(id)))
                .cloned()
                .collect()
        }
    }
}

/// What refreshing one user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RefreshOutcome {
    pub outcome: ChangeOutcome,
    /// The directory no longer has the user (users.get answered 404).
    pub gone: bool,
    /// The user exists but is outside `[users] scope`.
    pub out_of_scope: bool,
}

/// Re-read one user (`users.get`, full projection) and apply it: the work of one push
/// notification. A 404 (deleted) or a user outside the scope is deprovisioned per policy;
/// any other error is returned for the caller to retry later.
pub async fn refresh_user(
    client: &GoogleClient,
    config: &Config,
    store: &dyn Store,
    user_key: &str,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<RefreshOutcome, UsersError> {
    let observed_at = now();
    let opts = plan_options(&config.users);
    let directory = client.directory();
    let user = match directory.users_get(user_key, Some("full"), None).await {
        Ok(u) => Some(u),
        Err(e) if e.is(ErrorKind::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let rules = &config.users.scope;
    let (desired, out_of_scope) = match &user {
        None => (None, false),
        Some(u) => {
            let groups = membership_for(client, &config.google, rules, u).await?;
            let in_query = in_scope_query(client, &config.google, rules, u).await?;
            let selected = in_query && rules.selects_structurally(u, &groups);
            match selected
                .then(|| app_user_desired(u, &opts.mapping))
                .flatten()
            {
                Some(d) => (Some(d), false),
                None => (None, true),
            }
        }
    };
    let change = match desired {
        Some(d) => UserChange::Upsert {
            profile: profile_from_desired(&d),
            observed_at,
        },
        None => {
            // The notification body's id is the key; a 404 means deleted (reference §2.11).
            let id = user
                .as_ref()
                .and_then(|u| u.id.clone())
                .unwrap_or_else(|| user_key.to_owned());
            let reason = if out_of_scope {
                "out of scope"
            } else {
                "deleted from the directory"
            };
            match opts.policy {
                DeprovisionPolicy::Keep => {
                    return Ok(RefreshOutcome {
                        outcome: ChangeOutcome::Unchanged,
                        gone: user.is_none(),
                        out_of_scope,
                    });
                }
                DeprovisionPolicy::Deactivate => UserChange::Deactivate {
                    directory_id: id,
                    reason: reason.into(),
                    observed_at,
                },
                DeprovisionPolicy::Delete => UserChange::Delete {
                    directory_id: id,
                    reason: reason.into(),
                    observed_at,
                },
            }
        }
    };
    let applied = store.apply_user_changes(&[change], now()).await?;
    let outcome = applied
        .outcomes
        .first()
        .map(|(_, o)| *o)
        .unwrap_or(ChangeOutcome::Unchanged);
    Ok(RefreshOutcome {
        outcome,
        gone: user.is_none(),
        out_of_scope,
    })
}

/// Membership of the scope's groups for one user (nothing to read without group rules).
async fn membership_for(
    client: &GoogleClient,
    _google: &GoogleConfig,
    rules: &ScopeRules,
    user: &User,
) -> Result<GroupMembership, orgsync_client::Error> {
    let mut groups = GroupMembership::new();
    let Some(id) = user.id.as_deref() else {
        return Ok(groups);
    };
    let directory = client.directory();
    for group in &rules.groups {
        groups.add_group(group);
        let mut members = std::pin::pin!(directory.members_list(group, true, None));
        while let Some(m) = members.try_next().await? {
            if m.id.as_deref() == Some(id) {
                groups.add(group, id);
                break;
            }
        }
    }
    Ok(groups)
}

/// Whether the scope's Directory `query` (if any) returns this user.
async fn in_scope_query(
    client: &GoogleClient,
    google: &GoogleConfig,
    rules: &ScopeRules,
    user: &User,
) -> Result<bool, orgsync_client::Error> {
    let Some(query) = &rules.query else {
        return Ok(true);
    };
    let included = user
        .primary_email
        .iter()
        .any(|e| rules.include.iter().any(|i| i.eq_ignore_ascii_case(e)));
    if included {
        return Ok(true);
    }
    let Some(email) = user.primary_email.as_deref() else {
        return Ok(false);
    };
    let params = UsersListParams {
        customer: google.customer.clone(),
        domain: if google.customer.is_none() {
            google.domain.clone()
        } else {
            None
        },
        query: Some(format!("({query}) email:{email}")),
        projection: Some("basic".into()),
        ..UsersListParams::default()
    };
    let found: Vec<User> = client.directory().users_list(params).try_collect().await?;
    Ok(found.iter().any(|u| u.id == user.id))
}

#[cfg(test)]
mod tests {
    use super::*;
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
