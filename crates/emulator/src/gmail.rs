//! Gmail v1: messages.send (raw and upload), drafts, messages.list/get. (To be implemented.)

use std::sync::Arc;

use axum::Router;
use serde::{Deserialize, Serialize};

use crate::state::Emulator;

#[derive(Default, Serialize, Deserialize)]
pub struct GmailState {}

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
}
