//! Photos over real loopback HTTP: Directory `users.photos.*` (get/update/patch/delete,
//! etags, the user's thumbnail fields, the serving URL, the generator's share) and People
//! `updateContactPhoto`/`deleteContactPhoto` (validation, `photos` in reads, sync tokens,
//! per-user isolation).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use orgsync_emulator::EmulatorConfig;
use orgsync_emulator::directory::photos::identicon_png;
use orgsync_testkit::Emu;
use orgsync_wire::scopes;
use serde_json::{Value, json};

orgsync_testkit::harness!(
    /// An emulator with no People mutation hold (the tests upload one photo after another).
    Env
);

async fn env(config: EmulatorConfig) -> Env {
    Env(Emu::start(config).await.without_mutation_hold())
}

impl Env {
    fn admin(&self) -> String {
        self.token("admin@example.com", &[scopes::DIRECTORY_USER])
    }

    /// GET a photo URL without credentials: (status, content type, bytes).
    async fn fetch(&self, url: &str) -> (u16, String, Vec<u8>) {
        let resp = self.http.get(url).send().await.expect("fetch");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (status, ct, resp.bytes().await.unwrap().to_vec())
    }

    /// Some live, ordinary user's (id, primary email).
    async fn member(&self) -> (String, String) {
        let (s, v) = self
            .call(
                &self.admin(),
                "GET",
                "/admin/directory/v1/users?customer=my_customer&maxResults=500",
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let u = v["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["isAdmin"] != true)
            .expect("a non-admin user");
        (
            u["id"].as_str().unwrap().to_string(),
            u["primaryEmail"].as_str().unwrap().to_string(),
        )
    }
}

/// Every user, in email order.
async fn list(e: &Env) -> Vec<Value> {
    let (s, v) = e
        .call(
            &e.admin(),
            "GET",
            "/admin/directory/v1/users?customer=my_customer&maxResults=500",
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["users"].as_array().unwrap().clone()
}

fn photo_path(key: &str) -> String {
    format!("/admin/directory/v1/users/{key}/photos/thumbnail")
}

fn web_safe(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

/// Google's lenient reading of `photoData`: web-safe, `*`/`.`/`=` padding.
fn decode(data: &str) -> Vec<u8> {
    let t = data
        .trim_end_matches(['=', '*', '.'])
        .replace('-', "+")
        .replace('_', "/");
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(t)
        .expect("photoData is base64")
}

/// A JPEG as far as magic bytes and the frame header go (64x48).
fn tiny_jpeg(tag: u8) -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    j.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0");
    j.push(tag);
    j.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x30, 0x00, 0x40, 0x03]);
    j.extend_from_slice(&[1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xFF, 0xD9]);
    j
}

fn reason(v: &Value) -> &str {
    v["error"]["errors"][0]["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn directory_photo_round_trip_with_etags_urls_and_user_fields() {
    let env = env(EmulatorConfig::for_tests(6)).await;
    let admin = env.admin();
    let (id, email) = env.member().await;

    // No photo yet: 404, and the user has no thumbnail fields.
    let (s, v) = env.call(&admin, "GET", &photo_path(&email), None).await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(reason(&v), "notFound");
    let (_, before) = env
        .call(
            &admin,
            "GET",
            &format!("/admin/directory/v1/users/{id}"),
            None,
        )
        .await;
    assert!(before.get("thumbnailPhotoEtag").is_none(), "{before}");

    // PUT a PNG as web-safe base64 with Directory's `*` padding.
    let png = identicon_png(b"round-trip");
    let data = web_safe(&png).replace('=', "*");
    let (s, put) = env
        .call(
            &admin,
            "PUT",
            &photo_path(&email),
            Some(json!({"photoData": data, "mimeType": "PNG"})),
        )
        .await;
    assert_eq!(s, 200, "{put}");
    assert_eq!(put["kind"], "admin#directory#user#photo");
    assert_eq!(put["id"], id.as_str());
    assert_eq!(put["primaryEmail"], email.as_str());
    assert_eq!(put["mimeType"], "image/png");
    assert_eq!(
        (put["width"].as_i64(), put["height"].as_i64()),
        (Some(16), Some(16))
    );
    assert_eq!(decode(put["photoData"].as_str().unwrap()), png);
    let etag1 = put["etag"].as_str().unwrap().to_string();

    // The same photo by id, email; the user records it and changes its etag.
    for key in [id.as_str(), email.as_str()] {
        let (s, got) = env.call(&admin, "GET", &photo_path(key), None).await;
        assert_eq!(s, 200, "{got}");
        assert_eq!(got["etag"], etag1.as_str());
        assert_eq!(decode(got["photoData"].as_str().unwrap()), png);
    }
    let (_, user) = env
        .call(
            &admin,
            "GET",
            &format!("/admin/directory/v1/users/{id}"),
            None,
        )
        .await;
    assert_eq!(user["thumbnailPhotoEtag"], etag1.as_str());
    assert_ne!(
        user["etag"], before["etag"],
        "a photo update is a user change"
    );
    let url1 = user["thumbnailPhotoUrl"].as_str().unwrap().to_string();
    assert!(url1.starts_with(&env.h.base_url), "{url1}");
    let (s, ct, body) = env.fetch(&url1).await;
    assert_eq!((s, ct.as_str()), (200, "image/png"));
    assert_eq!(body, png);

    // Updating again (same bytes) is still a new photo: new etag, old URL gone.
    let (s, put2) = env
        .call(
            &admin,
            "PUT",
            &photo_path(&id),
            Some(json!({"photoData": web_safe(&png)})),
        )
        .await;
    assert_eq!(s, 200, "{put2}");
    let etag2 = put2["etag"].as_str().unwrap().to_string();
    assert_ne!(etag2, etag1);
    assert_eq!(env.fetch(&url1).await.0, 404);

    // PATCH without photoData changes nothing; with it, replaces the photo.
    let (s, same) = env
        .call(&admin, "PATCH", &photo_path(&email), Some(json!({})))
        .await;
    assert_eq!(s, 200, "{same}");
    assert_eq!(same["etag"], etag2.as_str());
    let jpeg = tiny_jpeg(1);
    let (s, patched) = env
        .call(
            &admin,
            "PATCH",
            &photo_path(&email),
            Some(json!({"photoData": STANDARD.encode(&jpeg)})),
        )
        .await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["mimeType"], "image/jpeg");
    assert_eq!(
        (patched["width"].as_i64(), patched["height"].as_i64()),
        (Some(64), Some(48))
    );
    assert_ne!(patched["etag"], etag2.as_str());
    let (_, user) = env
        .call(
            &admin,
            "GET",
            &format!("/admin/directory/v1/users/{id}"),
            None,
        )
        .await;
    assert_eq!(user["thumbnailPhotoEtag"], patched["etag"]);
    let url3 = user["thumbnailPhotoUrl"].as_str().unwrap().to_string();
    assert_eq!(env.fetch(&url3).await.2, jpeg);
    let etag_with_photo = user["etag"].clone();

    // DELETE: 204, then 404s; the user's fields are cleared and its etag changes.
    let (s, _) = env.call(&admin, "DELETE", &photo_path(&email), None).await;
    assert_eq!(s, 204);
    let (s, _) = env.call(&admin, "GET", &photo_path(&email), None).await;
    assert_eq!(s, 404);
    let (s, _) = env.call(&admin, "DELETE", &photo_path(&email), None).await;
    assert_eq!(s, 404);
    let (s, _) = env
        .call(&admin, "PATCH", &photo_path(&email), Some(json!({})))
        .await;
    assert_eq!(s, 404, "nothing to patch");
    let (_, user) = env
        .call(
            &admin,
            "GET",
            &format!("/admin/directory/v1/users/{id}"),
            None,
        )
        .await;
    assert!(user.get("thumbnailPhotoEtag").is_none(), "{user}");
    assert!(user.get("thumbnailPhotoUrl").is_none(), "{user}");
    assert_ne!(user["etag"], etag_with_photo);
    assert_eq!(env.fetch(&url3).await.0, 404);
}

#[tokio::test]
async fn directory_photo_errors_scopes_and_aliases() {
    let env = env(EmulatorConfig::for_tests(6)).await;
    let admin = env.admin();
    let (id, email) = env.member().await;
    let png = identicon_png(b"errors");

    // Unknown users: 404 on every method.
    let nobody = photo_path("nobody@example.com");
    for (m, body) in [
        ("GET", None),
        ("PUT", Some(json!({"photoData": web_safe(&png)}))),
        ("PATCH", Some(json!({"photoData": web_safe(&png)}))),
        ("DELETE", None),
    ] {
        let (s, v) = env.call(&admin, m, &nobody, body).await;
        assert_eq!(s, 404, "{m}: {v}");
    }

    // Bad bodies: 400.
    for body in [
        json!({}),
        json!({"photoData": ""}),
        json!({"photoData": "%%% not base64 %%%"}),
        json!({"photoData": web_safe(b"plain text, not an image")}),
        json!({"photoData": 42}),
    ] {
        let (s, v) = env
            .call(&admin, "PUT", &photo_path(&email), Some(body.clone()))
            .await;
        assert_eq!(s, 400, "{body}: {v}");
    }
    let (s, _) = env.call(&admin, "GET", &photo_path(&email), None).await;
    assert_eq!(s, 404, "a rejected upload stores nothing");

    // A non-admin subject is forbidden; a read-only scope reads but cannot write.
    let member_tok = env.token(&email, &[scopes::DIRECTORY_USER]);
    let (s, v) = env
        .call(&member_tok, "GET", &photo_path(&email), None)
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = env
        .call(
            &member_tok,
            "PUT",
            &photo_path(&email),
            Some(json!({"photoData": web_safe(&png)})),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, _) = env
        .call(
            &admin,
            "PUT",
            &photo_path(&id),
            Some(json!({"photoData": web_safe(&png)})),
        )
        .await;
    assert_eq!(s, 200);
    let readonly = env.token("admin@example.com", &[scopes::DIRECTORY_USER_READONLY]);
    let (s, _) = env.call(&readonly, "GET", &photo_path(&email), None).await;
    assert_eq!(s, 200);
    let (s, v) = env
        .call(&readonly, "DELETE", &photo_path(&email), None)
        .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(reason(&v), "insufficientPermissions");

    // After a rename the old address is an alias and still reaches the photo.
    let new_email = format!("renamed.{email}");
    let (s, v) = env
        .call(
            &admin,
            "PATCH",
            &format!("/admin/directory/v1/users/{id}"),
            Some(json!({"primaryEmail": new_email})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["thumbnailPhotoEtag"].as_str().is_some(),
        "kept over a user update: {v}"
    );
    let (s, got) = env.call(&admin, "GET", &photo_path(&email), None).await;
    assert_eq!(s, 200, "alias: {got}");
    assert_eq!(got["primaryEmail"], new_email.as_str());
    assert_eq!(decode(got["photoData"].as_str().unwrap()), png);
}

#[tokio::test]
async fn generator_gives_a_configurable_share_of_users_photos_and_changes_nothing_else() {
    let plain = env(EmulatorConfig::for_tests(60)).await;
    let photo = env(EmulatorConfig {
        photo_share: 0.5,
        ..EmulatorConfig::for_tests(60)
    })
    .await;
    let a = list(&plain).await;
    let b = list(&photo).await;
    assert_eq!(a.len(), 61);
    assert!(a.iter().all(|u| u.get("thumbnailPhotoEtag").is_none()));
    // Same users, same etags: photos are part of the generated org, not changes to it.
    // (Creation times follow each emulator's clock.)
    let strip = |u: &Value| {
        let mut u = u.clone();
        let o = u.as_object_mut().unwrap();
        o.remove("thumbnailPhotoEtag");
        o.remove("thumbnailPhotoUrl");
        o.remove("creationTime");
        u
    };
    assert!(a.iter().zip(&b).all(|(x, y)| x["etag"] == y["etag"]));
    assert_eq!(
        a.iter().map(strip).collect::<Vec<_>>(),
        b.iter().map(strip).collect::<Vec<_>>()
    );
    let with: Vec<&Value> = b
        .iter()
        .filter(|u| u.get("thumbnailPhotoEtag").is_some())
        .collect();
    assert!((15..=45).contains(&with.len()), "{} of 61", with.len());
    let admin = photo.admin();
    let mut seen = std::collections::HashSet::new();
    for u in &with {
        let (s, p) = photo
            .call(&admin, "GET", &photo_path(u["id"].as_str().unwrap()), None)
            .await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(p["etag"], u["thumbnailPhotoEtag"]);
        let bytes = decode(p["photoData"].as_str().unwrap());
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(bytes.len() < 600, "{}", bytes.len());
        assert!(seen.insert(bytes.clone()), "photos differ per user");
        let (s, ct, served) = photo.fetch(u["thumbnailPhotoUrl"].as_str().unwrap()).await;
        assert_eq!((s, ct.as_str()), (200, "image/png"));
        assert_eq!(served, bytes);
    }
    // Deterministic: the same seed picks the same users and draws the same photos.
    let again = env(EmulatorConfig {
        photo_share: 0.5,
        ..EmulatorConfig::for_tests(60)
    })
    .await;
    let c = list(&again).await;
    let etags = |v: &[Value]| {
        v.iter()
            .map(|u| u["thumbnailPhotoEtag"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(etags(&b), etags(&c));
}

// ---------------------------------------------------------------- People

const FIELDS: &str = "names,photos,metadata";

async fn create(env: &Env, tok: &str, given: &str) -> Value {
    let (s, v) = env
        .call(
            tok,
            "POST",
            &format!("/v1/people:createContact?personFields={FIELDS}"),
            Some(json!({"names": [{"givenName": given, "familyName": "Photo"}]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn upload(env: &Env, tok: &str, name: &str, body: Value) -> (u16, Value) {
    env.call(
        tok,
        "PATCH",
        &format!("/v1/{name}:updateContactPhoto"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn contact_photo_upload_read_sync_and_delete() {
    let env = env(EmulatorConfig::for_tests(0)).await;
    let tok = env.token("alice@example.com", &[scopes::CONTACTS]);
    let created = create(&env, &tok, "Ada").await;
    let name = created["resourceName"].as_str().unwrap().to_string();

    // Before any upload: one default photo, served by the emulator.
    let photos = created["photos"].as_array().unwrap();
    assert_eq!(photos.len(), 1, "{created}");
    assert_eq!(photos[0]["default"], true);
    assert_eq!(photos[0]["metadata"]["primary"], true);
    assert_eq!(photos[0]["metadata"]["source"]["type"], "CONTACT");
    let (s, ct, _) = env.fetch(photos[0]["url"].as_str().unwrap()).await;
    assert_eq!((s, ct.as_str()), (200, "image/png"));

    // A full sync, for the incremental check below.
    let (s, full) = env
        .call(
            &tok,
            "GET",
            "/v1/people/me/connections?personFields=names,photos&requestSyncToken=true",
            None,
        )
        .await;
    assert_eq!(s, 200, "{full}");
    let sync = full["nextSyncToken"].as_str().unwrap().to_string();

    // Upload (standard base64) without personFields: `{}` and no read-back.
    let jpeg = tiny_jpeg(7);
    let (s, v) = upload(
        &env,
        &tok,
        &name,
        json!({"photoBytes": STANDARD.encode(&jpeg)}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({}));

    // With personFields: the person, a new etag, a non-default photo serving the bytes.
    let png = identicon_png(b"contact");
    let (s, v) = upload(
        &env,
        &tok,
        &name,
        json!({"photoBytes": STANDARD.encode(&png), "personFields": FIELDS}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let person = &v["person"];
    assert_eq!(person["resourceName"], name.as_str());
    assert_ne!(person["etag"], created["etag"]);
    assert_eq!(person["names"][0]["givenName"], "Ada");
    let photo = &person["photos"][0];
    assert!(photo.get("default").is_none(), "{photo}");
    assert_eq!(photo["metadata"]["source"]["type"], "CONTACT");
    let url = photo["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&env.h.base_url), "{url}");
    let (s, ct, body) = env.fetch(&url).await;
    assert_eq!((s, ct.as_str()), (200, "image/png"));
    assert_eq!(body, png);
    assert_eq!(
        env.fetch(&format!("{url}?sz=50")).await.2,
        png,
        "size hints are ignored"
    );
    let etag_with_photo = person["etag"].clone();

    // Visible in connections.list, get and batchGet with `photos` in the mask...
    let (_, list) = env
        .call(
            &tok,
            "GET",
            "/v1/people/me/connections?personFields=photos",
            None,
        )
        .await;
    let listed = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["resourceName"] == name.as_str())
        .unwrap();
    assert_eq!(listed["photos"][0]["url"], url.as_str());
    let (_, got) = env
        .call(
            &tok,
            "GET",
            &format!("/v1/{name}?personFields=photos"),
            None,
        )
        .await;
    assert_eq!(got["photos"][0]["url"], url.as_str());
    let (_, batch) = env
        .call(
            &tok,
            "GET",
            &format!("/v1/people:batchGet?resourceNames={name}&personFields=photos"),
            None,
        )
        .await;
    assert_eq!(
        batch["responses"][0]["person"]["photos"][0]["url"],
        url.as_str()
    );
    // ...and absent without it.
    let (_, names_only) = env
        .call(&tok, "GET", &format!("/v1/{name}?personFields=names"), None)
        .await;
    assert!(names_only.get("photos").is_none(), "{names_only}");

    // The incremental sync reports the contact as changed.
    let (s, inc) = env
        .call(
            &tok,
            "GET",
            &format!(
                "/v1/people/me/connections?personFields=names,photos&requestSyncToken=true&syncToken={sync}"
            ),
            None,
        )
        .await;
    assert_eq!(s, 200, "{inc}");
    let changed: Vec<&Value> = inc["connections"].as_array().unwrap().iter().collect();
    assert_eq!(changed.len(), 1, "{inc}");
    assert_eq!(changed[0]["resourceName"], name.as_str());
    assert_eq!(changed[0]["photos"][0]["url"], url.as_str());
    let sync2 = inc["nextSyncToken"].as_str().unwrap().to_string();

    // Delete: back to the default photo, a new etag, the old URL gone, reported by sync.
    let (s, v) = env
        .call(
            &tok,
            "DELETE",
            &format!("/v1/{name}:deleteContactPhoto?personFields=photos"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["person"]["photos"][0]["default"], true);
    assert_ne!(v["person"]["etag"], etag_with_photo);
    assert_eq!(env.fetch(&url).await.0, 404);
    let (_, inc2) = env
        .call(
            &tok,
            "GET",
            &format!(
                "/v1/people/me/connections?personFields=names,photos&requestSyncToken=true&syncToken={sync2}"
            ),
            None,
        )
        .await;
    assert_eq!(
        inc2["connections"].as_array().map(Vec::len),
        Some(1),
        "{inc2}"
    );
    // Deleting again is a no-op success; without personFields the answer is `{}`.
    let etag_now = v["person"]["etag"].clone();
    let (s, v) = env
        .call(
            &tok,
            "DELETE",
            &format!("/v1/{name}:deleteContactPhoto"),
            None,
        )
        .await;
    assert_eq!((s, &v), (200, &json!({})));
    let (_, got) = env
        .call(
            &tok,
            "GET",
            &format!("/v1/{name}?personFields=photos"),
            None,
        )
        .await;
    assert_eq!(got["etag"], etag_now, "nothing to delete, nothing changed");
}

#[tokio::test]
async fn contact_photo_validation_isolation_and_scopes() {
    let env = env(EmulatorConfig::for_tests(0)).await;
    let alice = env.token("alice@example.com", &[scopes::CONTACTS]);
    let bob = env.token("bob@example.com", &[scopes::CONTACTS]);
    let created = create(&env, &alice, "Grace").await;
    let name = created["resourceName"].as_str().unwrap().to_string();
    let png = STANDARD.encode(identicon_png(b"v"));

    // Bad photo bytes: 400 INVALID_ARGUMENT, nothing stored, etag unchanged.
    for body in [
        json!({}),
        json!({"photoBytes": ""}),
        json!({"photoBytes": "!!not base64!!"}),
        json!({"photoBytes": STANDARD.encode(b"just some text")}),
        json!({"photoBytes": STANDARD.encode(b"BM")}),
        json!({"photoBytes": png, "bogus": 1}),
        json!({"photoBytes": png, "personFields": "nope"}),
        json!({"photoBytes": png, "sources": ["READ_SOURCE_TYPE_NOPE"]}),
    ] {
        let (s, v) = upload(&env, &alice, &name, body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{body}: {v}");
    }
    let (_, got) = env
        .call(
            &alice,
            "GET",
            &format!("/v1/{name}?personFields=photos"),
            None,
        )
        .await;
    assert_eq!(got["etag"], created["etag"]);
    assert_eq!(got["photos"][0]["default"], true);

    // Another user's contact, an unknown contact: 404 (and for delete too).
    for (tok, target) in [(&bob, name.clone()), (&alice, "people/c1".to_string())] {
        let (s, v) = upload(&env, tok, &target, json!({"photoBytes": png})).await;
        assert_eq!(s, 404, "{target}: {v}");
        assert_eq!(v["error"]["status"], "NOT_FOUND");
        let (s, _) = env
            .call(
                tok,
                "DELETE",
                &format!("/v1/{target}:deleteContactPhoto"),
                None,
            )
            .await;
        assert_eq!(s, 404, "{target}");
    }
    // Not a contact resource name: 400.
    let (s, _) = upload(&env, &alice, "people/me", json!({"photoBytes": png})).await;
    assert_eq!(s, 400);

    // Read-only scope: 403 for both.
    let ro = env.token("alice@example.com", &[scopes::CONTACTS_READONLY]);
    let (s, v) = upload(&env, &ro, &name, json!({"photoBytes": png})).await;
    assert_eq!(s, 403, "{v}");
    let (s, _) = env
        .call(
            &ro,
            "DELETE",
            &format!("/v1/{name}:deleteContactPhoto"),
            None,
        )
        .await;
    assert_eq!(s, 403);

    // Web-safe base64 and GIFs are accepted; the photo survives a contact update.
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let (s, v) = upload(
        &env,
        &alice,
        &name,
        json!({"photoBytes": URL_SAFE.encode(gif), "personFields": "photos"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let url = v["person"]["photos"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, upd) = env
        .call(
            &alice,
            "PATCH",
            &format!("/v1/{name}:updateContact?updatePersonFields=names&personFields=photos"),
            Some(json!({"etag": v["person"]["etag"], "names": [{"givenName": "Grace2"}]})),
        )
        .await;
    assert_eq!(s, 200, "{upd}");
    assert_eq!(upd["photos"][0]["url"], url.as_str());
    let (s, ct, body) = env.fetch(&url).await;
    assert_eq!((s, ct.as_str()), (200, "image/gif"));
    assert_eq!(body, gif);
}
