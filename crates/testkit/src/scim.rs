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
