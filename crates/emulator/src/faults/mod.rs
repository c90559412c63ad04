//! Fault injection, quotas and accounting around every API call.
//!
//! orgsync has to survive what Google does under load: latency, 503 `backendError`, 500s,
//! dropped connections, and per-user per-minute quotas answered with 429 and
//! `Retry-After`. This middleware produces all of them on demand (settable at run time
//! through `PUT /emulator/v1/faults`, optionally per method) and counts every call by
//! discovery method id and by subject, so tests and the demo can assert *how many* calls
//! a sync cost (`GET /emulator/v1/stats`).
//!
//! Two quota models: the flat `quota_per_user_per_minute` counts calls in fixed minutes
//! and answers with `Retry-After`; a quota profile ([`quota`]) charges each method its
//! cost per quota metric over sliding windows, as Google does.
//!
//! An injected error is answered *before* the handler runs: like most of Google's 503s,
//! nothing happened. A "connection reset" sends nothing at all: the request's connection
//! is closed without a response (hyper aborts the connection when the response body
//! fails before its head is written), so clients see an incomplete message / connection
//! closed error, exactly what a retry layer has to handle for a real reset.

mod methods;
pub mod quota;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header::AUTHORIZATION};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::EmulatorConfig;
use crate::error::{Api, ApiError};
use crate::state::Emulator;
use quota::{MetricStats, QuotaModel, QuotaProfile, QuotaState};

/// What an injected error looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// 503 `backendError` (People: `UNAVAILABLE`).
    BackendError,
    /// 500 `internalError` (People: `INTERNAL`).
    InternalError,
    /// The connection is closed with no response.
    ConnectionReset,
    /// 429 `rateLimitExceeded` with `Retry-After` (People: `RESOURCE_EXHAUSTED`).
    RateLimitExceeded,
    /// 403 `userRateLimitExceeded` (People, which has no such reason: 429).
    UserRateLimitExceeded,
}

impl ErrorKind {
    fn name(self) -> &'static str {
        match self {
            ErrorKind::BackendError => "backendError",
            ErrorKind::InternalError => "internalError",
            ErrorKind::ConnectionReset => "connectionReset",
            ErrorKind::RateLimitExceeded => "rateLimitExceeded",
            ErrorKind::UserRateLimitExceeded => "userRateLimitExceeded",
        }
    }
}

fn default_error_kinds() -> Vec<ErrorKind> {
    vec![
        ErrorKind::BackendError,
        ErrorKind::InternalError,
        ErrorKind::ConnectionReset,
    ]
}

/// Settings for the methods whose discovery id starts with `method`
/// (e.g. `people.people.batch` or `directory.users.list`). Unset fields fall back to the
/// global settings; the longest matching prefix wins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodOverride {
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kinds: Option<Vec<ErrorKind>>,
    /// A separate per-subject window for the matching methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_per_user_per_minute: Option<u32>,
}

/// The fault settings; `PUT /emulator/v1/faults` replaces them whole (absent fields take
/// these defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSettings {
    pub latency_ms: u64,
    /// 0..=1: probability that a call fails with one of `error_kinds`, chosen uniformly.
    pub error_rate: f64,
    pub error_kinds: Vec<ErrorKind>,
    /// Calls per subject per API per minute of the emulator clock (fixed windows).
    pub quota_per_user_per_minute: Option<u32>,
    pub overrides: Vec<MethodOverride>,
    /// Google's quota model (`"google"`): per-method costs by metric, limits per user
    /// and per project. `null`: off, unless `quota` sets limits.
    pub quota_profile: Option<QuotaProfile>,
    /// Limits over the profile's, keyed `METRIC.SCOPE` (e.g. `"people.write.user": 10`).
    /// Without a profile, only these limits apply.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub quota: BTreeMap<String, u64>,
    /// The length of a quota minute in seconds (a quota day is 1,440 of them).
    pub quota_minute_secs: u64,
}

impl Default for FaultSettings {
    fn default() -> Self {
        FaultSettings {
            latency_ms: 0,
            error_rate: 0.0,
            error_kinds: default_error_kinds(),
            quota_per_user_per_minute: None,
            overrides: Vec::new(),
            quota_profile: None,
            quota: BTreeMap::new(),
            quota_minute_secs: 60,
        }
    }
}

impl FaultSettings {
    pub fn from_config(config: &EmulatorConfig) -> Self {
        FaultSettings {
            latency_ms: config.latency_ms,
            error_rate: config.error_rate,
            quota_per_user_per_minute: config.quota_per_user_per_minute,
            quota_profile: config.quota_profile,
            quota: config.quota_limits.clone(),
            quota_minute_secs: config.quota_minute_secs,
            ..Default::default()
        }
    }

    /// Reject settings that make no sense (answered 400 by the control API).
    pub fn validate(&self) -> Result<(), String> {
        let rate_ok = |r: f64| (0.0..=1.0).contains(&r);
        let kinds_ok = |k: &[ErrorKind]| !k.is_empty();
        if !rate_ok(self.error_rate) {
            return Err(format!(
                "error_rate must be within 0..=1, got {}",
                self.error_rate
            ));
        }
        if self.latency_ms > 120_000 {
            return Err("latency_ms must be at most 120000".into());
        }
        if !kinds_ok(&self.error_kinds) {
            return Err("error_kinds must not be empty".into());
        }
        if self.quota_per_user_per_minute == Some(0) {
            return Err("quota_per_user_per_minute must be at least 1 (or null)".into());
        }
        if !(1..=86_400).contains(&self.quota_minute_secs) {
            return Err(format!(
                "quota_minute_secs must be between 1 and 86400, got {}",
                self.quota_minute_secs
            ));
        }
        self.quota_model()?;
        for o in &self.overrides {
            if o.method.is_empty() {
                return Err("overrides[].method must not be empty".into());
            }
            if o.error_rate.is_some_and(|r| !rate_ok(r)) {
                return Err(format!(
                    "overrides[{}].error_rate must be within 0..=1",
                    o.method
                ));
            }
            if o.latency_ms.is_some_and(|l| l > 120_000) {
                return Err(format!(
                    "overrides[{}].latency_ms must be at most 120000",
                    o.method
                ));
            }
            if o.error_kinds.as_deref().is_some_and(|k| !kinds_ok(k)) {
                return Err(format!(
                    "overrides[{}].error_kinds must not be empty",
                    o.method
                ));
            }
            if o.quota_per_user_per_minute == Some(0) {
                return Err(format!(
                    "overrides[{}].quota_per_user_per_minute must be at least 1",
                    o.method
                ));
            }
        }
        Ok(())
    }

    /// The quota model these settings select; `None` when it is off.
    pub fn quota_model(&self) -> Result<Option<QuotaModel>, String> {
        Ok(
            quota::Limits::resolve(self.quota_profile, &self.quota)?.map(|limits| QuotaModel {
                limits,
                minute_ms: self.quota_minute_secs.max(1) as i64 * 1000,
            }),
        )
    }

    /// The settings in force for one method.
    fn effective(&self, method: &str, api: Api) -> Effective {
        let o = self
            .overrides
            .iter()
            .filter(|o| method.starts_with(o.method.as_str()))
            .max_by_key(|o| o.method.len());
        let (quota, window) =
            match o.and_then(|o| o.quota_per_user_per_minute.map(|q| (q, &o.method))) {
                Some((q, prefix)) => (Some(q), format!("override:{prefix}")),
                None => (self.quota_per_user_per_minute, format!("{api:?}")),
            };
        Effective {
            latency_ms: o.and_then(|o| o.latency_ms).unwrap_or(self.latency_ms),
            error_rate: o.and_then(|o| o.error_rate).unwrap_or(self.error_rate),
            error_kinds: o
                .and_then(|o| o.error_kinds.clone())
                .unwrap_or_else(|| self.error_kinds.clone()),
            quota,
            window,
        }
    }
}

struct Effective {
    latency_ms: u64,
    error_rate: f64,
    error_kinds: Vec<ErrorKind>,
    quota: Option<u32>,
    window: String,
}

/// Counters behind `GET /emulator/v1/stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub total_calls: u64,
    pub calls_by_method: BTreeMap<String, u64>,
    pub calls_by_subject: BTreeMap<String, u64>,
    pub calls_by_api: BTreeMap<String, u64>,
    /// HTTP status → count, for every API response (injected ones included).
    pub responses_by_status: BTreeMap<String, u64>,
    /// Injected errors by kind (`backendError`, `internalError`, `connectionReset`,
    /// `rateLimitExceeded`, `userRateLimitExceeded`, `quotaExceeded`).
    pub errors_injected: BTreeMap<String, u64>,
    /// Every 429 answered, whether injected, from the quota, or from a handler.
    pub rate_limited: u64,
    pub bytes_out: u64,
    /// Token endpoint grants: `jwt-bearer`, `authorization_code`, `refresh_token` → ok/error counts.
    pub token_grants: BTreeMap<String, GrantCounts>,
    /// The quota model's counters per metric id (`people.write`, …): units charged,
    /// calls refused, the largest per-user use in one window and in total, and the
    /// limits in force. Empty while no quota profile or limit is set.
    pub quota: BTreeMap<String, MetricStats>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GrantCounts {
    pub ok: u64,
    pub error: u64,
}

/// One fixed per-minute window of one subject.
#[derive(Debug, Clone, Copy)]
struct Window {
    minute: i64,
    used: u32,
}

/// Fault settings, counters and quota windows. All behind short-held locks.
pub struct Faults {
    settings: RwLock<FaultSettings>,
    stats: Mutex<Stats>,
    /// Bytes of streamed bodies, counted as they go out.
    streamed_bytes: Arc<AtomicU64>,
    windows: Mutex<HashMap<(String, String), Window>>,
    /// The quota model in force (from the settings) and its usage.
    quota_model: RwLock<Option<Arc<QuotaModel>>>,
    quota: Mutex<QuotaState>,
    /// APIs switched off in the emulated Cloud project (`PUT /emulator/v1/apis`): calls
    /// with a valid token get Google's 403 `accessNotConfigured`.
    disabled_apis: RwLock<BTreeSet<Api>>,
}

impl Faults {
    pub fn new(config: &EmulatorConfig) -> Self {
        let settings = FaultSettings::from_config(config);
        // The CLI validates these; a bad value from a hand-built config turns the model off.
        let model = settings.quota_model().unwrap_or_else(|e| {
            tracing::warn!("quota model off: {e}");
            None
        });
        Faults {
            quota_model: RwLock::new(model.map(Arc::new)),
            quota: Mutex::new(QuotaState::default()),
            settings: RwLock::new(settings),
            stats: Mutex::new(Stats::default()),
            streamed_bytes: Arc::new(AtomicU64::new(0)),
            windows: Mutex::new(HashMap::new()),
            disabled_apis: RwLock::new(BTreeSet::new()),
        }
    }

    /// The APIs switched off in the emulated project.
    pub fn disabled_apis(&self) -> BTreeSet<Api> {
        self.disabled_apis.read().clone()
    }

    /// Switch APIs off (and every other one on) in the emulated project.
    pub fn set_disabled_apis(&self, apis: BTreeSet<Api>) {
        *self.disabled_apis.write() = apis;
    }

    pub fn settings(&self) -> FaultSettings {
        self.settings.read().clone()
    }

    /// Replace the settings (validated). Quota windows restart.
    pub fn set(&self, settings: FaultSettings) -> Result<FaultSettings, String> {
        settings.validate()?;
        let model = settings.quota_model()?.map(Arc::new);
        *self.settings.write() = settings.clone();
        *self.quota_model.write() = model;
        self.windows.lock().clear();
        *self.quota.lock() = QuotaState::default();
        Ok(settings)
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.stats.lock().clone();
        s.bytes_out += self.streamed_bytes.load(Ordering::Relaxed);
        let model = self.quota_model.read().clone();
        s.quota = self.quota.lock().stats(model.as_deref());
        s
    }

    /// Zero the counters and quota windows (settings stay).
    pub fn reset_stats(&self) {
        *self.stats.lock() = Stats::default();
        self.streamed_bytes.store(0, Ordering::Relaxed);
        self.windows.lock().clear();
        *self.quota.lock() = QuotaState::default();
    }

    /// The quota model in force, if any.
    pub fn quota_model(&self) -> Option<Arc<QuotaModel>> {
        self.quota_model.read().clone()
    }

    /// Called by the token endpoint for each grant it answers.
    pub fn record_token_grant(&self, grant: &str, ok: bool) {
        let mut s = self.stats.lock();
        let c = s.token_grants.entry(grant.to_string()).or_default();
        if ok {
            c.ok += 1;
        } else {
            c.error += 1;
        }
    }

    fn record_call(&self, method: &str, api: Api, subject: &str) {
        let mut s = self.stats.lock();
        s.total_calls += 1;
        *s.calls_by_method.entry(method.to_string()).or_default() += 1;
        *s.calls_by_subject.entry(subject.to_string()).or_default() += 1;
        *s.calls_by_api
            .entry(format!("{api:?}").to_lowercase())
            .or_default() += 1;
    }

    fn record_injected(&self, kind: &str) {
        *self
            .stats
            .lock()
            .errors_injected
            .entry(kind.to_string())
            .or_default() += 1;
    }

    fn record_response(&self, status: StatusCode, bytes: Option<u64>) {
        let mut s = self.stats.lock();
        *s.responses_by_status
            .entry(status.as_u16().to_string())
            .or_default() += 1;
        if status == StatusCode::TOO_MANY_REQUESTS {
            s.rate_limited += 1;
        }
        if let Some(b) = bytes {
            s.bytes_out += b;
        }
    }

    /// Take one call from `subject`'s window; Err(seconds until it reopens) when spent.
    fn take_quota(&self, subject: &str, window: &str, limit: u32, now_ms: i64) -> Result<(), u64> {
        check_window(
            &mut self.windows.lock(),
            (subject.to_string(), window.to_string()),
            limit,
            now_ms,
        )
    }
}

fn check_window(
    windows: &mut HashMap<(String, String), Window>,
    key: (String, String),
    limit: u32,
    now_ms: i64,
) -> Result<(), u64> {
    let minute = now_ms.div_euclid(60_000);
    let w = windows.entry(key).or_insert(Window { minute, used: 0 });
    if w.minute != minute {
        *w = Window { minute, used: 0 };
    }
    if w.used >= limit {
        let reopens_ms = (minute + 1) * 60_000 - now_ms;
        return Err(((reopens_ms + 999) / 1000).max(1) as u64);
    }
    w.used += 1;
    Ok(())
}

/// The discovery method id of an API request, e.g. `directory.users.list`,
/// `people.people.connections.list`, `gmail.users.messages.send`, `calendar.events.list`;
/// `{api}.unknown` when no method matches.
pub fn classify(method: &Method, path: &str) -> String {
    let api = Api::from_path(path);
    let mut p = path.trim_start_matches('/');
    for prefix in ["resumable/upload/", "upload/"] {
        if let Some(rest) = p.strip_prefix(prefix) {
            p = rest;
            break;
        }
    }
    if api == Api::Calendar {
        p = p.strip_prefix("calendar/v3/").unwrap_or(p);
    }
    let segments: Vec<String> = p
        .trim_end_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let id_api = |id: &str| match id.split('.').next() {
        Some("directory") | Some("admin") => Api::Directory,
        Some("people") => Api::People,
        Some("gmail") => Api::Gmail,
        Some("calendar") => Api::Calendar,
        _ => Api::OAuth,
    };
    methods::METHODS
        .iter()
        .filter(|(m, _, id)| *m == method.as_str() && id_api(id) == api)
        .filter_map(|(_, template, id)| {
            match_template(template, &segments).map(|score| (score, *id))
        })
        .max_by_key(|(score, _)| *score)
        .map(|(_, id)| id.to_string())
        .unwrap_or_else(|| format!("{}.unknown", format!("{api:?}").to_lowercase()))
}

/// Match path segments against a flat path template; the score is the number of literal
/// characters matched, so `users/watch` beats `users/{userKey}`.
fn match_template(template: &str, segments: &[String]) -> Option<usize> {
    let parts: Vec<&str> = template.split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut score = 0;
    for (t, s) in parts.iter().zip(segments) {
        if let Some(rest) = t.strip_prefix('{') {
            let (_, suffix) = rest.split_once('}')?;
            let value = s.strip_suffix(suffix)?;
            if value.is_empty() || (suffix.is_empty() && s.contains(':')) {
                return None;
            }
            score += suffix.len();
        } else if t == s {
            score += t.len();
        } else {
            return None;
        }
    }
    Some(score)
}

fn service_host(api: Api) -> &'static str {
    match api {
        Api::Directory => "admin.googleapis.com",
        Api::People => "people.googleapis.com",
        Api::Gmail => "gmail.googleapis.com",
        Api::Calendar => "calendar-json.googleapis.com",
        _ => "googleapis.com",
    }
}

/// The product name Google uses in "… has not been used in project" messages.
fn service_title(api: Api) -> &'static str {
    match api {
        Api::Directory => "Admin SDK API",
        Api::People => "People API",
        Api::Gmail => "Gmail API",
        Api::Calendar => "Google Calendar API",
        _ => "API",
    }
}

/// Google's answer to a call into an API that is not enabled in the caller's Cloud
/// project: 403 with the legacy `accessNotConfigured` reason *and* the
/// `google.rpc.ErrorInfo` `SERVICE_DISABLED` detail carrying the activation link, in
/// every API (as seen in public reports, e.g.
/// googleapis/google-api-python-client#920 and google-gemini/gemini-cli#1343).
fn api_disabled(api: Api) -> Response {
    let host = service_host(api);
    let project = quota::PROJECT_NUMBER;
    let url =
        format!("https://console.developers.google.com/apis/api/{host}/overview?project={project}");
    let message = format!(
        "{} has not been used in project {project} before or it is disabled. Enable it by \
         visiting {url} then retry. If you enabled this API recently, wait a few minutes for \
         the action to propagate to our systems and retry.",
        service_title(api)
    );
    let body = serde_json::json!({"error": {
        "code": 403,
        "message": message,
        "errors": [{
            "message": message,
            "domain": "usageLimits",
            "reason": "accessNotConfigured",
            "extendedHelp": "https://console.developers.google.com",
        }],
        "status": "PERMISSION_DENIED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "SERVICE_DISABLED",
                "domain": "googleapis.com",
                "metadata": {
                    "service": host,
                    "consumer": format!("projects/{project}"),
                    "activationUrl": url,
                    "containerInfo": project,
                    "serviceTitle": service_title(api),
                },
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{
                    "description": "Google developers console API activation",
                    "url": url,
                }],
            },
        ],
    }});
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

fn quota_error(api: Api, retry_after: u64) -> ApiError {
    ApiError::rate_limited(
        api,
        retry_after,
        format!(
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service '{}' for consumer 'project_number:{}'.",
            service_host(api),
            quota::PROJECT_NUMBER
        ),
    )
}

fn injected_error(api: Api, kind: ErrorKind) -> Response {
    match kind {
        ErrorKind::BackendError => ApiError::backend_error(api).into_response(),
        ErrorKind::InternalError => {
            let (reason, msg) = if api == Api::People {
                ("", "Internal error encountered.")
            } else {
                ("internalError", "Internal error encountered.")
            };
            ApiError::new(api, StatusCode::INTERNAL_SERVER_ERROR, reason, msg).into_response()
        }
        ErrorKind::RateLimitExceeded => quota_error(api, 1).into_response(),
        ErrorKind::UserRateLimitExceeded => {
            if api == Api::People {
                quota_error(api, 1).into_response()
            } else {
                ApiError::new(
                    api,
                    StatusCode::FORBIDDEN,
                    "userRateLimitExceeded",
                    "User Rate Limit Exceeded",
                )
                .into_response()
            }
        }
        ErrorKind::ConnectionReset => connection_reset(),
    }
}

/// A response hyper cannot send: its body fails before the head is flushed, so hyper
/// drops the connection and the client sees it closed with no (or an incomplete) answer.
fn connection_reset() -> Response {
    let failing = futures::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "emulator: injected connection reset",
        ))
    });
    let mut resp = Response::new(Body::from_stream(failing));
    *resp.status_mut() = StatusCode::OK;
    resp
}

/// The subject a request counts against: the token's user, `sa:{client_id}` for a token
/// without one, `(anonymous)` without a live token. Never fails: auth is the handler's job.
fn subject_of(emu: &Emulator, req: &Request) -> Option<String> {
    let header = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let token = header
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .map(|_| header[7..].trim())?;
    let now = emu.clock.now_ms();
    let tokens = emu.tokens.read();
    let t = tokens.lookup(token).filter(|t| t.expires_at_ms > now)?;
    Some(
        t.subject
            .clone()
            .unwrap_or_else(|| format!("sa:{}", t.client_id)),
    )
}

pub async fn middleware(State(emu): State<Arc<Emulator>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let api = Api::from_path(&path);
    let method_id = classify(req.method(), &path);
    let subject = subject_of(&emu, &req);
    let effective = emu.faults.settings.read().effective(&method_id, api);
    emu.faults
        .record_call(&method_id, api, subject.as_deref().unwrap_or("(anonymous)"));

    // Google checks that the API is enabled in the caller's project once the token is
    // known to be valid (a bad token is still a 401 from the handler).
    if subject.is_some() && emu.faults.disabled_apis.read().contains(&api) {
        emu.faults.record_injected("accessNotConfigured");
        return finish(&emu, api_disabled(api));
    }

    // The latency is the call's response time at the server, the server's own work
    // included: the handler runs at once and its answer leaves no sooner than this. (Work
    // done after the wait instead added the emulator's CPU time to every call, so a chain
    // of sequential calls, like a directory read's pages, measured the emulator sharing
    // the client's cores rather than the latency it was set to.)
    let latency = std::time::Duration::from_millis(effective.latency_ms);
    let answer_at = tokio::time::Instant::now() + latency;
    let answer = async |resp: Response| {
        if !latency.is_zero() {
            tokio::time::sleep_until(answer_at).await;
        }
        finish(&emu, resp)
    };

    if let (Some(limit), Some(subject)) = (effective.quota, subject.as_deref())
        && let Err(retry_after) =
            emu.faults
                .take_quota(subject, &effective.window, limit, emu.clock.now_ms())
    {
        emu.faults.record_injected("quotaExceeded");
        return answer(quota_error(api, retry_after).into_response()).await;
    }

    let req = match (subject.as_deref(), emu.faults.quota_model()) {
        (Some(subject), Some(model)) => {
            let (req, contacts) = if quota::charges_per_contact(&method_id) {
                count_contacts(req).await
            } else {
                (req, 0)
            };
            let costs = quota::cost_of(&method_id, contacts);
            let admitted =
                emu.faults
                    .quota
                    .lock()
                    .admit(&model, subject, &costs, emu.clock.now_ms());
            if let Err(rejection) = admitted {
                emu.faults.record_injected("quotaExceeded");
                tracing::debug!(method = %method_id, limit = %rejection.key(), "quota exceeded");
                return answer(quota::rejection_response(api, &rejection)).await;
            }
            req
        }
        _ => req,
    };

    if effective.error_rate > 0.0 && !effective.error_kinds.is_empty() {
        let injected = {
            let mut rng = rand::rng();
            (rng.random::<f64>() < effective.error_rate)
                .then(|| effective.error_kinds[rng.random_range(0..effective.error_kinds.len())])
        };
        if let Some(kind) = injected {
            emu.faults.record_injected(kind.name());
            tracing::debug!(method = %method_id, kind = kind.name(), "injected fault");
            return answer(injected_error(api, kind)).await;
        }
    }

    let resp = next.run(req).await;
    answer(resp).await
}

/// The number of contacts in a batch create or update; the body was read in full by
/// the server's outer layer, so this only looks at bytes already in memory.
async fn count_contacts(req: Request) -> (Request, u64) {
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, crate::server::MAX_BODY_BYTES).await {
        Ok(bytes) => {
            let n = quota::contacts_in_body(&bytes);
            (Request::from_parts(parts, Body::from(bytes)), n)
        }
        // Unreadable: the handler answers it; charge the fixed part only.
        Err(_) => (Request::from_parts(parts, Body::empty()), 0),
    }
}

/// Count the response (status and bytes); stream bodies are counted as they go.
fn finish(emu: &Emulator, resp: Response) -> Response {
    let status = resp.status();
    match resp.body().size_hint().exact() {
        Some(n) => {
            emu.faults.record_response(status, Some(n));
            resp
        }
        None => {
            emu.faults.record_response(status, None);
            let counter = emu.faults.streamed_bytes.clone();
            let (parts, body) = resp.into_parts();
            let counted = body.into_data_stream().map(move |chunk| {
                if let Ok(bytes) = &chunk {
                    counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
                chunk
            });
            Response::from_parts(parts, Body::from_stream(counted))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(m: Method, p: &str) -> String {
        classify(&m, p)
    }

    #[test]
    fn classifies_the_methods_orgsync_calls_by_discovery_id() {
        assert_eq!(
            id(Method::GET, "/admin/directory/v1/users"),
            "directory.users.list"
        );
        assert_eq!(
            id(Method::GET, "/admin/directory/v1/users/a%40b.c"),
            "directory.users.get"
        );
        assert_eq!(
            id(Method::PUT, "/admin/directory/v1/users/a%40b.c"),
            "directory.users.update"
        );
        assert_eq!(
            id(Method::POST, "/admin/directory/v1/users/watch"),
            "directory.users.watch"
        );
        assert_eq!(
            id(Method::POST, "/admin/directory/v1/users"),
            "directory.users.insert"
        );
        assert_eq!(
            id(Method::GET, "/admin/directory/v1/groups/g%40b.c/members"),
            "directory.members.list"
        );
        assert_eq!(
            id(Method::POST, "/admin/directory_v1/channels/stop"),
            "admin.channels.stop"
        );
        assert_eq!(
            id(Method::GET, "/v1/people/me/connections"),
            "people.people.connections.list"
        );
        assert_eq!(
            id(Method::POST, "/v1/people:batchCreateContacts"),
            "people.people.batchCreateContacts"
        );
        assert_eq!(
            id(Method::GET, "/v1/people:batchGet"),
            "people.people.getBatchGet"
        );
        assert_eq!(id(Method::GET, "/v1/people/c123"), "people.people.get");
        assert_eq!(
            id(Method::PATCH, "/v1/people/c123:updateContact"),
            "people.people.updateContact"
        );
        assert_eq!(
            id(Method::DELETE, "/v1/people/c123:deleteContact"),
            "people.people.deleteContact"
        );
        assert_eq!(
            id(Method::POST, "/v1/contactGroups/abc/members:modify"),
            "people.contactGroups.members.modify"
        );
        assert_eq!(
            id(Method::GET, "/v1/contactGroups"),
            "people.contactGroups.list"
        );
        assert_eq!(
            id(Method::POST, "/gmail/v1/users/me/messages/send"),
            "gmail.users.messages.send"
        );
        assert_eq!(
            id(Method::POST, "/upload/gmail/v1/users/me/messages/send"),
            "gmail.users.messages.send"
        );
        assert_eq!(
            id(Method::POST, "/gmail/v1/users/me/drafts/send"),
            "gmail.users.drafts.send"
        );
        assert_eq!(
            id(Method::GET, "/calendar/v3/calendars/primary/events"),
            "calendar.events.list"
        );
        assert_eq!(
            id(Method::GET, "/calendars/primary/events"),
            "calendar.events.list"
        );
        assert_eq!(
            id(Method::GET, "/admin/directory/v1/nothing/here/at/all"),
            "directory.unknown"
        );
        assert_eq!(id(Method::GET, "/v1/people:nope"), "people.unknown");
    }

    #[test]
    fn quota_window_is_fixed_per_minute_with_exact_retry_after() {
        let mut w = HashMap::new();
        let key = || ("alice@example.com".to_string(), "People".to_string());
        let t0 = 60_000 * 1000 + 15_000; // 15 s into a minute
        assert!(check_window(&mut w, key(), 2, t0).is_ok());
        assert!(check_window(&mut w, key(), 2, t0 + 1).is_ok());
        assert_eq!(check_window(&mut w, key(), 2, t0 + 2), Err(45));
        // Another subject has its own window.
        assert!(check_window(&mut w, ("bob".into(), "People".into()), 2, t0).is_ok());
        // The next minute opens a fresh window.
        assert!(check_window(&mut w, key(), 2, t0 + 45_000).is_ok());
        assert!(check_window(&mut w, key(), 2, t0 + 45_010).is_ok());
        assert_eq!(check_window(&mut w, key(), 2, t0 + 45_020), Err(60));
    }

    #[test]
    fn overrides_pick_the_longest_prefix() {
        let s = FaultSettings {
            error_rate: 0.1,
            quota_per_user_per_minute: Some(100),
            overrides: vec![
                MethodOverride {
                    method: "people.".into(),
                    error_rate: Some(0.5),
                    ..Default::default()
                },
                MethodOverride {
                    method: "people.people.batch".into(),
                    error_rate: Some(1.0),
                    quota_per_user_per_minute: Some(3),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert!(s.validate().is_ok());
        let e = s.effective("people.people.batchCreateContacts", Api::People);
        assert_eq!(e.error_rate, 1.0);
        assert_eq!(e.quota, Some(3));
        let e = s.effective("people.people.connections.list", Api::People);
        assert_eq!(e.error_rate, 0.5);
        assert_eq!(e.quota, Some(100));
        assert_eq!(e.window, "People");
        let e = s.effective("directory.users.list", Api::Directory);
        assert_eq!(e.error_rate, 0.1);
        let bad = FaultSettings {
            error_rate: 1.5,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn quota_settings_come_as_json_and_bad_ones_are_refused() {
        use quota::{Metric, Scope};
        let s: FaultSettings = serde_json::from_str(
            r#"{"quota_profile":"google","quota":{"people.write.user":10},"quota_minute_secs":1}"#,
        )
        .unwrap();
        assert!(s.validate().is_ok());
        let m = s.quota_model().unwrap().unwrap();
        assert_eq!(m.minute_ms, 1000);
        assert_eq!(m.limits.get(Metric::PeopleWrite, Scope::User), Some(10));
        assert_eq!(m.limits.get(Metric::PeopleRead, Scope::User), Some(90));
        // The flat quota and the quota model are independent; both default to off.
        assert_eq!(FaultSettings::default().quota_model(), Ok(None));
        assert_eq!(FaultSettings::default().quota_minute_secs, 60);
        let bad: FaultSettings =
            serde_json::from_str(r#"{"quota":{"people.writes.user":10}}"#).unwrap();
        assert!(bad.validate().unwrap_err().contains("people.writes.user"));
        let bad = FaultSettings {
            quota_minute_secs: 0,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("quota_minute_secs"));
        assert!(serde_json::from_str::<FaultSettings>(r#"{"quota_profile":"gogle"}"#).is_err());
    }

    fn contacts_token(emu: &Emulator, user: &str) -> String {
        let now = emu.clock.now_ms();
        emu.tokens.write().issue(
            crate::auth::IssuedToken {
                subject: Some(user.into()),
                client_id: "test".into(),
                scopes: vec!["https://www.googleapis.com/auth/contacts".into()],
                expires_at_ms: now + 3_600_000,
            },
            now,
        )
    }

    #[tokio::test]
    async fn the_quota_model_charges_batches_by_cost_and_answers_429_without_retry_after() {
        let mut config = EmulatorConfig::for_tests(1);
        config.quota_limits.insert("people.write.user".into(), 12);
        let h = crate::spawn(config).await.unwrap();
        h.emulator
            .people
            .set_mutation_hold(std::time::Duration::ZERO);
        let token = contacts_token(&h.emulator, &h.emulator.config.admin_email());
        let c = reqwest::Client::new();
        let url = format!("{}/v1/people:batchCreateContacts", h.base_url);
        let body = serde_json::json!({
            "contacts": [
                {"contactPerson": {"names": [{"givenName": "A"}]}},
                {"contactPerson": {"names": [{"givenName": "B"}]}},
                {"contactPerson": {"names": [{"givenName": "C"}]}},
            ],
            "readMask": "names",
        });
        let send = || c.post(&url).bearer_auth(&token).json(&body).send();
        for i in 0..2 {
            let r = send().await.unwrap();
            assert_eq!(r.status(), 200, "batch {i}: {}", r.text().await.unwrap());
        }
        let r = send().await.unwrap();
        assert_eq!(r.status(), 429);
        assert!(r.headers().get("retry-after").is_none());
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(
            v["error"]["details"][0]["metadata"]["quota_limit_value"],
            "12"
        );

        let stats = h.emulator.faults.stats();
        assert_eq!(stats.quota["people.write"].units, 12);
        assert_eq!(stats.quota["people.write"].rejected, 1);
        assert_eq!(stats.quota["people.daily_write"].units, 6);
        assert_eq!(stats.quota["people.read"].units, 12);
        assert_eq!(stats.errors_injected.get("quotaExceeded"), Some(&1));

        // A quota minute later the window has slid past both batches.
        h.emulator.clock.advance(chrono::Duration::seconds(60));
        let r = send().await.unwrap();
        assert_eq!(r.status(), 200);
        h.shutdown().await.unwrap();
    }
}
