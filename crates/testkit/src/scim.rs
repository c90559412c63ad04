//! A real, independent SCIM 2.0 server for the SCIM tests: `scim2-server` (PyPI, pinned
//! in `scim/requirements.txt`), an in-memory server with strict RFC 7643/7644
//! validation, as a child process on a free loopback port.
//!
//! The executable is `$ORGSYNC_SCIM_SERVER`, else `scim/.venv/bin/scim2-server`, which
//! `scim/setup.sh` installs on first use (so `cargo test` on a fresh machine needs no
//! manual step). The server's state is read back through its own HTTP API, never through
//! orgsync's client: the tests compare what the server holds with the directory.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

/// The bearer token every test server accepts.
pub const TOKEN: &str = "test-scim-token-0123456789";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The scim2-server executable, installing it on first use.
pub fn executable() -> PathBuf {
    if let Ok(p) = std::env::var("ORGSYNC_SCIM_SERVER") {
        return PathBuf::from(p);
    }
    let root = workspace_root();
    let exe = root.join("scim/.venv/bin/scim2-server");
    if !exe.exists() {
        let status = std::process::Command::new("bash")
            .arg(root.join("scim/setup.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("run scim/setup.sh");
        assert!(
            status.success() && exe.exists(),
            "scim2-server is not installed and `bash scim/setup.sh` failed: the SCIM tests \
             need it (python3 with venv and PyPI access)"
        );
    }
    exe
}

/// A running scim2-server; killed when dropped.
pub struct ScimServer {
    child: Child,
    pub port: u16,
    /// The SCIM base URL (`…/v2/`).
    pub base: String,
    http: reqwest::Client,
    extra_args: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start(port: u16, extra: &[String]) -> Child {
    Command::new(executable())
        .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
        .args(["--bearer-token", TOKEN])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start scim2-server")
}

impl ScimServer {
    /// Start a server with the default configuration (every feature announced).
    pub async fn spawn() -> ScimServer {
        ScimServer::spawn_with(&[]).await
    }

    /// Start a server with extra arguments (`--service-provider-config FILE`…).
    pub async fn spawn_with(extra: &[&str]) -> ScimServer {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let http = reqwest::Client::new();
        for _ in 0..5 {
            let port = free_port();
            let child = start(port, &extra).await;
            let mut server = ScimServer {
                child,
                port,
                base: format!("http://127.0.0.1:{port}/v2/"),
                http: http.clone(),
                extra_args: extra.clone(),
            };
            if server.wait_ready().await {
                return server;
            }
            let _ = server.child.kill().await;
        }
        panic!("scim2-server did not start on a free port in 5 tries");
    }

    async fn wait_ready(&mut self) -> bool {
        for _ in 0..300 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let ok = self
                .http
                .get(format!("{}ServiceProviderConfig", self.base))
                .bearer_auth(TOKEN)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Stop the server and start an empty one on the same port (an app that lost its
    /// data, or was re-installed).
    pub async fn restart_empty(&mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
        self.child = start(self.port, &self.extra_args).await;
        assert!(self.wait_ready().await, "scim2-server did not restart");
    }

    /// Stop it (an app that is down).
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }

    /// Every resource of `Users` or `Groups`, read with the server's own paging.
    pub async fn list(&self, resource: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut start = 1;
        loop {
            let page: Value = self
                .http
                .get(format!("{}{resource}", self.base))
                .query(&[("startIndex", start.to_string()), ("count", "500".into())])
                .bearer_auth(TOKEN)
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("list JSON");
            let items = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().unwrap_or(0) as usize;
            start += items.len();
            let empty = items.is_empty();
            out.extend(items);
            if empty || out.len() >= total {
                return out;
            }
        }
    }

    pub async fn users(&self) -> Vec<Value> {
        self.list("Users").await
    }

    pub async fn groups(&self) -> Vec<Value> {
        self.list("Groups").await
    }

    /// `POST` a resource as another tool (or a person) would: the answer's JSON.
    pub async fn post(&self, resource: &str, body: &Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{resource}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .expect("post");
        assert!(
            resp.status().is_success(),
            "POST {resource}: {}",
            resp.status()
        );
        resp.json().await.expect("post JSON")
    }

    /// `DELETE` a resource by id (someone removing it in the app).
    pub async fn delete(&self, resource: &str, id: &str) {
        let resp = self
            .http
            .delete(format!("{}{resource}/{id}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("delete");
        assert!(resp.status().is_success(), "DELETE: {}", resp.status());
    }
}

/// A proxy in front of a [`ScimServer`] that answers chosen requests itself: the faults
/// scim2-server cannot make (429 with `Retry-After`, 5xx). Only to inject faults; every
/// other request reaches the real server unchanged.
pub struct FaultProxy {
    pub base: String,
    faults: std::sync::Arc<std::sync::Mutex<Faults>>,
    _task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Faults {
    /// Answer the next `remaining` requests with `status` (and `Retry-After: 1` on 429).
    remaining: usize,
    status: u16,
    /// Only requests of this method to a path starting with this (after `/v2`).
    only: Option<(String, String)>,
    /// Every `every`-th request (0: never) is answered with 500.
    every: usize,
    seen: usize,
    injected: usize,
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> FaultProxy {
        use axum::body::Body;
        use axum::extract::Request;
        use axum::response::Response;
        let faults = std::sync::Arc::new(std::sync::Mutex::new(Faults::default()));
        let upstream = upstream.trim_end_matches('/').to_string();
        let http = reqwest::Client::new();
        let f = faults.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let (f, http, upstream) = (f.clone(), http.clone(), upstream.clone());
            async move {
                let fault = {
                    let mut f = f.lock().unwrap();
                    f.seen += 1;
                    let path = req.uri().path().trim_start_matches("/v2");
                    let matches = f.only.as_ref().is_none_or(|(m, p)| {
                        req.method().as_str() == m && path.starts_with(p.as_str())
                    });
                    let fault = if f.remaining > 0 && matches {
                        f.remaining -= 1;
                        Some(f.status)
                    } else if f.every > 0 && f.seen % f.every == 0 {
                        Some(500)
                    } else {
                        None
                    };
                    if fault.is_some() {
                        f.injected += 1;
                    }
                    fault
                };
                if let Some(status) = fault {
                    let mut resp = Response::builder().status(status);
                    if status == 429 {
                        resp = resp.header("retry-after", "1");
                    }
                    return resp
                        .header("content-type", "application/scim+json")
                        .body(Body::from(format!(
                            r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"{status}","detail":"injected"}}"#
                        )))
                        .unwrap();
                }
                let (parts, body) = req.into_parts();
                let path = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().trim_start_matches("/v2"))
                    .unwrap_or("/")
                    .to_string();
                let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let mut out = http.request(parts.method, format!("{upstream}{path}"));
                for (k, v) in &parts.headers {
                    if k != "host" && k != "content-length" {
                        out = out.header(k, v);
                    }
                }
                let answer = out.body(bytes).send().await.unwrap();
                let mut resp = Response::builder().status(answer.status().as_u16());
                for (k, v) in answer.headers() {
                    if k != "content-length" && k != "transfer-encoding" {
                        resp = resp.header(k, v);
                    }
                }
                resp.body(Body::from(answer.bytes().await.unwrap())).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy {
            base: format!("http://127.0.0.1:{port}/v2/"),
            faults,
            _task: task,
        }
    }

    /// Answer the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut f = self.faults.lock().unwrap();
        f.remaining = n;
        f.status = status;
        f.only = None;
    }

    /// Answer the next `n` requests of `method` to a path starting with `path` (e.g.
    /// `POST`, `/Groups`) with `status`: a conflict the server itself would not make.
    pub fn fail_next_matching(&self, n: usize, status: u16, method: &str, path: &str) {
        let mut f = self.faults.lock().unwrap();
        f.remaining = n;
        f.status = status;
        f.only = Some((method.to_string(), path.to_string()));
    }

    /// Answer every `n`-th request with 500 (0 turns it off).
    pub fn fail_every(&self, n: usize) {
        self.faults.lock().unwrap().every = n;
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.faults.lock().unwrap().injected
    }
}
