//! The `clientData` markers that make a contact orgsync's.
//!
//! `clientData` is invisible in the Contacts UI, so a person cannot accidentally claim
//! or disown a contact; `externalIds`/`userDefined` are user-editable and would not be
//! safe markers. See `clientData`, `externalIds` and `userDefined` on
//! <https://developers.google.com/people/api/rest/v1/people#Person>.

use std::collections::BTreeSet;

use orgsync_wire::people::{ClientData, Person};

use super::mapping::DesiredContact;
use super::plan::desired_tokens;

pub const PREFIX: &str = "orgsync.";
/// Ownership: value [`SOURCE_VALUE`].
pub const SOURCE: &str = "orgsync.source";
pub const SOURCE_VALUE: &str = "orgsync";
/// Directory immutable user id: the identity key.
pub const ID: &str = "orgsync.id";
/// Hash of the mapped fields ([`DesiredContact::hash`]).
pub const HASH: &str = "orgsync.hash";
/// Space-separated fingerprints of the list entries orgsync wrote.
pub const OWNED: &str = "orgsync.owned";
/// `left` on a kept leaver.
pub const STATE: &str = "orgsync.state";
pub const STATE_LEFT: &str = "left";
/// Etag of the last photo the executor uploaded.
pub const PHOTO: &str = "orgsync.photo";

/// The `orgsync.id` of a shared list's contact: `list:<list name>:<key>`. Directory
/// ids are digits, so the two namespaces cannot meet.
pub fn list_id(list: &str, key: &str) -> String {
    format!("{LIST_ID_PREFIX}{list}:{key}")
}

const LIST_ID_PREFIX: &str = "list:";

/// Whether an `orgsync.id` names a shared list's contact (see [`list_id`]).
pub fn is_list_id(id: &str) -> bool {
    id.starts_with(LIST_ID_PREFIX)
}

/// `orgsync.label` on an extra managed label (a department's, a shared list's): the
/// label's name as orgsync made it. The main label has none.
pub const LABEL: &str = "orgsync.label";

/// A contact is managed when it carries `orgsync.source = orgsync` **and** a non-empty
/// `orgsync.id`. An `orgsync.id` alone does not make a contact ours.
pub fn is_managed(p: &Person) -> bool {
    managed_id(p).is_some()
}

/// The directory id of a managed contact; `None` for personal contacts.
pub fn managed_id(p: &Person) -> Option<&str> {
    if p.client_data_value(SOURCE) != Some(SOURCE_VALUE) {
        return None;
    }
    p.client_data_value(ID)
        .map(str::trim)
        .filter(|id| !id.is_empty())
}

/// Contacts with our source marker but no usable id: ours, but no directory user can
/// claim them; the planner treats them as leavers.
pub fn is_orphan(p: &Person) -> bool {
    p.client_data_value(SOURCE) == Some(SOURCE_VALUE) && managed_id(p).is_none()
}

/// The `orgsync.owned` fingerprints, or `None` when the marker is absent.
pub fn owned_set(p: &Person) -> Option<BTreeSet<String>> {
    p.client_data_value(OWNED)
        .map(|v| v.split_whitespace().map(str::to_string).collect())
}

/// The markers for a contact that shows `d`.
pub(crate) fn for_desired(d: &DesiredContact, photo: Option<&str>) -> Vec<ClientData> {
    build(&d.directory_id, &d.hash(), &desired_tokens(d), photo)
}

pub(crate) fn build(
    id: &str,
    hash: &str,
    tokens: &BTreeSet<String>,
    photo: Option<&str>,
) -> Vec<ClientData> {
    let owned: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mut v = vec![
        ClientData::new(SOURCE, SOURCE_VALUE),
        ClientData::new(ID, id),
        ClientData::new(HASH, hash),
        ClientData::new(OWNED, owned.join(" ")),
    ];
    if let Some(photo) = photo {
        v.push(ClientData::new(PHOTO, photo));
    }
    v
}

/// Whether a contact's `orgsync.*` entries (given as every `clientData` key and value)
/// are exactly the markers [`build`] makes for it: keys and values trimmed, order
/// ignored. The planner's in-sync test and the fresh path's marker check share it.
pub(crate) fn are_exactly<'a>(
    entries: impl Iterator<Item = (&'a str, &'a str)>,
    id: &str,
    hash: &str,
    tokens: &BTreeSet<String>,
    photo: Option<&str>,
) -> bool {
    let mut have: Vec<(&str, &str)> = entries
        .filter(|(k, _)| k.starts_with(PREFIX))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    have.sort_unstable();
    let want = build(id, hash, tokens, photo);
    let mut want: Vec<(&str, &str)> = want
        .iter()
        .map(|c| {
            (
                c.key.as_deref().unwrap_or("").trim(),
                c.value.as_deref().unwrap_or("").trim(),
            )
        })
        .collect();
    want.sort_unstable();
    have == want
}

/// For the executor, after a successful photo upload: record its etag, so the next
/// plan does not upload it again. Send with update mask `clientData`.
pub fn set_photo(p: &mut Person, photo_etag: &str) {
    p.client_data.retain(|c| c.key.as_deref() != Some(PHOTO));
    p.client_data.push(ClientData::new(PHOTO, photo_etag));
}
