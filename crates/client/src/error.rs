//! Errors: Google's two envelopes (legacy `errors[].reason` and `google.rpc.Status`
//! with `details[].reason`) classified into what a caller does next ([`ErrorKind`]).
//! Rate limits and 5xx are retried with exponential backoff, as Google asks
//! (<https://developers.google.com/workspace/admin/directory/v1/limits>).

use std::time::Duration;

use orgsync_wire::error::ErrorEnvelope;
use serde::Serialize;

use crate::credentials::AuthError;
use crate::transport::Api;

/// What the caller should do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// 429, 5xx, rate-limit 403s, network trouble: retried already; try again later.
    Retryable,
    /// People 400 `EXPIRED_SYNC_TOKEN`, Calendar 410: drop the sync token, full sync.
    SyncTokenExpired,
    /// Stale etag (`failedPrecondition`): re-read, merge, write again.
    PreconditionFailed,
    NotFound,
    /// 409: e.g. a contact group name that exists, a user that exists.
    Conflict,
    /// 401 after one token refresh, 403 permission: fix credentials or delegation.
    Auth,
    /// A non-idempotent call failed after its request was sent: it may or may not have
    /// happened. Check (re-list) before repeating it.
    OutcomeUnknown,
    /// Any other 4xx: the request is wrong.
    Permanent,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Retryable => "retryable",
            ErrorKind::SyncTokenExpired => "sync_token_expired",
            ErrorKind::PreconditionFailed => "precondition_failed",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Auth => "auth",
            ErrorKind::OutcomeUnknown => "outcome_unknown",
            ErrorKind::Permanent => "permanent",
        }
    }
}

/// A failed API call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{method}: {kind:?} (HTTP {status}{reason_shown}): {message}",
    status = status.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
    reason_shown = reason.as_deref().map(|r| format!(", {r}")).unwrap_or_default())]
pub struct ApiError {
    /// Discovery method id, e.g. `people.batchCreateContacts`.
    pub method: &'static str,
    pub kind: ErrorKind,
    /// None when no response arrived (network error, timeout).
    pub status: Option<u16>,
    /// First `errors[].reason` / `details[].reason`, else People's `status`.
    pub reason: Option<String>,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// Attempts made, including the last.
    pub attempts: u32,
}

impl ApiError {
    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind == kind
    }

    /// Google's 403 for an API that is not enabled in the Cloud project the credentials
    /// belong to (`accessNotConfigured` / `SERVICE_DISABLED`); the message carries the
    /// console link that enables it.
    pub fn is_api_disabled(&self) -> bool {
        self.status == Some(403)
            && self.reason.as_deref().is_some_and(|r| {
                API_DISABLED_REASONS
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(r))
            })
    }
}

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{method}: cannot read Google's answer: {message}")]
    Decode {
        method: &'static str,
        message: String,
    },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// The classification; token-endpoint failures are `Auth` unless transient.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Api(e) => e.kind,
            Error::Auth(e) if e.is_retryable() => ErrorKind::Retryable,
            Error::Auth(_) => ErrorKind::Auth,
            Error::Decode { .. } | Error::InvalidArgument(_) => ErrorKind::Permanent,
        }
    }

    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind() == kind
    }

    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }
}

/// Reasons that mean "slow down" on a 403 (Directory, Gmail, Calendar).
const RATE_REASONS: [&str; 5] = [
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "quotaExceeded",
    "dailyLimitExceeded",
    "RATE_LIMIT_EXCEEDED",
];

/// Reasons of Google's 403 for an API that is not enabled in the caller's Cloud project
/// (legacy `errors[].reason`, and `google.rpc.ErrorInfo.reason`).
const API_DISABLED_REASONS: [&str; 2] = ["accessNotConfigured", "SERVICE_DISABLED"];

/// Classify an HTTP error answer.
pub(crate) fn classify(
    api: Api,
    method: &'static str,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> ApiError {
    let envelope: Option<ErrorEnvelope> = serde_json::from_slice(body).ok();
    let reasons: Vec<&str> = envelope.iter().flat_map(|e| e.reasons()).collect();
    let rpc_status = envelope.as_ref().and_then(|e| e.error.status.as_deref());
    let domains: Vec<&str> = envelope
        .iter()
        .flat_map(|e| e.error.errors.iter().map(|l| l.domain.as_str()))
        .collect();
    let message = match &envelope {
        Some(e) if !e.error.message.is_empty() => e.error.message.clone(),
        _ => String::from_utf8_lossy(body).chars().take(300).collect(),
    };
    let has = |r: &str| reasons.iter().any(|x| x.eq_ignore_ascii_case(r));
    let lower = message.to_ascii_lowercase();
    let kind = match status {
        429 | 500 | 502 | 503 | 504 => ErrorKind::Retryable,
        // An API not enabled in the Cloud project comes in the `usageLimits` domain like a
        // rate limit, but waiting never helps: an admin must enable it.
        403 if API_DISABLED_REASONS.iter().any(|r| has(r)) => ErrorKind::Auth,
        403 if RATE_REASONS.iter().any(|r| has(r))
            || domains.contains(&"usageLimits")
            || rpc_status == Some("RESOURCE_EXHAUSTED") =>
        {
            ErrorKind::Retryable
        }
        400 | 412
            if has("EXPIRED_SYNC_TOKEN")
                || (api == Api::People && lower.contains("sync token is expired")) =>
        {
            ErrorKind::SyncTokenExpired
        }
        410 if api == Api::Calendar || has("fullSyncRequired") => ErrorKind::SyncTokenExpired,
        400 | 412
            if has("failedPrecondition")
                || has("conditionNotMet")
                || rpc_status == Some("FAILED_PRECONDITION")
                || status == 412 =>
        {
            ErrorKind::PreconditionFailed
        }
        // People answers a concurrent mutation of one user with 409 ABORTED: nothing
        // happened, try again.
        409 if rpc_status == Some("ABORTED") => ErrorKind::Retryable,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        401 | 403 => ErrorKind::Auth,
        _ => ErrorKind::Permanent,
    };
    let reason = reasons
        .first()
        .map(|r| r.to_string())
        .or_else(|| rpc_status.map(str::to_string));
    ApiError {
        method,
        kind,
        status: Some(status),
        reason,
        message,
        retry_after,
        attempts: 1,
    }
}

/// The quota a 429 names in its `ErrorInfo` (`quota_metric`, `quota_limit`,
/// `quota_limit_value`), as Google's quota system sends it.
pub(crate) fn quota_named(body: &[u8]) -> Option<(String, String, u64)> {
    let envelope: ErrorEnvelope = serde_json::from_slice(body).ok()?;
    envelope.error.details.iter().find_map(|d| {
        let m = d.metadata.as_ref()?;
        let text = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let value = m.get("quota_limit_value").and_then(|v| match v {
            serde_json::Value::String(s) => s.parse().ok(),
            other => other.as_u64(),
        })?;
        Some((text("quota_metric")?, text("quota_limit")?, value))
    })
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    // HTTP-date: rare from Google; treat any parseable date relative to now.
    let when = httpdate_parse(v)?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn httpdate_parse(v: &str) -> Option<std::time::SystemTime> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = (y - era * 400) as u64;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe as i64 - 719468;
    let secs = days * 86400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    (secs >= 0).then(|| std::time::UNIX_EPOCH + Duration::from_secs(secs as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(api: Api, status: u16, body: &str) -> ErrorKind {
        classify(api, "m", status, body.as_bytes(), None).kind
    }

    /// A disabled API is a 403 in the `usageLimits` domain, as a rate limit is: it used to be
    /// retried for the whole retry budget and then reported as an outage (exit 1).
    #[test]
    fn a_disabled_api_is_an_auth_failure_not_a_rate_limit() {
        let legacy = r#"{"error":{"code":403,"message":"People API has not been used in project 1 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/people.googleapis.com/overview?project=1 then retry.","errors":[{"message":"x","domain":"usageLimits","reason":"accessNotConfigured","extendedHelp":"https://console.developers.google.com"}],"status":"PERMISSION_DENIED"}}"#;
        let rpc = r#"{"error":{"code":403,"message":"Gmail API has not been used","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SERVICE_DISABLED","domain":"googleapis.com","metadata":{"service":"gmail.googleapis.com"}}]}}"#;
        for (api, body) in [
            (Api::People, legacy),
            (Api::Gmail, rpc),
            (Api::Calendar, legacy),
        ] {
            let e = classify(api, "m", 403, body.as_bytes(), None);
            assert_eq!(e.kind, ErrorKind::Auth, "{body}");
            assert!(e.is_api_disabled(), "{body}");
        }
        let e = classify(Api::People, "m", 403, legacy.as_bytes(), None);
        assert!(
            e.message
                .contains("console.developers.google.com/apis/api/people")
        );
        let rate = r#"{"error":{"code":403,"message":"Rate Limit Exceeded","errors":[{"domain":"usageLimits","reason":"rateLimitExceeded","message":"x"}]}}"#;
        assert!(!classify(Api::Calendar, "m", 403, rate.as_bytes(), None).is_api_disabled());
    }

    #[test]
    fn classifies_per_reference_table() {
        let legacy = |code: u16, reason: &str| {
            serde_json::to_string(&ErrorEnvelope::legacy(code, reason, "x")).unwrap()
        };
        assert_eq!(kind(Api::Directory, 429, "{}"), ErrorKind::Retryable);
        for s in [500, 502, 503, 504] {
            assert_eq!(
                kind(Api::Directory, s, &legacy(s, "backendError")),
                ErrorKind::Retryable
            );
        }
        assert_eq!(
            kind(Api::Directory, 403, &legacy(403, "userRateLimitExceeded")),
            ErrorKind::Retryable
        );
        assert_eq!(
            kind(Api::Gmail, 403, &legacy(403, "quotaExceeded")),
            ErrorKind::Retryable
        );
        let usage = r#"{"error":{"code":403,"message":"Rate Limit Exceeded","errors":[{"domain":"usageLimits","reason":"rateLimitExceeded","message":"x"}]}}"#;
        assert_eq!(kind(Api::Calendar, 403, usage), ErrorKind::Retryable);
        assert_eq!(
            kind(Api::Directory, 403, &legacy(403, "forbidden")),
            ErrorKind::Auth
        );
        assert_eq!(
            kind(Api::Directory, 401, &legacy(401, "authError")),
            ErrorKind::Auth
        );
        let expired = serde_json::to_string(&ErrorEnvelope::rpc(
            400,
            "INVALID_ARGUMENT",
            Some("EXPIRED_SYNC_TOKEN"),
            "Sync token is expired.",
        ))
        .unwrap();
        assert_eq!(
            kind(Api::People, 400, &expired),
            ErrorKind::SyncTokenExpired
        );
        assert_eq!(
            kind(Api::Calendar, 410, &legacy(410, "fullSyncRequired")),
            ErrorKind::SyncTokenExpired
        );
        let stale = serde_json::to_string(&ErrorEnvelope::rpc(
            400,
            "FAILED_PRECONDITION",
            None,
            "Request person.etag is different than the current person.etag.",
        ))
        .unwrap();
        assert_eq!(
            kind(Api::People, 400, &stale),
            ErrorKind::PreconditionFailed
        );
        assert_eq!(
            kind(Api::Directory, 412, &legacy(412, "conditionNotMet")),
            ErrorKind::PreconditionFailed
        );
        assert_eq!(kind(Api::People, 404, "{}"), ErrorKind::NotFound);
        assert_eq!(kind(Api::People, 409, "{}"), ErrorKind::Conflict);
        let aborted =
            r#"{"error":{"code":409,"message":"The operation was aborted.","status":"ABORTED"}}"#;
        assert_eq!(kind(Api::People, 409, aborted), ErrorKind::Retryable);
        assert_eq!(
            kind(Api::Directory, 400, &legacy(400, "invalid")),
            ErrorKind::Permanent
        );
        assert_eq!(
            kind(Api::People, 400, "<html>bad</html>"),
            ErrorKind::Permanent
        );
    }

    #[test]
    fn reason_and_message_come_from_either_envelope() {
        let e = classify(
            Api::Directory,
            "directory.users.get",
            404,
            serde_json::to_string(&ErrorEnvelope::legacy(
                404,
                "notFound",
                "Resource Not Found: userKey",
            ))
            .unwrap()
            .as_bytes(),
            None,
        );
        assert_eq!(e.reason.as_deref(), Some("notFound"));
        assert_eq!(e.message, "Resource Not Found: userKey");
        assert!(e.to_string().contains("directory.users.get"));
        let p = classify(
            Api::People,
            "people.get",
            400,
            br#"{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}"#,
            None,
        );
        assert_eq!(p.reason.as_deref(), Some("INVALID_ARGUMENT"));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert!(parse_retry_after("soon").is_none());
        let t = httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
            784111777
        );
    }
}
