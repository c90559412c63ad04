//! Retries, error classes and pacing under the emulator's injected faults.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use orgsync_client::people::{ConnectionsParams, MARKER_KEY};
use orgsync_client::{ErrorKind, Pacing, RetryPolicy};
use orgsync_wire::people::Person;
use serde_json::json;

use orgsync_testkit::emulator::directory_users;

use super::common::{admin, env};
use super::people::{contact, new_contacts, serialised};

#[tokio::test]
async fn thirty_percent_errors_lose_and_duplicate_nothing() {
    let env = env(1).await;
    // A call fails for good only after every attempt fails: 0.3^8 ≈ 7e-5 a call, which
    // over this test's calls failed about one run in a hundred. 16 attempts (4e-9 a call)
    // keep the test about losing nothing, not about running out of attempts.
    let client = env.client_with(|c| c.retry.max_attempts = 16);
    let user = env.non_admin().await;
    let people = client.people(&user);
    let baseline = people
        .connections_list_all(ConnectionsParams::new("clientData"))
        .await
        .unwrap()
        .people
        .len();

    env.set_faults(json!({"error_rate": 0.3})).await;
    let wanted: Vec<Person> = (0..300)
        .map(|i| contact(&format!("F{i}"), &format!("fault-{i}")))
        .collect();
    let json = serialised(&wanted);
    let new = new_contacts(&wanted, &json);
    // 30 batches of 10, so that faults certainly hit some creates (0.7^30 ≈ 2e-5).
    let mut created = Vec::new();
    for batch in new.chunks(10) {
        created.extend(
            people
                .create_contacts_json(batch, &[], MARKER_KEY, "names")
                .await
                .unwrap(),
        );
    }
    assert_eq!(created.len(), 300);

    // Reads under the same faults are retried to completion.
    let listed = people
        .connections_list_all(ConnectionsParams::new("clientData,names"))
        .await
        .unwrap();
    env.set_faults(json!({})).await;

    let markers: Vec<&str> = listed
        .people
        .iter()
        .filter_map(|p| p.client_data_value(MARKER_KEY))
        .collect();
    let unique: HashSet<&str> = markers.iter().copied().collect();
    assert_eq!(
        listed.people.len(),
        baseline + 300,
        "nothing lost, nothing duplicated"
    );
    assert_eq!(markers.len(), 300);
    assert_eq!(unique.len(), 300);

    let stats = env.stats().await;
    let injected: u64 = stats["errors_injected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(injected > 0, "faults were injected: {stats}");
    let snap = client.stats().snapshot();
    assert!(
        snap.total_retries + snap.total_errors > 0,
        "the client saw the faults: {snap:?}"
    );
}

#[tokio::test]
async fn each_error_class_from_injected_faults() {
    let env = env(1).await;
    let user = env.non_admin().await;
    // Every call fails with 503: reads are retried up to the bound, then Retryable.
    env.set_faults(json!({"error_rate": 1.0, "error_kinds": ["backendError"]}))
        .await;
    let client = env.client_with(|c| {
        c.retry = RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            ..RetryPolicy::default()
        }
    });
    let err = client
        .directory()
        .users_get(&admin(), None, None)
        .await
        .unwrap_err();
    assert!(err.is(ErrorKind::Retryable), "{err}");
    assert_eq!(err.api().unwrap().attempts, 3);
    assert_eq!(err.api().unwrap().status, Some(503));

    // A create answered 503 may have happened: never repeated blindly.
    let err = client
        .people(&user)
        .create_contact(&contact("X", "x"), "names")
        .await
        .unwrap_err();
    assert!(err.is(ErrorKind::OutcomeUnknown), "{err}");
    assert_eq!(err.api().unwrap().attempts, 1);

    // A reset connection: the read is retried, the create is reported as unknown.
    env.set_faults(json!({"error_rate": 1.0, "error_kinds": ["connectionReset"]}))
        .await;
    let err = client
        .directory()
        .users_get(&admin(), None, None)
        .await
        .unwrap_err();
    assert!(
        err.is(ErrorKind::Retryable) && err.api().unwrap().status.is_none(),
        "{err}"
    );
    assert_eq!(err.api().unwrap().attempts, 3);
    let err = client
        .people(&user)
        .create_contact(&contact("X", "x"), "names")
        .await
        .unwrap_err();
    assert!(err.is(ErrorKind::OutcomeUnknown), "{err}");

    // 429 with Retry-After means "not done": even a create is retried, and succeeds.
    env.set_faults(json!({"overrides": [{"method": "people.people.createContact", "error_rate": 0.5, "error_kinds": ["rateLimitExceeded"]}]})).await;
    let fast = env.client_with(|c| c.retry.max_retry_after = Duration::from_millis(50));
    // At least 6 creates, and on until a 429 has been seen (six creates alone see none
    // 1.6% of the time at this rate: that made the test flaky).
    let mut creates = 0u64;
    while creates < 6 || (fast.stats().snapshot().total_429 == 0 && creates < 60) {
        fast.people(&user)
            .create_contact(&contact("Y", &format!("y{creates}")), "names")
            .await
            .unwrap();
        creates += 1;
    }
    env.set_faults(json!({})).await;
    let snap = fast.stats().snapshot();
    assert!(snap.total_429 > 0, "429s were seen and retried: {snap:?}");
    assert_eq!(snap.methods["people.people.createContact"].calls, creates);
    let listed = env
        .client
        .people(&user)
        .connections_list_all(ConnectionsParams::new("clientData"))
        .await
        .unwrap();
    let ys = listed
        .people
        .iter()
        .filter(|p| {
            p.client_data_value(MARKER_KEY)
                .is_some_and(|m| m.starts_with('y'))
        })
        .count();
    assert_eq!(ys as u64, creates, "no duplicates from retried 429s");

    let err = client
        .directory()
        .users_get("nobody@example.com", None, None)
        .await
        .unwrap_err();
    assert!(err.is(ErrorKind::NotFound));
    let errs = client.stats().snapshot();
    assert!(errs.total_errors >= 4);
}

#[tokio::test]
async fn pacing_to_the_quota_sees_no_429() {
    let env = env(0).await;
    let quota = 600; // 10 per second
    env.set_faults(json!({"quota_per_user_per_minute": quota}))
        .await;

    // Control: unpaced and unretried, a burst over a small quota bounces off 429s.
    env.set_faults(json!({"quota_per_user_per_minute": 5}))
        .await;
    let unpaced = env.client_with(|c| c.retry = RetryPolicy::none());
    let burst: Vec<_> = (0..10)
        .map(|_| {
            let d = unpaced.directory();
            tokio::spawn(async move { d.users_get(&admin(), None, None).await })
        })
        .collect();
    let mut limited = 0;
    for t in burst {
        if let Err(e) = t.await.unwrap() {
            assert_eq!(e.api().unwrap().status, Some(429), "{e}");
            limited += 1;
        }
    }
    assert!(limited >= 5, "quota enforced: {limited}");

    // Paced at the quota: 40 concurrent calls, none rejected.
    env.set_faults(json!({"quota_per_user_per_minute": quota}))
        .await;
    env.control(
        reqwest::Method::POST,
        "clock/advance",
        Some(json!({"seconds": 61})),
    )
    .await;
    let paced = env.client_with(|c| {
        c.pacing = Pacing {
            directory: Some(quota),
            ..Pacing::unlimited()
        };
        c.retry = RetryPolicy::none();
    });
    paced
        .directory()
        .users_get(&admin(), None, None)
        .await
        .unwrap();
    let t0 = Instant::now();
    let calls: Vec<_> = (0..40)
        .map(|_| {
            let d = paced.directory();
            tokio::spawn(async move { d.users_get(&admin(), None, None).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(3800),
        "paced at 10/s: {took:?}"
    );
    let snap = paced.stats().snapshot();
    assert_eq!(snap.total_429, 0);
    assert_eq!(snap.total_errors, 0);
}

#[tokio::test]
async fn users_stream_survives_faults() {
    let env = env(1200).await;
    env.set_faults(json!({"error_rate": 0.3})).await;
    let users = directory_users(&env.client).await;
    assert_eq!(users.len(), 1201);
    let ids: HashSet<_> = users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids.len(), 1201);
}

#[tokio::test]
async fn a_malformed_endpoint_fails_once_as_permanent_not_retryable() {
    let env = super::common::env(1).await;
    let client =
        env.client_with(|c| c.endpoints = orgsync_client::Endpoints::emulator("http://[::1"));
    let err = client
        .directory()
        .users_list(Default::default())
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err}");
    let api = err.api().expect("an API error");
    assert_eq!(api.attempts, 1, "{err}");
    assert_eq!(api.reason.as_deref(), Some("invalid_request_url"));
}
