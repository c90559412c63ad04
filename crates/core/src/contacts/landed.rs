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

use std::collections::{BTreeSet, HashSet};

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
    let mut check = FreshCheck::new(target, directory)?;
    for c in seen {
        if !check.see(c) {
            return None;
        }
    }
    check.finish()
}

/// [`fresh_creates_landed`] one contact at a time, so the verifying read can be checked
/// page by page and dropped: a book of 10,000 held as markers costs about 6 MB, and a
/// first sync works on a hundred books at once. It keeps only a hash per resource name
/// and, per colleague found, a reference into the directory.
pub struct FreshCheck<'d> {
    directory: &'d DesiredDirectory,
    target: TargetUser,
    expected: usize,
    skipped: BTreeSet<String>,
    resource_names: HashSet<u64>,
    found: HashSet<&'d str>,
    personal: usize,
    failed: bool,
}

impl<'d> FreshCheck<'d> {
    /// `None` when the target's managed group is unknown (nothing can be verified).
    pub fn new(target: &TargetUser, directory: &'d DesiredDirectory) -> Option<Self> {
        Self::skipping(target, directory, BTreeSet::new())
    }

    /// [`Self::new`] for a plan that did not create `skipped` (colleagues the target
    /// has a personal contact for): those must not be there.
    pub fn skipping(
        target: &TargetUser,
        directory: &'d DesiredDirectory,
        skipped: BTreeSet<String>,
    ) -> Option<Self> {
        target.managed_group.as_ref()?;
        let expected = directory
            .contacts
            .iter()
            .filter(|(id, d)| directory.receives(target, id, d) && !skipped.contains(*id))
            .count();
        Some(FreshCheck {
            directory,
            target: target.clone(),
            expected,
            skipped,
            resource_names: HashSet::with_capacity(expected),
            found: HashSet::with_capacity(expected),
            personal: 0,
            failed: false,
        })
    }

    /// Check one contact; `false` once anything is not as planned.
    pub fn see(&mut self, c: &MarkedContact) -> bool {
        if !self.failed && !self.check(c) {
            self.failed = true;
        }
        !self.failed
    }

    fn check(&mut self, c: &MarkedContact) -> bool {
        if c.deleted {
            return true;
        }
        let Some(rn) = c.resource_name.as_deref() else {
            return true;
        };
        // A hash, not the name: a collision (about 1 in 10^15 at 10,000 contacts) would
        // make a create look missing, which costs a full read, never a wrong answer.
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(rn, &mut h);
        if !self.resource_names.insert(std::hash::Hasher::finish(&h)) {
            return true;
        }
        if c.client_data_value(markers::SOURCE) != Some(markers::SOURCE_VALUE) {
            self.personal += 1;
            return true;
        }
        // Ours: it must be a planned create, seen once, marked and labelled as planned.
        let Some(id) = c
            .client_data_value(markers::ID)
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            return false;
        };
        if self.skipped.contains(id) {
            return false;
        }
        let Some((id, d)) = self.directory.contacts.get_key_value(id) else {
            return false;
        };
        if !self.directory.receives(&self.target, id, d) {
            return false;
        }
        if !self.found.insert(id.as_str()) {
            return false;
        }
        let Some((hash, tokens)) = self.directory.prepared_marks(id) else {
            return false;
        };
        let entries = c.client_data.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        if !markers::are_exactly(entries, id, hash, tokens, None) {
            return false;
        }
        // My Contacts, and of the managed groups exactly the ones planned.
        let in_group = |g: &str| c.groups.iter().any(|x| x == g);
        let wanted = self.target.groups_for(d);
        in_group(MY_CONTACTS)
            && self
                .target
                .managed_group
                .iter()
                .chain(self.target.labels.values())
                .all(|g| in_group(g) == wanted.contains(&g.as_str()))
    }

    /// `Some(personal contacts seen)` when every planned create was seen as planned.
    pub fn finish(self) -> Option<usize> {
        (!self.failed && self.found.len() == self.expected).then_some(self.personal)
    }
}
