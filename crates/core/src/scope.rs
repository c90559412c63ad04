//! Scope rules: which directory users a job looks at.
//!
//! Both jobs need the same selection language, the one admins know from other sync
//! tools (e.g. Bitwarden Directory Connector's filters,
//! <https://bitwarden.com/help/user-group-filters/>): org-unit subtrees, groups (nested
//! membership flattened by the caller), a Directory `query` (applied server-side by the
//! caller; the planner only records it), explicit include/exclude lists, and status
//! filters (suspended, archived, hidden from the GAL).
//!
//! # Precedence (documented, tested)
//!
//! 1. A user without an immutable `id` is never selected: the id is the identity key.
//! 2. **`exclude` and the opt-outs beat everything**, including `include`: `exclude`
//!    by address (the primary email and the aliases, case-insensitively),
//!    `exclude_groups` by membership (nested groups resolved), `exclude_if` by a custom
//!    schema field. An opt-out is a person's choice (keep my number off everyone's
//!    phone), so no rule of the admin's overrides it.
//! 3. **Status filters beat `include`**: a suspended, archived or GAL-hidden user is not
//!    selected unless the matching `include_*` flag is set. An explicit include list is
//!    a way to reach people *outside the OU/group filters*, not a way to publish an
//!    account Google itself hides; an admin who wants that sets the flag.
//! 4. `include` selects a user even outside the OU and group filters.
//! 5. Otherwise the user must match the OU filter **and** the group filter; within one
//!    filter any entry matches (OR). An empty list means "everyone".
//!
//! `query` is not evaluated here: the caller passes it to `users.list`. A user listed in
//! `include` but not returned by the query must be fetched by the caller (`users.get`)
//! and added to the users it hands to [`DirectorySnapshot::select`].

use std::collections::{BTreeMap, BTreeSet};

use orgsync_wire::directory::User;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Selection rules for sources (whose contacts are copied), targets (who receives them)
/// or app users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScopeRules {
    /// Org-unit paths; a user matches when its `orgUnitPath` is the path or below it.
    pub org_units: Vec<String>,
    /// Group emails; membership (nested groups flattened) comes from [`GroupMembership`].
    pub groups: Vec<String>,
    /// A Directory `query` the caller applies through `users.list`; recorded only.
    pub query: Option<String>,
    /// Emails always selected (subject to `exclude` and the status filters).
    pub include: Vec<String>,
    /// Emails never selected.
    pub exclude: Vec<String>,
    /// Groups whose members (nested groups resolved) are never selected: an opt-out list
    /// kept in the Admin console.
    pub exclude_groups: Vec<String>,
    /// A custom-schema field that opts a person out, e.g. `Privacy.HideFromContacts` equal
    /// to `true`.
    pub exclude_if: Option<FieldMatch>,
    pub include_suspended: bool,
    pub include_archived: bool,
    pub include_hidden_from_gal: bool,
}

/// `customSchemas.<schema>.<field>` equals `equals`: an opt-out field, or a role rule's
/// condition.
///
/// Matching is liberal, as it must be with what the Admin console and identity providers
/// store (Entra, for one, may send a Boolean as the string `"False"`): a multi-valued
/// field (an array, items plain or `{"value": …}`) matches when any item matches, and a
/// Boolean matches the strings `"true"`/`"false"` in any case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMatch {
    pub schema: String,
    pub field: String,
    pub equals: Value,
}

impl FieldMatch {
    pub fn matches(&self, user: &User) -> bool {
        custom_field_equals(user, &self.schema, &self.field, &self.equals)
    }
}

/// Whether the user's `customSchemas.<schema>.<field>` equals `want` ([`FieldMatch`]).
pub fn custom_field_equals(user: &User, schema: &str, field: &str, want: &Value) -> bool {
    let Some(v) = user.custom_field(schema, field) else {
        return false;
    };
    match v {
        Value::Array(items) => items.iter().any(|item| {
            loosely_equal(item, want) || item.get("value").is_some_and(|x| loosely_equal(x, want))
        }),
        other => loosely_equal(other, want),
    }
}

fn loosely_equal(v: &Value, want: &Value) -> bool {
    if v == want {
        return true;
    }
    match (v, want) {
        (Value::String(s), Value::Bool(b)) => s.trim().eq_ignore_ascii_case(&b.to_string()),
        (Value::String(s), Value::Number(n)) => s.trim() == n.to_string(),
        (Value::Number(n), Value::String(s)) => s.trim() == n.to_string(),
        _ => false,
    }
}

/// Flattened group membership: group email (lower-cased) → user ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMembership {
    by_group: BTreeMap<String, BTreeSet<String>>,
}

impl GroupMembership {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record that `user_id` is a (direct or nested) member of `group_email`.
    pub fn add(&mut self, group_email: &str, user_id: impl Into<String>) {
        self.by_group
            .entry(group_email.trim().to_lowercase())
            .or_default()
            .insert(user_id.into());
    }

    /// Make sure a group is known even when it has no members (an empty group then
    /// selects nobody, instead of looking like a missing read).
    pub fn add_group(&mut self, group_email: &str) {
        self.by_group
            .entry(group_email.trim().to_lowercase())
            .or_default();
    }

    pub fn contains(&self, group_email: &str, user_id: &str) -> bool {
        self.by_group
            .get(&group_email.trim().to_lowercase())
            .is_some_and(|m| m.contains(user_id))
    }

    pub fn members(&self, group_email: &str) -> Option<&BTreeSet<String>> {
        self.by_group.get(&group_email.trim().to_lowercase())
    }
}

fn norm_email(s: &str) -> String {
    s.trim().to_lowercase()
}

fn norm_ou(s: &str) -> String {
    let t = s.trim().trim_end_matches('/').to_lowercase();
    if t.is_empty() { "/".to_string() } else { t }
}

/// `/Sales` matches `/Sales` and `/Sales/EMEA`, not `/SalesOps`; `/` matches everyone.
pub fn ou_matches(rule: &str, user_ou: &str) -> bool {
    let rule = norm_ou(rule);
    let user = norm_ou(user_ou);
    rule == "/" || user == rule || user.starts_with(&format!("{rule}/"))
}

fn user_emails(user: &User) -> impl Iterator<Item = String> + '_ {
    user.primary_email
        .iter()
        .chain(user.aliases.iter().flatten())
        .chain(user.non_editable_aliases.iter().flatten())
        .map(|e| norm_email(e))
}

impl ScopeRules {
    /// Whether the user opted out through `exclude_groups` or `exclude_if`.
    pub fn opted_out(&self, user: &User, id: &str, groups: &GroupMembership) -> bool {
        self.exclude_groups.iter().any(|g| groups.contains(g, id))
            || self.exclude_if.as_ref().is_some_and(|m| m.matches(user))
    }

    /// The groups whose membership selection needs: `groups` and `exclude_groups`.
    pub fn group_emails(&self) -> impl Iterator<Item = &String> {
        self.groups.iter().chain(&self.exclude_groups)
    }

    /// Whether `user` is selected. See the module docs for the precedence.
    pub fn selects(&self, user: &User, groups: &GroupMembership) -> bool {
        self.selects_structurally(user, groups) && self.passes_status_filters(user)
    }

    /// The status filters alone (suspended / archived / hidden from the GAL).
    pub fn passes_status_filters(&self, user: &User) -> bool {
        (self.include_suspended || !user.suspended.unwrap_or(false))
            && (self.include_archived || !user.archived.unwrap_or(false))
            && (self.include_hidden_from_gal || user.in_global_address_list())
    }

    /// Selection ignoring the status filters: id present, not excluded, and included
    /// or matching the OU and group filters. The users job uses this: a suspended user
    /// in scope is deactivated, not treated as gone.
    pub fn selects_structurally(&self, user: &User, groups: &GroupMembership) -> bool {
        let Some(id) = user.id.as_deref().filter(|id| !id.is_empty()) else {
            return false;
        };
        let excluded: BTreeSet<String> = self.exclude.iter().map(|e| norm_email(e)).collect();
        if user_emails(user).any(|e| excluded.contains(&e)) || self.opted_out(user, id, groups) {
            return false;
        }
        let included: BTreeSet<String> = self.include.iter().map(|e| norm_email(e)).collect();
        if user_emails(user).any(|e| included.contains(&e)) {
            return true;
        }
        let ou_ok = self.org_units.is_empty()
            || self
                .org_units
                .iter()
                .any(|rule| ou_matches(rule, user.org_unit_path.as_deref().unwrap_or("/")));
        let group_ok = self.groups.is_empty() || self.groups.iter().any(|g| groups.contains(g, id));
        ou_ok && group_ok
    }
}

/// The selected source users, keyed by immutable directory id, plus how many users the
/// directory read returned before scoping (the guard treats an empty read specially).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectorySnapshot {
    pub users: BTreeMap<String, User>,
    /// Users returned by the directory read, before scope rules.
    pub read_count: usize,
}

impl DirectorySnapshot {
    /// Apply `rules` to everything the directory read returned.
    pub fn select(users: &[User], rules: &ScopeRules, groups: &GroupMembership) -> Self {
        Self::select_from(users, users.len(), rules, groups)
    }

    /// [`Self::select`] over any users (`read_count`: how many the read returned),
    /// copying only the selected ones.
    pub fn select_from<'a>(
        users: impl IntoIterator<Item = &'a User>,
        read_count: usize,
        rules: &ScopeRules,
        groups: &GroupMembership,
    ) -> Self {
        let selected = users
            .into_iter()
            .filter(|u| rules.selects(u, groups))
            .filter_map(|u| Some((u.id.clone()?, u.clone())))
            .collect();
        DirectorySnapshot {
            users: selected,
            read_count,
        }
    }

    /// Take users that were already selected by the caller.
    pub fn from_selected(users: impl IntoIterator<Item = User>, read_count: usize) -> Self {
        let users = users
            .into_iter()
            .filter_map(|u| Some((u.id.clone().filter(|i| !i.is_empty())?, u)))
            .collect();
        DirectorySnapshot { users, read_count }
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, email: &str, ou: &str) -> User {
        User {
            id: Some(id.into()),
            primary_email: Some(email.into()),
            org_unit_path: Some(ou.into()),
            ..Default::default()
        }
    }

    #[test]
    fn empty_rules_select_everyone_active() {
        let r = ScopeRules::default();
        let g = GroupMembership::new();
        assert!(r.selects(&user("1", "a@x.com", "/"), &g));
        let mut s = user("2", "b@x.com", "/");
        s.suspended = Some(true);
        assert!(
            !r.selects(&s, &g),
            "suspended users are not copied by default"
        );
        let mut a = user("3", "c@x.com", "/");
        a.archived = Some(true);
        assert!(!r.selects(&a, &g));
        let mut h = user("4", "d@x.com", "/");
        h.include_in_global_address_list = Some(false);
        assert!(
            !r.selects(&h, &g),
            "GAL-hidden users are not copied by default"
        );
        let flags = ScopeRules {
            include_suspended: true,
            include_archived: true,
            include_hidden_from_gal: true,
            ..Default::default()
        };
        assert!(flags.selects(&s, &g) && flags.selects(&a, &g) && flags.selects(&h, &g));
    }

    #[test]
    fn user_without_id_is_never_selected() {
        let mut u = user("", "a@x.com", "/");
        let r = ScopeRules {
            include: vec!["a@x.com".into()],
            ..Default::default()
        };
        assert!(!r.selects(&u, &GroupMembership::new()));
        u.id = None;
        assert!(!r.selects(&u, &GroupMembership::new()));
    }

    #[test]
    fn ou_subtree_match() {
        assert!(ou_matches("/Sales", "/Sales"));
        assert!(ou_matches("/Sales/", "/sales/EMEA"));
        assert!(!ou_matches("/Sales", "/SalesOps"));
        assert!(ou_matches("/", "/anything"));
        assert!(!ou_matches("/Sales", "/"));
    }

    #[test]
    fn exclude_beats_include_and_aliases_count() {
        let mut u = user("1", "a@x.com", "/Eng");
        u.aliases = Some(vec!["alias@x.com".into()]);
        let r = ScopeRules {
            include: vec!["A@X.com".into()],
            exclude: vec!["alias@x.com".into()],
            ..Default::default()
        };
        assert!(!r.selects(&u, &GroupMembership::new()));
    }

    #[test]
    fn include_reaches_outside_filters_but_not_past_status_filters() {
        let r = ScopeRules {
            org_units: vec!["/Sales".into()],
            include: vec!["ceo@x.com".into()],
            ..Default::default()
        };
        let g = GroupMembership::new();
        let mut ceo = user("1", "ceo@x.com", "/Board");
        assert!(r.selects(&ceo, &g));
        assert!(!r.selects(&user("2", "dev@x.com", "/Eng"), &g));
        ceo.suspended = Some(true);
        assert!(!r.selects(&ceo, &g), "status filters beat include");
        assert!(r.selects_structurally(&ceo, &g));
    }

    #[test]
    fn ou_and_group_filters_are_anded_entries_ored() {
        let r = ScopeRules {
            org_units: vec!["/Sales".into(), "/Ops".into()],
            groups: vec!["Team@x.com".into()],
            ..Default::default()
        };
        let mut g = GroupMembership::new();
        g.add("team@X.com", "1");
        g.add("team@x.com", "3");
        assert!(r.selects(&user("1", "a@x.com", "/Sales/EMEA"), &g));
        assert!(
            !r.selects(&user("2", "b@x.com", "/Sales"), &g),
            "not in group"
        );
        assert!(!r.selects(&user("3", "c@x.com", "/Eng"), &g), "not in OU");
    }

    #[test]
    fn snapshot_keys_by_id_and_records_read_count() {
        let users = vec![user("1", "a@x.com", "/"), {
            let mut s = user("2", "b@x.com", "/");
            s.suspended = Some(true);
            s
        }];
        let snap =
            DirectorySnapshot::select(&users, &ScopeRules::default(), &GroupMembership::new());
        assert_eq!(snap.read_count, 2);
        assert_eq!(snap.users.keys().collect::<Vec<_>>(), ["1"]);
    }
}
