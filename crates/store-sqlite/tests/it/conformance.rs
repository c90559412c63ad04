//! The shared conformance story on SQLite: once on a fresh database file per test (WAL,
//! several connections) and once on `sqlite::memory:` (one connection).

use std::sync::Arc;

use orgsync_store::conformance::Fixture;
use orgsync_store_sqlite::SqliteStore;

mod file {
    use super::*;

    async fn fixture() -> Option<Fixture> {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("orgsync.db").display());
        let store = SqliteStore::connect(&url).await.expect("open sqlite file");
        Some(Fixture::new(Arc::new(store)).with_teardown(async move { drop(dir) }))
    }

    orgsync_store::conformance_tests!(fixture);
}

mod memory {
    use super::*;

    async fn fixture() -> Option<Fixture> {
        let store = SqliteStore::connect("sqlite::memory:")
            .await
            .expect("open sqlite memory");
        Some(Fixture::new(Arc::new(store)))
    }

    orgsync_store::conformance_tests!(fixture);
}
