//! The transport every typed call goes through: token, pacing, request, error
//! classification, retries, tracing and accounting — in one place so the typed calls
//! stay one-liners and every call behaves the same.
//!
//! **Retries** are a small loop rather than backon: the decision per attempt needs the
//! response's `Retry-After`, whether the request body may already have reached the
//! server (which decides if a non-idempotent call may be repeated), a one-off token
//! refresh on 401, and a total-time budget. That is clearer as 40 lines here than as
//! `when`/`adjust`/`notify` closures sharing state.
//!
//! The delays, bounds and their reasons are [`RetryPolicy`]'s, in [`crate::retry`].
//!
//! **Idempotency.** GET, PUT, DELETE, `batchUpdateContacts` (etag-guarded),
//! `batchDeleteContacts` and `members:modify` are repeated after any transient failure.
//! A non-idempotent call (`createContact`, `batchCreateContacts`, `users.insert`,
//! `messages.send`, ...) is repeated only when Google refused it without executing it
//! (429, or a rate-limit 403) or when the connection failed before the request was
//! sent. After a timeout, a reset once the request may have reached Google, or a 5xx
//! (which can follow a committed write), the call fails with
//! [`ErrorKind::OutcomeUnknown`]; the caller must check before repeating it (see
//! [`crate::people::People::create_contacts_json`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::credentials::TokenSource;
use crate::error::{ApiError, Error, ErrorKind, classify, parse_retry_after, quota_named};
use crate::quota::{QuotaBook, QuotaLimits};
use crate::retry::RetryPolicy;
use crate::stats::CallStats;

/// Which Google API a call goes to (base URL, scopes, error shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    Directory,
    People,
    Gmail,
    Calendar,
}

/// Which API (and, for People, which side) a call belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Directory,
    PeopleRead,
    PeopleWrite,
    Gmail,
    Calendar,
}

impl Lane {
    pub fn api(self) -> Api {
        match self {
            Lane::Directory => Api::Directory,
            Lane::PeopleRead | Lane::PeopleWrite => Api::People,
            Lane::Gmail => Api::Gmail,
            Lane::Calendar => Api::Calendar,
        }
    }
}

/// Base URLs, each ending in `/`. Method paths are appended as discovery gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Endpoints {
    pub directory: String,
    pub people: String,
    pub gmail: String,
    /// Includes Calendar's `servicePath` (`calendar/v3/`).
    pub calendar: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            directory: "https://admin.googleapis.com/".into(),
            people: "https://people.googleapis.com/".into(),
            gmail: "https://gmail.googleapis.com/".into(),
            calendar: "https://www.googleapis.com/calendar/v3/".into(),
        }
    }
}

impl Endpoints {
    /// Every API at one base (the emulator): `http://127.0.0.1:8085`.
    pub fn emulator(base: &str) -> Self {
        let base = format!("{}/", base.trim_end_matches('/'));
        Endpoints {
            directory: base.clone(),
            people: base.clone(),
            gmail: base.clone(),
            calendar: format!("{base}calendar/v3/"),
        }
    }

    pub fn base(&self, api: Api) -> &str {
        match api {
            Api::Directory => &self.directory,
            Api::People => &self.people,
            Api::Gmail => &self.gmail,
            Api::Calendar => &self.calendar,
        }
    }
}

/// The scopes requested per API. They must match what domain-wide delegation grants:
/// asking for one more than granted fails the whole token request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ApiScopes {
    pub directory: Vec<String>,
    pub people: Vec<String>,
    pub gmail: Vec<String>,
    pub calendar: Vec<String>,
}

impl Default for ApiScopes {
    /// Least privilege for orgsync's sync and notify jobs.
    fn default() -> Self {
        use orgsync_wire::scopes::*;
        ApiScopes {
            directory: vec![
                DIRECTORY_USER_READONLY.into(),
                DIRECTORY_GROUP_READONLY.into(),
            ],
            people: vec![CONTACTS.into()],
            gmail: vec![GMAIL_COMPOSE.into()],
            calendar: vec![CALENDAR_READONLY.into()],
        }
    }
}

impl ApiScopes {
    pub fn for_api(&self, api: Api) -> &[String] {
        match api {
            Api::Directory => &self.directory,
            Api::People => &self.people,
            Api::Gmail => &self.gmail,
            Api::Calendar => &self.calendar,
        }
    }
}

/// Everything a [`GoogleClient`] is built from.
#[derive(Clone)]
pub struct ClientConfig {
    pub endpoints: Endpoints,
    pub scopes: ApiScopes,
    /// The quota limits calls are paced to ([`crate::quota`]).
    pub quotas: QuotaLimits,
    pub retry: RetryPolicy,
    /// The admin Directory calls impersonate (service accounts need one).
    pub admin_subject: Option<String>,
    /// Set `quotaUser` to the impersonated user on Calendar calls: with DWD the service
    /// account is charged otherwise
    /// (<https://developers.google.com/workspace/calendar/api/guides/quota>).
    pub calendar_quota_user: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            endpoints: Endpoints::default(),
            scopes: ApiScopes::default(),
            quotas: QuotaLimits::google(),
            retry: RetryPolicy::default(),
            admin_subject: None,
            calendar_quota_user: true,
        }
    }
}

struct Inner {
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    config: ClientConfig,
    quotas: QuotaBook,
    stats: CallStats,
    people_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The Google client: cheap to clone (one `Arc`), shared by every task.
#[derive(Clone)]
pub struct GoogleClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GoogleClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleClient")
            .field("endpoints", &self.inner.config.endpoints)
            .field("admin_subject", &self.inner.config.admin_subject)
            .finish_non_exhaustive()
    }
}

/// A request body, kept as bytes so retries can resend it.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub bytes: Bytes,
    pub content_type: String,
}

/// One API call, fully described (owned so paging streams can rebuild it).
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method_id: &'static str,
    pub lane: Lane,
    pub http: Method,
    /// Relative to the API base, e.g. `admin/directory/v1/users`.
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Body>,
    pub subject: Option<String>,
    pub idempotent: bool,
}

impl Call {
    pub fn new(method_id: &'static str, lane: Lane, http: Method, path: String) -> Self {
        let idempotent = matches!(http, Method::GET | Method::PUT | Method::DELETE);
        Call {
            method_id,
            lane,
            http,
            path,
            query: Vec::new(),
            body: None,
            subject: None,
            idempotent,
        }
    }

    pub fn subject(mut self, subject: Option<&str>) -> Self {
        self.subject = subject.map(str::to_string);
        self
    }

    pub fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    pub fn query_opt(self, key: &'static str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.query(key, v),
            None => self,
        }
    }

    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, Error> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            Error::InvalidArgument(format!("{}: cannot encode body: {e}", self.method_id))
        })?;
        self.body = Some(Body {
            bytes: bytes.into(),
            content_type: "application/json".into(),
        });
        Ok(self)
    }

    pub fn raw_body(mut self, bytes: Bytes, content_type: impl Into<String>) -> Self {
        self.body = Some(Body {
            bytes,
            content_type: content_type.into(),
        });
        self
    }

    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }
}

/// Path-segment encoding: everything but unreserved characters (`a@b.c` → `a%40b.c`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Reserved expansion (`{+resourceName}`): like a segment, but `/` stays literal.
const RESERVED: &AsciiSet = &SEGMENT.remove(b'/');

/// Encode a simple path parameter (`{userKey}`).
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Encode a `{+name}` path parameter: `people/c123` stays `people/c123`.
pub fn encode_reserved(s: &str) -> String {
    utf8_percent_encode(s, RESERVED).to_string()
}

impl GoogleClient {
    pub fn new(tokens: Arc<dyn TokenSource>, config: ClientConfig) -> Self {
        Self::with_http_client(crate::credentials::default_http_client(), tokens, config)
    }

    pub fn with_http_client(
        http: reqwest::Client,
        tokens: Arc<dyn TokenSource>,
        config: ClientConfig,
    ) -> Self {
        let quotas = QuotaBook::new(&config.quotas);
        GoogleClient {
            inner: Arc::new(Inner {
                http,
                tokens,
                config,
                quotas,
                stats: CallStats::default(),
                people_locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    pub fn token_source(&self) -> &Arc<dyn TokenSource> {
        &self.inner.tokens
    }

    /// What each quota metric cost so far, how long calls waited for it, 429s, and
    /// any limit a 429 changed.
    pub fn quota_usage(&self) -> Vec<crate::quota::MetricUsage> {
        self.inner.quotas.usage()
    }

    /// The quota limit in force (after any adaptation) for one metric and scope.
    pub fn quota_limit(
        &self,
        metric: orgsync_wire::quota::Metric,
        scope: orgsync_wire::quota::Scope,
    ) -> Option<u64> {
        self.inner.quotas.limit(metric, scope)
    }

    /// Counters of every call so far.
    pub fn stats(&self) -> &CallStats {
        &self.inner.stats
    }

    /// The lock that keeps one user's People mutations sequential (Google: "Mutate
    /// requests for the same user should be sent sequentially"). Typed People
    /// mutations take it themselves; hold it yourself to make a read-merge-write atomic
    /// with respect to this client.
    pub async fn people_mutation_lock(&self, subject: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .inner
            .people_locks
            .lock()
            .entry(subject.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    pub(crate) fn url(&self, call: &Call) -> String {
        format!(
            "{}{}",
            self.inner.config.endpoints.base(call.lane.api()),
            call.path
        )
    }

    /// Send and decode a JSON answer.
    pub(crate) async fn send_json<T: DeserializeOwned>(&self, call: Call) -> Result<T, Error> {
        let method = call.method_id;
        let bytes = self.send(call).await?;
        decode(method, &bytes)
    }

    /// Send; the body of a 2xx answer.
    pub(crate) async fn send(&self, call: Call) -> Result<Bytes, Error> {
        let started = Instant::now();
        let result = self.send_inner(&call, started).await;
        let (attempts, kind) = match &result {
            Ok((_, attempts)) => (*attempts, None),
            Err((e, attempts)) => (*attempts, Some(e.kind())),
        };
        self.inner.stats.finished(call.method_id, attempts, kind);
        result.map(|(b, _)| b).map_err(|(e, _)| e)
    }

    async fn send_inner(
        &self,
        call: &Call,
        started: Instant,
    ) -> Result<(Bytes, u32), (Error, u32)> {
        let policy = &self.inner.config.retry;
        let api = call.lane.api();
        let scopes: Vec<&str> = self
            .inner
            .config
            .scopes
            .for_api(api)
            .iter()
            .map(String::as_str)
            .collect();
        let subject = call.subject.as_deref();
        let url = self.url(call);
        let mut query = call.query.clone();
        if api == Api::Calendar
            && self.inner.config.calendar_quota_user
            && let Some(s) = subject
            && !query.iter().any(|(k, _)| *k == "quotaUser")
        {
            query.push(("quotaUser", s.to_string()));
        }
        let mut attempt = 0u32;
        let mut refreshed = false;
        // Time spent waiting for quota (not an outage: it does not count against the
        // retry budget), and 429s (Google did not run the call; they do not use up
        // attempts either, only time).
        let mut paced = Duration::ZERO;
        let mut refusals = 0u32;
        loop {
            attempt += 1;
            let token = match self.inner.tokens.token(subject, &scopes).await {
                Ok(t) => t,
                Err(e) => return Err((Error::Auth(e), attempt)),
            };
            let paced_from = Instant::now();
            let ticket = self
                .inner
                .quotas
                .acquire(call.method_id, subject.unwrap_or(""))
                .await;
            paced += paced_from.elapsed();
            let mut req = self
                .inner
                .http
                .request(call.http.clone(), &url)
                .bearer_auth(token.secret())
                .header(reqwest::header::ACCEPT, "application/json");
            if !query.is_empty() {
                req = req.query(&query);
            }
            if let Some(body) = &call.body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, &body.content_type)
                    .body(body.bytes.clone());
            } else if call.http == Method::POST {
                req = req.header(reqwest::header::CONTENT_LENGTH, "0");
            }
            let t0 = Instant::now();
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_retry_after);
                    match resp.bytes().await {
                        Ok(body) => Ok((status, retry_after, body)),
                        // The answer started arriving: the call happened (or not) server-side.
                        Err(e) => Err((e, true)),
                    }
                }
                Err(e) => {
                    // Only a failed connect proves the request never left.
                    let maybe_sent = !(e.is_connect() || e.is_builder());
                    Err((e, maybe_sent))
                }
            };
            let latency_ms = t0.elapsed().as_millis() as u64;
            let mut refused_named = false;
            let error = match outcome {
                Ok((status, _, body)) if (200..300).contains(&status) => {
                    ticket.charged();
                    self.inner
                        .stats
                        .request(call.method_id, Some(status), latency_ms);
                    tracing::debug!(
                        method = call.method_id,
                        subject = subject.unwrap_or(""),
                        status,
                        attempt,
                        latency_ms,
                        "google call"
                    );
                    return Ok((body, attempt));
                }
                Ok((status, retry_after, body)) => {
                    self.inner
                        .stats
                        .request(call.method_id, Some(status), latency_ms);
                    let mut e = classify(api, call.method_id, status, &body, retry_after);
                    e.attempts = attempt;
                    if e.kind == ErrorKind::Retryable && (status == 429 || status == 403) {
                        // Refused by quota: Google ran nothing and charged nothing.
                        ticket.refused();
                        let named = quota_named(&body);
                        refused_named = named.is_some();
                        self.inner.quotas.refused(
                            call.method_id,
                            subject.unwrap_or(""),
                            named.as_ref().map(|(m, l, v)| (m.as_str(), l.as_str(), *v)),
                        );
                        refusals += 1;
                    } else {
                        ticket.charged();
                    }
                    if !call.idempotent && e.kind == ErrorKind::Retryable && status >= 500 {
                        // A 5xx may come after the write was committed: don't guess.
                        e.kind = ErrorKind::OutcomeUnknown;
                    }
                    tracing::info!(
                        method = call.method_id,
                        subject = subject.unwrap_or(""),
                        status,
                        attempt,
                        latency_ms,
                        kind = e.kind.as_str(),
                        reason = e.reason.as_deref().unwrap_or(""),
                        "google call failed"
                    );
                    if status == 401 && !refreshed {
                        // The token may have expired early (server clock, revocation):
                        // drop it and try once more with a fresh one.
                        refreshed = true;
                        self.inner.tokens.invalidate(subject, &scopes, &token).await;
                        continue;
                    }
                    e
                }
                Err((e, maybe_sent)) => {
                    self.inner.stats.request(call.method_id, None, latency_ms);
                    // A request that could not even be built (a malformed URL) fails the
                    // same way every time: retrying only hides it.
                    let kind = if e.is_builder() {
                        ErrorKind::Permanent
                    } else if maybe_sent && !call.idempotent {
                        ErrorKind::OutcomeUnknown
                    } else {
                        ErrorKind::Retryable
                    };
                    tracing::info!(
                        method = call.method_id,
                        subject = subject.unwrap_or(""),
                        attempt,
                        latency_ms,
                        kind = kind.as_str(),
                        error = %e,
                        "google call failed without an answer"
                    );
                    ApiError {
                        method: call.method_id,
                        kind,
                        status: None,
                        reason: Some(
                            if e.is_timeout() {
                                "timeout"
                            } else if e.is_builder() {
                                "invalid_request_url"
                            } else {
                                "transport"
                            }
                            .into(),
                        ),
                        message: error_chain(&e),
                        retry_after: None,
                        attempts: attempt,
                    }
                }
            };
            let quota_refusal = error.status.is_some_and(|s| s == 429 || s == 403)
                && error.kind == ErrorKind::Retryable;
            if error.kind != ErrorKind::Retryable
                || !policy.allows_another(attempt - refusals.min(attempt - 1))
            {
                return Err((Error::Api(error), attempt));
            }
            let delay =
                if quota_refusal && refused_named && refusals == 1 && error.retry_after.is_none() {
                    // The book now knows the limit and holds the retry until it fits. Only
                    // once: a second refusal of the same call means Google's window holds
                    // more than the book's (other clients of the project, a clock apart), and
                    // retrying at once would only bounce again, hundreds of times a second.
                    Duration::ZERO
                } else if quota_refusal {
                    policy.delay(refusals, error.retry_after)
                } else {
                    policy.delay(attempt - refusals, error.retry_after)
                };
            if !policy.within_budget(started.elapsed().saturating_sub(paced), delay) {
                return Err((Error::Api(error), attempt));
            }
            tracing::debug!(
                method = call.method_id,
                attempt,
                delay_ms = delay.as_millis() as u64,
                "retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Decode a 2xx body as JSON; an empty body reads as `{}` (Google answers some
/// deletes with nothing).
pub(crate) fn decode<T: DeserializeOwned>(method: &'static str, bytes: &[u8]) -> Result<T, Error> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| Error::Decode {
        method,
        message: e.to_string(),
    })
}

/// One plain GET with short timeouts, for `orgsync doctor`: the HTTP status of whatever
/// answered, or why nothing did ("connection refused", "timed out", a TLS failure).
/// Any status proves the address is reachable; what the status means is the caller's.
pub async fn probe(url: &str) -> Result<u16, String> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("orgsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())?;
    match http.get(url).send().await {
        Ok(resp) => Ok(resp.status().as_u16()),
        Err(e) => {
            // reqwest's own text is "error sending request for url (…)"; the cause says why.
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = s.to_string();
                source = s.source();
            }
            Err(why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_params_are_encoded_per_discovery() {
        assert_eq!(encode_segment("a@b.c"), "a%40b.c");
        assert_eq!(encode_segment("x/y z"), "x%2Fy%20z");
        assert_eq!(encode_reserved("people/c123"), "people/c123");
        assert_eq!(encode_reserved("contactGroups/a b"), "contactGroups/a%20b");
    }

    #[test]
    fn emulator_endpoints_share_one_base() {
        let e = Endpoints::emulator("http://127.0.0.1:9/");
        assert_eq!(e.directory, "http://127.0.0.1:9/");
        assert_eq!(e.people, "http://127.0.0.1:9/");
        assert_eq!(e.calendar, "http://127.0.0.1:9/calendar/v3/");
        assert_eq!(
            Endpoints::default().calendar,
            "https://www.googleapis.com/calendar/v3/"
        );
    }
}
