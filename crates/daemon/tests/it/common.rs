//! The daemon tests' harness: the in-process emulator (`orgsync-testkit`, real HTTP on
//! loopback) delivering real push notifications to a real daemon on 127.0.0.1:0, on
//! SQLite or an isolated PostgreSQL schema.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orgsync_client::{GoogleClient, ServiceAccount};
use orgsync_daemon::{Clock as _, DaemonHandle, ManualClock, Tuning};
use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use orgsync_jobs::config::Config;
use orgsync_store::Store;
use orgsync_wire::directory::{User, UserName};

pub const ADMIN: &str = "admin@example.com";

pub struct Env {
    pub emu: EmulatorHandle,
    /// A client with write scope, for changing the directory (as an admin would).
    pub admin: GoogleClient,
    /// The daemon's service account; every client of a test shares its token cache.
    pub sa: Arc<ServiceAccount>,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
}

pub async fn env(users: usize) -> Env {
    env_with(EmulatorConfig::for_tests(users)).await
}

pub async fn env_with(config: EmulatorConfig) -> Env {
    let emu = orgsync_testkit::spawn(config).await;
    let sa = orgsync_testkit::service_account(&emu);
    let mut cc = orgsync_testkit::client_config(&emu);
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
        contacts_lease: orgsync_jobs::contacts::lease::LeaseTiming {
            ttl: Duration::from_secs(3),
            renew_every: Duration::from_millis(500),
            poll_every: Duration::from_millis(100),
        },
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
        self.client_with(|_| {})
    }

    /// A client on the shared service account, its configuration changed by `f`.
    pub fn client_with(&self, f: impl FnOnce(&mut orgsync_client::ClientConfig)) -> GoogleClient {
        let mut config = orgsync_testkit::client_config(&self.emu);
        f(&mut config);
        GoogleClient::new(self.sa.clone(), config)
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

    /// Wait until `store` knows one current channel per event type (five): the daemon
    /// has started watching.
    pub async fn wait_for_channels(&self, store: &dyn Store, timeout: Duration) {
        wait_for("5 channels", timeout, || async {
            (current_channels(store, self.clock.now()).await == 5).then_some(())
        })
        .await;
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

/// Wait until `store` holds `id` with the family name `family` (a rename applied).
pub async fn wait_for_family(store: &dyn Store, id: &str, family: &str, timeout: Duration) {
    wait_for("update applied", timeout, || async {
        store
            .get_user(id)
            .await
            .unwrap()
            .filter(|u| u.profile.family_name == family)
    })
    .await;
}

/// The directory ids of every user in `store`.
pub async fn user_ids(store: &dyn Store) -> Vec<String> {
    store
        .list_users(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.directory_id().to_owned())
        .collect()
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
