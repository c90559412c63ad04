//! The outgoing webhook sink against a receiver that fails for a while, and two daemon
//! instances sharing one PostgreSQL store with one of them killed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{env, user_ids, wait_for};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use orgsync_daemon::Clock;
use orgsync_daemon::sink::{HEADER_IDEMPOTENCY, HEADER_SIGNATURE, HEADER_TIMESTAMP, sign};
use orgsync_testkit::postgres::PgSchema;

const T: Duration = Duration::from_secs(30);
const SECRET: &str = "a-shared-secret-of-some-length";

#[derive(Default)]
struct Receiver {
    /// Requests answered 503 so far, and how many to fail.
    failed: usize,
    fail_first: usize,
    bad_signatures: usize,
    /// idempotency key → (times received, body)
    got: BTreeMap<String, (usize, serde_json::Value)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_delivers_every_change_through_a_failing_receiver() {
    let e = env(4).await;
    let recv = Arc::new(Mutex::new(Receiver {
        fail_first: 15,
        ..Default::default()
    }));
    let r = recv.clone();
    let app = axum::Router::new().route(
        "/app/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let r = r.clone();
            async move {
                let mut r = r.lock().unwrap();
                if r.failed < r.fail_first {
                    r.failed += 1;
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let get = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
                let ts: i64 = get(HEADER_TIMESTAMP).parse().unwrap();
                if get(HEADER_SIGNATURE) != sign(SECRET.as_bytes(), ts, &body) {
                    r.bad_signatures += 1;
                    return StatusCode::UNAUTHORIZED;
                }
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let slot = r.got.entry(get(HEADER_IDEMPOTENCY)).or_insert((0, v));
                slot.0 += 1;
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let store = e.sqlite("a.db").await;
    let mut config = e.config();
    config.serve.sink.url = Some(format!("http://{app_addr}/app/hook"));
    config.serve.sink.secret = Some(SECRET.into());
    let d = e.start(config, store.clone()).await;
    let u = e.insert_user("sinked").await;
    let id = u.id.unwrap();
    wait_for("add applied", T, || async {
        store.get_user(&id).await.unwrap()
    })
    .await;
    e.rename_family(&id, "Changed").await;
    wait_for("every outbox entry delivered", T, || async {
        (store.list_pending_outbox(1000).await.unwrap().is_empty()
            && store.list_outbox(0, 1000).await.unwrap().iter().any(|o| {
                o.directory_id == id && o.kind.to_string() == "updated" && o.delivered_at.is_some()
            }))
        .then_some(())
    })
    .await;
    let outbox = store.list_outbox(0, 10_000).await.unwrap();
    {
        let r = recv.lock().unwrap();
        assert_eq!(r.failed, 15, "the receiver did fail for a while");
        assert_eq!(r.bad_signatures, 0);
        let keys: BTreeSet<String> = outbox
            .iter()
            .map(|o| o.idempotency_key.to_string())
            .collect();
        let got: BTreeSet<String> = r.got.keys().cloned().collect();
        assert_eq!(keys, got, "every outbox entry reached the app");
        let mine: Vec<&str> = r
            .got
            .values()
            .filter(|(_, v)| v["directory_id"] == id.as_str())
            .map(|(_, v)| v["kind"].as_str().unwrap())
            .collect();
        assert!(
            mine.contains(&"created") && mine.contains(&"updated"),
            "{mine:?}"
        );
        assert!(d.metrics().get("orgsync_sink_deliveries_total", "failed") >= 15);
    }
    d.shutdown().await;
    e.emu.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_share_work_and_survive_a_kill() {
    let Some(schema) = PgSchema::create("PostgreSQL daemon test").await else {
        return;
    };
    let e = env(6).await;
    let open = || async {
        Arc::new(
            orgsync_store_postgres::PgStore::connect_with(schema.options(), 5)
                .await
                .expect("PgStore"),
        ) as Arc<dyn orgsync_store::Store>
    };
    let store_a = open().await;
    let store_b = open().await;
    let a = e.start(e.config(), store_a.clone()).await;
    let b = e.start(e.config(), store_b.clone()).await;
    let store = store_a.clone();
    e.wait_for_channels(store.as_ref(), T).await;
    wait_for("initial reconcile", T, || async {
        (store.count_users(false).await.unwrap() >= 7).then_some(())
    })
    .await;
    // Exactly one leader.
    let (leader, follower) = if a
        .shared
        .is_leader
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        (a, b)
    } else {
        (b, a)
    };
    assert!(
        !follower
            .shared
            .is_leader
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    let lease = store
        .get_lease(orgsync_daemon::leader::LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.holder, leader.instance_id());

    // A burst of changes; both instances' workers take jobs from the one queue.
    let ids = user_ids(store.as_ref()).await;
    for round in 0..4 {
        for id in &ids {
            e.rename_family(id, &format!("R{round}")).await;
        }
    }
    for id in &ids {
        wait_for("burst applied", T, || async {
            store
                .get_user(id)
                .await
                .unwrap()
                .filter(|u| u.profile.family_name == "R3")
        })
        .await;
    }
    let done = |d: &orgsync_daemon::DaemonHandle| {
        ["applied", "unchanged", "stale"]
            .iter()
            .map(|l| d.metrics().get("orgsync_jobs_total", l))
            .sum::<u64>()
    };
    // A job's write is visible in the store a moment before its worker counts it (the
    // worker resumes after the commit), so the counts are waited for, not read at once.
    wait_for("the burst's jobs counted", T, || async {
        (done(&leader) + done(&follower) >= ids.len() as u64).then_some(())
    })
    .await;

    // Kill the leader: the follower takes the lease, moves the channels to its own
    // address, and keeps applying changes.
    let old_leader_addr = leader.addr;
    leader.kill();
    wait_for("failover", T, || async {
        follower
            .shared
            .is_leader
            .load(std::sync::atomic::Ordering::Relaxed)
            .then_some(())
    })
    .await;
    wait_for("channels moved to the survivor", T, || async {
        let live = store.list_live_channels(e.clock.now()).await.unwrap();
        let current: Vec<_> = live.iter().filter(|c| c.replaced_by.is_none()).collect();
        (current.len() == 5
            && current
                .iter()
                .all(|c| !c.address.contains(&old_leader_addr.to_string())))
        .then_some(())
    })
    .await;
    let before = done(&follower);
    for id in &ids {
        e.rename_family(id, "AfterKill").await;
    }
    for id in &ids {
        wait_for("change after failover", T, || async {
            store
                .get_user(id)
                .await
                .unwrap()
                .filter(|u| u.profile.family_name == "AfterKill")
        })
        .await;
    }
    wait_for("the survivor counted a job per change", T, || async {
        (done(&follower) >= before + ids.len() as u64).then_some(())
    })
    .await;
    wait_for("queue drained", T, || async {
        (store.count_jobs().await.unwrap() == 0).then_some(())
    })
    .await;
    let emu_live = orgsync_emulator::directory::push::push_stats(&e.emu.emulator)
        .into_iter()
        .filter(|c| !c.stopped && !c.expired)
        .count();
    assert_eq!(emu_live, 5, "old channels were not stopped");
    follower.shutdown().await;
    store_a.close().await;
    store_b.close().await;
    schema.teardown().await;
    e.emu.shutdown().await.unwrap();
}
