//! Address books read back through the People API, and the check every contacts test
//! ends with: each target's book holds exactly one orgsync contact per other source, and
//! no personal contact changed.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use orgsync_client::GoogleClient;
use orgsync_client::people::ConnectionsParams;
use orgsync_core::contacts::markers;
use orgsync_wire::directory::User;
use orgsync_wire::people::Person;

/// Every field orgsync writes or reads: `userDefined`, and a shared list's notes and
/// addresses, included.
pub const READ_MASK: &str = "names,emailAddresses,phoneNumbers,organizations,externalIds,\
    clientData,memberships,metadata,userDefined,addresses,biographies";

/// Every contact in `email`'s book (read as them by `observer`, a client with the
/// contacts scope).
pub async fn contacts_of(observer: &GoogleClient, email: &str) -> Vec<Person> {
    observer
        .people(email)
        .connections_list(ConnectionsParams::new(READ_MASK))
        .try_collect()
        .await
        .expect("reading an address book back")
}

/// orgsync's contacts in `email`'s book.
pub async fn managed_of(observer: &GoogleClient, email: &str) -> Vec<Person> {
    contacts_of(observer, email)
        .await
        .into_iter()
        .filter(markers::is_managed)
        .collect()
}

/// The contacts orgsync did not create in `email`'s book.
pub async fn personal_of(observer: &GoogleClient, email: &str) -> Vec<Person> {
    contacts_of(observer, email)
        .await
        .into_iter()
        .filter(|p| !markers::is_managed(p) && !markers::is_orphan(p))
        .collect()
}

/// Every personal contact of `users` (directory id → user): `id/resourceName` → etag.
/// Equal before and after a run means no personal contact was created, changed or
/// deleted. Keyed by id, so a renamed user's contacts keep their keys.
pub async fn personal_fingerprints<'a>(
    observer: &GoogleClient,
    users: impl IntoIterator<Item = &'a User>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for u in users {
        let (Some(id), Some(email)) = (u.id.as_deref(), u.primary_email.as_deref()) else {
            continue;
        };
        for p in personal_of(observer, email).await {
            out.insert(
                format!("{id}/{}", p.resource_name.unwrap_or_default()),
                p.etag.unwrap_or_default(),
            );
        }
    }
    out
}

/// The default scopes: sources are active users visible in the global address list,
/// targets every active user.
pub fn is_default_source(u: &User) -> bool {
    is_active(u) && u.include_in_global_address_list != Some(false)
}

pub fn is_active(u: &User) -> bool {
    u.suspended != Some(true) && u.archived != Some(true)
}

/// How each target's book differs from `sources` (directory id → user): the target's
/// email and what is wrong, or nothing when every book is exactly right (one contact
/// per other source, none twice, nothing else of orgsync's). `personal_duplicates =
/// "add"` is assumed (every colleague is copied).
pub async fn differences(
    observer: &GoogleClient,
    targets: &[User],
    sources: &BTreeMap<String, User>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in targets {
        let email = t.primary_email.as_deref().expect("a primary email");
        let id = t.id.as_deref().unwrap_or_default();
        let managed = managed_of(observer, email).await;
        let ids: Vec<&str> = managed.iter().filter_map(markers::managed_id).collect();
        let have: BTreeSet<&str> = ids.iter().copied().collect();
        if have.len() != ids.len() {
            out.push((email.to_owned(), "duplicate orgsync contacts".into()));
        }
        let want: BTreeSet<&str> = sources
            .keys()
            .map(String::as_str)
            .filter(|s| *s != id)
            .collect();
        let missing: Vec<&&str> = want.difference(&have).take(3).collect();
        let extra: Vec<&&str> = have.difference(&want).take(3).collect();
        if !missing.is_empty() || !extra.is_empty() {
            out.push((
                email.to_owned(),
                format!(
                    "{} contacts, {} expected; missing {missing:?}, extra {extra:?}",
                    have.len(),
                    want.len()
                ),
            ));
        }
    }
    out
}

/// The managed contact of `source_id` in `email`'s book, if any.
pub async fn contact_of(observer: &GoogleClient, email: &str, source_id: &str) -> Option<Person> {
    managed_of(observer, email)
        .await
        .into_iter()
        .find(|p| markers::managed_id(p) == Some(source_id))
}
