//! Google's quota model: what each method costs per quota metric, limits per user and
//! per project over sliding windows, daily limits that reset at midnight Pacific, and
//! the 429 Google's quota system answers with.
//!
//! Google charges by metric, not by call: a `batchCreateContacts` of 200 contacts costs
//! 6 critical writes, a delete costs one "contact deletes and contact group writes"
//! request. A client that paces by calls either bounces off the quota or waits for
//! nothing; only an emulator that counts the way Google does shows which. People
//! publishes no numbers, so the `google` profile's limits are assumptions, each with
//! its public source next to it in [`METRICS`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::str::FromStr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use orgsync_wire::error::{ERROR_INFO_TYPE, ErrorBody, ErrorDetail, ErrorEnvelope, LegacyError};
use serde::{Deserialize, Serialize};

use crate::error::Api;

/// The Cloud project every emulator caller belongs to.
pub(crate) const PROJECT_NUMBER: &str = "100000000001";

/// A named set of quota limits (`--quota-profile`, `"quota_profile"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaProfile {
    /// Google's defaults as far as they are known: the table in [`METRICS`].
    Google,
}

impl FromStr for QuotaProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "google" => Ok(QuotaProfile::Google),
            other => Err(format!(
                "unknown quota profile '{other}': the only profile is 'google'"
            )),
        }
    }
}

pub use orgsync_wire::quota::*;

/// Parse one `METRIC.SCOPE=VALUE` override.
pub fn parse_override(s: &str) -> Result<(String, u64), String> {
    let (key, value) = s.split_once('=').ok_or_else(|| {
        format!("--quota {s:?}: expected METRIC.SCOPE=VALUE, e.g. people.write.user=10")
    })?;
    let key = key.trim();
    parse_key(key)?;
    let value: u64 = value
        .trim()
        .parse()
        .map_err(|_| format!("--quota {key}: {value:?} is not a whole number of units"))?;
    if value == 0 {
        return Err(format!("--quota {key}: the limit must be at least 1"));
    }
    Ok((key.to_string(), value))
}

fn parse_key(key: &str) -> Result<(Metric, Scope), String> {
    let known = || METRICS.iter().map(|i| i.id).collect::<Vec<_>>().join(", ");
    let (metric, scope) = key.rsplit_once('.').ok_or_else(|| {
        format!("quota limit {key:?}: expected METRIC.SCOPE, e.g. people.write.user")
    })?;
    let metric = Metric::from_id(metric).ok_or_else(|| {
        format!(
            "quota limit {key:?}: unknown metric {metric:?} (known: {})",
            known()
        )
    })?;
    let scope = match scope {
        "user" => Scope::User,
        "project" => Scope::Project,
        other => {
            return Err(format!(
                "quota limit {key:?}: unknown scope {other:?} (use user or project)"
            ));
        }
    };
    Ok((metric, scope))
}

/// The limits in force: the profile's numbers with the overrides on top.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    per: BTreeMap<(Metric, Scope), u64>,
}

impl Limits {
    /// `None` when no profile and no override is set: the quota model is off.
    pub fn resolve(
        profile: Option<QuotaProfile>,
        overrides: &BTreeMap<String, u64>,
    ) -> Result<Option<Limits>, String> {
        if profile.is_none() && overrides.is_empty() {
            return Ok(None);
        }
        let mut per = BTreeMap::new();
        if profile == Some(QuotaProfile::Google) {
            for i in METRICS {
                if let Some(v) = i.google_user {
                    per.insert((i.metric, Scope::User), v);
                }
                if let Some(v) = i.google_project {
                    per.insert((i.metric, Scope::Project), v);
                }
            }
        }
        for (key, &value) in overrides {
            let k = parse_key(key)?;
            if value == 0 {
                return Err(format!("quota limit {key}: must be at least 1"));
            }
            per.insert(k, value);
        }
        Ok(Some(Limits { per }))
    }

    pub fn get(&self, metric: Metric, scope: Scope) -> Option<u64> {
        self.per.get(&(metric, scope)).copied()
    }
}

/// The quota model in force: limits and the length of a quota minute.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaModel {
    pub limits: Limits,
    pub minute_ms: i64,
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub metric: Metric,
    pub scope: Scope,
    pub limit: u64,
}

/// Counters of one metric in `GET /emulator/v1/stats` (`quota.<metric id>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricStats {
    /// Units charged by admitted calls.
    pub units: u64,
    /// Admitted calls that charged this metric.
    pub calls: u64,
    /// Calls refused because of this metric (they consumed nothing).
    pub rejected: u64,
    pub rejected_by_user_limit: u64,
    pub rejected_by_project_limit: u64,
    /// The most units any one user held in a single window (a sliding quota minute, or
    /// a Pacific day for daily metrics): how close a user came to the per-user limit.
    pub max_user_window_units: u64,
    /// The most units any one user consumed in total since the last reset.
    pub max_user_total_units: u64,
    /// The most units the whole project held in a single window.
    pub max_project_window_units: u64,
    /// The limits in force (absent: unlimited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_per_user: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_per_project: Option<u64>,
}

/// Usage of one (metric, user) or (metric, project): an exact sliding window of
/// (instant, units) for per-minute metrics, a counter per Pacific day for daily ones.
#[derive(Debug, Default)]
struct Usage {
    entries: VecDeque<(i64, u64)>,
    sum: u64,
    day: i64,
    day_used: u64,
}

impl Usage {
    fn used(&mut self, period: Period, now_ms: i64, minute_ms: i64, day: i64) -> u64 {
        match period {
            Period::Minute => {
                // The window is (now - minute, now]: an entry exactly a minute old is out.
                while let Some(&(t, u)) = self.entries.front() {
                    if t <= now_ms - minute_ms {
                        self.entries.pop_front();
                        self.sum -= u;
                    } else {
                        break;
                    }
                }
                self.sum
            }
            Period::Day if self.day == day => self.day_used,
            Period::Day => 0,
        }
    }

    /// Charge `units`; returns the units now held in the window.
    fn add(&mut self, period: Period, now_ms: i64, units: u64, day: i64) -> u64 {
        match period {
            Period::Minute => {
                self.entries.push_back((now_ms, units));
                self.sum += units;
                self.sum
            }
            Period::Day => {
                if self.day != day {
                    self.day = day;
                    self.day_used = 0;
                }
                self.day_used += units;
                self.day_used
            }
        }
    }
}

/// The quota day `now_ms` falls in: days run midnight to midnight in America/Los_Angeles
/// (Google's daily quotas end at midnight Pacific time, e.g.
/// <https://developers.google.com/android-publisher/quotas>). A quota day is 1,440 quota
/// minutes, so with a shortened minute the days shorten too, still aligned to Pacific
/// local time.
pub fn quota_day(now_ms: i64, minute_ms: i64) -> i64 {
    let Some(utc) = DateTime::from_timestamp_millis(now_ms) else {
        return 0;
    };
    let local = utc
        .with_timezone(&chrono_tz::America::Los_Angeles)
        .naive_local()
        .and_utc()
        .timestamp_millis();
    local.div_euclid(minute_ms.max(1) * 1440)
}

/// Usage windows and counters, behind one lock in `Faults`.
#[derive(Debug, Default)]
pub struct QuotaState {
    /// `None` subject: the project's window.
    usage: HashMap<(Metric, Option<String>), Usage>,
    user_totals: HashMap<(Metric, String), u64>,
    stats: BTreeMap<Metric, MetricStats>,
}

impl QuotaState {
    /// Admit and charge a call, or refuse it. Every metric of the call is checked, per
    /// user and per project, before any is charged: a refused call consumes nothing.
    pub fn admit(
        &mut self,
        model: &QuotaModel,
        subject: &str,
        costs: &[(Metric, u64)],
        now_ms: i64,
    ) -> Result<(), Rejection> {
        let minute_ms = model.minute_ms;
        let day = quota_day(now_ms, minute_ms);
        for &(metric, units) in costs {
            let period = metric.info().period;
            for scope in [Scope::User, Scope::Project] {
                let Some(limit) = model.limits.get(metric, scope) else {
                    continue;
                };
                let used = self
                    .usage
                    .entry(key(metric, scope, subject))
                    .or_default()
                    .used(period, now_ms, minute_ms, day);
                if used + units > limit {
                    let s = self.stats.entry(metric).or_default();
                    s.rejected += 1;
                    match scope {
                        Scope::User => s.rejected_by_user_limit += 1,
                        Scope::Project => s.rejected_by_project_limit += 1,
                    }
                    return Err(Rejection {
                        metric,
                        scope,
                        limit,
                    });
                }
            }
        }
        for &(metric, units) in costs {
            let period = metric.info().period;
            let user = self
                .usage
                .entry(key(metric, Scope::User, subject))
                .or_default();
            user.used(period, now_ms, minute_ms, day);
            let user_held = user.add(period, now_ms, units, day);
            let project = self.usage.entry((metric, None)).or_default();
            project.used(period, now_ms, minute_ms, day);
            let project_held = project.add(period, now_ms, units, day);
            let total = self
                .user_totals
                .entry((metric, subject.to_string()))
                .or_default();
            *total += units;
            let total = *total;
            let s = self.stats.entry(metric).or_default();
            s.units += units;
            s.calls += 1;
            s.max_user_window_units = s.max_user_window_units.max(user_held);
            s.max_project_window_units = s.max_project_window_units.max(project_held);
            s.max_user_total_units = s.max_user_total_units.max(total);
        }
        Ok(())
    }

    /// Per-metric counters, keyed by metric id, with the limits in force filled in.
    pub fn stats(&self, model: Option<&QuotaModel>) -> BTreeMap<String, MetricStats> {
        let mut out = BTreeMap::new();
        for info in METRICS {
            let limits = model.map(|m| {
                (
                    m.limits.get(info.metric, Scope::User),
                    m.limits.get(info.metric, Scope::Project),
                )
            });
            let counted = self.stats.get(&info.metric);
            let limited = limits.is_some_and(|(u, p)| u.is_some() || p.is_some());
            if counted.is_none() && !limited {
                continue;
            }
            let mut s = counted.cloned().unwrap_or_default();
            if let Some((u, p)) = limits {
                s.limit_per_user = u;
                s.limit_per_project = p;
            }
            out.insert(info.id.to_string(), s);
        }
        out
    }
}

fn key(metric: Metric, scope: Scope, subject: &str) -> (Metric, Option<String>) {
    match scope {
        Scope::User => (metric, Some(subject.to_string())),
        Scope::Project => (metric, None),
    }
}

/// The limit's name as Google's message spells it.
fn limit_display(info: &MetricInfo, scope: Scope) -> String {
    info.limit_display(scope)
}

/// The body Google's quota system answers with: HTTP 429, `RESOURCE_EXHAUSTED`, the
/// "Quota exceeded for quota metric …" message and an `ErrorInfo` whose metadata names
/// the metric, the limit and its value (shape of real answers:
/// <https://github.com/mrmattwilkins/google-contacts-sync/issues/1>,
/// <https://github.com/google-gemini/deprecated-generative-ai-python/issues/206>).
/// Directory, Gmail and Calendar add the legacy `errors[]` entry (`usageLimits`,
/// `userRateLimitExceeded` or `rateLimitExceeded`, as the Gmail quota page names them).
pub fn rejection_body(api: Api, r: &Rejection) -> ErrorEnvelope {
    let info = r.metric.info();
    let message = format!(
        "Quota exceeded for quota metric '{}' and limit '{}' of service '{}' for consumer 'project_number:{PROJECT_NUMBER}'.",
        info.display,
        limit_display(info, r.scope),
        info.service,
    );
    let limit_name = match r.scope {
        Scope::User => info.user_limit_name,
        Scope::Project => info.project_limit_name,
    };
    let mut metadata = serde_json::Map::new();
    for (k, v) in [
        ("quota_metric", info.quota_metric.to_string()),
        ("quota_limit", limit_name.to_string()),
        ("quota_limit_value", r.limit.to_string()),
        ("service", info.service.to_string()),
        ("consumer", format!("projects/{PROJECT_NUMBER}")),
    ] {
        metadata.insert(k.into(), serde_json::Value::String(v));
    }
    let errors = match api {
        Api::People => Vec::new(),
        _ => vec![LegacyError {
            message: message.clone(),
            domain: "usageLimits".into(),
            reason: match r.scope {
                Scope::User => "userRateLimitExceeded",
                Scope::Project => "rateLimitExceeded",
            }
            .into(),
            ..Default::default()
        }],
    };
    ErrorEnvelope {
        error: ErrorBody {
            code: 429,
            message,
            errors,
            status: Some("RESOURCE_EXHAUSTED".into()),
            details: vec![ErrorDetail {
                type_url: ERROR_INFO_TYPE.into(),
                reason: Some("RATE_LIMIT_EXCEEDED".into()),
                domain: Some("googleapis.com".into()),
                metadata: Some(metadata),
            }],
        },
    }
}

/// The 429 response: no `Retry-After` (Google's quota answers carry none).
pub fn rejection_response(api: Api, r: &Rejection) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(rejection_body(api, r)),
    )
        .into_response()
}

impl Rejection {
    /// `people.write.user`: the override key that would change this limit.
    pub fn key(&self) -> String {
        format!("{}.{}", self.metric.id(), self.scope.id())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use orgsync_wire::quota::Metric::*;

    const MIN: i64 = 60_000;

    fn model(profile: Option<QuotaProfile>, overrides: &[(&str, u64)]) -> QuotaModel {
        let overrides = overrides.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        QuotaModel {
            limits: Limits::resolve(profile, &overrides).unwrap().unwrap(),
            minute_ms: MIN,
        }
    }

    #[test]
    fn every_people_and_gmail_method_has_its_own_cost_row() {
        for (_, _, id) in super::super::methods::METHODS {
            let exact = COSTS.iter().any(|(c, _)| c == id);
            if id.starts_with("people.") || id.starts_with("gmail.") {
                assert!(exact, "{id} has no row in COSTS");
            }
            assert!(!cost_of(id, 1).is_empty(), "{id} costs nothing");
        }
        assert_eq!(
            cost_of("directory.users.list", 0),
            vec![(DirectoryQuery, 1)]
        );
        assert_eq!(cost_of("admin.channels.stop", 0), vec![(DirectoryQuery, 1)]);
        assert_eq!(cost_of("calendar.events.list", 0), vec![(CalendarQuery, 1)]);
        assert!(cost_of("directory.unknown", 0).is_empty());
        assert!(cost_of("people.unknown", 0).is_empty());
    }

    #[test]
    fn costs_follow_the_contacts_guide_and_gmails_unit_table() {
        assert_eq!(
            cost_of("people.people.batchCreateContacts", 200),
            vec![(PeopleRead, 6), (PeopleWrite, 6), (PeopleDailyWrite, 200)]
        );
        assert_eq!(
            cost_of("people.people.batchUpdateContacts", 3),
            vec![(PeopleRead, 6), (PeopleWrite, 6), (PeopleDailyWrite, 3)]
        );
        assert_eq!(
            cost_of("people.people.createContact", 0),
            vec![(PeopleRead, 1), (PeopleWrite, 1), (PeopleDailyWrite, 1)]
        );
        assert_eq!(
            cost_of("people.people.batchDeleteContacts", 0),
            vec![(PeopleDeleteGroupWrite, 10)]
        );
        assert_eq!(
            cost_of("people.people.deleteContact", 0),
            vec![(PeopleDeleteGroupWrite, 1)]
        );
        assert_eq!(
            cost_of("people.people.connections.list", 0),
            vec![(PeopleRead, 1)]
        );
        assert_eq!(
            cost_of("people.contactGroups.members.modify", 0),
            vec![(PeopleDeleteGroupWrite, 1)]
        );
        assert_eq!(
            cost_of("people.contactGroups.list", 0),
            vec![(PeopleGroupRead, 1)]
        );
        assert_eq!(
            cost_of("people.people.updateContactPhoto", 0),
            vec![(PeoplePhotoWrite, 1)]
        );
        assert_eq!(
            cost_of("gmail.users.messages.send", 0),
            vec![(GmailUnits, 100)]
        );
        assert_eq!(
            cost_of("gmail.users.drafts.update", 0),
            vec![(GmailUnits, 15)]
        );
        assert_eq!(
            cost_of("gmail.users.history.list", 0),
            vec![(GmailUnits, 2)]
        );
        assert!(charges_per_contact("people.people.batchCreateContacts"));
        assert!(!charges_per_contact("people.people.createContact"));
    }

    #[test]
    fn counts_contacts_of_batch_create_and_update_bodies() {
        assert_eq!(contacts_in_body(br#"{"contacts":[{},{},{}]}"#), 3);
        assert_eq!(
            contacts_in_body(br#"{"contacts":{"people/c1":{},"people/c2":{}}}"#),
            2
        );
        assert_eq!(contacts_in_body(b"not json"), 0);
        assert_eq!(contacts_in_body(br#"{"other":1}"#), 0);
    }

    #[test]
    fn the_google_profile_is_the_documented_table_and_overrides_win() {
        let m = model(Some(QuotaProfile::Google), &[("people.write.user", 10)]);
        let l = &m.limits;
        assert_eq!(l.get(PeopleRead, Scope::User), Some(90));
        assert_eq!(l.get(PeopleRead, Scope::Project), Some(6_000));
        assert_eq!(l.get(PeopleWrite, Scope::User), Some(10));
        assert_eq!(l.get(PeopleWrite, Scope::Project), Some(3_000));
        assert_eq!(l.get(PeopleDeleteGroupWrite, Scope::User), Some(30));
        assert_eq!(l.get(PeopleGroupRead, Scope::User), Some(90));
        assert_eq!(l.get(PeoplePhotoWrite, Scope::User), Some(50));
        assert_eq!(l.get(PeoplePhotoWrite, Scope::Project), None);
        assert_eq!(l.get(PeopleDailyWrite, Scope::User), Some(100_000));
        assert_eq!(l.get(DirectoryQuery, Scope::User), Some(2_400));
        assert_eq!(l.get(GmailUnits, Scope::User), Some(15_000));
        assert_eq!(l.get(GmailUnits, Scope::Project), Some(1_200_000));
        assert_eq!(l.get(CalendarQuery, Scope::User), Some(600));
        // Without a profile, only the overrides limit anything.
        let only = model(None, &[("people.write.user", 10)]);
        assert_eq!(only.limits.get(PeopleWrite, Scope::User), Some(10));
        assert_eq!(only.limits.get(PeopleRead, Scope::User), None);
        assert_eq!(Limits::resolve(None, &BTreeMap::new()), Ok(None));
    }

    #[test]
    fn overrides_are_parsed_and_bad_ones_say_what_to_write() {
        assert_eq!(
            parse_override("people.delete_group_write.project=500"),
            Ok(("people.delete_group_write.project".into(), 500))
        );
        for (bad, says) in [
            ("people.write.user", "METRIC.SCOPE=VALUE"),
            ("people.writes.user=1", "unknown metric"),
            ("people.write.team=1", "unknown scope"),
            ("people.write.user=ten", "whole number"),
            ("people.write.user=0", "at least 1"),
        ] {
            let e = parse_override(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!("google".parse::<QuotaProfile>().is_ok());
        assert!(
            "gogle"
                .parse::<QuotaProfile>()
                .unwrap_err()
                .contains("google")
        );
    }

    #[test]
    fn a_batch_charges_six_writes_and_the_call_over_the_limit_is_refused_whole() {
        let m = model(
            None,
            &[("people.write.user", 30), ("people.read.user", 1000)],
        );
        let mut q = QuotaState::default();
        let batch = cost_of("people.people.batchCreateContacts", 200);
        for i in 0..5 {
            assert!(q.admit(&m, "a@x", &batch, i).is_ok(), "batch {i}");
        }
        let r = q.admit(&m, "a@x", &batch, 5).unwrap_err();
        assert_eq!(
            r,
            Rejection {
                metric: PeopleWrite,
                scope: Scope::User,
                limit: 30
            }
        );
        assert_eq!(r.key(), "people.write.user");
        // The refused call charged nothing: not its reads, not its daily writes.
        let stats = q.stats(Some(&m));
        assert_eq!(stats["people.write"].units, 30);
        assert_eq!(stats["people.write"].rejected, 1);
        assert_eq!(stats["people.write"].rejected_by_user_limit, 1);
        assert_eq!(stats["people.read"].units, 30);
        assert_eq!(stats["people.daily_write"].units, 1000);
        assert_eq!(stats["people.write"].max_user_window_units, 30);
        assert_eq!(stats["people.write"].limit_per_user, Some(30));
        // A read-only call still fits: only the write window is full.
        let list = cost_of("people.people.connections.list", 0);
        assert!(q.admit(&m, "a@x", &list, 6).is_ok());
    }

    #[test]
    fn windows_slide_rather_than_reset_on_the_minute() {
        let m = model(None, &[("people.read.user", 2)]);
        let mut q = QuotaState::default();
        let read = cost_of("people.people.connections.list", 0);
        let t0 = 1_000 * MIN + 50_000; // 50 s into a clock minute
        assert!(q.admit(&m, "a", &read, t0).is_ok());
        assert!(q.admit(&m, "a", &read, t0 + 30_000).is_ok());
        // A fixed window would have reset at the minute boundary (t0 + 10 s).
        assert!(q.admit(&m, "a", &read, t0 + 59_999).is_err());
        // At t0 + 60 s the first call has left the window: exactly one slot frees.
        assert!(q.admit(&m, "a", &read, t0 + 60_000).is_ok());
        assert!(q.admit(&m, "a", &read, t0 + 60_001).is_err());
        assert!(q.admit(&m, "a", &read, t0 + 90_000).is_ok());
        // A shorter quota minute slides faster.
        let fast = QuotaModel {
            minute_ms: 1_000,
            ..m.clone()
        };
        let mut q = QuotaState::default();
        assert!(q.admit(&fast, "a", &read, t0).is_ok());
        assert!(q.admit(&fast, "a", &read, t0).is_ok());
        assert!(q.admit(&fast, "a", &read, t0 + 999).is_err());
        assert!(q.admit(&fast, "a", &read, t0 + 1_000).is_ok());
    }

    #[test]
    fn per_user_and_per_project_limits_are_separate() {
        let m = model(
            None,
            &[
                ("people.delete_group_write.user", 2),
                ("people.delete_group_write.project", 3),
            ],
        );
        let mut q = QuotaState::default();
        let del = cost_of("people.people.deleteContact", 0);
        assert!(q.admit(&m, "a", &del, 0).is_ok());
        assert!(q.admit(&m, "a", &del, 1).is_ok());
        let r = q.admit(&m, "a", &del, 2).unwrap_err();
        assert_eq!(r.scope, Scope::User);
        // b has its own user budget, but the project has one unit left.
        assert!(q.admit(&m, "b", &del, 3).is_ok());
        let r = q.admit(&m, "b", &del, 4).unwrap_err();
        assert_eq!((r.scope, r.limit), (Scope::Project, 3));
        let s = &q.stats(Some(&m))["people.delete_group_write"];
        assert_eq!(
            (s.rejected_by_user_limit, s.rejected_by_project_limit),
            (1, 1)
        );
        assert_eq!(s.max_project_window_units, 3);
        assert_eq!(s.max_user_total_units, 2);
        // A batch delete costs 10: more than either limit, so it never fits.
        let batch = cost_of("people.people.batchDeleteContacts", 0);
        assert!(q.admit(&m, "c", &batch, 10 * MIN).is_err());
    }

    #[test]
    fn daily_limits_reset_at_midnight_pacific() {
        let m = model(None, &[("people.daily_write.user", 3)]);
        let mut q = QuotaState::default();
        let la = chrono_tz::America::Los_Angeles;
        let at = |d: u32, h: u32, min: u32| {
            la.with_ymd_and_hms(2026, 7, d, h, min, 0)
                .unwrap()
                .timestamp_millis()
        };
        let create = cost_of("people.people.createContact", 0);
        for i in 0..3 {
            assert!(q.admit(&m, "a", &create, at(1, 9, i)).is_ok());
        }
        let r = q.admit(&m, "a", &create, at(1, 23, 59)).unwrap_err();
        assert_eq!(r.metric, PeopleDailyWrite);
        // 07:00 UTC is midnight in Los Angeles (PDT): a new quota day.
        assert!(q.admit(&m, "a", &create, at(2, 0, 0)).is_ok());
        // In winter (PST) the day still ends at local midnight.
        let jan = |d: u32, h: u32| {
            la.with_ymd_and_hms(2026, 1, d, h, 0, 0)
                .unwrap()
                .timestamp_millis()
        };
        assert_eq!(quota_day(jan(5, 23), MIN) + 1, quota_day(jan(6, 0), MIN));
        assert_eq!(quota_day(jan(6, 0), MIN), quota_day(jan(6, 23), MIN));
    }

    #[test]
    fn the_429_body_is_googles_quota_answer() {
        let r = Rejection {
            metric: PeopleWrite,
            scope: Scope::User,
            limit: 30,
        };
        let v = serde_json::to_value(rejection_body(Api::People, &r)).unwrap();
        let e = &v["error"];
        assert_eq!(e["code"], 429);
        assert_eq!(e["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(
            e["message"],
            "Quota exceeded for quota metric 'Critical write requests (Contact and Profile Updates)' \
             and limit 'Critical write requests (Contact and Profile Updates) per minute per user' \
             of service 'people.googleapis.com' for consumer 'project_number:100000000001'."
        );
        assert!(e.get("errors").is_none());
        let d = &e["details"][0];
        assert_eq!(d["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
        assert_eq!(d["reason"], "RATE_LIMIT_EXCEEDED");
        assert_eq!(d["domain"], "googleapis.com");
        assert_eq!(
            d["metadata"]["quota_metric"],
            "people.googleapis.com/critical_write_requests"
        );
        assert_eq!(
            d["metadata"]["quota_limit"],
            "CriticalWritesPerMinutePerProjectPerUser"
        );
        assert_eq!(d["metadata"]["quota_limit_value"], "30");
        assert_eq!(d["metadata"]["service"], "people.googleapis.com");
        assert_eq!(d["metadata"]["consumer"], "projects/100000000001");

        let r = Rejection {
            metric: DirectoryQuery,
            scope: Scope::Project,
            limit: 100,
        };
        let v = serde_json::to_value(rejection_body(Api::Directory, &r)).unwrap();
        let e = &v["error"];
        assert_eq!(e["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(e["errors"][0]["reason"], "rateLimitExceeded");
        assert_eq!(e["errors"][0]["domain"], "usageLimits");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("limit 'Queries per minute' of service 'admin.googleapis.com'")
        );
        assert_eq!(
            e["details"][0]["metadata"]["quota_limit"],
            "defaultPerMinutePerProject"
        );
        let resp = rejection_response(Api::Directory, &r);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(resp.headers().get("retry-after").is_none());
    }
}
