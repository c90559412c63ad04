//! Directory → SCIM 2.0 applications (`[[scim]]`, `orgsync scim sync`): the executor
//! around [`orgsync_core::scim`]'s planner.
//!
//! One run reads the directory once for every target, then for each target: asks the
//! server what it supports, lists its Users (and Groups when groups are configured),
//! plans users, lets the [`SafetyGuard`] judge the deprovisioning, applies, plans again
//! for the managers of people created in this run, then plans and applies groups.
//!
//! The links (directory id → SCIM id) orgsync keeps per target are sync-state entries in
//! scopes `scim.<name>.users` and `scim.<name>.groups`, written in batches as operations
//! finish, so a killed run keeps what it did; a run that lost a link finds the resource
//! again by `externalId`. What never happens:
//! - a duplicate: a 409 on create means look the resource up and adopt it;
//! - a lost update: a 404 on update means the app deleted it, so it is created again;
//!   a 412 (stale ETag) re-reads it and applies the difference once more;
//! - one application's outage failing another's run: each target's result is its own,
//!   and a server that stays down stops only its own target's remaining operations.
//!
//! `report.rs` is what a run reports (and a dry run prints); `apply.rs` sends a plan's
//! operations with their recoveries and keeps the links.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use orgsync_client::GoogleClient;
use orgsync_client::directory::GroupsListParams;
use orgsync_core::guard::{GuardVerdict, SafetyGuard};
use orgsync_core::scim::{
    DesiredGroup, DesiredUser, ObservedGroup, ObservedUser, ScimUser, UserOp, UsersPlan,
    UsersPlanOptions, desired_user, plan_groups, plan_users,
};
use orgsync_scim::{Features, Resource, ScimClient};
use orgsync_store::Store;

use crate::config::{Config, ConfigError, ScimTargetConfig};
use crate::directory::{DirectoryRead, read_directory};
use crate::error::FailureKind;

mod apply;
mod report;

use apply::{LinkWriter, apply_groups, apply_users, observed_from};
pub use report::{ChangeLine, GroupCounts, ScimReport, UserCounts};
use report::{count_group_plan, count_user_plan, planned_group_lines, planned_user_lines};

/// The sync-state scope of a target's user links.
pub fn users_scope(target: &str) -> String {
    format!("scim.{target}.users")
}

/// The sync-state scope of a target's group links.
pub fn groups_scope(target: &str) -> String {
    format!("scim.{target}.groups")
}

/// Told how a run advances: the CLI draws a bar with it on a terminal.
pub trait ScimProgress: Send + Sync {
    /// `what` (`aws: users`, `aws: groups`) is about to send `operations` operations.
    fn started(&self, what: &str, operations: usize);
    /// `n` more operations finished (applied, refused or skipped).
    fn done(&self, n: usize);
    /// The run is over.
    fn finished(&self);
}

/// No progress to show (serve, tests, benchmarks).
pub struct NoProgress;

impl ScimProgress for NoProgress {
    fn started(&self, _: &str, _: usize) {}
    fn done(&self, _: usize) {}
    fn finished(&self) {}
}

/// Options of one run.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScimOptions {
    /// Plan and report every operation; send nothing but reads.
    pub dry_run: bool,
    /// Proceed when the guard would stop.
    pub force: bool,
    /// What started the run, for its record ([`crate::runs`]).
    pub trigger: crate::runs::Trigger,
}

/// Why a target's run failed.
#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading the directory failed, nothing was written: {0}")]
    Directory(#[source] orgsync_client::Error),
    #[error("SCIM server: {0}")]
    Server(#[source] orgsync_scim::Error),
    #[error("the state store failed: {0}")]
    Store(#[from] orgsync_store::StoreError),
    /// The server refused an operation (a push-driven refresh reports it as a failure,
    /// so the job is retried and shows in the failed jobs).
    #[error("SCIM server refused: {0}")]
    Refused(String),
    #[error("{reason}")]
    Guard {
        reason: String,
        what_to_check: String,
        report: Box<ScimReport>,
    },
    /// A custom attribute the config names does not exist in the Directory.
    #[error(transparent)]
    UnknownAttribute(#[from] crate::attributes::UnknownAttribute),
}

impl ScimError {
    pub fn kind(&self) -> FailureKind {
        match self {
            ScimError::Config(_) | ScimError::UnknownAttribute(_) => FailureKind::Config,
            ScimError::Directory(e) => FailureKind::Google(e.kind()),
            ScimError::Server(e) => FailureKind::Application {
                temporary: e.is_outage(),
            },
            ScimError::Store(_) => FailureKind::Store,
            ScimError::Refused(_) => FailureKind::Application { temporary: false },
            ScimError::Guard { .. } => FailureKind::Guard,
        }
    }
}

/// The directory as every target of a run needs it.
pub struct ScimDirectory {
    pub read: DirectoryRead,
    /// Group email (lower-case) → (directory id, name, flattened member ids).
    pub groups: HashMap<String, (String, String, BTreeSet<String>)>,
    /// A target's `groups_query` → the emails (lower-case) of the groups it returned.
    pub queried: HashMap<String, BTreeSet<String>>,
    /// Manager email (lower-case) → directory id, over every directory user.
    pub managers: HashMap<String, String>,
}

/// What [`orgsync_core::scim::desired_user`] reads of a directory user: names, the primary
/// organisation, the employee number (`externalIds`), phones and the manager (`relations`);
/// custom schemas are added by the read when an attribute maps one. Asking for only these
/// (Google's partial response) keeps the rest of each user off the wire and out of memory.
/// A field the mapping starts to read must be added here:
/// `a_partial_directory_read_maps_scim_users_exactly_as_a_whole_one` fails otherwise.
pub const SCIM_USER_FIELDS: &str = "name(givenName,familyName,fullName),\
    organizations(primary,title,department,name,costCenter),externalIds(type,value),\
    phones(value,type,primary),relations(type,value)";

/// The `fields` of the SCIM run's directory read: the mapping's and the scope's.
pub fn directory_fields() -> String {
    format!("{},{SCIM_USER_FIELDS}", crate::directory::SCOPE_FIELDS)
}

/// Read the directory for `targets`: users (the union of their scopes' needs), and the
/// configured groups with their members, nested groups flattened.
pub async fn read_for(
    google: &GoogleClient,
    config: &Config,
    targets: &[&ScimTargetConfig],
) -> Result<ScimDirectory, ScimError> {
    let rules: Vec<&crate::config::ScopeConfig> = targets
        .iter()
        .map(|t| t.users.as_ref().unwrap_or(&config.users.scope))
        .collect();
    let schemas: Vec<&str> = targets
        .iter()
        .flat_map(|t| t.attributes.iter().map(|a| a.schema.as_str()))
        .collect();
    let read = read_directory(
        google,
        &config.google,
        &rules,
        "basic",
        Some(&directory_fields()),
        &schemas,
    )
    .await
    .map_err(ScimError::Directory)?;
    let managers = read
        .users
        .iter()
        .filter_map(|u| Some((u.primary_email.as_ref()?.to_lowercase(), u.id.clone()?)))
        .collect();
    let mut wanted: BTreeSet<String> = targets
        .iter()
        .flat_map(|t| t.groups.iter().map(|g| g.trim().to_lowercase()))
        .collect();
    let mut groups = HashMap::new();
    let mut queried: HashMap<String, BTreeSet<String>> = HashMap::new();
    let queries: BTreeSet<&String> = targets
        .iter()
        .filter_map(|t| t.groups_query.as_ref())
        .collect();
    if !wanted.is_empty() || !queries.is_empty() {
        let directory = google.directory();
        let params = GroupsListParams {
            customer: config.google.customer.clone(),
            domain: if config.google.customer.is_none() {
                config.google.domain.clone()
            } else {
                None
            },
            ..GroupsListParams::default()
        };
        let mut known: Vec<orgsync_wire::directory::Group> = Vec::new();
        for query in queries {
            let found: Vec<orgsync_wire::directory::Group> = directory
                .groups_list(GroupsListParams {
                    query: Some(query.clone()),
                    ..params.clone()
                })
                .try_collect()
                .await
                .map_err(ScimError::Directory)?;
            let emails: BTreeSet<String> = found.iter().map(|g| g.email.to_lowercase()).collect();
            wanted.extend(emails.iter().cloned());
            queried.insert(query.clone(), emails);
            known.extend(found);
        }
        let find = |groups: &'_ [orgsync_wire::directory::Group], email: &str| {
            groups.iter().position(|g| {
                g.email.eq_ignore_ascii_case(email)
                    || g.aliases
                        .iter()
                        .flatten()
                        .any(|a| a.eq_ignore_ascii_case(email))
            })
        };
        // The queries' answers already hold their groups: the whole list is read only
        // for groups named in `groups` that no query returned.
        if wanted.iter().any(|e| find(&known, e).is_none()) {
            let all: Vec<orgsync_wire::directory::Group> = directory
                .groups_list(params)
                .try_collect()
                .await
                .map_err(ScimError::Directory)?;
            known.extend(all);
        }
        for email in &wanted {
            let group = find(&known, email).map(|i| &known[i]);
            let Some(group) = group else {
                return Err(ScimError::Config(ConfigError::Invalid(format!(
                    "scim groups: {email} is not a group of this directory (check the address; \
                     nothing was written)"
                ))));
            };
            let mut members = BTreeSet::new();
            let mut stream = std::pin::pin!(directory.members_list(&group.email, true, None));
            while let Some(m) = stream.try_next().await.map_err(ScimError::Directory)? {
                let is_user = m
                    .kind_of_member
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case("USER"));
                if let (true, Some(id)) = (is_user, m.id) {
                    members.insert(id);
                }
            }
            let id = group.id.clone().unwrap_or_else(|| group.email.clone());
            let name = group.name.clone().unwrap_or_else(|| group.email.clone());
            groups.insert(email.clone(), (id, name, members));
        }
    }
    Ok(ScimDirectory {
        read,
        groups,
        queried,
        managers,
    })
}

/// Who a target provisions. Status is not scope: a suspended or archived person in
/// scope is deactivated (a fact the directory states), not treated as gone; hiding
/// someone from the Global Address List says nothing about their apps.
fn scope_rules(config: &Config, target: &ScimTargetConfig) -> crate::config::ScopeConfig {
    crate::config::ScopeConfig {
        include_suspended: true,
        include_archived: true,
        include_hidden_from_gal: true,
        ..target
            .users
            .clone()
            .unwrap_or_else(|| config.users.scope.clone())
    }
}

/// A client of the target's server that knows what the server supports.
async fn client_for(config: &Config, target: &ScimTargetConfig) -> Result<ScimClient, ScimError> {
    let token = target.token()?;
    let mut client = ScimClient::new(
        &target.url,
        token,
        target.quirks(),
        Duration::from_secs(target.timeout_secs),
    )
    .map_err(ScimError::Server)?;
    if let Some(budget) = config.google.retry_budget_secs {
        client = client.with_retry(orgsync_client::retry::RetryPolicy {
            max_elapsed: Duration::from_secs(budget),
            ..Default::default()
        });
    }
    client.discover().await.map_err(ScimError::Server)?;
    Ok(client)
}

fn plan_options(target: &ScimTargetConfig) -> UsersPlanOptions {
    UsersPlanOptions {
        deprovision: target.deprovision,
        user_name_exact: target.user_name_case == orgsync_core::scim::UserNameCase::Lower,
    }
}

/// What the app supports, having checked that it answers and accepts the token: one
/// `ServiceProviderConfig` read and a one-user listing (`orgsync doctor`). Writes nothing.
pub async fn probe(config: &Config, target: &ScimTargetConfig) -> Result<Features, ScimError> {
    let mut config = config.clone();
    // doctor answers in seconds: no five-minute retry budget.
    config.google.retry_budget_secs = Some(5);
    let client = client_for(&config, target).await?;
    client
        .find(Resource::Users, "userName", "orgsync-doctor-probe@invalid")
        .await
        .map_err(ScimError::Server)?;
    Ok(client.features)
}

/// A failed [`probe`] as a doctor line and its fix.
pub fn explain(target: &ScimTargetConfig, e: &ScimError) -> (String, String) {
    let url = &target.url;
    match e {
        ScimError::Config(c) => (
            c.to_string(),
            "write the app's SCIM bearer token to token_file (chmod 600), or set the variable \
             token_env names"
                .into(),
        ),
        ScimError::Server(s) if s.is_auth() => (
            format!("{url} refused the token ({s})"),
            "the token was revoked, expired or mistyped: create a new SCIM token in the app's \
             admin settings and write it to token_file"
                .into(),
        ),
        ScimError::Server(s) if s.status() == Some(404) => (
            format!("{url} has no SCIM Users endpoint ({s})"),
            "url must be the SCIM base URL the app shows, the one /Users is under (often ending \
             in /scim/v2)"
                .into(),
        ),
        ScimError::Server(s) if s.is_outage() => (
            format!("{url} does not answer ({s})"),
            "check the URL, DNS and that this machine may reach the app (proxy, firewall)".into(),
        ),
        other => (
            format!("{url}: {other}"),
            "check url and the compatibility switches of this [[scim]] table (README.md, \
             \"Provision apps over SCIM\")"
                .into(),
        ),
    }
}

/// Apply one directory user to one target: the work of a push notification. The user
/// is re-read (`users.get`; a 404 means deleted), its resource found by the stored link,
/// else by `externalId`, else by `userName`, and the same planner decides, on just this
/// user. Groups are not touched: the Directory sends no push for membership, and the
/// scheduled run keeps them.
pub async fn refresh_user(
    google: &GoogleClient,
    config: &Config,
    target: &ScimTargetConfig,
    store: &dyn Store,
    user_key: &str,
    now: fn() -> DateTime<Utc>,
) -> Result<ScimReport, ScimError> {
    let started = Instant::now();
    let mut report = ScimReport {
        target: target.name.clone(),
        url: target.url.clone(),
        ..ScimReport::default()
    };
    let directory = google.directory();
    let projection = if target.attributes.is_empty() {
        "basic"
    } else {
        "full"
    };
    let user = match directory.users_get(user_key, Some(projection), None).await {
        Ok(u) => Some(u),
        Err(e) if e.is(orgsync_client::ErrorKind::NotFound) => None,
        Err(e) => return Err(ScimError::Directory(e)),
    };
    report.directory_read = usize::from(user.is_some());
    let rules = scope_rules(config, target);
    let dir_id = user
        .as_ref()
        .and_then(|u| u.id.clone())
        .unwrap_or_else(|| user_key.to_string());
    let mut desired: Vec<DesiredUser> = Vec::new();
    if let Some(u) = &user {
        let groups = crate::users::membership_for(google, &config.google, &rules, u)
            .await
            .map_err(ScimError::Directory)?;
        let in_query = crate::users::in_scope_query(google, &config.google, &rules, u)
            .await
            .map_err(ScimError::Directory)?;
        if in_query && rules.selects(u, &groups) {
            let mut managers = HashMap::new();
            if let Some(m) = orgsync_core::scim::manager_email(u) {
                match directory.users_get(&m, Some("basic"), None).await {
                    Ok(mu) => {
                        if let Some(id) = mu.id {
                            managers.insert(m, id);
                        }
                    }
                    Err(e) if e.is(orgsync_client::ErrorKind::NotFound) => {}
                    Err(e) => return Err(ScimError::Directory(e)),
                }
            }
            desired.extend(desired_user(u, &target.mapping(), &managers));
        }
    }
    report.selected = desired.len();

    let client = client_for(config, target).await?;
    let scope = users_scope(&target.name);
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut observed: Vec<ObservedUser> = Vec::new();
    let get = |id: String| {
        let client = &client;
        async move {
            match client.get(Resource::Users, &id).await {
                Ok(r) => Ok(Some(observed_from(&r, &id, &ScimUser::default()))),
                Err(e) if e.status() == Some(404) => Ok(None),
                Err(e) => Err(ScimError::Server(e)),
            }
        }
    };
    if let Some(id) = store.get_sync_state(&scope, &dir_id).await? {
        links.insert(dir_id.clone(), id.clone());
        observed.extend(get(id).await?);
    }
    if observed.is_empty()
        && let Some(d) = desired.first()
    {
        for (attr, value) in [
            ("externalId", d.directory_id.as_str()),
            ("userName", d.attrs.user_name.as_str()),
        ] {
            let found = client
                .find(Resource::Users, attr, value)
                .await
                .map_err(ScimError::Server)?;
            observed.extend(found.iter().filter_map(|r| {
                let id = r.get("id")?.as_str()?;
                Some(observed_from(r, id, &ScimUser::default()))
            }));
            if !observed.is_empty() {
                break;
            }
        }
    }
    // The manager's resource, only to know their SCIM id.
    if let Some(m) = desired.first().and_then(|d| d.manager_id.clone())
        && let Some(id) = store.get_sync_state(&scope, &m).await?
        && let Some(o) = get(id.clone()).await?
    {
        links.insert(m, id);
        observed.push(o);
    }
    let mut plan = plan_users(&desired, &observed, &links, &plan_options(target));
    // Only this user's operations: the manager is here to be referred to, not planned.
    plan.ops.retain(|op| op.directory_id() == dir_id);
    report.conflicts = plan.conflicts.clone();
    report.users.unchanged = plan.unchanged;
    let mut observed_map: BTreeMap<String, ObservedUser> =
        observed.into_iter().map(|o| (o.id.clone(), o)).collect();
    let mut writer = LinkWriter::new(store, scope, now, &NoProgress);
    apply_users(
        &client,
        plan,
        1,
        &mut observed_map,
        &mut links,
        &mut writer,
        &mut report,
    )
    .await?;
    report.finish(&client, started);
    if let Some(o) = &report.outage {
        return Err(ScimError::Server(orgsync_scim::Error::Transport {
            method: "SCIM".into(),
            path: target.url.clone(),
            message: o.clone(),
        }));
    }
    if !report.failures.is_empty() {
        return Err(ScimError::Refused(report.failures.join("; ")));
    }
    Ok(report)
}

/// Run one target.
pub async fn sync_target(
    dir: &ScimDirectory,
    config: &Config,
    target: &ScimTargetConfig,
    store: &dyn Store,
    opts: ScimOptions,
    now: fn() -> DateTime<Utc>,
    progress: &dyn ScimProgress,
) -> Result<ScimReport, ScimError> {
    let started = Instant::now();
    let mut report = ScimReport {
        target: target.name.clone(),
        url: target.url.clone(),
        dry_run: opts.dry_run,
        directory_read: dir.read.users.len(),
        ..ScimReport::default()
    };
    let client = client_for(config, target).await?;
    report.features = Some(client.features);

    // Desired users.
    let rules = scope_rules(config, target);
    let mapping = target.mapping();
    let desired: Vec<DesiredUser> = dir
        .read
        .selected(&rules)
        .filter_map(|u| desired_user(u, &mapping, &dir.managers))
        .collect();
    report.selected = desired.len();

    // What the server holds, and what orgsync linked before.
    let observed_list: Vec<ObservedUser> = client
        .list(Resource::Users)
        .await
        .map_err(ScimError::Server)?
        .iter()
        .filter_map(|r| {
            let id = r.get("id")?.as_str()?;
            Some(observed_from(r, id, &ScimUser::default()))
        })
        .collect();
    let mut links: BTreeMap<String, String> = store
        .list_sync_state(&users_scope(&target.name))
        .await?
        .into_iter()
        .collect();

    let plan_opts = plan_options(target);
    let plan = plan_users(&desired, &observed_list, &links, &plan_opts);
    report.users.unchanged = plan.unchanged;
    report.users.unmanaged = plan.unmanaged;
    report.users.not_created_inactive = plan.not_created_inactive;
    report.conflicts = plan.conflicts.clone();
    let guard = SafetyGuard {
        max_delete_share: target.max_deprovision_share,
        force: opts.force,
    };
    let verdict =
        guard.check_scim_users(&target.name, &plan, report.selected, report.directory_read);
    report.guard = Some(verdict.clone());
    if let GuardVerdict::Stop {
        reason,
        what_to_check,
    } = verdict
    {
        count_user_plan(&plan, &mut report.users);
        report.changes = planned_user_lines(&plan);
        report.finish(&client, started);
        return Err(ScimError::Guard {
            reason,
            what_to_check,
            report: Box::new(report),
        });
    }

    // Desired groups (members as directory ids).
    let mut group_emails: BTreeSet<String> = target
        .groups
        .iter()
        .map(|g| g.trim().to_lowercase())
        .collect();
    if let Some(q) = &target.groups_query {
        group_emails.extend(dir.queried.get(q).into_iter().flatten().cloned());
    }
    let desired_groups: Vec<DesiredGroup> = group_emails
        .iter()
        .filter_map(|email| dir.groups.get(email))
        .map(|(id, name, members)| DesiredGroup {
            directory_id: id.clone(),
            display_name: name.clone(),
            members: members.clone(),
        })
        .collect();
    let mut group_links: BTreeMap<String, String> = store
        .list_sync_state(&groups_scope(&target.name))
        .await?
        .into_iter()
        .collect();
    let observed_groups: Vec<ObservedGroup> = if desired_groups.is_empty() && group_links.is_empty()
    {
        Vec::new()
    } else {
        client
            .list(Resource::Groups)
            .await
            .map_err(ScimError::Server)?
            .iter()
            .filter_map(ObservedGroup::from_resource)
            .collect()
    };

    if opts.dry_run {
        count_user_plan(&plan, &mut report.users);
        report.changes = planned_user_lines(&plan);
        // People this plan would create have no SCIM id yet: stand-ins let the groups
        // plan count their memberships.
        let mut predicted = links.clone();
        for op in &plan.ops {
            match op {
                UserOp::Create { directory_id, .. } => {
                    predicted.insert(directory_id.clone(), format!("(new) {directory_id}"));
                }
                UserOp::Adopt {
                    directory_id, id, ..
                } => {
                    predicted.insert(directory_id.clone(), id.clone());
                }
                _ => {}
            }
        }
        let gplan = plan_groups(&desired_groups, &observed_groups, &group_links, &predicted);
        report.groups.unchanged = gplan.unchanged;
        report.groups.unmanaged = gplan.unmanaged;
        report.groups.members_not_provisioned = gplan.members_not_provisioned;
        let verdict = guard.check_scim_groups(&target.name, &gplan, desired_groups.len());
        if !verdict.may_proceed() || report.guard == Some(GuardVerdict::Proceed) {
            report.guard = Some(verdict);
        }
        count_group_plan(&gplan, &mut report.groups);
        report.changes.extend(planned_group_lines(&gplan));
        report.finish(&client, started);
        return Ok(report);
    }

    // Users (in waves of creates), then a pass for managers still unset (a cycle).
    let mut observed: BTreeMap<String, ObservedUser> = observed_list
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
    let mut writer = LinkWriter::new(store, users_scope(&target.name), now, progress);
    let concurrency = target.concurrency.max(1);
    progress.started(
        &format!("{}: users", target.name),
        plan.ops
            .iter()
            .filter(|op| !matches!(op, UserOp::Forget { .. }))
            .count(),
    );
    // Creates go in waves down the management chain: someone whose manager this plan
    // also creates waits for the next wave, when the manager has a SCIM id to refer to,
    // so a first sync costs one POST per person instead of a POST and a PATCH.
    let managers: HashMap<&str, &str> = desired
        .iter()
        .filter_map(|d| Some((d.directory_id.as_str(), d.manager_id.as_deref()?)))
        .collect();
    let mut plan = plan;
    loop {
        let creating: BTreeSet<String> = plan
            .ops
            .iter()
            .filter_map(|op| match op {
                UserOp::Create { directory_id, .. } => Some(directory_id.clone()),
                _ => None,
            })
            .collect();
        let (deferred, ready): (Vec<UserOp>, Vec<UserOp>) =
            plan.ops.into_iter().partition(|op| match op {
                UserOp::Create { directory_id, .. } => managers
                    .get(directory_id.as_str())
                    .is_some_and(|m| creating.contains(*m)),
                _ => false,
            });
        // A management cycle would defer everyone in it: create them all now.
        let (wave, more) = if ready.is_empty() {
            (deferred, false)
        } else {
            let more = !deferred.is_empty();
            (ready, more)
        };
        apply_users(
            &client,
            UsersPlan {
                ops: wave,
                ..UsersPlan::default()
            },
            concurrency,
            &mut observed,
            &mut links,
            &mut writer,
            &mut report,
        )
        .await?;
        if !more || report.outage.is_some() {
            break;
        }
        let now_observed: Vec<ObservedUser> = observed.values().cloned().collect();
        let next = plan_users(&desired, &now_observed, &links, &plan_opts);
        plan = UsersPlan {
            // The next wave's creates; what the first plan held besides is applied.
            ops: next
                .ops
                .into_iter()
                .filter(|op| matches!(op, UserOp::Create { .. }))
                .collect(),
            ..UsersPlan::default()
        };
    }
    if report.outage.is_none() {
        let counted_updates = report.users.updated;
        let now_observed: Vec<ObservedUser> = observed.values().cloned().collect();
        let second = plan_users(&desired, &now_observed, &links, &plan_opts);
        let second: UsersPlan = UsersPlan {
            // Only managers the waves could not set (a management cycle); a conflict or
            // a failure above is already reported and waits for the next run.
            ops: second
                .ops
                .into_iter()
                .filter(|op| {
                    matches!(op, UserOp::Update { changes, .. }
                        if changes.iter().all(|c| c.attr == orgsync_core::scim::Attr::Manager))
                })
                .collect(),
            ..UsersPlan::default()
        };
        apply_users(
            &client,
            second,
            concurrency,
            &mut observed,
            &mut links,
            &mut writer,
            &mut report,
        )
        .await?;
        // A manager set after the creates changes a user already counted.
        report.users.updated = counted_updates;
    }

    // Groups.
    if report.outage.is_none() && (!desired_groups.is_empty() || !group_links.is_empty()) {
        let gplan = plan_groups(&desired_groups, &observed_groups, &group_links, &links);
        report.groups.unchanged = gplan.unchanged;
        report.groups.unmanaged = gplan.unmanaged;
        report.groups.members_not_provisioned = gplan.members_not_provisioned;
        let verdict = guard.check_scim_groups(&target.name, &gplan, desired_groups.len());
        if let GuardVerdict::Stop {
            reason,
            what_to_check,
        } = verdict
        {
            report.guard = Some(GuardVerdict::Stop {
                reason: reason.clone(),
                what_to_check: what_to_check.clone(),
            });
            report.finish(&client, started);
            return Err(ScimError::Guard {
                reason: format!("{reason} (users were applied)"),
                what_to_check,
                report: Box::new(report),
            });
        }
        if matches!(verdict, GuardVerdict::Forced { .. }) {
            report.guard = Some(verdict);
        }
        let desired_by_id: HashMap<String, (String, Vec<String>)> = desired_groups
            .iter()
            .map(|g| {
                let members = g
                    .members
                    .iter()
                    .filter_map(|m| links.get(m).cloned())
                    .collect();
                (g.directory_id.clone(), (g.display_name.clone(), members))
            })
            .collect();
        let groups_touched: BTreeSet<&str> = gplan.ops.iter().map(|op| op.directory_id()).collect();
        progress.started(&format!("{}: groups", target.name), groups_touched.len());
        let mut writer = LinkWriter::new(store, groups_scope(&target.name), now, progress);
        apply_groups(
            &client,
            gplan,
            &desired_by_id,
            concurrency,
            &mut group_links,
            &mut writer,
            &mut report,
        )
        .await?;
    }
    report.finish(&client, started);
    Ok(report)
}

/// Run every target (or the one named `only`): the directory is read once; each
/// target's result is its own.
pub async fn sync(
    google: &GoogleClient,
    config: &Config,
    store: &dyn Store,
    only: Option<&str>,
    opts: ScimOptions,
) -> Result<Vec<(String, Result<ScimReport, ScimError>)>, ScimError> {
    sync_with(google, config, store, only, opts, &NoProgress).await
}

/// [`sync`], telling `progress` how each target's run advances.
pub async fn sync_with(
    google: &GoogleClient,
    config: &Config,
    store: &dyn Store,
    only: Option<&str>,
    opts: ScimOptions,
    progress: &dyn ScimProgress,
) -> Result<Vec<(String, Result<ScimReport, ScimError>)>, ScimError> {
    let targets: Vec<&ScimTargetConfig> = config
        .scim
        .iter()
        .filter(|t| only.is_none_or(|n| n == t.name))
        .collect();
    if targets.is_empty() {
        return Err(ScimError::Config(ConfigError::Invalid(match only {
            Some(n) => {
                let names: Vec<&str> = config.scim.iter().map(|t| t.name.as_str()).collect();
                format!(
                    "no [[scim]] target is named {n:?} (configured: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )
            }
            None => "no [[scim]] target is configured: add one to orgsync.toml (see the \
                     README's \"Provision apps over SCIM\")"
                .into(),
        })));
    }
    let started = Utc::now();
    crate::attributes::check(google, &config.google, &crate::attributes::of_scim(config)).await?;
    let dir = match read_for(google, config, &targets).await {
        Ok(dir) => dir,
        Err(e) => {
            if !opts.dry_run {
                record(store, opts, started, only.is_none(), &[], Some(&e)).await;
            }
            return Err(e);
        }
    };
    let mut out = Vec::new();
    for t in targets {
        let result = sync_target(&dir, config, t, store, opts, Utc::now, progress).await;
        out.push((t.name.clone(), result));
    }
    progress.finished();
    if !opts.dry_run {
        record(store, opts, started, only.is_none(), &out, None).await;
    }
    Ok(out)
}

/// The run's record and its changes for the status page ([`crate::runs`]): every target
/// of the run in one record. A store error here is a warning: the record is a display.
async fn record(
    store: &dyn Store,
    opts: ScimOptions,
    started: DateTime<Utc>,
    every_target: bool,
    results: &[(String, Result<ScimReport, ScimError>)],
    failed: Option<&ScimError>,
) {
    use crate::runs::{AppliedChange, JobName, RunFailure, RunOutcome, RunRecord};
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut changes = Vec::new();
    let mut guard = None;
    let now = Utc::now();
    for (name, result) in results {
        let report = match result {
            Ok(r) => Some(r),
            Err(ScimError::Guard { reason, .. }) => {
                guard.get_or_insert_with(|| reason.clone());
                failures.push(RunFailure {
                    subject: format!("scim '{name}'"),
                    reason: reason.clone(),
                });
                None
            }
            Err(e) => {
                failures.push(RunFailure {
                    subject: format!("scim '{name}'"),
                    reason: e.to_string(),
                });
                None
            }
        };
        let Some(r) = report else { continue };
        let u = &r.users;
        let g = &r.groups;
        for (k, v) in [
            ("created", u.created),
            ("adopted", u.adopted),
            ("updated", u.updated),
            ("deactivated", u.deactivated),
            ("reactivated", u.reactivated),
            ("deleted", u.deleted),
            ("unchanged", u.unchanged),
            ("groups_created", g.created),
            ("groups_deleted", g.deleted),
            ("members_added", g.members_added),
            ("members_removed", g.members_removed),
        ] {
            *counts.entry(k.to_string()).or_default() += v as u64;
        }
        for f in &r.failures {
            failures.push(RunFailure {
                subject: format!("scim '{name}'"),
                reason: f.clone(),
            });
        }
        if let Some(o) = &r.outage {
            failures.push(RunFailure {
                subject: format!("scim '{name}'"),
                reason: format!("stopped: the server stopped answering ({o})"),
            });
        }
        changes.extend(r.changes.iter().map(|c| AppliedChange {
            at: now,
            job: JobName::Scim,
            action: c.action.clone(),
            subject: c.name.clone(),
            detail: Some(format!("SCIM app '{name}'")),
        }));
    }
    let outcome = if failed.is_some() {
        RunOutcome::Failed
    } else if guard.is_some() {
        RunOutcome::Guard
    } else if failures.is_empty() {
        RunOutcome::Ok
    } else {
        RunOutcome::Partial
    };
    let record = RunRecord {
        job: JobName::Scim,
        trigger: opts.trigger,
        started_at: started,
        finished_at: Utc::now(),
        outcome,
        counts,
        failures: Vec::new(),
        failures_total: 0,
        message: failed.map(|e| e.to_string()).or(guard),
        complete: every_target && outcome == RunOutcome::Ok,
    }
    .with_failures(failures);
    if let Err(e) = crate::runs::record_run(store, &record).await {
        tracing::warn!(error = %e, "cannot record the SCIM run for the status page");
    }
    if !changes.is_empty()
        && let Err(e) = crate::runs::add_changes(store, changes).await
    {
        tracing::warn!(error = %e, "cannot add the SCIM changes to the status page's list");
    }
}
