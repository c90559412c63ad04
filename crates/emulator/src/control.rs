//! The control API under `/emulator/v1/`: stats, faults, reset, clock. (To be implemented.)

use std::sync::Arc;

use axum::Router;

use crate::state::Emulator;

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
}
