//! Calendar v3: `events.list`, `events.insert`, `events.get` and `events.delete` on each
//! user's primary calendar, with recurring events expanded into instances.
//!
//! Every user of the emulated domain has a primary calendar that exists implicitly
//! (`calendarId` = `primary` or their address); another user's calendar answers 404, as
//! an unshared calendar does at Google. Events are stored as the JSON the client sent
//! plus the fields Google adds (id, etag, iCalUID, created/updated, creator, organizer,
//! htmlLink, reminders), so unknown fields (attendees, extendedProperties…) round-trip.
//!
//! `events.list` follows Google's reference
//! (<https://developers.google.com/workspace/calendar/api/v3/reference/events/list>) and the
//! discovery document:
//! - `singleEvents=true` expands `RRULE`s (see [`rrule`]) into instances with ids
//!   `{eventId}_{YYYYMMDDTHHMMSSZ}` (all-day: `{eventId}_{YYYYMMDD}`), `recurringEventId`
//!   and `originalStartTime`; parents are then not returned. Deleting an instance
//!   cancels that occurrence only.
//! - `orderBy=startTime` without `singleEvents=true`: 400 "The requested ordering is not
//!   available for the particular query."; `timeMax` <= `timeMin`: 400
//!   `timeRangeEmpty`. `timeMin` bounds the *end* (exclusive), `timeMax` the *start*
//!   (exclusive); both need an offset (RFC 3339).
//! - `maxResults` defaults to 250 and is capped at 2500; pages carry `nextPageToken`,
//!   the last page `nextSyncToken`. `syncToken` returns what changed since (deleted
//!   events as `status: cancelled`), refuses the parameters Google refuses with it, and
//!   answers 410 `fullSyncRequired` once expired ([`CalendarState::expire_sync_tokens`]).
//! - `timeZone` sets the zone `dateTime`s are written in; without it an event's own
//!   `timeZone` is used, then the calendar's (UTC unless set with
//!   [`CalendarState::set_time_zone`]). All-day events span local midnights in the
//!   calendar's zone. `q` matches every word against summary, description, location
//!   and attendee addresses.
//! - Unbounded recurrences without `timeMax` are expanded five years past the later of
//!   their start and now, at most 10,000 instances per event.

mod rrule;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::error::{Api, ApiError};
use crate::query::Params;
use crate::state::Emulator;

use rrule::Recurrence;

pub const DEFAULT_PAGE: i64 = 250;
pub const MAX_PAGE: i64 = 2500;
const MAX_INSTANCES: usize = 10_000;

const S: &str = "https://www.googleapis.com/auth/calendar";
const READ: &[&str] = &[
    "",
    ".app.created",
    ".events",
    ".events.freebusy",
    ".events.owned",
    ".events.owned.readonly",
    ".events.public.readonly",
    ".events.readonly",
    ".readonly",
];
const WRITE: &[&str] = &["", ".app.created", ".events", ".events.owned"];

fn require(caller: &Caller, suffixes: &[&str]) -> Result<(), ApiError> {
    let wanted: Vec<String> = suffixes.iter().map(|s| format!("{S}{s}")).collect();
    let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
    caller.require_any_scope(&refs)
}

/// Every user's calendar, by lower-cased primary address.
#[derive(Default, Serialize, Deserialize)]
pub struct CalendarState {
    #[serde(default)]
    calendars: BTreeMap<String, UserCalendar>,
    /// Change sequence shared by all calendars (sync tokens, default order).
    #[serde(default)]
    seq: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct UserCalendar {
    #[serde(default)]
    time_zone: Option<String>,
    events: BTreeMap<String, StoredEvent>,
    /// Sync tokens issued before this sequence are expired.
    #[serde(default)]
    sync_floor: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredEvent {
    /// Creation order.
    created_seq: u64,
    /// Last change (sync tokens).
    updated_seq: u64,
    deleted: bool,
    /// Instance ids of cancelled occurrences.
    #[serde(default)]
    cancelled_instances: Vec<String>,
    resource: Map<String, Value>,
}

impl CalendarState {
    /// Set a user's calendar time zone (IANA name); Err for an unknown zone.
    pub fn set_time_zone(&mut self, user: &str, tz: &str) -> Result<(), String> {
        tz.parse::<Tz>()
            .map_err(|_| format!("unknown time zone {tz}"))?;
        self.calendars
            .entry(user.trim().to_ascii_lowercase())
            .or_default()
            .time_zone = Some(tz.to_string());
        Ok(())
    }

    /// Expire every sync token issued so far for `user`'s calendar.
    pub fn expire_sync_tokens(&mut self, user: &str) {
        self.seq += 1;
        let seq = self.seq;
        self.calendars
            .entry(user.trim().to_ascii_lowercase())
            .or_default()
            .sync_floor = seq;
    }

    /// Number of live (not deleted) events in `user`'s calendar.
    pub fn event_count(&self, user: &str) -> usize {
        self.calendars
            .get(&user.trim().to_ascii_lowercase())
            .map(|c| c.events.values().filter(|e| !e.deleted).count())
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------
// Errors

fn cal_error(status: StatusCode, reason: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(Api::Calendar, status, reason, message)
}

fn bad(message: impl Into<String>) -> ApiError {
    cal_error(StatusCode::BAD_REQUEST, "invalid", message)
}

fn not_found() -> ApiError {
    ApiError::not_found(Api::Calendar, "Not Found")
}

// ---------------------------------------------------------------------------------
// Times

/// One end of an event, resolved.
#[derive(Clone, Debug)]
enum When {
    Date(NaiveDate),
    Timed {
        instant: DateTime<Utc>,
        local: NaiveDateTime,
        tz: Option<Tz>,
    },
}

fn parse_tz(name: &str, what: &str) -> Result<Tz, ApiError> {
    name.parse::<Tz>().map_err(|_| {
        bad(format!(
            "Invalid time zone definition for {what}: '{name}'."
        ))
    })
}

fn parse_when(v: Option<&Value>, which: &str) -> Result<When, ApiError> {
    let missing = || {
        cal_error(
            StatusCode::BAD_REQUEST,
            "required",
            format!("Missing {which} time."),
        )
    };
    let v = v.filter(|v| v.is_object()).ok_or_else(missing)?;
    let date = v.get("date").and_then(Value::as_str);
    let date_time = v.get("dateTime").and_then(Value::as_str);
    let tz = v
        .get("timeZone")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| parse_tz(s, &format!("{which} time")))
        .transpose()?;
    match (date, date_time) {
        (Some(_), Some(_)) => Err(bad(format!(
            "Invalid {which} time: set either 'date' (all-day) or 'dateTime', not both."
        ))),
        (Some(d), None) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map(When::Date)
            .map_err(|_| bad(format!("Invalid {which} date '{d}': expected YYYY-MM-DD."))),
        (None, Some(dt)) => {
            if let Ok(fixed) = DateTime::parse_from_rfc3339(dt) {
                let instant = fixed.with_timezone(&Utc);
                let local = match tz {
                    Some(z) => instant.with_timezone(&z).naive_local(),
                    None => fixed.naive_local(),
                };
                return Ok(When::Timed { instant, local, tz });
            }
            let local = NaiveDateTime::parse_from_str(dt, "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| NaiveDateTime::parse_from_str(dt, "%Y-%m-%dT%H:%M:%S%.f"))
                .map_err(|_| {
                    bad(format!(
                        "Invalid {which} dateTime '{dt}': expected RFC 3339, e.g. 2026-03-02T10:00:00+01:00."
                    ))
                })?;
            let z =
                tz.ok_or_else(|| bad(format!("Missing time zone definition for {which} time.")))?;
            Ok(When::Timed {
                instant: rrule::localize(z, local),
                local,
                tz: Some(z),
            })
        }
        (None, None) => Err(missing()),
    }
}

fn midnight(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    rrule::localize(tz, d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn fmt_instant(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .fixed_offset()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_bound(params: &Params, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    params
        .get_nonempty(name)
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    cal_error(
                        StatusCode::BAD_REQUEST,
                        "badRequest",
                        format!(
                            "Bad Request: {name}='{v}' is not an RFC 3339 timestamp with a time zone offset (e.g. 2026-03-01T00:00:00Z)."
                        ),
                    )
                    .with_location("parameter", name)
                })
        })
        .transpose()
}

// ---------------------------------------------------------------------------------
// Occurrences

/// One thing `events.list` may return: a single event, a recurring parent, or an instance.
struct Item {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    created_seq: u64,
    updated: String,
    json: Value,
}

struct Ctx {
    cal_tz: Tz,
    render_tz: Option<Tz>,
    time_min: Option<DateTime<Utc>>,
    time_max: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
}

fn overlaps(ctx: &Ctx, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    ctx.time_min.is_none_or(|m| end > m) && ctx.time_max.is_none_or(|m| start < m)
}

/// `start`/`end` JSON for an instant, written in the response zone.
fn timed_json(ctx: &Ctx, t: DateTime<Utc>, own_tz: Option<Tz>, given: Option<&Value>) -> Value {
    let zone = ctx.render_tz.or(own_tz).unwrap_or(ctx.cal_tz);
    let mut v = json!({"dateTime": fmt_instant(t, zone)});
    if let Some(tz) = given.and_then(|g| g.get("timeZone")).cloned() {
        v["timeZone"] = tz;
    }
    v
}

fn render_single(ctx: &Ctx, ev: &StoredEvent) -> Option<(Value, DateTime<Utc>, DateTime<Utc>)> {
    let r = &ev.resource;
    let start = parse_when(r.get("start"), "start").ok()?;
    let end = parse_when(r.get("end"), "end").ok()?;
    let mut json = Value::Object(r.clone());
    let (s, e) = match (&start, &end) {
        (When::Date(sd), When::Date(ed)) => (midnight(ctx.cal_tz, *sd), midnight(ctx.cal_tz, *ed)),
        (
            When::Timed {
                instant: si,
                tz: stz,
                ..
            },
            When::Timed {
                instant: ei,
                tz: etz,
                ..
            },
        ) => {
            json["start"] = timed_json(ctx, *si, *stz, r.get("start"));
            json["end"] = timed_json(ctx, *ei, etz.or(*stz), r.get("end"));
            (*si, *ei)
        }
        _ => return None,
    };
    Some((json, s, e))
}

/// The instances of a recurring event that overlap the window.
fn instances(ctx: &Ctx, ev: &StoredEvent) -> Vec<Item> {
    let r = &ev.resource;
    let lines: Vec<String> = r
        .get("recurrence")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let Ok(rec) = Recurrence::parse(&lines) else {
        return Vec::new();
    };
    let (Ok(start), Ok(end)) = (
        parse_when(r.get("start"), "start"),
        parse_when(r.get("end"), "end"),
    ) else {
        return Vec::new();
    };
    let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
    let updated = r
        .get("updated")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut base = r.clone();
    base.remove("recurrence");
    let mut out = Vec::new();
    match (start, end) {
        (When::Date(sd), When::Date(ed)) => {
            let days = (ed - sd).num_days();
            let dtstart = sd.and_hms_opt(0, 0, 0).unwrap_or_default();
            let stop = ctx
                .time_max
                .map(|m| m + Duration::days(1))
                .unwrap_or_else(|| midnight(ctx.cal_tz, sd).max(ctx.now) + Duration::days(5 * 366));
            for occ in rrule::expand(&rec, dtstart, ctx.cal_tz, stop, MAX_INSTANCES) {
                let d = occ.date();
                let e = d + Duration::days(days);
                let (si, ei) = (midnight(ctx.cal_tz, d), midnight(ctx.cal_tz, e));
                let iid = format!("{id}_{}", d.format("%Y%m%d"));
                if !overlaps(ctx, si, ei) || ev.cancelled_instances.contains(&iid) {
                    continue;
                }
                let mut j = base.clone();
                j.insert("id".into(), json!(iid));
                j.insert("recurringEventId".into(), json!(id));
                j.insert("start".into(), json!({"date": d.to_string()}));
                j.insert("end".into(), json!({"date": e.to_string()}));
                j.insert("originalStartTime".into(), json!({"date": d.to_string()}));
                out.push(Item {
                    start: si,
                    end: ei,
                    created_seq: ev.created_seq,
                    updated: updated.clone(),
                    json: Value::Object(j),
                });
            }
        }
        (
            When::Timed {
                local: sl,
                tz: Some(tz),
                ..
            },
            When::Timed { local: el, .. },
        ) => {
            let dur = el - sl;
            let stop = ctx
                .time_max
                .unwrap_or_else(|| rrule::localize(tz, sl).max(ctx.now) + Duration::days(5 * 366));
            for occ in rrule::expand(&rec, sl, tz, stop, MAX_INSTANCES) {
                let si = rrule::localize(tz, occ);
                let ei = rrule::localize(tz, occ + dur);
                let iid = format!("{id}_{}", si.format("%Y%m%dT%H%M%SZ"));
                if !overlaps(ctx, si, ei) || ev.cancelled_instances.contains(&iid) {
                    continue;
                }
                let mut j = base.clone();
                j.insert("id".into(), json!(iid));
                j.insert("recurringEventId".into(), json!(id));
                j.insert(
                    "start".into(),
                    timed_json(ctx, si, Some(tz), r.get("start")),
                );
                j.insert(
                    "end".into(),
                    timed_json(ctx, ei, Some(tz), r.get("end").or(r.get("start"))),
                );
                j.insert(
                    "originalStartTime".into(),
                    timed_json(ctx, si, Some(tz), r.get("start")),
                );
                out.push(Item {
                    start: si,
                    end: ei,
                    created_seq: ev.created_seq,
                    updated: updated.clone(),
                    json: Value::Object(j),
                });
            }
        }
        _ => {}
    }
    out
}

fn tombstone(ev: &StoredEvent) -> Value {
    json!({
        "kind": "calendar#event",
        "etag": ev.resource.get("etag").cloned().unwrap_or(Value::Null),
        "id": ev.resource.get("id").cloned().unwrap_or(Value::Null),
        "status": "cancelled",
    })
}

fn matches_q(ev: &Value, q: &str) -> bool {
    let mut hay = String::new();
    for k in ["summary", "description", "location"] {
        if let Some(s) = ev.get(k).and_then(Value::as_str) {
            hay.push_str(s);
            hay.push(' ');
        }
    }
    for a in ev
        .get("attendees")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for k in ["email", "displayName"] {
            if let Some(s) = a.get(k).and_then(Value::as_str) {
                hay.push_str(s);
                hay.push(' ');
            }
        }
    }
    let hay = hay.to_lowercase();
    q.split_whitespace()
        .all(|w| hay.contains(&w.to_lowercase()))
}

// ---------------------------------------------------------------------------------
// Calendar resolution

/// `(calendar key, calendar id as shown)`; 404 for someone else's calendar.
fn calendar_of(emu: &Emulator, caller: &Caller, calendar_id: &str) -> Result<String, ApiError> {
    let me = caller.me()?;
    let dir = emu.directory.read();
    let primary_of = |addr: &str| {
        dir.find_subject(addr)
            .map(|s| s.primary_email.to_ascii_lowercase())
            .unwrap_or_else(|| addr.trim().to_ascii_lowercase())
    };
    let mine = primary_of(me);
    if calendar_id == "primary" || primary_of(calendar_id) == mine {
        Ok(mine)
    } else {
        Err(not_found())
    }
}

fn cal_tz(st: &CalendarState, key: &str) -> Tz {
    st.calendars
        .get(key)
        .and_then(|c| c.time_zone.as_deref())
        .and_then(|z| z.parse().ok())
        .unwrap_or(Tz::UTC)
}

fn encode_token(prefix: &str, n: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{prefix}{n}"))
}

fn decode_token(prefix: &str, t: &str) -> Option<u64> {
    let s = String::from_utf8(URL_SAFE_NO_PAD.decode(t).ok()?).ok()?;
    s.strip_prefix(prefix)?.parse().ok()
}

// ---------------------------------------------------------------------------------
// Handlers

async fn events_list(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(calendar_id): Path<String>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require(&caller, READ)?;
    let key = calendar_of(&emu, &caller, &calendar_id)?;
    let single = params.bool("singleEvents")?.unwrap_or(false);
    let order = params.one_of("orderBy", &["startTime", "updated"])?;
    if order == Some("startTime") && !single {
        return Err(cal_error(
            StatusCode::BAD_REQUEST,
            "badRequest",
            "The requested ordering is not available for the particular query.",
        ));
    }
    let max = params
        .int_in("maxResults", DEFAULT_PAGE, 1, i64::MAX)?
        .min(MAX_PAGE) as usize;
    let time_min = parse_bound(&params, "timeMin")?;
    let time_max = parse_bound(&params, "timeMax")?;
    if let (Some(a), Some(b)) = (time_min, time_max)
        && b <= a
    {
        return Err(cal_error(
            StatusCode::BAD_REQUEST,
            "timeRangeEmpty",
            "The specified time range is empty.",
        ));
    }
    let render_tz = params
        .get_nonempty("timeZone")
        .map(|z| parse_tz(z, "the timeZone parameter"))
        .transpose()?;
    let show_deleted = params.bool("showDeleted")?.unwrap_or(false);
    let q = params.get_nonempty("q").map(str::to_string);
    let ical = params.get_nonempty("iCalUID").map(str::to_string);
    let updated_min = parse_bound(&params, "updatedMin")?;
    let event_types = params.all("eventTypes");
    let sync = params.get_nonempty("syncToken");
    if sync.is_some() {
        for p in [
            "iCalUID",
            "orderBy",
            "privateExtendedProperty",
            "q",
            "sharedExtendedProperty",
            "timeMin",
            "timeMax",
            "updatedMin",
        ] {
            if params.get_nonempty(p).is_some() {
                return Err(bad(format!("syncToken cannot be combined with {p}.")));
            }
        }
        if params.bool("showDeleted")? == Some(false) {
            return Err(bad("showDeleted=false cannot be combined with syncToken."));
        }
    }
    let offset = match params.get_nonempty("pageToken") {
        None => 0,
        Some(t) => decode_token("p", t)
            .ok_or_else(|| bad("Invalid pageToken").with_location("parameter", "pageToken"))?
            as usize,
    };

    let st = emu.calendar.read();
    let cal = st.calendars.get(&key);
    let since = match sync {
        None => None,
        Some(t) => {
            let seq = decode_token("s", t)
                .ok_or_else(|| bad("Invalid syncToken").with_location("parameter", "syncToken"))?;
            if seq < cal.map(|c| c.sync_floor).unwrap_or(0) || seq > st.seq {
                return Err(cal_error(
                    StatusCode::GONE,
                    "fullSyncRequired",
                    "Sync token is no longer valid, a full sync is required.",
                ));
            }
            Some(seq)
        }
    };
    let ctx = Ctx {
        cal_tz: cal_tz(&st, &key),
        render_tz,
        time_min,
        time_max,
        now: emu.clock.now(),
    };
    let mut items: Vec<Item> = Vec::new();
    for ev in cal.map(|c| c.events.values()).into_iter().flatten() {
        if let Some(seq) = since
            && ev.updated_seq <= seq
        {
            continue;
        }
        let r = Value::Object(ev.resource.clone());
        if ical
            .as_deref()
            .is_some_and(|i| r.get("iCalUID").and_then(Value::as_str) != Some(i))
        {
            continue;
        }
        if let Some(m) = updated_min
            && r.get("updated")
                .and_then(Value::as_str)
                .and_then(|u| DateTime::parse_from_rfc3339(u).ok())
                .is_some_and(|u| u.with_timezone(&Utc) < m)
        {
            continue;
        }
        if !event_types.is_empty() {
            let t = r
                .get("eventType")
                .and_then(Value::as_str)
                .unwrap_or("default");
            if !event_types.iter().any(|x| x == t) {
                continue;
            }
        }
        if q.as_deref().is_some_and(|q| !matches_q(&r, q)) {
            continue;
        }
        let updated = r
            .get("updated")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if ev.deleted {
            if show_deleted || since.is_some() {
                items.push(Item {
                    start: DateTime::<Utc>::MIN_UTC,
                    end: DateTime::<Utc>::MIN_UTC,
                    created_seq: ev.created_seq,
                    updated,
                    json: tombstone(ev),
                });
            }
            continue;
        }
        let recurring = r
            .get("recurrence")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if recurring && single {
            items.extend(instances(&ctx, ev));
        } else if recurring {
            let any = instances(&ctx, ev);
            if let (Some(first), Some((json, _, _))) = (any.first(), render_single(&ctx, ev)) {
                items.push(Item {
                    start: first.start,
                    end: first.end,
                    created_seq: ev.created_seq,
                    updated,
                    json,
                });
            }
        } else if let Some((json, s, e)) = render_single(&ctx, ev)
            && (since.is_some() || overlaps(&ctx, s, e))
        {
            items.push(Item {
                start: s,
                end: e,
                created_seq: ev.created_seq,
                updated,
                json,
            });
        }
    }
    match order {
        Some("startTime") => items.sort_by(|a, b| {
            (a.start, a.end, a.json["id"].as_str()).cmp(&(b.start, b.end, b.json["id"].as_str()))
        }),
        Some(_) => items.sort_by(|a, b| {
            (&a.updated, a.json["id"].as_str()).cmp(&(&b.updated, b.json["id"].as_str()))
        }),
        None => items.sort_by_key(|i| (i.created_seq, i.start)),
    }
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(offset)
        .take(max)
        .map(|i| i.json)
        .collect();
    let mut out = json!({
        "kind": "calendar#events",
        "etag": format!("\"{}\"", st.seq),
        "summary": key,
        "description": "",
        "updated": stamp(ctx.now),
        "timeZone": ctx.cal_tz.name(),
        "accessRole": "owner",
        "defaultReminders": [{"method": "popup", "minutes": 10}],
        "items": page,
    });
    if offset + max < total {
        out["nextPageToken"] = json!(encode_token("p", (offset + max) as u64));
    } else {
        out["nextSyncToken"] = json!(encode_token("s", st.seq));
    }
    Ok(Json(out))
}

fn valid_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='v').contains(&c))
}

fn new_event_id() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuv";
    let mut rng = rand::rng();
    (0..26)
        .map(|_| ALPHABET[rng.random_range(0..32)] as char)
        .collect()
}

async fn events_insert(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path(calendar_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    require(&caller, WRITE)?;
    let key = calendar_of(&emu, &caller, &calendar_id)?;
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| bad(format!("Invalid JSON payload received. {e}")))?
    };
    let Value::Object(mut r) = v else {
        return Err(bad("Invalid JSON payload received. Expected an object."));
    };
    let start = parse_when(r.get("start"), "start")?;
    let end = parse_when(r.get("end"), "end")?;
    let range_empty = || {
        cal_error(
            StatusCode::BAD_REQUEST,
            "timeRangeEmpty",
            "The specified time range is empty.",
        )
    };
    match (&start, &end) {
        (When::Date(s), When::Date(e)) => {
            if e <= s {
                return Err(range_empty());
            }
        }
        (When::Timed { instant: s, .. }, When::Timed { instant: e, .. }) => {
            if e < s {
                return Err(range_empty());
            }
        }
        _ => {
            return Err(bad(
                "Start and end must both be dates (all-day) or both be dateTimes.",
            ));
        }
    }
    let lines: Vec<String> = match r.get("recurrence") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|l| {
                l.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("recurrence[] must hold strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("recurrence must be an array of strings")),
    };
    let rec =
        Recurrence::parse(&lines).map_err(|e| bad(format!("Invalid recurrence rule. {e}")))?;
    if rec.is_recurring()
        && let When::Timed { tz: None, .. } = start
    {
        return Err(bad("Missing time zone definition for start time."));
    }
    let id = match r.get("id").and_then(Value::as_str) {
        Some(id) if !valid_event_id(id) => {
            return Err(bad(
                "Invalid resource id value. Event ids use the characters a-v and 0-9 and are 5 to 1024 long.",
            ));
        }
        Some(id) => id.to_string(),
        None => new_event_id(),
    };
    let now = emu.clock.now();
    let mut st = emu.calendar.write();
    if st
        .calendars
        .get(&key)
        .is_some_and(|c| c.events.contains_key(&id))
    {
        return Err(cal_error(
            StatusCode::CONFLICT,
            "duplicate",
            "The requested identifier already exists.",
        ));
    }
    st.seq += 1;
    let seq = st.seq;
    let person = json!({"email": key, "self": true});
    r.insert("kind".into(), json!("calendar#event"));
    r.insert(
        "etag".into(),
        json!(format!(
            "\"{}\"",
            now.timestamp_micros() * 10 + (seq % 10) as i64
        )),
    );
    r.insert("id".into(), json!(id));
    let status = match r.get("status").and_then(Value::as_str) {
        Some("tentative") => "tentative",
        _ => "confirmed",
    };
    r.insert("status".into(), json!(status));
    r.insert(
        "htmlLink".into(),
        json!(format!(
            "https://www.google.com/calendar/event?eid={}",
            STANDARD.encode(format!("{id} {key}")).trim_end_matches('=')
        )),
    );
    r.insert("created".into(), json!(stamp(now)));
    r.insert("updated".into(), json!(stamp(now)));
    r.insert("creator".into(), person.clone());
    r.insert("organizer".into(), person);
    if !r.contains_key("iCalUID") {
        r.insert("iCalUID".into(), json!(format!("{id}@google.com")));
    }
    if !r.contains_key("sequence") {
        r.insert("sequence".into(), json!(0));
    }
    if !r.contains_key("reminders") {
        r.insert("reminders".into(), json!({"useDefault": true}));
    }
    if !r.contains_key("eventType") {
        r.insert("eventType".into(), json!("default"));
    }
    if lines.is_empty() {
        r.remove("recurrence");
    }
    let ev = StoredEvent {
        created_seq: seq,
        updated_seq: seq,
        deleted: false,
        cancelled_instances: Vec::new(),
        resource: r,
    };
    let ctx = Ctx {
        cal_tz: cal_tz(&st, &key),
        render_tz: None,
        time_min: None,
        time_max: None,
        now,
    };
    let out = render_single(&ctx, &ev)
        .map(|(j, _, _)| j)
        .unwrap_or_else(|| Value::Object(ev.resource.clone()));
    st.calendars.entry(key).or_default().events.insert(id, ev);
    Ok(Json(out))
}

/// `(parent id, instance id)` when `event_id` names an instance of a stored event.
fn split_instance<'a>(cal: &UserCalendar, event_id: &'a str) -> Option<(&'a str, &'a str)> {
    let (parent, _) = event_id.rsplit_once('_')?;
    cal.events
        .contains_key(parent)
        .then_some((parent, event_id))
}

/// The instance `instance_id` of `ev`, if the rule produces it.
fn find_instance(ctx: &Ctx, ev: &StoredEvent, instance_id: &str) -> Option<Value> {
    let (_, stamp) = instance_id.rsplit_once('_')?;
    let at = if let Ok(t) = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ") {
        t.and_utc()
    } else {
        midnight(ctx.cal_tz, NaiveDate::parse_from_str(stamp, "%Y%m%d").ok()?)
    };
    let window = Ctx {
        cal_tz: ctx.cal_tz,
        render_tz: ctx.render_tz,
        time_min: Some(at - Duration::days(1)),
        time_max: Some(at + Duration::days(2)),
        now: ctx.now,
    };
    instances(&window, ev)
        .into_iter()
        .find(|i| i.json["id"] == instance_id)
        .map(|i| i.json)
}

async fn events_get(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path((calendar_id, event_id)): Path<(String, String)>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    require(&caller, READ)?;
    let key = calendar_of(&emu, &caller, &calendar_id)?;
    let render_tz = params
        .get_nonempty("timeZone")
        .map(|z| parse_tz(z, "the timeZone parameter"))
        .transpose()?;
    let st = emu.calendar.read();
    let cal = st.calendars.get(&key).ok_or_else(not_found)?;
    let ctx = Ctx {
        cal_tz: cal_tz(&st, &key),
        render_tz,
        time_min: None,
        time_max: None,
        now: emu.clock.now(),
    };
    if let Some(ev) = cal.events.get(&event_id) {
        if ev.deleted {
            return Ok(Json(tombstone(ev)));
        }
        return render_single(&ctx, ev)
            .map(|(j, _, _)| Json(j))
            .ok_or_else(not_found);
    }
    let (parent, iid) = split_instance(cal, &event_id).ok_or_else(not_found)?;
    let ev = &cal.events[parent];
    if ev.deleted || ev.cancelled_instances.iter().any(|c| c == iid) {
        return Ok(Json(
            json!({"kind": "calendar#event", "id": iid, "status": "cancelled", "recurringEventId": parent}),
        ));
    }
    find_instance(&ctx, ev, iid).map(Json).ok_or_else(not_found)
}

async fn events_delete(
    State(emu): State<Arc<Emulator>>,
    caller: Caller,
    Path((calendar_id, event_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require(&caller, WRITE)?;
    let key = calendar_of(&emu, &caller, &calendar_id)?;
    let now = emu.clock.now();
    let mut st = emu.calendar.write();
    st.seq += 1;
    let seq = st.seq;
    let tz = cal_tz(&st, &key);
    let cal = st.calendars.get_mut(&key).ok_or_else(not_found)?;
    let gone = || cal_error(StatusCode::GONE, "deleted", "Resource has been deleted");
    if let Some(ev) = cal.events.get_mut(&event_id) {
        if ev.deleted {
            return Err(gone());
        }
        ev.deleted = true;
        ev.updated_seq = seq;
        ev.resource.insert("status".into(), json!("cancelled"));
        ev.resource.insert("updated".into(), json!(stamp(now)));
        return Ok(StatusCode::NO_CONTENT);
    }
    let parent = split_instance(cal, &event_id)
        .map(|(p, _)| p.to_string())
        .ok_or_else(not_found)?;
    let ctx = Ctx {
        cal_tz: tz,
        render_tz: None,
        time_min: None,
        time_max: None,
        now,
    };
    let ev = cal.events.get_mut(&parent).ok_or_else(not_found)?;
    if ev.deleted || ev.cancelled_instances.contains(&event_id) {
        return Err(gone());
    }
    if find_instance(&ctx, ev, &event_id).is_none() {
        return Err(not_found());
    }
    ev.cancelled_instances.push(event_id);
    ev.updated_seq = seq;
    ev.resource.insert("updated".into(), json!(stamp(now)));
    Ok(StatusCode::NO_CONTENT)
}

pub fn routes() -> Router<Arc<Emulator>> {
    // Mounted under the service path and at the root: google-api-python-client drops
    // `calendar/v3/` when `api_endpoint` is set to the bare host (google-api-python-client
    // joins the discovery document's `servicePath` to it).
    let mut r = Router::new();
    for base in ["/calendar/v3", ""] {
        r = r
            .route(
                &format!("{base}/calendars/{{calendarId}}/events"),
                get(events_list).post(events_insert),
            )
            .route(
                &format!("{base}/calendars/{{calendarId}}/events/{{eventId}}"),
                get(events_get).delete(events_delete),
            );
    }
    r
}
