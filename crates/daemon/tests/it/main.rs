//! `orgsync serve` end to end, in one binary as in every crate of the workspace: each
//! test binary is another link of tokio, axum, reqwest, sqlx and aws-lc-rs on 2 cores. A
//! new test file is a module here (`tests/it/<module>.rs`), never a new file directly
//! under `tests/`.

mod common;
mod contacts;
mod scim;
mod serve;
mod sink_and_instances;
mod status_page;
mod welcome;
