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

/// Errors that do not say otherwise are configuration/input errors (exit 2).
pub fn classify(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|e| e.downcast_ref::<CodedError>().map(|c| c.code))
        .unwrap_or(Exit::Config)
}
