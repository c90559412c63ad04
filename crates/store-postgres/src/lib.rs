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

mod rows;

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
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Row, migrate::Migrator};

use orgsync_store::rows::json_value as to_json;
use rows::{channel_cols, contacts_state_cols, job_cols, outbox_cols, user_cols};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Default pool size per instance.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// Maps a driver error to the store's error; serialization failures, deadlocks and lock
/// timeouts are retryable.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("40001" | "40P01" | "55P03" | "57014") => StoreError::Busy(Box::new(e)),
            Some(c) if c.starts_with("08") || c.starts_with("57P") => {
                StoreError::Connect(Box::new(e))
            }
            _ => StoreError::Database(Box::new(e)),
        },
        sqlx::Error::PoolTimedOut => StoreError::Busy(Box::new(e)),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
            StoreError::Connect(Box::new(e))
        }
        _ => StoreError::Database(Box::new(e)),
    }
}

fn limit(n: u32) -> i64 {
    i64::from(n.max(1))
}

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

/// The server's message of a driver error, once (sqlx's wrapper text adds nothing).
fn pg_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (SQLSTATE {code})", db.message()),
            None => db.message().to_owned(),
        },
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
        let expected = latest_migration();
        if found != expected {
            store.pool.close().await;
            return Err(StoreError::SchemaMismatch {
                target: store.target.to_string(),
                found,
                expected,
            });
        }
        Ok(store)
    }

    async fn pool_for(options: PgConnectOptions, max_connections: u32) -> Result<Self> {
        let target: Arc<str> = describe(&options).into();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(StdDuration::from_secs(20))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open {
                target: target.to_string(),
                reason: pg_message(&e),
            })?;
        Ok(PgStore { pool, target })
    }

    /// The underlying pool (for diagnostics and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(db_err)
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

async fn fetch_user(conn: &mut PgConnection, id: &str) -> Result<Option<AppUser>> {
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

async fn write_user(conn: &mut PgConnection, u: &AppUser) -> Result<()> {
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

async fn insert_outbox(conn: &mut PgConnection, e: &NewOutboxEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO outbox (idempotency_key, kind, directory_id, payload, created_at, \
           next_attempt_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(e.idempotency_key)
    .bind(e.kind.as_str())
    .bind(&e.directory_id)
    .bind(to_json(&e.payload)?)
    .bind(to_ms(e.created_at))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn enqueue_in(conn: &mut PgConnection, job: &NewJob) -> Result<Enqueued> {
    // One statement, atomic under concurrency: the partial unique index allows one pending
    // job per dedupe key; a second enqueue updates it. `xmax = 0` only for a fresh insert.
    let row = sqlx::query(
        "INSERT INTO jobs (kind, directory_user_id, user_email, payload, dedupe_key, run_at, \
           created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL \
         DO UPDATE SET run_at = LEAST(jobs.run_at, excluded.run_at), payload = excluded.payload, \
           directory_user_id = coalesce(excluded.directory_user_id, jobs.directory_user_id), \
           user_email = coalesce(excluded.user_email, jobs.user_email), \
           updated_at = excluded.updated_at \
         RETURNING id, (xmax <> 0) AS coalesced",
    )
    .bind(&job.kind)
    .bind(&job.directory_user_id)
    .bind(&job.user_email)
    .bind(to_json(&job.payload)?)
    .bind(&job.dedupe_key)
    .bind(to_ms(job.run_at))
    .bind(to_ms(Utc::now()))
    .fetch_one(conn)
    .await
    .map_err(db_err)?;
    Ok(Enqueued {
        id: row.try_get("id").map_err(db_err)?,
        coalesced: row.try_get("coalesced").map_err(db_err)?,
    })
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
                reason: match &e {
                    sqlx::migrate::MigrateError::Execute(e) => pg_message(e),
                    sqlx::migrate::MigrateError::ExecuteMigration(e, v) => {
                        format!("migration {v}: {}", pg_message(e))
                    }
                    other => other.to_string(),
                },
            })
    }

    async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
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
            " FROM app_users WHERE (NOT $1 OR active) AND ($2 IS NULL OR directory_id > $2) \
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
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app_users WHERE (NOT $1 OR active)")
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
        // Serialise writers of the same users; sorted so two chunks cannot deadlock.
        let mut ids: Vec<&str> = changes.iter().map(|c| c.directory_id()).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7243))")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
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
               ORDER BY o.seq LIMIT $3 FOR UPDATE SKIP LOCKED) \
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
        // SKIP LOCKED: rows another instance is claiming right now are passed over, never
        // handed out twice and never waited for.
        let rows = sqlx::query(concat!(
            "UPDATE jobs SET state = 'running', locked_by = $1, locked_until = $3, \
               attempts = attempts + 1, updated_at = $2 \
             WHERE id IN ( \
               SELECT id FROM jobs \
               WHERE (state = 'pending' AND run_at <= $2) \
                  OR (state = 'running' AND locked_until <= $2) \
               ORDER BY run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
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
            "SELECT dedupe_key, attempts FROM jobs \
             WHERE id = $1 AND state = 'running' AND locked_by = $2 FOR UPDATE",
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
                    "UPDATE jobs SET run_at = LEAST(run_at, $2), last_error = $3, \
                   attempts = GREATEST(attempts, $4), updated_at = $5 \
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
