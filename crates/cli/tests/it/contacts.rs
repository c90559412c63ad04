//! `orgsync contacts plan|sync|undo` end to end: the real binary, a config file, a SQLite
//! state file, the in-process emulator over loopback. Exit codes are part of the interface.

use std::path::{Path, PathBuf};

use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use orgsync_testkit::cli::{ConfigDir, Out};
use serde_json::Value;

use crate::{ORGSYNC, json};

struct Env {
    emu: EmulatorHandle,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

async fn env(users: usize) -> Env {
    let emu = orgsync_testkit::spawn(EmulatorConfig {
        personal_contacts_per_user: 2,
        ..EmulatorConfig::for_tests(users)
    })
    .await;
    let ConfigDir { dir, config } = ConfigDir::new(&emu, "[state]\npath = \"state.db\"\n");
    Env {
        emu,
        _dir: dir,
        config,
    }
}

async fn orgsync(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    ORGSYNC.run_env(config, args, env).await
}

#[tokio::test]
async fn plan_then_sync_with_a_mailed_report_then_a_one_read_rerun() {
    let e = env(8).await;
    let plan = orgsync(&e.config, &["contacts", "plan", "--json"], &[]).await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let plan = json(&plan);
    let planned = plan["totals"]["created"].as_u64().unwrap();
    assert!(planned > 0);
    assert_eq!(plan["mode"], "plan");

    let sync = orgsync(
        &e.config,
        &[
            "contacts",
            "sync",
            "--json",
            "--report-to",
            "admin@example.com",
        ],
        &[],
    )
    .await;
    assert_eq!(sync.code, 0, "{}", sync.stderr);
    let sync = json(&sync);
    assert_eq!(
        sync["totals"]["created"].as_u64().unwrap(),
        planned,
        "the sync did what the plan said"
    );

    // The report reached the admin's mailbox.
    let token = orgsync_testkit::token(
        &e.emu,
        "admin@example.com",
        &[orgsync_wire::scopes::GMAIL_READONLY],
    );
    let list: Value = reqwest::Client::new()
        .get(format!("{}/gmail/v1/users/me/messages", e.emu.base_url))
        .query(&[("q", "subject:orgsync")])
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        list["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "no report mail: {list}"
    );

    let again = json(&orgsync(&e.config, &["contacts", "sync", "--json"], &[]).await);
    assert_eq!(
        again["totals"]["usersIncremental"],
        again["totals"]["targets"]
    );
    assert_eq!(again["totals"]["created"], 0);
}

#[tokio::test]
async fn the_guard_exits_3_without_writing_and_force_proceeds() {
    let e = env(8).await;
    assert_eq!(orgsync(&e.config, &["contacts", "sync"], &[]).await.code, 0);
    let typo = [("ORGSYNC__CONTACTS__SOURCES__ORG_UNITS", "[\"/No-Such-OU\"]")];
    let stopped = orgsync(&e.config, &["contacts", "sync"], &typo).await;
    assert_eq!(stopped.code, 3, "{}\n{}", stopped.stdout, stopped.stderr);
    assert!(stopped.stdout.contains("STOPPED"), "{}", stopped.stdout);
    assert!(stopped.stdout.contains("--force"));
    let forced = orgsync(&e.config, &["contacts", "sync", "--force", "--json"], &typo).await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(json(&forced)["totals"]["deleted"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn an_unknown_user_or_a_missing_key_is_a_configuration_error() {
    let e = env(3).await;
    let out = orgsync(
        &e.config,
        &["contacts", "plan", "--user", "nobody@example.com"],
        &[],
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("nobody@example.com"), "{}", out.stderr);
    let out = orgsync(
        &e.config,
        &["contacts", "sync"],
        &[(
            "ORGSYNC__GOOGLE__SERVICE_ACCOUNT_KEY_FILE",
            "/nonexistent/key.json",
        )],
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("/nonexistent/key.json"),
        "{}",
        out.stderr
    );
}

/// Issue 16's bad inputs: a bad CSV row, a label the person does not have, someone who is
/// not a user. Each is exit 2 with the problem named and nothing written.
#[tokio::test]
async fn a_bad_shared_list_exits_2_naming_the_problem_and_writes_nothing() {
    let emu = orgsync_testkit::spawn(EmulatorConfig::for_tests(3)).await;
    let admin = emu.emulator.config.admin_email();
    let cases = [
        (
            "file = \"vendors.csv\"",
            vec!["vendors.csv", "line 3", "\"phone\""],
        ),
        (
            &*format!("from_user = \"{admin}\"\nfrom_label = \"Vendors\""),
            vec!["no label \"Vendors\"", "from_label"],
        ),
        (
            "from_user = \"nobody@nowhere.example\"\nfrom_label = \"Vendors\"",
            vec!["nobody@nowhere.example", "not suspended"],
        ),
    ];
    for (source, says) in cases {
        let ConfigDir { dir, config } = ConfigDir::new(
            &emu,
            &format!(
                "[state]\npath = \"state.db\"\n[[contacts.shared_lists]]\nname = \"Suppliers\"\n{source}\n"
            ),
        );
        std::fs::write(
            dir.path().join("vendors.csv"),
            "key,given_name,phone\na,Ann,+1 555 0100\nb,Bob,call me\n",
        )
        .unwrap();
        let out = orgsync(&config, &["contacts", "sync"], &[]).await;
        assert_eq!(out.code, 2, "{source}: {}", out.stderr);
        for s in says {
            assert!(
                out.stderr.contains(s),
                "{source}: wants {s:?} in {}",
                out.stderr
            );
        }
        let managed = orgsync_testkit::books::managed_of(
            &orgsync_testkit::emulator::admin_client(&emu),
            &admin,
        )
        .await;
        assert!(managed.is_empty(), "{source}: something was written");
    }
}

// ---- one writing run at a time (the contacts-run lease) ---------------------------------

/// The lease as the store shows it, read without writing (`None` until a run holds it).
async fn lease_holder(state: &Path) -> Option<orgsync_store::Lease> {
    use orgsync_store::prelude::*;
    let store = orgsync_store_sqlite::SqliteStore::open_read_only(state)
        .await
        .ok()?;
    let lease = store.get_lease("contacts-run").await.ok().flatten();
    store.close().await;
    lease
}

/// Regression: two `contacts sync` runs at once both wrote; one then reported "duplicates
/// merged 290" (phones showed every colleague twice meanwhile). Now the second waits for
/// the first (and says so), and `--no-wait` exits 4 while a run holds the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_waits_for_the_first_and_no_wait_exits_4() {
    let e = env(12).await;
    let planned =
        json(&orgsync(&e.config, &["contacts", "plan", "--json"], &[]).await)["totals"]["created"]
            .as_u64()
            .unwrap();
    assert!(planned > 0);
    // Slow Google down so that the first run is still writing while the others start.
    let emu = e.emu.emulator.clone();
    let mut faults = emu.faults.settings();
    faults.latency_ms = 60;
    emu.faults.set(faults).unwrap();

    let config = e.config.clone();
    let first = tokio::spawn(async move {
        orgsync(
            &config,
            &["contacts", "sync", "--json", "--concurrency", "1"],
            &[],
        )
        .await
    });
    let state = e.config.with_file_name("state.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let held = loop {
        if let Some(lease) = lease_holder(&state).await {
            break lease;
        }
        assert!(
            std::time::Instant::now() < deadline && !first.is_finished(),
            "the first run never took the lease"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        held.holder.contains(':'),
        "the holder names host and pid: {}",
        held.holder
    );

    let config = e.config.clone();
    let second =
        tokio::spawn(async move { orgsync(&config, &["contacts", "sync", "--json"], &[]).await });
    let refused = orgsync(&e.config, &["contacts", "sync", "--no-wait"], &[]).await;
    assert_eq!(refused.code, 4, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains("another contacts run is in progress")
            && refused.stderr.contains(&held.holder),
        "{}",
        refused.stderr
    );

    let first = first.await.unwrap();
    let second = second.await.unwrap();
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("holds the lease; waiting")
            && second.stderr.contains(&held.holder)
            && second.stderr.contains("--no-wait"),
        "the second run did not wait: {}",
        second.stderr
    );
    let (first, second) = (json(&first), json(&second));
    assert_eq!(first["totals"]["created"].as_u64(), Some(planned));
    assert_eq!(
        second["totals"]["created"], 0,
        "the second run wrote again what the first wrote"
    );
    assert_eq!(first["totals"]["duplicatesMerged"], 0);
    assert_eq!(second["totals"]["duplicatesMerged"], 0);
    assert!(
        lease_holder(&state).await.is_none(),
        "the lease was not released"
    );
}

// ---- read-only state -------------------------------------------------------------------
//
// The tests run as root, where file permissions do not stop a write. So the binary is run
// as `nobody` through `setpriv` (util-linux) on files prepared for that user; run as an
// ordinary user, the same permissions apply to the binary directly.

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The real binary as an unprivileged user (see above); `None` when that is not possible
/// here (root without `setpriv`).
async fn orgsync_unprivileged(config: &Path, args: &[&str]) -> Option<Out> {
    let bin = env!("CARGO_BIN_EXE_orgsync");
    let mut cmd = if running_as_root() {
        let mut cmd = tokio::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        cmd
    } else {
        tokio::process::Command::new(bin)
    };
    let out = cmd
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("ORGSYNC_CONFIG")
        .output()
        .await;
    match out {
        Ok(out) => Some(Out::from(out)),
        Err(e) => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "WARNING: skipping a read-only state test: cannot run setpriv ({e})"
            );
            None
        }
    }
}

#[cfg(unix)]
fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Regression: with a read-only state file, `contacts sync` started, failed every user at
/// its first state write and exited 1. It must fail once, before any work, with exit 2 and a
/// message naming the file and what to do.
#[cfg(unix)]
#[tokio::test]
async fn a_read_only_state_file_fails_the_sync_up_front_with_exit_2() {
    let e = env(3).await;
    assert_eq!(orgsync(&e.config, &["contacts", "sync"], &[]).await.code, 0);
    let dir = e.config.parent().unwrap();
    let state = dir.join("state.db");
    if running_as_root() {
        // Everything belongs to `nobody`, who may write the directory but not the file.
        let status = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
    chmod(&state, 0o444);
    let Some(out) = orgsync_unprivileged(&e.config, &["contacts", "sync"]).await else {
        return;
    };
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&state.display().to_string()) && out.stderr.contains("read-only"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "the run started: {}", out.stdout);
    chmod(&state, 0o600);
}

/// Regression: in a read-only state directory even `users list` and `contacts plan` failed,
/// because opening the store wanted to create `<path>.migrate-lock`. Commands that only read
/// must work; one that writes fails up front, naming the lock file.
#[cfg(unix)]
#[tokio::test]
async fn read_only_commands_work_in_a_read_only_state_directory() {
    let e = env(3).await;
    assert_eq!(orgsync(&e.config, &["contacts", "sync"], &[]).await.code, 0);
    let dir = e.config.parent().unwrap();
    // Readable by the unprivileged user, writable by no one but root.
    for file in ["state.db", "sa.json", "orgsync.toml"] {
        chmod(&dir.join(file), 0o444);
    }
    chmod(dir, 0o555);
    let run = |args: &'static [&'static str]| orgsync_unprivileged(&e.config, args);
    let Some(users) = run(&["users", "list"]).await else {
        chmod(dir, 0o755);
        return;
    };
    assert_eq!(users.code, 0, "users list: {}", users.stderr);
    let plan = run(&["contacts", "plan", "--json"]).await.unwrap();
    assert_eq!(plan.code, 0, "contacts plan: {}", plan.stderr);
    assert_eq!(json(&plan)["totals"]["created"], 0, "{}", plan.stdout);
    let dry = run(&["contacts", "sync", "--dry-run"]).await.unwrap();
    assert_eq!(dry.code, 0, "contacts sync --dry-run: {}", dry.stderr);
    let channels = run(&["channels", "list"]).await.unwrap();
    assert_eq!(channels.code, 0, "channels list: {}", channels.stderr);

    let sync = run(&["contacts", "sync"]).await.unwrap();
    assert_eq!(sync.code, 2, "{}\n{}", sync.stdout, sync.stderr);
    assert!(
        sync.stderr.contains("state.db.migrate-lock") && sync.stderr.contains("write access"),
        "{}",
        sync.stderr
    );
    chmod(dir, 0o755);
}
