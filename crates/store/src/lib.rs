//! orgsync's persistent state behind one trait, [`Store`], with a backend crate per database
//! (`orgsync-store-sqlite`, the embedded default; `orgsync-store-postgres` for production
//! and several instances), as atuin does.
//!
//! This crate holds the traits, the domain types and the pure logic both backends share
//! (content hashing and the create/update/deactivate decision in [`users::decide`]), and,
//! with the `sql` feature, the SQL both backends run (`sql`, generic over the sqlx driver);
//! it depends on no database driver itself. With the `conformance` feature it also exports
//! the one test story every backend must pass ([`conformance`]).
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
#[cfg(feature = "sql")]
pub mod sql;
pub mod state;
mod store;
pub mod time;
mod url;
pub mod users;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use channels::{Channel, ChannelToken, ReceivedNotification};
pub use error::{BoxError, Result, StoreError};
pub use jobs::{Enqueued, Job, JobState, NewJob, QueueSummary};
pub use outbox::{NewOutboxEntry, OutboxEntry, OutboxKind};
pub use state::{ContactsUserState, Lease};
pub use store::{
    ChannelStore, HousekeepingStore, JobStore, LeaseStore, OutboxStore, Store, SyncStateStore,
    UserStore,
};
pub use url::BackendKind;
pub use users::{
    AppUser, ApplyReport, ChangeOutcome, Phone, UserChange, UserProfile, UserQuery, UserWrite,
};

/// The store traits, to call their methods on a concrete store or a generic one:
/// `use orgsync_store::prelude::*;`.
pub mod prelude {
    pub use crate::store::{
        ChannelStore, HousekeepingStore, JobStore, LeaseStore, OutboxStore, Store, SyncStateStore,
        UserStore,
    };
}
