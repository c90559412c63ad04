//! A person's own login, wired to the configuration: where the token file lives
//! (`--token-file`, `[auth] token_file`, the per-user config directory) and the clients
//! that act as that person or, through the service account, as anyone in the domain.
//! The flow itself (PKCE, the loopback redirect, the token file's format and mode) is the
//! client's [`orgsync_client::installed`], re-exported here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use orgsync_client::installed::*;

/// `{dirs::config_dir()}/orgsync/token.json` (e.g. `~/.config/orgsync/token.json`).
pub fn default_token_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("orgsync").join("token.json"))
}

/// The token file to use: `--token-file`, else `[auth] token_file`, else
/// [`default_token_file`].
pub fn token_file(
    config: &crate::config::Config,
    explicit: Option<&Path>,
) -> Result<PathBuf, LoginError> {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| config.auth.token_file.clone())
        .or_else(default_token_file)
        .ok_or(LoginError::NoClient(
            "this system has no per-user config directory; set [auth] token_file",
        ))
}

/// A client acting as the logged-in person (calls with no subject; `userId=me`).
pub fn personal_client(
    config: &crate::config::Config,
    login: &StoredLogin,
) -> orgsync_client::GoogleClient {
    orgsync_client::GoogleClient::new(
        Arc::new(login.credential()),
        crate::context::client_config(config),
    )
}

/// A client that acts for any user of the domain through the config's service account
/// (domain-wide delegation); callers pass the user as the subject of each call.
pub fn delegated_client(
    config: &crate::config::Config,
) -> Result<orgsync_client::GoogleClient, crate::config::ConfigError> {
    let sa = crate::context::service_account(config)?;
    Ok(orgsync_client::GoogleClient::new(
        Arc::new(sa),
        crate::context::client_config(config),
    ))
}
