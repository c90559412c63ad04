//! Shared helpers: spawn an emulator, build a client for it, use the control API.

use std::sync::Arc;
use std::time::Duration;

use orgsync_client::{
    ApiScopes, ClientConfig, Endpoints, GoogleClient, Pacing, RetryPolicy, ServiceAccount,
};
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

/// Fast retries so fault tests finish in seconds.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        base: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(2),
        max_elapsed: Duration::from_secs(60),
    }
}

pub fn config_for(base: &str) -> ClientConfig {
    ClientConfig {
        endpoints: Endpoints::emulator(base),
        scopes: test_scopes(),
        pacing: Pacing::unlimited(),
        retry: fast_retry(),
        admin_subject: Some(admin()),
        calendar_quota_user: true,
    }
}

pub async fn env_with(config: EmulatorConfig) -> Env {
    let emu = orgsync_emulator::spawn(config)
        .await
        .expect("emulator starts");
    let key = orgsync_emulator::oauth::service_account_key(&emu.emulator).expect("generated key");
    let sa = Arc::new(ServiceAccount::from_key(key.clone()).expect("key parses"));
    let client = GoogleClient::new(sa.clone(), config_for(&emu.base_url));
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
        let mut cfg = config_for(&self.emu.base_url);
        f(&mut cfg);
        GoogleClient::new(self.sa.clone(), cfg)
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let http = reqwest::Client::new();
        let mut req = http.request(method, format!("{}/emulator/v1/{path}", self.emu.base_url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("control API answers");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "control {path}: {status} {v}");
        v
    }

    pub async fn stats(&self) -> Value {
        self.control(reqwest::Method::GET, "stats", None).await
    }

    pub async fn set_faults(&self, faults: Value) {
        self.control(reqwest::Method::PUT, "faults", Some(faults))
            .await;
    }

    /// Some non-admin user's primary email.
    pub async fn non_admin(&self) -> String {
        use futures::TryStreamExt;
        let users: Vec<_> = self
            .client
            .directory()
            .users_list(Default::default())
            .try_collect()
            .await
            .unwrap();
        users
            .into_iter()
            .find(|u| u.is_admin != Some(true) && !u.is_inactive())
            .and_then(|u| u.primary_email)
            .expect("a non-admin user")
    }
}
