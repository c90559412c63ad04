//! The one test story every backend must pass (enable the `conformance` feature).
//!
//! Backends generate one `#[tokio::test]` per case with [`conformance_tests!`](crate::conformance_tests),
//! handing it an `async fn() -> Option<Fixture>` that opens a fresh, isolated store (or
//! returns `None`, after saying why on stderr, when the database is unavailable and
//! skipping is allowed). Each case runs in its own task; the fixture's teardown runs even
//! when the case panics.
//!
//! All cases drive time through explicit `now` arguments starting at [`t0`], so expiry,
//! backoff and leases are tested without sleeping.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::time::from_ms;
use crate::*;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A fresh store for one test, plus how to clean it up.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    teardown: Option<BoxFuture<()>>,
}

impl Fixture {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Fixture {
            store,
            teardown: None,
        }
    }

    /// Run `teardown` after the case (e.g. drop a PostgreSQL schema).
    pub fn with_teardown(mut self, teardown: impl Future<Output = ()> + Send + 'static) -> Self {
        self.teardown = Some(Box::pin(teardown));
        self
    }
}

/// Run one case against a fixture, tear down, then propagate the case's panic (if any).
pub async fn run_case(fixture: Fixture, case: fn(Arc<dyn Store>) -> BoxFuture<()>) {
    let store = fixture.store.clone();
    let result = tokio::spawn(case(store)).await;
    fixture.store.close().await;
    if let Some(teardown) = fixture.teardown {
        teardown.await;
    }
    if let Err(err) = result {
        match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(err) => panic!("conformance case did not finish: {err}"),
        }
    }
}

/// Generates one `#[tokio::test]` per conformance case. The argument is the path of an
/// `async fn() -> Option<Fixture>`. The calling crate needs `tokio` (with `macros`).
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!(@cases $fixture;
            schema_is_migrated_and_ping_works,
            upsert_creates_updates_and_skips_unchanged,
            profile_round_trips_every_field,
            email_lookup_ignores_case,
            deactivate_keeps_row_and_writes_outbox,
            delete_removes_row_and_outbox_keeps_last_state,
            stale_observation_does_not_undo_newer_change,
            apply_user_changes_reports_in_order,
            apply_user_changes_is_all_or_nothing,
            list_users_pages_by_id_and_filters_active,
            outbox_claim_lease_deliver_and_backoff,
            outbox_delivers_each_user_in_order,
            sync_state_and_contacts_state_round_trip,
            sync_states_are_updated_as_one_batch,
            channels_persist_expire_and_redact_token,
            notifications_are_recorded_once,
            jobs_enqueue_claim_complete,
            failed_job_is_retried_later_and_never_dropped,
            expired_job_lease_is_reclaimed,
            pending_jobs_with_same_dedupe_key_coalesce,
            released_and_extended_jobs_keep_their_place,
            concurrent_claimers_never_share_a_job,
            lease_is_exclusive_until_expiry,
        );
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                if let Some(fixture) = $fixture().await {
                    $crate::conformance::run_case(fixture, |store| {
                        Box::pin($crate::conformance::$case(store))
                    })
                    .await;
                }
            }
        )*
    };
}

// ---- helpers ------------------------------------------------------------------------------

/// The suite's epoch (a fixed instant, whole milliseconds).
pub fn t0() -> DateTime<Utc> {
    from_ms(1_760_000_000_000)
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

fn profile(id: &str, email: &str) -> UserProfile {
    let mut p = UserProfile::new(id, email);
    p.given_name = "Ada".into();
    p.family_name = "Lovelace".into();
    p.display_name = "Ada Lovelace".into();
    p.org_unit_path = "/Engineering".into();
    p.department = Some("R&D".into());
    p.title = Some("Engineer".into());
    p.phones = vec![Phone {
        value: "+44 20 7946 0000".into(),
        kind: "work".into(),
    }];
    p.directory_etag = Some(format!("\"etag-{id}-1\""));
    p
}

async fn upsert(store: &dyn Store, p: &UserProfile, at: DateTime<Utc>) -> ChangeOutcome {
    store.upsert_user(p, at, at).await.expect("upsert_user")
}

async fn outbox(store: &dyn Store) -> Vec<OutboxEntry> {
    store.list_outbox(0, 1000).await.expect("list_outbox")
}

fn channel(id: &str, event: &str, expiration: DateTime<Utc>) -> Channel {
    Channel {
        id: id.into(),
        resource_id: format!("res-{id}"),
        resource_uri: Some("https://admin.googleapis.com/admin/directory/v1/users?event=x".into()),
        event: event.into(),
        token: ChannelToken::new(format!("s3cret-token-{id}")),
        address: "https://hooks.example.com/google".into(),
        expiration,
        created_at: t0(),
        stopped_at: None,
        replaced_by: None,
    }
}

fn user_job(user: &str, at: DateTime<Utc>) -> NewJob {
    NewJob {
        kind: "user.refresh".into(),
        directory_user_id: Some(user.into()),
        user_email: Some(format!("{user}@example.com")),
        payload: json!({"event": "update"}),
        dedupe_key: Some(format!("user.refresh:{user}")),
        run_at: at,
    }
}

// ---- housekeeping -------------------------------------------------------------------------

pub async fn schema_is_migrated_and_ping_works(store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
    assert!(!store.backend().is_empty());
    let v = store.schema_version().await.expect("schema_version");
    assert!(v >= 1, "no migration applied (version {v})");
    store.migrate().await.expect("migrate twice is a no-op");
    assert_eq!(store.schema_version().await.unwrap(), v);
    assert_eq!(store.count_users(false).await.unwrap(), 0);
    assert_eq!(store.count_jobs().await.unwrap(), 0);
}

// ---- users --------------------------------------------------------------------------------

pub async fn upsert_creates_updates_and_skips_unchanged(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let p = profile("u1", "ada@example.com");
    assert_eq!(upsert(s, &p, t0()).await, ChangeOutcome::Created);
    let entries = outbox(s).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].kind, OutboxKind::Created);
    assert_eq!(entries[0].directory_id, "u1");
    assert_eq!(
        entries[0].payload["user"]["primary_email"],
        "ada@example.com"
    );
    assert_eq!(entries[0].attempts, 0);
    assert!(entries[0].delivered_at.is_none());

    let u = s.get_user("u1").await.unwrap().expect("created row");
    assert_eq!(u.profile, p);
    assert_eq!(u.created_at, t0());
    assert_eq!(u.updated_at, t0());
    assert_eq!(u.last_synced_at, t0());
    assert_eq!(u.deactivated_at, None);
    assert_eq!(u.content_hash, p.content_hash());

    // Same content: no outbox entry, content timestamps kept, sync time bumped.
    assert_eq!(
        upsert(s, &p, t0() + secs(1)).await,
        ChangeOutcome::Unchanged
    );
    assert_eq!(
        outbox(s).await.len(),
        1,
        "unchanged upsert wrote an outbox entry"
    );
    let u = s.get_user("u1").await.unwrap().unwrap();
    assert_eq!(u.updated_at, t0());
    assert_eq!(u.last_synced_at, t0() + secs(1));

    // Only the etag changed: still unchanged, but the etag is refreshed.
    let mut etag_only = p.clone();
    etag_only.directory_etag = Some("\"etag-u1-2\"".into());
    assert_eq!(
        upsert(s, &etag_only, t0() + secs(2)).await,
        ChangeOutcome::Unchanged
    );
    assert_eq!(outbox(s).await.len(), 1);
    let u = s.get_user("u1").await.unwrap().unwrap();
    assert_eq!(u.profile.directory_etag.as_deref(), Some("\"etag-u1-2\""));

    // A real change.
    let mut changed = etag_only.clone();
    changed.title = Some("Principal Engineer".into());
    assert_eq!(
        upsert(s, &changed, t0() + secs(3)).await,
        ChangeOutcome::Updated
    );
    let entries = outbox(s).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].kind, OutboxKind::Updated);
    assert!(entries[1].seq > entries[0].seq);
    assert_ne!(entries[1].idempotency_key, entries[0].idempotency_key);
    assert_eq!(entries[1].payload["changed_fields"], json!(["title"]));
    assert_eq!(entries[1].payload["user"]["title"], "Principal Engineer");
    let u = s.get_user("u1").await.unwrap().unwrap();
    assert_eq!(u.profile.title.as_deref(), Some("Principal Engineer"));
    assert_eq!(u.created_at, t0());
    assert_eq!(u.updated_at, t0() + secs(3));
    assert_eq!(s.count_users(false).await.unwrap(), 1);
}

pub async fn profile_round_trips_every_field(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut p = profile("u-full", "Zoë.Ünicode@Example.com");
    p.given_name = "Zoë".into();
    p.family_name = "Ünicode 'quoted' \"name\"".into();
    p.display_name = "Zoë Ü.".into();
    p.is_admin = true;
    p.department = None;
    p.phones = vec![
        Phone {
            value: "+1 555 0100".into(),
            kind: "mobile".into(),
        },
        Phone {
            value: "+1 555 0101".into(),
            kind: "custom:Desk".into(),
        },
    ];
    p.custom_schemas =
        json!({"Roles": {"admin": true, "level": 3, "tags": ["a", "b"]}, "Empty": {}});
    p.roles = vec!["admin".into(), "billing".into()];
    p.directory_etag = None;
    assert_eq!(upsert(s, &p, t0()).await, ChangeOutcome::Created);
    let got = s.get_user("u-full").await.unwrap().unwrap();
    assert_eq!(got.profile, p);
    let listed = s.list_users(&UserQuery::default()).await.unwrap();
    assert_eq!(listed, vec![got.clone()]);
    // A created-inactive user carries its deactivation time.
    let mut q = profile("u-susp", "susp@example.com");
    q.suspended = true;
    q.active = false;
    assert_eq!(upsert(s, &q, t0()).await, ChangeOutcome::Created);
    let got = s.get_user("u-susp").await.unwrap().unwrap();
    assert!(got.profile.suspended && !got.profile.active);
    assert_eq!(got.deactivated_at, Some(t0()));
    assert_eq!(s.get_user("missing").await.unwrap(), None);
}

pub async fn email_lookup_ignores_case(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let p = profile("u1", "Alice.Smith@Example.COM");
    upsert(s, &p, t0()).await;
    upsert(s, &profile("u2", "bob@example.com"), t0()).await;
    for q in [
        "alice.smith@example.com",
        "ALICE.SMITH@EXAMPLE.COM",
        "Alice.Smith@Example.COM",
    ] {
        let u = s.get_user_by_email(q).await.unwrap();
        assert_eq!(
            u.map(|u| u.profile.directory_id),
            Some("u1".to_owned()),
            "lookup {q}"
        );
    }
    assert_eq!(
        s.get_user_by_email("nobody@example.com").await.unwrap(),
        None
    );
    // A rename keeps the row (same id) and moves the lookup.
    let mut renamed = p.clone();
    renamed.primary_email = "alice.jones@example.com".into();
    assert_eq!(
        upsert(s, &renamed, t0() + secs(1)).await,
        ChangeOutcome::Updated
    );
    assert_eq!(
        s.get_user_by_email("alice.smith@example.com")
            .await
            .unwrap(),
        None
    );
    let u = s
        .get_user_by_email("Alice.Jones@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.profile.directory_id, "u1");
    assert_eq!(u.created_at, t0());
}

pub async fn deactivate_keeps_row_and_writes_outbox(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let p = profile("u1", "ada@example.com");
    upsert(s, &p, t0()).await;
    let at = t0() + secs(10);
    assert_eq!(
        s.deactivate_user("u1", "left the directory", at)
            .await
            .unwrap(),
        ChangeOutcome::Deactivated
    );
    let u = s
        .get_user("u1")
        .await
        .unwrap()
        .expect("row kept after deactivation");
    assert!(!u.profile.active);
    assert_eq!(u.deactivated_at, Some(at));
    assert_eq!(u.profile.primary_email, "ada@example.com");
    let entries = outbox(s).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].kind, OutboxKind::Deactivated);
    assert_eq!(entries[1].payload["reason"], "left the directory");
    assert_eq!(entries[1].payload["user"]["active"], false);
    assert_eq!(s.count_users(true).await.unwrap(), 0);
    assert_eq!(s.count_users(false).await.unwrap(), 1);

    // Again: nothing to do, nothing written.
    assert_eq!(
        s.deactivate_user("u1", "again", at + secs(1))
            .await
            .unwrap(),
        ChangeOutcome::Unchanged
    );
    assert_eq!(outbox(s).await.len(), 2);

    // Back in the directory (undelete): the same row is reactivated.
    assert_eq!(
        upsert(s, &p, at + secs(5)).await,
        ChangeOutcome::Reactivated
    );
    let u = s.get_user("u1").await.unwrap().unwrap();
    assert!(u.profile.active);
    assert_eq!(u.deactivated_at, None);
    assert_eq!(u.created_at, t0());
    let entries = outbox(s).await;
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2].kind, OutboxKind::Reactivated);

    // Suspension seen by an upsert deactivates too.
    let mut suspended = p.clone();
    suspended.suspended = true;
    suspended.active = false;
    assert_eq!(
        upsert(s, &suspended, at + secs(6)).await,
        ChangeOutcome::Deactivated
    );
    assert_eq!(outbox(s).await[3].kind, OutboxKind::Deactivated);
    assert_eq!(
        s.deactivate_user("nobody", "x", at).await.unwrap(),
        ChangeOutcome::NotFound
    );
    assert_eq!(outbox(s).await.len(), 4);
}

pub async fn delete_removes_row_and_outbox_keeps_last_state(store: Arc<dyn Store>) {
    let s = store.as_ref();
    upsert(s, &profile("u1", "ada@example.com"), t0()).await;
    assert_eq!(
        s.delete_user("u1", "policy=delete", t0() + secs(1))
            .await
            .unwrap(),
        ChangeOutcome::Deleted
    );
    assert_eq!(s.get_user("u1").await.unwrap(), None);
    assert_eq!(s.count_users(false).await.unwrap(), 0);
    let entries = outbox(s).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].kind, OutboxKind::Deleted);
    assert_eq!(entries[1].directory_id, "u1");
    assert_eq!(
        entries[1].payload["user"]["primary_email"],
        "ada@example.com"
    );
    assert_eq!(entries[1].payload["reason"], "policy=delete");
    assert_eq!(
        s.delete_user("u1", "again", t0() + secs(2)).await.unwrap(),
        ChangeOutcome::NotFound
    );
    assert_eq!(outbox(s).await.len(), 2);
}

pub async fn stale_observation_does_not_undo_newer_change(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut newer = profile("u1", "ada@example.com");
    newer.title = Some("B".into());
    // A notification job read the user at t0+10.
    s.upsert_user(&newer, t0() + secs(10), t0() + secs(10))
        .await
        .unwrap();
    // A slow full reconcile that read the directory at t0+5 applies afterwards.
    let mut older = newer.clone();
    older.title = Some("A".into());
    let report = s
        .apply_user_changes(
            &[
                UserChange::Upsert {
                    profile: older,
                    observed_at: t0() + secs(5),
                },
                UserChange::Delete {
                    directory_id: "u1".into(),
                    reason: "not in page".into(),
                    observed_at: t0() + secs(5),
                },
            ],
            t0() + secs(20),
        )
        .await
        .unwrap();
    assert_eq!(report.count(ChangeOutcome::Stale), 2);
    let u = s
        .get_user("u1")
        .await
        .unwrap()
        .expect("stale delete must not apply");
    assert_eq!(u.profile.title.as_deref(), Some("B"));
    assert_eq!(outbox(s).await.len(), 1);
}

pub async fn apply_user_changes_reports_in_order(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let a = profile("a", "a@example.com");
    let b = profile("b", "b@example.com");
    let mut a2 = a.clone();
    a2.family_name = "Byron".into();
    let at = t0();
    let changes = vec![
        UserChange::Upsert {
            profile: a.clone(),
            observed_at: at,
        },
        UserChange::Upsert {
            profile: b.clone(),
            observed_at: at,
        },
        UserChange::Upsert {
            profile: a2.clone(),
            observed_at: at,
        },
        UserChange::Upsert {
            profile: a2.clone(),
            observed_at: at,
        },
        UserChange::Deactivate {
            directory_id: "b".into(),
            reason: "suspended".into(),
            observed_at: at,
        },
        UserChange::Delete {
            directory_id: "zz".into(),
            reason: "gone".into(),
            observed_at: at,
        },
    ];
    let report = s.apply_user_changes(&changes, at).await.unwrap();
    let outcomes: Vec<_> = report
        .outcomes
        .iter()
        .map(|(id, o)| (id.as_str(), *o))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("a", ChangeOutcome::Created),
            ("b", ChangeOutcome::Created),
            ("a", ChangeOutcome::Updated),
            ("a", ChangeOutcome::Unchanged),
            ("b", ChangeOutcome::Deactivated),
            ("zz", ChangeOutcome::NotFound),
        ]
    );
    assert_eq!(report.written(), 4);
    let kinds: Vec<_> = outbox(s)
        .await
        .iter()
        .map(|e| (e.directory_id.clone(), e.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("a".to_owned(), OutboxKind::Created),
            ("b".to_owned(), OutboxKind::Created),
            ("a".to_owned(), OutboxKind::Updated),
            ("b".to_owned(), OutboxKind::Deactivated),
        ]
    );
    assert_eq!(
        s.get_user("a").await.unwrap().unwrap().profile.family_name,
        "Byron"
    );
    let empty = s.apply_user_changes(&[], at).await.unwrap();
    assert!(empty.outcomes.is_empty());
}

pub async fn apply_user_changes_is_all_or_nothing(store: Arc<dyn Store>) {
    let s = store.as_ref();
    upsert(s, &profile("keep", "keep@example.com"), t0()).await;
    let mut changed = profile("keep", "keep@example.com");
    changed.title = Some("Changed".into());
    // The last change violates a constraint (empty directory id): the whole chunk must roll back.
    let changes = vec![
        UserChange::Upsert {
            profile: profile("new", "new@example.com"),
            observed_at: t0() + secs(1),
        },
        UserChange::Upsert {
            profile: changed,
            observed_at: t0() + secs(1),
        },
        UserChange::Upsert {
            profile: profile("", "empty-id@example.com"),
            observed_at: t0() + secs(1),
        },
    ];
    let err = s.apply_user_changes(&changes, t0() + secs(1)).await;
    assert!(err.is_err(), "an empty directory id must be rejected");
    assert_eq!(
        s.get_user("new").await.unwrap(),
        None,
        "partial chunk committed"
    );
    assert_eq!(
        s.get_user("keep")
            .await
            .unwrap()
            .unwrap()
            .profile
            .title
            .as_deref(),
        Some("Engineer")
    );
    assert_eq!(
        outbox(s).await.len(),
        1,
        "outbox entries of a failed chunk committed"
    );
}

pub async fn list_users_pages_by_id_and_filters_active(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let mut changes = Vec::new();
    for i in 0..25 {
        let mut p = profile(&format!("u{i:02}"), &format!("user{i}@example.com"));
        p.active = i % 5 != 0;
        changes.push(UserChange::Upsert {
            profile: p,
            observed_at: t0(),
        });
    }
    s.apply_user_changes(&changes, t0()).await.unwrap();
    assert_eq!(s.count_users(false).await.unwrap(), 25);
    assert_eq!(s.count_users(true).await.unwrap(), 20);

    let mut seen = Vec::new();
    let mut query = UserQuery {
        active_only: false,
        after_id: None,
        limit: 10,
    };
    let mut pages = 0;
    loop {
        let page = s.list_users(&query).await.unwrap();
        assert!(page.len() <= 10);
        pages += 1;
        let Some(last) = page.last() else { break };
        query.after_id = Some(last.profile.directory_id.clone());
        seen.extend(page.into_iter().map(|u| u.profile.directory_id));
    }
    assert_eq!(pages, 4, "25 users in pages of 10 then an empty page");
    let expected: Vec<String> = (0..25).map(|i| format!("u{i:02}")).collect();
    assert_eq!(seen, expected);

    let active = s
        .list_users(&UserQuery {
            active_only: true,
            after_id: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 20);
    assert!(active.iter().all(|u| u.profile.active));
    let after = s
        .list_users(&UserQuery {
            active_only: true,
            after_id: Some("u20".into()),
            limit: 100,
        })
        .await
        .unwrap();
    let ids: Vec<_> = after
        .iter()
        .map(|u| u.profile.directory_id.as_str())
        .collect();
    assert_eq!(ids, vec!["u21", "u22", "u23", "u24"]);
}

// ---- outbox -------------------------------------------------------------------------------

pub async fn outbox_claim_lease_deliver_and_backoff(store: Arc<dyn Store>) {
    let s = store.as_ref();
    upsert(s, &profile("a", "a@example.com"), t0()).await;
    let t = t0() + secs(1);
    let claimed = s.claim_outbox(10, t, secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let seq = claimed[0].seq;
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(claimed[0].leased_until, Some(t + secs(30)));
    assert!(
        s.claim_outbox(10, t, secs(30)).await.unwrap().is_empty(),
        "leased entry handed out twice"
    );

    assert!(
        s.mark_outbox_failed(seq, "receiver answered 503", t + secs(60))
            .await
            .unwrap()
    );
    assert!(
        s.claim_outbox(10, t + secs(40), secs(30))
            .await
            .unwrap()
            .is_empty(),
        "retried before its backoff"
    );
    let again = s.claim_outbox(10, t + secs(61), secs(30)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].seq, seq);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(
        again[0].last_error.as_deref(),
        Some("receiver answered 503")
    );

    assert!(s.mark_outbox_delivered(seq, t + secs(62)).await.unwrap());
    assert!(
        s.claim_outbox(10, t + secs(3600), secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.list_pending_outbox(10).await.unwrap().is_empty());
    let all = outbox(s).await;
    assert_eq!(all[0].delivered_at, Some(t + secs(62)));
    assert!(!s.mark_outbox_delivered(seq + 1000, t).await.unwrap());

    // A deliverer that dies: its lease expires and the entry is handed out again.
    upsert(s, &profile("b", "b@example.com"), t0()).await;
    let first = s.claim_outbox(10, t, secs(30)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(s.list_pending_outbox(10).await.unwrap().len(), 1);
    let second = s.claim_outbox(10, t + secs(31), secs(30)).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].seq, first[0].seq);
    assert_eq!(second[0].attempts, 2);

    assert_eq!(s.prune_delivered_outbox(t + secs(63)).await.unwrap(), 1);
    let left = outbox(s).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].directory_id, "b");
}

pub async fn outbox_delivers_each_user_in_order(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let a = profile("a", "a@example.com");
    let mut a2 = a.clone();
    a2.title = Some("Lead".into());
    upsert(s, &a, t0()).await;
    upsert(s, &a2, t0() + secs(1)).await;
    upsert(s, &profile("b", "b@example.com"), t0() + secs(2)).await;
    let entries = outbox(s).await;
    let (a1, a2s, b1) = (entries[0].seq, entries[1].seq, entries[2].seq);

    let t = t0() + secs(10);
    let claimed: Vec<i64> = s
        .claim_outbox(10, t, secs(30))
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        claimed,
        vec![a1, b1],
        "a's second change must wait for its first"
    );
    assert!(s.mark_outbox_delivered(b1, t).await.unwrap());
    assert!(
        s.mark_outbox_failed(a1, "timeout", t + secs(60))
            .await
            .unwrap()
    );
    assert!(
        s.claim_outbox(10, t + secs(31), secs(30))
            .await
            .unwrap()
            .is_empty(),
        "a later change overtook a failed earlier one"
    );
    let claimed = s.claim_outbox(10, t + secs(61), secs(30)).await.unwrap();
    assert_eq!(claimed.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![a1]);
    assert!(s.mark_outbox_delivered(a1, t + secs(62)).await.unwrap());
    let claimed = s.claim_outbox(10, t + secs(62), secs(30)).await.unwrap();
    assert_eq!(claimed.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![a2s]);
    assert_eq!(claimed[0].kind, OutboxKind::Updated);
}

// ---- state --------------------------------------------------------------------------------

pub async fn sync_state_and_contacts_state_round_trip(store: Arc<dyn Store>) {
    let s = store.as_ref();
    assert_eq!(
        s.get_sync_state("users", "last_full_reconcile")
            .await
            .unwrap(),
        None
    );
    s.set_sync_state("users", "last_full_reconcile", "2025-10-09T10:00:00Z", t0())
        .await
        .unwrap();
    s.set_sync_state("users", "a_key", "1", t0()).await.unwrap();
    s.set_sync_state("contacts", "last_full_reconcile", "other", t0())
        .await
        .unwrap();
    assert_eq!(
        s.get_sync_state("users", "last_full_reconcile")
            .await
            .unwrap()
            .as_deref(),
        Some("2025-10-09T10:00:00Z")
    );
    s.set_sync_state("users", "last_full_reconcile", "v2", t0() + secs(1))
        .await
        .unwrap();
    assert_eq!(
        s.list_sync_state("users").await.unwrap(),
        vec![
            ("a_key".to_owned(), "1".to_owned()),
            ("last_full_reconcile".to_owned(), "v2".to_owned())
        ]
    );
    assert_eq!(
        s.get_sync_state("contacts", "last_full_reconcile")
            .await
            .unwrap()
            .as_deref(),
        Some("other")
    );
    assert!(s.delete_sync_state("users", "a_key").await.unwrap());
    assert!(!s.delete_sync_state("users", "a_key").await.unwrap());
    assert_eq!(s.get_sync_state("users", "a_key").await.unwrap(), None);

    let mut st = ContactsUserState {
        target_id: "t1".into(),
        target_email: "t1@example.com".into(),
        sync_token: Some("SYNC-TOKEN-abc".into()),
        view_hash: Some("deadbeef".into()),
        managed_group: Some("contactGroups/123".into()),
        updated_at: t0(),
    };
    assert_eq!(s.get_contacts_state("t1").await.unwrap(), None);
    s.put_contacts_state(&st).await.unwrap();
    assert_eq!(s.get_contacts_state("t1").await.unwrap(), Some(st.clone()));
    st.sync_token = None;
    st.view_hash = Some("cafe".into());
    st.updated_at = t0() + secs(5);
    s.put_contacts_state(&st).await.unwrap();
    let other = ContactsUserState {
        target_id: "t0".into(),
        target_email: "t0@example.com".into(),
        sync_token: None,
        view_hash: None,
        managed_group: None,
        updated_at: t0(),
    };
    s.put_contacts_state(&other).await.unwrap();
    assert_eq!(
        s.list_contacts_state().await.unwrap(),
        vec![other, st.clone()]
    );
    assert!(s.delete_contacts_state("t1").await.unwrap());
    assert!(!s.delete_contacts_state("t1").await.unwrap());
    assert_eq!(s.get_contacts_state("t1").await.unwrap(), None);
    let debug = format!(
        "{:?}",
        ContactsUserState {
            sync_token: Some("SYNC-TOKEN-abc".into()),
            ..st
        }
    );
    assert!(!debug.contains("SYNC-TOKEN-abc"));
}

// ---- channels & notifications -------------------------------------------------------------

pub async fn sync_states_are_updated_as_one_batch(store: Arc<dyn Store>) {
    let s = store.as_ref();
    s.set_sync_state("scim.app.users", "gone", "s-0", t0())
        .await
        .unwrap();
    s.set_sync_state("other", "a", "kept", t0()).await.unwrap();
    let entries: Vec<(String, String)> = (1..=3)
        .map(|i| (format!("d-{i}"), format!("s-{i}")))
        .collect();
    s.update_sync_states("scim.app.users", &entries, &["gone".to_string()], t0())
        .await
        .unwrap();
    assert_eq!(s.list_sync_state("scim.app.users").await.unwrap(), entries);
    // A second batch overwrites one value and removes a key that is not there.
    s.update_sync_states(
        "scim.app.users",
        &[("d-2".to_string(), "s-22".to_string())],
        &["d-3".to_string(), "missing".to_string()],
        t0() + secs(1),
    )
    .await
    .unwrap();
    assert_eq!(
        s.list_sync_state("scim.app.users").await.unwrap(),
        vec![
            ("d-1".to_string(), "s-1".to_string()),
            ("d-2".to_string(), "s-22".to_string())
        ]
    );
    assert_eq!(
        s.list_sync_state("other").await.unwrap(),
        vec![("a".to_string(), "kept".to_string())]
    );
    s.update_sync_states("scim.app.users", &[], &[], t0())
        .await
        .unwrap();
}

pub async fn channels_persist_expire_and_redact_token(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let long = channel("ch-long", "update", t0() + Duration::hours(6));
    let short = channel("ch-short", "add", t0() + Duration::hours(1));
    s.insert_channel(&long).await.unwrap();
    s.insert_channel(&short).await.unwrap();
    assert!(
        s.insert_channel(&long).await.is_err(),
        "duplicate channel id accepted"
    );

    let got = s.get_channel("ch-long").await.unwrap().unwrap();
    assert_eq!(got, long);
    assert_eq!(got.token.expose(), "s3cret-token-ch-long");
    let debug = format!("{got:?}");
    assert!(!debug.contains("s3cret"), "token leaked in Debug: {debug}");
    let json = serde_json::to_string(&got).unwrap();
    assert!(!json.contains("s3cret"), "token leaked in JSON: {json}");
    assert_eq!(s.get_channel("nope").await.unwrap(), None);

    let live: Vec<String> = s
        .list_live_channels(t0())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(live, vec!["ch-short", "ch-long"], "ordered by expiration");
    let live: Vec<String> = s
        .list_live_channels(t0() + Duration::hours(2))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(live, vec!["ch-long"]);

    let replacement = channel("ch-new", "update", t0() + Duration::hours(12));
    s.insert_channel(&replacement).await.unwrap();
    assert!(s.mark_channel_replaced("ch-long", "ch-new").await.unwrap());
    assert!(
        s.mark_channel_stopped("ch-long", t0() + secs(7))
            .await
            .unwrap()
    );
    assert!(!s.mark_channel_stopped("nope", t0()).await.unwrap());
    let old = s.get_channel("ch-long").await.unwrap().unwrap();
    assert_eq!(old.replaced_by.as_deref(), Some("ch-new"));
    assert_eq!(old.stopped_at, Some(t0() + secs(7)));
    let live: Vec<String> = s
        .list_live_channels(t0())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        live,
        vec!["ch-short", "ch-new"],
        "a stopped channel is not live"
    );

    assert_eq!(
        s.delete_expired_channels(t0() + Duration::hours(2))
            .await
            .unwrap(),
        1
    );
    let all: Vec<String> = s
        .list_channels()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(all, vec!["ch-long", "ch-new"]);
}

pub async fn notifications_are_recorded_once(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let n = ReceivedNotification {
        channel_id: "ch1".into(),
        message_number: 7,
        resource_state: "update".into(),
        user_id: Some("u1".into()),
        received_at: t0(),
    };
    let job = user_job("u1", t0());
    assert!(
        s.record_notification(&n, std::slice::from_ref(&job))
            .await
            .unwrap()
    );
    assert_eq!(s.count_jobs().await.unwrap(), 1);
    // Replay: false, and no second job.
    assert!(
        !s.record_notification(&n, std::slice::from_ref(&job))
            .await
            .unwrap()
    );
    assert_eq!(s.count_jobs().await.unwrap(), 1);
    let claimed = s.claim_jobs("w", 10, t0(), secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(s.complete_job(claimed[0].id, "w").await.unwrap());
    assert!(
        !s.record_notification(&n, std::slice::from_ref(&job))
            .await
            .unwrap(),
        "a replay after the job ran must not enqueue again"
    );
    assert_eq!(s.count_jobs().await.unwrap(), 0);

    let next = ReceivedNotification {
        message_number: 8,
        ..n.clone()
    };
    assert!(s.record_notification(&next, &[]).await.unwrap());
    let other_channel = ReceivedNotification {
        channel_id: "ch2".into(),
        ..n.clone()
    };
    assert!(s.record_notification(&other_channel, &[]).await.unwrap());
    assert_eq!(
        s.count_jobs().await.unwrap(),
        0,
        "no job given, none enqueued"
    );
    // Several jobs from one notification: all enqueued, each coalescing by its own key.
    let third = ReceivedNotification {
        message_number: 9,
        ..n.clone()
    };
    let mut contacts = NewJob::new("contacts.refresh", t0() + secs(5));
    contacts.dedupe_key = Some("contacts".into());
    let both = [user_job("u2", t0()), contacts.clone()];
    assert!(s.record_notification(&third, &both).await.unwrap());
    assert_eq!(s.count_jobs().await.unwrap(), 2);
    let fourth = ReceivedNotification {
        message_number: 10,
        ..n.clone()
    };
    assert!(
        s.record_notification(&fourth, &[user_job("u3", t0()), contacts])
            .await
            .unwrap()
    );
    assert_eq!(
        s.count_jobs().await.unwrap(),
        3,
        "the second contacts job coalesces into the first"
    );
    for j in s
        .claim_jobs("w", 10, t0() + secs(10), secs(30))
        .await
        .unwrap()
    {
        assert!(s.complete_job(j.id, "w").await.unwrap());
    }
    assert_eq!(s.prune_notifications(t0() + secs(1)).await.unwrap(), 5);
    assert!(
        s.record_notification(&n, &[]).await.unwrap(),
        "pruned notifications are forgotten"
    );
}

// ---- jobs ---------------------------------------------------------------------------------

pub async fn jobs_enqueue_claim_complete(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let job = user_job("u1", t0() + secs(10));
    let e = s.enqueue_job(&job).await.unwrap();
    assert!(!e.coalesced);
    assert!(
        s.claim_jobs("w1", 10, t0(), secs(30))
            .await
            .unwrap()
            .is_empty(),
        "claimed before run_at"
    );
    let pending = s.get_job(e.id).await.unwrap().unwrap();
    assert_eq!(pending.state, JobState::Pending);
    assert_eq!(pending.attempts, 0);

    let at = t0() + secs(10);
    let claimed = s.claim_jobs("w1", 10, at, secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let j = &claimed[0];
    assert_eq!(j.id, e.id);
    assert_eq!(j.kind, "user.refresh");
    assert_eq!(j.directory_user_id.as_deref(), Some("u1"));
    assert_eq!(j.user_email.as_deref(), Some("u1@example.com"));
    assert_eq!(j.payload, json!({"event": "update"}));
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.locked_by.as_deref(), Some("w1"));
    assert_eq!(j.locked_until, Some(at + secs(30)));
    assert_eq!(j.attempts, 1);
    assert_eq!(j.run_at, at);
    assert!(
        !s.complete_job(j.id, "w2").await.unwrap(),
        "another worker completed w1's job"
    );
    assert!(s.complete_job(j.id, "w1").await.unwrap());
    assert!(!s.complete_job(j.id, "w1").await.unwrap());
    assert_eq!(s.get_job(j.id).await.unwrap(), None);
    assert_eq!(s.count_jobs().await.unwrap(), 0);

    // Jobs come out oldest run_at first, and a limit is respected.
    for i in 0..5 {
        let mut j = NewJob::new("reconcile", t0() + secs(5 - i));
        j.payload = json!({"n": i});
        s.enqueue_job(&j).await.unwrap();
    }
    let claimed = s
        .claim_jobs("w1", 2, t0() + secs(100), secs(30))
        .await
        .unwrap();
    let ns: Vec<_> = claimed
        .iter()
        .map(|j| j.payload["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, vec![4, 3]);
    assert_eq!(claimed[0].directory_user_id, None);
}

pub async fn failed_job_is_retried_later_and_never_dropped(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let id = s.enqueue_job(&user_job("u1", t0())).await.unwrap().id;
    let mut now = t0();
    for attempt in 1..=6 {
        let claimed = s.claim_jobs("w", 10, now, secs(30)).await.unwrap();
        assert_eq!(claimed.len(), 1, "attempt {attempt}: job lost");
        assert_eq!(claimed[0].attempts, attempt);
        assert!(
            !s.fail_job(id, "other", "x", now, now).await.unwrap(),
            "wrong worker failed the job"
        );
        let backoff = secs(10 * (1 << attempt));
        let error = format!("users.get returned 503 (attempt {attempt})");
        assert!(
            s.fail_job(id, "w", &error, now + backoff, now)
                .await
                .unwrap()
        );
        let j = s.get_job(id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Pending);
        assert_eq!(j.last_error.as_deref(), Some(error.as_str()));
        assert_eq!(j.run_at, now + backoff);
        assert_eq!(j.locked_by, None);
        assert!(
            s.claim_jobs("w", 10, now + backoff - secs(1), secs(30))
                .await
                .unwrap()
                .is_empty(),
            "retried before its backoff"
        );
        now += backoff;
    }
    let failed = s.list_failed_jobs(10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, id);
    assert_eq!(failed[0].attempts, 6);
    // Success at last clears it.
    let claimed = s.claim_jobs("w", 10, now, secs(30)).await.unwrap();
    assert!(s.complete_job(claimed[0].id, "w").await.unwrap());
    assert!(s.list_failed_jobs(10).await.unwrap().is_empty());
}

pub async fn expired_job_lease_is_reclaimed(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let id = s.enqueue_job(&user_job("u1", t0())).await.unwrap().id;
    assert_eq!(
        s.claim_jobs("w1", 10, t0(), secs(30)).await.unwrap().len(),
        1
    );
    assert!(
        s.claim_jobs("w2", 10, t0() + secs(10), secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    // w1 died; after its lease w2 gets the job.
    let claimed = s
        .claim_jobs("w2", 10, t0() + secs(31), secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, id);
    assert_eq!(claimed[0].attempts, 2);
    assert_eq!(claimed[0].locked_by.as_deref(), Some("w2"));
    assert!(
        !s.complete_job(id, "w1").await.unwrap(),
        "a worker whose lease expired completed the job"
    );
    assert!(!s.fail_job(id, "w1", "late", t0(), t0()).await.unwrap());
    assert!(s.complete_job(id, "w2").await.unwrap());
}

pub async fn pending_jobs_with_same_dedupe_key_coalesce(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let first = s
        .enqueue_job(&user_job("u1", t0() + secs(5)))
        .await
        .unwrap();
    assert!(!first.coalesced);
    let mut sooner = user_job("u1", t0() + secs(1));
    sooner.payload = json!({"event": "delete"});
    let second = s.enqueue_job(&sooner).await.unwrap();
    assert!(second.coalesced);
    assert_eq!(second.id, first.id);
    let later = s
        .enqueue_job(&user_job("u1", t0() + secs(9)))
        .await
        .unwrap();
    assert!(later.coalesced);
    let j = s.get_job(first.id).await.unwrap().unwrap();
    assert_eq!(
        j.run_at,
        t0() + secs(1),
        "coalescing must keep the earlier run time"
    );
    assert_eq!(
        j.payload,
        json!({"event": "update"}),
        "payload is the newest"
    );
    assert_eq!(s.count_jobs().await.unwrap(), 1);

    // Another user, and a job without key, are separate.
    assert!(
        !s.enqueue_job(&user_job("u2", t0()))
            .await
            .unwrap()
            .coalesced
    );
    let mut nokey = user_job("u1", t0());
    nokey.dedupe_key = None;
    assert!(!s.enqueue_job(&nokey).await.unwrap().coalesced);
    assert!(!s.enqueue_job(&nokey).await.unwrap().coalesced);
    assert_eq!(s.count_jobs().await.unwrap(), 4);

    // Once claimed, a new notification must get its own job (the running one may have read
    // the user before the change).
    let claimed = s
        .claim_jobs("w", 10, t0() + secs(2), secs(30))
        .await
        .unwrap();
    assert!(claimed.iter().any(|j| j.id == first.id));
    let fresh = s
        .enqueue_job(&user_job("u1", t0() + secs(3)))
        .await
        .unwrap();
    assert!(!fresh.coalesced);
    assert_ne!(fresh.id, first.id);

    // The running one fails: it folds into the pending one (error and attempts kept, the
    // earlier retry time wins) rather than leaving two pending jobs for the same key.
    let before = s.count_jobs().await.unwrap();
    assert!(
        s.fail_job(first.id, "w", "boom", t0() + secs(2), t0() + secs(2))
            .await
            .unwrap()
    );
    assert_eq!(s.count_jobs().await.unwrap(), before - 1);
    assert_eq!(s.get_job(first.id).await.unwrap(), None);
    let merged = s.get_job(fresh.id).await.unwrap().unwrap();
    assert_eq!(merged.state, JobState::Pending);
    assert_eq!(merged.last_error.as_deref(), Some("boom"));
    assert_eq!(merged.attempts, 1);
    assert_eq!(merged.run_at, t0() + secs(2));
    assert_eq!(s.list_failed_jobs(10).await.unwrap().len(), 1);
}

pub async fn released_and_extended_jobs_keep_their_place(store: Arc<dyn Store>) {
    let s = store.as_ref();
    assert_eq!(s.queue_summary().await.unwrap(), QueueSummary::default());
    let mut job = NewJob::new("contacts.refresh", t0());
    job.dedupe_key = Some("contacts".into());
    let id = s.enqueue_job(&job).await.unwrap().id;
    s.enqueue_job(&user_job("u1", t0() + secs(100)))
        .await
        .unwrap();
    let claimed = s.claim_jobs("w1", 1, t0(), secs(30)).await.unwrap();
    assert_eq!(claimed[0].id, id);
    assert_eq!(claimed[0].attempts, 1);
    let q = s.queue_summary().await.unwrap();
    assert_eq!((q.pending, q.running, q.failing), (1, 1, 0));
    assert!(q.oldest_created_at.is_some());

    // A long run keeps its lock past the lease; another worker cannot take it.
    assert!(
        !s.extend_job(id, "w2", t0() + secs(120)).await.unwrap(),
        "another worker extended w1's job"
    );
    assert!(s.extend_job(id, "w1", t0() + secs(120)).await.unwrap());
    assert!(
        s.claim_jobs("w2", 10, t0() + secs(60), secs(30))
            .await
            .unwrap()
            .is_empty(),
        "an extended job was claimed by another worker"
    );

    // Released: pending again at the given time, no error, the attempt given back.
    assert!(!s.release_job(id, "w2", t0() + secs(5)).await.unwrap());
    assert!(s.release_job(id, "w1", t0() + secs(5)).await.unwrap());
    let j = s.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Pending);
    assert_eq!((j.attempts, j.last_error.as_deref()), (0, None));
    assert_eq!(j.run_at, t0() + secs(5));
    assert_eq!(j.locked_by, None);

    // Released while a newer job with its key waits: folded into that one.
    let claimed = s
        .claim_jobs("w1", 1, t0() + secs(5), secs(30))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, id);
    let newer = s.enqueue_job(&job).await.unwrap();
    assert!(!newer.coalesced, "a running job must not absorb a new one");
    assert!(s.release_job(id, "w1", t0() + secs(8)).await.unwrap());
    assert_eq!(s.get_job(id).await.unwrap(), None);
    let kept = s.get_job(newer.id).await.unwrap().unwrap();
    assert_eq!(kept.run_at, t0(), "the earlier run_at is kept");
    assert_eq!(s.count_jobs().await.unwrap(), 2);
    let q = s.queue_summary().await.unwrap();
    assert_eq!((q.pending, q.running, q.failing), (2, 0, 0));
}

pub async fn concurrent_claimers_never_share_a_job(store: Arc<dyn Store>) {
    const JOBS: usize = 200;
    for i in 0..JOBS {
        let mut j = NewJob::new("user.refresh", t0());
        j.dedupe_key = Some(format!("k{i}"));
        j.payload = json!({"i": i});
        store.enqueue_job(&j).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            let mut done = Vec::new();
            loop {
                let batch = store
                    .claim_jobs(&worker, 7, t0() + secs(1), secs(600))
                    .await
                    .expect("claim_jobs");
                if batch.is_empty() {
                    break;
                }
                for job in batch {
                    assert_eq!(job.locked_by.as_deref(), Some(worker.as_str()));
                    assert!(
                        store
                            .complete_job(job.id, &worker)
                            .await
                            .expect("complete_job"),
                        "{worker} lost job {} it had just claimed",
                        job.id
                    );
                    done.push(job.id);
                }
                tokio::task::yield_now().await;
            }
            done
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("claimer task"));
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a job was claimed twice");
    assert_eq!(all.len(), JOBS, "every job processed exactly once");
    assert_eq!(store.count_jobs().await.unwrap(), 0);
}

// ---- leases -------------------------------------------------------------------------------

pub async fn lease_is_exclusive_until_expiry(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let ttl = secs(30);
    assert!(
        s.try_acquire_lease("channels", "a", t0(), ttl)
            .await
            .unwrap()
    );
    assert!(
        !s.try_acquire_lease("channels", "b", t0() + secs(10), ttl)
            .await
            .unwrap()
    );
    assert!(
        s.try_acquire_lease("other", "b", t0(), ttl).await.unwrap(),
        "leases are per name"
    );
    let l = s.get_lease("channels").await.unwrap().unwrap();
    assert_eq!((l.holder.as_str(), l.expires_at), ("a", t0() + ttl));
    assert!(
        !s.renew_lease("channels", "b", t0() + secs(10), ttl)
            .await
            .unwrap()
    );
    assert!(
        s.renew_lease("channels", "a", t0() + secs(20), ttl)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_lease("channels").await.unwrap().unwrap().expires_at,
        t0() + secs(50)
    );
    assert!(
        !s.try_acquire_lease("channels", "b", t0() + secs(49), ttl)
            .await
            .unwrap()
    );
    // a dies: b takes over after expiry, and a cannot renew or release any more.
    assert!(
        s.try_acquire_lease("channels", "b", t0() + secs(51), ttl)
            .await
            .unwrap()
    );
    let l = s.get_lease("channels").await.unwrap().unwrap();
    assert_eq!(l.holder, "b");
    assert_eq!(l.acquired_at, t0() + secs(51));
    assert!(
        !s.renew_lease("channels", "a", t0() + secs(52), ttl)
            .await
            .unwrap()
    );
    assert!(!s.release_lease("channels", "a").await.unwrap());
    // Re-acquiring one's own lease extends it.
    assert!(
        s.try_acquire_lease("channels", "b", t0() + secs(60), ttl)
            .await
            .unwrap()
    );
    let l = s.get_lease("channels").await.unwrap().unwrap();
    assert_eq!(
        (l.acquired_at, l.expires_at),
        (t0() + secs(51), t0() + secs(90))
    );
    assert!(s.release_lease("channels", "b").await.unwrap());
    assert_eq!(s.get_lease("channels").await.unwrap(), None);
    assert!(
        s.try_acquire_lease("channels", "a", t0() + secs(61), ttl)
            .await
            .unwrap()
    );
    // An expired lease cannot be renewed even by its holder (it may have been taken meanwhile).
    assert!(
        !s.renew_lease("channels", "a", t0() + secs(200), ttl)
            .await
            .unwrap()
    );

    // Racing acquirers: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .try_acquire_lease("race", &format!("h{i}"), t0(), secs(30))
                .await
                .expect("try_acquire_lease")
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one racing holder must win the lease");
}
