//! Admin SDK Directory API v1: users, groups, members, push channels.
//!
//! Paths: `admin/directory/v1/...` and `admin/directory_v1/channels/stop`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const KIND_USER: &str = "admin#directory#user";
pub const KIND_USERS: &str = "admin#directory#users";
pub const KIND_GROUP: &str = "admin#directory#group";
pub const KIND_GROUPS: &str = "admin#directory#groups";
pub const KIND_MEMBER: &str = "admin#directory#member";
pub const KIND_MEMBERS: &str = "admin#directory#members";
pub const KIND_CHANNEL: &str = "api#channel";
pub const KIND_USER_PHOTO: &str = "admin#directory#user#photo";

/// Largest `maxResults` for `users.list`.
pub const USERS_MAX_PAGE: u32 = 500;
/// Largest `maxResults` for `groups.list` and `members.list`.
pub const GROUPS_MAX_PAGE: u32 = 200;

/// The five `users.watch` event types, as they appear on the wire.
pub const WATCH_EVENTS: [&str; 5] = ["add", "update", "delete", "undelete", "makeAdmin"];

/// A Directory user. Fields orgsync reads are typed; the rest are kept in `extra`
/// so an emulator or a read-modify-write client loses nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<UserName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_admin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_delegated_admin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_unit_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_in_global_address_list: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_editable_aliases: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "crate::lenient::vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub emails: Option<Vec<UserEmail>>,
    #[serde(
        default,
        deserialize_with = "crate::lenient::vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub phones: Option<Vec<UserPhone>>,
    #[serde(
        default,
        deserialize_with = "crate::lenient::vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub organizations: Option<Vec<UserOrganization>>,
    #[serde(
        default,
        deserialize_with = "crate::lenient::vec",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_ids: Option<Vec<UserExternalId>>,
    /// schema name → field name → value (`any`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_schemas: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_photo_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_photo_etag: Option<String>,
    /// Write-only on insert/update; never echoed by the emulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_function: Option<String>,
    /// Every other field (addresses, relations, locations, ...), kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// Suspended or archived users are inactive (Bitwarden: `disabled = suspended || archived`).
    pub fn is_inactive(&self) -> bool {
        self.suspended.unwrap_or(false) || self.archived.unwrap_or(false)
    }

    /// Google's default for `includeInGlobalAddressList` is true.
    pub fn in_global_address_list(&self) -> bool {
        self.include_in_global_address_list.unwrap_or(true)
    }

    /// The primary organization, or the first one.
    pub fn primary_organization(&self) -> Option<&UserOrganization> {
        let orgs = self.organizations.as_deref()?;
        orgs.iter()
            .find(|o| o.primary == Some(true))
            .or_else(|| orgs.first())
    }

    /// A custom-schema field value, e.g. `custom_field("Roles", "admin")`.
    pub fn custom_field(&self, schema: &str, field: &str) -> Option<&Value> {
        self.custom_schemas.as_ref()?.get(schema)?.get(field)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserName {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserEmail {
    #[serde(default)]
    pub address: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

/// `type` is one of home, work, other, home_fax, work_fax, mobile, pager, other_fax,
/// compain_main, assistant, car, radio, isdn, callback, telex, tty_tdd, work_mobile,
/// work_pager, main, grand_central, google_voice, custom (then `customType`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPhone {
    #[serde(default)]
    pub value: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_center: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_time_equivalent: Option<i64>,
}

/// `type` is one of account, custom, customer, login_id, network, organization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserExternalId {
    #[serde(default)]
    pub value: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_type: Option<String>,
}

/// `users.list` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Users {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    #[serde(
        default,
        rename = "trigger_event",
        skip_serializing_if = "Option::is_none"
    )]
    pub trigger_event: Option<String>,
}

/// `users.undelete` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserUndelete {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_unit_path: Option<String>,
}

/// `users.makeAdmin` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserMakeAdmin {
    pub status: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default)]
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(
        default,
        with = "crate::int64::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub direct_members_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_created: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Groups {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A group member. `type` is USER, GROUP or CUSTOMER; `status` e.g. ACTIVE, SUSPENDED.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind_of_member: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(
        default,
        rename = "delivery_settings",
        skip_serializing_if = "Option::is_none"
    )]
    pub delivery_settings: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Members {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A push notification channel (`users.watch` body and response, `channels.stop` body).
///
/// `Debug` never prints the channel token: it authenticates notifications.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub id: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub channel_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Unix milliseconds.
    #[serde(
        default,
        with = "crate::int64::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration: Option<i64>,
    /// e.g. `{"ttl": "21600"}` (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_uri: Option<String>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("expiration", &self.expiration)
            .field("resource_id", &self.resource_id)
            .field("resource_uri", &self.resource_uri)
            .finish()
    }
}

/// Body of a Directory push notification
/// (<https://developers.google.com/workspace/admin/directory/v1/guides/push>). `etag` is the
/// etag of the notification, not of the user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserNotification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, with = "id_string")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_email: Option<String>,
}

/// `users.photos` resource (`admin/directory/v1/users/{userKey}/photos/thumbnail`).
///
/// `photoData` is Google's *web-safe* base64: `-` and `_` instead of `+` and `/`, and
/// the discovery document says padding may come as `*` or `.` instead of `=`. Readers
/// should decode leniently (both alphabets, any or no padding). `mimeType` is one of
/// `JPEG`, `PNG`, `GIF`, `BMP`, `TIFF` on the way in; Google answers `image/jpeg`-style
/// values. `Debug` shows the size of `photoData`, not the data.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPhoto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The user's unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_email: Option<String>,
    /// Web-safe base64 of the image bytes. Required by `users.photos.update`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i32>,
}

impl std::fmt::Debug for UserPhoto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPhoto")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("etag", &self.etag)
            .field("primary_email", &self.primary_email)
            .field(
                "photo_data",
                &self
                    .photo_data
                    .as_ref()
                    .map(|d| format!("<{} base64 chars>", d.len())),
            )
            .field("mime_type", &self.mime_type)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

/// Push notification headers
/// (<https://developers.google.com/workspace/admin/directory/v1/guides/push>).
pub mod push_headers {
    pub const CHANNEL_ID: &str = "x-goog-channel-id";
    pub const MESSAGE_NUMBER: &str = "x-goog-message-number";
    pub const RESOURCE_ID: &str = "x-goog-resource-id";
    pub const RESOURCE_STATE: &str = "x-goog-resource-state";
    pub const RESOURCE_URI: &str = "x-goog-resource-uri";
    pub const CHANNEL_EXPIRATION: &str = "x-goog-channel-expiration";
    pub const CHANNEL_TOKEN: &str = "x-goog-channel-token";
}

/// The guide's template types the notification `id` as a long; its example uses a string.
mod id_string {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        S(String),
        N(u64),
    }

    pub fn serialize<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(match Id::deserialize(d)? {
            Id::S(s) => s,
            Id::N(n) => n.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_round_trips_unknown_fields_and_reads_any_typed_lists() {
        let body = r#"{"kind":"admin#directory#user","id":"1","primaryEmail":"a@example.com",
            "name":{"givenName":"Ada","familyName":"Lovelace","fullName":"Ada Lovelace"},
            "phones":[{"value":"+1 555","type":"work"},{"value":7}],
            "organizations":[{"title":"Eng","primary":true,"fullTimeEquivalent":100000}],
            "addresses":[{"type":"work","formatted":"1 Main St"}],
            "customSchemas":{"Roles":{"admin":true}}}"#;
        let u: User = serde_json::from_str(body).unwrap();
        assert_eq!(u.phones.as_ref().unwrap().len(), 1, "odd phone dropped");
        assert_eq!(
            u.primary_organization().unwrap().title.as_deref(),
            Some("Eng")
        );
        assert_eq!(u.custom_field("Roles", "admin"), Some(&Value::Bool(true)));
        assert!(u.extra.contains_key("addresses"));
        let back = serde_json::to_value(&u).unwrap();
        assert_eq!(back["addresses"][0]["formatted"], "1 Main St");
        assert!(u.in_global_address_list());
        assert!(!u.is_inactive());
    }

    #[test]
    fn channel_reads_numeric_and_string_expiration_and_hides_token() {
        let c: Channel = serde_json::from_str(
            r#"{"kind":"api#channel","id":"c1","resourceId":"r","token":"SECRET","expiration":1384823632000}"#,
        )
        .unwrap();
        assert_eq!(c.expiration, Some(1384823632000));
        assert!(!format!("{c:?}").contains("SECRET"));
        let c2: Channel =
            serde_json::from_str(r#"{"id":"c1","expiration":"1384823632000"}"#).unwrap();
        assert_eq!(c2.expiration, c.expiration);
    }

    #[test]
    fn user_photo_wire_names_and_debug_hides_data() {
        let p: UserPhoto = serde_json::from_str(
            r#"{"kind":"admin#directory#user#photo","id":"1","primaryEmail":"a@x",
            "photoData":"iVBORw0KGgo*","mimeType":"image/png","width":96,"height":96,"etag":"e"}"#,
        )
        .unwrap();
        assert_eq!(p.photo_data.as_deref(), Some("iVBORw0KGgo*"));
        assert_eq!((p.width, p.height), (Some(96), Some(96)));
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["primaryEmail"], "a@x");
        assert_eq!(back["mimeType"], "image/png");
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("iVBOR"), "{dbg}");
        assert!(dbg.contains("12 base64 chars"), "{dbg}");
    }

    #[test]
    fn notification_id_may_be_a_number() {
        let n: UserNotification = serde_json::from_str(
            r#"{"kind":"admin#directory#user","id":111220860655841818702,"primaryEmail":"u@x"}"#,
        )
        .unwrap_or_else(|_| {
            // u64 overflow for this example id: the string form is what Google sends.
            serde_json::from_str(r#"{"id":"111220860655841818702","primaryEmail":"u@x"}"#).unwrap()
        });
        assert_eq!(n.id, "111220860655841818702");
        let m: UserNotification = serde_json::from_str(r#"{"id":42}"#).unwrap();
        assert_eq!(m.id, "42");
    }
}

/// A calendar resource (a meeting room, or equipment): Directory
/// `resources.calendars`
/// (<https://developers.google.com/workspace/admin/directory/reference/rest/v1/resources.calendars>).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etags: Option<String>,
    #[serde(default)]
    pub resource_id: String,
    #[serde(default)]
    pub resource_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_resource_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_visible_description: Option<String>,
    /// Read-only, generated by Google (`…@resource.calendar.google.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_section: Option<String>,
    /// `CONFERENCE_ROOM`, `OTHER` or (legacy) `CATEGORY_UNKNOWN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_category: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A page of `resources.calendars.list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default)]
    pub items: Vec<CalendarResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A custom schema: a category of custom user attributes (`schemas` resource,
/// <https://developers.google.com/workspace/admin/directory/reference/rest/v1/schemas>).
/// Users carry its values under `customSchemas.<schemaName>.<fieldName>`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schema {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_id: Option<String>,
    #[serde(default)]
    pub schema_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default)]
    pub fields: Vec<SchemaFieldSpec>,
}

/// One field of a [`Schema`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaFieldSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_id: Option<String>,
    #[serde(default)]
    pub field_name: String,
    /// `STRING`, `INT64`, `BOOL`, `DOUBLE`, `EMAIL`, `PHONE` or `DATE`.
    #[serde(default)]
    pub field_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_valued: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `ALL_DOMAIN_USERS` or `ADMINS_AND_SELF`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_access_type: Option<String>,
}

/// `schemas.list`: every custom schema of the customer (no paging).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schemas {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default)]
    pub schemas: Vec<Schema>,
}
