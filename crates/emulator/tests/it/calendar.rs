//! Calendar v3 over real loopback HTTP: insert, recurring events expanded across a
//! DST change, all-day events, ordering, the timeMin/timeMax window, paging, sync
//! tokens, get/delete of instances, and Google's errors.

use orgsync_emulator::EmulatorConfig;
use orgsync_testkit::Emu;
use orgsync_wire::scopes;
use serde_json::{Value, json};

orgsync_testkit::harness!(Env);

const EVENTS: &str = "/calendar/v3/calendars/primary/events";

async fn env() -> Env {
    Env(Emu::start(EmulatorConfig::for_tests(3)).await)
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Env {
    async fn insert(&self, tok: &str, ev: Value) -> Value {
        let (s, v) = self
            .call(tok, reqwest::Method::POST, EVENTS, Some(ev))
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    async fn list(&self, tok: &str, query: &str) -> (u16, Value) {
        self.call(
            tok,
            reqwest::Method::GET,
            &format!("{EVENTS}?{query}"),
            None,
        )
        .await
    }

    /// Every item over all pages.
    async fn list_all(&self, tok: &str, query: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let q = match &page {
                Some(p) => format!("{query}&pageToken={p}"),
                None => query.to_string(),
            };
            let (s, v) = self.list(tok, &q).await;
            assert_eq!(s, 200, "{v}");
            assert_eq!(v["kind"], "calendar#events");
            items.extend(v["items"].as_array().unwrap().iter().cloned());
            match v["nextPageToken"].as_str() {
                Some(t) => page = Some(t.to_string()),
                None => {
                    assert!(v["nextSyncToken"].is_string(), "last page has a sync token");
                    return items;
                }
            }
        }
    }
}

fn reason(v: &Value) -> &str {
    v["error"]["errors"][0]["reason"].as_str().unwrap_or("")
}

fn starts(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|e| {
            e["start"]["dateTime"]
                .as_str()
                .or(e["start"]["date"].as_str())
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn weekly_recurrence_keeps_local_time_across_dst() {
    let e = env().await;
    let tok = e.token(&e.users[0], &[scopes::CALENDAR]);
    // Mondays 10:00–11:00 Berlin; Europe/Berlin moves to summer time on 29 March 2026.
    let parent = e
        .insert(
            &tok,
            json!({
                "summary": "Standup",
                "start": {"dateTime": "2026-03-16T10:00:00+01:00", "timeZone": "Europe/Berlin"},
                "end": {"dateTime": "2026-03-16T11:00:00+01:00", "timeZone": "Europe/Berlin"},
                "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=5", "EXDATE;TZID=Europe/Berlin:20260406T100000"],
            }),
        )
        .await;
    let id = parent["id"].as_str().unwrap();
    assert_eq!(parent["kind"], "calendar#event");
    assert_eq!(parent["status"], "confirmed");
    assert_eq!(parent["iCalUID"], format!("{id}@google.com"));
    assert_eq!(parent["organizer"]["email"], e.users[0].as_str());

    let items = e
        .list_all(
            &tok,
            "singleEvents=true&orderBy=startTime&timeZone=Europe%2FBerlin",
        )
        .await;
    assert_eq!(
        starts(&items),
        [
            "2026-03-16T10:00:00+01:00",
            "2026-03-23T10:00:00+01:00",
            "2026-03-30T10:00:00+02:00",
            "2026-04-13T10:00:00+02:00",
        ],
        "local 10:00 every week, 6 April excluded"
    );
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids[0], format!("{id}_20260316T090000Z"));
    assert_eq!(
        ids[2],
        format!("{id}_20260330T080000Z"),
        "08:00Z in summer time"
    );
    for i in &items {
        assert_eq!(i["recurringEventId"], id);
        assert_eq!(i["originalStartTime"], i["start"]);
        assert!(i.get("recurrence").is_none());
        assert_eq!(i["summary"], "Standup");
        assert_eq!(i["start"]["timeZone"], "Europe/Berlin");
    }
    assert_eq!(items[2]["end"]["dateTime"], "2026-03-30T11:00:00+02:00");

    // In UTC the same instances move by an hour at the change.
    let utc = e
        .list_all(&tok, "singleEvents=true&orderBy=startTime&timeZone=UTC")
        .await;
    assert_eq!(
        starts(&utc)[1..3],
        ["2026-03-23T09:00:00Z", "2026-03-30T08:00:00Z"]
    );

    // Without singleEvents the parent comes back once, with its recurrence.
    let (_, v) = e.list(&tok, "").await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["recurrence"][0],
        "RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=5"
    );

    // An instance can be read and cancelled on its own.
    let iid = format!("{id}_20260323T090000Z");
    let (s, got) = e
        .call(&tok, reqwest::Method::GET, &format!("{EVENTS}/{iid}"), None)
        .await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["recurringEventId"], id);
    let (s, _) = e
        .call(
            &tok,
            reqwest::Method::DELETE,
            &format!("{EVENTS}/{iid}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let items = e
        .list_all(&tok, "singleEvents=true&orderBy=startTime")
        .await;
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|i| i["id"] != iid.as_str()));
    let (s, got) = e
        .call(&tok, reqwest::Method::GET, &format!("{EVENTS}/{iid}"), None)
        .await;
    assert_eq!((s, got["status"].as_str()), (200, Some("cancelled")));
    let (s, _) = e
        .call(
            &tok,
            reqwest::Method::GET,
            &format!("{EVENTS}/{id}_20260324T090000Z"),
            None,
        )
        .await;
    assert_eq!(s, 404, "not an occurrence");
}

#[tokio::test]
async fn biweekly_series_honours_wkst_and_a_garbled_byday_is_400() {
    let e = env().await;
    let tok = e.token(&e.users[0], &[scopes::CALENDAR]);
    // RFC 5545 §3.3.10's WKST example: every other week on Tuesday and Sunday, weeks
    // starting on Sunday, so the first Sunday (10 August) is in a skipped week.
    let parent = e
        .insert(
            &tok,
            json!({
                "summary": "Biweekly",
                "start": {"dateTime": "1997-08-05T09:00:00", "timeZone": "America/New_York"},
                "end": {"dateTime": "1997-08-05T10:00:00", "timeZone": "America/New_York"},
                "recurrence": ["RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU"],
            }),
        )
        .await;
    let items = e
        .list_all(&tok, "singleEvents=true&orderBy=startTime")
        .await;
    assert!(items.iter().all(|i| i["recurringEventId"] == parent["id"]));
    assert_eq!(
        starts(&items),
        [
            "1997-08-05T09:00:00-04:00",
            "1997-08-17T09:00:00-04:00",
            "1997-08-19T09:00:00-04:00",
            "1997-08-31T09:00:00-04:00",
        ]
    );

    // A BYDAY value that is not ASCII is refused, the server keeps answering.
    let (s, v) = e
        .call(
            &tok,
            reqwest::Method::POST,
            EVENTS,
            Some(json!({
                "start": {"dateTime": "2026-01-01T10:00:00", "timeZone": "Europe/Berlin"},
                "end": {"dateTime": "2026-01-01T11:00:00", "timeZone": "Europe/Berlin"},
                "recurrence": ["RRULE:FREQ=MONTHLY;BYDAY=\u{e9}a"],
            })),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("BYDAY"),
        "{v}"
    );
    let (s, _) = e.list(&tok, "singleEvents=true").await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn all_day_ordering_and_time_window() {
    let e = env().await;
    let tok = e.token(&e.users[0], &[scopes::CALENDAR_EVENTS]);
    let day = |s: &str, en: &str, summary: &str| json!({"summary": summary, "start": {"date": s}, "end": {"date": en}});
    let timed = |s: &str, en: &str, summary: &str| json!({"summary": summary, "start": {"dateTime": s}, "end": {"dateTime": en}});
    // Inserted out of order.
    e.insert(
        &tok,
        timed("2026-05-01T15:00:00Z", "2026-05-01T16:00:00Z", "late"),
    )
    .await;
    e.insert(&tok, day("2026-05-01", "2026-05-02", "holiday"))
        .await;
    e.insert(
        &tok,
        timed(
            "2026-05-01T09:00:00+02:00",
            "2026-05-01T10:00:00+02:00",
            "early",
        ),
    )
    .await;
    e.insert(
        &tok,
        timed(
            "2026-04-30T22:00:00Z",
            "2026-05-01T00:00:00Z",
            "ends-at-min",
        ),
    )
    .await;
    e.insert(
        &tok,
        timed(
            "2026-05-02T00:00:00Z",
            "2026-05-02T01:00:00Z",
            "starts-at-max",
        ),
    )
    .await;
    let birthday = e
        .insert(
            &tok,
            json!({"summary": "birthday", "start": {"date": "2020-05-01"}, "end": {"date": "2020-05-02"},
                   "recurrence": ["RRULE:FREQ=YEARLY"]}),
        )
        .await;

    let q = format!(
        "singleEvents=true&orderBy=startTime&timeMin={}&timeMax={}",
        enc("2026-05-01T00:00:00Z"),
        enc("2026-05-02T00:00:00Z")
    );
    let items = e.list_all(&tok, &q).await;
    let summaries: Vec<&str> = items
        .iter()
        .map(|i| i["summary"].as_str().unwrap())
        .collect();
    // timeMin bounds the end exclusively, timeMax the start exclusively; all-day events
    // start at midnight and sort first; ties broken by end then id.
    assert_eq!(summaries.len(), 4, "{summaries:?}");
    assert_eq!(summaries[3], "late");
    assert_eq!(summaries[2], "early");
    assert!(summaries[..2].contains(&"holiday") && summaries[..2].contains(&"birthday"));
    let bday = items.iter().find(|i| i["summary"] == "birthday").unwrap();
    assert_eq!(
        bday["id"],
        format!("{}_20260501", birthday["id"].as_str().unwrap())
    );
    assert_eq!(bday["start"], json!({"date": "2026-05-01"}));
    assert_eq!(bday["end"], json!({"date": "2026-05-02"}));
    assert_eq!(bday["originalStartTime"], json!({"date": "2026-05-01"}));
    // dateTimes are written in the calendar's zone (UTC) without a timeZone parameter.
    let early = items.iter().find(|i| i["summary"] == "early").unwrap();
    assert_eq!(early["start"]["dateTime"], "2026-05-01T07:00:00Z");

    // An offset in timeMin is honoured: 02:00+02:00 is midnight UTC.
    let q2 = format!(
        "singleEvents=true&orderBy=startTime&timeMin={}&timeMax={}",
        enc("2026-05-01T02:00:00+02:00"),
        enc("2026-05-01T12:00:00+02:00")
    );
    let items = e.list_all(&tok, &q2).await;
    let summaries: Vec<&str> = items
        .iter()
        .map(|i| i["summary"].as_str().unwrap())
        .collect();
    assert_eq!(summaries.len(), 3, "{summaries:?}");
    assert_eq!(summaries[2], "early");

    // q matches words in summary/description.
    let items = e.list_all(&tok, &format!("{q}&q=HOLI")).await;
    assert_eq!(items.len(), 1);

    // A user's calendar is theirs alone; the root-mounted path works too.
    let other = e.token(&e.users[1], &[scopes::CALENDAR_READONLY]);
    let (s, v) = e.list(&other, "").await;
    assert_eq!(s, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 0);
    let (s, v) = e
        .call(
            &other,
            reqwest::Method::GET,
            &format!("/calendar/v3/calendars/{}/events", enc(&e.users[0])),
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = e
        .call(
            &tok,
            reqwest::Method::GET,
            &format!("/calendars/{}/events?singleEvents=true", enc(&e.users[0])),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn paging_and_sync_tokens() {
    let e = env().await;
    let tok = e.token(&e.users[0], &[scopes::CALENDAR]);
    let mut ids = Vec::new();
    for i in 0..7 {
        let v = e
            .insert(
                &tok,
                json!({"summary": format!("e{i}"),
                       "start": {"dateTime": format!("2026-06-{:02}T10:00:00Z", 10 - i)},
                       "end": {"dateTime": format!("2026-06-{:02}T11:00:00Z", 10 - i)}}),
            )
            .await;
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let (s, first) = e
        .list(&tok, "singleEvents=true&orderBy=startTime&maxResults=3")
        .await;
    assert_eq!(s, 200);
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    assert!(first["nextPageToken"].is_string());
    assert!(
        first.get("nextSyncToken").is_none(),
        "only on the last page"
    );
    let all = e
        .list_all(&tok, "singleEvents=true&orderBy=startTime&maxResults=3")
        .await;
    assert_eq!(all.len(), 7);
    let s = starts(&all);
    let mut sorted = s.clone();
    sorted.sort();
    assert_eq!(s, sorted);
    // Over the cap is clamped, under 1 is an error, a bad page token too.
    let (s, v) = e.list(&tok, "maxResults=100000").await;
    assert_eq!((s, v["items"].as_array().unwrap().len()), (200, 7));
    let (s, _) = e.list(&tok, "maxResults=0").await;
    assert_eq!(s, 400);
    let (s, _) = e.list(&tok, "pageToken=nonsense").await;
    assert_eq!(s, 400);
    let (_, v) = e.list(&tok, "").await;
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        7,
        "default page is 250"
    );

    // Sync: what changed since, deletions as cancelled.
    let sync = v["nextSyncToken"].as_str().unwrap().to_string();
    let (s, _) = e
        .call(
            &tok,
            reqwest::Method::DELETE,
            &format!("{EVENTS}/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, v) = e
        .call(
            &tok,
            reqwest::Method::DELETE,
            &format!("{EVENTS}/{}", ids[0]),
            None,
        )
        .await;
    assert_eq!((s, reason(&v)), (410, "deleted"));
    e.insert(
        &tok,
        json!({"summary": "new", "start": {"dateTime": "2026-07-01T10:00:00Z"}, "end": {"dateTime": "2026-07-01T10:30:00Z"}}),
    )
    .await;
    let (s, v) = e.list(&tok, &format!("syncToken={sync}")).await;
    assert_eq!(s, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{v}");
    assert!(
        items
            .iter()
            .any(|i| i["id"] == ids[0].as_str() && i["status"] == "cancelled")
    );
    assert!(items.iter().any(|i| i["summary"] == "new"));
    let (s, v) = e
        .list(
            &tok,
            &format!("syncToken={sync}&timeMin=2026-01-01T00:00:00Z"),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    e.h.emulator
        .calendar
        .write()
        .expire_sync_tokens(&e.users[0]);
    let (s, v) = e.list(&tok, &format!("syncToken={sync}")).await;
    assert_eq!((s, reason(&v)), (410, "fullSyncRequired"));
    // showDeleted lists the tombstone in a normal listing.
    let (_, v) = e.list(&tok, "showDeleted=true").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn errors_match_google() {
    let e = env().await;
    let me = &e.users[0];
    let tok = e.token(me, &[scopes::CALENDAR]);
    let (s, v) = e.list(&tok, "orderBy=startTime").await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["error"]["message"],
        "The requested ordering is not available for the particular query."
    );
    let (s, v) = e
        .list(
            &tok,
            "singleEvents=true&timeMin=2026-02-01T00:00:00Z&timeMax=2026-01-01T00:00:00Z",
        )
        .await;
    assert_eq!((s, reason(&v)), (400, "timeRangeEmpty"));
    let (s, _) = e.list(&tok, "timeMin=2026-02-01T00:00:00").await;
    assert_eq!(s, 400, "timeMin needs an offset");
    let (s, _) = e.list(&tok, "timeZone=Mars%2FOlympus").await;
    assert_eq!(s, 400);

    let post = |body: Value| e.call(&tok, reqwest::Method::POST, EVENTS, Some(body));
    let (s, v) = post(json!({"start": {"dateTime": "2026-01-01T10:00:00Z"}})).await;
    assert_eq!(
        (s, v["error"]["message"].as_str()),
        (400, Some("Missing end time."))
    );
    let (s, v) = post(json!({"start": {"dateTime": "2026-01-01T10:00:00Z"}, "end": {"dateTime": "2026-01-01T09:00:00Z"}})).await;
    assert_eq!((s, reason(&v)), (400, "timeRangeEmpty"));
    let (s, v) = post(json!({"start": {"dateTime": "2026-01-01T10:00:00Z"}, "end": {"dateTime": "2026-01-01T11:00:00Z"},
                             "recurrence": ["RRULE:FREQ=DAILY"]})).await;
    assert_eq!(s, 400, "recurring events need a time zone: {v}");
    let (s, v) = post(json!({"start": {"dateTime": "2026-01-01T10:00:00", "timeZone": "Europe/Berlin"},
                             "end": {"dateTime": "2026-01-01T11:00:00", "timeZone": "Europe/Berlin"},
                             "recurrence": ["RRULE:FREQ=WEEKLY;BYSETPOS=2"]})).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("BYSETPOS"));
    let (s, _) = post(
        json!({"start": {"dateTime": "2026-01-01T10:00:00", "timeZone": "Nowhere/City"},
                             "end": {"dateTime": "2026-01-01T11:00:00"}}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = post(
        json!({"id": "UPPER_case", "start": {"date": "2026-01-01"}, "end": {"date": "2026-01-02"}}),
    )
    .await;
    assert_eq!(s, 400);
    let (s, v) = post(
        json!({"id": "abc123", "start": {"date": "2026-01-01"}, "end": {"date": "2026-01-02"}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(
        json!({"id": "abc123", "start": {"date": "2026-01-01"}, "end": {"date": "2026-01-02"}}),
    )
    .await;
    assert_eq!((s, reason(&v)), (409, "duplicate"));
    // A local dateTime with a timeZone is accepted and written with its offset.
    let (s, v) = post(json!({"start": {"dateTime": "2026-07-01T10:00:00", "timeZone": "Europe/Berlin"},
                             "end": {"dateTime": "2026-07-01T11:00:00", "timeZone": "Europe/Berlin"}})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["start"]["dateTime"], "2026-07-01T10:00:00+02:00");

    // Scopes: readonly may list but not insert; Gmail scopes do nothing here.
    let ro = e.token(me, &[scopes::CALENDAR_EVENTS_READONLY]);
    let (s, _) = e.list(&ro, "").await;
    assert_eq!(s, 200);
    let (s, v) = e
        .call(
            &ro,
            reqwest::Method::POST,
            EVENTS,
            Some(json!({"start": {"date": "2026-01-01"}, "end": {"date": "2026-01-02"}})),
        )
        .await;
    assert_eq!((s, reason(&v)), (403, "insufficientPermissions"));
    let gm = e.token(me, &[scopes::GMAIL_READONLY]);
    let (s, _) = e.list(&gm, "").await;
    assert_eq!(s, 403);
    let (s, _) = e
        .call(
            &tok,
            reqwest::Method::GET,
            &format!("{EVENTS}/doesnotexist"),
            None,
        )
        .await;
    assert_eq!(s, 404);

    // Method ids are the discovery ids.
    let stats = orgsync_testkit::stats(&e.h).await;
    assert!(
        stats["calls_by_method"]["calendar.events.list"]
            .as_u64()
            .unwrap()
            >= 6
    );
    assert!(
        stats["calls_by_method"]["calendar.events.insert"]
            .as_u64()
            .unwrap()
            >= 9
    );
    assert_eq!(stats["calls_by_method"]["calendar.events.get"], 1);
}

#[tokio::test]
async fn state_survives_a_restart_with_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmulatorConfig::for_tests(2);
    cfg.data_dir = Some(dir.path().to_path_buf());
    let h = orgsync_emulator::spawn(cfg.clone()).await.unwrap();
    let user = h
        .emulator
        .directory
        .read()
        .users_sorted()
        .find_map(|u| u.primary_email.clone())
        .unwrap();
    let tok =
        orgsync_emulator::oauth::mint_access_token(&h.emulator, Some(&user), &[scopes::CALENDAR]);
    let r = reqwest::Client::new()
        .post(format!("{}{EVENTS}", h.base_url))
        .bearer_auth(&tok)
        .json(&json!({"summary": "kept", "start": {"date": "2026-01-01"}, "end": {"date": "2026-01-02"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    h.shutdown().await.unwrap();
    let h = orgsync_emulator::spawn(cfg).await.unwrap();
    assert_eq!(h.emulator.calendar.read().event_count(&user), 1);
    // Reset with state clears it.
    let r = reqwest::Client::new()
        .post(format!("{}/emulator/v1/reset", h.base_url))
        .json(&json!({"state": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(h.emulator.calendar.read().event_count(&user), 0);
}
