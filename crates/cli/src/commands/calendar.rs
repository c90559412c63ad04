//! `orgsync calendar agenda`: upcoming events through the Calendar API.
//!
//! The agenda query is Google's: `singleEvents=true` (recurring events expanded into
//! instances), `orderBy=startTime`, `timeMin=now` (events still running count: it bounds
//! the *end*), `timeMax` = the window's end, every page followed (a page can be empty
//! while a next page exists). Times are shown in the local time zone (`--tz` to choose
//! another); all-day events are dates, not instants, so they are never shifted.

use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use clap::Args;
use clap::Subcommand;
use futures::TryStreamExt;
use orgsync_client::calendar::EventsListParams;
use orgsync_jobs::auth;
use orgsync_wire::calendar::{Event, EventDateTime};
use serde::Serialize;

use crate::cli::Global;
use crate::commands::common::{load_config, print_json};
use crate::exit::{CodedError, Exit};

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Upcoming events, recurring ones expanded, in start order.
    Agenda(AgendaArgs),
}

#[derive(Debug, Args)]
pub struct AgendaArgs {
    /// Read this user's calendar through the service account (domain-wide delegation)
    /// instead of the logged-in person's.
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// Calendar id (default: the user's primary calendar).
    #[arg(long, default_value = "primary")]
    pub calendar: String,
    /// How many days ahead to look (1 to 36600, about a century).
    #[arg(long, default_value_t = 7, conflicts_with = "until",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
    pub days: u32,
    /// Look ahead up to and including this date (YYYY-MM-DD) or instant (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Show at most this many events.
    #[arg(long)]
    pub max: Option<usize>,
    /// Show times in this IANA time zone (e.g. Europe/Athens) instead of the local one.
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Token file of the logged-in person.
    #[arg(long, env = "ORGSYNC_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the events as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(global: &Global, cmd: CalendarCommand) -> anyhow::Result<Exit> {
    let config = load_config(global)?;
    let CalendarCommand::Agenda(args) = cmd;
    let zone = Zone::parse(args.tz.as_deref())?;
    let now = Utc::now();
    let until = match &args.until {
        Some(s) => parse_until(s, &zone)?,
        None => now + Duration::days(i64::from(args.days)),
    };
    check_window(now, until, args.until.as_deref())?;
    let (client, subject) = match &args.user {
        Some(user) => (
            auth::delegated_client(&config).map_err(config_error)?,
            Some(user.clone()),
        ),
        None => {
            let path =
                auth::token_file(&config, args.token_file.as_deref()).map_err(login_error)?;
            let login = auth::load_login(&path).map_err(login_error)?;
            (auth::personal_client(&config, &login), None)
        }
    };
    let params = EventsListParams {
        single_events: true,
        order_by: Some("startTime".into()),
        time_min: Some(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        time_max: Some(until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        max_results: args.max.map(|m| m.clamp(1, 2500) as u32),
        ..Default::default()
    };
    let stream = client
        .calendar(subject.as_deref())
        .events_list(&args.calendar, params);
    let mut stream = std::pin::pin!(stream);
    let mut rows = Vec::new();
    let limit = args.max.unwrap_or(usize::MAX);
    while rows.len() < limit {
        let next = stream.try_next().await.map_err(|e| {
            CodedError::new(
                crate::exit::for_google_error(&e),
                format!("cannot list events: {e}"),
            )
        })?;
        let Some(event) = next else { break };
        if event.is_cancelled() {
            continue;
        }
        rows.push(Row::from_event(&event, &zone));
    }

    if args.json {
        print_json(&rows)?;
    } else if rows.is_empty() {
        println!(
            "no events until {}",
            zone.format(until, "%a %Y-%m-%d %H:%M %Z")
        );
    } else {
        print_table(&rows);
    }
    Ok(Exit::Ok)
}

/// Where times are shown.
enum Zone {
    Local,
    Named(chrono_tz::Tz),
}

impl Zone {
    fn parse(name: Option<&str>) -> anyhow::Result<Zone> {
        match name {
            None => Ok(Zone::Local),
            Some(n) => n.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
                usage(&format!(
                    "--tz {n:?} is not an IANA time zone name (e.g. Europe/Athens, America/New_York, UTC)"
                ))
            }),
        }
    }

    fn format(&self, t: DateTime<Utc>, fmt: &str) -> String {
        match self {
            Zone::Local => t.with_timezone(&chrono::Local).format(fmt).to_string(),
            Zone::Named(tz) => t.with_timezone(tz).format(fmt).to_string(),
        }
    }

    fn date_of(&self, t: DateTime<Utc>) -> NaiveDate {
        match self {
            Zone::Local => t.with_timezone(&chrono::Local).date_naive(),
            Zone::Named(tz) => t.with_timezone(tz).date_naive(),
        }
    }

    /// Midnight starting `date` in this zone.
    fn start_of(&self, date: NaiveDate) -> Option<DateTime<Utc>> {
        let naive = date.and_time(NaiveTime::MIN);
        match self {
            Zone::Local => chrono::Local
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
            Zone::Named(tz) => tz
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

/// The longest agenda window: about a century. A wider one is a typo, and far enough out
/// a date leaves the years RFC 3339 can write (0000-9999) or overflows the clock.
const MAX_DAYS: u32 = 36_600;

/// The window must end in the future and at most [`MAX_DAYS`] from now.
fn check_window(
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    until_arg: Option<&str>,
) -> anyhow::Result<()> {
    let shown = until_arg.unwrap_or_default();
    if until <= now {
        return Err(usage(&format!("--until {shown} is not in the future")));
    }
    if until - now > Duration::days(i64::from(MAX_DAYS)) {
        return Err(usage(&format!(
            "--until {shown} is more than {MAX_DAYS} days (about a century) ahead: give a \
             nearer date"
        )));
    }
    Ok(())
}

/// `YYYY-MM-DD` (through the end of that day in the display zone) or RFC 3339.
fn parse_until(s: &str, zone: &Zone) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        usage(&format!(
            "--until {s:?}: expected a date (2026-12-24) or an RFC 3339 time (2026-12-24T18:00:00+02:00)"
        ))
    })?;
    let next = date
        .succ_opt()
        .and_then(|d| zone.start_of(d))
        .ok_or_else(|| usage(&format!("--until {s:?} is out of range")))?;
    Ok(next)
}

fn config_error(e: orgsync_jobs::config::ConfigError) -> anyhow::Error {
    CodedError::new(Exit::Config, e.to_string()).into()
}

fn login_error(e: auth::LoginError) -> anyhow::Error {
    CodedError::new(crate::exit::for_error(&e), e.to_string()).into()
}

fn usage(message: &str) -> anyhow::Error {
    CodedError::new(Exit::Config, message.to_string()).into()
}

/// One agenda line (also the `--json` shape).
#[derive(Debug, Serialize)]
struct Row {
    id: Option<String>,
    summary: String,
    all_day: bool,
    /// As the API gave it: `date` for all-day events, `dateTime` otherwise.
    start: Option<String>,
    end: Option<String>,
    /// Start and end in the display zone (`YYYY-MM-DD HH:MM` or a date).
    start_local: String,
    end_local: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recurring_event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    /// Table columns.
    #[serde(skip)]
    day: String,
    #[serde(skip)]
    time: String,
}

fn raw(t: &Option<EventDateTime>) -> Option<String> {
    let t = t.as_ref()?;
    t.date_time.clone().or_else(|| t.date.clone())
}

fn instant(t: &Option<EventDateTime>) -> Option<DateTime<Utc>> {
    let s = t.as_ref()?.date_time.as_deref()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn date(t: &Option<EventDateTime>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(t.as_ref()?.date.as_deref()?, "%Y-%m-%d").ok()
}

impl Row {
    fn from_event(e: &Event, zone: &Zone) -> Row {
        let all_day = e.start.as_ref().is_some_and(|s| s.date.is_some());
        let (day, time, start_local, end_local) = if all_day {
            let start = date(&e.start);
            // An all-day `end.date` is exclusive.
            let last = date(&e.end)
                .and_then(|d| d.pred_opt())
                .filter(|l| Some(*l) >= start)
                .or(start);
            let days = match (start, last) {
                (Some(s), Some(l)) => (l - s).num_days() + 1,
                _ => 1,
            };
            let fmt = |d: Option<NaiveDate>| {
                d.map(|d| d.format("%Y-%m-%d").to_string())
                    .unwrap_or_else(|| "?".into())
            };
            (
                start
                    .map(|d| d.format("%a %Y-%m-%d").to_string())
                    .unwrap_or_else(|| "?".into()),
                if days > 1 {
                    format!("all day ({days} days, to {})", fmt(last))
                } else {
                    "all day".into()
                },
                fmt(start),
                fmt(last),
            )
        } else {
            let (s, en) = (instant(&e.start), instant(&e.end));
            let time = match (s, en) {
                (Some(s), Some(en)) if zone.date_of(s) == zone.date_of(en) => {
                    format!("{}–{}", zone.format(s, "%H:%M"), zone.format(en, "%H:%M"))
                }
                (Some(s), Some(en)) => format!(
                    "{}–{}",
                    zone.format(s, "%H:%M"),
                    zone.format(en, "%a %Y-%m-%d %H:%M")
                ),
                (Some(s), None) => zone.format(s, "%H:%M"),
                _ => "?".into(),
            };
            let fmt = |t: Option<DateTime<Utc>>| {
                t.map(|t| zone.format(t, "%Y-%m-%d %H:%M"))
                    .unwrap_or_else(|| "?".into())
            };
            (
                s.map(|s| zone.format(s, "%a %Y-%m-%d"))
                    .unwrap_or_else(|| "?".into()),
                time,
                fmt(s),
                fmt(en),
            )
        };
        Row {
            id: e.id.clone(),
            summary: e.summary.clone().unwrap_or_else(|| "(no title)".into()),
            all_day,
            start: raw(&e.start),
            end: raw(&e.end),
            start_local,
            end_local,
            location: e.location.clone(),
            recurring_event_id: e.recurring_event_id.clone(),
            status: e.status.clone(),
            day,
            time,
        }
    }
}

fn print_table(rows: &[Row]) {
    let w_day = rows
        .iter()
        .map(|r| r.day.chars().count())
        .max()
        .unwrap_or(0);
    let w_time = rows
        .iter()
        .map(|r| r.time.chars().count())
        .max()
        .unwrap_or(0);
    let mut last_day = String::new();
    for r in rows {
        // The date once per day, like a paper agenda.
        let day = if r.day == last_day {
            ""
        } else {
            r.day.as_str()
        };
        last_day = r.day.clone();
        let mut line = format!(
            "{day:<w_day$}  {time:<w_time$}  {summary}",
            time = r.time,
            summary = r.summary
        );
        if r.recurring_event_id.is_some() {
            line.push_str("  ↻");
        }
        if let Some(loc) = &r.location {
            line.push_str(&format!("  @ {loc}"));
        }
        println!("{}", line.trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agenda_window_past_a_century_is_refused_before_any_call() {
        let now = Utc::now();
        let zone = Zone::Named(chrono_tz::UTC);
        let far = parse_until("9999-12-31", &zone).unwrap();
        let err = check_window(now, far, Some("9999-12-31")).unwrap_err();
        assert!(err.to_string().contains("about a century"), "{err}");
        let code = err.downcast_ref::<CodedError>().map(|c| c.code);
        assert_eq!(code, Some(Exit::Config));
        let ok = now + Duration::days(i64::from(MAX_DAYS));
        assert!(check_window(now, ok, None).is_ok());
        assert!(check_window(now, now, None).is_err());
    }

    #[test]
    fn days_flag_is_bounded_by_clap_not_by_an_overflow() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            a: AgendaArgs,
        }
        for bad in ["0", "36601", "3000000", "99999999"] {
            assert!(
                T::try_parse_from(["t", "--days", bad]).is_err(),
                "--days {bad}"
            );
        }
        let t = T::try_parse_from(["t", "--days", "36600"]).unwrap();
        assert_eq!(t.a.days, 36_600);
    }

    fn event(json: serde_json::Value) -> Event {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn timed_events_are_shown_in_the_display_zone() {
        let zone = Zone::parse(Some("Europe/Athens")).unwrap();
        let e = event(serde_json::json!({
            "id": "a", "summary": "Standup",
            "start": {"dateTime": "2026-11-23T09:00:00-05:00", "timeZone": "America/New_York"},
            "end": {"dateTime": "2026-11-23T09:30:00-05:00"},
            "recurringEventId": "r"
        }));
        let r = Row::from_event(&e, &zone);
        assert!(!r.all_day);
        assert_eq!(r.day, "Mon 2026-11-23");
        assert_eq!(r.time, "16:00–16:30");
        assert_eq!(r.start_local, "2026-11-23 16:00");
    }

    #[test]
    fn all_day_events_keep_their_dates() {
        let zone = Zone::parse(Some("Pacific/Auckland")).unwrap();
        let e = event(serde_json::json!({
            "summary": "Offsite",
            "start": {"date": "2026-11-24"}, "end": {"date": "2026-11-27"}
        }));
        let r = Row::from_event(&e, &zone);
        assert!(r.all_day);
        assert_eq!(r.day, "Tue 2026-11-24");
        assert_eq!(r.time, "all day (3 days, to 2026-11-26)");
        let one = event(serde_json::json!({
            "start": {"date": "2026-11-24"}, "end": {"date": "2026-11-25"}
        }));
        let r = Row::from_event(&one, &zone);
        assert_eq!(
            (r.time.as_str(), r.summary.as_str()),
            ("all day", "(no title)")
        );
    }

    #[test]
    fn until_date_is_inclusive_in_the_zone() {
        let zone = Zone::parse(Some("Europe/Athens")).unwrap();
        let t = parse_until("2026-12-24", &zone).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-24T22:00:00+00:00");
        assert!(parse_until("tomorrow", &zone).is_err());
        assert!(Zone::parse(Some("Mars/Olympus")).is_err());
    }
}
