//! Configuration: defaults → `orgsync.toml` → environment, then validated.
//!
//! Layers, lowest first:
//! 1. built-in defaults (every field has one, so an empty file is valid);
//! 2. the TOML file (`--config`, `ORGSYNC_CONFIG`, or `./orgsync.toml` when present);
//! 3. the `.env` names of the baseline script, the Python tool orgsync replaces
//!    (<https://github.com/sheep52031/GWS_direactory_contacts>): `GCP_SEVERICE_ACCOUNT_KYE`,
//!    `YOUR_CUSTOMER_ID`, `YOUR_ADMIN_EMAIL`, so its users switch in one step; a `.env`
//!    file in the current directory is read for them, as that script did;
//! 4. `ORGSYNC__SECTION__KEY=value` environment variables (atuin's convention), e.g.
//!    `ORGSYNC__GOOGLE__ADMIN_SUBJECT=admin@example.com`. Values parse as TOML scalars when
//!    they can (`true`, `0.3`, `[..]`) and as strings otherwise.
//!
//! Secrets are never inline-only: any `*_file` key (`service_account_key_file`,
//! `webhook_token_file`, ...) names a file to read, and `Debug` of the config redacts
//! inline secrets. Unknown keys are an error naming the key, so a typo never silently
//! falls back to a default.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod lists;
mod mail;
mod scim;
mod serve;

pub use lists::{ListSource, SharedListConfig};
pub use mail::{AuthConfig, MailConfig, WelcomeConfig};
pub use scim::{ScimAttributeConfig, ScimTargetConfig};
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
    /// `[[scim]]`: SCIM 2.0 applications to provision.
    pub scim: Vec<ScimTargetConfig>,
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
    /// How long one Google call keeps being retried (429, 5xx, dropped connections) before
    /// the command reports an outage (exit 1). Unset: 300 s.
    pub retry_budget_secs: Option<u64>,
    /// The environment variable that gave the key (file or inline), for messages; set by
    /// [`load_from`], `None` when the config file did.
    #[serde(skip)]
    pub key_setting: Option<String>,
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
            .field("retry_budget_secs", &self.retry_budget_secs)
            .field("key_setting", &self.key_setting)
            .finish()
    }
}

/// The quota limits calls are paced to, as the Cloud console's Quotas page shows them
/// (APIs & Services → the API → Quotas). People publishes no figures, so the defaults
/// are assumptions (the `google` table in `orgsync_wire::quota`); enter your project's
/// numbers here when they differ. Keys are metric ids with `_`: `people_read`,
/// `people_write`, `people_delete_group_write`, `people_group_read`,
/// `people_photo_write`, `people_daily_write`, `directory_query`, `gmail_units`,
/// `calendar_query`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Pace calls to the limits (default true). `false` sends as fast as answers come:
    /// only for an emulator without quotas.
    pub pace: bool,
    /// The length of a quota minute in seconds (60). Shorter only against an emulator
    /// started with the same `--quota-minute-secs`.
    pub minute_secs: f64,
    /// Per-minute limits per user, by metric, over the defaults.
    pub per_user: BTreeMap<String, u64>,
    /// Per-minute limits for the whole Cloud project, by metric, over the defaults.
    pub per_project: BTreeMap<String, u64>,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            pace: true,
            minute_secs: 60.0,
            per_user: BTreeMap::new(),
            per_project: BTreeMap::new(),
        }
    }
}

impl QuotaConfig {
    /// The metric a `[google.quotas.per_user]` key names (`people_write` → people.write).
    pub fn metric(key: &str) -> Option<orgsync_wire::quota::Metric> {
        orgsync_wire::quota::METRICS
            .iter()
            .find(|i| i.id.replace('.', "_") == key)
            .map(|i| i.metric)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.minute_secs.is_finite() && self.minute_secs > 0.0) {
            return Err(ConfigError::Invalid(format!(
                "google.quotas.minute_secs = {} is not a length of time: leave it out (a \
                 quota minute is 60 s), or match `orgsync emulator --quota-minute-secs`",
                self.minute_secs
            )));
        }
        for (table, map) in [
            ("per_user", &self.per_user),
            ("per_project", &self.per_project),
        ] {
            for (key, value) in map {
                if Self::metric(key).is_none() {
                    let known: Vec<String> = orgsync_wire::quota::METRICS
                        .iter()
                        .map(|i| i.id.replace('.', "_"))
                        .collect();
                    return Err(ConfigError::Invalid(format!(
                        "google.quotas.{table}.{key}: no such quota metric (known: {})",
                        known.join(", ")
                    )));
                }
                if *value == 0 {
                    return Err(ConfigError::Invalid(format!(
                        "google.quotas.{table}.{key} = 0 would allow no requests at all: set \
                         the per-minute limit shown in the Cloud console (APIs & Services → \
                         Quotas), or leave it out for the default"
                    )));
                }
            }
        }
        Ok(())
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
    /// `as_is` (default) or `e164`: every number in one international form.
    pub phone_format: orgsync_core::contacts::PhoneFormat,
    /// ISO 3166 region for numbers written without a country code (`GB`, `DE`…).
    pub phone_region: Option<String>,
    /// `[[contacts.custom_fields]]`: Directory custom-schema fields copied into contacts.
    pub custom_fields: Vec<orgsync_core::contacts::CustomField>,
    /// `skip` (default): no copy of a colleague the person already saved themselves (a
    /// personal contact with the colleague's email); `add`: copy anyway.
    pub personal_duplicates: orgsync_core::contacts::PersonalDuplicates,
    /// `department` or `org_unit`: each colleague also goes in a label such as
    /// "Company directory · Engineering". Unset: the main label only.
    pub label_by: Option<orgsync_core::contacts::LabelBy>,
    /// `[[contacts.shared_lists]]`: suppliers, rooms and other non-colleagues.
    pub shared_lists: Vec<SharedListConfig>,
    /// Stop before writing when a run would delete more than this share of the
    /// contacts orgsync manages (0.2 = 20%).
    pub max_delete_share: f64,
    /// Target users processed in parallel, fixed (each user's writes stay sequential).
    /// Unset: as many as fill the project's quota (per-user quotas are independent, so
    /// the project budget over the per-user one), at most `max_concurrency`.
    pub concurrency: Option<usize>,
    /// The most target users processed in parallel when `concurrency` is unset: each
    /// in flight holds one address book in memory.
    pub max_concurrency: usize,
}

impl Default for ContactsConfig {
    fn default() -> Self {
        ContactsConfig {
            group_name: "Company directory".into(),
            company_name: None,
            sources: ScopeConfig::default(),
            targets: default_targets(),
            leavers: LeaverAction::Delete,
            include_aliases: false,
            include_employee_id: false,
            include_photos: false,
            phone_format: Default::default(),
            phone_region: None,
            custom_fields: Vec::new(),
            personal_duplicates: orgsync_core::contacts::PersonalDuplicates::Skip,
            label_by: None,
            shared_lists: Vec::new(),
            max_delete_share: 0.2,
            concurrency: None,
            max_concurrency: 128,
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
    /// A value in the config file that does not fit its setting (secrets redacted).
    #[error("config file {path}: {message}")]
    FileValue { path: PathBuf, message: String },
    /// The service-account key was read but is not usable; the message names where it
    /// came from and never quotes it.
    #[error("{0}")]
    Key(String),
    /// The service-account key (a file or an inline value) cannot be read; never
    /// carries the key's content.
    #[error(
        "cannot read the service-account key file {path} (from {setting}): {problem}. Check \
         the path, or download a JSON key for the service account (Cloud console → IAM & \
         Admin → Service accounts → Keys → Add key → JSON)"
    )]
    KeyFile {
        path: PathBuf,
        setting: String,
        problem: String,
    },
}

/// Where the config came from, for `--help`-style diagnostics.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
    /// Problems that did not stop the load (a `.env` line that is not `NAME=VALUE`), for
    /// the caller to show; they never quote a value.
    pub warnings: Vec<String>,
}

/// Where the service-account key is: a file, or the key JSON itself in a setting.
#[derive(Debug, Clone, Copy)]
pub enum KeySource<'a> {
    File {
        path: &'a Path,
        /// The setting that named it, for messages.
        setting: &'a str,
    },
    Inline {
        json: &'a str,
        setting: &'a str,
    },
}

impl KeySource<'_> {
    /// The setting the key came from.
    pub fn setting(&self) -> &str {
        match self {
            KeySource::File { setting, .. } | KeySource::Inline { setting, .. } => setting,
        }
    }
}

/// An I/O error as a short reason ("no such file", "permission denied").
fn io_problem(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Load the configuration from `explicit` (or `./orgsync.toml` if present) and the
/// process environment, plus `./.env` (the process environment wins over it).
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    let dotenv = read_dotenv(Path::new(".env"));
    for (name, value) in dotenv.vars {
        if !env.iter().any(|(k, _)| *k == name) {
            env.push((name, value));
        }
    }
    let mut loaded = load_from(explicit, &env)?;
    loaded.warnings.splice(0..0, dotenv.warnings);
    Ok(loaded)
}

/// What a `.env` file holds: its variables, and a warning per line that could not be read.
#[derive(Debug, Default)]
pub struct DotEnv {
    pub vars: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// Read a `.env` file the way the baseline script's python-dotenv did: a line that is not
/// `NAME=VALUE` is skipped with a warning and every other line is still read (dotenvy's
/// own loader stops at the first bad line). The first definition of a name wins. A missing
/// file is no `.env`. Warnings name the line, never its text (it may hold a secret).
pub fn read_dotenv(path: &Path) -> DotEnv {
    let mut out = DotEnv::default();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((name, value)) => {
                if !out.vars.iter().any(|(k, _)| *k == name) {
                    out.vars.push((name, value));
                }
            }
            Err(dotenvy::Error::LineParse(line, _)) => {
                let first = line.lines().next().unwrap_or("");
                let where_ = text
                    .lines()
                    .position(|l| l == first)
                    .map(|i| format!("line {}", i + 1))
                    .unwrap_or_else(|| "a line".into());
                out.warnings.push(format!(
                    "{}: {where_} is not NAME=VALUE and was skipped (the other lines were read)",
                    path.display()
                ));
            }
            Err(e) => {
                out.warnings
                    .push(format!("{}: cannot be read ({e}); ignored", path.display()));
                break;
            }
        }
    }
    out
}

/// Settings that name files. In the config file a relative path is relative to that
/// file; from the environment it is relative to the working directory, as a shell user
/// (and the baseline script, for `GCP_SEVERICE_ACCOUNT_KYE`) expects.
const PATH_KEYS: &[&[&str]] = &[
    &["google", "service_account_key_file"],
    &["state", "path"],
    &["mail", "welcome", "template_file"],
    &["auth", "client_secret_file"],
    &["auth", "token_file"],
    &["serve", "sink", "secret_file"],
];

/// Whether a setting named `key` holds a secret: its value never appears in an error.
/// `*_file` settings are paths, not secrets.
fn is_secret_key(key: &str) -> bool {
    !key.ends_with("_file")
        && [
            "secret",
            "token",
            "password",
            "private_key",
            "service_account_key",
        ]
        .iter()
        .any(|s| key.contains(s))
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
            let table = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: syntax_error_message(&text, &e),
                })?;
            let mut table = table;
            if let Some(dir) = path.parent() {
                resolve_relative(&mut table, dir);
            }
            // The file's own values are checked before the environment is layered on, so
            // an error names the file.
            let mut redactor = Redactor::default();
            redactor.collect(&table);
            deserialize(&table).map_err(|e| ConfigError::FileValue {
                path: path.clone(),
                message: redactor.scrub(&e.to_string()).trim_end().replace('\n', " "),
            })?;
            table
        }
        None => toml::Table::new(),
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let baseline_key = apply_baseline_env(&mut table, env, &cwd);
    let env_key = apply_env_overrides(&mut table, env, &cwd)?;
    let mut redactor = Redactor::default();
    redactor.collect(&table);
    let mut config: Config =
        deserialize(&table).map_err(|e| ConfigError::Invalid(redactor.scrub(&e.to_string())))?;
    config.google.key_setting = env_key.or(baseline_key);
    config.validate()?;
    Ok(Loaded {
        config,
        file,
        warnings: Vec::new(),
    })
}

fn deserialize(table: &toml::Table) -> Result<Config, toml::de::Error> {
    let mut table = table.clone();
    serve_contacts_default(&mut table);
    target_scope_defaults(&mut table);
    toml::Value::Table(table).try_into()
}

/// `[serve] contacts` defaults to whether the contacts job is configured at all (a
/// `[contacts]` table, or an `ORGSYNC__CONTACTS__…` override): a daemon started for the
/// users job alone never starts writing address books.
fn serve_contacts_default(table: &mut toml::Table) {
    let configured = table.contains_key("contacts");
    let serve = table
        .entry("serve")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(serve) = serve.as_table_mut() {
        serve
            .entry("contacts")
            .or_insert(toml::Value::Boolean(configured));
    }
}

/// Who receives contacts by default: everyone active, **including** people hidden from
/// the Global Address List. Hiding someone keeps them out of other people's address
/// books (the sources' default); it must not empty their own.
fn default_targets() -> ScopeConfig {
    ScopeConfig {
        include_hidden_from_gal: true,
        ..ScopeConfig::default()
    }
}

/// Sources and targets share one type, whose default leaves hidden people out; a
/// `[contacts.targets]` table that does not say otherwise gets the targets' default.
fn target_scope_defaults(table: &mut toml::Table) {
    let contacts = table
        .entry("contacts")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(contacts) = contacts.as_table_mut() else {
        return; // not a table: deserialising reports it
    };
    let targets = contacts
        .entry("targets")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(targets) = targets.as_table_mut() {
        targets
            .entry("include_hidden_from_gal")
            .or_insert(toml::Value::Boolean(true));
    }
}

/// A TOML syntax error as "line L, column C: what", without the source line toml would
/// quote: that line may hold a key or a secret.
fn syntax_error_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
    }
}

/// Removes the values of secret settings from error text (serde and toml quote the
/// offending value: `invalid type: integer `123…`, expected a string`).
#[derive(Default)]
struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    fn collect(&mut self, table: &toml::Table) {
        for (key, value) in table {
            match value {
                toml::Value::Table(t) => self.collect(t),
                v if is_secret_key(key) => self.add_value(v),
                _ => {}
            }
        }
    }

    fn add_value(&mut self, value: &toml::Value) {
        match value {
            toml::Value::String(s) => self.add(s),
            toml::Value::Array(items) => items.iter().for_each(|v| self.add_value(v)),
            toml::Value::Table(t) => t.values().for_each(|v| self.add_value(v)),
            other => self.add(&other.to_string()),
        }
    }

    fn add(&mut self, secret: &str) {
        if !secret.is_empty() {
            self.secrets.push(secret.to_string());
            // Error text may show a string escaped or as it appeared in the source.
            let escaped = toml::Value::String(secret.into()).to_string();
            self.secrets.push(escaped.trim_matches('"').to_string());
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut secrets: Vec<&String> = self.secrets.iter().collect();
        // Longest first, so a secret that contains another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_string();
        for s in secrets {
            if !s.is_empty() {
                out = out.replace(s.as_str(), "<redacted>");
            }
        }
        out
    }
}

fn table_at<'a>(table: &'a mut toml::Table, path: &[&str]) -> Option<&'a mut toml::Value> {
    let (last, parents) = path.split_last()?;
    let mut cursor = table;
    for key in parents {
        cursor = cursor.get_mut(*key)?.as_table_mut()?;
    }
    cursor.get_mut(*last)
}

/// Make the relative paths of [`PATH_KEYS`] in `table` relative to `dir`.
fn resolve_relative(table: &mut toml::Table, dir: &Path) {
    if dir.as_os_str().is_empty() {
        return;
    }
    if let Some(toml::Value::Array(lists)) = table
        .get_mut("contacts")
        .and_then(|c| c.get_mut("shared_lists"))
    {
        for list in lists.iter_mut() {
            if let Some(toml::Value::String(p)) = list.get_mut("file")
                && Path::new(p.as_str()).is_relative()
            {
                *p = dir.join(p.as_str()).to_string_lossy().into_owned();
            }
        }
    }
    if let Some(toml::Value::Array(targets)) = table.get_mut("scim") {
        for target in targets.iter_mut() {
            if let Some(toml::Value::String(p)) = target.get_mut("token_file")
                && Path::new(p.as_str()).is_relative()
            {
                *p = dir.join(p.as_str()).to_string_lossy().into_owned();
            }
        }
    }
    for key in PATH_KEYS {
        if let Some(toml::Value::String(p)) = table_at(table, key)
            && Path::new(p.as_str()).is_relative()
        {
            *p = dir.join(p.as_str()).to_string_lossy().into_owned();
        }
    }
}

/// `google.endpoint` parsed whole at load time, so a typo is reported here, naming the
/// setting, rather than as a failed request later.
fn validate_endpoint(endpoint: &str) -> Result<(), ConfigError> {
    let bad = |why: String| {
        ConfigError::Invalid(format!(
            "google.endpoint {endpoint:?} is not a usable URL: {why} (expected e.g. \
             http://127.0.0.1:8085 for the emulator; leave it out for Google)"
        ))
    };
    let url = url::Url::parse(endpoint).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "the scheme is {:?}, not http or https",
            url.scheme()
        )));
    }
    if url.host().is_none() {
        return Err(bad("it has no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it has a query or fragment".into()));
    }
    Ok(())
}

/// Whether a key-setting value is the key JSON itself rather than a path to it.
fn looks_like_inline_json(value: &str) -> bool {
    value.trim_start().starts_with('{')
}

/// The names the baseline Python script used in its `.env` file. Returns the variable
/// that gave the service-account key, if one did.
fn apply_baseline_env(
    table: &mut toml::Table,
    env: &[(String, String)],
    cwd: &Path,
) -> Option<String> {
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.trim().is_empty())
    };
    let google = table
        .entry("google")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let google = google.as_table_mut()?;
    let mut key_from = None;
    // The baseline misspelt the key name; accept the correct spelling too. Its value is
    // a path (relative to the working directory, as the script's
    // `from_service_account_file` read it) or, since the name says KEY, the key JSON
    // itself: a container passes secrets that way.
    for name in ["GCP_SEVERICE_ACCOUNT_KYE", "GCP_SERVICE_ACCOUNT_KEY"] {
        if let Some(v) = get(name) {
            key_from = Some(name.to_string());
            if looks_like_inline_json(&v) {
                google.remove("service_account_key_file");
                google.insert("service_account_key".into(), toml::Value::String(v));
            } else {
                google.remove("service_account_key");
                let path = cwd.join(v.trim());
                google.insert(
                    "service_account_key_file".into(),
                    toml::Value::String(path.to_string_lossy().into_owned()),
                );
            }
        }
    }
    if let Some(v) = get("YOUR_CUSTOMER_ID") {
        google.insert("customer".into(), toml::Value::String(v));
    }
    if let Some(v) = get("YOUR_ADMIN_EMAIL") {
        google.insert("admin_subject".into(), toml::Value::String(v));
    }
    key_from
}

/// `ORGSYNC__GOOGLE__ADMIN_SUBJECT=x` sets `[google] admin_subject = "x"`.
///
/// A value is read as the type the setting expects: first as a plain string (so
/// `ADMIN_SUBJECT=123` and a digits-only secret stay strings), and only if the setting
/// does not take a string, as a TOML scalar or array (`true`, `8`, `0.3`, `["a","b"]`).
/// An error names the variable and the setting, and never quotes a secret's value.
///
/// Returns the variable that gave the service-account key, if one did.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: &[(String, String)],
    cwd: &Path,
) -> Result<Option<String>, ConfigError> {
    let mut key_from = None;
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
        let dotted = path.join(".");
        let key = path.last().map(String::as_str).unwrap_or_default();
        let secret = is_secret_key(key);
        if key == "service_account_key_file" && looks_like_inline_json(raw) {
            return Err(ConfigError::Env {
                name: name.clone(),
                message: "holds JSON, not a path: put the key itself in \
                          ORGSYNC__GOOGLE__SERVICE_ACCOUNT_KEY, or the key file's path here"
                    .into(),
            });
        }
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        let string = if PATH_KEYS.contains(&keys.as_slice()) {
            toml::Value::String(cwd.join(raw).to_string_lossy().into_owned())
        } else {
            toml::Value::String(raw.clone())
        };
        // A key set here replaces a key of the other form from a lower layer.
        let other_form = match dotted.as_str() {
            "google.service_account_key" => Some("service_account_key_file"),
            "google.service_account_key_file" => Some("service_account_key"),
            _ => None,
        };
        if let Some(other) = other_form {
            key_from = Some(name.clone());
            if let Some(google) = table.get_mut("google").and_then(|g| g.as_table_mut()) {
                google.remove(other);
            }
        }
        let mut first_error = None;
        let mut accepted = false;
        for value in [Some(string), parse_env_value(raw)].into_iter().flatten() {
            let mut candidate = table.clone();
            set_path(&mut candidate, &path, value).map_err(|message| ConfigError::Env {
                name: name.clone(),
                message,
            })?;
            match deserialize(&candidate) {
                Ok(_) => {
                    *table = candidate;
                    accepted = true;
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !accepted {
            let detail = first_error.map(|e| e.message().trim().to_string());
            let message = match (secret, detail) {
                (true, _) | (_, None) => format!("not a valid value for {dotted}"),
                (false, Some(d)) => {
                    let mut redactor = Redactor::default();
                    redactor.collect(table);
                    format!("not a valid value for {dotted}: {}", redactor.scrub(&d))
                }
            };
            return Err(ConfigError::Env {
                name: name.clone(),
                message,
            });
        }
    }
    Ok(key_from)
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let mut cursor = table;
    for (i, key) in path.iter().enumerate() {
        if i + 1 == path.len() {
            cursor.insert(key.clone(), value);
            return Ok(());
        }
        let next = cursor
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cursor = next
            .as_table_mut()
            .ok_or_else(|| format!("`{key}` is not a section"))?;
    }
    Ok(())
}

/// `raw` as a TOML scalar or array, when it is one (`true`, `8`, `0.3`, `["a","b"]`).
fn parse_env_value(raw: &str) -> Option<toml::Value> {
    let doc = format!("v = {raw}");
    doc.parse::<toml::Table>().ok()?.remove("v")
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
        if self.contacts.concurrency == Some(0) || self.contacts.max_concurrency == 0 {
            return Err(ConfigError::Invalid(
                "contacts.concurrency and contacts.max_concurrency must be at least 1 (leave \
                 concurrency out to fill the project's quota)"
                    .into(),
            ));
        }
        if self.contacts.group_name.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "contacts.group_name must not be empty: it names the label orgsync manages".into(),
            ));
        }
        for (i, cf) in self.contacts.custom_fields.iter().enumerate() {
            if [&cf.schema, &cf.field, &cf.label]
                .iter()
                .any(|s| s.trim().is_empty())
            {
                return Err(ConfigError::Invalid(format!(
                    "contacts.custom_fields[{i}] needs a schema, a field and a label, e.g. \
                     {{ schema = \"HR\", field = \"CostCentre\", label = \"Cost centre\" }}"
                )));
            }
        }
        if let Some(region) = &self.contacts.phone_region
            && !orgsync_core::contacts::is_phone_region(region)
        {
            return Err(ConfigError::Invalid(format!(
                "contacts.phone_region = {region:?} is not a region code: use the two-letter \
                 ISO 3166 code of the country most numbers without +… are from (GB, not UK; \
                 US, DE, FR…)"
            )));
        }
        lists::validate_all(&self.contacts.shared_lists, &self.contacts.group_name)?;
        self.mail.validate()?;
        self.serve.validate()?;
        scim::validate_all(&self.scim)?;
        if let Some(endpoint) = &self.google.endpoint {
            validate_endpoint(endpoint)?;
        }
        if self.google.retry_budget_secs == Some(0) {
            return Err(ConfigError::Invalid(
                "google.retry_budget_secs = 0 would give up on the first 503 or 429: set the \
                 seconds a call may keep retrying (default 300), or leave it out"
                    .into(),
            ));
        }
        self.google.quotas.validate()?;
        if let Some(path) = &self.google.service_account_key_file
            && looks_like_inline_json(&path.to_string_lossy())
        {
            return Err(ConfigError::Invalid(
                "google.service_account_key_file holds JSON, not a path: give the key file's \
                 path, or put the key itself in google.service_account_key"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Where the service-account key comes from, with errors that say which setting to
    /// set. The key is not read here.
    pub fn service_account_key_source(&self) -> Result<KeySource<'_>, ConfigError> {
        let setting = self.google.key_setting.as_deref();
        if let Some(inline) = &self.google.service_account_key {
            return Ok(KeySource::Inline {
                json: inline,
                setting: setting.unwrap_or("google.service_account_key"),
            });
        }
        match &self.google.service_account_key_file {
            Some(path) => Ok(KeySource::File {
                path,
                setting: setting.unwrap_or("google.service_account_key_file"),
            }),
            None => Err(ConfigError::Invalid(
                "no service-account key: set [google] service_account_key_file in orgsync.toml \
                 (or ORGSYNC__GOOGLE__SERVICE_ACCOUNT_KEY_FILE); `orgsync emulator --data-dir DIR` \
                 writes one for local use"
                    .into(),
            )),
        }
    }

    /// The service-account key JSON, from the file or inline.
    pub fn service_account_key_json(&self) -> Result<String, ConfigError> {
        match self.service_account_key_source()? {
            KeySource::Inline { json, .. } => Ok(json.to_string()),
            KeySource::File { path, setting } => {
                std::fs::read_to_string(path).map_err(|e| ConfigError::KeyFile {
                    path: path.to_path_buf(),
                    setting: setting.to_string(),
                    problem: io_problem(&e),
                })
            }
        }
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

    /// `serve` writes address books only when the contacts job is configured, unless told.
    #[test]
    fn serve_keeps_contacts_in_step_only_when_contacts_are_configured() {
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str, env: &[(String, String)]| {
            load_from(Some(&write(dir.path(), text)), env)
                .unwrap()
                .config
                .serve
                .contacts
        };
        assert!(
            !load("", &[]),
            "no [contacts]: serve leaves address books alone"
        );
        assert!(load(
            "[contacts]
",
            &[]
        ));
        assert!(load(
            "[contacts]
group_name = \"Staff\"\n",
            &[]
        ));
        assert!(!load(
            "[contacts]
[serve]
contacts = false
",
            &[]
        ));
        assert!(load(
            "[serve]
contacts = true
",
            &[]
        ));
        let env = [(
            "ORGSYNC__CONTACTS__GROUP_NAME".to_string(),
            "Staff".to_string(),
        )];
        assert!(
            load("", &env),
            "an environment override configures contacts too"
        );
    }

    #[test]
    fn phone_options_are_read_and_a_bad_region_is_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[contacts]\nphone_format = \"e164\"\nphone_region = \"GB\"\n";
        let c = load_from(Some(&write(dir.path(), text)), &[])
            .unwrap()
            .config;
        assert_eq!(
            c.contacts.phone_format,
            orgsync_core::contacts::PhoneFormat::E164
        );
        let text = "[contacts]\nphone_format = \"e164\"\nphone_region = \"UK\"\n";
        let err = load_from(Some(&write(dir.path(), text)), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("contacts.phone_region") && err.contains("GB"),
            "{err}"
        );
        let text = "[contacts]\nphone_format = \"international\"\n";
        let err = load_from(Some(&write(dir.path(), text)), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("e164") && err.contains("as_is"), "{err}");
    }

    /// Hiding someone from the Global Address List keeps them out of others' books; it
    /// used to empty their own too (the targets inherited the sources' default).
    #[test]
    fn hidden_users_receive_contacts_by_default_whatever_the_targets_table_says() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "",
            "[contacts]\ngroup_name = \"Staff\"\n",
            "[contacts.targets]\norg_units = [\"/Sales\"]\n",
        ] {
            let c = load_from(Some(&write(dir.path(), text)), &[])
                .unwrap()
                .config;
            assert!(c.contacts.targets.include_hidden_from_gal, "{text}");
            assert!(!c.contacts.sources.include_hidden_from_gal, "{text}");
        }
        assert!(Config::default().contacts.targets.include_hidden_from_gal);
        // Said explicitly, it is kept.
        let text = "[contacts.targets]\ninclude_hidden_from_gal = false\n";
        let c = load_from(Some(&write(dir.path(), text)), &[])
            .unwrap()
            .config;
        assert!(!c.contacts.targets.include_hidden_from_gal);
        let env = [(
            "ORGSYNC__CONTACTS__TARGETS__INCLUDE_HIDDEN_FROM_GAL".to_string(),
            "false".to_string(),
        )];
        let c = load_from(Some(&write(dir.path(), "")), &env)
            .unwrap()
            .config;
        assert!(!c.contacts.targets.include_hidden_from_gal);
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
        assert_eq!(c.contacts.concurrency, Some(16));
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
    fn shared_lists_load_with_their_file_beside_the_config_and_label_by() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "[contacts]\nlabel_by = \"org_unit\"\n\
             [[contacts.shared_lists]]\nname = \"Suppliers\"\nfile = \"suppliers.csv\"\n\
             targets = { org_units = [\"/Ops\"] }\n\
             [[contacts.shared_lists]]\nname = \"Rooms\"\nrooms = true\n",
        );
        let c = load_from(Some(&path), &[]).unwrap().config;
        assert_eq!(
            c.contacts.label_by,
            Some(orgsync_core::contacts::LabelBy::OrgUnit)
        );
        let lists = &c.contacts.shared_lists;
        assert_eq!(
            lists[0].source(),
            ListSource::File(&dir.path().join("suppliers.csv"))
        );
        assert_eq!(lists[0].targets.as_ref().unwrap().org_units, ["/Ops"]);
        assert_eq!(lists[1].source(), ListSource::Rooms);
    }

    #[test]
    fn a_shared_list_without_exactly_one_source_or_a_usable_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (body, says) in [
            ("name = \"S\"\n", "exactly one source"),
            (
                "name = \"S\"\nfile = \"a.csv\"\nrooms = true\n",
                "exactly one source",
            ),
            ("name = \"S\"\nfrom_user = \"r@x.com\"\n", "from_label"),
            (
                "name = \"S\"\nfrom_label = \"X\"\nrooms = true\n",
                "needs from_user",
            ),
            (
                "name = \"S\"\nfrom_user = \"reception\"\nfrom_label = \"X\"\n",
                "not an email",
            ),
            ("name = \"\"\nrooms = true\n", "needs a name"),
            ("name = \"Company directory\"\nrooms = true\n", "main label"),
            ("name = \" S\"\nrooms = true\n", "spaces"),
        ] {
            let path = write(dir.path(), &format!("[[contacts.shared_lists]]\n{body}"));
            let err = load_from(Some(&path), &[]).unwrap_err().to_string();
            assert!(
                err.contains("contacts.shared_lists[0]") && err.contains(says),
                "{body}: {err}"
            );
        }
        let path = write(
            dir.path(),
            "[[contacts.shared_lists]]\nname = \"S\"\nrooms = true\n\
             [[contacts.shared_lists]]\nname = \"s\"\nfile = \"x.csv\"\n",
        );
        let err = load_from(Some(&path), &[]).unwrap_err().to_string();
        assert!(
            err.contains("shared_lists[1]") && err.contains("earlier list"),
            "{err}"
        );
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

    const KEY_JSON: &str = "{\"type\": \"service_account\", \"private_key\": \"-----BEGIN PRIVATE KEY-----SECRETKEYBYTES\"}";

    #[test]
    fn inline_key_in_the_baseline_variable_is_taken_as_the_key_and_never_echoed() {
        let loaded = load_from(None, &env(&[("GCP_SEVERICE_ACCOUNT_KYE", KEY_JSON)])).unwrap();
        let g = &loaded.config.google;
        assert_eq!(g.service_account_key.as_deref(), Some(KEY_JSON));
        assert_eq!(g.service_account_key_file, None);
        let source = loaded.config.service_account_key_source().unwrap();
        assert_eq!(source.setting(), "GCP_SEVERICE_ACCOUNT_KYE");
        assert!(!format!("{:?}", loaded.config).contains("SECRETKEYBYTES"));
    }

    #[test]
    fn key_file_setting_holding_json_is_refused_without_echoing_it() {
        let err = load_from(
            None,
            &env(&[("ORGSYNC__GOOGLE__SERVICE_ACCOUNT_KEY_FILE", KEY_JSON)]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ORGSYNC__GOOGLE__SERVICE_ACCOUNT_KEY"),
            "{err}"
        );
        assert!(
            !err.contains("SECRETKEYBYTES") && !err.contains("config file"),
            "{err}"
        );
    }

    #[test]
    fn missing_key_file_is_named_as_a_key_file_not_a_config_file() {
        let loaded = load_from(
            None,
            &env(&[("GCP_SEVERICE_ACCOUNT_KYE", "/nonexistent/sa.json")]),
        )
        .unwrap();
        let err = loaded
            .config
            .service_account_key_json()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("service-account key file /nonexistent/sa.json"),
            "{err}"
        );
        assert!(
            err.contains("GCP_SEVERICE_ACCOUNT_KYE") && err.contains("no such file"),
            "{err}"
        );
        assert!(!err.contains("config file"), "{err}");
    }

    #[test]
    fn baseline_key_path_is_relative_to_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "");
        let c = load_from(
            Some(&path),
            &env(&[("GCP_SEVERICE_ACCOUNT_KYE", "sa.json")]),
        )
        .unwrap()
        .config;
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            c.google.service_account_key_file.unwrap(),
            cwd.join("sa.json")
        );
    }

    #[test]
    fn digits_only_env_values_stay_strings_where_a_string_is_expected() {
        let c = load_from(
            None,
            &env(&[
                ("ORGSYNC__GOOGLE__ADMIN_SUBJECT", "123"),
                ("ORGSYNC__SERVE__SINK__SECRET", "1234567890123456789"),
                ("ORGSYNC__CONTACTS__INCLUDE_PHOTOS", "true"),
            ]),
        )
        .unwrap()
        .config;
        assert_eq!(c.google.admin_subject.as_deref(), Some("123"));
        assert_eq!(c.serve.sink.secret.as_deref(), Some("1234567890123456789"));
        assert!(c.contacts.include_photos);
    }

    #[test]
    fn env_type_errors_name_the_setting_and_never_quote_a_secret() {
        let err = load_from(None, &env(&[("ORGSYNC__CONTACTS__CONCURRENCY", "many")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ORGSYNC__CONTACTS__CONCURRENCY"), "{err}");
        assert!(err.contains("contacts.concurrency"), "{err}");
        // A secret section given as a value: the error names it without the value.
        let err = load_from(
            None,
            &env(&[("ORGSYNC__SERVE__SINK", "hunter2-secret-value")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ORGSYNC__SERVE__SINK"), "{err}");
    }

    #[test]
    fn file_type_errors_never_quote_a_secret_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "[serve.sink]\nsecret = 1234567890123456789\n");
        let err = load_from(Some(&path), &[]).unwrap_err().to_string();
        assert!(!err.contains("1234567890123456789"), "{err}");
        assert!(err.contains("secret"), "{err}");
    }

    #[test]
    fn toml_syntax_errors_give_the_line_but_never_quote_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "[google]\nservice_account_key = \"{ private_key: TOPSECRET\n",
        );
        let err = load_from(Some(&path), &[]).unwrap_err().to_string();
        assert!(!err.contains("TOPSECRET"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn endpoint_is_parsed_whole_when_the_config_loads() {
        for bad in [
            "http://[::1",
            "http://",
            "ftp://127.0.0.1:1",
            "127.0.0.1:8085",
        ] {
            let err = load_from(None, &env(&[("ORGSYNC__GOOGLE__ENDPOINT", bad)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("google.endpoint"), "{bad}: {err}");
        }
        let ok = load_from(
            None,
            &env(&[("ORGSYNC__GOOGLE__ENDPOINT", "http://[::1]:8085")]),
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn zero_quota_is_refused_instead_of_silently_disabling_pacing() {
        let err = load_from(
            None,
            &env(&[("ORGSYNC__GOOGLE__QUOTAS__PER_USER__PEOPLE_WRITE", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("google.quotas.per_user.people_write"), "{err}");
        let err = load_from(
            None,
            &env(&[("ORGSYNC__GOOGLE__QUOTAS__PER_USER__PEOPLE_WRITES", "10")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("people_writes") && err.contains("people_delete_group_write"),
            "an unknown metric names the known ones: {err}"
        );
    }

    #[test]
    fn quota_overrides_reach_the_client_over_the_google_defaults() {
        use orgsync_wire::quota::{Metric, Scope};
        let config = load_from(
            None,
            &env(&[
                ("ORGSYNC__GOOGLE__QUOTAS__PER_USER__PEOPLE_WRITE", "10"),
                ("ORGSYNC__GOOGLE__QUOTAS__PER_PROJECT__PEOPLE_READ", "12000"),
                ("ORGSYNC__GOOGLE__QUOTAS__MINUTE_SECS", "1"),
            ]),
        )
        .unwrap();
        let q = crate::context::client_config(&config.config).quotas;
        assert_eq!(q.get(Metric::PeopleWrite, Scope::User), Some(10));
        assert_eq!(q.get(Metric::PeopleRead, Scope::Project), Some(12_000));
        assert_eq!(
            q.get(Metric::PeopleRead, Scope::User),
            Some(90),
            "a default"
        );
        assert_eq!(q.minute, std::time::Duration::from_secs(1));
    }

    #[test]
    fn retry_budget_is_read_from_the_environment_and_zero_is_refused() {
        let config = load_from(None, &env(&[("ORGSYNC__GOOGLE__RETRY_BUDGET_SECS", "7")])).unwrap();
        assert_eq!(
            crate::context::client_config(&config.config)
                .retry
                .max_elapsed,
            std::time::Duration::from_secs(7)
        );
        let err = load_from(None, &env(&[("ORGSYNC__GOOGLE__RETRY_BUDGET_SECS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("google.retry_budget_secs"), "{err}");
    }

    #[test]
    fn dotenv_bad_line_is_reported_and_the_lines_after_it_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "YOUR_CUSTOMER_ID=C0123\njust some broken words\nYOUR_ADMIN_EMAIL=boss@example.com\n",
        )
        .unwrap();
        let read = read_dotenv(&path);
        let names: Vec<&str> = read.vars.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"YOUR_CUSTOMER_ID"), "{names:?}");
        assert!(names.contains(&"YOUR_ADMIN_EMAIL"), "{names:?}");
        assert_eq!(read.warnings.len(), 1, "{:?}", read.warnings);
        assert!(read.warnings[0].contains("line 2"), "{:?}", read.warnings);
        assert!(!read.warnings[0].contains("broken"), "{:?}", read.warnings);
    }
}
