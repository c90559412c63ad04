//! The custom attributes a config names (`[[contacts.custom_fields]]`, `users.roles`,
//! `[[scim.attributes]]`, every scope's `exclude_if`), checked against the Directory's
//! custom schemas before a job reads the directory.
//!
//! Google returns nothing for a misspelt schema or field, the same as for an empty one,
//! so without this check a typo silently copies nothing (or opts nobody out). Reading
//! the schemas needs one more scope, `admin.directory.userschema.readonly`, which
//! existing setups may not have delegated: the check asks for it with a token of its
//! own, and when that is refused the run goes on, with the per-run "no value seen"
//! warning as the only hint
//! (<https://developers.google.com/workspace/admin/directory/reference/rest/v1/schemas/list>).

use orgsync_client::{ApiScopes, ErrorKind, GoogleClient};
use orgsync_wire::directory::Schema;

use crate::config::{Config, GoogleConfig, ScopeConfig};

/// A custom attribute a setting names that the Directory does not have: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct UnknownAttribute {
    /// The setting that names it (`contacts.custom_fields[0]`).
    pub setting: String,
    /// What is wrong and what exists instead.
    pub problem: String,
}

/// A setting and the `(schema, field)` it names.
pub type Named<'a> = (String, &'a str, &'a str);

/// The scope the check reads the schemas with.
pub const SCHEMA_SCOPE: &str = orgsync_wire::scopes::DIRECTORY_USERSCHEMA_READONLY;

fn exclude_if<'a>(setting: &str, scope: &'a ScopeConfig) -> Option<Named<'a>> {
    scope.exclude_if.as_ref().map(|m| {
        (
            format!("{setting}.exclude_if"),
            m.schema.as_str(),
            m.field.as_str(),
        )
    })
}

/// What the contacts job names.
pub fn of_contacts(config: &Config) -> Vec<Named<'_>> {
    let c = &config.contacts;
    let mut out: Vec<Named<'_>> = c
        .custom_fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                format!("contacts.custom_fields[{i}]"),
                f.schema.as_str(),
                f.field.as_str(),
            )
        })
        .collect();
    out.extend(exclude_if("contacts.sources", &c.sources));
    out.extend(exclude_if("contacts.targets", &c.targets));
    out
}

/// What the users job names: its role rules and its scope's opt-out.
pub fn of_users(config: &Config) -> Vec<Named<'_>> {
    let u = &config.users;
    let mut out: Vec<Named<'_>> = u
        .roles
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                format!("users.roles[{i}]"),
                r.schema.as_str(),
                r.field.as_str(),
            )
        })
        .collect();
    out.extend(exclude_if("users.scope", &u.scope));
    out
}

/// What the SCIM apps name: their attribute mappings and their scopes' opt-outs.
pub fn of_scim(config: &Config) -> Vec<Named<'_>> {
    let mut out = Vec::new();
    for (t, target) in config.scim.iter().enumerate() {
        for (i, a) in target.attributes.iter().enumerate() {
            out.push((
                format!("scim[{t}].attributes[{i}]"),
                a.schema.as_str(),
                a.field.as_str(),
            ));
        }
        if let Some(scope) = &target.users {
            out.extend(exclude_if(&format!("scim[{t}].users"), scope));
        }
    }
    out
}

/// The first named attribute the Directory does not have, as an admin would fix it.
pub fn first_unknown(named: &[Named<'_>], schemas: &[Schema]) -> Option<UnknownAttribute> {
    for (setting, schema, field) in named {
        let problem = match schemas.iter().find(|s| s.schema_name == *schema) {
            None => {
                let mut have: Vec<&str> = schemas.iter().map(|s| s.schema_name.as_str()).collect();
                have.sort_unstable();
                let (hint, list) = what_exists(schema, &have);
                format!(
                    "the Directory has no custom attribute category {schema:?}{hint}; its \
                     categories: {list}"
                )
            }
            Some(s) if !s.fields.iter().any(|f| f.field_name == *field) => {
                let have: Vec<&str> = s.fields.iter().map(|f| f.field_name.as_str()).collect();
                let (hint, list) = what_exists(field, &have);
                format!("the category {schema:?} has no field {field:?}{hint}; its fields: {list}")
            }
            Some(_) => continue,
        };
        return Some(UnknownAttribute {
            setting: setting.clone(),
            problem,
        });
    }
    None
}

/// For a name that is not among `have`: a hint when it differs from one only by case,
/// and `have` as a list to choose from.
fn what_exists(wanted: &str, have: &[&str]) -> (String, String) {
    let hint = have
        .iter()
        .find(|h| h.eq_ignore_ascii_case(wanted))
        .map(|h| format!(" (names are case-sensitive: {h:?}?)"))
        .unwrap_or_default();
    let list = if have.is_empty() {
        "none".to_string()
    } else {
        have.join(", ")
    };
    (hint, list)
}

/// Check the named attributes; `Err` only for one the Directory does not have.
pub async fn check(
    client: &GoogleClient,
    google: &GoogleConfig,
    named: &[Named<'_>],
) -> Result<(), UnknownAttribute> {
    if named.is_empty() {
        return Ok(());
    }
    let mut cc = client.config().clone();
    cc.scopes = ApiScopes {
        directory: vec![SCHEMA_SCOPE.into()],
        ..ApiScopes::default()
    };
    let reader = GoogleClient::new(client.token_source().clone(), cc);
    match reader
        .directory()
        .schemas_list(google.customer.as_deref())
        .await
    {
        Ok(s) => first_unknown(named, &s.schemas).map_or(Ok(()), Err),
        Err(e) if e.kind() == ErrorKind::Auth => {
            tracing::info!(
                scope = SCHEMA_SCOPE,
                "custom attribute names not checked: delegate this scope so that a misspelt \
                 one stops the run"
            );
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "custom attribute names not checked");
            Ok(())
        }
    }
}
