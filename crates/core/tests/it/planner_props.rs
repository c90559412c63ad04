//! Planner tests: targeted regressions named after the defects of the baseline script
//! (see `docs/ARCHITECTURE.md`) and of similar tools (public issues cited at each test),
//! and property tests over random directories and address books.
//!
//! The property tests drive the planner with a pure in-memory applier ([`Book`]) that
//! behaves like the People API as far as the planner can tell: creates get fresh
//! resource names and etags, updates replace exactly the masked fields (and check the
//! etag), deletes remove.

use std::collections::{BTreeMap, BTreeSet};

use orgsync_core::contacts::{
    DesiredDirectory, LeaverPolicy, MappingOptions, MarkedContact, PersonalDuplicates, PlanOptions,
    TargetUser, UserPlan, fresh_creates_landed, markers, plan_user, view_hash,
};
use orgsync_core::scope::{DirectorySnapshot, GroupMembership, ScopeRules};
use orgsync_core::users::{
    DeprovisionPolicy, ObservedAppUser, UsersPlan, UsersPlanOptions, app_user_desired, plan_users,
};
use orgsync_core::{GuardVerdict, SafetyGuard};
use orgsync_wire::directory::{User, UserName, UserOrganization, UserPhone};
use orgsync_wire::people::{
    Biography, ClientData, EmailAddress, FieldMetadata, MY_CONTACTS, Membership, Name, Person,
    PersonMetadata, PhoneNumber, Source,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// `n` cases, and the seeds of past failures read from (and new ones written to)
/// `planner_props.proptest-regressions` next to this file. Proptest's default looks for
/// `proptest-regressions/planner_props.txt` beside the nearest `main.rs`, which is not
/// where the file has always been.
pub(crate) fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::with_cases(n)
    }
}

const GROUP: &str = "contactGroups/managed1";

// ---------------------------------------------------------------------------------
// Helpers

pub(crate) fn user(
    id: &str,
    email: &str,
    given: &str,
    family: &str,
    phones: &[(&str, &str)],
) -> User {
    User {
        id: Some(id.into()),
        primary_email: Some(email.into()),
        name: Some(UserName {
            given_name: Some(given.into()),
            family_name: Some(family.into()),
            full_name: Some(format!("{given} {family}")),
            display_name: None,
        }),
        phones: Some(
            phones
                .iter()
                .map(|(t, v)| UserPhone {
                    value: v.to_string(),
                    kind: Some(t.to_string()),
                    custom_type: None,
                    primary: None,
                })
                .collect(),
        ),
        organizations: Some(vec![UserOrganization {
            name: Some("ACME".into()),
            title: Some("Engineer".into()),
            department: Some("R&D".into()),
            primary: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn org() -> Vec<User> {
    vec![
        user(
            "1",
            "ada@x.com",
            "Ada",
            "Lovelace",
            &[("work", "+1 555 0001")],
        ),
        user(
            "2",
            "bob@x.com",
            "Bob",
            "Builder",
            &[("mobile", "+1 555 0002")],
        ),
        user("3", "cy@x.com", "Cy", "Press", &[]),
        user("4", "di@x.com", "Di", "Rect", &[("work", "+1 555 0004")]),
        user("5", "ed@x.com", "Ed", "Itor", &[("work", "+1 555 0005")]),
    ]
}

fn directory(users: &[User], mapping: &MappingOptions) -> DesiredDirectory {
    DesiredDirectory::build(
        &DirectorySnapshot::select(users, &ScopeRules::default(), &GroupMembership::new()),
        mapping,
    )
}

fn target(id: &str) -> TargetUser {
    TargetUser {
        directory_id: id.into(),
        email: format!("{id}@x.com"),
        managed_group: Some(GROUP.into()),
        ..Default::default()
    }
}

pub(crate) fn personal(rn: &str, email: Option<&str>, phone: Option<&str>) -> Person {
    Person {
        resource_name: Some(rn.into()),
        etag: Some(format!("etag-{rn}")),
        names: vec![Name {
            given_name: Some("Personal".into()),
            ..Default::default()
        }],
        email_addresses: email
            .map(|e| EmailAddress {
                value: Some(e.into()),
                kind: Some("home".into()),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        phone_numbers: phone
            .map(|p| PhoneNumber {
                value: Some(p.into()),
                kind: Some("mobile".into()),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        memberships: vec![Membership::group(MY_CONTACTS)],
        ..Default::default()
    }
}

/// An in-memory address book that applies plans like the People API would.
#[derive(Debug, Clone, Default)]
pub(crate) struct Book {
    pub(crate) contacts: BTreeMap<String, Person>,
    next: u64,
}

impl Book {
    pub(crate) fn insert(&mut self, mut p: Person) -> String {
        self.next += 1;
        let rn = format!("people/c{}", self.next);
        p.resource_name = Some(rn.clone());
        p.etag = Some(format!("e{}", self.next));
        self.contacts.insert(rn.clone(), p);
        rn
    }

    pub(crate) fn list(&self) -> Vec<Person> {
        self.contacts.values().cloned().collect()
    }

    pub(crate) fn apply(&mut self, plan: &UserPlan, dir: &DesiredDirectory, t: &TargetUser) {
        for c in &plan.creates {
            let p = match &t.managed_group {
                Some(_) => dir.new_person_for(&c.directory_id, t),
                None => dir.new_person(&c.directory_id, GROUP),
            }
            .expect("a create of a known source");
            self.insert(p);
        }
        for u in plan.updates.iter().chain(&plan.relabels) {
            self.next += 1;
            let cur = self
                .contacts
                .get_mut(&u.resource_name)
                .expect("update of a missing contact");
            assert_eq!(cur.etag, u.etag, "stale etag in plan");
            assert_eq!(u.person.etag, u.etag);
            for field in &u.update_mask {
                match field.as_str() {
                    "names" => cur.names = u.person.names.clone(),
                    "emailAddresses" => cur.email_addresses = u.person.email_addresses.clone(),
                    "phoneNumbers" => cur.phone_numbers = u.person.phone_numbers.clone(),
                    "organizations" => cur.organizations = u.person.organizations.clone(),
                    "externalIds" => cur.external_ids = u.person.external_ids.clone(),
                    "userDefined" => cur.user_defined = u.person.user_defined.clone(),
                    "clientData" => cur.client_data = u.person.client_data.clone(),
                    "biographies" => cur.biographies = u.person.biographies.clone(),
                    "addresses" => match u.person.extra.get("addresses") {
                        Some(a) => {
                            cur.extra.insert("addresses".into(), a.clone());
                        }
                        None => {
                            cur.extra.remove("addresses");
                        }
                    },
                    "memberships" => {
                        assert!(!u.person.memberships.is_empty(), "memberships emptied");
                        cur.memberships = u.person.memberships.clone()
                    }
                    other => panic!("unexpected mask field {other}"),
                }
            }
            cur.etag = Some(format!("e{}", self.next));
        }
        for rn in plan.all_deletes() {
            assert!(
                self.contacts.remove(rn).is_some(),
                "delete of a missing contact"
            );
        }
    }

    pub(crate) fn managed_by_id(&self) -> BTreeMap<String, Vec<&Person>> {
        let mut m: BTreeMap<String, Vec<&Person>> = BTreeMap::new();
        for p in self.contacts.values() {
            if let Some(id) = markers::managed_id(p) {
                m.entry(id.to_string()).or_default().push(p);
            }
        }
        m
    }
}

fn sync(book: &mut Book, t: &TargetUser, dir: &DesiredDirectory, opts: &PlanOptions) -> UserPlan {
    let plan = plan_user(t, dir, &book.list(), opts);
    book.apply(&plan, dir, t);
    plan
}

fn phones_of(p: &Person) -> Vec<(String, String)> {
    let mut v: Vec<_> = p
        .phone_numbers
        .iter()
        .map(|x| {
            (
                x.value.clone().unwrap_or_default(),
                x.kind.clone().unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

fn no_writes(plan: &UserPlan) -> bool {
    plan.write_count() == 0
}

// ---------------------------------------------------------------------------------
// Targeted regressions (the baseline script's defects; similar tools' public issues)

#[test]
fn personal_contact_with_colleague_email_is_never_deleted() {
    let dir = directory(&org(), &MappingOptions::default());
    let mut book = Book::default();
    let colleague = book.insert(personal("x", Some("ada@x.com"), None));
    let plan = sync(&mut book, &target("1"), &dir, &PlanOptions::default());
    assert!(!plan.deletes.contains(&colleague));
    assert!(book.contacts.contains_key(&colleague));
    // Even when Ada leaves the directory.
    let dir = directory(&org()[1..], &MappingOptions::default());
    let plan = sync(&mut book, &target("2"), &dir, &PlanOptions::default());
    assert!(book.contacts.contains_key(&colleague));
    assert!(!plan.deletes.contains(&colleague));
}

#[test]
fn contact_without_email_is_never_deleted() {
    let dir = directory(&org(), &MappingOptions::default());
    let mut book = Book::default();
    let phone_only = book.insert(personal("x", None, Some("+1 555 0002")));
    let before = book.contacts[&phone_only].clone();
    sync(&mut book, &target("1"), &dir, &PlanOptions::default());
    assert_eq!(book.contacts[&phone_only], before);
}

#[test]
fn orgsync_id_without_source_is_personal() {
    let dir = directory(&org(), &MappingOptions::default());
    let mut book = Book::default();
    let mut p = personal("x", Some("gone@x.com"), None);
    p.client_data = vec![ClientData::new(markers::ID, "999")];
    let fake = book.insert(p.clone());
    let mut q = personal("y", None, None);
    q.client_data = vec![
        ClientData::new(markers::SOURCE, "Orgsync-other"),
        ClientData::new(markers::ID, "1"),
    ];
    let other_tool = book.insert(q);
    let plan = plan_user(&target("1"), &dir, &book.list(), &PlanOptions::default());
    assert_eq!(plan.personal_observed, 2);
    assert!(plan.all_deletes().all(|rn| rn != fake && rn != other_tool));
    assert!(
        plan.updates
            .iter()
            .all(|u| u.resource_name != fake && u.resource_name != other_tool)
    );
}

#[test]
fn first_sync_creates_everyone_but_the_target_with_markers_and_groups() {
    let dir = directory(&org(), &MappingOptions::default());
    let plan = plan_user(&target("3"), &dir, &[], &PlanOptions::default());
    let ids: Vec<_> = plan
        .creates
        .iter()
        .map(|c| c.directory_id.as_str())
        .collect();
    assert_eq!(ids, ["1", "2", "4", "5"], "nobody receives themselves");
    let ada = &dir
        .new_person(&plan.creates[0].directory_id, GROUP)
        .unwrap();
    assert_eq!(ada.client_data_value(markers::SOURCE), Some("orgsync"));
    assert_eq!(ada.client_data_value(markers::ID), Some("1"));
    assert_eq!(ada.client_data_value(markers::HASH), dir.hash_of("1"));
    assert_eq!(
        ada.group_resource_names().collect::<Vec<_>>(),
        [MY_CONTACTS, GROUP]
    );
    assert_eq!(ada.names[0].family_name.as_deref(), Some("Lovelace"));
    assert_eq!(ada.organizations[0].title.as_deref(), Some("Engineer"));
}

#[test]
fn planned_creates_carry_the_same_markers_as_a_fresh_mapping() {
    // Creates are built from hashes precomputed once per run; they must be the contact
    // `to_new_person` would build from scratch, marker for marker.
    let dir = directory(&org(), &MappingOptions::default());
    let plan = plan_user(&target("3"), &dir, &[], &PlanOptions::default());
    assert!(!plan.creates.is_empty());
    for c in &plan.creates {
        assert_eq!(
            dir.new_person(&c.directory_id, GROUP).unwrap(),
            dir.contacts[&c.directory_id].to_new_person(GROUP)
        );
    }
}

#[test]
fn the_serialised_create_is_the_new_person_without_its_memberships() {
    // The executor sends `new_person_json` with the target's memberships spliced in; it
    // must say exactly what `new_person` says.
    let dir = directory(&org(), &MappingOptions::default());
    for id in dir.contacts.keys() {
        let json = dir.new_person_json(id).unwrap();
        assert!(!json.contains("memberships"), "{json}");
        let mut parsed: Person = serde_json::from_str(json).unwrap();
        parsed.memberships = vec![Membership::group(MY_CONTACTS), Membership::group(GROUP)];
        assert_eq!(parsed, dir.new_person(id, GROUP).unwrap());
    }
    assert!(dir.new_person_json("no-such-id").is_none());
}

#[test]
fn unchanged_directory_plans_zero_writes() {
    let dir = directory(&org(), &MappingOptions::default());
    let mut book = Book::default();
    book.insert(personal("x", Some("ada@x.com"), None));
    sync(&mut book, &target("1"), &dir, &PlanOptions::default());
    let again = plan_user(&target("1"), &dir, &book.list(), &PlanOptions::default());
    assert!(no_writes(&again), "{again:#?}");
    assert_eq!(again.unchanged, 4);
}

#[test]
fn server_decorations_do_not_cause_spurious_updates() {
    // https://github.com/fleapower/Google-Script-Contacts-Sync/issues/14: "updates"
    // caused by metadata and formatting differences only.
    let dir = directory(&org(), &MappingOptions::default());
    let mut book = Book::default();
    sync(&mut book, &target("1"), &dir, &PlanOptions::default());
    for p in book.contacts.values_mut() {
        p.metadata = Some(PersonMetadata {
            sources: vec![Source {
                source_type: Some("CONTACT".into()),
                id: Some("abc".into()),
                etag: Some("#x".into()),
                update_time: Some("2026-01-01T00:00:00Z".into()),
            }],
            object_type: Some("PERSON".into()),
            ..Default::default()
        });
        let meta = Some(FieldMetadata {
            primary: Some(true),
            source: Some(Source {
                source_type: Some("CONTACT".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        for n in &mut p.names {
            n.metadata = meta.clone();
            n.display_name = Some("Display".into());
            n.display_name_last_first = Some("Last, First".into());
            n.unstructured_name = Some("Google Rewrote This".into());
        }
        for e in &mut p.email_addresses {
            e.metadata = meta.clone();
            e.formatted_type = Some("Work".into());
        }
        for ph in &mut p.phone_numbers {
            ph.canonical_form = Some("+15550001".into());
            ph.formatted_type = Some("Work".into());
            ph.metadata = meta.clone();
        }
        for m in &mut p.memberships {
            if let Some(g) = m.contact_group_membership.as_mut() {
                g.contact_group_id = g
                    .contact_group_resource_name
                    .clone()
                    .map(|r| r[14..].to_string());
            }
        }
        for c in &mut p.client_data {
            c.metadata = meta.clone();
        }
        p.photos = vec![Default::default()];
        p.client_data.reverse();
        p.phone_numbers.reverse();
    }
    let plan = plan_user(&target("1"), &dir, &book.list(), &PlanOptions::default());
    assert!(no_writes(&plan), "{plan:#?}");
}

#[test]
fn rename_updates_instead_of_recreating() {
    let mut users = org();
    let dir = directory(&users, &MappingOptions::default());
    let mut book = Book::default();
    sync(&mut book, &target("1"), &dir, &PlanOptions::default());
    let rn_before: BTreeSet<String> = book.contacts.keys().cloned().collect();
    users[1].primary_email = Some("robert@x.com".into());
    users[1].name.as_mut().unwrap().given_name = Some("Robert".into());
    let dir = directory(&users, &MappingOptions::default());
    let plan = sync(&mut book, &target("1"), &dir, &PlanOptions::default());
    assert!(plan.creates.is_empty() && plan.deletes.is_empty());
    assert_eq!(plan.updates.len(), 1);
    let mask = &plan.updates[0].update_mask;
    assert!(mask.contains(&"emailAddresses".into()) && mask.contains(&"names".into()));
    assert!(
        !mask.contains(&"phoneNumbers".into()),
        "only changed fields: {mask:?}"
    );
    let rn_after: BTreeSet<String> = book.contacts.keys().cloned().collect();
    assert_eq!(rn_before, rn_after, "same contacts, same resource names");
    let bob = book.managed_by_id()["2"][0].clone();
    let emails: Vec<_> = bob
        .email_addresses
        .iter()
        .filter_map(|e| e.value.clone())
        .collect();
    assert_eq!(
        emails,
        ["robert@x.com"],
        "old address replaced, not kept alongside"
    );
}

#[test]
fn changed_phone_replaces_the_old_one_and_removed_mobile_is_removed() {
    // https://github.com/grahamr975/EWS-Office365-Contact-Sync/issues/112 (old and new
    // shown) and .../issues/49 (removed mobiles not propagated).
    let mut users = org();
    users[0].phones = Some(vec![
        UserPhone {
            value: "+1 555 0001".into(),
            kind: Some("work".into()),
            ..Default::default()
        },
        UserPhone {
            value: "+1 555 9001".into(),
            kind: Some("mobile".into()),
            ..Default::default()
        },
    ]);
    let mut book = Book::default();
    sync(
        &mut book,
        &target("2"),
        &directory(&users, &MappingOptions::default()),
        &PlanOptions::default(),
    );
    users[0].phones = Some(vec![UserPhone {
        value: "+1 555 7777".into(),
        kind: Some("work".into()),
        ..Default::default()
    }]);
    let plan = sync(
        &mut book,
        &target("2"),
        &directory(&users, &MappingOptions::default()),
        &PlanOptions::default(),
    );
    assert_eq!(plan.updates.len(), 1);
    let ada = book.managed_by_id()["1"][0].clone();
    assert_eq!(
        phones_of(&ada),
        [("+1 555 7777".to_string(), "work".to_string())]
    );
}

#[test]
fn personal_home_phone_and_note_survive_an_update() {
    let mut users = org();
    let mut book = Book::default();
    sync(
        &mut book,
        &target("2"),
        &directory(&users, &MappingOptions::default()),
        &PlanOptions::default(),
    );
    let rn = book.managed_by_id()["1"][0].resource_name.clone().unwrap();
    {
        let ada = book.contacts.get_mut(&rn).unwrap();
        ada.phone_numbers.push(PhoneNumber {
            value: Some("+44 1 home".into()),
            kind: Some("home".into()),
            ..Default::default()
        });
        // A colleague's own work number the person typed in: not ours either.
        ada.phone_numbers.push(PhoneNumber {
            value: Some("+1 555 4242".into()),
            kind: Some("work".into()),
            ..Default::default()
        });
        ada.email_addresses.push(EmailAddress {
            value: Some("ada@home.example".into()),
            kind: Some("home".into()),
            ..Default::default()
        });
        ada.biographies = vec![Biography {
            value: Some("met at the conference".into()),
            ..Default::default()
        }];
        ada.client_data.push(ClientData::new("other.app", "v"));
        ada.memberships
            .push(Membership::group("contactGroups/friends"));
    }
    // The person's edits alone cause no write.
    let plan = plan_user(
        &target("2"),
        &directory(&users, &MappingOptions::default()),
        &book.list(),
        &PlanOptions::default(),
    );
    assert!(no_writes(&plan), "{plan:#?}");

    users[0].organizations.as_mut().unwrap()[0].title = Some("Chief Analyst".into());
    users[0].phones.as_mut().unwrap()[0].value = "+1 555 0101".into();
    let plan = sync(
        &mut book,
        &target("2"),
        &directory(&users, &MappingOptions::default()),
        &PlanOptions::default(),
    );
    assert_eq!(plan.updates.len(), 1);
    let ada = &book.contacts[&rn];
    assert_eq!(
        phones_of(ada),
        [
            ("+1 555 0101".to_string(), "work".to_string()),
            ("+1 555 4242".to_string(), "work".to_string()),
            ("+44 1 home".to_string(), "home".to_string()),
        ]
    );
    assert!(
        ada.email_addresses
            .iter()
            .any(|e| e.value.as_deref() == Some("ada@home.example"))
    );
    assert_eq!(ada.biographies.len(), 1);
    assert_eq!(ada.client_data_value("other.app"), Some("v"));
    assert!(
        ada.group_resource_names()
            .any(|g| g == "contactGroups/friends")
    );
    assert_eq!(ada.organizations.len(), 1);
    assert_eq!(ada.organizations[0].title.as_deref(), Some("Chief Analyst"));
}

#[test]
fn missing_owned_marker_falls_back_to_work_types() {
    let mut users = org();
    let mut book = Book::default();
    sync(
        &mut book,
        &target("2"),
        &directory(&users, &MappingOptions::default()),
        &PlanOptions::default(),
    );
    let rn = book.managed_by_id()["1"][0].resource_name.clone().unwrap();
    {
        let ada = book.contacts.get_mut(&rn).unwrap();
        ada.client_data
            .retain(|c| c.key.as_deref() != Some(markers::OWNED));
        ada.phone_numbers.push(PhoneNumber {
            value: Some("+44 1 home".into()),
            kind: Some("home".into()),
            ..Default::default()
        });
    }
    users[0].phones.as_mut().unwrap()[0].value = "+1 555 0101".into();
    sync(
        &mut book,
        &target("2"),
        &directory(&users, &MappingOptions::default()),
        &PlanOptions::default(),
    );
    assert_eq!(
        phones_of(&book.contacts[&rn]),
        [
            ("+1 555 0101".to_string(), "work".to_string()),
            ("+44 1 home".to_string(), "home".to_string()),
        ]
    );
    assert!(
        book.contacts[&rn]
            .client_data_value(markers::OWNED)
            .is_some(),
        "marker restored"
    );
}

#[test]
fn duplicates_are_merged_keeping_personal_additions() {
    let dir = directory(&org(), &MappingOptions::default());
    let mut book = Book::default();
    sync(&mut book, &target("2"), &dir, &PlanOptions::default());
    // A crash after batchCreate but before its response was recorded: created again.
    let mut dup = book.managed_by_id()["1"][0].clone();
    dup.phone_numbers.push(PhoneNumber {
        value: Some("+44 1 home".into()),
        kind: Some("home".into()),
        ..Default::default()
    });
    let dup_rn = book.insert(dup);
    let original_rn = book.managed_by_id()["1"]
        .iter()
        .map(|p| p.resource_name.clone().unwrap())
        .find(|r| *r != dup_rn)
        .unwrap();
    let mut twin = book.contacts[&original_rn].clone();
    twin.email_addresses.push(EmailAddress {
        value: Some("ada@home.example".into()),
        kind: Some("home".into()),
        ..Default::default()
    });
    let twin_rn = book.insert(twin);
    let plan = sync(&mut book, &target("2"), &dir, &PlanOptions::default());
    assert_eq!(plan.duplicates_merged.len(), 2);
    assert!(plan.creates.is_empty() && plan.deletes.is_empty());
    let left = book.managed_by_id()["1"].clone();
    assert_eq!(left.len(), 1, "exactly one contact per colleague");
    let ada = left[0];
    assert!([dup_rn, twin_rn].contains(ada.resource_name.as_ref().unwrap()));
    assert!(
        ada.phone_numbers
            .iter()
            .any(|p| p.value.as_deref() == Some("+44 1 home"))
    );
    assert!(
        ada.email_addresses
            .iter()
            .any(|e| e.value.as_deref() == Some("ada@home.example"))
    );
    assert!(no_writes(&plan_user(
        &target("2"),
        &dir,
        &book.list(),
        &PlanOptions::default()
    )));
}

#[test]
fn over_100_contacts_no_duplicates() {
    // The baseline script never paged `connections.list`: contacts beyond the first page
    // (100) looked missing and were created again.
    let users: Vec<User> = (0..150)
        .map(|i| {
            user(
                &format!("{i}"),
                &format!("u{i}@x.com"),
                "U",
                &format!("{i}"),
                &[],
            )
        })
        .collect();
    let dir = directory(&users, &MappingOptions::default());
    let mut book = Book::default();
    for i in 0..120 {
        book.insert(personal(
            &format!("{i}"),
            Some(&format!("friend{i}@y.com")),
            None,
        ));
    }
    let first = sync(&mut book, &target("0"), &dir, &PlanOptions::default());
    assert_eq!(first.creates.len(), 149);
    let again = plan_user(&target("0"), &dir, &book.list(), &PlanOptions::default());
    assert!(no_writes(&again));
    assert_eq!(again.personal_observed, 120);
}

#[test]
fn leaver_is_deleted_by_default() {
    let mut book = Book::default();
    sync(
        &mut book,
        &target("1"),
        &directory(&org(), &MappingOptions::default()),
        &PlanOptions::default(),
    );
    let gone_rn = book.managed_by_id()["5"][0].resource_name.clone().unwrap();
    let plan = sync(
        &mut book,
        &target("1"),
        &directory(&org()[..4], &MappingOptions::default()),
        &PlanOptions::default(),
    );
    assert_eq!(plan.deletes, [gone_rn]);
    assert!(!book.managed_by_id().contains_key("5"));
}

#[test]
fn kept_leaver_is_relabelled_and_restored_on_return() {
    let opts = PlanOptions {
        leavers: LeaverPolicy::Keep,
        ..Default::default()
    };
    let full = directory(&org(), &MappingOptions::default());
    let mut book = Book::default();
    sync(&mut book, &target("1"), &full, &opts);
    let rn = book.managed_by_id()["5"][0].resource_name.clone().unwrap();
    let plan = sync(
        &mut book,
        &target("1"),
        &directory(&org()[..4], &MappingOptions::default()),
        &opts,
    );
    assert!(plan.deletes.is_empty());
    assert_eq!(plan.relabels.len(), 1);
    let ed = &book.contacts[&rn];
    assert_eq!(
        ed.names[0].family_name.as_deref(),
        Some("Itor (former colleague)")
    );
    assert_eq!(ed.client_data_value(markers::STATE), Some("left"));
    assert_eq!(ed.group_resource_names().collect::<Vec<_>>(), [MY_CONTACTS]);
    // Relabelled once only.
    let again = plan_user(
        &target("1"),
        &directory(&org()[..4], &MappingOptions::default()),
        &book.list(),
        &opts,
    );
    assert!(no_writes(&again), "{again:#?}");
    // Ed comes back: same contact, label gone, back in the group.
    let plan = sync(&mut book, &target("1"), &full, &opts);
    assert_eq!(plan.updates.len(), 1);
    assert!(plan.creates.is_empty());
    let ed = &book.contacts[&rn];
    assert_eq!(ed.names[0].family_name.as_deref(), Some("Itor"));
    assert_eq!(ed.client_data_value(markers::STATE), None);
    assert!(ed.group_resource_names().any(|g| g == GROUP));
}

#[test]
fn scope_change_removes_contacts_of_users_now_out_of_scope() {
    // https://github.com/EvotecIT/O365Synchronizer/issues/21: narrowing the filter removes
    // previously synced contacts — planned explicitly, and counted by the guard.
    let mut users = org();
    for (i, u) in users.iter_mut().enumerate() {
        u.org_unit_path = Some(if i < 3 {
            "/Sales".into()
        } else {
            "/Eng".into()
        });
    }
    let mut book = Book::default();
    sync(
        &mut book,
        &target("1"),
        &directory(&users, &MappingOptions::default()),
        &PlanOptions::default(),
    );
    let narrow = ScopeRules {
        org_units: vec!["/Sales".into()],
        ..Default::default()
    };
    let dir = DesiredDirectory::build(
        &DirectorySnapshot::select(&users, &narrow, &GroupMembership::new()),
        &MappingOptions::default(),
    );
    let plan = plan_user(&target("1"), &dir, &book.list(), &PlanOptions::default());
    assert_eq!(plan.deletes.len(), 2);
    let verdict = SafetyGuard::default().check_contacts(std::slice::from_ref(&plan), &dir);
    assert!(
        matches!(verdict, GuardVerdict::Stop { .. }),
        "2 of 4 is over 20%"
    );
}

#[test]
fn target_never_receives_themselves_even_if_a_contact_exists() {
    let dir = directory(&org(), &MappingOptions::default());
    let mut book = Book::default();
    sync(&mut book, &target("1"), &dir, &PlanOptions::default());
    // Their own contact was created by an earlier, misconfigured run.
    let me = dir.contacts["1"].to_new_person(GROUP);
    let rn = book.insert(me);
    let plan = plan_user(&target("1"), &dir, &book.list(), &PlanOptions::default());
    assert_eq!(plan.deletes, [rn]);
}

#[test]
fn orphan_marker_without_id_is_treated_as_a_leaver() {
    let dir = directory(&org(), &MappingOptions::default());
    let mut book = Book::default();
    let mut p = personal("x", None, None);
    p.client_data = vec![ClientData::new(markers::SOURCE, markers::SOURCE_VALUE)];
    let rn = book.insert(p);
    let plan = plan_user(&target("1"), &dir, &book.list(), &PlanOptions::default());
    assert_eq!(plan.deletes, [rn]);
    assert_eq!(plan.managed_observed, 1);
}

#[test]
fn empty_directory_read_triggers_guard() {
    let mut book = Book::default();
    sync(
        &mut book,
        &target("1"),
        &directory(&org(), &MappingOptions::default()),
        &PlanOptions::default(),
    );
    let empty = directory(&[], &MappingOptions::default());
    let plan = plan_user(&target("1"), &empty, &book.list(), &PlanOptions::default());
    assert_eq!(plan.deletes.len(), 4);
    let guard = SafetyGuard {
        max_delete_share: 1.0, // even with the share limit off
        force: false,
    };
    match guard.check_contacts(std::slice::from_ref(&plan), &empty) {
        GuardVerdict::Stop {
            reason,
            what_to_check,
        } => {
            assert!(reason.contains("returned 0 users"), "{reason}");
            assert!(reason.contains("4 of 4"), "{reason}");
            assert!(what_to_check.contains("--force"), "{what_to_check}");
            assert!(what_to_check.contains("scope"), "{what_to_check}");
        }
        other => panic!("guard let it through: {other:?}"),
    }
    let forced = SafetyGuard {
        force: true,
        ..guard
    };
    assert!(matches!(
        forced.check_contacts(std::slice::from_ref(&plan), &empty),
        GuardVerdict::Forced { .. }
    ));
}

#[test]
fn guard_allows_normal_churn_and_stops_mass_deletion() {
    let users: Vec<User> = (0..20)
        .map(|i| {
            user(
                &format!("{i}"),
                &format!("u{i}@x.com"),
                "U",
                &format!("{i}"),
                &[],
            )
        })
        .collect();
    let full = directory(&users, &MappingOptions::default());
    let mut books: Vec<Book> = vec![Book::default(); 3];
    for (i, b) in books.iter_mut().enumerate() {
        sync(b, &target(&format!("{i}")), &full, &PlanOptions::default());
    }
    let plans_for = |dir: &DesiredDirectory| -> Vec<UserPlan> {
        books
            .iter()
            .enumerate()
            .map(|(i, b)| {
                plan_user(
                    &target(&format!("{i}")),
                    dir,
                    &b.list(),
                    &PlanOptions::default(),
                )
            })
            .collect()
    };
    let two_left = directory(&users[..18], &MappingOptions::default());
    assert_eq!(
        SafetyGuard::default().check_contacts(&plans_for(&two_left), &two_left),
        GuardVerdict::Proceed
    );
    let half_left = directory(&users[..10], &MappingOptions::default());
    let v = SafetyGuard::default().check_contacts(&plans_for(&half_left), &half_left);
    match v {
        GuardVerdict::Stop { reason, .. } => assert!(reason.contains("30 of 57"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn contact_cap_skips_the_user_with_a_clear_message() {
    let dir = directory(&org(), &MappingOptions::default());
    let mut book = Book::default();
    for i in 0..8 {
        book.insert(personal(&format!("{i}"), None, Some(&format!("+1 {i}"))));
    }
    let opts = PlanOptions {
        contact_cap: 10,
        ..Default::default()
    };
    let plan = plan_user(&target("1"), &dir, &book.list(), &opts);
    assert!(no_writes(&plan));
    let msg = plan.skipped.expect("skipped");
    assert!(
        msg.contains("12 contacts") && msg.contains("cap is 10"),
        "{msg}"
    );
}

#[test]
fn unknown_managed_group_still_plans_every_create() {
    // `orgsync contacts plan` on an account whose label does not exist yet: the creates
    // are planned all the same; the executor supplies the group when it writes them.
    let dir = directory(&org(), &MappingOptions::default());
    let t = TargetUser {
        managed_group: None,
        ..target("1")
    };
    let plan = plan_user(&t, &dir, &[], &PlanOptions::default());
    let ids: Vec<&str> = plan
        .creates
        .iter()
        .map(|c| c.directory_id.as_str())
        .collect();
    assert_eq!(ids, ["2", "3", "4", "5"]);
    let p = dir.new_person("2", "contactGroups/real").unwrap();
    assert_eq!(
        p.group_resource_names().collect::<Vec<_>>(),
        [MY_CONTACTS, "contactGroups/real"]
    );
}

// ---------------------------------------------------------------------------------
// The fresh path's verifying read (markers only)

/// A first sync of `t`: every create applied, plus two personal contacts.
fn freshly_synced(dir: &DesiredDirectory, t: &TargetUser) -> Book {
    let mut book = Book::default();
    book.insert(personal("", Some("friend@gmail.com"), None));
    book.insert(personal("", None, Some("+1 555 0100")));
    let plan = plan_user(t, dir, &[], &PlanOptions::default());
    book.apply(&plan, dir, t);
    book
}

fn marks(book: &Book) -> Vec<MarkedContact> {
    book.list().iter().map(MarkedContact::of).collect()
}

#[test]
fn landed_creates_pass_the_marker_check_and_count_personal_contacts() {
    let dir = directory(&org(), &MappingOptions::default());
    let t = target("3");
    let book = freshly_synced(&dir, &t);
    assert_eq!(fresh_creates_landed(&t, &dir, &marks(&book)), Some(2));
    // ... and the full planner agrees there is nothing left to do.
    assert!(no_writes(&plan_user(
        &t,
        &dir,
        &book.list(),
        &PlanOptions::default()
    )));
}

#[test]
fn a_missing_duplicated_unlabelled_or_stale_create_fails_the_marker_check() {
    let dir = directory(&org(), &MappingOptions::default());
    let t = target("3");
    let book = freshly_synced(&dir, &t);
    let ours: Vec<String> = book
        .managed_by_id()
        .values()
        .map(|v| v[0].resource_name.clone().unwrap())
        .collect();
    let check = |b: &Book| fresh_creates_landed(&t, &dir, &marks(b));

    let mut missing = book.clone();
    missing.contacts.remove(&ours[0]);
    assert_eq!(check(&missing), None, "a create that did not land");

    let mut twice = book.clone();
    let copy = twice.contacts[&ours[1]].clone();
    twice.insert(copy);
    assert_eq!(check(&twice), None, "a create that landed twice");

    let mut unlabelled = book.clone();
    unlabelled.contacts.get_mut(&ours[0]).unwrap().memberships =
        vec![Membership::group(MY_CONTACTS)];
    assert_eq!(check(&unlabelled), None, "outside the managed label");

    let mut stale = book.clone();
    let p = stale.contacts.get_mut(&ours[0]).unwrap();
    p.client_data
        .retain(|c| c.key.as_deref() != Some(markers::HASH));
    p.client_data
        .push(ClientData::new(markers::HASH, "not-the-hash"));
    assert_eq!(check(&stale), None, "a marker other than the planned one");

    let mut orphan = book.clone();
    let mut o = personal("", Some("x@example.com"), None);
    o.client_data = vec![ClientData::new(markers::SOURCE, markers::SOURCE_VALUE)];
    orphan.insert(o);
    assert_eq!(
        check(&orphan),
        None,
        "a contact of ours that no create explains"
    );

    let mut tombstone = book.clone();
    let mut gone = tombstone.contacts[&ours[0]].clone();
    gone.resource_name = None;
    gone.metadata = Some(PersonMetadata {
        deleted: Some(true),
        ..Default::default()
    });
    let rn = tombstone.insert(gone);
    tombstone.contacts.get_mut(&rn).unwrap().metadata = Some(PersonMetadata {
        deleted: Some(true),
        ..Default::default()
    });
    assert_eq!(check(&tombstone), Some(2), "tombstones are not contacts");

    let no_group = TargetUser {
        managed_group: None,
        ..t.clone()
    };
    assert_eq!(fresh_creates_landed(&no_group, &dir, &marks(&book)), None);
}

proptest! {
    #![proptest_config(cases(64))]

    /// Soundness: whatever happened to the creates (dropped, duplicated, unlabelled,
    /// markers damaged), when the marker check passes the full planner plans no write.
    #[test]
    fn a_passing_marker_check_means_the_planner_has_nothing_to_do(
        users in arb_directory(),
        damage in proptest::collection::vec((0usize..4, 0usize..64), 0..4),
    ) {
        let dir = directory(&users, &MappingOptions::default());
        let Some(me) = dir.contacts.keys().next().cloned() else { return Ok(()); };
        let t = target(&me);
        let mut book = freshly_synced(&dir, &t);
        let rns: Vec<String> = book.contacts.keys().cloned().collect();
        for (kind, at) in damage {
            let rn = &rns[at % rns.len()];
            let Some(p) = book.contacts.get(rn).cloned() else { continue };
            match kind {
                0 => { book.contacts.remove(rn); }
                1 => { book.insert(p); }
                2 => { book.contacts.get_mut(rn).unwrap().memberships.retain(|m| m.contact_group_membership.as_ref().and_then(|g| g.contact_group_resource_name.as_deref()) != Some(GROUP)); }
                _ => { book.contacts.get_mut(rn).unwrap().client_data.pop(); }
            }
        }
        if let Some(personal) = fresh_creates_landed(&t, &dir, &marks(&book)) {
            let plan = plan_user(&t, &dir, &book.list(), &PlanOptions::default());
            prop_assert!(no_writes(&plan), "marker check passed but the planner wants {:#?}", plan);
            prop_assert_eq!(personal, plan.personal_observed);
        }
    }
}

#[test]
fn view_hash_is_stable_and_tracks_what_matters() {
    let opts = PlanOptions::default();
    let a = directory(&org(), &MappingOptions::default());
    let b = directory(&org(), &MappingOptions::default());
    assert_eq!(
        view_hash(&target("1"), &a, &opts),
        view_hash(&target("1"), &b, &opts)
    );
    assert_ne!(
        view_hash(&target("1"), &a, &opts),
        view_hash(&target("2"), &a, &opts)
    );
    let mut users = org();
    users[3].phones = None;
    let c = directory(&users, &MappingOptions::default());
    assert_ne!(
        view_hash(&target("1"), &a, &opts),
        view_hash(&target("1"), &c, &opts)
    );
    let keep = PlanOptions {
        leavers: LeaverPolicy::Keep,
        ..Default::default()
    };
    assert_ne!(
        view_hash(&target("1"), &a, &opts),
        view_hash(&target("1"), &a, &keep)
    );
    let with_ids = directory(
        &org(),
        &MappingOptions {
            include_employee_id: true,
            ..Default::default()
        },
    );
    assert_ne!(a.digest(), with_ids.digest());
}

#[test]
fn photos_are_planned_once_and_recorded_by_the_executor() {
    let mut users = org();
    users[0].thumbnail_photo_etag = Some("ph1".into());
    let mapping = MappingOptions {
        include_photos: true,
        ..Default::default()
    };
    let dir = directory(&users, &mapping);
    let mut book = Book::default();
    let plan = sync(&mut book, &target("2"), &dir, &PlanOptions::default());
    assert_eq!(plan.photo_writes.len(), 1);
    assert_eq!(plan.photo_writes[0].directory_id, "1");
    assert_eq!(plan.photo_writes[0].resource_name, None);
    let rn = book.managed_by_id()["1"][0].resource_name.clone().unwrap();
    let again = plan_user(&target("2"), &dir, &book.list(), &PlanOptions::default());
    assert_eq!(
        again.photo_writes[0].resource_name.as_deref(),
        Some(rn.as_str())
    );
    // The executor uploads and records the etag; afterwards nothing to do.
    markers::set_photo(book.contacts.get_mut(&rn).unwrap(), "ph1");
    let done = plan_user(&target("2"), &dir, &book.list(), &PlanOptions::default());
    assert!(done.is_empty(), "{done:#?}");
}

// ---------------------------------------------------------------------------------
// Property tests: contacts

const NAMES: [&str; 6] = ["Ana", "Ben", "Chloé", "Dev", "Eun", "Fay"];
const PHONE_TYPES: [&str; 6] = [
    "work",
    "mobile",
    "work_mobile",
    "home",
    "custom",
    "google_voice",
];

#[derive(Debug, Clone)]
enum Change {
    Same,
    Renamed,
    NewPhone,
    /// A custom-field value (`custom_fields`) changed.
    NewCostCentre,
    Absent,
}

#[derive(Debug, Clone)]
enum Edit {
    None,
    AddHomePhone,
    Duplicate,
    StaleHash,
    DropOwnedMarker,
    DeleteOurPhone,
    AddNote,
    LeaveManagedGroup,
}

fn arb_user(i: usize) -> impl Strategy<Value = User> {
    (
        0..NAMES.len(),
        0..NAMES.len(),
        prop::collection::vec((0..PHONE_TYPES.len(), 0..6u8), 0..3),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.05),
    )
        .prop_map(move |(g, f, phones, suspended, archived, hidden)| {
            let mut u = user(
                &format!("id{i}"),
                &format!("user{i}@x.com"),
                NAMES[g],
                NAMES[f],
                &[],
            );
            u.phones = Some(
                phones
                    .into_iter()
                    .map(|(t, v)| UserPhone {
                        value: format!("+1 555 01{v}{}", i % 3),
                        kind: Some(PHONE_TYPES[t].into()),
                        custom_type: (PHONE_TYPES[t] == "custom").then(|| "Desk".into()),
                        primary: None,
                    })
                    .collect(),
            );
            u.suspended = Some(suspended);
            u.archived = Some(archived);
            u.include_in_global_address_list = Some(!hidden);
            // Custom fields (`scenario_mapping`): a cost centre for most, a level for some.
            u.custom_schemas = match i % 3 {
                0 => serde_json::json!({"HR": {"CostCentre": format!("CC{i}"), "Level": "Senior"}}),
                1 => serde_json::json!({"HR": {"CostCentre": format!("CC{i}")}}),
                _ => serde_json::json!({}),
            }
            .as_object()
            .cloned();
            u
        })
}

fn arb_directory() -> impl Strategy<Value = Vec<User>> {
    (0..9usize).prop_flat_map(|n| (0..n).map(arb_user).collect::<Vec<_>>())
}

fn arb_personal() -> impl Strategy<Value = Person> {
    (
        prop::option::of(prop_oneof![
            (0..9usize).prop_map(|i| format!("user{i}@x.com")),
            (0..9usize).prop_map(|i| format!("friend{i}@gmail.com")),
        ]),
        prop::option::of((0..6u8, 0..3usize).prop_map(|(v, i)| format!("+1 555 01{v}{i}"))),
        prop_oneof![
            Just(vec![]),
            Just(vec![ClientData::new("other.tool", "x")]),
            (0..9usize).prop_map(|i| vec![ClientData::new(markers::ID, format!("id{i}"))]),
            (0..9usize).prop_map(|i| vec![
                ClientData::new(markers::SOURCE, "ORGSYNC"),
                ClientData::new(markers::ID, format!("id{i}")),
            ]),
            (0..9usize).prop_map(|i| vec![
                ClientData::new(markers::HASH, "abc"),
                ClientData::new(markers::ID, format!("id{i}")),
            ]),
        ],
        prop::bool::ANY,
    )
        .prop_map(|(email, phone, client_data, in_group)| {
            let mut p = personal("tmp", email.as_deref(), phone.as_deref());
            p.client_data = client_data;
            if in_group {
                // Even a personal contact filed under the managed label stays personal.
                p.memberships.push(Membership::group(GROUP));
            }
            p
        })
}

#[derive(Debug, Clone)]
struct Scenario {
    users: Vec<User>,
    changes: Vec<Change>,
    old_leavers: usize,
    edits: Vec<Edit>,
    personal: Vec<Person>,
    raw_managed: Vec<(usize, bool)>,
    target: usize,
    leavers: LeaverPolicy,
    group_known: bool,
    duplicates: PersonalDuplicates,
}

fn arb_scenario() -> impl Strategy<Value = Scenario> {
    (
        arb_directory(),
        prop::collection::vec(
            prop_oneof![
                4 => Just(Change::Same),
                1 => Just(Change::Renamed),
                1 => Just(Change::NewPhone),
                1 => Just(Change::NewCostCentre),
                1 => Just(Change::Absent),
            ],
            9,
        ),
        0..3usize,
        prop::collection::vec(
            prop_oneof![
                4 => Just(Edit::None),
                1 => Just(Edit::AddHomePhone),
                1 => Just(Edit::Duplicate),
                1 => Just(Edit::StaleHash),
                1 => Just(Edit::DropOwnedMarker),
                1 => Just(Edit::DeleteOurPhone),
                1 => Just(Edit::AddNote),
                1 => Just(Edit::LeaveManagedGroup),
            ],
            12,
        ),
        prop::collection::vec(arb_personal(), 0..6),
        prop::collection::vec((0..12usize, prop::bool::ANY), 0..3),
        0..10usize,
        prop_oneof![Just(LeaverPolicy::Delete), Just(LeaverPolicy::Keep)],
        prop::bool::weighted(0.8),
        prop_oneof![
            Just(PersonalDuplicates::Add),
            Just(PersonalDuplicates::Skip)
        ],
    )
        .prop_map(
            |(
                users,
                changes,
                old_leavers,
                edits,
                personal,
                raw_managed,
                target,
                leavers,
                group_known,
                duplicates,
            )| {
                Scenario {
                    users,
                    changes,
                    old_leavers,
                    edits,
                    personal,
                    raw_managed,
                    target,
                    leavers,
                    group_known,
                    duplicates,
                }
            },
        )
}

struct Built {
    book: Book,
    dir: DesiredDirectory,
    target: TargetUser,
    opts: PlanOptions,
    personal_rns: BTreeSet<String>,
    home_phones: Vec<(String, String)>,
    /// `(directory id, value)` of `userDefined` entries the person added.
    own_fields: Vec<(String, String)>,
}

/// The scenarios' mapping: the defaults plus two custom fields, one written as a
/// `userDefined` entry and one over the organisation's title.
fn scenario_mapping() -> MappingOptions {
    MappingOptions {
        custom_fields: vec![
            orgsync_core::contacts::CustomField {
                schema: "HR".into(),
                field: "CostCentre".into(),
                label: "Cost centre".into(),
            },
            orgsync_core::contacts::CustomField {
                schema: "HR".into(),
                field: "Level".into(),
                label: "title".into(),
            },
        ],
        ..MappingOptions::default()
    }
}

/// Build the scenario's address book: a previous sync against an older directory,
/// then the person's edits, personal contacts and odd managed contacts.
fn build(s: &Scenario) -> Built {
    let mapping = scenario_mapping();
    let mut old_users: Vec<User> = Vec::new();
    for (i, u) in s.users.iter().enumerate() {
        let mut old = u.clone();
        match s.changes[i] {
            Change::Same => {}
            Change::Renamed => old.primary_email = Some(format!("old{i}@x.com")),
            Change::NewPhone => {
                old.phones = Some(vec![UserPhone {
                    value: format!("+1 555 9{i}"),
                    kind: Some("work".into()),
                    ..Default::default()
                }])
            }
            Change::NewCostCentre => {
                old.custom_schemas = serde_json::json!({"HR": {"CostCentre": "CC-old"}})
                    .as_object()
                    .cloned();
            }
            Change::Absent => continue,
        }
        old_users.push(old);
    }
    for j in 0..s.old_leavers {
        old_users.push(user(
            &format!("gone{j}"),
            &format!("gone{j}@x.com"),
            "Gone",
            "Person",
            &[("work", "+1 555 0100")],
        ));
    }
    let target_id = if s.target < s.users.len() {
        format!("id{}", s.target)
    } else {
        "outsider".to_string()
    };
    let group = s.group_known.then(|| GROUP.to_string());
    let t = TargetUser {
        directory_id: target_id,
        email: "target@x.com".into(),
        managed_group: group,
        ..Default::default()
    };
    let opts = PlanOptions {
        leavers: s.leavers,
        personal_duplicates: s.duplicates,
        ..Default::default()
    };
    let mut book = Book::default();
    let old_dir = directory(&old_users, &mapping);
    // The earlier run always knew the group.
    sync(
        &mut book,
        &TargetUser {
            managed_group: Some(GROUP.into()),
            ..t.clone()
        },
        &old_dir,
        &opts,
    );

    let mut home_phones = Vec::new();
    let mut own_fields = Vec::new();
    let managed_rns: Vec<String> = book.contacts.keys().cloned().collect();
    for (k, rn) in managed_rns.iter().enumerate() {
        let edit = s.edits.get(k).cloned().unwrap_or(Edit::None);
        let p = book.contacts.get_mut(rn).unwrap();
        let id = markers::managed_id(p).unwrap().to_string();
        match edit {
            Edit::None => {}
            Edit::AddHomePhone => {
                let v = format!("+99 {k}");
                p.phone_numbers.push(PhoneNumber {
                    value: Some(v.clone()),
                    kind: Some("home".into()),
                    ..Default::default()
                });
                home_phones.push((id, v));
            }
            Edit::Duplicate => {
                let copy = p.clone();
                book.insert(copy);
            }
            Edit::StaleHash => {
                for c in &mut p.client_data {
                    if c.key.as_deref() == Some(markers::HASH) {
                        c.value = Some("stale".into());
                    }
                }
            }
            Edit::DropOwnedMarker => p
                .client_data
                .retain(|c| c.key.as_deref() != Some(markers::OWNED)),
            Edit::DeleteOurPhone => {
                p.phone_numbers.pop();
            }
            Edit::AddNote => {
                p.biographies = vec![Biography {
                    value: Some("note".into()),
                    ..Default::default()
                }];
                p.client_data.push(ClientData::new("their.key", "v"));
                // Their own custom field next to orgsync's `userDefined` entries.
                p.user_defined.push(orgsync_wire::people::UserDefined {
                    key: Some("Birthday".into()),
                    value: Some(format!("May {k}")),
                    ..Default::default()
                });
                own_fields.push((id.clone(), format!("May {k}")));
            }
            Edit::LeaveManagedGroup => p.memberships.retain(|m| {
                m.contact_group_membership
                    .as_ref()
                    .and_then(|g| g.contact_group_resource_name.as_deref())
                    != Some(GROUP)
            }),
        }
    }
    for &(i, with_owned) in &s.raw_managed {
        // A managed contact with arbitrary content, for a current user or a leaver.
        let id = if i % 2 == 0 {
            format!("id{i}")
        } else {
            format!("leaver{i}")
        };
        let mut p = personal("tmp", Some(&format!("raw{i}@x.com")), Some("+1 555 0000"));
        p.client_data = vec![
            ClientData::new(markers::SOURCE, markers::SOURCE_VALUE),
            ClientData::new(markers::ID, id),
            ClientData::new(markers::HASH, "whatever"),
        ];
        if with_owned {
            p.client_data
                .push(ClientData::new(markers::OWNED, "p:0000000000"));
        }
        book.insert(p);
    }
    let mut personal_rns = BTreeSet::new();
    for p in &s.personal {
        personal_rns.insert(book.insert(p.clone()));
    }
    let dir = directory(&s.users, &mapping);
    Built {
        book,
        dir,
        target: t,
        opts,
        personal_rns,
        home_phones,
        own_fields,
    }
}

fn referenced(plan: &UserPlan) -> BTreeSet<String> {
    plan.updates
        .iter()
        .chain(&plan.relabels)
        .map(|u| u.resource_name.clone())
        .chain(plan.all_deletes().map(str::to_string))
        .chain(
            plan.photo_writes
                .iter()
                .filter_map(|p| p.resource_name.clone()),
        )
        .collect()
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn contacts_planner_properties(s in arb_scenario()) {
        let Built { mut book, dir, target, opts, personal_rns, home_phones, own_fields } = build(&s);
        let personal_before: BTreeMap<String, String> = personal_rns
            .iter()
            .map(|rn| (rn.clone(), serde_json::to_string(&book.contacts[rn]).unwrap()))
            .collect();

        let plan = plan_user(&target, &dir, &book.list(), &opts);
        // (f) idempotence: same input, same plan.
        prop_assert_eq!(&plan, &plan_user(&target, &dir, &book.list(), &opts));
        // (a) no action references a personal contact.
        let touched = referenced(&plan);
        prop_assert!(touched.is_disjoint(&personal_rns), "touched personal: {:?}", touched.intersection(&personal_rns).collect::<Vec<_>>());
        prop_assert_eq!(plan.personal_observed, personal_rns.len());
        // Update persons are well-formed: one name, memberships present.
        for u in plan.updates.iter().chain(&plan.relabels) {
            prop_assert!(u.person.names.len() <= 1);
            prop_assert!(u.person.biographies.len() <= 1);
            prop_assert!(!u.person.memberships.is_empty());
        }

        book.apply(&plan, &dir, &target);
        // (b) convergence.
        let again = plan_user(&target, &dir, &book.list(), &opts);
        prop_assert!(no_writes(&again), "not converged: {:#?}", again);

        // (c) exactly one managed contact per selected source user (minus self).
        let managed = book.managed_by_id();
        let wanted: BTreeSet<String> = dir.contacts.keys().filter(|id| **id != target.directory_id).cloned().collect();
        let skipped: BTreeSet<String> = plan.skipped_duplicates.iter().cloned().collect();
        prop_assert!(opts.personal_duplicates == PersonalDuplicates::Skip || skipped.is_empty());
        for id in &skipped {
            // Skipped: not in the book, and a personal contact has one of its addresses.
            prop_assert!(!managed.contains_key(id), "skipped {} but it is there", id);
            let emails: BTreeSet<String> = dir.contacts[id].emails.iter().map(|e| e.value.to_lowercase()).collect();
            prop_assert!(personal_rns.iter().any(|rn| book.contacts[rn].email_addresses.iter().any(|e| e.value.as_deref().is_some_and(|v| emails.contains(&v.to_lowercase())))));
        }
        for id in wanted.iter().filter(|id| !skipped.contains(*id)) {
            let list = managed.get(id).map(Vec::as_slice).unwrap_or(&[]);
            prop_assert_eq!(list.len(), 1, "id {} has {} contacts", id, list.len());
            let p = list[0];
            let d = &dir.contacts[id];
            prop_assert_eq!(p.names[0].given_name.as_ref(), d.given_name.as_ref());
            prop_assert_eq!(p.names[0].family_name.as_ref(), d.family_name.as_ref());
            let phones: BTreeSet<(String, String)> = phones_of(p).into_iter().collect();
            for ph in &d.phones {
                prop_assert!(phones.contains(&(ph.value.clone(), ph.kind.clone())), "missing phone {:?}", ph);
            }
            prop_assert!(p.email_addresses.iter().any(|e| e.value.as_deref() == Some(d.primary_email.as_str())));
            prop_assert_eq!(p.client_data_value(markers::HASH), dir.hash_of(id));
            prop_assert!(p.group_resource_names().any(|g| g == MY_CONTACTS));
            if let Some(g) = &target.managed_group {
                prop_assert!(p.group_resource_names().any(|x| x == g));
            }
        }
        let extra: Vec<&String> = managed.keys().filter(|id| !wanted.contains(*id)).collect();
        match opts.leavers {
            LeaverPolicy::Delete => prop_assert!(extra.is_empty(), "leavers left: {:?}", extra),
            LeaverPolicy::Keep => {
                for id in extra {
                    prop_assert_eq!(managed[id].len(), 1, "duplicate leaver {}", id);
                    prop_assert_eq!(managed[id][0].client_data_value(markers::STATE), Some("left"));
                }
            }
        }
        // (g) once the personal duplicates are gone, orgsync adds exactly its copies.
        if !skipped.is_empty() {
            let mut without = book.clone();
            for rn in &personal_rns {
                without.contacts.remove(rn);
            }
            let after = plan_user(&target, &dir, &without.list(), &opts);
            let created: BTreeSet<String> = after.creates.iter().map(|c| c.directory_id.clone()).collect();
            prop_assert_eq!(created, skipped.clone());
            prop_assert!(after.skipped_duplicates.is_empty());
        }
        // (d) personal contacts byte-identical.
        for (rn, json) in &personal_before {
            let now = book.contacts.get(rn).map(|p| serde_json::to_string(p).unwrap());
            prop_assert_eq!(now.as_ref(), Some(json));
        }
        // (e) personal additions inside managed contacts survive, their own custom
        // fields among them; orgsync's custom fields are exactly the directory's.
        for (id, value) in &own_fields {
            if let Some(list) = managed.get(id) {
                prop_assert!(list[0].user_defined.iter().any(|u| u.value.as_deref() == Some(value.as_str())),
                    "own field {} lost on {}", value, id);
            }
        }
        for id in wanted.iter().filter(|id| !skipped.contains(*id)) {
            let ours: BTreeSet<(String, String)> = managed[id][0]
                .user_defined
                .iter()
                .filter(|u| u.key.as_deref() != Some("Birthday"))
                .map(|u| (u.key.clone().unwrap_or_default(), u.value.clone().unwrap_or_default()))
                .collect();
            let want: BTreeSet<(String, String)> = dir.contacts[id]
                .user_defined
                .iter()
                .map(|t| (t.kind.clone(), t.value.clone()))
                .collect();
            prop_assert_eq!(ours, want, "custom fields of {}", id);
        }
        for (id, phone) in &home_phones {
            if let Some(list) = managed.get(id) {
                prop_assert!(list[0].phone_numbers.iter().any(|p| p.value.as_deref() == Some(phone.as_str())),
                    "home phone {} lost on {}", phone, id);
            } else {
                prop_assert!(opts.leavers == LeaverPolicy::Delete && !wanted.contains(id));
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Users planner: unit + property tests

fn observe(plan: &UsersPlan, rows: &mut BTreeMap<String, ObservedAppUser>) {
    let put = |rows: &mut BTreeMap<String, ObservedAppUser>,
               d: &orgsync_core::users::AppUserDesired,
               active: bool| {
        rows.insert(
            d.directory_id.clone(),
            ObservedAppUser {
                directory_id: d.directory_id.clone(),
                email: d.primary_email.clone(),
                content_hash: d.content_hash(),
                active,
            },
        );
    };
    for d in plan.creates.iter().chain(&plan.updates) {
        put(rows, d, d.active);
    }
    for d in &plan.reactivations {
        put(rows, d, true);
    }
    for x in &plan.deactivations {
        match &x.desired {
            Some(d) => put(rows, d, false),
            None => {
                rows.get_mut(&x.directory_id)
                    .expect("deactivate missing row")
                    .active = false
            }
        }
    }
    for id in &plan.deletes {
        rows.remove(id).expect("delete missing row");
    }
}

#[test]
fn empty_directory_read_triggers_users_guard() {
    let users = org();
    let mut rows = BTreeMap::new();
    let (g, scope) = (GroupMembership::new(), ScopeRules::default());
    observe(
        &plan_users(&users, &g, &scope, &[], &UsersPlanOptions::default()),
        &mut rows,
    );
    let obs: Vec<_> = rows.values().cloned().collect();
    let plan = plan_users(&[], &g, &scope, &obs, &UsersPlanOptions::default());
    assert_eq!(plan.deprovisions, 5);
    let guard = SafetyGuard {
        max_delete_share: 1.0,
        force: false,
    };
    match guard.check_users(&plan) {
        GuardVerdict::Stop {
            reason,
            what_to_check,
        } => {
            assert!(reason.contains("5 of 5 active app users"), "{reason}");
            assert!(what_to_check.contains("--force"));
        }
        other => panic!("{other:?}"),
    }
    // One leaver of five is 20%: allowed (the limit is "more than").
    let plan = plan_users(&users[..4], &g, &scope, &obs, &UsersPlanOptions::default());
    assert_eq!(
        SafetyGuard::default().check_users(&plan),
        GuardVerdict::Proceed
    );
    let plan = plan_users(&users[..3], &g, &scope, &obs, &UsersPlanOptions::default());
    assert!(!SafetyGuard::default().check_users(&plan).may_proceed());
}

#[test]
fn users_out_of_scope_are_deprovisioned_but_suspended_in_scope_are_deactivated() {
    let mut users = org();
    users[0].org_unit_path = Some("/Eng".into());
    users[1].org_unit_path = Some("/Sales".into());
    users[1].suspended = Some(true);
    let scope = ScopeRules {
        org_units: vec!["/Sales".into()],
        ..Default::default()
    };
    let plan = plan_users(
        &users[..2],
        &GroupMembership::new(),
        &scope,
        &[],
        &UsersPlanOptions::default(),
    );
    assert_eq!(
        plan.creates.len(),
        1,
        "only the /Sales user, recorded inactive"
    );
    assert!(!plan.creates[0].active);
    let d = app_user_desired(&users[1], &Default::default()).unwrap();
    assert_eq!(plan.creates[0], d);
}

fn arb_app_users() -> impl Strategy<Value = Vec<User>> {
    prop::collection::vec(
        (
            0..12usize,
            prop::bool::weighted(0.2),
            0..3usize,
            prop::bool::weighted(0.1),
        ),
        0..10,
    )
    .prop_map(|v| {
        let mut seen = BTreeSet::new();
        v.into_iter()
            .filter(|(i, ..)| seen.insert(*i))
            .map(|(i, suspended, name, admin)| {
                let mut u = user(
                    &format!("id{i}"),
                    &format!("u{i}@x.com"),
                    NAMES[name],
                    "X",
                    &[],
                );
                u.suspended = Some(suspended);
                u.is_admin = Some(admin);
                u
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn users_planner_properties(
        before in arb_app_users(),
        after in arb_app_users(),
        policy in prop_oneof![Just(DeprovisionPolicy::Deactivate), Just(DeprovisionPolicy::Delete), Just(DeprovisionPolicy::Keep)],
    ) {
        let (g, scope) = (GroupMembership::new(), ScopeRules::default());
        let opts = UsersPlanOptions { policy, ..Default::default() };
        let mut rows = BTreeMap::new();
        observe(&plan_users(&before, &g, &scope, &[], &opts), &mut rows);
        let obs: Vec<_> = rows.values().cloned().collect();
        let plan = plan_users(&after, &g, &scope, &obs, &opts);
        prop_assert_eq!(&plan, &plan_users(&after, &g, &scope, &obs, &opts));
        if policy != DeprovisionPolicy::Delete {
            prop_assert!(plan.deletes.is_empty(), "deleted under {:?}", policy);
        }
        if policy == DeprovisionPolicy::Keep {
            prop_assert_eq!(plan.deprovisions, 0);
        }
        observe(&plan, &mut rows);
        let obs: Vec<_> = rows.values().cloned().collect();
        let again = plan_users(&after, &g, &scope, &obs, &opts);
        prop_assert!(again.is_empty(), "not converged: {:#?}", again);
        // Every directory user has its row, active iff not suspended/archived.
        for u in &after {
            let row = &rows[u.id.as_ref().unwrap()];
            prop_assert_eq!(row.active, !u.is_inactive());
        }
        // Rows of users gone from the directory: per policy.
        let now: BTreeSet<&String> = after.iter().filter_map(|u| u.id.as_ref()).collect();
        for (id, row) in &rows {
            if !now.contains(id) {
                match policy {
                    DeprovisionPolicy::Deactivate => prop_assert!(!row.active),
                    DeprovisionPolicy::Delete => prop_assert!(false, "row {} survived delete policy", id),
                    DeprovisionPolicy::Keep => {}
                }
            }
        }
        // The guard stops any deprovisioning when the directory read returned nothing.
        let empty = plan_users(&[], &g, &scope, &obs, &opts);
        let verdict = SafetyGuard::default().check_users(&empty);
        if empty.deprovisions > 0 {
            prop_assert!(!verdict.may_proceed());
        } else {
            prop_assert_eq!(verdict, GuardVerdict::Proceed);
        }
    }
}

// ---------------------------------------------------------------------------------
// Scale smoke test

#[test]
fn two_thousand_person_org_plans_a_no_change_run_quickly() {
    let users: Vec<User> = (0..2000)
        .map(|i| {
            user(
                &format!("{i}"),
                &format!("u{i}@x.com"),
                "U",
                &format!("{i}"),
                &[("work", "+1 555 0100"), ("mobile", "+1 555 0199")],
            )
        })
        .collect();
    let dir = directory(&users, &MappingOptions::default());
    let mut book = Book::default();
    sync(&mut book, &target("0"), &dir, &PlanOptions::default());
    let contacts = book.list();
    let start = std::time::Instant::now();
    let runs = 5;
    for _ in 0..runs {
        let plan = plan_user(&target("0"), &dir, &contacts, &PlanOptions::default());
        assert_eq!(plan.unchanged, 1999);
        assert!(no_writes(&plan));
    }
    let per_target = start.elapsed() / runs;
    eprintln!("no-change plan for 1,999 contacts: {per_target:?} per target (debug build)");
    // Generous bound for an unoptimised build on a busy 2-core machine; the real
    // figure is reported by the benchmark.
    assert!(
        per_target < std::time::Duration::from_secs(2),
        "{per_target:?}"
    );
}

proptest! {
    #![proptest_config(cases(64))]

    /// Opt-out by group or by custom field: an opted-out person is never selected, not
    /// even through `include`; everyone else is selected exactly as without the opt-out;
    /// a book synced before the opt-out loses exactly the opted-out people's contacts
    /// (deletes, which the guard judges like any other), and once applied, the next plan
    /// is empty.
    #[test]
    fn opted_out_people_leave_every_book_and_nobody_else_does(
        users in arb_directory(),
        by_group in proptest::collection::vec(any::<bool>(), 9),
        by_field in proptest::collection::vec(0usize..4, 9),
    ) {
        use orgsync_core::scope::FieldMatch;
        use serde_json::json;
        // The Admin console stores a Boolean; other tools a string, any case.
        let values = [None, Some(json!(true)), Some(json!("TRUE")), Some(json!(false))];
        let mut users = users;
        let mut groups = GroupMembership::new();
        groups.add_group("opt-out@x.com");
        let mut opted = BTreeSet::new();
        for (i, u) in users.iter_mut().enumerate() {
            let id = u.id.clone().unwrap();
            if by_group[i] {
                groups.add("opt-out@x.com", id.clone());
                opted.insert(id.clone());
            }
            if let Some(v) = &values[by_field[i]] {
                let schemas = json!({"Privacy": {"HideFromContacts": v}});
                u.custom_schemas = schemas.as_object().cloned();
                if by_field[i] != 3 {
                    opted.insert(id);
                }
            }
        }
        let everyone: Vec<String> =
            users.iter().filter_map(|u| u.primary_email.clone()).collect();
        let plain = ScopeRules { include: everyone, ..ScopeRules::default() };
        let with_opt_out = ScopeRules {
            exclude_groups: vec!["Opt-Out@x.com".into()],
            exclude_if: Some(FieldMatch {
                schema: "Privacy".into(),
                field: "HideFromContacts".into(),
                equals: json!(true),
            }),
            ..plain.clone()
        };
        let before = DirectorySnapshot::select(&users, &plain, &groups);
        let after = DirectorySnapshot::select(&users, &with_opt_out, &groups);
        for id in before.users.keys() {
            prop_assert_eq!(after.users.contains_key(id), !opted.contains(id), "{}", id);
        }
        prop_assert!(after.users.keys().all(|id| before.users.contains_key(id)));

        let mapping = MappingOptions::default();
        let dir_before = DesiredDirectory::build(&before, &mapping);
        let dir_after = DesiredDirectory::build(&after, &mapping);
        let t = target("someone-else");
        let mut book = freshly_synced(&dir_before, &t);
        let plan = plan_user(&t, &dir_after, &book.list(), &PlanOptions::default());
        let deleted: BTreeSet<String> = plan
            .deletes
            .iter()
            .filter_map(|rn| markers::managed_id(&book.contacts[rn]).map(str::to_string))
            .collect();
        let expected: BTreeSet<String> = before
            .users
            .keys()
            .filter(|id| opted.contains(*id))
            .cloned()
            .collect();
        prop_assert_eq!(deleted, expected);
        prop_assert!(plan.creates.is_empty() && plan.updates.is_empty());
        book.apply(&plan, &dir_after, &t);
        let again = plan_user(&t, &dir_after, &book.list(), &PlanOptions::default());
        prop_assert!(no_writes(&again), "{:#?}", again);
    }
}
