//! Directory v1 over real loopback HTTP: users (paging, search, projections, writes,
//! deletes), groups and members, and `users.watch` push delivery.

use std::collections::HashSet;

use std::ops::Deref;

use orgsync_emulator::EmulatorConfig;
use orgsync_testkit::{Emu, token};
use orgsync_wire::directory::{User, Users};
use orgsync_wire::error::ErrorEnvelope;
use orgsync_wire::scopes;
use reqwest::StatusCode;
use serde_json::{Value, json};

const USERS: &str = "/admin/directory/v1/users";

struct Env {
    emu: Emu,
    /// The admin's token (users and groups).
    admin: String,
}

impl Deref for Env {
    type Target = Emu;

    fn deref(&self) -> &Emu {
        &self.emu
    }
}

async fn env(users: usize) -> Env {
    let emu = Emu::start(EmulatorConfig::for_tests(users)).await;
    let admin = emu.token(
        "admin@example.com",
        &[scopes::DIRECTORY_USER, scopes::DIRECTORY_GROUP],
    );
    Env { emu, admin }
}

impl Env {
    async fn get_as(&self, token: &str, pq: &str) -> (StatusCode, Value) {
        let (status, body) = self.call(token, reqwest::Method::GET, pq, None).await;
        (StatusCode::from_u16(status).unwrap(), body)
    }

    async fn get(&self, pq: &str) -> (StatusCode, Value) {
        self.get_as(&self.admin, pq).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        pq: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, body) = self.call(&self.admin, method, pq, body).await;
        (StatusCode::from_u16(status).unwrap(), body)
    }

    async fn post(&self, pq: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, pq, Some(body)).await
    }

    /// Every user for `query_string` (without pageToken), following nextPageToken.
    async fn list_all(&self, qs: &str) -> Vec<User> {
        self.list_all_as(&self.admin, qs).await
    }

    async fn list_all_as(&self, bearer: &str, qs: &str) -> Vec<User> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut pq = format!("{USERS}?{qs}");
            if let Some(t) = &token {
                pq.push_str(&format!("&pageToken={}", urlencode(t)));
            }
            let (status, body) = self.get_as(bearer, &pq).await;
            assert_eq!(status, 200, "{pq}: {body}");
            let page: Users = serde_json::from_value(body).unwrap();
            assert_eq!(page.kind.as_deref(), Some("admin#directory#users"));
            out.extend(page.users);
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => return out,
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn emails(users: &[User]) -> Vec<String> {
    users
        .iter()
        .map(|u| u.primary_email.clone().unwrap())
        .collect()
}

fn error_reason(body: &Value) -> String {
    let e: ErrorEnvelope = serde_json::from_value(body.clone())
        .unwrap_or_else(|_| panic!("not an error envelope: {body}"));
    e.error
        .errors
        .first()
        .map(|x| x.reason.clone())
        .unwrap_or_default()
}

fn new_user(email: &str) -> Value {
    json!({"primaryEmail": email, "name": {"givenName": "Test", "familyName": "User"},
           "password": "correct horse battery"})
}

#[tokio::test]
async fn paging_10k_users_returns_each_exactly_once_in_email_order() {
    let env = env(10_000).await;
    let started = std::time::Instant::now();
    let users = env
        .list_all("customer=my_customer&maxResults=500&projection=full")
        .await;
    let elapsed = started.elapsed();
    assert_eq!(users.len(), 10_001, "10k generated + admin");
    let list = emails(&users);
    let unique: HashSet<_> = list.iter().map(|e| e.to_lowercase()).collect();
    assert_eq!(unique.len(), list.len(), "no duplicates across pages");
    let mut sorted = list.clone();
    sorted.sort_by_key(|e| e.to_lowercase());
    assert_eq!(list, sorted, "primary email ascending, case-insensitive");
    assert!(elapsed.as_secs() < 30, "paging took {elapsed:?}");

    // Descending by family name is the exact reverse of ascending.
    let asc = env
        .list_all(
            "domain=example.com&maxResults=500&orderBy=familyName&query=orgUnitPath%3D%2FSales",
        )
        .await;
    let desc = env
        .list_all("domain=example.com&maxResults=333&orderBy=familyName&sortOrder=DESCENDING&query=orgUnitPath%3D%2FSales")
        .await;
    assert!(asc.len() > 500, "spans pages: {}", asc.len());
    let mut rev = emails(&desc);
    rev.reverse();
    assert_eq!(emails(&asc), rev);
    let fam: Vec<String> = asc
        .iter()
        .map(|u| {
            u.name
                .as_ref()
                .unwrap()
                .family_name
                .clone()
                .unwrap()
                .to_lowercase()
        })
        .collect();
    assert!(
        fam.windows(2).all(|w| w[0] <= w[1]),
        "sorted by family name"
    );
}

#[tokio::test]
async fn max_results_bounds_and_customer_requirement() {
    let env = env(700).await;
    let (s, b) = env.get(&format!("{USERS}?customer=my_customer")).await;
    assert_eq!(s, 200);
    assert_eq!(
        b["users"].as_array().unwrap().len(),
        100,
        "default page size"
    );
    let (s, b) = env
        .get(&format!("{USERS}?customer=my_customer&maxResults=501"))
        .await;
    assert_eq!(s, 200, "over 500 is clamped, not rejected");
    assert_eq!(b["users"].as_array().unwrap().len(), 500);
    assert!(b["nextPageToken"].is_string());
    for bad in ["0", "-1", "abc"] {
        let (s, b) = env
            .get(&format!("{USERS}?customer=my_customer&maxResults={bad}"))
            .await;
        assert_eq!(s, 400, "maxResults={bad}");
        assert_eq!(error_reason(&b), "invalid");
    }
    let (s, b) = env.get(USERS).await;
    assert_eq!(s, 400, "customer or domain is required");
    assert_eq!(b["error"]["code"], 400);
    let (s, _) = env.get(&format!("{USERS}?customer=C0nothere")).await;
    assert_eq!(s, 400);
    let (s, _) = env.get(&format!("{USERS}?domain=other.org")).await;
    assert_eq!(s, 403);
    let cid = env.h.emulator.directory.read().customer_id.clone();
    let (s, _) = env
        .get(&format!("{USERS}?customer={cid}&maxResults=1"))
        .await;
    assert_eq!(s, 200, "the real customer id works like my_customer");
}

#[tokio::test]
async fn bad_page_tokens_are_400() {
    let mut env = env(50).await;
    let (s, b) = env
        .get(&format!("{USERS}?customer=my_customer&pageToken=garbage!!"))
        .await;
    assert_eq!(s, 400);
    assert_eq!(error_reason(&b), "invalid");
    let (_, b) = env
        .get(&format!("{USERS}?customer=my_customer&maxResults=5"))
        .await;
    let t = b["nextPageToken"].as_str().unwrap().to_string();
    let (s, _) = env
        .get(&format!(
            "{USERS}?customer=my_customer&maxResults=5&query=isAdmin%3Dtrue&pageToken={}",
            urlencode(&t)
        ))
        .await;
    assert_eq!(s, 400, "a token from another query is refused");
    let (s, _) = env
        .get(&format!(
            "{USERS}?customer=my_customer&maxResults=5&pageToken={}",
            urlencode(&t)
        ))
        .await;
    assert_eq!(s, 200);
    env.h.emulator.clock.advance(chrono::Duration::days(4));
    env.admin = token(&env.h, "admin@example.com", &[scopes::DIRECTORY_USER]);
    let (s, _) = env
        .get(&format!(
            "{USERS}?customer=my_customer&maxResults=5&pageToken={}",
            urlencode(&t)
        ))
        .await;
    assert_eq!(s, 400, "tokens expire after 3 days");
}

#[tokio::test]
async fn search_operators_filter_like_the_data_says() {
    let env = env(3000).await;
    let all = env
        .list_all("customer=my_customer&maxResults=500&projection=full")
        .await;
    let check = |q: &'static str, pred: Box<dyn Fn(&User) -> bool>| {
        let expected: Vec<String> =
            emails(&all.iter().filter(|u| pred(u)).cloned().collect::<Vec<_>>());
        (q, expected)
    };
    let cases = vec![
        check("isSuspended=true", Box::new(|u| u.suspended == Some(true))),
        check("isAdmin=true", Box::new(|u| u.is_admin == Some(true))),
        check(
            "isArchived=true isSuspended=false",
            Box::new(|u| u.archived == Some(true) && u.suspended != Some(true)),
        ),
        check(
            "orgUnitPath=/Engineering",
            Box::new(|u| {
                u.org_unit_path
                    .as_deref()
                    .unwrap()
                    .starts_with("/Engineering")
            }),
        ),
        check(
            "orgUnitPath='/Sales/EMEA'",
            Box::new(|u| u.org_unit_path.as_deref() == Some("/Sales/EMEA")),
        ),
        check(
            "orgDepartment=Finance",
            Box::new(|u| {
                u.primary_organization().unwrap().department.as_deref() == Some("Finance")
            }),
        ),
        check(
            "orgTitle:'Account Executive'",
            Box::new(|u| {
                u.primary_organization().unwrap().title.as_deref() == Some("Account Executive")
            }),
        ),
        check(
            "email:ma*",
            Box::new(|u| {
                u.primary_email.as_deref().unwrap().starts_with("ma")
                    || u.aliases.iter().flatten().any(|a| a.starts_with("ma"))
            }),
        ),
        check(
            "givenName=Zoë",
            Box::new(|u| u.name.as_ref().unwrap().given_name.as_deref() == Some("Zoë")),
        ),
        check(
            "familyName:'de Vries'",
            Box::new(|u| u.name.as_ref().unwrap().family_name.as_deref() == Some("de Vries")),
        ),
        check(
            "Roles.billing=true",
            Box::new(|u| u.custom_field("Roles", "billing") == Some(&Value::Bool(true))),
        ),
        check(
            "EmployeeInfo.jobLevel:[5,8]",
            Box::new(|u| {
                let l = u
                    .custom_field("EmployeeInfo", "jobLevel")
                    .unwrap()
                    .as_i64()
                    .unwrap();
                (5..8).contains(&l)
            }),
        ),
        check(
            "EmployeeInfo.jobLevel>=8",
            Box::new(|u| {
                u.custom_field("EmployeeInfo", "jobLevel")
                    .unwrap()
                    .as_i64()
                    .unwrap()
                    >= 8
            }),
        ),
        check(
            "externalId=E000042",
            Box::new(|u| {
                u.external_ids
                    .iter()
                    .flatten()
                    .any(|x| x.value == "E000042")
            }),
        ),
    ];
    for (q, expected) in cases {
        let got = emails(
            &env.list_all(&format!(
                "customer=my_customer&maxResults=500&query={}",
                urlencode(q)
            ))
            .await,
        );
        assert!(!expected.is_empty(), "{q}: test data should have matches");
        assert_eq!(got, expected, "query {q}");
    }
    // A phone and a manager taken from the data.
    let someone = all
        .iter()
        .find(|u| u.extra.contains_key("relations"))
        .unwrap();
    let manager = someone.extra["relations"][0]["value"].as_str().unwrap();
    let got = env
        .list_all(&format!(
            "customer=my_customer&maxResults=500&query={}",
            urlencode(&format!("manager={manager}"))
        ))
        .await;
    assert!(emails(&got).contains(someone.primary_email.as_ref().unwrap()));
    let manager_id = all
        .iter()
        .find(|u| u.primary_email.as_deref() == Some(manager))
        .unwrap()
        .id
        .clone()
        .unwrap();
    let by_id = env
        .list_all(&format!(
            "customer=my_customer&maxResults=500&query=managerId%3D{manager_id}"
        ))
        .await;
    assert_eq!(emails(&by_id), emails(&got));
    let phone = someone.phones.as_ref().unwrap()[0].value.replace(' ', "");
    let got = env
        .list_all(&format!(
            "customer=my_customer&query={}",
            urlencode(&format!("phone={phone}"))
        ))
        .await;
    assert!(emails(&got).contains(someone.primary_email.as_ref().unwrap()));

    for bad in [
        "isAdmin=maybe",
        "nosuch=1",
        "email='open",
        "orgUnitPath:Sales",
    ] {
        let (s, b) = env
            .get(&format!(
                "{USERS}?customer=my_customer&query={}",
                urlencode(bad)
            ))
            .await;
        assert_eq!(s, 400, "{bad}");
        assert_eq!(b["error"]["message"], "Invalid Input");
    }
}

#[tokio::test]
async fn projections_and_domain_public_view() {
    let env = env(1500).await;
    let (_, b) = env
        .get(&format!("{USERS}?customer=my_customer&maxResults=5"))
        .await;
    assert!(
        b["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u.get("customSchemas").is_none()),
        "basic omits custom schemas"
    );
    let (_, b) = env
        .get(&format!(
            "{USERS}?customer=my_customer&maxResults=5&projection=full"
        ))
        .await;
    assert!(b["users"][0]["customSchemas"]["Roles"].is_object());
    assert!(b["users"][0]["customSchemas"]["EmployeeInfo"].is_object());
    let (_, b) = env
        .get(&format!(
            "{USERS}?customer=my_customer&maxResults=5&projection=custom&customFieldMask=Roles"
        ))
        .await;
    assert!(b["users"][0]["customSchemas"]["Roles"].is_object());
    assert!(b["users"][0]["customSchemas"].get("EmployeeInfo").is_none());
    let (s, _) = env
        .get(&format!("{USERS}?customer=my_customer&projection=custom"))
        .await;
    assert_eq!(s, 400, "custom needs customFieldMask");
    let (s, _) = env
        .get(&format!(
            "{USERS}?customer=my_customer&projection=everything"
        ))
        .await;
    assert_eq!(s, 400);

    // domain_public: a non-admin with the read-only scope may list; hidden users and
    // admin-only fields are left out.
    let admin_view = env.list_all("customer=my_customer&maxResults=500").await;
    let plain = admin_view
        .iter()
        .find(|u| u.is_admin != Some(true) && u.suspended != Some(true))
        .unwrap();
    let t = token(
        &env.h,
        plain.primary_email.as_ref().unwrap(),
        &[scopes::DIRECTORY_USER_READONLY],
    );
    let public = env
        .list_all_as(
            &t,
            "customer=my_customer&maxResults=500&viewType=domain_public",
        )
        .await;
    let hidden = admin_view
        .iter()
        .filter(|u| !u.in_global_address_list())
        .count();
    assert!(hidden > 0);
    assert_eq!(public.len(), admin_view.len() - hidden);
    assert!(
        public
            .iter()
            .all(|u| u.is_admin.is_none() && u.org_unit_path.is_none() && u.suspended.is_none())
    );
    let (s, b) = env
        .get_as(&t, &format!("{USERS}?customer=my_customer"))
        .await;
    assert_eq!(s, 403, "admin_view needs an admin");
    assert_eq!(
        b["error"]["message"],
        "Not Authorized to access this resource/api"
    );
    assert_eq!(error_reason(&b), "forbidden");
}

#[tokio::test]
async fn get_by_id_email_or_alias_and_googles_404() {
    let env = env(500).await;
    let all = env.list_all("customer=my_customer&maxResults=500").await;
    let aliased = all
        .iter()
        .find(|u| u.aliases.is_some())
        .expect("some user has an alias");
    let id = aliased.id.clone().unwrap();
    for key in [
        id.clone(),
        aliased.primary_email.clone().unwrap(),
        aliased.primary_email.clone().unwrap().to_uppercase(),
        aliased.aliases.as_ref().unwrap()[0].clone(),
    ] {
        let (s, b) = env.get(&format!("{USERS}/{}", urlencode(&key))).await;
        assert_eq!(s, 200, "{key}");
        assert_eq!(b["id"], id.as_str());
        assert_eq!(b["kind"], "admin#directory#user");
        assert!(b["etag"].as_str().unwrap().starts_with('"'));
    }
    let (s, b) = env.get(&format!("{USERS}/nobody%40example.com")).await;
    assert_eq!(s, 404);
    assert_eq!(
        b,
        json!({"error":{"code":404,"message":"Resource Not Found: userKey",
            "errors":[{"message":"Resource Not Found: userKey","domain":"global","reason":"notFound"}]}})
    );
}

#[tokio::test]
async fn insert_validates_and_refuses_duplicates() {
    let env = env(10).await;
    let (s, b) = env.post(USERS, new_user("New.Person@example.com")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["primaryEmail"], "New.Person@example.com");
    assert_eq!(b["id"].as_str().unwrap().len(), 21);
    assert!(
        b["id"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_digit())
    );
    assert_eq!(b["isAdmin"], false);
    assert_eq!(b["orgUnitPath"], "/");
    assert_eq!(b["name"]["fullName"], "Test User");
    assert!(b["creationTime"].is_string());
    assert!(b.get("password").is_none(), "password never echoed");
    assert_eq!(
        b["customerId"],
        env.h.emulator.directory.read().customer_id.as_str()
    );

    let (s, b) = env.post(USERS, new_user("new.person@EXAMPLE.com")).await;
    assert_eq!(s, 409);
    assert_eq!(b["error"]["message"], "Entity already exists.");
    assert_eq!(error_reason(&b), "duplicate");

    let mut no_given = new_user("x1@example.com");
    no_given["name"] = json!({"familyName": "X"});
    let mut short_pw = new_user("x2@example.com");
    short_pw["password"] = json!("short");
    let mut no_pw = new_user("x3@example.com");
    no_pw.as_object_mut().unwrap().remove("password");
    let mut hashed = new_user("x4@example.com");
    hashed["password"] = json!("5f4dcc3b5aa765d61d8327deb882cf99");
    hashed["hashFunction"] = json!("MD5");
    let mut read_only = new_user("x5@example.com");
    read_only["isAdmin"] = json!(true);
    read_only["id"] = json!("123");
    for (body, want) in [
        (new_user("not-an-email"), 400),
        (new_user("someone@other.org"), 400),
        (
            json!({"name": {"givenName": "A", "familyName": "B"}, "password": "long enough"}),
            400,
        ),
        (no_given, 400),
        (short_pw, 400),
        (no_pw, 400),
        (json!({"primaryEmail": 5}), 400),
        (json!([1, 2]), 400),
        (hashed, 200),
        (read_only, 200),
    ] {
        let (s, b) = env.post(USERS, body.clone()).await;
        assert_eq!(s.as_u16(), want, "{body} -> {b}");
        if want == 200 && body.get("isAdmin").is_some() {
            assert_eq!(b["isAdmin"], false, "read-only fields ignored");
            assert_ne!(b["id"], "123");
        }
    }
    // Malformed JSON is a 400 in Google's envelope, never a 500.
    let r = env
        .http
        .post(env.url(USERS))
        .bearer_auth(&env.admin)
        .header("content-type", "application/json")
        .body("{\"primaryEmail\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(error_reason(&b), "invalid");
}

#[tokio::test]
async fn update_has_patch_semantics_renames_keep_an_alias_and_etags_change() {
    let env = env(10).await;
    let mut body = new_user("pat@example.com");
    body["phones"] = json!([{"value": "+1 415 555 0100", "type": "work"}]);
    body["organizations"] = json!([{"title": "Engineer", "department": "Eng", "primary": true}]);
    let (_, created) = env.post(USERS, body).await;
    let id = created["id"].as_str().unwrap().to_string();
    let etag0 = created["etag"].as_str().unwrap().to_string();

    // PUT with only a new family name keeps everything else.
    let (s, b) = env
        .send(
            reqwest::Method::PUT,
            &format!("{USERS}/pat%40example.com"),
            Some(json!({"name": {"familyName": "Jones"}})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["name"]["givenName"], "Test");
    assert_eq!(b["name"]["familyName"], "Jones");
    assert_eq!(b["name"]["fullName"], "Test Jones");
    assert_eq!(b["phones"][0]["value"], "+1 415 555 0100");
    let etag1 = b["etag"].as_str().unwrap().to_string();
    assert_ne!(etag0, etag1, "etag changes with the user");

    // null clears; arrays are replaced whole; PATCH behaves the same.
    let (s, b) = env
        .send(
            reqwest::Method::PATCH,
            &format!("{USERS}/{id}"),
            Some(json!({"phones": null, "organizations": [{"title": "Lead"}], "isAdmin": true})),
        )
        .await;
    assert_eq!(s, 200);
    assert!(b.get("phones").is_none());
    assert_eq!(b["organizations"], json!([{"title": "Lead"}]));
    assert_eq!(
        b["isAdmin"], false,
        "isAdmin only changes through makeAdmin"
    );

    // Rename: old address becomes an alias and still resolves.
    let (s, b) = env
        .send(
            reqwest::Method::PUT,
            &format!("{USERS}/{id}"),
            Some(json!({"primaryEmail": "patricia@example.com"})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["primaryEmail"], "patricia@example.com");
    assert_eq!(b["aliases"], json!(["pat@example.com"]));
    let (s, b) = env.get(&format!("{USERS}/pat%40example.com")).await;
    assert_eq!(s, 200);
    assert_eq!(b["id"], id.as_str());
    let (s, _) = env.post(USERS, new_user("pat@example.com")).await;
    assert_eq!(s, 409, "the old address cannot be reused");
    let (s, _) = env
        .send(
            reqwest::Method::PUT,
            &format!("{USERS}/{id}"),
            Some(json!({"primaryEmail": "admin@example.com"})),
        )
        .await;
    assert_eq!(s, 409, "cannot rename onto another user");

    // If-Match: a stale etag is refused; the current one and * pass.
    let (_, now) = env.get(&format!("{USERS}/{id}")).await;
    let current = now["etag"].as_str().unwrap().to_string();
    let put = |etag: String| {
        env.http
            .put(env.url(&format!("{USERS}/{id}")))
            .bearer_auth(&env.admin)
            .header("if-match", etag)
            .json(&json!({"suspended": true}))
            .send()
    };
    let r = put(etag1.clone()).await.unwrap();
    assert_eq!(r.status(), 412);
    let b: Value = r.json().await.unwrap();
    assert_eq!(error_reason(&b), "conditionNotMet");
    let r = put(current).await.unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["suspended"], true);
    assert_eq!(b["suspensionReason"], "ADMIN");
    assert_eq!(put("*".into()).await.unwrap().status(), 200);

    let (s, _) = env
        .send(
            reqwest::Method::PUT,
            &format!("{USERS}/ghost%40example.com"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = env
        .send(
            reqwest::Method::PUT,
            &format!("{USERS}/{id}"),
            Some(json!({"name": {"givenName": ""}})),
        )
        .await;
    assert_eq!(s, 400);

    // makeAdmin
    let (s, _) = env
        .post(&format!("{USERS}/{id}/makeAdmin"), json!({"status": true}))
        .await;
    assert_eq!(s, 204);
    let (_, b) = env.get(&format!("{USERS}/{id}")).await;
    assert_eq!(b["isAdmin"], true);
    let (s, _) = env
        .post(&format!("{USERS}/{id}/makeAdmin"), json!({}))
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn delete_show_deleted_and_undelete_within_20_days() {
    let mut env = env(20).await;
    let (_, created) = env.post(USERS, new_user("gone@example.com")).await;
    let id = created["id"].as_str().unwrap().to_string();
    let (s, _) = env
        .send(
            reqwest::Method::DELETE,
            &format!("{USERS}/gone%40example.com"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = env.get(&format!("{USERS}/{id}")).await;
    assert_eq!(s, 404);
    let live = env.list_all("customer=my_customer&maxResults=500").await;
    assert!(!emails(&live).contains(&"gone@example.com".to_string()));
    let deleted = env.list_all("customer=my_customer&showDeleted=true").await;
    assert_eq!(
        emails(&deleted),
        ["gone@example.com"],
        "showDeleted lists only deleted users"
    );
    assert!(deleted[0].deletion_time.is_some());
    let (s, _) = env
        .send(reqwest::Method::DELETE, &format!("{USERS}/{id}"), None)
        .await;
    assert_eq!(s, 404);

    let (s, _) = env
        .post(&format!("{USERS}/gone%40example.com/undelete"), json!({}))
        .await;
    assert_eq!(s, 404, "undelete takes the id only");
    let (s, _) = env
        .post(
            &format!("{USERS}/{id}/undelete"),
            json!({"orgUnitPath": "/Support"}),
        )
        .await;
    assert_eq!(s, 204);
    let (s, b) = env.get(&format!("{USERS}/gone%40example.com")).await;
    assert_eq!(s, 200);
    assert_eq!(b["orgUnitPath"], "/Support");
    assert!(b.get("deletionTime").is_none());

    // After 20 days a deleted user is gone for good.
    env.send(reqwest::Method::DELETE, &format!("{USERS}/{id}"), None)
        .await;
    env.h.emulator.clock.advance(chrono::Duration::days(21));
    env.admin = token(&env.h, "admin@example.com", &[scopes::DIRECTORY_USER]);
    let deleted = env.list_all("customer=my_customer&showDeleted=true").await;
    assert!(deleted.is_empty());
    let (s, _) = env.post(&format!("{USERS}/{id}/undelete"), json!({})).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn non_admins_and_missing_scopes_are_refused() {
    let env = env(200).await;
    let all = env.list_all("customer=my_customer&maxResults=500").await;
    let plain = all
        .iter()
        .find(|u| u.is_admin != Some(true) && u.is_delegated_admin != Some(true))
        .unwrap();
    let user_token = token(
        &env.h,
        plain.primary_email.as_ref().unwrap(),
        &[scopes::DIRECTORY_USER],
    );
    let (s, b) = env
        .get_as(&user_token, &format!("{USERS}?customer=my_customer"))
        .await;
    assert_eq!(s, 403);
    assert_eq!(error_reason(&b), "forbidden");

    let ro = token(
        &env.h,
        "admin@example.com",
        &[scopes::DIRECTORY_USER_READONLY],
    );
    let (s, _) = env
        .get_as(&ro, &format!("{USERS}?customer=my_customer"))
        .await;
    assert_eq!(s, 200, "read-only scope reads");
    let r = env
        .http
        .post(env.url(USERS))
        .bearer_auth(&ro)
        .json(&new_user("ro@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let b: Value = r.json().await.unwrap();
    assert_eq!(error_reason(&b), "insufficientPermissions");
    let cloud = token(&env.h, "admin@example.com", &[scopes::CLOUD_PLATFORM]);
    let (s, _) = env
        .get_as(&cloud, &format!("{USERS}?customer=my_customer"))
        .await;
    assert_eq!(s, 200, "cloud-platform may list");
    let contacts = token(&env.h, "admin@example.com", &[scopes::CONTACTS]);
    let (s, b) = env
        .get_as(&contacts, &format!("{USERS}/admin%40example.com"))
        .await;
    assert_eq!(s, 403);
    assert_eq!(error_reason(&b), "insufficientPermissions");
    let (s, _) = env
        .get_as("ya29.bogus", &format!("{USERS}?customer=my_customer"))
        .await;
    assert_eq!(s, 401);
}

const GROUPS: &str = "/admin/directory/v1/groups";

#[tokio::test]
async fn groups_list_get_and_nested_members() {
    let env = env(400).await;
    // Paging over every group, 5 at a time, in email order.
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let (s, b) = env
            .get(&format!(
                "{GROUPS}?customer=my_customer&maxResults=5&pageToken={}",
                urlencode(&page_token)
            ))
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["kind"], "admin#directory#groups");
        for g in b["groups"].as_array().unwrap() {
            assert!(g["directMembersCount"].is_string(), "int64 as string");
            all.push(g["email"].as_str().unwrap().to_string());
        }
        match b["nextPageToken"].as_str() {
            Some(t) => page_token = t.to_string(),
            None => break,
        }
    }
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert!(all.contains(&"all-staff@example.com".to_string()));
    assert!(all.contains(&"engineering@example.com".to_string()));
    let (s, _) = env.get(GROUPS).await;
    assert_eq!(s, 400, "customer, domain or userKey is required");
    let (s, _) = env
        .get(&format!("{GROUPS}?customer=my_customer&maxResults=0"))
        .await;
    assert_eq!(s, 400);

    let (s, g) = env.get(&format!("{GROUPS}/platform%40example.com")).await;
    assert_eq!(s, 200);
    let direct: i64 = g["directMembersCount"].as_str().unwrap().parse().unwrap();
    let (_, b) = env
        .get(&format!("{GROUPS}/{}", g["id"].as_str().unwrap()))
        .await;
    assert_eq!(b["email"], "platform@example.com", "by id too");
    let (s, b) = env.get(&format!("{GROUPS}/nope%40example.com")).await;
    assert_eq!(s, 404);
    assert_eq!(b["error"]["message"], "Resource Not Found: groupKey");

    // Direct members of engineering@ are the three unit groups; derived adds users.
    let (_, b) = env
        .get(&format!("{GROUPS}/engineering%40example.com/members"))
        .await;
    let direct_members = b["members"].as_array().unwrap();
    assert_eq!(direct_members.len(), 3);
    assert!(direct_members.iter().all(|m| m["type"] == "GROUP"));
    let (_, b) = env
        .get(&format!(
            "{GROUPS}/platform%40example.com/members?maxResults=200"
        ))
        .await;
    assert_eq!(
        b["members"].as_array().unwrap().len() as i64,
        direct.min(200)
    );
    let mut derived = Vec::new();
    let mut page_token = String::new();
    loop {
        let (s, b) = env
            .get(&format!("{GROUPS}/all-staff%40example.com/members?includeDerivedMembership=true&maxResults=200&pageToken={}", urlencode(&page_token)))
            .await;
        assert_eq!(s, 200, "{b}");
        derived.extend(b["members"].as_array().unwrap().iter().cloned());
        match b["nextPageToken"].as_str() {
            Some(t) => page_token = t.to_string(),
            None => break,
        }
    }
    let user_members: HashSet<_> = derived
        .iter()
        .filter(|m| m["type"] == "USER")
        .map(|m| m["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        user_members.len(),
        401,
        "every user reaches all-staff through nesting"
    );
    let ids: HashSet<_> = derived
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), derived.len(), "each member once");
    let (_, b) = env
        .get(&format!(
            "{GROUPS}/platform%40example.com/members?roles=OWNER"
        ))
        .await;
    let owners = b["members"].as_array().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0]["role"], "OWNER");
    let (s, _) = env
        .get(&format!(
            "{GROUPS}/platform%40example.com/members?roles=BOSS"
        ))
        .await;
    assert_eq!(s, 400);

    // hasMember is nested; userKey lists direct groups.
    let someone = owners[0]["email"].as_str().unwrap().to_string();
    let (_, b) = env
        .get(&format!(
            "{GROUPS}/all-staff%40example.com/hasMember/{}",
            urlencode(&someone)
        ))
        .await;
    assert_eq!(b, json!({"isMember": true}));
    let (_, b) = env
        .get(&format!(
            "{GROUPS}/finance%40example.com/hasMember/{}",
            urlencode(&someone)
        ))
        .await;
    assert_eq!(b, json!({"isMember": false}));
    let (s, _) = env
        .get(&format!(
            "{GROUPS}/finance%40example.com/hasMember/ghost%40example.com"
        ))
        .await;
    assert_eq!(s, 404);
    let (_, b) = env
        .get(&format!("{GROUPS}?userKey={}", urlencode(&someone)))
        .await;
    let mine: Vec<_> = b["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["email"].as_str().unwrap())
        .collect();
    assert_eq!(mine, ["platform@example.com"]);
    let (s, _) = env
        .get(&format!(
            "{GROUPS}?userKey={}&customer=my_customer",
            urlencode(&someone)
        ))
        .await;
    assert_eq!(s, 400);

    // Missing group scope.
    let users_only = token(&env.h, "admin@example.com", &[scopes::DIRECTORY_USER]);
    let (s, b) = env
        .get_as(&users_only, &format!("{GROUPS}?customer=my_customer"))
        .await;
    assert_eq!(s, 403);
    assert_eq!(error_reason(&b), "insufficientPermissions");
}

#[tokio::test]
async fn groups_and_members_insert_refuse_duplicates_and_cycles() {
    let env = env(5).await;
    let (s, a) = env
        .post(GROUPS, json!({"email": "a@example.com", "name": "A"}))
        .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["directMembersCount"], "0");
    let (s, _) = env.post(GROUPS, json!({"email": "A@example.com"})).await;
    assert_eq!(s, 409);
    let (s, _) = env.post(GROUPS, json!({"email": "b@example.com"})).await;
    assert_eq!(s, 200);
    let (s, m) = env
        .post(
            &format!("{GROUPS}/a%40example.com/members"),
            json!({"email": "b@example.com"}),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["type"], "GROUP");
    let (s, _) = env
        .post(
            &format!("{GROUPS}/b%40example.com/members"),
            json!({"email": "a@example.com"}),
        )
        .await;
    assert_eq!(s, 400, "cycles are rejected");
    env.post(USERS, new_user("m@example.com")).await;
    let (s, m) = env
        .post(
            &format!("{GROUPS}/b%40example.com/members"),
            json!({"email": "m@example.com", "role": "manager"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(m["role"], "MANAGER");
    assert_eq!(m["status"], "ACTIVE");
    let (s, _) = env
        .post(
            &format!("{GROUPS}/b%40example.com/members"),
            json!({"email": "M@example.com"}),
        )
        .await;
    assert_eq!(s, 409);
    let (_, b) = env
        .get(&format!(
            "{GROUPS}/a%40example.com/hasMember/m%40example.com"
        ))
        .await;
    assert_eq!(b["isMember"], true);
    let (_, b) = env
        .get(&format!(
            "{GROUPS}/a%40example.com/members?includeDerivedMembership=true"
        ))
        .await;
    assert_eq!(b["members"].as_array().unwrap().len(), 2);
    // A deleted user leaves the group's member list.
    env.send(
        reqwest::Method::DELETE,
        &format!("{USERS}/m%40example.com"),
        None,
    )
    .await;
    let (_, b) = env
        .get(&format!(
            "{GROUPS}/a%40example.com/members?includeDerivedMembership=true"
        ))
        .await;
    assert_eq!(b["members"].as_array().unwrap().len(), 1);
}

mod push {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::http::HeaderMap;
    use tokio::sync::mpsc;

    /// One request the receiver saw.
    #[derive(Debug)]
    pub struct Got {
        pub headers: HeaderMap,
        pub body: String,
    }

    /// A webhook receiver on 127.0.0.1:0 answering with scripted statuses (then 200).
    pub struct Receiver {
        pub url: String,
        pub rx: mpsc::UnboundedReceiver<Got>,
        pub script: Arc<Mutex<VecDeque<u16>>>,
    }

    impl Receiver {
        pub async fn start() -> Receiver {
            let (tx, rx) = mpsc::unbounded_channel();
            let script: Arc<Mutex<VecDeque<u16>>> = Arc::default();
            let s2 = script.clone();
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    let tx = tx.clone();
                    let script = s2.clone();
                    async move {
                        let _ = tx.send(Got { headers, body });
                        let code = script.lock().unwrap().pop_front().unwrap_or(200);
                        axum::http::StatusCode::from_u16(code).unwrap()
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            Receiver {
                url: format!("http://{addr}/hook"),
                rx,
                script,
            }
        }

        pub async fn next(&mut self) -> Got {
            tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
                .await
                .expect("a notification within 10 s")
                .expect("receiver open")
        }

        /// Asserts nothing arrives within `ms`.
        pub async fn quiet(&mut self, ms: u64) {
            if let Ok(Some(got)) =
                tokio::time::timeout(Duration::from_millis(ms), self.rx.recv()).await
            {
                panic!("unexpected notification: {got:?}");
            }
        }
    }

    pub fn h<'a>(got: &'a Got, name: &str) -> &'a str {
        got.headers
            .get(name)
            .unwrap_or_else(|| panic!("header {name} missing"))
            .to_str()
            .unwrap()
    }
}

use push::{Receiver, h};

async fn watch(
    env: &Env,
    event: &str,
    id: &str,
    address: &str,
    extra: Value,
) -> (StatusCode, Value) {
    let mut body = json!({"id": id, "type": "web_hook", "address": address});
    if let (Some(b), Some(x)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(x.clone());
    }
    env.post(
        &format!("{USERS}/watch?customer=my_customer&event={event}"),
        body,
    )
    .await
}

#[tokio::test]
async fn watch_sends_sync_then_add_with_googles_headers_and_body() {
    let env = env(5).await;
    let mut rx = Receiver::start().await;
    let (s, ch) = watch(
        &env,
        "add",
        "chan-add-1",
        &rx.url,
        json!({"token": "tenant=acme", "params": {"ttl": "3600"}}),
    )
    .await;
    assert_eq!(s, 200, "{ch}");
    assert_eq!(ch["kind"], "api#channel");
    assert_eq!(ch["id"], "chan-add-1");
    let resource_id = ch["resourceId"].as_str().unwrap().to_string();
    assert_eq!(
        ch["resourceUri"],
        "https://admin.googleapis.com/admin/directory/v1/users?customer=my_customer&event=add&alt=json"
    );
    let expiration: i64 = ch["expiration"]
        .as_str()
        .expect("int64 as string")
        .parse()
        .unwrap();
    let now = env.h.emulator.clock.now_ms();
    assert!(expiration > now + 3_500_000 && expiration <= now + 3_600_000);

    let sync = rx.next().await;
    assert_eq!(h(&sync, "x-goog-resource-state"), "sync");
    assert_eq!(h(&sync, "x-goog-message-number"), "1");
    assert_eq!(h(&sync, "x-goog-channel-id"), "chan-add-1");
    assert!(sync.body.is_empty());

    // An update is not an add: nothing for this channel.
    env.send(
        reqwest::Method::PUT,
        &format!("{USERS}/admin%40example.com"),
        Some(json!({"name": {"givenName": "Root"}})),
    )
    .await;
    let (_, created) = env.post(USERS, new_user("hooked@example.com")).await;
    let add = rx.next().await;
    assert_eq!(h(&add, "x-goog-resource-state"), "add");
    assert_eq!(h(&add, "x-goog-channel-id"), "chan-add-1");
    assert_eq!(h(&add, "x-goog-resource-id"), resource_id);
    assert_eq!(h(&add, "x-goog-channel-token"), "tenant=acme");
    assert_eq!(
        h(&add, "x-goog-resource-uri"),
        ch["resourceUri"].as_str().unwrap()
    );
    assert!(h(&add, "x-goog-channel-expiration").ends_with(" GMT"));
    chrono::DateTime::parse_from_rfc2822(h(&add, "x-goog-channel-expiration"))
        .expect("RFC 1123 date");
    assert_eq!(h(&add, "content-type"), "application/json; charset=UTF-8");
    let n1: u64 = h(&add, "x-goog-message-number").parse().unwrap();
    assert!(n1 > 1);
    let body: Value = serde_json::from_str(&add.body).unwrap();
    assert_eq!(body["kind"], "admin#directory#user");
    assert_eq!(body["id"], created["id"]);
    assert_eq!(body["primaryEmail"], "hooked@example.com");
    assert!(body["etag"].as_str().unwrap().starts_with('"'));
    let note: orgsync_wire::directory::UserNotification = serde_json::from_str(&add.body).unwrap();
    assert_eq!(note.id, created["id"].as_str().unwrap());

    env.post(USERS, new_user("hooked2@example.com")).await;
    let add2 = rx.next().await;
    let n2: u64 = h(&add2, "x-goog-message-number").parse().unwrap();
    assert!(n2 > n1, "message numbers increase");
    rx.quiet(300).await;

    // Other events each need their own channel.
    let mut rx2 = Receiver::start().await;
    for (event, id) in [
        ("update", "u"),
        ("delete", "d"),
        ("undelete", "ud"),
        ("makeAdmin", "m"),
    ] {
        let (s, _) = watch(&env, event, id, &rx2.url, json!({})).await;
        assert_eq!(s, 200);
        assert_eq!(h(&rx2.next().await, "x-goog-resource-state"), "sync");
    }
    let uid = created["id"].as_str().unwrap();
    env.send(
        reqwest::Method::PATCH,
        &format!("{USERS}/{uid}"),
        Some(json!({"suspended": true})),
    )
    .await;
    assert_eq!(h(&rx2.next().await, "x-goog-resource-state"), "update");
    env.post(&format!("{USERS}/{uid}/makeAdmin"), json!({"status": true}))
        .await;
    assert_eq!(h(&rx2.next().await, "x-goog-resource-state"), "makeAdmin");
    env.send(reqwest::Method::DELETE, &format!("{USERS}/{uid}"), None)
        .await;
    let del = rx2.next().await;
    assert_eq!(h(&del, "x-goog-resource-state"), "delete");
    assert_eq!(serde_json::from_str::<Value>(&del.body).unwrap()["id"], uid);
    env.post(&format!("{USERS}/{uid}/undelete"), json!({}))
        .await;
    assert_eq!(h(&rx2.next().await, "x-goog-resource-state"), "undelete");
    rx.quiet(200).await;
}

#[tokio::test]
async fn delivery_retries_5xx_and_gives_up_on_other_errors() {
    let env = env(3).await;
    let mut rx = Receiver::start().await;
    watch(&env, "add", "retry", &rx.url, json!({})).await;
    rx.next().await; // sync
    rx.script.lock().unwrap().extend([503, 500]);
    env.post(USERS, new_user("retry@example.com")).await;
    let first = rx.next().await;
    let second = rx.next().await;
    let third = rx.next().await;
    for got in [&second, &third] {
        assert_eq!(
            h(got, "x-goog-message-number"),
            h(&first, "x-goog-message-number"),
            "a retry is the same message"
        );
    }
    rx.quiet(300).await;
    let stats = orgsync_emulator::directory::push::push_stats(&env.h.emulator);
    let s = stats.iter().find(|s| s.id == "retry").unwrap();
    assert_eq!(
        (s.stats.attempts, s.stats.successes, s.stats.failures),
        (4, 2, 0)
    );

    rx.script.lock().unwrap().extend([404]);
    env.post(USERS, new_user("refused@example.com")).await;
    rx.next().await;
    rx.quiet(800).await;
    let stats = orgsync_emulator::directory::push::push_stats(&env.h.emulator);
    let s = stats.iter().find(|s| s.id == "retry").unwrap();
    assert_eq!(
        (s.stats.attempts, s.stats.failures, s.stats.last_status),
        (5, 1, Some(404)),
        "404 is not retried"
    );
}

#[tokio::test]
async fn channels_stop_and_expiry_end_delivery() {
    let env = env(3).await;
    let mut rx = Receiver::start().await;
    let (_, ch) = watch(&env, "add", "stop-me", &rx.url, json!({})).await;
    rx.next().await;
    let stop = json!({"id": "stop-me", "resourceId": ch["resourceId"]});
    let (s, _) = env
        .post(
            "/admin/directory_v1/channels/stop",
            json!({"id": "stop-me", "resourceId": "wrong"}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = env
        .post("/admin/directory_v1/channels/stop", stop.clone())
        .await;
    assert_eq!(s, 204);
    env.post(USERS, new_user("after-stop@example.com")).await;
    rx.quiet(400).await;
    let (s, _) = env.post("/admin/directory_v1/channels/stop", stop).await;
    assert_eq!(s, 404, "already stopped");
    let (s, _) = env
        .post(
            "/admin/directory/v1/channels/stop",
            json!({"id": "never", "resourceId": "x"}),
        )
        .await;
    assert_eq!(s, 404, "the directory/v1 spelling is served too");
    // A stopped id can be reused.
    let (s, _) = watch(&env, "add", "stop-me", &rx.url, json!({})).await;
    assert_eq!(s, 200);
    rx.next().await;

    // Expiry on the emulator clock.
    let mut rx2 = Receiver::start().await;
    let (_, ch) = watch(
        &env,
        "add",
        "short",
        &rx2.url,
        json!({"params": {"ttl": "60"}}),
    )
    .await;
    rx2.next().await;
    let exp: i64 = ch["expiration"].as_str().unwrap().parse().unwrap();
    assert!(exp <= env.h.emulator.clock.now_ms() + 60_000);
    env.h.emulator.clock.advance(chrono::Duration::seconds(120));
    env.post(USERS, new_user("after-expiry@example.com")).await;
    rx2.quiet(400).await;
    assert!(
        rx.next().await.body.contains("after-expiry"),
        "the live channel still delivers"
    );
    let stats = orgsync_emulator::directory::push::push_stats(&env.h.emulator);
    assert!(stats.iter().find(|s| s.id == "short").unwrap().expired);

    // TTL is capped by config (6 h by default) and by a requested expiration.
    let (_, ch) = watch(
        &env,
        "update",
        "long",
        &rx2.url,
        json!({"params": {"ttl": "999999"}}),
    )
    .await;
    let exp: i64 = ch["expiration"].as_str().unwrap().parse().unwrap();
    assert!(exp <= env.h.emulator.clock.now_ms() + 6 * 3_600_000);
    let want = env.h.emulator.clock.now_ms() + 600_000;
    let (_, ch) = watch(
        &env,
        "update",
        "explicit",
        &rx2.url,
        json!({"expiration": want.to_string()}),
    )
    .await;
    assert_eq!(ch["expiration"], want.to_string());
}

#[tokio::test]
async fn watch_validates_channels() {
    let env = env(3).await;
    let rx = Receiver::start().await;
    let (s, _) = watch(&env, "add", "dup", &rx.url, json!({})).await;
    assert_eq!(s, 200);
    let (s, b) = watch(&env, "add", "dup", &rx.url, json!({})).await;
    assert_eq!(s, 400);
    assert_eq!(b["error"]["message"], "Channel id not unique");
    let (s, _) = watch(&env, "add", &"x".repeat(65), &rx.url, json!({})).await;
    assert_eq!(s, 400);
    let (s, _) = watch(
        &env,
        "add",
        "plain-http",
        "http://example.org/hook",
        json!({}),
    )
    .await;
    assert_eq!(s, 400, "http only on loopback");
    let (s, _) = watch(&env, "add", "tls", "https://hooks.example.org/x", json!({})).await;
    assert_eq!(s, 200);
    let (s, _) = watch(
        &env,
        "add",
        "tok",
        &rx.url,
        json!({"token": "t".repeat(257)}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = watch(&env, "sometimes", "ev", &rx.url, json!({})).await;
    assert_eq!(s, 400);
    let (s, _) = env
        .post(
            &format!("{USERS}/watch?event=add"),
            json!({"id": "nocust", "type": "web_hook", "address": rx.url}),
        )
        .await;
    assert_eq!(s, 400, "customer or domain required");
    let (s, _) = env
        .post(
            &format!("{USERS}/watch?customer=my_customer"),
            json!({"id": "t", "type": "carrier_pigeon", "address": rx.url}),
        )
        .await;
    assert_eq!(s, 400);
}
