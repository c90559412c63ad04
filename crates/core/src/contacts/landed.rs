//! Checking a first sync's creates by their markers alone.
//!
//! On the executor's fresh path (the managed label did not exist, so nothing of
//! orgsync's can be in the address book) everyone is created first and the book is read
//! once afterwards: that read yields the sync token and proves the creates landed.
//! Re-planning that read in full would parse and compare every field of every contact
//! just written, most of a first sync's CPU, while what can actually go wrong with a
//! create shows in markers and memberships: it did not land, it landed twice (a batch
//! whose outcome was unknown), it landed outside the label, or a contact of ours we did
//! not plan is there. [`MarkedContact`] holds only those; its field contents are the
//! ones this run just sent. When anything is unexpected the answer is `None` and the
//! executor reads in full and lets [`super::plan_user`] repair.

use std::collections::HashSet;

use orgsync_wire::people::{MY_CONTACTS, PersonMarkers};

use super::markers;
use super::plan::{DesiredDirectory, TargetUser};

/// One contact as the verifying read needs it: resource name, tombstone flag,
/// `clientData`, memberships (parsed straight from `connections.list` JSON).
pub type MarkedContact = PersonMarkers;

/// After creating every planned contact in a book that held nothing of orgsync's:
/// `Some(personal contacts seen)` when each selected colleague (all but the target)
/// is there exactly once, in My Contacts and the managed group, with exactly the markers
/// the planner gives it, and no other contact of ours (managed or orphan) is there;
/// `None` otherwise, or when the target's managed group is unknown.
pub fn fresh_creates_landed(
    target: &TargetUser,
    directory: &DesiredDirectory,
    seen: &[MarkedContact],
) -> Option<usize> {
    let group = target.managed_group.as_deref()?;
    let expected = directory
        .contacts
        .keys()
        .filter(|id| **id != target.directory_id)
        .count();
    let mut resource_names = HashSet::new();
    let mut found: HashSet<&str> = HashSet::with_capacity(expected);
    let mut personal = 0;
    for c in seen {
        if c.deleted {
            continue;
        }
        let Some(rn) = c.resource_name.as_deref() else {
            continue;
        };
        if !resource_names.insert(rn) {
            continue;
        }
        if c.client_data_value(markers::SOURCE) != Some(markers::SOURCE_VALUE) {
            personal += 1;
            continue;
        }
        // Ours: it must be a planned create, seen once, marked and labelled as planned.
        let id = c
            .client_data_value(markers::ID)
            .map(str::trim)
            .filter(|v| !v.is_empty())?;
        if id == target.directory_id || !found.insert(id) {
            return None;
        }
        let (hash, tokens) = directory.prepared_marks(id)?;
        let entries = c.client_data.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        if !markers::are_exactly(entries, id, hash, tokens, None) {
            return None;
        }
        let in_group = |g: &str| c.groups.iter().any(|x| x == g);
        if !in_group(MY_CONTACTS) || !in_group(group) {
            return None;
        }
    }
    (found.len() == expected).then_some(personal)
}
