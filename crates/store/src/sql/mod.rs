//! The SQL both backends run, written once: the role traits of [`crate::Store`] implemented
//! for every [`SqlBackend`], generic over the sqlx driver. **For backend crates.**
//!
//! SQLite and PostgreSQL share the schema, the `$n` parameters (SQLite accepts them:
//! <https://www.sqlite.org/lang_expr.html#parameters>) and almost every statement; what
//! differs is supplied by the backend through [`SqlBackend`]: the pool and how a write
//! transaction starts, error mapping, how JSON and UUID columns are stored, the row locks
//! PostgreSQL needs for concurrent instances (`FOR UPDATE [SKIP LOCKED]`, the advisory lock
//! per user, the one-statement enqueue) and the migrations. Each backend instantiates this
//! code once, about what the two hand-written copies compiled to before.
//!
//! One file per role, as the traits are split.

mod channels;
mod driver;
mod jobs;
mod leases;
mod outbox;
mod state;
mod users;

/// sqlx's own warnings, demoted to debug: a slow pool acquire (2 s by default) and a slow
/// statement (1 s). With 100 address books in flight over an 8-connection SQLite pool, or a
/// reconcile's write transactions holding SQLite's one writer lock while the job queue
/// waits for it, both are expected and harmless, and at warn level they buried the run's
/// own output under hundreds of lines. A wait that matters still ends in the pool's or
/// SQLite's timeout, which is an error.
pub mod quiet {
    use std::time::Duration;

    use sqlx::ConnectOptions;
    use sqlx::pool::PoolOptions;

    pub fn pool<DB: sqlx::Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
        options.acquire_slow_level(log::LevelFilter::Debug)
    }

    pub fn statements<O: ConnectOptions>(options: O) -> O {
        options.log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1))
    }
}

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool, Transaction};

use crate::rows::RowAccess;
use crate::{HousekeepingStore, Result, StoreError};

pub use driver::{Bind, Driver, DriverFuture, Execute, Param, Q, ReadColumn};

/// A connection of backend `B`'s driver.
pub type Conn<B> = <<B as SqlBackend>::Db as Database>::Connection;
/// A row of backend `B`'s driver.
pub type DbRow<B> = <<B as SqlBackend>::Db as Database>::Row;

/// What a backend supplies to get every role of [`crate::Store`] from this module.
#[async_trait]
pub trait SqlBackend: Send + Sync + 'static {
    /// The sqlx driver; it must bind and read this backend's JSON and UUID column types.
    type Db: Driver
        + Param<'static, Self::Json>
        + Param<'static, Self::Uuid>
        + ReadColumn<Self::Json>
        + ReadColumn<Self::Uuid>;
    /// How a JSON column is bound and read (TEXT on SQLite, JSONB on PostgreSQL).
    type Json: Send;
    /// How a UUID column is bound and read (TEXT on SQLite, UUID on PostgreSQL).
    type Uuid: Send;

    /// The backend name ([`HousekeepingStore::backend`]).
    const NAME: &'static str;
    /// Appended to the inner `SELECT` of a claim (`claim_jobs`, `claim_outbox`) so that
    /// concurrent claimers pass over each other's rows: PostgreSQL's `FOR UPDATE SKIP
    /// LOCKED`. Empty on SQLite, where the one statement holds the write lock.
    const CLAIM_LOCK: &'static str;
    /// Appended to a `SELECT` of a row the transaction then updates: PostgreSQL's `FOR
    /// UPDATE`. Empty on SQLite (its write transactions are exclusive).
    const ROW_LOCK: &'static str;
    /// A statement that enqueues a job in one step, coalescing into a pending job with the
    /// same dedupe key, with the parameters of the plain insert and returning `id` and
    /// `coalesced`. `None`: update-then-insert inside the (exclusive) write transaction.
    const ENQUEUE_UPSERT: Option<&'static str> = None;

    /// What this database's error codes are called in messages (`SQLite code`, `SQLSTATE`).
    const CODE_NAME: &'static str;

    /// The connection pool.
    fn pool(&self) -> &Pool<Self::Db>;
    /// What a database error means: retryable, a lost connection, or neither.
    fn classify(e: &dyn sqlx::error::DatabaseError) -> ErrorClass;
    /// How errors name this database.
    fn target(&self) -> &str;
    /// Rows a statement changed.
    fn rows_affected(result: &<Self::Db as Database>::QueryResult) -> u64;
    /// A JSON value as this backend stores it.
    fn json(value: &impl Serialize) -> Result<Self::Json>;
    /// A stored JSON column decoded into `T`; a failure names the column.
    fn from_json<T: DeserializeOwned>(col: &'static str, stored: Self::Json) -> Result<T>;
    /// A UUID as this backend stores it.
    fn uuid(value: uuid::Uuid) -> Self::Uuid;
    /// A stored UUID column; a failure names the column.
    fn from_uuid(col: &'static str, stored: Self::Uuid) -> Result<uuid::Uuid>;

    /// Begin a transaction that will write.
    async fn begin_write(&self) -> Result<Transaction<'static, Self::Db>>;

    /// Called first in `apply_user_changes` with the (sorted, distinct) directory ids it
    /// changes, to serialise writers of the same users where the database does not.
    async fn lock_users(_conn: &mut Conn<Self>, _ids: &[&str]) -> Result<()> {
        Ok(())
    }

    /// Apply the embedded migrations ([`HousekeepingStore::migrate`] maps the error).
    async fn run_migrations(&self) -> std::result::Result<(), sqlx::migrate::MigrateError>;

    /// Maps a driver error to the store's (see [`Self::classify`]).
    fn db_err(e: sqlx::Error) -> StoreError {
        map_driver_error(e, Self::classify)
    }

    /// The database's own message of a driver error, once, with its code.
    fn message(e: &sqlx::Error) -> String {
        driver_message(e, Self::CODE_NAME)
    }
}

/// A pooled connection of `b`.
async fn acquire<B: SqlBackend>(b: &B) -> Result<PoolConnection<B::Db>> {
    b.pool().acquire().await.map_err(B::db_err)
}

/// Run `query`; returns the number of rows changed.
async fn execute<B: SqlBackend>(conn: &mut Conn<B>, query: Q<'_, B::Db>) -> Result<u64> {
    let result = B::Db::execute(conn, query).await.map_err(B::db_err)?;
    Ok(B::rows_affected(&result))
}

async fn fetch_all<B: SqlBackend>(
    conn: &mut Conn<B>,
    query: Q<'_, B::Db>,
) -> Result<Vec<DbRow<B>>> {
    B::Db::fetch_all(conn, query).await.map_err(B::db_err)
}

async fn fetch_optional<B: SqlBackend>(
    conn: &mut Conn<B>,
    query: Q<'_, B::Db>,
) -> Result<Option<DbRow<B>>> {
    B::Db::fetch_optional(conn, query).await.map_err(B::db_err)
}

/// The one row `query` returns.
async fn fetch_one<B: SqlBackend>(conn: &mut Conn<B>, query: Q<'_, B::Db>) -> Result<DbRow<B>> {
    fetch_optional::<B>(conn, query)
        .await?
        .ok_or_else(|| B::db_err(sqlx::Error::RowNotFound))
}

/// Decode every row with `decode` (one of [`crate::rows`]' decoders).
fn decode_all<'r, B: SqlBackend, T>(
    rows: &'r [DbRow<B>],
    decode: impl Fn(&SqlRow<'r, B>) -> Result<T>,
) -> Result<Vec<T>> {
    rows.iter().map(|r| decode(&SqlRow::new(r))).collect()
}

/// Decode an optional row with `decode`.
fn decode_opt<'r, B: SqlBackend, T>(
    row: &'r Option<DbRow<B>>,
    decode: impl Fn(&SqlRow<'r, B>) -> Result<T>,
) -> Result<Option<T>> {
    row.as_ref().map(|r| decode(&SqlRow::new(r))).transpose()
}

/// Read one column of a row.
fn column<B: SqlBackend, T>(row: &DbRow<B>, col: &str) -> Result<T>
where
    B::Db: ReadColumn<T>,
{
    <B::Db as ReadColumn<T>>::read_column(row, col).map_err(B::db_err)
}

/// A SQL `LIMIT` for `n` (at least 1).
fn limit(n: u32) -> i64 {
    i64::from(n.max(1))
}

/// A driver row of backend `B` seen through [`RowAccess`].
pub struct SqlRow<'r, B: SqlBackend> {
    row: &'r DbRow<B>,
}

impl<'r, B: SqlBackend> SqlRow<'r, B> {
    pub fn new(row: &'r DbRow<B>) -> Self {
        SqlRow { row }
    }
}

impl<B: SqlBackend> RowAccess for SqlRow<'_, B> {
    fn text(&self, col: &'static str) -> Result<String> {
        column::<B, _>(self.row, col)
    }
    fn opt_text(&self, col: &'static str) -> Result<Option<String>> {
        column::<B, _>(self.row, col)
    }
    fn boolean(&self, col: &'static str) -> Result<bool> {
        column::<B, _>(self.row, col)
    }
    fn int32(&self, col: &'static str) -> Result<i32> {
        column::<B, _>(self.row, col)
    }
    fn int64(&self, col: &'static str) -> Result<i64> {
        column::<B, _>(self.row, col)
    }
    fn opt_int64(&self, col: &'static str) -> Result<Option<i64>> {
        column::<B, _>(self.row, col)
    }
    fn json<T: DeserializeOwned>(&self, col: &'static str) -> Result<T> {
        B::from_json(col, column::<B, B::Json>(self.row, col)?)
    }
    fn uuid(&self, col: &'static str) -> Result<uuid::Uuid> {
        B::from_uuid(col, column::<B, B::Uuid>(self.row, col)?)
    }
}

#[async_trait]
impl<B: SqlBackend> HousekeepingStore for B {
    fn backend(&self) -> &'static str {
        B::NAME
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = acquire(self).await?;
        execute::<B>(&mut conn, sqlx::query("SELECT 1")).await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        self.run_migrations()
            .await
            .map_err(|e| StoreError::Migrate {
                target: self.target().to_owned(),
                reason: migrate_reason(&e, B::message),
            })
    }

    async fn schema_version(&self) -> Result<i64> {
        let mut conn = acquire(self).await?;
        let row = fetch_one::<B>(
            &mut conn,
            sqlx::query("SELECT max(version) AS version FROM _sqlx_migrations WHERE success"),
        )
        .await?;
        Ok(column::<B, Option<i64>>(&row, "version")?.unwrap_or(0))
    }

    async fn close(&self) {
        self.pool().close().await;
    }
}

/// A migration failure as one sentence, the driver's message (from `message`) stated once.
pub fn migrate_reason(
    e: &sqlx::migrate::MigrateError,
    message: fn(&sqlx::Error) -> String,
) -> String {
    use sqlx::migrate::MigrateError;
    match e {
        MigrateError::Execute(e) => message(e),
        MigrateError::ExecuteMigration(e, version) => {
            format!("migration {version}: {}", message(e))
        }
        other => other.to_string(),
    }
}

/// The database's own message of a driver error, once, with its code named `code_name`
/// (`SQLite code`, `SQLSTATE`); sqlx's wrapper text adds nothing for a reader.
pub fn driver_message(e: &sqlx::Error, code_name: &str) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} ({code_name} {code})", db.message()),
            None => db.message().to_owned(),
        },
        other => other.to_string(),
    }
}

/// What a database error means for the caller, as a backend classifies it.
pub enum ErrorClass {
    /// Retry later ([`StoreError::Busy`]).
    Busy,
    /// The connection is gone ([`StoreError::Connect`]).
    Connect,
    /// Anything else ([`StoreError::Database`]).
    Other,
}

/// A driver error as the store's, database errors classified by `classify`.
pub fn map_driver_error(
    e: sqlx::Error,
    classify: impl Fn(&dyn sqlx::error::DatabaseError) -> ErrorClass,
) -> StoreError {
    let class = match &e {
        sqlx::Error::Database(db) => classify(db.as_ref()),
        sqlx::Error::PoolTimedOut => ErrorClass::Busy,
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => ErrorClass::Connect,
        _ => ErrorClass::Other,
    };
    match class {
        ErrorClass::Busy => StoreError::Busy(Box::new(e)),
        ErrorClass::Connect => StoreError::Connect(Box::new(e)),
        ErrorClass::Other => StoreError::Database(Box::new(e)),
    }
}

/// A migration compiled into the binary: its version, description and SQL (`include_str!`).
pub type EmbeddedMigration = (i64, &'static str, &'static str);

/// The migrator for a backend's embedded migrations.
///
/// Built at run time instead of with `sqlx::migrate!`, whose proc macro compiles a second
/// copy of sqlx-core and both drivers for the host and sits on the critical path of every
/// clean build. The checksum is sqlx's own (SHA-384 of the SQL, computed by
/// `Migration::new`), the same the macro records, so databases created either way open.
/// [`assert_embeds_every_migration`] keeps the list in step with the `migrations/` directory.
pub fn embedded_migrator(migrations: &[EmbeddedMigration]) -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(sql),
                    false,
                )
            })
            .collect(),
    )
}

/// Panics unless every `<version>_<description>.sql` file in `<manifest_dir>/migrations`
/// is embedded in `migrator` with the same SQL, and nothing else is: each backend's test
/// calls it, so a new migration file cannot be forgotten in the embedded list.
pub fn assert_embeds_every_migration(manifest_dir: &str, migrator: &sqlx::migrate::Migrator) {
    let dir = std::path::Path::new(manifest_dir).join("migrations");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("the migrations directory") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(stem) = name.strip_suffix(".sql") else {
            continue;
        };
        files += 1;
        let version = stem.split('_').next().and_then(|v| v.parse::<i64>().ok());
        let sql = std::fs::read_to_string(&path).expect("a migration file");
        match migrator.iter().find(|m| Some(m.version) == version) {
            Some(m) => assert!(m.sql.as_str() == sql, "{name}: embedded SQL differs"),
            None => panic!("{name} is not in the embedded list"),
        }
    }
    assert_eq!(
        migrator.iter().count(),
        files,
        "embedded migrations without a file"
    );
}

/// The version of the newest migration `migrator` embeds.
pub fn latest_migration(migrator: &sqlx::migrate::Migrator) -> i64 {
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// A read-only open finds schema version `found` where this build expects `expected`.
pub fn check_schema(target: &str, found: i64, expected: i64) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(StoreError::SchemaMismatch {
            target: target.to_owned(),
            found,
            expected,
        })
    }
}
