//! Calendar v3: events.list/insert with recurrence expansion. (To be implemented.)

use std::sync::Arc;

use axum::Router;
use serde::{Deserialize, Serialize};

use crate::state::Emulator;

#[derive(Default, Serialize, Deserialize)]
pub struct CalendarState {}

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
}
