//! Integration tests of orgsync-client: against the real emulator spawned in-process
//! on 127.0.0.1:0, and against a small recording server for what the emulator does not
//! serve yet (Gmail, Calendar, groups, push channels).
//!
//! One binary, as in every crate of the workspace: each test binary is another link of
//! tokio, axum, reqwest and aws-lc-rs on 2 cores. A new test file is a module here
//! (`tests/it/<module>.rs`), never a new file directly under `tests/`.

mod auth;
mod common;
mod directory;
mod mock;
mod people;
mod photos;
mod resilience;
