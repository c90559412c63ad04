//! People API v1: contacts (`Person`), contact groups, batch mutations, sync tokens.
//!
//! Paths: `v1/people/me/connections`, `v1/people:batchCreateContacts`,
//! `v1/{+resourceName}:updateContact`, `v1/contactGroups/...`.
//!
//! Every struct keeps unknown fields in a flattened `extra` map: People updates replace
//! whole fields (`updatePersonFields`), so a client that drops what it does not know
//! would erase what the person or another app put there.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest `pageSize` for `people.connections.list` and `contactGroups.list`.
pub const CONNECTIONS_MAX_PAGE: u32 = 1000;
pub const BATCH_CREATE_MAX: usize = 200;
pub const BATCH_UPDATE_MAX: usize = 200;
pub const BATCH_DELETE_MAX: usize = 500;
pub const BATCH_GET_MAX: usize = 200;
pub const MEMBERS_MODIFY_MAX: usize = 1000;
/// Per-account contact cap: widely cited by third parties, but no Google page states it
/// (see `docs/ARCHITECTURE.md`).
pub const CONTACTS_PER_USER_CAP: usize = 25_000;

pub const MY_CONTACTS: &str = "contactGroups/myContacts";
pub const STARRED: &str = "contactGroups/starred";

/// Fields `updatePersonFields` / `updateMask` accept.
pub const UPDATABLE_PERSON_FIELDS: [&str; 24] = [
    "addresses",
    "biographies",
    "birthdays",
    "calendarUrls",
    "clientData",
    "emailAddresses",
    "events",
    "externalIds",
    "genders",
    "imClients",
    "interests",
    "locales",
    "locations",
    "memberships",
    "miscKeywords",
    "names",
    "nicknames",
    "occupations",
    "organizations",
    "phoneNumbers",
    "relations",
    "sipAddresses",
    "urls",
    "userDefined",
];

/// Fields `personFields` / `readMask` accept.
pub const READABLE_PERSON_FIELDS: [&str; 29] = [
    "addresses",
    "ageRanges",
    "biographies",
    "birthdays",
    "calendarUrls",
    "clientData",
    "coverPhotos",
    "emailAddresses",
    "events",
    "externalIds",
    "genders",
    "imClients",
    "interests",
    "locales",
    "locations",
    "memberships",
    "metadata",
    "miscKeywords",
    "names",
    "nicknames",
    "occupations",
    "organizations",
    "phoneNumbers",
    "photos",
    "relations",
    "sipAddresses",
    "skills",
    "urls",
    "userDefined",
];

/// Singleton fields on contacts: more than one value is a 400.
pub const SINGLETON_PERSON_FIELDS: [&str; 4] = ["biographies", "birthdays", "genders", "names"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PersonMetadata>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<Name>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<EmailAddress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<Organization>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_data: Vec<ClientData>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_ids: Vec<ExternalId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memberships: Vec<Membership>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub biographies: Vec<Biography>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_defined: Vec<UserDefined>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub photos: Vec<Photo>,
    /// addresses, birthdays, urls, relations, ... kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Person {
    /// The value of the first `clientData` entry with this key.
    pub fn client_data_value(&self, key: &str) -> Option<&str> {
        self.client_data
            .iter()
            .find(|c| c.key.as_deref() == Some(key))
            .and_then(|c| c.value.as_deref())
    }

    pub fn is_deleted(&self) -> bool {
        self.metadata
            .as_ref()
            .and_then(|m| m.deleted)
            .unwrap_or(false)
    }

    pub fn group_resource_names(&self) -> impl Iterator<Item = &str> {
        self.memberships.iter().filter_map(|m| {
            m.contact_group_membership
                .as_ref()
                .and_then(|g| g.contact_group_resource_name.as_deref())
        })
    }
}

/// A contact's identity without its data: resource name, tombstone flag, `clientData`
/// and contact-group memberships, read from the same JSON as a [`Person`]. For reads
/// that need only these (checking creates by their markers): every other field is
/// skipped while parsing instead of being built and dropped, which on a 2,000-contact
/// book is most of the cost of reading it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "MarkersJson")]
pub struct PersonMarkers {
    pub resource_name: Option<String>,
    /// `metadata.deleted` (a tombstone in a sync response).
    pub deleted: bool,
    /// `clientData` entries as (key, value); a missing key or value is empty.
    pub client_data: Vec<(String, String)>,
    /// `memberships[].contactGroupMembership.contactGroupResourceName`.
    pub groups: Vec<String>,
}

impl PersonMarkers {
    /// The markers of a fully parsed contact.
    pub fn of(p: &Person) -> Self {
        PersonMarkers {
            resource_name: p.resource_name.clone(),
            deleted: p.is_deleted(),
            client_data: p
                .client_data
                .iter()
                .map(|c| {
                    (
                        c.key.clone().unwrap_or_default(),
                        c.value.clone().unwrap_or_default(),
                    )
                })
                .collect(),
            groups: p.group_resource_names().map(str::to_string).collect(),
        }
    }

    /// The value of the first `clientData` entry with this key
    /// (as [`Person::client_data_value`]).
    pub fn client_data_value(&self, key: &str) -> Option<&str> {
        self.client_data
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MarkersJson {
    #[serde(default)]
    resource_name: Option<String>,
    #[serde(default)]
    metadata: Option<DeletedJson>,
    #[serde(default)]
    client_data: Vec<KeyValueJson>,
    #[serde(default)]
    memberships: Vec<MembershipJson>,
}

#[derive(Deserialize)]
struct DeletedJson {
    #[serde(default)]
    deleted: Option<bool>,
}

#[derive(Deserialize)]
struct KeyValueJson {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MembershipJson {
    #[serde(default)]
    contact_group_membership: Option<GroupRefJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupRefJson {
    #[serde(default)]
    contact_group_resource_name: Option<String>,
}

impl From<MarkersJson> for PersonMarkers {
    fn from(j: MarkersJson) -> Self {
        PersonMarkers {
            resource_name: j.resource_name,
            deleted: j.metadata.and_then(|m| m.deleted).unwrap_or(false),
            client_data: j
                .client_data
                .into_iter()
                .map(|c| (c.key.unwrap_or_default(), c.value.unwrap_or_default()))
                .collect(),
            groups: j
                .memberships
                .into_iter()
                .filter_map(|m| m.contact_group_membership?.contact_group_resource_name)
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonMetadata {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_resource_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linked_people_resource_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<String>,
}

/// `type` is CONTACT, PROFILE, DOMAIN_PROFILE, ...
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_primary: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Name {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<FieldMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name_last_first: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unstructured_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<FieldMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// home, work, other, or custom.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneNumber {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<FieldMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_form: Option<String>,
    /// home, work, mobile, homeFax, workFax, otherFax, pager, workMobile, workPager,
    /// main, googleVoice, other, or custom.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<FieldMetadata>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<FieldMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl ClientData {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        ClientData {
            metadata: None,
            key: Some(key.into()),
            value: Some(value.into()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalId {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<FieldMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// account, customer, network, organization, or custom.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<FieldMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_group_membership: Option<ContactGroupMembership>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_membership: Option<Value>,
}

impl Membership {
    pub fn group(resource_name: impl Into<String>) -> Self {
        Membership {
            metadata: None,
            contact_group_membership: Some(ContactGroupMembership {
                contact_group_id: None,
                contact_group_resource_name: Some(resource_name.into()),
            }),
            domain_membership: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactGroupMembership {
    /// Output only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_group_resource_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Biography {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<FieldMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDefined {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<FieldMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Photo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<FieldMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
}

/// `people.connections.list` response. `nextSyncToken` only on the last page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListConnectionsResponse {
    #[serde(default)]
    pub connections: Vec<Person>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_items: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_people: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactToCreate {
    pub contact_person: Person,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCreateContactsRequest {
    #[serde(default)]
    pub contacts: Vec<ContactToCreate>,
    #[serde(default)]
    pub read_mask: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchCreateContactsResponse {
    #[serde(default)]
    pub created_people: Vec<PersonResponse>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchUpdateContactsRequest {
    /// resource name → person (with its etag).
    #[serde(default)]
    pub contacts: BTreeMap<String, Person>,
    #[serde(default)]
    pub update_mask: String,
    #[serde(default)]
    pub read_mask: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchUpdateContactsResponse {
    #[serde(default)]
    pub update_result: BTreeMap<String, PersonResponse>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchDeleteContactsRequest {
    #[serde(default)]
    pub resource_names: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_resource_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status_code: Option<i32>,
}

/// `people:batchGet` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPeopleResponse {
    #[serde(default)]
    pub responses: Vec<PersonResponse>,
}

/// `google.rpc.Status` as embedded in `PersonResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

/// `groupType` is USER_CONTACT_GROUP or SYSTEM_CONTACT_GROUP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ContactGroupMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_resource_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_data: Vec<GroupClientData>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactGroupMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupClientData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListContactGroupsResponse {
    #[serde(default)]
    pub contact_groups: Vec<ContactGroup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_items: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateContactGroupRequest {
    pub contact_group: ContactGroup,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_group_fields: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateContactGroupRequest {
    pub contact_group: ContactGroup,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_group_fields: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_group_fields: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifyContactGroupMembersRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names_to_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names_to_remove: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifyContactGroupMembersResponse {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_found_resource_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub can_not_remove_last_contact_group_resource_names: Vec<String>,
}

/// `people.updateContactPhoto` body (`PATCH v1/{+resourceName}:updateContactPhoto`).
/// `photoBytes` is standard base64 of a JPEG or PNG. Without `personFields` the response
/// carries no person. `Debug` shows the size of `photoBytes`, not the data.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateContactPhotoRequest {
    #[serde(default)]
    pub photo_bytes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_fields: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

impl std::fmt::Debug for UpdateContactPhotoRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateContactPhotoRequest")
            .field(
                "photo_bytes",
                &format!("<{} base64 chars>", self.photo_bytes.len()),
            )
            .field("person_fields", &self.person_fields)
            .field("sources", &self.sources)
            .finish()
    }
}

/// `people.updateContactPhoto` response: the person when `personFields` was set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateContactPhotoResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
}

/// `people.deleteContactPhoto` response (`DELETE v1/{+resourceName}:deleteContactPhoto`):
/// the person when the `personFields` query parameter was set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteContactPhotoResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<Person>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_read_from_json_match_the_full_person() {
        // Everything a connections.list response decorates contacts with: metadata on
        // entries, a domain membership, a tombstone, entries with a missing key.
        let bodies = [
            r#"{"resourceName":"people/c1","etag":"%E1","metadata":{"sources":[{"type":"CONTACT","id":"1"}],"objectType":"PERSON"},
               "names":[{"givenName":"Ada","metadata":{"primary":true}}],"phoneNumbers":[{"value":"+1","type":"work"}],
               "clientData":[{"metadata":{"source":{"type":"CONTACT","id":"1"}},"key":"orgsync.source","value":"orgsync"},{"key":"orgsync.id","value":"42"},{"value":"no key"}],
               "memberships":[{"metadata":{"source":{"type":"CONTACT","id":"1"}},"contactGroupMembership":{"contactGroupId":"myContacts","contactGroupResourceName":"contactGroups/myContacts"}},{"domainMembership":{"inViewerDomain":true}},{"contactGroupMembership":{"contactGroupId":"abc","contactGroupResourceName":"contactGroups/abc"}}],
               "addresses":[{"formattedValue":"1 Main St"}]}"#,
            r#"{"resourceName":"people/c2","metadata":{"deleted":true,"sources":[{"type":"CONTACT"}]}}"#,
            r#"{}"#,
        ];
        for body in bodies {
            let light: PersonMarkers = serde_json::from_str(body).unwrap();
            let full: Person = serde_json::from_str(body).unwrap();
            assert_eq!(light, PersonMarkers::of(&full), "{body}");
        }
        let first: PersonMarkers = serde_json::from_str(bodies[0]).unwrap();
        assert_eq!(first.client_data_value("orgsync.id"), Some("42"));
        assert_eq!(first.groups, [MY_CONTACTS, "contactGroups/abc"]);
        let second: PersonMarkers = serde_json::from_str(bodies[1]).unwrap();
        assert!(second.deleted);
    }

    #[test]
    fn person_round_trips_fields_it_does_not_model() {
        let body = r#"{"resourceName":"people/c1","etag":"%EgUBAgMFBw==",
            "names":[{"givenName":"Ada","familyName":"Lovelace","phoneticGivenName":"A"}],
            "addresses":[{"formattedValue":"1 Main St","type":"home"}],
            "clientData":[{"key":"orgsync.source","value":"orgsync"}],
            "memberships":[{"contactGroupMembership":{"contactGroupResourceName":"contactGroups/myContacts","contactGroupId":"myContacts"}}]}"#;
        let p: Person = serde_json::from_str(body).unwrap();
        assert_eq!(p.client_data_value("orgsync.source"), Some("orgsync"));
        assert_eq!(p.group_resource_names().collect::<Vec<_>>(), [MY_CONTACTS]);
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["addresses"][0]["formattedValue"], "1 Main St");
        assert_eq!(back["names"][0]["phoneticGivenName"], "A");
        assert!(!p.is_deleted());
    }

    #[test]
    fn contact_photo_wire_shapes() {
        let r = UpdateContactPhotoRequest {
            photo_bytes: "iVBORw0KGgo=".into(),
            person_fields: Some("photos".into()),
            sources: Vec::new(),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["photoBytes"], "iVBORw0KGgo=");
        assert_eq!(v["personFields"], "photos");
        assert!(v.get("sources").is_none());
        assert!(!format!("{r:?}").contains("iVBOR"));
        let resp: UpdateContactPhotoResponse = serde_json::from_str(
            r#"{"person":{"resourceName":"people/c1","photos":[{"url":"http://x/p","metadata":{"primary":true}}]}}"#,
        )
        .unwrap();
        let p = resp.person.unwrap();
        assert_eq!(p.photos[0].url.as_deref(), Some("http://x/p"));
        assert_eq!(p.photos[0].default, None);
        let empty: DeleteContactPhotoResponse = serde_json::from_str("{}").unwrap();
        assert!(empty.person.is_none());
    }

    #[test]
    fn deleted_person_from_sync_response() {
        let p: Person = serde_json::from_str(
            r#"{"resourceName":"people/c9","etag":"e","metadata":{"deleted":true}}"#,
        )
        .unwrap();
        assert!(p.is_deleted());
    }
}
