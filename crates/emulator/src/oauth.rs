//! OAuth 2.0: the token endpoint (`POST /token`: JWT-bearer, authorization_code with
//! PKCE, refresh_token), service-account keys and delegation, the authorization
//! endpoint and revocation. (To be implemented.)

use std::sync::Arc;

use axum::Router;
use serde::{Deserialize, Serialize};

use crate::state::Emulator;

#[derive(Default, Serialize, Deserialize)]
pub struct OAuthState {}

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
}
