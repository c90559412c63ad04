//! `orgsync serve` provisioning a SCIM app in real time: the emulator's real push
//! notifications reach a real daemon, whose `scim.user` jobs write to a real, independent
//! SCIM server (scim2-server). The full SCIM run is every five minutes (the default), so
//! a change that lands within the test's minute came through push.

use std::time::{Duration, Instant};

use orgsync_jobs::config::ScimTargetConfig;
use orgsync_testkit::scim::{ScimServer, TOKEN};
use serde_json::Value;

use crate::common::{env, wait_for};

const T: Duration = Duration::from_secs(60);

async fn by_external(server: &ScimServer, id: &str) -> Option<Value> {
    server
        .users()
        .await
        .into_iter()
        .find(|u| u["externalId"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joiners_edits_and_suspensions_reach_the_scim_app_through_push() {
    let e = env(20).await;
    let server = ScimServer::spawn().await;
    let token_file = e.dir.path().join("scim.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut config = e.config();
    config.scim = vec![ScimTargetConfig {
        name: "app".into(),
        url: server.base.clone(),
        token_file: Some(token_file),
        ..ScimTargetConfig::default()
    }];
    assert_eq!(config.serve.scim_interval_secs, 300);
    let store = e.sqlite("scim.db").await;
    let d = e.start(config, store.clone()).await;
    e.wait_for_channels(store.as_ref(), T).await;
    // The full run on start provisions everyone active.
    let directory = orgsync_testkit::emulator::directory_users(&e.admin).await;
    let active = directory
        .iter()
        .filter(|u| u.suspended != Some(true) && u.archived != Some(true))
        .count();
    wait_for("the full SCIM run on start", T, || async {
        (server.users().await.len() >= active).then_some(())
    })
    .await;

    // An edit: the family name.
    let member = directory
        .iter()
        .find(|u| {
            u.suspended != Some(true)
                && u.archived != Some(true)
                && !u.primary_email.as_deref().unwrap().starts_with("admin@")
        })
        .unwrap();
    let id = member.id.clone().unwrap();
    let started = Instant::now();
    e.rename_family(&id, "Pushed").await;
    wait_for("the edit in the app", T, || async {
        by_external(&server, &id)
            .await
            .filter(|u| u["name"]["familyName"] == "Pushed")
            .map(|_| ())
    })
    .await;
    let edit_latency = started.elapsed();

    // A joiner.
    let joiner = e.insert_user("scim.joiner").await;
    let jid = joiner.id.clone().unwrap();
    wait_for("the joiner in the app", T, || async {
        by_external(&server, &jid)
            .await
            .filter(|u| u["active"] == true)
            .map(|_| ())
    })
    .await;

    // A suspension deactivates, keeping the account.
    let scim_id = by_external(&server, &id).await.unwrap()["id"].clone();
    let dir = e.admin.directory();
    let mut u = dir.users_get(&id, Some("full"), None).await.unwrap();
    u.suspended = Some(true);
    u.password = None;
    dir.users_update(&id, &u).await.unwrap();
    wait_for("the suspension in the app", T, || async {
        by_external(&server, &id)
            .await
            .filter(|u| u["active"] == false && u["id"] == scim_id)
            .map(|_| ())
    })
    .await;
    assert!(
        edit_latency < Duration::from_secs(30),
        "an edit took {edit_latency:?}: not through push"
    );
    // The status page shows the full run on start and the pushed changes.
    let status: Value = reqwest::get(format!("http://{}/status.json", d.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run = &status["jobs"]["scim"]["last_run"]["ok"];
    assert_eq!(run["outcome"], "ok", "{status:#}");
    assert_eq!(run["trigger"], "schedule", "{run}");
    assert!(
        run["counts"]["created"].as_u64().unwrap() >= active as u64,
        "{run}"
    );
    let changes = status["changes"]["ok"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["job"] == "scim" && c["detail"].as_str().unwrap().contains("push")),
        "{changes:?}"
    );
    d.shutdown().await;
}
