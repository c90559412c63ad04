//! orgsync's Google client: a thin, typed client for Admin SDK Directory v1, People v1,
//! Gmail v1 and Calendar v3 on reqwest + serde, used by the CLI and the daemon.
//!
//! Why hand-written: there is no maintained generated crate for Admin Directory, the
//! generated `google-*` crates are flagged unmaintained (RUSTSEC-2025-0066,
//! <https://rustsec.org/advisories/RUSTSEC-2025-0066.html>), and a thin client keeps the
//! test path (the emulator) and the production path identical.
//!
//! The pieces:
//! - [`credentials`]: [`TokenSource`] and its service-account (JWT-bearer with
//!   domain-wide delegation, single-flight cache), refresh-token and static
//!   implementations, with errors that say what to fix;
//! - [`installed`]: a person's own login (installed-app OAuth on a loopback redirect with
//!   PKCE, the 0600 token file), trading its code through the credentials' token exchange;
//! - [`transport`]: [`GoogleClient`], [`Endpoints`] (one base URL for the emulator),
//!   pacing per (API, subject), retries, tracing, and [`stats::CallStats`];
//! - [`retry`]: [`RetryPolicy`], the one retry policy of orgsync (Google calls, the token
//!   endpoint, the daemon's queues) and the reasons for its numbers;
//! - [`error`]: both Google error envelopes classified into [`ErrorKind`];
//! - typed calls: [`directory`], [`people`], [`gmail`], [`calendar`]; list methods are
//!   `Stream`s that follow `nextPageToken` to the end at the maximum page size.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use futures::TryStreamExt;
//! use orgsync_client::{ClientConfig, Endpoints, GoogleClient, ServiceAccount};
//!
//! let sa = ServiceAccount::from_file("service-account.json")?;
//! let client = GoogleClient::new(Arc::new(sa), ClientConfig {
//!     endpoints: Endpoints::emulator("http://127.0.0.1:8085"),
//!     admin_subject: Some("admin@example.com".into()),
//!     ..Default::default()
//! });
//! let mut users = std::pin::pin!(client.directory().users_list(Default::default()));
//! while let Some(user) = users.try_next().await? {
//!     println!("{:?}", user.primary_email);
//! }
//! println!("{}", serde_json::to_string(&client.stats().snapshot())?);
//! # Ok(()) }
//! ```

pub mod calendar;
pub mod credentials;
pub mod directory;
pub mod error;
pub mod gmail;
pub mod installed;
pub mod paging;
pub mod people;
pub mod quota;
pub mod retry;
pub mod stats;
pub mod transport;

pub use credentials::{
    AccessToken, AuthError, RefreshTokenCredential, ServiceAccount, StaticToken, TokenSource,
};
pub use error::{ApiError, Error, ErrorKind};
pub use quota::{MetricUsage, QuotaLimits};
pub use retry::RetryPolicy;
pub use stats::{CallStats, StatsSnapshot};
pub use transport::{Api, ApiScopes, ClientConfig, Endpoints, GoogleClient, Lane};
