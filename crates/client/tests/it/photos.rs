//! Photo calls of orgsync-client over real HTTP against the in-process emulator:
//! Directory `users.photos.*` and People `updateContactPhoto`/`deleteContactPhoto`.

use orgsync_client::directory::decode_photo_data;
use orgsync_client::people::ConnectionsParams;
use orgsync_client::{ApiScopes, ErrorKind, GoogleClient};
use orgsync_emulator::directory::photos::identicon_png;
use orgsync_emulator::{EmulatorConfig, EmulatorHandle};
use orgsync_wire::people::{Name, Person};
use orgsync_wire::scopes;

struct Env {
    emu: EmulatorHandle,
    client: GoogleClient,
}

async fn env(users: usize) -> Env {
    let emu = orgsync_testkit::spawn(EmulatorConfig::for_tests(users)).await;
    emu.emulator
        .people
        .set_mutation_hold(std::time::Duration::ZERO);
    let client = orgsync_testkit::client_with(&emu, |c| {
        c.scopes = ApiScopes {
            directory: vec![scopes::DIRECTORY_USER.into()],
            people: vec![scopes::CONTACTS.into()],
            gmail: Vec::new(),
            calendar: Vec::new(),
        };
    });
    Env { client, emu }
}

impl Env {
    /// Two ordinary (non-admin, active) members' primary emails.
    async fn members(&self) -> (String, String) {
        let users = orgsync_testkit::emulator::directory_users(&self.client).await;
        let mut it = users
            .into_iter()
            .filter(|u| u.is_admin != Some(true) && !u.is_inactive())
            .filter_map(|u| u.primary_email);
        (
            it.next().expect("a member"),
            it.next().expect("two members"),
        )
    }

    async fn fetch(&self, url: &str) -> (u16, Vec<u8>) {
        let r = reqwest::get(url).await.expect("photo URL answers");
        (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
    }
}

fn contact(given: &str) -> Person {
    Person {
        names: vec![Name {
            given_name: Some(given.into()),
            family_name: Some("Photo".into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn directory_photo_get_update_delete_through_the_client() {
    let env = env(4).await;
    let dir = env.client.directory();
    let (email, _) = env.members().await;

    // No photo: None, not an error.
    assert!(dir.users_photos_get(&email).await.unwrap().is_none());
    assert!(
        dir.users_photos_get("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );

    let png = identicon_png(b"client");
    let put = dir
        .users_photos_update(&email, &png, Some("PNG"))
        .await
        .unwrap();
    assert_eq!(put.primary_email.as_deref(), Some(email.as_str()));
    let etag = put.etag.clone().expect("an etag");

    let got = dir
        .users_photos_get(&email)
        .await
        .unwrap()
        .expect("the photo just uploaded");
    assert_eq!(got.etag.as_deref(), Some(etag.as_str()));
    assert_eq!(got.mime_type.as_deref(), Some("image/png"));
    assert_eq!(
        decode_photo_data(got.photo_data.as_deref().unwrap()).unwrap(),
        png
    );
    // The user carries the photo's etag and a URL serving the bytes.
    let user = dir.users_get(&email, None, None).await.unwrap();
    assert_eq!(user.thumbnail_photo_etag.as_deref(), Some(etag.as_str()));
    let url = user.thumbnail_photo_url.clone().unwrap();
    assert_eq!(env.fetch(&url).await, (200, png.clone()));

    // A new upload: new etag on the photo and the user.
    let again = dir.users_photos_update(&email, &png, None).await.unwrap();
    assert_ne!(again.etag.as_deref(), Some(etag.as_str()));
    let user2 = dir.users_get(&email, None, None).await.unwrap();
    assert_eq!(user2.thumbnail_photo_etag, again.etag);
    assert_ne!(user2.etag, user.etag);

    // Errors: an unknown user is NotFound, bytes that are no image are Permanent (400),
    // empty bytes never leave the client.
    let e = dir
        .users_photos_update("nobody@example.com", &png, None)
        .await
        .unwrap_err();
    assert!(e.is(ErrorKind::NotFound), "{e}");
    let e = dir
        .users_photos_update(&email, b"not an image", None)
        .await
        .unwrap_err();
    assert!(e.is(ErrorKind::Permanent), "{e}");
    assert_eq!(e.api().and_then(|a| a.status), Some(400));
    assert!(matches!(
        dir.users_photos_update(&email, &[], None).await,
        Err(orgsync_client::Error::InvalidArgument(_))
    ));

    // Delete: true, then the photo is gone and a second delete reports false.
    assert!(dir.users_photos_delete(&email).await.unwrap());
    assert!(dir.users_photos_get(&email).await.unwrap().is_none());
    assert!(!dir.users_photos_delete(&email).await.unwrap());
    let user3 = dir.users_get(&email, None, None).await.unwrap();
    assert!(user3.thumbnail_photo_etag.is_none());
    assert_eq!(env.fetch(&url).await.0, 404);

    // The emulator classifies the calls under their discovery ids.
    let stats = env.emu.emulator.faults.stats();
    for m in [
        "directory.users.photos.get",
        "directory.users.photos.update",
        "directory.users.photos.delete",
    ] {
        assert!(
            stats.calls_by_method.get(m).copied().unwrap_or(0) >= 2,
            "{m}: {:?}",
            stats.calls_by_method
        );
    }
}

#[tokio::test]
async fn contact_photo_update_delete_and_sync_through_the_client() {
    let env = env(4).await;
    let (alice, bob) = env.members().await;
    let people = env.client.people(&alice);

    let created = people
        .create_contact(&contact("Ada"), "names,photos")
        .await
        .unwrap();
    let name = created.resource_name.clone().unwrap();
    assert_eq!(created.photos.len(), 1);
    assert_eq!(created.photos[0].default, Some(true));

    let full = people
        .connections_list_all(ConnectionsParams::full_sync("names,photos"))
        .await
        .unwrap();
    let token = full.next_sync_token.expect("a sync token");

    // Upload with a read-back: the person, a new etag, a photo serving the bytes.
    let png = identicon_png(b"contact-client");
    let person = people
        .update_contact_photo(&name, &png, Some("photos,metadata"))
        .await
        .unwrap()
        .expect("personFields asks for the person");
    assert_ne!(person.etag, created.etag);
    assert_eq!(person.photos.len(), 1);
    assert_eq!(person.photos[0].default, None);
    let url = person.photos[0].url.clone().unwrap();
    assert_eq!(env.fetch(&url).await, (200, png.clone()));

    // Listed with `photos`; reported by the incremental sync.
    let listed = people
        .connections_list_all(ConnectionsParams::new("photos"))
        .await
        .unwrap();
    let mine = listed
        .people
        .iter()
        .find(|p| p.resource_name.as_deref() == Some(name.as_str()))
        .unwrap();
    assert_eq!(mine.photos[0].url.as_deref(), Some(url.as_str()));
    let inc = people
        .connections_list_all(ConnectionsParams::incremental("names,photos", token))
        .await
        .unwrap();
    assert_eq!(inc.people.len(), 1);
    assert_eq!(inc.people[0].resource_name.as_deref(), Some(name.as_str()));
    assert_eq!(inc.people[0].photos[0].url.as_deref(), Some(url.as_str()));

    // Without personFields: Ok(None), the upload still happens.
    let png2 = identicon_png(b"contact-client-2");
    assert!(
        people
            .update_contact_photo(&name, &png2, None)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(env.fetch(&url).await.0, 404, "the old photo's URL is gone");

    // Errors: not an image → Permanent 400; another user's contact → NotFound.
    let e = people
        .update_contact_photo(&name, b"plain text", None)
        .await
        .unwrap_err();
    assert!(e.is(ErrorKind::Permanent), "{e}");
    assert_eq!(e.api().and_then(|a| a.status), Some(400));
    let e = env
        .client
        .people(&bob)
        .update_contact_photo(&name, &png, None)
        .await
        .unwrap_err();
    assert!(e.is(ErrorKind::NotFound), "{e}");
    let e = env
        .client
        .people(&bob)
        .delete_contact_photo(&name, None)
        .await
        .unwrap_err();
    assert!(e.is(ErrorKind::NotFound), "{e}");

    // Delete: back to the default photo, with a new etag.
    let before = people
        .get_batch_get(std::slice::from_ref(&name), "photos")
        .await
        .unwrap()[0]
        .person
        .clone()
        .unwrap();
    let after = people
        .delete_contact_photo(&name, Some("photos"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.photos[0].default, Some(true));
    assert_ne!(after.etag, before.etag);
}
