//! Wiring: a validated [`Config`] → a [`GoogleClient`].
//!
//! Every command and the daemon build their clients here, so the endpoint, the
//! quotas (as pacing), the admin subject and the retry policy mean the same thing
//! everywhere. The state store is opened by the binary, the one place that knows the
//! backends; jobs take any `orgsync_store::Store`.

use std::sync::Arc;

use orgsync_client::{
    ClientConfig, Endpoints, GoogleClient, QuotaLimits, RetryPolicy, ServiceAccount, TokenSource,
};

use crate::config::{Config, ConfigError, KeySource, QuotaConfig};

/// The quota limits calls are paced to: Google's defaults with the config's overrides.
pub fn quota_limits(quotas: &QuotaConfig) -> QuotaLimits {
    use orgsync_wire::quota::Scope;
    if !quotas.pace {
        return QuotaLimits::unlimited();
    }
    let mut limits = QuotaLimits::google();
    for (scope, map) in [
        (Scope::User, &quotas.per_user),
        (Scope::Project, &quotas.per_project),
    ] {
        for (key, &value) in map {
            if let Some(metric) = QuotaConfig::metric(key) {
                limits.set(metric, scope, Some(value));
            }
        }
    }
    limits.minute = std::time::Duration::from_secs_f64(quotas.minute_secs);
    limits
}

/// Google calls' retries: the client's default, within the configured time budget.
fn retry_policy(config: &Config) -> RetryPolicy {
    let default = RetryPolicy::default();
    RetryPolicy {
        max_elapsed: config
            .google
            .retry_budget_secs
            .map_or(default.max_elapsed, std::time::Duration::from_secs),
        ..default
    }
}

/// The [`ClientConfig`] a config describes (endpoint, quotas, admin subject).
pub fn client_config(config: &Config) -> ClientConfig {
    let endpoints = match &config.google.endpoint {
        Some(base) => Endpoints::emulator(base),
        None => Endpoints::default(),
    };
    let mut scopes = orgsync_client::ApiScopes::default();
    // Meeting rooms as a shared list read `resources.calendars`, whose scope an admin
    // delegates only for this (a token asking for an undelegated scope is refused).
    if config.contacts.shared_lists.iter().any(|l| l.rooms) {
        scopes
            .directory
            .push(orgsync_wire::scopes::DIRECTORY_RESOURCE_CALENDAR_READONLY.into());
    }
    ClientConfig {
        endpoints,
        scopes,
        quotas: quota_limits(&config.google.quotas),
        retry: retry_policy(config),
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

/// A configuration for a local emulator at `base_url`: its service-account key inline,
/// its admin as the subject, no pacing (the emulator's own quota, if any, applies),
/// and an in-memory state store. The demo, tests and benchmarks start from this.
pub fn emulator_config(base_url: &str, service_account_key_json: String, admin: &str) -> Config {
    let mut config = Config::default();
    config.google.endpoint = Some(base_url.to_string());
    config.google.service_account_key = Some(service_account_key_json);
    config.google.admin_subject = Some(admin.to_string());
    config.google.quotas.pace = false;
    config.state.url = Some("sqlite::memory:".into());
    config
}
