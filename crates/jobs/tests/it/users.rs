//! The users reconcile's directory read.

use crate::common::Env;
use orgsync_core::scope::ScopeRules;
use orgsync_core::users::plan_users;
use orgsync_emulator::EmulatorConfig;
use orgsync_jobs::config::{RoleRuleConfig, UsersConfig};
use orgsync_jobs::directory::read_directory;

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
        roles: ["admin", "billing", "support"]
            .into_iter()
            .map(|f| RoleRuleConfig {
                schema: "Roles".into(),
                field: f.into(),
                equals: serde_json::Value::Bool(true),
                role: f.into(),
            })
            .collect(),
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
