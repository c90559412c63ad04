//! Shared lists and extra labels in the planner: CSV parsing (every bad input named by
//! line and column), rooms and a person's label mapped to contacts, and property tests
//! over random directories with department labels, random lists and random earlier
//! states of the book.

use std::collections::{BTreeMap, BTreeSet};

use orgsync_core::contacts::lists::{from_person, parse_csv, room_contact};
use orgsync_core::contacts::{
    DesiredDirectory, LabelBy, MappingOptions, PhoneFormat, PlanOptions, TargetUser, markers,
    plan_user,
};
use orgsync_core::scope::{DirectorySnapshot, GroupMembership, ScopeRules};
use orgsync_wire::directory::{CalendarResource, User, UserOrganization};
use orgsync_wire::people::{ClientData, EmailAddress, MY_CONTACTS, Membership, Name, Person};
use proptest::prelude::*;

use super::planner_props::{Book, cases, personal, user};

const MAIN: &str = "contactGroups/main";

fn mapping() -> MappingOptions {
    MappingOptions {
        label_by: Some(LabelBy::Department),
        label_prefix: "Company directory".into(),
        ..MappingOptions::default()
    }
}

/// The label's resource name in the test books.
fn label_rn(name: &str) -> String {
    format!("contactGroups/L-{}", name.replace(' ', "_"))
}

// ---------------------------------------------------------------------------------
// CSV

const VENDORS: &str =
    "key,given_name,family_name,organization,title,email,phone,mobile,label:Cleaning
acme,,,ACME Cleaning,,office@acme.example,+44 20 7946 0000,,yes
bob,Bob,Plumber,Bob's Pipes,Owner,bob@pipes.example,,+44 7700 900123,
";

#[test]
fn a_csv_list_maps_rows_to_list_contacts_with_their_labels() {
    let got = parse_csv("Suppliers", VENDORS, &MappingOptions::default()).unwrap();
    assert_eq!(got.len(), 2);
    let acme = &got[0];
    assert_eq!(acme.directory_id, "list:Suppliers:acme");
    assert!(markers::is_list_id(&acme.directory_id));
    assert_eq!(acme.list.as_deref(), Some("Suppliers"));
    // No personal name: the organisation is the name a phone shows.
    assert_eq!(acme.full_name, "ACME Cleaning");
    assert_eq!(acme.given_name.as_deref(), Some("ACME Cleaning"));
    assert_eq!(acme.labels, ["Suppliers", "Cleaning"]);
    assert_eq!(acme.phones[0].value, "+44 20 7946 0000");
    assert_eq!(acme.phones[0].kind, "work");
    let bob = &got[1];
    assert_eq!(bob.full_name, "Bob Plumber");
    assert_eq!(bob.labels, ["Suppliers"], "an empty label cell is no");
    assert_eq!(bob.phones[0].kind, "mobile");
    assert_eq!(
        bob.organization.as_ref().unwrap().title.as_deref(),
        Some("Owner")
    );
    assert_eq!(bob.emails[0].value, "bob@pipes.example");
}

#[test]
fn csv_phones_follow_phone_format() {
    let opts = MappingOptions {
        phone_format: PhoneFormat::E164,
        phone_region: Some("GB".into()),
        ..MappingOptions::default()
    };
    let got = parse_csv(
        "S",
        "key,phone\na,020 7946 0000\nb,not-a-number 12\n",
        &opts,
    )
    .unwrap();
    assert_eq!(got[0].phones[0].value, "+442079460000");
    assert_eq!(got[1].phones[0].value, "not-a-number 12", "kept as written");
}

fn csv_err(text: &str) -> (u64, Option<String>, String) {
    let e = parse_csv("S", text, &MappingOptions::default()).unwrap_err();
    (e.line, e.column, e.message)
}

#[test]
fn every_bad_csv_names_its_line_and_column() {
    let (line, col, msg) = csv_err("key,given_name\na,Ann\n,Bob\n");
    assert_eq!((line, col.as_deref()), (3, Some("key")));
    assert!(msg.contains("empty key"), "{msg}");

    let (line, col, msg) = csv_err("key,given_name\na,Ann\na,Bob\n");
    assert_eq!((line, col.as_deref()), (3, Some("key")));
    assert!(msg.contains("already used"), "{msg}");

    let (line, col, msg) = csv_err("key,nickname\na,Ann\n");
    assert_eq!((line, col.as_deref()), (1, Some("nickname")));
    assert!(
        msg.contains("unknown column") && msg.contains("given_name"),
        "{msg}"
    );

    let (line, col, msg) = csv_err("given_name\nAnn\n");
    assert_eq!((line, col), (1, None));
    assert!(msg.contains("\"key\""), "{msg}");

    let (line, col, msg) = csv_err("key,email\na,a@x.com\nb,not an address\n");
    assert_eq!((line, col.as_deref()), (3, Some("email")));
    assert!(msg.contains("not an email"), "{msg}");

    let (line, _, msg) = csv_err("key,given_name\na,Ann\nb,Bob,extra\n");
    assert_eq!(line, 3);
    assert!(msg.contains("3 fields") && msg.contains("2"), "{msg}");

    let (line, col, _) = csv_err("key,phone\na,no digits\n");
    assert_eq!((line, col.as_deref()), (2, Some("phone")));

    let (line, col, msg) = csv_err("key,label:\na,yes\n");
    assert_eq!((line, col.as_deref()), (1, Some("label:")));
    assert!(msg.contains("label:Cleaning"), "{msg}");

    let (line, col, msg) = csv_err("key,given_name\na,\n");
    assert_eq!((line, col.as_deref()), (2, Some("key")));
    assert!(
        msg.contains("nothing to show") || msg.contains("no name"),
        "{msg}"
    );
}

#[test]
fn a_byte_order_mark_and_blank_lines_are_accepted() {
    let got = parse_csv(
        "S",
        "\u{feff}key,given_name\na,Ann\n,\nb,Bob\n",
        &MappingOptions::default(),
    )
    .unwrap();
    let keys: Vec<&str> = got.iter().map(|d| d.directory_id.as_str()).collect();
    assert_eq!(keys, ["list:S:a", "list:S:b"]);
}

// ---------------------------------------------------------------------------------
// Rooms and a person's label

fn room(id: &str, name: &str, capacity: Option<i32>) -> CalendarResource {
    CalendarResource {
        resource_id: id.into(),
        resource_name: name.into(),
        generated_resource_name: Some(format!("HQ-2-{name} ({})", capacity.unwrap_or(0))),
        resource_email: Some(format!("c_{id}@resource.calendar.google.com")),
        capacity,
        building_id: Some("HQ".into()),
        floor_name: Some("2".into()),
        ..Default::default()
    }
}

#[test]
fn a_room_becomes_a_contact_with_its_address_place_and_capacity() {
    let d = room_contact("Rooms", &room("r1", "Lovelace", Some(8))).unwrap();
    assert_eq!(d.directory_id, "list:Rooms:r1");
    assert_eq!(d.full_name, "HQ-2-Lovelace (8)");
    assert_eq!(d.emails[0].value, "c_r1@resource.calendar.google.com");
    let org = d.organization.unwrap();
    assert_eq!(org.department.as_deref(), Some("HQ, 2"));
    assert_eq!(org.title.as_deref(), Some("Meeting room, 8 seats"));
    assert_eq!(d.labels, ["Rooms"]);
    let projector = CalendarResource {
        resource_category: Some("OTHER".into()),
        ..room("p1", "Projector", None)
    };
    assert!(room_contact("Rooms", &projector).is_none());
}

#[test]
fn a_person_label_copies_their_own_contacts_but_never_orgsyncs() {
    let mut p = personal("people/c9", Some("hotline@it.example"), Some("+1 555 0100"));
    p.names = vec![Name {
        given_name: Some("IT".into()),
        family_name: Some("Hotline".into()),
        ..Default::default()
    }];
    let d = from_person("Help", &p, &MappingOptions::default()).unwrap();
    assert_eq!(d.directory_id, "list:Help:c9");
    assert_eq!(d.full_name, "IT Hotline");
    assert_eq!(d.emails[0].value, "hotline@it.example");
    assert_eq!(d.emails[0].kind, "home", "the person's own type is kept");
    assert_eq!(d.phones[0].value, "+1 555 0100");
    assert_eq!(d.notes, None);
    // Notes and the first address come along, as a CSV row's would.
    p.biographies = vec![orgsync_wire::people::Biography {
        value: Some("Open 9-5".into()),
        ..Default::default()
    }];
    p.extra.insert(
        "addresses".into(),
        serde_json::json!([{"formattedValue": "1 Help St", "type": "work"}]),
    );
    let d = from_person("Help", &p, &MappingOptions::default()).unwrap();
    assert_eq!(d.notes.as_deref(), Some("Open 9-5"));
    assert_eq!(d.address.as_deref(), Some("1 Help St"));
    // A colleague orgsync put in that book is not copied again as a list contact.
    p.client_data = vec![
        ClientData::new(markers::SOURCE, markers::SOURCE_VALUE),
        ClientData::new(markers::ID, "42"),
    ];
    assert!(from_person("Help", &p, &MappingOptions::default()).is_none());
}

// ---------------------------------------------------------------------------------
// Planning with lists and labels

fn directory_of(users: &[User], csvs: &[(&str, String)]) -> DesiredDirectory {
    let mut dir = DesiredDirectory::build(
        &DirectorySnapshot::select(users, &ScopeRules::default(), &GroupMembership::new()),
        &mapping(),
    );
    for (name, text) in csvs {
        dir.add_list_contacts(parse_csv(name, text, &mapping()).unwrap());
    }
    dir
}

/// A target with every label its contacts need (as the executor makes them).
fn target_for(dir: &DesiredDirectory, id: &str, lists: &[&str]) -> TargetUser {
    let mut t = TargetUser {
        directory_id: id.into(),
        email: format!("{id}@x.com"),
        managed_group: Some(MAIN.into()),
        lists: lists.iter().map(|l| l.to_string()).collect(),
        ..Default::default()
    };
    t.labels = dir
        .labels_for(&t)
        .into_iter()
        .map(|l| (l.to_string(), label_rn(l)))
        .collect();
    t
}

fn worker(id: &str, dept: &str) -> User {
    let mut u = user(id, &format!("{id}@x.com"), "W", id, &[]);
    u.organizations = Some(vec![UserOrganization {
        department: Some(dept.into()),
        primary: Some(true),
        ..Default::default()
    }]);
    u
}

fn groups_of(p: &Person) -> BTreeSet<String> {
    p.group_resource_names().map(str::to_string).collect()
}

#[test]
fn list_contacts_go_in_their_label_and_colleagues_in_main_and_department() {
    let users = vec![worker("1", "Sales"), worker("2", "R&D")];
    let dir = directory_of(&users, &[("Suppliers", VENDORS.to_string())]);
    let t = target_for(&dir, "1", &["Suppliers"]);
    let mut book = Book::default();
    let plan = plan_user(&t, &dir, &book.list(), &PlanOptions::default());
    assert_eq!(plan.creates.len(), 3, "one colleague and two suppliers");
    book.apply(&plan, &dir, &t);
    let by_id = book.managed_by_id();
    let colleague = groups_of(by_id["2"][0]);
    let want: BTreeSet<String> = [
        MY_CONTACTS.to_string(),
        MAIN.into(),
        label_rn("Company directory · R&D"),
    ]
    .into();
    assert_eq!(colleague, want);
    let acme = groups_of(by_id["list:Suppliers:acme"][0]);
    let want: BTreeSet<String> = [
        MY_CONTACTS.to_string(),
        label_rn("Suppliers"),
        label_rn("Cleaning"),
    ]
    .into();
    assert_eq!(
        acme, want,
        "a supplier is not in the company directory label"
    );
    // The target's own department label exists only if a colleague is in it.
    assert!(!t.labels.contains_key("Company directory · Sales"));
}

#[test]
fn a_department_change_moves_the_contact_between_labels_in_one_update() {
    let dir = directory_of(&[worker("1", "Sales"), worker("2", "R&D")], &[]);
    let t = target_for(&dir, "1", &[]);
    let mut book = Book::default();
    book.apply(
        &plan_user(&t, &dir, &book.list(), &PlanOptions::default()),
        &dir,
        &t,
    );

    let dir2 = directory_of(&[worker("1", "Sales"), worker("2", "Sales")], &[]);
    // The executor keeps the old label known until it deletes it after the writes;
    // here both are known, so the planner must move the contact itself.
    let mut t2 = target_for(&dir2, "1", &[]);
    t2.labels.extend(t.labels.clone());
    let plan = plan_user(&t2, &dir2, &book.list(), &PlanOptions::default());
    assert_eq!(plan.updates.len(), 1);
    assert!(
        plan.updates[0]
            .update_mask
            .contains(&"memberships".to_string())
    );
    book.apply(&plan, &dir2, &t2);
    let g = groups_of(book.managed_by_id()["2"][0]);
    assert!(g.contains(&label_rn("Company directory · Sales")));
    assert!(!g.contains(&label_rn("Company directory · R&D")));
    assert!(plan_user(&t2, &dir2, &book.list(), &PlanOptions::default()).is_empty());
}

#[test]
fn a_list_the_target_no_longer_receives_is_removed_even_when_leavers_are_kept() {
    let dir = directory_of(
        &[worker("1", "Sales")],
        &[("Suppliers", VENDORS.to_string())],
    );
    let t = target_for(&dir, "1", &["Suppliers"]);
    let mut book = Book::default();
    book.apply(
        &plan_user(&t, &dir, &book.list(), &PlanOptions::default()),
        &dir,
        &t,
    );
    assert_eq!(book.managed_by_id().len(), 2);
    let keep = PlanOptions {
        leavers: orgsync_core::contacts::LeaverPolicy::Keep,
        ..PlanOptions::default()
    };
    let t2 = target_for(&dir, "1", &[]);
    let plan = plan_user(&t2, &dir, &book.list(), &keep);
    assert_eq!(plan.deletes.len(), 2, "{plan:#?}");
    assert!(
        plan.relabels.is_empty(),
        "a supplier is never a former colleague"
    );
}

#[test]
fn desired_count_counts_the_lists_a_target_receives() {
    let dir = directory_of(
        &[worker("1", "Sales"), worker("2", "Sales")],
        &[("Suppliers", VENDORS.to_string())],
    );
    assert_eq!(dir.desired_count(&target_for(&dir, "1", &[])), 1);
    assert_eq!(dir.desired_count(&target_for(&dir, "1", &["Suppliers"])), 3);
    assert_eq!(dir.desired_count(&target_for(&dir, "9", &["Suppliers"])), 4);
}

#[test]
fn labels_leave_existing_hashes_and_view_hashes_alone() {
    // Without label_by and lists nothing new is serialised: upgrading costs no write.
    let u = worker("2", "R&D");
    let plain = orgsync_core::contacts::desired_contact(&u, &MappingOptions::default()).unwrap();
    let json = serde_json::to_string(&plain).unwrap();
    assert!(
        !json.contains("labels") && !json.contains("\"list\""),
        "{json}"
    );
    let t = TargetUser {
        directory_id: "1".into(),
        managed_group: Some(MAIN.into()),
        ..Default::default()
    };
    let t_json = serde_json::to_string(&t).unwrap();
    assert!(
        !t_json.contains("lists") && !t_json.contains("labels"),
        "{t_json}"
    );
}

// ---------------------------------------------------------------------------------
// Properties

const DEPTS: [&str; 3] = ["Sales", "R&D", ""];

#[derive(Debug, Clone)]
struct Version {
    /// Department index per directory user.
    depts: Vec<usize>,
    /// Rows per list: (key, phone digit, in the extra label).
    suppliers: Vec<(u8, u8, bool)>,
    rooms: Vec<(u8, u8, bool)>,
    /// Which lists the target receives.
    gets_suppliers: bool,
    gets_rooms: bool,
}

fn arb_rows() -> impl Strategy<Value = Vec<(u8, u8, bool)>> {
    prop::collection::vec((0..6u8, 0..3u8, any::<bool>()), 0..5)
}

fn arb_version(n: usize) -> impl Strategy<Value = Version> {
    (
        prop::collection::vec(0..DEPTS.len(), n),
        arb_rows(),
        arb_rows(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(depts, suppliers, rooms, gets_suppliers, gets_rooms)| Version {
                depts,
                suppliers,
                rooms,
                gets_suppliers,
                gets_rooms,
            },
        )
}

fn csv_of(rows: &[(u8, u8, bool)]) -> String {
    let mut out = String::from("key,organization,phone,label:Extra,notes,address\n");
    let mut seen = BTreeSet::new();
    for (k, phone, extra) in rows {
        if seen.insert(k) {
            // Notes and an address on some rows, changing with the phone digit.
            let notes = if k % 2 == 0 {
                format!("Ask for desk {phone}")
            } else {
                String::new()
            };
            let address = if k % 3 == 0 {
                format!("\"{phone} High St,\nLondon\"")
            } else {
                String::new()
            };
            out.push_str(&format!(
                "k{k},Firm {k},+1 555 02{k}{phone},{},{notes},{address}\n",
                if *extra { "yes" } else { "" }
            ));
        }
    }
    out
}

fn build_version(v: &Version) -> (DesiredDirectory, TargetUser) {
    let users: Vec<User> = v
        .depts
        .iter()
        .enumerate()
        .map(|(i, d)| worker(&format!("{}", i + 1), DEPTS[*d]))
        .collect();
    let dir = directory_of(
        &users,
        &[
            ("Suppliers", csv_of(&v.suppliers)),
            ("Rooms", csv_of(&v.rooms)),
        ],
    );
    let mut lists = Vec::new();
    if v.gets_suppliers {
        lists.push("Suppliers");
    }
    if v.gets_rooms {
        lists.push("Rooms");
    }
    let t = target_for(&dir, "1", &lists);
    (dir, t)
}

/// A personal contact in one of orgsync's labels (people file their own contacts
/// there too) with a supplier's email.
fn personal_in_labels() -> Person {
    let mut p = personal(
        "people/p1",
        Some("office@firm.example"),
        Some("+1 555 0999"),
    );
    p.memberships = vec![
        Membership::group(MY_CONTACTS),
        Membership::group(MAIN),
        Membership::group(label_rn("Suppliers")),
    ];
    p.email_addresses.push(EmailAddress {
        value: Some("k1@firm.example".into()),
        ..Default::default()
    });
    p
}

proptest! {
    #![proptest_config(cases(200))]

    #[test]
    fn shared_lists_and_labels_planner_properties(
        (before, after) in (1..6usize).prop_flat_map(|n| (arb_version(n), arb_version(n)))
    ) {
        let opts = PlanOptions::default();
        let (dir0, t0) = build_version(&before);
        let mut book = Book::default();
        let personal_rn = book.insert(personal_in_labels());
        let personal_json = serde_json::to_string(&book.contacts[&personal_rn]).unwrap();
        book.apply(&plan_user(&t0, &dir0, &book.list(), &opts), &dir0, &t0);
        // The person writes a note of their own on one list contact and adds a home
        // address to another: both must survive every later sync.
        let mut kept = Vec::new();
        let list_rns: Vec<String> = book.contacts.iter()
            .filter(|(_, p)| markers::managed_id(p).is_some_and(markers::is_list_id))
            .map(|(rn, _)| rn.clone())
            .collect();
        if let Some(rn) = list_rns.first() {
            let p = book.contacts.get_mut(rn).unwrap();
            p.biographies = vec![orgsync_wire::people::Biography {
                value: Some("my own note".into()),
                ..Default::default()
            }];
            kept.push((rn.clone(), "note"));
        }
        if let Some(rn) = list_rns.get(1) {
            let p = book.contacts.get_mut(rn).unwrap();
            let mut addrs = p.extra.get("addresses").and_then(|a| a.as_array().cloned()).unwrap_or_default();
            addrs.push(serde_json::json!({"formattedValue": "1 Home Rd", "type": "home"}));
            p.extra.insert("addresses".into(), serde_json::Value::Array(addrs));
            kept.push((rn.clone(), "address"));
        }

        // The next version; labels of the earlier one stay known (the executor deletes
        // them only after the writes), so the planner must move contacts out itself.
        let (dir, mut t) = build_version(&after);
        for (name, rn) in &t0.labels {
            t.labels.entry(name.clone()).or_insert_with(|| rn.clone());
        }
        let plan = plan_user(&t, &dir, &book.list(), &opts);
        // Never touches an unmanaged contact.
        let touched: BTreeSet<&str> = plan.updates.iter().map(|u| u.resource_name.as_str())
            .chain(plan.all_deletes())
            .collect();
        prop_assert!(!touched.contains(personal_rn.as_str()));
        book.apply(&plan, &dir, &t);
        prop_assert_eq!(serde_json::to_string(&book.contacts[&personal_rn]).unwrap(), personal_json);
        // Applying and re-planning gives an empty plan.
        let again = plan_user(&t, &dir, &book.list(), &opts);
        prop_assert!(again.is_empty(), "not converged: {:#?}", again);

        for (rn, what) in &kept {
            if let Some(p) = book.contacts.get(rn) {
                let ok = match *what {
                    "note" => p.biographies.iter().any(|b| b.value.as_deref() == Some("my own note")),
                    _ => p.extra.get("addresses").and_then(|a| a.as_array())
                        .is_some_and(|a| a.iter().any(|x| x["formattedValue"] == "1 Home Rd")),
                };
                prop_assert!(ok, "the person's own {} on {} was lost", what, rn);
            }
        }
        // Orgsync's notes and address are there unless the person's own note holds the place.
        for (id, list) in &book.managed_by_id() {
            let d = &dir.contacts[id];
            let p = list[0];
            if let Some(a) = &d.address {
                prop_assert!(p.extra.get("addresses").and_then(|x| x.as_array())
                    .is_some_and(|x| x.iter().any(|v| v["formattedValue"] == a.as_str())), "address of {}", id);
            }
            if let Some(n) = &d.notes {
                let own = kept.iter().any(|(rn, w)| *w == "note" && Some(rn.as_str()) == p.resource_name.as_deref());
                prop_assert!(own || p.biographies.iter().any(|b| b.value.as_deref() == Some(n.as_str())), "notes of {}", id);
            }
        }
        // Exactly what the target receives, each in exactly its groups.
        let managed = book.managed_by_id();
        let wanted: BTreeSet<&String> = dir.contacts.iter()
            .filter(|(id, d)| dir.receives(&t, id, d))
            .map(|(id, _)| id)
            .collect();
        let have: BTreeSet<&String> = managed.keys().collect();
        prop_assert_eq!(&have, &wanted);
        let managed_groups: BTreeSet<String> = t.labels.values().cloned().chain([MAIN.to_string()]).collect();
        for id in &wanted {
            let p = managed[*id][0];
            prop_assert_eq!(managed[*id].len(), 1);
            let d = &dir.contacts[*id];
            let mut want: BTreeSet<String> = d.labels.iter().map(|l| label_rn(l)).collect();
            if d.list.is_none() {
                want.insert(MAIN.into());
            }
            let got: BTreeSet<String> = groups_of(p).intersection(&managed_groups).cloned().collect();
            prop_assert_eq!(got, want, "groups of {}", id);
            prop_assert!(groups_of(p).contains(MY_CONTACTS));
        }

        // A change to one list writes only that list's contacts.
        let mut changed = after.clone();
        changed.suppliers.push((5, 2, true));
        if !changed.suppliers.is_empty() {
            changed.suppliers.remove(0);
        }
        if let Some(r) = changed.suppliers.first_mut() {
            r.1 = (r.1 + 1) % 3;
        }
        let (dir2, mut t2) = build_version(&changed);
        for (name, rn) in &t.labels {
            t2.labels.entry(name.clone()).or_insert_with(|| rn.clone());
        }
        let plan2 = plan_user(&t2, &dir2, &book.list(), &opts);
        let rn_to_id: BTreeMap<&str, &str> = book.contacts.iter()
            .filter_map(|(rn, p)| Some((rn.as_str(), markers::managed_id(p)?)))
            .collect();
        let written: Vec<&str> = plan2.creates.iter().map(|c| c.directory_id.as_str())
            .chain(plan2.updates.iter().map(|u| u.directory_id.as_str()))
            .chain(plan2.all_deletes().map(|rn| rn_to_id[rn]))
            .collect();
        for id in written {
            prop_assert!(id.starts_with("list:Suppliers:"), "{} written by a Suppliers change", id);
        }
    }
}
