//! People typed calls against the emulator.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use orgsync_client::ErrorKind;
use orgsync_client::people::{ConnectionsParams, MARKER_KEY, NewContactJson};
use orgsync_wire::people::{ClientData, ContactGroup, MY_CONTACTS, Name, Person};
use reqwest::Method;
use serde_json::json;

use std::sync::Arc;

use orgsync_client::{GoogleClient, StaticToken};
use orgsync_wire::scopes;

use super::common::{config_for, env};

pub fn contact(given: &str, marker: &str) -> Person {
    Person {
        names: vec![Name {
            given_name: Some(given.into()),
            family_name: Some("Test".into()),
            ..Default::default()
        }],
        client_data: vec![ClientData {
            metadata: None,
            key: Some(MARKER_KEY.into()),
            value: Some(marker.into()),
        }],
        ..Default::default()
    }
}

const FIELDS: &str = "names,clientData,memberships,metadata";

/// A new contact group with only a name.
fn named_group(name: &str) -> ContactGroup {
    ContactGroup {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// Each contact as JSON, for [`new_contacts`].
pub fn serialised(people: &[Person]) -> Vec<String> {
    people
        .iter()
        .map(|p| serde_json::to_string(p).unwrap())
        .collect()
}

/// `create_contacts_json` input: each contact's JSON with its `MARKER_KEY` marker.
pub fn new_contacts<'a>(people: &'a [Person], json: &'a [String]) -> Vec<NewContactJson<'a>> {
    people
        .iter()
        .zip(json)
        .map(|(p, j)| NewContactJson {
            groups: &[],
            marker: p.client_data_value(MARKER_KEY).unwrap(),
            person: j,
        })
        .collect()
}

/// Contacts of different labels share one batch: each joins the call's groups and its
/// own (a department's label), in one `batchCreateContacts`, and as single creates.
#[tokio::test]
async fn each_contact_in_a_batch_may_join_groups_of_its_own() {
    let env = env(2).await;
    let user = env.non_admin().await;
    let people = env.client.people(&user);
    let mut labels = Vec::new();
    for name in ["Dept A", "Dept B"] {
        labels.push(
            people
                .contact_groups_create(named_group(name), None)
                .await
                .unwrap()
                .resource_name
                .unwrap(),
        );
    }
    let a = [labels[0].as_str()];
    let b = [labels[1].as_str()];
    for (n, prefix) in [(10, "batch"), (2, "single")] {
        let wanted: Vec<Person> = (0..n)
            .map(|i| contact(&format!("{prefix}{i}"), &format!("{prefix}-{i}")))
            .collect();
        let json = serialised(&wanted);
        let mut new = new_contacts(&wanted, &json);
        for (i, c) in new.iter_mut().enumerate() {
            c.groups = match i % 3 {
                0 => &a,
                1 => &b,
                _ => &[],
            };
        }
        let before = env.client.stats().snapshot();
        people
            .create_contacts_json(&new, &[MY_CONTACTS], MARKER_KEY, "clientData")
            .await
            .unwrap();
        let after = env.client.stats().snapshot();
        let batches = after.calls("people.people.batchCreateContacts")
            - before.calls("people.people.batchCreateContacts");
        assert_eq!(
            batches,
            u64::from(n > 3),
            "{prefix}: one batch for all labels"
        );
        let listed = people
            .connections_list_all(ConnectionsParams::new(FIELDS))
            .await
            .unwrap();
        for (i, p) in wanted.iter().enumerate() {
            let marker = p.client_data_value(MARKER_KEY).unwrap();
            let got = listed
                .people
                .iter()
                .find(|x| x.client_data_value(MARKER_KEY) == Some(marker))
                .unwrap();
            let mut groups: Vec<&str> = got.group_resource_names().collect();
            groups.sort();
            let mut want = vec![MY_CONTACTS];
            want.extend(match i % 3 {
                0 => a.as_slice(),
                1 => b.as_slice(),
                _ => &[],
            });
            want.sort();
            assert_eq!(groups, want, "{marker}");
        }
    }
}

#[tokio::test]
async fn pre_serialised_creates_get_the_memberships_spliced_in() {
    let env = env(2).await;
    let user = env.non_admin().await;
    let people = env.client.people(&user);
    let group = people
        .contact_groups_create(named_group("Spliced"), None)
        .await
        .unwrap()
        .resource_name
        .unwrap();
    let wanted: Vec<Person> = (0..250)
        .map(|i| contact(&format!("S{i}"), &format!("splice-{i}")))
        .collect();
    let json = serialised(&wanted);
    let new = new_contacts(&wanted, &json);
    let created = people
        .create_contacts_json(&new, &[MY_CONTACTS, &group], MARKER_KEY, "clientData")
        .await
        .unwrap();
    assert_eq!(created.len(), 250);
    assert_eq!(
        env.client
            .stats()
            .snapshot()
            .calls("people.people.batchCreateContacts"),
        2,
        "200 per call"
    );
    let markers: Vec<&str> = created
        .iter()
        .map(|c| c.marker.as_deref().unwrap())
        .collect();
    let sent: Vec<&str> = new.iter().map(|c| c.marker).collect();
    assert_eq!(
        markers, sent,
        "every contact created, in order, marker read back"
    );

    // What landed is what was sent, plus exactly the two memberships.
    let listed = people
        .connections_list_all(ConnectionsParams::new(FIELDS))
        .await
        .unwrap();
    let by_marker: BTreeMap<&str, &Person> = listed
        .people
        .iter()
        .filter_map(|p| Some((p.client_data_value(MARKER_KEY)?, p)))
        .collect();
    for (p, c) in wanted.iter().zip(&created) {
        let got = by_marker[p.client_data_value(MARKER_KEY).unwrap()];
        assert_eq!(got.resource_name.as_deref(), Some(c.resource_name.as_str()));
        assert_eq!(got.names[0].given_name, p.names[0].given_name);
        let mut groups: Vec<&str> = got.group_resource_names().collect();
        groups.sort();
        let mut want = vec![MY_CONTACTS, group.as_str()];
        want.sort();
        assert_eq!(groups, want);
    }

    // A contact that is not a JSON object is refused before anything is sent.
    let err = people
        .create_contacts_json(
            &[NewContactJson {
                groups: &[],
                marker: "bad",
                person: "[1]",
            }],
            &[MY_CONTACTS],
            MARKER_KEY,
            "metadata",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, orgsync_client::Error::InvalidArgument(_)),
        "{err}"
    );
    // An empty object gets the memberships alone (no dangling comma).
    let marker_only = r#"{"clientData":[{"key":"orgsync.id","value":"m-empty"}]}"#;
    let created = people
        .create_contacts_json(
            &[NewContactJson {
                groups: &[],
                marker: "m-empty",
                person: marker_only,
            }],
            &[MY_CONTACTS],
            MARKER_KEY,
            "metadata",
        )
        .await
        .unwrap();
    assert_eq!(created.len(), 1);
    let created = people
        .create_contacts_json(
            &[NewContactJson {
                groups: &[],
                marker: "m-none",
                person: " {} ",
            }],
            &[MY_CONTACTS],
            MARKER_KEY,
            "metadata",
        )
        .await
        .unwrap();
    assert_eq!(created.len(), 1);
}

#[tokio::test]
async fn contacts_crud_batches_and_sync_tokens() {
    let env = env(2).await;
    let user = env.non_admin().await;
    let people = env.client.people(&user);

    let full = people
        .connections_list_all(ConnectionsParams::full_sync(FIELDS))
        .await
        .unwrap();
    let token = full
        .next_sync_token
        .clone()
        .expect("a sync token on the last page");
    let before = full.people.len();

    let one = people
        .create_contact(&contact("Solo", "m-solo"), FIELDS)
        .await
        .unwrap();
    let solo = one.resource_name.clone().unwrap();
    assert!(solo.starts_with("people/"));

    // 450 contacts: three batchCreate calls (200, 200, 50).
    let many: Vec<Person> = (0..450)
        .map(|i| contact(&format!("P{i}"), &format!("m-{i}")))
        .collect();
    let created = people
        .batch_create_contacts_chunked(many, FIELDS)
        .await
        .unwrap();
    assert_eq!(created.len(), 450);
    assert_eq!(
        env.client
            .stats()
            .snapshot()
            .calls("people.people.batchCreateContacts"),
        3
    );
    let names: Vec<String> = created
        .iter()
        .map(|r| r.person.as_ref().unwrap().resource_name.clone().unwrap())
        .collect();

    // Incremental listing sees exactly what changed.
    let inc = people
        .connections_list_all(ConnectionsParams::incremental(FIELDS, token))
        .await
        .unwrap();
    assert_eq!(inc.people.len(), 451);
    assert!(inc.next_sync_token.is_some());

    // getBatchGet over 450 names: 3 calls of ≤200.
    let got = people.get_batch_get_chunked(&names, FIELDS).await.unwrap();
    assert_eq!(got.len(), 450);

    // batchUpdate 250 (2 calls) with etags.
    let mut updates = BTreeMap::new();
    for r in got.iter().take(250) {
        let mut p = r.person.clone().unwrap();
        p.names[0].family_name = Some("Updated".into());
        updates.insert(p.resource_name.clone().unwrap(), p);
    }
    let res = people
        .batch_update_contacts_chunked(updates, "names", FIELDS)
        .await
        .unwrap();
    assert_eq!(res.len(), 250);
    assert!(
        res.values()
            .all(|r| r.person.as_ref().unwrap().names[0].family_name.as_deref() == Some("Updated"))
    );

    // updateContact with the current etag works; with the old one it is a precondition failure.
    let mut p = one.clone();
    p.names[0].given_name = Some("Solo2".into());
    let after = people
        .update_contact(&p, "names", Some(FIELDS))
        .await
        .unwrap();
    assert_eq!(after.names[0].given_name.as_deref(), Some("Solo2"));
    let stale = people
        .update_contact(&p, "names", Some(FIELDS))
        .await
        .unwrap_err();
    assert!(stale.is(ErrorKind::PreconditionFailed), "{stale}");

    people.delete_contact(&solo).await.unwrap();
    let gone = people.delete_contact(&solo).await.unwrap_err();
    assert!(gone.is(ErrorKind::NotFound), "{gone}");

    // batchDelete 450 (≤500 per call: 1 call).
    people.batch_delete_contacts_chunked(names).await.unwrap();
    let end = people
        .connections_list_all(ConnectionsParams::new(FIELDS))
        .await
        .unwrap();
    assert_eq!(end.people.len(), before);
}

#[tokio::test]
async fn expired_sync_token_is_classified() {
    let env = env(1).await;
    let user = env.non_admin().await;
    let people = env.client.people(&user);
    let full = people
        .connections_list_all(ConnectionsParams::full_sync(FIELDS))
        .await
        .unwrap();
    env.control(
        Method::POST,
        "clock/advance",
        Some(json!({"seconds": 8 * 86400})),
    )
    .await;
    // Eight days on, this machine's clock has not moved, so the emulator would refuse
    // a fresh assertion's times: mint a token on the emulator clock instead.
    let token = orgsync_emulator::oauth::mint_access_token(
        &env.emu.emulator,
        Some(&user),
        &[scopes::CONTACTS],
    );
    let client = GoogleClient::new(Arc::new(StaticToken::new(token)), config_for(&env.emu));
    let people = client.people(&user);
    let err = people
        .connections_list_all(ConnectionsParams::incremental(
            FIELDS,
            full.next_sync_token.unwrap(),
        ))
        .await
        .unwrap_err();
    assert!(err.is(ErrorKind::SyncTokenExpired), "{err}");
    assert_eq!(err.api().unwrap().attempts, 1, "not retried");
}

#[tokio::test]
async fn contact_groups_and_members() {
    let env = env(1).await;
    let user = env.non_admin().await;
    let people = env.client.people(&user);
    let group = people
        .contact_groups_create(named_group("Directory"), None)
        .await
        .unwrap();
    let gname = group.resource_name.clone().unwrap();
    let dup = people
        .contact_groups_create(named_group("Directory"), None)
        .await
        .unwrap_err();
    assert!(dup.is(ErrorKind::Conflict), "{dup}");

    let listed: Vec<ContactGroup> = people
        .contact_groups_list(None)
        .try_collect()
        .await
        .unwrap();
    assert!(
        listed
            .iter()
            .any(|g| g.resource_name.as_deref() == Some(gname.as_str()))
    );

    let created = people
        .batch_create_contacts(
            (0..3)
                .map(|i| contact(&format!("G{i}"), &format!("g{i}")))
                .collect(),
            FIELDS,
        )
        .await
        .unwrap();
    let names: Vec<String> = created
        .iter()
        .map(|r| r.person.as_ref().unwrap().resource_name.clone().unwrap())
        .collect();
    let r = people
        .contact_group_members_modify(&gname, names.clone(), vec![])
        .await
        .unwrap();
    assert!(r.not_found_resource_names.is_empty());
    let got = people
        .contact_groups_get(&gname, Some(10), None)
        .await
        .unwrap();
    assert_eq!(got.member_resource_names.len(), 3);
    let p = people
        .get_batch_get(&names[..1], "memberships")
        .await
        .unwrap();
    let groups: Vec<&str> = p[0]
        .person
        .as_ref()
        .unwrap()
        .group_resource_names()
        .collect();
    assert!(
        groups.contains(&gname.as_str()) && groups.contains(&MY_CONTACTS),
        "{groups:?}"
    );

    let mut renamed = got.clone();
    renamed.name = Some("Directory (orgsync)".into());
    let renamed = people
        .contact_groups_update(renamed, Some("name"), None)
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("Directory (orgsync)"));

    people
        .contact_group_members_modify(&gname, vec![], names.clone())
        .await
        .unwrap();
    people.contact_groups_delete(&gname, false).await.unwrap();
    let err = people
        .contact_groups_get(&gname, None, None)
        .await
        .unwrap_err();
    assert!(err.is(ErrorKind::NotFound), "{err}");
}

#[tokio::test]
async fn one_users_mutations_are_serialised() {
    let env = env(1).await;
    let user = env.non_admin().await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let people = env.client.people(&user);
            tokio::spawn(async move {
                people
                    .create_contact(&contact(&format!("C{i}"), &format!("c{i}")), FIELDS)
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let snap = env.client.stats().snapshot();
    let m = &snap.methods["people.people.createContact"];
    assert_eq!(m.requests, 12, "no 409 ABORTED replays: {m:?}");
    let stats = env.stats().await;
    assert!(stats["responses_by_status"].get("409").is_none(), "{stats}");
}
