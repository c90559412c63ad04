//! The `orgsync` binary as a process, with a configuration directory for it. The binary's
//! path is the caller's: only the `orgsync` crate's own tests know it
//! (`env!("CARGO_BIN_EXE_orgsync")`).

use std::path::{Path, PathBuf};
use std::process::Output;

use orgsync_emulator::EmulatorHandle;
use serde_json::Value;

/// Runs one binary; every run is isolated from the developer's own configuration and
/// login (`ORGSYNC_CONFIG` and `ORGSYNC_TOKEN_FILE` are removed from its environment).
#[derive(Debug, Clone, Copy)]
pub struct Cli {
    bin: &'static str,
}

impl Cli {
    pub const fn new(bin: &'static str) -> Cli {
        Cli { bin }
    }

    /// The binary, ready for arguments, killed when the handle is dropped.
    pub fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.bin);
        cmd.env_remove("ORGSYNC_CONFIG")
            .env_remove("ORGSYNC_TOKEN_FILE")
            .kill_on_drop(true);
        cmd
    }

    /// `orgsync --config <config>`, ready for more arguments.
    pub fn with_config(&self, config: &Path) -> tokio::process::Command {
        let mut cmd = self.command();
        cmd.arg("--config").arg(config);
        cmd
    }

    /// `orgsync --config <config> <args>` to completion.
    pub async fn run(&self, config: &Path, args: &[&str]) -> Out {
        self.run_env(config, args, &[]).await
    }

    /// [`Cli::run`] with `vars` set in the binary's environment.
    pub async fn run_env(&self, config: &Path, args: &[&str], vars: &[(&str, &str)]) -> Out {
        let out = self
            .with_config(config)
            .args(args)
            .envs(vars.iter().copied())
            .output()
            .await
            .expect("binary runs");
        Out::from(out)
    }
}

/// A finished run: exit code (-1 when killed by a signal) and its output as text.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Stdout as JSON; panics with both streams when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

impl From<Output> for Out {
    fn from(out: Output) -> Out {
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A temporary directory with the emulator's service-account key (`sa.json`) and an
/// `orgsync.toml` whose `[google]` section points at the emulator with its admin as the
/// subject. Relative paths in the file are relative to the directory.
pub struct ConfigDir {
    pub dir: tempfile::TempDir,
    /// `orgsync.toml`.
    pub config: PathBuf,
}

impl ConfigDir {
    /// `extra` is TOML appended after `[google]` (more sections).
    pub fn new(h: &EmulatorHandle, extra: &str) -> ConfigDir {
        let dir = tempfile::tempdir().expect("temporary directory");
        let key = orgsync_emulator::oauth::service_account_key(&h.emulator).expect("key");
        std::fs::write(
            dir.path().join("sa.json"),
            serde_json::to_string(&key).expect("key as JSON"),
        )
        .expect("write sa.json");
        let config = dir.path().join("orgsync.toml");
        std::fs::write(
            &config,
            format!(
                "[google]\nendpoint = \"{}\"\nservice_account_key_file = \"sa.json\"\n\
                 admin_subject = \"{}\"\n{extra}",
                h.base_url,
                h.emulator.config.admin_email()
            ),
        )
        .expect("write orgsync.toml");
        ConfigDir { dir, config }
    }

    /// Also the emulator's installed-app client as `client_secret.json`, for `auth login`.
    pub fn with_client_secret(self, h: &EmulatorHandle) -> ConfigDir {
        let secret = orgsync_emulator::oauth::client_secret_file(&h.emulator).expect("client");
        std::fs::write(
            self.path().join("client_secret.json"),
            serde_json::to_string(&secret).expect("client as JSON"),
        )
        .expect("write client_secret.json");
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
