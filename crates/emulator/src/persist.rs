//! Start-up and persistence.
//!
//! [`bootstrap`] either loads a saved org from `--data-dir` or generates one (keys,
//! Directory, People). With a data dir it then writes what orgsync needs to talk to the
//! emulator: `service-account.json`, `client_secret.json` (both 0600: they hold keys) and
//! a ready `orgsync.toml`. Those files are rewritten on *every* start because the port,
//! hence `token_uri`, may change; the keys themselves persist, so a key file copied
//! elsewhere keeps working.
//!
//! [`save`] writes `emulator-state.json` atomically (temp file, fsync, rename), so a
//! crash mid-save leaves the previous state intact. The state file also holds the
//! private key, so it is 0600 too.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::auth::TokenRegistry;
use crate::calendar::CalendarState;
use crate::directory::DirectoryState;
use crate::gmail::GmailState;
use crate::oauth::OAuthState;
use crate::people::PeopleSnapshot;
use crate::state::Emulator;

pub const STATE_FILE: &str = "emulator-state.json";
pub const SERVICE_ACCOUNT_FILE: &str = "service-account.json";
pub const CLIENT_SECRET_FILE: &str = "client_secret.json";
pub const ORGSYNC_TOML: &str = "orgsync.toml";
/// Where `orgsync auth login` with the written `orgsync.toml` keeps its token (0600).
pub const TOKEN_FILE: &str = "token.json";

/// Bumped when the saved shape changes incompatibly.
const STATE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot listen on {0}: {1} (is another emulator running? pick another --listen)")]
    Bind(SocketAddr, std::io::Error),
    #[error("data dir {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

#[derive(Serialize)]
struct SavedRef<'a> {
    version: u32,
    domain: &'a str,
    clock_offset_ms: i64,
    oauth: &'a OAuthState,
    tokens: &'a TokenRegistry,
    directory: &'a DirectoryState,
    people: PeopleSnapshot,
    gmail: &'a GmailState,
    calendar: &'a CalendarState,
}

#[derive(Deserialize)]
struct Saved {
    version: u32,
    domain: String,
    #[serde(default)]
    clock_offset_ms: i64,
    oauth: OAuthState,
    #[serde(default)]
    tokens: TokenRegistry,
    #[serde(default)]
    directory: DirectoryState,
    #[serde(default)]
    people: PeopleSnapshot,
    #[serde(default)]
    gmail: GmailState,
    #[serde(default)]
    calendar: CalendarState,
}

fn data_dir_err(path: &Path) -> impl FnOnce(std::io::Error) -> BootError + '_ {
    move |source| BootError::DataDir {
        path: path.to_path_buf(),
        source,
    }
}

/// Load or generate the org; with a data dir, write the key files and `orgsync.toml`.
pub fn bootstrap(emu: &Emulator) -> Result<(), BootError> {
    let dir = match &emu.config.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(data_dir_err(d))?;
            Some(std::path::absolute(d).map_err(data_dir_err(d))?)
        }
        None => None,
    };
    let loaded = match &dir {
        Some(d) => load(emu, d)?,
        None => false,
    };
    if !loaded {
        *emu.oauth.write() = OAuthState::generate()
            .map_err(|e| BootError::Other(format!("generating keys: {e}")))?;
        crate::directory::seed(emu);
        crate::people::seed(emu);
    }
    if let Some(d) = &dir {
        write_client_files(emu, d)?;
        if !loaded {
            save(emu).map_err(BootError::Other)?;
        }
    }
    Ok(())
}

/// Restore a saved state; false when there is none.
fn load(emu: &Emulator, dir: &Path) -> Result<bool, BootError> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(data_dir_err(&path)(e)),
    };
    let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| {
        BootError::Other(format!(
            "{}: unreadable saved state ({e}); move it away to start with a fresh org",
            path.display()
        ))
    })?;
    if saved.version != STATE_VERSION {
        return Err(BootError::Other(format!(
            "{}: saved by an incompatible emulator (state version {}, expected {STATE_VERSION}); move it away to start with a fresh org",
            path.display(),
            saved.version
        )));
    }
    if saved.oauth.service_accounts.is_empty() {
        return Err(BootError::Other(format!(
            "{}: saved state has no service account; move it away to start with a fresh org",
            path.display()
        )));
    }
    if saved.domain != emu.config.domain {
        tracing::warn!(
            saved = %saved.domain,
            configured = %emu.config.domain,
            "the data dir holds an org of another domain; keeping the saved one"
        );
    }
    *emu.oauth.write() = saved.oauth;
    *emu.tokens.write() = saved.tokens;
    *emu.directory.write() = saved.directory;
    emu.people.restore(saved.people);
    *emu.gmail.write() = saved.gmail;
    *emu.calendar.write() = saved.calendar;
    emu.clock
        .advance(chrono::Duration::milliseconds(saved.clock_offset_ms) - emu.clock.offset());
    tracing::info!(path = %path.display(), "loaded saved emulator state");
    Ok(true)
}

/// Write `service-account.json`, `client_secret.json` and `orgsync.toml` for the
/// current base URL.
pub fn write_client_files(emu: &Emulator, dir: &Path) -> Result<(), BootError> {
    let base = emu.base_url();
    let (key, client) = {
        let oauth = emu.oauth.read();
        (
            oauth.service_account_key(&base),
            oauth.client_secret_file(&base),
        )
    };
    if let Some(key) = key {
        let path = dir.join(SERVICE_ACCOUNT_FILE);
        write_atomic(&path, pretty(&key)?.as_bytes(), true).map_err(data_dir_err(&path))?;
    }
    if let Some(client) = client {
        let path = dir.join(CLIENT_SECRET_FILE);
        write_atomic(&path, pretty(&client)?.as_bytes(), true).map_err(data_dir_err(&path))?;
    }
    let path = dir.join(ORGSYNC_TOML);
    write_atomic(&path, orgsync_toml(emu, dir).as_bytes(), false).map_err(data_dir_err(&path))?;
    Ok(())
}

fn pretty<T: Serialize>(value: &T) -> Result<String, BootError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| BootError::Other(e.to_string()))
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `orgsync.toml` that points orgsync at this emulator.
pub fn orgsync_toml(emu: &Emulator, dir: &Path) -> String {
    let domain = &emu.config.domain;
    let path = |name: &str| toml_str(&dir.join(name).display().to_string());
    // `orgsync auth login` against this emulator: its desktop client, and a token file
    // of its own (never the real login in the user's config directory).
    let has_client = emu
        .oauth
        .read()
        .client_secret_file(&emu.base_url())
        .is_some();
    let auth = if has_client {
        format!(
            "[auth]\n\
             client_secret_file = {secret}\n\
             token_file = {token}\n",
            secret = path(CLIENT_SECRET_FILE),
            token = path(TOKEN_FILE),
        )
    } else {
        String::new()
    };
    format!(
        "# Written by `orgsync emulator`: points orgsync at this emulator.\n\
         [google]\n\
         endpoint = {endpoint}\n\
         service_account_key_file = {key}\n\
         admin_subject = {admin}\n\
         customer = \"my_customer\"\n\
         domain = {domain}\n\
         [state]\n\
         path = {state}\n\
         {auth}",
        endpoint = toml_str(&emu.base_url()),
        key = path(SERVICE_ACCOUNT_FILE),
        admin = toml_str(&format!("admin@{domain}")),
        domain = toml_str(domain),
        state = path("orgsync-state.db"),
    )
}

/// Write via a temp file in the same directory, fsync, rename. `private` → mode 0600.
fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let tmp: PathBuf = {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".tmp{}", std::process::id()));
        path.with_file_name(name)
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        #[cfg(unix)]
        {
            // `mode` only applies to new files; a leftover temp file keeps its mode.
            use std::os::unix::fs::PermissionsExt as _;
            f.set_permissions(std::fs::Permissions::from_mode(if private {
                0o600
            } else {
                0o644
            }))?;
        }
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

/// The whole state as the JSON [`save`] writes.
fn serialize_state(emu: &Emulator) -> Result<Vec<u8>, String> {
    let people = emu.people.snapshot();
    let oauth = emu.oauth.read();
    let tokens = emu.tokens.read();
    let directory = emu.directory.read();
    let gmail = emu.gmail.read();
    let calendar = emu.calendar.read();
    serde_json::to_vec(&SavedRef {
        version: STATE_VERSION,
        domain: &emu.config.domain,
        clock_offset_ms: emu.clock.offset().num_milliseconds(),
        oauth: &oauth,
        tokens: &tokens,
        directory: &directory,
        people,
        gmail: &gmail,
        calendar: &calendar,
    })
    .map_err(|e| format!("serializing emulator state: {e}"))
}

/// Persist the state into the data dir (no-op without one).
pub fn save(emu: &Emulator) -> Result<(), String> {
    let Some(dir) = &emu.config.data_dir else {
        return Ok(());
    };
    let bytes = serialize_state(emu)?;
    let path = dir.join(STATE_FILE);
    write_atomic(&path, &bytes, true).map_err(|e| format!("{}: {e}", path.display()))
}

/// Save every `every` while the state changes (compared by content), until the
/// emulator is dropped. Optional: [`crate::EmulatorHandle::shutdown`] saves anyway.
pub fn spawn_autosave(
    emu: Arc<Emulator>,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(&emu);
    drop(emu);
    tokio::spawn(async move {
        let mut last: Option<u64> = None;
        loop {
            tokio::time::sleep(every).await;
            let Some(emu) = weak.upgrade() else { return };
            if emu.config.data_dir.is_none() {
                return;
            }
            let Ok(bytes) = serialize_state(&emu) else {
                continue;
            };
            let digest = {
                use std::hash::{Hash as _, Hasher as _};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                h.finish()
            };
            if last != Some(digest) {
                match save(&emu) {
                    Ok(()) => last = Some(digest),
                    Err(e) => tracing::warn!(error = %e, "autosave failed"),
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
    }

    #[cfg(unix)]
    #[test]
    fn atomic_write_is_private_and_replaces() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        write_atomic(&p, b"one", true).unwrap();
        write_atomic(&p, b"two", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
