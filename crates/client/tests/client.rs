//! Integration tests of orgsync-client: against the real emulator spawned in-process
//! on 127.0.0.1:0, and against a small recording server for what the emulator does not
//! serve yet (Gmail, Calendar, groups, push channels).

mod client {
    pub mod auth;
    pub mod common;
    pub mod directory;
    pub mod mock;
    pub mod people;
    pub mod resilience;
}
