//! `orgsync serve` keeping address books in step: a real daemon on loopback, fed by the
//! emulator's real push notifications, writing real address books in the emulator. Every
//! test ends by comparing every target's book with the directory and checking that no
//! personal contact changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orgsync_client::GoogleClient;
use orgsync_daemon::DaemonHandle;
use orgsync_emulator::EmulatorConfig;
use orgsync_jobs::config::Config;
use orgsync_jobs::contacts::lease::{self, RunLease};
use orgsync_jobs::runs::{self, JobName};
use orgsync_store::Store;
use orgsync_testkit::books;
use orgsync_testkit::postgres::PgSchema;
use orgsync_wire::directory::{User, UserPhone};

use crate::common::{Env, env_with, wait_for};

const T: Duration = Duration::from_secs(60);
const BATCH_CREATE: &str = "people.people.batchCreateContacts";

/// An org of `users` people with two personal contacts each (to prove they are never
/// touched).
async fn org(users: usize) -> Env {
    env_with(EmulatorConfig {
        personal_contacts_per_user: 2,
        ..EmulatorConfig::for_tests(users)
    })
    .await
}

/// serve with the contacts job on, writing as soon as a change arrives.
fn contacts_config(e: &Env) -> Config {
    let mut c = e.config();
    c.serve.contacts = true;
    c.serve.contacts_batch_secs = 0;
    // The generated personal contacts carry colleagues' addresses; copy everyone so the
    // comparison below is exact (the "skip" default has its own tests in orgsync-jobs).
    c.contacts.personal_duplicates = orgsync_core::contacts::PersonalDuplicates::Add;
    c
}

fn observer(e: &Env) -> GoogleClient {
    e.client_with(|_| {})
}

async fn directory(e: &Env) -> Vec<User> {
    orgsync_testkit::emulator::directory_users(&e.admin).await
}

/// Wait until every active user's book holds exactly the sources `is_source` selects
/// (but themself), once each; panics with the differences after `T`.
async fn wait_converged(e: &Env, is_source: impl Fn(&User) -> bool) {
    let observer = observer(e);
    let mut last = Vec::new();
    let start = std::time::Instant::now();
    while start.elapsed() < T {
        let users = directory(e).await;
        let sources: BTreeMap<String, User> = users
            .iter()
            .filter(|u| is_source(u))
            .map(|u| (u.id.clone().unwrap(), u.clone()))
            .collect();
        let targets: Vec<User> = users.into_iter().filter(books::is_active).collect();
        last = books::differences(&observer, &targets, &sources).await;
        if last.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "address books never matched the directory: {:?}",
        &last[..last.len().min(5)]
    );
}

async fn personal(e: &Env) -> BTreeMap<String, String> {
    let users = directory(e).await;
    books::personal_fingerprints(&observer(e), users.iter().filter(|u| books::is_active(u))).await
}

/// `before`'s entries for the users still active must be unchanged, and nobody gained
/// a personal contact.
async fn assert_personal_untouched(e: &Env, before: &BTreeMap<String, String>) {
    let now = personal(e).await;
    for (k, etag) in &now {
        assert_eq!(
            before.get(k),
            Some(etag),
            "personal contact {k} was created or changed"
        );
    }
    let active: Vec<String> = directory(e)
        .await
        .into_iter()
        .filter(books::is_active)
        .filter_map(|u| u.id)
        .collect();
    for k in before.keys() {
        if active.iter().any(|a| k.starts_with(&format!("{a}/"))) {
            assert!(now.contains_key(k), "personal contact {k} was deleted");
        }
    }
}

async fn wait_first_run(store: &dyn Store) {
    wait_for("the full contacts run on start", T, || async {
        runs::last_complete(store, JobName::Contacts)
            .await
            .unwrap()
            .map(|_| ())
    })
    .await;
}

async fn start(e: &Env, config: Config, store: Arc<dyn Store>) -> DaemonHandle {
    let d = e.start(config, store.clone()).await;
    e.wait_for_channels(store.as_ref(), T).await;
    d
}

async fn user(e: &Env, email: &str) -> User {
    e.admin
        .directory()
        .users_get(email, Some("full"), None)
        .await
        .unwrap()
}

async fn update(e: &Env, email: &str, f: impl FnOnce(&mut User)) {
    let mut u = user(e, email).await;
    u.password = None;
    f(&mut u);
    e.admin.directory().users_update(email, &u).await.unwrap();
}

fn members(users: &[User]) -> Vec<User> {
    let mut v: Vec<User> = users
        .iter()
        .filter(|u| books::is_default_source(u))
        .filter(|u| !u.primary_email.as_deref().unwrap().starts_with("admin@"))
        .cloned()
        .collect();
    v.sort_by(|a, b| a.primary_email.cmp(&b.primary_email));
    v
}

/// Wait until the contact of `source` in every other active book satisfies `ok`.
async fn wait_every_copy(
    e: &Env,
    source: &User,
    what: &str,
    ok: impl Fn(&orgsync_wire::people::Person) -> bool,
) {
    let id = source.id.clone().unwrap();
    let observer = observer(e);
    let targets: Vec<String> = directory(e)
        .await
        .into_iter()
        .filter(books::is_active)
        .filter(|u| u.id.as_deref() != Some(id.as_str()))
        .filter_map(|u| u.primary_email)
        .collect();
    for t in &targets {
        wait_for(what, T, || async {
            books::contact_of(&observer, t, &id)
                .await
                .filter(|p| ok(p))
                .map(|_| ())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joiners_leavers_and_edits_reach_every_address_book_through_push() {
    let e = org(10).await;
    let store = e.sqlite("contacts.db").await;
    // Sources: everyone visible in the top-level org units the org has now, so a move to
    // /Alumni takes someone out of scope.
    let ous: Vec<String> = {
        let mut v: Vec<String> = directory(&e)
            .await
            .iter()
            .filter_map(|u| u.org_unit_path.clone())
            .filter(|p| p != "/")
            .map(|p| format!("/{}", p.trim_start_matches('/').split('/').next().unwrap()))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let mut config = contacts_config(&e);
    config.contacts.sources.org_units = ous.clone();
    let in_ou = move |u: &User| {
        let p = u.org_unit_path.as_deref().unwrap_or("/");
        ous.iter()
            .any(|ou| p == ou || p.starts_with(&format!("{ou}/")))
    };
    let is_source = move |u: &User| books::is_default_source(u) && in_ou(u);
    let before = personal(&e).await;
    let d_config = config.clone();
    let d = start(&e, config, store.clone()).await;
    wait_first_run(store.as_ref()).await;
    wait_converged(&e, &is_source).await;

    // A joiner: in every book, and their own book filled.
    e.insert_user("joiner").await;
    wait_converged(&e, &is_source).await;

    let people = members(&directory(&e).await);
    // A changed mobile number.
    let phone_owner = people[0].clone();
    update(&e, phone_owner.primary_email.as_deref().unwrap(), |u| {
        u.phones = Some(vec![UserPhone {
            value: "+44 7700 900123".into(),
            kind: Some("mobile".into()),
            ..Default::default()
        }]);
    })
    .await;
    wait_every_copy(&e, &phone_owner, "the new mobile number", |p| {
        p.phone_numbers
            .iter()
            .any(|n| n.value.as_deref() == Some("+44 7700 900123"))
    })
    .await;

    // A rename.
    let renamed = people[1].clone();
    e.rename_family(renamed.id.as_deref().unwrap(), "Renamed")
        .await;
    wait_every_copy(&e, &renamed, "the new family name", |p| {
        p.names
            .iter()
            .any(|n| n.family_name.as_deref() == Some("Renamed"))
    })
    .await;

    // Moved out of the sources' org units: gone from every book, their own book kept.
    let moved = people[2].clone();
    update(&e, moved.primary_email.as_deref().unwrap(), |u| {
        u.org_unit_path = Some("/Alumni".into());
    })
    .await;
    wait_converged(&e, &is_source).await;

    // Suspended: gone from every book; orgsync forgets their own book (it cannot write
    // as a suspended user).
    let suspended = people[3].clone();
    update(&e, suspended.primary_email.as_deref().unwrap(), |u| {
        u.suspended = Some(true);
    })
    .await;
    wait_converged(&e, &is_source).await;
    wait_for("the suspended user's state forgotten", T, || async {
        store
            .get_contacts_state(suspended.id.as_deref().unwrap())
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    // A leaver.
    let leaver = people[4].clone();
    e.admin
        .directory()
        .users_delete(leaver.primary_email.as_deref().unwrap())
        .await
        .unwrap();
    wait_converged(&e, &is_source).await;

    assert_personal_untouched(&e, &before).await;
    // The push-driven runs were recorded, and none stopped or failed.
    let last = runs::last_run(store.as_ref(), JobName::Contacts)
        .await
        .unwrap()
        .expect("a recorded run");
    assert_eq!(last.trigger, runs::Trigger::Push);
    assert_eq!(last.outcome, runs::RunOutcome::Ok, "{last:?}");
    assert!(
        !runs::recent_changes(store.as_ref())
            .await
            .unwrap()
            .is_empty(),
        "no change recorded for the status page"
    );
    d.shutdown().await;

    // The push-driven runs left every book's incremental state valid: the nightly sync
    // after them reads each book once (its sync token) and writes nothing.
    let nightly = orgsync_jobs::contacts::run(
        &e.daemon_client(),
        store.clone(),
        &d_config,
        &orgsync_jobs::contacts::ContactsOptions::new(orgsync_jobs::contacts::Mode::Sync),
    )
    .await
    .unwrap();
    let t = &nightly.totals;
    assert_eq!(
        (t.users_incremental, t.users_changed, t.users_failed),
        (t.targets, 0, 0),
        "the sync after push-driven runs was not one read per book: {t:?}"
    );
}

/// A hundred joiners from an onboarding script: one write per address book, not one per
/// joiner, because their notifications coalesce into one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_100_joiners_is_one_write_per_address_book() {
    let e = org(20).await;
    let store = e.sqlite("burst.db").await;
    let mut config = contacts_config(&e);
    config.serve.contacts_batch_secs = 30;
    let before = personal(&e).await;
    let d = start(&e, config, store.clone()).await;
    wait_first_run(store.as_ref()).await;
    wait_converged(&e, books::is_default_source).await;
    let stats = d.shared.client.stats();
    let creates_before = stats.snapshot().calls(BATCH_CREATE);
    let users_before = store.count_users(false).await.unwrap();
    for i in 0..100 {
        e.insert_user(&format!("joiner{i:03}")).await;
    }
    // Every notification is in: one pending contacts job holds the whole burst.
    wait_for("100 notifications queued", T, || async {
        let q = store.queue_summary().await.unwrap();
        let users = store.count_users(false).await.unwrap();
        (users >= users_before + 100 && q.pending == 1).then_some(())
    })
    .await;
    e.advance(chrono::Duration::seconds(31));
    wait_converged(&e, books::is_default_source).await;
    let books_now = directory(&e)
        .await
        .iter()
        .filter(|u| books::is_active(u))
        .count() as u64;
    let creates = stats.snapshot().calls(BATCH_CREATE) - creates_before;
    assert_eq!(
        creates, books_now,
        "one batch create per address book ({books_now} books), not one per joiner"
    );
    assert_personal_untouched(&e, &before).await;
    d.shutdown().await;
}

/// serve killed while a burst is being written: the accepted notifications are in the
/// store, so a restarted serve finishes the work, and no contact is created twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_killed_mid_burst_loses_nothing_and_duplicates_nothing() {
    let e = org(12).await;
    let store = e.sqlite("restart.db").await;
    let config = contacts_config(&e);
    let before = personal(&e).await;
    let d = start(&e, config.clone(), store.clone()).await;
    wait_first_run(store.as_ref()).await;
    let addr = d.addr;
    // Slow Google down so the kill lands while books are being written.
    let mut f = e.emu.emulator.faults.settings();
    f.latency_ms = 40;
    e.emu.emulator.faults.set(f.clone()).unwrap();
    for i in 0..15 {
        e.insert_user(&format!("burst{i:02}")).await;
    }
    wait_for("a contacts run writing", T, || async {
        store
            .get_lease(lease::RUN_LEASE)
            .await
            .unwrap()
            .filter(|l| l.expires_at > chrono::Utc::now())
            .map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.kill();
    tokio::time::sleep(Duration::from_millis(50)).await;
    f.latency_ms = 0;
    e.emu.emulator.faults.set(f).unwrap();
    let d = e.start_on(&addr.to_string(), config, store.clone()).await;
    wait_converged(&e, books::is_default_source).await;
    assert_personal_untouched(&e, &before).await;
    d.shutdown().await;
}

/// A manual `contacts sync` while push traffic arrives: the push-driven run waits for the
/// manual run's lease (its job is put back, not failed), so one book is never written by
/// both at once; afterwards everything has converged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_manual_sync_during_push_traffic_never_writes_a_book_concurrently() {
    let e = org(10).await;
    let store = e.sqlite("manual.db").await;
    let config = contacts_config(&e);
    let before = personal(&e).await;
    let d = start(&e, config.clone(), store.clone()).await;
    wait_first_run(store.as_ref()).await;
    wait_converged(&e, books::is_default_source).await;

    // The manual run takes the lease (as `orgsync contacts sync` does)…
    let manual = RunLease::try_acquire(
        store.clone(),
        lease::RUN_LEASE,
        "manual-sync",
        crate::common::tuning().contacts_lease,
    )
    .await
    .unwrap()
    .expect("the lease is free");
    let joiner = e.insert_user("during").await;
    let joiner_id = joiner.id.clone().unwrap();
    // …so the push-driven run cannot write: its job waits, without failing.
    wait_for("the push job queued", T, || async {
        (store.queue_summary().await.unwrap().pending >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let q = store.queue_summary().await.unwrap();
    assert_eq!(
        q.failing, 0,
        "a job waiting for the lease was counted as failed"
    );
    let observer = observer(&e);
    let someone = members(&directory(&e).await)[0]
        .primary_email
        .clone()
        .unwrap();
    assert!(
        books::contact_of(&observer, &someone, &joiner_id)
            .await
            .is_none(),
        "the daemon wrote a book while the manual sync held the lease"
    );
    // The manual run does the work under its lease, then lets go.
    let options = orgsync_jobs::contacts::ContactsOptions::new(orgsync_jobs::contacts::Mode::Sync);
    let report = orgsync_jobs::contacts::run_under_lease(
        &manual,
        &d.shared.client,
        store.clone(),
        &config,
        &options,
    )
    .await
    .unwrap();
    assert!(report.totals.created > 0);
    manual.release().await;
    // The daemon's job then runs and finds nothing left to write.
    wait_for("the queue drained", T, || async {
        let q = store.queue_summary().await.unwrap();
        (q.pending + q.running == 0).then_some(())
    })
    .await;
    wait_converged(&e, books::is_default_source).await;
    assert_personal_untouched(&e, &before).await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_keep_address_books_in_step() {
    let Some(schema) = PgSchema::create("PostgreSQL contacts daemon test").await else {
        return;
    };
    let e = org(10).await;
    let open = || async {
        Arc::new(
            orgsync_store_postgres::PgStore::connect_with(schema.options(), 5)
                .await
                .expect("PgStore"),
        ) as Arc<dyn Store>
    };
    let store_a = open().await;
    let store_b = open().await;
    let config = contacts_config(&e);
    let before = personal(&e).await;
    let a = e.start(config.clone(), store_a.clone()).await;
    let b = e.start(config, store_b.clone()).await;
    e.wait_for_channels(store_a.as_ref(), T).await;
    wait_first_run(store_a.as_ref()).await;
    wait_converged(&e, books::is_default_source).await;
    for i in 0..5 {
        e.insert_user(&format!("pg{i}")).await;
    }
    let people = members(&directory(&e).await);
    e.rename_family(people[0].id.as_deref().unwrap(), "Twice")
        .await;
    e.admin
        .directory()
        .users_delete(people[1].primary_email.as_deref().unwrap())
        .await
        .unwrap();
    wait_converged(&e, books::is_default_source).await;
    assert_personal_untouched(&e, &before).await;
    a.shutdown().await;
    b.shutdown().await;
    schema.teardown().await;
}

/// The resource name of `email`'s label called `name`, when it exists.
async fn label_named(observer: &GoogleClient, email: &str, name: &str) -> Option<String> {
    use futures::TryStreamExt as _;
    let groups: Vec<orgsync_wire::people::ContactGroup> = observer
        .people(email)
        .contact_groups_list(Some("name"))
        .try_collect()
        .await
        .ok()?;
    groups
        .into_iter()
        .find(|g| g.name.as_deref() == Some(name))
        .and_then(|g| g.resource_name)
}

/// `label_by = "department"` under `serve`: a department change pushed by Google moves
/// that person's contact into the new department's label in every book, and out of the
/// old one, without waiting for the scheduled run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_department_change_moves_the_contact_between_labels_through_push() {
    let e = org(10).await;
    let store = e.sqlite("labels.db").await;
    let mut config = contacts_config(&e);
    config.contacts.label_by = Some(orgsync_core::contacts::LabelBy::Department);
    let before = personal(&e).await;
    let d = start(&e, config, store.clone()).await;
    wait_first_run(store.as_ref()).await;
    wait_converged(&e, books::is_default_source).await;

    let mover = members(&directory(&e).await)[0].clone();
    let mover_email = mover.primary_email.clone().unwrap();
    let mover_id = mover.id.clone().unwrap();
    let old = format!(
        "Company directory · {}",
        mover
            .primary_organization()
            .unwrap()
            .department
            .clone()
            .unwrap()
    );
    update(&e, &mover_email, |u| {
        u.organizations.as_mut().unwrap()[0].department = Some("Moonshots".into());
    })
    .await;

    let observer = observer(&e);
    let targets: Vec<String> = directory(&e)
        .await
        .into_iter()
        .filter(books::is_active)
        .filter_map(|u| u.primary_email)
        .filter(|t| *t != mover_email)
        .collect();
    for t in &targets {
        wait_for("the contact in the new department's label", T, || async {
            let label = label_named(&observer, t, "Company directory · Moonshots").await?;
            let c = books::contact_of(&observer, t, &mover_id).await?;
            c.group_resource_names().any(|g| g == label).then_some(())
        })
        .await;
        if let Some(old_label) = label_named(&observer, t, &old).await {
            let c = books::contact_of(&observer, t, &mover_id).await.unwrap();
            assert!(
                !c.group_resource_names().any(|g| g == old_label),
                "{t}: still in {old}"
            );
        }
    }
    wait_converged(&e, books::is_default_source).await;
    assert_personal_untouched(&e, &before).await;
    d.shutdown().await;
}
