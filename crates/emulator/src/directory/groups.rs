//! Groups and members. (In progress.)

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::{Api, ApiError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupRec {
    pub group: orgsync_wire::directory::Group,
}

pub async fn list() -> Result<StatusCode, ApiError> {
    Err(ApiError::not_found(Api::Directory, "Not implemented"))
}
pub async fn get() -> Result<StatusCode, ApiError> {
    Err(ApiError::not_found(Api::Directory, "Not implemented"))
}
pub async fn insert() -> Result<StatusCode, ApiError> {
    Err(ApiError::not_found(Api::Directory, "Not implemented"))
}
pub async fn members_list() -> Result<StatusCode, ApiError> {
    Err(ApiError::not_found(Api::Directory, "Not implemented"))
}
pub async fn members_insert() -> Result<StatusCode, ApiError> {
    Err(ApiError::not_found(Api::Directory, "Not implemented"))
}
pub async fn has_member() -> Result<StatusCode, ApiError> {
    Err(ApiError::not_found(Api::Directory, "Not implemented"))
}

pub(crate) fn generate_groups(
    _state: &mut super::DirectoryState,
    _units: &[usize],
    _managers: &[Option<String>],
) {
}
