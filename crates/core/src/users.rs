//! Directory → an application's user table (the users job): the pure reconcile planner.
//!
//! Conventions shared with other directory-to-app sync tools and SCIM providers (SCIM's
//! `active` flag is RFC 7643 §4.1.1): the key is the Directory's immutable user id (a
//! rename, a suspend → unsuspend or an undelete re-activates the *same* row);
//! deprovisioning defaults to **deactivate** (`active = false`, row and history kept),
//! with `delete` and `keep` opt-in; suspended or archived users are deactivated; rows
//! are rewritten only when their content hash differs (no churn); and the
//! [`crate::guard::SafetyGuard`] refuses mass deprovisioning after a bad read.
//!
//! Core does not depend on the store crate: the executor converts its rows to
//! [`ObservedAppUser`] and applies [`UsersPlan`] with the store's own types.
//!
//! Scope: [`plan_users`] selects with [`ScopeRules::selects_structurally`] — OU, group,
//! include and exclude — and ignores the status filters: a suspended user inside the
//! scope is *deactivated* (reason `suspended`), not treated as gone.

use std::collections::{BTreeMap, BTreeSet};

use orgsync_wire::directory::User;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::hash::stable_hash;
use crate::scope::{GroupMembership, ScopeRules};

/// "customSchemas.`schema`.`field` equals `equals` → role `role`", matched as
/// [`crate::scope::FieldMatch`] is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRule {
    pub schema: String,
    pub field: String,
    pub equals: Value,
    pub role: String,
}

impl RoleRule {
    pub fn matches(&self, user: &User) -> bool {
        crate::scope::custom_field_equals(user, &self.schema, &self.field, &self.equals)
    }
}

/// How app users are mapped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserMapping {
    pub roles: Vec<RoleRule>,
    /// Role given to Directory super admins (`isAdmin`), e.g. `"admin"`.
    pub admin_role: Option<String>,
}

/// What deprovisioning does to a user who left the directory or the scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeprovisionPolicy {
    /// `active = false`; row and history kept. The default.
    #[default]
    Deactivate,
    Delete,
    /// Leave the row as it is.
    Keep,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppPhone {
    pub value: String,
    /// Directory phone type (`work`, `mobile`, ... or the custom type).
    pub kind: String,
}

/// The row an application should hold for one Directory user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppUserDesired {
    pub directory_id: String,
    pub primary_email: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub full_name: Option<String>,
    pub is_admin: bool,
    pub suspended: bool,
    pub archived: bool,
    pub org_unit_path: Option<String>,
    pub department: Option<String>,
    pub title: Option<String>,
    pub phones: Vec<AppPhone>,
    /// schema → field → value, as the Directory returns them.
    pub custom_schemas: SchemaValues,
    pub roles: BTreeSet<String>,
    /// `!(suspended || archived)`.
    pub active: bool,
    /// Not part of the content hash: the etag changes on writes that change nothing
    /// orgsync maps.
    pub directory_etag: Option<String>,
}

impl AppUserDesired {
    /// Hash of everything except the etag. Stored with the row; an equal hash means
    /// the row needs no write.
    pub fn content_hash(&self) -> String {
        let mut v = self.clone();
        v.directory_etag = None;
        stable_hash(&v)
    }
}

/// A user's custom schema values (`schema → field → value`) as canonical JSON text (keys
/// sorted, no spaces). A reconcile holds one of these per changed user until the guard has
/// seen the whole plan, and a JSON object tree costs hundreds of bytes a node where its
/// text costs tens: at 100,000 users the maps were most of a first import's memory.
/// It serialises as the JSON object itself, the very bytes the map did, so the stored
/// content hashes stay what they were.
#[derive(Clone)]
pub struct SchemaValues(Box<RawValue>);

impl SchemaValues {
    pub fn new(values: &Map<String, Value>) -> Self {
        // A `Map` serialises its keys in order (serde_json's `preserve_order` is off, see
        // `crate::hash`), and serialising a `Value` cannot fail.
        let text = serde_json::to_string(values).unwrap_or_else(|_| "{}".into());
        SchemaValues(RawValue::from_string(text).unwrap_or_else(|_| Self::empty_raw()))
    }

    fn empty_raw() -> Box<RawValue> {
        RawValue::from_string("{}".into()).expect("`{}` is JSON")
    }

    /// The values as a JSON object.
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }

    /// The canonical JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    pub fn is_empty(&self) -> bool {
        self.0.get() == "{}"
    }
}

impl Default for SchemaValues {
    fn default() -> Self {
        SchemaValues(Self::empty_raw())
    }
}

impl From<Map<String, Value>> for SchemaValues {
    fn from(values: Map<String, Value>) -> Self {
        SchemaValues::new(&values)
    }
}

impl PartialEq for SchemaValues {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl std::fmt::Debug for SchemaValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.get())
    }
}

impl Serialize for SchemaValues {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SchemaValues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Map::<String, Value>::deserialize(d).map(|m| SchemaValues::new(&m))
    }
}

fn clean(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Map a Directory user; `None` without an id or primary email.
pub fn app_user_desired(user: &User, mapping: &UserMapping) -> Option<AppUserDesired> {
    let directory_id = clean(user.id.as_deref())?;
    let primary_email = clean(user.primary_email.as_deref())?.to_lowercase();
    let name = user.name.clone().unwrap_or_default();
    let org = user.primary_organization();
    let is_admin = user.is_admin.unwrap_or(false);
    let mut roles: BTreeSet<String> = mapping
        .roles
        .iter()
        .filter(|r| r.matches(user))
        .map(|r| r.role.clone())
        .collect();
    if is_admin && let Some(role) = &mapping.admin_role {
        roles.insert(role.clone());
    }
    let suspended = user.suspended.unwrap_or(false);
    let archived = user.archived.unwrap_or(false);
    Some(AppUserDesired {
        directory_id,
        primary_email,
        given_name: clean(name.given_name.as_deref()),
        family_name: clean(name.family_name.as_deref()),
        full_name: clean(name.full_name.as_deref()),
        is_admin,
        suspended,
        archived,
        org_unit_path: clean(user.org_unit_path.as_deref()),
        department: org.and_then(|o| clean(o.department.as_deref())),
        title: org.and_then(|o| clean(o.title.as_deref())),
        phones: user
            .phones
            .iter()
            .flatten()
            .filter_map(|p| {
                let value = clean(Some(&p.value))?;
                let kind = match p.kind.as_deref() {
                    Some("custom") => clean(p.custom_type.as_deref()).unwrap_or("custom".into()),
                    Some(k) => k.to_string(),
                    None => "other".into(),
                };
                Some(AppPhone { value, kind })
            })
            .collect(),
        custom_schemas: user
            .custom_schemas
            .as_ref()
            .map(SchemaValues::new)
            .unwrap_or_default(),
        roles,
        active: !(suspended || archived),
        directory_etag: clean(user.etag.as_deref()),
    })
}

/// A row as the store holds it, reduced to what planning needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedAppUser {
    pub directory_id: String,
    pub email: String,
    /// [`AppUserDesired::content_hash`] of the content last written.
    pub content_hash: String,
    pub active: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeactivationReason {
    Suspended,
    Archived,
    /// Deleted from the directory or out of scope.
    Gone,
}

/// Set `active = false` on a row. `desired` is the new content for suspended/archived
/// users (upsert it), `None` for users gone from the directory (only flip `active`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deactivation {
    pub directory_id: String,
    pub email: String,
    pub reason: DeactivationReason,
    pub desired: Option<AppUserDesired>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsersPlan {
    /// New rows (inactive ones too: a suspended user is recorded, deactivated).
    pub creates: Vec<AppUserDesired>,
    /// Content changed; `active` unchanged.
    pub updates: Vec<AppUserDesired>,
    pub deactivations: Vec<Deactivation>,
    /// Inactive rows whose user is active and in scope again (upsert with active=true).
    pub reactivations: Vec<AppUserDesired>,
    /// Directory ids of rows to delete (`DeprovisionPolicy::Delete`).
    pub deletes: Vec<String>,
    pub unchanged: usize,
    /// Directory users the read returned (before scope).
    pub directory_read: usize,
    /// Rows observed with `active = true`.
    pub observed_active: usize,
    /// Deactivations and deletes of users *gone* from the directory or scope — what
    /// the guard limits.
    pub deprovisions: usize,
}

impl UsersPlan {
    pub fn is_empty(&self) -> bool {
        self.creates.is_empty()
            && self.updates.is_empty()
            && self.deactivations.is_empty()
            && self.reactivations.is_empty()
            && self.deletes.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsersPlanOptions {
    pub policy: DeprovisionPolicy,
    pub mapping: UserMapping,
}

/// Plan a full reconcile. `directory` is everything the directory read returned
/// (already narrowed by the Directory `query`, if any); scope rules are applied here.
/// The same as feeding each user to a [`UsersPlanner`], which a caller that streams the
/// directory uses instead.
pub fn plan_users(
    directory: &[User],
    groups: &GroupMembership,
    scope: &ScopeRules,
    observed: &[ObservedAppUser],
    opts: &UsersPlanOptions,
) -> UsersPlan {
    let mut planner = UsersPlanner::new(observed.to_vec(), scope, opts);
    for user in directory {
        planner.add(user, groups);
    }
    planner.finish()
}

/// The users plan built one directory user at a time, as the pages of `users.list`
/// arrive, so that a reconcile never holds the directory: each user is reduced to its
/// app row at once, and a row whose content hash matches the stored one is dropped there
/// and then (at 100,000 people a no-change run holds the stored rows and one marker per
/// id, not the directory). What it keeps of a changed user is the row the store will
/// write, nothing else of the `User`.
///
/// Of a repeated id (a page boundary moving under a concurrent change can return a user
/// twice), the last copy that maps wins, as in directory order.
#[derive(Debug)]
pub struct UsersPlanner<'a> {
    scope: &'a ScopeRules,
    opts: &'a UsersPlanOptions,
    /// The stored rows by directory id (of a repeated id, the first).
    rows: BTreeMap<String, ObservedAppUser>,
    /// Every selected id that mapped: `None` when its row is already up to date.
    seen: BTreeMap<String, Option<AppUserDesired>>,
    directory_read: usize,
}

impl<'a> UsersPlanner<'a> {
    pub fn new(
        observed: Vec<ObservedAppUser>,
        scope: &'a ScopeRules,
        opts: &'a UsersPlanOptions,
    ) -> Self {
        let mut rows = BTreeMap::new();
        for o in observed {
            rows.entry(o.directory_id.clone()).or_insert(o);
        }
        UsersPlanner {
            scope,
            opts,
            rows,
            seen: BTreeMap::new(),
            directory_read: 0,
        }
    }

    /// One user of the read (before scope; `groups` is the read's flattened membership).
    /// `true` when the scope selects them and they map to a row (a row of the plan).
    pub fn add(&mut self, user: &User, groups: &GroupMembership) -> bool {
        self.directory_read += 1;
        if !self.scope.selects_structurally(user, groups) {
            return false;
        }
        let Some(d) = app_user_desired(user, &self.opts.mapping) else {
            return false;
        };
        let up_to_date = self
            .rows
            .get(&d.directory_id)
            .is_some_and(|row| row.active == d.active && row.content_hash == d.content_hash());
        let id = d.directory_id.clone();
        self.seen.insert(id, (!up_to_date).then_some(d));
        true
    }

    /// Whether the stored rows have `directory_id` (a create otherwise).
    pub fn is_stored(&self, directory_id: &str) -> bool {
        self.rows.contains_key(directory_id.trim())
    }

    /// The plan, in directory-id order.
    pub fn finish(self) -> UsersPlan {
        let UsersPlanner {
            opts,
            mut rows,
            seen,
            directory_read,
            ..
        } = self;
        let mut plan = UsersPlan {
            directory_read,
            observed_active: rows.values().filter(|o| o.active).count(),
            ..Default::default()
        };
        for (id, d) in seen {
            let row = rows.remove(&id);
            let Some(d) = d else {
                plan.unchanged += 1;
                continue;
            };
            let Some(row) = row else {
                plan.creates.push(d);
                continue;
            };
            match (row.active, d.active) {
                (true, true) | (false, false) => plan.updates.push(d),
                (false, true) => plan.reactivations.push(d),
                (true, false) => plan.deactivations.push(Deactivation {
                    directory_id: d.directory_id.clone(),
                    email: d.primary_email.clone(),
                    reason: if d.suspended {
                        DeactivationReason::Suspended
                    } else {
                        DeactivationReason::Archived
                    },
                    desired: Some(d),
                }),
            }
        }

        for (id, row) in rows {
            match (opts.policy, row.active) {
                (DeprovisionPolicy::Keep, _) | (DeprovisionPolicy::Deactivate, false) => {
                    plan.unchanged += 1
                }
                (DeprovisionPolicy::Deactivate, true) => {
                    plan.deprovisions += 1;
                    plan.deactivations.push(Deactivation {
                        directory_id: id,
                        email: row.email,
                        reason: DeactivationReason::Gone,
                        desired: None,
                    });
                }
                (DeprovisionPolicy::Delete, active) => {
                    if active {
                        plan.deprovisions += 1;
                    }
                    plan.deletes.push(id);
                }
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsync_wire::directory::UserName;
    use serde_json::json;

    fn user(id: &str, email: &str) -> User {
        User {
            id: Some(id.into()),
            primary_email: Some(email.into()),
            name: Some(UserName {
                given_name: Some("G".into()),
                family_name: Some(id.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn observe(plan: &UsersPlan, rows: &mut BTreeMap<String, ObservedAppUser>) {
        let put = |rows: &mut BTreeMap<String, ObservedAppUser>, d: &AppUserDesired, active| {
            rows.insert(
                d.directory_id.clone(),
                ObservedAppUser {
                    directory_id: d.directory_id.clone(),
                    email: d.primary_email.clone(),
                    content_hash: d.content_hash(),
                    active,
                },
            );
        };
        for d in plan.creates.iter().chain(&plan.updates) {
            put(rows, d, d.active);
        }
        for d in &plan.reactivations {
            put(rows, d, true);
        }
        for x in &plan.deactivations {
            match &x.desired {
                Some(d) => put(rows, d, false),
                None => rows.get_mut(&x.directory_id).unwrap().active = false,
            }
        }
        for id in &plan.deletes {
            rows.remove(id);
        }
    }

    /// Stored rows carry the content hash of their desired row: the compact form of the
    /// custom schema values must serialise to the very bytes the JSON map did, or every
    /// row would look changed after an upgrade.
    #[test]
    fn schema_values_serialise_as_the_map_did() {
        let m: Map<String, Value> = serde_json::from_str(
            r#"{"Roles": {"support": true, "admin": false},
                "EmployeeInfo": {"Level": 3, "CostCentre": "CC-1", "Tags": ["b", "a"]}}"#,
        )
        .unwrap();
        let v = SchemaValues::new(&m);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string(&m).unwrap()
        );
        assert_eq!(
            v.as_str(),
            r#"{"EmployeeInfo":{"CostCentre":"CC-1","Level":3,"Tags":["b","a"]},"Roles":{"admin":false,"support":true}}"#
        );
        assert_eq!(stable_hash(&v), stable_hash(&m));
        assert_eq!(v.to_map(), m);
        let back: SchemaValues = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, v);
        assert!(SchemaValues::default().is_empty() && !v.is_empty());
    }

    #[test]
    fn roles_from_custom_schema_rules_and_admin_flag() {
        let mut u = user("1", "a@x.com");
        u.is_admin = Some(true);
        u.custom_schemas = Some(
            json!({"Roles": {"billing": true, "support": "TRUE", "teams": [{"value": "ops"}]}})
                .as_object()
                .unwrap()
                .clone(),
        );
        let mapping = UserMapping {
            roles: vec![
                RoleRule {
                    schema: "Roles".into(),
                    field: "billing".into(),
                    equals: json!(true),
                    role: "billing".into(),
                },
                RoleRule {
                    schema: "Roles".into(),
                    field: "support".into(),
                    equals: json!(true),
                    role: "support".into(),
                },
                RoleRule {
                    schema: "Roles".into(),
                    field: "teams".into(),
                    equals: json!("ops"),
                    role: "ops".into(),
                },
                RoleRule {
                    schema: "Roles".into(),
                    field: "missing".into(),
                    equals: json!(true),
                    role: "nope".into(),
                },
            ],
            admin_role: Some("admin".into()),
        };
        let d = app_user_desired(&u, &mapping).unwrap();
        assert_eq!(
            d.roles.iter().map(String::as_str).collect::<Vec<_>>(),
            ["admin", "billing", "ops", "support"]
        );
        assert!(d.active && d.is_admin);
    }

    #[test]
    fn suspended_user_is_deactivated_not_deleted_and_comes_back() {
        let opts = UsersPlanOptions::default();
        let scope = ScopeRules::default();
        let g = GroupMembership::new();
        let mut dir = vec![user("1", "a@x.com"), user("2", "b@x.com")];
        let mut rows = BTreeMap::new();
        let p = plan_users(&dir, &g, &scope, &[], &opts);
        assert_eq!(p.creates.len(), 2);
        observe(&p, &mut rows);
        dir[1].suspended = Some(true);
        let obs: Vec<_> = rows.values().cloned().collect();
        let p = plan_users(&dir, &g, &scope, &obs, &opts);
        assert_eq!(p.deactivations.len(), 1);
        assert_eq!(p.deactivations[0].reason, DeactivationReason::Suspended);
        assert_eq!(
            p.deprovisions, 0,
            "a suspension is not a deprovision by absence"
        );
        observe(&p, &mut rows);
        dir[1].suspended = Some(false);
        let obs: Vec<_> = rows.values().cloned().collect();
        let p = plan_users(&dir, &g, &scope, &obs, &opts);
        assert_eq!(p.reactivations.len(), 1);
        assert_eq!(p.reactivations[0].directory_id, "2");
    }

    #[test]
    fn rename_updates_the_same_row() {
        let opts = UsersPlanOptions::default();
        let (scope, g) = (ScopeRules::default(), GroupMembership::new());
        let mut dir = vec![user("1", "a@x.com")];
        let mut rows = BTreeMap::new();
        observe(&plan_users(&dir, &g, &scope, &[], &opts), &mut rows);
        dir[0].primary_email = Some("renamed@x.com".into());
        let obs: Vec<_> = rows.values().cloned().collect();
        let p = plan_users(&dir, &g, &scope, &obs, &opts);
        assert!(p.creates.is_empty() && p.deactivations.is_empty() && p.deletes.is_empty());
        assert_eq!(p.updates.len(), 1);
        assert_eq!(p.updates[0].primary_email, "renamed@x.com");
    }

    #[test]
    fn etag_only_change_is_not_an_update() {
        let opts = UsersPlanOptions::default();
        let (scope, g) = (ScopeRules::default(), GroupMembership::new());
        let mut dir = vec![user("1", "a@x.com")];
        dir[0].etag = Some("e1".into());
        let mut rows = BTreeMap::new();
        observe(&plan_users(&dir, &g, &scope, &[], &opts), &mut rows);
        dir[0].etag = Some("e2".into());
        let obs: Vec<_> = rows.values().cloned().collect();
        let p = plan_users(&dir, &g, &scope, &obs, &opts);
        assert!(p.is_empty());
        assert_eq!(p.unchanged, 1);
    }

    #[test]
    fn gone_users_follow_the_policy() {
        let (scope, g) = (ScopeRules::default(), GroupMembership::new());
        let row = ObservedAppUser {
            directory_id: "9".into(),
            email: "gone@x.com".into(),
            content_hash: "h".into(),
            active: true,
        };
        let dir = [user("1", "a@x.com")];
        let with = |policy| {
            plan_users(
                &dir,
                &g,
                &scope,
                std::slice::from_ref(&row),
                &UsersPlanOptions {
                    policy,
                    ..Default::default()
                },
            )
        };
        let p = with(DeprovisionPolicy::Deactivate);
        assert_eq!(p.deactivations.len(), 1);
        assert_eq!(p.deactivations[0].reason, DeactivationReason::Gone);
        assert!(p.deletes.is_empty());
        let p = with(DeprovisionPolicy::Delete);
        assert_eq!(p.deletes, ["9"]);
        assert!(p.deactivations.is_empty());
        let p = with(DeprovisionPolicy::Keep);
        assert!(p.deletes.is_empty() && p.deactivations.is_empty());
    }
}
