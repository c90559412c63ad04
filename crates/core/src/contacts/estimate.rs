//! How long a contacts run takes under Google's quotas: pure arithmetic from the work
//! planned per address book and the limits, so `contacts plan` and `sync --dry-run` can
//! say "about 17 h, bound by 'Critical write requests per minute'" before anything is
//! written, and the report can compare that with what happened.
//!
//! Per-user quotas are independent, so a run takes at least as long as its busiest
//! user's consumption of each metric over the per-user limit; the project's limit
//! caps everyone together, so also the total over the project limit. The larger of the
//! two, over all metrics, is the **quota bound**: the same figure the benchmark
//! measures runs against. A daily limit adds whole days when a book needs more than a
//! day's writes.

use std::collections::BTreeMap;

use orgsync_wire::quota::{METRICS, Metric, Period, Scope, cost_of};
use serde::Serialize;

/// Google's batch sizes for contact writes.
pub const BATCH_CREATE: u64 = 200;
pub const BATCH_UPDATE: u64 = 200;
pub const BATCH_DELETE: u64 = 500;
/// Contacts per `connections.list` page.
pub const PAGE: u64 = 1000;

/// The work one address book needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BookWork {
    pub creates: u64,
    pub updates: u64,
    pub deletes: u64,
    /// Contacts read from the book (0 = one incremental read).
    pub contacts_read: u64,
    /// The managed label must be created first.
    pub new_group: bool,
    /// Extra labels (departments, shared lists) to create in this book: one group
    /// write each (a create batch holds contacts of any labels).
    pub new_labels: u64,
    /// A new book's personal contacts are read before the creates
    /// (`personal_duplicates = "skip"`): one more `connections.list`.
    pub personal_read: bool,
}

impl BookWork {
    /// Units of each metric this book costs, by the method cost table.
    pub fn units(&self) -> BTreeMap<Metric, u64> {
        let pages = self.contacts_read.div_ceil(PAGE).max(1) + u64::from(self.personal_read);
        let calls = [
            ("people.people.connections.list", pages),
            // The label is looked up only for a book with work or without a label yet;
            // an unchanged book is one incremental read and nothing else.
            (
                "people.contactGroups.list",
                u64::from(self.new_group || self.creates + self.updates + self.deletes > 0),
            ),
            (
                "people.contactGroups.create",
                u64::from(self.new_group) + self.new_labels,
            ),
            (
                "people.people.batchCreateContacts",
                self.creates.div_ceil(BATCH_CREATE),
            ),
            (
                "people.people.batchUpdateContacts",
                self.updates.div_ceil(BATCH_UPDATE),
            ),
            (
                "people.people.batchDeleteContacts",
                self.deletes.div_ceil(BATCH_DELETE),
            ),
        ];
        let mut units = BTreeMap::new();
        for (method, n) in calls.into_iter().filter(|&(_, n)| n > 0) {
            // Daily writes count contacts, not calls: added below.
            for (m, u) in cost_of(method, 0) {
                *units.entry(m).or_insert(0) += u * n;
            }
        }
        if self.creates + self.updates > 0 {
            *units.entry(Metric::PeopleDailyWrite).or_insert(0) += self.creates + self.updates;
        }
        units
    }
}

/// The limit that binds a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Binding {
    /// `people.write`.
    pub metric: &'static str,
    pub scope: &'static str,
    /// The limit as the Cloud console names it.
    pub name: String,
    pub limit: u64,
    /// The run's time if this limit were doubled (another limit may bind then).
    pub minutes_if_doubled: f64,
    /// The limit that binds once this one is doubled, when that is another one, with
    /// its value: a run bound by the per-user and the per-project limit alike needs
    /// both raised, and the admin should hear so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub then: Option<(String, u64)>,
}

/// How long a run is expected to take by quota alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub minutes: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<Binding>,
    /// Units the run costs, per metric id.
    pub units: BTreeMap<&'static str, u64>,
}

/// Units consumed: the busiest user's and the total, per metric.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consumption {
    pub max_per_user: BTreeMap<Metric, u64>,
    pub total: BTreeMap<Metric, u64>,
}

impl Consumption {
    pub fn of_books(books: impl IntoIterator<Item = BookWork>) -> Self {
        let mut c = Consumption::default();
        for b in books {
            c.add(&b.units());
        }
        c
    }

    /// Add one user's units.
    pub fn add(&mut self, units: &BTreeMap<Metric, u64>) {
        for (&m, &n) in units {
            let max = self.max_per_user.entry(m).or_insert(0);
            *max = (*max).max(n);
            *self.total.entry(m).or_insert(0) += n;
        }
    }
}

/// The quota bound of `consumption` under `limit(metric, scope)` (`None` = unlimited).
pub fn estimate(
    consumption: &Consumption,
    limit: &dyn Fn(Metric, Scope) -> Option<u64>,
) -> Estimate {
    let (minutes, binding) = bound(consumption, limit);
    let binding = binding.map(|(metric, scope, value)| {
        let doubled = |m: Metric, s: Scope| {
            let l = limit(m, s);
            if (m, s) == (metric, scope) {
                l.map(|v| v * 2)
            } else {
                l
            }
        };
        let info = metric.info();
        let (minutes_if_doubled, next) = bound(consumption, &doubled);
        let then = next
            .filter(|&(m, s, _)| (m, s) != (metric, scope))
            .map(|(m, s, v)| (m.info().limit_display(s), v));
        Binding {
            metric: info.id,
            scope: scope.id(),
            name: info.limit_display(scope),
            limit: value,
            minutes_if_doubled,
            then,
        }
    });
    Estimate {
        minutes,
        binding,
        units: consumption
            .total
            .iter()
            .map(|(m, n)| (m.id(), *n))
            .collect(),
    }
}

fn bound(
    c: &Consumption,
    limit: &dyn Fn(Metric, Scope) -> Option<u64>,
) -> (f64, Option<(Metric, Scope, u64)>) {
    let mut worst = (0.0, None);
    for info in METRICS {
        for (scope, units) in [
            (Scope::User, c.max_per_user.get(&info.metric)),
            (Scope::Project, c.total.get(&info.metric)),
        ] {
            let (Some(&units), Some(l)) = (units, limit(info.metric, scope)) else {
                continue;
            };
            let minutes = match info.period {
                Period::Minute => units as f64 / l as f64,
                // Within a day's limit a daily quota costs no time; past it, whole days.
                Period::Day => ((units.saturating_sub(1)) / l) as f64 * 1440.0,
            };
            if minutes > worst.0 {
                worst = (minutes, Some((info.metric, scope, l)));
            }
        }
    }
    worst
}

/// "about 17 h", "about 4 min", "about 8 s".
pub fn human_minutes(minutes: f64) -> String {
    if minutes < 1.0 {
        format!("about {:.0} s", (minutes * 60.0).ceil())
    } else if minutes < 90.0 {
        format!("about {:.0} min", minutes.ceil())
    } else if minutes < 48.0 * 60.0 {
        format!("about {:.1} h", minutes / 60.0)
    } else {
        format!("about {:.1} days", minutes / 1440.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A book with nothing to do is one incremental read: one critical read, no group
    /// read (the run does not look its label up), no write.
    #[test]
    fn an_unchanged_book_costs_one_read_and_nothing_else() {
        assert_eq!(
            BookWork::default().units(),
            BTreeMap::from([(Metric::PeopleRead, 1)])
        );
        let fresh = BookWork {
            creates: 10,
            new_group: true,
            ..BookWork::default()
        }
        .units();
        assert_eq!(fresh[&Metric::PeopleGroupRead], 1);
        assert_eq!(fresh[&Metric::PeopleDeleteGroupWrite], 1);
    }

    #[test]
    fn each_new_label_costs_one_group_write_and_no_extra_batch() {
        let plain = BookWork {
            creates: 10,
            new_group: true,
            ..BookWork::default()
        };
        let labelled = BookWork {
            new_labels: 12,
            ..plain
        };
        let (p, l) = (plain.units(), labelled.units());
        assert_eq!(l[&Metric::PeopleDeleteGroupWrite], 13);
        assert_eq!(l[&Metric::PeopleWrite], p[&Metric::PeopleWrite]);
    }

    fn google(m: Metric, s: Scope) -> Option<u64> {
        m.info().google_limit(s)
    }

    #[test]
    fn a_first_sync_of_ten_thousand_is_bound_by_project_critical_writes() {
        // 10,000 books each receiving 9,999 colleagues: 50 batches = 300 writes a book.
        let book = BookWork {
            creates: 9_999,
            new_group: true,
            ..BookWork::default()
        };
        let c = Consumption::of_books(std::iter::repeat_n(book, 10_000));
        let e = estimate(&c, &google);
        let b = e.binding.clone().unwrap();
        assert_eq!(
            (b.metric, b.scope, b.limit),
            ("people.write", "project", 3_000)
        );
        assert!((e.minutes - 1_000.0).abs() < 1e-9, "{e:?}"); // 3,000,000 / 3,000
        assert!(b.name.starts_with("Critical write requests"));
        // Doubled, critical reads (6 per batch + a page: 3,020,000 over 6,000) bind.
        assert!((b.minutes_if_doubled - 3_010_000.0 / 6_000.0).abs() < 1e-9);
        assert_eq!(human_minutes(e.minutes), "about 16.7 h");
    }

    #[test]
    fn a_small_org_is_bound_per_user_not_per_project() {
        let book = BookWork {
            creates: 1_999,
            ..BookWork::default()
        };
        let c = Consumption::of_books(std::iter::repeat_n(book, 10));
        let e = estimate(&c, &google);
        let b = e.binding.unwrap();
        assert_eq!((b.metric, b.scope), ("people.write", "user"));
        assert!((e.minutes - 60.0 / 30.0).abs() < 1e-9);
    }

    #[test]
    fn no_limits_no_bound_and_a_no_change_run_is_one_read_per_book() {
        let c = Consumption::of_books(std::iter::repeat_n(BookWork::default(), 3));
        assert_eq!(c.total[&Metric::PeopleRead], 3);
        assert!(!c.total.contains_key(&Metric::PeopleWrite));
        let e = estimate(&c, &|_, _| None);
        assert_eq!(e.minutes, 0.0);
        assert!(e.binding.is_none());
    }

    #[test]
    fn past_a_daily_limit_whole_days_are_added() {
        let book = BookWork {
            creates: 250_000,
            ..BookWork::default()
        };
        let c = Consumption::of_books([book]);
        let e = estimate(&c, &google);
        assert_eq!(e.binding.unwrap().metric, "people.daily_write");
        assert_eq!(e.minutes, 2.0 * 1440.0);
    }

    proptest! {
        /// More work never takes less time, and raising a limit never takes more.
        #[test]
        fn the_bound_is_monotone(
            books in proptest::collection::vec((0u64..5_000, 0u64..5_000, 0u64..5_000), 1..20),
            extra in 0u64..1_000,
            factor in 1u64..4,
        ) {
            let work: Vec<BookWork> = books.iter().map(|&(c, u, d)| BookWork {
                creates: c, updates: u, deletes: d, ..BookWork::default()
            }).collect();
            let base = estimate(&Consumption::of_books(work.clone()), &google).minutes;
            let mut more = work.clone();
            more[0].creates += extra;
            let bigger = estimate(&Consumption::of_books(more), &google).minutes;
            prop_assert!(bigger >= base);
            let raised = |m: Metric, s: Scope| google(m, s).map(|v| v * factor);
            let faster = estimate(&Consumption::of_books(work), &raised).minutes;
            prop_assert!(faster <= base);
        }
    }
}
