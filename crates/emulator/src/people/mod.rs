//! People v1: per-user contacts, contact groups, batch mutations and sync tokens.
//!
//! Each impersonated user has an address book ([`book::UserBook`]) behind its own mutex,
//! so syncing one user never waits on another. Contacts carry a per-user, monotonically
//! increasing change sequence; deletions leave tombstones with the sequence at which they
//! happened. That is all `syncToken` needs: a token records the sequence it was issued at
//! (plus when the full sync that started its chain happened), and an incremental list is
//! a range scan over the sequence index.
//!
//! Choices where Google's behaviour is undocumented or uncertain (the documented rules are
//! on <https://developers.google.com/people/api/rest/v1/people>; the rest is listed in
//! `docs/ARCHITECTURE.md`):
//! - **Concurrent mutations for one user** ("Mutate requests for the same user should be
//!   sent sequentially to avoid increased latency and failures"): a mutation that arrives
//!   while another one for the same user is in flight is always answered **409 ABORTED
//!   "The operation was aborted."**, so a client that does not serialise per user fails
//!   deterministically. Each mutation holds its in-flight marker for at least
//!   [`PeopleState::mutation_hold`] (default 10 ms, like a real backend's write latency)
//!   so that overlapping requests really overlap.
//! - **Contact cap** (25,000, widely cited): creating past it answers 400
//!   FAILED_PRECONDITION "Contact limit exceeded." Settable for tests.
//! - **`batchDeleteContacts` with an unknown or already deleted name**: the whole batch is
//!   rejected with 400 INVALID_ARGUMENT and nothing is deleted.
//! - **Expired sync token**: 400 INVALID_ARGUMENT with `ErrorInfo.reason`
//!   `EXPIRED_SYNC_TOKEN`, the shape of the captured real response.
//! - `requestSyncToken`/`syncToken` with `LAST_MODIFIED_DESCENDING` answers 400 (a
//!   third-party report; Google does not document it).
//! - Deleting a label without `deleteContacts` puts contacts that would be left with no
//!   membership into `myContacts` (a contact always keeps one membership).
//! - Contact photos (`updateContactPhoto`, `deleteContactPhoto`, the `photos` field and
//!   the URLs serving them): see `photos.rs`.

mod body;
mod book;
mod contacts;
mod fields;
mod groups;
mod photos;
mod render;
mod schema;
mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::error::{Api, ApiError};
use crate::state::Emulator;

pub use book::{Contact, Group, Tombstone, UserBook};

/// Sync tokens expire this long after the full sync that started their chain.
pub const SYNC_TOKEN_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// Default time a mutation keeps its user's in-flight marker.
pub const DEFAULT_MUTATION_HOLD: Duration = Duration::from_millis(10);

/// All People state: one address book per impersonated user.
pub struct PeopleState {
    users: RwLock<HashMap<String, Arc<Mutex<UserBook>>>>,
    inflight: Mutex<HashSet<String>>,
    settings: RwLock<Settings>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Live contacts allowed per user.
    pub contact_cap: usize,
    /// Minimum time a mutation holds the user's in-flight marker (milliseconds).
    pub mutation_hold_ms: u64,
    /// When set, callers whose subject the directory does not know get 403.
    pub require_directory_subject: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            contact_cap: orgsync_wire::people::CONTACTS_PER_USER_CAP,
            mutation_hold_ms: DEFAULT_MUTATION_HOLD.as_millis() as u64,
            require_directory_subject: false,
        }
    }
}

impl Default for PeopleState {
    fn default() -> Self {
        PeopleState {
            users: RwLock::new(HashMap::new()),
            inflight: Mutex::new(HashSet::new()),
            settings: RwLock::new(Settings::default()),
        }
    }
}

/// Serializable form of [`PeopleState`] for `--data-dir` persistence.
#[derive(Default, Serialize, Deserialize)]
pub struct PeopleSnapshot {
    #[serde(default)]
    pub users: Vec<UserBook>,
    #[serde(default)]
    pub settings: Option<Settings>,
}

/// Per-user numbers for `GET /emulator/v1/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookStats {
    pub contacts: usize,
    pub tombstones: usize,
    pub user_groups: usize,
}

fn key(user: &str) -> String {
    user.trim().to_ascii_lowercase()
}

impl PeopleState {
    pub fn snapshot(&self) -> PeopleSnapshot {
        let users = self.users.read();
        let mut books: Vec<UserBook> = users.values().map(|b| b.lock().clone()).collect();
        books.sort_by(|a, b| a.user.cmp(&b.user));
        PeopleSnapshot {
            users: books,
            settings: Some(self.settings.read().clone()),
        }
    }

    pub fn restore(&self, snapshot: PeopleSnapshot) {
        let mut users = self.users.write();
        users.clear();
        for mut book in snapshot.users {
            book.rebuild_indexes();
            users.insert(key(&book.user), Arc::new(Mutex::new(book)));
        }
        if let Some(s) = snapshot.settings {
            *self.settings.write() = s;
        }
    }

    /// Forget every address book (control API reset).
    pub fn clear(&self) {
        self.users.write().clear();
    }

    /// The user's address book, created empty (with the system groups) on first use.
    pub fn book(&self, user: &str) -> Arc<Mutex<UserBook>> {
        let k = key(user);
        if let Some(b) = self.users.read().get(&k) {
            return b.clone();
        }
        self.users
            .write()
            .entry(k.clone())
            .or_insert_with(|| Arc::new(Mutex::new(UserBook::new(&k))))
            .clone()
    }

    /// A renamed account keeps its address book (Directory `users.update` calls this).
    pub fn rename_book(&self, old: &str, new: &str) {
        let (old, new) = (key(old), key(new));
        let mut users = self.users.write();
        if let Some(book) = users.remove(&old) {
            book.lock().user = new.clone();
            users.insert(new, book);
        }
    }

    /// Expire every sync token issued for `user` (control API). Returns whether the user
    /// had an address book.
    pub fn expire_sync_tokens(&self, user: &str) -> bool {
        let Some(b) = self.users.read().get(&key(user)).cloned() else {
            return false;
        };
        b.lock().new_sync_epoch();
        true
    }

    /// Expire every sync token of every user.
    pub fn expire_all_sync_tokens(&self) {
        for b in self.users.read().values() {
            b.lock().new_sync_epoch();
        }
    }

    /// Live contacts per user (lower-cased emails).
    pub fn contact_counts(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .users
            .read()
            .iter()
            .map(|(k, b)| (k.clone(), b.lock().live_count()))
            .collect();
        v.sort();
        v
    }

    pub fn stats(&self, user: &str) -> Option<BookStats> {
        let b = self.users.read().get(&key(user)).cloned()?;
        let b = b.lock();
        Some(b.stats())
    }

    pub fn settings(&self) -> Settings {
        self.settings.read().clone()
    }

    pub fn set_contact_cap(&self, cap: usize) {
        self.settings.write().contact_cap = cap;
    }

    pub fn set_mutation_hold(&self, hold: Duration) {
        self.settings.write().mutation_hold_ms = hold.as_millis() as u64;
    }

    pub fn set_require_directory_subject(&self, on: bool) {
        self.settings.write().require_directory_subject = on;
    }

    pub fn mutation_hold(&self) -> Duration {
        Duration::from_millis(self.settings.read().mutation_hold_ms)
    }

    /// Mark a mutation for `user` in flight; 409 ABORTED when one already is.
    pub fn begin_mutation(&self, user: &str) -> Result<MutationGuard<'_>, ApiError> {
        let k = key(user);
        let mut set = self.inflight.lock();
        if !set.insert(k.clone()) {
            return Err(concurrent_mutation());
        }
        Ok(MutationGuard {
            state: self,
            user: k,
        })
    }

    /// Whether a mutation for `user` is in flight right now.
    pub fn mutation_in_flight(&self, user: &str) -> bool {
        self.inflight.lock().contains(&key(user))
    }
}

/// Clears the user's in-flight marker on every path, including a dropped request.
pub struct MutationGuard<'a> {
    state: &'a PeopleState,
    user: String,
}

impl Drop for MutationGuard<'_> {
    fn drop(&mut self) {
        self.state.inflight.lock().remove(&self.user);
    }
}

fn concurrent_mutation() -> ApiError {
    ApiError::new(
        Api::People,
        StatusCode::CONFLICT,
        "",
        "The operation was aborted.",
    )
    .with_rpc_status("ABORTED")
}

/// Run a mutation for the caller's user: in-flight marker, book lock, then the hold.
pub(crate) async fn mutate<T>(
    emu: &Emulator,
    user: &str,
    f: impl FnOnce(&mut UserBook, &Ctx) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let guard = emu.people.begin_mutation(user)?;
    let started = std::time::Instant::now();
    let ctx = Ctx::new(emu);
    let result = {
        let book = emu.people.book(user);
        let mut b = book.lock();
        f(&mut b, &ctx)
    };
    let hold = emu.people.mutation_hold();
    let spent = started.elapsed();
    if hold > spent {
        tokio::time::sleep(hold - spent).await;
    }
    drop(guard);
    result
}

/// What a handler needs besides the book: the time and the settings.
pub(crate) struct Ctx {
    pub now_ms: i64,
    pub settings: Settings,
}

impl Ctx {
    pub fn new(emu: &Emulator) -> Self {
        Ctx {
            now_ms: emu.clock.now_ms(),
            settings: emu.people.settings(),
        }
    }
}

/// The impersonated user, with the optional directory check.
pub(crate) fn caller_user(
    emu: &Emulator,
    caller: &crate::auth::Caller,
) -> Result<String, ApiError> {
    let me = caller.me()?.to_string();
    let known = emu.directory.read().find_subject(&me);
    if emu.people.settings.read().require_directory_subject && known.is_none() {
        return Err(ApiError::forbidden(
            Api::People,
            "The caller does not have permission",
        ));
    }
    // Impersonating an alias (say, the address before a rename) reaches the account's
    // own address book, keyed by its primary email.
    Ok(known
        .map(|s| s.primary_email)
        .filter(|p| !p.is_empty())
        .unwrap_or(me))
}

pub(crate) fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(Api::People, message)
}

pub(crate) fn failed_precondition(message: impl Into<String>) -> ApiError {
    ApiError::new(Api::People, StatusCode::BAD_REQUEST, "", message)
        .with_rpc_status("FAILED_PRECONDITION")
}

pub(crate) fn not_found() -> ApiError {
    ApiError::not_found(Api::People, "Requested entity was not found.")
}

/// Give generated users their personal (non-orgsync) contacts
/// (`config.personal_contacts_per_user`). Called after [`crate::directory::seed`].
///
/// Every live directory user gets them (the admin when the directory is empty).
pub fn seed(emu: &Emulator) {
    let mut emails: Vec<String> = emu
        .directory
        .read()
        .users_sorted()
        .filter_map(|u| u.primary_email.clone())
        .collect();
    if emails.is_empty() {
        emails.push(emu.config.admin_email());
    }
    seed_users(emu, &emails);
}

/// Seed `config.personal_contacts_per_user` personal contacts for each of `emails`,
/// deterministically from `config.seed`: some carry a colleague's work address, some
/// are phone-only, some have only a name. They exist to prove orgsync never touches
/// contacts it does not own.
pub fn seed_users(emu: &Emulator, emails: &[String]) {
    let n = emu.config.personal_contacts_per_user;
    if n == 0 {
        return;
    }
    let now = emu.clock.now_ms();
    for (i, email) in emails.iter().enumerate() {
        let book = emu.people.book(email);
        let mut b = book.lock();
        b.seed_personal(emu.config.seed, i, emails, n, now);
    }
}

pub fn routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route(
            "/v1/people/{id}/connections",
            get(contacts::list_connections),
        )
        .route("/v1/people:createContact", post(contacts::create_contact))
        .route(
            "/v1/people:batchCreateContacts",
            post(contacts::batch_create),
        )
        .route(
            "/v1/people:batchUpdateContacts",
            post(contacts::batch_update),
        )
        .route(
            "/v1/people:batchDeleteContacts",
            post(contacts::batch_delete),
        )
        .route("/v1/people:batchGet", get(contacts::batch_get))
        .route(
            "/v1/people/{id}",
            get(contacts::get_person)
                .patch(contacts::patch_person)
                .delete(contacts::delete_person),
        )
        .route("/photos/cm/{*token}", get(photos::serve))
        .route(
            "/v1/contactGroups",
            get(groups::list_groups).post(groups::create_group),
        )
        .route("/v1/contactGroups:batchGet", get(groups::batch_get_groups))
        .route(
            "/v1/contactGroups/{id}",
            get(groups::get_group)
                .put(groups::update_group)
                .delete(groups::delete_group),
        )
        .route(
            "/v1/contactGroups/{id}/members:modify",
            post(groups::modify_members),
        )
}
