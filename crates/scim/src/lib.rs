//! A SCIM 2.0 client (RFC 7644) for provisioning: what orgsync needs of any SCIM app, and
//! the quirks of the servers people actually run.
//!
//! - **Paging** by `startIndex`/`count` (RFC 7644 §3.4.2.4) until `totalResults`, at the
//!   server's own page size when it returns fewer than asked: paging that trusts `count`
//!   re-creates users (<https://github.com/awslabs/ssosync/issues/1>).
//! - **PATCH** (RFC 7644 §3.5.2) of only the attributes that differ, with `PUT` for
//!   servers whose `ServiceProviderConfig` says they lack PATCH, and `If-Match` when they
//!   announce ETags (§3.14). Group members change by difference, in chunks: AWS IAM
//!   Identity Center takes at most 100 per request
//!   (<https://docs.aws.amazon.com/singlesignon/latest/developerguide/patchgroup.html>).
//! - **Quirks** ([`Quirks`]), each a documented switch: capitalised op names (Entra's
//!   older gateway), member removal by value instead of a filter path (GitHub refuses
//!   filtered paths), the page size.
//! - **Retries**: 429 and 5xx are retried with backoff, honouring `Retry-After` (§3.12
//!   lets a server send it; ssosync #13 is the bug of not retrying), within the shared
//!   [`RetryPolicy`]'s budget. A create retried after a 5xx may find the first attempt
//!   applied: the caller's 409 handling adopts it.
//! - **Secrets**: the bearer token never reaches `Debug` or a log line.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orgsync_client::retry::RetryPolicy;
use parking_lot::Mutex;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

/// The media type of SCIM messages (RFC 7644 §8.1).
pub const SCIM_JSON: &str = "application/scim+json";
/// The PATCH message schema (RFC 7644 §3.5.2).
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A resource type of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Resource {
    Users,
    Groups,
}

impl Resource {
    pub fn path(self) -> &'static str {
        match self {
            Resource::Users => "Users",
            Resource::Groups => "Groups",
        }
    }
}

/// How a member is removed from a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRemoval {
    /// `{"op":"remove","path":"members[value eq \"ID\"]"}`, RFC 7644 §3.5.2.2's form.
    #[default]
    Filter,
    /// `{"op":"remove","path":"members","value":[{"value":"ID"}]}`, for servers that
    /// refuse filtered paths (GitHub; AWS and Entra accept both).
    Value,
}

/// Known server differences, each a switch in `[[scim]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quirks {
    /// Members added or removed per PATCH request (AWS: at most 100).
    pub members_per_patch: usize,
    pub member_removal: MemberRemoval,
    /// `Replace`/`Add`/`Remove` instead of the lower-case op names.
    pub capitalized_ops: bool,
    /// Resources asked for per listing page (`count`). `None`: the server's announced
    /// `filter.maxResults` (at most 1,000), else 100. A server may always return fewer;
    /// paging follows what it returns.
    pub page_size: Option<usize>,
}

impl Default for Quirks {
    fn default() -> Self {
        Quirks {
            members_per_patch: 100,
            member_removal: MemberRemoval::Filter,
            capitalized_ops: false,
            page_size: None,
        }
    }
}

/// What the server says it supports (`GET /ServiceProviderConfig`, RFC 7643 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    pub patch: bool,
    pub etag: bool,
    pub filter: bool,
    /// The most resources a listing page returns, when announced.
    pub max_results: Option<usize>,
}

impl Default for Features {
    /// A server without a `ServiceProviderConfig`: assume PATCH and filters (every
    /// provisioning server in practice), no ETags.
    fn default() -> Self {
        Features {
            patch: true,
            etag: false,
            filter: true,
            max_results: None,
        }
    }
}

/// What went wrong with a SCIM call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status (RFC 7644 §3.12's body when it sent one).
    #[error("{method} {path}: HTTP {status}{}{}", scim_type.as_ref().map(|t| format!(" ({t})")).unwrap_or_default(), detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        method: String,
        path: String,
        status: u16,
        scim_type: Option<String>,
        detail: Option<String>,
        /// Set when retries ran out on a retryable answer.
        retried: u32,
    },
    /// No answer: connection refused, reset, timed out.
    #[error("{method} {path}: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    /// An answer that is not the JSON SCIM promises.
    #[error("{method} {path}: unreadable answer: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },
    #[error("invalid SCIM base URL {0}")]
    Url(String),
}

impl Error {
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server is unreachable or keeps failing: try again later (exit 1).
    pub fn is_outage(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The token is refused (401, 403): configuration (exit 2).
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }
}

/// The bearer token; `Debug` shows that it is set, never what it is.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into().trim().to_string())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// One SCIM server.
#[derive(Clone)]
pub struct ScimClient {
    http: reqwest::Client,
    base: Url,
    token: Token,
    pub quirks: Quirks,
    pub features: Features,
    retry: RetryPolicy,
    calls: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl std::fmt::Debug for ScimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .field("quirks", &self.quirks)
            .field("features", &self.features)
            .finish()
    }
}

fn encode(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl ScimClient {
    /// A client of the server at `base` (the URL that `Users` and `Groups` are under).
    pub fn new(base: &str, token: Token, quirks: Quirks, timeout: Duration) -> Result<Self, Error> {
        let mut base = Url::parse(base).map_err(|e| Error::Url(format!("{base}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Url(format!("{base}: not http(s)")));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("orgsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Url(e.to_string()))?;
        Ok(ScimClient {
            http,
            base,
            token,
            quirks,
            features: Features::default(),
            retry: RetryPolicy::default(),
            calls: Arc::default(),
        })
    }

    /// Retry within `policy` (tests shorten it).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    /// Calls made, per `METHOD resource`, retries included.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.lock().clone()
    }

    /// Read `ServiceProviderConfig` and keep what it announces. A server without one
    /// (404) keeps [`Features::default`].
    pub async fn discover(&mut self) -> Result<Features, Error> {
        match self
            .send(Method::GET, "ServiceProviderConfig", &[], None, None)
            .await
        {
            Ok(Some(spc)) => {
                let flag = |key: &str| spc.pointer(&format!("/{key}/supported")).map(truthy);
                self.features = Features {
                    patch: flag("patch").unwrap_or(true),
                    etag: flag("etag").unwrap_or(false),
                    filter: flag("filter").unwrap_or(true),
                    max_results: spc
                        .pointer("/filter/maxResults")
                        .and_then(Value::as_u64)
                        .map(|n| n as usize)
                        .filter(|n| *n > 0),
                };
                Ok(self.features)
            }
            Ok(None) => Ok(self.features),
            Err(e) if e.status() == Some(404) => Ok(self.features),
            Err(e) => Err(e),
        }
    }

    /// Every resource of a type, page by page ([`Self::page_size`] asked).
    pub async fn list(&self, resource: Resource) -> Result<Vec<Value>, Error> {
        let mut out: Vec<Value> = Vec::new();
        let mut start = 1usize;
        let count = self.page_size();
        loop {
            let query = [
                ("startIndex", start.to_string()),
                ("count", count.to_string()),
            ];
            let page = self
                .send(Method::GET, resource.path(), &query, None, None)
                .await?
                .unwrap_or(Value::Null);
            let items = page
                .get("Resources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = page
                .get("totalResults")
                .and_then(Value::as_u64)
                .map(|n| n as usize);
            let got = items.len();
            out.extend(items);
            start += got;
            let done = got == 0 || total.is_none_or(|t| start > t);
            if done {
                return Ok(out);
            }
        }
    }

    /// The `count` of a listing page: the configured size, else the server's announced
    /// maximum (at most 1,000), else 100; never above what the server announces.
    pub fn page_size(&self) -> usize {
        let announced = self.features.max_results;
        match self.quirks.page_size {
            Some(n) => announced.map_or(n, |m| n.min(m)),
            None => announced.map_or(100, |m| m.min(1000)),
        }
        .max(1)
    }

    /// `GET /{resource}?filter=attr eq "value"`: the lookup after a 409.
    pub async fn find(
        &self,
        resource: Resource,
        attr: &str,
        value: &str,
    ) -> Result<Vec<Value>, Error> {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        let query = [("filter", format!("{attr} eq \"{escaped}\""))];
        let page = self
            .send(Method::GET, resource.path(), &query, None, None)
            .await?
            .unwrap_or(Value::Null);
        Ok(page
            .get("Resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    pub async fn get(&self, resource: Resource, id: &str) -> Result<Value, Error> {
        let path = format!("{}/{}", resource.path(), encode(id));
        self.send(Method::GET, &path, &[], None, None)
            .await?
            .ok_or_else(|| Error::Decode {
                method: "GET".into(),
                path,
                message: "empty body".into(),
            })
    }

    /// `POST /{resource}`: the created resource.
    pub async fn create(&self, resource: Resource, body: &Value) -> Result<Value, Error> {
        self.send(Method::POST, resource.path(), &[], Some(body), None)
            .await?
            .ok_or_else(|| Error::Decode {
                method: "POST".into(),
                path: resource.path().into(),
                message: "no resource in the answer".into(),
            })
    }

    /// `PATCH /{resource}/{id}` with `operations` (see [`Self::op`]). `version`: the
    /// resource's ETag, sent as `If-Match` when the server supports ETags.
    pub async fn patch(
        &self,
        resource: Resource,
        id: &str,
        operations: Vec<Value>,
        version: Option<&str>,
    ) -> Result<Option<Value>, Error> {
        let body = json!({ "schemas": [PATCH_OP], "Operations": operations });
        let path = format!("{}/{}", resource.path(), encode(id));
        let if_match = version.filter(|_| self.features.etag);
        self.send(Method::PATCH, &path, &[], Some(&body), if_match)
            .await
    }

    /// `PUT /{resource}/{id}`: the whole resource (servers without PATCH).
    pub async fn put(
        &self,
        resource: Resource,
        id: &str,
        body: &Value,
        version: Option<&str>,
    ) -> Result<Option<Value>, Error> {
        let path = format!("{}/{}", resource.path(), encode(id));
        let if_match = version.filter(|_| self.features.etag);
        self.send(Method::PUT, &path, &[], Some(body), if_match)
            .await
    }

    /// `DELETE /{resource}/{id}`; a resource already gone counts as deleted.
    pub async fn delete(&self, resource: Resource, id: &str) -> Result<(), Error> {
        let path = format!("{}/{}", resource.path(), encode(id));
        match self.send(Method::DELETE, &path, &[], None, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One PATCH operation, with the op name as the server wants it.
    pub fn op(&self, op: &str, path: Option<&str>, value: Option<Value>) -> Value {
        let name = if self.quirks.capitalized_ops {
            let mut c = op.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        } else {
            op.to_string()
        };
        let mut o = serde_json::Map::new();
        o.insert("op".into(), Value::String(name));
        if let Some(p) = path {
            o.insert("path".into(), Value::String(p.into()));
        }
        if let Some(v) = value {
            o.insert("value".into(), v);
        }
        Value::Object(o)
    }

    /// The operations that add `members` (SCIM ids), one chunk per request.
    pub fn add_members_ops(&self, members: &[String]) -> Vec<Vec<Value>> {
        members
            .chunks(self.quirks.members_per_patch.max(1))
            .map(|chunk| {
                let values: Vec<Value> = chunk.iter().map(|m| json!({ "value": m })).collect();
                vec![self.op("add", Some("members"), Some(Value::Array(values)))]
            })
            .collect()
    }

    /// The operations that remove `members`, one chunk per request.
    pub fn remove_members_ops(&self, members: &[String]) -> Vec<Vec<Value>> {
        members
            .chunks(self.quirks.members_per_patch.max(1))
            .map(|chunk| match self.quirks.member_removal {
                MemberRemoval::Filter => chunk
                    .iter()
                    .map(|m| {
                        let escaped = m.replace('"', "\\\"");
                        self.op(
                            "remove",
                            Some(&format!("members[value eq \"{escaped}\"]")),
                            None,
                        )
                    })
                    .collect(),
                MemberRemoval::Value => {
                    let values: Vec<Value> = chunk.iter().map(|m| json!({ "value": m })).collect();
                    vec![self.op("remove", Some("members"), Some(Value::Array(values)))]
                }
            })
            .collect()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Option<Value>, Error> {
        let url = self
            .base
            .join(path)
            .map_err(|e| Error::Url(format!("{path}: {e}")))?;
        let resource = path.split('/').next().unwrap_or(path);
        let key = format!("{method} {resource}");
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            *self.calls.lock().entry(key.clone()).or_default() += 1;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(&self.token.0)
                .header(
                    reqwest::header::ACCEPT,
                    format!("{SCIM_JSON}, application/json"),
                )
                .query(query);
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, SCIM_JSON)
                    .body(b.to_string());
            }
            if let Some(v) = if_match {
                req = req.header(reqwest::header::IF_MATCH, v);
            }
            let (retryable, error, retry_after) = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = resp.text().await.map_err(|e| Error::Transport {
                        method: method.to_string(),
                        path: path.to_string(),
                        message: e.to_string(),
                    })?;
                    if status.is_success() {
                        if text.trim().is_empty() || status == StatusCode::NO_CONTENT {
                            return Ok(None);
                        }
                        return serde_json::from_str(&text)
                            .map(Some)
                            .map_err(|e| Error::Decode {
                                method: method.to_string(),
                                path: path.to_string(),
                                message: e.to_string(),
                            });
                    }
                    let parsed: Option<Value> = serde_json::from_str(&text).ok();
                    let field = |k: &str| {
                        parsed
                            .as_ref()
                            .and_then(|p| p.get(k))
                            .and_then(|v| v.as_str().map(str::to_string))
                    };
                    let retryable = status.as_u16() == 429 || status.is_server_error();
                    (
                        retryable,
                        Error::Status {
                            method: method.to_string(),
                            path: path.to_string(),
                            status: status.as_u16(),
                            scim_type: field("scimType"),
                            detail: field("detail").or_else(|| {
                                (!text.trim().is_empty() && parsed.is_none())
                                    .then(|| text.chars().take(200).collect())
                            }),
                            retried: attempt - 1,
                        },
                        retry_after,
                    )
                }
                Err(e) => (
                    true,
                    Error::Transport {
                        method: method.to_string(),
                        path: path.to_string(),
                        message: without_url(&e),
                    },
                    None,
                ),
            };
            if !retryable || !self.retry.allows_another(attempt) {
                return Err(error);
            }
            let delay = self.retry.delay(attempt, retry_after);
            if !self.retry.within_budget(started.elapsed(), delay) {
                return Err(error);
            }
            tracing::debug!(%key, attempt, ?delay, error = %error, "SCIM call retried");
            tokio::time::sleep(delay).await;
        }
    }
}

/// reqwest's message without the URL (it may carry a query with user data).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(quirks: Quirks) -> ScimClient {
        ScimClient::new(
            "http://127.0.0.1:9/scim/v2",
            Token::new("s3cret"),
            quirks,
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn the_token_never_reaches_debug() {
        let c = client(Quirks::default());
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        assert_eq!(c.base(), "http://127.0.0.1:9/scim/v2/");
    }

    #[test]
    fn the_page_size_follows_the_server_unless_configured() {
        let mut c = client(Quirks::default());
        assert_eq!(c.page_size(), 100, "nothing announced");
        c.features.max_results = Some(200);
        assert_eq!(c.page_size(), 200);
        c.features.max_results = Some(5000);
        assert_eq!(c.page_size(), 1000);
        c.quirks.page_size = Some(50);
        assert_eq!(c.page_size(), 50);
        c.features.max_results = Some(20);
        assert_eq!(c.page_size(), 20, "never above the announced maximum");
    }

    #[test]
    fn members_are_patched_in_chunks_the_server_accepts() {
        let members: Vec<String> = (0..250).map(|i| format!("u{i}")).collect();
        let c = client(Quirks::default());
        let adds = c.add_members_ops(&members);
        assert_eq!(adds.len(), 3);
        assert_eq!(adds[0][0]["value"].as_array().unwrap().len(), 100);
        assert_eq!(adds[2][0]["value"].as_array().unwrap().len(), 50);
        let removes = c.remove_members_ops(&members[..2]);
        assert_eq!(removes[0][1]["path"], "members[value eq \"u1\"]");
        let by_value = client(Quirks {
            member_removal: MemberRemoval::Value,
            capitalized_ops: true,
            ..Quirks::default()
        });
        let removes = by_value.remove_members_ops(&members[..2]);
        assert_eq!(removes[0][0]["op"], "Remove");
        assert_eq!(removes[0][0]["path"], "members");
        assert_eq!(removes[0][0]["value"][1]["value"], "u1");
    }
}
