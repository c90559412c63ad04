//! `orgsync users sync|list|show` end to end: the real binary against the in-process
//! emulator (real HTTP on loopback) with a real SQLite state file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orgsync_client::{ClientConfig, Endpoints, GoogleClient, Pacing, ServiceAccount};
use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use orgsync_wire::directory::User;
use serde_json::Value;

struct Env {
    emu: EmulatorHandle,
    dir: tempfile::TempDir,
    config: PathBuf,
    admin: GoogleClient,
}

async fn env(users: usize, extra_toml: &str) -> Env {
    let emu = orgsync_emulator::spawn(EmulatorConfig::for_tests(users))
        .await
        .expect("emulator starts");
    let key = orgsync_emulator::oauth::service_account_key(&emu.emulator).expect("key");
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("sa.json");
    std::fs::write(&key_path, serde_json::to_string(&key).unwrap()).unwrap();
    let config = dir.path().join("orgsync.toml");
    std::fs::write(
        &config,
        format!(
            "[google]\nendpoint = \"{}\"\nservice_account_key_file = \"sa.json\"\n\
             admin_subject = \"admin@example.com\"\n[state]\npath = \"state.db\"\n{extra_toml}",
            emu.base_url
        ),
    )
    .unwrap();
    let sa = Arc::new(ServiceAccount::from_key(key).unwrap());
    let mut cc = ClientConfig {
        endpoints: Endpoints::emulator(&emu.base_url),
        pacing: Pacing::unlimited(),
        admin_subject: Some("admin@example.com".into()),
        ..ClientConfig::default()
    };
    cc.scopes.directory = vec![orgsync_wire::scopes::DIRECTORY_USER.into()];
    let admin = GoogleClient::new(sa, cc);
    Env {
        emu,
        dir,
        config,
        admin,
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn orgsync(config: &Path, args: &[&str]) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("ORGSYNC_CONFIG")
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

async fn directory_users(admin: &GoogleClient) -> Vec<User> {
    use futures::TryStreamExt;
    admin
        .directory()
        .users_list(Default::default())
        .try_collect()
        .await
        .unwrap()
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
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_orgsync"))
        .arg("--config")
        .arg(&e.config)
        .arg("serve")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
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
