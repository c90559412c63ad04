//! `orgsync serve` end to end on SQLite: the emulator changes its directory through the API
//! and delivers real push notifications to a real daemon on 127.0.0.1:0.

mod limits;

use std::time::Duration;

use crate::common::{self, current_channels, env, user_ids, wait_for, wait_for_family};
use orgsync_daemon::Clock;
use orgsync_wire::directory::push_headers as h;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_type_reaches_the_store() {
    let e = env(5).await;
    let store = e.sqlite("a.db").await;
    let d = e.start(e.config(), store.clone()).await;
    // Start: one channel per event type, and the reconcile on start fills the table.
    e.wait_for_channels(store.as_ref(), T).await;
    wait_for("initial reconcile", T, || async {
        (store.count_users(true).await.unwrap() >= 6).then_some(())
    })
    .await;

    // add
    let u = e.insert_user("pushed").await;
    let id = u.id.clone().unwrap();
    let row = wait_for("add applied", T, || async {
        store.get_user(&id).await.unwrap()
    })
    .await;
    assert!(row.active());
    // update
    e.rename_family(&id, "Renamed").await;
    wait_for_family(store.as_ref(), &id, "Renamed", T).await;
    // makeAdmin
    e.admin
        .directory()
        .users_make_admin(&id, true)
        .await
        .unwrap();
    wait_for("makeAdmin applied", T, || async {
        store
            .get_user(&id)
            .await
            .unwrap()
            .filter(|u| u.profile.is_admin)
    })
    .await;
    // delete → deactivated (default policy), row kept
    e.admin.directory().users_delete(&id).await.unwrap();
    wait_for("delete applied", T, || async {
        store.get_user(&id).await.unwrap().filter(|u| !u.active())
    })
    .await;
    // undelete → active again, same row
    e.admin
        .directory()
        .users_undelete(&id, Some("/"))
        .await
        .unwrap();
    let back = wait_for("undelete applied", T, || async {
        store.get_user(&id).await.unwrap().filter(|u| u.active())
    })
    .await;
    assert_eq!(back.created_at, row.created_at, "the same row came back");

    for state in ["add", "update", "makeAdmin", "delete", "undelete"] {
        assert!(
            d.metrics()
                .get("orgsync_notifications_received_total", state)
                >= 1,
            "no {state} notification counted"
        );
    }
    // The outbox recorded every change in order.
    let kinds: Vec<String> = store
        .list_outbox(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.directory_id == id)
        .map(|o| o.kind.to_string())
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("created"));
    assert!(kinds.contains(&"deactivated".to_string()), "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("reactivated"));

    let metrics = reqwest::get(format!("http://{}/metrics", d.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("orgsync_notifications_received_total{state=\"add\"}"));
    assert!(metrics.contains("orgsync_google_calls_total{method=\"directory.users.get\"}"));
    assert!(metrics.contains("orgsync_channel_expiry_seconds{event=\"update\"}"));
    assert!(metrics.contains("orgsync_leader 1"));
    let health = reqwest::get(format!("http://{}/healthz", d.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("http://{}/readyz", d.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    d.shutdown().await;
    e.emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_garbage_and_replayed_requests_change_nothing() {
    let e = env(3).await;
    let store = e.sqlite("a.db").await;
    let d = e.start(e.config(), store.clone()).await;
    e.wait_for_channels(store.as_ref(), T).await;
    wait_for("initial reconcile", T, || async {
        (store.count_users(true).await.unwrap() >= 4).then_some(())
    })
    .await;
    let ch = store
        .list_live_channels(e.clock.now())
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.event == "update")
        .unwrap();
    let victim = store
        .list_users(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.primary_email() != common::ADMIN)
        .unwrap();
    // Wait for the queue to drain so counts below are ours.
    wait_for("empty queue", T, || async {
        (store.count_jobs().await.unwrap() == 0).then_some(())
    })
    .await;
    let url = format!("http://{}/hooks/directory", d.addr);
    let http = reqwest::Client::new();
    let body = serde_json::json!({"kind": "admin#directory#user", "id": victim.directory_id(),
        "primaryEmail": victim.primary_email()})
    .to_string();
    let post = |token: &str, channel: &str, number: &str, body: String| {
        http.post(&url)
            .header(h::CHANNEL_ID, channel)
            .header(h::CHANNEL_TOKEN, token)
            .header(h::RESOURCE_ID, ch.resource_id.clone())
            .header(h::RESOURCE_STATE, "update")
            .header(h::MESSAGE_NUMBER, number)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let good = ch.token.expose().to_owned();
    let mut wrong = good.clone();
    wrong.replace_range(0..1, if good.starts_with('0') { "1" } else { "0" });
    let cases = [
        (
            post(&wrong, &ch.id, "900001", body.clone()).await.unwrap(),
            401,
        ),
        (post("", &ch.id, "900002", body.clone()).await.unwrap(), 401),
        (
            post(&good, "orgsync-forged", "900003", body.clone())
                .await
                .unwrap(),
            404,
        ),
        (
            post(&good, &ch.id, "900004", "{not json".into())
                .await
                .unwrap(),
            400,
        ),
        (
            post(&good, &ch.id, "900005", "{}".into()).await.unwrap(),
            400,
        ),
        (post(&good, &ch.id, "abc", body.clone()).await.unwrap(), 400),
        (
            post(&good, &ch.id, "900006", "x".repeat(200_000))
                .await
                .unwrap(),
            413,
        ),
    ];
    for (i, (resp, want)) in cases.into_iter().enumerate() {
        assert_eq!(resp.status().as_u16(), want, "case {i}");
    }
    let bare = http.post(&url).body("hello").send().await.unwrap();
    assert_eq!(bare.status().as_u16(), 400);
    assert_eq!(
        store.count_jobs().await.unwrap(),
        0,
        "a rejected request enqueued work"
    );
    assert_eq!(
        store
            .get_user(victim.directory_id())
            .await
            .unwrap()
            .unwrap(),
        victim,
        "a rejected request changed the row"
    );
    assert!(
        d.metrics()
            .get("orgsync_notifications_rejected_total", "bad_token")
            >= 2
    );

    // A valid notification, replayed: one job, one effect.
    let before_jobs = d.metrics().get("orgsync_jobs_total", "unchanged");
    for _ in 0..3 {
        let r = post(&good, &ch.id, "900100", body.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    assert_eq!(
        d.metrics()
            .get("orgsync_notifications_duplicate_total", "update"),
        2
    );
    wait_for("replayed job ran once", T, || async {
        (d.metrics().get("orgsync_jobs_total", "unchanged") == before_jobs + 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        d.metrics().get("orgsync_jobs_total", "unchanged"),
        before_jobs + 1
    );
    assert_eq!(store.count_jobs().await.unwrap(), 0);
    d.shutdown().await;
    e.emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_stream_loses_nothing_and_reuses_channels() {
    let e = env(10).await;
    let store = e.sqlite("a.db").await;
    let d = e.start(e.config(), store.clone()).await;
    let addr = d.addr;
    e.wait_for_channels(store.as_ref(), T).await;
    wait_for("initial reconcile", T, || async {
        (store.count_users(false).await.unwrap() >= 11).then_some(())
    })
    .await;
    let ids = user_ids(store.as_ref()).await;
    // A stream of updates; the daemon crashes in the middle of it.
    for (i, id) in ids.iter().enumerate() {
        if i == ids.len() / 2 {
            d.kill();
            tokio::time::sleep(Duration::from_millis(50)).await;
            break;
        }
        e.rename_family(id, &format!("Gen1-{i}")).await;
    }
    for (i, id) in ids.iter().enumerate().skip(ids.len() / 2) {
        e.rename_family(id, &format!("Gen1-{i}")).await;
    }
    // Restart on the same address (the channels point there).
    let d2 = e
        .start_on(&addr.to_string(), e.config(), store.clone())
        .await;
    for (i, id) in ids.iter().enumerate() {
        let want = format!("Gen1-{i}");
        wait_for(&format!("update {i} applied"), T, || async {
            store
                .get_user(id)
                .await
                .unwrap()
                .filter(|u| u.profile.family_name == want)
        })
        .await;
    }
    // The restart reused the stored channels: nothing leaked, nothing duplicated.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.list_channels().await.unwrap().len(), 5);
    let emu_channels = orgsync_emulator::directory::push::push_stats(&e.emu.emulator);
    assert_eq!(emu_channels.len(), 5, "the restart opened new channels");
    d2.shutdown().await;
    e.emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_renewed_across_simulated_hours() {
    let e = env(3).await;
    let store = e.sqlite("a.db").await;
    let d = e.start(e.config(), store.clone()).await;
    e.wait_for_channels(store.as_ref(), T).await;
    let first: Vec<String> = store
        .list_channels()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    // The emulator caps channels at 6 h; renewal is due 30 min before expiry.
    for round in 1..=3 {
        e.advance(chrono::Duration::minutes(5 * 60 + 35));
        wait_for(&format!("renewal round {round}"), T, || async {
            let all = store.list_channels().await.unwrap();
            let stopped = all.iter().filter(|c| c.stopped_at.is_some()).count();
            (all.len() == 5 * (round + 1) && stopped == 5 * round).then_some(())
        })
        .await;
        assert_eq!(current_channels(store.as_ref(), e.clock.now()).await, 5);
        // Google's side agrees: the old channels are stopped, the new ones live.
        let stats = orgsync_emulator::directory::push::push_stats(&e.emu.emulator);
        let live = stats.iter().filter(|c| !c.stopped && !c.expired).count();
        assert_eq!(live, 5, "round {round}: {stats:?}");
        for id in &first {
            assert!(stats.iter().any(|c| &c.id == id && c.stopped));
        }
        // Notifications still flow through the new channels.
        let u = e.insert_user(&format!("after-renewal-{round}")).await;
        let id = u.id.unwrap();
        wait_for("add after renewal", T, || async {
            store.get_user(&id).await.unwrap()
        })
        .await;
    }
    d.shutdown().await;
    e.emu.shutdown().await.unwrap();
}
