//! `users.*`: list (search, orders, projections, paging), get, insert, update/patch
//! (patch semantics, rename keeps an alias), delete/undelete (20-day window) and
//! makeAdmin. Every change is announced to `users.watch` channels via [`super::push`].
//!
//! Choices where Google's documentation is silent or unconfirmed:
//! - `maxResults` above 500 is clamped to 500 rather than rejected: a client asking
//!   for more still gets correct, complete paging, and one asking for ≤ 500 sees no
//!   difference. Below 1 or non-numeric is 400.
//! - `If-Match` on update/patch is enforced when sent (`*` always passes): 412
//!   `conditionNotMet` with Google's generic body. Absent `If-Match`, writes are
//!   unconditional, as Google's are.
//! - Empty successes (delete, undelete, makeAdmin) answer 204 with no body.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use orgsync_wire::directory::{
    KIND_USER, KIND_USERS, USERS_MAX_PAGE, User, UserEmail, UserMakeAdmin, UserUndelete, Users,
};
use orgsync_wire::scopes;
use rand::Rng;
use serde_json::{Map, Value};

use super::query::{self, Field};
use super::{DirectoryState, Order, StoredUser, authorize, check_customer, etag, page_token, push};
use crate::auth::Caller;
use crate::error::json::GJson;
use crate::error::{Api, ApiError};
use crate::query::Params;
use crate::state::Emulator;

const READ_SCOPES: &[&str] = &[
    scopes::DIRECTORY_USER,
    scopes::DIRECTORY_USER_READONLY,
    scopes::CLOUD_PLATFORM,
];
const GET_SCOPES: &[&str] = &[scopes::DIRECTORY_USER, scopes::DIRECTORY_USER_READONLY];
const WRITE_SCOPES: &[&str] = &[scopes::DIRECTORY_USER];

/// Fields a client may send but the server owns; ignored on insert and update.
const READ_ONLY: &[&str] = &[
    "kind",
    "id",
    "etag",
    "isAdmin",
    "isDelegatedAdmin",
    "customerId",
    "creationTime",
    "deletionTime",
    "lastLoginTime",
    "aliases",
    "nonEditableAliases",
    "agreedToTerms",
    "isMailboxSetup",
    "isEnrolledIn2Sv",
    "isEnforcedIn2Sv",
    "suspensionReason",
    "thumbnailPhotoUrl",
    "thumbnailPhotoEtag",
    "password",
    "hashFunction",
];

/// Fields visible with `viewType=domain_public`.
const PUBLIC_EXTRA: &[&str] = &["addresses", "websites", "locations", "relations"];

pub(crate) fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn invalid(message: &str) -> ApiError {
    ApiError::bad_request(Api::Directory, message)
}

fn not_found_user() -> ApiError {
    ApiError::not_found(Api::Directory, "Resource Not Found: userKey")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Projection {
    Basic,
    Custom,
    Full,
}

/// How to render users for one request.
pub(crate) struct View {
    projection: Projection,
    mask: Vec<String>,
    public: bool,
}

impl View {
    pub(crate) fn full() -> Self {
        View {
            projection: Projection::Full,
            mask: vec![],
            public: false,
        }
    }

    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let projection = match params.one_of("projection", &["basic", "custom", "full"])? {
            Some("custom") => Projection::Custom,
            Some("full") => Projection::Full,
            _ => Projection::Basic,
        };
        let mask = params.all("customFieldMask");
        if projection == Projection::Custom && mask.is_empty() {
            return Err(ApiError::required(Api::Directory, "customFieldMask")
                .with_location("parameter", "customFieldMask"));
        }
        let public =
            params.one_of("viewType", &["admin_view", "domain_public"])? == Some("domain_public");
        Ok(View {
            projection,
            mask,
            public,
        })
    }
}

/// The wire form of a stored user for `view`.
pub(crate) fn render(state: &DirectoryState, su: &StoredUser, view: &View) -> User {
    let mut u = su.user.clone();
    u.kind = Some(KIND_USER.into());
    u.etag = Some(state.user_etag(su));
    u.customer_id = Some(state.customer_id.clone());
    u.password = None;
    u.hash_function = None;
    match view.projection {
        Projection::Basic => u.custom_schemas = None,
        Projection::Custom => {
            if let Some(cs) = u.custom_schemas.as_mut() {
                cs.retain(|k, _| view.mask.iter().any(|m| m.eq_ignore_ascii_case(k)));
            }
        }
        Projection::Full => {}
    }
    if view.public {
        let extra: Map<String, Value> = u
            .extra
            .iter()
            .filter(|(k, _)| PUBLIC_EXTRA.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        return User {
            kind: u.kind,
            id: u.id,
            etag: u.etag,
            primary_email: u.primary_email,
            name: u.name,
            emails: u.emails,
            phones: u.phones,
            organizations: u.organizations,
            thumbnail_photo_url: u.thumbnail_photo_url,
            thumbnail_photo_etag: u.thumbnail_photo_etag,
            extra,
            ..Default::default()
        };
    }
    u
}

/// `GET admin/directory/v1/users`
pub async fn list(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    params: Params,
) -> Result<Json<Users>, ApiError> {
    let view = View::from_params(&params)?;
    authorize(&emu, &caller, READ_SCOPES, !view.public)?;
    let max = params.int_in("maxResults", 100, 1, i64::from(i32::MAX))?;
    let max = max.min(i64::from(USERS_MAX_PAGE)) as usize;
    let order = match params.one_of("orderBy", &["email", "familyName", "givenName"])? {
        Some("familyName") => Order::FamilyName,
        Some("givenName") => Order::GivenName,
        _ => Order::Email,
    };
    let descending =
        params.one_of("sortOrder", &["ASCENDING", "DESCENDING"])? == Some("DESCENDING");
    let show_deleted = params.bool("showDeleted")?.unwrap_or(false);
    let query_text = params.get("query").unwrap_or("");
    let clauses = query::parse(query_text)
        .map_err(|_| invalid("Invalid Input").with_location("parameter", "query"))?;
    let now = emu.clock.now_ms();
    let state = emu.directory.read();
    check_customer(&state, &params)?;
    // managerId values resolve to the manager's email once, not per user.
    let resolved: Vec<Option<String>> = clauses
        .iter()
        .map(|c| match c.field {
            Field::ManagerId => state.resolve_user(&c.value).map(|u| u.email().to_string()),
            _ => None,
        })
        .collect();
    let fp = page_token::fingerprint(&[
        params.get("customer").unwrap_or(""),
        params.get("domain").unwrap_or(""),
        query_text,
        &format!("{order:?}/{descending}/{show_deleted}/{}", view.public),
    ]);
    let after = match params.get_nonempty("pageToken") {
        Some(t) => Some(page_token::decode(t, &fp, now)?),
        None => None,
    };
    let mut page: Vec<(String, &StoredUser)> = Vec::with_capacity(max + 1);
    state.walk_users(
        order,
        descending,
        show_deleted,
        after.as_deref(),
        |key, su| {
            if show_deleted && su.deleted_at_ms.unwrap_or(0) + super::DELETED_RETENTION_MS <= now {
                return true;
            }
            if view.public && !su.user.in_global_address_list() {
                return true;
            }
            let ok = clauses
                .iter()
                .zip(&resolved)
                .all(|(c, r)| query::matches(c, &su.user, r.as_deref()));
            if ok {
                page.push((key.to_string(), su));
            }
            page.len() <= max
        },
    );
    let next_page_token = if page.len() > max {
        page.truncate(max);
        page.last().map(|(k, _)| page_token::encode(&fp, k, now))
    } else {
        None
    };
    let users: Vec<User> = page
        .iter()
        .map(|(_, su)| render(&state, su, &view))
        .collect();
    let list_etag = etag(
        &state.customer_id,
        &page
            .iter()
            .map(|(_, su)| format!("{}:{}", su.id(), su.version))
            .collect::<Vec<_>>()
            .join(","),
    );
    Ok(Json(Users {
        kind: Some(KIND_USERS.into()),
        etag: Some(list_etag),
        users,
        next_page_token,
        trigger_event: None,
    }))
}

/// `GET admin/directory/v1/users/{userKey}`
pub async fn get(
    State(emu): State<Arc<Emulator>>,
    Path(user_key): Path<String>,
    caller: Caller,
    params: Params,
) -> Result<Json<User>, ApiError> {
    let view = View::from_params(&params)?;
    authorize(&emu, &caller, GET_SCOPES, !view.public)?;
    let state = emu.directory.read();
    let su = state.resolve_user(&user_key).ok_or_else(not_found_user)?;
    if view.public && !su.user.in_global_address_list() {
        return Err(not_found_user());
    }
    Ok(Json(render(&state, su, &view)))
}

fn valid_email_syntax(email: &str) -> bool {
    let mut parts = email.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && domain.contains('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        _ => false,
    }
}

/// Primary email checks shared by insert and rename.
fn check_primary_email(state: &DirectoryState, email: &str) -> Result<(), ApiError> {
    if !valid_email_syntax(email) {
        return Err(invalid("Invalid Input: primary_user_email"));
    }
    let domain = email.rsplit('@').next().unwrap_or("");
    if !domain.eq_ignore_ascii_case(&state.domain) {
        return Err(invalid("Domain not found."));
    }
    Ok(())
}

fn check_names(u: &User) -> Result<(), ApiError> {
    let name = u.name.as_ref();
    for (value, which) in [
        (name.and_then(|n| n.given_name.as_deref()), "GivenName"),
        (name.and_then(|n| n.family_name.as_deref()), "FamilyName"),
    ] {
        match value {
            Some(v) if !v.trim().is_empty() && v.chars().count() <= 60 => {}
            _ => return Err(invalid(&format!("Invalid Given/Family Name: {which}"))),
        }
    }
    Ok(())
}

/// Password rules: 8–100 ASCII characters in clear, or any hash with a known
/// `hashFunction`.
fn check_password(body: &Map<String, Value>, required: bool) -> Result<(), ApiError> {
    let password = match body.get("password") {
        None | Some(Value::Null) if !required => return Ok(()),
        Some(Value::String(p)) => p,
        _ => return Err(invalid("Invalid Password")),
    };
    match body.get("hashFunction").and_then(Value::as_str) {
        Some(h) => {
            if !["MD5", "SHA-1", "crypt"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(h))
            {
                return Err(invalid("Invalid Input: hashFunction"));
            }
            if password.is_empty() {
                return Err(invalid("Invalid Password"));
            }
        }
        None => {
            let n = password.chars().count();
            if !(8..=100).contains(&n) || !password.is_ascii() {
                return Err(invalid("Invalid Password"));
            }
        }
    }
    Ok(())
}

fn body_object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(invalid(
            "Invalid JSON payload received. Expected an object.",
        )),
    }
}

fn to_user(map: Map<String, Value>) -> Result<User, ApiError> {
    serde_json::from_value(Value::Object(map))
        .map_err(|e| invalid(&format!("Invalid JSON payload received. {e}")))
}

/// Server-computed fields after any write.
fn normalise(u: &mut User) {
    if let Some(n) = u.name.as_mut() {
        n.full_name = Some(format!(
            "{} {}",
            n.given_name.as_deref().unwrap_or(""),
            n.family_name.as_deref().unwrap_or("")
        ));
    }
    u.suspension_reason = u.suspended.unwrap_or(false).then(|| "ADMIN".to_string());
    if u.org_unit_path.as_deref().is_none_or(str::is_empty) {
        u.org_unit_path = Some("/".into());
    }
    let primary = u.primary_email.clone().unwrap_or_default();
    let mut emails: Vec<UserEmail> = u
        .emails
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !e.address.eq_ignore_ascii_case(&primary) && e.primary != Some(true))
        .collect();
    emails.insert(
        0,
        UserEmail {
            address: primary,
            primary: Some(true),
            ..Default::default()
        },
    );
    u.emails = Some(emails);
}

/// A fresh 21-digit numeric id, unused in this org.
pub(crate) fn new_user_id(state: &DirectoryState, rng: &mut impl Rng) -> String {
    loop {
        let n: u128 = rng.random_range(0..100_000_000_000_000_000_000u128);
        let id = format!("1{n:020}");
        if !state.users.contains_key(&id) && !state.deleted.contains_key(&id) {
            return id;
        }
    }
}

fn duplicate() -> ApiError {
    ApiError::new(
        Api::Directory,
        StatusCode::CONFLICT,
        "duplicate",
        "Entity already exists.",
    )
}

/// `POST admin/directory/v1/users`
pub async fn insert(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    GJson(body): GJson<Value>,
) -> Result<Json<User>, ApiError> {
    authorize(&emu, &caller, WRITE_SCOPES, true)?;
    let mut body = body_object(body)?;
    check_password(&body, true)?;
    for k in READ_ONLY {
        body.remove(*k);
    }
    body.retain(|_, v| !v.is_null());
    let mut user = to_user(body)?;
    let email = user
        .primary_email
        .clone()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| invalid("Invalid Input: primary_user_email"))?;
    check_names(&user)?;
    if let Some(ou) = user.org_unit_path.as_deref()
        && !ou.is_empty()
        && !ou.starts_with('/')
    {
        return Err(invalid("Invalid Input: INVALID_OU_ID"));
    }
    let now = emu.clock.now_ms();
    let (rendered, id) = {
        let mut state = emu.directory.write();
        check_primary_email(&state, &email)?;
        if state.email_taken(&email) {
            return Err(duplicate());
        }
        let id = new_user_id(&state, &mut rand::rng());
        user.id = Some(id.clone());
        user.creation_time = Some(rfc3339(now));
        user.is_admin = Some(false);
        user.is_delegated_admin = Some(false);
        user.suspended.get_or_insert(false);
        user.archived.get_or_insert(false);
        user.include_in_global_address_list.get_or_insert(true);
        user.extra
            .insert("isMailboxSetup".into(), Value::Bool(true));
        user.extra
            .insert("agreedToTerms".into(), Value::Bool(false));
        user.extra
            .insert("isEnrolledIn2Sv".into(), Value::Bool(false));
        user.extra
            .insert("isEnforcedIn2Sv".into(), Value::Bool(false));
        user.extra
            .entry("changePasswordAtNextLogin")
            .or_insert(Value::Bool(false));
        normalise(&mut user);
        state.put_user(StoredUser {
            user,
            version: 0,
            deleted_at_ms: None,
        });
        let su = state.users.get(&id).expect("just inserted");
        (render(&state, su, &View::full()), id)
    };
    push::notify(&emu, "add", &id);
    Ok(Json(rendered))
}

/// Merge `patch` into `base` with Google's patch semantics: absent keys kept, `null`
/// clears, objects merge recursively, arrays and scalars are replaced whole.
fn merge(base: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                base.remove(&k);
            }
            Value::Object(inner) => match base.get_mut(&k) {
                Some(Value::Object(existing)) => merge(existing, inner),
                _ => {
                    let mut fresh = Map::new();
                    merge(&mut fresh, inner);
                    base.insert(k, Value::Object(fresh));
                }
            },
            other => {
                base.insert(k, other);
            }
        }
    }
}

fn check_if_match(headers: &HeaderMap, current: &str) -> Result<(), ApiError> {
    let Some(want) = headers
        .get(axum::http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let want = want.trim();
    if want == "*" || want == current || want.trim_start_matches("W/") == current {
        return Ok(());
    }
    Err(ApiError::new(
        Api::Directory,
        StatusCode::PRECONDITION_FAILED,
        "conditionNotMet",
        "Precondition Failed",
    )
    .with_location("header", "If-Match"))
}

/// `PUT` and `PATCH admin/directory/v1/users/{userKey}`
pub async fn update(
    State(emu): State<Arc<Emulator>>,
    Path(user_key): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    GJson(body): GJson<Value>,
) -> Result<Json<User>, ApiError> {
    authorize(&emu, &caller, WRITE_SCOPES, true)?;
    let mut body = body_object(body)?;
    if body.contains_key("password") {
        check_password(&body, false)?;
    }
    for k in READ_ONLY {
        body.remove(*k);
    }
    if let Some(Value::Object(name)) = body.get_mut("name") {
        name.remove("fullName");
    }
    let mut renamed: Option<(String, String)> = None;
    let (rendered, id) = {
        let mut state = emu.directory.write();
        let current = state.resolve_user(&user_key).ok_or_else(not_found_user)?;
        check_if_match(&headers, &state.user_etag(current))?;
        let current = current.clone();
        let Value::Object(mut merged) =
            serde_json::to_value(&current.user).map_err(|e| invalid(&e.to_string()))?
        else {
            return Err(invalid("Invalid Input"));
        };
        merge(&mut merged, body);
        let mut user = to_user(merged)?;
        // Server-owned fields come from the stored user, whatever the body said.
        user.id = current.user.id.clone();
        user.is_admin = current.user.is_admin;
        user.is_delegated_admin = current.user.is_delegated_admin;
        user.creation_time = current.user.creation_time.clone();
        user.aliases = current.user.aliases.clone();
        check_names(&user)?;
        let new_email = user
            .primary_email
            .clone()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| invalid("Invalid Input: primary_user_email"))?;
        let old_email = current.email().to_string();
        if new_email != old_email {
            check_primary_email(&state, &new_email)?;
            let own = state
                .resolve_user(&new_email)
                .is_some_and(|u| u.id() == current.id());
            if !own && state.email_taken(&new_email) {
                return Err(duplicate());
            }
            if !new_email.eq_ignore_ascii_case(&old_email) {
                // Rename: the old address stays as an alias (Google's manage-users guide,
                // https://developers.google.com/workspace/admin/directory/v1/guides/manage-users).
                let mut aliases: Vec<String> = user
                    .aliases
                    .take()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| !a.eq_ignore_ascii_case(&new_email))
                    .collect();
                aliases.push(old_email.clone());
                user.aliases = Some(aliases);
                renamed = Some((old_email, new_email.clone()));
            }
        }
        normalise(&mut user);
        let id = current.id().to_string();
        state.put_user(StoredUser {
            user,
            version: 0,
            deleted_at_ms: None,
        });
        let su = state.users.get(&id).expect("just stored");
        (render(&state, su, &View::full()), id)
    };
    if let Some((old, new)) = renamed {
        // The account keeps its data across a rename: so does its address book.
        emu.people.rename_book(&old, &new);
    }
    push::notify(&emu, "update", &id);
    Ok(Json(rendered))
}

/// `DELETE admin/directory/v1/users/{userKey}`
pub async fn delete(
    State(emu): State<Arc<Emulator>>,
    Path(user_key): Path<String>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    authorize(&emu, &caller, WRITE_SCOPES, true)?;
    let now = emu.clock.now_ms();
    let id = {
        let mut state = emu.directory.write();
        state.purge_deleted(now);
        let id = state
            .resolve_user(&user_key)
            .ok_or_else(not_found_user)?
            .id()
            .to_string();
        let mut su = state.take_user(&id).expect("resolved above");
        su.deleted_at_ms = Some(now);
        su.user.deletion_time = Some(rfc3339(now));
        su.version = state.next_version();
        state.deleted.insert(id.clone(), su);
        id
    };
    push::notify(&emu, "delete", &id);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST admin/directory/v1/users/{userKey}/undelete` (by id only)
pub async fn undelete(
    State(emu): State<Arc<Emulator>>,
    Path(user_key): Path<String>,
    caller: Caller,
    GJson(body): GJson<UserUndelete>,
) -> Result<StatusCode, ApiError> {
    authorize(&emu, &caller, WRITE_SCOPES, true)?;
    let now = emu.clock.now_ms();
    {
        let mut state = emu.directory.write();
        state.purge_deleted(now);
        let mut su = state
            .deleted_user(&user_key, now)
            .cloned()
            .ok_or_else(not_found_user)?;
        if state.email_taken(su.email()) {
            return Err(duplicate());
        }
        if let Some(ou) = body.org_unit_path.filter(|o| !o.is_empty()) {
            if !ou.starts_with('/') {
                return Err(invalid("Invalid Input: INVALID_OU_ID"));
            }
            su.user.org_unit_path = Some(ou);
        }
        // Aliases someone else took meanwhile are dropped.
        let aliases: Vec<String> = su
            .user
            .aliases
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !state.email_taken(a))
            .collect();
        su.user.aliases = (!aliases.is_empty()).then_some(aliases);
        su.user.deletion_time = None;
        su.deleted_at_ms = None;
        state.deleted.remove(&user_key);
        state.put_user(su);
    }
    push::notify(&emu, "undelete", &user_key);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST admin/directory/v1/users/{userKey}/makeAdmin`
pub async fn make_admin(
    State(emu): State<Arc<Emulator>>,
    Path(user_key): Path<String>,
    caller: Caller,
    GJson(body): GJson<UserMakeAdmin>,
) -> Result<StatusCode, ApiError> {
    authorize(&emu, &caller, WRITE_SCOPES, true)?;
    let id = {
        let mut state = emu.directory.write();
        let mut su = state
            .resolve_user(&user_key)
            .ok_or_else(not_found_user)?
            .clone();
        su.user.is_admin = Some(body.status);
        let id = su.id().to_string();
        state.put_user(su);
        id
    };
    push::notify(&emu, "makeAdmin", &id);
    Ok(StatusCode::NO_CONTENT)
}
