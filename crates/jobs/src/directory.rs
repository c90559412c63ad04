//! Reading the directory for a run: every user of the customer (streamed page by page,
//! 500 per page), the flattened membership of the groups the scope rules name, and the
//! ids a scope's Directory `query` returns. Selection itself is the planner's
//! ([`orgsync_core::scope`]); this module only gathers what it needs.

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::TryStreamExt;
use orgsync_client::directory::UsersListParams;
use orgsync_client::{Error, GoogleClient};
use orgsync_core::scope::{DirectorySnapshot, GroupMembership, ScopeRules};
use orgsync_wire::directory::User;

use crate::config::GoogleConfig;

/// What one directory read returned.
#[derive(Debug, Clone, Default)]
pub struct DirectoryRead {
    /// Every user of the customer (or domain), in directory order.
    pub users: Vec<User>,
    /// Flattened membership (nested groups resolved) of the groups scope rules name.
    pub groups: GroupMembership,
    /// For each scope `query`, the ids `users.list?query=…` returned.
    pub query_ids: HashMap<String, HashSet<String>>,
}

impl DirectoryRead {
    /// The users `rules` select. A scope `query` narrows like an org-unit filter; an
    /// explicit `include` still reaches people outside it.
    pub fn select(&self, rules: &ScopeRules) -> DirectorySnapshot {
        DirectorySnapshot::select_from(self.selected(rules), self.users.len(), rules, &self.groups)
    }

    /// The users a scope's rules select, borrowed: a caller that needs a few fields of
    /// each (the contacts run's targets need id and email) copies only those instead of
    /// a whole snapshot of the directory.
    pub fn selected<'a>(
        &'a self,
        rules: &'a ScopeRules,
    ) -> impl Iterator<Item = &'a User> + Clone + 'a {
        self.users.iter().filter(move |u| self.selects(rules, u))
    }

    /// Whether `rules` select `user`, a user of this read (or one taken out of it: a run
    /// that consumes `users` still asks the read's groups and query results).
    pub fn selects(&self, rules: &ScopeRules, user: &User) -> bool {
        self.in_query(rules, user) && rules.selects(user, &self.groups)
    }

    /// Whether a scope's Directory `query` returned `user` (always, without a query), or
    /// its `include` names them.
    pub fn in_query(&self, rules: &ScopeRules, user: &User) -> bool {
        match &rules.query {
            None => true,
            Some(q) => {
                user.id
                    .as_ref()
                    .is_some_and(|id| self.query_ids.get(q).is_some_and(|s| s.contains(id)))
                    || is_included(rules, user)
            }
        }
    }
}

fn is_included(rules: &ScopeRules, user: &User) -> bool {
    let mut emails = user
        .primary_email
        .iter()
        .chain(user.aliases.iter().flatten());
    emails.any(|e| {
        rules
            .include
            .iter()
            .any(|i| i.eq_ignore_ascii_case(e.trim()))
    })
}

/// What scope rules read of a user ([`ScopeRules::selects`] and `include`/`exclude` by
/// address): a job's own `fields` mask must contain all of it.
pub const SCOPE_FIELDS: &str = "id,primaryEmail,aliases,nonEditableAliases,suspended,archived,orgUnitPath,includeInGlobalAddressList";

/// Read the directory for `rules` (sources, targets, app users…). `projection` is
/// `basic` or `full` (custom schemas, needed by role rules). `fields` is a partial
/// response for each user (`users(…)` is added around it), which must include
/// [`SCOPE_FIELDS`]; `None` reads whole users. `schemas`: custom schemas the caller
/// maps (the contacts' `custom_fields`), read with those of the rules' `exclude_if`.
pub async fn read_directory(
    client: &GoogleClient,
    google: &GoogleConfig,
    rules: &[&ScopeRules],
    projection: &str,
    fields: Option<&str>,
    schemas: &[&str],
) -> Result<DirectoryRead, Error> {
    let mut users = Vec::new();
    let mut read = read_directory_each(
        client,
        google,
        rules,
        projection,
        fields,
        schemas,
        |_, u| users.push(u),
    )
    .await?;
    read.users = users;
    Ok(read)
}

/// [`read_directory`] without keeping the users: each is handed to `each` as its page
/// arrives, with the read's groups and query results (read first) to select it by, and
/// the returned read has no `users`. A job that reduces each user to what it needs holds
/// that, never the directory (at 100,000 people the whole read was most of a run's
/// memory).
pub async fn read_directory_each(
    client: &GoogleClient,
    google: &GoogleConfig,
    rules: &[&ScopeRules],
    projection: &str,
    fields: Option<&str>,
    schemas: &[&str],
    mut each: impl FnMut(&DirectoryRead, User),
) -> Result<DirectoryRead, Error> {
    let read = read_scope_facts(client, google, rules).await?;
    let directory = client.directory();
    let base = UsersListParams {
        projection: Some(projection.to_string()),
        ..users_list_base(google)
    };
    // Opt-outs (`exclude_if`) and mapped custom fields read custom schemas: a basic read
    // asks for exactly those (`projection=custom`), and a partial one adds
    // `customSchemas`.
    let schemas: BTreeSet<&str> = rules
        .iter()
        .filter_map(|r| r.exclude_if.as_ref())
        .map(|m| m.schema.as_str())
        .chain(schemas.iter().copied())
        .collect();
    let (projection, custom_field_mask) = if !schemas.is_empty() && projection == "basic" {
        let mask: Vec<&str> = schemas.into_iter().collect();
        (Some("custom".to_string()), Some(mask.join(",")))
    } else {
        (base.projection.clone(), None)
    };
    let fields = fields.map(|f| match projection.as_deref() {
        Some("custom") if !f.split(',').any(|x| x == "customSchemas") => {
            format!("users({f},customSchemas)")
        }
        _ => format!("users({f})"),
    });
    let whole = UsersListParams {
        fields,
        projection,
        custom_field_mask,
        ..base
    };
    let mut users = std::pin::pin!(directory.users_list(whole));
    while let Some(user) = users
        .try_next()
        .await
        .map_err(|e| explain_denied(e, google))?
    {
        each(&read, user);
    }
    Ok(read)
}

/// The groups' flattened membership and the queries' ids a scope needs, read before the
/// users so that each user can be selected as it arrives.
async fn read_scope_facts(
    client: &GoogleClient,
    google: &GoogleConfig,
    rules: &[&ScopeRules],
) -> Result<DirectoryRead, Error> {
    let directory = client.directory();
    let base = users_list_base(google);
    let mut read = DirectoryRead::default();
    let groups: BTreeSet<String> = rules
        .iter()
        .flat_map(|r| r.group_emails())
        .map(|g| g.trim().to_lowercase())
        .collect();
    for group in groups {
        read.groups.add_group(&group);
        let mut members = std::pin::pin!(directory.members_list(&group, true, None));
        while let Some(member) = members
            .try_next()
            .await
            .map_err(|e| explain_denied(e, google))?
        {
            let is_user = member
                .kind_of_member
                .as_deref()
                .is_none_or(|t| t.eq_ignore_ascii_case("USER"));
            if let (true, Some(id)) = (is_user, member.id) {
                read.groups.add(&group, id);
            }
        }
    }
    let queries: BTreeSet<String> = rules.iter().filter_map(|r| r.query.clone()).collect();
    for query in queries {
        // Only the ids of a query's users are kept.
        let params = UsersListParams {
            query: Some(query.clone()),
            projection: Some("basic".into()),
            fields: Some("users(id)".into()),
            ..base.clone()
        };
        let ids: HashSet<String> = directory
            .users_list(params)
            .try_filter_map(|u| async move { Ok(u.id) })
            .try_collect()
            .await
            .map_err(|e| explain_denied(e, google))?;
        read.query_ids.insert(query, ids);
    }
    Ok(read)
}

/// `users.list` (and `users.watch`) of the configured customer (or, without one, the
/// domain).
pub fn users_list_base(google: &GoogleConfig) -> UsersListParams {
    UsersListParams {
        customer: google.customer.clone(),
        domain: if google.customer.is_none() {
            google.domain.clone()
        } else {
            None
        },
        ..UsersListParams::default()
    }
}

/// A Directory 403 (`Not Authorized to access this resource/api`) almost always means the
/// impersonated subject is not an administrator: say so, and name the setting.
fn explain_denied(mut e: Error, google: &GoogleConfig) -> Error {
    if let Error::Api(api) = &mut e
        && api.status == Some(403)
        && api.kind == orgsync_client::ErrorKind::Auth
        && !api.is_api_disabled()
    {
        let subject = google.admin_subject.as_deref().unwrap_or("(not set)");
        api.message = format!(
            "{}. The Directory API answers only an administrator: [google] admin_subject \
             ({subject}) must be a Workspace admin whose role has the Admin API privileges \
             Users → Read (and Groups → Read for group scopes), and the service account's \
             domain-wide delegation must include the admin.directory scopes",
            api.message.trim_end_matches('.')
        );
    }
    e
}
