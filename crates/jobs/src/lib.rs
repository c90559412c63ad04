//! orgsync's executors: the glue between the Google client, the pure planners and the
//! state store.
//!
//! - [`config`]: the validated configuration (`orgsync.toml` + environment);
//! - [`context`]: a config → a [`orgsync_client::GoogleClient`] and a store;
//! - [`directory`]: one directory read per run (users, group membership, query ids);
//! - [`error`]: the kind of every job error ([`error::FailureKind`]), for exit codes;
//! - [`contacts`]: the Directory → Contacts run (plan, apply, record, report);
//! - [`auth`]: a person's own login (installed-app OAuth, PKCE, token file);
//! - [`mail`]: MIME building, limits, templates and sending through Gmail;
//! - [`scim`]: Directory → SCIM 2.0 applications (users, groups, memberships);
//! - [`runs`]: each job's last run and the last changes applied, for the status page;
//! - [`doctor`]: the checks behind `orgsync doctor` (key, delegation, APIs, admin, serve).
//!
//! The CLI, the daemon and the benchmarks all run jobs through this crate, so a
//! benchmark measures exactly what `orgsync contacts sync` does.

pub mod attributes;
pub mod auth;
pub mod config;
pub mod contacts;
pub mod context;
pub mod directory;
pub mod doctor;
pub mod error;
pub mod mail;
pub mod runs;
pub mod scim;
pub mod users;
