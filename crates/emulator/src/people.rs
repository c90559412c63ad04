//! People v1: per-user contacts, contact groups, batch mutations and sync tokens.
//! (To be implemented.)

use std::sync::Arc;

use axum::Router;

use crate::state::Emulator;

#[derive(Default)]
pub struct PeopleState {}

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
}
