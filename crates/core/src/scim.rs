//! Directory → any SCIM 2.0 application (RFC 7643 resources, RFC 7644 protocol): the
//! pure planner.
//!
//! The executor lists the server's Users and Groups, maps the directory to the resources
//! it should hold ([`desired_user`]), and hands both, with the links it stored on earlier
//! runs (directory id → SCIM id), to [`plan_users`] and then [`plan_groups`]. What the
//! planner promises, each checked by the property tests in `tests/it/scim_props.rs`:
//!
//! - **Never a duplicate.** A directory user is matched to a server resource by its stored
//!   link, else by `externalId` (the Directory's immutable id), else by `userName`
//!   compared case-insensitively (RFC 7643 §4.1.1: `userName` is not case-exact), and
//!   only then created. A `userName` held by a resource that another identity provider
//!   owns (a different `externalId`) is reported as a conflict, never created twice
//!   (creating it would fail with 409 anyway: <https://github.com/awslabs/ssosync/issues/81>).
//! - **Update in place.** A renamed person keeps their SCIM id: the link or `externalId`
//!   matches before `userName`, so a changed primary email is a `userName` change, not a
//!   delete and a create (<https://github.com/awslabs/ssosync/issues/291>: recreated
//!   groups broke permission assignments).
//! - **Only what orgsync manages is deprovisioned.** A resource is orgsync's when it holds
//!   a link to it: created by orgsync or adopted. A person who leaves is deactivated
//!   (`active: false`, the SCIM convention Entra and Okta follow) unless `delete` was
//!   chosen; a suspended person is deactivated as a fact of the directory. Resources no
//!   link names are counted, never touched.
//! - **Field-level.** Only the attributes orgsync maps are compared, each normalised the
//!   way servers echo them (case of `userName`, missing `primary: false`, empty strings),
//!   so a server's formatting never causes a write, and re-planning after applying a plan
//!   gives an empty plan.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use orgsync_wire::directory::User;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The core User schema (RFC 7643 §4.1).
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema (RFC 7643 §4.2).
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// One entry of a multi-valued attribute (`emails`, `phoneNumbers`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MultiValue {
    pub value: String,
    /// `type`: `work`, `mobile`, …
    pub kind: Option<String>,
    pub primary: bool,
}

/// The attributes of a SCIM User that orgsync maps, normalised for comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimUser {
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub emails: Vec<MultiValue>,
    pub phone_numbers: Vec<MultiValue>,
    pub title: Option<String>,
    pub employee_number: Option<String>,
    pub department: Option<String>,
    pub organization: Option<String>,
    pub cost_center: Option<String>,
    pub division: Option<String>,
    /// The manager's SCIM id (`manager.value` of the enterprise extension).
    pub manager: Option<String>,
}

/// An attribute orgsync maps; its SCIM path is [`Attr::path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Attr {
    UserName,
    ExternalId,
    Active,
    DisplayName,
    GivenName,
    FamilyName,
    Emails,
    PhoneNumbers,
    Title,
    EmployeeNumber,
    Department,
    Organization,
    CostCenter,
    Division,
    Manager,
}

impl Attr {
    pub const ALL: [Attr; 15] = [
        Attr::UserName,
        Attr::ExternalId,
        Attr::Active,
        Attr::DisplayName,
        Attr::GivenName,
        Attr::FamilyName,
        Attr::Emails,
        Attr::PhoneNumbers,
        Attr::Title,
        Attr::EmployeeNumber,
        Attr::Department,
        Attr::Organization,
        Attr::CostCenter,
        Attr::Division,
        Attr::Manager,
    ];

    /// The attribute path of a PATCH operation (RFC 7644 §3.5.2); extension attributes
    /// carry their schema URN.
    pub fn path(self) -> String {
        match self {
            Attr::UserName => "userName".into(),
            Attr::ExternalId => "externalId".into(),
            Attr::Active => "active".into(),
            Attr::DisplayName => "displayName".into(),
            Attr::GivenName => "name.givenName".into(),
            Attr::FamilyName => "name.familyName".into(),
            Attr::Emails => "emails".into(),
            Attr::PhoneNumbers => "phoneNumbers".into(),
            Attr::Title => "title".into(),
            Attr::EmployeeNumber => format!("{ENTERPRISE}:employeeNumber"),
            Attr::Department => format!("{ENTERPRISE}:department"),
            Attr::Organization => format!("{ENTERPRISE}:organization"),
            Attr::CostCenter => format!("{ENTERPRISE}:costCenter"),
            Attr::Division => format!("{ENTERPRISE}:division"),
            Attr::Manager => format!("{ENTERPRISE}:manager"),
        }
    }

    /// Whether the attribute lives in the enterprise extension.
    pub fn is_enterprise(self) -> bool {
        matches!(
            self,
            Attr::EmployeeNumber
                | Attr::Department
                | Attr::Organization
                | Attr::CostCenter
                | Attr::Division
                | Attr::Manager
        )
    }
}

fn multi_json(values: &[MultiValue]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|v| {
                let mut m = Map::new();
                m.insert("value".into(), Value::String(v.value.clone()));
                if let Some(k) = &v.kind {
                    m.insert("type".into(), Value::String(k.clone()));
                }
                if v.primary {
                    m.insert("primary".into(), Value::Bool(true));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

fn opt_json(s: &Option<String>) -> Option<Value> {
    s.as_ref().map(|s| Value::String(s.clone()))
}

impl ScimUser {
    /// The value of one attribute as SCIM writes it; `None` when unset (an empty list
    /// counts as unset).
    pub fn value(&self, attr: Attr) -> Option<Value> {
        match attr {
            Attr::UserName => Some(Value::String(self.user_name.clone())),
            Attr::ExternalId => opt_json(&self.external_id),
            Attr::Active => Some(Value::Bool(self.active)),
            Attr::DisplayName => opt_json(&self.display_name),
            Attr::GivenName => opt_json(&self.given_name),
            Attr::FamilyName => opt_json(&self.family_name),
            Attr::Emails if self.emails.is_empty() => None,
            Attr::Emails => Some(multi_json(&self.emails)),
            Attr::PhoneNumbers if self.phone_numbers.is_empty() => None,
            Attr::PhoneNumbers => Some(multi_json(&self.phone_numbers)),
            Attr::Title => opt_json(&self.title),
            Attr::EmployeeNumber => opt_json(&self.employee_number),
            Attr::Department => opt_json(&self.department),
            Attr::Organization => opt_json(&self.organization),
            Attr::CostCenter => opt_json(&self.cost_center),
            Attr::Division => opt_json(&self.division),
            Attr::Manager => self.manager.as_ref().map(|m| json!({ "value": m })),
        }
    }

    /// Whether `self` and `other` agree on `attr`, as a server would judge it.
    /// `userName` is compared without case unless `user_name_exact` (servers that compare
    /// it case-sensitively, `user_name_case = "lower"`).
    fn same(&self, other: &ScimUser, attr: Attr, user_name_exact: bool) -> bool {
        match attr {
            Attr::UserName if user_name_exact => self.user_name == other.user_name,
            Attr::UserName => self.user_name.to_lowercase() == other.user_name.to_lowercase(),
            Attr::Emails => normalised(&self.emails, true) == normalised(&other.emails, true),
            Attr::PhoneNumbers => {
                normalised(&self.phone_numbers, false) == normalised(&other.phone_numbers, false)
            }
            _ => self.value(attr) == other.value(attr),
        }
    }

    /// The full resource for a POST or a PUT (RFC 7643 §8.2's shape).
    pub fn to_resource(&self) -> Value {
        let mut schemas = vec![Value::String(USER_SCHEMA.into())];
        let mut root = Map::new();
        let mut enterprise = Map::new();
        let mut name = Map::new();
        for attr in Attr::ALL {
            let Some(value) = self.value(attr) else {
                continue;
            };
            match attr {
                Attr::GivenName => {
                    name.insert("givenName".into(), value);
                }
                Attr::FamilyName => {
                    name.insert("familyName".into(), value);
                }
                a if a.is_enterprise() => {
                    let path = a.path();
                    let key = path.rsplit(':').next().unwrap_or_default().to_string();
                    enterprise.insert(key, value);
                }
                a => {
                    root.insert(a.path(), value);
                }
            }
        }
        if !name.is_empty() {
            root.insert("name".into(), Value::Object(name));
        }
        if !enterprise.is_empty() {
            schemas.push(Value::String(ENTERPRISE.into()));
            root.insert(ENTERPRISE.into(), Value::Object(enterprise));
        }
        root.insert("schemas".into(), Value::Array(schemas));
        Value::Object(root)
    }

    /// Read a server's User resource leniently: what it omits is unset, a Boolean may
    /// arrive as a string (`"False"`, as Entra's gateway sends it), and `primary: false`
    /// equals no `primary`.
    pub fn from_resource(resource: &Value) -> ScimUser {
        let s = |v: Option<&Value>| -> Option<String> {
            v.and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let name = resource.get("name");
        let ext = resource.get(ENTERPRISE);
        let multi = |key: &str| -> Vec<MultiValue> {
            resource
                .get(key)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| {
                            Some(MultiValue {
                                value: s(item.get("value"))?,
                                kind: s(item.get("type")),
                                primary: item.get("primary").is_some_and(truthy),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        ScimUser {
            user_name: s(resource.get("userName")).unwrap_or_default(),
            external_id: s(resource.get("externalId")),
            // RFC 7643 §4.1.1: a server that omits `active` has no such notion; the
            // account is usable.
            active: resource.get("active").is_none_or(truthy),
            display_name: s(resource.get("displayName")),
            given_name: s(name.and_then(|n| n.get("givenName"))),
            family_name: s(name.and_then(|n| n.get("familyName"))),
            emails: multi("emails"),
            phone_numbers: multi("phoneNumbers"),
            title: s(resource.get("title")),
            employee_number: s(ext.and_then(|e| e.get("employeeNumber"))),
            department: s(ext.and_then(|e| e.get("department"))),
            organization: s(ext.and_then(|e| e.get("organization"))),
            cost_center: s(ext.and_then(|e| e.get("costCenter"))),
            division: s(ext.and_then(|e| e.get("division"))),
            manager: s(ext
                .and_then(|e| e.get("manager"))
                .and_then(|m| m.get("value"))),
        }
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn normalised(values: &[MultiValue], fold_case: bool) -> BTreeSet<(String, String, bool)> {
    values
        .iter()
        .map(|v| {
            let value = if fold_case {
                v.value.to_lowercase()
            } else {
                v.value.clone()
            };
            let kind = v.kind.clone().unwrap_or_default().to_lowercase();
            (value, kind, v.primary)
        })
        .collect()
}

/// How `userName` is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserNameCase {
    /// As the directory has the primary email.
    #[default]
    Preserve,
    /// Lower-cased (for servers that compare `userName` case-sensitively).
    Lower,
}

/// A SCIM attribute that a Directory custom-schema field fills (`[[scim.attributes]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomAttribute {
    pub schema: String,
    pub field: String,
    pub attr: Attr,
}

/// How directory users map to SCIM Users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimMapping {
    pub user_name_case: UserNameCase,
    /// Custom-schema fields that fill (and override) mapped attributes.
    pub custom: Vec<CustomAttribute>,
}

/// What a directory user should be on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredUser {
    pub directory_id: String,
    /// The mapped attributes; `manager` is filled by the planner from `manager_id`.
    pub attrs: ScimUser,
    /// The manager's directory id (Directory `relations` of type `manager`, resolved by
    /// email among the directory's users).
    pub manager_id: Option<String>,
    /// Why the user is inactive, for the report (`suspended`, `archived`).
    pub inactive_reason: Option<&'static str>,
}

fn clean(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Directory phone types → SCIM's canonical `type` values (RFC 7643 §4.1.2).
fn phone_kind(kind: Option<&str>) -> &'static str {
    match kind.unwrap_or("work") {
        "work" | "company_main" | "main" => "work",
        "mobile" | "work_mobile" | "grand_central" => "mobile",
        "home" => "home",
        "work_fax" | "home_fax" | "other_fax" | "fax" => "fax",
        "pager" | "work_pager" => "pager",
        _ => "other",
    }
}

/// The manager's email from Directory `relations` (`type: manager`), lower-cased.
pub fn manager_email(user: &User) -> Option<String> {
    user.extra
        .get("relations")?
        .as_array()?
        .iter()
        .find(|r| r.get("type").and_then(Value::as_str) == Some("manager"))
        .and_then(|r| r.get("value")?.as_str())
        .map(|e| e.trim().to_lowercase())
        .filter(|e| !e.is_empty())
}

fn custom_string(user: &User, schema: &str, field: &str) -> Option<String> {
    match user.custom_field(schema, field)? {
        Value::String(s) => clean(Some(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        // A multi-valued custom field: its first value.
        Value::Array(items) => items
            .first()
            .and_then(|i| i.get("value"))
            .and_then(|v| match v {
                Value::String(s) => clean(Some(s)),
                other => Some(other.to_string()),
            }),
        _ => None,
    }
}

/// Map a Directory user; `None` without an id or a primary email. `managers` resolves a
/// manager's email (lower-case) to their directory id.
pub fn desired_user(
    user: &User,
    mapping: &ScimMapping,
    managers: &HashMap<String, String>,
) -> Option<DesiredUser> {
    let directory_id = clean(user.id.as_deref())?;
    let email = clean(user.primary_email.as_deref())?;
    let user_name = match mapping.user_name_case {
        UserNameCase::Preserve => email.clone(),
        UserNameCase::Lower => email.to_lowercase(),
    };
    let name = user.name.as_ref();
    let org = user.primary_organization();
    let employee_number = user
        .external_ids
        .iter()
        .flatten()
        .find(|x| x.kind.as_deref() == Some("organization"))
        .and_then(|x| clean(Some(&x.value)));
    let mut phones: Vec<MultiValue> = Vec::new();
    for p in user.phones.iter().flatten() {
        let Some(value) = clean(Some(&p.value)) else {
            continue;
        };
        let entry = MultiValue {
            value,
            kind: Some(phone_kind(p.kind.as_deref()).to_string()),
            primary: p.primary.unwrap_or(false),
        };
        if !phones.contains(&entry) {
            phones.push(entry);
        }
    }
    let inactive_reason = if user.suspended.unwrap_or(false) {
        Some("suspended")
    } else if user.archived.unwrap_or(false) {
        Some("archived")
    } else {
        None
    };
    let mut attrs = ScimUser {
        user_name,
        external_id: Some(directory_id.clone()),
        active: inactive_reason.is_none(),
        display_name: clean(name.and_then(|n| n.full_name.as_deref())),
        given_name: clean(name.and_then(|n| n.given_name.as_deref())),
        family_name: clean(name.and_then(|n| n.family_name.as_deref())),
        emails: vec![MultiValue {
            value: email,
            kind: Some("work".into()),
            primary: true,
        }],
        phone_numbers: phones,
        title: clean(org.and_then(|o| o.title.as_deref())),
        employee_number,
        department: clean(org.and_then(|o| o.department.as_deref())),
        organization: clean(org.and_then(|o| o.name.as_deref())),
        cost_center: clean(org.and_then(|o| o.cost_center.as_deref())),
        division: None,
        manager: None,
    };
    for c in &mapping.custom {
        let value = custom_string(user, &c.schema, &c.field);
        let slot = match c.attr {
            Attr::DisplayName => &mut attrs.display_name,
            Attr::Title => &mut attrs.title,
            Attr::EmployeeNumber => &mut attrs.employee_number,
            Attr::Department => &mut attrs.department,
            Attr::Organization => &mut attrs.organization,
            Attr::CostCenter => &mut attrs.cost_center,
            Attr::Division => &mut attrs.division,
            // The configuration refuses the others.
            _ => continue,
        };
        *slot = value;
    }
    let manager_id = manager_email(user)
        .and_then(|e| managers.get(&e).cloned())
        .filter(|m| *m != directory_id);
    Some(DesiredUser {
        directory_id,
        attrs,
        manager_id,
        inactive_reason,
    })
}

/// A User the server holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedUser {
    pub id: String,
    pub attrs: ScimUser,
    /// `meta.version` (an ETag), when the server keeps them.
    pub version: Option<String>,
}

/// What deprovisioning does to a managed user who left the directory or the scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScimDeprovision {
    /// `active: false`: the account and its history stay in the app. The default.
    #[default]
    Deactivate,
    /// `DELETE /Users/{id}`: many apps cannot undo it (Atlassian unlinks for good).
    Delete,
}

/// How users are planned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsersPlanOptions {
    pub deprovision: ScimDeprovision,
    /// Rewrite a `userName` that differs only in case (`user_name_case = "lower"`).
    pub user_name_exact: bool,
}

/// How a directory user was matched to a resource orgsync had no link to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AdoptedBy {
    ExternalId,
    UserName,
    DisplayName,
}

/// One attribute to write: `None` removes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub attr: Attr,
    pub value: Option<Value>,
}

/// One operation of a users plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum UserOp {
    /// `POST /Users`.
    Create {
        directory_id: String,
        attrs: Box<ScimUser>,
    },
    /// A resource orgsync had no link to becomes orgsync's (followed by an `Update` when
    /// it differs).
    Adopt {
        directory_id: String,
        id: String,
        by: AdoptedBy,
    },
    /// `PATCH /Users/{id}` of the attributes that differ.
    Update {
        directory_id: String,
        id: String,
        user_name: String,
        changes: Vec<Change>,
        /// Set when the update deactivates (`suspended`) or reactivates.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The attributes after the update (what a PUT sends).
        #[serde(skip)]
        attrs: Box<ScimUser>,
        #[serde(skip)]
        version: Option<String>,
    },
    /// A managed user who left: `active: false`.
    Deactivate {
        directory_id: String,
        id: String,
        user_name: String,
        #[serde(skip)]
        attrs: Box<ScimUser>,
        #[serde(skip)]
        version: Option<String>,
    },
    /// A managed user who left, with `deprovision = "delete"`.
    Delete {
        directory_id: String,
        id: String,
        user_name: String,
    },
    /// A stored link to a resource the server no longer has (deleted in the app, or a
    /// server that lost its data): dropped; a user still desired is created again.
    Forget { directory_id: String, id: String },
}

impl UserOp {
    /// The directory user the operation is about.
    pub fn directory_id(&self) -> &str {
        match self {
            UserOp::Create { directory_id, .. }
            | UserOp::Adopt { directory_id, .. }
            | UserOp::Update { directory_id, .. }
            | UserOp::Deactivate { directory_id, .. }
            | UserOp::Delete { directory_id, .. }
            | UserOp::Forget { directory_id, .. } => directory_id,
        }
    }
}

/// A `userName` that a resource orgsync does not manage already holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub directory_id: String,
    pub user_name: String,
    pub id: String,
    pub their_external_id: Option<String>,
}

/// A users plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsersPlan {
    pub ops: Vec<UserOp>,
    pub conflicts: Vec<Conflict>,
    /// Desired users that are suspended or archived and have no resource: not created.
    pub not_created_inactive: usize,
    /// Users on the server that no link names and no directory user matched: left alone.
    pub unmanaged: usize,
    /// Links that named a resource the server has (before this plan).
    pub managed: usize,
    /// Desired users that need no write.
    pub unchanged: usize,
}

impl UsersPlan {
    /// Deactivations and deletions of managed users who left (what the guard judges).
    pub fn deprovisions(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| matches!(op, UserOp::Deactivate { .. } | UserOp::Delete { .. }))
            .count()
    }

    /// Nothing to send (conflicts and counts aside).
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The changes that make `observed` what `desired` says, attribute by attribute.
pub fn diff(
    desired: &ScimUser,
    observed: &ScimUser,
    skip: &[Attr],
    user_name_exact: bool,
) -> Vec<Change> {
    Attr::ALL
        .iter()
        .copied()
        .filter(|a| !skip.contains(a))
        .filter(|a| !desired.same(observed, *a, user_name_exact))
        .map(|attr| Change {
            attr,
            value: desired.value(attr),
        })
        .collect()
}

/// Plan the users of one SCIM target.
///
/// `links`: directory id → SCIM id, from earlier runs. A desired user whose manager has
/// no SCIM id yet (created by this plan) leaves `manager` alone in this pass; the
/// executor plans again once creates have their ids.
pub fn plan_users(
    desired: &[DesiredUser],
    observed: &[ObservedUser],
    links: &BTreeMap<String, String>,
    opts: &UsersPlanOptions,
) -> UsersPlan {
    let deprovision = opts.deprovision;
    let mut plan = UsersPlan::default();
    let by_id: HashMap<&str, &ObservedUser> = observed.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut by_external: HashMap<&str, &ObservedUser> = HashMap::new();
    let mut by_name: HashMap<String, &ObservedUser> = HashMap::new();
    for o in observed {
        if let Some(x) = &o.attrs.external_id {
            by_external.entry(x.as_str()).or_insert(o);
        }
        by_name.entry(o.attrs.user_name.to_lowercase()).or_insert(o);
    }
    // Resources some link or match already claims: never matched twice.
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    let linked_ids: BTreeSet<&str> = links
        .values()
        .map(String::as_str)
        .filter(|id| by_id.contains_key(id))
        .collect();
    plan.managed = linked_ids.len();
    let desired_ids: BTreeSet<&str> = desired.iter().map(|d| d.directory_id.as_str()).collect();

    for (dir_id, id) in links {
        if !by_id.contains_key(id.as_str()) {
            plan.ops.push(UserOp::Forget {
                directory_id: dir_id.clone(),
                id: id.clone(),
            });
        }
    }

    for d in desired {
        let linked = links
            .get(&d.directory_id)
            .and_then(|id| by_id.get(id.as_str()).copied());
        let (matched, adopted) = if let Some(o) = linked {
            (Some(o), None)
        } else if let Some(o) = by_external
            .get(d.directory_id.as_str())
            .copied()
            .filter(|o| !claimed.contains(o.id.as_str()) && !linked_ids.contains(o.id.as_str()))
        {
            (Some(o), Some(AdoptedBy::ExternalId))
        } else if let Some(o) = by_name
            .get(&d.attrs.user_name.to_lowercase())
            .copied()
            .filter(|o| !claimed.contains(o.id.as_str()))
        {
            let theirs = o
                .attrs
                .external_id
                .as_deref()
                .is_some_and(|x| x != d.directory_id);
            if theirs || linked_ids.contains(o.id.as_str()) {
                // Another identity provider's account (or one linked to someone else):
                // creating would duplicate the userName; say so instead.
                plan.conflicts.push(Conflict {
                    directory_id: d.directory_id.clone(),
                    user_name: d.attrs.user_name.clone(),
                    id: o.id.clone(),
                    their_external_id: o.attrs.external_id.clone(),
                });
                continue;
            }
            (Some(o), Some(AdoptedBy::UserName))
        } else {
            (None, None)
        };
        let mut attrs = d.attrs.clone();
        let manager_known = match &d.manager_id {
            None => true,
            Some(m) => match links.get(m).filter(|id| by_id.contains_key(id.as_str())) {
                Some(id) => {
                    attrs.manager = Some(id.clone());
                    true
                }
                None => !desired_ids.contains(m.as_str()),
            },
        };
        // A manager orgsync will create in this run gets an id only then: leave the
        // attribute for the next pass. A manager outside the scope is simply not mapped.
        let skip: &[Attr] = if manager_known { &[] } else { &[Attr::Manager] };
        match matched {
            None if !attrs.active => plan.not_created_inactive += 1,
            None => plan.ops.push(UserOp::Create {
                directory_id: d.directory_id.clone(),
                attrs: Box::new(attrs),
            }),
            Some(o) => {
                claimed.insert(o.id.as_str());
                if let Some(by) = adopted {
                    plan.ops.push(UserOp::Adopt {
                        directory_id: d.directory_id.clone(),
                        id: o.id.clone(),
                        by,
                    });
                }
                let mut attrs = attrs;
                if !manager_known {
                    attrs.manager = o.attrs.manager.clone();
                }
                let changes = diff(&attrs, &o.attrs, skip, opts.user_name_exact);
                if changes.is_empty() {
                    plan.unchanged += 1;
                } else {
                    let reason = if o.attrs.active && !attrs.active {
                        d.inactive_reason.map(str::to_string)
                    } else if !o.attrs.active && attrs.active {
                        Some("reactivated".into())
                    } else {
                        None
                    };
                    plan.ops.push(UserOp::Update {
                        directory_id: d.directory_id.clone(),
                        id: o.id.clone(),
                        user_name: attrs.user_name.clone(),
                        changes,
                        reason,
                        attrs: Box::new(attrs),
                        version: o.version.clone(),
                    });
                }
            }
        }
    }

    // Managed users who left the directory or the scope.
    for (dir_id, id) in links {
        if desired_ids.contains(dir_id.as_str()) {
            continue;
        }
        let Some(o) = by_id.get(id.as_str()) else {
            continue;
        };
        match deprovision {
            ScimDeprovision::Delete => plan.ops.push(UserOp::Delete {
                directory_id: dir_id.clone(),
                id: id.clone(),
                user_name: o.attrs.user_name.clone(),
            }),
            ScimDeprovision::Deactivate if o.attrs.active => {
                let mut attrs = o.attrs.clone();
                attrs.active = false;
                plan.ops.push(UserOp::Deactivate {
                    directory_id: dir_id.clone(),
                    id: id.clone(),
                    user_name: o.attrs.user_name.clone(),
                    attrs: Box::new(attrs),
                    version: o.version.clone(),
                });
            }
            ScimDeprovision::Deactivate => {}
        }
    }
    let linked_or_matched: BTreeSet<&str> = linked_ids.union(&claimed).copied().collect();
    plan.unmanaged = observed
        .iter()
        .filter(|o| !linked_or_matched.contains(o.id.as_str()))
        .count();
    plan
}

/// A directory group as the server should hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredGroup {
    pub directory_id: String,
    pub display_name: String,
    /// Directory ids of its members (nested groups flattened), users only.
    pub members: BTreeSet<String>,
}

/// A Group the server holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedGroup {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    /// SCIM ids of its members.
    pub members: BTreeSet<String>,
    pub version: Option<String>,
}

impl ObservedGroup {
    /// Read a server's Group resource.
    pub fn from_resource(resource: &Value) -> Option<ObservedGroup> {
        let id = resource.get("id")?.as_str()?.to_string();
        let members = resource
            .get("members")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|x| x.get("value")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Some(ObservedGroup {
            id,
            display_name: resource
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            external_id: resource
                .get("externalId")
                .and_then(Value::as_str)
                .map(str::to_string),
            members,
            version: resource
                .pointer("/meta/version")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

/// One operation of a groups plan. Members are SCIM ids.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum GroupOp {
    Create {
        directory_id: String,
        display_name: String,
        members: Vec<String>,
    },
    Adopt {
        directory_id: String,
        id: String,
        by: AdoptedBy,
    },
    /// Rename and/or set `externalId`.
    Update {
        directory_id: String,
        id: String,
        display_name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        set_external_id: Option<String>,
        rename: bool,
    },
    AddMembers {
        directory_id: String,
        id: String,
        display_name: String,
        members: Vec<String>,
    },
    RemoveMembers {
        directory_id: String,
        id: String,
        display_name: String,
        members: Vec<String>,
    },
    Delete {
        directory_id: String,
        id: String,
        display_name: String,
    },
    Forget {
        directory_id: String,
        id: String,
    },
}

impl GroupOp {
    /// The directory group the operation is about.
    pub fn directory_id(&self) -> &str {
        match self {
            GroupOp::Create { directory_id, .. }
            | GroupOp::Adopt { directory_id, .. }
            | GroupOp::Update { directory_id, .. }
            | GroupOp::AddMembers { directory_id, .. }
            | GroupOp::RemoveMembers { directory_id, .. }
            | GroupOp::Delete { directory_id, .. }
            | GroupOp::Forget { directory_id, .. } => directory_id,
        }
    }
}

/// A groups plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupsPlan {
    pub ops: Vec<GroupOp>,
    pub managed: usize,
    pub unmanaged: usize,
    pub unchanged: usize,
    /// Members of desired groups who have no SCIM user (outside the users scope, or
    /// suspended and never created): not added.
    pub members_not_provisioned: usize,
}

impl GroupsPlan {
    pub fn deletions(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| matches!(op, GroupOp::Delete { .. }))
            .count()
    }
}

/// Plan the groups of one SCIM target, after its users: `user_links` maps every
/// provisioned directory user to their SCIM id.
pub fn plan_groups(
    desired: &[DesiredGroup],
    observed: &[ObservedGroup],
    links: &BTreeMap<String, String>,
    user_links: &BTreeMap<String, String>,
) -> GroupsPlan {
    let mut plan = GroupsPlan::default();
    let by_id: HashMap<&str, &ObservedGroup> =
        observed.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut by_external: HashMap<&str, &ObservedGroup> = HashMap::new();
    let mut by_name: HashMap<String, &ObservedGroup> = HashMap::new();
    for o in observed {
        if let Some(x) = &o.external_id {
            by_external.entry(x.as_str()).or_insert(o);
        }
        by_name.entry(o.display_name.to_lowercase()).or_insert(o);
    }
    let linked_ids: BTreeSet<&str> = links
        .values()
        .map(String::as_str)
        .filter(|id| by_id.contains_key(id))
        .collect();
    plan.managed = linked_ids.len();
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    for (dir_id, id) in links {
        if !by_id.contains_key(id.as_str()) {
            plan.ops.push(GroupOp::Forget {
                directory_id: dir_id.clone(),
                id: id.clone(),
            });
        }
    }
    for d in desired {
        let members: BTreeSet<String> = d
            .members
            .iter()
            .filter_map(|m| {
                let id = user_links.get(m).cloned();
                if id.is_none() {
                    plan.members_not_provisioned += 1;
                }
                id
            })
            .collect();
        let linked = links
            .get(&d.directory_id)
            .and_then(|id| by_id.get(id.as_str()).copied());
        let free = |o: &&ObservedGroup| {
            !claimed.contains(o.id.as_str()) && !linked_ids.contains(o.id.as_str())
        };
        let (matched, adopted) = if let Some(o) = linked {
            (Some(o), None)
        } else if let Some(o) = by_external
            .get(d.directory_id.as_str())
            .copied()
            .filter(free)
        {
            (Some(o), Some(AdoptedBy::ExternalId))
        } else if let Some(o) = by_name
            .get(&d.display_name.to_lowercase())
            .copied()
            .filter(free)
            .filter(|o| o.external_id.as_deref().is_none_or(|x| x == d.directory_id))
        {
            (Some(o), Some(AdoptedBy::DisplayName))
        } else {
            (None, None)
        };
        let Some(o) = matched else {
            plan.ops.push(GroupOp::Create {
                directory_id: d.directory_id.clone(),
                display_name: d.display_name.clone(),
                members: members.into_iter().collect(),
            });
            continue;
        };
        claimed.insert(o.id.as_str());
        let before = plan.ops.len();
        if let Some(by) = adopted {
            plan.ops.push(GroupOp::Adopt {
                directory_id: d.directory_id.clone(),
                id: o.id.clone(),
                by,
            });
        }
        let rename = o.display_name != d.display_name;
        let set_external_id = (o.external_id.as_deref() != Some(d.directory_id.as_str()))
            .then(|| d.directory_id.clone());
        if rename || set_external_id.is_some() {
            plan.ops.push(GroupOp::Update {
                directory_id: d.directory_id.clone(),
                id: o.id.clone(),
                display_name: d.display_name.clone(),
                set_external_id,
                rename,
            });
        }
        let add: Vec<String> = members.difference(&o.members).cloned().collect();
        let remove: Vec<String> = o.members.difference(&members).cloned().collect();
        if !add.is_empty() {
            plan.ops.push(GroupOp::AddMembers {
                directory_id: d.directory_id.clone(),
                id: o.id.clone(),
                display_name: d.display_name.clone(),
                members: add,
            });
        }
        if !remove.is_empty() {
            plan.ops.push(GroupOp::RemoveMembers {
                directory_id: d.directory_id.clone(),
                id: o.id.clone(),
                display_name: d.display_name.clone(),
                members: remove,
            });
        }
        if plan.ops.len() == before {
            plan.unchanged += 1;
        }
    }
    let desired_ids: BTreeSet<&str> = desired.iter().map(|d| d.directory_id.as_str()).collect();
    for (dir_id, id) in links {
        if desired_ids.contains(dir_id.as_str()) {
            continue;
        }
        if let Some(o) = by_id.get(id.as_str()) {
            plan.ops.push(GroupOp::Delete {
                directory_id: dir_id.clone(),
                id: id.clone(),
                display_name: o.display_name.clone(),
            });
        }
    }
    let managed_or_matched: BTreeSet<&str> = linked_ids.union(&claimed).copied().collect();
    plan.unmanaged = observed
        .iter()
        .filter(|o| !managed_or_matched.contains(o.id.as_str()))
        .count();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, email: &str) -> DesiredUser {
        DesiredUser {
            directory_id: id.into(),
            attrs: ScimUser {
                user_name: email.into(),
                external_id: Some(id.into()),
                active: true,
                emails: vec![MultiValue {
                    value: email.into(),
                    kind: Some("work".into()),
                    primary: true,
                }],
                ..ScimUser::default()
            },
            manager_id: None,
            inactive_reason: None,
        }
    }

    #[test]
    fn a_resource_round_trips_through_its_json() {
        let mut u = user("1", "Ann@Example.com").attrs;
        u.department = Some("Eng".into());
        u.manager = Some("m-1".into());
        u.given_name = Some("Ann".into());
        let back = ScimUser::from_resource(&u.to_resource());
        assert_eq!(back, u);
        let resource = u.to_resource();
        assert_eq!(resource["name"]["givenName"], "Ann");
        assert_eq!(resource[ENTERPRISE]["manager"]["value"], "m-1");
        assert_eq!(resource["schemas"][1], ENTERPRISE);
    }

    #[test]
    fn a_string_false_and_a_missing_primary_are_read_as_servers_mean_them() {
        let u = ScimUser::from_resource(&json!({
            "userName": "a@x", "active": "False",
            "emails": [{"value": "A@X", "type": "work", "primary": "true"}]
        }));
        assert!(!u.active);
        assert!(u.emails[0].primary);
    }

    #[test]
    fn a_user_name_that_differs_only_in_case_is_not_rewritten() {
        let d = user("1", "Ann@example.com");
        let o = ObservedUser {
            id: "s1".into(),
            attrs: user("1", "ann@EXAMPLE.com").attrs,
            version: None,
        };
        let links = BTreeMap::from([("1".to_string(), "s1".to_string())]);
        let plan = plan_users(&[d], &[o], &links, &UsersPlanOptions::default());
        assert!(plan.ops.is_empty(), "{:?}", plan.ops);
        assert_eq!(plan.unchanged, 1);
    }
}
