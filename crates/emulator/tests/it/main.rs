//! The emulator's API over real loopback HTTP, in one binary as in every crate of the
//! workspace: each test binary is another link of tokio, axum, reqwest and aws-lc-rs on
//! 2 cores. A new test file is a module here (`tests/it/<module>.rs`), never a new file
//! directly under `tests/`. The shared harness is `orgsync-testkit`.

mod calendar;
mod directory;
mod gmail;
mod oauth_and_control;
mod people;
mod people_responses;
mod photos;
