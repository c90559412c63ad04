//! `orgsync doctor` end to end: every failure it diagnoses is produced for real through
//! the emulator (its control API, a non-admin subject, a broken key, a closed port, a
//! world-readable state file), and each gives its own line and fix.

use std::path::Path;

use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use orgsync_testkit::cli::ConfigDir;
use orgsync_testkit::emulator::{control, non_admin_email};
use orgsync_wire::scopes;
use serde_json::{Value, json};

use crate::{ORGSYNC, json, orgsync};

/// The checks of a `doctor --json` run with this status.
fn with_status<'a>(report: &'a Value, status: &str) -> Vec<&'a Value> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == status)
        .collect()
}

/// The one failed check; panics (with the report) unless exactly one failed.
fn only_failure(report: &Value) -> &Value {
    let failed = with_status(report, "fail");
    assert_eq!(failed.len(), 1, "{report:#}");
    failed[0]
}

async fn doctor(config: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["doctor", "--json"];
    args.extend_from_slice(extra);
    let out = orgsync(config, &args).await;
    (out.code, json(&out))
}

/// Switch `api` off in the emulated Cloud project (the control API's `apis`).
async fn disable_api(emu: &EmulatorHandle, api: &str) {
    control(
        emu,
        reqwest::Method::PUT,
        "apis",
        Some(json!({"disabled": [api]})),
    )
    .await;
}

async fn emulator() -> EmulatorHandle {
    orgsync_testkit::spawn(EmulatorConfig::for_tests(6)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_against_the_emulator_with_the_config_it_writes() {
    let data = tempfile::tempdir().unwrap();
    let mut config = EmulatorConfig::for_tests(6);
    config.data_dir = Some(data.path().to_path_buf());
    let _emu = orgsync_testkit::spawn(config).await;
    let written = data.path().join("orgsync.toml");

    let out = orgsync(&written, &["doctor", "--job", "all"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for scope in [
        scopes::DIRECTORY_USER_READONLY,
        scopes::DIRECTORY_GROUP_READONLY,
        scopes::CONTACTS,
        scopes::GMAIL_COMPOSE,
        scopes::CALENDAR_READONLY,
    ] {
        assert!(
            out.stdout
                .contains(&format!("✔ scope {scope} is delegated")),
            "{}",
            out.stdout
        );
    }
    for api in ["People API", "Gmail API", "Google Calendar API"] {
        assert!(
            out.stdout.contains(&format!("✔ {api} is enabled")),
            "{}",
            out.stdout
        );
    }
    assert!(
        out.stdout
            .contains("is an active super admin and can list users")
    );
    assert!(out.stdout.contains("All checks passed."), "{}", out.stdout);
    assert!(!out.stdout.contains('✘'), "{}", out.stdout);

    let (code, report) = doctor(&written, &["--job", "all"]).await;
    assert_eq!(code, 0);
    assert_eq!(report["ok"], true);
    // The paste-ready list holds every scope, comma-separated as the Admin console wants.
    let pasted = report["delegation"]["scopes"].as_str().unwrap();
    assert_eq!(pasted.split(',').count(), 5, "{pasted}");
    assert!(!pasted.contains(' '));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelegated_scope_is_named_with_the_client_id_and_where_to_add_it() {
    let emu = emulator().await;
    let ConfigDir { dir: _dir, config } = ConfigDir::new(&emu, "");
    let granted = control(
        &emu,
        reqwest::Method::PUT,
        "delegation",
        Some(json!({"scopes": [scopes::DIRECTORY_USER_READONLY, scopes::CONTACTS]})),
    )
    .await;
    let client_id = granted[0]["client_id"].as_str().unwrap().to_string();

    let (code, report) = doctor(&config, &[]).await;
    assert_eq!(code, 2, "{report:#}");
    let failed = only_failure(&report);
    assert_eq!(failed["id"], "scope");
    let line = failed["line"].as_str().unwrap();
    assert!(line.contains(scopes::DIRECTORY_GROUP_READONLY), "{line}");
    assert!(line.contains(&client_id), "{line}");
    let fix = failed["fix"].as_str().unwrap();
    assert!(fix.contains("Domain-wide delegation"), "{fix}");
    assert!(fix.contains(&client_id), "{fix}");
    // The two granted scopes pass on their own, and the list to paste has all three.
    let passed: Vec<&str> = with_status(&report, "pass")
        .iter()
        .filter(|c| c["id"] == "scope")
        .map(|c| c["line"].as_str().unwrap())
        .collect();
    assert_eq!(passed.len(), 2, "{passed:?}");
    assert_eq!(report["delegation"]["client_id"], client_id.as_str());
    assert_eq!(
        report["delegation"]["scopes"],
        [
            scopes::DIRECTORY_USER_READONLY,
            scopes::DIRECTORY_GROUP_READONLY,
            scopes::CONTACTS
        ]
        .join(",")
    );
}

/// Meeting rooms as a shared list need one more scope: doctor checks it and puts it in
/// the line to paste.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_list_needs_the_resource_scope_and_doctor_names_it() {
    let emu = emulator().await;
    let ConfigDir { dir: _dir, config } = ConfigDir::new(
        &emu,
        "[[contacts.shared_lists]]\nname = \"Meeting rooms\"\nrooms = true\n",
    );
    let (code, report) = doctor(&config, &["--job", "contacts"]).await;
    assert_eq!(code, 2, "{report:#}");
    let failed = only_failure(&report);
    assert_eq!(failed["id"], "scope");
    let line = failed["line"].as_str().unwrap();
    assert!(
        line.contains(scopes::DIRECTORY_RESOURCE_CALENDAR_READONLY),
        "{line}"
    );
    let to_paste = report["delegation"]["scopes"].as_str().unwrap();
    assert!(
        to_paste.contains(scopes::DIRECTORY_RESOURCE_CALENDAR_READONLY),
        "{to_paste}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_api_is_told_apart_from_a_missing_permission() {
    let emu = emulator().await;
    let ConfigDir { dir: _dir, config } = ConfigDir::new(&emu, "");
    disable_api(&emu, "people").await;

    let (code, report) = doctor(&config, &[]).await;
    assert_eq!(code, 2, "{report:#}");
    let failed = only_failure(&report);
    assert_eq!(failed["id"], "api.people");
    assert!(
        failed["line"]
            .as_str()
            .unwrap()
            .contains("People API is not enabled in the Cloud project"),
        "{failed}"
    );
    let fix = failed["fix"].as_str().unwrap();
    assert!(
        fix.contains(
            "https://console.developers.google.com/apis/api/people.googleapis.com/overview?project="
        ),
        "{fix}"
    );
    assert!(
        !fix.contains("admin"),
        "an API switch is not a permission: {fix}"
    );

    // A disabled Admin SDK API is caught by the admin subject's first read, with its link.
    disable_api(&emu, "directory").await;
    let (code, report) = doctor(&config, &["--job", "users"]).await;
    assert_eq!(code, 2);
    let failed = only_failure(&report);
    assert_eq!(failed["id"], "api.directory");
    assert!(
        failed["fix"]
            .as_str()
            .unwrap()
            .contains("admin.googleapis.com")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_without_admin_rights_is_told_which_privileges_it_needs() {
    let emu = emulator().await;
    let member = non_admin_email(&orgsync_testkit::admin_client(&emu)).await;
    let ConfigDir { dir: _dir, config } = ConfigDir::new(&emu, "");
    let out = ORGSYNC
        .run_env(
            &config,
            &["doctor", "--json", "--job", "users"],
            &[("ORGSYNC__GOOGLE__ADMIN_SUBJECT", member.as_str())],
        )
        .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    let report = out.json();
    let failed = only_failure(&report);
    assert_eq!(failed["id"], "admin_subject");
    assert!(
        failed["line"]
            .as_str()
            .unwrap()
            .contains(&format!("{member} cannot read users")),
        "{failed}"
    );
    let fix = failed["fix"].as_str().unwrap();
    assert!(
        fix.contains("Users → Read") && fix.contains("Admin roles"),
        "{fix}"
    );
    // The API itself is enabled: that is said, so nobody goes looking in the console.
    assert!(
        with_status(&report, "pass")
            .iter()
            .any(|c| c["id"] == "api.directory")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_key_and_an_unreachable_endpoint_each_get_one_line_and_a_fix() {
    let emu = emulator().await;
    let ConfigDir { dir, config } = ConfigDir::new(&emu, "");

    // An OAuth client file where the service-account key should be.
    let secret = orgsync_emulator::oauth::client_secret_file(&emu.emulator).unwrap();
    std::fs::write(
        dir.path().join("sa.json"),
        serde_json::to_string(&secret).unwrap(),
    )
    .unwrap();
    let (code, report) = doctor(&config, &[]).await;
    assert_eq!(code, 2);
    let failed = only_failure(&report);
    assert_eq!(failed["id"], "key");
    assert!(
        failed["line"].as_str().unwrap().contains("sa.json"),
        "{failed}"
    );
    assert!(failed["fix"].as_str().unwrap().contains("Add key → JSON"));

    // A real key whose token endpoint nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut key =
        serde_json::to_value(orgsync_emulator::oauth::service_account_key(&emu.emulator).unwrap())
            .unwrap();
    key["token_uri"] = json!(format!("{dead}/token"));
    std::fs::write(dir.path().join("sa.json"), key.to_string()).unwrap();
    let (code, report) = doctor(&config, &[]).await;
    assert_eq!(code, 2);
    let failed = only_failure(&report);
    assert_eq!(failed["id"], "endpoint");
    assert!(failed["line"].as_str().unwrap().contains(&dead), "{failed}");
    assert!(failed["fix"].as_str().unwrap().contains("orgsync emulator"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_readable_state_file_and_an_unreachable_public_url_are_failures() {
    let emu = emulator().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let public = format!("http://{}/webhook/google", closed.local_addr().unwrap());
    drop(closed);
    let ConfigDir { dir, config } = ConfigDir::new(
        &emu,
        &format!("[state]\npath = \"state.db\"\n[serve]\npublic_url = \"{public}\"\n"),
    );
    // Before the first run there is no state file, and doctor does not create one.
    let (_, report) = doctor(&config, &["--job", "contacts"]).await;
    assert!(report["ok"].as_bool().unwrap(), "{report:#}");
    assert!(
        !dir.path().join("state.db").exists(),
        "doctor created the state file"
    );

    let sync = orgsync(&config, &["users", "sync", "--json"]).await;
    assert_eq!(sync.code, 0, "{}", sync.stderr);
    let state = dir.path().join("state.db");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).unwrap();

    let (code, report) = doctor(&config, &["--job", "users"]).await;
    assert_eq!(code, 2, "{report:#}");
    let failed = with_status(&report, "fail");
    let state_check = failed.iter().find(|c| c["id"] == "state").expect("state");
    assert_eq!(
        state_check["fix"],
        format!("chmod 600 {}", state.display()),
        "{report:#}"
    );
    let health = failed
        .iter()
        .find(|c| c["id"] == "serve.health")
        .expect("serve.health");
    let healthz = public.replace("/webhook/google", "/healthz");
    assert!(
        health["line"].as_str().unwrap().contains(&healthz),
        "{health}"
    );
    assert!(health["fix"].as_str().unwrap().contains("orgsync serve"));
    assert_eq!(failed.len(), 2, "{report:#}");
}

/// Google's `accessNotConfigured` comes in the `usageLimits` domain, as rate limits do:
/// it used to be retried for the whole retry budget and reported as an outage (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_against_a_disabled_api_exits_2_with_the_link_instead_of_retrying() {
    let emu = emulator().await;
    let ConfigDir { dir: _dir, config } = ConfigDir::new(&emu, "[state]\npath = \"state.db\"\n");
    disable_api(&emu, "directory").await;
    let started = std::time::Instant::now();
    let out = orgsync(&config, &["users", "sync"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("https://console.developers.google.com/apis/api/admin.googleapis.com"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("admin_subject"), "{}", out.stderr);
    let stats = orgsync_testkit::emulator::stats(&emu).await;
    assert_eq!(
        stats["calls_by_method"]["directory.users.list"], 1,
        "retried: {stats}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// The README's first command ends by sending a newcomer to the setup guide, which exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_passes_and_ends_by_pointing_at_the_workspace_guide() {
    let out = ORGSYNC
        .command()
        .args(["demo", "--users", "12"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The shared supplier list and the department labels are shown and checked.
    assert!(
        stdout.contains("[ok] ") && stdout.contains("label \"Suppliers\" holds the 4 suppliers"),
        "{stdout}"
    );
    assert!(
        stdout.contains("department labels Company directory · "),
        "{stdout}"
    );
    assert!(!stdout.contains("[FAILED]"), "{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains("\"Use it with your Workspace\"") && last.contains("orgsync doctor"),
        "{last}"
    );
    assert!(
        stdout.contains("orgsync scim sync") && stdout.contains("\"Provision apps over SCIM\""),
        "{stdout}"
    );
    let readme = include_str!("../../../../README.md");
    assert!(readme.contains("\n## Use it with your Workspace\n"));
    assert!(readme.contains("\n## Provision apps over SCIM\n"));
}

/// For `serve`: live push channels pass, and channels that all expired (nobody renewed
/// them) fail with what to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_push_channels_fail_and_live_ones_pass() {
    let mut config = EmulatorConfig::for_tests(4);
    config.channel_ttl_cap_secs = 3;
    let emu = orgsync_testkit::spawn(config).await;
    let ConfigDir { dir: _dir, config } = ConfigDir::new(&emu, "[state]\npath = \"state.db\"\n");
    let renew = orgsync(&config, &["channels", "renew", "--json"]).await;
    assert_eq!(renew.code, 0, "{}", renew.stderr);

    let (code, report) = doctor(&config, &["--job", "users"]).await;
    assert_eq!(code, 0, "{report:#}");
    let live = with_status(&report, "pass")
        .into_iter()
        .find(|c| c["id"] == "serve.channels")
        .expect("a serve.channels line");
    assert!(live["line"].as_str().unwrap().contains("live push channel"));

    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let (code, report) = doctor(&config, &["--job", "users"]).await;
    assert_eq!(code, 2, "{report:#}");
    let failed = only_failure(&report);
    assert_eq!(failed["id"], "serve.channels");
    assert!(failed["line"].as_str().unwrap().contains("expired"));
    assert!(
        failed["fix"]
            .as_str()
            .unwrap()
            .contains("orgsync channels renew")
    );
}
