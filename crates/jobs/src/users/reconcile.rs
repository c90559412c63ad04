//! The full reconcile: one directory read, the pure plan, the guard, then chunked writes
//! each with its outbox entry (see [`super`] for why in this order).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use orgsync_client::GoogleClient;
use orgsync_core::guard::{GuardVerdict, SafetyGuard};
use orgsync_core::users::{
    AppUserDesired, DeactivationReason, ObservedAppUser, UsersPlan, UsersPlanner,
};
use orgsync_store::{ChangeOutcome, Store, UserChange};
use orgsync_wire::directory::User;

use crate::config::{Config, Deprovision};
use crate::directory::read_directory_each;
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

/// The plan as store changes and report lines, in a stable order, consuming it lazily:
/// each change is built when the writer takes it, so the plan's rows and their changes
/// are never both whole in memory.
fn changes_of(
    plan: UsersPlan,
    observed_at: DateTime<Utc>,
) -> impl Iterator<Item = (UserChange, ChangeLine)> {
    let line = |action, id: &str, email: &str, reason: Option<&str>| ChangeLine {
        action,
        directory_id: id.to_owned(),
        email: email.to_owned(),
        reason: reason.map(str::to_owned),
    };
    let upsert = move |d: &AppUserDesired| UserChange::Upsert {
        profile: profile_from_desired(d),
        observed_at,
    };
    let gone = reason_str(DeactivationReason::Gone);
    let upserts = |rows: Vec<AppUserDesired>, action: &'static str| {
        rows.into_iter().map(move |d| {
            (
                upsert(&d),
                line(action, &d.directory_id, &d.primary_email, None),
            )
        })
    };
    upserts(plan.creates, "create")
        .chain(upserts(plan.updates, "update"))
        .chain(upserts(plan.reactivations, "reactivate"))
        .chain(plan.deactivations.into_iter().map(move |x| {
            let reason = reason_str(x.reason);
            let change = match &x.desired {
                Some(d) => upsert(d),
                None => UserChange::Deactivate {
                    directory_id: x.directory_id.clone(),
                    reason: reason.to_owned(),
                    observed_at,
                },
            };
            (
                change,
                line("deactivate", &x.directory_id, &x.email, Some(reason)),
            )
        }))
        .chain(plan.deletes.into_iter().map(move |id| {
            (
                UserChange::Delete {
                    directory_id: id.clone(),
                    reason: gone.to_owned(),
                    observed_at,
                },
                line("delete", &id, "", Some(gone)),
            )
        }))
}

/// The summed latency of `users.list` calls since `before`, milliseconds.
fn users_list_ms_since(client: &GoogleClient, before: &orgsync_client::StatsSnapshot) -> u64 {
    let total = |s: &orgsync_client::StatsSnapshot| {
        s.methods
            .get("directory.users.list")
            .map_or(0, |m| m.latency_ms_total)
    };
    total(&client.stats().snapshot()).saturating_sub(total(before))
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
    let observed_rows: Vec<ObservedAppUser> = load_all_observed(store).await?;
    // A delete's report line names the stored address; only the delete policy deletes.
    let email_of: BTreeMap<String, String> = match config.users.deprovision {
        Deprovision::Delete => observed_rows
            .iter()
            .map(|r| (r.directory_id.clone(), r.email.clone()))
            .collect(),
        Deprovision::Deactivate | Deprovision::Keep => BTreeMap::new(),
    };
    // Welcome mail is owed to the users this run creates, unless it is the first full
    // reconcile (the initial import of an existing directory mails nobody), and to earlier
    // failures: the read keeps those users whole for the template, and nobody else.
    let welcomer = Welcomer::new(client, config, store);
    let mut welcome = WelcomeReport::default();
    let mut owed = BTreeSet::new();
    if let Some(w) = &welcomer {
        welcome.initial_import = store
            .get_sync_state(STATE_SCOPE, LAST_RECONCILE_KEY)
            .await?
            .is_none();
        owed = w.owed_ids().await;
    }
    let keep_for_welcome = welcomer.is_some() && !welcome.initial_import;
    let mut welcome_users: BTreeMap<String, User> = BTreeMap::new();

    // The directory is planned as it streams: each user is reduced to its app row (an
    // unchanged one to a marker) as its page arrives, and the page dropped.
    let options = plan_options(&config.users);
    let mut planner = UsersPlanner::new(observed_rows, rules, &options);
    let mut directory_read = 0usize;
    let fields = directory_fields();
    read_directory_each(
        client,
        &config.google,
        &[rules],
        "full",
        Some(&fields),
        &[],
        |read, user| {
            directory_read += 1;
            if !read.in_query(rules, &user) {
                return;
            }
            let planned = planner.add(&user, &read.groups);
            if keep_for_welcome
                && let Some(id) = user.id.as_deref().map(str::trim)
                && (owed.contains(id) || (planned && !planner.is_stored(id)))
            {
                welcome_users.insert(id.to_owned(), user);
            }
        },
    )
    .await?;
    let plan = planner.finish();
    let users_list_ms = users_list_ms_since(client, &before);
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
    // Built as they are written, a chunk at a time: the plan's rows are never copied
    // into a second whole list.
    let mut changes = changes_of(plan, observed_at).map(|(change, mut line)| {
        if line.email.is_empty()
            && let Some(e) = email_of.get(&line.directory_id)
        {
            line.email = e.clone();
        }
        (change, line)
    });
    let mut report = UsersReport {
        dry_run: opts.dry_run,
        directory_read,
        unchanged,
        users_list_ms,
        guard: Some(verdict.clone()),
        observed_at: Some(observed_at),
        ..UsersReport::default()
    };
    if let GuardVerdict::Stop {
        reason,
        what_to_check,
    } = &verdict
    {
        report.changes = changes.map(|(_, l)| l).collect();
        report.calls = calls_since(client, &before);
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Err(UsersError::Guard {
            reason: reason.clone(),
            what_to_check: what_to_check.clone(),
            report: Box::new(report),
        });
    }
    // The welcome record is written before the create, so a crash in between still sends
    // it on the next run.
    if let Some(w) = &welcomer
        && !welcome.initial_import
    {
        if opts.dry_run {
            welcome.would_send = created.iter().filter(|c| c.2).count() + owed.len();
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
        for (_, l) in changes {
            match l.action {
                "create" => report.created += 1,
                "update" => report.updated += 1,
                "reactivate" => report.reactivated += 1,
                "deactivate" => report.deactivated += 1,
                _ => report.deleted += 1,
            }
            report.changes.push(l);
        }
    } else {
        loop {
            let (batch, lines): (Vec<UserChange>, Vec<ChangeLine>) =
                changes.by_ref().take(APPLY_CHUNK).unzip();
            if batch.is_empty() {
                break;
            }
            let applied = store.apply_user_changes(&batch, now()).await?;
            drop(batch);
            for (line, (_, outcome)) in lines.into_iter().zip(&applied.outcomes) {
                if count_outcome(&mut report, *outcome) {
                    report.changes.push(line);
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
            w.sweep(&welcome_users, now(), &mut welcome).await;
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
