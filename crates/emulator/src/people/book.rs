//! One user's address book: contacts, tombstones, groups, and the change-sequence index
//! that connections paging and sync tokens scan. Group membership lives on both sides
//! (the contact's group set and the group's member set) and only the helpers here change
//! it, so `memberships` and `memberCount` can never disagree.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orgsync_wire::people::{
    ContactGroupMembership, EmailAddress, FieldMetadata, GroupClientData, Membership, Name, Person,
    PersonMetadata, PhoneNumber, Source,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::SYNC_TOKEN_TTL_MS;

/// System groups every user has. Contacts may be added only to the first two.
pub const SYSTEM_GROUPS: [(&str, &str); 5] = [
    ("myContacts", "My Contacts"),
    ("starred", "Starred"),
    ("friends", "Friends"),
    ("family", "Family"),
    ("coworkers", "Coworkers"),
];
pub const ADDABLE_SYSTEM_GROUPS: [&str; 2] = ["myContacts", "starred"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contact {
    pub id: u64,
    /// The writable fields only: no resourceName, etag, metadata or memberships.
    pub data: Person,
    pub groups: BTreeSet<String>,
    pub seq: u64,
    pub updated_ms: i64,
    /// The photo uploaded with `updateContactPhoto`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<super::photos::ContactPhoto>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tombstone {
    pub seq: u64,
    pub deleted_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub system: bool,
    pub client_data: Vec<GroupClientData>,
    #[serde(skip)]
    pub members: BTreeSet<u64>,
    pub version: u64,
    pub updated_ms: i64,
    /// Creation order, for listing.
    pub order: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserBook {
    pub user: String,
    pub seq: u64,
    id_base: u64,
    next_id: u64,
    next_group: u64,
    /// Changes whenever every outstanding sync token must expire.
    pub sync_epoch: u64,
    /// Boxed: a contact is ~600 bytes, and B-tree nodes filled in id order are half
    /// empty, so inline values would cost about twice their size.
    pub contacts: BTreeMap<u64, Box<Contact>>,
    pub tombstones: BTreeMap<u64, Tombstone>,
    /// seq → contact id (live or tombstoned); rebuilt on restore.
    #[serde(skip)]
    pub by_seq: BTreeMap<u64, u64>,
    pub groups: BTreeMap<String, Group>,
}

fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0u8]);
    }
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

pub fn parse_contact_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("people/c")?;
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn contact_name(id: u64) -> String {
    format!("people/c{id}")
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn sort_keys(p: &Person) -> (String, String) {
    let n = p.names.first();
    let given = n.and_then(|n| n.given_name.clone()).unwrap_or_default();
    let family = n.and_then(|n| n.family_name.clone()).unwrap_or_default();
    let display = n
        .and_then(|n| n.display_name.clone().or(n.unstructured_name.clone()))
        .unwrap_or_default();
    let first = if given.is_empty() { &display } else { &given };
    let last = if family.is_empty() { &display } else { &family };
    (first.to_lowercase(), last.to_lowercase())
}

/// Etags change with every change (the sequence is unique per user).
pub fn person_etag(id: u64, seq: u64) -> String {
    format!("%{}", STANDARD.encode(person_etag_bytes(id, seq)))
}

/// The bytes a person etag encodes.
pub fn person_etag_bytes(id: u64, seq: u64) -> [u8; 14] {
    let mut b = [0u8; 14];
    b[..2].copy_from_slice(&[0x12, 0x0c]);
    b[2..6].copy_from_slice(&seq.to_be_bytes()[4..]);
    b[6..10].copy_from_slice(&(id as u32).to_be_bytes());
    b[10..].copy_from_slice(&((id >> 32) as u32).to_be_bytes());
    b
}

pub fn source_etag(id: u64, seq: u64) -> String {
    format!("#{}", STANDARD.encode(source_etag_bytes(id, seq)))
}

/// The bytes a source etag encodes.
pub fn source_etag_bytes(id: u64, seq: u64) -> [u8; 6] {
    let h = hash64(&[&id.to_be_bytes(), &seq.to_be_bytes()]);
    let mut b = [0u8; 6];
    b.copy_from_slice(&h.to_be_bytes()[..6]);
    b
}

impl Contact {
    pub fn resource_name(&self) -> String {
        contact_name(self.id)
    }

    pub fn etag(&self) -> String {
        person_etag(self.id, self.seq)
    }

    /// The first-name and last-name sort keys (`sortOrder`), lower-cased; empty when
    /// the contact has no name.
    pub fn sort_keys(&self) -> (String, String) {
        sort_keys(&self.data)
    }

    /// Whether `etag` (person etag or source etag) is current.
    pub fn etag_matches(&self, etag: &str) -> bool {
        etag == self.etag() || etag == source_etag(self.id, self.seq)
    }

    pub fn metadata(&self) -> PersonMetadata {
        PersonMetadata {
            sources: vec![Source {
                source_type: Some("CONTACT".into()),
                id: Some(format!("{:x}", self.id)),
                etag: Some(source_etag(self.id, self.seq)),
                update_time: Some(rfc3339(self.updated_ms)),
            }],
            object_type: Some("PERSON".into()),
            ..Default::default()
        }
    }

    pub fn memberships(&self) -> Vec<Membership> {
        self.groups
            .iter()
            .map(|g| Membership {
                metadata: Some(FieldMetadata {
                    source: Some(Source {
                        source_type: Some("CONTACT".into()),
                        id: Some(format!("{:x}", self.id)),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                contact_group_membership: Some(ContactGroupMembership {
                    contact_group_id: Some(g.clone()),
                    contact_group_resource_name: Some(format!("contactGroups/{g}")),
                }),
                domain_membership: None,
            })
            .collect()
    }
}

impl Group {
    pub fn resource_name(&self) -> String {
        format!("contactGroups/{}", self.id)
    }

    pub fn etag(&self) -> String {
        let h = hash64(&[self.id.as_bytes(), &self.version.to_be_bytes()]);
        STANDARD.encode(&h.to_be_bytes()[..6])
    }

    pub fn formatted_name(&self) -> String {
        if self.system {
            SYSTEM_GROUPS
                .iter()
                .find(|(id, _)| *id == self.id)
                .map(|(_, f)| f.to_string())
                .unwrap_or_else(|| self.name.clone())
        } else {
            self.name.clone()
        }
    }
}

impl UserBook {
    /// A number that identifies this address book for its whole life (renames included).
    pub fn identity(&self) -> u64 {
        self.id_base
    }

    pub fn new(user: &str) -> Self {
        let h = hash64(&[user.as_bytes()]);
        let mut b = UserBook {
            user: user.to_string(),
            seq: 0,
            // 19-digit ids like Google's, distinct per user.
            id_base: 1_000_000_000_000_000_000
                + (h % 8_000_000_000_000_000_000) / 1_000_000 * 1_000_000,
            next_id: 1,
            next_group: 1,
            sync_epoch: rand::random(),
            contacts: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            by_seq: BTreeMap::new(),
            groups: BTreeMap::new(),
        };
        for (i, (id, _)) in SYSTEM_GROUPS.iter().enumerate() {
            b.groups.insert(
                id.to_string(),
                Group {
                    id: id.to_string(),
                    name: id.to_string(),
                    system: true,
                    client_data: Vec::new(),
                    members: BTreeSet::new(),
                    version: 1,
                    updated_ms: 0,
                    order: i as u64,
                },
            );
        }
        b.next_group = SYSTEM_GROUPS.len() as u64;
        b
    }

    /// Rebuild the skipped (derived) fields after deserialising.
    pub fn rebuild_indexes(&mut self) {
        self.by_seq.clear();
        for g in self.groups.values_mut() {
            g.members.clear();
        }
        for c in self.contacts.values_mut() {
            self.by_seq.insert(c.seq, c.id);
            for g in &c.groups {
                if let Some(group) = self.groups.get_mut(g) {
                    group.members.insert(c.id);
                }
            }
        }
        for (id, t) in &self.tombstones {
            self.by_seq.insert(t.seq, *id);
        }
    }

    pub fn new_sync_epoch(&mut self) {
        let mut e: u64 = rand::random();
        if e == self.sync_epoch {
            e = e.wrapping_add(1);
        }
        self.sync_epoch = e;
    }

    pub fn live_count(&self) -> usize {
        self.contacts.len()
    }

    pub fn stats(&self) -> super::BookStats {
        super::BookStats {
            contacts: self.contacts.len(),
            tombstones: self.tombstones.len(),
            user_groups: self.groups.values().filter(|g| !g.system).count(),
        }
    }

    fn bump(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Record a change to contact `id`: new sequence, new etag, new update time.
    pub fn touch(&mut self, id: u64, now_ms: i64) {
        let seq = self.bump();
        if let Some(c) = self.contacts.get_mut(&id) {
            self.by_seq.remove(&c.seq);
            c.seq = seq;
            c.updated_ms = now_ms;
            self.by_seq.insert(seq, id);
        }
    }

    /// Add a new contact (data already validated) in `groups`; returns its id.
    pub fn insert(&mut self, data: Person, groups: BTreeSet<String>, now_ms: i64) -> u64 {
        let id = self.id_base + self.next_id;
        self.next_id += 1;
        let seq = self.bump();
        for g in &groups {
            if let Some(group) = self.groups.get_mut(g) {
                group.members.insert(id);
            }
        }
        let c = Contact {
            id,
            data,
            groups,
            seq,
            updated_ms: now_ms,
            photo: None,
        };
        self.contacts.insert(id, Box::new(c));
        self.by_seq.insert(seq, id);
        id
    }

    /// Delete a contact, leaving a tombstone. Returns whether it existed.
    pub fn remove(&mut self, id: u64, now_ms: i64) -> bool {
        let Some(c) = self.contacts.remove(&id) else {
            return false;
        };
        self.by_seq.remove(&c.seq);
        for g in &c.groups {
            if let Some(group) = self.groups.get_mut(g) {
                group.members.remove(&id);
            }
        }
        let seq = self.bump();
        self.tombstones.insert(
            id,
            Tombstone {
                seq,
                deleted_ms: now_ms,
            },
        );
        self.by_seq.insert(seq, id);
        self.prune_tombstones(now_ms);
        true
    }

    /// Tombstones older than the token lifetime can never be needed: any valid token
    /// was issued after them.
    fn prune_tombstones(&mut self, now_ms: i64) {
        let cutoff = now_ms - SYNC_TOKEN_TTL_MS - 3_600_000;
        if self.tombstones.len() < 1024 {
            return;
        }
        let old: Vec<(u64, u64)> = self
            .tombstones
            .iter()
            .filter(|(_, t)| t.deleted_ms < cutoff)
            .map(|(id, t)| (*id, t.seq))
            .collect();
        for (id, seq) in old {
            self.tombstones.remove(&id);
            self.by_seq.remove(&seq);
        }
    }

    /// Replace contact `id`'s group set, keeping both sides consistent. Does not touch.
    pub fn set_groups(&mut self, id: u64, new: BTreeSet<String>) {
        let Some(c) = self.contacts.get_mut(&id) else {
            return;
        };
        for g in c.groups.difference(&new) {
            if let Some(group) = self.groups.get_mut(g) {
                group.members.remove(&id);
            }
        }
        for g in new.difference(&c.groups) {
            if let Some(group) = self.groups.get_mut(g) {
                group.members.insert(id);
            }
        }
        c.groups = new;
    }

    /// A new user group id: 16 hex digits, deterministic per user.
    pub fn new_group_id(&mut self) -> (String, u64) {
        loop {
            self.next_group += 1;
            let h = hash64(&[self.user.as_bytes(), &self.next_group.to_be_bytes()]);
            let id = format!("{:016x}", h);
            if !self.groups.contains_key(&id) {
                return (id, self.next_group);
            }
        }
    }

    /// The group a `contactGroups/{id}` name refers to.
    pub fn group_id_of(&self, resource_name: &str) -> Option<String> {
        let id = resource_name.strip_prefix("contactGroups/")?;
        self.groups.contains_key(id).then(|| id.to_string())
    }

    /// Deterministic personal contacts (see [`super::seed_users`]).
    pub fn seed_personal(
        &mut self,
        seed: u64,
        index: usize,
        colleagues: &[String],
        n: usize,
        now_ms: i64,
    ) {
        const GIVEN: [&str; 8] = [
            "Maya", "Jonas", "Priya", "Tomás", "Aiko", "Lena", "Omar", "Grace",
        ];
        const FAMILY: [&str; 8] = [
            "Okafor",
            "Lindqvist",
            "Sharma",
            "García",
            "Tanaka",
            "Müller",
            "Haddad",
            "Hopper",
        ];
        for i in 0..n {
            let h = hash64(&[
                &seed.to_be_bytes(),
                self.user.as_bytes(),
                &(i as u64).to_be_bytes(),
            ]);
            let given = GIVEN[(h % 8) as usize];
            let family = FAMILY[((h >> 8) % 8) as usize];
            let mut p = Person {
                names: vec![Name {
                    given_name: Some(given.into()),
                    family_name: Some(family.into()),
                    display_name: Some(format!("{given} {family}")),
                    ..Default::default()
                }],
                ..Default::default()
            };
            match i % 3 {
                // A colleague's work address, saved by hand.
                0 if colleagues.len() > 1 => {
                    let other = (index + 1 + (h >> 16) as usize % (colleagues.len() - 1))
                        % colleagues.len();
                    p.email_addresses = vec![EmailAddress {
                        value: Some(colleagues[other].clone()),
                        kind: Some("work".into()),
                        ..Default::default()
                    }];
                }
                0 => {
                    p.email_addresses = vec![EmailAddress {
                        value: Some(format!(
                            "{}.{}@personal.example.net",
                            given.to_lowercase(),
                            (h >> 20) % 1000
                        )),
                        kind: Some("home".into()),
                        ..Default::default()
                    }];
                }
                // Phone only.
                1 => {
                    p.phone_numbers = vec![PhoneNumber {
                        value: Some(format!(
                            "+1 555 01{:02} {:04}",
                            (h >> 24) % 100,
                            (h >> 32) % 10_000
                        )),
                        kind: Some("mobile".into()),
                        ..Default::default()
                    }];
                }
                // Names only.
                _ => {}
            }
            self.insert(p, BTreeSet::from(["myContacts".to_string()]), now_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memberships_and_member_counts_stay_consistent() {
        let mut b = UserBook::new("a@example.com");
        let id = b.insert(
            Person::default(),
            BTreeSet::from(["myContacts".to_string()]),
            0,
        );
        assert!(b.groups["myContacts"].members.contains(&id));
        b.set_groups(id, BTreeSet::from(["starred".to_string()]));
        assert!(!b.groups["myContacts"].members.contains(&id));
        assert!(b.groups["starred"].members.contains(&id));
        assert!(b.remove(id, 0));
        assert!(b.groups["starred"].members.is_empty());
        assert_eq!(b.tombstones.len(), 1);
    }

    #[test]
    fn etag_changes_on_every_touch() {
        let mut b = UserBook::new("a@example.com");
        let id = b.insert(Person::default(), BTreeSet::new(), 0);
        let e1 = b.contacts[&id].etag();
        b.touch(id, 1);
        let e2 = b.contacts[&id].etag();
        assert_ne!(e1, e2);
        assert!(e1.starts_with('%'));
        assert!(b.contacts[&id].etag_matches(&e2));
        assert!(!b.contacts[&id].etag_matches(&e1));
    }

    #[test]
    fn snapshot_round_trip_rebuilds_indexes() {
        let mut b = UserBook::new("a@example.com");
        let id = b.insert(
            Person::default(),
            BTreeSet::from(["myContacts".to_string()]),
            0,
        );
        let gone = b.insert(Person::default(), BTreeSet::new(), 0);
        b.remove(gone, 0);
        let json = serde_json::to_string(&b).unwrap();
        let mut back: UserBook = serde_json::from_str(&json).unwrap();
        back.rebuild_indexes();
        assert_eq!(back.by_seq, b.by_seq);
        assert!(back.groups["myContacts"].members.contains(&id));
    }

    #[test]
    fn contact_names_parse_strictly() {
        assert_eq!(parse_contact_name("people/c123"), Some(123));
        assert_eq!(parse_contact_name("people/123"), None);
        assert_eq!(parse_contact_name("people/c"), None);
        assert_eq!(parse_contact_name("people/c12x"), None);
        assert_eq!(parse_contact_name("people/c99999999999999999999999"), None);
    }
}
