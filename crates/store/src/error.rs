//! One error type for every backend, so callers (daemon, CLI) never see `sqlx` types and
//! can decide what to do (retry a busy database, tell the operator to fix a URL) by variant.
//!
//! Each message is complete on its own: a variant that wraps a driver error prints it in
//! its own text and does not also return it as its `source()`, so `{:#}` (anyhow's chain)
//! states the driver's message once, not once per layer.

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
    /// The database could not be opened. `target` names it: `state file PATH`, or a
    /// PostgreSQL URL with its password redacted.
    #[error("cannot open {target}: {reason}")]
    Open { target: String, reason: String },
    /// A store opened for writing cannot be written (a read-only file or mount).
    #[error("{target} is read-only ({reason}); {hint}")]
    ReadOnly {
        target: String,
        reason: String,
        hint: String,
    },
    /// A store opened read-only has a schema other than the one this build expects, and a
    /// read-only open never migrates.
    #[error(
        "{target} has schema version {found}, this orgsync needs {expected}: {}",
        schema_advice(.found, .expected)
    )]
    SchemaMismatch {
        target: String,
        found: i64,
        expected: i64,
    },
    /// The database could not be reached (an I/O error, a dropped connection).
    #[error("cannot reach the database: {0}")]
    Connect(BoxError),
    /// Applying the embedded migrations failed.
    #[error("cannot migrate {target}: {reason}")]
    Migrate { target: String, reason: String },
    /// The database is busy or the transaction hit a serialization conflict; the operation
    /// may succeed if retried.
    #[error("database busy, retry later: {0}")]
    Busy(BoxError),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(BoxError),
    /// A stored value could not be decoded (corrupt row or a newer schema).
    #[error("cannot decode stored {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    /// The caller passed an argument the store rejects.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// What to do about a schema other than the expected one.
fn schema_advice(found: &i64, expected: &i64) -> &'static str {
    if found < expected {
        "run a command that writes state (e.g. `orgsync users sync` or `orgsync contacts sync`) \
         once, with write access, to migrate it"
    } else {
        "it was written by a newer orgsync; use that version"
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_driver_message_is_stated_once_in_the_chain() {
        let inner = std::io::Error::other("unable to open database file");
        let err = StoreError::Database(Box::new(inner));
        let chain = format!("{:#}", DisplayChain(&err));
        assert_eq!(
            chain.matches("unable to open database file").count(),
            1,
            "{chain}"
        );
    }

    #[test]
    fn a_schema_mismatch_says_what_to_do_either_way() {
        let older = StoreError::SchemaMismatch {
            target: "state file /x.db".into(),
            found: 3,
            expected: 5,
        }
        .to_string();
        assert!(
            older.contains("/x.db") && older.contains("migrate"),
            "{older}"
        );
        let newer = StoreError::SchemaMismatch {
            target: "state file /x.db".into(),
            found: 6,
            expected: 5,
        }
        .to_string();
        assert!(newer.contains("newer orgsync"), "{newer}");
    }

    /// What anyhow's `{:#}` prints: the error and each of its sources, joined by ": ".
    struct DisplayChain<'a>(&'a (dyn StdError + 'static));

    impl std::fmt::Display for DisplayChain<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}", self.0)?;
            let mut source = self.0.source();
            while let Some(s) = source {
                write!(f, ": {s}")?;
                source = s.source();
            }
            Ok(())
        }
    }
}
