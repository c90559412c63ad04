//! `orgsync doctor`: can this configuration do each job's work, and if not, what exactly
//! must an admin change? One [`Check`] per thing that can be wrong, each failure with its
//! fix.
//!
//! Why it exists: a wrong domain-wide delegation, an API not enabled in the Cloud project
//! or an `admin_subject` without admin rights otherwise shows up as one error on the
//! first call of the first run, naming a single scope or API. Doctor asks for a token per
//! scope on its own, so it names every missing scope at once, and makes one harmless read
//! per API, so "API not enabled" (Google's 403 `accessNotConfigured`) is told apart from
//! "no permission".
//!
//! It never writes to Google: tokens, `users.get`/`users.list`/`groups.list` with one
//! result, `contactGroups.list`, `users.getProfile`, one page of `events.list`. The state
//! store is checked by the binary (it alone knows the backends) and handed to
//! [`check_serve`] opened read-only.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use orgsync_client::transport::Api;
use orgsync_client::{
    AuthError, ClientConfig, Error, ErrorKind, GoogleClient, RetryPolicy, ServiceAccount,
    TokenSource,
};
use serde::Serialize;

use crate::config::Config;

/// A job doctor can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Job {
    Contacts,
    Users,
    Mail,
    Calendar,
    /// The `[[scim]]` apps: the directory read, and each app's URL and token.
    Scim,
}

impl Job {
    pub const ALL: [Job; 5] = [
        Job::Contacts,
        Job::Users,
        Job::Mail,
        Job::Calendar,
        Job::Scim,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Job::Contacts => "contacts",
            Job::Users => "users",
            Job::Mail => "mail",
            Job::Calendar => "calendar",
            Job::Scim => "scim",
        }
    }

    /// The APIs the job calls through the service account with this configuration.
    pub fn apis(self, config: &Config) -> Vec<Api> {
        let reports = !config.mail.report_to.is_empty();
        match self {
            Job::Contacts if reports => vec![Api::Directory, Api::People, Api::Gmail],
            Job::Contacts => vec![Api::Directory, Api::People],
            Job::Users if reports || config.mail.welcome.enabled => {
                vec![Api::Directory, Api::Gmail]
            }
            Job::Users => vec![Api::Directory],
            Job::Mail => vec![Api::Gmail],
            Job::Calendar => vec![Api::Calendar],
            Job::Scim => vec![Api::Directory],
        }
    }

    /// The jobs checked when none is named: the scheduled sync jobs, and mail when the
    /// configuration sends any.
    pub fn defaults(config: &Config) -> Vec<Job> {
        let mut jobs = vec![Job::Contacts, Job::Users];
        if !config.mail.report_to.is_empty() || config.mail.welcome.enabled {
            jobs.push(Job::Mail);
        }
        if !config.scim.is_empty() {
            jobs.push(Job::Scim);
        }
        jobs
    }
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not checked: an earlier failure makes it meaningless, or this configuration does
    /// not need it.
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked, stable for scripts: `config`, `key`, `endpoint`, `scope`,
    /// `admin_subject`, `api.directory`, `api.people`, `api.gmail`, `api.calendar`,
    /// `login`, `state`, `serve.health`, `serve.channels`, `scim.<name>`.
    pub id: String,
    pub status: Status,
    /// What was found, in one line.
    pub line: String,
    /// For a failure: exactly what to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The domain-wide delegation the checked jobs need, ready to paste.
#[derive(Debug, Clone, Serialize)]
pub struct Delegation {
    /// The service account's numeric client id (the Admin console wants this, not the
    /// email).
    pub client_id: String,
    /// Comma-separated, as the Admin console's "OAuth scopes" field takes them.
    pub scopes: String,
}

/// Everything doctor found, in the order it checked.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub jobs: Vec<Job>,
    pub checks: Vec<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegation: Option<Delegation>,
}

impl Report {
    pub fn new(jobs: Vec<Job>) -> Self {
        Report {
            jobs,
            ..Report::default()
        }
    }

    /// No check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    pub fn pass(&mut self, id: &str, line: impl Into<String>) {
        self.push(id, Status::Pass, line.into(), None);
    }

    pub fn fail(&mut self, id: &str, line: impl Into<String>, fix: impl Into<String>) {
        self.push(id, Status::Fail, line.into(), Some(fix.into()));
    }

    pub fn skip(&mut self, id: &str, line: impl Into<String>) {
        self.push(id, Status::Skip, line.into(), None);
    }

    fn push(&mut self, id: &str, status: Status, line: String, fix: Option<String>) {
        self.checks.push(Check {
            id: id.to_string(),
            status,
            line,
            fix,
        });
    }

    fn needs(&self, config: &Config, api: Api) -> bool {
        self.jobs.iter().any(|j| j.apis(config).contains(&api))
    }

    /// The jobs that need `api`, for "needed by contacts, users".
    fn needed_by(&self, config: &Config, api: Api) -> String {
        let names: Vec<&str> = self
            .jobs
            .iter()
            .filter(|j| j.apis(config).contains(&api))
            .map(|j| j.name())
            .collect();
        names.join(", ")
    }
}

fn api_title(api: Api) -> &'static str {
    match api {
        Api::Directory => "Admin SDK API (Directory)",
        Api::People => "People API",
        Api::Gmail => "Gmail API",
        Api::Calendar => "Google Calendar API",
    }
}

fn api_id(api: Api) -> &'static str {
    match api {
        Api::Directory => "api.directory",
        Api::People => "api.people",
        Api::Gmail => "api.gmail",
        Api::Calendar => "api.calendar",
    }
}

const APIS: [Api; 4] = [Api::Directory, Api::People, Api::Gmail, Api::Calendar];

/// Where domain-wide delegation is granted, for every fix that sends the admin there.
const DELEGATION_PAGE: &str =
    "Admin console → Security → Access and data control → API controls → Domain-wide delegation";

/// Each `[[scim]]` app: its token readable (and private), its URL a SCIM server that
/// accepts the token (one `ServiceProviderConfig` and a one-user listing; nothing
/// written).
pub async fn check_scim(config: &Config, report: &mut Report) {
    if !report.jobs.contains(&Job::Scim) {
        return;
    }
    if config.scim.is_empty() {
        report.skip(
            "scim",
            "no [[scim]] app is configured (README.md, \"Provision apps over SCIM\")",
        );
        return;
    }
    for target in &config.scim {
        let id = format!("scim.{}", target.name);
        #[cfg(unix)]
        if let Some(path) = &target.token_file {
            use std::os::unix::fs::PermissionsExt as _;
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                report.fail(
                    &id,
                    format!(
                        "the token file {} is readable by others (mode {:o})",
                        path.display(),
                        meta.permissions().mode() & 0o777
                    ),
                    format!("chmod 600 {}", path.display()),
                );
                continue;
            }
        }
        match crate::scim::probe(config, target).await {
            Ok(features) => report.pass(
                &id,
                format!(
                    "{} answers and accepts the token (PATCH {}, ETags {}, page size {})",
                    target.url,
                    if features.patch { "yes" } else { "no: PUT" },
                    if features.etag { "yes" } else { "no" },
                    features
                        .max_results
                        .map_or("not announced".to_string(), |n| n.to_string())
                ),
            ),
            Err(e) => {
                let (line, fix) = crate::scim::explain(target, &e);
                report.fail(&id, line, fix);
            }
        }
    }
}

/// The key, the endpoint, every scope, the admin subject and one read per API.
pub async fn check_google(config: &Config, report: &mut Report) {
    let Some(sa) = check_key(config, report) else {
        return;
    };
    if !check_endpoint(config, &sa, report).await {
        return;
    }
    let subject = config
        .google
        .admin_subject
        .clone()
        .or_else(|| config.mail.from.clone());
    let Some(subject) = subject else {
        report.fail(
            "admin_subject",
            "no [google] admin_subject: the service account has nobody to act as",
            "set [google] admin_subject (or ORGSYNC__GOOGLE__ADMIN_SUBJECT) to the email of \
             a Workspace admin",
        );
        return;
    };
    let sa = Arc::new(sa);
    let delegated = check_scopes(config, &sa, &subject, report).await;
    let Some(delegated) = delegated else {
        return;
    };
    let client = GoogleClient::new(sa.clone(), doctor_client_config(config));
    if report.needs(config, Api::Directory) {
        if delegated.contains(&Api::Directory) {
            check_directory(config, &client, report).await;
        } else {
            report.skip(
                "api.directory",
                "Directory reads not tried: its scopes are not delegated",
            );
        }
    }
    for api in [Api::People, Api::Gmail, Api::Calendar] {
        if !report.needs(config, api) {
            continue;
        }
        if !delegated.contains(&api) {
            report.skip(
                api_id(api),
                format!("{} not tried: its scope is not delegated", api_title(api)),
            );
            continue;
        }
        let who = match api {
            Api::Gmail => config.mail.from.as_deref().unwrap_or(&subject),
            _ => &subject,
        };
        let result = harmless_read(&client, api, Some(who)).await;
        api_result(report, api, who, "service account", result);
    }
}

/// The service account key: readable, a service-account key, with a key id.
fn check_key(config: &Config, report: &mut Report) -> Option<ServiceAccount> {
    match crate::context::service_account(config) {
        Ok(sa) => {
            let origin = match config.service_account_key_source() {
                Ok(crate::config::KeySource::File { path, .. }) => {
                    format!("file {}", path.display())
                }
                Ok(crate::config::KeySource::Inline { setting, .. }) => format!("in {setting}"),
                Err(_) => "configured".into(),
            };
            report.pass(
                "key",
                format!(
                    "service-account key {origin}: {} (client id {}, key id {})",
                    sa.client_email(),
                    sa.client_id(),
                    sa.private_key_id()
                ),
            );
            Some(sa)
        }
        Err(e) => {
            report.fail(
                "key",
                format!("no usable service-account key: {e}"),
                "point [google] service_account_key_file (or GCP_SERVICE_ACCOUNT_KEY) at the \
                 JSON key of the service account: Cloud console → IAM & Admin → Service \
                 accounts → Keys → Add key → JSON",
            );
            None
        }
    }
}

/// The token endpoint answers (any HTTP status will do: it is reachable).
async fn check_endpoint(config: &Config, sa: &ServiceAccount, report: &mut Report) -> bool {
    let apis = match &config.google.endpoint {
        Some(base) => format!("APIs at {base} (not Google: an emulator or a proxy)"),
        None => "Google's APIs".to_string(),
    };
    match orgsync_client::transport::probe(sa.token_uri()).await {
        Ok(_) => {
            report.pass(
                "endpoint",
                format!("{apis}; token endpoint {} answers", sa.token_uri()),
            );
            true
        }
        Err(why) => {
            let fix = if config.google.endpoint.is_some() {
                "start the emulator (`orgsync emulator`) or correct [google] endpoint; remove \
                 it to use Google"
            } else {
                "this machine must reach https://oauth2.googleapis.com and \
                 https://*.googleapis.com: check the network, the firewall and HTTPS_PROXY"
            };
            report.fail(
                "endpoint",
                format!(
                    "{apis}: token endpoint {} unreachable: {why}",
                    sa.token_uri()
                ),
                fix,
            );
            false
        }
    }
}

/// A token per scope on its own, so each missing one is named. Returns the APIs whose
/// scopes are all delegated, or None when no scope can be checked (unknown subject, bad
/// signature, clock).
async fn check_scopes(
    config: &Config,
    sa: &ServiceAccount,
    subject: &str,
    report: &mut Report,
) -> Option<Vec<Api>> {
    // The scopes the jobs will ask for with this config (rooms add one).
    let scopes = crate::context::client_config(config).scopes;
    let mut all: Vec<&str> = Vec::new();
    let mut delegated = Vec::new();
    for api in APIS {
        if !report.needs(config, api) {
            continue;
        }
        let mut api_ok = true;
        for scope in scopes.for_api(api) {
            if all.contains(&scope.as_str()) {
                continue;
            }
            all.push(scope);
            match sa.token(Some(subject), &[scope]).await {
                Ok(_) => report.pass(
                    "scope",
                    format!(
                        "scope {scope} is delegated (needed by {})",
                        report.needed_by(config, api)
                    ),
                ),
                Err(AuthError::DelegationNotGranted(d)) => {
                    api_ok = false;
                    report.fail(
                        "scope",
                        format!(
                            "scope {scope} is not delegated to client id {} (needed by {}): \
                             {}: {}",
                            d.client_id,
                            report.needed_by(config, api),
                            d.error,
                            d.description
                        ),
                        format!(
                            "add it for client id {} in {DELEGATION_PAGE} (changes can take \
                             minutes, rarely hours, to apply)",
                            d.client_id
                        ),
                    );
                }
                Err(e @ AuthError::UnknownSubject { .. }) => {
                    report.fail(
                        "admin_subject",
                        e.to_string(),
                        "set [google] admin_subject to the primary email of an active \
                         Workspace admin",
                    );
                    return None;
                }
                Err(e) => {
                    report.fail("scope", e.to_string(), auth_fix(&e));
                    return None;
                }
            }
        }
        if api_ok {
            delegated.push(api);
        }
    }
    report.delegation = Some(Delegation {
        client_id: sa.client_id().to_string(),
        scopes: all.join(","),
    });
    Some(delegated)
}

/// What to do about a token failure that is not a missing scope.
fn auth_fix(e: &AuthError) -> String {
    match e {
        AuthError::BadSignature { .. } => {
            "create a new JSON key for the service account and point orgsync at it".into()
        }
        AuthError::ClockSkew { .. } => "set this machine's clock (enable NTP)".into(),
        AuthError::Unavailable { .. } => "try again; check the network and HTTPS_PROXY".into(),
        _ => "see the message; `orgsync doctor -v` logs each request".into(),
    }
}

/// The admin subject exists, is active, can read users and, if the config uses groups,
/// groups. Also tells whether the Admin SDK API is enabled.
async fn check_directory(config: &Config, client: &GoogleClient, report: &mut Report) {
    let Some(admin) = config.google.admin_subject.as_deref() else {
        report.fail(
            "admin_subject",
            "no [google] admin_subject: the Directory API answers only an administrator",
            "set [google] admin_subject to the email of a Workspace admin",
        );
        return;
    };
    let directory = client.directory();
    let me = directory.users_get(admin, Some("basic"), None).await;
    let user = match me {
        Ok(user) => user,
        Err(Error::Api(e)) if e.is_api_disabled() => {
            api_disabled(report, Api::Directory, &e);
            return;
        }
        Err(Error::Api(e)) if e.status == Some(403) && e.kind == ErrorKind::Auth => {
            report.pass("api.directory", "Admin SDK API is enabled");
            report.fail(
                "admin_subject",
                format!("{admin} cannot read users: {}", e.message),
                not_admin_fix(admin),
            );
            return;
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            report.fail(
                "admin_subject",
                format!("{admin} is not a user of this Workspace"),
                "set [google] admin_subject to the primary email of a Workspace admin",
            );
            return;
        }
        Err(e) => {
            report.fail("api.directory", e.to_string(), other_fix(&e));
            return;
        }
    };
    report.pass("api.directory", "Admin SDK API is enabled");
    if user.suspended == Some(true) || user.archived == Some(true) {
        report.fail(
            "admin_subject",
            format!("{admin} is suspended or archived"),
            "set [google] admin_subject to an active admin, or restore this account",
        );
        return;
    }
    let role = if user.is_admin == Some(true) {
        "super admin"
    } else if user.is_delegated_admin == Some(true) {
        "delegated admin"
    } else {
        "user with Users → Read"
    };
    let params = orgsync_client::directory::UsersListParams {
        customer: config.google.customer.clone(),
        domain: config.google.domain.clone(),
        max_results: Some(1),
        ..Default::default()
    };
    let listed = first_page(directory.users_pages(params)).await;
    match listed {
        Ok(()) => report.pass(
            "admin_subject",
            format!("{admin} is an active {role} and can list users"),
        ),
        Err(e) => {
            report.fail(
                "admin_subject",
                format!("{admin} cannot list users: {e}"),
                not_admin_fix(admin),
            );
            return;
        }
    }
    let uses_groups = [
        &config.contacts.sources,
        &config.contacts.targets,
        &config.users.scope,
    ]
    .iter()
    .any(|rules| rules.group_emails().next().is_some());
    let groups = orgsync_client::directory::GroupsListParams {
        customer: config.google.customer.clone(),
        max_results: Some(1),
        ..Default::default()
    };
    match first_page(directory.groups_pages(groups)).await {
        Ok(()) => report.pass("admin_subject", format!("{admin} can read groups")),
        Err(e) if uses_groups => report.fail(
            "admin_subject",
            format!("{admin} cannot read groups, which this configuration's scopes name: {e}"),
            format!(
                "give {admin}'s admin role the Admin API privilege Groups → Read (Admin \
                 console → Account → Admin roles)"
            ),
        ),
        Err(e) => report.skip(
            "admin_subject",
            format!("{admin} cannot read groups (not needed: no scope names a group): {e}"),
        ),
    }
}

fn not_admin_fix(admin: &str) -> String {
    format!(
        "make {admin} an administrator whose role has the Admin API privileges Users → Read \
         and Groups → Read (Admin console → Account → Admin roles), or set [google] \
         admin_subject to such an admin"
    )
}

fn other_fix(e: &Error) -> String {
    match e.kind() {
        ErrorKind::Retryable => "Google is unavailable or rate-limiting: try again later".into(),
        _ => "see the message; `orgsync doctor -v` logs each request".into(),
    }
}

/// The first page of a listing, and nothing after it.
async fn first_page<T>(
    pages: impl futures::Stream<Item = Result<T, Error>> + Send,
) -> Result<(), Error> {
    let mut pages = std::pin::pin!(pages);
    match pages.next().await {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

/// One read that changes nothing, as `subject` (None: the credential's own user).
async fn harmless_read(
    client: &GoogleClient,
    api: Api,
    subject: Option<&str>,
) -> Result<&'static str, Error> {
    match api {
        Api::People => {
            let people = client.people(subject.unwrap_or("me"));
            first_page(people.contact_groups_pages(Some("name"))).await?;
            Ok("read contact groups")
        }
        Api::Gmail => {
            client.gmail(subject).get_profile().await?;
            Ok("read the mailbox profile")
        }
        Api::Calendar => {
            let params = orgsync_client::calendar::EventsListParams {
                max_results: Some(1),
                ..Default::default()
            };
            first_page(client.calendar(subject).events_pages("primary", params)).await?;
            Ok("read the primary calendar")
        }
        Api::Directory => {
            first_page(client.directory().users_pages(Default::default())).await?;
            Ok("listed users")
        }
    }
}

/// The line for one API read: enabled and allowed, not enabled, or not allowed.
fn api_result(
    report: &mut Report,
    api: Api,
    who: &str,
    how: &str,
    result: Result<&'static str, Error>,
) {
    match result {
        Ok(what) => report.pass(
            api_id(api),
            format!("{} is enabled: {what} of {who} ({how})", api_title(api)),
        ),
        Err(Error::Api(e)) if e.is_api_disabled() => api_disabled(report, api, &e),
        Err(e) if e.kind() == ErrorKind::Auth => report.fail(
            api_id(api),
            format!("{} refused {who} ({how}): {e}", api_title(api)),
            match api {
                Api::Gmail | Api::Calendar | Api::People => format!(
                    "{who} needs a Workspace licence with {} turned on for their \
                     organisational unit (Admin console → Apps → Google Workspace)",
                    api_title(api)
                ),
                Api::Directory => not_admin_fix(who),
            },
        ),
        Err(e) => report.fail(api_id(api), e.to_string(), other_fix(&e)),
    }
}

/// Google's `accessNotConfigured`: the API is off in the service account's project.
fn api_disabled(report: &mut Report, api: Api, e: &orgsync_client::ApiError) {
    let link = activation_link(&e.message);
    let fix = match link {
        Some(url) => format!(
            "enable the {} in the Cloud project of the service account: {url} (then wait a \
             few minutes)",
            api_title(api)
        ),
        None => format!(
            "enable the {} in the Cloud project of the service account (Cloud console → \
             APIs & Services → Library)",
            api_title(api)
        ),
    };
    report.fail(
        api_id(api),
        format!(
            "{} is not enabled in the Cloud project (403 {})",
            api_title(api),
            e.reason.as_deref().unwrap_or("accessNotConfigured")
        ),
        fix,
    );
}

/// The console link in Google's "… Enable it by visiting URL then retry." message.
fn activation_link(message: &str) -> Option<&str> {
    let start = message.find("https://console.")?;
    let rest = &message[start..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches(['.', ',']))
}

/// Doctor's client: the config's endpoint and quotas, but few retries, so an outage is
/// reported in seconds rather than after the jobs' retry budget.
fn doctor_client_config(config: &Config) -> ClientConfig {
    let mut client = crate::context::client_config(config);
    client.retry = RetryPolicy {
        max_attempts: 3,
        max_elapsed: Duration::from_secs(10),
        ..RetryPolicy::default()
    };
    client
}

/// A person's own login (`orgsync auth login`), when there is one: the token file is
/// private and the login still works for mail and calendar.
pub async fn check_login(config: &Config, report: &mut Report) {
    let wanted: Vec<Api> = [Job::Mail, Job::Calendar]
        .into_iter()
        .filter(|j| report.jobs.contains(j))
        .flat_map(|j| j.apis(config))
        .collect();
    if wanted.is_empty() {
        return;
    }
    let Ok(path) = crate::auth::token_file(config, None) else {
        return;
    };
    if !path.exists() {
        report.skip(
            "login",
            format!(
                "no personal login ({} does not exist): mail and calendar can act as \
                 anyone through the service account with --as",
                path.display()
            ),
        );
        return;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(&path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                report.fail(
                    "login",
                    format!(
                        "token file {} has mode {mode:o}: others can read the refresh token",
                        path.display()
                    ),
                    format!("chmod 600 {}", path.display()),
                );
            }
        }
    }
    let login = match crate::auth::load_login(&path) {
        Ok(login) => login,
        Err(e) => {
            report.fail(
                "login",
                e.to_string(),
                "run `orgsync auth login` again to replace the token file",
            );
            return;
        }
    };
    let who = login.account.clone().unwrap_or_else(|| "you".into());
    let mut client_config = doctor_client_config(config);
    client_config.admin_subject = None;
    let client = GoogleClient::new(Arc::new(login.credential()), client_config);
    for api in wanted {
        let result = harmless_read(&client, api, None).await;
        if let Err(Error::Auth(e)) = &result {
            report.fail(
                "login",
                format!("the saved login of {who} no longer works: {e}"),
                "run `orgsync auth login` again",
            );
            return;
        }
        api_result(report, api, &who, "personal login", result);
    }
}

/// For `serve`: the public URL reaches this daemon's health check, and the push channels
/// in the store are live. Only when the users job is checked and `[serve] public_url` is
/// set or channels exist.
pub async fn check_serve(config: &Config, store: &dyn orgsync_store::Store, report: &mut Report) {
    if !report.jobs.contains(&Job::Users) {
        return;
    }
    let channels = match store.list_channels().await {
        Ok(c) => c,
        Err(e) => {
            report.fail(
                "serve.channels",
                format!("cannot list the push channels in the state store: {e}"),
                "see the state check above",
            );
            return;
        }
    };
    let Some(public) = config.serve.public_url.as_deref() else {
        if !channels.is_empty() {
            report.skip(
                "serve.health",
                "no [serve] public_url: `orgsync serve` registers its loopback URL",
            );
        }
        return check_channels(&channels, report);
    };
    let health = health_url(public, &config.serve.webhook_path);
    match orgsync_client::transport::probe(&health).await {
        Ok(200) => report.pass("serve.health", format!("{health} answers 200")),
        Ok(status) => report.fail(
            "serve.health",
            format!("{health} answers {status}, not orgsync's health check"),
            "route the public URL to `orgsync serve`'s [serve] listen address (the whole \
             host, or at least the webhook path and /healthz)",
        ),
        Err(why) => report.fail(
            "serve.health",
            format!("{health} unreachable: {why}"),
            "start `orgsync serve`, and check that the reverse proxy forwards [serve] \
             public_url to its listen address",
        ),
    }
    check_channels(&channels, report);
}

fn check_channels(channels: &[orgsync_store::Channel], report: &mut Report) {
    let now = chrono::Utc::now();
    let open: Vec<_> = channels
        .iter()
        .filter(|c| c.stopped_at.is_none() && c.replaced_by.is_none())
        .collect();
    if open.is_empty() {
        if !channels.is_empty() {
            report.skip(
                "serve.channels",
                "every push channel in the store is stopped: `orgsync serve` creates one \
                 when it starts",
            );
        }
        return;
    }
    let live: Vec<_> = open.iter().filter(|c| c.expiration > now).collect();
    if live.is_empty() {
        report.fail(
            "serve.channels",
            format!(
                "all {} push channels in the store have expired: directory changes are not \
                 being pushed",
                open.len()
            ),
            "start `orgsync serve` (it renews channels before they expire), or run \
             `orgsync channels renew`",
        );
    } else {
        let soonest = live.iter().map(|c| c.expiration).min().unwrap_or(now);
        let events: Vec<&str> = live.iter().map(|c| c.event.as_str()).collect();
        report.pass(
            "serve.channels",
            format!(
                "{} live push channel(s) ({}); the first expires in {} min",
                live.len(),
                events.join(", "),
                (soonest - now).num_minutes()
            ),
        );
    }
}

/// `/healthz` on the public host: the webhook path replaced when the URL ends with it.
fn health_url(public: &str, webhook_path: &str) -> String {
    let trimmed = public.trim_end_matches('/');
    let base = trimmed
        .strip_suffix(webhook_path.trim_end_matches('/'))
        .filter(|_| !webhook_path.trim_matches('/').is_empty())
        .unwrap_or_else(|| match url::Url::parse(trimmed) {
            Ok(u) => &trimmed[..u.origin().ascii_serialization().len()],
            Err(_) => trimmed,
        });
    format!("{}/healthz", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_activation_link_is_taken_from_googles_message() {
        let m = "People API has not been used in project 12 before or it is disabled. Enable \
                 it by visiting https://console.developers.google.com/apis/api/people.googleapis.com/overview?project=12 then retry.";
        assert_eq!(
            activation_link(m),
            Some(
                "https://console.developers.google.com/apis/api/people.googleapis.com/overview?project=12"
            )
        );
        assert_eq!(activation_link("Access Not Configured."), None);
    }

    #[test]
    fn the_health_url_replaces_the_webhook_path_or_takes_the_origin() {
        assert_eq!(
            health_url("https://sync.example.com/webhook/google", "/webhook/google"),
            "https://sync.example.com/healthz"
        );
        assert_eq!(
            health_url("https://proxy.example.com/orgsync/hook", "/webhook/google"),
            "https://proxy.example.com/healthz"
        );
        assert_eq!(
            health_url(
                "https://x.example.com/prefix/webhook/google/",
                "/webhook/google"
            ),
            "https://x.example.com/prefix/healthz"
        );
    }

    #[test]
    fn default_jobs_add_mail_only_when_the_config_sends_mail() {
        let mut config = Config::default();
        assert_eq!(Job::defaults(&config), vec![Job::Contacts, Job::Users]);
        config.mail.report_to = vec!["it@example.com".into()];
        assert_eq!(
            Job::defaults(&config),
            vec![Job::Contacts, Job::Users, Job::Mail]
        );
        assert!(Job::Contacts.apis(&config).contains(&Api::Gmail));
    }
}
