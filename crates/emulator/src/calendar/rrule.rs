//! RFC 5545 recurrence, the subset Calendar clients send: `RRULE` with `FREQ`
//! (DAILY, WEEKLY, MONTHLY, YEARLY), `INTERVAL`, `COUNT`, `UNTIL`, `BYDAY` (weekdays for
//! WEEKLY; `2TU`/`-1FR` style for MONTHLY), `BYMONTHDAY` (one day, MONTHLY), `WKST`;
//! plus `EXDATE` lines. Anything else is refused with a message naming it, so a test
//! never silently gets a different expansion than Google's.
//!
//! Expansion runs on *local wall time* in the event's time zone and only then turns
//! each occurrence into an instant: a weekly 10:00 Europe/Berlin meeting stays at 10:00
//! across the DST change (09:00Z in winter, 08:00Z in summer), as in Google Calendar.
//! A local time that falls into a DST gap moves forward by the gap; an ambiguous one
//! takes the first (summer-time) instant (RFC 5545 §3.3.5, applied to recurrence
//! instances by §3.3.10).
//!
//! The calendar arithmetic (which days a `FREQ`/`INTERVAL`/`BYDAY`/`BYMONTHDAY`/`WKST`
//! pattern selects) is the `rrule` crate's. This module keeps what the crate does not do
//! the way Google and RFC 5545 need, and says why at each place:
//! - parsing: the rule is parsed here, strictly, and handed to the crate through its
//!   builder. The crate's own parser reads `BYDAY=XMO` or `0MO` as every Monday and
//!   panics on some non-ASCII `BYDAY` values; the emulator must answer 400 instead.
//! - time zones: the crate runs on floating time (UTC as a stand-in for the wall clock)
//!   and [`localize`] places each occurrence. Given a real zone, the crate drops an
//!   occurrence whose time *and* local midnight fall in a DST gap or overlap (a daily
//!   00:30 in America/Havana), where RFC 5545 §3.3.5 shifts or picks the first.
//! - `UNTIL` and `COUNT`: applied here. The crate accepts only a UTC `UNTIL` with a zoned
//!   start and reads a floating one in the host's zone, while Google writes
//!   `UNTIL=20260401` for all-day series; `COUNT` counts the whole rule, which may be
//!   two crate patterns (below).
//! - `EXDATE`: matched here, as a wall time, an instant (`…Z`) or a whole date.
//! - `BYDAY=-5FR` in a MONTHLY rule: RFC 5545 §3.3.10 allows it (`ordwk` is 1 to 53),
//!   the crate refuses ordinals below -4 for MONTHLY. The fifth-last Friday of a month
//!   is its first Friday when it has five, i.e. a Friday on a day no later than
//!   month length - 28: `BYDAY=FR;BYMONTHDAY=-29,-30,-31`, expanded as a second pattern.
//!
//! Nothing runs unbounded: sub-daily `FREQ`s are refused, [`expand`] stops at the
//! caller's `stop` instant and `max` count, and the crate's `limit()` ends a rule that
//! never matches again.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use rrule::{Frequency, NWeekday, RRule, RRuleSet, Unvalidated};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// `UNTIL=20260401` (all-day events, or a floating date).
    Date(NaiveDate),
    /// `UNTIL=20260401T000000Z`.
    Instant(DateTime<Utc>),
    /// `UNTIL=20260401T100000` (local time in the event's zone).
    Local(NaiveDateTime),
}

/// One parsed `RRULE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Day patterns for the `rrule` crate, without COUNT and UNTIL; the rule's
    /// occurrences are their union (more than one only for `-5XX`, see the module doc).
    patterns: Vec<RRule<Unvalidated>>,
    count: Option<u32>,
    until: Option<Until>,
}

/// The parsed `recurrence[]` of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recurrence {
    pub rules: Vec<Rule>,
    /// Excluded occurrences, as local wall times (dates for all-day events at 00:00).
    pub exdates: Vec<ExDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExDate {
    Local(NaiveDateTime),
    Instant(DateTime<Utc>),
    Date(NaiveDate),
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

fn parse_stamp(v: &str) -> Option<ExDate> {
    let v = v.trim();
    if let Some(utc) = v.strip_suffix('Z') {
        let n = NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S").ok()?;
        return Some(ExDate::Instant(n.and_utc()));
    }
    if v.contains('T') {
        return NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S")
            .ok()
            .map(ExDate::Local);
    }
    NaiveDate::parse_from_str(v, "%Y%m%d")
        .ok()
        .map(ExDate::Date)
}

impl Recurrence {
    /// Parse the `recurrence` lines; Err names the unsupported or malformed part.
    pub fn parse(lines: &[String]) -> Result<Recurrence, String> {
        let mut out = Recurrence::default();
        for line in lines {
            let line = line.trim();
            let (head, value) = line
                .split_once(':')
                .ok_or_else(|| format!("Invalid recurrence line '{line}'"))?;
            let name = head.split(';').next().unwrap_or("").to_ascii_uppercase();
            match name.as_str() {
                "RRULE" => out.rules.push(parse_rule(value)?),
                "EXDATE" => {
                    for v in value.split(',') {
                        out.exdates.push(
                            parse_stamp(v).ok_or_else(|| format!("Invalid EXDATE value '{v}'"))?,
                        );
                    }
                }
                other => {
                    return Err(format!(
                        "Recurrence line type '{other}' is not supported by the emulator (RRULE and EXDATE are)"
                    ));
                }
            }
        }
        if out.rules.len() > 1 {
            return Err("The emulator supports one RRULE per event".into());
        }
        Ok(out)
    }

    pub fn is_recurring(&self) -> bool {
        !self.rules.is_empty()
    }
}

fn parse_rule(value: &str) -> Result<Rule, String> {
    let mut freq = None;
    let mut interval: u16 = 1;
    let mut count = None;
    let mut until = None;
    let mut week_start = Weekday::Mon;
    let mut by_day: Vec<NWeekday> = Vec::new();
    let mut by_month_day: Option<i8> = None;
    for part in value.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("Invalid RRULE part '{part}'"))?;
        let bad = || format!("Invalid value '{v}' for RRULE part {k}");
        match k.to_ascii_uppercase().as_str() {
            "FREQ" => {
                freq = Some(match v.to_ascii_uppercase().as_str() {
                    "DAILY" => Frequency::Daily,
                    "WEEKLY" => Frequency::Weekly,
                    "MONTHLY" => Frequency::Monthly,
                    "YEARLY" => Frequency::Yearly,
                    other => {
                        return Err(format!(
                            "FREQ={other} is not supported by the emulator (DAILY, WEEKLY, MONTHLY, YEARLY are)"
                        ));
                    }
                })
            }
            "INTERVAL" => {
                // The crate counts periods in a u16: an interval of 65,536 days or more
                // is refused rather than wrapped.
                interval = v.parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?;
            }
            "COUNT" => count = Some(v.parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?),
            "UNTIL" => {
                until = Some(match parse_stamp(v).ok_or_else(bad)? {
                    ExDate::Date(d) => Until::Date(d),
                    ExDate::Instant(i) => Until::Instant(i),
                    ExDate::Local(l) => Until::Local(l),
                })
            }
            "BYDAY" => {
                for d in v.split(',') {
                    let d = d.trim().to_ascii_uppercase();
                    // Not `split_at`: a non-ASCII value must be a 400, not a panic.
                    let cut = d.len().saturating_sub(2);
                    let (ord, wd) = (d.get(..cut).unwrap_or("?"), d.get(cut..).unwrap_or(""));
                    let wd = weekday(wd).ok_or_else(bad)?;
                    by_day.push(if ord.is_empty() {
                        NWeekday::Every(wd)
                    } else {
                        let n = ord
                            .trim_start_matches('+')
                            .parse::<i16>()
                            .ok()
                            .filter(|n| *n != 0 && n.abs() <= 5)
                            .ok_or_else(bad)?;
                        NWeekday::Nth(n, wd)
                    });
                }
            }
            "BYMONTHDAY" => {
                let n: i8 = v
                    .parse()
                    .ok()
                    .filter(|n: &i8| *n != 0 && n.abs() <= 31)
                    .ok_or_else(|| {
                        format!("BYMONTHDAY='{v}': the emulator supports a single day of the month")
                    })?;
                by_month_day = Some(n);
            }
            "WKST" => week_start = weekday(&v.to_ascii_uppercase()).ok_or_else(bad)?,
            other => {
                return Err(format!(
                    "RRULE part {other} is not supported by the emulator (FREQ, INTERVAL, COUNT, UNTIL, BYDAY, BYMONTHDAY, WKST are)"
                ));
            }
        }
    }
    let freq = freq.ok_or("RRULE needs FREQ")?;
    if count.is_some() && until.is_some() {
        return Err("RRULE may not have both COUNT and UNTIL".into());
    }
    let ordinal = by_day.iter().any(|d| matches!(d, NWeekday::Nth(..)));
    match freq {
        Frequency::Weekly if ordinal => {
            return Err("BYDAY with an ordinal (e.g. 2TU) only applies to MONTHLY rules".into());
        }
        Frequency::Daily | Frequency::Yearly if !by_day.is_empty() => {
            return Err("The emulator supports BYDAY for WEEKLY and MONTHLY rules only".into());
        }
        Frequency::Monthly => {}
        _ if by_month_day.is_some() => {
            return Err("The emulator supports BYMONTHDAY for MONTHLY rules only".into());
        }
        _ => {}
    }
    if !by_day.is_empty() && by_month_day.is_some() {
        return Err("The emulator does not combine BYDAY and BYMONTHDAY".into());
    }

    let base = RRule::new(freq).interval(interval).week_start(week_start);
    let base = match by_month_day {
        Some(n) => base.by_month_day(vec![n]),
        None => base,
    };
    // `-5XX` as a second pattern (see the module doc).
    let (fifth_last, rest): (Vec<NWeekday>, Vec<NWeekday>) = by_day
        .into_iter()
        .partition(|d| matches!(d, NWeekday::Nth(-5, _)));
    let mut patterns = Vec::new();
    if fifth_last.is_empty() || !rest.is_empty() {
        patterns.push(base.clone().by_weekday(rest));
    }
    for d in fifth_last {
        if let NWeekday::Nth(_, wd) = d {
            patterns.push(
                base.clone()
                    .by_weekday(vec![NWeekday::Every(wd)])
                    .by_month_day(vec![-29, -30, -31]),
            );
        }
    }
    // Let the crate refuse what it cannot expand now, as a 400 at insert time, rather
    // than an empty series at list time. The start only fills in defaults.
    for p in &patterns {
        p.clone()
            .validate(floating(NaiveDateTime::default()))
            .map_err(|e| format!("Invalid RRULE '{value}': {e}"))?;
    }
    Ok(Rule {
        patterns,
        count,
        until,
    })
}

/// A local wall time as an instant in `tz` (gap: moved forward; overlap: earliest), as
/// RFC 5545 §3.3.5 reads a DATE-TIME with a TZID.
pub fn localize(tz: Tz, t: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&t) {
        LocalResult::Single(d) => d.with_timezone(&Utc),
        LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        LocalResult::None => match tz.from_local_datetime(&(t + Duration::hours(1))) {
            LocalResult::Single(d) | LocalResult::Ambiguous(d, _) => d.with_timezone(&Utc),
            LocalResult::None => t.and_utc(),
        },
    }
}

/// A wall time as the crate's floating stand-in: UTC has no DST, so the crate's
/// arithmetic is pure wall-clock arithmetic.
fn floating(t: NaiveDateTime) -> DateTime<rrule::Tz> {
    t.and_utc().with_timezone(&rrule::Tz::UTC)
}

/// Occurrence start times (local wall time) of `rec` for an event starting at `dtstart`
/// in `tz`, stopping at the first one whose instant is at or after `stop` or after
/// `max` occurrences. EXDATEs are removed (they still count towards COUNT).
pub fn expand(
    rec: &Recurrence,
    dtstart: NaiveDateTime,
    tz: Tz,
    stop: DateTime<Utc>,
    max: usize,
) -> Vec<NaiveDateTime> {
    let Some(rule) = rec.rules.first() else {
        return vec![dtstart];
    };
    let start = floating(dtstart);
    // `limit()` stops the crate after 100,000 periods in a row without an occurrence
    // (a MONTHLY rule on the 31st with INTERVAL=12 from February never matches).
    let mut set = RRuleSet::new(start).limit();
    for p in &rule.patterns {
        match p.clone().validate(start) {
            Ok(p) => set = set.rrule(p),
            Err(_) => return Vec::new(),
        }
    }
    let mut out = Vec::new();
    let mut generated: u32 = 0;
    let mut previous = None;
    for occurrence in &set {
        let local = occurrence.naive_utc();
        // Two patterns may meet on one day; the recurrence set is a set.
        if previous.replace(local) == Some(local) {
            continue;
        }
        let instant = localize(tz, local);
        let past_until = match rule.until {
            Some(Until::Date(u)) => local.date() > u,
            Some(Until::Instant(u)) => instant > u,
            Some(Until::Local(u)) => local > u,
            None => false,
        };
        if past_until || instant >= stop || out.len() >= max {
            break;
        }
        if rule.count.is_some_and(|c| generated >= c) {
            break;
        }
        generated += 1;
        let excluded = rec.exdates.iter().any(|x| match *x {
            ExDate::Local(l) => l == local,
            ExDate::Instant(i) => i == instant,
            ExDate::Date(d) => d == local.date(),
        });
        if !excluded {
            out.push(local);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn far() -> DateTime<Utc> {
        dt("2100-01-01 00:00").and_utc()
    }

    fn rec(lines: &[&str]) -> Recurrence {
        Recurrence::parse(&lines.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn weekly_by_day_with_count_and_exdate() {
        let r = rec(&[
            "RRULE:FREQ=WEEKLY;BYDAY=TU,TH;COUNT=5",
            "EXDATE;TZID=Europe/Berlin:20260305T100000",
        ]);
        let got = expand(
            &r,
            dt("2026-03-03 10:00"),
            chrono_tz::Europe::Berlin,
            far(),
            100,
        );
        let days: Vec<String> = got.iter().map(|d| d.format("%m-%d").to_string()).collect();
        // Tue 3, (Thu 5 excluded), Tue 10, Thu 12, Tue 17: five generated, one removed.
        assert_eq!(days, ["03-03", "03-10", "03-12", "03-17"]);
    }

    #[test]
    fn monthly_skips_short_months_and_handles_nth_weekday() {
        let r = rec(&["RRULE:FREQ=MONTHLY;COUNT=4"]);
        let got = expand(&r, dt("2026-01-31 09:00"), Tz::UTC, far(), 100);
        let days: Vec<String> = got.iter().map(|d| d.format("%m-%d").to_string()).collect();
        assert_eq!(days, ["01-31", "03-31", "05-31", "07-31"]);
        let r = rec(&["RRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=2"]);
        let got = expand(&r, dt("2026-01-01 09:00"), Tz::UTC, far(), 100);
        assert_eq!(got[0].date(), NaiveDate::from_ymd_opt(2026, 1, 30).unwrap());
        assert_eq!(got[1].date(), NaiveDate::from_ymd_opt(2026, 2, 27).unwrap());
    }

    #[test]
    fn until_interval_yearly_and_stop() {
        let r = rec(&["RRULE:FREQ=DAILY;INTERVAL=2;UNTIL=20260110T090000Z"]);
        let got = expand(&r, dt("2026-01-01 09:00"), Tz::UTC, far(), 100);
        assert_eq!(got.len(), 5, "1,3,5,7,9: {got:?}");
        let r = rec(&["RRULE:FREQ=YEARLY"]);
        let got = expand(
            &r,
            dt("2024-02-29 00:00"),
            Tz::UTC,
            dt("2033-01-01 00:00").and_utc(),
            100,
        );
        assert_eq!(got.len(), 3, "leap years only: {got:?}");
    }

    #[test]
    fn unsupported_parts_are_named() {
        let e = Recurrence::parse(&["RRULE:FREQ=WEEKLY;BYSETPOS=1".to_string()]).unwrap_err();
        assert!(e.contains("BYSETPOS"), "{e}");
        assert!(Recurrence::parse(&["RDATE:20260101".to_string()]).is_err());
        assert!(Recurrence::parse(&["RRULE:INTERVAL=2".to_string()]).is_err());
    }

    #[test]
    fn dst_gap_moves_forward() {
        let t = localize(chrono_tz::Europe::Berlin, dt("2026-03-29 02:30"));
        assert_eq!(t, dt("2026-03-29 01:30").and_utc());
    }

    fn days(got: &[NaiveDateTime]) -> Vec<String> {
        got.iter().map(|d| d.format("%m-%d").to_string()).collect()
    }

    #[test]
    fn wkst_sunday_changes_biweekly_days_as_in_rfc_5545() {
        // RFC 5545 §3.3.10, the example "where the days generated makes a difference
        // because of WKST": with WKST=MO, 5, 10, 19, 24 August 1997; with WKST=SU the
        // Sunday belongs to the next (skipped) week: 5, 17, 19, 31 August.
        let start = dt("1997-08-05 09:00");
        let ny = chrono_tz::America::New_York;
        let r = rec(&["RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO"]);
        assert_eq!(
            days(&expand(&r, start, ny, far(), 100)),
            ["08-05", "08-10", "08-19", "08-24"]
        );
        let r = rec(&["RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU"]);
        assert_eq!(
            days(&expand(&r, start, ny, far(), 100)),
            ["08-05", "08-17", "08-19", "08-31"]
        );
    }

    #[test]
    fn malformed_rules_are_refused_not_a_panic() {
        for bad in [
            "RRULE:FREQ=MONTHLY;BYDAY=\u{e9}a",
            "RRULE:FREQ=MONTHLY;BYDAY=XMO",
            "RRULE:FREQ=MONTHLY;BYDAY=0MO",
            "RRULE:FREQ=MONTHLY;BYDAY=6MO",
            "RRULE:FREQ=WEEKLY;WKST=XX",
            "RRULE:FREQ=WEEKLY;INTERVAL=0",
            "RRULE:FREQ=WEEKLY;INTERVAL=70000",
            "RRULE:FREQ=WEEKLY;COUNT=0",
            "RRULE:FREQ=SECONDLY",
            "RRULE:FREQ=DAILY;COUNT=2;UNTIL=20260101",
        ] {
            let e = Recurrence::parse(&[bad.to_string()]);
            assert!(e.is_err(), "{bad} accepted: {e:?}");
        }
    }

    #[test]
    fn monthly_fifth_last_weekday_is_expanded() {
        // -5FR is the first Friday of a month that has five (RFC 5545 §3.3.10 allows
        // ordinals up to 53; the crate alone refuses -5 for MONTHLY).
        let r = rec(&["RRULE:FREQ=MONTHLY;BYDAY=-5FR;COUNT=3"]);
        let got = expand(&r, dt("2026-01-01 09:00"), Tz::UTC, far(), 100);
        assert_eq!(days(&got), ["01-02", "05-01", "07-03"]);
        // Together with another day; a day both select comes once.
        let r = rec(&["RRULE:FREQ=MONTHLY;BYDAY=-5FR,1FR;COUNT=4"]);
        let got = expand(&r, dt("2026-01-01 09:00"), Tz::UTC, far(), 100);
        assert_eq!(days(&got), ["01-02", "02-06", "03-06", "04-03"]);
    }

    #[test]
    fn occurrence_at_a_dst_change_at_midnight_is_shifted_not_dropped() {
        // America/Havana changes clocks at midnight: 2026-03-08 00:30 does not exist
        // and 2026-11-01 00:30 happens twice. RFC 5545 §3.3.5: the gap moves forward,
        // the overlap takes the first. Every day keeps its occurrence.
        let havana = chrono_tz::America::Havana;
        let r = rec(&["RRULE:FREQ=DAILY;COUNT=3"]);
        let got = expand(&r, dt("2026-03-07 00:30"), havana, far(), 100);
        assert_eq!(days(&got), ["03-07", "03-08", "03-09"]);
        assert_eq!(localize(havana, got[1]), dt("2026-03-08 05:30").and_utc());
        let got = expand(&r, dt("2026-10-31 00:30"), havana, far(), 100);
        assert_eq!(days(&got), ["10-31", "11-01", "11-02"]);
        assert_eq!(localize(havana, got[1]), dt("2026-11-01 04:30").and_utc());
    }

    #[test]
    fn until_as_a_date_or_local_time_bounds_a_zoned_series() {
        // Google writes UNTIL=YYYYMMDD for all-day series, also in a zoned calendar.
        let berlin = chrono_tz::Europe::Berlin;
        let r = rec(&["RRULE:FREQ=DAILY;UNTIL=20260305"]);
        assert_eq!(
            expand(&r, dt("2026-03-01 00:00"), berlin, far(), 100).len(),
            5
        );
        let r = rec(&["RRULE:FREQ=DAILY;UNTIL=20260303T100000"]);
        assert_eq!(
            expand(&r, dt("2026-03-01 10:00"), berlin, far(), 100).len(),
            3
        );
    }

    #[test]
    fn rule_that_never_matches_again_ends() {
        // Every twelfth month from February is always February: no 31st, ever.
        let r = rec(&["RRULE:FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=31"]);
        assert!(expand(&r, dt("2026-02-01 09:00"), Tz::UTC, far(), 100).is_empty());
        // From January the same rule is every 31 January.
        let got = expand(&r, dt("2026-01-01 09:00"), Tz::UTC, far(), 3);
        assert_eq!(got.last(), Some(&dt("2028-01-31 09:00")));
    }
}
