//! Opening the configured state store. Only the binary picks a backend (SQLite by default,
//! PostgreSQL by URL), so the jobs and the daemon depend on the `Store` trait alone.
//! A store that cannot be opened is something to fix: every error here is exit code 2.

use std::sync::Arc;

use anyhow::Context as _;
use orgsync_jobs::config::StateConfig;
use orgsync_store::{BackendKind, Store};

use crate::exit::{CodedError, Exit};

/// Open the configured state store (SQLite by default, PostgreSQL by URL) for a command
/// that writes state: created if missing, migrated, and refused up front if it cannot be
/// written (a read-only file fails here, once, not once per user of a run).
pub async fn open(state: &StateConfig) -> anyhow::Result<Arc<dyn Store>> {
    open_url(&state.database_url()).await.map_err(coded)
}

/// Open a store by URL (`sqlite://PATH`, `sqlite::memory:`, `postgres://…`) for writing.
/// Errors name the file or the database (never a password) and say what to do.
async fn open_url(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let kind = BackendKind::from_url(url).context("state.url")?;
    Ok(match kind {
        BackendKind::Sqlite => {
            if let Some(path) = sqlite_file(url)
                && let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("cannot create the state directory {}", dir.display())
                })?;
            }
            Arc::new(orgsync_store_sqlite::SqliteStore::connect(url).await?)
        }
        BackendKind::Postgres => Arc::new(orgsync_store_postgres::PgStore::connect(url).await?),
    })
}

/// Open the configured state store for a command that only reads it (`users list|show`,
/// `channels list`, `contacts plan`, `--dry-run`): nothing is created, locked or migrated,
/// so it works on a read-only file, directory or mount. The schema must already be
/// current; if not, the error says to run a writing command once.
///
/// A SQLite file that does not exist yet reads as an empty store (an in-memory stand-in),
/// so `contacts plan` before the first sync works and leaves no file behind.
pub async fn open_read_only(state: &StateConfig) -> anyhow::Result<Arc<dyn Store>> {
    open_url_read_only(&state.database_url())
        .await
        .map_err(coded)
}

async fn open_url_read_only(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let kind = BackendKind::from_url(url).context("state.url")?;
    Ok(match kind {
        BackendKind::Sqlite => match sqlite_file(url) {
            Some(path) if !path.try_exists().unwrap_or(true) => {
                tracing::info!(
                    path = %path.display(),
                    "no state file yet: reading an empty state (a command that writes creates it)"
                );
                Arc::new(orgsync_store_sqlite::SqliteStore::connect("sqlite::memory:").await?)
            }
            Some(path) => Arc::new(orgsync_store_sqlite::SqliteStore::open_read_only(&path).await?),
            None => Arc::new(orgsync_store_sqlite::SqliteStore::connect(url).await?),
        },
        BackendKind::Postgres => {
            Arc::new(orgsync_store_postgres::PgStore::connect_read_only(url).await?)
        }
    })
}

pub(crate) fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    if rest.contains(":memory:") {
        return None;
    }
    let path = rest.split('?').next().unwrap_or(rest);
    Some(std::path::PathBuf::from(path))
}

/// Exit code 2, with the whole chain (what was opened: why) as the message.
fn coded(e: anyhow::Error) -> anyhow::Error {
    CodedError::new(Exit::Config, format!("{e:#}")).into()
}
