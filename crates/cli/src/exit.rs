//! Process exit codes (documented in README.md, "Exit codes").

use std::process::ExitCode;

use orgsync_jobs::error::{FailureKind, kind_of};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything done.
    Ok = 0,
    /// The run finished but some targets failed.
    Partial = 1,
    /// Configuration, input or authentication error: nothing (more) was done.
    Config = 2,
    /// The safety guard stopped the run before writing; re-run with --force if intended.
    Guard = 3,
    /// Another run holds the run lease and --no-wait was given: nothing was done.
    InProgress = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error that carries its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CodedError {
    pub code: Exit,
    pub message: String,
}

impl CodedError {
    pub fn new(code: Exit, message: impl Into<String>) -> Self {
        CodedError {
            code,
            message: message.into(),
        }
    }
}

/// THE table from a kind of failure to an exit code; every command's errors go through
/// it, so the same failure exits the same way from every command. Google still unavailable
/// after the client's retries (or a write whose outcome is unknown), or the state store
/// failing mid-run, is a temporary failure, 1: nothing is lost, run again later. A run
/// stopped part-way by a lost lease is 1 too. Anything the admin must fix
/// (authentication, delegation, a request Google refuses, configuration, input) is 2.
pub fn for_kind(kind: FailureKind) -> Exit {
    use orgsync_client::ErrorKind;
    match kind {
        FailureKind::Google(ErrorKind::Retryable | ErrorKind::OutcomeUnknown) => Exit::Partial,
        FailureKind::Google(_) => Exit::Config,
        FailureKind::Store | FailureKind::Interrupted => Exit::Partial,
        FailureKind::Config => Exit::Config,
        FailureKind::Guard => Exit::Guard,
        FailureKind::Busy => Exit::InProgress,
        FailureKind::Application { temporary: true } => Exit::Partial,
        FailureKind::Application { temporary: false } => Exit::Config,
    }
}

/// The exit code of one error ([`for_kind`] of its kind; 2 when it has none).
pub fn for_error(e: &(dyn std::error::Error + 'static)) -> Exit {
    kind_of(e).map_or(Exit::Config, for_kind)
}

/// The exit code of a failed Google call ([`for_kind`]).
pub fn for_google_error(e: &orgsync_client::Error) -> Exit {
    for_kind(FailureKind::Google(e.kind()))
}

/// The exit code of an error: the code it carries, else that of the first job, client or
/// store error in its chain ([`for_kind`]), else 2 (configuration or input).
pub fn classify(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|e| e.downcast_ref::<CodedError>().map(|c| c.code))
        .or_else(|| err.chain().find_map(kind_of).map(for_kind))
        .unwrap_or(Exit::Config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsync_jobs::contacts::ContactsError;
    use orgsync_jobs::contacts::lease::LeaseError;
    use orgsync_jobs::users::UsersError;

    fn google(kind: orgsync_client::ErrorKind) -> orgsync_client::Error {
        orgsync_client::Error::Api(orgsync_client::ApiError {
            method: "directory.users.list",
            kind,
            status: Some(503),
            reason: Some("backendError".into()),
            message: "Backend Error".into(),
            retry_after: None,
            attempts: 6,
        })
    }

    fn store_error() -> orgsync_store::StoreError {
        orgsync_store::StoreError::InvalidArgument("x".into())
    }

    /// The same failure exits the same way whichever job's error carries it.
    #[test]
    fn one_failure_one_exit_code_from_every_job_error() {
        use orgsync_client::ErrorKind::{Auth, Retryable};
        let outage: Vec<anyhow::Error> = vec![
            google(Retryable).into(),
            ContactsError::Directory(google(Retryable)).into(),
            UsersError::Directory(google(Retryable)).into(),
            orgsync_jobs::mail::MailError::Api(google(Retryable)).into(),
            anyhow::Error::from(google(Retryable)).context("listing events"),
        ];
        for e in &outage {
            assert_eq!(classify(e), Exit::Partial, "{e:#}");
        }
        let refused: Vec<anyhow::Error> = vec![
            google(Auth).into(),
            ContactsError::Directory(google(Auth)).into(),
            UsersError::Directory(google(Auth)).into(),
            orgsync_jobs::mail::MailError::Api(google(Auth)).into(),
        ];
        for e in &refused {
            assert_eq!(classify(e), Exit::Config, "{e:#}");
        }
        let store: Vec<anyhow::Error> = vec![
            store_error().into(),
            UsersError::Store(store_error()).into(),
            ContactsError::Store {
                doing: "recording the run's sources",
                source: store_error(),
            }
            .into(),
        ];
        for e in &store {
            assert_eq!(classify(e), Exit::Partial, "{e:#}");
        }
        let now = chrono::Utc::now();
        let held = orgsync_store::Lease {
            name: "contacts-run".into(),
            holder: "other".into(),
            acquired_at: now,
            expires_at: now,
        };
        let held: anyhow::Error = ContactsError::Lease(LeaseError::Held(held)).into();
        assert_eq!(classify(&held), Exit::InProgress);
        let lost: anyhow::Error = ContactsError::Lease(LeaseError::Lost("gone".into())).into();
        assert_eq!(classify(&lost), Exit::Partial);
        let config: anyhow::Error = orgsync_jobs::config::ConfigError::Invalid("bad".into()).into();
        assert_eq!(classify(&config), Exit::Config);
        // A code the binary chose is kept.
        let coded: anyhow::Error = CodedError::new(Exit::InProgress, "x").into();
        assert_eq!(classify(&coded), Exit::InProgress);
        assert_eq!(classify(&anyhow::anyhow!("plain")), Exit::Config);
    }
}
