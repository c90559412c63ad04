//! Pacing by Google's quota model: spend the budget, never bounce off it.
//!
//! Google charges by **metric**, with a cost per method (a `batchCreateContacts` costs
//! 6 critical reads and 6 critical writes), and limits each metric per user and per
//! project over a sliding minute. Counting calls instead either waits for nothing (a
//! user with four calls) or runs into 429s (a big book's batches). So the client keeps,
//! for every (metric, user) and (metric, project), the units spent in the last quota
//! minute, and holds a call back only until its cost fits under every limit it touches.
//! The costs are the same table the emulator charges by ([`orgsync_wire::quota`]).
//!
//! - **Bursts are free.** A call waits only when the window is full, so a user with a
//!   few calls never waits, and a big book spends a whole minute's budget at once.
//! - **Never early.** A call counts from the moment it is sent, and its units leave the
//!   window one minute after its *answer* arrived. Google charged it somewhere in
//!   between, so the client's window always expires after Google's: pacing alone can
//!   not cause a 429.
//! - **Adapting.** A 429 that names its metric and `quota_limit_value` (Google's
//!   `ErrorInfo`) makes that limit the client's for the rest of the run. One that names
//!   nothing halves the per-user limit of what the call costs, which then creeps back by
//!   about one unit a minute (additive increase, multiplicative decrease). A refused call
//!   consumed nothing, so it is not charged.
//! - **Daily limits** (daily contact writes) are not paced: a run that reaches one
//!   waits hours, which is a finding for the report, not something to sleep through.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use orgsync_wire::quota::{METRICS, Metric, Period, Scope, cost_of};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;

/// The per-minute limits the client paces to, by (metric, scope); a metric absent here
/// is not paced. Built from the `google` defaults and the config's overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaLimits {
    per: BTreeMap<(Metric, Scope), u64>,
    /// The length of a quota minute: 60 s against Google; shorter against an emulator
    /// started with the same `--quota-minute-secs`, so a benchmark can run hours of
    /// quota time in minutes with the same ratio to its bound.
    pub minute: Duration,
}

impl Default for QuotaLimits {
    fn default() -> Self {
        Self::google()
    }
}

impl QuotaLimits {
    /// Google's defaults, as far as they are known ([`METRICS`]).
    pub fn google() -> Self {
        let mut per = BTreeMap::new();
        for info in METRICS {
            for scope in [Scope::User, Scope::Project] {
                if let Some(v) = info.google_limit(scope) {
                    per.insert((info.metric, scope), v);
                }
            }
        }
        QuotaLimits {
            per,
            minute: Duration::from_secs(60),
        }
    }

    /// No pacing at all: every call goes out at once (an emulator without quotas).
    pub fn unlimited() -> Self {
        QuotaLimits {
            per: BTreeMap::new(),
            minute: Duration::from_secs(60),
        }
    }

    /// Set (or, with `None`, lift) one limit.
    pub fn set(&mut self, metric: Metric, scope: Scope, limit: Option<u64>) -> &mut Self {
        match limit {
            Some(v) => self.per.insert((metric, scope), v.max(1)),
            None => self.per.remove(&(metric, scope)),
        };
        self
    }

    pub fn get(&self, metric: Metric, scope: Scope) -> Option<u64> {
        self.per.get(&(metric, scope)).copied()
    }

    pub fn is_unlimited(&self) -> bool {
        self.per.is_empty()
    }
}

/// How the limit in force came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// From the configuration (or the `google` default).
    Configured,
    /// Named by a 429's `quota_limit_value`.
    Adopted,
    /// Halved after a 429 that named no limit, creeping back up.
    Backoff,
}

#[derive(Debug, Clone)]
struct Limit {
    configured: Option<u64>,
    /// The limit in force; fractional so that additive increase can creep.
    current: Option<f64>,
    source: LimitSource,
}

impl Limit {
    fn effective(&self) -> Option<u64> {
        self.current.map(|c| (c.floor() as u64).max(1))
    }
}

/// Units spent in one (metric, user) or (metric, project) window.
#[derive(Debug, Default)]
struct Window {
    /// Sent, not yet answered: counted, with no expiry yet.
    in_flight: u64,
    /// (answered at, units), oldest first.
    done: VecDeque<(Instant, u64)>,
    done_sum: u64,
}

impl Window {
    fn prune(&mut self, now: Instant, minute: Duration) {
        while let Some(&(t, u)) = self.done.front() {
            if t + minute <= now {
                self.done.pop_front();
                self.done_sum -= u;
            } else {
                break;
            }
        }
    }

    fn used(&self) -> u64 {
        self.in_flight + self.done_sum
    }

    /// When `units` more fit under `limit`, if time alone frees enough (`None`: only an
    /// answer to a call in flight can).
    fn fits_at(&self, units: u64, limit: u64, minute: Duration) -> Option<Instant> {
        // A call costing more than the whole limit needs an empty window.
        let excess = if units > limit {
            self.used()
        } else {
            (self.used() + units).saturating_sub(limit)
        };
        let mut freed = 0;
        for &(t, u) in &self.done {
            freed += u;
            if freed >= excess {
                return Some(t + minute);
            }
        }
        None
    }

    fn idle(&self) -> bool {
        self.in_flight == 0 && self.done.is_empty()
    }
}

/// What one metric cost a run, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricUsage {
    /// `people.write`, as in `[google.quotas]` and the emulator's `--quota`.
    pub id: &'static str,
    /// The metric as the Cloud console's Quotas page names it.
    pub name: &'static str,
    /// Units charged by answered calls.
    pub units: u64,
    /// Calls that had to wait for this metric's window, and for how long in all
    /// (summed over calls running side by side, so it can exceed the run's wall time).
    pub waits: u64,
    pub waited_ms: u64,
    /// 429s that named this metric (or, naming none, were charged to it).
    pub rejected: u64,
    /// The limits in force at the end of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_per_user: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_per_project: Option<u64>,
    /// Set when a 429 changed a limit: how, and from what.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adapted: Vec<Adapted>,
}

/// A limit the run changed after a 429.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adapted {
    pub scope: &'static str,
    pub source: LimitSource,
    pub configured: Option<u64>,
    pub now: u64,
    /// The limit's name in the Cloud console, e.g. "Critical write requests (Contact
    /// and Profile Updates) per minute per user".
    pub limit_name: String,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    units: u64,
    waits: u64,
    waited: Duration,
    rejected: u64,
}

#[derive(Debug)]
struct State {
    limits: HashMap<(Metric, Scope), Limit>,
    windows: HashMap<(Metric, Option<String>), Window>,
    counters: BTreeMap<Metric, Counters>,
    /// Window count at the last sweep of idle windows (memory stays bounded by the
    /// users active in the last minute, not by everyone ever seen).
    swept_at: usize,
}

/// What a call blocked on.
struct Blocked {
    metric: Metric,
    wake: Option<Instant>,
}

/// The budgets of one client: shared by every task, cheap to lock.
#[derive(Debug)]
pub(crate) struct QuotaBook {
    minute: Duration,
    state: Mutex<State>,
    freed: tokio::sync::Notify,
}

/// A call's reservation: its units count from [`QuotaBook::acquire`] until the answer
/// says whether Google charged it ([`Ticket::charged`]) or refused it
/// ([`Ticket::refused`]). Dropped undecided (the future was cancelled mid-call) it
/// counts as charged: the request may have reached Google.
pub(crate) struct Ticket<'a> {
    book: &'a QuotaBook,
    costs: Vec<(Metric, u64)>,
    subject: String,
    open: bool,
}

impl Ticket<'_> {
    pub fn charged(mut self) {
        self.settle(true);
    }

    pub fn refused(mut self) {
        self.settle(false);
    }

    fn settle(&mut self, charged: bool) {
        if !std::mem::take(&mut self.open) || self.costs.is_empty() {
            return;
        }
        self.book.settle(&self.costs, &self.subject, charged);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.settle(true);
    }
}

/// Per-minute costs of a method (daily metrics are not paced).
fn minute_costs(method_id: &str) -> Vec<(Metric, u64)> {
    cost_of(method_id, 0)
        .into_iter()
        .filter(|(m, _)| m.info().period == Period::Minute)
        .collect()
}

fn window_key(metric: Metric, scope: Scope, subject: &str) -> (Metric, Option<String>) {
    match scope {
        Scope::User => (metric, Some(subject.to_string())),
        Scope::Project => (metric, None),
    }
}

impl QuotaBook {
    pub fn new(limits: &QuotaLimits) -> Self {
        let mut map = HashMap::new();
        for info in METRICS {
            for scope in [Scope::User, Scope::Project] {
                let configured = limits.get(info.metric, scope);
                map.insert(
                    (info.metric, scope),
                    Limit {
                        configured,
                        current: configured.map(|v| v as f64),
                        source: LimitSource::Configured,
                    },
                );
            }
        }
        QuotaBook {
            minute: limits.minute.max(Duration::from_millis(1)),
            state: Mutex::new(State {
                limits: map,
                windows: HashMap::new(),
                counters: BTreeMap::new(),
                swept_at: 0,
            }),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// Wait until the call's cost fits under every limit it touches, then count it.
    pub async fn acquire(&self, method_id: &str, subject: &str) -> Ticket<'_> {
        let costs = minute_costs(method_id);
        let mut ticket = Ticket {
            book: self,
            costs,
            subject: subject.to_string(),
            open: false,
        };
        if ticket.costs.is_empty() {
            return ticket;
        }
        let mut waiting: Option<(Instant, Metric)> = None;
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let blocked = {
                let mut st = self.state.lock();
                let now = Instant::now();
                match st.try_take(&ticket.costs, subject, now, self.minute) {
                    Ok(()) => {
                        if let Some((since, metric)) = waiting {
                            let c = st.counters.entry(metric).or_default();
                            c.waits += 1;
                            c.waited += now - since;
                        }
                        ticket.open = true;
                        return ticket;
                    }
                    Err(b) => b,
                }
            };
            match &mut waiting {
                Some((_, m)) => *m = blocked.metric,
                None => waiting = Some((Instant::now(), blocked.metric)),
            }
            match blocked.wake {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    fn settle(&self, costs: &[(Metric, u64)], subject: &str, charged: bool) {
        let now = Instant::now();
        {
            let mut st = self.state.lock();
            for &(metric, units) in costs {
                for scope in [Scope::User, Scope::Project] {
                    if st.limit(metric, scope).is_none() {
                        continue;
                    }
                    let w = st
                        .windows
                        .entry(window_key(metric, scope, subject))
                        .or_default();
                    w.in_flight = w.in_flight.saturating_sub(units);
                    if charged {
                        w.done.push_back((now, units));
                        w.done_sum += units;
                    }
                }
                if charged {
                    st.counters.entry(metric).or_default().units += units;
                    st.creep(metric, units);
                }
            }
        }
        self.freed.notify_waiters();
    }

    /// A 429 for a call of `method_id`: adopt the limit it names, or back off.
    /// `named` is (`quota_metric`, `quota_limit`, `quota_limit_value`) from its ErrorInfo.
    pub fn refused(&self, method_id: &str, subject: &str, named: Option<(&str, &str, u64)>) {
        let mut st = self.state.lock();
        if let Some((quota_metric, quota_limit, value)) = named
            && let Some((metric, scope)) = Metric::from_error_info(quota_metric, quota_limit)
        {
            st.counters.entry(metric).or_default().rejected += 1;
            let l = st
                .limits
                .get_mut(&(metric, scope))
                .expect("every metric and scope has a limit entry");
            let value = value.max(1);
            if l.effective().is_none_or(|c| value < c) || l.source == LimitSource::Backoff {
                l.current = Some(value as f64);
                l.source = LimitSource::Adopted;
                tracing::info!(
                    quota = %metric.info().limit_display(scope),
                    limit = value,
                    "Google named a lower quota limit; using it for the rest of the run"
                );
            }
            return;
        }
        // Nothing named: halve the per-user limit of every metric the call costs (or what
        // the window holds, if less: the limit that refused us is below that).
        let costs = minute_costs(method_id);
        let now = Instant::now();
        for (i, &(metric, _)) in costs.iter().enumerate() {
            if i == 0 {
                st.counters.entry(metric).or_default().rejected += 1;
            }
            let used = st
                .windows
                .get_mut(&window_key(metric, Scope::User, subject))
                .map(|w| {
                    w.prune(now, self.minute);
                    w.used()
                })
                .unwrap_or(0);
            let l = st
                .limits
                .get_mut(&(metric, Scope::User))
                .expect("every metric and scope has a limit entry");
            // Unpaced metrics stay unpaced: the retry's backoff is all there is to go on.
            let Some(current) = l.current else {
                continue;
            };
            l.current = Some((current.min(used.max(1) as f64) / 2.0).max(1.0));
            l.source = LimitSource::Backoff;
        }
    }

    /// What each metric cost so far, with the limits in force.
    pub fn usage(&self) -> Vec<MetricUsage> {
        let st = self.state.lock();
        METRICS
            .iter()
            .filter_map(|info| {
                let c = st.counters.get(&info.metric).copied().unwrap_or_default();
                let adapted: Vec<Adapted> = [Scope::User, Scope::Project]
                    .into_iter()
                    .filter_map(|scope| {
                        let l = &st.limits[&(info.metric, scope)];
                        (l.source != LimitSource::Configured).then(|| Adapted {
                            scope: scope.id(),
                            source: l.source,
                            configured: l.configured,
                            now: l.effective().unwrap_or(0),
                            limit_name: info.limit_display(scope),
                        })
                    })
                    .collect();
                if c.units == 0 && c.waits == 0 && c.rejected == 0 && adapted.is_empty() {
                    return None;
                }
                Some(MetricUsage {
                    id: info.id,
                    name: info.display,
                    units: c.units,
                    waits: c.waits,
                    waited_ms: c.waited.as_millis() as u64,
                    rejected: c.rejected,
                    limit_per_user: st.limit(info.metric, Scope::User),
                    limit_per_project: st.limit(info.metric, Scope::Project),
                    adapted,
                })
            })
            .collect()
    }

    /// The limit in force for one metric and scope.
    pub fn limit(&self, metric: Metric, scope: Scope) -> Option<u64> {
        self.state.lock().limit(metric, scope)
    }
}

impl State {
    fn limit(&self, metric: Metric, scope: Scope) -> Option<u64> {
        self.limits.get(&(metric, scope)).and_then(Limit::effective)
    }

    fn try_take(
        &mut self,
        costs: &[(Metric, u64)],
        subject: &str,
        now: Instant,
        minute: Duration,
    ) -> Result<(), Blocked> {
        self.sweep(now, minute);
        let mut blocked: Option<Blocked> = None;
        for &(metric, units) in costs {
            for scope in [Scope::User, Scope::Project] {
                let Some(limit) = self.limit(metric, scope) else {
                    continue;
                };
                let w = self
                    .windows
                    .entry(window_key(metric, scope, subject))
                    .or_default();
                w.prune(now, minute);
                // A call costing more than the whole limit goes alone into an empty window
                // (Google would refuse it either way; waiting forever helps nobody).
                if w.used() + units > limit && w.used() > 0 {
                    let wake = w.fits_at(units, limit, minute);
                    // Wait for the latest of the blockers: earlier ones free nothing useful.
                    let later = match (&blocked, wake) {
                        (None, _) => true,
                        (Some(b), Some(at)) => b.wake.is_some_and(|w| at > w),
                        (Some(_), None) => false,
                    };
                    if later {
                        blocked = Some(Blocked { metric, wake });
                    }
                }
            }
        }
        if let Some(b) = blocked {
            return Err(b);
        }
        for &(metric, units) in costs {
            for scope in [Scope::User, Scope::Project] {
                if self.limit(metric, scope).is_some() {
                    self.windows
                        .entry(window_key(metric, scope, subject))
                        .or_default()
                        .in_flight += units;
                }
            }
        }
        Ok(())
    }

    /// Additive increase: a backed-off limit gains `units / limit` per charged call,
    /// about one unit per minute of full use, up to what is configured.
    fn creep(&mut self, metric: Metric, units: u64) {
        for scope in [Scope::User, Scope::Project] {
            if let Some(l) = self.limits.get_mut(&(metric, scope))
                && l.source == LimitSource::Backoff
                && let Some(c) = l.current
            {
                let next = c + units as f64 / c.max(1.0);
                match l.configured {
                    Some(cap) if next >= cap as f64 => {
                        l.current = Some(cap as f64);
                        l.source = LimitSource::Configured;
                    }
                    _ => l.current = Some(next),
                }
            }
        }
    }

    fn sweep(&mut self, now: Instant, minute: Duration) {
        if self.windows.len() < 1024 || self.windows.len() < 2 * self.swept_at {
            return;
        }
        self.windows.retain(|_, w| {
            w.prune(now, minute);
            !w.idle()
        });
        self.swept_at = self.windows.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITE: &str = "people.people.batchCreateContacts";

    fn book(per_user_writes: u64, minute_ms: u64) -> QuotaBook {
        let mut l = QuotaLimits::unlimited();
        l.set(Metric::PeopleWrite, Scope::User, Some(per_user_writes));
        l.minute = Duration::from_millis(minute_ms);
        QuotaBook::new(&l)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_up_to_the_limit_waits_for_nothing_and_the_next_waits_a_minute() {
        let b = book(30, 60_000);
        let t0 = Instant::now();
        for _ in 0..5 {
            b.acquire(WRITE, "a").await.charged(); // 6 writes each: 30 in all
        }
        assert_eq!(t0.elapsed(), Duration::ZERO);
        b.acquire(WRITE, "a").await.charged();
        assert_eq!(t0.elapsed(), Duration::from_secs(60));
        // Another user has a budget of their own.
        let t1 = Instant::now();
        b.acquire(WRITE, "b").await.charged();
        assert_eq!(t1.elapsed(), Duration::ZERO);
        let usage = b.usage();
        let w = usage.iter().find(|u| u.id == "people.write").unwrap();
        assert_eq!(w.units, 42);
        assert_eq!(w.waits, 1);
        assert_eq!(w.waited_ms, 60_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_call_consumes_nothing() {
        let b = book(12, 60_000);
        b.acquire(WRITE, "a").await.refused();
        b.acquire(WRITE, "a").await.charged();
        let t0 = Instant::now();
        b.acquire(WRITE, "a").await.charged();
        assert_eq!(t0.elapsed(), Duration::ZERO, "the refused call was charged");
    }

    #[tokio::test(start_paused = true)]
    async fn units_expire_a_minute_after_the_answer_not_the_send() {
        let b = book(6, 1_000);
        let t = b.acquire(WRITE, "a").await;
        tokio::time::sleep(Duration::from_millis(400)).await; // the call takes 400 ms
        t.charged();
        let t0 = Instant::now();
        b.acquire(WRITE, "a").await.charged();
        assert_eq!(t0.elapsed(), Duration::from_millis(1_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_named_limit_is_adopted_and_an_unnamed_429_halves_then_creeps_back() {
        let b = book(30, 60_000);
        b.refused(
            WRITE,
            "a",
            Some((
                "people.googleapis.com/critical_write_requests",
                "CriticalWritesPerMinutePerProjectPerUser",
                10,
            )),
        );
        assert_eq!(b.limit(Metric::PeopleWrite, Scope::User), Some(10));
        let usage = b.usage();
        let w = usage.iter().find(|u| u.id == "people.write").unwrap();
        assert_eq!(w.adapted[0].source, LimitSource::Adopted);
        assert_eq!(w.adapted[0].configured, Some(30));
        assert_eq!(w.rejected, 1);

        let b = book(30, 60_000);
        for _ in 0..4 {
            b.acquire(WRITE, "a").await.charged();
        }
        // Refused at 24 units: the real limit is below that; half of it is a safe start.
        b.refused(WRITE, "a", None);
        assert_eq!(b.limit(Metric::PeopleWrite, Scope::User), Some(12));
        for _ in 0..100 {
            b.acquire(WRITE, "a").await.charged();
        }
        assert_eq!(
            b.limit(Metric::PeopleWrite, Scope::User),
            Some(30),
            "the limit crept back to what is configured"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_project_limit_binds_across_users() {
        let mut l = QuotaLimits::unlimited();
        l.set(Metric::PeopleWrite, Scope::Project, Some(12));
        let b = QuotaBook::new(&l);
        let t0 = Instant::now();
        b.acquire(WRITE, "a").await.charged();
        b.acquire(WRITE, "b").await.charged();
        assert_eq!(t0.elapsed(), Duration::ZERO);
        b.acquire(WRITE, "c").await.charged();
        assert_eq!(t0.elapsed(), Duration::from_secs(60));
    }

    #[test]
    fn the_google_defaults_are_the_metric_table() {
        let l = QuotaLimits::google();
        assert_eq!(l.get(Metric::PeopleWrite, Scope::User), Some(30));
        assert_eq!(l.get(Metric::PeopleWrite, Scope::Project), Some(3_000));
        assert_eq!(l.get(Metric::PeopleRead, Scope::User), Some(90));
        assert_eq!(l.get(Metric::DirectoryQuery, Scope::Project), None);
    }
}
