//! `[serve]` and `[serve.sink]`: the push-notification daemon (`orgsync serve`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address the webhook, health and metrics server listens on.
    pub listen: String,
    /// Path Google posts notifications to.
    pub webhook_path: String,
    /// The public https URL of `webhook_path` (what `users.watch` registers). For the
    /// emulator a plain http loopback URL is accepted.
    pub public_url: Option<String>,
    /// Requested channel lifetime, seconds (Google caps it; the returned expiration wins).
    pub channel_ttl_secs: u64,
    /// Create the replacement channel this long before the old one expires.
    pub renew_ahead_secs: u64,
    /// Full reconcile interval (the safety net for missed notifications), seconds.
    pub reconcile_interval_secs: u64,
    /// Concurrent job workers.
    pub workers: usize,
    pub sink: SinkConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            webhook_path: "/hooks/directory".into(),
            public_url: None,
            channel_ttl_secs: 6 * 3600,
            renew_ahead_secs: 30 * 60,
            reconcile_interval_secs: 24 * 3600,
            workers: 4,
            sink: SinkConfig::default(),
        }
    }
}

/// The optional outgoing webhook to the application.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// Where changes are POSTed; none = the store is the only sink.
    pub url: Option<String>,
    /// HMAC-SHA256 secret, inline (prefer `secret_file`).
    pub secret: Option<String>,
    /// File holding the HMAC secret.
    pub secret_file: Option<PathBuf>,
}

impl std::fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkConfig")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_file", &self.secret_file)
            .finish()
    }
}
