//! People v1 over real loopback HTTP: paging, field masks, sync tokens, batch limits,
//! etags, contact groups, per-user isolation and the concurrent-mutation penalty.

use std::time::{Duration, Instant};

use orgsync_emulator::{EmulatorConfig, EmulatorHandle, spawn};
use orgsync_testkit::Emu;
use orgsync_wire::scopes::{CONTACTS, CONTACTS_READONLY};
use serde_json::{Value, json};

orgsync_testkit::harness!(
    /// The People harness, shared with `people_responses`: an emulator with no mutation
    /// hold (the tests mutate one after another).
    pub Env
);

pub async fn env() -> Env {
    Env(Emu::start(EmulatorConfig::for_tests(0))
        .await
        .without_mutation_hold())
}

impl Env {
    /// An access token for `user` with one scope.
    pub fn token_with(&self, user: &str, scope: &str) -> String {
        self.0.token(user, &[scope])
    }

    fn token(&self, user: &str) -> String {
        self.token_with(user, CONTACTS)
    }

    async fn raw(&self, tok: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
        let url = format!("{}{}", self.h.base_url, path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .http
            .request(m, url)
            .bearer_auth(tok)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Create `n` contacts named `{prefix}{i}` via batchCreate; returns resource names.
    async fn bulk(&self, tok: &str, prefix: &str, n: usize) -> Vec<String> {
        let mut names = Vec::new();
        let mut i = 0;
        while i < n {
            let k = (n - i).min(200);
            let contacts: Vec<Value> = (i..i + k)
                .map(|j| {
                    json!({"contactPerson": {
                        "names": [{"givenName": format!("{prefix}{j}"), "familyName": "Test"}],
                        "emailAddresses": [{"value": format!("{prefix}{j}@example.com")}],
                    }})
                })
                .collect();
            let (s, v) = self
                .call(
                    tok,
                    "POST",
                    "/v1/people:batchCreateContacts?alt=json",
                    Some(json!({"contacts": contacts, "readMask": "names"})),
                )
                .await;
            assert_eq!(s, 200, "{v}");
            for p in v["createdPeople"].as_array().unwrap() {
                names.push(p["person"]["resourceName"].as_str().unwrap().to_string());
            }
            i += k;
        }
        names
    }

    /// Page through connections; returns (people, nextSyncToken, pages).
    async fn list_all(&self, tok: &str, query: &str) -> (Vec<Value>, Option<String>, usize) {
        let mut out = Vec::new();
        let mut page_token: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path = format!("/v1/people/me/connections?{query}");
            if let Some(t) = &page_token {
                path.push_str(&format!("&pageToken={t}"));
            }
            let (s, v) = self.call(tok, "GET", &path, None).await;
            assert_eq!(s, 200, "{v}");
            pages += 1;
            out.extend(v["connections"].as_array().cloned().unwrap_or_default());
            match v["nextPageToken"].as_str() {
                Some(t) => {
                    assert!(
                        v.get("nextSyncToken").is_none(),
                        "nextSyncToken must only be on the last page"
                    );
                    page_token = Some(t.to_string());
                }
                None => return (out, v["nextSyncToken"].as_str().map(String::from), pages),
            }
        }
    }
}

fn reason(v: &Value) -> Option<&str> {
    v["error"]["details"][0]["reason"].as_str()
}

#[tokio::test]
async fn connections_page_2500_contacts_in_pages_of_1000() {
    let e = env().await;
    let t = e.token("alice@example.com");
    let names = e.bulk(&t, "p", 2500).await;
    assert_eq!(names.len(), 2500);
    let (people, sync, pages) = e
        .list_all(
            &t,
            "personFields=names%2CemailAddresses&pageSize=1000&requestSyncToken=true&alt=json",
        )
        .await;
    assert_eq!(pages, 3);
    assert_eq!(people.len(), 2500);
    assert!(sync.is_some());
    let mut seen: Vec<&str> = people
        .iter()
        .map(|p| p["resourceName"].as_str().unwrap())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2500);
    // totalItems, and the page token is bound to the other parameters.
    let (_, first) = e
        .call(
            &t,
            "GET",
            "/v1/people/me/connections?personFields=names&pageSize=1000",
            None,
        )
        .await;
    assert_eq!(first["totalItems"], 2500);
    let pt = first["nextPageToken"].as_str().unwrap();
    let (s, v) = e
        .call(
            &t,
            "GET",
            &format!(
                "/v1/people/me/connections?personFields=phoneNumbers&pageSize=1000&pageToken={pt}"
            ),
            None,
        )
        .await;
    assert_eq!(s, 400, "{v}");
    // Name order is respected across pages.
    let (people, _, _) = e
        .list_all(
            &t,
            "personFields=names&pageSize=1000&sortOrder=FIRST_NAME_ASCENDING",
        )
        .await;
    let keys: Vec<String> = people
        .iter()
        .map(|p| p["names"][0]["givenName"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 2500);
}

#[tokio::test]
async fn person_fields_filter_and_required_params_answer_400() {
    let e = env().await;
    let t = e.token("alice@example.com");
    let (s, v) = e
        .call(
            &t,
            "POST",
            "/v1/people:createContact?personFields=names,emailAddresses,phoneNumbers,memberships,metadata",
            Some(json!({"names":[{"givenName":"Ada","familyName":"Lovelace"}],
                        "emailAddresses":[{"value":"ada@example.com"}],
                        "phoneNumbers":[{"value":"+1 555 0100"}],
                        "addresses":[{"formattedValue":"1 Main St"}]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["etag"].as_str().unwrap().starts_with('%'));
    assert!(v["resourceName"].as_str().unwrap().starts_with("people/c"));
    assert_eq!(v["metadata"]["sources"][0]["type"], "CONTACT");
    assert_eq!(
        v["memberships"][0]["contactGroupMembership"]["contactGroupResourceName"],
        "contactGroups/myContacts"
    );
    assert_eq!(v["names"][0]["displayName"], "Ada Lovelace");
    assert!(v.get("addresses").is_none(), "addresses were not requested");

    let (s, v) = e
        .call(
            &t,
            "GET",
            "/v1/people/me/connections?personFields=names",
            None,
        )
        .await;
    assert_eq!(s, 200);
    let p = &v["connections"][0];
    assert!(p["names"].is_array());
    assert!(p.get("emailAddresses").is_none());
    assert!(p.get("phoneNumbers").is_none());
    assert!(p["etag"].is_string() && p["resourceName"].is_string());
    let (_, v) = e
        .call(
            &t,
            "GET",
            "/v1/people/me/connections?personFields=addresses",
            None,
        )
        .await;
    assert_eq!(
        v["connections"][0]["addresses"][0]["formattedValue"],
        "1 Main St"
    );

    for bad in [
        "/v1/people/me/connections",
        "/v1/people/me/connections?personFields=",
        "/v1/people/me/connections?personFields=names,bogus",
        "/v1/people/me/connections?personFields=names&pageSize=1001",
        "/v1/people/me/connections?personFields=names&pageSize=-1",
        "/v1/people/me/connections?personFields=names&sortOrder=SIDEWAYS",
        "/v1/people/me/connections?personFields=names&requestSyncToken=maybe",
        "/v1/people/me/connections?personFields=names&syncToken=garbage",
        "/v1/people/me/connections?personFields=names&pageToken=garbage",
        "/v1/people/c1/connections?personFields=names",
        "/v1/people:batchGet?personFields=names",
    ] {
        let (s, v) = e.call(&t, "GET", bad, None).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{bad}");
    }
    // Singleton fields.
    let (s, _) = e
        .call(
            &t,
            "POST",
            "/v1/people:createContact",
            Some(json!({"names":[{"givenName":"A"},{"givenName":"B"}]})),
        )
        .await;
    assert_eq!(s, 400);
    // Readonly scope can read but not write.
    let ro = e.token_with("alice@example.com", CONTACTS_READONLY);
    let (s, _) = e
        .call(
            &ro,
            "GET",
            "/v1/people/me/connections?personFields=names",
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = e
        .call(&ro, "POST", "/v1/people:createContact", Some(json!({})))
        .await;
    assert_eq!(s, 403, "{v}");
}

#[tokio::test]
async fn unknown_fields_and_garbage_never_500() {
    let e = env().await;
    let t = e.token("alice@example.com");
    let (s, v) = e
        .call(
            &t,
            "POST",
            "/v1/people:createContact",
            Some(json!({"names":[{"givenName":"A"}], "x": 1})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["error"]["message"],
        "Invalid JSON payload received. Unknown name \"x\" at 'person': Cannot find field."
    );
    let cases: &[(&str, &str, &str)] = &[
        ("POST", "/v1/people:createContact", "not json"),
        ("POST", "/v1/people:createContact", "[]"),
        ("POST", "/v1/people:createContact", "{\"names\":\"x\"}"),
        (
            "POST",
            "/v1/people:createContact",
            "{\"emailAddresses\":[{\"value\":5}]}",
        ),
        (
            "POST",
            "/v1/people:batchCreateContacts",
            "{\"contacts\":\"x\",\"readMask\":\"names\"}",
        ),
        (
            "POST",
            "/v1/people:batchCreateContacts",
            "{\"contacts\":[{}],\"readMask\":\"names\"}",
        ),
        (
            "POST",
            "/v1/people:batchCreateContacts",
            "{\"contacts\":[{\"contactPerson\":{}}]}",
        ),
        (
            "POST",
            "/v1/people:batchUpdateContacts",
            "{\"contacts\":{\"people/c1\":{}}}",
        ),
        (
            "POST",
            "/v1/people:batchUpdateContacts",
            "{\"contacts\":[1],\"updateMask\":\"names\"}",
        ),
        (
            "POST",
            "/v1/people:batchDeleteContacts",
            "{\"resourceNames\":[\"nope\"]}",
        ),
        ("POST", "/v1/people:batchDeleteContacts", "{}"),
        ("PATCH", "/v1/people/c1:updateContact", "{\"etag\":\"x\"}"),
        (
            "PATCH",
            "/v1/people/c1:updateContact?updatePersonFields=photos",
            "{\"etag\":\"x\"}",
        ),
        ("POST", "/v1/contactGroups", "{\"contactGroup\":{}}"),
        (
            "POST",
            "/v1/contactGroups",
            "{\"contactGroup\":{\"name\":\"a\",\"bogus\":1}}",
        ),
        (
            "POST",
            "/v1/contactGroups/myContacts/members:modify",
            "{\"resourceNamesToAdd\":\"x\"}",
        ),
        (
            "DELETE",
            "/v1/contactGroups/myContacts?deleteContacts=perhaps",
            "",
        ),
        ("GET", "/v1/contactGroups?pageSize=abc", ""),
        ("GET", "/v1/contactGroups?groupFields=bogus", ""),
    ];
    for (m, path, body) in cases {
        let (s, v) = e.raw(&t, m, path, body).await;
        assert!((400..500).contains(&s), "{m} {path} {body}: {s} {v}");
        assert!(v["error"]["status"].is_string(), "{m} {path}: {v}");
    }
    let (s, _) = e.raw(&t, "DELETE", "/v1/people/c1:deleteContact", "").await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn sync_token_returns_exactly_the_changes_with_tombstones() {
    let e = env().await;
    let t = e.token("alice@example.com");
    let names = e.bulk(&t, "s", 5).await;
    let q = "personFields=names,metadata&pageSize=2&requestSyncToken=true";
    let (all, sync, pages) = e.list_all(&t, q).await;
    assert_eq!((all.len(), pages), (5, 3));
    let sync = sync.unwrap();

    // Update one, delete one, create one.
    let (_, got) = e
        .call(
            &t,
            "GET",
            &format!("/v1/{}?personFields=names", names[0]),
            None,
        )
        .await;
    let etag = got["etag"].as_str().unwrap();
    let (s, v) = e
        .call(
            &t,
            "PATCH",
            &format!("/v1/{}:updateContact?updatePersonFields=names", names[0]),
            Some(json!({"etag": etag, "names":[{"givenName":"Renamed"}]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = e
        .call(
            &t,
            "DELETE",
            &format!("/v1/{}:deleteContact", names[1]),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, created) = e
        .call(
            &t,
            "POST",
            "/v1/people:createContact?personFields=names",
            Some(json!({"names":[{"givenName":"New"}]})),
        )
        .await;
    assert_eq!(s, 200);

    let (changes, next, _) = e.list_all(&t, &format!("{q}&syncToken={sync}")).await;
    let mut got: Vec<(String, bool)> = changes
        .iter()
        .map(|p| {
            (
                p["resourceName"].as_str().unwrap().to_string(),
                p["metadata"]["deleted"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        (names[0].clone(), false),
        (names[1].clone(), true),
        (created["resourceName"].as_str().unwrap().to_string(), false),
    ];
    want.sort();
    assert_eq!(got, want);
    let renamed = changes
        .iter()
        .find(|p| p["resourceName"] == names[0].as_str())
        .unwrap();
    assert_eq!(renamed["names"][0]["givenName"], "Renamed");
    let tomb = changes
        .iter()
        .find(|p| p["resourceName"] == names[1].as_str())
        .unwrap();
    assert!(tomb.get("names").is_none() && tomb["etag"].is_string());

    // Nothing changed since: empty incremental, with a fresh token.
    let (none, next2, _) = e
        .list_all(&t, &format!("{q}&syncToken={}", next.unwrap()))
        .await;
    assert!(none.is_empty());
    assert!(next2.is_some());
    // The sync token is bound to the field mask.
    let (s, _) = e
        .call(
            &t,
            "GET",
            &format!("/v1/people/me/connections?personFields=phoneNumbers&syncToken={sync}"),
            None,
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn sync_tokens_expire_after_seven_days_and_on_demand() {
    let e = env().await;
    let t = e.token("alice@example.com");
    e.bulk(&t, "x", 3).await;
    let q = "personFields=names&requestSyncToken=true";
    let (_, sync, _) = e.list_all(&t, q).await;
    let sync = sync.unwrap();
    let (_, sync2, _) = e.list_all(&t, &format!("{q}&syncToken={sync}")).await;
    e.h.emulator.clock.advance(chrono::Duration::days(8));
    let t = e.token("alice@example.com");
    for tok in [&sync, sync2.as_ref().unwrap()] {
        let (s, v) = e
            .call(
                &t,
                "GET",
                &format!("/v1/people/me/connections?{q}&syncToken={tok}"),
                None,
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(reason(&v), Some("EXPIRED_SYNC_TOKEN"));
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(
            v["error"]["message"],
            "Sync token is expired. Clear local cache and retry call without the sync token."
        );
        assert_eq!(
            v["error"]["details"][0]["@type"],
            "type.googleapis.com/google.rpc.ErrorInfo"
        );
    }
    // A fresh full sync works, and the control hook expires it.
    let (_, fresh, _) = e.list_all(&t, q).await;
    let fresh = fresh.unwrap();
    let (s, _) = e
        .call(
            &t,
            "GET",
            &format!("/v1/people/me/connections?{q}&syncToken={fresh}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert!(e.h.emulator.people.expire_sync_tokens("Alice@Example.com"));
    let (s, v) = e
        .call(
            &t,
            "GET",
            &format!("/v1/people/me/connections?{q}&syncToken={fresh}"),
            None,
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(reason(&v), Some("EXPIRED_SYNC_TOKEN"));
}

#[tokio::test]
async fn batch_limits_are_enforced() {
    let e = env().await;
    let t = e.token("alice@example.com");
    let contacts: Vec<Value> = (0..201)
        .map(|i| json!({"contactPerson": {"names": [{"givenName": format!("n{i}")}]}}))
        .collect();
    let (s, v) = e
        .call(
            &t,
            "POST",
            "/v1/people:batchCreateContacts",
            Some(json!({"contacts": contacts, "readMask": "names"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let names: Vec<String> = (0..501).map(|i| format!("people/c{i}")).collect();
    let (s, _) = e
        .call(
            &t,
            "POST",
            "/v1/people:batchDeleteContacts",
            Some(json!({"resourceNames": names})),
        )
        .await;
    assert_eq!(s, 400);
    let q: Vec<String> = (0..201)
        .map(|i| format!("resourceNames=people%2Fc{i}"))
        .collect();
    let (s, _) = e
        .call(
            &t,
            "GET",
            &format!("/v1/people:batchGet?personFields=names&{}", q.join("&")),
            None,
        )
        .await;
    assert_eq!(s, 400);
    // Nothing was created by the rejected batch; batchDelete is atomic on unknown names.
    let created = e.bulk(&t, "k", 2).await;
    let (s, _) = e
        .call(
            &t,
            "POST",
            "/v1/people:batchDeleteContacts",
            Some(json!({"resourceNames": [created[0], "people/c1"]})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        e.h.emulator
            .people
            .stats("alice@example.com")
            .unwrap()
            .contacts,
        2
    );
    let (s, v) = e
        .call(
            &t,
            "POST",
            "/v1/people:batchDeleteContacts",
            Some(json!({"resourceNames": created})),
        )
        .await;
    assert_eq!((s, v), (200, json!({})));
    // batchGet reports missing names per entry.
    let (s, v) = e
        .call(
            &t,
            "GET",
            &format!(
                "/v1/people:batchGet?personFields=names&resourceNames={}&resourceNames=people%2Fme",
                created[0].replace('/', "%2F")
            ),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["responses"][0]["httpStatusCode"], 404);
    assert_eq!(v["responses"][1]["httpStatusCode"], 200);
}

#[tokio::test]
async fn stale_etag_is_failed_precondition_and_masks_replace_only_masked_fields() {
    let e = env().await;
    let t = e.token("alice@example.com");
    let (_, p) = e
        .call(
            &t,
            "POST",
            "/v1/people:createContact?personFields=names,emailAddresses,phoneNumbers,clientData",
            Some(json!({"names":[{"givenName":"Old"}],
                        "emailAddresses":[{"value":"keep@example.com"}],
                        "phoneNumbers":[{"value":"+1 555 0101"}],
                        "clientData":[{"key":"orgsync.source","value":"u1"}]})),
        )
        .await;
    let name = p["resourceName"].as_str().unwrap().to_string();
    let old_etag = p["etag"].as_str().unwrap().to_string();
    // batchUpdate: names and phoneNumbers in the mask; phones absent → cleared.
    let (s, v) = e
        .call(
            &t,
            "POST",
            "/v1/people:batchUpdateContacts",
            Some(json!({"contacts": {name.clone(): {"etag": old_etag, "names":[{"givenName":"New"}],
                                                  "emailAddresses":[{"value":"ignored@example.com"}]}},
                        "updateMask": "names,phoneNumbers",
                        "readMask": "names,emailAddresses,phoneNumbers,clientData"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let updated = &v["updateResult"][&name]["person"];
    assert_eq!(updated["names"][0]["givenName"], "New");
    assert_eq!(updated["emailAddresses"][0]["value"], "keep@example.com");
    assert!(updated.get("phoneNumbers").is_none());
    assert_eq!(updated["clientData"][0]["value"], "u1");
    assert_ne!(updated["etag"], old_etag.as_str());

    // The old etag is now stale, for single and batch updates.
    let (s, v) = e
        .call(
            &t,
            "PATCH",
            &format!("/v1/{name}:updateContact?updatePersonFields=names"),
            Some(json!({"etag": old_etag, "names":[{"givenName":"X"}]})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["status"], "FAILED_PRECONDITION");
    assert_eq!(
        v["error"]["message"],
        "Request person.etag is different than the current person.etag. Clear local cache and get the latest person."
    );
    let (s, v) = e
        .call(
            &t,
            "POST",
            "/v1/people:batchUpdateContacts",
            Some(json!({"contacts": {name.clone(): {"etag": old_etag}}, "updateMask": "names"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION"))
    );
    // No etag at all → 400; memberships update without a group → 400.
    let (s, _) = e
        .call(
            &t,
            "PATCH",
            &format!("/v1/{name}:updateContact?updatePersonFields=names"),
            Some(json!({"names":[{"givenName":"X"}]})),
        )
        .await;
    assert_eq!(s, 400);
    let cur = updated["etag"].as_str().unwrap();
    let (s, _) = e
        .call(
            &t,
            "PATCH",
            &format!("/v1/{name}:updateContact?updatePersonFields=memberships"),
            Some(json!({"etag": cur, "memberships": []})),
        )
        .await;
    assert_eq!(s, 400);
    // The source etag works as well as the person etag.
    let (_, full) = e
        .call(
            &t,
            "GET",
            &format!("/v1/{name}?personFields=metadata"),
            None,
        )
        .await;
    let src = full["metadata"]["sources"][0]["etag"].as_str().unwrap();
    let (s, v) = e
        .call(
            &t,
            "PATCH",
            &format!("/v1/{name}:updateContact?updatePersonFields=names&personFields=names"),
            Some(json!({"metadata":{"sources":[{"type":"CONTACT","etag":src}]}, "names":[{"givenName":"Via source"}]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["names"][0]["givenName"], "Via source");
}

#[tokio::test]
async fn contact_groups_names_members_and_last_group_rule() {
    let e = env().await;
    let t = e.token("alice@example.com");
    let (s, g) = e
        .call(
            &t,
            "POST",
            "/v1/contactGroups",
            Some(json!({"contactGroup":{"name":"Directory","clientData":[{"key":"orgsync","value":"1"}]},
                        "readGroupFields":"name,clientData,groupType"})),
        )
        .await;
    assert_eq!(s, 200, "{g}");
    assert_eq!(g["groupType"], "USER_CONTACT_GROUP");
    assert_eq!(g["clientData"][0]["value"], "1");
    let gname = g["resourceName"].as_str().unwrap().to_string();
    let (s, v) = e
        .call(
            &t,
            "POST",
            "/v1/contactGroups",
            Some(json!({"contactGroup":{"name":"directory"}})),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["status"], "ALREADY_EXISTS");

    let names = e.bulk(&t, "g", 3).await;
    let (s, v) = e
        .call(
            &t,
            "POST",
            &format!("/v1/{gname}/members:modify"),
            Some(json!({"resourceNamesToAdd": [names[0], names[1], "people/c42"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["notFoundResourceNames"], json!(["people/c42"]));
    // Remove names[0] from myContacts (ok, still in the label); then from the label (last).
    let (_, v) = e
        .call(
            &t,
            "POST",
            "/v1/contactGroups/myContacts/members:modify",
            Some(json!({"resourceNamesToRemove": [names[0]]})),
        )
        .await;
    assert!(
        v.get("canNotRemoveLastContactGroupResourceNames").is_none(),
        "{v}"
    );
    let (_, v) = e
        .call(
            &t,
            "POST",
            &format!("/v1/{gname}/members:modify"),
            Some(json!({"resourceNamesToRemove": [names[0]]})),
        )
        .await;
    assert_eq!(
        v["canNotRemoveLastContactGroupResourceNames"],
        json!([names[0]])
    );
    // Group side and person side agree.
    let (_, grp) = e
        .call(&t, "GET", &format!("/v1/{gname}?maxMembers=10"), None)
        .await;
    assert_eq!(grp["memberCount"], 2);
    let mut members: Vec<String> = grp["memberResourceNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    members.sort();
    let mut want = vec![names[0].clone(), names[1].clone()];
    want.sort();
    assert_eq!(members, want);
    let (_, p) = e
        .call(
            &t,
            "GET",
            &format!("/v1/{}?personFields=memberships", names[0]),
            None,
        )
        .await;
    let groups: Vec<&str> = p["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["contactGroupMembership"]["contactGroupResourceName"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(groups, [gname.as_str()]);
    let (_, mc) = e
        .call(&t, "GET", "/v1/contactGroups/myContacts", None)
        .await;
    assert_eq!(mc["memberCount"], 2);
    assert_eq!(mc["groupType"], "SYSTEM_CONTACT_GROUP");

    // Limits and system-group rules.
    let many: Vec<String> = (0..1001).map(|i| format!("people/c{i}")).collect();
    let (s, _) = e
        .call(
            &t,
            "POST",
            &format!("/v1/{gname}/members:modify"),
            Some(json!({"resourceNamesToAdd": many})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = e
        .call(
            &t,
            "POST",
            "/v1/contactGroups/friends/members:modify",
            Some(json!({"resourceNamesToAdd": [names[2]]})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = e
        .call(&t, "DELETE", "/v1/contactGroups/myContacts", None)
        .await;
    assert_eq!(s, 400);
    let (_, list) = e.call(&t, "GET", "/v1/contactGroups?alt=json", None).await;
    let listed: Vec<&str> = list["contactGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["resourceName"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"contactGroups/myContacts"));
    assert!(listed.contains(&"contactGroups/starred"));
    assert!(listed.contains(&gname.as_str()));

    // Deleting the label keeps names[0] (moved to myContacts) and its change is synced.
    let (s, _) = e.call(&t, "DELETE", &format!("/v1/{gname}"), None).await;
    assert_eq!(s, 200);
    let (_, p) = e
        .call(
            &t,
            "GET",
            &format!("/v1/{}?personFields=memberships", names[0]),
            None,
        )
        .await;
    assert_eq!(
        p["memberships"][0]["contactGroupMembership"]["contactGroupResourceName"],
        "contactGroups/myContacts"
    );
    let (s, _) = e.call(&t, "GET", &format!("/v1/{gname}"), None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn contacts_are_isolated_per_user() {
    let e = env().await;
    let a = e.token("alice@example.com");
    let b = e.token("bob@example.com");
    let names = e.bulk(&a, "a", 3).await;
    let (_, v) = e
        .call(
            &b,
            "GET",
            "/v1/people/me/connections?personFields=names",
            None,
        )
        .await;
    assert!(v["connections"].as_array().unwrap().is_empty());
    let (s, _) = e
        .call(
            &b,
            "GET",
            &format!("/v1/{}?personFields=names", names[0]),
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = e
        .call(
            &b,
            "DELETE",
            &format!("/v1/{}:deleteContact", names[0]),
            None,
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(
        e.h.emulator
            .people
            .stats("alice@example.com")
            .unwrap()
            .contacts,
        3
    );
}

#[tokio::test]
async fn concurrent_mutations_for_one_user_are_aborted_but_users_run_in_parallel() {
    let e = env().await;
    e.h.emulator
        .people
        .set_mutation_hold(Duration::from_millis(300));
    let a = e.token("alice@example.com");
    let b = e.token("bob@example.com");
    let body = json!({"names":[{"givenName":"C"}]});
    let (r1, r2) = tokio::join!(
        e.call(&a, "POST", "/v1/people:createContact", Some(body.clone())),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            e.call(&a, "POST", "/v1/people:createContact", Some(body.clone()))
                .await
        }
    );
    assert_eq!(r1.0, 200);
    assert_eq!(r2.0, 409, "{}", r2.1);
    assert_eq!(r2.1["error"]["status"], "ABORTED");
    assert!(!e.h.emulator.people.mutation_in_flight("alice@example.com"));
    // Sequential requests for the same user are fine; different users overlap freely.
    let (r1, r2) = tokio::join!(
        e.call(&a, "POST", "/v1/people:createContact", Some(body.clone())),
        e.call(&b, "POST", "/v1/people:createContact", Some(body.clone()))
    );
    assert_eq!((r1.0, r2.0), (200, 200));
    // A failed mutation clears its marker too.
    let (s, _) = e
        .raw(&a, "POST", "/v1/people:createContact", "{\"x\":1}")
        .await;
    assert_eq!(s, 400);
    let (s, _) = e
        .call(&a, "DELETE", "/v1/people/c1:deleteContact", None)
        .await;
    assert_eq!(s, 404);
    assert!(!e.h.emulator.people.mutation_in_flight("alice@example.com"));
    let (s, _) = e
        .call(&a, "POST", "/v1/people:createContact", Some(body))
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn contact_cap_of_25000_holds_and_listing_stays_fast() {
    let e = env().await;
    let t = e.token("alice@example.com");
    let started = Instant::now();
    e.bulk(&t, "cap", 25_000).await;
    let created = started.elapsed();
    let (s, v) = e
        .call(
            &t,
            "POST",
            "/v1/people:createContact",
            Some(json!({"names":[{"givenName":"one too many"}]})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["status"], "FAILED_PRECONDITION");
    assert_eq!(v["error"]["message"], "Contact limit exceeded.");
    let started = Instant::now();
    let (people, _, pages) = e
        .list_all(&t, "personFields=names,emailAddresses&pageSize=1000")
        .await;
    let listed = started.elapsed();
    assert_eq!((people.len(), pages), (25_000, 25));
    assert!(listed < Duration::from_secs(30), "listing took {listed:?}");
    eprintln!("25k: create {created:?}, list {listed:?}");
    // The cap is a setting.
    e.h.emulator.people.set_contact_cap(25_001);
    let (s, _) = e
        .call(&t, "POST", "/v1/people:createContact", Some(json!({})))
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn people_me_and_snapshot_round_trip() {
    let e = env().await;
    let t = e.token("alice@example.com");
    let (s, v) = e
        .call(&t, "GET", "/v1/people/me?personFields=emailAddresses", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["emailAddresses"][0]["value"], "alice@example.com");
    let names = e.bulk(&t, "snap", 3).await;
    let snap = e.h.emulator.people.snapshot();
    let json = serde_json::to_string(&snap).unwrap();
    e.h.emulator.people.clear();
    assert!(e.h.emulator.people.stats("alice@example.com").is_none());
    e.h.emulator
        .people
        .restore(serde_json::from_str(&json).unwrap());
    let (s, v) = e
        .call(
            &t,
            "GET",
            &format!("/v1/{}?personFields=names", names[2]),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["names"][0]["givenName"], "snap2");
}

#[tokio::test]
async fn seeded_personal_contacts_are_deterministic_and_varied() {
    let mut cfg = EmulatorConfig::for_tests(5);
    cfg.personal_contacts_per_user = 6;
    let h = spawn(cfg.clone()).await.expect("spawn");
    let h2 = spawn(cfg).await.expect("spawn");
    let snap = |h: &EmulatorHandle| {
        let s = h.emulator.people.snapshot();
        s.users
            .iter()
            .map(|b| {
                let people: Vec<Value> = b
                    .contacts
                    .values()
                    .map(|c| serde_json::to_value(&c.data).unwrap())
                    .collect();
                (b.user.clone(), people)
            })
            .collect::<Vec<_>>()
    };
    let a = snap(&h);
    assert_eq!(a, snap(&h2), "seeding must be deterministic");
    assert!(!a.is_empty());
    for (_, people) in &a {
        assert_eq!(people.len(), 6);
        // Some carry a colleague's work address (the org's domain).
        assert!(people.iter().any(|p| {
            p["emailAddresses"][0]["value"]
                .as_str()
                .is_some_and(|v| v.ends_with("@example.com"))
        }));
        assert!(people.iter().any(|p| p.get("emailAddresses").is_some()));
        assert!(
            people
                .iter()
                .any(|p| p.get("phoneNumbers").is_some() && p.get("emailAddresses").is_none())
        );
        assert!(
            people
                .iter()
                .any(|p| p.get("phoneNumbers").is_none() && p.get("emailAddresses").is_none())
        );
    }
}

/// `latency_ms` is a call's response time at the server, the server's work included:
/// the handler runs when the request arrives and only the answer waits. A create held
/// 600 ms is visible to a read without latency well before its own answer, and that
/// answer still takes the whole 600 ms. (When the work ran after the wait, the emulator's
/// CPU time was added to every call's latency.)
#[tokio::test]
async fn latency_covers_the_servers_work_instead_of_adding_to_it() {
    let env = env().await;
    let tok = env.token("alice@example.com");
    orgsync_testkit::emulator::control(
        &env.h,
        reqwest::Method::PUT,
        "faults",
        Some(json!({
            "latency_ms": 600,
            "overrides": [{"method": "people.people.connections", "latency_ms": 0}],
        })),
    )
    .await;
    let started = Instant::now();
    let create = env.call(
        &tok,
        "POST",
        "/v1/people:createContact",
        Some(json!({"names": [{"givenName": "Held"}]})),
    );
    let watch = async {
        loop {
            let (s, v) = env
                .call(
                    &tok,
                    "GET",
                    "/v1/people/me/connections?personFields=names",
                    None,
                )
                .await;
            assert_eq!(s, 200, "{v}");
            if v["connections"].as_array().is_some_and(|c| !c.is_empty()) {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let ((status, created), seen_after) = tokio::join!(create, watch);
    let answered_after = started.elapsed();
    assert_eq!(status, 200, "{created}");
    assert!(
        seen_after < Duration::from_millis(400),
        "the contact appeared only after {seen_after:?}: the handler waited for the latency"
    );
    assert!(
        answered_after >= Duration::from_millis(600),
        "answered after {answered_after:?}, under the 600 ms latency"
    );
}
