//! Calendar API v3: `events.list`
//! (<https://developers.google.com/workspace/calendar/api/v3/reference/events/list>).
//!
//! Base `https://www.googleapis.com/calendar/v3/`; path `calendars/{calendarId}/events`.
//! An all-day event has `start.date`/`end.date` (end exclusive); a timed one has
//! `dateTime` (RFC 3339) and maybe `timeZone`. Unknown fields are kept in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest `maxResults` for `events.list`.
pub const EVENTS_MAX_PAGE: u32 = 2500;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// `confirmed`, `tentative` or `cancelled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(default, rename = "iCalUID", skip_serializing_if = "Option::is_none")]
    pub ical_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<EventDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<EventDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time_unspecified: Option<bool>,
    /// RRULE/EXRULE/RDATE/EXDATE lines (parent recurring events only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recurrence: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurring_event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_start_time: Option<EventDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<EventPerson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<EventPerson>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attendees: Vec<EventAttendee>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hangout_link: Option<String>,
    /// reminders, extendedProperties, conferenceData, ... kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Event {
    pub fn is_all_day(&self) -> bool {
        self.start.as_ref().is_some_and(|s| s.date.is_some())
    }

    pub fn is_cancelled(&self) -> bool {
        self.status.as_deref() == Some("cancelled")
    }
}

/// `{date}` (all-day, `YYYY-MM-DD`) or `{dateTime, timeZone}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDateTime {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// Organizer or creator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventPerson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, rename = "self", skip_serializing_if = "Option::is_none")]
    pub is_self: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventAttendee {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<bool>,
    #[serde(default, rename = "self", skip_serializing_if = "Option::is_none")]
    pub is_self: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    /// `needsAction`, `declined`, `tentative`, `accepted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_guests: Option<i64>,
}

/// `events.list` response. A page may be empty while `nextPageToken` is present;
/// `nextSyncToken` only on the last page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Events {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_role: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_reminders: Vec<Value>,
    #[serde(default)]
    pub items: Vec<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_day_and_timed_events() {
        let e: Events = serde_json::from_str(
            r#"{"kind":"calendar#events","items":[
              {"id":"a","status":"confirmed","summary":"Holiday","start":{"date":"2026-05-01"},"end":{"date":"2026-05-02"}},
              {"id":"b_20260501T090000Z","recurringEventId":"b","start":{"dateTime":"2026-05-01T09:00:00Z","timeZone":"UTC"},
               "end":{"dateTime":"2026-05-01T10:00:00Z"},"originalStartTime":{"dateTime":"2026-05-01T09:00:00Z"},
               "organizer":{"email":"o@x","self":true},"attendees":[{"email":"a@x","responseStatus":"accepted"}],
               "reminders":{"useDefault":true}}],
              "nextSyncToken":"s1"}"#,
        )
        .unwrap();
        assert!(e.items[0].is_all_day());
        assert!(!e.items[1].is_all_day());
        assert_eq!(e.items[1].organizer.as_ref().unwrap().is_self, Some(true));
        assert!(e.items[1].extra.contains_key("reminders"));
        assert_eq!(e.next_sync_token.as_deref(), Some("s1"));
    }
}
