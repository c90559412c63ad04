//! `[serve]` and `[serve.sink]`: the push-notification daemon (`orgsync serve`).
//!
//! ## Connection limits
//!
//! The webhook listens on the public internet (Google must reach it), so any client can
//! open connections and send nothing, or send a byte now and then. Three settings bound
//! what such clients hold (the server side lives in `orgsync-daemon`'s `server` module):
//!
//! - `header_timeout_secs` (default 10): a request's headers must arrive in full within
//!   this time of the connection opening, or of its previous response; otherwise the
//!   connection is closed. The same clock bounds an idle keep-alive connection, so there
//!   is no separate idle setting. Google sends its headers in one write, in milliseconds;
//!   10 s leaves room for a slow network without letting a trickling client stay.
//! - `body_timeout_secs` (default 30): the whole body must arrive within this time of the
//!   headers, or the request is answered 408 and the connection closed. Push bodies are a
//!   few hundred bytes.
//! - `max_connections` (default 1024): connections served at once. When a new connection
//!   arrives at the cap, the connection that has waited longest for its next request
//!   (idle, or still sending headers or a body) is closed to make room, so a flood of slow
//!   clients only displaces itself and `/healthz` and Google's pushes still get through;
//!   connections whose request is being handled are never closed for this. Each served
//!   connection costs a task and up to about 70 KiB of buffers, so the cap also bounds the
//!   memory held for clients. 1024 is far above what Google's push delivery and the probes
//!   need and stays under the common file-descriptor limit (`ulimit -n`) together with the
//!   store's and the Google client's connections; raise the limit before raising the cap.

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
    /// Keep address books in step from push notifications too (see the daemon's
    /// `contacts` module). Default: true when the file has a `[contacts]` table.
    pub contacts: bool,
    /// Seconds a directory change waits for others before the address books are written,
    /// so a burst (an onboarding script adding 100 people) is one write per book.
    pub contacts_batch_secs: u64,
    /// The full contacts run's interval (the safety net that also repairs what people
    /// edited in their books), seconds. On start it runs at once if the last complete
    /// run is older than this.
    pub contacts_reconcile_interval_secs: u64,
    /// The full SCIM run's interval, seconds (`[[scim]]` targets): the Directory sends no
    /// push for group membership, so this is how soon a membership change reaches the
    /// apps. Each run costs one directory read and one listing per app. Default 300.
    pub scim_interval_secs: u64,
    /// Concurrent job workers.
    pub workers: usize,
    /// Seconds a client has to send a request's headers (and how long an idle keep-alive
    /// connection is kept). See the module docs.
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's body once its headers arrived; then 408.
    pub body_timeout_secs: u64,
    /// Connections served at once; at the cap the longest-waiting idle or slow
    /// connection is closed for a new one.
    pub max_connections: usize,
    pub sink: SinkConfig,
}

/// The largest `max_connections` accepted (a semaphore's permit count; far above any
/// file-descriptor limit).
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            webhook_path: "/hooks/directory".into(),
            public_url: None,
            channel_ttl_secs: 6 * 3600,
            renew_ahead_secs: 30 * 60,
            reconcile_interval_secs: 24 * 3600,
            contacts: false,
            contacts_batch_secs: 5,
            contacts_reconcile_interval_secs: 24 * 3600,
            scim_interval_secs: 300,
            workers: 4,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            max_connections: 1024,
            sink: SinkConfig::default(),
        }
    }
}

impl ServeConfig {
    /// The connection limits must be positive: a zero would close every connection at once
    /// (timeouts) or never serve one (the cap).
    pub fn validate(&self) -> Result<(), super::ConfigError> {
        let invalid = |m: String| Err(super::ConfigError::Invalid(m));
        if self.header_timeout_secs == 0 {
            return invalid(
                "serve.header_timeout_secs must be at least 1 (seconds a client has to send \
                 its request headers; default 10)"
                    .into(),
            );
        }
        if self.body_timeout_secs == 0 {
            return invalid(
                "serve.body_timeout_secs must be at least 1 (seconds a client has to send a \
                 request body; default 30)"
                    .into(),
            );
        }
        if self.contacts_batch_secs > 50 {
            return invalid(format!(
                "serve.contacts_batch_secs must be at most 50 (seconds a directory change \
                 waits for others before address books are written; default 5), got {}: \
                 longer waits would keep a change from phones for over a minute",
                self.contacts_batch_secs
            ));
        }
        if self.contacts_reconcile_interval_secs < 60 {
            return invalid(format!(
                "serve.contacts_reconcile_interval_secs must be at least 60 (default 86400, \
                 daily), got {}",
                self.contacts_reconcile_interval_secs
            ));
        }
        if self.scim_interval_secs < 30 {
            return invalid(format!(
                "serve.scim_interval_secs must be at least 30 (default 300: group membership \
                 reaches SCIM apps within five minutes), got {}",
                self.scim_interval_secs
            ));
        }
        if self.max_connections == 0 || self.max_connections > MAX_CONNECTIONS_LIMIT {
            return invalid(format!(
                "serve.max_connections must be between 1 and {MAX_CONNECTIONS_LIMIT} \
                 (connections served at once; default 1024), got {}",
                self.max_connections
            ));
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_connection_limits_are_rejected_by_name() {
        assert!(ServeConfig::default().validate().is_ok());
        type Set = fn(&mut ServeConfig);
        let cases: [(&str, Set); 7] = [
            ("serve.scim_interval_secs", |s| s.scim_interval_secs = 29),
            ("serve.header_timeout_secs", |s| s.header_timeout_secs = 0),
            ("serve.contacts_batch_secs", |s| s.contacts_batch_secs = 51),
            ("serve.contacts_reconcile_interval_secs", |s| {
                s.contacts_reconcile_interval_secs = 59
            }),
            ("serve.body_timeout_secs", |s| s.body_timeout_secs = 0),
            ("serve.max_connections", |s| s.max_connections = 0),
            ("serve.max_connections", |s| {
                s.max_connections = MAX_CONNECTIONS_LIMIT + 1
            }),
        ];
        for (name, set) in cases {
            let mut s = ServeConfig::default();
            set(&mut s);
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }
}
