//! The shared conformance story on PostgreSQL.
//!
//! Each test runs in a schema of its own (`orgsync_testkit::postgres`): tests run in
//! parallel and leave nothing behind. When PostgreSQL is unreachable the tests FAIL if
//! `CI=true` (the suite must run in CI) and otherwise skip with a warning on stderr.

use std::str::FromStr;
use std::sync::Arc;

use orgsync_store::conformance::Fixture;
use orgsync_store::prelude::*;
use orgsync_store::{NewJob, UserProfile};
use orgsync_store_postgres::PgStore;
use orgsync_testkit::postgres::PgSchema;
use sqlx::postgres::PgConnectOptions;

/// A fresh schema and a store whose `search_path` points at it. `None` = skip (see
/// [`PgSchema::create`]).
async fn isolated() -> Option<(PgStore, PgSchema)> {
    let schema = PgSchema::create("PostgreSQL conformance test").await?;
    let store = PgStore::connect_with(schema.options(), 6)
        .await
        .expect("open PgStore in test schema");
    Some((store, schema))
}

async fn fixture() -> Option<Fixture> {
    let (store, schema) = isolated().await?;
    Some(Fixture::new(Arc::new(store)).with_teardown(schema.teardown()))
}

orgsync_store::conformance_tests!(fixture);

/// Guards the test isolation itself: the pool works in its own schema, and a second schema
/// does not see the first one's rows.
#[tokio::test]
async fn each_test_schema_is_isolated() {
    let Some((a, schema_a)) = isolated().await else {
        return;
    };
    let Some((b, schema_b)) = isolated().await else {
        return;
    };
    let current: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(a.pool())
        .await
        .unwrap();
    assert_eq!(current, schema_a.name());
    let now = orgsync_store::conformance::t0();
    let p = UserProfile::new("iso-1", "iso@example.com");
    a.upsert_user(&p, now, now).await.unwrap();
    assert_eq!(a.count_users(false).await.unwrap(), 1);
    assert_eq!(b.count_users(false).await.unwrap(), 0);
    a.close().await;
    b.close().await;
    schema_a.teardown().await;
    schema_b.teardown().await;
}

/// Two instances (separate pools, as two `orgsync serve` processes would have) share one
/// queue: every job is processed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_the_job_queue_without_overlap() {
    let Some((first, schema)) = isolated().await else {
        return;
    };
    let second = PgStore::connect_with(schema.options(), 6)
        .await
        .expect("second instance");
    let t0 = orgsync_store::conformance::t0();
    for i in 0..300 {
        let mut job = NewJob::new("user.refresh", t0);
        job.dedupe_key = Some(format!("user:{i}"));
        first.enqueue_job(&job).await.unwrap();
    }
    let mut tasks = Vec::new();
    for (n, store) in [first.clone(), second.clone(), first.clone(), second.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            let worker = format!("instance-{}-worker-{n}", n % 2);
            let mut done = Vec::new();
            loop {
                let batch = store
                    .claim_jobs(&worker, 5, t0, chrono::Duration::minutes(5))
                    .await
                    .unwrap();
                if batch.is_empty() {
                    break done;
                }
                for job in batch {
                    assert!(store.complete_job(job.id, &worker).await.unwrap());
                    done.push(job.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 300);
    assert_eq!(unique.len(), 300, "a job was processed twice");
    first.close().await;
    second.close().await;
    schema.teardown().await;
}

/// The read-only connection of `users list` and friends: it reads a migrated schema,
/// refuses writes, and never migrates an unmigrated one (it says to run a writing command).
#[tokio::test]
async fn a_read_only_connection_reads_refuses_writes_and_never_migrates() {
    let Some((store, schema)) = isolated().await else {
        return;
    };
    let now = orgsync_store::conformance::t0();
    store.set_sync_state("s", "k", "v", now).await.unwrap();
    let ro = PgStore::connect_read_only_with(schema.options())
        .await
        .expect("read-only connection");
    assert_eq!(
        ro.get_sync_state("s", "k").await.unwrap().as_deref(),
        Some("v")
    );
    assert!(
        ro.set_sync_state("s", "k", "w", now).await.is_err(),
        "a read-only connection wrote"
    );
    ro.close().await;

    // An empty schema: refused with what to do, and left unmigrated.
    let empty = format!("{}_empty", schema.name());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {empty}")))
        .execute(store.pool())
        .await
        .unwrap();
    let err = PgStore::connect_read_only_with(
        PgConnectOptions::from_str(schema.url())
            .unwrap()
            .options([("search_path", empty.as_str())]),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("schema version 0") && err.contains("migrate"),
        "{err}"
    );
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&empty)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(tables, 0, "a read-only connection migrated");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {empty} CASCADE")))
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    schema.teardown().await;
}

/// Open errors name the database without its password and state the server's message once.
#[tokio::test]
async fn open_errors_name_the_database_without_its_password() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let err = PgStore::connect("postgres://orgsync:hunter2@127.0.0.1:1/orgsync")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("127.0.0.1:1/orgsync"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
