//! A faithful, stateful local emulator of the Google Workspace APIs orgsync uses:
//! the OAuth 2.0 token endpoint, Admin SDK Directory v1 (with `users.watch` push),
//! People v1, Gmail v1 and Calendar v3, plus a control API under `/emulator/v1/`.
//!
//! Nothing on a test machine can reach Google, so this emulator is what proves the
//! client right. It follows Google's discovery documents (as shipped in
//! google-api-python-client 2.202.0) and Google's published guides; the facts it relies on,
//! with their public sources, are listed in `docs/ARCHITECTURE.md`. Google's own Python
//! client drives it in the conformance suite (`conformance/`).
//!
//! Layout: one module per API, each owning its state behind its own lock inside
//! [`Emulator`]; [`auth`] turns bearer tokens into a [`auth::Caller`]; [`error`] answers in
//! the right envelope per API; [`faults`] injects latency, errors and quotas and counts
//! calls for `GET /emulator/v1/stats`.

// Handlers return `Result<_, ApiError>` where the error *is* the HTTP response; its size
// is irrelevant next to a network round trip, and boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod calendar;
pub mod clock;
pub mod config;
pub mod control;
pub mod directory;
pub mod error;
pub mod faults;
pub mod generate;
pub mod gmail;
pub mod keys;
pub mod oauth;
pub mod partial;
pub mod people;
pub mod persist;
pub mod query;
pub mod server;
pub mod state;

pub use config::EmulatorConfig;
pub use server::{EmulatorHandle, serve, spawn};
pub use state::Emulator;
