//! Shared harness: the in-process emulator (real HTTP on loopback) delivering real push
//! notifications to a real daemon on 127.0.0.1:0, on SQLite or an isolated PostgreSQL
//! schema.
#![allow(dead_code)]

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orgsync_client::{ClientConfig, Endpoints, GoogleClient, Pacing, RetryPolicy, ServiceAccount};
use orgsync_daemon::{DaemonHandle, ManualClock, Tuning};
use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use orgsync_store::Store;
use orgsync_jobs::config::Config;
use orgsync_wire::directory::{User, UserName};

pub const ADMIN: &str = "admin@example.com";

pub struct Env {
    pub emu: EmulatorHandle,
    /// A client with write scope, for changing the directory (as an admin would).
    pub admin: GoogleClient,
    pub sa: Arc<ServiceAccount>,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        base: Duration::from_millis(10),
        max_backoff: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(1),
        max_elapsed: Duration::from_secs(20),
    }
}

pub async fn env(users: usize) -> Env {
    env_with(EmulatorConfig::for_tests(users)).await
}

pub async fn env_with(config: EmulatorConfig) -> Env {
    let emu = orgsync_emulator::spawn(config).await.expect("emulator");
    let key = orgsync_emulator::oauth::service_account_key(&emu.emulator).expect("key");
    let sa = Arc::new(ServiceAccount::from_key(key).expect("key parses"));
    let mut cc = client_config(&emu.base_url);
    cc.scopes.directory = vec![orgsync_wire::scopes::DIRECTORY_USER.into()];
    let admin = GoogleClient::new(sa.clone(), cc);
    Env {
        emu,
        admin,
        sa,
        clock: Arc::new(ManualClock::new()),
        dir: tempfile::tempdir().unwrap(),
    }
}

pub fn client_config(base: &str) -> ClientConfig {
    ClientConfig {
        endpoints: Endpoints::emulator(base),
        pacing: Pacing::unlimited(),
        retry: fast_retry(),
        admin_subject: Some(ADMIN.into()),
        ..ClientConfig::default()
    }
}

pub fn tuning() -> Tuning {
    Tuning {
        poll_interval: Duration::from_millis(50),
        job_lease: Duration::from_secs(3),
        job_backoff_base: Duration::from_millis(100),
        job_backoff_max: Duration::from_secs(1),
        leader_lease: Duration::from_secs(2),
        leader_tick: Duration::from_millis(100),
        sink_poll: Duration::from_millis(50),
        sink_backoff_base: Duration::from_millis(100),
        sink_backoff_max: Duration::from_millis(500),
        sink_timeout: Duration::from_secs(2),
        ..Tuning::default()
    }
}

impl Env {
    pub fn config(&self) -> Config {
        let mut c = Config::default();
        c.google.endpoint = Some(self.emu.base_url.clone());
        c.google.admin_subject = Some(ADMIN.into());
        c.serve.workers = 2;
        c
    }

    /// The daemon's own client (read-only default scopes, like production).
    pub fn daemon_client(&self) -> GoogleClient {
        GoogleClient::new(self.sa.clone(), client_config(&self.emu.base_url))
    }

    pub async fn sqlite(&self, name: &str) -> Arc<dyn Store> {
        let path = self.dir.path().join(name);
        Arc::new(
            orgsync_store_sqlite::SqliteStore::open_path(&path)
                .await
                .expect("sqlite"),
        )
    }

    pub async fn start(&self, config: Config, store: Arc<dyn Store>) -> DaemonHandle {
        self.start_on("127.0.0.1:0", config, store).await
    }

    pub async fn start_on(
        &self,
        addr: &str,
        config: Config,
        store: Arc<dyn Store>,
    ) -> DaemonHandle {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        orgsync_daemon::start(
            config,
            self.daemon_client(),
            store,
            self.clock.clone(),
            tuning(),
            listener,
        )
        .await
        .expect("daemon starts")
    }

    /// Move both clocks (Google's and the daemon's) forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.emu.emulator.clock.advance(by);
        self.clock.advance(by);
    }

    pub async fn insert_user(&self, local: &str) -> User {
        self.admin
            .directory()
            .users_insert(&User {
                primary_email: Some(format!("{local}@example.com")),
                name: Some(UserName {
                    given_name: Some("New".into()),
                    family_name: Some(local.into()),
                    ..Default::default()
                }),
                password: Some("correct horse battery".into()),
                ..Default::default()
            })
            .await
            .expect("insert")
    }

    pub async fn rename_family(&self, id: &str, family: &str) {
        let dir = self.admin.directory();
        let mut u = dir.users_get(id, Some("full"), None).await.expect("get");
        u.name.as_mut().unwrap().family_name = Some(family.into());
        u.password = None;
        dir.users_update(id, &u).await.expect("update");
    }
}

/// Poll `check` until it returns `Some`, or panic with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Live channels the store knows, current ones only (not replaced).
pub async fn current_channels(store: &dyn Store, now: chrono::DateTime<chrono::Utc>) -> usize {
    store
        .list_live_channels(now)
        .await
        .unwrap()
        .iter()
        .filter(|c| c.replaced_by.is_none())
        .count()
}

// ---- PostgreSQL ----------------------------------------------------------------------

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh schema; returns the options to open stores on it (one pool per instance) and
/// the schema name (drop it with [`drop_schema`]). `None` = PostgreSQL unreachable and not
/// in CI (skip with a loud warning); with CI=true this panics.
pub async fn pg_schema() -> Option<(sqlx::postgres::PgConnectOptions, String)> {
    use sqlx::Connection;
    let url = std::env::var("ORGSYNC_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.into());
    let options = sqlx::postgres::PgConnectOptions::from_str(&url).expect("PG URL");
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        sqlx::postgres::PgConnection::connect_with(&options),
    )
    .await;
    let mut conn = match conn {
        Ok(Ok(c)) => c,
        other => {
            let err = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL unreachable at {url} ({err}) and CI=true");
            }
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "WARNING: skipping PostgreSQL daemon test: cannot connect to {url} ({err})"
            );
            return None;
        }
    };
    let schema = format!("d_{}", uuid_like());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("create schema");
    conn.close().await.ok();
    Some((options.options([("search_path", schema.as_str())]), schema))
}

pub async fn drop_schema(schema: &str) {
    use sqlx::Connection;
    let url = std::env::var("ORGSYNC_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.into());
    if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut conn)
            .await;
        conn.close().await.ok();
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{n:x}{:x}", std::process::id())
}
