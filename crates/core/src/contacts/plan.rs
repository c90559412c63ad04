//! Planning one target user's address book.
//!
//! Input: the desired contacts for the whole directory ([`DesiredDirectory`], built
//! once per run), one target, and that target's **complete** contact list (the executor
//! pages to the end: the baseline script's missing pagination is what duplicated
//! contacts and deleted colleagues). Output: a [`UserPlan`].
//!
//! Decisions, in order:
//! 1. Deleted tombstones (sync responses), contacts without a resource name and repeated
//!    resource names are ignored. Unmanaged contacts are counted and never looked at
//!    again.
//! 2. Managed contacts are grouped by `orgsync.id`. When several share an id (a crash
//!    between create and record, or another tool copying them) one is kept — the one
//!    with the most personal additions, then the one whose hash is current, then the
//!    smallest resource name — the person's additions on the others are folded into it,
//!    and the others are deleted (`duplicates_merged`).
//! 3. Each selected source user except the target themself: no managed contact →
//!    create; otherwise merge (see the module docs of [`crate::contacts`]) → update or
//!    unchanged.
//! 4. Managed contacts whose id is not selected any more (left the directory, left the
//!    scope, or the target themself): deleted, or with [`LeaverPolicy::Keep`] relabelled
//!    — the leaver label appended to the family name, `orgsync.state = left`, removed
//!    from the managed group but kept in My Contacts. Relabelling is reversible: if the
//!    person comes back, the normal merge rewrites names, markers and memberships.
//! 5. If the result would exceed the per-account contact cap, nothing is planned and the
//!    plan says why (`skipped`).

use std::collections::{BTreeMap, BTreeSet};

use orgsync_wire::directory::User;
use orgsync_wire::people::{
    CONTACTS_PER_USER_CAP, ClientData, MY_CONTACTS, Membership, Name, Person,
};
use serde::{Deserialize, Serialize};

use super::mapping::{
    DesiredContact, MAPPING_VERSION, MappingOptions, PhoneFormat, address_json, biography_of,
    desired_contact, email_of, external_id_of, format_phone, name_of, organization_of, phone_of,
    user_defined_of,
};
use super::markers;
use crate::hash::{short_fingerprint, stable_hash};
use crate::scope::DirectorySnapshot;

/// What happens to the contact of someone who left the directory or the scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaverPolicy {
    #[default]
    Delete,
    Keep,
}

/// What to do when a target already has a contact of their own with a colleague's email.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersonalDuplicates {
    /// Add orgsync's copy anyway (two entries for one person on the phone).
    #[default]
    Add,
    /// Do not add orgsync's copy while the personal contact is there; add it once that
    /// contact is gone. A copy orgsync made earlier stays (removing it would delete data
    /// the person may rely on). The personal contact is never touched either way.
    Skip,
}

impl PersonalDuplicates {
    fn is_add(&self) -> bool {
        *self == PersonalDuplicates::Add
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanOptions {
    pub leavers: LeaverPolicy,
    /// Per-account contact cap (25,000 is widely cited; no Google page states it, see
    /// `docs/ARCHITECTURE.md`).
    pub contact_cap: usize,
    /// Left out of the serialised options (and so of the view hash) at `add`, the
    /// behaviour before the option existed.
    #[serde(skip_serializing_if = "PersonalDuplicates::is_add")]
    pub personal_duplicates: PersonalDuplicates,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            leavers: LeaverPolicy::Delete,
            contact_cap: CONTACTS_PER_USER_CAP,
            personal_duplicates: PersonalDuplicates::Add,
        }
    }
}

/// The member whose address book is planned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetUser {
    /// Directory id: this person never receives their own contact.
    pub directory_id: String,
    pub email: String,
    /// Resource name of this user's managed contact group, when it exists.
    pub managed_group: Option<String>,
    /// The shared lists this person receives (their contacts are planned for them;
    /// other lists' contacts in the book are removed).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub lists: BTreeSet<String>,
    /// The extra managed labels in this book: label name → resource name. A label that
    /// is not here is neither joined nor left (the executor creates every label the
    /// book's contacts need before planning).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl TargetUser {
    /// Every managed group of this book: the main one and the extra labels.
    fn managed_groups(&self) -> BTreeSet<&str> {
        self.managed_group
            .as_deref()
            .into_iter()
            .chain(self.labels.values().map(String::as_str))
            .collect()
    }

    /// The managed groups `d` belongs in here: the main group for a directory user,
    /// and each of its labels this book has.
    pub fn groups_for(&self, d: &DesiredContact) -> Vec<&str> {
        let main = self.managed_group.as_deref().filter(|_| d.list.is_none());
        main.into_iter()
            .chain(
                d.labels
                    .iter()
                    .filter_map(|l| self.labels.get(l).map(String::as_str)),
            )
            .collect()
    }
}

/// The managed groups of one book, and those one contact belongs in.
#[derive(Clone, Copy)]
struct Groups<'a> {
    managed: &'a BTreeSet<&'a str>,
    wanted: &'a [&'a str],
}

/// The desired contact of every selected source user, computed once per run.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredDirectory {
    pub contacts: BTreeMap<String, DesiredContact>,
    /// Per contact: hash and owned-entry fingerprints, computed once per run (a plan
    /// for 5,000 targets would otherwise recompute them 25 million times).
    prepared: BTreeMap<String, Prepared>,
    pub mapping: MappingOptions,
    /// Users the directory read returned (before scope).
    pub read_count: usize,
    /// `(primary email, number)` of every phone `phone_format = "e164"` could not read:
    /// written as the directory has it, and reported once per run.
    pub phones_kept_as_written: Vec<(String, String)>,
    /// `schema.field` of each configured custom field no selected user has a value for:
    /// most likely a misspelt name (Google does not say), reported once per run.
    pub custom_fields_unseen: Vec<String>,
    digest: String,
    /// How many contacts are in each label, by shared list.
    labels_by_list: BTreeMap<Option<String>, BTreeMap<String, usize>>,
    /// How many contacts, by shared list (`None`: directory contacts).
    count_by_list: BTreeMap<Option<String>, usize>,
    list_fields: bool,
}

/// Builds a [`DesiredDirectory`] from the selected users one at a time, as the pages of
/// the directory read arrive: a run keeps each colleague's desired contact, never the
/// directory's `User` (at 100,000 people the read held whole was most of a run's memory).
#[derive(Debug)]
pub struct DesiredDirectoryBuilder<'a> {
    mapping: &'a MappingOptions,
    contacts: BTreeMap<String, DesiredContact>,
    phones_kept_as_written: Vec<(String, String)>,
    seen_fields: Vec<bool>,
}

impl<'a> DesiredDirectoryBuilder<'a> {
    pub fn new(mapping: &'a MappingOptions) -> Self {
        DesiredDirectoryBuilder {
            mapping,
            contacts: BTreeMap::new(),
            phones_kept_as_written: Vec::new(),
            seen_fields: vec![false; mapping.custom_fields.len()],
        }
    }

    /// One selected user (of a repeated id, the last one added wins).
    pub fn add(&mut self, u: &User) {
        let mapping = self.mapping;
        for (seen, cf) in self.seen_fields.iter_mut().zip(&mapping.custom_fields) {
            *seen = *seen || u.custom_field(&cf.schema, &cf.field).is_some();
        }
        let Some(d) = desired_contact(u, mapping) else {
            return;
        };
        if mapping.phones && mapping.phone_format == PhoneFormat::E164 {
            for ph in u.phones.iter().flatten() {
                let value = ph.value.trim();
                if !value.is_empty() && format_phone(value, mapping).is_err() {
                    self.phones_kept_as_written
                        .push((d.primary_email.clone(), value.to_string()));
                }
            }
        }
        self.contacts.insert(d.directory_id.clone(), d);
    }

    /// The directory; `read_count`: the users the directory read returned, before scope.
    pub fn finish(self, read_count: usize) -> DesiredDirectory {
        let mapping = self.mapping;
        let contacts = self.contacts;
        let prepared: BTreeMap<String, Prepared> = contacts
            .iter()
            .map(|(id, d)| (id.clone(), Prepared::of(d)))
            .collect();
        let custom_fields_unseen = mapping
            .custom_fields
            .iter()
            .zip(&self.seen_fields)
            .filter(|(_, seen)| !**seen)
            .map(|(cf, _)| format!("{}.{}", cf.schema, cf.field))
            .collect();
        let mut directory = DesiredDirectory {
            contacts,
            prepared,
            mapping: mapping.clone(),
            read_count,
            phones_kept_as_written: self.phones_kept_as_written,
            custom_fields_unseen,
            digest: String::new(),
            labels_by_list: BTreeMap::new(),
            count_by_list: BTreeMap::new(),
            list_fields: false,
        };
        directory.settle();
        directory
    }
}

impl DesiredDirectory {
    /// From a snapshot of the selected users; a run that streams the directory feeds a
    /// [`DesiredDirectoryBuilder`] instead.
    pub fn build(snapshot: &DirectorySnapshot, mapping: &MappingOptions) -> Self {
        let mut builder = DesiredDirectoryBuilder::new(mapping);
        for u in snapshot.users.values() {
            builder.add(u);
        }
        builder.finish(snapshot.read_count)
    }

    /// Add the contacts of shared lists (each with [`DesiredContact::list`] set and an
    /// id in the list namespace, see [`markers::list_id`]). A contact whose id is
    /// already there replaces it.
    pub fn add_list_contacts(&mut self, contacts: impl IntoIterator<Item = DesiredContact>) {
        for d in contacts {
            debug_assert!(d.list.is_some() && markers::is_list_id(&d.directory_id));
            self.prepared
                .insert(d.directory_id.clone(), Prepared::of(&d));
            self.contacts.insert(d.directory_id.clone(), d);
        }
        self.settle();
    }

    /// Recompute the digest and the labels per list after the contacts changed.
    fn settle(&mut self) {
        let hashes: BTreeMap<&String, &String> =
            self.prepared.iter().map(|(id, p)| (id, &p.hash)).collect();
        let photos: Vec<(&String, &Option<String>)> = self
            .contacts
            .iter()
            .map(|(id, d)| (id, &d.photo_etag))
            .collect();
        self.digest = stable_hash(&(MAPPING_VERSION, &self.mapping, &hashes, photos));
        let mut labels: BTreeMap<Option<String>, BTreeMap<String, usize>> = BTreeMap::new();
        let mut counts: BTreeMap<Option<String>, usize> = BTreeMap::new();
        for d in self.contacts.values() {
            *counts.entry(d.list.clone()).or_default() += 1;
            if !d.labels.is_empty() {
                let of_list = labels.entry(d.list.clone()).or_default();
                for l in &d.labels {
                    *of_list.entry(l.clone()).or_default() += 1;
                }
            }
        }
        self.labels_by_list = labels;
        self.count_by_list = counts;
        self.list_fields = self.contacts.values().any(DesiredContact::has_list_fields);
    }

    /// Whether any contact writes notes or an address: books are then read with
    /// `addresses` and `biographies` too.
    pub fn has_list_fields(&self) -> bool {
        self.list_fields
    }

    /// Whether `target` receives the contact `d` (keyed `id`): everyone but themself,
    /// and a shared list's contacts only for that list's targets.
    pub fn receives(&self, target: &TargetUser, id: &str, d: &DesiredContact) -> bool {
        id != target.directory_id && d.list.as_ref().is_none_or(|l| target.lists.contains(l))
    }

    /// How many contacts `target` receives.
    pub fn desired_count(&self, target: &TargetUser) -> usize {
        let count =
            |list: Option<&String>| self.count_by_list.get(&list.cloned()).copied().unwrap_or(0);
        let lists: usize = target.lists.iter().map(|l| count(Some(l))).sum();
        let own = self
            .contacts
            .get(&target.directory_id)
            .is_some_and(|d| d.list.is_none());
        (count(None) + lists).saturating_sub(usize::from(own))
    }

    /// Whether any contact is in an extra label (`label_by`, shared lists).
    pub fn has_labels(&self) -> bool {
        !self.labels_by_list.is_empty()
    }

    /// The names of every extra label the contacts `target` receives are in: the labels
    /// the executor must make sure exist in that book before planning.
    /// A label only the target themself would be in is not needed.
    pub fn labels_for(&self, target: &TargetUser) -> BTreeSet<&str> {
        let own = self
            .contacts
            .get(&target.directory_id)
            .filter(|d| d.list.is_none());
        self.labels_by_list
            .iter()
            .filter(|(list, _)| list.as_ref().is_none_or(|l| target.lists.contains(l)))
            .flat_map(|(list, names)| {
                names.iter().filter_map(move |(name, n)| {
                    let mine = list.is_none() && own.is_some_and(|d| d.labels.contains(name));
                    (*n > usize::from(mine)).then_some(name.as_str())
                })
            })
            .collect()
    }

    /// No selected source user (an empty or failed read, or a scope selecting nobody).
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
    }

    /// Hash of every desired contact and the mapping options.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn hash_of(&self, directory_id: &str) -> Option<&str> {
        self.prepared.get(directory_id).map(|p| p.hash.as_str())
    }

    /// The contact a create writes for source `directory_id` into `managed_group`:
    /// mapped fields, markers, My Contacts and the group. `None` for an unknown id.
    pub fn new_person(&self, directory_id: &str, managed_group: &str) -> Option<Person> {
        let d = self.contacts.get(directory_id)?;
        let p = self.prepared.get(directory_id)?;
        let marks = markers::build(&d.directory_id, &p.hash, &p.tokens, None);
        Some(d.new_person_with_markers(Some(managed_group), marks))
    }

    /// The contact a create writes for source `directory_id` into `target`'s book: in My
    /// Contacts and each managed group it belongs in there.
    pub fn new_person_for(&self, directory_id: &str, target: &TargetUser) -> Option<Person> {
        let d = self.contacts.get(directory_id)?;
        let p = self.prepared.get(directory_id)?;
        let marks = markers::build(&d.directory_id, &p.hash, &p.tokens, None);
        let mut person = d.new_person_with_markers(None, marks);
        person.memberships = std::iter::once(MY_CONTACTS)
            .chain(target.groups_for(d))
            .map(Membership::group)
            .collect();
        Some(person)
    }

    /// [`Self::new_person`] as a JSON object **without** `memberships`, serialised once
    /// per run: every target receives the same colleague, so only the memberships differ
    /// between address books, and the executor splices them in
    /// (`orgsync_client::people::NewContactJson`). Serialising a `Person` per target per
    /// contact was most of a first sync's CPU.
    /// Serialised on first use: a run that creates nothing (`contacts plan`, `undo`, a
    /// no-change sync) never holds it (about 700 bytes a colleague).
    pub fn new_person_json(&self, directory_id: &str) -> Option<&str> {
        let d = self.contacts.get(directory_id)?;
        let p = self.prepared.get(directory_id)?;
        let json = p.new_json.get_or_init(|| {
            let marks = markers::build(&d.directory_id, &p.hash, &p.tokens, None);
            serde_json::to_string(&d.new_person_with_markers(None, marks))
                .expect("a Person always serialises")
        });
        Some(json.as_str())
    }

    /// The precomputed hash and owned fingerprints of `directory_id`'s contact.
    pub(crate) fn prepared_marks(&self, directory_id: &str) -> Option<(&str, &BTreeSet<String>)> {
        self.prepared
            .get(directory_id)
            .map(|p| (p.hash.as_str(), &p.tokens))
    }

    fn want<'a>(&'a self, id: &str, d: &'a DesiredContact) -> Want<'a> {
        let p = &self.prepared[id];
        Want {
            d,
            hash: &p.hash,
            tokens: &p.tokens,
            custom_fields: &self.mapping.custom_fields,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Prepared {
    hash: String,
    tokens: BTreeSet<String>,
    /// [`DesiredDirectory::new_person_json`], made on first use.
    new_json: std::sync::OnceLock<String>,
}

impl Prepared {
    fn of(d: &DesiredContact) -> Self {
        Prepared {
            hash: d.hash(),
            tokens: desired_tokens(d),
            new_json: std::sync::OnceLock::new(),
        }
    }
}

/// A desired contact with its precomputed hash and fingerprints.
#[derive(Clone, Copy)]
struct Want<'a> {
    d: &'a DesiredContact,
    hash: &'a str,
    tokens: &'a BTreeSet<String>,
    /// The configured custom fields: their labels are the `userDefined` keys orgsync
    /// writes, which the ownership fallback needs.
    custom_fields: &'a [super::mapping::CustomField],
}

/// A stable hash of everything that determines `target`'s desired contacts: the
/// directory digest, the target (self-exclusion, managed group) and the plan options.
/// If it equals the hash stored after the last successful sync and the People sync
/// token reports no change, the executor can skip the user: one read, no writes.
/// The extra labels' resource names are left out: a label the person deletes shows as
/// a change to the contacts that were in it.
pub fn view_hash(target: &TargetUser, directory: &DesiredDirectory, opts: &PlanOptions) -> String {
    let base = (
        directory.digest(),
        &target.directory_id,
        &target.managed_group,
        opts,
    );
    if target.lists.is_empty() {
        stable_hash(&base)
    } else {
        stable_hash(&(base, &target.lists))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactCreate {
    /// The source user; the contact itself is [`DesiredDirectory::new_person`] (or its
    /// JSON, [`DesiredDirectory::new_person_json`]) in the target's managed group.
    pub directory_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactUpdate {
    /// Empty for an orphan (managed marker without an id).
    pub directory_id: String,
    pub resource_name: String,
    pub etag: Option<String>,
    /// The merged contact (carries the etag); only `update_mask` fields are replaced.
    pub person: Person,
    /// People field names, e.g. `["names", "phoneNumbers"]`.
    pub update_mask: Vec<String>,
}

impl ContactUpdate {
    /// `updatePersonFields` / `updateMask` value.
    pub fn update_mask_string(&self) -> String {
        self.update_mask.join(",")
    }
}

/// A photo the executor should upload (Directory `users.photos.get` →
/// `updateContactPhoto`), then record with [`markers::set_photo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhotoWrite {
    pub directory_id: String,
    /// `None` for a contact created by this plan (look it up by directory id).
    pub resource_name: Option<String>,
    pub photo_etag: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPlan {
    pub target_email: String,
    pub target_id: String,
    pub creates: Vec<ContactCreate>,
    pub updates: Vec<ContactUpdate>,
    /// Leavers' contacts (and orphans) to delete.
    pub deletes: Vec<String>,
    /// Leavers kept and relabelled (`LeaverPolicy::Keep`), or relabelled again.
    pub relabels: Vec<ContactUpdate>,
    /// Duplicate managed contacts to delete (their personal additions were folded into
    /// the kept contact's update).
    pub duplicates_merged: Vec<String>,
    pub photo_writes: Vec<PhotoWrite>,
    pub unchanged: usize,
    /// Distinct managed contacts observed (duplicates included).
    pub managed_observed: usize,
    pub personal_observed: usize,
    pub observed_total: usize,
    /// Set when nothing is planned on purpose (e.g. the contact cap).
    pub skipped: Option<String>,
    /// Colleagues not added because the target has a personal contact with their email
    /// (`PersonalDuplicates::Skip`), by directory id.
    pub skipped_duplicates: Vec<String>,
    pub view_hash: String,
}

impl UserPlan {
    /// No contact write planned (photos included).
    pub fn is_empty(&self) -> bool {
        self.write_count() == 0 && self.photo_writes.is_empty()
    }

    /// Contacts created + updated + relabelled + deleted.
    pub fn write_count(&self) -> usize {
        self.creates.len()
            + self.updates.len()
            + self.relabels.len()
            + self.deletes.len()
            + self.duplicates_merged.len()
    }

    /// Every resource name to delete (leavers, then duplicates).
    pub fn all_deletes(&self) -> impl Iterator<Item = &str> {
        self.deletes
            .iter()
            .chain(&self.duplicates_merged)
            .map(String::as_str)
    }
}

// ---------------------------------------------------------------------------------
// Value keys and fingerprints

pub fn email_key(v: &str) -> String {
    v.trim().to_lowercase()
}

/// `+`, digits and letters, lower-cased: "+44 (20) 1234-5" and "+4420 12345" are the
/// same number. Falls back to the trimmed text when nothing is left.
pub fn phone_key(v: &str) -> String {
    let k: String = v
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '+')
        .flat_map(char::to_lowercase)
        .collect();
    if k.is_empty() {
        v.trim().to_string()
    } else {
        k
    }
}

pub fn user_defined_key(key: &str, v: &str) -> String {
    format!("{}|{}", key.trim(), v.trim())
}

pub fn external_id_key(kind: &str, v: &str) -> String {
    format!("{}|{}", kind.trim().to_lowercase(), v.trim())
}

/// An address's text with its whitespace collapsed, lower-cased.
pub fn address_key(v: &str) -> String {
    v.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn org_key(name: Option<&str>, title: Option<&str>, dept: Option<&str>) -> String {
    let f = |s: Option<&str>| s.map(str::trim).unwrap_or("").to_string();
    format!("{}|{}|{}", f(name), f(title), f(dept))
}

fn token(prefix: char, key: &str) -> String {
    format!("{prefix}:{}", short_fingerprint(key))
}

fn email_token(v: &str) -> String {
    token('e', &email_key(v))
}
fn phone_token(v: &str) -> String {
    token('p', &phone_key(v))
}
fn external_id_token(kind: &str, v: &str) -> String {
    token('x', &external_id_key(kind, v))
}
fn user_defined_token(key: &str, v: &str) -> String {
    token('u', &user_defined_key(key, v))
}
fn address_token(v: &str) -> String {
    token('a', &address_key(v))
}
fn notes_token(v: &str) -> String {
    token('n', v.trim())
}
fn org_token(name: Option<&str>, title: Option<&str>, dept: Option<&str>) -> String {
    token('o', &org_key(name, title, dept))
}

/// Fingerprints of every list entry a desired contact writes (`orgsync.owned`).
pub(crate) fn desired_tokens(d: &DesiredContact) -> BTreeSet<String> {
    let mut t = BTreeSet::new();
    t.extend(d.emails.iter().map(|e| email_token(&e.value)));
    t.extend(d.phones.iter().map(|p| phone_token(&p.value)));
    t.extend(
        d.external_ids
            .iter()
            .map(|x| external_id_token(&x.kind, &x.value)),
    );
    t.extend(
        d.user_defined
            .iter()
            .map(|x| user_defined_token(&x.kind, &x.value)),
    );
    if let Some(o) = &d.organization {
        t.insert(org_token(
            o.name.as_deref(),
            o.title.as_deref(),
            o.department.as_deref(),
        ));
    }
    t.extend(d.address.as_deref().map(address_token));
    t.extend(d.notes.as_deref().map(notes_token));
    t
}

/// People `addresses` of a contact (the wire types keep them as JSON in `extra`).
fn addresses(p: &Person) -> &[serde_json::Value] {
    p.extra
        .get("addresses")
        .and_then(serde_json::Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn address_text(a: &serde_json::Value) -> Option<&str> {
    a.get("formattedValue")?.as_str()
}

fn set_addresses(p: &mut Person, list: Vec<serde_json::Value>) {
    if list.is_empty() {
        p.extra.remove("addresses");
    } else {
        p.extra
            .insert("addresses".into(), serde_json::Value::Array(list));
    }
}

/// Phone types orgsync writes for work numbers; the fallback ownership rule uses them.
const WORK_PHONE_TYPES: [&str; 8] = [
    "work",
    "mobile",
    "workMobile",
    "workFax",
    "pager",
    "workPager",
    "main",
    "googleVoice",
];

/// Who owns which entries of one observed managed contact.
struct Ownership<'a> {
    owned: Option<BTreeSet<String>>,
    wanted: Option<&'a BTreeSet<String>>,
    custom_fields: &'a [super::mapping::CustomField],
}

impl<'a> Ownership<'a> {
    fn new(p: &Person, w: Option<Want<'a>>) -> Self {
        Ownership {
            owned: markers::owned_set(p),
            wanted: w.map(|w| w.tokens),
            custom_fields: w.map_or(&[], |w| w.custom_fields),
        }
    }

    /// `fallback` is the rule used when `orgsync.owned` is missing.
    fn is_ours(&self, tok: Option<String>, fallback: bool) -> bool {
        let Some(tok) = tok else { return false };
        self.wanted.is_some_and(|w| w.contains(&tok))
            || match &self.owned {
                Some(o) => o.contains(&tok),
                None => fallback,
            }
    }

    fn email(&self, e: &orgsync_wire::people::EmailAddress) -> bool {
        let tok = e.value.as_deref().map(email_token);
        self.is_ours(tok, e.kind.as_deref() == Some("work"))
    }

    fn phone(&self, p: &orgsync_wire::people::PhoneNumber) -> bool {
        let tok = p.value.as_deref().map(phone_token);
        let fallback = p
            .kind
            .as_deref()
            .is_some_and(|k| WORK_PHONE_TYPES.contains(&k));
        self.is_ours(tok, fallback)
    }

    fn external_id(&self, x: &orgsync_wire::people::ExternalId) -> bool {
        let kind = x.kind.as_deref().unwrap_or("");
        let tok = x.value.as_deref().map(|v| external_id_token(kind, v));
        self.is_ours(tok, kind == "organization")
    }

    /// A `userDefined` entry is orgsync's by its fingerprint; without the fingerprints
    /// (`orgsync.owned` lost), by its key being a configured custom field's label.
    fn user_defined(&self, u: &orgsync_wire::people::UserDefined) -> bool {
        let tok = match (u.key.as_deref(), u.value.as_deref()) {
            (Some(k), Some(v)) => Some(user_defined_token(k, v)),
            _ => None,
        };
        let key = u.key.as_deref().map(str::trim);
        let fallback = self
            .custom_fields
            .iter()
            .any(|c| Some(c.label.trim()) == key);
        self.is_ours(tok, fallback)
    }

    /// Without `orgsync.owned`, no address is taken for orgsync's: one may be the
    /// person's own work address.
    fn address(&self, a: &serde_json::Value) -> bool {
        self.is_ours(address_text(a).map(address_token), false)
    }

    /// Likewise for a note: a person's own is never taken for orgsync's.
    fn biography(&self, b: &orgsync_wire::people::Biography) -> bool {
        self.is_ours(b.value.as_deref().map(notes_token), false)
    }

    fn organization(&self, o: &orgsync_wire::people::Organization) -> bool {
        let tok = Some(org_token(
            o.name.as_deref(),
            o.title.as_deref(),
            o.department.as_deref(),
        ));
        self.is_ours(tok, true)
    }
}

// ---------------------------------------------------------------------------------
// Projections: what a field means, without server decorations

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn trimmed(s: &Option<String>) -> String {
    s.as_deref().map(str::trim).unwrap_or("").to_string()
}

fn proj_names(p: &Person, strict: bool) -> Vec<(String, String, String)> {
    p.names
        .iter()
        .map(|n| {
            (
                trimmed(&n.given_name),
                trimmed(&n.family_name),
                if strict {
                    trimmed(&n.unstructured_name)
                } else {
                    String::new()
                },
            )
        })
        .collect()
}

fn proj_emails(p: &Person) -> Vec<(String, String)> {
    sorted(
        p.email_addresses
            .iter()
            .map(|e| (trimmed(&e.value), trimmed(&e.kind)))
            .collect(),
    )
}

fn proj_phones(p: &Person) -> Vec<(String, String)> {
    sorted(
        p.phone_numbers
            .iter()
            .map(|e| (trimmed(&e.value), trimmed(&e.kind)))
            .collect(),
    )
}

fn proj_external_ids(p: &Person) -> Vec<(String, String)> {
    sorted(
        p.external_ids
            .iter()
            .map(|e| (trimmed(&e.value), trimmed(&e.kind)))
            .collect(),
    )
}

fn proj_user_defined(p: &Person) -> Vec<(String, String)> {
    sorted(
        p.user_defined
            .iter()
            .map(|e| (trimmed(&e.key), trimmed(&e.value)))
            .collect(),
    )
}

fn proj_orgs(p: &Person) -> Vec<(String, String, String, bool)> {
    sorted(
        p.organizations
            .iter()
            .map(|o| {
                (
                    trimmed(&o.name),
                    trimmed(&o.title),
                    trimmed(&o.department),
                    o.current.unwrap_or(false),
                )
            })
            .collect(),
    )
}

fn proj_addresses(p: &Person) -> Vec<(String, String)> {
    let text = |a: &serde_json::Value, k: &str| {
        a.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    sorted(
        addresses(p)
            .iter()
            .map(|a| (text(a, "formattedValue"), text(a, "type")))
            .collect(),
    )
}

fn proj_biographies(p: &Person) -> Vec<String> {
    p.biographies.iter().map(|b| trimmed(&b.value)).collect()
}

fn proj_client_data(p: &Person) -> Vec<(String, String)> {
    sorted(
        p.client_data
            .iter()
            .map(|c| (trimmed(&c.key), trimmed(&c.value)))
            .collect(),
    )
}

fn group_name(m: &Membership) -> Option<String> {
    let g = m.contact_group_membership.as_ref()?;
    g.contact_group_resource_name.clone().or_else(|| {
        g.contact_group_id
            .as_ref()
            .map(|id| format!("contactGroups/{id}"))
    })
}

fn proj_memberships(p: &Person) -> Vec<String> {
    let mut v: Vec<String> = p.memberships.iter().filter_map(group_name).collect();
    v.sort();
    v.dedup();
    v
}

/// Fields whose managed projection differs, in People field-name order.
fn changed_fields(before: &Person, after: &Person, strict_names: bool) -> Vec<String> {
    let mut mask = Vec::new();
    if proj_addresses(before) != proj_addresses(after) {
        mask.push("addresses");
    }
    if proj_biographies(before) != proj_biographies(after) {
        mask.push("biographies");
    }
    if proj_client_data(before) != proj_client_data(after) {
        mask.push("clientData");
    }
    if proj_emails(before) != proj_emails(after) {
        mask.push("emailAddresses");
    }
    if proj_external_ids(before) != proj_external_ids(after) {
        mask.push("externalIds");
    }
    if proj_memberships(before) != proj_memberships(after) {
        mask.push("memberships");
    }
    if proj_names(before, strict_names) != proj_names(after, strict_names) {
        mask.push("names");
    }
    if proj_orgs(before) != proj_orgs(after) {
        mask.push("organizations");
    }
    if proj_phones(before) != proj_phones(after) {
        mask.push("phoneNumbers");
    }
    if proj_user_defined(before) != proj_user_defined(after) {
        mask.push("userDefined");
    }
    mask.into_iter().map(str::to_string).collect()
}

// ---------------------------------------------------------------------------------
// Merge, absorb, relabel

fn is_orgsync_key(c: &ClientData) -> bool {
    c.key
        .as_deref()
        .is_some_and(|k| k.starts_with(markers::PREFIX))
}

/// `base` with the managed fields replaced by `d` and everything else kept.
fn merge(base: &Person, w: Want<'_>, groups: Groups<'_>) -> Person {
    let d = w.d;
    let own = Ownership::new(base, Some(w));
    let mut p = base.clone();

    let mut name = name_of(d);
    if let Some(old) = base.names.first() {
        name.extra = old.extra.clone();
    }
    p.names = vec![name];

    p.email_addresses = d.emails.iter().map(email_of).collect();
    p.email_addresses.extend(
        base.email_addresses
            .iter()
            .filter(|e| !own.email(e))
            .cloned(),
    );

    p.phone_numbers = d.phones.iter().map(phone_of).collect();
    p.phone_numbers
        .extend(base.phone_numbers.iter().filter(|e| !own.phone(e)).cloned());

    p.external_ids = d.external_ids.iter().map(external_id_of).collect();
    p.external_ids.extend(
        base.external_ids
            .iter()
            .filter(|e| !own.external_id(e))
            .cloned(),
    );

    p.organizations = d.organization.iter().map(organization_of).collect();
    p.organizations.extend(
        base.organizations
            .iter()
            .filter(|o| !own.organization(o))
            .cloned(),
    );

    p.user_defined = d.user_defined.iter().map(user_defined_of).collect();
    p.user_defined.extend(
        base.user_defined
            .iter()
            .filter(|u| !own.user_defined(u))
            .cloned(),
    );

    let mut addrs: Vec<serde_json::Value> = d.address.iter().map(|a| address_json(a)).collect();
    addrs.extend(addresses(base).iter().filter(|a| !own.address(a)).cloned());
    set_addresses(&mut p, addrs);
    // A singleton: the person's own note wins, and orgsync's is not written over it.
    let theirs = base.biographies.iter().find(|b| !own.biography(b));
    p.biographies = match (theirs, &d.notes) {
        (Some(b), _) => vec![b.clone()],
        (None, Some(notes)) => vec![biography_of(notes)],
        (None, None) => Vec::new(),
    };

    let photo = base.client_data_value(markers::PHOTO).map(str::to_string);
    p.client_data = base
        .client_data
        .iter()
        .filter(|c| !is_orgsync_key(c))
        .cloned()
        .collect();
    p.client_data.extend(markers::build(
        &d.directory_id,
        w.hash,
        w.tokens,
        photo.as_deref(),
    ));

    p.memberships = merge_memberships(base, groups);
    keep_unchanged_fields(base, p, !hash_is_current(base, w))
}

fn hash_is_current(p: &Person, w: Want<'_>) -> bool {
    p.client_data_value(markers::HASH) == Some(w.hash)
}

/// Memberships: everything not in a managed group kept; My Contacts always; the
/// managed groups of `groups.wanted` joined, the other managed groups left. With no
/// managed group known, every existing membership is kept.
fn merge_memberships(base: &Person, groups: Groups<'_>) -> Vec<Membership> {
    let mut out: Vec<Membership> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut has_my_contacts = false;
    for m in &base.memberships {
        let Some(name) = group_name(m) else {
            out.push(m.clone());
            continue;
        };
        if groups.managed.contains(name.as_str()) {
            continue;
        }
        if name == MY_CONTACTS {
            has_my_contacts = true;
        }
        if seen.insert(name) {
            out.push(m.clone());
        }
    }
    if !has_my_contacts {
        out.insert(0, Membership::group(MY_CONTACTS));
    }
    for g in groups.wanted {
        if seen.insert(g.to_string()) {
            out.push(Membership::group(*g));
        }
    }
    out
}

/// Keep the observed value (verbatim, decorations and all) of every field whose
/// projection did not change, so an update never rewrites a field needlessly.
fn keep_unchanged_fields(base: &Person, mut p: Person, strict_names: bool) -> Person {
    let changed = changed_fields(base, &p, strict_names);
    let has = |f: &str| changed.iter().any(|c| c == f);
    if !has("names") {
        p.names = base.names.clone();
    }
    if !has("emailAddresses") {
        p.email_addresses = base.email_addresses.clone();
    }
    if !has("phoneNumbers") {
        p.phone_numbers = base.phone_numbers.clone();
    }
    if !has("externalIds") {
        p.external_ids = base.external_ids.clone();
    }
    if !has("organizations") {
        p.organizations = base.organizations.clone();
    }
    if !has("userDefined") {
        p.user_defined = base.user_defined.clone();
    }
    if !has("clientData") {
        p.client_data = base.client_data.clone();
    }
    if !has("memberships") {
        p.memberships = base.memberships.clone();
    }
    if !has("addresses") {
        set_addresses(&mut p, addresses(base).to_vec());
    }
    if !has("biographies") {
        p.biographies = base.biographies.clone();
    }
    p
}

/// A kept leaver: label appended to the family name (once), `orgsync.state = left`,
/// out of the managed group, still in My Contacts.
fn relabel(base: &Person, managed: &BTreeSet<&str>, label: &str) -> Person {
    let mut p = base.clone();
    let already = base.client_data_value(markers::STATE) == Some(markers::STATE_LEFT);
    if !already {
        if p.names.is_empty() {
            p.names.push(Name::default());
        }
        let n = &mut p.names[0];
        let append = |s: &Option<String>| match s.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => format!("{s} {label}"),
            _ => label.to_string(),
        };
        n.family_name = Some(append(&n.family_name));
        if n.unstructured_name.is_some() {
            n.unstructured_name = Some(append(&n.unstructured_name));
        }
        p.client_data
            .retain(|c| c.key.as_deref() != Some(markers::STATE));
        p.client_data
            .push(ClientData::new(markers::STATE, markers::STATE_LEFT));
    }
    p.memberships = merge_memberships(
        base,
        Groups {
            managed,
            wanted: &[],
        },
    );
    keep_unchanged_fields(base, p, true)
}

/// How much the person added to a managed contact (used to pick the keeper among
/// duplicates).
fn personal_additions(p: &Person, w: Option<Want<'_>>, managed: &BTreeSet<&str>) -> usize {
    let own = Ownership::new(p, w);
    p.email_addresses.iter().filter(|e| !own.email(e)).count()
        + p.phone_numbers.iter().filter(|e| !own.phone(e)).count()
        + p.external_ids
            .iter()
            .filter(|e| !own.external_id(e))
            .count()
        + p.organizations
            .iter()
            .filter(|e| !own.organization(e))
            .count()
        + p.client_data.iter().filter(|c| !is_orgsync_key(c)).count()
        + p.biographies.len()
        + p.user_defined
            .iter()
            .filter(|u| !own.user_defined(u))
            .count()
        + p.extra.len()
        + p.memberships
            .iter()
            .filter_map(group_name)
            .filter(|g| g != MY_CONTACTS && !managed.contains(g.as_str()))
            .count()
}

/// Fold the personal additions of `other` into `keeper` (entries not already there).
fn absorb(keeper: &mut Person, other: &Person, w: Option<Want<'_>>) {
    let own = Ownership::new(other, w);
    let keeper_own = Ownership::new(keeper, w);
    for e in other.email_addresses.iter().filter(|e| !own.email(e)) {
        let k = e.value.as_deref().map(email_key);
        if !keeper
            .email_addresses
            .iter()
            .any(|x| x.value.as_deref().map(email_key) == k)
            && !keeper_own.email(e)
        {
            keeper.email_addresses.push(e.clone());
        }
    }
    for e in other.phone_numbers.iter().filter(|e| !own.phone(e)) {
        let k = e.value.as_deref().map(phone_key);
        if !keeper
            .phone_numbers
            .iter()
            .any(|x| x.value.as_deref().map(phone_key) == k)
            && !keeper_own.phone(e)
        {
            keeper.phone_numbers.push(e.clone());
        }
    }
    for e in other.external_ids.iter().filter(|e| !own.external_id(e)) {
        if !keeper
            .external_ids
            .iter()
            .any(|x| x.value == e.value && x.kind == e.kind)
            && !keeper_own.external_id(e)
        {
            keeper.external_ids.push(e.clone());
        }
    }
    for u in other.user_defined.iter().filter(|u| !own.user_defined(u)) {
        if !keeper
            .user_defined
            .iter()
            .any(|x| x.key == u.key && x.value == u.value)
            && !keeper_own.user_defined(u)
        {
            keeper.user_defined.push(u.clone());
        }
    }
    for o in other.organizations.iter().filter(|o| !own.organization(o)) {
        if !keeper
            .organizations
            .iter()
            .any(|x| (&x.name, &x.title, &x.department) == (&o.name, &o.title, &o.department))
            && !keeper_own.organization(o)
        {
            keeper.organizations.push(o.clone());
        }
    }
    for c in other.client_data.iter().filter(|c| !is_orgsync_key(c)) {
        if !keeper
            .client_data
            .iter()
            .any(|x| x.key == c.key && x.value == c.value)
        {
            keeper.client_data.push(c.clone());
        }
    }
    let have: BTreeSet<String> = keeper.memberships.iter().filter_map(group_name).collect();
    for m in &other.memberships {
        if let Some(g) = group_name(m)
            && !have.contains(&g)
        {
            keeper.memberships.push(Membership::group(g));
        }
    }
    // Biographies are a singleton field (more than one is a 400): keep the keeper's,
    // or take the other's when the keeper has none. Other singletons likewise.
    if keeper.biographies.is_empty() {
        keeper.biographies = other.biographies.clone();
    }
}

/// Keeper first, then the duplicates to delete.
fn pick_keeper<'a>(
    mut list: Vec<&'a Person>,
    w: Option<Want<'_>>,
    managed: &BTreeSet<&str>,
) -> (&'a Person, Vec<&'a Person>) {
    list.sort_by(|a, b| {
        let score = |p: &Person| {
            (
                personal_additions(p, w, managed),
                w.is_some_and(|w| hash_is_current(p, w)),
            )
        };
        score(b)
            .cmp(&score(a))
            .then_with(|| a.resource_name.cmp(&b.resource_name))
    });
    let keeper = list.remove(0);
    (keeper, list)
}

fn update_of(
    directory_id: &str,
    original: &Person,
    merged: Person,
    strict_names: bool,
) -> Option<ContactUpdate> {
    let mask = changed_fields(original, &merged, strict_names);
    if mask.is_empty() {
        return None;
    }
    let mut person = merged;
    person.etag = original.etag.clone();
    Some(ContactUpdate {
        directory_id: directory_id.to_string(),
        resource_name: original.resource_name.clone().unwrap_or_default(),
        etag: original.etag.clone(),
        person,
        update_mask: mask,
    })
}

fn plan_photo(plan: &mut UserPlan, id: &str, d: &DesiredContact, existing: Option<&Person>) {
    let Some(etag) = &d.photo_etag else { return };
    if existing.is_some_and(|p| p.client_data_value(markers::PHOTO) == Some(etag.as_str())) {
        return;
    }
    plan.photo_writes.push(PhotoWrite {
        directory_id: id.to_string(),
        resource_name: existing.and_then(|p| p.resource_name.clone()),
        photo_etag: etag.clone(),
    });
}

/// The fast path for the common case — one managed contact, hash current: true when
/// merging would change nothing. Equivalent to `merge` + `changed_fields` being empty
/// (checked by a `debug_assert!` that the property tests exercise), but without cloning
/// the contact: a no-change run over 5,000 colleagues is mostly this.
fn in_sync(p: &Person, w: Want<'_>, groups: Groups<'_>) -> bool {
    let d = w.d;
    // Notes and addresses (shared lists only, a few contacts) take the full merge.
    if !hash_is_current(p, w) || d.has_list_fields() {
        return false;
    }
    // Markers exactly as `merge` would write them.
    let entries = p.client_data.iter().map(|c| {
        (
            c.key.as_deref().unwrap_or(""),
            c.value.as_deref().unwrap_or(""),
        )
    });
    let photo = p.client_data_value(markers::PHOTO);
    if !markers::are_exactly(entries, &d.directory_id, w.hash, w.tokens, photo) {
        return false;
    }
    // Names (lenient: the hash is current).
    let [name] = p.names.as_slice() else {
        return false;
    };
    let opt = |s: &Option<String>| s.as_deref().unwrap_or("").to_string();
    if trimmed(&name.given_name) != opt(&d.given_name)
        || trimmed(&name.family_name) != opt(&d.family_name)
    {
        return false;
    }
    // In each list, our entries must be exactly the desired ones.
    let own = Ownership::new(p, Some(w));
    let pairs = |v: &[super::mapping::TypedValue]| -> Vec<(String, String)> {
        sorted(
            v.iter()
                .map(|t| (t.value.clone(), t.kind.clone()))
                .collect(),
        )
    };
    let ours_emails = sorted(
        p.email_addresses
            .iter()
            .filter(|e| own.email(e))
            .map(|e| (trimmed(&e.value), trimmed(&e.kind)))
            .collect(),
    );
    if ours_emails != pairs(&d.emails) {
        return false;
    }
    let ours_phones = sorted(
        p.phone_numbers
            .iter()
            .filter(|e| own.phone(e))
            .map(|e| (trimmed(&e.value), trimmed(&e.kind)))
            .collect(),
    );
    if ours_phones != pairs(&d.phones) {
        return false;
    }
    let ours_ids = sorted(
        p.external_ids
            .iter()
            .filter(|e| own.external_id(e))
            .map(|e| (trimmed(&e.value), trimmed(&e.kind)))
            .collect(),
    );
    if ours_ids != pairs(&d.external_ids) {
        return false;
    }
    let ours_user_defined = sorted(
        p.user_defined
            .iter()
            .filter(|u| own.user_defined(u))
            .map(|u| (trimmed(&u.value), trimmed(&u.key)))
            .collect(),
    );
    if ours_user_defined != pairs(&d.user_defined) {
        return false;
    }
    let ours_orgs: Vec<_> = sorted(
        p.organizations
            .iter()
            .filter(|o| own.organization(o))
            .map(|o| {
                (
                    trimmed(&o.name),
                    trimmed(&o.title),
                    trimmed(&o.department),
                    o.current.unwrap_or(false),
                )
            })
            .collect(),
    );
    let want_orgs: Vec<_> = d
        .organization
        .iter()
        .map(|o| (opt(&o.name), opt(&o.title), opt(&o.department), true))
        .collect();
    if ours_orgs != want_orgs {
        return false;
    }
    // Memberships: My Contacts, and of the managed groups exactly the wanted ones.
    let have: BTreeSet<String> = p.memberships.iter().filter_map(group_name).collect();
    have.contains(MY_CONTACTS)
        && groups
            .managed
            .iter()
            .all(|g| have.contains(*g) == groups.wanted.contains(g))
}

/// Plan one target's address book. Pure: same inputs, same plan.
pub fn plan_user(
    target: &TargetUser,
    directory: &DesiredDirectory,
    observed: &[Person],
    opts: &PlanOptions,
) -> UserPlan {
    let managed_groups = target.managed_groups();
    let mut plan = UserPlan {
        target_email: target.email.clone(),
        target_id: target.directory_id.clone(),
        view_hash: view_hash(target, directory, opts),
        ..Default::default()
    };

    // 1. Classify.
    let mut seen = BTreeSet::new();
    let mut managed: BTreeMap<&str, Vec<&Person>> = BTreeMap::new();
    let mut orphans: Vec<&Person> = Vec::new();
    // The target's own contacts' addresses, for `PersonalDuplicates::Skip`.
    let skip = opts.personal_duplicates == PersonalDuplicates::Skip;
    let mut personal_emails: BTreeSet<String> = BTreeSet::new();
    for p in observed {
        if p.is_deleted() {
            continue;
        }
        let Some(rn) = p.resource_name.as_deref() else {
            continue;
        };
        if !seen.insert(rn) {
            continue;
        }
        plan.observed_total += 1;
        if let Some(id) = markers::managed_id(p) {
            managed.entry(id).or_default().push(p);
            plan.managed_observed += 1;
        } else if markers::is_orphan(p) {
            orphans.push(p);
            plan.managed_observed += 1;
        } else {
            plan.personal_observed += 1;
            if skip {
                personal_emails.extend(
                    p.email_addresses
                        .iter()
                        .filter_map(|e| e.value.as_deref())
                        .map(email_key),
                );
            }
        }
    }

    // 3. Selected sources.
    for (id, d) in &directory.contacts {
        if !directory.receives(target, id, d) {
            continue;
        }
        let wanted = target.groups_for(d);
        let group = Groups {
            managed: &managed_groups,
            wanted: &wanted,
        };
        match managed.remove(id.as_str()) {
            None if skip
                && d.emails
                    .iter()
                    .any(|e| personal_emails.contains(&email_key(&e.value))) =>
            {
                plan.skipped_duplicates.push(id.clone());
            }
            None => {
                plan.creates.push(ContactCreate {
                    directory_id: id.clone(),
                });
                plan_photo(&mut plan, id, d, None);
            }
            Some(list) if list.len() == 1 && in_sync(list[0], directory.want(id, d), group) => {
                debug_assert!(
                    update_of(
                        id,
                        list[0],
                        merge(list[0], directory.want(id, d), group),
                        false
                    )
                    .is_none(),
                    "fast path disagrees with merge for {id}"
                );
                plan.unchanged += 1;
                plan_photo(&mut plan, id, d, Some(list[0]));
            }
            Some(list) => {
                let w = directory.want(id, d);
                let (keeper, dups) = pick_keeper(list, Some(w), &managed_groups);
                let mut base = keeper.clone();
                for dup in &dups {
                    absorb(&mut base, dup, Some(w));
                    plan.duplicates_merged
                        .push(dup.resource_name.clone().unwrap_or_default());
                }
                let strict = !hash_is_current(keeper, w);
                let merged = merge(&base, w, group);
                match update_of(id, keeper, merged, strict) {
                    Some(u) => plan.updates.push(u),
                    None => plan.unchanged += 1,
                }
                plan_photo(&mut plan, id, d, Some(keeper));
            }
        }
    }

    // 4. Leavers (including the target themself and orphans).
    let leavers = managed
        .into_iter()
        .map(|(id, list)| (id.to_string(), list))
        .chain(orphans.into_iter().map(|p| (String::new(), vec![p])));
    for (id, list) in leavers {
        // A shared list's contact that left its list (or whose list this person no
        // longer receives) goes: "former colleague" does not describe a supplier.
        let policy = if markers::is_list_id(&id) {
            LeaverPolicy::Delete
        } else {
            opts.leavers
        };
        match policy {
            LeaverPolicy::Delete => {
                plan.deletes.extend(
                    list.iter()
                        .map(|p| p.resource_name.clone().unwrap_or_default()),
                );
            }
            LeaverPolicy::Keep => {
                let (keeper, dups) = pick_keeper(list, None, &managed_groups);
                let mut base = keeper.clone();
                for dup in &dups {
                    absorb(&mut base, dup, None);
                    plan.duplicates_merged
                        .push(dup.resource_name.clone().unwrap_or_default());
                }
                let relabelled = relabel(&base, &managed_groups, &directory.mapping.leaver_label);
                match update_of(&id, keeper, relabelled, true) {
                    Some(u) => plan.relabels.push(u),
                    None => plan.unchanged += 1,
                }
            }
        }
    }

    // 5. Contact cap.
    let after = (plan.observed_total + plan.creates.len())
        .saturating_sub(plan.deletes.len() + plan.duplicates_merged.len());
    if after > opts.contact_cap {
        let reason = format!(
            "{} would have {after} contacts after this sync ({} now, {} to create, {} to delete); \
             the per-account cap is {}. Narrow the source scope or make room, then re-run.",
            target.email,
            plan.observed_total,
            plan.creates.len(),
            plan.deletes.len() + plan.duplicates_merged.len(),
            opts.contact_cap
        );
        let counts = (
            plan.managed_observed,
            plan.personal_observed,
            plan.observed_total,
        );
        plan = UserPlan {
            target_email: plan.target_email,
            target_id: plan.target_id,
            view_hash: plan.view_hash,
            managed_observed: counts.0,
            personal_observed: counts.1,
            observed_total: counts.2,
            skipped: Some(reason),
            ..Default::default()
        };
    }
    plan
}
