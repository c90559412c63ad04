//! OAuth 2.0 as Google's endpoints do it
//! (<https://developers.google.com/identity/protocols/oauth2/service-account>,
//! <https://developers.google.com/identity/protocols/oauth2/native-app>), so that google-auth,
//! yup-oauth2 and orgsync's own installed-app login work unchanged against the emulator:
//!
//! - `POST /token`: the JWT-bearer grant (service account with domain-wide delegation),
//!   `authorization_code` with PKCE, and `refresh_token`, failing with Google's exact
//!   `{"error","error_description"}` strings;
//! - `GET /o/oauth2/auth` and `/o/oauth2/v2/auth`: the authorization endpoint, which
//!   consents automatically (as `config.consent_user`, or a live `login_hint`) and 302s
//!   to the loopback `redirect_uri`, so the desktop flow runs headless;
//! - `POST /revoke` and `GET /tokeninfo`.
//!
//! Assertions are verified with aws-lc-rs against the key the emulator generated; an
//! assertion's time window is checked against wall time or the emulator clock (signers
//! use wall time), while codes and tokens age by the emulator clock (`clock/advance`), and `sub` must be
//! a live user of the Directory. Secrets never reach logs or `Debug` output.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use orgsync_wire::oauth::{ClientSecretFile, ServiceAccountKey, TokenResponse, messages};
use orgsync_wire::scopes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::IssuedToken;
use crate::error::OAuthError;
use crate::keys::{DesktopClient, KeyError, ServiceAccount, random_token};
use crate::state::Emulator;

/// Tolerated clock difference between the assertion signer and the emulator, seconds.
const CLOCK_SKEW_SECS: i64 = 300;
/// Longest assertion lifetime Google accepts (`exp - iat`): 60 min plus 5 min of slack.
const MAX_ASSERTION_LIFETIME_SECS: i64 = 65 * 60;
/// How long an authorization code stays redeemable.
const CODE_TTL_MS: i64 = 10 * 60 * 1000;
/// Refresh tokens die after six months unused
/// (<https://developers.google.com/identity/protocols/oauth2#expiration>).
const REFRESH_IDLE_MS: i64 = 183 * 24 * 3600 * 1000;
/// At most this many refresh tokens per (client, user); a new one evicts the oldest.
const REFRESH_PER_USER_CLIENT: usize = 100;

/// Scopes delegated to the generated service account: what orgsync needs, as an admin
/// would enter them under "Manage Domain Wide Delegation".
pub const DEFAULT_DELEGATED_SCOPES: &[&str] = &[
    scopes::DIRECTORY_USER,
    scopes::DIRECTORY_USER_READONLY,
    scopes::DIRECTORY_GROUP_READONLY,
    scopes::DIRECTORY_GROUP_MEMBER_READONLY,
    scopes::CLOUD_PLATFORM,
    scopes::CONTACTS,
    scopes::CONTACTS_READONLY,
    scopes::GMAIL_SEND,
    scopes::GMAIL_COMPOSE,
    scopes::GMAIL_MODIFY,
    scopes::GMAIL_READONLY,
    scopes::CALENDAR,
    scopes::CALENDAR_READONLY,
    scopes::CALENDAR_EVENTS,
    scopes::CALENDAR_EVENTS_READONLY,
];

/// Every scope Google's APIs publish, one per line (the file's header names its source:
/// the `auth.oauth2.scopes` keys of Google's discovery documents).
const GOOGLE_SCOPES: &str = include_str!("oauth_scopes.txt");

static KNOWN_SCOPES: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    GOOGLE_SCOPES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// Whether Google would recognise this scope. A string that is no Google scope is
/// `invalid_scope`; a real one that was not delegated is `unauthorized_client`
/// (https://developers.google.com/identity/protocols/oauth2/service-account), so the
/// two must not be confused for scopes of APIs the emulator does not serve.
pub fn is_known_scope(scope: &str) -> bool {
    KNOWN_SCOPES.contains(scope)
}

/// A service account and the scopes delegated to it domain-wide.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceAccountClient {
    pub account: ServiceAccount,
    pub delegated_scopes: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
struct AuthCode {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    /// `S256` or `plain`.
    challenge_method: String,
    scopes: Vec<String>,
    subject: String,
    offline: bool,
    expires_at_ms: i64,
    used: bool,
}

#[derive(Clone, Serialize, Deserialize)]
struct RefreshGrant {
    client_id: String,
    subject: String,
    scopes: Vec<String>,
    created_ms: i64,
    last_used_ms: i64,
}

/// Everything the OAuth endpoints remember. Serialized for `--data-dir` persistence; no
/// `Debug` (the maps are keyed by secrets).
#[derive(Default, Serialize, Deserialize)]
pub struct OAuthState {
    pub service_accounts: Vec<ServiceAccountClient>,
    pub desktop_clients: Vec<DesktopClient>,
    #[serde(default)]
    codes: HashMap<String, AuthCode>,
    #[serde(default)]
    refresh_tokens: HashMap<String, RefreshGrant>,
}

impl OAuthState {
    /// Fresh credentials: one service account `orgsync@orgsync-emulator.iam.gserviceaccount.com`
    /// with [`DEFAULT_DELEGATED_SCOPES`], and one desktop client.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(OAuthState {
            service_accounts: vec![ServiceAccountClient {
                account: ServiceAccount::generate("orgsync")?,
                delegated_scopes: DEFAULT_DELEGATED_SCOPES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            }],
            desktop_clients: vec![DesktopClient::generate()],
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
        })
    }

    /// Forget codes and refresh tokens but keep the clients (their key files stay valid).
    pub fn clear_grants(&mut self) {
        self.codes.clear();
        self.refresh_tokens.clear();
    }

    /// The first service account's key file, pointing at `base_url`.
    pub fn service_account_key(&self, base_url: &str) -> Option<ServiceAccountKey> {
        self.service_accounts
            .first()
            .map(|c| c.account.key_file(base_url))
    }

    /// The first desktop client's `client_secret.json`, pointing at `base_url`.
    pub fn client_secret_file(&self, base_url: &str) -> Option<ClientSecretFile> {
        self.desktop_clients
            .first()
            .map(|c| c.client_secret_file(base_url))
    }

    /// Replace the delegated scopes of the service account with this email or numeric
    /// client id (e.g. to reproduce a misconfigured delegation). False when unknown.
    pub fn set_delegated_scopes(&mut self, client: &str, scopes: &[&str]) -> bool {
        match self
            .service_accounts
            .iter_mut()
            .find(|c| c.account.client_email == client || c.account.client_id == client)
        {
            Some(c) => {
                c.delegated_scopes = scopes.iter().map(|s| s.to_string()).collect();
                true
            }
            None => false,
        }
    }

    /// Number of live refresh tokens (for tests and stats).
    pub fn refresh_token_count(&self) -> usize {
        self.refresh_tokens.len()
    }
}

/// The generated service account's key file with the current base URL; None before
/// [`crate::persist::bootstrap`].
pub fn service_account_key(emu: &Emulator) -> Option<ServiceAccountKey> {
    emu.oauth.read().service_account_key(&emu.base_url())
}

/// The generated desktop client's `client_secret.json` with the current base URL.
pub fn client_secret_file(emu: &Emulator) -> Option<ClientSecretFile> {
    emu.oauth.read().client_secret_file(&emu.base_url())
}

/// A JWT-bearer assertion signed with the generated service-account key, exactly as
/// google-auth builds it (`aud` = Google's token URL, lifetime 3600 s, emulator clock).
/// POST it to `{base}/token` as `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`.
pub fn sign_assertion(
    emu: &Emulator,
    subject: Option<&str>,
    scopes: &[&str],
) -> Result<String, KeyError> {
    let key = service_account_key(emu).ok_or(KeyError::BadPem)?;
    let iat = emu.clock.now_ms() / 1000;
    let mut claims = serde_json::json!({
        "iss": key.client_email,
        "aud": scopes::GOOGLE_TOKEN_AUDIENCE,
        "scope": scopes.join(" "),
        "iat": iat,
        "exp": iat + 3600,
    });
    if let Some(sub) = subject {
        claims["sub"] = sub.into();
    }
    crate::keys::sign_rs256(&key.private_key, Some(&key.private_key_id), &claims)
}

/// Issue an access token directly, skipping the grant: for tests that need a caller and
/// do not test OAuth. No checks; `subject` should be a primary email.
pub fn mint_access_token(emu: &Emulator, subject: Option<&str>, scopes: &[&str]) -> String {
    let now = emu.clock.now_ms();
    let client_id = emu
        .oauth
        .read()
        .service_accounts
        .first()
        .map(|c| c.account.client_id.clone())
        .unwrap_or_else(|| "emulator".into());
    emu.tokens.write().issue(
        IssuedToken {
            subject: subject.map(str::to_string),
            client_id,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at_ms: now + emu.config.access_token_ttl_secs * 1000,
        },
        now,
    )
}

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/token", post(token))
        .route("/o/oauth2/token", post(token))
        .route("/oauth2/v4/token", post(token))
        .route("/o/oauth2/auth", get(authorize))
        .route("/o/oauth2/v2/auth", get(authorize))
        .route("/revoke", post(revoke).get(revoke))
        .route("/o/oauth2/revoke", post(revoke).get(revoke))
        .route("/tokeninfo", get(tokeninfo).post(tokeninfo))
        .route("/oauth2/v3/tokeninfo", get(tokeninfo).post(tokeninfo))
}

// ---------------------------------------------------------------------------------------
// Request parsing

/// Form fields from a form-encoded body (or a JSON object body), plus the query string.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Fields {
        let mut pairs: Vec<(String, String)> = query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("json"));
        if is_json {
            if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
                for (k, v) in map {
                    let v = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    pairs.push((k, v));
                }
            }
        } else {
            pairs.extend(url::form_urlencoded::parse(body).into_owned());
        }
        Fields(pairs)
    }

    /// The last non-empty value of `name` (body fields come after query fields).
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

fn invalid_request(description: &str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn missing(name: &str) -> OAuthError {
    invalid_request(&format!("Missing required parameter: {name}"))
}

/// Google answers token requests with no-store caching headers.
fn no_store(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate"),
    );
    resp.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

// ---------------------------------------------------------------------------------------
// POST /token

async fn token(State(emu): State<Arc<Emulator>>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = Fields::parse(&headers, None, &body);
    let grant = fields.get("grant_type").unwrap_or("");
    let result = match grant {
        scopes::JWT_BEARER_GRANT => jwt_bearer(&emu, &fields),
        "authorization_code" => authorization_code(&emu, &headers, &fields),
        "refresh_token" => refresh(&emu, &headers, &fields),
        "" => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: ",
        )),
        other => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {other}"),
        )),
    };
    let kind = match grant {
        scopes::JWT_BEARER_GRANT => "jwt-bearer",
        "authorization_code" | "refresh_token" => grant,
        _ => "other",
    };
    emu.faults.record_token_grant(kind, result.is_ok());
    match result {
        Ok(resp) => no_store(Json(token_json(&resp)).into_response()),
        Err(e) => {
            tracing::debug!(grant = kind, error = %e.body.error, "token request refused");
            no_store(e.into_response())
        }
    }
}

fn issue(
    emu: &Emulator,
    subject: Option<String>,
    client_id: String,
    scopes: Vec<String>,
) -> TokenResponse {
    let now = emu.clock.now_ms();
    let ttl = emu.config.access_token_ttl_secs;
    let scope = scopes.join(" ");
    let access_token = emu.tokens.write().issue(
        IssuedToken {
            subject,
            client_id,
            scopes,
            expires_at_ms: now + ttl * 1000,
        },
        now,
    );
    TokenResponse {
        access_token,
        // Google answers one second short of the lifetime (3599 for an hour).
        expires_in: Some((ttl - 1).max(0)),
        token_type: "Bearer".into(),
        scope: Some(scope),
        refresh_token: None,
        id_token: None,
    }
}

/// Google's success body. Built by hand: `expires_in` must be a JSON number (the wire
/// type writes int64 fields as strings).
fn token_json(resp: &TokenResponse) -> Value {
    let mut v = serde_json::json!({
        "access_token": resp.access_token,
        "expires_in": resp.expires_in.unwrap_or(0),
        "token_type": resp.token_type,
    });
    if let Some(scope) = &resp.scope {
        v["scope"] = scope.clone().into();
    }
    if let Some(rt) = &resp.refresh_token {
        v["refresh_token"] = rt.clone().into();
    }
    v
}

fn decode_json_segment(segment: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        v @ Value::Object(_) => Some(v),
        _ => None,
    }
}

/// A NumericDate claim; JWT allows fractional seconds.
fn numeric_claim(claims: &Value, name: &str) -> Option<i64> {
    let v = claims.get(name)?;
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

fn audience_ok(emu: &Emulator, aud: &Value) -> bool {
    let base = emu.base_url();
    let ok = |a: &str| {
        a == scopes::GOOGLE_TOKEN_AUDIENCE
            || scopes::LEGACY_TOKEN_AUDIENCES.contains(&a)
            || a == format!("{base}/token")
            || a == format!("{base}/o/oauth2/token")
            || a == format!("{base}/oauth2/v4/token")
            || is_loopback_token_url(a)
    };
    match aud {
        Value::String(a) => ok(a),
        Value::Array(list) => list.iter().filter_map(Value::as_str).any(ok),
        _ => false,
    }
}

/// A token URL on this machine (a key file written when the emulator had another port).
fn is_loopback_token_url(a: &str) -> bool {
    url::Url::parse(a)
        .is_ok_and(|u| u.scheme() == "http" && is_loopback_host(&u) && u.path() == "/token")
}

fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Split and check a space-separated scope list: empty or unknown is `invalid_scope`.
fn parse_scopes(scope: &str) -> Result<Vec<String>, OAuthError> {
    let list: Vec<String> = scope.split_whitespace().map(str::to_string).collect();
    if list.is_empty() || !list.iter().all(|s| is_known_scope(s)) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            messages::INVALID_SCOPE,
        ));
    }
    let mut deduped = Vec::with_capacity(list.len());
    for s in list {
        if !deduped.contains(&s) {
            deduped.push(s);
        }
    }
    Ok(deduped)
}

/// The JWT-bearer grant: service account, optionally impersonating `sub`
/// (<https://developers.google.com/identity/protocols/oauth2/service-account>).
fn jwt_bearer(emu: &Emulator, fields: &Fields) -> Result<TokenResponse, OAuthError> {
    let assertion = fields
        .get("assertion")
        .ok_or_else(|| missing("assertion"))?;
    let mut parts = assertion.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid_grant(
            "Invalid JWT: the assertion is not a signed JWT (header.claims.signature).",
        ));
    };
    let header = decode_json_segment(h).ok_or_else(|| invalid_grant(messages::BAD_SIGNATURE))?;
    let claims = decode_json_segment(c).ok_or_else(|| invalid_grant(messages::BAD_SIGNATURE))?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| invalid_grant(messages::BAD_SIGNATURE))?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(invalid_grant(messages::BAD_SIGNATURE));
    }
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_grant("Invalid JWT: missing 'iss' claim."))?;

    let (client_id, delegated) = {
        let oauth = emu.oauth.read();
        let kid = header.get("kid").and_then(Value::as_str);
        // The key is chosen by `kid`; without one, by `iss`.
        let client = match kid {
            Some(kid) => oauth
                .service_accounts
                .iter()
                .find(|c| c.account.private_key_id == kid),
            None => oauth
                .service_accounts
                .iter()
                .find(|c| c.account.client_email == iss),
        };
        let Some(client) = client else {
            if oauth
                .service_accounts
                .iter()
                .any(|c| c.account.client_email == iss)
            {
                // Known account, unknown (deleted or foreign) key.
                return Err(invalid_grant(messages::BAD_SIGNATURE));
            }
            return Err(invalid_grant("Invalid grant: account not found"));
        };
        let signing_input = &assertion[..h.len() + 1 + c.len()];
        if !client
            .account
            .verify_rs256(signing_input.as_bytes(), &signature)
        {
            return Err(invalid_grant(messages::BAD_SIGNATURE));
        }
        if client.account.client_email != iss {
            return Err(invalid_grant("Invalid grant: account not found"));
        }
        (
            client.account.client_id.clone(),
            client.delegated_scopes.clone(),
        )
    };

    if !claims.get("aud").is_some_and(|aud| audience_ok(emu, aud)) {
        return Err(invalid_grant(&format!(
            "Invalid JWT: Failed audience check. The right audience is {}",
            scopes::GOOGLE_TOKEN_AUDIENCE
        )));
    }

    let (Some(iat), Some(exp)) = (numeric_claim(&claims, "iat"), numeric_claim(&claims, "exp"))
    else {
        return Err(invalid_grant(messages::BAD_TIME));
    };
    // The signer's clock is the real one (google-auth and orgsync sign with wall time),
    // while tests move the emulator's clock forward to age tokens and sync tokens. An
    // assertion is in its time window if it is so by either clock; otherwise every
    // client would be locked out after `clock/advance`.
    let in_window = |now: i64| iat <= now + CLOCK_SKEW_SECS && exp >= now - CLOCK_SKEW_SECS;
    let emulator_now = emu.clock.now_ms() / 1000;
    let wall_now = chrono::Utc::now().timestamp();
    if exp < iat
        || exp - iat > MAX_ASSERTION_LIFETIME_SECS
        || !(in_window(emulator_now) || in_window(wall_now))
    {
        return Err(invalid_grant(messages::BAD_TIME));
    }

    // A string that is no Google scope fails first, as `invalid_scope`, even when other
    // scopes in the request are not delegated either.
    let requested = parse_scopes(claims.get("scope").and_then(Value::as_str).unwrap_or(""))?;

    let subject = match claims.get("sub").and_then(Value::as_str) {
        None | Some("") => None,
        Some(sub) => {
            // Domain-wide delegation: every scope must be delegated to this client. A real
            // scope the admin did not enter (say `gmail.settings.sharing` or `drive`) is
            // `unauthorized_client` with HTTP 401, never `invalid_scope`.
            if !requested.iter().all(|s| delegated.contains(s)) {
                return Err(OAuthError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized_client",
                    messages::UNAUTHORIZED_CLIENT,
                ));
            }
            let found = emu.directory.read().find_subject(sub);
            match found {
                Some(info) if !info.suspended => Some(info.primary_email),
                _ => return Err(invalid_grant(messages::INVALID_EMAIL)),
            }
        }
    };
    Ok(issue(emu, subject, client_id, requested))
}

/// Client credentials from the form or from HTTP Basic auth (the oauth2 crate's default).
fn desktop_client(
    emu: &Emulator,
    headers: &HeaderMap,
    fields: &Fields,
) -> Result<String, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
        })
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let dec = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Some((dec(id), dec(secret)))
        });
    let (id, secret) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            fields
                .get("client_id")
                .ok_or_else(|| missing("client_id"))?
                .to_string(),
            fields.get("client_secret").map(str::to_string),
        ),
    };
    let oauth = emu.oauth.read();
    let client = oauth
        .desktop_clients
        .iter()
        .find(|c| c.client_id == id)
        .ok_or_else(|| {
            OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The OAuth client was not found.",
            )
        })?;
    match secret {
        None => Err(invalid_request("client_secret is missing.")),
        Some(s) if s != client.client_secret => Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unauthorized",
        )),
        Some(_) => Ok(id),
    }
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Za-z0-9-._~]`.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn authorization_code(
    emu: &Emulator,
    headers: &HeaderMap,
    fields: &Fields,
) -> Result<TokenResponse, OAuthError> {
    let client_id = desktop_client(emu, headers, fields)?;
    let code = fields.get("code").ok_or_else(|| missing("code"))?;
    let now = emu.clock.now_ms();
    let grant = {
        let mut oauth = emu.oauth.write();
        oauth.codes.retain(|_, c| c.expires_at_ms > now);
        let entry = oauth
            .codes
            .get_mut(code)
            .ok_or_else(|| invalid_grant(messages::BAD_CODE))?;
        if entry.used || entry.client_id != client_id {
            return Err(invalid_grant("Bad Request"));
        }
        // Single use: a code is spent by the first exchange that names its client.
        entry.used = true;
        entry.clone()
    };
    if fields.get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "Bad Request",
        ));
    }
    let verifier = fields
        .get("code_verifier")
        .ok_or_else(|| invalid_grant("Missing code verifier."))?;
    let matches = valid_verifier(verifier)
        && match grant.challenge_method.as_str() {
            "S256" => {
                URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == grant.code_challenge
            }
            _ => verifier == grant.code_challenge,
        };
    if !matches {
        return Err(invalid_grant("Invalid code verifier."));
    }
    let mut resp = issue(
        emu,
        Some(grant.subject.clone()),
        client_id.clone(),
        grant.scopes.clone(),
    );
    if grant.offline {
        let token = format!("1//0{}", random_token(100));
        let mut oauth = emu.oauth.write();
        let mut mine: Vec<(String, i64)> = oauth
            .refresh_tokens
            .iter()
            .filter(|(_, g)| g.client_id == client_id && g.subject == grant.subject)
            .map(|(k, g)| (k.clone(), g.created_ms))
            .collect();
        if mine.len() >= REFRESH_PER_USER_CLIENT {
            mine.sort_by_key(|(_, created)| *created);
            for (k, _) in mine.iter().take(mine.len() + 1 - REFRESH_PER_USER_CLIENT) {
                oauth.refresh_tokens.remove(k);
            }
        }
        oauth.refresh_tokens.insert(
            token.clone(),
            RefreshGrant {
                client_id,
                subject: grant.subject,
                scopes: grant.scopes,
                created_ms: now,
                last_used_ms: now,
            },
        );
        resp.refresh_token = Some(token);
    }
    Ok(resp)
}

fn refresh(
    emu: &Emulator,
    headers: &HeaderMap,
    fields: &Fields,
) -> Result<TokenResponse, OAuthError> {
    let client_id = desktop_client(emu, headers, fields)?;
    let token = fields
        .get("refresh_token")
        .ok_or_else(|| missing("refresh_token"))?;
    let now = emu.clock.now_ms();
    let grant = {
        let mut oauth = emu.oauth.write();
        let Some(g) = oauth.refresh_tokens.get(token).cloned() else {
            return Err(invalid_grant(messages::EXPIRED_OR_REVOKED));
        };
        if g.client_id != client_id {
            return Err(OAuthError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized_client",
                "Unauthorized",
            ));
        }
        if now - g.last_used_ms > REFRESH_IDLE_MS {
            oauth.refresh_tokens.remove(token);
            return Err(invalid_grant(messages::EXPIRED_OR_REVOKED));
        }
        if let Some(g) = oauth.refresh_tokens.get_mut(token) {
            g.last_used_ms = now;
        }
        g
    };
    let live = emu
        .directory
        .read()
        .find_subject(&grant.subject)
        .is_some_and(|s| !s.suspended);
    if !live {
        return Err(invalid_grant(messages::EXPIRED_OR_REVOKED));
    }
    // A narrower scope may be asked for; never a wider one.
    let scopes = match fields.get("scope") {
        None => grant.scopes.clone(),
        Some(s) => {
            let asked = parse_scopes(s)?;
            if !asked.iter().all(|a| grant.scopes.contains(a)) {
                return Err(OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    messages::INVALID_SCOPE,
                ));
            }
            asked
        }
    };
    Ok(issue(emu, Some(grant.subject), client_id, scopes))
}

// ---------------------------------------------------------------------------------------
// GET /o/oauth2/auth

/// A loopback `http://` redirect (RFC 8252 §7.3): 127.0.0.0/8, `[::1]` or `localhost`,
/// any port, no fragment.
fn loopback_redirect(uri: &str) -> Option<url::Url> {
    let u = url::Url::parse(uri).ok()?;
    (u.scheme() == "http" && is_loopback_host(&u) && u.fragment().is_none()).then_some(u)
}

fn redirect_with(mut target: url::Url, pairs: &[(&str, &str)]) -> Response {
    {
        let mut q = target.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(target.as_str()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn authorize(State(emu): State<Arc<Emulator>>, uri: Uri) -> Response {
    let fields = Fields::parse(&HeaderMap::new(), uri.query(), &[]);
    match authorize_inner(&emu, &fields) {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

fn authorize_inner(emu: &Emulator, fields: &Fields) -> Result<Response, OAuthError> {
    // Until the client and redirect URI are known good, errors go to the browser, never
    // to the redirect URI (RFC 6749 §4.1.2.1).
    let client_id = fields
        .get("client_id")
        .ok_or_else(|| missing("client_id"))?;
    if !emu
        .oauth
        .read()
        .desktop_clients
        .iter()
        .any(|c| c.client_id == client_id)
    {
        return Err(OAuthError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        ));
    }
    let redirect_uri = fields
        .get("redirect_uri")
        .ok_or_else(|| missing("redirect_uri"))?;
    let target = loopback_redirect(redirect_uri).ok_or_else(|| {
        OAuthError::new(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "redirect_uri must be a loopback http:// address (127.0.0.1, [::1] or localhost) for a desktop client.",
        )
    })?;
    let state = fields.get("state").unwrap_or("");
    let fail = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if !state.is_empty() {
            pairs.push(("state", state));
        }
        Ok(redirect_with(target.clone(), &pairs))
    };

    if fields.get("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "Only response_type=code is supported.",
        );
    }
    let scopes = match parse_scopes(fields.get("scope").unwrap_or("")) {
        Ok(s) => s,
        Err(_) => return fail("invalid_scope", messages::INVALID_SCOPE),
    };
    let Some(challenge) = fields.get("code_challenge") else {
        return fail(
            "invalid_request",
            "Missing required parameter: code_challenge",
        );
    };
    let method = match fields.get("code_challenge_method") {
        Some("S256") => "S256",
        Some("plain") => "plain",
        _ => {
            return fail(
                "invalid_request",
                "code_challenge_method must be S256 (or plain).",
            );
        }
    };
    let challenge_ok = if method == "S256" {
        challenge.len() == 43
            && URL_SAFE_NO_PAD
                .decode(challenge)
                .is_ok_and(|d| d.len() == 32)
    } else {
        valid_verifier(challenge)
    };
    if !challenge_ok {
        return fail("invalid_request", "Invalid code_challenge.");
    }

    // Auto-consent: a live `login_hint`, else the configured user, else the admin.
    let subject = {
        let dir = emu.directory.read();
        let hinted = fields
            .get("login_hint")
            .and_then(|h| dir.find_subject(h))
            .filter(|s| !s.suspended);
        let fallback = emu
            .config
            .consent_user
            .clone()
            .unwrap_or_else(|| emu.config.admin_email());
        hinted.or_else(|| dir.find_subject(&fallback).filter(|s| !s.suspended))
    };
    let Some(subject) = subject else {
        return fail(
            "access_denied",
            "The consenting user does not exist or is suspended.",
        );
    };

    let code = format!("4/0{}", random_token(70));
    let now = emu.clock.now_ms();
    let offline = fields.get("access_type") == Some("offline");
    {
        let mut oauth = emu.oauth.write();
        oauth.codes.retain(|_, c| c.expires_at_ms > now);
        oauth.codes.insert(
            code.clone(),
            AuthCode {
                client_id: client_id.to_string(),
                redirect_uri: redirect_uri.to_string(),
                code_challenge: challenge.to_string(),
                challenge_method: method.to_string(),
                scopes: scopes.clone(),
                subject: subject.primary_email,
                offline,
                expires_at_ms: now + CODE_TTL_MS,
                used: false,
            },
        );
    }
    let scope = scopes.join(" ");
    let mut pairs = vec![];
    if !state.is_empty() {
        pairs.push(("state", state));
    }
    pairs.push(("code", code.as_str()));
    pairs.push(("scope", scope.as_str()));
    Ok(redirect_with(target, &pairs))
}

// ---------------------------------------------------------------------------------------
// POST /revoke, GET /tokeninfo

async fn revoke(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&headers, uri.query(), &body);
    let Some(token) = fields.get("token") else {
        return invalid_request("Missing required parameter: token").into_response();
    };
    let now = emu.clock.now_ms();
    // A refresh token: the grant and every access token it minted die.
    let grant = emu.oauth.write().refresh_tokens.remove(token);
    if let Some(g) = grant {
        emu.tokens
            .write()
            .revoke_for(&g.client_id, Some(&g.subject));
        return Json(serde_json::json!({})).into_response();
    }
    // An access token: it dies, and so does the refresh token of the same grant.
    let issued = emu
        .tokens
        .read()
        .lookup(token)
        .filter(|t| t.expires_at_ms > now)
        .cloned();
    if let Some(t) = issued {
        emu.tokens.write().revoke(token);
        if let Some(subject) = &t.subject {
            emu.oauth
                .write()
                .refresh_tokens
                .retain(|_, g| !(g.client_id == t.client_id && &g.subject == subject));
        }
        return Json(serde_json::json!({})).into_response();
    }
    OAuthError::new(
        StatusCode::BAD_REQUEST,
        "invalid_token",
        "Token expired or revoked",
    )
    .into_response()
}

/// Google's `tokeninfo` shape (numbers as strings).
async fn tokeninfo(
    State(emu): State<Arc<Emulator>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&headers, uri.query(), &body);
    let now = emu.clock.now_ms();
    let issued = fields
        .get("access_token")
        .and_then(|t| emu.tokens.read().lookup(t).cloned())
        .filter(|t| t.expires_at_ms > now);
    let Some(t) = issued else {
        return OAuthError::new(StatusCode::BAD_REQUEST, "invalid_token", "Invalid Value")
            .into_response();
    };
    let mut info = serde_json::json!({
        "azp": t.client_id,
        "aud": t.client_id,
        "scope": t.scopes.join(" "),
        "exp": (t.expires_at_ms / 1000).to_string(),
        "expires_in": ((t.expires_at_ms - now) / 1000).to_string(),
        "access_type": "online",
    });
    match &t.subject {
        Some(email) => {
            let id = emu
                .directory
                .read()
                .find_subject(email)
                .map(|s| s.id)
                .unwrap_or_default();
            info["sub"] = if id.is_empty() {
                t.client_id.clone().into()
            } else {
                id.into()
            };
            info["email"] = email.clone().into();
            info["email_verified"] = "true".into();
        }
        None => info["sub"] = t.client_id.clone().into(),
    }
    Json(info).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_space_separated_and_known() {
        assert_eq!(
            parse_scopes(&format!("{} {}", scopes::CONTACTS, scopes::CONTACTS)).unwrap(),
            [scopes::CONTACTS]
        );
        assert!(parse_scopes("").is_err());
        assert!(parse_scopes(&format!("{},{}", scopes::CONTACTS, scopes::GMAIL_SEND)).is_err());
        assert!(parse_scopes("https://www.googleapis.com/auth/bogus").is_err());
    }

    #[test]
    fn scope_list_is_sorted_unique_and_covers_every_scope_orgsync_names() {
        let listed: Vec<&str> = GOOGLE_SCOPES
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(listed.len() > 500, "{} scopes", listed.len());
        assert!(
            listed.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        assert!(listed.iter().all(|l| l.trim() == *l && !l.contains(' ')));
        for s in DEFAULT_DELEGATED_SCOPES.iter().chain(&[
            scopes::DIRECTORY_GROUP,
            scopes::MAIL_GOOGLE_COM,
            scopes::OPENID,
            scopes::USERINFO_EMAIL,
            "email",
            "profile",
            // Real scopes of APIs the emulator does not serve.
            "https://www.googleapis.com/auth/gmail.settings.sharing",
            "https://www.googleapis.com/auth/drive",
            "https://www.googleapis.com/auth/admin.directory.rolemanagement",
            "https://www.googleapis.com/auth/calendar.settings.readonly",
            "https://www.googleapis.com/auth/user.birthday.read",
        ]) {
            assert!(is_known_scope(s), "{s}");
        }
        for bogus in [
            "https://www.googleapis.com/auth/bogus",
            "https://www.googleapis.com/auth/drive ",
            "drive",
            "",
        ] {
            assert!(!is_known_scope(bogus), "{bogus:?}");
        }
    }

    #[test]
    fn only_loopback_http_redirects_are_accepted() {
        for ok in [
            "http://127.0.0.1:53682/",
            "http://localhost:8080/",
            "http://[::1]:1/cb",
            "http://localhost",
        ] {
            assert!(loopback_redirect(ok).is_some(), "{ok}");
        }
        for bad in [
            "https://127.0.0.1/",
            "http://example.com/",
            "urn:ietf:wg:oauth:2.0:oob",
            "http://127.0.0.1/#frag",
            "not a url",
        ] {
            assert!(loopback_redirect(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn verifier_format_follows_rfc7636() {
        assert!(valid_verifier(&"a".repeat(43)));
        assert!(!valid_verifier(&"a".repeat(42)));
        assert!(!valid_verifier(&"a".repeat(129)));
        assert!(!valid_verifier(&format!("{}+", "a".repeat(43))));
    }
}
