//! End-to-end: the contacts run against the in-process emulator over real HTTP, with
//! the planner, the SQLite state store and the client all real.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::Env;
use orgsync_core::contacts::PersonalDuplicates;
use orgsync_core::contacts::markers;
use orgsync_core::guard::GuardVerdict;
use orgsync_emulator::EmulatorConfig;
use orgsync_jobs::config::LeaverAction;
use orgsync_jobs::contacts::{ContactsOptions, ContactsReport, Mode, ReadPath, UserStatus};
use orgsync_wire::directory::UserPhone;
use orgsync_wire::people::{ClientData, EmailAddress, Name, Person, PhoneNumber};

fn org(users: usize, personal: usize) -> EmulatorConfig {
    EmulatorConfig {
        personal_contacts_per_user: personal,
        ..EmulatorConfig::for_tests(users)
    }
}

fn sync() -> ContactsOptions {
    ContactsOptions::new(Mode::Sync)
}

fn writes(r: &ContactsReport) -> u64 {
    r.calls
        .by_method
        .iter()
        .filter(|(m, _)| {
            m.contains("batch")
                || m.contains("create")
                || m.contains("update")
                || m.contains("delete")
                || m.contains("modify")
        })
        .map(|(_, n)| n)
        .sum()
}

/// Every active user's book holds exactly one managed contact per other source, and
/// no managed id twice; under `personal_duplicates = "skip"` (the default) a colleague
/// the person saved themselves (a personal contact with their email) may be missing.
async fn assert_converged(env: &Env) {
    let users = env.users().await;
    let visible =
        |u: &orgsync_wire::directory::User| u.include_in_global_address_list != Some(false);
    for (id, u) in &users {
        let email = u.primary_email.as_deref().unwrap();
        let managed = env.managed_of(email).await;
        let ids: Vec<&str> = managed.iter().filter_map(markers::managed_id).collect();
        let distinct: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(
            ids.len(),
            distinct.len(),
            "{email} has duplicate managed contacts"
        );
        // Sources by default: everyone active and visible in the global address list;
        // targets: everyone active, hidden or not.
        let own: BTreeSet<String> = env
            .personal_of(email)
            .await
            .iter()
            .flat_map(|p| p.email_addresses.iter())
            .filter_map(|e| e.value.as_deref().map(str::to_lowercase))
            .collect();
        let skip = env.config.contacts.personal_duplicates == PersonalDuplicates::Skip;
        let expected: BTreeSet<&str> = users
            .iter()
            .filter(|(_, u)| visible(u))
            .filter(|(other, _)| {
                let saved = users[*other]
                    .primary_email
                    .as_deref()
                    .is_some_and(|e| own.contains(&e.to_lowercase()));
                !(skip && saved) || distinct.contains(other.as_str())
            })
            .map(|(other, _)| other.as_str())
            .filter(|other| *other != id)
            .collect();
        assert_eq!(
            distinct, expected,
            "{email}'s managed contacts are not the directory"
        );
    }
}

#[tokio::test]
async fn first_sync_fills_every_book_and_a_rerun_costs_one_read_per_user() {
    let mut env = Env::start(org(12, 3)).await;
    // The shipped default.
    env.config.contacts.personal_duplicates = PersonalDuplicates::Skip;
    let personal = env.personal_fingerprints().await;
    let first = env.sync().await;
    assert_eq!(first.totals.users_failed, 0);
    let targets = first.totals.targets;
    // Colleagues someone saved themselves are not added twice (the default, "skip").
    assert!(first.totals.skipped_duplicates > 0, "{:?}", first.totals);
    assert_eq!(
        first.totals.created + first.totals.skipped_duplicates,
        targets * (targets - 1)
    );
    assert_converged(&env).await;
    assert_eq!(
        env.personal_fingerprints().await,
        personal,
        "personal contacts changed"
    );
    // First sync at the lower bound: per user one group, one read of their own
    // contacts (for "skip"), one batch, one read back.
    assert_eq!(first.calls.total as usize, 1 + 4 * targets);

    let second = env.sync().await;
    assert_eq!(second.totals.users_incremental, targets);
    assert_eq!(
        writes(&second),
        0,
        "a no-change run wrote: {:?}",
        second.calls
    );
    assert_eq!(
        second.calls.by_method["people.people.connections.list"] as usize,
        targets
    );
    assert_eq!(second.calls.total as usize, 1 + targets);
}

/// Hidden from the Global Address List: out of everyone else's book, but their own is
/// filled like anyone's (it used to receive nobody: the targets took the sources' default).
#[tokio::test]
async fn a_user_hidden_from_the_gal_still_receives_every_colleague() {
    let env = Env::start(org(8, 0)).await;
    let members = env.member_emails().await;
    let hidden = members[2].clone();
    env.update_user(&hidden, |u| u.include_in_global_address_list = Some(false))
        .await;
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0);
    let visible_others = env
        .users()
        .await
        .values()
        .filter(|u| u.include_in_global_address_list != Some(false))
        .count();
    assert_eq!(env.managed_of(&hidden).await.len(), visible_others);
    let hidden_id = env.user_by_email(&hidden).await.id.unwrap();
    for email in members.iter().filter(|m| **m != hidden) {
        assert!(
            !env.managed_of(email)
                .await
                .iter()
                .any(|p| markers::managed_id(p) == Some(hidden_id.as_str())),
            "{email} received the hidden user"
        );
    }
    assert_converged(&env).await;
}

/// Opt-out through a group (nested membership resolved) or a custom-schema field: the
/// person leaves every book on the next run (the guard judges those deletes like any
/// other), still receives everyone else, and nothing else is written.
#[tokio::test]
async fn opting_out_by_group_or_by_field_removes_a_person_from_every_book() {
    use futures::TryStreamExt as _;
    let mut env = Env::start(org(14, 1)).await;
    env.sync().await;
    let client = env.client();
    let directory = client.directory();
    let groups: Vec<orgsync_wire::directory::Group> = directory
        .groups_list(Default::default())
        .try_collect()
        .await
        .unwrap();
    // A small group: one org unit's.
    let mut opt_out_group = None;
    for g in &groups {
        let email = g.email.clone();
        let members: Vec<_> = directory
            .members_list(&email, true, None)
            .try_collect()
            .await
            .unwrap();
        if (1..=3).contains(&members.len()) {
            let ids: BTreeSet<String> = members.into_iter().filter_map(|m| m.id).collect();
            opt_out_group = Some((email, ids));
            break;
        }
    }
    let (group, group_ids) = opt_out_group.expect("a group of one to three members");
    let by_field = env
        .users()
        .await
        .into_iter()
        .find(|(id, u)| !group_ids.contains(id) && u.is_admin != Some(true))
        .and_then(|(_, u)| u.primary_email)
        .unwrap();
    env.update_user(&by_field, |u| {
        u.custom_schemas = serde_json::json!({"Privacy": {"HideFromContacts": true}})
            .as_object()
            .cloned();
    })
    .await;
    let field_id = env.user_by_email(&by_field).await.id.unwrap();
    let mut opted: BTreeSet<String> = group_ids.clone();
    opted.insert(field_id.clone());

    env.config.contacts.sources.exclude_groups = vec![group.to_uppercase()];
    env.config.contacts.sources.exclude_if = Some(orgsync_core::scope::FieldMatch {
        schema: "Privacy".into(),
        field: "HideFromContacts".into(),
        equals: serde_json::json!(true),
    });
    let r = env
        .run(&ContactsOptions {
            force: true,
            ..sync()
        })
        .await;
    assert_eq!(r.totals.users_failed, 0);
    assert_eq!(r.totals.created + r.totals.updated, 0);
    let users = env.users().await;
    for (id, u) in &users {
        let email = u.primary_email.as_deref().unwrap();
        let managed: BTreeSet<String> = env
            .managed_of(email)
            .await
            .iter()
            .filter_map(|p| markers::managed_id(p).map(str::to_string))
            .collect();
        assert!(
            managed.is_disjoint(&opted),
            "{email} still has an opted-out person"
        );
        let expected = users
            .keys()
            .filter(|other| *other != id && !opted.contains(*other))
            .count();
        assert_eq!(managed.len(), expected, "{email}");
    }
    // Opting back in (the field cleared) brings the contact back everywhere.
    env.update_user(&by_field, |u| {
        u.custom_schemas = serde_json::json!({"Privacy": {"HideFromContacts": false}})
            .as_object()
            .cloned();
    })
    .await;
    let back = env.sync().await;
    assert_eq!(back.totals.created, back.totals.targets - 1);
}

/// `phone_format = "e164"`: numbers from five countries, national ones read in
/// `phone_region`, all written as E.164 (and People's `canonicalForm` matches); a number
/// that cannot be read is written as the directory has it and reported once; the next
/// run writes nothing.
#[tokio::test]
async fn phones_are_written_in_e164_and_unreadable_ones_as_written() {
    let mut env = Env::start(org(8, 0)).await;
    let members = env.member_emails().await;
    let numbers = [
        ("020 7946 0018", "+442079460018"),
        ("+1 (415) 555-2671", "+14155552671"),
        ("+49 30 901820", "+4930901820"),
        ("+33 1 42 68 53 00", "+33142685300"),
        ("+30 21 0123 4567", "+302101234567"),
    ];
    for ((written, _), email) in numbers.iter().zip(&members) {
        env.update_user(email, |u| {
            u.phones = Some(vec![UserPhone {
                value: written.to_string(),
                kind: Some("work".into()),
                ..Default::default()
            }]);
        })
        .await;
    }
    let unreadable = members[5].clone();
    env.update_user(&unreadable, |u| {
        u.phones = Some(vec![UserPhone {
            value: "ext. 42".into(),
            kind: Some("work".into()),
            ..Default::default()
        }]);
    })
    .await;
    env.config.contacts.phone_format = orgsync_core::contacts::PhoneFormat::E164;
    env.config.contacts.phone_region = Some("GB".into());

    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0);
    assert_eq!(
        r.phones_kept_as_written,
        vec![(unreadable.clone(), "ext. 42".to_string())]
    );
    assert!(r.render_text().contains("ext. 42"), "{}", r.render_text());
    let receiver = &members[6];
    let book = env.managed_of(receiver).await;
    let phone_of = |email: &str| {
        book.iter()
            .find(|p| {
                p.email_addresses
                    .iter()
                    .any(|e| e.value.as_deref() == Some(email))
            })
            .map(|p| p.phone_numbers.clone())
            .unwrap_or_default()
    };
    for ((written, e164), email) in numbers.iter().zip(&members) {
        let phones = phone_of(email);
        assert_eq!(phones.len(), 1, "{email}");
        assert_eq!(phones[0].value.as_deref(), Some(*e164), "{written}");
        assert_eq!(
            phones[0].canonical_form.as_deref(),
            Some(*e164),
            "{written}"
        );
    }
    assert_eq!(phone_of(&unreadable)[0].value.as_deref(), Some("ext. 42"));

    let again = env.sync().await;
    assert_eq!(writes(&again), 0, "{:?}", again.calls);
}

/// `[[contacts.custom_fields]]`: a Directory custom-schema value becomes a `userDefined`
/// entry (or the title), a changed value rewrites only that contact, and a run with
/// nothing changed writes nothing.
#[tokio::test]
async fn custom_fields_are_copied_and_follow_directory_changes() {
    use orgsync_core::contacts::CustomField;
    let mut env = Env::start(org(6, 0)).await;
    let members = env.member_emails().await;
    let (first, second, receiver) = (&members[0], &members[1], &members[2]);
    for (email, cc) in [(first, "CC-100"), (second, "CC-200")] {
        env.update_user(email, |u| {
            u.custom_schemas = serde_json::json!({"HR": {"CostCentre": cc, "Level": "Lead"}})
                .as_object()
                .cloned();
        })
        .await;
    }
    env.config.contacts.custom_fields = vec![
        CustomField {
            schema: "HR".into(),
            field: "CostCentre".into(),
            label: "Cost centre".into(),
        },
        CustomField {
            schema: "HR".into(),
            field: "Level".into(),
            label: "title".into(),
        },
        CustomField {
            schema: "HR".into(),
            field: "CostCenter".into(),
            label: "Misspelt".into(),
        },
    ];
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0);
    assert_eq!(r.custom_fields_unseen, ["HR.CostCenter"]);
    assert!(r.render_text().contains("HR.CostCenter"));
    let contact_of = |book: &[Person], email: &str| -> Person {
        book.iter()
            .find(|p| {
                p.email_addresses
                    .iter()
                    .any(|e| e.value.as_deref() == Some(email))
            })
            .cloned()
            .unwrap()
    };
    let book = env.managed_of(receiver).await;
    let c = contact_of(&book, first);
    let fields: Vec<(Option<&str>, Option<&str>)> = c
        .user_defined
        .iter()
        .map(|u| (u.key.as_deref(), u.value.as_deref()))
        .collect();
    assert_eq!(fields, [(Some("Cost centre"), Some("CC-100"))]);
    assert_eq!(c.organizations[0].title.as_deref(), Some("Lead"));

    env.update_user(first, |u| {
        u.custom_schemas = serde_json::json!({"HR": {"CostCentre": "CC-300", "Level": "Lead"}})
            .as_object()
            .cloned();
    })
    .await;
    let r = env.sync().await;
    // Only the changed colleague's contact is rewritten, in every other book.
    assert_eq!(r.totals.updated, r.totals.targets - 1, "{:?}", r.totals);
    let book = env.managed_of(receiver).await;
    assert_eq!(
        contact_of(&book, first).user_defined[0].value.as_deref(),
        Some("CC-300")
    );
    assert_eq!(
        contact_of(&book, second).user_defined[0].value.as_deref(),
        Some("CC-200")
    );
    let again = env.sync().await;
    assert_eq!(writes(&again), 0, "{:?}", again.calls);
}

/// `personal_duplicates = "skip"` (the default): a colleague the person saved themselves
/// is not added again, on the first sync (a fresh book: its own contacts are read first)
/// and after; the personal contact is never touched; once it is deleted, the next run
/// adds orgsync's copy.
#[tokio::test]
async fn a_personal_duplicate_is_skipped_then_added_once_it_is_gone() {
    let mut env = Env::start(org(6, 0)).await;
    env.config.contacts.personal_duplicates = PersonalDuplicates::Skip;
    let members = env.member_emails().await;
    let (me, colleague) = (&members[0], &members[1]);
    let colleague_id = env.user_by_email(colleague).await.id.unwrap();
    let mine = env
        .client()
        .people(me)
        .create_contact(
            &Person {
                names: vec![Name {
                    given_name: Some("My".into()),
                    family_name: Some("Friend".into()),
                    ..Default::default()
                }],
                email_addresses: vec![EmailAddress {
                    value: Some(colleague.to_uppercase()),
                    kind: Some("home".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
            "names,emailAddresses",
        )
        .await
        .unwrap();
    let personal = env.personal_fingerprints().await;
    let has_copy = |book: &[Person]| {
        book.iter()
            .any(|p| markers::managed_id(p) == Some(colleague_id.as_str()))
    };

    let first = env.sync().await;
    assert_eq!(first.totals.users_failed, 0);
    assert_eq!(first.totals.skipped_duplicates, 1, "{:?}", first.totals);
    let mine_report = first.users.iter().find(|u| u.email == *me).unwrap();
    assert_eq!(mine_report.skipped_duplicates, 1);
    assert_eq!(mine_report.path, Some(ReadPath::Fresh));
    assert!(!has_copy(&env.managed_of(me).await));
    assert!(has_copy(&env.managed_of(&members[2]).await));
    assert!(
        first
            .render_text()
            .contains("skipped: 1 already in the address book")
    );
    assert_eq!(env.personal_fingerprints().await, personal);

    let again = env.sync().await;
    assert_eq!(writes(&again), 0, "{:?}", again.calls);

    env.client()
        .people(me)
        .delete_contact(mine.resource_name.as_deref().unwrap())
        .await
        .unwrap();
    let after = env.sync().await;
    let mine_report = after.users.iter().find(|u| u.email == *me).unwrap();
    assert_eq!(mine_report.created, 1, "{mine_report:?}");
    assert_eq!(after.totals.created, 1);
    assert!(has_copy(&env.managed_of(me).await));
}

#[tokio::test]
async fn joiner_leaver_phone_change_and_rename_write_only_those_changes() {
    let mut env = Env::start(org(10, 2)).await;
    // Exact counts per book: every book holds every colleague (the generated personal
    // contacts include colleagues' addresses, which "skip" would leave out; that has its
    // own test).
    env.config.contacts.personal_duplicates = PersonalDuplicates::Add;
    env.sync().await;
    let personal = env.personal_fingerprints().await;
    let m = env.member_emails().await;
    let (leaver, phone, renamed) = (&m[0], &m[1], &m[2]);
    let renamed_id = env.user_by_email(renamed).await.id.unwrap();
    let observer_book = &m[3];
    let before: BTreeMap<String, String> = env
        .managed_of(observer_book)
        .await
        .into_iter()
        .map(|p| {
            (
                markers::managed_id(&p).unwrap().to_string(),
                p.resource_name.unwrap(),
            )
        })
        .collect();

    env.insert_user("ada.newhire", "Ada", "Newhire").await;
    env.delete_user(leaver).await;
    env.update_user(phone, |u| {
        u.phones = Some(vec![UserPhone {
            value: "+44 20 7946 0999".into(),
            kind: Some("work".into()),
            primary: Some(true),
            ..Default::default()
        }])
    })
    .await;
    let new_email = format!("renamed.{renamed}");
    env.update_user(renamed, |u| {
        u.primary_email = Some(new_email.clone());
        u.name.as_mut().unwrap().family_name = Some("Renamed".into());
    })
    .await;

    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0);
    for u in &r.users {
        if u.email.starts_with("ada.newhire@") {
            assert_eq!(u.created, r.sources - 1);
            continue;
        }
        let me_phone = u.email == *phone;
        let me_renamed = u.email == new_email;
        assert_eq!(u.created, 1, "{}: only the joiner is new", u.email);
        assert_eq!(u.deleted, 1, "{}: only the leaver goes", u.email);
        let expected_updates = 2 - usize::from(me_phone) - usize::from(me_renamed);
        assert_eq!(u.updated, expected_updates, "{}", u.email);
        assert_eq!(u.relabelled + u.duplicates_merged, 0);
    }
    // The renamed colleague's contact is the same contact, updated in place.
    let after = env.managed_of(observer_book).await;
    let renamed_contact = after
        .iter()
        .find(|p| markers::managed_id(p) == Some(renamed_id.as_str()))
        .expect("the renamed colleague is still there");
    assert_eq!(
        renamed_contact.resource_name.as_ref(),
        before.get(&renamed_id)
    );
    assert!(
        renamed_contact
            .email_addresses
            .iter()
            .any(|e| e.value.as_deref() == Some(new_email.as_str()))
    );
    assert_eq!(
        renamed_contact.names[0].family_name.as_deref(),
        Some("Renamed")
    );
    assert_converged(&env).await;
    let after_personal = env.personal_fingerprints().await;
    for (k, etag) in &after_personal {
        if let Some(old) = personal.get(k) {
            assert_eq!(old, etag, "personal contact {k} was modified");
        }
    }
    assert_eq!(
        personal
            .keys()
            .filter(|k| after_personal.contains_key(*k))
            .count()
            + 2,
        personal.len(),
        "only the leaver's own two personal contacts are gone (with the account)"
    );
}

#[tokio::test]
async fn personal_contacts_with_a_colleagues_email_or_no_email_are_never_touched() {
    let env = Env::start(org(6, 0)).await;
    let m = env.member_emails().await;
    let (owner, colleague) = (&m[0], &m[1]);
    let people = env.observer.people(owner);
    let twin = Person {
        names: vec![Name {
            given_name: Some("My".into()),
            family_name: Some("Twin".into()),
            ..Default::default()
        }],
        email_addresses: vec![EmailAddress {
            value: Some(colleague.clone()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let nameless = Person {
        phone_numbers: vec![PhoneNumber {
            value: Some("+1 555 0100".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    // Copied markers without the source marker do not make a contact ours.
    let impostor = Person {
        client_data: vec![ClientData::new(markers::ID, "12345")],
        ..twin.clone()
    };
    for p in [&twin, &nameless, &impostor] {
        people.create_contact(p, "names").await.unwrap();
    }
    let before = env.personal_fingerprints().await;
    env.sync().await;
    env.delete_user(colleague).await;
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0);
    assert_eq!(env.personal_fingerprints().await, before);
}

#[tokio::test]
async fn what_a_person_added_to_a_managed_contact_survives_updates() {
    let env = Env::start(org(5, 0)).await;
    env.sync().await;
    let m = env.member_emails().await;
    let (owner, colleague) = (&m[0], &m[1]);
    let colleague_id = env.user_by_email(colleague).await.id.unwrap();
    let people = env.observer.people(owner);
    let mut contact = env
        .managed_of(owner)
        .await
        .into_iter()
        .find(|p| markers::managed_id(p) == Some(colleague_id.as_str()))
        .unwrap();
    contact.phone_numbers.push(PhoneNumber {
        value: Some("+44 1632 960000".into()),
        kind: Some("home".into()),
        ..Default::default()
    });
    people
        .update_contact(&contact, "phoneNumbers", None)
        .await
        .unwrap();
    env.update_user(colleague, |u| {
        u.phones = Some(vec![UserPhone {
            value: "+44 20 7946 0123".into(),
            kind: Some("work".into()),
            ..Default::default()
        }])
    })
    .await;
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0);
    let contact = env
        .managed_of(owner)
        .await
        .into_iter()
        .find(|p| markers::managed_id(p) == Some(colleague_id.as_str()))
        .unwrap();
    let phones: Vec<&str> = contact
        .phone_numbers
        .iter()
        .filter_map(|p| p.value.as_deref())
        .collect();
    assert!(
        phones.contains(&"+44 1632 960000"),
        "the home phone was lost: {phones:?}"
    );
    assert!(
        phones.contains(&"+44 20 7946 0123"),
        "the new work phone is missing: {phones:?}"
    );
    assert_eq!(phones.len(), 2, "the old work phone stayed: {phones:?}");
}

#[tokio::test]
async fn leavers_kept_are_relabelled_not_deleted() {
    let mut env = Env::start(org(6, 0)).await;
    env.config.contacts.leavers = LeaverAction::Keep;
    env.sync().await;
    let m = env.member_emails().await;
    let leaver_id = env.user_by_email(&m[0]).await.id.unwrap();
    env.delete_user(&m[0]).await;
    let r = env.sync().await;
    assert_eq!(r.totals.deleted, 0);
    assert_eq!(r.totals.relabelled, r.totals.targets);
    let kept = env
        .managed_of(&m[1])
        .await
        .into_iter()
        .find(|p| markers::managed_id(p) == Some(leaver_id.as_str()))
        .expect("kept");
    assert_eq!(
        kept.client_data_value(markers::STATE),
        Some(markers::STATE_LEFT)
    );
    // Re-planning is empty: the relabel converged.
    let again = env.sync().await;
    assert_eq!(writes(&again), 0);
}

#[tokio::test]
async fn a_scope_change_removes_only_the_users_who_left_the_scope() {
    let mut env = Env::start(org(10, 1)).await;
    env.sync().await;
    let m = env.member_emails().await;
    let out_id = env.user_by_email(&m[0]).await.id.unwrap();
    // Who has the contact (not those who saved that colleague themselves: "skip").
    let mut had = BTreeSet::new();
    let everyone: Vec<String> = env
        .users()
        .await
        .values()
        .filter_map(|u| u.primary_email.clone())
        .collect();
    for email in &everyone {
        if env
            .managed_of(email)
            .await
            .iter()
            .any(|p| markers::managed_id(p) == Some(out_id.as_str()))
        {
            had.insert(email.clone());
        }
    }
    assert!(!had.is_empty());
    env.config.contacts.sources.exclude = vec![m[0].clone()];
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0);
    // Everyone who had it loses exactly that contact; the excluded user keeps receiving.
    for u in &r.users {
        let expected = usize::from(had.contains(&u.email));
        assert_eq!(u.deleted, expected, "{}", u.email);
        assert_eq!(u.created + u.updated, 0);
    }
    for email in &m[1..] {
        assert!(
            !env.managed_of(email)
                .await
                .iter()
                .any(|p| markers::managed_id(p) == Some(out_id.as_str()))
        );
    }
}

#[tokio::test]
async fn the_guard_stops_a_mass_deletion_before_any_write_and_force_overrides_it() {
    let mut env = Env::start(org(10, 0)).await;
    env.sync().await;
    let m = env.member_emails().await;
    let before = env.managed_of(&m[0]).await.len();
    // A typo in the scope: nobody is selected any more.
    env.config.contacts.sources.org_units = vec!["/No-Such-OU".into()];
    let r = env.sync().await;
    let GuardVerdict::Stop {
        reason,
        what_to_check,
    } = &r.guard
    else {
        panic!("expected a stop, got {:?}", r.guard)
    };
    assert!(reason.contains("would remove"), "{reason}");
    assert!(what_to_check.contains("--force"));
    assert!(r.guard_stopped());
    assert_eq!(writes(&r), 0);
    assert_eq!(r.calls.total, 1, "only the directory was read");
    assert_eq!(env.managed_of(&m[0]).await.len(), before);

    let forced = env
        .run(&ContactsOptions {
            force: true,
            ..sync()
        })
        .await;
    assert!(matches!(forced.guard, GuardVerdict::Forced { .. }));
    assert_eq!(env.managed_of(&m[0]).await.len(), 0);
}

#[tokio::test]
async fn without_history_the_per_user_guard_stops_each_book_before_writing() {
    let mut env = Env::start(org(10, 0)).await;
    env.sync().await;
    // A new state store (say, a new machine): no previous run to predict from.
    env.store = std::sync::Arc::new(
        orgsync_store_sqlite::SqliteStore::connect("sqlite::memory:")
            .await
            .unwrap(),
    );
    let m = env.member_emails().await;
    env.config.contacts.sources.exclude = m[..5].to_vec();
    let before = env.managed_of(&m[6]).await.len();
    let r = env.sync().await;
    assert!(r.guard.may_proceed(), "nothing to predict from");
    assert!(r.totals.users_guarded > 0);
    assert!(r.guard_stopped());
    let guarded = r.users.iter().find(|u| u.email == m[6]).unwrap();
    assert_eq!(guarded.status, UserStatus::Guarded);
    assert!(guarded.reason.as_deref().unwrap().contains("--force"));
    assert_eq!(env.managed_of(&m[6]).await.len(), before);
}

#[tokio::test]
async fn an_expired_sync_token_falls_back_to_a_full_read_and_writes_nothing() {
    let env = Env::start(org(6, 1)).await;
    env.sync().await;
    let m = env.member_emails().await;
    assert!(env.emulator.emulator.people.expire_sync_tokens(&m[0]));
    let r = env.sync().await;
    assert_eq!(writes(&r), 0);
    let u = r.users.iter().find(|u| u.email == m[0]).unwrap();
    assert_eq!(u.path, Some(ReadPath::Full));
    assert_eq!(u.status, UserStatus::Unchanged);
    assert_eq!(r.totals.users_incremental, r.totals.targets - 1);
    // And the token is fresh again.
    let again = env.sync().await;
    assert_eq!(again.totals.users_incremental, again.totals.targets);
}

#[tokio::test]
async fn a_crash_mid_run_then_a_rerun_converges_without_duplicates() {
    let mut env = Env::start(org(30, 2)).await;
    // A state file, as a killed process leaves it. In memory, a query cut off by the kill
    // can take the pool's only connection, and with it the whole database.
    let dir = tempfile::tempdir().unwrap();
    env.store = std::sync::Arc::new(
        orgsync_store_sqlite::SqliteStore::open_path(dir.path().join("state.db"))
            .await
            .unwrap(),
    );
    let personal = env.personal_fingerprints().await;
    // Kill the run part-way (the task is dropped mid-flight, like a killed process).
    let client = env.client();
    let store = env.store.clone();
    let config = env.config.clone();
    let task = tokio::spawn(async move {
        orgsync_jobs::contacts::run(
            &client,
            store,
            &config,
            &ContactsOptions {
                concurrency: Some(4),
                ..sync()
            },
        )
        .await
    });
    let emu = env.emulator.emulator.clone();
    let mut f = emu.faults.settings();
    f.latency_ms = 20;
    emu.faults.set(f.clone()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    task.abort();
    let _ = task.await;
    f.latency_ms = 0;
    emu.faults.set(f).unwrap();
    let m = env.member_emails().await;
    let mut filled = 0;
    for email in &m {
        filled += usize::from(!env.managed_of(email).await.is_empty());
    }
    assert!(
        filled > 0 && filled < m.len(),
        "the kill was not mid-run ({filled} of {} books written)",
        m.len()
    );
    // A duplicate made behind orgsync's back (another tool copying its contacts).
    if let Some(one) = env.managed_of(&m[0]).await.first() {
        let copy = Person {
            resource_name: None,
            etag: None,
            metadata: None,
            ..one.clone()
        };
        env.observer
            .people(&m[0])
            .create_contact(&copy, "names")
            .await
            .unwrap();
    }
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0);
    assert_converged(&env).await;
    assert_eq!(env.personal_fingerprints().await, personal);
    let again = env.sync().await;
    assert_eq!(writes(&again), 0);
}

#[tokio::test]
async fn stale_contacts_of_ours_in_a_book_without_label_or_state_are_caught_by_the_read_back() {
    // A state file lost and the label deleted by hand, but orgsync's contacts still in
    // the book: the run takes the fresh path (create, then one read) believing the book
    // holds nothing of its own. The read-back's marker check must notice, read in full
    // and repair: no duplicate survives.
    let env = Env::start(org(6, 1)).await;
    let m = env.member_emails().await;
    let colleague = env.user_by_email(&m[1]).await;
    let stale = Person {
        names: vec![Name {
            given_name: Some("Stale".into()),
            family_name: Some("Copy".into()),
            ..Default::default()
        }],
        client_data: vec![
            ClientData::new(markers::SOURCE, markers::SOURCE_VALUE),
            ClientData::new(markers::ID, colleague.id.clone().unwrap()),
        ],
        ..Default::default()
    };
    env.observer
        .people(&m[0])
        .create_contact(&stale, "names")
        .await
        .unwrap();
    let personal = env.personal_fingerprints().await;

    let first = env.sync().await;
    assert_eq!(first.totals.users_failed, 0);
    let user = first.users.iter().find(|u| u.email == m[0]).unwrap();
    assert_eq!(user.path, Some(ReadPath::Fresh));
    assert_eq!(user.duplicates_merged, 1, "{user:?}");
    // One extra read, for that book only.
    assert_eq!(
        first.calls.by_method["people.people.connections.list"] as usize,
        first.totals.targets + 1
    );
    assert_converged(&env).await;
    let names: Vec<String> = env
        .managed_of(&m[0])
        .await
        .iter()
        .filter(|p| markers::managed_id(p) == colleague.id.as_deref())
        .map(|p| p.names[0].family_name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names.len(), 1);
    assert_ne!(names[0], "Copy", "the stale copy was rewritten or removed");
    assert_eq!(env.personal_fingerprints().await, personal);

    // The repaired book is read in full once more (a repair is not taken on trust),
    // then every book is back on the one-read shortcut.
    let again = env.sync().await;
    assert_eq!(writes(&again), 0);
    assert_eq!(again.totals.users_incremental, again.totals.targets - 1);
    let third = env.sync().await;
    assert_eq!(third.totals.users_incremental, third.totals.targets);
}

#[tokio::test]
async fn twenty_percent_injected_errors_lose_nothing_and_duplicate_nothing() {
    let env = Env::start(org(25, 2)).await;
    let personal = env.personal_fingerprints().await;
    env.error_rate(0.2);
    let mut runs = 0;
    loop {
        runs += 1;
        let r = env.try_run(&sync()).await;
        if let Ok(r) = &r
            && r.totals.users_failed == 0
        {
            assert!(
                r.calls.retries > 0,
                "errors were injected, retries expected"
            );
            break;
        }
        assert!(runs < 5, "did not converge in 5 runs: {r:?}");
    }
    env.error_rate(0.0);
    assert_converged(&env).await;
    assert_eq!(env.personal_fingerprints().await, personal);
}

#[tokio::test]
async fn plan_changes_nothing_and_undo_removes_only_what_orgsync_created() {
    let env = Env::start(org(8, 2)).await;
    let personal = env.personal_fingerprints().await;
    let plan = env.run(&ContactsOptions::new(Mode::Plan)).await;
    assert!(plan.totals.created > 0);
    let u = &plan.users[0];
    assert_eq!(u.actions.len(), u.created);
    assert!(
        u.actions
            .iter()
            .all(|a| a.action == "create" && !a.name.is_empty())
    );
    let m = env.member_emails().await;
    assert!(env.managed_of(&m[0]).await.is_empty(), "plan wrote");

    env.sync().await;
    let undo = env.run(&ContactsOptions::new(Mode::Undo)).await;
    assert_eq!(undo.totals.users_failed, 0);
    for email in &m {
        assert!(env.managed_of(email).await.is_empty());
        let groups: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
            env.observer
                .people(email)
                .contact_groups_list(Some("name,clientData")),
        )
        .await
        .unwrap();
        assert!(
            !groups
                .iter()
                .any(|g| g.name.as_deref() == Some("Company directory"))
        );
    }
    assert_eq!(env.personal_fingerprints().await, personal);
    assert!(env.store.list_contacts_state().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_deleted_label_is_recreated_and_a_renamed_one_follows_the_config() {
    let mut env = Env::start(org(5, 0)).await;
    env.sync().await;
    let m = env.member_emails().await;
    let people = env.observer.people(&m[0]);
    let groups = |people: orgsync_client::people::People| async move {
        futures::TryStreamExt::try_collect::<Vec<_>>(
            people.contact_groups_list(Some("name,clientData")),
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|g| {
            g.client_data
                .iter()
                .any(|c| c.key.as_deref() == Some(markers::SOURCE))
        })
        .collect::<Vec<_>>()
    };
    let ours = groups(people.clone()).await;
    assert_eq!(ours.len(), 1);
    // The person deletes the label (keeping the contacts).
    people
        .contact_groups_delete(ours[0].resource_name.as_deref().unwrap(), false)
        .await
        .unwrap();
    env.config.contacts.group_name = "Colleagues".into();
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0, "{:?}", r.users);
    let now = groups(people.clone()).await;
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].name.as_deref(), Some("Colleagues"));
    let group = now[0].resource_name.clone().unwrap();
    for p in env.managed_of(&m[0]).await {
        assert!(
            p.group_resource_names().any(|g| g == group),
            "a contact lost its label"
        );
    }
    // Another user's existing label was renamed in place.
    let other = groups(env.observer.people(&m[1])).await;
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].name.as_deref(), Some("Colleagues"));
    assert_converged(&env).await;
}

/// The photo each of `email`'s managed contacts shows, by directory id (bytes fetched
/// from the contact's photo URL; default photos left out).
async fn contact_photos(env: &Env, email: &str) -> BTreeMap<String, Vec<u8>> {
    use futures::TryStreamExt;
    let listed: Vec<Person> = env
        .observer
        .people(email)
        .connections_list(orgsync_client::people::ConnectionsParams::new(
            "clientData,photos",
        ))
        .try_collect()
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut out = BTreeMap::new();
    for p in &listed {
        let Some(id) = markers::managed_id(p) else {
            continue;
        };
        if let Some(url) = p
            .photos
            .iter()
            .find(|ph| ph.default != Some(true))
            .and_then(|ph| ph.url.clone())
        {
            let bytes = http.get(&url).send().await.unwrap().bytes().await.unwrap();
            out.insert(id.to_string(), bytes.to_vec());
        }
    }
    out
}

/// Every source's Directory photo, by directory id.
async fn directory_photos(env: &Env) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (id, u) in env.users().await {
        if u.thumbnail_photo_etag.is_none() {
            continue;
        }
        let photo = env
            .observer
            .directory()
            .users_photos_get(&id)
            .await
            .unwrap()
            .expect("a user with a photo etag has a photo");
        let bytes =
            orgsync_client::directory::decode_photo_data(photo.photo_data.as_deref().unwrap())
                .unwrap();
        out.insert(id, bytes);
    }
    out
}

#[tokio::test]
async fn photos_are_copied_once_per_run_and_reuploaded_only_when_they_change() {
    let env = Env::start(EmulatorConfig {
        photo_share: 0.5,
        ..org(8, 1)
    })
    .await;
    let mut env = env;
    env.config.contacts.include_photos = true;
    let wanted = directory_photos(&env).await;
    assert!(
        wanted.len() >= 2,
        "the generated org has photos: {}",
        wanted.len()
    );

    let first = env.sync().await;
    assert_eq!(first.totals.users_failed, 0);
    assert_eq!(first.totals.photos_failed, 0);
    let targets = first.totals.targets;
    // Each target receives every other source's photo; the bytes are read from the
    // Directory once per source per run, not once per target.
    let users = env.users().await;
    let mut expected_uploads = 0;
    for target in &first.users {
        let want: BTreeMap<String, Vec<u8>> = wanted
            .iter()
            .filter(|(id, _)| **id != target.directory_id)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        expected_uploads += want.len();
        assert_eq!(
            contact_photos(&env, &target.email).await,
            want,
            "{}'s contact photos",
            target.email
        );
    }
    assert_eq!(targets, users.len());
    assert_eq!(first.totals.photos, expected_uploads);
    assert_eq!(
        first.calls.by_method["directory.users.photos.get"] as usize,
        wanted.len()
    );
    assert_eq!(
        first.calls.by_method["people.people.updateContactPhoto"] as usize,
        expected_uploads
    );

    // Nothing changed: no photo read, no upload, one read per user.
    let second = env.sync().await;
    assert_eq!(second.totals.photos, 0);
    assert_eq!(second.totals.users_incremental, targets);
    assert_eq!(writes(&second), 0, "{:?}", second.calls);

    // One person changes their photo: exactly one upload per other target.
    let (changed_id, _) = wanted.iter().next().unwrap();
    // A different valid image: another user's photo will do.
    let new_png = wanted.values().nth(1).unwrap().clone();
    assert_ne!(&new_png, &wanted[changed_id]);
    env.admin
        .directory()
        .users_photos_update(changed_id, &new_png, Some("image/png"))
        .await
        .unwrap();
    let third = env.sync().await;
    assert_eq!(third.totals.photos_failed, 0);
    assert_eq!(third.totals.photos, targets - 1, "{}", third.render_text());
    for target in first.users.iter().filter(|t| t.directory_id != *changed_id) {
        let photos = contact_photos(&env, &target.email).await;
        assert_eq!(
            photos.get(changed_id),
            Some(&new_png),
            "{} does not show the new photo",
            target.email
        );
    }
    let fourth = env.sync().await;
    assert_eq!(fourth.totals.photos, 0);
    assert_eq!(writes(&fourth), 0);
}

#[tokio::test]
async fn a_failing_photo_upload_never_fails_the_user_and_is_retried_next_run() {
    let mut env = Env::start(EmulatorConfig {
        photo_share: 0.5,
        ..org(6, 0)
    })
    .await;
    env.config.contacts.include_photos = true;
    let emu = env.emulator.emulator.clone();
    let mut f = emu.faults.settings();
    f.overrides = vec![orgsync_emulator::faults::MethodOverride {
        method: "people.people.updateContactPhoto".into(),
        latency_ms: None,
        error_rate: Some(1.0),
        error_kinds: None,
        quota_per_user_per_minute: None,
    }];
    emu.faults.set(f.clone()).unwrap();
    let first = env.sync().await;
    assert_eq!(first.totals.users_failed, 0, "{}", first.render_text());
    assert!(first.totals.photos_failed > 0);
    assert_eq!(first.totals.photos, 0);
    assert!(
        first.totals.created > 0,
        "the contacts themselves were written"
    );
    assert_converged(&env).await;

    f.overrides.clear();
    emu.faults.set(f).unwrap();
    let second = env.sync().await;
    assert_eq!(second.totals.photos, first.totals.photos_failed);
    assert_eq!(second.totals.photos_failed, 0);
    assert_eq!(second.totals.created, 0, "no duplicates");
    let third = env.sync().await;
    assert_eq!(third.totals.photos, 0);
    assert_eq!(writes(&third), 0);
}

#[tokio::test]
async fn a_non_admin_subject_is_named_with_what_to_fix() {
    let mut env = Env::start(org(6, 0)).await;
    let users = env.users().await;
    let non_admin = users
        .values()
        .find(|u| u.is_admin != Some(true))
        .and_then(|u| u.primary_email.clone())
        .expect("a non-admin user");
    env.config.google.admin_subject = Some(non_admin.clone());
    let err = orgsync_jobs::error::chain_text(&env.try_run(&sync()).await.unwrap_err());
    assert!(err.contains("403"), "{err}");
    assert!(err.contains("admin_subject"), "{err}");
    assert!(err.contains(&non_admin), "{err}");
    assert!(err.contains("Users → Read"), "{err}");
}

/// Paced to Google's quotas (the shipped default), a plan predicts the first sync's time
/// and names the limit that binds as the Cloud console names it; the sync predicts it
/// again before writing and reports what it took. Each target here receives its
/// colleagues in one batch create: 6 critical writes against 30 per user per minute, so
/// 0.2 quota minutes, 12 s. Without pacing (an emulator without quotas) there is no
/// prediction at all rather than "about 0 s".
#[tokio::test]
async fn a_plan_and_a_sync_predict_their_quota_time_and_name_the_binding_limit() {
    let mut env = Env::start(org(6, 0)).await;
    let unpaced = env.run(&ContactsOptions::new(Mode::Plan)).await;
    assert!(unpaced.quota.predicted.is_none(), "{:?}", unpaced.quota);
    assert!(!unpaced.render_text().contains("by quota"));

    env.config.google.quotas.pace = true;
    let plan = env.run(&ContactsOptions::new(Mode::Plan)).await;
    let predicted = plan.quota.predicted.as_ref().expect("a plan predicts");
    let binding = predicted.estimate.binding.as_ref().expect("a limit binds");
    assert_eq!(
        (binding.metric, binding.scope, binding.limit),
        ("people.write", "user", 30)
    );
    assert!((predicted.seconds - 12.0).abs() < 1e-9, "{predicted:?}");
    let text = plan.render_text();
    assert!(
        text.contains(
            "time: by quota a sync would take about 12 s, bound by 'Critical write requests \
             (Contact and Profile Updates) per minute per user' (30); at 60 it would take \
             about 6 s\n"
        ),
        "{text}"
    );

    let synced = env.sync().await;
    let before = synced.quota.predicted.as_ref().expect("a sync predicts");
    assert_eq!(
        before.estimate.binding.as_ref().map(|b| b.metric),
        Some("people.write")
    );
    assert!((before.seconds - 12.0).abs() < 1e-9, "{before:?}");
    assert!(
        synced
            .render_text()
            .contains("time: predicted by quota about 12 s")
    );
    assert_eq!(synced.quota.http_429, 0);
}

/// The contacts run reads the directory as a partial response
/// (`contacts::directory_fields`). Over a generated org with photos, aliases, employee
/// ids, suspended, archived and hidden people, and a custom phone type added, the partial
/// read must select the same users under every kind of scope rule and map each to the
/// same contact, byte for byte, as a read of whole users. A field the mapping or the scope
/// reads but the mask leaves out breaks this.
#[tokio::test]
async fn a_partial_directory_read_maps_and_selects_exactly_as_a_whole_one() {
    use orgsync_core::contacts::{DesiredDirectory, MappingOptions};
    use orgsync_core::scope::ScopeRules;
    use orgsync_jobs::directory::read_directory;

    let env = Env::start(EmulatorConfig {
        photo_share: 0.5,
        ..org(60, 0)
    })
    .await;
    let members = env.member_emails().await;
    env.update_user(&members[5], |u| u.suspended = Some(true))
        .await;
    env.update_user(&members[6], |u| u.archived = Some(true))
        .await;
    env.update_user(&members[7], |u| {
        u.include_in_global_address_list = Some(false)
    })
    .await;
    env.give_desk_phone(&members[3]).await;
    let alias_holder = env
        .users()
        .await
        .into_values()
        .find(|u| u.aliases.as_ref().is_some_and(|a| !a.is_empty()))
        .expect("the generated org has someone with an alias");
    let alias = alias_holder.aliases.as_ref().unwrap()[0].clone();

    let variants = [
        ScopeRules::default(),
        ScopeRules {
            include_suspended: true,
            include_archived: true,
            include_hidden_from_gal: true,
            ..ScopeRules::default()
        },
        ScopeRules {
            org_units: vec!["/Sales".into()],
            include: vec![alias.clone()],
            ..ScopeRules::default()
        },
        ScopeRules {
            exclude: vec![alias],
            ..ScopeRules::default()
        },
    ];
    let rules: Vec<&ScopeRules> = variants.iter().collect();
    let client = env.client();
    let google = &env.config.google;
    let whole = read_directory(&client, google, &rules, "basic", None, &[])
        .await
        .unwrap();
    let fields = orgsync_jobs::contacts::directory_fields();
    let partial = read_directory(&client, google, &rules, "basic", Some(&fields), &[])
        .await
        .unwrap();

    // Not vacuous: the whole read has what the mask must carry...
    let any = |f: &dyn Fn(&orgsync_wire::directory::User) -> bool| whole.users.iter().any(f);
    assert!(any(&|u| u.thumbnail_photo_etag.is_some()), "photos");
    assert!(any(&|u| u
        .external_ids
        .as_ref()
        .is_some_and(|x| !x.is_empty())));
    assert!(any(&|u| u
        .organizations
        .as_ref()
        .is_some_and(|o| !o.is_empty())));
    assert!(any(&|u| u.suspended == Some(true)) && any(&|u| u.archived == Some(true)));
    assert!(any(&|u| u.include_in_global_address_list == Some(false)));
    // ...and the partial read really is partial.
    assert_eq!(whole.users.len(), partial.users.len());
    assert!(
        partial
            .users
            .iter()
            .all(|u| u.emails.is_none() && u.etag.is_none() && u.creation_time.is_none()),
        "the emulator ignored `fields`"
    );

    let opts = MappingOptions {
        include_aliases: true,
        include_employee_id: true,
        include_photos: true,
        ..MappingOptions::default()
    };
    for rules in &variants {
        let (a, b) = (whole.select(rules), partial.select(rules));
        assert!(!a.is_empty(), "{rules:?} selects someone");
        assert_eq!(
            a.users.keys().collect::<Vec<_>>(),
            b.users.keys().collect::<Vec<_>>(),
            "{rules:?}"
        );
        let (da, db) = (
            DesiredDirectory::build(&a, &opts),
            DesiredDirectory::build(&b, &opts),
        );
        for id in a.users.keys() {
            assert_eq!(da.new_person_json(id), db.new_person_json(id), "{id}");
        }
        assert_eq!(da.digest(), db.digest(), "{rules:?}");
    }
}
