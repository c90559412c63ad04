//! What a contacts run reports: per user and in total, for people (`render_text`) and
//! for scripts (`serde` → `--json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use orgsync_client::{MetricUsage, StatsSnapshot};
use orgsync_core::contacts::estimate::{Estimate, human_minutes};
use orgsync_core::guard::GuardVerdict;
use serde::Serialize;

/// Which job the run performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Read and plan; change nothing.
    Plan,
    /// Read, plan, apply, record.
    Sync,
    /// Remove everything orgsync created.
    Undo,
}

/// How a target's address book was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReadPath {
    /// Sync token + unchanged directory view: one read, nothing to do.
    Incremental,
    /// Every page of the address book.
    Full,
    /// A brand-new managed group: nothing of ours can exist yet, the read comes after
    /// the writes (and verifies them).
    Fresh,
    /// Not read at all: a push-driven run (`serve`) whose directory view of this book is
    /// the one last written. Personal edits are left to the scheduled full run.
    Unread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UserStatus {
    /// Writes applied (or, in plan mode, planned).
    Changed,
    /// Nothing to write.
    Unchanged,
    /// Deliberately not processed (e.g. the 25,000-contact cap); see `reason`.
    Skipped,
    /// An error stopped this user; see `reason`. Other users went on.
    Failed,
    /// The per-user safety guard stopped this user before any write; see `reason`.
    Guarded,
}

/// One planned or applied action, as `contacts plan` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionSummary {
    /// `create`, `update`, `relabel`, `delete`, `mergeDuplicate`, `photo`.
    pub action: &'static str,
    /// The directory user the contact shows (empty for an orphan).
    pub directory_id: String,
    /// Display name (or resource name when it has none).
    pub name: String,
    /// Fields an update replaces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// The outcome for one target user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserOutcome {
    pub email: String,
    pub directory_id: String,
    pub status: UserStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<ReadPath>,
    pub created: usize,
    pub updated: usize,
    pub relabelled: usize,
    pub deleted: usize,
    pub duplicates_merged: usize,
    /// Colleagues not added: the target has a personal contact with their email
    /// (`personal_duplicates = "skip"`).
    pub skipped_duplicates: usize,
    pub unchanged: usize,
    /// Personal (non-orgsync) contacts seen; never touched.
    pub personal: usize,
    /// Managed contacts seen before the run.
    pub managed: usize,
    /// Photos uploaded (`include_photos`; in plan mode: to upload).
    pub photos: usize,
    /// Photo uploads that failed; the next run retries them.
    pub photos_failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Plan mode only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionSummary>,
}

impl UserOutcome {
    pub fn new(email: &str, directory_id: &str, status: UserStatus) -> Self {
        UserOutcome {
            email: email.to_string(),
            directory_id: directory_id.to_string(),
            status,
            path: None,
            created: 0,
            updated: 0,
            relabelled: 0,
            deleted: 0,
            duplicates_merged: 0,
            skipped_duplicates: 0,
            unchanged: 0,
            personal: 0,
            managed: 0,
            photos: 0,
            photos_failed: 0,
            reason: None,
            actions: Vec::new(),
        }
    }

    pub fn failed(email: &str, directory_id: &str, reason: String) -> Self {
        UserOutcome {
            reason: Some(reason),
            ..Self::new(email, directory_id, UserStatus::Failed)
        }
    }

    pub fn writes(&self) -> usize {
        self.created + self.updated + self.relabelled + self.deleted + self.duplicates_merged
    }
}

/// Totals over all users.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub targets: usize,
    pub created: usize,
    pub updated: usize,
    pub relabelled: usize,
    pub deleted: usize,
    pub duplicates_merged: usize,
    pub skipped_duplicates: usize,
    pub unchanged: usize,
    pub personal_seen: usize,
    pub photos: usize,
    pub photos_failed: usize,
    pub users_changed: usize,
    pub users_unchanged: usize,
    pub users_incremental: usize,
    /// Books a push-driven run did not need to read (their view had not changed).
    pub users_unread: usize,
    pub users_skipped: usize,
    pub users_failed: usize,
    pub users_guarded: usize,
}

/// Calls made by the run, per API method (discovery ids).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallReport {
    pub total: u64,
    /// Attempts beyond the first (retries after errors).
    pub retries: u64,
    pub by_method: BTreeMap<String, u64>,
}

impl From<&StatsSnapshot> for CallReport {
    fn from(s: &StatsSnapshot) -> Self {
        CallReport {
            total: s.total_calls,
            retries: s.total_retries,
            by_method: s
                .methods
                .iter()
                .map(|(m, st)| (m.to_string(), st.calls))
                .collect(),
        }
    }
}

/// How long the quotas make a run, in wall-clock time (quota minutes × their length).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaEstimate {
    pub seconds: f64,
    #[serde(flatten)]
    pub estimate: Estimate,
    /// The length of a quota minute the estimate was made with.
    pub minute_secs: f64,
}

impl QuotaEstimate {
    pub fn new(estimate: Estimate, minute: std::time::Duration) -> Self {
        let minute_secs = minute.as_secs_f64();
        QuotaEstimate {
            seconds: estimate.minutes * minute_secs,
            estimate,
            minute_secs,
        }
    }

    /// "about 17 h, bound by 'Critical write requests … per minute' (3,000); at 6,000 it
    /// would take about 8 h".
    pub fn describe(&self) -> String {
        let scale = self.minute_secs / 60.0;
        let mut s = human_minutes(self.estimate.minutes * scale);
        let Some(b) = &self.estimate.binding else {
            return s;
        };
        let _ = write!(s, ", bound by '{}' ({})", b.name, thousands(b.limit));
        match &b.then {
            // Doubling the first limit saves (nearly) nothing: another binds as tightly.
            Some((next, limit)) if b.minutes_if_doubled >= self.estimate.minutes * 0.95 => {
                let _ = write!(
                    s,
                    " and equally by '{next}' ({}): raising one alone would not shorten it",
                    thousands(*limit)
                );
            }
            Some((next, _)) => {
                let _ = write!(
                    s,
                    "; at {} it would take {}, then bound by '{next}'",
                    thousands(b.limit * 2),
                    human_minutes(b.minutes_if_doubled * scale)
                );
            }
            None => {
                let _ = write!(
                    s,
                    "; at {} it would take {}",
                    thousands(b.limit * 2),
                    human_minutes(b.minutes_if_doubled * scale)
                );
            }
        }
        s
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Quotas in a run: what was predicted, what each metric cost, the waits and the 429s.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaReport {
    /// Before a sync: from the stored state; for a plan or a dry run: from the plans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted: Option<QuotaEstimate>,
    /// 429 answers seen (each retried; none is a failure while the run goes on).
    pub http_429: u64,
    pub metrics: Vec<MetricUsage>,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactsReport {
    pub mode: Mode,
    pub dry_run: bool,
    /// Users the directory read returned.
    pub directory_users: usize,
    /// Selected sources (whose contacts are copied).
    pub sources: usize,
    pub guard: GuardVerdict,
    pub totals: Totals,
    pub users: Vec<UserOutcome>,
    pub calls: CallReport,
    pub duration_ms: u64,
    /// Address books worked on at once.
    pub concurrency: usize,
    pub quota: QuotaReport,
    /// Numbers `phone_format = "e164"` could not read, written as the directory has them
    /// (`[email, number]`; fix them in the directory or set `phone_region`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phones_kept_as_written: Vec<(String, String)>,
    /// `custom_fields` (`schema.field`) no selected user has a value for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub custom_fields_unseen: Vec<String>,
}

impl ContactsReport {
    pub fn totals_from(users: &[UserOutcome]) -> Totals {
        let mut t = Totals {
            targets: users.len(),
            ..Totals::default()
        };
        for u in users {
            t.created += u.created;
            t.updated += u.updated;
            t.relabelled += u.relabelled;
            t.deleted += u.deleted;
            t.duplicates_merged += u.duplicates_merged;
            t.skipped_duplicates += u.skipped_duplicates;
            t.unchanged += u.unchanged;
            t.personal_seen += u.personal;
            t.photos += u.photos;
            t.photos_failed += u.photos_failed;
            match u.status {
                UserStatus::Changed => t.users_changed += 1,
                UserStatus::Unchanged => t.users_unchanged += 1,
                UserStatus::Skipped => t.users_skipped += 1,
                UserStatus::Failed => t.users_failed += 1,
                UserStatus::Guarded => t.users_guarded += 1,
            }
            match u.path {
                Some(ReadPath::Incremental) => t.users_incremental += 1,
                Some(ReadPath::Unread) => t.users_unread += 1,
                _ => {}
            }
        }
        t
    }

    /// The guard stopped the whole run, or some users.
    pub fn guard_stopped(&self) -> bool {
        !self.guard.may_proceed() || self.totals.users_guarded > 0
    }

    /// A summary for people (the report mailed by `--report-to` too).
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let verb = match (self.mode, self.dry_run) {
            (Mode::Plan, _) => "Plan",
            (Mode::Sync, true) => "Sync (dry run)",
            (Mode::Sync, false) => "Sync",
            (Mode::Undo, true) => "Undo (dry run)",
            (Mode::Undo, false) => "Undo",
        };
        let t = &self.totals;
        let _ = writeln!(
            out,
            "{verb}: {} target users, {} source users ({} read from the directory), {:.1} s",
            t.targets,
            self.sources,
            self.directory_users,
            self.duration_ms as f64 / 1000.0
        );
        if !self.phones_kept_as_written.is_empty() {
            let shown: Vec<String> = self
                .phones_kept_as_written
                .iter()
                .take(3)
                .map(|(email, number)| format!("{email}: {number:?}"))
                .collect();
            let more = self.phones_kept_as_written.len().saturating_sub(3);
            let _ = writeln!(
                out,
                "phones: {} number(s) are not valid E.164 numbers for phone_region and were \
                 written as the directory has them ({}{}); correct them in the directory or set \
                 [contacts] phone_region",
                self.phones_kept_as_written.len(),
                shown.join(", "),
                if more > 0 {
                    format!(", and {more} more")
                } else {
                    String::new()
                }
            );
        }
        if !self.custom_fields_unseen.is_empty() {
            let _ = writeln!(
                out,
                "custom fields: no selected user has a value for {}; check the schema and \
                 field names against Admin console → Directory → Users → Manage custom \
                 attributes (names are case-sensitive)",
                self.custom_fields_unseen.join(", ")
            );
        }
        if let GuardVerdict::Stop {
            reason,
            what_to_check,
        } = &self.guard
        {
            let _ = writeln!(out, "STOPPED: {reason}\n  what to check: {what_to_check}");
        }
        if let GuardVerdict::Forced { reason } = &self.guard {
            let _ = writeln!(out, "guard overridden by --force: {reason}");
        }
        let planned = if self.mode == Mode::Plan || self.dry_run {
            "would be "
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  contacts {planned}created {}, updated {}, relabelled {}, deleted {}, duplicates merged {}, unchanged {}",
            t.created, t.updated, t.relabelled, t.deleted, t.duplicates_merged, t.unchanged
        );
        if t.skipped_duplicates > 0 {
            let _ = writeln!(
                out,
                "  skipped: {} already in the address book (a personal contact has the \
                 colleague's email; orgsync adds its copy once that contact is gone)",
                t.skipped_duplicates
            );
        }
        let _ = writeln!(
            out,
            "  users: {} changed, {} unchanged ({} by one incremental read), {} skipped, {} failed, {} stopped by the guard",
            t.users_changed,
            t.users_unchanged,
            t.users_incremental,
            t.users_skipped,
            t.users_failed,
            t.users_guarded
        );
        if t.photos + t.photos_failed > 0 {
            let _ = writeln!(
                out,
                "  photos {planned}uploaded {}, failed {} (retried by the next run)",
                t.photos, t.photos_failed
            );
        }
        let _ = writeln!(
            out,
            "  personal contacts seen: {} (never modified)",
            t.personal_seen
        );
        for u in &self.users {
            if let Some(reason) = &u.reason {
                let what = match u.status {
                    UserStatus::Failed => "failed",
                    UserStatus::Skipped => "skipped",
                    UserStatus::Guarded => "stopped",
                    _ => "note",
                };
                let _ = writeln!(out, "  {what}: {}: {reason}", u.email);
            }
        }
        self.render_quota(&mut out);
        let _ = writeln!(
            out,
            "  API calls: {} ({} retries)",
            self.calls.total, self.calls.retries
        );
        for (method, n) in &self.calls.by_method {
            let _ = writeln!(out, "    {method:<42} {n:>7}");
        }
        out
    }

    /// The quota lines: the prediction (and, after a sync, how it compares), the
    /// address books at once, per-metric waits, 429s and limits a 429 changed.
    fn render_quota(&self, out: &mut String) {
        let q = &self.quota;
        if let Some(p) = &q.predicted {
            let what = if self.mode == Mode::Sync && !self.dry_run {
                let took = self.duration_ms as f64 / 1000.0;
                format!(
                    "predicted by quota {} (took {})",
                    p.describe(),
                    human_minutes(took / 60.0)
                )
            } else {
                format!("by quota a sync would take {}", p.describe())
            };
            let _ = writeln!(out, "  time: {what}");
        }
        if self.concurrency > 0 {
            let _ = writeln!(out, "  address books at once: {}", self.concurrency);
        }
        let waited: Vec<String> = q
            .metrics
            .iter()
            .filter(|m| m.waits > 0)
            .map(|m| {
                format!(
                    "{} {} calls, {:.1} s in all",
                    m.id,
                    m.waits,
                    m.waited_ms as f64 / 1000.0
                )
            })
            .collect();
        if !waited.is_empty() || q.http_429 > 0 {
            let _ = writeln!(
                out,
                "  quota: waited for {}; 429 answers {} (retried, not failures)",
                if waited.is_empty() {
                    "nothing".to_string()
                } else {
                    waited.join("; ")
                },
                q.http_429
            );
        }
        for m in &q.metrics {
            for a in &m.adapted {
                let how = match a.source {
                    orgsync_client::quota::LimitSource::Adopted => "named by Google's 429",
                    _ => "backed off after 429s, creeping back",
                };
                let _ = writeln!(
                    out,
                    "  quota limit adapted: '{}' {} → {} ({how}); set it in [google.quotas.per_{}] {} = {}",
                    a.limit_name,
                    a.configured
                        .map_or("unlimited".to_string(), |c| c.to_string()),
                    a.now,
                    a.scope,
                    m.id.replace('.', "_"),
                    a.now
                );
            }
        }
    }
}

#[cfg(test)]
mod quota_text_tests {
    use super::*;
    use orgsync_core::contacts::estimate::Binding;

    #[test]
    fn the_prediction_names_the_binding_quota_and_the_increase_to_ask_for() {
        let e = QuotaEstimate::new(
            Estimate {
                minutes: 1000.0,
                binding: Some(Binding {
                    metric: "people.write",
                    scope: "project",
                    name: "Critical write requests (Contact and Profile Updates) per minute".into(),
                    limit: 3000,
                    minutes_if_doubled: 501.7,
                    then: None,
                }),
                units: Default::default(),
            },
            std::time::Duration::from_secs(60),
        );
        assert_eq!(
            e.describe(),
            "about 16.7 h, bound by 'Critical write requests (Contact and Profile Updates) \
             per minute' (3,000); at 6,000 it would take about 8.4 h"
        );
        assert_eq!(e.seconds, 60_000.0);
        assert_eq!(thousands(1_200_000), "1,200,000");
    }

    /// A hundred first syncs of 10,000 contacts: each user's 294 write units take 9.8
    /// minutes at 30 per user, and the 29,400 in all take 9.8 minutes at 3,000 per
    /// project. Asking Google to double either limit alone buys nothing; the line must
    /// say so instead of promising a time that will not come.
    #[test]
    fn a_run_bound_by_two_limits_alike_says_both_must_be_raised() {
        use orgsync_core::contacts::estimate::{Consumption, estimate};
        use orgsync_wire::quota::{Metric, Scope};
        let mut c = Consumption::default();
        for _ in 0..100 {
            c.add(&BTreeMap::from([(Metric::PeopleWrite, 294)]));
        }
        let limits = |m: Metric, s: Scope| match (m, s) {
            (Metric::PeopleWrite, Scope::User) => Some(30),
            (Metric::PeopleWrite, Scope::Project) => Some(3000),
            _ => None,
        };
        let e = QuotaEstimate::new(estimate(&c, &limits), std::time::Duration::from_secs(60));
        let line = e.describe();
        assert!(line.starts_with("about 10 min, bound by '"), "{line}");
        assert!(line.contains("(30) and equally by '"), "{line}");
        assert!(
            line.contains("(3,000): raising one alone would not shorten it"),
            "{line}"
        );
        assert!(!line.contains("at 60 it would take"), "{line}");
    }
}
