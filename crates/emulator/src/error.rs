//! Errors answered in Google's envelopes: the legacy `errors[]` shape for Directory,
//! Gmail and Calendar, `google.rpc.Status` for People
//! (<https://cloud.google.com/apis/design/errors>), and the OAuth
//! `{"error","error_description"}` shape for the token endpoint.
//!
//! Handlers return `Result<_, ApiError>`; the [`Api`] decides the shape. Bad input must
//! always map to a 4xx in the right shape, never a 500 or a panic.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orgsync_wire::error::{ErrorEnvelope, rpc_status_for};
use orgsync_wire::oauth::TokenError;

/// Which API answers, hence which envelope shape.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    Directory,
    People,
    Gmail,
    Calendar,
    OAuth,
    Control,
}

impl Api {
    /// Classify a request path (after any `/upload` prefix) into its API.
    pub fn from_path(path: &str) -> Api {
        let p = path.strip_prefix("/upload").unwrap_or(path);
        let p = p.strip_prefix("/resumable").unwrap_or(p);
        if p.starts_with("/admin/") {
            Api::Directory
        } else if p.starts_with("/v1/") {
            Api::People
        } else if p.starts_with("/gmail/") {
            Api::Gmail
        } else if p.starts_with("/calendar/")
            || p.starts_with("/calendars/")
            || p.starts_with("/users/me/calendarList")
        {
            Api::Calendar
        } else if p.starts_with("/emulator/") {
            Api::Control
        } else {
            Api::OAuth
        }
    }
}

/// An error to answer with.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub api: Api,
    pub status: StatusCode,
    /// Legacy `errors[].reason` (Directory/Gmail/Calendar) or `ErrorInfo.reason` (People).
    pub reason: Option<String>,
    pub message: String,
    /// People only: the `google.rpc.Code` name; defaults from the HTTP status.
    pub rpc_status: Option<&'static str>,
    /// Seconds, for 429s.
    pub retry_after: Option<u64>,
    /// Legacy shape only: `locationType`/`location` (e.g. parameter `userKey`).
    pub location: Option<(String, String)>,
}

impl ApiError {
    pub fn new(api: Api, status: StatusCode, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            api,
            status,
            reason: (!reason.is_empty()).then(|| reason.to_string()),
            message: message.into(),
            rpc_status: None,
            retry_after: None,
            location: None,
        }
    }

    pub fn bad_request(api: Api, message: impl Into<String>) -> Self {
        let reason = if api == Api::People { "" } else { "invalid" };
        Self::new(api, StatusCode::BAD_REQUEST, reason, message)
    }

    pub fn required(api: Api, what: &str) -> Self {
        Self::new(
            api,
            StatusCode::BAD_REQUEST,
            "required",
            format!("Required: {what}"),
        )
    }

    pub fn not_found(api: Api, message: impl Into<String>) -> Self {
        let reason = if api == Api::People { "" } else { "notFound" };
        Self::new(api, StatusCode::NOT_FOUND, reason, message)
    }

    pub fn forbidden(api: Api, message: impl Into<String>) -> Self {
        let reason = if api == Api::People { "" } else { "forbidden" };
        Self::new(api, StatusCode::FORBIDDEN, reason, message)
    }

    pub fn unauthenticated(api: Api) -> Self {
        let (reason, message) = if api == Api::People {
            (
                "",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            )
        } else {
            ("authError", "Invalid Credentials")
        };
        let mut e = Self::new(api, StatusCode::UNAUTHORIZED, reason, message);
        e.location = (api != Api::People).then(|| ("header".into(), "Authorization".into()));
        e
    }

    pub fn insufficient_scopes(api: Api) -> Self {
        if api == Api::People {
            Self::new(
                api,
                StatusCode::FORBIDDEN,
                "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "Request had insufficient authentication scopes.",
            )
        } else {
            Self::new(
                api,
                StatusCode::FORBIDDEN,
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
            )
        }
    }

    pub fn rate_limited(api: Api, retry_after: u64, message: impl Into<String>) -> Self {
        let reason = match api {
            Api::People => "RATE_LIMIT_EXCEEDED",
            _ => "rateLimitExceeded",
        };
        let mut e = Self::new(api, StatusCode::TOO_MANY_REQUESTS, reason, message);
        e.retry_after = Some(retry_after);
        e
    }

    pub fn backend_error(api: Api) -> Self {
        if api == Api::People {
            Self::new(
                api,
                StatusCode::SERVICE_UNAVAILABLE,
                "",
                "The service is currently unavailable.",
            )
        } else {
            Self::new(
                api,
                StatusCode::SERVICE_UNAVAILABLE,
                "backendError",
                "Service unavailable. Please try again",
            )
        }
    }

    pub fn with_rpc_status(mut self, status: &'static str) -> Self {
        self.rpc_status = Some(status);
        self
    }

    pub fn with_location(mut self, location_type: &str, location: &str) -> Self {
        self.location = Some((location_type.into(), location.into()));
        self
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        let code = self.status.as_u16();
        match self.api {
            Api::People => ErrorEnvelope::rpc(
                code,
                self.rpc_status.unwrap_or_else(|| rpc_status_for(code)),
                self.reason.as_deref(),
                self.message.clone(),
            ),
            _ => {
                let mut env = ErrorEnvelope::legacy(
                    code,
                    self.reason.as_deref().unwrap_or("invalid"),
                    self.message.clone(),
                );
                if let Some((t, l)) = &self.location {
                    env.error.errors[0].location_type = Some(t.clone());
                    env.error.errors[0].location = Some(l.clone());
                }
                env
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.envelope())).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\""),
            );
        }
        resp
    }
}

/// A token-endpoint error: `{"error","error_description"}`.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub body: TokenError,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &str, description: &str) -> Self {
        OAuthError {
            status,
            body: TokenError::new(error, description),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// JSON body extractor that answers malformed or mistyped JSON with a 400 in the
/// caller's API shape instead of axum's plain-text 4xx.
pub mod json {
    use axum::extract::{FromRequest, Request};
    use serde::de::DeserializeOwned;

    use super::{Api, ApiError};

    pub struct GJson<T>(pub T);

    impl<S, T> FromRequest<S> for GJson<T>
    where
        S: Send + Sync,
        T: DeserializeOwned,
    {
        type Rejection = ApiError;

        async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
            let api = Api::from_path(req.uri().path());
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_request(api, format!("Could not read body: {e}")))?;
            let body: &[u8] = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                b"{}"
            } else {
                &bytes
            };
            serde_json::from_slice(body).map(GJson).map_err(|e| {
                ApiError::bad_request(api, format!("Invalid JSON payload received. {e}"))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        assert_eq!(Api::from_path("/admin/directory/v1/users"), Api::Directory);
        assert_eq!(
            Api::from_path("/admin/directory_v1/channels/stop"),
            Api::Directory
        );
        assert_eq!(Api::from_path("/v1/people/me/connections"), Api::People);
        assert_eq!(
            Api::from_path("/upload/gmail/v1/users/me/messages/send"),
            Api::Gmail
        );
        assert_eq!(
            Api::from_path("/calendar/v3/calendars/primary/events"),
            Api::Calendar
        );
        assert_eq!(Api::from_path("/calendars/primary/events"), Api::Calendar);
        assert_eq!(Api::from_path("/token"), Api::OAuth);
    }

    #[test]
    fn people_errors_use_rpc_shape_and_others_legacy() {
        let e = ApiError::not_found(Api::People, "Requested entity was not found.").envelope();
        assert_eq!(e.error.status.as_deref(), Some("NOT_FOUND"));
        assert!(e.error.errors.is_empty());
        let e = ApiError::not_found(Api::Directory, "Resource Not Found: userKey").envelope();
        assert!(e.has_reason("notFound"));
        assert!(e.error.status.is_none());
    }
}
