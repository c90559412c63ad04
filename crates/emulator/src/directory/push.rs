//! `users.watch`, `channels.stop` and push delivery. (In progress.)

use std::sync::Arc;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::{Api, ApiError};
use crate::state::Emulator;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelRec {}

pub async fn watch() -> Result<StatusCode, ApiError> {
    Err(ApiError::not_found(Api::Directory, "Not implemented"))
}

pub async fn stop() -> Result<StatusCode, ApiError> {
    Err(ApiError::not_found(Api::Directory, "Not implemented"))
}

pub fn notify(_emu: &Arc<Emulator>, _event: &str, _user_id: &str) {}
