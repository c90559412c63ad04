//! Directory typed calls and paging against the emulator.

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use orgsync_client::ErrorKind;
use orgsync_client::directory::UsersListParams;
use orgsync_client::paging::count;
use orgsync_wire::directory::{User, UserName};

use super::common::{admin, env};

#[tokio::test]
async fn users_crud_round_trip() {
    let env = env(3).await;
    let dir = env.client.directory();
    let new = User {
        primary_email: Some("new.person@example.com".into()),
        name: Some(UserName {
            given_name: Some("New".into()),
            family_name: Some("Person".into()),
            ..Default::default()
        }),
        password: Some("correct horse battery".into()),
        ..Default::default()
    };
    let created = dir.users_insert(&new).await.unwrap();
    let id = created.id.clone().expect("an id");
    // userKey with '@' travels percent-encoded and still resolves.
    let got = dir
        .users_get("new.person@example.com", Some("full"), None)
        .await
        .unwrap();
    assert_eq!(got.id.as_deref(), Some(id.as_str()));

    let mut changed = got.clone();
    changed.name.as_mut().unwrap().family_name = Some("Renamed".into());
    changed.password = None;
    let updated = dir.users_update(&id, &changed).await.unwrap();
    assert_eq!(
        updated.name.unwrap().family_name.as_deref(),
        Some("Renamed")
    );

    dir.users_make_admin(&id, true).await.unwrap();
    assert_eq!(
        dir.users_get(&id, None, None).await.unwrap().is_admin,
        Some(true)
    );
    dir.users_make_admin(&id, false).await.unwrap();

    dir.users_delete(&id).await.unwrap();
    let err = dir.users_get(&id, None, None).await.unwrap_err();
    assert!(err.is(ErrorKind::NotFound), "{err}");
    let deleted: Vec<User> = dir
        .users_list(UsersListParams {
            show_deleted: true,
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert!(
        deleted.iter().any(|u| u.id.as_deref() == Some(id.as_str())),
        "showDeleted lists it"
    );

    dir.users_undelete(&id, Some("/")).await.unwrap();
    assert!(dir.users_get(&id, None, None).await.is_ok());

    // A second insert of the same email is a conflict, surfaced as such.
    let dup = dir.users_insert(&new).await.unwrap_err();
    assert!(dup.is(ErrorKind::Conflict), "{dup}");

    let snap = env.client.stats().snapshot();
    for m in [
        "directory.users.insert",
        "directory.users.get",
        "directory.users.update",
        "directory.users.delete",
        "directory.users.undelete",
        "directory.users.makeAdmin",
        "directory.users.list",
    ] {
        assert!(snap.calls(m) >= 1, "{m} counted: {snap:?}");
    }
}

#[tokio::test]
async fn users_list_passes_query_and_order() {
    let env = env(40).await;
    let dir = env.client.directory();
    let ordered: Vec<String> = dir
        .users_list(UsersListParams {
            order_by: Some("email".into()),
            max_results: Some(7),
            ..Default::default()
        })
        .map_ok(|u| u.primary_email.unwrap_or_default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ordered.len(), 41);
    let mut sorted = ordered.clone();
    sorted.sort_by_key(|e| e.to_ascii_lowercase());
    assert_eq!(ordered, sorted);
    assert_eq!(
        env.client.stats().snapshot().calls("directory.users.list"),
        6,
        "ceil(41/7) pages"
    );

    let admins: Vec<User> = dir
        .users_list(UsersListParams {
            query: Some("isAdmin=true".into()),
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert!(
        admins
            .iter()
            .any(|u| u.primary_email.as_deref() == Some(admin().as_str()))
    );
    assert!(admins.iter().all(|u| u.is_admin == Some(true)));
}

#[tokio::test]
async fn paging_streams_100k_users() {
    let t0 = Instant::now();
    let env = env(100_000).await;
    let boot = t0.elapsed();
    let t1 = Instant::now();
    let pages = env
        .client
        .directory()
        .users_pages(UsersListParams::default());
    let mut seen = 0usize;
    let mut pages_n = 0usize;
    let mut last_email = String::new();
    let mut pages = std::pin::pin!(pages);
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        pages_n += 1;
        assert!(page.users.len() <= 500);
        seen += page.users.len();
        if let Some(u) = page.users.last() {
            last_email = u.primary_email.clone().unwrap_or_default();
        }
    }
    let listing = t1.elapsed();
    eprintln!(
        "100k users: boot {boot:?}, listing {listing:?} in {pages_n} pages (last {last_email})"
    );
    assert_eq!(seen, 100_001);
    assert_eq!(pages_n, 201, "500 per page");
    assert_eq!(
        env.client.stats().snapshot().calls("directory.users.list"),
        201
    );
    // The item stream does the same without collecting.
    let n = count(
        env.client
            .directory()
            .users_list(UsersListParams::default()),
    )
    .await
    .unwrap();
    assert_eq!(n, 100_001);
}

/// The directory's pages are fetched one ahead (the next travels while this one is
/// decoded). A caller that stops after the first page must have cost at most that one
/// request more, and dropping the stream must stop the chain there.
#[tokio::test]
async fn a_listing_abandoned_after_one_page_reads_at_most_one_page_ahead() {
    let env = env(100).await;
    // Boxed, so that `drop` below drops the stream itself (and its request in flight).
    let mut pages = Box::pin(env.client.directory().users_pages(UsersListParams {
        max_results: Some(10),
        ..Default::default()
    }));
    let first = pages.next().await.unwrap().unwrap();
    assert_eq!(first.users.len(), 10);
    drop(pages);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let calls = env.client.stats().snapshot().calls("directory.users.list");
    assert!(
        (1..=2).contains(&calls),
        "{calls} users.list calls for one page read"
    );
    // Read to the end, the lookahead costs nothing extra: 101 users, 11 pages.
    let before = env.client.stats().snapshot().calls("directory.users.list");
    let all: Vec<User> = env
        .client
        .directory()
        .users_list(UsersListParams {
            max_results: Some(10),
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 101);
    let ids: std::collections::HashSet<_> = all.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids.len(), 101, "no page twice, none skipped");
    assert_eq!(
        env.client.stats().snapshot().calls("directory.users.list") - before,
        11
    );
}
