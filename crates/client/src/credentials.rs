//! Credentials: one [`TokenSource`] trait that yields a bearer token for
//! (subject, scopes), and three implementations.
//!
//! - [`ServiceAccount`]: the RS256 JWT-bearer grant with domain-wide delegation
//!   (<https://developers.google.com/identity/protocols/oauth2/service-account>). We sign
//!   the assertion ourselves with `jsonwebtoken` (aws-lc-rs) instead of using yup-oauth2
//!   12, because yup-oauth2 builds its own hyper client (it cannot use reqwest), has no
//!   single-flight, and keys its token cache by a hash of the scopes only — sharing it
//!   across impersonated users would hand out the wrong user's token.
//! - [`RefreshTokenCredential`]: a person's own login after the installed-app flow.
//!   A dead refresh token is reported as [`AuthError::ReauthRequired`]; this crate never
//!   starts an interactive flow (a daemon has no browser).
//! - [`StaticToken`]: a fixed token, for tests.
//!
//! **Caching and single-flight.** Tokens are cached per (subject, sorted scope set) and
//! refreshed when less than [`REFRESH_MARGIN`] is left. Each cache key has its own
//! async mutex: the first caller that finds no fresh token fetches one while holding
//! it, and everyone who queued behind it wakes to the cached result. So 100 tasks
//! asking for the same (subject, scopes) at once cause exactly one token request; a
//! failure is shared the same way rather than repeated 100 times.
//!
//! **The `aud` claim.** We send Google's fixed audience
//! `https://oauth2.googleapis.com/token`, as google-auth (Google's own library) does,
//! and POST to the key file's `token_uri`. Google documents `aud` as "always"
//! that value, whatever endpoint an old key file names; the emulator accepts both it
//! and its own URL (yup-oauth2's convention), so nothing is lost against the emulator.
//!
//! Secrets (private keys, access and refresh tokens, client secrets) never appear in
//! `Debug` output, errors or logs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::retry::RetryPolicy;
use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use orgsync_wire::oauth::{JwtBearerClaims, ServiceAccountKey, TokenError, TokenResponse};
use orgsync_wire::scopes::{GOOGLE_TOKEN_AUDIENCE, JWT_BEARER_GRANT};
use parking_lot::Mutex;

/// Refresh a cached token when less than this is left (google-auth uses a similar skew).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Lifetime of the signed assertion: Google rejects more than one hour.
pub const ASSERTION_LIFETIME_SECS: i64 = 3600;

/// A bearer token. `Debug` shows only its expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    secret: String,
    expires_at: Option<Instant>,
}

impl AccessToken {
    pub fn new(secret: impl Into<String>, expires_in: Option<Duration>) -> Self {
        AccessToken {
            secret: secret.into(),
            expires_at: expires_in.map(|d| Instant::now() + d),
        }
    }

    /// The bearer value. Never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// True while more than `margin` of its lifetime is left (tokens without an
    /// expiry are always fresh).
    pub fn is_fresh(&self, margin: Duration) -> bool {
        match self.expires_at {
            None => true,
            Some(at) => at > Instant::now() + margin,
        }
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"<redacted>")
            .field(
                "expires_in_secs",
                &self
                    .expires_at
                    .map(|at| at.saturating_duration_since(Instant::now()).as_secs()),
            )
            .finish()
    }
}

/// Why no token could be had. Every message says what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// `origin` says where the key was: "file PATH" or the setting that held it inline.
    #[error("service-account key {origin}: {problem}. {hint}")]
    KeyFile {
        origin: String,
        problem: String,
        hint: String,
    },
    /// `unauthorized_client` / `access_denied`: what the admin must authorise.
    #[error("{0}")]
    DelegationNotGranted(Box<DelegationNotGranted>),
    #[error(
        "user {subject} does not exist or is suspended, so service account {client_email} \
         cannot act as them (token endpoint: {description})"
    )]
    UnknownSubject {
        subject: String,
        client_email: String,
        description: String,
    },
    #[error(
        "the token endpoint rejected the signature of service account {client_email} \
         (key id {private_key_id}): the key was deleted/disabled or is not this service \
         account's. Create a new JSON key for the service account and point orgsync at it"
    )]
    BadSignature {
        client_email: String,
        private_key_id: String,
    },
    #[error(
        "the token endpoint rejected the assertion's times ({description}); check this \
         machine's clock"
    )]
    ClockSkew { description: String },
    #[error("invalid OAuth scope(s) \"{scopes}\": {description}")]
    InvalidScope { scopes: String, description: String },
    #[error("the saved login is no longer valid ({description}); run `orgsync auth login` again")]
    ReauthRequired { description: String },
    #[error("token endpoint {token_uri} refused (HTTP {status}): {error}: {description}")]
    Rejected {
        token_uri: String,
        status: u16,
        error: String,
        description: String,
    },
    /// Network trouble or a 5xx/429 from the token endpoint: worth retrying later.
    #[error("token endpoint {token_uri} unavailable: {detail}")]
    Unavailable { token_uri: String, detail: String },
    #[error("{0}")]
    Other(String),
}

/// Details of [`AuthError::DelegationNotGranted`].
#[derive(Debug, Clone)]
pub struct DelegationNotGranted {
    pub client_email: String,
    /// The numeric id an admin enters in the Admin console.
    pub client_id: String,
    pub subject: String,
    /// Comma-separated, exactly as the Admin console wants them.
    pub scopes: String,
    pub error: String,
    pub description: String,
}

impl std::fmt::Display for DelegationNotGranted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "domain-wide delegation is not granted for service account {} (client id {}) \
             to act as {} with these scopes. A super admin must add client id {} with the \
             scopes \"{}\" under Admin console → Security → API controls → Domain-wide \
             delegation (it can take minutes to propagate). Token endpoint said: {}: {}",
            self.client_email,
            self.client_id,
            self.subject,
            self.client_id,
            self.scopes,
            self.error,
            self.description
        )
    }
}

impl AuthError {
    /// Transient: the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AuthError::Unavailable { .. })
    }
}

/// Yields bearer tokens. `subject` is the user to impersonate (domain-wide delegation);
/// credentials that cannot impersonate ignore it.
#[async_trait]
pub trait TokenSource: Send + Sync {
    async fn token(&self, subject: Option<&str>, scopes: &[&str])
    -> Result<AccessToken, AuthError>;

    /// An API answered 401 to `rejected`: forget it so the next `token` call fetches a
    /// new one. The default does nothing (static tokens cannot be renewed).
    async fn invalidate(&self, _subject: Option<&str>, _scopes: &[&str], _rejected: &AccessToken) {}
}

// ---------------------------------------------------------------------------------------
// Single-flight cache

type CacheKey = (Option<String>, Vec<String>);

fn cache_key(subject: Option<&str>, scopes: &[&str]) -> CacheKey {
    let mut s: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    s.sort();
    s.dedup();
    (subject.map(str::to_string), s)
}

#[derive(Default)]
struct Slot {
    token: Option<AccessToken>,
    /// The last failure and when it happened, shared with callers that queued behind it.
    last_error: Option<(Instant, AuthError)>,
}

#[derive(Default)]
struct TokenCache {
    slots: Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl TokenCache {
    fn slot(&self, key: CacheKey) -> Arc<tokio::sync::Mutex<Slot>> {
        self.slots.lock().entry(key).or_default().clone()
    }

    async fn get_or_fetch<F, Fut>(&self, key: CacheKey, fetch: F) -> Result<AccessToken, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<AccessToken, AuthError>>,
    {
        let asked_at = Instant::now();
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if let Some(t) = &slot.token
            && t.is_fresh(REFRESH_MARGIN)
        {
            return Ok(t.clone());
        }
        // Someone fetched (and failed) while we waited: share their answer.
        if let Some((at, e)) = &slot.last_error
            && *at >= asked_at
        {
            return Err(e.clone());
        }
        match fetch().await {
            Ok(t) => {
                slot.token = Some(t.clone());
                slot.last_error = None;
                Ok(t)
            }
            Err(e) => {
                slot.last_error = Some((Instant::now(), e.clone()));
                // A transient refresh failure while the old token still works: keep using it.
                if e.is_retryable()
                    && let Some(old) = &slot.token
                    && old.is_fresh(Duration::from_secs(10))
                {
                    return Ok(old.clone());
                }
                Err(e)
            }
        }
    }

    async fn invalidate(&self, key: CacheKey, rejected: &AccessToken) {
        let slot = self.slot(key);
        let mut slot = slot.lock().await;
        if slot.token.as_ref().map(|t| t.secret()) == Some(rejected.secret()) {
            slot.token = None;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Token endpoint

/// What the token endpoint answered to a grant.
pub(crate) enum TokenAnswer {
    Granted(TokenResponse),
    /// A 4xx with its OAuth error (or `http_<status>` and the start of the body).
    Refused {
        status: u16,
        error: TokenError,
    },
}

/// The one token exchange every credential uses: POST `form` to `token_uri`, parse the
/// grant or the OAuth error. Network trouble, 5xx, 408, 429 and Google's transient error
/// codes are tried again as `policy` allows, then [`AuthError::Unavailable`].
pub(crate) async fn post_token_form(
    http: &reqwest::Client,
    token_uri: &str,
    form: &[(&str, &str)],
    policy: &RetryPolicy,
) -> Result<TokenAnswer, AuthError> {
    let unavailable = |detail: String| AuthError::Unavailable {
        token_uri: token_uri.to_string(),
        detail,
    };
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = http
            .post(token_uri)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await;
        let transient = match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| unavailable(format!("reading response: {e}")))?;
                if (200..300).contains(&status) {
                    return serde_json::from_slice::<TokenResponse>(&body)
                        .map(TokenAnswer::Granted)
                        .map_err(|e| AuthError::Other(format!(
                            "token endpoint {token_uri} answered 200 with an unreadable body: {e}"
                        )));
                }
                let parsed: Option<TokenError> = serde_json::from_slice(&body).ok();
                let is_transient_code = parsed.as_ref().is_some_and(|t| {
                    matches!(
                        t.error.as_str(),
                        "internal_failure" | "server_error" | "temporarily_unavailable"
                    )
                });
                if status >= 500 || status == 429 || status == 408 || is_transient_code {
                    format!("HTTP {status}")
                } else {
                    let err = parsed.unwrap_or_else(|| TokenError {
                        error: format!("http_{status}"),
                        error_description: Some(
                            String::from_utf8_lossy(&body).chars().take(200).collect(),
                        ),
                    });
                    return Ok(TokenAnswer::Refused { status, error: err });
                }
            }
            Err(e) => format!("{e}"),
        };
        if !policy.allows_another(attempt) {
            return Err(unavailable(transient));
        }
        tokio::time::sleep(policy.backoff(attempt)).await;
    }
}

fn token_from_response(resp: TokenResponse) -> AccessToken {
    let expires_in = resp
        .expires_in
        .map(|s| Duration::from_secs(s.max(0) as u64))
        // Google always sends expires_in; assume its usual hour if a server does not.
        .or(Some(Duration::from_secs(3600)));
    AccessToken::new(resp.access_token, expires_in)
}

// ---------------------------------------------------------------------------------------
// Service account

/// A service account with domain-wide delegation.
pub struct ServiceAccount {
    client_email: String,
    client_id: String,
    private_key_id: String,
    token_uri: String,
    encoding_key: Arc<EncodingKey>,
    /// Signatures in flight at once, one per core (see `signed_assertion`).
    signers: Arc<tokio::sync::Semaphore>,
    http: reqwest::Client,
    cache: TokenCache,
    requests: AtomicU64,
}

fn sign(header: &Header, claims: &JwtBearerClaims, key: &EncodingKey) -> Result<String, AuthError> {
    jsonwebtoken::encode(header, claims, key)
        .map_err(|e| AuthError::Other(format!("cannot sign the assertion: {e}")))
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("client_id", &self.client_id)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

const KEY_HINT: &str = "Download a JSON key for the service account (Cloud console → IAM & Admin → \
     Service accounts → Keys → Add key → JSON) and point orgsync at that file";

impl ServiceAccount {
    /// Load a key file (`service-account.json`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, AuthError> {
        let path = path.as_ref();
        let shown = format!("file {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::KeyFile {
            origin: shown.clone(),
            problem: match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".into(),
                std::io::ErrorKind::PermissionDenied => "permission denied".into(),
                _ => format!("cannot read it ({e})"),
            },
            hint: KEY_HINT.into(),
        })?;
        Self::parse(&text, &shown)
    }

    /// Parse key-file JSON held in memory.
    pub fn from_json(json: &str) -> Result<Self, AuthError> {
        Self::parse(json, "given inline")
    }

    /// [`Self::from_json`] for a key held in a setting, which errors then name
    /// (`origin`: e.g. "in GCP_SEVERICE_ACCOUNT_KYE"). Errors never quote the key.
    pub fn from_json_named(json: &str, origin: &str) -> Result<Self, AuthError> {
        Self::parse(json, origin)
    }

    fn parse(json: &str, shown: &str) -> Result<Self, AuthError> {
        let fail = |problem: String, hint: &str| AuthError::KeyFile {
            origin: shown.to_string(),
            problem,
            hint: hint.to_string(),
        };
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| fail(format!("not valid JSON ({e})"), KEY_HINT))?;
        if value.get("installed").is_some() || value.get("web").is_some() {
            return Err(fail(
                "this is an OAuth client-secret file, not a service-account key".into(),
                "Use it with `orgsync auth login`, or give orgsync the service account's JSON key",
            ));
        }
        match value.get("type").and_then(|t| t.as_str()) {
            Some("service_account") => {}
            Some(other) => {
                return Err(fail(
                    format!("its \"type\" is \"{other}\", not \"service_account\""),
                    KEY_HINT,
                ));
            }
            None => return Err(fail("it has no \"type\" field".into(), KEY_HINT)),
        }
        let key: ServiceAccountKey =
            serde_json::from_value(value).map_err(|e| fail(format!("{e}"), KEY_HINT))?;
        Self::from_key_named(key, shown)
    }

    /// Use an already-parsed key.
    pub fn from_key(key: ServiceAccountKey) -> Result<Self, AuthError> {
        Self::from_key_named(key, "given as a parsed key")
    }

    fn from_key_named(key: ServiceAccountKey, shown: &str) -> Result<Self, AuthError> {
        let fail = |problem: &str| AuthError::KeyFile {
            origin: shown.to_string(),
            problem: problem.to_string(),
            hint: KEY_HINT.to_string(),
        };
        if key.client_email.is_empty() {
            return Err(fail("\"client_email\" is empty"));
        }
        if key.token_uri.is_empty() {
            return Err(fail("\"token_uri\" is empty"));
        }
        let encoding_key = EncodingKey::from_rsa_pem(key.private_key.as_bytes()).map_err(|_| {
            fail("\"private_key\" is not an RSA private key in PEM form (PKCS#8 or PKCS#1)")
        })?;
        Ok(ServiceAccount {
            client_email: key.client_email,
            client_id: key.client_id,
            private_key_id: key.private_key_id,
            token_uri: key.token_uri,
            encoding_key: Arc::new(encoding_key),
            signers: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            http: default_http_client(),
            cache: TokenCache::default(),
            requests: AtomicU64::new(0),
        })
    }

    /// Use this HTTP client for token requests (timeouts, proxies).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Post to this token endpoint instead of the key file's `token_uri`.
    pub fn with_token_uri(mut self, token_uri: impl Into<String>) -> Self {
        self.token_uri = token_uri.into();
        self
    }

    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    /// The numeric client id an admin enters for domain-wide delegation.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The key's id (`private_key_id`): which of the account's keys this is.
    pub fn private_key_id(&self) -> &str {
        &self.private_key_id
    }

    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// Token requests sent so far (for tests and run reports).
    pub fn token_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The signed JWT-bearer assertion for (subject, scopes), issued now.
    pub fn assertion(&self, subject: Option<&str>, scopes: &[&str]) -> Result<String, AuthError> {
        let (header, claims) = self.assertion_parts(subject, scopes);
        sign(&header, &claims, &self.encoding_key)
    }

    /// The assertion's header and claims, issued now, before signing.
    fn assertion_parts(&self, subject: Option<&str>, scopes: &[&str]) -> (Header, JwtBearerClaims) {
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let claims = JwtBearerClaims {
            iss: self.client_email.clone(),
            scope: scopes.join(" "),
            aud: GOOGLE_TOKEN_AUDIENCE.to_string(),
            iat,
            exp: iat + ASSERTION_LIFETIME_SECS,
            sub: subject.map(str::to_string),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        if !self.private_key_id.is_empty() {
            header.kid = Some(self.private_key_id.clone());
        }
        (header, claims)
    }

    /// The assertion, signed on a blocking thread. An RS256 signature is about a
    /// millisecond of CPU, and a contacts run fetches one token per address book as it
    /// starts them (hundreds at once): signed on the async task they stalled the I/O of
    /// every book in flight and used one core. At most one signature per core at a time.
    async fn signed_assertion(
        &self,
        subject: Option<&str>,
        scopes: &[&str],
    ) -> Result<String, AuthError> {
        let (header, claims) = self.assertion_parts(subject, scopes);
        let key = self.encoding_key.clone();
        let _permit = self.signers.acquire().await;
        tokio::task::spawn_blocking(move || sign(&header, &claims, &key))
            .await
            .map_err(|e| AuthError::Other(format!("cannot sign the assertion: {e}")))?
    }

    async fn fetch(
        &self,
        subject: Option<&str>,
        scopes: &[&str],
    ) -> Result<AccessToken, AuthError> {
        let assertion = self.signed_assertion(subject, scopes).await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            client_email = %self.client_email,
            subject = subject.unwrap_or(""),
            scopes = %scopes.join(" "),
            "requesting service-account token"
        );
        let answer = post_token_form(
            &self.http,
            &self.token_uri,
            &[("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)],
            &RetryPolicy::token_endpoint(),
        )
        .await?;
        match answer {
            TokenAnswer::Granted(resp) => Ok(token_from_response(resp)),
            TokenAnswer::Refused { status, error } => {
                Err(self.map_error(status, error, subject, scopes))
            }
        }
    }

    fn map_error(
        &self,
        status: u16,
        err: TokenError,
        subject: Option<&str>,
        scopes: &[&str],
    ) -> AuthError {
        let description = err.error_description.clone().unwrap_or_default();
        let lower = description.to_ascii_lowercase();
        match err.error.as_str() {
            "unauthorized_client" | "access_denied" | "admin_policy_enforced" => {
                AuthError::DelegationNotGranted(Box::new(DelegationNotGranted {
                    client_email: self.client_email.clone(),
                    client_id: self.client_id.clone(),
                    subject: subject.unwrap_or("(no subject)").to_string(),
                    scopes: scopes.join(","),
                    error: err.error,
                    description,
                }))
            }
            "invalid_grant" if lower.contains("signature") => AuthError::BadSignature {
                client_email: self.client_email.clone(),
                private_key_id: self.private_key_id.clone(),
            },
            "invalid_grant" if lower.contains("email") || lower.contains("user id") => {
                AuthError::UnknownSubject {
                    subject: subject.unwrap_or("(no subject)").to_string(),
                    client_email: self.client_email.clone(),
                    description,
                }
            }
            "invalid_grant" if lower.contains("short-lived") || lower.contains("iat") => {
                AuthError::ClockSkew { description }
            }
            "invalid_scope" => AuthError::InvalidScope {
                scopes: scopes.join(" "),
                description,
            },
            _ => AuthError::Rejected {
                token_uri: self.token_uri.clone(),
                status,
                error: err.error,
                description,
            },
        }
    }
}

#[async_trait]
impl TokenSource for ServiceAccount {
    async fn token(
        &self,
        subject: Option<&str>,
        scopes: &[&str],
    ) -> Result<AccessToken, AuthError> {
        self.cache
            .get_or_fetch(cache_key(subject, scopes), || self.fetch(subject, scopes))
            .await
    }

    async fn invalidate(&self, subject: Option<&str>, scopes: &[&str], rejected: &AccessToken) {
        self.cache
            .invalidate(cache_key(subject, scopes), rejected)
            .await
    }
}

// ---------------------------------------------------------------------------------------
// Refresh token

/// A person's own login: trades a stored refresh token for access tokens. The subject
/// is ignored (a person's token cannot impersonate anyone else).
pub struct RefreshTokenCredential {
    client_id: String,
    client_secret: String,
    refresh_token: String,
    token_uri: String,
    http: reqwest::Client,
    cache: TokenCache,
    requests: AtomicU64,
}

impl std::fmt::Debug for RefreshTokenCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshTokenCredential")
            .field("client_id", &self.client_id)
            .field("token_uri", &self.token_uri)
            .field("client_secret", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .finish()
    }
}

impl RefreshTokenCredential {
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        refresh_token: impl Into<String>,
        token_uri: impl Into<String>,
    ) -> Self {
        RefreshTokenCredential {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_token: refresh_token.into(),
            token_uri: token_uri.into(),
            http: default_http_client(),
            cache: TokenCache::default(),
            requests: AtomicU64::new(0),
        }
    }

    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    pub fn token_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn fetch(&self) -> Result<AccessToken, AuthError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let answer = post_token_form(
            &self.http,
            &self.token_uri,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &self.refresh_token),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
            ],
            &RetryPolicy::token_endpoint(),
        )
        .await?;
        match answer {
            TokenAnswer::Granted(resp) => Ok(token_from_response(resp)),
            TokenAnswer::Refused { error: err, .. } if err.error == "invalid_grant" => {
                Err(AuthError::ReauthRequired {
                    description: err.error_description.unwrap_or(err.error),
                })
            }
            TokenAnswer::Refused { status, error: err } => Err(AuthError::Rejected {
                token_uri: self.token_uri.clone(),
                status,
                description: err.error_description.unwrap_or_default(),
                error: err.error,
            }),
        }
    }
}

#[async_trait]
impl TokenSource for RefreshTokenCredential {
    async fn token(
        &self,
        _subject: Option<&str>,
        _scopes: &[&str],
    ) -> Result<AccessToken, AuthError> {
        // The scopes were fixed at login; one cached token serves every call.
        self.cache
            .get_or_fetch((None, Vec::new()), || self.fetch())
            .await
    }

    async fn invalidate(&self, _subject: Option<&str>, _scopes: &[&str], rejected: &AccessToken) {
        self.cache.invalidate((None, Vec::new()), rejected).await
    }
}

// ---------------------------------------------------------------------------------------
// Static token

/// Always the same token (tests, or a token minted elsewhere).
#[derive(Clone)]
pub struct StaticToken(AccessToken);

impl StaticToken {
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken(AccessToken::new(token, None))
    }
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

#[async_trait]
impl TokenSource for StaticToken {
    async fn token(
        &self,
        _subject: Option<&str>,
        _scopes: &[&str],
    ) -> Result<AccessToken, AuthError> {
        Ok(self.0.clone())
    }
}

pub(crate) fn default_http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("orgsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_debug_is_redacted() {
        let t = AccessToken::new("ya29.SECRET", Some(Duration::from_secs(60)));
        assert!(!format!("{t:?}").contains("SECRET"));
        assert!(!format!("{:?}", StaticToken::new("ya29.SECRET")).contains("SECRET"));
        let r = RefreshTokenCredential::new("cid", "SECRET1", "SECRET2", "http://x/token");
        assert!(!format!("{r:?}").contains("SECRET"));
    }

    #[test]
    fn freshness_honours_margin() {
        let t = AccessToken::new("x", Some(Duration::from_secs(200)));
        assert!(t.is_fresh(Duration::from_secs(10)));
        assert!(
            !t.is_fresh(REFRESH_MARGIN),
            "less than 5 min left → refresh"
        );
        assert!(AccessToken::new("x", None).is_fresh(REFRESH_MARGIN));
    }

    #[test]
    fn cache_key_ignores_scope_order() {
        assert_eq!(
            cache_key(Some("a@x"), &["b", "a", "b"]),
            cache_key(Some("a@x"), &["a", "b"])
        );
        assert_ne!(
            cache_key(Some("a@x"), &["a"]),
            cache_key(Some("b@x"), &["a"])
        );
    }

    #[test]
    fn key_file_errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let e = ServiceAccount::from_file(&missing).unwrap_err().to_string();
        assert!(e.contains("nope.json") && e.contains("no such file"), "{e}");

        let p = dir.path().join("bad.json");
        std::fs::write(&p, "not json").unwrap();
        let e = ServiceAccount::from_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("bad.json") && e.contains("not valid JSON"),
            "{e}"
        );

        std::fs::write(&p, r#"{"installed":{"client_id":"x"}}"#).unwrap();
        let e = ServiceAccount::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("client-secret file"), "{e}");

        std::fs::write(&p, r#"{"type":"authorized_user"}"#).unwrap();
        let e = ServiceAccount::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("authorized_user"), "{e}");

        std::fs::write(
            &p,
            r#"{"type":"service_account","private_key":"x","token_uri":"t"}"#,
        )
        .unwrap();
        let e = ServiceAccount::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("client_email"), "{e}");

        std::fs::write(
            &p,
            r#"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nSECRETJUNK\n-----END PRIVATE KEY-----\n","client_email":"a@b","token_uri":"t"}"#,
        )
        .unwrap();
        let e = ServiceAccount::from_file(&p).unwrap_err().to_string();
        assert!(
            e.contains("private_key") && !e.contains("SECRETJUNK"),
            "{e}"
        );
    }
}
