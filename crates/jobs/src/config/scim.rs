//! `[[scim]]`: one table per SCIM 2.0 application that orgsync provisions.
//!
//! ```toml
//! [[scim]]
//! name = "aws"
//! url = "https://scim.eu-west-1.amazonaws.com/abcd-1234/scim/v2"
//! token_file = "aws-scim.token"        # or token_env = "AWS_SCIM_TOKEN"
//! groups = ["engineering@example.com"] # nested groups are flattened
//! deprovision = "deactivate"           # or "delete"
//! members_per_patch = 100              # AWS takes at most 100 per request
//! ```
//!
//! A relative `token_file` is relative to the config file, like every other path.

use std::path::PathBuf;

use orgsync_core::scim::{Attr, CustomAttribute, ScimDeprovision, ScimMapping, UserNameCase};
use orgsync_scim::{MemberRemoval, Quirks, Token};
use serde::{Deserialize, Serialize};

use super::{ConfigError, ScopeConfig};

/// One Directory custom-schema field that fills a SCIM attribute.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScimAttributeConfig {
    pub schema: String,
    pub field: String,
    /// `title`, `displayName`, `employeeNumber`, `department`, `organization`,
    /// `costCenter` or `division`.
    pub attribute: String,
}

/// The SCIM attributes a custom field may fill.
const MAPPABLE: [(&str, Attr); 7] = [
    ("title", Attr::Title),
    ("displayName", Attr::DisplayName),
    ("employeeNumber", Attr::EmployeeNumber),
    ("department", Attr::Department),
    ("organization", Attr::Organization),
    ("costCenter", Attr::CostCenter),
    ("division", Attr::Division),
];

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScimTargetConfig {
    /// How commands and the report name this application (`--target NAME`).
    pub name: String,
    /// The SCIM base URL: `Users` and `Groups` are under it.
    pub url: String,
    /// A file holding the bearer token (keep it 0600).
    pub token_file: Option<PathBuf>,
    /// Or: the environment variable holding it.
    pub token_env: Option<String>,
    /// Who is provisioned. Unset: the `[users.scope]`.
    pub users: Option<ScopeConfig>,
    /// Directory groups (emails) pushed as SCIM Groups, nested members flattened.
    pub groups: Vec<String>,
    /// Also every group a Directory `groups.list` query returns (`email:aws-*`,
    /// `name:'Team*'`): groups named in the console reach the app without a config change.
    pub groups_query: Option<String>,
    pub deprovision: ScimDeprovision,
    /// Stop before writing when a run would deprovision more than this share of the
    /// users (or delete more than this share of the groups) orgsync manages there.
    pub max_deprovision_share: f64,
    /// `preserve` (default) or `lower`: how `userName` (the primary email) is written.
    pub user_name_case: UserNameCase,
    /// `[[scim.attributes]]`: custom-schema fields that fill SCIM attributes.
    pub attributes: Vec<ScimAttributeConfig>,
    /// Members added or removed per PATCH (AWS IAM Identity Center: at most 100).
    pub members_per_patch: usize,
    /// `filter` (RFC 7644's `members[value eq "…"]`) or `value` (GitHub).
    pub member_removal: MemberRemoval,
    /// `Replace`/`Add`/`Remove` op names (Entra's older gateway).
    pub capitalized_ops: bool,
    /// Resources per listing page. Unset: what the server announces (`maxResults`, at
    /// most 1,000), else 100.
    pub page_size: Option<usize>,
    /// Seconds one request may take.
    pub timeout_secs: u64,
    /// Requests in flight at once against this server.
    pub concurrency: usize,
}

impl Default for ScimTargetConfig {
    fn default() -> Self {
        let quirks = Quirks::default();
        ScimTargetConfig {
            name: String::new(),
            url: String::new(),
            token_file: None,
            token_env: None,
            users: None,
            groups: Vec::new(),
            groups_query: None,
            deprovision: ScimDeprovision::Deactivate,
            max_deprovision_share: 0.2,
            user_name_case: UserNameCase::Preserve,
            attributes: Vec::new(),
            members_per_patch: quirks.members_per_patch,
            member_removal: quirks.member_removal,
            capitalized_ops: quirks.capitalized_ops,
            page_size: quirks.page_size,
            timeout_secs: 30,
            concurrency: 4,
        }
    }
}

impl std::fmt::Debug for ScimTargetConfig {
    // The token lives in a file or the environment; only where is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimTargetConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("token_file", &self.token_file)
            .field("token_env", &self.token_env)
            .field("groups", &self.groups)
            .field("groups_query", &self.groups_query)
            .field("deprovision", &self.deprovision)
            .finish_non_exhaustive()
    }
}

impl ScimTargetConfig {
    pub fn quirks(&self) -> Quirks {
        Quirks {
            members_per_patch: self.members_per_patch,
            member_removal: self.member_removal,
            capitalized_ops: self.capitalized_ops,
            page_size: self.page_size,
        }
    }

    pub fn mapping(&self) -> ScimMapping {
        ScimMapping {
            user_name_case: self.user_name_case,
            custom: self
                .attributes
                .iter()
                .filter_map(|a| {
                    let attr = MAPPABLE.iter().find(|(n, _)| *n == a.attribute)?.1;
                    Some(CustomAttribute {
                        schema: a.schema.clone(),
                        field: a.field.clone(),
                        attr,
                    })
                })
                .collect(),
        }
    }

    /// The bearer token, from `token_file` or `token_env`.
    pub fn token(&self) -> Result<Token, ConfigError> {
        let name = &self.name;
        let token = match (&self.token_file, &self.token_env) {
            (Some(path), _) => std::fs::read_to_string(path).map_err(|e| {
                ConfigError::Invalid(format!(
                    "scim target '{name}': token_file {} cannot be read: {e}",
                    path.display()
                ))
            })?,
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                ConfigError::Invalid(format!(
                    "scim target '{name}': the environment variable {var} (token_env) is not set"
                ))
            })?,
            (None, None) => {
                return Err(ConfigError::Invalid(format!(
                    "scim target '{name}': set token_file or token_env"
                )));
            }
        };
        if token.trim().is_empty() {
            return Err(ConfigError::Invalid(format!(
                "scim target '{name}': the bearer token is empty"
            )));
        }
        Ok(Token::new(token))
    }

    pub(super) fn validate(&self, i: usize) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("scim[{i}]: {m}")));
        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(format!(
                "name = {:?}: give each [[scim]] target a short name of letters, digits, - or _ \
                 (it is used in --target and in the state store)",
                self.name
            ));
        }
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return bad(format!(
                    "url = {:?} is not an http(s) URL: give the SCIM base URL the app shows \
                     (the one Users and Groups are under)",
                    self.url
                ));
            }
        }
        if self.token_file.is_none() && self.token_env.is_none() {
            return bad(
                "no token: set token_file (a file holding the app's SCIM bearer token) or \
                 token_env (an environment variable holding it)"
                    .into(),
            );
        }
        if !(0.0..=1.0).contains(&self.max_deprovision_share) {
            return bad(format!(
                "max_deprovision_share must be between 0 and 1, got {}",
                self.max_deprovision_share
            ));
        }
        if self.members_per_patch == 0 || self.page_size == Some(0) || self.concurrency == 0 {
            return bad("members_per_patch, page_size and concurrency must be at least 1".into());
        }
        if self.timeout_secs == 0 {
            return bad("timeout_secs must be at least 1".into());
        }
        for a in &self.attributes {
            if !MAPPABLE.iter().any(|(n, _)| *n == a.attribute) {
                let names: Vec<&str> = MAPPABLE.iter().map(|(n, _)| *n).collect();
                return bad(format!(
                    "attributes: {:?} is not an attribute a custom field can fill; use one of {}",
                    a.attribute,
                    names.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Check every target, and that names are unique.
pub(super) fn validate_all(targets: &[ScimTargetConfig]) -> Result<(), ConfigError> {
    for (i, t) in targets.iter().enumerate() {
        t.validate(i)?;
        if targets[..i].iter().any(|o| o.name == t.name) {
            return Err(ConfigError::Invalid(format!(
                "two [[scim]] targets are named {:?}: names must be unique",
                t.name
            )));
        }
    }
    Ok(())
}
