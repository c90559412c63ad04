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
//! takes the first (summer-time) instant.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, Months, NaiveDate, NaiveDateTime, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freq {
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// `UNTIL=20260401` (all-day events, or a floating date).
    Date(NaiveDate),
    /// `UNTIL=20260401T000000Z`.
    Instant(DateTime<Utc>),
    /// `UNTIL=20260401T100000` (local time in the event's zone).
    Local(NaiveDateTime),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub freq: Freq,
    pub interval: u32,
    pub count: Option<u32>,
    pub until: Option<Until>,
    /// `(ordinal, weekday)`; the ordinal is None for plain `MO`.
    pub by_day: Vec<(Option<i32>, Weekday)>,
    pub by_month_day: Option<i32>,
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
    let mut rule = Rule {
        freq: Freq::Daily,
        interval: 1,
        count: None,
        until: None,
        by_day: Vec::new(),
        by_month_day: None,
    };
    for part in value.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("Invalid RRULE part '{part}'"))?;
        let bad = || format!("Invalid value '{v}' for RRULE part {k}");
        match k.to_ascii_uppercase().as_str() {
            "FREQ" => {
                freq = Some(match v.to_ascii_uppercase().as_str() {
                    "DAILY" => Freq::Daily,
                    "WEEKLY" => Freq::Weekly,
                    "MONTHLY" => Freq::Monthly,
                    "YEARLY" => Freq::Yearly,
                    other => {
                        return Err(format!(
                            "FREQ={other} is not supported by the emulator (DAILY, WEEKLY, MONTHLY, YEARLY are)"
                        ));
                    }
                })
            }
            "INTERVAL" => {
                rule.interval = v.parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?;
            }
            "COUNT" => rule.count = Some(v.parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?),
            "UNTIL" => {
                rule.until = Some(match parse_stamp(v).ok_or_else(bad)? {
                    ExDate::Date(d) => Until::Date(d),
                    ExDate::Instant(i) => Until::Instant(i),
                    ExDate::Local(l) => Until::Local(l),
                })
            }
            "BYDAY" => {
                for d in v.split(',') {
                    let d = d.trim().to_ascii_uppercase();
                    let split = d.len().saturating_sub(2);
                    let (ord, wd) = d.split_at(split);
                    let wd = weekday(wd).ok_or_else(bad)?;
                    let ord = if ord.is_empty() {
                        None
                    } else {
                        Some(
                            ord.trim_start_matches('+')
                                .parse::<i32>()
                                .ok()
                                .filter(|n| *n != 0 && n.abs() <= 5)
                                .ok_or_else(bad)?,
                        )
                    };
                    rule.by_day.push((ord, wd));
                }
            }
            "BYMONTHDAY" => {
                let n: i32 = v
                    .parse()
                    .ok()
                    .filter(|n: &i32| *n != 0 && n.abs() <= 31)
                    .ok_or_else(|| {
                        format!("BYMONTHDAY='{v}': the emulator supports a single day of the month")
                    })?;
                rule.by_month_day = Some(n);
            }
            "WKST" => {}
            other => {
                return Err(format!(
                    "RRULE part {other} is not supported by the emulator (FREQ, INTERVAL, COUNT, UNTIL, BYDAY, BYMONTHDAY, WKST are)"
                ));
            }
        }
    }
    rule.freq = freq.ok_or("RRULE needs FREQ")?;
    if rule.count.is_some() && rule.until.is_some() {
        return Err("RRULE may not have both COUNT and UNTIL".into());
    }
    match rule.freq {
        Freq::Weekly if rule.by_day.iter().any(|(o, _)| o.is_some()) => {
            return Err("BYDAY with an ordinal (e.g. 2TU) only applies to MONTHLY rules".into());
        }
        Freq::Daily | Freq::Yearly if !rule.by_day.is_empty() => {
            return Err("The emulator supports BYDAY for WEEKLY and MONTHLY rules only".into());
        }
        Freq::Daily | Freq::Weekly | Freq::Yearly if rule.by_month_day.is_some() => {
            return Err("The emulator supports BYMONTHDAY for MONTHLY rules only".into());
        }
        _ => {}
    }
    if rule.freq == Freq::Monthly && !rule.by_day.is_empty() && rule.by_month_day.is_some() {
        return Err("The emulator does not combine BYDAY and BYMONTHDAY".into());
    }
    Ok(rule)
}

/// A local wall time as an instant in `tz` (gap: moved forward; overlap: earliest).
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

/// The nth (1-based; negative from the end) `wd` of a month.
fn nth_weekday(year: i32, month: u32, n: i32, wd: Weekday) -> Option<NaiveDate> {
    if n > 0 {
        NaiveDate::from_weekday_of_month_opt(year, month, wd, n as u8)
    } else {
        let first_next =
            NaiveDate::from_ymd_opt(year, month, 1)?.checked_add_months(Months::new(1))?;
        let last = first_next.pred_opt()?;
        let back = (last.weekday().num_days_from_monday() + 7 - wd.num_days_from_monday()) % 7;
        let d = last - Duration::days(back as i64 + 7 * ((-n) as i64 - 1));
        (d.month() == month).then_some(d)
    }
}

fn month_day(year: i32, month: u32, n: i32) -> Option<NaiveDate> {
    if n > 0 {
        NaiveDate::from_ymd_opt(year, month, n as u32)
    } else {
        let first_next =
            NaiveDate::from_ymd_opt(year, month, 1)?.checked_add_months(Months::new(1))?;
        let d = first_next - Duration::days((-n) as i64);
        (d.month() == month).then_some(d)
    }
}

/// Candidate dates of period `k` (in order).
fn period_dates(rule: &Rule, start: NaiveDate, k: u64) -> Vec<NaiveDate> {
    let step = k.saturating_mul(rule.interval as u64);
    match rule.freq {
        Freq::Daily => start
            .checked_add_signed(Duration::days(step as i64))
            .into_iter()
            .collect(),
        Freq::Weekly => {
            let week0 = start - Duration::days(start.weekday().num_days_from_monday() as i64);
            let Some(week) = week0.checked_add_signed(Duration::weeks(step as i64)) else {
                return Vec::new();
            };
            let mut days: Vec<Weekday> = if rule.by_day.is_empty() {
                vec![start.weekday()]
            } else {
                rule.by_day.iter().map(|(_, d)| *d).collect()
            };
            days.sort_by_key(|d| d.num_days_from_monday());
            days.dedup();
            days.into_iter()
                .map(|d| week + Duration::days(d.num_days_from_monday() as i64))
                .collect()
        }
        Freq::Monthly => {
            let Some(first) = NaiveDate::from_ymd_opt(start.year(), start.month(), 1)
                .and_then(|f| f.checked_add_months(Months::new(step.min(u32::MAX as u64) as u32)))
            else {
                return Vec::new();
            };
            let (y, m) = (first.year(), first.month());
            let mut dates: Vec<NaiveDate> = if !rule.by_day.is_empty() {
                rule.by_day
                    .iter()
                    .flat_map(|(ord, wd)| match ord {
                        Some(n) => nth_weekday(y, m, *n, *wd).into_iter().collect::<Vec<_>>(),
                        None => (1..=5).filter_map(|n| nth_weekday(y, m, n, *wd)).collect(),
                    })
                    .collect()
            } else {
                month_day(y, m, rule.by_month_day.unwrap_or(start.day() as i32))
                    .into_iter()
                    .collect()
            };
            dates.sort();
            dates.dedup();
            dates
        }
        Freq::Yearly => {
            let y = start.year() as i64 + step as i64;
            i32::try_from(y)
                .ok()
                .and_then(|y| NaiveDate::from_ymd_opt(y, start.month(), start.day()))
                .into_iter()
                .collect()
        }
    }
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
    let time = dtstart.time();
    let mut out = Vec::new();
    let mut generated: u32 = 0;
    let mut empty_periods = 0u32;
    for k in 0u64.. {
        let dates = period_dates(rule, dtstart.date(), k);
        if dates.is_empty() {
            empty_periods += 1;
            // Monthly/yearly rules can skip periods (the 31st, 29 February); a long
            // run of empty periods means the rule never matches again.
            if empty_periods > 400 {
                break;
            }
            continue;
        }
        empty_periods = 0;
        for d in dates {
            let local = d.and_time(time);
            if local < dtstart {
                continue;
            }
            let instant = localize(tz, local);
            let past_until = match rule.until {
                Some(Until::Date(u)) => d > u,
                Some(Until::Instant(u)) => instant > u,
                Some(Until::Local(u)) => local > u,
                None => false,
            };
            if past_until || instant >= stop || out.len() >= max {
                return out;
            }
            if rule.count.is_some_and(|c| generated >= c) {
                return out;
            }
            generated += 1;
            let excluded = rec.exdates.iter().any(|x| match *x {
                ExDate::Local(l) => l == local,
                ExDate::Instant(i) => i == instant,
                ExDate::Date(dd) => dd == d,
            });
            if !excluded {
                out.push(local);
            }
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
}
