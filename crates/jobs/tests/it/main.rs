//! The jobs end to end against the in-process emulator, in one binary as in every crate
//! of the workspace: each test binary is another link of tokio, axum, reqwest, sqlx and
//! aws-lc-rs on 2 cores. A new test file is a module here (`tests/it/<module>.rs`), never
//! a new file directly under `tests/`.

mod common;
mod contacts;
mod scim;
mod shared_lists;
mod users;
mod welcome;
