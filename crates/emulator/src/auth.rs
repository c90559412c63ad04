//! Bearer tokens the emulator issued, and the [`Caller`] extractor every API handler
//! takes: it checks `Authorization: Bearer …` (401 when missing, unknown or expired) and
//! carries the subject and scopes so handlers can answer 403 for missing scopes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

use crate::error::{Api, ApiError};
use crate::state::Emulator;

/// An access token the emulator issued.
#[derive(Clone, Serialize, Deserialize)]
pub struct IssuedToken {
    /// The impersonated (or logged-in) user's primary email; None for a plain service
    /// account without delegation.
    pub subject: Option<String>,
    /// The OAuth client (service account `client_id` or desktop client id).
    pub client_id: String,
    pub scopes: Vec<String>,
    /// Unix milliseconds (emulator clock).
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("subject", &self.subject)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// Access tokens by value. Expired tokens are pruned as new ones are issued.
#[derive(Default, Serialize, Deserialize)]
pub struct TokenRegistry {
    tokens: HashMap<String, IssuedToken>,
}

impl TokenRegistry {
    /// Issue a new opaque access token (`ya29.` prefix like Google's).
    pub fn issue(&mut self, token: IssuedToken, now_ms: i64) -> String {
        if self.tokens.len() > 10_000 {
            self.tokens.retain(|_, t| t.expires_at_ms > now_ms);
        }
        let value: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(64)
            .map(char::from)
            .collect();
        let value = format!("ya29.{value}");
        self.tokens.insert(value.clone(), token);
        value
    }

    pub fn lookup(&self, token: &str) -> Option<&IssuedToken> {
        self.tokens.get(token)
    }

    pub fn revoke(&mut self, token: &str) -> bool {
        self.tokens.remove(token).is_some()
    }

    /// Revoke every token of this client for this subject (logout / refresh-token revoke).
    pub fn revoke_for(&mut self, client_id: &str, subject: Option<&str>) {
        self.tokens
            .retain(|_, t| !(t.client_id == client_id && t.subject.as_deref() == subject));
    }
}

/// The authenticated caller of an API method.
#[derive(Debug, Clone)]
pub struct Caller {
    pub api: Api,
    pub subject: Option<String>,
    pub client_id: String,
    pub scopes: Vec<String>,
}

impl Caller {
    /// 403 unless the token carries at least one of `scopes`.
    pub fn require_any_scope(&self, scopes: &[&str]) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| scopes.contains(&s.as_str())) {
            Ok(())
        } else {
            Err(ApiError::insufficient_scopes(self.api))
        }
    }

    /// The user `me` resolves to.
    pub fn me(&self) -> Result<&str, ApiError> {
        self.subject.as_deref().ok_or_else(|| {
            ApiError::new(
                self.api,
                axum::http::StatusCode::BAD_REQUEST,
                "failedPrecondition",
                "Precondition check failed: the credential has no user (use domain-wide delegation with a subject).",
            )
        })
    }
}

impl FromRequestParts<Arc<Emulator>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        emu: &Arc<Emulator>,
    ) -> Result<Self, Self::Rejection> {
        let api = Api::from_path(parts.uri.path());
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let token = match header {
            Some(h) if h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ") => h[7..].trim(),
            // google-api-python-client also accepts `access_token=` in the query.
            _ => match crate::query::Params::parse(api, parts.uri.query()).get("access_token") {
                Some(t) => return lookup(emu, api, t),
                None => return Err(ApiError::unauthenticated(api)),
            },
        };
        lookup(emu, api, token)
    }
}

fn lookup(emu: &Emulator, api: Api, token: &str) -> Result<Caller, ApiError> {
    let registry = emu.tokens.read();
    let issued = registry
        .lookup(token)
        .ok_or_else(|| ApiError::unauthenticated(api))?;
    if issued.expires_at_ms <= emu.clock.now_ms() {
        return Err(ApiError::unauthenticated(api));
    }
    Ok(Caller {
        api,
        subject: issued.subject.clone(),
        client_id: issued.client_id.clone(),
        scopes: issued.scopes.clone(),
    })
}
