//! Properties of the SCIM planner ([`orgsync_core::scim`]) over generated servers: some
//! directory users already linked (with drifted attributes), some on the server unlinked
//! (by `externalId`, or by a `userName` in another case), some owned by another provider,
//! accounts nobody manages, stale links and leavers. A model server applies each plan the
//! way RFC 7644 says a server applies it; then:
//!
//! 1. planning again (the executor's second pass, for managers created in the run) and
//!    once more gives an empty plan: no churn, no duplicates, convergence;
//! 2. resources orgsync does not manage keep every attribute, and are never deleted;
//! 3. no `userName` is on the server twice;
//! 4. every desired active user is on the server exactly once, linked, with the
//!    directory's attributes (except those in conflict with another provider);
//! 5. managed users who left are inactive (`deactivate`) or gone (`delete`).

use std::collections::{BTreeMap, BTreeSet};

use orgsync_core::scim::{
    Attr, Change, DesiredGroup, DesiredUser, MultiValue, ObservedGroup, ObservedUser,
    ScimDeprovision, ScimUser, UserOp, UsersPlanOptions, diff, plan_groups, plan_users,
};
use proptest::prelude::*;
use serde_json::{Value, json};

#[derive(Debug, Clone)]
enum OnServer {
    Absent,
    Linked { drift: u8 },
    ByExternalId,
    ByNameOtherCase,
    Foreign,
}

#[derive(Debug, Clone)]
struct Person {
    desired: bool,
    active: bool,
    title: Option<u8>,
    manager: Option<usize>,
    on_server: OnServer,
}

fn arb_person() -> impl Strategy<Value = Person> {
    (
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.85),
        prop::option::of(0u8..3),
        prop::option::of(0usize..20),
        prop_oneof![
            3 => Just(OnServer::Absent),
            3 => (0u8..4).prop_map(|drift| OnServer::Linked { drift }),
            1 => Just(OnServer::ByExternalId),
            1 => Just(OnServer::ByNameOtherCase),
            1 => Just(OnServer::Foreign),
        ],
    )
        .prop_map(|(desired, active, title, manager, on_server)| Person {
            desired,
            active,
            title,
            manager,
            on_server,
        })
}

fn attrs_of(i: usize, p: &Person) -> ScimUser {
    let email = format!("user{i}@example.org");
    ScimUser {
        user_name: email.clone(),
        external_id: Some(format!("d{i}")),
        active: p.active,
        display_name: Some(format!("User {i}")),
        given_name: Some("User".into()),
        family_name: Some(format!("N{i}")),
        emails: vec![MultiValue {
            value: email,
            kind: Some("work".into()),
            primary: true,
        }],
        title: p.title.map(|t| format!("Title {t}")),
        ..ScimUser::default()
    }
}

/// A server applies one PATCH operation's value to an attribute.
fn set(u: &mut ScimUser, c: &Change) {
    let s = c.value.as_ref().and_then(Value::as_str).map(str::to_string);
    match c.attr {
        Attr::UserName => u.user_name = s.expect("userName is never removed"),
        Attr::ExternalId => u.external_id = s,
        Attr::Active => u.active = c.value.as_ref().and_then(Value::as_bool).unwrap_or(true),
        Attr::DisplayName => u.display_name = s,
        Attr::GivenName => u.given_name = s,
        Attr::FamilyName => u.family_name = s,
        Attr::Emails => {
            let v = c.value.clone().unwrap_or(json!([]));
            u.emails = ScimUser::from_resource(&json!({ "emails": v })).emails;
        }
        Attr::PhoneNumbers => {
            let v = c.value.clone().unwrap_or(json!([]));
            u.phone_numbers = ScimUser::from_resource(&json!({ "phoneNumbers": v })).phone_numbers;
        }
        Attr::Title => u.title = s,
        Attr::EmployeeNumber => u.employee_number = s,
        Attr::Department => u.department = s,
        Attr::Organization => u.organization = s,
        Attr::CostCenter => u.cost_center = s,
        Attr::Division => u.division = s,
        Attr::Manager => {
            u.manager = c
                .value
                .as_ref()
                .and_then(|v| v.get("value"))
                .and_then(Value::as_str)
                .map(str::to_string)
        }
    }
}

struct Model {
    server: BTreeMap<String, ObservedUser>,
    links: BTreeMap<String, String>,
    next: usize,
}

impl Model {
    fn apply(&mut self, ops: Vec<UserOp>) {
        for op in ops {
            match op {
                UserOp::Create {
                    directory_id,
                    attrs,
                } => {
                    let id = format!("s{}", self.next);
                    self.next += 1;
                    let clash = self
                        .server
                        .values()
                        .any(|o| o.attrs.user_name.eq_ignore_ascii_case(&attrs.user_name));
                    assert!(!clash, "a create would 409: {}", attrs.user_name);
                    self.server.insert(
                        id.clone(),
                        ObservedUser {
                            id: id.clone(),
                            attrs: *attrs,
                            version: None,
                        },
                    );
                    self.links.insert(directory_id, id);
                }
                UserOp::Adopt {
                    directory_id, id, ..
                } => {
                    self.links.insert(directory_id, id);
                }
                UserOp::Update { id, changes, .. } => {
                    let o = self.server.get_mut(&id).expect("update of a live resource");
                    for c in &changes {
                        set(&mut o.attrs, c);
                    }
                }
                UserOp::Deactivate { id, .. } => {
                    self.server.get_mut(&id).unwrap().attrs.active = false;
                }
                UserOp::Delete {
                    directory_id, id, ..
                } => {
                    self.server.remove(&id);
                    self.links.remove(&directory_id);
                }
                UserOp::Forget { directory_id, .. } => {
                    self.links.remove(&directory_id);
                }
            }
        }
    }

    fn plan(
        &self,
        desired: &[DesiredUser],
        opts: &UsersPlanOptions,
    ) -> orgsync_core::scim::UsersPlan {
        let observed: Vec<ObservedUser> = self.server.values().cloned().collect();
        plan_users(desired, &observed, &self.links, opts)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scim_users_planner_properties(
        people in prop::collection::vec(arb_person(), 0..20),
        unmanaged in 0usize..4,
        stale_links in 0usize..3,
        delete in any::<bool>(),
    ) {
        let n = people.len();
        let desired: Vec<DesiredUser> = people
            .iter()
            .enumerate()
            .filter(|(_, p)| p.desired)
            .map(|(i, p)| DesiredUser {
                directory_id: format!("d{i}"),
                attrs: attrs_of(i, p),
                manager_id: p.manager.filter(|m| *m < n && *m != i).map(|m| format!("d{m}")),
                inactive_reason: (!p.active).then_some("suspended"),
            })
            .collect();
        let mut model = Model { server: BTreeMap::new(), links: BTreeMap::new(), next: 1000 };
        let mut foreign = BTreeSet::new();
        for (i, p) in people.iter().enumerate() {
            let mut attrs = attrs_of(i, p);
            attrs.active = true;
            let id = format!("s{i}");
            match p.on_server {
                OnServer::Absent => continue,
                OnServer::Linked { drift } => {
                    match drift {
                        1 => attrs.title = Some("Drifted".into()),
                        2 => attrs.emails[0].primary = false,
                        3 => attrs.user_name = attrs.user_name.to_uppercase(),
                        _ => {}
                    }
                    model.links.insert(format!("d{i}"), id.clone());
                }
                OnServer::ByExternalId => attrs.display_name = None,
                OnServer::ByNameOtherCase => {
                    attrs.user_name = attrs.user_name.to_uppercase();
                    attrs.external_id = None;
                }
                OnServer::Foreign => {
                    attrs.external_id = Some(format!("okta-{i}"));
                    foreign.insert(id.clone());
                }
            }
            model.server.insert(id.clone(), ObservedUser { id, attrs, version: None });
        }
        for k in 0..unmanaged {
            let id = format!("u{k}");
            let attrs = ScimUser {
                user_name: format!("outsider{k}@elsewhere.org"),
                active: true,
                ..ScimUser::default()
            };
            model.server.insert(id.clone(), ObservedUser { id, attrs, version: None });
        }
        for k in 0..stale_links {
            model.links.insert(format!("d{}", 100 + k), format!("gone{k}"));
        }
        let untouchable: BTreeMap<String, ObservedUser> = model
            .server
            .iter()
            .filter(|(id, _)| id.starts_with('u') || foreign.contains(*id))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let managed_before: BTreeMap<String, String> = model.links.clone();
        let opts = UsersPlanOptions {
            deprovision: if delete { ScimDeprovision::Delete } else { ScimDeprovision::Deactivate },
            user_name_exact: false,
        };

        let first = model.plan(&desired, &opts);
        let conflicts: BTreeSet<String> =
            first.conflicts.iter().map(|c| c.directory_id.clone()).collect();
        model.apply(first.ops);
        // The executor's second pass: managers created just now.
        let second = model.plan(&desired, &opts);
        for op in &second.ops {
            let UserOp::Update { changes, .. } = op else {
                panic!("the second pass may only set managers: {op:?}");
            };
            prop_assert!(changes.iter().all(|c| c.attr == Attr::Manager), "{changes:?}");
        }
        model.apply(second.ops);
        let third = model.plan(&desired, &opts);
        prop_assert!(third.ops.is_empty(), "not converged: {:?}", third.ops);

        // 2. Never touched.
        for (id, before) in &untouchable {
            prop_assert_eq!(model.server.get(id), Some(before));
        }
        // 3. No duplicate userName.
        let names: BTreeSet<String> =
            model.server.values().map(|o| o.attrs.user_name.to_lowercase()).collect();
        prop_assert_eq!(names.len(), model.server.len());
        // 4. Every desired user (active or already there) once, linked, as the directory says.
        for d in &desired {
            if conflicts.contains(&d.directory_id) {
                prop_assert!(!model.links.contains_key(&d.directory_id));
                continue;
            }
            let holders: Vec<&ObservedUser> = model
                .server
                .values()
                .filter(|o| o.attrs.external_id.as_deref() == Some(d.directory_id.as_str()))
                .collect();
            match model.links.get(&d.directory_id) {
                None => {
                    prop_assert!(!d.attrs.active, "{} active but not provisioned", d.directory_id);
                    prop_assert!(holders.is_empty());
                }
                Some(id) => {
                    prop_assert_eq!(holders.len(), 1);
                    let o = &model.server[id];
                    let mut want = d.attrs.clone();
                    want.manager = d.manager_id.as_ref().and_then(|m| model.links.get(m).cloned());
                    prop_assert!(diff(&want, &o.attrs, &[], false).is_empty(), "{:?} vs {:?}", want, o.attrs);
                }
            }
        }
        // 5. Leavers.
        let desired_ids: BTreeSet<&str> = desired.iter().map(|d| d.directory_id.as_str()).collect();
        for (dir_id, id) in &managed_before {
            if desired_ids.contains(dir_id.as_str()) {
                continue;
            }
            match (delete, model.server.get(id)) {
                (true, o) => prop_assert!(o.is_none(), "{dir_id} not deleted"),
                (false, Some(o)) => prop_assert!(!o.attrs.active, "{dir_id} still active"),
                (false, None) => {}
            }
        }
    }

    /// Groups: after applying a plan, re-planning is empty; members are exactly the
    /// desired members that have SCIM ids; unmanaged groups are never touched.
    #[test]
    fn scim_groups_planner_properties(
        groups in prop::collection::vec(
            (prop::collection::btree_set(0usize..12, 0..8), prop::collection::btree_set(0usize..12, 0..8), 0u8..4),
            0..6),
        provisioned in prop::collection::btree_set(0usize..12, 0..12),
    ) {
        let user_links: BTreeMap<String, String> =
            provisioned.iter().map(|i| (format!("d{i}"), format!("s{i}"))).collect();
        let mut desired = Vec::new();
        let mut observed: BTreeMap<String, ObservedGroup> = BTreeMap::new();
        let mut links = BTreeMap::new();
        for (g, (want, have, state)) in groups.iter().enumerate() {
            desired.push(DesiredGroup {
                directory_id: format!("g{g}"),
                display_name: format!("Group {g}"),
                members: want.iter().map(|i| format!("d{i}")).collect(),
            });
            let og = ObservedGroup {
                id: format!("sg{g}"),
                display_name: if *state == 2 { format!("group {g}") } else { format!("Old {g}") },
                external_id: (*state == 1).then(|| format!("g{g}")),
                members: have.iter().map(|i| format!("s{i}")).collect(),
                version: None,
            };
            match state {
                0 => { links.insert(format!("g{g}"), og.id.clone()); observed.insert(og.id.clone(), og); }
                1 | 2 => { observed.insert(og.id.clone(), og); }
                _ => {}
            }
        }
        // An unmanaged group and a managed one no longer desired.
        let outsider = ObservedGroup {
            id: "other".into(), display_name: "Hand made".into(), external_id: None,
            members: BTreeSet::from(["s1".to_string()]), version: None,
        };
        observed.insert("other".into(), outsider.clone());
        observed.insert("old".into(), ObservedGroup {
            id: "old".into(), display_name: "Retired".into(), external_id: Some("g99".into()),
            members: BTreeSet::new(), version: None,
        });
        links.insert("g99".to_string(), "old".to_string());

        let list: Vec<ObservedGroup> = observed.values().cloned().collect();
        let plan = plan_groups(&desired, &list, &links, &user_links);
        let mut next = 0;
        for op in plan.ops {
            use orgsync_core::scim::GroupOp::*;
            match op {
                Create { directory_id, display_name, members } => {
                    let id = format!("new{next}");
                    next += 1;
                    observed.insert(id.clone(), ObservedGroup {
                        id: id.clone(), display_name, external_id: Some(directory_id.clone()),
                        members: members.into_iter().collect(), version: None,
                    });
                    links.insert(directory_id, id);
                }
                Adopt { directory_id, id, .. } => { links.insert(directory_id, id); }
                Update { id, display_name, set_external_id, .. } => {
                    let g = observed.get_mut(&id).unwrap();
                    g.display_name = display_name;
                    if let Some(x) = set_external_id { g.external_id = Some(x); }
                }
                AddMembers { id, members, .. } => observed.get_mut(&id).unwrap().members.extend(members),
                RemoveMembers { id, members, .. } => {
                    let g = observed.get_mut(&id).unwrap();
                    for m in members { g.members.remove(&m); }
                }
                Delete { directory_id, id, .. } => { observed.remove(&id); links.remove(&directory_id); }
                Forget { directory_id, .. } => { links.remove(&directory_id); }
            }
        }
        let list: Vec<ObservedGroup> = observed.values().cloned().collect();
        let again = plan_groups(&desired, &list, &links, &user_links);
        prop_assert!(again.ops.is_empty(), "{:?}", again.ops);
        prop_assert_eq!(observed.get("other"), Some(&outsider));
        prop_assert!(!observed.contains_key("old"));
        for d in &desired {
            let g = &observed[&links[&d.directory_id]];
            let want: BTreeSet<String> =
                d.members.iter().filter_map(|m| user_links.get(m).cloned()).collect();
            prop_assert_eq!(&g.members, &want);
            prop_assert_eq!(&g.display_name, &d.display_name);
        }
    }
}
