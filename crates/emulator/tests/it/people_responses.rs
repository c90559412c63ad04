//! People responses and errors over real loopback HTTP, byte for byte: `connections.list`
//! and `batchCreateContacts` serialise stored contacts from the book (not from a cloned
//! `Person`) and parse valid bodies without a `Value`; what they answer must stay exactly
//! what the typed projection (`people.get`) and the exact validation path answer.

use crate::people::{Env, env};
use orgsync_wire::people::BatchCreateContactsRequest;
use orgsync_wire::scopes::{CONTACTS, CONTACTS_READONLY};
use serde_json::{Value, json};

const ORGSYNC_FIELDS: &str =
    "names,emailAddresses,phoneNumbers,organizations,externalIds,clientData,memberships,metadata";
const ALL_FIELDS: &str = "addresses,ageRanges,biographies,birthdays,calendarUrls,clientData,coverPhotos,emailAddresses,events,externalIds,genders,imClients,interests,locales,locations,memberships,metadata,miscKeywords,names,nicknames,occupations,organizations,phoneNumbers,photos,relations,sipAddresses,skills,urls,userDefined";

impl Env {
    /// Status and the exact body text.
    async fn raw_text(
        &self,
        tok: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, String) {
        let url = format!("{}{}", self.h.base_url, path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, url).bearer_auth(tok);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        assert!(
            status != 200
                || resp.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json")
        );
        (status, resp.text().await.unwrap())
    }

    async fn error(&self, tok: &str, body: &str) -> (u16, String) {
        let (s, text) = self
            .raw_text(tok, "POST", "/v1/people:batchCreateContacts", Some(body))
            .await;
        let v: Value = serde_json::from_str(&text).unwrap();
        (s, v["error"]["message"].as_str().unwrap_or("").to_string())
    }
}

/// A contact with every modelled field, unmodelled ones, field metadata, escapes.
fn rich(i: usize, group: &str) -> Value {
    let names = match i % 4 {
        0 => json!([{"givenName": format!("Ada{i}"), "familyName": "Lovelace",
                     "unstructuredName": "Ada Lovelace", "phoneticGivenName": "A"}]),
        1 => json!([{"givenName": "Ada", "middleName": "K"}]),
        2 => json!([{"unstructuredName": "Only \"quoted\" text \u{e9}"}]),
        _ => json!([{"displayName": "Shown", "familyName": "F"}]),
    };
    json!({"contactPerson": {
        "names": names,
        "emailAddresses": [{"value": format!("a{i}@example.com"), "type": "work",
                            "formattedType": "Work", "metadata": {"primary": true}}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}, {"value": "2", "canonicalForm": "+2"}],
        "organizations": [{"type": "work", "name": "Ex", "title": "T", "department": "D",
                           "current": true, "costCenter": "42", "fullTimeEquivalentMillipercent": "100000"}],
        "clientData": [{"key": "orgsync.id", "value": format!("{i}")}, {"key": "k", "value": "\n</x>"}],
        "externalIds": [{"value": "E1", "type": "organization"}],
        "biographies": [{"value": "bio"}],
        "userDefined": [{"key": "uk", "value": "uv"}],
        "addresses": [{"formattedValue": "1 Main St"}],
        "birthdays": [{"date": {"year": 1990, "month": 1, "day": 2}}],
        "urls": [],
        "nicknames": null,
        "events": [{"date": {"month": 3, "day": 4}}],
        "memberships": [
            {"contactGroupMembership": {"contactGroupResourceName": "contactGroups/myContacts"}},
            {"contactGroupMembership": {"contactGroupResourceName": group}}
        ],
        "resourceName": "people/ignored",
        "photos": [{"url": "https://ignored"}]
    }})
}

/// Every listed and created contact is the exact JSON `people.get` gives for it.
#[tokio::test]
async fn listed_and_created_contacts_are_byte_identical_to_people_get() {
    let e = env().await;
    let tok = e.token_with("u@example.com", CONTACTS);
    let (s, text) = e
        .raw_text(
            &tok,
            "POST",
            "/v1/contactGroups",
            Some(r#"{"contactGroup": {"name": "Org"}}"#),
        )
        .await;
    assert_eq!(s, 200, "{text}");
    let group: Value = serde_json::from_str(&text).unwrap();
    let group = group["resourceName"].as_str().unwrap().to_string();

    let (s, text) = e
        .raw_text(
            &tok,
            "GET",
            &format!(
                "/v1/people/me/connections?personFields={ORGSYNC_FIELDS}&requestSyncToken=true"
            ),
            None,
        )
        .await;
    assert_eq!(s, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let sync = v["nextSyncToken"].as_str().unwrap().to_string();

    let mut names = Vec::new();
    for mask in ["metadata", ORGSYNC_FIELDS, ALL_FIELDS] {
        let contacts: Vec<Value> = (0..8).map(|i| rich(i, &group)).collect();
        let body = json!({"contacts": contacts, "readMask": mask}).to_string();
        let (s, created) = e
            .raw_text(&tok, "POST", "/v1/people:batchCreateContacts", Some(&body))
            .await;
        assert_eq!(s, 200, "{created}");
        let v: Value = serde_json::from_str(&created).unwrap();
        for p in v["createdPeople"].as_array().unwrap() {
            assert_eq!(p["httpStatusCode"], 200);
            let name = p["person"]["resourceName"].as_str().unwrap().to_string();
            let (s, got) = e
                .raw_text(
                    &tok,
                    "GET",
                    &format!("/v1/{name}?personFields={mask}"),
                    None,
                )
                .await;
            assert_eq!(s, 200);
            assert!(
                created.contains(&format!(
                    "{{\"person\":{got},\"status\":{{\"code\":0}},\"httpStatusCode\":200}}"
                )),
                "created {name} with {mask}:\n{created}\nget:\n{got}"
            );
            names.push(name);
        }
    }
    // One deletion, so the incremental list carries a tombstone.
    let gone = names.pop().unwrap();
    let (s, _) = e
        .raw_text(&tok, "DELETE", &format!("/v1/{gone}:deleteContact"), None)
        .await;
    assert_eq!(s, 200);

    for fields in [ORGSYNC_FIELDS, ALL_FIELDS, "names", "memberships,metadata"] {
        for query in [
            format!("personFields={fields}&pageSize=1000&requestSyncToken=true"),
            format!("personFields={fields}&pageSize=7&sortOrder=FIRST_NAME_ASCENDING"),
            format!("personFields={fields}&pageSize=1000&syncToken={sync}"),
        ] {
            let same_binding = fields == ORGSYNC_FIELDS || !query.contains("syncToken=");
            if !same_binding {
                continue;
            }
            let mut pages = String::new();
            let mut page_token: Option<String> = None;
            loop {
                let mut path = format!("/v1/people/me/connections?{query}");
                if let Some(t) = &page_token {
                    path.push_str(&format!("&pageToken={t}"));
                }
                let (s, text) = e.raw_text(&tok, "GET", &path, None).await;
                assert_eq!(s, 200, "{text}");
                let v: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["totalItems"], v["totalPeople"]);
                pages.push_str(&text);
                match v["nextPageToken"].as_str() {
                    Some(t) => page_token = Some(t.to_string()),
                    None => break,
                }
            }
            for name in &names {
                let (s, got) = e
                    .raw_text(
                        &tok,
                        "GET",
                        &format!("/v1/{name}?personFields={fields}"),
                        None,
                    )
                    .await;
                assert_eq!(s, 200);
                assert!(
                    pages.contains(&got),
                    "{name} ({query}):\n{got}\nnot in\n{pages}"
                );
            }
            if query.contains("syncToken=") {
                assert!(
                    pages.contains(&format!("{{\"resourceName\":\"{gone}\",\"etag\":")),
                    "{pages}"
                );
                assert!(pages.contains("\"deleted\":true"));
            } else {
                assert!(!pages.contains(&gone));
            }
        }
    }
}

/// `sortOrder` by first and last name: lower-cased given (family) name, else the display
/// or unstructured name; ties by id; nameless contacts last.
#[tokio::test]
async fn name_sort_orders_are_unchanged() {
    let e = env().await;
    let tok = e.token_with("u@example.com", CONTACTS);
    let names = [
        json!([{"givenName": "bob", "familyName": "Zed"}]),
        json!([{"givenName": "Alice", "familyName": "young"}]),
        json!([{"unstructuredName": "Carl Unstructured"}]),
        json!([{"displayName": "alice Shown", "familyName": "Xavier"}]),
        json!([]),
        json!([{"givenName": "ALICE"}]),
        json!([{"givenName": "", "familyName": "", "unstructuredName": "Dora"}]),
        json!([{"givenName": "Émile", "familyName": "Ärger"}]),
    ];
    let contacts: Vec<Value> = names
        .iter()
        .map(|n| json!({"contactPerson": {"names": n}}))
        .collect();
    let body = json!({"contacts": contacts, "readMask": "metadata"}).to_string();
    let (s, created) = e
        .raw_text(&tok, "POST", "/v1/people:batchCreateContacts", Some(&body))
        .await;
    assert_eq!(s, 200, "{created}");
    let v: Value = serde_json::from_str(&created).unwrap();
    let ids: Vec<String> = v["createdPeople"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["person"]["resourceName"].as_str().unwrap().to_string())
        .collect();
    for (order, expected) in [
        ("FIRST_NAME_ASCENDING", [1, 5, 3, 0, 2, 6, 7, 4]),
        ("LAST_NAME_ASCENDING", [2, 6, 3, 1, 0, 7, 4, 5]),
    ] {
        let mut seen = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut path = format!(
                "/v1/people/me/connections?personFields=names&pageSize=3&sortOrder={order}"
            );
            if let Some(t) = &page_token {
                path.push_str(&format!("&pageToken={t}"));
            }
            let (s, text) = e.raw_text(&tok, "GET", &path, None).await;
            assert_eq!(s, 200, "{text}");
            let v: Value = serde_json::from_str(&text).unwrap();
            for c in v["connections"].as_array().unwrap() {
                seen.push(c["resourceName"].as_str().unwrap().to_string());
            }
            match v["nextPageToken"].as_str() {
                Some(t) => page_token = Some(t.to_string()),
                None => break,
            }
        }
        let want: Vec<String> = expected.iter().map(|i| ids[*i].clone()).collect();
        assert_eq!(seen, want, "{order}");
    }
}

/// Errors keep Google's messages and paths, whichever parse path the body takes.
#[tokio::test]
async fn batch_create_errors_are_unchanged() {
    let e = env().await;
    let tok = e.token_with("u@example.com", CONTACTS);
    let ok = r#"{"contactPerson": {"names": [{"givenName": "A"}]}}"#;
    let with =
        |second: &str| format!(r#"{{"contacts": [{ok}, {second}], "readMask": "metadata"}}"#);

    let cases: Vec<(String, String)> = vec![
        (
            with(r#"{"contactPerson": {"emailAddresses": [{"value": "a@b", "bogus": 1}]}}"#),
            "Invalid JSON payload received. Unknown name \"bogus\" at 'contacts[1].contact_person.email_addresses[0]': Cannot find field.".into(),
        ),
        (
            with(r#"{"contactPerson": {"names": [{"givenName": "B"}], "nope": 1}}"#),
            "Invalid JSON payload received. Unknown name \"nope\" at 'contacts[1].contact_person': Cannot find field.".into(),
        ),
        (
            with(r#"{"contactPerson": {"organizations": [{"current": "yes"}]}}"#),
            "Invalid JSON payload received. Invalid value at 'contacts[1].contact_person.organizations[0].current' (a boolean expected): \"yes\"".into(),
        ),
        (
            with(r#"{"contactPerson": {"names": [null]}}"#),
            "Invalid JSON payload received. Invalid value at 'contacts[1].contact_person.names[0]' (an object expected): null".into(),
        ),
        (
            with(r#"{"contactPerson": {"birthdays": [{"date": {"year": 1.5}}]}}"#),
            "Invalid JSON payload received. Invalid value at 'contacts[1].contact_person.birthdays[0].date.year' (a number expected): 1.5".into(),
        ),
        (
            with(r#"{"contactPerson": {"names": [{"givenName": "A"}, {"givenName": "B"}]}}"#),
            "Invalid contacts[1].contact_person.names: Only one value is allowed for the singleton field \"names\" on a contact.".into(),
        ),
        (
            with(r#"{"contactPerson": {"memberships": [{"contactGroupMembership": {"contactGroupResourceName": "contactGroups/nope"}}]}}"#),
            "Invalid contacts[1].contact_person.memberships[0]: contact group \"contactGroups/nope\" does not exist.".into(),
        ),
        (
            with(r#"{"contactPerson": {"memberships": [{"contactGroupMembership": {"contactGroupId": "friends"}}]}}"#),
            "Invalid contacts[1].contact_person.memberships[0]: cannot add contacts to system contact group \"contactGroups/friends\".".into(),
        ),
        (
            r#"{"contacts": [], "readMask": "metadata"}"#.into(),
            "Request must contain at least one contact to create.".into(),
        ),
        (
            "  \n".into(),
            "Request must contain at least one contact to create.".into(),
        ),
        (
            format!(r#"{{"contacts": [{ok}], "readMask": "bogus"}}"#),
            "Invalid readMask mask path: \"bogus\". Valid paths are documented at https://developers.google.com/people/api/rest/v1/people/get.".into(),
        ),
    ];
    for (body, message) in &cases {
        let (s, got) = e.error(&tok, body).await;
        assert_eq!((s, got.as_str()), (400, message.as_str()), "{body}");
    }

    // Errors the typed parse or the JSON parser gives: the exact path's messages.
    for body in [
        with(r#"{"contactPerson": {"names": null}}"#),
        with(r#"{"contactPerson": {"organizations": [{"current": 1}]}}"#),
        with(r#"{}"#),
        r#"{"contacts": [{"contactPerson": {"names": ["#.to_string(),
        r#"{"contacts": 5}"#.to_string(),
        r#"[1]"#.to_string(),
        "{\"readMask\": \"\\ud800\"}".to_string(),
    ] {
        let expected = match serde_json::from_str::<Value>(&body) {
            Err(err) => format!("Invalid JSON payload received. {err}"),
            Ok(v) => match orgsync_emulator_validate(&v) {
                Some(m) => m,
                None => format!(
                    "Invalid JSON payload received. {}",
                    serde_json::from_value::<BatchCreateContactsRequest>(v).unwrap_err()
                ),
            },
        };
        let (s, got) = e.error(&tok, &body).await;
        assert_eq!((s, got), (400, expected), "{body}");
    }

    // A repeated key: the last one counts, as it always did.
    let dup = format!(r#"{{"readMask": 1, "contacts": [{ok}], "readMask": "metadata"}}"#);
    let (s, text) = e
        .raw_text(&tok, "POST", "/v1/people:batchCreateContacts", Some(&dup))
        .await;
    assert_eq!(s, 200, "{text}");

    // A syntax error answers before the scope check; a valid body after it.
    let ro = e.token_with("u@example.com", CONTACTS_READONLY);
    let (s, m) = e.error(&ro, "{").await;
    assert_eq!(s, 400, "{m}");
    assert!(m.starts_with("Invalid JSON payload received. EOF"), "{m}");
    let (s, _) = e.error(&ro, &format!(r#"{{"contacts": [{ok}]}}"#)).await;
    assert_eq!(s, 403);
    // And nothing above created a contact, except the repeated-key request.
    assert_eq!(
        e.h.emulator.people.contact_counts(),
        vec![("u@example.com".to_string(), 1)]
    );
}

/// The validation messages these bodies get (only the shapes used above).
fn orgsync_emulator_validate(v: &Value) -> Option<String> {
    if !v.is_object() {
        return Some(format!(
            "Invalid JSON payload received. Invalid value at '' (an object expected): {v}"
        ));
    }
    if v["contacts"].is_number() {
        return Some(
            "Invalid JSON payload received. Invalid value at 'contacts' (a list expected): 5"
                .into(),
        );
    }
    if v["contacts"][1]["contactPerson"]["organizations"][0]["current"].is_number() {
        return Some("Invalid JSON payload received. Invalid value at 'contacts[1].contact_person.organizations[0].current' (a boolean expected): 1".into());
    }
    None
}
