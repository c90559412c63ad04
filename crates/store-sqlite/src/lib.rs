//! SQLite backend of the orgsync [`Store`]: the embedded default (`sqlite://orgsync.db`).
//!
//! One file, created if missing, in WAL mode (readers never block the writer), with a busy
//! timeout and foreign keys on. Every multi-statement write runs in a `BEGIN IMMEDIATE`
//! transaction: it takes the write lock up front, so two writers queue on the busy timeout
//! instead of one failing with "database is locked" when it upgrades a read transaction.
//! That also makes the job claim (one `UPDATE … RETURNING`) exclusive: SQLite mode is for a
//! single instance, PostgreSQL for several.
//!
//! Migrations in `migrations/` are embedded and applied on connect. sqlx takes no lock
//! around SQLite migrations, so two processes opening a new file at once (a daemon starting
//! while `orgsync channels list` runs) would both apply migration 1 and one would fail with
//! "table already exists"; and the first connection to a new file, which switches it to WAL,
//! can fail outright with "database is locked" when another opener is doing the same.
//! Opening a file (first connection and migrations) therefore runs under an exclusive OS
//! lock on a sidecar file `<db>.migrate-lock`; the second opener waits, then finds nothing
//! to apply.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use orgsync_store::prelude::*;
use orgsync_store::sql::{
    EmbeddedMigration, ErrorClass, SqlBackend, check_schema, embedded_migrator, latest_migration,
    quiet,
};
use orgsync_store::{Result, StoreError, rows};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::migrate::Migrator;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};

/// Every file of `migrations/`, in order (a test checks the list against the directory).
const MIGRATIONS: &[EmbeddedMigration] =
    &[(1, "initial", include_str!("../migrations/0001_initial.sql"))];

static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| embedded_migrator(MIGRATIONS));

/// How long a writer waits for the write lock before giving up with [`StoreError::Busy`].
const BUSY_TIMEOUT: StdDuration = StdDuration::from_secs(15);

/// The sidecar lock file that serialises migrations of the database at `db`.
fn migrate_lock_path(db: &Path) -> PathBuf {
    sidecar(db, ".migrate-lock")
}

/// `db` with `suffix` appended to its file name (`state.db` → `state.db-wal`).
fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// How errors name the database at `path`.
fn file_target(path: &Path) -> String {
    format!("state file {}", path.display())
}

/// The primary SQLite result code of a driver error (`SQLITE_READONLY` = 8, …).
fn sqlite_code(e: &sqlx::Error) -> Option<i32> {
    match e {
        sqlx::Error::Database(db) => db.code()?.parse::<i32>().ok().map(|c| c & 0xff),
        _ => None,
    }
}

/// The full (extended) SQLite result code of a driver error.
fn sqlite_extended_code(e: &sqlx::Error) -> Option<i32> {
    match e {
        sqlx::Error::Database(db) => db.code()?.parse::<i32>().ok(),
        _ => None,
    }
}

/// A read-only pool on `options` and the schema version it finds (0 for a file never
/// migrated). The version is read here because SQLite reports a WAL file it cannot read
/// at the first query, not at connect.
async fn read_only_pool(
    options: SqliteConnectOptions,
) -> std::result::Result<(SqlitePool, i64), sqlx::Error> {
    let pool = quiet::pool(SqlitePoolOptions::new())
        .max_connections(4)
        .acquire_timeout(BUSY_TIMEOUT + StdDuration::from_secs(5))
        .connect_with(quiet::statements(options))
        .await?;
    let migrated: bool = sqlx::query_scalar(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&pool)
    .await?;
    let version = if migrated {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT max(version) FROM _sqlx_migrations WHERE success = 1",
        )
        .fetch_one(&pool)
        .await?
        .unwrap_or(0)
    } else {
        0
    };
    Ok((pool, version))
}

const SQLITE_READONLY: i32 = 8;
/// `SQLITE_READONLY_DIRECTORY`: <https://www.sqlite.org/rescode.html#readonly_directory>.
const SQLITE_READONLY_DIRECTORY: i32 = 1544;
const SQLITE_CANTOPEN: i32 = 14;

/// What to do about a state file orgsync cannot write.
const READ_ONLY_HINT: &str = "commands that write state need write access to the file and to \
     its directory (for the -wal, -shm and .migrate-lock files next to it): fix the ownership or \
     permissions, or point [state] path at a writable location; read-only commands (`users \
     list`, `contacts plan`, `channels list`) work as it is";

/// Owner-only permissions (`0600`) for a file orgsync creates next to the database: the
/// store holds channel tokens. Set explicitly, so the result does not depend on the umask.
#[cfg(unix)]
fn make_private(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

/// Create the database file `path`, empty and `0600`, unless it exists; SQLite then opens
/// it as a new database. (SQLite itself would create it with `0644` under the usual umask.)
fn create_private_file(path: &Path) -> std::io::Result<()> {
    if path.try_exists()? {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        #[cfg(unix)]
        Ok(file) => make_private(&file),
        #[cfg(not(unix))]
        Ok(_) => Ok(()),
        // Another opener created it first (under its own migrate lock); fine.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Give the `-wal` and `-shm` files no more access than the database file has (SQLite
/// normally does this itself; a file left by an older version or another tool may not).
#[cfg(unix)]
fn align_sidecar_modes(db: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(db) else {
        return;
    };
    let db_mode = meta.permissions().mode() & 0o777;
    for suffix in ["-wal", "-shm"] {
        let path = sidecar(db, suffix);
        if let Ok(m) = std::fs::metadata(&path) {
            let mode = m.permissions().mode() & 0o777;
            if mode & !db_mode != 0 {
                // Best effort: SQLite already gives them the database file's mode; this
                // only fails on a file owned by someone else, which we cannot fix here.
                let _ = std::fs::set_permissions(
                    &path,
                    std::fs::Permissions::from_mode(mode & db_mode),
                );
            }
        }
    }
}

/// An exclusive advisory lock (`flock`) held while migrations run; released on drop, and by
/// the OS if the process dies, so a crash mid-migration never wedges the next start.
struct MigrateLock(std::fs::File);

impl MigrateLock {
    async fn acquire(path: PathBuf) -> std::io::Result<Self> {
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let mut options = std::fs::OpenOptions::new();
            options.create(true).truncate(false).write(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(&path)?;
            // An empty file, but keep it as private as the database next to it.
            #[cfg(unix)]
            let _ = make_private(&file);
            file.lock()?;
            Ok(file)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(MigrateLock(file))
    }
}

/// Waits while another process creates or migrates the database at `path`: a writer holds
/// `<db>.migrate-lock` exclusively from before it creates the file until its migrations
/// are applied, so taking the lock shared (and letting it go) means the schema is complete.
/// Opening the lock file for reading creates nothing; without one (no writer ever
/// migrated here, or its directory is not readable) there is nothing to wait for.
async fn wait_for_migrations(path: &Path) {
    let lock_path = migrate_lock_path(path);
    let _ = tokio::task::spawn_blocking(move || {
        if let Ok(file) = std::fs::File::open(&lock_path) {
            let _ = file.lock_shared();
        }
    })
    .await;
}

impl Drop for MigrateLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// The SQLite store. Cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// How errors name this database (`state file PATH`).
    target: Arc<str>,
}

impl SqliteStore {
    /// Open (creating if missing) the database at `url` — `sqlite://PATH`, `sqlite:PATH` or
    /// `sqlite::memory:` — and apply migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::InvalidUrl(url.to_owned()));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidUrl(format!("{url}: {e}")))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        Self::connect_with(options, in_memory).await
    }

    /// Open a database file at `path` (created if missing) and apply migrations.
    pub async fn open_path(path: impl AsRef<Path>) -> Result<Self> {
        Self::connect_with(SqliteConnectOptions::new().filename(path), false).await
    }

    /// Open with explicit options. An in-memory database lives in one connection, so the
    /// pool is limited to one connection that is never recycled.
    ///
    /// A file is created `0600` (on Unix) with its lock file, and a file this process cannot
    /// write is refused here, once, with [`StoreError::ReadOnly`] — not at the first write
    /// of a run that has already started.
    pub async fn connect_with(options: SqliteConnectOptions, in_memory: bool) -> Result<Self> {
        let path = options.get_filename().to_path_buf();
        let target: Arc<str> = if in_memory {
            "the in-memory SQLite database".into()
        } else {
            file_target(&path).into()
        };
        let open_err = |reason: String| StoreError::Open {
            target: target.to_string(),
            reason,
        };
        // Held from before the first connection until the migrations are applied: the
        // first connection to a new file switches it to WAL, which needs an exclusive lock
        // that SQLite refuses at once ("database is locked") rather than waiting for it.
        let lock = if in_memory {
            None
        } else {
            let lock_path = migrate_lock_path(&path);
            let lock = MigrateLock::acquire(lock_path.clone()).await.map_err(|e| {
                open_err(format!(
                    "cannot create or lock {}: {e}; {READ_ONLY_HINT}",
                    lock_path.display()
                ))
            })?;
            create_private_file(&path)
                .map_err(|e| open_err(format!("cannot create it: {e}; {READ_ONLY_HINT}")))?;
            Some(lock)
        };
        let options = options
            .create_if_missing(true)
            .journal_mode(if in_memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let options = quiet::statements(options);
        let pool = quiet::pool(if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        })
        .acquire_timeout(BUSY_TIMEOUT + StdDuration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|e| open_err(SqliteStore::message(&e)))?;
        let store = SqliteStore {
            pool,
            target: target.clone(),
        };
        let ready = async {
            if !in_memory {
                store.check_writable().await?;
            }
            store.migrate().await
        }
        .await;
        drop(lock);
        if let Err(e) = ready {
            store.pool.close().await;
            return Err(e);
        }
        #[cfg(unix)]
        if !in_memory {
            align_sidecar_modes(&path);
        }
        Ok(store)
    }

    /// Open an existing database file for reading only: no lock file, no file created, no
    /// migration, so it works in a read-only directory or mount. The schema must be the one
    /// this build expects, else [`StoreError::SchemaMismatch`] says to run a writing
    /// command first. Every write fails.
    ///
    /// SQLite can read a WAL database without write access when its `-shm` file exists or
    /// can be created (<https://www.sqlite.org/wal.html#readonly>). When neither is true, no
    /// process has the database open for writing (a writer would have created them), and
    /// the file is opened `immutable` instead.
    pub async fn open_read_only(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let target: Arc<str> = file_target(path).into();
        let open_err = |reason: String| StoreError::Open {
            target: target.to_string(),
            reason,
        };
        match path.try_exists() {
            Ok(true) => {}
            Ok(false) => {
                return Err(open_err(
                    "it does not exist; run a command that writes state (e.g. `orgsync users \
                     sync` or `orgsync contacts sync`) to create it"
                        .into(),
                ));
            }
            Err(e) => return Err(open_err(e.to_string())),
        }
        // A reader started beside a first run would otherwise find a half-made schema.
        wait_for_migrations(path).await;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .create_if_missing(false)
            .busy_timeout(BUSY_TIMEOUT);
        let no_sidecars = !sidecar(path, "-shm").exists() && !sidecar(path, "-wal").exists();
        let (pool, found) = match read_only_pool(options.clone()).await {
            Ok(opened) => opened,
            // SQLite could not create the -shm file it needs to read a WAL database
            // (SQLITE_READONLY_DIRECTORY, or CANTOPEN on older versions).
            Err(e)
                if no_sidecars
                    && (sqlite_extended_code(&e) == Some(SQLITE_READONLY_DIRECTORY)
                        || sqlite_code(&e) == Some(SQLITE_CANTOPEN)) =>
            {
                read_only_pool(options.immutable(true))
                    .await
                    .map_err(|e| open_err(SqliteStore::message(&e)))?
            }
            Err(e) => return Err(open_err(SqliteStore::message(&e))),
        };
        if let Err(e) = check_schema(&target, found, latest_migration(&MIGRATOR)) {
            pool.close().await;
            return Err(e);
        }
        Ok(SqliteStore { pool, target })
    }

    /// The underlying pool (for diagnostics and tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Make a write and roll it back: on a file this process cannot write (a read-only
    /// file, directory or mount, where SQLite quietly opens the database read-only) this
    /// fails with `SQLITE_READONLY` now rather than at the first write of a run. (`BEGIN
    /// IMMEDIATE` alone succeeds on a read-only database: it is the first page write that
    /// fails.)
    async fn check_writable(&self) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let probe = sqlx::query("CREATE TABLE _orgsync_write_probe (x)")
            .execute(&mut *tx)
            .await;
        let rolled_back = tx.rollback().await;
        match probe {
            Err(e) if matches!(sqlite_code(&e), Some(SQLITE_READONLY | SQLITE_CANTOPEN)) => {
                Err(StoreError::ReadOnly {
                    target: self.target.to_string(),
                    reason: SqliteStore::message(&e),
                    hint: READ_ONLY_HINT.into(),
                })
            }
            Err(e) => Err(SqliteStore::db_err(e)),
            Ok(_) => rolled_back.map_err(SqliteStore::db_err),
        }
    }
}

#[async_trait]
impl SqlBackend for SqliteStore {
    type Db = sqlx::Sqlite;
    /// JSON is TEXT.
    type Json = String;
    /// UUIDs are TEXT.
    type Uuid = String;

    const CODE_NAME: &'static str = "SQLite code";
    const NAME: &'static str = "sqlite";
    const CLAIM_LOCK: &'static str = "";
    const ROW_LOCK: &'static str = "";

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// "Busy" and "locked" are retryable.
    fn classify(db: &dyn sqlx::error::DatabaseError) -> ErrorClass {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), including extended codes.
        let busy = db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, 5 | 6));
        if busy {
            ErrorClass::Busy
        } else {
            ErrorClass::Other
        }
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn json(value: &impl Serialize) -> Result<String> {
        rows::json_text(value)
    }

    fn from_json<T: DeserializeOwned>(col: &'static str, stored: String) -> Result<T> {
        rows::json_from_text(col, &stored)
    }

    fn uuid(value: uuid::Uuid) -> String {
        value.to_string()
    }

    fn from_uuid(col: &'static str, stored: String) -> Result<uuid::Uuid> {
        rows::uuid_from_text(col, &stored)
    }

    /// `BEGIN IMMEDIATE`: the write lock up front (see the module doc).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(SqliteStore::db_err)
    }

    async fn run_migrations(&self) -> std::result::Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_with_its_sql() {
        orgsync_store::sql::assert_embeds_every_migration(env!("CARGO_MANIFEST_DIR"), &MIGRATOR);
    }

    /// A read-only open that starts while another process is still migrating a new file
    /// waits for it, instead of failing with "schema version 0" (seen when `contacts plan`
    /// started together with a first `contacts sync`).
    #[tokio::test]
    async fn read_only_open_waits_for_a_migration_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        // A writer mid-migration: the lock held, the file created, no schema yet.
        let writer_lock = MigrateLock::acquire(migrate_lock_path(&db)).await.unwrap();
        create_private_file(&db).unwrap();
        let reader = tokio::spawn(SqliteStore::open_read_only(db.clone()));
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        assert!(
            !reader.is_finished(),
            "the reader did not wait for the migration"
        );
        // The writer finishes its migrations, then lets the lock go.
        let options = SqliteConnectOptions::new().filename(&db);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        MIGRATOR.run(&pool).await.unwrap();
        pool.close().await;
        drop(writer_lock);
        let store = reader.await.unwrap().expect("the migrated schema");
        assert_eq!(
            store.schema_version().await.unwrap(),
            latest_migration(&MIGRATOR)
        );
    }
}
