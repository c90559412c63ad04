//! The users reconcile's directory read.

use crate::common::Env;
use orgsync_core::scope::ScopeRules;
use orgsync_core::users::plan_users;
use orgsync_emulator::EmulatorConfig;
use orgsync_jobs::config::{RoleRuleConfig, UsersConfig};
use orgsync_jobs::directory::read_directory;

/// A role per boolean field of the generated org's `Roles` schema.
fn generated_roles() -> Vec<RoleRuleConfig> {
    ["admin", "billing", "support"]
        .into_iter()
        .map(|f| RoleRuleConfig {
            schema: "Roles".into(),
            field: f.into(),
            equals: serde_json::Value::Bool(true),
            role: f.into(),
        })
        .collect()
}

/// The users reconcile reads the directory as a partial response
/// (`users::directory_fields`). Over a generated org (custom schemas with roles, admins,
/// suspended and archived people, organisations) with a custom phone type added, the
/// partial read must plan every app row exactly as a read of whole users does. A field
/// the planner reads but the mask leaves out breaks this.
#[tokio::test]
async fn a_partial_directory_read_plans_app_users_exactly_as_a_whole_one() {
    let env = Env::start(EmulatorConfig::for_tests(60)).await;
    let members = env.member_emails().await;
    env.update_user(&members[5], |u| u.suspended = Some(true))
        .await;
    env.update_user(&members[6], |u| u.archived = Some(true))
        .await;
    env.give_desk_phone(&members[3]).await;

    let rules = ScopeRules {
        include_suspended: true,
        include_archived: true,
        ..ScopeRules::default()
    };
    let client = env.client();
    let google = &env.config.google;
    let whole = read_directory(&client, google, &[&rules], "full", None, &[])
        .await
        .unwrap();
    let fields = orgsync_jobs::users::directory_fields();
    let partial = read_directory(&client, google, &[&rules], "full", Some(&fields), &[])
        .await
        .unwrap();
    assert_eq!(whole.users.len(), partial.users.len());
    assert!(
        partial
            .users
            .iter()
            .all(|u| u.emails.is_none() && u.creation_time.is_none()),
        "the emulator ignored `fields`"
    );

    let config = UsersConfig {
        roles: generated_roles(),
        ..UsersConfig::default()
    };
    let opts = orgsync_jobs::users::plan_options(&config);
    let a = plan_users(&whole.users, &whole.groups, &rules, &[], &opts);
    let b = plan_users(&partial.users, &partial.groups, &rules, &[], &opts);
    // Not vacuous: the rows carry what the mask must bring.
    assert!(a.creates.iter().any(|r| !r.roles.is_empty()), "roles");
    assert!(a.creates.iter().any(|r| r.is_admin));
    assert!(a.creates.iter().any(|r| r.suspended) && a.creates.iter().any(|r| r.archived));
    assert!(
        a.creates
            .iter()
            .any(|r| r.title.is_some() && r.department.is_some())
    );
    assert!(
        a.creates
            .iter()
            .any(|r| r.phones.iter().any(|p| p.kind == "desk"))
    );
    assert!(a.creates.iter().all(|r| r.directory_etag.is_some()));
    assert_eq!(a.creates.len(), whole.users.len());
    assert_eq!(a.creates, b.creates);
    assert_eq!(a.deactivations, b.deactivations);
}

/// A reconcile records its run and its changes for serve's status page
/// (`orgsync_jobs::runs`): a dry run records nothing, a guard stop is recorded as such and
/// leaves the last complete run where it was.
#[tokio::test]
async fn a_reconcile_records_its_run_and_changes_and_a_dry_run_nothing() {
    use orgsync_jobs::runs::{self, JobName, RunOutcome, Trigger};
    use orgsync_jobs::users::{ReconcileOptions, UsersError, reconcile};

    let env = Env::start(EmulatorConfig::for_tests(12)).await;
    let store = env.store.as_ref();
    let client = env.client();
    let run = |opts| reconcile(&client, &env.config, store, opts, chrono::Utc::now);
    let dry = ReconcileOptions {
        dry_run: true,
        ..ReconcileOptions::default()
    };
    assert!(run(dry).await.unwrap().created > 0);
    assert_eq!(runs::last_run(store, JobName::Users).await.unwrap(), None);
    assert!(runs::recent_changes(store).await.unwrap().is_empty());

    let scheduled = ReconcileOptions {
        trigger: Trigger::Schedule,
        ..ReconcileOptions::default()
    };
    let report = run(scheduled).await.unwrap();
    let record = runs::last_run(store, JobName::Users)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.outcome, RunOutcome::Ok);
    assert_eq!(record.trigger, Trigger::Schedule);
    assert!(record.complete);
    assert_eq!(record.counts["created"], report.created as u64);
    assert_eq!(record.counts["unchanged"], report.unchanged as u64);
    let complete = runs::last_complete(store, JobName::Users).await.unwrap();
    assert_eq!(complete, Some(record.started_at));
    let changes = runs::recent_changes(store).await.unwrap();
    assert_eq!(changes.len(), report.created.min(runs::RECENT_CHANGES));
    // Newest first: the last change line applied heads the list.
    let last = report.changes.last().unwrap();
    assert_eq!(changes[0].subject, last.email);
    assert_eq!(changes[0].action, "created");

    // Half the directory gone: the guard stops the run, and says so in the record.
    let members = env.member_emails().await;
    for email in &members[..members.len() / 2] {
        env.delete_user(email).await;
    }
    let err = run(ReconcileOptions::default()).await.unwrap_err();
    let UsersError::Guard { reason, .. } = err else {
        panic!("not stopped by the guard: {err}");
    };
    let stopped = runs::last_run(store, JobName::Users)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stopped.outcome, RunOutcome::Guard);
    assert_eq!(stopped.trigger, Trigger::Manual);
    assert!(stopped.message.as_deref().unwrap().contains(&reason));
    assert_eq!(
        runs::last_complete(store, JobName::Users).await.unwrap(),
        complete
    );
    assert_eq!(runs::recent_changes(store).await.unwrap(), changes);
}

/// A role rule naming a custom attribute the Directory does not have stops the
/// reconcile before it reads or writes (exit 2), naming what exists; without the schema
/// scope delegated the run goes on as before.
#[tokio::test]
async fn a_misspelt_role_attribute_stops_the_reconcile_once_schemas_can_be_read() {
    use orgsync_jobs::users::{ReconcileOptions, UsersError, reconcile};

    let mut env = Env::start(EmulatorConfig::for_tests(6)).await;
    env.config.users.roles = vec![RoleRuleConfig {
        schema: "Roles".into(),
        field: "Billing".into(),
        equals: serde_json::Value::Bool(true),
        role: "billing".into(),
    }];
    let client = env.client();
    let dry = ReconcileOptions {
        dry_run: true,
        ..ReconcileOptions::default()
    };
    let store = env.store.as_ref();
    assert!(
        reconcile(&client, &env.config, store, dry, chrono::Utc::now)
            .await
            .is_ok(),
        "without the schema scope the check is skipped"
    );
    env.delegate_also(orgsync_wire::scopes::DIRECTORY_USERSCHEMA_READONLY);
    let err = reconcile(
        &client,
        &env.config,
        store,
        ReconcileOptions::default(),
        chrono::Utc::now,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, UsersError::UnknownAttribute(_)), "{err:?}");
    assert_eq!(err.kind(), orgsync_jobs::error::FailureKind::Config);
    let text = err.to_string();
    assert!(
        text.contains("users.roles[0]")
            && text.contains("\"Billing\"")
            && text.contains("\"billing\"?")
            && text.contains("admin, billing, support"),
        "{text}"
    );
    assert!(
        store
            .list_users(&Default::default())
            .await
            .unwrap()
            .is_empty(),
        "nothing is written"
    );
}

/// One random edit of a directory user, as an admin would make it.
#[derive(Debug, Clone)]
enum Edit {
    Suspend,
    Archive,
    Restore,
    /// Names with surrounding spaces (the mapping trims them).
    Rename(String),
    DeskPhone(String),
    Title(String),
    Role(&'static str, bool),
    Delete,
    Insert(String),
}

fn edit() -> impl proptest::strategy::Strategy<Value = Edit> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Edit::Suspend),
        Just(Edit::Archive),
        Just(Edit::Restore),
        "[A-Z][a-z]{1,6}".prop_map(|n| Edit::Rename(format!(" {n} "))),
        "[0-9]{3}".prop_map(|n| Edit::DeskPhone(format!("+1 555 0{n}"))),
        "[A-Z][a-z]{1,8}".prop_map(Edit::Title),
        (
            prop_oneof![Just("admin"), Just("billing"), Just("support")],
            any::<bool>()
        )
            .prop_map(|(f, v)| Edit::Role(f, v)),
        Just(Edit::Delete),
        "[a-z]{4,8}".prop_map(Edit::Insert),
    ]
}

async fn apply_edit(env: &Env, email: &str, edit: &Edit) {
    use orgsync_wire::directory::{UserName, UserOrganization, UserPhone};
    match edit {
        Edit::Delete => env.delete_user(email).await,
        Edit::Insert(local) => {
            env.insert_user(&format!("new.{local}"), "New", local).await;
        }
        edit => {
            env.update_user(email, |u| match edit {
                Edit::Suspend => u.suspended = Some(true),
                Edit::Archive => u.archived = Some(true),
                Edit::Restore => {
                    u.suspended = Some(false);
                    u.archived = Some(false);
                }
                Edit::Rename(n) => {
                    u.name = Some(UserName {
                        given_name: Some(n.clone()),
                        family_name: Some("Moved".into()),
                        ..Default::default()
                    })
                }
                Edit::DeskPhone(p) => {
                    u.phones = Some(vec![UserPhone {
                        value: p.clone(),
                        kind: Some("custom".into()),
                        custom_type: Some("desk".into()),
                        ..Default::default()
                    }])
                }
                Edit::Title(t) => {
                    u.organizations = Some(vec![UserOrganization {
                        title: Some(t.clone()),
                        department: Some("Edited".into()),
                        primary: Some(true),
                        ..Default::default()
                    }])
                }
                Edit::Role(field, v) => {
                    let schemas = u.custom_schemas.get_or_insert_with(Default::default);
                    let roles = schemas
                        .entry("Roles".to_owned())
                        .or_insert_with(|| serde_json::json!({}));
                    roles[*field] = serde_json::Value::Bool(*v);
                }
                _ => unreachable!(),
            })
            .await;
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 24,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// The reconcile plans as the directory streams: each user is read as a partial
    /// response and reduced to its app row (or, unchanged, to a marker) as its page
    /// arrives, and no `User` outlives its page. After random edits (suspensions,
    /// archives, restores, renames with stray spaces, custom phone types, titles, role
    /// attributes, deletions, new people), under each deprovisioning policy and three
    /// kinds of scope (everyone; an org unit plus a person by address; a query), the rows it
    /// writes must be exactly those [`plan_users`] plans from a read of whole users held
    /// in memory: a field the compact path drops, or a user it selects differently,
    /// breaks this.
    #[test]
    fn a_streamed_reconcile_writes_the_rows_a_whole_read_plans(
        edits in proptest::collection::vec((0usize..30, edit()), 1..16),
        policy in 0usize..3,
        scope in 0usize..3,
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(streamed_equals_whole(edits, policy, scope));
    }
}

/// `scope`: 0 everyone, 1 one org unit and a person outside it by address, 2 a Directory
/// `query` (the active people) that edits move people in and out of.
async fn streamed_equals_whole(edits: Vec<(usize, Edit)>, policy: usize, scope: usize) {
    use orgsync_jobs::config::Deprovision;
    use orgsync_jobs::users::{ReconcileOptions, load_all_observed, reconcile};
    use std::collections::BTreeMap;

    let mut env = Env::start(EmulatorConfig::for_tests(30)).await;
    env.config.users.roles = generated_roles();
    env.config.users.deprovision = [
        Deprovision::Deactivate,
        Deprovision::Delete,
        Deprovision::Keep,
    ][policy];
    let members = env.member_emails().await;
    if scope == 1 {
        // The first member's unit, and one person outside it named by address.
        let first = env.user_by_email(&members[0]).await;
        env.config.users.scope.org_units = vec![first.org_unit_path.unwrap_or("/".into())];
        env.config.users.scope.include = vec![members[members.len() - 1].clone()];
    }
    if scope == 2 {
        env.config.users.scope.query = Some("isSuspended=false".into());
    }
    env.config.users.scope.include_suspended = true;
    env.config.users.scope.include_archived = true;
    let client = env.client();
    let store = env.store.as_ref();
    let force = ReconcileOptions {
        force: true,
        ..ReconcileOptions::default()
    };
    reconcile(&client, &env.config, store, force, chrono::Utc::now)
        .await
        .unwrap();
    let mut deleted = std::collections::BTreeSet::new();
    for (i, edit) in &edits {
        let email = &members[i % members.len()];
        if deleted.contains(email) {
            continue;
        }
        apply_edit(&env, email, edit).await;
        if matches!(edit, Edit::Delete) {
            deleted.insert(email.clone());
        }
    }

    // What a whole read in memory plans from the rows stored now.
    let observed = load_all_observed(store).await.unwrap();
    let rules = &env.config.users.scope;
    let whole = read_directory(&client, &env.config.google, &[rules], "full", None, &[])
        .await
        .unwrap();
    let opts = orgsync_jobs::users::plan_options(&env.config.users);
    let in_query: Vec<_> = whole
        .users
        .iter()
        .filter(|u| whole.in_query(rules, u))
        .cloned()
        .collect();
    let plan = plan_users(&in_query, &whole.groups, rules, &observed, &opts);
    let mut expected: BTreeMap<String, (String, bool)> = observed
        .iter()
        .map(|o| (o.directory_id.clone(), (o.content_hash.clone(), o.active)))
        .collect();
    for d in plan
        .creates
        .iter()
        .chain(&plan.updates)
        .chain(&plan.reactivations)
        .chain(plan.deactivations.iter().filter_map(|x| x.desired.as_ref()))
    {
        expected.insert(d.directory_id.clone(), (d.content_hash(), d.active));
    }
    // A row deactivated because its user is gone keeps its content but `active`, and the
    // store hashes the row it keeps: only the flag is compared for those.
    let gone: Vec<&str> = plan
        .deactivations
        .iter()
        .filter(|x| x.desired.is_none())
        .map(|x| x.directory_id.as_str())
        .collect();
    for id in &gone {
        expected.insert((*id).to_owned(), (String::new(), false));
    }
    for id in &plan.deletes {
        expected.remove(id);
    }

    let report = reconcile(&client, &env.config, store, force, chrono::Utc::now)
        .await
        .unwrap();
    let mut written: BTreeMap<String, (String, bool)> = load_all_observed(store)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.directory_id, (o.content_hash, o.active)))
        .collect();
    for id in &gone {
        if let Some(row) = written.get_mut(*id) {
            row.0.clear();
        }
    }
    assert_eq!(written, expected);
    assert_eq!(report.created, plan.creates.len());
    assert_eq!(report.updated, plan.updates.len());
    assert_eq!(report.reactivated, plan.reactivations.len());
    assert_eq!(report.deactivated, plan.deactivations.len());
    assert_eq!(report.deleted, plan.deletes.len());
    assert_eq!(report.directory_read, whole.users.len());
    if scope == 2 && edits.iter().any(|(_, e)| matches!(e, Edit::Suspend)) {
        // Not vacuous: the query narrowed the read.
        assert!(in_query.len() < whole.users.len());
    }
}
