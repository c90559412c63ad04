//! A running emulator (`orgsync-testkit`) plus an orgsync configuration pointing at it, a
//! store, and the jobs' view of the directory and the address books.

use std::collections::BTreeMap;
use std::sync::Arc;

use orgsync_client::{ApiScopes, GoogleClient, ServiceAccount, TokenSource};
use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use orgsync_jobs::config::Config;
use orgsync_jobs::contacts::{self, ContactsOptions, ContactsReport, Mode};
use orgsync_jobs::context;
use orgsync_store::Store;
use orgsync_wire::directory::User;
use orgsync_wire::people::Person;

pub struct Env {
    pub emulator: EmulatorHandle,
    pub config: Config,
    pub store: Arc<dyn Store>,
    /// Directory writes (joiners, leavers, renames) as the admin.
    pub admin: GoogleClient,
    /// Reads that must not count in a run's report.
    pub observer: GoogleClient,
    pub domain: String,
}

impl Env {
    pub async fn start(config: EmulatorConfig) -> Env {
        let emulator = orgsync_testkit::spawn(config).await;
        let emu = emulator.emulator.clone();
        let key = orgsync_emulator::oauth::service_account_key(&emu).expect("a key");
        let admin_email = emu.config.admin_email();
        let domain = emu.config.domain.clone();
        let mut config = context::emulator_config(
            &emulator.base_url,
            serde_json::to_string(&key).unwrap(),
            &admin_email,
        );
        // The generated org's personal contacts include colleagues' addresses (to prove
        // they are never touched), and most tests count writes per book exactly: they
        // copy everyone. The default, "skip", has its own tests, which set it.
        config.contacts.personal_duplicates = orgsync_core::contacts::PersonalDuplicates::Add;
        let store: Arc<dyn Store> = Arc::new(
            orgsync_store_sqlite::SqliteStore::connect("sqlite::memory:")
                .await
                .expect("store"),
        );
        let sa: Arc<dyn TokenSource> = Arc::new(ServiceAccount::from_key(key).unwrap());
        let mut admin_config = context::client_config(&config);
        admin_config.scopes = ApiScopes {
            directory: vec![orgsync_wire::scopes::DIRECTORY_USER.into()],
            ..ApiScopes::default()
        };
        let admin = GoogleClient::new(sa.clone(), admin_config);
        let observer = GoogleClient::new(sa, context::client_config(&config));
        Env {
            emulator,
            config,
            store,
            admin,
            observer,
            domain,
        }
    }

    /// A client of the same service account asking for `directory` scopes (which the
    /// emulator must delegate first), e.g. the group scope to change membership.
    pub fn client_with_directory_scopes(&self, directory: &[&str]) -> GoogleClient {
        let key =
            orgsync_emulator::oauth::service_account_key(&self.emulator.emulator).expect("a key");
        let sa: Arc<dyn TokenSource> = Arc::new(ServiceAccount::from_key(key).unwrap());
        let mut config = context::client_config(&self.config);
        config.scopes = ApiScopes {
            directory: directory.iter().map(|s| s.to_string()).collect(),
            ..ApiScopes::default()
        };
        GoogleClient::new(sa, config)
    }

    /// Delegate `scope` to the emulator's service account, on top of the defaults.
    pub fn delegate_also(&self, scope: &str) {
        let mut oauth = self.emulator.emulator.oauth.write();
        let client = oauth.service_accounts[0].account.client_email.clone();
        let mut scopes: Vec<&str> = orgsync_emulator::oauth::DEFAULT_DELEGATED_SCOPES.to_vec();
        scopes.push(scope);
        assert!(oauth.set_delegated_scopes(&client, &scopes));
    }

    pub async fn run(&self, options: &ContactsOptions) -> ContactsReport {
        self.try_run(options).await.expect("the run completes")
    }

    pub async fn try_run(
        &self,
        options: &ContactsOptions,
    ) -> Result<ContactsReport, contacts::ContactsError> {
        contacts::run(&self.client(), self.store.clone(), &self.config, options).await
    }

    /// The client a run uses: the config's, with quick retries (tests inject errors).
    pub fn client(&self) -> GoogleClient {
        let key = self.config.service_account_key_json().unwrap();
        let sa: Arc<dyn TokenSource> = Arc::new(ServiceAccount::from_json(&key).unwrap());
        let mut cc = context::client_config(&self.config);
        cc.retry = orgsync_testkit::fast_retry();
        GoogleClient::new(sa, cc)
    }

    /// Set the emulator's injected error rate for every API call.
    pub fn error_rate(&self, rate: f64) {
        let emu = &self.emulator.emulator;
        let mut f = emu.faults.settings();
        f.error_rate = rate;
        emu.faults.set(f).unwrap();
    }

    pub async fn sync(&self) -> ContactsReport {
        self.run(&ContactsOptions::new(Mode::Sync)).await
    }

    /// Active users (id → user).
    pub async fn users(&self) -> BTreeMap<String, User> {
        orgsync_testkit::emulator::directory_users(&self.observer)
            .await
            .into_iter()
            .filter(|u| u.suspended != Some(true) && u.archived != Some(true))
            .map(|u| (u.id.clone().unwrap(), u))
            .collect()
    }

    pub async fn managed_of(&self, email: &str) -> Vec<Person> {
        orgsync_testkit::books::managed_of(&self.observer, email).await
    }

    pub async fn personal_of(&self, email: &str) -> Vec<Person> {
        orgsync_testkit::books::personal_of(&self.observer, email).await
    }

    /// Every personal contact of every active user: `id/resourceName` → etag.
    pub async fn personal_fingerprints(&self) -> BTreeMap<String, String> {
        let users = self.users().await;
        orgsync_testkit::books::personal_fingerprints(&self.observer, users.values()).await
    }
}

impl Env {
    pub async fn user_by_email(&self, email: &str) -> User {
        self.admin
            .directory()
            .users_get(email, Some("full"), None)
            .await
            .unwrap()
    }

    pub async fn update_user(&self, email: &str, f: impl FnOnce(&mut User)) -> User {
        let mut u = self.user_by_email(email).await;
        f(&mut u);
        self.admin
            .directory()
            .users_update(email, &u)
            .await
            .unwrap()
    }

    pub async fn insert_user(&self, local: &str, given: &str, family: &str) -> User {
        let user = User {
            primary_email: Some(format!("{local}@{}", self.domain)),
            name: Some(orgsync_wire::directory::UserName {
                given_name: Some(given.into()),
                family_name: Some(family.into()),
                ..Default::default()
            }),
            password: Some("not-a-real-password".into()),
            ..Default::default()
        };
        self.admin.directory().users_insert(&user).await.unwrap()
    }

    /// Give `email` a phone of a custom type (`desk`), which the generated org has none of.
    pub async fn give_desk_phone(&self, email: &str) {
        self.update_user(email, |u| {
            u.phones = Some(vec![orgsync_wire::directory::UserPhone {
                value: "+1 555 0100".into(),
                kind: Some("custom".into()),
                custom_type: Some("desk".into()),
                ..Default::default()
            }]);
        })
        .await;
    }

    pub async fn delete_user(&self, email: &str) {
        self.admin.directory().users_delete(email).await.unwrap()
    }

    /// Emails of active non-admin users, sorted.
    pub async fn member_emails(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .users()
            .await
            .into_values()
            .filter_map(|u| u.primary_email)
            .filter(|e| !e.starts_with("admin@"))
            .collect();
        v.sort();
        v
    }
}
