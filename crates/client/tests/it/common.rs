//! The client tests' emulator: the shared harness of `orgsync-testkit` with a client
//! holding every scope the typed calls need.

use std::sync::Arc;

use orgsync_client::{ApiScopes, ClientConfig, GoogleClient, ServiceAccount};
use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use orgsync_wire::oauth::ServiceAccountKey;
use orgsync_wire::scopes;
use serde_json::Value;

pub struct Env {
    pub emu: EmulatorHandle,
    pub key: ServiceAccountKey,
    pub sa: Arc<ServiceAccount>,
    pub client: GoogleClient,
}

pub fn admin() -> String {
    EmulatorConfig::for_tests(0).admin_email()
}

/// Scopes that cover every typed call the tests make (all delegated by default).
pub fn test_scopes() -> ApiScopes {
    ApiScopes {
        directory: vec![
            scopes::DIRECTORY_USER.into(),
            scopes::DIRECTORY_GROUP_READONLY.into(),
        ],
        people: vec![scopes::CONTACTS.into()],
        gmail: vec![scopes::GMAIL_COMPOSE.into(), scopes::GMAIL_READONLY.into()],
        calendar: vec![scopes::CALENDAR_READONLY.into()],
    }
}

/// The testkit's configuration for `emu` with [`test_scopes`].
pub fn config_for(emu: &EmulatorHandle) -> ClientConfig {
    ClientConfig {
        scopes: test_scopes(),
        ..orgsync_testkit::client_config(emu)
    }
}

pub async fn env_with(config: EmulatorConfig) -> Env {
    let emu = orgsync_testkit::spawn(config).await;
    let key = orgsync_emulator::oauth::service_account_key(&emu.emulator).expect("generated key");
    let sa = orgsync_testkit::service_account(&emu);
    let client = GoogleClient::new(sa.clone(), config_for(&emu));
    Env {
        emu,
        key,
        sa,
        client,
    }
}

pub async fn env(users: usize) -> Env {
    env_with(EmulatorConfig::for_tests(users)).await
}

impl Env {
    pub fn client_with(&self, f: impl FnOnce(&mut ClientConfig)) -> GoogleClient {
        let mut cfg = config_for(&self.emu);
        f(&mut cfg);
        GoogleClient::new(self.sa.clone(), cfg)
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        orgsync_testkit::control(&self.emu, method, path, body).await
    }

    pub async fn stats(&self) -> Value {
        orgsync_testkit::stats(&self.emu).await
    }

    pub async fn set_faults(&self, faults: Value) {
        self.control(reqwest::Method::PUT, "faults", Some(faults))
            .await;
    }

    /// Some non-admin user's primary email.
    pub async fn non_admin(&self) -> String {
        orgsync_testkit::emulator::non_admin_email(&self.client).await
    }
}
