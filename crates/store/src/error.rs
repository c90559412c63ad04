//! One error type for every backend, so callers (daemon, CLI) never see `sqlx` types and
//! can decide what to do (retry a busy database, tell the operator to fix a URL) by variant.

use std::error::Error as StdError;

/// A boxed error from a backend driver.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The result type of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one this backend understands.
    #[error(
        "invalid database URL: {0} (expected sqlite://PATH, sqlite::memory: or postgres://USER@HOST/DB)"
    )]
    InvalidUrl(String),
    /// The database could not be reached or opened.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] BoxError),
    /// Applying the embedded migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] BoxError),
    /// The database is busy or the transaction hit a serialization conflict; the operation
    /// may succeed if retried.
    #[error("database busy, retry later: {0}")]
    Busy(#[source] BoxError),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] BoxError),
    /// A stored value could not be decoded (corrupt row or a newer schema).
    #[error("cannot decode stored {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    /// The caller passed an argument the store rejects.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl StoreError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Busy(_) | StoreError::Connect(_))
    }

    /// A decode error for a column holding JSON.
    pub fn decode(what: &'static str, reason: impl std::fmt::Display) -> Self {
        StoreError::Decode {
            what,
            reason: reason.to_string(),
        }
    }
}
