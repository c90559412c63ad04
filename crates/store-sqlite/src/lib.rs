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

mod rows;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use orgsync_store::time::{opt_to_ms, to_ms};
use orgsync_store::users::decide;
use orgsync_store::{
    AppUser, ApplyReport, Channel, ContactsUserState, Enqueued, Job, Lease, NewJob, NewOutboxEntry,
    OutboxEntry, ReceivedNotification, Result, Store, StoreError, UserChange, UserQuery, UserWrite,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Row, migrate::Migrator};

use orgsync_store::rows::json_text as to_json;
use rows::{channel_cols, contacts_state_cols, job_cols, outbox_cols, user_cols};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a writer waits for the write lock before giving up with [`StoreError::Busy`].
const BUSY_TIMEOUT: StdDuration = StdDuration::from_secs(15);

/// Maps a driver error to the store's error, recognising "busy"/"locked" as retryable.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), including extended codes.
            let busy = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| matches!(c & 0xff, 5 | 6));
            if busy {
                StoreError::Busy(Box::new(e))
            } else {
                StoreError::Database(Box::new(e))
            }
        }
        sqlx::Error::PoolTimedOut => StoreError::Busy(Box::new(e)),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
            StoreError::Connect(Box::new(e))
        }
        _ => StoreError::Database(Box::new(e)),
    }
}

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

/// SQLite's own message of a driver error, once, with its result code
/// (<https://www.sqlite.org/rescode.html>); sqlx's wrapper text adds nothing for a reader.
fn sqlite_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLite code {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    }
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
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(BUSY_TIMEOUT + StdDuration::from_secs(5))
        .connect_with(options)
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

/// A migration failure as one sentence, SQLite's message stated once.
fn migrate_reason(e: &sqlx::migrate::MigrateError) -> String {
    use sqlx::migrate::MigrateError;
    match e {
        MigrateError::Execute(e) => sqlite_message(e),
        MigrateError::ExecuteMigration(e, version) => {
            format!("migration {version}: {}", sqlite_message(e))
        }
        other => other.to_string(),
    }
}

/// The version of the newest migration this build embeds.
fn latest_migration() -> i64 {
    MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

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

impl Drop for MigrateLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn limit(n: u32) -> i64 {
    i64::from(n.max(1))
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
        let pool = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        }
        .acquire_timeout(BUSY_TIMEOUT + StdDuration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|e| open_err(sqlite_message(&e)))?;
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
                    .map_err(|e| open_err(sqlite_message(&e)))?
            }
            Err(e) => return Err(open_err(sqlite_message(&e))),
        };
        let store = SqliteStore {
            pool,
            target: target.clone(),
        };
        let expected = latest_migration();
        if found != expected {
            store.pool.close().await;
            return Err(StoreError::SchemaMismatch {
                target: target.to_string(),
                found,
                expected,
            });
        }
        Ok(store)
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
        let mut tx = self.write_tx().await?;
        let probe = sqlx::query("CREATE TABLE _orgsync_write_probe (x)")
            .execute(&mut *tx)
            .await;
        let rolled_back = tx.rollback().await;
        match probe {
            Err(e) if matches!(sqlite_code(&e), Some(SQLITE_READONLY | SQLITE_CANTOPEN)) => {
                Err(StoreError::ReadOnly {
                    target: self.target.to_string(),
                    reason: sqlite_message(&e),
                    hint: READ_ONLY_HINT.into(),
                })
            }
            Err(e) => Err(db_err(e)),
            Ok(_) => rolled_back.map_err(db_err),
        }
    }

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)
    }
}

async fn fetch_user(conn: &mut SqliteConnection, id: &str) -> Result<Option<AppUser>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        user_cols!(),
        " FROM app_users WHERE directory_id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .map_err(db_err)?;
    row.as_ref().map(rows::user).transpose()
}

async fn write_user(conn: &mut SqliteConnection, u: &AppUser) -> Result<()> {
    let p = &u.profile;
    sqlx::query(
        "INSERT INTO app_users (directory_id, primary_email, email_lower, given_name, family_name, \
           display_name, is_admin, suspended, archived, org_unit_path, department, title, phones, \
           custom_schemas, roles, active, directory_etag, content_hash, created_at, updated_at, \
           deactivated_at, last_synced_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
           $19, $20, $21, $22) \
         ON CONFLICT (directory_id) DO UPDATE SET primary_email = excluded.primary_email, \
           email_lower = excluded.email_lower, given_name = excluded.given_name, \
           family_name = excluded.family_name, display_name = excluded.display_name, \
           is_admin = excluded.is_admin, suspended = excluded.suspended, \
           archived = excluded.archived, org_unit_path = excluded.org_unit_path, \
           department = excluded.department, title = excluded.title, phones = excluded.phones, \
           custom_schemas = excluded.custom_schemas, roles = excluded.roles, \
           active = excluded.active, directory_etag = excluded.directory_etag, \
           content_hash = excluded.content_hash, created_at = excluded.created_at, \
           updated_at = excluded.updated_at, deactivated_at = excluded.deactivated_at, \
           last_synced_at = excluded.last_synced_at",
    )
    .bind(&p.directory_id)
    .bind(&p.primary_email)
    .bind(p.primary_email.to_lowercase())
    .bind(&p.given_name)
    .bind(&p.family_name)
    .bind(&p.display_name)
    .bind(p.is_admin)
    .bind(p.suspended)
    .bind(p.archived)
    .bind(&p.org_unit_path)
    .bind(&p.department)
    .bind(&p.title)
    .bind(to_json(&p.phones)?)
    .bind(to_json(&p.custom_schemas)?)
    .bind(to_json(&p.roles)?)
    .bind(p.active)
    .bind(&p.directory_etag)
    .bind(&u.content_hash)
    .bind(to_ms(u.created_at))
    .bind(to_ms(u.updated_at))
    .bind(opt_to_ms(u.deactivated_at))
    .bind(to_ms(u.last_synced_at))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn insert_outbox(conn: &mut SqliteConnection, e: &NewOutboxEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO outbox (idempotency_key, kind, directory_id, payload, created_at, \
           next_attempt_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(e.idempotency_key.to_string())
    .bind(e.kind.as_str())
    .bind(&e.directory_id)
    .bind(to_json(&e.payload)?)
    .bind(to_ms(e.created_at))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn enqueue_in(conn: &mut SqliteConnection, job: &NewJob) -> Result<Enqueued> {
    let now = to_ms(Utc::now());
    let payload = to_json(&job.payload)?;
    if let Some(key) = &job.dedupe_key {
        let existing = sqlx::query(
            "UPDATE jobs SET run_at = min(run_at, $2), payload = $3, \
               directory_user_id = coalesce($4, directory_user_id), \
               user_email = coalesce($5, user_email), updated_at = $6 \
             WHERE dedupe_key = $1 AND state = 'pending' RETURNING id",
        )
        .bind(key)
        .bind(to_ms(job.run_at))
        .bind(&payload)
        .bind(&job.directory_user_id)
        .bind(&job.user_email)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
        if let Some(row) = existing {
            return Ok(Enqueued {
                id: row.try_get("id").map_err(db_err)?,
                coalesced: true,
            });
        }
    }
    let row = sqlx::query(
        "INSERT INTO jobs (kind, directory_user_id, user_email, payload, dedupe_key, run_at, \
           created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
    )
    .bind(&job.kind)
    .bind(&job.directory_user_id)
    .bind(&job.user_email)
    .bind(&payload)
    .bind(&job.dedupe_key)
    .bind(to_ms(job.run_at))
    .bind(now)
    .fetch_one(conn)
    .await
    .map_err(db_err)?;
    Ok(Enqueued {
        id: row.try_get("id").map_err(db_err)?,
        coalesced: false,
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate {
                target: self.target.to_string(),
                reason: migrate_reason(&e),
            })
    }

    async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(v.unwrap_or(0))
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    // ---- users ----

    async fn get_user(&self, directory_id: &str) -> Result<Option<AppUser>> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        fetch_user(&mut conn, directory_id).await
    }

    async fn get_user_by_email(&self, email: &str) -> Result<Option<AppUser>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM app_users WHERE email_lower = $1 ORDER BY active DESC, directory_id LIMIT 1"
        ))
        .bind(email.to_lowercase())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Vec<AppUser>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM app_users WHERE ($1 = 0 OR active = 1) AND ($2 IS NULL OR directory_id > $2) \
              ORDER BY directory_id LIMIT $3"
        ))
        .bind(query.active_only)
        .bind(&query.after_id)
        .bind(limit(query.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::user).collect()
    }

    async fn count_users(&self, active_only: bool) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM app_users WHERE ($1 = 0 OR active = 1)")
                .bind(active_only)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(n as u64)
    }

    async fn apply_user_changes(
        &self,
        changes: &[UserChange],
        now: DateTime<Utc>,
    ) -> Result<ApplyReport> {
        let mut report = ApplyReport::default();
        if changes.is_empty() {
            return Ok(report);
        }
        let mut tx = self.write_tx().await?;
        for change in changes {
            let existing = fetch_user(&mut tx, change.directory_id()).await?;
            let (outcome, write, entry) = decide(existing.as_ref(), change, now);
            match write {
                UserWrite::Insert(u) | UserWrite::Update(u) => write_user(&mut tx, &u).await?,
                UserWrite::Touch {
                    directory_id,
                    directory_etag,
                    last_synced_at,
                } => {
                    sqlx::query(
                        "UPDATE app_users SET directory_etag = $2, last_synced_at = $3 \
                         WHERE directory_id = $1",
                    )
                    .bind(&directory_id)
                    .bind(&directory_etag)
                    .bind(to_ms(last_synced_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
                UserWrite::Remove { directory_id } => {
                    sqlx::query("DELETE FROM app_users WHERE directory_id = $1")
                        .bind(&directory_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
                UserWrite::Nothing => {}
            }
            if let Some(entry) = entry {
                insert_outbox(&mut tx, &entry).await?;
            }
            report
                .outcomes
                .push((change.directory_id().to_owned(), outcome));
        }
        tx.commit().await.map_err(db_err)?;
        Ok(report)
    }

    // ---- outbox ----

    async fn claim_outbox(
        &self,
        n: u32,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(concat!(
            "UPDATE outbox SET attempts = attempts + 1, leased_until = $2 \
             WHERE seq IN ( \
               SELECT o.seq FROM outbox o \
               WHERE o.delivered_at IS NULL AND o.next_attempt_at <= $1 \
                 AND (o.leased_until IS NULL OR o.leased_until <= $1) \
                 AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.directory_id = o.directory_id \
                                 AND p.seq < o.seq AND p.delivered_at IS NULL) \
               ORDER BY o.seq LIMIT $3) \
             RETURNING ",
            outbox_cols!()
        ))
        .bind(to_ms(now))
        .bind(to_ms(now + lease))
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut entries = rows.iter().map(rows::outbox).collect::<Result<Vec<_>>>()?;
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    async fn mark_outbox_delivered(&self, seq: i64, now: DateTime<Utc>) -> Result<bool> {
        let r =
            sqlx::query("UPDATE outbox SET delivered_at = $2, leased_until = NULL WHERE seq = $1")
                .bind(seq)
                .bind(to_ms(now))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn mark_outbox_failed(
        &self,
        seq: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE outbox SET last_error = $2, next_attempt_at = $3, leased_until = NULL \
             WHERE seq = $1 AND delivered_at IS NULL",
        )
        .bind(seq)
        .bind(error)
        .bind(to_ms(next_attempt_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn list_pending_outbox(&self, n: u32) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            outbox_cols!(),
            " FROM outbox WHERE delivered_at IS NULL ORDER BY seq LIMIT $1"
        ))
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::outbox).collect()
    }

    async fn list_outbox(&self, after_seq: i64, n: u32) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            outbox_cols!(),
            " FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::outbox).collect()
    }

    async fn prune_delivered_outbox(&self, before: DateTime<Utc>) -> Result<u64> {
        let r =
            sqlx::query("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1")
                .bind(to_ms(before))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(r.rows_affected())
    }

    // ---- sync state ----

    async fn get_sync_state(&self, scope: &str, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM sync_state WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn set_sync_state(
        &self,
        scope: &str,
        key: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_state (scope, key, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, \
               updated_at = excluded.updated_at",
        )
        .bind(scope)
        .bind(key)
        .bind(value)
        .bind(to_ms(now))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_sync_state(&self, scope: &str, key: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM sync_state WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn list_sync_state(&self, scope: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT key, value FROM sync_state WHERE scope = $1 ORDER BY key")
            .bind(scope)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(rows::key_value).collect()
    }

    async fn get_contacts_state(&self, target_id: &str) -> Result<Option<ContactsUserState>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            contacts_state_cols!(),
            " FROM contacts_user_state WHERE target_id = $1"
        ))
        .bind(target_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(rows::contacts_state).transpose()
    }

    async fn put_contacts_state(&self, s: &ContactsUserState) -> Result<()> {
        sqlx::query(
            "INSERT INTO contacts_user_state (target_id, target_email, sync_token, view_hash, \
               managed_group, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (target_id) DO UPDATE SET target_email = excluded.target_email, \
               sync_token = excluded.sync_token, view_hash = excluded.view_hash, \
               managed_group = excluded.managed_group, updated_at = excluded.updated_at",
        )
        .bind(&s.target_id)
        .bind(&s.target_email)
        .bind(&s.sync_token)
        .bind(&s.view_hash)
        .bind(&s.managed_group)
        .bind(to_ms(s.updated_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn delete_contacts_state(&self, target_id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM contacts_user_state WHERE target_id = $1")
            .bind(target_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn list_contacts_state(&self) -> Result<Vec<ContactsUserState>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            contacts_state_cols!(),
            " FROM contacts_user_state ORDER BY target_id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::contacts_state).collect()
    }

    // ---- channels & notifications ----

    async fn insert_channel(&self, c: &Channel) -> Result<()> {
        sqlx::query(
            "INSERT INTO channels (id, resource_id, resource_uri, event, token, address, \
               expiration, created_at, stopped_at, replaced_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&c.id)
        .bind(&c.resource_id)
        .bind(&c.resource_uri)
        .bind(&c.event)
        .bind(c.token.expose())
        .bind(&c.address)
        .bind(to_ms(c.expiration))
        .bind(to_ms(c.created_at))
        .bind(opt_to_ms(c.stopped_at))
        .bind(&c.replaced_by)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn get_channel(&self, id: &str) -> Result<Option<Channel>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            channel_cols!(),
            " FROM channels WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(rows::channel).transpose()
    }

    async fn list_live_channels(&self, now: DateTime<Utc>) -> Result<Vec<Channel>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            channel_cols!(),
            " FROM channels WHERE stopped_at IS NULL AND expiration > $1 ORDER BY expiration, id"
        ))
        .bind(to_ms(now))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::channel).collect()
    }

    async fn list_channels(&self) -> Result<Vec<Channel>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            channel_cols!(),
            " FROM channels ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::channel).collect()
    }

    async fn mark_channel_stopped(&self, id: &str, at: DateTime<Utc>) -> Result<bool> {
        let r =
            sqlx::query("UPDATE channels SET stopped_at = coalesce(stopped_at, $2) WHERE id = $1")
                .bind(id)
                .bind(to_ms(at))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn mark_channel_replaced(&self, id: &str, replaced_by: &str) -> Result<bool> {
        let r = sqlx::query("UPDATE channels SET replaced_by = $2 WHERE id = $1")
            .bind(id)
            .bind(replaced_by)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn delete_expired_channels(&self, before: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query("DELETE FROM channels WHERE expiration < $1")
            .bind(to_ms(before))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected())
    }

    async fn record_notification(
        &self,
        n: &ReceivedNotification,
        job: Option<&NewJob>,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query(
            "INSERT INTO notifications (channel_id, message_number, resource_state, user_id, \
               received_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (channel_id, message_number) DO NOTHING",
        )
        .bind(&n.channel_id)
        .bind(n.message_number)
        .bind(&n.resource_state)
        .bind(&n.user_id)
        .bind(to_ms(n.received_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(job) = job {
            enqueue_in(&mut tx, job).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn prune_notifications(&self, before: DateTime<Utc>) -> Result<u64> {
        let r = sqlx::query("DELETE FROM notifications WHERE received_at < $1")
            .bind(to_ms(before))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected())
    }

    // ---- jobs ----

    async fn enqueue_job(&self, job: &NewJob) -> Result<Enqueued> {
        let mut tx = self.write_tx().await?;
        let e = enqueue_in(&mut tx, job).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(e)
    }

    async fn claim_jobs(
        &self,
        worker: &str,
        n: u32,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<Job>> {
        // One statement: SQLite takes the write lock before it reads, so two claimers
        // cannot select the same rows.
        let rows = sqlx::query(concat!(
            "UPDATE jobs SET state = 'running', locked_by = $1, locked_until = $3, \
               attempts = attempts + 1, updated_at = $2 \
             WHERE id IN ( \
               SELECT id FROM jobs \
               WHERE (state = 'pending' AND run_at <= $2) \
                  OR (state = 'running' AND locked_until <= $2) \
               ORDER BY run_at, id LIMIT $4) \
             RETURNING ",
            job_cols!()
        ))
        .bind(worker)
        .bind(to_ms(now))
        .bind(to_ms(now + lease))
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut jobs = rows.iter().map(rows::job).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    async fn complete_job(&self, id: i64, worker: &str) -> Result<bool> {
        let r =
            sqlx::query("DELETE FROM jobs WHERE id = $1 AND state = 'running' AND locked_by = $2")
                .bind(id)
                .bind(worker)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT dedupe_key, attempts FROM jobs WHERE id = $1 AND state = 'running' AND locked_by = $2",
        )
        .bind(id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(false) };
        let key: Option<String> = row.try_get("dedupe_key").map_err(db_err)?;
        let attempts: i32 = row.try_get("attempts").map_err(db_err)?;
        // A newer pending job with the same key was enqueued while this one ran: fold this
        // failure into it (keeping the error and attempt count) instead of violating the
        // one-pending-job-per-key rule.
        let merged = match &key {
            Some(key) => {
                sqlx::query(
                    "UPDATE jobs SET run_at = min(run_at, $2), last_error = $3, \
                   attempts = max(attempts, $4), updated_at = $5 \
                 WHERE dedupe_key = $1 AND state = 'pending'",
                )
                .bind(key)
                .bind(to_ms(retry_at))
                .bind(error)
                .bind(attempts)
                .bind(to_ms(now))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                    == 1
            }
            None => false,
        };
        if merged {
            sqlx::query("DELETE FROM jobs WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        } else {
            sqlx::query(
                "UPDATE jobs SET state = 'pending', run_at = $2, last_error = $3, locked_by = NULL, \
                   locked_until = NULL, updated_at = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(to_ms(retry_at))
            .bind(error)
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    async fn get_job(&self, id: i64) -> Result<Option<Job>> {
        let row = sqlx::query(concat!("SELECT ", job_cols!(), " FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(rows::job).transpose()
    }

    async fn list_failed_jobs(&self, n: u32) -> Result<Vec<Job>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_cols!(),
            " FROM jobs WHERE last_error IS NOT NULL ORDER BY attempts DESC, id LIMIT $1"
        ))
        .bind(limit(n))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::job).collect()
    }

    async fn count_jobs(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(n as u64)
    }

    // ---- leases ----

    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool> {
        let row = sqlx::query(
            "INSERT INTO leases (name, holder, acquired_at, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET \
               acquired_at = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > $3 \
                             THEN leases.acquired_at ELSE excluded.acquired_at END, \
               holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $3 \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(to_ms(now))
        .bind(to_ms(now + ttl))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.is_some())
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE leases SET expires_at = $4 WHERE name = $1 AND holder = $2 AND expires_at > $3",
        )
        .bind(name)
        .bind(holder)
        .bind(to_ms(now))
        .bind(to_ms(now + ttl))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>> {
        let row =
            sqlx::query("SELECT name, holder, acquired_at, expires_at FROM leases WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        row.as_ref().map(rows::lease).transpose()
    }
}
