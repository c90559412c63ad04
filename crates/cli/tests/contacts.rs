//! `orgsync contacts plan|sync|undo` end to end: the real binary, a config file, a SQLite
//! state file, the in-process emulator over loopback. Exit codes are part of the interface.

use std::path::{Path, PathBuf};

use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use serde_json::Value;

struct Env {
    emu: EmulatorHandle,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

async fn env(users: usize) -> Env {
    let emu = orgsync_emulator::spawn(EmulatorConfig {
        personal_contacts_per_user: 2,
        ..EmulatorConfig::for_tests(users)
    })
    .await
    .expect("emulator starts");
    let key = orgsync_emulator::oauth::service_account_key(&emu.emulator).expect("key");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sa.json"),
        serde_json::to_string(&key).unwrap(),
    )
    .unwrap();
    let config = dir.path().join("orgsync.toml");
    std::fs::write(
        &config,
        format!(
            "[google]\nendpoint = \"{}\"\nservice_account_key_file = \"sa.json\"\n\
             admin_subject = \"admin@example.com\"\n[state]\npath = \"state.db\"\n",
            emu.base_url
        ),
    )
    .unwrap();
    Env {
        emu,
        _dir: dir,
        config,
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn orgsync(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("ORGSYNC_CONFIG")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("binary runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", out.stdout, out.stderr))
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
    let token = orgsync_emulator::oauth::mint_access_token(
        &e.emu.emulator,
        Some("admin@example.com"),
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
