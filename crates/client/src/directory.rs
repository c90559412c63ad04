//! Admin SDK Directory v1: users, groups, members, push channels
//! (<https://developers.google.com/workspace/admin/directory/reference/rest/v1/users> and
//! the `groups` and `members` pages beside it).
//!
//! Calls impersonate the configured admin ([`crate::ClientConfig::admin_subject`]) unless
//! a handle is made with [`GoogleClient::directory_as`].

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE};
use futures::Stream;
use orgsync_wire::directory::{
    CalendarResource, CalendarResources, Channel, GROUPS_MAX_PAGE, Group, Groups, Member, Members,
    Schemas, USERS_MAX_PAGE, User, UserMakeAdmin, UserPhoto, UserUndelete, Users,
};
use reqwest::Method;

use crate::error::{Error, ErrorKind};
use crate::paging::{items, pages, pages_ahead};
use crate::transport::{Call, GoogleClient, Lane, encode_segment};

const USERS: &str = "admin/directory/v1/users";

/// `users.list` / `users.watch` parameters. Without `customer` or `domain`,
/// `customer=my_customer` is sent (one of them is required).
#[derive(Debug, Clone, Default)]
pub struct UsersListParams {
    pub customer: Option<String>,
    pub domain: Option<String>,
    pub query: Option<String>,
    /// `email`, `familyName`, `givenName`.
    pub order_by: Option<String>,
    /// `ASCENDING`, `DESCENDING`.
    pub sort_order: Option<String>,
    /// `basic` (default), `custom`, `full`.
    pub projection: Option<String>,
    pub custom_field_mask: Option<String>,
    /// `admin_view` (default), `domain_public`.
    pub view_type: Option<String>,
    pub show_deleted: bool,
    /// Page size; defaults to the maximum, 500.
    pub max_results: Option<u32>,
    /// A partial response (`fields`, e.g. `users(id,primaryEmail)`): only these parts of
    /// each user cross the wire and are parsed. `nextPageToken` is added when missing,
    /// or the listing would end after its first page.
    pub fields: Option<String>,
}

impl UsersListParams {
    fn apply(&self, mut call: Call) -> Call {
        if self.customer.is_none() && self.domain.is_none() {
            call = call.query("customer", "my_customer");
        }
        call = call
            .query_opt("customer", self.customer.clone())
            .query_opt("domain", self.domain.clone())
            .query_opt("query", self.query.clone())
            .query_opt("orderBy", self.order_by.clone())
            .query_opt("sortOrder", self.sort_order.clone())
            .query_opt("projection", self.projection.clone())
            .query_opt("customFieldMask", self.custom_field_mask.clone())
            .query_opt("viewType", self.view_type.clone())
            .query_opt("fields", self.fields.as_deref().map(with_page_token));
        if self.show_deleted {
            call = call.query("showDeleted", "true");
        }
        call
    }
}

/// A list's `fields` with `nextPageToken` selected at the top level.
fn with_page_token(fields: &str) -> String {
    let mut depth = 0i32;
    let mut top = Vec::new();
    let mut start = 0;
    for (i, c) in fields.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                top.push(fields[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    top.push(fields[start..].trim());
    if top.contains(&"nextPageToken") {
        fields.to_string()
    } else {
        format!("{fields},nextPageToken")
    }
}

/// `groups.list` parameters: `customer`, `domain` or `userKey` (groups of one user).
#[derive(Debug, Clone, Default)]
pub struct GroupsListParams {
    pub customer: Option<String>,
    pub domain: Option<String>,
    pub user_key: Option<String>,
    pub query: Option<String>,
    pub max_results: Option<u32>,
}

/// A Directory handle for one impersonated admin.
#[derive(Debug, Clone)]
pub struct Directory {
    client: GoogleClient,
    subject: Option<String>,
}

impl GoogleClient {
    /// Directory calls as the configured admin subject.
    pub fn directory(&self) -> Directory {
        Directory {
            subject: self.config().admin_subject.clone(),
            client: self.clone(),
        }
    }

    /// Directory calls as `subject` (None: the credential's own identity).
    pub fn directory_as(&self, subject: Option<&str>) -> Directory {
        Directory {
            subject: subject.map(str::to_string),
            client: self.clone(),
        }
    }
}

impl Directory {
    fn call(&self, id: &'static str, http: Method, path: String) -> Call {
        Call::new(id, Lane::Directory, http, path).subject(self.subject.as_deref())
    }

    /// `users.list`, page by page, to the end.
    pub fn users_pages(
        &self,
        params: UsersListParams,
    ) -> impl Stream<Item = Result<Users, Error>> + Send + 'static {
        let this = self.clone();
        let max = params
            .max_results
            .unwrap_or(USERS_MAX_PAGE)
            .clamp(1, USERS_MAX_PAGE);
        // Read to the end by every job: the next page travels while this one decodes.
        pages_ahead(self.client.clone(), move |token| {
            params
                .apply(this.call("directory.users.list", Method::GET, USERS.into()))
                .query("maxResults", max.to_string())
                .query_opt("pageToken", token)
        })
    }

    /// `users.list`, user by user, streamed (one page in memory at a time).
    pub fn users_list(
        &self,
        params: UsersListParams,
    ) -> impl Stream<Item = Result<User, Error>> + Send + 'static {
        items(self.users_pages(params))
    }

    /// `users.get`; `projection` `basic`/`custom`/`full`, `view_type` as for list.
    pub async fn users_get(
        &self,
        user_key: &str,
        projection: Option<&str>,
        view_type: Option<&str>,
    ) -> Result<User, Error> {
        let call = self
            .call(
                "directory.users.get",
                Method::GET,
                format!("{USERS}/{}", encode_segment(user_key)),
            )
            .query_opt("projection", projection)
            .query_opt("viewType", view_type);
        self.client.send_json(call).await
    }

    /// `users.insert`. Not idempotent: after an unknown outcome, `users_get` the
    /// primary email before inserting again (a repeat gets 409).
    pub async fn users_insert(&self, user: &User) -> Result<User, Error> {
        let call = self
            .call("directory.users.insert", Method::POST, USERS.into())
            .json(user)?;
        self.client.send_json(call).await
    }

    /// `users.update` (PUT: full replacement of the fields sent).
    pub async fn users_update(&self, user_key: &str, user: &User) -> Result<User, Error> {
        let call = self
            .call(
                "directory.users.update",
                Method::PUT,
                format!("{USERS}/{}", encode_segment(user_key)),
            )
            .json(user)?;
        self.client.send_json(call).await
    }

    /// `users.delete`.
    pub async fn users_delete(&self, user_key: &str) -> Result<(), Error> {
        let call = self.call(
            "directory.users.delete",
            Method::DELETE,
            format!("{USERS}/{}", encode_segment(user_key)),
        );
        self.client.send(call).await.map(drop)
    }

    /// `users.undelete` (user key must be the unique id). Repeating it is harmless.
    pub async fn users_undelete(
        &self,
        user_key: &str,
        org_unit_path: Option<&str>,
    ) -> Result<(), Error> {
        let call = self
            .call(
                "directory.users.undelete",
                Method::POST,
                format!("{USERS}/{}/undelete", encode_segment(user_key)),
            )
            .json(&UserUndelete {
                org_unit_path: org_unit_path.map(str::to_string),
            })?
            .idempotent(true);
        self.client.send(call).await.map(drop)
    }

    /// `users.makeAdmin`. Setting a status is idempotent.
    pub async fn users_make_admin(&self, user_key: &str, status: bool) -> Result<(), Error> {
        let call = self
            .call(
                "directory.users.makeAdmin",
                Method::POST,
                format!("{USERS}/{}/makeAdmin", encode_segment(user_key)),
            )
            .json(&UserMakeAdmin { status })?
            .idempotent(true);
        self.client.send(call).await.map(drop)
    }

    /// `users.watch` for one `event` (`add`, `update`, `delete`, `undelete`,
    /// `makeAdmin`). Not idempotent (each call opens a channel).
    pub async fn users_watch(
        &self,
        params: &UsersListParams,
        event: &str,
        channel: &Channel,
    ) -> Result<Channel, Error> {
        let call = params
            .apply(self.call(
                "directory.users.watch",
                Method::POST,
                format!("{USERS}/watch"),
            ))
            .query("event", event)
            .json(channel)?;
        self.client.send_json(call).await
    }

    /// `admin.channels.stop` — note the `directory_v1` path, as in the discovery document and
    /// the push guide (<https://developers.google.com/workspace/admin/directory/v1/guides/push>);
    /// the REST reference page shows `directory/v1` instead.
    /// Stopping twice is harmless, so it is retried.
    pub async fn channels_stop(&self, channel: &Channel) -> Result<(), Error> {
        let body = Channel {
            id: channel.id.clone(),
            resource_id: channel.resource_id.clone(),
            ..Default::default()
        };
        let call = self
            .call(
                "admin.channels.stop",
                Method::POST,
                "admin/directory_v1/channels/stop".into(),
            )
            .json(&body)?
            .idempotent(true);
        self.client.send(call).await.map(drop)
    }

    /// `users.photos.get`. `Ok(None)` when Google answers 404, which it does both for a
    /// user without a photo and for an unknown `user_key` (it does not tell them apart;
    /// `users_get` does). Decode `photoData` with [`decode_photo_data`].
    pub async fn users_photos_get(&self, user_key: &str) -> Result<Option<UserPhoto>, Error> {
        let call = self.call(
            "directory.users.photos.get",
            Method::GET,
            photo_path(user_key),
        );
        match self.client.send_json(call).await {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.is(ErrorKind::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `users.photos.update` (PUT): `bytes` (JPEG, PNG, GIF, BMP or TIFF) become the
    /// user's photo; sent as web-safe base64. Returns the new photo (its `etag` is the
    /// user's new `thumbnailPhotoEtag`). Uploading the same bytes again is harmless, so
    /// it is retried. An unknown user fails with [`ErrorKind::NotFound`].
    pub async fn users_photos_update(
        &self,
        user_key: &str,
        bytes: &[u8],
        mime_type: Option<&str>,
    ) -> Result<UserPhoto, Error> {
        if bytes.is_empty() {
            return Err(Error::InvalidArgument(
                "users.photos.update: the photo is empty".into(),
            ));
        }
        let body = UserPhoto {
            photo_data: Some(encode_photo_data(bytes)),
            mime_type: mime_type.map(str::to_string),
            ..Default::default()
        };
        let call = self
            .call(
                "directory.users.photos.update",
                Method::PUT,
                photo_path(user_key),
            )
            .json(&body)?;
        self.client.send_json(call).await
    }

    /// `users.photos.delete`. `Ok(true)` when a photo was removed, `Ok(false)` when
    /// Google answered 404 (no photo, or no such user). Retried: deleting twice is
    /// harmless (a repeat after a lost answer reports `false`).
    pub async fn users_photos_delete(&self, user_key: &str) -> Result<bool, Error> {
        let call = self.call(
            "directory.users.photos.delete",
            Method::DELETE,
            photo_path(user_key),
        );
        match self.client.send(call).await {
            Ok(_) => Ok(true),
            Err(e) if e.is(ErrorKind::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `resources.calendars.list` of `customer` (`None`: `my_customer`), 500 per page
    /// (the most Google serves), to the end: the meeting rooms and other resources.
    pub fn calendar_resources_pages(
        &self,
        customer: Option<&str>,
    ) -> impl Stream<Item = Result<CalendarResources, Error>> + Send + 'static {
        let this = self.clone();
        let path = format!(
            "admin/directory/v1/customer/{}/resources/calendars",
            encode_segment(customer.unwrap_or("my_customer"))
        );
        pages(self.client.clone(), move |token| {
            this.call(
                "directory.resources.calendars.list",
                Method::GET,
                path.clone(),
            )
            .query("maxResults", "500")
            .query_opt("pageToken", token)
        })
    }

    /// `schemas.list` of `customer` (`None`: `my_customer`): every custom schema (the
    /// categories of custom user attributes) with its fields, in one answer.
    pub async fn schemas_list(&self, customer: Option<&str>) -> Result<Schemas, Error> {
        let path = format!(
            "admin/directory/v1/customer/{}/schemas",
            encode_segment(customer.unwrap_or("my_customer"))
        );
        let call = self.call("directory.schemas.list", Method::GET, path);
        self.client.send_json(call).await
    }

    /// [`Self::calendar_resources_pages`], resource by resource.
    pub fn calendar_resources_list(
        &self,
        customer: Option<&str>,
    ) -> impl Stream<Item = Result<CalendarResource, Error>> + Send + 'static {
        items(self.calendar_resources_pages(customer))
    }

    /// `groups.list`, page by page (200 per page).
    pub fn groups_pages(
        &self,
        params: GroupsListParams,
    ) -> impl Stream<Item = Result<Groups, Error>> + Send + 'static {
        let this = self.clone();
        let max = params
            .max_results
            .unwrap_or(GROUPS_MAX_PAGE)
            .clamp(1, GROUPS_MAX_PAGE);
        pages(self.client.clone(), move |token| {
            let mut call = this.call(
                "directory.groups.list",
                Method::GET,
                "admin/directory/v1/groups".into(),
            );
            if params.customer.is_none() && params.domain.is_none() && params.user_key.is_none() {
                call = call.query("customer", "my_customer");
            }
            call.query_opt("customer", params.customer.clone())
                .query_opt("domain", params.domain.clone())
                .query_opt("userKey", params.user_key.clone())
                .query_opt("query", params.query.clone())
                .query("maxResults", max.to_string())
                .query_opt("pageToken", token)
        })
    }

    pub fn groups_list(
        &self,
        params: GroupsListParams,
    ) -> impl Stream<Item = Result<Group, Error>> + Send + 'static {
        items(self.groups_pages(params))
    }

    /// `members.list` of one group (200 per page).
    pub fn members_pages(
        &self,
        group_key: &str,
        include_derived_membership: bool,
        roles: Option<&str>,
    ) -> impl Stream<Item = Result<Members, Error>> + Send + 'static {
        let this = self.clone();
        let path = format!(
            "admin/directory/v1/groups/{}/members",
            encode_segment(group_key)
        );
        let roles = roles.map(str::to_string);
        pages(self.client.clone(), move |token| {
            let mut call = this
                .call("directory.members.list", Method::GET, path.clone())
                .query("maxResults", GROUPS_MAX_PAGE.to_string())
                .query_opt("roles", roles.clone())
                .query_opt("pageToken", token);
            if include_derived_membership {
                call = call.query("includeDerivedMembership", "true");
            }
            call
        })
    }

    /// `groups.insert`: a new group (`email`, `name`, `description`).
    pub async fn groups_insert(&self, group: &Group) -> Result<Group, Error> {
        let call = self
            .call(
                "directory.groups.insert",
                Method::POST,
                "admin/directory/v1/groups".into(),
            )
            .json(group)?;
        self.client.send_json(call).await
    }

    /// `members.insert`: `member_key` (a user's or group's email) joins the group as a
    /// MEMBER.
    pub async fn members_insert(&self, group_key: &str, member_key: &str) -> Result<Member, Error> {
        let body = Member {
            email: Some(member_key.to_string()),
            role: Some("MEMBER".into()),
            ..Member::default()
        };
        let call = self
            .call(
                "directory.members.insert",
                Method::POST,
                format!(
                    "admin/directory/v1/groups/{}/members",
                    encode_segment(group_key)
                ),
            )
            .json(&body)?;
        self.client.send_json(call).await
    }

    /// `members.delete`.
    pub async fn members_delete(&self, group_key: &str, member_key: &str) -> Result<(), Error> {
        let call = self.call(
            "directory.members.delete",
            Method::DELETE,
            format!(
                "admin/directory/v1/groups/{}/members/{}",
                encode_segment(group_key),
                encode_segment(member_key)
            ),
        );
        self.client.send(call).await.map(drop)
    }

    pub fn members_list(
        &self,
        group_key: &str,
        include_derived_membership: bool,
        roles: Option<&str>,
    ) -> impl Stream<Item = Result<Member, Error>> + Send + 'static {
        items(self.members_pages(group_key, include_derived_membership, roles))
    }
}

fn photo_path(user_key: &str) -> String {
    format!("{USERS}/{}/photos/thumbnail", encode_segment(user_key))
}

/// Decode a Directory `photoData` (or any base64) leniently: web-safe (`-`, `_`) or
/// standard (`+`, `/`) alphabet, padding `=`, `*` or `.` (the discovery document's
/// web-safe variant) or none, whitespace ignored.
pub fn decode_photo_data(data: &str) -> Result<Vec<u8>, Error> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let mut s: String = data
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while s.ends_with(['=', '*', '.']) {
        s.pop();
    }
    LENIENT.decode(&s).map_err(|e| Error::Decode {
        method: "directory.users.photos.get",
        message: format!("photoData is not base64 ({e})"),
    })
}

/// Web-safe base64 with `=` padding, the form Directory's `photoData` takes.
pub fn encode_photo_data(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    /// Without `nextPageToken` in `fields` Google leaves it out of the answer and a
    /// listing silently stops after one page.
    #[test]
    fn a_partial_listing_always_asks_for_the_next_page_token() {
        assert_eq!(
            with_page_token("users(id,primaryEmail)"),
            "users(id,primaryEmail),nextPageToken"
        );
        assert_eq!(
            with_page_token("nextPageToken, users(id)"),
            "nextPageToken, users(id)"
        );
        // A `nextPageToken` inside a sub-selection is not the list's.
        assert_eq!(
            with_page_token("users(id,nextPageToken)"),
            "users(id,nextPageToken),nextPageToken"
        );
    }

    #[test]
    fn photo_data_decodes_both_alphabets_and_any_padding() {
        let bytes: Vec<u8> = (0u8..=255).rev().collect();
        let web = encode_photo_data(&bytes);
        assert!(web.contains('-') || web.contains('_'));
        let std = STANDARD.encode(&bytes);
        for s in [
            web.clone(),
            std,
            web.trim_end_matches('=').to_string(),
            web.replace('=', "*"),
            web.replace('=', "."),
        ] {
            assert_eq!(decode_photo_data(&s).unwrap(), bytes, "{s}");
        }
        let e = decode_photo_data("%%%").unwrap_err();
        assert!(e.to_string().contains("photoData is not base64"), "{e}");
    }
}
