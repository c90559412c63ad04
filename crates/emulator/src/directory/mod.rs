//! Admin SDK Directory v1: users, groups, members, `users.watch` and push delivery.
//!
//! One [`DirectoryState`] behind one lock holds the whole org. Users live in a map by
//! id; a `BTreeMap` keyed by lower-cased primary email is the default `users.list`
//! order, so a page token is a key to resume after, not an offset, and a page of 500
//! out of 100,000 users costs a range scan of about 500 entries. Other orders and
//! `showDeleted` use a sorted key list cached until the next write.
//!
//! Submodules: [`users`] (users.* handlers), [`query`] (the search language),
//! [`groups`] (groups and members), [`push`] (`users.watch`, `channels.stop`, delivery),
//! [`photos`] (`users.photos.*` and the URL serving them).

pub mod groups;
pub mod photos;
pub mod push;
pub mod query;
pub mod resources;
pub mod schemas;
pub mod users;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use orgsync_wire::directory::User;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::error::{Api, ApiError};
use crate::state::Emulator;

/// Deleted users stay listable (`showDeleted`) and undeletable this long.
pub const DELETED_RETENTION_MS: i64 = 20 * 24 * 3600 * 1000;
/// Page tokens are valid this long (discovery: 3 days).
pub const PAGE_TOKEN_TTL_MS: i64 = 3 * 24 * 3600 * 1000;

/// A user as stored: the wire resource plus bookkeeping that never goes on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredUser {
    pub user: User,
    /// Bumped (from a state-wide counter) on every change; the etag derives from it.
    pub version: u64,
    /// Unix ms of deletion, for deleted users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at_ms: Option<i64>,
}

impl StoredUser {
    pub fn id(&self) -> &str {
        self.user.id.as_deref().unwrap_or("")
    }

    pub fn email(&self) -> &str {
        self.user.primary_email.as_deref().unwrap_or("")
    }
}

/// The persisted form; [`DirectoryState`] adds indexes rebuilt on load.
#[derive(Default, Deserialize)]
struct DirectoryData {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    customer_id: String,
    #[serde(default)]
    users: HashMap<String, StoredUser>,
    #[serde(default)]
    deleted: HashMap<String, StoredUser>,
    #[serde(default)]
    groups: HashMap<String, groups::GroupRec>,
    #[serde(default)]
    channels: BTreeMap<String, push::ChannelRec>,
    #[serde(default)]
    photos: HashMap<String, photos::StoredPhoto>,
    #[serde(default)]
    version_counter: u64,
    #[serde(default)]
    message_counter: u64,
    #[serde(default)]
    resources: BTreeMap<String, orgsync_wire::directory::CalendarResource>,
    #[serde(default)]
    schemas: BTreeMap<String, orgsync_wire::directory::Schema>,
}

/// Sort orders of `users.list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    Email,
    GivenName,
    FamilyName,
}

/// Sorted `(sort key, user id)` pairs.
type SortedKeys = Arc<Vec<(String, String)>>;

#[derive(Default)]
struct Index {
    /// Lower-cased primary email → id, live users. The default list order.
    by_email: BTreeMap<String, String>,
    /// Lower-cased alias → id, live users.
    alias: HashMap<String, String>,
    /// Lower-cased group email → group id.
    group_by_email: BTreeMap<String, String>,
    /// Lower-cased group alias → group id.
    group_alias: HashMap<String, String>,
    /// Bumped on every user write; invalidates `sorted`.
    generation: u64,
    /// (order, deleted?) → (generation, sorted (key, id)).
    sorted: Mutex<HashMap<(Order, bool), (u64, SortedKeys)>>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(from = "DirectoryData")]
pub struct DirectoryState {
    /// The org's (only) domain.
    pub domain: String,
    /// `C0…`-style customer id; `my_customer` is an alias for it.
    pub customer_id: String,
    users: HashMap<String, StoredUser>,
    deleted: HashMap<String, StoredUser>,
    groups: HashMap<String, groups::GroupRec>,
    channels: BTreeMap<String, push::ChannelRec>,
    /// User id → photo (`users.photos`); kept across delete/undelete like the user.
    photos: HashMap<String, photos::StoredPhoto>,
    version_counter: u64,
    message_counter: u64,
    /// Calendar resources (rooms) by `resourceId` (`resources.calendars`).
    pub(crate) resources: BTreeMap<String, orgsync_wire::directory::CalendarResource>,
    /// Custom schemas by `schemaName` (`schemas`).
    pub(crate) schemas: BTreeMap<String, orgsync_wire::directory::Schema>,
    #[serde(skip)]
    idx: Index,
}

impl From<DirectoryData> for DirectoryState {
    fn from(d: DirectoryData) -> Self {
        let mut s = DirectoryState {
            domain: d.domain,
            customer_id: d.customer_id,
            users: d.users,
            deleted: d.deleted,
            groups: d.groups,
            channels: d.channels,
            photos: d.photos,
            version_counter: d.version_counter,
            message_counter: d.message_counter,
            resources: d.resources,
            schemas: d.schemas,
            idx: Index::default(),
        };
        s.rebuild_index();
        s
    }
}

/// What the token endpoint and the other APIs need to know about a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectInfo {
    pub id: String,
    pub primary_email: String,
    pub is_admin: bool,
    pub suspended: bool,
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

impl DirectoryState {
    /// An empty org for `domain`.
    pub fn new(domain: &str, customer_id: &str) -> Self {
        DirectoryState {
            domain: domain.to_string(),
            customer_id: customer_id.to_string(),
            ..Default::default()
        }
    }

    fn rebuild_index(&mut self) {
        let mut idx = Index::default();
        for (id, u) in &self.users {
            idx.by_email.insert(lower(u.email()), id.clone());
            for a in u.user.aliases.iter().flatten() {
                idx.alias.insert(lower(a), id.clone());
            }
        }
        for (id, g) in &self.groups {
            idx.group_by_email.insert(lower(&g.group.email), id.clone());
            for a in g.group.aliases.iter().flatten() {
                idx.group_alias.insert(lower(a), id.clone());
            }
        }
        idx.generation = self.idx.generation + 1;
        self.idx = idx;
    }

    /// The live (not deleted) user with this primary email or alias, case-insensitive.
    pub fn find_subject(&self, email: &str) -> Option<SubjectInfo> {
        let id = self.id_by_email(email)?;
        let u = &self.users.get(id)?.user;
        Some(SubjectInfo {
            id: id.to_string(),
            primary_email: u.primary_email.clone().unwrap_or_default(),
            is_admin: u.is_admin.unwrap_or(false) || u.is_delegated_admin.unwrap_or(false),
            suspended: u.suspended.unwrap_or(false),
        })
    }

    /// Number of live users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// A live user by id (for other APIs, e.g. People's directory sources).
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.get(id).map(|u| &u.user)
    }

    /// Every live user, in primary-email order.
    pub fn users_sorted(&self) -> impl Iterator<Item = &User> {
        self.idx
            .by_email
            .values()
            .filter_map(|id| self.users.get(id).map(|u| &u.user))
    }

    fn id_by_email(&self, email: &str) -> Option<&str> {
        let key = lower(email);
        self.idx
            .by_email
            .get(&key)
            .or_else(|| self.idx.alias.get(&key))
            .map(String::as_str)
    }

    /// A live user by primary email, alias or id.
    pub(crate) fn resolve_user(&self, key: &str) -> Option<&StoredUser> {
        if let Some(u) = self.users.get(key) {
            return Some(u);
        }
        self.id_by_email(key).and_then(|id| self.users.get(id))
    }

    /// Is `email` (lower-cased) taken by any live user or group, as primary or alias?
    pub(crate) fn email_taken(&self, email: &str) -> bool {
        let key = lower(email);
        self.idx.by_email.contains_key(&key)
            || self.idx.alias.contains_key(&key)
            || self.idx.group_by_email.contains_key(&key)
            || self.idx.group_alias.contains_key(&key)
    }

    pub(crate) fn next_version(&mut self) -> u64 {
        self.version_counter += 1;
        self.version_counter
    }

    /// Insert or replace a live user, keeping indexes in step.
    pub(crate) fn put_user(&mut self, mut su: StoredUser) {
        let id = su.id().to_string();
        if let Some(old) = self.users.remove(&id) {
            self.unindex(&old);
        }
        su.version = self.next_version();
        self.idx.by_email.insert(lower(su.email()), id.clone());
        for a in su.user.aliases.iter().flatten() {
            self.idx.alias.insert(lower(a), id.clone());
        }
        self.users.insert(id, su);
        self.idx.generation += 1;
    }

    fn unindex(&mut self, su: &StoredUser) {
        self.idx.by_email.remove(&lower(su.email()));
        for a in su.user.aliases.iter().flatten() {
            self.idx.alias.remove(&lower(a));
        }
    }

    /// Remove a live user (returns it).
    pub(crate) fn take_user(&mut self, id: &str) -> Option<StoredUser> {
        let su = self.users.remove(id)?;
        self.unindex(&su);
        self.idx.generation += 1;
        Some(su)
    }

    /// Deleted users within the retention window.
    pub(crate) fn deleted_user(&self, id: &str, now_ms: i64) -> Option<&StoredUser> {
        self.deleted
            .get(id)
            .filter(|u| u.deleted_at_ms.unwrap_or(0) + DELETED_RETENTION_MS > now_ms)
    }

    pub(crate) fn purge_deleted(&mut self, now_ms: i64) {
        let before = self.deleted.len();
        self.deleted
            .retain(|_, u| u.deleted_at_ms.unwrap_or(0) + DELETED_RETENTION_MS > now_ms);
        if self.deleted.len() != before {
            self.idx.generation += 1;
        }
    }

    /// The etag of a user: strong, opaque, changes with every write.
    pub(crate) fn user_etag(&self, su: &StoredUser) -> String {
        etag(
            &self.customer_id,
            &format!("user:{}:{}", su.id(), su.version),
        )
    }

    /// Sort key of a user for `order`; unique among live users (the email breaks ties)
    /// and, with the id appended, among deleted ones.
    pub(crate) fn sort_key(su: &StoredUser, order: Order, deleted: bool) -> String {
        let email = lower(su.email());
        let name = su.user.name.as_ref();
        let mut key = match order {
            Order::Email => email,
            Order::GivenName => format!(
                "{}\u{1}{email}",
                lower(name.and_then(|n| n.given_name.as_deref()).unwrap_or(""))
            ),
            Order::FamilyName => format!(
                "{}\u{1}{email}",
                lower(name.and_then(|n| n.family_name.as_deref()).unwrap_or(""))
            ),
        };
        if deleted {
            key.push('\u{1}');
            key.push_str(su.id());
        }
        key
    }

    /// Sorted (key, id) of live or deleted users for `order`, cached per generation.
    fn sorted(&self, order: Order, deleted: bool) -> SortedKeys {
        let mut cache = self.idx.sorted.lock();
        if let Some((generation, v)) = cache.get(&(order, deleted))
            && *generation == self.idx.generation
        {
            return v.clone();
        }
        let source = if deleted { &self.deleted } else { &self.users };
        let mut v: Vec<(String, String)> = source
            .values()
            .map(|u| (Self::sort_key(u, order, deleted), u.id().to_string()))
            .collect();
        v.sort_unstable();
        let v = Arc::new(v);
        cache.insert((order, deleted), (self.idx.generation, v.clone()));
        v
    }

    /// Walk users in `order` starting strictly after `after` (by sort key), calling
    /// `visit` until it returns false. Live users in email order use the index
    /// directly; everything else uses the cached sorted list.
    pub(crate) fn walk_users<'a>(
        &'a self,
        order: Order,
        descending: bool,
        deleted: bool,
        after: Option<&str>,
        mut visit: impl FnMut(&str, &'a StoredUser) -> bool,
    ) {
        use std::ops::Bound::{Excluded, Unbounded};
        if order == Order::Email && !deleted {
            let bounds = match (after, descending) {
                (None, _) => (Unbounded, Unbounded),
                (Some(a), false) => (Excluded(a.to_string()), Unbounded),
                (Some(a), true) => (Unbounded, Excluded(a.to_string())),
            };
            let range = self.idx.by_email.range::<String, _>(bounds);
            let iter: Box<dyn Iterator<Item = (&String, &String)>> = if descending {
                Box::new(range.rev())
            } else {
                Box::new(range)
            };
            for (key, id) in iter {
                if let Some(u) = self.users.get(id)
                    && !visit(key, u)
                {
                    return;
                }
            }
            return;
        }
        let sorted = self.sorted(order, deleted);
        let source = if deleted { &self.deleted } else { &self.users };
        let iter: Box<dyn Iterator<Item = &(String, String)>> = match (after, descending) {
            (None, false) => Box::new(sorted.iter()),
            (None, true) => Box::new(sorted.iter().rev()),
            (Some(a), false) => {
                let at = sorted.partition_point(|(k, _)| k.as_str() <= a);
                Box::new(sorted[at..].iter())
            }
            (Some(a), true) => {
                let at = sorted.partition_point(|(k, _)| k.as_str() < a);
                Box::new(sorted[..at].iter().rev())
            }
        };
        for (key, id) in iter {
            if let Some(u) = source.get(id)
                && !visit(key, u)
            {
                return;
            }
        }
    }
}

/// A Google-style strong etag: the JSON string value carries its own quotes,
/// `"\"<27 chars>/<27 chars>\""`.
pub(crate) fn etag(customer: &str, what: &str) -> String {
    let a = URL_SAFE_NO_PAD.encode(Sha256::digest(customer.as_bytes()));
    let b = URL_SAFE_NO_PAD.encode(Sha256::digest(what.as_bytes()));
    format!("\"{}/{}\"", &a[..27], &b[..27])
}

/// An opaque page token: the key to resume after plus a fingerprint of the request
/// parameters that define the sequence, so a token replayed against another query is
/// rejected instead of silently skipping users.
pub(crate) mod page_token {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Token {
        f: String,
        k: String,
        t: i64,
    }

    pub fn fingerprint(parts: &[&str]) -> String {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p.as_bytes());
            h.update([0u8]);
        }
        hex::encode(&h.finalize()[..8])
    }

    pub fn encode(fingerprint: &str, key: &str, now_ms: i64) -> String {
        let t = Token {
            f: fingerprint.to_string(),
            k: key.to_string(),
            t: now_ms,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&t).unwrap_or_default())
    }

    /// The key to resume after, or 400 for garbage, a foreign query or an old token.
    pub fn decode(token: &str, fingerprint: &str, now_ms: i64) -> Result<String, ApiError> {
        let bad = || {
            ApiError::bad_request(Api::Directory, "Invalid page token")
                .with_location("parameter", "pageToken")
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| bad())?;
        let t: Token = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if t.f != fingerprint || now_ms - t.t > PAGE_TOKEN_TTL_MS {
            return Err(bad());
        }
        Ok(t.k)
    }
}

pub(crate) const NOT_AUTHORIZED: &str = "Not Authorized to access this resource/api";

/// A `customer/{customer}/…` path names this org: `my_customer` or its id; any other
/// customer is someone else's (403, as Google answers).
pub(crate) fn check_path_customer(state: &DirectoryState, customer: &str) -> Result<(), ApiError> {
    if customer == "my_customer" || customer == state.customer_id {
        Ok(())
    } else {
        Err(ApiError::new(
            Api::Directory,
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            NOT_AUTHORIZED,
        ))
    }
}

/// Check scopes (403 insufficientPermissions), then that the subject is a live,
/// unsuspended admin or delegated admin (403 forbidden) unless `admin` is false, in
/// which case any live user of the org is enough.
pub(crate) fn authorize(
    emu: &Emulator,
    caller: &Caller,
    scopes: &[&str],
    admin: bool,
) -> Result<(), ApiError> {
    caller.require_any_scope(scopes)?;
    let forbidden = || ApiError::forbidden(Api::Directory, NOT_AUTHORIZED);
    let subject = caller.subject.as_deref().ok_or_else(forbidden)?;
    let info = emu
        .directory
        .read()
        .find_subject(subject)
        .ok_or_else(forbidden)?;
    if info.suspended || (admin && !info.is_admin) {
        return Err(forbidden());
    }
    Ok(())
}

/// `customer`/`domain` of a list call: one is required; `my_customer` or the
/// customer id; the domain must be the org's.
pub(crate) fn check_customer(
    state: &DirectoryState,
    params: &crate::query::Params,
) -> Result<(), ApiError> {
    match (
        params.get_nonempty("customer"),
        params.get_nonempty("domain"),
    ) {
        (None, None) => Err(ApiError::new(
            Api::Directory,
            axum::http::StatusCode::BAD_REQUEST,
            "badRequest",
            "Bad Request",
        )),
        (Some(c), _) if c != "my_customer" && c != state.customer_id => {
            Err(ApiError::bad_request(Api::Directory, "Bad Request")
                .with_location("parameter", "customer"))
        }
        (_, Some(d)) if !d.eq_ignore_ascii_case(&state.domain) => {
            Err(ApiError::forbidden(Api::Directory, NOT_AUTHORIZED))
        }
        _ => Ok(()),
    }
}

/// Fill the directory with the generated demo org (`config.users`, `config.seed`,
/// `config.domain`), including the admin `admin@{domain}`, and give
/// `config.photo_share` of the users a photo. Called by [`crate::persist::bootstrap`]
/// when no saved state is loaded.
pub fn seed(emu: &Emulator) {
    let mut org = crate::generate::generate(&emu.config, emu.clock.now_ms());
    photos::seed_photos(
        &mut org,
        emu.config.photo_share,
        emu.config.seed,
        &emu.base_url(),
    );
    *emu.directory.write() = org;
}

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route(
            "/admin/directory/v1/users",
            get(users::list).post(users::insert),
        )
        .route("/admin/directory/v1/users/watch", post(push::watch))
        .route(
            "/admin/directory/v1/users/{userKey}",
            get(users::get)
                .put(users::update)
                .patch(users::update)
                .delete(users::delete),
        )
        .route(
            "/admin/directory/v1/users/{userKey}/undelete",
            post(users::undelete),
        )
        .route(
            "/admin/directory/v1/users/{userKey}/makeAdmin",
            post(users::make_admin),
        )
        .route(
            "/admin/directory/v1/users/{userKey}/photos/thumbnail",
            get(photos::get)
                .put(photos::update)
                .patch(photos::patch)
                .delete(photos::delete),
        )
        .route("/photos/ao/{token}", get(photos::serve))
        .route(
            "/admin/directory/v1/groups",
            get(groups::list).post(groups::insert),
        )
        .route("/admin/directory/v1/groups/{groupKey}", get(groups::get))
        .route(
            "/admin/directory/v1/groups/{groupKey}/members",
            get(groups::members_list).post(groups::members_insert),
        )
        .route(
            "/admin/directory/v1/customer/{customer}/resources/calendars",
            get(resources::list).post(resources::insert),
        )
        .route(
            "/admin/directory/v1/customer/{customer}/resources/calendars/{calendarResourceId}",
            get(resources::get).delete(resources::delete),
        )
        .route(
            "/admin/directory/v1/customer/{customer}/schemas",
            get(schemas::list).post(schemas::insert),
        )
        .route(
            "/admin/directory/v1/customer/{customer}/schemas/{schemaKey}",
            get(schemas::get).delete(schemas::delete),
        )
        .route(
            "/admin/directory/v1/groups/{groupKey}/members/{memberKey}",
            axum::routing::delete(groups::members_delete),
        )
        .route(
            "/admin/directory/v1/groups/{groupKey}/hasMember/{memberKey}",
            get(groups::has_member),
        )
        .route("/admin/directory_v1/channels/stop", post(push::stop))
        .route("/admin/directory/v1/channels/stop", post(push::stop))
}
