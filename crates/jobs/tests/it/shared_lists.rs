//! End-to-end: shared lists (a CSV file, a person's label, the meeting rooms) and
//! department labels, against the emulator over real HTTP.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use orgsync_core::contacts::{LabelBy, markers};
use orgsync_emulator::EmulatorConfig;
use orgsync_jobs::config::SharedListConfig;
use orgsync_jobs::contacts::{ContactsOptions, Mode};
use orgsync_jobs::error::FailureKind;
use orgsync_wire::people::{ContactGroup, EmailAddress, Membership, Name, Person, PhoneNumber};

use crate::common::Env;

/// A sync that must stop before any write with a configuration error (exit 2): its
/// whole message.
async fn config_error(env: &Env) -> String {
    let err = env
        .try_run(&ContactsOptions::new(Mode::Sync))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Config, "{err:?}");
    orgsync_jobs::error::chain_text(&err)
}

const LABEL_FIELDS: &str = "name,clientData,groupType,metadata";

/// `email`'s contact groups by name (user groups only).
async fn labels_of(env: &Env, email: &str) -> BTreeMap<String, ContactGroup> {
    env.observer
        .people(email)
        .contact_groups_list(Some(LABEL_FIELDS))
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .filter(|g| g.group_type.as_deref() == Some("USER_CONTACT_GROUP"))
        .filter_map(|g| Some((g.name.clone()?, g)))
        .collect()
}

/// orgsync's contacts of `email` that are in the label named `label`, by `orgsync.id`.
async fn in_label(env: &Env, email: &str, label: &str) -> BTreeMap<String, Person> {
    let Some(rn) = labels_of(env, email)
        .await
        .get(label)
        .and_then(|g| g.resource_name.clone())
    else {
        return BTreeMap::new();
    };
    env.managed_of(email)
        .await
        .into_iter()
        .filter(|p| p.group_resource_names().any(|g| g == rn))
        .filter_map(|p| Some((markers::managed_id(&p)?.to_string(), p)))
        .collect()
}

fn csv(rows: usize, skip: Option<usize>, phone_of_3: &str) -> String {
    let mut out =
        String::from("key,given_name,family_name,organization,email,phone,notes,address\n");
    for i in 0..rows {
        if Some(i) == skip {
            continue;
        }
        let phone = if i == 3 {
            phone_of_3.to_string()
        } else {
            format!("+44 20 7946 {i:04}")
        };
        // Row 3 moves with its number; row 5 has a note and a two-line address.
        let street = if i == 3 && phone_of_3.ends_with("9999") {
            "2 New Rd"
        } else {
            "1 Old Rd"
        };
        let (notes, address) = if i == 3 || i == 5 {
            ("Deliveries before 9", format!("\"{street},\nLondon\""))
        } else {
            ("", String::new())
        };
        out.push_str(&format!(
            "v{i},Vera,Vendor{i},Vendor {i} Ltd,v{i}@vendors.example,{phone},{notes},{address}\n"
        ));
    }
    out
}

fn file_list(name: &str, path: &std::path::Path) -> SharedListConfig {
    SharedListConfig {
        name: name.into(),
        file: Some(path.to_path_buf()),
        ..SharedListConfig::default()
    }
}

#[tokio::test]
async fn a_csv_list_of_fifty_rows_reaches_every_book_and_follows_a_changed_and_a_removed_row() {
    let mut env = Env::start(EmulatorConfig::for_tests(5)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vendors.csv");
    std::fs::write(&path, csv(50, None, "+44 20 7946 0003")).unwrap();
    env.config.contacts.shared_lists = vec![file_list("Suppliers", &path)];

    let first = env.sync().await;
    assert_eq!(first.totals.users_failed, 0, "{:#?}", first.users);
    let users = env.users().await;
    let targets = users.len();
    assert_eq!(first.totals.created, targets * (targets - 1 + 50));
    for u in users.values() {
        let email = u.primary_email.as_deref().unwrap();
        let vendors = in_label(&env, email, "Suppliers").await;
        assert_eq!(vendors.len(), 50, "{email}");
        let v7 = &vendors["list:Suppliers:v7"];
        assert_eq!(v7.names[0].family_name.as_deref(), Some("Vendor7"));
        let v5 = &vendors["list:Suppliers:v5"];
        assert_eq!(
            v5.biographies[0].value.as_deref(),
            Some("Deliveries before 9")
        );
        assert_eq!(
            v5.extra["addresses"][0]["formattedValue"], "1 Old Rd,\nLondon",
            "{email}"
        );
        // Suppliers are not colleagues: not in the company directory label.
        let colleagues = in_label(&env, email, "Company directory").await;
        assert_eq!(colleagues.len(), targets - 1, "{email}");
        assert!(colleagues.keys().all(|id| !markers::is_list_id(id)));
    }

    // Row 3's number changes and row 9 goes: one update and one delete per book.
    std::fs::write(&path, csv(50, Some(9), "+44 20 7946 9999")).unwrap();
    let second = env.sync().await;
    assert_eq!(second.totals.created, 0);
    assert_eq!(second.totals.updated, targets);
    assert_eq!(second.totals.deleted, targets);
    for u in users.values() {
        let email = u.primary_email.as_deref().unwrap();
        let vendors = in_label(&env, email, "Suppliers").await;
        assert!(!vendors.contains_key("list:Suppliers:v9"), "{email}");
        let phones: Vec<&str> = vendors["list:Suppliers:v3"]
            .phone_numbers
            .iter()
            .filter_map(|p| p.value.as_deref())
            .collect();
        assert_eq!(phones, ["+44 20 7946 9999"], "{email}");
        assert_eq!(
            vendors["list:Suppliers:v3"].extra["addresses"][0]["formattedValue"],
            "2 New Rd,\nLondon"
        );
    }
    let third = env.sync().await;
    assert_eq!(
        third.totals.created + third.totals.updated + third.totals.deleted,
        0
    );
}

#[tokio::test]
async fn a_bad_csv_row_stops_the_run_before_any_write_naming_line_and_column() {
    let mut env = Env::start(EmulatorConfig::for_tests(4)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vendors.csv");
    std::fs::write(
        &path,
        "key,given_name,email\na,Ann,ann@v.example\nb,Bob,bob at v.example\n",
    )
    .unwrap();
    env.config.contacts.shared_lists = vec![file_list("Suppliers", &path)];
    let text = config_error(&env).await;
    assert!(text.starts_with("shared list \"Suppliers\": "), "{text}");
    assert!(
        text.contains("line 3") && text.contains("\"email\"") && text.contains("vendors.csv"),
        "{text}"
    );
    for u in env.users().await.values() {
        let email = u.primary_email.as_deref().unwrap();
        assert!(
            env.managed_of(email).await.is_empty(),
            "{email} was written"
        );
    }
}

#[tokio::test]
async fn a_label_copied_from_a_user_reaches_everyone_else_and_follows_it() {
    let mut env = Env::start(EmulatorConfig::for_tests(5)).await;
    let users = env.users().await;
    let reception = users
        .values()
        .filter_map(|u| u.primary_email.clone())
        .find(|e| !e.starts_with("admin@"))
        .unwrap();
    let people = env.observer.people(&reception);
    let label = people
        .contact_groups_create(
            ContactGroup {
                name: Some("Suppliers".into()),
                ..ContactGroup::default()
            },
            None,
        )
        .await
        .unwrap()
        .resource_name
        .unwrap();
    let mut made = Vec::new();
    for (i, (name, in_it)) in [("Plumber", true), ("Cleaner", true), ("Mum", false)]
        .into_iter()
        .enumerate()
    {
        let mut memberships = vec![Membership::group("contactGroups/myContacts")];
        if in_it {
            memberships.push(Membership::group(label.clone()));
        }
        let p = Person {
            names: vec![Name {
                given_name: Some(name.into()),
                ..Name::default()
            }],
            email_addresses: vec![EmailAddress {
                value: Some(format!("{}@outside.example", name.to_lowercase())),
                kind: Some("work".into()),
                ..EmailAddress::default()
            }],
            phone_numbers: vec![PhoneNumber {
                value: Some(format!("+1 555 010{i}")),
                ..PhoneNumber::default()
            }],
            memberships,
            ..Person::default()
        };
        made.push(people.create_contact(&p, "names,metadata").await.unwrap());
    }
    env.config.contacts.shared_lists = vec![SharedListConfig {
        name: "Trades".into(),
        from_user: Some(reception.clone()),
        from_label: Some("Suppliers".into()),
        ..SharedListConfig::default()
    }];
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0, "{:#?}", r.users);
    for u in users.values() {
        let email = u.primary_email.as_deref().unwrap();
        let got: BTreeSet<String> = in_label(&env, email, "Trades")
            .await
            .values()
            .filter_map(|p| p.names.first()?.given_name.clone())
            .collect();
        if *email == reception {
            assert!(
                got.is_empty(),
                "the source person gets no copies of their own"
            );
        } else {
            assert_eq!(
                got,
                BTreeSet::from(["Cleaner".into(), "Plumber".into()]),
                "{email}"
            );
        }
    }
    // The receptionist takes the cleaner out of the label: it leaves every book.
    let cleaner = made[1].resource_name.clone().unwrap();
    people
        .contact_group_members_modify(&label, Vec::new(), vec![cleaner])
        .await
        .unwrap();
    let r = env.sync().await;
    assert_eq!(r.totals.deleted, users.len() - 1);

    // A label the person does not have: exit 2, naming the labels they do have.
    env.config.contacts.shared_lists[0].from_label = Some("Vendors".into());
    let text = config_error(&env).await;
    assert!(
        text.contains("\"Vendors\"") && text.contains("Suppliers"),
        "{text}"
    );
}

#[tokio::test]
async fn meeting_rooms_reach_every_book_once_their_scope_is_delegated() {
    let mut env = Env::start(EmulatorConfig::for_tests(6)).await;
    env.config.contacts.shared_lists = vec![SharedListConfig {
        name: "Meeting rooms".into(),
        rooms: true,
        ..SharedListConfig::default()
    }];
    // Not delegated (as on a new Workspace): a Google refusal naming the scope.
    let err = env
        .try_run(&ContactsOptions::new(Mode::Sync))
        .await
        .unwrap_err();
    let text = orgsync_jobs::error::chain_text(&err);
    assert!(
        text.contains("admin.directory.resource.calendar.readonly"),
        "{text}"
    );
    assert!(matches!(err.kind(), FailureKind::Google(_)), "{err:?}");

    env.delegate_also(orgsync_wire::scopes::DIRECTORY_RESOURCE_CALENDAR_READONLY);
    let rooms: Vec<_> = env
        .client()
        .directory()
        .calendar_resources_list(None)
        .try_collect()
        .await
        .unwrap();
    assert!(rooms.len() >= 2);
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0, "{:#?}", r.users);
    for u in env.users().await.values() {
        let email = u.primary_email.as_deref().unwrap();
        let got = in_label(&env, email, "Meeting rooms").await;
        assert_eq!(got.len(), rooms.len(), "{email}");
        for room in &rooms {
            let p = &got[&format!("list:Meeting rooms:{}", room.resource_id)];
            let addr = p.email_addresses.first().and_then(|e| e.value.clone());
            assert_eq!(addr, room.resource_email, "{email}");
        }
    }
}

/// Department of each active user, by id.
async fn departments(env: &Env) -> BTreeMap<String, String> {
    env.users()
        .await
        .into_iter()
        .filter_map(|(id, u)| Some((id, u.primary_organization()?.department.clone()?)))
        .collect()
}

#[tokio::test]
async fn department_labels_follow_a_department_change_and_go_when_turned_off() {
    let mut env = Env::start(EmulatorConfig::for_tests(12)).await;
    env.config.contacts.label_by = Some(LabelBy::Department);
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0, "{:#?}", r.users);
    let depts = departments(&env).await;
    let users = env.users().await;
    let (mover_id, mover) = users
        .iter()
        .find(|(id, u)| {
            depts.contains_key(*id) && !u.primary_email.as_deref().unwrap().starts_with("admin@")
        })
        .map(|(id, u)| (id.clone(), u.primary_email.clone().unwrap()))
        .unwrap();
    let someone_else = users
        .values()
        .filter_map(|u| u.primary_email.clone())
        .find(|e| *e != mover)
        .unwrap();
    let old = format!("Company directory · {}", depts[&mover_id]);
    assert!(
        in_label(&env, &someone_else, &old)
            .await
            .contains_key(&mover_id)
    );

    env.update_user(&mover, |u| {
        u.organizations.as_mut().unwrap()[0].department = Some("Moonshots".into());
    })
    .await;
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0, "{:#?}", r.users);
    // Everyone else's copy moved, in one update each.
    assert_eq!(r.totals.updated, users.len() - 1);
    for u in users.values() {
        let email = u.primary_email.as_deref().unwrap();
        if *email == mover {
            continue;
        }
        let new = in_label(&env, email, "Company directory · Moonshots").await;
        assert_eq!(new.keys().collect::<Vec<_>>(), [&mover_id], "{email}");
        assert!(
            !in_label(&env, email, &old).await.contains_key(&mover_id),
            "{email}"
        );
    }
    // The mover has no label of their own department's: only they are in it.
    assert!(
        !labels_of(&env, &mover)
            .await
            .contains_key("Company directory · Moonshots")
    );

    // label_by off: every department label goes; the contacts stay in the main label.
    env.config.contacts.label_by = None;
    let r = env.sync().await;
    assert_eq!(r.totals.deleted, 0);
    for u in users.values() {
        let email = u.primary_email.as_deref().unwrap();
        let labels = labels_of(&env, email).await;
        assert!(
            labels
                .keys()
                .all(|l| !l.starts_with("Company directory · ")),
            "{email}: {:?}",
            labels.keys()
        );
        assert_eq!(
            in_label(&env, email, "Company directory").await.len(),
            users.len() - 1
        );
    }

    // Undo removes every label orgsync made, extra ones included.
    env.config.contacts.label_by = Some(LabelBy::Department);
    env.sync().await;
    env.run(&ContactsOptions::new(Mode::Undo)).await;
    for u in users.values() {
        let email = u.primary_email.as_deref().unwrap();
        let labels = labels_of(&env, email).await;
        assert!(
            labels.values().all(|g| !g
                .client_data
                .iter()
                .any(|c| c.key.as_deref() == Some(markers::SOURCE))),
            "{email}: {:?}",
            labels.keys()
        );
    }
}

#[tokio::test]
async fn a_misspelt_custom_attribute_stops_the_run_once_schemas_can_be_read() {
    let mut env = Env::start(EmulatorConfig::for_tests(4)).await;
    env.emulator.emulator.directory.write().define_schema(
        orgsync_emulator::directory::schemas::schema(
            "HR",
            &[("CostCentre", "STRING"), ("Level", "STRING")],
        ),
    );
    env.config.contacts.custom_fields = vec![orgsync_core::contacts::CustomField {
        schema: "HR".into(),
        field: "CostCenter".into(),
        label: "Cost centre".into(),
    }];
    // The schema scope not delegated (as in setups from before the check): the run goes on.
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0);
    assert_eq!(r.custom_fields_unseen, ["HR.CostCenter"]);

    env.delegate_also(orgsync_wire::scopes::DIRECTORY_USERSCHEMA_READONLY);
    let text = config_error(&env).await;
    assert!(
        text.contains("contacts.custom_fields[0]")
            && text.contains("\"CostCenter\"")
            && text.contains("CostCentre, Level"),
        "{text}"
    );

    env.config.contacts.custom_fields[0].field = "CostCentre".into();
    env.config.contacts.sources.exclude_if = Some(orgsync_core::scope::FieldMatch {
        schema: "privacy".into(),
        field: "Hide".into(),
        equals: serde_json::json!(true),
    });
    let text = config_error(&env).await;
    assert!(
        text.contains("contacts.sources.exclude_if")
            && text.contains("\"privacy\"")
            && text.contains("EmployeeInfo, HR, Roles"),
        "{text}"
    );

    env.config.contacts.sources.exclude_if = None;
    let r = env.sync().await;
    assert_eq!(r.totals.users_failed, 0);
}
