//! Calendar v3: `events.list`. With domain-wide delegation `quotaUser` is set to the
//! impersonated user so the per-user quota is charged to them, not to the service account
//! (<https://developers.google.com/workspace/calendar/api/guides/quota>).

use futures::Stream;
use orgsync_wire::calendar::{EVENTS_MAX_PAGE, Event, Events};
use reqwest::Method;

use crate::error::Error;
use crate::paging::{items, pages};
use crate::transport::{Call, GoogleClient, Lane, encode_segment};

/// `events.list` parameters. An agenda is `single_events` + `order_by=startTime` +
/// `time_min`/`time_max` (RFC 3339 with offset).
#[derive(Debug, Clone, Default)]
pub struct EventsListParams {
    pub single_events: bool,
    /// `startTime` (only with `single_events`) or `updated`.
    pub order_by: Option<String>,
    pub time_min: Option<String>,
    pub time_max: Option<String>,
    pub time_zone: Option<String>,
    pub show_deleted: bool,
    pub q: Option<String>,
    pub updated_min: Option<String>,
    pub sync_token: Option<String>,
    /// 1–2500; defaults to 2500.
    pub max_results: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Calendar {
    client: GoogleClient,
    subject: Option<String>,
}

impl GoogleClient {
    pub fn calendar(&self, subject: Option<&str>) -> Calendar {
        Calendar {
            client: self.clone(),
            subject: subject.map(str::to_string),
        }
    }
}

impl Calendar {
    /// `calendar.events.list` pages. Empty pages with a token keep going; the last page
    /// has `nextSyncToken`. An expired sync token fails with `SyncTokenExpired` (410).
    pub fn events_pages(
        &self,
        calendar_id: &str,
        params: EventsListParams,
    ) -> impl Stream<Item = Result<Events, Error>> + Send + 'static {
        let subject = self.subject.clone();
        let path = format!("calendars/{}/events", encode_segment(calendar_id));
        let max = params
            .max_results
            .unwrap_or(EVENTS_MAX_PAGE)
            .clamp(1, EVENTS_MAX_PAGE);
        pages(self.client.clone(), move |token| {
            let mut call = Call::new(
                "calendar.events.list",
                Lane::Calendar,
                Method::GET,
                path.clone(),
            )
            .subject(subject.as_deref())
            .query("maxResults", max.to_string())
            .query_opt("orderBy", params.order_by.clone())
            .query_opt("timeMin", params.time_min.clone())
            .query_opt("timeMax", params.time_max.clone())
            .query_opt("timeZone", params.time_zone.clone())
            .query_opt("q", params.q.clone())
            .query_opt("updatedMin", params.updated_min.clone())
            .query_opt("syncToken", params.sync_token.clone())
            .query_opt("pageToken", token);
            if params.single_events {
                call = call.query("singleEvents", "true");
            }
            if params.show_deleted {
                call = call.query("showDeleted", "true");
            }
            call
        })
    }

    pub fn events_list(
        &self,
        calendar_id: &str,
        params: EventsListParams,
    ) -> impl Stream<Item = Result<Event, Error>> + Send + 'static {
        items(self.events_pages(calendar_id, params))
    }
}
