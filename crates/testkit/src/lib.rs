//! The harness every orgsync integration test shares, so that no test binary carries its
//! own copy: the in-process emulator on `127.0.0.1:0` and clients for it ([`emulator`]),
//! reading mailboxes back ([`gmail`]), reading address books back and comparing them with
//! the directory ([`books`]), the `orgsync` binary as a process ([`cli`]) and a
//! PostgreSQL schema per test, and a real SCIM 2.0 server ([`scim`]) (`postgres`, feature `postgres`; the rest is feature
//! `emulator`, on by default).
//!
//! Used only from `tests/`: a crate's integration tests link its normal library, so the
//! dev-dependency cycle (this crate depends on the emulator and the client) is harmless;
//! unit tests inside `src/` must not use it (they would see a second copy of their crate).

#[cfg(feature = "emulator")]
pub mod books;
#[cfg(feature = "emulator")]
pub mod cli;
#[cfg(feature = "emulator")]
pub mod emulator;
#[cfg(feature = "emulator")]
pub mod gmail;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "emulator")]
pub mod scim;

#[cfg(feature = "emulator")]
pub use emulator::{
    Emu, admin_client, client_config, client_with, control, fast_retry, service_account, spawn,
    stats, token,
};
