//! PostgreSQL backend of the orgsync [`Store`] (`postgres://…`): for production and for
//! several `orgsync serve` instances sharing one database.
//!
//! Concurrency is what this backend is for:
//! - jobs and outbox entries are claimed with `SELECT … FOR UPDATE SKIP LOCKED` inside an
//!   `UPDATE … RETURNING`, so concurrent instances never claim the same row and never wait
//!   on each other;
//! - user changes take a transaction-scoped advisory lock per directory id (in sorted order,
//!   so two chunks cannot deadlock), which serialises writers of the same user and keeps
//!   outbox sequence numbers in commit order per user;
//! - leases are a compare-and-set `INSERT … ON CONFLICT DO UPDATE … WHERE`, atomic under
//!   PostgreSQL's row locking.
//!
//! Migrations in `migrations/` are embedded and applied on connect (sqlx takes an advisory
//! lock, so instances starting together do not race). The schema is whatever `search_path`
//! selects, which is how tests isolate themselves.

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
use sqlx::Connection as _;
use sqlx::migrate::Migrator;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgQueryResult};

/// Every file of `migrations/`, in order (a test checks the list against the directory).
const MIGRATIONS: &[EmbeddedMigration] =
    &[(1, "initial", include_str!("../migrations/0001_initial.sql"))];

static MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| embedded_migrator(MIGRATIONS));

/// Default pool size per instance.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// The PostgreSQL store. Cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// How errors name this database (`PostgreSQL database postgres://USER@HOST:PORT/DB`,
    /// never with a password).
    target: Arc<str>,
}

/// How errors name the database `options` connect to (no password: the options' own
/// fields, not the URL, are used).
fn describe(options: &PgConnectOptions) -> String {
    let host = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    format!(
        "PostgreSQL database postgres://{}@{host}/{}",
        options.get_username(),
        options.get_database().unwrap_or("")
    )
}

impl PgStore {
    /// Connect to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?options]` or
    /// `postgresql://…`) and apply migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(Self::parse(url)?, DEFAULT_MAX_CONNECTIONS).await
    }

    fn parse(url: &str) -> Result<PgConnectOptions> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::InvalidUrl(redact_url(url)));
        }
        PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidUrl(format!("{}: {e}", redact_url(url))))
    }

    /// Connect with explicit options (e.g. a `search_path` via
    /// [`PgConnectOptions::options`]) and pool size, and apply migrations.
    pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> Result<Self> {
        let store = Self::pool_for(options, max_connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connect for reading only: no migration, every transaction read-only
    /// (`default_transaction_read_only`), and the schema must be the one this build
    /// expects, else [`StoreError::SchemaMismatch`].
    pub async fn connect_read_only(url: &str) -> Result<Self> {
        Self::connect_read_only_with(Self::parse(url)?).await
    }

    /// [`Self::connect_read_only`] with explicit options.
    pub async fn connect_read_only_with(options: PgConnectOptions) -> Result<Self> {
        let options = options.options([("default_transaction_read_only", "on")]);
        let store = Self::pool_for(options, 4).await?;
        let found = match store.schema_version().await {
            Ok(v) => v,
            // No migrations table: a database orgsync never migrated.
            Err(StoreError::Database(e)) if e.to_string().contains("does not exist") => 0,
            Err(e) => {
                store.pool.close().await;
                return Err(e);
            }
        };
        if let Err(e) = check_schema(&store.target, found, latest_migration(&MIGRATOR)) {
            store.pool.close().await;
            return Err(e);
        }
        Ok(store)
    }

    async fn pool_for(options: PgConnectOptions, max_connections: u32) -> Result<Self> {
        let target: Arc<str> = describe(&options).into();
        let open_err = |e: sqlx::Error| StoreError::Open {
            target: target.to_string(),
            reason: PgStore::message(&e),
        };
        // One connection first, tried once: a refused, unresolvable or rejecting server is
        // reported at once, where the pool would retry its first connection until the
        // acquire timeout (20 s) and then report the same error.
        let probe = PgConnection::connect_with(&options)
            .await
            .map_err(open_err)?;
        let _ = probe.close().await;
        let pool = quiet::pool(PgPoolOptions::new())
            .max_connections(max_connections.max(1))
            .acquire_timeout(StdDuration::from_secs(20))
            .connect_with(quiet::statements(options))
            .await
            .map_err(open_err)?;
        Ok(PgStore { pool, target })
    }

    /// The underlying pool (for diagnostics and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// `url` with any password replaced, for error messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[async_trait]
impl SqlBackend for PgStore {
    type Db = sqlx::Postgres;
    type Json = serde_json::Value;
    type Uuid = uuid::Uuid;

    const CODE_NAME: &'static str = "SQLSTATE";
    const NAME: &'static str = "postgres";
    /// Rows another instance is claiming right now are passed over, never handed out twice
    /// and never waited for.
    const CLAIM_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";
    const ROW_LOCK: &'static str = " FOR UPDATE";
    /// One statement, atomic under concurrency: the partial unique index allows one pending
    /// job per dedupe key; a second enqueue updates it. `xmax = 0` only for a fresh insert.
    const ENQUEUE_UPSERT: Option<&'static str> = Some(
        "INSERT INTO jobs (kind, directory_user_id, user_email, payload, dedupe_key, run_at, \
           created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL \
         DO UPDATE SET run_at = LEAST(jobs.run_at, excluded.run_at), payload = excluded.payload, \
           directory_user_id = coalesce(excluded.directory_user_id, jobs.directory_user_id), \
           user_email = coalesce(excluded.user_email, jobs.user_email), \
           updated_at = excluded.updated_at \
         RETURNING id, (xmax <> 0) AS coalesced",
    );

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Serialization failures, deadlocks, lock timeouts and cancelled statements are
    /// retryable; connection exceptions (class 08) and shutdowns (57P) mean a lost server.
    fn classify(db: &dyn sqlx::error::DatabaseError) -> ErrorClass {
        match db.code().as_deref() {
            Some("40001" | "40P01" | "55P03" | "57014") => ErrorClass::Busy,
            Some(c) if c.starts_with("08") || c.starts_with("57P") => ErrorClass::Connect,
            _ => ErrorClass::Other,
        }
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn json(value: &impl Serialize) -> Result<serde_json::Value> {
        rows::json_value(value)
    }

    fn from_json<T: DeserializeOwned>(col: &'static str, stored: serde_json::Value) -> Result<T> {
        rows::json_from_value(col, stored)
    }

    fn uuid(value: uuid::Uuid) -> uuid::Uuid {
        value
    }

    fn from_uuid(_col: &'static str, stored: uuid::Uuid) -> Result<uuid::Uuid> {
        Ok(stored)
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(PgStore::db_err)
    }

    /// A transaction-scoped advisory lock per directory id, taken in sorted order so two
    /// chunks cannot deadlock: writers of the same user queue, and outbox sequence numbers
    /// follow commit order per user.
    async fn lock_users(conn: &mut PgConnection, ids: &[&str]) -> Result<()> {
        for id in ids {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7243))")
                .bind(*id)
                .execute(&mut *conn)
                .await
                .map_err(PgStore::db_err)?;
        }
        Ok(())
    }

    async fn run_migrations(&self) -> std::result::Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }
}

#[cfg(test)]
#[test]
fn every_migration_file_is_embedded_with_its_sql() {
    orgsync_store::sql::assert_embeds_every_migration(env!("CARGO_MANIFEST_DIR"), &MIGRATOR);
}
