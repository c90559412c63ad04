//! People v1: per-user contacts, contact groups, batch mutations and sync tokens.
//! (To be implemented.)

use std::sync::Arc;

use axum::Router;

use crate::state::Emulator;

#[derive(Default)]
pub struct PeopleState {}

/// Serializable form of [`PeopleState`] for `--data-dir` persistence.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct PeopleSnapshot {}

impl PeopleState {
    pub fn snapshot(&self) -> PeopleSnapshot {
        PeopleSnapshot {}
    }

    pub fn restore(&self, _snapshot: PeopleSnapshot) {}
}

/// Give generated users their personal (non-orgsync) contacts
/// (`config.personal_contacts_per_user`). Called after [`crate::directory::seed`].
pub fn seed(_emu: &Emulator) {}

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
}
