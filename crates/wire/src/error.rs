//! Google's error envelopes.
//!
//! Two shapes exist: the legacy one with `errors[]{domain, reason}` (Directory, Gmail,
//! Calendar; <https://developers.google.com/workspace/admin/directory/v1/guides/troubleshoot-error-codes>)
//! and `google.rpc.Status` with `status` and `details[]{@type, reason, domain}` (People;
//! <https://cloud.google.com/apis/design/errors>). One struct reads both; constructors
//! build each shape so the emulator answers per API exactly as Google does.

use serde::{Deserialize, Serialize};

/// `{"error": {...}}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: u16,
    #[serde(default)]
    pub message: String,
    /// Legacy shape only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<LegacyError>,
    /// `google.rpc.Status` shape only, e.g. `INVALID_ARGUMENT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `google.rpc.Status` shape only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(rename = "@type", default)]
    pub type_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

pub const ERROR_INFO_TYPE: &str = "type.googleapis.com/google.rpc.ErrorInfo";

/// The canonical `google.rpc.Code` name for an HTTP status, as People reports it.
pub fn rpc_status_for(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        412 => "FAILED_PRECONDITION",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

impl ErrorEnvelope {
    /// Legacy shape: `{"error":{"code","message","errors":[{"message","domain","reason"}]}}`.
    pub fn legacy(code: u16, reason: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ErrorEnvelope {
            error: ErrorBody {
                code,
                message: message.clone(),
                errors: vec![LegacyError {
                    message,
                    domain: "global".into(),
                    reason: reason.into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        }
    }

    /// `google.rpc.Status` shape, with an `ErrorInfo` detail when `reason` is given.
    pub fn rpc(code: u16, status: &str, reason: Option<&str>, message: impl Into<String>) -> Self {
        ErrorEnvelope {
            error: ErrorBody {
                code,
                message: message.into(),
                status: Some(status.into()),
                details: reason
                    .map(|r| {
                        vec![ErrorDetail {
                            type_url: ERROR_INFO_TYPE.into(),
                            reason: Some(r.into()),
                            domain: Some("people.googleapis.com".into()),
                            metadata: None,
                        }]
                    })
                    .unwrap_or_default(),
                ..Default::default()
            },
        }
    }

    /// Every reason the body carries, from either shape.
    pub fn reasons(&self) -> impl Iterator<Item = &str> {
        self.error.errors.iter().map(|e| e.reason.as_str()).chain(
            self.error
                .details
                .iter()
                .filter_map(|d| d.reason.as_deref()),
        )
    }

    pub fn has_reason(&self, reason: &str) -> bool {
        self.reasons().any(|r| r == reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_legacy_directory_error() {
        let body = r#"{"error":{"code":503,"message":"Service unavailable. Please try again",
          "errors":[{"message":"Service unavailable. Please try again","domain":"global","reason":"backendError"}]}}"#;
        let e: ErrorEnvelope = serde_json::from_str(body).unwrap();
        assert_eq!(e.error.code, 503);
        assert!(e.has_reason("backendError"));
        assert_eq!(
            e,
            ErrorEnvelope::legacy(503, "backendError", "Service unavailable. Please try again")
        );
    }

    #[test]
    fn reads_people_rpc_status_error() {
        let body = r#"{"error":{"code":400,
          "message":"Sync token is expired. Clear local cache and retry call without the sync token.",
          "status":"INVALID_ARGUMENT",
          "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo",
                      "reason":"EXPIRED_SYNC_TOKEN","domain":"people.googleapis.com"}]}}"#;
        let e: ErrorEnvelope = serde_json::from_str(body).unwrap();
        assert!(e.has_reason("EXPIRED_SYNC_TOKEN"));
        assert_eq!(e.error.status.as_deref(), Some("INVALID_ARGUMENT"));
        let built = ErrorEnvelope::rpc(
            400,
            "INVALID_ARGUMENT",
            Some("EXPIRED_SYNC_TOKEN"),
            "Sync token is expired. Clear local cache and retry call without the sync token.",
        );
        assert_eq!(e, built);
    }
}
