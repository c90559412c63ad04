//! A person's own login: the installed-app ("Desktop app") OAuth flow on a loopback
//! redirect with PKCE, and the token file it leaves behind.
//!
//! Why this shape (<https://developers.google.com/identity/protocols/oauth2/native-app>,
//! <https://developers.google.com/identity/protocols/oauth2#expiration>):
//! - **Loopback, never out-of-band.** Google shut the paste-a-code (OOB) flow down in
//!   2023 (<https://developers.google.com/identity/protocols/oauth2/resources/oob-migration>);
//!   the only flow left for a desktop client is a redirect to
//!   `http://127.0.0.1:{free port}/`, which a tiny one-shot listener here answers.
//!   `127.0.0.1` rather than `localhost` (RFC 8252 §8.3: `localhost` may resolve to the
//!   other IP family).
//! - **PKCE (S256) and `state`.** The verifier never leaves this process until the code
//!   exchange, so a code intercepted on the way back is useless; a redirect whose `state`
//!   is not ours (another page forging a callback) fails the login.
//! - **The browser is a callback.** [`login`] takes an "open this URL" function: the CLI
//!   opens a browser or prints the URL, tests play the browser over HTTP. Nothing in this
//!   crate ever starts an interactive flow by itself; a dead refresh token is
//!   [`AuthError::ReauthRequired`] ("run `orgsync auth login` again").
//! - **One token exchange.** The code is traded at the token endpoint by the same POST and
//!   error parsing as every other credential ([`crate::credentials`]), once: a code is
//!   single-use, so a retry after a lost answer would only be refused.
//! - **The token file** is Google's `authorized_user` JSON (so google-auth can read it)
//!   plus the account, scopes and revocation URL; written atomically (temp file + rename)
//!   with mode 0600 in a 0700 directory, because a refresh token is a password. The
//!   common Python quickstart pattern, `open('token.json', 'w')`, leaves it
//!   world-readable in the working directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use orgsync_wire::oauth::{ClientSecretFile, InstalledClient, TokenResponse};
use orgsync_wire::scopes;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::credentials::{
    AccessToken, AuthError, RefreshTokenCredential, TokenAnswer, TokenSource, default_http_client,
    post_token_form,
};
use crate::retry::RetryPolicy;

/// Google's revocation and tokeninfo endpoints (used when the client file names Google).
const GOOGLE_REVOKE_URI: &str = "https://oauth2.googleapis.com/revoke";
const GOOGLE_TOKENINFO_URI: &str = "https://oauth2.googleapis.com/tokeninfo";

/// What `orgsync auth login` asks for by default: send mail and manage drafts, read
/// calendars, and the account's email address (so `auth status` can say who it is).
pub const DEFAULT_SCOPES: &[&str] = &[
    scopes::GMAIL_COMPOSE,
    scopes::CALENDAR_READONLY,
    scopes::OPENID,
    scopes::USERINFO_EMAIL,
];

/// How long `login` waits for the browser to come back.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("OAuth client file {path}: {problem}. {hint}")]
    ClientFile {
        path: PathBuf,
        problem: String,
        hint: &'static str,
    },
    #[error("no OAuth client configured: {0}")]
    NoClient(&'static str),
    #[error("token file {path}: {problem}")]
    TokenFile { path: PathBuf, problem: String },
    #[error("not logged in (no token file at {0}): run `orgsync auth login` first")]
    NotLoggedIn(PathBuf),
    #[error("cannot open the loopback listener for the login redirect: {0}")]
    Listener(std::io::Error),
    #[error("sign-in was refused: {error}{}; nothing was saved", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        error: String,
        description: Option<String>,
    },
    #[error(
        "no sign-in came back within {0:?}; open the printed URL in a browser on this \
         machine (or forward the port over SSH) and run `orgsync auth login` again"
    )]
    Timeout(Duration),
    #[error(
        "the token endpoint {token_uri} refused the code (HTTP {status}): {error}: {description}"
    )]
    Exchange {
        token_uri: String,
        status: u16,
        error: String,
        description: String,
    },
    #[error(
        "the token endpoint answered without a refresh token (was access_type=offline \
         dropped?); run `orgsync auth login` again"
    )]
    NoRefreshToken,
    #[error("{what}: {detail}")]
    Http { what: String, detail: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
}

// ---------------------------------------------------------------------------------------
// Client secret file

/// Read a "Desktop app" client file (`{"installed": {...}}`) downloaded from the Cloud
/// console, with an error that names the file and says what to fetch instead.
pub fn read_client_secret(path: &Path) -> Result<InstalledClient, LoginError> {
    const HINT: &str = "Download it from Cloud console → APIs & Services → Credentials → \
                        Create credentials → OAuth client ID → Desktop app";
    let fail = |problem: String| LoginError::ClientFile {
        path: path.to_path_buf(),
        problem,
        hint: HINT,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it ({e})")))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not valid JSON ({e})")))?;
    if value.get("type").and_then(|t| t.as_str()) == Some("service_account") {
        return Err(fail(
            "this is a service-account key, not an OAuth client; service accounts act for \
             users through domain-wide delegation (`--as EMAIL`) and need no login"
                .into(),
        ));
    }
    if value.get("installed").is_none() && value.get("web").is_none() {
        return Err(fail("it has no \"installed\" section".into()));
    }
    let file: ClientSecretFile = serde_json::from_value(value).map_err(|e| fail(format!("{e}")))?;
    let c = file.installed;
    for (name, v) in [
        ("client_id", &c.client_id),
        ("auth_uri", &c.auth_uri),
        ("token_uri", &c.token_uri),
    ] {
        if v.is_empty() {
            return Err(fail(format!("\"{name}\" is empty")));
        }
    }
    Ok(c)
}

/// Expand scope shorthands: `gmail.send` → `https://www.googleapis.com/auth/gmail.send`;
/// full URLs and the OpenID names (`openid`, `email`, `profile`) stay as they are.
/// Accepts space- or comma-separated lists.
pub fn expand_scopes<S: AsRef<str>>(items: &[S]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        for s in item
            .as_ref()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let full = if s.contains("://") || matches!(s, "openid" | "email" | "profile") {
                s.to_string()
            } else {
                format!("https://www.googleapis.com/auth/{s}")
            };
            if !out.contains(&full) {
                out.push(full);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// PKCE and state

/// An RFC 7636 verifier/challenge pair. `Debug` hides the verifier.
#[derive(Clone)]
pub struct Pkce {
    verifier: String,
    challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

impl Pkce {
    /// 96 random bytes → a 128-character base64url verifier (the maximum RFC 7636
    /// allows, as google-auth-oauthlib does); challenge = BASE64URL(SHA-256(verifier)).
    pub fn generate() -> Pkce {
        let mut bytes = [0u8; 96];
        rand::rng().fill(&mut bytes[..]);
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }

    pub fn verifier(&self) -> &str {
        &self.verifier
    }

    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

fn random_state() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------------------
// Stored login

/// The token file: Google's `authorized_user` fields plus what `auth status` shows.
/// `Debug` never prints the refresh token or the client secret.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredLogin {
    /// Always `authorized_user` (google-auth's type name).
    #[serde(rename = "type")]
    pub kind: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub token_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_uri: Option<String>,
    /// The logged-in person, from the id_token or tokeninfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// RFC 3339, when the login happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

impl std::fmt::Debug for StoredLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredLogin")
            .field("client_id", &self.client_id)
            .field("token_uri", &self.token_uri)
            .field("account", &self.account)
            .field("scopes", &self.scopes)
            .field("client_secret", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .finish()
    }
}

impl StoredLogin {
    /// A credential that trades the refresh token for access tokens.
    pub fn credential(&self) -> RefreshTokenCredential {
        RefreshTokenCredential::new(
            self.client_id.clone(),
            self.client_secret.clone(),
            self.refresh_token.clone(),
            self.token_uri.clone(),
        )
    }

    /// Where to revoke: the file's `revoke_uri`, else derived from `token_uri`.
    pub fn revoke_uri(&self) -> String {
        self.revoke_uri
            .clone()
            .unwrap_or_else(|| sibling_endpoint(&self.token_uri, "revoke", GOOGLE_REVOKE_URI))
    }
}

/// Read the token file; a missing file is [`LoginError::NotLoggedIn`].
pub fn load_login(path: &Path) -> Result<StoredLogin, LoginError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LoginError::NotLoggedIn(path.to_path_buf()));
        }
        Err(e) => {
            return Err(LoginError::TokenFile {
                path: path.to_path_buf(),
                problem: format!("cannot read it ({e})"),
            });
        }
    };
    let login: StoredLogin = serde_json::from_str(&text).map_err(|e| LoginError::TokenFile {
        path: path.to_path_buf(),
        problem: format!("not a token file orgsync wrote ({e}); run `orgsync auth login` again"),
    })?;
    if login.refresh_token.is_empty() {
        return Err(LoginError::TokenFile {
            path: path.to_path_buf(),
            problem: "it holds no refresh token; run `orgsync auth login` again".into(),
        });
    }
    Ok(login)
}

/// Write the token file atomically with mode 0600 (its directory is created 0700).
pub fn save_login(path: &Path, login: &StoredLogin) -> Result<(), LoginError> {
    let fail = |problem: String| LoginError::TokenFile {
        path: path.to_path_buf(),
        problem,
    };
    let json = serde_json::to_vec_pretty(login).map_err(|e| fail(e.to_string()))?;
    write_private(path, &json).map_err(|e| fail(format!("cannot write it ({e})")))
}

/// Temp file in the same directory (same filesystem), created 0600, synced, renamed over.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder.create(&dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "token.json".into());
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Google's fixed URL for Google's hosts; otherwise `{origin}/{name}` next to the token
/// endpoint (the emulator serves `/token`, `/revoke` and `/tokeninfo` side by side).
fn sibling_endpoint(token_uri: &str, name: &str, google: &str) -> String {
    match url::Url::parse(token_uri) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            if host.ends_with("googleapis.com") || host.ends_with("google.com") {
                google.to_string()
            } else {
                let mut u = u;
                u.set_path(&format!("/{name}"));
                u.set_query(None);
                u.to_string()
            }
        }
        Err(_) => google.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// The flow

/// What [`login`] needs.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    pub client: InstalledClient,
    pub scopes: Vec<String>,
    /// Suggest this account on the consent page.
    pub login_hint: Option<String>,
    pub timeout: Duration,
}

impl LoginOptions {
    pub fn new(client: InstalledClient) -> Self {
        LoginOptions {
            client,
            scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            login_hint: None,
            timeout: DEFAULT_LOGIN_TIMEOUT,
        }
    }
}

/// A successful login: what to store, and the first access token's lifetime.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    pub login: StoredLogin,
    pub access_token_expires_in: Option<Duration>,
}

/// What the loopback listener heard.
enum Callback {
    Code(String),
    Denied(String, Option<String>),
}

/// Run the installed-app flow: bind `127.0.0.1:0`, hand the authorization URL to
/// `open_url` (a browser, a printed line, or a test playing the browser), wait for the
/// redirect, check `state`, exchange the code with the PKCE verifier, and find out who
/// logged in. Nothing is written; the caller saves [`LoginOutcome::login`].
pub async fn login<F>(options: &LoginOptions, open_url: F) -> Result<LoginOutcome, LoginError>
where
    F: FnOnce(&str),
{
    let http = default_http_client();
    let client = &options.client;
    let pkce = Pkce::generate();
    let state = random_state();

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(LoginError::Listener)?;
    let port = listener.local_addr().map_err(LoginError::Listener)?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/");

    let mut auth_url = url::Url::parse(&client.auth_uri).map_err(|e| LoginError::ClientFile {
        path: PathBuf::from("<client file>"),
        problem: format!("auth_uri {:?} is not a URL ({e})", client.auth_uri),
        hint: "Download the client file again from the Cloud console",
    })?;
    {
        let mut q = auth_url.query_pairs_mut();
        q.append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", &options.scopes.join(" "))
            .append_pair("code_challenge", pkce.challenge())
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("access_type", "offline")
            // A new refresh token every time: an old one may be the one that died.
            .append_pair("prompt", "consent");
        if let Some(hint) = &options.login_hint {
            q.append_pair("login_hint", hint);
        }
    }

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Callback>(1);
    let expected_state = Arc::new(state);
    let app = Router::new().fallback(move |uri: Uri| {
        let tx = tx.clone();
        let expected = expected_state.clone();
        async move { on_redirect(uri, &expected, &tx) }
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await;
    });

    open_url(auth_url.as_str());

    let heard = tokio::time::timeout(options.timeout, rx.recv()).await;
    // Let the browser's page be written, then close the listener for good.
    let _ = stop_tx.send(());
    let mut server = server;
    if tokio::time::timeout(Duration::from_secs(2), &mut server)
        .await
        .is_err()
    {
        server.abort();
    }
    let code = match heard {
        Err(_) | Ok(None) => return Err(LoginError::Timeout(options.timeout)),
        Ok(Some(Callback::Denied(error, description))) => {
            return Err(LoginError::Denied { error, description });
        }
        Ok(Some(Callback::Code(code))) => code,
    };

    let tokens = exchange_code(&http, client, &code, &redirect_uri, pkce.verifier()).await?;
    let refresh_token = tokens
        .refresh_token
        .clone()
        .ok_or(LoginError::NoRefreshToken)?;
    let granted: Vec<String> = match &tokens.scope {
        Some(s) => s.split_whitespace().map(str::to_string).collect(),
        None => options.scopes.clone(),
    };
    let account = match tokens.id_token.as_deref().and_then(email_from_id_token) {
        Some(email) => Some(email),
        None => {
            let uri = sibling_endpoint(&client.token_uri, "tokeninfo", GOOGLE_TOKENINFO_URI);
            tokeninfo_email(&http, &uri, &tokens.access_token).await
        }
    };
    Ok(LoginOutcome {
        login: StoredLogin {
            kind: "authorized_user".into(),
            client_id: client.client_id.clone(),
            client_secret: client.client_secret.clone(),
            refresh_token,
            token_uri: client.token_uri.clone(),
            revoke_uri: client.revoke_uri.clone(),
            account,
            scopes: granted,
            created_at: Some(chrono::Utc::now().to_rfc3339()),
        },
        access_token_expires_in: tokens
            .expires_in
            .map(|s| Duration::from_secs(s.max(0) as u64)),
    })
}

fn on_redirect(
    uri: Uri,
    expected_state: &str,
    tx: &tokio::sync::mpsc::Sender<Callback>,
) -> Response {
    let pairs: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (code, error) = (get("code"), get("error"));
    if code.is_none() && error.is_none() {
        // A favicon or a stray request: not the redirect; keep waiting.
        return (
            StatusCode::NOT_FOUND,
            page("Waiting for the sign-in redirect."),
        )
            .into_response();
    }
    let state_ok = get("state").is_some_and(|s| {
        s.len() == expected_state.len()
            && s.bytes()
                .zip(expected_state.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !state_ok {
        // Not this login's redirect (another page, a stale tab, a forgery): refuse it and
        // keep waiting for the real one until the timeout, so a stray request cannot
        // cancel the login the person is completing.
        tracing::warn!("ignored a sign-in redirect whose `state` is not this login's");
        return (
            StatusCode::BAD_REQUEST,
            page(
                "This sign-in did not come from the orgsync login you started. Nothing was \
                 saved; the login is still waiting for its own sign-in.",
            ),
        )
            .into_response();
    }
    let (status, text, outcome) = if let Some(error) = error {
        (
            StatusCode::OK,
            "Sign-in was not completed. You can close this window.",
            Callback::Denied(error, get("error_description")),
        )
    } else {
        (
            StatusCode::OK,
            "orgsync is now signed in. You can close this window.",
            Callback::Code(code.unwrap_or_default()),
        )
    };
    let _ = tx.try_send(outcome);
    let mut resp = (status, page(text)).into_response();
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

fn page(text: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><meta charset=utf-8><title>orgsync</title><p>{text}</p>"
    ))
}

async fn exchange_code(
    http: &reqwest::Client,
    client: &InstalledClient,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<TokenResponse, LoginError> {
    let form: [(&str, &str); 6] = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", &client.client_id),
        ("client_secret", &client.client_secret),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    match post_token_form(http, &client.token_uri, &form, &RetryPolicy::none()).await {
        Ok(TokenAnswer::Granted(tokens)) => Ok(tokens),
        Ok(TokenAnswer::Refused { status, error }) => Err(LoginError::Exchange {
            token_uri: client.token_uri.clone(),
            status,
            description: error.error_description.unwrap_or_default(),
            error: error.error,
        }),
        Err(AuthError::Unavailable { token_uri, detail }) => Err(LoginError::Http {
            what: format!("token endpoint {token_uri}"),
            detail,
        }),
        Err(e) => Err(e.into()),
    }
}

/// The `email` claim of an id_token. Not signature-checked: it came straight from the
/// token endpoint over TLS, which Google's guide says is enough for this use.
fn email_from_id_token(id_token: &str) -> Option<String> {
    let claims = id_token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(claims.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("email")?.as_str().map(str::to_string)
}

async fn tokeninfo_email(http: &reqwest::Client, uri: &str, access_token: &str) -> Option<String> {
    let resp = http
        .post(uri)
        .form(&[("access_token", access_token)])
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        tracing::warn!(
            status = resp.status().as_u16(),
            "tokeninfo refused; account unknown"
        );
        return None;
    }
    let v: serde_json::Value = resp.json().await.ok()?;
    v.get("email")?.as_str().map(str::to_string)
}

// ---------------------------------------------------------------------------------------
// Status and logout

/// `auth status`: the stored login, checked by trading the refresh token for an access
/// token. A dead refresh token is [`AuthError::ReauthRequired`].
#[derive(Debug, Clone, Serialize)]
pub struct LoginStatus {
    pub token_file: PathBuf,
    pub account: Option<String>,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub logged_in_at: Option<String>,
    /// RFC 3339, when the access token just obtained expires.
    pub access_token_expires_at: Option<String>,
}

pub async fn status(path: &Path) -> Result<LoginStatus, LoginError> {
    let login = load_login(path)?;
    let token = login.credential().token(None, &[]).await?;
    Ok(LoginStatus {
        token_file: path.to_path_buf(),
        account: login.account.clone(),
        client_id: login.client_id.clone(),
        scopes: login.scopes.clone(),
        logged_in_at: login.created_at.clone(),
        access_token_expires_at: wall_expiry(&token),
    })
}

fn wall_expiry(token: &AccessToken) -> Option<String> {
    let left = token
        .expires_at()?
        .saturating_duration_since(std::time::Instant::now());
    let at = chrono::Utc::now() + chrono::Duration::from_std(left).ok()?;
    Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// What `logout` did.
#[derive(Debug, Clone, Serialize)]
pub struct LogoutOutcome {
    pub account: Option<String>,
    /// False when the token was already dead (the file is deleted all the same).
    pub revoked: bool,
    pub token_file: PathBuf,
}

/// Revoke the refresh token at the revocation endpoint, then delete the file. A token
/// the server no longer knows (HTTP 400) still counts as logged out; a network failure
/// keeps the file so that logout can be retried.
pub async fn logout(path: &Path) -> Result<LogoutOutcome, LoginError> {
    let login = load_login(path)?;
    let uri = login.revoke_uri();
    let resp = default_http_client()
        .post(&uri)
        .form(&[("token", login.refresh_token.as_str())])
        .send()
        .await
        .map_err(|e| LoginError::Http {
            what: format!(
                "revocation endpoint {uri} (the token file was kept; try again when online)"
            ),
            detail: e.to_string(),
        })?;
    let status = resp.status();
    let revoked = if status.is_success() {
        true
    } else if status.as_u16() == 400 {
        false
    } else {
        return Err(LoginError::Http {
            what: format!("revocation endpoint {uri} (the token file was kept)"),
            detail: format!("HTTP {status}"),
        });
    };
    std::fs::remove_file(path).map_err(|e| LoginError::TokenFile {
        path: path.to_path_buf(),
        problem: format!("revoked, but cannot delete it ({e})"),
    })?;
    Ok(LogoutOutcome {
        account: login.account,
        revoked,
        token_file: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token endpoint that answers every POST with `status` and `body`, counting them.
    async fn token_endpoint(
        status: u16,
        body: &'static str,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = Router::new().fallback(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/token"), hits)
    }

    fn client_for(token_uri: &str) -> InstalledClient {
        serde_json::from_value(serde_json::json!({
            "client_id": "cid",
            "client_secret": "csecret",
            "auth_uri": "http://127.0.0.1:1/auth",
            "token_uri": token_uri,
        }))
        .unwrap()
    }

    /// The code is traded once through the credentials' exchange: a refusal keeps the
    /// endpoint's own words, and an unavailable endpoint is not asked again (a code is
    /// single-use).
    #[tokio::test]
    async fn the_code_is_traded_once_through_the_shared_exchange() {
        let (uri, hits) = token_endpoint(
            400,
            r#"{"error":"invalid_grant","error_description":"Malformed auth code."}"#,
        )
        .await;
        let http = default_http_client();
        let e = exchange_code(&http, &client_for(&uri), "code", "http://127.0.0.1:2/", "v")
            .await
            .unwrap_err();
        assert!(
            matches!(&e, LoginError::Exchange { status: 400, error, description, .. }
                if error == "invalid_grant" && description == "Malformed auth code."),
            "{e:?}"
        );
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

        let (uri, hits) = token_endpoint(503, r#"{"error":"server_error"}"#).await;
        let e = exchange_code(&http, &client_for(&uri), "code", "http://127.0.0.1:2/", "v")
            .await
            .unwrap_err();
        assert!(
            matches!(&e, LoginError::Http { what, .. } if what.contains(&uri)),
            "{e:?}"
        );
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn pkce_pair_follows_rfc7636() {
        let p = Pkce::generate();
        assert_eq!(p.verifier().len(), 128);
        assert!(
            p.verifier()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        );
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(p.verifier().as_bytes()));
        assert_eq!(p.challenge(), expected);
        assert_eq!(p.challenge().len(), 43);
        assert_ne!(Pkce::generate().verifier(), p.verifier());
        assert!(!format!("{p:?}").contains(p.verifier()));
    }

    #[test]
    fn scope_shorthands_expand() {
        assert_eq!(
            expand_scopes(&[
                "gmail.send, calendar.readonly",
                "openid https://mail.google.com/"
            ]),
            [
                "https://www.googleapis.com/auth/gmail.send",
                "https://www.googleapis.com/auth/calendar.readonly",
                "openid",
                "https://mail.google.com/",
            ]
        );
    }

    #[test]
    fn token_file_is_private_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("token.json");
        let login = StoredLogin {
            kind: "authorized_user".into(),
            client_id: "cid".into(),
            client_secret: "SECRET_CLIENT".into(),
            refresh_token: "SECRET_REFRESH".into(),
            token_uri: "http://127.0.0.1:1/token".into(),
            revoke_uri: None,
            account: Some("a@example.com".into()),
            scopes: vec!["openid".into()],
            created_at: None,
        };
        save_login(&path, &login).unwrap();
        save_login(&path, &login).unwrap(); // overwrite works
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dmode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dmode, 0o700);
        }
        assert_eq!(load_login(&path).unwrap(), login);
        // No temp files left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        assert!(!format!("{login:?}").contains("SECRET"));
        assert_eq!(login.revoke_uri(), "http://127.0.0.1:1/revoke");
        let missing = load_login(&dir.path().join("none.json")).unwrap_err();
        assert!(
            missing.to_string().contains("orgsync auth login"),
            "{missing}"
        );
    }

    #[test]
    fn google_hosts_use_google_endpoints() {
        assert_eq!(
            sibling_endpoint(
                "https://oauth2.googleapis.com/token",
                "revoke",
                GOOGLE_REVOKE_URI
            ),
            GOOGLE_REVOKE_URI
        );
        assert_eq!(
            sibling_endpoint(
                "https://accounts.google.com/o/oauth2/token",
                "tokeninfo",
                GOOGLE_TOKENINFO_URI
            ),
            GOOGLE_TOKENINFO_URI
        );
    }

    #[test]
    fn client_file_errors_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cs.json");
        std::fs::write(&p, r#"{"type":"service_account","client_email":"x"}"#).unwrap();
        let e = read_client_secret(&p).unwrap_err().to_string();
        assert!(
            e.contains("service-account key") && e.contains("cs.json"),
            "{e}"
        );
        std::fs::write(&p, r#"{"other":{}}"#).unwrap();
        let e = read_client_secret(&p).unwrap_err().to_string();
        assert!(e.contains("installed") && e.contains("Desktop app"), "{e}");
    }

    #[test]
    fn id_token_email_is_read() {
        let claims = URL_SAFE_NO_PAD.encode(br#"{"email":"p@example.com","sub":"1"}"#);
        assert_eq!(
            email_from_id_token(&format!("h.{claims}.s")).as_deref(),
            Some("p@example.com")
        );
        assert_eq!(email_from_id_token("garbage"), None);
    }
}
