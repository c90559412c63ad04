//! Google's quota metrics and what each method costs in them: facts both the emulator
//! (which enforces them) and the client (which paces by them) need, kept in one table so
//! they cannot drift apart.
//!
//! Google charges by metric, not by call: a `batchCreateContacts` of 200 contacts costs
//! 6 critical writes, a delete costs one "contact deletes and contact group writes"
//! request. People publishes no numbers, so the `google` limits in [`METRICS`] are
//! assumptions, each with its public source next to it.

use serde::Deserialize;

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
    pub fn id(self) -> &'static str {
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

impl MetricInfo {
    /// The limit's name as the Cloud console's Quotas page shows it, e.g. "Critical write
    /// requests (Contact and Profile Updates) per minute per user".
    pub fn limit_display(&self, scope: Scope) -> String {
        let per = match self.period {
            Period::Minute => "per minute",
            Period::Day => "per day",
        };
        match scope {
            Scope::User => format!("{} {per} per user", self.display),
            Scope::Project => format!("{} {per}", self.display),
        }
    }

    /// The `google` default for one scope.
    pub fn google_limit(&self, scope: Scope) -> Option<u64> {
        match scope {
            Scope::User => self.google_user,
            Scope::Project => self.google_project,
        }
    }
}

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

    /// The metric and scope a 429's `ErrorInfo` names (`quota_metric`, `quota_limit`).
    /// The metric id is matched exactly; the scope from the limit's name (Google's per-user
    /// limit names end in `PerUser`).
    pub fn from_error_info(quota_metric: &str, quota_limit: &str) -> Option<(Metric, Scope)> {
        let info = METRICS.iter().find(|i| i.quota_metric == quota_metric)?;
        let scope = if quota_limit == info.user_limit_name || quota_limit.ends_with("PerUser") {
            Scope::User
        } else {
            Scope::Project
        };
        Some((info.metric, scope))
    }

    pub fn from_id(id: &str) -> Option<Metric> {
        METRICS.iter().find(|i| i.id == id).map(|i| i.metric)
    }
}

/// How many units of a metric one call costs.
#[derive(Debug, Clone, Copy)]
pub enum Units {
    Fixed(u64),
    /// One per contact in the request body (daily contact writes of a batch).
    PerContact,
}

use Metric::*;
use Units::{Fixed, PerContact};

pub type Cost = &'static [(Metric, Units)];

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
pub static COSTS: &[(&str, Cost)] = &[
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

pub fn cost_row(method_id: &str) -> Option<Cost> {
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
