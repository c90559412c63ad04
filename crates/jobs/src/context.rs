//! Wiring: a validated [`Config`] → a [`GoogleClient`] and a [`Store`].
//!
//! Every command and the daemon build their clients here, so the endpoint, the
//! quotas (as pacing), the admin subject and the retry policy mean the same thing
//! everywhere.

use std::sync::Arc;

use anyhow::Context as _;
use orgsync_client::{
    ClientConfig, Endpoints, GoogleClient, Pacing, RetryPolicy, ServiceAccount, TokenSource,
};
use orgsync_store::{BackendKind, Store};

use crate::config::{Config, ConfigError, KeySource, QuotaConfig, StateConfig};

/// Pacing from the configured quotas. People reads and writes share the People quota.
pub fn pacing(quotas: &QuotaConfig) -> Pacing {
    Pacing {
        directory: quotas.directory_per_minute,
        people_read: quotas.people_per_minute,
        people_write: quotas.people_per_minute,
        gmail: quotas.gmail_per_minute,
        calendar: quotas.calendar_per_minute,
        ..Pacing::unlimited()
    }
}

/// The [`ClientConfig`] a config describes (endpoint, quotas, admin subject).
pub fn client_config(config: &Config) -> ClientConfig {
    let endpoints = match &config.google.endpoint {
        Some(base) => Endpoints::emulator(base),
        None => Endpoints::default(),
    };
    ClientConfig {
        endpoints,
        pacing: pacing(&config.google.quotas),
        retry: RetryPolicy::default(),
        admin_subject: config.google.admin_subject.clone(),
        ..ClientConfig::default()
    }
}

/// The service account of the config (key file or inline key). Errors name the file and
/// the setting that gave it, give the client's one piece of advice, and never quote the key.
pub fn service_account(config: &Config) -> Result<ServiceAccount, ConfigError> {
    let source = config.service_account_key_source()?;
    let json = config.service_account_key_json()?;
    let origin = match source {
        KeySource::File { path, setting } => format!("file {} (from {setting})", path.display()),
        KeySource::Inline { setting, .. } => format!("in {setting}"),
    };
    ServiceAccount::from_json_named(&json, &origin).map_err(|e| ConfigError::Key(e.to_string()))
}

/// A client that authenticates as the config's service account (domain-wide delegation).
pub fn service_account_client(config: &Config) -> Result<GoogleClient, ConfigError> {
    config.admin_subject()?;
    let sa = service_account(config)?;
    let tokens: Arc<dyn TokenSource> = Arc::new(sa);
    Ok(GoogleClient::new(tokens, client_config(config)))
}

/// Open the configured state store (SQLite by default, PostgreSQL by URL) for a command
/// that writes state: created if missing, migrated, and refused up front if it cannot be
/// written (a read-only file fails here, once, not once per user of a run).
pub async fn open_store(state: &StateConfig) -> anyhow::Result<Arc<dyn Store>> {
    let url = state.database_url();
    open_store_url(&url).await
}

/// Open a store by URL (`sqlite://PATH`, `sqlite::memory:`, `postgres://…`) for writing.
/// Errors name the file or the database (never a password) and say what to do.
pub async fn open_store_url(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let kind = BackendKind::from_url(url).context("state.url")?;
    Ok(match kind {
        BackendKind::Sqlite => {
            if let Some(path) = sqlite_file(url)
                && let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("cannot create the state directory {}", dir.display())
                })?;
            }
            Arc::new(orgsync_store_sqlite::SqliteStore::connect(url).await?)
        }
        BackendKind::Postgres => Arc::new(orgsync_store_postgres::PgStore::connect(url).await?),
    })
}

/// Open the configured state store for a command that only reads it (`users list|show`,
/// `channels list`, `contacts plan`, `--dry-run`): nothing is created, locked or migrated,
/// so it works on a read-only file, directory or mount. The schema must already be
/// current; if not, the error says to run a writing command once.
///
/// A SQLite file that does not exist yet reads as an empty store (an in-memory stand-in),
/// so `contacts plan` before the first sync works and leaves no file behind.
pub async fn open_store_read_only(state: &StateConfig) -> anyhow::Result<Arc<dyn Store>> {
    let url = state.database_url();
    open_store_url_read_only(&url).await
}

/// [`open_store_read_only`] by URL.
pub async fn open_store_url_read_only(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let kind = BackendKind::from_url(url).context("state.url")?;
    Ok(match kind {
        BackendKind::Sqlite => match sqlite_file(url) {
            Some(path) if !path.try_exists().unwrap_or(true) => {
                tracing::info!(
                    path = %path.display(),
                    "no state file yet: reading an empty state (a command that writes creates it)"
                );
                Arc::new(orgsync_store_sqlite::SqliteStore::connect("sqlite::memory:").await?)
            }
            Some(path) => Arc::new(orgsync_store_sqlite::SqliteStore::open_read_only(&path).await?),
            None => Arc::new(orgsync_store_sqlite::SqliteStore::connect(url).await?),
        },
        BackendKind::Postgres => {
            Arc::new(orgsync_store_postgres::PgStore::connect_read_only(url).await?)
        }
    })
}

fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    if rest.contains(":memory:") {
        return None;
    }
    let path = rest.split('?').next().unwrap_or(rest);
    Some(std::path::PathBuf::from(path))
}

/// A configuration for a local emulator at `base_url`: its service-account key inline,
/// its admin as the subject, no pacing (the emulator's own quota, if any, applies),
/// and an in-memory state store. The demo, tests and benchmarks start from this.
pub fn emulator_config(base_url: &str, service_account_key_json: String, admin: &str) -> Config {
    let mut config = Config::default();
    config.google.endpoint = Some(base_url.to_string());
    config.google.service_account_key = Some(service_account_key_json);
    config.google.admin_subject = Some(admin.to_string());
    config.google.quotas = QuotaConfig {
        directory_per_minute: None,
        people_per_minute: None,
        gmail_per_minute: None,
        calendar_per_minute: None,
    };
    config.state.url = Some("sqlite::memory:".into());
    config
}
