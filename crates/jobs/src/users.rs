//! The Directory → app users job: a full reconcile of the application's user table with
//! the directory, and the per-user refresh the daemon's workers run for a push
//! notification.
//!
//! A reconcile reads the whole directory once, hands it with the stored rows to the pure
//! planner ([`orgsync_core::users::plan_users`]), asks the [`SafetyGuard`] whether the plan
//! may be written (a failed or empty read must never deprovision anyone, see
//! <https://github.com/awslabs/ssosync/issues/194>), and only then applies it in chunked
//! transactions, each change with its outbox entry. Every change carries the instant the
//! directory was read, so a slow reconcile can never undo what a newer notification
//! already applied (the store refuses stale changes).
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
use serde::{Deserialize, Serialize};

use crate::config::{Config, Deprovision, GoogleConfig, UsersConfig};
use crate::directory::read_directory;
use crate::mail::WelcomeTemplate;

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
}

impl UsersError {
    pub fn kind(&self) -> crate::error::FailureKind {
        use crate::error::FailureKind;
        match self {
            UsersError::Guard { .. } => FailureKind::Guard,
            UsersError::Directory(e) => FailureKind::Google(e.kind()),
            UsersError::Store(_) => FailureKind::Store,
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
    // Welcome mail: owed to every user this run creates, unless this is the first full
    // reconcile (the initial import of an existing directory mails nobody). The record is
    // written before the create, so a crash in between still sends it on the next run.
    let welcomer = Welcomer::new(client, config, store);
    let mut welcome = WelcomeReport::default();
    if welcomer.is_some() {
        welcome.initial_import = store
            .get_sync_state(STATE_SCOPE, LAST_RECONCILE_KEY)
            .await?
            .is_none();
    }
    if let Some(w) = &welcomer
        && !welcome.initial_import
    {
        if opts.dry_run {
            welcome.would_send = plan.creates.iter().filter(|d| d.active).count() + w.owed().await;
        } else {
            for d in &plan.creates {
                if let Err(e) = w
                    .mark_pending(&d.directory_id, &d.primary_email, now())
                    .await
                {
                    tracing::warn!(error = %e, email = %d.primary_email, "cannot record an owed welcome mail");
                    welcome.failed += 1;
                    welcome.failures.push(WelcomeFailure {
                        directory_id: d.directory_id.clone(),
                        email: d.primary_email.clone(),
                        error: format!("state store: {e}"),
                    });
                }
            }
        }
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
        if let Some(w) = &welcomer {
            let by_id: BTreeMap<&str, &User> = users
                .iter()
                .filter_map(|u| u.id.as_deref().map(|id| (id, u)))
                .collect();
            w.sweep(&by_id, now(), &mut welcome).await;
            report.calls = calls_since(client, &before);
            report.duration_ms = started.elapsed().as_millis() as u64;
        }
    }
    if welcomer.is_some() {
        report.welcome = Some(welcome);
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
    /// The welcome mail step, when `[mail.welcome]` is enabled and the user was created
    /// (or activated while still owed one).
    pub welcome: Option<WelcomeOutcome>,
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
            // The notification body's id is the key; a 404 means deleted (the push guide:
            // https://developers.google.com/workspace/admin/directory/v1/guides/push).
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
                        welcome: None,
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
    // Welcome mail for a user this notification provisions: owed before the create is
    // written (a crash in between still sends it later), sent after it, at most once.
    let welcomer = Welcomer::new(client, config, store);
    let mut new_user = None;
    if let (Some(w), UserChange::Upsert { profile, .. }) = (&welcomer, &change)
        && store.get_user(&profile.directory_id).await?.is_none()
        && store
            .get_sync_state(STATE_SCOPE, LAST_RECONCILE_KEY)
            .await?
            .is_some()
    {
        if let Err(e) = w
            .mark_pending(&profile.directory_id, &profile.primary_email, now())
            .await
        {
            tracing::warn!(error = %e, "cannot record an owed welcome mail");
        }
        new_user = Some((profile.directory_id.clone(), profile.primary_email.clone()));
    }
    let applied = store.apply_user_changes(&[change], now()).await?;
    let outcome = applied
        .outcomes
        .first()
        .map(|(_, o)| *o)
        .unwrap_or(ChangeOutcome::Unchanged);
    let mut welcome = None;
    if let Some(w) = &welcomer
        && matches!(outcome, ChangeOutcome::Created | ChangeOutcome::Reactivated)
        && let Some(id) = user.as_ref().and_then(|u| u.id.as_deref())
    {
        if let Some((new_id, email)) = &new_user
            && outcome == ChangeOutcome::Created
        {
            // A concurrent reconcile may have dropped the record before the row existed.
            if let Err(e) = w.mark_pending(new_id, email, now()).await {
                tracing::warn!(error = %e, "cannot record an owed welcome mail");
            }
        }
        let mut report = WelcomeReport::default();
        let o = w.deliver(id, user.as_ref(), now(), &mut report).await;
        welcome = (o != WelcomeOutcome::None).then_some(o);
    }
    Ok(RefreshOutcome {
        outcome,
        gone: user.is_none(),
        out_of_scope,
        welcome,
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

// ---------------------------------------------------------------------------------------
// Welcome mail

/// Sync-state scope of the welcome mail: one [`WelcomeRecord`] (JSON) per directory id.
pub const WELCOME_SCOPE: &str = "welcome";
/// A `sending` claim older than this is taken over (its holder crashed mid-send).
pub const WELCOME_CLAIM_STALE_SECS: i64 = 600;
/// A pending record whose user is not in the store after this long is dropped.
const WELCOME_ORPHAN_SECS: i64 = 86_400;
/// How long the store lease that serialises one user's claim is held at most.
const WELCOME_LEASE_SECS: i64 = 60;

/// Where one user's welcome mail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WelcomeState {
    /// To send (new user, or an earlier attempt failed).
    Pending,
    /// Claimed by one run, which is sending it now (or crashed while doing so).
    Sending,
    /// Sent; never sent again.
    Sent,
}

/// The stored record of one user's welcome mail (sync state `welcome/<directory id>`).
///
/// The mail is sent as a Gmail *draft* that is then sent: the draft id is recorded before
/// `drafts.send`, and a later attempt first asks `drafts.get` whether the draft still
/// exists. Gmail removes a draft when it is sent, so a 404 proves it went out (or a person
/// deleted it): either way it is never sent twice, even after a crash or a 5xx whose
/// outcome is unknown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WelcomeRecord {
    pub state: WelcomeState,
    pub email: String,
    /// When the user was provisioned (the record was created).
    pub since: DateTime<Utc>,
    /// Last change of the record.
    pub at: DateTime<Utc>,
    pub attempts: u32,
    /// The draft holding the message, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The claim's holder while `sending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// One welcome mail that could not be sent in this run (retried by the next one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WelcomeFailure {
    pub directory_id: String,
    pub email: String,
    pub error: String,
}

/// The welcome mail of a run (present when `[mail.welcome]` is enabled).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WelcomeReport {
    pub sent: usize,
    /// Not sent in this run; kept and retried by the next run.
    pub failed: usize,
    /// Left for later: the user is not active (yet), or another run holds the claim.
    pub waiting: usize,
    /// Dry run: how many a real run would try to send.
    pub would_send: usize,
    /// The first full reconcile imports the existing directory without welcome mail.
    pub initial_import: bool,
    pub failures: Vec<WelcomeFailure>,
}

/// What the welcome step did for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WelcomeOutcome {
    Sent,
    Failed,
    Waiting,
    /// Nothing to do (already sent, or no record).
    None,
}

/// Sends welcome mail at most once per user. See [`WelcomeRecord`] for the protocol; the
/// claim (`pending` → `sending`) is a read-check-write under a short store lease named
/// `welcome:<id>`, so two runs or two daemon instances never both send.
pub struct Welcomer<'a> {
    client: &'a GoogleClient,
    store: &'a dyn Store,
    /// The loaded template, or why it cannot be used (a failure of every send, not of
    /// the sync).
    template: Result<WelcomeTemplate, String>,
    /// `[mail] from`, else `[google] admin_subject`.
    from: Option<String>,
    holder: String,
}

impl<'a> Welcomer<'a> {
    /// `None` when `[mail.welcome]` is not enabled.
    pub fn new(client: &'a GoogleClient, config: &Config, store: &'a dyn Store) -> Option<Self> {
        let template = match WelcomeTemplate::from_config(&config.mail.welcome) {
            Ok(None) => return None,
            Ok(Some(t)) => Ok(t),
            Err(e) => Err(e.to_string()),
        };
        Some(Welcomer {
            client,
            store,
            template,
            from: config
                .mail
                .from
                .clone()
                .or_else(|| config.google.admin_subject.clone()),
            holder: format!(
                "welcome-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ),
        })
    }

    async fn record(&self, id: &str) -> orgsync_store::Result<Option<WelcomeRecord>> {
        Ok(self
            .store
            .get_sync_state(WELCOME_SCOPE, id)
            .await?
            .and_then(|v| serde_json::from_str(&v).ok()))
    }

    async fn put(
        &self,
        id: &str,
        rec: &WelcomeRecord,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<()> {
        let value = serde_json::to_string(rec).unwrap_or_default();
        self.store
            .set_sync_state(WELCOME_SCOPE, id, &value, now)
            .await
    }

    /// Record that `id` was provisioned and is owed a welcome (no-op if a record exists).
    /// Under the `welcome:<id>` lease, so it never overwrites a claim; if another run holds
    /// the lease, that run is already working on the record and nothing is needed.
    pub async fn mark_pending(
        &self,
        id: &str,
        email: &str,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<()> {
        if !self.lock(id, now).await? {
            return Ok(());
        }
        let result = async {
            if self.record(id).await?.is_some() {
                return Ok(());
            }
            let rec = WelcomeRecord {
                state: WelcomeState::Pending,
                email: email.to_owned(),
                since: now,
                at: now,
                attempts: 0,
                draft_id: None,
                message_id: None,
                by: None,
                last_error: None,
            };
            self.put(id, &rec, now).await
        }
        .await;
        self.unlock(id).await;
        result
    }

    /// Write the outcome of our claim, unless it was taken over meanwhile (then the new
    /// holder writes it).
    async fn finish(
        &self,
        id: &str,
        rec: &WelcomeRecord,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<()> {
        let locked = self.lock(id, now).await?;
        let result = async {
            let current = self.record(id).await?;
            if !locked || current.is_none_or(|c| c.by == Some(self.holder.clone())) {
                self.put(id, rec, now).await?;
            }
            Ok(())
        }
        .await;
        if locked {
            self.unlock(id).await;
        }
        result
    }

    /// Take the `welcome:<id>` lease (a few short tries); `false` when another run holds
    /// it. Release with [`Self::unlock`].
    async fn lock(&self, id: &str, now: DateTime<Utc>) -> orgsync_store::Result<bool> {
        let name = format!("welcome:{id}");
        let ttl = chrono::Duration::seconds(WELCOME_LEASE_SECS);
        for attempt in 0..5 {
            if self
                .store
                .try_acquire_lease(&name, &self.holder, now, ttl)
                .await?
            {
                return Ok(true);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
        }
        Ok(false)
    }

    async fn unlock(&self, id: &str) {
        let name = format!("welcome:{id}");
        if let Err(e) = self.store.release_lease(&name, &self.holder).await {
            tracing::debug!(error = %e, "cannot release a welcome lease; it expires");
        }
    }

    /// Under the lease: pending (or an abandoned claim) → sending, by us.
    async fn claim(
        &self,
        id: &str,
        row: Option<&AppUser>,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<Claim> {
        let Some(mut rec) = self.record(id).await? else {
            return Ok(Claim::Nothing);
        };
        match rec.state {
            WelcomeState::Sent => return Ok(Claim::Nothing),
            WelcomeState::Sending
                if now - rec.at < chrono::Duration::seconds(WELCOME_CLAIM_STALE_SECS) =>
            {
                return Ok(Claim::Busy);
            }
            _ => {}
        }
        let Some(row) = row else {
            // Not in the store: its create may still be on its way (another instance), or
            // it never happened (a stale create) or the user was deleted since. After a day
            // the record is dropped; a later create records a new one.
            let orphan = now - rec.since > chrono::Duration::seconds(WELCOME_ORPHAN_SECS);
            if orphan && rec.state == WelcomeState::Pending && rec.draft_id.is_none() {
                self.store.delete_sync_state(WELCOME_SCOPE, id).await?;
            }
            return Ok(Claim::Nothing);
        };
        if !row.active() {
            return Ok(Claim::Busy);
        }
        rec.state = WelcomeState::Sending;
        rec.at = now;
        rec.attempts += 1;
        rec.by = Some(self.holder.clone());
        self.put(id, &rec, now).await?;
        Ok(Claim::Mine(rec))
    }

    /// Under the lease: record the new draft if the claim is still ours.
    async fn record_draft(
        &self,
        id: &str,
        rec: &mut WelcomeRecord,
        draft_id: &str,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<bool> {
        let current = self.record(id).await?;
        let still = current.is_some_and(|c| c.state == WelcomeState::Sending && c.by == rec.by);
        if still {
            rec.draft_id = Some(draft_id.to_owned());
            self.put(id, rec, now).await?;
        }
        Ok(still)
    }

    /// Send `id`'s welcome if it is owed and the user is active. `user` gives the
    /// template's fields (else the stored row does). Never fails: problems are logged and
    /// counted in `report`.
    pub async fn deliver(
        &self,
        id: &str,
        user: Option<&User>,
        now: DateTime<Utc>,
        report: &mut WelcomeReport,
    ) -> WelcomeOutcome {
        let outcome = match self.try_deliver(id, user, now).await {
            Ok(o) => o,
            Err(e) => Err(format!("state store: {e}")),
        };
        match outcome {
            Ok(DeliverStep::Sent) => {
                report.sent += 1;
                WelcomeOutcome::Sent
            }
            Ok(DeliverStep::Waiting) => {
                report.waiting += 1;
                WelcomeOutcome::Waiting
            }
            Ok(DeliverStep::Nothing) => WelcomeOutcome::None,
            Err(error) => {
                let email = self
                    .record(id)
                    .await
                    .ok()
                    .flatten()
                    .map(|r| r.email)
                    .unwrap_or_default();
                tracing::warn!(
                    directory_id = id,
                    %email,
                    %error,
                    "welcome mail not sent; the next run retries it"
                );
                report.failed += 1;
                report.failures.push(WelcomeFailure {
                    directory_id: id.to_owned(),
                    email,
                    error,
                });
                WelcomeOutcome::Failed
            }
        }
    }

    async fn try_deliver(
        &self,
        id: &str,
        user: Option<&User>,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<Result<DeliverStep, String>> {
        let row = self.store.get_user(id).await?;
        let claimed = if self.lock(id, now).await? {
            let claimed = self.claim(id, row.as_ref(), now).await;
            self.unlock(id).await;
            Some(claimed?)
        } else {
            None
        };
        let mut rec = match claimed {
            None | Some(Claim::Busy) => return Ok(Ok(DeliverStep::Waiting)),
            Some(Claim::Nothing) => return Ok(Ok(DeliverStep::Nothing)),
            Some(Claim::Mine(rec)) => rec,
        };
        let result = self.send(id, user, row.as_ref(), &mut rec, now).await?;
        match &result {
            Ok(message_id) => {
                rec.state = WelcomeState::Sent;
                rec.message_id = message_id.clone();
                rec.last_error = None;
                tracing::info!(directory_id = id, email = %rec.email, "welcome mail sent");
            }
            Err(e) => {
                rec.state = WelcomeState::Pending;
                rec.last_error = Some(e.clone());
            }
        }
        rec.at = now;
        self.finish(id, &WelcomeRecord { by: None, ..rec }, now)
            .await?;
        Ok(result.map(|_| DeliverStep::Sent))
    }

    /// Create the draft (unless one exists), record it, send it. `Ok(Ok(message id))`
    /// when the mail went out (now or in an earlier attempt whose answer was lost).
    async fn send(
        &self,
        id: &str,
        user: Option<&User>,
        row: Option<&AppUser>,
        rec: &mut WelcomeRecord,
        now: DateTime<Utc>,
    ) -> orgsync_store::Result<Result<Option<String>, String>> {
        let Some(from) = &self.from else {
            return Ok(Err(
                "no sender: set [mail] from (or [google] admin_subject)".into(),
            ));
        };
        let sender = match crate::mail::parse_mailbox(from) {
            Ok(m) => m.email,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let gmail = self.client.gmail(Some(&sender));
        let draft_id = match rec.draft_id.clone() {
            Some(draft_id) => {
                // An earlier attempt made the draft: if it is gone, it was sent.
                match gmail.drafts_get(&draft_id, Some("minimal")).await {
                    Ok(_) => draft_id,
                    Err(e) if e.is(ErrorKind::NotFound) => return Ok(Ok(None)),
                    Err(e) => return Ok(Err(format!("checking the earlier draft: {e}"))),
                }
            }
            None => {
                let template = match &self.template {
                    Ok(t) => t,
                    Err(e) => return Ok(Err(e.clone())),
                };
                let fallback;
                let user = match user {
                    Some(u) => u,
                    None => match row {
                        Some(r) => {
                            fallback = user_from_profile(&r.profile);
                            &fallback
                        }
                        None => return Ok(Err("the user is not in the store".into())),
                    },
                };
                let raw = match template
                    .render(from, user)
                    .and_then(|m| crate::mail::build_mime(&m))
                {
                    Ok(raw) => raw,
                    Err(e) => return Ok(Err(e.to_string())),
                };
                let draft = match crate::mail::create_draft(self.client, Some(&sender), &raw).await
                {
                    Ok(d) => d,
                    Err(e) => return Ok(Err(format!("creating the draft: {e}"))),
                };
                let Some(draft_id) = draft.draft_id else {
                    return Ok(Err("Gmail returned a draft without an id".into()));
                };
                // Record the draft before sending it, and check the claim is still ours
                // (a claim taken over as abandoned must not send a second message).
                let mine = if self.lock(id, now).await? {
                    let mine = self.record_draft(id, rec, &draft_id, now).await;
                    self.unlock(id).await;
                    mine?
                } else {
                    false
                };
                if !mine {
                    // Left as a draft in the sender's mailbox: never sent.
                    return Ok(Err("the claim was taken over by another run".into()));
                }
                draft_id
            }
        };
        match gmail.drafts_send(&draft_id).await {
            Ok(m) => Ok(Ok(m.id)),
            // Gone between the check and the send: someone else sent it.
            Err(e) if e.is(ErrorKind::NotFound) => Ok(Ok(None)),
            Err(e) => Ok(Err(format!("sending the draft: {e}"))),
        }
    }

    /// Try every owed welcome (new users of this run, and earlier failures). `directory`
    /// gives the template fields of the users it has.
    pub async fn sweep(
        &self,
        directory: &BTreeMap<&str, &User>,
        now: DateTime<Utc>,
        report: &mut WelcomeReport,
    ) {
        let entries = match self.store.list_sync_state(WELCOME_SCOPE).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list owed welcome mail");
                report.failed += 1;
                report.failures.push(WelcomeFailure {
                    directory_id: String::new(),
                    email: String::new(),
                    error: format!("state store: {e}"),
                });
                return;
            }
        };
        for (id, value) in entries {
            let owed = serde_json::from_str::<WelcomeRecord>(&value)
                .is_ok_and(|r| r.state != WelcomeState::Sent);
            if owed {
                self.deliver(&id, directory.get(id.as_str()).copied(), now, report)
                    .await;
            }
        }
    }

    /// Owed welcomes (not yet sent), for a dry run's `would_send`.
    async fn owed(&self) -> usize {
        self.store
            .list_sync_state(WELCOME_SCOPE)
            .await
            .map(|e| {
                e.iter()
                    .filter(|(_, v)| {
                        serde_json::from_str::<WelcomeRecord>(v)
                            .is_ok_and(|r| r.state != WelcomeState::Sent)
                    })
                    .count()
            })
            .unwrap_or(0)
    }
}

enum Claim {
    Mine(WelcomeRecord),
    Busy,
    Nothing,
}

enum DeliverStep {
    Sent,
    Waiting,
    Nothing,
}

/// A directory user rebuilt from a stored row, for the template (no company name).
fn user_from_profile(p: &UserProfile) -> User {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    User {
        id: Some(p.directory_id.clone()),
        primary_email: Some(p.primary_email.clone()),
        name: Some(orgsync_wire::directory::UserName {
            given_name: opt(&p.given_name),
            family_name: opt(&p.family_name),
            full_name: opt(&p.display_name),
            ..Default::default()
        }),
        org_unit_path: opt(&p.org_unit_path),
        organizations: (p.title.is_some() || p.department.is_some()).then(|| {
            vec![orgsync_wire::directory::UserOrganization {
                title: p.title.clone(),
                department: p.department.clone(),
                primary: Some(true),
                ..Default::default()
            }]
        }),
        ..Default::default()
    }
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
