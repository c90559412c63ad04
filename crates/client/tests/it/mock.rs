//! A recording server for calls the emulator does not serve yet (Gmail, Calendar,
//! groups, members, push channels) and for faults it cannot make (slow answers,
//! exact Retry-After). It checks the exact method, path and query the client sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use orgsync_client::calendar::EventsListParams;
use orgsync_client::directory::GroupsListParams;
use orgsync_client::gmail::{MessagesListParams, Upload};
use orgsync_client::{ClientConfig, Endpoints, ErrorKind, GoogleClient, QuotaLimits, StaticToken};
use orgsync_wire::directory::Channel;
use parking_lot::Mutex;
use serde_json::{Value, json};

use orgsync_testkit::fast_retry;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Bytes,
}

#[derive(Default)]
struct Mock {
    seen: Mutex<Vec<Seen>>,
    counter: Mutex<u32>,
}

async fn handle(State(m): State<Arc<Mock>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let headers: &HeaderMap = &parts.headers;
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    m.seen.lock().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.clone(),
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .into(),
        body,
    });
    assert_eq!(headers.get("authorization").unwrap(), "Bearer test-token");
    let page = |q: &str| q.contains("pageToken=p2");
    let n = {
        let mut c = m.counter.lock();
        *c += 1;
        *c
    };
    let ok = |v: Value| (StatusCode::OK, axum::Json(v)).into_response();
    match path.as_str() {
        "/admin/directory/v1/groups" if !page(&query) => ok(json!({"groups":[{"email":"g1@x"}],"nextPageToken":"p2"})),
        "/admin/directory/v1/groups" => ok(json!({"groups":[{"email":"g2@x"}]})),
        "/admin/directory/v1/groups/g1%40x/members" => ok(json!({"members":[{"email":"a@x","type":"USER"}]})),
        "/admin/directory/v1/users/watch" => ok(json!({"kind":"api#channel","id":"ch1","resourceId":"r1","expiration":"1700000000000"})),
        "/admin/directory_v1/channels/stop" => StatusCode::NO_CONTENT.into_response(),
        "/gmail/v1/users/me/messages/send" | "/upload/gmail/v1/users/me/messages/send" | "/gmail/v1/users/me/drafts/send" => {
            ok(json!({"id":"m1","threadId":"t1","labelIds":["SENT"]}))
        }
        "/gmail/v1/users/me/drafts" => ok(json!({"id":"d1","message":{"id":"m0"}})),
        "/gmail/v1/users/me/messages" => ok(json!({"messages":[{"id":"m1","threadId":"t1"}],"resultSizeEstimate":1})),
        "/gmail/v1/users/me/messages/m1" => ok(json!({"id":"m1","payload":{"headers":[{"name":"Subject","value":"Hi"}]}})),
        // Calendar: an empty first page that still has a token, then the events.
        "/calendar/v3/calendars/primary/events" if !page(&query) => ok(json!({"kind":"calendar#events","items":[],"nextPageToken":"p2"})),
        "/calendar/v3/calendars/primary/events" => ok(json!({"items":[{"id":"e1","start":{"date":"2026-05-01"},"end":{"date":"2026-05-02"}}],"nextSyncToken":"s"})),
        "/calendar/v3/calendars/gone/events" => (StatusCode::GONE, axum::Json(json!({"error":{"code":410,"message":"Sync token is no longer valid, a full sync is required.","errors":[{"domain":"global","reason":"fullSyncRequired","message":"x"}]}}))).into_response(),
        "/slow/v1/people:batchCreateContacts" | "/v1/people:batchCreateContacts" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            ok(json!({}))
        }
        "/admin/directory/v1/users/ratelimited" if n % 2 == 1 => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            axum::Json(json!({"error":{"code":429,"message":"slow down","errors":[{"domain":"global","reason":"rateLimitExceeded","message":"slow down"}]}})),
        )
            .into_response(),
        "/admin/directory/v1/users/ratelimited" => ok(json!({"id":"1"})),
        _ => (StatusCode::NOT_FOUND, axum::Json(json!({"error":{"code":404,"message":format!("no {path}"),"errors":[]}}))).into_response(),
    }
}

async fn serve() -> (Arc<Mock>, String) {
    let mock = Arc::new(Mock::default());
    let app = Router::new().fallback(handle).with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (mock, format!("http://{addr}"))
}

fn client(base: &str, http: Option<reqwest::Client>) -> GoogleClient {
    let config = ClientConfig {
        endpoints: Endpoints::emulator(base),
        quotas: QuotaLimits::unlimited(),
        retry: fast_retry(),
        admin_subject: Some("admin@x".into()),
        ..Default::default()
    };
    let tokens = Arc::new(StaticToken::new("test-token"));
    match http {
        Some(h) => GoogleClient::with_http_client(h, tokens, config),
        None => GoogleClient::new(tokens, config),
    }
}

fn last(m: &Mock) -> Seen {
    m.seen.lock().last().cloned().unwrap()
}

#[tokio::test]
async fn groups_members_watch_and_stop_use_discovery_paths() {
    let (m, base) = serve().await;
    let c = client(&base, None);
    let groups: Vec<_> = c
        .directory()
        .groups_list(GroupsListParams::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(groups.len(), 2, "followed nextPageToken");
    let seen = m.seen.lock().clone();
    assert!(
        seen[0].query.contains("customer=my_customer") && seen[0].query.contains("maxResults=200"),
        "{:?}",
        seen[0]
    );

    let members: Vec<_> = c
        .directory()
        .members_list("g1@x", true, None)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert!(last(&m).query.contains("includeDerivedMembership=true"));

    let ch = Channel {
        id: "ch1".into(),
        channel_type: Some("web_hook".into()),
        address: Some("https://hook.example/n".into()),
        token: Some("secret".into()),
        ..Default::default()
    };
    let opened = c
        .directory()
        .users_watch(&Default::default(), "update", &ch)
        .await
        .unwrap();
    assert_eq!(opened.expiration, Some(1_700_000_000_000));
    let w = last(&m);
    assert_eq!(w.method, "POST");
    assert!(
        w.query.contains("event=update") && w.query.contains("customer=my_customer"),
        "{w:?}"
    );
    c.directory().channels_stop(&opened).await.unwrap();
    let s = last(&m);
    assert_eq!(s.path, "/admin/directory_v1/channels/stop");
    let body: Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(body, json!({"id":"ch1","resourceId":"r1"}));
}

#[tokio::test]
async fn gmail_send_upload_drafts_and_reads() {
    let (m, base) = serve().await;
    let c = client(&base, None);
    let g = c.gmail(Some("u@x"));
    let msg = b"From: u@x\r\nTo: v@x\r\nSubject: Hi\r\n\r\nHello?\r\n";
    let sent = g.send_raw(msg, None).await.unwrap();
    assert_eq!(sent.id.as_deref(), Some("m1"));
    let body: Value = serde_json::from_slice(&last(&m).body).unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body["raw"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, msg);

    g.send_upload(msg, Upload::Media, None).await.unwrap();
    let s = last(&m);
    assert_eq!(s.path, "/upload/gmail/v1/users/me/messages/send");
    assert_eq!(s.query, "uploadType=media");
    assert_eq!(s.content_type, "message/rfc822");
    assert_eq!(&s.body[..], msg);

    g.send_upload(msg, Upload::Multipart, Some("t1"))
        .await
        .unwrap();
    let s = last(&m);
    assert_eq!(s.query, "uploadType=multipart");
    assert!(s.content_type.starts_with("multipart/related; boundary="));

    let d = g.drafts_create(msg).await.unwrap();
    assert_eq!(d.id.as_deref(), Some("d1"));
    g.drafts_send("d1").await.unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&last(&m).body).unwrap(),
        json!({"id":"d1"})
    );

    let listed: Vec<_> = g
        .messages_list(MessagesListParams {
            q: Some("is:sent".into()),
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let full = g.messages_get("m1", Some("metadata")).await.unwrap();
    assert_eq!(full.payload.unwrap().header("subject"), Some("Hi"));
    let snap = c.stats().snapshot();
    assert_eq!(snap.calls("gmail.users.messages.send"), 3);
    assert_eq!(snap.calls("gmail.users.drafts.create"), 1);
    assert_eq!(snap.calls("gmail.users.drafts.send"), 1);
}

#[tokio::test]
async fn calendar_pages_past_empty_pages_and_sets_quota_user() {
    let (m, base) = serve().await;
    let c = client(&base, None);
    let cal = c.calendar(Some("u@x.com"));
    let params = EventsListParams {
        single_events: true,
        order_by: Some("startTime".into()),
        time_min: Some("2026-05-01T00:00:00Z".into()),
        time_max: Some("2026-05-08T00:00:00Z".into()),
        ..Default::default()
    };
    let events: Vec<_> = cal
        .events_list("primary", params)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "an empty page with a token is not the end");
    let q = last(&m).query;
    for part in [
        "singleEvents=true",
        "orderBy=startTime",
        "maxResults=2500",
        "quotaUser=u%40x.com",
        "pageToken=p2",
    ] {
        assert!(q.contains(part), "{part} in {q}");
    }
    let err = cal
        .events_list("gone", EventsListParams::default())
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(err.is(ErrorKind::SyncTokenExpired), "{err}");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (_m, base) = serve().await;
    let c = client(&base, None);
    let t0 = Instant::now();
    let user = c
        .directory()
        .users_get("ratelimited", None, None)
        .await
        .unwrap();
    assert_eq!(user.id.as_deref(), Some("1"));
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "waited Retry-After: {:?}",
        t0.elapsed()
    );
    assert_eq!(c.stats().snapshot().total_429, 1);
}

#[tokio::test]
async fn a_create_that_times_out_is_not_repeated() {
    let (m, base) = serve().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let c = client(&base, Some(http));
    let err = c
        .people("u@x")
        .batch_create_contacts(vec![Default::default()], "names")
        .await
        .unwrap_err();
    assert!(err.is(ErrorKind::OutcomeUnknown), "{err}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let creates = m
        .seen
        .lock()
        .iter()
        .filter(|s| s.path.ends_with(":batchCreateContacts"))
        .count();
    assert_eq!(creates, 1, "sent once, never repeated blindly");
}
