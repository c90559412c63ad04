//! `orgsync users sync|list|show` end to end: the real binary against the in-process
//! emulator (real HTTP on loopback) with a real SQLite state file.

use std::path::PathBuf;

use orgsync_client::GoogleClient;
use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use orgsync_testkit::cli::ConfigDir;
use orgsync_testkit::emulator::{directory_users, non_admin_email};
use orgsync_testkit::gmail::{message_ids, raw_message};
use orgsync_wire::directory::User;

use crate::{ORGSYNC, json, orgsync};

struct Env {
    emu: EmulatorHandle,
    dir: tempfile::TempDir,
    config: PathBuf,
    admin: GoogleClient,
}

async fn env(users: usize, extra_toml: &str) -> Env {
    let emu = orgsync_testkit::spawn(EmulatorConfig::for_tests(users)).await;
    let ConfigDir { dir, config } =
        ConfigDir::new(&emu, &format!("[state]\npath = \"state.db\"\n{extra_toml}"));
    let admin = orgsync_testkit::admin_client(&emu);
    Env {
        emu,
        dir,
        config,
        admin,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_creates_then_deactivates_suspended_and_is_idempotent() {
    let e = env(20, "").await;
    let total = directory_users(&e.admin).await.len();
    assert!(total >= 20);

    let dry = orgsync(&e.config, &["users", "sync", "--dry-run", "--json"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(json(&dry)["created"], total);
    let listed = orgsync(&e.config, &["users", "list", "--json"]).await;
    assert_eq!(json(&listed).as_array().unwrap().len(), 0, "dry run wrote");

    let first = orgsync(&e.config, &["users", "sync", "--json"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let r = json(&first);
    assert_eq!(r["created"], total);
    assert!(r["calls"]["directory.users.list"].as_u64().unwrap() >= 1);

    // Suspend one user: the next run deactivates (not deletes) exactly that row.
    let mut victim = directory_users(&e.admin).await.pop().unwrap();
    let email = victim.primary_email.clone().unwrap();
    victim.suspended = Some(true);
    e.admin
        .directory()
        .users_update(victim.id.as_deref().unwrap(), &victim)
        .await
        .unwrap();
    let second = json(&orgsync(&e.config, &["users", "sync", "--json"]).await);
    assert_eq!(second["deactivated"], 1);
    assert_eq!(second["created"], 0);
    assert_eq!(second["unchanged"], total - 1);
    let shown = json(&orgsync(&e.config, &["users", "show", &email, "--json"]).await);
    assert_eq!(shown["active"], false);
    assert_eq!(shown["suspended"], true);
    let active = json(&orgsync(&e.config, &["users", "list", "--json"]).await);
    assert_eq!(active.as_array().unwrap().len(), total - 1);
    let all = json(&orgsync(&e.config, &["users", "list", "--all", "--json"]).await);
    assert_eq!(all.as_array().unwrap().len(), total);

    // Nothing changed: nothing written.
    let third = json(&orgsync(&e.config, &["users", "sync", "--json"]).await);
    assert_eq!(third["unchanged"], total);
    assert_eq!(third["changes"].as_array().unwrap().len(), 0);

    let missing = orgsync(&e.config, &["users", "show", "nobody@example.com"]).await;
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("nobody@example.com"),
        "{}",
        missing.stderr
    );
    drop(e.dir);
    e.emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_stops_mass_deprovisioning_until_forced() {
    let e = env(20, "[users]\ndeprovision = \"delete\"\n").await;
    assert_eq!(orgsync(&e.config, &["users", "sync"]).await.code, 0);
    let users = directory_users(&e.admin).await;
    let total = users.len();
    // Delete 40% of the directory (never the admin orgsync reads as).
    let doomed: Vec<&User> = users
        .iter()
        .filter(|u| u.primary_email.as_deref() != Some("admin@example.com"))
        .take(total * 2 / 5)
        .collect();
    for u in &doomed {
        e.admin
            .directory()
            .users_delete(u.id.as_deref().unwrap())
            .await
            .unwrap();
    }
    let stopped = orgsync(&e.config, &["users", "sync", "--json"]).await;
    assert_eq!(stopped.code, 3, "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("safety guard"),
        "{}",
        stopped.stderr
    );
    assert!(stopped.stderr.contains("--force"), "{}", stopped.stderr);
    let all = json(&orgsync(&e.config, &["users", "list", "--all", "--json"]).await);
    assert_eq!(all.as_array().unwrap().len(), total, "guard wrote anyway");

    let forced = orgsync(&e.config, &["users", "sync", "--force", "--json"]).await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(json(&forced)["deleted"], doomed.len());
    let all = json(&orgsync(&e.config, &["users", "list", "--all", "--json"]).await);
    assert_eq!(all.as_array().unwrap().len(), total - doomed.len());
    e.emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_directory_read_never_deprovisions_even_forced() {
    let e = env(5, "").await;
    assert_eq!(orgsync(&e.config, &["users", "sync"]).await.code, 0);
    // Point the read at a domain with nobody in it: the read succeeds and returns nobody.
    let text = std::fs::read_to_string(&e.config)
        .unwrap()
        .replace("[google]\n", "[google]\ndomain = \"empty.example.org\"\n");
    std::fs::write(&e.config, text).unwrap();
    let out = orgsync(&e.config, &["users", "sync", "--force"]).await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    let active = json(&orgsync(&e.config, &["users", "list", "--json"]).await);
    assert!(
        active.as_array().unwrap().len() >= 5,
        "an empty read deprovisioned"
    );
    e.emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_opens_channels_applies_pushes_and_channels_stop_all_closes_them() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = env(
        3,
        &format!(
            "[serve]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}/hooks/directory\"\n"
        ),
    )
    .await;
    let mut child = ORGSYNC.with_config(&e.config).arg("serve").spawn().unwrap();
    // Generous: under the full suite on 2 cores the daemon's start-up reconcile competes
    // with other test binaries.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let live = orgsync(&e.config, &["channels", "list", "--json"]).await;
        if live.code == 0 && json(&live).as_array().is_some_and(|a| a.len() == 5) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve opened no channels"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // A directory change reaches the store through the daemon.
    let created = e
        .admin
        .directory()
        .users_insert(&User {
            primary_email: Some("via.push@example.com".into()),
            name: Some(orgsync_wire::directory::UserName {
                given_name: Some("Via".into()),
                family_name: Some("Push".into()),
                ..Default::default()
            }),
            password: Some("correct horse battery".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    loop {
        let shown = orgsync(
            &e.config,
            &["users", "show", "via.push@example.com", "--json"],
        )
        .await;
        if shown.code == 0 {
            assert_eq!(json(&shown)["directory_id"], created.id.clone().unwrap());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "push never applied");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // SIGTERM: graceful shutdown, exit 0.
    let pid = child.id().unwrap() as i32;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = tokio::time::timeout(std::time::Duration::from_secs(15), child.wait())
        .await
        .expect("serve exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");

    let stopped = orgsync(&e.config, &["channels", "stop", "--all", "--json"]).await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_eq!(json(&stopped)["stopped"].as_array().unwrap().len(), 5);
    let live = orgsync(&e.config, &["channels", "list", "--json"]).await;
    assert_eq!(json(&live).as_array().unwrap().len(), 0);
    let stats = orgsync_emulator::directory::push::push_stats(&e.emu.emulator);
    assert!(
        stats.iter().all(|c| c.stopped),
        "Google still has live channels"
    );
    e.emu.shutdown().await.unwrap();
}

#[tokio::test]
async fn channels_renew_and_stop_work_with_the_loopback_config_and_no_public_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The README's loopback config: no [serve] public_url.
    let e = env(3, &format!("[serve]\nlisten = \"127.0.0.1:{port}\"\n")).await;
    let renewed = orgsync(&e.config, &["channels", "renew", "--json"]).await;
    assert_eq!(renewed.code, 0, "{}", renewed.stderr);
    assert_eq!(json(&renewed)["created"].as_array().unwrap().len(), 5);
    let live = orgsync(&e.config, &["channels", "list", "--json"]).await;
    let live = json(&live);
    let expected = format!("http://127.0.0.1:{port}/hooks/directory");
    for c in live.as_array().unwrap() {
        assert_eq!(c["address"], expected.as_str(), "{c}");
    }
    let stopped = orgsync(&e.config, &["channels", "stop", "--all", "--json"]).await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_eq!(json(&stopped)["stopped"].as_array().unwrap().len(), 5);
    let stats = orgsync_emulator::directory::push::push_stats(&e.emu.emulator);
    assert!(
        stats.iter().all(|c| c.stopped),
        "Google still has live channels"
    );
    e.emu.shutdown().await.unwrap();
}

/// The same failure gives the same exit code from every job: Google answering 503 to
/// everything (after the client's retries) is a temporary failure, exit 1, for the
/// contacts job, the users job, the agenda and mail alike (contacts sync used to say 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_google_outage_gives_the_same_exit_code_from_every_job() {
    let e = env(3, "").await;
    let member = non_admin_email(&e.admin).await;
    // Each call gives up after 2 s of retries instead of the default 300 s budget (about
    // 15 s of backoff on average at six attempts): the exit code is the same either way.
    let toml = std::fs::read_to_string(&e.config).unwrap();
    std::fs::write(
        &e.config,
        toml.replacen("[google]\n", "[google]\nretry_budget_secs = 2\n", 1),
    )
    .unwrap();
    // The state file as a first run leaves it, created and migrated. The jobs below start
    // together, and a reading command that opened the file while another was still
    // migrating it would exit 2 for that race, which is not what this test is about.
    let state = orgsync_store_sqlite::SqliteStore::open_path(e.dir.path().join("state.db"))
        .await
        .expect("state file");
    orgsync_store::prelude::HousekeepingStore::close(&state).await;
    let mut faults = e.emu.emulator.faults.settings();
    faults.error_rate = 1.0;
    faults.error_kinds = vec![orgsync_emulator::faults::ErrorKind::BackendError];
    e.emu.emulator.faults.set(faults).unwrap();
    let jobs: Vec<Vec<&str>> = vec![
        vec!["contacts", "sync"],
        vec!["contacts", "plan"],
        vec!["contacts", "undo"],
        vec!["channels", "renew"],
        vec!["users", "sync"],
        vec!["calendar", "agenda", "--user", &member],
        vec![
            "mail",
            "send",
            "--as",
            &member,
            "--to",
            &member,
            "--subject",
            "s",
            "--body",
            "b",
        ],
        vec!["mail", "send-draft", "r-1", "--as", &member],
        vec![
            "mail",
            "send",
            "--draft",
            "--as",
            &member,
            "--to",
            &member,
            "--subject",
            "s",
            "--body",
            "b",
        ],
    ];
    // Concurrently: each waits out the client's retries (at most the 2 s budget).
    let outs = futures::future::join_all(jobs.iter().map(|args| orgsync(&e.config, args))).await;
    for (args, out) in jobs.iter().zip(&outs) {
        assert_eq!(out.code, 1, "{args:?}: {}\n{}", out.stdout, out.stderr);
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
    e.emu.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Welcome mail and --report-to

/// A client that reads any mailbox (gmail.readonly through delegation).
fn mail_reader(e: &Env) -> GoogleClient {
    orgsync_testkit::client_with(&e.emu, |c| {
        c.scopes.gmail = vec![orgsync_wire::scopes::GMAIL_READONLY.into()];
    })
}

/// Every message with `label` in `user`'s mailbox, parsed: (from, to, subject, text).
async fn mailbox(
    reader: &GoogleClient,
    user: &str,
    label: &str,
) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for id in message_ids(reader, user, label).await {
        let raw = raw_message(reader, user, &id).await;
        let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let addr = |a: Option<&mail_parser::Address>| {
            a.and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_string()
        };
        out.push((
            addr(msg.from()),
            addr(msg.to()),
            msg.subject().unwrap_or_default().to_string(),
            msg.body_text(0).unwrap_or_default().replace("\r\n", "\n"),
        ));
    }
    out.sort();
    out
}

const WELCOME_TOML: &str = "[mail]\nfrom = \"IT Desk <admin@example.com>\"\n\
     [mail.welcome]\nenabled = true\nsubject = \"Welcome, {given_name}!\"\n\
     template_file = \"welcome.txt\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_welcomes_each_new_user_once_and_report_to_mails_the_summary() {
    let e = env(5, WELCOME_TOML).await;
    std::fs::write(
        e.dir.path().join("welcome.txt"),
        "Hello {full_name}, your address is {email}.\n",
    )
    .unwrap();
    let reader = mail_reader(&e);
    let ops = directory_users(&e.admin)
        .await
        .into_iter()
        .filter_map(|u| u.primary_email)
        .find(|m| m != "admin@example.com")
        .unwrap();

    let first = orgsync(&e.config, &["users", "sync", "--json"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(json(&first)["welcome"]["initial_import"], true);
    assert_eq!(json(&first)["welcome"]["sent"], 0);

    e.admin
        .directory()
        .users_insert(&User {
            primary_email: Some("zoe.new@example.com".into()),
            name: Some(orgsync_wire::directory::UserName {
                given_name: Some("Zoë".into()),
                family_name: Some("Ångström".into()),
                ..Default::default()
            }),
            password: Some("correct horse battery".into()),
            ..Default::default()
        })
        .await
        .unwrap();

    // A dry run: mailed too (marked as such), welcomes nobody.
    let dry = orgsync(
        &e.config,
        &["users", "sync", "--dry-run", "--report-to", &ops],
    )
    .await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("would send 1"), "{}", dry.stdout);
    let inbox = mailbox(&reader, &ops, "INBOX").await;
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(inbox[0].2.contains("(dry run)"), "{inbox:?}");
    assert!(
        mailbox(&reader, "zoe.new@example.com", "INBOX")
            .await
            .is_empty()
    );

    let run = orgsync(&e.config, &["users", "sync", "--report-to", &ops]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("welcome: sent 1, failed 0"),
        "{}",
        run.stdout
    );
    let welcome = mailbox(&reader, "zoe.new@example.com", "INBOX").await;
    assert_eq!(
        welcome,
        [(
            "admin@example.com".to_string(),
            "zoe.new@example.com".to_string(),
            "Welcome, Zoë!".to_string(),
            "Hello Zoë Ångström, your address is zoe.new@example.com.\n".to_string()
        )]
    );
    let inbox = mailbox(&reader, &ops, "INBOX").await;
    let summary = inbox
        .iter()
        .find(|m| !m.2.contains("(dry run)"))
        .expect("the run summary");
    assert_eq!(
        summary.2,
        "orgsync users sync: 1 created, 0 updated, 0 reactivated, 0 deactivated, 0 deleted"
    );
    assert!(
        summary.3.contains("create     zoe.new@example.com"),
        "{}",
        summary.3
    );
    assert!(
        summary.3.contains("welcome: sent 1, failed 0"),
        "{}",
        summary.3
    );

    // Re-run: no second welcome.
    let again = orgsync(&e.config, &["users", "sync", "--json"]).await;
    assert_eq!(json(&again)["welcome"]["sent"], 0);
    assert_eq!(
        mailbox(&reader, "zoe.new@example.com", "INBOX").await.len(),
        1
    );

    // Gmail down: the sync still succeeds (exit 0), the failures are reported, and the
    // welcome of the user created meanwhile goes out on the next run.
    let mut down = e.emu.emulator.faults.settings();
    down.overrides = vec![orgsync_emulator::faults::MethodOverride {
        method: "gmail.".into(),
        error_rate: Some(1.0),
        error_kinds: Some(vec![orgsync_emulator::faults::ErrorKind::BackendError]),
        ..Default::default()
    }];
    e.emu.emulator.faults.set(down).unwrap();
    e.admin
        .directory()
        .users_insert(&User {
            primary_email: Some("late.mail@example.com".into()),
            name: Some(orgsync_wire::directory::UserName {
                given_name: Some("Late".into()),
                family_name: Some("Mail".into()),
                ..Default::default()
            }),
            password: Some("correct horse battery".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let failed = orgsync(&e.config, &["users", "sync", "--report-to", &ops]).await;
    assert_eq!(failed.code, 0, "{}", failed.stderr);
    assert!(
        failed.stdout.contains("welcome: sent 0, failed 1"),
        "{}",
        failed.stdout
    );
    assert!(
        failed.stderr.contains("mailing the run report failed"),
        "{}",
        failed.stderr
    );
    let shown = json(
        &orgsync(
            &e.config,
            &["users", "show", "late.mail@example.com", "--json"],
        )
        .await,
    );
    assert_eq!(shown["active"], true, "the user was created despite Gmail");

    let mut up = e.emu.emulator.faults.settings();
    up.overrides.clear();
    e.emu.emulator.faults.set(up).unwrap();
    let retried = json(&orgsync(&e.config, &["users", "sync", "--json"]).await);
    assert_eq!(retried["welcome"]["sent"], 1, "{retried}");
    let late = mailbox(&reader, "late.mail@example.com", "INBOX").await;
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0].2, "Welcome, Late!");
    e.emu.shutdown().await.unwrap();
}

/// A subject that is not an administrator gets the Directory's 403, explained once: what
/// to set and which privileges and delegation it needs (the users job appended its own
/// generic advice on top, so the message said it twice). Exit 2: configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_admin_subject_is_told_once_what_to_fix() {
    let e = env(3, "").await;
    let member = non_admin_email(&e.admin).await;
    let toml = std::fs::read_to_string(&e.config).unwrap();
    std::fs::write(&e.config, toml.replace("admin@example.com", &member)).unwrap();
    for job in [["users", "sync"], ["contacts", "sync"]] {
        let out = orgsync(&e.config, &job).await;
        assert_eq!(out.code, 2, "{job:?}: {}", out.stderr);
        assert!(out.stderr.contains(&member), "{job:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.matches("admin_subject").count(),
            1,
            "{job:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("Users → Read"), "{}", out.stderr);
    }
}
