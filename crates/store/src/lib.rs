//! orgsync's persistent state behind one trait, [`Store`], with a backend crate per database
//! (`orgsync-store-sqlite`, the embedded default; `orgsync-store-postgres` for production
//! and several instances), as atuin does.
//!
//! This crate holds only the trait, the domain types and the pure logic both backends share
//! (content hashing and the create/update/deactivate decision in [`users::decide`]); it
//! depends on no database driver. With the `conformance` feature it also exports the one test
//! story every backend must pass ([`conformance`]).
//!
//! Conventions every backend follows: timestamps are integer Unix milliseconds, JSON is TEXT
//! (SQLite) or JSONB (PostgreSQL), and each user change writes its outbox entry in the same
//! transaction.
//!
//! Opening a store (the binary does this; see [`BackendKind::from_url`]):
//!
//! ```text
//! match BackendKind::from_url(url)? {
//!     BackendKind::Sqlite => Arc::new(SqliteStore::connect(url).await?) as Arc<dyn Store>,
//!     BackendKind::Postgres => Arc::new(PgStore::connect(url).await?),
//! }
//! ```

pub mod channels;
pub mod error;
pub mod jobs;
pub mod outbox;
pub mod rows;
pub mod state;
mod store;
pub mod time;
mod url;
pub mod users;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use channels::{Channel, ChannelToken, ReceivedNotification};
pub use error::{BoxError, Result, StoreError};
pub use jobs::{Enqueued, Job, JobState, NewJob};
pub use outbox::{NewOutboxEntry, OutboxEntry, OutboxKind};
pub use state::{ContactsUserState, Lease};
pub use store::Store;
pub use url::BackendKind;
pub use users::{
    AppUser, ApplyReport, ChangeOutcome, Phone, UserChange, UserProfile, UserQuery, UserWrite,
};
