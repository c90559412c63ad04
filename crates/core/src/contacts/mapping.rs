//! Directory user → the contact orgsync wants a colleague to have.
//!
//! The mapping fixes the baseline script's poor copy (full name as `givenName`, first
//! phone only, no organization): given and family names, every phone with its type,
//! title and department, optional aliases and employee id. Values are copied as the
//! directory holds them (trimmed, never reformatted into E.164): what the admin typed is
//! what the phone shows.

use orgsync_wire::directory::User;
use orgsync_wire::people::{
    EmailAddress, ExternalId, MY_CONTACTS, Membership, Name, Organization, Person, PhoneNumber,
    UserDefined,
};
use serde::{Deserialize, Serialize};

use super::markers;
use crate::hash::stable_hash;

/// Bump when the mapping changes meaning: every managed contact then gets one
/// (clientData-only, if nothing visible changed) update to carry the new hash.
pub const MAPPING_VERSION: u32 = 1;

/// What the contact mapping copies. Field toggles default to on, extras to off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MappingOptions {
    /// Company name written on the organization; default: the user's own org name.
    pub company_name: Option<String>,
    /// Also copy the user's aliases as work emails.
    pub include_aliases: bool,
    /// Copy Directory externalIds of type `organization` (the employee id).
    pub include_employee_id: bool,
    /// Plan photo uploads (the photo bytes are fetched and written by the executor).
    pub include_photos: bool,
    pub phones: bool,
    pub organization: bool,
    pub title: bool,
    pub department: bool,
    /// Appended to the family name of a kept leaver (`leavers = "keep"`).
    pub leaver_label: String,
    /// How phone numbers are written: as the directory has them, or in E.164. (Left out
    /// of the serialised options at its default, so a run's digest, and with it every
    /// book's incremental shortcut, is what it was before the option existed.)
    #[serde(skip_serializing_if = "PhoneFormat::is_as_is")]
    pub phone_format: PhoneFormat,
    /// The region numbers without a country code are read in (ISO 3166 alpha-2, e.g.
    /// `GB`), for `phone_format = "e164"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_region: Option<String>,
    /// Directory custom-schema fields copied into the contact (`userDefined`, or the
    /// organisation's title or department). Left out of the serialised options when
    /// empty, like the phone options.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_fields: Vec<CustomField>,
    /// Also put each colleague in a label of their department or org unit, named
    /// `<label_prefix> · <value>` ([`department_label`]). Left out when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_by: Option<LabelBy>,
    /// The main label's name, which department labels start with.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub label_prefix: String,
}

/// What `label_by` groups colleagues by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelBy {
    /// The primary organisation's department.
    Department,
    /// The org unit path, without its leading slash (`Sales/EMEA`); none at the root.
    OrgUnit,
}

/// The name of the label for `value` under the main label `prefix`:
/// `Company directory · Engineering`.
pub fn department_label(prefix: &str, value: &str) -> String {
    format!("{} · {}", prefix.trim(), value.trim())
}

/// `customSchemas.<schema>.<field>` → the contact's `userDefined` entry `label`, or its
/// organisation's title or department when `label` is `title` or `department`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    pub schema: String,
    pub field: String,
    pub label: String,
}

impl CustomField {
    /// Where the value goes: an organisation field, or a `userDefined` key.
    fn target(&self) -> CustomTarget<'_> {
        match self.label.trim().to_ascii_lowercase().as_str() {
            "title" => CustomTarget::Title,
            "department" => CustomTarget::Department,
            _ => CustomTarget::UserDefined(self.label.trim()),
        }
    }
}

enum CustomTarget<'a> {
    Title,
    Department,
    UserDefined(&'a str),
}

/// A custom-schema value as a contact shows it: text as is, numbers in decimal, a
/// Boolean as Yes/No, a multi-valued field (plain items or `{"value": …}`) joined with
/// ", ". Nothing for an empty value or an object.
fn custom_value_text(v: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let one = |v: &Value| match v {
        Value::String(s) => clean(Some(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "Yes" } else { "No" }.to_string()),
        _ => None,
    };
    match v {
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| one(i.get("value").unwrap_or(i)))
                .collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        }
        other => one(other),
    }
}

/// How phone numbers are written into contacts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneFormat {
    /// Exactly as in the directory.
    #[default]
    AsIs,
    /// `+442079460000`: one form for every number, which phones and CTI systems match
    /// against caller ids (a PBX's lookup often fails on `020 7946 0000`, FreePBX
    /// superfecta#368). Parsed and validated with libphonenumber's rules; a number that
    /// cannot be read is kept as written.
    E164,
}

impl PhoneFormat {
    fn is_as_is(&self) -> bool {
        *self == PhoneFormat::AsIs
    }
}

/// A phone number in the configured format: `Err` with the value as written when
/// `e164` cannot read it (no country code and no region, or not a valid number).
pub fn format_phone(value: &str, opts: &MappingOptions) -> Result<String, String> {
    match opts.phone_format {
        PhoneFormat::AsIs => Ok(value.to_string()),
        PhoneFormat::E164 => {
            let region = opts.phone_region.as_deref().and_then(|r| {
                r.trim()
                    .to_ascii_uppercase()
                    .parse::<phonenumber::country::Id>()
                    .ok()
            });
            match phonenumber::parse(region, value) {
                Ok(n) if phonenumber::is_valid(&n) => {
                    Ok(n.format().mode(phonenumber::Mode::E164).to_string())
                }
                _ => Err(value.to_string()),
            }
        }
    }
}

/// Whether `region` names a region libphonenumber knows (`GB`, `de`…), for config checks.
pub fn is_phone_region(region: &str) -> bool {
    region
        .trim()
        .to_ascii_uppercase()
        .parse::<phonenumber::country::Id>()
        .is_ok()
}

impl Default for MappingOptions {
    fn default() -> Self {
        MappingOptions {
            company_name: None,
            include_aliases: false,
            include_employee_id: false,
            include_photos: false,
            phones: true,
            organization: true,
            title: true,
            department: true,
            leaver_label: "(former colleague)".to_string(),
            phone_format: PhoneFormat::AsIs,
            phone_region: None,
            custom_fields: Vec::new(),
            label_by: None,
            label_prefix: String::new(),
        }
    }
}

/// A typed value (email, phone, external id) as orgsync writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TypedValue {
    pub value: String,
    /// People type: `work`, `mobile`, `workMobile`, ... or a custom label.
    pub kind: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredOrganization {
    pub name: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
}

/// The managed content of one colleague's contact. Its [`DesiredContact::hash`] is what
/// `orgsync.hash` stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredContact {
    /// Directory immutable id: the identity key (`orgsync.id`).
    pub directory_id: String,
    pub primary_email: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// Written as `unstructuredName`; falls back to the email when the user has no name.
    pub full_name: String,
    pub emails: Vec<TypedValue>,
    pub phones: Vec<TypedValue>,
    pub organization: Option<DesiredOrganization>,
    pub external_ids: Vec<TypedValue>,
    /// `userDefined` entries from `custom_fields` (`kind` is the key). Not serialised when
    /// empty, so contacts mapped without custom fields keep their hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_defined: Vec<TypedValue>,
    /// Directory `thumbnailPhotoEtag`, when photos are on. Not part of the hash: photo
    /// writes are tracked separately (`orgsync.photo`).
    #[serde(skip)]
    pub photo_etag: Option<String>,
    /// The shared list (`[[contacts.shared_lists]]` name) this contact comes from;
    /// `None` for a directory user. A list's contacts go to the targets of that list
    /// only, and into its label instead of the main one. Not serialised when `None`, so
    /// directory contacts keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// Names of the extra managed labels this contact is in (a department label, a
    /// shared list's label and the extra labels of its row). Not serialised when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// A shared list row's notes (People `biographies`, plain text). Not serialised when
    /// `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// A shared list row's address, as one formatted text (People `addresses`, type
    /// `work`). Not serialised when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl DesiredContact {
    /// Whether this contact writes the fields only shared lists have (notes, address):
    /// the planner and the read mask need them only then.
    pub fn has_list_fields(&self) -> bool {
        self.notes.is_some() || self.address.is_some()
    }
}

impl DesiredContact {
    /// Stable hash of the mapped fields (and the mapping version).
    pub fn hash(&self) -> String {
        stable_hash(&(MAPPING_VERSION, self))
    }

    /// The contact to create: mapped fields, markers and memberships (My Contacts and
    /// the managed group).
    pub fn to_new_person(&self, managed_group: &str) -> Person {
        self.new_person_with_markers(Some(managed_group), markers::for_desired(self, None))
    }

    /// [`Self::to_new_person`] with markers the caller already built (the planner has
    /// this contact's hash and fingerprints precomputed once per run; recomputing them
    /// for every target was a tenth of a first sync's CPU). No group: no memberships at
    /// all (the form [`super::DesiredDirectory::new_person_json`] serialises).
    pub(crate) fn new_person_with_markers(
        &self,
        managed_group: Option<&str>,
        client_data: Vec<orgsync_wire::people::ClientData>,
    ) -> Person {
        let mut p = Person::default();
        write_managed_fields(&mut p, self);
        p.client_data = client_data;
        if let Some(group) = managed_group {
            p.memberships = vec![Membership::group(MY_CONTACTS), Membership::group(group)];
        }
        p
    }
}

pub(crate) fn name_of(d: &DesiredContact) -> Name {
    Name {
        given_name: d.given_name.clone(),
        family_name: d.family_name.clone(),
        unstructured_name: Some(d.full_name.clone()),
        ..Default::default()
    }
}

pub(crate) fn email_of(v: &TypedValue) -> EmailAddress {
    EmailAddress {
        value: Some(v.value.clone()),
        kind: Some(v.kind.clone()),
        ..Default::default()
    }
}

pub(crate) fn phone_of(v: &TypedValue) -> PhoneNumber {
    PhoneNumber {
        value: Some(v.value.clone()),
        kind: Some(v.kind.clone()),
        ..Default::default()
    }
}

pub(crate) fn external_id_of(v: &TypedValue) -> ExternalId {
    ExternalId {
        value: Some(v.value.clone()),
        kind: Some(v.kind.clone()),
        ..Default::default()
    }
}

pub(crate) fn user_defined_of(v: &TypedValue) -> UserDefined {
    UserDefined {
        key: Some(v.kind.clone()),
        value: Some(v.value.clone()),
        ..Default::default()
    }
}

pub(crate) fn organization_of(o: &DesiredOrganization) -> Organization {
    Organization {
        kind: Some("work".into()),
        name: o.name.clone(),
        title: o.title.clone(),
        department: o.department.clone(),
        current: Some(true),
        ..Default::default()
    }
}

/// People `addresses` is not modelled by the wire types (it travels in `Person::extra`):
/// a formatted address of type `work`.
pub(crate) fn address_json(formatted: &str) -> serde_json::Value {
    serde_json::json!({"formattedValue": formatted, "type": "work"})
}

pub(crate) fn biography_of(notes: &str) -> orgsync_wire::people::Biography {
    orgsync_wire::people::Biography {
        value: Some(notes.to_string()),
        content_type: Some("TEXT_PLAIN".into()),
        ..Default::default()
    }
}

fn write_managed_fields(p: &mut Person, d: &DesiredContact) {
    if let Some(notes) = &d.notes {
        p.biographies = vec![biography_of(notes)];
    }
    if let Some(address) = &d.address {
        p.extra.insert(
            "addresses".into(),
            serde_json::Value::Array(vec![address_json(address)]),
        );
    }
    p.names = vec![name_of(d)];
    p.email_addresses = d.emails.iter().map(email_of).collect();
    p.phone_numbers = d.phones.iter().map(phone_of).collect();
    p.organizations = d.organization.iter().map(organization_of).collect();
    p.external_ids = d.external_ids.iter().map(external_id_of).collect();
    p.user_defined = d.user_defined.iter().map(user_defined_of).collect();
}

fn clean(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Directory phone `type` → People phone `type`.
pub fn people_phone_type(directory_type: Option<&str>, custom_type: Option<&str>) -> String {
    let t = directory_type
        .map(str::trim)
        .unwrap_or("")
        .to_ascii_lowercase();
    match t.as_str() {
        "work" => "work".into(),
        "mobile" => "mobile".into(),
        "work_mobile" => "workMobile".into(),
        "home" => "home".into(),
        "work_fax" => "workFax".into(),
        "home_fax" => "homeFax".into(),
        "other_fax" => "otherFax".into(),
        "pager" => "pager".into(),
        "work_pager" => "workPager".into(),
        "main" | "company_main" | "compain_main" => "main".into(),
        "google_voice" | "grand_central" => "googleVoice".into(),
        "custom" => clean(custom_type).unwrap_or_else(|| "other".into()),
        "" | "other" => "other".into(),
        // assistant, car, radio, isdn, callback, telex, tty_tdd: People takes any
        // string as a custom type; use its camelCase form.
        other => camel_case(other),
    }
}

fn camel_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut upper = false;
    for c in s.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Map a Directory user to its desired contact. `None` when the user has no id or no
/// primary email (nothing stable to key or show).
pub fn desired_contact(user: &User, opts: &MappingOptions) -> Option<DesiredContact> {
    let directory_id = clean(user.id.as_deref())?;
    let primary_email = clean(user.primary_email.as_deref())?;
    let name = user.name.clone().unwrap_or_default();
    let given_name = clean(name.given_name.as_deref());
    let family_name = clean(name.family_name.as_deref());
    let full_name = clean(name.full_name.as_deref())
        .or_else(|| clean(name.display_name.as_deref()))
        .or_else(|| {
            let joined = [given_name.as_deref(), family_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            clean(Some(&joined))
        })
        .unwrap_or_else(|| primary_email.clone());

    let mut emails = vec![TypedValue {
        value: primary_email.clone(),
        kind: "work".into(),
    }];
    if opts.include_aliases {
        for alias in user.aliases.iter().flatten() {
            if let Some(a) = clean(Some(alias)) {
                push_unique(&mut emails, a, "work".into(), super::plan::email_key);
            }
        }
    }

    let mut phones = Vec::new();
    if opts.phones {
        for ph in user.phones.iter().flatten() {
            if let Some(v) = clean(Some(&ph.value)) {
                let v = format_phone(&v, opts).unwrap_or_else(|as_written| as_written);
                let kind = people_phone_type(ph.kind.as_deref(), ph.custom_type.as_deref());
                push_unique(&mut phones, v, kind, super::plan::phone_key);
            }
        }
    }

    let organization = if opts.organization {
        let org = user.primary_organization();
        let o = DesiredOrganization {
            name: clean(opts.company_name.as_deref())
                .or_else(|| org.and_then(|o| clean(o.name.as_deref()))),
            title: org
                .filter(|_| opts.title)
                .and_then(|o| clean(o.title.as_deref())),
            department: org
                .filter(|_| opts.department)
                .and_then(|o| clean(o.department.as_deref())),
        };
        (o != DesiredOrganization::default()).then_some(o)
    } else {
        None
    };

    let mut organization = organization;
    let mut user_defined = Vec::new();
    for cf in &opts.custom_fields {
        let Some(text) = user
            .custom_field(&cf.schema, &cf.field)
            .and_then(custom_value_text)
        else {
            continue;
        };
        match cf.target() {
            CustomTarget::Title => {
                organization.get_or_insert_with(Default::default).title = Some(text)
            }
            CustomTarget::Department => {
                organization.get_or_insert_with(Default::default).department = Some(text)
            }
            CustomTarget::UserDefined(key) => {
                if !user_defined
                    .iter()
                    .any(|e: &TypedValue| e.kind == key && e.value == text)
                {
                    user_defined.push(TypedValue {
                        value: text,
                        kind: key.to_string(),
                    });
                }
            }
        }
    }

    let mut external_ids = Vec::new();
    if opts.include_employee_id {
        for x in user.external_ids.iter().flatten() {
            if x.kind.as_deref() == Some("organization")
                && let Some(v) = clean(Some(&x.value))
            {
                push_unique(&mut external_ids, v, "organization".into(), |v| {
                    super::plan::external_id_key("organization", v)
                });
            }
        }
    }

    Some(DesiredContact {
        directory_id,
        primary_email,
        given_name,
        family_name,
        full_name,
        emails,
        phones,
        organization,
        external_ids,
        user_defined,
        photo_etag: if opts.include_photos {
            clean(user.thumbnail_photo_etag.as_deref())
        } else {
            None
        },
        list: None,
        labels: group_label(user, opts).into_iter().collect(),
        notes: None,
        address: None,
    })
}

/// The `label_by` label of `user`: none when unset, or when the user has no department
/// or sits at the root org unit.
fn group_label(user: &User, opts: &MappingOptions) -> Option<String> {
    let value = match opts.label_by? {
        LabelBy::Department => clean(
            user.primary_organization()
                .and_then(|o| o.department.as_deref()),
        )?,
        LabelBy::OrgUnit => clean(user.org_unit_path.as_deref().map(|p| p.trim_matches('/')))?,
    };
    Some(department_label(&opts.label_prefix, &value))
}

fn push_unique(
    list: &mut Vec<TypedValue>,
    value: String,
    kind: String,
    key: impl Fn(&str) -> String,
) {
    let k = key(&value);
    if !list.iter().any(|e| key(&e.value) == k) {
        list.push(TypedValue { value, kind });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsync_wire::directory::{UserExternalId, UserName, UserOrganization, UserPhone};

    fn ada() -> User {
        User {
            id: Some("101".into()),
            primary_email: Some("ada@example.com".into()),
            name: Some(UserName {
                given_name: Some("Ada".into()),
                family_name: Some("Lovelace".into()),
                full_name: Some("Ada Lovelace".into()),
                display_name: None,
            }),
            aliases: Some(vec!["countess@example.com".into()]),
            phones: Some(
                [
                    ("work", None, " +44 20 1234 "),
                    ("work_mobile", None, "+44 7700 900"),
                    ("custom", Some("Lab"), "555"),
                    ("google_voice", None, "+1 555 0100"),
                    ("work", None, "+44 20 1234"),
                ]
                .into_iter()
                .map(|(t, c, v)| UserPhone {
                    value: v.into(),
                    kind: Some(t.into()),
                    custom_type: c.map(Into::into),
                    primary: None,
                })
                .collect(),
            ),
            organizations: Some(vec![UserOrganization {
                name: Some("Analytical Engines".into()),
                title: Some("Analyst".into()),
                department: Some("R&D".into()),
                primary: Some(true),
                ..Default::default()
            }]),
            external_ids: Some(vec![
                UserExternalId {
                    value: "E-7".into(),
                    kind: Some("organization".into()),
                    custom_type: None,
                },
                UserExternalId {
                    value: "acct".into(),
                    kind: Some("account".into()),
                    custom_type: None,
                },
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn maps_names_phones_with_types_and_organization() {
        let d = desired_contact(&ada(), &MappingOptions::default()).unwrap();
        assert_eq!(d.directory_id, "101");
        assert_eq!(d.given_name.as_deref(), Some("Ada"));
        assert_eq!(d.family_name.as_deref(), Some("Lovelace"));
        assert_eq!(d.full_name, "Ada Lovelace");
        assert_eq!(
            d.emails,
            [TypedValue {
                value: "ada@example.com".into(),
                kind: "work".into()
            }]
        );
        let phones: Vec<_> = d
            .phones
            .iter()
            .map(|p| (p.kind.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            phones,
            [
                ("work", "+44 20 1234"),
                ("workMobile", "+44 7700 900"),
                ("Lab", "555"),
                ("googleVoice", "+1 555 0100"),
            ],
            "all phones, typed, trimmed, duplicates dropped"
        );
        let org = d.organization.unwrap();
        assert_eq!(org.name.as_deref(), Some("Analytical Engines"));
        assert_eq!(org.title.as_deref(), Some("Analyst"));
        assert_eq!(org.department.as_deref(), Some("R&D"));
        assert!(d.external_ids.is_empty(), "employee id is opt-in");
    }

    #[test]
    fn options_add_aliases_employee_id_and_company_name() {
        let opts = MappingOptions {
            include_aliases: true,
            include_employee_id: true,
            company_name: Some("ACME".into()),
            title: false,
            ..Default::default()
        };
        let d = desired_contact(&ada(), &opts).unwrap();
        assert_eq!(d.emails.len(), 2);
        assert_eq!(d.emails[1].value, "countess@example.com");
        assert_eq!(
            d.external_ids,
            [TypedValue {
                value: "E-7".into(),
                kind: "organization".into()
            }]
        );
        let org = d.organization.unwrap();
        assert_eq!(org.name.as_deref(), Some("ACME"));
        assert_eq!(org.title, None);
    }

    #[test]
    fn custom_fields_become_user_defined_entries_or_the_title_and_department() {
        let mut u = ada();
        u.custom_schemas = serde_json::json!({
            "HR": {"CostCentre": " CC-42 ", "Level": "Principal", "Remote": true,
                   "Desk": [{"value": "B2"}, {"value": "C7"}], "Empty": ""},
            "Org": {"Unit": "Analytical Engines"}
        })
        .as_object()
        .cloned();
        let field = |schema: &str, field: &str, label: &str| CustomField {
            schema: schema.into(),
            field: field.into(),
            label: label.into(),
        };
        let opts = MappingOptions {
            custom_fields: vec![
                field("HR", "CostCentre", "Cost centre"),
                field("HR", "Remote", "Remote"),
                field("HR", "Desk", "Desk"),
                field("HR", "Empty", "Empty"),
                field("HR", "Missing", "Missing"),
                field("HR", "Level", "Title"),
                field("Org", "Unit", "department"),
            ],
            ..MappingOptions::default()
        };
        let d = desired_contact(&u, &opts).unwrap();
        let pairs: Vec<(&str, &str)> = d
            .user_defined
            .iter()
            .map(|t| (t.kind.as_str(), t.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("Cost centre", "CC-42"),
                ("Remote", "Yes"),
                ("Desk", "B2, C7")
            ]
        );
        let org = d.organization.as_ref().unwrap();
        assert_eq!(org.title.as_deref(), Some("Principal"));
        assert_eq!(org.department.as_deref(), Some("Analytical Engines"));
        let p = d.to_new_person("contactGroups/x");
        assert_eq!(p.user_defined.len(), 3);
        // Without custom fields the contact (and so its hash) is what it always was.
        let plain = desired_contact(&u, &MappingOptions::default()).unwrap();
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("user_defined").is_none(), "{json}");
    }

    #[test]
    fn e164_reads_numbers_from_five_countries_and_keeps_what_it_cannot_read() {
        let e164 = |region: Option<&str>| MappingOptions {
            phone_format: PhoneFormat::E164,
            phone_region: region.map(str::to_string),
            ..MappingOptions::default()
        };
        let gb = e164(Some("GB"));
        for (written, want) in [
            ("020 7946 0018", "+442079460018"),
            ("+44 (0)20 7946 0018", "+442079460018"),
            ("+1 (415) 555-2671", "+14155552671"),
            ("+49 30 901820", "+4930901820"),
            ("+33 1 42 68 53 00", "+33142685300"),
            ("+30 21 0123 4567", "+302101234567"),
        ] {
            assert_eq!(format_phone(written, &gb).as_deref(), Ok(want), "{written}");
        }
        // In another region the same national number means another country.
        assert_eq!(
            format_phone("030 901820", &e164(Some("de"))).as_deref(),
            Ok("+4930901820")
        );
        // Without a region or a country code, or not a number at all: kept as written.
        assert_eq!(
            format_phone("020 7946 0018", &e164(None)),
            Err("020 7946 0018".into())
        );
        assert_eq!(format_phone("ext. 42", &gb), Err("ext. 42".into()));
        assert_eq!(format_phone("+44 12", &gb), Err("+44 12".into()));
        // As is: untouched.
        let as_is = MappingOptions::default();
        assert_eq!(
            format_phone("020 7946 0018", &as_is).as_deref(),
            Ok("020 7946 0018")
        );
        assert!(is_phone_region("gb") && !is_phone_region("UK") && !is_phone_region(""));
    }

    /// The run digest hashes the options: at their defaults the phone options must not
    /// change it, or every book's incremental shortcut would be lost on upgrade.
    #[test]
    fn default_phone_options_leave_the_serialised_mapping_as_it_was() {
        let json = serde_json::to_value(MappingOptions::default()).unwrap();
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert!(!keys.iter().any(|k| k.starts_with("phone_")), "{keys:?}");
    }

    #[test]
    fn phone_type_table() {
        for (dir, people) in [
            ("work", "work"),
            ("mobile", "mobile"),
            ("work_mobile", "workMobile"),
            ("home", "home"),
            ("work_fax", "workFax"),
            ("home_fax", "homeFax"),
            ("pager", "pager"),
            ("main", "main"),
            ("google_voice", "googleVoice"),
            ("other", "other"),
            ("tty_tdd", "ttyTdd"),
        ] {
            assert_eq!(people_phone_type(Some(dir), None), people);
        }
        assert_eq!(people_phone_type(Some("custom"), Some("Desk")), "Desk");
        assert_eq!(people_phone_type(Some("custom"), None), "other");
        assert_eq!(people_phone_type(None, None), "other");
    }

    #[test]
    fn nameless_user_falls_back_to_email_and_idless_user_maps_to_nothing() {
        let u = User {
            id: Some("9".into()),
            primary_email: Some("x@example.com".into()),
            ..Default::default()
        };
        assert_eq!(
            desired_contact(&u, &MappingOptions::default())
                .unwrap()
                .full_name,
            "x@example.com"
        );
        let no_id = User {
            primary_email: Some("x@example.com".into()),
            ..Default::default()
        };
        assert!(desired_contact(&no_id, &MappingOptions::default()).is_none());
    }

    #[test]
    fn hash_changes_with_content_not_with_photo() {
        let opts = MappingOptions::default();
        let a = desired_contact(&ada(), &opts).unwrap();
        let mut b = a.clone();
        b.photo_etag = Some("p".into());
        assert_eq!(a.hash(), b.hash());
        b.phones.pop();
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn new_person_carries_markers_and_memberships() {
        let d = desired_contact(&ada(), &MappingOptions::default()).unwrap();
        let p = d.to_new_person("contactGroups/abc");
        assert_eq!(
            p.client_data_value(markers::SOURCE),
            Some(markers::SOURCE_VALUE)
        );
        assert_eq!(p.client_data_value(markers::ID), Some("101"));
        assert_eq!(p.client_data_value(markers::HASH), Some(d.hash().as_str()));
        let groups: Vec<_> = p.group_resource_names().collect();
        assert_eq!(groups, [MY_CONTACTS, "contactGroups/abc"]);
        assert_eq!(p.names.len(), 1);
        assert_eq!(p.organizations[0].current, Some(true));
    }
}
