//! The `orgsync` binary end to end: the real process, a config file, a state file and
//! the in-process emulator over loopback. Exit codes are part of the interface.
//!
//! One binary, as in every crate of the workspace: each test binary is another link of
//! tokio, axum, reqwest, sqlx and aws-lc-rs on 2 cores. A new test file is a module here
//! (`tests/it/<module>.rs`), never a new file directly under `tests/`.

use std::path::Path;

use orgsync_testkit::cli::{Cli, Out};
use serde_json::Value;

mod auth;
mod contacts;
mod deploy_files;
mod doctor;
mod emulator;
mod mail_calendar;
mod scim;
mod users;

/// The binary under test (its path is known only to this crate's tests).
const ORGSYNC: Cli = Cli::new(env!("CARGO_BIN_EXE_orgsync"));

/// `orgsync --config <config> <args>` to completion.
async fn orgsync(config: &Path, args: &[&str]) -> Out {
    ORGSYNC.run(config, args).await
}

/// `orgsync --config <config> auth login --no-browser --json` started with its output
/// piped: the test reads the consent URL from stderr and plays the browser.
fn spawn_login(config: &Path) -> tokio::process::Child {
    ORGSYNC
        .with_config(config)
        .args([
            "auth",
            "login",
            "--no-browser",
            "--json",
            "--timeout-secs",
            "60",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary starts")
}

/// A run's stdout as JSON; panics with both streams when it is not.
fn json(out: &Out) -> Value {
    out.json()
}
