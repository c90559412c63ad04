//! `orgsync scim sync` against a real, independent SCIM server (scim2-server), with the
//! directory in the emulator. After each step the server's state, read through its own
//! HTTP API, is compared with the directory field by field.

use std::collections::{BTreeMap, BTreeSet};

use orgsync_core::scim::ScimDeprovision;
use orgsync_core::scope::ScopeRules;
use orgsync_emulator::EmulatorConfig;
use orgsync_jobs::config::ScimTargetConfig;
use orgsync_jobs::scim::{ScimError, ScimOptions, ScimReport, sync};
use orgsync_testkit::scim::{ScimServer, TOKEN};
use serde_json::{Value, json};

use crate::common::Env;

const ENTERPRISE: &str = orgsync_core::scim::ENTERPRISE;

struct Scim {
    env: Env,
    /// The admin with the group scope: changes membership.
    groups_admin: orgsync_client::GoogleClient,
    server: ScimServer,
    _dir: tempfile::TempDir,
}

impl Scim {
    async fn start(users: usize, groups: &[&str]) -> Scim {
        let mut env = Env::start(EmulatorConfig::for_tests(users)).await;
        // The tests change group membership as the admin: delegate the group scope too.
        {
            let mut oauth = env.emulator.emulator.oauth.write();
            let client = oauth.service_accounts[0].account.client_email.clone();
            let mut scopes: Vec<&str> = orgsync_emulator::oauth::DEFAULT_DELEGATED_SCOPES.to_vec();
            scopes.push(orgsync_wire::scopes::DIRECTORY_GROUP);
            assert!(oauth.set_delegated_scopes(&client, &scopes));
        }
        let server = ScimServer::spawn().await;
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("app.token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let domain = env.domain.clone();
        env.config.scim = vec![ScimTargetConfig {
            name: "app".into(),
            url: server.base.clone(),
            token_file: Some(token_file),
            groups: groups.iter().map(|g| format!("{g}@{domain}")).collect(),
            ..ScimTargetConfig::default()
        }];
        let groups_admin = env.client_with_directory_scopes(&[
            orgsync_wire::scopes::DIRECTORY_USER,
            orgsync_wire::scopes::DIRECTORY_GROUP,
        ]);
        Scim {
            env,
            groups_admin,
            server,
            _dir: dir,
        }
    }

    async fn try_sync(&self, opts: ScimOptions) -> Result<ScimReport, ScimError> {
        let client = self.env.client();
        let mut results = sync(
            &client,
            &self.env.config,
            self.env.store.as_ref(),
            None,
            opts,
        )
        .await
        .expect("directory read");
        results.remove(0).1
    }

    async fn sync(&self) -> ScimReport {
        let report = self
            .try_sync(ScimOptions::default())
            .await
            .expect("scim sync");
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        assert!(report.outage.is_none(), "{:?}", report.outage);
        report
    }

    /// The server's users by externalId.
    async fn server_users(&self) -> BTreeMap<String, Value> {
        self.server
            .users()
            .await
            .into_iter()
            .filter_map(|u| Some((u["externalId"].as_str()?.to_string(), u)))
            .collect()
    }

    /// Every directory user is on the server with the fields mapped from the directory,
    /// active exactly when the directory's user is; no user is there twice.
    async fn assert_matches_directory(&self) {
        self.assert_matches_directory_except(&BTreeSet::new()).await;
    }

    /// As [`Self::assert_matches_directory`]; `out_of_scope` (directory ids) and people
    /// gone from the directory must be on the server inactive.
    async fn assert_matches_directory_except(&self, out_of_scope: &BTreeSet<String>) {
        let directory = self.env.users().await;
        let ids: BTreeSet<String> = directory.values().filter_map(|u| u.id.clone()).collect();
        for u in self.server.users().await {
            let x = u["externalId"].as_str().unwrap_or_default().to_string();
            if out_of_scope.contains(&x) || (!x.is_empty() && !ids.contains(&x)) {
                assert_eq!(u["active"], false, "{} must be deactivated", u["userName"]);
            }
        }
        let server = self.server.users().await;
        let by_external: BTreeMap<String, &Value> = server
            .iter()
            .filter_map(|u| Some((u["externalId"].as_str()?.to_string(), u)))
            .collect();
        let names: BTreeSet<String> = server
            .iter()
            .map(|u| u["userName"].as_str().unwrap().to_lowercase())
            .collect();
        assert_eq!(
            names.len(),
            server.len(),
            "a userName is on the server twice"
        );
        let by_email: BTreeMap<String, String> = directory
            .values()
            .map(|u| {
                (
                    u.primary_email.clone().unwrap().to_lowercase(),
                    u.id.clone().unwrap(),
                )
            })
            .collect();
        for user in directory.values() {
            let id = user.id.as_deref().unwrap();
            if out_of_scope.contains(id) {
                continue;
            }
            let email = user.primary_email.as_deref().unwrap();
            let inactive = user.suspended == Some(true) || user.archived == Some(true);
            let Some(s) = by_external.get(id) else {
                assert!(inactive, "{email} is not on the server");
                continue;
            };
            assert_eq!(s["userName"], email, "{email}");
            assert_eq!(s["active"], !inactive, "{email} active");
            let name = user.name.as_ref().unwrap();
            assert_eq!(s["name"]["givenName"].as_str(), name.given_name.as_deref());
            assert_eq!(
                s["name"]["familyName"].as_str(),
                name.family_name.as_deref()
            );
            assert_eq!(s["emails"][0]["value"], email);
            let org = user.primary_organization();
            assert_eq!(
                s["title"].as_str(),
                org.and_then(|o| o.title.as_deref()),
                "{email} title"
            );
            assert_eq!(
                s[ENTERPRISE]["department"].as_str(),
                org.and_then(|o| o.department.as_deref()),
                "{email} department"
            );
            // The manager is the manager's SCIM id.
            let manager = orgsync_core::scim::manager_email(user)
                .and_then(|m| by_email.get(&m))
                .and_then(|mid| by_external.get(mid))
                .map(|m| m["id"].clone());
            assert_eq!(
                s[ENTERPRISE]["manager"]["value"].as_str(),
                manager.as_ref().and_then(Value::as_str),
                "{email} manager"
            );
        }
    }

    /// Each configured group is on the server once, with exactly the directory's
    /// flattened members that have a SCIM user.
    async fn assert_groups_match(&self) {
        let client = self.env.client();
        let users = self.server_users().await;
        let groups = self.server.groups().await;
        let directory_groups: BTreeMap<String, String> =
            futures::TryStreamExt::try_collect::<Vec<_>>(
                client.directory().groups_list(Default::default()),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|g: orgsync_wire::directory::Group| (g.email.to_lowercase(), g.id.unwrap()))
            .collect();
        for email in &self.env.config.scim[0].groups {
            let directory = client.directory();
            let mut members: Vec<String> = Vec::new();
            let mut stream = std::pin::pin!(directory.members_list(email, true, None));
            while let Some(m) = futures::TryStreamExt::try_next(&mut stream).await.unwrap() {
                if m.kind_of_member.as_deref() == Some("USER") || m.kind_of_member.is_none() {
                    members.push(m.id.unwrap());
                }
            }
            let want: BTreeSet<String> = members
                .iter()
                .filter_map(|id| users.get(id))
                .map(|u| u["id"].as_str().unwrap().to_string())
                .collect();
            let group_id = &directory_groups[&email.to_lowercase()];
            let found: Vec<&Value> = groups
                .iter()
                .filter(|g| g["externalId"].as_str() == Some(group_id.as_str()))
                .collect();
            assert_eq!(found.len(), 1, "{email}: {found:?}");
            let got: BTreeSet<String> = found[0]["members"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| m["value"].as_str().unwrap().to_string())
                .collect();
            assert!(!want.is_empty(), "{email} has no provisioned member");
            assert_eq!(got, want, "{email} members");
        }
    }
}

#[tokio::test]
async fn a_first_sync_provisions_users_managers_and_nested_groups_and_the_next_writes_nothing() {
    let mut scim = Scim::start(300, &["engineering", "sales", "all-staff"]).await;
    // Pages of 50: the listing must follow them to the end (300 people, 6 pages).
    scim.env.config.scim[0].page_size = Some(50);
    let report = scim.sync().await;
    let selected = report.selected;
    assert!(selected > 250, "{selected}");
    assert_eq!(
        report.users.created + report.users.not_created_inactive,
        selected,
        "{report:?}"
    );
    assert_eq!(report.groups.created, 3);
    assert!(
        report.groups.members_not_provisioned > 0,
        "suspended members"
    );
    scim.assert_matches_directory().await;
    scim.assert_groups_match().await;

    let again = scim.sync().await;
    assert_eq!(again.total_changes(), 0, "{:#?}", again.changes);
    assert_eq!(again.users.unchanged, report.users.created);
    assert_eq!(again.groups.unchanged, 3);
    // The no-change run lists and writes nothing.
    let writes: u64 = again
        .calls
        .iter()
        .filter(|(k, _)| !k.starts_with("GET"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(writes, 0, "{:?}", again.calls);
    assert!(again.calls["GET Users"] >= 6, "{:?}", again.calls);
    // Both runs are on record for the status page; the first one's changes are listed.
    let run =
        orgsync_jobs::runs::last_run(scim.env.store.as_ref(), orgsync_jobs::runs::JobName::Scim)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(run.outcome, orgsync_jobs::runs::RunOutcome::Ok);
    assert!(run.complete);
    assert_eq!(run.counts["unchanged"], report.users.created as u64);
    let changes = orgsync_jobs::runs::recent_changes(scim.env.store.as_ref())
        .await
        .unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.job == orgsync_jobs::runs::JobName::Scim && c.action == "create")
    );
}

/// People who already have accounts in the app (created by hand or by another tool) are
/// adopted, never duplicated: by `userName` in any case. An account another provider owns
/// (a different `externalId`) is a conflict, reported and left alone, and so is an
/// account no directory user matches.
#[tokio::test]
async fn existing_accounts_are_adopted_by_user_name_in_any_case_and_never_duplicated() {
    let scim = Scim::start(60, &[]).await;
    let members = scim.env.member_emails().await;
    let (adoptee, theirs) = (&members[1], &members[2]);
    let hand = scim
        .server
        .post(
            "Users",
            &json!({
                "schemas": [orgsync_core::scim::USER_SCHEMA],
                "userName": adoptee.to_uppercase(),
                "displayName": "Made by hand",
            }),
        )
        .await;
    let other = scim
        .server
        .post(
            "Users",
            &json!({
                "schemas": [orgsync_core::scim::USER_SCHEMA],
                "userName": theirs,
                "externalId": "okta-00u1",
            }),
        )
        .await;
    let breakglass = scim
        .server
        .post(
            "Users",
            &json!({
                "schemas": [orgsync_core::scim::USER_SCHEMA],
                "userName": "break-glass@elsewhere.example",
            }),
        )
        .await;

    let report = scim.sync().await;
    assert_eq!(report.users.adopted, 1, "{report:#?}");
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.conflicts[0].user_name, *theirs);
    assert_eq!(
        report.users.unmanaged, 2,
        "the conflict and the break-glass account"
    );
    let users = scim.server.users().await;
    let find = |id: &Value| users.iter().find(|u| u["id"] == *id).unwrap().clone();
    // Adopted in place: same SCIM id, now with the directory's id and fields.
    let adopted = find(&hand["id"]);
    let directory_id = scim.env.user_by_email(adoptee).await.id.unwrap();
    assert_eq!(adopted["externalId"], directory_id.as_str());
    // userName is not case-exact (RFC 7643 §4.1.1): the account keeps the case it has.
    assert!(
        adopted["userName"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(adoptee)
    );
    assert_ne!(adopted["displayName"], "Made by hand");
    // Never touched.
    assert_eq!(find(&other["id"])["externalId"], "okta-00u1");
    assert_eq!(find(&breakglass["id"]), breakglass);
    let names: BTreeSet<String> = users
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(names.len(), users.len(), "a duplicate userName");

    // Removing the break-glass account's twin from the directory would not matter; the
    // next run changes nothing and still leaves both alone.
    let again = scim.sync().await;
    assert_eq!(again.total_changes(), 0, "{:#?}", again.changes);
    assert_eq!(again.conflicts.len(), 1);
}

/// Renames keep the SCIM id; a suspension deactivates; moving out of the scope and
/// leaving the directory deactivate (the default) and the guard lets a few through;
/// group membership follows adds and removals; each step ends with the server equal to
/// the directory.
#[tokio::test]
async fn renames_suspensions_scope_moves_leavers_and_membership_changes_are_applied_in_place() {
    let mut scim = Scim::start(120, &["engineering", "sales"]).await;
    let directory = scim.env.users().await;
    let org_units: BTreeSet<String> = directory
        .values()
        .filter_map(|u| u.org_unit_path.clone())
        .filter(|ou| ou != "/")
        .collect();
    // People at the root (the admin) are outside this scope.
    let mut out_of_scope: BTreeSet<String> = directory
        .values()
        .filter(|u| u.org_unit_path.as_deref() == Some("/"))
        .filter_map(|u| u.id.clone())
        .collect();
    scim.env.config.scim[0].users = Some(ScopeRules {
        org_units: org_units.into_iter().collect(),
        ..ScopeRules::default()
    });
    scim.sync().await;
    scim.assert_matches_directory_except(&out_of_scope).await;
    let before = scim.server_users().await;

    let members = scim.env.member_emails().await;
    let active: Vec<&String> = members
        .iter()
        .filter(|e| {
            before
                .values()
                .any(|u| u["userName"] == e.as_str() && u["active"] == true)
        })
        .collect();
    let (renamed, suspended, moved, leaver) = (active[0], active[1], active[2], active[3]);
    let domain = scim.env.domain.clone();
    let renamed_user = scim
        .env
        .update_user(renamed, |u| {
            u.primary_email = Some(format!("renamed.person@{domain}"));
        })
        .await;
    scim.env
        .update_user(suspended, |u| u.suspended = Some(true))
        .await;
    let moved_user = scim
        .env
        .update_user(moved, |u| u.org_unit_path = Some("/Contractors".into()))
        .await;
    let leaver_id = scim.env.user_by_email(leaver).await.id.unwrap();
    scim.env.delete_user(leaver).await;

    let report = scim.sync().await;
    assert_eq!(report.users.deactivated, 3, "{:#?}", report.changes);
    assert_eq!(report.users.updated, 1, "{:#?}", report.changes);
    assert_eq!(report.users.created, 0);
    let after = scim.server_users().await;
    let renamed_id = renamed_user.id.clone().unwrap();
    assert_eq!(
        after[&renamed_id]["id"], before[&renamed_id]["id"],
        "same SCIM id"
    );
    assert_eq!(
        after[&renamed_id]["userName"],
        format!("renamed.person@{domain}").as_str()
    );
    assert_eq!(after[&leaver_id]["active"], false);
    out_of_scope.insert(moved_user.id.unwrap());
    scim.assert_matches_directory_except(&out_of_scope).await;

    // Membership: one joins sales, one leaves engineering.
    let groups_client = &scim.groups_admin;
    let engineering = format!("engineering@{domain}");
    let sales = format!("sales@{domain}");
    let engineer = {
        let mut stream = std::pin::pin!(groups_client.directory().members_list(
            &engineering,
            true,
            None
        ));
        let mut ids = Vec::new();
        while let Some(m) = futures::TryStreamExt::try_next(&mut stream).await.unwrap() {
            ids.push(m.id.unwrap());
        }
        let active_ids: BTreeSet<String> = after
            .iter()
            .filter(|(_, u)| u["active"] == true)
            .map(|(k, _)| k.clone())
            .collect();
        ids.into_iter().find(|id| active_ids.contains(id)).unwrap()
    };
    // Nested: engineering's members come through its unit groups; remove the person
    // from the unit group that holds them.
    let unit_groups: Vec<orgsync_wire::directory::Group> =
        futures::TryStreamExt::try_collect(groups_client.directory().groups_list(
            orgsync_client::directory::GroupsListParams {
                user_key: Some(engineer.clone()),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    for g in &unit_groups {
        if g.email != engineering && !g.email.starts_with("all-staff") {
            let _ = groups_client
                .directory()
                .members_delete(&g.email, &engineer)
                .await;
        }
    }
    groups_client
        .directory()
        .members_insert(&sales, &renamed_user.primary_email.clone().unwrap())
        .await
        .unwrap();
    let report = scim.sync().await;
    assert!(report.groups.members_added >= 1, "{report:#?}");
    assert!(report.groups.members_removed >= 1, "{report:#?}");
    scim.assert_groups_match().await;
    let again = scim.sync().await;
    assert_eq!(again.total_changes(), 0, "{:#?}", again.changes);
}

/// A run that would deactivate most of the users orgsync manages (a scope typo, a
/// directory read gone wrong) stops before writing; `--force` applies it.
#[tokio::test]
async fn the_guard_stops_mass_deprovisioning_and_force_applies_it() {
    let mut scim = Scim::start(80, &[]).await;
    scim.sync().await;
    let active_before = scim
        .server
        .users()
        .await
        .iter()
        .filter(|u| u["active"] == true)
        .count();
    scim.env.config.scim[0].users = Some(ScopeRules {
        org_units: vec!["/Engineering/Platform".into()],
        ..ScopeRules::default()
    });
    let err = scim
        .try_sync(ScimOptions::default())
        .await
        .expect_err("the guard must stop");
    let ScimError::Guard { reason, report, .. } = err else {
        panic!("not a guard stop: {err}");
    };
    assert!(reason.contains("users orgsync manages"), "{reason}");
    assert!(report.users.deactivated > active_before / 2);
    let still = scim
        .server
        .users()
        .await
        .iter()
        .filter(|u| u["active"] == true)
        .count();
    assert_eq!(still, active_before, "nothing may be written");

    let forced = scim
        .try_sync(ScimOptions {
            force: true,
            ..ScimOptions::default()
        })
        .await
        .unwrap();
    assert!(matches!(
        forced.guard,
        Some(orgsync_core::GuardVerdict::Forced { .. })
    ));
    assert_eq!(forced.users.deactivated, report.users.deactivated);
}

/// `deprovision = "delete"` deletes leavers from the app instead.
#[tokio::test]
async fn leavers_are_deleted_when_the_policy_says_delete() {
    let mut scim = Scim::start(40, &[]).await;
    scim.env.config.scim[0].deprovision = ScimDeprovision::Delete;
    scim.sync().await;
    let members = scim.env.member_emails().await;
    let leaver_id = scim.env.user_by_email(&members[3]).await.id.unwrap();
    scim.env.delete_user(&members[3]).await;
    let report = scim.sync().await;
    assert_eq!(report.users.deleted, 1, "{:#?}", report.changes);
    assert!(!scim.server_users().await.contains_key(&leaver_id));
}

/// An app that lost its data (restarted empty, re-installed) gets everything created
/// again exactly once; the stale links are dropped.
#[tokio::test]
async fn a_server_restarted_empty_gets_everything_recreated_once() {
    let mut scim = Scim::start(60, &["sales"]).await;
    let first = scim.sync().await;
    scim.server.restart_empty().await;
    assert!(scim.server.users().await.is_empty());
    let report = scim.sync().await;
    assert_eq!(report.users.created, first.users.created, "{report:#?}");
    assert_eq!(report.groups.created, 1);
    scim.assert_matches_directory().await;
    scim.assert_groups_match().await;
    let again = scim.sync().await;
    assert_eq!(again.total_changes(), 0, "{:#?}", again.changes);
}

/// `plan` (a dry run) lists every operation and sends nothing but reads.
#[tokio::test]
async fn a_dry_run_lists_every_operation_and_writes_nothing() {
    let scim = Scim::start(50, &["sales", "engineering"]).await;
    let plan = scim
        .try_sync(ScimOptions {
            dry_run: true,
            ..ScimOptions::default()
        })
        .await
        .unwrap();
    assert!(plan.users.created > 40);
    assert_eq!(plan.groups.created, 2);
    let creates = plan.changes.iter().filter(|c| c.action == "create").count();
    assert_eq!(creates, plan.users.created + 2);
    assert!(scim.server.users().await.is_empty());
    assert!(scim.server.groups().await.is_empty());
    assert!(
        plan.calls.keys().all(|k| k.starts_with("GET")),
        "{:?}",
        plan.calls
    );
    // The same run for real does what the plan said.
    let real = scim.sync().await;
    assert_eq!(real.users.created, plan.users.created);
    assert_eq!(
        real.groups.members_not_provisioned,
        plan.groups.members_not_provisioned
    );
}

/// 429 (with `Retry-After`) and 500 answers for a while are retried; the run converges
/// with no failure and no duplicate (ssosync #13 was not retrying).
#[tokio::test]
async fn a_server_answering_429_and_500_for_a_while_is_retried_and_the_run_converges() {
    let mut scim = Scim::start(60, &["sales"]).await;
    let proxy = orgsync_testkit::scim::FaultProxy::start(&scim.server.base).await;
    scim.env.config.scim[0].url = proxy.base.clone();
    proxy.fail_next(4, 429);
    proxy.fail_every(9);
    let report = scim.sync().await;
    assert!(proxy.injected() >= 10, "{} faults", proxy.injected());
    assert!(report.users.created > 50);
    scim.assert_matches_directory().await;
    scim.assert_groups_match().await;
    proxy.fail_every(0);
    let again = scim.sync().await;
    assert_eq!(again.total_changes(), 0, "{:#?}", again.changes);
}

/// One application that is down fails only its own target: the other is provisioned,
/// and the down one reports an outage (exit 1 in the CLI) after its retry budget.
#[tokio::test]
async fn an_app_that_is_down_fails_only_its_own_target() {
    let mut scim = Scim::start(30, &[]).await;
    let mut down = ScimServer::spawn().await;
    down.stop().await;
    let mut second = scim.env.config.scim[0].clone();
    second.name = "down".into();
    second.url = down.base.clone();
    scim.env.config.scim.push(second);
    scim.env.config.google.retry_budget_secs = Some(2);
    let client = scim.env.client();
    let started = std::time::Instant::now();
    let results = sync(
        &client,
        &scim.env.config,
        scim.env.store.as_ref(),
        None,
        ScimOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(results.len(), 2);
    let ok = results[0].1.as_ref().expect("the app that is up");
    assert!(ok.users.created > 20);
    let Err(ScimError::Server(e)) = &results[1].1 else {
        panic!("the down app must fail: {:?}", results[1].1);
    };
    assert!(e.is_outage(), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    scim.assert_matches_directory().await;
}

/// A server whose `ServiceProviderConfig` says it has no PATCH gets whole resources by
/// PUT: users and group members alike, and converges the same way.
#[tokio::test]
async fn a_server_without_patch_is_written_with_put() {
    let dir = tempfile::tempdir().unwrap();
    let spc = dir.path().join("spc.json");
    std::fs::write(
        &spc,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": false},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": 200},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": []
        })
        .to_string(),
    )
    .unwrap();
    let mut scim = Scim::start(40, &["sales"]).await;
    scim.server =
        ScimServer::spawn_with(&["--service-provider-config", spc.to_str().unwrap()]).await;
    scim.env.config.scim[0].url = scim.server.base.clone();
    let first = scim.sync().await;
    assert!(!first.features.unwrap().patch);
    let members = scim.env.member_emails().await;
    let domain = scim.env.domain.clone();
    scim.env
        .update_user(&members[0], |u| {
            u.primary_email = Some(format!("put.renamed@{domain}"))
        })
        .await;
    scim.groups_admin
        .directory()
        .members_insert(&format!("sales@{domain}"), &members[1])
        .await
        .unwrap();
    let report = scim.sync().await;
    assert!(
        report.calls.get("PUT Users").copied().unwrap_or(0) >= 1,
        "{:?}",
        report.calls
    );
    assert!(
        report.calls.get("PUT Groups").copied().unwrap_or(0) >= 1,
        "{:?}",
        report.calls
    );
    assert!(
        !report.calls.keys().any(|k| k.starts_with("PATCH")),
        "{:?}",
        report.calls
    );
    scim.assert_matches_directory().await;
    scim.assert_groups_match().await;
    let again = scim.sync().await;
    assert_eq!(again.total_changes(), 0, "{:#?}", again.changes);
}

/// `groups_query`: every group a Directory `groups.list` query returns is pushed, with the
/// groups named in `groups`; nothing else.
#[tokio::test]
async fn a_groups_query_pushes_every_group_it_returns() {
    let mut scim = Scim::start(60, &["legal-team"]).await;
    scim.env.config.scim[0].groups_query = Some("email:sales*".into());
    let client = scim.env.client();
    let matched: Vec<orgsync_wire::directory::Group> =
        futures::TryStreamExt::try_collect(client.directory().groups_list(
            orgsync_client::directory::GroupsListParams {
                query: Some("email:sales*".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    assert!(!matched.is_empty());
    let report = scim.sync().await;
    assert_eq!(report.groups.created, matched.len() + 1, "{report:#?}");
    let on_server: BTreeSet<String> = scim
        .server
        .groups()
        .await
        .iter()
        .map(|g| g["displayName"].as_str().unwrap().to_string())
        .collect();
    for g in &matched {
        assert!(
            on_server.contains(g.name.as_deref().unwrap()),
            "{on_server:?}"
        );
    }
    assert!(on_server.contains("Legal"), "{on_server:?}");
}

/// Two people who manage each other (a data-entry mistake the Admin console allows): the
/// waves of creates cannot order them, so both are created and their managers set after;
/// the first run ends with each pointing at the other, and the next writes nothing.
#[tokio::test]
async fn people_who_manage_each_other_are_created_and_linked_in_one_run() {
    let scim = Scim::start(30, &[]).await;
    let members = scim.env.member_emails().await;
    let (a, b) = (&members[4], &members[5]);
    for (who, manager) in [(a, b), (b, a)] {
        let manager = manager.clone();
        scim.env
            .update_user(who, move |u| {
                u.extra.insert(
                    "relations".into(),
                    json!([{ "type": "manager", "value": manager }]),
                );
            })
            .await;
    }
    let report = scim.sync().await;
    assert!(report.users.created > 20, "{report:#?}");
    let users = scim.server_users().await;
    let id_of = |email: &String| {
        users
            .values()
            .find(|u| u["userName"] == email.as_str())
            .unwrap()["id"]
            .clone()
    };
    let manager_of = |email: &String| {
        users
            .values()
            .find(|u| u["userName"] == email.as_str())
            .unwrap()[ENTERPRISE]["manager"]["value"]
            .clone()
    };
    assert_eq!(manager_of(a), id_of(b));
    assert_eq!(manager_of(b), id_of(a));
    scim.assert_matches_directory().await;
    let again = scim.sync().await;
    assert_eq!(again.total_changes(), 0, "{:#?}", again.changes);
}

/// What the CLI's progress bar is told: each phase with its number of operations, every
/// finished operation once, and the end.
#[tokio::test]
async fn progress_is_told_every_operation_of_a_run() {
    /// (phases started, operations done, finished calls).
    type Seen = (Vec<(String, usize)>, usize, usize);
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Seen>);
    impl orgsync_jobs::scim::ScimProgress for Recorder {
        fn started(&self, what: &str, operations: usize) {
            self.0
                .lock()
                .unwrap()
                .0
                .push((what.to_string(), operations));
        }
        fn done(&self, n: usize) {
            self.0.lock().unwrap().1 += n;
        }
        fn finished(&self) {
            self.0.lock().unwrap().2 += 1;
        }
    }
    let scim = Scim::start(40, &["sales"]).await;
    let recorder = Recorder::default();
    let client = scim.env.client();
    let mut results = orgsync_jobs::scim::sync_with(
        &client,
        &scim.env.config,
        scim.env.store.as_ref(),
        None,
        ScimOptions::default(),
        &recorder,
    )
    .await
    .unwrap();
    let report = results.remove(0).1.unwrap();
    let (phases, done, finished) = recorder.0.lock().unwrap().clone();
    assert_eq!(
        phases,
        vec![
            ("app: users".to_string(), report.users.created),
            ("app: groups".to_string(), 1)
        ]
    );
    assert_eq!(done, report.users.created + 1);
    assert_eq!(finished, 1);
}

/// A group whose `displayName` another provider's group holds (its own `externalId`):
/// the planner does not adopt it, and when the server refuses the create with 409 the
/// foreign group is still not taken over: the failure is reported and it stays as it was.
#[tokio::test]
async fn a_group_name_held_by_another_provider_is_never_taken_over() {
    let mut scim = Scim::start(30, &["sales"]).await;
    let theirs = scim
        .server
        .post(
            "Groups",
            &json!({
                "schemas": [orgsync_core::scim::GROUP_SCHEMA],
                "displayName": "Sales",
                "externalId": "okta-group-7",
            }),
        )
        .await;
    let proxy = orgsync_testkit::scim::FaultProxy::start(&scim.server.base).await;
    scim.env.config.scim[0].url = proxy.base.clone();
    // Servers that keep displayName unique refuse the create.
    proxy.fail_next_matching(1, 409, "POST", "/Groups");
    let report = scim
        .try_sync(ScimOptions::default())
        .await
        .expect("the users go through");
    assert_eq!(report.groups.created, 0, "{report:#?}");
    assert_eq!(report.groups.adopted, 0, "{report:#?}");
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert!(report.failures[0].contains("409"), "{:?}", report.failures);
    let groups = scim.server.groups().await;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["externalId"], "okta-group-7");
    assert_eq!(groups[0]["id"], theirs["id"]);
    assert!(groups[0]["members"].as_array().is_none_or(|m| m.is_empty()));
}

/// An attribute mapping naming a custom attribute the Directory does not have stops the
/// sync before the directory read and before any request to the app (exit 2).
#[tokio::test]
async fn a_misspelt_attribute_mapping_stops_the_sync_before_the_app_is_called() {
    let mut env = Env::start(EmulatorConfig::for_tests(4)).await;
    env.delegate_also(orgsync_wire::scopes::DIRECTORY_USERSCHEMA_READONLY);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("app.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    env.config.scim = vec![ScimTargetConfig {
        name: "app".into(),
        // Nothing listens here: the check must fail before any request is made.
        url: "http://127.0.0.1:9/scim/v2".into(),
        token_file: Some(token_file),
        attributes: vec![orgsync_jobs::config::ScimAttributeConfig {
            schema: "EmployeeInfo".into(),
            field: "level".into(),
            attribute: "title".into(),
        }],
        ..ScimTargetConfig::default()
    }];
    let err = sync(
        &env.client(),
        &env.config,
        env.store.as_ref(),
        None,
        ScimOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ScimError::UnknownAttribute(_)), "{err:?}");
    assert_eq!(err.kind(), orgsync_jobs::error::FailureKind::Config);
    let text = err.to_string();
    assert!(
        text.contains("scim[0].attributes[0]") && text.contains("jobLevel, startDate"),
        "{text}"
    );
}

/// The SCIM run reads the directory as a partial response (`scim::directory_fields`, with
/// custom schemas when an attribute maps one). Over the generated org (managers, employee
/// numbers, organisations, custom schemas), with a custom phone type and a cost centre
/// added, every SCIM user must map exactly as from a read of whole users. A field the
/// mapping reads but the mask leaves out breaks this. No SCIM server is needed.
#[tokio::test]
async fn a_partial_directory_read_maps_scim_users_exactly_as_a_whole_one() {
    use orgsync_jobs::config::ScimAttributeConfig;
    use orgsync_jobs::directory::read_directory;

    let env = Env::start(EmulatorConfig::for_tests(40)).await;
    let members = env.member_emails().await;
    env.give_desk_phone(&members[2]).await;
    env.update_user(&members[4], |u| {
        if let Some(org) = u.organizations.as_mut().and_then(|o| o.first_mut()) {
            org.cost_center = Some("CC-42".into());
        }
    })
    .await;
    let target = ScimTargetConfig {
        name: "app".into(),
        attributes: vec![ScimAttributeConfig {
            schema: "EmployeeInfo".into(),
            field: "jobLevel".into(),
            attribute: "division".into(),
        }],
        ..ScimTargetConfig::default()
    };
    let client = env.client();
    let rules = ScopeRules::default();
    let schemas = ["EmployeeInfo"];
    let google = &env.config.google;
    let whole = read_directory(&client, google, &[&rules], "basic", None, &schemas)
        .await
        .unwrap();
    let fields = orgsync_jobs::scim::directory_fields();
    let partial = read_directory(&client, google, &[&rules], "basic", Some(&fields), &schemas)
        .await
        .unwrap();
    assert!(
        partial.users.iter().all(|u| u.emails.is_none()),
        "the emulator ignored `fields`"
    );
    let managers = |read: &orgsync_jobs::directory::DirectoryRead| {
        read.users
            .iter()
            .filter_map(|u| Some((u.primary_email.as_ref()?.to_lowercase(), u.id.clone()?)))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let mapping = target.mapping();
    let map = |read: &orgsync_jobs::directory::DirectoryRead| {
        let managers = managers(read);
        read.users
            .iter()
            .filter_map(|u| orgsync_core::scim::desired_user(u, &mapping, &managers))
            .map(|d| (d.directory_id.clone(), d))
            .collect::<BTreeMap<_, _>>()
    };
    let (a, b) = (map(&whole), map(&partial));
    // Not vacuous: the rows carry what the mask must bring.
    assert!(a.values().any(|d| d.manager_id.is_some()), "managers");
    assert!(a.values().any(|d| d.attrs.employee_number.is_some()));
    assert!(a.values().any(|d| d.attrs.division.is_some()), "custom");
    assert!(
        a.values()
            .any(|d| d.attrs.cost_center.as_deref() == Some("CC-42"))
    );
    assert!(
        a.values()
            .any(|d| d.attrs.phone_numbers.iter().any(|p| !p.value.is_empty()))
    );
    assert!(
        a.values()
            .any(|d| d.attrs.title.is_some() && d.attrs.department.is_some())
    );
    assert_eq!(a.len(), whole.users.len());
    assert_eq!(a, b);
}
