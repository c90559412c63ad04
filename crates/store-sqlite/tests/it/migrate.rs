//! Regression: several processes (here: several pools) opening a brand-new database file at
//! the same moment must all come up migrated. Without the migration lock two openers both
//! saw "no migrations applied" and the loser failed with "table app_users already exists"
//! (seen in CI when `orgsync serve` and `orgsync channels list` started together), and the
//! first connections raced to switch the new file to WAL, one failing with "database is
//! locked" (seen on a fresh-clone CI run once the migrations were serialised).

use orgsync_store::prelude::*;
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

/// Regression: the state file holds channel tokens but was created `0644` (SQLite's default
/// under the usual umask 022), and so were its `-wal`, `-shm` and lock files.
#[cfg(unix)]
#[tokio::test]
async fn a_new_state_file_and_its_sidecars_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orgsync.db");
    let store = SqliteStore::open_path(&db).await.unwrap();
    store
        .set_sync_state("s", "k", "v", chrono::Utc::now())
        .await
        .unwrap();
    for suffix in ["", "-wal", "-shm", ".migrate-lock"] {
        let path = format!("{}{suffix}", db.display());
        let mode = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{path} is {mode:o}");
    }
    store.close().await;
}

/// A read-only open (for `users list`, `contacts plan`, …) must work where nothing can be
/// created: it takes no lock file, creates nothing, migrates nothing and writes nothing.
/// (The tests run as root, where permissions do not stop a write, so this checks the files
/// themselves; `crates/cli/tests/it/contacts.rs` runs the binary as an unprivileged user on a
/// read-only directory.)
#[tokio::test]
async fn a_read_only_open_creates_no_lock_file_and_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orgsync.db");
    let store = SqliteStore::open_path(&db).await.unwrap();
    store
        .set_sync_state("s", "k", "v", chrono::Utc::now())
        .await
        .unwrap();
    store.close().await;
    std::fs::remove_file(dir.path().join("orgsync.db.migrate-lock")).unwrap();
    let before = std::fs::read(&db).unwrap();
    // SQLite may create the -wal and -shm files a reader of a WAL database uses where it
    // can (https://www.sqlite.org/wal.html#readonly), but writes nothing to them; and the
    // writer above may or may not have removed its own by the time it is listed. So both
    // listings leave out the -shm file and an empty -wal file.
    let listing = |dir: &std::path::Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|name| {
                let name = name.to_string_lossy();
                !(name.ends_with("-shm")
                    || name.ends_with("-wal")
                        && std::fs::metadata(dir.join(&*name)).unwrap().len() == 0)
            })
            .collect();
        names.sort();
        names
    };
    let files_before = listing(dir.path());

    let ro = SqliteStore::open_read_only(&db).await.unwrap();
    assert_eq!(
        ro.get_sync_state("s", "k").await.unwrap().as_deref(),
        Some("v")
    );
    let write = ro
        .set_sync_state("s", "k", "changed", chrono::Utc::now())
        .await;
    assert!(write.is_err(), "a read-only store accepted a write");
    ro.close().await;

    assert!(
        !dir.path().join("orgsync.db.migrate-lock").exists(),
        "a read-only open created the migration lock file"
    );
    assert_eq!(
        listing(dir.path()),
        files_before,
        "files created or left behind"
    );
    assert!(std::fs::read(&db).unwrap() == before, "the file changed");
}

#[tokio::test]
async fn a_read_only_open_of_an_unmigrated_file_says_to_run_a_writing_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    // A SQLite file without orgsync's schema (as if written before its first migration).
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::query("CREATE TABLE t (x)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let err = SqliteStore::open_read_only(&db)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&db.display().to_string()), "{err}");
    assert!(err.contains("schema version 0"), "{err}");
    assert!(err.contains("orgsync users sync"), "{err}");

    let missing = SqliteStore::open_read_only(dir.path().join("none.db"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("none.db") && missing.contains("does not exist"),
        "{missing}"
    );
    assert!(!dir.path().join("none.db").exists());
}

/// Regression: an open error said "cannot connect to the database: error returned from
/// database: (code: 14) unable to open database file: (code: 14) unable to open database
/// file" — SQLite's text three times and no file name.
#[tokio::test]
async fn open_errors_name_the_file_and_state_sqlites_message_once() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the database file should be: SQLite cannot open it.
    let db = dir.path().join("state.db");
    std::fs::create_dir(&db).unwrap();
    let err = SqliteStore::open_path(&db).await.unwrap_err();
    let chain = anyhow_like_chain(&err);
    assert!(chain.contains(&db.display().to_string()), "{chain}");
    assert_eq!(
        chain.matches("unable to open database file").count(),
        1,
        "{chain}"
    );
}

/// What `anyhow`'s `{:#}` prints (the binary's error line): each error of the chain.
fn anyhow_like_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
