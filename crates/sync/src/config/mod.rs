//! Configuration: defaults → `orgsync.toml` → environment, then validated.
//!
//! Layers, lowest first:
//! 1. built-in defaults (every field has one, so an empty file is valid);
//! 2. the TOML file (`--config`, `ORGSYNC_CONFIG`, or `./orgsync.toml` when present);
//! 3. the baseline script's `.env` names (`GCP_SEVERICE_ACCOUNT_KYE`, `YOUR_CUSTOMER_ID`,
//!    `YOUR_ADMIN_EMAIL`), so its users switch in one step; a `.env` file in the current
//!    directory is read for them, as that script did;
//! 4. `ORGSYNC__SECTION__KEY=value` environment variables (atuin's convention), e.g.
//!    `ORGSYNC__GOOGLE__ADMIN_SUBJECT=admin@example.com`. Values parse as TOML scalars when
//!    they can (`true`, `0.3`, `[..]`) and as strings otherwise.
//!
//! Secrets are never inline-only: any `*_file` key (`service_account_key_file`,
//! `webhook_token_file`, ...) names a file to read, and `Debug` of the config redacts
//! inline secrets. Unknown keys are an error naming the key, so a typo never silently
//! falls back to a default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod mail;
mod serve;

pub use mail::{AuthConfig, MailConfig, WelcomeConfig};
pub use serve::{ServeConfig, SinkConfig};

/// Environment variable prefix for overrides.
pub const ENV_PREFIX: &str = "ORGSYNC__";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub google: GoogleConfig,
    pub contacts: ContactsConfig,
    pub users: UsersConfig,
    pub state: StateConfig,
    pub serve: ServeConfig,
    pub mail: MailConfig,
    pub auth: AuthConfig,
}

#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GoogleConfig {
    /// One base URL for every API (the emulator). Unset: Google's real endpoints.
    pub endpoint: Option<String>,
    /// Path of the service-account key JSON (domain-wide delegation).
    pub service_account_key_file: Option<PathBuf>,
    /// The key JSON inline (prefer the file form; redacted in Debug).
    pub service_account_key: Option<String>,
    /// An admin the service account impersonates for Directory reads.
    pub admin_subject: Option<String>,
    /// Customer id, or `my_customer` (all domains of the account).
    pub customer: Option<String>,
    /// A single domain instead of the whole customer.
    pub domain: Option<String>,
    /// Requests per minute per impersonated user and API (pacing to stay under quota).
    pub quotas: QuotaConfig,
}

impl std::fmt::Debug for GoogleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleConfig")
            .field("endpoint", &self.endpoint)
            .field("service_account_key_file", &self.service_account_key_file)
            .field(
                "service_account_key",
                &self.service_account_key.as_ref().map(|_| "<redacted>"),
            )
            .field("admin_subject", &self.admin_subject)
            .field("customer", &self.customer)
            .field("domain", &self.domain)
            .field("quotas", &self.quotas)
            .finish()
    }
}

/// Per-minute request budgets per impersonated user. Google's People quotas are only
/// visible in the Cloud console (reference §3.6), so these are settings, not facts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    pub directory_per_minute: Option<u32>,
    pub people_per_minute: Option<u32>,
    pub gmail_per_minute: Option<u32>,
    pub calendar_per_minute: Option<u32>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            directory_per_minute: Some(2400),
            people_per_minute: Some(90),
            gmail_per_minute: None,
            calendar_per_minute: None,
        }
    }
}

/// Who is selected: by org unit (subtree), group (nested groups resolved), a Directory
/// query, and explicit include/exclude lists. The planner's own type, so the file's
/// `[contacts.sources]` table is exactly what the planner evaluates.
pub type ScopeConfig = orgsync_core::scope::ScopeRules;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LeaverAction {
    /// Delete the managed contact of someone who left the directory or the scope.
    #[default]
    Delete,
    /// Keep it, relabelled as a former colleague.
    Keep,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ContactsConfig {
    /// The contact group (label) orgsync manages in each address book.
    pub group_name: String,
    /// Company name written on contacts (default: the user's organisation name).
    pub company_name: Option<String>,
    pub sources: ScopeConfig,
    pub targets: ScopeConfig,
    pub leavers: LeaverAction,
    pub include_aliases: bool,
    pub include_employee_id: bool,
    pub include_photos: bool,
    /// Stop before writing when a run would delete more than this share of the
    /// contacts orgsync manages (0.2 = 20%).
    pub max_delete_share: f64,
    /// Target users processed in parallel (each user's writes stay sequential).
    pub concurrency: usize,
}

impl Default for ContactsConfig {
    fn default() -> Self {
        ContactsConfig {
            group_name: "Company directory".into(),
            company_name: None,
            sources: ScopeConfig::default(),
            targets: ScopeConfig::default(),
            leavers: LeaverAction::Delete,
            include_aliases: false,
            include_employee_id: false,
            include_photos: false,
            max_delete_share: 0.2,
            concurrency: 8,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Deprovision {
    /// `active = false`; the row and its history are kept.
    #[default]
    Deactivate,
    Delete,
    Keep,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleRuleConfig {
    pub schema: String,
    pub field: String,
    #[serde(default = "json_true")]
    pub equals: serde_json::Value,
    pub role: String,
}

fn json_true() -> serde_json::Value {
    serde_json::Value::Bool(true)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UsersConfig {
    pub scope: ScopeConfig,
    pub deprovision: Deprovision,
    pub roles: Vec<RoleRuleConfig>,
    pub max_deprovision_share: f64,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            scope: ScopeConfig::default(),
            deprovision: Deprovision::Deactivate,
            roles: Vec::new(),
            max_deprovision_share: 0.2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// SQLite file for local state (sync tokens, hashes, app users).
    pub path: PathBuf,
    /// A database URL instead (`sqlite://…` or `postgres://…`); wins over `path`.
    pub url: Option<String>,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            path: PathBuf::from("orgsync-state.db"),
            url: None,
        }
    }
}

impl StateConfig {
    /// The database URL to open.
    pub fn database_url(&self) -> String {
        match &self.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
}

/// Where the config came from, for `--help`-style diagnostics.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
}

/// Load the configuration from `explicit` (or `./orgsync.toml` if present) and the
/// process environment.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    // The baseline script kept its settings in `.env`; read it if present (never fail on it).
    let _ = dotenvy::dotenv();
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_from(explicit, &env)
}

/// [`load`] with an explicit environment (testable without touching the process env).
pub fn load_from(explicit: Option<&Path>, env: &[(String, String)]) -> Result<Loaded, ConfigError> {
    let default_path = PathBuf::from("orgsync.toml");
    let file = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None if default_path.exists() => Some(default_path),
        None => None,
    };
    let mut table = match &file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
        }
        None => toml::Table::new(),
    };
    apply_baseline_env(&mut table, env);
    apply_env_overrides(&mut table, env)?;
    let mut config: Config = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
    // Relative paths in a config file are relative to that file, not to the cwd.
    if let Some(dir) = file.as_ref().and_then(|f| f.parent()) {
        resolve_relative(&mut config, dir);
    }
    config.validate()?;
    Ok(Loaded { config, file })
}

fn resolve_relative(config: &mut Config, dir: &Path) {
    if dir.as_os_str().is_empty() {
        return;
    }
    if let Some(p) = &config.google.service_account_key_file
        && p.is_relative()
    {
        config.google.service_account_key_file = Some(dir.join(p));
    }
    if config.state.path.is_relative() {
        config.state.path = dir.join(&config.state.path);
    }
    for p in [
        &mut config.mail.welcome.template_file,
        &mut config.auth.client_secret_file,
        &mut config.auth.token_file,
    ] {
        if let Some(path) = p.as_ref()
            && path.is_relative()
        {
            *p = Some(dir.join(path));
        }
    }
}

/// The names the baseline Python script used in its `.env` file.
fn apply_baseline_env(table: &mut toml::Table, env: &[(String, String)]) {
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let google = table
        .entry("google")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(google) = google.as_table_mut() else {
        return;
    };
    // The baseline misspelt the key name; accept the correct spelling too.
    for name in ["GCP_SEVERICE_ACCOUNT_KYE", "GCP_SERVICE_ACCOUNT_KEY"] {
        if let Some(v) = get(name) {
            google.insert("service_account_key_file".into(), toml::Value::String(v));
        }
    }
    if let Some(v) = get("YOUR_CUSTOMER_ID") {
        google.insert("customer".into(), toml::Value::String(v));
    }
    if let Some(v) = get("YOUR_ADMIN_EMAIL") {
        google.insert("admin_subject".into(), toml::Value::String(v));
    }
}

/// `ORGSYNC__GOOGLE__ADMIN_SUBJECT=x` sets `[google] admin_subject = "x"`.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: &[(String, String)],
) -> Result<(), ConfigError> {
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(ConfigError::Env {
                name: name.clone(),
                message: "expected ORGSYNC__SECTION__KEY".into(),
            });
        }
        let value = parse_env_value(raw);
        let mut cursor = &mut *table;
        for (i, key) in path.iter().enumerate() {
            if i + 1 == path.len() {
                cursor.insert(key.clone(), value.clone());
            } else {
                let next = cursor
                    .entry(key.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                cursor = next.as_table_mut().ok_or_else(|| ConfigError::Env {
                    name: name.clone(),
                    message: format!("`{key}` is not a section"),
                })?;
            }
        }
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    // A TOML scalar or array if it parses as one (`true`, `8`, `0.3`, `["a","b"]`),
    // otherwise the raw string (emails, paths, URLs).
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let share = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!(
                    "{name} must be between 0 and 1 (a share: 0.2 = 20%), got {v}"
                )))
            }
        };
        share("contacts.max_delete_share", self.contacts.max_delete_share)?;
        share(
            "users.max_deprovision_share",
            self.users.max_deprovision_share,
        )?;
        if self.contacts.concurrency == 0 {
            return Err(ConfigError::Invalid(
                "contacts.concurrency must be at least 1".into(),
            ));
        }
        if self.contacts.group_name.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "contacts.group_name must not be empty: it names the label orgsync manages".into(),
            ));
        }
        self.mail.validate()?;
        self.serve.validate()?;
        if let Some(endpoint) = &self.google.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(format!(
                "google.endpoint must be an http(s) URL, got {endpoint:?}"
            )));
        }
        Ok(())
    }

    /// The service-account key JSON, from the file or inline, with errors that say
    /// which file and what to do.
    pub fn service_account_key_json(&self) -> Result<String, ConfigError> {
        if let Some(inline) = &self.google.service_account_key {
            return Ok(inline.clone());
        }
        let path = self
            .google
            .service_account_key_file
            .as_ref()
            .ok_or_else(|| {
                ConfigError::Invalid(
                "no service-account key: set [google] service_account_key_file in orgsync.toml \
                 (or ORGSYNC__GOOGLE__SERVICE_ACCOUNT_KEY_FILE); `orgsync emulator --data-dir DIR` \
                 writes one for local use"
                    .into(),
            )
            })?;
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })
    }

    /// The admin to impersonate for Directory reads.
    pub fn admin_subject(&self) -> Result<&str, ConfigError> {
        self.google.admin_subject.as_deref().ok_or_else(|| {
            ConfigError::Invalid(
                "no admin subject: set [google] admin_subject to a Workspace admin's email \
                 (the Directory API answers only for admins)"
                    .into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("orgsync.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn empty_config_gets_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "");
        let loaded = load_from(Some(&path), &[]).unwrap();
        assert_eq!(loaded.config.contacts.group_name, "Company directory");
        assert_eq!(loaded.config.contacts.max_delete_share, 0.2);
        assert_eq!(loaded.config.users.deprovision, Deprovision::Deactivate);
    }

    #[test]
    fn env_overrides_file_and_parses_scalars() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "[google]\nadmin_subject = \"file@example.com\"\n[contacts]\nconcurrency = 4\n",
        );
        let loaded = load_from(
            Some(&path),
            &env(&[
                ("ORGSYNC__GOOGLE__ADMIN_SUBJECT", "env@example.com"),
                ("ORGSYNC__CONTACTS__CONCURRENCY", "16"),
                ("ORGSYNC__CONTACTS__SOURCES__ORG_UNITS", "[\"/Sales\"]"),
                ("ORGSYNC__CONTACTS__LEAVERS", "keep"),
            ]),
        )
        .unwrap();
        let c = loaded.config;
        assert_eq!(c.google.admin_subject.as_deref(), Some("env@example.com"));
        assert_eq!(c.contacts.concurrency, 16);
        assert_eq!(c.contacts.sources.org_units, ["/Sales"]);
        assert_eq!(c.contacts.leavers, LeaverAction::Keep);
    }

    #[test]
    fn baseline_dotenv_names_are_read() {
        let loaded = load_from(
            None,
            &env(&[
                ("GCP_SEVERICE_ACCOUNT_KYE", "/keys/sa.json"),
                ("YOUR_CUSTOMER_ID", "C0123"),
                ("YOUR_ADMIN_EMAIL", "boss@example.com"),
            ]),
        )
        .unwrap();
        let g = loaded.config.google;
        assert_eq!(
            g.service_account_key_file.as_deref(),
            Some(Path::new("/keys/sa.json"))
        );
        assert_eq!(g.customer.as_deref(), Some("C0123"));
        assert_eq!(g.admin_subject.as_deref(), Some("boss@example.com"));
    }

    #[test]
    fn unknown_key_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "[contacts]\ngroup_nmae = \"x\"\n");
        let err = load_from(Some(&path), &[]).unwrap_err().to_string();
        assert!(err.contains("group_nmae"), "{err}");
    }

    #[test]
    fn out_of_range_share_is_rejected() {
        let err = load_from(None, &env(&[("ORGSYNC__CONTACTS__MAX_DELETE_SHARE", "20")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_delete_share"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "[google]\nservice_account_key_file = \"sa.json\"\n[state]\npath = \"s.db\"\n",
        );
        let c = load_from(Some(&path), &[]).unwrap().config;
        assert_eq!(
            c.google.service_account_key_file.unwrap(),
            dir.path().join("sa.json")
        );
        assert_eq!(c.state.path, dir.path().join("s.db"));
        let path = write(
            dir.path(),
            "[auth]\nclient_secret_file = \"cs.json\"\ntoken_file = \"/abs/t.json\"\n\
             [mail.welcome]\ntemplate_file = \"welcome.txt\"\n",
        );
        let c = load_from(Some(&path), &[]).unwrap().config;
        assert_eq!(
            c.auth.client_secret_file.unwrap(),
            dir.path().join("cs.json")
        );
        assert_eq!(c.auth.token_file.unwrap(), Path::new("/abs/t.json"));
        assert_eq!(
            c.mail.welcome.template_file.unwrap(),
            dir.path().join("welcome.txt")
        );
    }

    #[test]
    fn debug_redacts_inline_key() {
        let mut c = Config::default();
        c.google.service_account_key = Some("{\"private_key\":\"SECRET\"}".into());
        assert!(!format!("{c:?}").contains("SECRET"));
    }
}
