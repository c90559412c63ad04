//! Which backend a database URL selects. The trait crate cannot open backends (it does not
//! depend on them); the binary matches on this and calls `SqliteStore::connect` or
//! `PgStore::connect`.

use crate::error::{Result, StoreError};

/// The backend a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:`.
    Sqlite,
    /// `postgres://…`, `postgresql://…`.
    Postgres,
}

impl BackendKind {
    /// Classify `url` by its scheme.
    pub fn from_url(url: &str) -> Result<Self> {
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            Ok(BackendKind::Sqlite)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Ok(BackendKind::Postgres)
        } else {
            // Never echo a URL that might carry a password.
            let scheme = url.split_once(':').map_or("(none)", |(s, _)| s);
            Err(StoreError::InvalidUrl(format!(
                "unsupported scheme {scheme:?}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_schemes_select_backends() {
        assert_eq!(
            BackendKind::from_url("sqlite://orgsync.db").unwrap(),
            BackendKind::Sqlite
        );
        assert_eq!(
            BackendKind::from_url("sqlite::memory:").unwrap(),
            BackendKind::Sqlite
        );
        assert_eq!(
            BackendKind::from_url("postgres://u:pw@db/orgsync").unwrap(),
            BackendKind::Postgres
        );
        assert_eq!(
            BackendKind::from_url("postgresql://db/orgsync").unwrap(),
            BackendKind::Postgres
        );
        let err = BackendKind::from_url("mysql://u:hunter2@db/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mysql") && !err.contains("hunter2"), "{err}");
    }
}
