//! `orgsync scim sync|plan` end to end: the real binary, a config file with `[[scim]]`
//! targets, the emulator, and real SCIM servers (scim2-server). Exit codes, `--json`, a
//! dry run that writes nothing, and a run killed with SIGKILL that the next run finishes
//! without a duplicate.

use std::collections::BTreeSet;
use std::time::Duration;

use orgsync_emulator::EmulatorConfig;
use orgsync_testkit::cli::ConfigDir;
use orgsync_testkit::emulator::directory_users;
use orgsync_testkit::scim::{ScimServer, TOKEN};

use crate::{ORGSYNC, json, orgsync};

fn target(name: &str, server: &ScimServer, token_file: &str, extra: &str) -> String {
    format!(
        "\n[[scim]]\nname = \"{name}\"\nurl = \"{}\"\ntoken_file = \"{token_file}\"\n{extra}",
        server.base
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_sync_reports_plans_and_exits_by_the_worst_target() {
    let emu = orgsync_testkit::spawn(EmulatorConfig::for_tests(30)).await;
    let app = ScimServer::spawn().await;
    let other = ScimServer::spawn().await;
    let toml = format!(
        "[state]\npath = \"state.db\"\n{}{}",
        target("app", &app, "app.token", "groups = [\"sales@example.com\"]"),
        target("other", &other, "wrong.token", "")
    );
    let ConfigDir { dir, config } = ConfigDir::new(&emu, &toml);
    std::fs::write(dir.path().join("app.token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(dir.path().join("wrong.token"), "not-the-token").unwrap();

    // plan: every operation, nothing written.
    let plan = orgsync(&config, &["scim", "plan", "--target", "app", "--json"]).await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let v = json(&plan);
    let created = v[0]["report"]["users"]["created"].as_u64().unwrap();
    assert!(created > 20, "{v}");
    assert_eq!(v[0]["report"]["groups"]["created"], 1);
    assert!(app.users().await.is_empty(), "plan wrote");

    // Both targets: the refused token makes it exit 2 and says what to check; the
    // other target is provisioned all the same.
    let both = orgsync(&config, &["scim", "sync"]).await;
    assert_eq!(both.code, 2, "{}\n{}", both.stdout, both.stderr);
    assert!(both.stderr.contains("scim 'other'"), "{}", both.stderr);
    assert!(both.stderr.contains("token"), "{}", both.stderr);
    assert!(
        both.stdout
            .contains(&format!("scim 'app': users {created} created")),
        "{}",
        both.stdout
    );
    assert!(!both.stderr.contains(TOKEN) && !both.stdout.contains(TOKEN));
    assert_eq!(app.users().await.len() as u64, created);

    // The app alone: nothing left to do.
    let again = orgsync(&config, &["scim", "sync", "--target", "app", "--json"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(json(&again)[0]["report"]["changes"], serde_json::json!([]));

    let unknown = orgsync(&config, &["scim", "sync", "--target", "nope"]).await;
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("app, other"), "{}", unknown.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_typo_stops_at_the_guard_with_exit_3() {
    let emu = orgsync_testkit::spawn(EmulatorConfig::for_tests(30)).await;
    let app = ScimServer::spawn().await;
    let base = format!(
        "[state]\npath = \"state.db\"\n{}",
        target("app", &app, "t", "")
    );
    let ConfigDir { dir, config } = ConfigDir::new(&emu, &base);
    std::fs::write(dir.path().join("t"), TOKEN).unwrap();
    assert_eq!(orgsync(&config, &["scim", "sync"]).await.code, 0);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[scim.users]\norg_units = [\"/Nowhere\"]\n");
    std::fs::write(&config, text).unwrap();
    let stopped = orgsync(&config, &["scim", "sync"]).await;
    assert_eq!(stopped.code, 3, "{}\n{}", stopped.stdout, stopped.stderr);
    assert!(stopped.stderr.contains("--force"), "{}", stopped.stderr);
    assert!(app.users().await.iter().all(|u| u["active"] == true));
    let forced = orgsync(&config, &["scim", "sync", "--force"]).await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(app.users().await.iter().all(|u| u["active"] == false));
}

/// A run killed with SIGKILL part-way (the links it wrote so far are in the store, the
/// rest of what it created only on the server) is finished by the next run: every active
/// person once, no duplicate, and a third run changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_part_way_is_finished_by_the_next_without_duplicates() {
    let emu = orgsync_testkit::spawn(EmulatorConfig::for_tests(300)).await;
    let app = ScimServer::spawn().await;
    let toml = format!(
        "[state]\npath = \"state.db\"\n{}",
        target("app", &app, "t", "concurrency = 1")
    );
    let ConfigDir { dir, config } = ConfigDir::new(&emu, &toml);
    std::fs::write(dir.path().join("t"), TOKEN).unwrap();
    let mut child = ORGSYNC
        .with_config(&config)
        .args(["scim", "sync"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let n = app.users().await.len();
        if n >= 30 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "only {n} created"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "the run finished before it was killed");
    let partial = app.users().await.len();

    let next = orgsync(&config, &["scim", "sync", "--json"]).await;
    assert_eq!(next.code, 0, "{}", next.stderr);
    let users = app.users().await;
    let names: BTreeSet<String> = users
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(names.len(), users.len(), "a duplicate");
    let active = directory_users(&orgsync_testkit::admin_client(&emu))
        .await
        .iter()
        .filter(|u| u.suspended != Some(true) && u.archived != Some(true))
        .count();
    assert_eq!(users.len(), active, "killed after {partial}");
    let third = orgsync(&config, &["scim", "sync", "--json"]).await;
    assert_eq!(json(&third)[0]["report"]["changes"], serde_json::json!([]));
}

/// `orgsync doctor --job scim`: an app that answers and accepts its token passes with
/// what it supports; a revoked token, a wrong URL and a token file others can read each
/// fail with their own fix; nothing is written to the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_each_scim_app_url_and_token() {
    let emu = orgsync_testkit::spawn(EmulatorConfig::for_tests(5)).await;
    let app = ScimServer::spawn().await;
    let mut wrong_url = app.base.trim_end_matches("v2/").to_string();
    wrong_url.push_str("nope/");
    let toml = format!(
        "[state]\npath = \"state.db\"\n{}{}\n[[scim]]\nname = \"lost\"\nurl = \"{wrong_url}\"\ntoken_file = \"good.token\"\n{}",
        target("good", &app, "good.token", ""),
        target("revoked", &app, "revoked.token", ""),
        target("open", &app, "open.token", ""),
    );
    let ConfigDir { dir, config } = ConfigDir::new(&emu, &toml);
    let write = |name: &str, text: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt as _;
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write("good.token", TOKEN, 0o600);
    write("revoked.token", "an-old-token", 0o600);
    write("open.token", TOKEN, 0o644);
    let out = orgsync(&config, &["doctor", "--job", "scim", "--json"]).await;
    assert_eq!(out.code, 2, "{}", out.stdout);
    let report = json(&out);
    let check = |id: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {report:#}"))
            .clone()
    };
    let good = check("scim.good");
    assert_eq!(good["status"], "pass", "{good}");
    assert!(
        good["line"].as_str().unwrap().contains("PATCH yes"),
        "{good}"
    );
    let revoked = check("scim.revoked");
    assert_eq!(revoked["status"], "fail");
    assert!(
        revoked["line"]
            .as_str()
            .unwrap()
            .contains("refused the token"),
        "{revoked}"
    );
    assert!(
        revoked["fix"].as_str().unwrap().contains("new SCIM token"),
        "{revoked}"
    );
    let open = check("scim.open");
    assert_eq!(open["status"], "fail");
    assert!(
        open["fix"].as_str().unwrap().starts_with("chmod 600"),
        "{open}"
    );
    let lost = check("scim.lost");
    assert_eq!(lost["status"], "fail");
    assert!(
        lost["fix"].as_str().unwrap().contains("SCIM base URL"),
        "{lost}"
    );
    assert!(!out.stdout.contains(TOKEN) && !out.stdout.contains("an-old-token"));
    assert!(app.users().await.is_empty(), "doctor wrote");
}
