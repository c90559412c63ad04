//! Admin SDK Directory v1: users, groups, members, `users.watch` and push delivery.
//! (To be implemented.)

use std::sync::Arc;

use axum::Router;
use serde::{Deserialize, Serialize};

use crate::state::Emulator;

#[derive(Default, Serialize, Deserialize)]
pub struct DirectoryState {}

/// What the token endpoint and the other APIs need to know about a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectInfo {
    pub id: String,
    pub primary_email: String,
    pub is_admin: bool,
    pub suspended: bool,
}

impl DirectoryState {
    /// The live (not deleted) user with this primary email or alias, case-insensitive.
    pub fn find_subject(&self, _email: &str) -> Option<SubjectInfo> {
        None
    }
}

/// Fill the directory with the generated demo org (`config.users`, `config.seed`,
/// `config.domain`), including the admin `admin@{domain}`. Called by
/// [`crate::persist::bootstrap`] when no saved state is loaded.
pub fn seed(_emu: &Emulator) {}

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
}
