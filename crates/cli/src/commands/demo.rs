//! `orgsync demo`: the contacts job end to end against an in-process emulator.
//!
//! A generated org (some people already have personal contacts), a first sync with the
//! progress bar and report, then four directory changes through the Directory API — a
//! joiner, a leaver, a changed phone, a rename — and a changed row of the shared supplier
//! list, and a second sync that must write only what those changes explain. Colleagues
//! are also labelled by department (`label_by`), and the suppliers (a CSV file) have a
//! label of their own. Every personal contact is fingerprinted (resource name +
//! etag) before and compared after: the demo fails loudly if one was touched.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use futures::TryStreamExt;
use orgsync_client::people::ConnectionsParams;
use orgsync_client::{ApiScopes, GoogleClient, ServiceAccount, TokenSource};
use orgsync_core::contacts::markers;
use orgsync_emulator::EmulatorConfig;
use orgsync_jobs::contacts::{self, ContactsOptions, ContactsReport, Mode, UserOutcome};
use orgsync_jobs::context;
use orgsync_wire::directory::{User, UserName, UserPhone};
use serde::Serialize;

use crate::cli::{DemoArgs, Global};
use crate::exit::Exit;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DemoReport {
    first_sync: ContactsReport,
    changes: Vec<String>,
    second_sync: ContactsReport,
    personal_before: usize,
    personal_after: usize,
    personal_modified: usize,
    checks: Vec<Check>,
}

#[derive(Serialize)]
struct Check {
    what: String,
    ok: bool,
}

pub async fn run(_global: &Global, args: DemoArgs) -> anyhow::Result<Exit> {
    let emulator = orgsync_emulator::spawn(EmulatorConfig {
        users: args.users,
        seed: args.seed,
        personal_contacts_per_user: 3,
        ..EmulatorConfig::for_tests(args.users)
    })
    .await?;
    let emu = emulator.emulator.clone();
    let key = orgsync_emulator::oauth::service_account_key(&emu)
        .context("the emulator has no service account")?;
    let admin = emu.config.admin_email();
    let domain = emu.config.domain.clone();
    let mut config =
        context::emulator_config(&emulator.base_url, serde_json::to_string(&key)?, &admin);
    // A shared list and department labels, as an admin would add them.
    let lists_dir = tempfile::tempdir().context("a temporary directory for the supplier list")?;
    let suppliers_csv = lists_dir.path().join("suppliers.csv");
    std::fs::write(&suppliers_csv, suppliers(SUPPLIER_PHONE))?;
    config.contacts.label_by = Some(orgsync_core::contacts::LabelBy::Department);
    config.contacts.shared_lists = vec![orgsync_jobs::config::SharedListConfig {
        name: SUPPLIERS.into(),
        file: Some(suppliers_csv.clone()),
        ..Default::default()
    }];
    let store = crate::store::open(&config.state).await?;
    if !args.json {
        println!(
            "orgsync demo: emulator at {} with {} people (3 personal contacts each)\n",
            emulator.base_url,
            args.users + 1
        );
    }

    // Separate clients: the sync's own (its calls are what the report counts), one for
    // the demo's directory changes, one for the before/after fingerprints.
    let sa: Arc<dyn TokenSource> = Arc::new(ServiceAccount::from_key(key)?);
    let mut admin_config = context::client_config(&config);
    admin_config.scopes = ApiScopes {
        directory: vec![orgsync_wire::scopes::DIRECTORY_USER.into()],
        ..ApiScopes::default()
    };
    let writer = GoogleClient::new(sa.clone(), admin_config);
    let observer = GoogleClient::new(sa, context::client_config(&config));

    let users_before = directory_users(&observer).await?;
    let emails: Vec<String> = users_before.values().cloned().collect();
    let before = personal_fingerprints(&observer, &users_before).await?;

    let options = ContactsOptions {
        progress: crate::progress::contacts_bar(!args.json),
        ..ContactsOptions::new(Mode::Sync)
    };
    let first = contacts::run(
        &context::service_account_client(&config)?,
        store.clone(),
        &config,
        &options,
    )
    .await?;
    if !args.json {
        println!("== First sync ==\n{}", first.render_text());
    }

    let mut changes = change_directory(&writer, &domain, &emails).await?;
    std::fs::write(&suppliers_csv, suppliers(SUPPLIER_PHONE_NEW))?;
    changes.push(format!(
        "supplier list: the IT hotline's number is now {SUPPLIER_PHONE_NEW}"
    ));
    if !args.json {
        println!("== Directory changes ==");
        for c in &changes {
            println!("  {c}");
        }
        println!();
    }

    let second = contacts::run(
        &context::service_account_client(&config)?,
        store.clone(),
        &config,
        &options,
    )
    .await?;
    if !args.json {
        println!("== Second sync ==\n{}", second.render_text());
    }

    // The leaver's own address book went with their account: compare everyone else's.
    let users_after = directory_users(&observer).await?;
    let after = personal_fingerprints(&observer, &users_after).await?;
    let before: BTreeMap<String, String> = before
        .into_iter()
        .filter(|(key, _)| users_after.contains_key(key.split('/').next().unwrap_or("")))
        .collect();
    let modified = before
        .iter()
        .filter(|(key, etag)| after.get(*key) != Some(*etag))
        .count();
    // One existing person's labels, as their phone shows them.
    let sample = emails
        .iter()
        .find(|e| users_after.values().any(|a| a == *e) && !e.starts_with("admin@"))
        .context("no user left to look at")?;
    let labels = labels_of(&observer, sample).await?;
    let mut checks = verify(&first, &second, before.len(), modified);
    let supplier_count = labels.get(SUPPLIERS).copied().unwrap_or(0);
    checks.push(Check {
        what: format!(
            "{sample}'s book: label {SUPPLIERS:?} holds the {supplier_count} suppliers of the CSV"
        ),
        ok: supplier_count == SUPPLIER_ROWS,
    });
    let departments: Vec<String> = labels
        .iter()
        .filter(|(name, _)| name.starts_with("Company directory · "))
        .map(|(name, n)| format!("{name} ({n})"))
        .collect();
    checks.push(Check {
        what: format!(
            "{sample}'s book: department labels {}",
            departments.join(", ")
        ),
        ok: !departments.is_empty(),
    });
    let failed = checks.iter().any(|c| !c.ok);
    let personal_before = before.len();
    let personal_after = after.len();
    store.close().await;
    emulator.shutdown().await?;

    if args.json {
        crate::commands::common::print_json(&DemoReport {
            first_sync: first,
            changes,
            second_sync: second,
            personal_before,
            personal_after,
            personal_modified: modified,
            checks,
        })?;
    } else {
        println!("== What the second sync proves ==");
        println!(
            "  personal contacts: {personal_before} before, {personal_after} after, {modified} modified"
        );
        for c in &checks {
            println!("  [{}] {}", if c.ok { "ok" } else { "FAILED" }, c.what);
        }
        println!();
        println!("{TRY_SCIM}");
        println!("{NEXT_STEP}");
    }
    Ok(if failed { Exit::Partial } else { Exit::Ok })
}

const SUPPLIERS: &str = "Suppliers";
const SUPPLIER_ROWS: i64 = 4;
const SUPPLIER_PHONE: &str = "+44 20 7946 0100";
const SUPPLIER_PHONE_NEW: &str = "+44 20 7946 0199";

/// The demo's shared list: what an office manager keeps in a spreadsheet.
fn suppliers(hotline_phone: &str) -> String {
    format!(
        "key,given_name,family_name,organization,title,email,phone,label:Facilities\n\
         hotline,,,IT hotline,,help@it-partner.example,{hotline_phone},\n\
         clean,,,Sparkle Cleaning,,office@sparkle.example,+44 20 7946 0101,yes\n\
         security,Sam,Guard,Building security,Night shift,,+44 20 7946 0102,yes\n\
         taxi,,,City Cabs,,,+44 20 7946 0103,\n"
    )
}

/// orgsync's labels in `email`'s book: name → members.
async fn labels_of(client: &GoogleClient, email: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let groups: Vec<_> = client
        .people(email)
        .contact_groups_list(Some("name,clientData,memberCount"))
        .try_collect()
        .await?;
    Ok(groups
        .into_iter()
        .filter(|g| {
            g.client_data
                .iter()
                .any(|c| c.key.as_deref() == Some(markers::SOURCE))
        })
        .filter_map(|g| Some((g.name?, g.member_count.unwrap_or(0))))
        .collect())
}

/// The second job, tried locally: a SCIM app next to the emulator.
const TRY_SCIM: &str = "Apps too: `orgsync scim sync` provisions the directory's users and groups \
into any SCIM 2.0 app. Try it locally with scim2-server (`bash scim/setup.sh`): README.md, \
\"Provision apps over SCIM\".";

/// The demo's last line: where a newcomer goes from the emulator to their own Workspace.
const NEXT_STEP: &str = "Next: your own Workspace. README.md, \"Use it with your Workspace\", \
walks through the Cloud project, the delegated scopes and the admin role, then `orgsync doctor` \
checks the setup before the first run.";

/// Directory id → primary email of everyone active.
async fn directory_users(client: &GoogleClient) -> anyhow::Result<BTreeMap<String, String>> {
    let users: Vec<User> = client
        .directory()
        .users_list(Default::default())
        .try_collect()
        .await?;
    // Suspended people cannot be impersonated (and receive no contacts).
    Ok(users
        .into_iter()
        .filter(|u| u.suspended != Some(true) && u.archived != Some(true))
        .filter_map(|u| Some((u.id?, u.primary_email?)))
        .collect())
}

/// `directory id/resource name` → etag of every personal contact of `users`.
async fn personal_fingerprints(
    client: &GoogleClient,
    users: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (id, email) in users {
        let people: Vec<_> = client
            .people(email)
            .connections_list(ConnectionsParams::new("names,clientData,metadata"))
            .try_collect()
            .await?;
        for p in people {
            if !markers::is_managed(&p)
                && let (Some(rn), Some(etag)) = (p.resource_name, p.etag)
            {
                out.insert(format!("{id}/{rn}"), etag);
            }
        }
    }
    Ok(out)
}

/// A joiner, a leaver, a changed phone and a rename, through the Directory API.
async fn change_directory(
    writer: &GoogleClient,
    domain: &str,
    emails: &[String],
) -> anyhow::Result<Vec<String>> {
    let dir = writer.directory();
    let others: Vec<&String> = emails.iter().filter(|e| !e.starts_with("admin@")).collect();
    anyhow::ensure!(
        others.len() >= 3,
        "the demo needs at least 3 users (--users)"
    );
    let mut changes = Vec::new();

    let joiner = User {
        primary_email: Some(format!("ada.newhire@{domain}")),
        name: Some(UserName {
            given_name: Some("Ada".into()),
            family_name: Some("Newhire".into()),
            ..Default::default()
        }),
        password: Some("demo-password-not-used".into()),
        ..Default::default()
    };
    dir.users_insert(&joiner)
        .await
        .context("inserting the joiner")?;
    changes.push(format!("joiner: ada.newhire@{domain} added"));

    let leaver = others[0];
    dir.users_delete(leaver)
        .await
        .context("deleting the leaver")?;
    changes.push(format!("leaver: {leaver} deleted"));

    let phone_user = others[1];
    let mut user = dir.users_get(phone_user, None, None).await?;
    user.phones = Some(vec![UserPhone {
        value: "+44 20 7946 0999".into(),
        kind: Some("work".into()),
        primary: Some(true),
        ..Default::default()
    }]);
    dir.users_update(phone_user, &user)
        .await
        .context("changing a phone")?;
    changes.push(format!("phone: {phone_user} now +44 20 7946 0999"));

    let renamed = others[2];
    let mut user = dir.users_get(renamed, None, None).await?;
    let new_email = format!("renamed.{}", renamed);
    user.primary_email = Some(new_email.clone());
    if let Some(name) = user.name.as_mut() {
        name.family_name = Some(format!(
            "{}-Renamed",
            name.family_name.clone().unwrap_or_default()
        ));
    }
    dir.users_update(renamed, &user)
        .await
        .context("renaming a user")?;
    changes.push(format!("rename: {renamed} is now {new_email}"));
    Ok(changes)
}

fn verify(
    first: &ContactsReport,
    second: &ContactsReport,
    personal: usize,
    modified: usize,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut check = |what: String, ok: bool| checks.push(Check { what, ok });
    let t1 = &first.totals;
    check(
        format!(
            "first sync: {} address books filled, {} contacts created, none failed",
            t1.targets, t1.created
        ),
        t1.users_failed == 0 && t1.created > 0,
    );
    let joiner = second
        .users
        .iter()
        .find(|u| u.email.starts_with("ada.newhire@"));
    let existing: Vec<&UserOutcome> = second
        .users
        .iter()
        .filter(|u| !u.email.starts_with("ada.newhire@"))
        .collect();
    check(
        format!(
            "second sync: the joiner's new address book got {} colleagues",
            joiner.map_or(0, |j| j.created)
        ),
        joiner.is_some_and(|j| j.created + 1 == second.sources),
    );
    // A colleague skipped as a personal duplicate is added once that contact no longer
    // matches (the rename changes their address): one more create, explained.
    let skipped_before: BTreeMap<&str, usize> = first
        .users
        .iter()
        .map(|u| (u.email.as_str(), u.skipped_duplicates))
        .collect();
    let explained = existing.iter().all(|u| {
        let unskipped = skipped_before
            .get(u.email.as_str())
            .map_or(0, |before| before.saturating_sub(u.skipped_duplicates));
        u.created <= 1 + unskipped
            && u.updated <= 3
            && u.deleted <= 1
            && u.relabelled == 0
            && u.duplicates_merged == 0
    });
    let writes: usize = existing.iter().map(|u| u.writes()).sum();
    check(
        format!(
            "second sync: {} existing address books got {writes} writes in all, each at most \
             1 create (joiner, or a colleague no longer skipped as a personal duplicate) + 3 \
             updates (phone, rename, supplier) + 1 delete (leaver)",
            existing.len()
        ),
        explained && writes > 0,
    );
    check(
        format!("personal contacts: {modified} of {personal} modified"),
        modified == 0 && personal > 0,
    );
    check(
        "no user failed in either sync".into(),
        second.totals.users_failed == 0,
    );
    checks
}
