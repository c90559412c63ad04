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

/// A quota metric, as the Cloud console counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    PeopleRead,
    PeopleWrite,
    PeopleDeleteGroupWrite,
    PeopleGroupRead,
    PeoplePhotoWrite,
    PeopleDailyWrite,
    DirectoryQuery,
    GmailUnits,
    CalendarQuery,
}

/// Whether a limit is `per user` or for the whole project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    User,
    Project,
}

impl Scope {
    fn id(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Project => "project",
        }
    }
}

/// How long a limit's window is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A sliding window of one quota minute (`quota_minute_secs`).
    Minute,
    /// A calendar day in America/Los_Angeles (1,440 quota minutes).
    Day,
}

/// Everything known about one metric: its ids, the names Google's 429 uses, and the
/// `google` profile's limits.
pub struct MetricInfo {
    pub metric: Metric,
    /// The id used in `--quota METRIC.SCOPE=VALUE` and in stats.
    pub id: &'static str,
    /// The service named in the 429.
    pub service: &'static str,
    /// The metric's name as the Cloud console shows it (the 429's message).
    pub display: &'static str,
    /// `ErrorInfo.metadata.quota_metric`.
    pub quota_metric: &'static str,
    /// `ErrorInfo.metadata.quota_limit` for the per-user and the per-project limit.
    pub user_limit_name: &'static str,
    pub project_limit_name: &'static str,
    pub period: Period,
    /// The `google` profile: per user and per project.
    pub google_user: Option<u64>,
    pub google_project: Option<u64>,
}

/// The metrics and the `google` profile's numbers. These are assumptions:
///
/// - People publishes no numeric quotas; they appear only in the Cloud console. The
///   per-user figures are what users report: critical reads between 60 and 180 per
///   minute (180 in a 2021 console screenshot,
///   <https://github.com/onmyway133/notes/issues/517>; 90 per user per minute observed,
///   <https://github.com/MrCaspan/GAS-Gmail-Signature-Templator/pull/1>). Critical
///   writes, deletes and group writes 30, photo writes 50, group reads 90 and 100,000
///   daily contact writes per user are reported console defaults with no public page to
///   link, and the per-project figures (6,000 reads, 3,000 writes) are an order of
///   magnitude, not a published number: all assumptions, each settable with `--quota`.
/// - The message text and `quota_metric`/`quota_limit` ids of the critical-read metric
///   are observed in real answers (<https://github.com/taers232c/GAMADV-XTD3/issues/315>,
///   <https://github.com/fleapower/Google-Script-Contacts-Sync/issues/16>,
///   <https://github.com/mrmattwilkins/google-contacts-sync/issues/1>); the other People
///   metrics follow the same pattern and are assumed.
/// - Directory: 2,400 queries per minute per user
///   (<https://developers.google.com/workspace/admin/directory/v1/limits>).
/// - Gmail: 15,000 units per minute per user, 1,200,000 per project, with per-method
///   unit costs (<https://developers.google.com/workspace/gmail/api/reference/quota>).
/// - Calendar: 600 queries per minute per user
///   (<https://developers.google.com/workspace/calendar/api/guides/quota>).
/// - APIs that are not People name their request metric "Queries"
///   (<https://github.com/SpiderStrategies/node-gmail-api/issues/43>); its ids
///   (`SERVICE/default`, `defaultPerMinutePerUser`) are assumed.
pub static METRICS: &[MetricInfo] = &[
    MetricInfo {
        metric: Metric::PeopleRead,
        id: "people.read",
        service: "people.googleapis.com",
        display: "Critical read requests (Contact and Profile Reads)",
        quota_metric: "people.googleapis.com/critical_read_requests",
        user_limit_name: "CriticalReadsPerMinutePerProjectPerUser",
        project_limit_name: "CriticalReadsPerMinutePerProject",
        period: Period::Minute,
        google_user: Some(90),
        google_project: Some(6_000),
    },
    MetricInfo {
        metric: Metric::PeopleWrite,
        id: "people.write",
        service: "people.googleapis.com",
        display: "Critical write requests (Contact and Profile Updates)",
        quota_metric: "people.googleapis.com/critical_write_requests",
        user_limit_name: "CriticalWritesPerMinutePerProjectPerUser",
        project_limit_name: "CriticalWritesPerMinutePerProject",
        period: Period::Minute,
        google_user: Some(30),
        google_project: Some(3_000),
    },
    MetricInfo {
        metric: Metric::PeopleDeleteGroupWrite,
        id: "people.delete_group_write",
        service: "people.googleapis.com",
        display: "Write requests (Contact Deletes and Contact Group Writes)",
        quota_metric: "people.googleapis.com/write_requests",
        user_limit_name: "WritesPerMinutePerProjectPerUser",
        project_limit_name: "WritesPerMinutePerProject",
        period: Period::Minute,
        google_user: Some(30),
        google_project: Some(3_000),
    },
    MetricInfo {
        metric: Metric::PeopleGroupRead,
        id: "people.group_read",
        service: "people.googleapis.com",
        display: "Read requests (Contact Group Reads)",
        quota_metric: "people.googleapis.com/read_requests",
        user_limit_name: "ReadsPerMinutePerProjectPerUser",
        project_limit_name: "ReadsPerMinutePerProject",
        period: Period::Minute,
        google_user: Some(90),
        google_project: Some(6_000),
    },
    MetricInfo {
        metric: Metric::PeoplePhotoWrite,
        id: "people.photo_write",
        service: "people.googleapis.com",
        display: "Photo write requests (Contact and Profile Photo Updates)",
        quota_metric: "people.googleapis.com/photo_write_requests",
        user_limit_name: "PhotoWritesPerMinutePerProjectPerUser",
        project_limit_name: "PhotoWritesPerMinutePerProject",
        period: Period::Minute,
        google_user: Some(50),
        google_project: None,
    },
    MetricInfo {
        metric: Metric::PeopleDailyWrite,
        id: "people.daily_write",
        service: "people.googleapis.com",
        display: "Daily contact writes",
        quota_metric: "people.googleapis.com/daily_contact_writes",
        user_limit_name: "DailyContactWritesPerDayPerProjectPerUser",
        project_limit_name: "DailyContactWritesPerDayPerProject",
        period: Period::Day,
        google_user: Some(100_000),
        google_project: None,
    },
    MetricInfo {
        metric: Metric::DirectoryQuery,
        id: "directory.query",
        service: "admin.googleapis.com",
        display: "Queries",
        quota_metric: "admin.googleapis.com/default",
        user_limit_name: "defaultPerMinutePerUser",
        project_limit_name: "defaultPerMinutePerProject",
        period: Period::Minute,
        google_user: Some(2_400),
        google_project: None,
    },
    MetricInfo {
        metric: Metric::GmailUnits,
        id: "gmail.units",
        service: "gmail.googleapis.com",
        display: "Queries",
        quota_metric: "gmail.googleapis.com/default",
        user_limit_name: "defaultPerMinutePerUser",
        project_limit_name: "defaultPerMinutePerProject",
        period: Period::Minute,
        google_user: Some(15_000),
        google_project: Some(1_200_000),
    },
    MetricInfo {
        metric: Metric::CalendarQuery,
        id: "calendar.query",
        service: "calendar-json.googleapis.com",
        display: "Queries",
        quota_metric: "calendar-json.googleapis.com/default",
        user_limit_name: "defaultPerMinutePerUser",
        project_limit_name: "defaultPerMinutePerProject",
        period: Period::Minute,
        google_user: Some(600),
        google_project: None,
    },
];

impl Metric {
    pub fn info(self) -> &'static MetricInfo {
        METRICS
            .iter()
            .find(|i| i.metric == self)
            .expect("every metric has a row in METRICS")
    }

    pub fn id(self) -> &'static str {
        self.info().id
    }

    pub fn from_id(id: &str) -> Option<Metric> {
        METRICS.iter().find(|i| i.id == id).map(|i| i.metric)
    }
}

/// How many units of a metric one call costs.
#[derive(Debug, Clone, Copy)]
enum Units {
    Fixed(u64),
    /// One per contact in the request body (daily contact writes of a batch).
    PerContact,
}

use Metric::*;
use Units::{Fixed, PerContact};

type Cost = &'static [(Metric, Units)];

const ONE_READ: Cost = &[(PeopleRead, Fixed(1))];
/// A single contact write: <https://developers.google.com/people/v1/contacts> says each
/// create or update costs a critical read, a critical write and a daily contact write.
const SINGLE_WRITE: Cost = &[
    (PeopleRead, Fixed(1)),
    (PeopleWrite, Fixed(1)),
    (PeopleDailyWrite, Fixed(1)),
];
/// A batch create or update (same page): 6 critical reads, 6 critical writes and one
/// daily contact write per contact.
const BATCH_WRITE: Cost = &[
    (PeopleRead, Fixed(6)),
    (PeopleWrite, Fixed(6)),
    (PeopleDailyWrite, PerContact),
];
const ONE_DELETE: Cost = &[(PeopleDeleteGroupWrite, Fixed(1))];
const GROUP_WRITE: Cost = &[(PeopleDeleteGroupWrite, Fixed(1))];
const GROUP_READ: Cost = &[(PeopleGroupRead, Fixed(1))];
const PHOTO_WRITE: Cost = &[(PeoplePhotoWrite, Fixed(1))];
const DIRECTORY: Cost = &[(DirectoryQuery, Fixed(1))];
const CALENDAR: Cost = &[(CalendarQuery, Fixed(1))];
/// Gmail rows: `gmail!(N)` costs N quota units.
macro_rules! gmail {
    ($units:literal) => {
        &[(GmailUnits, Fixed($units))]
    };
}

/// What each discovery method id costs. An id ending in `.` covers every method under
/// it (Directory and Calendar charge one query per call, whatever the method); an exact
/// id wins over a prefix. People costs are from the contacts guide where it gives them
/// (create, update, batches, deletes) and assumed otherwise (a `get`, a search or an
/// other-contacts read is one critical read; group methods one group read or write).
/// Gmail units are Google's per-method table
/// (<https://developers.google.com/workspace/gmail/api/reference/quota>); methods it
/// does not list cost what their closest listed sibling costs (`labels.patch` as
/// `labels.update`, `sendAs.patch` as `sendAs.update`), `get`/`list` 1 and other CSE
/// and language settings 5 (assumed).
static COSTS: &[(&str, Cost)] = &[
    // People
    ("people.people.createContact", SINGLE_WRITE),
    ("people.people.updateContact", SINGLE_WRITE),
    ("people.people.batchCreateContacts", BATCH_WRITE),
    ("people.people.batchUpdateContacts", BATCH_WRITE),
    ("people.people.deleteContact", ONE_DELETE),
    (
        "people.people.batchDeleteContacts",
        &[(PeopleDeleteGroupWrite, Fixed(10))],
    ),
    ("people.people.connections.list", ONE_READ),
    ("people.people.get", ONE_READ),
    ("people.people.getBatchGet", ONE_READ),
    ("people.people.searchContacts", ONE_READ),
    ("people.people.listDirectoryPeople", ONE_READ),
    ("people.people.searchDirectoryPeople", ONE_READ),
    ("people.people.updateContactPhoto", PHOTO_WRITE),
    ("people.people.deleteContactPhoto", PHOTO_WRITE),
    ("people.contactGroups.create", GROUP_WRITE),
    ("people.contactGroups.update", GROUP_WRITE),
    ("people.contactGroups.delete", GROUP_WRITE),
    ("people.contactGroups.members.modify", GROUP_WRITE),
    ("people.contactGroups.get", GROUP_READ),
    ("people.contactGroups.list", GROUP_READ),
    ("people.contactGroups.batchGet", GROUP_READ),
    ("people.otherContacts.list", ONE_READ),
    ("people.otherContacts.search", ONE_READ),
    (
        "people.otherContacts.copyOtherContactToMyContactsGroup",
        SINGLE_WRITE,
    ),
    // Directory and Calendar: one query per call.
    ("directory.", DIRECTORY),
    ("admin.", DIRECTORY),
    ("calendar.", CALENDAR),
    // Gmail: quota units per method.
    ("gmail.users.drafts.create", gmail!(10)),
    ("gmail.users.drafts.delete", gmail!(10)),
    ("gmail.users.drafts.get", gmail!(5)),
    ("gmail.users.drafts.list", gmail!(5)),
    ("gmail.users.drafts.send", gmail!(100)),
    ("gmail.users.drafts.update", gmail!(15)),
    ("gmail.users.getProfile", gmail!(1)),
    ("gmail.users.history.list", gmail!(2)),
    ("gmail.users.labels.create", gmail!(5)),
    ("gmail.users.labels.delete", gmail!(5)),
    ("gmail.users.labels.get", gmail!(1)),
    ("gmail.users.labels.list", gmail!(1)),
    ("gmail.users.labels.patch", gmail!(5)),
    ("gmail.users.labels.update", gmail!(5)),
    ("gmail.users.messages.attachments.get", gmail!(5)),
    ("gmail.users.messages.batchDelete", gmail!(50)),
    ("gmail.users.messages.batchModify", gmail!(50)),
    ("gmail.users.messages.delete", gmail!(10)),
    ("gmail.users.messages.get", gmail!(5)),
    ("gmail.users.messages.import", gmail!(25)),
    ("gmail.users.messages.insert", gmail!(25)),
    ("gmail.users.messages.list", gmail!(5)),
    ("gmail.users.messages.modify", gmail!(5)),
    ("gmail.users.messages.send", gmail!(100)),
    ("gmail.users.messages.trash", gmail!(5)),
    ("gmail.users.messages.untrash", gmail!(5)),
    ("gmail.users.settings.cse.identities.create", gmail!(5)),
    ("gmail.users.settings.cse.identities.delete", gmail!(5)),
    ("gmail.users.settings.cse.identities.get", gmail!(1)),
    ("gmail.users.settings.cse.identities.list", gmail!(1)),
    ("gmail.users.settings.cse.identities.patch", gmail!(5)),
    ("gmail.users.settings.cse.keypairs.create", gmail!(5)),
    ("gmail.users.settings.cse.keypairs.disable", gmail!(5)),
    ("gmail.users.settings.cse.keypairs.enable", gmail!(5)),
    ("gmail.users.settings.cse.keypairs.get", gmail!(1)),
    ("gmail.users.settings.cse.keypairs.list", gmail!(1)),
    ("gmail.users.settings.cse.keypairs.obliterate", gmail!(5)),
    ("gmail.users.settings.delegates.create", gmail!(100)),
    ("gmail.users.settings.delegates.delete", gmail!(5)),
    ("gmail.users.settings.delegates.get", gmail!(1)),
    ("gmail.users.settings.delegates.list", gmail!(1)),
    ("gmail.users.settings.filters.create", gmail!(5)),
    ("gmail.users.settings.filters.delete", gmail!(5)),
    ("gmail.users.settings.filters.get", gmail!(1)),
    ("gmail.users.settings.filters.list", gmail!(1)),
    (
        "gmail.users.settings.forwardingAddresses.create",
        gmail!(100),
    ),
    ("gmail.users.settings.forwardingAddresses.delete", gmail!(5)),
    ("gmail.users.settings.forwardingAddresses.get", gmail!(1)),
    ("gmail.users.settings.forwardingAddresses.list", gmail!(1)),
    ("gmail.users.settings.getAutoForwarding", gmail!(1)),
    ("gmail.users.settings.getImap", gmail!(1)),
    ("gmail.users.settings.getLanguage", gmail!(1)),
    ("gmail.users.settings.getPop", gmail!(1)),
    ("gmail.users.settings.getVacation", gmail!(1)),
    ("gmail.users.settings.sendAs.create", gmail!(100)),
    ("gmail.users.settings.sendAs.delete", gmail!(5)),
    ("gmail.users.settings.sendAs.get", gmail!(1)),
    ("gmail.users.settings.sendAs.list", gmail!(1)),
    ("gmail.users.settings.sendAs.patch", gmail!(100)),
    ("gmail.users.settings.sendAs.smimeInfo.delete", gmail!(5)),
    ("gmail.users.settings.sendAs.smimeInfo.get", gmail!(1)),
    ("gmail.users.settings.sendAs.smimeInfo.insert", gmail!(5)),
    ("gmail.users.settings.sendAs.smimeInfo.list", gmail!(1)),
    (
        "gmail.users.settings.sendAs.smimeInfo.setDefault",
        gmail!(5),
    ),
    ("gmail.users.settings.sendAs.update", gmail!(100)),
    ("gmail.users.settings.sendAs.verify", gmail!(100)),
    ("gmail.users.settings.updateAutoForwarding", gmail!(5)),
    ("gmail.users.settings.updateImap", gmail!(5)),
    ("gmail.users.settings.updateLanguage", gmail!(5)),
    ("gmail.users.settings.updatePop", gmail!(100)),
    ("gmail.users.settings.updateVacation", gmail!(5)),
    ("gmail.users.stop", gmail!(50)),
    ("gmail.users.threads.delete", gmail!(20)),
    ("gmail.users.threads.get", gmail!(10)),
    ("gmail.users.threads.list", gmail!(10)),
    ("gmail.users.threads.modify", gmail!(10)),
    ("gmail.users.threads.trash", gmail!(10)),
    ("gmail.users.threads.untrash", gmail!(10)),
    ("gmail.users.watch", gmail!(100)),
];

fn cost_row(method_id: &str) -> Option<Cost> {
    if method_id.ends_with(".unknown") {
        return None; // not a method: Google answers 404 and charges nothing
    }
    COSTS
        .iter()
        .find(|(id, _)| *id == method_id)
        .or_else(|| {
            COSTS
                .iter()
                .filter(|(id, _)| id.ends_with('.') && method_id.starts_with(id))
                .max_by_key(|(id, _)| id.len())
        })
        .map(|(_, cost)| *cost)
}

/// Whether the method's cost depends on the number of contacts in its body.
pub fn charges_per_contact(method_id: &str) -> bool {
    cost_row(method_id).is_some_and(|c| c.iter().any(|(_, u)| matches!(u, PerContact)))
}

/// The units one call of `method_id` costs, per metric (zero-unit entries left out).
pub fn cost_of(method_id: &str, contacts: u64) -> Vec<(Metric, u64)> {
    cost_row(method_id)
        .unwrap_or(&[])
        .iter()
        .map(|&(m, u)| {
            let n = match u {
                Fixed(n) => n,
                PerContact => contacts,
            };
            (m, n)
        })
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// The number of contacts a batch create or update carries: `contacts` is a list
/// (`batchCreateContacts`) or a map keyed by resource name (`batchUpdateContacts`).
/// Counted without building the contacts; a body that does not parse counts 0 (the
/// handler answers it with a 400).
pub fn contacts_in_body(body: &[u8]) -> u64 {
    #[derive(Deserialize)]
    struct Batch {
        #[serde(default)]
        contacts: Count,
    }
    serde_json::from_slice::<Batch>(body).map_or(0, |b| b.contacts.0)
}

/// The number of elements of a JSON list or entries of a JSON object.
#[derive(Default)]
struct Count(u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list or an object")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while a.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Count, A::Error> {
                let mut n = 0;
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_any(V)
    }
}

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
    let per = match info.period {
        Period::Minute => "per minute",
        Period::Day => "per day",
    };
    match scope {
        Scope::User => format!("{} {per} per user", info.display),
        Scope::Project => format!("{} {per}", info.display),
    }
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
