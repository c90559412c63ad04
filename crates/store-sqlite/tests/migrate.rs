//! Regression: several processes (here: several pools) opening a brand-new database file at
//! the same moment must all come up migrated. Without the migration lock two openers both
//! saw "no migrations applied" and the loser failed with "table app_users already exists"
//! (seen in CI when `orgsync serve` and `orgsync channels list` started together), and the
//! first connections raced to switch the new file to WAL, one failing with "database is
//! locked" (seen on a fresh-clone CI run once the migrations were serialised).

use orgsync_store::Store;
use orgsync_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_opens_of_a_new_file_all_migrate() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("orgsync.db").display());
        let opens: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { SqliteStore::connect(&url).await })
            })
            .collect();
        let mut versions = Vec::new();
        for open in opens {
            let store = open
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: a concurrent open failed: {e}"));
            versions.push(store.schema_version().await.unwrap());
            store.close().await;
        }
        assert!(versions[0] > 0, "no migration applied");
        assert!(
            versions.iter().all(|v| *v == versions[0]),
            "openers disagree on the schema: {versions:?}"
        );
    }
}
