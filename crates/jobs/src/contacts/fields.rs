//! The custom attributes a contacts config names (`[[contacts.custom_fields]]`,
//! `exclude_if`), checked against the Directory's custom schemas before the run.
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

use super::ContactsError;
use crate::config::Config;

/// The scope the check reads the schemas with.
pub const SCHEMA_SCOPE: &str = orgsync_wire::scopes::DIRECTORY_USERSCHEMA_READONLY;

/// Every `(setting, schema, field)` the contacts config names.
fn named(config: &Config) -> Vec<(String, &str, &str)> {
    let c = &config.contacts;
    let mut out: Vec<(String, &str, &str)> = c
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
    for (name, scope) in [("sources", &c.sources), ("targets", &c.targets)] {
        if let Some(m) = &scope.exclude_if {
            out.push((
                format!("contacts.{name}.exclude_if"),
                m.schema.as_str(),
                m.field.as_str(),
            ));
        }
    }
    out
}

/// The first named attribute the Directory does not have, as an admin would fix it.
pub fn first_unknown(named: &[(String, &str, &str)], schemas: &[Schema]) -> Option<ContactsError> {
    for (setting, schema, field) in named {
        let Some(s) = schemas.iter().find(|s| s.schema_name == *schema) else {
            let mut have: Vec<&str> = schemas.iter().map(|s| s.schema_name.as_str()).collect();
            have.sort_unstable();
            let hint = schemas
                .iter()
                .find(|s| s.schema_name.eq_ignore_ascii_case(schema))
                .map(|s| format!(" (names are case-sensitive: {:?}?)", s.schema_name))
                .unwrap_or_default();
            return Some(ContactsError::UnknownField {
                setting: setting.clone(),
                problem: format!(
                    "the Directory has no custom attribute category {schema:?}{hint}; its \
                     categories: {}",
                    list(&have)
                ),
            });
        };
        if !s.fields.iter().any(|f| f.field_name == *field) {
            let have: Vec<&str> = s.fields.iter().map(|f| f.field_name.as_str()).collect();
            let hint = s
                .fields
                .iter()
                .find(|f| f.field_name.eq_ignore_ascii_case(field))
                .map(|f| format!(" (names are case-sensitive: {:?}?)", f.field_name))
                .unwrap_or_default();
            return Some(ContactsError::UnknownField {
                setting: setting.clone(),
                problem: format!(
                    "the category {schema:?} has no field {field:?}{hint}; its fields: {}",
                    list(&have)
                ),
            });
        }
    }
    None
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Check the named attributes; `Err` only for one the Directory does not have.
pub(super) async fn check(client: &GoogleClient, config: &Config) -> Result<(), ContactsError> {
    let named = named(config);
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
        .schemas_list(config.google.customer.as_deref())
        .await
    {
        Ok(s) => first_unknown(&named, &s.schemas).map_or(Ok(()), Err),
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
