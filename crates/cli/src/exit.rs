//! Process exit codes (documented in README.md, "Exit codes").

use std::process::ExitCode;

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

/// The exit code of a failed Google call, the same from every command: Google still
/// unavailable after the client's retries (or a write whose outcome is unknown) is a
/// temporary failure, 1: nothing is lost, run again later. Anything the admin must fix
/// (authentication, delegation, a request Google refuses) is 2.
pub fn for_google_error(e: &orgsync_client::Error) -> Exit {
    use orgsync_client::ErrorKind;
    match e.kind() {
        ErrorKind::Retryable | ErrorKind::OutcomeUnknown => Exit::Partial,
        _ => Exit::Config,
    }
}

/// The exit code of an error: the code it carries, else that of a Google call failure in
/// its chain ([`for_google_error`]), else 2 (configuration or input).
pub fn classify(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|e| e.downcast_ref::<CodedError>().map(|c| c.code))
        .or_else(|| {
            err.chain().find_map(|e| {
                e.downcast_ref::<orgsync_client::Error>()
                    .map(for_google_error)
            })
        })
        .unwrap_or(Exit::Config)
}
