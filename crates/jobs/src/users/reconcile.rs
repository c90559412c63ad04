//! The full reconcile: one directory read, the pure plan, the guard, then chunked writes
//! each with its outbox entry (see [`super`] for why in this order).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use orgsync_client::GoogleClient;
use orgsync_core::guard::{GuardVerdict, SafetyGuard};
use orgsync_core::scope::ScopeRules;
use orgsync_core::users::{
    AppUserDesired, DeactivationReason, ObservedAppUser, UsersPlan, plan_users,
};
use orgsync_store::{ChangeOutcome, Store, UserChange};
use orgsync_wire::directory::User;

use crate::config::Config;
use crate::directory::read_directory;
use crate::runs::{self, AppliedChange, JobName, RunOutcome, RunRecord, Trigger};

use super::{
    APPLY_CHUNK, ChangeLine, LAST_RECONCILE_KEY, ReconcileOptions, STATE_SCOPE, UsersError,
    UsersReport, WelcomeFailure, WelcomeReport, Welcomer, load_all_observed, plan_options,
    profile_from_desired,
};

fn reason_str(r: DeactivationReason) -> &'static str {
    match r {
        DeactivationReason::Suspended => "suspended in the directory",
        DeactivationReason::Archived => "archived in the directory",
        DeactivationReason::Gone => "gone from the directory or out of scope",
    }
}

/// The store changes of a plan, with a report line each, in a stable order.
/// The plan as store changes and report lines, consuming it: each desired row is dropped
/// once converted, so the plan and its changes are never both whole in memory.
fn changes_of(plan: UsersPlan, observed_at: DateTime<Utc>) -> Vec<(UserChange, ChangeLine)> {
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
    for d in plan.creates {
        out.push((
            upsert(&d),
            line("create", &d.directory_id, &d.primary_email, None),
        ));
    }
    for d in plan.updates {
        out.push((
            upsert(&d),
            line("update", &d.directory_id, &d.primary_email, None),
        ));
    }
    for d in plan.reactivations {
        out.push((
            upsert(&d),
            line("reactivate", &d.directory_id, &d.primary_email, None),
        ));
    }
    for x in plan.deactivations {
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
    for id in plan.deletes {
        out.push((
            UserChange::Delete {
                directory_id: id.clone(),
                reason: reason_str(DeactivationReason::Gone).to_owned(),
                observed_at,
            },
            line(
                "delete",
                &id,
                "",
                Some(reason_str(DeactivationReason::Gone)),
            ),
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
///
/// A run that may write (not `dry_run`) is recorded for the status page
/// ([`crate::runs`]): its outcome (a guard stop and an error too) and its newest changes.
/// Failing to record it is a warning, never the run's failure.
pub async fn reconcile(
    client: &GoogleClient,
    config: &Config,
    store: &dyn Store,
    opts: ReconcileOptions,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<UsersReport, UsersError> {
    let started_at = now();
    let result = reconcile_unrecorded(client, config, store, opts, &now).await;
    if !opts.dry_run {
        let record = run_record(opts.trigger, started_at, now(), &result);
        let changes = applied_changes(record.finished_at, &result);
        let stored = async {
            runs::record_run(store, &record).await?;
            runs::add_changes(store, changes).await
        };
        if let Err(e) = stored.await {
            tracing::warn!(error = %e, "cannot record the users run for the status page");
        }
    }
    result
}

/// The record of a run that may have written, for [`crate::runs`].
fn run_record(
    trigger: Trigger,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    result: &Result<UsersReport, UsersError>,
) -> RunRecord {
    let mut record = RunRecord {
        job: JobName::Users,
        trigger,
        started_at,
        finished_at,
        outcome: RunOutcome::Ok,
        counts: BTreeMap::new(),
        failures: Vec::new(),
        failures_total: 0,
        message: None,
        complete: true,
    };
    let report = match result {
        Ok(report) => Some(report),
        Err(UsersError::Guard {
            reason,
            what_to_check,
            report,
        }) => {
            record.outcome = RunOutcome::Guard;
            record.message = Some(format!("{reason}; {what_to_check}"));
            Some(report.as_ref())
        }
        Err(e) => {
            record.outcome = RunOutcome::Failed;
            record.message = Some(crate::error::chain_text(e));
            None
        }
    };
    if let Some(r) = report {
        for (name, n) in [
            ("created", r.created),
            ("updated", r.updated),
            ("reactivated", r.reactivated),
            ("deactivated", r.deactivated),
            ("deleted", r.deleted),
            ("unchanged", r.unchanged),
        ] {
            record.counts.insert(name.to_owned(), n as u64);
        }
    }
    record
}

/// The newest changes a run applied (none for a guard stop or an error: nothing was
/// written), one per change line, as the status page lists them.
fn applied_changes(
    at: DateTime<Utc>,
    result: &Result<UsersReport, UsersError>,
) -> Vec<AppliedChange> {
    let Ok(report) = result else {
        return Vec::new();
    };
    let newest = report.changes.len().saturating_sub(runs::RECENT_CHANGES);
    report.changes[newest..]
        .iter()
        .map(|l| AppliedChange {
            at,
            job: JobName::Users,
            action: match l.action {
                "create" => "created",
                "update" => "updated",
                "reactivate" => "reactivated",
                "deactivate" => "deactivated",
                "delete" => "deleted",
                other => other,
            }
            .to_owned(),
            subject: if l.email.is_empty() {
                l.directory_id.clone()
            } else {
                l.email.clone()
            },
            detail: l.reason.clone(),
        })
        .collect()
}

async fn reconcile_unrecorded(
    client: &GoogleClient,
    config: &Config,
    store: &dyn Store,
    opts: ReconcileOptions,
    now: &impl Fn() -> DateTime<Utc>,
) -> Result<UsersReport, UsersError> {
    let started = Instant::now();
    crate::attributes::check(client, &config.google, &crate::attributes::of_users(config)).await?;
    let before = client.stats().snapshot();
    let observed_at = now();
    let rules = &config.users.scope;
    let fields = directory_fields();
    let read = read_directory(client, &config.google, &[rules], "full", Some(&fields), &[]).await?;
    let observed_rows: Vec<ObservedAppUser> = load_all_observed(store).await?;
    let plan = plan_users(
        &read_scope_query(&read, rules),
        &read.groups,
        rules,
        &observed_rows,
        &plan_options(&config.users),
    );
    let directory_read = read.users.len();
    // Only the welcome mail reads the directory after planning: without it the read goes
    // now, before the changes are built (at 100,000 users, the read, the plan and the
    // changes together were a first import's peak).
    let welcomer = Welcomer::new(client, config, store);
    let read = welcomer.is_some().then_some(read);
    let guard = SafetyGuard {
        max_delete_share: config.users.max_deprovision_share,
        force: opts.force,
    };
    let mut verdict = guard.check_users(&plan);
    // A Workspace always has at least the admin orgsync reads as: a read that returned
    // nobody is a failed read, and it never deprovisions anyone, not even with --force.
    if directory_read == 0 && plan.deprovisions > 0 {
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
    let email_of: BTreeMap<&str, &str> = observed_rows
        .iter()
        .map(|r| (r.directory_id.as_str(), r.email.as_str()))
        .collect();
    // What the welcome mail needs of the creates, before the plan is consumed.
    let created: Vec<(String, String, bool)> = match &welcomer {
        Some(_) => plan
            .creates
            .iter()
            .map(|d| (d.directory_id.clone(), d.primary_email.clone(), d.active))
            .collect(),
        None => Vec::new(),
    };
    let unchanged = plan.unchanged;
    let mut changes = changes_of(plan, observed_at);
    for (_, line) in &mut changes {
        if line.email.is_empty()
            && let Some(e) = email_of.get(line.directory_id.as_str())
        {
            line.email = (*e).to_owned();
        }
    }
    let mut report = UsersReport {
        dry_run: opts.dry_run,
        directory_read,
        unchanged,
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
            welcome.would_send = created.iter().filter(|c| c.2).count() + w.owed().await;
        } else {
            for (directory_id, email, _) in &created {
                if let Err(e) = w.mark_pending(directory_id, email, now()).await {
                    tracing::warn!(error = %e, %email, "cannot record an owed welcome mail");
                    welcome.failed += 1;
                    welcome.failures.push(WelcomeFailure {
                        directory_id: directory_id.clone(),
                        email: email.clone(),
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
        if let (Some(w), Some(read)) = (&welcomer, &read) {
            let users = read_scope_query(read, rules);
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

/// What the users planner reads of a directory user ([`orgsync_core::users`]: the app
/// row's names, admin flag, organisation, phones and etag, and role rules over custom
/// schemas). Asking for only these (Google's partial response) keeps the rest of each
/// user off the wire and out of memory. A field the planner starts to read must be added
/// here: `a_partial_directory_read_plans_app_users_exactly_as_a_whole_one` fails otherwise.
pub const APP_USER_FIELDS: &str = "etag,name(givenName,familyName,fullName),isAdmin,\
    organizations(department,title,primary),phones(value,type,customType),customSchemas";

/// The `fields` of the users reconcile's directory read: the planner's and the scope's.
pub fn directory_fields() -> String {
    format!("{},{APP_USER_FIELDS}", crate::directory::SCOPE_FIELDS)
}

/// The users a scope's Directory `query` leaves (all of them without a query; an explicit
/// `include` still reaches people outside it), as [`crate::directory::DirectoryRead::select`].
/// Borrowed when there is no query: the read is never copied whole (at 100,000 people
/// the copy was half a gigabyte).
fn read_scope_query<'a>(
    read: &'a crate::directory::DirectoryRead,
    rules: &ScopeRules,
) -> std::borrow::Cow<'a, [User]> {
    match &rules.query {
        None => std::borrow::Cow::Borrowed(&read.users),
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
            std::borrow::Cow::Owned(
                read.users
                    .iter()
                    .filter(|u| u.id.as_ref().is_some_and(|id| keep.contains(id)))
                    .cloned()
                    .collect(),
            )
        }
    }
}
