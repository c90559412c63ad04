//! The emulator in-process on `127.0.0.1:0`, and the tokens and clients tests drive it
//! with. Real HTTP on loopback, so the code under test takes the path it takes against
//! Google.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use orgsync_client::{
    ClientConfig, Endpoints, GoogleClient, QuotaLimits, RetryPolicy, ServiceAccount,
};
use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use orgsync_wire::directory::User;
use orgsync_wire::scopes;
use serde_json::Value;

/// Start the emulator on `127.0.0.1:0`.
pub async fn spawn(config: EmulatorConfig) -> EmulatorHandle {
    orgsync_emulator::spawn(config)
        .await
        .expect("emulator starts")
}

/// An access token for `subject` with `scopes`, written straight into the emulator's
/// token table: for tests of an API, not of the OAuth exchange.
pub fn token(h: &EmulatorHandle, subject: &str, scopes: &[&str]) -> String {
    orgsync_emulator::oauth::mint_access_token(&h.emulator, Some(subject), scopes)
}

/// Retries that let a test with injected faults finish in seconds: enough attempts that
/// a 30 % error rate is absorbed, short sleeps, and a `Retry-After` of one second (the
/// emulator's injected 429s) still honoured in full.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        base: Duration::from_millis(10),
        max_backoff: Duration::from_millis(100),
        max_retry_after: Duration::from_secs(1),
        max_elapsed: Duration::from_secs(60),
    }
}

/// The emulator's generated service account (domain-wide delegation for every scope).
pub fn service_account(h: &EmulatorHandle) -> Arc<ServiceAccount> {
    let key = orgsync_emulator::oauth::service_account_key(&h.emulator).expect("generated key");
    Arc::new(ServiceAccount::from_key(key).expect("key parses"))
}

/// Every API at the emulator, no pacing, [`fast_retry`], the emulator's admin as the
/// subject of admin calls, and the default (read-only) scopes.
pub fn client_config(h: &EmulatorHandle) -> ClientConfig {
    ClientConfig {
        endpoints: Endpoints::emulator(&h.base_url),
        quotas: QuotaLimits::unlimited(),
        retry: fast_retry(),
        admin_subject: Some(h.emulator.config.admin_email()),
        ..ClientConfig::default()
    }
}

/// A service-account client on [`client_config`] as changed by `f`.
pub fn client_with(h: &EmulatorHandle, f: impl FnOnce(&mut ClientConfig)) -> GoogleClient {
    let mut config = client_config(h);
    f(&mut config);
    GoogleClient::new(service_account(h), config)
}

/// A client that may write the directory, for changing it as an administrator would.
pub fn admin_client(h: &EmulatorHandle) -> GoogleClient {
    client_with(h, |c| {
        c.scopes.directory = vec![scopes::DIRECTORY_USER.into()];
    })
}

/// Every user in the directory, as `client` lists them.
pub async fn directory_users(client: &GoogleClient) -> Vec<User> {
    client
        .directory()
        .users_list(Default::default())
        .try_collect()
        .await
        .expect("users.list")
}

/// The primary email of an active user who is not an administrator (a subject the
/// Directory API refuses, or a mailbox owner that is not the admin).
pub async fn non_admin_email(client: &GoogleClient) -> String {
    directory_users(client)
        .await
        .into_iter()
        .find(|u| u.is_admin != Some(true) && !u.is_inactive())
        .and_then(|u| u.primary_email)
        .expect("a non-admin user")
}

/// The control API (`/emulator/v1/{path}`): its JSON answer (`null` when there is none).
/// Panics on an answer that is not a success.
pub async fn control(
    h: &EmulatorHandle,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = http().request(method, format!("{}/emulator/v1/{path}", h.base_url));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("control API answers");
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "control {path}: {status} {v}");
    v
}

/// The emulator's counters (`GET /emulator/v1/stats`).
pub async fn stats(h: &EmulatorHandle) -> Value {
    control(h, reqwest::Method::GET, "stats", None).await
}

/// A plain HTTP client for loopback (never through a proxy from the environment).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// The emulator and a plain HTTP client: what a test of the emulator's own API drives.
/// A test module declares its own harness around it with [`harness!`](crate::harness)
/// and adds the calls of the API it tests.
pub struct Emu {
    pub h: EmulatorHandle,
    pub http: reqwest::Client,
    /// Every user's primary email at start, in the directory's order.
    pub users: Vec<String>,
}

impl Emu {
    pub async fn start(config: EmulatorConfig) -> Emu {
        let h = spawn(config).await;
        let users = h
            .emulator
            .directory
            .read()
            .users_sorted()
            .filter_map(|u| u.primary_email.clone())
            .collect();
        Emu {
            h,
            http: http(),
            users,
        }
    }

    /// People mutations of one user answered without the emulator's overlap window, for
    /// tests that mutate one book one call after another.
    pub fn without_mutation_hold(self) -> Emu {
        self.h.emulator.people.set_mutation_hold(Duration::ZERO);
        self
    }

    /// See [`token`].
    pub fn token(&self, subject: &str, scopes: &[&str]) -> String {
        token(&self.h, subject, scopes)
    }

    /// The emulator's URL of `path_and_query` (which starts with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.h.base_url, path_and_query)
    }

    /// `method path` (`"GET"` or `Method::GET`) with bearer `tok` and an optional JSON body: the status and the
    /// answer as JSON (a body that is not JSON as a JSON string).
    pub async fn call(
        &self,
        tok: &str,
        method: impl AsRef<str>,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method =
            reqwest::Method::from_bytes(method.as_ref().as_bytes()).expect("an HTTP method");
        let mut req = self.http.request(method, self.url(path)).bearer_auth(tok);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("response body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// `harness!(Env)` declares `struct Env(pub Emu)` that derefs to [`Emu`]: a test
/// module's own harness, to which it adds the calls of the API it tests.
#[macro_export]
macro_rules! harness {
    ($(#[$meta:meta])* $vis:vis $name:ident) => {
        $(#[$meta])*
        $vis struct $name(pub $crate::Emu);

        impl ::std::ops::Deref for $name {
            type Target = $crate::Emu;

            fn deref(&self) -> &$crate::Emu {
                &self.0
            }
        }
    };
}
